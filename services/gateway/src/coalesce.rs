//! Requests that arrive together share one script call (a group commit for Redis): while a
//! call for one event's joins (or status polls) is in flight, the requests that arrive for that
//! event wait in line, and the next call takes all of them (up to [`MAX_BATCH`]) in their order
//! of arrival. A request that finds nothing in flight goes at once, so a quiet queue adds no
//! delay; a busy one pays Redis's per-call costs (a round trip, the script's start, reading
//! the queue's settings, the reply) once per batch instead of once per request. Joins are
//! still numbered in their order of arrival at this gateway, a user who joins twice gets the
//! same place (the script is idempotent per user), and every status is read after the
//! request arrived, so it never shows a place its user already left.
//!
//! A call that Redis answers too late (the connection's response timeout) is made once more,
//! in its place in the line, before its requests are refused: both kinds are idempotent (a
//! join already numbered gets its number again), and the late call, which Redis still runs,
//! runs first on the same connection. One slow moment then delays a batch instead of failing
//! it; a second timeout in a row answers each request with the error.

use std::collections::HashMap;
use std::future::Future;
use std::marker::PhantomData;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use flash_protocol::{EventId, UserId};
use tokio::sync::oneshot;

use crate::challenge::Proof;
use crate::waiting_room::{Joined, RoomError, Snapshot, WaitingRoom};

/// Requests of one event in one script call, at most.
pub const MAX_BATCH: usize = 256;

/// One kind of request that can be combined: its call for several users at once.
pub trait Batch: Send + Sync + 'static {
    /// One request: the user, and what else the call needs of it.
    type Request: Send + 'static;
    type Answer: Send + 'static;
    /// The name of the kind, for the `gateway_batch_size{kind}` metric.
    const KIND: &'static str;
    /// One answer per request, in the order of `requests`.
    fn call(
        room: &WaitingRoom,
        event: EventId,
        requests: &[Self::Request],
    ) -> impl Future<Output = Result<Vec<Self::Answer>, RoomError>> + Send;
}

/// Joins: [`WaitingRoom::join_many`].
pub struct JoinBatch;

impl Batch for JoinBatch {
    type Request = (UserId, Proof);
    type Answer = (Joined, Snapshot);
    const KIND: &'static str = "join";

    fn call(
        room: &WaitingRoom,
        event: EventId,
        requests: &[Self::Request],
    ) -> impl Future<Output = Result<Vec<Self::Answer>, RoomError>> + Send {
        room.join_many_proved(event, requests)
    }
}

/// Status polls: [`WaitingRoom::snapshots`].
pub struct StatusBatch;

impl Batch for StatusBatch {
    type Request = UserId;
    type Answer = Snapshot;
    const KIND: &'static str = "status";

    fn call(
        room: &WaitingRoom,
        event: EventId,
        requests: &[Self::Request],
    ) -> impl Future<Output = Result<Vec<Self::Answer>, RoomError>> + Send {
        room.snapshots(event, requests)
    }
}

/// The joins of every event on this gateway, combined per event.
pub type Joins = Combiner<JoinBatch>;
/// The status polls of every event on this gateway, combined per event.
pub type Statuses = Combiner<StatusBatch>;

type Reply<B> = oneshot::Sender<Result<<B as Batch>::Answer, RoomError>>;

/// One event's requests waiting for the call in flight to end.
struct Line<B: Batch> {
    /// Whether a call for this event is in flight (its task takes the next batch after it).
    running: bool,
    waiting: Vec<(B::Request, Reply<B>)>,
}

impl<B: Batch> Default for Line<B> {
    fn default() -> Self {
        Self {
            running: false,
            waiting: Vec::new(),
        }
    }
}

/// Requests of one kind, combined per event.
pub struct Combiner<B: Batch> {
    lines: Mutex<HashMap<EventId, Line<B>>>,
    /// Script calls made so far.
    calls: AtomicU64,
    kind: PhantomData<B>,
}

impl<B: Batch> Default for Combiner<B> {
    fn default() -> Self {
        Self {
            lines: Mutex::default(),
            calls: AtomicU64::new(0),
            kind: PhantomData,
        }
    }
}

impl<B: Batch> std::fmt::Debug for Combiner<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Combiner")
            .field("kind", &B::KIND)
            .field("calls", &self.calls())
            .finish_non_exhaustive()
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl<B: Batch> Combiner<B> {
    /// Script calls made so far (each for one request or several).
    #[must_use]
    pub fn calls(&self) -> u64 {
        self.calls.load(Ordering::Relaxed)
    }

    /// A request on `event`, in one call with the requests that arrive meanwhile.
    pub async fn call(
        self: &Arc<Self>,
        room: &WaitingRoom,
        event: EventId,
        request: B::Request,
    ) -> Result<B::Answer, RoomError> {
        let (reply, answer) = oneshot::channel();
        let lead = {
            let mut lines = lock(&self.lines);
            let line = lines.entry(event).or_default();
            line.waiting.push((request, reply));
            !std::mem::replace(&mut line.running, true)
        };
        if lead {
            // Its own task: a client that goes away must not leave the others waiting.
            let (combiner, room) = (Arc::clone(self), room.clone());
            tokio::spawn(async move { combiner.drain(&room, event).await });
        }
        answer
            .await
            .map_err(|_| RoomError::Protocol("the request was dropped".into()))?
    }

    /// Calls Redis for `event`'s waiting requests, batch after batch, until none are left.
    async fn drain(&self, room: &WaitingRoom, event: EventId) {
        let _unwind = Unwind {
            lines: &self.lines,
            event,
        };
        loop {
            // The requests whose tasks are ready to run now join this batch: one pass of the
            // scheduler (no timer), so a quiet queue waits for nothing and a busy one sends
            // larger batches.
            tokio::task::yield_now().await;
            let batch = {
                let mut lines = lock(&self.lines);
                let Some(line) = lines.get_mut(&event) else {
                    return;
                };
                if line.waiting.is_empty() {
                    lines.remove(&event);
                    return;
                }
                let take = line.waiting.len().min(MAX_BATCH);
                line.waiting.drain(..take).unzip::<_, _, Vec<_>, Vec<_>>()
            };
            let (requests, batch) = batch;
            ::metrics::histogram!("gateway_batch_size", "kind" => B::KIND)
                .record(requests.len() as f64);
            self.calls.fetch_add(1, Ordering::Relaxed);
            let mut answers = B::call(room, event, &requests).await;
            if answers.as_ref().is_err_and(RoomError::is_timeout) {
                ::metrics::counter!("gateway_batch_retries_total", "kind" => B::KIND).increment(1);
                self.calls.fetch_add(1, Ordering::Relaxed);
                answers = B::call(room, event, &requests).await;
            }
            match answers {
                Ok(answers) if answers.len() == batch.len() => {
                    for (reply, answer) in batch.into_iter().zip(answers) {
                        let _ = reply.send(Ok(answer));
                    }
                }
                Ok(answers) => {
                    let error = Arc::new(RoomError::Protocol(format!(
                        "{} answers for {} requests",
                        answers.len(),
                        batch.len()
                    )));
                    for reply in batch {
                        let _ = reply.send(Err(RoomError::Shared(Arc::clone(&error))));
                    }
                }
                Err(error) => {
                    let error = Arc::new(error);
                    for reply in batch {
                        let _ = reply.send(Err(RoomError::Shared(Arc::clone(&error))));
                    }
                }
            }
        }
    }
}

/// Should a drain ever panic, its event's line is dropped (its requests answered with an
/// error) rather than left marked as in flight, which would keep every later one waiting.
struct Unwind<'a, B: Batch> {
    lines: &'a Mutex<HashMap<EventId, Line<B>>>,
    event: EventId,
}

impl<B: Batch> Drop for Unwind<'_, B> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            lock(self.lines).remove(&self.event);
        }
    }
}
