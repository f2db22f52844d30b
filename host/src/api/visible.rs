//! What a caller may see: a resource of their own project, or of any project for an
//! administrator; anything else is Cinder's 404, never a 403 that would confirm it exists.

use super::{ApiError, AppState, Ctx};
use crate::db::{AttachmentRow, BackupRow, SnapshotRow, VolumeRow};

impl Ctx {
    /// Whether the caller may see what belongs to `project_id`.
    pub fn may_see(&self, project_id: &str) -> bool {
        self.is_admin || project_id == self.project_id
    }
}

pub async fn volume(state: &AppState, ctx: &Ctx, id: &str) -> Result<VolumeRow, ApiError> {
    // No id holds a NUL character; PostgreSQL would refuse to look for one.
    if id.contains('\0') {
        return Err(ApiError::not_found(format!(
            "Volume {id} could not be found."
        )));
    }
    match state.db.get_volume(id).await? {
        Some(v) if ctx.may_see(&v.project_id) => Ok(v),
        _ => Err(ApiError::not_found(format!(
            "Volume {id} could not be found."
        ))),
    }
}

pub async fn snapshot(state: &AppState, ctx: &Ctx, id: &str) -> Result<SnapshotRow, ApiError> {
    // No id holds a NUL character; PostgreSQL would refuse to look for one.
    if id.contains('\0') {
        return Err(ApiError::not_found(format!(
            "Snapshot {id} could not be found."
        )));
    }
    match state.db.get_snapshot(id).await? {
        Some(s) if ctx.may_see(&s.project_id) => Ok(s),
        _ => Err(ApiError::not_found(format!(
            "Snapshot {id} could not be found."
        ))),
    }
}

pub async fn backup(state: &AppState, ctx: &Ctx, id: &str) -> Result<BackupRow, ApiError> {
    // No id holds a NUL character; PostgreSQL would refuse to look for one.
    if id.contains('\0') {
        return Err(ApiError::not_found(format!(
            "Backup {id} could not be found."
        )));
    }
    match state.db.get_backup(id).await? {
        Some(b) if ctx.may_see(&b.project_id) => Ok(b),
        _ => Err(ApiError::not_found(format!(
            "Backup {id} could not be found."
        ))),
    }
}

/// An attachment with its volume.
pub async fn attachment(
    state: &AppState,
    ctx: &Ctx,
    id: &str,
) -> Result<(AttachmentRow, VolumeRow), ApiError> {
    let missing = || ApiError::not_found(format!("Attachment {id} could not be found."));
    if id.contains('\0') {
        return Err(missing());
    }
    let a = state.db.get_attachment(id).await?.ok_or_else(missing)?;
    if !ctx.may_see(&a.project_id) {
        return Err(missing());
    }
    let v = state
        .db
        .get_volume(&a.volume_id)
        .await?
        .ok_or_else(missing)?;
    Ok((a, v))
}
