//! Returning tickets to stock (failed payments, expired holds), and telling the gateway how
//! many there are: a sold-out event's queue reopens, and no queue admits more buyers than
//! could still buy.

use std::collections::HashMap;

use flash_protocol::messages::EventUpdated;
use sqlx::PgConnection;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::db::outbox::{self, Outgoing};

/// Tickets an order no longer holds.
#[derive(Clone, Copy, Debug)]
pub struct Returned {
    pub event: Uuid,
    pub user: Uuid,
    pub quantity: i32,
}

/// Adds returned tickets back to stock and takes them off their buyers' holdings, in the
/// caller's transaction; each event is announced again (`event.updated` with `remaining`, the
/// stock now): a sold-out one's queue reopens, and every queue admits no more buyers than
/// tickets are left (a return late in a sale lets in a few buyers, not a second's worth).
pub async fn give_back(tx: &mut PgConnection, returns: &[Returned]) -> Result<(), sqlx::Error> {
    if returns.is_empty() {
        return Ok(());
    }
    let mut totals: HashMap<Uuid, i64> = HashMap::new();
    let mut held: HashMap<(Uuid, Uuid), i32> = HashMap::new();
    for r in returns {
        *totals.entry(r.event).or_default() += i64::from(r.quantity);
        *held.entry((r.user, r.event)).or_default() += r.quantity;
    }
    let mut users = Vec::with_capacity(held.len());
    let mut user_events = Vec::with_capacity(held.len());
    let mut user_quantities = Vec::with_capacity(held.len());
    for ((user, event), quantity) in held {
        users.push(user);
        user_events.push(event);
        user_quantities.push(quantity);
    }
    sqlx::query(
        "UPDATE holdings h SET held = h.held - d.quantity \
         FROM unnest($1::uuid[], $2::uuid[], $3::int[]) AS d(user_id, event_id, quantity) \
         WHERE h.user_id = d.user_id AND h.event_id = d.event_id",
    )
    .bind(&users)
    .bind(&user_events)
    .bind(&user_quantities)
    .execute(&mut *tx)
    .await?;
    let (events, quantities): (Vec<Uuid>, Vec<i64>) = totals.into_iter().unzip();
    let stock: Vec<(Uuid, i32)> = sqlx::query_as(
        "UPDATE event_stock s SET remaining = s.remaining + d.quantity \
         FROM unnest($1::uuid[], $2::bigint[]) AS d(event_id, quantity) \
         WHERE s.event_id = d.event_id \
         RETURNING s.event_id, s.remaining",
    )
    .bind(&events)
    .bind(&quantities)
    .fetch_all(&mut *tx)
    .await?;
    let now = OffsetDateTime::now_utc();
    let mut messages = Vec::new();
    for (event, remaining) in stock {
        if let Some(row) = crate::db::events::get_in(tx, event).await? {
            messages.push(Outgoing::new(&EventUpdated {
                event: row.queue_info(now),
                queue: None,
                remaining: Some(u64::try_from(remaining).unwrap_or(0)),
            }));
        }
    }
    outbox::push(tx, &messages).await
}
