//! What a drill asks of each simulated buyer: when they arrive, how they wait (WebSocket or
//! polling), whether they abandon, reconnect, retry their order, and how long they think.
//! Every choice is a pure function of the seed and the buyer's index, so a drill can be
//! replayed and split over processes without coordination.

use std::time::Duration;

use rand::rngs::SmallRng;
use rand::{Rng as _, SeedableRng as _};
use serde::{Deserialize, Serialize};

/// How the crowd arrives.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Arrival {
    /// Everyone at t = 0, the sale already open.
    Burst,
    /// Evenly spread over `--ramp-secs`, the sale already open.
    Ramp,
    /// Most arrive before the sale opens (the pre-queue, shuffled at opening); the rest
    /// (`--late-share`) arrive after opening and queue in order.
    PreQueue,
}

/// When each buyer arrives, relative to t = 0.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Schedule {
    pub arrival: Arrival,
    pub users: usize,
    /// Length of the ramp (`Ramp`), or of the late arrivals' ramp (`PreQueue`).
    pub ramp_ms: u64,
    /// Time from t = 0 to the sale's opening (`PreQueue`), else 0.
    pub opens_ms: u64,
    /// Share of buyers arriving after opening (`PreQueue`).
    pub late_share: f64,
}

/// Margin between the pre-queue's last arrival and the opening, and between the opening and
/// the first late arrival, so that "before" and "after" opening are unambiguous.
pub const OPENING_MARGIN_MS: u64 = 1_000;

impl Schedule {
    fn early(&self) -> usize {
        let late = (self.users as f64 * self.late_share.clamp(0.0, 1.0)).round() as usize;
        self.users - late.min(self.users)
    }

    /// Buyer `index`'s arrival, in ms after t = 0.
    #[must_use]
    pub fn arrival_ms(&self, index: usize) -> u64 {
        let spread = |i: usize, n: usize, span: u64| {
            if n <= 1 {
                0
            } else {
                (i as u64).saturating_mul(span) / (n as u64)
            }
        };
        match self.arrival {
            Arrival::Burst => 0,
            Arrival::Ramp => spread(index, self.users, self.ramp_ms),
            Arrival::PreQueue => {
                let early = self.early();
                if index < early {
                    spread(
                        index,
                        early,
                        self.opens_ms.saturating_sub(OPENING_MARGIN_MS),
                    )
                } else {
                    self.opens_ms
                        + OPENING_MARGIN_MS
                        + spread(index - early, self.users - early, self.ramp_ms)
                }
            }
        }
    }
}

/// How buyers behave; shares are fractions of the crowd.
#[derive(Clone, Debug, Serialize, Deserialize, clap::Args)]
pub struct Behaviour {
    /// Share of buyers who poll `/status` instead of holding a WebSocket.
    #[arg(long, default_value_t = 0.2)]
    pub polling_share: f64,
    /// Share of buyers who give up while waiting (they `leave`; if admitted first, they leave
    /// without buying).
    #[arg(long, default_value_t = 0.05)]
    pub abandon_share: f64,
    /// Share of buyers who reconnect mid-wait (a new socket, or a poller's page reload that
    /// joins again) and must keep their place.
    #[arg(long, default_value_t = 0.1)]
    pub reconnect_share: f64,
    /// Share of buyers who send their order twice with the same `Idempotency-Key` (half one
    /// after the other, half at once) and must get the same order.
    #[arg(long, default_value_t = 0.1)]
    pub retry_share: f64,
    /// Tickets per order.
    #[arg(long, default_value_t = 1)]
    pub quantity: u32,
    /// Longest think time between admission and the order (each buyer: uniform up to this).
    #[arg(long, default_value_t = 300)]
    pub think_ms: u64,
    /// Interval of polling buyers' status requests (±20 % jitter).
    #[arg(long, default_value_t = 1_000)]
    pub poll_interval_ms: u64,
    /// Interval at which buyers check their order until it is final (±20 % jitter).
    #[arg(long, default_value_t = 2_000)]
    pub follow_interval_ms: u64,
    /// Seed of every random choice.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
}

/// How a buyer waits for admission.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Client {
    Socket,
    Polling,
}

/// How a retrying buyer repeats their order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Repeat {
    /// Again after the first answer (a lost response).
    After,
    /// Twice at once (a double click).
    AtOnce,
}

/// One buyer's part in the drill.
#[derive(Clone, Copy, Debug)]
pub struct Traits {
    pub client: Client,
    pub arrival: Duration,
    /// Gives up this long after joining.
    pub abandon_after: Option<Duration>,
    /// Reconnects this long after the first answer in the queue.
    pub reconnect_after: Option<Duration>,
    pub repeat: Option<Repeat>,
    pub think: Duration,
    /// Jitter factor for this buyer's polling, in [0.8, 1.2).
    pub jitter: f64,
}

impl Behaviour {
    /// Buyer `index`'s traits.
    #[must_use]
    pub fn traits(&self, schedule: &Schedule, index: usize) -> Traits {
        let mut rng =
            SmallRng::seed_from_u64(self.seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ index as u64);
        let mut chance = |share: f64| rng.random::<f64>() < share;
        let client = if chance(self.polling_share) {
            Client::Polling
        } else {
            Client::Socket
        };
        let abandons = chance(self.abandon_share);
        let reconnects = chance(self.reconnect_share);
        let retries = chance(self.retry_share);
        Traits {
            client,
            arrival: Duration::from_millis(schedule.arrival_ms(index)),
            abandon_after: abandons.then(|| Duration::from_millis(rng.random_range(200..8_000))),
            reconnect_after: reconnects
                .then(|| Duration::from_millis(rng.random_range(100..3_000))),
            repeat: retries.then(|| {
                if rng.random::<bool>() {
                    Repeat::After
                } else {
                    Repeat::AtOnce
                }
            }),
            think: Duration::from_millis(rng.random_range(0..=self.think_ms)),
            jitter: rng.random_range(0.8..1.2),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schedule(arrival: Arrival) -> Schedule {
        Schedule {
            arrival,
            users: 1_000,
            ramp_ms: 10_000,
            opens_ms: 5_000,
            late_share: 0.2,
        }
    }

    #[test]
    fn arrivals_follow_the_chosen_shape() {
        let burst = schedule(Arrival::Burst);
        assert!((0..1_000).all(|i| burst.arrival_ms(i) == 0));

        let ramp = schedule(Arrival::Ramp);
        assert_eq!(ramp.arrival_ms(0), 0);
        assert_eq!(ramp.arrival_ms(500), 5_000);
        assert!(ramp.arrival_ms(999) < 10_000);
        assert!((1..1_000).all(|i| ramp.arrival_ms(i) >= ramp.arrival_ms(i - 1)));

        let pre = schedule(Arrival::PreQueue);
        let before = (0..1_000)
            .filter(|&i| pre.arrival_ms(i) + OPENING_MARGIN_MS <= pre.opens_ms)
            .count();
        let after = (0..1_000)
            .filter(|&i| pre.arrival_ms(i) >= pre.opens_ms + OPENING_MARGIN_MS)
            .count();
        assert_eq!((before, after), (800, 200));
    }

    #[test]
    fn traits_are_a_function_of_seed_and_index_in_the_asked_shares() {
        let behaviour = Behaviour {
            polling_share: 0.25,
            abandon_share: 0.1,
            reconnect_share: 0.0,
            retry_share: 1.0,
            quantity: 1,
            think_ms: 100,
            poll_interval_ms: 1_000,
            follow_interval_ms: 1_000,
            seed: 7,
        };
        let schedule = schedule(Arrival::Burst);
        let all: Vec<Traits> = (0..4_000).map(|i| behaviour.traits(&schedule, i)).collect();
        let polling = all.iter().filter(|t| t.client == Client::Polling).count();
        let abandoning = all.iter().filter(|t| t.abandon_after.is_some()).count();
        assert!((900..1_100).contains(&polling), "{polling}");
        assert!((300..500).contains(&abandoning), "{abandoning}");
        assert!(
            all.iter()
                .all(|t| t.reconnect_after.is_none() && t.repeat.is_some())
        );
        assert!(all.iter().all(|t| t.think <= Duration::from_millis(100)));
        let again = behaviour.traits(&schedule, 17);
        assert_eq!(again.client, all[17].client);
        assert_eq!(again.think, all[17].think);
        assert_eq!(again.abandon_after, all[17].abandon_after);
    }
}
