//! Bindings for contract `ashlar:driver@0.1.0`. Frozen with the WIT it is generated from.
//!
//! Its `types` interface is structurally 0.2.0's, so it maps to those bindings' types and
//! a 0.1.0 driver is called as a 0.2.0 one is (see `compat` for how both are served from
//! the latest types). The host interfaces keep their own 0.1.0 names (the component
//! imports them by version) and forward to the latest implementation (`forward`).

wasmtime::component::bindgen!({
    path: "../wit/since_v0.1.0",
    world: "volume-driver",
    imports: {
        "ashlar:driver/clock.sleep-ms": trappable,
    },
    with: {
        "ashlar:driver/types": super::since_v0_2_0::ashlar::driver::types,
        "ashlar:driver/block.handle": crate::runtime::resources::BlockHandle,
    },
});

/// The contract version these bindings serve.
pub const VERSION: semver::Version = semver::Version::new(0, 1, 0);

super::forward::forward_host_calls!(crate::runtime::since_v0_1_0::ashlar::driver);
