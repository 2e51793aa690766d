//! The `TransparencyLog` gRPC service: the committed checkpoints, and
//! inclusion and consistency proofs for an explicit tree size, read from this
//! replica's applied tree (any replica that has applied that size gives the
//! same answer).

use ics_kernel::EventId;
use ics_proto::tlog_v1 as pb;
use ics_proto::tlog_v1::transparency_log_server::TransparencyLog;
use ics_tlog::merkle::{Hash, consistency_proof, inclusion_proof, root};
use ics_tlog::{Tlog, checkpoint_subject, committed_checkpoint, key_of};
use tonic::{Code, Request, Response, Status};

use super::Api;
use crate::errors::{internal, rpc_error};
use crate::log::store::split_stored;

/// The tree size a request means (0: this replica's), or why not.
fn size_asked(asked: u64, applied: u64, what: &str) -> Result<u64, Status> {
    match asked {
        0 => Ok(applied),
        n if n > applied => Err(rpc_error(
            Code::OutOfRange,
            "TREE_SIZE_AHEAD",
            format!(
                "{what} {n} is beyond the {applied} events this node has applied; retry, or ask another node"
            ),
        )),
        n => Ok(n),
    }
}

fn hashes(h: Vec<Hash>) -> Vec<Vec<u8>> {
    h.into_iter().map(|h| h.to_vec()).collect()
}

#[tonic::async_trait]
impl TransparencyLog for Api {
    async fn checkpoint(
        &self,
        req: Request<pb::CheckpointRequest>,
    ) -> Result<Response<pb::CheckpointResponse>, Status> {
        let size = req.into_inner().size;
        let applied = self.node.shared.read();
        let tlog = applied.projection.capability::<Tlog>();
        let asked = (size != 0).then_some(size);
        let Some(checkpoint) = committed_checkpoint(tlog, asked) else {
            return Err(rpc_error(
                Code::NotFound,
                "NO_CHECKPOINT",
                match asked {
                    Some(n) => format!("this node has applied no checkpoint of size {n}"),
                    None => "this node has applied no checkpoint yet".to_string(),
                },
            ));
        };
        let key = key_of(tlog, checkpoint)
            .ok_or_else(|| internal("checkpoint", "its log key is not bound"))?;
        let vkey = key
            .verifier()
            .ok_or_else(|| internal("checkpoint", "its log key is not an Ed25519 point"))?
            .vkey();
        Ok(Response::new(pb::CheckpointResponse {
            note: checkpoint.served_note(),
            size: checkpoint.size,
            origin: key.origin.clone(),
            vkey,
            log_index: checkpoint.position,
            witnesses: checkpoint
                .cosignatures
                .iter()
                .map(|c| c.witness.clone())
                .collect(),
        }))
    }

    async fn add_cosignature(
        &self,
        req: Request<pb::AddCosignatureRequest>,
    ) -> Result<Response<pb::AddCosignatureResponse>, Status> {
        let caller = super::caller::rate_key(&req);
        let req = req.into_inner();
        let node = &self.node;
        let Some(key) = node.log_key.as_ref() else {
            return Err(rpc_error(
                Code::Unavailable,
                "NO_LOG_KEY",
                "this node holds no transparency log key; ask another node of the party",
            ));
        };
        let line = req
            .signature_line
            .strip_suffix('\n')
            .unwrap_or(&req.signature_line);
        let limit = ics_tlog::note::MAX_NOTE_BYTES;
        if line.len() > limit || req.witness.len() > limit {
            return Err(rpc_error(
                Code::InvalidArgument,
                "MALFORMED_REQUEST",
                format!("a signature line or witness name over {limit} bytes"),
            ));
        }
        let subject = checkpoint_subject(req.size);
        let head = crate::host::Node::chain_head(&node.shared.read().projection, &subject);
        let event = ics_client::signed(
            key,
            subject,
            head,
            ics_tlog::TlogPayload::CosignatureAdded {
                witness: req.witness,
                signature_line: line.to_string(),
            },
        );
        let out = node.append_signed(event, &caller).await?;
        let log_index = out.events.first().map_or(0, |e| e.index);
        Ok(Response::new(pb::AddCosignatureResponse { log_index }))
    }

    async fn inclusion_proof(
        &self,
        req: Request<pb::InclusionProofRequest>,
    ) -> Result<Response<pb::InclusionProofResponse>, Status> {
        let req = req.into_inner();
        let id = EventId(<[u8; 32]>::try_from(req.event_id.as_slice()).map_err(|_| {
            rpc_error(
                Code::InvalidArgument,
                "MALFORMED_REQUEST",
                format!("event_id is {} bytes, not 32", req.event_id.len()),
            )
        })?);
        let shared = &self.node.shared;
        let applied = shared.read();
        let Some(index) = applied.projection.event_index(&id) else {
            return Err(rpc_error(
                Code::NotFound,
                "EVENT_NOT_FOUND",
                format!("no applied event {} on this node", hex::encode(id.0)),
            ));
        };
        let size = size_asked(req.tree_size, applied.tree.size(), "tree_size")?;
        let leaf = index - 1;
        if leaf >= size {
            return Err(rpc_error(
                Code::OutOfRange,
                "LEAF_BEYOND_TREE",
                format!(
                    "event {} is leaf {leaf}, not in the tree of {size} leaves",
                    hex::encode(id.0)
                ),
            ));
        }
        let tiles = shared.db.tiles();
        let nodes = applied.tree.nodes(&tiles);
        let proof =
            inclusion_proof(&nodes, leaf, size).map_err(|e| internal("inclusion proof", e))?;
        let root = root(&nodes, size).map_err(|e| internal("tree root", e))?;
        drop(applied);
        let stored = shared
            .db
            .stored(index)
            .map_err(|e| internal("read event", e))?
            .ok_or_else(|| internal("read event", format!("applied event {index} is missing")))?;
        let (salt, envelope) =
            split_stored(&stored, index).map_err(|e| internal("read event", e))?;
        Ok(Response::new(pb::InclusionProofResponse {
            leaf_index: leaf,
            tree_size: size,
            root: root.to_vec(),
            leaf_entry: ics_tlog::leaf_entry(salt, envelope).to_vec(),
            hashes: hashes(proof),
        }))
    }

    async fn consistency_proof(
        &self,
        req: Request<pb::ConsistencyProofRequest>,
    ) -> Result<Response<pb::ConsistencyProofResponse>, Status> {
        let req = req.into_inner();
        let applied = self.node.shared.read();
        let new = size_asked(req.new_size, applied.tree.size(), "new_size")?;
        if req.old_size > new {
            return Err(rpc_error(
                Code::InvalidArgument,
                "BAD_TREE_SIZES",
                format!("old_size {} is beyond new_size {new}", req.old_size),
            ));
        }
        let tiles = self.node.shared.db.tiles();
        let nodes = applied.tree.nodes(&tiles);
        let proof = consistency_proof(&nodes, req.old_size, new)
            .map_err(|e| internal("consistency proof", e))?;
        let old_root = root(&nodes, req.old_size).map_err(|e| internal("tree root", e))?;
        let new_root = root(&nodes, new).map_err(|e| internal("tree root", e))?;
        Ok(Response::new(pb::ConsistencyProofResponse {
            old_size: req.old_size,
            new_size: new,
            old_root: old_root.to_vec(),
            new_root: new_root.to_vec(),
            hashes: hashes(proof),
        }))
    }
}
