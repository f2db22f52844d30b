//! Bindings for contract `ashlar:driver@0.1.0`. Frozen with the WIT it is generated from.

wasmtime::component::bindgen!({
    path: "../wit/since_v0.1.0",
    world: "volume-driver",
    imports: {
        // Sleeping past the call's deadline ends the call, as a trap.
        "ashlar:driver/clock.sleep-ms": trappable,
    },
    with: {
        "ashlar:driver/block.handle": crate::runtime::host_calls::BlockHandle,
    },
});

/// The contract version these bindings serve.
pub const VERSION: semver::Version = semver::Version::new(0, 1, 0);

/// The exported interface every volume driver of this version implements.
pub const CORE_EXPORT: &str = "ashlar:driver/volume-driver-core@0.1.0";
