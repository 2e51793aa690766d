//! Limits the rules enforce. Every one has a name and a default.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::refusal::Refusal;
use crate::wire::{Reader, Writer};

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

    /// Free text: bounded, no control or format characters (a bidi override
    /// or a zero-width character would make one text display as another).
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
        if let Some(c) = value.chars().find(|c| is_format_char(*c)) {
            return Err(Refusal::field(
                field,
                format!("contains the format character U+{:04X}", c as u32),
            ));
        }
        Ok(())
    }
}

/// Unicode general category Cf (format), which holds the bidi controls
/// (U+061C, U+200E-U+200F, U+202A-U+202E, U+2066-U+2069), the zero-width
/// characters and the other invisible formatting code points.
fn is_format_char(c: char) -> bool {
    matches!(c as u32,
        0x00AD | 0x0600..=0x0605 | 0x061C | 0x06DD | 0x070F | 0x0890..=0x0891 | 0x08E2
        | 0x180E | 0x200B..=0x200F | 0x202A..=0x202E | 0x2060..=0x2064 | 0x2066..=0x206F
        | 0xFEFF | 0xFFF9..=0xFFFB | 0x110BD | 0x110CD | 0x13430..=0x1343F
        | 0x1BCA0..=0x1BCA3 | 0x1D173..=0x1D17A | 0xE0001 | 0xE0020..=0xE007F)
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

/// The kernel's name in the active rules, and its version: bumped whenever
/// a kernel verdict could change.
pub const KERNEL: &str = "kernel";
/// 2: free text refuses Unicode format characters (bidi overrides).
pub const KERNEL_VERSION: u32 = 2;

/// The rules a party's log activated (at genesis, then by root-signed
/// `rules-changed` events): the limits every replica applies, and the
/// capabilities that may act, each at one version (`kernel` included).
/// Replicated state, never node config: every replica reaches the same verdict.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActiveRules {
    pub limits: EventLimits,
    pub capabilities: BTreeMap<String, u32>,
}

impl ActiveRules {
    /// Checks the rules are usable: positive limits, named capabilities
    /// with positive versions, the kernel among them.
    pub fn check(&self) -> Result<(), Refusal> {
        let l = &self.limits;
        let positive = [
            ("max_body_bytes", l.max_body_bytes as u64),
            ("max_signatures", l.max_signatures as u64),
            ("max_records_per_subject", l.max_records_per_subject),
            ("max_attributes", l.max_attributes as u64),
            ("max_text_bytes", l.max_text_bytes as u64),
            ("max_batch_events", l.max_batch_events as u64),
        ];
        if let Some((name, _)) = positive.iter().find(|(_, v)| *v == 0) {
            return Err(Refusal::field(
                &format!("rules.limits.{name}"),
                "must be positive",
            ));
        }
        if self.capabilities.len() > 64 {
            return Err(Refusal::field("rules.capabilities", "at most 64"));
        }
        for (name, version) in &self.capabilities {
            check_name("rules.capabilities.name", name)?;
            if *version == 0 {
                return Err(Refusal::field(
                    "rules.capabilities.version",
                    format!("{name}: versions start at 1"),
                ));
            }
        }
        if !self.capabilities.contains_key(KERNEL) {
            return Err(Refusal::field(
                "rules.capabilities",
                "must name the kernel's version",
            ));
        }
        Ok(())
    }

    /// `name/version` pairs, as people read them.
    pub fn version_text(&self) -> String {
        let parts: Vec<String> = self
            .capabilities
            .iter()
            .map(|(n, v)| format!("{n}/{v}"))
            .collect();
        parts.join(" ")
    }

    /// Encodes as `ics.core.v1.Rules`.
    pub fn encode(&self) -> Vec<u8> {
        let l = &self.limits;
        let limits = Writer::new()
            .u64(1, l.max_body_bytes as u64)
            .u64(2, l.max_signatures as u64)
            .u64(3, l.max_records_per_subject)
            .u64(4, l.max_attributes as u64)
            .u64(5, l.max_text_bytes as u64)
            .u64(6, l.max_batch_events as u64)
            .finish();
        let mut w = Writer::new();
        w.message(1, &limits);
        for (name, version) in &self.capabilities {
            let c = Writer::new()
                .string(1, name)
                .u64(2, u64::from(*version))
                .finish();
            w.message(2, &c);
        }
        w.finish()
    }

    /// Decodes an `ics.core.v1.Rules`.
    pub fn decode(bytes: &[u8]) -> Result<Self, Refusal> {
        let mut r = Reader::new("Rules", bytes);
        let mut limits = None;
        let mut capabilities = BTreeMap::new();
        while let Some((f, v)) = r.next(&[2])? {
            match f {
                1 => limits = Some(decode_limits(v.bytes("rules.limits")?)?),
                2 => {
                    let mut c = Reader::new("CapabilityVersion", v.bytes("rules.capabilities")?);
                    let (mut name, mut version) = (String::new(), 0);
                    while let Some((f, v)) = c.next(&[])? {
                        match f {
                            1 => name = v.string("rules.capabilities.name")?,
                            2 => version = v.u32("rules.capabilities.version")?,
                            _ => {}
                        }
                    }
                    if capabilities.insert(name.clone(), version).is_some() {
                        return Err(Refusal::field(
                            "rules.capabilities",
                            format!("{name:?} named twice"),
                        ));
                    }
                }
                _ => {}
            }
        }
        Ok(ActiveRules {
            limits: limits.ok_or_else(|| Refusal::field("rules.limits", "missing"))?,
            capabilities,
        })
    }
}

fn decode_limits(bytes: &[u8]) -> Result<EventLimits, Refusal> {
    let mut r = Reader::new("EventLimits", bytes);
    let mut l = EventLimits {
        max_body_bytes: 0,
        max_signatures: 0,
        max_records_per_subject: 0,
        max_attributes: 0,
        max_text_bytes: 0,
        max_batch_events: 0,
    };
    let size =
        |v: u64, field: &str| usize::try_from(v).map_err(|_| Refusal::field(field, "out of range"));
    while let Some((f, v)) = r.next(&[])? {
        match f {
            1 => l.max_body_bytes = size(v.u64("max_body_bytes")?, "max_body_bytes")?,
            2 => l.max_signatures = size(v.u64("max_signatures")?, "max_signatures")?,
            3 => l.max_records_per_subject = v.u64("max_records_per_subject")?,
            4 => l.max_attributes = size(v.u64("max_attributes")?, "max_attributes")?,
            5 => l.max_text_bytes = size(v.u64("max_text_bytes")?, "max_text_bytes")?,
            6 => l.max_batch_events = size(v.u64("max_batch_events")?, "max_batch_events")?,
            _ => {}
        }
    }
    Ok(l)
}
