//! The demo event (`FLASH_DEMO_EVENT=true`, set by `make up`): at start-up `flash` makes sure
//! one demo event is on sale, created through the api's own code path (validation, the event
//! and its stock, and `event.created` in the outbox for the gateway, in one transaction).
//!
//! Idempotent across restarts: a demo event (found by its name) that is still on sale or
//! scheduled is kept as it is, and announced again only when the gateway does not know it (a
//! Redis that was emptied). One that sold out or ended stays in the list as it is, and a new
//! demo event is put on sale next to it, so `make up` always starts with something to buy.

use flash_api::db::events::EventRow;
use flash_api::db::outbox::{self, Outgoing};
use flash_api::error::ApiError;
use flash_gateway::waiting_room::{RoomError, WaitingRoom};
use flash_protocol::EventId;
use flash_protocol::event::{EventStatus, NewEvent, QueueSettings};
use flash_protocol::messages::EventUpdated;
use sqlx::PgPool;
use time::{Duration, OffsetDateTime};

/// The demo event's name; the suite recognises its demo events by it.
pub const DEMO_NAME: &str = "Flash Tickets demo night";

/// Why the demo event could not be ensured.
#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    #[error("cannot create the demo event: {0}")]
    Create(#[from] ApiError),
    #[error("cannot read the events: {0}")]
    Db(#[from] sqlx::Error),
    #[error("cannot ask the waiting room about the demo event: {0}")]
    Room(#[from] RoomError),
}

/// What start-up found or did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Demo {
    /// A demo event on sale (or scheduled) was there; the gateway knew it.
    Kept(EventId),
    /// It was there, but the gateway did not know it: announced again.
    Announced(EventId),
    /// None was on sale: a new one was created.
    Created(EventId),
}

impl Demo {
    #[must_use]
    pub fn event(self) -> EventId {
        match self {
            Demo::Kept(id) | Demo::Announced(id) | Demo::Created(id) => id,
        }
    }
}

/// The demo event as the operator would create it: on sale since a minute ago, a hundred
/// tickets, and one admission a second, so a small crowd sees the waiting room move.
#[must_use]
pub fn new_demo_event(now: OffsetDateTime) -> NewEvent {
    NewEvent {
        name: DEMO_NAME.to_owned(),
        venue: "Loopback Hall, 127 Localhost Lane".to_owned(),
        starts_at: now + Duration::days(30),
        sale_opens_at: now - Duration::minutes(1),
        price_cents: 4500,
        currency: "EUR".to_owned(),
        inventory: 100,
        max_per_user: 4,
        queue: QueueSettings {
            admit_per_sec: 1,
            max_active: 20,
            admission_ttl_s: 300,
            challenge_difficulty: 0,
        },
        returns_until: None,
    }
}

/// Makes sure a demo event is on sale and known to the gateway.
pub async fn ensure(db: &PgPool, room: &WaitingRoom) -> Result<Demo, DemoError> {
    let now = OffsetDateTime::now_utc();
    let current = flash_api::db::events::list(db)
        .await?
        .into_iter()
        .filter(|row| row.name == DEMO_NAME)
        .filter(|row| {
            matches!(
                row.status(now),
                EventStatus::OnSale | EventStatus::Scheduled
            )
        })
        .max_by_key(|row| row.id);
    let Some(row) = current else {
        let event = flash_api::routes::events::create_event(db, new_demo_event(now), None).await?;
        return Ok(Demo::Created(event.id));
    };
    let id = EventId(row.id);
    if room.stats(id).await?.is_some() {
        return Ok(Demo::Kept(id));
    }
    announce(db, &row, now).await?;
    Ok(Demo::Announced(id))
}

/// Tells the gateway about the event again (outbox: `event.updated`).
async fn announce(db: &PgPool, row: &EventRow, now: OffsetDateTime) -> Result<(), sqlx::Error> {
    let mut tx = db.begin().await?;
    outbox::push(
        &mut tx,
        &[Outgoing::new(&EventUpdated {
            event: row.queue_info(now),
            queue: None,
            remaining: None,
        })],
    )
    .await?;
    tx.commit().await
}
