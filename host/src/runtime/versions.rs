//! One type over every contract version the host serves: a driver built for 0.1.0 and
//! one built for 0.2.0 are called the same way, and each call goes to the bindings of the
//! version the component was built against. New versions add a variant here.

use wasmtime::Store;
use wasmtime::component::InstancePre;

use super::component::contract_version;
use super::host_calls::HostState;
use super::since_v0_1_0 as v0_1;
use super::since_v0_2_0 as v0_2;
use super::since_v0_2_0::ashlar::driver::types::{
    ConnectionInfo, Connector, DriverError, ManageableVolume, ModelUpdate, Snapshot, Volume,
    VolumeStats,
};
use super::since_v0_2_0::backup::exports::ashlar::driver::backup_driver_core::ObjectInfo;
use super::since_v0_2_0::exports::ashlar::driver::volume_driver_health::HealthReport;
use crate::capabilities::World;

/// Every contract version served, oldest first.
pub const SERVED: &[semver::Version] = &[v0_1::VERSION, v0_2::VERSION];

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
    /// A `target-driver` component (served from contract 0.2).
    Target(v0_2::target::TargetDriverPre<HostState>),
    /// A `backup-driver` component (served from contract 0.2).
    Backup(v0_2::backup::BackupDriverPre<HostState>),
}

pub enum Driver {
    V0_1(v0_1::VolumeDriver),
    V0_2(v0_2::VolumeDriver),
    Target(v0_2::target::TargetDriver),
    Backup(v0_2::backup::BackupDriver),
}

impl DriverPre {
    /// Checks the component's exports against the bindings of `contract` and `world`.
    pub fn new(
        contract: &semver::Version,
        world: World,
        pre: InstancePre<HostState>,
    ) -> wasmtime::Result<Self> {
        match world {
            World::TargetDriver if contract.minor >= 2 => {
                Ok(DriverPre::Target(v0_2::target::TargetDriverPre::new(pre)?))
            }
            World::TargetDriver => Err(wasmtime::format_err!(
                "target drivers are served from contract 0.2 on; rebuild the component with a newer SDK"
            )),
            World::BackupDriver if contract.minor >= 2 => {
                Ok(DriverPre::Backup(v0_2::backup::BackupDriverPre::new(pre)?))
            }
            World::BackupDriver => Err(wasmtime::format_err!(
                "backup drivers are served from contract 0.2 on; rebuild the component with a newer SDK"
            )),
            World::VolumeDriver if contract.minor == 1 => {
                Ok(DriverPre::V0_1(v0_1::VolumeDriverPre::new(pre)?))
            }
            World::VolumeDriver => Ok(DriverPre::V0_2(v0_2::VolumeDriverPre::new(pre)?)),
        }
    }

    pub fn instantiate(&self, store: &mut Store<HostState>) -> wasmtime::Result<Driver> {
        Ok(match self {
            DriverPre::V0_1(p) => Driver::V0_1(p.instantiate(store)?),
            DriverPre::V0_2(p) => Driver::V0_2(p.instantiate(store)?),
            DriverPre::Target(p) => Driver::Target(p.instantiate(store)?),
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

macro_rules! dispatch {
    ($self:ident, $iface:ident, $method:ident ( $($arg:expr),* )) => {
        match $self {
            Driver::V0_1(d) => d.$iface().$method($($arg),*),
            Driver::V0_2(d) => d.$iface().$method($($arg),*),
            Driver::Target(_) | Driver::Backup(_) => wrong_world("volume driver"),
        }
    };
}

macro_rules! target_dispatch {
    ($self:ident, $method:ident ( $($arg:expr),* )) => {
        match $self {
            Driver::Target(d) => d.ashlar_driver_target_driver_core().$method($($arg),*),
            Driver::V0_1(_) | Driver::V0_2(_) | Driver::Backup(_) => wrong_world("target driver"),
        }
    };
}

macro_rules! backup_dispatch {
    ($self:ident, $method:ident ( $($arg:expr),* )) => {
        match $self {
            Driver::Backup(d) => d.ashlar_driver_backup_driver_core().$method($($arg),*),
            Driver::V0_1(_) | Driver::V0_2(_) | Driver::Target(_) => wrong_world("backup driver"),
        }
    };
}

impl Driver {
    pub fn do_setup(&self, s: &mut Store<HostState>) -> Call<()> {
        if let Driver::Target(d) = self {
            return d.ashlar_driver_target_driver_core().call_do_setup(s);
        }
        if let Driver::Backup(d) = self {
            return d.ashlar_driver_backup_driver_core().call_do_setup(s);
        }
        dispatch!(self, ashlar_driver_volume_driver_core, call_do_setup(s))
    }
    pub fn check_for_setup_error(&self, s: &mut Store<HostState>) -> Call<()> {
        if let Driver::Target(d) = self {
            return d
                .ashlar_driver_target_driver_core()
                .call_check_for_setup_error(s);
        }
        if let Driver::Backup(d) = self {
            return d
                .ashlar_driver_backup_driver_core()
                .call_check_for_setup_error(s);
        }
        dispatch!(
            self,
            ashlar_driver_volume_driver_core,
            call_check_for_setup_error(s)
        )
    }

    /// Target driver: exports `device_path` (the volume's local device or file).
    pub fn target_create_export(
        &self,
        s: &mut Store<HostState>,
        v: &Volume,
        device_path: &str,
    ) -> Call<ModelUpdate> {
        target_dispatch!(self, call_create_export(s, v, device_path))
    }
    pub fn target_remove_export(&self, s: &mut Store<HostState>, v: &Volume) -> Call<()> {
        target_dispatch!(self, call_remove_export(s, v))
    }
    pub fn target_initialize_connection(
        &self,
        s: &mut Store<HostState>,
        v: &Volume,
        c: &Connector,
    ) -> Call<ConnectionInfo> {
        target_dispatch!(self, call_initialize_connection(s, v, c))
    }
    pub fn target_terminate_connection(
        &self,
        s: &mut Store<HostState>,
        v: &Volume,
        c: Option<&Connector>,
    ) -> Call<()> {
        target_dispatch!(self, call_terminate_connection(s, v, c))
    }
    /// Backup driver: creates `container` if it is missing.
    pub fn backup_put_container(&self, s: &mut Store<HostState>, container: &str) -> Call<()> {
        backup_dispatch!(self, call_put_container(s, container))
    }
    pub fn backup_put_object(
        &self,
        s: &mut Store<HostState>,
        container: &str,
        name: &str,
        data: &[u8],
    ) -> Call<()> {
        backup_dispatch!(self, call_put_object(s, container, name, data))
    }
    pub fn backup_get_object(
        &self,
        s: &mut Store<HostState>,
        container: &str,
        name: &str,
    ) -> Call<Vec<u8>> {
        backup_dispatch!(self, call_get_object(s, container, name))
    }
    pub fn backup_delete_object(
        &self,
        s: &mut Store<HostState>,
        container: &str,
        name: &str,
    ) -> Call<()> {
        backup_dispatch!(self, call_delete_object(s, container, name))
    }
    pub fn backup_list_objects(
        &self,
        s: &mut Store<HostState>,
        container: &str,
        prefix: &str,
        marker: Option<&str>,
        limit: u32,
    ) -> Call<Vec<ObjectInfo>> {
        backup_dispatch!(self, call_list_objects(s, container, prefix, marker, limit))
    }

    pub fn get_volume_stats(&self, s: &mut Store<HostState>, refresh: bool) -> Call<VolumeStats> {
        dispatch!(
            self,
            ashlar_driver_volume_driver_core,
            call_get_volume_stats(s, refresh)
        )
    }
    pub fn create_volume(&self, s: &mut Store<HostState>, v: &Volume) -> Call<ModelUpdate> {
        dispatch!(
            self,
            ashlar_driver_volume_driver_core,
            call_create_volume(s, v)
        )
    }
    pub fn delete_volume(&self, s: &mut Store<HostState>, v: &Volume) -> Call<()> {
        dispatch!(
            self,
            ashlar_driver_volume_driver_core,
            call_delete_volume(s, v)
        )
    }
    pub fn extend_volume(
        &self,
        s: &mut Store<HostState>,
        v: &Volume,
        new_size_gib: u64,
    ) -> Call<()> {
        dispatch!(
            self,
            ashlar_driver_volume_driver_core,
            call_extend_volume(s, v, new_size_gib)
        )
    }
    pub fn create_snapshot(
        &self,
        s: &mut Store<HostState>,
        snap: &Snapshot,
        v: &Volume,
    ) -> Call<ModelUpdate> {
        dispatch!(
            self,
            ashlar_driver_volume_driver_core,
            call_create_snapshot(s, snap, v)
        )
    }
    pub fn delete_snapshot(
        &self,
        s: &mut Store<HostState>,
        snap: &Snapshot,
        v: &Volume,
    ) -> Call<()> {
        dispatch!(
            self,
            ashlar_driver_volume_driver_core,
            call_delete_snapshot(s, snap, v)
        )
    }
    pub fn create_volume_from_snapshot(
        &self,
        s: &mut Store<HostState>,
        v: &Volume,
        snap: &Snapshot,
    ) -> Call<ModelUpdate> {
        dispatch!(
            self,
            ashlar_driver_volume_driver_core,
            call_create_volume_from_snapshot(s, v, snap)
        )
    }
    pub fn create_cloned_volume(
        &self,
        s: &mut Store<HostState>,
        v: &Volume,
        src: &Volume,
    ) -> Call<ModelUpdate> {
        dispatch!(
            self,
            ashlar_driver_volume_driver_core,
            call_create_cloned_volume(s, v, src)
        )
    }
    pub fn create_export(
        &self,
        s: &mut Store<HostState>,
        v: &Volume,
        c: Option<&Connector>,
    ) -> Call<ModelUpdate> {
        dispatch!(
            self,
            ashlar_driver_volume_driver_core,
            call_create_export(s, v, c)
        )
    }
    pub fn remove_export(&self, s: &mut Store<HostState>, v: &Volume) -> Call<()> {
        dispatch!(
            self,
            ashlar_driver_volume_driver_core,
            call_remove_export(s, v)
        )
    }
    pub fn initialize_connection(
        &self,
        s: &mut Store<HostState>,
        v: &Volume,
        c: &Connector,
    ) -> Call<ConnectionInfo> {
        dispatch!(
            self,
            ashlar_driver_volume_driver_core,
            call_initialize_connection(s, v, c)
        )
    }
    pub fn terminate_connection(
        &self,
        s: &mut Store<HostState>,
        v: &Volume,
        c: Option<&Connector>,
    ) -> Call<()> {
        dispatch!(
            self,
            ashlar_driver_volume_driver_core,
            call_terminate_connection(s, v, c)
        )
    }
    pub fn revert_to_snapshot(
        &self,
        s: &mut Store<HostState>,
        v: &Volume,
        snap: &Snapshot,
    ) -> Call<()> {
        dispatch!(
            self,
            ashlar_driver_volume_driver_extras,
            call_revert_to_snapshot(s, v, snap)
        )
    }
    pub fn manage_existing(
        &self,
        s: &mut Store<HostState>,
        v: &Volume,
        reference: &str,
    ) -> Call<ModelUpdate> {
        dispatch!(
            self,
            ashlar_driver_volume_driver_extras,
            call_manage_existing(s, v, reference)
        )
    }
    pub fn manage_existing_get_size(
        &self,
        s: &mut Store<HostState>,
        v: &Volume,
        reference: &str,
    ) -> Call<u64> {
        dispatch!(
            self,
            ashlar_driver_volume_driver_extras,
            call_manage_existing_get_size(s, v, reference)
        )
    }
    pub fn unmanage(&self, s: &mut Store<HostState>, v: &Volume) -> Call<()> {
        dispatch!(
            self,
            ashlar_driver_volume_driver_extras,
            call_unmanage(s, v)
        )
    }
    pub fn retype(
        &self,
        s: &mut Store<HostState>,
        v: &Volume,
        new_type_name: &str,
        new_extra_specs: &[(String, String)],
    ) -> Call<bool> {
        dispatch!(
            self,
            ashlar_driver_volume_driver_extras,
            call_retype(s, v, new_type_name, new_extra_specs)
        )
    }
    pub fn get_manageable_volumes(&self, s: &mut Store<HostState>) -> Call<Vec<ManageableVolume>> {
        dispatch!(
            self,
            ashlar_driver_volume_driver_extras,
            call_get_manageable_volumes(s)
        )
    }

    /// The 0.2.0 health probe, or `None` for a driver built before it existed.
    pub fn health(&self, s: &mut Store<HostState>) -> Option<Call<HealthReport>> {
        match self {
            Driver::V0_1(_) | Driver::Target(_) | Driver::Backup(_) => None,
            Driver::V0_2(d) => Some(d.ashlar_driver_volume_driver_health().call_health(s)),
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
        assert_eq!(contract_of(nfs.wasm).to_string(), "0.2.0 (served here)");
        assert_eq!(
            Contract::NotServed(semver::Version::new(0, 9, 0)).to_string(),
            "0.9.0 (NOT served: this host serves 0.1, 0.2)"
        );
        assert_eq!(contract_of(b"\0asm\x01\0\0\0"), Contract::Unstamped);
        assert!(matches!(contract_of(b"not wasm"), Contract::Unreadable(_)));
    }
}
