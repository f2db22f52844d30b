//! A corpus of malformed requests against one server: each row says what is sent and
//! what must come back (status, and words the error message must contain). Every row
//! is tried, every mismatch is collected, and the test fails listing them all. No row
//! may get a 5xx, every error must be Cinder's error body with the request id, and the
//! server must still serve the resources the corpus aimed at, unchanged, afterwards.

use reqwest::Method;
use serde_json::{Value, json};

use crate::common::Server;

/// Metadata items one resource may hold in this test's server.
const MAX_ITEMS: usize = 8;

const TOKEN: &str = "alice:proj-a";
const ADMIN: &str = "admin:proj-a";

enum Body {
    None,
    Json(Value),
    Raw(Vec<u8>),
}

struct Case {
    method: Method,
    /// Under `/v3/proj-a/`, with `{vol}`, `{vol2}`, `{type}`, `{att}` replaced.
    path: String,
    /// `None` leaves a header out; the defaults are the token, `application/json` when
    /// there is a body, and no microversion.
    headers: Vec<(&'static str, Option<Vec<u8>>)>,
    body: Body,
    status: u16,
    /// Words the error message must contain; empty for a success.
    needle: &'static str,
}

impl Case {
    fn header(mut self, name: &'static str, value: impl AsRef<[u8]>) -> Case {
        self.headers.push((name, Some(value.as_ref().to_vec())));
        self
    }
    fn without(mut self, name: &'static str) -> Case {
        self.headers.push((name, None));
        self
    }
    fn version(self, v: &str) -> Case {
        self.header("openstack-api-version", format!("volume {v}"))
    }
    fn admin(self) -> Case {
        self.header("x-auth-token", ADMIN)
    }
}

fn case(method: Method, path: &str, body: Body, status: u16, needle: &'static str) -> Case {
    Case {
        method,
        path: path.to_string(),
        headers: Vec::new(),
        body,
        status,
        needle,
    }
}

fn post(path: &str, body: Value, status: u16, needle: &'static str) -> Case {
    case(Method::POST, path, Body::Json(body), status, needle)
}
fn put(path: &str, body: Value, status: u16, needle: &'static str) -> Case {
    case(Method::PUT, path, Body::Json(body), status, needle)
}
fn raw(method: Method, path: &str, body: &[u8], status: u16, needle: &'static str) -> Case {
    case(method, path, Body::Raw(body.to_vec()), status, needle)
}
fn get(path: &str, status: u16, needle: &'static str) -> Case {
    case(Method::GET, path, Body::None, status, needle)
}
fn create(volume: Value, status: u16, needle: &'static str) -> Case {
    post("volumes", json!({ "volume": volume }), status, needle)
}

fn items(n: usize, prefix: &str) -> Value {
    Value::Object(
        (0..n)
            .map(|i| (format!("{prefix}{i}"), json!("v")))
            .collect(),
    )
}

fn corpus() -> Vec<Case> {
    let long = "x".repeat(256);
    let deep_arrays = format!("{{\"volume\": {}1{}}}", "[".repeat(5000), "]".repeat(5000));
    let deep_objects = format!("{}1{}", "{\"a\":".repeat(200), "}".repeat(200));
    let get_vol = |status, needle| get("volumes/{vol}", status, needle);
    vec![
        // ---- content type: a JSON body must say it is JSON --------------------------
        create(json!({"size": 1}), 400, "Unsupported Content-Type 'text/plain'")
            .header("content-type", "text/plain"),
        create(json!({"size": 1}), 400, "no Content-Type").without("content-type"),
        create(json!({"size": 1}), 400, "send the body as application/json")
            .header("content-type", "application/xml"),
        create(json!({"size": 1}), 400, "Unsupported Content-Type")
            .header("content-type", "application/x-www-form-urlencoded"),
        put("volumes/{vol}", json!({"volume": {"name": "n"}}), 400, "Unsupported Content-Type")
            .header("content-type", "text/plain; charset=utf-8"),
        post("volumes/{vol}/action", json!({"os-extend": {"new_size": 2}}), 400, "no Content-Type")
            .without("content-type"),
        put("volumes/{vol}/metadata", json!({"metadata": {}}), 400, "Unsupported Content-Type")
            .header("content-type", "multipart/form-data"),
        post("types", json!({"volume_type": {"name": "t"}}), 400, "Unsupported Content-Type")
            .admin()
            .header("content-type", "text/json"),
        // What clients really send is taken: parameters, any case, the vendor type.
        post("volumes/{vol}/metadata", json!({"metadata": {"k0": "v"}}), 200, "")
            .header("content-type", "application/json; charset=UTF-8"),
        post("volumes/{vol}/metadata", json!({"metadata": {"k1": "v"}}), 200, "")
            .header("content-type", "Application/JSON"),
        post("volumes/{vol}/metadata", json!({"metadata": {"k2": "v"}}), 200, "")
            .header("content-type", "application/vnd.openstack.volume+json"),
        // ---- bodies that are not one JSON object --------------------------------------
        raw(Method::POST, "volumes", b"{not json", 400, "Malformed request body"),
        raw(Method::POST, "volumes", b"{\"volume\": {\"size\": 1", 400, "Malformed request body"),
        raw(Method::POST, "volumes", b"{\"volume\": {\"size\": 1}} x", 400, "Malformed request body"),
        raw(Method::POST, "volumes", b"{\"volume\": {\"name\": \"\xff\xfe\", \"size\": 1}}", 400, "Malformed request body"),
        raw(Method::POST, "volumes", b"\xef\xbb\xbf{\"volume\": {\"size\": 1}}", 400, "Malformed request body"),
        raw(Method::POST, "volumes", b"[]", 400, "must be a JSON object"),
        raw(Method::POST, "volumes", b"\"volume\"", 400, "must be a JSON object"),
        raw(Method::POST, "volumes", b"null", 400, "must be a JSON object"),
        raw(Method::POST, "volumes", b"", 400, "body is empty"),
        raw(Method::POST, "volumes", b"  \n ", 400, "body is empty"),
        raw(Method::POST, "volumes", deep_arrays.as_bytes(), 400, "nested too deeply"),
        raw(Method::POST, "volumes", deep_objects.as_bytes(), 400, "nested too deeply"),
        raw(Method::POST, "volumes", b"{\"volume\": {\"size\": 1e400}}", 400, "Malformed request body"),
        post("volumes", json!({"size": 1}), 400, "Missing required element 'volume'"),
        post("volumes", json!({"volume": "x"}), 400, "is not of type 'object'"),
        post("volumes", json!({"volume": [1]}), 400, "is not of type 'object'"),
        post("volumes", json!({"volume": null}), 400, "is not of type 'object'"),
        // ---- names and descriptions ---------------------------------------------------
        create(json!({"size": 1, "name": "a\u{0}b"}), 400, "volume.name: it contains a NUL"),
        create(json!({"size": 1, "display_name": "\u{0}"}), 400, "volume.display_name: it contains a NUL"),
        create(json!({"size": 1, "name": long}), 400, "at most 255"),
        create(json!({"size": 1, "name": 7}), 400, "is not of type 'string'"),
        create(json!({"size": 1, "name": {"a": 1}}), 400, "is not of type 'string'"),
        create(json!({"size": 1, "name": "two\nlines"}), 400, "control character U+000A"),
        create(json!({"size": 1, "name": "\u{1b}[31mred"}), 400, "control character U+001B"),
        create(json!({"size": 1, "name": "del\u{7f}"}), 400, "control character U+007F"),
        create(json!({"size": 1, "name": "c1\u{85}"}), 400, "control character U+0085"),
        create(json!({"size": 1, "description": long}), 400, "at most 255"),
        create(json!({"size": 1, "description": "bell\u{7}"}), 400, "control character U+0007"),
        create(json!({"size": 1, "description": "nul\u{0}"}), 400, "volume.description: it contains a NUL"),
        create(json!({"size": 1, "description": ["a"]}), 400, "is not of type 'string'"),
        put("volumes/{vol}", json!({"volume": {"name": long}}), 400, "at most 255"),
        put("volumes/{vol}", json!({"volume": {"name": "\u{0}"}}), 400, "NUL"),
        put("volumes/{vol}", json!({"volume": {"description": "\u{1}"}}), 400, "U+0001"),
        put("volumes/{vol}", json!({"volume": {}}), 400, "Nothing to update"),
        post("snapshots", json!({"snapshot": {"volume_id": "{vol}", "name": "s\u{0}"}}), 400, "snapshot.name: it contains a NUL"),
        post("snapshots", json!({"snapshot": {"volume_id": "{vol}", "description": long}}), 400, "at most 255"),
        post("snapshots", json!({"snapshot": {"volume_id": "{vol}", "name": "tab\there"}}), 400, "U+0009"),
        // ---- metadata -----------------------------------------------------------------
        create(json!({"size": 1, "metadata": {"k\u{0}": "v"}}), 400, "NUL"),
        create(json!({"size": 1, "metadata": {"": "v"}}), 400, "1 to 255 characters"),
        create(json!({"size": 1, "metadata": {long.clone(): "v"}}), 400, "1 to 255 characters"),
        create(json!({"size": 1, "metadata": {"a<b": "v"}}), 400, "keys may use only"),
        create(json!({"size": 1, "metadata": {"ключ": "v"}}), 400, "keys may use only"),
        create(json!({"size": 1, "metadata": {"k": long}}), 400, "at most 255"),
        create(json!({"size": 1, "metadata": {"k": 1}}), 400, "must be a string"),
        create(json!({"size": 1, "metadata": {"k": {"nested": "v"}}}), 400, "must be a string"),
        create(json!({"size": 1, "metadata": {"k": null}}), 400, "must be a string"),
        create(json!({"size": 1, "metadata": ["k", "v"]}), 400, "is not of type 'object'"),
        create(json!({"size": 1, "metadata": "k=v"}), 400, "is not of type 'object'"),
        create(json!({"size": 1, "metadata": items(MAX_ITEMS + 1, "k")}), 403, "Maximum number of metadata items exceeds 8"),
        // 10,000 keys are more bytes than a request body may have.
        create(json!({"size": 1, "metadata": items(10_000, "k")}), 413, "max_request_body_size"),
        create(json!({"size": 1, "metadata": items(1_000, "k")}), 403, "would hold 1000 items"),
        post("volumes/{vol}/metadata", json!({"metadata": {"new-key": "v"}}), 403, "would hold 9 items"),
        put("volumes/{vol}/metadata", json!({"metadata": items(MAX_ITEMS + 1, "k")}), 403, "exceeds 8"),
        put("volumes/{vol}", json!({"volume": {"metadata": items(MAX_ITEMS + 1, "k")}}), 403, "exceeds 8"),
        put("volumes/{vol}/metadata/new-key", json!({"meta": {"new-key": "v"}}), 403, "would hold 9 items"),
        put("volumes/{vol}/metadata/k0", json!({"meta": {"k1": "v"}}), 400, "Request body and URI mismatch"),
        put("volumes/{vol}/metadata/k0", json!({"meta": {"k0": "v", "k1": "v"}}), 400, "Request body and URI mismatch"),
        put("volumes/{vol}/metadata/a%3Cb", json!({"meta": {"a<b": "v"}}), 400, "keys may use only"),
        put("volumes/{vol}/metadata/k0", json!({"metadata": {"k0": "v"}}), 400, "Missing required element 'meta'"),
        post("volumes/{vol}/metadata", json!({"meta": {"k0": "v"}}), 400, "Missing required element 'metadata'"),
        post("volumes/{vol}/metadata", json!({"metadata": {"k0": "v\u{0}"}}), 400, "metadata.k0: it contains a NUL"),
        post("snapshots", json!({"snapshot": {"volume_id": "{vol}", "metadata": items(MAX_ITEMS + 1, "k")}}), 403, "exceeds 8"),
        post("snapshots", json!({"snapshot": {"volume_id": "{vol}", "metadata": {"a b": 5}}}), 400, "must be a string"),
        // ---- sizes --------------------------------------------------------------------
        create(json!({"size": 0}), 400, "0 is less than the minimum of 1"),
        create(json!({"size": -1}), 400, "-1 is less than the minimum of 1"),
        create(json!({"size": "abc"}), 400, "'abc' is not of type 'integer'"),
        create(json!({"size": " 5"}), 400, "is not of type 'integer'"),
        create(json!({"size": "+5"}), 400, "is not of type 'integer'"),
        create(json!({"size": "0x10"}), 400, "is not of type 'integer'"),
        create(json!({"size": "1.0"}), 400, "is not of type 'integer'"),
        create(json!({"size": 1.5}), 400, "is not of type 'integer'"),
        raw(Method::POST, "volumes", b"{\"volume\": {\"size\": 1e3}}", 400, "is not of type 'integer'"),
        create(json!({"size": true}), 400, "is not of type 'integer'"),
        create(json!({"size": [1]}), 400, "is not of type 'integer'"),
        create(json!({"size": {"gb": 1}}), 400, "is not of type 'integer'"),
        create(json!({"size": null}), 400, "size is required"),
        create(json!({"size": 2_147_483_648_i64}), 400, "greater than the maximum of 2147483647"),
        create(json!({"size": u64::MAX}), 400, "greater than the maximum of 2147483647"),
        raw(Method::POST, "volumes", b"{\"volume\": {\"size\": 99999999999999999999999}}", 400, "greater than the maximum of 2147483647"),
        create(json!({"size": "99999999999999999999999"}), 400, "greater than the maximum of 2147483647"),
        raw(Method::POST, "volumes", b"{\"volume\": {\"size\": -99999999999999999999999}}", 400, "less than the minimum of 1"),
        create(json!({"size": 2_147_483_647}), 413, "larger than the largest pool can ever hold"),
        create(json!({"size": 1_000_000_000}), 413, "larger than the largest pool can ever hold"),
        post("volumes/{vol}/action", json!({"os-extend": {"new_size": 2_147_483_647}}), 413, "larger than the volume's pool can ever hold"),
        post("volumes/{vol}/action", json!({"os-extend": {"new_size": "abc"}}), 400, "'abc' is not of type 'integer'"),
        post("volumes/{vol}/action", json!({"os-extend": {"new_size": 0}}), 400, "less than the minimum of 1"),
        post("volumes/{vol}/action", json!({"os-extend": {"new_size": 2_147_483_648_i64}}), 400, "greater than the maximum"),
        post("volumes/{vol}/action", json!({"os-extend": {}}), 400, "new_size is required"),
        post("volumes/{vol}/action", json!({"os-extend": 5}), 400, "new_size is required"),
        // ---- booleans -----------------------------------------------------------------
        create(json!({"size": 1, "multiattach": "maybe"}), 400, "It must be a boolean"),
        create(json!({"size": 1, "multiattach": "tRuE"}), 400, "It must be a boolean"),
        create(json!({"size": 1, "multiattach": 1}), 400, "is not of type 'boolean'"),
        create(json!({"size": 1, "multiattach": []}), 400, "is not of type 'boolean'"),
        post("snapshots", json!({"snapshot": {"volume_id": "{vol}", "force": "sometimes"}}), 400, "It must be a boolean"),
        post("types", json!({"volume_type": {"name": "t-bool", "os-volume-type-access:is_public": "nope"}}), 400, "It must be a boolean").admin(),
        // ---- ids: traversal, NUL, wrong kinds -----------------------------------------
        get("volumes/..%2F..%2F..%2Fetc%2Fpasswd", 404, "could not be found"),
        get("volumes/%2E%2E%2F%2E%2E", 404, "could not be found"),
        get("volumes/%00", 404, "could not be found"),
        get(&format!("volumes/{}", "a".repeat(1000)), 404, "could not be found"),
        post("volumes/..%2F..%2Fx/action", json!({"os-extend": {"new_size": 2}}), 404, "could not be found"),
        case(Method::DELETE, "volumes/..%2F..", Body::None, 404, "could not be found"),
        get("snapshots/..%2F..%2Fetc", 404, "could not be found"),
        get("types/..%2F..%2Fetc", 404, "could not be found"),
        get("volumes/{vol}/metadata/..%2F..", 404, "has no metadata with key"),
        create(json!({"snapshot_id": "../../etc/passwd"}), 400, "could not be found"),
        create(json!({"source_volid": "x\u{0}"}), 400, "volume.source_volid: it contains a NUL"),
        create(json!({"size": 1, "volume_type": "../gold"}), 404, "Volume type with name ../gold could not be found."),
        create(json!({"size": 1, "volume_type": 5}), 400, "is not of type 'string'"),
        create(json!({"size": 1, "availability_zone": "\u{1b}"}), 400, "control character"),
        post("snapshots", json!({"snapshot": {"volume_id": "../../x"}}), 404, "could not be found"),
        post("snapshots", json!({"snapshot": {"volume_id": ["{vol}"]}}), 400, "is not of type 'string'"),
        // ---- query strings -------------------------------------------------------------
        get("volumes/detail?limit=abc", 400, "limit param must be an integer"),
        get("volumes/detail?limit=-1", 400, "limit param must be positive"),
        get("volumes/detail?limit=99999999999999999999", 400, "limit param must be an integer"),
        get("volumes/detail?offset=-5", 400, "offset must be >= 0"),
        get("volumes/detail?sort=name:sideways", 400, "Unknown sort direction"),
        get("volumes/detail?sort=name%3BDROP%20TABLE%20volumes:asc", 400, "Invalid sort key"),
        get("volumes/detail?sort_key=id)--&sort_dir=asc", 400, "Invalid sort key"),
        get("volumes/detail?marker=..%2F..%2Fetc", 404, "could not be found"),
        get("volumes/detail?all_tenants=maybe", 400, "is not a boolean"),
        get("volumes/detail?metadata=%7Bnot", 400, "must be a JSON object of strings"),
        get("volumes/detail?bootable=perhaps", 400, "It must be a boolean"),
        // ---- actions: exactly one per body --------------------------------------------
        post("volumes/{vol}/action", json!({"os-extend": {"new_size": 2}, "os-reset_status": {"status": "error"}}), 400, "2 actions (os-extend, os-reset_status)"),
        post("volumes/{vol}/action", json!({"os-reserve": null, "os-unreserve": null, "os-detach": {}}), 400, "send exactly one action per request"),
        post("volumes/{vol}/action", json!({}), 400, "action body is empty"),
        post("volumes/{vol}/action", json!({"os-frobnicate": {}}), 400, "no such action: os-frobnicate"),
        post("volumes/{vol}/action", json!({"revert": {"snapshot_id": "x"}}), 400, "needs microversion 3.40"),
        post("attachments/{att}/action", json!({"os-complete": {}, "os-extend": {}}), 400, "send exactly one action per request").version("3.44"),
        post("attachments/{att}/action", json!({}), 400, "action body is empty").version("3.44"),
        post("attachments/{att}/action", json!({"os-finish": {}}), 400, "only attachment action is os-complete").version("3.44"),
        // ---- attachments and connectors -----------------------------------------------
        post("attachments", json!({"attachment": {"volume_uuid": "{vol2}", "connector": "host-1"}}), 400, "must be an object").version("3.27"),
        post("attachments", json!({"attachment": {"volume_uuid": "{vol2}", "connector": {"host": "h\u{0}"}}}), 400, "attachment.connector.host: it contains a NUL").version("3.27"),
        post("attachments", json!({"attachment": {"volume_uuid": "{vol2}", "connector": {"host": "h\r\nX-Injected: 1"}}}), 400, "control character U+000D").version("3.27"),
        post("attachments", json!({"attachment": {"volume_uuid": "{vol2}", "connector": {"host": "h", "initiator": long}}}), 400, "at most 255").version("3.27"),
        post("attachments", json!({"attachment": {"volume_uuid": "{vol2}", "connector": {"host": "h", "wwpns": ["ab\u{0}"]}}}), 400, "connector.wwpns: it contains a NUL").version("3.27"),
        post("attachments", json!({"attachment": {"volume_uuid": "{vol2}", "instance_uuid": 5}}), 400, "It must be a string").version("3.27"),
        post("attachments", json!({"attachment": {"volume_uuid": "{vol2}", "mode": "rx"}}), 400, "It must be `rw` or `ro`").version("3.27"),
        post("attachments", json!({"attachment": {"instance_uuid": "i"}}), 400, "needs `volume_uuid`").version("3.27"),
        post("volumes/{vol2}/action", json!({"os-attach": {"instance_uuid": "i", "mountpoint": long}}), 400, "at most 255"),
        post("volumes/{vol2}/action", json!({"os-attach": {"host_name": "h\u{7}", "mountpoint": "/dev/vdb"}}), 400, "U+0007"),
        post("volumes/{vol}/action", json!({"os-initialize_connection": {"connector": {"host": "h", "ip": "\u{0}"}}}), 400, "NUL"),
        // ---- microversions ------------------------------------------------------------
        get_vol(406, "Version 3.999 is not supported by the API").version("3.999"),
        get_vol(406, "Minimum is 3.0 and maximum is").version("4.0"),
        get_vol(406, "Version 2.0 is not supported").version("2.0"),
        get_vol(406, "not supported by the API").version("3.99999999999999999999"),
        get_vol(400, "API Version String abc is of invalid format").version("abc"),
        get_vol(400, "is of invalid format").version("3"),
        get_vol(400, "is of invalid format").version("3.01"),
        get_vol(400, "is of invalid format").version("+3.1"),
        get_vol(400, "is of invalid format").version("3.5.1"),
        get_vol(400, "is of invalid format").version("0.9"),
        get_vol(200, "").header("openstack-api-version", "compute 3.999"),
        get_vol(200, "").header("openstack-api-version", "compute 2.1, volume latest"),
        // ---- tokens -------------------------------------------------------------------
        get_vol(401, "Authentication required").without("x-auth-token"),
        get_vol(401, "the user id is empty").header("x-auth-token", ""),
        get_vol(401, "the user id is empty").header("x-auth-token", ":proj-a"),
        get_vol(401, "the project id is empty").header("x-auth-token", "alice:"),
        get_vol(401, "visible ASCII without spaces").header("x-auth-token", "al ice:proj-a"),
        get_vol(401, "visible ASCII without spaces").header("x-auth-token", "alice:\tproj-a"),
        get_vol(401, "outside visible ASCII").header("x-auth-token", b"alice:pr\xc3\xb3j"),
        get_vol(401, "longer than 255").header("x-auth-token", format!("{}:proj-a", "u".repeat(300))),
        get_vol(401, "cannot stand in a URL path").header("x-auth-token", "alice:proj-a/../b"),
        get_vol(400, "doesn't match Context's project_id").header("x-auth-token", "mallory:proj-m"),
        // ---- volume types and extra specs (administrators) ----------------------------
        post("types", json!({"volume_type": {}}), 400, "needs a non-empty name").admin(),
        post("types", json!({"volume_type": {"name": "   "}}), 400, "needs a non-empty name").admin(),
        post("types", json!({"volume_type": {"name": long}}), 400, "at most 255").admin(),
        post("types", json!({"volume_type": {"name": "t\u{0}"}}), 400, "volume_type.name: it contains a NUL").admin(),
        post("types", json!({"volume_type": {"name": "t", "description": "\u{1b}"}}), 400, "U+001B").admin(),
        post("types", json!({"volume_type": {"name": "t", "extra_specs": {"k": 1}}}), 400, "must be a string").admin(),
        post("types", json!({"volume_type": {"name": "t", "extra_specs": items(MAX_ITEMS + 1, "k")}}), 403, "exceeds 8").admin(),
        post("types/{type}/extra_specs", json!({"extra_specs": {"has space": "v"}}), 400, "keys may use only ASCII letters, digits and - _ : .").admin(),
        post("types/{type}/extra_specs", json!({"extra_specs": {"k": "v\u{0}"}}), 400, "extra_specs.k: it contains a NUL").admin(),
        post("types/{type}/extra_specs", json!({"extra_specs": items(MAX_ITEMS + 1, "k")}), 403, "exceeds 8").admin(),
        post("types/{type}/extra_specs", json!({"specs": {}}), 400, "Missing required element 'extra_specs'").admin(),
        put("types/{type}/extra_specs/k0", json!({"k1": "v"}), 400, "Request body and URI mismatch").admin(),
        put("types/{type}", json!({"volume_type": {"name": "\u{0}"}}), 400, "NUL").admin(),
        put("types/{type}", json!({"volume_type": {"is_public": "perhaps"}}), 400, "It must be a boolean").admin(),
    ]
}

/// What one row got, or why it did not match.
async fn run(
    http: &reqwest::Client,
    base: &str,
    ids: &[(&str, String)],
    c: &Case,
) -> Result<(), String> {
    let mut path = c.path.clone();
    for (k, v) in ids {
        path = path.replace(k, v);
    }
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert("x-auth-token", TOKEN.parse().unwrap());
    let body = match &c.body {
        Body::None => None,
        Body::Json(v) => {
            let mut text = v.to_string();
            for (k, id) in ids {
                text = text.replace(k, id);
            }
            Some(text.into_bytes())
        }
        Body::Raw(b) => Some(b.clone()),
    };
    if body.is_some() {
        headers.insert("content-type", "application/json".parse().unwrap());
    }
    for (name, value) in &c.headers {
        match value {
            Some(v) => {
                headers.insert(*name, reqwest::header::HeaderValue::from_bytes(v).unwrap());
            }
            None => {
                headers.remove(*name);
            }
        }
    }
    let mut req = http
        .request(c.method.clone(), format!("{base}/v3/proj-a/{path}"))
        .headers(headers);
    if let Some(b) = body {
        req = req.body(b);
    }
    let resp = req.send().await.map_err(|e| format!("no answer: {e}"))?;
    let status = resp.status().as_u16();
    let has_request_id = resp.headers().contains_key("x-openstack-request-id");
    let text = resp.text().await.unwrap_or_default();
    let shown: String = text.chars().take(300).collect();
    if status >= 500 {
        return Err(format!("server error {status}: {shown}"));
    }
    if status != c.status {
        return Err(format!("status {status}, expected {}: {shown}", c.status));
    }
    if !has_request_id {
        return Err("no x-openstack-request-id header".into());
    }
    if c.needle.is_empty() {
        return Ok(());
    }
    let body: Value =
        serde_json::from_str(&text).map_err(|_| format!("not a JSON body: {shown}"))?;
    let fault = body
        .as_object()
        .filter(|o| o.len() == 1)
        .and_then(|o| o.values().next())
        .ok_or_else(|| format!("not a Cinder error body: {shown}"))?;
    if fault["code"] != status {
        return Err(format!("error body's code is not {status}: {shown}"));
    }
    let message = fault["message"]
        .as_str()
        .ok_or_else(|| format!("no message: {shown}"))?;
    if !message.contains(c.needle) {
        return Err(format!("message lacks `{}`: {message}", c.needle));
    }
    Ok(())
}

#[tokio::test]
async fn bad_input_corpus_is_refused_with_cinder_errors() {
    let server = Server::start(&format!("[api]\nmax_metadata_items = {MAX_ITEMS}\n"));
    let c = server.client(TOKEN);
    let admin = server.client(ADMIN);

    // What the corpus aims at: a volume holding as much metadata as it may, another to
    // attach, a type with one extra spec, and a reserved attachment.
    let vol = c
        .create_volume(json!({"size": 1, "name": "target", "metadata": items(MAX_ITEMS, "k")}))
        .await;
    let vol2 = c
        .create_volume(json!({"size": 1, "name": "attach-me"}))
        .await;
    c.wait_status("volumes", &vol, "available").await;
    c.wait_status("volumes", &vol2, "available").await;
    let type_id = admin.create_type("corpus", json!({"k0": "v"})).await;
    let r = c
        .with_version("3.27")
        .post("attachments", json!({"attachment": {"volume_uuid": vol2}}))
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let att = r.body["attachment"]["id"].as_str().unwrap().to_string();
    let before = c.get(&format!("volumes/{vol}")).await.body["volume"].clone();

    let ids = [
        ("{vol2}", vol2.clone()),
        ("{vol}", vol.clone()),
        ("{type}", type_id.clone()),
        ("{att}", att.clone()),
    ];
    let cases = corpus();
    assert!(cases.len() >= 80, "only {} cases", cases.len());
    let http = reqwest::Client::new();
    let mut failures = Vec::new();
    for (i, case) in cases.iter().enumerate() {
        if let Err(why) = run(&http, &server.base, &ids, case).await {
            let body = match &case.body {
                Body::None => String::new(),
                Body::Json(v) => v.to_string().chars().take(120).collect(),
                Body::Raw(b) => String::from_utf8_lossy(b).chars().take(120).collect(),
            };
            failures.push(format!(
                "#{i} {} {} {body}\n    {why}",
                case.method, case.path
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} malformed requests were not answered as expected:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );

    // The server still answers, and nothing the corpus aimed at changed.
    let after = c.get(&format!("volumes/{vol}")).await;
    assert_eq!(after.status, 200, "{}", after.body);
    let after = &after.body["volume"];
    for field in ["name", "description", "size", "status", "metadata"] {
        assert_eq!(after[field], before[field], "{field} changed");
    }
    assert_eq!(after["metadata"].as_object().unwrap().len(), MAX_ITEMS);
    let vols = c.get("volumes").await;
    assert_eq!(
        vols.body["volumes"].as_array().unwrap().len(),
        2,
        "a refused create left a volume: {}",
        vols.body
    );
    let snaps = c.get("snapshots").await;
    assert_eq!(snaps.body["snapshots"], json!([]), "{}", snaps.body);
    let types = admin.get("types").await;
    let names: Vec<&str> = types.body["volume_types"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|t| t["name"].as_str())
        .collect();
    assert!(!names.iter().any(|n| n.starts_with('t')), "{names:?}");
    let specs = admin.get(&format!("types/{type_id}/extra_specs")).await;
    assert_eq!(specs.body["extra_specs"], json!({"k0": "v"}));
    let v2 = c.get(&format!("volumes/{vol2}")).await;
    assert_eq!(v2.body["volume"]["status"], "reserved", "{}", v2.body);
}
