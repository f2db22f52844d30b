//! Volume types the host itself owns: Cinder's default type, and the types the operator's
//! config declares.

use std::collections::BTreeMap;

use crate::db::{Db, DbError};

/// Cinder's default volume type, given to volumes created without one.
pub const DEFAULT_VOLUME_TYPE: &str = "__DEFAULT__";

/// Makes the default type and the configured ones (name → extra specs) if they are
/// missing, and sets the configured extra specs on those that exist. Returns how many
/// types the config declares, the default one included.
pub async fn ensure(
    db: &Db,
    configured: &BTreeMap<String, BTreeMap<String, String>>,
) -> Result<usize, DbError> {
    if db.get_volume_type(DEFAULT_VOLUME_TYPE).await?.is_none() {
        db.create_volume_type(DEFAULT_VOLUME_TYPE, Some("Default Volume Type"), true, &[])
            .await?;
    }
    for (name, specs) in configured {
        let specs: Vec<(String, String)> =
            specs.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        match db.get_volume_type(name).await? {
            Some(t) => db.set_extra_specs(&t.id, &specs).await?,
            None => {
                db.create_volume_type(name, None, true, &specs).await?;
            }
        }
    }
    Ok(configured.len() + 1)
}
