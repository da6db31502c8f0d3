//! The pay worker's configuration, read once from the environment (or flags).

use std::net::SocketAddr;

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
    pub common: CommonConfig,
}

impl Config {
    /// The configuration from the environment alone (no command-line flags).
    pub fn from_env() -> Result<Self, clap::Error> {
        <Self as clap::Parser>::try_parse_from(["flash-pay"])
    }
}
