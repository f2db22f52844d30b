//! A client of the Image service API v2: show, find by name, create, delete, and the data
//! of an image streamed to and from a file with bounded memory (one chunk at a time).
//! Every request carries the configured token as `X-Auth-Token`; a Glance without
//! Keystone needs none.

use std::collections::BTreeMap;
use std::path::Path;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use serde_json::{Map, Value};
use sha2::{Digest, Sha512};
use tokio::io::{AsyncRead, AsyncWriteExt, ReadBuf};

use crate::config::GlanceSection;

/// Why a call to the Image service failed. The text is for the log; [`GlanceError::public`]
/// is what a tenant may read.
#[derive(Debug, thiserror::Error)]
pub enum GlanceError {
    #[error("the Image service at {endpoint} could not be reached: {source}")]
    Unreachable {
        endpoint: String,
        source: reqwest::Error,
    },
    #[error("the Image service answered {status} to {what}: {body}")]
    Status {
        what: String,
        status: u16,
        body: String,
    },
    #[error("the Image service's answer to {what} is not an image: {why}")]
    Malformed { what: String, why: String },
    #[error("{what}: no data moved for {secs} s")]
    Stalled { what: String, secs: u64 },
    #[error("image {image_id}'s data does not match its {algo} hash")]
    Corrupt { image_id: String, algo: String },
    #[error("{what}: {source}")]
    Io {
        what: String,
        source: std::io::Error,
    },
}

impl GlanceError {
    /// What a tenant may read: the kind of failure, never an endpoint or a path.
    pub fn public(&self) -> String {
        match self {
            GlanceError::Unreachable { .. } => "The Image service could not be reached.".into(),
            GlanceError::Status { status, .. } => {
                format!("The Image service refused the request (HTTP {status}).")
            }
            GlanceError::Malformed { .. } => {
                "The Image service answered something unexpected.".into()
            }
            GlanceError::Stalled { .. } => "The transfer with the Image service stalled.".into(),
            GlanceError::Corrupt { image_id, algo } => {
                format!("The data of image {image_id} does not match its {algo} checksum.")
            }
            GlanceError::Io { .. } => "The host could not read or write the image's data.".into(),
        }
    }

    /// Whether the Image service answered 404.
    pub fn is_not_found(&self) -> bool {
        matches!(self, GlanceError::Status { status: 404, .. })
    }
}

/// The attributes Glance v2 defines; every other top-level key of an image is a custom
/// property.
const CORE: &[&str] = &[
    "id",
    "name",
    "status",
    "visibility",
    "protected",
    "os_hidden",
    "checksum",
    "os_hash_algo",
    "os_hash_value",
    "owner",
    "size",
    "virtual_size",
    "min_ram",
    "min_disk",
    "disk_format",
    "container_format",
    "created_at",
    "updated_at",
    "tags",
    "direct_url",
    "locations",
    "self",
    "file",
    "schema",
    "stores",
];

/// An image as Glance v2 shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct Image {
    pub id: String,
    pub name: Option<String>,
    pub status: String,
    pub disk_format: Option<String>,
    pub container_format: Option<String>,
    /// Bytes of the image's data, once it has some.
    pub size: Option<u64>,
    /// Bytes of the disk the data describes, when Glance knows it.
    pub virtual_size: Option<u64>,
    /// GiB.
    pub min_disk: u64,
    /// MiB.
    pub min_ram: u64,
    pub checksum: Option<String>,
    pub os_hash_algo: Option<String>,
    pub os_hash_value: Option<String>,
    pub updated_at: Option<String>,
    pub visibility: Option<String>,
    pub protected: bool,
    /// Custom properties, as strings.
    pub properties: BTreeMap<String, String>,
}

impl Image {
    fn from_json(v: &Value, what: &str) -> Result<Image, GlanceError> {
        let malformed = |why: &str| GlanceError::Malformed {
            what: what.to_string(),
            why: why.to_string(),
        };
        let obj = v.as_object().ok_or_else(|| malformed("not an object"))?;
        let text = |k: &str| obj.get(k).and_then(Value::as_str).map(str::to_string);
        let num = |k: &str| obj.get(k).and_then(Value::as_u64);
        let id = text("id").ok_or_else(|| malformed("no id"))?;
        let status = text("status").ok_or_else(|| malformed("no status"))?;
        let properties = obj
            .iter()
            .filter(|(k, _)| !CORE.contains(&k.as_str()))
            .filter_map(|(k, v)| {
                let s = match v {
                    Value::String(s) => s.clone(),
                    Value::Null => return None,
                    other => other.to_string(),
                };
                Some((k.clone(), s))
            })
            .collect();
        Ok(Image {
            id,
            name: text("name"),
            status,
            disk_format: text("disk_format"),
            container_format: text("container_format"),
            size: num("size"),
            virtual_size: num("virtual_size"),
            min_disk: num("min_disk").unwrap_or(0),
            min_ram: num("min_ram").unwrap_or(0),
            checksum: text("checksum"),
            os_hash_algo: text("os_hash_algo"),
            os_hash_value: text("os_hash_value"),
            updated_at: text("updated_at"),
            visibility: text("visibility"),
            protected: obj
                .get("protected")
                .and_then(Value::as_bool)
                .unwrap_or(false),
            properties,
        })
    }

    /// Cinder's `volume_image_metadata` for a volume made from this image: its id and
    /// name, the base attributes Cinder copies (`checksum`, `container_format`,
    /// `disk_format`, `min_disk`, `min_ram`, `size`) and every custom property.
    pub fn volume_image_metadata(&self) -> BTreeMap<String, String> {
        let mut m = self.properties.clone();
        m.insert("image_id".into(), self.id.clone());
        if let Some(n) = &self.name {
            m.insert("image_name".into(), n.clone());
        }
        for (k, v) in [
            ("checksum", self.checksum.clone()),
            ("container_format", self.container_format.clone()),
            ("disk_format", self.disk_format.clone()),
            ("min_disk", Some(self.min_disk.to_string())),
            ("min_ram", Some(self.min_ram.to_string())),
            ("size", self.size.map(|s| s.to_string())),
        ] {
            if let Some(v) = v {
                m.insert(k.into(), v);
            }
        }
        m
    }
}

/// The Image service, as the host reaches it.
#[derive(Clone)]
pub struct Glance {
    http: reqwest::Client,
    /// Without a trailing `/`.
    endpoint: String,
    token: Option<String>,
    request_timeout: Duration,
    idle: Duration,
}

impl std::fmt::Debug for Glance {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Glance")
            .field("endpoint", &self.endpoint)
            .finish_non_exhaustive()
    }
}

impl Glance {
    pub fn new(cfg: &GlanceSection) -> Result<Glance, reqwest::Error> {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(cfg.connect_timeout_secs.max(1)))
            .build()?;
        Ok(Glance {
            http,
            endpoint: cfg.endpoint.trim_end_matches('/').to_string(),
            token: cfg.token.clone(),
            request_timeout: Duration::from_secs(cfg.request_timeout_secs),
            idle: Duration::from_secs(cfg.transfer_idle_secs),
        })
    }

    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        let mut r = self
            .http
            .request(method, format!("{}{path}", self.endpoint));
        if let Some(t) = &self.token {
            r = r.header("X-Auth-Token", t);
        }
        r
    }

    fn unreachable(&self, source: reqwest::Error) -> GlanceError {
        GlanceError::Unreachable {
            endpoint: self.endpoint.clone(),
            source,
        }
    }

    /// Sends `req` with the API call timeout; a status that is not a success is an error
    /// carrying (the start of) the body.
    async fn send(
        &self,
        req: reqwest::RequestBuilder,
        what: &str,
    ) -> Result<reqwest::Response, GlanceError> {
        let resp = req
            .timeout(self.request_timeout)
            .send()
            .await
            .map_err(|e| self.unreachable(e))?;
        check(resp, what).await
    }

    /// Image `id`; `None` when the Image service does not know it (or hides it).
    pub async fn show(&self, id: &str) -> Result<Option<Image>, GlanceError> {
        let what = format!("GET /v2/images/{id}");
        let req = self.request(reqwest::Method::GET, &format!("/v2/images/{id}"));
        match self.send(req, &what).await {
            Ok(resp) => Ok(Some(Image::from_json(&json_of(resp, &what).await?, &what)?)),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// The images named `name` (at most two: enough to tell one from several).
    pub async fn find_by_name(&self, name: &str) -> Result<Vec<Image>, GlanceError> {
        let what = "GET /v2/images?name=…".to_string();
        let req = self
            .request(reqwest::Method::GET, "/v2/images")
            .query(&[("name", name), ("limit", "2")]);
        let body = json_of(self.send(req, &what).await?, &what).await?;
        body.get("images")
            .and_then(Value::as_array)
            .ok_or_else(|| GlanceError::Malformed {
                what: what.clone(),
                why: "no images list".into(),
            })?
            .iter()
            .map(|v| Image::from_json(v, &what))
            .collect()
    }

    /// Creates an image record (`queued`, no data yet) from Glance v2 attributes.
    pub async fn create(&self, attributes: &Map<String, Value>) -> Result<Image, GlanceError> {
        let what = "POST /v2/images".to_string();
        let req = self
            .request(reqwest::Method::POST, "/v2/images")
            .json(attributes);
        let body = json_of(self.send(req, &what).await?, &what).await?;
        Image::from_json(&body, &what)
    }

    /// Deletes image `id`; one already gone is deleted.
    pub async fn delete(&self, id: &str) -> Result<(), GlanceError> {
        let what = format!("DELETE /v2/images/{id}");
        let req = self.request(reqwest::Method::DELETE, &format!("/v2/images/{id}"));
        match self.send(req, &what).await {
            Ok(_) => Ok(()),
            Err(e) if e.is_not_found() => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Streams image `image`'s data into a new file at `dest`, one chunk in memory at a
    /// time, checking the image's `os_hash_value` when it is a SHA-512 (Glance's
    /// default); answers the bytes written. A transfer that stalls for the idle timeout
    /// fails. The caller removes `dest` on failure.
    pub async fn download_to(&self, image: &Image, dest: &Path) -> Result<u64, GlanceError> {
        let id = &image.id;
        let what = format!("GET /v2/images/{id}/file");
        let resp = self
            .request(reqwest::Method::GET, &format!("/v2/images/{id}/file"))
            .send();
        let resp = tokio::time::timeout(self.request_timeout, resp)
            .await
            .map_err(|_| GlanceError::Stalled {
                what: what.clone(),
                secs: self.request_timeout.as_secs(),
            })?
            .map_err(|e| self.unreachable(e))?;
        let mut resp = check(resp, &what).await?;
        let io = |source| GlanceError::Io {
            what: format!("writing image {id}'s data"),
            source,
        };
        // A few MiB per write: the network's chunks are small, and each write of a tokio
        // file is a trip to the blocking pool.
        let mut file = tokio::io::BufWriter::with_capacity(
            4 << 20,
            tokio::fs::File::create(dest).await.map_err(io)?,
        );
        // The hash runs on a thread of its own, beside the download: a bounded queue of
        // the chunks (shared, not copied) keeps memory bounded.
        let hasher = (image.os_hash_algo.as_deref() == Some("sha512")).then(|| {
            let (tx, rx) = std::sync::mpsc::sync_channel::<bytes::Bytes>(256);
            let thread = std::thread::spawn(move || {
                let mut h = Sha512::new();
                for chunk in rx {
                    h.update(&chunk);
                }
                h.finalize()
                    .iter()
                    .map(|b| format!("{b:02x}"))
                    .collect::<String>()
            });
            (tx, thread)
        });
        let (tx, thread) = match hasher {
            Some((tx, thread)) => (Some(tx), Some(thread)),
            None => (None, None),
        };
        let mut written = 0u64;
        loop {
            let chunk = tokio::time::timeout(self.idle, resp.chunk())
                .await
                .map_err(|_| GlanceError::Stalled {
                    what: what.clone(),
                    secs: self.idle.as_secs(),
                })?
                .map_err(|e| self.unreachable(e))?;
            let Some(chunk) = chunk else { break };
            file.write_all(&chunk).await.map_err(io)?;
            written += chunk.len() as u64;
            if let Some(tx) = &tx {
                let stopped = || GlanceError::Io {
                    what: format!("hashing image {id}'s data"),
                    source: std::io::Error::other("the hashing thread stopped"),
                };
                match tx.try_send(chunk) {
                    Ok(()) => {}
                    // A full queue is waited on in the blocking pool, not on the runtime.
                    Err(std::sync::mpsc::TrySendError::Full(chunk)) => {
                        let tx = tx.clone();
                        tokio::task::spawn_blocking(move || tx.send(chunk))
                            .await
                            .ok()
                            .and_then(Result::ok)
                            .ok_or_else(stopped)?;
                    }
                    Err(std::sync::mpsc::TrySendError::Disconnected(_)) => return Err(stopped()),
                }
            }
        }
        // Not synced: the file is temporary (a crash's leftovers are swept at start-up)
        // and qemu-img reads it next, from the page cache.
        file.flush().await.map_err(io)?;
        drop(tx);
        if let (Some(thread), Some(want)) = (thread, &image.os_hash_value) {
            let got = tokio::task::spawn_blocking(move || thread.join())
                .await
                .ok()
                .and_then(Result::ok)
                .ok_or_else(|| GlanceError::Io {
                    what: format!("hashing image {id}'s data"),
                    source: std::io::Error::other("the hashing thread failed"),
                })?;
            if !got.eq_ignore_ascii_case(want) {
                return Err(GlanceError::Corrupt {
                    image_id: id.clone(),
                    algo: "sha512".into(),
                });
            }
        }
        Ok(written)
    }

    /// Streams the file at `src` as image `id`'s data (`PUT /v2/images/{id}/file`), one
    /// chunk in memory at a time; Glance makes the image `active` once it has it all.
    pub async fn upload_from(&self, id: &str, src: &Path) -> Result<u64, GlanceError> {
        let what = format!("PUT /v2/images/{id}/file");
        let io = |source| GlanceError::Io {
            what: format!("reading the data for image {id}"),
            source,
        };
        let file = tokio::fs::File::open(src).await.map_err(io)?;
        let len = file.metadata().await.map_err(io)?.len();
        let body = FileBody {
            file,
            buf: vec![0; 1 << 20],
            remaining: len,
        };
        let send = self
            .request(reqwest::Method::PUT, &format!("/v2/images/{id}/file"))
            .header(reqwest::header::CONTENT_TYPE, "application/octet-stream")
            .header(reqwest::header::CONTENT_LENGTH, len)
            .body(reqwest::Body::wrap(body))
            .send();
        // The whole upload is bounded by the idle timeout per GiB, at least one of it.
        let budget = self.idle * (1 + (len >> 30) as u32);
        let resp = tokio::time::timeout(budget, send)
            .await
            .map_err(|_| GlanceError::Stalled {
                what: what.clone(),
                secs: budget.as_secs(),
            })?
            .map_err(|e| self.unreachable(e))?;
        check(resp, &what).await?;
        Ok(len)
    }
}

/// A success passes; anything else is an error with the start of its body.
async fn check(resp: reqwest::Response, what: &str) -> Result<reqwest::Response, GlanceError> {
    let status = resp.status();
    if status.is_success() {
        return Ok(resp);
    }
    let body = resp.text().await.unwrap_or_default();
    let body: String = body.chars().take(400).collect();
    Err(GlanceError::Status {
        what: what.to_string(),
        status: status.as_u16(),
        body,
    })
}

async fn json_of(resp: reqwest::Response, what: &str) -> Result<Value, GlanceError> {
    resp.json().await.map_err(|e| GlanceError::Malformed {
        what: what.to_string(),
        why: e.to_string(),
    })
}

/// A file as a request body, read one buffer at a time.
struct FileBody {
    file: tokio::fs::File,
    buf: Vec<u8>,
    remaining: u64,
}

impl http_body::Body for FileBody {
    type Data = bytes::Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<bytes::Bytes>, std::io::Error>>> {
        if self.remaining == 0 {
            return Poll::Ready(None);
        }
        let this = &mut *self;
        let want = (this.buf.len() as u64).min(this.remaining) as usize;
        let mut rb = ReadBuf::new(&mut this.buf[..want]);
        match Pin::new(&mut this.file).poll_read(cx, &mut rb) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Err(e)) => Poll::Ready(Some(Err(e))),
            Poll::Ready(Ok(())) => {
                let n = rb.filled().len();
                if n == 0 {
                    return Poll::Ready(Some(Err(std::io::Error::new(
                        std::io::ErrorKind::UnexpectedEof,
                        "the file shrank while it was uploaded",
                    ))));
                }
                this.remaining -= n as u64;
                let data = bytes::Bytes::copy_from_slice(&this.buf[..n]);
                Poll::Ready(Some(Ok(http_body::Frame::data(data))))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.remaining == 0
    }

    fn size_hint(&self) -> http_body::SizeHint {
        http_body::SizeHint::with_exact(self.remaining)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_image_keeps_its_custom_properties_and_gives_cinders_volume_metadata() {
        let v = serde_json::json!({
            "id": "i-1", "name": "cirros", "status": "active", "disk_format": "qcow2",
            "container_format": "bare", "size": 100, "virtual_size": 1024, "min_disk": 1,
            "min_ram": 64, "checksum": "abc", "os_hash_algo": "sha512", "os_hash_value": "00",
            "updated_at": "2026-12-01T00:00:00Z", "visibility": "private", "protected": false,
            "hw_disk_bus": "scsi", "tags": [], "self": "/v2/images/i-1", "os_hidden": false,
            "hw_count": 2, "unset": null
        });
        let image = Image::from_json(&v, "t").unwrap();
        assert_eq!(
            image.properties,
            BTreeMap::from([
                ("hw_count".to_string(), "2".to_string()),
                ("hw_disk_bus".to_string(), "scsi".to_string())
            ])
        );
        let m = image.volume_image_metadata();
        for (k, want) in [
            ("image_id", "i-1"),
            ("image_name", "cirros"),
            ("checksum", "abc"),
            ("container_format", "bare"),
            ("disk_format", "qcow2"),
            ("min_disk", "1"),
            ("min_ram", "64"),
            ("size", "100"),
            ("hw_disk_bus", "scsi"),
        ] {
            assert_eq!(m.get(k).map(String::as_str), Some(want), "{k}");
        }
        assert!(!m.contains_key("os_hash_value") && !m.contains_key("self"));
        assert!(Image::from_json(&serde_json::json!({"name": "x"}), "t").is_err());
    }
}
