"""A volume driver in Python: each volume is a file ``volume-<id>`` in a directory (a
mounted NFS share, or a local directory for a single host), raw or qcow2, made and
changed with ``qemu-img`` through the exec capability, as the ``nfs`` driver does.

Snapshots are copies ``snapshot-<id>`` beside the volume (in the volume's format);
volumes from snapshots and clones are ``qemu-img convert`` copies grown to the new size.

Settings (the backend's section of the operator's config):
- ``share_path`` (required): the directory volumes live in, an absolute path.
- ``nfs_export``: the export clients mount, ``host:/path`` (default
  ``localhost:<share_path>``).
- ``volume_format``: ``raw`` (default) or ``qcow2``.
- ``reserved_percentage`` (default 0), ``max_over_subscription_ratio`` (default 20.0).
"""

import json

from ashlar_sdk import (
    VolumeDriver,
    backend_unavailable,
    capacity_exceeded,
    check_id,
    config,
    connection_info,
    exec,
    internal,
    invalid_argument,
    is_not_found,
    log,
    model_update,
    not_found,
    not_supported,
    pool_stats,
    volume_exports,
    volume_stats,
    wants_local,
)

VERSION = "0.1.0"
GIB = 1 << 30


class Settings:
    def __init__(self):
        share = config.require("share_path").rstrip("/")
        if not share.startswith("/"):
            raise invalid_argument(f"share_path `{share}` must be an absolute path")
        self.share_path = share
        self.export = config.get("nfs_export", f"localhost:{share}").rstrip("/")
        self.format = config.get("volume_format", "raw")
        if self.format not in ("raw", "qcow2"):
            raise invalid_argument(
                f"volume_format `{self.format}` is not supported; use `raw` or `qcow2`"
            )
        reserved = config.get("reserved_percentage", "0")
        if not reserved.isdigit() or int(reserved) > 100:
            raise invalid_argument(
                f"reserved_percentage `{reserved}` must be a whole number from 0 to 100"
            )
        self.reserved_percentage = int(reserved)
        ratio = config.get("max_over_subscription_ratio", "20.0")
        try:
            self.max_over_subscription_ratio = float(ratio)
        except ValueError:
            raise invalid_argument(
                f"max_over_subscription_ratio `{ratio}` must be a number"
            ) from None

    def volume_path(self, volume_id: str) -> str:
        check_id("volume", volume_id)
        return f"{self.share_path}/volume-{volume_id}"

    def snapshot_path(self, snapshot_id: str) -> str:
        check_id("snapshot", snapshot_id)
        return f"{self.share_path}/snapshot-{snapshot_id}"


def parse_df(out: str):
    """``df -P -B 1`` → (total, available) bytes."""
    lines = out.strip().splitlines()
    if len(lines) < 2:
        return None
    fields = lines[1].split()
    if len(fields) < 6:
        return None
    try:
        return int(fields[1]), int(fields[3])
    except ValueError:
        return None


class PyExampleDriver(VolumeDriver):
    def __init__(self):
        self._settings = None

    def settings(self) -> Settings:
        if self._settings is None:
            self._settings = Settings()
        return self._settings

    # --- helpers -------------------------------------------------------------------

    def run(self, program: str, *args: str) -> str:
        out = exec.run(program, list(args))
        if out.status == 0:
            return exec.stdout_of(out)
        err = exec.stderr_of(out)
        if "No space left on device" in err or "Disk quota exceeded" in err:
            raise capacity_exceeded(f"share {self.settings().share_path} is full: {err}")
        if "No such file or directory" in err:
            raise not_found(f"`{program} {' '.join(args)}`: {err}")
        raise internal(f"`{program} {' '.join(args)}` exited with status {out.status}: {err}")

    def share(self):
        s = self.settings()
        out = exec.run("df", ["-P", "-B", "1", s.share_path], 15_000)
        if out.status != 0:
            raise backend_unavailable(
                f"share {s.share_path} cannot be checked (df: {exec.stderr_of(out)}): mount "
                f"the export {s.export} there, or create the directory"
            )
        usage = parse_df(exec.stdout_of(out))
        if usage is None:
            raise internal(f"cannot parse df output: {exec.stdout_of(out)}")
        return usage

    def info(self, path: str):
        text = self.run("qemu-img", "info", "--force-share", "--output=json", path)
        try:
            return json.loads(text)
        except ValueError:
            raise internal(f"cannot parse qemu-img info: {text}") from None

    def remove(self, path: str) -> None:
        self.run("rm", "-f", path)

    def copy_into_volume(self, src: str, src_format: str, volume):
        """Copies ``src`` into a new volume file, grown to the volume's size; leaves nothing
        half made."""
        s = self.settings()
        dst = s.volume_path(volume.id)
        try:
            self.run("qemu-img", "convert", "-f", src_format, "-O", s.format, src, dst)
            if self.info(dst)["virtual-size"] < volume.size_gib * GIB:
                self.run("qemu-img", "resize", "-f", s.format, dst, str(volume.size_gib * GIB))
        except Exception:
            self.remove(dst)
            raise
        return model_update(location=s.export)

    # --- the contract ----------------------------------------------------------------

    def do_setup(self):
        self._settings = Settings()

    def check_for_setup_error(self):
        self.share()

    def get_volume_stats(self, refresh):
        total, available = self.share()
        s = self.settings()
        du = exec.run("du", ["-sb", "--apparent-size", s.share_path])
        provisioned = 0
        if du.status == 0:
            provisioned = int(exec.stdout_of(du).split()[0])

        def gb(b: int) -> float:
            return round(b / GIB, 2)

        pool = pool_stats(
            s.export,
            gb(total),
            gb(available),
            provisioned_capacity_gb=gb(provisioned),
            allocated_capacity_gb=gb(provisioned),
            reserved_percentage=s.reserved_percentage,
            max_over_subscription_ratio=s.max_over_subscription_ratio,
            thin=True,
            capabilities={"volume_format": s.format, "snapshot_support": True},
        )
        return volume_stats(config.backend_name(), "Open Source", VERSION, "nfs", [pool])

    def create_volume(self, volume):
        s = self.settings()
        path = s.volume_path(volume.id)
        self.share()
        size = str(volume.size_gib * GIB)
        self.run("qemu-img", "create", "-f", s.format, "-o", "preallocation=off", path, size)
        log.info(f"created volume-{volume.id} ({volume.size_gib} GiB)")
        return model_update(location=s.export)

    def delete_volume(self, volume):
        # An unmounted share must not make the delete look done.
        self.share()
        self.remove(self.settings().volume_path(volume.id))

    def extend_volume(self, volume, new_size_gib):
        s = self.settings()
        path = s.volume_path(volume.id)
        info = self.info(path)
        if new_size_gib * GIB < info["virtual-size"]:
            raise invalid_argument(f"cannot shrink volume-{volume.id} to {new_size_gib} GiB")
        self.run("qemu-img", "resize", "-f", info["format"], path, str(new_size_gib * GIB))

    def create_snapshot(self, snapshot, volume):
        s = self.settings()
        src = s.volume_path(volume.id)
        dst = s.snapshot_path(snapshot.id)
        fmt = self.info(src)["format"]
        try:
            self.run("qemu-img", "convert", "-f", fmt, "-O", fmt, src, dst)
        except Exception:
            self.remove(dst)
            raise
        return model_update(location=dst)

    def delete_snapshot(self, snapshot, volume):
        self.share()
        self.remove(self.settings().snapshot_path(snapshot.id))

    def create_volume_from_snapshot(self, volume, snapshot):
        src = self.settings().snapshot_path(snapshot.id)
        return self.copy_into_volume(src, self.info(src)["format"], volume)

    def create_cloned_volume(self, volume, source):
        src = self.settings().volume_path(source.id)
        return self.copy_into_volume(src, self.info(src)["format"], volume)

    def initialize_connection(self, volume, connector):
        s = self.settings()
        path = s.volume_path(volume.id)
        try:
            fmt = self.info(path)["format"]
        except Exception as e:
            if is_not_found(e):
                self.share()
            raise
        if wants_local(connector):
            # The host's own connector: a target driver exports the file itself.
            if fmt != "raw":
                raise not_supported(
                    f"volume-{volume.id} is a {fmt} file, which a target driver cannot "
                    "export as a block device; use volume_format = raw"
                )
            return connection_info("local", {"device_path": path})
        return connection_info(
            "nfs",
            {
                "export": s.export,
                "name": f"volume-{volume.id}",
                "format": fmt,
                "volume_id": volume.id,
            },
        )


VolumeDriverCore, VolumeDriverExtras, VolumeDriverHealth = volume_exports(PyExampleDriver)
