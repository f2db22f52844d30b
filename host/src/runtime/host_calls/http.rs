//! `http`: requests to granted origins only, no redirects, a cap on the response, and
//! named credentials the host adds (and redacts from answers) so a driver never sees them:
//! basic auth, a bearer token, or an AWS Signature Version 4 over the whole request
//! (`sigv4`).

mod sigv4;

use std::collections::BTreeMap;
use std::time::Duration;

use super::HostState;
use crate::capabilities::http::Redactor;
use crate::config::Credential;
use crate::runtime::latest::ashlar::driver::http;

impl http::Host for HostState {
    fn send(&mut self, req: http::Request) -> Result<http::Response, http::HttpError> {
        if let Err(denied) = self.ctx.capabilities.http_allows(&req.url) {
            let msg = denied.to_string();
            self.denied("http", &msg);
            return Err(http::HttpError::Denied(msg));
        }
        // No TLS stack is compiled in yet: say so rather than fail obscurely.
        if req
            .url
            .get(..8)
            .is_some_and(|p| p.eq_ignore_ascii_case("https://"))
        {
            return Err(http::HttpError::InvalidRequest(
                "https endpoints are not supported by this build of Ashlar yet; use an http endpoint".into(),
            ));
        }
        let method = reqwest::Method::from_bytes(req.method.as_bytes()).map_err(|_| {
            http::HttpError::InvalidRequest(format!("`{}` is not an HTTP method", req.method))
        })?;
        let mut timeout = self.remaining();
        if let Some(ms) = req.timeout_ms {
            timeout = timeout.min(Duration::from_millis(ms.into()));
        }
        let mut builder = self
            .ctx
            .http
            .request(method, &req.url)
            .timeout(timeout)
            .body(req.body);
        for (k, v) in &req.headers {
            if k.eq_ignore_ascii_case("authorization") {
                return Err(http::HttpError::InvalidRequest(
                    "drivers may not set Authorization; name a credential instead".into(),
                ));
            }
            builder = builder.header(k, v);
        }
        let mut sign_with = None;
        if let Some(name) = &req.credential {
            match self.ctx.credentials.get(name) {
                Some(Credential::Basic { username, password }) => {
                    builder = builder.basic_auth(username, Some(password))
                }
                Some(Credential::Bearer { token }) => builder = builder.bearer_auth(token),
                Some(Credential::AwsSigV4 {
                    access_key_id,
                    secret_access_key,
                    region,
                    service,
                }) => {
                    sign_with = Some(sigv4::SigningKey {
                        access_key_id,
                        secret_access_key,
                        region,
                        service,
                    })
                }
                None => {
                    return Err(http::HttpError::Denied(format!(
                        "no credential `{name}` is configured for backend {}; add [backends.{}.credentials.{name}]",
                        self.ctx.identity.backend, self.ctx.identity.backend
                    )));
                }
            }
        }
        let mut request = builder
            .build()
            .map_err(|e| http::HttpError::InvalidRequest(format!("{}: {e}", req.url)))?;
        if let Some(key) = &sign_with {
            sign_request(key, &mut request, &req.headers)?;
        }
        let cap = self.ctx.limits.http_response_bytes;
        let url = req.url.clone();
        let client = self.ctx.http.clone();
        let fut = async move {
            let mut resp = client.execute(request).await.map_err(|e| {
                if e.is_timeout() {
                    http::HttpError::TimedOut(format!("{url}: {e}"))
                } else {
                    http::HttpError::Connection(format!("{url}: {e}"))
                }
            })?;
            let status = resp.status().as_u16();
            let headers = resp
                .headers()
                .iter()
                .map(|(k, v)| {
                    (
                        k.to_string(),
                        String::from_utf8_lossy(v.as_bytes()).into_owned(),
                    )
                })
                .collect();
            let mut body = Vec::new();
            while let Some(chunk) = resp
                .chunk()
                .await
                .map_err(|e| http::HttpError::Connection(format!("{url}: {e}")))?
            {
                if body.len() + chunk.len() > cap {
                    return Err(http::HttpError::TooLarge(format!(
                        "{url}: response body over the {cap}-byte cap (limits.http_response_bytes)"
                    )));
                }
                body.extend_from_slice(&chunk);
            }
            Ok(http::Response {
                status,
                headers,
                body,
            })
        };
        let mut response = self.ctx.runtime.block_on(fut)?;
        if sign_with.is_some()
            && response.status == 403
            && let Some(code) = ["SignatureDoesNotMatch", "InvalidAccessKeyId"]
                .into_iter()
                .find(|c| response.body.windows(c.len()).any(|w| w == c.as_bytes()))
        {
            let id = &self.ctx.identity;
            tracing::warn!(plugin = %id.name, version = %id.version, backend = %id.backend,
                "{} refused the request signed with credential `{}` ({code}): check its access_key_id and secret_access_key",
                req.url, req.credential.as_deref().unwrap_or_default());
        }
        if redact_credentials(&self.ctx.credentials, &mut response) {
            let id = &self.ctx.identity;
            tracing::warn!(plugin = %id.name, version = %id.version, backend = %id.backend,
                "the answer from {} carried a credential of the backend; it was redacted before the driver saw it",
                req.url);
        }
        Ok(response)
    }
}

/// Takes every secret of the backend's credentials out of a response's headers and body
/// (an endpoint may reflect the Authorization header it got); says whether it found one.
fn redact_credentials(
    credentials: &BTreeMap<String, Credential>,
    response: &mut http::Response,
) -> bool {
    if credentials.is_empty() {
        return false;
    }
    let mut redactor = Redactor::default();
    for credential in credentials.values() {
        match credential {
            Credential::Basic { username, password } => redactor.basic(username, password),
            Credential::Bearer { token } => redactor.secret(token),
            Credential::AwsSigV4 {
                secret_access_key, ..
            } => redactor.secret(secret_access_key),
        }
    }
    let mut found = false;
    for (_, value) in response.headers.iter_mut() {
        if let Some(clean) = redactor.redact_str(value) {
            *value = clean;
            found = true;
        }
    }
    if let Some(clean) = redactor.redact(&response.body) {
        response.body = clean;
        found = true;
        let len = response.body.len().to_string();
        for (name, value) in response.headers.iter_mut() {
            if name.eq_ignore_ascii_case("content-length") {
                value.clone_from(&len);
            }
        }
    }
    found
}

/// Adds the SigV4 headers over the request as it will be sent: its method, URL, the
/// driver's headers and its body.
fn sign_request(
    key: &sigv4::SigningKey<'_>,
    request: &mut reqwest::Request,
    driver_headers: &[(String, String)],
) -> Result<(), http::HttpError> {
    let url = request.url();
    let host = match (url.host_str(), url.port()) {
        (Some(h), Some(p)) => format!("{h}:{p}"),
        (Some(h), None) => h.to_string(),
        (None, _) => {
            return Err(http::HttpError::InvalidRequest(format!(
                "{url}: a signed request needs a host"
            )));
        }
    };
    let body = request
        .body()
        .and_then(|b| b.as_bytes())
        .unwrap_or_default();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let headers = sigv4::sign(
        key,
        &sigv4::SignableRequest {
            method: request.method().as_str(),
            host: &host,
            path: url.path(),
            query: url.query().unwrap_or(""),
            headers: driver_headers,
            body,
        },
        now,
    );
    for (name, value) in headers {
        let value = reqwest::header::HeaderValue::from_str(&value)
            .map_err(|e| http::HttpError::InvalidRequest(format!("signing header {name}: {e}")))?;
        request.headers_mut().insert(name, value);
    }
    Ok(())
}
