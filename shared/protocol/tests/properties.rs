//! Property tests of the wire contract: whatever a peer sends — arbitrary bytes, arbitrary
//! JSON, valid bodies with one field broken — every decoder either gives a value that encodes
//! and decodes back to itself, or refuses with a typed error; and every value the services
//! produce decodes back to itself. A fixed number of cases per property keeps `make test`
//! bounded.

use std::fmt::Debug;
use std::str::FromStr;

use flash_protocol::auth::{
    LoginRequest, RefreshRequest, RegisterRequest, RegisterResponse, TokenResponse,
};
use flash_protocol::claims::{AccessClaims, GateClaims, Role};
use flash_protocol::error::FieldError;
use flash_protocol::event::{
    Event, EventPatch, EventStats, EventStatus, NewEvent, OrderCounts, QueueSettings,
    QueueSettingsPatch,
};
use flash_protocol::keys::{InvalidPrefix, RedisKeys, event_of_channel, hash_tag};
use flash_protocol::messages::{
    DecodeError, EventCreated, EventQueueInfo, EventSoldOut, EventUpdated, EventsMessage,
    GateConsumed, Message, PaymentCompleted, PaymentOutcome, PaymentRequested, decode,
};
use flash_protocol::order::{CreateOrder, Order, OrderStatus};
use flash_protocol::queue::{QueuePatch, QueueState, QueueStats, Ticket, TicketState};
use flash_protocol::ws::{ClientFrame, ClosedReason, ServerFrame};
use flash_protocol::{ErrorCode, EventId, OrderId, PaymentId, Problem, UserId};
use proptest::collection::{btree_map, vec};
use proptest::prelude::*;
use proptest::test_runner::TestCaseError;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;
use serde_json::error::Category;
use time::{OffsetDateTime, UtcOffset};
use uuid::Uuid;

/// Cases per property: enough to reach the odd shapes, few enough for a few seconds in the
/// dev profile.
const CASES: u32 = 512;

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: CASES,
        ..ProptestConfig::default()
    }
}

// ---------------------------------------------------------------------------------------------
// Strategies

fn uuid() -> impl Strategy<Value = Uuid> {
    any::<u128>().prop_map(Uuid::from_u128)
}

/// Any instant RFC 3339 can write (years 0001 to 9998, so every offset stays in range), at
/// nanosecond precision, in UTC or at a whole-minute offset.
fn instant() -> impl Strategy<Value = OffsetDateTime> {
    (
        -62_135_596_800_i64 + 86_400..253_370_764_800_i64,
        0_u32..1_000_000_000,
        prop_oneof![Just((0_i8, 0_i8)), (-23_i8..=23, 0_i8..60)],
    )
        .prop_map(|(seconds, nanos, (hours, minutes))| {
            let minutes = if hours < 0 { -minutes } else { minutes };
            let offset = UtcOffset::from_hms(hours, minutes, 0).unwrap_or(UtcOffset::UTC);
            OffsetDateTime::from_unix_timestamp(seconds)
                .map(|t| t.replace_nanosecond(nanos).unwrap_or(t))
                .unwrap_or(OffsetDateTime::UNIX_EPOCH)
                .to_offset(offset)
        })
}

fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        "[A-Za-z0-9 @._+-]{0,40}",
        Just(String::new()),
    ]
}

fn event_status() -> impl Strategy<Value = EventStatus> {
    prop_oneof![
        Just(EventStatus::Scheduled),
        Just(EventStatus::OnSale),
        Just(EventStatus::SoldOut),
        Just(EventStatus::Ended),
    ]
}

fn queue_settings() -> impl Strategy<Value = QueueSettings> {
    (any::<u32>(), any::<u32>(), any::<u32>()).prop_map(
        |(admit_per_sec, max_active, admission_ttl_s)| QueueSettings {
            admit_per_sec,
            max_active,
            admission_ttl_s,
            challenge_difficulty: u8::try_from(admit_per_sec % 33).unwrap_or(0),
        },
    )
}

fn queue_settings_patch() -> impl Strategy<Value = QueueSettingsPatch> {
    (
        any::<Option<u32>>(),
        any::<Option<u32>>(),
        any::<Option<u32>>(),
    )
        .prop_map(
            |(admit_per_sec, max_active, admission_ttl_s)| QueueSettingsPatch {
                admit_per_sec,
                max_active,
                admission_ttl_s,
            },
        )
}

fn event_queue_info() -> impl Strategy<Value = EventQueueInfo> {
    (uuid(), text(), instant(), instant(), event_status()).prop_map(
        |(id, name, sale_opens_at, starts_at, status)| EventQueueInfo {
            event_id: EventId(id),
            name,
            sale_opens_at,
            starts_at,
            status,
        },
    )
}

fn event_created() -> impl Strategy<Value = EventCreated> {
    (event_queue_info(), queue_settings()).prop_map(|(event, queue)| EventCreated { event, queue })
}

fn event_updated() -> impl Strategy<Value = EventUpdated> {
    (
        event_queue_info(),
        proptest::option::of(queue_settings()),
        proptest::option::of(any::<u64>()),
    )
        .prop_map(|(event, queue, remaining)| EventUpdated {
            event,
            queue,
            remaining,
        })
}

fn event_sold_out() -> impl Strategy<Value = EventSoldOut> {
    (uuid(), instant(), any::<u64>()).prop_map(|(id, sold_out_at, reserved_pending)| EventSoldOut {
        event_id: EventId(id),
        sold_out_at,
        reserved_pending,
    })
}

fn gate_consumed() -> impl Strategy<Value = GateConsumed> {
    (
        uuid(),
        uuid(),
        uuid(),
        uuid(),
        instant(),
        proptest::option::of(any::<u64>()),
    )
        .prop_map(
            |(event, user, jti, order, consumed_at, remaining)| GateConsumed {
                event_id: EventId(event),
                user_id: UserId(user),
                jti,
                order_id: OrderId(order),
                consumed_at,
                remaining,
            },
        )
}

fn payment_requested() -> impl Strategy<Value = PaymentRequested> {
    (uuid(), uuid(), uuid(), any::<i64>(), text(), instant()).prop_map(
        |(payment, order, user, amount_cents, currency, requested_at)| PaymentRequested {
            payment_id: PaymentId(payment),
            order_id: OrderId(order),
            user_id: UserId(user),
            amount_cents,
            currency,
            requested_at,
        },
    )
}

fn payment_completed() -> impl Strategy<Value = PaymentCompleted> {
    (
        uuid(),
        uuid(),
        prop_oneof![
            Just(PaymentOutcome::Approved),
            Just(PaymentOutcome::Declined)
        ],
        proptest::option::of(text()),
        instant(),
    )
        .prop_map(
            |(payment, order, outcome, reason, processed_at)| PaymentCompleted {
                payment_id: PaymentId(payment),
                order_id: OrderId(order),
                outcome,
                reason,
                processed_at,
            },
        )
}

fn events_message() -> impl Strategy<Value = EventsMessage> {
    prop_oneof![
        event_created().prop_map(EventsMessage::Created),
        event_updated().prop_map(EventsMessage::Updated),
        event_sold_out().prop_map(EventsMessage::SoldOut),
        gate_consumed().prop_map(EventsMessage::GateConsumed),
    ]
}

fn client_frame() -> impl Strategy<Value = ClientFrame> {
    prop_oneof![
        Just(ClientFrame::Ping),
        text().prop_map(|token| ClientFrame::Auth { token }),
    ]
}

fn ticket_state() -> impl Strategy<Value = TicketState> {
    prop_oneof![
        Just(TicketState::PreQueue),
        Just(TicketState::Waiting),
        Just(TicketState::Admitted),
        Just(TicketState::Expired),
        Just(TicketState::Closed),
    ]
}

fn closed_reason() -> impl Strategy<Value = ClosedReason> {
    prop_oneof![Just(ClosedReason::SoldOut), Just(ClosedReason::Ended)]
}

fn server_frame() -> impl Strategy<Value = ServerFrame> {
    prop_oneof![
        Just(ServerFrame::Pong),
        closed_reason().prop_map(|reason| ServerFrame::Closed { reason }),
        (text(), instant()).prop_map(|(gate_token, expires_at)| ServerFrame::Admitted {
            gate_token,
            expires_at
        }),
        (
            ticket_state(),
            any::<Option<u64>>(),
            any::<Option<u64>>(),
            any::<Option<u64>>(),
            any::<u64>()
        )
            .prop_map(|(state, number, ahead, eta_s, reserved_pending)| {
                ServerFrame::Position {
                    state,
                    number,
                    ahead,
                    eta_s,
                    reserved_pending,
                }
            }),
    ]
}

fn role() -> impl Strategy<Value = Role> {
    prop_oneof![Just(Role::User), Just(Role::Admin)]
}

fn access_claims() -> impl Strategy<Value = AccessClaims> {
    (uuid(), role(), text(), text(), any::<i64>(), any::<i64>()).prop_map(
        |(sub, role, iss, aud, iat, exp)| AccessClaims {
            sub: UserId(sub),
            role,
            iss,
            aud,
            iat,
            exp,
        },
    )
}

fn gate_claims() -> impl Strategy<Value = GateClaims> {
    (
        uuid(),
        uuid(),
        uuid(),
        text(),
        text(),
        any::<i64>(),
        any::<i64>(),
    )
        .prop_map(|(sub, evt, jti, iss, aud, iat, exp)| GateClaims {
            sub: UserId(sub),
            evt: EventId(evt),
            jti,
            iss,
            aud,
            iat,
            exp,
        })
}

fn new_event() -> impl Strategy<Value = NewEvent> {
    (
        (text(), text(), instant(), instant()),
        (
            any::<i64>(),
            text(),
            any::<u32>(),
            any::<u32>(),
            queue_settings(),
        ),
    )
        .prop_map(
            |(
                (name, venue, starts_at, sale_opens_at),
                (price_cents, currency, inventory, max_per_user, queue),
            )| NewEvent {
                name,
                venue,
                starts_at,
                sale_opens_at,
                price_cents,
                currency,
                inventory,
                max_per_user,
                queue,
                returns_until: None,
            },
        )
        .prop_flat_map(|new| {
            (Just(new), proptest::option::of(instant())).prop_map(|(mut new, until)| {
                new.returns_until = until;
                new
            })
        })
}

fn event_patch() -> impl Strategy<Value = EventPatch> {
    use proptest::option::of;
    (
        (of(text()), of(text()), of(instant()), of(instant())),
        (
            any::<Option<i64>>(),
            of(text()),
            any::<Option<u32>>(),
            any::<Option<u32>>(),
            of(queue_settings_patch()),
        ),
    )
        .prop_map(
            |(
                (name, venue, starts_at, sale_opens_at),
                (price_cents, currency, inventory, max_per_user, queue),
            )| EventPatch {
                name,
                venue,
                starts_at,
                sale_opens_at,
                price_cents,
                currency,
                inventory,
                max_per_user,
                queue,
                returns_until: None,
            },
        )
        .prop_flat_map(|patch| {
            (Just(patch), of(instant())).prop_map(|(mut patch, until)| {
                patch.returns_until = until;
                patch
            })
        })
}

fn event() -> impl Strategy<Value = Event> {
    (
        (uuid(), text(), text(), instant(), instant()),
        (
            any::<i64>(),
            text(),
            any::<u32>(),
            any::<u32>(),
            any::<u32>(),
            event_status(),
        ),
    )
        .prop_map(
            |(
                (id, name, venue, starts_at, sale_opens_at),
                (price_cents, currency, inventory, remaining, max_per_user, status),
            )| Event {
                id: EventId(id),
                name,
                venue,
                starts_at,
                sale_opens_at,
                price_cents,
                currency,
                inventory,
                remaining,
                max_per_user,
                status,
                reserved_pending: 0,
                returns_until: None,
            },
        )
        .prop_flat_map(|event| {
            (Just(event), any::<u64>(), proptest::option::of(instant())).prop_map(
                |(mut event, reserved, until)| {
                    event.reserved_pending = reserved;
                    event.returns_until = until;
                    event
                },
            )
        })
}

fn order_status() -> impl Strategy<Value = OrderStatus> {
    prop_oneof![
        Just(OrderStatus::PendingPayment),
        Just(OrderStatus::Paid),
        Just(OrderStatus::PaymentFailed),
        Just(OrderStatus::Expired),
    ]
}

fn order() -> impl Strategy<Value = Order> {
    (
        uuid(),
        uuid(),
        any::<u32>(),
        any::<i64>(),
        text(),
        order_status(),
        instant(),
        instant(),
        proptest::option::of(refund()),
    )
        .prop_map(
            |(
                id,
                event,
                quantity,
                amount_cents,
                currency,
                status,
                created_at,
                updated_at,
                refund,
            )| {
                Order {
                    id: OrderId(id),
                    event_id: EventId(event),
                    quantity,
                    amount_cents,
                    currency,
                    status,
                    created_at,
                    updated_at,
                    refund,
                }
            },
        )
}

fn refund() -> impl Strategy<Value = flash_protocol::order::Refund> {
    use flash_protocol::order::{Refund, RefundStatus};
    (
        prop_oneof![
            Just(RefundStatus::Pending),
            Just(RefundStatus::Refunded),
            Just(RefundStatus::Failed),
        ],
        instant(),
    )
        .prop_map(|(status, at)| Refund { status, at })
}

fn ticket() -> impl Strategy<Value = Ticket> {
    (
        uuid(),
        any::<Option<u64>>(),
        ticket_state(),
        any::<Option<u64>>(),
        any::<Option<u64>>(),
        proptest::option::of(text()),
        proptest::option::of(instant()),
        proptest::option::of(text()),
    )
        .prop_map(
            |(event, number, state, ahead, eta_s, gate_token, gate_expires_at, pseudonym)| Ticket {
                event_id: EventId(event),
                number,
                state,
                ahead,
                eta_s,
                gate_token,
                gate_expires_at,
                pseudonym,
                reserved_pending: 0,
            },
        )
        .prop_flat_map(|ticket| {
            (Just(ticket), any::<u64>()).prop_map(|(mut ticket, reserved)| {
                ticket.reserved_pending = reserved;
                ticket
            })
        })
}

fn queue_state() -> impl Strategy<Value = QueueState> {
    prop_oneof![
        Just(QueueState::Scheduled),
        Just(QueueState::Open),
        Just(QueueState::Paused),
        Just(QueueState::Closed),
    ]
}

fn queue_stats() -> impl Strategy<Value = QueueStats> {
    (
        uuid(),
        queue_state(),
        (any::<u64>(), any::<u64>(), any::<u64>(), any::<u64>()),
        queue_settings(),
        (any::<u8>(), any::<u64>()),
    )
        .prop_map(
            |(
                event,
                state,
                (waiting, admitted_active, serving, last_number),
                settings,
                (challenge_difficulty, reserved_pending),
            )| {
                QueueStats {
                    event_id: EventId(event),
                    state,
                    waiting,
                    admitted_active,
                    serving,
                    last_number,
                    admit_per_sec: settings.admit_per_sec,
                    max_active: settings.max_active,
                    admission_ttl_s: settings.admission_ttl_s,
                    challenge_difficulty,
                    reserved_pending,
                }
            },
        )
}

fn queue_patch() -> impl Strategy<Value = QueuePatch> {
    (
        queue_settings_patch(),
        any::<Option<bool>>(),
        any::<Option<u8>>(),
    )
        .prop_map(|(q, paused, challenge_difficulty)| QueuePatch {
            admit_per_sec: q.admit_per_sec,
            max_active: q.max_active,
            admission_ttl_s: q.admission_ttl_s,
            paused,
            challenge_difficulty,
        })
}

fn error_code() -> impl Strategy<Value = ErrorCode> {
    proptest::sample::select(ErrorCode::ALL)
}

fn problem() -> impl Strategy<Value = Problem> {
    (error_code(), text(), vec((text(), text()), 0..4)).prop_map(|(code, detail, errors)| {
        if errors.is_empty() {
            Problem::new(code, detail)
        } else {
            Problem::validation(
                errors
                    .into_iter()
                    .map(|(field, message)| FieldError { field, message })
                    .collect(),
            )
        }
    })
}

/// Every field name of the contract, so arbitrary JSON objects reach past the first
/// missing-field check into the decoders of the values.
const FIELDS: &[&str] = &[
    "type",
    "token",
    "email",
    "password",
    "refresh_token",
    "quantity",
    "name",
    "venue",
    "starts_at",
    "sale_opens_at",
    "price_cents",
    "currency",
    "inventory",
    "remaining",
    "max_per_user",
    "queue",
    "admit_per_sec",
    "max_active",
    "admission_ttl_s",
    "paused",
    "payment_id",
    "order_id",
    "user_id",
    "amount_cents",
    "requested_at",
    "outcome",
    "reason",
    "processed_at",
    "event_id",
    "status",
    "sold_out_at",
    "jti",
    "consumed_at",
    "sub",
    "role",
    "iss",
    "aud",
    "iat",
    "exp",
    "evt",
    "code",
    "detail",
    "title",
    "errors",
    "field",
    "message",
    "id",
    "state",
    "number",
    "ahead",
    "eta_s",
    "gate_token",
    "expires_at",
    "user",
    "admin",
    "auth",
    "ping",
];

fn key() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => proptest::sample::select(FIELDS).prop_map(str::to_owned),
        1 => any::<String>(),
    ]
}

/// Strings a decoder might take for something: names of variants, ids, instants, garbage.
fn json_string() -> impl Strategy<Value = String> {
    prop_oneof![
        proptest::sample::select(FIELDS).prop_map(str::to_owned),
        proptest::sample::select(LIKELY).prop_map(str::to_owned),
        uuid().prop_map(|u| u.to_string()),
        instant().prop_map(|t| t
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default()),
        any::<String>(),
    ]
}

/// Values of the contract and near misses.
const LIKELY: &[&str] = &[
    "on_sale",
    "sold_out",
    "scheduled",
    "ended",
    "approved",
    "declined",
    "pending_payment",
    "SOLD_OUT",
    "VALIDATION",
    "EUR",
    "2026-12-31T20:00:00Z",
    "2026-12-31T20:00:00.123456789+01:00",
    "2026-02-30T20:00:00Z",
    "9999-12-31T23:59:60Z",
    "0000-01-01T00:00:00-23:59",
];

fn json_leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<u32>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        json_string().prop_map(Value::String),
    ]
}

/// Arbitrary JSON, with the contract's field names and likely strings.
fn json() -> impl Strategy<Value = Value> {
    json_leaf().prop_recursive(4, 48, 8, |inner| {
        prop_oneof![
            vec(inner.clone(), 0..6).prop_map(Value::Array),
            btree_map(key(), inner, 0..10).prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// A valid body broken in one place: one field removed or given another value.
fn broken(valid: Value, which: usize, replacement: Option<Value>) -> (Value, String) {
    let Value::Object(mut map) = valid else {
        return (valid, String::new());
    };
    let Some(field) = map.keys().nth(which % map.len().max(1)).cloned() else {
        return (Value::Object(map), String::new());
    };
    match replacement {
        Some(value) => {
            map.insert(field.clone(), value);
        }
        None => {
            map.remove(&field);
        }
    }
    (Value::Object(map), field)
}

/// Bytes a peer might send: anything, JSON text, or valid JSON cut short or with a byte
/// changed.
fn bytes() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        vec(any::<u8>(), 0..256),
        json().prop_map(|v| serde_json::to_vec(&v).unwrap_or_default()),
        (json(), any::<prop::sample::Index>()).prop_map(|(v, cut)| {
            let mut b = serde_json::to_vec(&v).unwrap_or_default();
            b.truncate(cut.index(b.len() + 1));
            b
        }),
        (json(), any::<prop::sample::Index>(), any::<u8>()).prop_map(|(v, at, byte)| {
            let mut b = serde_json::to_vec(&v).unwrap_or_default();
            if !b.is_empty() {
                let i = at.index(b.len());
                b[i] = byte;
            }
            b
        }),
    ]
}

// ---------------------------------------------------------------------------------------------
// Checks

fn json_error_is_typed(error: &serde_json::Error) -> Result<(), TestCaseError> {
    prop_assert!(
        matches!(
            error.classify(),
            Category::Syntax | Category::Data | Category::Eof
        ),
        "unexpected error category {:?}: {error}",
        error.classify()
    );
    Ok(())
}

/// `value` encodes and decodes back to itself.
fn round_trips<T>(value: &T) -> Result<(), TestCaseError>
where
    T: Serialize + DeserializeOwned + PartialEq + Debug,
{
    let text = serde_json::to_string(value).map_err(|e| TestCaseError::fail(e.to_string()))?;
    let back: T = serde_json::from_str(&text)
        .map_err(|e| TestCaseError::fail(format!("{e} decoding {text}")))?;
    prop_assert_eq!(&back, value, "through {}", text);
    Ok(())
}

/// `bytes` decode to a `T` that round-trips, or are refused with a JSON error (never a
/// panic). `true` when accepted.
fn decodes_or_refuses<T>(bytes: &[u8]) -> Result<bool, TestCaseError>
where
    T: Serialize + DeserializeOwned + PartialEq + Debug,
{
    match serde_json::from_slice::<T>(bytes) {
        Ok(value) => {
            round_trips(&value)?;
            Ok(true)
        }
        Err(error) => {
            json_error_is_typed(&error)?;
            Ok(false)
        }
    }
}

/// Every body type a peer sends or receives, fed the same bytes.
fn every_body_type(bytes: &[u8]) -> Result<(), TestCaseError> {
    decodes_or_refuses::<RegisterRequest>(bytes)?;
    decodes_or_refuses::<LoginRequest>(bytes)?;
    decodes_or_refuses::<RefreshRequest>(bytes)?;
    decodes_or_refuses::<RegisterResponse>(bytes)?;
    decodes_or_refuses::<TokenResponse>(bytes)?;
    decodes_or_refuses::<AccessClaims>(bytes)?;
    decodes_or_refuses::<GateClaims>(bytes)?;
    decodes_or_refuses::<NewEvent>(bytes)?;
    decodes_or_refuses::<EventPatch>(bytes)?;
    decodes_or_refuses::<Event>(bytes)?;
    decodes_or_refuses::<EventStats>(bytes)?;
    decodes_or_refuses::<OrderCounts>(bytes)?;
    decodes_or_refuses::<CreateOrder>(bytes)?;
    decodes_or_refuses::<Order>(bytes)?;
    decodes_or_refuses::<Ticket>(bytes)?;
    decodes_or_refuses::<QueueStats>(bytes)?;
    decodes_or_refuses::<QueuePatch>(bytes)?;
    decodes_or_refuses::<ClientFrame>(bytes)?;
    decodes_or_refuses::<ServerFrame>(bytes)?;
    decodes_or_refuses::<Problem>(bytes)?;
    decodes_or_refuses::<ErrorCode>(bytes)?;
    decodes_or_refuses::<Vec<Event>>(bytes)?;
    decodes_or_refuses::<Vec<Order>>(bytes)?;
    decodes_or_refuses::<EventId>(bytes)?;
    Ok(())
}

/// `decode::<M>` gives a value that round-trips, or a body error naming `M`.
fn message_decodes_or_refuses<M>(bytes: &[u8]) -> Result<(), TestCaseError>
where
    M: Message + PartialEq + Debug,
{
    match decode::<M>(bytes) {
        Ok(message) => round_trips(&message),
        Err(DecodeError::Body { type_name, source }) => {
            prop_assert_eq!(type_name, M::TYPE);
            json_error_is_typed(&source)
        }
        Err(other) => Err(TestCaseError::fail(format!(
            "decode::<{}> refused with {other:?}",
            M::TYPE
        ))),
    }
}

const EVENT_TYPES: [&str; 4] = [
    EventCreated::TYPE,
    EventUpdated::TYPE,
    EventSoldOut::TYPE,
    GateConsumed::TYPE,
];

fn type_of(message: &EventsMessage) -> &'static str {
    match message {
        EventsMessage::Created(_) => EventCreated::TYPE,
        EventsMessage::Updated(_) => EventUpdated::TYPE,
        EventsMessage::SoldOut(_) => EventSoldOut::TYPE,
        EventsMessage::GateConsumed(_) => GateConsumed::TYPE,
    }
}

fn body_of(message: &EventsMessage) -> Vec<u8> {
    match message {
        EventsMessage::Created(m) => serde_json::to_vec(m),
        EventsMessage::Updated(m) => serde_json::to_vec(m),
        EventsMessage::SoldOut(m) => serde_json::to_vec(m),
        EventsMessage::GateConsumed(m) => serde_json::to_vec(m),
    }
    .unwrap_or_default()
}

// ---------------------------------------------------------------------------------------------
// Properties

proptest! {
    #![proptest_config(config())]

    /// Every body and frame type: arbitrary bytes are decoded to a value that round-trips or
    /// refused with a syntax, data or end-of-input error.
    #[test]
    fn any_bytes_into_any_body_decode_or_are_refused(bytes in bytes()) {
        every_body_type(&bytes)?;
    }

    /// Arbitrary JSON documents (with the contract's field names) likewise.
    #[test]
    fn any_json_into_any_body_decodes_or_is_refused(value in json()) {
        let bytes = serde_json::to_vec(&value).map_err(|e| TestCaseError::fail(e.to_string()))?;
        every_body_type(&bytes)?;
    }

    /// The ids in paths and bodies: a string parses iff it is a UUID, the parsed id prints in
    /// canonical form and parses back to itself, and any generated id round-trips through text
    /// and JSON.
    #[test]
    fn ids_parse_only_uuids_and_round_trip(s in any::<String>(), id in uuid(), flip in any::<prop::sample::Index>(), junk in "[^0-9a-fA-F-]") {
        match EventId::from_str(&s) {
            Ok(parsed) => {
                prop_assert_eq!(Uuid::parse_str(&s).ok(), Some(parsed.0));
                prop_assert_eq!(parsed.to_string().parse::<EventId>().ok(), Some(parsed));
            }
            Err(_) => prop_assert!(Uuid::parse_str(&s).is_err()),
        }
        let text = id.to_string();
        prop_assert_eq!(text.parse::<OrderId>().ok(), Some(OrderId(id)));
        prop_assert_eq!(text.to_uppercase().parse::<UserId>().ok(), Some(UserId(id)));
        prop_assert_eq!(id.simple().to_string().parse::<PaymentId>().ok(), Some(PaymentId(id)));
        round_trips(&EventId(id))?;
        round_trips(&OrderId(id))?;
        // One character of a valid id replaced by a non-hex one: refused.
        let mut chars: Vec<char> = text.chars().collect();
        let i = flip.index(chars.len());
        let replacement = junk.chars().next().unwrap_or('x');
        if chars[i] != replacement {
            chars[i] = replacement;
            let mutated: String = chars.into_iter().collect();
            prop_assert!(mutated.parse::<EventId>().is_err(), "{} accepted", mutated);
        }
        // A JSON id must be a string.
        let as_number = serde_json::json!(id.as_u128() as u64);
        let error = serde_json::from_value::<EventId>(as_number).err();
        prop_assert_eq!(error.map(|e| e.classify()), Some(Category::Data));
    }

    /// Client frames: exactly `auth` (with a string token) and `ping` are accepted; any other
    /// `type` is a data error; valid frames round-trip.
    #[test]
    fn client_frames_accept_only_auth_and_ping(frame in client_frame(), kind in json_string(), token in json()) {
        round_trips(&frame)?;
        let document = serde_json::json!({ "type": kind, "token": token });
        match serde_json::from_value::<ClientFrame>(document) {
            Ok(ClientFrame::Ping) => prop_assert_eq!(kind.as_str(), "ping"),
            Ok(ClientFrame::Auth { token: accepted }) => {
                prop_assert_eq!(kind.as_str(), "auth");
                prop_assert_eq!(Some(accepted.as_str()), token.as_str());
            }
            Err(error) => {
                prop_assert_eq!(error.classify(), Category::Data);
                prop_assert!(!(kind == "ping" || (kind == "auth" && token.is_string())), "{}", error);
            }
        }
    }

    /// Server frames, which the client decodes, round-trip.
    #[test]
    fn server_frames_round_trip(frame in server_frame()) {
        round_trips(&frame)?;
    }

    /// Each AMQP message type: arbitrary bytes decode to a message that round-trips or are a
    /// `DecodeError::Body` naming the type.
    #[test]
    fn amqp_bodies_decode_or_are_refused_naming_their_type(bytes in bytes()) {
        message_decodes_or_refuses::<PaymentRequested>(&bytes)?;
        message_decodes_or_refuses::<PaymentCompleted>(&bytes)?;
        message_decodes_or_refuses::<EventCreated>(&bytes)?;
        message_decodes_or_refuses::<EventUpdated>(&bytes)?;
        message_decodes_or_refuses::<EventSoldOut>(&bytes)?;
        message_decodes_or_refuses::<GateConsumed>(&bytes)?;
    }

    /// `flash.events`: a type header that is not one of the four is `UnknownType` carrying the
    /// header, whatever the body; a known one with bytes that are not its body is `Body` naming
    /// it.
    #[test]
    fn events_messages_are_decoded_by_their_type_header(header in prop_oneof![json_string(), proptest::sample::select(EVENT_TYPES.to_vec()).prop_map(str::to_owned)], bytes in bytes()) {
        match EventsMessage::decode(&header, &bytes) {
            Ok(message) => {
                prop_assert_eq!(type_of(&message), header.as_str());
                let again = EventsMessage::decode(&header, &body_of(&message));
                prop_assert_eq!(again.ok(), Some(message));
            }
            Err(DecodeError::UnknownType(named)) => {
                prop_assert!(!EVENT_TYPES.contains(&header.as_str()));
                prop_assert_eq!(named, header);
            }
            Err(DecodeError::Body { type_name, source }) => {
                prop_assert!(EVENT_TYPES.contains(&header.as_str()));
                prop_assert_eq!(type_name, header.as_str());
                json_error_is_typed(&source)?;
            }
        }
    }

    /// Every message the services publish decodes back to itself, under its own type header
    /// only.
    #[test]
    fn amqp_messages_round_trip(message in events_message(), requested in payment_requested(), completed in payment_completed()) {
        let body = body_of(&message);
        let kind = type_of(&message);
        prop_assert_eq!(EventsMessage::decode(kind, &body).ok(), Some(message.clone()));
        for other in EVENT_TYPES.iter().filter(|t| **t != kind) {
            if let Ok(decoded) = EventsMessage::decode(other, &body) {
                prop_assert_eq!(type_of(&decoded), *other);
                // Only `event.created` and `event.updated` share a shape (the same event, with
                // queue settings).
                prop_assert!(
                    matches!(
                        (&message, &decoded),
                        (EventsMessage::Created(_), EventsMessage::Updated(_))
                            | (EventsMessage::Updated(EventUpdated { queue: Some(_), .. }), EventsMessage::Created(_))
                    ),
                    "{} body taken for {}", kind, other
                );
            }
        }
        let bytes = serde_json::to_vec(&requested).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(decode::<PaymentRequested>(&bytes).ok(), Some(requested));
        let bytes = serde_json::to_vec(&completed).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(decode::<PaymentCompleted>(&bytes).ok(), Some(completed));
    }

    /// A valid message with one required field removed, or any field replaced by a value of
    /// another kind, is refused as a body error (an optional field, such as `event.sold_out`'s
    /// `reserved_pending` or `gate.consumed`'s `remaining`, may be left out).
    #[test]
    fn messages_missing_or_mistyped_fields_are_refused(requested in payment_requested(), sold_out in event_sold_out(), consumed in gate_consumed(), which in any::<usize>(), replacement in proptest::option::of(prop_oneof![Just(Value::Null), any::<bool>().prop_map(Value::Bool), Just(serde_json::json!([])), Just(serde_json::json!({}))])) {
        fn check<M: Message + Debug>(message: &M, which: usize, replacement: Option<Value>) -> Result<(), TestCaseError> {
            let valid = serde_json::to_value(message).map_err(|e| TestCaseError::fail(e.to_string()))?;
            let removed = replacement.is_none();
            let null = replacement == Some(Value::Null);
            let (body, field) = broken(valid, which, replacement);
            let bytes = serde_json::to_vec(&body).map_err(|e| TestCaseError::fail(e.to_string()))?;
            // `gate.consumed`'s `remaining` may also be null (unknown).
            if (removed && field == "reserved_pending") || ((removed || null) && field == "remaining") {
                prop_assert!(decode::<M>(&bytes).is_ok(), "{} without {:?} refused", M::TYPE, field);
                return Ok(());
            }
            match decode::<M>(&bytes) {
                Err(DecodeError::Body { type_name, source }) => {
                    prop_assert_eq!(type_name, M::TYPE);
                    prop_assert_eq!(source.classify(), Category::Data, "{}", source);
                }
                other => {
                    return Err(TestCaseError::fail(format!(
                        "{} without a valid {field:?} gave {:?}",
                        M::TYPE,
                        other.map(|_| ())
                    )));
                }
            }
            Ok(())
        }
        check(&requested, which, replacement.clone())?;
        check(&sold_out, which, replacement.clone())?;
        check(&consumed, which, replacement)?;
    }

    /// Request bodies a buyer or an admin sends round-trip; their credentials never show in
    /// `Debug`.
    #[test]
    fn request_bodies_round_trip(new in new_event(), patch in event_patch(), queue in queue_patch(), quantity in any::<u32>(), email in "[a-z]{1,10}@[a-z]{1,10}\\.[a-z]{2,4}", password in "#[A-Za-z0-9]{16,40}#", refresh in "[A-Za-z0-9_-]{43}") {
        round_trips(&new)?;
        round_trips(&patch)?;
        round_trips(&queue)?;
        round_trips(&CreateOrder { quantity })?;
        let register = RegisterRequest { email: email.clone(), password: password.clone() };
        round_trips(&register)?;
        prop_assert!(!format!("{:?}", register).contains(&password), "password in Debug");
        let login = LoginRequest { email, password: password.clone() };
        round_trips(&login)?;
        prop_assert!(!format!("{:?}", login).contains(&password), "password in Debug");
        let request = RefreshRequest { refresh_token: refresh.clone() };
        round_trips(&request)?;
        prop_assert!(!format!("{:?}", request).contains(&refresh), "refresh token in Debug");
        let frame = ClientFrame::Auth { token: refresh.clone() };
        prop_assert!(!format!("{:?}", frame).contains(&refresh), "token in Debug");
    }

    /// A quantity that is not a `u32` (negative, too large, fractional, text) is a data error.
    #[test]
    fn order_quantities_outside_u32_are_refused(big in (u64::from(u32::MAX) + 1).., negative in i64::MIN..0, fraction in any::<f64>().prop_filter("not whole", |f| f.fract() != 0.0), s in any::<String>()) {
        for value in [serde_json::json!(big), serde_json::json!(negative), serde_json::json!(fraction), Value::String(s)] {
            let error = serde_json::from_value::<CreateOrder>(serde_json::json!({ "quantity": value })).err();
            prop_assert_eq!(error.map(|e| e.classify()), Some(Category::Data), "quantity {}", value);
        }
    }

    /// What the services answer round-trips: events, orders, tickets, stats, tokens, claims,
    /// problems.
    #[test]
    fn responses_and_claims_round_trip(event in event(), order in order(), ticket in ticket(), stats in queue_stats(), access in access_claims(), gate in gate_claims(), problem in problem(), tokens in (text(), text(), any::<u64>())) {
        round_trips(&event)?;
        round_trips(&order)?;
        round_trips(&ticket)?;
        round_trips(&stats)?;
        round_trips(&access)?;
        round_trips(&gate)?;
        round_trips(&problem)?;
        round_trips(&TokenResponse { access_token: tokens.0, refresh_token: tokens.1, token_type: "Bearer".into(), expires_in: tokens.2 })?;
        round_trips(&RegisterResponse { user_id: access.sub })?;
        round_trips(&EventStats { event_id: event.id, inventory: event.inventory, remaining: event.remaining, orders: OrderCounts { pending_payment: tokens.2, paid: 0, payment_failed: 1, expired: 2 } })?;
    }

    /// An error code decodes from exactly its wire name, and from nothing else.
    #[test]
    fn error_codes_decode_from_their_wire_names_only(s in prop_oneof![json_string(), error_code().prop_map(|c| c.as_str().to_owned()), error_code().prop_map(|c| c.as_str().to_lowercase())]) {
        match serde_json::from_value::<ErrorCode>(Value::String(s.clone())) {
            Ok(code) => prop_assert_eq!(code.as_str(), s.as_str()),
            Err(error) => {
                prop_assert_eq!(error.classify(), Category::Data);
                prop_assert!(ErrorCode::ALL.iter().all(|c| c.as_str() != s));
            }
        }
        let role = serde_json::from_value::<Role>(Value::String(s.clone()));
        prop_assert_eq!(role.is_ok(), s == "user" || s == "admin");
    }

    /// Redis keys: a prefix with a brace is refused naming it; with any other prefix every key
    /// of a queue carries the event's hash tag, and its channel names the event again. The
    /// subjects of limits (addresses, e-mails) cannot move a key's hash tag.
    #[test]
    fn redis_keys_keep_their_hash_tag_whatever_the_input(prefix in prop_oneof![any::<String>(), "[a-z:{}]{0,12}"], event in uuid(), subject in prop_oneof![any::<String>(), "[0-9a-f.:{}@]{0,24}"], limit in "[a-z-]{1,20}") {
        match RedisKeys::new(prefix.clone()) {
            Err(InvalidPrefix(named)) => {
                prop_assert!(prefix.contains(['{', '}']), "{:?} refused", prefix);
                prop_assert_eq!(named, prefix);
            }
            Ok(keys) => {
                prop_assert!(!prefix.contains(['{', '}']), "{:?} accepted", prefix);
                let id = EventId(event);
                let queue = keys.queue(id);
                let tag = id.to_string();
                for key in queue.all().into_iter().chain([queue.channel.as_str()]) {
                    prop_assert_eq!(hash_tag(key), tag.as_str());
                    prop_assert!(key.starts_with(&prefix));
                }
                prop_assert_eq!(event_of_channel(&queue.channel), Some(id));
                let clean = subject.replace(['{', '}'], "_");
                let limited = keys.limit(&limit, &subject);
                prop_assert_eq!(hash_tag(&limited), format!("{limit}:{clean}"));
                let known = keys.known_addresses(&subject);
                let expected = if clean.is_empty() { known.as_str() } else { clean.as_str() };
                prop_assert_eq!(hash_tag(&known), expected);
            }
        }
    }

    /// Any channel name (what a pub/sub message claims to be about): no panic; a tag is a
    /// non-empty brace-free slice of the key; an event is found only in a UUID tag.
    #[test]
    fn hash_tags_and_channels_of_any_text(channel in prop_oneof![any::<String>(), "[{}a-f0-9:q-]{0,50}"]) {
        let tag = hash_tag(&channel);
        if tag != channel {
            prop_assert!(!tag.is_empty());
            prop_assert!(!tag.contains('}'), "tag {:?}", tag);
            prop_assert!(channel.contains(&format!("{{{}}}", tag)), "tag {:?} of {:?}", tag, channel);
        }
        match event_of_channel(&channel) {
            Some(event) => prop_assert_eq!(Uuid::parse_str(tag).ok(), Some(event.0)),
            None => prop_assert!(tag == channel || Uuid::parse_str(tag).is_err()),
        }
    }
}
