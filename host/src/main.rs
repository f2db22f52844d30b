//! The `ashlar` command.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "ashlar",
    version,
    about = "Block storage with sandboxed WebAssembly drivers"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the Block Storage v3 API, the scheduler and the volume managers.
    Serve {
        /// Config file (TOML); without one, the embedded defaults apply.
        #[arg(long)]
        config: Option<PathBuf>,
        /// Address to listen on (overrides the config's `listen`).
        #[arg(long)]
        listen: Option<String>,
        /// Data directory (overrides the config's `data_dir`).
        #[arg(long)]
        data_dir: Option<PathBuf>,
    },
    /// Inspect, validate, list, swap and roll back driver components.
    #[command(subcommand)]
    Plugin(PluginCommand),
    /// Make, list and revoke API tokens (`[auth] strategy = "tokens"`). Works on the
    /// configured database directly, with or without a server running on it.
    #[command(subcommand)]
    Token(TokenCommand),
    /// Back up volumes, restore and list backups on a running server, following each to
    /// its end with a progress bar (the Block Storage API's `/backups`).
    #[command(subcommand)]
    Backup(BackupCommand),
    /// Add, drain, remove and list a running server's backends, without a restart.
    #[command(subcommand)]
    Backend(BackendCommand),
    /// Certify a driver component on a real backend: load it as `serve` would, run
    /// Cinder's minimum driver features (each repeated to prove idempotency), the optional
    /// ones, the sandbox's rules and two instances racing on the backend; print a table and
    /// write a certificate. Exits 1 when a required check fails, 2 when nothing could run.
    Conformance(ConformanceArgs),
}

#[derive(clap::Args)]
struct ConformanceArgs {
    /// A .wasm component, or the name of a bundled driver.
    wasm: PathBuf,
    /// Its plugin.toml (default: beside the .wasm, same stem).
    #[arg(long)]
    manifest: Option<PathBuf>,
    /// An ashlar.toml with the backend to run on ([backends.NAME]; its target section for
    /// a target driver; [backup] for a backup driver).
    #[arg(long)]
    config: PathBuf,
    /// The backend, when the config has several.
    #[arg(long)]
    backend: Option<String>,
    /// Write the certificate (JSON) here.
    #[arg(long)]
    certificate: Option<PathBuf>,
    /// Print the certificate as JSON instead of the table.
    #[arg(long)]
    json: bool,
    /// Skip the checks that race a second instance against the first.
    #[arg(long)]
    no_active_active: bool,
}

#[derive(Subcommand)]
enum BackendCommand {
    /// Each backend: its driver, state (active, disabled, draining), volumes, and the
    /// volumes a drain cannot move.
    List {
        #[command(flatten)]
        server: ServerArgs,
    },
    /// Start backend NAME from its [backends.NAME] section: in --config, or in the file
    /// the server started from.
    Add {
        name: String,
        /// A config file holding the section (read by the server).
        #[arg(long)]
        config: Option<PathBuf>,
        #[command(flatten)]
        server: ServerArgs,
    },
    /// Stop placing volumes on backend NAME and migrate its volumes to the others.
    Drain {
        name: String,
        /// Follow the drain until the backend is empty (or nothing more can move).
        #[arg(long)]
        wait: bool,
        #[command(flatten)]
        server: ServerArgs,
    },
    /// Stop backend NAME, which must hold no volume (drain it first).
    Remove {
        name: String,
        #[command(flatten)]
        server: ServerArgs,
    },
}

#[derive(Subcommand)]
enum BackupCommand {
    /// Back up a volume; prints the backup's id once it is `available`.
    Create {
        /// The volume to back up.
        volume: String,
        #[arg(long)]
        name: Option<String>,
        #[arg(long)]
        description: Option<String>,
        /// Store only what changed since the volume's latest backup.
        #[arg(long)]
        incremental: bool,
        /// Back up an in-use volume (from a temporary copy).
        #[arg(long)]
        force: bool,
        /// Back up this snapshot of the volume instead of the volume itself.
        #[arg(long)]
        snapshot: Option<String>,
        /// The store's container (default: the server's `[backup] container`).
        #[arg(long)]
        container: Option<String>,
        /// Print the id at once instead of following the backup to its end.
        #[arg(long)]
        no_wait: bool,
        #[command(flatten)]
        server: UserArgs,
    },
    /// Restore a backup onto a new volume, or onto an available volume with `--volume`;
    /// prints the volume's id once it is `available`.
    Restore {
        backup: String,
        /// An existing available volume at least as large as the backup.
        #[arg(long)]
        volume: Option<String>,
        /// The new volume's name.
        #[arg(long)]
        name: Option<String>,
        #[arg(long)]
        no_wait: bool,
        #[command(flatten)]
        server: UserArgs,
    },
    /// The backups the token's project can see.
    List {
        /// Every project's backups (an administrator's token).
        #[arg(long)]
        all_projects: bool,
        #[command(flatten)]
        server: UserArgs,
    },
}

#[derive(clap::Args)]
struct UserArgs {
    /// The server's API address.
    #[arg(long, default_value = "http://127.0.0.1:8776")]
    url: String,
    /// The caller's token (noauth: `USER:PROJECT`; with tokens, one made by `ashlar token
    /// create`). Backups belong to the token's project.
    #[arg(long, env = "OS_AUTH_TOKEN", default_value = "admin:admin")]
    token: String,
}

#[derive(Subcommand)]
enum TokenCommand {
    /// Make a token and print it, once: only its hash is kept.
    Create {
        /// The user the token stands for.
        #[arg(long)]
        user: String,
        /// The project the token is scoped to.
        #[arg(long)]
        project: String,
        /// A role: admin, member or reader (admin implies member, member implies
        /// reader). Repeat for several.
        #[arg(long = "role", required = true, value_parser = parse_role)]
        roles: Vec<ashlar::auth::Role>,
        /// Lifetime, e.g. 30d, 12h, 45m, 90s; without it the token lasts until revoked.
        #[arg(long, value_parser = ashlar::auth::parse_lifetime)]
        expires_in: Option<std::time::Duration>,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Every token: id, user, project, roles, created, expires, revoked (never the
    /// token itself).
    List {
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Revoke a token by its id; a running server refuses it within 5 seconds.
    Revoke {
        id: String,
        #[command(flatten)]
        store: StoreArgs,
    },
}

/// Which database the token commands use: the config's, or the data directory's.
#[derive(clap::Args)]
struct StoreArgs {
    /// Config file (TOML); without one, the embedded defaults apply.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Data directory (overrides the config's `data_dir`).
    #[arg(long)]
    data_dir: Option<PathBuf>,
}

fn parse_world(name: &str) -> Result<ashlar::capabilities::World, String> {
    ashlar::plugins::scaffold::parse_world(name)
        .ok_or_else(|| format!("`{name}` is not a world: use volume, target or backup"))
}

fn parse_lang(name: &str) -> Result<ashlar::plugins::scaffold::Lang, String> {
    ashlar::plugins::scaffold::Lang::parse(name).ok_or_else(|| {
        format!("`{name}` is not a language drivers are written in: use rust or python")
    })
}

fn parse_role(name: &str) -> Result<ashlar::auth::Role, String> {
    ashlar::auth::Role::parse(name)
        .ok_or_else(|| format!("`{name}` is not a role: use admin, member or reader"))
}

#[derive(Subcommand)]
enum PluginCommand {
    /// Show what a component is and asks for: name, version, world, contract version,
    /// requested capabilities, size, imports and exports. Without its plugin.toml, what
    /// the component says of itself.
    Inspect {
        /// A .wasm component, or the name of a bundled driver.
        wasm: PathBuf,
        /// Its plugin.toml (default: beside the .wasm, same stem).
        #[arg(long)]
        manifest: Option<PathBuf>,
    },
    /// Say whether a component would load on this config's backends (a backup driver: on
    /// its `[backup]` store), and what would be refused.
    Validate {
        /// A .wasm component, or the name of a bundled driver.
        wasm: PathBuf,
        #[arg(long)]
        manifest: Option<PathBuf>,
        #[arg(long)]
        config: Option<PathBuf>,
        /// Only this backend (default: every backend in the config).
        #[arg(long)]
        backend: Option<String>,
    },
    /// Make a new driver project that builds as it is: a cargo project (Rust) or an app
    /// with a build script (Python, componentize-py), its plugin.toml, an example backend
    /// (backend.toml) and a README with the build and check commands. Every method
    /// answers "not supported" until it is written.
    New {
        /// The driver's name: lowercase letters, digits and dashes.
        name: String,
        /// volume, target or backup.
        #[arg(long, value_parser = parse_world)]
        world: ashlar::capabilities::World,
        /// rust or python.
        #[arg(long, default_value = "rust", value_parser = parse_lang)]
        lang: ashlar::plugins::scaffold::Lang,
        /// Where the project goes (default: ./NAME); must be missing or empty.
        #[arg(long)]
        dir: Option<PathBuf>,
        /// The sdk/ directory of an Ashlar checkout (default: the checkout this binary was
        /// built from).
        #[arg(long, env = "ASHLAR_SDK")]
        sdk: Option<PathBuf>,
    },
    /// Record the contract version a component was built against in its
    /// `ashlar:contract-version` section, for components built without the Rust SDK
    /// (componentize-py, for one). Rewrites DRIVER.wasm in place.
    Stamp {
        wasm: PathBuf,
        /// The contract version its WIT was (`wit/since_vX.Y.Z`), e.g. 0.2.0.
        #[arg(long)]
        contract: String,
    },
    /// Make a new ed25519 key for signing components: the secret goes to `--out`
    /// (readable by its owner only), the public key, for `trusted_keys`, to stdout.
    Keygen {
        #[arg(long)]
        out: PathBuf,
    },
    /// Sign a component with a key from `ashlar plugin keygen`: writes DRIVER.wasm.sig
    /// beside it, and prints the public key that signed it.
    Sign {
        wasm: PathBuf,
        #[arg(long)]
        key: PathBuf,
    },
    /// Per backend: the running driver, since when, calls, traps, latency, last swap; then
    /// the server's background workers and their state.
    List {
        #[command(flatten)]
        server: ServerArgs,
    },
    /// Replace a backend's driver on a running server, with probation and rollback.
    Swap {
        /// The backend, or `backup` for the backup store.
        backend: String,
        /// The new component; the path is read by the server.
        wasm: PathBuf,
        #[arg(long)]
        manifest: Option<PathBuf>,
        /// Seconds to watch the new driver before keeping it (default: the server's).
        #[arg(long)]
        probation_secs: Option<f64>,
        /// Swap the backend's target driver instead of its volume driver.
        #[arg(long)]
        target: bool,
        #[command(flatten)]
        server: ServerArgs,
    },
    /// Return a backend (or `backup`, the backup store) to its previous driver.
    Rollback {
        /// The backend, or `backup` for the backup store.
        backend: String,
        /// Roll back the backend's target driver instead of its volume driver.
        #[arg(long)]
        target: bool,
        #[command(flatten)]
        server: ServerArgs,
    },
}

#[derive(clap::Args)]
struct ServerArgs {
    /// The server's API address.
    #[arg(long, default_value = "http://127.0.0.1:8776")]
    url: String,
    /// An administrator's token (noauth: `admin:PROJECT`; with tokens, one made by
    /// `ashlar token create --role admin`).
    #[arg(long, default_value = "admin:admin")]
    token: String,
}

fn main() -> std::process::ExitCode {
    match run() {
        Ok(code) => code,
        Err(e) => {
            // The whole chain, without a backtrace: each layer says what it was doing.
            eprintln!("ashlar: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn run() -> anyhow::Result<std::process::ExitCode> {
    let cli = Cli::parse();
    // The token commands print what they did; the store's start-up lines would bury it.
    // Conformance prints its table; the drivers' own lines stay below warnings.
    let default_level = match cli.command {
        Command::Token(_) | Command::Conformance(_) => "warn",
        _ => "info",
    };
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("ASHLAR_LOG")
                .unwrap_or_else(|_| default_level.into()),
        )
        .with_writer(std::io::stderr)
        .init();
    match cli.command {
        Command::Serve {
            config,
            listen,
            data_dir,
        } => {
            let mut cfg = ashlar::config::Config::load(config.as_deref())?;
            if let Some(listen) = listen {
                cfg.listen = listen;
            }
            if let Some(dir) = data_dir {
                cfg.data_dir = dir;
            }
            cfg.finish()?;
            let rt = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
                .context("starting the async runtime")?;
            let served = rt.block_on(ashlar::server::serve(cfg));
            // Driver calls still running on blocking threads past the grace period must
            // not hold the exit: their jobs are left for recovery.
            rt.shutdown_timeout(std::time::Duration::from_millis(100));
            served.map(|()| std::process::ExitCode::SUCCESS)
        }
        Command::Plugin(cmd) => plugin(cmd).map(|()| std::process::ExitCode::SUCCESS),
        Command::Token(cmd) => token(cmd).map(|()| std::process::ExitCode::SUCCESS),
        Command::Backup(cmd) => backup(cmd).map(|()| std::process::ExitCode::SUCCESS),
        Command::Backend(cmd) => backend(cmd).map(|()| std::process::ExitCode::SUCCESS),
        Command::Conformance(args) => Ok(conformance(args)),
    }
}

/// `ashlar conformance`: the table (or the certificate as JSON) on stdout, the certificate
/// to a file; exit 0, 1 when a required check failed, 2 when nothing could run.
fn conformance(args: ConformanceArgs) -> std::process::ExitCode {
    use ashlar::conformance::{self, Options, SetupError};
    let opts = Options {
        wasm: args.wasm,
        manifest: args.manifest,
        config: args.config,
        backend: args.backend,
        active_active: !args.no_active_active,
    };
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("ashlar: starting the async runtime: {e}");
            return std::process::ExitCode::from(2);
        }
    };
    let certified = rt.block_on(conformance::certify(&opts));
    rt.shutdown_timeout(std::time::Duration::from_millis(100));
    let cert = match certified {
        Ok(c) => c,
        Err(e) => {
            let kind = match e {
                SetupError::Usage(_) => "usage",
                SetupError::Load(_) => "load",
            };
            eprintln!("ashlar conformance: {kind}: {e}");
            return std::process::ExitCode::from(2);
        }
    };
    let json = serde_json::to_string_pretty(&cert).expect("a certificate serialises");
    if let Some(path) = &args.certificate
        && let Err(e) = std::fs::write(path, format!("{json}\n"))
    {
        eprintln!("ashlar conformance: cannot write {}: {e}", path.display());
        return std::process::ExitCode::from(2);
    }
    if args.json {
        println!("{json}");
    } else {
        print!("{}", cert.table());
    }
    std::process::ExitCode::from(cert.summary.exit_code())
}

fn backup(cmd: BackupCommand) -> anyhow::Result<()> {
    use ashlar::client::{self, ApiClient};
    match cmd {
        BackupCommand::Create {
            volume,
            name,
            description,
            incremental,
            force,
            snapshot,
            container,
            no_wait,
            server,
        } => {
            let api = ApiClient::new(&server.url, &server.token)?;
            let req = client::CreateBackup {
                volume_id: volume,
                name,
                description,
                incremental,
                force,
                snapshot_id: snapshot,
                container,
            };
            println!("{}", client::create_backup(&api, &req, !no_wait)?);
        }
        BackupCommand::Restore {
            backup,
            volume,
            name,
            no_wait,
            server,
        } => {
            let api = ApiClient::new(&server.url, &server.token)?;
            let restored = client::restore_backup(
                &api,
                &backup,
                volume.as_deref(),
                name.as_deref(),
                !no_wait,
            )?;
            println!("{restored}");
        }
        BackupCommand::List {
            all_projects,
            server,
        } => {
            let api = ApiClient::new(&server.url, &server.token)?;
            print!("{}", client::list_backups(&api, all_projects)?);
        }
    }
    Ok(())
}

/// The token commands, on the database directly. They take no lock on the data
/// directory: the server may be running on it, and SQLite orders their writes with its.
fn token(cmd: TokenCommand) -> anyhow::Result<()> {
    let store = match &cmd {
        TokenCommand::Create { store, .. }
        | TokenCommand::List { store }
        | TokenCommand::Revoke { store, .. } => store,
    };
    let mut cfg = ashlar::config::Config::load(store.config.as_deref())?;
    if let Some(dir) = &store.data_dir {
        cfg.data_dir = dir.clone();
    }
    cfg.finish()?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        if cfg.database_url.is_none() {
            std::fs::create_dir_all(&cfg.data_dir).with_context(|| {
                format!("creating the data directory {}", cfg.data_dir.display())
            })?;
        }
        let db = ashlar::db::Db::open(&cfg.database_url())
            .await
            .context("opening the database")?;
        match cmd {
            TokenCommand::Create {
                user,
                project,
                roles,
                expires_in,
                ..
            } => {
                let (token, row) =
                    ashlar::auth::create_token(&db, &user, &project, &roles, expires_in).await?;
                println!("{token}");
                eprintln!(
                    "token {} for user {} in project {} (roles {}), expires {}; it is shown only this once",
                    row.id,
                    row.user_id,
                    row.project_id,
                    row.roles.join(", "),
                    row.expires_at.as_deref().unwrap_or("never"),
                );
                if cfg.auth.strategy != ashlar::config::AuthStrategy::Tokens {
                    eprintln!(
                        "note: this config's [auth] strategy is noauth; the server takes tokens only with strategy = \"tokens\""
                    );
                }
            }
            TokenCommand::List { .. } => {
                println!(
                    "{:<36}  {:<16}  {:<16}  {:<20}  {:<26}  {:<26}  REVOKED",
                    "ID", "USER", "PROJECT", "ROLES", "CREATED", "EXPIRES"
                );
                for t in db.list_tokens().await? {
                    println!(
                        "{:<36}  {:<16}  {:<16}  {:<20}  {:<26}  {:<26}  {}",
                        t.id,
                        t.user_id,
                        t.project_id,
                        t.roles.join(","),
                        t.created_at,
                        t.expires_at.as_deref().unwrap_or("-"),
                        t.revoked_at.as_deref().unwrap_or("-"),
                    );
                }
            }
            TokenCommand::Revoke { id, .. } => match db.revoke_token(&id).await? {
                Some(true) => println!(
                    "revoked token {id}; a running server refuses it within {} seconds",
                    ashlar::auth::REVOCATION_DELAY.as_secs()
                ),
                Some(false) => println!("token {id} was revoked already"),
                None => anyhow::bail!("there is no token {id} (see `ashlar token list`)"),
            },
        }
        Ok(())
    })
}

fn plugin(cmd: PluginCommand) -> anyhow::Result<()> {
    use ashlar::plugins::offline;
    use ashlar::plugins::source::DriverSource;
    match cmd {
        PluginCommand::Inspect { wasm, manifest } => {
            println!(
                "{}",
                offline::inspect(&DriverSource::named(&wasm, manifest))?
            );
            Ok(())
        }
        PluginCommand::New {
            name,
            world,
            lang,
            dir,
            sdk,
        } => {
            use ashlar::plugins::scaffold;
            scaffold::check_name(&name)?;
            let sdk = scaffold::check_sdk(&sdk.unwrap_or_else(scaffold::default_sdk), lang)?;
            let new = scaffold::NewDriver {
                name: name.clone(),
                world,
                lang,
                sdk,
                ashlar: std::env::current_exe().unwrap_or_else(|_| "ashlar".into()),
            };
            let dir = dir.unwrap_or_else(|| PathBuf::from(&name));
            let written = scaffold::create(&new, &dir)?;
            for path in &written {
                eprintln!("wrote {}", path.display());
            }
            let build = match lang {
                scaffold::Lang::Rust => "cargo build --target wasm32-wasip2 --release",
                scaffold::Lang::Python => "./build.sh",
            };
            println!(
                "{name}: a {world} in {}. Next:\n  cd {}\n  {build}\n  ashlar conformance {} --config backend.toml",
                match lang {
                    scaffold::Lang::Rust => "Rust",
                    scaffold::Lang::Python => "Python",
                },
                dir.display(),
                scaffold::wasm_path(&new),
            );
            Ok(())
        }
        PluginCommand::Stamp { wasm, contract } => {
            use ashlar::plugins::stamp::{Stamped, stamp};
            let bytes = std::fs::read(&wasm)
                .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", wasm.display()))?;
            match stamp(&bytes, &contract)
                .map_err(|e| anyhow::anyhow!("cannot stamp {}: {e}", wasm.display()))?
            {
                Stamped::Already => {
                    eprintln!("{} carries contract {contract} already", wasm.display())
                }
                Stamped::Now(out) => {
                    // Beside the original, then renamed over it: never half a component.
                    let tmp = wasm.with_extension("wasm.stamping");
                    std::fs::write(&tmp, out)
                        .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", tmp.display()))?;
                    std::fs::rename(&tmp, &wasm)
                        .map_err(|e| anyhow::anyhow!("cannot replace {}: {e}", wasm.display()))?;
                    eprintln!("stamped {} with contract {contract}", wasm.display());
                }
            }
            Ok(())
        }
        PluginCommand::Keygen { out } => {
            use std::io::Write;
            use std::os::unix::fs::OpenOptionsExt;
            let secret = ashlar::plugins::signature::generate_key()?;
            let key = ashlar::plugins::signature::read_key(&secret).map_err(anyhow::Error::msg)?;
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&out)
                .map_err(|e| {
                    anyhow::anyhow!(
                        "cannot create {}: {e} (an existing key is never overwritten)",
                        out.display()
                    )
                })?;
            writeln!(f, "{secret}")?;
            println!("{}", ashlar::plugins::signature::public_key(&key));
            Ok(())
        }
        PluginCommand::Sign { wasm, key } => {
            use ashlar::plugins::signature;
            let text = std::fs::read_to_string(&key)
                .map_err(|e| anyhow::anyhow!("cannot read key {}: {e}", key.display()))?;
            let key = signature::read_key(&text)
                .map_err(|e| anyhow::anyhow!("key {}: {e}", key.display()))?;
            let bytes = std::fs::read(&wasm)
                .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", wasm.display()))?;
            let sig = signature::sign(&bytes, &key);
            let path = signature::signature_path(&wasm);
            std::fs::write(&path, serde_json::to_string_pretty(&sig)? + "\n")?;
            eprintln!("wrote {}", path.display());
            println!("{}", sig.key);
            Ok(())
        }
        PluginCommand::Validate {
            wasm,
            manifest,
            config,
            backend,
        } => {
            let mut cfg = ashlar::config::Config::load(config.as_deref())?;
            cfg.finish()?;
            let source = DriverSource::named(&wasm, manifest);
            let (report, ok) = offline::validate(&source, &cfg, backend.as_deref())?;
            println!("{report}");
            if !ok {
                anyhow::bail!("the component would not load");
            }
            Ok(())
        }
        PluginCommand::List { server } => {
            let body = admin_call(&server, reqwest::Method::GET, "/ashlar/v1/plugins", None)?;
            println!("{}", offline::render_list(&body));
            let workers = admin_call(&server, reqwest::Method::GET, "/ashlar/v1/workers", None)?;
            println!("{}", ashlar::worker::render(&workers));
            Ok(())
        }
        PluginCommand::Swap {
            backend,
            wasm,
            manifest,
            probation_secs,
            target,
            server,
        } => {
            let abs = |p: PathBuf| std::path::absolute(&p).unwrap_or(p);
            let body = serde_json::json!({
                "wasm": abs(wasm),
                "manifest": manifest.map(abs),
                "probation_secs": probation_secs,
                "target": target,
            });
            let out = admin_call(
                &server,
                reqwest::Method::POST,
                &format!("/ashlar/v1/backends/{backend}/swap"),
                Some(body),
            )?;
            let s = &out["swap"];
            println!(
                "backend {}{}: {} -> {} in {} ms; on probation for {} ms",
                s["backend"].as_str().unwrap_or(""),
                if target { " target" } else { "" },
                s["from"].as_str().unwrap_or(""),
                s["to"].as_str().unwrap_or(""),
                s["took_ms"],
                s["probation_ms"]
            );
            Ok(())
        }
        PluginCommand::Rollback {
            backend,
            target,
            server,
        } => {
            let out = admin_call(
                &server,
                reqwest::Method::POST,
                &format!("/ashlar/v1/backends/{backend}/rollback"),
                Some(serde_json::json!({ "target": target })),
            )?;
            let s = &out["rollback"];
            println!(
                "backend {backend}: {} -> {}",
                s["from"].as_str().unwrap_or(""),
                s["to"].as_str().unwrap_or("")
            );
            Ok(())
        }
    }
}

/// One line per backend: name, key, driver, state, volumes (and moving), then what a
/// drain cannot move.
fn render_backend(b: &serde_json::Value) -> String {
    let mut out = format!(
        "{:<12} {:<28} {:<20} {:<9} {} volume(s), {} migrating",
        b["name"].as_str().unwrap_or(""),
        b["key"].as_str().unwrap_or(""),
        b["driver"].as_str().unwrap_or(""),
        b["state"].as_str().unwrap_or(""),
        b["volumes"],
        b["migrating"]
    );
    for blocked in b["blocked"].as_array().into_iter().flatten() {
        out.push_str(&format!(
            "\n    cannot move {}: {}",
            blocked["volume_id"].as_str().unwrap_or(""),
            blocked["reason"].as_str().unwrap_or("")
        ));
    }
    out
}

fn backend(cmd: BackendCommand) -> anyhow::Result<()> {
    match cmd {
        BackendCommand::List { server } => {
            let out = admin_call(&server, reqwest::Method::GET, "/ashlar/v1/backends", None)?;
            for b in out["backends"].as_array().into_iter().flatten() {
                println!("{}", render_backend(b));
            }
            Ok(())
        }
        BackendCommand::Add {
            name,
            config,
            server,
        } => {
            let config = config.map(|p| std::path::absolute(&p).unwrap_or(p));
            let out = admin_call(
                &server,
                reqwest::Method::POST,
                "/ashlar/v1/backends",
                Some(serde_json::json!({ "name": name, "config": config })),
            )?;
            println!("{}", render_backend(&out["backend"]));
            Ok(())
        }
        BackendCommand::Drain { name, wait, server } => {
            let path = format!("/ashlar/v1/backends/{name}");
            let out = admin_call(
                &server,
                reqwest::Method::POST,
                &format!("{path}/drain"),
                None,
            )?;
            println!("{}", render_backend(&out["backend"]));
            if !wait {
                return Ok(());
            }
            let total = out["backend"]["volumes"].as_u64().unwrap_or(0);
            let bar = indicatif::ProgressBar::new(total);
            loop {
                let now = admin_call(&server, reqwest::Method::GET, &path, None)?;
                let b = &now["backend"];
                let left = b["volumes"].as_u64().unwrap_or(0);
                bar.set_position(total.saturating_sub(left));
                let blocked = b["blocked"].as_array().map_or(0, Vec::len) as u64;
                if left == 0 || (left == blocked && b["migrating"].as_u64() == Some(0)) {
                    bar.finish_and_clear();
                    println!("{}", render_backend(b));
                    if left > 0 {
                        anyhow::bail!("{left} volume(s) cannot move; see above");
                    }
                    return Ok(());
                }
                std::thread::sleep(std::time::Duration::from_millis(500));
            }
        }
        BackendCommand::Remove { name, server } => {
            let out = admin_call(
                &server,
                reqwest::Method::DELETE,
                &format!("/ashlar/v1/backends/{name}"),
                None,
            )?;
            println!("{}", render_backend(&out["backend"]));
            Ok(())
        }
    }
}

/// One admin API request; Cinder-style error bodies become the error's message.
fn admin_call(
    server: &ServerArgs,
    method: reqwest::Method,
    path: &str,
    body: Option<serde_json::Value>,
) -> anyhow::Result<serde_json::Value> {
    ashlar::client::ApiClient::new(&server.url, &server.token)?.call(method, path, body)
}
