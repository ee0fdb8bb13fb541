//! Limits on requests: the per-user and failed-sign-in rate limiters ([`Limiters`]), the
//! per-IP limiter layer (tower_governor), and the body-size and timeout layers, each
//! answering with a problem+json (`rate_limited` with `Retry-After`, `payload_too_large`,
//! `unavailable` on timeout).
//!
//! Failed sign-ins are counted per account (the folded username, whether or not it exists)
//! and per client IP. When either runs out, that key is blocked until an allowance comes
//! back, and every attempt meanwhile is 429 `rate_limited` before any password is checked,
//! so the answer never depends on whether the account exists or the password is right.

use std::collections::HashMap;
use std::hash::Hash;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use axum::http::StatusCode;
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use martelo_engine::UserId;

use crate::config::RateConfig;
use crate::error::{Problem, codes};
use crate::telemetry;

/// Blocked keys kept at most per kind; past it, expired entries are dropped.
const BLOCKED_KEYS_MAX: usize = 100_000;

/// The rate limiters checked inside handlers (the per-IP one is a layer). Clones share
/// the buckets.
#[derive(Clone)]
pub struct Limiters {
    inner: Arc<Inner>,
}

struct Inner {
    user: DefaultKeyedRateLimiter<UserId>,
    login_account: FailureLimiter<String>,
    login_ip: FailureLimiter<IpAddr>,
}

/// A weak reference to [`Limiters`] for the pruning task: it ends with the gateway.
#[derive(Clone)]
pub struct PruneHandle(Weak<Inner>);

impl std::fmt::Debug for PruneHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PruneHandle").finish_non_exhaustive()
    }
}

impl PruneHandle {
    /// Forgets idle keys; false once the limiters are gone.
    pub fn prune(&self) -> bool {
        match self.0.upgrade() {
            Some(inner) => {
                Limiters { inner }.retain_recent();
                true
            }
            None => false,
        }
    }
}

impl std::fmt::Debug for Limiters {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Limiters").finish_non_exhaustive()
    }
}

/// A 429 `rate_limited` with `Retry-After`, counted under `limit`.
pub fn rate_limited(limit: &'static str, wait: Duration) -> Problem {
    metrics::counter!(telemetry::RATE_LIMITED_TOTAL, "limit" => limit).increment(1);
    let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    Problem::new(
        StatusCode::TOO_MANY_REQUESTS,
        codes::RATE_LIMITED,
        "too many requests: retry after the time in Retry-After",
    )
    .retry_after(secs.max(1))
}

fn quota(per_period: Duration, burst: u32) -> Quota {
    let burst = NonZeroU32::new(burst).unwrap_or(NonZeroU32::MIN);
    Quota::with_period(per_period)
        .unwrap_or_else(|| Quota::per_second(NonZeroU32::MIN))
        .allow_burst(burst)
}

impl Limiters {
    /// Limiters sized by the configuration.
    pub fn new(rate: &RateConfig) -> Limiters {
        let per_user = Duration::from_secs(1) / rate.per_user_per_sec.max(1);
        let recovery = Duration::from_secs(rate.login_failure_recovery_secs.max(1));
        Limiters {
            inner: Arc::new(Inner {
                user: RateLimiter::keyed(quota(per_user, rate.per_user_burst)),
                login_account: FailureLimiter::new(quota(recovery, rate.login_failures_burst)),
                login_ip: FailureLimiter::new(quota(recovery, rate.login_failures_burst)),
            }),
        }
    }

    /// A handle that prunes these limiters without keeping them alive.
    pub fn prune_handle(&self) -> PruneHandle {
        PruneHandle(Arc::downgrade(&self.inner))
    }

    /// One request by `user`: 429 when the user's bucket is empty.
    pub fn check_user(&self, user: UserId) -> Result<(), Problem> {
        self.inner.user.check_key(&user).map_err(|not_until| {
            rate_limited(
                "user",
                not_until.wait_time_from(DefaultClock::default().now()),
            )
        })
    }

    /// Before a sign-in: 429 while the account or the IP is blocked by earlier failures.
    pub fn check_login(&self, account: &str, ip: Option<IpAddr>) -> Result<(), Problem> {
        let now = Instant::now();
        let mut wait = self
            .inner
            .login_account
            .blocked_for(&account.to_owned(), now);
        if let Some(ip) = ip {
            wait = wait.max(self.inner.login_ip.blocked_for(&ip, now));
        }
        match wait {
            Some(wait) => {
                metrics::counter!(telemetry::LOGINS_TOTAL, "result" => "throttled").increment(1);
                Err(rate_limited("login", wait))
            }
            None => Ok(()),
        }
    }

    /// After a failed sign-in: spends one allowance of the account and of the IP.
    pub fn login_failed(&self, account: &str, ip: Option<IpAddr>) {
        let now = Instant::now();
        self.inner.login_account.fail(account.to_owned(), now);
        if let Some(ip) = ip {
            self.inner.login_ip.fail(ip, now);
        }
    }

    /// Forgets keys whose buckets are full again (call now and then).
    pub fn retain_recent(&self) {
        self.inner.user.retain_recent();
        self.inner.login_account.retain_recent();
        self.inner.login_ip.retain_recent();
    }
}

/// Counts failures per key with a GCRA bucket; a key whose bucket runs dry is blocked
/// until a cell comes back.
struct FailureLimiter<K: Hash + Eq + Clone> {
    failures: DefaultKeyedRateLimiter<K>,
    blocked: Mutex<HashMap<K, Instant>>,
}

impl<K: Hash + Eq + Clone> FailureLimiter<K> {
    fn new(quota: Quota) -> FailureLimiter<K> {
        FailureLimiter {
            failures: RateLimiter::keyed(quota),
            blocked: Mutex::new(HashMap::new()),
        }
    }

    fn blocked_for(&self, key: &K, now: Instant) -> Option<Duration> {
        let blocked = self.blocked.lock().unwrap_or_else(|e| e.into_inner());
        blocked
            .get(key)
            .and_then(|until| until.checked_duration_since(now))
            .filter(|wait| !wait.is_zero())
    }

    fn fail(&self, key: K, now: Instant) {
        if let Err(not_until) = self.failures.check_key(&key) {
            let wait = not_until.wait_time_from(DefaultClock::default().now());
            let mut blocked = self.blocked.lock().unwrap_or_else(|e| e.into_inner());
            if blocked.len() >= BLOCKED_KEYS_MAX {
                blocked.retain(|_, until| *until > now);
            }
            if blocked.len() < BLOCKED_KEYS_MAX {
                blocked.insert(key, now + wait);
            }
        }
    }

    fn retain_recent(&self) {
        self.failures.retain_recent();
        let now = Instant::now();
        let mut blocked = self.blocked.lock().unwrap_or_else(|e| e.into_inner());
        blocked.retain(|_, until| *until > now);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rate(burst: u32) -> RateConfig {
        RateConfig {
            per_user_per_sec: 1,
            per_user_burst: burst,
            login_failures_burst: burst,
            login_failure_recovery_secs: 60,
            ..RateConfig::default()
        }
    }

    #[test]
    fn a_user_past_the_burst_is_rate_limited_with_retry_after() {
        let limiters = Limiters::new(&rate(2));
        assert!(limiters.check_user(UserId(1)).is_ok());
        assert!(limiters.check_user(UserId(1)).is_ok());
        let problem = limiters.check_user(UserId(1)).expect_err("third");
        assert_eq!(
            (problem.status, problem.code.as_ref()),
            (429, "rate_limited")
        );
        assert!(problem.retry_after_secs.is_some_and(|secs| secs >= 1));
        assert!(limiters.check_user(UserId(2)).is_ok(), "per user");
    }

    #[test]
    fn failed_sign_ins_block_the_account_and_the_ip_but_successes_cost_nothing() {
        let limiters = Limiters::new(&rate(2));
        let ip: IpAddr = "127.0.0.9".parse().expect("ip");
        for _ in 0..5 {
            assert!(
                limiters.check_login("ana", Some(ip)).is_ok(),
                "checks are free"
            );
        }
        limiters.login_failed("ana", Some(ip));
        limiters.login_failed("ana", Some(ip));
        assert!(
            limiters.check_login("ana", None).is_ok(),
            "two failures allowed"
        );
        limiters.login_failed("ana", Some(ip));
        let problem = limiters.check_login("ana", None).expect_err("blocked");
        assert_eq!(problem.code, "rate_limited");
        assert!(
            limiters.check_login("bob", Some(ip)).is_err(),
            "the IP is blocked too"
        );
        assert!(
            limiters.check_login("bob", None).is_ok(),
            "another account elsewhere"
        );
    }
}
