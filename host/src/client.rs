//! The `ashlar` command's side of the HTTP API: one blocking client for the Block Storage
//! API and Ashlar's admin API, and the `ashlar backup` commands built on it, for operators
//! who script backups outside the OpenStack clients.

use std::time::{Duration, Instant};

use anyhow::Context;
use serde_json::{Value, json};

/// The microversion the client speaks: the newest the server serves, so every field of
/// the views is there.
const MICROVERSION: &str = "volume 3.71";

/// How often a waiting command asks for progress.
const POLL: Duration = Duration::from_millis(250);

/// A blocking client of one server, authenticated by one token.
pub struct ApiClient {
    url: String,
    token: String,
    http: reqwest::Client,
    rt: tokio::runtime::Runtime,
}

impl ApiClient {
    pub fn new(url: &str, token: &str) -> anyhow::Result<ApiClient> {
        Ok(ApiClient {
            url: url.trim_end_matches('/').to_string(),
            token: token.to_string(),
            http: reqwest::Client::new(),
            rt: tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?,
        })
    }

    /// One request; a Cinder-style error body becomes the error's message, with its
    /// status.
    pub fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> anyhow::Result<Value> {
        let url = format!("{}{path}", self.url);
        self.rt.block_on(async {
            let mut req = self
                .http
                .request(method, &url)
                .header("X-Auth-Token", &self.token)
                .header("OpenStack-API-Version", MICROVERSION);
            if let Some(b) = body {
                req = req.json(&b);
            }
            let resp = req
                .send()
                .await
                .with_context(|| format!("cannot reach {url}; is `ashlar serve` running there?"))?;
            let status = resp.status();
            let value: Value = resp.json().await.unwrap_or_default();
            if !status.is_success() {
                anyhow::bail!("{status}: {}", error_message(&value));
            }
            Ok(value)
        })
    }

    pub fn get(&self, path: &str) -> anyhow::Result<Value> {
        self.call(reqwest::Method::GET, path, None)
    }

    pub fn post(&self, path: &str, body: Value) -> anyhow::Result<Value> {
        self.call(reqwest::Method::POST, path, Some(body))
    }
}

/// The message of a Cinder error body (`{"badRequest": {"message": …, "code": 400}}`).
pub fn error_message(body: &Value) -> &str {
    body.as_object()
        .and_then(|o| o.values().next())
        .and_then(|v| v.get("message"))
        .and_then(|m| m.as_str())
        .unwrap_or("no message")
}

/// What `ashlar backup create` asks for.
#[derive(Debug, Default)]
pub struct CreateBackup {
    pub volume_id: String,
    pub name: Option<String>,
    pub description: Option<String>,
    pub incremental: bool,
    pub force: bool,
    pub snapshot_id: Option<String>,
    pub container: Option<String>,
}

/// Starts a backup and, with `wait`, follows it to its end with a progress bar on
/// stderr. Answers the backup's id; an `error` end is an error naming its reason.
pub fn create_backup(api: &ApiClient, req: &CreateBackup, wait: bool) -> anyhow::Result<String> {
    let mut backup = json!({
        "volume_id": req.volume_id,
        "incremental": req.incremental,
        "force": req.force,
    });
    for (key, value) in [
        ("name", &req.name),
        ("description", &req.description),
        ("snapshot_id", &req.snapshot_id),
        ("container", &req.container),
    ] {
        if let Some(v) = value {
            backup[key] = json!(v);
        }
    }
    let out = api
        .post("/v3/backups", json!({ "backup": backup }))
        .with_context(|| format!("backing up volume {}", req.volume_id))?;
    let id = out["backup"]["id"]
        .as_str()
        .context("the server answered a backup without an id")?
        .to_string();
    if wait {
        let end = follow(api, &id, "backing up")?;
        if end != "available" {
            anyhow::bail!("backup {id} ended {end}: {}", fail_reason(api, &id));
        }
    }
    Ok(id)
}

/// Restores a backup, onto `volume_id` or a new volume, and with `wait` follows it to
/// its end. Answers the volume restored to.
pub fn restore_backup(
    api: &ApiClient,
    backup_id: &str,
    volume_id: Option<&str>,
    name: Option<&str>,
    wait: bool,
) -> anyhow::Result<String> {
    let mut restore = json!({});
    if let Some(v) = volume_id {
        restore["volume_id"] = json!(v);
    }
    if let Some(n) = name {
        restore["name"] = json!(n);
    }
    let out = api
        .post(
            &format!("/v3/backups/{backup_id}/restore"),
            json!({ "restore": restore }),
        )
        .with_context(|| format!("restoring backup {backup_id}"))?;
    let volume = out["restore"]["volume_id"]
        .as_str()
        .context("the server answered a restore without a volume id")?
        .to_string();
    if wait {
        follow(api, backup_id, "restoring")?;
        let status = api.get(&format!("/v3/volumes/{volume}"))?["volume"]["status"]
            .as_str()
            .unwrap_or("unknown")
            .to_string();
        if status != "available" {
            anyhow::bail!(
                "the restore of backup {backup_id} left volume {volume} {status}; see `openstack volume message list`"
            );
        }
    }
    Ok(volume)
}

/// Polls the backup's progress until it leaves its transient status; answers the status
/// it ended in. The bar counts the volume's bytes read or written.
fn follow(api: &ApiClient, backup_id: &str, doing: &str) -> anyhow::Result<String> {
    let bar = indicatif::ProgressBar::new(0);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{msg} [{bar:40}] {bytes}/{total_bytes} {binary_bytes_per_sec} eta {eta}",
        )
        .expect("a valid template")
        .progress_chars("=> "),
    );
    bar.set_message(format!("{doing} {backup_id}"));
    let started = Instant::now();
    loop {
        let p = &api.get(&format!("/v3/backups/{backup_id}/progress"))?["progress"];
        let status = p["status"].as_str().unwrap_or("unknown").to_string();
        bar.set_length(p["total_bytes"].as_u64().unwrap_or(0));
        bar.set_position(p["done_bytes"].as_u64().unwrap_or(0));
        if !matches!(status.as_str(), "creating" | "restoring" | "deleting") {
            bar.finish_and_clear();
            eprintln!(
                "{doing} {backup_id}: {status} after {:.1} s",
                started.elapsed().as_secs_f64()
            );
            return Ok(status);
        }
        std::thread::sleep(POLL);
    }
}

fn fail_reason(api: &ApiClient, id: &str) -> String {
    api.get(&format!("/v3/backups/{id}"))
        .ok()
        .and_then(|b| b["backup"]["fail_reason"].as_str().map(str::to_string))
        .unwrap_or_else(|| "no reason recorded".into())
}

/// The backups the token's project can see (every project's with `all_projects`, for an
/// administrator), as a table.
pub fn list_backups(api: &ApiClient, all_projects: bool) -> anyhow::Result<String> {
    let query = if all_projects { "?all_tenants=1" } else { "" };
    let out = api.get(&format!("/v3/backups/detail{query}"))?;
    let mut table = format!(
        "{:<36}  {:<20}  {:<36}  {:<10}  {:>5}  {:<11}  CREATED\n",
        "ID", "NAME", "VOLUME", "STATUS", "GIB", "INCREMENTAL"
    );
    for b in out["backups"].as_array().into_iter().flatten() {
        table.push_str(&format!(
            "{:<36}  {:<20}  {:<36}  {:<10}  {:>5}  {:<11}  {}\n",
            b["id"].as_str().unwrap_or(""),
            b["name"].as_str().unwrap_or("-"),
            b["volume_id"].as_str().unwrap_or(""),
            b["status"].as_str().unwrap_or(""),
            b["size"],
            b["is_incremental"].as_bool().unwrap_or(false),
            b["created_at"].as_str().unwrap_or(""),
        ));
    }
    Ok(table)
}
