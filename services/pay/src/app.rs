//! The pay worker's [`Application`]: broker connection and ops port.

use std::sync::Arc;

use axum::Router;
use flash_kit::amqp::Broker;
use flash_kit::ops::Readiness;
use flash_kit::service::{Parts, Service};
use flash_protocol::messages::Names;
use tokio_util::sync::CancellationToken;

use crate::config::Config;

/// Name used in logs and metric labels.
pub const SERVICE: &str = "pay";

/// Why the worker could not start.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error(transparent)]
    Broker(#[from] flash_kit::amqp::AmqpError),
    #[error("cannot listen: {0}")]
    Listen(#[from] std::io::Error),
}

/// The worker, connected to RabbitMQ, its ops port bound.
pub struct Application {
    pub service: Service,
    pub broker: Arc<Broker>,
}

impl Application {
    /// Connects to RabbitMQ (declaring the topology) and binds the ops port.
    pub async fn build(config: Config) -> Result<Self, BuildError> {
        let background = CancellationToken::new();
        let broker = Arc::new(
            Broker::connect(
                &config.amqp_url,
                Names::new(config.amqp_name_prefix.clone()),
            )
            .await?,
        );
        let readiness = Readiness::new().with(broker.check());
        let service = Service::bind(Parts {
            name: SERVICE,
            addr: config.ops_addr,
            public: Router::new(),
            readiness,
            common: config.common,
            background,
        })
        .await?;
        Ok(Self { service, broker })
    }

    #[must_use]
    pub fn port(&self) -> u16 {
        self.service.port()
    }

    /// Runs until `shutdown`, then finishes in-flight work within the shutdown grace.
    pub async fn run_until(self, shutdown: CancellationToken) -> std::io::Result<()> {
        let result = self.service.run_until(shutdown).await;
        self.broker.close().await;
        result
    }
}
