//! The backup engine. See `backup.rs`.
//!
//! Placeholder of the engine's API (replaced by the engine itself): the signatures the
//! volume manager's backup jobs call.

use std::path::Path;
use std::sync::atomic::AtomicBool;

use super::{ObjectStore, StoreError};

pub struct EngineSettings {
    pub chunk_bytes: usize,
    pub zstd_level: i32,
    pub threads: usize,
    pub store_parallelism: usize,
}

impl Default for EngineSettings {
    fn default() -> Self {
        EngineSettings {
            chunk_bytes: 4 << 20,
            zstd_level: 1,
            threads: 2,
            store_parallelism: 4,
        }
    }
}

pub struct Progress {
    pub done_bytes: u64,
    pub total_bytes: u64,
}

#[derive(serde::Serialize, serde::Deserialize, Clone, Debug)]
pub struct Manifest {
    pub backup_id: String,
    pub parent_id: Option<String>,
    pub size_bytes: u64,
    pub chunk_bytes: u64,
}

pub struct BackupSummary {
    pub manifest: Manifest,
    pub stored_bytes: u64,
    pub objects: u64,
    pub skipped_zero_bytes: u64,
}

pub struct RestoreSummary {
    pub bytes: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("object {object} is corrupt")]
    Corrupt { object: String },
    #[error("object {object} is missing")]
    Missing { object: String },
    #[error("{0}")]
    Io(String),
    #[error("cancelled")]
    Cancelled,
}

pub fn backup(
    _store: &dyn ObjectStore,
    _backup_id: &str,
    _source: &Path,
    _size_bytes: u64,
    _parent: Option<&Manifest>,
    _settings: &EngineSettings,
    _progress: &(dyn Fn(Progress) + Sync),
    _cancel: &AtomicBool,
) -> Result<BackupSummary, EngineError> {
    Err(EngineError::Io("the backup engine is not built yet".into()))
}

pub fn read_manifest(_store: &dyn ObjectStore, backup_id: &str) -> Result<Manifest, EngineError> {
    Err(EngineError::Missing {
        object: format!("{backup_id}/manifest"),
    })
}

pub fn restore(
    _store: &dyn ObjectStore,
    _backup_id: &str,
    _target: &Path,
    _settings: &EngineSettings,
    _progress: &(dyn Fn(Progress) + Sync),
    _cancel: &AtomicBool,
) -> Result<RestoreSummary, EngineError> {
    Err(EngineError::Io("the backup engine is not built yet".into()))
}

pub fn delete(_store: &dyn ObjectStore, _backup_id: &str) -> Result<u64, EngineError> {
    Ok(0)
}

pub fn orphans(
    _store: &dyn ObjectStore,
    _known: &dyn Fn(&str) -> bool,
) -> Result<Vec<String>, EngineError> {
    Ok(Vec::new())
}
