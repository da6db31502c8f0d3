//! Consumer of payment results (`api.payment-results`): approved → `paid`; declined →
//! `payment_failed` with the tickets returned to stock. Applied once per payment (the result
//! is recorded under its `payment_id`), only to an order still waiting for it; duplicates and
//! late results change nothing. Acknowledged only after the transaction commits.

use std::sync::Arc;

use flash_kit::amqp::{Broker, Disposition, consume, decode_delivery};
use flash_protocol::messages::{DecodeError, PaymentCompleted, PaymentOutcome, Queue};
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::stock;

/// Results handled at once.
const PREFETCH: u16 = 32;

/// What applying a result did.
#[derive(Debug, PartialEq, Eq)]
pub enum Applied {
    Paid,
    Failed,
    /// Seen before (same `payment_id`).
    Duplicate,
    /// The order was no longer waiting (expired, or another payment settled it).
    Late,
    /// No such order, or another payment id: nothing to apply it to.
    Unknown,
}

/// Applies one result in one transaction.
pub async fn apply(pool: &PgPool, result: &PaymentCompleted) -> Result<Applied, sqlx::Error> {
    let mut tx = pool.begin().await?;
    let order: Option<(String, Uuid, Uuid, Uuid, i32)> = sqlx::query_as(
        "SELECT status, payment_id, event_id, user_id, quantity FROM orders WHERE id = $1 \
         FOR UPDATE",
    )
    .bind(result.order_id.0)
    .fetch_optional(&mut *tx)
    .await?;
    let Some((status, payment_id, event, user, quantity)) = order else {
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
        tx.commit().await?;
        return Ok(Applied::Late);
    }
    let applied = match result.outcome {
        PaymentOutcome::Approved => {
            sqlx::query("UPDATE orders SET status = 'paid', updated_at = now() WHERE id = $1")
                .bind(result.order_id.0)
                .execute(&mut *tx)
                .await?;
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

/// The payment result in a delivery of `api.payment-results` (its type from the `type`
/// header or property), or why it can never be applied: another type, or a body that is not
/// a `payment.completed`.
pub fn result_of(
    properties: &lapin::BasicProperties,
    body: &[u8],
) -> Result<PaymentCompleted, DecodeError> {
    decode_delivery(properties, body)
}

/// Consumes payment results until `stop`.
pub async fn run(pool: PgPool, broker: Arc<Broker>, stop: CancellationToken) {
    consume(
        broker,
        Queue::ApiPaymentResults,
        "flash-api",
        PREFETCH,
        stop,
        move |delivery| {
            let pool = pool.clone();
            async move {
                let result = match result_of(&delivery.properties, &delivery.data) {
                    Ok(result) => result,
                    Err(error) => {
                        tracing::error!(%error, "undecodable payment result dropped");
                        ::metrics::counter!("api_payment_results_total", "applied" => "poison")
                            .increment(1);
                        return Disposition::Reject;
                    }
                };
                match apply(&pool, &result).await {
                    Ok(applied) => {
                        if applied == Applied::Late && result.outcome == PaymentOutcome::Approved {
                            tracing::warn!(order = %result.order_id, payment = %result.payment_id,
                            "payment approved after the order stopped waiting: refund it");
                        }
                        let label = match applied {
                            Applied::Paid => "paid",
                            Applied::Failed => "failed",
                            Applied::Duplicate => "duplicate",
                            Applied::Late => "late",
                            Applied::Unknown => "unknown",
                        };
                        ::metrics::counter!("api_payment_results_total", "applied" => label)
                            .increment(1);
                        Disposition::Ack
                    }
                    Err(error) => {
                        tracing::warn!(%error, "cannot apply a payment result; redelivering");
                        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
                        Disposition::Requeue
                    }
                }
            }
        },
    )
    .await;
}
