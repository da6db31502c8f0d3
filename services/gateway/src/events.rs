//! Consumer of `flash.events` (queue `gateway.events`): what the api tells the gateway about
//! events and admissions. Acknowledged after the change is in Redis; every change is
//! idempotent, since delivery is at least once. Undecodable messages are logged and dropped.

use std::sync::Arc;

use flash_kit::amqp::{Broker, Disposition, consume, message_sequence, message_type};
use std::time::Duration;

use flash_protocol::event::EventStatus;
use flash_protocol::messages::{
    DecodeError, EventCreated, EventQueueInfo, EventSoldOut, EventUpdated, EventsMessage,
    GateConsumed, Message as _, Queue,
};
use flash_protocol::ws::ClosedReason;
use tokio_util::sync::CancellationToken;

use crate::gate::GateIssuer;
use crate::waiting_room::{EventAnnouncement, RoomError, Settings, WaitingRoom};

/// Unacknowledged messages in flight.
const PREFETCH: u16 = 64;

fn announcement(
    info: EventQueueInfo,
    settings: Settings,
    remaining: Option<u64>,
) -> EventAnnouncement {
    EventAnnouncement {
        event: info.event_id,
        name: info.name,
        sale_opens_at: info.sale_opens_at,
        status: info.status,
        settings,
        remaining,
    }
}

/// Applies one message to the queues. `sequence` is its position in the api's outbox (the
/// sequence header; 0 when absent): messages may arrive out of order (several replicas
/// consume the queue, each many deliveries at once, and failures are redelivered), and a
/// status change older than one already applied is ignored, so a late "on sale again" never
/// reopens a queue that sold out after it.
///
/// An event that ended is retired: its queue leaves the set every replica ticks and its keys
/// expire `retire_after` later.
pub async fn apply(
    room: &WaitingRoom,
    message: EventsMessage,
    sequence: i64,
    retire_after: Duration,
) -> Result<(), RoomError> {
    if let EventsMessage::Created(EventCreated { event, .. })
    | EventsMessage::Updated(EventUpdated { event, .. }) = &message
        && event.status == EventStatus::Ended
    {
        let id = event.event_id;
        apply_status(room, message, sequence).await?;
        if room.retire(id, retire_after).await? {
            tracing::info!(event = %id, "event ended; its queue is retired");
        }
        return Ok(());
    }
    apply_status(room, message, sequence).await
}

async fn apply_status(
    room: &WaitingRoom,
    message: EventsMessage,
    sequence: i64,
) -> Result<(), RoomError> {
    match message {
        EventsMessage::Created(created) => {
            let settings = Settings::Initial(created.queue);
            room.upsert_in_order(&announcement(created.event, settings, None), sequence)
                .await
        }
        EventsMessage::Updated(updated) => {
            let settings = updated.queue.map_or(Settings::Keep, Settings::Replace);
            room.upsert_in_order(
                &announcement(updated.event, settings, updated.remaining),
                sequence,
            )
            .await
        }
        EventsMessage::SoldOut(sold_out) => room
            .close_in_order(
                sold_out.event_id,
                ClosedReason::SoldOut,
                sequence,
                sold_out.reserved_pending,
            )
            .await
            .map(drop),
        EventsMessage::GateConsumed(consumed) => {
            free_admission(room, &consumed, sequence).await.map(drop)
        }
    }
}

/// Frees the admission whose gate token was used, identified by the token's `jti` (derived
/// from the admission): a token of an earlier admission of the same user, used or reported
/// late, frees nothing of the admission they hold now. `true` when a place was freed. An
/// order that took the last ticket (`remaining` 0; the message at `sequence` in the api's
/// outbox) first stops admissions, whether or not its admission is still there to free.
pub async fn free_admission(
    room: &WaitingRoom,
    consumed: &GateConsumed,
    sequence: i64,
) -> Result<bool, RoomError> {
    let (event, user) = (consumed.event_id, consumed.user_id);
    let took_last = (consumed.remaining == Some(0)).then_some(sequence);
    let admitted_at = room.admitted_at(event, user).await?;
    let current = admitted_at.filter(|at| GateIssuer::jti(event, user, *at) == consumed.jti);
    if admitted_at.is_some() && current.is_none() {
        ::metrics::counter!("gateway_gate_consumed_stale_total").increment(1);
    }
    if current.is_none() && took_last.is_none() {
        return Ok(false);
    }
    room.consume(event, user, current, took_last).await
}

/// A delivery of `gateway.events` as a message (its type from the `type` header or property)
/// and its outbox position (the sequence header; 0 when absent), or why it can never be
/// applied: an unknown type, or a body that is not a message of its type.
pub fn message_of(
    properties: &lapin::BasicProperties,
    body: &[u8],
) -> Result<(EventsMessage, i64), DecodeError> {
    let kind = message_type(properties).unwrap_or_default();
    let sequence = message_sequence(properties).unwrap_or(0);
    EventsMessage::decode(&kind, body).map(|message| (message, sequence))
}

/// The `type` of a message.
fn type_of(message: &EventsMessage) -> &'static str {
    match message {
        EventsMessage::Created(_) => EventCreated::TYPE,
        EventsMessage::Updated(_) => EventUpdated::TYPE,
        EventsMessage::SoldOut(_) => EventSoldOut::TYPE,
        EventsMessage::GateConsumed(_) => GateConsumed::TYPE,
    }
}

/// Consumes until `stop`, resuming on every broker reconnect.
pub async fn run(
    broker: Arc<Broker>,
    room: WaitingRoom,
    retire_after: Duration,
    stop: CancellationToken,
) {
    consume(
        broker,
        Queue::GatewayEvents,
        "flash-gateway",
        PREFETCH,
        stop,
        move |delivery| {
            let room = room.clone();
            async move {
                match message_of(&delivery.properties, &delivery.data) {
                    Ok((message, sequence)) => {
                        let kind = type_of(&message);
                        match apply(&room, message, sequence, retire_after).await {
                            Ok(()) => {
                                ::metrics::counter!("gateway_events_consumed_total", "type" => kind)
                                    .increment(1);
                                Disposition::Ack
                            }
                            Err(error) => {
                                tracing::warn!(%error, "cannot apply an event message; redelivering");
                                tokio::time::sleep(std::time::Duration::from_millis(500)).await;
                                Disposition::Requeue
                            }
                        }
                    }
                    Err(error) => {
                        tracing::error!(%error, "undecodable event message dropped");
                        ::metrics::counter!("gateway_events_rejected_total").increment(1);
                        Disposition::Reject
                    }
                }
            }
        },
    )
    .await;
}
