//! The api against real Postgres and RabbitMQ: one test binary, one module per area.

mod audit;
mod auth;
mod concurrency;
mod documents;
mod events;
mod health;
mod helpers;
mod orders;
mod outbox;
mod payments;
mod stats;
