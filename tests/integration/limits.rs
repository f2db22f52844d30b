//! What one client can hold is bounded: header, body and idle timeouts close connections
//! that say too little, the body and header limits refuse too much, and past the
//! connection cap new clients wait for a slot rather than being refused. The framework's
//! own answers (405, 413, 408, an unknown route, an unreadable path) carry Cinder's error
//! body and the request id, as the handlers' errors do.
//!
//! Closes are observed as events (the socket's EOF or reset), never waited for with
//! sleeps.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::common::Server;

/// How late after its deadline a connection may still be closed: the server's scheduling
/// on a loaded machine, not a tolerance of the design.
const MARGIN: Duration = Duration::from_millis(1500);

/// How long a test waits for a close before it calls the connection held.
const HELD: Duration = Duration::from_secs(30);

fn addr(server: &Server) -> String {
    server.base.trim_start_matches("http://").to_string()
}

/// Reads until the server closes the connection (EOF or reset); what it sent and when it
/// closed, or `None` if it still holds the connection after `limit`.
async fn read_until_closed(s: &mut TcpStream, limit: Duration) -> Option<(Vec<u8>, Instant)> {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    let read_all = async {
        loop {
            match s.read(&mut buf).await {
                Ok(0) | Err(_) => return Instant::now(),
                Ok(n) => got.extend_from_slice(&buf[..n]),
            }
        }
    };
    let closed = tokio::time::timeout(limit, read_all).await.ok()?;
    Some((got, closed))
}

/// One HTTP/1.1 response read off a raw connection.
struct RawResponse {
    status: u16,
    head: String,
    body: Vec<u8>,
}

impl RawResponse {
    fn parse(bytes: &[u8]) -> RawResponse {
        let text = String::from_utf8_lossy(bytes);
        let (head, _) = text
            .split_once("\r\n\r\n")
            .unwrap_or_else(|| panic!("no complete response head in {text:?}"));
        let status = head
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("no status in {head:?}"));
        RawResponse {
            status,
            head: head.to_string(),
            body: bytes[head.len() + 4..].to_vec(),
        }
    }

    fn header(&self, name: &str) -> Option<String> {
        self.head.lines().skip(1).find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case(name).then(|| v.trim().to_string())
        })
    }

    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "body is not JSON ({e}): {:?}",
                String::from_utf8_lossy(&self.body)
            )
        })
    }
}

/// Reads exactly one response (sized by Content-Length) off a kept-alive connection.
async fn read_response(s: &mut TcpStream) -> RawResponse {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        if let Some(end) = got.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = RawResponse::parse(&got[..end + 4]);
            let len: usize = head
                .header("content-length")
                .map(|v| v.parse().unwrap())
                .unwrap_or(0);
            if got.len() >= end + 4 + len {
                assert_eq!(got.len(), end + 4 + len, "more than one response");
                return RawResponse::parse(&got);
            }
        }
        let n = tokio::time::timeout(HELD, s.read(&mut buf))
            .await
            .expect("a response in time")
            .expect("read");
        assert!(
            n > 0,
            "closed mid-response: {:?}",
            String::from_utf8_lossy(&got)
        );
        got.extend_from_slice(&buf[..n]);
    }
}

const GET_VOLUMES: &[u8] =
    b"GET /v3/p/volumes HTTP/1.1\r\nHost: ashlar\r\nX-Auth-Token: u:p\r\n\r\n";

/// What a half-open connection sent before going quiet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum HalfOpen {
    Nothing,
    PartialHeaders,
    PartialBody,
}

#[tokio::test]
async fn half_open_connections_are_closed_within_their_timeouts() {
    let server = Server::start(
        "[api]\nheader_read_timeout_secs = 2\nbody_read_timeout_secs = 2\nidle_timeout_secs = 2\n",
    );
    let addr = addr(&server);
    let timeout = Duration::from_secs(2);
    let closed = Arc::new(AtomicUsize::new(0));

    let mut conns = Vec::new();
    for i in 0..200 {
        let kind = [
            HalfOpen::Nothing,
            HalfOpen::PartialHeaders,
            HalfOpen::PartialBody,
        ][i % 3];
        // The header deadline runs from the accept, the body deadline from the end of the
        // headers: measure from just before each.
        let mut since = Instant::now();
        let mut s = TcpStream::connect(&addr).await.unwrap();
        match kind {
            HalfOpen::Nothing => {}
            HalfOpen::PartialHeaders => s
                .write_all(b"GET /v3/p/volumes HTTP/1.1\r\nHost: ashlar\r\nX-Auth-To")
                .await
                .unwrap(),
            HalfOpen::PartialBody => {
                since = Instant::now();
                s.write_all(
                    b"POST /v3/p/volumes HTTP/1.1\r\nHost: ashlar\r\nX-Auth-Token: u:p\r\n\
                      Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"volume\": ",
                )
                .await
                .unwrap()
            }
        }
        let closed = closed.clone();
        conns.push(tokio::spawn(async move {
            let seen = read_until_closed(&mut s, HELD).await;
            closed.fetch_add(1, Ordering::SeqCst);
            (kind, since, seen)
        }));
    }

    // While all 200 are held open, a normal request is served.
    let r = server.client("u:p").get("volumes").await;
    let closed_when_answered = closed.load(Ordering::SeqCst);
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        closed_when_answered, 0,
        "the normal request was answered only after some half-open connections were closed"
    );

    let mut lived: Vec<(HalfOpen, Duration)> = Vec::new();
    for conn in conns {
        let (kind, since, seen) = conn.await.unwrap();
        let (got, at) =
            seen.unwrap_or_else(|| panic!("{kind:?}: connection still open after {HELD:?}"));
        let life = at - since;
        match kind {
            // Nothing to answer: closed without a word.
            HalfOpen::Nothing | HalfOpen::PartialHeaders => assert!(
                got.is_empty(),
                "{kind:?}: sent {:?}",
                String::from_utf8_lossy(&got)
            ),
            // The handler was waiting for the body: 408 in Cinder's body, then closed.
            HalfOpen::PartialBody => {
                let resp = RawResponse::parse(&got);
                assert_eq!(resp.status, 408, "{}", resp.head);
                let body = resp.json();
                assert_eq!(body["computeFault"]["code"], 408, "{body}");
                let msg = body["computeFault"]["message"].as_str().unwrap();
                assert!(msg.contains("body_read_timeout_secs"), "{msg}");
                assert!(
                    resp.header("x-openstack-request-id")
                        .is_some_and(|id| id.starts_with("req-")),
                    "{}",
                    resp.head
                );
            }
        }
        assert!(
            life <= timeout + MARGIN,
            "{kind:?}: held {life:?}, beyond its {timeout:?} timeout"
        );
        lived.push((kind, life));
    }
    for kind in [
        HalfOpen::Nothing,
        HalfOpen::PartialHeaders,
        HalfOpen::PartialBody,
    ] {
        let mut l: Vec<Duration> = lived
            .iter()
            .filter(|(k, _)| *k == kind)
            .map(|(_, d)| *d)
            .collect();
        l.sort();
        eprintln!(
            "{kind:?}: {} connections lived min {:?}, median {:?}, max {:?}",
            l.len(),
            l[0],
            l[l.len() / 2],
            l[l.len() - 1]
        );
    }

    // The server still serves.
    assert_eq!(server.client("u:p").get("volumes").await.status, 200);
}

#[tokio::test]
async fn an_idle_kept_alive_connection_is_closed_after_the_idle_timeout() {
    // The header timeout is long: only the idle timeout can close the connection soon.
    let server = Server::start("[api]\nheader_read_timeout_secs = 60\nidle_timeout_secs = 1\n");
    let mut s = TcpStream::connect(addr(&server)).await.unwrap();
    // Two requests on one connection: it is kept alive between them.
    for _ in 0..2 {
        s.write_all(GET_VOLUMES).await.unwrap();
        let r = read_response(&mut s).await;
        assert_eq!(r.status, 200, "{}", r.head);
        assert_eq!(r.json(), json!({"volumes": []}));
    }
    let idle_since = Instant::now();
    let (got, at) = read_until_closed(&mut s, HELD)
        .await
        .expect("an idle connection is closed");
    assert!(got.is_empty(), "{:?}", String::from_utf8_lossy(&got));
    let idle = at - idle_since;
    eprintln!("idle kept-alive connection closed after {idle:?} (idle_timeout_secs = 1)");
    assert!(
        idle <= Duration::from_secs(1) + MARGIN,
        "held idle for {idle:?}"
    );
}

#[tokio::test]
async fn framework_answers_are_cinder_shaped_with_the_request_id() {
    let server = Server::start("[api]\nmax_request_body_size = 4096\n");
    let c = server.client("u:p");
    let request_id = |r: &crate::common::Resp| {
        r.headers
            .get("x-openstack-request-id")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|id| id.starts_with("req-"))
    };

    // A body over the limit, declared by its length: 413, naming the limit.
    let big = json!({"volume": {"size": 1, "description": "x".repeat(5000)}});
    let r = c.post("volumes", big).await;
    assert_eq!(r.status, 413, "{}", r.body);
    assert_eq!(r.body["overLimit"]["code"], 413, "{}", r.body);
    let msg = r.error_message();
    assert!(
        msg.contains("max_request_body_size") && msg.contains("4096"),
        "{msg}"
    );
    assert!(request_id(&r), "{:?}", r.headers);
    // Far over it (a client still sending when the answer goes out): the connection is
    // closed lingering, so the client reads the 413 rather than a reset, every time.
    for _ in 0..20 {
        let huge = json!({"volume": {"size": 1, "description": "x".repeat(1 << 20)}});
        let r = c.post("volumes", huge).await;
        assert_eq!(r.status, 413, "{}", r.body);
        assert_eq!(r.body["overLimit"]["code"], 413, "{}", r.body);
    }
    // One just under it is taken.
    let fits = json!({"volume": {"size": 1, "description": "x".repeat(200)}});
    assert_eq!(c.post("volumes", fits).await.status, 202);

    // Over the limit without a declared length (chunked): 413 all the same.
    let mut s = TcpStream::connect(addr(&server)).await.unwrap();
    let mut req = b"POST /v3/p/volumes HTTP/1.1\r\nHost: ashlar\r\nX-Auth-Token: u:p\r\n\
                    Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
        .to_vec();
    for _ in 0..5 {
        req.extend_from_slice(format!("3e8\r\n{}\r\n", "x".repeat(1000)).as_bytes());
    }
    req.extend_from_slice(b"0\r\n\r\n");
    s.write_all(&req).await.unwrap();
    let r = read_response(&mut s).await;
    assert_eq!(r.status, 413, "{}", r.head);
    assert_eq!(r.json()["overLimit"]["code"], 413);
    assert!(r.header("x-openstack-request-id").is_some(), "{}", r.head);

    // A method the route does not take: 405 with Allow, in Cinder's body.
    let r = c.delete("volumes").await;
    assert_eq!(r.status, 405, "{}", r.body);
    assert_eq!(r.body["badMethod"]["code"], 405, "{}", r.body);
    let allow = r.headers["allow"].to_str().unwrap().to_string();
    assert!(allow.contains("GET") && allow.contains("POST"), "{allow}");
    assert!(r.error_message().contains("DELETE"), "{}", r.body);
    assert!(request_id(&r), "{:?}", r.headers);

    // Unknown routes: 404 itemNotFound.
    for path in ["no-such-thing", "/no/such/thing"] {
        let r = c.get(path).await;
        assert_eq!(r.status, 404, "{path}: {}", r.body);
        assert_eq!(r.body["itemNotFound"]["code"], 404, "{path}: {}", r.body);
        assert!(request_id(&r), "{path}: {:?}", r.headers);
    }

    // A path the router cannot decode (not UTF-8): the extractor's 400, in Cinder's body.
    let r = c.get("volumes/%FF").await;
    assert_eq!(r.status, 400, "{}", r.body);
    assert_eq!(r.body["badRequest"]["code"], 400, "{}", r.body);
    assert!(request_id(&r), "{:?}", r.headers);

    // Headers over max_header_size (32768 by default): hyper answers before any service
    // runs, so this one is hyper's own — a bare 431, no body, no request id — and the
    // connection is closed. Exactly the limit is sent, so nothing is left unread.
    let mut s = TcpStream::connect(addr(&server)).await.unwrap();
    let mut head = b"GET /v3/p/volumes HTTP/1.1\r\nHost: ashlar\r\nX-Big: ".to_vec();
    head.resize(32768, b'a');
    s.write_all(&head).await.unwrap();
    let (got, _) = read_until_closed(&mut s, HELD)
        .await
        .expect("closed after the 431");
    let r = RawResponse::parse(&got);
    eprintln!(
        "oversize headers answered: {:?}",
        String::from_utf8_lossy(&got)
    );
    assert_eq!(r.status, 431, "{}", r.head);
    assert!(
        r.head
            .starts_with("HTTP/1.1 431 Request Header Fields Too Large"),
        "{}",
        r.head
    );
    assert_eq!(
        r.header("content-length").as_deref(),
        Some("0"),
        "{}",
        r.head
    );
    assert_eq!(
        r.header("connection").as_deref(),
        Some("close"),
        "{}",
        r.head
    );
    assert!(r.body.is_empty(), "{:?}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.header("x-openstack-request-id"), None, "{}", r.head);
}

#[tokio::test]
async fn past_the_connection_cap_idle_connections_make_room() {
    let server = Server::start("[api]\nmax_connections = 4\nidle_timeout_secs = 60\n");
    // Four kept-alive connections, each idle after one request: the cap is reached.
    let (closed_tx, mut closed_rx) = tokio::sync::mpsc::unbounded_channel();
    let mut idle = Vec::new();
    for _ in 0..4 {
        let mut s = TcpStream::connect(addr(&server)).await.unwrap();
        s.write_all(GET_VOLUMES).await.unwrap();
        assert_eq!(read_response(&mut s).await.status, 200);
        let closed_tx = closed_tx.clone();
        idle.push(tokio::spawn(async move {
            if let Some((got, _)) = read_until_closed(&mut s, HELD).await {
                let _ = closed_tx.send(got);
            }
        }));
    }
    // A fifth client is served: the server closes idle connections to make room rather
    // than refusing it (or making it wait out the 60 s idle timeout).
    let fifth = reqwest::Client::builder()
        .timeout(HELD)
        .build()
        .unwrap()
        .get(format!("{}/v3/p/volumes", server.base))
        .header("X-Auth-Token", "u:p")
        .send()
        .await
        .expect("the fifth client is answered");
    assert_eq!(fifth.status(), 200);
    // At least one of the idle four was closed for it (their idle timeout is 60 s).
    let got = tokio::time::timeout(HELD, closed_rx.recv())
        .await
        .expect("an idle connection is closed to make room")
        .unwrap();
    assert!(got.is_empty(), "{:?}", String::from_utf8_lossy(&got));
    let mut reclaimed = 1;
    while closed_rx.try_recv().is_ok() {
        reclaimed += 1;
    }
    eprintln!("idle connections closed to make room: at least {reclaimed} of 4");
    for conn in idle {
        conn.abort();
    }
}

#[tokio::test]
async fn past_the_connection_cap_a_new_client_waits_for_a_slot() {
    let server = Server::start("[api]\nmax_connections = 4\nheader_read_timeout_secs = 2\n");
    // Four silent connections hold every slot until their header timeout.
    let mut silent = Vec::new();
    for _ in 0..4 {
        let mut s = TcpStream::connect(addr(&server)).await.unwrap();
        silent.push(tokio::spawn(async move {
            read_until_closed(&mut s, HELD).await
        }));
    }
    // A fifth client is neither refused nor answered with a 5xx: it waits in the listen
    // backlog for a slot and is then served.
    let asked = Instant::now();
    let fifth = reqwest::Client::builder()
        .timeout(HELD)
        .build()
        .unwrap()
        .get(format!("{}/v3/p/volumes", server.base))
        .header("X-Auth-Token", "u:p")
        .send()
        .await
        .expect("the fifth client is answered");
    let answered = Instant::now();
    eprintln!(
        "fifth client past the cap answered {} after {:?}",
        fifth.status(),
        answered - asked
    );
    assert_eq!(fifth.status(), 200);
    let mut first_close = None::<Instant>;
    for conn in silent {
        let (got, at) = conn.await.unwrap().expect("a silent connection is closed");
        assert!(got.is_empty());
        first_close = Some(first_close.map_or(at, |f| f.min(at)));
    }
    // It was served once a slot was freed, not beside the four.
    assert!(
        first_close.unwrap() <= answered,
        "the fifth client was served while all four slots were held"
    );
}
