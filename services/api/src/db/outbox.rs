//! The outbox: messages written in the same transaction as the change they announce.

use flash_protocol::messages::{Exchange, Message};
use sqlx::PgConnection;
use uuid::Uuid;

/// One message waiting to be published.
#[derive(Clone, Debug)]
pub struct Outgoing {
    pub message_id: Uuid,
    pub exchange: &'static str,
    pub routing_key: &'static str,
    pub message_type: &'static str,
    pub payload: serde_json::Value,
}

impl Outgoing {
    /// `message` with a new message id.
    ///
    /// # Panics
    /// Never for the protocol's message types (they serialise infallibly).
    pub fn new<M: Message>(message: &M) -> Self {
        Self::with_id(Uuid::now_v7(), message)
    }

    /// `message` with a given message id (the consumer's idempotency key).
    pub fn with_id<M: Message>(message_id: Uuid, message: &M) -> Self {
        Self {
            message_id,
            exchange: M::EXCHANGE.base_name(),
            routing_key: M::ROUTING_KEY,
            message_type: M::TYPE,
            payload: serde_json::to_value(message).unwrap_or(serde_json::Value::Null),
        }
    }
}

/// The exchange of a stored base name.
#[must_use]
pub fn exchange_named(base: &str) -> Option<Exchange> {
    Exchange::ALL.into_iter().find(|e| e.base_name() == base)
}

/// Messages as the columns of an `unnest` insert.
pub struct Columns<'a> {
    pub ids: Vec<Uuid>,
    pub exchanges: Vec<&'a str>,
    pub routing_keys: Vec<&'a str>,
    pub types: Vec<&'a str>,
    pub payloads: Vec<&'a serde_json::Value>,
}

impl<'a> Columns<'a> {
    #[must_use]
    pub fn of(messages: &'a [Outgoing]) -> Self {
        Self {
            ids: messages.iter().map(|m| m.message_id).collect(),
            exchanges: messages.iter().map(|m| m.exchange).collect(),
            routing_keys: messages.iter().map(|m| m.routing_key).collect(),
            types: messages.iter().map(|m| m.message_type).collect(),
            payloads: messages.iter().map(|m| &m.payload).collect(),
        }
    }
}

/// Writes messages in the caller's transaction (one statement however many).
pub async fn push(tx: &mut PgConnection, messages: &[Outgoing]) -> Result<(), sqlx::Error> {
    if messages.is_empty() {
        return Ok(());
    }
    let columns = Columns::of(messages);
    sqlx::query(
        "INSERT INTO outbox (message_id, exchange, routing_key, message_type, payload) \
         SELECT * FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::jsonb[])",
    )
    .bind(&columns.ids)
    .bind(&columns.exchanges)
    .bind(&columns.routing_keys)
    .bind(&columns.types)
    .bind(&columns.payloads)
    .execute(tx)
    .await?;
    Ok(())
}
