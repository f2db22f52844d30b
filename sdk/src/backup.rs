//! Backup drivers: the object side of a chunked backup (Cinder's `backup_driver`). The
//! host chunks, hashes, compresses and decides what an incremental stores; a backup driver
//! only moves named objects in and out of a container of its store.
//!
//! A backup driver is a type implementing [`BackupDriver`] and registered with
//! [`register_backup_driver!`](crate::register_backup_driver). It reaches the world through
//! the same [`exec`](crate::exec), [`block`](crate::block), [`http`](crate::http),
//! [`log`](crate::log), [`config`](crate::config) and [`clock`](crate::clock) helpers as a
//! volume driver, and through the directories the operator granted it (plain `std::fs`
//! under the granted path; nothing else is visible).

use std::any::Any;
use std::cell::RefCell;

use crate::{HealthReport, Result};

#[doc(hidden)]
pub mod backup_bindings {
    wit_bindgen::generate!({
        path: "../wit/since_v0.3.0",
        world: "backup-driver",
        // The host imports and shared types are the volume world's, so one set of helpers
        // serves every kind of driver.
        with: {
            "ashlar:driver/types@0.3.0": crate::bindings::ashlar::driver::types,
            "ashlar:driver/exec@0.3.0": crate::bindings::ashlar::driver::exec,
            "ashlar:driver/block@0.3.0": crate::bindings::ashlar::driver::block,
            "ashlar:driver/http@0.3.0": crate::bindings::ashlar::driver::http,
            "ashlar:driver/log@0.3.0": crate::bindings::ashlar::driver::log,
            "ashlar:driver/config@0.3.0": crate::bindings::ashlar::driver::config,
            "ashlar:driver/clock@0.3.0": crate::bindings::ashlar::driver::clock,
        },
        export_macro_name: "__export_backup_driver",
        pub_export_macro: true,
        default_bindings_module: "ashlar_sdk::backup::backup_bindings",
        runtime_path: "ashlar_sdk::__wit_bindgen::rt",
    });
}

pub use backup_bindings::exports::ashlar::driver::backup_driver_core::ObjectInfo;

/// A backup store. One value of the implementing type lives per component instance; the
/// host never calls an instance from two threads at once, but runs several instances at
/// once, so two calls may touch the same container concurrently.
pub trait BackupDriver: 'static {
    /// Makes the driver; called on the first call into a fresh instance.
    fn new() -> Self
    where
        Self: Sized;

    /// Reads config, prepares the store. Called once per instance before anything else.
    fn do_setup(&mut self) -> Result<()> {
        Ok(())
    }
    /// Fails with a message an operator can act on when the store is unusable.
    fn check_for_setup_error(&mut self) -> Result<()> {
        Ok(())
    }
    /// The health probe (contract 0.3.0); the default answers with
    /// [`BackupDriver::check_for_setup_error`].
    fn health(&mut self) -> Result<HealthReport> {
        Ok(HealthReport::of(self.check_for_setup_error()))
    }
    /// Creates `container` if it is missing; an existing one is fine.
    fn put_container(&mut self, container: String) -> Result<()>;
    /// Stores `data` as `name`, replacing an object of that name. When it returns, the
    /// object is durable.
    fn put_object(&mut self, container: String, name: String, data: Vec<u8>) -> Result<()>;
    /// The whole object; `not-found` when there is none.
    fn get_object(&mut self, container: String, name: String) -> Result<Vec<u8>>;
    /// Removes the object; removing a missing one succeeds.
    fn delete_object(&mut self, container: String, name: String) -> Result<()>;
    /// Up to `limit` objects whose names start with `prefix` and sort after `marker`, in
    /// name order (byte order).
    fn list_objects(
        &mut self,
        container: String,
        prefix: String,
        marker: Option<String>,
        limit: u32,
    ) -> Result<Vec<ObjectInfo>>;
}

thread_local! {
    static BACKUP: RefCell<Option<Box<dyn Any>>> = const { RefCell::new(None) };
}

/// Runs `f` on this instance's backup driver, making it on first use.
fn with_backup<T: BackupDriver, R>(f: impl FnOnce(&mut T) -> R) -> R {
    BACKUP.with(|cell| {
        let mut slot = cell.borrow_mut();
        let driver = slot.get_or_insert_with(|| Box::new(T::new()));
        let driver = driver
            .downcast_mut::<T>()
            .expect("one component registers exactly one backup driver type");
        f(driver)
    })
}

/// Connects a [`BackupDriver`] to the generated component exports.
#[doc(hidden)]
pub struct BackupDriverAdapter<T>(std::marker::PhantomData<T>);

impl<T: BackupDriver> backup_bindings::exports::ashlar::driver::backup_driver_core::Guest
    for BackupDriverAdapter<T>
{
    fn do_setup() -> Result<()> {
        with_backup::<T, _>(|d| d.do_setup())
    }
    fn check_for_setup_error() -> Result<()> {
        with_backup::<T, _>(|d| d.check_for_setup_error())
    }
    fn health() -> Result<HealthReport> {
        with_backup::<T, _>(|d| d.health())
    }
    fn put_container(container: String) -> Result<()> {
        with_backup::<T, _>(|d| d.put_container(container))
    }
    fn put_object(container: String, name: String, data: Vec<u8>) -> Result<()> {
        with_backup::<T, _>(|d| d.put_object(container, name, data))
    }
    fn get_object(container: String, name: String) -> Result<Vec<u8>> {
        with_backup::<T, _>(|d| d.get_object(container, name))
    }
    fn delete_object(container: String, name: String) -> Result<()> {
        with_backup::<T, _>(|d| d.delete_object(container, name))
    }
    fn list_objects(
        container: String,
        prefix: String,
        marker: Option<String>,
        limit: u32,
    ) -> Result<Vec<ObjectInfo>> {
        with_backup::<T, _>(|d| d.list_objects(container, prefix, marker, limit))
    }
}

/// Registers `T` as this component's backup driver (world `backup-driver`).
///
/// ```ignore
/// struct MyStore;
/// impl ashlar_sdk::BackupDriver for MyStore { /* … */ }
/// ashlar_sdk::register_backup_driver!(MyStore);
/// ```
#[macro_export]
macro_rules! register_backup_driver {
    ($driver:ty) => {
        // Exports exist only in the component; natively the driver is plain Rust that
        // tests call directly.
        // A reference from the driver's own code, so the linker always takes the SDK's
        // object that carries the contract-version section (an unreferenced object of a
        // library is left out, and its custom sections with it).
        #[cfg(target_arch = "wasm32")]
        #[used]
        static __ASHLAR_CONTRACT_VERSION_KEPT: &[u8; 5] = &$crate::CONTRACT_VERSION_SECTION;
        #[cfg(target_arch = "wasm32")]
        type __AshlarBackupDriver = $crate::backup::BackupDriverAdapter<$driver>;
        #[cfg(target_arch = "wasm32")]
        $crate::backup::backup_bindings::__export_backup_driver!(
            __AshlarBackupDriver with_types_in $crate::backup::backup_bindings
        );
    };
}
