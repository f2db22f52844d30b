//! The manifest: the one object that says what a backup holds and where each chunk lives.

use serde::{Deserialize, Serialize};

use super::EngineError;

/// The manifest format this host writes; it reads this one and older. Bump it when a
/// field's meaning changes, so that an older host refuses a manifest it would misread.
pub const MANIFEST_FORMAT: u32 = 1;

/// Chunk objects are `{backup_id}/chunk-{index:010}`.
pub const CHUNK_PREFIX: &str = "chunk-";

/// The only compression and hash this format knows; named in the manifest so that a
/// reader can tell.
const COMPRESSION: &str = "zstd";
const HASH: &str = "sha256";

/// The manifest's object: `{backup_id}/manifest`.
pub fn manifest_object(backup_id: &str) -> String {
    format!("{backup_id}/manifest")
}

/// The object holding chunk `index` of `backup_id`.
pub(super) fn chunk_object(backup_id: &str, index: u64) -> String {
    format!("{backup_id}/{CHUNK_PREFIX}{index:010}")
}

/// A backup id becomes an object prefix: refuse what would escape it or collide.
pub(super) fn check_id(backup_id: &str) -> Result<(), EngineError> {
    let ok = !backup_id.is_empty()
        && backup_id.len() <= 255
        && backup_id != "."
        && backup_id != ".."
        && backup_id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(EngineError::Settings(format!(
            "backup id `{}` is not usable as an object prefix (letters, digits, `-`, `_` and `.` only)",
            backup_id.escape_default()
        )))
    }
}

/// What a backup holds: stored last as `{backup_id}/manifest` (JSON), its presence is
/// what makes the backup complete.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// [`MANIFEST_FORMAT`] when written.
    pub format: u32,
    pub backup_id: String,
    /// The backup this one is an incremental of; its chunks may live in the parent's (or
    /// an older ancestor's) objects, named in [`ChunkRef::object`].
    pub parent_id: Option<String>,
    /// The volume's size in bytes.
    pub size_bytes: u64,
    /// Bytes per chunk; the last chunk may be shorter.
    pub chunk_bytes: u64,
    /// How chunk objects are compressed (`zstd`).
    pub compression: String,
    /// How chunks are hashed (`sha256`, of the plain bytes).
    pub hash: String,
    /// Bytes of the volume in non-zero chunks.
    pub data_bytes: u64,
    /// Bytes of chunk objects this backup stored itself (not counting its parents').
    pub stored_bytes: u64,
    /// The non-zero chunks in index order; a chunk not listed reads as zeros.
    pub chunks: Vec<ChunkRef>,
}

/// Where one non-zero chunk lives.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChunkRef {
    /// The chunk's index: it covers bytes `index * chunk_bytes ..` of the volume.
    pub index: u64,
    /// SHA-256 of the chunk's plain bytes, lowercase hex.
    pub sha256: String,
    /// The object holding it: this backup's, or an ancestor's for an unchanged chunk.
    pub object: String,
    /// The object's size in bytes (compressed).
    pub stored_bytes: u64,
}

impl Manifest {
    pub(super) fn new(backup_id: &str, parent_id: Option<&str>, size: u64, chunk: u64) -> Self {
        Self {
            format: MANIFEST_FORMAT,
            backup_id: backup_id.to_string(),
            parent_id: parent_id.map(str::to_string),
            size_bytes: size,
            chunk_bytes: chunk,
            compression: COMPRESSION.to_string(),
            hash: HASH.to_string(),
            data_bytes: 0,
            stored_bytes: 0,
            chunks: Vec::new(),
        }
    }

    /// How many chunks the volume has, zero ones included.
    pub fn chunk_count(&self) -> u64 {
        self.size_bytes.div_ceil(self.chunk_bytes)
    }

    /// The length of chunk `index` (the last one may be short).
    pub fn chunk_len(&self, index: u64) -> u64 {
        let start = index * self.chunk_bytes;
        self.chunk_bytes.min(self.size_bytes - start)
    }

    /// The chunk at `index`, if it is not a zero one.
    pub fn chunk(&self, index: u64) -> Option<&ChunkRef> {
        self.chunks
            .binary_search_by_key(&index, |c| c.index)
            .ok()
            .map(|i| &self.chunks[i])
    }

    /// Every backup whose objects this one's chunks live in, itself included.
    pub fn referenced_backups(&self) -> std::collections::BTreeSet<String> {
        self.chunks
            .iter()
            .filter_map(|c| c.object.split_once('/').map(|(id, _)| id.to_string()))
            .collect()
    }

    pub(super) fn encode(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("a manifest always serialises")
    }

    /// Parses and checks a stored manifest of `backup_id`.
    pub(super) fn decode(backup_id: &str, bytes: &[u8]) -> Result<Self, EngineError> {
        let bad = |reason: String| EngineError::Manifest {
            backup_id: backup_id.to_string(),
            reason,
        };
        let m: Manifest = serde_json::from_slice(bytes)
            .map_err(|e| bad(format!("it is not a valid manifest ({e})")))?;
        if m.format > MANIFEST_FORMAT || m.format == 0 {
            return Err(bad(format!(
                "it has format {}, this host reads formats 1 to {MANIFEST_FORMAT}; restore it with a newer release",
                m.format
            )));
        }
        if m.backup_id != backup_id {
            return Err(bad(format!("it names backup {}", m.backup_id)));
        }
        if m.compression != COMPRESSION || m.hash != HASH {
            return Err(bad(format!(
                "it uses compression `{}` and hash `{}`, this host knows `{COMPRESSION}` and `{HASH}`",
                m.compression, m.hash
            )));
        }
        if !(1..=1 << 30).contains(&m.chunk_bytes) {
            return Err(bad(format!("its chunk size {} is invalid", m.chunk_bytes)));
        }
        let count = m.chunk_count();
        let mut last = None;
        for c in &m.chunks {
            if c.index >= count || last.is_some_and(|l| c.index <= l) {
                return Err(bad(format!(
                    "its chunk {} is out of order or range",
                    c.index
                )));
            }
            last = Some(c.index);
            let hex = c.sha256.len() == 64 && c.sha256.bytes().all(|b| b.is_ascii_hexdigit());
            if !hex || !c.object.contains('/') {
                return Err(bad(format!("its chunk {} is malformed", c.index)));
            }
        }
        Ok(m)
    }
}

/// Lowercase hex of a digest.
pub(super) fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(DIGITS[usize::from(b >> 4)] as char);
        s.push(DIGITS[usize::from(b & 15)] as char);
    }
    s
}
