//! flash-api: users, events and orders on Postgres (business logic arrives with the orders
//! issue; this crate has the service's shape, schema, migrations and bootstrap admin).
//!
//! # Layout
//! - [`config`]: typed configuration from the environment.
//! - [`db`]: connecting, creating the database when asked, and the embedded migrations.
//! - [`password`]: Argon2id hashing with configurable cost.
//! - [`bootstrap`]: the admin account from `FLASH_ADMIN_EMAIL` / `FLASH_ADMIN_PASSWORD`.
//! - [`app`]: state, router and [`app::Application`] (build, port, run until shutdown).

pub mod app;
pub mod bootstrap;
pub mod config;
pub mod db;
pub mod password;

pub use app::Application;
pub use config::Config;
