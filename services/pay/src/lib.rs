//! flash-pay: the payment worker (the consumer and simulated provider arrive with the payments
//! issue; this crate has the service's shape, broker connection and ops endpoints).
//!
//! # Layout
//! - [`config`]: typed configuration from the environment.
//! - [`app`]: [`app::Application`] (build, port, run until shutdown).

pub mod app;
pub mod config;

pub use app::Application;
pub use config::Config;
