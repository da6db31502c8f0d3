//! flash-api: users, events and orders on Postgres. Every ticket is sold exactly once (a
//! database constraint, not an application check), every order and its payment request are
//! written in one transaction (outbox), and every accepted order reaches a final state.
//!
//! # Layout
//! - [`config`]: typed configuration from the environment, key material.
//! - [`app`]: state and [`app::Application`] (build, port, run until shutdown).
//! - [`routes`]: the HTTP routes under `/api`, by resource.
//! - [`auth`]: the password policy, access tokens and rotating refresh tokens.
//! - [`password`]: Argon2id hashing with configurable cost, on a bounded pool of its own.
//! - [`limits`]: rate limits on sign-ups, logins, failed logins, refreshes and orders.
//! - [`bootstrap`]: the admin account from `FLASH_ADMIN_EMAIL` / `FLASH_ADMIN_PASSWORD`.
//! - [`orders`]: taking orders — the decision procedure and the group-commit batcher.
//! - [`stock`]: returning tickets to stock.
//! - [`relay`]: the outbox relay to RabbitMQ.
//! - [`payments`]: the payment-results consumer.
//! - [`holds`]: hold expiry and other sweeps.
//! - [`retention`]: deleting what is kept only to recognise repeats, after its window.
//! - [`db`]: the pool, migrations and queries, by aggregate.
//! - [`error`]: errors as problem+json.

pub mod app;
pub mod auth;
pub mod bootstrap;
pub mod config;
pub mod db;
pub mod error;
pub mod holds;
pub mod limits;
pub mod orders;
pub mod password;
pub mod payments;
pub mod queue_audit;
pub mod relay;
pub mod retention;
pub mod routes;
pub mod stock;

pub use app::Application;
pub use config::Config;
