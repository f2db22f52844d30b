//! qemu-img between image files and volume devices, with Cinder's checks: an image is
//! read only as the format it declares (never probed into another), and refused when
//! its data is not that format, when it names a backing file or an external data file,
//! when it is a VMDK of a kind that can name other files, or when its disk does not fit
//! the volume (`image_utils.check_image_format`, `check_virtual_size`).

use std::path::Path;
use std::process::Stdio;

use serde_json::Value;

/// The image disk formats a volume can be made from, and qemu-img's name for each
/// (Cinder's `QEMU_IMG_FORMAT_MAP`).
pub const DISK_FORMATS: &[(&str, &str)] = &[
    ("raw", "raw"),
    ("qcow2", "qcow2"),
    ("vmdk", "vmdk"),
    ("vdi", "vdi"),
    ("vhd", "vpc"),
    ("vhdx", "vhdx"),
];

/// VMDK kinds that hold their data in the one file (Cinder's default
/// `vmware_allowed_create_types` for images): the others can name files of the host.
const VMDK_SINGLE_FILE: &[&str] = &["monolithicSparse", "streamOptimized"];

/// Why qemu-img refused or failed.
#[derive(Debug, thiserror::Error)]
pub enum QemuError {
    /// The image cannot be used: `reason` is Cinder's wording and safe for a tenant.
    #[error("Image {image_id} is unacceptable: {reason}")]
    Unacceptable { image_id: String, reason: String },
    /// The image's disk is larger than the volume.
    #[error(
        "Image {image_id} is unacceptable: Image virtual size is {image_gib}GB and doesn't fit in a volume of size {volume_gib}GB."
    )]
    TooBig {
        image_id: String,
        image_gib: u64,
        volume_gib: u64,
    },
    /// qemu-img itself failed; the text may carry paths and is for the log only.
    #[error("`{command}` failed: {detail}")]
    Failed { command: String, detail: String },
}

/// What `qemu-img info` says of an image file, once checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageCheck {
    /// qemu-img's name of the format, which `convert -f` is given.
    pub format: String,
    pub virtual_size: u64,
}

/// qemu-img's name of Glance disk format `disk_format`, if a volume can be made from it.
pub fn qemu_format(disk_format: &str) -> Option<&'static str> {
    DISK_FORMATS
        .iter()
        .find(|(d, _)| *d == disk_format)
        .map(|(_, q)| *q)
}

/// qemu-img dies with the host: a host killed mid-conversion leaves no writer behind for
/// the start-up sweep of the image directory to race with.
#[allow(unsafe_code)]
fn dies_with_host(command: &mut tokio::process::Command) {
    let host = std::process::id();
    // SAFETY: the closure calls only async-signal-safe functions and allocates nothing.
    unsafe {
        command.pre_exec(move || {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            // The host may have died before the signal was set up.
            if libc::getppid() as u32 != host {
                return Err(std::io::Error::from_raw_os_error(libc::ESRCH));
            }
            Ok(())
        });
    }
}

async fn run(args: &[&std::ffi::OsStr]) -> Result<Vec<u8>, QemuError> {
    let command = format!(
        "qemu-img {}",
        args.iter()
            .map(|a| a.to_string_lossy())
            .collect::<Vec<_>>()
            .join(" ")
    );
    let mut qemu_img = tokio::process::Command::new("qemu-img");
    dies_with_host(&mut qemu_img);
    let out = qemu_img
        .args(args)
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output()
        .await
        .map_err(|e| QemuError::Failed {
            command: command.clone(),
            detail: e.to_string(),
        })?;
    if !out.status.success() {
        return Err(QemuError::Failed {
            command,
            detail: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        });
    }
    Ok(out.stdout)
}

/// Reads `path` with `qemu-img info` and checks it against the image's declared
/// `disk_format` and the volume's size (`volume_gib`; `None` to skip that check).
pub async fn check_image(
    image_id: &str,
    path: &Path,
    disk_format: Option<&str>,
    volume_gib: Option<u64>,
) -> Result<ImageCheck, QemuError> {
    let unacceptable = |reason: String| QemuError::Unacceptable {
        image_id: image_id.to_string(),
        reason,
    };
    let declared = disk_format.unwrap_or("raw");
    let Some(format) = qemu_format(declared) else {
        return Err(unacceptable(format!(
            "Image disk_format {declared} is not supported; use one of {}.",
            DISK_FORMATS
                .iter()
                .map(|(d, _)| *d)
                .collect::<Vec<_>>()
                .join(", ")
        )));
    };
    let out = run(&["info".as_ref(), "--output=json".as_ref(), path.as_os_str()]).await?;
    let info: Value = serde_json::from_slice(&out).map_err(|e| QemuError::Failed {
        command: "qemu-img info".into(),
        detail: format!("its output is not JSON: {e}"),
    })?;
    let found = info.get("format").and_then(Value::as_str).unwrap_or("");
    if found != format {
        return Err(unacceptable(format!(
            "Image format {found} does not match the declared disk_format {declared}."
        )));
    }
    if let Some(backing) = info.get("backing-filename").and_then(Value::as_str) {
        return Err(unacceptable(format!("fmt={found} backed by: {backing}")));
    }
    let data = info.pointer("/format-specific/data");
    if data
        .and_then(|d| d.get("data-file"))
        .is_some_and(|f| !f.is_null())
    {
        return Err(unacceptable(
            "A qcow2 format image is not allowed to have a data file.".into(),
        ));
    }
    if found == "vmdk" {
        let kind = data
            .and_then(|d| d.get("create-type"))
            .and_then(Value::as_str)
            .unwrap_or("");
        if !VMDK_SINGLE_FILE.contains(&kind) {
            return Err(unacceptable(format!(
                "Invalid VMDK create-type specified: {kind}."
            )));
        }
    }
    let virtual_size = info
        .get("virtual-size")
        .and_then(Value::as_u64)
        .ok_or_else(|| unacceptable("Its virtual size is unknown.".into()))?;
    if let Some(volume_gib) = volume_gib
        && virtual_size > volume_gib * super::GIB
    {
        return Err(QemuError::TooBig {
            image_id: image_id.to_string(),
            image_gib: super::gib_ceil(virtual_size),
            volume_gib,
        });
    }
    Ok(ImageCheck {
        format: format.to_string(),
        virtual_size,
    })
}

/// Writes image file `src` (of qemu-img format `src_format`) onto the existing device or
/// file `dest` as raw data, in place: `dest` keeps its size and allocation.
pub async fn write_to_device(src: &Path, src_format: &str, dest: &Path) -> Result<(), QemuError> {
    run(&[
        "convert".as_ref(),
        "-f".as_ref(),
        src_format.as_ref(),
        "-O".as_ref(),
        "raw".as_ref(),
        "-n".as_ref(),
        src.as_os_str(),
        dest.as_os_str(),
    ])
    .await
    .map(drop)
}

/// Writes raw device `src` as a new image file `dest` of qemu-img format `out_format`
/// (`raw`, `qcow2`).
pub async fn read_from_device(src: &Path, out_format: &str, dest: &Path) -> Result<(), QemuError> {
    run(&[
        "convert".as_ref(),
        "-f".as_ref(),
        "raw".as_ref(),
        "-O".as_ref(),
        out_format.as_ref(),
        src.as_os_str(),
        dest.as_os_str(),
    ])
    .await
    .map(drop)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn qemu_img(args: &[&str]) {
        let ok = std::process::Command::new("qemu-img")
            .args(args)
            .output()
            .unwrap()
            .status
            .success();
        assert!(ok, "qemu-img {args:?}");
    }

    #[tokio::test]
    async fn images_are_read_only_as_what_they_declare_and_must_fit() {
        let dir = tempfile::tempdir().unwrap();
        let p = |n: &str| dir.path().join(n);
        let s = |n: &str| p(n).to_string_lossy().into_owned();
        qemu_img(&["create", "-f", "qcow2", &s("base.qcow2"), "2G"]);
        qemu_img(&["create", "-f", "raw", &s("plain.raw"), "1G"]);
        qemu_img(&[
            "create",
            "-f",
            "qcow2",
            "-b",
            &s("base.qcow2"),
            "-F",
            "qcow2",
            &s("child.qcow2"),
        ]);

        let ok = check_image("i", &p("base.qcow2"), Some("qcow2"), Some(2))
            .await
            .unwrap();
        assert_eq!(ok.format, "qcow2");
        assert_eq!(ok.virtual_size, 2 << 30);

        let e = check_image("i", &p("base.qcow2"), Some("qcow2"), Some(1))
            .await
            .unwrap_err();
        assert!(
            matches!(
                e,
                QemuError::TooBig {
                    image_gib: 2,
                    volume_gib: 1,
                    ..
                }
            ),
            "{e}"
        );
        assert!(
            e.to_string()
                .contains("doesn't fit in a volume of size 1GB"),
            "{e}"
        );

        let e = check_image("i", &p("base.qcow2"), Some("raw"), None)
            .await
            .unwrap_err();
        assert!(
            e.to_string()
                .contains("does not match the declared disk_format raw"),
            "{e}"
        );

        let e = check_image("i", &p("child.qcow2"), Some("qcow2"), None)
            .await
            .unwrap_err();
        assert!(e.to_string().contains("backed by"), "{e}");

        let e = check_image("i", &p("plain.raw"), Some("iso"), None)
            .await
            .unwrap_err();
        assert!(
            e.to_string().contains("disk_format iso is not supported"),
            "{e}"
        );

        assert!(
            check_image("i", &p("plain.raw"), Some("raw"), Some(1))
                .await
                .is_ok()
        );
    }
}
