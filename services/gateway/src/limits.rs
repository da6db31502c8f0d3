//! Abuse limits. Join and status: per user and per client IP, in memory on each replica (GCRA
//! via `governor`; the hot path, guarding the replica's CPU). WebSocket upgrades per user and
//! per address, and leaves per user: in Redis, shared by every replica. Frames: per socket. A
//! refused call is answered 429 `RATE_LIMITED` with `Retry-After` (a socket refused after its
//! `auth` frame is closed with 4429).

use std::net::IpAddr;
use std::num::NonZeroU32;

use flash_kit::limits::{Count, Limit, Rate, RateLimiter as SharedLimiter, Refused};
use flash_protocol::UserId;
use governor::clock::{Clock as _, DefaultClock};
use governor::{DefaultDirectRateLimiter, DefaultKeyedRateLimiter, Quota, RateLimiter};

use crate::config::LimitConfig;

/// The gateway's limits: in memory for join and status, in Redis for the rest.
#[derive(Debug)]
pub struct Limits {
    polls: PollLimits,
    frames: FrameBudgets,
    shared: SharedLimiter,
    config: LimitConfig,
}

/// Joins and status polls per user and per IP, in this replica's memory.
pub struct PollLimits {
    user: Option<DefaultKeyedRateLimiter<UserId>>,
    ip: Option<DefaultKeyedRateLimiter<IpAddr>>,
}

impl std::fmt::Debug for PollLimits {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PollLimits")
            .field("users", &self.user.as_ref().map(RateLimiter::len))
            .field("ips", &self.ip.as_ref().map(RateLimiter::len))
            .finish()
    }
}

/// The frames one socket may still send (GCRA, in memory).
pub struct FrameBudget(DefaultDirectRateLimiter);

/// Where sockets get their frame budgets: the rate, and the one clock they all read. A clock
/// is made once: making one asks the CPU about its time-stamp counter (`CPUID`), which in a
/// virtual machine is a trip to the hypervisor each time (27 µs per new socket here,
/// BENCHMARKS.md).
#[derive(Debug)]
struct FrameBudgets {
    quota: Option<Quota>,
    clock: DefaultClock,
}

impl FrameBudgets {
    fn new(rate: Rate) -> Self {
        let quota = NonZeroU32::new(rate.count)
            .filter(|_| !rate.is_off())
            .and_then(|count| {
                Some(Quota::with_period(rate.window / count.get())?.allow_burst(count))
            });
        Self {
            quota,
            clock: DefaultClock::default(),
        }
    }

    /// A new socket's budget (`None`: unlimited).
    fn budget(&self) -> Option<FrameBudget> {
        let quota = self.quota?;
        Some(FrameBudget(RateLimiter::direct_with_clock(
            quota,
            self.clock.clone(),
        )))
    }
}

impl FrameBudget {
    /// Counts one frame; `false` when the socket is over its budget.
    #[must_use]
    pub fn spend(&self) -> bool {
        self.0.check().is_ok()
    }
}

/// A refusal by `limit`, counted.
fn refused(limit: &'static str) -> impl Fn(std::time::Duration) -> Refused {
    move |wait| {
        ::metrics::counter!("rate_limited_total", "limit" => limit).increment(1);
        Refused {
            limit,
            retry_after: wait,
        }
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
    pub fn new(config: LimitConfig, shared: SharedLimiter) -> Self {
        Self {
            polls: PollLimits::new(&config),
            frames: FrameBudgets::new(config.frames_per_socket),
            shared,
            config,
        }
    }

    /// A join or status poll: refused when the user or the IP is over its limit.
    pub fn check(&self, user: UserId, ip: IpAddr) -> Result<(), Refused> {
        self.polls.check(user, ip)
    }

    /// A public read (no user): refused when the IP is over its limit.
    pub fn check_address(&self, ip: IpAddr) -> Result<(), Refused> {
        self.polls.check_address(ip)
    }

    /// Forgets keys back at full allowance (call periodically).
    pub fn housekeeping(&self) {
        self.polls.housekeeping();
    }

    /// A WebSocket upgrade from `ip` (before the upgrade).
    pub async fn websocket_from(&self, ip: IpAddr) -> Result<(), Refused> {
        let address = ip.to_string();
        self.shared
            .check(
                &[Limit::new(
                    "ws-address",
                    self.config.ws_per_address,
                    &address,
                )],
                Count::Charge,
            )
            .await
    }

    /// A WebSocket of `user` (once its `auth` frame named them).
    pub async fn websocket_of(&self, user: UserId) -> Result<(), Refused> {
        let user = user.to_string();
        self.shared
            .check(
                &[Limit::new("ws-user", self.config.ws_per_user, &user)],
                Count::Charge,
            )
            .await
    }

    /// A leave by `user`.
    pub async fn leave(&self, user: UserId) -> Result<(), Refused> {
        let user = user.to_string();
        self.shared
            .check(
                &[Limit::new("leave-user", self.config.leaves_per_user, &user)],
                Count::Charge,
            )
            .await
    }

    /// The budget of frames of one new socket (`None`: unlimited).
    #[must_use]
    pub fn frame_budget(&self) -> Option<FrameBudget> {
        self.frames.budget()
    }
}

impl PollLimits {
    #[must_use]
    pub fn new(config: &LimitConfig) -> Self {
        Self {
            user: limiter(config.user_per_sec, config.user_burst),
            ip: limiter(config.ip_per_sec, config.ip_burst),
        }
    }

    /// Refused when the user or the IP is over its limit.
    pub fn check(&self, user: UserId, ip: IpAddr) -> Result<(), Refused> {
        self.check_address(ip)?;
        if let Some(limiter) = &self.user {
            limiter
                .check_key(&user)
                .map_err(|not_until| not_until.wait_time_from(limiter.clock().now()))
                .map_err(refused("poll-user"))?;
        }
        Ok(())
    }

    /// Refused when the IP is over its limit.
    pub fn check_address(&self, ip: IpAddr) -> Result<(), Refused> {
        if let Some(limiter) = &self.ip {
            limiter
                .check_key(&ip)
                .map_err(|not_until| not_until.wait_time_from(limiter.clock().now()))
                .map_err(refused("poll-address"))?;
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
    use std::time::Duration;

    #[test]
    fn users_and_ips_are_limited_separately_and_zero_means_unlimited() {
        let limits = PollLimits::new(&LimitConfig {
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
            .expect_err("third call in a burst of two")
            .retry_after;
        assert!(
            wait > Duration::ZERO && wait <= Duration::from_secs(1),
            "{wait:?}"
        );
        assert!(
            limits.check(bob, ip).is_ok(),
            "another user on the same IP is unaffected"
        );
    }

    #[test]
    fn sockets_reading_one_clock_keep_budgets_of_their_own() {
        let rate = |text: &str| text.parse::<Rate>().expect("rate");
        let budgets = FrameBudgets::new(rate("3/min"));
        let (first, second) = (
            budgets.budget().expect("a budget"),
            budgets.budget().expect("a budget"),
        );
        for frame in 1..=3 {
            assert!(first.spend(), "frame {frame} of 3");
        }
        assert!(!first.spend(), "a fourth frame within the minute");
        for frame in 1..=3 {
            assert!(second.spend(), "the other socket's frame {frame} of 3");
        }
        assert!(!second.spend());
        assert!(
            budgets.budget().expect("a budget").spend(),
            "a new socket starts full"
        );
        assert!(
            FrameBudgets::new(rate("0/min")).budget().is_none(),
            "0 means unlimited"
        );
    }
}
