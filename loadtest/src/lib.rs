//! flash-drill: flash-sale drills and benchmarks against a running Flash Tickets suite,
//! speaking only the public contract (HTTP, WebSocket, and the `flash.events` messages the
//! api would send when a benchmark needs an event without the api).
//!
//! # Layout
//! - [`drill`]: the flash-sale drills (`burst`, `soak`, `report`): a crowd against a running
//!   suite, with the invariants and SLOs checked and reported.
//! - [`audit`]: the invariants of a sale, checked in the api's database.
//! - [`stats`]: latency histograms and their summaries.
//! - [`draw`]: `verify-draw`, a whole published pre-queue draw checked from outside.
//! - [`crowd`]: simulated buyers signed up and logged in through the public auth endpoints.
//! - [`http`]: a lean HTTP/1.1 keep-alive client, one connection per worker.
//! - [`socket`]: WebSocket clients with small buffers, from chosen source addresses.
//! - [`setup`]: access tokens for simulated users, announcing events.
//! - [`bench`]: the gateway benchmarks (joins, status polls, idle sockets, mass admission).
//! - [`orders_bench`]: the api's orders benchmark, with an oversell check.
//! - [`payments_bench`]: the pay worker's end-to-end benchmark.
//! - [`restart_bench`]: a gateway stopped under N queue sockets, and its buyers' reconnections
//!   to the other replicas.

pub mod audit;
pub mod bench;
pub mod challenge_bench;
pub mod crowd;
pub mod draw;
pub mod drill;
pub mod http;
pub mod join_script_bench;
pub mod logins_bench;
pub mod orders_bench;
pub mod payments_bench;
pub mod prequeue_bench;
pub mod restart_bench;
pub mod setup;
pub mod socket;
pub mod stats;
