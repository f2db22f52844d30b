//! A volume's local device, as the host reads and writes it: a source read in chunks that
//! skips holes, a target written with positioned writes whose zero ranges become holes
//! (files) or zeros (block devices), and the sparse-aware copy between two of them that a
//! migration makes. The backup engine reads and writes volumes through it too.

use std::fs::{File, OpenOptions};
use std::io::{Seek, SeekFrom};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{FileExt, FileTypeExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

/// Reading or writing a device failed.
#[derive(Debug, thiserror::Error)]
#[error("{what} failed: {source}")]
pub struct DeviceError {
    /// What was being done, in words without a path ("reading the volume").
    pub what: &'static str,
    /// The file or device, for the operator only.
    pub path: PathBuf,
    #[source]
    pub source: std::io::Error,
}

/// A regular file (holes can be found and punched) or a block device.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    File,
    Device,
}

/// An open volume: a source to read or a target to write.
pub struct Volume {
    file: File,
    kind: Kind,
    /// Its length in bytes (a device's size).
    len: u64,
    path: PathBuf,
}

impl Volume {
    /// Opens `path` to read (`write` false) or to read and write; refuses anything but a
    /// regular file or a block device.
    fn open(path: &Path, write: bool, what: &'static str) -> Result<Self, DeviceError> {
        let err = |source| DeviceError {
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

    /// A volume to read.
    pub fn source(path: &Path) -> Result<Self, DeviceError> {
        Self::open(path, false, "opening the volume to read it")
    }

    /// A volume to write, opened for reading and writing (never truncated).
    pub fn target(path: &Path) -> Result<Self, DeviceError> {
        Self::open(path, true, "opening the volume to write it")
    }

    pub fn size(&self) -> u64 {
        self.len
    }

    pub fn error(&self, what: &'static str, source: std::io::Error) -> DeviceError {
        DeviceError {
            what,
            path: self.path.clone(),
            source,
        }
    }

    /// The first offset at or after `from` that may hold data, or `None` when only holes
    /// follow. A block device (or a file system without `SEEK_DATA`) has data everywhere.
    pub fn next_data(&self, from: u64) -> Result<Option<u64>, DeviceError> {
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

    pub fn read_at(&self, buf: &mut [u8], offset: u64) -> Result<(), DeviceError> {
        self.file
            .read_exact_at(buf, offset)
            .map_err(|e| self.error("reading the volume", e))
    }

    pub fn write_at(&self, buf: &[u8], offset: u64) -> Result<(), DeviceError> {
        self.file
            .write_all_at(buf, offset)
            .map_err(|e| self.error("writing the volume", e))
    }

    /// Makes `len` bytes at `offset` read as zeros: a hole in a file, zeroed blocks on a
    /// device (the kernel's zero-out, which thin devices do without writing); written
    /// zeros where neither is supported.
    pub fn zero(&self, offset: u64, len: u64) -> Result<(), DeviceError> {
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
    pub fn write_zeros(&self, offset: u64, len: u64) -> Result<(), DeviceError> {
        static ZEROS: [u8; 1 << 16] = [0; 1 << 16];
        let mut done = 0;
        while done < len {
            let n = (len - done).min(ZEROS.len() as u64) as usize;
            self.write_at(&ZEROS[..n], offset + done)?;
            done += n as u64;
        }
        Ok(())
    }

    pub fn sync(&self) -> Result<(), DeviceError> {
        self.file
            .sync_data()
            .map_err(|e| self.error("flushing the volume", e))
    }
}

/// Whether `buf` is all zeros (vectorised: no early exit inside a block).
pub fn is_zero(buf: &[u8]) -> bool {
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

/// What [`copy`] moved.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Copied {
    /// Bytes read from the source's data (holes are not read).
    pub read: u64,
    /// Bytes written to the target (zero runs are not written).
    pub written: u64,
}

/// The unit a copy reads, tests for zeros and writes.
const COPY_CHUNK: usize = 1 << 20;

/// Copies the first `len` bytes of the volume at `src` onto the volume at `dst`, sparse
/// both ways: the source's holes are not read, and every run that is holes or zeros is
/// made zero on the target (a hole in a file, the kernel's zero-out on a device) instead
/// of written. A reader thread keeps the next chunks coming while this one writes; at
/// most four chunks are in memory. `progress` is told the bytes done so far after each
/// chunk; `cancel` stops the copy between chunks. The target is flushed before it
/// returns.
pub fn copy(
    src: &Path,
    dst: &Path,
    len: u64,
    progress: &mut dyn FnMut(u64),
    cancel: &AtomicBool,
) -> Result<Copied, DeviceError> {
    let source = Volume::source(src)?;
    let target = Volume::target(dst)?;
    let short = |v: &Volume, what: &'static str| DeviceError {
        what,
        path: v.path.clone(),
        source: std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!("{} bytes long, {len} needed", v.len),
        ),
    };
    if source.len < len {
        return Err(short(&source, "reading the source volume"));
    }
    if target.len < len {
        return Err(short(&target, "writing the target volume"));
    }
    let cancelled = || DeviceError {
        what: "copying the volume",
        path: dst.to_path_buf(),
        source: std::io::Error::new(std::io::ErrorKind::Interrupted, "cancelled"),
    };

    // The reader sends each chunk as (offset, data), with `None` data for a hole.
    let (full_tx, full_rx) =
        std::sync::mpsc::sync_channel::<Result<(u64, Option<Vec<u8>>), DeviceError>>(3);
    let (free_tx, free_rx) = std::sync::mpsc::channel::<Vec<u8>>();
    for _ in 0..4 {
        let _ = free_tx.send(Vec::with_capacity(COPY_CHUNK));
    }
    let mut copied = Copied::default();
    std::thread::scope(|s| -> Result<(), DeviceError> {
        let source = &source;
        s.spawn(move || {
            let mut pos = 0u64;
            while pos < len {
                if cancel.load(Ordering::Relaxed) {
                    return;
                }
                let start = match source.next_data(pos) {
                    Ok(Some(d)) => d.min(len),
                    Ok(None) => len,
                    Err(e) => {
                        let _ = full_tx.send(Err(e));
                        return;
                    }
                };
                if start > pos {
                    // A hole from pos to start.
                    if full_tx.send(Ok((pos, None))).is_err() {
                        return;
                    }
                    // The hole's length travels as the next chunk's offset.
                    pos = start;
                    continue;
                }
                let n = (COPY_CHUNK as u64).min(len - pos);
                let Ok(mut buf) = free_rx.recv() else { return };
                buf.resize(n as usize, 0);
                if let Err(e) = source.read_at(&mut buf, pos) {
                    let _ = full_tx.send(Err(e));
                    return;
                }
                if full_tx.send(Ok((pos, Some(buf)))).is_err() {
                    return;
                }
                pos += n;
            }
        });

        // Owned here, so that leaving early drops them and the reader, blocked on either,
        // returns before the scope joins it.
        let (full_rx, free_tx) = (full_rx, free_tx);
        // Zero runs are coalesced and made zero at once when data follows (or at the end).
        let mut zero_from: Option<u64> = None;
        let mut next = 0u64;
        let flush_zeros = |from: &mut Option<u64>, to: u64| -> Result<(), DeviceError> {
            if let Some(f) = from.take()
                && to > f
            {
                target.zero(f, to - f)?;
            }
            Ok(())
        };
        for item in full_rx.iter() {
            if cancel.load(Ordering::Relaxed) {
                return Err(cancelled());
            }
            let (offset, data) = item?;
            // Whatever lies between the last chunk's end and this offset is a hole.
            if offset > next {
                zero_from.get_or_insert(next);
            }
            match data {
                None => {
                    zero_from.get_or_insert(offset);
                    next = offset;
                }
                Some(buf) => {
                    let end = offset + buf.len() as u64;
                    copied.read += buf.len() as u64;
                    if is_zero(&buf) {
                        zero_from.get_or_insert(offset);
                    } else {
                        flush_zeros(&mut zero_from, offset)?;
                        target.write_at(&buf, offset)?;
                        copied.written += buf.len() as u64;
                    }
                    let _ = free_tx.send(buf);
                    next = end;
                    progress(end);
                }
            }
        }
        if cancel.load(Ordering::Relaxed) {
            return Err(cancelled());
        }
        if next < len {
            zero_from.get_or_insert(next);
        }
        flush_zeros(&mut zero_from, len)?;
        progress(len);
        Ok(())
    })?;
    target.sync()?;
    Ok(copied)
}
