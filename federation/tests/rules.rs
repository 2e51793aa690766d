//! The sync record's rules case by case (every refusal with its reason and
//! the state unchanged) and the capability conformance suite on them.

use std::sync::{Arc, OnceLock};

use ics_federation::*;
use ics_kernel::authority::{AUTHOR_KEY, PARTY, PartyPayload};
use ics_kernel::testing::{Scenario, check_scenarios};
use ics_kernel::*;
use ics_tlog::merkle::{Frontier, leaf_hash};
use ics_tlog::note::{self, Checkpoint};
use ics_tlog::{Tlog, TlogPayload, log_origin, peer_subject};

const T0: i64 = 1_700_000_000_000;

fn rules() -> &'static Arc<Rules> {
    static RULES: OnceLock<Arc<Rules>> = OnceLock::new();
    RULES.get_or_init(|| Arc::new(Rules::builder().add::<Tlog>().add::<Federation>().build()))
}

fn body(subject: SubjectRef, author: KeyId, time: i64, payload: impl Payload) -> EventBody {
    ics_kernel::testing::opening_body(subject, author, time, payload)
}

fn ed25519(key: &SigningKey) -> &ed25519_dalek::SigningKey {
    match key {
        SigningKey::Ed25519(k) => k,
        SigningKey::P256(_) => unreachable!(),
    }
}

/// The frontier of `size` test leaves.
fn frontier(size: u64, salt: u8) -> Frontier {
    let mut f = Frontier::new();
    for i in 0..size {
        f.append(leaf_hash(&[salt, i as u8]));
    }
    f
}

/// acme's checkpoint of `f`, signed by `key` under acme's origin.
fn checkpoint(key: &SigningKey, f: &Frontier) -> Vec<u8> {
    let origin = log_origin("acme");
    let text = Checkpoint {
        origin: origin.clone(),
        size: f.size(),
        root: f.root(),
    }
    .text();
    note::sign(&origin, ed25519(key), &text).unwrap().to_bytes()
}

fn synced(first: bool, cp: Vec<u8>, f: &Frontier) -> SyncedPayload {
    SyncedPayload {
        first,
        checkpoint: cp,
        frontier: f.to_bytes(),
        policies: (1, 1),
    }
}

#[test]
fn a_cursor_needs_a_bound_peer_log_a_matching_frontier_and_never_goes_back() {
    let root = SigningKey::generate(Algorithm::Ed25519);
    let recorder = SigningKey::generate(Algorithm::Ed25519);
    let acme_log = SigningKey::generate(Algorithm::Ed25519);
    let stranger_log = SigningKey::generate(Algorithm::Ed25519);
    let mut s = Scenario::genesis(rules().clone(), &root, "maint", Role::Maintenance, T0);
    let mut t = T0;
    let step = |s: &mut Scenario, b: EventBody, k: &SigningKey, expect: Option<&'static str>| {
        let e = s.event(&b, &[k]);
        match expect {
            None => s.accept("step", vec![e]),
            Some(reason) => s.refuse(reason, vec![e], reason),
        }
    };
    let mut next = || {
        t += 1;
        t
    };
    step(
        &mut s,
        body(
            SubjectRef::new(AUTHOR_KEY, recorder.key_id().to_hex()),
            root.key_id(),
            next(),
            PartyPayload::AuthorKeyRegistered {
                key: recorder.public_key(),
                label: "log".into(),
                allowed_kinds: SYNC_KINDS.iter().map(|k| k.to_string()).collect(),
                not_after_ms: T0 + 86_400_000,
            },
        ),
        &root,
        None,
    );
    let f4 = frontier(4, 0);
    let first = |cp: Vec<u8>, f: &Frontier, time: i64| {
        body(
            cursor_subject("acme"),
            recorder.key_id(),
            time,
            synced(true, cp, f),
        )
    };
    step(
        &mut s,
        first(checkpoint(&acme_log, &f4), &f4, next()),
        &recorder,
        Some("NOT_RECOGNIZED"),
    );
    step(
        &mut s,
        body(
            SubjectRef::new(PARTY, "acme"),
            root.key_id(),
            next(),
            PartyPayload::Recognized {
                role: Role::Manufacturer,
                root_key: SigningKey::generate(Algorithm::Ed25519).public_key(),
            },
        ),
        &root,
        None,
    );
    step(
        &mut s,
        first(checkpoint(&acme_log, &f4), &f4, next()),
        &recorder,
        Some("PEER_NOT_BOUND"),
    );
    step(
        &mut s,
        body(
            peer_subject("acme"),
            root.key_id(),
            next(),
            TlogPayload::PeerBound {
                public_key: acme_log.public_key().bytes().to_vec(),
            },
        ),
        &root,
        None,
    );
    step(
        &mut s,
        first(checkpoint(&stranger_log, &f4), &f4, next()),
        &recorder,
        Some("BAD_CHECKPOINT"),
    );
    step(
        &mut s,
        first(checkpoint(&acme_log, &f4), &frontier(4, 9), next()),
        &recorder,
        Some("FRONTIER_MISMATCH"),
    );
    step(
        &mut s,
        first(checkpoint(&acme_log, &f4), &f4, next()),
        &recorder,
        None,
    );
    let cursor = s
        .proj
        .capability::<Federation>()
        .subject(&cursor_subject("acme"))
        .cloned()
        .expect("a cursor");
    assert_eq!((cursor.size, cursor.frontier()), (4, f4.clone()));

    let following = |s: &Scenario, cp: Vec<u8>, f: &Frontier, time: i64| {
        let e = s.proj.entry(&cursor_subject("acme")).unwrap();
        EventBody {
            sequence: e.next_sequence,
            previous: Some(e.last_event),
            ..body(
                cursor_subject("acme"),
                recorder.key_id(),
                time,
                synced(false, cp, f),
            )
        }
    };
    let f9 = frontier(9, 0);
    let b = following(&s, checkpoint(&acme_log, &f9), &f9, next());
    step(&mut s, b, &recorder, None);
    let f3 = frontier(3, 0);
    let b = following(&s, checkpoint(&acme_log, &f3), &f3, next());
    step(&mut s, b, &recorder, Some("CURSOR_BACKWARDS"));
    let other9 = frontier(9, 7);
    let b = following(&s, checkpoint(&acme_log, &other9), &other9, next());
    step(&mut s, b, &recorder, Some("PEER_LOG_FORK"));
    let b = following(&s, checkpoint(&acme_log, &f9), &f9, next());
    step(&mut s, b, &recorder, None);

    check_scenarios::<Federation>(rules().clone(), &EventLimits::default(), &[s.steps]);
}
