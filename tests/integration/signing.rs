//! Signed drivers: a backend with `trusted_keys` loads, and swaps to, only a component
//! signed by one of them and unchanged since; the refusal names the key and what to do.

use std::path::Path;
use std::process::Command;

use serde_json::json;

use crate::common::{Server, nfs_as_version, plugin_of};
use crate::loading::serve_fails;

/// `ashlar plugin ARGS`; its stdout, trimmed (it must succeed).
fn plugin(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_ashlar"))
        .arg("plugin")
        .args(args)
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "ashlar plugin {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

fn path(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn config(wasm: &Path, trusted: &str) -> String {
    format!(
        r#"
[backends.local]
driver = "{}"
trusted_keys = ["{trusted}"]
grants.exec = ["qemu-img", "rm", "df", "du"]
grants.block = ["@DIR@/share"]
settings.share_path = "@DIR@/share"
"#,
        wasm.display()
    )
}

#[tokio::test]
async fn only_components_signed_by_a_trusted_key_load_or_swap_in() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let trusted = plugin(&["keygen", "--out", path(&d.join("trusted.key"))]);
    let other = plugin(&["keygen", "--out", path(&d.join("other.key"))]);
    assert_ne!(trusted, other);
    let sign = |wasm: &Path, key: &str| {
        plugin(&["sign", path(wasm), "--key", path(&d.join(key))]);
    };

    let signed = nfs_as_version(d, "0.1.0");
    sign(&signed, "trusted.key");
    let inspected = plugin(&["inspect", path(&signed)]);
    assert!(
        inspected.contains(&format!("signed by:   {trusted}")),
        "{inspected}"
    );
    let by_other = nfs_as_version(d, "0.2.0");
    sign(&by_other, "other.key");
    let unsigned = nfs_as_version(d, "0.3.0");
    // Signed, then changed: a custom section appended to the component.
    let tampered = nfs_as_version(d, "0.4.0");
    sign(&tampered, "trusted.key");
    let mut bytes = std::fs::read(&tampered).unwrap();
    bytes.extend([0x00, 0x05, 0x04, b't', b'e', b's', b't']);
    std::fs::write(&tampered, bytes).unwrap();
    let next = nfs_as_version(d, "0.5.0");
    sign(&next, "trusted.key");

    // At start-up: each refused before it is compiled, naming the key and what to do.
    let err = serve_fails(&config(&unsigned, &trusted));
    assert!(
        err.contains("has no signature")
            && err.contains("ashlar plugin sign")
            && err.contains(&trusted),
        "{err}"
    );
    let err = serve_fails(&config(&by_other, &trusted));
    assert!(
        err.contains(&format!("signed by key {other}, which is not among")),
        "{err}"
    );
    let err = serve_fails(&config(&tampered, &trusted));
    assert!(err.contains("does not match its bytes"), "{err}");

    // Signed by the trusted key: it loads; swaps are held to the same rule.
    let home = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(home.path().join("share")).unwrap();
    let server = Server::start_in(home.path(), &config(&signed, &trusted));
    let admin = server.client("admin:ops");
    assert_eq!(plugin_of(&admin, "local").await["version"], "0.1.0");
    let swap = |wasm: &Path| {
        let admin = &admin;
        let body = json!({"wasm": wasm, "probation_secs": 0});
        async move {
            admin
                .raw(
                    reqwest::Method::POST,
                    "/ashlar/v1/backends/local/swap",
                    Some(body.to_string().into_bytes()),
                )
                .await
        }
    };
    for (wasm, why) in [
        (&unsigned, "has no signature"),
        (&by_other, "which is not among this backend's trusted_keys"),
        (&tampered, "does not match its bytes"),
    ] {
        let r = swap(wasm).await;
        assert_eq!(r.status, 400, "{}", r.body);
        assert!(r.body.to_string().contains(why), "{why}: {}", r.body);
        assert_eq!(plugin_of(&admin, "local").await["version"], "0.1.0");
    }
    let r = swap(&next).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(plugin_of(&admin, "local").await["version"], "0.5.0");
}
