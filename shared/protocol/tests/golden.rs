//! Golden JSON: every wire shape of the contract, written by hand from docs/contract.md, must be
//! exactly what the types produce and must parse back into the same value.

use std::fmt::Debug;
use std::path::Path;

use flash_protocol::auth::{
    LoginRequest, RefreshRequest, RegisterRequest, RegisterResponse, TokenResponse,
};
use flash_protocol::claims::{AccessClaims, GateClaims, Role};
use flash_protocol::error::FieldError;
use flash_protocol::event::{
    Event, EventPatch, EventStats, EventStatus, NewEvent, OrderCounts, QueueSettings,
    QueueSettingsPatch,
};
use flash_protocol::messages::{
    EventCreated, EventQueueInfo, EventSoldOut, EventUpdated, EventsMessage, GateConsumed, Message,
    PaymentCompleted, PaymentOutcome, PaymentRefundRequested, PaymentRefunded, PaymentRequested,
    PaymentResult, RefundOutcome,
};
use flash_protocol::order::{CreateOrder, Order, OrderStatus};
use flash_protocol::queue::{QueuePatch, QueueState, QueueStats, Ticket, TicketState};
use flash_protocol::ws::{ClientFrame, ClosedReason, ServerFrame};
use flash_protocol::{ErrorCode, EventId, OrderId, PaymentId, Problem, UserId};
use serde::Serialize;
use serde::de::DeserializeOwned;
use time::OffsetDateTime;
use time::macros::datetime;
use uuid::Uuid;

const EVENT: &str = "0190b3a8-6c1e-7d2a-9f00-00000000e001";
const USER: &str = "0190b3a8-6c1e-7d2a-9f00-00000000a001";
const ORDER: &str = "0190b3a8-6c1e-7d2a-9f00-00000000b001";
const PAYMENT: &str = "0190b3a8-6c1e-7d2a-9f00-00000000c001";
const JTI: &str = "0190b3a8-6c1e-7d2a-9f00-00000000d001";

fn uuid(s: &str) -> Uuid {
    Uuid::parse_str(s).expect("test uuid")
}

fn event_id() -> EventId {
    EventId(uuid(EVENT))
}

fn user_id() -> UserId {
    UserId(uuid(USER))
}

fn order_id() -> OrderId {
    OrderId(uuid(ORDER))
}

/// Serialises `value` and compares it with `tests/golden/<name>.json`, then parses the file
/// and compares it with `value`.
fn golden<T>(name: &str, value: &T)
where
    T: Serialize + DeserializeOwned + PartialEq + Debug,
{
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(format!("{name}.json"));
    let text = std::fs::read_to_string(&path).expect("golden file");
    let expected: serde_json::Value = serde_json::from_str(&text).expect("golden JSON");
    let actual = serde_json::to_value(value).expect("serialise");
    assert_eq!(
        actual, expected,
        "{name}: serialised form differs from golden"
    );
    let parsed: T = serde_json::from_value(expected).expect("golden parses");
    assert_eq!(&parsed, value, "{name}: golden parses to a different value");
}

const SALE_OPENS: OffsetDateTime = datetime!(2026-12-01 10:00:00 UTC);
const STARTS: OffsetDateTime = datetime!(2026-12-31 20:00:00 UTC);
const QUEUE: QueueSettings = QueueSettings {
    admit_per_sec: 50,
    max_active: 500,
    admission_ttl_s: 300,
    challenge_difficulty: 0,
};

#[test]
fn events() {
    golden(
        "event",
        &Event {
            id: event_id(),
            name: "Midnight Orchestra".into(),
            venue: "Hall A".into(),
            starts_at: STARTS,
            sale_opens_at: SALE_OPENS,
            price_cents: 4500,
            currency: "EUR".into(),
            inventory: 2000,
            remaining: 1500,
            max_per_user: 4,
            status: EventStatus::OnSale,
            reserved_pending: 0,
            returns_until: None,
        },
    );
    golden(
        "new_event",
        &NewEvent {
            name: "Midnight Orchestra".into(),
            venue: "Hall A".into(),
            starts_at: STARTS,
            sale_opens_at: SALE_OPENS,
            price_cents: 4500,
            currency: "EUR".into(),
            inventory: 2000,
            max_per_user: 4,
            queue: QUEUE,
            returns_until: Some(datetime!(2026-12-31 19:00:00 UTC)),
        },
    );
    golden(
        "event_patch",
        &EventPatch {
            name: Some("Midnight Orchestra II".into()),
            queue: Some(QueueSettingsPatch {
                max_active: Some(800),
                ..QueueSettingsPatch::default()
            }),
            ..EventPatch::default()
        },
    );
    golden(
        "event_stats",
        &EventStats {
            event_id: event_id(),
            inventory: 2000,
            remaining: 1500,
            orders: OrderCounts {
                pending_payment: 40,
                paid: 210,
                payment_failed: 12,
                expired: 3,
            },
        },
    );
}

#[test]
fn event_status_wire_names() {
    let names: Vec<String> = [
        EventStatus::Scheduled,
        EventStatus::OnSale,
        EventStatus::SoldOut,
        EventStatus::Ended,
    ]
    .iter()
    .map(|s| {
        serde_json::to_value(s)
            .expect("status")
            .as_str()
            .expect("str")
            .to_owned()
    })
    .collect();
    assert_eq!(names, ["scheduled", "on_sale", "sold_out", "ended"]);
}

#[test]
fn orders() {
    let at = datetime!(2026-12-01 10:00:05 UTC);
    golden(
        "order",
        &Order {
            id: order_id(),
            event_id: event_id(),
            quantity: 2,
            amount_cents: 9000,
            currency: "EUR".into(),
            status: OrderStatus::PendingPayment,
            created_at: at,
            updated_at: at,
            refund: None,
        },
    );
    golden(
        "order_refunded",
        &Order {
            id: order_id(),
            event_id: event_id(),
            quantity: 2,
            amount_cents: 9000,
            currency: "EUR".into(),
            status: OrderStatus::Expired,
            created_at: at,
            updated_at: datetime!(2026-12-01 10:10:05 UTC),
            refund: Some(flash_protocol::order::Refund {
                status: flash_protocol::order::RefundStatus::Refunded,
                at: datetime!(2026-12-01 10:10:07 UTC),
            }),
        },
    );
    for status in [
        flash_protocol::order::RefundStatus::Pending,
        flash_protocol::order::RefundStatus::Refunded,
        flash_protocol::order::RefundStatus::Failed,
    ] {
        assert_eq!(
            serde_json::to_value(status).expect("serialise"),
            serde_json::json!(status.as_str())
        );
        assert_eq!(
            flash_protocol::order::RefundStatus::parse(status.as_str()),
            Some(status)
        );
    }
    assert_eq!(flash_protocol::order::RefundStatus::parse("done"), None);
    // The outcomes' names (the pay worker's labels) are their names on the wire.
    for outcome in flash_protocol::messages::PaymentOutcome::ALL {
        assert_eq!(
            serde_json::to_value(outcome).expect("serialise"),
            serde_json::json!(outcome.as_str())
        );
    }
    for outcome in flash_protocol::messages::RefundOutcome::ALL {
        assert_eq!(
            serde_json::to_value(outcome).expect("serialise"),
            serde_json::json!(outcome.as_str())
        );
    }
    golden("create_order", &CreateOrder { quantity: 2 });
    let names: Vec<String> = [
        OrderStatus::PendingPayment,
        OrderStatus::Paid,
        OrderStatus::PaymentFailed,
        OrderStatus::Expired,
    ]
    .iter()
    .map(|s| {
        serde_json::to_value(s)
            .expect("status")
            .as_str()
            .expect("str")
            .to_owned()
    })
    .collect();
    assert_eq!(
        names,
        ["pending_payment", "paid", "payment_failed", "expired"]
    );
    assert!(!OrderStatus::PendingPayment.is_final());
    assert!(OrderStatus::Expired.is_final());
}

#[test]
fn auth_bodies() {
    let creds = (
        "ada@example.com".to_owned(),
        "correct horse battery".to_owned(),
    );
    golden(
        "register_request",
        &RegisterRequest {
            email: creds.0.clone(),
            password: creds.1.clone(),
        },
    );
    golden(
        "login_request",
        &LoginRequest {
            email: creds.0,
            password: creds.1,
        },
    );
    golden(
        "register_response",
        &RegisterResponse { user_id: user_id() },
    );
    golden(
        "refresh_request",
        &RefreshRequest {
            refresh_token: "rt.opaque".into(),
        },
    );
    golden(
        "token_response",
        &TokenResponse {
            access_token: "a.b.c".into(),
            refresh_token: "rt.opaque".into(),
            token_type: "Bearer".into(),
            expires_in: 900,
        },
    );
}

#[test]
fn credentials_never_appear_in_debug_output() {
    let login = LoginRequest {
        email: "ada@example.com".into(),
        password: "hunter2-secret".into(),
    };
    let tokens = TokenResponse {
        access_token: "access-secret".into(),
        refresh_token: "refresh-secret".into(),
        token_type: "Bearer".into(),
        expires_in: 1,
    };
    let auth = ClientFrame::Auth {
        token: "frame-secret".into(),
    };
    let printed = format!("{login:?} {tokens:?} {auth:?}");
    for secret in [
        "hunter2-secret",
        "access-secret",
        "refresh-secret",
        "frame-secret",
    ] {
        assert!(!printed.contains(secret), "{secret} leaked: {printed}");
    }
    assert!(printed.contains("ada@example.com"));
}

#[test]
fn queue_bodies() {
    golden(
        "ticket_waiting",
        &Ticket {
            event_id: event_id(),
            number: Some(1042),
            state: TicketState::Waiting,
            ahead: Some(41),
            eta_s: Some(1),
            gate_token: None,
            gate_expires_at: None,
            pseudonym: None,
            reserved_pending: 0,
        },
    );
    golden(
        "ticket_pre_queue",
        &Ticket {
            event_id: event_id(),
            number: None,
            state: TicketState::PreQueue,
            ahead: None,
            eta_s: None,
            gate_token: None,
            gate_expires_at: None,
            pseudonym: Some(
                "f81a8046788728fd1a006ff13b75684d34e631210f1edc7920a96da3f1afce6f".into(),
            ),
            reserved_pending: 0,
        },
    );
    golden(
        "ticket_admitted",
        &Ticket {
            event_id: event_id(),
            number: Some(7),
            state: TicketState::Admitted,
            ahead: Some(0),
            eta_s: Some(0),
            gate_token: Some("g.h.i".into()),
            gate_expires_at: Some(datetime!(2026-12-01 10:05:00 UTC)),
            pseudonym: None,
            reserved_pending: 0,
        },
    );
    let seed = flash_protocol::draw::Seed::from_bytes([7; 32]);
    let sealed = flash_protocol::draw::Fairness {
        event_id: event_id(),
        algorithm: flash_protocol::draw::ALGORITHM.into(),
        commitment: Some(seed.commitment()),
        seed: None,
        opened_at: None,
        participants_count: None,
        participants_sha256: None,
        participants_url: None,
    };
    golden("fairness_sealed", &sealed);
    golden(
        "fairness_revealed",
        &flash_protocol::draw::Fairness {
            seed: Some(seed.to_hex()),
            opened_at: Some(SALE_OPENS),
            participants_count: Some(2),
            participants_sha256: Some(
                "2b1d55c2d3a40e6a4c65f6c1d0b93d2b5b7b6a2f1e9e4d1a1c3b5d7f9e1a3c5d".into(),
            ),
            participants_url: Some(flash_protocol::draw::participants_path(event_id())),
            ..sealed
        },
    );
    golden(
        "queue_stats",
        &QueueStats {
            event_id: event_id(),
            state: QueueState::Open,
            waiting: 10_000,
            admitted_active: 480,
            serving: 520,
            last_number: 10_520,
            admit_per_sec: 50,
            max_active: 500,
            admission_ttl_s: 300,
            challenge_difficulty: 18,
            reserved_pending: 0,
        },
    );
    golden(
        "queue_patch",
        &QueuePatch {
            admit_per_sec: Some(100),
            paused: Some(true),
            challenge_difficulty: Some(20),
            ..QueuePatch::default()
        },
    );
    golden(
        "challenge",
        &flash_protocol::challenge::Challenge {
            challenge: "eyJlIjoiMDE5MGIzYTgifQ.c2lnbmF0dXJl".into(),
            difficulty: 18,
            expires_at: datetime!(2026-12-01 10:02:00 UTC),
        },
    );
    golden(
        "join_proof",
        &flash_protocol::challenge::JoinProof {
            challenge: "eyJlIjoiMDE5MGIzYTgifQ.c2lnbmF0dXJl".into(),
            nonce: "184467".into(),
        },
    );
}

#[test]
fn websocket_frames() {
    golden(
        "ws_client_auth",
        &ClientFrame::Auth {
            token: "a.b.c".into(),
        },
    );
    golden("ws_client_ping", &ClientFrame::Ping);
    golden(
        "ws_position",
        &ServerFrame::Position {
            state: TicketState::Waiting,
            number: Some(1042),
            ahead: Some(41),
            eta_s: Some(1),
            reserved_pending: 0,
        },
    );
    golden(
        "ws_admitted",
        &ServerFrame::Admitted {
            gate_token: "g.h.i".into(),
            expires_at: datetime!(2026-12-01 10:05:00 UTC),
        },
    );
    golden(
        "ws_closed",
        &ServerFrame::Closed {
            reason: ClosedReason::SoldOut,
        },
    );
    golden("ws_pong", &ServerFrame::Pong);
}

#[test]
fn unknown_or_malformed_client_frames_are_rejected() {
    for bad in [
        r#"{"type":"subscribe"}"#,
        r#"{"type":"auth"}"#,
        r#"{"token":"x"}"#,
        r#"[1,2]"#,
        "not json",
    ] {
        assert!(
            serde_json::from_str::<ClientFrame>(bad).is_err(),
            "{bad} accepted"
        );
    }
}

#[test]
fn token_claims() {
    golden(
        "access_claims",
        &AccessClaims {
            sub: user_id(),
            role: Role::Admin,
            iss: flash_protocol::claims::ACCESS_ISSUER.into(),
            aud: flash_protocol::claims::ACCESS_AUDIENCE.into(),
            iat: 1_764_583_200,
            exp: 1_764_584_100,
        },
    );
    golden(
        "gate_claims",
        &GateClaims {
            sub: user_id(),
            evt: event_id(),
            jti: uuid(JTI),
            iss: flash_protocol::claims::GATE_ISSUER.into(),
            aud: flash_protocol::claims::GATE_AUDIENCE.into(),
            iat: 1_764_583_200,
            exp: 1_764_583_500,
        },
    );
}

#[test]
fn amqp_messages() {
    golden(
        "payment_requested",
        &PaymentRequested {
            payment_id: PaymentId(uuid(PAYMENT)),
            order_id: order_id(),
            user_id: user_id(),
            amount_cents: 9000,
            currency: "EUR".into(),
            requested_at: datetime!(2026-12-01 10:00:05 UTC),
        },
    );
    golden(
        "payment_completed",
        &PaymentCompleted {
            payment_id: PaymentId(uuid(PAYMENT)),
            order_id: order_id(),
            outcome: PaymentOutcome::Declined,
            reason: Some("insufficient_funds".into()),
            processed_at: datetime!(2026-12-01 10:00:06 UTC),
        },
    );
    golden(
        "payment_refund_requested",
        &PaymentRefundRequested {
            payment_id: PaymentId(uuid(PAYMENT)),
            order_id: order_id(),
            amount_cents: 9000,
            currency: "EUR".into(),
            requested_at: datetime!(2026-12-01 10:10:06 UTC),
        },
    );
    golden(
        "payment_refunded",
        &PaymentRefunded {
            payment_id: PaymentId(uuid(PAYMENT)),
            order_id: order_id(),
            outcome: RefundOutcome::Refunded,
            reason: None,
            processed_at: datetime!(2026-12-01 10:10:07 UTC),
        },
    );
    let body = serde_json::to_vec(&PaymentRefunded {
        payment_id: PaymentId(uuid(PAYMENT)),
        order_id: order_id(),
        outcome: RefundOutcome::Failed,
        reason: Some("not_captured".into()),
        processed_at: datetime!(2026-12-01 10:10:07 UTC),
    })
    .expect("encode");
    assert!(matches!(
        PaymentResult::decode(PaymentRefunded::TYPE, &body),
        Ok(PaymentResult::Refunded(PaymentRefunded {
            outcome: RefundOutcome::Failed,
            ..
        }))
    ));
    assert!(PaymentResult::decode(PaymentCompleted::TYPE, &body).is_err());
    assert!(PaymentResult::decode("payment.requested", &body).is_err());
    let info = EventQueueInfo {
        event_id: event_id(),
        name: "Midnight Orchestra".into(),
        sale_opens_at: SALE_OPENS,
        starts_at: STARTS,
        status: EventStatus::Scheduled,
    };
    let created = EventCreated {
        event: info.clone(),
        queue: QUEUE,
    };
    golden("event_created", &created);
    // An update carries queue settings only when the admin's request set them.
    golden(
        "event_updated",
        &EventUpdated {
            event: EventQueueInfo {
                status: EventStatus::OnSale,
                ..info.clone()
            },
            queue: None,
            remaining: None,
        },
    );
    golden(
        "event_updated_queue",
        &EventUpdated {
            event: info,
            queue: Some(QUEUE),
            remaining: None,
        },
    );
    golden(
        "event_sold_out",
        &EventSoldOut {
            event_id: event_id(),
            sold_out_at: datetime!(2026-12-01 10:03:00 UTC),
            reserved_pending: 12,
        },
    );
    golden(
        "gate_consumed",
        &GateConsumed {
            event_id: event_id(),
            user_id: user_id(),
            jti: uuid(JTI),
            order_id: order_id(),
            consumed_at: datetime!(2026-12-01 10:00:05 UTC),
            remaining: Some(0),
        },
    );

    // The gateway decodes flash.events by the `type` header.
    let body = serde_json::to_vec(&created).expect("body");
    assert_eq!(
        EventsMessage::decode(EventCreated::TYPE, &body).expect("decodes"),
        EventsMessage::Created(created)
    );
    assert!(EventsMessage::decode("event.deleted", &body).is_err());
    assert!(EventsMessage::decode(GateConsumed::TYPE, &body).is_err());
    assert!(EventsMessage::decode(EventSoldOut::TYPE, b"\xff\xfe").is_err());
}

#[test]
fn messages_carry_their_routing() {
    use flash_protocol::messages::{Exchange, Names, Queue};
    assert_eq!(PaymentRequested::EXCHANGE.base_name(), "flash.payments");
    assert_eq!(PaymentRequested::ROUTING_KEY, "payment.requested");
    assert_eq!(PaymentCompleted::ROUTING_KEY, "payment.completed");
    assert_eq!(EventCreated::EXCHANGE, Exchange::Events);
    assert_eq!(EventSoldOut::ROUTING_KEY, "event.sold_out");
    assert_eq!(GateConsumed::ROUTING_KEY, "gate.consumed");
    assert_eq!(
        Queue::PayRequests.bindings(),
        (Exchange::Payments, &["payment.requested"][..])
    );
    assert_eq!(
        Queue::receiving(Exchange::Payments, "payment.refunded"),
        Some(Queue::ApiPaymentResults)
    );
    assert_eq!(
        Queue::receiving(Exchange::Payments, "payment.refund_requested"),
        Some(Queue::PayRefunds)
    );
    assert_eq!(
        Queue::receiving(Exchange::Events, "gate.consumed"),
        Some(Queue::GatewayEvents)
    );
    assert_eq!(
        Queue::receiving(Exchange::Payments, "payment.nothing"),
        None
    );
    assert_eq!(
        Queue::PayRefundsRetry.retries_to(),
        Some("payment.refund_requested")
    );
    assert_eq!(Queue::PayRefunds.retries_to(), None);
    assert_eq!(Queue::ApiPaymentResults.base_name(), "api.payment-results");
    assert_eq!(Queue::PayDead.base_name(), "pay.requests.dead");
    let names = Names::new("t1.");
    assert_eq!(names.exchange(Exchange::Events), "t1.flash.events");
    assert_eq!(names.queue(Queue::PayRequests), "t1.pay.requests");
    assert_eq!(Names::default().queue(Queue::PayRequests), "pay.requests");
}

#[test]
fn problems() {
    golden(
        "problem_sold_out",
        &Problem::new(ErrorCode::SoldOut, "Only 1 ticket remains"),
    );
    golden(
        "problem_challenge_required",
        &Problem::new(
            ErrorCode::ChallengeRequired,
            "This queue asks newcomers to solve a challenge",
        ),
    );
    golden(
        "problem_challenge_failed",
        &Problem::new(
            ErrorCode::ChallengeFailed,
            "The nonce does not solve the challenge",
        ),
    );
    golden(
        "problem_validation",
        &Problem::validation(vec![FieldError {
            field: "quantity".into(),
            message: "must be at least 1".into(),
        }]),
    );
}

#[test]
fn every_contract_error_code_exists_with_its_status() {
    let expected: &[(&str, u16)] = &[
        ("UNAUTHENTICATED", 401),
        ("FORBIDDEN", 403),
        ("VALIDATION", 422),
        ("BAD_REQUEST", 400),
        ("EMAIL_TAKEN", 409),
        ("INVALID_CREDENTIALS", 401),
        ("EVENT_NOT_FOUND", 404),
        ("GATE_TOKEN_INVALID", 403),
        ("GATE_TOKEN_EXPIRED", 403),
        ("GATE_TOKEN_USED", 403),
        ("GATE_TOKEN_MISMATCH", 403),
        ("SOLD_OUT", 409),
        ("LIMIT_EXCEEDED", 409),
        ("IDEMPOTENCY_KEY_REUSED", 409),
        ("ORDER_NOT_FOUND", 404),
        ("QUEUE_CLOSED", 409),
        ("RATE_LIMITED", 429),
        ("NOT_IN_QUEUE", 404),
        ("CHALLENGE_REQUIRED", 428),
        ("CHALLENGE_FAILED", 403),
    ];
    for (wire, status) in expected {
        let code: ErrorCode =
            serde_json::from_value(serde_json::Value::String((*wire).into())).expect(wire);
        assert_eq!(code.as_str(), *wire);
        assert_eq!(code.status(), *status, "{wire}");
    }
    // The table is consistent with serde and every status is an error status.
    for code in ErrorCode::ALL {
        assert_eq!(
            serde_json::to_value(code).expect("code"),
            serde_json::Value::String(code.as_str().into())
        );
        assert!((400..600).contains(&code.status()), "{code}");
        assert!(!code.title().is_empty());
    }
}
