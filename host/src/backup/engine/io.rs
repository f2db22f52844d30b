//! The volume's side: a source read in chunks that skips holes, and a target written with
//! positioned writes whose zero ranges become holes (files) or zeros (block devices).

use std::fs::{File, OpenOptions};
use std::io::{Seek, SeekFrom};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{FileExt, FileTypeExt};
use std::path::{Path, PathBuf};

use super::EngineError;

/// A regular file (holes can be found and punched) or a block device.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    File,
    Device,
}

/// An open volume: the source of a backup or the target of a restore.
pub(super) struct Volume {
    file: File,
    kind: Kind,
    /// Its length in bytes (a device's size).
    len: u64,
    path: PathBuf,
}

impl Volume {
    /// Opens `path` to read (`write` false) or to read and write; refuses anything but a
    /// regular file or a block device.
    fn open(path: &Path, write: bool, what: &'static str) -> Result<Self, EngineError> {
        let err = |source| EngineError::Io {
            what,
            path: path.to_path_buf(),
            source,
        };
        let mut file = OpenOptions::new()
            .read(true)
            .write(write)
            .open(path)
            .map_err(err)?;
        let ft = file.metadata().map_err(err)?.file_type();
        let (kind, len) = if ft.is_block_device() {
            (Kind::Device, file.seek(SeekFrom::End(0)).map_err(err)?)
        } else if ft.is_file() {
            (Kind::File, file.metadata().map_err(err)?.len())
        } else {
            return Err(err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "the volume is neither a file nor a block device",
            )));
        };
        Ok(Self {
            file,
            kind,
            len,
            path: path.to_path_buf(),
        })
    }

    /// The source of a backup: at least `size` bytes long.
    pub(super) fn source(path: &Path, size: u64) -> Result<Self, EngineError> {
        let v = Self::open(path, false, "opening the volume to back it up")?;
        if v.len < size {
            return Err(EngineError::SourceTooSmall {
                expected: size,
                actual: v.len,
            });
        }
        Ok(v)
    }

    /// The target of a restore, opened for writing (never truncated).
    pub(super) fn target(path: &Path) -> Result<Self, EngineError> {
        Self::open(path, true, "opening the volume to restore onto")
    }

    pub(super) fn len(&self) -> u64 {
        self.len
    }

    pub(super) fn error(&self, what: &'static str, source: std::io::Error) -> EngineError {
        EngineError::Io {
            what,
            path: self.path.clone(),
            source,
        }
    }

    /// The first offset at or after `from` that may hold data, or `None` when only holes
    /// follow. A block device (or a file system without `SEEK_DATA`) has data everywhere.
    pub(super) fn next_data(&self, from: u64) -> Result<Option<u64>, EngineError> {
        if self.kind == Kind::Device {
            return Ok((from < self.len).then_some(from));
        }
        match seek_data(&self.file, from) {
            Ok(off) => Ok(Some(off)),
            Err(e) if e.raw_os_error() == Some(libc::ENXIO) => Ok(None),
            Err(e) if e.raw_os_error() == Some(libc::EINVAL) => Ok(Some(from)),
            Err(e) => Err(self.error("finding the volume's data", e)),
        }
    }

    pub(super) fn read_at(&self, buf: &mut [u8], offset: u64) -> Result<(), EngineError> {
        self.file
            .read_exact_at(buf, offset)
            .map_err(|e| self.error("reading the volume", e))
    }

    pub(super) fn write_at(&self, buf: &[u8], offset: u64) -> Result<(), EngineError> {
        self.file
            .write_all_at(buf, offset)
            .map_err(|e| self.error("writing the volume", e))
    }

    /// Makes `len` bytes at `offset` read as zeros: a hole in a file, zeroed blocks on a
    /// device (the kernel's zero-out, which thin devices do without writing); written
    /// zeros where neither is supported.
    pub(super) fn zero(&self, offset: u64, len: u64) -> Result<(), EngineError> {
        let mode = match self.kind {
            Kind::File => libc::FALLOC_FL_PUNCH_HOLE | libc::FALLOC_FL_KEEP_SIZE,
            Kind::Device => libc::FALLOC_FL_ZERO_RANGE | libc::FALLOC_FL_KEEP_SIZE,
        };
        match fallocate(&self.file, mode, offset, len) {
            Ok(()) => Ok(()),
            Err(e) if matches!(e.raw_os_error(), Some(libc::EOPNOTSUPP | libc::EINVAL)) => {
                self.write_zeros(offset, len)
            }
            Err(e) => Err(self.error("zeroing the volume", e)),
        }
    }

    /// Writes zeros over `len` bytes at `offset`.
    pub(super) fn write_zeros(&self, offset: u64, len: u64) -> Result<(), EngineError> {
        static ZEROS: [u8; 1 << 16] = [0; 1 << 16];
        let mut done = 0;
        while done < len {
            let n = (len - done).min(ZEROS.len() as u64) as usize;
            self.write_at(&ZEROS[..n], offset + done)?;
            done += n as u64;
        }
        Ok(())
    }

    pub(super) fn sync(&self) -> Result<(), EngineError> {
        self.file
            .sync_data()
            .map_err(|e| self.error("flushing the volume", e))
    }
}

/// Whether `buf` is all zeros (vectorised: no early exit inside a block).
pub(super) fn is_zero(buf: &[u8]) -> bool {
    buf.chunks(4096)
        .all(|b| b.iter().fold(0u8, |acc, &x| acc | x) == 0)
}

/// `lseek(SEEK_DATA)`: the next offset holding data.
#[allow(unsafe_code)] // lseek with SEEK_DATA has no safe wrapper in std; the fd is valid for the call.
fn seek_data(file: &File, from: u64) -> std::io::Result<u64> {
    let from = i64::try_from(from).map_err(|_| std::io::ErrorKind::InvalidInput)?;
    // SAFETY: plain syscall on an fd we own, no pointers involved; the fd's offset is not
    // used by anyone (all reads and writes are positioned).
    let off = unsafe { libc::lseek(file.as_raw_fd(), from, libc::SEEK_DATA) };
    if off < 0 {
        Err(std::io::Error::last_os_error())
    } else {
        Ok(off as u64)
    }
}

/// `fallocate(mode)` over a byte range.
#[allow(unsafe_code)] // fallocate has no safe wrapper in std; the fd is valid for the call.
fn fallocate(file: &File, mode: i32, offset: u64, len: u64) -> std::io::Result<()> {
    let (Ok(off), Ok(len)) = (i64::try_from(offset), i64::try_from(len)) else {
        return Err(std::io::ErrorKind::InvalidInput.into());
    };
    // SAFETY: plain syscall on an fd we own, no pointers involved.
    let rc = unsafe { libc::fallocate(file.as_raw_fd(), mode, off, len) };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}
