//! Directory policy: whole directories a plugin sees through its filesystem, as WASI
//! preopens. A backup store that keeps objects as files needs to create, rename, list and
//! fsync files in one directory; the `block` capability opens single files by path and has
//! no listing or rename, and a new host call for each would re-implement WASI's filesystem.
//! A preopen gives the plugin exactly the granted directory and nothing around it: the
//! sandbox (wasmtime's `cap-std`) resolves every path the plugin sends inside it and refuses
//! `..` and symlinks that lead out.
//!
//! The plugin asks for a directory in its plugin.toml (`directory = ["{backup_path}"]`); the
//! operator grants it (or a directory containing it) in `grants.directory`. The plugin sees
//! the directory under the path it asked for, so it can use the configured setting as is.

use std::path::{Path, PathBuf};

/// One directory a plugin sees: `guest` is the path the plugin uses (its setting, as
/// written), `host` the canonical directory the sandbox opens for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Preopen {
    pub guest: String,
    pub host: PathBuf,
}

/// Why a requested directory cannot be preopened (checked before the grant).
pub(crate) fn check_request(path: &str) -> Result<PathBuf, String> {
    let p = Path::new(path);
    if !p.is_absolute() {
        return Err("it is not an absolute path; fix the backend config".to_owned());
    }
    if path.split('/').any(|c| c == "..") {
        return Err("it contains `..`; name the directory itself".to_owned());
    }
    let canonical = p.canonicalize().map_err(|e| {
        format!("it cannot be resolved ({e}); create the directory or fix the backend config")
    })?;
    if !canonical.is_dir() {
        return Err("it is not a directory".to_owned());
    }
    Ok(canonical)
}

/// Whether canonical `path` is one of the canonical `roots` or inside one.
pub fn allows(roots: &[PathBuf], path: &Path) -> bool {
    roots.iter().any(|root| path.starts_with(root))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_must_be_absolute_existing_directories_without_dot_dot() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().to_str().unwrap();
        assert_eq!(
            check_request(d).unwrap(),
            dir.path().canonicalize().unwrap()
        );
        assert!(
            check_request("relative/dir")
                .unwrap_err()
                .contains("absolute")
        );
        assert!(
            check_request(&format!("{d}/../x"))
                .unwrap_err()
                .contains("`..`")
        );
        assert!(
            check_request(&format!("{d}/missing"))
                .unwrap_err()
                .contains("cannot be resolved")
        );
        let file = dir.path().join("f");
        std::fs::write(&file, b"").unwrap();
        assert!(
            check_request(file.to_str().unwrap())
                .unwrap_err()
                .contains("not a directory")
        );
    }

    #[test]
    fn a_directory_inside_a_granted_root_is_allowed_and_a_sibling_is_not() {
        let root = PathBuf::from("/srv/backups");
        assert!(allows(
            std::slice::from_ref(&root),
            Path::new("/srv/backups")
        ));
        assert!(allows(
            std::slice::from_ref(&root),
            Path::new("/srv/backups/a")
        ));
        assert!(!allows(
            std::slice::from_ref(&root),
            Path::new("/srv/backups2")
        ));
        assert!(!allows(&[], Path::new("/srv/backups")));
    }
}
