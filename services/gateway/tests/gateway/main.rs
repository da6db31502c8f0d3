//! The gateway against real Redis and RabbitMQ: one test binary, one module per area.

mod challenge;
mod documents;
mod events;
mod fairness;
mod health;
mod helpers;
mod http;
mod waiting_room;
mod ws;
