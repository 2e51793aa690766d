//! The `EventLog` service: append, events, histories, watch, subjects, and
//! (for now) identity's queries: search, Verify, OpenPGP export.

use futures::StreamExt;
use ics_identity::Identity;
use ics_identity::query::{self, SearchQuery, VerifyTarget};
use ics_kernel::projection::SubjectView;
use ics_kernel::{EventId, KeyId, SubjectRef};
use ics_proto::core_v1 as pb;
use ics_proto::core_v1::event_log_server::EventLog;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Code, Request, Response, Status};

use super::{Api, EventStream, forward_read, forwarded, is_forwarded};
use crate::codec;
use crate::errors::{refusal_status, rpc_error};

#[tonic::async_trait]
impl EventLog for Api {
    async fn append(
        &self,
        req: Request<pb::AppendRequest>,
    ) -> Result<Response<pb::AppendResponse>, Status> {
        let origin = crate::forward::origin(&req);
        let caller = super::caller::rate_key(&req);
        self.node
            .append(req.into_inner(), origin, &caller)
            .await
            .map(Response::new)
    }

    async fn get_event(
        &self,
        req: Request<pb::GetEventRequest>,
    ) -> Result<Response<pb::StoredEvent>, Status> {
        let from_follower = is_forwarded(&req);
        let r = req.into_inner();
        let id = EventId::from_slice(&r.event_id).ok_or_else(|| {
            rpc_error(
                Code::InvalidArgument,
                "INVALID_REQUEST",
                "event_id must be 32 bytes",
            )
        })?;
        forward_read!(self, r, r.consistency, from_follower, get_event);
        let index = self
            .node
            .shared
            .read()
            .projection
            .event_index(&id)
            .ok_or_else(|| rpc_error(Code::NotFound, "NOT_FOUND", format!("no event {id}")))?;
        self.node.stored_event(index).map(Response::new)
    }

    type HistoryStream = EventStream;

    async fn history(
        &self,
        req: Request<pb::HistoryRequest>,
    ) -> Result<Response<EventStream>, Status> {
        let from_follower = is_forwarded(&req);
        let r = req.into_inner();
        let subject = codec::subject_from_pb(r.subject.clone()).map_err(|e| refusal_status(&e))?;
        if self.node.read_gate(r.consistency, from_follower).await? {
            let mut c = self.node.leader_client(self.node.leader())?;
            let stream = c.history(forwarded(r)).await?.into_inner();
            return Ok(Response::new(Box::pin(stream)));
        }
        let indexes = self.node.with_subject(&subject, |l| Ok(l.history))?;
        let node = self.node.clone();
        let stream = futures::stream::iter(indexes).map(move |i| node.stored_event(i));
        Ok(Response::new(Box::pin(stream)))
    }

    type WatchStream = EventStream;

    async fn watch(&self, req: Request<pb::WatchRequest>) -> Result<Response<EventStream>, Status> {
        let from = req.into_inner().from_index.max(1);
        let Ok(permit) = self.node.watchers.clone().try_acquire_owned() else {
            return Err(rpc_error(
                Code::ResourceExhausted,
                "WATCHERS_FULL",
                format!(
                    "this node serves {} watch streams already; retry later or watch another node",
                    self.node.config.limits.max_watchers
                ),
            ));
        };
        let (tx, rx) = mpsc::channel(64);
        let node = self.node.clone();
        let mut count_rx = node.shared.event_count.subscribe();
        tokio::spawn(async move {
            let _permit = permit;
            let mut next = from;
            loop {
                let count = *count_rx.borrow_and_update();
                while next <= count {
                    let item = node.stored_event(next);
                    let failed = item.is_err();
                    if tx.send(item).await.is_err() || failed {
                        return;
                    }
                    next += 1;
                }
                tokio::select! {
                    changed = count_rx.changed() => if changed.is_err() { return },
                    _ = tx.closed() => return,
                }
            }
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }

    async fn get_subject(
        &self,
        req: Request<pb::GetSubjectRequest>,
    ) -> Result<Response<pb::SubjectState>, Status> {
        let from_follower = is_forwarded(&req);
        let r = req.into_inner();
        let subject = codec::subject_from_pb(r.subject.clone()).map_err(|e| refusal_status(&e))?;
        forward_read!(self, r, r.consistency, from_follower, get_subject);
        self.node.with_subject(&subject, |l| {
            Ok(Response::new(pb::SubjectState {
                history: l.history,
                namespace: l.namespace.unwrap_or_default().to_string(),
                ..subject_state_pb(&l.view)
            }))
        })
    }

    async fn export_open_pgp(
        &self,
        req: Request<pb::GetSubjectRequest>,
    ) -> Result<Response<pb::OpenPgpExport>, Status> {
        let from_follower = is_forwarded(&req);
        let r = req.into_inner();
        let subject = codec::subject_from_pb(r.subject.clone()).map_err(|e| refusal_status(&e))?;
        forward_read!(self, r, r.consistency, from_follower, export_open_pgp);
        let export = self.node.with_subject(&subject, |l| {
            l.projection
                .capability::<Identity>()
                .subject(&subject)
                .and_then(query::openpgp_export)
                .ok_or_else(|| {
                    rpc_error(
                        Code::FailedPrecondition,
                        "NO_OPENPGP",
                        format!("{subject} was registered without OpenPGP signatures"),
                    )
                })
        })?;
        let (fingerprint, revoked) = match &export {
            query::OpenPgpExport::Certificate {
                fingerprint,
                revoked,
                ..
            } => (fingerprint.clone(), *revoked),
            query::OpenPgpExport::Signature { .. } => (String::new(), false),
        };
        Ok(Response::new(pb::OpenPgpExport {
            armored: export.armored(),
            data: export.binary().to_vec(),
            fingerprint,
            revoked,
        }))
    }

    async fn search(
        &self,
        req: Request<pb::SearchRequest>,
    ) -> Result<Response<pb::SearchResponse>, Status> {
        let from_follower = is_forwarded(&req);
        let r = req.into_inner();
        let query = search_query(r.by.clone())?;
        let limit = page_size(r.page_size)?;
        let after = page_token(&r.page_token, parse_page_token)?;
        forward_read!(self, r, r.consistency, from_follower, search);
        let applied = self.node.shared.read();
        let page = query::search(&applied.projection, &query, after.as_ref(), limit);
        Ok(Response::new(pb::SearchResponse {
            subjects: page.subjects.iter().map(subject_state_pb).collect(),
            next_page_token: page.next.map(|n| n.to_string()).unwrap_or_default(),
        }))
    }

    async fn verify(
        &self,
        req: Request<pb::VerifyRequest>,
    ) -> Result<Response<pb::VerifyResponse>, Status> {
        use pb::verify_request::What;
        let from_follower = is_forwarded(&req);
        let r = req.into_inner();
        let target = match r.what.clone() {
            Some(What::PublicKey(k)) => {
                let alg = codec::algorithm_from_pb(k.algorithm, "public_key.algorithm")
                    .map_err(|e| refusal_status(&e))?;
                let key = ics_kernel::PublicKey::new(alg, k.key).map_err(|e| {
                    rpc_error(
                        Code::InvalidArgument,
                        "INVALID_REQUEST",
                        format!("public_key: {e}"),
                    )
                })?;
                VerifyTarget::Key(key.id())
            }
            Some(What::KeyId(f)) => VerifyTarget::Key(KeyId::from_slice(&f).ok_or_else(|| {
                rpc_error(
                    Code::InvalidArgument,
                    "INVALID_REQUEST",
                    "key_id must be 32 bytes",
                )
            })?),
            Some(What::CodeDigest(d)) => {
                VerifyTarget::CodeDigest(d.as_slice().try_into().map_err(|_| {
                    rpc_error(
                        Code::InvalidArgument,
                        "INVALID_REQUEST",
                        "code_digest must be 32 bytes",
                    )
                })?)
            }
            None => {
                return Err(rpc_error(
                    Code::InvalidArgument,
                    "INVALID_REQUEST",
                    "verify needs public_key, key_id or code_digest",
                ));
            }
        };
        forward_read!(self, r, r.consistency, from_follower, verify);
        let applied = self.node.shared.read();
        let now = crate::client::now_ms();
        let (t, freshness) = verify_everywhere(&applied, &target, now);
        let latest = freshness.as_ref().and_then(|f| f.latest());
        Ok(Response::new(pb::VerifyResponse {
            stale: freshness.as_ref().is_some_and(|f| f.stale(now).is_some()),
            synced_via: latest.map(|l| l.0.to_string()).unwrap_or_default(),
            synced_ms: latest.map_or(0, |l| l.1),
            synced_size: latest.map_or(0, |l| l.2),
            trusted: t.trusted,
            reason: t.reason,
            subject: t.subject.as_ref().map(codec::subject_to_pb),
            status: t.status.unwrap_or_default().to_string(),
            registered_by: t.registered_by.map(|k| k.0.to_vec()).unwrap_or_default(),
            party: t.party.unwrap_or_default(),
            registered_at_index: t.registered_at.unwrap_or(0),
            as_of_index: applied.projection.event_count(),
        }))
    }

    async fn list_subjects(
        &self,
        req: Request<pb::ListSubjectsRequest>,
    ) -> Result<Response<pb::SearchResponse>, Status> {
        let from_follower = is_forwarded(&req);
        let r = req.into_inner();
        crate::capabilities::rules()
            .check_subject_kind(&r.kind)
            .map_err(|e| rpc_error(Code::InvalidArgument, "INVALID_REQUEST", e.to_string()))?;
        let limit = page_size(r.page_size)?;
        let after = page_token(&r.page_token, parse_page_token)?;
        forward_read!(self, r, r.consistency, from_follower, list_subjects);
        let applied = self.node.shared.read();
        let mut page: Vec<SubjectView<'_>> = applied
            .projection
            .subjects_of_kind(&r.kind, after.as_ref())
            .take(limit + 1)
            .collect();
        let next = if page.len() > limit {
            page.truncate(limit);
            page.last().map(|v| v.subject.to_string())
        } else {
            None
        };
        Ok(Response::new(pb::SearchResponse {
            subjects: page.iter().map(subject_state_pb).collect(),
            next_page_token: next.unwrap_or_default(),
        }))
    }

    async fn get_keys(
        &self,
        req: Request<pb::GetKeysRequest>,
    ) -> Result<Response<pb::GetKeysResponse>, Status> {
        let from_follower = is_forwarded(&req);
        let r = req.into_inner();
        let one = if r.key_id.is_empty() {
            None
        } else {
            Some(KeyId::from_slice(&r.key_id).ok_or_else(|| {
                rpc_error(
                    Code::InvalidArgument,
                    "INVALID_REQUEST",
                    "key_id must be 32 bytes",
                )
            })?)
        };
        let limit = page_size(r.page_size)?;
        let after = page_token(&r.page_token, KeyId::from_hex)?;
        forward_read!(self, r, r.consistency, from_follower, get_keys);
        let applied = self.node.shared.read();
        let projection = &applied.projection;
        if let Some(id) = one {
            let k = projection
                .key(&id)
                .ok_or_else(|| rpc_error(Code::NotFound, "NOT_FOUND", format!("no key {id}")))?;
            return Ok(Response::new(pb::GetKeysResponse {
                keys: vec![key_info_pb(&id, k)],
                next_page_token: String::new(),
            }));
        }
        let mut keys: Vec<_> = projection
            .keys_after(after.as_ref())
            .take(limit + 1)
            .collect();
        let next = if keys.len() > limit {
            keys.truncate(limit);
            keys.last().map(|(id, _)| id.to_hex())
        } else {
            None
        };
        Ok(Response::new(pb::GetKeysResponse {
            keys: keys.iter().map(|(id, k)| key_info_pb(id, k)).collect(),
            next_page_token: next.unwrap_or_default(),
        }))
    }
}

fn subject_state_pb(s: &SubjectView<'_>) -> pb::SubjectState {
    pb::SubjectState {
        subject: Some(codec::subject_to_pb(s.subject)),
        next_sequence: s.entry.next_sequence,
        last_event_id: s.entry.last_event.0.to_vec(),
        summary: s.summary.clone(),
        history: s.entry.history.clone(),
        status: s.status.unwrap_or_default().to_string(),
        registered_by: s.entry.registered_by.0.to_vec(),
        namespace: String::new(),
    }
}

/// Parses a page token ("kind/id", as a subject prints) of a known kind.
fn parse_page_token(token: &str) -> Option<SubjectRef> {
    SubjectRef::parse(token).filter(|s| crate::capabilities::rules().is_subject_kind(&s.kind))
}

const MAX_PAGE_SIZE: u32 = 1000;
const DEFAULT_PAGE_SIZE: u32 = 100;

/// A request's page size: the default for 0, refused over the limit.
fn page_size(requested: u32) -> Result<usize, Status> {
    match requested {
        0 => Ok(DEFAULT_PAGE_SIZE as usize),
        n if n > MAX_PAGE_SIZE => Err(rpc_error(
            Code::InvalidArgument,
            "INVALID_REQUEST",
            format!("page_size {n} is over the limit of {MAX_PAGE_SIZE}"),
        )),
        n => Ok(n as usize),
    }
}

/// A request's page token (empty for the first page), parsed by `parse`.
fn page_token<T>(token: &str, parse: impl Fn(&str) -> Option<T>) -> Result<Option<T>, Status> {
    if token.is_empty() {
        return Ok(None);
    }
    parse(token).map(Some).ok_or_else(|| {
        rpc_error(
            Code::InvalidArgument,
            "INVALID_REQUEST",
            format!("page_token {token:?} is not one this node issued"),
        )
    })
}

fn key_info_pb(id: &KeyId, k: &ics_kernel::projection::KeyState) -> pb::KeyInfo {
    pb::KeyInfo {
        key_id: id.0.to_vec(),
        public_key: Some(pb::PublicKey {
            algorithm: codec::algorithm_to_pb(k.public_key.algorithm()),
            key: k.public_key.bytes().to_vec(),
        }),
        party: k.party.clone(),
        label: k.label.clone(),
        root: k.allowed_kinds.is_none(),
        allowed_kinds: k.allowed_kinds.iter().flatten().cloned().collect(),
        registered_unix_ms: k.registered_ms,
        not_after_unix_ms: k.not_after_ms.unwrap_or(0),
        revoked: k.revoked,
    }
}

fn search_query(by: Option<pb::search_request::By>) -> Result<SearchQuery, Status> {
    use pb::search_request::By;
    let digest = |b: &[u8], name: &str| -> Result<[u8; 32], Status> {
        b.try_into().map_err(|_| {
            rpc_error(
                Code::InvalidArgument,
                "INVALID_REQUEST",
                format!("{name} must be 32 bytes, got {}", b.len()),
            )
        })
    };
    Ok(
        match by.ok_or_else(|| {
            rpc_error(
                Code::InvalidArgument,
                "INVALID_REQUEST",
                "search needs one of serial, attribute, code_name, code_digest, key_id",
            )
        })? {
            By::Serial(s) => SearchQuery::Serial(s),
            By::Attribute(a) => {
                let (name, value) = a.split_once('=').ok_or_else(|| {
                    rpc_error(
                        Code::InvalidArgument,
                        "INVALID_REQUEST",
                        format!("attribute {a:?} must be NAME=VALUE"),
                    )
                })?;
                SearchQuery::Attribute {
                    name: name.to_string(),
                    value: value.to_string(),
                }
            }
            By::CodeName(n) => SearchQuery::CodeName(n),
            By::CodeDigest(d) => SearchQuery::CodeDigest(digest(&d, "code_digest")?),
            By::KeyId(f) => SearchQuery::KeyId(KeyId(digest(&f, "key_id")?)),
        },
    )
}

/// `Verify` over this party's records, then over the records it imported,
/// party by party in name order: the first that knows the key or digest
/// answers (an imported record's position mapped to this log's).
fn verify_everywhere(
    applied: &crate::log::store::Applied,
    target: &query::VerifyTarget,
    now_ms: i64,
) -> (query::Trust, Option<ics_federation::Freshness>) {
    let own = query::verify(&applied.projection, target, now_ms);
    if own.subject.is_some() || own.trusted {
        return (own, None);
    }
    for (namespace, mirror) in &applied.mirrors.parties {
        let mut t = query::verify(&mirror.projection, target, now_ms);
        if t.subject.is_some() {
            t.registered_at = t
                .registered_at
                .and_then(|p| {
                    mirror
                        .positions
                        .get(usize::try_from(p).ok()?.checked_sub(1)?)
                })
                .copied();
            let freshness = applied.freshness(namespace);
            if let Some(why) = freshness.stale(now_ms) {
                // Past the policy's staleness a verdict may be outdated
                // either way: neither trusted nor revoked, unknown.
                t.trusted = false;
                t.status = Some("unknown");
                t.reason = format!("{why}; was: {}", t.reason);
            }
            return (t, Some(freshness));
        }
    }
    (own, None)
}
