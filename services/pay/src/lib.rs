//! flash-pay: the payment worker. Consumes `payment.requested` from RabbitMQ, charges through a
//! [`provider::Provider`] (the simulated one, deterministic per `payment_id`), publishes one
//! `payment.completed` per payment with a publisher confirm, and only then acks.
//!
//! # Layout
//! - [`config`]: typed configuration from the environment.
//! - [`provider`]: the provider trait and the simulated provider.
//! - [`worker`]: handling one delivery: outcome, retry with backoff, or dead letter.
//! - [`app`]: [`app::Application`] (build, port, run until shutdown).

pub mod app;
pub mod config;
pub mod provider;
pub mod worker;

pub use app::Application;
pub use config::Config;
