//! The api's state, router and [`Application`].

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use flash_kit::amqp::Broker;
use flash_kit::auth::{Authenticator, HoldsAuthenticator};
use flash_kit::http::SharedState;
use flash_kit::limits::RateLimiter;
use flash_kit::ops::Readiness;
use flash_kit::service::{Parts, Service};
use flash_kit::stores::{self, PostgresCheck};
use flash_protocol::messages::Names;
use flash_tokens::KeyRing;
use secrecy::SecretString;
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

use crate::auth::Tokens;
use crate::bootstrap::{self, BootstrapError};
use crate::config::{Config, KeyConfigError, OrderConfig, RetentionConfig};
use crate::db::{self, DbError};
use crate::limits::ApiLimits;
use crate::orders::OrderTaker;
use crate::password::{PasswordError, PasswordHashing};

/// Name used in logs and metric labels.
pub const SERVICE: &str = "api";

/// Verified access tokens remembered at most.
const VERIFIED_TOKEN_CACHE: u64 = 200_000;
/// How often the gateway's JWKS is fetched again.
const JWKS_REFRESH: Duration = Duration::from_secs(300);

/// What every api handler shares (one pointer: see [`SharedState`]).
pub type AppState = SharedState<Shared>;

/// The parts of [`AppState`].
pub struct Shared {
    pub db: PgPool,
    pub broker: Arc<Broker>,
    pub passwords: PasswordHashing,
    pub tokens: Arc<Tokens>,
    pub auth: Arc<Authenticator>,
    pub gate_keys: Arc<KeyRing>,
    pub orders: Arc<OrderTaker>,
    /// A hash to verify against when the account does not exist (equal timing).
    pub dummy_hash: Arc<str>,
    pub limits: ApiLimits,
    /// Client addresses come from `X-Forwarded-For` (behind the load balancer).
    pub trust_forwarded_for: bool,
}

impl HoldsAuthenticator for Shared {
    fn authenticator(&self) -> &Arc<Authenticator> {
        &self.auth
    }
}

/// The public routes under `/api` (without the common layers).
pub fn router(state: AppState) -> Router {
    crate::routes::router(state)
}

/// Why the api could not start.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error(transparent)]
    Keys(#[from] KeyConfigError),
    #[error(transparent)]
    Db(#[from] DbError),
    #[error(transparent)]
    Store(#[from] stores::ConnectError),
    #[error(transparent)]
    RedisPrefix(#[from] flash_protocol::keys::InvalidPrefix),
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
    orders: OrderConfig,
    retention: RetentionConfig,
    background: CancellationToken,
}

impl Application {
    /// Loads its keys, connects to Postgres (migrating it unless told not to) and RabbitMQ,
    /// ensures the bootstrap admin, and binds the api's port. Background work (outbox relay,
    /// payment results, hold expiry) starts with [`run_until`](Self::run_until).
    pub async fn build(config: Config) -> Result<Self, BuildError> {
        config.keys.check()?;
        let signing = config.keys.signing_key()?;
        let access_jwks = config.keys.access_jwks(&signing)?;
        let access_keys = config.keys.access_keys(&access_jwks)?;
        let gate_keys = config.keys.gate_keys()?;
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
        let dummy_hash: Arc<str> = passwords
            .hash(SecretString::from(uuid::Uuid::new_v4().to_string()))
            .await?
            .into();
        let limiter = RateLimiter::new(config.redis.connect().await?, config.redis.keys()?);
        let background = CancellationToken::new();
        let broker = Arc::new(
            Broker::connect(
                &config.amqp_url,
                Names::new(config.amqp_name_prefix.clone()),
            )
            .await?,
        );
        gate_keys.spawn_refresh(JWKS_REFRESH, background.clone());
        let readiness = Readiness::new()
            .with(PostgresCheck(pool.clone()))
            // Without RabbitMQ the service still serves (messages wait in the outbox or
            // are caught up later): degraded, never out of its Service.
            .with_degraded(broker.check());
        let tokens = Tokens::new(signing, access_jwks, config.keys.lifetimes());
        let state = AppState::new(Shared {
            orders: Arc::new(OrderTaker::start(
                pool.clone(),
                config.orders,
                background.clone(),
            )),
            db: pool,
            broker,
            passwords,
            tokens: Arc::new(tokens),
            auth: Arc::new(Authenticator::new(access_keys, VERIFIED_TOKEN_CACHE)),
            gate_keys,
            dummy_hash,
            limits: ApiLimits::new(limiter, config.limits),
            trust_forwarded_for: config.common.trust_forwarded_for,
        });
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
            metrics: flash_kit::metrics::Exposition::new(),
            common: config.common,
            background: background.clone(),
        })
        .await?;
        Ok(Self {
            service,
            state,
            orders: config.orders,
            retention: config.retention,
            background,
        })
    }

    #[must_use]
    pub fn port(&self) -> u16 {
        self.service.port()
    }

    /// Starts the outbox relay, the payment-results and audit consumers and the hold sweeper, serves
    /// until `shutdown`, then drains within the shutdown grace.
    pub async fn run_until(self, shutdown: CancellationToken) -> std::io::Result<()> {
        start_counters_at_zero();
        let state = &self.state;
        let mut workers = tokio::task::JoinSet::new();
        workers.spawn(crate::relay::run(
            state.db.clone(),
            Arc::clone(&state.broker),
            self.orders.outbox_batch,
            self.background.clone(),
        ));
        workers.spawn(crate::payments::run(
            state.db.clone(),
            Arc::clone(&state.broker),
            Duration::from_millis(self.orders.result_redelivery_ms),
            self.background.clone(),
        ));
        workers.spawn(crate::queue_audit::run(
            state.db.clone(),
            Arc::clone(&state.broker),
            self.background.clone(),
        ));
        workers.spawn(crate::holds::run(
            state.db.clone(),
            crate::holds::Sweeps {
                every: Duration::from_millis(self.orders.sweep_ms.max(50)),
                reask: self.orders.payment_reask(),
            },
            self.background.clone(),
        ));
        workers.spawn(crate::retention::run(
            state.db.clone(),
            self.retention,
            self.background.clone(),
        ));
        let broker = Arc::clone(&state.broker);
        let result = self.service.run_with_workers(shutdown, workers).await;
        broker.close().await;
        result
    }
}

/// Counters that may not move for hours, at 0 from the start: an alert's `increase()` sees
/// their first occurrence (a series born at 1 shows none), and a dashboard shows 0, not "no
/// data" (both proven on real Prometheus by gitops/tests/live_alerts_test.py).
fn start_counters_at_zero() {
    for applied in ["unknown", "poison", "dead", "refunding"] {
        ::metrics::counter!("api_payment_results_total", "applied" => applied).increment(0);
    }
    for outcome in ["requested", "refunded", "failed", "unknown"] {
        ::metrics::counter!("api_refunds_total", "outcome" => outcome).increment(0);
    }
    for name in [
        "api_orders_expired_total",
        "api_order_batch_retries_total",
        "api_outbox_failures_total",
        "api_refresh_token_reuse_total",
    ] {
        ::metrics::counter!(name).increment(0);
    }
}
