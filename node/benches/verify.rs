//! In-process cost of `Verify` and of a serial lookup on a projection of
//! 10 000 registered devices: `cargo bench -p ics-node --bench verify`.
//! Prints p50/p99 per call and calls per second.

use std::time::{Duration, Instant};

use ics_identity::query::{self, SearchQuery, VerifyTarget};
use ics_kernel::authority::{PARTY, PartyPayload};
use ics_kernel::{Algorithm, Envelope, EventLimits, Projection, Role, SigningKey, SubjectRef};
use ics_node::client::{self, ChainHead};
use ics_node::codec;

const DEVICES: usize = 10_000;
const CALLS: usize = 200_000;

fn apply(proj: &mut Projection, env: Envelope) {
    let limits = EventLimits::default();
    let e = codec::parse_event(env, &limits).expect("event parses");
    proj.apply_batch(&[e], &limits).expect("event accepted");
}
fn report(what: &str, mut samples: Vec<Duration>, total: Duration) {
    samples.sort();
    let p = |q: f64| samples[((samples.len() - 1) as f64 * q) as usize];
    println!(
        "{what}: p50 {:?} p99 {:?} {:.0} calls/s over {} calls",
        p(0.5),
        p(0.99),
        samples.len() as f64 / total.as_secs_f64(),
        samples.len()
    );
}

fn main() {
    let root = SigningKey::generate(Algorithm::Ed25519);
    let mut proj = ics_node::capabilities::projection();
    apply(
        &mut proj,
        client::signed(
            &root,
            SubjectRef::new(PARTY, "bench"),
            ChainHead::default(),
            PartyPayload::Genesis {
                party_name: "bench".into(),
                role: Role::Maintenance,
                root_key: root.public_key(),
                rules: ics_node::capabilities::genesis_rules(EventLimits::default()),
            },
        ),
    );
    let author = SigningKey::generate(Algorithm::Ed25519);
    apply(
        &mut proj,
        client::register_author(
            &root,
            &author.public_key(),
            "bench",
            [
                "device-registered".to_string(),
                "device-status-changed".to_string(),
            ]
            .into_iter()
            .collect(),
            client::now_ms() + 86_400_000,
        ),
    );
    let mut keys = Vec::with_capacity(DEVICES);
    for i in 0..DEVICES {
        let key = SigningKey::generate(Algorithm::Ed25519).public_key();
        apply(
            &mut proj,
            client::register_device(&author, &format!("SN-{i}"), &key, vec![]),
        );
        keys.push(key.id());
    }
    let now = client::now_ms();

    let mut samples = Vec::with_capacity(CALLS);
    let started = Instant::now();
    for i in 0..CALLS {
        let t = Instant::now();
        let trust = query::verify(&proj, &VerifyTarget::Key(keys[(i * 7919) % DEVICES]), now);
        samples.push(t.elapsed());
        assert!(trust.trusted);
    }
    report(
        "verify (device key, 10k devices)",
        samples,
        started.elapsed(),
    );

    let mut samples = Vec::with_capacity(CALLS);
    let started = Instant::now();
    for i in 0..CALLS {
        let q = SearchQuery::Serial(format!("SN-{}", (i * 7919) % DEVICES));
        let t = Instant::now();
        let page = query::search(&proj, &q, None, 10);
        samples.push(t.elapsed());
        assert_eq!(page.subjects.len(), 1);
    }
    report("search by serial (10k devices)", samples, started.elapsed());
}
