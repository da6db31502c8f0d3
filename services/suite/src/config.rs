//! Settings of the all-in-one origin; every service reads its own variables as well.

use std::net::SocketAddr;
use std::path::PathBuf;

use flash_kit::config::CommonConfig;

/// Where the web assets are when `FLASH_WEB_DIR` is not set: the checkout this binary was
/// built from.
pub const DEFAULT_WEB_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../web/public");

/// The origin's own settings.
#[derive(Clone, Debug, clap::Args)]
pub struct OriginConfig {
    /// Address of the one origin (`/` web, `/api` api, `/queue` gateway, plus `/live`,
    /// `/ready` and `/metrics` for the whole process).
    #[arg(long, env = "FLASH_ADDR", default_value = "127.0.0.1:8080")]
    pub addr: SocketAddr,

    /// Directory of the web assets served at `/`.
    #[arg(long, env = "FLASH_WEB_DIR", default_value = DEFAULT_WEB_DIR)]
    pub web_dir: PathBuf,

    /// Create the api's database when it does not exist.
    #[arg(long, env = "FLASH_CREATE_DATABASE", default_value_t = true, action = clap::ArgAction::Set)]
    pub create_database: bool,

    #[command(flatten)]
    pub common: CommonConfig,
}

/// What the `flash` binary does once at start-up, besides serving.
#[derive(Clone, Copy, Debug, Default, clap::Args)]
pub struct StartConfig {
    /// Make sure a demo event is on sale (`make up` sets it; see `flash_suite::demo`).
    #[arg(long, env = "FLASH_DEMO_EVENT", default_value_t = false, action = clap::ArgAction::Set)]
    pub demo_event: bool,
}

#[derive(Debug, clap::Parser)]
#[command(
    name = "flash",
    version,
    about = "Flash Tickets: the whole suite on one origin"
)]
struct Cli {
    #[command(flatten)]
    origin: OriginConfig,
    #[command(flatten)]
    start: StartConfig,
}

/// Everything the suite needs: the origin's settings and each service's configuration.
#[derive(Clone, Debug)]
pub struct SuiteConfig {
    pub origin: OriginConfig,
    pub gateway: flash_gateway::Config,
    pub api: flash_api::Config,
    pub pay: flash_pay::Config,
}

impl SuiteConfig {
    /// Every setting from the environment (no command-line flags).
    pub fn from_env() -> Result<Self, clap::Error> {
        Ok(Self {
            origin: <Cli as clap::Parser>::try_parse_from(["flash"])?.origin,
            gateway: flash_gateway::Config::from_env()?,
            api: flash_api::Config::from_env()?,
            pay: flash_pay::Config::from_env()?,
        })
    }

    /// The same, with `--help` and `--version` answered from the command line.
    pub fn from_env_and_args() -> Result<Self, clap::Error> {
        Self::with_start_from_env_and_args().map(|(config, _)| config)
    }

    /// The same, and what to do at start-up (`FLASH_DEMO_EVENT`).
    pub fn with_start_from_env_and_args() -> Result<(Self, StartConfig), clap::Error> {
        let cli = <Cli as clap::Parser>::try_parse()?;
        Ok((
            Self {
                origin: cli.origin,
                ..Self::from_env()?
            },
            cli.start,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::Cli;

    #[test]
    fn the_demo_event_is_opt_in() {
        let parse = |args: &[&str]| {
            <Cli as clap::Parser>::try_parse_from(args)
                .expect("parses")
                .start
                .demo_event
        };
        assert!(parse(&["flash", "--demo-event", "true"]));
        assert!(!parse(&["flash", "--demo-event", "false"]));
    }
}
