//! Bindings for contract `ashlar:driver@0.2.0` (the latest): 0.1.0 plus the optional
//! `volume-driver-health` export. Frozen with the WIT it is generated from.

wasmtime::component::bindgen!({
    path: "../wit/since_v0.2.0",
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
pub const VERSION: semver::Version = semver::Version::new(0, 2, 0);
