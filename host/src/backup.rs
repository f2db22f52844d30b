//! Backups' data path, native to the host: the engine that turns a volume's bytes into
//! chunk objects (holes and zero chunks skipped, chunks hashed, compressed with zstd on
//! every core, only changed chunks stored for an incremental) and back, and the object
//! store it writes through. A `backup-driver` component only moves objects in and out of
//! its store ([`objects`]); everything else is here.
//!
//! Nothing here knows volumes, the database or the API: the volume manager's backup jobs
//! (`volume/backups.rs`, `volume/flows/backup.rs`) hand the engine a readable source and
//! an [`ObjectStore`].

pub mod engine;
pub mod objects;

/// One object in a store, as a listing shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectInfo {
    pub name: String,
    pub size: u64,
}

/// Why a store operation failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    /// The object does not exist (a restore names it in its error).
    #[error("object `{0}` is missing from the backup store")]
    NotFound(String),
    /// Anything else, in words fit for an operator (never a secret).
    #[error("{0}")]
    Failed(String),
}

/// Where a backup's objects live: one container of one backup store. Calls block; the
/// engine calls them from its own threads, several at once.
pub trait ObjectStore: Send + Sync {
    /// Stores `data` as `name`, replacing an object of that name.
    fn put(&self, name: &str, data: &[u8]) -> Result<(), StoreError>;
    /// The whole object, or [`StoreError::NotFound`].
    fn get(&self, name: &str) -> Result<Vec<u8>, StoreError>;
    /// Removes `name`; removing a missing object succeeds.
    fn delete(&self, name: &str) -> Result<(), StoreError>;
    /// Every object whose name starts with `prefix`, in name order (the store pages).
    fn list(&self, prefix: &str) -> Result<Vec<ObjectInfo>, StoreError>;
}
