//! Consumer of payment and refund results (`api.payment-results`): approved → `paid`;
//! declined → `payment_failed` with the tickets returned to stock; approved after the order
//! stopped waiting (its hold expired) → a refund asked for through the outbox, in the same
//! transaction; a refund's outcome → the order's `refund`. Applied once per payment (the result
//! is recorded under its `payment_id`, a refund's outcome only moves a pending refund), only
//! to an order still waiting for it; duplicates change nothing. Acknowledged only after the
//! result's transaction (or single statement) commits. A result that cannot be read, or that
//! fails to apply [`RESULT_MAX_DELIVERIES`] times, goes to `api.payment-results.dead` with the
//! reason (confirmed before it is acknowledged): never dropped.

use std::sync::Arc;
use std::time::Duration;

use flash_kit::amqp::{
    Broker, Disposition, Publisher, consume, earlier_deliveries, message_type, with_headers,
};
use flash_protocol::EventId;
use flash_protocol::messages::{
    DecodeError, EventSoldOut, Exchange, PaymentCompleted, PaymentOutcome, PaymentRefundRequested,
    PaymentRefunded, PaymentResult, Queue, RESULT_MAX_DELIVERIES, RefundOutcome, routing,
};
use flash_protocol::order::RefundStatus;
use lapin::message::Delivery;
use sqlx::PgPool;
use time::OffsetDateTime;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::db::outbox::{self, Outgoing};
use crate::stock;

/// Results handled at once.
const PREFETCH: u16 = 32;
/// Longest wait before a redelivery.
const REDELIVERY_MAX: Duration = Duration::from_secs(5);

/// What applying a payment's result did.
#[derive(Debug, PartialEq, Eq)]
pub enum Applied {
    Paid,
    Failed,
    /// Seen before (same `payment_id`).
    Duplicate,
    /// Declined after the order stopped waiting (expired): nothing to do.
    Late,
    /// Approved after the order stopped waiting: its refund was asked for.
    Refunding,
    /// No such order, or another payment id: nothing to apply it to.
    Unknown,
}

impl Applied {
    /// Its `applied` label on `api_payment_results_total`.
    #[must_use]
    pub const fn label(&self) -> &'static str {
        match self {
            Applied::Paid => "paid",
            Applied::Failed => "failed",
            Applied::Duplicate => "duplicate",
            Applied::Late => "late",
            Applied::Refunding => "refunding",
            Applied::Unknown => "unknown",
        }
    }
}

/// What applying a refund's outcome did.
#[derive(Debug, PartialEq, Eq)]
pub enum RefundApplied {
    Refunded,
    Failed,
    /// The refund was settled already.
    Duplicate,
    /// No refund of this payment was asked for.
    Unknown,
}

impl RefundApplied {
    /// Its `outcome` label on `api_refunds_total`.
    #[must_use]
    pub const fn label(&self) -> &'static str {
        match self {
            RefundApplied::Refunded => "refunded",
            RefundApplied::Failed => "failed",
            RefundApplied::Duplicate => "duplicate",
            RefundApplied::Unknown => "unknown",
        }
    }
}

/// Applies one result: an approval of a waiting order while tickets are left in one statement
/// ([`approve_at_once`]), anything else in one transaction.
pub async fn apply(pool: &PgPool, result: &PaymentCompleted) -> Result<Applied, sqlx::Error> {
    if result.outcome == PaymentOutcome::Approved && approve_at_once(pool, result).await? {
        return Ok(Applied::Paid);
    }
    let mut tx = pool.begin().await?;
    let order: Option<(String, Uuid, Uuid, Uuid, i32, i64, String)> = sqlx::query_as(
        "SELECT status, payment_id, event_id, user_id, quantity, amount_cents, currency \
         FROM orders WHERE id = $1 FOR UPDATE",
    )
    .bind(result.order_id.0)
    .fetch_optional(&mut *tx)
    .await?;
    let Some((status, payment_id, event, user, quantity, amount_cents, currency)) = order else {
        return Ok(Applied::Unknown);
    };
    if payment_id != result.payment_id.0 {
        return Ok(Applied::Unknown);
    }
    let outcome = match result.outcome {
        PaymentOutcome::Approved => "approved",
        PaymentOutcome::Declined => "declined",
    };
    let recorded = sqlx::query(
        "INSERT INTO payment_results (payment_id, order_id, outcome, reason, processed_at) \
         VALUES ($1, $2, $3, $4, $5) ON CONFLICT (payment_id) DO NOTHING",
    )
    .bind(result.payment_id.0)
    .bind(result.order_id.0)
    .bind(outcome)
    .bind(&result.reason)
    .bind(result.processed_at)
    .execute(&mut *tx)
    .await?;
    if recorded.rows_affected() == 0 {
        return Ok(Applied::Duplicate);
    }
    if status != "pending_payment" {
        if status == "paid" {
            // This very payment paid the order: seen again after its record was retired.
            tx.commit().await?;
            return Ok(Applied::Duplicate);
        }
        if result.outcome == PaymentOutcome::Declined {
            tx.commit().await?;
            return Ok(Applied::Late);
        }
        // Money was taken for an order that gives no ticket: give it back, once (a result
        // seen again after its record was retired finds the refund already asked for).
        let asked = sqlx::query(
            "UPDATE orders SET refund_status = $2, refund_at = now(), updated_at = now() \
             WHERE id = $1 AND refund_status IS NULL",
        )
        .bind(result.order_id.0)
        .bind(RefundStatus::Pending.as_str())
        .execute(&mut *tx)
        .await?;
        if asked.rows_affected() == 0 {
            tx.commit().await?;
            return Ok(Applied::Duplicate);
        }
        let refund = PaymentRefundRequested {
            payment_id: result.payment_id,
            order_id: result.order_id,
            amount_cents,
            currency,
            requested_at: OffsetDateTime::now_utc(),
        };
        outbox::push(&mut tx, &[Outgoing::new(&refund)]).await?;
        tx.commit().await?;
        return Ok(Applied::Refunding);
    }
    let applied = match result.outcome {
        PaymentOutcome::Approved => {
            sqlx::query("UPDATE orders SET status = 'paid', updated_at = now() WHERE id = $1")
                .bind(result.order_id.0)
                .execute(&mut *tx)
                .await?;
            announce_reserved(&mut tx, event).await?;
            Applied::Paid
        }
        PaymentOutcome::Declined => {
            sqlx::query(
                "UPDATE orders SET status = 'payment_failed', failure_reason = $2, updated_at = now() \
                 WHERE id = $1",
            )
            .bind(result.order_id.0)
            .bind(&result.reason)
            .execute(&mut *tx)
            .await?;
            let returned = stock::Returned {
                event,
                user,
                quantity,
            };
            stock::give_back(&mut tx, &[returned]).await?;
            Applied::Failed
        }
    };
    tx.commit().await?;
    Ok(applied)
}

/// The result nearly every payment of a sale gets: an approval of an order still waiting for
/// it, while its event has tickets left. Recorded and applied by one statement (one round trip,
/// committed on its own) instead of [`apply`]'s transaction of six; `false` when it is not
/// that case, and nothing was written. Every other result (a decline, a duplicate, a late or
/// unknown one, and a payment settling once no ticket is left, which must tell the gateway how
/// many orders are still being paid) takes the transaction.
async fn approve_at_once(pool: &PgPool, result: &PaymentCompleted) -> Result<bool, sqlx::Error> {
    let paid = sqlx::query(
        "WITH waiting AS ( \
             SELECT o.id FROM orders o JOIN event_stock s ON s.event_id = o.event_id \
             WHERE o.id = $1 AND o.payment_id = $2 AND o.status = 'pending_payment' \
               AND s.remaining > 0 \
             FOR UPDATE OF o), \
         recorded AS ( \
             INSERT INTO payment_results (payment_id, order_id, outcome, reason, processed_at) \
             SELECT $2, id, 'approved', $3, $4 FROM waiting \
             ON CONFLICT (payment_id) DO NOTHING \
             RETURNING order_id) \
         UPDATE orders SET status = 'paid', updated_at = now() \
         WHERE id IN (SELECT order_id FROM recorded)",
    )
    .bind(result.order_id.0)
    .bind(result.payment_id.0)
    .bind(&result.reason)
    .bind(result.processed_at)
    .execute(pool)
    .await?;
    Ok(paid.rows_affected() == 1)
}

/// While no ticket of `event` is left, tells the gateway how many orders are still being paid
/// (one fewer now): at 0 nothing can come back and its queue closes. Payments settling at once
/// take turns on the stock row and each counts after the one before committed, so the last
/// one announces 0.
async fn announce_reserved(tx: &mut sqlx::PgConnection, event: Uuid) -> Result<(), sqlx::Error> {
    let remaining: Option<i32> =
        sqlx::query_scalar("SELECT remaining FROM event_stock WHERE event_id = $1")
            .bind(event)
            .fetch_optional(&mut *tx)
            .await?;
    if remaining != Some(0) {
        return Ok(());
    }
    sqlx::query("SELECT 1 FROM event_stock WHERE event_id = $1 FOR UPDATE")
        .bind(event)
        .execute(&mut *tx)
        .await?;
    let Some(row) = crate::db::events::get_in(tx, event).await? else {
        return Ok(());
    };
    if row.remaining != 0 {
        return Ok(());
    }
    let now = OffsetDateTime::now_utc();
    let sold_out = EventSoldOut {
        event_id: EventId(event),
        sold_out_at: now,
        reserved_pending: row.returns_possible(now),
    };
    outbox::push(tx, &[Outgoing::new(&sold_out)]).await
}

/// Applies a refund's outcome: only a pending refund of this very payment moves.
pub async fn apply_refund(
    pool: &PgPool,
    refunded: &PaymentRefunded,
) -> Result<RefundApplied, sqlx::Error> {
    let status = match refunded.outcome {
        RefundOutcome::Refunded => RefundStatus::Refunded,
        RefundOutcome::Failed => RefundStatus::Failed,
    };
    let moved = sqlx::query(
        "UPDATE orders SET refund_status = $3, refund_at = $4, updated_at = now() \
         WHERE id = $1 AND payment_id = $2 AND refund_status = $5",
    )
    .bind(refunded.order_id.0)
    .bind(refunded.payment_id.0)
    .bind(status.as_str())
    .bind(refunded.processed_at)
    .bind(RefundStatus::Pending.as_str())
    .execute(pool)
    .await?;
    if moved.rows_affected() == 1 {
        return Ok(match status {
            RefundStatus::Failed => RefundApplied::Failed,
            _ => RefundApplied::Refunded,
        });
    }
    let asked: Option<Option<String>> =
        sqlx::query_scalar("SELECT refund_status FROM orders WHERE id = $1 AND payment_id = $2")
            .bind(refunded.order_id.0)
            .bind(refunded.payment_id.0)
            .fetch_optional(pool)
            .await?;
    Ok(match asked {
        Some(Some(_)) => RefundApplied::Duplicate,
        _ => RefundApplied::Unknown,
    })
}

/// The result in a delivery of `api.payment-results` (its type from the `type` header or
/// property), or why it can never be applied: another type, or a body that does not decode.
pub fn result_of(
    properties: &lapin::BasicProperties,
    body: &[u8],
) -> Result<PaymentResult, DecodeError> {
    PaymentResult::decode(&message_type(properties).unwrap_or_default(), body)
}

/// Applies one delivered result and counts it.
async fn handle(
    pool: &PgPool,
    dead_letters: &Publisher,
    redelivery_step: Duration,
    delivery: &Delivery,
) -> Disposition {
    let result = match result_of(&delivery.properties, &delivery.data) {
        Ok(result) => result,
        Err(error) => {
            tracing::error!(%error, "undecodable payment result dead-lettered");
            ::metrics::counter!("api_payment_results_total", "applied" => "poison").increment(1);
            return dead_letter(dead_letters, delivery, &format!("undecodable: {error}")).await;
        }
    };
    let applied = match &result {
        PaymentResult::Completed(completed) => apply(pool, completed).await.map(|applied| {
            if applied == Applied::Refunding {
                tracing::warn!(order = %completed.order_id, payment = %completed.payment_id,
                    "payment approved after the order stopped waiting: refund asked for");
                ::metrics::counter!("api_refunds_total", "outcome" => "requested").increment(1);
            }
            ::metrics::counter!("api_payment_results_total", "applied" => applied.label())
                .increment(1);
        }),
        PaymentResult::Refunded(refunded) => apply_refund(pool, refunded).await.map(|applied| {
            if applied == RefundApplied::Failed {
                tracing::error!(order = %refunded.order_id, payment = %refunded.payment_id,
                        reason = refunded.reason.as_deref().unwrap_or(""),
                        "the provider refused a refund: give the money back by hand");
            }
            ::metrics::counter!("api_refunds_total", "outcome" => applied.label()).increment(1);
        }),
    };
    match applied {
        Ok(()) => Disposition::Ack,
        Err(error) => {
            let deliveries = earlier_deliveries(&delivery.properties).saturating_add(1);
            if deliveries >= RESULT_MAX_DELIVERIES {
                let reason = format!("not applied in {deliveries} deliveries: {error}");
                tracing::error!(%reason, "payment result dead-lettered");
                return dead_letter(dead_letters, delivery, &reason).await;
            }
            tracing::warn!(%error, deliveries, "cannot apply a payment result; redelivering");
            tokio::time::sleep(
                redelivery_step
                    .saturating_mul(deliveries)
                    .min(REDELIVERY_MAX),
            )
            .await;
            Disposition::Requeue
        }
    }
}

/// Moves a result to `api.payment-results.dead` with the reason, acknowledging it only once
/// the copy is confirmed (requeued otherwise).
async fn dead_letter(publisher: &Publisher, delivery: &Delivery, reason: &str) -> Disposition {
    let deliveries = earlier_deliveries(&delivery.properties).saturating_add(1);
    let properties = with_headers(&delivery.properties, deliveries, Some(reason));
    match publisher
        .publish(
            Exchange::Payments,
            routing::RESULT_DEAD,
            &delivery.data,
            properties,
        )
        .await
    {
        Ok(()) => {
            ::metrics::counter!("api_payment_results_total", "applied" => "dead").increment(1);
            Disposition::Ack
        }
        Err(error) => {
            tracing::warn!(%error, "cannot dead-letter a payment result; requeued");
            tokio::time::sleep(REDELIVERY_MAX).await;
            Disposition::Requeue
        }
    }
}

/// The refunds waiting for the provider.
pub async fn pending_refunds(pool: &PgPool) -> Result<crate::db::Backlog, sqlx::Error> {
    crate::db::Backlog::read(
        pool,
        "SELECT count(*), extract(epoch FROM now() - min(refund_at))::float8 FROM orders \
         WHERE refund_status = 'pending'",
    )
    .await
}

/// Consumes payment and refund results until `stop`; a result that failed to apply waits
/// `redelivery_step` per delivery so far (at most 5 s) before it is delivered again.
pub async fn run(
    pool: PgPool,
    broker: Arc<Broker>,
    redelivery_step: Duration,
    stop: CancellationToken,
) {
    let dead_letters = Arc::new(Publisher::new(Arc::clone(&broker)));
    consume(
        broker,
        Queue::ApiPaymentResults,
        "flash-api",
        PREFETCH,
        stop,
        move |delivery| {
            let pool = pool.clone();
            let dead_letters = Arc::clone(&dead_letters);
            async move { handle(&pool, &dead_letters, redelivery_step, &delivery).await }
        },
    )
    .await;
}
