//! {{name}}: an Ashlar backup driver, the object side of a chunked backup. The host cuts
//! volumes into chunks, compresses and hashes them; this driver only moves named objects
//! in and out of containers of its store.
//!
//! The methods below are what every backup driver must answer; until they are written
//! they answer "not supported". The guide, section by section, is
//! docs/driver-guide.md in Ashlar's source.

use ashlar_sdk::backup::ObjectInfo;
use ashlar_sdk::{BackupDriver, DriverError, Result, config, log};

pub struct {{type}} {
    /// The store's settings, read in `do_setup`.
    example_setting: Option<String>,
}

/// What a stub answers until it is written.
fn not_written(method: &str) -> DriverError {
    DriverError::not_supported(format!(
        "{{name}} does not implement {method} yet (docs/driver-guide.md, \"{method}\")"
    ))
}

impl BackupDriver for {{type}} {
    fn new() -> Self {
        {{type}} {
            example_setting: None,
        }
    }

    /// Read settings (`config::get`, `config::require`) and prepare the store.
    fn do_setup(&mut self) -> Result<()> {
        self.example_setting = config::get("example_setting");
        log::info(&format!(
            "{{name}} is set up (example_setting: {:?})",
            self.example_setting
        ));
        Ok(())
    }

    /// Required: create the container if missing (docs/driver-guide.md, "put-container").
    fn put_container(&mut self, _container: String) -> Result<()> {
        Err(not_written("put-container"))
    }

    /// Required: store `data` as `name`, durable when it returns
    /// (docs/driver-guide.md, "put-object").
    fn put_object(&mut self, _container: String, _name: String, _data: Vec<u8>) -> Result<()> {
        Err(not_written("put-object"))
    }

    /// Required: the whole object, not-found when missing
    /// (docs/driver-guide.md, "get-object").
    fn get_object(&mut self, _container: String, _name: String) -> Result<Vec<u8>> {
        Err(not_written("get-object"))
    }

    /// Required: remove it; a missing one is removed (docs/driver-guide.md, "delete-object").
    fn delete_object(&mut self, _container: String, _name: String) -> Result<()> {
        Err(not_written("delete-object"))
    }

    /// Required: up to `limit` objects named `prefix…` after `marker`, in byte order
    /// (docs/driver-guide.md, "list-objects").
    fn list_objects(
        &mut self,
        _container: String,
        _prefix: String,
        _marker: Option<String>,
        _limit: u32,
    ) -> Result<Vec<ObjectInfo>> {
        Err(not_written("list-objects"))
    }
}

ashlar_sdk::register_backup_driver!({{type}});
