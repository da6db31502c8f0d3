//! The pay worker's [`Application`]: broker connection, the payment and refund consumers and
//! the ops port.

use std::sync::Arc;

use axum::Router;
use flash_kit::amqp::{Broker, Publisher, consume};
use flash_kit::ops::Readiness;
use flash_kit::service::{Parts, Service};
use flash_protocol::messages::{Names, PaymentRefundRequested, PaymentRequested, Queue};
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::provider::{Provider, Simulated};
use crate::worker::Worker;

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
    worker: Arc<Worker>,
    prefetch: u16,
    background: CancellationToken,
}

impl Application {
    /// Connects to RabbitMQ (declaring the topology) and binds the ops port, with the
    /// simulated provider.
    pub async fn build(config: Config) -> Result<Self, BuildError> {
        let provider = Arc::new(Simulated::new(config.provider));
        Self::with_provider(config, provider).await
    }

    /// [`build`](Self::build) with another provider.
    pub async fn with_provider(
        config: Config,
        provider: Arc<dyn Provider>,
    ) -> Result<Self, BuildError> {
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
            metrics: flash_kit::metrics::Exposition::new(),
            common: config.common,
            background: background.clone(),
        })
        .await?;
        let worker = Arc::new(Worker::new(
            config.worker,
            provider,
            Publisher::new(Arc::clone(&broker)),
        ));
        Ok(Self {
            service,
            broker,
            worker,
            prefetch: config.worker.prefetch.max(1),
            background,
        })
    }

    #[must_use]
    pub fn port(&self) -> u16 {
        self.service.port()
    }

    /// Consumes payment and refund requests until `shutdown`; then stops taking new ones, finishes and
    /// settles those in flight (within the shutdown grace), and closes the connection.
    pub async fn run_until(self, shutdown: CancellationToken) -> std::io::Result<()> {
        crate::worker::start_counters_at_zero();
        let mut workers = tokio::task::JoinSet::new();
        let worker = Arc::clone(&self.worker);
        workers.spawn(consume(
            Arc::clone(&self.broker),
            Queue::PayRequests,
            "flash-pay",
            self.prefetch,
            self.background.clone(),
            move |delivery| {
                let worker = Arc::clone(&worker);
                async move { worker.handle::<PaymentRequested>(&delivery).await }
            },
        ));
        let worker = self.worker;
        workers.spawn(consume(
            Arc::clone(&self.broker),
            Queue::PayRefunds,
            "flash-pay-refunds",
            self.prefetch,
            self.background.clone(),
            move |delivery| {
                let worker = Arc::clone(&worker);
                async move { worker.handle::<PaymentRefundRequested>(&delivery).await }
            },
        ));
        let result = self.service.run_with_workers(shutdown, workers).await;
        self.broker.close().await;
        result
    }
}
