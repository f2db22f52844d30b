//! A SAN array driven through its REST management API, in the shapes of NetApp ONTAP's
//! (`/api/storage/volumes`, `/api/storage/luns`, `/api/protocols/san/igroups`,
//! `/api/protocols/san/lun-maps`, snapshots, async jobs), attached over iSCSI. The driver
//! touches nothing but HTTP to the granted management endpoint; the array's password is
//! a named credential that the host adds to each request, so the driver never holds it.
//!
//! Two pool layouts, as Cinder's ONTAP driver knows them:
//! - aggregate pools (the default): each pool is an aggregate and each volume gets its
//!   own FlexVol `ashlar_<id>` holding one LUN `lun0`. Snapshots are FlexVol snapshots;
//!   a volume from a snapshot or a clone is a FlexClone, split from its parent at once so
//!   the parent and the snapshot can go their own way.
//! - FlexVol pools (`flexvol_names`): each pool is an existing FlexVol and each volume is
//!   a LUN `volume-<id>` in it; snapshots, clones and volumes from snapshots are LUN
//!   clones `snapshot-<id>` / `volume-<id>` in the same FlexVol.
//!
//! A clone or a volume from a snapshot shares blocks with its source, so it lives where
//! its source lives (the source's aggregate or FlexVol), whatever pool the scheduler named.
//!
//! `provider_location` is the LUN's path (`/vol/<flexvol>/<lun>`); a snapshot's is where
//! its data is (`/vol/<flexvol>/.snapshot/<snapshot>/lun0`, or a LUN clone's path).
//!
//! Managing an existing LUN (Cinder's ONTAP `manage_existing`) needs FlexVol pools: the
//! reference is the LUN's path, `{"source-name": "/vol/FLEXVOL/LUN"}`, or its uuid,
//! `{"source-id": "UUID"}`; the LUN must be in one of the pools, and it is renamed
//! `volume-<id>` within its FlexVol and grown to whole GiB. Aggregate pools keep each
//! volume in a FlexVol of its own, so they list the SVM's LUNs as not safe and refuse to
//! manage them. Unmanaging leaves the LUN as it is.
//!
//! Settings are listed on [`Settings::from_config`].

pub mod ontap;
pub mod rest;
pub mod settings;

use ashlar_sdk::manage::{IN_USE, Reference};
use ashlar_sdk::{
    ConnectionInfo, Connector, DriverError, HealthReport, ManageableVolume, ModelUpdate, Result,
    Snapshot, Value, Volume, VolumeDriver, VolumeStats, check_id, config, log,
};

use ontap::{
    Array, GIB, LUN_IN_FLEXVOL, flexvol_name, flexvol_size, iscsi_connection_info, split_path,
    split_snapshot_path, str_at,
};
use settings::{Pools, Settings};

pub struct SanRest {
    array: Option<Array>,
}

impl SanRest {
    /// The array, reached with the settings `do_setup` read, or read now if it has not run.
    fn array(&mut self) -> Result<&mut Array> {
        if self.array.is_none() {
            self.array = Some(Array::new(Settings::from_config(config::get)?));
        }
        Ok(self.array.as_mut().expect("set above"))
    }
}

/// Why aggregate pools do not manage existing LUNs.
const AGGREGATE_POOLS: &str = "this backend keeps each volume in a FlexVol of its own (aggregate pools); managing an existing LUN needs FlexVol pools (flexvol_names)";

impl SanRest {
    /// The LUN a manage names, checked as Cinder's ONTAP driver checks it: on the array,
    /// in one of the backend's FlexVol pools, not a snapshot's. `Ok(None)` when it is gone
    /// and the volume's own LUN is there (a manage retried after its rename).
    fn manageable_lun(
        &mut self,
        volume: &Volume,
        reference: &str,
    ) -> Result<Option<(String, String, u64)>> {
        check_id("volume", &volume.id)?;
        let reference = Reference::parse(reference)?;
        let array = self.array()?;
        let pools = match array.settings().pools.clone() {
            Pools::FlexVols(names) => names,
            Pools::Aggregates(_) => return Err(DriverError::not_supported(AGGREGATE_POOLS)),
        };
        let lun = match &reference {
            Reference::Name(path) => {
                if split_path(path).is_none() {
                    return Err(DriverError::invalid_argument(format!(
                        "`{path}` is not a LUN path: give {{\"source-name\": \"/vol/FLEXVOL/LUN\"}} (GET manageable_volumes lists them)"
                    )));
                }
                array.find_lun(path)?
            }
            Reference::Id(uuid) => array.lun_by_uuid(uuid)?,
        };
        let Some(lun) = lun else {
            for pool in &pools {
                let own = format!("/vol/{pool}/volume-{}", volume.id);
                if array.find_lun(&own)?.is_some() {
                    return Ok(None);
                }
            }
            let what = match reference {
                Reference::Name(n) => n,
                Reference::Id(i) => format!("uuid {i}"),
            };
            return Err(DriverError::not_found(format!(
                "the array has no LUN {what}: GET manageable_volumes lists the LUNs of this backend's pools"
            )));
        };
        let path = str_at(&lun, "/name").unwrap_or_default().to_string();
        let (fv, name) = split_path(&path)
            .map(|(v, l)| (v.to_string(), l.to_string()))
            .ok_or_else(|| {
                DriverError::internal(format!("the array's LUN `{path}` has no path"))
            })?;
        if !pools.contains(&fv) {
            return Err(DriverError::invalid_argument(format!(
                "LUN {path} is in FlexVol {fv}, which is not one of this backend's pools ({})",
                pools.join(", ")
            )));
        }
        if name.starts_with("snapshot-") {
            return Err(DriverError::invalid_argument(format!(
                "LUN {path} is a snapshot's; manage the volume it belongs to"
            )));
        }
        let uuid = Array::uuid("LUN", &lun)?;
        let size = lun
            .pointer("/space/size")
            .and_then(serde_json::Value::as_u64)
            .unwrap_or(0);
        Ok(Some((uuid, path, size)))
    }
}

impl VolumeDriver for SanRest {
    fn new() -> Self {
        SanRest { array: None }
    }

    fn do_setup(&mut self) -> Result<()> {
        self.array = Some(Array::new(Settings::from_config(config::get)?));
        Ok(())
    }

    fn check_for_setup_error(&mut self) -> Result<()> {
        let array = self.array()?;
        let cluster = array.cluster("name,version")?;
        let name = str_at(&cluster, "/name").unwrap_or("?").to_string();
        let version = str_at(&cluster, "/version/full").unwrap_or("?").to_string();
        array.iscsi_target()?;
        let pools = array.pool_stats()?;
        log::info(&format!(
            "array {name} ({version}) serves pools {}",
            pools
                .iter()
                .map(|p| p.pool_name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ));
        Ok(())
    }

    fn health(&mut self) -> Result<HealthReport> {
        Ok(match self.array().and_then(|a| a.cluster("name")) {
            Ok(_) => HealthReport {
                healthy: true,
                detail: String::new(),
            },
            Err(e) => HealthReport {
                healthy: false,
                detail: format!("{e:?}"),
            },
        })
    }

    fn get_volume_stats(&mut self, _refresh: bool) -> Result<VolumeStats> {
        let array = self.array()?;
        let pools = array.pool_stats()?;
        let vendor = array.settings().vendor_name.clone();
        Ok(VolumeStats {
            volume_backend_name: config::backend_name(),
            vendor_name: vendor,
            driver_version: env!("CARGO_PKG_VERSION").into(),
            storage_protocol: "iSCSI".into(),
            pools,
        })
    }

    fn create_volume(&mut self, volume: Volume) -> Result<ModelUpdate> {
        check_id("volume", &volume.id)?;
        let array = self.array()?;
        let pool = array.pool_for(&volume)?;
        let bytes = volume.size_gib * GIB;
        let path = match array.settings().pools {
            Pools::Aggregates(_) => {
                let fv = flexvol_name(&volume.id);
                array.create_flexvol(&fv, &pool, flexvol_size(bytes))?;
                let path = format!("/vol/{fv}/{LUN_IN_FLEXVOL}");
                if let Err(e) = array.create_lun(&path, Some(bytes), None) {
                    let _ = array.delete_flexvol(&fv);
                    return Err(e);
                }
                path
            }
            Pools::FlexVols(_) => {
                let path = format!("/vol/{pool}/volume-{}", volume.id);
                array.create_lun(&path, Some(bytes), None)?;
                path
            }
        };
        log::info(&format!("created LUN {path} ({} GiB)", volume.size_gib));
        Ok(ModelUpdate::at(path))
    }

    fn delete_volume(&mut self, volume: Volume) -> Result<()> {
        check_id("volume", &volume.id)?;
        let array = self.array()?;
        let path = array.lun_path(&volume)?;
        match array.settings().pools {
            Pools::Aggregates(_) => {
                let fv = split_path(&path)
                    .map(|(v, _)| v.to_string())
                    .unwrap_or_default();
                array.delete_flexvol(&fv)?;
            }
            Pools::FlexVols(_) => array.delete_lun(&path)?,
        }
        log::info(&format!("deleted LUN {path}"));
        Ok(())
    }

    fn extend_volume(&mut self, volume: Volume, new_size_gib: u64) -> Result<()> {
        check_id("volume", &volume.id)?;
        let array = self.array()?;
        let path = array.lun_path(&volume)?;
        array.grow(&path, new_size_gib)?;
        log::info(&format!("extended LUN {path} to {new_size_gib} GiB"));
        Ok(())
    }

    fn manage_existing_get_size(&mut self, volume: Volume, reference: String) -> Result<u64> {
        match self.manageable_lun(&volume, &reference)? {
            Some((_, _, size)) => Ok(size.div_ceil(GIB)),
            None => {
                let array = self.array()?;
                let path = array.lun_path(&volume)?;
                let lun = array.find_lun(&path)?.ok_or_else(|| {
                    DriverError::not_found(format!("LUN {path} is not on the array"))
                })?;
                Ok(lun
                    .pointer("/space/size")
                    .and_then(serde_json::Value::as_u64)
                    .unwrap_or(0)
                    .div_ceil(GIB))
            }
        }
    }

    fn manage_existing(&mut self, volume: Volume, reference: String) -> Result<ModelUpdate> {
        let found = self.manageable_lun(&volume, &reference)?;
        let array = self.array()?;
        let path = match found {
            Some((uuid, path, _)) => {
                let (fv, _) = split_path(&path).expect("checked");
                let new_path = format!("/vol/{fv}/volume-{}", volume.id);
                if new_path != path {
                    if array.find_lun(&new_path)?.is_some() {
                        return Err(DriverError::invalid_argument(format!(
                            "LUN {new_path} exists already beside {path}; nothing was renamed"
                        )));
                    }
                    array.rename_lun(&uuid, &new_path)?;
                }
                new_path
            }
            None => array.lun_path(&volume)?,
        };
        array.grow(&path, volume.size_gib)?;
        log::info(&format!(
            "managing LUN {path} as volume {} ({} GiB)",
            volume.id, volume.size_gib
        ));
        Ok(ModelUpdate::at(path))
    }

    fn unmanage(&mut self, volume: Volume) -> Result<()> {
        // Cinder's ONTAP driver forgets the LUN and leaves it on the array.
        check_id("volume", &volume.id)?;
        log::info(&format!(
            "volume {} is no longer managed; its LUN stays on the array",
            volume.id
        ));
        Ok(())
    }

    fn get_manageable_volumes(&mut self) -> Result<Vec<ManageableVolume>> {
        let array = self.array()?;
        let pools = match array.settings().pools.clone() {
            Pools::FlexVols(names) => Some(names),
            Pools::Aggregates(_) => None,
        };
        let mut found = Vec::new();
        for lun in array.all_luns()? {
            let Some(path) = str_at(&lun, "/name") else {
                continue;
            };
            let Some((fv, name)) = split_path(path) else {
                continue;
            };
            if name.starts_with("snapshot-") {
                continue;
            }
            if let Some(pools) = &pools
                && !pools.iter().any(|p| p == fv)
            {
                continue;
            }
            let size = lun
                .pointer("/space/size")
                .and_then(serde_json::Value::as_u64)
                .unwrap_or(0);
            let mut m = ManageableVolume::at(&Reference::Name(path.to_string()), name, size);
            if pools.is_none() {
                m = m.unsafe_because(AGGREGATE_POOLS);
            }
            if lun
                .pointer("/status/mapped")
                .and_then(serde_json::Value::as_bool)
                == Some(true)
            {
                m = m.unsafe_because(IN_USE);
            }
            found.push(m);
        }
        Ok(found)
    }

    fn create_snapshot(&mut self, snapshot: Snapshot, volume: Volume) -> Result<ModelUpdate> {
        check_id("snapshot", &snapshot.id)?;
        check_id("volume", &volume.id)?;
        let array = self.array()?;
        let src = array.lun_path(&volume)?;
        let (fv, lun) = split_path(&src)
            .map(|(v, l)| (v.to_string(), l.to_string()))
            .ok_or_else(|| DriverError::internal(format!("`{src}` is not a LUN path")))?;
        let name = format!("snapshot-{}", snapshot.id);
        let location = match array.settings().pools {
            Pools::Aggregates(_) => {
                if !array.create_flexvol_snapshot(&fv, &name)? {
                    return Err(DriverError::not_found(format!(
                        "FlexVol {fv} of volume {} is not on the array",
                        volume.id
                    )));
                }
                format!("/vol/{fv}/.snapshot/{name}/{lun}")
            }
            Pools::FlexVols(_) => {
                let path = format!("/vol/{fv}/{name}");
                array.create_lun(&path, None, Some(&src))?;
                path
            }
        };
        log::info(&format!("created snapshot {location} of {src}"));
        Ok(ModelUpdate::at(location))
    }

    fn delete_snapshot(&mut self, snapshot: Snapshot, volume: Volume) -> Result<()> {
        check_id("snapshot", &snapshot.id)?;
        let name = format!("snapshot-{}", snapshot.id);
        let array = self.array()?;
        match array.settings().pools {
            Pools::Aggregates(_) => {
                let fv = match snapshot
                    .provider_location
                    .as_deref()
                    .and_then(split_snapshot_path)
                {
                    Some((fv, _)) => fv.to_string(),
                    None => {
                        let src = array.lun_path(&volume)?;
                        split_path(&src)
                            .map(|(v, _)| v.to_string())
                            .unwrap_or_default()
                    }
                };
                if !array.delete_flexvol_snapshot(&fv, &name)? {
                    return Ok(());
                }
            }
            Pools::FlexVols(_) => {
                let path = match snapshot
                    .provider_location
                    .as_deref()
                    .filter(|p| split_path(p).is_some())
                {
                    Some(p) => p.to_string(),
                    None => {
                        let src = array.lun_path(&volume)?;
                        let fv = split_path(&src)
                            .map(|(v, _)| v.to_string())
                            .unwrap_or_default();
                        format!("/vol/{fv}/{name}")
                    }
                };
                array.delete_lun(&path)?;
            }
        }
        log::info(&format!("deleted snapshot {name}"));
        Ok(())
    }

    fn create_volume_from_snapshot(
        &mut self,
        volume: Volume,
        snapshot: Snapshot,
    ) -> Result<ModelUpdate> {
        check_id("volume", &volume.id)?;
        check_id("snapshot", &snapshot.id)?;
        check_id("volume", &snapshot.volume_id)?;
        let name = format!("snapshot-{}", snapshot.id);
        let array = self.array()?;
        let path = match array.settings().pools {
            Pools::Aggregates(_) => {
                let parent = match snapshot
                    .provider_location
                    .as_deref()
                    .and_then(split_snapshot_path)
                {
                    Some((fv, _)) => fv.to_string(),
                    None => flexvol_name(&snapshot.volume_id),
                };
                let fv = flexvol_name(&volume.id);
                array.clone_flexvol(&fv, &parent, Some(&name))?;
                format!("/vol/{fv}/{LUN_IN_FLEXVOL}")
            }
            Pools::FlexVols(_) => {
                let src = match snapshot
                    .provider_location
                    .as_deref()
                    .filter(|p| split_path(p).is_some())
                {
                    Some(p) => p.to_string(),
                    None => {
                        return Err(DriverError::not_found(format!(
                            "snapshot {} has no LUN recorded (provider_location)",
                            snapshot.id
                        )));
                    }
                };
                let pool = split_path(&src)
                    .map(|(v, _)| v.to_string())
                    .unwrap_or_default();
                let path = format!("/vol/{pool}/volume-{}", volume.id);
                array.create_lun(&path, None, Some(&src))?;
                path
            }
        };
        if volume.size_gib > snapshot.volume_size_gib
            && let Err(e) = array.grow(&path, volume.size_gib)
        {
            let _ = self.delete_volume(Volume {
                provider_location: Some(path.clone()),
                ..volume
            });
            return Err(e);
        }
        log::info(&format!("created LUN {path} from snapshot {name}"));
        Ok(ModelUpdate::at(path))
    }

    fn create_cloned_volume(&mut self, volume: Volume, source: Volume) -> Result<ModelUpdate> {
        check_id("volume", &volume.id)?;
        check_id("volume", &source.id)?;
        let array = self.array()?;
        let src = array.lun_path(&source)?;
        let (src_fv, _) = split_path(&src)
            .map(|(v, l)| (v.to_string(), l.to_string()))
            .ok_or_else(|| DriverError::internal(format!("`{src}` is not a LUN path")))?;
        let path = match array.settings().pools {
            Pools::Aggregates(_) => {
                let fv = flexvol_name(&volume.id);
                array.clone_flexvol(&fv, &src_fv, None)?;
                format!("/vol/{fv}/{LUN_IN_FLEXVOL}")
            }
            Pools::FlexVols(_) => {
                let path = format!("/vol/{src_fv}/volume-{}", volume.id);
                array.create_lun(&path, None, Some(&src))?;
                path
            }
        };
        if volume.size_gib > source.size_gib
            && let Err(e) = array.grow(&path, volume.size_gib)
        {
            let _ = self.delete_volume(Volume {
                provider_location: Some(path.clone()),
                ..volume
            });
            return Err(e);
        }
        log::info(&format!("cloned LUN {src} to {path}"));
        Ok(ModelUpdate::at(path))
    }

    fn initialize_connection(
        &mut self,
        volume: Volume,
        connector: Connector,
    ) -> Result<ConnectionInfo> {
        if connector
            .extra
            .iter()
            .any(|(k, v)| k == "local" && *v == Value::Flag(true))
        {
            return Err(DriverError::not_supported(
                "the array exports its LUNs over iSCSI itself; there is no local device to pair with a target driver (remove the backend's target section)",
            ));
        }
        let initiator = connector.initiator.clone().filter(|i| !i.is_empty()).ok_or_else(|| {
            DriverError::invalid_argument(format!(
                "connector from {} has no iSCSI initiator name (`initiator`); this backend attaches over iSCSI",
                connector.host
            ))
        })?;
        check_id("volume", &volume.id)?;
        let array = self.array()?;
        let path = array.lun_path(&volume)?;
        let lun = array.find_lun(&path)?.ok_or_else(|| {
            DriverError::not_found(format!(
                "LUN {path} of volume {} is not on the array",
                volume.id
            ))
        })?;
        let lun_uuid = Array::uuid("LUN", &lun)?;
        let igroup = array.igroup_for(&initiator)?;
        let igroup_uuid = Array::uuid("igroup", &igroup)?;
        let number = array.map_lun(&lun_uuid, &igroup_uuid)?;
        let target = array.iscsi_target()?;
        let portals = array.iscsi_portals()?;
        let thin = array.settings().thin;
        log::info(&format!(
            "mapped LUN {path} to igroup {} as LUN {number} for {initiator}",
            str_at(&igroup, "/name").unwrap_or("?")
        ));
        Ok(iscsi_connection_info(
            &volume.id, &target, &portals, number, thin,
        ))
    }

    fn terminate_connection(&mut self, volume: Volume, connector: Option<Connector>) -> Result<()> {
        check_id("volume", &volume.id)?;
        let array = self.array()?;
        let path = array.lun_path(&volume)?;
        let Some(lun) = array.find_lun(&path)? else {
            return Ok(());
        };
        let lun_uuid = Array::uuid("LUN", &lun)?;
        let initiator = connector.as_ref().and_then(|c| c.initiator.clone());
        let Some(initiator) = initiator else {
            // No connector: detach from everyone (Cinder's force detach).
            return array.unmap_all(&path);
        };
        for g in array.igroups_with(&initiator)? {
            let ig = Array::uuid("igroup", &g)?;
            if array.unmap_lun(&lun_uuid, &ig)? {
                log::info(&format!("unmapped LUN {path} from {initiator}"));
            }
        }
        Ok(())
    }
}

ashlar_sdk::register_volume_driver!(SanRest);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_local_device_is_refused_before_anything_is_asked_of_the_array() {
        let volume = Volume {
            id: "v1".into(),
            display_name: None,
            size_gib: 1,
            provider_location: None,
            provider_auth: None,
            volume_type_name: None,
            extra_specs: vec![],
            pool: None,
            qos_specs: vec![],
        };
        let local = Connector {
            host: "ashlar".into(),
            ip: None,
            initiator: None,
            multipath: false,
            platform: None,
            os_type: None,
            extra: vec![("local".into(), Value::Flag(true))],
        };
        match SanRest::new().initialize_connection(volume, local) {
            Err(DriverError::NotSupported(m)) => assert!(m.contains("target"), "{m}"),
            other => panic!("{other:?}"),
        }
    }
}
