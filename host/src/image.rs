//! Images: the Image service (Glance v2) that volumes are made from and uploaded to, and
//! the qemu-img steps between an image file and a volume's device (Cinder's
//! `cinder/image/glance.py` and `cinder/image/image_utils.py`). Nothing here knows of
//! volumes or the database: the volume manager's image flows use it.

pub mod glance;
pub mod qemu;

pub use glance::{Glance, GlanceError, Image};
pub use qemu::{ImageCheck, QemuError};

/// Bytes in a GiB, the unit of volume sizes.
pub const GIB: u64 = 1 << 30;

/// `bytes` rounded up to whole GiB.
pub fn gib_ceil(bytes: u64) -> u64 {
    bytes.div_ceil(GIB)
}
