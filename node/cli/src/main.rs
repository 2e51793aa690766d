//! `icsctl`: the command-line client of an ICS node.

use ics_identity::payload::CodeIdentity;
use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::{Args, Parser, Subcommand};
use futures::StreamExt;
use ics_client::{self as client, ChainHead, Client, codec, keyfile};
use ics_identity::IdentityPayload;
use ics_identity::openpgp;
use ics_identity::payload::{CodeStatus, DeviceStatus, EndorsementKind};
use ics_kernel::authority::PartyPayload;
use ics_kernel::{Algorithm, Event, EventId, EventLimits, PublicKey, SigningKey, SubjectRef};
use ics_proto::core_v1 as pb;
use serde_json::json;

mod bench_ca;
mod ca;
mod device_sim;
mod output;

use output::{emit, emit_json, note};

#[derive(Parser)]
#[command(name = "icsctl", version, about = "Client of an ICS node")]
struct Cli {
    /// Node to talk to (HOST:PORT).
    #[arg(
        long,
        short,
        global = true,
        default_value = "127.0.0.1:7400",
        env = "ICS_SERVER"
    )]
    server: String,
    /// Print JSON instead of text.
    #[arg(long, global = true)]
    json: bool,
    #[command(flatten)]
    tls: TlsArgs,
    #[command(subcommand)]
    command: Command,
}

/// How icsctl speaks TLS to the node: the party CA it trusts and the client
/// certificate it shows, from a TLS directory unless given one by one.
#[derive(Args)]
struct TlsArgs {
    /// Directory holding ca.crt and, for administration, operator.crt and
    /// operator.key (a single node makes them in <data_dir>/tls; `icsd tls
    /// init` makes operator-NAME/).
    #[arg(
        long,
        global = true,
        default_value = "ics-data/tls",
        env = "ICS_TLS_DIR"
    )]
    tls_dir: PathBuf,
    /// The party CA certificate (PEM) the node's certificate must chain to.
    #[arg(long, global = true, env = "ICS_CA")]
    ca: Option<PathBuf>,
    /// A client certificate (PEM) to show, e.g. an operator's.
    #[arg(long, global = true, env = "ICS_CERT", requires = "key")]
    cert: Option<PathBuf>,
    /// Its private key (PEM).
    #[arg(long, global = true, env = "ICS_KEY", requires = "cert")]
    key: Option<PathBuf>,
}

impl TlsArgs {
    fn load(&self) -> anyhow::Result<client::ClientTls> {
        let ca = self
            .ca
            .clone()
            .unwrap_or_else(|| self.tls_dir.join("ca.crt"));
        if !ca.exists() {
            bail!(
                "no party CA certificate at {}: give --ca FILE or --tls-dir DIR (ICS_CA, ICS_TLS_DIR)",
                ca.display()
            );
        }
        // Given files must be there; the directory's operator pair is shown
        // when present.
        let (cert, key, given) = match (&self.cert, &self.key) {
            (Some(c), Some(k)) => (c.clone(), k.clone(), true),
            _ => (
                self.tls_dir.join("operator.crt"),
                self.tls_dir.join("operator.key"),
                false,
            ),
        };
        let client =
            (given || (cert.exists() && key.exists())).then_some((cert.as_path(), key.as_path()));
        client::ClientTls::load(&ca, client)
    }
}

#[derive(Subcommand)]
enum Command {
    /// Key files.
    #[command(subcommand)]
    Key(KeyCmd),
    /// The party's replicated rules: limits and active capabilities.
    #[command(subcommand)]
    Rules(RulesCmd),
    /// Author keys that sign for the party.
    #[command(subcommand)]
    Author(AuthorCmd),
    /// Device identities and status.
    #[command(subcommand)]
    Device(DeviceCmd),
    /// Code identities (developer parties) and their status.
    #[command(subcommand)]
    Code(CodeCmd),
    /// Network service identities.
    #[command(subcommand)]
    Service(ServiceCmd),
    /// Replace a device's or service's key (signed by the new key too).
    Rotate {
        /// Key file that signs the event.
        #[arg(long)]
        signer: PathBuf,
        #[command(flatten)]
        subject: SubjectRefArgs,
        /// The new key file.
        #[arg(long)]
        new_key: PathBuf,
        /// Why, in words; recorded in the event.
        #[arg(long, default_value = "")]
        reason: String,
        /// A device's revocations file: publish the old key's retired revocation
        /// (or, with --compromised, the compromised one).
        #[arg(long)]
        revocations: Option<PathBuf>,
        /// Publish the 'key compromised' revocation instead of the retired one.
        #[arg(long, requires = "revocations")]
        compromised: bool,
    },
    /// Recognize another party by its root public key.
    Recognize {
        /// Key file that signs the event.
        #[arg(long)]
        signer: PathBuf,
        /// The other party's name.
        #[arg(long)]
        party: String,
        /// The other party's role: manufacturer, developer, maintenance, infield or certifier.
        #[arg(long)]
        role: ics_kernel::Role,
        /// Its root public key as ALGORITHM:HEX.
        #[arg(long)]
        root_public: String,
    },
    /// Let a recognized party attach records to one of this party's subjects.
    Grant {
        /// Key file that signs the event.
        #[arg(long)]
        signer: PathBuf,
        #[command(flatten)]
        subject: SubjectRefArgs,
        /// The recognized party the grant is for.
        #[arg(long)]
        party: String,
        /// Kinds it may attach: endorsed, endorsement-withdrawn, device-status-changed, code-status-changed.
        #[arg(long, value_delimiter = ',')]
        kinds: Vec<String>,
    },
    /// Endorse a subject: integrator-approval, maintainer or trust-label.
    Endorse {
        /// Key file that signs the event.
        #[arg(long)]
        signer: PathBuf,
        #[command(flatten)]
        subject: SubjectRefArgs,
        /// integrator-approval, maintainer or trust-label.
        #[arg(long)]
        endorsement: String,
        /// What the endorsement covers, in words.
        #[arg(long, default_value = "")]
        scope: String,
        /// Days it stays valid from now.
        #[arg(long, default_value_t = 365)]
        valid_days: u32,
    },
    /// Withdraw an endorsement this signer's party made.
    Withdraw {
        /// Key file that signs the event.
        #[arg(long)]
        signer: PathBuf,
        #[command(flatten)]
        subject: SubjectRefArgs,
        /// Id of the event that made the endorsement (hex).
        #[arg(long)]
        endorsement: String,
        /// Why, in words; recorded in the event.
        #[arg(long, default_value = "")]
        reason: String,
    },
    /// Find subjects by serial, attribute, code name or digest, or key fingerprint.
    Search(SearchArgs),
    /// Is a device key, public key or artifact trusted now, and why?
    Verify(VerifyArgs),
    /// A subject's current state.
    Subject(SubjectArgs),
    /// A subject's history, in order, with signatures: ids, the chain and
    /// every signature checked here against the party's keys.
    History(HistoryArgs),
    /// Subjects of one kind, in id order.
    Subjects {
        /// party, author-key, device, service, code, tls-ca or tls-cert.
        #[arg(long, default_value = "device")]
        kind: String,
        /// Subjects per page (at most 1000).
        #[arg(long, default_value_t = 100)]
        page_size: u32,
        /// Read this node's applied state instead of a linearizable read.
        #[arg(long)]
        stale: bool,
    },
    /// The keys that sign for the party or a party it recognized.
    Keys,
    /// A subject in a portable form: its OpenPGP certificate (device) or
    /// signature (code), or its state and signed history as JSON.
    Export {
        #[command(flatten)]
        subject: SubjectArgs,
        /// openpgp or json.
        #[arg(long, default_value = "openpgp")]
        format: String,
        /// OpenPGP as binary packets rather than ASCII armor.
        #[arg(long)]
        binary: bool,
        /// Write here instead of stdout.
        #[arg(long, short)]
        output: Option<PathBuf>,
    },
    /// One event by id.
    Event {
        /// Event id (hex).
        id: String,
        /// Read this node's applied state instead of a linearizable read.
        #[arg(long)]
        stale: bool,
    },
    /// Stream the log from an index on.
    Watch {
        /// First event position to send; 1 is the genesis.
        #[arg(long, default_value_t = 1)]
        from: u64,
        /// Stop after this many events.
        #[arg(long)]
        count: Option<u64>,
    },
    /// Cluster status and membership.
    #[command(subcommand)]
    Cluster(ClusterCmd),
    /// The transparency log: inclusion and consistency proofs, checked here.
    #[command(subcommand)]
    Log(LogCmd),
    /// The party's policy descriptor: what peers read and what it imports.
    #[command(subcommand)]
    Policy(PolicyCmd),
    /// Sync with other parties: peers, cursors, lag, staleness, last error.
    #[command(subcommand)]
    Federation(FederationCmd),
    /// The device CA: issue, revoke, verify, attributes, way stations.
    #[command(subcommand)]
    Ca(ca::CaCmd),
    /// Measure append latency and throughput against the server.
    Bench(BenchArgs),
    /// Measure Verify latency and throughput against the server.
    BenchVerify(BenchVerifyArgs),
    /// Measure the device CA: issuance over gRPC and EST, OCSP answers.
    BenchCa(bench_ca::BenchCaArgs),
    /// Measure HKP lookups on a node's HTTP port (keep-alive HTTP/1.1 clients).
    BenchHkp(BenchHkpArgs),
    /// Measure inclusion proofs served against the latest signed checkpoint
    /// (each verified here against its root).
    BenchProof(BenchProofArgs),
    /// Measure the time from an append to its inclusion in a signed,
    /// committed checkpoint (one event at a time).
    BenchCheckpoint(BenchCheckpointArgs),
}

#[derive(Subcommand)]
enum KeyCmd {
    /// Generate a key file (mode 0600).
    Generate {
        /// Where to write the new key file (mode 0600).
        #[arg(long)]
        out: PathBuf,
        /// ed25519 or p256.
        #[arg(long, default_value = "ed25519")]
        algorithm: String,
    },
    /// Print a key file's id and public key.
    Show {
        /// The key file.
        file: PathBuf,
    },
}

#[derive(Subcommand)]
enum AuthorCmd {
    /// Register a key as an author of the party (signed by the root key).
    Add {
        /// Root key file (or another key allowed to register authors).
        #[arg(long)]
        signer: PathBuf,
        /// Key file of the new author.
        #[arg(long)]
        key: PathBuf,
        /// Event kinds the author may sign, comma-separated.
        #[arg(
            long,
            value_delimiter = ',',
            default_value = "device-registered,device-status-changed"
        )]
        kinds: Vec<String>,
        /// A name for the key, for people.
        #[arg(long, default_value = "")]
        label: String,
        /// Days it stays valid from now.
        #[arg(long, default_value_t = 365)]
        valid_days: u32,
    },
    /// Revoke an author key.
    Revoke {
        /// Key file that signs the event.
        #[arg(long)]
        signer: PathBuf,
        /// Fingerprint of the key to revoke (hex).
        #[arg(long)]
        key_id: String,
        /// Why, in words; recorded in the event.
        #[arg(long, default_value = "")]
        reason: String,
    },
}

#[derive(Subcommand)]
enum DeviceCmd {
    /// Register a device identity.
    Register {
        /// Key file that signs the event.
        #[arg(long)]
        signer: PathBuf,
        /// The device's serial number, unique within the party.
        #[arg(long)]
        serial: String,
        /// The device's key file (its public key is registered).
        #[arg(long, conflicts_with = "device_public")]
        device_key: Option<PathBuf>,
        /// The device's public key as ALGORITHM:HEX (ed25519 or p256).
        #[arg(long)]
        device_public: Option<String>,
        /// Model attribute NAME=VALUE; repeat for each. manu, make, model,
        /// prodid, pvers, lot, qty, loc and dest become OpenPGP notations.
        #[arg(long = "attr")]
        attributes: Vec<String>,
        /// Register without an OpenPGP certificate (always so with --device-public:
        /// the device key must sign its own User ID binding).
        #[arg(long)]
        no_openpgp: bool,
        /// Where to keep the device's two OpenPGP revocations (mode 0600;
        /// default SERIAL.revocations). The log holds only their digests.
        #[arg(long)]
        revocations: Option<PathBuf>,
    },
    /// Simulate a device: get its factory certificate, enroll over EST,
    /// send readings to the ingestion endpoint, re-enroll.
    Simulate(device_sim::SimulateArgs),
    /// Change a device's status.
    Status {
        /// Key file that signs the event.
        #[arg(long)]
        signer: PathBuf,
        /// Device id (the fingerprint printed at registration).
        #[arg(long)]
        device: String,
        /// planned, in-use, retired, destroyed, stolen or lost.
        #[arg(long)]
        status: String,
        /// Why, in words; recorded in the event.
        #[arg(long, default_value = "")]
        reason: String,
        /// The device's revocations file: a stolen report publishes the
        /// compromised revocation, destroyed or retired the retired one.
        #[arg(long)]
        revocations: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
enum ServiceCmd {
    /// Register a network service's identity: its key, endpoints and operator.
    Register {
        /// Key file that signs the event.
        #[arg(long)]
        signer: PathBuf,
        /// The service's unique name.
        #[arg(long)]
        name: String,
        /// The service's key file (its public key is registered).
        #[arg(long, conflicts_with = "service_public")]
        service_key: Option<PathBuf>,
        /// The service's public key as ALGORITHM:HEX.
        #[arg(long)]
        service_public: Option<String>,
        /// A URI where it answers; repeat for each.
        #[arg(long = "endpoint", required = true)]
        endpoints: Vec<String>,
        /// The organisation that runs it.
        #[arg(long)]
        owner: String,
    },
}

#[derive(Subcommand)]
enum CodeCmd {
    /// Release a code identity: the artifact's blake3 and SHA-256 digests, signed.
    Release {
        /// Key file that signs the event.
        #[arg(long)]
        signer: PathBuf,
        /// The artifact's name.
        #[arg(long)]
        name: String,
        #[arg(long)]
        version: String,
        /// The artifact file; only its digests are sent.
        #[arg(long)]
        artifact: PathBuf,
        /// Reference to the artifact's SUIT manifest.
        #[arg(long)]
        suit_manifest: Option<String>,
    },
    /// Change a code identity's status.
    Status {
        /// Key file that signs the event.
        #[arg(long)]
        signer: PathBuf,
        /// Code id (the artifact's blake3, hex).
        #[arg(long)]
        code: String,
        /// released, deprecated or withdrawn.
        #[arg(long)]
        status: String,
        /// Why, in words; recorded in the event.
        #[arg(long, default_value = "")]
        reason: String,
    },
}

#[derive(Args)]
#[group(required = true, multiple = false, id = "by")]
struct SearchArgs {
    /// The device with this serial.
    #[arg(long, group = "by")]
    serial: Option<String>,
    /// NAME=VALUE, e.g. model=thermo-3.
    #[arg(long, group = "by")]
    attr: Option<String>,
    /// Every version of the code with this name.
    #[arg(long, group = "by")]
    code_name: Option<String>,
    /// blake3 or SHA-256 of an artifact (hex).
    #[arg(long, group = "by")]
    code_digest: Option<String>,
    /// Key id of a device, service or author key (hex; `--fingerprint` is an old name).
    #[arg(long, group = "by", alias = "fingerprint")]
    key_id: Option<String>,
    /// Subjects per page (at most 1000).
    #[arg(long, default_value_t = 100)]
    page_size: u32,
    /// Follow every page.
    #[arg(long)]
    all: bool,
}

#[derive(Args)]
#[group(required = true, multiple = false, id = "what")]
struct VerifyArgs {
    /// A public key as ALGORITHM:HEX.
    #[arg(long, group = "what")]
    public_key: Option<String>,
    /// A key file (its public key is checked).
    #[arg(long, group = "what")]
    key_file: Option<PathBuf>,
    /// A key id (hex; `--fingerprint` is an old name).
    #[arg(long, group = "what", alias = "fingerprint")]
    key_id: Option<String>,
    /// An artifact file (its blake3 is checked).
    #[arg(long, group = "what")]
    artifact: Option<PathBuf>,
    /// An artifact's blake3 or SHA-256 (hex).
    #[arg(long, group = "what")]
    code_digest: Option<String>,
    /// Read this node's applied state instead of a linearizable read.
    #[arg(long)]
    stale: bool,
}

fn hex_arg(name: &str, value: &str) -> anyhow::Result<Vec<u8>> {
    hex::decode(value).with_context(|| format!("--{name} is not hex"))
}

fn parse_public_key(p: &str) -> anyhow::Result<PublicKey> {
    let (alg, hexkey) = p
        .split_once(':')
        .context("a public key must be ALGORITHM:HEX")?;
    let alg = Algorithm::from_name(alg).with_context(|| format!("unknown algorithm {alg:?}"))?;
    Ok(PublicKey::new(
        alg,
        hex::decode(hexkey).context("public key is not hex")?,
    )?)
}

#[derive(Args)]
struct SubjectRefArgs {
    /// device, code or service.
    #[arg(long, default_value = "device")]
    kind: String,
    /// The subject's id.
    #[arg(long)]
    id: String,
}

impl SubjectRefArgs {
    fn subject(&self) -> anyhow::Result<SubjectRef> {
        subject_named(&self.kind, &self.id)
    }
}

/// A subject from a kind and an id, or from an id of the printed form `kind/id`.
fn subject_named(kind: &str, id: &str) -> anyhow::Result<SubjectRef> {
    let subject = SubjectRef::parse(id).unwrap_or_else(|| SubjectRef::new(kind, id));
    ics_client::capabilities::rules().check_subject_kind(&subject.kind)?;
    Ok(subject)
}

#[derive(Args)]
struct HistoryArgs {
    #[command(flatten)]
    subject: SubjectArgs,
    /// Also prove every event is in the log: an inclusion proof for each,
    /// checked against the latest signed checkpoint (waiting up to 10 s
    /// for one that covers the newest event).
    #[arg(long)]
    verify: bool,
    /// The log's verifier key to check the checkpoint with; without it, the
    /// key the node reports is used.
    #[arg(long, requires = "verify")]
    vkey: Option<String>,
}

#[derive(Args)]
struct SubjectArgs {
    /// party, author-key, device, code or service.
    #[arg(long, default_value = "device")]
    kind: String,
    /// The subject's id, or KIND/ID as printed.
    id: String,
    /// Read this node's applied state instead of a linearizable read.
    #[arg(long)]
    stale: bool,
}

#[derive(Subcommand)]
enum RulesCmd {
    /// The rules the log activated and what this node's build runs.
    Show,
    /// Changes the rules from the next event on (a root-signed rules-changed event).
    Change {
        /// The party's root key file.
        #[arg(long)]
        signer: PathBuf,
        /// A limit, NAME=VALUE (e.g. max_text_bytes=2048); repeat.
        #[arg(long = "limit")]
        limits: Vec<String>,
        /// A capability to activate at a version, NAME=VERSION; repeat. Every
        /// node must run it first: a node whose build does not stops.
        #[arg(long = "activate")]
        activate: Vec<String>,
        /// A capability to deactivate; repeat.
        #[arg(long = "deactivate")]
        deactivate: Vec<String>,
    },
}

#[derive(Subcommand)]
enum FederationCmd {
    /// Each peer of the policy in force: its cursor and when it was last
    /// proven (replicated), whether its records are past the policy's
    /// staleness, and the leader's pulls (endpoint, lag, counts, last
    /// error). Ask the leader for the pull figures.
    Status,
}

#[derive(Subcommand)]
enum PolicyCmd {
    /// Sign a descriptor (TOML) with the root key and append it: in force
    /// from its log index on, on every node.
    Publish {
        /// The party root key file.
        #[arg(long)]
        signer: PathBuf,
        /// The descriptor's text; it is signed and kept exactly as written.
        #[arg(long)]
        file: PathBuf,
    },
    /// The descriptor in force (or a version of it) and where it was published.
    Show {
        /// A version; the one in force when absent.
        #[arg(long)]
        version: Option<u64>,
    },
    /// The policy's verdict on a peer, a subject and an event kind, and the
    /// rule that decided it.
    Explain {
        /// The peer party.
        #[arg(long)]
        peer: String,
        /// `kind/id`, e.g. `device/<ID>`.
        #[arg(long)]
        subject: String,
        /// The event kind, e.g. `device-status-changed`.
        #[arg(long)]
        kind: String,
        /// What this party imports from the peer, instead of what the peer reads.
        #[arg(long)]
        import: bool,
        /// The party whose record the subject is (default: this party).
        #[arg(long)]
        namespace: Option<String>,
        /// Decide at this time (`YYYY-MM-DDTHH:MM:SSZ`) instead of now.
        #[arg(long)]
        at: Option<String>,
    },
}

#[derive(Subcommand)]
enum LogCmd {
    /// An event's inclusion proof (RFC 9162) for a tree size, verified here
    /// against the root the node gives before it is printed.
    Proof {
        /// The event id (hex).
        #[arg(long)]
        event: String,
        /// The tree the proof is for (0: the node's current tree).
        #[arg(long, default_value_t = 0)]
        tree_size: u64,
        /// Prove against the latest signed checkpoint instead (verified
        /// first; the proof must reach the root it signs).
        #[arg(long, conflicts_with = "tree_size")]
        checkpoint: bool,
        /// The log's verifier key (`<origin>+<key ID>+<key>`) to check the
        /// checkpoint with; without it, the key the node reports is used.
        #[arg(long, requires = "checkpoint")]
        vkey: Option<String>,
    },
    /// A signed checkpoint the log committed (the latest, or one of a
    /// size): its signature verified, and its root checked against the
    /// node's tree at that size.
    Checkpoint {
        /// 0: the latest.
        #[arg(long, default_value_t = 0)]
        size: u64,
        /// The log's verifier key (`<origin>+<key ID>+<key>`); without it,
        /// the key the node reports is used (trust on first use: pin it).
        #[arg(long)]
        vkey: Option<String>,
    },
    /// Bind a recognized party's log key: this party then witnesses that
    /// log (`/add-checkpoint`) and keeps that party's cosignatures on its own
    /// checkpoints. Signed by the party root key.
    Peer {
        /// The party root key file.
        #[arg(long)]
        signer: PathBuf,
        /// The recognized party.
        #[arg(long)]
        party: String,
        /// Its log's verifier key (`ics/<party>/log+<key ID>+<key>`, as
        /// `icsctl log checkpoint` prints it on that party's node).
        #[arg(long)]
        vkey: String,
    },
    /// Have a witness cosign this log's latest checkpoint (C2SP tlog-witness
    /// add-checkpoint, with the consistency proof from the size the witness
    /// cosigned last), then record the cosignature in this log.
    Witness {
        /// The witness's HTTPS listener, HOST:PORT.
        #[arg(long)]
        witness: String,
        /// The TLS directory for the witness: its party CA (`ca.crt`) and the
        /// client certificate it knows us by (`operator.crt`, `operator.key`).
        #[arg(long)]
        witness_tls: PathBuf,
    },
    /// Check that signed checkpoints of one log (e.g. as different
    /// witnesses cosigned them) show one history: each must verify under the
    /// log's key, two of one size must agree, and each pair of sizes must be
    /// joined by a consistency proof (asked of the server, verified here).
    /// Fails, naming the pair, on a split view.
    Compare {
        /// The log's verifier key (`<origin>+<key ID>+<key>`).
        #[arg(long)]
        vkey: String,
        /// Files holding one signed note each.
        #[arg(required = true, num_args = 2..)]
        notes: Vec<PathBuf>,
    },
    /// Download the whole log up to a signed checkpoint and check the copy
    /// against it: every event's id and author signature, and the Merkle root
    /// of all their leaves (recomputed here) equal to the checkpoint's.
    Verify {
        /// The checkpoint's size (0: the latest).
        #[arg(long, default_value_t = 0)]
        size: u64,
        /// The log's verifier key; without it, the key the node reports.
        #[arg(long)]
        vkey: Option<String>,
        /// Also write the verified copy here: per event, its index, id,
        /// salt and envelope, as one JSON object per line.
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// A consistency proof between two tree sizes, verified here.
    Consistency {
        /// The smaller tree's size.
        #[arg(long)]
        old: u64,
        /// 0: the node's current tree.
        #[arg(long, default_value_t = 0)]
        new: u64,
    },
}

#[derive(Subcommand)]
enum ClusterCmd {
    /// Initialize a new cluster with these members (ID=HOST:PORT, repeat).
    Init {
        /// A member, ID=HOST:PORT; repeat for each (none: this node alone).
        #[arg(long = "member")]
        members: Vec<String>,
    },
    /// This node's view: role, Raft state, leader, log, rules, members.
    Status,
    /// Exit 0 when the node knows a leader and has applied the party genesis (for health checks).
    Ready,
    /// Add a node: learner first, then voter once caught up.
    Add {
        /// The new node's id.
        #[arg(long)]
        id: u64,
        /// The new node's gRPC address, HOST:PORT.
        #[arg(long)]
        address: String,
        /// Keep it a learner: it gets the log but does not vote.
        #[arg(long)]
        learner: bool,
    },
    /// Removes a node from the membership.
    Remove {
        /// The node's id.
        #[arg(long)]
        id: u64,
        /// Remove a voter even if fewer than three voters remain.
        #[arg(long)]
        force: bool,
    },
}

#[derive(Args)]
struct BenchArgs {
    /// Key file allowed to register devices.
    #[arg(long)]
    signer: PathBuf,
    /// Concurrent clients.
    #[arg(long, default_value_t = 1)]
    clients: usize,
    /// Append requests per client.
    #[arg(long, default_value_t = 500)]
    requests: usize,
    /// Events per request.
    #[arg(long, default_value_t = 1)]
    batch: usize,
}

#[derive(Args)]
struct BenchVerifyArgs {
    /// Key id to verify (hex), e.g. a registered device's id.
    #[arg(long, alias = "fingerprint")]
    key_id: String,
    /// Concurrent clients.
    #[arg(long, default_value_t = 1)]
    clients: usize,
    /// Requests per client.
    #[arg(long, default_value_t = 2000)]
    requests: usize,
    /// Stale reads (this node's state) instead of read-index.
    #[arg(long)]
    stale: bool,
}

#[derive(Args)]
struct BenchProofArgs {
    /// Concurrent clients.
    #[arg(long, default_value_t = 1)]
    clients: usize,
    /// Requests per client.
    #[arg(long, default_value_t = 2000)]
    requests: usize,
    /// Prove the first this many events of the log, in turn.
    #[arg(long, default_value_t = 1000)]
    events: u64,
}

#[derive(Args)]
struct BenchCheckpointArgs {
    /// Author key file (JSON) allowed to register devices.
    #[arg(long)]
    signer: PathBuf,
    /// Events to append, one after another.
    #[arg(long, default_value_t = 100)]
    events: usize,
    /// How often to ask for the latest checkpoint while waiting.
    #[arg(long, default_value_t = 5)]
    poll_ms: u64,
}

#[derive(Args)]
struct BenchHkpArgs {
    /// The node's HTTP address (HOST:PORT).
    #[arg(long, default_value = "127.0.0.1:7480")]
    http: String,
    /// What to look up: 0x + fingerprint, 0x + key id, or a serial.
    #[arg(long)]
    search: String,
    /// get (armored certificate) or index (machine-readable listing).
    #[arg(long, default_value = "get")]
    op: String,
    /// Concurrent clients.
    #[arg(long, default_value_t = 1)]
    clients: usize,
    /// Requests per client.
    #[arg(long, default_value_t = 2000)]
    requests: usize,
}

fn consistency(stale: bool) -> i32 {
    if stale {
        pb::ReadConsistency::Stale as i32
    } else {
        pb::ReadConsistency::Linearizable as i32
    }
}

fn subject_of(args: &SubjectArgs) -> anyhow::Result<SubjectRef> {
    subject_named(&args.kind, &args.id)
}

/// Decodes a stored event with this build's rules (signatures unchecked).
fn decode_event(env: pb::SignedEvent) -> anyhow::Result<Event> {
    let envelope = codec::envelope_from_pb(env)?;
    Ok(codec::parse_event(envelope, &EventLimits::unbounded())?)
}

fn describe(event: &pb::StoredEvent) -> serde_json::Value {
    let env = event.event.clone().unwrap_or_default();
    let signatures: Vec<_> = env
        .signatures
        .iter()
        .map(|s| hex::encode(&s.key_id))
        .collect();
    match decode_event(env) {
        Ok(e) => json!({
            "index": event.index,
            "event_id": hex::encode(&event.event_id),
            "subject": e.body.subject.to_string(),
            "sequence": e.body.sequence,
            "previous": e.body.previous.map(|p| p.to_hex()),
            "author": e.body.author.to_hex(),
            "time_unix_ms": e.body.time_ms,
            "kind": e.kind.name,
            "payload": payload_json(&e),
            "signed_by": signatures,
        }),
        Err(e) => {
            json!({"index": event.index, "event_id": hex::encode(&event.event_id), "error": e.to_string()})
        }
    }
}

/// The payload's fields as its owner describes them: no code here per kind.
fn payload_json(e: &Event) -> serde_json::Value {
    use ics_kernel::capability::Field;
    let fields = ics_client::capabilities::rules().describe(e);
    serde_json::Value::Object(
        fields
            .into_iter()
            .map(|(name, field)| {
                let value = match field {
                    Field::Text(t) => json!(t),
                    Field::Number(n) => json!(n),
                    Field::Bool(b) => json!(b),
                    Field::List(l) => json!(l),
                    Field::Map(m) => serde_json::Value::Object(
                        m.into_iter().map(|(k, v)| (k, json!(v))).collect(),
                    ),
                    Field::Absent => serde_json::Value::Null,
                };
                (name.to_string(), value)
            })
            .collect(),
    )
}

fn rules_json(rules: &ics_kernel::ActiveRules) -> serde_json::Value {
    json!({"limits": &rules.limits, "capabilities": &rules.capabilities})
}

/// The active rules as the node reports them.
fn active_rules(s: &pb::StatusResponse) -> anyhow::Result<ics_kernel::ActiveRules> {
    let l = s
        .active_limits
        .as_ref()
        .context("the node has no active rules yet (no genesis)")?;
    let size = |v: u64| usize::try_from(v).context("limit out of range");
    Ok(ics_kernel::ActiveRules {
        limits: EventLimits {
            max_body_bytes: size(l.max_body_bytes)?,
            max_signatures: size(l.max_signatures)?,
            max_records_per_subject: l.max_records_per_subject,
            max_attributes: size(l.max_attributes)?,
            max_text_bytes: size(l.max_text_bytes)?,
            max_batch_events: size(l.max_batch_events)?,
        },
        capabilities: s
            .active_capabilities
            .iter()
            .map(|c| (c.name.clone(), c.version))
            .collect(),
    })
}

async fn rules(c: &mut Client, j: bool, cmd: RulesCmd) -> anyhow::Result<()> {
    let status = c.status().await?;
    let mut rules = active_rules(&status)?;
    match cmd {
        RulesCmd::Show => {
            emit(
                j,
                json!({"active": rules_json(&rules), "build": status.build_rules}),
                [
                    format!("active: {}", rules.version_text()),
                    format!("limits: {:?}", rules.limits),
                    format!("this build runs: {}", status.build_rules),
                ]
                .join("\n"),
            )?;
        }
        RulesCmd::Change {
            signer,
            limits,
            activate,
            deactivate,
        } => {
            let root = keyfile::read(&signer)?;
            let mut value = serde_json::to_value(&rules.limits)?;
            for l in &limits {
                let (name, v) = l.split_once('=').context("--limit is NAME=VALUE")?;
                let slot = value
                    .get_mut(name)
                    .with_context(|| format!("no limit named {name:?}"))?;
                *slot = json!(v.parse::<u64>().context("a limit is a number")?);
            }
            rules.limits = serde_json::from_value(value)?;
            for a in &activate {
                let (name, v) = a.split_once('=').context("--activate is NAME=VERSION")?;
                rules.capabilities.insert(
                    name.to_string(),
                    v.parse().context("a version is a number")?,
                );
            }
            for d in &deactivate {
                rules.capabilities.remove(d);
            }
            let build = ics_client::capabilities::rules();
            if let Err(e) = build.check_supported(&rules) {
                bail!(
                    "refusing to activate rules this node's build does not run: {}",
                    e.0
                );
            }
            let party = SubjectRef::new(ics_kernel::authority::PARTY, status.party.clone());
            let out = c
                .append_next(&root, &party, PartyPayload::RulesChanged { rules })
                .await?;
            print_appended(j, "rules changed on", &party, &out)?;
        }
    }
    Ok(())
}

/// An event kind name these rules know.
fn known_kind(name: &str) -> anyhow::Result<String> {
    let rules = ics_client::capabilities::rules();
    if rules.kind(name).is_none() {
        let names: Vec<&str> = rules.kinds().map(|k| k.name).collect();
        bail!("unknown event kind {name:?} ({})", names.join(", "));
    }
    Ok(name.to_string())
}

/// One revocation out of a device's revocations file.
fn escrowed(path: &std::path::Path, slot: openpgp::RevocationSlot) -> anyhow::Result<Vec<u8>> {
    let escrow: openpgp::RevocationEscrow = keyfile::read_secret(path)?;
    Ok(escrow.get(slot).to_vec())
}

/// The device's OpenPGP certificate to certify, if the subject has one.
async fn certification_target(
    c: &mut Client,
    subject: &SubjectRef,
) -> anyhow::Result<Option<openpgp::CertificationTarget>> {
    if subject.kind != ics_identity::DEVICE {
        return Ok(None);
    }
    match c.export_openpgp(subject).await {
        Ok(e) => Ok(Some(openpgp::CertificationTarget::from_certificate(
            &e.data,
        )?)),
        Err(s) if s.code() == tonic::Code::FailedPrecondition => Ok(None),
        Err(s) => Err(s.into()),
    }
}

fn print_event(json_out: bool, e: &pb::StoredEvent) -> std::io::Result<()> {
    let v = describe(e);
    emit(
        json_out,
        v.clone(),
        format!(
            "#{:<6} {} {:<22} {} seq={} by {}",
            e.index,
            &hex::encode(&e.event_id)[..16],
            v["kind"].as_str().unwrap_or("?"),
            v["subject"].as_str().unwrap_or("?"),
            v["sequence"],
            &v["author"].as_str().unwrap_or("?").get(..16).unwrap_or("?")
        ),
    )
}

fn print_appended(
    json_out: bool,
    what: &str,
    subject: &SubjectRef,
    appended: &[pb::AppendedEvent],
) -> std::io::Result<()> {
    for a in appended {
        let dup = if a.duplicate {
            " (already in the log)"
        } else {
            ""
        };
        emit(
            json_out,
            json!({"subject": subject.to_string(), "index": a.index,
                "event_id": hex::encode(&a.event_id), "duplicate": a.duplicate}),
            format!(
                "{what} {subject} at index {} event {}{dup}",
                a.index,
                hex::encode(&a.event_id)
            ),
        )?;
    }
    Ok(())
}

/// Key files: no node involved.
fn key_command(cmd: KeyCmd, j: bool) -> anyhow::Result<()> {
    match cmd {
        KeyCmd::Generate { out, algorithm } => {
            let alg = Algorithm::from_name(&algorithm)
                .with_context(|| format!("unknown algorithm {algorithm:?} (ed25519, p256)"))?;
            let key = SigningKey::generate(alg);
            keyfile::write(&out, &key)?;
            emit(
                j,
                json!({"file": out, "key_id": key.key_id().to_hex(), "algorithm": alg.name()}),
                format!(
                    "wrote {} key {} to {}",
                    alg.name(),
                    key.key_id(),
                    out.display()
                ),
            )?;
        }
        KeyCmd::Show { file } => {
            let key = keyfile::read(&file)?;
            let public = key.public_key();
            // The OpenPGP fingerprint this key certifies under (as a party key).
            let openpgp = openpgp::party_fingerprint(&public);
            emit(
                j,
                json!({"key_id": key.key_id().to_hex(), "algorithm": public.algorithm().name(),
                    "public_key": hex::encode(public.bytes()), "openpgp_fingerprint": openpgp}),
                format!(
                    "key_id {}\npublic {}:{}\nopenpgp {openpgp}",
                    key.key_id(),
                    public.algorithm().name(),
                    hex::encode(public.bytes())
                ),
            )?;
        }
    }
    Ok(())
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let j = cli.json;
    let command = match cli.command {
        Command::Key(cmd) => return key_command(cmd, j),
        Command::Device(DeviceCmd::Simulate(args)) => return device_sim::run(j, args).await,
        Command::Ca(cmd) => match ca::offline(&cmd, j) {
            Some(done) => return done,
            None => Command::Ca(cmd),
        },
        other => other,
    };
    let tls = cli.tls.load()?;
    let mut c = Client::connect(&cli.server, &tls)?;
    match command {
        Command::Author(AuthorCmd::Add {
            signer,
            key,
            kinds,
            label,
            valid_days,
        }) => {
            let root = keyfile::read(&signer)?;
            let author = keyfile::read(&key)?;
            let kinds = kinds
                .iter()
                .map(|k| known_kind(k))
                .collect::<anyhow::Result<BTreeSet<_>>>()?;
            let not_after = client::now_ms() + i64::from(valid_days) * 86_400_000;
            let env =
                client::register_author(&root, &author.public_key(), &label, kinds, not_after);
            let subject =
                SubjectRef::new(ics_kernel::authority::AUTHOR_KEY, author.key_id().to_hex());
            let out = c.append(vec![env]).await?;
            print_appended(j, "registered", &subject, &out)?;
        }
        Command::Author(AuthorCmd::Revoke {
            signer,
            key_id,
            reason,
        }) => {
            let root = keyfile::read(&signer)?;
            let subject = SubjectRef::new(ics_kernel::authority::AUTHOR_KEY, key_id.clone());
            let head = c.chain_head(&subject).await?;
            let out = c
                .append(vec![client::revoke_author(&root, &key_id, head, &reason)])
                .await?;
            print_appended(j, "revoked", &subject, &out)?;
        }
        Command::Device(DeviceCmd::Register {
            signer,
            serial,
            device_key,
            device_public,
            attributes,
            no_openpgp,
            revocations,
        }) => {
            let author = keyfile::read(&signer)?;
            let device_secret = device_key.as_deref().map(keyfile::read).transpose()?;
            let public = match (&device_secret, device_public) {
                (Some(k), _) => k.public_key(),
                (None, Some(p)) => parse_public_key(&p).context("--device-public")?,
                (None, None) => bail!("give the device's key with --device-key or --device-public"),
            };
            let attrs = attributes
                .iter()
                .map(|a| {
                    a.split_once('=')
                        .map(|(k, v)| (k.to_string(), v.to_string()))
                        .with_context(|| format!("attribute {a:?} must be NAME=VALUE"))
                })
                .collect::<anyhow::Result<Vec<_>>>()?;
            let subject = SubjectRef::new(ics_identity::DEVICE, public.id().to_hex());
            let (event, escrow) = match device_secret {
                Some(device) if !no_openpgp => {
                    let (event, escrow) =
                        client::register_device_with_openpgp(&author, &serial, &device, attrs)?;
                    let path = revocations
                        .unwrap_or_else(|| PathBuf::from(format!("{serial}.revocations")));
                    // Kept before the append: the log will commit to these.
                    keyfile::write_secret(&path, &escrow)?;
                    (event, Some(path))
                }
                _ => (
                    client::register_device(&author, &serial, &public, attrs),
                    None,
                ),
            };
            match c.append(vec![event]).await {
                Ok(out) => {
                    print_appended(j, "registered", &subject, &out)?;
                    if let Some(path) = escrow
                        && !j
                    {
                        note(
                            j,
                            format!("  OpenPGP revocations kept in {}", path.display()),
                        )?;
                    }
                }
                Err(e) => {
                    if let Some(path) = escrow {
                        let _ = std::fs::remove_file(path);
                    }
                    return Err(e.into());
                }
            }
        }
        Command::Device(DeviceCmd::Status {
            signer,
            device,
            status,
            reason,
            revocations,
        }) => {
            let author = keyfile::read(&signer)?;
            let status = DeviceStatus::from_name(&status).with_context(|| {
                format!(
                    "unknown status {status:?} (planned, in-use, retired, destroyed, stolen, lost)"
                )
            })?;
            let slot = match status {
                DeviceStatus::Stolen => Some(openpgp::RevocationSlot::Compromised),
                DeviceStatus::Destroyed | DeviceStatus::Retired => {
                    Some(openpgp::RevocationSlot::Retired)
                }
                _ => None,
            };
            let revocation = match (revocations, slot) {
                (None, _) => None,
                (Some(path), Some(slot)) => Some(escrowed(&path, slot)?),
                (Some(_), None) => bail!(
                    "--revocations goes with stolen, destroyed or retired, not {}",
                    status.name()
                ),
            };
            let subject = subject_named(ics_identity::DEVICE, &device)?;
            let head = c.chain_head(&subject).await?;
            let out = c
                .append(vec![client::report_status(
                    &author, &device, head, status, &reason, revocation,
                )])
                .await?;
            print_appended(j, status.name(), &subject, &out)?;
        }
        Command::Code(CodeCmd::Release {
            signer,
            name,
            version,
            artifact,
            suit_manifest,
        }) => {
            let author = keyfile::read(&signer)?;
            let bytes = std::fs::read(&artifact)
                .with_context(|| format!("read artifact {}", artifact.display()))?;
            let identity = CodeIdentity::of_artifact(&name, &version, &bytes, suit_manifest);
            let subject = SubjectRef::new(ics_identity::CODE, hex::encode(identity.blake3));
            let out = c
                .append(vec![client::release_code(&author, identity)?])
                .await?;
            print_appended(j, "released", &subject, &out)?;
        }
        Command::Service(ServiceCmd::Register {
            signer,
            name,
            service_key,
            service_public,
            endpoints,
            owner,
        }) => {
            let author = keyfile::read(&signer)?;
            let public = match (service_key, service_public) {
                (Some(f), _) => keyfile::read(&f)?.public_key(),
                (None, Some(p)) => parse_public_key(&p).context("--service-public")?,
                (None, None) => {
                    bail!("give the service's key with --service-key or --service-public")
                }
            };
            let subject = SubjectRef::new(ics_identity::SERVICE, public.id().to_hex());
            let out = c
                .append(vec![client::register_service(
                    &author, &name, &public, endpoints, &owner,
                )])
                .await?;
            print_appended(j, "registered", &subject, &out)?;
        }
        Command::Rotate {
            signer,
            subject,
            new_key,
            reason,
            revocations,
            compromised,
        } => {
            let author = keyfile::read(&signer)?;
            let new_key = keyfile::read(&new_key)?;
            let slot = if compromised {
                openpgp::RevocationSlot::Compromised
            } else {
                openpgp::RevocationSlot::Retired
            };
            let revocation = revocations.map(|path| escrowed(&path, slot)).transpose()?;
            let subject = subject.subject()?;
            let head = c.chain_head(&subject).await?;
            let out = c
                .append(vec![client::rotate_key(
                    &author,
                    subject.clone(),
                    head,
                    &new_key,
                    &reason,
                    revocation,
                )])
                .await?;
            print_appended(j, "rotated", &subject, &out)?;
        }
        Command::Code(CodeCmd::Status {
            signer,
            code,
            status,
            reason,
        }) => {
            let author = keyfile::read(&signer)?;
            let status = CodeStatus::from_name(&status).with_context(|| {
                format!("unknown code status {status:?} (released, deprecated, withdrawn)")
            })?;
            let subject = SubjectRef::new(ics_identity::CODE, code.clone());
            let head = c.chain_head(&subject).await?;
            let out = c
                .append(vec![client::change_code_status(
                    &author, &code, head, status, &reason,
                )])
                .await?;
            print_appended(j, status.name(), &subject, &out)?;
        }
        Command::Recognize {
            signer,
            party,
            role,
            root_public,
        } => {
            let root = keyfile::read(&signer)?;
            let subject = SubjectRef::new(ics_kernel::authority::PARTY, party.clone());
            let payload = PartyPayload::Recognized {
                role,
                root_key: parse_public_key(&root_public).context("--root-public")?,
            };
            let out = c
                .append(vec![client::signed(
                    &root,
                    subject.clone(),
                    ChainHead::default(),
                    payload,
                )])
                .await?;
            print_appended(j, "recognized", &subject, &out)?;
        }
        Command::Grant {
            signer,
            subject,
            party,
            kinds,
        } => {
            let key = keyfile::read(&signer)?;
            let subject = subject.subject()?;
            let kinds = kinds
                .iter()
                .map(|k| known_kind(k))
                .collect::<anyhow::Result<BTreeSet<_>>>()?;
            let payload = PartyPayload::AccessGranted { party, kinds };
            let out = c.append_next(&key, &subject, payload).await?;
            print_appended(j, "granted on", &subject, &out)?;
        }
        Command::Endorse {
            signer,
            subject,
            endorsement,
            scope,
            valid_days,
        } => {
            let key = keyfile::read(&signer)?;
            let subject = subject.subject()?;
            let kind = EndorsementKind::from_name(&endorsement).with_context(|| {
                format!("unknown endorsement {endorsement:?} (integrator-approval, maintainer, trust-label)")
            })?;
            // A device with an OpenPGP certificate gets the endorsement as an
            // OpenPGP certification by this key as well.
            let target = certification_target(&mut c, &subject).await?;
            let out = c
                .append_next_at(&key, &subject, |time_ms| {
                    let not_after_ms = time_ms + i64::from(valid_days) * 86_400_000;
                    let openpgp_certification = target
                        .as_ref()
                        .map(|t| {
                            openpgp::certify_endorsement(
                                &key,
                                t,
                                kind,
                                &scope,
                                time_ms,
                                not_after_ms,
                            )
                        })
                        .transpose()?;
                    Ok(IdentityPayload::Endorsed {
                        kind,
                        scope: scope.clone(),
                        not_after_ms,
                        openpgp_certification,
                    })
                })
                .await?;
            print_appended(j, "endorsed", &subject, &out)?;
        }
        Command::Withdraw {
            signer,
            subject,
            endorsement,
            reason,
        } => {
            let key = keyfile::read(&signer)?;
            let subject = subject.subject()?;
            let endorsement = EventId::from_slice(&hex_arg("endorsement", &endorsement)?)
                .context("--endorsement must be 32 bytes")?;
            // An endorsement made with an OpenPGP certification is withdrawn
            // with a certification revocation by the same key. Another key of
            // the party sends none: the node accepts that only when the
            // certifying key can no longer sign, and otherwise says so.
            let endorsed = c
                .log
                .get_event(pb::GetEventRequest {
                    event_id: endorsement.0.to_vec(),
                    consistency: pb::ReadConsistency::Linearizable as i32,
                })
                .await?
                .into_inner();
            let endorsed = decode_event(endorsed.event.unwrap_or_default())?;
            let certified = endorsed.body.author == key.key_id()
                && matches!(
                    endorsed.payload::<IdentityPayload>(),
                    Some(IdentityPayload::Endorsed {
                        openpgp_certification: Some(_),
                        ..
                    })
                );
            let target = if certified {
                certification_target(&mut c, &subject).await?
            } else {
                None
            };
            let out = c
                .append_next_at(&key, &subject, |time_ms| {
                    let openpgp_revocation = target
                        .as_ref()
                        .map(|t| openpgp::revoke_endorsement(&key, t, &reason, time_ms))
                        .transpose()?;
                    Ok(IdentityPayload::EndorsementWithdrawn {
                        endorsement,
                        reason: reason.clone(),
                        openpgp_revocation,
                    })
                })
                .await?;
            print_appended(j, "withdrawn on", &subject, &out)?;
        }
        Command::Search(args) => {
            use pb::search_request::By;
            let by = if let Some(v) = args.serial {
                By::Serial(v)
            } else if let Some(v) = args.attr {
                By::Attribute(v)
            } else if let Some(v) = args.code_name {
                By::CodeName(v)
            } else if let Some(v) = args.code_digest {
                By::CodeDigest(hex_arg("code-digest", &v)?)
            } else if let Some(v) = args.key_id {
                By::KeyId(hex_arg("key-id", &v)?)
            } else {
                bail!("give one of --serial, --attr, --code-name, --code-digest, --key-id")
            };
            let mut token = String::new();
            loop {
                let page = c
                    .log
                    .search(pb::SearchRequest {
                        by: Some(by.clone()),
                        page_size: args.page_size,
                        page_token: token.clone(),
                        consistency: pb::ReadConsistency::Linearizable as i32,
                    })
                    .await?
                    .into_inner();
                for s in &page.subjects {
                    let subject = s.subject.clone().unwrap_or_default();
                    let kind = subject.kind;
                    emit(
                        j,
                        json!({"subject": format!("{kind}/{}", subject.id), "status": s.status, "summary": s.summary,
                                "events": s.next_sequence, "registered_by": hex::encode(&s.registered_by)}),
                        format!("{kind}/{}  {}", subject.id, s.summary),
                    )?;
                }
                if page.next_page_token.is_empty() || !args.all {
                    if !page.next_page_token.is_empty() && !j {
                        note(j, "(more: --all follows every page)")?;
                    }
                    break;
                }
                token = page.next_page_token;
            }
        }
        Command::Verify(args) => {
            use pb::verify_request::What;
            let what = if let Some(p) = args.public_key {
                let k = parse_public_key(&p)?;
                What::KeyId(k.id().0.to_vec())
            } else if let Some(f) = args.key_file {
                What::KeyId(keyfile::read(&f)?.key_id().0.to_vec())
            } else if let Some(f) = args.key_id {
                What::KeyId(hex_arg("key-id", &f)?)
            } else if let Some(f) = args.artifact {
                let bytes =
                    std::fs::read(&f).with_context(|| format!("read artifact {}", f.display()))?;
                What::CodeDigest(blake3::hash(&bytes).as_bytes().to_vec())
            } else if let Some(d) = args.code_digest {
                What::CodeDigest(hex_arg("code-digest", &d)?)
            } else {
                bail!("give one of --public-key, --key-file, --key-id, --artifact, --code-digest")
            };
            let v = c
                .log
                .verify(pb::VerifyRequest {
                    what: Some(what),
                    consistency: consistency(args.stale),
                })
                .await?
                .into_inner();
            let subject = v.subject.clone().map(|s| format!("{}/{}", s.kind, s.id));
            emit(
                j,
                json!({"trusted": v.trusted, "reason": v.reason, "subject": subject, "status": v.status,
                        "registered_by": hex::encode(&v.registered_by), "party": v.party,
                        "registered_at_index": v.registered_at_index, "as_of_index": v.as_of_index,
                        "synced_via": v.synced_via, "synced_ms": v.synced_ms,
                        "synced_size": v.synced_size, "stale": v.stale}),
                format!(
                    "{}: {} (party {}, as of event {})",
                    if v.trusted { "trusted" } else { "NOT trusted" },
                    v.reason,
                    v.party,
                    v.as_of_index
                ),
            )?;
            if !v.trusted {
                std::process::exit(2);
            }
        }
        Command::Subject(args) => {
            let subject = subject_of(&args)?;
            let req = pb::GetSubjectRequest {
                subject: Some(codec::subject_to_pb(&subject)),
                consistency: consistency(args.stale),
            };
            let s = c.log.get_subject(req).await?.into_inner();
            emit(
                j,
                json!({"subject": subject.to_string(), "next_sequence": s.next_sequence,
                        "last_event_id": hex::encode(&s.last_event_id), "summary": s.summary, "history": s.history,
                        "namespace": s.namespace}),
                format!(
                    "{subject}{}\n  {}\n  events: {} (last {})",
                    if s.namespace.is_empty() {
                        String::new()
                    } else {
                        format!(" ({}'s record, imported)", s.namespace)
                    },
                    s.summary,
                    s.next_sequence,
                    hex::encode(&s.last_event_id)
                ),
            )?;
        }
        Command::Subjects {
            kind,
            page_size,
            stale,
        } => {
            let mut token = String::new();
            loop {
                let page = c
                    .log
                    .list_subjects(pb::ListSubjectsRequest {
                        kind: kind.clone(),
                        page_size,
                        page_token: token,
                        consistency: consistency(stale),
                    })
                    .await?
                    .into_inner();
                for s in &page.subjects {
                    let subject = s.subject.clone().unwrap_or_default();
                    emit(
                        j,
                        json!({"subject": format!("{}/{}", subject.kind, subject.id), "status": s.status, "summary": s.summary, "events": s.next_sequence}),
                        format!("{}/{}  {}", subject.kind, subject.id, s.summary),
                    )?;
                }
                if page.next_page_token.is_empty() {
                    break;
                }
                token = page.next_page_token;
            }
        }
        Command::Keys => {
            for k in c.keys().await? {
                let kinds = if k.root {
                    "every kind".to_string()
                } else {
                    k.allowed_kinds.join(",")
                };
                emit(
                    j,
                    json!({"key_id": hex::encode(&k.key_id), "party": k.party, "label": k.label, "root": k.root,
                            "allowed_kinds": k.allowed_kinds, "revoked": k.revoked, "not_after_unix_ms": k.not_after_unix_ms}),
                    format!(
                        "{} {} {:?} {}{}",
                        hex::encode(&k.key_id),
                        k.party,
                        k.label,
                        kinds,
                        if k.revoked { " REVOKED" } else { "" }
                    ),
                )?;
            }
        }
        Command::History(HistoryArgs {
            subject: args,
            verify,
            vkey,
        }) => {
            let subject = subject_of(&args)?;
            let req = pb::HistoryRequest {
                subject: Some(codec::subject_to_pb(&subject)),
                consistency: consistency(args.stale),
            };
            // The client checks ids, the chain and every signature itself
            // rather than trusting the node.
            let mut checker = client::HistoryChecker::new(&c.keys().await?)?;
            let mut stream = c.log.history(req).await?.into_inner();
            let mut events = Vec::new();
            while let Some(e) = stream.next().await {
                let e = e?;
                checker
                    .check(&e)
                    .with_context(|| format!("history of {subject} does not verify"))?;
                if verify {
                    events.push(e);
                } else {
                    print_event(j, &e)?;
                }
            }
            if verify {
                let last = events.last().map_or(0, |e| e.index);
                let cp = covering_checkpoint(&mut c, last, vkey.as_deref()).await?;
                for e in &events {
                    prove_included(&mut c, e, &cp)
                        .await
                        .with_context(|| format!("history of {subject}: event {}", e.index))?;
                    print_event(j, e)?;
                }
                note(
                    j,
                    format!(
                        "{} event(s) of {subject} proven in {}'s checkpoint of {} leaves",
                        events.len(),
                        cp.origin,
                        cp.size
                    ),
                )?;
            }
        }
        Command::Export {
            subject: args,
            format,
            binary,
            output,
        } => {
            let subject = subject_of(&args)?;
            let bytes = match format.as_str() {
                "openpgp" => {
                    let e = c.export_openpgp(&subject).await?;
                    if binary {
                        e.data
                    } else {
                        e.armored.into_bytes()
                    }
                }
                "json" => {
                    let req = pb::GetSubjectRequest {
                        subject: Some(codec::subject_to_pb(&subject)),
                        consistency: consistency(args.stale),
                    };
                    let s = c.log.get_subject(req).await?.into_inner();
                    let mut stream = c
                        .log
                        .history(pb::HistoryRequest {
                            subject: Some(codec::subject_to_pb(&subject)),
                            consistency: consistency(args.stale),
                        })
                        .await?
                        .into_inner();
                    let mut history = Vec::new();
                    while let Some(e) = stream.next().await {
                        history.push(describe(&e?));
                    }
                    let doc = json!({"subject": subject.to_string(), "summary": s.summary,
                        "next_sequence": s.next_sequence, "last_event_id": hex::encode(&s.last_event_id),
                        "history": history});
                    (serde_json::to_string_pretty(&doc)? + "\n").into_bytes()
                }
                other => bail!("unknown export format {other:?} (openpgp, json)"),
            };
            match output {
                Some(path) => std::fs::write(&path, &bytes)
                    .with_context(|| format!("write {}", path.display()))?,
                None => std::io::Write::write_all(&mut std::io::stdout(), &bytes)?,
            }
        }
        Command::Event { id, stale } => {
            let event_id = hex::decode(&id).context("event id is not hex")?;
            let e = c
                .log
                .get_event(pb::GetEventRequest {
                    event_id,
                    consistency: consistency(stale),
                })
                .await?
                .into_inner();
            emit(
                j,
                describe(&e),
                serde_json::to_string_pretty(&describe(&e))?,
            )?;
        }
        Command::Watch { from, count } => {
            let mut stream = c
                .log
                .watch(pb::WatchRequest { from_index: from })
                .await?
                .into_inner();
            let mut seen = 0;
            while let Some(e) = stream.next().await {
                print_event(j, &e?)?;
                seen += 1;
                if count.is_some_and(|n| seen >= n) {
                    break;
                }
            }
        }
        Command::Cluster(cmd) => cluster(&mut c, j, cmd).await?,
        Command::Log(cmd) => tlog(&mut c, j, cmd).await?,
        Command::Policy(cmd) => policy(&mut c, j, cmd).await?,
        Command::Federation(FederationCmd::Status) => federation_status(&mut c, j).await?,
        Command::Ca(cmd) => ca::run(&mut c, j, cmd).await?,
        Command::Rules(cmd) => rules(&mut c, j, cmd).await?,
        Command::Key(_) | Command::Device(DeviceCmd::Simulate(_)) => {
            unreachable!("answered without a node above")
        }
        Command::Bench(args) => bench(&cli.server, &tls, args).await?,
        Command::BenchVerify(args) => bench_verify(&cli.server, &tls, args).await?,
        Command::BenchCa(args) => bench_ca::run(&cli.server, &tls, j, args).await?,
        Command::BenchProof(args) => bench_proof(&cli.server, &tls, args).await?,
        Command::BenchCheckpoint(args) => bench_checkpoint(&cli.server, &tls, args).await?,
        Command::BenchHkp(args) => bench_hkp(args).await?,
    }
    Ok(())
}

fn print_members(j: bool, members: &[pb::NodeInfo]) -> std::io::Result<()> {
    for m in members {
        emit(
            j,
            json!({"id": m.id, "address": m.address, "voter": m.voter}),
            format!(
                "node {} at {} ({})",
                m.id,
                m.address,
                if m.voter { "voter" } else { "learner" }
            ),
        )?;
    }
    Ok(())
}

fn proof_hashes(hashes: &[Vec<u8>]) -> anyhow::Result<Vec<ics_tlog::Hash>> {
    hashes
        .iter()
        .map(|h| ics_tlog::Hash::try_from(h.as_slice()).context("a proof hash is not 32 bytes"))
        .collect()
}

fn hash_of(bytes: &[u8], what: &str) -> anyhow::Result<ics_tlog::Hash> {
    ics_tlog::Hash::try_from(bytes).with_context(|| format!("the {what} is not 32 bytes"))
}

/// A committed checkpoint from the node, its note verified under `vkey` (or
/// the node's own report of its key when none) and its root checked against
/// the node's tree at that size. Also returns whether the key was pinned.
async fn verified_checkpoint(
    c: &mut Client,
    size: u64,
    vkey: Option<&str>,
) -> anyhow::Result<(
    ics_tlog::note::Checkpoint,
    ics_proto::tlog_v1::CheckpointResponse,
    bool,
)> {
    use ics_proto::tlog_v1 as tpb;
    use ics_tlog::note::{Checkpoint, Note, NoteVerifier};
    let r = c
        .tlog
        .checkpoint(tpb::CheckpointRequest { size })
        .await?
        .into_inner();
    let verifier = NoteVerifier::from_vkey(vkey.unwrap_or(&r.vkey))
        .context("the log's verifier key is not a vkey")?;
    let note = Note::parse(&r.note).context("the checkpoint is not a signed note")?;
    let text = verifier
        .verify(&note)
        .context("the checkpoint's signature does not verify")?;
    let cp = Checkpoint::parse(text).context("the note is not a checkpoint")?;
    if cp.origin != verifier.name || cp.size != r.size || (size != 0 && cp.size != size) {
        anyhow::bail!(
            "the node sent a checkpoint of {} at size {}, not what was asked",
            cp.origin,
            cp.size
        );
    }
    let here = c
        .tlog
        .consistency_proof(tpb::ConsistencyProofRequest {
            old_size: cp.size,
            new_size: cp.size,
        })
        .await?
        .into_inner();
    if hash_of(&here.old_root, "root")? != cp.root {
        anyhow::bail!(
            "the node's tree at size {} does not have the root its signed checkpoint names",
            cp.size
        );
    }
    Ok((cp, r, vkey.is_some()))
}

/// The latest signed checkpoint once it covers log index `index` (a
/// checkpoint never covers its own leaf, so a fresh event waits for the
/// next one), verified.
async fn covering_checkpoint(
    c: &mut Client,
    index: u64,
    vkey: Option<&str>,
) -> anyhow::Result<ics_tlog::note::Checkpoint> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let cp = verified_checkpoint(c, 0, vkey).await?.0;
        if cp.size >= index {
            return Ok(cp);
        }
        if Instant::now() > deadline {
            bail!(
                "the latest checkpoint covers {} leaves, not yet event {index}; retry later",
                cp.size
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The leaf of a stored event, recomputed from what was received: its salt,
/// then SHA-256 of its import tag (if any) and its envelope's bytes.
fn leaf_of(e: &pb::StoredEvent) -> anyhow::Result<[u8; ics_tlog::LEAF_ENTRY_BYTES]> {
    Ok(leaf_and_envelope(e)?.0)
}

/// The leaf entry of a stored event and its envelope's bytes.
fn leaf_and_envelope(
    e: &pb::StoredEvent,
) -> anyhow::Result<([u8; ics_tlog::LEAF_ENTRY_BYTES], Vec<u8>)> {
    let salt: &[u8; ics_tlog::SALT_BYTES] = e
        .salt
        .as_slice()
        .try_into()
        .with_context(|| format!("event {} came without its 16-byte salt", e.index))?;
    let envelope =
        codec::envelope_from_pb(e.event.clone().context("an event without its envelope")?)
            .map_err(|r| anyhow::anyhow!("event {}: {r}", e.index))?;
    let bytes = codec::envelope_to_bytes(&envelope);
    // An imported event's leaf covers its import tag before the envelope.
    let stored = [e.import_tag.as_slice(), &bytes].concat();
    Ok((ics_tlog::leaf_entry(salt, &stored), bytes))
}

/// Checks that `e` is leaf `index - 1` of the checkpoint's tree: the node's
/// inclusion proof, for the leaf recomputed here, reaches the signed root.
async fn prove_included(
    c: &mut Client,
    e: &pb::StoredEvent,
    cp: &ics_tlog::note::Checkpoint,
) -> anyhow::Result<()> {
    use ics_proto::tlog_v1 as tpb;
    use ics_tlog::merkle::{leaf_hash, verify_inclusion};
    let entry = leaf_of(e)?;
    let p = c
        .tlog
        .inclusion_proof(tpb::InclusionProofRequest {
            event_id: e.event_id.clone(),
            tree_size: cp.size,
        })
        .await?
        .into_inner();
    if p.leaf_entry != entry || p.leaf_index + 1 != e.index || p.tree_size != cp.size {
        bail!(
            "the node proved another leaf (index {}, tree {}) than the event it sent",
            p.leaf_index,
            p.tree_size
        );
    }
    verify_inclusion(
        p.leaf_index,
        cp.size,
        &leaf_hash(&entry),
        &proof_hashes(&p.hashes)?,
        &cp.root,
    )
    .context("its inclusion proof does not reach the checkpoint's root")
}

/// Streams events 1..=cp.size, checks each (id, signatures by the keys the
/// log names, leaf recomputed) and returns the root of their leaves, which
/// must be the checkpoint's.
async fn verify_copy(
    c: &mut Client,
    cp: &ics_tlog::note::Checkpoint,
    out: Option<&std::path::Path>,
) -> anyhow::Result<ics_tlog::Hash> {
    use ics_tlog::merkle::leaf_hash;
    use std::io::Write;
    let keys = client::KeyRing::new(&c.keys().await?)?;
    let mut file = match out {
        Some(p) => Some(std::io::BufWriter::new(
            std::fs::File::create(p).with_context(|| format!("create {}", p.display()))?,
        )),
        None => None,
    };
    let mut tree = ics_tlog::Frontier::default();
    if cp.size > 0 {
        let mut stream = c
            .log
            .watch(pb::WatchRequest { from_index: 1 })
            .await?
            .into_inner();
        while tree.size() < cp.size {
            let e = stream
                .next()
                .await
                .context("the log ended before the checkpoint's size")??;
            if e.index != tree.size() + 1 {
                bail!(
                    "the log sent event {} where {} was due",
                    e.index,
                    tree.size() + 1
                );
            }
            keys.check(&e)
                .with_context(|| format!("event {} does not verify", e.index))?;
            let (entry, envelope) = leaf_and_envelope(&e)?;
            let _finished = tree.append(leaf_hash(&entry));
            if let Some(f) = file.as_mut() {
                writeln!(
                    f,
                    "{}",
                    json!({"index": e.index, "event_id": hex::encode(&e.event_id),
                        "salt": hex::encode(&e.salt), "envelope": hex::encode(&envelope)})
                )?;
            }
        }
    }
    if let Some(mut f) = file {
        f.flush()?;
    }
    let recomputed = tree.root();
    if recomputed != cp.root {
        bail!(
            "the {} events downloaded give root {}, not the {} the checkpoint signs",
            cp.size,
            hex::encode(recomputed),
            hex::encode(cp.root)
        );
    }
    Ok(recomputed)
}

/// The largest answer read from a witness.
const MAX_WITNESS_ANSWER: usize = 16 * 1024;

/// Asks the witness at `address` to cosign this log's latest checkpoint:
/// first from the size it is told the witness knows (0), and on 409 again
/// from the size the witness answers with. Records the cosignature.
/// Returns the size, the witnessing party and the record's log index.
async fn witness_latest(
    c: &mut Client,
    address: &str,
    tls_dir: &std::path::Path,
) -> anyhow::Result<(u64, String, u64)> {
    use ics_proto::tlog_v1 as tpb;
    use ics_tlog::note::{Note, NoteSignature};
    use ics_tlog::witness::AddCheckpoint;
    let tls = client::ClientTls::from_dir(tls_dir)?;
    let (cp, r, _) = verified_checkpoint(c, 0, None).await?;
    // The log's own signature only: a witness checks the log's.
    let mut note = Note::parse(&r.note).context("the checkpoint is not a signed note")?;
    note.signatures.truncate(1);
    let mut old = 0;
    for _ in 0..2 {
        let proof = match old {
            0 => Vec::new(),
            old => proof_hashes(
                &c.tlog
                    .consistency_proof(tpb::ConsistencyProofRequest {
                        old_size: old,
                        new_size: cp.size,
                    })
                    .await?
                    .into_inner()
                    .hashes,
            )?,
        };
        let body = AddCheckpoint {
            old,
            proof,
            checkpoint: note.clone(),
        }
        .to_bytes();
        let answer = tls
            .https_post(address, "/add-checkpoint", &body, MAX_WITNESS_ANSWER)
            .await?;
        let text = String::from_utf8_lossy(&answer.body).trim_end().to_string();
        match answer.status {
            200 => {
                let line = text
                    .lines()
                    .next()
                    .context("the witness answered no cosignature")?;
                let signature = NoteSignature::parse_line(line).context("the witness's answer")?;
                let party = ics_tlog::party_of_witness(&signature.name)
                    .with_context(|| format!("{:?} is not a party's witness name", signature.name))?
                    .to_string();
                let out = c
                    .tlog
                    .add_cosignature(tpb::AddCosignatureRequest {
                        size: cp.size,
                        witness: party.clone(),
                        signature_line: line.to_string(),
                    })
                    .await?
                    .into_inner();
                return Ok((cp.size, party, out.log_index));
            }
            409 if answer.content_type.starts_with("text/x.tlog.size") && old == 0 => {
                old = text.parse().with_context(|| {
                    format!("the witness's 409 does not carry a size: {text:?}")
                })?;
                if old > cp.size {
                    anyhow::bail!(
                        "the witness has cosigned size {old} of this log, beyond its latest checkpoint {}",
                        cp.size
                    );
                }
            }
            status => anyhow::bail!("the witness refused (HTTP {status}): {text}"),
        }
    }
    anyhow::bail!("the witness moved on while it was asked; try again")
}

/// Reads and verifies the checkpoints in `files`, then checks them pairwise
/// (see `LogCmd::Compare`). Returns how many and their distinct sizes.
async fn compare_checkpoints(
    c: &mut Client,
    vkey: &str,
    files: &[PathBuf],
) -> anyhow::Result<(usize, Vec<u64>)> {
    use ics_proto::tlog_v1 as tpb;
    use ics_tlog::merkle::verify_consistency;
    use ics_tlog::note::{Checkpoint, Note, NoteVerifier};
    let verifier = NoteVerifier::from_vkey(vkey).context("--vkey is not a note verifier key")?;
    let mut seen: std::collections::BTreeMap<u64, (ics_tlog::Hash, &PathBuf)> = Default::default();
    for file in files {
        let bytes = std::fs::read(file).with_context(|| format!("read {}", file.display()))?;
        let note = Note::parse(&bytes).with_context(|| format!("{}", file.display()))?;
        let text = verifier
            .verify(&note)
            .with_context(|| format!("{}: not signed by the log's key", file.display()))?;
        let cp = Checkpoint::parse(text).with_context(|| format!("{}", file.display()))?;
        if cp.origin != verifier.name {
            bail!(
                "{}: a checkpoint of {:?}, not {:?}",
                file.display(),
                cp.origin,
                verifier.name
            );
        }
        match seen.get(&cp.size) {
            Some((root, other)) if *root != cp.root => bail!(
                "SPLIT VIEW: {} and {} are checkpoints of {} at size {} with different roots, both signed by its key",
                other.display(),
                file.display(),
                cp.origin,
                cp.size
            ),
            Some(_) => {}
            None => {
                seen.insert(cp.size, (cp.root, file));
            }
        }
    }
    let sizes: Vec<u64> = seen.keys().copied().collect();
    for (i, old) in sizes.iter().enumerate() {
        for new in &sizes[i + 1..] {
            let ((old_root, a), (new_root, b)) = (seen[old], seen[new]);
            let proof = c
                .tlog
                .consistency_proof(tpb::ConsistencyProofRequest {
                    old_size: *old,
                    new_size: *new,
                })
                .await;
            let hashes = match proof {
                Ok(p) => proof_hashes(&p.into_inner().hashes)?,
                Err(status) => bail!(
                    "could not compare {} (size {old}) with {} (size {new}): the log gave no consistency proof: {}",
                    a.display(),
                    b.display(),
                    status.message()
                ),
            };
            if verify_consistency(*old, *new, &old_root, &new_root, &hashes).is_err() {
                bail!(
                    "SPLIT VIEW: the log's consistency proof does not join {} (size {old}) to {} (size {new})",
                    a.display(),
                    b.display()
                );
            }
        }
    }
    Ok((files.len(), sizes))
}

async fn federation_status(c: &mut Client, j: bool) -> anyhow::Result<()> {
    use ics_proto::federation_v1 as fpb;
    let r = c
        .federation
        .status(fpb::StatusRequest {})
        .await?
        .into_inner();
    let now = client::now_ms();
    let ago = |ms: i64| {
        if ms == 0 {
            "never".to_string()
        } else {
            format!("{:.1}s ago", now.saturating_sub(ms) as f64 / 1000.0)
        }
    };
    let peers: Vec<serde_json::Value> = r
        .peers
        .iter()
        .map(|p| {
            json!({"party": p.party, "endpoints": p.endpoints, "pulled": p.pulled,
                "log_key_bound": p.log_key_bound, "cursor_size": p.cursor_size,
                "synced_ms": p.synced_ms, "cursor_position": p.cursor_position,
                "max_staleness_seconds": p.max_staleness_seconds, "stale": p.stale,
                "events_per_minute": p.events_per_minute, "endpoint": p.endpoint,
                "source_size": p.source_size, "lag": p.lag,
                "last_attempt_ms": p.last_attempt_ms, "last_success_ms": p.last_success_ms,
                "last_error": p.last_error, "consecutive_failures": p.consecutive_failures,
                "imported": p.imported, "duplicates": p.duplicates, "refused": p.refused,
                "deferred_by_quota": p.deferred_by_quota,
                "cursor_policies": [p.cursor_source_policy, p.cursor_own_policy]})
        })
        .collect();
    let mut text = if r.policy_version == 0 {
        "no policy in force: nothing is exchanged".to_string()
    } else {
        format!(
            "policy version {}; node {} ({}; leader {})",
            r.policy_version,
            r.node_id,
            if r.leader {
                "runs the pulls"
            } else {
                "follower: pull figures are the leader's"
            },
            r.leader_id
        )
    };
    for p in &r.peers {
        text.push_str(&format!(
            "\n{}: {}cursor {} (synced {}){}",
            p.party,
            if p.pulled { "" } else { "not pulled; " },
            p.cursor_size,
            ago(p.synced_ms),
            if p.stale { ", STALE" } else { "" }
        ));
        if r.leader && p.pulled {
            text.push_str(&format!(
                "\n  via {} lag {} (source at {}), imported {} duplicates {} refused {}, last pull {}",
                p.endpoint,
                p.lag,
                p.source_size,
                p.imported,
                p.duplicates,
                p.refused,
                ago(p.last_attempt_ms)
            ));
            if !p.last_error.is_empty() {
                text.push_str(&format!(
                    "\n  last error ({} in a row): {}",
                    p.consecutive_failures, p.last_error
                ));
            }
        }
    }
    emit(
        j,
        json!({"node_id": r.node_id, "leader": r.leader, "leader_id": r.leader_id,
            "policy_version": r.policy_version, "peers": peers}),
        text,
    )?;
    Ok(())
}

async fn policy(c: &mut Client, j: bool, cmd: PolicyCmd) -> anyhow::Result<()> {
    use ics_proto::policy_v1 as ppb;
    match cmd {
        PolicyCmd::Publish { signer, file } => {
            let root = keyfile::read(&signer)?;
            let document = std::fs::read_to_string(&file)
                .with_context(|| format!("reading {}", file.display()))?;
            // Checked here for a quick answer naming the fault; the log's
            // rules check it again, with what only the log knows.
            let descriptor = ics_policies::Descriptor::parse(&document)
                .with_context(|| format!("{}", file.display()))?;
            let subject = ics_policies::policy_subject(descriptor.version);
            let payload = ics_policies::PolicyPayload::Published { document };
            let out = c
                .append(vec![client::signed(
                    &root,
                    subject.clone(),
                    ChainHead::default(),
                    payload,
                )])
                .await?;
            print_appended(j, "published", &subject, &out)?;
        }
        PolicyCmd::Show { version } => {
            let r = c
                .policy
                .show(ppb::ShowRequest {
                    version: version.unwrap_or(0),
                })
                .await?
                .into_inner();
            let in_force = if r.version == r.active_version {
                "in force"
            } else {
                "not in force"
            };
            emit(
                j,
                json!({"version": r.version, "log_index": r.log_index,
                    "active_version": r.active_version, "document": r.document}),
                format!(
                    "# policy version {} published at index {} ({in_force}; version {} is)\n{}",
                    r.version,
                    r.log_index,
                    r.active_version,
                    r.document.trim_end()
                ),
            )?;
        }
        PolicyCmd::Explain {
            peer,
            subject,
            kind,
            import,
            namespace,
            at,
        } => {
            let at_ms = match at {
                Some(t) => ics_policies::descriptor::parse_utc(&t)
                    .map_err(|e| anyhow::anyhow!("--at: {e}"))?,
                None => 0,
            };
            let direction = if import {
                ppb::Direction::Import
            } else {
                ppb::Direction::Read
            };
            let r = c
                .policy
                .explain(ppb::ExplainRequest {
                    peer,
                    subject,
                    kind,
                    direction: direction as i32,
                    namespace: namespace.unwrap_or_default(),
                    at_ms,
                })
                .await?
                .into_inner();
            let verdict = if r.allowed {
                format!("allowed by {}", r.rule)
            } else {
                let mut text = "refused (deny by default)".to_string();
                for reason in &r.reasons {
                    text.push_str("\n  ");
                    text.push_str(reason);
                }
                text
            };
            emit(
                j,
                json!({"allowed": r.allowed, "rule": r.rule, "reasons": r.reasons,
                    "policy_version": r.policy_version, "policy_log_index": r.policy_log_index}),
                format!(
                    "{verdict}\n  (policy version {}, published at index {})",
                    r.policy_version, r.policy_log_index
                ),
            )?;
            if !r.allowed {
                std::process::exit(2);
            }
        }
    }
    Ok(())
}

async fn tlog(c: &mut Client, j: bool, cmd: LogCmd) -> anyhow::Result<()> {
    use ics_proto::tlog_v1 as tpb;
    use ics_tlog::merkle::{leaf_hash, verify_consistency, verify_inclusion};
    match cmd {
        LogCmd::Proof {
            event,
            tree_size,
            checkpoint,
            vkey,
        } => {
            let event_id = hex::decode(&event).context("event id is not hex")?;
            let signed = match checkpoint {
                true => Some(verified_checkpoint(c, 0, vkey.as_deref()).await?.0),
                false => None,
            };
            let p = c
                .tlog
                .inclusion_proof(tpb::InclusionProofRequest {
                    event_id,
                    tree_size: signed.as_ref().map_or(tree_size, |s| s.size),
                })
                .await?
                .into_inner();
            let hashes = proof_hashes(&p.hashes)?;
            let root = match &signed {
                Some(s) if s.size == p.tree_size => s.root,
                Some(s) => anyhow::bail!(
                    "asked for a proof at the checkpoint's size {}, the node gave one at {}",
                    s.size,
                    p.tree_size
                ),
                None => hash_of(&p.root, "root")?,
            };
            verify_inclusion(
                p.leaf_index,
                p.tree_size,
                &leaf_hash(&p.leaf_entry),
                &hashes,
                &root,
            )
            .context("the node's inclusion proof does not verify")?;
            emit(
                j,
                json!({"event_id": event, "leaf_index": p.leaf_index, "tree_size": p.tree_size,
                    "root": hex::encode(root), "leaf_entry": hex::encode(&p.leaf_entry),
                    "hashes": hashes.iter().map(hex::encode).collect::<Vec<_>>(), "verified": true}),
                format!(
                    "event {event} is leaf {} of the tree of {} leaves, root {}: {} proof hashes, verified",
                    p.leaf_index,
                    p.tree_size,
                    hex::encode(root),
                    hashes.len()
                ),
            )?;
        }
        LogCmd::Checkpoint { size, vkey } => {
            let (cp, r, pinned) = verified_checkpoint(c, size, vkey.as_deref()).await?;
            emit(
                j,
                json!({"origin": cp.origin, "size": cp.size, "root": hex::encode(cp.root),
                    "log_index": r.log_index, "vkey": r.vkey, "vkey_pinned": pinned,
                    "note": String::from_utf8_lossy(&r.note), "witnesses": r.witnesses,
                    "verified": true}),
                format!(
                    "{}: checkpoint of {} leaves, root {}, committed at log index {}; signature verified under {} ({})",
                    cp.origin,
                    cp.size,
                    hex::encode(cp.root),
                    r.log_index,
                    r.vkey,
                    if pinned {
                        "pinned"
                    } else {
                        "as the node reports it: pin it with --vkey"
                    }
                ),
            )?;
        }
        LogCmd::Peer {
            signer,
            party,
            vkey,
        } => {
            let root = keyfile::read(&signer)?;
            let verifier = ics_tlog::note::NoteVerifier::from_vkey(&vkey)
                .context("--vkey is not a note verifier key")?;
            let origin = ics_tlog::log_origin(&party);
            if verifier.name != origin {
                anyhow::bail!(
                    "--vkey names {:?}; party {party:?}'s log is {origin:?}",
                    verifier.name
                );
            }
            let subject = ics_tlog::peer_subject(&party);
            // A first binding opens the subject; a later one (a new key)
            // follows it.
            let head = match c.chain_head(&subject).await {
                Err(s) if s.code() == tonic::Code::NotFound => ChainHead::default(),
                head => head?,
            };
            let out = c
                .append(vec![client::signed(
                    &root,
                    subject.clone(),
                    head,
                    ics_tlog::TlogPayload::PeerBound {
                        public_key: verifier.key.as_bytes().to_vec(),
                    },
                )])
                .await?;
            print_appended(j, "bound", &subject, &out)?;
        }
        LogCmd::Witness {
            witness,
            witness_tls,
        } => {
            let (size, party, log_index) = witness_latest(c, &witness, &witness_tls).await?;
            emit(
                j,
                json!({"size": size, "witness": party, "log_index": log_index}),
                format!(
                    "{party} cosigned this log's checkpoint of {size} leaves; recorded at log index {log_index}"
                ),
            )?;
        }
        LogCmd::Verify { size, vkey, out } => {
            let (cp, _, pinned) = verified_checkpoint(c, size, vkey.as_deref()).await?;
            let root = verify_copy(c, &cp, out.as_deref()).await?;
            emit(
                j,
                json!({"origin": cp.origin, "size": cp.size, "root": hex::encode(root),
                    "vkey_pinned": pinned, "verified": true}),
                format!(
                    "{}: the {} events downloaded recompute the root {} its checkpoint signs; every event's id and signature checked",
                    cp.origin,
                    cp.size,
                    hex::encode(root)
                ),
            )?;
        }
        LogCmd::Compare { vkey, notes } => {
            let (count, sizes) = compare_checkpoints(c, &vkey, &notes).await?;
            emit(
                j,
                json!({"consistent": true, "checkpoints": count, "sizes": sizes}),
                format!(
                    "{count} checkpoints of sizes {sizes:?}: one history, every pair proven consistent"
                ),
            )?;
        }
        LogCmd::Consistency { old, new } => {
            let p = c
                .tlog
                .consistency_proof(tpb::ConsistencyProofRequest {
                    old_size: old,
                    new_size: new,
                })
                .await?
                .into_inner();
            let hashes = proof_hashes(&p.hashes)?;
            let (old_root, new_root) = (
                hash_of(&p.old_root, "old root")?,
                hash_of(&p.new_root, "new root")?,
            );
            verify_consistency(p.old_size, p.new_size, &old_root, &new_root, &hashes)
                .context("the node's consistency proof does not verify")?;
            emit(
                j,
                json!({"old_size": p.old_size, "new_size": p.new_size, "old_root": hex::encode(old_root),
                    "new_root": hex::encode(new_root),
                    "hashes": hashes.iter().map(hex::encode).collect::<Vec<_>>(), "verified": true}),
                format!(
                    "the tree of {} leaves (root {}) is a prefix of the tree of {} (root {}): {} proof hashes, verified",
                    p.old_size,
                    hex::encode(old_root),
                    p.new_size,
                    hex::encode(new_root),
                    hashes.len()
                ),
            )?;
        }
    }
    Ok(())
}

async fn cluster(c: &mut Client, j: bool, cmd: ClusterCmd) -> anyhow::Result<()> {
    match cmd {
        ClusterCmd::Init { members } => {
            let members = members
                .iter()
                .map(|m| {
                    let p: ics_client::member::Peer = m.parse().map_err(anyhow::Error::msg)?;
                    Ok(pb::NodeInfo {
                        id: p.id,
                        address: p.address,
                        voter: true,
                    })
                })
                .collect::<anyhow::Result<Vec<_>>>()?;
            c.cluster
                .initialize(pb::InitializeRequest { members })
                .await?;
            emit(j, json!({"initialized": true}), "cluster initialized")?;
        }
        ClusterCmd::Status => {
            let s = c.status().await?;
            let members: Vec<String> = s
                .members
                .iter()
                .map(|m| {
                    let what = if m.voter { "voter" } else { "learner" };
                    format!("node {} at {} ({what})", m.id, m.address)
                })
                .collect();
            let members = if members.is_empty() {
                "(the term, Raft log and members are shown to operators: --cert/--key)".to_string()
            } else {
                members.join("\n")
            };
            emit(
                j,
                json!({"node_id": s.node_id, "role": s.role, "party": s.party, "state": s.state,
                    "leader": s.current_leader, "leader_address": s.leader_address, "term": s.term,
                    "raft_log_index": s.raft_log_index, "raft_applied_index": s.raft_applied_index,
                    "raft_snapshot_index": s.raft_snapshot_index, "raft_purged_index": s.raft_purged_index,
                    "event_count": s.event_count, "log_hash": hex::encode(&s.log_hash),
                    "tree_root": hex::encode(&s.tree_root),
                    "state_hash": hex::encode(&s.state_hash),
                    "members": s.members.iter().map(|m| json!({"id": m.id, "address": m.address, "voter": m.voter})).collect::<Vec<_>>()}),
                format!(
                    "node {} ({}, party {:?}) is {} in term {}; leader {} at {}\n\
                     raft log index {} applied {} snapshot {}; {} events; log hash {}; tree root {}\n\
                     rules: {} (this build runs {})\n{}",
                    s.node_id,
                    s.role,
                    s.party,
                    s.state,
                    s.term,
                    s.current_leader,
                    s.leader_address,
                    s.raft_log_index,
                    s.raft_applied_index,
                    s.raft_snapshot_index,
                    s.event_count,
                    &hex::encode(&s.log_hash)[..16],
                    hex::encode(&s.tree_root).get(..16).unwrap_or_default(),
                    s.active_rules,
                    s.build_rules,
                    members
                ),
            )?;
        }
        ClusterCmd::Ready => {
            let s = c.status().await?;
            if !s.ready {
                bail!("not ready: node {}: {}", s.node_id, s.not_ready);
            }
            emit(
                j,
                json!({"ready": true, "node_id": s.node_id, "leader": s.current_leader}),
                format!(
                    "ready: node {} ({}), leader {}",
                    s.node_id, s.state, s.current_leader
                ),
            )?;
        }
        ClusterCmd::Add {
            id,
            address,
            learner,
        } => {
            let r = c
                .cluster
                .add_node(pb::AddNodeRequest {
                    id,
                    address,
                    learner_only: learner,
                })
                .await?
                .into_inner();
            print_members(j, &r.members)?;
        }
        ClusterCmd::Remove { id, force } => {
            let r = c
                .cluster
                .remove_node(pb::RemoveNodeRequest { id, force })
                .await?
                .into_inner();
            print_members(j, &r.members)?;
        }
    }
    Ok(())
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

/// Registers fresh devices from concurrent clients and reports latency and throughput.
async fn bench(server: &str, tls: &client::ClientTls, args: BenchArgs) -> anyhow::Result<()> {
    if args.clients == 0 || args.requests == 0 || args.batch == 0 {
        bail!("--clients, --requests and --batch must be positive");
    }
    let author = std::sync::Arc::new(keyfile::read(&args.signer)?);
    let run_id = client::now_ms();
    // Sign everything first so the measurement is the server's work.
    let mut work = Vec::new();
    for c in 0..args.clients {
        let mut reqs = Vec::with_capacity(args.requests);
        for r in 0..args.requests {
            let batch = (0..args.batch)
                .map(|b| {
                    let device = SigningKey::generate(Algorithm::Ed25519).public_key();
                    client::register_device(
                        &author,
                        &format!("bench-{run_id}-{c}-{r}-{b}"),
                        &device,
                        vec![],
                    )
                })
                .collect::<Vec<_>>();
            reqs.push(batch);
        }
        work.push(reqs);
    }
    let started = Instant::now();
    let mut tasks = Vec::new();
    for reqs in work {
        let mut c = Client::connect(server, tls)?;
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::with_capacity(reqs.len());
            for batch in reqs {
                let t = Instant::now();
                c.append(batch).await?;
                lat.push(t.elapsed());
            }
            Ok::<_, tonic::Status>(lat)
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await??);
    }
    let elapsed = started.elapsed();
    all.sort();
    let events = args.clients * args.requests * args.batch;
    let p50 = percentile(&all, 0.50);
    let p99 = percentile(&all, 0.99);
    let rate = events as f64 / elapsed.as_secs_f64();
    emit_json(
        json!({"clients": args.clients, "requests": all.len(), "batch": args.batch, "events": events,
            "seconds": elapsed.as_secs_f64(), "events_per_second": rate,
            "latency_ms_p50": p50.as_secs_f64() * 1e3, "latency_ms_p99": p99.as_secs_f64() * 1e3,
            "latency_ms_max": all.last().copied().unwrap_or_default().as_secs_f64() * 1e3}),
    )?;
    Ok(())
}

/// Verify requests from concurrent clients; p50/p99 and requests per second.
async fn bench_verify(
    server: &str,
    tls: &client::ClientTls,
    args: BenchVerifyArgs,
) -> anyhow::Result<()> {
    if args.clients == 0 || args.requests == 0 {
        bail!("--clients and --requests must be positive");
    }
    let fpr = hex_arg("key-id", &args.key_id)?;
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..args.clients {
        let mut c = Client::connect(server, tls)?;
        let (fpr, n, consistency) = (fpr.clone(), args.requests, consistency(args.stale));
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::with_capacity(n);
            for _ in 0..n {
                let t = Instant::now();
                c.log
                    .verify(pb::VerifyRequest {
                        what: Some(pb::verify_request::What::KeyId(fpr.clone())),
                        consistency,
                    })
                    .await?;
                lat.push(t.elapsed());
            }
            Ok::<_, tonic::Status>(lat)
        }));
    }
    let summary = latency_summary(tasks, started, "requests_per_second").await?;
    emit_json(merged(
        json!({"clients": args.clients, "stale": args.stale}),
        summary,
    ))?;
    Ok(())
}

async fn bench_proof(
    server: &str,
    tls: &client::ClientTls,
    args: BenchProofArgs,
) -> anyhow::Result<()> {
    use futures::StreamExt;
    use ics_proto::tlog_v1 as tpb;
    use ics_tlog::merkle::{leaf_hash, verify_inclusion};
    if args.clients == 0 || args.requests == 0 || args.events == 0 {
        bail!("--clients, --requests and --events must be positive");
    }
    let mut c = Client::connect(server, tls)?;
    let (checkpoint, _, _) = verified_checkpoint(&mut c, 0, None).await?;
    let wanted = args.events.min(checkpoint.size);
    let mut stream = c
        .log
        .watch(pb::WatchRequest { from_index: 1 })
        .await?
        .into_inner();
    let mut ids = Vec::new();
    while (ids.len() as u64) < wanted {
        let e = stream.next().await.context("the log ended early")??;
        ids.push(e.event_id);
    }
    drop(stream);
    let ids = std::sync::Arc::new(ids);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for k in 0..args.clients {
        let mut c = Client::connect(server, tls)?;
        let (ids, n, size, root) = (ids.clone(), args.requests, checkpoint.size, checkpoint.root);
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::with_capacity(n);
            for r in 0..n {
                let event_id = ids[(k * n + r) % ids.len()].clone();
                let t = Instant::now();
                let p = c
                    .tlog
                    .inclusion_proof(tpb::InclusionProofRequest {
                        event_id,
                        tree_size: size,
                    })
                    .await?
                    .into_inner();
                let hashes = proof_hashes(&p.hashes)?;
                verify_inclusion(
                    p.leaf_index,
                    size,
                    &leaf_hash(&p.leaf_entry),
                    &hashes,
                    &root,
                )
                .context("an inclusion proof does not verify")?;
                lat.push(t.elapsed());
            }
            Ok::<_, anyhow::Error>(lat)
        }));
    }
    let summary = latency_summary(tasks, started, "proofs_per_second").await?;
    emit_json(merged(
        json!({"clients": args.clients, "tree_size": checkpoint.size, "events_proved": ids.len()}),
        summary,
    ))?;
    Ok(())
}

async fn bench_checkpoint(
    server: &str,
    tls: &client::ClientTls,
    args: BenchCheckpointArgs,
) -> anyhow::Result<()> {
    use ics_proto::tlog_v1 as tpb;
    if args.events == 0 || args.poll_ms == 0 {
        bail!("--events and --poll-ms must be positive");
    }
    let author = keyfile::read(&args.signer)?;
    let run_id = client::now_ms();
    let mut c = Client::connect(server, tls)?;
    let mut lat = Vec::with_capacity(args.events);
    let started = Instant::now();
    for i in 0..args.events {
        let device = SigningKey::generate(Algorithm::Ed25519).public_key();
        let event =
            client::register_device(&author, &format!("cpbench-{run_id}-{i}"), &device, vec![]);
        let t = Instant::now();
        let index = c.append(vec![event]).await?[0].index;
        loop {
            let covered = match c.tlog.checkpoint(tpb::CheckpointRequest { size: 0 }).await {
                Ok(r) => r.into_inner().size >= index,
                Err(e) if e.code() == tonic::Code::NotFound => false,
                Err(e) => return Err(e.into()),
            };
            if covered {
                break;
            }
            if t.elapsed() > Duration::from_secs(60) {
                bail!("event {index} in no checkpoint after 60 s");
            }
            tokio::time::sleep(Duration::from_millis(args.poll_ms)).await;
        }
        lat.push(t.elapsed());
    }
    let elapsed = started.elapsed();
    lat.sort();
    emit_json(json!({"events": lat.len(), "poll_ms": args.poll_ms,
        "append_to_checkpoint_ms_p50": percentile(&lat, 0.50).as_secs_f64() * 1e3,
        "append_to_checkpoint_ms_p99": percentile(&lat, 0.99).as_secs_f64() * 1e3,
        "append_to_checkpoint_ms_max": lat.last().copied().unwrap_or_default().as_secs_f64() * 1e3,
        "seconds": elapsed.as_secs_f64()}))?;
    Ok(())
}

/// Joins benchmark clients and summarizes their latencies: count, rate, p50, p99.
async fn latency_summary<E: Into<anyhow::Error>>(
    tasks: Vec<tokio::task::JoinHandle<Result<Vec<Duration>, E>>>,
    started: Instant,
    rate_name: &str,
) -> anyhow::Result<serde_json::Value> {
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await?.map_err(Into::into)?);
    }
    let elapsed = started.elapsed();
    all.sort();
    let mut v = json!({"requests": all.len(),
        "latency_ms_p50": percentile(&all, 0.50).as_secs_f64() * 1e3,
        "latency_ms_p99": percentile(&all, 0.99).as_secs_f64() * 1e3});
    v[rate_name] = json!(all.len() as f64 / elapsed.as_secs_f64());
    Ok(v)
}

fn merged(mut a: serde_json::Value, b: serde_json::Value) -> serde_json::Value {
    if let (Some(a), serde_json::Value::Object(b)) = (a.as_object_mut(), b) {
        a.extend(b);
    }
    a
}

/// One keep-alive HTTP/1.1 GET; returns the status code and body length.
async fn http_get(
    conn: &mut tokio::io::BufReader<tokio::net::TcpStream>,
    host: &str,
    path: &str,
) -> anyhow::Result<(u16, usize)> {
    use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt};
    let request = format!("GET {path} HTTP/1.1\r\nHost: {host}\r\n\r\n");
    conn.get_mut().write_all(request.as_bytes()).await?;
    let mut line = String::new();
    conn.read_line(&mut line).await?;
    let status: u16 = line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .with_context(|| format!("bad status line {line:?}"))?;
    let mut length = 0usize;
    loop {
        line.clear();
        if conn.read_line(&mut line).await? == 0 {
            bail!("connection closed in the headers");
        }
        let header = line.trim_end();
        if header.is_empty() {
            break;
        }
        if let Some((name, value)) = header.split_once(':')
            && name.eq_ignore_ascii_case("content-length")
        {
            length = value.trim().parse().context("content-length")?;
        }
    }
    let mut body = vec![0u8; length];
    conn.read_exact(&mut body).await?;
    Ok((status, length))
}

async fn bench_hkp(args: BenchHkpArgs) -> anyhow::Result<()> {
    if args.clients == 0 || args.requests == 0 {
        bail!("--clients and --requests must be positive");
    }
    let path = format!(
        "/pks/lookup?op={}&options=mr&search={}",
        args.op, args.search
    );
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..args.clients {
        let stream = tokio::net::TcpStream::connect(&args.http)
            .await
            .with_context(|| format!("connect to {}", args.http))?;
        stream.set_nodelay(true)?;
        let mut conn = tokio::io::BufReader::new(stream);
        let (host, path, n) = (args.http.clone(), path.clone(), args.requests);
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::with_capacity(n);
            for _ in 0..n {
                let t = Instant::now();
                let (status, _) = http_get(&mut conn, &host, &path).await?;
                if status != 200 {
                    bail!("lookup answered HTTP {status}");
                }
                lat.push(t.elapsed());
            }
            Ok(lat)
        }));
    }
    let summary = latency_summary(tasks, started, "lookups_per_second").await?;
    emit_json(merged(
        json!({"op": args.op, "clients": args.clients}),
        summary,
    ))?;
    Ok(())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("icsctl: error: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        // The reader of stdout went away (`icsctl … | head`): nothing to say.
        Err(e) if output::is_closed_pipe(&e) => ExitCode::SUCCESS,
        Err(e) => {
            match e.downcast_ref::<tonic::Status>() {
                Some(s) => eprintln!("icsctl: error: {}: {}", code_name(s.code()), s.message()),
                None => eprintln!("icsctl: error: {e:#}"),
            }
            ExitCode::FAILURE
        }
    }
}

/// `FailedPrecondition` → `failed_precondition`, as gRPC spells its codes.
fn code_name(code: tonic::Code) -> String {
    let mut out = String::new();
    for (i, ch) in format!("{code:?}").chars().enumerate() {
        if ch.is_uppercase() && i > 0 {
            out.push('_');
        }
        out.push(ch.to_ascii_lowercase());
    }
    out
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    /// Every command and every flag says what it is for in `--help`.
    #[test]
    fn every_command_and_flag_has_help() {
        fn walk(cmd: &clap::Command, path: &str, missing: &mut Vec<String>) {
            for arg in cmd.get_arguments() {
                let id = arg.get_id().as_str();
                if arg.is_hide_set() || id == "help" || id == "version" {
                    continue;
                }
                if arg.get_help().is_none() && arg.get_long_help().is_none() {
                    missing.push(format!("{path} --{id}"));
                }
            }
            for sub in cmd.get_subcommands() {
                let name = format!("{path} {}", sub.get_name());
                if sub.get_about().is_none() && sub.get_long_about().is_none() {
                    missing.push(format!("{name} (command)"));
                }
                walk(sub, &name, missing);
            }
        }
        let mut missing = Vec::new();
        walk(&super::Cli::command(), "icsctl", &mut missing);
        assert!(missing.is_empty(), "without help text: {missing:#?}");
    }
}
