//! The consumer of `pay.requests` (charges) and `pay.refunds` (refunds): carry the request
//! out through the provider, publish its one outcome with a confirm, then ack.
//!
//! - A transient failure is re-published to the request's retry queue with a per-message TTL
//!   (the backoff) and the next attempt number in a header; when the TTL runs out the broker
//!   dead-letters it back to the request's queue. After the last attempt it goes to
//!   `pay.requests.dead` with the reason.
//! - An undecodable or invalid request goes to `pay.requests.dead` at once, with the reason.
//! - The delivery is acked only after what replaces it (outcome, retry or dead letter) is
//!   confirmed by the broker; if that fails it is requeued, so nothing is lost. A redelivered
//!   request gets the same outcome: the provider is idempotent by `payment_id`, and outcomes
//!   this process published are remembered and published again as they were.

use std::sync::Arc;
use std::time::Instant;

use flash_kit::amqp::{Disposition, Publisher, message_type};
pub use flash_kit::amqp::{MAX_REASON_BYTES, attempt_of, bounded_reason, with_headers};
use flash_protocol::messages::{
    DecodeError, Exchange, Message, PaymentCompleted, PaymentOutcome, PaymentRefundRequested,
    PaymentRefunded, PaymentRequested, RefundOutcome, decode, routing,
};
use futures::future::BoxFuture;
use lapin::message::Delivery;
use time::OffsetDateTime;
use tokio::sync::Semaphore;
use uuid::Uuid;

use crate::config::WorkerConfig;
use crate::provider::{Provider, RefundVerdict, Transient, Verdict};

/// Outcomes remembered for redeliveries, of each kind.
const REMEMBERED: u64 = 200_000;

/// Outcomes this process published, by payment id, to publish again as they were.
pub struct Remembered {
    charges: moka::sync::Cache<Uuid, PaymentCompleted>,
    refunds: moka::sync::Cache<Uuid, PaymentRefunded>,
}

/// `pay_dead_lettered_total{reason}`: a request that cannot be read, or whose retries ran out.
const POISON: &str = "poison";
const EXHAUSTED: &str = "exhausted";
/// The `delivery` label of the outcome counters: asked of the provider now, or an outcome
/// remembered for a request delivered again.
const NEW: &str = "new";
const REDELIVERED: &str = "redelivered";

/// Counters that may not move for hours, at 0 from the start: an alert's `increase()` sees
/// their first occurrence (a series born at 1 shows none), and a dashboard shows 0, not "no
/// data" (both proven on real Prometheus by gitops/tests/live_alerts_test.py).
pub fn start_counters_at_zero() {
    fn outcomes<J: Job>() {
        for outcome in J::outcomes() {
            for delivery in [NEW, REDELIVERED] {
                ::metrics::counter!(J::OUTCOMES_METRIC, "outcome" => outcome, "delivery" => delivery)
                    .increment(0);
            }
        }
    }
    outcomes::<PaymentRequested>();
    outcomes::<PaymentRefundRequested>();
    for reason in [POISON, EXHAUSTED] {
        ::metrics::counter!("pay_dead_lettered_total", "reason" => reason).increment(0);
    }
    ::metrics::counter!("pay_publish_failures_total").increment(0);
    ::metrics::counter!("pay_retries_total").increment(0);
}

/// A request the worker carries out through the provider: a charge or a refund.
pub trait Job: Message + Clone + Send + Sync + 'static {
    /// Its one outcome, published for the api.
    type Outcome: Message + Clone + Send + Sync + 'static;
    /// Routing key of the queue its retries wait in.
    const RETRY_KEY: &'static str;
    /// Counter of the outcomes published, labelled `outcome` and `delivery`.
    const OUTCOMES_METRIC: &'static str;
    /// Every value of [`Job::label`].
    fn outcomes() -> Vec<&'static str>;

    fn payment(&self) -> Uuid;
    /// The amount and currency, checked before the provider is asked.
    fn money(&self) -> (i64, &str);
    fn requested_at(&self) -> OffsetDateTime;
    /// Asks the provider (attempt counts from 1).
    fn perform<'a>(
        &'a self,
        provider: &'a dyn Provider,
        attempt: u32,
    ) -> BoxFuture<'a, Result<Self::Outcome, Transient>>;
    /// The outcome's `outcome` label.
    fn label(outcome: &Self::Outcome) -> &'static str;
    fn remembered(remembered: &Remembered) -> &moka::sync::Cache<Uuid, Self::Outcome>;
}

impl Job for PaymentRequested {
    type Outcome = PaymentCompleted;
    const RETRY_KEY: &'static str = routing::PAYMENT_RETRY;
    const OUTCOMES_METRIC: &'static str = "pay_processed_total";

    fn payment(&self) -> Uuid {
        self.payment_id.0
    }

    fn money(&self) -> (i64, &str) {
        (self.amount_cents, &self.currency)
    }

    fn requested_at(&self) -> OffsetDateTime {
        self.requested_at
    }

    fn perform<'a>(
        &'a self,
        provider: &'a dyn Provider,
        attempt: u32,
    ) -> BoxFuture<'a, Result<PaymentCompleted, Transient>> {
        Box::pin(async move {
            let (outcome, reason) = match provider.charge(self, attempt).await? {
                Verdict::Approved => (PaymentOutcome::Approved, None),
                Verdict::Declined(reason) => (PaymentOutcome::Declined, Some(reason)),
            };
            Ok(PaymentCompleted {
                payment_id: self.payment_id,
                order_id: self.order_id,
                outcome,
                reason,
                processed_at: OffsetDateTime::now_utc(),
            })
        })
    }

    fn outcomes() -> Vec<&'static str> {
        PaymentOutcome::ALL.map(PaymentOutcome::as_str).to_vec()
    }

    fn label(outcome: &PaymentCompleted) -> &'static str {
        outcome.outcome.as_str()
    }

    fn remembered(remembered: &Remembered) -> &moka::sync::Cache<Uuid, PaymentCompleted> {
        &remembered.charges
    }
}

impl Job for PaymentRefundRequested {
    type Outcome = PaymentRefunded;
    const RETRY_KEY: &'static str = routing::REFUND_RETRY;
    const OUTCOMES_METRIC: &'static str = "pay_refunds_total";

    fn payment(&self) -> Uuid {
        self.payment_id.0
    }

    fn money(&self) -> (i64, &str) {
        (self.amount_cents, &self.currency)
    }

    fn requested_at(&self) -> OffsetDateTime {
        self.requested_at
    }

    fn perform<'a>(
        &'a self,
        provider: &'a dyn Provider,
        attempt: u32,
    ) -> BoxFuture<'a, Result<PaymentRefunded, Transient>> {
        Box::pin(async move {
            let (outcome, reason) = match provider.refund(self, attempt).await? {
                RefundVerdict::Refunded => (RefundOutcome::Refunded, None),
                RefundVerdict::Failed(reason) => (RefundOutcome::Failed, Some(reason)),
            };
            Ok(PaymentRefunded {
                payment_id: self.payment_id,
                order_id: self.order_id,
                outcome,
                reason,
                processed_at: OffsetDateTime::now_utc(),
            })
        })
    }

    fn outcomes() -> Vec<&'static str> {
        RefundOutcome::ALL.map(RefundOutcome::as_str).to_vec()
    }

    fn label(outcome: &PaymentRefunded) -> &'static str {
        outcome.outcome.as_str()
    }

    fn remembered(remembered: &Remembered) -> &moka::sync::Cache<Uuid, PaymentRefunded> {
        &remembered.refunds
    }
}

/// Everything a delivery's handling needs.
pub struct Worker {
    config: WorkerConfig,
    provider: Arc<dyn Provider>,
    publisher: Publisher,
    calls: Semaphore,
    outcomes: Remembered,
}

impl Worker {
    #[must_use]
    pub fn new(config: WorkerConfig, provider: Arc<dyn Provider>, publisher: Publisher) -> Self {
        Self {
            config,
            provider,
            publisher,
            calls: Semaphore::new(config.concurrency.max(1)),
            outcomes: Remembered {
                charges: moka::sync::Cache::new(REMEMBERED),
                refunds: moka::sync::Cache::new(REMEMBERED),
            },
        }
    }

    /// Handles one delivery of a `J` request (a charge from `pay.requests`, a refund from
    /// `pay.refunds`) and says how to settle it.
    pub async fn handle<J: Job>(&self, delivery: &Delivery) -> Disposition {
        ::metrics::gauge!("pay_in_flight").increment(1.0);
        let disposition = self.handle_inner::<J>(delivery).await;
        ::metrics::gauge!("pay_in_flight").decrement(1.0);
        disposition
    }

    async fn handle_inner<J: Job>(&self, delivery: &Delivery) -> Disposition {
        let attempt = attempt_of(&delivery.properties);
        let request = match request_of::<J>(&delivery.properties, &delivery.data) {
            Ok(request) => request,
            Err(poison) => {
                let reason = poison.to_string();
                tracing::warn!(%reason, kind = J::TYPE, "request dead-lettered");
                return self.dead_letter(delivery, POISON, &reason, attempt).await;
            }
        };
        let payment = request.payment();
        if let Some(done) = J::remembered(&self.outcomes).get(&payment) {
            return self.complete::<J>(payment, &done, REDELIVERED).await;
        }

        let started = Instant::now();
        let outcome = {
            let Ok(_permit) = self.calls.acquire().await else {
                return Disposition::Requeue;
            };
            match tokio::time::timeout(
                self.config.provider_timeout(),
                request.perform(self.provider.as_ref(), attempt),
            )
            .await
            {
                Ok(outcome) => outcome,
                Err(_) => Err(Transient(format!(
                    "the provider did not answer within {} ms",
                    self.config.provider_timeout_ms
                ))),
            }
        };
        ::metrics::histogram!("pay_provider_seconds").record(started.elapsed().as_secs_f64());

        match outcome {
            Ok(outcome) => {
                let disposition = self.complete::<J>(payment, &outcome, NEW).await;
                if disposition == Disposition::Ack {
                    J::remembered(&self.outcomes).insert(payment, outcome);
                    let waited = OffsetDateTime::now_utc() - request.requested_at();
                    ::metrics::histogram!("pay_request_to_outcome_seconds", "kind" => J::TYPE)
                        .record(waited.as_seconds_f64().max(0.0));
                }
                disposition
            }
            Err(failure) if attempt >= self.config.max_attempts => {
                let reason = format!("retries exhausted after {attempt} attempts: {failure}");
                tracing::warn!(%payment, %reason, kind = J::TYPE, "request dead-lettered");
                self.dead_letter(delivery, EXHAUSTED, &reason, attempt)
                    .await
            }
            Err(failure) => {
                self.retry(delivery, J::RETRY_KEY, attempt + 1, &failure.0)
                    .await
            }
        }
    }

    /// Publishes the outcome (message id: the payment id) and acks once it is confirmed.
    async fn complete<J: Job>(
        &self,
        payment: Uuid,
        outcome: &J::Outcome,
        kind: &'static str,
    ) -> Disposition {
        match self.publisher.send(&payment.to_string(), outcome).await {
            Ok(()) => {
                ::metrics::counter!(J::OUTCOMES_METRIC, "outcome" => J::label(outcome), "delivery" => kind)
                    .increment(1);
                Disposition::Ack
            }
            Err(error) => {
                tracing::warn!(%error, kind = J::TYPE, "cannot publish the outcome; requeued");
                ::metrics::counter!("pay_publish_failures_total").increment(1);
                Disposition::Requeue
            }
        }
    }

    /// Parks the request in its retry queue for its backoff, as attempt `next`.
    async fn retry(
        &self,
        delivery: &Delivery,
        retry_key: &'static str,
        next: u32,
        failure: &str,
    ) -> Disposition {
        let wait = self.config.backoff(next);
        let properties = with_headers(&delivery.properties, next, None)
            .with_expiration(wait.as_millis().to_string().into());
        let disposition = self.move_to(delivery, retry_key, properties).await;
        if disposition == Disposition::Ack {
            tracing::debug!(%failure, next, wait_ms = wait.as_millis() as u64, "retry scheduled");
            ::metrics::counter!("pay_retries_total").increment(1);
        }
        disposition
    }

    /// Moves the request to the dead-letter queue with the reason in a header.
    async fn dead_letter(
        &self,
        delivery: &Delivery,
        kind: &'static str,
        reason: &str,
        attempt: u32,
    ) -> Disposition {
        let properties = with_headers(&delivery.properties, attempt, Some(reason));
        let disposition = self
            .move_to(delivery, routing::PAYMENT_DEAD, properties)
            .await;
        if disposition == Disposition::Ack {
            ::metrics::counter!("pay_dead_lettered_total", "reason" => kind).increment(1);
        }
        disposition
    }

    /// Re-publishes the request's body to `routing_key` (retry or dead letter): ack the
    /// delivery once the copy is confirmed, requeue it if the copy failed.
    async fn move_to(
        &self,
        delivery: &Delivery,
        routing_key: &'static str,
        properties: lapin::BasicProperties,
    ) -> Disposition {
        match self
            .publisher
            .publish(Exchange::Payments, routing_key, &delivery.data, properties)
            .await
        {
            Ok(()) => Disposition::Ack,
            Err(error) => {
                tracing::warn!(%error, routing_key, "cannot move a request; requeued");
                ::metrics::counter!("pay_publish_failures_total").increment(1);
                Disposition::Requeue
            }
        }
    }
}

/// Why a request can never be handled; its text is the dead letter's reason.
#[derive(Debug, thiserror::Error)]
pub enum Poison {
    /// The delivery's type (header, else property) is not the queue's request type.
    #[error("undecodable: type {found:?} is not {expected}")]
    WrongType {
        found: String,
        expected: &'static str,
    },
    /// The body is not the request it says it is.
    #[error("undecodable: {0}")]
    Undecodable(#[from] DecodeError),
    #[error("invalid: amount_cents is negative")]
    NegativeAmount,
    #[error("invalid: currency {0:?} is not an ISO 4217 code")]
    Currency(String),
}

/// The `J` request in a delivery, or why it can never be handled.
pub fn request_of<J: Job>(properties: &lapin::BasicProperties, body: &[u8]) -> Result<J, Poison> {
    let kind = message_type(properties).unwrap_or_default();
    if kind != J::TYPE {
        return Err(Poison::WrongType {
            found: kind,
            expected: J::TYPE,
        });
    }
    let request: J = decode(body)?;
    let (amount_cents, currency) = request.money();
    if amount_cents < 0 {
        return Err(Poison::NegativeAmount);
    }
    if currency.len() != 3 || !currency.bytes().all(|b| b.is_ascii_uppercase()) {
        return Err(Poison::Currency(currency.to_owned()));
    }
    Ok(request)
}
