//! Group commit: handlers queue their requests; a few workers each take whatever is queued
//! (up to a maximum) and decide and write it in one transaction. Under low load a batch is one
//! order, so latency stays that of one transaction; under a rush batches grow and the event's
//! stock row is locked once per batch instead of once per order.

use std::sync::Arc;
use std::time::{Duration, Instant};

use sqlx::PgPool;
use tokio::sync::{Mutex, mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use super::{OrderRequest, Outcome, write};
use crate::config::OrderConfig;
use crate::error::ApiError;

struct Pending {
    request: OrderRequest,
    reply: oneshot::Sender<Result<Outcome, ApiError>>,
    queued: Instant,
}

/// The handlers' side of the batch workers.
#[derive(Clone)]
pub struct Batcher {
    queue: mpsc::Sender<Pending>,
}

impl Batcher {
    /// Starts `config.batch_workers` workers, which stop after `stop` once their batch is done.
    #[must_use]
    pub fn start(pool: PgPool, config: OrderConfig, stop: CancellationToken) -> Self {
        let max = config.batch_max.max(1);
        let (queue, receiver) = mpsc::channel(max * 16);
        let receiver = Arc::new(Mutex::new(receiver));
        let workers = config.batch_workers.max(1);
        // The writers run on a thread of their own, with connections of their own: their
        // round trips to Postgres are not queued behind the request handlers' work.
        let options = (*pool.connect_options()).clone();
        let hold = config.hold();
        // Started at once; its end is not awaited (the workers stop after `stop`).
        drop(flash_kit::service::on_own_thread(
            "order-writer",
            move || async move {
                let pool = flash_kit::stores::postgres_pool_options(
                    u32::try_from(workers).unwrap_or(8).saturating_add(1),
                )
                .connect_lazy_with(options);
                let mut tasks = tokio::task::JoinSet::new();
                for _ in 0..workers {
                    tasks.spawn(work(
                        pool.clone(),
                        Arc::clone(&receiver),
                        max,
                        hold,
                        stop.clone(),
                    ));
                }
                while tasks.join_next().await.is_some() {}
                pool.close().await;
            },
        ));
        Self { queue }
    }

    /// Queues a request and waits for its outcome.
    pub async fn submit(&self, request: OrderRequest) -> Result<Outcome, ApiError> {
        let (reply, outcome) = oneshot::channel();
        self.queue
            .send(Pending {
                request,
                reply,
                queued: Instant::now(),
            })
            .await
            .map_err(|_| ApiError::Unavailable("the order writer has stopped".into()))?;
        outcome
            .await
            .map_err(|_| ApiError::Unavailable("the order writer has stopped".into()))?
    }
}

async fn work(
    pool: PgPool,
    receiver: Arc<Mutex<mpsc::Receiver<Pending>>>,
    max: usize,
    hold: Duration,
    stop: CancellationToken,
) {
    loop {
        // Collect a batch while holding the receiver; release it before writing, so another
        // worker collects the next batch meanwhile.
        let batch = {
            let mut receiver = receiver.lock().await;
            let first = tokio::select! {
                () = stop.cancelled() => return,
                first = receiver.recv() => match first {
                    Some(first) => first,
                    None => return,
                },
            };
            let mut batch = Vec::with_capacity(max);
            batch.push(first);
            while batch.len() < max {
                match receiver.try_recv() {
                    Ok(next) => batch.push(next),
                    Err(_) => break,
                }
            }
            batch
        };
        ::metrics::histogram!("api_order_batch_size").record(batch.len() as f64);
        let oldest = batch.iter().map(|p| p.queued).min();
        if let Some(oldest) = oldest {
            ::metrics::histogram!("api_order_queue_wait_seconds")
                .record(oldest.elapsed().as_secs_f64());
        }
        let (requests, replies): (Vec<OrderRequest>, Vec<_>) =
            batch.into_iter().map(|p| (p.request, p.reply)).unzip();
        let started = Instant::now();
        let written = write::with_retries(&pool, &requests, hold, write::Locking::Optimistic).await;
        ::metrics::histogram!("api_order_batch_seconds").record(started.elapsed().as_secs_f64());
        match written {
            Ok(outcomes) => {
                for (reply, outcome) in replies.into_iter().zip(outcomes) {
                    let _ = reply.send(Ok(outcome));
                }
            }
            Err(error) => {
                let message = error.to_string();
                tracing::error!(%message, orders = requests.len(), "an order batch failed");
                for reply in replies {
                    let _ = reply.send(Err(ApiError::Unavailable(message.clone())));
                }
            }
        }
    }
}
