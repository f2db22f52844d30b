//! Cinder fidelity, checked by tempest.lib: its volume v3 service clients, whose response
//! schemas are strict (`additionalProperties: false`), drive a running server through
//! every family of calls as a member and as an administrator, at 3.0 and at the highest
//! microversion served (tests/clients/tempest_views.py). A response that carries a field
//! Cinder does not send at that microversion or role, or lacks one it does, fails here.

use std::collections::BTreeSet;
use std::process::Command;

use serde_json::Value;

use crate::common::{Server, client_program};

/// What tempest_views.py reports: every call it made, as whom, and whether its response
/// validated.
fn tempest_run(server: &Server, version: &str) -> Vec<Value> {
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../tests/clients/tempest_views.py"
    );
    let out = Command::new(client_program("python"))
        .arg(script)
        .arg(&server.base)
        .arg(version)
        .output()
        .expect("run tempest_views.py");
    assert!(
        out.status.success(),
        "tempest_views.py failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "tempest_views.py printed no report ({e}): {}",
            String::from_utf8_lossy(&out.stdout)
        )
    });
    report["results"].as_array().expect("results").clone()
}

fn check(version: &str, must_include: &[&str]) {
    let server = Server::start("");
    let results = tempest_run(&server, version);
    let failures: Vec<String> = results
        .iter()
        .filter(|r| r["ok"] != true)
        .map(|r| format!("{} as {}: {}", r["call"], r["role"], r["error"]))
        .collect();
    assert!(
        failures.is_empty(),
        "{} of {} calls failed tempest's schemas at {version}:\n{}",
        failures.len(),
        results.len(),
        failures.join("\n")
    );
    // Every family ran, for both roles: a call left out silently would prove nothing.
    for role in ["member", "admin"] {
        let made: BTreeSet<&str> = results
            .iter()
            .filter(|r| r["role"] == role)
            .filter_map(|r| r["call"].as_str())
            .collect();
        for call in must_include {
            assert!(
                made.contains(call),
                "{call} was not made as {role} at {version}"
            );
        }
        if role == "admin" {
            for call in ADMIN_ONLY {
                assert!(
                    made.contains(call),
                    "{call} was not made as {role} at {version}"
                );
            }
        }
    }
}

/// What only an administrator may call, made as one at every microversion.
const ADMIN_ONLY: &[&str] = &[
    "reset_volume_status",
    "force_delete_volume",
    "reset_snapshot_status",
    "create_volume_type",
    "update_volume_type_extra_specs",
    "list_pools_detail",
    "list_services",
    "disable_log_reason",
    "enable_service",
    "show_backend_capabilities",
    "add_type_access",
    "list_type_access",
    "remove_type_access",
    "create_qos",
    "show_qos",
    "list_qos",
    "set_qos_key",
    "unset_qos_key",
    "associate_qos",
    "show_association_qos",
    "show_volume_type with qos",
    "disassociate_qos",
    "disassociate_all_qos",
    "delete_qos",
    "update_quota_set",
    "delete_quota_set",
    "show_quota_class_set",
    "update_quota_class_set",
    "export_backup",
    "reset_backup_status",
    "delete_backup errored",
    "import_backup after delete",
];

const EVERY_VERSION: &[&str] = &[
    "create_volume",
    "show_volume",
    "list_volumes",
    "list_volumes_detail",
    "update_volume",
    "update_volume_readonly",
    "update_volume_image_metadata",
    "show_volume_with_image_metadata",
    "extend_volume",
    "create_snapshot",
    "show_snapshot",
    "list_snapshots_detail",
    "update_snapshot",
    "create_volume_clone",
    "list_volume_types",
    "create_volume_transfer os-volume-transfer",
    "accept_volume_transfer os-volume-transfer",
    "list_versions",
    "list_availability_zones",
    "show_limits",
    "show_quota_set",
    "show_default_quota_set",
    "show_quota_usage",
    "create_backup",
    "show_backup",
    "list_backups",
    "list_backups_detail",
    "create_backup incremental",
    "show_backup incremental",
    "delete_backup incremental",
    "restore_backup",
];

#[test]
fn every_view_validates_against_tempest_at_3_0() {
    check("3.0", EVERY_VERSION);
}

#[test]
fn every_view_validates_against_tempest_at_the_highest_microversion() {
    let mut calls = EVERY_VERSION.to_vec();
    calls.extend([
        "show_volume_summary",
        "list_messages",
        "create_volume_transfer volume-transfers",
        "show_volume_transfer volume-transfers",
        "accept_volume_transfer volume-transfers",
        "update_backup",
    ]);
    check("3.71", &calls);
}
