//! The posix backup store: each object is a file under `{backup_path}/{container}/`, its
//! name's `/`-separated parts as directories (`{backup_id}/manifest` →
//! `{backup_path}/{container}/{backup_id}/manifest`), as Cinder's posix driver lays out
//! its chunks.
//!
//! ## Why a granted directory, and not `block` handles
//! A file store must create, rename, fsync and list files. The contract's `block` import
//! opens single files by path, with no listing, rename or directory fsync, and adding each
//! of those as a host call would re-implement the WASI filesystem under another name. So
//! the host gives this driver one directory through WASI itself (a preopen), after the
//! operator granted it (`grants.directory`): the driver uses plain `std::fs` there, sees
//! nothing outside it, and the sandbox (wasmtime's `cap-std`) refuses `..` and symlinks
//! that would lead out. The setting `backup_path` names the directory both for the grant
//! and for the driver, which sees it under that same path.
//!
//! ## Durability
//! `put` writes `.NAME.tmp-RANDOM` beside the object, fsyncs it, renames it over the
//! object and fsyncs the directory (and the parents of directories it had to create), so
//! after `put` returns the object survives a crash, and a crash before leaves the old
//! object or none. Names starting with `.` are the store's own (temporary files) and are
//! never listed; object names may not have such parts.

use std::fs;
use std::io::{ErrorKind, Write};
use std::path::{Path, PathBuf};

use ashlar_sdk::backup::ObjectInfo;
use ashlar_sdk::{BackupDriver, DriverError, Result, config};

/// How many times a put retries when a concurrent delete removed the directory it was
/// writing into.
const PUT_ATTEMPTS: usize = 3;

/// The store under one root directory.
pub struct PosixStore {
    root: PathBuf,
}

fn io_error(what: &str, e: std::io::Error) -> DriverError {
    match e.kind() {
        ErrorKind::NotFound => DriverError::not_found(format!("{what}: {e}")),
        ErrorKind::StorageFull | ErrorKind::QuotaExceeded => {
            DriverError::capacity_exceeded(format!("{what}: {e}"))
        }
        ErrorKind::PermissionDenied | ErrorKind::ReadOnlyFilesystem => {
            DriverError::backend_unavailable(format!("{what}: {e}"))
        }
        _ => DriverError::internal(format!("{what}: {e}")),
    }
}

/// Checks one `/`-separated part of a container or object name.
fn check_part(kind: &str, whole: &str, part: &str) -> Result<()> {
    if part.is_empty() || part.starts_with('.') || part.contains('\0') || part.contains('\\') {
        return Err(DriverError::invalid_argument(format!(
            "{kind} name `{}` is not valid here: every `/`-separated part must be non-empty \
             and not start with `.`",
            whole.escape_debug()
        )));
    }
    Ok(())
}

fn check_container(container: &str) -> Result<()> {
    if container.contains('/') {
        return Err(DriverError::invalid_argument(format!(
            "container name `{container}` may not contain `/`"
        )));
    }
    check_part("container", container, container)
}

fn check_object(name: &str) -> Result<()> {
    name.split('/')
        .try_for_each(|part| check_part("object", name, part))
}

/// Opens a directory and fsyncs it, so a rename or create inside it is durable.
fn sync_dir(dir: &Path) -> std::io::Result<()> {
    fs::File::open(dir)?.sync_all()
}

fn temp_name(final_name: &str) -> String {
    let mut bytes = [0u8; 8];
    // Without randomness two instances could pick the same name; the clock is a fallback.
    if getrandom::fill(&mut bytes).is_err() {
        bytes = (std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0))
        .to_le_bytes();
    }
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!(".{final_name}.tmp-{hex}")
}

impl PosixStore {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        PosixStore { root: root.into() }
    }

    fn container_dir(&self, container: &str) -> Result<PathBuf> {
        check_container(container)?;
        Ok(self.root.join(container))
    }

    fn object_path(&self, container: &str, name: &str) -> Result<PathBuf> {
        check_object(name)?;
        Ok(self.container_dir(container)?.join(name))
    }

    /// Writes and removes a probe file: the directory exists and takes writes.
    pub fn check(&self) -> Result<()> {
        let meta = fs::metadata(&self.root).map_err(|e| {
            DriverError::backend_unavailable(format!(
                "backup_path {} is not usable: {e}; create it and grant it to the backup store",
                self.root.display()
            ))
        })?;
        if !meta.is_dir() {
            return Err(DriverError::backend_unavailable(format!(
                "backup_path {} is not a directory",
                self.root.display()
            )));
        }
        let probe = self.root.join(temp_name("ashlar-probe"));
        fs::write(&probe, b"probe").map_err(|e| {
            DriverError::backend_unavailable(format!(
                "backup_path {} does not take writes: {e}",
                self.root.display()
            ))
        })?;
        let _ = fs::remove_file(&probe);
        Ok(())
    }

    pub fn put_container(&self, container: &str) -> Result<()> {
        let dir = self.container_dir(container)?;
        match fs::create_dir(&dir) {
            Ok(()) => sync_dir(&self.root)
                .map_err(|e| io_error(&format!("syncing the new container {container}"), e)),
            Err(e) if e.kind() == ErrorKind::AlreadyExists && dir.is_dir() => Ok(()),
            Err(e) => Err(io_error(&format!("creating container {container}"), e)),
        }
    }

    pub fn put(&self, container: &str, name: &str, data: &[u8]) -> Result<()> {
        let path = self.object_path(container, name)?;
        let cdir = self.container_dir(container)?;
        if !cdir.is_dir() {
            return Err(DriverError::not_found(format!(
                "container {container} does not exist"
            )));
        }
        let dir = path
            .parent()
            .expect("an object path has a parent")
            .to_path_buf();
        let file_name = path
            .file_name()
            .and_then(|n| n.to_str())
            .expect("checked names are UTF-8");
        let what = || format!("writing object {name} in container {container}");
        let mut last = None;
        for _ in 0..PUT_ATTEMPTS {
            self.make_dirs(&cdir, &dir)
                .map_err(|e| io_error(&what(), e))?;
            let temp = dir.join(temp_name(file_name));
            let written = (|| {
                let mut f = fs::File::create(&temp)?;
                f.write_all(data)?;
                f.sync_all()?;
                drop(f);
                fs::rename(&temp, &path)?;
                sync_dir(&dir)
            })();
            match written {
                Ok(()) => return Ok(()),
                Err(e) => {
                    let _ = fs::remove_file(&temp);
                    // A concurrent delete may have removed the (then empty) directory.
                    if e.kind() != ErrorKind::NotFound {
                        return Err(io_error(&what(), e));
                    }
                    last = Some(e);
                }
            }
        }
        Err(io_error(&what(), last.expect("at least one attempt")))
    }

    /// Creates the directories between the container and `dir`, fsyncing the parent of
    /// each one it creates.
    fn make_dirs(&self, cdir: &Path, dir: &Path) -> std::io::Result<()> {
        if dir.is_dir() {
            return Ok(());
        }
        let rel = dir.strip_prefix(cdir).expect("inside the container");
        let mut at = cdir.to_path_buf();
        for part in rel.components() {
            let parent = at.clone();
            at.push(part);
            match fs::create_dir(&at) {
                Ok(()) => sync_dir(&parent)?,
                Err(e) if e.kind() == ErrorKind::AlreadyExists => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    pub fn get(&self, container: &str, name: &str) -> Result<Vec<u8>> {
        let path = self.object_path(container, name)?;
        fs::read(&path).map_err(|e| match e.kind() {
            ErrorKind::NotFound => {
                DriverError::not_found(format!("object {name} is not in container {container}"))
            }
            _ => io_error(
                &format!("reading object {name} in container {container}"),
                e,
            ),
        })
    }

    pub fn delete(&self, container: &str, name: &str) -> Result<()> {
        let path = self.object_path(container, name)?;
        let dir = path.parent().expect("an object path has a parent");
        match fs::remove_file(&path) {
            Ok(()) => {
                sync_dir(dir)
                    .map_err(|e| io_error(&format!("syncing after deleting {name}"), e))?;
            }
            // Gone already; its directory may still hold what a cut put left.
            Err(e) if e.kind() == ErrorKind::NotFound => {}
            Err(e) => {
                return Err(io_error(
                    &format!("deleting object {name} in container {container}"),
                    e,
                ));
            }
        }
        // Directories a backup's objects lived in go with the last of them, and with
        // them the temporary files of puts a crash cut short there (a backup is deleted
        // only when nothing writes it, so no put is in flight into a directory whose
        // objects are all gone). A directory still holding an object stays.
        let cdir = self.container_dir(container)?;
        let mut at = dir.to_path_buf();
        while at != cdir && remove_dir_and_temporaries(&at) {
            at.pop();
        }
        Ok(())
    }

    /// Objects under `prefix` after `marker`, in byte order of their names, at most `limit`.
    pub fn list(
        &self,
        container: &str,
        prefix: &str,
        marker: Option<&str>,
        limit: u32,
    ) -> Result<Vec<ObjectInfo>> {
        let cdir = self.container_dir(container)?;
        if !cdir.is_dir() {
            return Err(DriverError::not_found(format!(
                "container {container} does not exist"
            )));
        }
        let mut found = Vec::new();
        let what = |e| io_error(&format!("listing container {container}"), e);
        self.walk(&cdir, "", prefix, marker, &mut found)
            .map_err(what)?;
        found.sort_by(|a: &ObjectInfo, b| a.name.cmp(&b.name));
        found.truncate(limit as usize);
        Ok(found)
    }

    /// Collects the objects under `dir` (whose names start with `at`) that match.
    fn walk(
        &self,
        dir: &Path,
        at: &str,
        prefix: &str,
        marker: Option<&str>,
        found: &mut Vec<ObjectInfo>,
    ) -> std::io::Result<()> {
        let entries = match fs::read_dir(dir) {
            Ok(entries) => entries,
            // Removed by a concurrent delete of its last object.
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(e),
        };
        for entry in entries {
            let entry = entry?;
            let Ok(file) = entry.file_name().into_string() else {
                continue; // not written by this store
            };
            if file.starts_with('.') {
                continue; // a temporary file or the store's own
            }
            let name = format!("{at}{file}");
            let kind = entry.file_type()?;
            if kind.is_dir() {
                let sub = format!("{name}/");
                // Only directories that can hold names under the prefix, and names after
                // the marker.
                let relevant = sub.starts_with(prefix) || prefix.starts_with(&sub);
                let past = marker.is_some_and(|m| *sub < *m && !m.starts_with(&sub));
                if relevant && !past {
                    self.walk(&entry.path(), &sub, prefix, marker, found)?;
                }
            } else if kind.is_file()
                && name.starts_with(prefix)
                && marker.is_none_or(|m| *name > *m)
            {
                let size = match entry.metadata() {
                    Ok(m) => m.len(),
                    Err(e) if e.kind() == ErrorKind::NotFound => continue,
                    Err(e) => return Err(e),
                };
                found.push(ObjectInfo { name, size });
            }
        }
        Ok(())
    }
}

/// The driver: a [`PosixStore`] at the configured `backup_path`.
pub struct PosixBackupDriver {
    store: Option<PosixStore>,
}

impl PosixBackupDriver {
    fn store(&mut self) -> Result<&PosixStore> {
        if self.store.is_none() {
            self.store = Some(PosixStore::new(config::require("backup_path")?));
        }
        Ok(self.store.as_ref().expect("just set"))
    }
}

impl BackupDriver for PosixBackupDriver {
    fn new() -> Self {
        PosixBackupDriver { store: None }
    }
    fn do_setup(&mut self) -> Result<()> {
        self.store().map(|_| ())
    }
    fn check_for_setup_error(&mut self) -> Result<()> {
        self.store()?.check()
    }
    fn put_container(&mut self, container: String) -> Result<()> {
        self.store()?.put_container(&container)
    }
    fn put_object(&mut self, container: String, name: String, data: Vec<u8>) -> Result<()> {
        self.store()?.put(&container, &name, &data)
    }
    fn get_object(&mut self, container: String, name: String) -> Result<Vec<u8>> {
        self.store()?.get(&container, &name)
    }
    fn delete_object(&mut self, container: String, name: String) -> Result<()> {
        self.store()?.delete(&container, &name)
    }
    fn list_objects(
        &mut self,
        container: String,
        prefix: String,
        marker: Option<String>,
        limit: u32,
    ) -> Result<Vec<ObjectInfo>> {
        self.store()?
            .list(&container, &prefix, marker.as_deref(), limit)
    }
}

ashlar_sdk::register_backup_driver!(PosixBackupDriver);

/// Removes `dir` if it holds nothing but temporary files (`.NAME.tmp-…`), removing
/// those first; whether it is gone.
fn remove_dir_and_temporaries(dir: &Path) -> bool {
    if fs::remove_dir(dir).is_ok() {
        return true;
    }
    let Ok(entries) = fs::read_dir(dir) else {
        return false;
    };
    let mut temporaries = Vec::new();
    for entry in entries {
        let Ok(entry) = entry else { return false };
        let name = entry.file_name();
        let name = name.to_string_lossy();
        let is_file = entry.file_type().is_ok_and(|t| t.is_file());
        if !(is_file && name.starts_with('.') && name.contains(".tmp-")) {
            return false;
        }
        temporaries.push(entry.path());
    }
    temporaries.iter().all(|t| fs::remove_file(t).is_ok()) && fs::remove_dir(dir).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(v: &[ObjectInfo]) -> Vec<&str> {
        v.iter().map(|o| o.name.as_str()).collect()
    }

    #[test]
    fn objects_round_trip_and_list_in_name_order_with_markers() {
        let dir = tempfile::tempdir().unwrap();
        let s = PosixStore::new(dir.path());
        s.check().unwrap();
        s.put_container("c").unwrap();
        s.put_container("c").unwrap();
        for n in ["b/2", "b/10", "a-x", "b/1", "a/z", "bb"] {
            s.put("c", n, n.as_bytes()).unwrap();
        }
        assert_eq!(s.get("c", "b/10").unwrap(), b"b/10");
        let all = s.list("c", "", None, 100).unwrap();
        assert_eq!(names(&all), ["a-x", "a/z", "b/1", "b/10", "b/2", "bb"]);
        assert_eq!(all[3].size, 4);
        assert_eq!(
            names(&s.list("c", "b/", None, 100).unwrap()),
            ["b/1", "b/10", "b/2"]
        );
        assert_eq!(
            names(&s.list("c", "b", Some("b/10"), 100).unwrap()),
            ["b/2", "bb"]
        );
        assert_eq!(
            names(&s.list("c", "", Some("a/z"), 2).unwrap()),
            ["b/1", "b/10"]
        );
        s.put("c", "b/1", b"new").unwrap();
        assert_eq!(s.get("c", "b/1").unwrap(), b"new");
        // No temporary file is left or listed.
        let left: Vec<_> = fs::read_dir(dir.path().join("c/b")).unwrap().collect();
        assert_eq!(left.len(), 3);

        s.delete("c", "b/1").unwrap();
        s.delete("c", "b/1").unwrap();
        assert!(matches!(s.get("c", "b/1"), Err(DriverError::NotFound(_))));
        s.delete("c", "a/z").unwrap();
        assert!(
            !dir.path().join("c/a").exists(),
            "an emptied directory goes"
        );
        assert!(matches!(
            s.list("nope", "", None, 10),
            Err(DriverError::NotFound(_))
        ));
    }

    /// A put a crash cut short leaves its temporary file; deleting the directory's last
    /// object takes it too, so nothing is left that no listing shows.
    #[test]
    fn the_last_delete_in_a_directory_takes_a_cut_puts_temporary_file() {
        let dir = tempfile::tempdir().unwrap();
        let s = PosixStore::new(dir.path().to_path_buf());
        s.put_container("c").unwrap();
        s.put("c", "b/1", b"one").unwrap();
        s.put("c", "b/2", b"two").unwrap();
        let cut = dir.path().join("c/b").join(temp_name("3"));
        fs::write(&cut, b"half").unwrap();
        s.delete("c", "b/1").unwrap();
        assert!(
            cut.exists(),
            "an object is left beside it: the directory stays"
        );
        s.delete("c", "b/2").unwrap();
        assert!(
            !dir.path().join("c/b").exists(),
            "the directory and its temporary go"
        );
        // A directory holding anything else is never emptied by force.
        s.put("c", "d/1", b"one").unwrap();
        fs::write(dir.path().join("c/d/.keep"), b"").unwrap();
        s.delete("c", "d/1").unwrap();
        assert!(dir.path().join("c/d/.keep").exists());
    }

    #[test]
    fn names_that_could_leave_the_container_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let s = PosixStore::new(dir.path().join("root"));
        fs::create_dir(dir.path().join("root")).unwrap();
        s.put_container("c").unwrap();
        for bad in ["../x", "a/../../x", "/abs", "a//b", ".hidden", "a/.tmp", ""] {
            let err = s.put("c", bad, b"x").unwrap_err();
            assert!(
                matches!(err, DriverError::InvalidArgument(_)),
                "{bad}: {err:?}"
            );
        }
        assert!(s.put_container("..").is_err());
        assert!(s.put_container("a/b").is_err());
    }
}
