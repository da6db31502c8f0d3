//! Orders: the request to buy and the order a buyer follows to its final state.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::ids::{EventId, OrderId};

/// Header carrying the gateway's gate token on `POST /api/v1/events/{id}/orders`.
pub const GATE_TOKEN_HEADER: &str = "Gate-Token";
/// Header carrying the client's idempotency key on `POST /api/v1/events/{id}/orders`.
pub const IDEMPOTENCY_KEY_HEADER: &str = "Idempotency-Key";

/// Where an order is; `pending_payment` is the only state that is not final.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum OrderStatus {
    PendingPayment,
    Paid,
    PaymentFailed,
    Expired,
}

impl OrderStatus {
    /// Whether no further change can happen to an order in this state.
    #[must_use]
    pub const fn is_final(self) -> bool {
        !matches!(self, OrderStatus::PendingPayment)
    }
}

/// `POST /api/v1/events/{id}/orders` body.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct CreateOrder {
    pub quantity: u32,
}

/// `Order`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Order {
    pub id: OrderId,
    pub event_id: EventId,
    pub quantity: u32,
    pub amount_cents: i64,
    pub currency: String,
    pub status: OrderStatus,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
    /// Present when the order's payment is being, or was, given back: a payment approved
    /// after the order stopped waiting for it is refunded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refund: Option<Refund>,
}

/// Where a refund is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum RefundStatus {
    /// Asked of the payment provider, not answered yet.
    Pending,
    Refunded,
    /// The provider refused it: support gives the money back by hand.
    Failed,
}

impl RefundStatus {
    /// The word stored and shown for it.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            RefundStatus::Pending => "pending",
            RefundStatus::Refunded => "refunded",
            RefundStatus::Failed => "failed",
        }
    }

    /// The status a stored word names.
    #[must_use]
    pub fn parse(word: &str) -> Option<Self> {
        [
            RefundStatus::Pending,
            RefundStatus::Refunded,
            RefundStatus::Failed,
        ]
        .into_iter()
        .find(|status| status.as_str() == word)
    }
}

/// An order's refund: its status and when it reached it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Refund {
    pub status: RefundStatus,
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
}
