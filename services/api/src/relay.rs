//! The outbox relay: publishes committed messages in creation order with publisher confirms,
//! pipelined (every message of a round is sent before the confirms are awaited), then marks
//! them published in the same transaction that locked them. One replica relays at a time
//! (a transaction-scoped advisory lock) and rows are claimed with SKIP LOCKED, so no row is
//! published twice concurrently; a round that fails publishes nothing as done, so no row is
//! lost (at worst it is published again: consumers are idempotent by `message_id`).

use std::sync::Arc;
use std::time::Duration;

use flash_kit::amqp::{Broker, outbox_properties};
use lapin::options::{BasicPublishOptions, ConfirmSelectOptions};
use sqlx::PgPool;
use sqlx::postgres::PgListener;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::db::outbox::exchange_named;

/// Advisory lock key of the relay ("flash-outbox").
const RELAY_LOCK: i64 = 0x666c_6173_682d_6f62;
/// The relay looks again at least this often, even without a notification.
const POLL_EVERY: Duration = Duration::from_millis(500);
/// After a wake-up, the relay lets messages gather this long, so that under a rush it
/// publishes rounds of hundreds (one claim and one mark per round) rather than one round per
/// committed order batch.
const GATHER: Duration = Duration::from_millis(10);

#[derive(Debug, thiserror::Error)]
pub enum RelayError {
    #[error("postgres: {0}")]
    Db(#[from] sqlx::Error),
    #[error("rabbitmq: {0}")]
    Broker(#[from] lapin::Error),
    #[error("rabbitmq refused message {0}")]
    Refused(Uuid),
    #[error("message {0} is unroutable")]
    Unroutable(Uuid),
}

#[derive(sqlx::FromRow)]
struct Row {
    id: i64,
    message_id: Uuid,
    exchange: String,
    routing_key: String,
    message_type: String,
    payload: serde_json::Value,
}

/// Publishes one round of at most `limit` messages; returns how many.
pub async fn relay_once(
    pool: &PgPool,
    channel: &lapin::Channel,
    broker: &Broker,
    limit: i64,
) -> Result<usize, RelayError> {
    let mut tx = pool.begin().await?;
    let ours: bool = sqlx::query_scalar("SELECT pg_try_advisory_xact_lock($1)")
        .bind(RELAY_LOCK)
        .fetch_one(&mut *tx)
        .await?;
    if !ours {
        return Ok(0);
    }
    let rows: Vec<Row> = sqlx::query_as(
        "SELECT id, message_id, exchange, routing_key, message_type, payload FROM outbox \
         WHERE published_at IS NULL ORDER BY id LIMIT $1 FOR UPDATE SKIP LOCKED",
    )
    .bind(limit)
    .fetch_all(&mut *tx)
    .await?;
    if rows.is_empty() {
        return Ok(0);
    }
    let mut confirms = Vec::with_capacity(rows.len());
    for row in &rows {
        let Some(exchange) = exchange_named(&row.exchange) else {
            tracing::error!(id = row.id, exchange = %row.exchange, "outbox row names no known exchange");
            continue;
        };
        let body = serde_json::to_vec(&row.payload).unwrap_or_default();
        let confirm = channel
            .basic_publish(
                broker.names().exchange(exchange).into(),
                row.routing_key.as_str().into(),
                BasicPublishOptions {
                    mandatory: true,
                    ..BasicPublishOptions::default()
                },
                &body,
                outbox_properties(&row.message_type, &row.message_id.to_string(), row.id),
            )
            .await?;
        confirms.push((row.message_id, confirm));
    }
    for (message_id, confirm) in confirms {
        let confirmation = confirm.await?;
        if confirmation.is_nack() {
            return Err(RelayError::Refused(message_id));
        }
        if confirmation.take_message().is_some() {
            return Err(RelayError::Unroutable(message_id));
        }
    }
    let ids: Vec<i64> = rows.iter().map(|r| r.id).collect();
    sqlx::query("UPDATE outbox SET published_at = now() WHERE id = ANY($1)")
        .bind(&ids)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    ::metrics::counter!("api_outbox_published_total").increment(ids.len() as u64);
    Ok(ids.len())
}

/// The messages waiting to be published.
pub async fn backlog(pool: &PgPool) -> Result<crate::db::Backlog, sqlx::Error> {
    crate::db::Backlog::read(
        pool,
        "SELECT count(*), extract(epoch FROM now() - min(created_at))::float8 FROM outbox \
         WHERE published_at IS NULL",
    )
    .await
}

/// Relays until `stop`: woken by each committed message (LISTEN), or every half second.
pub async fn run(pool: PgPool, broker: Arc<Broker>, limit: i64, stop: CancellationToken) {
    let mut listener = match PgListener::connect_with(&pool).await {
        Ok(mut listener) => match listener.listen("flash_outbox").await {
            Ok(()) => Some(listener),
            Err(error) => {
                tracing::warn!(%error, "cannot LISTEN for outbox messages; polling");
                None
            }
        },
        Err(error) => {
            tracing::warn!(%error, "cannot LISTEN for outbox messages; polling");
            None
        }
    };
    let mut backoff = Duration::from_millis(200);
    while !stop.is_cancelled() {
        let channel = match broker.channel().await {
            Ok(channel) => match channel
                .confirm_select(ConfirmSelectOptions::default())
                .await
            {
                Ok(()) => channel,
                Err(error) => {
                    tracing::warn!(%error, "cannot enable publisher confirms");
                    sleep_or_stop(&stop, backoff).await;
                    continue;
                }
            },
            Err(_) => {
                sleep_or_stop(&stop, backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(5));
                continue;
            }
        };
        backoff = Duration::from_millis(200);
        loop {
            match relay_once(&pool, &channel, &broker, limit).await {
                Ok(n) if i64::try_from(n).unwrap_or(0) >= limit => continue,
                Ok(_) => {
                    let woken = async {
                        match listener.as_mut() {
                            Some(listener) => {
                                let _ = listener.recv().await;
                            }
                            None => std::future::pending().await,
                        }
                    };
                    tokio::select! {
                        () = stop.cancelled() => return,
                        () = woken => {}
                        () = tokio::time::sleep(POLL_EVERY) => {}
                    }
                    sleep_or_stop(&stop, GATHER).await;
                    // The round that follows covers every notification received meanwhile.
                    if let Some(listener) = listener.as_mut() {
                        while listener.next_buffered().is_some() {}
                    }
                }
                Err(error) => {
                    ::metrics::counter!("api_outbox_failures_total").increment(1);
                    tracing::warn!(%error, "outbox round failed; retrying");
                    sleep_or_stop(&stop, backoff).await;
                    break;
                }
            }
            if stop.is_cancelled() {
                return;
            }
        }
    }
}

async fn sleep_or_stop(stop: &CancellationToken, wait: Duration) {
    tokio::select! {
        () = stop.cancelled() => {}
        () = tokio::time::sleep(wait) => {}
    }
}
