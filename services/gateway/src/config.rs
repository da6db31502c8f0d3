//! The gateway's configuration, read once from the environment (or flags).

use std::net::SocketAddr;

use flash_kit::config::CommonConfig;

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

    /// Redis holding the queues (`redis://`, or `rediss://` for TLS).
    #[arg(long, env = "REDIS_URL", default_value = "redis://127.0.0.1:6379")]
    pub redis_url: String,

    /// Prefix of every Redis key (no braces); lets deployments or tests share one Redis.
    #[arg(long, env = "REDIS_KEY_PREFIX", default_value = flash_protocol::keys::DEFAULT_PREFIX)]
    pub redis_key_prefix: String,

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
    pub common: CommonConfig,
}

impl Config {
    /// The configuration from the environment alone (no command-line flags).
    pub fn from_env() -> Result<Self, clap::Error> {
        <Self as clap::Parser>::try_parse_from(["flash-gateway"])
    }
}
