//! The S3 backup store over the `http` capability: path-style requests to one endpoint,
//! signed by the host with the credential the operator configured (the driver names it,
//! never sees it).
//!
//! Settings: `endpoint` (`http://host:port`, granted in `grants.http`), `credential` (the
//! name of an `access_key_id`/`secret_access_key` credential, default `s3`),
//! `multipart_threshold_mib` (default 64), `part_size_mib` (default 8, at least 5 as S3
//! requires of every part but the last).
//!
//! Errors: a missing key (`NoSuchKey`) or bucket is `not-found`; a refused signature
//! (`SignatureDoesNotMatch`, `InvalidAccessKeyId`) is `backend-unavailable` naming the
//! credential; any other answer names the operation, the status and S3's code and message.

use ashlar_sdk::backup::ObjectInfo;
use ashlar_sdk::http::{HttpError, Request, Response, send};
use ashlar_sdk::{BackupDriver, DriverError, Result, config};

const MIB: usize = 1 << 20;

/// Keys asked for per ListObjectsV2 request (S3's own maximum).
const MAX_KEYS: u32 = 1000;

pub struct S3Settings {
    pub endpoint: String,
    pub credential: String,
    pub multipart_threshold: usize,
    pub part_size: usize,
}

impl S3Settings {
    fn from_config() -> Result<Self> {
        let endpoint = config::require("endpoint")?
            .trim_end_matches('/')
            .to_string();
        let mib = |key: &str, default: &str, min: usize| -> Result<usize> {
            let v = config::get_or(key, default);
            match v.parse::<usize>() {
                Ok(n) if n >= min && n <= 4096 => Ok(n * MIB),
                _ => Err(DriverError::invalid_argument(format!(
                    "{key} `{v}` must be a number of MiB from {min} to 4096"
                ))),
            }
        };
        Ok(S3Settings {
            endpoint,
            credential: config::get_or("credential", "s3"),
            multipart_threshold: mib("multipart_threshold_mib", "64", 5)?,
            part_size: mib("part_size_mib", "8", 5)?,
        })
    }
}

/// SigV4's URI encoding of a key: unreserved bytes and `/` as they are, the rest `%XX`.
pub fn encode(raw: &str, keep_slash: bool) -> String {
    let mut out = String::with_capacity(raw.len());
    for &b in raw.as_bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) || (keep_slash && b == b'/') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The text of every `<tag>…</tag>` in `xml`, entities undone.
pub fn tags<'a>(xml: &'a str, tag: &str) -> Vec<&'a str> {
    let (open, close) = (format!("<{tag}>"), format!("</{tag}>"));
    let mut out = Vec::new();
    let mut rest = xml;
    while let Some(start) = rest.find(&open) {
        let after = &rest[start + open.len()..];
        let Some(end) = after.find(&close) else { break };
        out.push(&after[..end]);
        rest = &after[end + close.len()..];
    }
    out
}

pub fn tag(xml: &str, name: &str) -> Option<String> {
    tags(xml, name).first().map(|t| unescape(t))
}

pub fn unescape(s: &str) -> String {
    if !s.contains('&') {
        return s.to_string();
    }
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('&') {
        out.push_str(&rest[..i]);
        let after = &rest[i..];
        let Some(end) = after.find(';') else {
            out.push_str(after);
            return out;
        };
        let entity = &after[1..end];
        let ch = match entity {
            "amp" => Some('&'),
            "lt" => Some('<'),
            "gt" => Some('>'),
            "quot" => Some('"'),
            "apos" => Some('\''),
            e if e.starts_with("#x") => u32::from_str_radix(&e[2..], 16)
                .ok()
                .and_then(char::from_u32),
            e if e.starts_with('#') => e[1..].parse().ok().and_then(char::from_u32),
            _ => None,
        };
        match ch {
            Some(c) => {
                out.push(c);
                rest = &after[end + 1..];
            }
            None => {
                out.push('&');
                rest = &after[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

fn header<'a>(r: &'a Response, name: &str) -> Option<&'a str> {
    r.headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

pub struct S3Driver {
    settings: Option<S3Settings>,
}

impl S3Driver {
    fn settings(&mut self) -> Result<&S3Settings> {
        if self.settings.is_none() {
            self.settings = Some(S3Settings::from_config()?);
        }
        Ok(self.settings.as_ref().expect("just set"))
    }
}

/// One signed request.
fn request(
    s: &S3Settings,
    method: &str,
    path_and_query: &str,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
) -> std::result::Result<Response, DriverError> {
    let url = format!("{}{path_and_query}", s.endpoint);
    send(&Request {
        method: method.to_string(),
        url: url.clone(),
        headers,
        body,
        credential: Some(s.credential.clone()),
        timeout_ms: None,
    })
    .map_err(|e| match e {
        HttpError::Denied(m) => {
            DriverError::backend_unavailable(format!("{method} {url} refused by the host: {m}"))
        }
        HttpError::TimedOut(m) | HttpError::Connection(m) => {
            DriverError::backend_unavailable(format!("{method} {url}: {m}"))
        }
        HttpError::TooLarge(m) => DriverError::internal(format!("{method} {url}: {m}")),
        HttpError::InvalidRequest(m) => {
            DriverError::invalid_argument(format!("{method} {url}: {m}"))
        }
    })
}

/// S3's error answer as a driver error naming what was being done.
fn s3_error(s: &S3Settings, doing: &str, r: &Response) -> DriverError {
    let body = String::from_utf8_lossy(&r.body);
    let code = tag(&body, "Code").unwrap_or_default();
    let message = tag(&body, "Message").unwrap_or_default();
    let said = if code.is_empty() {
        format!("HTTP {}", r.status)
    } else {
        format!("HTTP {} {code}: {message}", r.status)
    };
    match (r.status, code.as_str()) {
        (404, _) => DriverError::not_found(format!("{doing}: {said}")),
        (403, "SignatureDoesNotMatch" | "InvalidAccessKeyId") | (403, "") => {
            DriverError::backend_unavailable(format!(
                "{doing}: S3 at {} refused the request signed with credential `{}` ({said}); \
                 check that credential's access_key_id and secret_access_key",
                s.endpoint, s.credential
            ))
        }
        (500..=599, _) => DriverError::backend_unavailable(format!("{doing}: {said}")),
        _ => DriverError::internal(format!("{doing}: {said}")),
    }
}

fn ok(r: &Response) -> bool {
    (200..300).contains(&r.status)
}

fn object_path(container: &str, name: &str) -> Result<String> {
    if name.is_empty() {
        return Err(DriverError::invalid_argument("an object name is empty"));
    }
    Ok(format!(
        "/{}/{}",
        encode(container, false),
        encode(name, true)
    ))
}

fn check_bucket(container: &str) -> Result<()> {
    let valid = (3..=63).contains(&container.len())
        && container
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
        && !container.starts_with(['-', '.'])
        && !container.ends_with(['-', '.']);
    if valid {
        Ok(())
    } else {
        Err(DriverError::invalid_argument(format!(
            "container `{container}` is not a valid S3 bucket name (3 to 63 lower-case letters, digits, `-` and `.`)"
        )))
    }
}

impl S3Driver {
    fn put_multipart(&mut self, path: &str, name: &str, data: &[u8]) -> Result<()> {
        let s = self.settings()?;
        let doing = format!("uploading object {name} in parts");
        let r = request(s, "POST", &format!("{path}?uploads"), vec![], vec![])?;
        if !ok(&r) {
            return Err(s3_error(s, &doing, &r));
        }
        let body = String::from_utf8_lossy(&r.body);
        let upload_id = tag(&body, "UploadId")
            .ok_or_else(|| DriverError::internal(format!("{doing}: S3 answered no UploadId")))?;
        let id = encode(&upload_id, false);
        let result = (|| {
            let mut parts = Vec::new();
            for (i, chunk) in data.chunks(s.part_size).enumerate() {
                let n = i + 1;
                let r = request(
                    s,
                    "PUT",
                    &format!("{path}?partNumber={n}&uploadId={id}"),
                    vec![],
                    chunk.to_vec(),
                )?;
                if !ok(&r) {
                    return Err(s3_error(s, &format!("{doing}: part {n}"), &r));
                }
                let etag = header(&r, "etag").ok_or_else(|| {
                    DriverError::internal(format!("{doing}: part {n} was answered without an ETag"))
                })?;
                parts.push((n, etag.to_string()));
            }
            let mut xml = String::from("<CompleteMultipartUpload>");
            for (n, etag) in &parts {
                xml.push_str(&format!(
                    "<Part><PartNumber>{n}</PartNumber><ETag>{}</ETag></Part>",
                    escape(etag)
                ));
            }
            xml.push_str("</CompleteMultipartUpload>");
            let r = request(
                s,
                "POST",
                &format!("{path}?uploadId={id}"),
                vec![("content-type".into(), "application/xml".into())],
                xml.into_bytes(),
            )?;
            // S3 may answer 200 with an error in the body.
            let body = String::from_utf8_lossy(&r.body);
            if !ok(&r)
                || tag(&body, "Code").is_some() && !body.contains("CompleteMultipartUploadResult")
            {
                return Err(s3_error(s, &format!("{doing}: completing"), &r));
            }
            Ok(())
        })();
        if result.is_err() {
            // Parts of an abandoned upload would be kept (and billed) forever.
            let _ = request(
                s,
                "DELETE",
                &format!("{path}?uploadId={id}"),
                vec![],
                vec![],
            );
        }
        result
    }
}

impl BackupDriver for S3Driver {
    fn new() -> Self {
        S3Driver { settings: None }
    }

    fn do_setup(&mut self) -> Result<()> {
        self.settings().map(|_| ())
    }

    /// Lists the account's buckets: proves the endpoint answers and the credential signs.
    fn check_for_setup_error(&mut self) -> Result<()> {
        let s = self.settings()?;
        let r = request(s, "GET", "/", vec![], vec![])?;
        if ok(&r) {
            Ok(())
        } else {
            Err(s3_error(s, "listing buckets", &r))
        }
    }

    fn put_container(&mut self, container: String) -> Result<()> {
        check_bucket(&container)?;
        let s = self.settings()?;
        let path = format!("/{}", encode(&container, false));
        let doing = format!("creating bucket {container}");
        let r = request(s, "PUT", &path, vec![], vec![])?;
        if ok(&r) {
            return Ok(());
        }
        // Already there: fine if it is ours to use.
        if r.status == 409 {
            let head = request(s, "HEAD", &path, vec![], vec![])?;
            if ok(&head) {
                return Ok(());
            }
        }
        Err(s3_error(s, &doing, &r))
    }

    fn put_object(&mut self, container: String, name: String, data: Vec<u8>) -> Result<()> {
        let path = object_path(&container, &name)?;
        let s = self.settings()?;
        if data.len() > s.multipart_threshold {
            return self.put_multipart(&path, &name, &data);
        }
        let r = request(s, "PUT", &path, vec![], data)?;
        if ok(&r) {
            Ok(())
        } else {
            Err(s3_error(s, &format!("storing object {name}"), &r))
        }
    }

    /// Ranged GETs of `part_size_mib`, so no answer exceeds the host's response cap.
    fn get_object(&mut self, container: String, name: String) -> Result<Vec<u8>> {
        let path = object_path(&container, &name)?;
        let s = self.settings()?;
        let doing = format!("reading object {name}");
        let mut out: Vec<u8> = Vec::new();
        loop {
            let from = out.len();
            let range = format!("bytes={from}-{}", from + s.part_size - 1);
            let r = request(s, "GET", &path, vec![("range".into(), range)], vec![])?;
            match r.status {
                // The whole object (the store ignored the range).
                200 if from == 0 => return Ok(r.body),
                206 => {
                    let total = header(&r, "content-range")
                        .and_then(|v| v.rsplit('/').next())
                        .and_then(|t| t.parse::<usize>().ok())
                        .ok_or_else(|| {
                            DriverError::internal(format!(
                                "{doing}: a partial answer without a Content-Range total"
                            ))
                        })?;
                    if r.body.is_empty() {
                        return Err(DriverError::internal(format!(
                            "{doing}: an empty partial answer at byte {from} of {total}"
                        )));
                    }
                    out.extend_from_slice(&r.body);
                    if out.len() >= total {
                        out.truncate(total);
                        return Ok(out);
                    }
                }
                // An empty object has no byte 0 to start a range at.
                416 if from == 0 => {
                    let r = request(s, "GET", &path, vec![], vec![])?;
                    return if ok(&r) {
                        Ok(r.body)
                    } else {
                        Err(s3_error(s, &doing, &r))
                    };
                }
                _ => {
                    let mut e = s3_error(s, &doing, &r);
                    if r.status == 404 {
                        e = DriverError::not_found(format!(
                            "object {name} is not in bucket {container}"
                        ));
                    }
                    return Err(e);
                }
            }
        }
    }

    fn delete_object(&mut self, container: String, name: String) -> Result<()> {
        let path = object_path(&container, &name)?;
        let s = self.settings()?;
        let r = request(s, "DELETE", &path, vec![], vec![])?;
        // S3 answers 204 for a missing key too; some stores answer 404.
        if ok(&r) || r.status == 404 {
            Ok(())
        } else {
            Err(s3_error(s, &format!("deleting object {name}"), &r))
        }
    }

    fn list_objects(
        &mut self,
        container: String,
        prefix: String,
        marker: Option<String>,
        limit: u32,
    ) -> Result<Vec<ObjectInfo>> {
        check_bucket(&container)?;
        let s = self.settings()?;
        let doing = format!("listing bucket {container} under `{prefix}`");
        let mut out: Vec<ObjectInfo> = Vec::new();
        let mut token: Option<String> = None;
        while out.len() < limit as usize {
            let want = (limit as usize - out.len()).min(MAX_KEYS as usize);
            let mut query = format!(
                "/{}?list-type=2&max-keys={want}&prefix={}",
                encode(&container, false),
                encode(&prefix, false)
            );
            match (&token, &marker) {
                (Some(t), _) => {
                    query.push_str(&format!("&continuation-token={}", encode(t, false)))
                }
                (None, Some(m)) => query.push_str(&format!("&start-after={}", encode(m, false))),
                (None, None) => {}
            }
            let r = request(s, "GET", &query, vec![], vec![])?;
            if !ok(&r) {
                return Err(s3_error(s, &doing, &r));
            }
            let body = String::from_utf8_lossy(&r.body);
            for contents in tags(&body, "Contents") {
                let name = tag(contents, "Key").unwrap_or_default();
                let size = tag(contents, "Size")
                    .and_then(|v| v.parse().ok())
                    .unwrap_or_default();
                // Byte order after the marker, as the contract promises, whatever the store.
                if marker.as_ref().is_some_and(|m| name <= *m) || !name.starts_with(&prefix) {
                    continue;
                }
                out.push(ObjectInfo { name, size });
            }
            let truncated = tag(&body, "IsTruncated").is_some_and(|t| t == "true");
            token = tag(&body, "NextContinuationToken");
            if !truncated || token.is_none() {
                break;
            }
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        out.truncate(limit as usize);
        Ok(out)
    }
}

ashlar_sdk::register_backup_driver!(S3Driver);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_encoded_once_and_xml_is_read_back() {
        assert_eq!(encode("b1/chunk 1+x", true), "b1/chunk%201%2Bx");
        assert_eq!(encode("a/b", false), "a%2Fb");
        let xml = "<ListBucketResult><IsTruncated>true</IsTruncated>\
            <Contents><Key>a&amp;b/1</Key><Size>3</Size></Contents>\
            <Contents><Key>c</Key><Size>10</Size></Contents>\
            <NextContinuationToken>tok==</NextContinuationToken></ListBucketResult>";
        let keys: Vec<String> = tags(xml, "Contents")
            .iter()
            .map(|c| tag(c, "Key").unwrap())
            .collect();
        assert_eq!(keys, ["a&b/1", "c"]);
        assert_eq!(tag(xml, "NextContinuationToken").as_deref(), Some("tok=="));
        assert_eq!(unescape("&#65;&#x42;&lt;&bogus;"), "AB<&bogus;");
        assert!(check_bucket("volumebackups").is_ok());
        assert!(check_bucket("Volume_Backups").is_err());
    }
}
