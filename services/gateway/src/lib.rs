//! flash-gateway: the waiting room. Holds the crowd in a fair Redis queue per event and lets
//! buyers out at a rate the backend can take (queue logic arrives with the waiting-room issue).
//!
//! # Layout
//! - [`config`]: typed configuration from the environment.
//! - [`app`]: state, router and [`app::Application`] (build, port, run until shutdown).

pub mod app;
pub mod config;
pub mod waiting_room;

pub use app::Application;
pub use config::Config;
