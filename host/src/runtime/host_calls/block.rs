//! `block`: granted files and devices as handles, read and written at offsets, and copied
//! host-side so bulk data never has to cross into the guest (zeros copied past the end of a
//! file stay holes).

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::time::Instant;

use wasmtime::component::Resource;

use super::HostState;
use crate::runtime::latest::ashlar::driver::block;
use crate::runtime::resources::BlockHandle;

/// Largest single read a driver may ask for; bulk moves use `block.copy`.
const MAX_READ: u32 = 16 << 20;

/// Block handles one instance may hold open; each is a host file descriptor.
const MAX_OPEN_HANDLES: usize = 64;

/// How much `copy` moves at a time.
const COPY_CHUNK: usize = 1 << 20;
static ZEROS: [u8; COPY_CHUNK] = [0; COPY_CHUNK];

fn io_err(path: &std::path::Path, e: std::io::Error) -> block::IoError {
    match e.kind() {
        std::io::ErrorKind::NotFound => {
            block::IoError::NotFound(format!("{}: {e}", path.display()))
        }
        std::io::ErrorKind::InvalidInput => {
            block::IoError::InvalidArgument(format!("{}: {e}", path.display()))
        }
        _ => block::IoError::Io(format!("{}: {e}", path.display())),
    }
}

impl HostState {
    fn handle(&self, h: &Resource<BlockHandle>) -> Result<&BlockHandle, block::IoError> {
        self.table
            .get(h)
            .map_err(|e| block::IoError::InvalidArgument(format!("stale block handle: {e}")))
    }
}

impl block::Host for HostState {
    fn open(
        &mut self,
        path: String,
        mode: block::OpenMode,
    ) -> Result<Resource<BlockHandle>, block::IoError> {
        let resolved = match self.ctx.capabilities.block_resolve(&path) {
            Ok(p) => p,
            Err(denied) => {
                let msg = denied.to_string();
                self.denied("block open", &msg);
                return Err(block::IoError::Denied(msg));
            }
        };
        if self.open_handles >= MAX_OPEN_HANDLES {
            return Err(block::IoError::Io(format!(
                "too many open block handles: an instance may hold {MAX_OPEN_HANDLES}; drop handles it no longer needs"
            )));
        }
        let writable = !matches!(mode, block::OpenMode::ReadOnly);
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(writable)
            .create(matches!(mode, block::OpenMode::Create))
            .truncate(false)
            .open(&resolved)
            .map_err(|e| io_err(&resolved, e))?;
        let handle = self
            .table
            .push(BlockHandle {
                file,
                path: resolved,
                writable,
            })
            .map_err(|e| block::IoError::Io(format!("too many open handles: {e}")))?;
        self.open_handles += 1;
        Ok(handle)
    }

    /// Copies in chunks inside the host; see the WIT's `block.copy`.
    fn copy(
        &mut self,
        src: Resource<BlockHandle>,
        src_offset: u64,
        dst: Resource<BlockHandle>,
        dst_offset: u64,
        len: u64,
    ) -> Result<u64, block::IoError> {
        let src = self.handle(&src)?;
        let dst = self.handle(&dst)?;
        if !dst.writable {
            return Err(block::IoError::InvalidArgument(format!(
                "{} is open read-only",
                dst.path.display()
            )));
        }
        // A regular file reads zeros past its end: zero chunks copied there are left as
        // holes (and the file extended once at the end), so a sparse source stays sparse.
        let dst_end = match dst.file.metadata() {
            Ok(m) if m.file_type().is_file() => Some(m.len()),
            _ => None,
        };
        let mut buf = vec![0u8; COPY_CHUNK];
        let mut done = 0u64;
        while done < len {
            if Instant::now() >= self.deadline {
                return Err(block::IoError::Io(format!(
                    "copy stopped at the call's deadline after {done} bytes"
                )));
            }
            let want = buf.len().min((len - done) as usize);
            let n = src
                .file
                .read_at(&mut buf[..want], src_offset + done)
                .map_err(|e| io_err(&src.path, e))?;
            if n == 0 {
                break;
            }
            let at = dst_offset + done;
            // A slice comparison is one memcmp, fast in any build.
            let hole = dst_end.is_some_and(|end| at >= end) && buf[..n] == ZEROS[..n];
            if !hole {
                dst.file
                    .write_all_at(&buf[..n], at)
                    .map_err(|e| io_err(&dst.path, e))?;
            }
            done += n as u64;
        }
        if let Some(end) = dst_end {
            let copied_to = dst_offset + done;
            let now = dst.file.metadata().map_err(|e| io_err(&dst.path, e))?.len();
            if copied_to > end && copied_to > now {
                dst.file
                    .set_len(copied_to)
                    .map_err(|e| io_err(&dst.path, e))?;
            }
        }
        Ok(done)
    }
}

impl block::HostHandle for HostState {
    fn read_at(
        &mut self,
        h: Resource<BlockHandle>,
        offset: u64,
        len: u32,
    ) -> Result<Vec<u8>, block::IoError> {
        if len > MAX_READ {
            return Err(block::IoError::InvalidArgument(format!(
                "read of {len} bytes is over the {MAX_READ}-byte limit; use block.copy to move bulk data"
            )));
        }
        let h = self.handle(&h)?;
        let mut buf = vec![0u8; len as usize];
        let mut filled = 0;
        while filled < buf.len() {
            let n = h
                .file
                .read_at(&mut buf[filled..], offset + filled as u64)
                .map_err(|e| io_err(&h.path, e))?;
            if n == 0 {
                break;
            }
            filled += n;
        }
        buf.truncate(filled);
        Ok(buf)
    }

    fn write_at(
        &mut self,
        h: Resource<BlockHandle>,
        offset: u64,
        data: Vec<u8>,
    ) -> Result<u32, block::IoError> {
        let h = self.handle(&h)?;
        if !h.writable {
            return Err(block::IoError::InvalidArgument(format!(
                "{} is open read-only",
                h.path.display()
            )));
        }
        h.file
            .write_all_at(&data, offset)
            .map_err(|e| io_err(&h.path, e))?;
        Ok(data.len() as u32)
    }

    fn size(&mut self, h: Resource<BlockHandle>) -> Result<u64, block::IoError> {
        let h = self.handle(&h)?;
        let meta = h.file.metadata().map_err(|e| io_err(&h.path, e))?;
        if meta.is_file() {
            return Ok(meta.len());
        }
        // A device: its size is where its end is.
        use std::io::Seek;
        let mut f = &h.file;
        f.seek(std::io::SeekFrom::End(0))
            .map_err(|e| io_err(&h.path, e))
    }

    fn set_size(&mut self, h: Resource<BlockHandle>, size: u64) -> Result<(), block::IoError> {
        let h = self.handle(&h)?;
        if !h.writable {
            return Err(block::IoError::InvalidArgument(format!(
                "{} is open read-only",
                h.path.display()
            )));
        }
        let meta = h.file.metadata().map_err(|e| io_err(&h.path, e))?;
        if !meta.is_file() {
            return Err(block::IoError::InvalidArgument(format!(
                "{} is a device; its size is fixed",
                h.path.display()
            )));
        }
        h.file.set_len(size).map_err(|e| io_err(&h.path, e))
    }

    fn flush(&mut self, h: Resource<BlockHandle>) -> Result<(), block::IoError> {
        let h = self.handle(&h)?;
        h.file.sync_data().map_err(|e| io_err(&h.path, e))
    }

    fn discard(
        &mut self,
        h: Resource<BlockHandle>,
        offset: u64,
        len: u64,
    ) -> Result<(), block::IoError> {
        let h = self.handle(&h)?;
        if !h.writable {
            return Err(block::IoError::InvalidArgument(format!(
                "{} is open read-only",
                h.path.display()
            )));
        }
        punch_hole(&h.file, offset, len).map_err(|e| io_err(&h.path, e))
    }

    fn drop(&mut self, h: Resource<BlockHandle>) -> wasmtime::Result<()> {
        self.table.delete(h)?;
        self.open_handles = self.open_handles.saturating_sub(1);
        Ok(())
    }
}

/// Deallocates a byte range of a file, keeping its size (reads return zeros).
#[allow(unsafe_code)] // fallocate has no safe wrapper in std; the fd is valid for the call.
fn punch_hole(file: &File, offset: u64, len: u64) -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    let (Ok(off), Ok(len)) = (i64::try_from(offset), i64::try_from(len)) else {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "range too large",
        ));
    };
    // SAFETY: plain syscall on an fd we own, no pointers involved.
    let rc = unsafe {
        libc::fallocate(
            file.as_raw_fd(),
            libc::FALLOC_FL_PUNCH_HOLE | libc::FALLOC_FL_KEEP_SIZE,
            off,
            len,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}
