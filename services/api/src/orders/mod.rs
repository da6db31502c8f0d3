//! Taking orders: one decision procedure over a batch of requests ([`write`]), run either by
//! the group-commit batcher ([`batch`]: concurrent requests share one transaction) or one
//! transaction per order (the naive design, kept for the benchmark's comparison).
//!
//! Every invariant is also a database constraint: stock cannot go below zero (CHECK), a gate
//! token is consumed once and an idempotency key is used once per user (unique keys). A batch
//! that collides with another writer on one of them is retried from the start, so the
//! decisions are made again against what the other writer committed.

pub mod batch;
pub mod write;

use std::sync::Arc;
use std::time::Duration;

use flash_protocol::ErrorCode;
use flash_protocol::order::Order;
use flash_protocol::{EventId, UserId};
use sqlx::PgPool;
use uuid::Uuid;

use crate::config::{OrderConfig, OrderStrategy};
use crate::error::ApiError;

/// A validated request to buy.
#[derive(Clone, Debug)]
pub struct OrderRequest {
    pub user: UserId,
    pub event: EventId,
    pub quantity: u32,
    /// The gate token's `jti`.
    pub jti: Uuid,
    pub idempotency_key: String,
    /// Fingerprint of what was asked (event, quantity): the same key must ask the same.
    pub request_hash: Vec<u8>,
}

/// What became of a request.
#[derive(Clone, Debug)]
pub enum Outcome {
    /// A new order (201).
    Created(Order),
    /// The order this idempotency key made before (200).
    Replayed(Order),
    /// Refused with a contract error; nothing was written.
    Refused(ErrorCode, String),
}

impl Outcome {
    /// Metric label.
    #[must_use]
    pub fn label(&self) -> &'static str {
        match self {
            Outcome::Created(_) => "created",
            Outcome::Replayed(_) => "replayed",
            Outcome::Refused(code, _) => code.as_str(),
        }
    }
}

/// Takes orders with the configured strategy.
#[derive(Clone)]
pub enum OrderTaker {
    Batched(batch::Batcher),
    SingleRow { pool: PgPool, hold: Duration },
}

impl OrderTaker {
    /// Starts the batch workers (for the batched strategy) until `stop`.
    #[must_use]
    pub fn start(
        pool: PgPool,
        config: OrderConfig,
        stop: tokio_util::sync::CancellationToken,
    ) -> Self {
        match config.strategy {
            OrderStrategy::Batched => Self::Batched(batch::Batcher::start(pool, config, stop)),
            OrderStrategy::SingleRow => Self::SingleRow {
                pool,
                hold: config.hold(),
            },
        }
    }

    pub async fn take(&self, request: OrderRequest) -> Result<Outcome, ApiError> {
        match self {
            OrderTaker::Batched(batcher) => batcher.submit(request).await,
            OrderTaker::SingleRow { pool, hold } => {
                let mut outcomes =
                    write::with_retries(pool, &[request], *hold, write::Locking::Pessimistic)
                        .await?;
                outcomes
                    .pop()
                    .ok_or_else(|| ApiError::Internal("no outcome for an order".into()))
            }
        }
    }
}

impl std::fmt::Debug for OrderTaker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            OrderTaker::Batched(_) => "OrderTaker::Batched",
            OrderTaker::SingleRow { .. } => "OrderTaker::SingleRow",
        })
    }
}

/// Shared handle type for the app state.
pub type SharedTaker = Arc<OrderTaker>;
