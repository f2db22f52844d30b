//! Block policy: which host paths a plugin may open.
//!
//! Everything is compared as canonical paths, component by component, so neither `..` nor a
//! symlink inside a granted directory can reach outside it. The sandbox must open the path
//! returned by [`resolve`], not the one the plugin sent.

use std::io;
use std::path::{Path, PathBuf};

use super::{CapabilityKind, Denied};

/// Whether canonical `path` lies within one of the canonical `roots`.
pub fn allows(roots: &[PathBuf], path: &Path) -> bool {
    roots.iter().any(|root| path.starts_with(root))
}

/// Resolves a path sent by the plugin to the canonical path it may open.
///
/// Relative paths are taken from the first root (if it is a directory). A path that does not
/// exist yet (a volume about to be created) resolves through its parent directory.
pub fn resolve(roots: &[PathBuf], request: &str) -> Result<PathBuf, Denied> {
    let deny = |why: String| Denied::new(CapabilityKind::Block, why);
    if roots.is_empty() {
        return Err(deny(format!(
            "block access to `{}` is refused: this backend grants no block paths",
            request.escape_debug()
        )));
    }
    if request.is_empty() || request.contains('\0') {
        return Err(deny(format!(
            "block access to `{}` is refused: not a path",
            request.escape_debug()
        )));
    }
    let requested = Path::new(request);
    let joined = if requested.is_absolute() {
        requested.to_path_buf()
    } else if roots[0].is_dir() {
        roots[0].join(requested)
    } else {
        return Err(deny(format!(
            "block access to `{request}` is refused: relative paths need a granted directory, \
             and {} is not one",
            roots[0].display()
        )));
    };
    let resolved = match joined.canonicalize() {
        Ok(path) => path,
        Err(e) if e.kind() == io::ErrorKind::NotFound => resolve_new(&joined, request)
            .map_err(|why| deny(format!("block access to `{request}` is refused: {why}")))?,
        Err(e) => {
            return Err(deny(format!(
                "block access to `{request}` is refused: cannot resolve it: {e}"
            )));
        }
    };
    if allows(roots, &resolved) {
        Ok(resolved)
    } else {
        Err(deny(format!(
            "block access to `{request}` (resolves to {}) is outside the granted paths [{}]",
            resolved.display(),
            render_paths(roots)
        )))
    }
}

/// Resolves a path that does not exist yet through its parent.
fn resolve_new(joined: &Path, request: &str) -> Result<PathBuf, String> {
    // A dangling symlink also reports NotFound, but creating it would write to its target.
    if joined.symlink_metadata().is_ok() {
        return Err("it is a symlink to a path that does not exist".to_owned());
    }
    let last = request
        .trim_end_matches('/')
        .rsplit('/')
        .next()
        .unwrap_or("");
    let (Some(parent), Some(name)) = (joined.parent(), joined.file_name()) else {
        return Err("it has no file name".to_owned());
    };
    if matches!(last, "." | "..") {
        return Err(format!("its file name is `{last}`"));
    }
    let parent = parent
        .canonicalize()
        .map_err(|e| format!("its directory {} cannot be resolved: {e}", parent.display()))?;
    Ok(parent.join(name))
}

fn render_paths(paths: &[PathBuf]) -> String {
    paths
        .iter()
        .map(|p| p.display().to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A tempdir with `share/` (the grant), `share/disk`, `share/sub/`, `secret` beside the
    /// share, and `share/link` -> `secret`, `share/dangling` -> `outside-new`.
    fn fixture() -> (tempfile::TempDir, Vec<PathBuf>) {
        let dir = tempfile::tempdir().unwrap();
        let share = dir.path().join("share");
        std::fs::create_dir_all(share.join("sub")).unwrap();
        std::fs::write(share.join("disk"), b"").unwrap();
        std::fs::write(dir.path().join("secret"), b"").unwrap();
        std::os::unix::fs::symlink(dir.path().join("secret"), share.join("link")).unwrap();
        std::os::unix::fs::symlink(dir.path().join("outside-new"), share.join("dangling")).unwrap();
        let roots = vec![share.canonicalize().unwrap()];
        (dir, roots)
    }

    #[test]
    fn paths_inside_resolve_canonically() {
        let (_dir, roots) = fixture();
        let share = &roots[0];
        let abs = share.join("disk");
        assert_eq!(resolve(&roots, abs.to_str().unwrap()).unwrap(), abs);
        assert_eq!(resolve(&roots, "disk").unwrap(), abs);
        assert_eq!(resolve(&roots, "sub/../disk").unwrap(), abs);
        assert_eq!(resolve(&roots, ".").unwrap(), *share);
    }

    #[test]
    fn new_file_inside_is_allowed() {
        let (_dir, roots) = fixture();
        let want = roots[0].join("sub/volume-1");
        assert_eq!(resolve(&roots, "sub/volume-1").unwrap(), want);
        let abs = roots[0].join("volume-2");
        assert_eq!(resolve(&roots, abs.to_str().unwrap()).unwrap(), abs);
        assert!(resolve(&roots, "missing-dir/volume-1").is_err());
        assert!(resolve(&roots, "missing-dir/..").is_err());
    }

    #[test]
    fn escapes_are_denied() {
        let (dir, roots) = fixture();
        let secret = dir.path().canonicalize().unwrap().join("secret");
        let err = resolve(&roots, "../secret").unwrap_err();
        assert_eq!(err.kind(), CapabilityKind::Block);
        assert_eq!(
            err.to_string(),
            format!(
                "block access to `../secret` (resolves to {}) is outside the granted paths [{}]",
                secret.display(),
                roots[0].display()
            )
        );
        assert!(
            resolve(&roots, "link")
                .unwrap_err()
                .to_string()
                .contains("outside")
        );
        assert!(resolve(&roots, "sub/../../secret").is_err());
        assert!(resolve(&roots, "../new-file").is_err());
        assert!(resolve(&roots, "/etc/passwd").is_err());
        let err = resolve(&roots, "dangling").unwrap_err();
        assert!(err.to_string().contains("symlink"), "{err}");
    }

    #[test]
    fn sibling_with_common_prefix_is_outside() {
        let (dir, roots) = fixture();
        let sibling = dir.path().join("share2");
        std::fs::create_dir(&sibling).unwrap();
        assert!(resolve(&roots, sibling.to_str().unwrap()).is_err());
        assert!(!allows(&roots, &sibling.canonicalize().unwrap()));
    }

    #[test]
    fn nothing_granted_denies_everything() {
        assert!(resolve(&[], "/tmp").is_err());
        let (_dir, roots) = fixture();
        assert!(resolve(&roots, "").is_err());
        assert!(resolve(&roots, "a\0b").is_err());
    }
}
