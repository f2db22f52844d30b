//! Cinder's user-message vocabulary (`cinder/message/message_field.py`): what a tenant is
//! told about an asynchronous request that failed.
//!
//! A message is an [`Event`]: the resource it is about, the [`Action`] that was under way
//! and a [`Detail`] saying what went wrong, each from a fixed list, so a tenant never reads
//! the driver's own words, a command line, a path on the share or a pool's directory. The
//! event id is `VOLUME_<resource>_<action id>_<detail id>` and the text
//! `<action>:<detail>`, as Cinder's message API and messages controller compose them.
//! After that text the host may add a hint of its own words (which backend, what to do),
//! built only from what the tenant may know; everything else — the driver's text, the
//! scheduler's per-pool reasons — goes to the log and the message's internal detail, which
//! only administrators read.
//!
//! Ids and texts are Cinder's. Where Cinder has no action for an operation Ashlar runs
//! (deleting a volume, reverting it to a snapshot), Ashlar's own actions take ids from 900
//! up, a range Cinder's list (001–016 today) does not reach.

/// What a message is about (Cinder's `Resource`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Resource {
    Volume,
    VolumeSnapshot,
    VolumeBackup,
}

impl Resource {
    pub fn as_str(self) -> &'static str {
        match self {
            Resource::Volume => "VOLUME",
            Resource::VolumeSnapshot => "VOLUME_SNAPSHOT",
            Resource::VolumeBackup => "VOLUME_BACKUP",
        }
    }
}

/// The operation that was under way (Cinder's `message_field.Action`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Action {
    pub id: &'static str,
    pub text: &'static str,
}

impl Action {
    pub const SCHEDULE_ALLOCATE_VOLUME: Action = Action::new("001", "schedule allocate volume");
    pub const ATTACH_VOLUME: Action = Action::new("002", "attach volume");
    pub const COPY_VOLUME_TO_IMAGE: Action = Action::new("003", "copy volume to image");
    pub const COPY_IMAGE_TO_VOLUME: Action = Action::new("005", "copy image to volume");
    pub const EXTEND_VOLUME: Action = Action::new("007", "extend volume");
    pub const CREATE_VOLUME_FROM_BACKEND: Action =
        Action::new("008", "create volume from backend storage");
    pub const SNAPSHOT_CREATE: Action = Action::new("009", "create snapshot");
    pub const SNAPSHOT_DELETE: Action = Action::new("010", "delete snapshot");
    pub const BACKUP_CREATE: Action = Action::new("013", "create backup");
    pub const BACKUP_DELETE: Action = Action::new("014", "delete backup");
    pub const BACKUP_RESTORE: Action = Action::new("015", "restore backup");
    /// Cinder's words for an action it does not know (`translate_action`): a job of a kind
    /// this host does not run. Ashlar's id.
    pub const UNKNOWN: Action = Action::new("900", "unknown action");
    /// Ashlar's: Cinder records no message when a volume delete fails.
    pub const DELETE_VOLUME: Action = Action::new("901", "delete volume");
    /// Ashlar's: Cinder records no message when a revert fails.
    pub const REVERT_TO_SNAPSHOT: Action = Action::new("902", "revert volume to snapshot");
    /// Ashlar's: Cinder records no message when managing existing storage fails.
    pub const MANAGE_EXISTING: Action = Action::new("903", "manage existing volume");
    /// Ashlar's: Cinder records no message when an unmanage fails.
    pub const UNMANAGE_VOLUME: Action = Action::new("904", "unmanage volume");
    /// Ashlar's: Cinder records no message when a migration fails.
    pub const MIGRATE_VOLUME: Action = Action::new("905", "migrate volume");
    /// Ashlar's: Cinder records no message when a retype fails.
    pub const RETYPE_VOLUME: Action = Action::new("906", "retype volume");

    const fn new(id: &'static str, text: &'static str) -> Action {
        Action { id, text }
    }
}

/// What went wrong (Cinder's `message_field.Detail`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Detail {
    pub id: &'static str,
    pub text: &'static str,
}

impl Detail {
    pub const UNKNOWN_ERROR: Detail = Detail::new("001", "An unknown error occurred.");
    pub const DRIVER_NOT_INITIALIZED: Detail =
        Detail::new("002", "Driver is not initialized at present.");
    pub const NO_BACKEND_AVAILABLE: Detail =
        Detail::new("003", "Could not find any available weighted backend.");
    pub const QUOTA_EXCEED: Detail = Detail::new("006", "Not enough quota resource for operation.");
    pub const FAILED_TO_UPLOAD_VOLUME: Detail =
        Detail::new("004", "Failed to upload volume to image at backend.");
    pub const NOT_ENOUGH_SPACE_FOR_IMAGE: Detail = Detail::new(
        "007",
        "Image used for creating volume exceeds available space.",
    );
    pub const DRIVER_FAILED_EXTEND: Detail =
        Detail::new("010", "Volume Driver failed to extend volume.");
    pub const DRIVER_FAILED_CREATE: Detail =
        Detail::new("012", "Driver failed to create the volume.");
    pub const SNAPSHOT_CREATE_ERROR: Detail = Detail::new("013", "Snapshot failed to create.");
    pub const SNAPSHOT_DELETE_ERROR: Detail = Detail::new("016", "Snapshot failed to delete.");
    pub const BACKUP_SERVICE_DOWN: Detail = Detail::new("018", "Backup service is down.");
    pub const BACKUP_CREATE_DEVICE_ERROR: Detail = Detail::new(
        "019",
        "Failed to get backup device from the volume service.",
    );
    pub const BACKUP_CREATE_DRIVER_ERROR: Detail =
        Detail::new("020", "Backup driver failed to create backup.");
    pub const BACKUP_CREATE_CLEANUP_ERROR: Detail =
        Detail::new("023", "Cleanup of temporary volume/snapshot failed.");
    pub const BACKUP_DELETE_DRIVER_ERROR: Detail =
        Detail::new("025", "Backup driver failed to delete backup.");
    pub const BACKUP_RESTORE_ERROR: Detail =
        Detail::new("026", "Backup driver failed to restore backup.");
    /// Ashlar's: a migration's copy or the destination's driver failed.
    pub const MIGRATION_FAILED: Detail = Detail::new(
        "901",
        "The volume could not be moved to the destination backend.",
    );
    /// Ashlar's: the volume's backend does not suit the new type and the retype may not
    /// migrate it.
    pub const RETYPE_NEEDS_MIGRATION: Detail =
        Detail::new("902", "Retype requires migration but is not allowed.");

    const fn new(id: &'static str, text: &'static str) -> Detail {
        Detail { id, text }
    }
}

/// One kind of user message: a resource, an action and a detail.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Event {
    pub resource: Resource,
    pub action: Action,
    pub detail: Detail,
}

impl Event {
    /// `VOLUME_<resource>_<action id>_<detail id>`, as Cinder's message API composes it
    /// (`VOLUME_VOLUME_001_003`, `VOLUME_VOLUME_SNAPSHOT_009_013`).
    pub fn id(&self) -> String {
        format!(
            "VOLUME_{}_{}_{}",
            self.resource.as_str(),
            self.action.id,
            self.detail.id
        )
    }

    /// `<action>:<detail>` as Cinder's messages controller shows it, then the host's
    /// `hint` when there is one.
    pub fn user_message(&self, hint: Option<&str>) -> String {
        let text = format!("{}:{}", self.action.text, self.detail.text);
        match hint {
            Some(hint) if !hint.is_empty() => format!("{text} {hint}"),
            _ => text,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_ids_and_texts_are_composed_as_cinder_composes_them() {
        let no_backend = Event {
            resource: Resource::Volume,
            action: Action::SCHEDULE_ALLOCATE_VOLUME,
            detail: Detail::NO_BACKEND_AVAILABLE,
        };
        assert_eq!(no_backend.id(), "VOLUME_VOLUME_001_003");
        assert_eq!(
            no_backend.user_message(None),
            "schedule allocate volume:Could not find any available weighted backend."
        );
        let snapshot = Event {
            resource: Resource::VolumeSnapshot,
            action: Action::SNAPSHOT_CREATE,
            detail: Detail::SNAPSHOT_CREATE_ERROR,
        };
        assert_eq!(snapshot.id(), "VOLUME_VOLUME_SNAPSHOT_009_013");
        assert_eq!(
            snapshot.user_message(Some("Try again later.")),
            "create snapshot:Snapshot failed to create. Try again later."
        );
    }
}
