//! HTTP policy: which origins a plugin may talk to.
//!
//! Origins are compared exactly (scheme, lowercase host, port with defaults filled in). The
//! parser is strict on purpose: anything an HTTP client might read differently (userinfo,
//! percent-encoding, backslashes, whitespace) is refused rather than interpreted, so the
//! origin checked here is the origin the request goes to.

use std::fmt;

use super::{CapabilityKind, Denied};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scheme {
    Http,
    Https,
}

impl Scheme {
    pub fn as_str(self) -> &'static str {
        match self {
            Scheme::Http => "http",
            Scheme::Https => "https",
        }
    }

    pub fn default_port(self) -> u16 {
        match self {
            Scheme::Http => 80,
            Scheme::Https => 443,
        }
    }
}

/// `scheme://host:port`, normalised.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Origin {
    scheme: Scheme,
    /// Lowercase; IPv6 addresses keep their brackets.
    host: String,
    port: u16,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OriginError {
    #[error("it contains whitespace or control characters")]
    Whitespace,
    #[error("it has no `scheme://`")]
    NoScheme,
    #[error("scheme `{0}` is not supported (only http and https)")]
    UnsupportedScheme(String),
    #[error("it has user info (`user@`), which is not allowed")]
    UserInfo,
    #[error("host `{0}` is not valid")]
    InvalidHost(String),
    #[error("port `{0}` is not valid")]
    InvalidPort(String),
    #[error("it has a path, query or fragment (`{0}`); give only scheme://host[:port]")]
    NotAnOrigin(String),
}

impl Origin {
    /// Parses an origin as written in plugin.toml or a grant; a trailing `/` is tolerated.
    pub fn parse(origin: &str) -> Result<Self, OriginError> {
        let (parsed, tail) = split(origin)?;
        if tail.is_empty() || tail == "/" {
            Ok(parsed)
        } else {
            Err(OriginError::NotAnOrigin(tail.to_owned()))
        }
    }

    /// The origin a request URL goes to.
    pub fn of_url(url: &str) -> Result<Self, OriginError> {
        split(url).map(|(origin, _)| origin)
    }

    pub fn scheme(&self) -> Scheme {
        self.scheme
    }

    pub fn host(&self) -> &str {
        &self.host
    }

    pub fn port(&self) -> u16 {
        self.port
    }
}

impl std::str::FromStr for Origin {
    type Err = OriginError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Origin::parse(s)
    }
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}://{}", self.scheme.as_str(), self.host)?;
        if self.port != self.scheme.default_port() {
            write!(f, ":{}", self.port)?;
        }
        Ok(())
    }
}

/// Splits `scheme://authority` from the rest of the URL.
fn split(url: &str) -> Result<(Origin, &str), OriginError> {
    if url.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(OriginError::Whitespace);
    }
    let (scheme, rest) = url.split_once("://").ok_or(OriginError::NoScheme)?;
    let scheme = match scheme.to_ascii_lowercase().as_str() {
        "http" => Scheme::Http,
        "https" => Scheme::Https,
        _ => return Err(OriginError::UnsupportedScheme(scheme.to_owned())),
    };
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(end);
    if authority.contains('@') {
        return Err(OriginError::UserInfo);
    }
    let invalid_host = || OriginError::InvalidHost(authority.to_owned());
    let (host, port) = if let Some(bracketed) = authority.strip_prefix('[') {
        let (address, after) = bracketed.split_once(']').ok_or_else(invalid_host)?;
        let ipv6 = address.contains(':')
            && address
                .chars()
                .all(|c| c.is_ascii_hexdigit() || c == ':' || c == '.');
        if !ipv6 {
            return Err(invalid_host());
        }
        let port = match after {
            "" => None,
            _ => Some(after.strip_prefix(':').ok_or_else(invalid_host)?),
        };
        (format!("[{}]", address.to_ascii_lowercase()), port)
    } else {
        let (host, port) = match authority.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (authority, None),
        };
        let valid = !host.is_empty()
            && host
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_'));
        if !valid {
            return Err(invalid_host());
        }
        (host.to_ascii_lowercase(), port)
    };
    let port = match port {
        None => scheme.default_port(),
        Some(p) => p
            .parse::<u16>()
            .ok()
            .filter(|n| *n != 0 && p.bytes().all(|b| b.is_ascii_digit()))
            .ok_or_else(|| OriginError::InvalidPort(p.to_owned()))?,
    };
    Ok((Origin { scheme, host, port }, tail))
}

/// The runtime check behind [`super::EffectiveCapabilities::http_allows`].
pub fn allows(origins: &[Origin], url: &str) -> Result<(), Denied> {
    let allowed = || {
        origins
            .iter()
            .map(Origin::to_string)
            .collect::<Vec<_>>()
            .join(", ")
    };
    let origin = Origin::of_url(url).map_err(|why| {
        Denied::new(
            CapabilityKind::Http,
            format!(
                "http request to `{}` is refused: {why}; allowed origins: [{}]",
                url.escape_debug(),
                allowed()
            ),
        )
    })?;
    if origins.contains(&origin) {
        Ok(())
    } else {
        Err(Denied::new(
            CapabilityKind::Http,
            format!(
                "http request to `{url}` (origin {origin}) is not allowed; allowed origins: [{}]",
                allowed()
            ),
        ))
    }
}

/// What a driver must never read back: the secrets of its backend's credentials in every
/// form they travel in (as given, JSON-escaped, percent-encoded, and the basic-auth
/// header's base64), so a granted endpoint that reflects a request cannot hand them to
/// the guest. Another encoding an endpoint might invent is not recognised: an endpoint
/// is granted because the operator trusts it with the credential.
#[derive(Debug, Clone, Default)]
pub struct Redactor {
    forms: Vec<Vec<u8>>,
}

/// What a redacted secret reads as.
pub const REDACTED: &str = "[REDACTED]";

impl Redactor {
    /// Adds a basic-auth pair: the password alone and the `user:password` base64.
    pub fn basic(&mut self, username: &str, password: &str) {
        self.secret(password);
        let b64 = base64(format!("{username}:{password}").as_bytes());
        // With its padding, and without, so the form inside a longer base64 text is
        // found too.
        self.add(b64.trim_end_matches('=').as_bytes().to_vec());
        self.add(b64.into_bytes());
    }

    /// Adds a secret (a password or a token) in its plain and escaped forms.
    pub fn secret(&mut self, secret: &str) {
        self.add(secret.as_bytes().to_vec());
        let json = serde_json::to_string(secret).unwrap_or_default();
        self.add(json.as_bytes()[1..json.len().saturating_sub(1).max(1)].to_vec());
        self.add(percent_encode(secret).into_bytes());
    }

    fn add(&mut self, form: Vec<u8>) {
        if !form.is_empty() && !self.forms.contains(&form) {
            self.forms.push(form);
            // Longest first, so a form that contains another is replaced whole.
            self.forms.sort_by_key(|f| std::cmp::Reverse(f.len()));
        }
    }

    /// `data` with every secret form replaced by [`REDACTED`], or `None` when it holds none.
    pub fn redact(&self, data: &[u8]) -> Option<Vec<u8>> {
        let mut out: Option<Vec<u8>> = None;
        for form in &self.forms {
            let current = out.as_deref().unwrap_or(data);
            if let Some(replaced) = replace_all(current, form, REDACTED.as_bytes()) {
                out = Some(replaced);
            }
        }
        out
    }

    pub fn redact_str(&self, text: &str) -> Option<String> {
        self.redact(text.as_bytes())
            .map(|b| String::from_utf8_lossy(&b).into_owned())
    }
}

fn replace_all(data: &[u8], needle: &[u8], with: &[u8]) -> Option<Vec<u8>> {
    if needle.is_empty() || data.len() < needle.len() {
        return None;
    }
    let mut out = Vec::new();
    let mut last = 0;
    let mut i = 0;
    let mut found = false;
    while i + needle.len() <= data.len() {
        if &data[i..i + needle.len()] == needle {
            out.extend_from_slice(&data[last..i]);
            out.extend_from_slice(with);
            i += needle.len();
            last = i;
            found = true;
        } else {
            i += 1;
        }
    }
    if !found {
        return None;
    }
    out.extend_from_slice(&data[last..]);
    Some(out)
}

fn percent_encode(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Standard base64 with padding, as HTTP basic auth uses it.
fn base64(data: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_is_the_basic_auth_encoding() {
        assert_eq!(base64(b"admin:secret"), "YWRtaW46c2VjcmV0");
        assert_eq!(
            base64(b"Aladdin:open sesame"),
            "QWxhZGRpbjpvcGVuIHNlc2FtZQ=="
        );
        assert_eq!(base64(b"a"), "YQ==");
        assert_eq!(base64(b""), "");
    }

    #[test]
    fn credentials_are_redacted_in_every_form_they_travel_in() {
        let mut r = Redactor::default();
        r.basic("admin", "pa\"ss w/rd");
        let header = format!("Basic {}", base64(b"admin:pa\"ss w/rd"));
        let body = format!(
            r#"{{"authorization": "{header}", "decoded": "admin:pa\"ss w/rd", "q": "p=pa%22ss%20w%2Frd", "raw": "x pa"ss w/rd y"}}"#
        );
        let out = String::from_utf8(r.redact(body.as_bytes()).unwrap()).unwrap();
        assert!(!out.contains("pa\"ss"), "{out}");
        assert!(!out.contains("pa\\\"ss"), "{out}");
        assert!(!out.contains("pa%22ss"), "{out}");
        assert!(!out.contains(&base64(b"admin:pa\"ss w/rd")[..20]), "{out}");
        assert_eq!(out.matches(REDACTED).count(), 4, "{out}");
        assert!(out.contains("\"decoded\": \"admin:[REDACTED]\""), "{out}");
        assert_eq!(r.redact(b"nothing secret here"), None);

        let mut bearer = Redactor::default();
        bearer.secret("tok-123");
        assert_eq!(
            bearer.redact_str("Bearer tok-123").as_deref(),
            Some("Bearer [REDACTED]")
        );
        assert_eq!(Redactor::default().redact(b"anything"), None);
    }

    fn origin(s: &str) -> Origin {
        Origin::parse(s).unwrap()
    }

    #[test]
    fn default_ports_and_case_normalise() {
        assert_eq!(
            origin("HTTP://Example.COM"),
            origin("http://example.com:80")
        );
        assert_eq!(
            origin("https://example.com/"),
            origin("https://example.com:443")
        );
        assert_ne!(origin("http://example.com"), origin("https://example.com"));
        assert_ne!(
            origin("http://example.com"),
            origin("http://example.com:8080")
        );
        assert_eq!(
            origin("https://Example.com:443").to_string(),
            "https://example.com"
        );
        assert_eq!(origin("http://[::1]:8080").to_string(), "http://[::1]:8080");
        assert_eq!(origin("http://[::1]").port(), 80);
    }

    #[test]
    fn urls_reduce_to_their_origin() {
        let granted = [origin("http://127.0.0.1:8080")];
        assert!(allows(&granted, "http://127.0.0.1:8080/api/v1?x=1#f").is_ok());
        assert!(allows(&granted, "http://127.0.0.1:8080?x").is_ok());
        let err = allows(&granted, "http://127.0.0.1:8081/api").unwrap_err();
        assert_eq!(err.kind(), CapabilityKind::Http);
        assert_eq!(
            err.to_string(),
            "http request to `http://127.0.0.1:8081/api` (origin http://127.0.0.1:8081) \
             is not allowed; allowed origins: [http://127.0.0.1:8080]"
        );
        assert!(allows(&[], "http://127.0.0.1:8080/").is_err());
    }

    #[test]
    fn ambiguous_urls_are_refused() {
        let granted = [origin("http://good.example")];
        for url in [
            "http://user@good.example/",
            "http://good.example@evil.example/",
            "http://evil.example\\@good.example/",
            "http://good%2eexample/",
            "http://good.example:/",
            "http://good.example:0/",
            "http://good.example:65536/",
            "http://good.example:+80/",
            "http:///good.example/",
            "http:good.example",
            " http://good.example/",
            "http://good.\texample/",
            "ftp://good.example/",
            "file:///etc/passwd",
            "http://[good.example]/",
            "http://::1/",
        ] {
            assert!(allows(&granted, url).is_err(), "{url}");
        }
        assert_eq!(
            Origin::of_url("http://user@good.example/").unwrap_err(),
            OriginError::UserInfo
        );
    }

    #[test]
    fn origins_have_no_path() {
        assert!(matches!(
            Origin::parse("http://a.example/api").unwrap_err(),
            OriginError::NotAnOrigin(_)
        ));
    }
}
