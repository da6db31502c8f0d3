//! The payment provider behind a small trait, and the simulated one the suite ships with.

use std::time::Duration;

use flash_protocol::messages::{PaymentRefundRequested, PaymentRequested};
use futures::future::BoxFuture;
use uuid::Uuid;

use crate::config::ProviderConfig;

/// The provider's answer to a charge.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    Approved,
    /// Declined for good, with the reason the buyer is shown.
    Declined(String),
}

/// The provider's answer to a refund.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RefundVerdict {
    Refunded,
    /// Refused for good, with the provider's reason: someone must give the money back by hand.
    Failed(String),
}

/// A failure worth trying again later (the provider was unreachable, overloaded, timed out).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Transient(pub String);

/// Charges a payment. `attempt` counts from 1. Implementations must be idempotent by
/// `payment_id` (a real provider takes it as its idempotency key): charging the same payment
/// again yields the same verdict, never a second charge.
///
/// Refunds are idempotent by `payment_id` too: a payment is refunded in full at most once,
/// and asking again yields the same verdict.
pub trait Provider: Send + Sync + 'static {
    fn charge<'a>(
        &'a self,
        request: &'a PaymentRequested,
        attempt: u32,
    ) -> BoxFuture<'a, Result<Verdict, Transient>>;

    fn refund<'a>(
        &'a self,
        request: &'a PaymentRefundRequested,
        attempt: u32,
    ) -> BoxFuture<'a, Result<RefundVerdict, Transient>>;
}

/// Reasons a simulated decline gives.
const DECLINE_REASONS: [&str; 3] = ["card_declined", "insufficient_funds", "do_not_honor"];

/// Draws of the simulation, each salted so they are independent.
const SALT_DECLINE: u64 = 1;
const SALT_REASON: u64 = 2;
const SALT_TRANSIENT: u64 = 0x100;
const SALT_LATENCY: u64 = 0x200;
const SALT_LATENCY_2: u64 = 0x300;
/// A refund's draws are its payment's, moved apart by this.
const SALT_REFUND: u64 = 0x1000;

/// Why the simulated provider refuses a refund: it never captured that payment.
pub const NOT_CAPTURED: &str = "not_captured";

/// A provider whose every decision is a pure function of the seed, the `payment_id` and the
/// attempt: reproducible in tests and drills, and the same verdict for a redelivered request.
#[derive(Clone, Debug)]
pub struct Simulated {
    config: ProviderConfig,
}

impl Simulated {
    #[must_use]
    pub fn new(config: ProviderConfig) -> Self {
        Self { config }
    }

    /// A uniform draw in [0, 1) for this payment and salt.
    fn draw(&self, payment: Uuid, salt: u64) -> f64 {
        let (hi, lo) = payment.as_u64_pair();
        let mixed = splitmix64(splitmix64(self.config.seed ^ salt) ^ hi) ^ lo;
        // The top 53 bits as a fraction.
        (splitmix64(mixed) >> 11) as f64 / (1u64 << 53) as f64
    }

    /// What the provider will say for this payment, whatever the attempt.
    #[must_use]
    pub fn verdict(&self, payment: Uuid) -> Verdict {
        if self.draw(payment, SALT_DECLINE) < self.config.decline_rate {
            let pick = self.draw(payment, SALT_REASON) * DECLINE_REASONS.len() as f64;
            let reason = DECLINE_REASONS
                .get(pick as usize)
                .unwrap_or(&DECLINE_REASONS[0]);
            Verdict::Declined((*reason).to_owned())
        } else {
            Verdict::Approved
        }
    }

    /// Whether this attempt fails transiently.
    #[must_use]
    pub fn fails(&self, payment: Uuid, attempt: u32) -> bool {
        self.draw(payment, SALT_TRANSIENT + u64::from(attempt)) < self.config.transient_rate
    }

    /// What the provider says to refunding this payment: refunded when it approved the
    /// charge, refused (`not_captured`) when it declined it.
    #[must_use]
    pub fn refund_verdict(&self, payment: Uuid) -> RefundVerdict {
        match self.verdict(payment) {
            Verdict::Approved => RefundVerdict::Refunded,
            Verdict::Declined(_) => RefundVerdict::Failed(NOT_CAPTURED.to_owned()),
        }
    }

    /// Latency and transient failure for a call: a refund's attempts are drawn apart from the
    /// charge's.
    async fn call(&self, payment: Uuid, attempt: u32, salt: u64) -> Result<(), Transient> {
        let draw = attempt.saturating_add(u32::try_from(salt).unwrap_or(0));
        let latency = self.latency(payment, draw);
        if !latency.is_zero() {
            tokio::time::sleep(latency).await;
        }
        if self.fails(payment, draw) {
            return Err(Transient("the provider is unavailable (simulated)".into()));
        }
        Ok(())
    }

    /// The latency of this attempt: log-normal with the configured median and 99th percentile.
    #[must_use]
    pub fn latency(&self, payment: Uuid, attempt: u32) -> Duration {
        let p50 = self.config.latency_p50_ms.max(0.0);
        if p50 == 0.0 {
            return Duration::ZERO;
        }
        let p99 = self.config.latency_p99_ms.max(p50);
        // z of the 99th percentile of the standard normal.
        let sigma = (p99 / p50).ln() / 2.326_348;
        // Box–Muller from two draws.
        let u1 = self
            .draw(payment, SALT_LATENCY + u64::from(attempt))
            .max(f64::MIN_POSITIVE);
        let u2 = self.draw(payment, SALT_LATENCY_2 + u64::from(attempt));
        let z = (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos();
        let ms = p50 * (sigma * z).exp();
        Duration::from_secs_f64((ms / 1000.0).clamp(0.0, 3600.0))
    }
}

impl Provider for Simulated {
    fn charge<'a>(
        &'a self,
        request: &'a PaymentRequested,
        attempt: u32,
    ) -> BoxFuture<'a, Result<Verdict, Transient>> {
        Box::pin(async move {
            let payment = request.payment_id.0;
            self.call(payment, attempt, 0).await?;
            Ok(self.verdict(payment))
        })
    }

    fn refund<'a>(
        &'a self,
        request: &'a PaymentRefundRequested,
        attempt: u32,
    ) -> BoxFuture<'a, Result<RefundVerdict, Transient>> {
        Box::pin(async move {
            let payment = request.payment_id.0;
            self.call(payment, attempt, SALT_REFUND).await?;
            Ok(self.refund_verdict(payment))
        })
    }
}

/// SplitMix64's finaliser: a well-mixed 64-bit hash of a 64-bit input.
fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn simulated(decline_rate: f64, transient_rate: f64) -> Simulated {
        Simulated::new(ProviderConfig {
            seed: 7,
            latency_p50_ms: 50.0,
            latency_p99_ms: 250.0,
            decline_rate,
            transient_rate,
        })
    }

    #[test]
    fn the_same_payment_gets_the_same_verdict_from_every_instance() {
        let (a, b) = (simulated(0.5, 0.0), simulated(0.5, 0.0));
        for _ in 0..1000 {
            let id = Uuid::new_v4();
            assert_eq!(a.verdict(id), b.verdict(id));
            assert_eq!(a.latency(id, 1), b.latency(id, 1));
        }
    }

    #[test]
    fn rates_and_latency_follow_the_configuration() {
        let provider = simulated(0.2, 0.1);
        let ids: Vec<Uuid> = (0..20_000).map(|_| Uuid::new_v4()).collect();
        let declined = ids
            .iter()
            .filter(|id| provider.verdict(**id) != Verdict::Approved)
            .count();
        let failing = ids.iter().filter(|id| provider.fails(**id, 1)).count();
        assert!(
            (3_600..4_400).contains(&declined),
            "{declined} declined of 20,000"
        );
        assert!(
            (1_700..2_300).contains(&failing),
            "{failing} failures of 20,000"
        );
        let mut latencies: Vec<Duration> = ids.iter().map(|id| provider.latency(*id, 1)).collect();
        latencies.sort_unstable();
        let p50 = latencies[latencies.len() / 2].as_secs_f64() * 1000.0;
        let p99 = latencies[latencies.len() * 99 / 100].as_secs_f64() * 1000.0;
        assert!((45.0..55.0).contains(&p50), "p50 {p50} ms");
        assert!((210.0..290.0).contains(&p99), "p99 {p99} ms");
    }

    #[test]
    fn a_payment_is_refunded_exactly_when_it_was_approved() {
        let provider = simulated(0.3, 0.0);
        let mut refused = 0;
        for _ in 0..2000 {
            let id = Uuid::new_v4();
            match (provider.verdict(id), provider.refund_verdict(id)) {
                (Verdict::Approved, RefundVerdict::Refunded) => {}
                (Verdict::Declined(_), RefundVerdict::Failed(reason)) => {
                    assert_eq!(reason, NOT_CAPTURED);
                    refused += 1;
                }
                other => panic!("{other:?}"),
            }
        }
        assert!((450..750).contains(&refused), "{refused} refused of 2,000");
    }

    #[test]
    fn a_different_seed_decides_differently_and_zero_latency_is_zero() {
        let a = simulated(0.5, 0.0);
        let mut config = a.config;
        config.seed = 8;
        config.latency_p50_ms = 0.0;
        let b = Simulated::new(config);
        let ids: Vec<Uuid> = (0..200).map(|_| Uuid::new_v4()).collect();
        assert!(ids.iter().any(|id| a.verdict(*id) != b.verdict(*id)));
        assert!(ids.iter().all(|id| b.latency(*id, 1).is_zero()));
    }
}
