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
}

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("ASHLAR_LOG")
                .unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
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
            rt.block_on(ashlar::server::serve(cfg))
        }
    }
}
