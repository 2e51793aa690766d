//! The transparency log's rules case by case (every refusal with its reason
//! and the state unchanged), and the capability conformance suite on them,
//! over a tree of the accepted events.

use std::sync::{Arc, OnceLock};

use ics_kernel::authority::{AUTHOR_KEY, PARTY, PartyPayload};
use ics_kernel::testing::{Step, check_scenarios_over};
use ics_kernel::*;
use ics_tlog::merkle::{self, MemoryTree, leaf_hash};
use ics_tlog::note::{self, Checkpoint};
use ics_tlog::payload::LOG_KEY_KINDS;
use ics_tlog::*;

const T0: i64 = 1_700_000_000_000;

fn rules() -> &'static Arc<Rules> {
    static RULES: OnceLock<Arc<Rules>> = OnceLock::new();
    RULES.get_or_init(|| Arc::new(Rules::builder().add::<Tlog>().build()))
}

/// The tree the suite decides over: one leaf per accepted event (the host's
/// leaves carry a salt and the stored envelope; any deterministic leaf does
/// for the rules).
struct TestTree(MemoryTree);

impl LogTree for TestTree {
    fn size(&self) -> u64 {
        self.0.size()
    }
    fn root(&self, size: u64) -> Option<[u8; 32]> {
        (size <= self.0.size()).then(|| merkle::root(&self.0, size).unwrap())
    }
}

fn tree_of(events: &[Event]) -> TestTree {
    let mut t = MemoryTree::new();
    for e in events {
        t.append(leaf_hash(&e.id.0));
    }
    TestTree(t)
}

fn body(subject: SubjectRef, author: KeyId, payload: impl Payload) -> EventBody {
    ics_kernel::testing::opening_body(subject, author, T0 + 1_000, payload)
}

fn ed25519(key: &SigningKey) -> &ed25519_dalek::SigningKey {
    match key {
        SigningKey::Ed25519(k) => k,
        SigningKey::P256(_) => panic!("a log key is Ed25519"),
    }
}

fn clone_key(k: &SigningKey) -> SigningKey {
    SigningKey::from_secret(k.algorithm(), &k.secret_bytes()).unwrap()
}

/// A party "acme", its projection, the events it accepted (the tree's
/// leaves) and the steps for the conformance suite.
struct Party {
    root: SigningKey,
    proj: Projection,
    accepted: Vec<Event>,
    steps: Vec<Step>,
}

impl Party {
    fn new() -> Party {
        let root = SigningKey::generate(Algorithm::Ed25519);
        let mut p = Party {
            root,
            proj: Projection::new(rules().clone()),
            accepted: Vec::new(),
            steps: Vec::new(),
        };
        let mut genesis = body(
            SubjectRef::new(PARTY, "acme"),
            p.root.key_id(),
            PartyPayload::Genesis {
                party_name: "acme".into(),
                role: Role::Maintenance,
                root_key: p.root.public_key(),
                rules: ActiveRules {
                    limits: EventLimits::default(),
                    capabilities: rules().versions(),
                },
            },
        );
        genesis.time_ms = T0;
        let root = clone_key(&p.root);
        p.accept("genesis", &[(&genesis, &root)]);
        p
    }

    fn register(&mut self, key: &SigningKey, kinds: &[&str]) -> EventBody {
        body(
            SubjectRef::new(AUTHOR_KEY, key.key_id().to_hex()),
            self.root.key_id(),
            PartyPayload::AuthorKeyRegistered {
                key: key.public_key(),
                label: "log".into(),
                allowed_kinds: kinds.iter().map(|k| k.to_string()).collect(),
                not_after_ms: T0 + 3650 * 86_400_000,
            },
        )
    }

    fn bind(&self, key: &SigningKey, origin: &str) -> EventBody {
        body(
            SubjectRef::new(TLOG_KEY, key.key_id().to_hex()),
            self.root.key_id(),
            TlogPayload::LogKeyBound {
                origin: origin.into(),
                public_key: key.public_key().bytes().to_vec(),
            },
        )
    }

    /// A checkpoint of `size` with `root`, its note signed by `signer` as
    /// `name`, the event by `author`.
    fn checkpoint(
        &self,
        author: &SigningKey,
        signer: &SigningKey,
        name: &str,
        size: u64,
        root: [u8; 32],
    ) -> EventBody {
        let text = Checkpoint {
            origin: name.into(),
            size,
            root,
        }
        .text();
        let note = note::sign(name, ed25519(signer), &text).unwrap();
        body(
            checkpoint_subject(size),
            author.key_id(),
            TlogPayload::Checkpoint {
                note: note.to_bytes(),
            },
        )
    }

    fn tree(&self) -> TestTree {
        tree_of(&self.accepted)
    }

    fn events(batch: &[(&EventBody, &SigningKey)]) -> Vec<Event> {
        batch
            .iter()
            .map(|(b, k)| {
                rules()
                    .parse(envelope::sign(b, &[k]), &EventLimits::default())
                    .expect("test event parses")
            })
            .collect()
    }

    fn accept(&mut self, what: &str, batch: &[(&EventBody, &SigningKey)]) {
        let events = Self::events(batch);
        let tree = self.tree();
        self.proj
            .apply_batch_over(&events, &EventLimits::default(), &tree)
            .unwrap_or_else(|r| panic!("{what}: {r}"));
        self.steps.push(Step::accepted(
            what,
            events.iter().map(|e| e.envelope.clone()).collect(),
        ));
        self.accepted.extend(events);
    }

    /// Refused with `reason`, and nothing changed.
    fn refuse(&mut self, what: &str, batch: &[(&EventBody, &SigningKey)], reason: &'static str) {
        let events = Self::events(batch);
        let before = (self.proj.event_count(), self.proj.state_hash());
        let refusal = self
            .proj
            .apply_batch_over(&events, &EventLimits::default(), &self.tree())
            .expect_err(what);
        assert_eq!(refusal.reason(), reason, "{what}: {refusal}");
        assert_eq!(
            (self.proj.event_count(), self.proj.state_hash()),
            before,
            "{what}"
        );
        self.steps.push(Step::refused(
            what,
            events.iter().map(|e| e.envelope.clone()).collect(),
            reason,
        ));
    }
}

/// The whole life of a party's log key and checkpoints, every refusal in place.
fn scenario() -> Party {
    let mut p = Party::new();
    let root = clone_key(&p.root);
    let log_key = SigningKey::generate(Algorithm::Ed25519);
    let other = SigningKey::generate(Algorithm::Ed25519);
    let origin = log_origin("acme");
    assert_eq!(origin, "ics/acme/log");

    // Only the root binds, only a key registered to sign checkpoints, only
    // under the party's origin, only at the key's own subject.
    let bind = p.bind(&log_key, &origin);
    p.refuse(
        "key not yet an author",
        &[(&bind, &root)],
        "LOG_KEY_NOT_AUTHOR",
    );
    let reg = p.register(&log_key, &LOG_KEY_KINDS);
    p.accept("log key registered", &[(&reg, &root)]);
    let reg = p.register(&other, &["tlog-key-bound", "tlog-checkpoint"]);
    p.accept("another author", &[(&reg, &root)]);
    let mut by_other = bind.clone();
    by_other.author = other.key_id();
    p.refuse(
        "bound by an author key",
        &[(&by_other, &other)],
        "NOT_ROOT_KEY",
    );
    let wrong_origin = p.bind(&log_key, "ics/evil/log");
    p.refuse("another origin", &[(&wrong_origin, &root)], "WRONG_ORIGIN");
    let mut misplaced = bind.clone();
    misplaced.subject = SubjectRef::new(TLOG_KEY, other.key_id().to_hex());
    p.refuse(
        "at another key's subject",
        &[(&misplaced, &root)],
        "INVALID_SUBJECT",
    );
    p.accept("log key bound", &[(&bind, &root)]);
    let cp = p.checkpoint(&other, &other, &origin, 1, p.tree().root(1).unwrap());
    p.refuse(
        "a checkpoint by an unbound key",
        &[(&cp, &other)],
        "LOG_KEY_NOT_BOUND",
    );

    // A checkpoint signs a committed size with its root, under the origin.
    let size = p.tree().size();
    let good_root = p.tree().root(size).unwrap();
    let beyond = p.checkpoint(&log_key, &log_key, &origin, size + 1, good_root);
    p.refuse(
        "a size not committed",
        &[(&beyond, &log_key)],
        "SIZE_NOT_COMMITTED",
    );
    let forked = p.checkpoint(&log_key, &log_key, &origin, size, [7; 32]);
    p.refuse(
        "a root not the log's",
        &[(&forked, &log_key)],
        "ROOT_MISMATCH",
    );
    let older_root = p.tree().root(size - 1).unwrap();
    let stale_root = p.checkpoint(&log_key, &log_key, &origin, size, older_root);
    p.refuse(
        "an older size's root",
        &[(&stale_root, &log_key)],
        "ROOT_MISMATCH",
    );
    let forged = p.checkpoint(&log_key, &other, &origin, size, good_root);
    p.refuse(
        "a note signed by another key",
        &[(&forged, &log_key)],
        "BAD_CHECKPOINT",
    );
    let renamed = p.checkpoint(&log_key, &log_key, "ics/evil/log", size, good_root);
    p.refuse(
        "a note of another origin",
        &[(&renamed, &log_key)],
        "BAD_CHECKPOINT",
    );
    let text = Checkpoint {
        origin: origin.clone(),
        size,
        root: good_root,
    }
    .text();
    let mut two = note::sign(&origin, ed25519(&log_key), &text).unwrap();
    two.signatures.extend(
        note::sign("witness", ed25519(&other), &text)
            .unwrap()
            .signatures,
    );
    let cosigned = body(
        checkpoint_subject(size),
        log_key.key_id(),
        TlogPayload::Checkpoint {
            note: two.to_bytes(),
        },
    );
    p.refuse(
        "a note with a second signature",
        &[(&cosigned, &log_key)],
        "BAD_CHECKPOINT",
    );
    let mut misnamed = p.checkpoint(&log_key, &log_key, &origin, size, good_root);
    misnamed.subject = checkpoint_subject(size - 1);
    p.refuse(
        "at another size's subject",
        &[(&misnamed, &log_key)],
        "INVALID_SUBJECT",
    );
    let good = p.checkpoint(&log_key, &log_key, &origin, size, good_root);
    p.accept("a checkpoint", &[(&good, &log_key)]);
    let mut again = good.clone();
    again.time_ms += 1;
    p.refuse(
        "the same size twice",
        &[(&again, &log_key)],
        "CHAIN_CONFLICT",
    );

    // The tree before the batch decides: events earlier in the same batch
    // are not committed yet for a checkpoint in it.
    let third = SigningKey::generate(Algorithm::Ed25519);
    let reg = p.register(&third, &["tlog-checkpoint"]);
    let size = p.tree().size();
    let mut t = tree_of(&p.accepted).0;
    let reg_event = Party::events(&[(&reg, &root)]).remove(0);
    t.append(leaf_hash(&reg_event.id.0));
    let ahead = p.checkpoint(
        &log_key,
        &log_key,
        &origin,
        size + 1,
        merkle::root(&t, size + 1).unwrap(),
    );
    p.refuse(
        "a size reached only within its own batch",
        &[(&reg, &root), (&ahead, &log_key)],
        "SIZE_NOT_COMMITTED",
    );
    p.accept("an author key", &[(&reg, &root)]);
    p.accept("the same checkpoint, a batch later", &[(&ahead, &log_key)]);
    // Any committed size not yet signed may be, also below the latest: it
    // is the log's root at that size, so consistent with every other.
    let below = p.checkpoint(&log_key, &log_key, &origin, 3, p.tree().root(3).unwrap());
    p.accept("a smaller committed size", &[(&below, &log_key)]);
    witnessing(&mut p, &log_key);
    p
}

/// The next position in `subject`'s chain.
fn next_on(p: &Party, mut b: EventBody) -> EventBody {
    if let Some(e) = p.proj.entry(&b.subject) {
        b.sequence = e.next_sequence;
        b.previous = Some(e.last_event);
    }
    b
}

/// A recognized peer's log, witnessed here, and its cosignatures on this
/// log's checkpoints.
fn witnessing(p: &mut Party, log_key: &SigningKey) {
    let root = clone_key(&p.root);
    let peer_root = SigningKey::generate(Algorithm::Ed25519);
    let peer_log = SigningKey::generate(Algorithm::Ed25519);
    let stranger = SigningKey::generate(Algorithm::Ed25519);
    let peer_origin = log_origin("peer");

    // Only the root binds a peer's log key, only of a recognized party.
    let bind_peer = body(
        peer_subject("peer"),
        root.key_id(),
        TlogPayload::PeerBound {
            public_key: peer_log.public_key().bytes().to_vec(),
        },
    );
    p.refuse(
        "a party not recognized",
        &[(&bind_peer, &root)],
        "PEER_NOT_RECOGNIZED",
    );
    let recognize = body(
        SubjectRef::new(PARTY, "peer"),
        root.key_id(),
        PartyPayload::Recognized {
            role: Role::Manufacturer,
            root_key: peer_root.public_key(),
        },
    );
    p.accept("the peer recognized", &[(&recognize, &root)]);
    let short = body(
        peer_subject("peer"),
        root.key_id(),
        TlogPayload::PeerBound {
            public_key: vec![1; 31],
        },
    );
    p.refuse("a key of 31 bytes", &[(&short, &root)], "BAD_CHECKPOINT");
    p.accept("the peer's log key bound", &[(&bind_peer, &root)]);

    // The peer's tree and its checkpoints; this party's log key cosigns.
    let mut peer_tree = MemoryTree::new();
    for leaf in ["a", "b", "c", "d", "e", "f", "g"] {
        peer_tree.append(leaf_hash(leaf.as_bytes()));
    }
    let signed = |signer: &SigningKey, size: u64, root: [u8; 32]| {
        let text = Checkpoint {
            origin: peer_origin.clone(),
            size,
            root,
        }
        .text();
        note::sign(&peer_origin, ed25519(signer), &text).unwrap()
    };
    let at = |size| merkle::root(&peer_tree, size).unwrap();
    let request = |old, proof: Vec<[u8; 32]>, checkpoint| {
        witness::AddCheckpoint {
            old,
            proof,
            checkpoint,
        }
        .to_bytes()
    };
    let cosigned = |p: &Party, req: Vec<u8>| {
        next_on(
            p,
            body(
                peer_subject("peer"),
                log_key.key_id(),
                TlogPayload::Cosigned { request: req },
            ),
        )
    };
    let first = request(0, vec![[0; 32]], signed(&peer_log, 3, at(3)));
    let b = cosigned(p, first);
    p.refuse(
        "a first checkpoint with a proof",
        &[(&b, log_key)],
        "WITNESS_BAD_PROOF",
    );
    let b = cosigned(p, request(0, vec![], signed(&stranger, 3, at(3))));
    p.refuse(
        "a checkpoint the peer's key did not sign",
        &[(&b, log_key)],
        "WITNESS_UNVERIFIED",
    );
    let b = cosigned(p, request(0, vec![], signed(&peer_log, 3, at(3))));
    p.accept("the peer's checkpoint of 3 cosigned", &[(&b, log_key)]);
    let b = cosigned(p, request(0, vec![], signed(&peer_log, 5, at(5))));
    p.refuse("a stale old size", &[(&b, log_key)], "WITNESS_CONFLICT");
    let mut bent = merkle::consistency_proof(&peer_tree, 3, 5).unwrap();
    bent[0][0] ^= 1;
    let b = cosigned(p, request(3, bent, signed(&peer_log, 5, at(5))));
    p.refuse("a bent proof", &[(&b, log_key)], "WITNESS_BAD_PROOF");
    let proof = merkle::consistency_proof(&peer_tree, 3, 5).unwrap();
    let b = cosigned(p, request(3, proof, signed(&peer_log, 5, at(5))));
    p.accept("the peer's checkpoint of 5 cosigned", &[(&b, log_key)]);
    let tlog = p.proj.capability::<Tlog>();
    assert_eq!(
        ics_tlog::peer_log(tlog, "peer")
            .unwrap()
            .cosigned
            .map(|c| c.size),
        Some(5)
    );

    // The peer's cosignatures on this log's latest checkpoint.
    let latest = committed_checkpoint(tlog, None).unwrap().clone();
    let text = note::Note::parse(&latest.note).unwrap().text;
    let line = |name: &str, key: &SigningKey| {
        note::cosign(name, ed25519(key), 1_700_000_000, &text)
            .unwrap()
            .line()
    };
    let add = |p: &Party, witness: &str, line: String| {
        next_on(
            p,
            body(
                checkpoint_subject(latest.size),
                log_key.key_id(),
                TlogPayload::CosignatureAdded {
                    witness: witness.into(),
                    signature_line: line,
                },
            ),
        )
    };
    let good = line(&witness_name("peer"), &peer_log);
    let b = add(p, "nobody", good.clone());
    p.refuse("a witness not bound", &[(&b, log_key)], "PEER_NOT_BOUND");
    let b = add(p, "peer", line(&witness_name("peer"), &stranger));
    p.refuse("another key's line", &[(&b, log_key)], "BAD_COSIGNATURE");
    let b = add(p, "peer", line(&witness_name("other"), &peer_log));
    p.refuse("another name's line", &[(&b, log_key)], "BAD_COSIGNATURE");
    let mut bent = note::Note::parse(format!("x\n\n{good}").as_bytes())
        .unwrap()
        .signatures
        .remove(0);
    bent.signature[12] ^= 1;
    let b = add(p, "peer", bent.line());
    p.refuse("a bent cosignature", &[(&b, log_key)], "BAD_COSIGNATURE");
    let b = add(p, "peer", good.trim_end().to_string());
    p.accept("the peer's cosignature", &[(&b, log_key)]);
    let b = add(p, "peer", good.trim_end().to_string());
    p.refuse(
        "the same witness twice",
        &[(&b, log_key)],
        "ALREADY_COSIGNED",
    );

    // Served: the log's signature, then the witness's; both verify.
    let tlog = p.proj.capability::<Tlog>();
    let served = committed_checkpoint(tlog, None).unwrap().served_note();
    let served = note::Note::parse(&served).unwrap();
    assert_eq!(served.signatures.len(), 2);
    let peer = ics_tlog::peer_log(tlog, "peer").unwrap();
    assert_eq!(
        peer.witness_verifier().unwrap().verify(&served).unwrap(),
        1_700_000_000
    );
    let key = key_of(tlog, committed_checkpoint(tlog, None).unwrap()).unwrap();
    key.verifier().unwrap().verify(&served).unwrap();
}

#[test]
fn the_log_key_and_checkpoints_follow_the_rules() {
    let p = scenario();
    let tlog = p.proj.capability::<Tlog>();
    let latest = committed_checkpoint(tlog, None).expect("a latest checkpoint");
    // The latest is the checkpoint accepted just before the one of size 3.
    let below = p
        .accepted
        .iter()
        .position(|e| e.body.subject == checkpoint_subject(3))
        .unwrap();
    assert_eq!(latest.size, below as u64 - 1);
    let key = key_of(tlog, latest).unwrap();
    assert_eq!(key.origin, "ics/acme/log");
    assert_eq!(current_key(tlog), Some(key));
    // The committed note verifies under the bound key, and says the size.
    let note = note::Note::parse(&latest.note).unwrap();
    let text = key.verifier().unwrap().verify(&note).unwrap();
    assert_eq!(Checkpoint::parse(text).unwrap().size, latest.size);
    assert!(committed_checkpoint(tlog, Some(3)).is_some());
    assert!(committed_checkpoint(tlog, Some(2)).is_none());
}

#[test]
fn conformance_suite() {
    let p = scenario();
    check_scenarios_over::<Tlog>(
        rules().clone(),
        &EventLimits::default(),
        &[p.steps],
        &|events| Box::new(tree_of(events)),
    );
}
