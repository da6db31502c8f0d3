//! flash-gateway: the waiting room. Holds the crowd in a fair Redis queue per event, lets
//! buyers out at a rate the backend can take, and hands each admitted buyer a signed gate
//! token, pushed over WebSocket or returned by polling.
//!
//! # Layout
//! - [`config`]: typed configuration from the environment, key material.
//! - [`app`]: state and [`app::Application`] (build, port, run until shutdown).
//! - [`routes`]: the HTTP routes under `/queue`.
//! - [`waiting_room`]: the queue in Redis (Lua scripts in `src/lua/`).
//! - [`coalesce`]: joins (and status polls) that arrive together share one script call.
//! - [`ticket`]: the pure step from the queue's state to a user's `Ticket` and frames.
//! - [`gate`]: gate tokens, one per admission.
//! - [`ticker`]: admission ticks and queue gauges.
//! - [`hub`]: this replica's WebSockets and the fan-out of queue changes to them.
//! - [`ws`]: one WebSocket session.
//! - [`events`]: consumer of `flash.events` from the api.
//! - [`limits`]: per-user and per-IP rate limits.
//! - [`error`]: errors as problem+json.

pub mod app;
pub mod audit;
pub mod challenge;
pub mod coalesce;
pub mod config;
pub mod error;
pub mod events;
pub mod fairness;
pub mod gate;
pub mod hub;
pub mod limits;
pub mod routes;
pub mod ticker;
pub mod ticket;
pub mod waiting_room;
pub mod ws;

pub use app::Application;
pub use config::Config;
