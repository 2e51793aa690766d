//! `icsd`: the ICS node server.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use ics_node::config::{Bootstrap, Config, Peer, Role};

#[derive(Parser)]
#[command(name = "icsd", version, about = "Identity certificate server node")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve: with no flags, a single-node maintenance ICS in ./ics-data on 127.0.0.1:7400.
    Serve(Box<ServeArgs>),
    /// Print the default config as TOML.
    DefaultConfig,
}

#[derive(Args)]
struct ServeArgs {
    /// TOML config file; flags override it.
    #[arg(long, short)]
    config: Option<PathBuf>,
    /// manufacturer, developer, maintenance, infield or certifier.
    #[arg(long)]
    role: Option<Role>,
    /// The party's name, recorded in its genesis event.
    #[arg(long)]
    party: Option<String>,
    #[arg(long)]
    node_id: Option<u64>,
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// gRPC listen address (client API and Raft transport).
    #[arg(long)]
    listen: Option<SocketAddr>,
    /// Address peers use to reach this node (HOST:PORT).
    #[arg(long)]
    advertise: Option<String>,
    /// HTTP listen address (health, readiness, metrics).
    #[arg(long)]
    http_listen: Option<SocketAddr>,
    #[arg(long, value_enum)]
    bootstrap: Option<Bootstrap>,
    /// A cluster member as ID=HOST:PORT; repeat for each.
    #[arg(long = "peer")]
    peers: Vec<Peer>,
}

fn config_from(args: ServeArgs) -> anyhow::Result<Config> {
    let mut c = match &args.config {
        Some(path) => Config::load(path)?,
        None => Config::default(),
    };
    if let Some(v) = args.role {
        c.role = v;
        if args.party.is_none() && args.config.is_none() {
            c.party = v.name().to_string();
        }
    }
    if let Some(v) = args.party {
        c.party = v;
    }
    if let Some(v) = args.node_id {
        c.node_id = v;
    }
    if let Some(v) = args.data_dir {
        c.data_dir = v;
    }
    if let Some(v) = args.listen {
        c.listen = v;
    }
    if let Some(v) = args.advertise {
        c.advertise = Some(v);
    }
    if let Some(v) = args.http_listen {
        c.http_listen = v;
    }
    if let Some(v) = args.bootstrap {
        c.bootstrap = v;
    }
    if !args.peers.is_empty() {
        c.peers = args.peers;
    }
    Ok(c)
}

async fn shutdown_signal() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("install SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {},
        _ = term.recv() => {},
    }
    tracing::info!("shutdown requested");
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::DefaultConfig => toml::to_string(&Config::default())
            .map(|t| print!("{t}"))
            .map_err(anyhow::Error::from),
        Command::Serve(args) => {
            tracing_subscriber::fmt()
                .with_env_filter(
                    tracing_subscriber::EnvFilter::try_from_env("ICS_LOG")
                        .unwrap_or_else(|_| "info,openraft=warn".into()),
                )
                .with_writer(std::io::stderr)
                .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
                .init();
            config_from(*args).and_then(|config| {
                tokio::runtime::Builder::new_multi_thread()
                    .enable_all()
                    .build()?
                    .block_on(ics_node::server::run(config, shutdown_signal()))
            })
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("icsd: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
