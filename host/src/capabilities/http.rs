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

#[cfg(test)]
mod tests {
    use super::*;

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
