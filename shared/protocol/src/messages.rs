//! AMQP messages. Each type carries the exchange and routing key it travels with, so producer
//! and consumer cannot disagree; [`Names`] turns them into concrete broker names.
//!
//! Every message is published persistent, with `content_type: application/json`, a
//! `message_id` (the consumer's idempotency key) and a `type` header naming it ([`Message::TYPE`]).

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::event::{EventStatus, QueueSettings};
use crate::ids::{EventId, OrderId, PaymentId, UserId};

/// `content_type` of every message.
pub const CONTENT_TYPE: &str = "application/json";
/// Header naming the message type.
pub const TYPE_HEADER: &str = "type";
/// Header on dead-lettered messages (payment and refund requests, payment results) saying why.
pub const DEAD_REASON_HEADER: &str = "x-flash-dead-reason";
/// Header counting the delivery attempts of a payment request.
pub const ATTEMPTS_HEADER: &str = "x-flash-attempts";
/// Header (integer) on what the api publishes: the message's position in the api's outbox.
/// For one event, a later change of its status or settings always has a larger one, so a
/// consumer can tell an older message that arrives late (redeliveries, several consumers)
/// and ignore it.
pub const SEQUENCE_HEADER: &str = "x-flash-seq";

/// The exchanges of the system.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Exchange {
    /// `flash.payments`, direct: payment and refund requests, their results, retries and
    /// dead letters.
    Payments,
    /// `flash.events`, topic: what the api tells the gateway about events and admissions.
    Events,
    /// `flash.audit`, topic: operators' changes made outside the api, for its audit log.
    Audit,
}

impl Exchange {
    pub const ALL: [Exchange; 3] = [Exchange::Payments, Exchange::Events, Exchange::Audit];

    /// The name without any namespace prefix.
    #[must_use]
    pub const fn base_name(self) -> &'static str {
        match self {
            Exchange::Payments => "flash.payments",
            Exchange::Events => "flash.events",
            Exchange::Audit => "flash.audit",
        }
    }

    /// `direct` or `topic`.
    #[must_use]
    pub const fn kind(self) -> ExchangeKind {
        match self {
            Exchange::Payments => ExchangeKind::Direct,
            Exchange::Events | Exchange::Audit => ExchangeKind::Topic,
        }
    }
}

/// AMQP exchange types used here.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExchangeKind {
    Direct,
    Topic,
}

/// The queues of the system.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Queue {
    /// `pay.requests`: payment requests for the pay worker (quorum).
    PayRequests,
    /// `pay.requests.retry`: requests waiting out their backoff (per-message TTL), then
    /// dead-lettered back to `payment.requested`.
    PayRetry,
    /// `pay.requests.dead`: payment and refund requests that can never succeed, with the
    /// reason in a header.
    PayDead,
    /// `pay.refunds`: refund requests for the pay worker (quorum).
    PayRefunds,
    /// `pay.refunds.retry`: refund requests waiting out their backoff, then dead-lettered
    /// back to `payment.refund_requested`.
    PayRefundsRetry,
    /// `api.payment-results`: payment and refund outcomes for the api (quorum).
    ApiPaymentResults,
    /// `api.payment-results.dead`: results the api could not apply after
    /// [`RESULT_MAX_DELIVERIES`] deliveries, or could not read, with the reason in a header.
    ApiPaymentResultsDead,
    /// `gateway.events`: everything on `flash.events`, for the gateway (quorum).
    GatewayEvents,
    /// `api.audit`: queue changes made in the gateway, for the api's audit log (quorum).
    ApiAudit,
}

/// Routing keys on `flash.payments` that no message type owns.
pub mod routing {
    /// Requests sent to the retry queue.
    pub const PAYMENT_RETRY: &str = "payment.retry";
    /// Requests sent to the dead-letter queue.
    pub const PAYMENT_DEAD: &str = "payment.dead";
    /// Refund requests sent to their retry queue.
    pub const REFUND_RETRY: &str = "payment.refund_retry";
    /// Results the api sends to its dead-letter queue.
    pub const RESULT_DEAD: &str = "payment.result_dead";
    /// Binding of the gateway's queue: every event message.
    pub const ALL_EVENTS: &str = "#";
}

impl Queue {
    pub const ALL: [Queue; 9] = [
        Queue::PayRequests,
        Queue::PayRetry,
        Queue::PayDead,
        Queue::PayRefunds,
        Queue::PayRefundsRetry,
        Queue::ApiPaymentResults,
        Queue::ApiPaymentResultsDead,
        Queue::GatewayEvents,
        Queue::ApiAudit,
    ];

    #[must_use]
    pub const fn base_name(self) -> &'static str {
        match self {
            Queue::PayRequests => "pay.requests",
            Queue::PayRetry => "pay.requests.retry",
            Queue::PayDead => "pay.requests.dead",
            Queue::PayRefunds => "pay.refunds",
            Queue::PayRefundsRetry => "pay.refunds.retry",
            Queue::ApiPaymentResults => "api.payment-results",
            Queue::ApiPaymentResultsDead => "api.payment-results.dead",
            Queue::GatewayEvents => "gateway.events",
            Queue::ApiAudit => "api.audit",
        }
    }

    /// The exchange the queue is bound to, and the routing keys it is bound with.
    #[must_use]
    pub const fn bindings(self) -> (Exchange, &'static [&'static str]) {
        match self {
            Queue::PayRequests => (Exchange::Payments, &[PaymentRequested::ROUTING_KEY]),
            Queue::PayRetry => (Exchange::Payments, &[routing::PAYMENT_RETRY]),
            Queue::PayDead => (Exchange::Payments, &[routing::PAYMENT_DEAD]),
            Queue::PayRefunds => (Exchange::Payments, &[PaymentRefundRequested::ROUTING_KEY]),
            Queue::PayRefundsRetry => (Exchange::Payments, &[routing::REFUND_RETRY]),
            Queue::ApiPaymentResults => (
                Exchange::Payments,
                &[PaymentCompleted::ROUTING_KEY, PaymentRefunded::ROUTING_KEY],
            ),
            Queue::ApiPaymentResultsDead => (Exchange::Payments, &[routing::RESULT_DEAD]),
            Queue::GatewayEvents => (Exchange::Events, &[routing::ALL_EVENTS]),
            Queue::ApiAudit => (Exchange::Audit, &[QueueUpdated::ROUTING_KEY]),
        }
    }

    /// For a retry queue, the routing key its messages go back to once their per-message TTL
    /// (the backoff) runs out.
    #[must_use]
    pub const fn retries_to(self) -> Option<&'static str> {
        match self {
            Queue::PayRetry => Some(PaymentRequested::ROUTING_KEY),
            Queue::PayRefundsRetry => Some(PaymentRefundRequested::ROUTING_KEY),
            _ => None,
        }
    }

    /// The queue that receives messages sent with `routing_key` on `exchange`, if any.
    #[must_use]
    pub fn receiving(exchange: Exchange, routing_key: &str) -> Option<Queue> {
        Queue::ALL.into_iter().find(|queue| {
            let (bound, keys) = queue.bindings();
            bound == exchange
                && keys
                    .iter()
                    .any(|key| *key == routing_key || *key == routing::ALL_EVENTS)
        })
    }
}

/// Concrete broker names under an optional namespace prefix (empty in production; unique per
/// test so tests sharing one broker never see each other's messages).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Names {
    prefix: String,
}

impl Names {
    #[must_use]
    pub fn new(prefix: impl Into<String>) -> Self {
        Self {
            prefix: prefix.into(),
        }
    }

    #[must_use]
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    #[must_use]
    pub fn exchange(&self, exchange: Exchange) -> String {
        format!("{}{}", self.prefix, exchange.base_name())
    }

    #[must_use]
    pub fn queue(&self, queue: Queue) -> String {
        format!("{}{}", self.prefix, queue.base_name())
    }
}

/// A typed message: its name, and where it is published.
pub trait Message: Serialize + DeserializeOwned {
    /// The `type` header.
    const TYPE: &'static str;
    const EXCHANGE: Exchange;
    const ROUTING_KEY: &'static str;
}

macro_rules! message {
    ($name:ident, $exchange:expr, $key:literal) => {
        impl Message for $name {
            const TYPE: &'static str = $key;
            const EXCHANGE: Exchange = $exchange;
            const ROUTING_KEY: &'static str = $key;
        }
    };
}

/// The api asks for an order to be paid.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct PaymentRequested {
    pub payment_id: PaymentId,
    pub order_id: OrderId,
    pub user_id: UserId,
    pub amount_cents: i64,
    pub currency: String,
    #[serde(with = "time::serde::rfc3339")]
    pub requested_at: OffsetDateTime,
}
message!(PaymentRequested, Exchange::Payments, "payment.requested");

/// The provider's verdict.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum PaymentOutcome {
    Approved,
    Declined,
}

impl PaymentOutcome {
    pub const ALL: [Self; 2] = [Self::Approved, Self::Declined];

    /// The name on the wire (and in the pay worker's `outcome` label).
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Approved => "approved",
            Self::Declined => "declined",
        }
    }
}

/// The pay worker reports a payment's one outcome.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct PaymentCompleted {
    pub payment_id: PaymentId,
    pub order_id: OrderId,
    pub outcome: PaymentOutcome,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(with = "time::serde::rfc3339")]
    pub processed_at: OffsetDateTime,
}
message!(PaymentCompleted, Exchange::Payments, "payment.completed");

/// The api asks for a payment to be given back: it was approved after its order stopped
/// waiting for it (the hold expired), so no ticket goes with it. Sent once per payment.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct PaymentRefundRequested {
    pub payment_id: PaymentId,
    pub order_id: OrderId,
    pub amount_cents: i64,
    pub currency: String,
    #[serde(with = "time::serde::rfc3339")]
    pub requested_at: OffsetDateTime,
}
message!(
    PaymentRefundRequested,
    Exchange::Payments,
    "payment.refund_requested"
);

/// What became of a refund.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum RefundOutcome {
    Refunded,
    /// The provider refused it for good (`reason` says why): an operator must act.
    Failed,
}

impl RefundOutcome {
    pub const ALL: [Self; 2] = [Self::Refunded, Self::Failed];

    /// The name on the wire (and in the pay worker's `outcome` label).
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Refunded => "refunded",
            Self::Failed => "failed",
        }
    }
}

/// The pay worker reports a refund's one outcome.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct PaymentRefunded {
    pub payment_id: PaymentId,
    pub order_id: OrderId,
    pub outcome: RefundOutcome,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(with = "time::serde::rfc3339")]
    pub processed_at: OffsetDateTime,
}
message!(PaymentRefunded, Exchange::Payments, "payment.refunded");

/// Deliveries of one payment result after which the api stops trying to apply it and moves
/// it to `api.payment-results.dead` (quorum queues count deliveries in `x-delivery-count`).
pub const RESULT_MAX_DELIVERIES: u32 = 10;

/// What the gateway needs to know of an event to run its queue (its settings travel beside).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct EventQueueInfo {
    pub event_id: EventId,
    pub name: String,
    #[serde(with = "time::serde::rfc3339")]
    pub sale_opens_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub starts_at: OffsetDateTime,
    pub status: EventStatus,
}

/// An admin created an event: `queue` is its queue's initial settings. Once the queue exists
/// the gateway owns them (its admin `PATCH`); a late or repeated `event.created` never
/// changes them.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct EventCreated {
    #[serde(flatten)]
    pub event: EventQueueInfo,
    pub queue: QueueSettings,
}
message!(EventCreated, Exchange::Events, "event.created");

/// An event changed (an admin's edit, its status: sold out, on sale again, ended). `queue` is
/// present only when the admin's request set queue settings, which then replace the queue's;
/// otherwise the queue keeps the settings operators gave it in the gateway.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct EventUpdated {
    #[serde(flatten)]
    pub event: EventQueueInfo,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub queue: Option<QueueSettings>,
    /// Tickets in stock when this was sent, present when tickets came back (a payment declined,
    /// a hold expired): the gateway then admits at most that many more buyers, and more as
    /// admissions lapse unused or the next return says so. Absent (an edit, a status change):
    /// no bound.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remaining: Option<u64>,
}
message!(EventUpdated, Exchange::Events, "event.updated");

/// The event's stock is at zero. With `reserved_pending` orders still being paid (before the
/// event's `returns_until`), tickets may come back: the gateway keeps every place and admits
/// nobody until they do (an `event.updated` on sale again). With 0, nothing can come back:
/// the gateway closes the queue. Sent again as the count falls.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct EventSoldOut {
    pub event_id: EventId,
    #[serde(with = "time::serde::rfc3339")]
    pub sold_out_at: OffsetDateTime,
    /// Orders still being paid (absent: 0).
    #[serde(default)]
    pub reserved_pending: u64,
}
message!(EventSoldOut, Exchange::Events, "event.sold_out");

/// A gate token was used for an order: the gateway frees the admitted slot.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct GateConsumed {
    pub event_id: EventId,
    pub user_id: UserId,
    /// The gate token's `jti`.
    pub jti: Uuid,
    pub order_id: OrderId,
    #[serde(with = "time::serde::rfc3339")]
    pub consumed_at: OffsetDateTime,
    /// The event's tickets left once the order was written (with the orders written beside
    /// it). At 0 the gateway admits nobody more before it frees this admission, so a tick
    /// between this message and `event.sold_out` cannot let in a buyer with nothing to buy.
    /// Absent in messages of earlier versions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remaining: Option<u64>,
}
message!(GateConsumed, Exchange::Events, "gate.consumed");

/// An operator changed a queue's settings in the gateway (rate, buyers at once, window, pause,
/// bot check): the api records it in its audit log, once per `id` however often it arrives.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct QueueUpdated {
    /// The record's id (a UUID): the same change sent again has the same id.
    pub id: String,
    pub event_id: EventId,
    /// The operator.
    pub actor: UserId,
    /// When the change was made (the queue's clock).
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
    /// `{"queue.field": [before, after]}`, only what changed.
    #[schema(value_type = Object)]
    pub changes: crate::audit::Changes,
}
message!(QueueUpdated, Exchange::Audit, "queue.updated");

/// Any message on `api.payment-results`, decoded by its `type` header.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PaymentResult {
    Completed(PaymentCompleted),
    Refunded(PaymentRefunded),
}

impl PaymentResult {
    /// Decodes an `api.payment-results` message from its `type` header and body.
    pub fn decode(type_header: &str, body: &[u8]) -> Result<Self, DecodeError> {
        match type_header {
            PaymentCompleted::TYPE => decode(body).map(Self::Completed),
            PaymentRefunded::TYPE => decode(body).map(Self::Refunded),
            other => Err(DecodeError::UnknownType(other.to_owned())),
        }
    }
}

/// Any message on `flash.events`, decoded by its `type` header.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EventsMessage {
    Created(EventCreated),
    Updated(EventUpdated),
    SoldOut(EventSoldOut),
    GateConsumed(GateConsumed),
}

/// Why a message could not be decoded; such a message is poison and goes to a dead letter.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error("unknown message type {0:?}")]
    UnknownType(String),
    #[error("invalid {type_name} body: {source}")]
    Body {
        type_name: &'static str,
        #[source]
        source: serde_json::Error,
    },
}

/// Decodes one message of type `M` from its body.
pub fn decode<M: Message>(body: &[u8]) -> Result<M, DecodeError> {
    serde_json::from_slice(body).map_err(|source| DecodeError::Body {
        type_name: M::TYPE,
        source,
    })
}

impl EventsMessage {
    /// Decodes a `flash.events` message from its `type` header and body.
    pub fn decode(type_header: &str, body: &[u8]) -> Result<Self, DecodeError> {
        match type_header {
            EventCreated::TYPE => decode(body).map(Self::Created),
            EventUpdated::TYPE => decode(body).map(Self::Updated),
            EventSoldOut::TYPE => decode(body).map(Self::SoldOut),
            GateConsumed::TYPE => decode(body).map(Self::GateConsumed),
            other => Err(DecodeError::UnknownType(other.to_owned())),
        }
    }
}
