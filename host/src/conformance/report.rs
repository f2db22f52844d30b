//! What a conformance run found: each check's result, the summary, the exit code, the
//! table printed to the terminal and the certificate written as JSON. Pure: nothing here
//! calls a driver.

use std::fmt::Write;

use serde::Serialize;

/// The groups checks are reported in (csi-sanity's, plus Ashlar's own).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Category {
    /// Loading, setup and `get_volume_stats` with Cinder's required keys.
    Capabilities,
    /// What the pools report before and after volumes come and go.
    Capacity,
    CreateDelete,
    Snapshots,
    /// Clones and volumes from snapshots.
    Copies,
    Expand,
    /// Connections and exports (initialize/terminate, create/remove export).
    PublishUnpublish,
    /// Features Cinder does not require: revert, manage, retype, health.
    Optional,
    /// What the sandbox lets the driver do.
    Sandbox,
    /// Two hosts running the same backend.
    ActiveActive,
    /// A target driver's exports and connections.
    Target,
    /// A backup driver's objects.
    Objects,
    /// Whatever the run made is gone again.
    Cleanup,
}

impl Category {
    pub fn as_str(self) -> &'static str {
        match self {
            Category::Capabilities => "capabilities",
            Category::Capacity => "capacity",
            Category::CreateDelete => "create-delete",
            Category::Snapshots => "snapshots",
            Category::Copies => "copies",
            Category::Expand => "expand",
            Category::PublishUnpublish => "publish-unpublish",
            Category::Optional => "optional",
            Category::Sandbox => "sandbox",
            Category::ActiveActive => "active-active",
            Category::Target => "target",
            Category::Objects => "objects",
            Category::Cleanup => "cleanup",
        }
    }
}

/// How one check ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    Pass,
    Fail,
    /// Not run: the driver does not support the feature, or the check does not apply.
    Skip,
    /// Passed in a way an operator should know about.
    Warn,
}

impl Verdict {
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Pass => "pass",
            Verdict::Fail => "fail",
            Verdict::Skip => "skip",
            Verdict::Warn => "warn",
        }
    }
}

/// A verdict with its reason.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    pub verdict: Verdict,
    pub message: String,
}

impl Outcome {
    pub fn pass(message: impl Into<String>) -> Outcome {
        Outcome {
            verdict: Verdict::Pass,
            message: message.into(),
        }
    }
    pub fn fail(message: impl Into<String>) -> Outcome {
        Outcome {
            verdict: Verdict::Fail,
            message: message.into(),
        }
    }
    pub fn skip(message: impl Into<String>) -> Outcome {
        Outcome {
            verdict: Verdict::Skip,
            message: message.into(),
        }
    }
    pub fn warn(message: impl Into<String>) -> Outcome {
        Outcome {
            verdict: Verdict::Warn,
            message: message.into(),
        }
    }
    /// Pass when `ok`, else fail, with the same message.
    pub fn check(ok: bool, message: impl Into<String>) -> Outcome {
        if ok {
            Outcome::pass(message)
        } else {
            Outcome::fail(message)
        }
    }
    pub fn passed(&self) -> bool {
        matches!(self.verdict, Verdict::Pass | Verdict::Warn)
    }
}

/// One check as the certificate records it.
#[derive(Debug, Clone, Serialize)]
pub struct CheckResult {
    pub id: String,
    pub category: Category,
    pub required: bool,
    pub result: Verdict,
    pub message: String,
    pub duration_ms: u64,
}

/// The counts at the bottom of the table and in the certificate.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Summary {
    pub total: usize,
    pub passed: usize,
    pub failed: usize,
    pub skipped: usize,
    pub warnings: usize,
    pub required_failed: usize,
}

impl Summary {
    pub fn of(checks: &[CheckResult]) -> Summary {
        let mut s = Summary {
            total: checks.len(),
            ..Summary::default()
        };
        for c in checks {
            match c.result {
                Verdict::Pass => s.passed += 1,
                Verdict::Fail => {
                    s.failed += 1;
                    if c.required {
                        s.required_failed += 1;
                    }
                }
                Verdict::Skip => s.skipped += 1,
                Verdict::Warn => s.warnings += 1,
            }
        }
        s
    }

    /// The command's exit code: 1 when a required check failed, else 0. (Usage and load
    /// errors exit 2 before any check runs.)
    pub fn exit_code(&self) -> u8 {
        if self.required_failed > 0 { 1 } else { 0 }
    }
}

/// Whether two hosts can run the backend as one, and why not.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ActiveActive {
    /// `None` when it was not assessed (a target or backup driver, or `--no-active-active`).
    pub safe: Option<bool>,
    pub reasons: Vec<String>,
}

/// The component a certificate is about.
#[derive(Debug, Clone, Serialize)]
pub struct Component {
    pub name: String,
    pub version: String,
    pub world: String,
    pub contract: String,
    /// `sha256:<hex>` of the component's bytes.
    pub digest: String,
    pub size: usize,
    pub origin: String,
}

/// The certificate `--certificate` writes.
#[derive(Debug, Clone, Serialize)]
pub struct Certificate {
    pub component: Component,
    /// The config section the driver ran on: `backend NAME`, `backend NAME target` or
    /// `backup store`.
    pub backend: String,
    /// The host that ran the checks (the config's `host_name`), and Ashlar's version.
    pub host: String,
    pub ashlar_version: String,
    pub started_at: String,
    pub duration_ms: u64,
    pub summary: Summary,
    pub active_active: ActiveActive,
    pub checks: Vec<CheckResult>,
}

impl Certificate {
    /// One line per check, then the summary and the active-active verdict.
    pub fn table(&self) -> String {
        let mut out = String::new();
        let c = &self.component;
        let _ = writeln!(
            out,
            "{} {} ({}, contract {}, {}) on {}",
            c.name, c.version, c.world, c.contract, c.digest, self.backend
        );
        let width = self.checks.iter().map(|c| c.id.len()).max().unwrap_or(10);
        let _ = writeln!(
            out,
            "{:<6} {:<width$} {:<18} {:<8} {:>7}  MESSAGE",
            "RESULT", "CHECK", "CATEGORY", "REQUIRED", "MS"
        );
        for check in &self.checks {
            let _ = writeln!(
                out,
                "{:<6} {:<width$} {:<18} {:<8} {:>7}  {}",
                check.result.as_str().to_uppercase(),
                check.id,
                check.category.as_str(),
                if check.required { "yes" } else { "no" },
                check.duration_ms,
                one_line(&check.message),
            );
        }
        let s = &self.summary;
        let _ = writeln!(
            out,
            "{} checks: {} passed, {} failed ({} required), {} skipped, {} warnings in {} ms",
            s.total, s.passed, s.failed, s.required_failed, s.skipped, s.warnings, self.duration_ms
        );
        match self.active_active.safe {
            Some(true) => {
                let _ = writeln!(out, "active-active: safe");
            }
            Some(false) => {
                let _ = writeln!(
                    out,
                    "active-active: NOT safe: {}",
                    self.active_active.reasons.join("; ")
                );
            }
            None => {}
        }
        let _ = writeln!(
            out,
            "{}",
            if s.required_failed == 0 {
                "CONFORMS: every required check passed".to_string()
            } else {
                let failed: Vec<&str> = self
                    .checks
                    .iter()
                    .filter(|c| c.required && c.result == Verdict::Fail)
                    .map(|c| c.id.as_str())
                    .collect();
                format!(
                    "DOES NOT CONFORM: required checks failed: {}",
                    failed.join(", ")
                )
            }
        );
        out
    }
}

/// A message on one table line: newlines folded, long texts cut.
fn one_line(message: &str) -> String {
    let flat: String = message
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    const MAX: usize = 160;
    if flat.chars().count() > MAX {
        let cut: String = flat.chars().take(MAX - 1).collect();
        format!("{cut}…")
    } else {
        flat
    }
}

/// `sha256:<hex>` of `bytes`.
pub fn digest(bytes: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    let hex: String = Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("sha256:{hex}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(id: &str, required: bool, result: Verdict) -> CheckResult {
        CheckResult {
            id: id.into(),
            category: Category::CreateDelete,
            required,
            result,
            message: "line one\nline two".into(),
            duration_ms: 3,
        }
    }

    fn certificate(checks: Vec<CheckResult>) -> Certificate {
        Certificate {
            component: Component {
                name: "nfs".into(),
                version: "0.1.0".into(),
                world: "volume-driver".into(),
                contract: "0.2.0".into(),
                digest: digest(b"abc"),
                size: 3,
                origin: "bundled driver nfs".into(),
            },
            backend: "backend b".into(),
            host: "h".into(),
            ashlar_version: "0.1.0".into(),
            started_at: "2026-12-02T00:00:00Z".into(),
            duration_ms: 10,
            summary: Summary::of(&checks),
            active_active: ActiveActive {
                safe: Some(false),
                reasons: vec!["B cannot see A's volume".into()],
            },
            checks,
        }
    }

    #[test]
    fn a_failed_optional_check_does_not_fail_the_run_but_a_required_one_does() {
        let checks = vec![
            check("a", true, Verdict::Pass),
            check("b", false, Verdict::Fail),
            check("c", false, Verdict::Skip),
            check("d", true, Verdict::Warn),
        ];
        let s = Summary::of(&checks);
        assert_eq!(
            s,
            Summary {
                total: 4,
                passed: 1,
                failed: 1,
                skipped: 1,
                warnings: 1,
                required_failed: 0
            }
        );
        assert_eq!(s.exit_code(), 0);
        let mut checks = checks;
        checks.push(check("volume.create", true, Verdict::Fail));
        let s = Summary::of(&checks);
        assert_eq!((s.failed, s.required_failed, s.exit_code()), (2, 1, 1));
    }

    #[test]
    fn the_table_has_a_line_per_check_and_names_the_required_failures() {
        let cert = certificate(vec![
            check("volume.create", true, Verdict::Fail),
            check("volume.revert", false, Verdict::Skip),
        ]);
        let table = cert.table();
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(lines.len(), 7, "{table}");
        assert!(lines[0].starts_with("nfs 0.1.0 (volume-driver, contract 0.2.0, sha256:ba7816bf"));
        assert!(lines[2].starts_with("FAIL") && lines[2].contains("line one line two"));
        assert!(lines[3].starts_with("SKIP") && lines[3].contains(" no "));
        assert!(lines[4].starts_with("2 checks: 0 passed, 1 failed (1 required), 1 skipped"));
        assert_eq!(lines[5], "active-active: NOT safe: B cannot see A's volume");
        assert_eq!(
            lines[6],
            "DOES NOT CONFORM: required checks failed: volume.create"
        );
    }

    #[test]
    fn the_certificate_has_its_documented_shape() {
        let cert = certificate(vec![check("volume.create", true, Verdict::Pass)]);
        let json = serde_json::to_value(&cert).unwrap();
        assert_eq!(
            json["component"]["digest"],
            "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(json["summary"]["passed"], 1);
        assert_eq!(json["summary"]["required_failed"], 0);
        assert_eq!(json["active_active"]["safe"], false);
        let c = &json["checks"][0];
        assert_eq!(c["id"], "volume.create");
        assert_eq!(c["category"], "create-delete");
        assert_eq!(c["required"], true);
        assert_eq!(c["result"], "pass");
        assert_eq!(c["duration_ms"], 3);
        for key in ["backend", "host", "started_at", "duration_ms"] {
            assert!(json.get(key).is_some(), "{key} missing: {json}");
        }
    }

    #[test]
    fn long_messages_are_cut_on_the_table() {
        let long = "x".repeat(500);
        let cut = one_line(&long);
        assert_eq!(cut.chars().count(), 160);
        assert!(cut.ends_with('…'));
    }
}
