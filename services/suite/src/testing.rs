//! Test support (feature `testing`): a suite on free ports against stores of its own, for
//! the end-to-end tests of this crate and of the drill.

use flash_api::config::Argon2Config;
use flash_kit::config::CommonConfig;
use flash_kit::testing::{TestAmqp, TestDatabase, TestRedis};

use crate::SuiteConfig;
use crate::config::{DEFAULT_WEB_DIR, OriginConfig};

pub const ADMIN_EMAIL: &str = "admin@flash.test";
pub const ADMIN_PASSWORD: &str = "an admin password";

/// The stores of one test: its own database, Redis key prefix and broker names.
pub struct Stores {
    pub db: TestDatabase,
    pub redis: TestRedis,
    pub amqp: TestAmqp,
}

impl Stores {
    pub async fn new() -> Self {
        Self {
            db: TestDatabase::create().await,
            redis: TestRedis::new(),
            amqp: TestAmqp::new(),
        }
    }

    /// A suite on free ports against these stores, with quick settings for tests.
    pub fn suite_config(&self) -> SuiteConfig {
        let any_port = std::net::SocketAddr::from(([127, 0, 0, 1], 0));
        let amqp_prefix = self.amqp.names.prefix().to_owned();
        SuiteConfig {
            origin: OriginConfig {
                addr: any_port,
                web_dir: DEFAULT_WEB_DIR.into(),
                create_database: true,
                common: CommonConfig::default(),
            },
            gateway: flash_gateway::Config {
                addr: any_port,
                redis: self.redis.config(),
                amqp_url: self.amqp.url.clone(),
                amqp_name_prefix: amqp_prefix.clone(),
                keys: flash_gateway::config::KeyConfig {
                    dev_keys: true,
                    ..flash_gateway::config::KeyConfig::default()
                },
                tick_interval_ms: 50,
                queue_retention_secs: 86_400,
                queue_numbers_list: true,
                ws_auth_timeout_secs: 5,
                ws_drain_ms: 0,
                limits: flash_gateway::config::LimitConfig::default(),
                common: CommonConfig::default(),
            },
            api: flash_api::Config {
                addr: any_port,
                database_url: self.db.url.clone(),
                database_max_connections: 4,
                migrate_on_start: true,
                redis: self.redis.config(),
                amqp_url: self.amqp.url.clone(),
                amqp_name_prefix: amqp_prefix.clone(),
                admin_email: Some(ADMIN_EMAIL.into()),
                admin_password: Some(ADMIN_PASSWORD.into()),
                keys: flash_api::config::KeyConfig {
                    dev_keys: true,
                    access_ttl_secs: 900,
                    refresh_ttl_secs: 3600,
                    refresh_reuse_grace_secs: 30,
                    ..flash_api::config::KeyConfig::default()
                },
                orders: flash_api::config::OrderConfig::default(),
                argon2: Argon2Config::cheap(),
                limits: flash_api::config::LimitConfig::default(),
                retention: flash_api::config::RetentionConfig::default(),
                common: CommonConfig::default(),
            },
            pay: flash_pay::Config {
                ops_addr: any_port,
                amqp_url: self.amqp.url.clone(),
                amqp_name_prefix: amqp_prefix,
                worker: flash_pay::config::WorkerConfig::default(),
                provider: flash_pay::config::ProviderConfig {
                    latency_p50_ms: 5.0,
                    latency_p99_ms: 20.0,
                    decline_rate: 0.0,
                    ..flash_pay::config::ProviderConfig::default()
                },
                common: CommonConfig::default(),
            },
        }
    }
}
