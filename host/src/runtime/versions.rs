//! One type over every contract version the host serves: a driver built for 0.1.0, 0.2.0
//! or 0.3.0 is called the same way, in the latest types, and each call goes to the
//! bindings of the version the component was built against (converted by `compat` for the
//! older ones). New versions add a variant here.

use wasmtime::Store;
use wasmtime::component::InstancePre;

use super::compat::{self, up};
use super::component::contract_version;
use super::host_calls::HostState;
use super::since_v0_1_0 as v0_1;
use super::since_v0_2_0 as v0_2;
use super::since_v0_3_0 as v0_3;
use super::since_v0_3_0::ashlar::driver::types::{
    ConnectionInfo, Connector, DriverError, HealthReport, ManageableSnapshot, ManageableVolume,
    ModelUpdate, Snapshot, Volume, VolumeStats,
};
use super::since_v0_3_0::backup::exports::ashlar::driver::backup_driver_core::ObjectInfo;
use crate::capabilities::World;

/// Every contract version served, oldest first.
pub const SERVED: &[semver::Version] = &[v0_1::VERSION, v0_2::VERSION, v0_3::VERSION];

/// The served version a component's stamped version falls under (same major and minor).
pub fn served(version: &semver::Version) -> Option<&'static semver::Version> {
    SERVED
        .iter()
        .find(|s| s.major == version.major && s.minor == version.minor)
}

pub fn served_list() -> String {
    SERVED
        .iter()
        .map(|v| format!("{}.{}", v.major, v.minor))
        .collect::<Vec<_>>()
        .join(", ")
}

/// What this host makes of the contract a component was built against.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Contract {
    /// Served: `stamped` falls under `served`.
    Served {
        stamped: semver::Version,
        served: &'static semver::Version,
    },
    /// Built against a contract this host does not serve.
    NotServed(semver::Version),
    /// No contract version stamped: not built with the Ashlar SDK.
    Unstamped,
    /// Not a component whose sections can be read.
    Unreadable(String),
}

/// The one contract check: loading, `ashlar plugin validate` and `inspect` all ask it.
pub fn contract_of(wasm: &[u8]) -> Contract {
    match contract_version(wasm) {
        Ok(Some(v)) => match served(&v) {
            Some(served) => Contract::Served { stamped: v, served },
            None => Contract::NotServed(v),
        },
        Ok(None) => Contract::Unstamped,
        Err(e) => Contract::Unreadable(e),
    }
}

/// The verdict in words, as `ashlar plugin inspect` shows it.
impl std::fmt::Display for Contract {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Contract::Served { stamped, .. } => write!(f, "{stamped} (served here)"),
            Contract::NotServed(v) => {
                write!(f, "{v} (NOT served: this host serves {})", served_list())
            }
            Contract::Unstamped => f.write_str(
                "none: not built with the Ashlar SDK (a component built otherwise is stamped with `ashlar plugin stamp`)",
            ),
            Contract::Unreadable(e) => write!(f, "unreadable: {e}"),
        }
    }
}

pub enum DriverPre {
    V0_1(v0_1::VolumeDriverPre<HostState>),
    V0_2(v0_2::VolumeDriverPre<HostState>),
    V0_3(v0_3::VolumeDriverPre<HostState>),
    /// A `target-driver` component built for contract 0.2 (the first to have the world).
    Target0_2(v0_2::target::TargetDriverPre<HostState>),
    Target(v0_3::target::TargetDriverPre<HostState>),
    /// A `backup-driver` component built for contract 0.2.
    Backup0_2(v0_2::backup::BackupDriverPre<HostState>),
    Backup(v0_3::backup::BackupDriverPre<HostState>),
}

pub enum Driver {
    V0_1(v0_1::VolumeDriver),
    V0_2(v0_2::VolumeDriver),
    V0_3(v0_3::VolumeDriver),
    Target0_2(v0_2::target::TargetDriver),
    Target(v0_3::target::TargetDriver),
    Backup0_2(v0_2::backup::BackupDriver),
    Backup(v0_3::backup::BackupDriver),
}

impl DriverPre {
    /// Checks the component's exports against the bindings of `contract` and `world`.
    pub fn new(
        contract: &semver::Version,
        world: World,
        pre: InstancePre<HostState>,
    ) -> wasmtime::Result<Self> {
        let minor = contract.minor;
        Ok(match world {
            World::TargetDriver | World::BackupDriver if minor < 2 => {
                return Err(wasmtime::format_err!(
                    "{world} components are served from contract 0.2 on; rebuild the component with a newer SDK"
                ));
            }
            World::TargetDriver if minor == 2 => {
                DriverPre::Target0_2(v0_2::target::TargetDriverPre::new(pre)?)
            }
            World::TargetDriver => DriverPre::Target(v0_3::target::TargetDriverPre::new(pre)?),
            World::BackupDriver if minor == 2 => {
                DriverPre::Backup0_2(v0_2::backup::BackupDriverPre::new(pre)?)
            }
            World::BackupDriver => DriverPre::Backup(v0_3::backup::BackupDriverPre::new(pre)?),
            World::VolumeDriver if minor == 1 => DriverPre::V0_1(v0_1::VolumeDriverPre::new(pre)?),
            World::VolumeDriver if minor == 2 => DriverPre::V0_2(v0_2::VolumeDriverPre::new(pre)?),
            World::VolumeDriver => DriverPre::V0_3(v0_3::VolumeDriverPre::new(pre)?),
        })
    }

    pub fn instantiate(&self, store: &mut Store<HostState>) -> wasmtime::Result<Driver> {
        Ok(match self {
            DriverPre::V0_1(p) => Driver::V0_1(p.instantiate(store)?),
            DriverPre::V0_2(p) => Driver::V0_2(p.instantiate(store)?),
            DriverPre::V0_3(p) => Driver::V0_3(p.instantiate(store)?),
            DriverPre::Target0_2(p) => Driver::Target0_2(p.instantiate(store)?),
            DriverPre::Target(p) => Driver::Target(p.instantiate(store)?),
            DriverPre::Backup0_2(p) => Driver::Backup0_2(p.instantiate(store)?),
            DriverPre::Backup(p) => Driver::Backup(p.instantiate(store)?),
        })
    }
}

type Call<T> = wasmtime::Result<Result<T, DriverError>>;

/// What a volume-driver call on a target driver (or the reverse) answers: the host never
/// makes one, but the types allow it.
fn wrong_world<T>(wanted: &str) -> Call<T> {
    Ok(Err(DriverError::NotSupported(format!(
        "this component is not a {wanted}"
    ))))
}

/// One call of a volume-driver interface: `$latest` on a 0.3 driver, `$old` (whose
/// arguments and answer `compat` converts) on a 0.1 or 0.2 one. `$d` is the interface.
macro_rules! volume {
    ($self:ident, $iface:ident, |$d:ident| $latest:expr, old: $old:expr) => {
        match $self {
            Driver::V0_3(d) => {
                let $d = d.$iface();
                $latest
            }
            Driver::V0_2(d) => {
                let $d = d.$iface();
                $old
            }
            Driver::V0_1(d) => {
                let $d = d.$iface();
                $old
            }
            _ => wrong_world("volume driver"),
        }
    };
}

/// The same for the target world, 0.3 or 0.2.
macro_rules! target {
    ($self:ident, |$d:ident| $latest:expr, old: $old:expr) => {
        match $self {
            Driver::Target(d) => {
                let $d = d.ashlar_driver_target_driver_core();
                $latest
            }
            Driver::Target0_2(d) => {
                let $d = d.ashlar_driver_target_driver_core();
                $old
            }
            _ => wrong_world("target driver"),
        }
    };
}

/// The same for the backup world, 0.3 or 0.2.
macro_rules! backup {
    ($self:ident, |$d:ident| $latest:expr, old: $old:expr) => {
        match $self {
            Driver::Backup(d) => {
                let $d = d.ashlar_driver_backup_driver_core();
                $latest
            }
            Driver::Backup0_2(d) => {
                let $d = d.ashlar_driver_backup_driver_core();
                $old
            }
            _ => wrong_world("backup driver"),
        }
    };
}

impl Driver {
    pub fn do_setup(&self, s: &mut Store<HostState>) -> Call<()> {
        match self {
            Driver::Target(_) | Driver::Target0_2(_) => {
                target!(self, |d| d.call_do_setup(s), old: up(d.call_do_setup(s)))
            }
            Driver::Backup(_) | Driver::Backup0_2(_) => {
                backup!(self, |d| d.call_do_setup(s), old: up(d.call_do_setup(s)))
            }
            _ => volume!(self, ashlar_driver_volume_driver_core,
                |d| d.call_do_setup(s), old: up(d.call_do_setup(s))),
        }
    }
    pub fn check_for_setup_error(&self, s: &mut Store<HostState>) -> Call<()> {
        match self {
            Driver::Target(_) | Driver::Target0_2(_) => target!(self,
                |d| d.call_check_for_setup_error(s), old: up(d.call_check_for_setup_error(s))),
            Driver::Backup(_) | Driver::Backup0_2(_) => backup!(self,
                |d| d.call_check_for_setup_error(s), old: up(d.call_check_for_setup_error(s))),
            _ => volume!(self, ashlar_driver_volume_driver_core,
                |d| d.call_check_for_setup_error(s), old: up(d.call_check_for_setup_error(s))),
        }
    }

    /// The health probe: every world's from 0.3, a volume driver's from 0.2; `None` for a
    /// driver without one (probed with check-for-setup-error instead).
    pub fn health(&self, s: &mut Store<HostState>) -> Option<Call<HealthReport>> {
        Some(match self {
            Driver::V0_3(d) => d.ashlar_driver_volume_driver_health().call_health(s),
            Driver::V0_2(d) => up(d.ashlar_driver_volume_driver_health().call_health(s)),
            Driver::Target(d) => d.ashlar_driver_target_driver_core().call_health(s),
            Driver::Backup(d) => d.ashlar_driver_backup_driver_core().call_health(s),
            Driver::V0_1(_) | Driver::Target0_2(_) | Driver::Backup0_2(_) => return None,
        })
    }

    /// Target driver: exports `device_path` (the volume's local device or file).
    pub fn target_create_export(
        &self,
        s: &mut Store<HostState>,
        v: &Volume,
        device_path: &str,
    ) -> Call<ModelUpdate> {
        target!(self, |d| d.call_create_export(s, v, device_path),
            old: up(d.call_create_export(s, &compat::volume(v), device_path)))
    }
    pub fn target_remove_export(&self, s: &mut Store<HostState>, v: &Volume) -> Call<()> {
        target!(self, |d| d.call_remove_export(s, v),
            old: up(d.call_remove_export(s, &compat::volume(v))))
    }
    pub fn target_initialize_connection(
        &self,
        s: &mut Store<HostState>,
        v: &Volume,
        c: &Connector,
    ) -> Call<ConnectionInfo> {
        target!(self, |d| d.call_initialize_connection(s, v, c),
            old: up(d.call_initialize_connection(s, &compat::volume(v), &compat::connector(c))))
    }
    pub fn target_terminate_connection(
        &self,
        s: &mut Store<HostState>,
        v: &Volume,
        c: Option<&Connector>,
    ) -> Call<()> {
        target!(self, |d| d.call_terminate_connection(s, v, c),
            old: up(d.call_terminate_connection(s, &compat::volume(v), c.map(compat::connector).as_ref())))
    }
    /// Backup driver: creates `container` if it is missing.
    pub fn backup_put_container(&self, s: &mut Store<HostState>, container: &str) -> Call<()> {
        backup!(self, |d| d.call_put_container(s, container),
            old: up(d.call_put_container(s, container)))
    }
    pub fn backup_put_object(
        &self,
        s: &mut Store<HostState>,
        container: &str,
        name: &str,
        data: &[u8],
    ) -> Call<()> {
        backup!(self, |d| d.call_put_object(s, container, name, data),
            old: up(d.call_put_object(s, container, name, data)))
    }
    pub fn backup_get_object(
        &self,
        s: &mut Store<HostState>,
        container: &str,
        name: &str,
    ) -> Call<Vec<u8>> {
        backup!(self, |d| d.call_get_object(s, container, name),
            old: d.call_get_object(s, container, name).map(|r| r.map_err(compat::Up::up)))
    }
    pub fn backup_delete_object(
        &self,
        s: &mut Store<HostState>,
        container: &str,
        name: &str,
    ) -> Call<()> {
        backup!(self, |d| d.call_delete_object(s, container, name),
            old: up(d.call_delete_object(s, container, name)))
    }
    pub fn backup_list_objects(
        &self,
        s: &mut Store<HostState>,
        container: &str,
        prefix: &str,
        marker: Option<&str>,
        limit: u32,
    ) -> Call<Vec<ObjectInfo>> {
        backup!(self, |d| d.call_list_objects(s, container, prefix, marker, limit),
            old: up(d.call_list_objects(s, container, prefix, marker, limit)))
    }

    pub fn get_volume_stats(&self, s: &mut Store<HostState>, refresh: bool) -> Call<VolumeStats> {
        volume!(self, ashlar_driver_volume_driver_core,
            |d| d.call_get_volume_stats(s, refresh), old: up(d.call_get_volume_stats(s, refresh)))
    }
    pub fn create_volume(&self, s: &mut Store<HostState>, v: &Volume) -> Call<ModelUpdate> {
        volume!(self, ashlar_driver_volume_driver_core,
            |d| d.call_create_volume(s, v), old: up(d.call_create_volume(s, &compat::volume(v))))
    }
    pub fn delete_volume(&self, s: &mut Store<HostState>, v: &Volume) -> Call<()> {
        volume!(self, ashlar_driver_volume_driver_core,
            |d| d.call_delete_volume(s, v), old: up(d.call_delete_volume(s, &compat::volume(v))))
    }
    pub fn extend_volume(
        &self,
        s: &mut Store<HostState>,
        v: &Volume,
        new_size_gib: u64,
    ) -> Call<()> {
        volume!(self, ashlar_driver_volume_driver_core,
            |d| d.call_extend_volume(s, v, new_size_gib),
            old: up(d.call_extend_volume(s, &compat::volume(v), new_size_gib)))
    }
    pub fn create_snapshot(
        &self,
        s: &mut Store<HostState>,
        snap: &Snapshot,
        v: &Volume,
    ) -> Call<ModelUpdate> {
        volume!(self, ashlar_driver_volume_driver_core,
            |d| d.call_create_snapshot(s, snap, v),
            old: up(d.call_create_snapshot(s, &compat::snapshot(snap), &compat::volume(v))))
    }
    pub fn delete_snapshot(
        &self,
        s: &mut Store<HostState>,
        snap: &Snapshot,
        v: &Volume,
    ) -> Call<()> {
        volume!(self, ashlar_driver_volume_driver_core,
            |d| d.call_delete_snapshot(s, snap, v),
            old: up(d.call_delete_snapshot(s, &compat::snapshot(snap), &compat::volume(v))))
    }
    pub fn create_volume_from_snapshot(
        &self,
        s: &mut Store<HostState>,
        v: &Volume,
        snap: &Snapshot,
    ) -> Call<ModelUpdate> {
        volume!(self, ashlar_driver_volume_driver_core,
            |d| d.call_create_volume_from_snapshot(s, v, snap),
            old: up(d.call_create_volume_from_snapshot(s, &compat::volume(v), &compat::snapshot(snap))))
    }
    pub fn create_cloned_volume(
        &self,
        s: &mut Store<HostState>,
        v: &Volume,
        src: &Volume,
    ) -> Call<ModelUpdate> {
        volume!(self, ashlar_driver_volume_driver_core,
            |d| d.call_create_cloned_volume(s, v, src),
            old: up(d.call_create_cloned_volume(s, &compat::volume(v), &compat::volume(src))))
    }
    pub fn create_export(
        &self,
        s: &mut Store<HostState>,
        v: &Volume,
        c: Option<&Connector>,
    ) -> Call<ModelUpdate> {
        volume!(self, ashlar_driver_volume_driver_core,
            |d| d.call_create_export(s, v, c),
            old: up(d.call_create_export(s, &compat::volume(v), c.map(compat::connector).as_ref())))
    }
    pub fn remove_export(&self, s: &mut Store<HostState>, v: &Volume) -> Call<()> {
        volume!(self, ashlar_driver_volume_driver_core,
            |d| d.call_remove_export(s, v), old: up(d.call_remove_export(s, &compat::volume(v))))
    }
    pub fn initialize_connection(
        &self,
        s: &mut Store<HostState>,
        v: &Volume,
        c: &Connector,
    ) -> Call<ConnectionInfo> {
        volume!(self, ashlar_driver_volume_driver_core,
            |d| d.call_initialize_connection(s, v, c),
            old: up(d.call_initialize_connection(s, &compat::volume(v), &compat::connector(c))))
    }
    pub fn terminate_connection(
        &self,
        s: &mut Store<HostState>,
        v: &Volume,
        c: Option<&Connector>,
    ) -> Call<()> {
        volume!(self, ashlar_driver_volume_driver_core,
            |d| d.call_terminate_connection(s, v, c),
            old: up(d.call_terminate_connection(s, &compat::volume(v), c.map(compat::connector).as_ref())))
    }
    pub fn revert_to_snapshot(
        &self,
        s: &mut Store<HostState>,
        v: &Volume,
        snap: &Snapshot,
    ) -> Call<()> {
        volume!(self, ashlar_driver_volume_driver_extras,
            |d| d.call_revert_to_snapshot(s, v, snap),
            old: up(d.call_revert_to_snapshot(s, &compat::volume(v), &compat::snapshot(snap))))
    }
    pub fn manage_existing(
        &self,
        s: &mut Store<HostState>,
        v: &Volume,
        reference: &str,
    ) -> Call<ModelUpdate> {
        volume!(self, ashlar_driver_volume_driver_extras,
            |d| d.call_manage_existing(s, v, reference),
            old: up(d.call_manage_existing(s, &compat::volume(v), reference)))
    }
    pub fn manage_existing_get_size(
        &self,
        s: &mut Store<HostState>,
        v: &Volume,
        reference: &str,
    ) -> Call<u64> {
        volume!(self, ashlar_driver_volume_driver_extras,
            |d| d.call_manage_existing_get_size(s, v, reference),
            old: up(d.call_manage_existing_get_size(s, &compat::volume(v), reference)))
    }
    pub fn unmanage(&self, s: &mut Store<HostState>, v: &Volume) -> Call<()> {
        volume!(self, ashlar_driver_volume_driver_extras,
            |d| d.call_unmanage(s, v), old: up(d.call_unmanage(s, &compat::volume(v))))
    }
    /// The model update of a volume retyped in place, or `None`: migrate it.
    pub fn retype(
        &self,
        s: &mut Store<HostState>,
        v: &Volume,
        new_type_name: &str,
        new_extra_specs: &[(String, String)],
    ) -> Call<Option<ModelUpdate>> {
        volume!(self, ashlar_driver_volume_driver_extras,
            |d| d.call_retype(s, v, new_type_name, new_extra_specs),
            old: compat::retype_up(d.call_retype(s, &compat::volume(v), new_type_name, new_extra_specs)))
    }
    pub fn get_manageable_volumes(&self, s: &mut Store<HostState>) -> Call<Vec<ManageableVolume>> {
        volume!(self, ashlar_driver_volume_driver_extras,
            |d| d.call_get_manageable_volumes(s), old: up(d.call_get_manageable_volumes(s)))
    }
    /// Contract 0.3: drivers built before it cannot list snapshots (not-supported).
    pub fn get_manageable_snapshots(
        &self,
        s: &mut Store<HostState>,
    ) -> Call<Vec<ManageableSnapshot>> {
        match self {
            Driver::V0_3(d) => d
                .ashlar_driver_volume_driver_extras()
                .call_get_manageable_snapshots(s),
            Driver::V0_1(_) | Driver::V0_2(_) => Ok(Err(DriverError::NotSupported(
                "drivers built for contract 0.2 and earlier cannot list manageable snapshots"
                    .into(),
            ))),
            _ => wrong_world("volume driver"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_served_contract_is_served_and_no_other() {
        let fixtures = std::path::Path::new(crate::bundled::FIXTURES_DIR);
        let old = std::fs::read(fixtures.join("contract-v0-1.wasm")).unwrap();
        assert_eq!(
            contract_of(&old),
            Contract::Served {
                stamped: semver::Version::new(0, 1, 0),
                served: &SERVED[0]
            }
        );
        let nfs = crate::bundled::find("nfs").unwrap();
        assert_eq!(contract_of(nfs.wasm).to_string(), "0.3.0 (served here)");
        assert_eq!(
            Contract::NotServed(semver::Version::new(0, 9, 0)).to_string(),
            "0.9.0 (NOT served: this host serves 0.1, 0.2, 0.3)"
        );
        assert_eq!(contract_of(b"\0asm\x01\0\0\0"), Contract::Unstamped);
        assert!(matches!(contract_of(b"not wasm"), Contract::Unreadable(_)));
    }
}
