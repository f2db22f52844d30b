//! {{name}}: an Ashlar target driver, exporting the local device a paired volume driver
//! provides over a protocol (Cinder's target helpers).
//!
//! The four methods below are what every target driver must answer; until they are
//! written they answer "not supported". The guide, section by section, is
//! docs/driver-guide.md in Ashlar's source.

use ashlar_sdk::{
    ConnectionInfo, Connector, DriverError, ModelUpdate, Result, TargetDriver, Volume, config,
    log,
};

pub struct {{type}} {
    /// The target's settings, read in `do_setup`.
    example_setting: Option<String>,
}

/// What a stub answers until it is written.
fn not_written(method: &str) -> DriverError {
    DriverError::not_supported(format!(
        "{{name}} does not implement {method} yet (docs/driver-guide.md, \"{method}\")"
    ))
}

impl TargetDriver for {{type}} {
    fn new() -> Self {
        {{type}} {
            example_setting: None,
        }
    }

    /// Read settings (`config::get`, `config::require`) and prepare the target.
    fn do_setup(&mut self) -> Result<()> {
        self.example_setting = config::get("example_setting");
        log::info(&format!(
            "{{name}} is set up (example_setting: {:?})",
            self.example_setting
        ));
        Ok(())
    }

    /// Required: export `device_path` for the volume; answer what to record with
    /// `ModelUpdate::at(..)` or `ModelUpdate::default()`
    /// (docs/driver-guide.md, "create-export").
    fn create_export(&mut self, _volume: Volume, _device_path: String) -> Result<ModelUpdate> {
        Err(not_written("create-export"))
    }

    /// Required: remove the export; one already gone is removed
    /// (docs/driver-guide.md, "remove-export").
    fn remove_export(&mut self, _volume: Volume) -> Result<()> {
        Err(not_written("remove-export"))
    }

    /// Required: the connection info a host uses to reach the export
    /// (docs/driver-guide.md, "initialize-connection").
    fn initialize_connection(
        &mut self,
        _volume: Volume,
        _connector: Connector,
    ) -> Result<ConnectionInfo> {
        Err(not_written("initialize-connection"))
    }

    /// Required: forget that host (docs/driver-guide.md, "terminate-connection").
    fn terminate_connection(
        &mut self,
        _volume: Volume,
        _connector: Option<Connector>,
    ) -> Result<()> {
        Err(not_written("terminate-connection"))
    }
}

ashlar_sdk::register_target_driver!({{type}});
