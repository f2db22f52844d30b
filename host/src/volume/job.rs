//! Durable jobs: every asynchronous operation is written to the `jobs` table with the
//! status change that starts it, in one transaction, and run by the job runner (or, after a
//! crash, by recovery on the next start). A job names its operation in `kind` and carries
//! its arguments in `payload`; both decode into [`Job`], and a job that does not decode
//! fails loudly instead of running with made-up arguments.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::status::VolumeStatus;

/// One asynchronous operation and its arguments. The resource it acts on is the job row's
/// `resource_id`: a volume, or a snapshot for the snapshot jobs.
/// A create's attempt that failed on one backend: the backend (`HOST@BACKEND`) a tenant
/// may be told of, the pool it was placed on and the error, for the log and administrators.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PriorAttempt {
    pub backend: String,
    pub placed: String,
    pub error: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Job {
    /// Schedule and create a volume: empty, from a snapshot, or a clone. `attempts` are
    /// the failed attempts of hosts that handed the create on (see the create flow).
    CreateVolume {
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        attempts: Vec<PriorAttempt>,
        /// The Glance image the volume is made from (`imageRef`), when it is.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        image_id: Option<String>,
    },
    DeleteVolume,
    ExtendVolume {
        /// GiB.
        new_size: i64,
    },
    CreateSnapshot,
    DeleteSnapshot,
    /// Revert a volume to its latest snapshot (Cinder's `revert`, 3.40).
    RevertToSnapshot {
        snapshot_id: String,
    },
    /// Read the volume (or a snapshot of it) into the backup store; the resource is the
    /// backup.
    CreateBackup,
    /// Write a backup onto a volume: one made for it (`new_volume`, created first) or an
    /// existing one; the resource is the backup.
    RestoreBackup {
        volume_id: String,
        #[serde(default)]
        new_volume: bool,
    },
    /// Remove a backup's objects from the store, then its row.
    DeleteBackup,
    /// Move a volume to another backend's pool (`os-migrate_volume`, a retype that needs
    /// it, a drained backend): its copy is made there under `name_id`, the data copied
    /// through both local devices, then the volume points at the copy and the storage it
    /// left (`from`) is deleted. The volume keeps its id throughout.
    MigrateVolume {
        /// `HOST@BACKEND#POOL` (or `CLUSTER@BACKEND#POOL`).
        dest: String,
        /// The id the copy's storage is named after.
        name_id: String,
        /// The status the volume is held in while it moves, and the one it returns to.
        held: VolumeStatus,
        back: VolumeStatus,
        from: MovedFrom,
        /// A retype's new type, which the volume takes when the copy is complete.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        new_type_id: Option<String>,
    },
    /// Change a volume's type (`os-retype`): in place when its backend still suits the new
    /// type (the driver's retype), else, when `migration_policy` is `on-demand`, by a
    /// migration to a backend that does.
    RetypeVolume {
        new_type_id: String,
        /// `never` or `on-demand`.
        migration_policy: String,
        /// The status it returns to (`available` or `in-use`).
        back: VolumeStatus,
    },
    /// Take existing storage into management (Cinder's `manage_existing`): the driver
    /// sizes what `reference` names (Cinder's `ref`, as JSON text), the size is charged,
    /// then the driver renames it to the volume's own name.
    ManageExisting {
        reference: String,
    },
    /// Let go of a volume (Cinder's `os-unmanage`): the driver leaves its storage, the
    /// row goes and its usage is given back.
    UnmanageVolume,
    /// Write the volume's data into Glance image `image_id` (already created, `queued`)
    /// as `disk_format` (Cinder's `copy_volume_to_image`); the volume is `uploading` and
    /// returns to its previous status.
    UploadImage {
        image_id: String,
        disk_format: String,
    },
}

/// The storage a migrating volume leaves: where it was and what its driver knew of it,
/// to delete it once the volume points at its copy (also after a restart).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MovedFrom {
    /// `HOST@BACKEND#POOL`.
    pub host: String,
    /// The id its storage is named after.
    pub storage_id: String,
    #[serde(default)]
    pub provider_location: Option<String>,
    #[serde(default)]
    pub provider_auth: Option<String>,
}

/// What a job acts on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ResourceKind {
    Volume,
    Snapshot,
    Backup,
}

/// A job row that cannot be run.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum JobError {
    #[error("unknown job kind `{0}`; this host runs {kinds}", kinds = Job::KINDS.join(", "))]
    UnknownKind(String),
    #[error("malformed `{kind}` job: {reason}")]
    Malformed { kind: String, reason: String },
}

impl Job {
    /// Every kind this host runs.
    pub const KINDS: &'static [&'static str] = &[
        "create_volume",
        "delete_volume",
        "extend_volume",
        "create_snapshot",
        "delete_snapshot",
        "revert_to_snapshot",
        "create_backup",
        "restore_backup",
        "delete_backup",
        "migrate_volume",
        "retype_volume",
        "manage_existing",
        "unmanage_volume",
        "upload_image",
    ];

    /// The `kind` column.
    pub fn kind(&self) -> &'static str {
        match self {
            Job::CreateVolume { .. } => "create_volume",
            Job::DeleteVolume => "delete_volume",
            Job::ExtendVolume { .. } => "extend_volume",
            Job::CreateSnapshot => "create_snapshot",
            Job::DeleteSnapshot => "delete_snapshot",
            Job::RevertToSnapshot { .. } => "revert_to_snapshot",
            Job::CreateBackup => "create_backup",
            Job::RestoreBackup { .. } => "restore_backup",
            Job::DeleteBackup => "delete_backup",
            Job::MigrateVolume { .. } => "migrate_volume",
            Job::RetypeVolume { .. } => "retype_volume",
            Job::ManageExisting { .. } => "manage_existing",
            Job::UnmanageVolume => "unmanage_volume",
            Job::UploadImage { .. } => "upload_image",
        }
    }

    pub fn resource_kind(&self) -> ResourceKind {
        Job::resource_kind_of(self.kind()).unwrap_or(ResourceKind::Volume)
    }

    /// What a job of `kind` acts on, if this host knows the kind.
    pub fn resource_kind_of(kind: &str) -> Option<ResourceKind> {
        match kind {
            "create_snapshot" | "delete_snapshot" => Some(ResourceKind::Snapshot),
            "create_backup" | "restore_backup" | "delete_backup" => Some(ResourceKind::Backup),
            k if Job::KINDS.contains(&k) => Some(ResourceKind::Volume),
            _ => None,
        }
    }

    /// The `payload` column: the job's arguments and the request that asked for it.
    pub fn payload(&self, request_id: Option<&str>) -> String {
        let mut args = match serde_json::to_value(self) {
            Ok(Value::Object(map)) => map,
            _ => Map::new(),
        };
        args.remove("kind");
        if let Some(r) = request_id {
            args.insert("request_id".into(), Value::String(r.to_string()));
        }
        Value::Object(args).to_string()
    }

    /// Reads a job row's `kind` and `payload` back; also returns the request id it carries.
    pub fn decode(kind: &str, payload: &str) -> Result<(Job, Option<String>), JobError> {
        if !Job::KINDS.contains(&kind) {
            return Err(JobError::UnknownKind(kind.to_string()));
        }
        let malformed = |reason: String| JobError::Malformed {
            kind: kind.to_string(),
            reason,
        };
        let mut args = match serde_json::from_str::<Value>(payload) {
            Ok(Value::Object(map)) => map,
            Ok(other) => return Err(malformed(format!("payload {other} is not an object"))),
            Err(e) => return Err(malformed(format!("payload is not JSON: {e}"))),
        };
        let request_id = match args.remove("request_id") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => Some(s),
            Some(other) => return Err(malformed(format!("request_id {other} is not a string"))),
        };
        args.insert("kind".into(), Value::String(kind.to_string()));
        let job: Job =
            serde_json::from_value(Value::Object(args)).map_err(|e| malformed(e.to_string()))?;
        job.validate().map_err(malformed)?;
        Ok((job, request_id))
    }

    /// Arguments serde accepts but the operation cannot take.
    fn validate(&self) -> Result<(), String> {
        match self {
            Job::ExtendVolume { new_size } if *new_size < 1 => {
                Err(format!("new_size {new_size} is not a size in GiB"))
            }
            Job::RevertToSnapshot { snapshot_id } if snapshot_id.is_empty() => {
                Err("snapshot_id is empty".into())
            }
            Job::RestoreBackup { volume_id, .. } if volume_id.is_empty() => {
                Err("volume_id is empty".into())
            }
            Job::MigrateVolume { dest, name_id, .. } if dest.is_empty() || name_id.is_empty() => {
                Err("dest or name_id is empty".into())
            }
            Job::RetypeVolume {
                migration_policy, ..
            } if !["never", "on-demand"].contains(&migration_policy.as_str()) => Err(format!(
                "migration_policy {migration_policy} is neither never nor on-demand"
            )),
            Job::ManageExisting { reference } if reference.is_empty() => {
                Err("reference is empty".into())
            }
            Job::CreateVolume {
                image_id: Some(id), ..
            } if id.is_empty() => Err("image_id is empty".into()),
            Job::UploadImage { image_id, .. } if image_id.is_empty() => {
                Err("image_id is empty".into())
            }
            Job::UploadImage { disk_format, .. }
                if !["raw", "qcow2"].contains(&disk_format.as_str()) =>
            {
                Err(format!("disk_format {disk_format} is not raw or qcow2"))
            }
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_job_round_trips_through_its_row() {
        let jobs = [
            Job::CreateVolume {
                attempts: Vec::new(),
                image_id: None,
            },
            Job::CreateVolume {
                attempts: vec![PriorAttempt {
                    backend: "a@nfs".into(),
                    placed: "a@nfs#p".into(),
                    error: "full".into(),
                }],
                image_id: Some("img-1".into()),
            },
            Job::DeleteVolume,
            Job::ExtendVolume { new_size: 5 },
            Job::CreateSnapshot,
            Job::DeleteSnapshot,
            Job::RevertToSnapshot {
                snapshot_id: "s-1".into(),
            },
            Job::CreateBackup,
            Job::RestoreBackup {
                volume_id: "v-1".into(),
                new_volume: true,
            },
            Job::DeleteBackup,
            Job::MigrateVolume {
                dest: "h@b#p".into(),
                name_id: "n-1".into(),
                held: VolumeStatus::Maintenance,
                back: VolumeStatus::Available,
                from: MovedFrom {
                    host: "h@a#p".into(),
                    storage_id: "v-1".into(),
                    provider_location: Some("loc".into()),
                    provider_auth: None,
                },
                new_type_id: Some("t-1".into()),
            },
            Job::RetypeVolume {
                new_type_id: "t-2".into(),
                migration_policy: "on-demand".into(),
                back: VolumeStatus::InUse,
            },
            Job::ManageExisting {
                reference: r#"{"source-name":"old"}"#.into(),
            },
            Job::UnmanageVolume,
            Job::UploadImage {
                image_id: "img-2".into(),
                disk_format: "qcow2".into(),
            },
        ];
        assert_eq!(jobs.len(), Job::KINDS.len() + 1);
        for job in jobs {
            assert!(Job::KINDS.contains(&job.kind()));
            let payload = job.payload(Some("req-1"));
            let (back, request) = Job::decode(job.kind(), &payload).unwrap();
            assert_eq!(back, job);
            assert_eq!(request.as_deref(), Some("req-1"));
        }
    }

    #[test]
    fn rows_written_before_typed_jobs_still_decode() {
        let (job, req) =
            Job::decode("extend_volume", r#"{"new_size": 3, "request_id": "req-x"}"#).unwrap();
        assert_eq!(job, Job::ExtendVolume { new_size: 3 });
        assert_eq!(req.as_deref(), Some("req-x"));
        let (job, _) = Job::decode("create_volume", r#"{"request_id": "req-y"}"#).unwrap();
        assert_eq!(
            job,
            Job::CreateVolume {
                attempts: vec![],
                image_id: None
            }
        );
    }

    #[test]
    fn an_unknown_or_malformed_job_is_refused_with_its_reason() {
        let e = Job::decode("defragment_volume", "{}").unwrap_err();
        assert!(matches!(e, JobError::UnknownKind(_)));
        assert!(
            e.to_string()
                .contains("unknown job kind `defragment_volume`"),
            "{e}"
        );
        assert!(e.to_string().contains("extend_volume"), "{e}");

        for (payload, why) in [
            ("{}", "missing field `new_size`"),
            (r#"{"new_size": "big"}"#, "invalid type"),
            (r#"{"new_size": 0}"#, "new_size 0 is not a size"),
            (r#"{"new_size": 2, "extra": 1}"#, "unknown field `extra`"),
            ("[1]", "is not an object"),
            ("not json", "not JSON"),
        ] {
            let e = Job::decode("extend_volume", payload).unwrap_err();
            assert!(matches!(e, JobError::Malformed { .. }), "{payload}: {e}");
            assert!(e.to_string().contains(why), "{payload}: {e}");
        }
    }
}
