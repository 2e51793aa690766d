//! A party's projection under the identity rules, and builders of signed
//! events for the cases. Every refusal is checked to leave the state as it was.

use std::collections::BTreeSet;
use std::sync::{Arc, OnceLock};

pub use ics_identity::payload::*;
pub use ics_identity::query::{self, OpenPgpExport, SearchQuery, VerifyTarget, openpgp_export};
pub use ics_identity::{CODE, DEVICE, Detail, Identity, IdentityPayload, IdentityState, SERVICE};
pub use ics_kernel::authority::{AUTHOR_KEY, PARTY, PartyPayload};
pub use ics_kernel::capability::{Payload, payload_bytes};
pub use ics_kernel::projection::SubjectEntry;
pub use ics_kernel::*;

pub const T0: i64 = 1_700_000_000_000;

/// The rules a test party starts with: default limits, this build's capabilities.
pub fn genesis_rules() -> ActiveRules {
    ActiveRules {
        limits: EventLimits::default(),
        capabilities: rules().versions(),
    }
}

pub fn rules() -> &'static Arc<Rules> {
    static RULES: OnceLock<Arc<Rules>> = OnceLock::new();
    RULES.get_or_init(|| Arc::new(Rules::builder().add::<Identity>().build()))
}

pub fn event(body: &EventBody, keys: &[&SigningKey]) -> Event {
    let env = envelope::sign(body, keys);
    rules()
        .parse(env, &EventLimits::default())
        .expect("test event parses")
}

pub fn body(
    subject: SubjectRef,
    sequence: u64,
    previous: Option<EventId>,
    author: KeyId,
    payload: impl Payload,
) -> EventBody {
    EventBody {
        schema_version: SCHEMA_VERSION,
        subject,
        sequence,
        previous,
        author,
        time_ms: T0 + 1_000,
        payload: payload_bytes(&payload),
    }
}

/// Kind names, as author keys and grants list them.
pub fn kinds(names: &[&str]) -> BTreeSet<String> {
    names.iter().map(|n| n.to_string()).collect()
}

pub const DEVICE_KINDS: &[&str] = &["device-registered", "device-status-changed"];

/// The genesis of party "acme" with this role, signed by `root`.
pub fn genesis_body(root: &SigningKey, role: Role) -> EventBody {
    let mut genesis = body(
        SubjectRef::new(PARTY, "acme"),
        0,
        None,
        root.key_id(),
        PartyPayload::Genesis {
            party_name: "acme".into(),
            role,
            root_key: root.public_key(),
            rules: genesis_rules(),
        },
    );
    genesis.time_ms = T0;
    genesis
}

/// `root` registers `key` as an author key for these kinds.
pub fn author_body(
    root: &SigningKey,
    key: &SigningKey,
    kind_names: &[&str],
    not_after_ms: i64,
) -> EventBody {
    let mut b = body(
        SubjectRef::new(AUTHOR_KEY, key.key_id().to_hex()),
        0,
        None,
        root.key_id(),
        PartyPayload::AuthorKeyRegistered {
            key: key.public_key(),
            label: "ops".into(),
            allowed_kinds: kinds(kind_names),
            not_after_ms,
        },
    );
    b.time_ms = T0 + 100;
    b
}

pub struct Party {
    pub root: SigningKey,
    pub proj: Projection,
    pub limits: EventLimits,
}

impl Party {
    pub fn new() -> Self {
        Self::with_role("maintenance")
    }

    pub fn with_role(role: &str) -> Self {
        let root = SigningKey::generate(Algorithm::Ed25519);
        let mut p = Party {
            root,
            proj: Projection::new(rules().clone()),
            limits: EventLimits::default(),
        };
        let genesis = genesis_body(&p.root, Role::from_name(role).expect("a role"));
        let e = event(&genesis, &[&p.root]);
        p.apply(&e).expect("genesis accepted");
        p
    }

    pub fn apply(&mut self, e: &Event) -> Result<Vec<Appended>, Refusal> {
        self.proj.apply_batch(std::slice::from_ref(e), &self.limits)
    }

    fn fingerprint(&self) -> (u64, [u8; 32], [u8; 32]) {
        (
            self.proj.event_count(),
            self.proj.log_hash(),
            self.proj.state_hash(),
        )
    }

    /// Applies `e` expecting a refusal, and checks nothing changed.
    pub fn refuse(&mut self, e: &Event) -> Refusal {
        let before = self.fingerprint();
        let err = self.apply(e).expect_err("event must be refused");
        assert_eq!(before, self.fingerprint(), "state changed on {err}");
        err
    }

    pub fn register_author(
        &mut self,
        alg: Algorithm,
        kind_names: &[&str],
        not_after_ms: i64,
    ) -> SigningKey {
        let key = SigningKey::generate(alg);
        let b = author_body(&self.root, &key, kind_names, not_after_ms);
        self.apply(&event(&b, &[&self.root]))
            .expect("author registered");
        key
    }

    pub fn device_body(&self, author: &SigningKey, serial: &str) -> (EventBody, SubjectRef) {
        let device = SigningKey::generate(Algorithm::EcdsaP256Sha256);
        let subject = SubjectRef::new(DEVICE, device.key_id().to_hex());
        let b = body(
            subject.clone(),
            0,
            None,
            author.key_id(),
            IdentityPayload::DeviceRegistered {
                serial: serial.into(),
                device_key: device.public_key(),
                attributes: vec![("model".into(), "thermo-3".into())],
                openpgp: None,
            },
        );
        (b, subject)
    }

    pub fn entry(&self, s: &SubjectRef) -> &SubjectEntry {
        self.proj.entry(s).expect("subject exists")
    }

    /// The identity state of a subject.
    pub fn state(&self, s: &SubjectRef) -> &IdentityState {
        self.proj
            .capability::<Identity>()
            .subject(s)
            .expect("an identity")
    }

    pub fn last(&self, s: &SubjectRef) -> (u64, Option<EventId>) {
        let st = self.entry(s);
        (st.next_sequence, Some(st.last_event))
    }

    pub fn status_body(
        &self,
        author: &SigningKey,
        s: &SubjectRef,
        status: DeviceStatus,
    ) -> EventBody {
        let (seq, prev) = self.last(s);
        body(
            s.clone(),
            seq,
            prev,
            author.key_id(),
            IdentityPayload::DeviceStatusChanged {
                status,
                reason: "test".into(),
                openpgp_revocation: None,
            },
        )
    }

    /// Recognizes another party by its root key.
    pub fn recognize(&mut self, name: &str, role: &str) -> SigningKey {
        let root = SigningKey::generate(Algorithm::Ed25519);
        let mut b = body(
            SubjectRef::new(PARTY, name),
            0,
            None,
            self.root.key_id(),
            PartyPayload::Recognized {
                role: Role::from_name(role).expect("a role"),
                root_key: root.public_key(),
            },
        );
        b.time_ms = T0 + 200;
        self.apply(&event(&b, &[&self.root]))
            .expect("party recognized");
        root
    }

    /// The root key's `rules-changed` event on the party: `change` edits
    /// the active rules.
    pub fn rules_change(&self, change: impl FnOnce(&mut ActiveRules)) -> Event {
        let mut rules = self.proj.active_rules().expect("genesis").clone();
        change(&mut rules);
        self.on_subject(
            &SubjectRef::new(PARTY, "acme"),
            &self.root,
            PartyPayload::RulesChanged { rules },
        )
    }

    pub fn on_subject(&self, s: &SubjectRef, signer: &SigningKey, payload: impl Payload) -> Event {
        let (seq, prev) = self.last(s);
        event(
            &body(s.clone(), seq, prev, signer.key_id(), payload),
            &[signer],
        )
    }
}

pub fn grant(party: &str, kind_names: &[&str]) -> PartyPayload {
    PartyPayload::AccessGranted {
        party: party.into(),
        kinds: kinds(kind_names),
    }
}

pub fn endorse(kind: EndorsementKind, scope: &str) -> IdentityPayload {
    IdentityPayload::Endorsed {
        kind,
        scope: scope.into(),
        not_after_ms: T0 + 5_000_000,
        openpgp_certification: None,
    }
}

pub fn rotation(
    p: &Party,
    s: &SubjectRef,
    author: &SigningKey,
    new: &SigningKey,
    signers: &[&SigningKey],
    openpgp_revocation: Option<Vec<u8>>,
) -> Event {
    let (seq, prev) = p.last(s);
    let b = body(
        s.clone(),
        seq,
        prev,
        author.key_id(),
        IdentityPayload::KeyRotated {
            new_key: new.public_key(),
            reason: "scheduled".into(),
            openpgp_revocation,
        },
    );
    event(&b, signers)
}

pub const CODE_KINDS: &[&str] = &["code-released", "code-status-changed"];

pub fn code_body(
    author: &SigningKey,
    name: &str,
    version: &str,
    artifact: &[u8],
) -> (EventBody, SubjectRef) {
    let identity = CodeIdentity::of_artifact(
        name,
        version,
        artifact,
        Some("https://example.test/suit/1".into()),
    );
    let subject = SubjectRef::new(CODE, hex::encode(identity.blake3));
    (
        body(
            subject.clone(),
            0,
            None,
            author.key_id(),
            IdentityPayload::CodeReleased(identity),
        ),
        subject,
    )
}
