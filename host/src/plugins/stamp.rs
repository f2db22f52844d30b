//! `ashlar plugin stamp`: gives a component built without the Rust SDK (componentize-py,
//! for one) the `ashlar:contract-version` custom section the host reads before it
//! compiles anything. The section is appended at the component's top level; a custom
//! section may sit anywhere, and appending one changes nothing else of the binary.

use crate::runtime::{self, CONTRACT_SECTION, versions};

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum StampError {
    #[error("`{0}` is not a contract version: write it as X.Y.Z, e.g. 0.2.0")]
    BadVersion(String),
    #[error("this host does not serve contract {asked}; it serves {served}")]
    NotServed { asked: String, served: String },
    #[error("not a component whose sections can be read: {0}")]
    Unreadable(String),
    #[error("it is stamped with contract {found} already, not {asked}; rebuild it against {asked}")]
    OtherVersion { found: String, asked: String },
    #[error(
        "its exports were built against contract {built} (`{export}`), not {asked}: build it against wit/since_v{asked} or stamp it {built}"
    )]
    BuiltAgainst {
        built: String,
        export: String,
        asked: String,
    },
    #[error("it exports no Ashlar driver interface, so it is no driver of any world")]
    NoDriverExports,
    #[error("the stamped component does not read back as contract {0}: {1}")]
    Check(String, String),
}

/// What stamping did.
#[derive(Debug, PartialEq, Eq)]
pub enum Stamped {
    /// The section was appended: the new binary.
    Now(Vec<u8>),
    /// It carried this very version already; nothing to write.
    Already,
}

/// Stamps `wasm` with contract `version`, refusing a version the host does not serve, a
/// component stamped with another version, and one whose exports are of another contract.
pub fn stamp(wasm: &[u8], version: &str) -> Result<Stamped, StampError> {
    let asked =
        semver::Version::parse(version).map_err(|_| StampError::BadVersion(version.into()))?;
    if versions::served(&asked).is_none() {
        return Err(StampError::NotServed {
            asked: asked.to_string(),
            served: versions::served_list(),
        });
    }
    match runtime::contract_version(wasm) {
        Err(e) => return Err(StampError::Unreadable(e)),
        Ok(Some(found)) if found == asked => return Ok(Stamped::Already),
        Ok(Some(found)) => {
            return Err(StampError::OtherVersion {
                found: found.to_string(),
                asked: asked.to_string(),
            });
        }
        Ok(None) => {}
    }
    let exports = runtime::export_names(wasm).map_err(StampError::Unreadable)?;
    let driver_exports: Vec<&String> = exports
        .iter()
        .filter(|name| name.starts_with("ashlar:driver/"))
        .collect();
    if runtime::world_of_exports(&exports).is_none() {
        return Err(StampError::NoDriverExports);
    }
    for export in driver_exports {
        let built = export.rsplit_once('@').map(|(_, v)| v).unwrap_or("");
        let same = semver::Version::parse(built)
            .is_ok_and(|b| b.major == asked.major && b.minor == asked.minor);
        if !same {
            return Err(StampError::BuiltAgainst {
                built: built.to_string(),
                export: export.clone(),
                asked: asked.to_string(),
            });
        }
    }
    let mut out = wasm.to_vec();
    append_custom_section(&mut out, CONTRACT_SECTION, asked.to_string().as_bytes());
    match versions::contract_of(&out) {
        versions::Contract::Served { stamped, .. } if stamped == asked => Ok(Stamped::Now(out)),
        other => Err(StampError::Check(asked.to_string(), other.to_string())),
    }
}

/// Appends a custom section (id 0: the name, then the payload) to a module or component.
fn append_custom_section(wasm: &mut Vec<u8>, name: &str, data: &[u8]) {
    let mut payload = Vec::with_capacity(name.len() + data.len() + 5);
    leb128(&mut payload, name.len());
    payload.extend_from_slice(name.as_bytes());
    payload.extend_from_slice(data);
    wasm.push(0);
    leb128(wasm, payload.len());
    wasm.extend_from_slice(&payload);
}

fn leb128(out: &mut Vec<u8>, mut n: usize) {
    loop {
        let byte = (n & 0x7f) as u8;
        n >>= 7;
        if n == 0 {
            out.push(byte);
            return;
        }
        out.push(byte | 0x80);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The bundled nfs driver with its contract section renamed, so it reads as unstamped.
    fn unstamped_nfs() -> Vec<u8> {
        let mut wasm = crate::bundled::find("nfs").unwrap().wasm.to_vec();
        let at = wasm
            .windows(CONTRACT_SECTION.len())
            .position(|w| w == CONTRACT_SECTION.as_bytes())
            .expect("the nfs driver carries the section");
        wasm[at] = b'x';
        assert_eq!(runtime::contract_version(&wasm).unwrap(), None);
        wasm
    }

    /// The contract the bundled nfs driver was built against, and the oldest served one,
    /// which differs from it.
    fn nfs_and_oldest() -> (semver::Version, String) {
        let nfs = crate::bundled::find("nfs").unwrap().wasm;
        let own = runtime::contract_version(nfs).unwrap().unwrap();
        let oldest = versions::SERVED[0].to_string();
        assert_ne!(own.to_string(), oldest);
        (own, oldest)
    }

    #[test]
    fn stamps_an_unstamped_component_that_then_reads_as_served() {
        let (own, _) = nfs_and_oldest();
        let Stamped::Now(out) = stamp(&unstamped_nfs(), &own.to_string()).unwrap() else {
            panic!("expected a new binary")
        };
        assert_eq!(runtime::contract_version(&out).unwrap(), Some(own.clone()));
        assert!(matches!(
            versions::contract_of(&out),
            versions::Contract::Served { .. }
        ));
        assert_eq!(stamp(&out, &own.to_string()).unwrap(), Stamped::Already);
    }

    #[test]
    fn refuses_what_it_cannot_stamp() {
        let nfs = crate::bundled::find("nfs").unwrap().wasm;
        let (_, oldest) = nfs_and_oldest();
        assert!(matches!(
            stamp(nfs, &oldest),
            Err(StampError::OtherVersion { .. })
        ));
        let err = stamp(nfs, "9.0.0").unwrap_err();
        let served = format!("it serves {}", versions::served_list());
        assert!(err.to_string().contains(&served), "{err}");
        assert!(matches!(
            stamp(nfs, "latest"),
            Err(StampError::BadVersion(_))
        ));
        // Built against a newer contract: stamping it older would make it fail to link.
        assert!(matches!(
            stamp(&unstamped_nfs(), &oldest),
            Err(StampError::BuiltAgainst { .. })
        ));
        assert!(matches!(
            stamp(b"not wasm", &oldest),
            Err(StampError::Unreadable(_))
        ));
    }

    #[test]
    fn leb128_matches_the_spec() {
        let mut out = Vec::new();
        leb128(&mut out, 624485);
        assert_eq!(out, [0xe5, 0x8e, 0x26]);
    }
}
