//! `ashlar plugin inspect` and `validate`: answers about a component without a server,
//! through the same source, contract check and load checks `ashlar serve` uses.

use std::fmt::Write;

use sha2::{Digest, Sha256};

use super::Part;
use super::source::{DriverConfig, DriverSource};
use crate::capabilities::{Manifest, World};
use crate::config::{BACKUP_STORE_NAME, Config};
use crate::runtime::{self, Runtime, served_contract, versions};

/// What a component is and asks for. Without its manifest, what the component says of
/// itself: the world its exports implement, its contract version, size, imports, exports.
pub fn inspect(source: &DriverSource) -> anyhow::Result<String> {
    let bytes = source.read_wasm()?;
    let mut out = String::new();
    let digest: String = Sha256::digest(&bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let exported = runtime::export_names(&bytes).map(|names| runtime::world_of_exports(&names));
    let manifest = match source.manifest_path() {
        Some(path) if !path.exists() => {
            writeln!(
                out,
                "manifest:    MISSING: no plugin.toml at {} (a manifest sits beside its .wasm, same stem, or is given with --manifest); below is what the component says of itself",
                path.display()
            )?;
            None
        }
        _ => match source.read_manifest() {
            Ok(m) => Some(m),
            Err(e) => {
                writeln!(
                    out,
                    "manifest:    UNREADABLE: {e}; below is what the component says of itself"
                )?;
                None
            }
        },
    };
    match source.read_signature() {
        Ok(None) => writeln!(out, "signed by:   nobody (no .sig beside the component)")?,
        Ok(Some(sig)) => match super::signature::verify(&bytes, &sig) {
            Ok(key) => writeln!(out, "signed by:   {key}")?,
            Err(e) => writeln!(out, "signed by:   INVALID: {e}")?,
        },
        Err(e) => writeln!(out, "signed by:   INVALID: {e}")?,
    }
    match (&manifest, &exported) {
        (Some(m), _) => {
            writeln!(out, "name:        {}", m.name)?;
            writeln!(out, "version:     {}", m.version)?;
            writeln!(out, "world:       {}", m.world)?;
            match exported {
                Ok(Some(w)) if w != m.world => writeln!(
                    out,
                    "warning:     the manifest declares world {}, but the component's exports make it a {w}: it will not load",
                    m.world
                )?,
                Ok(None) => writeln!(
                    out,
                    "warning:     the component exports no driver interface of any world; it will not load"
                )?,
                _ => {}
            }
            if let Some(d) = &m.description {
                writeln!(out, "description: {d}")?;
            }
        }
        (None, Ok(Some(w))) => writeln!(out, "world:       {w} (from its exports)")?,
        (None, Ok(None)) => writeln!(out, "world:       none: it exports no driver interface")?,
        (None, Err(e)) => writeln!(out, "world:       unknown: its exports are unreadable: {e}")?,
    }
    writeln!(out, "contract:    {}", versions::contract_of(&bytes))?;
    writeln!(out, "size:        {} bytes (sha256 {digest})", bytes.len())?;
    if let Some(m) = &manifest {
        write_requests(&mut out, m)?;
    }
    let runtime = Runtime::new(None)?;
    let what = manifest
        .as_ref()
        .map_or_else(|| source.origin(), |m| m.name.clone());
    match runtime.compile(&what, &bytes) {
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

fn write_requests(out: &mut String, m: &Manifest) -> std::fmt::Result {
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
    for d in &m.capabilities.directory {
        writeln!(out, "  directory {d}")?;
    }
    if m.capabilities.exec.is_empty()
        && m.capabilities.block.is_empty()
        && m.capabilities.http.is_empty()
        && m.capabilities.directory.is_empty()
    {
        writeln!(out, "  nothing")?;
    }
    Ok(())
}

/// Reports, per backend, whether the component would load and what would be refused: the
/// checks `ashlar serve` and a swap make, short of running the driver. The bool is whether
/// it would load on every backend checked.
pub fn validate(
    source: &DriverSource,
    cfg: &Config,
    only: Option<&str>,
) -> anyhow::Result<(String, bool)> {
    let files = source.read()?;
    let m = &files.manifest;
    let mut out = String::new();
    let mut ok = true;
    let what = format!("plugin {} {} ({})", m.name, m.version, files.origin);
    let contract = versions::contract_of(&files.wasm);
    writeln!(out, "{} {}: contract {contract}", m.name, m.version)?;
    // A target driver is checked against the backends' `[target]` sections, a backup
    // driver against `[backup]`.
    let part = match m.world {
        World::VolumeDriver => Part::Volume,
        World::TargetDriver => Part::Target,
        World::BackupDriver => Part::Backup,
    };
    let runtime = Runtime::new(None)?;
    match served_contract(&what, &files.wasm) {
        // Compiled and linked once: the same for every backend.
        Ok(stamped) => match runtime.prepare(&what, &files.wasm, &stamped, m.world) {
            Ok(_) => writeln!(
                out,
                "component: compiles, and its exports fit contract {stamped} as a {}",
                m.world
            )?,
            Err(e) => {
                ok = false;
                writeln!(out, "component: FAILED: {e}")?;
            }
        },
        Err(_) => {
            ok = false;
            if let Err(e) = runtime.compile(&what, &files.wasm) {
                writeln!(out, "compile: FAILED: {e}")?;
            }
        }
    }
    let mut checked = 0;
    if part == Part::Backup {
        if only.is_some_and(|o| o != BACKUP_STORE_NAME) {
            anyhow::bail!(
                "a backup driver is checked against [backup]; use --backend backup or none"
            );
        }
        match &cfg.backup {
            Some(backup) => {
                let config = DriverConfig::backup(backup);
                match runtime::admit(&config.spec(files.clone(), &cfg.host_name)) {
                    Ok(_) => writeln!(
                        out,
                        "{}: every requested capability is granted",
                        config.what()
                    )?,
                    Err(e) => {
                        ok = false;
                        writeln!(out, "{}: REFUSED: {e}", config.what())?;
                    }
                }
            }
            None => {
                ok = false;
                writeln!(out, "backup store: the config has no [backup] section")?;
            }
        }
        writeln!(out, "{}", if ok { "would load" } else { "would NOT load" })?;
        return Ok((out, ok));
    }
    for (name, backend) in &cfg.backends {
        if only.is_some_and(|o| o != name) {
            continue;
        }
        let Some(config) = part.config(name, backend) else {
            if only.is_some() {
                checked += 1;
                ok = false;
                writeln!(
                    out,
                    "backend {name}: has no [target] section for a target driver"
                )?;
            }
            continue;
        };
        checked += 1;
        match runtime::admit(&config.spec(files.clone(), &cfg.host_name)) {
            Ok(_) => writeln!(
                out,
                "{}: every requested capability is granted",
                config.what()
            )?,
            Err(e) => {
                ok = false;
                writeln!(out, "{}: REFUSED: {e}", config.what())?;
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
