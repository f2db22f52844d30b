//! What a request may carry, checked before any handler acts on it, as Cinder's JSON
//! schemas (`cinder/api/validation/parameter_types.py`) and its WSGI layer check it:
//! JSON bodies only, one action per action request, names and descriptions of at most
//! 255 characters without control characters, metadata keys of Cinder's character set,
//! no NUL anywhere, and at most `[api] max_metadata_items` items on one resource.

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::{StatusCode, header};
use serde_json::{Map, Value, json};

use super::ApiError;

/// Longest name, description, metadata key or value, as Cinder's schemas allow.
pub const MAX_TEXT: usize = 255;

/// The media types Cinder's WSGI layer deserialises as JSON (`SUPPORTED_CONTENT_TYPES`
/// without the XML ones it no longer serves).
const JSON_TYPES: &[&str] = &["application/json", "application/vnd.openstack.volume+json"];

/// The limits of [`crate::config::ApiSection`] that input checks need.
#[derive(Clone, Copy, Debug)]
pub struct InputLimits {
    pub max_metadata_items: usize,
}

impl From<&crate::config::ApiSection> for InputLimits {
    fn from(api: &crate::config::ApiSection) -> Self {
        InputLimits {
            max_metadata_items: api.max_metadata_items,
        }
    }
}

impl Default for InputLimits {
    fn default() -> Self {
        (&crate::config::ApiSection::default()).into()
    }
}

/// A request body, read whole. One that is not empty must be sent as JSON: Cinder
/// deserialises only `application/json` (and its vendor type) and answers anything else
/// as a request without a body, so a body sent as `text/plain`, or with no type at all,
/// is refused here with 400 rather than half-read.
pub struct Body(Bytes);

impl Body {
    /// Whether the body is empty or only whitespace.
    pub fn is_empty(&self) -> bool {
        self.0.iter().all(u8::is_ascii_whitespace)
    }

    #[cfg(test)]
    fn json(bytes: impl Into<Bytes>) -> Body {
        Body(bytes.into())
    }
}

impl<S: Send + Sync> FromRequest<S> for Body {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let content_type = req.headers().get(header::CONTENT_TYPE).cloned();
        let bytes = Bytes::from_request(req, state)
            .await
            .map_err(|e| ApiError::new(e.status(), e.body_text()))?;
        let body = Body(bytes);
        if !body.is_empty() {
            check_content_type(content_type.as_ref().map(|v| v.as_bytes()))?;
        }
        Ok(body)
    }
}

/// A JSON media type, with or without parameters (`application/json; charset=UTF-8`).
fn check_content_type(value: Option<&[u8]>) -> Result<(), ApiError> {
    let Some(raw) = value else {
        return Err(ApiError::bad_request(
            "Unsupported Content-Type: the request has a body but no Content-Type; send it as application/json.",
        ));
    };
    let text = String::from_utf8_lossy(raw);
    let media = text.split(';').next().unwrap_or("").trim();
    if JSON_TYPES.iter().any(|t| media.eq_ignore_ascii_case(t)) {
        return Ok(());
    }
    let shown: String = text.chars().take(64).filter(|c| !c.is_control()).collect();
    Err(ApiError::bad_request(format!(
        "Unsupported Content-Type '{shown}': send the body as application/json."
    )))
}

/// Parses a body as one JSON object, with Cinder's messages for what is wrong, and
/// refuses a NUL character in any key or string of it.
pub fn parse_body(body: &Body) -> Result<Map<String, Value>, ApiError> {
    if body.is_empty() {
        return Err(ApiError::bad_request(
            "The request body is empty; send a JSON object.",
        ));
    }
    let value = match serde_json::from_slice::<Value>(&body.0) {
        Ok(v) => v,
        Err(e) if e.to_string().contains("recursion limit") => {
            return Err(ApiError::bad_request(format!(
                "Malformed request body: it is nested too deeply ({e}); no request nests more than a few levels."
            )));
        }
        Err(e) => {
            return Err(ApiError::bad_request(format!(
                "Malformed request body: {e}"
            )));
        }
    };
    no_nul(&mut Vec::new(), &value)?;
    match value {
        Value::Object(map) => Ok(map),
        _ => Err(ApiError::bad_request(
            "The request body must be a JSON object.",
        )),
    }
}

/// Refuses a NUL in `v` or any key or string inside it; `path` names where `v` is.
fn no_nul<'a>(path: &mut Vec<&'a str>, v: &'a Value) -> Result<(), ApiError> {
    match v {
        Value::String(s) if s.contains('\0') => Err(nul_in(path)),
        Value::Array(items) => items.iter().try_for_each(|i| no_nul(path, i)),
        Value::Object(map) => {
            for (k, v) in map {
                path.push(k.as_str());
                if k.contains('\0') {
                    return Err(nul_in(path));
                }
                no_nul(path, v)?;
                path.pop();
            }
            Ok(())
        }
        _ => Ok(()),
    }
}

fn nul_in(path: &[&str]) -> ApiError {
    let at: Vec<String> = path.iter().map(|p| p.replace('\0', "\\u0000")).collect();
    ApiError::bad_request(format!(
        "Invalid input for field/attribute {}: it contains a NUL character (\\u0000), which no field accepts; remove it.",
        at.join(".")
    ))
}

/// The one action an action body names (`{"os-extend": {…}}`), and its arguments.
/// Cinder's WSGI layer refuses a body with more than one key ("too many body keys"),
/// so two actions in one body are refused rather than one of them run.
pub fn one_action(map: &Map<String, Value>, example: &str) -> Result<(String, Value), ApiError> {
    let mut names = map.keys();
    match (names.next(), names.next()) {
        (None, _) => Err(ApiError::bad_request(format!(
            "The action body is empty: send exactly one action, e.g. {example}."
        ))),
        (Some(name), None) => Ok((name.clone(), map[name].clone())),
        (Some(_), Some(_)) => Err(ApiError::bad_request(format!(
            "Malformed request body: it names {} actions ({}); send exactly one action per request.",
            map.len(),
            map.keys()
                .map(String::as_str)
                .collect::<Vec<_>>()
                .join(", ")
        ))),
    }
}

/// What a text field may hold.
#[derive(Clone, Copy, Debug)]
pub enum Text {
    /// A name or an identifier: no control characters at all.
    Line,
    /// A description: tabs and line breaks are ordinary text there, other control
    /// characters are not.
    Prose,
}

/// Checks a string against `rule` and the 255-character limit.
pub fn check_text(field: &str, s: &str, rule: Text) -> Result<(), ApiError> {
    let len = s.chars().count();
    if len > MAX_TEXT {
        return Err(ApiError::invalid_field(
            field,
            &json!(format!("{}…", s.chars().take(32).collect::<String>())),
            format!("It is {len} characters long; at most {MAX_TEXT} are allowed."),
        ));
    }
    let bad = s.chars().find(|c| {
        c.is_control() && !(matches!(rule, Text::Prose) && matches!(c, '\t' | '\n' | '\r'))
    });
    if let Some(c) = bad {
        return Err(ApiError::invalid_field(
            field,
            &json!(s.escape_debug().to_string()),
            format!(
                "It contains the control character U+{:04X}; use printable characters only.",
                c as u32
            ),
        ));
    }
    Ok(())
}

/// An optional string field (`null` is absent), checked by `rule`.
pub fn opt_text(
    obj: &Map<String, Value>,
    field: &str,
    rule: Text,
) -> Result<Option<String>, ApiError> {
    match obj.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => {
            check_text(field, s, rule)?;
            Ok(Some(s.clone()))
        }
        Some(v) => Err(ApiError::invalid_field(
            field,
            v,
            format!("{v} is not of type 'string'"),
        )),
    }
}

/// Which characters keys of a string map may use.
#[derive(Clone, Copy, Debug)]
pub enum Keys {
    /// Volume and snapshot metadata: `^[a-zA-Z0-9-_:. /]{1,255}$`, Cinder's
    /// `parameter_types.extra_specs` pattern, which its metadata schemas use.
    Metadata,
    /// Extra specs set on a type: `^[a-zA-Z0-9-_:.]{1,255}$`, Cinder's
    /// `extra_specs_with_no_spaces_key`.
    ExtraSpecs,
}

impl Keys {
    fn allows(self, c: char) -> bool {
        c.is_ascii_alphanumeric()
            || matches!(c, '-' | '_' | ':' | '.')
            || (matches!(self, Keys::Metadata) && matches!(c, ' ' | '/'))
    }

    fn described(self) -> &'static str {
        match self {
            Keys::Metadata => "ASCII letters, digits, spaces and - _ : . /",
            Keys::ExtraSpecs => "ASCII letters, digits and - _ : .",
        }
    }
}

/// A `{"key": "value"}` map of strings (metadata, extra specs) of at most `max_items`
/// items, keys as `keys` allows and values of at most 255 characters.
pub fn string_map(
    field: &str,
    v: &Value,
    keys: Keys,
    max_items: usize,
) -> Result<Vec<(String, String)>, ApiError> {
    let Value::Object(map) = v else {
        return Err(ApiError::invalid_field(
            field,
            v,
            format!("{v} is not of type 'object'"),
        ));
    };
    check_item_count(field, map.len(), max_items)?;
    map.iter()
        .map(|(k, val)| {
            check_key(field, k, keys)?;
            match val {
                Value::String(s) if s.chars().count() <= MAX_TEXT => Ok((k.clone(), s.clone())),
                Value::String(s) => Err(ApiError::invalid_field(
                    field,
                    &json!(k),
                    format!(
                        "The value of `{k}` is {} characters long; at most {MAX_TEXT} are allowed.",
                        s.chars().count()
                    ),
                )),
                other => Err(ApiError::invalid_field(
                    field,
                    other,
                    format!("The value of `{k}` must be a string, not {other}."),
                )),
            }
        })
        .collect()
}

/// A key of a string map: 1 to 255 of the characters `keys` allows.
pub fn check_key(field: &str, k: &str, keys: Keys) -> Result<(), ApiError> {
    let len = k.chars().count();
    if len == 0 || len > MAX_TEXT {
        return Err(ApiError::invalid_field(
            field,
            &json!(k.chars().take(32).collect::<String>()),
            format!("A key must be 1 to {MAX_TEXT} characters long; this one is {len}."),
        ));
    }
    if let Some(c) = k.chars().find(|c| !keys.allows(*c)) {
        return Err(ApiError::invalid_field(
            field,
            &json!(k.escape_debug().to_string()),
            format!(
                "Key `{}` has the character {:?}; keys may use only {}.",
                k.escape_debug(),
                c,
                keys.described()
            ),
        ));
    }
    Ok(())
}

/// Refuses more than `max` items on one resource, as Nova refuses metadata beyond its
/// `metadata_items` quota: 403 "Maximum number of metadata items exceeds N".
pub fn check_item_count(field: &str, count: usize, max: usize) -> Result<(), ApiError> {
    if count > max {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            format!(
                "Maximum number of metadata items exceeds {max}: the {field} would hold {count} items; remove some first."
            ),
        ));
    }
    Ok(())
}

/// Cinder's boolean for request bodies (`parameter_types.boolean`): a JSON boolean or one
/// of the strings its schema enumerates, spelt exactly so.
pub fn body_bool(field: &str, v: &Value) -> Result<bool, ApiError> {
    const TRUE: &[&str] = &[
        "True", "TRUE", "true", "1", "ON", "On", "on", "YES", "Yes", "yes", "y", "t",
    ];
    const FALSE: &[&str] = &[
        "False", "FALSE", "false", "0", "OFF", "Off", "off", "NO", "No", "no", "n", "f",
    ];
    match v {
        Value::Bool(b) => Ok(*b),
        Value::String(s) if TRUE.contains(&s.as_str()) => Ok(true),
        Value::String(s) if FALSE.contains(&s.as_str()) => Ok(false),
        Value::String(_) => Err(ApiError::invalid_field(
            field,
            v,
            "It must be a boolean: true or false.",
        )),
        other => Err(ApiError::invalid_field(
            field,
            other,
            format!("{other} is not of type 'boolean'"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(s: &str) -> Body {
        Body::json(s.as_bytes().to_vec())
    }

    #[test]
    fn json_content_types_are_accepted_with_parameters() {
        for ok in [
            "application/json",
            "application/json; charset=UTF-8",
            "Application/JSON",
            "application/vnd.openstack.volume+json",
        ] {
            assert!(check_content_type(Some(ok.as_bytes())).is_ok(), "{ok}");
        }
        for bad in ["text/plain", "application/xml", "", "application/jsonx"] {
            let e = check_content_type(Some(bad.as_bytes())).unwrap_err();
            assert_eq!(e.status, StatusCode::BAD_REQUEST);
            assert!(
                e.message.contains("Unsupported Content-Type"),
                "{}",
                e.message
            );
        }
        assert!(
            check_content_type(None)
                .unwrap_err()
                .message
                .contains("no Content-Type")
        );
    }

    #[test]
    fn nul_is_refused_anywhere_and_named() {
        let e = parse_body(&body(r#"{"volume": {"metadata": {"k": "a\u0000b"}}}"#)).unwrap_err();
        assert!(e.message.contains("volume.metadata.k"), "{}", e.message);
        let e = parse_body(&body(r#"{"volume": {"metadata": {"k\u0000": "v"}}}"#)).unwrap_err();
        assert!(e.message.contains("NUL"), "{}", e.message);
        let e = parse_body(&body(r#"{"a": [1, {"b": ["\u0000"]}]}"#)).unwrap_err();
        assert!(e.message.contains("a.b"), "{}", e.message);
        assert!(parse_body(&body(r#"{"a": "\u0001"}"#)).is_ok());
    }

    #[test]
    fn deep_nesting_is_a_bad_request() {
        let deep = format!("{{\"a\":{}1{}}}", "[".repeat(10_000), "]".repeat(10_000));
        let e = parse_body(&body(&deep)).unwrap_err();
        assert_eq!(e.status, StatusCode::BAD_REQUEST);
        assert!(e.message.contains("nested too deeply"), "{}", e.message);
    }

    #[test]
    fn one_action_names_them_all() {
        let map = parse_body(&body(r#"{"os-extend": {}, "os-reset_status": {}}"#)).unwrap();
        let e = one_action(&map, "{}").unwrap_err();
        assert!(
            e.message.contains("os-extend, os-reset_status"),
            "{}",
            e.message
        );
        let map = parse_body(&body(r#"{"os-extend": {"new_size": 2}}"#)).unwrap();
        assert_eq!(one_action(&map, "{}").unwrap().0, "os-extend");
    }

    #[test]
    fn text_rules() {
        assert!(check_text("name", "vol-1 ünïcode", Text::Line).is_ok());
        assert!(check_text("name", "a\nb", Text::Line).is_err());
        assert!(check_text("description", "a\nb\tc", Text::Prose).is_ok());
        assert!(check_text("description", "a\u{1b}[31m", Text::Prose).is_err());
        assert!(check_text("name", &"x".repeat(255), Text::Line).is_ok());
        let e = check_text("name", &"x".repeat(256), Text::Line).unwrap_err();
        assert!(e.message.contains("256 characters"), "{}", e.message);
    }

    #[test]
    fn map_keys_follow_cinder_patterns() {
        let m = json!({"tier": "gold", "a b/c:d.e-f_g": ""});
        assert_eq!(
            string_map("metadata", &m, Keys::Metadata, 128)
                .unwrap()
                .len(),
            2
        );
        assert!(string_map("extra_specs", &m, Keys::ExtraSpecs, 128).is_err());
        assert!(string_map("metadata", &json!({"": "v"}), Keys::Metadata, 128).is_err());
        assert!(string_map("metadata", &json!({"k<": "v"}), Keys::Metadata, 128).is_err());
        let e =
            string_map("metadata", &json!({"a": "1", "b": "2"}), Keys::Metadata, 1).unwrap_err();
        assert_eq!(e.status, StatusCode::FORBIDDEN);
        assert!(e.message.contains("exceeds 1"), "{}", e.message);
    }

    #[test]
    fn booleans_as_cinder_spells_them() {
        assert!(body_bool("b", &json!("True")).unwrap());
        assert!(!body_bool("b", &json!("off")).unwrap());
        assert!(body_bool("b", &json!("tRuE")).is_err());
        assert!(body_bool("b", &json!(1)).is_err());
    }
}
