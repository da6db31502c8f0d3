//! Property tests of what the pay worker reads from a delivery of `pay.requests` (any
//! headers, any `type`, any body) and of the headers it writes when it retries or
//! dead-letters one: a request is taken exactly when it is a valid `payment.requested`, every
//! other delivery is poison with a typed reason, and what it re-publishes keeps the original
//! headers with the attempt and a reason short enough for one AMQP frame. A fixed number of
//! cases per property keeps `make test` bounded.

use flash_kit::amqp::{message_type, properties};
use flash_kit::testing::peer::{self, config, fail, mangled_json, short_string};
use flash_pay::worker::{
    MAX_REASON_BYTES, Poison, attempt_of, bounded_reason, request_of, with_headers,
};
use flash_protocol::messages::{
    ATTEMPTS_HEADER, DEAD_REASON_HEADER, DecodeError, Message as _, PaymentRequested, TYPE_HEADER,
};
use flash_protocol::{OrderId, PaymentId, UserId};
use lapin::BasicProperties;
use lapin::types::AMQPValue;
use proptest::prelude::*;
use time::OffsetDateTime;
use uuid::Uuid;

/// Cases per property.
const CASES: u32 = 512;

// ---------------------------------------------------------------------------------------------
// Strategies

/// Message types a payment request may carry: its own, another, a near miss.
const LIKELY_TYPES: &[&str] = &[
    PaymentRequested::TYPE,
    "payment.completed",
    "PAYMENT.REQUESTED",
];

/// A delivery's properties: any headers (often `type` and the attempts header), any `type`
/// property, any expiration.
fn delivery_properties() -> impl Strategy<Value = BasicProperties> {
    peer::delivery_properties(
        short_string(LIKELY_TYPES),
        &[TYPE_HEADER, ATTEMPTS_HEADER, DEAD_REASON_HEADER],
        5,
    )
}

fn currency() -> impl Strategy<Value = String> + Clone {
    prop_oneof![
        3 => Just("EUR".to_owned()),
        2 => "[A-Z]{3}",
        1 => "[A-Za-z]{0,5}",
        1 => any::<String>(),
    ]
}

fn payment_requested() -> impl Strategy<Value = PaymentRequested> + Clone {
    (
        any::<u128>(),
        any::<u128>(),
        any::<u128>(),
        prop_oneof![0_i64..1_000_000, any::<i64>()],
        currency(),
        0_i64..4_000_000_000,
    )
        .prop_map(
            |(payment, order, user, amount_cents, currency, at)| PaymentRequested {
                payment_id: PaymentId(Uuid::from_u128(payment)),
                order_id: OrderId(Uuid::from_u128(order)),
                user_id: UserId(Uuid::from_u128(user)),
                amount_cents,
                currency,
                requested_at: OffsetDateTime::from_unix_timestamp(at)
                    .unwrap_or(OffsetDateTime::UNIX_EPOCH),
            },
        )
}

/// Bodies: any bytes, a request (valid or not by its values), one with a byte changed or cut
/// short, or one with a field of the wrong type.
fn body() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        4 => mangled_json(payment_requested()),
        1 => (
            payment_requested(),
            proptest::sample::select(
                &["amount_cents", "currency", "payment_id", "requested_at"][..]
            ),
            prop_oneof![
                Just(serde_json::Value::Null),
                Just(serde_json::json!(1.5)),
                Just(serde_json::json!([])),
                "[ -~]{0,40}".prop_map(serde_json::Value::String)
            ]
        )
            .prop_map(|(m, field, value)| {
                let mut v = serde_json::to_value(&m).unwrap_or_default();
                v[field] = value;
                serde_json::to_vec(&v).unwrap_or_default()
            }),
    ]
}

fn valid_currency(currency: &str) -> bool {
    currency.len() == 3 && currency.bytes().all(|b| b.is_ascii_uppercase())
}

// ---------------------------------------------------------------------------------------------
// Properties

proptest! {
    #![proptest_config(config(CASES))]

    /// Any delivery is a request exactly when its type is `payment.requested`, its body one,
    /// its amount not negative and its currency three capital letters; otherwise the poison
    /// says which of these failed, first to last.
    #[test]
    fn deliveries_are_requests_or_typed_poison(properties in delivery_properties(), body in body()) {
        let kind = message_type(&properties).unwrap_or_default();
        let decoded = serde_json::from_slice::<PaymentRequested>(&body);
        match request_of::<PaymentRequested>(&properties, &body) {
            Ok(request) => {
                prop_assert_eq!(kind.as_str(), PaymentRequested::TYPE);
                prop_assert!(request.amount_cents >= 0 && valid_currency(&request.currency), "{:?} taken", request);
                prop_assert_eq!(decoded.ok(), Some(request));
            }
            Err(poison) => {
                let reason = poison.to_string();
                prop_assert!(reason.starts_with("undecodable: ") || reason.starts_with("invalid: "), "{}", reason);
                match poison {
                    Poison::WrongType { found, expected } => {
                        prop_assert_ne!(kind.as_str(), PaymentRequested::TYPE);
                        prop_assert_eq!(found, kind);
                        prop_assert_eq!(expected, PaymentRequested::TYPE);
                    }
                    Poison::Undecodable(DecodeError::Body { type_name, .. }) => {
                        prop_assert_eq!(kind.as_str(), PaymentRequested::TYPE);
                        prop_assert_eq!(type_name, PaymentRequested::TYPE);
                        prop_assert!(decoded.is_err(), "a valid body refused");
                    }
                    Poison::Undecodable(other) => prop_assert!(false, "unexpected {:?}", other),
                    Poison::NegativeAmount => {
                        let request = decoded.map_err(fail)?;
                        prop_assert!(request.amount_cents < 0, "{:?}", request);
                    }
                    Poison::Currency(currency) => {
                        let request = decoded.map_err(fail)?;
                        prop_assert!(request.amount_cents >= 0, "{:?}", request);
                        prop_assert!(!valid_currency(&currency), "{:?}", currency);
                        prop_assert_eq!(currency, request.currency);
                    }
                }
            }
        }
    }

    /// A valid request published as the api publishes it is taken as sent.
    #[test]
    fn published_requests_are_taken(request in payment_requested()) {
        let body = serde_json::to_vec(&request).map_err(fail)?;
        let outcome = request_of::<PaymentRequested>(&properties::<PaymentRequested>(&request.payment_id.to_string()), &body);
        if request.amount_cents >= 0 && valid_currency(&request.currency) {
            prop_assert_eq!(outcome.ok(), Some(request));
        } else {
            prop_assert!(matches!(outcome, Err(Poison::NegativeAmount | Poison::Currency(_))), "{:?}", outcome);
        }
    }

    /// The attempt is the attempts header when it is an integer (at least 1, at most
    /// `u32::MAX`), else 1.
    #[test]
    fn the_attempt_is_read_from_integer_headers_only(properties in delivery_properties()) {
        let header = properties.headers().as_ref().and_then(|h| h.inner().get(ATTEMPTS_HEADER).cloned());
        let expected = match header {
            Some(AMQPValue::LongUInt(n)) => i128::from(n),
            Some(AMQPValue::LongInt(n)) => i128::from(n),
            Some(AMQPValue::LongLongInt(n)) => i128::from(n),
            Some(AMQPValue::ShortInt(n)) => i128::from(n),
            Some(AMQPValue::ShortUInt(n)) => i128::from(n),
            _ => 1,
        }
        .clamp(1, i128::from(u32::MAX));
        prop_assert_eq!(i128::from(attempt_of(&properties)), expected);
    }

    /// What a retry or dead letter is published with: the original properties and headers,
    /// persistent, the attempt (read back as it was written), and the reason cut to
    /// `MAX_REASON_BYTES` at a character boundary.
    #[test]
    fn retries_and_dead_letters_keep_the_headers_with_a_bounded_reason(properties in delivery_properties(), attempt in 1_u32.., reason in proptest::option::of(prop_oneof![any::<String>(), "[a-z ]{1000,1100}", "[é]{500,600}"])) {
        let out = with_headers(&properties, attempt, reason.as_deref());
        prop_assert_eq!(attempt_of(&out), attempt);
        prop_assert_eq!(out.delivery_mode(), &Some(2));
        prop_assert_eq!(message_type(&out), message_type(&properties));
        prop_assert_eq!(out.expiration(), properties.expiration());
        let headers = out.headers().clone().unwrap_or_default();
        let original = properties.headers().clone().unwrap_or_default();
        for (name, value) in original.inner() {
            if name.as_str() != ATTEMPTS_HEADER && !(reason.is_some() && name.as_str() == DEAD_REASON_HEADER) {
                prop_assert_eq!(headers.inner().get(name), Some(value));
            }
        }
        match (&reason, headers.inner().get(DEAD_REASON_HEADER)) {
            (Some(reason), Some(AMQPValue::LongString(written))) => {
                let written = std::str::from_utf8(written.as_bytes()).map_err(fail)?;
                prop_assert!(written.len() <= MAX_REASON_BYTES, "{} bytes", written.len());
                prop_assert!(reason.starts_with(written), "not a prefix");
                prop_assert_eq!(written, bounded_reason(reason));
                if reason.len() <= MAX_REASON_BYTES {
                    prop_assert_eq!(written, reason.as_str());
                } else {
                    // Cut no shorter than it must be.
                    prop_assert!(written.len() + 4 > MAX_REASON_BYTES, "{} bytes", written.len());
                }
            }
            (None, written) => prop_assert_eq!(written, original.inner().get(DEAD_REASON_HEADER)),
            (Some(_), other) => prop_assert!(false, "reason header {:?}", other),
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 16, ..ProptestConfig::default() })]

    /// Found by the properties above: a poison request quoting a huge field (a currency or a
    /// value of the wrong type) gets a reason that still fits in a frame, so its dead letter
    /// can be published (unbounded, a 200 kB reason made the broker close the connection with
    /// `FRAME_ERROR`, and the request was requeued forever).
    #[test]
    fn poison_with_huge_fields_gets_a_bounded_reason(request in payment_requested(), huge in (proptest::sample::select(vec!['a', '"', '\\', 'é', '\u{1}']), 150_000_usize..200_000).prop_map(|(c, n)| c.to_string().repeat(n)), as_amount in any::<bool>()) {
        let mut body = serde_json::to_value(&request).map_err(fail)?;
        if as_amount {
            body["amount_cents"] = serde_json::Value::String(huge.clone());
        } else {
            body["amount_cents"] = serde_json::json!(1);
            body["currency"] = serde_json::Value::String(huge.clone());
        }
        let body = serde_json::to_vec(&body).map_err(fail)?;
        let poison = request_of::<PaymentRequested>(&properties::<PaymentRequested>("id"), &body)
            .err()
            .ok_or_else(|| fail("a huge field was taken"))?;
        let reason = poison.to_string();
        prop_assert!(reason.len() > huge.len(), "the reason quotes the field");
        let out = with_headers(&properties::<PaymentRequested>("id"), 1, Some(&reason));
        let written = out
            .headers()
            .as_ref()
            .and_then(|h| h.inner().get(DEAD_REASON_HEADER).cloned());
        match written {
            Some(AMQPValue::LongString(written)) => prop_assert!(written.len() <= MAX_REASON_BYTES, "{} bytes", written.len()),
            other => prop_assert!(false, "reason header {:?}", other),
        }
    }
}
