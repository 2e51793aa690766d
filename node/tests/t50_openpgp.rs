//! OpenPGP device certificates over HKP, fetched by stock clients: GnuPG
//! (`gpg --recv-keys` through dirmngr) and Sequoia's `sq keyserver get`.

mod common;

use ics_identity::payload::DeviceStatus;
use ics_kernel::{Algorithm, SigningKey, SubjectRef};
use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use common::*;
use ics_identity::openpgp;
use ics_node::client::{self, Client};

fn run(what: &str, cmd: &mut Command) -> Output {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("{what}: cannot run ({e}); is it installed?"));
    assert!(
        out.status.success(),
        "{what} failed: {}\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn text(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A registered device: its subject, OpenPGP fingerprint, and escrowed revocations.
struct Registered {
    subject: SubjectRef,
    fingerprint: String,
    escrow: openpgp::RevocationEscrow,
}

/// A device registered with its OpenPGP certificate.
async fn register(
    c: &mut Client,
    author: &SigningKey,
    serial: &str,
    algorithm: Algorithm,
) -> Registered {
    let device = SigningKey::generate(algorithm);
    let attrs = vec![
        ("manu".to_string(), "ACME Sensors".to_string()),
        ("model".to_string(), "thermo-3".to_string()),
        ("lot".to_string(), "L-2026-11".to_string()),
        ("color".to_string(), "grey".to_string()),
    ];
    let (env, escrow) =
        client::register_device_with_openpgp(author, serial, &device, attrs).unwrap();
    c.append(vec![env]).await.expect("register device");
    let subject = SubjectRef::new(ics_identity::DEVICE, device.key_id().to_hex());
    let export = c.export_openpgp(&subject).await.expect("export");
    Registered {
        subject,
        fingerprint: export.fingerprint,
        escrow,
    }
}

/// Reports the device stolen, publishing its escrowed "compromised" revocation.
async fn report_stolen(c: &mut Client, author: &SigningKey, device: &Registered) {
    let head = c.chain_head(&device.subject).await.unwrap();
    c.append(vec![client::report_status(
        author,
        &device.subject.id,
        head,
        DeviceStatus::Stolen,
        "van broken into",
        Some(device.escrow.compromised.clone()),
    )])
    .await
    .expect("report stolen");
}

struct Gpg<'a> {
    home: &'a Path,
    keyserver: String,
}

impl Gpg<'_> {
    fn cmd(&self) -> Command {
        let mut c = Command::new("gpg");
        c.arg("--homedir").arg(self.home).args([
            "--batch",
            "--no-tty",
            "--keyserver",
            &self.keyserver,
        ]);
        c
    }

    fn recv(&self, fingerprint: &str) -> Output {
        run(
            "gpg --recv-keys",
            // Keyserver imports keep only self-signatures by default (since
            // the SKS flooding); the manufacturer's certification is what we
            // want to see, so keep third-party signatures.
            self.cmd().args([
                "--keyserver-options",
                "no-self-sigs-only,no-import-clean",
                "--recv-keys",
                fingerprint,
            ]),
        )
    }
}

impl Gpg<'_> {
    fn list(&self, fingerprint: &str) -> String {
        text(&run(
            "gpg --list-sigs",
            self.cmd()
                .args(["--with-colons", "--list-sigs", fingerprint]),
        ))
    }

    /// `gpg --list-packets` of the certificate as gpg stored it.
    fn packets(&self, fingerprint: &str) -> String {
        let exported = run("gpg --export", self.cmd().args(["--export", fingerprint])).stdout;
        let file = self.home.join("exported.pgp");
        std::fs::write(&file, exported).unwrap();
        text(&run(
            "gpg --list-packets",
            self.cmd().arg("--list-packets").arg(&file),
        ))
    }
}

impl Drop for Gpg<'_> {
    fn drop(&mut self) {
        // dirmngr and gpg-agent outlive gpg; stop them with the test.
        let _ = Command::new("gpgconf")
            .arg("--homedir")
            .arg(self.home)
            .args(["--kill", "all"])
            .output();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gpg_fetches_device_certificate_with_notations_and_sees_stolen_revocation() {
    let cluster = start_cluster(1, "role = \"manufacturer\"\n");
    cluster.wait_ready(Duration::from_secs(30)).await;
    let mut c = cluster.node(1).client();
    let author = cluster.device_author().await;
    let device = register(&mut c, &author, "SN-GPG-1", Algorithm::Ed25519).await;
    let fpr = device.fingerprint.clone();
    assert_eq!(fpr.len(), 40, "{fpr}");

    let home = tempfile::Builder::new()
        .prefix("g")
        .tempdir_in("/tmp")
        .unwrap();
    // Plain HKP on the loopback listener: dirmngr speaks hkps:// only to a
    // host name with a dot in it (never to an address or `localhost`), so
    // on loopback it is plain, as `http_plain_listen` allows.
    let gpg = Gpg {
        home: home.path(),
        keyserver: format!("hkp://{}", cluster.node(1).http),
    };
    gpg.recv(&fpr);

    // The key and its User ID (the serial), valid, ed25519.
    let colons = gpg.list(&fpr);
    assert!(
        colons
            .lines()
            .any(|l| l.starts_with("pub:") && l.split(':').nth(1) != Some("r")),
        "{colons}"
    );
    assert!(colons.contains(&format!("fpr:::::::::{fpr}:")), "{colons}");
    assert!(
        colons
            .lines()
            .any(|l| l.starts_with("uid:") && l.contains(":SN-GPG-1:")),
        "{colons}"
    );
    // The manufacturer's certification, issued by the author key's OpenPGP form.
    let issuer = openpgp::party_fingerprint(&author.public_key());
    assert!(
        colons
            .lines()
            .any(|l| l.starts_with("sig:") && l.contains(&format!(":13x::{issuer}:"))),
        "no certification by {issuer}: {colons}"
    );
    // Its notations, as gpg parses them from the packets.
    let packets = gpg.packets(&fpr);
    for notation in ["manu=ACME Sensors", "model=thermo-3", "lot=L-2026-11"] {
        assert!(
            packets.contains(&format!("(notation: {notation})")),
            "{notation}: {packets}"
        );
    }
    assert!(
        !packets.contains("color="),
        "only the draft's names become notations: {packets}"
    );

    // A stolen report publishes the revocation; a refresh brings it to gpg.
    report_stolen(&mut c, &author, &device).await;
    gpg.recv(&fpr);
    let colons = gpg.list(&fpr);
    assert!(
        colons.lines().any(|l| l.starts_with("pub:r:")),
        "not revoked after the stolen report: {colons}"
    );
    let packets = gpg.packets(&fpr);
    assert!(packets.contains("sigclass 0x20"), "{packets}");
    assert!(packets.contains("revocation reason 0x02"), "{packets}");
}

fn sq_get(home: &Path, keyserver: &str, query: &str) -> Vec<u8> {
    let out = home.join("fetched.pgp");
    let _ = std::fs::remove_file(&out);
    run(
        "sq keyserver get",
        Command::new("sq")
            .env("SEQUOIA_HOME", home)
            .args(["keyserver", "--policy", "insecure", "--server", keyserver])
            .args(["get", "--output"])
            .arg(&out)
            .arg(query),
    );
    std::fs::read(&out).unwrap()
}

fn sq_inspect(home: &Path, cert: &[u8]) -> String {
    let file = home.join("inspect.pgp");
    std::fs::write(&file, cert).unwrap();
    text(&run(
        "sq inspect",
        Command::new("sq")
            .env("SEQUOIA_HOME", home)
            .args(["inspect", "--certifications"])
            .arg(&file),
    ))
}

fn sq_dump(home: &Path, cert: &[u8]) -> String {
    let file = home.join("dump.pgp");
    std::fs::write(&file, cert).unwrap();
    text(&run(
        "sq packet dump",
        Command::new("sq")
            .env("SEQUOIA_HOME", home)
            .args(["packet", "dump"])
            .arg(&file),
    ))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sq_fetches_device_certificate_by_fingerprint_and_key_id_and_sees_revocation() {
    let cluster = start_cluster(1, "role = \"manufacturer\"\n");
    cluster.wait_ready(Duration::from_secs(30)).await;
    let mut c = cluster.node(1).client();
    let author = cluster.device_author().await;
    let device = register(&mut c, &author, "SN-SQ-1", Algorithm::EcdsaP256Sha256).await;
    let fpr = device.fingerprint.clone();
    let home = tempfile::tempdir().unwrap();
    let keyserver = format!("hkp://{}", cluster.node(1).http);

    let cert = sq_get(home.path(), &keyserver, &fpr);
    let inspected = sq_inspect(home.path(), &cert);
    assert!(
        inspected.contains(&format!("Fingerprint: {fpr}")),
        "{inspected}"
    );
    assert!(inspected.contains("Public-key algo: ECDSA"), "{inspected}");
    assert!(inspected.contains("UserID: SN-SQ-1"), "{inspected}");
    assert!(!inspected.contains("Revoked"), "{inspected}");
    let issuer = openpgp::party_fingerprint(&author.public_key());
    assert!(
        inspected.contains(&format!("Alleged certifier: {issuer}")),
        "{inspected}"
    );
    let dump = sq_dump(home.path(), &cert);
    for notation in [
        "Notation: manu (human readable): ACME Sensors",
        "Notation: model (human readable): thermo-3",
        "Notation: lot (human readable): L-2026-11",
    ] {
        assert!(dump.contains(notation), "{notation}: {dump}");
    }

    // The 64-bit key id finds the same certificate.
    let by_key_id = sq_get(home.path(), &keyserver, &fpr[24..]);
    assert_eq!(by_key_id, cert);

    report_stolen(&mut c, &author, &device).await;
    let cert = sq_get(home.path(), &keyserver, &fpr);
    let inspected = sq_inspect(home.path(), &cert);
    assert!(inspected.contains("Revoked:"), "{inspected}");
    assert!(
        inspected.contains("Key material has been compromised"),
        "{inspected}"
    );
    let dump = sq_dump(home.path(), &cert);
    assert!(dump.contains("Type: KeyRevocation"), "{dump}");
}

/// `curl` a URL; returns the HTTP status and the body.
fn curl(args: &[&str]) -> (u16, String) {
    let out = run(
        "curl",
        Command::new("curl")
            .args(["-sS", "-w", "\n%{http_code}"])
            .args(args),
    );
    let text = text(&out);
    let (body, code) = text.rsplit_once('\n').expect("status line");
    (code.trim().parse().expect("status code"), body.to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hkp_index_by_serial_refusals_and_uploads_denied() {
    let cluster = start_cluster(1, "role = \"manufacturer\"\n");
    cluster.wait_ready(Duration::from_secs(30)).await;
    let mut c = cluster.node(1).client();
    let author = cluster.device_author().await;
    let fpr = register(&mut c, &author, "SN-IDX-1", Algorithm::Ed25519)
        .await
        .fingerprint;
    // Over TLS, trusting the party CA (curl checks the name and chain).
    let ca = cluster.node(1).client_tls.join("ca.crt");
    let ca = ca.to_str().unwrap();
    let curl = |args: &[&str]| curl(&[&["--cacert", ca], args].concat());
    let base = format!("https://{}/pks/lookup", cluster.node(1).https);

    // Machine-readable index by exact User ID (the serial) and by fingerprint.
    for search in ["SN-IDX-1".to_string(), format!("0x{fpr}")] {
        let (code, body) = curl(&[&format!("{base}?op=index&options=mr&search={search}")]);
        assert_eq!(code, 200, "{body}");
        let lines: Vec<&str> = body.lines().collect();
        assert_eq!(lines[0], "info:1:1");
        assert!(
            lines[1].starts_with(&format!("pub:{fpr}:22:256:")),
            "{body}"
        );
        assert!(lines[2].starts_with("uid:SN-IDX-1:"), "{body}");
    }
    let (code, body) = curl(&[&format!("{base}?op=get&search=SN-IDX-1")]);
    assert_eq!(code, 200);
    assert!(
        body.starts_with("-----BEGIN PGP PUBLIC KEY BLOCK-----"),
        "{body}"
    );

    // Refusals name what is wrong.
    let (code, body) = curl(&[&format!("{base}?op=get&search=SN-NOPE")]);
    assert_eq!(code, 404);
    assert!(body.contains("no device certificate matches"), "{body}");
    let (code, body) = curl(&[&format!("{base}?op=get&search=0x{}", &fpr[32..])]);
    assert_eq!(code, 400);
    assert!(body.contains("32-bit key ids are ambiguous"), "{body}");
    let (code, body) = curl(&[&format!("{base}?op=stats")]);
    assert_eq!(code, 501);
    assert!(body.contains("not supported"), "{body}");
    let (code, _) = curl(&[&format!("{base}?op=get")]);
    assert_eq!(code, 400);

    // Uploads are refused and change nothing.
    let before = c.status().await.unwrap().event_count;
    let (_, armored) = curl(&[&format!("{base}?op=get&search=0x{fpr}")]);
    let (code, body) = curl(&[
        "--data-urlencode",
        &format!("keytext={armored}"),
        &format!("https://{}/pks/add", cluster.node(1).https),
    ]);
    assert_eq!(code, 403);
    assert!(body.contains("disabled by policy"), "{body}");
    assert_eq!(c.status().await.unwrap().event_count, before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn roles_without_device_identities_do_not_mount_hkp() {
    let cluster = start_cluster(1, "role = \"developer\"\n");
    cluster.wait_ready(Duration::from_secs(30)).await;
    // A mounted HKP answers 501 to an unknown op and 403 to an upload; here
    // neither route exists.
    let (code, _) = curl(&[&format!(
        "http://{}/pks/lookup?op=stats",
        cluster.node(1).http
    )]);
    assert_eq!(code, 404);
    let (code, _) = curl(&[
        "--data",
        "keytext=x",
        &format!("http://{}/pks/add", cluster.node(1).http),
    ]);
    assert_eq!(code, 404);
    let (code, _) = curl(&[&format!("http://{}/healthz", cluster.node(1).http)]);
    assert_eq!(code, 200);
}
