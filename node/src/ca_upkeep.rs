//! The device CA in the log: the node holding the party root key binds the
//! CA hierarchy once; the leader revokes the certificates of a device
//! reported stolen or destroyed — here, or in another party's records that
//! arrive by federation — as soon as the report is applied.

use std::sync::Arc;
use std::time::Duration;

use ics_ca::payload::ISSUING_KEY_KINDS;
use ics_ca::{CaPayload, CaSubject, DEVICE_CA, DeviceCa, Purpose};
use ics_kernel::authority::{AUTHOR_KEY, PartyPayload};
use ics_kernel::{Algorithm, SubjectRef};

use crate::device_ca::IssuingCa;
use crate::host::Node;

/// Binds the device CA in the log, once, from the node holding the party
/// root key: the issuing key as an author key allowed to issue, the root,
/// the issuing CA. Every other node waits until it sees the binding.
pub async fn maintain(node: Arc<Node>) {
    let Some(ca) = node.device_ca.clone() else {
        return;
    };
    // The root key appears with the genesis, after this task starts.
    let root_path = node.config.data_dir.join("root.key");
    loop {
        match bind_once(&node, &ca, &root_path).await {
            Ok(true) => return,
            Ok(false) => {}
            Err(e) => {
                tracing::warn!(error = %format!("{e:#}"), "binding the device CA did not complete; retrying")
            }
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

async fn bind_once(
    node: &Arc<Node>,
    ca: &IssuingCa,
    root_path: &std::path::Path,
) -> anyhow::Result<bool> {
    let root_ca_id = {
        let key =
            ics_kernel::PublicKey::new(Algorithm::EcdsaP256Sha256, ca.root.public_key.clone())?;
        key.id().to_hex()
    };
    let (root_bound, issuing_bound, registered) = {
        let state = node.shared.read();
        let p = &state.projection;
        if p.party().is_none() || node.leader().is_none() {
            return Ok(false);
        }
        let cas = p.capability::<DeviceCa>();
        let bound = |id: &str| {
            matches!(
                cas.subject(&SubjectRef::new(DEVICE_CA, id.to_string())),
                Some(CaSubject::Ca(_))
            )
        };
        (
            bound(&root_ca_id),
            bound(&ca.id),
            p.key(&ca.key.key_id()).is_some(),
        )
    };
    if issuing_bound {
        return Ok(true);
    }
    if !root_path.exists() {
        return Ok(false);
    }
    let root = crate::keyfile::read(root_path)?;
    let head = crate::client::ChainHead::default;
    let mut events = Vec::new();
    if !registered {
        events.push(crate::client::signed(
            &root,
            SubjectRef::new(AUTHOR_KEY, ca.id.clone()),
            head(),
            PartyPayload::AuthorKeyRegistered {
                key: ca.key.public_key(),
                label: format!("device {} CA", ca.purpose.name()),
                allowed_kinds: ISSUING_KEY_KINDS.iter().map(|k| k.to_string()).collect(),
                not_after_ms: ca.cert.not_after_ms,
            },
        ));
    }
    if !root_bound {
        events.push(crate::client::signed(
            &root,
            SubjectRef::new(DEVICE_CA, root_ca_id.clone()),
            head(),
            CaPayload::CaBound {
                certificate: ca.root.der.clone(),
                purpose: Purpose::Root,
                issuer: String::new(),
            },
        ));
    }
    events.push(crate::client::signed(
        &root,
        SubjectRef::new(DEVICE_CA, ca.id.clone()),
        head(),
        CaPayload::CaBound {
            certificate: ca.cert.der.clone(),
            purpose: ca.purpose,
            issuer: root_ca_id,
        },
    ));
    node.append_upkeep(events).await?;
    tracing::info!(sha256 = %ca.cert.fingerprint_hex(), purpose = ca.purpose.name(), "bound the device CA in the log");
    Ok(true)
}

/// Revokes, from the leader, every current certificate of this party's CA
/// whose device is stolen or destroyed: on each applied status report (this
/// party's own, or one imported into another party's records), and over all
/// devices whenever this node becomes leader (what a previous leader had not
/// revoked yet).
pub async fn revoke_reported(node: Arc<Node>) {
    let Some(ca) = node.device_ca.clone() else {
        return;
    };
    let mut count_rx = node.shared.event_count.subscribe();
    let mut next = *count_rx.borrow_and_update() + 1;
    // A full scan: on becoming leader, and after a revocation that did not
    // go through (a refused append writes none of its events).
    let mut scan_all = false;
    let mut was_leader = false;
    loop {
        let count = *count_rx.borrow_and_update();
        let leader = node.raft.is_leader();
        let devices = if leader && (!was_leader || scan_all) {
            None
        } else {
            Some(reported_devices(&node, next, count))
        };
        next = count + 1;
        was_leader = leader;
        scan_all = false;
        if leader {
            let due = due_revocations(&node, &ca, devices.as_ref());
            for chunk in due.chunks(REVOCATIONS_PER_APPEND) {
                let n = chunk.len();
                match node.append_upkeep(chunk.to_vec()).await {
                    Ok(()) => tracing::info!(
                        certificates = n,
                        "revoked the certificates of devices reported stolen or destroyed"
                    ),
                    Err(e) => {
                        scan_all = true;
                        tracing::warn!(error = %format!("{e:#}"), "revoking reported devices' certificates did not complete; all devices are looked at again")
                    }
                }
            }
        }
        tokio::select! {
            changed = count_rx.changed() => if changed.is_err() { return },
            // A leadership change needs no new event to be acted on.
            () = tokio::time::sleep(Duration::from_secs(1)) => {}
        }
    }
}

/// Revocations per append: far below the batch limit, so one refused event
/// holds back few others.
const REVOCATIONS_PER_APPEND: usize = 64;

/// The devices (namespace, id) whose status events, or certificates, were
/// applied at positions `from..=to` (a certificate issued for a device whose
/// report was applied just before it is revoked too).
fn reported_devices(
    node: &Node,
    from: u64,
    to: u64,
) -> std::collections::BTreeSet<(String, String)> {
    let status_message = ics_identity::payload::DEVICE_STATUS_CHANGED.message;
    let issued_message = ics_ca::payload::DEVICE_CERT_ISSUED.message;
    let mut out = std::collections::BTreeSet::new();
    for index in from..=to {
        let Ok(Some(stored)) = crate::log::store::stored_event(&node.shared.db, index) else {
            continue;
        };
        // The body only: the event was verified when it was applied.
        let Ok(body) = ics_kernel::EventBody::decode(&stored.envelope.body) else {
            continue;
        };
        if body.payload.message == status_message {
            let namespace = stored
                .imported
                .map_or_else(|| node.config.party.clone(), |(tag, _)| tag.namespace);
            out.insert((namespace, body.subject.id));
        } else if body.payload.message == issued_message && stored.imported.is_none() {
            let applied = node.shared.read();
            let certs = applied.projection.capability::<DeviceCa>();
            if let Some((_, cert)) = ics_ca::query::cert_by_serial(certs, &body.subject.id) {
                out.insert((cert.device_namespace.clone(), cert.device.clone()));
            }
        }
    }
    out
}

/// The revocations due: current certificates of this node's CA whose device
/// (of `devices`, or any) is stolen or destroyed, signed by the CA key.
fn due_revocations(
    node: &Node,
    ca: &IssuingCa,
    devices: Option<&std::collections::BTreeSet<(String, String)>>,
) -> Vec<ics_kernel::Envelope> {
    use ics_identity::payload::DeviceStatus;
    let applied = node.shared.read();
    let own = &applied.projection;
    let certs = own.capability::<DeviceCa>();
    let status_of = |namespace: &str, device: &str| {
        let projection = if namespace == node.config.party {
            Some(own)
        } else {
            applied
                .mirrors
                .parties
                .get(namespace)
                .map(|m| &m.projection)
        };
        match projection?
            .capability::<ics_identity::Identity>()
            .subject(&SubjectRef::new(ics_identity::DEVICE, device.to_string()))?
            .detail
        {
            ics_identity::Detail::Device { status, .. } => Some(status),
            _ => None,
        }
    };
    let candidates: Vec<&(String, String)> = match devices {
        Some(d) => d.iter().collect(),
        None => certs.index().by_device.keys().collect(),
    };
    let mut events = Vec::new();
    for (namespace, device) in candidates {
        let reason = match status_of(namespace, device) {
            Some(DeviceStatus::Stolen) => ics_ca::RevocationReason::KeyCompromise,
            Some(DeviceStatus::Destroyed) => ics_ca::RevocationReason::CessationOfOperation,
            _ => continue,
        };
        for (serial, cert) in ics_ca::query::certs_of_device(certs, namespace, device) {
            if cert.revoked.is_some() || cert.ca != ca.id {
                continue;
            }
            let subject = SubjectRef::new(ics_ca::DEVICE_CERT, serial.to_string());
            events.push(crate::client::signed(
                &ca.key,
                subject.clone(),
                Node::chain_head(own, &subject),
                CaPayload::CertRevoked {
                    reason,
                    comment: format!(
                        "device {namespace}/{device} reported {}",
                        match reason {
                            ics_ca::RevocationReason::KeyCompromise => "stolen",
                            _ => "destroyed",
                        }
                    ),
                },
            ));
        }
    }
    events
}
