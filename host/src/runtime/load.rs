//! Loading a driver, in order: the contract version its component was built against
//! must be served here ([`served_contract`]), the manifest must declare the world the
//! driver is configured as and the operator's grants must cover what the manifest asks
//! ([`admit`]), and the compiled component must link against the bindings of its contract
//! and world ([`Runtime::prepare`]). Only then is a pool made. `ashlar plugin validate`
//! runs the same checks without making the pool.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use super::engine::Runtime;
use super::error::LoadError;
use super::host_calls::{BackendContext, PluginIdentity};
use super::pool::DriverPool;
use super::versions::{self, Contract};
use crate::capabilities::{self, EffectiveCapabilities, Manifest, World};
use crate::config::{Credential, Limits};

/// Everything needed to run one backend's driver.
pub struct DriverSpec {
    pub backend: String,
    /// Where the component came from, for messages.
    pub origin: String,
    pub wasm: Arc<[u8]>,
    pub manifest: Manifest,
    pub grants: capabilities::Grants,
    pub settings: BTreeMap<String, String>,
    pub credentials: BTreeMap<String, Credential>,
    pub limits: Limits,
    pub host_name: String,
    /// Where granted program names are looked up.
    pub exec_dirs: Vec<PathBuf>,
    /// The world the caller will use the component as; the manifest must declare it.
    pub world: World,
}

impl DriverSpec {
    /// How messages name the driver: `plugin NAME VERSION (ORIGIN)`.
    pub fn what(&self) -> String {
        format!(
            "plugin {} {} ({})",
            self.manifest.name, self.manifest.version, self.origin
        )
    }
}

/// The contract version a component was built against, if this host serves it
/// ([`versions::contract_of`]); `what` names the driver in the refusal.
pub fn served_contract(what: &str, wasm: &[u8]) -> Result<semver::Version, LoadError> {
    match versions::contract_of(wasm) {
        Contract::Served { stamped, .. } => Ok(stamped),
        Contract::NotServed(v) => Err(LoadError::UnsupportedContract {
            what: what.to_string(),
            found: v.to_string(),
            served: versions::served_list(),
        }),
        Contract::Unstamped => Err(LoadError::NoContractVersion {
            what: what.to_string(),
        }),
        Contract::Unreadable(message) => Err(LoadError::Compile {
            what: what.to_string(),
            message,
        }),
    }
}

/// What the operator's config lets an admitted driver do.
pub struct Admitted {
    /// The backend's settings, with the manifest's defaults for those it leaves out.
    pub settings: BTreeMap<String, String>,
    pub capabilities: EffectiveCapabilities,
}

/// Whether the driver of `spec` may run as configured: its manifest declares the world it
/// is configured as, and the operator's grants cover everything it asks for.
pub fn admit(spec: &DriverSpec) -> Result<Admitted, LoadError> {
    if spec.manifest.world != spec.world {
        return Err(LoadError::WorldNotServed {
            what: spec.what(),
            declared: spec.manifest.world.to_string(),
            wanted: spec.world.to_string(),
        });
    }
    let settings = spec.manifest.settings_with_defaults(&spec.settings);
    // Refusals name the config section the grants live in.
    let section = match spec.world {
        World::TargetDriver => format!("{}.target", spec.backend),
        _ => spec.backend.clone(),
    };
    let capabilities = capabilities::grant(&spec.manifest, &section, &settings, &spec.grants)
        .map_err(|e| LoadError::Capability(Box::new(e)))?;
    Ok(Admitted {
        settings,
        capabilities,
    })
}

impl Runtime {
    /// Compiles a component (or takes its cached artifact) and links it against the
    /// bindings of `contract` as a `world`: every check short of instantiating it.
    pub fn prepare(
        &self,
        what: &str,
        wasm: &[u8],
        contract: &semver::Version,
        world: World,
    ) -> Result<versions::DriverPre, LoadError> {
        let Some(served) = versions::served(contract) else {
            return Err(LoadError::UnsupportedContract {
                what: what.to_string(),
                found: contract.to_string(),
                served: versions::served_list(),
            });
        };
        let component = self.compile(what, wasm)?;
        let contract_err = |e: wasmtime::Error| LoadError::Contract {
            what: what.to_string(),
            version: served.to_string(),
            message: format!("{e:#}"),
        };
        let instance_pre = self
            .linker
            .instantiate_pre(&component)
            .map_err(contract_err)?;
        versions::DriverPre::new(contract, world, instance_pre).map_err(contract_err)
    }

    /// Checks and prepares a backend's driver: contract version, world, manifest against
    /// the operator's grants, compile and link; the pool's first instance runs do-setup.
    pub fn load(self: &Arc<Self>, spec: DriverSpec) -> Result<Arc<DriverPool>, LoadError> {
        let what = spec.what();
        let contract = served_contract(&what, &spec.wasm)?;
        let Admitted {
            settings,
            capabilities,
        } = admit(&spec)?;
        let pre = self.prepare(&what, &spec.wasm, &contract, spec.world)?;
        let ctx = Arc::new(BackendContext {
            identity: PluginIdentity {
                name: spec.manifest.name.clone(),
                version: spec.manifest.version.clone(),
                backend: spec.backend.clone(),
            },
            capabilities,
            settings,
            credentials: spec.credentials,
            host_name: spec.host_name,
            exec_dirs: spec.exec_dirs,
            limits: spec.limits,
            http: self.http.clone(),
            runtime: tokio::runtime::Handle::try_current()
                .map_err(|_| LoadError::Engine("the runtime must be loaded inside tokio".into()))?,
            denials: Default::default(),
        });
        Ok(Arc::new(DriverPool::new(
            ctx,
            contract,
            spec.manifest.world,
            spec.origin,
            self.engine.clone(),
            pre,
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nfs_bytes() -> Vec<u8> {
        crate::bundled::find("nfs").unwrap().wasm.to_vec()
    }

    /// Rewrites `old` to `new` (same length) where it follows the section name.
    fn patch(mut bytes: Vec<u8>, at: &[u8], old: &[u8], new: &[u8]) -> Vec<u8> {
        let pos = bytes
            .windows(at.len())
            .position(|w| w == at)
            .expect("section present");
        let start = pos + at.len() - old.len();
        assert_eq!(&bytes[start..start + old.len()], old);
        bytes[start..start + new.len()].copy_from_slice(new);
        bytes
    }

    fn spec(wasm: Vec<u8>) -> DriverSpec {
        let share = std::env::temp_dir();
        let b = crate::bundled::find("nfs").unwrap();
        DriverSpec {
            backend: "t".into(),
            origin: "test".into(),
            wasm: wasm.into(),
            manifest: Manifest::from_toml_str(b.manifest).unwrap(),
            grants: toml::from_str(r#"exec = ["qemu-img", "rm", "df", "du"]"#).unwrap(),
            settings: BTreeMap::from([("share_path".into(), share.display().to_string())]),
            credentials: BTreeMap::new(),
            limits: Limits::default(),
            host_name: "h".into(),
            exec_dirs: crate::config::default_exec_dirs(),
            world: World::VolumeDriver,
        }
    }

    #[tokio::test]
    async fn refuses_a_component_for_another_contract_before_instantiating() {
        let runtime = Runtime::new(None).unwrap();
        let newer = patch(
            nfs_bytes(),
            b"ashlar:contract-version0.3.0",
            b"0.3.0",
            b"0.9.0",
        );
        let err = runtime
            .load(spec(newer))
            .err()
            .expect("refused")
            .to_string();
        assert!(err.contains("built against contract 0.9.0"), "{err}");
        assert!(err.contains("this host serves 0.1, 0.2, 0.3"), "{err}");
        assert!(err.contains("plugin nfs 0.1.0"), "{err}");

        let unstamped = patch(
            nfs_bytes(),
            b"ashlar:contract-version",
            b"version",
            b"versioX",
        );
        let err = runtime
            .load(spec(unstamped))
            .err()
            .expect("refused")
            .to_string();
        assert!(err.contains("not built with the Ashlar SDK"), "{err}");

        // The real one loads and answers.
        let pool = runtime.load(spec(nfs_bytes())).unwrap();
        let stats = pool
            .call("get-volume-stats", |s, d| d.get_volume_stats(s, true))
            .await
            .unwrap();
        assert_eq!(stats.storage_protocol, "nfs");
        assert_eq!(stats.volume_backend_name, "t");
        assert!(stats.pools[0].total_capacity_gb > 0.0);
    }
}

#[cfg(test)]
mod contract_versions {
    use super::*;

    fn spec_for(wasm: Vec<u8>, manifest: &str, grants: &str) -> DriverSpec {
        DriverSpec {
            backend: "t".into(),
            origin: "test".into(),
            wasm: wasm.into(),
            manifest: Manifest::from_toml_str(manifest).unwrap(),
            grants: toml::from_str(grants).unwrap(),
            settings: BTreeMap::from([(
                "share_path".into(),
                std::env::temp_dir().display().to_string(),
            )]),
            credentials: BTreeMap::new(),
            limits: Limits::default(),
            host_name: "h".into(),
            exec_dirs: crate::config::default_exec_dirs(),
            world: World::VolumeDriver,
        }
    }

    #[tokio::test]
    async fn drivers_of_every_served_contract_are_served_side_by_side() {
        let runtime = Runtime::new(None).unwrap();
        let dir = std::path::Path::new(crate::bundled::FIXTURES_DIR);
        let old = runtime
            .load(spec_for(
                std::fs::read(dir.join("contract-v0-1.wasm")).unwrap(),
                &std::fs::read_to_string(dir.join("contract-v0-1.toml")).unwrap(),
                "",
            ))
            .unwrap();
        let middle = runtime
            .load(spec_for(
                std::fs::read(dir.join("contract-v0-2.wasm")).unwrap(),
                &std::fs::read_to_string(dir.join("contract-v0-2.toml")).unwrap(),
                "",
            ))
            .unwrap();
        let nfs = crate::bundled::find("nfs").unwrap();
        let new = runtime
            .load(spec_for(
                nfs.wasm.to_vec(),
                nfs.manifest,
                r#"exec = ["qemu-img", "rm", "df", "du"]"#,
            ))
            .unwrap();
        assert_eq!(old.contract, semver::Version::new(0, 1, 0));
        assert_eq!(middle.contract, semver::Version::new(0, 2, 0));
        assert_eq!(new.contract, semver::Version::new(0, 3, 0));

        // The same call, the same types, through either version's bindings.
        let stats = old
            .call("get-volume-stats", |s, d| d.get_volume_stats(s, true))
            .await
            .unwrap();
        assert_eq!(stats.pools[0].pool_name, "old");
        let stats = new
            .call("get-volume-stats", |s, d| d.get_volume_stats(s, true))
            .await
            .unwrap();
        assert_eq!(stats.storage_protocol, "nfs");

        // Only the newer contract has the health export.
        let health = old
            .call("health", |s, d| Ok(Ok(d.health(s).is_some())))
            .await
            .unwrap();
        assert!(!health, "a 0.1.0 driver has no health export");
        for pool in [&middle, &new] {
            let report = pool
                .call("health", |s, d| d.health(s).expect("0.2.0 on have health"))
                .await
                .unwrap();
            assert!(report.healthy, "{report:?}");
        }

        // 0.3.0's answers from a 0.2.0 driver: its retype's true is "in place, nothing to
        // record", its model update's location a `set`, its manageable snapshots none.
        let volume = crate::driver::Volume {
            id: "5f0c2c1e-0000-4000-8000-000000000001".into(),
            display_name: None,
            size_gib: 1,
            provider_location: None,
            provider_auth: None,
            volume_type_name: None,
            extra_specs: Vec::new(),
            pool: None,
            qos_specs: vec![("iops".into(), "9".into())],
        };
        let model = middle.create_volume(&volume).await.unwrap();
        assert_eq!(
            model.provider_location,
            crate::driver::FieldUpdate::Set(format!("old:{}", volume.id))
        );
        assert_eq!(model.provider_auth, crate::driver::FieldUpdate::Keep);
        let retyped = middle.retype(&volume, "gold", &[]).await.unwrap();
        assert_eq!(retyped, Some(crate::driver::ModelUpdate::default()));
        let err = middle.get_manageable_snapshots().await.unwrap_err();
        assert!(err.to_string().contains("contract 0.2"), "{err}");
        let none = old.retype(&volume, "gold", &[]).await.unwrap();
        assert_eq!(none, None, "the 0.1.0 fixture's retype answers false");
    }
}
