//! The gateway's configuration, read once from the environment (or flags).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use flash_kit::config::CommonConfig;
use flash_kit::limits::{Rate, parse_rate};
use flash_kit::stores::RedisConfig;
use flash_protocol::claims::{ACCESS_AUDIENCE, ACCESS_ISSUER};
use flash_tokens::{Jwks, KeyError, KeyRing, SigningKey, source};

pub use flash_tokens::keys::{DEV_ACCESS_KEY, DEV_GATE_KEY};

/// flash-gateway settings; every field is an environment variable.
#[derive(Clone, Debug, clap::Parser)]
#[command(
    name = "flash-gateway",
    version,
    about = "Flash Tickets waiting-room gateway"
)]
pub struct Config {
    /// Address of the gateway's port (public `/queue/…` routes and `/live`, `/ready`, `/metrics`).
    #[arg(long, env = "GATEWAY_ADDR", default_value = "0.0.0.0:3000")]
    pub addr: SocketAddr,

    /// Redis holding the queues (and the rate limits every replica shares).
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

    #[command(flatten)]
    pub keys: KeyConfig,

    /// Milliseconds between admission ticks of each queue (every replica ticks; the Lua
    /// script keeps the total at the configured rate).
    #[arg(long, env = "TICK_INTERVAL_MS", default_value_t = 100)]
    pub tick_interval_ms: u64,

    /// Seconds an ended event's queue is kept in Redis (for late status reads) before its keys
    /// expire; it stops being ticked at once.
    #[arg(long, env = "QUEUE_RETENTION_SECS", default_value_t = 86_400)]
    pub queue_retention_secs: u64,

    /// Queues opened from now on keep the numbers joins give in a list (cheaper for Redis than
    /// the hash of earlier versions). Set it to false while replicas of a version before the
    /// list still run beside this one and a queue may open meanwhile: those replicas' ticks
    /// read the hash only, and would pass over listed numbers.
    #[arg(long, env = "QUEUE_NUMBERS_LIST", default_value_t = true, action = clap::ArgAction::Set)]
    pub queue_numbers_list: bool,

    /// Seconds a WebSocket client has to send its `auth` frame (the contract says 5).
    #[arg(long, env = "WS_AUTH_TIMEOUT_SECS", default_value_t = flash_protocol::ws::AUTH_DEADLINE_SECS)]
    pub ws_auth_timeout_secs: u64,

    /// Milliseconds over which a stopping gateway closes its WebSockets (1012), each at a
    /// random moment, so that the buyers' reconnections reach the other replicas spread out
    /// rather than all at once; at most half the shutdown grace (0: all at once).
    #[arg(long, env = "WS_DRAIN_MS", default_value_t = 10_000)]
    pub ws_drain_ms: u64,

    #[command(flatten)]
    pub limits: LimitConfig,

    #[command(flatten)]
    pub common: CommonConfig,
}

/// Key material: the gate-token signing key and the keys access tokens are checked against.
#[derive(Clone, Debug, Default, clap::Args)]
pub struct KeyConfig {
    /// Gate-token signing key: an Ed25519 PKCS#8 PEM (`openssl genpkey -algorithm ed25519`).
    #[arg(long, env = "GATE_SIGNING_KEY", hide_env_values = true)]
    pub gate_signing_key: Option<String>,

    /// File holding the gate-token signing key (PEM), e.g. a mounted secret.
    #[arg(long, env = "GATE_SIGNING_KEY_FILE")]
    pub gate_signing_key_file: Option<PathBuf>,

    /// Earlier gate-token keys still published (a JWKS), while rotating: gate tokens signed
    /// with them before the rotation stay valid at the api until they expire.
    #[arg(long, env = "GATE_PREVIOUS_JWKS")]
    pub gate_previous_jwks: Option<String>,

    /// URL of the api's JWKS (`…/api/.well-known/jwks.json`), refreshed every few minutes and
    /// when a token names an unknown key.
    #[arg(long, env = "ACCESS_JWKS_URL")]
    pub access_jwks_url: Option<String>,

    /// A JWKS document of keys accepted for access tokens (in addition to the URL's).
    #[arg(long, env = "ACCESS_JWKS")]
    pub access_jwks: Option<String>,

    /// Local runs only: derive the well-known development keys (anyone can derive them).
    #[arg(long, env = "FLASH_DEV_KEYS", default_value_t = false, action = clap::ArgAction::Set)]
    pub dev_keys: bool,
}

/// Abuse limits. Joins and status polls are limited per replica, in memory (the hot path:
/// they protect the replica's CPU). WebSocket upgrades and leaves are limited in Redis, so
/// they hold across replicas (`COUNT/WINDOW`, e.g. `30/min`; `off` turns one off); frames
/// are limited per socket.
#[derive(Clone, Copy, Debug, clap::Args)]
pub struct LimitConfig {
    /// Joins and status polls per second per user.
    #[arg(long, env = "RATE_USER_PER_SEC", default_value_t = 5)]
    pub user_per_sec: u32,
    /// Burst allowance per user.
    #[arg(long, env = "RATE_USER_BURST", default_value_t = 20)]
    pub user_burst: u32,
    /// Joins and status polls per second per client IP.
    #[arg(long, env = "RATE_IP_PER_SEC", default_value_t = 500)]
    pub ip_per_sec: u32,
    /// Burst allowance per client IP.
    #[arg(long, env = "RATE_IP_BURST", default_value_t = 2000)]
    pub ip_burst: u32,
    /// WebSocket connections opened per user (reloads and reconnects included).
    #[arg(long, env = "LIMIT_WS_PER_USER", default_value = defaults::LIMIT_WS_PER_USER, value_parser = parse_rate)]
    pub ws_per_user: Rate,
    /// WebSocket connections opened per client address (sized for carrier-grade NAT, where
    /// thousands of fans may share one address).
    #[arg(long, env = "LIMIT_WS_PER_ADDRESS", default_value = defaults::LIMIT_WS_PER_ADDRESS, value_parser = parse_rate)]
    pub ws_per_address: Rate,
    /// Frames a client may send on one socket (pings; the socket is closed with 1008 beyond).
    #[arg(long, env = "LIMIT_FRAMES_PER_SOCKET", default_value = defaults::LIMIT_FRAMES_PER_SOCKET, value_parser = parse_rate)]
    pub frames_per_socket: Rate,
    /// Leaves per user.
    #[arg(long, env = "LIMIT_LEAVES_PER_USER", default_value = defaults::LIMIT_LEAVES_PER_USER, value_parser = parse_rate)]
    pub leaves_per_user: Rate,
}

/// Defaults of the limits (one place for the flags and [`LimitConfig::default`]).
pub mod defaults {
    pub const LIMIT_WS_PER_USER: &str = "30/min";
    pub const LIMIT_WS_PER_ADDRESS: &str = "3000/min";
    pub const LIMIT_FRAMES_PER_SOCKET: &str = "30/min";
    pub const LIMIT_LEAVES_PER_USER: &str = "10/min";
}

impl Default for LimitConfig {
    fn default() -> Self {
        let rate = |text: &str| text.parse().unwrap_or(Rate::OFF);
        Self {
            user_per_sec: 5,
            user_burst: 20,
            ip_per_sec: 500,
            ip_burst: 2000,
            ws_per_user: rate(defaults::LIMIT_WS_PER_USER),
            ws_per_address: rate(defaults::LIMIT_WS_PER_ADDRESS),
            frames_per_socket: rate(defaults::LIMIT_FRAMES_PER_SOCKET),
            leaves_per_user: rate(defaults::LIMIT_LEAVES_PER_USER),
        }
    }
}

/// Key configuration that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum KeyConfigError {
    #[error(
        "no gate-token signing key: set GATE_SIGNING_KEY or GATE_SIGNING_KEY_FILE (or FLASH_DEV_KEYS=true for local runs)"
    )]
    NoSigningKey,
    #[error(
        "no keys for access tokens: set ACCESS_JWKS_URL or ACCESS_JWKS (or FLASH_DEV_KEYS=true for local runs)"
    )]
    NoAccessKeys,
    #[error("key material: {0}")]
    Key(#[from] KeyError),
}

impl KeyConfig {
    /// Refuses the dev keys beside real key material.
    pub fn check(&self) -> Result<(), KeyConfigError> {
        Ok(source::refuse_dev_keys_beside(
            self.dev_keys,
            &[
                ("GATE_SIGNING_KEY", self.gate_signing_key.is_some()),
                (
                    "GATE_SIGNING_KEY_FILE",
                    self.gate_signing_key_file.is_some(),
                ),
                ("GATE_PREVIOUS_JWKS", self.gate_previous_jwks.is_some()),
                ("ACCESS_JWKS_URL", self.access_jwks_url.is_some()),
                ("ACCESS_JWKS", self.access_jwks.is_some()),
            ],
        )?)
    }

    /// The gate-token keys published: the signing key's and the previous ones.
    pub fn gate_jwks(&self, signing: &SigningKey) -> Result<Jwks, KeyConfigError> {
        let previous = match &self.gate_previous_jwks {
            Some(json) => Jwks::from_json(json)?,
            None => Jwks::default(),
        };
        Ok(signing.jwks().merged(&previous))
    }

    /// The gate-token signing key.
    pub fn signing_key(&self) -> Result<SigningKey, KeyConfigError> {
        source::signing_key(
            self.gate_signing_key.as_deref(),
            self.gate_signing_key_file.as_deref(),
            self.dev_keys.then_some(DEV_GATE_KEY),
        )?
        .ok_or(KeyConfigError::NoSigningKey)
    }

    /// The keys access tokens are verified against.
    pub fn access_keys(&self) -> Result<Arc<KeyRing>, KeyConfigError> {
        source::verification_ring(
            self.access_jwks_url.as_deref(),
            self.access_jwks.as_deref(),
            self.dev_keys.then_some(DEV_ACCESS_KEY),
            ACCESS_ISSUER,
            ACCESS_AUDIENCE,
        )?
        .map(Arc::new)
        .ok_or(KeyConfigError::NoAccessKeys)
    }
}

impl Config {
    /// The configuration from the environment alone (no command-line flags).
    pub fn from_env() -> Result<Self, clap::Error> {
        <Self as clap::Parser>::try_parse_from(["flash-gateway"])
    }

    #[must_use]
    pub fn tick_interval(&self) -> Duration {
        Duration::from_millis(self.tick_interval_ms.max(10))
    }
}
