//! Images to and from a real Glance 33 (started by each test, see `glance.rs`) with real
//! qemu-img and the bundled nfs driver: a volume from a raw or a qcow2 image holds the
//! image's bytes, an upload as raw or qcow2 comes back byte for byte, the second volume
//! from a cached image is a driver clone, and bad requests answer Cinder's 400s.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::{Value, json};

use crate::common::{Client, Server, write_at};
use crate::glance::Glance;

const MIB: u64 = 1 << 20;
const GIB_HALF: u64 = 512 * MIB;

/// Deterministic bytes that do not compress: xorshift64*.
fn noise(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        out.extend_from_slice(&x.wrapping_mul(0x2545_f491_4f6c_dd1d).to_le_bytes());
    }
    out.truncate(len);
    out
}

fn qemu_img(args: &[&str]) {
    let out = Command::new("qemu-img").args(args).output().unwrap();
    assert!(
        out.status.success(),
        "qemu-img {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A sparse raw file of `size` bytes with a known pattern at its start, in its middle and
/// in its last MiB.
fn patterned_raw(path: &Path, size: u64, seed: u64) {
    let f = std::fs::File::create(path).unwrap();
    f.set_len(size).unwrap();
    drop(f);
    for (i, at) in [0, size / 2, size - MIB].into_iter().enumerate() {
        write_at(path, at, &noise(seed + i as u64, MIB as usize));
    }
}

/// Whether two raw files hold the same disk (`qemu-img compare`: what one has beyond
/// the other's end must be zeros).
fn same_disk(a: &Path, b: &Path) -> bool {
    let out = Command::new("qemu-img")
        .args(["compare", "-f", "raw", "-F", "raw"])
        .arg(a)
        .arg(b)
        .output()
        .unwrap();
    if !out.status.success() {
        eprintln!("{}", String::from_utf8_lossy(&out.stdout));
    }
    out.status.success()
}

fn volume_file(server: &Server, id: &str) -> PathBuf {
    server.share().join(format!("volume-{id}"))
}

/// The nfs backend on the data directory, with `extra` lines for the backend, and the
/// Image service at `glance`.
fn config(glance: &Glance, extra: &str) -> String {
    format!(
        r#"
[glance]
endpoint = "{}"
enable_force_upload = true

[backends.local]
driver = "nfs"
grants.exec = ["qemu-img", "rm", "df", "du"]
grants.block = ["@DIR@/data/volumes"]
settings.share_path = "@DIR@/data/volumes"
settings.volume_format = "raw"
settings.sparse_volumes = "true"
{extra}
"#,
        glance.url
    )
}

/// No temporary image file is left under the data directory.
fn no_temp_files(server: &Server) {
    let dir = server.dir.join("data/images");
    let left: Vec<_> = std::fs::read_dir(&dir)
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "temporary files left: {left:?}");
}

/// Waits until the server's log has `needle` exactly `n` times (the log trails the API).
async fn logged_times(server: &Server, needle: &str, n: usize) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let seen = server.log().matches(needle).count();
        if seen == n {
            return;
        }
        assert!(
            seen < n && std::time::Instant::now() < deadline,
            "`{needle}` logged {seen} times, not {n}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

async fn volume_from(c: &Client, body: Value) -> Value {
    let id = c.create_volume(body).await;
    let v = c.wait("volumes", &id).await;
    assert_eq!(v["status"], "available", "volume from image: {v}");
    v
}

#[tokio::test]
async fn a_volume_from_a_raw_or_qcow2_image_holds_its_bytes() {
    let glance = Glance::start();
    let server = Server::start(&config(&glance, ""));
    let c = server.client("alice:proj-a");
    let work = tempfile::tempdir().unwrap();
    let raw = work.path().join("disk.raw");
    patterned_raw(&raw, 48 * MIB, 7);
    let qcow2 = work.path().join("disk.qcow2");
    qemu_img(&[
        "convert",
        "-f",
        "raw",
        "-O",
        "qcow2",
        raw.to_str().unwrap(),
        qcow2.to_str().unwrap(),
    ]);
    let raw_image = glance
        .image_of(
            &raw,
            json!({"name": "pattern-raw", "disk_format": "raw", "min_disk": 1, "min_ram": 64, "hw_disk_bus": "scsi"}),
        )
        .await;
    let qcow2_image = glance
        .image_of(
            &qcow2,
            json!({"name": "pattern-qcow2", "disk_format": "qcow2", "os_distro": "cirros"}),
        )
        .await;

    // By id, size from the image (1 GiB).
    let v = volume_from(&c, json!({"imageRef": raw_image})).await;
    let id = v["id"].as_str().unwrap();
    assert_eq!(v["size"], 1);
    assert_eq!(v["bootable"], "true");
    let meta = &v["volume_image_metadata"];
    let image = glance.show(&raw_image).await.unwrap();
    for (k, want) in [
        ("image_id", json!(raw_image)),
        ("image_name", json!("pattern-raw")),
        ("checksum", image["checksum"].clone()),
        ("container_format", json!("bare")),
        ("disk_format", json!("raw")),
        ("min_disk", json!("1")),
        ("min_ram", json!("64")),
        ("size", json!((48 * MIB).to_string())),
        ("hw_disk_bus", json!("scsi")),
    ] {
        assert_eq!(meta[k], want, "{k} in {meta}");
    }
    assert!(
        same_disk(&volume_file(&server, id), &raw),
        "raw image → volume"
    );

    // By name, larger than the image, from qcow2: the raw bytes, then zeros.
    let v = volume_from(&c, json!({"imageRef": "pattern-qcow2", "size": 2})).await;
    let id = v["id"].as_str().unwrap();
    assert_eq!(v["size"], 2);
    assert_eq!(v["volume_image_metadata"]["disk_format"], "qcow2");
    assert_eq!(v["volume_image_metadata"]["os_distro"], "cirros");
    assert_eq!(v["volume_image_metadata"]["image_id"], json!(qcow2_image));
    assert!(
        same_disk(&volume_file(&server, id), &raw),
        "qcow2 image → volume"
    );
    no_temp_files(&server);
    // The host logged the download and the copy; the image's path stayed out of views.
    assert!(server.log().contains("image written onto the volume"));
    assert!(!v.to_string().contains(server.dir.to_str().unwrap()));
}

#[tokio::test]
async fn a_volume_uploads_as_raw_and_qcow2_and_comes_back_byte_for_byte() {
    let glance = Glance::start();
    let server = Server::start(&config(&glance, ""));
    let c = server.client("alice:proj-a");
    let admin = server.client("admin:proj-a").with_version("3.71");
    let work = tempfile::tempdir().unwrap();
    let raw = work.path().join("disk.raw");
    patterned_raw(&raw, 32 * MIB, 11);
    let base = glance
        .image_of(
            &raw,
            json!({"name": "base", "disk_format": "raw", "hw_qemu_guest_agent": "yes"}),
        )
        .await;
    let v = volume_from(&c, json!({"imageRef": base})).await;
    let src = v["id"].as_str().unwrap().to_string();
    // Data of the volume's own beyond the image's.
    write_at(
        &volume_file(&server, &src),
        700 * MIB,
        &noise(99, MIB as usize),
    );
    let src_file = volume_file(&server, &src);

    for (disk_format, version) in [("raw", "3.0"), ("qcow2", "3.1")] {
        let cv = c.with_version(version);
        if disk_format == "qcow2" {
            // An in-use volume uploads with force, and stays in-use.
            let r = admin
                .post(
                    &format!("volumes/{src}/action"),
                    json!({"os-reset_status": {"status": "in-use"}}),
                )
                .await;
            assert_eq!(r.status, 202, "{}", r.body);
            let r = cv
                .post(
                    &format!("volumes/{src}/action"),
                    json!({"os-volume_upload_image": {"image_name": "copy-qcow2", "disk_format": "qcow2"}}),
                )
                .await;
            assert_eq!(r.status, 400, "in-use without force: {}", r.body);
            assert!(
                r.error_message().contains("status must be available"),
                "{}",
                r.body
            );
        }
        let body = json!({"os-volume_upload_image": {
            "image_name": format!("copy-{disk_format}"),
            "disk_format": disk_format,
            "container_format": "bare",
            "force": disk_format == "qcow2",
            "visibility": "private",
            "protected": false,
        }});
        let r = cv.post(&format!("volumes/{src}/action"), body).await;
        assert_eq!(r.status, 202, "upload {disk_format}: {}", r.body);
        let up = &r.body["os-volume_upload_image"];
        let mut keys: Vec<&str> = up.as_object().unwrap().keys().map(String::as_str).collect();
        keys.sort();
        let mut want = vec![
            "container_format",
            "disk_format",
            "display_description",
            "id",
            "image_id",
            "image_name",
            "size",
            "status",
            "updated_at",
            "volume_type",
        ];
        if version == "3.1" {
            want.extend(["protected", "visibility"]);
            want.sort();
        }
        assert_eq!(keys, want, "{up}");
        assert_eq!(up["id"], json!(src));
        assert_eq!(up["status"], "uploading");
        assert_eq!(up["disk_format"], disk_format);
        assert_eq!(up["container_format"], "bare");
        assert_eq!(up["image_name"], json!(format!("copy-{disk_format}")));
        assert_eq!(up["size"], 1);
        let image_id = up["image_id"].as_str().unwrap().to_string();

        let back = if disk_format == "qcow2" {
            "in-use"
        } else {
            "available"
        };
        c.wait_status("volumes", &src, back).await;
        let image = glance.wait_status(&image_id, "active").await.unwrap();
        assert_eq!(image["disk_format"], disk_format);
        assert_eq!(image["container_format"], "bare");
        assert_eq!(image["virtual_size"], json!(1u64 << 30));
        // The volume's image properties went with it; Glance's core ones did not.
        assert_eq!(image["hw_qemu_guest_agent"], "yes");
        assert!(image.get("image_id").is_none(), "{image}");

        // What Glance holds is the volume.
        let got = work.path().join(format!("got.{disk_format}"));
        glance.download(&image_id, &got).await;
        let got_raw = work.path().join(format!("got-{disk_format}.raw"));
        qemu_img(&[
            "convert",
            "-f",
            disk_format,
            "-O",
            "raw",
            got.to_str().unwrap(),
            got_raw.to_str().unwrap(),
        ]);
        assert!(same_disk(&got_raw, &src_file), "{disk_format} upload");

        // And a volume from it holds the same bytes.
        let v = volume_from(&c, json!({"imageRef": image_id})).await;
        let copy = v["id"].as_str().unwrap();
        assert!(
            same_disk(&volume_file(&server, copy), &src_file),
            "{disk_format} round trip"
        );
    }
    no_temp_files(&server);
}

#[tokio::test]
async fn a_second_volume_from_a_cached_image_is_a_driver_clone() {
    let glance = Glance::start();
    let server = Server::start(&config(
        &glance,
        "image_volume_cache_enabled = true\nimage_volume_cache_max_count = 1\n",
    ));
    let c = server.client("alice:proj-a");
    let admin = server.client("admin:proj-a").with_version("3.71");
    let work = tempfile::tempdir().unwrap();
    let raw = work.path().join("disk.raw");
    patterned_raw(&raw, 40 * MIB, 21);
    let image = glance
        .image_of(&raw, json!({"name": "cached", "disk_format": "raw"}))
        .await;

    // The first volume downloads, and leaves a cached image-volume of the image's size.
    let first = volume_from(&c, json!({"imageRef": image, "size": 2})).await;
    let first_id = first["id"].as_str().unwrap();
    assert_eq!(first["size"], 2);
    assert!(same_disk(&volume_file(&server, first_id), &raw));
    server.wait_log("image-volume cache entry created").await;
    let all = admin.get("volumes/detail?all_tenants=1").await;
    let cached: Vec<&Value> = all.body["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|v| v["name"] == json!(format!("image-{image}")))
        .collect();
    assert_eq!(cached.len(), 1, "{}", all.body);
    let cache_id = cached[0]["id"].as_str().unwrap().to_string();
    assert_eq!(cached[0]["size"], 1);
    assert_eq!(cached[0]["os-vol-tenant-attr:tenant_id"], "ashlar-internal");
    // Not the tenant's: not in its list, not in its quota usage.
    let mine = c.get("volumes").await;
    assert!(!mine.body.to_string().contains(&cache_id));
    let usage =
        c.get("os-quota-sets/proj-a?usage=true").await.body["quota_set"]["volumes"]["in_use"]
            .clone();
    assert_eq!(usage, 1);

    // The second is the driver's clone of the cached image-volume.
    let second = volume_from(&c, json!({"imageRef": image})).await;
    let second_id = second["id"].as_str().unwrap();
    assert!(same_disk(&volume_file(&server, second_id), &raw));
    assert_eq!(second["bootable"], "true");
    assert_eq!(second["volume_image_metadata"]["image_id"], json!(image));
    let log = server.log();
    assert!(
        log.lines().any(|l| l.contains("image-volume cache hit")
            && l.contains(second_id)
            && l.contains(&cache_id)),
        "no cache hit logged"
    );
    assert!(
        log.lines().any(|l| l.contains("plugin=nfs")
            && l.contains("exec")
            && l.contains("convert")
            && l.contains(&format!("volume-{cache_id}"))
            && l.contains(&format!("volume-{second_id}"))),
        "the nfs driver did not clone the cached image-volume"
    );

    // A changed image (its `updated_at` moved) is a miss: its entry is replaced.
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    glance.set_property(&image, "hw_rng_model", "virtio").await;
    let fourth = volume_from(&c, json!({"imageRef": image})).await;
    assert!(same_disk(
        &volume_file(&server, fourth["id"].as_str().unwrap()),
        &raw
    ));
    assert_eq!(fourth["volume_image_metadata"]["hw_rng_model"], "virtio");
    server.wait_log("image changed since it was cached").await;
    assert!(
        !volume_file(&server, &cache_id).exists(),
        "the stale entry's volume is left"
    );
    logged_times(&server, "image-volume cache entry created", 2).await;

    // Another image: with max_count = 1 its entry takes the first one's place.
    let other = work.path().join("other.raw");
    patterned_raw(&other, 8 * MIB, 5);
    let image2 = glance
        .image_of(&other, json!({"name": "other", "disk_format": "raw"}))
        .await;
    let third = volume_from(&c, json!({"imageRef": image2})).await;
    assert!(same_disk(
        &volume_file(&server, third["id"].as_str().unwrap()),
        &other
    ));
    // max_count = 1: the first image's entry was evicted for the second's.
    logged_times(&server, "image-volume cache entry created", 3).await;
    let all = admin.get("volumes/detail?all_tenants=1").await;
    let names: Vec<&str> = all.body["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|v| v["name"].as_str())
        .filter(|n| n.starts_with("image-"))
        .collect();
    assert_eq!(names, [format!("image-{image2}")], "{}", all.body);
    no_temp_files(&server);
}

#[tokio::test]
async fn bad_image_requests_answer_cinders_400s() {
    let glance = Glance::start();
    let server = Server::start(&config(&glance, ""));
    let c = server.client("alice:proj-a");
    let work = tempfile::tempdir().unwrap();
    let create = |body: Value| {
        let c = c.clone();
        async move { c.post("volumes", json!({ "volume": body })).await }
    };

    let missing = uuid::Uuid::new_v4().to_string();
    let r = create(json!({"imageRef": missing, "size": 1})).await;
    assert_eq!(r.status, 400, "{}", r.body);
    assert_eq!(
        r.error_message(),
        "Invalid image identifier or unable to access requested image."
    );
    let r = create(json!({"imageRef": "no-such-name"})).await;
    assert_eq!(r.status, 400, "{}", r.body);

    let queued = glance
        .create(json!({"name": "empty", "disk_format": "raw", "container_format": "bare"}))
        .await;
    let r = create(json!({"imageRef": queued, "size": 1})).await;
    assert_eq!(r.status, 400, "{}", r.body);
    assert_eq!(
        r.error_message(),
        format!("Invalid input received: Image {queued} is not active.")
    );

    let raw = work.path().join("small.raw");
    patterned_raw(&raw, 4 * MIB, 3);
    let needs_3 = glance
        .image_of(
            &raw,
            json!({"name": "min3", "disk_format": "raw", "min_disk": 3}),
        )
        .await;
    let r = create(json!({"imageRef": needs_3, "size": 1})).await;
    assert_eq!(r.status, 400, "{}", r.body);
    assert_eq!(
        r.error_message(),
        "Invalid input received: Volume size 1GB cannot be smaller than the image minDisk size 3GB."
    );
    // Without a size, the volume takes the image's min_disk.
    let id = c.create_volume(json!({"imageRef": needs_3})).await;
    assert_eq!(c.wait("volumes", &id).await["size"], 3);

    let big = work.path().join("big.qcow2");
    qemu_img(&["create", "-f", "qcow2", big.to_str().unwrap(), "2G"]);
    let two_gib = glance
        .image_of(&big, json!({"name": "big", "disk_format": "qcow2"}))
        .await;
    let r = create(json!({"imageRef": two_gib, "size": 1})).await;
    assert_eq!(r.status, 400, "{}", r.body);
    assert_eq!(
        r.error_message(),
        format!(
            "Image {two_gib} is unacceptable: Image virtual size is 2GB and doesn't fit in a volume of size 1GB."
        )
    );

    let r = create(json!({"imageRef": needs_3, "source_volid": id})).await;
    assert_eq!(r.status, 400, "{}", r.body);

    // An image whose data is not what it declares fails in the job: `error`, Cinder's
    // message, no temporary file.
    let lying = glance
        .image_of(&big, json!({"name": "lying", "disk_format": "raw"}))
        .await;
    let id = c.create_volume(json!({"imageRef": lying, "size": 2})).await;
    let v = c.wait("volumes", &id).await;
    assert_eq!(v["status"], "error", "{v}");
    let messages = c.messages_for(&id).await;
    assert!(
        messages
            .iter()
            .any(|m| m.starts_with("copy image to volume:")
                && m.contains("does not match the declared disk_format raw")),
        "{messages:?}"
    );
    no_temp_files(&server);

    // Uploads: Cinder's schema, and what Ashlar does not write.
    let vol = c.create_volume(json!({"size": 1})).await;
    c.wait_status("volumes", &vol, "available").await;
    let upload = |args: Value| {
        let c = c.clone();
        let vol = vol.clone();
        async move {
            c.post(
                &format!("volumes/{vol}/action"),
                json!({ "os-volume_upload_image": args }),
            )
            .await
        }
    };
    for (args, words) in [
        (
            json!({"image_name": "x", "disk_format": "vmdk"}),
            "Uploading a volume as vmdk is not supported",
        ),
        (
            json!({"image_name": "x", "disk_format": "foo"}),
            "is not one of ['raw'",
        ),
        (
            json!({"image_name": "x", "container_format": "ovf"}),
            "container_format",
        ),
        (
            json!({"disk_format": "raw"}),
            "'image_name' is a required property",
        ),
        (json!({"image_name": ""}), "image_name"),
        (json!({"image_name": "x", "force": "maybe"}), "force"),
    ] {
        let r = upload(args.clone()).await;
        assert_eq!(r.status, 400, "{args}: {}", r.body);
        assert!(r.error_message().contains(words), "{args}: {}", r.body);
    }
    // Nothing was created in Glance for a refused upload.
    let listed: Value = reqwest::get(format!("{}/v2/images?name=x", glance.url))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(listed["images"], json!([]), "{listed}");
    assert_eq!(c.wait("volumes", &vol).await["status"], "available");

    // A host without [glance] says so.
    let plain = Server::start("");
    let pc = plain.client("alice:proj-a");
    let r = pc
        .post(
            "volumes",
            json!({"volume": {"imageRef": missing, "size": 1}}),
        )
        .await;
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(r.error_message().contains("no Image service"), "{}", r.body);
}

#[tokio::test]
async fn a_host_killed_during_a_download_or_an_upload_cleans_up_on_restart() {
    let glance = Glance::start();
    let cfg = config(&glance, "");
    let server = Server::start(&cfg);
    let c = server.client("alice:proj-a");
    let work = tempfile::tempdir().unwrap();
    // Large enough that the copy is still going when the host is killed.
    let raw = work.path().join("big.raw");
    patterned_raw(&raw, 768 * MIB, 31);
    let image = glance
        .image_of(&raw, json!({"name": "big", "disk_format": "raw"}))
        .await;
    let source = c.create_volume(json!({"size": 2})).await;
    c.wait_status("volumes", &source, "available").await;
    write_at(
        &volume_file(&server, &source),
        GIB_HALF,
        &noise(5, MIB as usize),
    );

    let id = c.create_volume(json!({"imageRef": image})).await;
    server.wait_log("downloading image").await;
    let dir = server.kill9();
    let server = Server::start_in(&dir, &cfg);
    let c = server.client("alice:proj-a");
    let v = c.wait("volumes", &id).await;
    assert_eq!(v["status"], "error", "{v}");
    assert!(
        c.messages_for(&id)
            .await
            .iter()
            .any(|m| m.contains("The service stopped while the volume was being created")),
        "no message"
    );
    assert!(
        !volume_file(&server, &id).exists(),
        "the half-made volume is left"
    );
    no_temp_files(&server);

    let r = c
        .post(
            &format!("volumes/{source}/action"),
            json!({"os-volume_upload_image": {"image_name": "cut", "disk_format": "qcow2"}}),
        )
        .await;
    assert_eq!(r.status, 202, "{}", r.body);
    let cut = r.body["os-volume_upload_image"]["image_id"]
        .as_str()
        .unwrap()
        .to_string();
    server.wait_log("uploading volume to image").await;
    let dir = server.kill9();
    let server = Server::start_in(&dir, &cfg);
    let c = server.client("alice:proj-a");
    c.wait_status("volumes", &source, "available").await;
    assert!(glance.wait_status(&cut, "deleted").await.is_none());
    assert!(
        c.messages_for(&source)
            .await
            .iter()
            .any(|m| m.starts_with("copy volume to image:")),
        "no message"
    );
    no_temp_files(&server);
}
