//! Settings every service shares, flattened into each service's typed config.

use std::time::Duration;

use crate::server::ConnectionLimits;

/// How logs are written.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line (for log shippers).
    Json,
}

/// Settings shared by every service.
#[derive(Clone, Debug, clap::Args)]
pub struct CommonConfig {
    /// Log format: `text` or `json`. Levels come from `RUST_LOG` (default `info`).
    #[arg(long, env = "LOG_FORMAT", value_enum, default_value = "text")]
    pub log_format: LogFormat,

    /// Seconds to finish in-flight work after SIGTERM before exiting anyway.
    #[arg(long, env = "SHUTDOWN_GRACE_SECS", default_value_t = 20)]
    pub shutdown_grace_secs: u64,

    /// Seconds a request may take before it is answered 504 `TIMEOUT`.
    #[arg(long, env = "REQUEST_TIMEOUT_SECS", default_value_t = 15)]
    pub request_timeout_secs: u64,

    /// Connections the server holds open at once (WebSockets included); at the cap it stops
    /// accepting until one closes.
    #[arg(long, env = "HTTP_MAX_CONNECTIONS", default_value_t = 16_384)]
    pub http_max_connections: usize,

    /// Seconds a client has to send a whole request head once its first byte arrived (or
    /// once it connected, for its first request); then the connection is closed.
    #[arg(long, env = "HTTP_HEADER_READ_TIMEOUT_SECS", default_value_t = 10)]
    pub http_header_read_timeout_secs: u64,

    /// Take the client's address from the last `X-Forwarded-For` entry (behind a trusted load
    /// balancer, which appends the peer it saw); otherwise from the TCP peer.
    #[arg(long, env = "TRUST_FORWARDED_FOR", default_value_t = false, action = clap::ArgAction::Set)]
    pub trust_forwarded_for: bool,

    /// Seconds a kept-alive connection may stay silent between requests (longer than the load
    /// balancer's idle timeout, 300 s on the ALB, so it never reuses a connection being closed).
    #[arg(long, env = "HTTP_IDLE_TIMEOUT_SECS", default_value_t = 310)]
    pub http_idle_timeout_secs: u64,
}

impl CommonConfig {
    #[must_use]
    pub fn shutdown_grace(&self) -> Duration {
        Duration::from_secs(self.shutdown_grace_secs)
    }

    #[must_use]
    pub fn request_timeout(&self) -> Duration {
        Duration::from_secs(self.request_timeout_secs)
    }

    /// What the server allows its connections.
    #[must_use]
    pub fn connection_limits(&self) -> ConnectionLimits {
        ConnectionLimits {
            max_connections: self.http_max_connections,
            header_read_timeout: Duration::from_secs(self.http_header_read_timeout_secs.max(1)),
            idle_timeout: Duration::from_secs(self.http_idle_timeout_secs.max(1)),
        }
    }
}

impl Default for CommonConfig {
    fn default() -> Self {
        let defaults = ConnectionLimits::default();
        Self {
            log_format: LogFormat::Text,
            shutdown_grace_secs: 20,
            request_timeout_secs: 15,
            http_max_connections: defaults.max_connections,
            http_header_read_timeout_secs: defaults.header_read_timeout.as_secs(),
            http_idle_timeout_secs: defaults.idle_timeout.as_secs(),
            trust_forwarded_for: false,
        }
    }
}
