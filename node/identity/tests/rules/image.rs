//! State images (what snapshots hold): a projection restores from its image
//! and the ids of the events it covers, with its indexes as they were; an
//! image that does not match its events, or was written by another build,
//! is refused with a reason and restores nothing.

use std::sync::Arc;

use crate::fixture::*;
use crate::service::{SERVICE_KINDS, service};

/// A party with a service whose key was rotated; its events' ids in log
/// order; the rotated-out key.
fn party_with_history() -> (Party, Vec<EventId>, KeyId) {
    let mut p = Party::new();
    let party = p.proj.party().expect("a genesis").name.clone();
    let mut ids = vec![p.entry(&SubjectRef::new(PARTY, party)).last_event];
    let author = SigningKey::generate(Algorithm::Ed25519);
    let old = SigningKey::generate(Algorithm::Ed25519);
    let new = SigningKey::generate(Algorithm::Ed25519);
    let s = SubjectRef::new(SERVICE, old.key_id().to_hex());
    let b = author_body(&p.root, &author, SERVICE_KINDS, T0 + 10_000_000);
    for step in 0..3 {
        let e = match step {
            0 => event(&b, &[&p.root]),
            1 => service(&author, &old, "telemetry", &["https://t.acme.test"]),
            _ => rotation(&p, &s, &author, &new, &[&author, &new], None),
        };
        p.apply(&e).expect("accepted");
        ids.push(e.id);
    }
    (p, ids, old.key_id())
}

fn decode(bytes: &[u8]) -> StateImage {
    StateImage::decode(bytes).expect("the image decodes")
}

#[test]
fn a_restored_projection_keeps_its_indexes_and_decides_as_before() {
    let (mut p, ids, old_key) = party_with_history();
    let image = p.proj.image();
    assert_eq!(decode(&image).event_count(), 4);
    let restored = Projection::restore(rules().clone(), decode(&image), ids).expect("restores");
    assert!(restored.same_state(&p.proj));
    // The rotated-out key still finds its service: the index was kept, not
    // rebuilt from the subjects (which show only the current key).
    let s = query::subject_by_key(&restored, &old_key).expect("found by its old key");
    assert_eq!(s.kind, SERVICE);
    // The restored projection decides what comes next as the live one does.
    let mut restored = restored;
    let author = SigningKey::generate(Algorithm::Ed25519);
    let b = author_body(&p.root, &author, DEVICE_KINDS, T0 + 10_000_000);
    let next = [
        event(&b, &[&p.root]),
        event(&p.device_body(&author, "SN-1").0, &[&author]),
    ];
    for e in &next {
        let live = p.apply(e).expect("accepted live");
        let again = restored.apply_batch(std::slice::from_ref(e), &p.limits);
        assert_eq!(again.as_ref(), Ok(&live));
    }
    assert!(restored.same_state(&p.proj));
}

#[test]
fn an_image_whose_events_do_not_chain_to_its_log_hash_is_refused() {
    let (p, ids, _) = party_with_history();
    let image = p.proj.image();
    let cases: [(&str, Vec<EventId>); 3] = [
        ("one event missing", ids[..3].to_vec()),
        ("two events swapped", vec![ids[0], ids[2], ids[1], ids[3]]),
        ("an event twice", vec![ids[0], ids[1], ids[1], ids[3]]),
    ];
    for (what, events) in cases {
        let err = Projection::restore(rules().clone(), decode(&image), events).expect_err(what);
        assert!(matches!(err, ImageError::Events(_)), "{what}: {err}");
        assert!(!err.is_other_build(), "{what}: replaying would not help");
    }
}

#[test]
fn an_image_of_another_build_or_corrupt_is_refused_with_a_reason() {
    let (p, ids, _) = party_with_history();
    let image = p.proj.image();
    // Its head names what it covers, as the whole image does.
    let whole = decode(&image);
    assert_eq!(
        StateImage::head(&image).expect("a head"),
        (whole.event_count(), whole.log_hash())
    );
    assert_eq!(whole.event_count(), ids.len() as u64);

    // Another kernel image format (the first field).
    let mut other_format = image.clone();
    other_format[0] = 2;
    let err = StateImage::decode(&other_format).err().expect("refused");
    assert!(matches!(err, ImageError::Format { found: 2 }), "{err}");
    assert!(matches!(
        StateImage::head(&other_format),
        Err(ImageError::Format { found: 2 })
    ));
    assert!(err.is_other_build());

    // A build that runs other capabilities: the kernel alone.
    let kernel_only = Arc::new(Rules::builder().build());
    let err = Projection::restore(kernel_only, decode(&image), ids.clone()).expect_err("refused");
    assert!(matches!(err, ImageError::Capabilities { .. }), "{err}");
    assert!(err.to_string().contains("identity v"), "{err}");
    assert!(err.is_other_build());

    // Cut short: corrupt, not another build.
    let err = StateImage::decode(&image[..image.len() / 2])
        .err()
        .expect("refused");
    assert!(matches!(err, ImageError::Corrupt(_)), "{err}");
    assert!(!err.is_other_build());
}
