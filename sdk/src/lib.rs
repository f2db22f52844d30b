//! The Ashlar driver SDK.
//!
//! A volume driver is a type implementing [`VolumeDriver`] and registered with
//! [`register_volume_driver!`]. Only [`VolumeDriver::get_volume_stats`],
//! [`VolumeDriver::create_volume`], [`VolumeDriver::delete_volume`] and
//! [`VolumeDriver::initialize_connection`] are required; every other method answers
//! "not supported" until the driver overrides it, so a driver author writes only what
//! their backend can do.
//!
//! The driver reaches the outside world only through [`exec`], [`block`], [`http`],
//! [`log`], [`config`] and [`clock`]; each call is checked by the host against what the
//! operator granted the backend.
//!
//! A target driver (Cinder's target helpers: tgtadm, LIO, …) exports the device a paired
//! volume driver provides; it implements [`TargetDriver`] and is registered with
//! [`register_target_driver!`] (see [`target`]). A backup driver (Cinder's
//! `backup_driver`) moves the host's backup objects in and out of a store; it implements
//! [`BackupDriver`] and is registered with [`register_backup_driver!`] (see [`backup`]).
//!
//! Build with `cargo build --target wasm32-wasip2 --release`; the result is a component
//! carrying the contract version it was built against ([`CONTRACT_VERSION`]).

extern crate self as ashlar_sdk;

use std::any::Any;
use std::cell::RefCell;

#[doc(hidden)]
pub mod bindings {
    wit_bindgen::generate!({
        path: "../wit/since_v0.3.0",
        world: "volume-driver",
        export_macro_name: "__export_volume_driver",
        pub_export_macro: true,
        default_bindings_module: "ashlar_sdk::bindings",
        runtime_path: "ashlar_sdk::__wit_bindgen::rt",
        additional_derives: [PartialEq],
    });
}

#[doc(hidden)]
pub use wit_bindgen as __wit_bindgen;

mod host;
pub use host::{block, clock, config, exec, http, log};

pub mod target;
pub use target::TargetDriver;

pub mod backup;
pub use backup::BackupDriver;

pub mod manage;

pub use bindings::ashlar::driver::types::{
    ConnectionInfo, Connector, DriverError, FieldUpdate, HealthReport, ManageableSnapshot,
    ManageableVolume, ModelUpdate, PoolStats, Snapshot, Value, Volume, VolumeStats,
};

/// Checks an id the host passed (a volume's or a snapshot's) before it becomes part of a
/// file, LV or target name: a plain UUID-like token of letters, digits and `-`.
pub fn check_id(kind: &str, id: &str) -> Result<(), DriverError> {
    if !id.is_empty()
        && id.len() <= 64
        && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
    {
        Ok(())
    } else {
        Err(DriverError::invalid_argument(format!(
            "{kind} id `{id}` is not a valid id"
        )))
    }
}

/// A boolean setting (`true`/`yes`/`1`, `false`/`no`/`0`, any case), `default` when absent;
/// the error names the key.
pub fn parse_bool(key: &str, value: Option<String>, default: bool) -> Result<bool, DriverError> {
    match value.as_deref().map(str::to_ascii_lowercase).as_deref() {
        None => Ok(default),
        Some("true" | "yes" | "1") => Ok(true),
        Some("false" | "no" | "0") => Ok(false),
        Some(other) => Err(DriverError::invalid_argument(format!(
            "{key} `{other}` must be true or false"
        ))),
    }
}

/// The contract (WIT package `ashlar:driver`) version this SDK builds drivers against.
pub const CONTRACT_VERSION: &str = "0.3.0";

/// The same version, stamped into a custom section of every driver built with this SDK so
/// that the host can refuse a component it cannot serve before instantiating it.
#[cfg(target_arch = "wasm32")]
#[allow(unsafe_code)] // a custom section is how the host reads the version before instantiating
#[unsafe(link_section = "ashlar:contract-version")]
#[used]
#[doc(hidden)]
pub static CONTRACT_VERSION_SECTION: [u8; 5] = *b"0.3.0";

/// What every driver method returns.
pub type Result<T, E = DriverError> = std::result::Result<T, E>;

impl DriverError {
    pub fn not_found(msg: impl Into<String>) -> Self {
        Self::NotFound(msg.into())
    }
    pub fn invalid_argument(msg: impl Into<String>) -> Self {
        Self::InvalidArgument(msg.into())
    }
    pub fn not_supported(msg: impl Into<String>) -> Self {
        Self::NotSupported(msg.into())
    }
    pub fn capacity_exceeded(msg: impl Into<String>) -> Self {
        Self::CapacityExceeded(msg.into())
    }
    pub fn backend_unavailable(msg: impl Into<String>) -> Self {
        Self::BackendUnavailable(msg.into())
    }
    pub fn internal(msg: impl Into<String>) -> Self {
        Self::Internal(msg.into())
    }
}

impl ModelUpdate {
    /// A model update that only records where the volume or snapshot lives.
    pub fn at(provider_location: impl Into<String>) -> Self {
        Self {
            provider_location: FieldUpdate::Set(provider_location.into()),
            ..Self::default()
        }
    }

    /// Records `auth` (CHAP credentials, say) as the volume's `provider_auth`.
    pub fn with_auth(mut self, auth: impl Into<String>) -> Self {
        self.provider_auth = FieldUpdate::Set(auth.into());
        self
    }

    /// Forgets the volume's `provider_auth` (an export's credentials, once it is removed).
    pub fn clearing_auth(mut self) -> Self {
        self.provider_auth = FieldUpdate::Clear;
        self
    }

    /// Forgets the volume's `provider_location`.
    pub fn clearing_location(mut self) -> Self {
        self.provider_location = FieldUpdate::Clear;
        self
    }

    /// Moves the volume to `pool` of the same backend (a retype done in place).
    pub fn in_pool(mut self, pool: impl Into<String>) -> Self {
        self.pool = Some(pool.into());
        self
    }
}

/// Leaves every field as it is.
impl Default for ModelUpdate {
    fn default() -> Self {
        Self {
            provider_location: FieldUpdate::Keep,
            provider_auth: FieldUpdate::Keep,
            metadata: Vec::new(),
            metadata_removed: Vec::new(),
            pool: None,
        }
    }
}

impl HealthReport {
    /// Healthy when `check` passed, else unhealthy with its error as the detail.
    pub fn of(check: Result<()>) -> HealthReport {
        match check {
            Ok(()) => HealthReport {
                healthy: true,
                detail: String::new(),
            },
            Err(e) => HealthReport {
                healthy: false,
                detail: format!("{e:?}"),
            },
        }
    }
}

fn unsupported<T>(what: &str) -> Result<T> {
    Err(DriverError::NotSupported(format!(
        "this driver does not support {what}"
    )))
}

/// A Cinder volume driver. One value of the implementing type lives per component
/// instance; the host never calls an instance from two threads at once.
pub trait VolumeDriver: 'static {
    /// Makes the driver; called on the first call into a fresh instance.
    fn new() -> Self
    where
        Self: Sized;

    /// Reads config, prepares the backend. Called once per instance before anything else.
    fn do_setup(&mut self) -> Result<()> {
        Ok(())
    }
    /// Fails with a message an operator can act on when the backend is unusable.
    fn check_for_setup_error(&mut self) -> Result<()> {
        Ok(())
    }
    /// Capacity and capabilities of each pool (Cinder's `get_volume_stats`).
    fn get_volume_stats(&mut self, refresh: bool) -> Result<VolumeStats>;

    fn create_volume(&mut self, volume: Volume) -> Result<ModelUpdate>;
    fn delete_volume(&mut self, volume: Volume) -> Result<()>;
    fn extend_volume(&mut self, _volume: Volume, _new_size_gib: u64) -> Result<()> {
        unsupported("extending volumes")
    }

    fn create_snapshot(&mut self, _snapshot: Snapshot, _volume: Volume) -> Result<ModelUpdate> {
        unsupported("snapshots")
    }
    fn delete_snapshot(&mut self, _snapshot: Snapshot, _volume: Volume) -> Result<()> {
        unsupported("snapshots")
    }
    fn create_volume_from_snapshot(
        &mut self,
        _volume: Volume,
        _snapshot: Snapshot,
    ) -> Result<ModelUpdate> {
        unsupported("creating a volume from a snapshot")
    }
    fn create_cloned_volume(&mut self, _volume: Volume, _source: Volume) -> Result<ModelUpdate> {
        unsupported("cloning volumes")
    }

    /// Most file and array drivers need no export step; the default does nothing.
    fn create_export(
        &mut self,
        _volume: Volume,
        _connector: Option<Connector>,
    ) -> Result<ModelUpdate> {
        Ok(ModelUpdate::default())
    }
    fn remove_export(&mut self, _volume: Volume) -> Result<()> {
        Ok(())
    }
    fn initialize_connection(
        &mut self,
        volume: Volume,
        connector: Connector,
    ) -> Result<ConnectionInfo>;
    fn terminate_connection(
        &mut self,
        _volume: Volume,
        _connector: Option<Connector>,
    ) -> Result<()> {
        Ok(())
    }

    fn revert_to_snapshot(&mut self, _volume: Volume, _snapshot: Snapshot) -> Result<()> {
        unsupported("reverting to a snapshot")
    }
    /// Cinder's `manage_existing`: take over the storage `reference` names (Cinder's
    /// `ref` as JSON text, see [`manage::Reference`]) as `volume`, usually by renaming it
    /// to the volume's own name; `volume.size_gib` is what
    /// [`VolumeDriver::manage_existing_get_size`] answered.
    fn manage_existing(&mut self, _volume: Volume, _reference: String) -> Result<ModelUpdate> {
        unsupported("managing existing volumes")
    }
    /// The size in GiB, rounded up, of what `reference` names; not-found when there is
    /// nothing such.
    fn manage_existing_get_size(&mut self, _volume: Volume, _reference: String) -> Result<u64> {
        unsupported("managing existing volumes")
    }
    /// Cinder's `unmanage`: stop managing `volume`, leaving its storage.
    fn unmanage(&mut self, _volume: Volume) -> Result<()> {
        unsupported("unmanaging volumes")
    }
    /// What the backend holds that could be managed, each with its reference in the
    /// same JSON form ([`ManageableVolume::named`] builds one).
    fn get_manageable_volumes(&mut self) -> Result<Vec<ManageableVolume>> {
        unsupported("listing manageable volumes")
    }
    /// The snapshots the backend holds that could be managed (contract 0.3.0); the host
    /// lists none for a driver that answers not-supported.
    fn get_manageable_snapshots(&mut self) -> Result<Vec<ManageableSnapshot>> {
        unsupported("listing manageable snapshots")
    }
    /// A cheap "can you serve?" the host asks as its health probe (contract 0.2.0). The
    /// default answers with [`VolumeDriver::check_for_setup_error`].
    fn health(&mut self) -> Result<HealthReport> {
        Ok(HealthReport::of(self.check_for_setup_error()))
    }

    /// Changes the volume in place to suit the new type and answers what to record
    /// (`ModelUpdate::default()` for nothing, [`ModelUpdate::in_pool`] for a pool it moved
    /// to); `None` asks the host to migrate it.
    fn retype(
        &mut self,
        _volume: Volume,
        _new_type_name: String,
        _new_extra_specs: Vec<(String, String)>,
    ) -> Result<Option<ModelUpdate>> {
        Ok(None)
    }
}

thread_local! {
    static DRIVER: RefCell<Option<Box<dyn Any>>> = const { RefCell::new(None) };
}

/// Runs `f` on this instance's driver, making it on first use.
fn with_driver<T: VolumeDriver, R>(f: impl FnOnce(&mut T) -> R) -> R {
    DRIVER.with(|cell| {
        let mut slot = cell.borrow_mut();
        let driver = slot.get_or_insert_with(|| Box::new(T::new()));
        let driver = driver
            .downcast_mut::<T>()
            .expect("one component registers exactly one volume driver type");
        f(driver)
    })
}

/// Connects a [`VolumeDriver`] to the generated component exports.
#[doc(hidden)]
pub struct VolumeDriverAdapter<T>(std::marker::PhantomData<T>);

mod adapter;

/// Registers `T` as this component's volume driver.
///
/// ```ignore
/// struct MyDriver;
/// impl ashlar_sdk::VolumeDriver for MyDriver { /* … */ }
/// ashlar_sdk::register_volume_driver!(MyDriver);
/// ```
#[macro_export]
macro_rules! register_volume_driver {
    ($driver:ty) => {
        // Exports exist only in the component; natively the driver is plain Rust that
        // tests and benchmarks call directly.
        // A reference from the driver's own code, so the linker always takes the SDK's
        // object that carries the contract-version section (an unreferenced object of a
        // library is left out, and its custom sections with it).
        #[cfg(target_arch = "wasm32")]
        #[used]
        static __ASHLAR_CONTRACT_VERSION_KEPT: &[u8; 5] = &$crate::CONTRACT_VERSION_SECTION;
        #[cfg(target_arch = "wasm32")]
        type __AshlarVolumeDriver = $crate::VolumeDriverAdapter<$driver>;
        #[cfg(target_arch = "wasm32")]
        $crate::bindings::__export_volume_driver!(__AshlarVolumeDriver with_types_in $crate::bindings);
    };
}
