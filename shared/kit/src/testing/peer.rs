//! Proptest strategies for what peers send (feature `testing`): AMQP short strings, header
//! values and delivery properties, message bodies that may or may not be valid JSON of a
//! message, and instants. The property tests of the crates share them, so "any delivery" or
//! "any body" means the same everywhere; each test passes what is particular to it (the names
//! it expects, the message it reads).
//!
//! ```ignore
//! use flash_kit::testing::peer::{self, short_string};
//! use proptest::prelude::*;
//!
//! const LIKELY: &[&str] = &["payment.requested", "PAYMENT.REQUESTED"];
//!
//! proptest! {
//!     #![proptest_config(peer::config(256))]
//!     #[test]
//!     fn reads_any_delivery(
//!         properties in peer::delivery_properties(short_string(LIKELY), &["type"], 4),
//!         body in peer::mangled_json(my_message()),
//!     ) { /* … */ }
//! }
//! ```

use std::fmt::Display;
use std::ops::Range;

use lapin::BasicProperties;
use lapin::types::{
    AMQPValue, ByteArray, DecimalValue, FieldArray, FieldTable, LongString, ShortString,
};
use proptest::collection::{btree_map, vec};
use proptest::prelude::*;
use proptest::sample::Index;
use proptest::test_runner::{Config, TestCaseError};
use serde::Serialize;
use time::OffsetDateTime;

/// The default proptest configuration with `cases` cases per property: a fixed number keeps
/// `make test` bounded.
#[must_use]
pub fn config(cases: u32) -> Config {
    Config {
        cases,
        ..Config::default()
    }
}

/// A failed test case with `message`: for `map_err(fail)?` and `Err(fail(…))` in properties.
pub fn fail(message: impl Display) -> TestCaseError {
    TestCaseError::fail(message.to_string())
}

/// The current time in whole seconds since the Unix epoch (as in token claims).
#[must_use]
pub fn now() -> i64 {
    OffsetDateTime::now_utc().unix_timestamp()
}

/// Any instant from 1970 to the end of 9999 (UTC), to the nanosecond.
pub fn instant() -> impl Strategy<Value = OffsetDateTime> + Clone {
    (0_i64..253_402_300_799, 0_u32..1_000_000_000).prop_map(|(seconds, nanos)| {
        OffsetDateTime::from_unix_timestamp(seconds)
            .map(|t| t.replace_nanosecond(nanos).unwrap_or(t))
            .unwrap_or(OffsetDateTime::UNIX_EPOCH)
    })
}

/// An instant of whole seconds since the Unix epoch in `seconds` (UTC); the epoch itself for
/// a second `OffsetDateTime` cannot hold.
pub fn whole_second_instant(seconds: Range<i64>) -> impl Strategy<Value = OffsetDateTime> + Clone {
    seconds
        .prop_map(|s| OffsetDateTime::from_unix_timestamp(s).unwrap_or(OffsetDateTime::UNIX_EPOCH))
}

/// An AMQP short string: half of the time one of the `likely` names (the message types or
/// header names the reader looks for, and near misses), else any string of at most 255 bytes
/// (longer ones are rejected and drawn again).
///
/// # Panics
/// When `likely` is empty (when the strategy is built).
pub fn short_string(likely: &'static [&'static str]) -> impl Strategy<Value = ShortString> + Clone {
    prop_oneof![
        proptest::sample::select(likely).prop_map(str::to_owned),
        any::<String>(),
    ]
    .prop_filter_map("at most 255 bytes", |s| ShortString::try_new(s).ok())
}

/// Any `f64` but NaN, so that a header table equals its copy.
fn double() -> impl Strategy<Value = f64> + Clone {
    use proptest::num::f64::{INFINITE, NEGATIVE, NORMAL, POSITIVE, SUBNORMAL, ZERO};
    POSITIVE | NEGATIVE | NORMAL | SUBNORMAL | ZERO | INFINITE
}

/// Any `f32` but NaN, so that a header table equals its copy.
fn float() -> impl Strategy<Value = f32> + Clone {
    use proptest::num::f32::{INFINITE, NEGATIVE, NORMAL, POSITIVE, SUBNORMAL, ZERO};
    POSITIVE | NEGATIVE | NORMAL | SUBNORMAL | ZERO | INFINITE
}

/// Any AMQP field value a peer may put in a header: every scalar type (strings from `short`,
/// also as long strings, or any bytes), floats other than NaN (so a table equals its copy),
/// and arrays and tables of those nested up to three deep.
pub fn amqp_value<S>(short: S) -> impl Strategy<Value = AMQPValue> + Clone
where
    S: Strategy<Value = ShortString> + Clone + 'static,
{
    let leaf = prop_oneof![
        any::<bool>().prop_map(AMQPValue::Boolean),
        any::<i8>().prop_map(AMQPValue::ShortShortInt),
        any::<u8>().prop_map(AMQPValue::ShortShortUInt),
        any::<i16>().prop_map(AMQPValue::ShortInt),
        any::<u16>().prop_map(AMQPValue::ShortUInt),
        any::<i32>().prop_map(AMQPValue::LongInt),
        any::<u32>().prop_map(AMQPValue::LongUInt),
        any::<i64>().prop_map(AMQPValue::LongLongInt),
        float().prop_map(AMQPValue::Float),
        double().prop_map(AMQPValue::Double),
        (any::<u8>(), any::<u32>())
            .prop_map(|(scale, value)| AMQPValue::DecimalValue(DecimalValue { scale, value })),
        short.clone().prop_map(AMQPValue::ShortString),
        prop_oneof![
            vec(any::<u8>(), 0..64),
            short.clone().prop_map(|s| s.as_str().as_bytes().to_vec()),
        ]
        .prop_map(|b| AMQPValue::LongString(LongString::from(b))),
        any::<u64>().prop_map(AMQPValue::Timestamp),
        vec(any::<u8>(), 0..16).prop_map(|b| AMQPValue::ByteArray(ByteArray::from(b))),
        Just(AMQPValue::Void),
    ];
    leaf.prop_recursive(3, 24, 4, move |inner| {
        prop_oneof![
            vec(inner.clone(), 0..4).prop_map(|v| AMQPValue::FieldArray(FieldArray::from(v))),
            btree_map(short.clone(), inner, 0..4)
                .prop_map(|m| AMQPValue::FieldTable(FieldTable::from(m))),
        ]
    })
}

/// The properties of a delivery: a header table or none (up to `max_headers - 1` entries,
/// names two times in three from `likely_headers`, else from `short`, values of
/// [`amqp_value`]), a `type` property or none, an expiration of digits or none.
///
/// # Panics
/// When `likely_headers` is empty (when the strategy is built).
pub fn delivery_properties<S>(
    short: S,
    likely_headers: &'static [&'static str],
    max_headers: usize,
) -> impl Strategy<Value = BasicProperties>
where
    S: Strategy<Value = ShortString> + Clone + 'static,
{
    let name = prop_oneof![
        2 => proptest::sample::select(likely_headers).prop_map(ShortString::from),
        1 => short.clone(),
    ];
    (
        proptest::option::of(btree_map(name, amqp_value(short.clone()), 0..max_headers)),
        proptest::option::of(short),
        proptest::option::of("[0-9]{1,6}"),
    )
        .prop_map(|(headers, kind, expiration)| {
            let mut properties = BasicProperties::default();
            if let Some(headers) = headers {
                properties = properties.with_headers(FieldTable::from(headers));
            }
            if let Some(kind) = kind {
                properties = properties.with_type(kind);
            }
            if let Some(expiration) = expiration {
                properties = properties.with_expiration(ShortString::from(expiration));
            }
            properties
        })
}

/// Bodies around valid ones: any bytes (up to 127), a `valid` body as it is, one with a byte
/// changed, or one cut short.
pub fn mangled<S>(valid: S) -> impl Strategy<Value = Vec<u8>>
where
    S: Strategy<Value = Vec<u8>> + Clone,
{
    prop_oneof![
        vec(any::<u8>(), 0..128),
        valid.clone(),
        (valid.clone(), any::<Index>(), any::<u8>()).prop_map(|(mut body, at, byte)| {
            if !body.is_empty() {
                let i = at.index(body.len());
                body[i] = byte;
            }
            body
        }),
        (valid, any::<Index>()).prop_map(|(mut body, at)| {
            if !body.is_empty() {
                body.truncate(at.index(body.len()));
            }
            body
        }),
    ]
}

/// [`mangled`] bodies around the JSON of a message from `valid`: any bytes, a valid message's
/// JSON, that JSON with one byte changed, or cut short.
pub fn mangled_json<S>(valid: S) -> impl Strategy<Value = Vec<u8>>
where
    S: Strategy + Clone,
    S::Value: Serialize,
{
    mangled(valid.prop_map(|message| serde_json::to_vec(&message).unwrap_or_default()))
}
