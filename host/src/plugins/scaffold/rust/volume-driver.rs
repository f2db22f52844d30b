//! {{name}}: an Ashlar volume driver.
//!
//! The four methods below are what every volume driver must answer; until they are
//! written they answer "not supported". Every optional feature (extend, snapshots, clones,
//! revert, manage, retype, …) answers "not supported" too until you override it: see the
//! `VolumeDriver` trait of `ashlar-sdk` for the full list. The guide, section by section,
//! is docs/driver-guide.md in Ashlar's source.

use ashlar_sdk::{
    ConnectionInfo, Connector, DriverError, ModelUpdate, Result, Volume, VolumeDriver,
    VolumeStats, config, log,
};

pub struct {{type}} {
    /// The backend's settings, read in `do_setup`.
    example_setting: Option<String>,
}

/// What a stub answers until it is written.
fn not_written(method: &str) -> DriverError {
    DriverError::not_supported(format!(
        "{{name}} does not implement {method} yet (docs/driver-guide.md, \"{method}\")"
    ))
}

impl VolumeDriver for {{type}} {
    fn new() -> Self {
        {{type}} {
            example_setting: None,
        }
    }

    /// Read settings (`config::get`, `config::require`) and prepare the backend.
    fn do_setup(&mut self) -> Result<()> {
        self.example_setting = config::get("example_setting");
        log::info(&format!(
            "{{name}} is set up (example_setting: {:?})",
            self.example_setting
        ));
        Ok(())
    }

    /// Required: capacity and capabilities of each pool, in Cinder's stats keys
    /// (docs/driver-guide.md, "get-volume-stats").
    fn get_volume_stats(&mut self, _refresh: bool) -> Result<VolumeStats> {
        Err(not_written("get-volume-stats"))
    }

    /// Required: make the volume's storage; answer where it lives with
    /// `ModelUpdate::at(location)` (docs/driver-guide.md, "create-volume").
    fn create_volume(&mut self, _volume: Volume) -> Result<ModelUpdate> {
        Err(not_written("create-volume"))
    }

    /// Required: remove it; a volume already gone is deleted
    /// (docs/driver-guide.md, "delete-volume").
    fn delete_volume(&mut self, _volume: Volume) -> Result<()> {
        Err(not_written("delete-volume"))
    }

    /// Required: how a host reaches the volume (Cinder's connection info); asked with
    /// `local = true` in the connector, the volume's local device for a target driver
    /// (docs/driver-guide.md, "initialize-connection").
    fn initialize_connection(
        &mut self,
        _volume: Volume,
        _connector: Connector,
    ) -> Result<ConnectionInfo> {
        Err(not_written("initialize-connection"))
    }
}

ashlar_sdk::register_volume_driver!({{type}});
