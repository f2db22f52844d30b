//! `ashlar plugin inspect` and `validate`: answers about a component without a server.

use std::fmt::Write;
use std::path::Path;

use anyhow::Context;
use sha2::{Digest, Sha256};

use crate::capabilities::{self, Manifest};
use crate::config::Config;
use crate::runtime::{Runtime, contract_version, latest};

fn read(wasm: &Path, manifest: Option<&Path>) -> anyhow::Result<(Vec<u8>, Manifest)> {
    let bytes = std::fs::read(wasm).with_context(|| format!("reading {}", wasm.display()))?;
    let manifest_path = manifest
        .map(Path::to_path_buf)
        .unwrap_or_else(|| wasm.with_extension("toml"));
    let manifest = Manifest::load(&manifest_path).with_context(|| {
        format!(
            "the component's plugin.toml is expected at {}",
            manifest_path.display()
        )
    })?;
    Ok((bytes, manifest))
}

/// Whether this host can serve the component's contract, in words.
fn contract_verdict(bytes: &[u8]) -> (String, bool) {
    let served = latest::VERSION;
    match contract_version(bytes) {
        Ok(Some(v)) if v.major == served.major && v.minor == served.minor => {
            (format!("{v} (served here)"), true)
        }
        Ok(Some(v)) => (
            format!("{v} (NOT served: this host serves {served})"),
            false,
        ),
        Ok(None) => ("none: not built with the Ashlar SDK".into(), false),
        Err(e) => (format!("unreadable: {e}"), false),
    }
}

pub fn inspect(wasm: &Path, manifest: Option<&Path>) -> anyhow::Result<String> {
    let (bytes, m) = read(wasm, manifest)?;
    let mut out = String::new();
    let digest: String = Sha256::digest(&bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    writeln!(out, "name:        {}", m.name)?;
    writeln!(out, "version:     {}", m.version)?;
    writeln!(out, "world:       {}", m.world)?;
    if let Some(d) = &m.description {
        writeln!(out, "description: {d}")?;
    }
    writeln!(out, "contract:    {}", contract_verdict(&bytes).0)?;
    writeln!(out, "size:        {} bytes (sha256 {digest})", bytes.len())?;
    writeln!(out, "requests:")?;
    for e in &m.capabilities.exec {
        writeln!(out, "  exec  {} {}", e.program, e.args.join(" "))?;
    }
    for b in &m.capabilities.block {
        writeln!(out, "  block {b}")?;
    }
    for h in &m.capabilities.http {
        writeln!(out, "  http  {h}")?;
    }
    if m.capabilities.exec.is_empty()
        && m.capabilities.block.is_empty()
        && m.capabilities.http.is_empty()
    {
        writeln!(out, "  nothing")?;
    }
    let runtime = Runtime::new(None)?;
    match runtime.compile(&m.name, &bytes) {
        Ok(component) => {
            let ty = component.component_type();
            writeln!(out, "imports:")?;
            for (name, _) in ty.imports(runtime.engine()) {
                writeln!(out, "  {name}")?;
            }
            writeln!(out, "exports:")?;
            for (name, _) in ty.exports(runtime.engine()) {
                writeln!(out, "  {name}")?;
            }
        }
        Err(e) => writeln!(out, "compile:     FAILED: {e}")?,
    }
    Ok(out)
}

/// Reports, per backend, whether the component would load and what would be refused.
/// The bool is whether it would load on every backend checked.
pub fn validate(
    wasm: &Path,
    manifest: Option<&Path>,
    cfg: &Config,
    only: Option<&str>,
) -> anyhow::Result<(String, bool)> {
    let (bytes, m) = read(wasm, manifest)?;
    let mut out = String::new();
    let mut ok = true;
    let (contract, served) = contract_verdict(&bytes);
    writeln!(out, "{} {}: contract {contract}", m.name, m.version)?;
    ok &= served;
    let as_target = m.world == capabilities::World::TargetDriver;
    if m.world == capabilities::World::BackupDriver {
        writeln!(out, "world {}: NOT served by this host yet", m.world)?;
        ok = false;
    }
    let runtime = Runtime::new(None)?;
    if let Err(e) = runtime.compile(&m.name, &bytes) {
        writeln!(out, "compile: FAILED: {e}")?;
        ok = false;
    }
    let mut checked = 0;
    for (name, backend) in &cfg.backends {
        if only.is_some_and(|o| o != name) {
            continue;
        }
        // A target driver is checked against the backend's `[target]` section.
        let (what, settings, grants) = match (as_target, &backend.target) {
            (false, _) => (
                format!("backend {name}"),
                &backend.settings,
                &backend.grants,
            ),
            (true, Some(t)) => (format!("backend {name} target"), &t.settings, &t.grants),
            (true, None) => {
                if only.is_some() {
                    checked += 1;
                    ok = false;
                    writeln!(
                        out,
                        "backend {name}: has no [target] section for a target driver"
                    )?;
                }
                continue;
            }
        };
        checked += 1;
        let section = if as_target {
            format!("{name}.target")
        } else {
            name.clone()
        };
        match capabilities::grant(&m, &section, &m.settings_with_defaults(settings), grants) {
            Ok(_) => writeln!(out, "{what}: every requested capability is granted")?,
            Err(e) => {
                ok = false;
                writeln!(out, "{what}: REFUSED: {e}")?;
            }
        }
    }
    if let Some(o) = only
        && checked == 0
    {
        anyhow::bail!("the config has no backend `{o}`");
    }
    writeln!(out, "{}", if ok { "would load" } else { "would NOT load" })?;
    Ok((out, ok))
}

/// `ashlar plugin list` as a table.
pub fn render_list(body: &serde_json::Value) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<12} {:<12} {:<8} {:<9} {:>8} {:>6} {:>9} {:>9}  {:<27} last event",
        "BACKEND", "PLUGIN", "VERSION", "CONTRACT", "CALLS", "TRAPS", "P50(us)", "P99(us)", "SINCE"
    );
    for p in body["plugins"].as_array().into_iter().flatten() {
        let opt = |v: &serde_json::Value| v.as_u64().map_or("-".to_string(), |n| n.to_string());
        let event = &p["last_event"];
        let last = if event.is_null() {
            "-".to_string()
        } else {
            format!(
                "{} {} ({}{})",
                event["kind"].as_str().unwrap_or(""),
                event["to_version"].as_str().unwrap_or(""),
                event["created_at"].as_str().unwrap_or(""),
                event["reason"]
                    .as_str()
                    .map(|r| format!(": {r}"))
                    .unwrap_or_default()
            )
        };
        // A backend's target driver is its own row, named as its config section is.
        let mut backend = p["backend"].as_str().unwrap_or("").to_string();
        if p["world"] == "target-driver" {
            backend.push_str(".target");
        }
        let _ = writeln!(
            out,
            "{:<12} {:<12} {:<8} {:<9} {:>8} {:>6} {:>9} {:>9}  {:<27} {last}",
            backend,
            p["plugin"].as_str().unwrap_or(""),
            p["version"].as_str().unwrap_or(""),
            p["contract"].as_str().unwrap_or(""),
            p["calls"],
            p["traps"],
            opt(&p["p50_us"]),
            opt(&p["p99_us"]),
            p["since"].as_str().unwrap_or(""),
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_target_driver_row_is_named_after_its_section() {
        let row = |world: &str, plugin: &str| {
            serde_json::json!({"backend": "tgt", "world": world, "plugin": plugin,
                "version": "0.1.0", "contract": "0.2.0", "calls": 3, "traps": 0,
                "p50_us": 120, "p99_us": null, "since": "2026-11-25T00:00:00", "last_event": null})
        };
        let body = serde_json::json!({"plugins": [
            row("volume-driver", "nfs"),
            row("target-driver", "iscsi-tgt"),
        ]});
        let text = render_list(&body);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3, "{text}");
        assert!(
            lines[1].starts_with("tgt ") && lines[1].contains("nfs"),
            "{text}"
        );
        assert!(
            lines[2].starts_with("tgt.target ") && lines[2].contains("iscsi-tgt"),
            "{text}"
        );
        assert!(
            lines[1].contains(" 120 ") && lines[1].contains(" - "),
            "{text}"
        );
    }
}
