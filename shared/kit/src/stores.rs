//! Connecting to Redis and Postgres, and their readiness checks.

use std::time::Duration;

use futures::future::BoxFuture;
use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use redis::cluster::ClusterClientBuilder;
use redis::cluster_async::ClusterConnection;
use sqlx::PgPool;
use sqlx::postgres::PgPoolOptions;

use crate::ops::Check;

/// A store could not be reached at start-up.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error("redis is unreachable at {url}: {source}")]
    Redis {
        url: String,
        #[source]
        source: redis::RedisError,
    },
    #[error("postgres is unreachable at {url}: {source}")]
    Postgres {
        url: String,
        #[source]
        source: sqlx::Error,
    },
}

/// The URL with any password replaced, for logs and errors.
#[must_use]
pub fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let userinfo = &url[scheme + 3..at];
            let user = userinfo.split(':').next().unwrap_or_default();
            format!("{}://{user}:***@{}", &url[..scheme], &url[at + 1..])
        }
        _ => url.to_owned(),
    }
}

/// A Redis connection manager that reconnects by itself, with bounded connect and response
/// times so a dead Redis fails calls quickly instead of hanging them.
pub async fn connect_redis(url: &str) -> Result<ConnectionManager, ConnectError> {
    let error = |source| ConnectError::Redis {
        url: redact_url(url),
        source,
    };
    let client = redis::Client::open(url).map_err(error)?;
    let config = ConnectionManagerConfig::new()
        .set_connection_timeout(Some(Duration::from_secs(2)))
        .set_response_timeout(Some(Duration::from_secs(2)))
        .set_number_of_retries(2)
        .set_max_delay(Duration::from_millis(500));
    ConnectionManager::new_with_config(client, config)
        .await
        .map_err(error)
}

/// The options of every Postgres pool (see [`connect_postgres`]), for a pool connected
/// another way (e.g. lazily with existing connect options).
#[must_use]
pub fn postgres_pool_options(max_connections: u32) -> PgPoolOptions {
    PgPoolOptions::new()
        .max_connections(max_connections)
        .test_before_acquire(false)
        .acquire_timeout(Duration::from_secs(3))
}

/// A Postgres pool; connections are re-established by the pool after an outage.
///
/// Connections are not pinged before each use (a round trip per query on the hot path);
/// a connection that died with the server fails its next query and is dropped, and callers
/// that may retry (order batches) do.
pub async fn connect_postgres(url: &str, max_connections: u32) -> Result<PgPool, ConnectError> {
    postgres_pool_options(max_connections)
        .connect(url)
        .await
        .map_err(|source| ConnectError::Postgres {
            url: redact_url(url),
            source,
        })
}

/// How Redis is deployed: one node (or a primary with replicas behind one endpoint), or a
/// Redis Cluster (e.g. ElastiCache with cluster mode on).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum RedisMode {
    #[default]
    Node,
    Cluster,
}

/// Where Redis is, as every service that uses it names it (the same variables everywhere).
#[derive(Clone, Debug, clap::Args)]
pub struct RedisConfig {
    /// Redis (`redis://`, or `rediss://` for TLS); in cluster mode, one or more of the
    /// cluster's nodes, comma-separated (e.g. ElastiCache's configuration endpoint).
    #[arg(
        long = "redis-url",
        env = "REDIS_URL",
        default_value = "redis://127.0.0.1:6379"
    )]
    pub url: String,

    /// `node` (one Redis, or a primary with replicas behind one endpoint) or `cluster` (Redis
    /// Cluster, e.g. ElastiCache with cluster mode on).
    #[arg(
        long = "redis-mode",
        env = "REDIS_MODE",
        value_enum,
        default_value = "node"
    )]
    pub mode: RedisMode,

    /// Prefix of every Redis key (no braces); lets deployments or tests share one Redis.
    #[arg(long = "redis-key-prefix", env = "REDIS_KEY_PREFIX", default_value = flash_protocol::keys::DEFAULT_PREFIX)]
    pub key_prefix: String,
}

impl RedisConfig {
    /// The key builders under this configuration's prefix.
    ///
    /// # Errors
    /// When the prefix contains braces.
    pub fn keys(
        &self,
    ) -> Result<flash_protocol::keys::RedisKeys, flash_protocol::keys::InvalidPrefix> {
        flash_protocol::keys::RedisKeys::new(self.key_prefix.clone())
    }

    /// A connection (see [`connect_redis_in`]).
    ///
    /// # Errors
    /// When Redis cannot be reached.
    pub async fn connect(&self) -> Result<RedisConnection, ConnectError> {
        connect_redis_in(&self.url, self.mode).await
    }
}

/// A Redis connection that re-establishes itself, to one node or to a Redis Cluster (each
/// command routed to the node owning its keys' slot).
#[derive(Clone)]
pub enum RedisConnection {
    Node(ConnectionManager),
    Cluster(ClusterConnection),
}

impl From<ConnectionManager> for RedisConnection {
    fn from(connection: ConnectionManager) -> Self {
        Self::Node(connection)
    }
}

impl ConnectionLike for RedisConnection {
    fn req_packed_command<'a>(
        &'a mut self,
        cmd: &'a redis::Cmd,
    ) -> redis::RedisFuture<'a, redis::Value> {
        match self {
            Self::Node(connection) => connection.req_packed_command(cmd),
            Self::Cluster(connection) => connection.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a redis::Pipeline,
        offset: usize,
        count: usize,
    ) -> redis::RedisFuture<'a, Vec<redis::Value>> {
        match self {
            Self::Node(connection) => connection.req_packed_commands(pipeline, offset, count),
            Self::Cluster(connection) => connection.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Self::Node(connection) => connection.get_db(),
            Self::Cluster(connection) => connection.get_db(),
        }
    }
}

/// The nodes of a `REDIS_URL`: one URL, or in cluster mode several, comma-separated (one
/// is enough: the client discovers the others).
pub fn redis_nodes(url: &str) -> impl Iterator<Item = &str> {
    url.split(',')
        .map(str::trim)
        .filter(|node| !node.is_empty())
}

/// A connection to Redis deployed as `mode`, with the same bounded connect and response
/// times as [`connect_redis`]. In cluster mode every pipeline and script must keep to one
/// slot (the queue's keys share the event's hash tag).
pub async fn connect_redis_in(url: &str, mode: RedisMode) -> Result<RedisConnection, ConnectError> {
    match mode {
        RedisMode::Node => connect_redis(url).await.map(RedisConnection::Node),
        RedisMode::Cluster => {
            let error = |source| ConnectError::Redis {
                url: redact_url(url),
                source,
            };
            let client = ClusterClientBuilder::new(redis_nodes(url))
                .connection_timeout(Duration::from_secs(2))
                .response_timeout(Duration::from_secs(2))
                .retries(2)
                .build()
                .map_err(error)?;
            client
                .get_async_connection()
                .await
                .map(RedisConnection::Cluster)
                .map_err(error)
        }
    }
}

/// `/ready` check: Redis answers `PING`.
#[derive(Clone)]
pub struct RedisCheck(pub RedisConnection);

impl Check for RedisCheck {
    fn name(&self) -> &'static str {
        "redis"
    }

    fn check(&self) -> BoxFuture<'_, Result<(), String>> {
        let mut conn = self.0.clone();
        Box::pin(async move {
            redis::cmd("PING")
                .query_async::<String>(&mut conn)
                .await
                .map(drop)
                .map_err(|e| e.to_string())
        })
    }
}

/// `/ready` check: Postgres answers `SELECT 1`.
#[derive(Clone)]
pub struct PostgresCheck(pub PgPool);

impl Check for PostgresCheck {
    fn name(&self) -> &'static str {
        "postgres"
    }

    fn check(&self) -> BoxFuture<'_, Result<(), String>> {
        Box::pin(async move {
            sqlx::query("SELECT 1")
                .execute(&self.0)
                .await
                .map(drop)
                .map_err(|e| e.to_string())
        })
    }
}
