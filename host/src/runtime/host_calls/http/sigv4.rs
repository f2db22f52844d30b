//! AWS Signature Version 4, as the host applies it to a driver's request that names an
//! `access_key_id`/`secret_access_key` credential: the driver builds an S3 request, the
//! host adds `x-amz-date`, `x-amz-content-sha256` and `Authorization`, and the driver never
//! sees the secret.
//!
//! Written on `hmac` + `sha2` rather than with `aws-sigv4`: the official signer cannot be
//! had without `aws-smithy-runtime-api`, `aws-smithy-types`, `aws-smithy-http`,
//! `aws-credential-types` and their own dependencies (about twenty crates for two hashes),
//! while the algorithm is short, fixed and checked here against AWS's published examples.
//! Reference: <https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_sigv-create-signed-request.html>.

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

/// The keys of one signing identity.
pub struct SigningKey<'a> {
    pub access_key_id: &'a str,
    pub secret_access_key: &'a str,
    pub region: &'a str,
    pub service: &'a str,
}

/// What a request is signed over.
pub struct SignableRequest<'a> {
    pub method: &'a str,
    /// `host` or `host:port`, as the request's Host header carries it.
    pub host: &'a str,
    /// The path as it appears in the URL (percent-encoded or not).
    pub path: &'a str,
    /// The query as it appears in the URL, without `?`.
    pub query: &'a str,
    /// The driver's own headers, signed too.
    pub headers: &'a [(String, String)],
    pub body: &'a [u8],
}

/// The headers to add: `x-amz-date`, `x-amz-content-sha256` and `authorization`.
pub fn sign(
    key: &SigningKey<'_>,
    req: &SignableRequest<'_>,
    unix_secs: u64,
) -> Vec<(&'static str, String)> {
    let amz_date = amz_date(unix_secs);
    let date = &amz_date[..8];
    let payload_hash = hex(&Sha256::digest(req.body));

    // Canonical headers: lower-case names, trimmed values with inner runs of spaces
    // squeezed, sorted by name; values of a repeated name joined with commas.
    let mut headers: Vec<(String, String)> = vec![
        ("host".into(), req.host.to_string()),
        ("x-amz-content-sha256".into(), payload_hash.clone()),
        ("x-amz-date".into(), amz_date.clone()),
    ];
    for (name, value) in req.headers {
        let name = name.to_ascii_lowercase();
        if matches!(
            name.as_str(),
            "host" | "x-amz-date" | "x-amz-content-sha256" | "authorization"
        ) {
            continue;
        }
        headers.push((name, value.split_whitespace().collect::<Vec<_>>().join(" ")));
    }
    headers.sort_by(|a, b| a.0.cmp(&b.0));
    let mut canonical_headers = String::new();
    let mut signed: Vec<&str> = Vec::new();
    for (name, value) in &headers {
        if signed.last() == Some(&name.as_str()) {
            canonical_headers.pop(); // the newline: join with the previous value
            canonical_headers.push(',');
        } else {
            canonical_headers.push_str(name);
            canonical_headers.push(':');
            signed.push(name);
        }
        canonical_headers.push_str(value);
        canonical_headers.push('\n');
    }
    let signed_headers = signed.join(";");

    let canonical_request = format!(
        "{}\n{}\n{}\n{}\n{}\n{}",
        req.method,
        canonical_path(req.path),
        canonical_query(req.query),
        canonical_headers,
        signed_headers,
        payload_hash
    );
    let scope = format!("{date}/{}/{}/aws4_request", key.region, key.service);
    let string_to_sign = format!(
        "AWS4-HMAC-SHA256\n{amz_date}\n{scope}\n{}",
        hex(&Sha256::digest(canonical_request.as_bytes()))
    );
    let k_date = hmac(
        format!("AWS4{}", key.secret_access_key).as_bytes(),
        date.as_bytes(),
    );
    let k_region = hmac(&k_date, key.region.as_bytes());
    let k_service = hmac(&k_region, key.service.as_bytes());
    let k_signing = hmac(&k_service, b"aws4_request");
    let signature = hex(&hmac(&k_signing, string_to_sign.as_bytes()));
    vec![
        ("x-amz-date", amz_date),
        ("x-amz-content-sha256", payload_hash),
        (
            "authorization",
            format!(
                "AWS4-HMAC-SHA256 Credential={}/{scope}, SignedHeaders={signed_headers}, Signature={signature}",
                key.access_key_id
            ),
        ),
    ]
}

fn hmac(key: &[u8], data: &[u8]) -> Vec<u8> {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes keys of any length");
    mac.update(data);
    mac.finalize().into_bytes().to_vec()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// SigV4's URI encoding: every byte but the unreserved ones as `%XX` (upper case);
/// `/` kept in paths.
fn uri_encode(raw: &[u8], keep_slash: bool) -> String {
    let mut out = String::with_capacity(raw.len());
    for &b in raw {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) || (keep_slash && b == b'/') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Undoes `%XX` escapes (S3 signs the path once-encoded, whatever the URL carried).
fn percent_decode(s: &str) -> Vec<u8> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let Some(v) = std::str::from_utf8(&bytes[i + 1..i + 3])
                .ok()
                .and_then(|h| u8::from_str_radix(h, 16).ok())
        {
            out.push(v);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    out
}

fn canonical_path(path: &str) -> String {
    if path.is_empty() {
        return "/".into();
    }
    uri_encode(&percent_decode(path), true)
}

/// Query parameters decoded, encoded again SigV4's way, sorted by name then value;
/// a parameter without `=` has an empty value (`?uploads` → `uploads=`).
fn canonical_query(query: &str) -> String {
    let mut pairs: Vec<(String, String)> = query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            let dec = |s: &str| percent_decode(&s.replace('+', " "));
            (uri_encode(&dec(k), false), uri_encode(&dec(v), false))
        })
        .collect();
    pairs.sort();
    pairs
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&")
}

/// `YYYYMMDDTHHMMSSZ` for seconds since the epoch (UTC).
fn amz_date(unix_secs: u64) -> String {
    let days = (unix_secs / 86_400) as i64;
    let rem = unix_secs % 86_400;
    // Howard Hinnant's civil-from-days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}{month:02}{day:02}T{:02}{:02}{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 2013-05-24T00:00:00Z, the date of AWS's S3 examples.
    const MAY_24_2013: u64 = 1_369_353_600;

    #[test]
    fn dates_are_rendered_in_utc() {
        assert_eq!(amz_date(0), "19700101T000000Z");
        assert_eq!(amz_date(MAY_24_2013), "20130524T000000Z");
        assert_eq!(amz_date(1_440_938_160), "20150830T123600Z");
        assert_eq!(amz_date(951_782_400), "20000229T000000Z");
    }

    fn auth(headers: &[(&'static str, String)]) -> String {
        headers
            .iter()
            .find(|(n, _)| *n == "authorization")
            .unwrap()
            .1
            .clone()
    }

    const S3_EXAMPLE_KEY: SigningKey<'static> = SigningKey {
        access_key_id: "AKIAIOSFODNN7EXAMPLE",
        secret_access_key: "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
        region: "us-east-1",
        service: "s3",
    };

    /// AWS's "GET Object" example of header-based SigV4 for S3
    /// (docs.aws.amazon.com/AmazonS3/latest/API/sig-v4-header-based-auth.html).
    #[test]
    fn signs_aws_s3_get_object_example() {
        let headers = [("Range".to_string(), "bytes=0-9".to_string())];
        let signed = sign(
            &S3_EXAMPLE_KEY,
            &SignableRequest {
                method: "GET",
                host: "examplebucket.s3.amazonaws.com",
                path: "/test.txt",
                query: "",
                headers: &headers,
                body: b"",
            },
            MAY_24_2013,
        );
        assert_eq!(
            auth(&signed),
            "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request, \
             SignedHeaders=host;range;x-amz-content-sha256;x-amz-date, \
             Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41"
        );
        assert_eq!(signed[0], ("x-amz-date", "20130524T000000Z".to_string()));
        assert_eq!(
            signed[1].1,
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }

    /// The same page's "GET Bucket (List Objects)" example: query parameters are signed.
    #[test]
    fn signs_aws_s3_list_objects_example() {
        let signed = sign(
            &S3_EXAMPLE_KEY,
            &SignableRequest {
                method: "GET",
                host: "examplebucket.s3.amazonaws.com",
                path: "/",
                query: "max-keys=2&prefix=J",
                headers: &[],
                body: b"",
            },
            MAY_24_2013,
        );
        assert!(
            auth(&signed).ends_with(
                "Signature=34b48302e7b5fa45bde8084f4b7868a86f0a534bc59db6670ed5711ef69dc6f7"
            ),
            "{}",
            auth(&signed)
        );
    }

    #[test]
    fn paths_and_queries_are_canonical_whatever_the_url_carried() {
        assert_eq!(canonical_path("/b/a b+c"), "/b/a%20b%2Bc");
        assert_eq!(canonical_path("/b/a%20b%2Bc"), "/b/a%20b%2Bc");
        assert_eq!(canonical_path(""), "/");
        assert_eq!(canonical_query("uploads"), "uploads=");
        assert_eq!(
            canonical_query("prefix=a%2Fb&list-type=2&continuation-token=x%3D%3D"),
            "continuation-token=x%3D%3D&list-type=2&prefix=a%2Fb"
        );
        // A different secret gives a different signature for the same request.
        let req = SignableRequest {
            method: "PUT",
            host: "127.0.0.1:8333",
            path: "/bucket/key",
            query: "",
            headers: &[],
            body: b"data",
        };
        let other = SigningKey {
            secret_access_key: "another",
            ..S3_EXAMPLE_KEY
        };
        assert_ne!(
            auth(&sign(&S3_EXAMPLE_KEY, &req, MAY_24_2013)),
            auth(&sign(&other, &req, MAY_24_2013))
        );
    }
}
