//! A configured backend: its volume driver and, when it has one, its target driver, each
//! in a slot that a hot swap can switch while calls run.

use std::sync::{Arc, RwLock};

use crate::config::{BackendConfig, BackupConfig};
use crate::runtime::DriverPool;

/// A driver that can be swapped while calls run: a call takes the current pool once and
/// finishes on it; the one it replaced is kept for a rollback.
pub struct DriverSlot {
    current: RwLock<Arc<DriverPool>>,
    previous: RwLock<Option<Arc<DriverPool>>>,
}

impl DriverSlot {
    pub fn new(driver: Arc<DriverPool>) -> DriverSlot {
        DriverSlot {
            current: RwLock::new(driver),
            previous: RwLock::new(None),
        }
    }

    /// The driver new calls go to.
    pub fn driver(&self) -> Arc<DriverPool> {
        self.current.read().expect("driver lock").clone()
    }

    /// The driver a rollback would return to.
    pub fn previous(&self) -> Option<Arc<DriverPool>> {
        self.previous.read().expect("driver lock").clone()
    }

    /// Makes `next` current; the old one becomes what a rollback returns to.
    pub fn switch_to(&self, next: Arc<DriverPool>) -> Arc<DriverPool> {
        let mut current = self.current.write().expect("driver lock");
        let old = std::mem::replace(&mut *current, next);
        *self.previous.write().expect("driver lock") = Some(old.clone());
        old
    }

    /// Returns to the previous driver, if `expected` is still current (a probation that
    /// lost a race with a newer swap must not undo it).
    pub fn roll_back_from(&self, expected: &Arc<DriverPool>) -> Option<Arc<DriverPool>> {
        let mut current = self.current.write().expect("driver lock");
        if !Arc::ptr_eq(&current, expected) {
            return None;
        }
        let prev = self.previous.write().expect("driver lock").take()?;
        let broken = std::mem::replace(&mut *current, prev);
        Some(broken)
    }
}

/// One configured backend: its volume driver and, when it exports through one, its
/// target driver; each can be swapped on its own.
pub struct Backend {
    pub name: String,
    pub availability_zone: String,
    pub config: BackendConfig,
    pub volume: DriverSlot,
    /// The target driver that exports this backend's volumes, when the volume driver hands
    /// over a local device (`[backends.NAME.target]`).
    pub target: Option<DriverSlot>,
}

impl Backend {
    pub fn new(
        name: String,
        availability_zone: String,
        config: BackendConfig,
        driver: Arc<DriverPool>,
        target: Option<Arc<DriverPool>>,
    ) -> Backend {
        Backend {
            name,
            availability_zone,
            config,
            volume: DriverSlot::new(driver),
            target: target.map(DriverSlot::new),
        }
    }

    /// The volume driver new calls go to.
    pub fn driver(&self) -> Arc<DriverPool> {
        self.volume.driver()
    }

    /// The target driver new calls go to, if the backend has one.
    pub fn target(&self) -> Option<Arc<DriverPool>> {
        self.target.as_ref().map(DriverSlot::driver)
    }
}

/// The backup store: its `backup-driver` component in a slot a hot swap can switch, as a
/// backend's drivers are.
pub struct BackupBackend {
    pub config: BackupConfig,
    pub slot: DriverSlot,
}

/// The backends a host runs, by name: read by every call, added to and removed from at
/// runtime (`ashlar backend add|remove`). A reader takes the backend it needs once and
/// finishes on it, as a call does with a driver slot.
#[derive(Default)]
pub struct Backends(RwLock<std::collections::BTreeMap<String, Arc<Backend>>>);

impl Backends {
    pub fn new(backends: std::collections::BTreeMap<String, Backend>) -> Backends {
        Backends(RwLock::new(
            backends
                .into_iter()
                .map(|(name, b)| (name, Arc::new(b)))
                .collect(),
        ))
    }

    pub fn get(&self, name: &str) -> Option<Arc<Backend>> {
        self.0.read().expect("backends lock").get(name).cloned()
    }

    pub fn contains_key(&self, name: &str) -> bool {
        self.0.read().expect("backends lock").contains_key(name)
    }

    /// Every backend now, by name.
    pub fn iter(&self) -> std::vec::IntoIter<(String, Arc<Backend>)> {
        self.0
            .read()
            .expect("backends lock")
            .iter()
            .map(|(n, b)| (n.clone(), b.clone()))
            .collect::<Vec<_>>()
            .into_iter()
    }

    pub fn keys(&self) -> std::vec::IntoIter<String> {
        self.0
            .read()
            .expect("backends lock")
            .keys()
            .cloned()
            .collect::<Vec<_>>()
            .into_iter()
    }

    pub fn values(&self) -> std::vec::IntoIter<Arc<Backend>> {
        self.0
            .read()
            .expect("backends lock")
            .values()
            .cloned()
            .collect::<Vec<_>>()
            .into_iter()
    }

    /// Adds `backend`; false (and nothing changed) when one of its name runs already.
    pub fn insert(&self, backend: Backend) -> bool {
        let mut map = self.0.write().expect("backends lock");
        if map.contains_key(&backend.name) {
            return false;
        }
        map.insert(backend.name.clone(), Arc::new(backend));
        true
    }

    pub fn remove(&self, name: &str) -> Option<Arc<Backend>> {
        self.0.write().expect("backends lock").remove(name)
    }
}

impl IntoIterator for &Backends {
    type Item = (String, Arc<Backend>);
    type IntoIter = std::vec::IntoIter<(String, Arc<Backend>)>;
    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}
