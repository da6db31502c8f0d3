//! Signature checks made together. Checking one Ed25519 signature is the largest cost of a
//! request that carries a new token (a join with a fresh access token: about half the
//! gateway's CPU for it). Checking n signatures of one key as one batch costs about a third
//! of n checks on this project's machines (`BENCHMARKS.md`). [`Batcher`] gathers the checks of
//! concurrent requests on a thread of its own: whatever arrived while it was busy is checked
//! as the next batch, so a lone request waits for nothing and a crowd's requests share the
//! work. A batch that fails is checked one signature at a time, so one bad signature refuses
//! only its own request (and a flood of forged tokens costs about a check each, as without
//! batches, plus the failed batch's share).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TryRecvError, TrySendError};
use std::sync::{Arc, OnceLock};

use ed25519_zebra::batch::{Item, Verifier as Batch};
use ed25519_zebra::{Signature, VerificationKeyBytes};
use rand08::SeedableRng as _;
use rand08::rngs::StdRng;
use tokio::sync::oneshot;

/// Most signatures checked as one batch (past a few dozen, a bigger batch saves little and
/// makes its requests wait longer).
pub const MOST_AT_ONCE: usize = 64;
/// Most checks waiting for the batch thread; past it, a request checks its own signature.
pub const MOST_WAITING: usize = 4_096;

/// One signature to check: a key, a signature and (hashed) the message it signs.
#[derive(Clone)]
pub struct SignatureCheck(Item);

impl std::fmt::Debug for SignatureCheck {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SignatureCheck")
    }
}

impl SignatureCheck {
    #[must_use]
    pub fn new(key: VerificationKeyBytes, signature: Signature, message: &str) -> Self {
        Self(Item::from((key, signature, message.as_bytes())))
    }

    /// Whether the signature holds, checked alone.
    #[must_use]
    pub fn holds(&self) -> bool {
        self.0.clone().verify_single().is_ok()
    }
}

/// Whether each signature holds: checked as one batch, and one at a time if the batch fails.
pub fn each_holds(checks: &[&SignatureCheck], rng: &mut StdRng) -> Vec<bool> {
    if let [one] = checks {
        return vec![one.holds()];
    }
    let mut batch = Batch::new();
    for check in checks {
        batch.queue(check.0.clone());
    }
    if batch.verify(&mut *rng).is_ok() {
        vec![true; checks.len()]
    } else {
        checks.iter().map(|check| check.holds()).collect()
    }
}

struct Job {
    check: SignatureCheck,
    answer: oneshot::Sender<bool>,
}

/// What a [`Batcher`]'s thread has done so far.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Batches {
    /// Signatures checked.
    pub signatures: u64,
    /// Batches they were checked in (one per signature when requests came one at a time).
    pub batches: u64,
}

#[derive(Default)]
struct Counts {
    signatures: AtomicU64,
    batches: AtomicU64,
}

/// Checks signatures of concurrent requests in batches, on a thread started at its first use
/// and ended when the batcher is dropped.
#[derive(Default)]
pub struct Batcher {
    queue: OnceLock<Option<SyncSender<Job>>>,
    counts: Arc<Counts>,
}

impl std::fmt::Debug for Batcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Batcher")
            .field("started", &self.queue.get().is_some_and(Option::is_some))
            .field("done", &self.done())
            .finish()
    }
}

impl Batcher {
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Whether the signature holds: checked in the next batch, or here and now if the batch
    /// thread could not start or has [`MOST_WAITING`] checks waiting already.
    pub async fn holds(&self, check: SignatureCheck) -> bool {
        let Some(queue) = self.queue.get_or_init(|| start(Arc::clone(&self.counts))) else {
            return check.holds();
        };
        let (answer, verdict) = oneshot::channel();
        match queue.try_send(Job { check, answer }) {
            // The thread answers every job it takes; without an answer, nothing was checked.
            Ok(()) => verdict.await.unwrap_or(false),
            Err(TrySendError::Full(job) | TrySendError::Disconnected(job)) => job.check.holds(),
        }
    }

    /// What the batch thread has done so far.
    #[must_use]
    pub fn done(&self) -> Batches {
        Batches {
            signatures: self.counts.signatures.load(Ordering::Relaxed),
            batches: self.counts.batches.load(Ordering::Relaxed),
        }
    }
}

/// The batch thread's queue, or `None` when the thread or its randomness is not to be had.
fn start(counts: Arc<Counts>) -> Option<SyncSender<Job>> {
    // The batch equation's weights must be unpredictable to whoever made the signatures.
    let rng = StdRng::from_rng(rand08::rngs::OsRng).ok()?;
    let (queue, jobs) = std::sync::mpsc::sync_channel(MOST_WAITING);
    std::thread::Builder::new()
        .name("token-batch".into())
        .spawn(move || run(&jobs, rng, &counts))
        .ok()?;
    Some(queue)
}

fn run(jobs: &Receiver<Job>, mut rng: StdRng, counts: &Counts) {
    let mut batch = Vec::with_capacity(MOST_AT_ONCE);
    while let Ok(first) = jobs.recv() {
        batch.push(first);
        while batch.len() < MOST_AT_ONCE {
            match jobs.try_recv() {
                Ok(job) => batch.push(job),
                Err(TryRecvError::Empty | TryRecvError::Disconnected) => break,
            }
        }
        let checks: Vec<&SignatureCheck> = batch.iter().map(|job| &job.check).collect();
        let verdicts = each_holds(&checks, &mut rng);
        counts
            .signatures
            .fetch_add(checks.len() as u64, Ordering::Relaxed);
        counts.batches.fetch_add(1, Ordering::Relaxed);
        ::metrics::histogram!("auth_signature_batch_size").record(checks.len() as f64);
        for (job, holds) in batch.drain(..).zip(verdicts) {
            // The request may have gone (its client left): nobody to tell.
            let _ = job.answer.send(holds);
        }
    }
}
