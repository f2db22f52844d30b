//! The backup stores through the real runtime and the real components: the engine's
//! [`ObjectStore`] over `backup-posix` (files under a granted directory) and `backup-s3`
//! (against a real SeaweedFS that checks signatures), and the backup store's hot swap and
//! rollback on a running server.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use ashlar::backup::objects::DriverObjects;
use ashlar::backup::{ObjectStore, StoreError};
use ashlar::capabilities::{Grants, Manifest, World};
use ashlar::config::{Credential, Limits};
use ashlar::runtime::{DriverPool, DriverSpec, LoadError, Runtime};

/// A tokio runtime for the loads (the plugin runtime needs one), while the store calls
/// block on the test's own threads, as the backup engine's do.
fn tokio_rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

pub struct StoreSpec {
    pub wasm: Vec<u8>,
    pub manifest: String,
    pub origin: String,
    pub grants: Grants,
    pub settings: BTreeMap<String, String>,
    pub credentials: BTreeMap<String, Credential>,
    pub limits: Limits,
}

impl StoreSpec {
    fn bundled(name: &str) -> StoreSpec {
        let b = ashlar::bundled::find(name).unwrap();
        StoreSpec {
            wasm: b.wasm.to_vec(),
            manifest: b.manifest.to_string(),
            origin: format!("bundled driver {name}"),
            grants: Grants::default(),
            settings: BTreeMap::new(),
            credentials: BTreeMap::new(),
            limits: Limits::default(),
        }
    }

    fn load(self, rt: &tokio::runtime::Runtime) -> Result<Arc<DriverPool>, LoadError> {
        let _enter = rt.enter();
        let runtime = Runtime::new(None).unwrap();
        runtime.load(DriverSpec {
            backend: "backup".into(),
            origin: self.origin,
            wasm: self.wasm.into(),
            manifest: Manifest::from_toml_str(&self.manifest).unwrap(),
            grants: self.grants,
            settings: self.settings,
            credentials: self.credentials,
            limits: self.limits,
            host_name: "test".into(),
            exec_dirs: ashlar::config::default_exec_dirs(),
            world: World::BackupDriver,
        })
    }
}

/// The posix store on `dir`, granted exactly that directory.
fn posix_spec(dir: &Path) -> StoreSpec {
    let mut spec = StoreSpec::bundled("backup-posix");
    spec.grants.directory = vec![dir.to_path_buf()];
    spec.settings
        .insert("backup_path".into(), dir.display().to_string());
    spec
}

/// Deterministic bytes that differ per object.
fn data(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

fn names(store: &dyn ObjectStore, prefix: &str) -> Vec<String> {
    store
        .list(prefix)
        .unwrap()
        .into_iter()
        .map(|o| o.name)
        .collect()
}

/// What every store must do: round trips, replace, listing by prefix across several
/// pages in name order, not-found, idempotent delete, and several threads at once.
pub fn exercise(store: &DriverObjects) {
    let a = data(1, 100_000);
    store.put("b1/manifest", &a).unwrap();
    assert_eq!(store.get("b1/manifest").unwrap(), a);
    let replaced = data(2, 10);
    store.put("b1/manifest", &replaced).unwrap();
    assert_eq!(store.get("b1/manifest").unwrap(), replaced);
    store.put("b1/empty", b"").unwrap();
    assert_eq!(store.get("b1/empty").unwrap(), b"");

    // More objects than one list page, written from several threads at once.
    let n = ashlar::backup::objects::LIST_PAGE as usize + 50;
    std::thread::scope(|s| {
        for t in 0..4 {
            s.spawn(move || {
                for i in (t..n).step_by(4) {
                    store
                        .put(&format!("b2/chunk-{i:06}"), &data(i as u64, 64 + i % 7))
                        .unwrap();
                }
            });
        }
    });
    store.put("b20/other", b"x").unwrap();
    let listed = store.list("b2/").unwrap();
    assert_eq!(listed.len(), n);
    for (i, o) in listed.iter().enumerate() {
        assert_eq!(o.name, format!("b2/chunk-{i:06}"));
        assert_eq!(o.size, (64 + i % 7) as u64);
    }
    assert_eq!(names(store, "b1/"), ["b1/empty", "b1/manifest"]);
    assert_eq!(names(store, "b20"), ["b20/other"]);
    assert_eq!(names(store, "b2").len(), n + 1);
    assert!(names(store, "nothing-here/").is_empty());
    let i = 778;
    assert_eq!(
        store.get(&format!("b2/chunk-{i:06}")).unwrap(),
        data(i as u64, 64 + i % 7)
    );

    match store.get("b1/missing") {
        Err(StoreError::NotFound(name)) => assert_eq!(name, "b1/missing"),
        other => panic!("a missing object: {other:?}"),
    }
    store.delete("b1/manifest").unwrap();
    store.delete("b1/manifest").unwrap();
    assert!(matches!(
        store.get("b1/manifest"),
        Err(StoreError::NotFound(_))
    ));
    assert_eq!(names(store, "b1/"), ["b1/empty"]);
    std::thread::scope(|s| {
        for t in 0..4 {
            s.spawn(move || {
                for i in (t..n).step_by(4) {
                    store.delete(&format!("b2/chunk-{i:06}")).unwrap();
                }
            });
        }
    });
    assert!(names(store, "b2/").is_empty());
    assert_eq!(names(store, "b2"), ["b20/other"]);
}

#[test]
fn posix_store_round_trips_through_the_real_component() {
    let rt = tokio_rt();
    let dir = tempfile::tempdir().unwrap();
    // Two instances for four threads: the other callers wait for a free one.
    let mut spec = posix_spec(dir.path());
    spec.limits.instances = 2;
    let pool = spec.load(&rt).unwrap();
    let store = DriverObjects::fixed(pool.clone(), "volumebackups");
    exercise(&store);
    // The objects are files under the granted directory, and nothing else is left there
    // (no temporary files, no emptied directories).
    assert_eq!(
        std::fs::read(dir.path().join("volumebackups/b20/other")).unwrap(),
        b"x"
    );
    let mut left: Vec<PathBuf> = walk(dir.path());
    left.sort();
    assert_eq!(
        left,
        [
            dir.path().join("volumebackups/b1/empty"),
            dir.path().join("volumebackups/b20/other")
        ]
    );
    // The pool never made more instances than its limit, whatever the threads.
    let made = pool
        .metrics
        .instances_created
        .load(std::sync::atomic::Ordering::Relaxed);
    assert!((1..=2).contains(&made), "{made} instances for a limit of 2");
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

/// The posix store sees only its granted directory: a symlink planted in it that leads
/// out is not followed by the sandbox, whatever the driver asks; a directory the operator
/// did not grant is refused at load, naming both sides.
#[test]
fn posix_store_cannot_reach_outside_its_granted_directory() {
    let rt = tokio_rt();
    let root = tempfile::tempdir().unwrap();
    let granted = root.path().join("granted");
    let outside = root.path().join("outside");
    std::fs::create_dir_all(granted.join("volumebackups")).unwrap();
    std::fs::create_dir(&outside).unwrap();
    std::fs::write(outside.join("secret"), b"host secret").unwrap();
    std::os::unix::fs::symlink(&outside, granted.join("volumebackups/evil")).unwrap();
    std::os::unix::fs::symlink(
        outside.join("secret"),
        granted.join("volumebackups/secret-link"),
    )
    .unwrap();

    let store = DriverObjects::fixed(posix_spec(&granted).load(&rt).unwrap(), "volumebackups");
    // Reads through either link are refused by the sandbox, not answered.
    for name in ["evil/secret", "secret-link"] {
        match store.get(name) {
            Ok(data) => panic!(
                "{name} read {:?} from outside",
                String::from_utf8_lossy(&data)
            ),
            Err(e) => assert!(!e.to_string().contains("host secret"), "{e}"),
        }
    }
    // Writes through the directory link fail and leave nothing outside.
    assert!(store.put("evil/planted", b"x").is_err());
    assert!(!outside.join("planted").exists());
    // Listing does not descend into it either.
    assert!(
        store.list("evil/").map(|l| l.is_empty()).unwrap_or(true),
        "a listing crossed the link"
    );
    // The secret is untouched.
    assert_eq!(
        std::fs::read(outside.join("secret")).unwrap(),
        b"host secret"
    );
    // Names with `..` never reach the filesystem.
    assert!(matches!(
        store.put("../outside/x", b"x"),
        Err(StoreError::Failed(_))
    ));
    assert!(!root.path().join("outside/x").exists());

    // A backup_path the operator did not grant: refused at load, naming both.
    let mut spec = posix_spec(&outside);
    spec.grants.directory = vec![granted.clone()];
    let err = spec.load(&rt).err().expect("refused").to_string();
    let outside_c = outside.canonicalize().unwrap();
    assert!(
        err.contains(&format!("requests the directory `{}`", outside_c.display()))
            && err.contains(&format!(
                "grants.directory = [{:?}]",
                granted.display().to_string()
            ))
            && err.contains("[backup.grants] directory"),
        "{err}"
    );
}

mod s3 {
    use super::*;
    use crate::seaweedfs::{ACCESS_KEY_ID, SECRET_ACCESS_KEY, SeaweedFs};

    fn s3_spec(weed: &SeaweedFs, secret: &str) -> StoreSpec {
        let mut spec = StoreSpec::bundled("backup-s3");
        spec.grants.http = vec![weed.endpoint.clone()];
        spec.settings
            .insert("endpoint".into(), weed.endpoint.clone());
        spec.credentials.insert(
            "s3".into(),
            toml::from_str(&format!(
                "access_key_id = {ACCESS_KEY_ID:?}\nsecret_access_key = {secret:?}\n"
            ))
            .unwrap(),
        );
        spec
    }

    #[test]
    fn s3_store_round_trips_against_seaweedfs_with_multipart_for_large_objects() {
        let rt = tokio_rt();
        let weed = SeaweedFs::start();
        let mut spec = s3_spec(&weed, SECRET_ACCESS_KEY);
        // Parts of 5 MiB (S3's smallest) above 5 MiB, and answers capped at 6 MiB, so a
        // 23 MiB object goes up in five parts and comes back in five ranged reads.
        spec.settings
            .insert("multipart_threshold_mib".into(), "5".into());
        spec.settings.insert("part_size_mib".into(), "5".into());
        spec.limits.http_response_bytes = 6 << 20;
        let pool = spec.load(&rt).unwrap();
        {
            let p = pool.clone();
            rt.block_on(async move { p.check_for_setup_error().await })
                .unwrap_or_else(|e| panic!("{e}\n{}", weed.log()));
        }
        // A bucket that does not exist yet is created, and creating it again is fine.
        let store = DriverObjects::fixed(pool.clone(), "volumebackups");
        exercise(&store);
        let again = DriverObjects::fixed(pool.clone(), "volumebackups");
        again.put("b3/x", b"y").unwrap();
        assert_eq!(store.get("b3/x").unwrap(), b"y");

        let big = data(42, (23 << 20) + 12_345);
        store.put("b4/big", &big).unwrap();
        let back = store.get("b4/big").unwrap();
        assert!(
            back == big,
            "the multipart object came back different ({} bytes)",
            back.len()
        );
        let listed = store.list("b4/").unwrap();
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0].size, big.len() as u64);
        // Keys that need encoding survive the round trip and the listing.
        store.put("b5/a b+c&d", b"odd").unwrap();
        assert_eq!(store.get("b5/a b+c&d").unwrap(), b"odd");
        assert_eq!(names(&store, "b5/"), ["b5/a b+c&d"]);
        // A missing bucket's objects are simply missing.
        let other = DriverObjects::fixed(pool, "otherbucket");
        assert!(matches!(other.get("nothing"), Err(StoreError::NotFound(_))));
    }

    #[test]
    fn a_wrong_secret_fails_naming_the_credential() {
        let rt = tokio_rt();
        let weed = SeaweedFs::start();
        let pool = s3_spec(&weed, "not-the-secret").load(&rt).unwrap();
        let p = pool.clone();
        let err = rt
            .block_on(async move { p.check_for_setup_error().await })
            .expect_err("a wrong secret is refused")
            .to_string();
        assert!(
            err.contains("credential `s3`") && err.contains("SignatureDoesNotMatch"),
            "{err}"
        );
        assert!(!err.contains("not-the-secret"), "the secret leaked: {err}");
        let store = DriverObjects::fixed(pool, "volumebackups");
        let err = store.put("b/x", b"x").unwrap_err().to_string();
        assert!(err.contains("credential `s3`"), "{err}");
        // The right one works against the same server.
        let good = s3_spec(&weed, SECRET_ACCESS_KEY).load(&rt).unwrap();
        DriverObjects::fixed(good, "volumebackups")
            .put("b/x", b"x")
            .unwrap();
    }
}

mod swap {
    use serde_json::json;

    use crate::common::{Server, plugin_row};

    /// The bundled posix store written out as another version of itself.
    fn posix_as_version(dir: &std::path::Path, version: &str) -> std::path::PathBuf {
        let b = ashlar::bundled::find("backup-posix").unwrap();
        let wasm = dir.join(format!("backup-posix-{version}.wasm"));
        std::fs::write(&wasm, b.wasm).unwrap();
        let manifest = b
            .manifest
            .replace("version = \"0.1.0\"", &format!("version = \"{version}\""));
        assert!(manifest.contains(version));
        std::fs::write(wasm.with_extension("toml"), manifest).unwrap();
        wasm
    }

    #[tokio::test]
    async fn the_backup_store_is_swapped_refused_and_rolled_back_by_its_reserved_name() {
        // The default posix store, plus an endpoint nothing listens on for the s3 driver.
        let dead = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let tmp = tempfile::tempdir().unwrap();
        let backups = tmp.path().join("data/backups");
        std::fs::create_dir_all(&backups).unwrap();
        let server = Server::start_in(
            tmp.path(),
            &format!(
                r#"
[backup]
driver = "backup-posix"
grants.directory = [{b:?}]
grants.http = ["http://127.0.0.1:{dead}"]
settings.backup_path = {b:?}
settings.endpoint = "http://127.0.0.1:{dead}"
"#,
                b = backups.display().to_string()
            ),
        );
        let admin = server.client("admin:ops");
        let row = plugin_row(&admin, "backup", "backup-driver").await;
        assert_eq!(row["plugin"], "backup-posix");
        assert_eq!(row["version"], "0.1.0");

        // A good new version takes over.
        let v2 = posix_as_version(&server.dir, "0.2.0");
        let r = admin
            .post(
                "/ashlar/v1/backends/backup/swap",
                json!({"wasm": v2, "probation_secs": 60}),
            )
            .await;
        assert_eq!(r.status, 200, "{}", r.body);
        assert_eq!(r.body["swap"]["from"], "backup-posix 0.1.0");
        assert_eq!(r.body["swap"]["to"], "backup-posix 0.2.0");
        assert_eq!(r.body["swap"]["part"], "backup");
        // Its probe made the container.
        assert!(backups.join("volumebackups").is_dir());
        let row = plugin_row(&admin, "backup", "backup-driver").await;
        assert_eq!(row["version"], "0.2.0");
        assert_eq!(row["previous"], "backup-posix 0.1.0");

        // One whose store does not answer is refused by its probe; the store keeps 0.2.0.
        let s3 = server.dir.join("backup-s3.wasm");
        let b = ashlar::bundled::find("backup-s3").unwrap();
        std::fs::write(&s3, b.wasm).unwrap();
        std::fs::write(s3.with_extension("toml"), b.manifest).unwrap();
        let r = admin
            .post("/ashlar/v1/backends/backup/swap", json!({"wasm": s3}))
            .await;
        assert_eq!(r.status, 400, "{}", r.body);
        let msg = r.error_message();
        assert!(
            msg.contains("check-for-setup-error") && msg.contains(&format!("127.0.0.1:{dead}")),
            "{msg}"
        );
        assert_eq!(
            plugin_row(&admin, "backup", "backup-driver").await["version"],
            "0.2.0"
        );

        // Rolled back by hand to what it replaced.
        let r = admin
            .post("/ashlar/v1/backends/backup/rollback", json!({}))
            .await;
        assert_eq!(r.status, 200, "{}", r.body);
        assert_eq!(r.body["rollback"]["to"], "backup-posix 0.1.0");
        assert_eq!(
            plugin_row(&admin, "backup", "backup-driver").await["version"],
            "0.1.0"
        );

        // A version that passes the swap's checks and then fails its health probes is
        // rolled back within its probation.
        let flaky = std::path::Path::new(crate::common::FIXTURES_DIR).join("backup-flaky.wasm");
        let r = admin
            .post(
                "/ashlar/v1/backends/backup/swap",
                json!({"wasm": flaky, "probation_secs": 60}),
            )
            .await;
        assert_eq!(r.status, 200, "{}", r.body);
        assert_eq!(r.body["swap"]["to"], "backup-flaky 9.9.9");
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        let rolled_back = loop {
            let r = admin.get("/ashlar/v1/plugins/events?backend=backup").await;
            let found = r.body["events"]
                .as_array()
                .unwrap()
                .iter()
                .find(|e| e["kind"] == "rolled-back" && e["from_version"] == "backup-flaky 9.9.9")
                .cloned();
            if let Some(e) = found {
                break e;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "no rollback: {}",
                r.body
            );
            // Probation probes once a second; ask again after one.
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        };
        assert!(
            rolled_back["reason"]
                .as_str()
                .unwrap()
                .contains("the backup-flaky fixture's store went away"),
            "{rolled_back}"
        );
        assert_eq!(
            plugin_row(&admin, "backup", "backup-driver").await["version"],
            "0.1.0"
        );

        // Each step is recorded under the store's name.
        let r = admin.get("/ashlar/v1/plugins/events?backend=backup").await;
        assert_eq!(r.status, 200, "{}", r.body);
        let mut kinds: Vec<&str> = r.body["events"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["kind"].as_str().unwrap())
            .collect();
        kinds.sort();
        assert_eq!(
            kinds,
            [
                "refused",
                "rolled-back",
                "rolled-back",
                "swapped",
                "swapped"
            ],
            "{}",
            r.body
        );
    }
}

/// `ashlar plugin inspect|validate` answer about backup drivers offline, against the
/// config's `[backup]`.
#[test]
fn plugin_inspect_and_validate_know_backup_drivers() {
    let ashlar = |args: &[&str]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_ashlar"))
            .args(args)
            .output()
            .unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned()
                + &String::from_utf8_lossy(&out.stderr),
        )
    };
    let (ok, out) = ashlar(&["plugin", "inspect", "backup-s3"]);
    assert!(ok, "{out}");
    assert!(out.contains("world:       backup-driver"), "{out}");
    assert!(out.contains("http  {endpoint}"), "{out}");
    assert!(
        out.contains("ashlar:driver/backup-driver-core@0.3.0"),
        "{out}"
    );
    let (ok, out) = ashlar(&["plugin", "inspect", "backup-posix"]);
    assert!(ok && out.contains("directory {backup_path}"), "{out}");

    let dir = tempfile::tempdir().unwrap();
    let (granted, other) = (dir.path().join("granted"), dir.path().join("other"));
    std::fs::create_dir(&granted).unwrap();
    std::fs::create_dir(&other).unwrap();
    let config = |path: &Path| {
        let file = dir.path().join("ashlar.toml");
        std::fs::write(
            &file,
            format!(
                "data_dir = {d:?}\n[backup]\ndriver = \"backup-posix\"\ngrants.directory = [{g:?}]\nsettings.backup_path = {p:?}\n",
                d = dir.path().join("data").display().to_string(),
                g = granted.display().to_string(),
                p = path.display().to_string()
            ),
        )
        .unwrap();
        file
    };
    let file = config(&granted);
    let (ok, out) = ashlar(&[
        "plugin",
        "validate",
        "backup-posix",
        "--config",
        file.to_str().unwrap(),
    ]);
    assert!(ok, "{out}");
    assert!(
        out.contains("backup store: every requested capability is granted")
            && out.contains("would load"),
        "{out}"
    );
    let file = config(&other);
    let (ok, out) = ashlar(&[
        "plugin",
        "validate",
        "backup-posix",
        "--config",
        file.to_str().unwrap(),
    ]);
    assert!(!ok, "{out}");
    assert!(
        out.contains("backup store: REFUSED")
            && out.contains("[backup.grants] directory")
            && out.contains("would NOT load"),
        "{out}"
    );
}
