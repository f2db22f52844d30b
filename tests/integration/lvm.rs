//! The bundled lvm driver through the Cinder API.
//!
//! Two kinds of test, each saying which it is:
//! - REAL: lvm2 itself on a volume group over a loop device. This machine has no
//!   device-mapper, so lvm2 runs metadata only (`activation = false` → `--driverloaded n`):
//!   LVs are made, grown and removed for real, but have no device nodes.
//! - RECORDED: what needs device-mapper (snapshots, thin pools, device nodes, so clones,
//!   volume_clear and attach) runs against stand-in lvm2 programs found first through the
//!   backend's `exec_dirs`. They append their command line to a log and emulate the effect
//!   (an LV is a record plus a regular file as its "device node"), and the tests assert the
//!   exact command lines the driver issued and the bytes that moved.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::common::{Client, Server, Tgtd, read_at, write_at};

const GIB: u64 = 1 << 30;
const MIB: u64 = 1 << 20;

/// Runs a host program (lvm2, losetup, truncate) and returns its stdout; panics with its
/// stderr when it fails.
pub(crate) fn run(program: &str, args: &[&str]) -> String {
    let out = Command::new(program)
        .args(args)
        .env("LVM_SUPPRESS_FD_WARNINGS", "1")
        .output()
        .unwrap_or_else(|e| panic!("cannot run {program}: {e}"));
    assert!(
        out.status.success(),
        "{program} {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A real volume group on a loop device over a sparse file, with a name no other test
/// uses. Dropping it removes the VG, the PV label, the loop device and the file, also when
/// the test failed half-way.
pub(crate) struct LoopVg {
    pub(crate) name: String,
    device: String,
    vg_made: bool,
    _dir: tempfile::TempDir,
}

impl LoopVg {
    pub(crate) fn new(size: &str) -> LoopVg {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("pv.img");
        run("truncate", &["-s", size, file.to_str().unwrap()]);
        let device = run("losetup", &["-f", "--show", file.to_str().unwrap()])
            .trim()
            .to_string();
        let id = uuid::Uuid::new_v4().simple().to_string();
        let mut vg = LoopVg {
            name: format!("ashlar-test-{}", &id[..12]),
            device,
            vg_made: false,
            _dir: dir,
        };
        run("pvcreate", &["-q", &vg.device]);
        run("vgcreate", &["-q", &vg.name, &vg.device]);
        vg.vg_made = true;
        vg
    }

    /// (size, free) in bytes, as `vgs` reports them.
    fn vgs(&self) -> (u64, u64) {
        let out = run(
            "vgs",
            &[
                "--noheadings",
                "--units",
                "b",
                "--nosuffix",
                "-o",
                "vg_size,vg_free",
                &self.name,
            ],
        );
        let n: Vec<u64> = out.split_whitespace().map(|f| f.parse().unwrap()).collect();
        (n[0], n[1])
    }

    /// LV name → size in bytes, as `lvs` reports them.
    pub(crate) fn lvs(&self) -> BTreeMap<String, u64> {
        let out = run(
            "lvs",
            &[
                "--noheadings",
                "--units",
                "b",
                "--nosuffix",
                "-o",
                "lv_name,lv_size",
                &self.name,
            ],
        );
        out.lines()
            .filter_map(|l| {
                let mut f = l.split_whitespace();
                Some((f.next()?.to_string(), f.next()?.parse().ok()?))
            })
            .collect()
    }
}

impl Drop for LoopVg {
    fn drop(&mut self) {
        let quiet = |program: &str, args: &[&str]| {
            let _ = Command::new(program)
                .args(args)
                .env("LVM_SUPPRESS_FD_WARNINGS", "1")
                .output();
        };
        if self.vg_made {
            quiet("vgremove", &["-f", "--driverloaded", "n", &self.name]);
        }
        quiet("pvremove", &["-ff", "-y", &self.device]);
        quiet("losetup", &["-d", &self.device]);
    }
}

/// Rounds bytes to GiB with two decimals, as the driver reports capacities.
fn gb(bytes: u64) -> f64 {
    (bytes as f64 / GIB as f64 * 100.0).round() / 100.0
}

/// Waits until the backend's one pool (from `get_pools?detail=true`) satisfies `ok`.
async fn pool_where(admin: &Client, what: &str, ok: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let r = admin.get("scheduler-stats/get_pools?detail=true").await;
        assert_eq!(r.status, 200, "{}", r.body);
        let pools = r.body["pools"].as_array().unwrap().clone();
        assert_eq!(pools.len(), 1, "one pool for the volume group: {}", r.body);
        if ok(&pools[0]) {
            return pools[0].clone();
        }
        assert!(
            Instant::now() < deadline,
            "pool never showed {what}: {}",
            pools[0]
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn extend(c: &Client, id: &str, new_size: u64) {
    let r = c
        .post(
            &format!("volumes/{id}/action"),
            json!({"os-extend": {"new_size": new_size}}),
        )
        .await;
    assert_eq!(r.status, 202, "{}", r.body);
}

async fn snapshot(c: &Client, volume: &str) -> String {
    let r = c
        .post("snapshots", json!({"snapshot": {"volume_id": volume}}))
        .await;
    assert_eq!(r.status, 202, "{}", r.body);
    r.body["snapshot"]["id"].as_str().unwrap().to_string()
}

async fn delete(c: &Client, kind: &str, id: &str) {
    let r = c.delete(&format!("{kind}/{id}")).await;
    assert_eq!(r.status, 202, "delete {kind}/{id}: {}", r.body);
    assert!(c.wait(kind, id).await.is_null(), "{kind}/{id} still listed");
}

pub(crate) const LVM_PROGRAMS: [&str; 6] =
    ["vgs", "lvs", "lvcreate", "lvextend", "lvremove", "lvchange"];

// REAL: lvm2 on a loop device; thick volumes made, grown and removed through the API, the
// pool's numbers checked against `vgs`, and a grow past the free space failing with
// lvm2's own refusal.
#[tokio::test]
async fn thick_volumes_on_a_real_volume_group() {
    let vg = LoopVg::new("4G");
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("dev")).unwrap();
    let server = Server::start_in(
        dir.path(),
        &format!(
            r#"
stats_interval_secs = 1

[backends.lvm1]
driver = "lvm"
grants.exec = {LVM_PROGRAMS:?}
grants.block = ["@DIR@/dev", "/dev/zero"]
settings.volume_group = "{}"
settings.device_dir = "@DIR@/dev"
settings.activation = "false"
"#,
            vg.name
        ),
    );
    let c = server.client("alice:proj-a");
    let admin = server.client("admin:proj-a");

    let (size, free0) = vg.vgs();
    let pool = pool_where(&admin, "the empty volume group", |p| {
        p["capabilities"]["free_capacity_gb"] == json!(gb(free0))
    })
    .await;
    assert_eq!(pool["name"], format!("ashlar@lvm1#{}", vg.name));
    let caps = &pool["capabilities"];
    assert_eq!(caps["total_capacity_gb"], json!(gb(size)));
    assert_eq!(caps["volume_backend_name"], "lvm1");
    assert_eq!(caps["vendor_name"], "Open Source");
    assert_eq!(caps["driver_version"], "0.1.0");
    assert_eq!(caps["storage_protocol"], "iSCSI");
    assert_eq!(caps["thick_provisioning_support"], true);
    assert_eq!(caps["thin_provisioning_support"], false);
    assert_eq!(
        caps["snapshot_support"], false,
        "no snapshots without device-mapper"
    );
    assert_eq!(caps["total_volumes"], 0);
    assert_eq!(
        caps["location_info"],
        format!("LVMVolumeDriver:ashlar:{}:default:0", vg.name)
    );

    // Create: an LV of exactly the volume's size, named after it.
    let vol = c.create_volume(json!({"size": 1, "name": "real"})).await;
    c.wait_status("volumes", &vol, "available").await;
    let lv = format!("volume-{vol}");
    assert_eq!(vg.lvs(), BTreeMap::from([(lv.clone(), GIB)]));
    let (_, free1) = vg.vgs();
    assert_eq!(free1, free0 - GIB);
    pool_where(&admin, "the new volume", |p| {
        p["capabilities"]["free_capacity_gb"] == json!(gb(free1))
            && p["capabilities"]["total_volumes"] == 1
    })
    .await;

    // Extend: the LV grows to 2 GiB.
    extend(&c, &vol, 2).await;
    let v = c.wait_status("volumes", &vol, "available").await;
    assert_eq!(v["size"], 2);
    assert_eq!(vg.lvs()[&lv], 2 * GIB);
    let (_, free2) = vg.vgs();
    assert_eq!(free2, free0 - 2 * GIB);
    pool_where(&admin, "the grown volume", |p| {
        p["capabilities"]["free_capacity_gb"] == json!(gb(free2))
            && p["capabilities"]["allocated_capacity_gb"] == json!(2.0)
    })
    .await;

    // A snapshot needs device-mapper: refused, naming the setting.
    let snap = snapshot(&c, &vol).await;
    let s = c.wait("snapshots", &snap).await;
    assert_eq!(s["status"], "error", "{s}");
    let msgs = c.message_details_for(&snap).await;
    assert!(
        msgs.iter()
            .any(|m| m.contains("needs device-mapper") && m.contains("activation = true")),
        "{msgs:?}"
    );
    assert!(vg.lvs().len() == 1, "no snapshot LV: {:?}", vg.lvs());
    delete(&c, "snapshots", &snap).await;

    // Growing past what the volume group could ever hold is refused at the API.
    let r = c
        .post(
            &format!("volumes/{vol}/action"),
            json!({"os-extend": {"new_size": 40}}),
        )
        .await;
    assert_eq!(r.status, 413, "{}", r.body);
    assert!(r.error_message().contains("can ever hold"), "{}", r.body);

    // Growing past the free space (another volume holds the rest): lvm2 refuses, the
    // error says what to do.
    let other = c.create_volume(json!({"size": 1, "name": "filler"})).await;
    c.wait_status("volumes", &other, "available").await;
    extend(&c, &vol, 3).await;
    let v = c.wait("volumes", &vol).await;
    assert_eq!(v["status"], "error_extending");
    let msgs = c.message_details_for(&vol).await;
    assert!(
        msgs.iter()
            .any(|m| m.contains("Insufficient free space") && m.contains("vgextend")),
        "{msgs:?}"
    );
    assert_eq!(vg.lvs()[&lv], 2 * GIB, "the LV is unchanged");

    // Delete (allowed from error_extending): the LV is gone and the space is back.
    delete(&c, "volumes", &vol).await;
    delete(&c, "volumes", &other).await;
    assert!(vg.lvs().is_empty(), "{:?}", vg.lvs());
    assert_eq!(vg.vgs().1, free0);
    pool_where(&admin, "the space given back", |p| {
        p["capabilities"]["free_capacity_gb"] == json!(gb(free0))
            && p["capabilities"]["total_volumes"] == 0
    })
    .await;
}

/// A stand-in for the lvm2 programs (see the module comment). One script serves every
/// program name; `standin.env` beside it says where its state lives.
pub(crate) const STANDIN: &str = r#"#!/bin/sh
# Recording stand-in for lvm2: logs its command line, then emulates the effect. An LV is
# a record `size attr pool origin` in $STATE/lvs and, while active, a regular file as its
# device node under $DEVDIR/$VG.
set -eu
PATH=/usr/bin:/bin
here=$(cd "$(dirname "$0")" && pwd)
. "$here/standin.env"
prog=$(basename "$0")
mkdir -p "$STATE/lvs" "$STATE/inactive" "$STATE/removed" "$DEVDIR/$VG" "$DEVDIR/mapper"
# One command at a time, as lvm2's own VG lock makes it: a stats poll's `vgs` must not
# read a record another command is still writing.
exec 9>"$STATE/lock"
flock 9
echo "$prog $*" >> "$STATE/commands"

die() { echo "  $*" >&2; exit 5; }
bytes() {
    case "$1" in
        *g) echo $(( ${1%g} * 1073741824 )) ;;
        *m) echo $(( ${1%m} * 1048576 )) ;;
        *) echo "stand-in: size $1 has no unit" >&2; exit 3 ;;
    esac
}
rec() { echo "$STATE/lvs/$1"; }
dev() { echo "$DEVDIR/$VG/$1"; }
cow() { echo "$DEVDIR/mapper/$(echo "$VG" | sed 's/-/--/g')-$(echo "$1" | sed 's/-/--/g')-cow"; }
need() { [ -e "$(rec "$1")" ] || die "Failed to find logical volume \"$VG/$1\""; }
# Space thick LVs, snapshots and the thin pool take from the VG.
used() {
    total=0
    for f in "$STATE"/lvs/*; do
        [ -e "$f" ] || continue
        read -r s a p o < "$f"
        [ "$p" = - ] && total=$((total + s))
    done
    echo "$total"
}
room() { [ $(( $(used) + $1 )) -le "$VG_SIZE" ] || die "Volume group \"$VG\" has insufficient free space: $1 bytes required."; }
data_of() { if [ -e "$(dev "$1")" ]; then dev "$1"; else echo "$STATE/inactive/$1"; fi; }

case "$prog" in
vgs)
    n=$(ls "$STATE/lvs" | wc -l)
    printf '  {\n      "report": [\n          {\n              "vg": [\n                  {"vg_name":"%s", "vg_size":"%s", "vg_free":"%s", "lv_count":"%s"}\n              ]\n          }\n      ]\n  }\n' \
        "$VG" "$VG_SIZE" "$((VG_SIZE - $(used)))" "$n"
    ;;
lvs)
    rows=""
    for f in "$STATE"/lvs/*; do
        [ -e "$f" ] || continue
        read -r s a p o < "$f"
        [ "$p" = - ] && p=""
        [ "$o" = - ] && o=""
        pct=""
        case "$a" in t*|V*) pct="0.00" ;; esac
        row=$(printf '{"lv_name":"%s", "lv_size":"%s", "lv_attr":"%s", "pool_lv":"%s", "origin":"%s", "data_percent":"%s"}' \
            "$(basename "$f")" "$s" "$a" "$p" "$o" "$pct")
        rows="${rows:+$rows, }$row"
    done
    printf '  {\n      "report": [\n          {\n              "lv": [\n                  %s\n              ]\n          }\n      ]\n  }\n' "$rows"
    ;;
lvcreate)
    name=""; size=""; virt=""; origin=""; thin=""; target=""
    while [ $# -gt 0 ]; do
        case "$1" in
            --yes) ;;
            --driverloaded) shift ;;
            -n|--name) shift; name=$1 ;;
            -L) shift; size=$(bytes "$1") ;;
            -V) shift; virt=$(bytes "$1") ;;
            -T) thin=1 ;;
            --snapshot) shift; origin=${1#*/} ;;
            -*) echo "stand-in lvcreate: unexpected option $1" >&2; exit 3 ;;
            *) target=$1 ;;
        esac
        shift
    done
    if [ -n "$thin" ] && [ -z "$virt" ]; then
        room "$size"
        echo "$size twi-a-tz-- - -" > "$(rec "${target#*/}")"
        exit 0
    fi
    [ -e "$(rec "$name")" ] && die "Logical Volume \"$name\" already exists in volume group \"$VG\""
    if [ -n "$origin" ]; then
        need "$origin"
        read -r os oa op oo < "$(rec "$origin")"
        if [ "$op" != - ]; then
            # A thin snapshot skips activation: no device node until lvchange -K.
            cp --sparse=always "$(data_of "$origin")" "$STATE/inactive/$name"
            echo "$os Vwi---tz-k $op $origin" > "$(rec "$name")"
        else
            room "$size"
            cp --sparse=always "$(dev "$origin")" "$(dev "$name")"
            echo "$size swi-a-s--- - $origin" > "$(rec "$name")"
            echo "$os owi-a----- - $oo" > "$(rec "$origin")"
            # The exception store holds the origin's old blocks.
            truncate -s "$size" "$(cow "$name")"
            printf 'old-blocks-of-%s' "$origin" | dd of="$(cow "$name")" conv=notrunc status=none
        fi
    elif [ -n "$virt" ]; then
        echo "$virt Vwi-a-tz-- ${target#*/} -" > "$(rec "$name")"
        truncate -s "$virt" "$(dev "$name")"
    else
        room "$size"
        echo "$size -wi-a----- - -" > "$(rec "$name")"
        truncate -s "$size" "$(dev "$name")"
    fi
    ;;
lvchange)
    name=${4#*/}
    need "$name"
    read -r s a p o < "$(rec "$name")"
    [ -e "$STATE/inactive/$name" ] && mv "$STATE/inactive/$name" "$(dev "$name")"
    echo "$s Vwi-a-tz-- $p $o" > "$(rec "$name")"
    ;;
lvextend)
    [ "$1" = --driverloaded ] && shift 2
    name=${3#*/}
    need "$name"
    new=$(bytes "$2")
    read -r s a p o < "$(rec "$name")"
    [ "$p" = - ] && room $((new - s))
    echo "$new $a $p $o" > "$(rec "$name")"
    [ -e "$(dev "$name")" ] && truncate -s "$new" "$(dev "$name")"
    ;;
lvremove)
    [ "$1" = --driverloaded ] && shift 2
    name=${2#*/}
    need "$name"
    read -r s a p o < "$(rec "$name")"
    case "$a" in o*) die "Logical volume $VG/$name has snapshots" ;; esac
    [ -e "$(dev "$name")" ] && mv "$(dev "$name")" "$STATE/removed/$name"
    [ -e "$(cow "$name")" ] && mv "$(cow "$name")" "$STATE/removed/$name-cow"
    rm -f "$(rec "$name")" "$STATE/inactive/$name"
    if [ "$o" != - ] && [ -e "$(rec "$o")" ] && ! grep -qs " - $o\$" "$STATE"/lvs/*; then
        read -r os oa op oo < "$(rec "$o")"
        case "$oa" in o*) echo "$os -wi-a----- $op $oo" > "$(rec "$o")" ;; esac
    fi
    ;;
*)
    echo "stand-in: unknown program $prog" >&2
    exit 3
    ;;
esac
"#;

/// A server whose backends run the lvm driver against the stand-ins, in a temp dir with
/// `bin/` (the stand-ins, the backends' only exec dir), `dev/` (their device nodes) and
/// `state/` (their records and the command log).
struct Recorded {
    server: Server,
    dir: PathBuf,
    vg: &'static str,
    _tmp: tempfile::TempDir,
}

impl Recorded {
    /// `settings` are extra lines for backend `lvm1`; the stand-ins are its only exec dir.
    fn start(vg_size: u64, settings: &str) -> Recorded {
        Recorded::start_with(vg_size, r#"["@DIR@/bin"]"#, settings)
    }

    fn start_with(vg_size: u64, exec_dirs: &str, settings: &str) -> Recorded {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().to_path_buf();
        let vg = "vgrec";
        for sub in ["bin", "dev", "state"] {
            std::fs::create_dir(dir.join(sub)).unwrap();
        }
        std::fs::write(
            dir.join("bin/standin.env"),
            format!(
                "VG={vg}\nDEVDIR={}\nSTATE={}\nVG_SIZE={vg_size}\n",
                dir.join("dev").display(),
                dir.join("state").display()
            ),
        )
        .unwrap();
        for program in LVM_PROGRAMS {
            use std::os::unix::fs::PermissionsExt;
            let path = dir.join("bin").join(program);
            std::fs::write(&path, STANDIN).unwrap();
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        let server = Server::start_in(
            &dir,
            &format!(
                r#"
stats_interval_secs = 1

[backends.lvm1]
driver = "lvm"
exec_dirs = {exec_dirs}
grants.exec = {LVM_PROGRAMS:?}
grants.block = ["@DIR@/dev", "/dev/zero"]
settings.volume_group = "{vg}"
settings.device_dir = "@DIR@/dev"
{settings}
"#
            ),
        );
        Recorded {
            server,
            dir,
            vg,
            _tmp: tmp,
        }
    }

    fn device(&self, lv: &str) -> PathBuf {
        self.dir.join("dev").join(self.vg).join(lv)
    }

    fn removed(&self, name: &str) -> PathBuf {
        self.dir.join("state/removed").join(name)
    }

    /// Every command line the stand-ins ran, in order.
    fn commands(&self) -> Vec<String> {
        std::fs::read_to_string(self.dir.join("state/commands"))
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect()
    }

    /// The commands that change something (not the `vgs`/`lvs` reports, which stats
    /// polling interleaves), after checking every report was the exact shape granted.
    fn changes(&self) -> Vec<String> {
        let vgs = format!(
            "vgs --reportformat json --units b --nosuffix -o vg_name,vg_size,vg_free,lv_count {}",
            self.vg
        );
        let lvs = format!(
            "lvs --reportformat json --units b --nosuffix -o lv_name,lv_size,lv_attr,pool_lv,origin,data_percent {}",
            self.vg
        );
        let all = self.commands();
        for line in &all {
            if line.starts_with("vgs ") {
                assert_eq!(line, &vgs);
            } else if line.starts_with("lvs ") {
                assert_eq!(line, &lvs);
            }
        }
        all.into_iter()
            .filter(|l| !l.starts_with("vgs ") && !l.starts_with("lvs "))
            .collect()
    }
}

fn is_zero(path: &Path, offset: u64, len: usize) -> bool {
    read_at(path, offset, len).iter().all(|b| *b == 0)
}

// RECORDED (snapshots and device nodes need device-mapper, absent here): thick snapshots,
// a volume from a snapshot, a clone through a temporary snapshot, each copied by the host
// between device nodes; volume_clear zeroes the start of deleted LVs and snapshots'
// exception stores, no further than volume_clear_size.
#[tokio::test]
async fn thick_snapshots_and_clones_copy_through_the_host() {
    let rec = Recorded::start(
        100 * GIB,
        "settings.volume_clear = \"zero\"\nsettings.volume_clear_size = \"1\"",
    );
    let c = rec.server.client("alice:proj-a");
    let vg = rec.vg;

    let a = c.create_volume(json!({"size": 1})).await;
    c.wait_status("volumes", &a, "available").await;
    let dev_a = rec.device(&format!("volume-{a}"));
    let marks: [(u64, &[u8]); 3] = [
        (0, b"ashlar-start"),
        (GIB / 2 + 7, b"middle-bytes"),
        (GIB - 4096, b"last-block"),
    ];
    for (off, data) in marks {
        write_at(&dev_a, off, data);
    }

    let s = snapshot(&c, &a).await;
    c.wait_status("snapshots", &s, "available").await;
    // Written after the snapshot: must not reach volumes made from it.
    write_at(&dev_a, 0, b"CHANGED-AFTER");

    let b = c.create_volume(json!({"snapshot_id": s, "size": 2})).await;
    c.wait_status("volumes", &b, "available").await;
    let dev_b = rec.device(&format!("volume-{b}"));
    assert_eq!(std::fs::metadata(&dev_b).unwrap().len(), 2 * GIB);
    for (off, data) in marks {
        assert_eq!(read_at(&dev_b, off, data.len()), data, "at {off}");
    }

    let clone = c.create_volume(json!({"source_volid": a})).await;
    c.wait_status("volumes", &clone, "available").await;
    let dev_c = rec.device(&format!("volume-{clone}"));
    assert_eq!(read_at(&dev_c, 0, 13), b"CHANGED-AFTER");
    assert_eq!(read_at(&dev_c, GIB - 4096, 10), b"last-block");
    // The temporary snapshot's exception store was cleared before it went.
    let temp_cow = rec.removed(&format!("clone-snap-{clone}-cow"));
    assert!(
        is_zero(&temp_cow, 0, 64),
        "clone-snap exception store zeroed"
    );

    // Extend, then delete everything.
    extend(&c, &a, 3).await;
    c.wait_status("volumes", &a, "available").await;
    assert_eq!(std::fs::metadata(&dev_a).unwrap().len(), 3 * GIB);
    delete(&c, "snapshots", &s).await;
    for id in [&a, &b, &clone] {
        delete(&c, "volumes", id).await;
    }

    // volume_clear_size = 1: the first MiB is zeroed, nothing beyond it.
    let gone_a = rec.removed(&format!("volume-{a}"));
    assert!(is_zero(&gone_a, 0, MIB as usize));
    assert_eq!(read_at(&gone_a, GIB / 2 + 7, 12), b"middle-bytes");
    let gone_s = rec.removed(&format!("_snapshot-{s}-cow"));
    assert!(
        is_zero(&gone_s, 0, 64),
        "the snapshot's exception store was zeroed"
    );

    let (a, b, clone, s) = (&a, &b, &clone, &s);
    assert_eq!(
        rec.changes(),
        [
            format!("lvcreate --yes -n volume-{a} -L 1g {vg}"),
            format!("lvcreate --name _snapshot-{s} --snapshot {vg}/volume-{a} -L 1g"),
            format!("lvcreate --yes -n volume-{b} -L 2g {vg}"),
            format!("lvcreate --name clone-snap-{clone} --snapshot {vg}/volume-{a} -L 1g"),
            format!("lvcreate --yes -n volume-{clone} -L 1g {vg}"),
            format!("lvremove -f {vg}/clone-snap-{clone}"),
            format!("lvextend -L 3g {vg}/volume-{a}"),
            format!("lvremove -f {vg}/_snapshot-{s}"),
            format!("lvremove -f {vg}/volume-{a}"),
            format!("lvremove -f {vg}/volume-{b}"),
            format!("lvremove -f {vg}/volume-{clone}"),
        ]
    );
}

// RECORDED (thin pools need device-mapper): the pool is made at start-up from 95% of the
// free space; volumes, snapshots, volumes from snapshots and clones are thin LVs and thin
// snapshots (no copy), activated and grown; the pool's stats count virtual sizes; deleting
// does not zero thin LVs.
#[tokio::test]
async fn thin_provisioning_uses_thin_snapshots() {
    let rec = Recorded::start(100 * GIB, "settings.lvm_type = \"thin\"");
    let c = rec.server.client("alice:proj-a");
    let admin = rec.server.client("admin:proj-a");
    let vg = rec.vg;

    let pool = pool_where(&admin, "the thin pool", |p| {
        p["capabilities"]["total_capacity_gb"] == json!(95.0)
    })
    .await;
    assert_eq!(pool["name"], "ashlar@lvm1#vgrec");
    assert_eq!(pool["capabilities"]["thin_provisioning_support"], true);
    assert_eq!(pool["capabilities"]["thick_provisioning_support"], false);
    assert_eq!(pool["capabilities"]["max_over_subscription_ratio"], 20.0);

    let a = c.create_volume(json!({"size": 1})).await;
    c.wait_status("volumes", &a, "available").await;
    let dev_a = rec.device(&format!("volume-{a}"));
    write_at(&dev_a, 0, b"thin-start");
    write_at(&dev_a, GIB - 4096, b"thin-end");

    let s = snapshot(&c, &a).await;
    c.wait_status("snapshots", &s, "available").await;
    write_at(&dev_a, 0, b"CHANGED!!!");
    let b = c.create_volume(json!({"snapshot_id": s, "size": 2})).await;
    c.wait_status("volumes", &b, "available").await;
    let dev_b = rec.device(&format!("volume-{b}"));
    assert_eq!(read_at(&dev_b, 0, 10), b"thin-start");
    assert_eq!(std::fs::metadata(&dev_b).unwrap().len(), 2 * GIB);

    let clone = c.create_volume(json!({"source_volid": a})).await;
    c.wait_status("volumes", &clone, "available").await;
    assert_eq!(
        read_at(&rec.device(&format!("volume-{clone}")), 0, 10),
        b"CHANGED!!!"
    );
    extend(&c, &a, 3).await;
    c.wait_status("volumes", &a, "available").await;

    // Provisioned: the virtual sizes of every thin LV in the pool (3 + 1 + 2 + 1).
    pool_where(&admin, "the thin LVs' virtual sizes", |p| {
        p["capabilities"]["provisioned_capacity_gb"] == json!(7.0)
            && p["capabilities"]["free_capacity_gb"] == json!(95.0)
    })
    .await;

    delete(&c, "snapshots", &s).await;
    for id in [&a, &b, &clone] {
        delete(&c, "volumes", id).await;
    }
    // Not zeroed: a thin pool hands out zeroed blocks anyway.
    assert_eq!(
        read_at(&rec.removed(&format!("volume-{a}")), GIB - 4096, 8),
        b"thin-end"
    );

    let (a, b, clone, s) = (&a, &b, &clone, &s);
    let pool_mib = 100 * GIB / 100 * 95 / MIB;
    assert_eq!(
        rec.changes(),
        [
            format!("lvcreate -T -L {pool_mib}m {vg}/{vg}-pool"),
            format!("lvcreate -T -V 1g -n volume-{a} {vg}/{vg}-pool"),
            format!("lvcreate --name _snapshot-{s} --snapshot {vg}/volume-{a}"),
            format!("lvcreate --name volume-{b} --snapshot {vg}/_snapshot-{s}"),
            format!("lvchange -a y -K {vg}/volume-{b}"),
            format!("lvextend -L 2g {vg}/volume-{b}"),
            format!("lvcreate --name volume-{clone} --snapshot {vg}/volume-{a}"),
            format!("lvchange -a y -K {vg}/volume-{clone}"),
            format!("lvextend -L 3g {vg}/volume-{a}"),
            format!("lvremove -f {vg}/_snapshot-{s}"),
            format!("lvremove -f {vg}/volume-{a}"),
            format!("lvremove -f {vg}/volume-{b}"),
            format!("lvremove -f {vg}/volume-{clone}"),
        ]
    );
}

// RECORDED (a deleted LV's blocks need a device node): by default volume_clear zeroes the
// whole thick LV before removing it, up to its last byte; volume_clear = none leaves it.
#[tokio::test]
async fn volume_clear_zeroes_the_whole_lv_by_default() {
    let rec = Recorded::start(100 * GIB, "");
    let c = rec.server.client("alice:proj-a");
    let a = c.create_volume(json!({"size": 1})).await;
    c.wait_status("volumes", &a, "available").await;
    let dev = rec.device(&format!("volume-{a}"));
    write_at(&dev, 0, b"secret-start");
    write_at(&dev, GIB - 12, b"secret-end!!");
    let started = Instant::now();
    delete(&c, "volumes", &a).await;
    eprintln!(
        "deleting a 1 GiB volume with volume_clear = zero took {:?}",
        started.elapsed()
    );
    let gone = rec.removed(&format!("volume-{a}"));
    assert!(is_zero(&gone, 0, 12));
    assert!(is_zero(&gone, GIB - 12, 12), "zeroed up to the last byte");
    assert_eq!(
        std::fs::metadata(&gone).unwrap().len(),
        GIB,
        "and not past it"
    );
    drop(rec);

    let rec = Recorded::start(100 * GIB, "settings.volume_clear = \"none\"");
    let c = rec.server.client("alice:proj-a");
    let a = c.create_volume(json!({"size": 1})).await;
    c.wait_status("volumes", &a, "available").await;
    write_at(&rec.device(&format!("volume-{a}")), 0, b"kept");
    delete(&c, "volumes", &a).await;
    assert_eq!(read_at(&rec.removed(&format!("volume-{a}")), 0, 4), b"kept");
}

/// qemu's iSCSI initiator options for a connection info's `data`.
fn iscsi_opts(data: &Value, initiator: &str) -> String {
    let portal = data["target_portal"].as_str().unwrap();
    let iqn = data["target_iqn"].as_str().unwrap();
    let lun = data["target_lun"].as_i64().unwrap();
    let user = data["auth_username"].as_str().unwrap();
    let password = data["auth_password"].as_str().unwrap();
    format!(
        "driver=iscsi,transport=tcp,portal={portal},target={iqn},lun={lun},user={user},\
         password={password},initiator-name={initiator}"
    )
}

/// Reads `len` bytes at `offset` from the LUN over iSCSI (qemu-io's hex dump).
fn iscsi_read(opts: &str, offset: u64, len: u64) -> Vec<u8> {
    // Whole dump lines only, so every line has 16 bytes before its text column.
    let whole = len.next_multiple_of(16);
    let read = format!("read -v {offset} {whole}");
    let dump = run("qemu-io", &["--image-opts", opts, "-c", &read]);
    let bytes: Vec<u8> = dump
        .lines()
        .filter_map(|l| l.split_once(":  "))
        .flat_map(|(_, rest)| {
            rest.split_whitespace()
                .take(16)
                .map(|h| u8::from_str_radix(h, 16).unwrap())
                .collect::<Vec<_>>()
        })
        .collect();
    assert_eq!(bytes.len() as u64, whole, "{dump}");
    bytes[..len as usize].to_vec()
}

// RECORDED lvm2 (device nodes need device-mapper), REAL target and initiator: the paired
// iscsi-tgt target exports the device node the lvm driver answers for the host's local
// connector through a real tgtd, and qemu's iSCSI initiator reads and writes the volume's
// bytes through it.
#[tokio::test]
async fn attach_exports_the_lv_through_the_paired_target() {
    let tgtd = Tgtd::start();
    let rec = Recorded::start_with(
        100 * GIB,
        r#"["@DIR@/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin"]"#,
        &format!(
            r#"
[backends.lvm1.target]
driver = "iscsi-tgt"
grants.exec = ["tgtadm"]
settings.target_ip_address = "127.0.0.1"
settings.target_port = "{}"
settings.control_port = "{}"
settings.backing_store_dir = "@DIR@/dev/vgrec"
"#,
            tgtd.port, tgtd.control_port
        ),
    );
    let c = rec.server.client("alice:proj-a");
    let admin = rec.server.client("admin:proj-a");
    let vg = rec.vg;

    // The pool reports the paired target's protocol.
    let pool = pool_where(&admin, "stats", |p| p["capabilities"].is_object()).await;
    assert_eq!(pool["capabilities"]["storage_protocol"], "iSCSI");

    let vol = c.create_volume(json!({"size": 1})).await;
    c.wait_status("volumes", &vol, "available").await;
    let device = rec.device(&format!("volume-{vol}"));
    write_at(&device, 0, b"ashlar-start");
    write_at(&device, GIB - 512, b"last-sector");

    let initiator = "iqn.1994-05.com.redhat:compute-1";
    let connector = json!({
        "host": "compute-1",
        "ip": "127.0.0.1",
        "initiator": initiator,
        "multipath": false,
        "platform": "x86_64",
        "os_type": "linux",
    });
    let action = |body: Value| {
        let c = &c;
        let vol = vol.clone();
        async move { c.post(&format!("volumes/{vol}/action"), body).await }
    };
    let r = action(json!({"os-reserve": {}})).await;
    assert_eq!(r.status, 202, "{}", r.body);
    let r = action(json!({"os-initialize_connection": {"connector": connector}})).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let info = &r.body["connection_info"];
    assert_eq!(info["driver_volume_type"], "iscsi", "{info}");
    let data = &info["data"];
    assert_eq!(
        data["target_iqn"],
        format!("iqn.2010-10.org.openstack:volume-{vol}")
    );
    // tgtd serves exactly the LV's device node.
    let targets = tgtd.targets();
    assert!(
        targets.contains(&format!("Backing store path: {}", device.display())),
        "{targets}"
    );

    // Through a real initiator: the volume's bytes, and a write that lands in the LV.
    let opts = iscsi_opts(data, initiator);
    assert_eq!(iscsi_read(&opts, 0, 12), b"ashlar-start");
    assert_eq!(iscsi_read(&opts, GIB - 512, 11), b"last-sector");
    run(
        "qemu-io",
        &["--image-opts", &opts, "-c", "write -P 0x61 8192 4096"],
    );
    assert_eq!(read_at(&device, 8192, 4096), vec![0x61; 4096]);

    let r = action(json!({"os-attach": {"instance_uuid": "9d2a7d3e-0000-4000-8000-000000000001", "mountpoint": "/dev/vdb"}})).await;
    assert_eq!(r.status, 202, "{}", r.body);
    assert_eq!(
        c.get(&format!("volumes/{vol}")).await.body["volume"]["status"],
        "in-use"
    );

    // Detach: the export goes, the LV stays.
    for body in [
        json!({"os-begin_detaching": {}}),
        json!({"os-terminate_connection": {"connector": connector}}),
        json!({"os-detach": {}}),
    ] {
        let r = action(body.clone()).await;
        assert_eq!(r.status, 202, "{body}: {}", r.body);
    }
    assert_eq!(
        c.get(&format!("volumes/{vol}")).await.body["volume"]["status"],
        "available"
    );
    let targets = tgtd.targets();
    assert!(!targets.contains(&format!("volume-{vol}")), "{targets}");
    assert!(device.exists());

    delete(&c, "volumes", &vol).await;
    // Attaching ran no lvm2 command that changes anything: the device node is the LV's.
    assert_eq!(
        rec.changes(),
        [
            format!("lvcreate --yes -n volume-{vol} -L 1g {vg}"),
            format!("lvremove -f {vg}/volume-{vol}"),
        ]
    );
}

// RECORDED (device nodes need device-mapper): without a target the driver has nothing to
// export with, and the refusal tells the operator to pair one.
#[tokio::test]
async fn attach_without_a_target_asks_for_one() {
    let rec = Recorded::start(100 * GIB, "");
    let c = rec.server.client("alice:proj-a");
    let vol = c.create_volume(json!({"size": 1})).await;
    c.wait_status("volumes", &vol, "available").await;
    let r = c
        .post(
            &format!("volumes/{vol}/action"),
            json!({"os-initialize_connection": {"connector": {
                "host": "compute-1", "initiator": "iqn.1994-05.com.redhat:compute-1"
            }}}),
        )
        .await;
    assert_eq!(r.status, 400, "{}", r.body);
    // The tenant reads Cinder's words; the operator's log has the driver's advice.
    let msg = r.error_message();
    assert!(
        msg.starts_with("Unable to initialize the connection") && !msg.contains("target_helper"),
        "{msg}"
    );
    assert!(
        rec.server
            .logged_with(r.request_id(), &["[backends.lvm1.target]", "target_helper"])
            .await,
        "no log line with {} and the driver's advice",
        r.request_id()
    );
}

// A driver that asks for a program the operator did not grant does not load; the error
// names the capability, what the plugin asked for and what the backend granted.
#[test]
fn an_ungranted_lvm_program_refuses_the_load() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("dev")).unwrap();
    let config = dir.path().join("ashlar.toml");
    std::fs::write(
        &config,
        format!(
            r#"
[backends.lvm1]
driver = "lvm"
grants.exec = ["vgs", "lvs", "lvcreate", "lvextend", "lvremove"]
grants.block = ["{0}/dev", "/dev/zero"]
settings.volume_group = "cinder-volumes"
settings.device_dir = "{0}/dev"
"#,
            dir.path().display()
        ),
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_ashlar"))
        .args(["serve", "--listen", "127.0.0.1:0", "--config"])
        .arg(&config)
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    assert!(!out.status.success(), "ashlar should refuse this config");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("backend lvm1: loading its driver"), "{err}");
    assert!(err.contains("plugin lvm 0.1.0"), "{err}");
    assert!(
        err.contains("exec of `lvchange`"),
        "names the capability and the program: {err}"
    );
    assert!(
        err.contains(r#"grants.exec = ["vgs", "lvs", "lvcreate", "lvextend", "lvremove"]"#),
        "names what was granted: {err}"
    );

    // Without `device_dir` the manifest's default `/dev` applies, and a grant that does not
    // cover it is refused naming the block request and the grant.
    std::fs::write(
        &config,
        format!(
            "[backends.lvm1]\ndriver = \"lvm\"\ngrants.exec = {LVM_PROGRAMS:?}\n\
             grants.block = [\"{}\"]\nsettings.volume_group = \"vg\"\n",
            dir.path().display()
        ),
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_ashlar"))
        .args(["serve", "--listen", "127.0.0.1:0", "--config"])
        .arg(&config)
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("block") && err.contains("/dev"), "{err}");
    assert!(
        err.contains(&dir.path().display().to_string()),
        "names the grant: {err}"
    );
}

// RECORDED lvm2 (device nodes need device-mapper), REAL nfs share and qemu-img: a volume
// migrates from an nfs share onto an LV, the host copying between the file and the LV's
// device node; the LV is made under the volume's new storage id and the file goes.
#[tokio::test]
async fn a_volume_migrates_from_an_nfs_share_onto_an_lv() {
    let share = tempfile::tempdir().unwrap();
    let rec = Recorded::start(
        100 * GIB,
        &format!(
            "\n[backends.nas]\ndriver = \"nfs\"\n\
             grants.exec = [\"qemu-img\", \"rm\", \"df\", \"du\"]\n\
             grants.block = [\"{share}\"]\nsettings.share_path = \"{share}\"\n",
            share = share.path().display()
        ),
    );
    let admin = rec.server.client("admin:proj-a");
    let c = rec.server.client("alice:proj-a");
    // Made on the share: the lvm backend takes no new volume meanwhile.
    let toggle = |action: &'static str| {
        let admin = admin.clone();
        async move {
            let r = admin
                .put(
                    &format!("os-services/{action}"),
                    json!({"host": "ashlar@lvm1", "binary": "cinder-volume"}),
                )
                .await;
            assert_eq!(r.status, 200, "{}", r.body);
        }
    };
    toggle("disable").await;
    let id = c.create_volume(json!({"size": 1})).await;
    c.wait_status("volumes", &id, "available").await;
    toggle("enable").await;
    let file = share.path().join(format!("volume-{id}"));
    assert!(file.exists());
    let (head, tail) = (vec![0x5au8; 4096], vec![0xa5u8; 2 * MIB as usize]);
    write_at(&file, 0, &head);
    write_at(&file, 600 * MIB, &tail);
    let before = std::fs::read(&file).unwrap();

    let r = admin
        .post(
            &format!("volumes/{id}/action"),
            json!({"os-migrate_volume": {"host": "ashlar@lvm1"}}),
        )
        .await;
    assert_eq!(r.status, 202, "{}", r.body);
    let deadline = Instant::now() + Duration::from_secs(60);
    let v = loop {
        let v = admin.get(&format!("volumes/{id}")).await.body["volume"].clone();
        if v["os-vol-mig-status-attr:migstat"] == "success" {
            break v;
        }
        assert_ne!(v["os-vol-mig-status-attr:migstat"], "error", "{v}");
        assert!(Instant::now() < deadline, "{v}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(
        v["os-vol-host-attr:host"]
            .as_str()
            .unwrap()
            .starts_with("ashlar@lvm1#")
    );
    let name_id = v["os-vol-mig-status-attr:name_id"].as_str().unwrap();
    let lv = format!("volume-{name_id}");
    assert!(
        rec.changes()
            .iter()
            .any(|l| l.starts_with("lvcreate") && l.contains(&lv)),
        "{:?}",
        rec.changes()
    );
    let device = rec.device(&lv);
    assert_eq!(read_at(&device, 0, head.len()), head);
    assert_eq!(read_at(&device, 600 * MIB, tail.len()), tail);
    assert_eq!(std::fs::read(&device).unwrap().len(), before.len());
    assert!(is_zero(&device, 4096, (600 * MIB - 4096) as usize));
    assert!(!file.exists(), "the file the volume left is deleted");
    // Deleting it removes the LV it moved to.
    assert_eq!(c.delete(&format!("volumes/{id}")).await.status, 202);
    c.wait_gone("volumes", &id).await;
    assert!(
        rec.changes()
            .iter()
            .any(|l| l.starts_with("lvremove") && l.contains(&lv)),
        "{:?}",
        rec.changes()
    );
}
