//! Bindings for contract `ashlar:driver@0.2.0`: 0.1.0 plus the optional
//! `volume-driver-health` export, and the `target-driver` and `backup-driver` worlds.
//! Frozen with the WIT it is generated from. Its types differ from 0.3.0's; `compat`
//! converts between them. Its host interfaces forward to the latest implementation.

wasmtime::component::bindgen!({
    path: "../wit/since_v0.2.0",
    world: "volume-driver",
    imports: {
        // Sleeping past the call's deadline ends the call, as a trap.
        "ashlar:driver/clock.sleep-ms": trappable,
    },
    with: {
        "ashlar:driver/block.handle": crate::runtime::resources::BlockHandle,
    },
});

/// The contract version these bindings serve.
pub const VERSION: semver::Version = semver::Version::new(0, 2, 0);

super::forward::forward_host_calls!(crate::runtime::since_v0_2_0::ashlar::driver);

// 0.2.0's (and so 0.1.0's) `types` interface: only types, no functions.
impl ashlar::driver::types::Host for super::host_calls::HostState {}

/// The `target-driver` world of the same contract. Its host imports are the volume
/// world's, so one linker and one set of host-call implementations serve both.
pub mod target {
    wasmtime::component::bindgen!({
        path: "../wit/since_v0.2.0",
        world: "target-driver",
        with: {
            "ashlar:driver/types": crate::runtime::since_v0_2_0::ashlar::driver::types,
            "ashlar:driver/exec": crate::runtime::since_v0_2_0::ashlar::driver::exec,
            "ashlar:driver/block": crate::runtime::since_v0_2_0::ashlar::driver::block,
            "ashlar:driver/http": crate::runtime::since_v0_2_0::ashlar::driver::http,
            "ashlar:driver/log": crate::runtime::since_v0_2_0::ashlar::driver::log,
            "ashlar:driver/config": crate::runtime::since_v0_2_0::ashlar::driver::config,
            "ashlar:driver/clock": crate::runtime::since_v0_2_0::ashlar::driver::clock,
        },
    });
}

/// The `backup-driver` world of the same contract: the object side of a chunked backup.
/// Its host imports are the volume world's, as the target world's are.
pub mod backup {
    wasmtime::component::bindgen!({
        path: "../wit/since_v0.2.0",
        world: "backup-driver",
        with: {
            "ashlar:driver/types": crate::runtime::since_v0_2_0::ashlar::driver::types,
            "ashlar:driver/exec": crate::runtime::since_v0_2_0::ashlar::driver::exec,
            "ashlar:driver/block": crate::runtime::since_v0_2_0::ashlar::driver::block,
            "ashlar:driver/http": crate::runtime::since_v0_2_0::ashlar::driver::http,
            "ashlar:driver/log": crate::runtime::since_v0_2_0::ashlar::driver::log,
            "ashlar:driver/config": crate::runtime::since_v0_2_0::ashlar::driver::config,
            "ashlar:driver/clock": crate::runtime::since_v0_2_0::ashlar::driver::clock,
        },
    });
}
