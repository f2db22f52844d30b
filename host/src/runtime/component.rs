//! What a component says about itself before it is compiled: the contract version the
//! SDK stamped into it, and the world its exports implement.

use crate::capabilities::World;

/// The custom section the SDK stamps with the contract version.
pub const CONTRACT_SECTION: &str = "ashlar:contract-version";

/// Reads the contract version the SDK stamped into a component.
pub fn contract_version(bytes: &[u8]) -> Result<Option<semver::Version>, String> {
    for payload in wasmparser::Parser::new(0).parse_all(bytes) {
        let payload = payload.map_err(|e| e.to_string())?;
        if let wasmparser::Payload::CustomSection(reader) = payload
            && reader.name() == CONTRACT_SECTION
        {
            let text = std::str::from_utf8(reader.data())
                .map_err(|e| format!("{CONTRACT_SECTION}: {e}"))?;
            return semver::Version::parse(text.trim_end_matches('\0'))
                .map(Some)
                .map_err(|e| format!("{CONTRACT_SECTION} `{text}`: {e}"));
        }
    }
    Ok(None)
}

/// The names a component exports at its top level (`ashlar:driver/volume-driver-core@0.2.0`,
/// …), not those of the components and modules nested in it.
pub fn export_names(bytes: &[u8]) -> Result<Vec<String>, String> {
    use wasmparser::Payload;
    let mut names = Vec::new();
    let mut depth = 0usize;
    for payload in wasmparser::Parser::new(0).parse_all(bytes) {
        match payload.map_err(|e| e.to_string())? {
            Payload::ModuleSection { .. } | Payload::ComponentSection { .. } => depth += 1,
            Payload::End(_) => depth = depth.saturating_sub(1),
            Payload::ComponentExportSection(exports) if depth == 0 => {
                for export in exports {
                    names.push(export.map_err(|e| e.to_string())?.name.name.to_string());
                }
            }
            _ => {}
        }
    }
    Ok(names)
}

/// The world a component implements, by the core interface it exports:
/// `ashlar:driver/volume-driver-core@…` makes a volume driver, `…/target-driver-core@…` a
/// target driver, `…/backup-driver-core@…` a backup driver.
pub fn world_of_exports<S: AsRef<str>>(exports: &[S]) -> Option<World> {
    exports.iter().find_map(|name| {
        let name = name.as_ref();
        let interface = name.strip_prefix("ashlar:driver/")?;
        let interface = interface.split('@').next().unwrap_or(interface);
        match interface {
            "volume-driver-core" => Some(World::VolumeDriver),
            "target-driver-core" => Some(World::TargetDriver),
            "backup-driver-core" => Some(World::BackupDriver),
            _ => None,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_version_the_sdk_stamped() {
        let nfs = crate::bundled::find("nfs").unwrap();
        assert_eq!(
            contract_version(nfs.wasm).unwrap(),
            Some(semver::Version::new(0, 3, 0))
        );
        assert_eq!(contract_version(b"\0asm\x01\0\0\0").unwrap(), None);
        assert!(contract_version(b"not wasm").is_err());
    }

    #[test]
    fn the_world_is_read_off_the_exports() {
        let world = |name: &str| {
            let wasm = crate::bundled::find(name).unwrap().wasm;
            world_of_exports(&export_names(wasm).unwrap())
        };
        assert_eq!(world("nfs"), Some(World::VolumeDriver));
        assert_eq!(world("iscsi-tgt"), Some(World::TargetDriver));
        let nfs = export_names(crate::bundled::find("nfs").unwrap().wasm).unwrap();
        assert!(
            nfs.contains(&"ashlar:driver/volume-driver-core@0.3.0".to_string()),
            "{nfs:?}"
        );
        assert_eq!(
            world_of_exports(&["ashlar:driver/backup-driver-core@0.2.0"]),
            Some(World::BackupDriver)
        );
        assert_eq!(world_of_exports(&["wasi:cli/run@0.2.0"]), None);
    }
}
