//! Events and their stock.

use flash_protocol::EventId;
use flash_protocol::event::{Event, EventStatus, QueueSettings};
use flash_protocol::messages::EventQueueInfo;
use sqlx::{PgConnection, PgPool};
use time::OffsetDateTime;
use uuid::Uuid;

/// An event with its remaining stock.
#[derive(Clone, Debug, sqlx::FromRow)]
pub struct EventRow {
    pub id: Uuid,
    pub name: String,
    pub venue: String,
    pub starts_at: OffsetDateTime,
    pub sale_opens_at: OffsetDateTime,
    pub price_cents: i64,
    pub currency: String,
    pub inventory: i32,
    pub max_per_user: i32,
    pub admit_per_sec: i32,
    pub max_active: i32,
    pub admission_ttl_s: i32,
    pub returns_until: Option<OffsetDateTime>,
    pub remaining: i32,
    /// Orders still being paid, counted only while no ticket is left (0 otherwise).
    pub reserved_pending: i64,
}

/// `SELECT` of an [`EventRow`] followed by `$tail` (a literal, so the query stays static).
macro_rules! select_event {
    ($tail:literal) => {
        concat!(
            "SELECT e.id, e.name, e.venue, e.starts_at, e.sale_opens_at, e.price_cents, ",
            "e.currency, e.inventory, e.max_per_user, e.admit_per_sec, e.max_active, ",
            "e.admission_ttl_s, e.returns_until, s.remaining, ",
            "CASE WHEN s.remaining = 0 THEN (SELECT count(*) FROM orders o ",
            "WHERE o.event_id = e.id AND o.status = 'pending_payment') ELSE 0 END ",
            "AS reserved_pending FROM events e JOIN event_stock s ON s.event_id = e.id ",
            $tail
        )
    };
}

fn unsigned(value: i32) -> u32 {
    u32::try_from(value).unwrap_or(0)
}

impl EventRow {
    /// Where the event is now: ended once it started, sold out without stock, scheduled
    /// before its sale opens, on sale otherwise.
    #[must_use]
    pub fn status(&self, now: OffsetDateTime) -> EventStatus {
        if now >= self.starts_at {
            EventStatus::Ended
        } else if self.remaining == 0 {
            EventStatus::SoldOut
        } else if now < self.sale_opens_at {
            EventStatus::Scheduled
        } else {
            EventStatus::OnSale
        }
    }

    /// Orders whose payment may still fail and bring tickets back to the line: those still
    /// being paid while no ticket is left, until `returns_until` (0 once it passed).
    #[must_use]
    pub fn returns_possible(&self, now: OffsetDateTime) -> u64 {
        if self.returns_until.is_some_and(|until| now >= until) {
            return 0;
        }
        u64::try_from(self.reserved_pending).unwrap_or(0)
    }

    #[must_use]
    pub fn queue(&self) -> QueueSettings {
        QueueSettings {
            admit_per_sec: unsigned(self.admit_per_sec),
            max_active: unsigned(self.max_active),
            admission_ttl_s: unsigned(self.admission_ttl_s),
            challenge_difficulty: 0,
        }
    }

    #[must_use]
    pub fn to_event(&self, now: OffsetDateTime) -> Event {
        Event {
            id: EventId(self.id),
            name: self.name.clone(),
            venue: self.venue.clone(),
            starts_at: self.starts_at,
            sale_opens_at: self.sale_opens_at,
            price_cents: self.price_cents,
            currency: self.currency.clone(),
            inventory: unsigned(self.inventory),
            remaining: unsigned(self.remaining),
            max_per_user: unsigned(self.max_per_user),
            status: self.status(now),
            reserved_pending: self.returns_possible(now),
            returns_until: self.returns_until,
        }
    }

    /// The fields an operator sets, as the audit log names them (queue fields dotted).
    #[must_use]
    pub fn audit_fields(&self) -> Vec<(&'static str, serde_json::Value)> {
        use serde_json::json;
        let at = |t: OffsetDateTime| {
            json!(
                t.format(&time::format_description::well_known::Rfc3339)
                    .unwrap_or_default()
            )
        };
        vec![
            ("name", json!(self.name)),
            ("venue", json!(self.venue)),
            ("starts_at", at(self.starts_at)),
            ("sale_opens_at", at(self.sale_opens_at)),
            ("price_cents", json!(self.price_cents)),
            ("currency", json!(self.currency)),
            ("inventory", json!(self.inventory)),
            ("max_per_user", json!(self.max_per_user)),
            ("queue.admit_per_sec", json!(self.admit_per_sec)),
            ("queue.max_active", json!(self.max_active)),
            ("queue.admission_ttl_s", json!(self.admission_ttl_s)),
            (
                "returns_until",
                self.returns_until.map_or(serde_json::Value::Null, at),
            ),
        ]
    }

    /// What the gateway is told about the event.
    #[must_use]
    pub fn queue_info(&self, now: OffsetDateTime) -> EventQueueInfo {
        EventQueueInfo {
            event_id: EventId(self.id),
            name: self.name.clone(),
            sale_opens_at: self.sale_opens_at,
            starts_at: self.starts_at,
            status: self.status(now),
        }
    }
}

pub async fn list(pool: &PgPool) -> Result<Vec<EventRow>, sqlx::Error> {
    sqlx::query_as(select_event!("ORDER BY e.starts_at, e.id"))
        .fetch_all(pool)
        .await
}

pub async fn get(pool: &PgPool, id: Uuid) -> Result<Option<EventRow>, sqlx::Error> {
    sqlx::query_as(select_event!("WHERE e.id = $1"))
        .bind(id)
        .fetch_optional(pool)
        .await
}

/// The event, locked for update (its stock row too) in the caller's transaction.
pub async fn lock(tx: &mut PgConnection, id: Uuid) -> Result<Option<EventRow>, sqlx::Error> {
    sqlx::query_as(select_event!("WHERE e.id = $1 FOR UPDATE"))
        .bind(id)
        .fetch_optional(tx)
        .await
}

/// Writes every field of `row` and its stock: a new event, or a change to an existing one.
pub async fn save(tx: &mut PgConnection, row: &EventRow) -> Result<(), sqlx::Error> {
    sqlx::query(
        "WITH saved AS ( \
           INSERT INTO events (id, name, venue, starts_at, sale_opens_at, price_cents, currency, \
                               inventory, max_per_user, admit_per_sec, max_active, admission_ttl_s, \
                               returns_until) \
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $14) \
           ON CONFLICT (id) DO UPDATE SET name = excluded.name, venue = excluded.venue, \
             starts_at = excluded.starts_at, sale_opens_at = excluded.sale_opens_at, \
             price_cents = excluded.price_cents, currency = excluded.currency, \
             inventory = excluded.inventory, max_per_user = excluded.max_per_user, \
             admit_per_sec = excluded.admit_per_sec, max_active = excluded.max_active, \
             admission_ttl_s = excluded.admission_ttl_s, returns_until = excluded.returns_until, \
             returns_closed_announced = events.returns_closed_announced \
               AND events.returns_until IS NOT DISTINCT FROM excluded.returns_until, \
             updated_at = now() \
           RETURNING id) \
         INSERT INTO event_stock (event_id, remaining) SELECT id, $13 FROM saved \
         ON CONFLICT (event_id) DO UPDATE SET remaining = excluded.remaining",
    )
    .bind(row.id)
    .bind(&row.name)
    .bind(&row.venue)
    .bind(row.starts_at)
    .bind(row.sale_opens_at)
    .bind(row.price_cents)
    .bind(&row.currency)
    .bind(row.inventory)
    .bind(row.max_per_user)
    .bind(row.admit_per_sec)
    .bind(row.max_active)
    .bind(row.admission_ttl_s)
    .bind(row.remaining)
    .bind(row.returns_until)
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// The event, in the caller's transaction.
pub async fn get_in(tx: &mut PgConnection, id: Uuid) -> Result<Option<EventRow>, sqlx::Error> {
    sqlx::query_as(select_event!("WHERE e.id = $1"))
        .bind(id)
        .fetch_optional(tx)
        .await
}
