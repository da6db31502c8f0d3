//! Argon2id password hashes (PHC strings), computed on a bounded pool of their own.
//!
//! Each hash takes `ARGON2_MEMORY_KIB` of memory for its whole run, so the number running at
//! once is what bounds the api's memory under a flood of logins: at most
//! `min(threads, memory budget / memory per hash)` hashes run at once, on that many threads of
//! their own (never the async runtime's, never its blocking pool). A call that cannot get a
//! slot within `ARGON2_QUEUE_WAIT_MS` is refused at once ([`PasswordError::Busy`], answered
//! 503 `UNAVAILABLE` with `Retry-After`), so a flood costs the api a bounded amount of memory
//! and CPU and leaves the rest of the api its share.

use std::sync::{Arc, Mutex, mpsc};
use std::time::Duration;

use argon2::password_hash::phc::PasswordHash;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use argon2::{Algorithm, Argon2, Params, Version};
use secrecy::{ExposeSecret, SecretString};
use tokio::sync::{Semaphore, SemaphorePermit, oneshot};

use crate::config::Argon2Config;

#[derive(Debug, thiserror::Error)]
pub enum PasswordError {
    #[error("invalid argon2 parameters: {0}")]
    Params(String),
    #[error("hashing failed: {0}")]
    Hash(String),
    /// Every hashing slot stayed taken for the whole wait.
    #[error("password hashing is saturated; retry in {} ms", retry_after.as_millis())]
    Busy { retry_after: Duration },
    #[error("the hashing pool stopped")]
    Stopped,
    #[error("cannot start a hashing thread: {0}")]
    Thread(#[from] std::io::Error),
}

/// How many hashes run at once for a configuration, and why.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Capacity {
    /// Hashes running at once (threads of the pool).
    pub slots: usize,
    /// Memory they take at most, KiB.
    pub memory_kib: u64,
}

impl Capacity {
    /// `min(threads, budget / memory per hash)`, at least 1; `threads` 0 means
    /// max(1, cores − 1), so hashing never takes every core.
    #[must_use]
    pub fn of(config: &Argon2Config, cores: usize) -> Self {
        let threads = if config.threads == 0 {
            cores.saturating_sub(1).max(1)
        } else {
            config.threads
        };
        let per_hash = u64::from(config.memory_kib.max(1));
        let budget = config.memory_budget_mib.saturating_mul(1024);
        let by_memory = usize::try_from(budget / per_hash).unwrap_or(usize::MAX);
        let slots = threads.min(by_memory).max(1);
        Self {
            slots,
            memory_kib: per_hash.saturating_mul(slots as u64),
        }
    }
}

type Job = Box<dyn FnOnce() + Send>;

/// `wait` × a factor drawn from [0.75, 1.25).
fn jittered(wait: Duration) -> Duration {
    use std::hash::{BuildHasher as _, Hasher as _};
    // A fresh RandomState hashes to a different value each time: randomness enough for a
    // jitter, without a generator to share.
    let draw = std::collections::hash_map::RandomState::new()
        .build_hasher()
        .finish();
    let factor = 0.75 + (draw % 1_000) as f64 / 2_000.0;
    wait.mul_f64(factor)
}

/// Gives this thread the nice value `nice` (Linux: per thread), so that requests get the CPU
/// before hashes do. A refusal is logged and changes nothing else.
fn lower_priority(nice: i32) {
    if let Err(error) = flash_kit::priority::lower_this_thread(nice) {
        tracing::warn!(%error, nice, "cannot lower the priority of a hashing thread");
    }
}

/// Threads that run hashing jobs, and the slots that admit them.
struct Pool {
    slots: Semaphore,
    jobs: Mutex<Option<mpsc::Sender<Job>>>,
    wait: Duration,
}

impl Pool {
    fn start(capacity: Capacity, wait: Duration, nice: i32) -> Result<Self, PasswordError> {
        let (sender, receiver) = mpsc::channel::<Job>();
        let receiver = Arc::new(Mutex::new(receiver));
        for i in 0..capacity.slots {
            let receiver = Arc::clone(&receiver);
            std::thread::Builder::new()
                .name(format!("argon2-{i}"))
                .spawn(move || {
                    lower_priority(nice);
                    loop {
                        let job = {
                            let queue = receiver
                                .lock()
                                .unwrap_or_else(std::sync::PoisonError::into_inner);
                            queue.recv()
                        };
                        match job {
                            Ok(job) => job(),
                            Err(_) => return,
                        }
                    }
                })?;
        }
        Ok(Self {
            slots: Semaphore::new(capacity.slots),
            jobs: Mutex::new(Some(sender)),
            wait,
        })
    }

    /// A slot, waited for at most the pool's wait (± a quarter, drawn each time: under a
    /// flood the refusals then come spread out, not in waves that all return at once).
    async fn slot(&self) -> Result<SemaphorePermit<'_>, PasswordError> {
        match tokio::time::timeout(jittered(self.wait), self.slots.acquire()).await {
            Ok(Ok(slot)) => Ok(slot),
            _ => {
                ::metrics::counter!("api_password_hashes_refused_total").increment(1);
                Err(PasswordError::Busy {
                    retry_after: Duration::from_secs(1),
                })
            }
        }
    }

    /// Runs `work` on the pool's threads, holding `slot` until it is done.
    async fn run<T: Send + 'static>(
        &self,
        slot: SemaphorePermit<'_>,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, PasswordError> {
        let (done, result) = oneshot::channel();
        let job: Job = Box::new(move || {
            let _ = done.send(work());
        });
        {
            let jobs = self
                .jobs
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            let sender = jobs.as_ref().ok_or(PasswordError::Stopped)?;
            sender.send(job).map_err(|_| PasswordError::Stopped)?;
        }
        let outcome = result.await.map_err(|_| PasswordError::Stopped);
        drop(slot);
        outcome
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        // Closing the queue ends every thread once it is idle.
        self.jobs
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
    }
}

/// Hashes and verifies passwords with the configured Argon2id cost on the bounded pool.
#[derive(Clone)]
pub struct PasswordHashing {
    params: Params,
    pool: Arc<Pool>,
    capacity: Capacity,
}

impl std::fmt::Debug for PasswordHashing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PasswordHashing")
            .field("capacity", &self.capacity)
            .finish_non_exhaustive()
    }
}

impl PasswordHashing {
    /// The pool for `config`, sized for this machine's cores.
    pub fn new(config: Argon2Config) -> Result<Self, PasswordError> {
        let cores = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
        Self::with_capacity(config, Capacity::of(&config, cores))
    }

    /// The pool with an explicit capacity.
    pub fn with_capacity(config: Argon2Config, capacity: Capacity) -> Result<Self, PasswordError> {
        let params = Params::new(
            config.memory_kib,
            config.iterations,
            config.parallelism,
            None,
        )
        .map_err(|e| PasswordError::Params(e.to_string()))?;
        let pool = Pool::start(
            capacity,
            Duration::from_millis(config.queue_wait_ms),
            config.nice,
        )?;
        tracing::info!(
            slots = capacity.slots,
            memory_mib = capacity.memory_kib / 1024,
            "password hashing pool ready"
        );
        Ok(Self {
            params,
            pool: Arc::new(pool),
            capacity,
        })
    }

    #[must_use]
    pub fn capacity(&self) -> Capacity {
        self.capacity
    }

    fn argon2(&self) -> Argon2<'static> {
        Argon2::new(Algorithm::Argon2id, Version::V0x13, self.params.clone())
    }

    /// A turn at hashing: a slot of the pool, waited for at most `ARGON2_QUEUE_WAIT_MS`
    /// ([`PasswordError::Busy`] otherwise). Take it before the other work a hash needs (e.g.
    /// reading the account), so that a call refused for want of a slot costs nothing more.
    pub async fn turn(&self) -> Result<Turn<'_>, PasswordError> {
        Ok(Turn {
            hashing: self,
            slot: self.pool.slot().await?,
        })
    }

    /// A PHC string (`$argon2id$v=19$…`) with a random salt.
    pub async fn hash(&self, password: SecretString) -> Result<String, PasswordError> {
        self.turn().await?.hash(password).await
    }

    /// Whether `password` matches `phc` (see [`Turn::verify`]).
    pub async fn verify(&self, password: SecretString, phc: String) -> Result<bool, PasswordError> {
        self.turn().await?.verify(password, phc).await
    }
}

/// A slot of the hashing pool, held until its one hash is done (or it is dropped).
pub struct Turn<'a> {
    hashing: &'a PasswordHashing,
    slot: SemaphorePermit<'a>,
}

impl Turn<'_> {
    /// A PHC string (`$argon2id$v=19$…`) with a random salt.
    pub async fn hash(self, password: SecretString) -> Result<String, PasswordError> {
        let argon2 = self.hashing.argon2();
        self.hashing
            .pool
            .run(self.slot, move || {
                argon2
                    .hash_password(password.expose_secret().as_bytes())
                    .map(|hash| hash.to_string())
                    .map_err(|e| PasswordError::Hash(e.to_string()))
            })
            .await?
    }

    /// Whether `password` matches `phc` (the hash's own parameters are used). A malformed
    /// stored hash never matches.
    pub async fn verify(self, password: SecretString, phc: String) -> Result<bool, PasswordError> {
        let argon2 = self.hashing.argon2();
        self.hashing
            .pool
            .run(self.slot, move || {
                PasswordHash::new(&phc).is_ok_and(|parsed| {
                    argon2
                        .verify_password(password.expose_secret().as_bytes(), &parsed)
                        .is_ok()
                })
            })
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(memory_kib: u32, budget_mib: u64, threads: usize) -> Argon2Config {
        Argon2Config {
            memory_kib,
            iterations: 1,
            parallelism: 1,
            memory_budget_mib: budget_mib,
            threads,
            queue_wait_ms: 50,
            nice: 10,
        }
    }

    /// A pool of one slot at a cheap cost.
    fn one_slot() -> PasswordHashing {
        PasswordHashing::with_capacity(
            config(1024, 256, 1),
            Capacity {
                slots: 1,
                memory_kib: 1024,
            },
        )
        .expect("pool")
    }

    #[test]
    fn waits_are_spread_around_the_configured_one() {
        let wait = Duration::from_millis(200);
        let draws: std::collections::HashSet<Duration> = (0..200).map(|_| jittered(wait)).collect();
        assert!(draws.len() > 50, "the waits differ: {}", draws.len());
        for d in &draws {
            assert!(
                *d >= Duration::from_millis(150) && *d < Duration::from_millis(250),
                "{d:?}"
            );
        }
    }

    #[tokio::test]
    async fn hashes_run_on_threads_that_give_way_to_requests() {
        let hashing = one_slot();
        let slot = hashing.pool.slot().await.expect("slot");
        let on_pool = hashing
            .pool
            .run(slot, flash_kit::priority::of_this_thread)
            .await
            .expect("ran")
            .expect("priority");
        let here = flash_kit::priority::of_this_thread().expect("priority");
        // 10, unless the process already runs nicer (raising a thread's priority needs a
        // privilege; the thread then keeps the process's).
        assert_eq!(on_pool, here.max(10));
    }

    #[test]
    fn capacity_is_bounded_by_threads_and_by_memory() {
        // Production cost, 256 MiB budget, 8 cores: 7 threads, 13 would fit.
        let c = Capacity::of(&config(19_456, 256, 0), 8);
        assert_eq!(c.slots, 7);
        // 64 MiB budget: 3 hashes of 19 MiB.
        assert_eq!(Capacity::of(&config(19_456, 64, 0), 8).slots, 3);
        // Two cores: one thread for hashing, the other for everything else.
        assert_eq!(Capacity::of(&config(1024, 256, 0), 2).slots, 1);
        assert_eq!(Capacity::of(&config(1024, 256, 0), 1).slots, 1);
        // A budget smaller than one hash still allows one.
        assert_eq!(Capacity::of(&config(19_456, 1, 4), 8).slots, 1);
        assert_eq!(Capacity::of(&config(1024, 256, 4), 8).slots, 4);
        assert_eq!(c.memory_kib, 7 * 19_456);
    }

    #[tokio::test]
    async fn hashes_verify_and_a_full_pool_refuses_at_once_after_its_wait() {
        let hashing = one_slot();
        let phc = hashing
            .hash(SecretString::from("correct horse"))
            .await
            .expect("hash");
        assert!(phc.starts_with("$argon2id$"));
        assert!(
            hashing
                .verify(SecretString::from("correct horse"), phc.clone())
                .await
                .expect("verify")
        );
        assert!(
            !hashing
                .verify(SecretString::from("wrong"), phc.clone())
                .await
                .expect("verify")
        );
        assert!(
            !hashing
                .verify(SecretString::from("x"), "not a phc".into())
                .await
                .expect("verify")
        );

        // Hold the only slot with a slow job; the next call waits 50 ms and is refused.
        let pool = Arc::clone(&hashing.pool);
        let (release, hold) = std::sync::mpsc::channel::<()>();
        let busy = tokio::spawn(async move {
            let slot = pool.slot().await?;
            pool.run(slot, move || {
                let _ = hold.recv();
            })
            .await
        });
        tokio::time::sleep(Duration::from_millis(20)).await;
        let started = std::time::Instant::now();
        let refused = hashing.hash(SecretString::from("another")).await;
        assert!(
            matches!(refused, Err(PasswordError::Busy { .. })),
            "{refused:?}"
        );
        assert!(started.elapsed() < Duration::from_secs(1));
        release.send(()).expect("release");
        busy.await.expect("joined").expect("ran");
        hashing
            .hash(SecretString::from("another"))
            .await
            .expect("a free slot again");
    }
}
