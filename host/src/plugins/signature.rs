//! Detached ed25519 signatures of driver components. `ashlar plugin sign DRIVER.wasm --key
//! KEY` writes `DRIVER.wasm.sig` beside the component; a backend (or `[backup]`) with
//! `trusted_keys` loads, and swaps to, only a component signed by one of them, checked
//! before it is compiled. A bundled driver ships inside the `ashlar` binary itself and
//! needs no signature.
//!
//! A key file holds a 32-byte ed25519 secret seed in base64 (`ashlar plugin keygen`); a
//! public key is written in base64 too, as it appears in `trusted_keys`.

use std::path::{Path, PathBuf};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use ed25519_dalek::{Signer, SigningKey, Verifier, VerifyingKey};
use serde::{Deserialize, Serialize};

/// What `DRIVER.wasm.sig` holds: the signer's public key and its signature of the
/// component's bytes, both base64.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Signature {
    pub key: String,
    pub signature: String,
}

/// Where a component's signature sits: beside it, `.sig` added to its name.
pub fn signature_path(wasm: &Path) -> PathBuf {
    let mut name = wasm.as_os_str().to_owned();
    name.push(".sig");
    PathBuf::from(name)
}

/// Why a component is refused by a backend that trusts only some keys.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum Refusal {
    #[error(
        "it has no signature ({}): this backend loads only components signed by one of its trusted_keys ({}); sign it with `ashlar plugin sign`",
        path.display(),
        .trusted.join(", ")
    )]
    Unsigned { path: PathBuf, trusted: Vec<String> },
    #[error(
        "it is signed by key {key}, which is not among this backend's trusted_keys ({})",
        .trusted.join(", ")
    )]
    Untrusted { key: String, trusted: Vec<String> },
    #[error(
        "its signature by key {key} does not match its bytes: the component was changed after it was signed, or the signature is not of it"
    )]
    Invalid { key: String },
    #[error("its signature file is not one `ashlar plugin sign` writes: {0}")]
    Malformed(String),
}

/// A new secret key, from the system's random source, as a key file holds it.
pub fn generate_key() -> std::io::Result<String> {
    let mut seed = [0u8; 32];
    std::io::Read::read_exact(&mut std::fs::File::open("/dev/urandom")?, &mut seed)?;
    Ok(STANDARD.encode(seed))
}

/// The secret key a key file holds.
pub fn read_key(text: &str) -> Result<SigningKey, String> {
    let bytes = STANDARD
        .decode(text.trim())
        .map_err(|e| format!("the key file is not base64: {e}"))?;
    let seed: [u8; 32] = bytes
        .try_into()
        .map_err(|b: Vec<u8>| format!("the key is {} bytes; an ed25519 key is 32", b.len()))?;
    Ok(SigningKey::from_bytes(&seed))
}

/// The public key of `key`, as `trusted_keys` names it.
pub fn public_key(key: &SigningKey) -> String {
    STANDARD.encode(key.verifying_key().as_bytes())
}

/// Signs a component's bytes.
pub fn sign(wasm: &[u8], key: &SigningKey) -> Signature {
    Signature {
        key: public_key(key),
        signature: STANDARD.encode(key.sign(wasm).to_bytes()),
    }
}

/// Whether `signature` is a valid signature of `wasm` by its key; the key when it is.
pub fn verify(wasm: &[u8], signature: &Signature) -> Result<String, Refusal> {
    let malformed = |what: &str| Refusal::Malformed(what.to_string());
    let key_bytes: [u8; 32] = STANDARD
        .decode(&signature.key)
        .ok()
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| malformed("its key is not a base64 ed25519 public key"))?;
    let key = VerifyingKey::from_bytes(&key_bytes)
        .map_err(|_| malformed("its key is not an ed25519 public key"))?;
    let sig_bytes: [u8; 64] = STANDARD
        .decode(&signature.signature)
        .ok()
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| malformed("its signature is not a base64 ed25519 signature"))?;
    key.verify(wasm, &ed25519_dalek::Signature::from_bytes(&sig_bytes))
        .map_err(|_| Refusal::Invalid {
            key: signature.key.clone(),
        })?;
    Ok(signature.key.clone())
}

/// The check a backend with `trusted_keys` makes of a component from `path`: signed, by a
/// trusted key, and unchanged since.
pub fn check(
    wasm: &[u8],
    path: &Path,
    signature: Option<&Signature>,
    trusted: &[String],
) -> Result<String, Refusal> {
    let Some(signature) = signature else {
        return Err(Refusal::Unsigned {
            path: signature_path(path),
            trusted: trusted.to_vec(),
        });
    };
    if !trusted.iter().any(|k| k.trim() == signature.key) {
        return Err(Refusal::Untrusted {
            key: signature.key.clone(),
            trusted: trusted.to_vec(),
        });
    }
    verify(wasm, signature)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_an_unchanged_component_signed_by_a_trusted_key_passes() {
        let key = read_key(&generate_key().unwrap()).unwrap();
        let other = read_key(&generate_key().unwrap()).unwrap();
        let wasm = b"\0asm component bytes";
        let path = Path::new("/drivers/x.wasm");
        let trusted = vec![public_key(&key)];
        let sig = sign(wasm, &key);
        assert_eq!(
            check(wasm, path, Some(&sig), &trusted),
            Ok(public_key(&key))
        );
        assert_eq!(
            check(b"\0asm changed bytes", path, Some(&sig), &trusted),
            Err(Refusal::Invalid {
                key: public_key(&key)
            })
        );
        let by_other = sign(wasm, &other);
        assert!(matches!(
            check(wasm, path, Some(&by_other), &trusted),
            Err(Refusal::Untrusted { .. })
        ));
        let err = check(wasm, path, None, &trusted).unwrap_err();
        assert!(err.to_string().contains("/drivers/x.wasm.sig"), "{err}");
        // A signature whose key is swapped for a trusted one does not verify.
        let forged = Signature {
            key: public_key(&key),
            signature: by_other.signature,
        };
        assert!(matches!(
            check(wasm, path, Some(&forged), &trusted),
            Err(Refusal::Invalid { .. })
        ));
        assert!(read_key("not base64!").is_err());
    }
}
