//! Limits the rules enforce. Every one has a name and a default.

use serde::{Deserialize, Serialize};

use crate::refusal::Refusal;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EventLimits {
    pub max_body_bytes: usize,
    pub max_signatures: usize,
    pub max_records_per_subject: u64,
    pub max_attributes: usize,
    pub max_text_bytes: usize,
    pub max_batch_events: usize,
}

impl EventLimits {
    /// An append request holds at least one event and at most `max_batch_events`.
    pub fn check_batch_len(&self, count: usize) -> Result<(), Refusal> {
        if count == 0 {
            return Err(Refusal::EmptyBatch);
        }
        if count > self.max_batch_events {
            return Err(Refusal::BatchTooLarge {
                count,
                limit: self.max_batch_events,
            });
        }
        Ok(())
    }

    /// Limits for replaying events that were already accepted: only the rules
    /// decide, so a later change of a limit cannot make a replica diverge.
    pub fn unbounded() -> Self {
        EventLimits {
            max_body_bytes: usize::MAX,
            max_signatures: usize::MAX,
            max_records_per_subject: u64::MAX,
            max_attributes: usize::MAX,
            max_text_bytes: usize::MAX,
            max_batch_events: usize::MAX,
        }
    }

    /// Free text: bounded, no control characters.
    pub fn check_text(&self, field: &str, value: &str) -> Result<(), Refusal> {
        if value.len() > self.max_text_bytes {
            return Err(Refusal::field(
                field,
                format!(
                    "{} bytes, over the limit of {}",
                    value.len(),
                    self.max_text_bytes
                ),
            ));
        }
        if value.chars().any(char::is_control) {
            return Err(Refusal::field(field, "contains control characters"));
        }
        Ok(())
    }
}

/// A name: 1-128 characters of `[A-Za-z0-9-_.:]`.
pub fn check_name(field: &str, value: &str) -> Result<(), Refusal> {
    let ok = !value.is_empty()
        && value.len() <= 128
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(Refusal::field(
            field,
            format!("{value:?} must be 1-128 characters of [A-Za-z0-9-_.:]"),
        ))
    }
}

impl Default for EventLimits {
    fn default() -> Self {
        EventLimits {
            max_body_bytes: 64 * 1024,
            max_signatures: 8,
            max_records_per_subject: 1024,
            max_attributes: 64,
            max_text_bytes: 1024,
            max_batch_events: 1000,
        }
    }
}
