//! The gateway's state, router and [`Application`].

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use flash_kit::amqp::Broker;
use flash_kit::auth::{Authenticator, HoldsAuthenticator};
use flash_kit::http::SharedState;
use flash_kit::ops::Readiness;
use flash_kit::service::{Parts, Service};
use flash_kit::stores::{self, RedisCheck, RedisConnection, RedisMode};
use flash_protocol::messages::Names;
use tokio_util::sync::CancellationToken;

use crate::challenge::Challenges;
use crate::config::{Config, KeyConfigError};
use crate::gate::GateIssuer;
use crate::hub::Hub;
use crate::limits::Limits;
use crate::ticker::QueueMetrics;
use crate::waiting_room::WaitingRoom;

/// Name used in logs and metric labels.
pub const SERVICE: &str = "gateway";

/// Verified access tokens remembered at most.
const VERIFIED_TOKEN_CACHE: u64 = 200_000;
/// How often the api's JWKS is fetched again.
const JWKS_REFRESH: Duration = Duration::from_secs(300);

/// What every gateway handler shares (one pointer: see [`SharedState`]).
pub type AppState = SharedState<Shared>;

/// The parts of [`AppState`].
pub struct Shared {
    pub room: WaitingRoom,
    /// Joins and status polls, combined per event into one script call while one is in
    /// flight.
    pub joins: Arc<crate::coalesce::Joins>,
    pub statuses: Arc<crate::coalesce::Statuses>,
    pub hub: Arc<Hub>,
    pub auth: Arc<Authenticator>,
    pub gate: Arc<GateIssuer>,
    /// Join challenges (proof of work), issued and verified here.
    pub challenges: Arc<Challenges>,
    /// The published draws (fairness records and participants files).
    pub draws: Arc<crate::fairness::Draws>,
    /// Relays operators' queue changes to the api's audit log.
    pub audit: Arc<crate::audit::AuditRelay>,
    pub limits: Arc<Limits>,
    /// Fires when the gateway begins shutting down: sockets close with 1012.
    pub shutdown: CancellationToken,
    pub ws_auth_timeout: Duration,
    /// Over how long a stop closes the sockets (each at a random moment within it).
    pub ws_drain: Duration,
    /// Every open WebSocket's task: a stop waits for them (over `ws_drain`) before the process
    /// ends, since the server stops tracking a connection once it is upgraded.
    pub sockets: tokio_util::task::TaskTracker,
    /// Client addresses come from `X-Forwarded-For` (behind the load balancer).
    pub trust_forwarded_for: bool,
}

impl HoldsAuthenticator for Shared {
    fn authenticator(&self) -> &Arc<Authenticator> {
        &self.auth
    }
}

/// Why the gateway could not start.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error(transparent)]
    Config(#[from] flash_protocol::keys::InvalidPrefix),
    #[error(transparent)]
    Keys(#[from] KeyConfigError),
    #[error(transparent)]
    Store(#[from] stores::ConnectError),
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
    #[error(transparent)]
    Broker(#[from] flash_kit::amqp::AmqpError),
    #[error("cannot listen: {0}")]
    Listen(#[from] std::io::Error),
}

/// The gateway, connected to its stores and bound to its port.
pub struct Application {
    pub service: Service,
    pub state: AppState,
    broker: Arc<Broker>,
    redis_client: redis::Client,
    /// For the background thread's own Redis connection.
    redis_url: String,
    redis_mode: RedisMode,
    tick_every: Duration,
    queue_retention: Duration,
    queue_metrics: Arc<QueueMetrics>,
    background: CancellationToken,
}

impl Application {
    /// Loads its keys, connects to Redis and RabbitMQ (failing with the store's name if one is
    /// unreachable) and binds the gateway's port. Background work starts with
    /// [`run_until`](Self::run_until).
    pub async fn build(config: Config) -> Result<Self, BuildError> {
        let keys = config.redis.keys()?;
        config.keys.check()?;
        let signing = config.keys.signing_key()?;
        // Every replica holds the signing key, so every replica derives the same challenge key.
        let challenges = Arc::new(Challenges::new(
            &signing
                .derive_secret(crate::challenge::KEY_PURPOSE)
                .map_err(KeyConfigError::from)?,
        ));
        let published = config.keys.gate_jwks(&signing)?;
        let gate = Arc::new(GateIssuer::publishing(signing, published));
        let access_keys = config.keys.access_keys()?;
        let redis = config.redis.connect().await?;
        // Sockets follow the queues over pub/sub on one node: PUBLISH reaches every node of a
        // cluster.
        let first_node = stores::redis_nodes(&config.redis.url)
            .next()
            .unwrap_or(config.redis.url.as_str());
        let redis_client = redis::Client::open(first_node)?;
        let background = CancellationToken::new();
        let broker = Arc::new(
            Broker::connect(
                &config.amqp_url,
                Names::new(config.amqp_name_prefix.clone()),
            )
            .await?,
        );
        access_keys.spawn_refresh(JWKS_REFRESH, background.clone());
        let readiness = Readiness::new()
            .with(RedisCheck(redis.clone()))
            // Without RabbitMQ the service still serves (messages wait in the outbox or
            // are caught up later): degraded, never out of its Service.
            .with_degraded(broker.check());
        let shared_limits = flash_kit::limits::RateLimiter::new(redis.clone(), keys.clone());
        let room = WaitingRoom::new(redis, keys).listing_numbers(config.queue_numbers_list);
        let audit = Arc::new(crate::audit::AuditRelay::new(
            room.clone(),
            flash_kit::amqp::Publisher::new(Arc::clone(&broker)),
        ));
        let state = AppState::new(Shared {
            joins: Arc::default(),
            statuses: Arc::default(),
            hub: Arc::new(Hub::new(room.clone())),
            room,
            auth: Arc::new(Authenticator::new(access_keys, VERIFIED_TOKEN_CACHE)),
            gate,
            challenges,
            draws: Arc::default(),
            audit,
            limits: Arc::new(Limits::new(config.limits, shared_limits)),
            shutdown: CancellationToken::new(),
            ws_auth_timeout: Duration::from_secs(config.ws_auth_timeout_secs),
            ws_drain: Duration::from_millis(config.ws_drain_ms)
                .min(config.common.shutdown_grace() / 2),
            trust_forwarded_for: config.common.trust_forwarded_for,
            sockets: tokio_util::task::TaskTracker::new(),
        });
        let public = flash_kit::http::with_common_layers(
            router(state.clone()),
            SERVICE,
            config.common.request_timeout(),
        );
        let queue_metrics = Arc::new(QueueMetrics::default());
        let service = Service::bind(Parts {
            name: SERVICE,
            addr: config.addr,
            public,
            readiness,
            metrics: flash_kit::metrics::Exposition::new()
                .with(Arc::clone(&queue_metrics) as Arc<dyn flash_kit::metrics::Source>),
            common: config.common.clone(),
            background: background.clone(),
        })
        .await?;
        Ok(Self {
            service,
            state,
            broker,
            redis_client,
            redis_url: config.redis.url.clone(),
            redis_mode: config.redis.mode,
            tick_every: config.tick_interval(),
            queue_retention: Duration::from_secs(config.queue_retention_secs),
            queue_metrics,
            background,
        })
    }

    #[must_use]
    pub fn port(&self) -> u16 {
        self.service.port()
    }

    /// Starts the ticker, the event consumer and the socket fan-out, serves until
    /// `shutdown`, closes every WebSocket with 1012, and drains within the shutdown grace.
    pub async fn run_until(self, shutdown: CancellationToken) -> std::io::Result<()> {
        start_counters_at_zero();
        let state = self.state;
        let mut workers = tokio::task::JoinSet::new();
        // Admission ticks and the api's messages (places freed by orders, events opened and
        // closed) run on a thread of their own with a Redis connection of their own: however
        // many sockets the replica serves, admissions never wait behind them.
        let (room, url, mode, broker) = (
            state.room.clone(),
            self.redis_url.clone(),
            self.redis_mode,
            Arc::clone(&self.broker),
        );
        let (every, retention, metrics, stop) = (
            self.tick_every,
            self.queue_retention,
            Arc::clone(&self.queue_metrics),
            self.background.clone(),
        );
        workers.spawn(flash_kit::service::on_own_thread(
            "gateway-background",
            move || async move {
                let Some(redis) = connect_until(&url, mode, &stop).await else {
                    return;
                };
                let room = room.with_connection(redis);
                tokio::join!(
                    crate::ticker::run(room.clone(), every, metrics, stop.clone()),
                    crate::events::run(broker, room, retention, stop),
                );
            },
        ));
        workers
            .spawn(Arc::clone(&state.hub).run(self.redis_client.clone(), self.background.clone()));
        workers.spawn(Arc::clone(&state.audit).run(self.background.clone()));
        let limits = Arc::clone(&state.limits);
        let housekeeping_stop = self.background.clone();
        workers.spawn(async move {
            loop {
                tokio::select! {
                    () = housekeeping_stop.cancelled() => return,
                    () = tokio::time::sleep(Duration::from_secs(30)) => limits.housekeeping(),
                }
            }
        });
        let closing = state.shutdown.clone();
        let signal = shutdown.clone();
        tokio::spawn(async move {
            signal.cancelled().await;
            closing.cancel();
        });
        // Once the HTTP requests are done, the sockets close over the drain window, each at its
        // own moment, while the ticker and the fan-out still run (a buyer admitted meanwhile is
        // told); a socket still open 2 s after the window is dropped.
        let (sockets, wait) = (state.sockets.clone(), state.ws_drain + SOCKETS_GRACE);
        let drain = async move {
            sockets.close();
            if tokio::time::timeout(wait, sockets.wait()).await.is_err() {
                tracing::warn!(open = sockets.len(), "sockets still open after the drain");
            }
        };
        let result = self.service.run_draining(shutdown, workers, drain).await;
        self.broker.close().await;
        result
    }
}

/// How long after the drain window a stop still waits for its sockets' close handshakes.
const SOCKETS_GRACE: Duration = Duration::from_secs(2);

/// The public routes under `/queue` (without the common layers).
pub fn router(state: AppState) -> Router {
    crate::routes::router(state)
}

/// A Redis connection, retried every second until it opens or `stop`.
async fn connect_until(
    url: &str,
    mode: RedisMode,
    stop: &CancellationToken,
) -> Option<RedisConnection> {
    loop {
        match stores::connect_redis_in(url, mode).await {
            Ok(redis) => return Some(redis),
            Err(error) => tracing::warn!(%error, "background: cannot reach Redis; retrying"),
        }
        tokio::select! {
            () = stop.cancelled() => return None,
            () = tokio::time::sleep(Duration::from_secs(1)) => {}
        }
    }
}

/// Counters that may not move for hours, at 0 from the start: an alert's `increase()` sees
/// their first occurrence (a series born at 1 shows none), and a dashboard shows 0, not "no
/// data" (both proven on real Prometheus by gitops/tests/live_alerts_test.py).
fn start_counters_at_zero() {
    for name in [
        "gateway_events_rejected_total",
        "gateway_ws_frames_dropped_total",
    ] {
        ::metrics::counter!(name).increment(0);
    }
    for (code, _) in flash_protocol::asyncapi::CLOSE_CODES {
        ::metrics::counter!("gateway_ws_closed_total", "code" => code.to_string()).increment(0);
    }
}
