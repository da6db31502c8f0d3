//! Property tests of what the gateway reads from peers: WebSocket messages of a client (the
//! first one must be a valid `auth` frame, later ones frames of the contract, none larger
//! than `MAX_CLIENT_MESSAGE`), and the `flash.events` deliveries from the api (any headers,
//! any body). Whatever arrives is taken as the contract says or refused with its documented
//! close code or a typed error; never a panic. A fixed number of cases per property keeps
//! `make test` bounded.
//!
//! The socket sessions run over channels; their context holds a Redis connection (Redis must
//! answer, as for the other gateway tests) that the refusals before authentication never use.

use std::convert::Infallible;
use std::pin::Pin;
use std::sync::{Arc, LazyLock};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::extract::ws::{CloseFrame, Message, WebSocketUpgrade};
use axum::routing::get;
use flash_gateway::config::LimitConfig;
use flash_gateway::events::message_of;
use flash_gateway::gate::GateIssuer;
use flash_gateway::hub::Hub;
use flash_gateway::limits::Limits;
use flash_gateway::waiting_room::WaitingRoom;
use flash_gateway::ws::{self, Incoming, MAX_CLIENT_MESSAGE, SocketContext, client_message};
use flash_kit::amqp::{message_sequence, message_type, outbox_properties};
use flash_kit::auth::Authenticator;
use flash_kit::stores::{RedisMode, connect_redis_in};
use flash_kit::testing::TestRedis;
use flash_kit::testing::peer::{
    self, config, fail, mangled, now, short_string, whole_second_instant,
};
use flash_protocol::claims::{ACCESS_AUDIENCE, ACCESS_ISSUER, AccessClaims, Role};
use flash_protocol::event::{EventStatus, QueueSettings};
use flash_protocol::messages::{
    DecodeError, EventCreated, EventQueueInfo, EventSoldOut, EventUpdated, EventsMessage,
    GateConsumed, Message as _, SEQUENCE_HEADER, TYPE_HEADER,
};
use flash_protocol::ws::{CLOSE_UNAUTHENTICATED, ClientFrame};
use flash_protocol::{EventId, OrderId, UserId};
use flash_tokens::{KeyRing, SigningKey};
use futures::channel::mpsc;
use futures::{Sink, SinkExt as _, Stream, StreamExt as _};
use lapin::BasicProperties;
use proptest::collection::vec;
use proptest::prelude::*;
use proptest::test_runner::TestCaseError;
use time::OffsetDateTime;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

/// Cases per property.
const CASES: u32 = 256;

static RUNTIME: LazyLock<tokio::runtime::Runtime> = LazyLock::new(|| {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
});

/// The api's access-token key, which the gateway trusts.
static ACCESS_KEY: LazyLock<SigningKey> = LazyLock::new(|| SigningKey::generate().expect("key"));
/// A key the gateway does not trust.
static OTHER_KEY: LazyLock<SigningKey> = LazyLock::new(|| SigningKey::generate().expect("key"));

/// The context of one socket of an event (the stores are there, never reached before `auth`).
static CONTEXT: LazyLock<SocketContext> = LazyLock::new(|| {
    let redis = TestRedis::new();
    let keys = redis.keys();
    let connection = RUNTIME
        .block_on(connect_redis_in(&redis.url, RedisMode::Node))
        .expect("Redis answers");
    let room = WaitingRoom::new(connection.clone(), keys.clone());
    let ring = KeyRing::fixed(&ACCESS_KEY.jwks(), ACCESS_ISSUER, ACCESS_AUDIENCE).expect("ring");
    SocketContext {
        event: EventId::new_v7(),
        hub: Arc::new(Hub::new(room.clone())),
        room,
        auth: Arc::new(Authenticator::new(Arc::new(ring), 1_000)),
        gate: Arc::new(GateIssuer::new(SigningKey::generate().expect("gate key"))),
        limits: Arc::new(Limits::new(
            LimitConfig::default(),
            flash_kit::limits::RateLimiter::new(connection, keys),
        )),
        shutdown: CancellationToken::new(),
        auth_deadline: Duration::from_secs(5),
        drain: Duration::ZERO,
    }
});

/// A client over channels: what it sends is scripted, what it receives is recorded.
struct Client {
    incoming: futures::stream::Iter<std::vec::IntoIter<Result<Message, Infallible>>>,
    outgoing: mpsc::UnboundedSender<Message>,
}

impl Stream for Client {
    type Item = Result<Message, Infallible>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.incoming.poll_next_unpin(cx)
    }
}

impl Sink<Message> for Client {
    type Error = Infallible;

    fn poll_ready(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn start_send(self: Pin<&mut Self>, item: Message) -> Result<(), Infallible> {
        drop(self.outgoing.unbounded_send(item));
        Ok(())
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn poll_close(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }
}

/// Runs a socket on `messages` (then the client stops sending) and returns what it was sent.
fn session(messages: Vec<Message>) -> Result<Vec<Message>, TestCaseError> {
    let (outgoing, received) = mpsc::unbounded();
    let client = Client {
        incoming: futures::stream::iter(messages.into_iter().map(Ok).collect::<Vec<_>>()),
        outgoing,
    };
    let context = CONTEXT.clone();
    RUNTIME.block_on(async move {
        // A bound on a stuck session, far above what one takes (it never sleeps).
        tokio::time::timeout(Duration::from_secs(30), ws::run(client, context))
            .await
            .map_err(|_| fail("the session did not end"))
    })?;
    Ok(RUNTIME.block_on(received.collect()))
}

// ---------------------------------------------------------------------------------------------
// Strategies

/// Tokens that are not valid access tokens of the api: garbage, another key's, expired.
fn bad_token() -> impl Strategy<Value = String> {
    let claims = |exp_in: i64| AccessClaims {
        sub: UserId::new_v7(),
        role: Role::Admin,
        iss: ACCESS_ISSUER.to_owned(),
        aud: ACCESS_AUDIENCE.to_owned(),
        iat: now() - 60,
        exp: now() + exp_in,
    };
    prop_oneof![
        any::<String>(),
        "[A-Za-z0-9_-]{10,40}\\.[A-Za-z0-9_-]{10,80}\\.[A-Za-z0-9_-]{0,86}",
        Just(()).prop_map(move |()| OTHER_KEY.sign(&claims(600)).unwrap_or_default()),
        Just(()).prop_map(move |()| ACCESS_KEY.sign(&claims(-600)).unwrap_or_default()),
        (any::<prop::sample::Index>(), any::<char>()).prop_map(move |(at, c)| {
            let token = ACCESS_KEY.sign(&claims(600)).unwrap_or_default();
            let mut chars: Vec<char> = token.chars().collect();
            let i = at.index(chars.len());
            chars[i] = if chars[i] == c { '!' } else { c };
            chars.into_iter().collect()
        }),
    ]
}

/// Text a client might send: frames of the contract (with bad tokens), near misses, any text.
fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        bad_token()
            .prop_map(|token| serde_json::json!({ "type": "auth", "token": token }).to_string()),
        Just(r#"{"type":"ping"}"#.to_owned()),
        Just(r#"{"type":"ping","extra":[1,2]}"#.to_owned()),
        Just(r#"{"type":"auth"}"#.to_owned()),
        Just(r#"{"type":"auth","token":42}"#.to_owned()),
        Just(r#"{"type":"pong"}"#.to_owned()),
        Just(r#"{"type":"Ping"}"#.to_owned()),
        Just(r#"{"token":"x"}"#.to_owned()),
        r#"\{"type":"[a-z]{0,6}"(,"token":"[ -~]{0,20}")?\}"#,
        any::<String>(),
        Just(String::new()),
    ]
}

fn message() -> impl Strategy<Value = Message> {
    prop_oneof![
        4 => text().prop_map(|t| Message::Text(t.into())),
        1 => vec(any::<u8>(), 0..64).prop_map(|b| Message::Binary(b.into())),
        1 => text().prop_map(|t| Message::Binary(t.into_bytes().into())),
        1 => vec(any::<u8>(), 0..16).prop_map(|b| Message::Ping(b.into())),
        1 => vec(any::<u8>(), 0..16).prop_map(|b| Message::Pong(b.into())),
        1 => (any::<u16>(), "[ -~]{0,20}").prop_map(|(code, reason)| Message::Close(Some(CloseFrame { code, reason: reason.into() }))),
        1 => Just(Message::Close(None)),
    ]
}

/// Message types an event delivery may carry: the four of `flash.events`, others, a near miss.
const LIKELY_TYPES: &[&str] = &[
    EventCreated::TYPE,
    EventUpdated::TYPE,
    EventSoldOut::TYPE,
    GateConsumed::TYPE,
    "payment.completed",
    "event.deleted",
    "EVENT.CREATED",
];

/// A delivery's properties: any headers (often the `type` and sequence headers), any `type`
/// property.
fn delivery_properties() -> impl Strategy<Value = BasicProperties> {
    peer::delivery_properties(
        short_string(LIKELY_TYPES),
        &[TYPE_HEADER, SEQUENCE_HEADER],
        4,
    )
}

/// Instants of whole seconds, as the events carry them.
fn instant() -> impl Strategy<Value = OffsetDateTime> + Clone {
    whole_second_instant(0..4_000_000_000)
}

fn events_message() -> impl Strategy<Value = EventsMessage> + Clone {
    let status = prop_oneof![
        Just(EventStatus::Scheduled),
        Just(EventStatus::OnSale),
        Just(EventStatus::SoldOut),
        Just(EventStatus::Ended),
    ];
    let info = (any::<u128>(), any::<String>(), instant(), instant(), status).prop_map(
        |(id, name, sale_opens_at, starts_at, status)| EventQueueInfo {
            event_id: EventId(Uuid::from_u128(id)),
            name,
            sale_opens_at,
            starts_at,
            status,
        },
    );
    let settings = (any::<u32>(), any::<u32>(), any::<u32>()).prop_map(|(a, m, t)| QueueSettings {
        admit_per_sec: a,
        max_active: m,
        admission_ttl_s: t,
        challenge_difficulty: 0,
    });
    prop_oneof![
        (info.clone(), settings.clone())
            .prop_map(|(event, queue)| EventsMessage::Created(EventCreated { event, queue })),
        (
            info,
            proptest::option::of(settings),
            proptest::option::of(0_u64..5)
        )
            .prop_map(
                |(event, queue, remaining)| EventsMessage::Updated(EventUpdated {
                    event,
                    queue,
                    remaining
                })
            ),
        (any::<u128>(), instant(), 0_u64..5).prop_map(|(id, sold_out_at, reserved_pending)| {
            EventsMessage::SoldOut(EventSoldOut {
                event_id: EventId(Uuid::from_u128(id)),
                sold_out_at,
                reserved_pending,
            })
        }),
        (
            any::<u128>(),
            any::<u128>(),
            any::<u128>(),
            any::<u128>(),
            instant(),
            proptest::option::of(any::<u64>())
        )
            .prop_map(
                |(e, u, j, o, consumed_at, remaining)| EventsMessage::GateConsumed(GateConsumed {
                    event_id: EventId(Uuid::from_u128(e)),
                    user_id: UserId(Uuid::from_u128(u)),
                    jti: Uuid::from_u128(j),
                    order_id: OrderId(Uuid::from_u128(o)),
                    consumed_at,
                    remaining,
                })
            ),
    ]
}

fn type_and_body(message: &EventsMessage) -> (&'static str, Vec<u8>) {
    let (kind, body) = match message {
        EventsMessage::Created(m) => (EventCreated::TYPE, serde_json::to_vec(m)),
        EventsMessage::Updated(m) => (EventUpdated::TYPE, serde_json::to_vec(m)),
        EventsMessage::SoldOut(m) => (EventSoldOut::TYPE, serde_json::to_vec(m)),
        EventsMessage::GateConsumed(m) => (GateConsumed::TYPE, serde_json::to_vec(m)),
    };
    (kind, body.unwrap_or_default())
}

/// Bodies: any bytes, a valid message's JSON, or that with a byte changed or cut short.
fn body() -> impl Strategy<Value = Vec<u8>> {
    mangled(events_message().prop_map(|m| type_and_body(&m).1))
}

const EVENT_TYPES: [&str; 4] = [
    EventCreated::TYPE,
    EventUpdated::TYPE,
    EventSoldOut::TYPE,
    GateConsumed::TYPE,
];

// ---------------------------------------------------------------------------------------------
// Properties

proptest! {
    #![proptest_config(config(CASES))]

    /// A message of an authenticated client: `ping` is answered, another `auth` and protocol
    /// pings and pongs are nothing, a close ends the socket; any other text is refused with
    /// 1008 and binary with 1003.
    #[test]
    fn client_messages_are_frames_of_the_contract_or_refused(message in message()) {
        let outcome = client_message(&message);
        let expected = match &message {
            Message::Text(text) => match serde_json::from_str::<ClientFrame>(text) {
                Ok(ClientFrame::Ping) => Incoming::Ping,
                Ok(ClientFrame::Auth { .. }) => Incoming::Nothing,
                Err(_) => Incoming::Refused(ws::CLOSE_POLICY, "unknown frame"),
            },
            Message::Binary(_) => Incoming::Refused(ws::CLOSE_UNSUPPORTED, "text frames only"),
            Message::Ping(_) | Message::Pong(_) => Incoming::Nothing,
            Message::Close(_) => Incoming::Closed,
        };
        prop_assert_eq!(outcome, expected);
        if let Message::Text(text) = &message {
            // Only the two frames of the contract are ever taken.
            let value = serde_json::from_str::<serde_json::Value>(text).ok();
            let kind = value.as_ref().and_then(|v| v.get("type")).and_then(serde_json::Value::as_str);
            if matches!(outcome, Incoming::Ping | Incoming::Nothing) {
                prop_assert!(kind == Some("ping") || kind == Some("auth"), "{} taken", text);
            }
        }
    }

    /// Before authentication: whatever the client sends first (after any protocol pings) that
    /// is not an `auth` frame with a valid access token closes the socket with 4401 and
    /// nothing else; a client that closes or goes away is sent nothing.
    #[test]
    fn the_first_frame_must_be_a_valid_auth_frame(pings in vec(prop_oneof![vec(any::<u8>(), 0..8).prop_map(|b| Message::Ping(b.into())), vec(any::<u8>(), 0..8).prop_map(|b| Message::Pong(b.into()))], 0..3), messages in vec(message(), 0..4)) {
        let script: Vec<Message> = pings.into_iter().chain(messages).collect();
        // Protocol pings and pongs are skipped while the socket waits for its first frame.
        let first = script
            .iter()
            .find(|m| !matches!(m, Message::Ping(_) | Message::Pong(_)))
            .cloned();
        let sent = session(script)?;
        match first {
            Some(Message::Close(_)) | None => prop_assert!(sent.is_empty(), "sent {:?}", sent),
            Some(_) => {
                prop_assert_eq!(sent.len(), 1, "sent {:?}", sent);
                prop_assert!(matches!(&sent[0], Message::Close(Some(close)) if close.code == CLOSE_UNAUTHENTICATED), "sent {:?}", sent);
            }
        }
    }

    /// `flash.events` deliveries: a message exactly when the type names one of the four and
    /// the body is one of it, with the sequence header (0 without one); otherwise
    /// `UnknownType` naming the type, or a body error naming it.
    #[test]
    fn event_deliveries_decode_or_are_refused(properties in delivery_properties(), body in body()) {
        let kind = message_type(&properties).unwrap_or_default();
        match message_of(&properties, &body) {
            Ok((message, sequence)) => {
                let (named, _) = type_and_body(&message);
                prop_assert_eq!(kind.as_str(), named);
                prop_assert_eq!(sequence, message_sequence(&properties).unwrap_or(0));
                prop_assert_eq!(EventsMessage::decode(named, &type_and_body(&message).1).ok(), Some(message));
            }
            Err(DecodeError::UnknownType(named)) => {
                prop_assert!(!EVENT_TYPES.contains(&kind.as_str()), "{} unknown", kind);
                prop_assert_eq!(named, kind);
            }
            Err(DecodeError::Body { type_name, source }) => {
                prop_assert_eq!(type_name, kind.as_str());
                prop_assert!(source.is_syntax() || source.is_data() || source.is_eof(), "{}", source);
            }
        }
    }

    /// What the api's relay publishes is decoded to itself with its sequence.
    #[test]
    fn published_event_messages_round_trip(message in events_message(), sequence in any::<i64>()) {
        let (kind, body) = type_and_body(&message);
        let properties = outbox_properties(kind, &Uuid::new_v4().to_string(), sequence);
        prop_assert_eq!(message_of(&properties, &body).ok(), Some((message, sequence)));
    }
}

proptest! {
    #![proptest_config(config(24))]

    /// Over a real socket with the gateway's limits: a message of at most
    /// `MAX_CLIENT_MESSAGE` bytes reaches the session as sent; a larger one never does (the
    /// socket ends with an error instead).
    #[test]
    fn messages_over_the_limit_never_reach_the_session(size in prop_oneof![1_usize..=MAX_CLIENT_MESSAGE, MAX_CLIENT_MESSAGE - 2..=MAX_CLIENT_MESSAGE + 2, MAX_CLIENT_MESSAGE + 1..4 * MAX_CLIENT_MESSAGE], binary in any::<bool>(), fill in any::<u8>()) {
        let fill = fill % 26 + b'a';
        let payload = vec![fill; size];
        let received = RUNTIME.block_on(async move {
            let (report, mut reports) = tokio::sync::mpsc::unbounded_channel();
            let app = Router::new().route(
                "/ws",
                get(move |upgrade: WebSocketUpgrade| {
                    let report = report.clone();
                    async move {
                        ws::limited(upgrade).on_upgrade(move |mut socket| async move {
                            let first = socket.recv().await;
                            drop(report.send(first.map(|r| r.map_err(|e| e.to_string()))));
                        })
                    }
                }),
            );
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.map_err(fail)?;
            let addr = listener.local_addr().map_err(fail)?;
            let server = tokio::spawn(async move { axum::serve(listener, app).await });
            let (mut client, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/ws")).await.map_err(fail)?;
            let message = if binary {
                tokio_tungstenite::tungstenite::Message::Binary(payload.clone().into())
            } else {
                tokio_tungstenite::tungstenite::Message::Text(String::from_utf8(payload.clone()).map_err(fail)?.into())
            };
            drop(client.send(message).await);
            let received = tokio::time::timeout(Duration::from_secs(30), reports.recv())
                .await
                .map_err(|_| fail("the session never saw the message"))?;
            server.abort();
            Ok::<_, TestCaseError>((received, payload))
        })?;
        let (received, payload) = received;
        match received.flatten() {
            Some(Ok(Message::Text(text))) => {
                prop_assert!(!binary && size <= MAX_CLIENT_MESSAGE, "{} bytes reached the session", size);
                prop_assert_eq!(text.as_bytes(), payload.as_slice());
            }
            Some(Ok(Message::Binary(bytes))) => {
                prop_assert!(binary && size <= MAX_CLIENT_MESSAGE, "{} bytes reached the session", size);
                prop_assert_eq!(bytes.as_ref(), payload.as_slice());
            }
            Some(Err(_)) | None => prop_assert!(size > MAX_CLIENT_MESSAGE, "{} bytes refused", size),
            Some(Ok(other)) => prop_assert!(false, "unexpected {:?}", other),
        }
    }
}
