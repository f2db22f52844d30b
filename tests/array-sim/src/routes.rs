//! The HTTP side: every `/api/...` request passes the same gate (complete due jobs,
//! basic auth, injected faults, the request log), then is routed by its path segments.
//! `/_sim/...` is the test's own control surface, outside the array's API and its auth.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::model::{Array, Fault, RequestRecord, SimError, SimResult};
use crate::query::collection;

pub struct Shared {
    pub array: Mutex<Array>,
    /// `Basic base64(user:password)`, what a request must carry.
    pub expected_auth: String,
}

pub type AppState = Arc<Shared>;

fn reply(status: u16, body: Value) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (status, axum::Json(body)).into_response()
}

pub async fn handle(
    State(shared): State<AppState>,
    method: Method,
    uri: Uri,
    Query(query): Query<Vec<(String, String)>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = uri.path().to_string();
    if let Some(rest) = path.strip_prefix("/_sim/") {
        return control(&shared, &method, rest, &headers, &body);
    }
    let auth = match headers.get("authorization").and_then(|v| v.to_str().ok()) {
        None => "missing",
        Some(v) if v == shared.expected_auth => "ok",
        Some(_) => "wrong",
    };
    let (delay, status_fault) = {
        let mut a = shared.array.lock().expect("array lock");
        a.settle();
        if auth == "ok" {
            take_request_fault(&mut a, method.as_str(), &path)
        } else {
            (Delay::None, None)
        }
    };
    if let Delay::Before(ms) = delay {
        tokio::time::sleep(Duration::from_millis(ms)).await;
    }
    let response = answer(&shared, &method, &uri, &query, auth, status_fault, &body);
    if let Delay::After(ms) = delay {
        tokio::time::sleep(Duration::from_millis(ms)).await;
    }
    response
}

/// When an injected delay holds a request.
enum Delay {
    None,
    Before(u64),
    After(u64),
}

/// Does the request (unless auth or a fault says otherwise) and logs it.
fn answer(
    shared: &Shared,
    method: &Method,
    uri: &Uri,
    query: &[(String, String)],
    auth: &str,
    status_fault: Option<SimError>,
    body: &[u8],
) -> Response {
    let mut a = shared.array.lock().expect("array lock");
    a.settle();
    let (status, reply_body) = if auth != "ok" {
        let e = SimError::new(
            401,
            "6691623",
            if auth == "missing" {
                "authentication is required: send HTTP basic auth".to_string()
            } else {
                "user is not authorized: wrong user name or password".to_string()
            },
        );
        (401, e.body())
    } else if let Some(e) = status_fault {
        (e.status, e.body())
    } else {
        let parsed = if body.is_empty() {
            Ok(Value::Null)
        } else {
            serde_json::from_slice::<Value>(body)
                .map_err(|e| SimError::new(400, "262179", format!("the body is not JSON: {e}")))
        };
        match parsed.and_then(|b| route(&mut a, method, uri.path(), query, &b)) {
            Ok((status, v)) => (status, v),
            Err(e) => (e.status, e.body()),
        }
    };
    finish(&mut a, method, uri, auth, status, reply_body)
}

fn finish(
    a: &mut Array,
    method: &Method,
    uri: &Uri,
    auth: &str,
    status: u16,
    body: Value,
) -> Response {
    a.requests.push(RequestRecord {
        method: method.to_string(),
        path: uri.path().to_string(),
        query: uri.query().unwrap_or_default().to_string(),
        status,
        auth: auth.to_string(),
    });
    let mut resp = reply(status, body);
    if status == 401 {
        resp.headers_mut().insert(
            "www-authenticate",
            HeaderValue::from_static("Basic realm=\"sim-cluster\""),
        );
    }
    resp
}

/// Takes the first fault that matches: how long to hold the request, and an error to
/// answer with instead of doing it.
fn take_request_fault(a: &mut Array, method: &str, path: &str) -> (Delay, Option<SimError>) {
    let Some(f) = a
        .faults
        .iter_mut()
        .find(|f| f.job_failure.is_none() && f.applies(method, path))
    else {
        return (Delay::None, None);
    };
    f.count -= 1;
    let error = f.status.map(|s| {
        SimError::new(
            s,
            "sim",
            f.message
                .clone()
                .unwrap_or_else(|| format!("simulated failure (HTTP {s})")),
        )
    });
    let delay = match (f.delay_ms, f.after) {
        (Some(ms), false) => Delay::Before(ms),
        (Some(ms), true) => Delay::After(ms),
        (None, _) => Delay::None,
    };
    (delay, error)
}

/// The message the job this request starts must fail with, if a fault says so.
fn take_job_fault(a: &mut Array, method: &str, path: &str) -> Option<String> {
    let f = a
        .faults
        .iter_mut()
        .find(|f| f.job_failure.is_some() && f.applies(method, path))?;
    f.count -= 1;
    f.job_failure.clone()
}

fn control(
    shared: &Shared,
    method: &Method,
    rest: &str,
    headers: &HeaderMap,
    body: &[u8],
) -> Response {
    let mut a = shared.array.lock().expect("array lock");
    a.settle();
    match (method.as_str(), rest) {
        ("POST", "faults") => {
            let faults: Vec<Fault> = match serde_json::from_slice::<Value>(body) {
                Ok(Value::Array(items)) => match items
                    .into_iter()
                    .map(serde_json::from_value)
                    .collect::<Result<Vec<Fault>, _>>()
                {
                    Ok(f) => f,
                    Err(e) => return reply(400, json!({"error": e.to_string()})),
                },
                Ok(v) => match serde_json::from_value(v) {
                    Ok(f) => vec![f],
                    Err(e) => return reply(400, json!({"error": e.to_string()})),
                },
                Err(e) => return reply(400, json!({"error": e.to_string()})),
            };
            a.faults.extend(faults);
            reply(200, json!({"faults": a.faults.len()}))
        }
        ("DELETE", "faults") => {
            a.faults.clear();
            reply(200, json!({}))
        }
        ("GET", "faults") => {
            let left: Vec<Value> = a
                .faults
                .iter()
                .map(|f| json!({"method": f.method, "path": f.path, "count": f.count}))
                .collect();
            reply(200, json!({ "faults": left }))
        }
        ("GET", "state") => reply(200, a.dump()),
        ("GET", "requests") => {
            let r: Vec<Value> = a
                .requests
                .iter()
                .map(|r| {
                    json!({"method": r.method, "path": r.path, "query": r.query, "status": r.status, "auth": r.auth})
                })
                .collect();
            reply(200, json!({ "requests": r }))
        }
        // A hostile endpoint: reflects the request's headers, and the decoded basic-auth
        // pair, in its body and its own headers.
        (_, "echo") => {
            let auth_ok = headers
                .get("authorization")
                .and_then(|v| v.to_str().ok())
                .is_some_and(|v| v == shared.expected_auth);
            let mut seen = serde_json::Map::new();
            for (k, v) in headers {
                seen.insert(k.to_string(), json!(String::from_utf8_lossy(v.as_bytes())));
            }
            let decoded = headers
                .get("authorization")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.strip_prefix("Basic "))
                .and_then(base64_decode);
            let mut resp = reply(
                200,
                json!({"headers": seen, "decoded_authorization": decoded, "auth_ok": auth_ok}),
            );
            if let Some(v) = headers.get("authorization") {
                resp.headers_mut().insert("x-echo-authorization", v.clone());
            }
            if let Some(d) = decoded.and_then(|d| HeaderValue::from_str(&d).ok()) {
                resp.headers_mut().insert("x-echo-decoded", d);
            }
            a.requests.push(RequestRecord {
                method: method.to_string(),
                path: "/_sim/echo".into(),
                query: String::new(),
                status: 200,
                auth: if auth_ok { "ok" } else { "wrong" }.into(),
            });
            resp
        }
        _ => reply(
            404,
            json!({"error": format!("no control endpoint {method} /_sim/{rest}")}),
        ),
    }
}

fn route(
    a: &mut Array,
    method: &Method,
    path: &str,
    query: &[(String, String)],
    body: &Value,
) -> SimResult<(u16, Value)> {
    let segs: Vec<&str> = path.trim_end_matches('/').split('/').skip(1).collect();
    let m = method.as_str();
    let cap = a.page_cap;
    let by_uuid = |r: &Value| r["uuid"].as_str().unwrap_or_default().to_string();
    let ok = |v: Value| Ok((200, v));
    match (m, segs.as_slice()) {
        ("GET", ["api", "cluster"]) => ok(a.cluster_json()),
        ("GET", ["api", "cluster", "jobs", uuid]) => {
            let j = a
                .jobs
                .iter()
                .find(|j| j.uuid == *uuid)
                .ok_or_else(|| SimError::new(404, "4", format!("job {uuid} does not exist")))?;
            ok(a.job_json(j))
        }
        ("GET", ["api", "svm", "svms"]) => {
            let svm = json!({"uuid": a.svm_uuid, "name": a.svm_name, "state": "running"});
            ok(collection(path, vec![svm], query, by_uuid, cap))
        }
        ("GET", ["api", "storage", "aggregates"]) => {
            let r = a.aggregates.iter().map(|x| a.aggregate_json(x)).collect();
            ok(collection(path, r, query, by_uuid, cap))
        }
        ("GET", ["api", "storage", "aggregates", uuid]) => {
            let x = a
                .aggregates
                .iter()
                .find(|x| x.uuid == *uuid)
                .ok_or_else(|| {
                    SimError::new(404, "4", format!("aggregate {uuid} does not exist"))
                })?;
            ok(a.aggregate_json(x))
        }
        ("GET", ["api", "storage", "volumes"]) => {
            let r = a.volumes.iter().map(|v| a.volume_json(v)).collect();
            ok(collection(path, r, query, by_uuid, cap))
        }
        ("POST", ["api", "storage", "volumes"]) => {
            let fail = take_job_fault(a, m, path);
            Ok((202, a.create_volume(body, fail)?))
        }
        ("GET", ["api", "storage", "volumes", uuid]) => ok(a.volume_json(a.volume_by_uuid(uuid)?)),
        ("PATCH", ["api", "storage", "volumes", uuid]) => {
            let fail = take_job_fault(a, m, path);
            Ok((202, a.patch_volume(uuid, body, fail)?))
        }
        ("DELETE", ["api", "storage", "volumes", uuid]) => {
            let fail = take_job_fault(a, m, path);
            Ok((202, a.delete_volume(uuid, fail)?))
        }
        ("GET", ["api", "storage", "volumes", uuid, "snapshots"]) => {
            let v = a.volume_by_uuid(uuid)?;
            let r = v.snapshots.iter().map(|s| a.snapshot_json(v, s)).collect();
            ok(collection(path, r, query, by_uuid, cap))
        }
        ("POST", ["api", "storage", "volumes", uuid, "snapshots"]) => {
            let fail = take_job_fault(a, m, path);
            Ok((202, a.create_snapshot(uuid, body, fail)?))
        }
        ("GET", ["api", "storage", "volumes", uuid, "snapshots", suuid]) => {
            let v = a.volume_by_uuid(uuid)?;
            let s = v
                .snapshots
                .iter()
                .find(|s| s.uuid == *suuid)
                .ok_or_else(|| {
                    SimError::new(404, "4", format!("snapshot {suuid} does not exist"))
                })?;
            ok(a.snapshot_json(v, s))
        }
        ("DELETE", ["api", "storage", "volumes", uuid, "snapshots", suuid]) => {
            let fail = take_job_fault(a, m, path);
            Ok((202, a.delete_snapshot(uuid, suuid, fail)?))
        }
        ("GET", ["api", "storage", "luns"]) => {
            let r = a.luns.iter().map(|l| a.lun_json(l)).collect();
            ok(collection(path, r, query, by_uuid, cap))
        }
        ("POST", ["api", "storage", "luns"]) => Ok((201, a.create_lun(body)?)),
        ("GET", ["api", "storage", "luns", uuid]) => {
            let l = a.luns.iter().find(|l| l.uuid == *uuid).ok_or_else(|| {
                SimError::new(404, "5374875", format!("LUN {uuid} does not exist"))
            })?;
            ok(a.lun_json(l))
        }
        ("PATCH", ["api", "storage", "luns", uuid]) => ok(a.patch_lun(uuid, body)?),
        ("DELETE", ["api", "storage", "luns", uuid]) => ok(a.delete_lun(uuid)?),
        ("GET", ["api", "protocols", "san", "igroups"]) => {
            let r = a.igroups.iter().map(|g| a.igroup_json(g)).collect();
            ok(collection(path, r, query, by_uuid, cap))
        }
        ("POST", ["api", "protocols", "san", "igroups"]) => Ok((201, a.create_igroup(body)?)),
        ("GET", ["api", "protocols", "san", "igroups", uuid]) => {
            let g = a.igroups.iter().find(|g| g.uuid == *uuid).ok_or_else(|| {
                SimError::new(404, "5374852", format!("igroup {uuid} does not exist"))
            })?;
            ok(a.igroup_json(g))
        }
        ("DELETE", ["api", "protocols", "san", "igroups", uuid]) => ok(a.delete_igroup(uuid)?),
        ("GET", ["api", "protocols", "san", "lun-maps"]) => {
            let r = a.maps.iter().map(|x| a.map_json(x)).collect();
            let key = |r: &Value| {
                format!(
                    "{}:{}",
                    r["lun"]["uuid"].as_str().unwrap_or_default(),
                    r["igroup"]["uuid"].as_str().unwrap_or_default()
                )
            };
            ok(collection(path, r, query, key, cap))
        }
        ("POST", ["api", "protocols", "san", "lun-maps"]) => Ok((201, a.create_map(body)?)),
        ("DELETE", ["api", "protocols", "san", "lun-maps", lun, igroup]) => {
            ok(a.delete_map(lun, igroup)?)
        }
        ("GET", ["api", "protocols", "san", "iscsi", "services"]) => {
            let svc = json!({
                "svm": {"name": a.svm_name, "uuid": a.svm_uuid},
                "enabled": true,
                "target": {"name": a.target_iqn, "alias": a.svm_name},
            });
            let key = |r: &Value| r["svm"]["uuid"].as_str().unwrap_or_default().to_string();
            ok(collection(path, vec![svc], query, key, cap))
        }
        ("GET", ["api", "network", "ip", "interfaces"]) => {
            let r = a
                .portals
                .iter()
                .enumerate()
                .map(|(i, ip)| {
                    json!({
                        "uuid": format!("00000000-0000-0000-0000-{i:012}"),
                        "name": format!("{}_iscsi_lif_{}", a.svm_name, i + 1),
                        "ip": {"address": ip, "netmask": "24"},
                        "enabled": true,
                        "state": "up",
                        "svm": {"name": a.svm_name, "uuid": a.svm_uuid},
                        "services": ["data_core", "data_iscsi"],
                    })
                })
                .collect();
            ok(collection(path, r, query, by_uuid, cap))
        }
        _ => Err(SimError::new(
            404,
            "3",
            format!("API not found: {m} {path}"),
        )),
    }
}

const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

pub fn base64_encode(data: &[u8]) -> String {
    let mut out = String::new();
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(B64[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

fn base64_decode(s: &str) -> Option<String> {
    let mut bits = 0u32;
    let mut nbits = 0;
    let mut out = Vec::new();
    for c in s.bytes().filter(|&c| c != b'=') {
        let v = B64.iter().position(|&x| x == c)? as u32;
        bits = (bits << 6) | v;
        nbits += 6;
        if nbits >= 8 {
            nbits -= 8;
            out.push((bits >> nbits) as u8);
            bits &= (1 << nbits) - 1;
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_round_trips() {
        assert_eq!(base64_encode(b"admin:secret"), "YWRtaW46c2VjcmV0");
        assert_eq!(base64_encode(b"ab"), "YWI=");
        assert_eq!(base64_encode(b"a"), "YQ==");
        assert_eq!(
            base64_decode("YWRtaW46c2VjcmV0").as_deref(),
            Some("admin:secret")
        );
        assert_eq!(base64_decode("YWI=").as_deref(), Some("ab"));
    }
}
