//! Background sweeps, safe with many replicas (`FOR UPDATE SKIP LOCKED`): orders unpaid past
//! their hold expire and return their tickets, exactly once; orders whose payment went
//! unanswered are asked for again; events whose start has passed are announced as ended
//! (their queue closes). Old rows are retired by [`crate::retention`]. The gauges of what waits
//! (outbox, refunds) are read here too, on this timer.

use std::time::Duration;

use flash_protocol::messages::{EventSoldOut, EventUpdated, PaymentRequested};
use flash_protocol::{EventId, OrderId, PaymentId, UserId};
use sqlx::PgPool;
use time::OffsetDateTime;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::db::outbox::{self, Outgoing};
use crate::stock;

/// Orders expired per sweep at most.
const SWEEP_LIMIT: i64 = 1000;

/// Expires orders whose hold has passed; returns how many.
pub async fn expire_holds(pool: &PgPool) -> Result<usize, sqlx::Error> {
    let mut tx = pool.begin().await?;
    let expired: Vec<(Uuid, Uuid, i32)> = sqlx::query_as(
        "UPDATE orders SET status = 'expired', updated_at = now() WHERE id IN ( \
           SELECT id FROM orders WHERE status = 'pending_payment' AND hold_expires_at <= now() \
           ORDER BY hold_expires_at LIMIT $1 FOR UPDATE SKIP LOCKED) \
         RETURNING event_id, user_id, quantity",
    )
    .bind(SWEEP_LIMIT)
    .fetch_all(&mut *tx)
    .await?;
    let returns: Vec<stock::Returned> = expired
        .iter()
        .map(|&(event, user, quantity)| stock::Returned {
            event,
            user,
            quantity,
        })
        .collect();
    stock::give_back(&mut tx, &returns).await?;
    tx.commit().await?;
    if !expired.is_empty() {
        ::metrics::counter!("api_orders_expired_total").increment(expired.len() as u64);
    }
    Ok(expired.len())
}

/// When payment is asked for again: first `after` the order was taken, then each time twice
/// as long after the previous ask, at most `most` times.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Reask {
    pub after: Duration,
    pub most: u32,
}

/// Asks again for the payment of orders still pending past their next ask (a request the
/// broker confirmed can still be lost, e.g. in a restart): the same payment id, so the pay
/// worker charges once and the results consumer settles once. Returns how many.
pub async fn reask_payments(pool: &PgPool, reask: Reask) -> Result<usize, sqlx::Error> {
    let mut tx = pool.begin().await?;
    let pending: Vec<(Uuid, Uuid, i64, String, Uuid)> = sqlx::query_as(
        "UPDATE orders SET payment_asked_at = now(), payment_asks = payment_asks + 1 \
         WHERE id IN ( \
           SELECT id FROM orders WHERE status = 'pending_payment' AND hold_expires_at > now() \
             AND payment_asks < $3 \
             AND coalesce(payment_asked_at, created_at) \
                 <= now() - make_interval(secs => $1 * power(2, payment_asks)) \
           ORDER BY created_at LIMIT $2 FOR UPDATE SKIP LOCKED) \
         RETURNING id, user_id, amount_cents, currency, payment_id",
    )
    .bind(reask.after.as_secs_f64())
    .bind(SWEEP_LIMIT)
    .bind(i32::try_from(reask.most).unwrap_or(i32::MAX))
    .fetch_all(&mut *tx)
    .await?;
    let now = OffsetDateTime::now_utc();
    let messages: Vec<Outgoing> = pending
        .into_iter()
        .map(|(order, user, amount_cents, currency, payment)| {
            Outgoing::new(&PaymentRequested {
                payment_id: PaymentId(payment),
                order_id: OrderId(order),
                user_id: UserId(user),
                amount_cents,
                currency,
                requested_at: now,
            })
        })
        .collect();
    outbox::push(&mut tx, &messages).await?;
    tx.commit().await?;
    if !messages.is_empty() {
        tracing::warn!(orders = messages.len(), "payment asked for again");
        ::metrics::counter!("api_payments_reasked_total").increment(messages.len() as u64);
    }
    Ok(messages.len())
}

/// Announces events whose start time has passed as ended, once each.
pub async fn announce_ended(pool: &PgPool) -> Result<usize, sqlx::Error> {
    let mut tx = pool.begin().await?;
    let ended: Vec<Uuid> = sqlx::query_scalar(
        "UPDATE events SET ended_announced = true WHERE id IN ( \
           SELECT id FROM events WHERE starts_at <= now() AND NOT ended_announced \
           LIMIT 100 FOR UPDATE SKIP LOCKED) RETURNING id",
    )
    .fetch_all(&mut *tx)
    .await?;
    let now = OffsetDateTime::now_utc();
    let mut messages = Vec::new();
    for event in &ended {
        if let Some(row) = crate::db::events::get_in(&mut tx, *event).await? {
            messages.push(Outgoing::new(&EventUpdated {
                event: row.queue_info(now),
                queue: None,
                remaining: None,
            }));
        }
    }
    outbox::push(&mut tx, &messages).await?;
    tx.commit().await?;
    Ok(ended.len())
}

/// Tells the gateway, once, that a sold-out event's queue closes because its `returns_until`
/// passed (tickets that come back no longer go to the line).
pub async fn announce_returns_closed(pool: &PgPool) -> Result<usize, sqlx::Error> {
    let mut tx = pool.begin().await?;
    let closed: Vec<Uuid> = sqlx::query_scalar(
        "UPDATE events SET returns_closed_announced = true WHERE id IN ( \
           SELECT e.id FROM events e JOIN event_stock s ON s.event_id = e.id \
           WHERE e.returns_until <= now() AND NOT e.returns_closed_announced \
             AND e.starts_at > now() AND s.remaining = 0 \
           LIMIT 100 FOR UPDATE OF e SKIP LOCKED) RETURNING id",
    )
    .fetch_all(&mut *tx)
    .await?;
    let now = OffsetDateTime::now_utc();
    let messages: Vec<Outgoing> = closed
        .iter()
        .map(|event| {
            Outgoing::new(&EventSoldOut {
                event_id: EventId(*event),
                sold_out_at: now,
                reserved_pending: 0,
            })
        })
        .collect();
    outbox::push(&mut tx, &messages).await?;
    tx.commit().await?;
    Ok(closed.len())
}

/// How often the sweeps run, and when payment is asked for again (`None`: never).
#[derive(Clone, Copy, Debug)]
pub struct Sweeps {
    pub every: Duration,
    pub reask: Option<Reask>,
}

/// How often the backlog gauges are read from Postgres.
const GAUGES_EVERY: Duration = Duration::from_secs(5);

/// Sets the gauges of what waits, read from Postgres on this timer (never from the relay's
/// loop, which stops while RabbitMQ is away, exactly when they matter): `api_outbox_backlog`,
/// `api_outbox_oldest_unpublished_seconds`, `api_refunds_pending` and
/// `api_refund_oldest_pending_seconds`.
pub async fn refresh_gauges(pool: &PgPool) -> Result<(), sqlx::Error> {
    let outbox = crate::relay::backlog(pool).await?;
    ::metrics::gauge!("api_outbox_backlog").set(outbox.count as f64);
    ::metrics::gauge!("api_outbox_oldest_unpublished_seconds").set(outbox.oldest_secs);
    let refunds = crate::payments::pending_refunds(pool).await?;
    ::metrics::gauge!("api_refunds_pending").set(refunds.count as f64);
    ::metrics::gauge!("api_refund_oldest_pending_seconds").set(refunds.oldest_secs);
    Ok(())
}

/// Sweeps every `sweeps.every` until `stop`.
pub async fn run(pool: PgPool, sweeps: Sweeps, stop: CancellationToken) {
    let mut interval = tokio::time::interval(sweeps.every);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut gauges_read: Option<tokio::time::Instant> = None;
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            _ = interval.tick() => {}
        }
        if gauges_read.is_none_or(|at| at.elapsed() >= GAUGES_EVERY) {
            gauges_read = Some(tokio::time::Instant::now());
            if let Err(error) = refresh_gauges(&pool).await {
                tracing::warn!(%error, "backlog gauges not read");
            }
        }
        loop {
            match expire_holds(&pool).await {
                Ok(n) if i64::try_from(n).unwrap_or(0) >= SWEEP_LIMIT => {}
                Ok(_) => break,
                Err(error) => {
                    tracing::warn!(%error, "hold sweep failed");
                    break;
                }
            }
        }
        if let Some(reask) = sweeps.reask
            && let Err(error) = reask_payments(&pool, reask).await
        {
            tracing::warn!(%error, "payment re-ask sweep failed");
        }
        if let Err(error) = announce_ended(&pool).await {
            tracing::warn!(%error, "ended-event sweep failed");
        }
        if let Err(error) = announce_returns_closed(&pool).await {
            tracing::warn!(%error, "returns cut-off sweep failed");
        }
    }
}
