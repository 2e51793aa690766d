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
    /// The party's TLS material: make it for a cluster, show what a node holds.
    #[command(subcommand)]
    Tls(TlsCommand),
}

#[derive(Subcommand)]
enum TlsCommand {
    /// Make a party's TLS CA and a certificate for every node and operator,
    /// one directory each under --out (node-<id>/, operator-<name>/, ca/).
    /// Copy node-<id>/ to that node's <data_dir>/tls (or point tls.dir at it).
    Init(TlsInitArgs),
    /// A certificate for a node joining the cluster, from the party CA (the
    /// ca/ directory of `tls init`, or a node's TLS directory).
    AddNode(TlsAddNodeArgs),
    /// Print the certificates in a node's TLS directory: holder, SHA-256
    /// fingerprint, expiry.
    Status(TlsStatusArgs),
}

#[derive(Args)]
struct TlsInitArgs {
    #[arg(long)]
    party: String,
    #[arg(long)]
    out: PathBuf,
    /// A node as ID=NAME[,NAME...]: the DNS names and IP addresses its
    /// certificate carries (the hosts peers and clients reach it by).
    #[arg(long = "node", required = true)]
    nodes: Vec<String>,
    /// An operator to issue a client certificate to; repeatable.
    #[arg(long = "operator", default_value = "admin")]
    operators: Vec<String>,
    /// Lifetime of the node and operator certificates.
    #[arg(long, default_value_t = 7 * 24 * 3600)]
    lifetime_secs: u64,
    /// Succeed without change when --out already holds a party CA (for a
    /// setup step that runs on every start).
    #[arg(long)]
    if_absent: bool,
    /// The party's role: where it runs a device CA (manufacturer, maintenance,
    /// infield), its root and issuing CA are made too (the root's key stays
    /// in ca/ only).
    #[arg(long)]
    role: Option<String>,
}

#[derive(Args)]
struct TlsAddNodeArgs {
    #[arg(long)]
    party: String,
    /// The directory holding ca.crt and ca.key.
    #[arg(long)]
    ca_dir: PathBuf,
    /// The node as ID=NAME[,NAME...].
    #[arg(long)]
    node: String,
    /// Where to write the node's TLS directory.
    #[arg(long)]
    out: PathBuf,
    #[arg(long, default_value_t = 7 * 24 * 3600)]
    lifetime_secs: u64,
}

#[derive(Args)]
struct TlsStatusArgs {
    /// The node's config file (its tls.dir or <data_dir>/tls).
    #[arg(long, short)]
    config: Option<PathBuf>,
    /// The node's data directory, if no config names it.
    #[arg(long)]
    data_dir: Option<PathBuf>,
}

/// A `--node ID=NAME[,NAME...]` argument.
fn node_spec(spec: &str) -> anyhow::Result<(u64, ics_pki::LeafNames)> {
    use anyhow::Context;
    let (id, names) = spec
        .split_once('=')
        .with_context(|| format!("--node {spec:?}: expected ID=NAME[,NAME...]"))?;
    let id: u64 = id
        .parse()
        .with_context(|| format!("--node {spec:?}: the id is not a number"))?;
    let mut leaf = ics_pki::LeafNames::default();
    for name in names.split(',').filter(|n| !n.is_empty()) {
        match name.parse::<std::net::IpAddr>() {
            Ok(ip) => leaf.ip_addresses.push(ip),
            Err(_) => leaf.dns_names.push(name.to_string()),
        }
    }
    Ok((id, leaf))
}

fn tls_add_node(args: TlsAddNodeArgs) -> anyhow::Result<()> {
    let (id, names) = node_spec(&args.node)?;
    let cert = ics_node::tls::add_node(
        &args.ca_dir,
        &args.party,
        id,
        &names,
        &args.out,
        ics_node::client::now_ms(),
        std::time::Duration::from_secs(args.lifetime_secs),
    )?;
    // The device CA's certificates and issuing key go with the node's TLS
    // material, where the party runs one.
    ics_node::device_ca::IssuingCa::copy_for_node(
        &ics_node::tls::TlsDir(args.ca_dir.clone()),
        &ics_node::tls::TlsDir(args.out.clone()),
    )?;
    println!(
        "node {id} sha256:{} in {}",
        cert.fingerprint_hex(),
        args.out.display()
    );
    Ok(())
}

fn tls_init(args: TlsInitArgs) -> anyhow::Result<()> {
    if args.if_absent && args.out.join("ca").join("ca.crt").exists() {
        println!(
            "{} already holds a party CA; nothing to do",
            args.out.display()
        );
        return Ok(());
    }
    let nodes = args
        .nodes
        .iter()
        .map(|s| node_spec(s))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let role = match &args.role {
        Some(name) => Some(
            ics_kernel::Role::from_name(name)
                .ok_or_else(|| anyhow::anyhow!("--role {name:?} is not a role"))?,
        ),
        None => None,
    };
    let now = ics_node::client::now_ms();
    let ca = ics_node::tls::init_party(
        &args.party,
        &args.out,
        &nodes,
        &args.operators,
        now,
        std::time::Duration::from_secs(args.lifetime_secs),
    )?;
    if let Some(purpose) = role.and_then(ics_node::device_ca::purpose_of) {
        let ids: Vec<u64> = nodes.iter().map(|(id, _)| *id).collect();
        ics_node::device_ca::init_party(&args.out, &args.party, purpose, &ids, now)?;
        println!(
            "party {} device {} CA in {}",
            args.party,
            purpose.name(),
            args.out.display()
        );
    }
    println!(
        "party {} TLS CA sha256:{} in {}",
        args.party,
        ca.cert.fingerprint_hex(),
        args.out.display()
    );
    Ok(())
}

fn tls_status(args: TlsStatusArgs) -> anyhow::Result<()> {
    let mut c = match &args.config {
        Some(path) => Config::load(path)?,
        None => Config::default(),
    };
    if let Some(d) = args.data_dir {
        c.data_dir = d;
    }
    let now = ics_node::client::now_ms();
    for line in ics_node::tls::status(&ics_node::tls::TlsDir::of(&c), now)? {
        println!("{line}");
    }
    Ok(())
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
    /// gRPC listen address of the client API.
    #[arg(long)]
    listen: Option<SocketAddr>,
    /// Address clients use to reach this node's API (HOST:PORT).
    #[arg(long)]
    advertise: Option<String>,
    /// Listen address for the other nodes (Raft, forwarding; mutual TLS).
    #[arg(long)]
    peer_listen: Option<SocketAddr>,
    /// Address the other nodes use to reach this node (HOST:PORT).
    #[arg(long)]
    advertise_peer: Option<String>,
    /// The node's TLS directory (default <data_dir>/tls).
    #[arg(long)]
    tls_dir: Option<PathBuf>,
    /// Lifetime of the node certificates this node issues itself.
    #[arg(long)]
    cert_lifetime_secs: Option<u64>,
    /// HTTPS listen address (health, readiness, metrics, HKP).
    #[arg(long)]
    http_listen: Option<SocketAddr>,
    /// The same HTTP side in plain text, on a loopback address (for stock
    /// tools that cannot be given the party CA, e.g. gpg's hkp://).
    #[arg(long)]
    http_plain_listen: Option<SocketAddr>,
    /// gRPC listen address for other parties' nodes (federation, mutual TLS
    /// under the peer CAs the policy in force names).
    #[arg(long)]
    federation_listen: Option<SocketAddr>,
    /// HTTPS listen address for devices (EST enrollment and data ingestion,
    /// the device's own certificate as client certificate).
    #[arg(long)]
    device_listen: Option<SocketAddr>,
    /// Who may read: open (anyone) or required (a certificate of the party CA).
    #[arg(long, value_enum)]
    clients: Option<ics_node::config::ClientAccess>,
    #[arg(long, value_enum)]
    bootstrap: Option<Bootstrap>,
    /// A cluster member as ID=HOST:PORT (its peer address); repeat for each.
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
    if let Some(v) = args.peer_listen {
        c.peer_listen = v;
    }
    if let Some(v) = args.advertise_peer {
        c.advertise_peer = Some(v);
    }
    if let Some(v) = args.tls_dir {
        c.tls.dir = Some(v);
    }
    if let Some(v) = args.cert_lifetime_secs {
        c.tls.cert_lifetime_secs = v;
    }
    if let Some(v) = args.http_listen {
        c.http_listen = v;
    }
    if let Some(v) = args.http_plain_listen {
        c.http_plain_listen = Some(v);
    }
    if let Some(v) = args.federation_listen {
        c.federation_listen = Some(v);
    }
    if let Some(v) = args.device_listen {
        c.device_listen = Some(v);
    }
    if let Some(v) = args.clients {
        c.tls.clients = v;
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
        Command::Tls(TlsCommand::Init(args)) => tls_init(args),
        Command::Tls(TlsCommand::Status(args)) => tls_status(args),
        Command::Tls(TlsCommand::AddNode(args)) => tls_add_node(args),
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
