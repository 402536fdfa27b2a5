//! Per-principal rate limits: a token bucket per key (a principal, an email being signed in, a
//! service name), so that one caller hammering sign-in or a lookup slows only itself. A refused
//! call gets `RESOURCE_EXHAUSTED` with `RetryInfo` saying when a token is back.
//!
//! Memory is bounded: at most [`MAX_KEYS`] buckets; when full, buckets that have refilled
//! completely (they hold nothing a new bucket would not) are dropped first, then the map is
//! cleared (a flood of fresh keys then costs every key at most one burst).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use crate::error::ApiError;

/// Most keys tracked at once.
pub const MAX_KEYS: usize = 100_000;

/// How many calls a key may make: `burst` at once, then `per_second` on average.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rate {
    pub per_second: f64,
    pub burst: f64,
}

impl Rate {
    pub const fn new(per_second: f64, burst: f64) -> Self {
        Self { per_second, burst }
    }
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

/// Token buckets by key for one kind of call.
pub struct RateLimiter {
    /// What is limited, for the error message (`sign-in`, `token exchange`, ...).
    what: &'static str,
    rate: Rate,
    buckets: Mutex<HashMap<String, Bucket>>,
}

impl RateLimiter {
    pub fn new(what: &'static str, rate: Rate) -> Self {
        Self {
            what,
            rate,
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Takes one call's token from `key`'s bucket, or says how long until one is back.
    pub fn check(&self, key: &str) -> Result<(), ApiError> {
        self.check_at(key, Instant::now())
    }

    fn check_at(&self, key: &str, now: Instant) -> Result<(), ApiError> {
        let Rate { per_second, burst } = self.rate;
        let mut buckets = self.buckets.lock();
        if buckets.len() >= MAX_KEYS && !buckets.contains_key(key) {
            buckets.retain(|_, b| refilled(b, now, self.rate) < burst);
            if buckets.len() >= MAX_KEYS {
                buckets.clear();
            }
        }
        let b = buckets.entry(key.to_owned()).or_insert(Bucket {
            tokens: burst,
            at: now,
        });
        b.tokens = refilled(b, now, self.rate);
        b.at = now;
        if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            return Ok(());
        }
        let wait = Duration::from_secs_f64((1.0 - b.tokens) / per_second.max(f64::MIN_POSITIVE));
        Err(ApiError::resource_exhausted(
            "RATE_LIMITED",
            format!(
                "too many {} calls for this principal; retry in {} ms",
                self.what,
                wait.as_millis().max(1)
            ),
            wait,
        ))
    }
}

fn refilled(b: &Bucket, now: Instant, rate: Rate) -> f64 {
    let elapsed = now.saturating_duration_since(b.at).as_secs_f64();
    (b.tokens + elapsed * rate.per_second).min(rate.burst)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_gets_its_burst_then_its_rate_and_others_are_untouched() {
        let l = RateLimiter::new("sign-in", Rate::new(2.0, 3.0));
        let t = Instant::now();
        for _ in 0..3 {
            l.check_at("a", t).unwrap();
        }
        let e = l.check_at("a", t).unwrap_err();
        assert_eq!(e.code, tonic::Code::ResourceExhausted);
        assert_eq!(e.details.retry_delay, Some(Duration::from_millis(500)));
        l.check_at("b", t).expect("another key has its own bucket");
        // Half a second later one token is back, and only one.
        let later = t + Duration::from_millis(500);
        l.check_at("a", later).unwrap();
        assert!(l.check_at("a", later).is_err());
    }
}
