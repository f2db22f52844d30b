//! Cinder's tgtadm target helper as an Ashlar target driver: exports the block device or
//! file that a paired volume driver provides as an iSCSI target of a tgtd.
//!
//! Each volume gets one target, `{iqn_prefix}volume-<id>`, whose LUN 1 is backed by the
//! device path, a CHAP account of its own (random user name and secret, kept by the host in
//! the volume's `provider_auth` as `CHAP <user> <secret>`), and one ACL entry per attached
//! initiator. tgtd lets an initiator in only when its name is on the target's ACL, so a
//! fresh export admits nobody until `initialize_connection`, and a terminated one admits
//! nobody again. tgtd keeps no state across restarts: exporting again recreates the target
//! with the credentials the volume already has.
//!
//! Settings (the target's section of the operator's config):
//! - `target_ip_address` (required): the address initiators reach tgtd's portal on.
//! - `target_port` (default 3260): the portal's TCP port.
//! - `control_port` (required; `0` is tgtd's default): which tgtd to manage (`tgtadm -C`).
//! - `backing_store_dir` (required): the directory holding the `volume-*` devices or files
//!   the paired volume driver provides (an NFS share path, `/dev/<vg>`).
//! - `iqn_prefix` (default `iqn.2010-10.org.openstack:`).
//! - `use_chap_auth` (default `true`): `false` exports without CHAP (ACLs only).
//!
//! The CHAP secret never appears in a log line or an error this driver writes.

use std::fmt;
use std::net::IpAddr;

use ashlar_sdk::exec::{ExecError, Output};
use ashlar_sdk::log::Level;
use ashlar_sdk::{
    ConnectionInfo, Connector, DriverError, ModelUpdate, Result, TargetDriver, Value, Volume,
    check_id,
};

pub mod tgtadm;
use tgtadm::{LUN, Refusal, TargetInfo, Tgtadm};

/// The target's settings, read in `do_setup`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Settings {
    pub iqn_prefix: String,
    pub target_ip_address: IpAddr,
    pub target_port: u16,
    pub control_port: u16,
    pub backing_store_dir: String,
    pub use_chap_auth: bool,
}

pub const DEFAULT_IQN_PREFIX: &str = "iqn.2010-10.org.openstack:";

impl Settings {
    /// Parses the settings from `get` (the backend config), naming the bad key on error.
    pub fn from_config(get: impl Fn(&str) -> Option<String>) -> Result<Self> {
        let required = |key: &str, what: &str| {
            get(key).filter(|v| !v.trim().is_empty()).ok_or_else(|| {
                DriverError::invalid_argument(format!(
                    "the iscsi-tgt target driver needs `{key}`: {what}"
                ))
            })
        };
        let ip = required(
            "target_ip_address",
            "the IP address initiators reach tgtd's iSCSI portal on",
        )?;
        let target_ip_address = ip.trim().parse::<IpAddr>().map_err(|_| {
            DriverError::invalid_argument(format!(
                "target_ip_address `{ip}` is not an IP address; set it to the address of \
                 tgtd's portal, e.g. 192.0.2.10"
            ))
        })?;
        let target_port = match get("target_port") {
            None => 3260,
            Some(v) => parse_port("target_port", &v)?,
        };
        let control = required(
            "control_port",
            "which tgtd to manage (tgtadm's -C); 0 is the port a plain `tgtd` uses",
        )?;
        let control_port = control
            .trim()
            .parse::<u16>()
            .ok()
            .filter(|p| *p <= MAX_CONTROL_PORT)
            .ok_or_else(|| {
                DriverError::invalid_argument(format!(
                    "control_port `{control}` must be a number from 0 to {MAX_CONTROL_PORT} \
                     (tgtadm's -C range)"
                ))
            })?;
        let dir = required(
            "backing_store_dir",
            "the directory holding the volume-* files or devices the paired volume driver \
             provides (its share path, or /dev/<vg>)",
        )?;
        if !dir.starts_with('/') || (dir.len() > 1 && dir.ends_with('/')) || dir.contains("//") {
            return Err(DriverError::invalid_argument(format!(
                "backing_store_dir `{dir}` must be an absolute path without a trailing slash"
            )));
        }
        let iqn_prefix = get("iqn_prefix").unwrap_or_else(|| DEFAULT_IQN_PREFIX.to_string());
        if !iqn_prefix.starts_with("iqn.")
            || iqn_prefix.len() > 150
            || !iqn_prefix
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-.:".contains(&b))
        {
            return Err(DriverError::invalid_argument(format!(
                "iqn_prefix `{iqn_prefix}` must start with `iqn.` and use only letters, digits, \
                 `-`, `.` and `:` (e.g. `{DEFAULT_IQN_PREFIX}`)"
            )));
        }
        let use_chap_auth = match get("use_chap_auth").as_deref().map(str::trim) {
            None => true,
            Some(v) if v.eq_ignore_ascii_case("true") => true,
            Some(v) if v.eq_ignore_ascii_case("false") => false,
            Some(v) => {
                return Err(DriverError::invalid_argument(format!(
                    "use_chap_auth `{v}` must be true or false"
                )));
            }
        };
        Ok(Settings {
            iqn_prefix,
            target_ip_address,
            target_port,
            control_port,
            backing_store_dir: dir,
            use_chap_auth,
        })
    }

    pub fn iqn(&self, volume_id: &str) -> String {
        format!("{}volume-{volume_id}", self.iqn_prefix)
    }

    /// `ip:port`, with IPv6 addresses in brackets (as Cinder writes it).
    pub fn portal(&self) -> String {
        match self.target_ip_address {
            IpAddr::V4(ip) => format!("{ip}:{}", self.target_port),
            IpAddr::V6(ip) => format!("[{ip}]:{}", self.target_port),
        }
    }
}

/// The largest control port tgtadm accepts.
pub const MAX_CONTROL_PORT: u16 = 32767;

fn parse_port(key: &str, value: &str) -> Result<u16> {
    value
        .trim()
        .parse::<u16>()
        .ok()
        .filter(|p| *p != 0)
        .ok_or_else(|| {
            DriverError::invalid_argument(format!(
                "{key} `{value}` must be a port number from 1 to 65535"
            ))
        })
}

/// A volume's CHAP account. `Debug` never shows the secret.
#[derive(Clone, PartialEq, Eq)]
pub struct Chap {
    pub user: String,
    pub secret: String,
}

impl fmt::Debug for Chap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Chap")
            .field("user", &self.user)
            .field("secret", &"***")
            .finish()
    }
}

/// Letters and digits without the look-alikes (0/O, 1/l/I), as Cinder's generator.
const CHAP_ALPHABET: &[u8] = b"abcdefghijkmnopqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789";
/// Cinder's lengths: a 20-character user name, a 16-character secret (within the 12–16
/// characters every common initiator accepts).
pub const CHAP_USER_LEN: usize = 20;
pub const CHAP_SECRET_LEN: usize = 16;

impl Chap {
    /// A fresh account from the system's random source (WASI random in the component).
    pub fn generate() -> Result<Self> {
        Ok(Chap {
            user: random_text(CHAP_USER_LEN)?,
            secret: random_text(CHAP_SECRET_LEN)?,
        })
    }

    /// Reads Cinder's `provider_auth` (`CHAP <user> <secret>`).
    pub fn parse(provider_auth: &str) -> Option<Self> {
        let mut words = provider_auth.split_whitespace();
        let (method, user, secret) = (words.next()?, words.next()?, words.next()?);
        let plain = |s: &str| s.bytes().all(|b| b.is_ascii_graphic());
        (method.eq_ignore_ascii_case("CHAP") && words.next().is_none() && plain(user))
            .then(|| Chap {
                user: user.to_string(),
                secret: secret.to_string(),
            })
            .filter(|c| plain(&c.secret))
    }

    pub fn provider_auth(&self) -> String {
        format!("CHAP {} {}", self.user, self.secret)
    }
}

/// Uniform characters of [`CHAP_ALPHABET`], by rejection sampling of random bytes.
fn random_text(len: usize) -> Result<String> {
    let n = CHAP_ALPHABET.len();
    let limit = 256 - 256 % n;
    let mut out = String::with_capacity(len);
    let mut buf = [0u8; 64];
    while out.len() < len {
        getrandom::fill(&mut buf).map_err(|e| {
            DriverError::internal(format!(
                "cannot make a CHAP secret: the random source failed ({e})"
            ))
        })?;
        for b in buf {
            if usize::from(b) < limit && out.len() < len {
                out.push(char::from(CHAP_ALPHABET[usize::from(b) % n]));
            }
        }
    }
    Ok(out)
}

/// Replaces every occurrence of `secret` in a message.
pub fn redact(message: &str, secret: Option<&str>) -> String {
    match secret {
        Some(s) if !s.is_empty() => message.replace(s, "***"),
        _ => message.to_string(),
    }
}

/// An iSCSI initiator name as tgtd's ACL takes it (`iqn.`, `eui.` or `naa.` form).
pub fn check_initiator(name: &str) -> Result<()> {
    let lower = name.to_ascii_lowercase();
    if ["iqn.", "eui.", "naa."]
        .iter()
        .any(|p| lower.starts_with(p))
        && name.len() <= 223
        && name.bytes().all(|b| b.is_ascii_graphic() && b != b'/')
    {
        Ok(())
    } else {
        Err(DriverError::invalid_argument(format!(
            "initiator name `{name}` is not an iSCSI name (iqn.…, eui.… or naa.…); send the \
             initiator's name as the connector's `initiator`"
        )))
    }
}

/// What the driver needs from its surroundings: tgtadm and a log. In the component these
/// are host calls; natively, tests run the real tgtadm.
pub trait System {
    fn tgtadm(&mut self, args: &[String]) -> std::result::Result<Output, ExecError>;
    fn log(&mut self, level: Level, message: &str);
}

/// The driver's logic over one tgtd.
pub struct Target<S: System> {
    pub settings: Settings,
    pub tgtadm: Tgtadm,
    pub system: S,
}

/// A tgtadm refusal: its class and its message (already redacted).
#[derive(Debug)]
struct Refused {
    kind: Refusal,
    message: String,
}

impl<S: System> Target<S> {
    pub fn new(settings: Settings, system: S) -> Self {
        Target {
            tgtadm: Tgtadm::new(settings.control_port),
            settings,
            system,
        }
    }

    /// Runs tgtadm. The outer error is for a tgtadm that could not run or a tgtd that is
    /// not there; the inner one is tgtd refusing the request. `secret` is scrubbed from
    /// every message.
    fn run(
        &mut self,
        args: &[String],
        secret: Option<&str>,
    ) -> Result<std::result::Result<String, Refused>> {
        let out = self.system.tgtadm(args).map_err(|e| {
            let e = ashlar_sdk::exec::from_exec_error("tgtadm", e);
            redact_error(e, secret)
        })?;
        if out.status == 0 {
            return Ok(Ok(String::from_utf8_lossy(&out.stdout).into_owned()));
        }
        let stderr = String::from_utf8_lossy(&out.stderr);
        let kind = tgtadm::classify(out.status, &stderr);
        let message = redact(&tgtadm::message(&stderr), secret);
        if kind == Refusal::NoDaemon {
            let port = self.tgtadm.control_port;
            return Err(DriverError::backend_unavailable(format!(
                "tgtd is not answering on control port {port} ({message}); start it \
                 (`tgtd -C {port}`) or set `control_port` to the port it runs on"
            )));
        }
        Ok(Err(Refused { kind, message }))
    }

    /// Runs a tgtadm command that must succeed; `what` says what it was for.
    fn must(&mut self, what: &str, args: &[String], secret: Option<&str>) -> Result<String> {
        self.run(args, secret)?
            .map_err(|r| DriverError::internal(format!("tgtd refused to {what}: {}", r.message)))
    }

    /// A command whose goal may already be reached (`Exists` or `Missing` per `ok_if`).
    fn idempotent(
        &mut self,
        what: &str,
        args: &[String],
        ok_if: Refusal,
        secret: Option<&str>,
    ) -> Result<()> {
        match self.run(args, secret)? {
            Ok(_) => Ok(()),
            Err(r) if r.kind == ok_if => Ok(()),
            Err(r) => Err(DriverError::internal(format!(
                "tgtd refused to {what}: {}",
                r.message
            ))),
        }
    }

    pub fn show(&mut self) -> Result<Vec<TargetInfo>> {
        let out = self.must("list its targets", &self.tgtadm.show_targets(), None)?;
        tgtadm::parse_show(&out).map_err(|e| {
            DriverError::internal(format!(
                "cannot read `tgtadm --op show --mode target` output ({e}); is this a tgt \
                 version the driver knows (1.0.x)?"
            ))
        })
    }

    fn find(&mut self, iqn: &str) -> Result<Option<TargetInfo>> {
        Ok(self.show()?.into_iter().find(|t| t.iqn == iqn))
    }

    /// tgtd answers: the driver can manage it.
    pub fn check(&mut self) -> Result<()> {
        self.show().map(|_| ())
    }

    /// Exports `device_path` as the volume's target; returns its `provider_auth`.
    pub fn create_export(&mut self, volume: &Volume, device_path: &str) -> Result<Option<String>> {
        check_id("volume", &volume.id)?;
        self.check_device_path(volume, device_path)?;
        let iqn = self.settings.iqn(&volume.id);
        let chap = if self.settings.use_chap_auth {
            match volume.provider_auth.as_deref().and_then(Chap::parse) {
                Some(chap) => Some(chap),
                None => Some(Chap::generate()?),
            }
        } else {
            None
        };
        // A concurrent export can take the target id chosen; then look again.
        for _ in 0..8 {
            let targets = self.show()?;
            if let Some(t) = targets.iter().find(|t| t.iqn == iqn) {
                self.reconcile(volume, t, device_path, chap.as_ref())?;
                return Ok(chap.map(|c| c.provider_auth()));
            }
            let tid = tgtadm::free_tid(&targets);
            match self.run(&self.tgtadm.new_target(tid, &iqn), None)? {
                Ok(_) => {
                    self.system.log(
                        Level::Info,
                        &format!("volume {}: created target {iqn} (tid {tid})", volume.id),
                    );
                    let fresh = TargetInfo {
                        tid,
                        iqn: iqn.clone(),
                        ..TargetInfo::default()
                    };
                    if let Err(e) = self.reconcile(volume, &fresh, device_path, chap.as_ref()) {
                        self.undo_create(tid, chap.as_ref());
                        return Err(e);
                    }
                    return Ok(chap.map(|c| c.provider_auth()));
                }
                Err(r) if r.kind == Refusal::Exists => continue,
                Err(r) => {
                    return Err(DriverError::internal(format!(
                        "tgtd refused to create target {iqn} (tid {tid}): {}",
                        r.message
                    )));
                }
            }
        }
        Err(DriverError::backend_unavailable(format!(
            "could not create target {iqn}: every free target id was taken by a concurrent \
             export 8 times running; try again"
        )))
    }

    /// The device must be a `volume-*` entry right under `backing_store_dir`: all the
    /// operator granted.
    fn check_device_path(&self, volume: &Volume, path: &str) -> Result<()> {
        let dir = &self.settings.backing_store_dir;
        let name = path
            .strip_prefix(dir.as_str())
            .and_then(|rest| rest.strip_prefix('/'));
        match name {
            Some(name)
                if name.starts_with("volume-")
                    && !name.contains('/')
                    && name.len() > "volume-".len() =>
            {
                Ok(())
            }
            _ => Err(DriverError::invalid_argument(format!(
                "volume {} lives at `{path}`, which is not a volume-* entry of \
                 backing_store_dir `{dir}`; set backing_store_dir to the directory the paired \
                 volume driver keeps its volumes in",
                volume.id
            ))),
        }
    }

    /// Brings an existing target to the wanted state: LUN 1 on `device_path`, exactly the
    /// volume's CHAP account.
    fn reconcile(
        &mut self,
        volume: &Volume,
        target: &TargetInfo,
        device_path: &str,
        chap: Option<&Chap>,
    ) -> Result<()> {
        let tid = target.tid;
        match target.backing_store(LUN) {
            None => self.add_lun(target, device_path)?,
            Some(Some(path)) if path == device_path => {}
            Some(other) => {
                return Err(DriverError::invalid_argument(format!(
                    "volume {} is already exported as {} (tid {tid}) from `{}`, not from \
                     `{device_path}`; remove the export first",
                    volume.id,
                    target.iqn,
                    other.unwrap_or("nothing")
                )));
            }
        }
        if let Some(chap) = chap
            && !target.accounts.contains(&chap.user)
        {
            self.add_account(tid, chap)?;
        }
        // Any other account would let its holder in too.
        for stale in &target.accounts {
            if chap.is_none_or(|c| &c.user != stale) {
                self.idempotent(
                    &format!("delete stale account {stale} of target {}", target.iqn),
                    &self.tgtadm.delete_account(stale),
                    Refusal::Missing,
                    None,
                )?;
            }
        }
        Ok(())
    }

    fn add_lun(&mut self, target: &TargetInfo, device_path: &str) -> Result<()> {
        let args = self.tgtadm.new_lun(target.tid, device_path);
        match self.run(&args, None)? {
            Ok(_) => Ok(()),
            Err(r) if r.kind == Refusal::Exists => {
                // A concurrent export of the same volume added it: it must be ours.
                let now = self.find(&target.iqn)?;
                match now.as_ref().and_then(|t| t.backing_store(LUN)) {
                    Some(Some(p)) if p == device_path => Ok(()),
                    _ => Err(DriverError::internal(format!(
                        "target {} got a different LUN {LUN} while it was being exported; \
                         remove the export and try again",
                        target.iqn
                    ))),
                }
            }
            Err(r) => Err(DriverError::internal(format!(
                "tgtd refused to export `{device_path}` as LUN {LUN} of {}: {} (does it exist, \
                 and can tgtd open it for reading and writing?)",
                target.iqn, r.message
            ))),
        }
    }

    fn add_account(&mut self, tid: u32, chap: &Chap) -> Result<()> {
        let secret = Some(chap.secret.as_str());
        let new = self.tgtadm.new_account(&chap.user, &chap.secret);
        match self.run(&new, secret)? {
            Ok(_) => {}
            Err(r) if r.kind == Refusal::Exists => {
                // Left from an interrupted export, with a secret no one can know: make it
                // again with the volume's.
                let delete = self.tgtadm.delete_account(&chap.user);
                self.idempotent(
                    &format!("replace CHAP account {}", chap.user),
                    &delete,
                    Refusal::Missing,
                    None,
                )?;
                self.must(&format!("create CHAP account {}", chap.user), &new, secret)?;
            }
            Err(r) => {
                return Err(DriverError::internal(format!(
                    "tgtd refused to create CHAP account {}: {}",
                    chap.user, r.message
                )));
            }
        }
        let bind = self.tgtadm.bind_account(tid, &chap.user);
        self.idempotent(
            &format!("bind CHAP account {} to target id {tid}", chap.user),
            &bind,
            Refusal::Exists,
            None,
        )
    }

    /// Best effort after a failed export: the error already says what went wrong.
    fn undo_create(&mut self, tid: u32, chap: Option<&Chap>) {
        let _ = self.run(&self.tgtadm.delete_target(tid), None);
        if let Some(chap) = chap {
            let _ = self.run(&self.tgtadm.delete_account(&chap.user), None);
        }
    }

    pub fn remove_export(&mut self, volume: &Volume) -> Result<()> {
        check_id("volume", &volume.id)?;
        let iqn = self.settings.iqn(&volume.id);
        let Some(target) = self.find(&iqn)? else {
            self.system.log(
                Level::Debug,
                &format!("volume {}: no target {iqn} to remove", volume.id),
            );
            return Ok(());
        };
        self.idempotent(
            &format!("delete target {iqn} (tid {})", target.tid),
            &self.tgtadm.delete_target(target.tid),
            Refusal::Missing,
            None,
        )?;
        for user in &target.accounts {
            self.idempotent(
                &format!("delete CHAP account {user}"),
                &self.tgtadm.delete_account(user),
                Refusal::Missing,
                None,
            )?;
        }
        self.system.log(
            Level::Info,
            &format!(
                "volume {}: removed target {iqn} (tid {})",
                volume.id, target.tid
            ),
        );
        Ok(())
    }

    fn require_target(&mut self, volume: &Volume, iqn: &str) -> Result<TargetInfo> {
        self.find(iqn)?.ok_or_else(|| {
            DriverError::not_found(format!(
                "volume {} has no iSCSI target {iqn} on the tgtd at control port {}; create \
                 its export again (tgtd forgets its targets when it restarts)",
                volume.id, self.tgtadm.control_port
            ))
        })
    }

    pub fn initialize_connection(
        &mut self,
        volume: &Volume,
        connector: &Connector,
    ) -> Result<ConnectionInfo> {
        check_id("volume", &volume.id)?;
        let initiator = connector.initiator.as_deref().unwrap_or("");
        if initiator.is_empty() {
            return Err(DriverError::invalid_argument(format!(
                "the connector of host `{}` has no initiator name; an iSCSI attach needs the \
                 initiator's IQN in the connector's `initiator`",
                connector.host
            )));
        }
        check_initiator(initiator)?;
        let iqn = self.settings.iqn(&volume.id);
        let target = self.require_target(volume, &iqn)?;
        if !matches!(target.backing_store(LUN), Some(Some(_))) {
            return Err(DriverError::internal(format!(
                "target {iqn} has no LUN {LUN}; remove the export and create it again"
            )));
        }
        let chap = if self.settings.use_chap_auth {
            let chap = volume
                .provider_auth
                .as_deref()
                .and_then(Chap::parse)
                .ok_or_else(|| {
                    DriverError::internal(format!(
                        "volume {} has no CHAP credentials recorded (provider_auth), but its \
                         export needs them; remove the export and create it again",
                        volume.id
                    ))
                })?;
            if !target.accounts.contains(&chap.user) {
                return Err(DriverError::internal(format!(
                    "target {iqn} does not carry the volume's CHAP account {}; remove the \
                     export and create it again",
                    chap.user
                )));
            }
            Some(chap)
        } else {
            None
        };
        self.idempotent(
            &format!("let initiator {initiator} into target {iqn}"),
            &self.tgtadm.bind_initiator(target.tid, initiator),
            Refusal::Exists,
            None,
        )?;
        self.system.log(
            Level::Info,
            &format!(
                "volume {}: initiator {initiator} may log in to {iqn}",
                volume.id
            ),
        );
        let text = |s: &str| Value::Text(s.to_string());
        let mut data = vec![
            ("target_discovered".to_string(), Value::Flag(false)),
            ("target_iqn".to_string(), text(&iqn)),
            ("target_portal".to_string(), text(&self.settings.portal())),
            ("target_lun".to_string(), Value::Integer(LUN.into())),
            ("volume_id".to_string(), text(&volume.id)),
        ];
        if let Some(chap) = chap {
            data.push(("auth_method".to_string(), text("CHAP")));
            data.push(("auth_username".to_string(), text(&chap.user)));
            data.push(("auth_password".to_string(), text(&chap.secret)));
        }
        Ok(ConnectionInfo {
            driver_volume_type: "iscsi".to_string(),
            data,
        })
    }

    /// Takes the connector's initiator off the target's ACL; with no connector, every
    /// initiator (Cinder's force detach). A missing target has nobody to shut out.
    pub fn terminate_connection(
        &mut self,
        volume: &Volume,
        connector: Option<&Connector>,
    ) -> Result<()> {
        check_id("volume", &volume.id)?;
        let iqn = self.settings.iqn(&volume.id);
        let Some(target) = self.find(&iqn)? else {
            return Ok(());
        };
        let initiators: Vec<String> = match connector {
            Some(c) => {
                let initiator = c.initiator.as_deref().unwrap_or("");
                if initiator.is_empty() {
                    return Err(DriverError::invalid_argument(format!(
                        "the connector of host `{}` has no initiator name; send the one it \
                         attached with, or no connector to detach every initiator",
                        c.host
                    )));
                }
                check_initiator(initiator)?;
                vec![initiator.to_string()]
            }
            // Only initiator names: the driver never binds addresses, and may not unbind
            // them (plugin.toml asks for names only).
            None => target
                .acl
                .iter()
                .filter(|a| check_initiator(a).is_ok())
                .cloned()
                .collect(),
        };
        for initiator in &initiators {
            self.idempotent(
                &format!("shut initiator {initiator} out of target {iqn}"),
                &self.tgtadm.unbind_initiator(target.tid, initiator),
                Refusal::Missing,
                None,
            )?;
        }
        self.system.log(
            Level::Info,
            &format!(
                "volume {}: initiators {initiators:?} may no longer log in to {iqn}",
                volume.id
            ),
        );
        Ok(())
    }
}

fn redact_error(e: DriverError, secret: Option<&str>) -> DriverError {
    let r = |m: String| redact(&m, secret);
    match e {
        DriverError::NotFound(m) => DriverError::NotFound(r(m)),
        DriverError::InvalidArgument(m) => DriverError::InvalidArgument(r(m)),
        DriverError::NotSupported(m) => DriverError::NotSupported(r(m)),
        DriverError::CapacityExceeded(m) => DriverError::CapacityExceeded(r(m)),
        DriverError::BackendUnavailable(m) => DriverError::BackendUnavailable(r(m)),
        DriverError::Internal(m) => DriverError::Internal(r(m)),
    }
}

/// tgtadm and the log through the host's calls.
pub struct HostSystem;

impl System for HostSystem {
    fn tgtadm(&mut self, args: &[String]) -> std::result::Result<Output, ExecError> {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        ashlar_sdk::exec::run("tgtadm", &args)
    }
    fn log(&mut self, level: Level, message: &str) {
        match level {
            Level::Error => ashlar_sdk::log::error(message),
            Level::Warn => ashlar_sdk::log::warn(message),
            Level::Info => ashlar_sdk::log::info(message),
            Level::Debug | Level::Trace => ashlar_sdk::log::debug(message),
        }
    }
}

/// The component's driver: [`Target`] over the host calls.
pub struct TgtDriver {
    target: Option<Target<HostSystem>>,
}

impl TgtDriver {
    fn target(&mut self) -> Result<&mut Target<HostSystem>> {
        if self.target.is_none() {
            let settings = Settings::from_config(ashlar_sdk::config::get)?;
            self.target = Some(Target::new(settings, HostSystem));
        }
        Ok(self.target.as_mut().expect("set above"))
    }
}

impl TargetDriver for TgtDriver {
    fn new() -> Self {
        TgtDriver { target: None }
    }
    fn do_setup(&mut self) -> Result<()> {
        self.target().map(|_| ())
    }
    fn check_for_setup_error(&mut self) -> Result<()> {
        self.target()?.check()
    }
    fn create_export(&mut self, volume: Volume, device_path: String) -> Result<ModelUpdate> {
        let provider_auth = self.target()?.create_export(&volume, &device_path)?;
        Ok(match provider_auth {
            Some(auth) => ModelUpdate::default().with_auth(auth),
            None => ModelUpdate::default(),
        })
    }
    fn remove_export(&mut self, volume: Volume) -> Result<()> {
        self.target()?.remove_export(&volume)
    }
    fn initialize_connection(
        &mut self,
        volume: Volume,
        connector: Connector,
    ) -> Result<ConnectionInfo> {
        self.target()?.initialize_connection(&volume, &connector)
    }
    fn terminate_connection(&mut self, volume: Volume, connector: Option<Connector>) -> Result<()> {
        self.target()?
            .terminate_connection(&volume, connector.as_ref())
    }
}

ashlar_sdk::register_target_driver!(TgtDriver);

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn settings(pairs: &[(&str, &str)]) -> Result<Settings> {
        let mut map: BTreeMap<String, String> = [
            ("target_ip_address", "192.0.2.10"),
            ("control_port", "0"),
            ("backing_store_dir", "/srv/volumes"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        for (k, v) in pairs {
            if v.is_empty() {
                map.remove(*k);
            } else {
                map.insert(k.to_string(), v.to_string());
            }
        }
        Settings::from_config(|k| map.get(k).cloned())
    }

    fn invalid(r: Result<Settings>) -> String {
        match r {
            Err(DriverError::InvalidArgument(m)) => m,
            other => panic!("expected invalid-argument, got {other:?}"),
        }
    }

    #[test]
    fn settings_defaults_follow_cinder() {
        let s = settings(&[]).unwrap();
        assert_eq!(s.iqn_prefix, "iqn.2010-10.org.openstack:");
        assert_eq!(s.target_port, 3260);
        assert_eq!(s.portal(), "192.0.2.10:3260");
        assert!(s.use_chap_auth);
        assert_eq!(s.iqn("abc-1"), "iqn.2010-10.org.openstack:volume-abc-1");
        let s = settings(&[
            ("target_ip_address", "2001:db8::1"),
            ("target_port", "3261"),
        ])
        .unwrap();
        assert_eq!(s.portal(), "[2001:db8::1]:3261");
        let s = settings(&[("use_chap_auth", "False"), ("control_port", "4000")]).unwrap();
        assert!(!s.use_chap_auth);
        assert_eq!(s.control_port, 4000);
    }

    #[test]
    fn bad_settings_name_the_key() {
        for (key, value, expect) in [
            ("target_ip_address", "", "needs `target_ip_address`"),
            ("target_ip_address", "tgt.example", "is not an IP address"),
            ("control_port", "", "needs `control_port`"),
            ("control_port", "32768", "from 0 to 32767"),
            ("control_port", "-1", "control_port `-1`"),
            ("target_port", "0", "target_port `0`"),
            ("backing_store_dir", "", "needs `backing_store_dir`"),
            ("backing_store_dir", "srv", "must be an absolute path"),
            ("backing_store_dir", "/srv/", "without a trailing slash"),
            ("iqn_prefix", "eui.123", "must start with `iqn.`"),
            ("iqn_prefix", "iqn.a b", "must start with `iqn.`"),
            ("use_chap_auth", "maybe", "use_chap_auth `maybe`"),
        ] {
            let msg = invalid(settings(&[(key, value)]));
            assert!(msg.contains(expect), "{key}={value}: {msg}");
        }
    }

    #[test]
    fn chap_accounts_are_random_and_round_trip_through_provider_auth() {
        let a = Chap::generate().unwrap();
        let b = Chap::generate().unwrap();
        assert_eq!(a.user.len(), CHAP_USER_LEN);
        assert_eq!(a.secret.len(), CHAP_SECRET_LEN);
        assert!(a.secret.bytes().all(|c| CHAP_ALPHABET.contains(&c)));
        assert_ne!(a.user, b.user);
        assert_ne!(a.secret, b.secret);
        let auth = a.provider_auth();
        assert_eq!(auth, format!("CHAP {} {}", a.user, a.secret));
        assert_eq!(Chap::parse(&auth), Some(a.clone()));
        assert!(!format!("{a:?}").contains(&a.secret));
        for bad in ["", "CHAP", "CHAP u", "PLAIN u s", "CHAP u s extra"] {
            assert_eq!(Chap::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn random_text_uses_every_character_of_the_alphabet() {
        let mut seen = std::collections::BTreeSet::new();
        for _ in 0..200 {
            seen.extend(random_text(16).unwrap().bytes());
        }
        assert_eq!(seen.len(), CHAP_ALPHABET.len());
    }

    #[test]
    fn secrets_are_scrubbed_from_errors() {
        let e = DriverError::BackendUnavailable(
            "exec `tgtadm --user u --password s3cret` refused".into(),
        );
        match redact_error(e, Some("s3cret")) {
            DriverError::BackendUnavailable(m) => {
                assert_eq!(m, "exec `tgtadm --user u --password ***` refused")
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(redact("no secret here", None), "no secret here");
        assert_eq!(redact("x", Some("")), "x");
    }

    #[test]
    fn initiator_names_are_checked() {
        for ok in [
            "iqn.1994-05.com.redhat:abc",
            "eui.02004567A425678D",
            "naa.52004567BA64678D",
        ] {
            check_initiator(ok).unwrap();
        }
        for bad in ["", "ALL", "127.0.0.1", "iqn.a b", "iqn.a/b"] {
            assert!(
                matches!(check_initiator(bad), Err(DriverError::InvalidArgument(_))),
                "{bad}"
            );
        }
    }
}
