//! The policy's verdict on one (peer, subject, kind), at a time the caller
//! passes in. Pure, and explained: a verdict names the rule that allowed it,
//! or, for a refusal, why each rule naming that peer did not apply.

use std::fmt;

use crate::descriptor::{Descriptor, Domain, Rule, rule_label};

/// The subjects of a party's authority: its genesis and rules, the parties
/// it recognized, its author keys. A peer the policy names may always read
/// them (it needs the keys to verify anything it reads), and this party
/// imports a peer's authority whenever it imports anything from it.
///
/// A party's device CAs (the certificates its root key bound) are authority
/// too: a peer checks the certificates it reads against them.
pub const AUTHORITY_SUBJECT_KINDS: [&str; 3] = ["party", "author-key", "device-ca"];

/// Which way the records go.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    /// A peer reads from this party.
    Read,
    /// This party imports from a peer.
    Import,
}

impl Direction {
    pub fn name(self) -> &'static str {
        match self {
            Direction::Read => "read",
            Direction::Import => "import",
        }
    }
}

/// What the policy reads of a subject.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Facts<'a> {
    /// The subject kind: `device`, `service`, `code`, `party`, `author-key`, …
    pub subject_kind: &'a str,
    pub subject_id: &'a str,
    /// The party whose log the subject's history belongs to.
    pub namespace: &'a str,
    pub serial: Option<&'a str>,
    /// A service's or code's name.
    pub name: Option<&'a str>,
    pub attributes: &'a [(String, String)],
}

impl Facts<'_> {
    fn attribute(&self, name: &str) -> Option<&str> {
        self.attributes
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// A verdict and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decision {
    pub allowed: bool,
    /// The rule that allowed it (`read rule #2 "status"`, or `authority`).
    pub rule: Option<String>,
    /// For a refusal: why no rule applied, one line per rule naming the peer.
    pub reasons: Vec<String>,
}

impl fmt::Display for Decision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.allowed, &self.rule) {
            (true, Some(rule)) => write!(f, "allowed by {rule}"),
            (true, None) => write!(f, "allowed"),
            (false, _) => {
                write!(f, "refused (deny by default)")?;
                for reason in &self.reasons {
                    write!(f, "; {reason}")?;
                }
                Ok(())
            }
        }
    }
}

impl Descriptor {
    /// Whether `peer` may read (or this party imports from `peer`) an event
    /// of `kind` about the subject `facts` describe, at `now_ms`.
    pub fn decide(
        &self,
        direction: Direction,
        peer: &str,
        facts: &Facts<'_>,
        kind: &str,
        now_ms: i64,
    ) -> Decision {
        let refused = |reasons: Vec<String>| Decision {
            allowed: false,
            rule: None,
            reasons,
        };
        if self.peer(peer).is_none() {
            return refused(vec![format!("{peer:?} is not a peer of this policy")]);
        }
        let rules = match direction {
            Direction::Read => &self.reads,
            Direction::Import => &self.imports,
        };
        if AUTHORITY_SUBJECT_KINDS.contains(&facts.subject_kind) {
            return self.decide_authority(direction, peer, facts, rules);
        }
        let mut reasons = Vec::new();
        for (i, rule) in rules.iter().enumerate().filter(|(_, r)| r.peer == peer) {
            let label = rule_label(direction.name(), i, rule);
            match self.rule_applies(rule, facts, kind, now_ms) {
                Ok(()) => {
                    return Decision {
                        allowed: true,
                        rule: Some(label),
                        reasons: Vec::new(),
                    };
                }
                Err(why) => reasons.push(format!("{label}: {why}")),
            }
        }
        if reasons.is_empty() {
            reasons.push(format!("no {} rule names peer {peer:?}", direction.name()));
        }
        refused(reasons)
    }

    /// A peer named by the policy reads this party's authority; this party
    /// imports a namespace's authority from a peer it imports that
    /// namespace's records from.
    fn decide_authority(
        &self,
        direction: Direction,
        peer: &str,
        facts: &Facts<'_>,
        rules: &[Rule],
    ) -> Decision {
        let allowed = |rule: &str| Decision {
            allowed: true,
            rule: Some(rule.to_string()),
            reasons: Vec::new(),
        };
        match direction {
            Direction::Read => allowed("authority (every peer reads the keys it verifies with)"),
            Direction::Import => {
                let imports_namespace = rules.iter().filter(|r| r.peer == peer).any(|r| {
                    self.domain(&r.domain).is_some_and(|d| {
                        d.namespace
                            .as_deref()
                            .is_none_or(|ns| ns == facts.namespace)
                    })
                });
                if imports_namespace {
                    allowed("authority (of a namespace imported from this peer)")
                } else {
                    Decision {
                        allowed: false,
                        rule: None,
                        reasons: vec![format!(
                            "no import rule for peer {peer:?} covers namespace {:?}",
                            facts.namespace
                        )],
                    }
                }
            }
        }
    }

    fn rule_applies(
        &self,
        rule: &Rule,
        facts: &Facts<'_>,
        kind: &str,
        now_ms: i64,
    ) -> Result<(), String> {
        let (not_before, not_after) = rule.window().map_err(|e| e.to_string())?;
        if let Some(t) = not_before
            && now_ms < t
        {
            return Err(format!(
                "not in force before {}",
                rule.not_before.as_deref().unwrap_or_default()
            ));
        }
        if let Some(t) = not_after
            && now_ms > t
        {
            return Err(format!(
                "expired at {}",
                rule.not_after.as_deref().unwrap_or_default()
            ));
        }
        if !rule.kinds.iter().any(|k| k == "*" || k == kind) {
            return Err(format!("kind {kind} is not in {:?}", rule.kinds));
        }
        let domain = self
            .domain(&rule.domain)
            .ok_or_else(|| format!("domain {:?} is not defined", rule.domain))?;
        domain
            .admits(facts)
            .map_err(|why| format!("domain {:?}: {why}", domain.name))
    }
}

impl Domain {
    /// Whether the subject is in the domain; if not, the first condition it fails.
    pub fn admits(&self, facts: &Facts<'_>) -> Result<(), String> {
        let subject = format!("{}/{}", facts.subject_kind, facts.subject_id);
        if !self.subjects.iter().any(|k| k == facts.subject_kind) {
            return Err(format!(
                "{subject}: subject kind {} is not in {:?}",
                facts.subject_kind, self.subjects
            ));
        }
        if let Some(ns) = &self.namespace
            && ns != facts.namespace
        {
            return Err(format!(
                "{subject} is a record of {:?}, not of {ns:?}",
                facts.namespace
            ));
        }
        for (name, want) in self.attribute_conditions() {
            match facts.attribute(name) {
                Some(have) if have == want => {}
                Some(have) => {
                    return Err(format!(
                        "{subject}: attribute {name} is {have:?}, not {want:?}"
                    ));
                }
                None => return Err(format!("{subject} has no attribute {name}")),
            }
        }
        if self.serial_from.is_some() || self.serial_to.is_some() {
            let Some(serial) = facts.serial else {
                return Err(format!("{subject} has no serial"));
            };
            let from_ok = self.serial_from.as_deref().is_none_or(|f| serial >= f);
            let to_ok = self.serial_to.as_deref().is_none_or(|t| serial <= t);
            if !from_ok || !to_ok {
                return Err(format!(
                    "{subject}: serial {serial:?} is outside [{}, {}]",
                    self.serial_from.as_deref().unwrap_or(""),
                    self.serial_to.as_deref().unwrap_or("")
                ));
            }
        }
        if !self.ids.is_empty() && !self.ids.iter().any(|id| id == facts.subject_id) {
            return Err(format!("{subject} is not in the domain's ids"));
        }
        if !self.names.is_empty() {
            let named = facts
                .name
                .is_some_and(|n| self.names.iter().any(|want| want == n));
            if !named {
                return Err(format!("{subject}'s name is not in {:?}", self.names));
            }
        }
        Ok(())
    }
}
