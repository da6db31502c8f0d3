//! Returning tickets to stock (failed payments, expired holds), and telling the gateway when
//! a sold-out event has tickets again.

use std::collections::HashMap;

use flash_protocol::messages::EventUpdated;
use sqlx::PgConnection;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::db::outbox::{self, Outgoing};

/// Adds `(event, quantity)` back to stock in the caller's transaction; an event that was sold
/// out is announced again (`event.updated`, now on sale) so its queue reopens.
pub async fn give_back(tx: &mut PgConnection, returns: &[(Uuid, i64)]) -> Result<(), sqlx::Error> {
    let mut totals: HashMap<Uuid, i64> = HashMap::new();
    for (event, quantity) in returns {
        *totals.entry(*event).or_default() += quantity;
    }
    if totals.is_empty() {
        return Ok(());
    }
    let (events, quantities): (Vec<Uuid>, Vec<i64>) = totals.into_iter().unzip();
    let reopened: Vec<Option<Uuid>> = sqlx::query_scalar(
        "UPDATE event_stock s SET remaining = s.remaining + d.quantity \
         FROM unnest($1::uuid[], $2::bigint[]) AS d(event_id, quantity) \
         WHERE s.event_id = d.event_id \
         RETURNING CASE WHEN s.remaining = d.quantity THEN s.event_id END",
    )
    .bind(&events)
    .bind(&quantities)
    .fetch_all(&mut *tx)
    .await?;
    let now = OffsetDateTime::now_utc();
    let mut messages = Vec::new();
    for event in reopened.into_iter().flatten() {
        if let Some(row) = crate::db::events::get_in(tx, event).await? {
            messages.push(Outgoing::new(&EventUpdated {
                event: row.queue_info(now),
            }));
        }
    }
    outbox::push(tx, &messages).await
}
