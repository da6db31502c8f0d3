//! The gateway's state, router and [`Application`].

use axum::Router;
use axum::routing::any;
use flash_kit::amqp::Broker;
use flash_kit::ops::Readiness;
use flash_kit::service::{Parts, Service};
use flash_kit::stores::{self, RedisCheck};
use flash_protocol::keys::RedisKeys;
use flash_protocol::messages::Names;
use redis::aio::ConnectionManager;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

use crate::config::Config;

/// Name used in logs and metric labels.
pub const SERVICE: &str = "gateway";

/// What every gateway handler shares.
#[derive(Clone)]
pub struct AppState {
    pub redis: ConnectionManager,
    pub keys: RedisKeys,
    pub broker: Arc<Broker>,
}

/// The public routes under `/queue` (without the common layers).
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/queue/{*rest}", any(flash_kit::http::not_found))
        .with_state(state)
}

/// Why the gateway could not start.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error(transparent)]
    Config(#[from] flash_protocol::keys::InvalidPrefix),
    #[error(transparent)]
    Store(#[from] stores::ConnectError),
    #[error(transparent)]
    Broker(#[from] flash_kit::amqp::AmqpError),
    #[error("cannot listen: {0}")]
    Listen(#[from] std::io::Error),
}

/// The gateway, connected to its stores and bound to its port.
pub struct Application {
    pub service: Service,
    pub state: AppState,
}

impl Application {
    /// Connects to Redis and RabbitMQ (failing with the store's name if one is unreachable)
    /// and binds the gateway's port.
    pub async fn build(config: Config) -> Result<Self, BuildError> {
        let keys = RedisKeys::new(config.redis_key_prefix.clone())?;
        let redis = stores::connect_redis(&config.redis_url).await?;
        let background = CancellationToken::new();
        let broker = Arc::new(
            Broker::connect(
                &config.amqp_url,
                Names::new(config.amqp_name_prefix.clone()),
                background.clone(),
            )
            .await?,
        );
        let readiness = Readiness::new()
            .with(RedisCheck(redis.clone()))
            .with(broker.check());
        let state = AppState {
            redis,
            keys,
            broker,
        };
        let public = flash_kit::http::with_common_layers(
            router(state.clone()),
            SERVICE,
            config.common.request_timeout(),
        );
        let service = Service::bind(Parts {
            name: SERVICE,
            addr: config.addr,
            public,
            readiness,
            common: config.common,
            background,
        })
        .await?;
        Ok(Self { service, state })
    }

    #[must_use]
    pub fn port(&self) -> u16 {
        self.service.port()
    }

    /// Serves until `shutdown`, then drains within the shutdown grace.
    pub async fn run_until(self, shutdown: CancellationToken) -> std::io::Result<()> {
        self.service.run_until(shutdown).await
    }
}
