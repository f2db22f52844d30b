//! Operations on one volume are serialised by conditional updates: an extend, a delete and
//! a snapshot that race each other either start from a status that permits them or are
//! refused, so a snapshot records the size its data has and a volume the size its file has.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::common::{Client, Server, virtual_size};

const GIB: u64 = 1 << 30;
const TRANSITIONAL: &[&str] = &["creating", "deleting", "extending", "reverting"];

/// The volume and its snapshots once none of them is in a transitional status.
async fn settled(c: &Client, vol: &str) -> (Option<Value>, Vec<Value>) {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let r = c.get(&format!("volumes/{vol}")).await;
        let volume = (r.status == 200).then(|| r.body["volume"].clone());
        assert!(r.status == 200 || r.status == 404, "{}", r.body);
        let snaps = c.get(&format!("snapshots/detail?volume_id={vol}")).await;
        assert_eq!(snaps.status, 200, "{}", snaps.body);
        let snaps = snaps.body["snapshots"].as_array().unwrap().clone();
        let moving = volume
            .iter()
            .chain(&snaps)
            .any(|x| TRANSITIONAL.contains(&x["status"].as_str().unwrap()));
        if !moving {
            return (volume, snaps);
        }
        assert!(
            Instant::now() < deadline,
            "still transitional after 120 s: {volume:?} {snaps:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn conflicting_extends_deletes_and_snapshots_keep_sizes_true() {
    let server = Server::start("");
    let c = server.client("alice:proj-a");
    let mut statuses = std::collections::BTreeMap::<u16, usize>::new();
    let (mut snapshots_checked, mut volumes_checked) = (0, 0);
    for round in 0..20 {
        let vol = c.create_volume(json!({"size": 1})).await;
        c.wait_status("volumes", &vol, "available").await;
        // 100 at once: extends to assorted sizes, snapshots, and a few deletes.
        let mut requests = tokio::task::JoinSet::new();
        for i in 0..100u64 {
            let (c, vol) = (c.clone(), vol.clone());
            requests.spawn(async move {
                match i % 10 {
                    0 if i >= 50 => c.delete(&format!("volumes/{vol}")).await,
                    1 | 4 | 7 => {
                        c.post(
                            &format!("volumes/{vol}/action"),
                            json!({"os-extend": {"new_size": 2 + (i + round) % 5}}),
                        )
                        .await
                    }
                    _ => {
                        c.post(
                            "snapshots",
                            json!({"snapshot": {"volume_id": vol, "name": format!("s{i}")}}),
                        )
                        .await
                    }
                }
            });
        }
        while let Some(r) = requests.join_next().await {
            let r = r.unwrap();
            assert!(
                [202, 400, 404].contains(&r.status),
                "round {round}: unexpected {}: {}",
                r.status,
                r.body
            );
            if r.status == 400 {
                assert!(!r.error_message().is_empty(), "{}", r.body);
            }
            *statuses.entry(r.status).or_default() += 1;
        }
        let (volume, snaps) = settled(&c, &vol).await;
        for s in &snaps {
            assert_eq!(s["status"], "available", "round {round}: {s}");
            let file = server
                .share()
                .join(format!("snapshot-{}", s["id"].as_str().unwrap()));
            assert_eq!(
                virtual_size(&file),
                s["size"].as_u64().unwrap() * GIB,
                "round {round}: snapshot {} records {} GiB",
                s["id"],
                s["size"]
            );
            snapshots_checked += 1;
        }
        if let Some(v) = volume {
            assert_eq!(v["status"], "available", "round {round}: {v}");
            let file = server.share().join(format!("volume-{vol}"));
            assert_eq!(
                virtual_size(&file),
                v["size"].as_u64().unwrap() * GIB,
                "round {round}: volume records {} GiB",
                v["size"]
            );
            volumes_checked += 1;
        } else {
            assert!(!server.share().join(format!("volume-{vol}")).exists());
        }
    }
    // The races happened: some of each were accepted and some refused.
    assert!(
        statuses.get(&202).copied().unwrap_or(0) >= 20,
        "{statuses:?}"
    );
    assert!(
        statuses.get(&400).copied().unwrap_or(0) >= 20,
        "{statuses:?}"
    );
    assert!(
        snapshots_checked > 0 && volumes_checked > 0,
        "{snapshots_checked} {volumes_checked}"
    );
}
