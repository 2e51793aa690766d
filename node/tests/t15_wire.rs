//! The kernel reads and writes the signed body framing and its own payloads
//! without a code generator; prost, from `proto/ics/core/v1`, must agree with
//! it byte for byte, so a stock protobuf client builds bodies nodes accept.

use ics_kernel::authority::{AUTHOR_KEY, PARTY, PartyPayload};
use ics_kernel::capability::{Payload, payload_bytes};
use ics_kernel::{
    ActiveRules, Algorithm, EventBody, EventId, EventLimits, KeyId, Role, SCHEMA_VERSION,
    SigningKey, SubjectRef,
};
use ics_proto::core_v1 as pb;
use prost::Message;

fn body(payload: &impl Payload) -> EventBody {
    EventBody {
        schema_version: SCHEMA_VERSION,
        subject: SubjectRef::new(AUTHOR_KEY, "ab".repeat(32)),
        sequence: 7,
        previous: Some(EventId([3; 32])),
        author: KeyId([5; 32]),
        time_ms: 1_700_000_000_123,
        payload: payload_bytes(payload),
    }
}

fn rules() -> ActiveRules {
    ics_node::capabilities::genesis_rules(EventLimits::default())
}

fn payloads() -> Vec<PartyPayload> {
    let ed = SigningKey::generate(Algorithm::Ed25519).public_key();
    let p256 = SigningKey::generate(Algorithm::EcdsaP256Sha256).public_key();
    vec![
        PartyPayload::Genesis {
            party_name: "acme".into(),
            role: Role::Manufacturer,
            root_key: ed.clone(),
            rules: rules(),
        },
        PartyPayload::AuthorKeyRegistered {
            key: p256.clone(),
            label: "ops".into(),
            allowed_kinds: ["device-registered".to_string(), "key-rotated".to_string()].into(),
            not_after_ms: 1_800_000_000_000,
        },
        PartyPayload::AuthorKeyRevoked {
            reason: "left".into(),
        },
        PartyPayload::Recognized {
            role: Role::Certifier,
            root_key: ed,
        },
        PartyPayload::AccessGranted {
            party: "tuv".into(),
            kinds: ["endorsed".to_string()].into(),
        },
        PartyPayload::RulesChanged {
            rules: ActiveRules {
                limits: EventLimits {
                    max_text_bytes: 4096,
                    ..EventLimits::default()
                },
                ..rules()
            },
        },
    ]
}

/// Decodes `bytes` as `M` with prost and encodes it again.
fn prost_round_trip<M: Message + Default>(bytes: &[u8]) -> Vec<u8> {
    M::decode(bytes).expect("prost decodes it").encode_to_vec()
}

#[test]
fn prost_reads_and_writes_the_kernel_body_framing_byte_for_byte() {
    let b = body(&payloads()[0]);
    let ours = b.encode();
    let theirs = pb::EventBody::decode(ours.as_slice()).expect("prost decodes the body");
    assert_eq!(theirs.schema_version, SCHEMA_VERSION);
    let subject = theirs.subject.clone().expect("subject");
    assert_eq!((subject.kind.as_str(), subject.id.len()), (AUTHOR_KEY, 64));
    assert_eq!(theirs.sequence, 7);
    assert_eq!(theirs.previous, vec![3; 32]);
    assert_eq!(theirs.author_key_id, vec![5; 32]);
    assert_eq!(theirs.time_unix_ms, 1_700_000_000_123);
    let any = theirs.payload.clone().expect("payload");
    assert_eq!(any.type_url, "type.googleapis.com/ics.core.v1.PartyGenesis");
    assert_eq!(
        theirs.encode_to_vec(),
        ours,
        "prost re-encodes the same bytes"
    );
    assert_eq!(EventBody::decode(&theirs.encode_to_vec()).unwrap(), b);
}

#[test]
fn prost_agrees_on_every_kernel_payload() {
    for p in payloads() {
        let ours = p.encode();
        let again = match p {
            PartyPayload::Genesis { .. } => prost_round_trip::<pb::PartyGenesis>(&ours),
            PartyPayload::AuthorKeyRegistered { .. } => {
                prost_round_trip::<pb::AuthorKeyRegistered>(&ours)
            }
            PartyPayload::AuthorKeyRevoked { .. } => {
                prost_round_trip::<pb::AuthorKeyRevoked>(&ours)
            }
            PartyPayload::Recognized { .. } => prost_round_trip::<pb::PartyRecognized>(&ours),
            PartyPayload::AccessGranted { .. } => prost_round_trip::<pb::AccessGranted>(&ours),
            PartyPayload::RulesChanged { .. } => prost_round_trip::<pb::RulesChanged>(&ours),
        };
        assert_eq!(again, ours, "{p:?}");
        // And the message name the kind gives is the one prost knows.
        assert!(p.kind().message.starts_with("ics.core.v1."));
    }
    let genesis = pb::PartyGenesis {
        party_name: "acme".into(),
        role: "maintenance".into(),
        root_key: Some(pb::PublicKey {
            algorithm: pb::SignatureAlgorithm::Ed25519 as i32,
            key: SigningKey::generate(Algorithm::Ed25519)
                .public_key()
                .bytes()
                .to_vec(),
        }),
        rules: Some(pb::Rules {
            limits: Some(pb::EventLimits {
                max_body_bytes: 65536,
                max_signatures: 8,
                max_records_per_subject: 1024,
                max_attributes: 64,
                max_text_bytes: 1024,
                max_batch_events: 1000,
            }),
            capabilities: vec![
                pb::CapabilityVersion {
                    name: "ca".into(),
                    version: <ics_ca::DeviceCa as ics_kernel::capability::Capability>::VERSION,
                },
                pb::CapabilityVersion {
                    name: "federation".into(),
                    version:
                        <ics_federation::Federation as ics_kernel::capability::Capability>::VERSION,
                },
                pb::CapabilityVersion {
                    name: "identity".into(),
                    version:
                        <ics_identity::Identity as ics_kernel::capability::Capability>::VERSION,
                },
                pb::CapabilityVersion {
                    name: "kernel".into(),
                    version: ics_kernel::authority::KERNEL_VERSION,
                },
                pb::CapabilityVersion {
                    name: "pki".into(),
                    version: <ics_pki::Pki as ics_kernel::capability::Capability>::VERSION,
                },
                pb::CapabilityVersion {
                    name: "policy".into(),
                    version:
                        <ics_policies::Policies as ics_kernel::capability::Capability>::VERSION,
                },
                pb::CapabilityVersion {
                    name: "tlog".into(),
                    version: <ics_tlog::Tlog as ics_kernel::capability::Capability>::VERSION,
                },
            ],
        }),
    };
    let subject = SubjectRef::new(PARTY, "acme");
    assert_eq!(subject.to_string(), "party/acme");
    let node_rules = ics_node::capabilities::rules();
    let kind = node_rules.kind("party-genesis").expect("a kernel kind");
    let b = EventBody {
        payload: ics_kernel::PayloadBytes {
            message: kind.message.to_string(),
            value: genesis.encode_to_vec(),
        },
        ..body(&payloads()[0])
    };
    let key = SigningKey::generate(Algorithm::Ed25519);
    let event = node_rules
        .parse(
            ics_kernel::envelope::sign(&b, &[&key]),
            &ics_kernel::EventLimits::default(),
        )
        .expect("a prost-built genesis parses");
    assert_eq!(
        event.payload::<PartyPayload>(),
        Some(&PartyPayload::Genesis {
            party_name: "acme".into(),
            role: Role::Maintenance,
            root_key: ics_kernel::envelope::decode_public_key(
                &genesis.root_key.clone().unwrap().encode_to_vec(),
                "root_key"
            )
            .unwrap(),
            rules: rules(),
        })
    );
}
