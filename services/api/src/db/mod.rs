//! Postgres: the pool, creating the database on request, and the embedded migrations.

use sqlx::PgPool;
use sqlx::migrate::{MigrateDatabase, Migrator};

/// `t` truncated to what Postgres stores (microseconds), so an answer built in memory says
/// what a later read would.
#[must_use]
pub fn micros(t: time::OffsetDateTime) -> time::OffsetDateTime {
    t.replace_nanosecond(t.nanosecond() / 1000 * 1000)
        .unwrap_or(t)
}

/// What waits in a queue kept in a table: how many rows, and how long the oldest has waited.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Backlog {
    pub count: i64,
    /// Seconds; 0 when nothing waits.
    pub oldest_secs: f64,
}

impl Backlog {
    /// The backlog a query reports as one row: the count, and the oldest row's age in seconds
    /// (`NULL` when there is none).
    pub async fn read(pool: &PgPool, query: &'static str) -> Result<Self, sqlx::Error> {
        let (count, oldest): (i64, Option<f64>) = sqlx::query_as(query).fetch_one(pool).await?;
        Ok(Self {
            count,
            oldest_secs: oldest.unwrap_or(0.0).max(0.0),
        })
    }
}

/// The schema, embedded in the binary.
pub static MIGRATOR: Migrator = sqlx::migrate!("./migrations");

#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error(transparent)]
    Connect(#[from] flash_kit::stores::ConnectError),
    #[error("postgres: cannot create the database: {0}")]
    Create(#[source] sqlx::Error),
    #[error("postgres: migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
}

/// Creates the database named in `url` if it does not exist (local runs and the deploy hook).
pub async fn create_if_missing(url: &str) -> Result<(), DbError> {
    let exists = sqlx::Postgres::database_exists(url)
        .await
        .map_err(DbError::Create)?;
    if !exists {
        tracing::info!("creating the database");
        sqlx::Postgres::create_database(url)
            .await
            .map_err(DbError::Create)?;
    }
    Ok(())
}

/// Applies every pending migration (safe with many replicas: sqlx takes an advisory lock).
pub async fn migrate(pool: &PgPool) -> Result<(), DbError> {
    MIGRATOR.run(pool).await?;
    Ok(())
}

pub mod audit;
pub mod events;
pub mod orders;
pub mod outbox;
pub mod refresh;
pub mod users;

/// Whether `error` is a unique-constraint violation (a concurrent writer got there first).
#[must_use]
pub fn is_unique_violation(error: &sqlx::Error) -> bool {
    matches!(error, sqlx::Error::Database(db) if db.code().as_deref() == Some("23505"))
}
