//! Property tests of what the kit reads from peers, without any store: AMQP properties (the
//! `type` and sequence headers of any header table), path ids, query strings and JSON bodies
//! through the problem+json extractors and the common layers, `Authorization` headers, and
//! `X-Forwarded-For`. Whatever arrives is either taken as the model says or refused with the
//! documented problem code; never a panic. A fixed number of cases per property keeps
//! `make test` bounded.

use std::net::IpAddr;
use std::sync::{Arc, LazyLock};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::header::{AUTHORIZATION, CONTENT_TYPE};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, Request};
use axum::routing::{get, post};
use flash_kit::amqp::{message_sequence, message_type, outbox_properties, properties_for};
use flash_kit::auth::{AuthError, Authenticator};
use flash_kit::http::{Json, Path, Query, with_common_layers};
use flash_kit::limits::{client_ip_of, network_of};
use flash_kit::testing::peer::{self, config, fail};
use flash_protocol::claims::{ACCESS_AUDIENCE, ACCESS_ISSUER, AccessClaims, Role};
use flash_protocol::error::PROBLEM_CONTENT_TYPE;
use flash_protocol::messages::{SEQUENCE_HEADER, TYPE_HEADER};
use flash_protocol::{ErrorCode, EventId, OrderId, Problem, UserId};
use flash_tokens::{KeyRing, SigningKey};
use lapin::BasicProperties;
use lapin::types::{AMQPValue, ShortString};
use proptest::collection::vec;
use proptest::prelude::*;
use proptest::test_runner::TestCaseError;
use serde::{Deserialize, Serialize};
use tower::ServiceExt as _;
use uuid::Uuid;

/// Cases per property.
const CASES: u32 = 256;

static RUNTIME: LazyLock<tokio::runtime::Runtime> = LazyLock::new(|| {
    tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("runtime")
});

// ---------------------------------------------------------------------------------------------
// AMQP properties

/// Message types a delivery may carry, and the empty string.
const LIKELY_TYPES: &[&str] = &[
    "payment.requested",
    "payment.completed",
    "event.created",
    "event.updated",
    "event.sold_out",
    "gate.consumed",
    "",
];

/// Short strings: likely types, any string, or names of the usual characters up to the limit.
fn short_string() -> impl Strategy<Value = ShortString> + Clone {
    prop_oneof![
        2 => peer::short_string(LIKELY_TYPES),
        1 => "[a-z._-]{0,255}".prop_filter_map("at most 255 bytes", |s| ShortString::try_new(s).ok()),
    ]
}

/// The properties of a delivery: headers (or none; anything, often with our header names), a
/// `type` property (or none).
fn properties() -> impl Strategy<Value = BasicProperties> {
    peer::delivery_properties(
        short_string(),
        &[
            TYPE_HEADER,
            SEQUENCE_HEADER,
            "x-flash-attempts",
            "x-flash-dead-reason",
            "Type",
        ],
        6,
    )
}

// ---------------------------------------------------------------------------------------------
// HTTP

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Page {
    limit: Option<u32>,
    after: Option<EventId>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Quantity {
    quantity: u32,
}

fn router() -> Router {
    let routes = Router::new()
        .route(
            "/events/{id}",
            get(|Path(id): Path<EventId>| async move { id.to_string() }),
        )
        .route(
            "/orders/{id}",
            get(|Path(id): Path<OrderId>| async move { id.to_string() }),
        )
        .route(
            "/page",
            get(|Query(page): Query<Page>| async move { Json(page) }),
        )
        .route(
            "/orders",
            post(|Json(body): Json<Quantity>| async move { Json(body) }),
        )
        .fallback(flash_kit::http::not_found);
    with_common_layers(routes, "kit-properties", Duration::from_secs(30))
}

/// Calls the router: status, content type, body.
fn call(request: Request<Body>) -> Result<(u16, Option<String>, Vec<u8>), TestCaseError> {
    RUNTIME.block_on(async {
        let response = router().oneshot(request).await.map_err(fail)?;
        let status = response.status().as_u16();
        let content_type = response
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let body = axum::body::to_bytes(response.into_body(), 1 << 20)
            .await
            .map_err(fail)?;
        Ok((status, content_type, body.to_vec()))
    })
}

/// The response is problem+json with this code, and the status the code has.
fn is_problem(
    (status, content_type, body): &(u16, Option<String>, Vec<u8>),
    code: ErrorCode,
) -> Result<(), TestCaseError> {
    prop_assert_eq!(content_type.as_deref(), Some(PROBLEM_CONTENT_TYPE));
    let problem: Problem = serde_json::from_slice(body).map_err(fail)?;
    prop_assert_eq!(problem.code, code);
    prop_assert_eq!(*status, code.status());
    prop_assert_eq!(problem.status, code.status());
    Ok(())
}

/// Percent-encodes every byte outside the unreserved set (so any text makes a valid URI).
fn percent_encode(text: &[u8]) -> String {
    text.iter()
        .map(|&b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                char::from(b).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// Path segments a peer might send: ids in every form, near misses, any bytes.
fn segment() -> impl Strategy<Value = Vec<u8>> {
    let uuid = any::<u128>().prop_map(Uuid::from_u128);
    prop_oneof![
        uuid.clone().prop_map(|u| u.to_string().into_bytes()),
        uuid.clone()
            .prop_map(|u| u.simple().to_string().into_bytes()),
        uuid.clone()
            .prop_map(|u| u.to_string().to_uppercase().into_bytes()),
        uuid.clone().prop_map(|u| u.urn().to_string().into_bytes()),
        uuid.prop_map(|u| format!("{{{u}}}").into_bytes()),
        "[0-9a-fA-F-]{1,40}".prop_map(String::into_bytes),
        any::<String>().prop_map(String::into_bytes),
        vec(any::<u8>(), 1..48),
    ]
    .prop_filter("not empty", |s| !s.is_empty())
}

// ---------------------------------------------------------------------------------------------
// Tokens

static KEY: LazyLock<SigningKey> = LazyLock::new(|| SigningKey::generate().expect("key"));
static AUTH: LazyLock<Authenticator> = LazyLock::new(|| {
    let ring = KeyRing::fixed(&KEY.jwks(), ACCESS_ISSUER, ACCESS_AUDIENCE).expect("ring");
    Authenticator::new(Arc::new(ring), 1_000)
});

fn now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

fn parts_with(headers: HeaderMap) -> Result<Parts, TestCaseError> {
    let (mut parts, ()) = Request::get("/").body(()).map_err(fail)?.into_parts();
    parts.headers = headers;
    Ok(parts)
}

// ---------------------------------------------------------------------------------------------
// Properties

proptest! {
    #![proptest_config(config(CASES))]

    /// The message type is the `type` header when it is a string (long or short), else the
    /// `type` property; anything else in the header is ignored.
    #[test]
    fn message_type_follows_the_header_then_the_property(properties in properties()) {
        let header = properties
            .headers()
            .as_ref()
            .and_then(|h| h.inner().get(TYPE_HEADER).cloned());
        let expected = match header {
            Some(AMQPValue::LongString(s)) => Some(String::from_utf8_lossy(s.as_bytes()).into_owned()),
            Some(AMQPValue::ShortString(s)) => Some(s.as_str().to_owned()),
            _ => properties.kind().as_ref().map(|k| k.as_str().to_owned()),
        };
        prop_assert_eq!(message_type(&properties), expected);
    }

    /// The sequence header is read from any integer type that holds an `i64` without loss, and
    /// from nothing else.
    #[test]
    fn message_sequence_reads_integers_only(properties in properties()) {
        let header = properties
            .headers()
            .as_ref()
            .and_then(|h| h.inner().get(SEQUENCE_HEADER).cloned());
        let expected = match header {
            Some(AMQPValue::LongLongInt(v)) => Some(v),
            Some(AMQPValue::LongInt(v)) => Some(i64::from(v)),
            Some(AMQPValue::LongUInt(v)) => Some(i64::from(v)),
            Some(AMQPValue::ShortInt(v)) => Some(i64::from(v)),
            _ => None,
        };
        prop_assert_eq!(message_sequence(&properties), expected);
    }

    /// What the services publish reads back: the type from both places, the sequence.
    #[test]
    fn published_properties_read_back(kind in "[a-z._]{1,64}", id in "[0-9a-f-]{1,64}", sequence in any::<i64>()) {
        let plain = properties_for(&kind, &id);
        prop_assert_eq!(message_type(&plain), Some(kind.clone()));
        prop_assert_eq!(message_sequence(&plain), None);
        prop_assert_eq!(plain.message_id().as_ref().map(ShortString::as_str), Some(id.as_str()));
        let outbox = outbox_properties(&kind, &id, sequence);
        prop_assert_eq!(message_type(&outbox), Some(kind));
        prop_assert_eq!(message_sequence(&outbox), Some(sequence));
    }

    /// Path ids: a segment is taken iff it parses as a UUID (in any of its forms), and the
    /// handler gets that id; anything else is 422 `VALIDATION` problem+json.
    #[test]
    fn path_ids_are_uuids_or_validation_problems(segment in segment(), orders in any::<bool>()) {
        let uri = format!("/{}/{}", if orders { "orders" } else { "events" }, percent_encode(&segment));
        let response = call(Request::get(uri.as_str()).body(Body::empty()).map_err(fail)?)?;
        let expected = std::str::from_utf8(&segment).ok().and_then(|s| Uuid::parse_str(s).ok());
        match expected {
            Some(id) => {
                prop_assert_eq!(response.0, 200, "{}", uri);
                prop_assert_eq!(String::from_utf8_lossy(&response.2), id.to_string());
            }
            None => is_problem(&response, ErrorCode::Validation)?,
        }
    }

    /// Query strings: parameters of the wrong type are 422 `VALIDATION`; valid ones reach the
    /// handler as sent.
    #[test]
    fn query_values_are_typed_or_validation_problems(limit in proptest::option::of(prop_oneof![any::<u32>().prop_map(|n| n.to_string().into_bytes()), any::<i64>().prop_map(|n| n.to_string().into_bytes()), vec(any::<u8>(), 0..12)]), after in proptest::option::of(segment()), extra in proptest::option::of(vec(any::<u8>(), 0..12))) {
        let mut pairs = Vec::new();
        if let Some(limit) = &limit {
            pairs.push(format!("limit={}", percent_encode(limit)));
        }
        if let Some(after) = &after {
            pairs.push(format!("after={}", percent_encode(after)));
        }
        if let Some(extra) = &extra {
            pairs.push(format!("x={}", percent_encode(extra)));
        }
        let uri = format!("/page?{}", pairs.join("&"));
        let response = call(Request::get(uri.as_str()).body(Body::empty()).map_err(fail)?)?;
        let parse_limit = limit.as_ref().map(|l| std::str::from_utf8(l).ok().and_then(|s| s.parse::<u32>().ok()));
        let parse_after = after.as_ref().map(|a| std::str::from_utf8(a).ok().and_then(|s| Uuid::parse_str(s).ok()));
        // Unknown parameters are ignored, whatever they hold.
        match (parse_limit, parse_after) {
            (Some(None), _) | (_, Some(None)) => is_problem(&response, ErrorCode::Validation)?,
            (limit, after) => {
                prop_assert_eq!(response.0, 200, "{}", uri);
                let page: Page = serde_json::from_slice(&response.2).map_err(fail)?;
                prop_assert_eq!(page, Page { limit: limit.flatten(), after: after.flatten().map(EventId) });
            }
        }
    }

    /// JSON bodies: decoded as `serde_json` would, else 400 `BAD_REQUEST` for what is not JSON
    /// and 422 `VALIDATION` for JSON of the wrong shape; no JSON content type is 415.
    #[test]
    fn json_bodies_are_decoded_or_refused_with_their_code(body in prop_oneof![vec(any::<u8>(), 0..64), any::<u32>().prop_map(|q| format!(r#"{{"quantity":{q}}}"#).into_bytes()), "\\{\"quantity\": ?(-?[0-9]{1,12}|\"[0-9]{0,3}\"|null|[0-9]\\.[0-9]|true)( ?, ?\"[a-z]{1,5}\": ?[0-9])?\\}?".prop_map(String::into_bytes)], content_type in prop_oneof![Just(Some("application/json")), Just(Some("application/json; charset=utf-8")), Just(Some("application/problem+json")), Just(Some("text/plain")), Just(None)]) {
        let mut request = Request::post("/orders");
        if let Some(content_type) = content_type {
            request = request.header(CONTENT_TYPE, content_type);
        }
        let response = call(request.body(Body::from(body.clone())).map_err(fail)?)?;
        if matches!(content_type, Some("text/plain") | None) {
            return is_problem(&response, ErrorCode::UnsupportedMediaType);
        }
        match serde_json::from_slice::<Quantity>(&body) {
            Ok(quantity) => {
                prop_assert_eq!(response.0, 200);
                prop_assert_eq!(serde_json::from_slice::<Quantity>(&response.2).map_err(fail)?, quantity);
            }
            Err(error) if error.classify() == serde_json::error::Category::Data => {
                is_problem(&response, ErrorCode::Validation)?;
            }
            Err(_) => is_problem(&response, ErrorCode::BadRequest)?,
        }
    }

    /// `Authorization` headers: without a bearer token `Missing`, a token that is not ours
    /// `Invalid`, an expired one `Expired`, a valid one its claims (again from the cache).
    #[test]
    fn authorization_headers_are_refused_with_the_right_error(value in prop_oneof![vec(any::<u8>(), 0..80), "(Bearer |bearer |Basic |BEARER |Bearer)[ -~]{0,80}".prop_map(String::into_bytes)], sub in any::<u128>(), admin in any::<bool>(), expired in any::<bool>()) {
        let mut headers = HeaderMap::new();
        if let Ok(value) = HeaderValue::from_bytes(&value) {
            headers.insert(AUTHORIZATION, value.clone());
            let text = value.to_str().ok();
            let token = text
                .and_then(|t| t.strip_prefix("Bearer ").or_else(|| t.strip_prefix("bearer ")))
                .map(str::trim)
                .filter(|t| !t.is_empty());
            let outcome = RUNTIME.block_on(AUTH.from_header(&parts_with(headers)?));
            match token {
                None => prop_assert_eq!(outcome.err(), Some(AuthError::Missing)),
                Some(_) => prop_assert_eq!(outcome.err(), Some(AuthError::Invalid)),
            }
        } else {
            let outcome = RUNTIME.block_on(AUTH.from_header(&parts_with(headers)?));
            prop_assert_eq!(outcome.err(), Some(AuthError::Missing));
        }
        let now = now();
        let claims = AccessClaims {
            sub: UserId(Uuid::from_u128(sub)),
            role: if admin { Role::Admin } else { Role::User },
            iss: ACCESS_ISSUER.to_owned(),
            aud: ACCESS_AUDIENCE.to_owned(),
            iat: now - 60,
            exp: if expired { now - 3_600 } else { now + 3_600 },
        };
        let token = KEY.sign(&claims).map_err(fail)?;
        let mut headers = HeaderMap::new();
        headers.insert(AUTHORIZATION, HeaderValue::from_str(&format!("Bearer {token}")).map_err(fail)?);
        for _ in 0..2 {
            let outcome = RUNTIME.block_on(AUTH.from_header(&parts_with(headers.clone())?));
            if expired {
                prop_assert_eq!(outcome.err(), Some(AuthError::Expired));
            } else {
                prop_assert_eq!(outcome.map(|c| (*c).clone()).ok(), Some(claims.clone()));
            }
        }
    }

    /// `X-Forwarded-For`: when trusted, the last entry of the last header line if it is an
    /// address, else the peer (never an entry of an earlier line, which the client wrote);
    /// untrusted, always the peer. Never a panic on any header bytes.
    #[test]
    fn forwarded_for_is_the_last_entry_of_the_last_line_or_the_peer(earlier in vec(forwarded_line(), 0..3), last in proptest::option::of(forwarded_line()), peer in any::<IpAddr>(), trusted in any::<bool>()) {
        let mut headers = HeaderMap::new();
        for value in earlier.iter().chain(&last) {
            if let Ok(value) = HeaderValue::from_bytes(value) {
                headers.append("x-forwarded-for", value);
            }
        }
        let last = headers
            .get_all("x-forwarded-for")
            .iter()
            .next_back()
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.rsplit(',').next())
            .and_then(|v| v.trim().parse::<IpAddr>().ok());
        let expected = match last {
            Some(ip) if trusted => ip.to_canonical(),
            _ => peer.to_canonical(),
        };
        let ip = client_ip_of(peer, &headers, trusted);
        prop_assert_eq!(ip, expected);
        let network = network_of(ip);
        prop_assert!(network.ends_with(".0/24") || network.ends_with("::/64"), "{}", network);
    }
}

/// One `X-Forwarded-For` line: addresses (the last one valid, or not), text with bytes that
/// are not ASCII, or any bytes.
fn forwarded_line() -> impl Strategy<Value = Vec<u8>> {
    let entry = prop_oneof![
        any::<IpAddr>().prop_map(|ip| ip.to_string()),
        "[0-9a-f.:]{0,20}",
        any::<String>(),
    ];
    prop_oneof![
        3 => (vec(entry, 0..3), any::<IpAddr>(), "[ ]{0,2}")
            .prop_map(|(mut entries, ip, pad)| {
                entries.push(format!("{pad}{ip}{pad}"));
                entries.join(",").into_bytes()
            }),
        2 => (vec(32_u8..=126, 0..12), vec(128_u8..=255, 1..4), vec(32_u8..=126, 0..12))
            .prop_map(|(head, high, tail)| [head, high, tail].concat()),
        1 => vec(any::<u8>(), 0..40),
    ]
}

/// Found by `forwarded_for_is_the_last_entry_of_the_last_line_or_the_peer`: a client's own
/// line was taken when the balancer's line was not ASCII text.
#[test]
fn an_earlier_forwarded_for_line_is_never_taken() {
    let mut headers = HeaderMap::new();
    headers.append("x-forwarded-for", HeaderValue::from_static("6.6.6.6"));
    headers.append(
        "x-forwarded-for",
        HeaderValue::from_bytes(b"\x80, 198.51.100.2").expect("obs-text is a valid value"),
    );
    let peer: IpAddr = "10.0.0.1".parse().expect("ip");
    assert_eq!(client_ip_of(peer, &headers, true), peer);
}
