//! The array's REST API as the driver uses it: JSON requests through the host's http
//! call with the named credential, retries with backoff on 5xx answers, timeouts and
//! dropped connections, `_links.next` paging, async jobs polled to completion, and the
//! array's `{"error": {"message", "code"}}` bodies turned into driver errors.
//!
//! The transport is a trait so that this logic is tested natively against scripted
//! answers; in the component it is the host's http and clock calls.

use ashlar_sdk::DriverError;
use ashlar_sdk::http::{HttpError, Request, Response};
use serde_json::Value;

/// How the driver talks to the array; from the backend's settings.
#[derive(Clone, Debug, PartialEq)]
pub struct RestConfig {
    /// `scheme://host:port` of the management endpoint.
    pub base: String,
    /// The name of the credential the host adds to every request.
    pub credential: String,
    pub timeout_ms: u32,
    /// Further attempts after a retryable failure.
    pub retries: u32,
    /// First pause between attempts; it doubles each time, up to [`MAX_BACKOFF_MS`].
    pub backoff_ms: u32,
    pub job_timeout_ms: u64,
    pub job_poll_ms: u32,
}

/// Longest pause between two attempts.
pub const MAX_BACKOFF_MS: u32 = 5_000;

/// Error codes (ONTAP's) and message words that mean the array is out of space.
const CAPACITY_CODES: &[&str] = &["918232", "5374863", "917927", "13", "5374867"];

/// Sends requests and tells time: the host in the component, a script in tests.
pub trait Transport {
    fn send(&mut self, req: &Request) -> Result<Response, HttpError>;
    fn sleep_ms(&mut self, ms: u32);
    fn now_ms(&mut self) -> u64;
    fn warn(&mut self, message: &str);
}

/// The host's http and clock calls.
pub struct HostTransport;

impl Transport for HostTransport {
    fn send(&mut self, req: &Request) -> Result<Response, HttpError> {
        ashlar_sdk::http::send(req)
    }
    fn sleep_ms(&mut self, ms: u32) {
        ashlar_sdk::clock::sleep_ms(ms)
    }
    fn now_ms(&mut self) -> u64 {
        ashlar_sdk::clock::now_ms()
    }
    fn warn(&mut self, message: &str) {
        ashlar_sdk::log::warn(message)
    }
}

/// Why a request did not succeed.
#[derive(Debug, Clone, PartialEq)]
pub enum RestError {
    /// The array answered with an error status.
    Api {
        what: String,
        status: u16,
        code: String,
        message: String,
        attempts: u32,
    },
    /// No answer (timeout, connection), or the host refused the request.
    Transport {
        what: String,
        error: HttpError,
        attempts: u32,
    },
    /// The array accepted the work, then its job failed.
    JobFailed {
        what: String,
        description: String,
        code: String,
        message: String,
    },
    /// The job did not finish in time.
    JobTimeout { what: String, job: String, ms: u64 },
    /// The array answered something this driver cannot read.
    Malformed { what: String, detail: String },
}

impl RestError {
    /// The array's HTTP status, when it answered with an error.
    pub fn status(&self) -> Option<u16> {
        match self {
            RestError::Api { status, .. } => Some(*status),
            _ => None,
        }
    }

    pub fn is_not_found(&self) -> bool {
        self.status() == Some(404)
    }

    pub fn is_conflict(&self) -> bool {
        self.status() == Some(409)
    }

    /// The driver error an operator sees, with `base`/`credential` to name the endpoint.
    pub fn into_driver(self, cfg: &RestConfig) -> DriverError {
        let base = &cfg.base;
        match self {
            RestError::Api {
                status: status @ (401 | 403),
                what,
                message,
                ..
            } => DriverError::BackendUnavailable(format!(
                "the array at {base} refused credential `{cred}` for {what} (HTTP {status}: {message}); \
                 check the user name and password in the backend's credentials.{cred} and that the user may use the API",
                cred = cfg.credential
            )),
            RestError::Api {
                status: 404,
                what,
                message,
                code,
                ..
            } => DriverError::NotFound(format!(
                "{what}: the array at {base} answered not found: {message} (code {code})"
            )),
            RestError::Api {
                status,
                what,
                message,
                code,
                attempts,
            } if status >= 500 => DriverError::BackendUnavailable(format!(
                "{what}: the array at {base} answered HTTP {status} {}: {message} (code {code}); \
                 check the array's health",
                tries(attempts)
            )),
            RestError::Api {
                status,
                what,
                message,
                code,
                ..
            } => {
                let text = format!(
                    "{what}: the array at {base} refused it (HTTP {status}): {message} (code {code})"
                );
                if is_capacity(&code, &message) {
                    DriverError::CapacityExceeded(format!(
                        "{text}; free space on the array or lower the backend's over-subscription"
                    ))
                } else {
                    DriverError::InvalidArgument(text)
                }
            }
            RestError::Transport {
                what,
                error: HttpError::Denied(m),
                ..
            } => DriverError::BackendUnavailable(format!(
                "{what}: the host refused the request: {m}; api_url must be an origin granted in the backend's grants.http"
            )),
            RestError::Transport {
                what,
                error,
                attempts,
            } => {
                let detail = match error {
                    HttpError::TimedOut(m) => format!("timed out ({m})"),
                    HttpError::Connection(m) => format!("connection failed ({m})"),
                    HttpError::TooLarge(m) => format!("answer too large ({m})"),
                    HttpError::InvalidRequest(m) => format!("request not sent ({m})"),
                    HttpError::Denied(m) => m,
                };
                DriverError::BackendUnavailable(format!(
                    "{what}: the array at {base} did not answer {}: {detail}; check that the management endpoint is up \
                     and reachable (api_timeout_ms, api_retries)",
                    tries(attempts)
                ))
            }
            RestError::JobFailed {
                what,
                description,
                code,
                message,
            } => {
                let text = format!(
                    "{what}: the array's job `{description}` failed: {message} (code {code})"
                );
                if is_capacity(&code, &message) {
                    DriverError::CapacityExceeded(text)
                } else {
                    DriverError::Internal(text)
                }
            }
            RestError::JobTimeout { what, job, ms } => DriverError::BackendUnavailable(format!(
                "{what}: the array's job {job} was still running after {ms} ms (job_timeout_ms); \
                 check the job on the array before retrying"
            )),
            RestError::Malformed { what, detail } => DriverError::Internal(format!(
                "{what}: the array at {base} answered something this driver cannot read: {detail}"
            )),
        }
    }
}

fn tries(attempts: u32) -> String {
    if attempts == 1 {
        "on the only attempt".to_string()
    } else {
        format!("on all {attempts} attempts")
    }
}

fn is_capacity(code: &str, message: &str) -> bool {
    let m = message.to_ascii_lowercase();
    CAPACITY_CODES.contains(&code)
        || (m.contains("space") && (m.contains("insufficient") || m.contains("not enough")))
}

/// Whether a failure may pass if tried again.
fn retryable(result: &Result<Response, HttpError>) -> bool {
    match result {
        Ok(r) => matches!(r.status, 500 | 502 | 503 | 504),
        Err(HttpError::TimedOut(_) | HttpError::Connection(_)) => true,
        Err(_) => false,
    }
}

/// Percent-encodes a query value (ONTAP's `*` and `|` stay as they are).
pub fn q(value: &str) -> String {
    let mut out = String::new();
    for b in value.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~*|!/:".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

pub struct Client<T: Transport> {
    pub cfg: RestConfig,
    pub transport: T,
}

impl<T: Transport> Client<T> {
    pub fn new(cfg: RestConfig, transport: T) -> Self {
        Client { cfg, transport }
    }

    /// One request with retries; answers (status, JSON body) for any non-error status.
    pub fn call(
        &mut self,
        method: &str,
        path: &str,
        body: Option<&Value>,
    ) -> Result<(u16, Value), RestError> {
        let what = format!("{method} {}", path.split('?').next().unwrap_or(path));
        let mut headers = vec![("accept".to_string(), "application/json".to_string())];
        if body.is_some() {
            headers.push(("content-type".to_string(), "application/json".to_string()));
        }
        let req = Request {
            method: method.to_string(),
            url: format!("{}{path}", self.cfg.base),
            headers,
            body: body.map(|b| b.to_string().into_bytes()).unwrap_or_default(),
            credential: Some(self.cfg.credential.clone()),
            timeout_ms: Some(self.cfg.timeout_ms),
        };
        let mut attempts = 0;
        let mut pause = self.cfg.backoff_ms.max(1);
        let result = loop {
            attempts += 1;
            let result = self.transport.send(&req);
            if attempts > self.cfg.retries || !retryable(&result) {
                break result;
            }
            let why = match &result {
                Ok(r) => format!("HTTP {}", r.status),
                Err(e) => format!("{e:?}"),
            };
            self.transport.warn(&format!(
                "{what}: {why}; retrying in {pause} ms (attempt {attempts} of {})",
                self.cfg.retries + 1
            ));
            self.transport.sleep_ms(pause);
            pause = pause.saturating_mul(2).min(MAX_BACKOFF_MS);
        };
        let resp = result.map_err(|error| RestError::Transport {
            what: what.clone(),
            error,
            attempts,
        })?;
        let json = if resp.body.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&resp.body).unwrap_or(Value::Null)
        };
        if resp.status >= 400 {
            let err = json.get("error");
            let text = |k: &str| {
                err.and_then(|e| e.get(k))
                    .map(|v| match v {
                        Value::String(s) => s.clone(),
                        other => other.to_string(),
                    })
                    .unwrap_or_default()
            };
            let mut message = text("message");
            if message.is_empty() {
                message = String::from_utf8_lossy(&resp.body)
                    .chars()
                    .take(300)
                    .collect();
            }
            return Err(RestError::Api {
                what,
                status: resp.status,
                code: text("code"),
                message,
                attempts,
            });
        }
        Ok((resp.status, json))
    }

    pub fn get(&mut self, path: &str) -> Result<Value, RestError> {
        self.call("GET", path, None).map(|(_, v)| v)
    }

    /// Every record of a collection, following `_links.next` to the end.
    pub fn get_all(&mut self, path: &str) -> Result<Vec<Value>, RestError> {
        let mut records = Vec::new();
        let mut next = Some(path.to_string());
        let mut pages = 0;
        while let Some(p) = next.take() {
            pages += 1;
            if pages > 10_000 {
                return Err(RestError::Malformed {
                    what: format!("GET {path}"),
                    detail: "more than 10000 pages; the next links go round in circles".into(),
                });
            }
            let page = self.get(&p)?;
            match page.get("records").and_then(Value::as_array) {
                Some(r) => records.extend(r.iter().cloned()),
                None => {
                    return Err(RestError::Malformed {
                        what: format!("GET {path}"),
                        detail: format!("no `records` in {}", preview(&page)),
                    });
                }
            }
            next = page
                .pointer("/_links/next/href")
                .and_then(Value::as_str)
                .map(|h| h.strip_prefix(&self.cfg.base).unwrap_or(h).to_string());
        }
        Ok(records)
    }

    /// Runs a change: when the array answers 202 with a job, waits for the job.
    pub fn run(
        &mut self,
        method: &str,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Value, RestError> {
        let (status, answer) = self.call(method, path, body)?;
        if status == 202
            && let Some(job) = answer.get("job")
        {
            self.wait_job(&format!("{method} {path}"), job)?;
        }
        Ok(answer)
    }

    /// Polls a job until it succeeds, fails, or runs past `job_timeout_ms`.
    pub fn wait_job(&mut self, what: &str, job: &Value) -> Result<(), RestError> {
        let uuid = job
            .get("uuid")
            .and_then(Value::as_str)
            .ok_or_else(|| RestError::Malformed {
                what: what.to_string(),
                detail: format!("a job without a uuid: {}", preview(job)),
            })?
            .to_string();
        let href = job
            .pointer("/_links/self/href")
            .and_then(Value::as_str)
            .map(|h| h.strip_prefix(&self.cfg.base).unwrap_or(h).to_string())
            .unwrap_or_else(|| format!("/api/cluster/jobs/{uuid}"));
        let started = self.transport.now_ms();
        let mut pause = self.cfg.job_poll_ms.max(1);
        loop {
            let j = self.get(&href)?;
            let state = j.get("state").and_then(Value::as_str).unwrap_or_default();
            match state {
                "success" => return Ok(()),
                "failure" => {
                    let text = |k: &str| match j.get(k) {
                        Some(Value::String(s)) => s.clone(),
                        Some(v) if !v.is_null() => v.to_string(),
                        _ => String::new(),
                    };
                    return Err(RestError::JobFailed {
                        what: what.split('?').next().unwrap_or(what).to_string(),
                        description: text("description"),
                        code: text("code"),
                        message: text("message"),
                    });
                }
                _ => {}
            }
            let waited = self.transport.now_ms().saturating_sub(started);
            if waited >= self.cfg.job_timeout_ms {
                return Err(RestError::JobTimeout {
                    what: what.split('?').next().unwrap_or(what).to_string(),
                    job: uuid,
                    ms: waited,
                });
            }
            self.transport.sleep_ms(pause);
            // Quick jobs are seen at once; long ones are not polled in a tight loop.
            pause = pause.saturating_mul(3).div_ceil(2).min(2_000);
        }
    }
}

fn preview(v: &Value) -> String {
    v.to_string().chars().take(200).collect()
}

#[cfg(test)]
pub mod tests {
    use super::*;
    use serde_json::json;
    use std::collections::VecDeque;

    /// Answers requests from a script and records what was sent and slept.
    #[derive(Default)]
    pub struct Script {
        pub answers: VecDeque<Result<Response, HttpError>>,
        pub sent: Vec<(String, String, Option<Value>)>,
        pub slept: Vec<u32>,
        pub warnings: Vec<String>,
        pub clock: u64,
    }

    impl Script {
        pub fn answer(&mut self, status: u16, body: Value) -> &mut Self {
            self.answers.push_back(Ok(Response {
                status,
                headers: vec![],
                body: body.to_string().into_bytes(),
            }));
            self
        }
        pub fn fail(&mut self, e: HttpError) -> &mut Self {
            self.answers.push_back(Err(e));
            self
        }
    }

    impl Transport for Script {
        fn send(&mut self, req: &Request) -> Result<Response, HttpError> {
            assert_eq!(req.credential.as_deref(), Some("array"));
            assert!(
                !req.headers
                    .iter()
                    .any(|(k, _)| k.eq_ignore_ascii_case("authorization"))
            );
            let body = (!req.body.is_empty()).then(|| serde_json::from_slice(&req.body).unwrap());
            self.sent.push((req.method.clone(), req.url.clone(), body));
            self.answers
                .pop_front()
                .unwrap_or_else(|| panic!("no scripted answer for {} {}", req.method, req.url))
        }
        fn sleep_ms(&mut self, ms: u32) {
            self.slept.push(ms);
            self.clock += u64::from(ms);
        }
        fn now_ms(&mut self) -> u64 {
            self.clock
        }
        fn warn(&mut self, message: &str) {
            self.warnings.push(message.to_string());
        }
    }

    pub fn config() -> RestConfig {
        RestConfig {
            base: "http://array:8080".into(),
            credential: "array".into(),
            timeout_ms: 1000,
            retries: 3,
            backoff_ms: 100,
            job_timeout_ms: 1000,
            job_poll_ms: 50,
        }
    }

    fn client(script: Script) -> Client<Script> {
        Client::new(config(), script)
    }

    #[test]
    fn retries_5xx_and_timeouts_with_backoff_then_succeeds() {
        let mut s = Script::default();
        s.answer(503, json!({"error": {"message": "busy", "code": "1"}}))
            .fail(HttpError::TimedOut("slow".into()))
            .answer(200, json!({"name": "c"}));
        let mut c = client(s);
        assert_eq!(c.get("/api/cluster").unwrap()["name"], "c");
        assert_eq!(c.transport.slept, vec![100, 200]);
        assert_eq!(c.transport.sent.len(), 3);
        assert_eq!(c.transport.sent[0].1, "http://array:8080/api/cluster");
    }

    #[test]
    fn persistent_5xx_gives_up_naming_the_status_and_the_attempts() {
        let mut s = Script::default();
        for _ in 0..4 {
            s.answer(
                500,
                json!({"error": {"message": "internal error", "code": "2"}}),
            );
        }
        let mut c = client(s);
        let err = c.get("/api/storage/volumes?name=x").unwrap_err();
        assert_eq!(c.transport.slept, vec![100, 200, 400]);
        let DriverError::BackendUnavailable(m) = err.into_driver(&config()) else {
            panic!("not backend-unavailable")
        };
        assert!(m.contains("HTTP 500"), "{m}");
        assert!(m.contains("on all 4 attempts"), "{m}");
        assert!(m.contains("internal error"), "{m}");
        assert!(m.contains("GET /api/storage/volumes"), "{m}");
        assert!(!m.contains("name=x"), "the query stays out: {m}");
    }

    #[test]
    fn client_errors_are_not_retried_and_map_to_their_kind() {
        let cases = [
            (401, "6691623", "user is not authorized", "unavailable"),
            (404, "4", "entry doesn't exist", "not-found"),
            (
                400,
                "918232",
                "insufficient space in aggregate a",
                "capacity",
            ),
            (400, "917888", "volume name is not valid", "invalid"),
        ];
        for (status, code, message, kind) in cases {
            let mut s = Script::default();
            s.answer(status, json!({"error": {"message": message, "code": code}}));
            let mut c = client(s);
            let err = c
                .call("POST", "/api/storage/volumes", Some(&json!({})))
                .unwrap_err();
            assert_eq!(c.transport.sent.len(), 1, "{status} is not retried");
            let d = err.into_driver(&config());
            let ok = match (&d, kind) {
                (DriverError::BackendUnavailable(m), "unavailable") => {
                    m.contains("credential `array`") && m.contains("HTTP 401")
                }
                (DriverError::NotFound(m), "not-found") => m.contains(message),
                (DriverError::CapacityExceeded(m), "capacity") => m.contains(message),
                (DriverError::InvalidArgument(m), "invalid") => m.contains(message),
                _ => false,
            };
            assert!(ok, "{status}: {d:?}");
        }
    }

    #[test]
    fn a_refused_origin_is_not_retried_and_says_what_to_grant() {
        let mut s = Script::default();
        s.fail(HttpError::Denied("origin not allowed".into()));
        let mut c = client(s);
        let d = c.get("/api/cluster").unwrap_err().into_driver(&config());
        assert!(
            matches!(&d, DriverError::BackendUnavailable(m) if m.contains("grants.http")),
            "{d:?}"
        );
    }

    #[test]
    fn pages_are_followed_to_the_end() {
        let mut s = Script::default();
        s.answer(
            200,
            json!({"records": [{"name": "a"}], "num_records": 1,
                   "_links": {"next": {"href": "/api/storage/volumes?start.uuid=b&max_records=1"}}}),
        )
        .answer(
            200,
            json!({"records": [{"name": "b"}], "num_records": 1,
                   "_links": {"next": {"href": "http://array:8080/api/storage/volumes?start.uuid=c&max_records=1"}}}),
        )
        .answer(200, json!({"records": [{"name": "c"}], "num_records": 1, "_links": {}}));
        let mut c = client(s);
        let all = c.get_all("/api/storage/volumes?max_records=1").unwrap();
        let names: Vec<&str> = all.iter().map(|r| r["name"].as_str().unwrap()).collect();
        assert_eq!(names, ["a", "b", "c"]);
        assert_eq!(
            c.transport.sent[2].1,
            "http://array:8080/api/storage/volumes?start.uuid=c&max_records=1"
        );
    }

    #[test]
    fn jobs_are_polled_until_done_and_failures_carry_the_arrays_message() {
        let job =
            json!({"job": {"uuid": "j1", "_links": {"self": {"href": "/api/cluster/jobs/j1"}}}});
        let mut s = Script::default();
        s.answer(202, job.clone())
            .answer(200, json!({"uuid": "j1", "state": "running"}))
            .answer(200, json!({"uuid": "j1", "state": "success"}));
        let mut c = client(s);
        c.run("POST", "/api/storage/volumes", Some(&json!({"name": "v"})))
            .unwrap();
        assert_eq!(
            c.transport.sent[1].1,
            "http://array:8080/api/cluster/jobs/j1"
        );
        assert_eq!(c.transport.slept, vec![50]);

        let mut s = Script::default();
        s.answer(202, job.clone()).answer(
            200,
            json!({"uuid": "j1", "state": "failure", "message": "aggregate is offline", "code": 917, "description": "create v"}),
        );
        let mut c = client(s);
        let err = c
            .run("POST", "/api/storage/volumes", Some(&json!({})))
            .unwrap_err();
        let d = err.into_driver(&config());
        assert!(
            matches!(&d, DriverError::Internal(m) if m.contains("aggregate is offline") && m.contains("917")),
            "{d:?}"
        );

        let mut s = Script::default();
        s.answer(202, job);
        for _ in 0..100 {
            s.answer(200, json!({"uuid": "j1", "state": "running"}));
        }
        let mut c = client(s);
        let err = c.run("DELETE", "/api/storage/volumes/u", None).unwrap_err();
        assert!(matches!(err, RestError::JobTimeout { .. }), "{err:?}");
        assert!(c.transport.clock >= 1000);
    }

    #[test]
    fn query_values_are_encoded() {
        assert_eq!(
            q("iqn.1994-05.com.redhat:abc"),
            "iqn.1994-05.com.redhat:abc"
        );
        assert_eq!(q("/vol/a b/lun0"), "/vol/a%20b/lun0");
        assert_eq!(q("ashlar_*|x&y=z"), "ashlar_*|x%26y%3Dz");
    }
}
