//! A token bucket, for the named rate limits (appends, HKP lookups).

use std::sync::Mutex;
use std::time::Instant;

/// Tokens saved up and when they were counted.
#[derive(Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

impl Bucket {
    fn full(burst: f64, now: Instant) -> Bucket {
        Bucket {
            tokens: burst,
            at: now,
        }
    }

    /// The tokens `now`, refilled at `rate` a second up to `burst`.
    fn refilled(&self, rate: f64, burst: f64, now: Instant) -> f64 {
        (self.tokens + now.duration_since(self.at).as_secs_f64() * rate).min(burst)
    }

    fn try_take(&mut self, rate: f64, burst: f64, now: Instant) -> bool {
        self.tokens = self.refilled(rate, burst, now);
        self.at = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// A token bucket: `rate` tokens a second, at most `burst` saved up.
pub(crate) struct RateLimit {
    rate: f64,
    burst: f64,
    bucket: Mutex<Bucket>,
}

impl RateLimit {
    pub(crate) fn new(rate: u32, burst: u32) -> Self {
        RateLimit {
            rate: f64::from(rate),
            burst: f64::from(burst),
            bucket: Mutex::new(Bucket::full(f64::from(burst), Instant::now())),
        }
    }

    pub(crate) fn try_take(&self) -> bool {
        let mut bucket = self.bucket.lock().unwrap_or_else(|p| p.into_inner());
        bucket.try_take(self.rate, self.burst, Instant::now())
    }
}

/// Callers a keyed limit tracks at once; beyond that, new callers share one
/// bucket until full buckets (idle callers) are swept out.
pub(crate) const MAX_RATE_KEYS: usize = 65_536;
const SHARED_KEY: &str = "(overflow)";

/// One token bucket per caller (a client's certificate or address, a peer
/// node), so a caller's flood spends its own budget, not its neighbours'.
pub(crate) struct KeyedRateLimit {
    rate: f64,
    burst: f64,
    buckets: Mutex<std::collections::HashMap<String, Bucket>>,
}

impl KeyedRateLimit {
    pub(crate) fn new(rate: u32, burst: u32) -> Self {
        KeyedRateLimit {
            rate: f64::from(rate),
            burst: f64::from(burst),
            buckets: Mutex::new(std::collections::HashMap::new()),
        }
    }

    pub(crate) fn try_take(&self, key: &str) -> bool {
        let mut buckets = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        if !buckets.contains_key(key) && buckets.len() >= MAX_RATE_KEYS {
            // A bucket refilled to its burst is the same as none.
            let (rate, burst) = (self.rate, self.burst);
            buckets.retain(|_, b| b.refilled(rate, burst, now) < burst);
        }
        let key = if buckets.contains_key(key) || buckets.len() < MAX_RATE_KEYS {
            key
        } else {
            SHARED_KEY
        };
        buckets
            .entry(key.to_string())
            .or_insert(Bucket::full(self.burst, now))
            .try_take(self.rate, self.burst, now)
    }
}

/// An HTTP read service's budget: each caller's first (F8), then the node's.
pub(crate) struct ReadBudget {
    what: &'static str,
    per_client: u32,
    per_node: u32,
    client_rate: KeyedRateLimit,
    rate: RateLimit,
}

impl ReadBudget {
    /// `what` names one request in refusals ("lookups", "tile reads").
    pub(crate) fn new(
        what: &'static str,
        (per_client, client_burst): (u32, u32),
        (per_node, burst): (u32, u32),
    ) -> Self {
        ReadBudget {
            what,
            per_client,
            per_node,
            client_rate: KeyedRateLimit::new(per_client, client_burst),
            rate: RateLimit::new(per_node, burst),
        }
    }

    /// Takes one request from the budget of the caller with rate key `who`
    /// (`Caller::rate_key`) and the node's; the refusal names whose budget
    /// ran out.
    pub(crate) fn charge(&self, who: Option<String>) -> Result<(), String> {
        let who = who.unwrap_or_else(|| "an unidentified caller".to_string());
        if !self.client_rate.try_take(&who) {
            return Err(format!(
                "{who} is over its limit of {} {} per second",
                self.per_client, self.what
            ));
        }
        if !self.rate.try_take() {
            return Err(format!(
                "over the node's limit of {} {} per second",
                self.per_node, self.what
            ));
        }
        Ok(())
    }
}

/// A budget of events per minute that a batch may overdraw: the batch that
/// finds tokens goes through whole, and the debt delays the next one, so the
/// rate holds over time without splitting a proven segment.
pub(crate) struct EventBudget {
    per_minute: u64,
    bucket: Bucket,
}

impl EventBudget {
    pub(crate) fn new(per_minute: u64) -> Self {
        EventBudget {
            per_minute,
            bucket: Bucket::full(per_minute as f64, Instant::now()),
        }
    }

    fn rate(&self) -> f64 {
        self.per_minute as f64 / 60.0
    }

    /// Follows a new quota; the tokens saved stay, up to the new burst.
    pub(crate) fn set_per_minute(&mut self, per_minute: u64) {
        if per_minute != self.per_minute {
            self.bucket = Bucket {
                tokens: self.available().min(per_minute as f64),
                at: Instant::now(),
            };
            self.per_minute = per_minute;
        }
    }

    /// Whole events that may go now (0 while in debt).
    pub(crate) fn available(&self) -> f64 {
        let burst = self.per_minute as f64;
        self.bucket.refilled(self.rate(), burst, Instant::now())
    }

    /// Spends `n` events, into debt if need be.
    pub(crate) fn spend(&mut self, n: u64) {
        let now = Instant::now();
        let burst = self.per_minute as f64;
        self.bucket.tokens = self.bucket.refilled(self.rate(), burst, now) - n as f64;
        self.bucket.at = now;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_callers_flood_leaves_anothers_budget_whole() {
        let limit = KeyedRateLimit::new(1, 3);
        assert!((0..3).all(|_| limit.try_take("ip:10.0.0.1")));
        assert!(!limit.try_take("ip:10.0.0.1"), "over its burst");
        assert!((0..3).all(|_| limit.try_take("cert:ab")), "another caller");
        assert!(!limit.try_take("cert:ab"));
    }

    #[test]
    fn a_batch_may_overdraw_and_the_debt_holds_back_the_next() {
        let mut budget = EventBudget::new(60);
        assert!(budget.available() >= 59.0, "starts full");
        budget.spend(150);
        assert!(budget.available() < 0.0, "in debt after overdrawing");
        budget.set_per_minute(600);
        assert!(
            budget.available() < 0.0,
            "a new quota does not forgive debt"
        );
    }
}
