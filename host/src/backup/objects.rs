//! The [`ObjectStore`](super::ObjectStore) over a `backup-driver` component's pool: each
//! call is one driver call, bound to one container.
//!
//! The container is created (`put-container`, which tolerates an existing one) before the
//! first call that needs it, once per driver: a swap to another store creates it there on
//! the next call. The driver's `not-found` becomes [`StoreError::NotFound`] naming the
//! object; listings are read page by page until the driver answers an empty page. Calls
//! block and take one of the pool's bounded instances each, so the engine may call from
//! as many threads as it likes.

use std::sync::{Arc, Mutex, Weak};

use super::{ObjectInfo, ObjectStore, StoreError};
use crate::runtime::{CallError, DriverFailure, DriverPool};

/// Objects asked for per `list-objects` call.
pub const LIST_PAGE: u32 = 1000;

/// Where the store's current driver comes from: fixed, or a slot a hot swap switches.
type CurrentDriver = Box<dyn Fn() -> Arc<DriverPool> + Send + Sync>;

/// One container of a backup store, reached through its backup driver.
pub struct DriverObjects {
    current: CurrentDriver,
    container: String,
    /// The driver that last created the container.
    ready: Mutex<Weak<DriverPool>>,
}

impl DriverObjects {
    /// The container `container` of the store `current()` answers for; each call asks for
    /// the current driver once, so a swap takes effect at the next call.
    pub fn new(
        current: impl Fn() -> Arc<DriverPool> + Send + Sync + 'static,
        container: impl Into<String>,
    ) -> Self {
        DriverObjects {
            current: Box::new(current),
            container: container.into(),
            ready: Mutex::new(Weak::new()),
        }
    }

    /// The container of one fixed driver.
    pub fn fixed(pool: Arc<DriverPool>, container: impl Into<String>) -> Self {
        Self::new(move || pool.clone(), container)
    }

    pub fn container(&self) -> &str {
        &self.container
    }

    /// The current driver, with the container made on it.
    fn driver(&self) -> Result<Arc<DriverPool>, StoreError> {
        let pool = (self.current)();
        let made = Weak::ptr_eq(
            &self.ready.lock().expect("ready lock"),
            &Arc::downgrade(&pool),
        );
        if !made {
            self.make_container(&pool)?;
        }
        Ok(pool)
    }

    fn make_container(&self, pool: &Arc<DriverPool>) -> Result<(), StoreError> {
        pool.put_container(&self.container)
            .map_err(|e| failed(&format!("creating container {}", self.container), e))?;
        *self.ready.lock().expect("ready lock") = Arc::downgrade(pool);
        Ok(())
    }
}

/// A driver's failure in words for an operator: what was being done, by which driver.
fn failed(doing: &str, e: CallError) -> StoreError {
    StoreError::Failed(format!("backup store: {doing}: {e}"))
}

fn not_found(e: &CallError) -> bool {
    matches!(e, CallError::Driver(DriverFailure::NotFound(_)))
}

impl ObjectStore for DriverObjects {
    fn put(&self, name: &str, data: &[u8]) -> Result<(), StoreError> {
        let pool = self.driver()?;
        match pool.put_object(&self.container, name, data) {
            Ok(()) => Ok(()),
            // The container went away under us (removed by hand): make it again, once.
            Err(e) if not_found(&e) => {
                self.make_container(&pool)?;
                pool.put_object(&self.container, name, data)
                    .map_err(|e| failed(&format!("storing object {name}"), e))
            }
            Err(e) => Err(failed(&format!("storing object {name}"), e)),
        }
    }

    fn get(&self, name: &str) -> Result<Vec<u8>, StoreError> {
        let pool = (self.current)();
        pool.get_object(&self.container, name).map_err(|e| {
            if not_found(&e) {
                StoreError::NotFound(name.to_string())
            } else {
                failed(&format!("reading object {name}"), e)
            }
        })
    }

    fn delete(&self, name: &str) -> Result<(), StoreError> {
        let pool = (self.current)();
        match pool.delete_object(&self.container, name) {
            Ok(()) => Ok(()),
            Err(e) if not_found(&e) => Ok(()),
            Err(e) => Err(failed(&format!("deleting object {name}"), e)),
        }
    }

    fn list(&self, prefix: &str) -> Result<Vec<ObjectInfo>, StoreError> {
        let pool = (self.current)();
        let mut out: Vec<ObjectInfo> = Vec::new();
        loop {
            let marker = out.last().map(|o| o.name.as_str());
            let page = match pool.list_objects(&self.container, prefix, marker, LIST_PAGE) {
                Ok(page) => page,
                // No container yet: nothing was ever stored in it.
                Err(e) if not_found(&e) => Vec::new(),
                Err(e) => return Err(failed(&format!("listing objects under `{prefix}`"), e)),
            };
            if page.is_empty() {
                return Ok(out);
            }
            // A driver must answer in name order after the marker; one that does not would
            // page forever.
            let last = out.last().map(|o| o.name.clone());
            for o in page {
                if last.as_ref().is_some_and(|l| o.name <= *l)
                    || out.last().is_some_and(|p| o.name <= p.name)
                    || !o.name.starts_with(prefix)
                {
                    return Err(StoreError::Failed(format!(
                        "backup store: listing objects under `{prefix}`: the driver answered \
                         `{}` out of order or outside the prefix",
                        o.name
                    )));
                }
                out.push(ObjectInfo {
                    name: o.name,
                    size: o.size,
                });
            }
        }
    }
}
