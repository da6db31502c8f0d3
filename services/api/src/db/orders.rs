//! Orders as the buyer sees them.

use flash_protocol::order::{Order, OrderStatus, Refund, RefundStatus};
use flash_protocol::{EventId, OrderId};
use sqlx::PgPool;
use time::OffsetDateTime;
use uuid::Uuid;

#[derive(Clone, Debug, sqlx::FromRow)]
pub struct OrderRow {
    pub id: Uuid,
    pub event_id: Uuid,
    pub quantity: i32,
    pub amount_cents: i64,
    pub currency: String,
    pub status: String,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
    pub refund_status: Option<String>,
    pub refund_at: Option<OffsetDateTime>,
}

/// `SELECT` of an [`OrderRow`] followed by `$tail` (a literal, so the query stays static).
macro_rules! select_order {
    ($tail:literal) => {
        concat!(
            "SELECT id, event_id, quantity, amount_cents, currency, status, created_at, ",
            "updated_at, refund_status, refund_at FROM orders ",
            $tail
        )
    };
}
pub(crate) use select_order;

#[must_use]
pub fn parse_status(status: &str) -> OrderStatus {
    match status {
        "paid" => OrderStatus::Paid,
        "payment_failed" => OrderStatus::PaymentFailed,
        "expired" => OrderStatus::Expired,
        _ => OrderStatus::PendingPayment,
    }
}

impl OrderRow {
    #[must_use]
    pub fn to_order(&self) -> Order {
        Order {
            id: OrderId(self.id),
            event_id: EventId(self.event_id),
            quantity: u32::try_from(self.quantity).unwrap_or(0),
            amount_cents: self.amount_cents,
            currency: self.currency.clone(),
            status: parse_status(&self.status),
            created_at: self.created_at,
            updated_at: self.updated_at,
            refund: self
                .refund_status
                .as_deref()
                .and_then(RefundStatus::parse)
                .zip(self.refund_at)
                .map(|(status, at)| Refund { status, at }),
        }
    }
}

/// One of the user's orders (another user's order is not found).
pub async fn get(pool: &PgPool, user: Uuid, id: Uuid) -> Result<Option<OrderRow>, sqlx::Error> {
    sqlx::query_as(select_order!("WHERE id = $1 AND user_id = $2"))
        .bind(id)
        .bind(user)
        .fetch_optional(pool)
        .await
}

/// The user's orders, newest first.
pub async fn of_user(pool: &PgPool, user: Uuid) -> Result<Vec<OrderRow>, sqlx::Error> {
    sqlx::query_as(select_order!(
        "WHERE user_id = $1 ORDER BY created_at DESC LIMIT 500"
    ))
    .bind(user)
    .fetch_all(pool)
    .await
}

/// The event's orders counted by status. No index serves it (one on `event_id` would cost
/// every order written): a scan of the orders, fine for a console that asks every few seconds.
pub async fn count_by_status(
    pool: &PgPool,
    event: Uuid,
) -> Result<flash_protocol::event::OrderCounts, sqlx::Error> {
    let rows: Vec<(String, i64)> =
        sqlx::query_as("SELECT status, count(*) FROM orders WHERE event_id = $1 GROUP BY status")
            .bind(event)
            .fetch_all(pool)
            .await?;
    let mut counts = flash_protocol::event::OrderCounts::default();
    for (status, count) in rows {
        let count = u64::try_from(count).unwrap_or(0);
        match parse_status(&status) {
            OrderStatus::PendingPayment => counts.pending_payment = count,
            OrderStatus::Paid => counts.paid = count,
            OrderStatus::PaymentFailed => counts.payment_failed = count,
            OrderStatus::Expired => counts.expired = count,
        }
    }
    Ok(counts)
}
