//! The AsyncAPI 3.1 document of everything that is not a request and its answer: the frames of
//! the queue's WebSocket and the messages on RabbitMQ. It is made from the types, the close
//! codes and the broker names of this crate, so it cannot drift from them; a golden copy is
//! committed as `docs/asyncapi.json` and a test fails when the two differ.

use serde_json::{Map, Value, json};
use utoipa::openapi::{RefOr, Schema};
use utoipa::{PartialSchema, ToSchema};

use crate::messages::{
    ATTEMPTS_HEADER, DEAD_REASON_HEADER, EventCreated, EventSoldOut, EventUpdated, Exchange,
    ExchangeKind, GateConsumed, Message, PaymentCompleted, PaymentRefundRequested, PaymentRefunded,
    PaymentRequested, Queue, QueueUpdated, RESULT_MAX_DELIVERIES, SEQUENCE_HEADER, TYPE_HEADER,
};
use crate::ws::{
    AUTH_DEADLINE_SECS, CLOSE_INTERNAL, CLOSE_NORMAL, CLOSE_NOT_IN_QUEUE, CLOSE_POLICY,
    CLOSE_RATE_LIMITED, CLOSE_REPLACED, CLOSE_SERVICE_RESTART, CLOSE_UNAUTHENTICATED,
    CLOSE_UNSUPPORTED, ClientFrame, ServerFrame,
};

/// The path of the queue's WebSocket.
pub const WS_PATH: &str = "/queue/v1/events/{id}/ws";

/// Close codes of the queue's WebSocket and what a client does on each.
pub const CLOSE_CODES: &[(u16, &str)] = &[
    (
        CLOSE_NORMAL,
        "The queue closed (a `closed` frame came first): stop, nothing will follow.",
    ),
    (
        CLOSE_UNSUPPORTED,
        "A binary frame was sent: the server reads JSON text frames only.",
    ),
    (
        CLOSE_POLICY,
        "A frame that is not one of the contract's, or more frames than the socket's budget.",
    ),
    (
        CLOSE_INTERNAL,
        "The queue could not be read: reconnect after a short wait.",
    ),
    (
        CLOSE_SERVICE_RESTART,
        "The server is restarting: reconnect (to any replica) at once; the place is kept.",
    ),
    (
        CLOSE_UNAUTHENTICATED,
        "No valid `auth` frame in time, or the token is not valid: sign in again.",
    ),
    (
        CLOSE_NOT_IN_QUEUE,
        "The user holds no place in this queue (never joined, or left): join first.",
    ),
    (
        CLOSE_REPLACED,
        "A newer socket of the same user took over: this one is done.",
    ),
    (
        CLOSE_RATE_LIMITED,
        "Too many sockets for this user: reconnect after the seconds the reason names.",
    ),
];

fn schema_of<T: ToSchema>(schemas: &mut Map<String, Value>) -> Value {
    let mut found = Vec::new();
    T::schemas(&mut found);
    for (name, schema) in found {
        schemas.insert(name, to_value(&schema));
    }
    to_value(&T::schema())
}

fn to_value<T: serde::Serialize>(value: &T) -> Value {
    serde_json::to_value(value).unwrap_or(Value::Null)
}

/// The variants of a frame enum tagged by `type`, as `(type, schema)`.
fn frames<T: PartialSchema>() -> Vec<(String, Value)> {
    let RefOr::T(Schema::OneOf(one_of)) = T::schema() else {
        return Vec::new();
    };
    one_of
        .items
        .iter()
        .filter_map(|item| {
            let value = to_value(item);
            let name = value
                .pointer("/properties/type/enum/0")
                .and_then(Value::as_str)?
                .to_owned();
            Some((name, value))
        })
        .collect()
}

fn amqp_exchange(exchange: Exchange) -> Value {
    json!({
        "name": exchange.base_name(),
        "type": match exchange.kind() {
            ExchangeKind::Direct => "direct",
            ExchangeKind::Topic => "topic",
        },
        "durable": true,
        "autoDelete": false,
        "vhost": "/",
    })
}

/// One AMQP message type: its channel (exchange and routing key) and its message.
struct Amqp {
    id: &'static str,
    exchange: Exchange,
    routing_key: &'static str,
    type_header: &'static str,
    payload: Value,
    summary: &'static str,
    sender: &'static str,
    receiver: &'static str,
}

fn amqp<M: Message + ToSchema>(
    schemas: &mut Map<String, Value>,
    id: &'static str,
    summary: &'static str,
    sender: &'static str,
    receiver: &'static str,
) -> Amqp {
    Amqp {
        id,
        exchange: M::EXCHANGE,
        routing_key: M::ROUTING_KEY,
        type_header: M::TYPE,
        payload: schema_of::<M>(schemas),
        summary,
        sender,
        receiver,
    }
}

fn headers(type_header: &str, extra: &[(&str, Value)]) -> Value {
    let mut properties = Map::new();
    properties.insert(
        TYPE_HEADER.to_owned(),
        json!({"type": "string", "const": type_header, "description": "The message's type; a consumer decodes the body by it."}),
    );
    properties.insert(
        SEQUENCE_HEADER.to_owned(),
        json!({"type": "integer", "minimum": 0, "description": "Increases with every message about one thing (an order, an event): a consumer ignores one older than what it applied."}),
    );
    for (name, schema) in extra {
        properties.insert((*name).to_owned(), schema.clone());
    }
    json!({"type": "object", "required": [TYPE_HEADER], "properties": properties})
}

/// The AsyncAPI 3.1 document.
#[must_use]
pub fn document() -> Value {
    let mut schemas = Map::new();
    let mut messages = Map::new();
    let mut channels = Map::new();
    let mut operations = Map::new();

    // The queue's WebSocket.
    let mut socket_messages = Map::new();
    let mut client_refs = Vec::new();
    let mut server_refs = Vec::new();
    schema_of::<ClientFrame>(&mut schemas);
    schema_of::<ServerFrame>(&mut schemas);
    for (from_client, (name, payload)) in frames::<ClientFrame>()
        .into_iter()
        .map(|f| (true, f))
        .chain(frames::<ServerFrame>().into_iter().map(|f| (false, f)))
    {
        let id = format!("ws.{name}");
        messages.insert(
            id.clone(),
            json!({
                "name": name,
                "title": format!("`{name}` frame"),
                "contentType": "application/json",
                "payload": payload,
            }),
        );
        socket_messages.insert(
            name.clone(),
            json!({"$ref": format!("#/components/messages/{id}")}),
        );
        let reference = json!({"$ref": format!("#/channels/queueSocket/messages/{name}")});
        if from_client {
            client_refs.push(reference);
        } else {
            server_refs.push(reference);
        }
    }
    let close_codes: Vec<String> = CLOSE_CODES
        .iter()
        .map(|(code, meaning)| format!("- `{code}`: {meaning}"))
        .collect();
    channels.insert(
        "queueSocket".into(),
        json!({
            "address": WS_PATH,
            "title": "The queue's WebSocket",
            "description": format!(
                "One socket per buyer and event, on the gateway. The first frame must be `auth` \
                 within {AUTH_DEADLINE_SECS} s. The server then sends the buyer's `position` (on \
                 connect and at most about once a second), `admitted` once with the gate token \
                 (never dropped), `closed` when the sale is over; a `ping` is answered `pong`. \
                 Frames are JSON text tagged by `type`; state, not a log: a slow client gets the \
                 newest position. Close codes:\n\n{}",
                close_codes.join("\n")
            ),
            "servers": [{"$ref": "#/servers/gateway"}],
            "parameters": {"id": {"description": "The event's id."}},
            "messages": socket_messages,
            "bindings": {"ws": {"bindingVersion": "0.1.0"}},
        }),
    );
    operations.insert(
        "clientSends".into(),
        json!({
            "action": "receive",
            "title": "The gateway receives the client's frames",
            "channel": {"$ref": "#/channels/queueSocket"},
            "messages": client_refs,
        }),
    );
    operations.insert(
        "serverSends".into(),
        json!({
            "action": "send",
            "title": "The gateway sends the buyer's state",
            "channel": {"$ref": "#/channels/queueSocket"},
            "messages": server_refs,
        }),
    );

    // RabbitMQ.
    let broker_messages = [
        amqp::<PaymentRequested>(
            &mut schemas,
            "paymentRequested",
            "An order asks to be paid (from the api's outbox, published with confirms).",
            "api",
            "pay",
        ),
        amqp::<PaymentCompleted>(
            &mut schemas,
            "paymentCompleted",
            "A payment's one outcome; the api applies it once.",
            "pay",
            "api",
        ),
        amqp::<PaymentRefundRequested>(
            &mut schemas,
            "paymentRefundRequested",
            "A payment was approved after its order stopped waiting (its hold expired): give the money back. Sent once per payment, from the api's outbox in the same transaction that recorded the late approval.",
            "api",
            "pay",
        ),
        amqp::<PaymentRefunded>(
            &mut schemas,
            "paymentRefunded",
            "A refund's one outcome (`refunded`, or `failed` with a reason: an operator must act); the api applies it once.",
            "pay",
            "api",
        ),
        amqp::<EventCreated>(
            &mut schemas,
            "eventCreated",
            "An event exists: the gateway makes its queue with these initial settings.",
            "api",
            "gateway",
        ),
        amqp::<EventUpdated>(
            &mut schemas,
            "eventUpdated",
            "An event changed; `queue` only when the admin's request set queue settings.",
            "api",
            "gateway",
        ),
        amqp::<EventSoldOut>(
            &mut schemas,
            "eventSoldOut",
            "No stock is left: the gateway closes the queue and tells every waiting buyer.",
            "api",
            "gateway",
        ),
        amqp::<GateConsumed>(
            &mut schemas,
            "gateConsumed",
            "A gate token bought an order: the gateway frees the admission's slot.",
            "api",
            "gateway",
        ),
        amqp::<QueueUpdated>(
            &mut schemas,
            "queueUpdated",
            "An operator changed a queue in the gateway: written with the change by one Redis script, relayed by any replica at least once (with confirms); the api records it in its audit log once per `id`.",
            "gateway",
            "api",
        ),
    ];
    for m in &broker_messages {
        // A payment request is retried and may go to the dead letters: its headers say so.
        let extra: Vec<(&str, Value)> = if m.type_header == PaymentRequested::TYPE
            || m.type_header == PaymentRefundRequested::TYPE
        {
            vec![
                (
                    ATTEMPTS_HEADER,
                    json!({"type": "integer", "minimum": 0, "description": "Tries so far, on a request sent back to be retried."}),
                ),
                (
                    DEAD_REASON_HEADER,
                    json!({"type": "string", "maxLength": 1024, "description": "Why a request went to the dead letters."}),
                ),
            ]
        } else {
            Vec::new()
        };
        messages.insert(
            m.id.into(),
            json!({
                "name": m.type_header,
                "title": m.type_header,
                "summary": m.summary,
                "contentType": "application/json",
                "headers": headers(m.type_header, &extra),
                "payload": m.payload,
                "bindings": {"amqp": {"messageType": m.type_header, "bindingVersion": "0.3.0"}},
            }),
        );
        channels.insert(
            m.id.into(),
            json!({
                "address": m.routing_key,
                "title": format!("{} on {}", m.routing_key, m.exchange.base_name()),
                "servers": [{"$ref": "#/servers/broker"}],
                "messages": {m.id: {"$ref": format!("#/components/messages/{}", m.id)}},
                "bindings": {"amqp": {
                    "is": "routingKey",
                    "exchange": amqp_exchange(m.exchange),
                    "bindingVersion": "0.3.0",
                }},
            }),
        );
        let reference = json!([{"$ref": format!("#/channels/{}/messages/{}", m.id, m.id)}]);
        operations.insert(
            format!("{}Publishes{}", m.sender, upper_first(m.id)),
            json!({
                "action": "send",
                "title": format!("The {} publishes {}", m.sender, m.type_header),
                "channel": {"$ref": format!("#/channels/{}", m.id)},
                "messages": reference,
                "bindings": {"amqp": {"deliveryMode": 2, "mandatory": true, "bindingVersion": "0.3.0"}},
            }),
        );
        let queue = Queue::receiving(m.exchange, m.routing_key).map_or("", Queue::base_name);
        operations.insert(
            format!("{}Consumes{}", m.receiver, upper_first(m.id)),
            json!({
                "action": "receive",
                "title": format!("The {} consumes {} from `{queue}`", m.receiver, m.type_header),
                "channel": {"$ref": format!("#/channels/{}", m.id)},
                "messages": reference,
                "bindings": {"amqp": {"ack": true, "bindingVersion": "0.3.0"}},
            }),
        );
    }
    let queues: Vec<String> = Queue::ALL
        .iter()
        .map(|q| {
            let (exchange, keys) = q.bindings();
            let keys: Vec<String> = keys.iter().map(|key| format!("`{key}`")).collect();
            format!(
                "- `{}`: bound to `{}` with {}",
                q.base_name(),
                exchange.base_name(),
                keys.join(" and ")
            )
        })
        .collect();

    json!({
        "asyncapi": "3.1.0",
        "info": {
            "title": "Flash Tickets messages",
            "version": "1",
            "description": format!(
                "The frames of the gateway's queue WebSocket and the messages the services \
                 exchange on RabbitMQ (bodies JSON, persistent, published with confirms; every \
                 consumer acknowledges after applying and applies each message once). Queues \
                 (quorum), with their bindings:\n\n{}\n\nA payment request that fails for a \
                 while is retried through `{}` (a refund request through `{}`) with a growing \
                 delay; one that can never succeed goes to `{}` with its reason in \
                 `{DEAD_REASON_HEADER}`. A payment result the api cannot read, or cannot apply \
                 in {RESULT_MAX_DELIVERIES} deliveries, goes to `{}` the same way.",
                queues.join("\n"),
                Queue::PayRetry.base_name(),
                Queue::PayRefundsRetry.base_name(),
                Queue::PayDead.base_name(),
                Queue::ApiPaymentResultsDead.base_name(),
            ),
            "license": {"name": "Apache-2.0"},
        },
        "defaultContentType": "application/json",
        "servers": {
            "gateway": {
                "host": "127.0.0.1:8080",
                "protocol": "ws",
                "description": "The gateway, behind `make up`'s origin (wss behind TLS in a cluster).",
            },
            "broker": {
                "host": "127.0.0.1:5672",
                "protocol": "amqp",
                "protocolVersion": "0.9.1",
                "description": "RabbitMQ.",
            },
        },
        "channels": channels,
        "operations": operations,
        "components": {"schemas": schemas, "messages": messages},
    })
}

fn upper_first(word: &str) -> String {
    let mut chars = word.chars();
    chars.next().map_or_else(String::new, |first| {
        first.to_uppercase().chain(chars).collect()
    })
}
