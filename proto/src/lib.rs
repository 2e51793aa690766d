//! Generated protobuf and gRPC code for the ICS API. Nothing else lives here:
//! domain types and their validation are in `ics-node`.

pub mod v1 {
    #![allow(clippy::all, clippy::pedantic)]
    tonic::include_proto!("ics.v1");
}
