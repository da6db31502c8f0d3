//! Consumer of `flash.events` (queue `gateway.events`): what the api tells the gateway about
//! events and admissions. Manual acks after the change is in Redis; every change is
//! idempotent, since delivery is at least once. Undecodable messages are logged and dropped.

use std::sync::Arc;
use std::time::Duration;

use flash_kit::amqp::{Broker, message_type};
use flash_protocol::messages::{EventQueueInfo, EventsMessage, Queue};
use flash_protocol::ws::ClosedReason;
use futures::StreamExt as _;
use lapin::options::{BasicAckOptions, BasicConsumeOptions, BasicNackOptions, BasicQosOptions};
use lapin::types::FieldTable;
use tokio_util::sync::CancellationToken;

use crate::waiting_room::{EventAnnouncement, RoomError, WaitingRoom};

/// Unacknowledged messages in flight per consumer.
const PREFETCH: u16 = 64;

fn announcement(info: EventQueueInfo) -> EventAnnouncement {
    EventAnnouncement {
        event: info.event_id,
        name: info.name,
        sale_opens_at: info.sale_opens_at,
        status: info.status,
        queue: info.queue,
    }
}

/// Applies one message to the queues.
pub async fn apply(room: &WaitingRoom, message: EventsMessage) -> Result<(), RoomError> {
    match message {
        EventsMessage::Created(created) => room.upsert(&announcement(created.event)).await,
        EventsMessage::Updated(updated) => room.upsert(&announcement(updated.event)).await,
        EventsMessage::SoldOut(sold_out) => room
            .close(sold_out.event_id, ClosedReason::SoldOut)
            .await
            .map(drop),
        EventsMessage::GateConsumed(consumed) => room
            .consume(consumed.event_id, consumed.user_id)
            .await
            .map(drop),
    }
}

/// Consumes until `stop`, resuming on every broker reconnect.
pub async fn run(broker: Arc<Broker>, room: WaitingRoom, stop: CancellationToken) {
    let mut connections = broker.watch();
    loop {
        let connection = connections.borrow_and_update().clone();
        if let Some(connection) = connection
            && let Err(error) = consume(&connection, &broker, &room, &stop).await
        {
            tracing::warn!(%error, "event consumer interrupted");
        }
        if stop.is_cancelled() {
            return;
        }
        tokio::select! {
            () = stop.cancelled() => return,
            changed = connections.changed() => {
                if changed.is_err() {
                    return;
                }
            }
            () = tokio::time::sleep(Duration::from_secs(1)) => {}
        }
    }
}

async fn consume(
    connection: &lapin::Connection,
    broker: &Broker,
    room: &WaitingRoom,
    stop: &CancellationToken,
) -> Result<(), lapin::Error> {
    let channel = connection.create_channel().await?;
    channel
        .basic_qos(PREFETCH, BasicQosOptions::default())
        .await?;
    let mut deliveries = channel
        .basic_consume(
            broker.names().queue(Queue::GatewayEvents).into(),
            "flash-gateway".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await?;
    loop {
        let delivery = tokio::select! {
            () = stop.cancelled() => return Ok(()),
            delivery = deliveries.next() => delivery,
        };
        let Some(delivery) = delivery else {
            return Ok(());
        };
        let delivery = delivery?;
        let kind = message_type(&delivery.properties).unwrap_or_default();
        match EventsMessage::decode(&kind, &delivery.data) {
            Ok(message) => match apply(room, message).await {
                Ok(()) => {
                    ::metrics::counter!("gateway_events_consumed_total", "type" => kind)
                        .increment(1);
                    delivery.ack(BasicAckOptions::default()).await?;
                }
                Err(error) => {
                    tracing::warn!(%error, "cannot apply an event message; redelivering");
                    tokio::time::sleep(Duration::from_millis(500)).await;
                    delivery
                        .nack(BasicNackOptions {
                            requeue: true,
                            ..BasicNackOptions::default()
                        })
                        .await?;
                }
            },
            Err(error) => {
                tracing::error!(%error, "undecodable event message dropped");
                ::metrics::counter!("gateway_events_rejected_total").increment(1);
                delivery
                    .nack(BasicNackOptions {
                        requeue: false,
                        ..BasicNackOptions::default()
                    })
                    .await?;
            }
        }
    }
}
