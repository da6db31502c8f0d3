//! Retention: what the api keeps only to recognise a repeat is deleted once a repeat can no
//! longer matter — idempotency keys, used gate tokens, expired or revoked refresh tokens,
//! payment outcomes and published outbox messages, each after its window
//! ([`RetentionConfig`]). Safe with many replicas (each deletion is idempotent), in bounded
//! batches so a sweep never holds a table for long.

use std::time::Duration;

use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

use crate::config::RetentionConfig;

/// Rows deleted per statement at most.
const BATCH: i64 = 10_000;
/// Statements per table per sweep at most (the rest waits for the next sweep).
const BATCHES_PER_SWEEP: usize = 10;

/// What one sweep deleted, by table.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Retired {
    pub idempotency_keys: u64,
    pub consumed_gate_tokens: u64,
    pub refresh_tokens: u64,
    pub payment_results: u64,
    pub outbox: u64,
}

/// Deletes, in batches, rows of `table` whose `column` is older than `keep`.
async fn older_than(
    pool: &PgPool,
    statement: &'static str,
    keep: Duration,
) -> Result<u64, sqlx::Error> {
    let mut deleted = 0;
    for _ in 0..BATCHES_PER_SWEEP {
        let n = sqlx::query(statement)
            .bind(keep.as_secs_f64())
            .bind(BATCH)
            .execute(pool)
            .await?
            .rows_affected();
        deleted += n;
        if n < u64::try_from(BATCH).unwrap_or(u64::MAX) {
            break;
        }
    }
    Ok(deleted)
}

/// One sweep over every table.
pub async fn sweep(pool: &PgPool, config: &RetentionConfig) -> Result<Retired, sqlx::Error> {
    let retired = Retired {
        idempotency_keys: older_than(
            pool,
            "DELETE FROM idempotency_keys WHERE ctid IN (SELECT ctid FROM idempotency_keys \
               WHERE created_at < now() - make_interval(secs => $1) LIMIT $2)",
            config.idempotency_keys(),
        )
        .await?,
        consumed_gate_tokens: older_than(
            pool,
            "DELETE FROM consumed_gate_tokens WHERE ctid IN (SELECT ctid FROM consumed_gate_tokens \
               WHERE consumed_at < now() - make_interval(secs => $1) LIMIT $2)",
            config.consumed_gate_tokens(),
        )
        .await?,
        refresh_tokens: older_than(
            pool,
            "DELETE FROM refresh_tokens WHERE ctid IN (SELECT ctid FROM refresh_tokens \
               WHERE expires_at < now() - make_interval(secs => $1) \
                  OR revoked_at < now() - make_interval(secs => $1) LIMIT $2)",
            config.refresh_tokens(),
        )
        .await?,
        payment_results: older_than(
            pool,
            "DELETE FROM payment_results WHERE ctid IN (SELECT ctid FROM payment_results \
               WHERE received_at < now() - make_interval(secs => $1) LIMIT $2)",
            config.payment_results(),
        )
        .await?,
        outbox: older_than(
            pool,
            "DELETE FROM outbox WHERE id IN (SELECT id FROM outbox \
               WHERE published_at < now() - make_interval(secs => $1) LIMIT $2)",
            config.outbox(),
        )
        .await?,
    };
    for (table, n) in [
        ("idempotency_keys", retired.idempotency_keys),
        ("consumed_gate_tokens", retired.consumed_gate_tokens),
        ("refresh_tokens", retired.refresh_tokens),
        ("payment_results", retired.payment_results),
        ("outbox", retired.outbox),
    ] {
        if n > 0 {
            ::metrics::counter!("api_retired_rows_total", "table" => table).increment(n);
        }
    }
    Ok(retired)
}

/// Sweeps every `config.sweep_every()` until `stop`.
pub async fn run(pool: PgPool, config: RetentionConfig, stop: CancellationToken) {
    let mut interval = tokio::time::interval(config.sweep_every());
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            _ = interval.tick() => {}
        }
        match sweep(&pool, &config).await {
            Ok(retired) if retired != Retired::default() => {
                tracing::info!(?retired, "retention sweep");
            }
            Ok(_) => {}
            Err(error) => tracing::warn!(%error, "retention sweep failed"),
        }
    }
}
