//! What the api limits, and whom: sign-ups and logins per address and per network; failed
//! logins per account, tightly from one address and loosely from anywhere but the addresses
//! the account logged in from before (so a stranger cannot lock the owner out); refreshes per
//! token family; orders per user. The counters live in Redis ([`flash_kit::limits`]), so they
//! hold across replicas. Accounts are named in Redis by a hash of their e-mail, never the
//! e-mail itself.

use flash_kit::telemetry::{LOG_EVERY, LogThrottle};
use std::convert::Infallible;
use std::net::IpAddr;
use std::time::Duration;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use flash_kit::limits::{Count, Limit, RateLimiter, Refused, client_ip, network_of};
use flash_protocol::UserId;
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::app::AppState;
use crate::config::LimitConfig;

/// Addresses remembered per account at most (the newest).
const KNOWN_ADDRESSES_KEPT: isize = 16;

/// The client's address (the last `X-Forwarded-For` entry behind the load balancer).
#[derive(Clone, Copy, Debug)]
pub struct ClientAddr(pub IpAddr);

impl FromRequestParts<AppState> for ClientAddr {
    type Rejection = Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        Ok(Self(client_ip(parts, state.trust_forwarded_for)))
    }
}

/// A login attempt the limits let through: what its outcome is recorded against.
#[derive(Debug)]
pub struct LoginAttempt {
    address: String,
    account: String,
    /// `account|address`: the subject of the tight limit.
    pair: String,
    /// The account logged in from this address before.
    known: bool,
}

/// The api's limits.
#[derive(Clone, Debug)]
pub struct ApiLimits {
    limiter: RateLimiter,
    config: LimitConfig,
}

/// How an account is named in Redis: a hash of its normalised e-mail.
fn account_of(email: &str) -> String {
    let digest = Sha256::digest(format!("flash-account:{}", email.trim().to_lowercase()));
    digest[..16].iter().map(|b| format!("{b:02x}")).collect()
}

impl ApiLimits {
    #[must_use]
    pub fn new(limiter: RateLimiter, config: LimitConfig) -> Self {
        Self { limiter, config }
    }

    /// A sign-up from `ip`.
    pub async fn sign_up(&self, ip: IpAddr) -> Result<(), Refused> {
        let (address, network) = (ip.to_string(), network_of(ip));
        self.limiter
            .check(
                &[
                    Limit::new("signup-address", self.config.signup_per_address, &address),
                    Limit::new("signup-network", self.config.signup_per_network, &network),
                ],
                Count::Charge,
            )
            .await
    }

    /// A login from `ip` for `email`: counted per address and network, and refused while the
    /// account's failed logins are over their limits (from this address, or from anywhere for
    /// an address the account never logged in from). Checked before any password work, for
    /// accounts that exist and those that do not alike.
    pub async fn login(&self, ip: IpAddr, email: &str) -> Result<LoginAttempt, Refused> {
        let (address, network) = (ip.to_string(), network_of(ip));
        self.limiter
            .check(
                &[
                    Limit::new("login-address", self.config.login_per_address, &address),
                    Limit::new("login-network", self.config.login_per_network, &network),
                ],
                Count::Charge,
            )
            .await?;
        let account = account_of(email);
        let attempt = LoginAttempt {
            known: self.is_known(&account, &address).await,
            pair: format!("{account}|{address}"),
            account,
            address,
        };
        self.limiter
            .check(&self.failure_limits(&attempt), Count::Peek)
            .await?;
        Ok(attempt)
    }

    fn failure_limits<'a>(&self, attempt: &'a LoginAttempt) -> Vec<Limit<'a>> {
        let mut limits = vec![Limit::new(
            "login-failures-account-address",
            self.config.login_failures_per_account_address,
            &attempt.pair,
        )];
        if !attempt.known {
            limits.push(Limit::new(
                "login-failures-account",
                self.config.login_failures_per_account,
                &attempt.account,
            ));
        }
        limits
    }

    /// The attempt's password was wrong (or its account does not exist).
    pub async fn login_failed(&self, attempt: &LoginAttempt) {
        // Over the limit already (a concurrent failure): nothing more to count.
        let _ = self
            .limiter
            .check(&self.failure_limits(attempt), Count::Charge)
            .await;
    }

    /// The attempt logged in: its address is now one the account is known at.
    pub async fn login_succeeded(&self, attempt: &LoginAttempt) {
        let key = self.limiter.keys().known_addresses(&attempt.account);
        let now_ms = time::OffsetDateTime::now_utc().unix_timestamp() * 1000;
        let keep = Duration::from_secs(u64::from(self.config.known_address_days) * 86_400);
        let mut pipe = redis::pipe();
        pipe.cmd("ZADD")
            .arg(&key)
            .arg(now_ms)
            .arg(&attempt.address)
            .ignore()
            .cmd("ZREMRANGEBYRANK")
            .arg(&key)
            .arg(0)
            .arg(-KNOWN_ADDRESSES_KEPT - 1)
            .ignore()
            .cmd("PEXPIRE")
            .arg(&key)
            .arg(u64::try_from(keep.as_millis()).unwrap_or(u64::MAX))
            .ignore();
        let recorded = tokio::time::timeout(
            flash_kit::limits::LIMITER_TIMEOUT,
            pipe.query_async::<()>(&mut self.limiter.redis().clone()),
        )
        .await;
        if !matches!(recorded, Ok(Ok(()))) {
            static SITE: LogThrottle = LogThrottle::new();
            if let Some(held_back) = SITE.allow(LOG_EVERY) {
                tracing::warn!(held_back, "cannot remember a login's address");
            }
        }
    }

    async fn is_known(&self, account: &str, address: &str) -> bool {
        let key = self.limiter.keys().known_addresses(account);
        let score = tokio::time::timeout(
            flash_kit::limits::LIMITER_TIMEOUT,
            redis::cmd("ZSCORE")
                .arg(key)
                .arg(address)
                .query_async::<Option<f64>>(&mut self.limiter.redis().clone()),
        )
        .await;
        matches!(score, Ok(Ok(Some(_))))
    }

    /// A refresh in token family `family`.
    pub async fn refresh(&self, family: Uuid) -> Result<(), Refused> {
        let family = family.to_string();
        self.limiter
            .check(
                &[Limit::new(
                    "refresh-family",
                    self.config.refresh_per_family,
                    &family,
                )],
                Count::Charge,
            )
            .await
    }

    /// An order by `user`.
    pub async fn order(&self, user: UserId) -> Result<(), Refused> {
        let user = user.to_string();
        self.limiter
            .check(
                &[Limit::new(
                    "orders-user",
                    self.config.orders_per_user,
                    &user,
                )],
                Count::Charge,
            )
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_account_is_named_by_its_normalised_email_never_in_clear() {
        let name = account_of("Ada@Example.com ");
        assert_eq!(name, account_of("ada@example.com"));
        assert_ne!(name, account_of("ada@example.org"));
        assert_eq!(name.len(), 32);
        assert!(!name.contains("ada"));
    }

    #[test]
    fn every_default_limit_is_a_rate() {
        use crate::config::defaults;
        for text in [
            defaults::LIMIT_LOGIN_PER_ADDRESS,
            defaults::LIMIT_LOGIN_PER_NETWORK,
            defaults::LIMIT_SIGNUP_PER_ADDRESS,
            defaults::LIMIT_SIGNUP_PER_NETWORK,
            defaults::LIMIT_LOGIN_FAILURES_PER_ACCOUNT_ADDRESS,
            defaults::LIMIT_LOGIN_FAILURES_PER_ACCOUNT,
            defaults::LIMIT_REFRESH_PER_FAMILY,
            defaults::LIMIT_ORDERS_PER_USER,
        ] {
            let rate: flash_kit::limits::Rate = text.parse().expect(text);
            assert!(!rate.is_off(), "{text}");
        }
    }
}
