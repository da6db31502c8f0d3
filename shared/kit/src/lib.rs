//! Glue every Flash Tickets binary would otherwise copy.
//!
//! # Layout
//! - [`auth`]: access-token verification with a cache of verified tokens, and the
//!   `CurrentUser` / `AdminUser` extractors.
//! - [`config`]: settings shared by every service (log format, shutdown grace, ops address).
//! - [`telemetry`]: tracing init, JSON logs on request.
//! - [`shutdown`]: one cancellation token fired by SIGINT/SIGTERM, passed down as a value.
//! - [`http`]: problem+json responses and extractors, golden-signal middleware, common layers.
//! - [`limits`]: rate limits in Redis that hold across replicas, client addresses and networks.
//! - [`metrics`]: the process's Prometheus recorder.
//! - [`ops`]: `/live`, `/ready` (named store checks) and `/metrics`.
//! - [`server`]: serving HTTP with a connection cap, header-read and idle timeouts.
//! - [`stores`]: connecting to Redis and Postgres, and their readiness checks.
//! - [`service`]: the bind / serve / ops shape every service shares.
//! - [`amqp`]: RabbitMQ connection with reconnects, and the whole topology declared in one place.
//! - `testing` (feature `testing`): unique names, per-test databases, key prefixes and broker
//!   names that clean up after themselves, and a TCP proxy to cut a store off.

pub mod amqp;
pub mod auth;
pub mod config;
pub mod http;
pub mod limits;
pub mod memory;
pub mod metrics;
pub mod ops;
pub mod priority;
pub mod server;
pub mod service;
pub mod shutdown;
pub mod stores;
pub mod telemetry;

#[cfg(feature = "testing")]
pub mod testing;
