//! The wire contract of Flash Tickets (docs/contract.md, v1): every type that crosses a process
//! boundary — HTTP bodies, WebSocket frames, AMQP messages, JWT claims, Redis key names and
//! error codes. Types only: no I/O, no runtime, no web framework.
//!
//! # Layout
//! - [`ids`]: typed UUID identifiers.
//! - [`error`]: the table of stable error codes and RFC 9457 problem details.
//! - [`auth`]: register, login and refresh bodies.
//! - [`challenge`]: the join challenge (proof of work) and its rule.
//! - [`event`]: `Event`, `NewEvent`, queue settings, the operators' `EventStats`.
//! - [`order`]: `Order`, the order request and its headers.
//! - [`queue`]: the gateway's `Ticket`, `QueueStats` and admin patch.
//! - [`ws`]: WebSocket frames and close codes.
//! - [`claims`]: access-token and gate-token claims.
//! - [`messages`]: AMQP messages, each carrying its exchange and routing key, and the broker names.
//! - [`draw`]: the pre-queue draw's rule (`sha256-commit-reveal-v1`).
//! - [`keys`]: Redis key builders; every key of one event shares the hash tag `{event_id}`.
//! - [`openapi`] and [`asyncapi`]: what the services' OpenAPI documents share, and the
//!   AsyncAPI document of the WebSocket frames and the AMQP messages.

pub mod asyncapi;
pub mod audit;
pub mod auth;
pub mod challenge;
pub mod claims;
pub mod draw;
pub mod error;
pub mod event;
pub mod ids;
pub mod keys;
pub mod messages;
pub mod openapi;
pub mod order;
pub mod queue;
pub mod ws;

pub use error::{ErrorCode, Problem};
pub use ids::{EventId, OrderId, PaymentId, UserId};

/// RFC 3339 (UTC) serialisation for `OffsetDateTime` fields.
pub use time::serde::rfc3339;
