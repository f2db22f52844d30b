//! The driver operations the rest of the host calls, one method each, in the host's own
//! types: each converts its arguments to the bindings, runs the call on a pooled instance
//! (see [`DriverPool::call`]) and converts the answer back. A backup driver's object calls
//! block instead: the backup engine makes them from its own threads, several at once
//! (see [`DriverPool::call_blocking`]).

use std::sync::Arc;

use super::latest::ashlar::driver::types::DriverError;
use super::{CallError, DriverPool, convert};
use crate::driver::{
    ConnectionInfo, Connector, HealthReport, ManageableSnapshot, ManageableVolume, ModelUpdate,
    Snapshot, StoredObject, Volume, VolumeStats,
};

impl DriverPool {
    /// Cinder's `check_for_setup_error`, for volume and target drivers alike.
    pub async fn check_for_setup_error(self: &Arc<Self>) -> Result<(), CallError> {
        self.call("check-for-setup-error", |s, d| d.check_for_setup_error(s))
            .await
    }

    pub async fn get_volume_stats(
        self: &Arc<Self>,
        refresh: bool,
    ) -> Result<VolumeStats, CallError> {
        self.call("get-volume-stats", move |s, d| {
            d.get_volume_stats(s, refresh)
        })
        .await
        .map(convert::volume_stats)
    }

    pub async fn create_volume(self: &Arc<Self>, v: &Volume) -> Result<ModelUpdate, CallError> {
        let v = convert::volume(v);
        self.call("create-volume", move |s, d| d.create_volume(s, &v))
            .await
            .map(convert::model_update)
    }

    pub async fn delete_volume(self: &Arc<Self>, v: &Volume) -> Result<(), CallError> {
        let v = convert::volume(v);
        self.call("delete-volume", move |s, d| d.delete_volume(s, &v))
            .await
    }

    pub async fn extend_volume(
        self: &Arc<Self>,
        v: &Volume,
        new_size_gib: u64,
    ) -> Result<(), CallError> {
        let v = convert::volume(v);
        self.call("extend-volume", move |s, d| {
            d.extend_volume(s, &v, new_size_gib)
        })
        .await
    }

    pub async fn create_snapshot(
        self: &Arc<Self>,
        snap: &Snapshot,
        v: &Volume,
    ) -> Result<ModelUpdate, CallError> {
        let (snap, v) = (convert::snapshot(snap), convert::volume(v));
        self.call("create-snapshot", move |s, d| {
            d.create_snapshot(s, &snap, &v)
        })
        .await
        .map(convert::model_update)
    }

    pub async fn delete_snapshot(
        self: &Arc<Self>,
        snap: &Snapshot,
        v: &Volume,
    ) -> Result<(), CallError> {
        let (snap, v) = (convert::snapshot(snap), convert::volume(v));
        self.call("delete-snapshot", move |s, d| {
            d.delete_snapshot(s, &snap, &v)
        })
        .await
    }

    pub async fn create_volume_from_snapshot(
        self: &Arc<Self>,
        v: &Volume,
        snap: &Snapshot,
    ) -> Result<ModelUpdate, CallError> {
        let (v, snap) = (convert::volume(v), convert::snapshot(snap));
        self.call("create-volume-from-snapshot", move |s, d| {
            d.create_volume_from_snapshot(s, &v, &snap)
        })
        .await
        .map(convert::model_update)
    }

    pub async fn create_cloned_volume(
        self: &Arc<Self>,
        v: &Volume,
        source: &Volume,
    ) -> Result<ModelUpdate, CallError> {
        let (v, source) = (convert::volume(v), convert::volume(source));
        self.call("create-cloned-volume", move |s, d| {
            d.create_cloned_volume(s, &v, &source)
        })
        .await
        .map(convert::model_update)
    }

    pub async fn revert_to_snapshot(
        self: &Arc<Self>,
        v: &Volume,
        snap: &Snapshot,
    ) -> Result<(), CallError> {
        let (v, snap) = (convert::volume(v), convert::snapshot(snap));
        self.call("revert-to-snapshot", move |s, d| {
            d.revert_to_snapshot(s, &v, &snap)
        })
        .await
    }

    pub async fn manage_existing(
        self: &Arc<Self>,
        v: &Volume,
        reference: &str,
    ) -> Result<ModelUpdate, CallError> {
        let (v, reference) = (convert::volume(v), reference.to_string());
        self.call("manage-existing", move |s, d| {
            d.manage_existing(s, &v, &reference)
        })
        .await
        .map(convert::model_update)
    }

    /// Cinder's `manage_existing_get_size`: the size in GiB (rounded up) of what
    /// `reference` names on the backend.
    pub async fn manage_existing_get_size(
        self: &Arc<Self>,
        v: &Volume,
        reference: &str,
    ) -> Result<u64, CallError> {
        let (v, reference) = (convert::volume(v), reference.to_string());
        self.call("manage-existing-get-size", move |s, d| {
            d.manage_existing_get_size(s, &v, &reference)
        })
        .await
    }

    /// Cinder's `unmanage`: the driver lets go of the volume and leaves its storage.
    pub async fn unmanage(self: &Arc<Self>, v: &Volume) -> Result<(), CallError> {
        let v = convert::volume(v);
        self.call("unmanage", move |s, d| d.unmanage(s, &v)).await
    }

    /// The driver's retype: the model update of a volume it changed in place to suit the
    /// new type, or `None` when the host must migrate it.
    pub async fn retype(
        self: &Arc<Self>,
        v: &Volume,
        new_type_name: &str,
        new_extra_specs: &[(String, String)],
    ) -> Result<Option<ModelUpdate>, CallError> {
        let (v, name, specs) = (
            convert::volume(v),
            new_type_name.to_string(),
            new_extra_specs.to_vec(),
        );
        self.call("retype", move |s, d| d.retype(s, &v, &name, &specs))
            .await
            .map(|m| m.map(convert::model_update))
    }

    pub async fn get_manageable_volumes(
        self: &Arc<Self>,
    ) -> Result<Vec<ManageableVolume>, CallError> {
        self.call("get-manageable-volumes", |s, d| d.get_manageable_volumes(s))
            .await
            .map(|l| l.into_iter().map(convert::manageable_volume).collect())
    }

    /// What snapshots the backend holds that could be managed (contract 0.3).
    pub async fn get_manageable_snapshots(
        self: &Arc<Self>,
    ) -> Result<Vec<ManageableSnapshot>, CallError> {
        self.call("get-manageable-snapshots", |s, d| {
            d.get_manageable_snapshots(s)
        })
        .await
        .map(|l| l.into_iter().map(convert::manageable_snapshot).collect())
    }

    /// A volume driver's own export (drivers without a target).
    pub async fn create_export(
        self: &Arc<Self>,
        v: &Volume,
        connector: Option<&Connector>,
    ) -> Result<ModelUpdate, CallError> {
        let (v, c) = (convert::volume(v), connector.map(convert::connector));
        self.call("create-export", move |s, d| {
            d.create_export(s, &v, c.as_ref())
        })
        .await
        .map(convert::model_update)
    }

    pub async fn remove_export(self: &Arc<Self>, v: &Volume) -> Result<(), CallError> {
        let v = convert::volume(v);
        self.call("remove-export", move |s, d| d.remove_export(s, &v))
            .await
    }

    pub async fn initialize_connection(
        self: &Arc<Self>,
        v: &Volume,
        connector: &Connector,
    ) -> Result<ConnectionInfo, CallError> {
        let (v, c) = (convert::volume(v), convert::connector(connector));
        self.call("initialize-connection", move |s, d| {
            d.initialize_connection(s, &v, &c)
        })
        .await
        .map(convert::connection_info)
    }

    /// Ends `connector`'s connection, or every connection for `None` (a force detach).
    pub async fn terminate_connection(
        self: &Arc<Self>,
        v: &Volume,
        connector: Option<&Connector>,
    ) -> Result<(), CallError> {
        let (v, c) = (convert::volume(v), connector.map(convert::connector));
        self.call("terminate-connection", move |s, d| {
            d.terminate_connection(s, &v, c.as_ref())
        })
        .await
    }

    /// Target driver: exports `device_path` (the volume's local device or file).
    pub async fn target_create_export(
        self: &Arc<Self>,
        v: &Volume,
        device_path: &str,
    ) -> Result<ModelUpdate, CallError> {
        let (v, device) = (convert::volume(v), device_path.to_string());
        self.call("create-export", move |s, d| {
            d.target_create_export(s, &v, &device)
        })
        .await
        .map(convert::model_update)
    }

    pub async fn target_remove_export(self: &Arc<Self>, v: &Volume) -> Result<(), CallError> {
        let v = convert::volume(v);
        self.call("remove-export", move |s, d| d.target_remove_export(s, &v))
            .await
    }

    pub async fn target_initialize_connection(
        self: &Arc<Self>,
        v: &Volume,
        connector: &Connector,
    ) -> Result<ConnectionInfo, CallError> {
        let (v, c) = (convert::volume(v), convert::connector(connector));
        self.call("initialize-connection", move |s, d| {
            d.target_initialize_connection(s, &v, &c)
        })
        .await
        .map(convert::connection_info)
    }

    pub async fn target_terminate_connection(
        self: &Arc<Self>,
        v: &Volume,
        connector: Option<&Connector>,
    ) -> Result<(), CallError> {
        let (v, c) = (convert::volume(v), connector.map(convert::connector));
        self.call("terminate-connection", move |s, d| {
            d.target_terminate_connection(s, &v, c.as_ref())
        })
        .await
    }

    /// The optional health export, or `None` for a driver whose contract predates it.
    pub async fn health(self: &Arc<Self>) -> Result<Option<HealthReport>, CallError> {
        self.call("health", |s, d| match d.health(s) {
            Some(answer) => answer.map(|r| r.map(Some)),
            None => Ok(Ok(None)),
        })
        .await
        .map(|h| h.map(convert::health_report))
    }

    /// A probe of whether the driver still serves: its health export when it has one (an
    /// unhealthy report fails as `backend-unavailable`), else its setup check.
    pub async fn probe(self: &Arc<Self>) -> Result<(), CallError> {
        self.call("health", |s, d| match d.health(s) {
            Some(answer) => answer.map(|r| {
                r.and_then(|h| {
                    if h.healthy {
                        Ok(())
                    } else {
                        Err(DriverError::BackendUnavailable(h.detail))
                    }
                })
            }),
            None => d.check_for_setup_error(s),
        })
        .await
    }

    /// Backup driver: creates `container` if it is missing (an existing one is fine).
    /// Blocks; call it from a blocking thread.
    pub fn put_container(&self, container: &str) -> Result<(), CallError> {
        self.call_blocking("put-container", |s, d| d.backup_put_container(s, container))
    }

    /// Backup driver: stores `data` as `name` in `container`, replacing it. Blocks.
    pub fn put_object(&self, container: &str, name: &str, data: &[u8]) -> Result<(), CallError> {
        self.call_blocking("put-object", |s, d| {
            d.backup_put_object(s, container, name, data)
        })
    }

    /// Backup driver: the whole object; the driver's `not-found` when there is none. Blocks.
    pub fn get_object(&self, container: &str, name: &str) -> Result<Vec<u8>, CallError> {
        self.call_blocking("get-object", |s, d| d.backup_get_object(s, container, name))
    }

    /// Backup driver: removes the object; a missing one is not an error. Blocks.
    pub fn delete_object(&self, container: &str, name: &str) -> Result<(), CallError> {
        self.call_blocking("delete-object", |s, d| {
            d.backup_delete_object(s, container, name)
        })
    }

    /// Backup driver: one page of the objects under `prefix` after `marker`. Blocks.
    pub fn list_objects(
        &self,
        container: &str,
        prefix: &str,
        marker: Option<&str>,
        limit: u32,
    ) -> Result<Vec<StoredObject>, CallError> {
        self.call_blocking("list-objects", |s, d| {
            d.backup_list_objects(s, container, prefix, marker, limit)
        })
        .map(|l| l.into_iter().map(convert::stored_object).collect())
    }
}
