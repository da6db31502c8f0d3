//! The api's configuration, read once from the environment (or flags).

use std::net::SocketAddr;

use flash_kit::config::CommonConfig;
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
    pub argon2: Argon2Config,

    #[command(flatten)]
    pub common: CommonConfig,
}

fn parse_secret(value: &str) -> Result<SecretString, std::convert::Infallible> {
    Ok(SecretString::from(value))
}

/// Argon2id cost of password hashes (defaults: OWASP's 19 MiB, 2 passes, 1 lane).
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
