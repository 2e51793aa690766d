//! Generated protobuf and gRPC code for the ICS API, one module per protobuf
//! package, and the codec its services use. Nothing else lives here: domain
//! types and their validation are in `ics-kernel` and the capability crates.

pub mod codec;

pub mod ics {
    pub mod core {
        pub mod v1 {
            #![allow(clippy::all, clippy::pedantic)]
            tonic::include_proto!("ics.core.v1");
        }
    }
    pub mod identity {
        pub mod v1 {
            #![allow(clippy::all, clippy::pedantic)]
            tonic::include_proto!("ics.identity.v1");
        }
    }
    pub mod pki {
        pub mod v1 {
            #![allow(clippy::all, clippy::pedantic)]
            tonic::include_proto!("ics.pki.v1");
        }
    }
    pub mod ca {
        pub mod v1 {
            #![allow(clippy::all, clippy::pedantic)]
            tonic::include_proto!("ics.ca.v1");
        }
    }
    pub mod federation {
        pub mod v1 {
            #![allow(clippy::all, clippy::pedantic)]
            tonic::include_proto!("ics.federation.v1");
        }
    }
    pub mod policy {
        pub mod v1 {
            #![allow(clippy::all, clippy::pedantic)]
            tonic::include_proto!("ics.policy.v1");
        }
    }
    pub mod tlog {
        pub mod v1 {
            #![allow(clippy::all, clippy::pedantic)]
            tonic::include_proto!("ics.tlog.v1");
        }
    }
}

pub use ics::ca::v1 as ca_v1;
pub use ics::core::v1 as core_v1;
pub use ics::federation::v1 as federation_v1;
pub use ics::identity::v1 as identity_v1;
pub use ics::pki::v1 as pki_v1;
pub use ics::policy::v1 as policy_v1;
pub use ics::tlog::v1 as tlog_v1;
