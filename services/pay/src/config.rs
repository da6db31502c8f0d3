//! The pay worker's configuration, read once from the environment (or flags).

use std::net::SocketAddr;
use std::time::Duration;

use flash_kit::config::CommonConfig;

/// flash-pay settings; every field is an environment variable.
#[derive(Clone, Debug, clap::Parser)]
#[command(name = "flash-pay", version, about = "Flash Tickets payment worker")]
pub struct Config {
    /// Address of the worker's ops port (`/live`, `/ready`, `/metrics`; internal only).
    #[arg(long, env = "PAY_OPS_ADDR", default_value = "0.0.0.0:3100")]
    pub ops_addr: SocketAddr,

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
    pub worker: WorkerConfig,

    #[command(flatten)]
    pub provider: ProviderConfig,

    #[command(flatten)]
    pub common: CommonConfig,
}

/// How requests are consumed, retried and dead-lettered.
#[derive(Clone, Copy, Debug, clap::Args)]
pub struct WorkerConfig {
    /// Unacknowledged requests the broker hands this worker at once.
    #[arg(long, env = "PAY_PREFETCH", default_value_t = 512)]
    pub prefetch: u16,
    /// Provider calls in flight at once.
    #[arg(long, env = "PAY_CONCURRENCY", default_value_t = 256)]
    pub concurrency: usize,
    /// Attempts per payment (transient failures) before it is dead-lettered.
    #[arg(long, env = "PAY_MAX_ATTEMPTS", default_value_t = 5)]
    pub max_attempts: u32,
    /// Wait before the first retry; doubled for each further one.
    #[arg(long, env = "PAY_RETRY_BASE_MS", default_value_t = 1000)]
    pub retry_base_ms: u64,
    /// Longest wait between retries.
    #[arg(long, env = "PAY_RETRY_MAX_MS", default_value_t = 60_000)]
    pub retry_max_ms: u64,
    /// A provider call taking longer is a transient failure.
    #[arg(long, env = "PAY_PROVIDER_TIMEOUT_MS", default_value_t = 10_000)]
    pub provider_timeout_ms: u64,
}

impl Default for WorkerConfig {
    fn default() -> Self {
        Self {
            prefetch: 512,
            concurrency: 256,
            max_attempts: 5,
            retry_base_ms: 1000,
            retry_max_ms: 60_000,
            provider_timeout_ms: 10_000,
        }
    }
}

impl WorkerConfig {
    /// The wait before attempt `next` (2, 3, …): base × 2^(next − 2), at most the maximum.
    #[must_use]
    pub fn backoff(&self, next: u32) -> Duration {
        let doublings = next.saturating_sub(2).min(32);
        let wait = self.retry_base_ms.saturating_mul(1u64 << doublings);
        Duration::from_millis(wait.min(self.retry_max_ms))
    }

    #[must_use]
    pub fn provider_timeout(&self) -> Duration {
        Duration::from_millis(self.provider_timeout_ms)
    }
}

/// The simulated provider: what it decides is a pure function of the seed and the
/// `payment_id` (and, for latency and transient failures, the attempt).
#[derive(Clone, Copy, Debug, clap::Args)]
pub struct ProviderConfig {
    /// Seed of every simulated decision.
    #[arg(long, env = "PAY_SEED", default_value_t = 0)]
    pub seed: u64,
    /// Median provider latency (0: answer at once).
    #[arg(long, env = "PAY_LATENCY_P50_MS", default_value_t = 50.0)]
    pub latency_p50_ms: f64,
    /// 99th-percentile provider latency (log-normal between the two).
    #[arg(long, env = "PAY_LATENCY_P99_MS", default_value_t = 250.0)]
    pub latency_p99_ms: f64,
    /// Share of payments declined (0–1).
    #[arg(long, env = "PAY_DECLINE_RATE", default_value_t = 0.05)]
    pub decline_rate: f64,
    /// Share of attempts that fail transiently (0–1).
    #[arg(long, env = "PAY_TRANSIENT_RATE", default_value_t = 0.02)]
    pub transient_rate: f64,
}

impl Default for ProviderConfig {
    fn default() -> Self {
        Self {
            seed: 0,
            latency_p50_ms: 50.0,
            latency_p99_ms: 250.0,
            decline_rate: 0.05,
            transient_rate: 0.02,
        }
    }
}

impl Config {
    /// The configuration from the environment alone (no command-line flags).
    pub fn from_env() -> Result<Self, clap::Error> {
        <Self as clap::Parser>::try_parse_from(["flash-pay"])
    }
}
