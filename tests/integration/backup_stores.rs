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
    let pool = posix_spec(dir.path()).load(&rt).unwrap();
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
    assert!(made <= u64::from(Limits::default().instances), "{made}");
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
