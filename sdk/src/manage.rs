//! Managing existing storage (Cinder's `manage_existing`): what a driver needs to read the
//! reference the host passes and to describe what it finds.
//!
//! The host passes Cinder's `ref` object as JSON text, as the request gave it:
//! `{"source-name": "NAME"}` names the storage as the backend does (a file, an LV, a
//! LUN), `{"source-id": "ID"}` by the backend's own id where it has one. A bare JSON
//! string is read as a name. A listing (`get-manageable-volumes`) answers each
//! reference in the same JSON form, which the host shows as the `reference` object.

use crate::{DriverError, ManageableVolume, Result};

/// Cinder's reason for storage that is already a volume (its LVM driver's words). The
/// host keeps it only for storage named for a volume it knows, and drops it otherwise.
pub const ALREADY_MANAGED: &str = "already managed";

/// Cinder's reason for storage something has open.
pub const IN_USE: &str = "volume in use";

/// What a reference names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reference {
    /// `source-name`: the backend's name for it.
    Name(String),
    /// `source-id`: the backend's id for it.
    Id(String),
}

impl Reference {
    /// Reads the host's JSON text; an error names what was expected.
    pub fn parse(text: &str) -> Result<Reference> {
        let bad = |why: &str| {
            DriverError::invalid_argument(format!(
                "the reference {text} {why}: give {{\"source-name\": \"NAME\"}} (or {{\"source-id\": \"ID\"}} where the backend has ids)"
            ))
        };
        let value: serde_json::Value =
            serde_json::from_str(text).map_err(|_| bad("is not JSON"))?;
        let pick = |v: Option<&serde_json::Value>, key: &str| -> Result<Option<String>> {
            match v {
                None | Some(serde_json::Value::Null) => Ok(None),
                Some(serde_json::Value::String(s)) if !s.is_empty() => Ok(Some(s.clone())),
                Some(_) => Err(bad(&format!(
                    "has a `{key}` that is not a non-empty string"
                ))),
            }
        };
        match &value {
            serde_json::Value::String(s) if !s.is_empty() => Ok(Reference::Name(s.clone())),
            serde_json::Value::Object(map) => {
                if let Some(name) = pick(map.get("source-name"), "source-name")? {
                    return Ok(Reference::Name(name));
                }
                if let Some(id) = pick(map.get("source-id"), "source-id")? {
                    return Ok(Reference::Id(id));
                }
                Err(bad("has neither `source-name` nor `source-id`"))
            }
            _ => Err(bad("names nothing")),
        }
    }

    /// The reference as JSON text: `{"source-name":"NAME"}` or `{"source-id":"ID"}`.
    pub fn to_json(&self) -> String {
        let (key, value) = match self {
            Reference::Name(n) => ("source-name", n),
            Reference::Id(i) => ("source-id", i),
        };
        serde_json::json!({ key: value }).to_string()
    }
}

/// The volume id in a name `volume-<id>`, when the rest is UUID-shaped.
pub fn volume_id_in_name(name: &str) -> Option<&str> {
    let id = name.strip_prefix("volume-")?;
    let uuid_like = id.len() == 36
        && id.char_indices().all(|(i, c)| match i {
            8 | 13 | 18 | 23 => c == '-',
            _ => c.is_ascii_hexdigit(),
        });
    uuid_like.then_some(id)
}

/// Bytes to whole GiB, rounded up (Cinder's drivers round a size up).
pub fn gib_rounded_up(bytes: u64) -> u64 {
    bytes.div_ceil(1 << 30)
}

impl ManageableVolume {
    /// Storage named `name` of `bytes`: safe to manage, unless its name is a volume's
    /// (`volume-<id>`), which is "already managed" with that `cinder-id` (the host decides
    /// whether the volume still exists).
    pub fn named(name: &str, bytes: u64) -> ManageableVolume {
        ManageableVolume::at(&Reference::Name(name.to_string()), name, bytes)
    }

    /// Storage `reference` names (a path, say) whose own name is `leaf`: as [`Self::named`],
    /// the leaf telling whether it is a volume's.
    pub fn at(reference: &Reference, leaf: &str, bytes: u64) -> ManageableVolume {
        let id = volume_id_in_name(leaf);
        ManageableVolume {
            reference: reference.to_json(),
            size_gib: gib_rounded_up(bytes),
            safe_to_manage: id.is_none(),
            reason_not_safe: id.map(|_| ALREADY_MANAGED.to_string()),
            cinder_id: id.map(str::to_string),
        }
    }

    /// Not safe for `reason` (unless it is already unsafe as a volume's).
    pub fn unsafe_because(mut self, reason: &str) -> ManageableVolume {
        if self.safe_to_manage {
            self.safe_to_manage = false;
            self.reason_not_safe = Some(reason.to_string());
        }
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_are_read_from_json() {
        assert_eq!(
            Reference::parse(r#"{"source-name": "data"}"#).unwrap(),
            Reference::Name("data".into())
        );
        assert_eq!(
            Reference::parse(r#"{"source-id": "7"}"#).unwrap(),
            Reference::Id("7".into())
        );
        assert_eq!(
            Reference::parse(r#""data""#).unwrap(),
            Reference::Name("data".into())
        );
        for bad in ["{}", "data", "[1]", r#"{"source-name": 3}"#, r#""""#] {
            let e = Reference::parse(bad).unwrap_err();
            assert!(
                matches!(&e, DriverError::InvalidArgument(m) if m.contains("source-name")),
                "{bad}: {e:?}"
            );
        }
        assert_eq!(
            Reference::Name("a".into()).to_json(),
            r#"{"source-name":"a"}"#
        );
    }

    #[test]
    fn names_of_volumes_are_already_managed() {
        let id = "0b7a4e4e-1c1d-4bb1-8f33-5d0f3d1f2a11";
        let m = ManageableVolume::named(&format!("volume-{id}"), 1);
        assert_eq!(m.cinder_id.as_deref(), Some(id));
        assert!(!m.safe_to_manage);
        assert_eq!(m.size_gib, 1);
        let m = ManageableVolume::named("data", (1 << 30) + 1).unsafe_because(IN_USE);
        assert_eq!(m.size_gib, 2);
        assert_eq!(m.reason_not_safe.as_deref(), Some(IN_USE));
        assert_eq!(volume_id_in_name("volume-xyz"), None);
        assert_eq!(gib_rounded_up(0), 0);
    }
}
