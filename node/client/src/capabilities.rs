//! The one list of the capabilities this node runs. Their order and
//! versions are part of the rules version.

use std::sync::{Arc, OnceLock};

use ics_kernel::Rules;

/// The rules every node of this build applies.
pub fn rules() -> &'static Arc<Rules> {
    static RULES: OnceLock<Arc<Rules>> = OnceLock::new();
    RULES.get_or_init(|| {
        Arc::new(
            Rules::builder()
                .add::<ics_identity::Identity>()
                .add::<ics_pki::Pki>()
                .add::<ics_ca::DeviceCa>()
                .add::<ics_tlog::Tlog>()
                .add::<ics_policies::Policies>()
                .add::<ics_federation::Federation>()
                .build(),
        )
    })
}

/// An empty projection under these rules.
pub fn projection() -> ics_kernel::Projection {
    ics_kernel::Projection::new(rules().clone())
}

/// The rules a new party's genesis activates: `limits` and what this build runs.
pub fn genesis_rules(limits: ics_kernel::EventLimits) -> ics_kernel::ActiveRules {
    ics_kernel::ActiveRules {
        limits,
        capabilities: rules().versions(),
    }
}
