//! Operators' queue changes, relayed to the api's audit log. The change and its record are
//! written by one Redis script (the queue's audit list, `patch.lua`); any replica relays the
//! records to RabbitMQ (`queue.updated` on `flash.audit`, with confirms) and only then takes
//! them off the list, so a record survives a replica's crash or a broker outage and may be
//! sent twice; the api keeps each record id once.

use std::sync::Arc;
use std::time::Duration;

use flash_kit::amqp::Publisher;
use flash_protocol::audit::Changes;
use flash_protocol::messages::QueueUpdated;
use flash_protocol::{EventId, UserId};
use serde::Deserialize;
use time::OffsetDateTime;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::waiting_room::WaitingRoom;

/// The most records waiting in one queue's audit list: past it, an operator's change is
/// refused (503) rather than made without its record.
pub const MOST_WAITING: u32 = 10_000;

/// Records relayed per queue per round.
const BATCH: u32 = 100;

/// How often every queue's list is looked at, besides the wake-ups after a change.
const SWEEP: Duration = Duration::from_secs(5);

/// A record as `patch.lua` writes it.
#[derive(Debug, Deserialize)]
struct Pending {
    id: String,
    actor: UserId,
    event_id: EventId,
    at_ms: i64,
    changes: Changes,
}

impl Pending {
    fn message(self) -> QueueUpdated {
        QueueUpdated {
            id: self.id,
            event_id: self.event_id,
            actor: self.actor,
            at: OffsetDateTime::from_unix_timestamp_nanos(i128::from(self.at_ms) * 1_000_000)
                .unwrap_or(OffsetDateTime::UNIX_EPOCH),
            changes: self.changes,
        }
    }
}

/// Relays the audit records of every queue.
pub struct AuditRelay {
    room: WaitingRoom,
    publisher: Publisher,
    wake: Notify,
}

impl AuditRelay {
    #[must_use]
    pub fn new(room: WaitingRoom, publisher: Publisher) -> Self {
        Self {
            room,
            publisher,
            wake: Notify::new(),
        }
    }

    /// A record was written for `event`: relay it soon.
    pub async fn written(&self, event: EventId) {
        if let Err(error) = self.room.mark_audit_pending(event).await {
            // The sweep finds it anyway.
            tracing::warn!(%error, %event, "audit: could not mark a record pending");
        }
        self.wake.notify_one();
    }

    /// Relays until `stop`: after each change, and every queue every [`SWEEP`].
    pub async fn run(self: Arc<Self>, stop: CancellationToken) {
        let mut everyone = true;
        loop {
            if let Err(error) = self.relay(everyone).await {
                tracing::warn!(%error, "audit: relaying records failed; retrying");
            }
            everyone = tokio::select! {
                () = stop.cancelled() => return,
                () = self.wake.notified() => false,
                () = tokio::time::sleep(SWEEP) => true,
            };
        }
    }

    /// One round over the queues marked pending (and every queue when `everyone`).
    async fn relay(&self, everyone: bool) -> Result<(), RelayError> {
        let mut events = self.room.audit_pending().await?;
        if everyone {
            for event in self.room.events().await? {
                if !events.contains(&event) {
                    events.push(event);
                }
            }
        }
        for event in events {
            let records = self.room.audit_records(event, BATCH).await?;
            if records.is_empty() {
                self.room.audit_done(event).await?;
                continue;
            }
            for raw in records {
                match serde_json::from_str::<Pending>(&raw) {
                    Ok(pending) => {
                        let message = pending.message();
                        self.publisher.send(&message.id.clone(), &message).await?;
                    }
                    Err(error) => {
                        tracing::error!(%error, %event, record = %raw, "audit: a record that cannot be read is dropped");
                    }
                }
                self.room.drop_audit_record(event, &raw).await?;
                ::metrics::counter!("gateway_audit_relayed_total").increment(1);
            }
        }
        Ok(())
    }
}

#[derive(Debug, thiserror::Error)]
enum RelayError {
    #[error(transparent)]
    Store(#[from] crate::waiting_room::RoomError),
    #[error(transparent)]
    Broker(#[from] flash_kit::amqp::AmqpError),
}
