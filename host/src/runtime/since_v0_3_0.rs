//! Bindings for contract `ashlar:driver@0.3.0` (the latest; see `wit/CHANGELOG.md`): model
//! updates that can clear a field and move a volume to another pool, retype with a model
//! update, manageable snapshots, integer lists, QoS specs, and `health` in every world.
//! Frozen with the WIT it is generated from. The host calls (`host_calls`) implement these
//! bindings' imports; older versions forward to them.

wasmtime::component::bindgen!({
    path: "../wit/since_v0.3.0",
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
pub const VERSION: semver::Version = semver::Version::new(0, 3, 0);

/// The `target-driver` world of the same contract. Its host imports are the volume
/// world's, so one linker and one set of host-call implementations serve both.
pub mod target {
    wasmtime::component::bindgen!({
        path: "../wit/since_v0.3.0",
        world: "target-driver",
        with: {
            "ashlar:driver/types": crate::runtime::since_v0_3_0::ashlar::driver::types,
            "ashlar:driver/exec": crate::runtime::since_v0_3_0::ashlar::driver::exec,
            "ashlar:driver/block": crate::runtime::since_v0_3_0::ashlar::driver::block,
            "ashlar:driver/http": crate::runtime::since_v0_3_0::ashlar::driver::http,
            "ashlar:driver/log": crate::runtime::since_v0_3_0::ashlar::driver::log,
            "ashlar:driver/config": crate::runtime::since_v0_3_0::ashlar::driver::config,
            "ashlar:driver/clock": crate::runtime::since_v0_3_0::ashlar::driver::clock,
        },
    });
}

/// The `backup-driver` world of the same contract: the object side of a chunked backup.
/// Its host imports are the volume world's, as the target world's are.
pub mod backup {
    wasmtime::component::bindgen!({
        path: "../wit/since_v0.3.0",
        world: "backup-driver",
        with: {
            "ashlar:driver/types": crate::runtime::since_v0_3_0::ashlar::driver::types,
            "ashlar:driver/exec": crate::runtime::since_v0_3_0::ashlar::driver::exec,
            "ashlar:driver/block": crate::runtime::since_v0_3_0::ashlar::driver::block,
            "ashlar:driver/http": crate::runtime::since_v0_3_0::ashlar::driver::http,
            "ashlar:driver/log": crate::runtime::since_v0_3_0::ashlar::driver::log,
            "ashlar:driver/config": crate::runtime::since_v0_3_0::ashlar::driver::config,
            "ashlar:driver/clock": crate::runtime::since_v0_3_0::ashlar::driver::clock,
        },
    });
}
