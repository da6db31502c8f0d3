//! The api's configuration, read once from the environment (or flags).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use flash_kit::config::CommonConfig;
use flash_kit::limits::{Rate, parse_rate};
use flash_kit::stores::RedisConfig;
use flash_protocol::claims::{ACCESS_AUDIENCE, ACCESS_ISSUER, GATE_AUDIENCE, GATE_ISSUER};
use flash_tokens::keys::{DEV_ACCESS_KEY, DEV_GATE_KEY};
use flash_tokens::{Jwks, KeyError, KeyRing, SigningKey, source};
use secrecy::SecretString;

/// flash-api settings; every field is an environment variable.
#[derive(Clone, Debug, clap::Args)]
pub struct Config {
    /// Address of the api's port (public `/api/…` routes and `/live`, `/ready`, `/metrics`).
    #[arg(long, env = "API_ADDR", default_value = "0.0.0.0:4000")]
    pub addr: SocketAddr,

    /// Postgres database of the api.
    #[arg(
        long,
        env = "DATABASE_URL",
        default_value = "postgres://postgres@127.0.0.1:5432/flash"
    )]
    pub database_url: String,

    /// Connections in the api's Postgres pool.
    #[arg(long, env = "DATABASE_MAX_CONNECTIONS", default_value_t = 16)]
    pub database_max_connections: u32,

    /// Run the embedded migrations at start-up (the deploy hook runs `flash-api migrate`
    /// instead and sets this to false).
    #[arg(long, env = "MIGRATE_ON_START", default_value_t = true, action = clap::ArgAction::Set)]
    pub migrate_on_start: bool,

    /// Redis holding the rate limits every replica shares (the gateway's Redis). A limiter
    /// that cannot reach it lets calls through; the api sells without it.
    #[command(flatten)]
    pub redis: RedisConfig,

    /// RabbitMQ (`amqp://`, or `amqps://` for TLS).
    #[arg(
        long,
        env = "AMQP_URL",
        default_value = "amqp://guest:guest@127.0.0.1:5672/%2f"
    )]
    pub amqp_url: String,

    /// Prefix of every exchange and queue name (empty in production).
    #[arg(long, env = "AMQP_NAME_PREFIX", default_value = "")]
    pub amqp_name_prefix: String,

    /// E-mail of the admin account ensured at start-up (with `FLASH_ADMIN_PASSWORD`).
    #[arg(long, env = "FLASH_ADMIN_EMAIL")]
    pub admin_email: Option<String>,

    /// Password of the bootstrap admin; used only when the account is created.
    #[arg(long, env = "FLASH_ADMIN_PASSWORD", hide_env_values = true, value_parser = parse_secret)]
    pub admin_password: Option<SecretString>,

    #[command(flatten)]
    pub keys: KeyConfig,

    #[command(flatten)]
    pub argon2: Argon2Config,

    #[command(flatten)]
    pub limits: LimitConfig,

    #[command(flatten)]
    pub retention: RetentionConfig,

    #[command(flatten)]
    pub orders: OrderConfig,

    #[command(flatten)]
    pub common: CommonConfig,
}

fn parse_secret(value: &str) -> Result<SecretString, std::convert::Infallible> {
    Ok(SecretString::from(value))
}

/// Argon2id cost of password hashes (defaults: OWASP's 19 MiB, 2 passes, 1 lane) and the
/// pool that bounds them: `min(threads, memory budget / memory per hash)` run at once.
#[derive(Clone, Copy, Debug, clap::Args)]
pub struct Argon2Config {
    /// Memory per hash, KiB.
    #[arg(long, env = "ARGON2_MEMORY_KIB", default_value_t = 19_456)]
    pub memory_kib: u32,
    /// Passes over memory.
    #[arg(long, env = "ARGON2_ITERATIONS", default_value_t = 2)]
    pub iterations: u32,
    /// Lanes.
    #[arg(long, env = "ARGON2_PARALLELISM", default_value_t = 1)]
    pub parallelism: u32,
    /// Memory all hashes running at once may take, MiB (keep it well under the pod's limit).
    #[arg(long, env = "ARGON2_MEMORY_BUDGET_MIB", default_value_t = 256)]
    pub memory_budget_mib: u64,
    /// Threads that hash (0: one fewer than the cores, at least one).
    #[arg(long, env = "ARGON2_THREADS", default_value_t = 0)]
    pub threads: usize,
    /// Milliseconds a login or sign-up waits for a hashing slot before it is answered 503
    /// `UNAVAILABLE` with `Retry-After`.
    #[arg(long, env = "ARGON2_QUEUE_WAIT_MS", default_value_t = 250)]
    pub queue_wait_ms: u64,
    /// Nice value of the hashing threads (0–19): above 0 they give the CPU to requests first,
    /// so a login flood does not slow the rest of the api.
    #[arg(long, env = "ARGON2_NICE", default_value_t = 10, value_parser = clap::value_parser!(i32).range(0..=19))]
    pub nice: i32,
}

impl Argon2Config {
    /// A cheap cost for tests and local runs (1 MiB, 1 pass), with the default pool.
    #[must_use]
    pub const fn cheap() -> Self {
        Self {
            memory_kib: 1024,
            iterations: 1,
            parallelism: 1,
            memory_budget_mib: 256,
            threads: 0,
            queue_wait_ms: 250,
            nice: 10,
        }
    }
}

/// Rate limits, each `COUNT/WINDOW` (e.g. `5/15min`; `off` turns one off), shared by every
/// replica through Redis. The per-address and per-network defaults are sized for carrier-grade
/// NAT, where thousands of people share one address.
#[derive(Clone, Copy, Debug, clap::Args)]
pub struct LimitConfig {
    /// Logins per client address.
    #[arg(long, env = "LIMIT_LOGIN_PER_ADDRESS", default_value = defaults::LIMIT_LOGIN_PER_ADDRESS, value_parser = parse_rate)]
    pub login_per_address: Rate,
    /// Logins per network (/24 for IPv4, /64 for IPv6).
    #[arg(long, env = "LIMIT_LOGIN_PER_NETWORK", default_value = defaults::LIMIT_LOGIN_PER_NETWORK, value_parser = parse_rate)]
    pub login_per_network: Rate,
    /// Sign-ups per client address.
    #[arg(long, env = "LIMIT_SIGNUP_PER_ADDRESS", default_value = defaults::LIMIT_SIGNUP_PER_ADDRESS, value_parser = parse_rate)]
    pub signup_per_address: Rate,
    /// Sign-ups per network (/24, /64).
    #[arg(long, env = "LIMIT_SIGNUP_PER_NETWORK", default_value = defaults::LIMIT_SIGNUP_PER_NETWORK, value_parser = parse_rate)]
    pub signup_per_network: Rate,
    /// Failed logins per account from one address (then that address is locked out of that
    /// account until the window allows another try).
    #[arg(long, env = "LIMIT_LOGIN_FAILURES_PER_ACCOUNT_ADDRESS", default_value = defaults::LIMIT_LOGIN_FAILURES_PER_ACCOUNT_ADDRESS, value_parser = parse_rate)]
    pub login_failures_per_account_address: Rate,
    /// Failed logins per account from anywhere; addresses the account logged in from before
    /// are exempt, so a stranger cannot lock the owner out.
    #[arg(long, env = "LIMIT_LOGIN_FAILURES_PER_ACCOUNT", default_value = defaults::LIMIT_LOGIN_FAILURES_PER_ACCOUNT, value_parser = parse_rate)]
    pub login_failures_per_account: Rate,
    /// Days an address an account logged in from stays exempt from the account's lock.
    #[arg(long, env = "KNOWN_ADDRESS_DAYS", default_value_t = defaults::KNOWN_ADDRESS_DAYS)]
    pub known_address_days: u32,
    /// Refreshes per refresh-token family (one login's chain of tokens).
    #[arg(long, env = "LIMIT_REFRESH_PER_FAMILY", default_value = defaults::LIMIT_REFRESH_PER_FAMILY, value_parser = parse_rate)]
    pub refresh_per_family: Rate,
    /// Orders per user.
    #[arg(long, env = "LIMIT_ORDERS_PER_USER", default_value = defaults::LIMIT_ORDERS_PER_USER, value_parser = parse_rate)]
    pub orders_per_user: Rate,
}

/// Defaults of the limits, retention windows and orders (one place for the flags and the
/// `Default`s).
pub mod defaults {
    pub const HOLD_SECS: u64 = 600;
    pub const BATCH_MAX: usize = 256;
    pub const BATCH_WORKERS: usize = 1;
    pub const SWEEP_MS: u64 = 1000;
    pub const OUTBOX_BATCH: i64 = 500;
    pub const PAYMENT_REASK_SECS: u64 = 30;
    pub const PAYMENT_REASK_MAX: u32 = 4;
    pub const RESULT_REDELIVERY_MS: u64 = 500;
    pub const LIMIT_LOGIN_PER_ADDRESS: &str = "300/min";
    pub const LIMIT_LOGIN_PER_NETWORK: &str = "3000/min";
    pub const LIMIT_SIGNUP_PER_ADDRESS: &str = "60/10min";
    pub const LIMIT_SIGNUP_PER_NETWORK: &str = "600/10min";
    pub const LIMIT_LOGIN_FAILURES_PER_ACCOUNT_ADDRESS: &str = "5/15min";
    pub const LIMIT_LOGIN_FAILURES_PER_ACCOUNT: &str = "50/h";
    pub const LIMIT_REFRESH_PER_FAMILY: &str = "10/min";
    pub const LIMIT_ORDERS_PER_USER: &str = "30/min";
    pub const KNOWN_ADDRESS_DAYS: u32 = 90;
    pub const IDEMPOTENCY_KEY_RETENTION_HOURS: u64 = 24;
    pub const CONSUMED_GATE_TOKEN_RETENTION_HOURS: u64 = 24;
    pub const REFRESH_TOKEN_RETENTION_DAYS: u64 = 7;
    pub const PAYMENT_RESULT_RETENTION_DAYS: u64 = 30;
    pub const OUTBOX_RETENTION_HOURS: u64 = 24;
    pub const RETENTION_SWEEP_SECS: u64 = 600;
}

impl Default for LimitConfig {
    fn default() -> Self {
        let rate = |text: &str| text.parse().unwrap_or(Rate::OFF);
        Self {
            login_per_address: rate(defaults::LIMIT_LOGIN_PER_ADDRESS),
            login_per_network: rate(defaults::LIMIT_LOGIN_PER_NETWORK),
            signup_per_address: rate(defaults::LIMIT_SIGNUP_PER_ADDRESS),
            signup_per_network: rate(defaults::LIMIT_SIGNUP_PER_NETWORK),
            login_failures_per_account_address: rate(
                defaults::LIMIT_LOGIN_FAILURES_PER_ACCOUNT_ADDRESS,
            ),
            login_failures_per_account: rate(defaults::LIMIT_LOGIN_FAILURES_PER_ACCOUNT),
            known_address_days: defaults::KNOWN_ADDRESS_DAYS,
            refresh_per_family: rate(defaults::LIMIT_REFRESH_PER_FAMILY),
            orders_per_user: rate(defaults::LIMIT_ORDERS_PER_USER),
        }
    }
}

/// Key material and token lifetimes.
#[derive(Clone, Debug, Default, clap::Args)]
pub struct KeyConfig {
    /// Access-token signing key: an Ed25519 PKCS#8 PEM (`openssl genpkey -algorithm ed25519`).
    #[arg(long, env = "API_SIGNING_KEY", hide_env_values = true)]
    pub api_signing_key: Option<String>,

    /// File holding the access-token signing key (PEM), e.g. a mounted secret.
    #[arg(long, env = "API_SIGNING_KEY_FILE")]
    pub api_signing_key_file: Option<PathBuf>,

    /// Earlier access-token keys still accepted and published (a JWKS), while rotating.
    #[arg(long, env = "API_PREVIOUS_JWKS")]
    pub api_previous_jwks: Option<String>,

    /// URL of the gateway's JWKS (`…/queue/.well-known/jwks.json`) for gate tokens,
    /// refreshed every few minutes and when a token names an unknown key.
    #[arg(long, env = "GATE_JWKS_URL")]
    pub gate_jwks_url: Option<String>,

    /// A JWKS document of keys accepted for gate tokens (in addition to the URL's).
    #[arg(long, env = "GATE_JWKS")]
    pub gate_jwks: Option<String>,

    /// Local runs only: derive the well-known development keys (anyone can derive them).
    #[arg(long, env = "FLASH_DEV_KEYS", default_value_t = false, action = clap::ArgAction::Set)]
    pub dev_keys: bool,

    /// Seconds an access token is valid.
    #[arg(long, env = "ACCESS_TOKEN_TTL_SECS", default_value_t = 900)]
    pub access_ttl_secs: u64,

    /// Seconds a refresh token is valid.
    #[arg(long, env = "REFRESH_TOKEN_TTL_SECS", default_value_t = 30 * 24 * 3600)]
    pub refresh_ttl_secs: u64,

    /// Seconds after a refresh during which the same refresh token, presented again (a retry
    /// of a lost answer, a client racing itself), gets the same new pair instead of revoking
    /// the family.
    #[arg(long, env = "REFRESH_REUSE_GRACE_SECS", default_value_t = 30)]
    pub refresh_reuse_grace_secs: u64,
}

/// How orders are taken.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum OrderStrategy {
    /// Concurrent orders are grouped into one transaction each (the default).
    Batched,
    /// One transaction per order against the event's stock row (for comparison only).
    SingleRow,
}

/// Orders, holds and the background work around them.
#[derive(Clone, Copy, Debug, clap::Args)]
pub struct OrderConfig {
    /// Seconds an unpaid order holds its tickets before it expires.
    #[arg(long, env = "ORDER_HOLD_SECS", default_value_t = defaults::HOLD_SECS)]
    pub hold_secs: u64,
    /// `batched` (group commit) or `single-row` (one transaction per order; benchmarks only).
    #[arg(long, env = "ORDER_STRATEGY", value_enum, default_value = "batched")]
    pub strategy: OrderStrategy,
    /// Orders written in one transaction at most.
    #[arg(long, env = "ORDER_BATCH_MAX", default_value_t = defaults::BATCH_MAX)]
    pub batch_max: usize,
    /// Batches in flight at once (one database connection each).
    #[arg(long, env = "ORDER_BATCH_WORKERS", default_value_t = defaults::BATCH_WORKERS)]
    pub batch_workers: usize,
    /// Milliseconds between sweeps for expired holds.
    #[arg(long, env = "HOLD_SWEEP_MS", default_value_t = defaults::SWEEP_MS)]
    pub sweep_ms: u64,
    /// Outbox messages published per relay round at most.
    #[arg(long, env = "OUTBOX_BATCH", default_value_t = defaults::OUTBOX_BATCH)]
    pub outbox_batch: i64,
    /// Seconds an order may wait for its payment's outcome before payment is asked for
    /// again, with the same payment id (0: never).
    #[arg(long, env = "PAYMENT_REASK_SECS", default_value_t = defaults::PAYMENT_REASK_SECS)]
    pub payment_reask_secs: u64,
    /// Times payment is asked for again at most, each ask waiting twice as long as the one
    /// before (30 s, 60 s, 120 s, 240 s by default).
    #[arg(long, env = "PAYMENT_REASK_MAX", default_value_t = defaults::PAYMENT_REASK_MAX)]
    pub payment_reask_max: u32,
    /// Milliseconds a payment result that failed to apply waits, per delivery so far (at
    /// most 5 s), before it is delivered again; after 10 deliveries it goes to
    /// `api.payment-results.dead`.
    #[arg(long, env = "PAYMENT_RESULT_REDELIVERY_MS", default_value_t = defaults::RESULT_REDELIVERY_MS)]
    pub result_redelivery_ms: u64,
}

impl Default for OrderConfig {
    fn default() -> Self {
        Self {
            hold_secs: defaults::HOLD_SECS,
            strategy: OrderStrategy::Batched,
            batch_max: defaults::BATCH_MAX,
            batch_workers: defaults::BATCH_WORKERS,
            sweep_ms: defaults::SWEEP_MS,
            outbox_batch: defaults::OUTBOX_BATCH,
            payment_reask_secs: defaults::PAYMENT_REASK_SECS,
            payment_reask_max: defaults::PAYMENT_REASK_MAX,
            result_redelivery_ms: defaults::RESULT_REDELIVERY_MS,
        }
    }
}

impl OrderConfig {
    #[must_use]
    pub fn hold(&self) -> Duration {
        Duration::from_secs(self.hold_secs)
    }

    /// When an order waiting for its payment's outcome is asked for again (`None`: never).
    #[must_use]
    pub fn payment_reask(&self) -> Option<crate::holds::Reask> {
        (self.payment_reask_secs > 0 && self.payment_reask_max > 0).then(|| crate::holds::Reask {
            after: Duration::from_secs(self.payment_reask_secs),
            most: self.payment_reask_max,
        })
    }
}

/// How long records kept only to recognise a repeat are kept, then deleted by a sweep.
#[derive(Clone, Copy, Debug, clap::Args)]
pub struct RetentionConfig {
    /// Hours an `Idempotency-Key` is remembered (a repeat within them gets the same order).
    #[arg(long, env = "IDEMPOTENCY_KEY_RETENTION_HOURS", default_value_t = defaults::IDEMPOTENCY_KEY_RETENTION_HOURS)]
    pub idempotency_key_hours: u64,
    /// Hours a used gate token's id is remembered (at least 2: a gate token lives at most an
    /// hour, after which the api refuses it as expired anyway).
    #[arg(long, env = "CONSUMED_GATE_TOKEN_RETENTION_HOURS", default_value_t = defaults::CONSUMED_GATE_TOKEN_RETENTION_HOURS)]
    pub consumed_gate_token_hours: u64,
    /// Days a refresh token is kept after it expired or was revoked (a used one is kept until
    /// then, to recognise its replay).
    #[arg(long, env = "REFRESH_TOKEN_RETENTION_DAYS", default_value_t = defaults::REFRESH_TOKEN_RETENTION_DAYS)]
    pub refresh_token_days: u64,
    /// Days a payment's outcome is kept after it arrived (a redelivery within them is
    /// recognised as one).
    #[arg(long, env = "PAYMENT_RESULT_RETENTION_DAYS", default_value_t = defaults::PAYMENT_RESULT_RETENTION_DAYS)]
    pub payment_result_days: u64,
    /// Hours a published outbox message is kept.
    #[arg(long, env = "OUTBOX_RETENTION_HOURS", default_value_t = defaults::OUTBOX_RETENTION_HOURS)]
    pub outbox_hours: u64,
    /// Seconds between retention sweeps.
    #[arg(long, env = "RETENTION_SWEEP_SECS", default_value_t = defaults::RETENTION_SWEEP_SECS)]
    pub sweep_secs: u64,
}

impl Default for RetentionConfig {
    fn default() -> Self {
        Self {
            idempotency_key_hours: defaults::IDEMPOTENCY_KEY_RETENTION_HOURS,
            consumed_gate_token_hours: defaults::CONSUMED_GATE_TOKEN_RETENTION_HOURS,
            refresh_token_days: defaults::REFRESH_TOKEN_RETENTION_DAYS,
            payment_result_days: defaults::PAYMENT_RESULT_RETENTION_DAYS,
            outbox_hours: defaults::OUTBOX_RETENTION_HOURS,
            sweep_secs: defaults::RETENTION_SWEEP_SECS,
        }
    }
}

impl RetentionConfig {
    fn hours(hours: u64) -> Duration {
        Duration::from_secs(hours.saturating_mul(3600))
    }

    #[must_use]
    pub fn idempotency_keys(&self) -> Duration {
        Self::hours(self.idempotency_key_hours)
    }

    #[must_use]
    pub fn consumed_gate_tokens(&self) -> Duration {
        Self::hours(self.consumed_gate_token_hours.max(2))
    }

    #[must_use]
    pub fn refresh_tokens(&self) -> Duration {
        Self::hours(self.refresh_token_days.saturating_mul(24))
    }

    #[must_use]
    pub fn payment_results(&self) -> Duration {
        Self::hours(self.payment_result_days.saturating_mul(24))
    }

    #[must_use]
    pub fn outbox(&self) -> Duration {
        Self::hours(self.outbox_hours)
    }

    #[must_use]
    pub fn sweep_every(&self) -> Duration {
        Duration::from_secs(self.sweep_secs.max(1))
    }
}

/// Key configuration that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum KeyConfigError {
    #[error(
        "no access-token signing key: set API_SIGNING_KEY or API_SIGNING_KEY_FILE (or FLASH_DEV_KEYS=true for local runs)"
    )]
    NoSigningKey,
    #[error(
        "no keys for gate tokens: set GATE_JWKS_URL or GATE_JWKS (or FLASH_DEV_KEYS=true for local runs)"
    )]
    NoGateKeys,
    #[error("key material: {0}")]
    Key(#[from] KeyError),
}

impl KeyConfig {
    /// How long tokens live.
    #[must_use]
    pub fn lifetimes(&self) -> crate::auth::TokenLifetimes {
        crate::auth::TokenLifetimes {
            access: Duration::from_secs(self.access_ttl_secs),
            refresh: Duration::from_secs(self.refresh_ttl_secs),
            reuse_grace: Duration::from_secs(self.refresh_reuse_grace_secs),
        }
    }

    /// Refuses the dev keys beside real key material.
    pub fn check(&self) -> Result<(), KeyConfigError> {
        Ok(source::refuse_dev_keys_beside(
            self.dev_keys,
            &[
                ("API_SIGNING_KEY", self.api_signing_key.is_some()),
                ("API_SIGNING_KEY_FILE", self.api_signing_key_file.is_some()),
                ("API_PREVIOUS_JWKS", self.api_previous_jwks.is_some()),
                ("GATE_JWKS_URL", self.gate_jwks_url.is_some()),
                ("GATE_JWKS", self.gate_jwks.is_some()),
            ],
        )?)
    }

    /// The access-token signing key.
    pub fn signing_key(&self) -> Result<SigningKey, KeyConfigError> {
        source::signing_key(
            self.api_signing_key.as_deref(),
            self.api_signing_key_file.as_deref(),
            self.dev_keys.then_some(DEV_ACCESS_KEY),
        )?
        .ok_or(KeyConfigError::NoSigningKey)
    }

    /// The access-token keys published and accepted: the signing key and earlier ones.
    pub fn access_jwks(&self, signing: &SigningKey) -> Result<Jwks, KeyConfigError> {
        let previous = match &self.api_previous_jwks {
            Some(json) => Jwks::from_json(json)?,
            None => Jwks::default(),
        };
        Ok(signing.jwks().merged(&previous))
    }

    /// The access-token verifier (the api checks its own tokens).
    pub fn access_keys(&self, jwks: &Jwks) -> Result<Arc<KeyRing>, KeyConfigError> {
        Ok(Arc::new(KeyRing::fixed(
            jwks,
            ACCESS_ISSUER,
            ACCESS_AUDIENCE,
        )?))
    }

    /// The keys gate tokens are verified against.
    pub fn gate_keys(&self) -> Result<Arc<KeyRing>, KeyConfigError> {
        source::verification_ring(
            self.gate_jwks_url.as_deref(),
            self.gate_jwks.as_deref(),
            self.dev_keys.then_some(DEV_GATE_KEY),
            GATE_ISSUER,
            GATE_AUDIENCE,
        )?
        .map(Arc::new)
        .ok_or(KeyConfigError::NoGateKeys)
    }
}

#[derive(Debug, clap::Parser)]
#[command(
    name = "flash-api",
    version,
    about = "Flash Tickets api: users, events, orders"
)]
struct Cli {
    #[command(flatten)]
    config: Config,
}

impl Config {
    /// The configuration from the environment alone (no command-line flags).
    pub fn from_env() -> Result<Self, clap::Error> {
        <Cli as clap::Parser>::try_parse_from(["flash-api"]).map(|cli| cli.config)
    }
}
