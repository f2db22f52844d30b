//! Compiled components on disk, keyed by the component's bytes and the engine's
//! configuration: a restart, or a second backend on the same driver, deserializes the
//! artifact (0.3 ms) instead of compiling again (55 ms for a small driver).

use std::path::PathBuf;

use sha2::{Digest, Sha256};
use wasmtime::Engine;
use wasmtime::component::Component;

use super::error::LoadError;

/// The directory of precompiled `.cwasm` artifacts.
pub(super) struct ComponentCache {
    dir: PathBuf,
}

/// The error for a component that does not compile.
pub(super) fn compile_error(what: &str) -> impl FnOnce(wasmtime::Error) -> LoadError + '_ {
    move |e| LoadError::Compile {
        what: what.to_string(),
        message: format!("{e:#}"),
    }
}

impl ComponentCache {
    /// Uses `dir`, making it if needed.
    pub(super) fn open(dir: PathBuf) -> Result<Self, LoadError> {
        std::fs::create_dir_all(&dir).map_err(|source| LoadError::Read {
            path: dir.clone(),
            source,
        })?;
        Ok(ComponentCache { dir })
    }

    /// Loads the artifact cached for the same bytes and engine, or compiles `bytes` and
    /// caches the result.
    pub(super) fn compile(
        &self,
        engine: &Engine,
        what: &str,
        bytes: &[u8],
    ) -> Result<Component, LoadError> {
        let mut hasher = Sha256::new();
        hasher.update(bytes);
        {
            use std::hash::{Hash, Hasher};
            let mut h = std::collections::hash_map::DefaultHasher::new();
            engine.precompile_compatibility_hash().hash(&mut h);
            hasher.update(h.finish().to_le_bytes());
        }
        let key: String = hasher
            .finalize()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        let path = self.dir.join(format!("{key}.cwasm"));
        if path.exists() {
            // SAFETY: the cache directory is the host's own, written only below from
            // `Component::serialize` by this engine configuration (the key covers it).
            #[allow(unsafe_code)]
            let cached = unsafe { Component::deserialize_file(engine, &path) };
            match cached {
                Ok(c) => return Ok(c),
                Err(e) => {
                    tracing::warn!(path = %path.display(), "ignoring unusable cached component: {e}")
                }
            }
        }
        let component = Component::new(engine, bytes).map_err(compile_error(what))?;
        if let Ok(serialized) = component.serialize() {
            let tmp = path.with_extension(format!("tmp{}", std::process::id()));
            if std::fs::write(&tmp, serialized)
                .and_then(|_| std::fs::rename(&tmp, &path))
                .is_err()
            {
                let _ = std::fs::remove_file(&tmp);
                tracing::warn!(path = %path.display(), "could not cache the compiled component");
            }
        }
        Ok(component)
    }
}
