//! ONTAP-style collection queries: `field.path=value` filters on any field of a record
//! (`*` wildcards, `a|b` alternatives, a leading `!` negates), `max_records` with a
//! `_links.next` cursor, and the `{records, num_records, _links}` envelope.

use serde_json::{Value, json};

/// Query parameters that steer the answer rather than filter records.
const RESERVED: &[&str] = &[
    "fields",
    "max_records",
    "return_records",
    "return_timeout",
    "order_by",
    "start.uuid",
];

/// The leaves at a dotted `path` of `record`; arrays on the way are searched element-wise.
fn lookup<'a>(v: &'a Value, path: &str) -> Vec<&'a Value> {
    if let Value::Array(items) = v {
        return items.iter().flat_map(|i| lookup(i, path)).collect();
    }
    if path.is_empty() {
        return vec![v];
    }
    let (head, rest) = path.split_once('.').unwrap_or((path, ""));
    match v.get(head) {
        Some(child) => lookup(child, rest),
        None => Vec::new(),
    }
}

fn leaf_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// `*` matches any run of characters; everything else matches itself.
pub fn glob(pattern: &str, text: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = text.chars().collect();
    let (mut pi, mut ti) = (0, 0);
    let (mut star, mut mark) = (None, 0);
    while ti < t.len() {
        if pi < p.len() && p[pi] != '*' && p[pi] == t[ti] {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            mark = ti;
            pi += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ti = mark;
        } else {
            return false;
        }
    }
    while pi < p.len() && p[pi] == '*' {
        pi += 1;
    }
    pi == p.len()
}

/// Whether `record` passes the filter `key=pattern`.
pub fn matches(record: &Value, key: &str, pattern: &str) -> bool {
    let (negate, pattern) = match pattern.strip_prefix('!') {
        Some(p) => (true, p),
        None => (false, pattern),
    };
    let any = lookup(record, key)
        .into_iter()
        .filter_map(leaf_text)
        .any(|text| pattern.split('|').any(|alt| glob(alt, &text)));
    any != negate
}

fn encode(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~*|!/:".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Filters, pages and wraps `records` as ONTAP answers a collection GET. `key` orders the
/// records and is the cursor `_links.next` resumes from; `cap` (when not 0) limits a page
/// even when the client asked for more, as an array does when `return_timeout` runs out.
pub fn collection(
    path: &str,
    mut records: Vec<Value>,
    query: &[(String, String)],
    key: impl Fn(&Value) -> String,
    cap: usize,
) -> Value {
    for (k, pattern) in query {
        if !RESERVED.contains(&k.as_str()) {
            records.retain(|r| matches(r, k, pattern));
        }
    }
    records.sort_by_key(|r| key(r));
    let param = |name: &str| {
        query
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    };
    if let Some(start) = param("start.uuid") {
        records.retain(|r| key(r) >= start);
    }
    let mut max = param("max_records")
        .and_then(|m| m.parse::<usize>().ok())
        .unwrap_or(usize::MAX);
    if cap > 0 {
        max = max.min(cap);
    }
    let mut links = json!({"self": {"href": href(path, query)}});
    if records.len() > max {
        let resume = key(&records[max]);
        records.truncate(max);
        let mut next: Vec<(String, String)> = query
            .iter()
            .filter(|(k, _)| k != "start.uuid" && k != "max_records")
            .cloned()
            .collect();
        next.push(("max_records".into(), max.to_string()));
        next.push(("start.uuid".into(), resume));
        links["next"] = json!({"href": href(path, &next)});
    }
    json!({"records": records, "num_records": records.len(), "_links": links})
}

fn href(path: &str, query: &[(String, String)]) -> String {
    if query.is_empty() {
        return path.to_string();
    }
    let q: Vec<String> = query
        .iter()
        .map(|(k, v)| format!("{}={}", encode(k), encode(v)))
        .collect();
    format!("{path}?{}", q.join("&"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs_and_alternatives() {
        assert!(glob("ashlar_*", "ashlar_abc"));
        assert!(glob("*/lun0", "/vol/v/lun0"));
        assert!(glob("a*b*c", "axxbyyc"));
        assert!(!glob("a*b", "ac"));
        assert!(glob("", ""));
        let r =
            json!({"name": "v1", "aggregates": [{"name": "aggr1"}, {"name": "aggr2"}], "size": 5});
        assert!(matches(&r, "aggregates.name", "aggr2"));
        assert!(matches(&r, "name", "v0|v1"));
        assert!(matches(&r, "size", "5"));
        assert!(!matches(&r, "name", "!v1"));
        assert!(!matches(&r, "missing", "x"));
    }

    #[test]
    fn pages_follow_the_cursor() {
        let records: Vec<Value> = (0..5)
            .map(|i| json!({"uuid": format!("u{i}"), "name": format!("n{i}")}))
            .collect();
        let key = |r: &Value| r["uuid"].as_str().unwrap().to_string();
        let q = vec![("max_records".to_string(), "2".to_string())];
        let page = collection("/api/x", records.clone(), &q, key, 0);
        assert_eq!(page["num_records"], 2);
        let next = page["_links"]["next"]["href"].as_str().unwrap();
        assert_eq!(next, "/api/x?max_records=2&start.uuid=u2");
        let q2 = vec![
            ("max_records".to_string(), "2".to_string()),
            ("start.uuid".to_string(), "u4".to_string()),
        ];
        let last = collection("/api/x", records.clone(), &q2, key, 0);
        assert_eq!(last["num_records"], 1);
        assert!(last["_links"].get("next").is_none());
        // The cap pages even when the client asked for everything.
        let capped = collection("/api/x", records, &[], key, 3);
        assert_eq!(capped["num_records"], 3);
        assert!(capped["_links"]["next"]["href"].is_string());
    }
}
