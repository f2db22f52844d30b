//! The statuses of volumes, snapshots and attachments, with Cinder's names, and the legal
//! moves between them in one place. Every status change in the database is conditional on
//! one of these sets (`UPDATE … WHERE status IN (…)`), so two racing requests cannot both
//! win and no handler decides on its own which statuses an operation may start from.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A status string the database holds that no enum here names.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown {kind} status `{value}`")]
pub struct UnknownStatus {
    pub kind: &'static str,
    pub value: String,
}

macro_rules! statuses {
    ($(#[$doc:meta])* $name:ident, $kind:literal { $($variant:ident => $text:literal),+ $(,)? }) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub enum $name {
            $($variant),+
        }

        impl $name {
            /// Every status, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// Cinder's spelling.
            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text),+
                }
            }
        }

        impl FromStr for $name {
            type Err = UnknownStatus;
            fn from_str(s: &str) -> Result<Self, UnknownStatus> {
                match s {
                    $($text => Ok($name::$variant),)+
                    other => Err(UnknownStatus { kind: $kind, value: other.to_string() }),
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let text = <std::borrow::Cow<'de, str>>::deserialize(d)?;
                text.parse().map_err(serde::de::Error::custom)
            }
        }

    };
}

statuses!(
    /// A volume's `status` (Cinder's `fields.VolumeStatus`).
    VolumeStatus, "volume" {
        Creating => "creating",
        Available => "available",
        Reserved => "reserved",
        Attaching => "attaching",
        Detaching => "detaching",
        InUse => "in-use",
        Maintenance => "maintenance",
        Deleting => "deleting",
        AwaitingTransfer => "awaiting-transfer",
        Error => "error",
        ErrorDeleting => "error_deleting",
        BackingUp => "backing-up",
        RestoringBackup => "restoring-backup",
        ErrorBackingUp => "error_backing-up",
        ErrorRestoring => "error_restoring",
        ErrorExtending => "error_extending",
        Downloading => "downloading",
        Uploading => "uploading",
        Retyping => "retyping",
        Extending => "extending",
        Reverting => "reverting",
        Managing => "managing",
        ErrorManaging => "error_managing",
        Unmanaging => "unmanaging",
        ErrorUnmanaging => "error_unmanaging",
        ErrorManagingDeleting => "error_managing_deleting",
        Deleted => "deleted",
    }
);

statuses!(
    /// A snapshot's `status` (Cinder's `fields.SnapshotStatus`).
    SnapshotStatus, "snapshot" {
        Creating => "creating",
        Available => "available",
        Deleting => "deleting",
        Error => "error",
        ErrorDeleting => "error_deleting",
        Restoring => "restoring",
        Unmanaging => "unmanaging",
        BackingUp => "backing-up",
        Deleted => "deleted",
    }
);

statuses!(
    /// An attachment's `attach_status` (Cinder's `fields.VolumeAttachStatus`); a volume's
    /// own `attach_status` takes the same values.
    AttachStatus, "attach" {
        Reserved => "reserved",
        Attaching => "attaching",
        Attached => "attached",
        Detaching => "detaching",
        Detached => "detached",
        ErrorAttaching => "error_attaching",
        ErrorDetaching => "error_detaching",
        Deleted => "deleted",
    }
);

statuses!(
    /// A backup's `status` (Cinder's `fields.BackupStatus`).
    BackupStatus, "backup" {
        Creating => "creating",
        Available => "available",
        Deleting => "deleting",
        Error => "error",
        ErrorDeleting => "error_deleting",
        Restoring => "restoring",
        Deleted => "deleted",
    }
);

use VolumeStatus as V;

impl VolumeStatus {
    /// A user may delete a volume in these (Cinder's `volume:delete` without force).
    pub const DELETABLE: &'static [VolumeStatus] = &[
        V::Available,
        V::Error,
        V::ErrorRestoring,
        V::ErrorExtending,
        V::ErrorManaging,
    ];

    /// An administrator's `os-force_delete` takes a volume from anything but attached,
    /// attaching, or still being created.
    pub const FORCE_DELETABLE: &'static [VolumeStatus] = &[
        V::Available,
        V::Error,
        V::ErrorRestoring,
        V::ErrorExtending,
        V::ErrorManaging,
        V::ErrorDeleting,
        V::Deleting,
        V::Extending,
        V::Maintenance,
    ];

    /// What `os-reset_status` may set.
    pub const RESETTABLE: &'static [VolumeStatus] = &[
        V::Available,
        V::Error,
        V::Creating,
        V::Deleting,
        V::ErrorDeleting,
        V::Extending,
        V::ErrorExtending,
        V::Attaching,
        V::InUse,
        V::Detaching,
        V::Reserved,
        V::Maintenance,
    ];

    /// `os-unmanage` starts from these (Cinder's `delete(unmanage_only=True)`): the
    /// statuses a delete starts from; never attached, never with snapshots. It moves the
    /// volume to `unmanaging`, or from `error_managing` to `error_managing_deleting`, as
    /// Cinder does.
    pub const UNMANAGEABLE: &'static [VolumeStatus] = V::DELETABLE;

    /// `os-extend` starts from these (online extend of `in-use` volumes is not served).
    pub const EXTENDABLE: &'static [VolumeStatus] = &[V::Available];

    /// A snapshot may be taken of a volume in these.
    pub const SNAPSHOTTABLE: &'static [VolumeStatus] = &[V::Available];

    /// A volume transfer may be offered from these (Cinder: "Volume's status must be
    /// available"); the volume is `awaiting-transfer` until it is accepted or cancelled.
    pub const TRANSFERABLE: &'static [VolumeStatus] = &[V::Available];

    /// A volume may be cloned from these.
    pub const CLONEABLE: &'static [VolumeStatus] = &[V::Available, V::InUse];

    /// `revert` (3.40) starts from these.
    pub const REVERTIBLE: &'static [VolumeStatus] = &[V::Available];

    /// A backup may be taken of a volume in these: `available`, or `in-use` with `force`
    /// (Cinder: "Backing up an in-use volume must use the force flag.").
    pub const BACKUPABLE: &'static [VolumeStatus] = &[V::Available, V::InUse];

    /// A backup may be restored onto an existing volume in these (Cinder: "Volume to be
    /// restored to must be available").
    pub const RESTORABLE_ONTO: &'static [VolumeStatus] = &[V::Available];

    /// `os-volume_upload_image` starts from these (Cinder's `copy_volume_to_image`).
    pub const UPLOADABLE: &'static [VolumeStatus] = &[V::Available];

    /// … and from these with `force`, when the operator enables forced uploads.
    pub const UPLOADABLE_FORCED: &'static [VolumeStatus] = &[V::Available, V::InUse];

    /// A connection may be made or ended in these.
    pub const CONNECTABLE: &'static [VolumeStatus] = &[
        V::Available,
        V::Reserved,
        V::Attaching,
        V::InUse,
        V::Detaching,
    ];

    /// An attachment may end (and the volume's status follow what remains) from these.
    pub const DETACHABLE: &'static [VolumeStatus] =
        &[V::Reserved, V::Attaching, V::InUse, V::Detaching];

    /// A new attachment may be made from these: only `available`, unless the volume is
    /// multiattach.
    pub fn attachable(multiattach: bool) -> &'static [VolumeStatus] {
        if multiattach {
            &[V::Available, V::Reserved, V::Attaching, V::InUse]
        } else {
            &[V::Available]
        }
    }

    /// Statuses that end by themselves: a client polls until the volume leaves them.
    pub fn is_transient(self) -> bool {
        matches!(
            self,
            V::Creating
                | V::Deleting
                | V::Extending
                | V::Reverting
                | V::Downloading
                | V::Uploading
                | V::Retyping
                | V::BackingUp
                | V::RestoringBackup
                | V::Managing
                | V::Unmanaging
                | V::ErrorManagingDeleting
        )
    }
}

impl SnapshotStatus {
    /// A user may delete a snapshot in these.
    pub const DELETABLE: &'static [SnapshotStatus] = &[
        SnapshotStatus::Available,
        SnapshotStatus::Error,
        SnapshotStatus::ErrorDeleting,
    ];

    /// An administrator's `os-force_delete` takes a snapshot from these as well: one left
    /// `deleting` is deleted again. One `creating` or `restoring` has a job still running
    /// on it; its status is reset first (`os-reset_status`), as Cinder's guide says.
    pub const FORCE_DELETABLE: &'static [SnapshotStatus] = &[
        SnapshotStatus::Available,
        SnapshotStatus::Error,
        SnapshotStatus::ErrorDeleting,
        SnapshotStatus::Deleting,
        SnapshotStatus::Unmanaging,
        SnapshotStatus::BackingUp,
    ];

    /// What `os-reset_status` may set (all but `deleted`, which only a delete reaches).
    pub const RESETTABLE: &'static [SnapshotStatus] = &[
        SnapshotStatus::Creating,
        SnapshotStatus::Available,
        SnapshotStatus::Deleting,
        SnapshotStatus::Error,
        SnapshotStatus::ErrorDeleting,
        SnapshotStatus::Restoring,
        SnapshotStatus::Unmanaging,
        SnapshotStatus::BackingUp,
    ];
}

impl BackupStatus {
    /// A user may delete a backup in these (Cinder: "Backup status must be available or
    /// error").
    pub const DELETABLE: &'static [BackupStatus] = &[BackupStatus::Available, BackupStatus::Error];

    /// An administrator's `os-force_delete` also takes a backup a delete left behind. One
    /// `creating` or `restoring` has a job still running on it; its status is reset first
    /// (`os-reset_status`), as for snapshots.
    pub const FORCE_DELETABLE: &'static [BackupStatus] = &[
        BackupStatus::Available,
        BackupStatus::Error,
        BackupStatus::ErrorDeleting,
        BackupStatus::Deleting,
    ];

    /// A backup may be restored from these.
    pub const RESTORABLE: &'static [BackupStatus] = &[BackupStatus::Available];

    /// What `os-reset_status` may set (Cinder's `reset_status` schema for backups).
    pub const RESETTABLE: &'static [BackupStatus] = &[BackupStatus::Available, BackupStatus::Error];

    /// Statuses that end by themselves.
    pub fn is_transient(self) -> bool {
        matches!(
            self,
            BackupStatus::Creating | BackupStatus::Deleting | BackupStatus::Restoring
        )
    }
}

/// A volume's status and attach status given the attachments it still has.
pub fn status_for_attachments(remaining: &[AttachStatus]) -> (VolumeStatus, AttachStatus) {
    use AttachStatus as A;
    if remaining
        .iter()
        .any(|s| matches!(s, A::Attached | A::Detaching))
    {
        (V::InUse, A::Attached)
    } else if remaining.contains(&A::Attaching) {
        (V::Attaching, A::Attaching)
    } else if remaining.is_empty() {
        (V::Available, A::Detached)
    } else {
        (V::Reserved, A::Detached)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_status_parses_back_from_its_spelling() {
        for s in VolumeStatus::ALL {
            assert_eq!(s.as_str().parse::<VolumeStatus>().unwrap(), *s);
        }
        for s in SnapshotStatus::ALL {
            assert_eq!(s.as_str().parse::<SnapshotStatus>().unwrap(), *s);
        }
        for s in AttachStatus::ALL {
            assert_eq!(s.as_str().parse::<AttachStatus>().unwrap(), *s);
        }
        for s in BackupStatus::ALL {
            assert_eq!(s.as_str().parse::<BackupStatus>().unwrap(), *s);
        }
        let err = "frozen".parse::<VolumeStatus>().unwrap_err();
        assert_eq!(err.to_string(), "unknown volume status `frozen`");
        assert_eq!(serde_json::to_value(V::InUse).unwrap(), "in-use");
    }

    #[test]
    fn the_volume_status_follows_what_remains() {
        use AttachStatus as A;
        assert_eq!(status_for_attachments(&[]), (V::Available, A::Detached));
        assert_eq!(
            status_for_attachments(&[A::Reserved]),
            (V::Reserved, A::Detached)
        );
        assert_eq!(
            status_for_attachments(&[A::Reserved, A::Attaching]),
            (V::Attaching, A::Attaching)
        );
        assert_eq!(
            status_for_attachments(&[A::Attaching, A::Attached]),
            (V::InUse, A::Attached)
        );
    }
}
