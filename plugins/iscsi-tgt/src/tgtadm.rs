//! `tgtadm` command lines and what tgtd answers: pure functions, tested natively.
//!
//! Every command starts `-C <control port> --lld iscsi --mode <mode> --op <op>`, the shapes
//! `plugin.toml` grants.

/// The LUN every export uses; LUN 0 is tgtd's controller.
pub const LUN: u32 = 1;

/// Builds the argument lists for one tgtd (one control port).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Tgtadm {
    pub control_port: u16,
}

impl Tgtadm {
    pub fn new(control_port: u16) -> Self {
        Tgtadm { control_port }
    }

    fn command(&self, mode: &str, op: &str, rest: &[&str]) -> Vec<String> {
        let port = self.control_port.to_string();
        let head = ["-C", &port, "--lld", "iscsi", "--mode", mode, "--op", op];
        head.iter().chain(rest).map(|s| s.to_string()).collect()
    }

    /// Every target with its LUNs, accounts and ACLs.
    pub fn show_targets(&self) -> Vec<String> {
        self.command("target", "show", &[])
    }

    pub fn new_target(&self, tid: u32, iqn: &str) -> Vec<String> {
        let tid = tid.to_string();
        self.command("target", "new", &["--tid", &tid, "--targetname", iqn])
    }

    /// Deletes a target even while initiators are logged in (Cinder's `--force`).
    pub fn delete_target(&self, tid: u32) -> Vec<String> {
        let tid = tid.to_string();
        self.command("target", "delete", &["--force", "--tid", &tid])
    }

    pub fn new_lun(&self, tid: u32, backing_store: &str) -> Vec<String> {
        let (tid, lun) = (tid.to_string(), LUN.to_string());
        self.command(
            "logicalunit",
            "new",
            &[
                "--tid",
                &tid,
                "--lun",
                &lun,
                "--backing-store",
                backing_store,
            ],
        )
    }

    pub fn bind_initiator(&self, tid: u32, initiator: &str) -> Vec<String> {
        let tid = tid.to_string();
        self.command(
            "target",
            "bind",
            &["--tid", &tid, "--initiator-name", initiator],
        )
    }

    pub fn unbind_initiator(&self, tid: u32, initiator: &str) -> Vec<String> {
        let tid = tid.to_string();
        self.command(
            "target",
            "unbind",
            &["--tid", &tid, "--initiator-name", initiator],
        )
    }

    /// Carries the CHAP secret: never log these arguments.
    pub fn new_account(&self, user: &str, password: &str) -> Vec<String> {
        self.command("account", "new", &["--user", user, "--password", password])
    }

    /// Deleting an account also takes it off every target it was bound to.
    pub fn delete_account(&self, user: &str) -> Vec<String> {
        self.command("account", "delete", &["--user", user])
    }

    pub fn bind_account(&self, tid: u32, user: &str) -> Vec<String> {
        let tid = tid.to_string();
        self.command("account", "bind", &["--tid", &tid, "--user", user])
    }
}

/// One target as `tgtadm --op show --mode target` describes it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TargetInfo {
    pub tid: u32,
    pub iqn: String,
    /// LUN number and backing store path (`None` for the controller LUN 0).
    pub luns: Vec<(u32, Option<String>)>,
    /// Incoming CHAP accounts bound to the target.
    pub accounts: Vec<String>,
    /// Outgoing (mutual CHAP) accounts, which this driver never sets.
    pub outgoing_accounts: Vec<String>,
    /// Initiator names and addresses allowed to log in.
    pub acl: Vec<String>,
    /// Initiators logged in now.
    pub initiators: Vec<String>,
}

impl TargetInfo {
    pub fn backing_store(&self, lun: u32) -> Option<Option<&str>> {
        self.luns
            .iter()
            .find(|(n, _)| *n == lun)
            .map(|(_, p)| p.as_deref())
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Section {
    Other,
    Nexus,
    Luns,
    Accounts,
    Acl,
}

/// Parses `tgtadm --op show --mode target`. Fails, naming the line, on output it does not
/// recognise, rather than guessing at a target's state.
pub fn parse_show(out: &str) -> Result<Vec<TargetInfo>, String> {
    let mut targets: Vec<TargetInfo> = Vec::new();
    let mut section = Section::Other;
    for (n, line) in out.lines().enumerate() {
        let trimmed = line.trim();
        if trimmed.is_empty() {
            continue;
        }
        let bad = || format!("line {}: `{trimmed}`", n + 1);
        if let Some(rest) = line.strip_prefix("Target ") {
            let (tid, iqn) = rest.split_once(": ").ok_or_else(bad)?;
            targets.push(TargetInfo {
                tid: tid.parse().map_err(|_| bad())?,
                iqn: iqn.trim().to_string(),
                ..TargetInfo::default()
            });
            section = Section::Other;
            continue;
        }
        let target = targets.last_mut().ok_or_else(bad)?;
        let indent = line.len() - line.trim_start().len();
        if indent <= 4 {
            section = match trimmed {
                "I_T nexus information:" => Section::Nexus,
                "LUN information:" => Section::Luns,
                "Account information:" => Section::Accounts,
                "ACL information:" => Section::Acl,
                _ => Section::Other,
            };
            continue;
        }
        match section {
            Section::Other => {}
            Section::Nexus => {
                if let Some(rest) = trimmed.strip_prefix("Initiator: ") {
                    let name = rest.split(" alias:").next().unwrap_or(rest).trim();
                    target.initiators.push(name.to_string());
                }
            }
            Section::Luns => {
                if let Some(lun) = trimmed.strip_prefix("LUN: ") {
                    target
                        .luns
                        .push((lun.trim().parse().map_err(|_| bad())?, None));
                } else if let Some(path) = trimmed.strip_prefix("Backing store path:") {
                    let path = path.trim();
                    let (_, slot) = target.luns.last_mut().ok_or_else(bad)?;
                    if !path.is_empty() && path != "None" {
                        *slot = Some(path.to_string());
                    }
                }
            }
            Section::Accounts => match trimmed.strip_suffix(" (outgoing)") {
                Some(user) => target.outgoing_accounts.push(user.to_string()),
                None => target.accounts.push(trimmed.to_string()),
            },
            Section::Acl => target.acl.push(trimmed.to_string()),
        }
    }
    Ok(targets)
}

/// The smallest target id tgtd does not use (ids start at 1).
pub fn free_tid(targets: &[TargetInfo]) -> u32 {
    (1..)
        .find(|tid| targets.iter().all(|t| t.tid != *tid))
        .expect("some id is free")
}

/// Why tgtadm failed, from its exit status and its `tgtadm: …` message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// tgtd is not running on that control port (or its socket is unreachable).
    NoDaemon,
    /// The target, LUN, account or ACL entry to be made exists already.
    Exists,
    /// The target, account or ACL entry to be changed does not exist.
    Missing,
    /// Anything else, e.g. a backing store tgtd cannot open.
    Other,
}

pub fn classify(status: i32, stderr: &str) -> Refusal {
    let msg = stderr.to_ascii_lowercase();
    if status == 107 || msg.contains("tgt daemon") || msg.contains("can't connect") {
        Refusal::NoDaemon
    } else if msg.contains("already exists") {
        Refusal::Exists
    } else if msg.contains("can't find") || msg.contains("does not exist") {
        Refusal::Missing
    } else {
        Refusal::Other
    }
}

/// tgtadm's message without its `tgtadm: ` prefix, on one line.
pub fn message(stderr: &str) -> String {
    let text: Vec<&str> = stderr
        .lines()
        .map(|l| l.trim().trim_start_matches("tgtadm:").trim())
        .filter(|l| !l.is_empty())
        .collect();
    if text.is_empty() {
        "no message".to_string()
    } else {
        text.join("; ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Captured from tgtd 1.0.85 with one target, its LUN, an account and an ACL entry.
    const ONE_TARGET: &str = "\
Target 1: iqn.2010-10.org.openstack:volume-abc
    System information:
        Driver: iscsi
        State: ready
    I_T nexus information:
    LUN information:
        LUN: 0
            Type: controller
            SCSI ID: IET     00010000
            SCSI SN: beaf10
            Size: 0 MB, Block size: 1
            Online: Yes
            Removable media: No
            Prevent removal: No
            Readonly: No
            SWP: No
            Thin-provisioning: No
            Backing store type: null
            Backing store path: None
            Backing store flags: 
        LUN: 1
            Type: disk
            SCSI ID: IET     00010001
            SCSI SN: beaf11
            Size: 67 MB, Block size: 512
            Online: Yes
            Removable media: No
            Prevent removal: No
            Readonly: No
            SWP: No
            Thin-provisioning: No
            Backing store type: rdwr
            Backing store path: /tmp/tgtexp/vol1
            Backing store flags: 
    Account information:
        u1
    ACL information:
        iqn.1994-05.com.example:init1
";

    /// A logged-in initiator, an outgoing account, a bare target and an address ACL.
    const TWO_TARGETS: &str = "\
Target 3: iqn.2010-10.org.openstack:volume-one
    System information:
        Driver: iscsi
        State: ready
    I_T nexus information:
        I_T nexus: 1
            Initiator: iqn.1994-05.com.example:host-a alias: host-a
            Connection: 0
                IP Address: 127.0.0.1
    LUN information:
        LUN: 0
            Type: controller
            Backing store path: None
        LUN: 1
            Type: disk
            Backing store path: /dev/vg/volume-one
    Account information:
        alice
        bob (outgoing)
    ACL information:
        ALL
        iqn.1994-05.com.example:host-a
Target 7: iqn.2010-10.org.openstack:volume-two
    System information:
        Driver: iscsi
        State: ready
    I_T nexus information:
    LUN information:
        LUN: 0
            Type: controller
            Backing store path: None
    Account information:
    ACL information:
";

    #[test]
    fn commands_name_the_control_port_and_the_shapes_plugin_toml_grants() {
        let t = Tgtadm::new(3261);
        let head = "-C 3261 --lld iscsi";
        let cases = [
            (t.show_targets(), "--mode target --op show"),
            (
                t.new_target(4, "iqn.x:volume-1"),
                "--mode target --op new --tid 4 --targetname iqn.x:volume-1",
            ),
            (
                t.delete_target(4),
                "--mode target --op delete --force --tid 4",
            ),
            (
                t.new_lun(4, "/srv/v/volume-1"),
                "--mode logicalunit --op new --tid 4 --lun 1 --backing-store /srv/v/volume-1",
            ),
            (
                t.bind_initiator(4, "iqn.i:a"),
                "--mode target --op bind --tid 4 --initiator-name iqn.i:a",
            ),
            (
                t.unbind_initiator(4, "iqn.i:a"),
                "--mode target --op unbind --tid 4 --initiator-name iqn.i:a",
            ),
            (
                t.new_account("u", "p"),
                "--mode account --op new --user u --password p",
            ),
            (t.delete_account("u"), "--mode account --op delete --user u"),
            (
                t.bind_account(4, "u"),
                "--mode account --op bind --tid 4 --user u",
            ),
        ];
        for (args, rest) in cases {
            assert_eq!(args.join(" "), format!("{head} {rest}"));
        }
    }

    #[test]
    fn a_path_with_spaces_stays_one_argument() {
        let args = Tgtadm::new(0).new_lun(1, "/srv/my share/volume-1");
        assert_eq!(args.last().unwrap(), "/srv/my share/volume-1");
        assert_eq!(args.len(), 14);
    }

    #[test]
    fn parses_one_target_with_lun_account_and_acl() {
        let targets = parse_show(ONE_TARGET).unwrap();
        assert_eq!(
            targets,
            [TargetInfo {
                tid: 1,
                iqn: "iqn.2010-10.org.openstack:volume-abc".into(),
                luns: vec![(0, None), (1, Some("/tmp/tgtexp/vol1".into()))],
                accounts: vec!["u1".into()],
                outgoing_accounts: vec![],
                acl: vec!["iqn.1994-05.com.example:init1".into()],
                initiators: vec![],
            }]
        );
        assert_eq!(targets[0].backing_store(1), Some(Some("/tmp/tgtexp/vol1")));
        assert_eq!(targets[0].backing_store(0), Some(None));
        assert_eq!(targets[0].backing_store(2), None);
    }

    #[test]
    fn parses_sessions_outgoing_accounts_and_bare_targets() {
        let targets = parse_show(TWO_TARGETS).unwrap();
        assert_eq!(targets.len(), 2);
        let one = &targets[0];
        assert_eq!(
            (one.tid, one.iqn.as_str()),
            (3, "iqn.2010-10.org.openstack:volume-one")
        );
        assert_eq!(one.initiators, ["iqn.1994-05.com.example:host-a"]);
        assert_eq!(one.accounts, ["alice"]);
        assert_eq!(one.outgoing_accounts, ["bob"]);
        assert_eq!(one.acl, ["ALL", "iqn.1994-05.com.example:host-a"]);
        assert_eq!(one.backing_store(1), Some(Some("/dev/vg/volume-one")));
        let two = &targets[1];
        assert_eq!(two.tid, 7);
        assert_eq!(two.luns, [(0, None)]);
        assert!(two.accounts.is_empty() && two.acl.is_empty() && two.initiators.is_empty());
        assert_eq!(free_tid(&targets), 1);
    }

    #[test]
    fn no_targets_is_an_empty_list() {
        assert_eq!(parse_show("").unwrap(), []);
        assert_eq!(free_tid(&[]), 1);
    }

    #[test]
    fn unknown_output_is_refused_naming_the_line() {
        let err = parse_show("tgtd says hello\n").unwrap_err();
        assert!(err.contains("line 1: `tgtd says hello`"), "{err}");
        let err = parse_show("Target x: iqn.a\n").unwrap_err();
        assert!(err.contains("line 1"), "{err}");
        let err =
            parse_show("Target 1: iqn.a\n    LUN information:\n        LUN: zero\n").unwrap_err();
        assert!(err.contains("line 3"), "{err}");
    }

    #[test]
    fn free_tid_fills_the_first_gap() {
        let t = |tid| TargetInfo {
            tid,
            ..TargetInfo::default()
        };
        assert_eq!(free_tid(&[t(1), t(2), t(4)]), 3);
        assert_eq!(free_tid(&[t(2), t(1)]), 3);
    }

    #[test]
    fn classifies_tgtadm_refusals() {
        let no_daemon = "tgtadm: failed to send request hdr to tgt daemon, Transport endpoint is not connected\n";
        assert_eq!(classify(107, no_daemon), Refusal::NoDaemon);
        assert_eq!(
            classify(22, "tgtadm: this target already exists\n"),
            Refusal::Exists
        );
        assert_eq!(
            classify(22, "tgtadm: this access control rule already exists\n"),
            Refusal::Exists
        );
        assert_eq!(
            classify(22, "tgtadm: can't find the target\n"),
            Refusal::Missing
        );
        assert_eq!(
            classify(22, "tgtadm: this access control rule does not exist\n"),
            Refusal::Missing
        );
        assert_eq!(
            classify(22, "tgtadm: can't find the account\n"),
            Refusal::Missing
        );
        assert_eq!(classify(22, "tgtadm: invalid request\n"), Refusal::Other);
        assert_eq!(message("tgtadm: invalid request\n"), "invalid request");
        assert_eq!(message(""), "no message");
    }
}
