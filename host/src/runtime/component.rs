//! What a component says about itself before it is compiled: the contract version the
//! SDK stamped into it.

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_version_the_sdk_stamped() {
        let nfs = crate::bundled::find("nfs").unwrap();
        assert_eq!(
            contract_version(nfs.wasm).unwrap(),
            Some(semver::Version::new(0, 2, 0))
        );
        assert_eq!(contract_version(b"\0asm\x01\0\0\0").unwrap(), None);
        assert!(contract_version(b"not wasm").is_err());
    }
}
