//! The host-side types behind the contract's resources. The bindings of every contract
//! version map their resources here (bindgen's `with:`), so this module uses no bindings
//! and the host calls can use the bindings without a cycle.

use std::fs::File;
use std::path::PathBuf;

/// A granted file or device, open for a driver.
pub struct BlockHandle {
    pub(super) file: File,
    pub(super) path: PathBuf,
    pub(super) writable: bool,
}
