//! The consumer of `pay.requests`: charge, publish the one outcome with a confirm, then ack.
//!
//! - A transient failure is re-published to the retry queue with a per-message TTL (the
//!   backoff) and the next attempt number in a header; when the TTL runs out the broker
//!   dead-letters it back to `payment.requested`. After the last attempt it goes to
//!   `pay.requests.dead` with the reason.
//! - An undecodable or invalid request goes to `pay.requests.dead` at once, with the reason.
//! - The delivery is acked only after what replaces it (outcome, retry or dead letter) is
//!   confirmed by the broker; if that fails it is requeued, so nothing is lost. A redelivered
//!   request gets the same outcome: the provider is idempotent by `payment_id`, and outcomes
//!   this process published are remembered and published again as they were.

use std::sync::Arc;
use std::time::Instant;

use flash_kit::amqp::{Disposition, Publisher, message_type};
use flash_protocol::messages::{
    ATTEMPTS_HEADER, DEAD_REASON_HEADER, DecodeError, Exchange, Message as _, PaymentCompleted,
    PaymentOutcome, PaymentRequested, decode, routing,
};
use lapin::message::Delivery;
use lapin::types::AMQPValue;
use time::OffsetDateTime;
use tokio::sync::Semaphore;
use uuid::Uuid;

use crate::config::WorkerConfig;
use crate::provider::{Provider, Verdict};

/// Outcomes remembered for redeliveries.
const REMEMBERED: u64 = 200_000;

/// Everything a delivery's handling needs.
pub struct Worker {
    config: WorkerConfig,
    provider: Arc<dyn Provider>,
    publisher: Publisher,
    calls: Semaphore,
    outcomes: moka::sync::Cache<Uuid, PaymentCompleted>,
}

impl Worker {
    #[must_use]
    pub fn new(config: WorkerConfig, provider: Arc<dyn Provider>, publisher: Publisher) -> Self {
        Self {
            config,
            provider,
            publisher,
            calls: Semaphore::new(config.concurrency.max(1)),
            outcomes: moka::sync::Cache::new(REMEMBERED),
        }
    }

    /// Handles one delivery and says how to settle it.
    pub async fn handle(&self, delivery: &Delivery) -> Disposition {
        ::metrics::gauge!("pay_in_flight").increment(1.0);
        let disposition = self.handle_inner(delivery).await;
        ::metrics::gauge!("pay_in_flight").decrement(1.0);
        disposition
    }

    async fn handle_inner(&self, delivery: &Delivery) -> Disposition {
        let attempt = attempt_of(&delivery.properties);
        let request = match request_of(&delivery.properties, &delivery.data) {
            Ok(request) => request,
            Err(poison) => {
                let reason = poison.to_string();
                tracing::warn!(%reason, "payment request dead-lettered");
                return self.dead_letter(delivery, "poison", &reason, attempt).await;
            }
        };
        let payment = request.payment_id.0;
        if let Some(done) = self.outcomes.get(&payment) {
            return self.complete(&done, "redelivered").await;
        }

        let started = Instant::now();
        let verdict = {
            let Ok(_permit) = self.calls.acquire().await else {
                return Disposition::Requeue;
            };
            match tokio::time::timeout(
                self.config.provider_timeout(),
                self.provider.charge(&request, attempt),
            )
            .await
            {
                Ok(verdict) => verdict,
                Err(_) => Err(crate::provider::Transient(format!(
                    "the provider did not answer within {} ms",
                    self.config.provider_timeout_ms
                ))),
            }
        };
        ::metrics::histogram!("pay_provider_seconds").record(started.elapsed().as_secs_f64());

        match verdict {
            Ok(verdict) => {
                let (outcome, reason) = match verdict {
                    Verdict::Approved => (PaymentOutcome::Approved, None),
                    Verdict::Declined(reason) => (PaymentOutcome::Declined, Some(reason)),
                };
                let completed = PaymentCompleted {
                    payment_id: request.payment_id,
                    order_id: request.order_id,
                    outcome,
                    reason,
                    processed_at: OffsetDateTime::now_utc(),
                };
                let disposition = self.complete(&completed, "new").await;
                if disposition == Disposition::Ack {
                    self.outcomes.insert(payment, completed);
                    let waited = OffsetDateTime::now_utc() - request.requested_at;
                    ::metrics::histogram!("pay_request_to_outcome_seconds")
                        .record(waited.as_seconds_f64().max(0.0));
                }
                disposition
            }
            Err(failure) if attempt >= self.config.max_attempts => {
                let reason = format!("retries exhausted after {attempt} attempts: {failure}");
                tracing::warn!(%payment, %reason, "payment request dead-lettered");
                self.dead_letter(delivery, "exhausted", &reason, attempt)
                    .await
            }
            Err(failure) => self.retry(delivery, attempt + 1, &failure.0).await,
        }
    }

    /// Publishes the outcome (message id: the payment id) and acks once it is confirmed.
    async fn complete(&self, completed: &PaymentCompleted, kind: &'static str) -> Disposition {
        match self
            .publisher
            .send(&completed.payment_id.to_string(), completed)
            .await
        {
            Ok(()) => {
                let outcome = match completed.outcome {
                    PaymentOutcome::Approved => "approved",
                    PaymentOutcome::Declined => "declined",
                };
                ::metrics::counter!("pay_processed_total", "outcome" => outcome, "delivery" => kind)
                    .increment(1);
                Disposition::Ack
            }
            Err(error) => {
                tracing::warn!(%error, payment = %completed.payment_id, "cannot publish the outcome; requeued");
                ::metrics::counter!("pay_publish_failures_total").increment(1);
                Disposition::Requeue
            }
        }
    }

    /// Parks the request in the retry queue for its backoff, as attempt `next`.
    async fn retry(&self, delivery: &Delivery, next: u32, failure: &str) -> Disposition {
        let wait = self.config.backoff(next);
        let properties = with_headers(&delivery.properties, next, None)
            .with_expiration(wait.as_millis().to_string().into());
        let disposition = self
            .move_to(delivery, routing::PAYMENT_RETRY, properties)
            .await;
        if disposition == Disposition::Ack {
            tracing::debug!(%failure, next, wait_ms = wait.as_millis() as u64, "payment retry scheduled");
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

/// The attempt a delivery is (1 unless a retry said otherwise, in the attempts header).
#[must_use]
pub fn attempt_of(properties: &lapin::BasicProperties) -> u32 {
    let value = properties
        .headers()
        .as_ref()
        .and_then(|headers| headers.inner().get(ATTEMPTS_HEADER).cloned());
    let attempt = match value {
        Some(AMQPValue::LongUInt(n)) => i64::from(n),
        Some(AMQPValue::LongInt(n)) => i64::from(n),
        Some(AMQPValue::LongLongInt(n)) => n,
        Some(AMQPValue::ShortInt(n)) => i64::from(n),
        Some(AMQPValue::ShortUInt(n)) => i64::from(n),
        _ => 1,
    };
    u32::try_from(attempt.max(1)).unwrap_or(u32::MAX)
}

/// Why a payment request can never be handled; its text is the dead letter's reason.
#[derive(Debug, thiserror::Error)]
pub enum Poison {
    /// The delivery's type (header, else property) is not `payment.requested`.
    #[error("undecodable: type {0:?} is not {expected}", expected = PaymentRequested::TYPE)]
    WrongType(String),
    /// The body is not a `payment.requested`.
    #[error("undecodable: {0}")]
    Undecodable(#[from] DecodeError),
    #[error("invalid: amount_cents is negative")]
    NegativeAmount,
    #[error("invalid: currency {0:?} is not an ISO 4217 code")]
    Currency(String),
}

/// The request in a delivery, or why it can never be handled.
pub fn request_of(
    properties: &lapin::BasicProperties,
    body: &[u8],
) -> Result<PaymentRequested, Poison> {
    let kind = message_type(properties).unwrap_or_default();
    if kind != PaymentRequested::TYPE {
        return Err(Poison::WrongType(kind));
    }
    let request: PaymentRequested = decode(body)?;
    if request.amount_cents < 0 {
        return Err(Poison::NegativeAmount);
    }
    if request.currency.len() != 3 || !request.currency.bytes().all(|b| b.is_ascii_uppercase()) {
        return Err(Poison::Currency(request.currency));
    }
    Ok(request)
}

/// Longest dead-letter reason, in bytes. The reason travels in a header, and a delivery's
/// headers must fit in one AMQP frame (128 KiB by default): a reason quoting a huge field of
/// a poison request would make every dead-lettering of it fail (the broker closes the
/// connection), so the request would be redelivered forever.
pub const MAX_REASON_BYTES: usize = 1024;

/// `reason` cut to at most [`MAX_REASON_BYTES`] (at a character boundary).
#[must_use]
pub fn bounded_reason(reason: &str) -> &str {
    let mut end = reason.len().min(MAX_REASON_BYTES);
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    &reason[..end]
}

/// A delivery's properties with the attempt (and a dead-letter reason, bounded) in its
/// headers, persistent.
#[must_use]
pub fn with_headers(
    properties: &lapin::BasicProperties,
    attempt: u32,
    reason: Option<&str>,
) -> lapin::BasicProperties {
    let mut headers = properties.headers().clone().unwrap_or_default();
    headers.insert(ATTEMPTS_HEADER.into(), AMQPValue::LongUInt(attempt));
    if let Some(reason) = reason {
        headers.insert(
            DEAD_REASON_HEADER.into(),
            AMQPValue::LongString(bounded_reason(reason).into()),
        );
    }
    properties
        .clone()
        .with_headers(headers)
        .with_delivery_mode(2)
}
