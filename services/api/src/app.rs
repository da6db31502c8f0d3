//! The api's state, router and [`Application`].

use std::sync::Arc;

use axum::Router;
use axum::routing::any;
use flash_kit::amqp::Broker;
use flash_kit::ops::Readiness;
use flash_kit::service::{Parts, Service};
use flash_kit::stores::{self, PostgresCheck};
use flash_protocol::messages::Names;
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

use crate::bootstrap::{self, BootstrapError};
use crate::config::Config;
use crate::db::{self, DbError};
use crate::password::{PasswordError, PasswordHashing};

/// Name used in logs and metric labels.
pub const SERVICE: &str = "api";

/// What every api handler shares.
#[derive(Clone)]
pub struct AppState {
    pub db: PgPool,
    pub broker: Arc<Broker>,
    pub passwords: PasswordHashing,
}

/// The public routes under `/api` (without the common layers).
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/api/{*rest}", any(flash_kit::http::not_found))
        .with_state(state)
}

/// Why the api could not start.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error(transparent)]
    Db(#[from] DbError),
    #[error(transparent)]
    Store(#[from] stores::ConnectError),
    #[error(transparent)]
    Broker(#[from] flash_kit::amqp::AmqpError),
    #[error(transparent)]
    Password(#[from] PasswordError),
    #[error(transparent)]
    Bootstrap(#[from] BootstrapError),
    #[error("cannot listen: {0}")]
    Listen(#[from] std::io::Error),
}

/// The api, connected to its stores and bound to its port.
pub struct Application {
    pub service: Service,
    pub state: AppState,
}

impl Application {
    /// Connects to Postgres (migrating it unless told not to) and RabbitMQ, ensures the
    /// bootstrap admin, and binds the api's port.
    pub async fn build(config: Config) -> Result<Self, BuildError> {
        let passwords = PasswordHashing::new(config.argon2)?;
        let pool =
            stores::connect_postgres(&config.database_url, config.database_max_connections).await?;
        if config.migrate_on_start {
            db::migrate(&pool).await?;
        }
        bootstrap::ensure_admin(
            &pool,
            &passwords,
            config.admin_email.as_deref(),
            config.admin_password.as_ref(),
        )
        .await?;
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
            .with(PostgresCheck(pool.clone()))
            .with(broker.check());
        let state = AppState {
            db: pool,
            broker,
            passwords,
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
