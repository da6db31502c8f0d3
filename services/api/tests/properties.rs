//! Property tests of what the api reads from peers before any store is involved: the
//! `Idempotency-Key` and `Gate-Token` headers of an order, registration fields, and the
//! payment results arriving over AMQP (any headers, any body). Whatever arrives is taken as
//! the contract says or refused with the documented problem code; never a panic. A fixed
//! number of cases per property keeps `make test` bounded.

use std::sync::LazyLock;

use axum::http::{HeaderMap, HeaderValue};
use axum::response::IntoResponse as _;
use flash_api::auth::{PASSWORD_LEN, is_valid_email, validate_registration};
use flash_api::error::ApiError;
use flash_api::payments::result_of;
use flash_api::routes::orders::{gate_token, idempotency_key};
use flash_kit::amqp::{message_type, properties};
use flash_kit::testing::peer::{self, config, fail, instant, mangled_json, now, short_string};
use flash_protocol::claims::{
    ACCESS_AUDIENCE, ACCESS_ISSUER, AccessClaims, GATE_AUDIENCE, GATE_ISSUER, GateClaims, Role,
};
use flash_protocol::messages::{
    DecodeError, Message as _, PaymentCompleted, PaymentOutcome, PaymentRefunded, PaymentResult,
    TYPE_HEADER,
};
use flash_protocol::order::{GATE_TOKEN_HEADER, IDEMPOTENCY_KEY_HEADER};
use flash_protocol::{ErrorCode, EventId, OrderId, PaymentId, UserId};
use flash_tokens::{KeyRing, SigningKey};
use lapin::BasicProperties;
use proptest::collection::vec;
use proptest::prelude::*;
use proptest::test_runner::TestCaseError;
use uuid::Uuid;

/// Cases per property.
const CASES: u32 = 512;

static RUNTIME: LazyLock<tokio::runtime::Runtime> = LazyLock::new(|| {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime")
});

/// The gateway's key, trusted by the api for gate tokens.
static GATE_KEY: LazyLock<SigningKey> = LazyLock::new(|| SigningKey::generate().expect("key"));
/// A key the api does not trust for gate tokens (its own access-token key, say).
static OTHER_KEY: LazyLock<SigningKey> = LazyLock::new(|| SigningKey::generate().expect("key"));
static GATE_KEYS: LazyLock<KeyRing> = LazyLock::new(|| {
    KeyRing::fixed(&GATE_KEY.jwks(), GATE_ISSUER, GATE_AUDIENCE).expect("gate keys")
});

/// The error is a client error with this code, answered with the code's status.
fn is_client_error(error: ApiError, code: ErrorCode) -> Result<(), TestCaseError> {
    match error {
        ApiError::Client(got, detail) => {
            prop_assert_eq!(got, code, "{}", detail);
            let status = ApiError::Client(got, detail).into_response().status();
            prop_assert_eq!(status.as_u16(), code.status());
            Ok(())
        }
        other => Err(fail(format!("expected {code}, got {other:?}"))),
    }
}

/// The error is `VALIDATION` naming exactly these fields, answered 422.
fn is_validation(error: ApiError, fields: &[&str]) -> Result<(), TestCaseError> {
    match error {
        ApiError::Validation(errors) => {
            let mut named: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
            named.dedup();
            prop_assert_eq!(named, fields.to_vec());
            let status = ApiError::Validation(errors).into_response().status();
            prop_assert_eq!(status.as_u16(), ErrorCode::Validation.status());
            Ok(())
        }
        other => Err(fail(format!(
            "expected VALIDATION of {fields:?}, got {other:?}"
        ))),
    }
}

// ---------------------------------------------------------------------------------------------
// Strategies

/// Header values a client might send: visible ASCII of any length, bytes that are not ASCII,
/// any bytes (those `HeaderValue` refuses never arrive).
fn header_bytes() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        "[!-~]{1,200}".prop_map(String::into_bytes),
        "[!-~]{199,202}".prop_map(String::into_bytes),
        "[ -~\t]{0,210}".prop_map(String::into_bytes),
        (vec(32_u8..=126, 0..20), vec(128_u8..=255, 1..3)).prop_map(|(a, b)| [a, b].concat()),
        vec(any::<u8>(), 0..40),
        Just(Vec::new()),
    ]
}

/// Message types a payment result may carry: its own, another, near misses.
const LIKELY_TYPES: &[&str] = &[
    PaymentCompleted::TYPE,
    PaymentRefunded::TYPE,
    "payment.requested",
    "payment.completed ",
    "PAYMENT.COMPLETED",
];

/// A delivery's properties: any headers (often a `type` header), any `type` property.
fn delivery_properties() -> impl Strategy<Value = BasicProperties> {
    peer::delivery_properties(short_string(LIKELY_TYPES), &[TYPE_HEADER], 4)
}

fn payment_completed() -> impl Strategy<Value = PaymentCompleted> + Clone {
    (
        any::<u128>(),
        any::<u128>(),
        any::<bool>(),
        proptest::option::of(any::<String>()),
        instant(),
    )
        .prop_map(
            |(payment, order, approved, reason, processed_at)| PaymentCompleted {
                payment_id: PaymentId(Uuid::from_u128(payment)),
                order_id: OrderId(Uuid::from_u128(order)),
                outcome: if approved {
                    PaymentOutcome::Approved
                } else {
                    PaymentOutcome::Declined
                },
                reason,
                processed_at,
            },
        )
}

/// Bodies: any bytes, JSON, or a valid result's JSON with a byte changed or cut short.
fn body() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        4 => mangled_json(payment_completed()),
        1 => r#"\{"payment_id":"[0-9a-f-]{0,36}","order_id":"[0-9a-f-]{0,36}","outcome":"(approved|declined|refunded)","processed_at":"[0-9TZ:.-]{0,30}"\}"#
            .prop_map(String::into_bytes),
    ]
}

// ---------------------------------------------------------------------------------------------
// Properties

proptest! {
    #![proptest_config(config(CASES))]

    /// `Idempotency-Key`: taken as sent iff the (first) header is 1 to 200 visible ASCII
    /// characters; otherwise, or when missing, 422 `VALIDATION` naming the header.
    #[test]
    fn idempotency_keys_are_visible_ascii_of_1_to_200(values in vec(header_bytes(), 0..3)) {
        let mut headers = HeaderMap::new();
        for value in &values {
            if let Ok(value) = HeaderValue::from_bytes(value) {
                headers.append(IDEMPOTENCY_KEY_HEADER, value);
            }
        }
        let first = headers.get(IDEMPOTENCY_KEY_HEADER).map(|v| v.as_bytes().to_vec());
        let valid = first.as_ref().filter(|k| (1..=200).contains(&k.len()) && k.iter().all(u8::is_ascii_graphic));
        match idempotency_key(&headers) {
            Ok(key) => prop_assert_eq!(Some(key.as_bytes()), valid.map(Vec::as_slice)),
            Err(error) => {
                prop_assert!(valid.is_none(), "{:?} refused", first);
                is_validation(error, &[IDEMPOTENCY_KEY_HEADER])?;
            }
        }
    }

    /// `Gate-Token`: missing or anything but a valid gate token is `GATE_TOKEN_INVALID`; a
    /// valid one gives its claims.
    #[test]
    fn gate_token_headers_are_verified(value in proptest::option::of(header_bytes()), sub in any::<u128>(), evt in any::<u128>(), jti in any::<u128>(), left in 60_i64..3_600) {
        let mut headers = HeaderMap::new();
        if let Some(Ok(value)) = value.as_deref().map(HeaderValue::from_bytes) {
            headers.insert(GATE_TOKEN_HEADER, value);
        }
        let outcome = RUNTIME.block_on(gate_token(&GATE_KEYS, &headers));
        is_client_error(outcome.err().ok_or_else(|| fail("garbage accepted"))?, ErrorCode::GateTokenInvalid)?;

        let claims = GateClaims {
            sub: UserId(Uuid::from_u128(sub)),
            evt: EventId(Uuid::from_u128(evt)),
            jti: Uuid::from_u128(jti),
            iss: GATE_ISSUER.to_owned(),
            aud: GATE_AUDIENCE.to_owned(),
            iat: now(),
            exp: now() + left,
        };
        let with = |token: String| -> Result<HeaderMap, TestCaseError> {
            let mut headers = HeaderMap::new();
            headers.insert(GATE_TOKEN_HEADER, HeaderValue::from_str(&token).map_err(fail)?);
            Ok(headers)
        };
        let valid = with(GATE_KEY.sign(&claims).map_err(fail)?)?;
        prop_assert_eq!(RUNTIME.block_on(gate_token(&GATE_KEYS, &valid)).ok(), Some(claims));
    }

    /// Gate tokens that are expired are `GATE_TOKEN_EXPIRED`; those signed by another key, for
    /// another audience, or access tokens are `GATE_TOKEN_INVALID`.
    #[test]
    fn wrong_gate_tokens_are_refused_with_their_code(sub in any::<u128>(), evt in any::<u128>(), ago in 10_i64..1_000_000) {
        let now = now();
        let claims = GateClaims {
            sub: UserId(Uuid::from_u128(sub)),
            evt: EventId(Uuid::from_u128(evt)),
            jti: Uuid::new_v4(),
            iss: GATE_ISSUER.to_owned(),
            aud: GATE_AUDIENCE.to_owned(),
            iat: now - ago - 300,
            exp: now + 300,
        };
        let verify = |token: String| -> Result<ApiError, TestCaseError> {
            let mut headers = HeaderMap::new();
            headers.insert(GATE_TOKEN_HEADER, HeaderValue::from_str(&token).map_err(fail)?);
            RUNTIME
                .block_on(gate_token(&GATE_KEYS, &headers))
                .err()
                .ok_or_else(|| fail("accepted"))
        };
        let expired = GateClaims { exp: now - ago, ..claims.clone() };
        is_client_error(verify(GATE_KEY.sign(&expired).map_err(fail)?)?, ErrorCode::GateTokenExpired)?;
        is_client_error(verify(OTHER_KEY.sign(&claims).map_err(fail)?)?, ErrorCode::GateTokenInvalid)?;
        let elsewhere = GateClaims { aud: ACCESS_AUDIENCE.to_owned(), ..claims.clone() };
        is_client_error(verify(GATE_KEY.sign(&elsewhere).map_err(fail)?)?, ErrorCode::GateTokenInvalid)?;
        let access = AccessClaims {
            sub: claims.sub,
            role: Role::Admin,
            iss: ACCESS_ISSUER.to_owned(),
            aud: ACCESS_AUDIENCE.to_owned(),
            iat: now,
            exp: now + 300,
        };
        is_client_error(verify(GATE_KEY.sign(&access).map_err(fail)?)?, ErrorCode::GateTokenInvalid)?;
    }

    /// Registration: any e-mail and password are accepted or refused as `VALIDATION` naming
    /// exactly the fields at fault; what is accepted is a plain address and a password of 8 to
    /// 128 characters without control characters.
    #[test]
    fn registrations_are_accepted_or_refused_naming_the_fields(email in prop_oneof!["[a-z0-9._+-]{1,64}@[a-z0-9-]{1,20}(\\.[a-z]{2,6}){1,2}", any::<String>(), "[a-z@. ]{0,12}"], password in prop_oneof!["[ -~]{8,128}", any::<String>(), "[ -~]{0,10}", "[ -~\t]{120,130}"]) {
        let email_ok = is_valid_email(&email);
        if email_ok {
            prop_assert_eq!(email.matches('@').count(), 1);
            prop_assert!(!email.chars().any(char::is_whitespace), "{:?}", email);
            let (local, domain) = email.split_once('@').unwrap_or_default();
            prop_assert!(!local.is_empty() && local.len() <= 64 && domain.contains('.'), "{:?}", email);
        }
        let chars = password.chars().count();
        let password_ok = PASSWORD_LEN.contains(&chars)
            && !password.trim().is_empty()
            && !password.chars().any(char::is_control);
        match validate_registration(&email, &password) {
            Ok(()) => prop_assert!(email_ok && password_ok, "{:?} / {:?} accepted", email, password),
            Err(error) => {
                let fields: Vec<&str> = [(!email_ok).then_some("email"), (!password_ok).then_some("password")]
                    .into_iter()
                    .flatten()
                    .collect();
                is_validation(error, &fields)?;
            }
        }
    }

    /// Payment and refund results over AMQP: any headers and body give the result iff the
    /// type is `payment.completed` or `payment.refunded` and the body is one; otherwise
    /// `UnknownType` naming the type, or a body error naming the type.
    #[test]
    fn payment_results_decode_or_are_refused(properties in delivery_properties(), body in body()) {
        let kind = message_type(&properties).unwrap_or_default();
        let known = [PaymentCompleted::TYPE, PaymentRefunded::TYPE];
        match result_of(&properties, &body) {
            Ok(PaymentResult::Completed(result)) => {
                prop_assert_eq!(kind.as_str(), PaymentCompleted::TYPE);
                prop_assert_eq!(serde_json::from_slice::<PaymentCompleted>(&body).ok(), Some(result));
            }
            Ok(PaymentResult::Refunded(result)) => {
                prop_assert_eq!(kind.as_str(), PaymentRefunded::TYPE);
                prop_assert_eq!(serde_json::from_slice::<PaymentRefunded>(&body).ok(), Some(result));
            }
            Err(DecodeError::UnknownType(named)) => {
                prop_assert!(!known.contains(&kind.as_str()), "{} refused", kind);
                prop_assert_eq!(named, kind);
            }
            Err(DecodeError::Body { type_name, .. }) => {
                prop_assert_eq!(kind.as_str(), type_name);
                prop_assert!(known.contains(&type_name), "{}", type_name);
                let valid = if type_name == PaymentCompleted::TYPE {
                    serde_json::from_slice::<PaymentCompleted>(&body).is_ok()
                } else {
                    serde_json::from_slice::<PaymentRefunded>(&body).is_ok()
                };
                prop_assert!(!valid, "a valid body refused");
            }
        }
    }

    /// A result published as the pay worker publishes it is decoded to itself.
    #[test]
    fn published_payment_results_round_trip(result in payment_completed()) {
        let body = serde_json::to_vec(&result).map_err(fail)?;
        let published = properties::<PaymentCompleted>(&result.payment_id.to_string());
        prop_assert_eq!(result_of(&published, &body).ok(), Some(PaymentResult::Completed(result)));
    }
}
