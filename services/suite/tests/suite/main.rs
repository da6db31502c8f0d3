//! The whole suite in one process on port 0, against real Postgres, Redis and RabbitMQ: one
//! test binary, one module per area.

mod abuse;
mod demo;
mod helpers;
mod origin;
mod web;
