//! `/openapi.json`: the document names every route the server answers, each answers as
//! the document says, and schemathesis finds no 5xx and no answer that contradicts it.

use std::process::Command;

use serde_json::{Value, json};

use crate::common::{Server, client_program};

/// Fills a documented path's parameters with values that name nothing that exists.
fn fill(path: &str) -> String {
    path.replace("{id}", "7f1c3e52-4c36-4d59-9a43-0d3c4f1e8a10")
        .replace("{key}", "k")
        .replace("{project_id}", "demo")
        .replace("{project}", "demo")
        .replace("{class_name}", "default")
        .replace("{action}", "disable")
        .replace("{host}", "nohost")
}

async fn document(server: &Server) -> Value {
    let resp = reqwest::get(format!("{}/openapi.json", server.base))
        .await
        .expect("request");
    assert_eq!(resp.status().as_u16(), 200, "openapi.json needs no token");
    assert_eq!(resp.headers()["content-type"], "application/json");
    resp.json().await.expect("JSON")
}

#[tokio::test]
async fn every_documented_route_is_served_and_answers_a_documented_status() {
    let server = Server::start("");
    let doc = document(&server).await;
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    let admin = server.client("admin:demo").with_version("3.71");

    // The router's fallback, which is what an undocumented route would meet.
    let missing = admin.get("/v3/demo/no-such-collection").await;
    assert_eq!(missing.status, 404);
    assert!(
        missing
            .error_message()
            .starts_with("The resource could not be found: GET /v3/no-such-collection"),
        "{}",
        missing.error_message()
    );

    let paths = doc["paths"].as_object().expect("paths");
    let mut operations = 0;
    for (path, item) in paths {
        for (method, op) in item.as_object().unwrap() {
            // Every /v3 resource is asked for under the project, as clients ask.
            let url = match path.strip_prefix("/v3/") {
                Some(rest) if !rest.is_empty() => format!("/v3/demo/{}", fill(rest)),
                _ => fill(path),
            };
            let m: reqwest::Method = method.to_uppercase().parse().unwrap();
            let body = matches!(method.as_str(), "post" | "put").then(|| b"{}".to_vec());
            let resp = admin.raw(m, &url, body).await;
            let documented: Vec<&String> = op["responses"].as_object().unwrap().keys().collect();
            assert_ne!(resp.status, 405, "{method} {path} is not routed");
            if resp.status == 404 {
                assert!(
                    !resp
                        .error_message()
                        .starts_with("The resource could not be found: "),
                    "{method} {path} reached the fallback: {}",
                    resp.error_message()
                );
            }
            assert!(
                documented.contains(&&resp.status.to_string()),
                "{method} {url} answered {} ({}), the document names {documented:?}",
                resp.status,
                resp.body
            );
            operations += 1;
        }
    }
    assert!(operations >= 90, "only {operations} operations documented");
    eprintln!("{operations} documented operations each answered a documented status");
}

/// One schemathesis run as `token`: bounded by examples per operation and a time budget.
fn schemathesis(server: &Server, token: &str, seconds: u32) -> String {
    let out = Command::new(client_program("st"))
        .args(["run", &format!("{}/openapi.json", server.base)])
        .args(["--url", &server.base])
        .args(["--header", &format!("X-Auth-Token: {token}")])
        .args([
            "--checks",
            "not_a_server_error,response_schema_conformance,status_code_conformance,content_type_conformance",
        ])
        .args(["--mode", "positive", "--max-examples", "5", "--no-shrink"])
        .args(["--phases", "examples,coverage,fuzzing"])
        .args(["--max-time", &seconds.to_string(), "--request-timeout", "20"])
        .args(["--suppress-health-check", "all", "--warnings", "off"])
        .env("NO_COLOR", "1")
        .current_dir(&server.dir)
        .output()
        .expect("run schemathesis");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr);
    // How many operations and cases it ran, from its summary.
    let tested = stdout
        .lines()
        .find(|l| l.trim_start().starts_with("Tested:"))
        .unwrap_or("Tested: ?");
    let cases = stdout
        .lines()
        .find(|l| l.contains(" generated"))
        .unwrap_or("? generated");
    eprintln!(
        "schemathesis as {token}: {} operations, {}",
        tested.trim(),
        cases.trim()
    );
    assert!(
        out.status.success(),
        "schemathesis as {token} found failures:\n{stdout}\n{stderr}"
    );
    stdout
}

/// Real resources of every kind in project `demo`, and a schemathesis config that names
/// them as each path's parameters, so its requests reach real views and not only 404s.
async fn seed(server: &Server) -> String {
    let member = server.client("alice:demo");
    let admin = server.client("admin:demo");
    let volume = member
        .create_volume(json!({"size": 1, "metadata": {"k": "v"}}))
        .await;
    member.wait_status("volumes", &volume, "available").await;
    let snapshot = member.snapshot_available(&volume).await;
    let r = member
        .post(
            &format!("snapshots/{snapshot}/metadata"),
            json!({"metadata": {"k": "v"}}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let type_id = admin.create_type("seeded", json!({"k": "v"})).await;
    let r = admin
        .post(
            "qos-specs",
            json!({"qos_specs": {"name": "seeded", "total_iops_sec": "100"}}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let qos = r.body["qos_specs"]["id"].as_str().unwrap().to_string();
    let attached = member.create_volume(json!({"size": 1})).await;
    member.wait_status("volumes", &attached, "available").await;
    let r = member
        .with_version("3.27")
        .post(
            "attachments",
            json!({"attachment": {"volume_uuid": attached}}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let attachment = r.body["attachment"]["id"].as_str().unwrap().to_string();
    let given = member.create_volume(json!({"size": 1})).await;
    member.wait_status("volumes", &given, "available").await;
    let r = member
        .post(
            "os-volume-transfer",
            json!({"transfer": {"volume_id": given}}),
        )
        .await;
    assert_eq!(r.status, 202, "{}", r.body);
    let transfer = r.body["transfer"]["id"].as_str().unwrap().to_string();

    let mut config = String::from(
        "[parameters]\nproject_id = \"demo\"\nproject = \"demo\"\nclass_name = \"default\"\nkey = \"k\"\n",
    );
    config.push_str(&format!("vol_type_id = \"{type_id}\"\n"));
    for (regex, id) in [
        ("^/v3/volumes/", &volume),
        ("^/v3/snapshots/", &snapshot),
        ("^/v3/types/", &type_id),
        ("^/v3/qos-specs/", &qos),
        ("^/v3/attachments/", &attachment),
        ("^/v3/(os-volume-transfer|volume-transfers)/", &transfer),
    ] {
        config.push_str(&format!(
            "\n[[operations]]\ninclude-path-regex = '{regex}'\nparameters = {{ id = \"{id}\", key = \"k\" }}\n"
        ));
    }
    config
}

#[tokio::test]
async fn schemathesis_finds_no_server_error_and_no_answer_the_document_contradicts() {
    let server = Server::start("");
    document(&server).await;
    let config = seed(&server).await;
    std::fs::write(server.dir.join("schemathesis.toml"), config).unwrap();
    for token in ["alice:demo", "admin:demo"] {
        let out = schemathesis(&server, token, 50);
        // Every operation it read from the document was tested within the budget.
        let count = |label: &str| {
            out.lines()
                .find_map(|l| l.trim().strip_prefix(label))
                .map(|rest| rest.trim().rsplit('/').next().unwrap().to_string())
                .unwrap_or_else(|| panic!("no `{label}` in:\n{out}"))
        };
        let (selected, tested) = (count("Selected:"), count("Tested:"));
        assert!(
            selected.parse::<u32>().unwrap() >= 90,
            "schemathesis read only {selected} operations"
        );
        assert_eq!(tested, selected, "not every operation was tested:\n{out}");
    }
}
