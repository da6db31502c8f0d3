//! Abuse limits on join and status: per user and per client IP, in memory on each replica
//! (GCRA via `governor`). A refused call is answered 429 `RATE_LIMITED` with `Retry-After`.

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::time::Duration;

use flash_protocol::UserId;
use governor::clock::Clock as _;
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

use crate::config::LimitConfig;

/// The per-user and per-IP limiters of one replica.
pub struct Limits {
    user: Option<DefaultKeyedRateLimiter<UserId>>,
    ip: Option<DefaultKeyedRateLimiter<IpAddr>>,
}

impl std::fmt::Debug for Limits {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Limits")
            .field("users", &self.user.as_ref().map(RateLimiter::len))
            .field("ips", &self.ip.as_ref().map(RateLimiter::len))
            .finish()
    }
}

/// A limiter for `per_sec` (0: unlimited) with `burst`.
fn limiter<K>(per_sec: u32, burst: u32) -> Option<DefaultKeyedRateLimiter<K>>
where
    K: std::hash::Hash + Eq + Clone,
{
    let per_sec = NonZeroU32::new(per_sec)?;
    let burst = NonZeroU32::new(burst.max(per_sec.get())).unwrap_or(per_sec);
    Some(RateLimiter::keyed(
        Quota::per_second(per_sec).allow_burst(burst),
    ))
}

impl Limits {
    #[must_use]
    pub fn new(config: LimitConfig) -> Self {
        Self {
            user: limiter(config.user_per_sec, config.user_burst),
            ip: limiter(config.ip_per_sec, config.ip_burst),
        }
    }

    /// `Err(wait)` when the user or the IP is over its limit.
    pub fn check(&self, user: UserId, ip: IpAddr) -> Result<(), Duration> {
        if let Some(limiter) = &self.ip {
            limiter
                .check_key(&ip)
                .map_err(|not_until| not_until.wait_time_from(limiter.clock().now()))?;
        }
        if let Some(limiter) = &self.user {
            limiter
                .check_key(&user)
                .map_err(|not_until| not_until.wait_time_from(limiter.clock().now()))?;
        }
        Ok(())
    }

    /// Forgets keys that are back at full allowance (call periodically).
    pub fn housekeeping(&self) {
        if let Some(limiter) = &self.user {
            limiter.retain_recent();
            limiter.shrink_to_fit();
        }
        if let Some(limiter) = &self.ip {
            limiter.retain_recent();
            limiter.shrink_to_fit();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn users_and_ips_are_limited_separately_and_zero_means_unlimited() {
        let limits = Limits::new(LimitConfig {
            user_per_sec: 1,
            user_burst: 2,
            ip_per_sec: 0,
            ..LimitConfig::default()
        });
        let ip: IpAddr = "127.0.0.9".parse().expect("ip");
        let (alice, bob) = (UserId::new_v7(), UserId::new_v7());
        assert!(limits.check(alice, ip).is_ok());
        assert!(limits.check(alice, ip).is_ok());
        let wait = limits
            .check(alice, ip)
            .expect_err("third call in a burst of two");
        assert!(
            wait > Duration::ZERO && wait <= Duration::from_secs(1),
            "{wait:?}"
        );
        assert!(
            limits.check(bob, ip).is_ok(),
            "another user on the same IP is unaffected"
        );
    }
}
