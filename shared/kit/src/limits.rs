//! Rate limits that hold across replicas: counters in Redis (GCRA, one Lua step per check), so
//! a user, an address or a network gets the configured rate however many replicas serve it.
//! A refused call is answered 429 `RATE_LIMITED` with `Retry-After`.
//!
//! A limiter that cannot reach Redis lets the call through (and counts it in
//! `rate_limit_unavailable_total`): limits protect the sale, they must not stop it. What bounds
//! a service's own resources (connection caps, the password-hashing pool) does not depend on
//! Redis.

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::connect_info::ConnectInfo;
use axum::http::{HeaderMap, request::Parts};
use axum::response::{IntoResponse, Response};
use flash_protocol::ErrorCode;
use flash_protocol::keys::RedisKeys;

use crate::telemetry::{LOG_EVERY, LogThrottle};
use redis::{Script, Value};

use crate::http::{ProblemResponse, with_retry_after};
use crate::stores::RedisConnection;

/// How long a limiter waits for Redis before letting the call through.
pub const LIMITER_TIMEOUT: Duration = Duration::from_millis(500);

/// A rate: at most `count` calls in any `window`, all of them at once if they come at once
/// (then one more every `window / count`). `count` 0 turns the limit off. Written as
/// `COUNT/WINDOW`, e.g. `5/15min`, `300/min`, `20/s`, `1000/h`, or `off`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rate {
    pub count: u32,
    pub window: Duration,
}

impl Rate {
    /// A rate of `count` per `window`.
    #[must_use]
    pub const fn new(count: u32, window: Duration) -> Self {
        Self { count, window }
    }

    /// No limit.
    pub const OFF: Rate = Rate::new(0, Duration::from_secs(1));

    #[must_use]
    pub fn is_off(&self) -> bool {
        self.count == 0 || self.window.is_zero()
    }

    /// The most calls the limit lets through in `elapsed` (from the first to the last): the
    /// whole `count` at once, then one per `window / count`. `u64::MAX` when off.
    #[must_use]
    pub fn most_within(&self, elapsed: Duration) -> u64 {
        if self.is_off() {
            return u64::MAX;
        }
        let (interval, _) = self.gcra_micros();
        let elapsed = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX);
        u64::from(self.count).saturating_add(elapsed / interval)
    }

    /// The GCRA's emission interval and tolerance, in microseconds.
    fn gcra_micros(&self) -> (u64, u64) {
        let window = u64::try_from(self.window.as_micros()).unwrap_or(u64::MAX);
        let interval = (window / u64::from(self.count.max(1))).max(1);
        (
            interval,
            interval.saturating_mul(u64::from(self.count.saturating_sub(1))),
        )
    }
}

/// A rate that could not be read.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{0:?} is not a rate: write COUNT/WINDOW, e.g. 5/15min, 300/min, 20/s, 1000/h, or off")]
pub struct InvalidRate(pub String);

impl FromStr for Rate {
    type Err = InvalidRate;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let invalid = || InvalidRate(text.to_owned());
        let trimmed = text.trim();
        if trimmed.eq_ignore_ascii_case("off") || trimmed == "0" {
            return Ok(Rate::OFF);
        }
        let (count, window) = trimmed.split_once('/').ok_or_else(invalid)?;
        let count: u32 = count.trim().parse().map_err(|_| invalid())?;
        let window = window.trim();
        let unit_at = window
            .find(|c: char| !c.is_ascii_digit())
            .ok_or_else(invalid)?;
        let (times, unit) = window.split_at(unit_at);
        let times: u64 = if times.is_empty() {
            1
        } else {
            times.parse().map_err(|_| invalid())?
        };
        let unit_secs = match unit {
            "s" | "sec" => 1,
            "min" | "m" => 60,
            "h" => 3600,
            "d" => 86_400,
            _ => return Err(invalid()),
        };
        if times == 0 {
            return Err(invalid());
        }
        Ok(Rate::new(
            count,
            Duration::from_secs(times.saturating_mul(unit_secs)),
        ))
    }
}

impl fmt::Display for Rate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_off() {
            return f.write_str("off");
        }
        let secs = self.window.as_secs();
        let (times, unit) = if secs.is_multiple_of(86_400) {
            (secs / 86_400, "d")
        } else if secs.is_multiple_of(3600) {
            (secs / 3600, "h")
        } else if secs.is_multiple_of(60) {
            (secs / 60, "min")
        } else {
            (secs, "s")
        };
        if times == 1 {
            write!(f, "{}/{unit}", self.count)
        } else {
            write!(f, "{}/{times}{unit}", self.count)
        }
    }
}

/// For clap: `value_parser = parse_rate`.
///
/// # Errors
/// When `text` is not a rate.
pub fn parse_rate(text: &str) -> Result<Rate, InvalidRate> {
    text.parse()
}

/// One limit applied to one subject.
#[derive(Clone, Debug)]
pub struct Limit<'a> {
    /// The limit's name (a metric label and part of its key): a constant.
    pub name: &'static str,
    pub rate: Rate,
    /// Who is limited: an address, a network, an account, a user or token family.
    pub subject: &'a str,
}

impl<'a> Limit<'a> {
    #[must_use]
    pub fn new(name: &'static str, rate: Rate, subject: &'a str) -> Self {
        Self {
            name,
            rate,
            subject,
        }
    }
}

/// Whether a check counts the call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Count {
    /// Count it (when every limit allows it).
    Charge,
    /// Only ask whether the next call would be allowed (e.g. before a login, whose failure
    /// alone is counted).
    Peek,
}

/// A call over one of its limits.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("over the {limit} limit; retry in {} ms", retry_after.as_millis())]
pub struct Refused {
    pub limit: &'static str,
    pub retry_after: Duration,
}

impl IntoResponse for Refused {
    fn into_response(self) -> Response {
        let seconds = retry_seconds(self.retry_after);
        let mut response = ProblemResponse::new(
            ErrorCode::RateLimited,
            format!("Too many requests; retry in {seconds} s"),
        )
        .into_response();
        with_retry_after(&mut response, self.retry_after);
        response
    }
}

/// Whole seconds to wait, rounded up, at least 1 (what `Retry-After` says).
#[must_use]
pub fn retry_seconds(wait: Duration) -> u64 {
    (wait.as_secs() + u64::from(wait.subsec_nanos() > 0)).max(1)
}

/// Rate limits in Redis, shared by every replica of every service using the same prefix.
#[derive(Clone)]
pub struct RateLimiter {
    redis: RedisConnection,
    keys: RedisKeys,
    script: Arc<Script>,
}

impl fmt::Debug for RateLimiter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RateLimiter")
            .field("prefix", &self.keys.prefix())
            .finish_non_exhaustive()
    }
}

impl RateLimiter {
    #[must_use]
    pub fn new(redis: RedisConnection, keys: RedisKeys) -> Self {
        Self {
            redis,
            keys,
            script: Arc::new(Script::new(include_str!("limits.lua"))),
        }
    }

    #[must_use]
    pub fn keys(&self) -> &RedisKeys {
        &self.keys
    }

    #[must_use]
    pub fn redis(&self) -> &RedisConnection {
        &self.redis
    }

    /// Checks a call against `limits` (off ones are skipped) and, with [`Count::Charge`],
    /// counts it against every one of them when all allow it. On one Redis node the step is
    /// atomic; on a cluster each limit is its own shard's step (a call refused by one limit
    /// may then still count against another).
    ///
    /// # Errors
    /// [`Refused`] naming the limit that refused, with the longest wait.
    pub async fn check(&self, limits: &[Limit<'_>], count: Count) -> Result<(), Refused> {
        let live: Vec<&Limit<'_>> = limits.iter().filter(|l| !l.rate.is_off()).collect();
        if live.is_empty() {
            return Ok(());
        }
        let outcome = tokio::time::timeout(LIMITER_TIMEOUT, self.run(&live, count)).await;
        let refusal = match outcome {
            Ok(Ok(refusal)) => refusal,
            Ok(Err(error)) => {
                static SITE: LogThrottle = LogThrottle::new();
                if let Some(held_back) = SITE.allow(LOG_EVERY) {
                    tracing::warn!(%error, held_back, "rate limits unavailable; letting the call through");
                }
                ::metrics::counter!("rate_limit_unavailable_total").increment(1);
                None
            }
            Err(_) => {
                static SITE: LogThrottle = LogThrottle::new();
                if let Some(held_back) = SITE.allow(LOG_EVERY) {
                    tracing::warn!(held_back, "rate limits timed out; letting the call through");
                }
                ::metrics::counter!("rate_limit_unavailable_total").increment(1);
                None
            }
        };
        match refusal {
            None => Ok(()),
            Some(refused) => {
                ::metrics::counter!("rate_limited_total", "limit" => refused.limit).increment(1);
                Err(refused)
            }
        }
    }

    async fn run(
        &self,
        limits: &[&Limit<'_>],
        count: Count,
    ) -> Result<Option<Refused>, redis::RedisError> {
        match &self.redis {
            RedisConnection::Node(_) => self.step(limits, count).await,
            RedisConnection::Cluster(_) => {
                let steps = limits
                    .iter()
                    .map(|limit| self.step(std::slice::from_ref(limit), count));
                let mut worst: Option<Refused> = None;
                for refused in futures::future::try_join_all(steps)
                    .await?
                    .into_iter()
                    .flatten()
                {
                    if worst.is_none_or(|w| refused.retry_after > w.retry_after) {
                        worst = Some(refused);
                    }
                }
                Ok(worst)
            }
        }
    }

    /// One script over `limits` (keys of one slot, or any keys on one node).
    async fn step(
        &self,
        limits: &[&Limit<'_>],
        count: Count,
    ) -> Result<Option<Refused>, redis::RedisError> {
        let mut invocation = self.script.prepare_invoke();
        invocation.arg(u8::from(count == Count::Charge));
        for limit in limits {
            let (interval, tolerance) = limit.rate.gcra_micros();
            invocation
                .key(self.keys.limit(limit.name, limit.subject))
                .arg(interval)
                .arg(tolerance);
        }
        let answer: Value = invocation.invoke_async(&mut self.redis.clone()).await?;
        let Value::Array(items) = answer else {
            return Ok(None);
        };
        let number = |i: usize| match items.get(i) {
            Some(Value::Int(n)) => u64::try_from(*n).ok(),
            _ => None,
        };
        let (Some(wait_us), Some(index)) = (number(0), number(1)) else {
            return Ok(None);
        };
        let limit = usize::try_from(index)
            .ok()
            .and_then(|i| limits.get(i.checked_sub(1)?))
            .map_or("unknown", |l| l.name);
        Ok(Some(Refused {
            limit,
            retry_after: Duration::from_micros(wait_us),
        }))
    }
}

/// The client's address: the TCP peer, or, behind a trusted load balancer, the last
/// `X-Forwarded-For` entry (the one the balancer appended).
#[must_use]
pub fn client_ip(parts: &Parts, trust_forwarded_for: bool) -> IpAddr {
    let peer = parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map_or(IpAddr::from([0, 0, 0, 0]), |info| info.0.ip());
    client_ip_of(peer, &parts.headers, trust_forwarded_for)
}

/// [`client_ip`] from a peer address and headers. Only the last `X-Forwarded-For` line
/// counts: when it is not text, the peer is the client (never an earlier line, which the
/// client wrote).
#[must_use]
pub fn client_ip_of(peer: IpAddr, headers: &HeaderMap, trust_forwarded_for: bool) -> IpAddr {
    if trust_forwarded_for {
        let forwarded = headers
            .get_all("x-forwarded-for")
            .iter()
            .next_back()
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.rsplit(',').next())
            .and_then(|v| v.trim().parse::<IpAddr>().ok());
        if let Some(ip) = forwarded {
            return ip.to_canonical();
        }
    }
    peer.to_canonical()
}

/// The network an address belongs to for limits: its /24 (IPv4) or /64 (IPv6), as text.
#[must_use]
pub fn network_of(ip: IpAddr) -> String {
    match ip.to_canonical() {
        IpAddr::V4(v4) => {
            let [a, b, c, _] = v4.octets();
            format!("{a}.{b}.{c}.0/24")
        }
        IpAddr::V6(v6) => {
            let s = v6.segments();
            format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn most_within_is_the_burst_then_one_per_interval() {
        let rate: Rate = "60/10min".parse().expect("rate");
        assert_eq!(rate.most_within(Duration::ZERO), 60);
        assert_eq!(rate.most_within(Duration::from_secs(9)), 60);
        assert_eq!(rate.most_within(Duration::from_secs(10)), 61);
        assert_eq!(rate.most_within(Duration::from_secs(600)), 120);
        assert_eq!(Rate::OFF.most_within(Duration::from_secs(1)), u64::MAX);
    }

    #[test]
    fn rates_read_and_print_as_written() {
        for (text, count, secs) in [
            ("5/15min", 5, 900),
            ("300/min", 300, 60),
            ("20/s", 20, 1),
            ("1000/h", 1000, 3600),
            ("2/d", 2, 86_400),
            ("7/90s", 7, 90),
        ] {
            let rate: Rate = text.parse().expect(text);
            assert_eq!(rate, Rate::new(count, Duration::from_secs(secs)), "{text}");
            assert_eq!(rate.to_string(), text);
        }
        assert!("off".parse::<Rate>().expect("off").is_off());
        assert!("0".parse::<Rate>().expect("0").is_off());
        assert!("0/min".parse::<Rate>().expect("zero count").is_off());
        for bad in [
            "", "5", "5/", "/min", "x/min", "5/0min", "5/weeks", "-1/s", "5/min/2",
        ] {
            assert!(bad.parse::<Rate>().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn a_rate_allows_its_count_at_once_then_one_per_interval() {
        let (interval, tolerance) = Rate::new(5, Duration::from_secs(900)).gcra_micros();
        assert_eq!(interval, 180_000_000);
        assert_eq!(tolerance, 4 * 180_000_000);
        let (interval, tolerance) = Rate::new(1, Duration::from_secs(1)).gcra_micros();
        assert_eq!((interval, tolerance), (1_000_000, 0));
        let (interval, _) = Rate::new(u32::MAX, Duration::from_secs(1)).gcra_micros();
        assert_eq!(interval, 1, "never zero");
    }

    #[test]
    fn networks_are_slash_24_and_slash_64() {
        let v4: IpAddr = "203.0.113.77".parse().expect("ip");
        assert_eq!(network_of(v4), "203.0.113.0/24");
        let mapped: IpAddr = "::ffff:203.0.113.77".parse().expect("ip");
        assert_eq!(network_of(mapped), "203.0.113.0/24");
        let v6: IpAddr = "2001:db8:aa:bb:1:2:3:4".parse().expect("ip");
        assert_eq!(network_of(v6), "2001:db8:aa:bb::/64");
    }

    #[test]
    fn forwarded_for_is_used_only_when_trusted() {
        let peer: IpAddr = "10.0.0.1".parse().expect("ip");
        let mut headers = HeaderMap::new();
        headers.insert(
            "x-forwarded-for",
            "203.0.113.7, 198.51.100.2".parse().expect("header"),
        );
        assert_eq!(
            client_ip_of(peer, &headers, true),
            "198.51.100.2".parse::<IpAddr>().expect("ip")
        );
        assert_eq!(client_ip_of(peer, &headers, false), peer);
        headers.insert("x-forwarded-for", "garbage".parse().expect("header"));
        assert_eq!(client_ip_of(peer, &headers, true), peer);
    }

    #[test]
    fn a_refusal_is_a_429_with_retry_after_in_whole_seconds() {
        let response = Refused {
            limit: "login-address",
            retry_after: Duration::from_millis(1_200),
        }
        .into_response();
        assert_eq!(response.status(), 429);
        assert_eq!(response.headers()["retry-after"], "2");
        assert_eq!(retry_seconds(Duration::ZERO), 1);
        assert_eq!(retry_seconds(Duration::from_secs(3)), 3);
    }
}
