//! Target drivers: export a block device or file over a protocol (Cinder's target helpers,
//! such as tgtadm or LIO), for a volume driver that only provides the local device.
//!
//! A target driver is a type implementing [`TargetDriver`] and registered with
//! [`register_target_driver!`](crate::register_target_driver). It reaches the world through
//! the same [`exec`](crate::exec), [`block`](crate::block), [`http`](crate::http),
//! [`log`](crate::log), [`config`](crate::config) and [`clock`](crate::clock) helpers as a
//! volume driver: the target world's bindings reuse the volume world's host-import types.

use std::any::Any;
use std::cell::RefCell;

use crate::{ConnectionInfo, Connector, HealthReport, ModelUpdate, Result, Volume};

#[doc(hidden)]
pub mod target_bindings {
    wit_bindgen::generate!({
        path: "../wit/since_v0.3.0",
        world: "target-driver",
        // The host imports and shared types are the volume world's, so one set of helpers
        // serves both kinds of driver.
        with: {
            "ashlar:driver/types@0.3.0": crate::bindings::ashlar::driver::types,
            "ashlar:driver/exec@0.3.0": crate::bindings::ashlar::driver::exec,
            "ashlar:driver/block@0.3.0": crate::bindings::ashlar::driver::block,
            "ashlar:driver/http@0.3.0": crate::bindings::ashlar::driver::http,
            "ashlar:driver/log@0.3.0": crate::bindings::ashlar::driver::log,
            "ashlar:driver/config@0.3.0": crate::bindings::ashlar::driver::config,
            "ashlar:driver/clock@0.3.0": crate::bindings::ashlar::driver::clock,
        },
        export_macro_name: "__export_target_driver",
        pub_export_macro: true,
        default_bindings_module: "ashlar_sdk::target::target_bindings",
        runtime_path: "ashlar_sdk::__wit_bindgen::rt",
    });
}

/// A Cinder target helper. One value of the implementing type lives per component
/// instance; the host never calls an instance from two threads at once.
///
/// The host pairs a target driver with a volume driver: it asks the volume driver for the
/// local device of a volume and hands its path to [`TargetDriver::create_export`].
pub trait TargetDriver: 'static {
    /// Makes the driver; called on the first call into a fresh instance.
    fn new() -> Self
    where
        Self: Sized;

    /// Reads config, prepares the target. Called once per instance before anything else.
    fn do_setup(&mut self) -> Result<()> {
        Ok(())
    }
    /// Fails with a message an operator can act on when the target is unusable.
    fn check_for_setup_error(&mut self) -> Result<()> {
        Ok(())
    }
    /// The health probe (contract 0.3.0); the default answers with
    /// [`TargetDriver::check_for_setup_error`].
    fn health(&mut self) -> Result<HealthReport> {
        Ok(HealthReport::of(self.check_for_setup_error()))
    }
    /// Exports `device_path` (the block device or file backing `volume`). Exporting a
    /// volume that is already exported returns the same model update.
    fn create_export(&mut self, volume: Volume, device_path: String) -> Result<ModelUpdate>;
    /// Removes the export; removing one that does not exist succeeds.
    fn remove_export(&mut self, volume: Volume) -> Result<()>;
    /// Lets the connector's host in and says how it reaches the export.
    fn initialize_connection(
        &mut self,
        volume: Volume,
        connector: Connector,
    ) -> Result<ConnectionInfo>;
    /// Shuts the connector's host out again; with no connector, every host (force detach).
    fn terminate_connection(&mut self, volume: Volume, connector: Option<Connector>) -> Result<()>;
}

thread_local! {
    static TARGET: RefCell<Option<Box<dyn Any>>> = const { RefCell::new(None) };
}

/// Runs `f` on this instance's target driver, making it on first use.
fn with_target<T: TargetDriver, R>(f: impl FnOnce(&mut T) -> R) -> R {
    TARGET.with(|cell| {
        let mut slot = cell.borrow_mut();
        let driver = slot.get_or_insert_with(|| Box::new(T::new()));
        let driver = driver
            .downcast_mut::<T>()
            .expect("one component registers exactly one target driver type");
        f(driver)
    })
}

/// Connects a [`TargetDriver`] to the generated component exports.
#[doc(hidden)]
pub struct TargetDriverAdapter<T>(std::marker::PhantomData<T>);

impl<T: TargetDriver> target_bindings::exports::ashlar::driver::target_driver_core::Guest
    for TargetDriverAdapter<T>
{
    fn do_setup() -> Result<()> {
        with_target::<T, _>(|d| d.do_setup())
    }
    fn check_for_setup_error() -> Result<()> {
        with_target::<T, _>(|d| d.check_for_setup_error())
    }
    fn health() -> Result<HealthReport> {
        with_target::<T, _>(|d| d.health())
    }
    fn create_export(volume: Volume, device_path: String) -> Result<ModelUpdate> {
        with_target::<T, _>(|d| d.create_export(volume, device_path))
    }
    fn remove_export(volume: Volume) -> Result<()> {
        with_target::<T, _>(|d| d.remove_export(volume))
    }
    fn initialize_connection(volume: Volume, connector: Connector) -> Result<ConnectionInfo> {
        with_target::<T, _>(|d| d.initialize_connection(volume, connector))
    }
    fn terminate_connection(volume: Volume, connector: Option<Connector>) -> Result<()> {
        with_target::<T, _>(|d| d.terminate_connection(volume, connector))
    }
}

/// Registers `T` as this component's target driver (world `target-driver`).
///
/// ```ignore
/// struct MyTarget;
/// impl ashlar_sdk::TargetDriver for MyTarget { /* … */ }
/// ashlar_sdk::register_target_driver!(MyTarget);
/// ```
#[macro_export]
macro_rules! register_target_driver {
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
        type __AshlarTargetDriver = $crate::target::TargetDriverAdapter<$driver>;
        #[cfg(target_arch = "wasm32")]
        $crate::target::target_bindings::__export_target_driver!(
            __AshlarTargetDriver with_types_in $crate::target::target_bindings
        );
    };
}
