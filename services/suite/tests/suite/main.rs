//! The whole suite in one process on port 0, against real Postgres, Redis and RabbitMQ: one
//! test binary, one module per area.

mod abuse;
mod accounts;
mod demo;
mod helpers;
mod integrity;
mod limits;
mod origin;
mod web;
