//! Forwards the generated component exports to the registered [`VolumeDriver`].

use crate::bindings::ashlar::driver::types::{
    ConnectionInfo, Connector, HealthReport, ManageableSnapshot, ManageableVolume, ModelUpdate,
    Snapshot, Volume, VolumeStats,
};
use crate::bindings::exports::ashlar::driver::{
    volume_driver_core, volume_driver_extras, volume_driver_health,
};
use crate::{DriverError, VolumeDriver, VolumeDriverAdapter, with_driver};

type R<T> = Result<T, DriverError>;

impl<T: VolumeDriver> volume_driver_core::Guest for VolumeDriverAdapter<T> {
    fn do_setup() -> R<()> {
        with_driver::<T, _>(|d| d.do_setup())
    }
    fn check_for_setup_error() -> R<()> {
        with_driver::<T, _>(|d| d.check_for_setup_error())
    }
    fn get_volume_stats(refresh: bool) -> R<VolumeStats> {
        with_driver::<T, _>(|d| d.get_volume_stats(refresh))
    }
    fn create_volume(volume: Volume) -> R<ModelUpdate> {
        with_driver::<T, _>(|d| d.create_volume(volume))
    }
    fn delete_volume(volume: Volume) -> R<()> {
        with_driver::<T, _>(|d| d.delete_volume(volume))
    }
    fn extend_volume(volume: Volume, new_size_gib: u64) -> R<()> {
        with_driver::<T, _>(|d| d.extend_volume(volume, new_size_gib))
    }
    fn create_snapshot(snapshot: Snapshot, volume: Volume) -> R<ModelUpdate> {
        with_driver::<T, _>(|d| d.create_snapshot(snapshot, volume))
    }
    fn delete_snapshot(snapshot: Snapshot, volume: Volume) -> R<()> {
        with_driver::<T, _>(|d| d.delete_snapshot(snapshot, volume))
    }
    fn create_volume_from_snapshot(volume: Volume, snapshot: Snapshot) -> R<ModelUpdate> {
        with_driver::<T, _>(|d| d.create_volume_from_snapshot(volume, snapshot))
    }
    fn create_cloned_volume(volume: Volume, source: Volume) -> R<ModelUpdate> {
        with_driver::<T, _>(|d| d.create_cloned_volume(volume, source))
    }
    fn create_export(volume: Volume, connector: Option<Connector>) -> R<ModelUpdate> {
        with_driver::<T, _>(|d| d.create_export(volume, connector))
    }
    fn remove_export(volume: Volume) -> R<()> {
        with_driver::<T, _>(|d| d.remove_export(volume))
    }
    fn initialize_connection(volume: Volume, connector: Connector) -> R<ConnectionInfo> {
        with_driver::<T, _>(|d| d.initialize_connection(volume, connector))
    }
    fn terminate_connection(volume: Volume, connector: Option<Connector>) -> R<()> {
        with_driver::<T, _>(|d| d.terminate_connection(volume, connector))
    }
}

impl<T: VolumeDriver> volume_driver_extras::Guest for VolumeDriverAdapter<T> {
    fn revert_to_snapshot(volume: Volume, snapshot: Snapshot) -> R<()> {
        with_driver::<T, _>(|d| d.revert_to_snapshot(volume, snapshot))
    }
    fn manage_existing(volume: Volume, reference: String) -> R<ModelUpdate> {
        with_driver::<T, _>(|d| d.manage_existing(volume, reference))
    }
    fn manage_existing_get_size(volume: Volume, reference: String) -> R<u64> {
        with_driver::<T, _>(|d| d.manage_existing_get_size(volume, reference))
    }
    fn unmanage(volume: Volume) -> R<()> {
        with_driver::<T, _>(|d| d.unmanage(volume))
    }
    fn get_manageable_volumes() -> R<Vec<ManageableVolume>> {
        with_driver::<T, _>(|d| d.get_manageable_volumes())
    }
    fn retype(
        volume: Volume,
        new_type_name: String,
        new_extra_specs: Vec<(String, String)>,
    ) -> R<Option<ModelUpdate>> {
        with_driver::<T, _>(|d| d.retype(volume, new_type_name, new_extra_specs))
    }
    fn get_manageable_snapshots() -> R<Vec<ManageableSnapshot>> {
        with_driver::<T, _>(|d| d.get_manageable_snapshots())
    }
}

impl<T: VolumeDriver> volume_driver_health::Guest for VolumeDriverAdapter<T> {
    fn health() -> R<HealthReport> {
        with_driver::<T, _>(|d| d.health())
    }
}
