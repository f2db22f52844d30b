//! Volume transfers, as Cinder's `cinder/transfer/api.py`: the owner offers an
//! `available` volume (it waits `awaiting-transfer`) and is given a one-time key; any
//! project that presents the transfer's id and that key takes the volume (and its
//! snapshots, unless the offer said `no_snapshots`); the owner may cancel the offer.
//!
//! The key is Cinder-shaped: hexadecimal characters a person can type, from the system's
//! random source. Only a salted SHA-256 of it is stored.

use sha2::{Digest, Sha224, Sha256};

use super::VolumeManager;
use super::requests::{Refused, busy};
use super::status::VolumeStatus;
use crate::db::{AcceptRefused, OfferRefused, TransferRow, VolumeRow, time};

/// Characters in a transfer's salt (Cinder's `volume_transfer_salt_length`).
const SALT_LENGTH: usize = 8;

/// `length` hexadecimal characters from the system's random source (each UUID v4 carries
/// 122 random bits from it), as Cinder draws them from `sha224(os.urandom(255))`.
fn random_hex(length: usize) -> String {
    let mut out = String::with_capacity(length + 56);
    while out.len() < length {
        let mut h = Sha224::new();
        for _ in 0..3 {
            h.update(uuid::Uuid::new_v4().as_bytes());
        }
        for b in h.finalize() {
            out.push_str(&format!("{b:02x}"));
        }
    }
    out.truncate(length);
    out
}

/// The stored form of a key: SHA-256 over the salt and the key, hexadecimal.
fn crypt_hash(salt: &str, auth_key: &str) -> String {
    let mut h = Sha256::new();
    h.update(salt.as_bytes());
    h.update(b":");
    h.update(auth_key.as_bytes());
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

/// Compares two hashes without stopping at the first difference.
fn same(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

impl VolumeManager {
    /// Offers `volume` for transfer: records the transfer and moves the volume to
    /// `awaiting-transfer` in one transaction. The transfer and its key, which is shown
    /// this once and never stored.
    pub async fn request_transfer(
        &self,
        volume: &VolumeRow,
        name: Option<String>,
        no_snapshots: bool,
        key_length: usize,
    ) -> Result<(TransferRow, String), Refused> {
        let auth_key = random_hex(key_length);
        let salt = random_hex(SALT_LENGTH);
        let t = TransferRow {
            id: uuid::Uuid::new_v4().to_string(),
            volume_id: volume.id.clone(),
            display_name: name,
            crypt_hash: crypt_hash(&salt, &auth_key),
            salt,
            no_snapshots,
            source_project_id: volume.project_id.clone(),
            destination_project_id: None,
            accepted: false,
            created_at: time::now(),
        };
        match self
            .db
            .offer_transfer(&t, VolumeStatus::TRANSFERABLE)
            .await?
        {
            Ok(()) => {
                tracing::info!(volume_id = %volume.id, transfer_id = %t.id, "volume offered for transfer");
                Ok((t, auth_key))
            }
            Err(OfferRefused::Volume(None)) => Err(Refused::NotFound(format!(
                "Volume {} could not be found.",
                volume.id
            ))),
            Err(OfferRefused::Volume(Some(status))) => Err(Refused::Invalid(format!(
                "Invalid volume: Volume's status must be available; volume {} is {status}.",
                volume.id
            ))),
            Err(OfferRefused::Snapshot(id, status)) => Err(Refused::Invalid(format!(
                "Invalid snapshot: Snapshot: {id} status must be available; it is {status}. \
                 Wait for it, delete it, or transfer the volume with no_snapshots (3.55)."
            ))),
            Err(OfferRefused::Busy(r)) => Err(busy(&volume.id, "transfer", r)),
        }
    }

    /// Accepts transfer `t` for `user_id` in `project_id` if `auth_key` is its key: the
    /// volume (and its snapshots unless `no_snapshots`) becomes theirs and `available`,
    /// and the transfer ends, in one transaction. The accepted transfer.
    pub async fn accept_transfer(
        &self,
        t: &TransferRow,
        auth_key: &str,
        user_id: &str,
        project_id: &str,
    ) -> Result<TransferRow, Refused> {
        if !same(&crypt_hash(&t.salt, auth_key), &t.crypt_hash) {
            tracing::warn!(transfer_id = %t.id, "transfer accept with an invalid auth key");
            return Err(Refused::Invalid(format!(
                "Invalid auth key: Attempt to transfer {} with invalid auth key.",
                t.id
            )));
        }
        match self.db.accept_transfer(&t.id, user_id, project_id).await? {
            Ok(accepted) => {
                tracing::info!(
                    volume_id = %t.volume_id,
                    transfer_id = %t.id,
                    from = %t.source_project_id,
                    to = %project_id,
                    "volume transferred"
                );
                Ok(accepted)
            }
            Err(AcceptRefused::Gone) => Err(Refused::NotFound(format!(
                "Transfer {} could not be found.",
                t.id
            ))),
            Err(AcceptRefused::Quota(over)) => Err(over.into()),
            Err(AcceptRefused::Volume(status)) => Err(Refused::Invalid(format!(
                "Invalid volume: Volume {} is {}; it must be awaiting-transfer to be accepted.",
                t.volume_id,
                status.as_deref().unwrap_or("deleted")
            ))),
        }
    }

    /// Cancels transfer `t`: it ends and its volume is `available` again.
    pub async fn cancel_transfer(&self, t: &TransferRow) -> Result<(), Refused> {
        match self.db.cancel_transfer(&t.id).await? {
            None => Err(Refused::NotFound(format!(
                "Transfer {} could not be found.",
                t.id
            ))),
            Some(returned) => {
                if !returned {
                    tracing::error!(volume_id = %t.volume_id, transfer_id = %t.id,
                        "transfer cancelled, but its volume was not awaiting-transfer");
                }
                Ok(())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_typeable_random_and_checked_by_their_salted_hash() {
        let a = random_hex(16);
        let b = random_hex(16);
        assert_eq!(a.len(), 16);
        assert!(a.bytes().all(|c| c.is_ascii_hexdigit()), "{a}");
        assert_ne!(a, b);
        assert_eq!(random_hex(64).len(), 64);
        let h = crypt_hash("salt1234", &a);
        assert!(same(&h, &crypt_hash("salt1234", &a)));
        assert!(!same(&h, &crypt_hash("salt1234", &b)));
        assert!(!same(&h, &crypt_hash("salt9999", &a)));
        assert!(!h.contains(&a));
    }
}
