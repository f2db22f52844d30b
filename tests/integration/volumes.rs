//! A volume's whole life on the default embedded backend, through the HTTP API, checked
//! against the files on the share.

use serde_json::json;

use crate::common::{Server, read_at, virtual_size, write_at};

const GIB: u64 = 1 << 30;

#[tokio::test]
async fn volume_lifecycle_on_the_default_nfs_backend() {
    let server = Server::start("");
    let c = server.client("alice:proj-a");

    // Create 1 GiB → available, a file of that virtual size named after the id.
    let vol = c.create_volume(json!({"size": 1, "name": "data"})).await;
    let v = c.wait_status("volumes", &vol, "available").await;
    assert_eq!(v["size"], 1);
    assert_eq!(v["volume_type"], "__DEFAULT__");
    let file = server.share().join(format!("volume-{vol}"));
    assert_eq!(virtual_size(&file), GIB);
    assert_eq!(
        std::fs::metadata(&file).unwrap().len(),
        GIB,
        "raw file of the volume's size"
    );

    // Known bytes at the start, the middle and the last block.
    let marks: [(u64, &[u8]); 3] = [
        (0, b"ashlar-start"),
        (GIB / 2 + 7, b"middle-bytes"),
        (GIB - 4096, b"last-block"),
    ];
    for (off, data) in marks {
        write_at(&file, off, data);
    }

    // Snapshot, then a volume from it: same bytes.
    let r = c
        .post(
            "snapshots",
            json!({"snapshot": {"volume_id": vol, "name": "s1"}}),
        )
        .await;
    assert_eq!(r.status, 202, "{}", r.body);
    let snap = r.body["snapshot"]["id"].as_str().unwrap().to_string();
    c.wait_status("snapshots", &snap, "available").await;
    // Bytes written after the snapshot must not reach volumes made from it.
    write_at(&file, 0, b"CHANGED-AFTER");

    let from_snap = c.create_volume(json!({"snapshot_id": snap})).await;
    let fs = c.wait_status("volumes", &from_snap, "available").await;
    assert_eq!(fs["snapshot_id"], snap.as_str());
    let fs_file = server.share().join(format!("volume-{from_snap}"));
    assert_eq!(read_at(&fs_file, 0, 12), b"ashlar-start");
    for (off, data) in &marks[1..] {
        assert_eq!(read_at(&fs_file, *off, data.len()), *data);
    }

    // Clone → same bytes as the source now.
    let clone = c
        .create_volume(json!({"source_volid": vol, "size": 1}))
        .await;
    c.wait_status("volumes", &clone, "available").await;
    let clone_file = server.share().join(format!("volume-{clone}"));
    assert_eq!(read_at(&clone_file, 0, 13), b"CHANGED-AFTER");
    assert_eq!(read_at(&clone_file, GIB - 4096, 10), b"last-block");

    // Extend to 2 GiB: the file grows, data stays, status back to available.
    let r = c
        .post(
            &format!("volumes/{vol}/action"),
            json!({"os-extend": {"new_size": 2}}),
        )
        .await;
    assert_eq!(r.status, 202, "{}", r.body);
    let v = c.wait_status("volumes", &vol, "available").await;
    assert_eq!(v["size"], 2);
    assert_eq!(virtual_size(&file), 2 * GIB);
    assert_eq!(read_at(&file, GIB - 4096, 10), b"last-block");

    // Delete: refused while the snapshot exists, then snapshot and volumes go, files too.
    let r = c.delete(&format!("volumes/{vol}")).await;
    assert_eq!(r.status, 400);
    assert!(
        r.error_message().contains("dependent snapshots"),
        "{}",
        r.error_message()
    );
    assert_eq!(c.delete(&format!("snapshots/{snap}")).await.status, 202);
    assert!(c.wait("snapshots", &snap).await.is_null());
    for id in [&vol, &from_snap, &clone] {
        let r = c.delete(&format!("volumes/{id}")).await;
        assert_eq!(r.status, 202, "{}", r.body);
        assert!(
            c.wait("volumes", id).await.is_null(),
            "volume {id} still listed"
        );
    }
    let left: Vec<_> = std::fs::read_dir(server.share())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert!(left.is_empty(), "files left on the share: {left:?}");
    let list = c.get("volumes").await;
    assert_eq!(list.body["volumes"], json!([]));
}

#[tokio::test]
async fn metadata_update_and_listing() {
    let server = Server::start("");
    let c = server.client("bob:proj-b");
    let a = c
        .create_volume(json!({"size": 1, "name": "a", "metadata": {"tier": "gold"}}))
        .await;
    let b = c.create_volume(json!({"size": 1, "name": "b"})).await;
    c.wait_status("volumes", &a, "available").await;
    c.wait_status("volumes", &b, "available").await;

    let r = c
        .post(
            &format!("volumes/{a}/metadata"),
            json!({"metadata": {"owner": "ops"}}),
        )
        .await;
    assert_eq!(r.body["metadata"], json!({"tier": "gold", "owner": "ops"}));
    let r = c
        .put(
            &format!("volumes/{a}/metadata/tier"),
            json!({"meta": {"tier": "silver"}}),
        )
        .await;
    assert_eq!(r.body["meta"], json!({"tier": "silver"}));
    let r = c
        .put(
            &format!("volumes/{a}/metadata/tier"),
            json!({"meta": {"other": "x"}}),
        )
        .await;
    assert_eq!(r.status, 400);
    assert_eq!(
        c.delete(&format!("volumes/{a}/metadata/owner"))
            .await
            .status,
        200
    );
    let r = c.get(&format!("volumes/{a}/metadata")).await;
    assert_eq!(r.body["metadata"], json!({"tier": "silver"}));

    let r = c
        .put(
            &format!("volumes/{a}"),
            json!({"volume": {"name": "renamed", "description": "d"}}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["volume"]["name"], "renamed");

    // Filters, sorting and paging.
    let r = c.get("volumes/detail?name=b").await;
    let names: Vec<_> = r.body["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["name"].clone())
        .collect();
    assert_eq!(names, vec![json!("b")]);
    let r = c.get("volumes?limit=1&sort=created_at:asc").await;
    assert_eq!(r.body["volumes"].as_array().unwrap().len(), 1);
    assert_eq!(r.body["volumes"][0]["id"], a.as_str());
    let next = r.body["volumes_links"][0]["href"]
        .as_str()
        .expect("next link");
    assert!(next.contains(&format!("marker={a}")), "{next}");
    let r = c
        .get(&format!("volumes?limit=5&sort=created_at:asc&marker={a}"))
        .await;
    assert_eq!(r.body["volumes"].as_array().unwrap().len(), 1);
    assert_eq!(r.body["volumes"][0]["id"], b.as_str());

    // Microversioned fields appear only from their version on.
    let plain = c.get(&format!("volumes/{a}")).await;
    assert!(plain.body["volume"].get("volume_type_id").is_none());
    assert_eq!(plain.headers["openstack-api-version"], "volume 3.0");
    let mut c63 = server.client("bob:proj-b");
    c63.version = Some("3.63".into());
    let r = c63.get(&format!("volumes/{a}")).await;
    assert!(r.body["volume"]["volume_type_id"].is_string(), "{}", r.body);
    assert_eq!(r.body["volume"]["shared_targets"], false);
    assert!(r.body["volume"].get("consumes_quota").is_none());
}

#[tokio::test]
async fn qcow2_volumes_snapshot_inside_the_file() {
    let server = Server::start(
        r#"
[backends.q]
driver = "nfs"
grants.exec = ["qemu-img", "rm", "df", "du"]
settings.share_path = "@DIR@/data/volumes"
settings.volume_format = "qcow2"
"#,
    );
    let c = server.client("alice:proj-a");
    let vol = c.create_volume(json!({"size": 1})).await;
    c.wait_status("volumes", &vol, "available").await;
    let file = server.share().join(format!("volume-{vol}"));
    assert_eq!(virtual_size(&file), GIB);
    assert!(
        std::fs::metadata(&file).unwrap().len() < 1 << 20,
        "a fresh qcow2 file is small"
    );

    let snap = c.snapshot_available(&vol).await;
    let out = std::process::Command::new("qemu-img")
        .args(["snapshot", "-U", "-l"])
        .arg(&file)
        .output()
        .unwrap();
    let listing = String::from_utf8_lossy(&out.stdout);
    assert!(
        listing.contains(&format!("snapshot-{snap}")),
        "internal snapshot in the file: {listing}"
    );
    assert_eq!(
        std::fs::read_dir(server.share()).unwrap().count(),
        1,
        "no snapshot file beside the volume"
    );

    let from_snap = c
        .create_volume(json!({"snapshot_id": snap, "size": 2}))
        .await;
    c.wait_status("volumes", &from_snap, "available").await;
    assert_eq!(
        virtual_size(&server.share().join(format!("volume-{from_snap}"))),
        2 * GIB
    );
    let clone = c.create_volume(json!({"source_volid": vol})).await;
    c.wait_status("volumes", &clone, "available").await;
    let r = c
        .post(
            &format!("volumes/{vol}/action"),
            json!({"os-extend": {"new_size": 3}}),
        )
        .await;
    assert_eq!(r.status, 202);
    c.wait_status("volumes", &vol, "available").await;
    assert_eq!(virtual_size(&file), 3 * GIB);

    assert_eq!(c.delete(&format!("snapshots/{snap}")).await.status, 202);
    assert!(c.wait("snapshots", &snap).await.is_null());
    let out = std::process::Command::new("qemu-img")
        .args(["snapshot", "-U", "-l"])
        .arg(&file)
        .output()
        .unwrap();
    assert!(
        !String::from_utf8_lossy(&out.stdout).contains(&snap),
        "snapshot removed from the file"
    );
    for id in [&vol, &from_snap, &clone] {
        assert_eq!(c.delete(&format!("volumes/{id}")).await.status, 202);
        assert!(c.wait("volumes", id).await.is_null());
    }
    assert_eq!(std::fs::read_dir(server.share()).unwrap().count(), 0);
}

/// `os-set_bootable`: the flag is the volume's, shown by show and list at once; the value
/// must be a boolean; a volume in maintenance is not updated, as in Cinder.
#[tokio::test]
async fn set_bootable_marks_the_volume_and_refuses_what_cinder_refuses() {
    let server = Server::start("");
    let c = server.client("alice:proj-a");
    let admin = server.client("admin:proj-a");
    let vol = c.create_volume(json!({"size": 1})).await;
    c.wait_status("volumes", &vol, "available").await;
    let action = |body: serde_json::Value| {
        let (c, vol) = (&c, vol.clone());
        async move { c.post(&format!("volumes/{vol}/action"), body).await }
    };
    for (value, want) in [
        (json!(true), "true"),
        (json!("false"), "false"),
        (json!("True"), "true"),
    ] {
        let r = action(json!({"os-set_bootable": {"bootable": value}})).await;
        assert_eq!(r.status, 200, "{}", r.body);
        assert_eq!(
            c.get(&format!("volumes/{vol}")).await.body["volume"]["bootable"],
            want
        );
        let listed = c.get("volumes/detail").await.body["volumes"][0]["bootable"].clone();
        assert_eq!(listed, want, "the list shows the change at once");
    }
    for (body, words) in [
        (json!({"os-set_bootable": {}}), "bootable is required"),
        (
            json!({"os-set_bootable": {"bootable": "maybe"}}),
            "bootable",
        ),
        (json!({"os-set_bootable": {"bootable": 1}}), "bootable"),
    ] {
        let r = action(body.clone()).await;
        assert_eq!(r.status, 400, "{body}: {}", r.body);
        assert!(
            r.error_message().contains(words),
            "{body}: {}",
            r.error_message()
        );
    }
    let r = admin
        .post(
            &format!("volumes/{vol}/action"),
            json!({"os-reset_status": {"status": "maintenance"}}),
        )
        .await;
    assert_eq!(r.status, 202, "{}", r.body);
    let r = action(json!({"os-set_bootable": {"bootable": false}})).await;
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(
        r.error_message().contains("maintenance"),
        "{}",
        r.error_message()
    );
    assert_eq!(
        c.get(&format!("volumes/{vol}")).await.body["volume"]["bootable"],
        "true"
    );
}

/// A snapshot's metadata is served as a volume's is: show, merge, replace, one key's show,
/// set and delete; another project sees none of it.
#[tokio::test]
async fn snapshot_metadata_is_served_as_a_volumes() {
    let server = Server::start("");
    let c = server.client("alice:proj-a");
    let vol = c.create_volume(json!({"size": 1})).await;
    c.wait_status("volumes", &vol, "available").await;
    let r = c
        .post(
            "snapshots",
            json!({"snapshot": {"volume_id": vol, "metadata": {"a": "1"}}}),
        )
        .await;
    assert_eq!(r.status, 202, "{}", r.body);
    let snap = r.body["snapshot"]["id"].as_str().unwrap().to_string();
    c.wait_status("snapshots", &snap, "available").await;
    let path = format!("snapshots/{snap}/metadata");

    assert_eq!(c.get(&path).await.body, json!({"metadata": {"a": "1"}}));
    let r = c.post(&path, json!({"metadata": {"b": "2"}})).await;
    assert_eq!(
        r.body,
        json!({"metadata": {"a": "1", "b": "2"}}),
        "POST merges"
    );
    let r = c.put(&path, json!({"metadata": {"c": "3"}})).await;
    assert_eq!(r.body, json!({"metadata": {"c": "3"}}), "PUT replaces");
    let r = c
        .put(&format!("{path}/d"), json!({"meta": {"d": "4"}}))
        .await;
    assert_eq!(r.body, json!({"meta": {"d": "4"}}), "{}", r.body);
    assert_eq!(
        c.get(&format!("{path}/d")).await.body,
        json!({"meta": {"d": "4"}})
    );
    assert_eq!(c.delete(&format!("{path}/c")).await.status, 200);
    let r = c.get(&format!("{path}/c")).await;
    assert_eq!(r.status, 404);
    assert!(
        r.error_message().contains("no metadata with key c"),
        "{}",
        r.body
    );
    let shown = c.get(&format!("snapshots/{snap}")).await.body["snapshot"]["metadata"].clone();
    assert_eq!(shown, json!({"d": "4"}), "the snapshot's view shows it");
    let r = c
        .put(&format!("{path}/e"), json!({"meta": {"f": "5"}}))
        .await;
    assert_eq!(
        r.status, 400,
        "a key other than the URL's is refused: {}",
        r.body
    );

    let bob = server.client("bob:proj-b");
    assert_eq!(bob.get(&path).await.status, 404);
    assert_eq!(
        bob.post(&path, json!({"metadata": {"x": "y"}}))
            .await
            .status,
        404
    );
    assert_eq!(c.get(&path).await.body, json!({"metadata": {"d": "4"}}));
}

/// A snapshot's administrator actions: `os-reset_status` to any of Cinder's statuses and
/// `os-force_delete`, which also takes one left `deleting`; members are refused, other
/// projects see nothing.
#[tokio::test]
async fn snapshot_reset_status_and_force_delete_are_for_administrators() {
    let server = Server::start("");
    let c = server.client("alice:proj-a");
    let admin = server.client("admin:proj-a");
    let vol = c.create_volume(json!({"size": 1})).await;
    c.wait_status("volumes", &vol, "available").await;
    let snap = c.snapshot_available(&vol).await;
    let path = format!("snapshots/{snap}/action");
    let reset = |status: &str| json!({"os-reset_status": {"status": status}});

    for body in [reset("error"), json!({"os-force_delete": {}})] {
        let r = c.post(&path, body.clone()).await;
        assert_eq!(r.status, 403, "{body}: {}", r.body);
    }
    let bob = server.client("admin:proj-b");
    assert_eq!(
        server
            .client("bob:proj-b")
            .post(&path, reset("error"))
            .await
            .status,
        404
    );
    let r = admin.post(&path, reset("frozen")).await;
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(
        r.error_message().contains("available"),
        "{}",
        r.error_message()
    );
    let r = admin.post(&path, json!({"os-unknown": {}})).await;
    assert_eq!(r.status, 400, "{}", r.body);

    // Left `deleting` (as by a host that lost the job): a plain delete is refused, a
    // force delete deletes it again.
    let r = admin.post(&path, reset("deleting")).await;
    assert_eq!(r.status, 202, "{}", r.body);
    assert_eq!(
        c.get(&format!("snapshots/{snap}")).await.body["snapshot"]["status"],
        "deleting"
    );
    let r = c.delete(&format!("snapshots/{snap}")).await;
    assert_eq!(r.status, 400, "{}", r.body);
    let r = bob.post(&path, json!({"os-force_delete": {}})).await;
    assert_eq!(
        r.status, 202,
        "an administrator of any project may: {}",
        r.body
    );
    assert!(c.wait("snapshots", &snap).await.is_null());
    assert!(!server.share().join(format!("snapshot-{snap}")).exists());
}

#[tokio::test]
async fn readonly_volumes_attach_read_only_and_show_it_as_cinder_does() {
    let server = Server::start("");
    let c = server.client("alice:proj-a").with_version("3.71");
    let vol = c.create_volume(json!({"size": 1})).await;
    c.wait_status("volumes", &vol, "available").await;
    let action = |body: serde_json::Value| {
        let (c, vol) = (&c, vol.clone());
        async move { c.post(&format!("volumes/{vol}/action"), body).await }
    };
    let r = action(json!({"os-update_readonly_flag": {"readonly": true}})).await;
    assert_eq!(r.status, 202, "{}", r.body);
    let shown = c.get(&format!("volumes/{vol}")).await.body["volume"].clone();
    assert_eq!(shown["metadata"], json!({"readonly": "True"}), "{shown}");
    assert_eq!(
        c.get(&format!("volumes/{vol}/metadata")).await.body["metadata"],
        json!({}),
        "admin metadata is not the user's metadata"
    );
    for (body, words) in [
        (
            json!({"os-update_readonly_flag": {}}),
            "readonly is required",
        ),
        (
            json!({"os-update_readonly_flag": {"readonly": "perhaps"}}),
            "readonly",
        ),
    ] {
        let r = action(body.clone()).await;
        assert_eq!(r.status, 400, "{body}: {}", r.body);
        assert!(r.error_message().contains(words), "{}", r.error_message());
    }

    // A read-only volume refuses a read-write attachment and attaches `ro` by default.
    let connector = json!({"host": "compute-1", "initiator": "iqn.1993-08.org.debian:01:c1"});
    let r = c
        .post(
            "attachments",
            json!({"attachment": {"volume_uuid": vol, "instance_uuid": "5e2f7c84-0a3b-4c1d-9e8f-7a6b5c4d3e2f",
                   "connector": connector, "mode": "rw"}}),
        )
        .await;
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(
        r.error_message().contains("read-only"),
        "{}",
        r.error_message()
    );
    let r = c
        .post(
            "attachments",
            json!({"attachment": {"volume_uuid": vol, "instance_uuid": "5e2f7c84-0a3b-4c1d-9e8f-7a6b5c4d3e2f",
                   "connector": connector}}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let attachment = r.body["attachment"].clone();
    assert_eq!(attachment["attach_mode"], "ro");
    assert_eq!(attachment["connection_info"]["data"]["access_mode"], "ro");
    let id = attachment["id"].as_str().unwrap().to_string();
    let r = c
        .post(
            &format!("attachments/{id}/action"),
            json!({"os-complete": null}),
        )
        .await;
    assert_eq!(r.status, 204, "{}", r.body);
    let shown = c.get(&format!("volumes/{vol}")).await.body["volume"].clone();
    assert_eq!(
        shown["metadata"],
        json!({"readonly": "True", "attached_mode": "ro"}),
        "{shown}"
    );
    // Only an available volume's flag changes.
    let r = action(json!({"os-update_readonly_flag": {"readonly": false}})).await;
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(
        r.error_message().contains("must be available") && r.error_message().contains("in-use"),
        "{}",
        r.error_message()
    );
    let r = c.delete(&format!("attachments/{id}")).await;
    assert_eq!(r.status, 200, "{}", r.body);
    c.wait_status("volumes", &vol, "available").await;
    let shown = c.get(&format!("volumes/{vol}")).await.body["volume"].clone();
    assert_eq!(shown["metadata"], json!({"readonly": "True"}), "{shown}");
    let r = action(json!({"os-update_readonly_flag": {"readonly": false}})).await;
    assert_eq!(r.status, 202, "{}", r.body);
    let r = c
        .post(
            "attachments",
            json!({"attachment": {"volume_uuid": vol, "connector": connector}}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        r.body["attachment"]["connection_info"]["data"]["access_mode"],
        "rw"
    );
}

#[tokio::test]
async fn image_metadata_is_set_shown_and_unset_through_volume_actions() {
    let server = Server::start("");
    let c = server.client("alice:proj-a");
    let vol = c.create_volume(json!({"size": 1})).await;
    c.wait_status("volumes", &vol, "available").await;
    let action = |body: serde_json::Value| {
        let (c, vol) = (&c, vol.clone());
        async move { c.post(&format!("volumes/{vol}/action"), body).await }
    };
    let shown = c.get(&format!("volumes/{vol}")).await.body["volume"].clone();
    assert!(
        shown.get("volume_image_metadata").is_none(),
        "no image metadata, no key: {shown}"
    );
    let r = action(json!({"os-set_image_metadata": {"metadata": {"image_name": "cirros", "os_distro": "cirros"}}})).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        r.body["metadata"],
        json!({"image_name": "cirros", "os_distro": "cirros"})
    );
    let r = action(json!({"os-set_image_metadata": {"metadata": {"hw_disk_bus": "scsi"}}})).await;
    assert_eq!(
        r.body["metadata"],
        json!({"image_name": "cirros", "os_distro": "cirros", "hw_disk_bus": "scsi"}),
        "set merges"
    );
    let r = action(json!({"os-unset_image_metadata": {"key": "os_distro"}})).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let r = action(json!({"os-unset_image_metadata": {"key": "os_distro"}})).await;
    assert_eq!(r.status, 404, "{}", r.body);
    let r = action(json!({"os-show_image_metadata": null})).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let want = json!({"image_name": "cirros", "hw_disk_bus": "scsi"});
    assert_eq!(r.body["metadata"], want);
    let shown = c.get(&format!("volumes/{vol}")).await.body["volume"].clone();
    assert_eq!(shown["volume_image_metadata"], want);
    let listed = c.get("volumes/detail").await.body["volumes"][0].clone();
    assert_eq!(listed["volume_image_metadata"], want);
    let r = action(json!({"os-set_image_metadata": {"metadata": "x"}})).await;
    assert_eq!(r.status, 400, "{}", r.body);
    // A clone carries its source's image metadata, as Cinder copies it.
    let clone = c
        .create_volume(json!({"size": 1, "source_volid": vol}))
        .await;
    c.wait_status("volumes", &clone, "available").await;
    let r = c
        .post(
            &format!("volumes/{clone}/action"),
            json!({"os-show_image_metadata": {}}),
        )
        .await;
    assert_eq!(r.body["metadata"], want);
}

#[tokio::test]
async fn the_summary_counts_a_projects_volumes_and_their_metadata() {
    let server = Server::start("");
    let c = server.client("alice:proj-a").with_version("3.36");
    let other = server.client("bob:proj-b").with_version("3.36");
    let admin = server.client("admin:proj-a").with_version("3.36");
    for (client, size, meta) in [
        (&c, 1, json!({"tier": "gold"})),
        (&c, 2, json!({"tier": "silver", "app": "db"})),
        (&c, 3, json!({"tier": "gold"})),
        (&other, 5, json!({"tier": "bronze"})),
    ] {
        let id = client
            .create_volume(json!({"size": size, "metadata": meta}))
            .await;
        client.wait_status("volumes", &id, "available").await;
    }
    let r = c.get("volumes/summary").await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        r.body,
        json!({"volume-summary": {"total_count": 3, "total_size": 6,
               "metadata": {"app": ["db"], "tier": ["gold", "silver"]}}})
    );
    let r = admin.get("volumes/summary?all_tenants=maybe").await;
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(
        r.error_message().contains("all_tenants"),
        "{}",
        r.error_message()
    );
    let r = admin.get("volumes/summary?all_tenants=1").await;
    assert_eq!(r.body["volume-summary"]["total_count"], 4);
    assert_eq!(r.body["volume-summary"]["total_size"], 11);
    let r = c.with_version("3.12").get("volumes/summary").await;
    assert_eq!(
        r.body,
        json!({"volume-summary": {"total_count": 3, "total_size": 6}}),
        "metadata from 3.36"
    );
    let r = c.with_version("3.11").get("volumes/summary").await;
    assert_eq!(r.status, 404, "{}", r.body);
}

#[tokio::test]
async fn snapshot_status_and_progress_updates_follow_cinders_transitions() {
    let server = Server::start("");
    let c = server.client("alice:proj-a");
    let admin = server.client("admin:proj-a");
    let vol = c.create_volume(json!({"size": 1})).await;
    c.wait_status("volumes", &vol, "available").await;
    let snap = c.snapshot_available(&vol).await;
    let action = |body: serde_json::Value| {
        let (c, snap) = (&c, snap.clone());
        async move { c.post(&format!("snapshots/{snap}/action"), body).await }
    };
    // An available snapshot takes no status update.
    let r = action(json!({"os-update_snapshot_status": {"status": "error"}})).await;
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(
        r.error_message()
            .contains("Snapshot status available not allowed for update_snapshot_status"),
        "{}",
        r.error_message()
    );
    let r = admin
        .post(
            &format!("snapshots/{snap}/action"),
            json!({"os-reset_status": {"status": "creating"}}),
        )
        .await;
    assert_eq!(r.status, 202, "{}", r.body);
    for (body, words) in [
        (
            json!({"os-update_snapshot_status": {}}),
            "'status' must be specified",
        ),
        (
            json!({"os-update_snapshot_status": {"status": "deleting"}}),
            "Provided snapshot status deleting not allowed for snapshot with status creating",
        ),
        (
            json!({"os-update_snapshot_status": {"status": "creating", "progress": "101%"}}),
            "integer percentage",
        ),
        (
            json!({"os-update_progress": "ninety"}),
            "integer percentage",
        ),
    ] {
        let r = action(body.clone()).await;
        assert_eq!(r.status, 400, "{body}: {}", r.body);
        assert!(
            r.error_message().contains(words),
            "{body}: {}",
            r.error_message()
        );
    }
    let r = action(json!({"os-update_snapshot_status": {"status": "creating", "progress": "40%"}}))
        .await;
    assert_eq!(r.status, 202, "{}", r.body);
    let shown = c.get(&format!("snapshots/{snap}")).await.body["snapshot"].clone();
    assert_eq!(shown["status"], "creating");
    assert_eq!(shown["os-extended-snapshot-attributes:progress"], "40%");
    let r = action(json!({"os-update_progress": "90%"})).await;
    assert_eq!(r.status, 202, "{}", r.body);
    let shown = c.get(&format!("snapshots/{snap}")).await.body["snapshot"].clone();
    assert_eq!(shown["os-extended-snapshot-attributes:progress"], "90%");
    let r =
        action(json!({"os-update_snapshot_status": {"status": "available", "progress": "100%"}}))
            .await;
    assert_eq!(r.status, 202, "{}", r.body);
    let shown = c.get(&format!("snapshots/{snap}")).await.body["snapshot"].clone();
    assert_eq!(shown["status"], "available");
    assert_eq!(shown["os-extended-snapshot-attributes:progress"], "100%");
}

#[tokio::test]
async fn create_and_update_views_leave_out_what_only_show_and_list_carry() {
    let server = Server::start("");
    for token in ["alice:proj-a", "admin:proj-a"] {
        let c = server.client(token).with_version("3.71");
        let r = c.post("volumes", json!({"volume": {"size": 1}})).await;
        assert_eq!(r.status, 202, "{}", r.body);
        let created = r.body["volume"].clone();
        let vol = created["id"].as_str().unwrap().to_string();
        c.wait_status("volumes", &vol, "available").await;
        let updated = c
            .put(&format!("volumes/{vol}"), json!({"volume": {"name": "n"}}))
            .await
            .body["volume"]
            .clone();
        let shown = c.get(&format!("volumes/{vol}")).await.body["volume"].clone();
        let admin = token.starts_with("admin");
        for (view, extended) in [(&created, false), (&updated, false), (&shown, true)] {
            assert_eq!(
                view.get("os-vol-tenant-attr:tenant_id").is_some(),
                extended,
                "{token}: {view}"
            );
            for key in [
                "os-vol-host-attr:host",
                "os-vol-mig-status-attr:migstat",
                "os-vol-mig-status-attr:name_id",
            ] {
                assert_eq!(
                    view.get(key).is_some(),
                    extended && admin,
                    "{key} {token}: {view}"
                );
            }
            for key in ["migration_status", "cluster_name", "provider_id"] {
                assert_eq!(view.get(key).is_some(), admin, "{key} {token}: {view}");
            }
            assert!(view["volume_type_id"].is_string(), "{view}");
            assert_eq!(view["consumes_quota"], true, "{view}");
        }
    }
}
