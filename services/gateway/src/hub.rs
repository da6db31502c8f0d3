//! The replica's WebSockets, by event: who is connected here, their numbers, and the fan-out
//! of what changes in Redis. Every replica learns of admissions and closings through Redis
//! pub/sub (and a periodic catch-up, since pub/sub may drop messages), then wakes only its own
//! sockets. Position updates are coalesced to about one a second per event; admitted and
//! closed are delivered at once and never dropped.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use flash_protocol::{EventId, UserId};
use futures::StreamExt as _;
use tokio::sync::{Notify, watch};
use tokio_util::sync::CancellationToken;

use crate::ticket::{Absent, Standing};
use crate::waiting_room::{Place, QueueView, RawState, Snapshot, WaitingRoom};

/// How often the throttled position view is published, and replicas catch up with Redis.
pub const FLUSH_EVERY: Duration = Duration::from_secs(1);
/// Over how long after a flush a replica's sockets send their new positions: each socket at
/// its own random moment within it, so that 15,000 sockets' frames (and the crowd's answers to
/// them) do not all leave at the same instant, ahead of every other request on the gateway.
pub const POSITION_SPREAD: Duration = Duration::from_millis(800);

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// One connected user of one event.
#[derive(Debug)]
pub struct Slot {
    pub user: UserId,
    /// 0 while in the pre-queue.
    number: AtomicU64,
    admission: Mutex<Option<(i64, i64)>>,
    replaced: AtomicBool,
    /// The user left the queue (on any replica): the socket has no place to follow.
    left: AtomicBool,
    /// Woken when this socket's admission arrives, a newer socket replaces it, or its user
    /// leaves.
    pub wake: Notify,
}

impl Slot {
    #[must_use]
    pub fn place(&self) -> Place {
        match self.number.load(Ordering::Acquire) {
            0 => Place::PreQueue,
            n => Place::Number(n),
        }
    }

    /// (admitted at, ends at) in ms, once admitted.
    #[must_use]
    pub fn admission(&self) -> Option<(i64, i64)> {
        *lock(&self.admission)
    }

    fn admit(&self, admitted_at_ms: i64, ends_ms: i64) {
        let mut admission = lock(&self.admission);
        if admission.is_none() {
            *admission = Some((admitted_at_ms, ends_ms));
            drop(admission);
            self.wake.notify_one();
        }
    }

    #[must_use]
    pub fn is_replaced(&self) -> bool {
        self.replaced.load(Ordering::Acquire)
    }

    #[must_use]
    pub fn has_left(&self) -> bool {
        self.left.load(Ordering::Acquire)
    }

    /// This socket's standing under `view` at `now_ms`.
    pub fn standing(&self, view: &QueueView, now_ms: i64) -> Result<Standing, Absent> {
        let admission = self.admission();
        crate::ticket::standing(&Snapshot {
            state: Some(view.state),
            paused: view.paused,
            closed_reason: view.closed_reason,
            admit_per_sec: view.admit_per_sec,
            admission_ttl_s: view.admission_ttl_s,
            place: Some(self.place()),
            serving: view.serving,
            admission_ends_ms: admission.map(|a| a.1),
            admitted_at_ms: admission.map(|a| a.0),
            expired: false,
            now_ms,
            reserved_pending: view.reserved_pending,
        })
    }
}

#[derive(Default)]
struct Slots {
    by_user: HashMap<UserId, Arc<Slot>>,
    by_number: BTreeMap<u64, UserId>,
}

/// The sockets of one event on this replica.
pub struct EventSockets {
    event: EventId,
    latest: Mutex<QueueView>,
    view: watch::Sender<Versioned>,
    slots: Mutex<Slots>,
    /// Highest serving number whose admissions were handed to local sockets.
    admitted_through: AtomicU64,
}

impl EventSockets {
    fn new(event: EventId, view: QueueView) -> Self {
        Self {
            event,
            latest: Mutex::new(view),
            view: watch::Sender::new(Versioned { view, version: 0 }),
            slots: Mutex::new(Slots::default()),
            admitted_through: AtomicU64::new(view.serving),
        }
    }

    fn len(&self) -> usize {
        lock(&self.slots).by_user.len()
    }

    /// Local sockets with numbers in `(0, hi]` that are not admitted yet, with their numbers.
    fn unadmitted_through(&self, hi: u64) -> Vec<(UserId, u64)> {
        if hi == 0 {
            return Vec::new();
        }
        let slots = lock(&self.slots);
        slots
            .by_number
            .range(1..=hi)
            .filter_map(|(&number, user)| Some((number, slots.by_user.get(user)?)))
            .filter(|(number, slot)| {
                slot.admission().is_none() && slot.place() == Place::Number(*number)
            })
            .map(|(number, slot)| (slot.user, number))
            .collect()
    }

    /// Admits the local socket of `user` at `number`, if it is still there at that number.
    fn admit(&self, user: UserId, number: u64, admission: (i64, i64)) {
        let slot = lock(&self.slots).by_user.get(&user).cloned();
        if let Some(slot) = slot.filter(|slot| slot.place() == Place::Number(number)) {
            slot.admit(admission.0, admission.1);
        }
    }

    /// The user left their place (`place`, as Redis published it): their socket here, if it
    /// follows that place, is told and forgotten.
    fn left(&self, user: UserId, place: Place) {
        let mut slots = lock(&self.slots);
        let Some(slot) = slots
            .by_user
            .get(&user)
            .filter(|slot| slot.place() == place)
            .cloned()
        else {
            return;
        };
        slots.by_user.remove(&user);
        if let Place::Number(n) = place
            && slots.by_number.get(&n) == Some(&user)
        {
            slots.by_number.remove(&n);
        }
        drop(slots);
        slot.left.store(true, Ordering::Release);
        slot.wake.notify_one();
    }

    fn pre_queue_users(&self) -> Vec<UserId> {
        lock(&self.slots)
            .by_user
            .values()
            .filter(|slot| slot.place() == Place::PreQueue)
            .map(|slot| slot.user)
            .collect()
    }

    fn set_number(&self, user: UserId, number: u64) {
        let mut slots = lock(&self.slots);
        if let Some(slot) = slots.by_user.get(&user).cloned() {
            slot.number.store(number, Ordering::Release);
            slots.by_number.insert(number, user);
        }
    }

    /// Records the newest view; closing (and reopening) is published at once, the rest at
    /// the next flush.
    fn update(&self, view: QueueView) {
        let mut latest = lock(&self.latest);
        let urgent = latest.turns_into(&view);
        *latest = view;
        drop(latest);
        if urgent {
            self.publish(view);
        }
    }

    fn publish(&self, view: QueueView) {
        self.view.send_if_modified(|current| {
            let changed = current.view != view;
            if changed {
                *current = Versioned {
                    view,
                    version: current.version + 1,
                };
            }
            changed
        });
    }

    /// A receiver of the event's view for a socket whose first read of the queue saw `first`.
    /// A closing or a pause is published once: when this replica's view has moved on in one of
    /// them since that read, the receiver starts marked changed, so the socket acts on it.
    fn subscribe_from(&self, first: &QueueView) -> watch::Receiver<Versioned> {
        let mut receiver = self.view.subscribe();
        let current = receiver.borrow().view;
        if (current.state, current.paused, current.closed_reason)
            != (first.state, first.paused, first.closed_reason)
        {
            receiver.mark_changed();
        }
        receiver
    }

    fn flush(&self) {
        let latest = *lock(&self.latest);
        self.publish(latest);
    }
}

/// Every event's local sockets.
pub struct Hub {
    room: WaitingRoom,
    events: Mutex<HashMap<EventId, Arc<EventSockets>>>,
}

impl std::fmt::Debug for Hub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hub")
            .field("events", &lock(&self.events).len())
            .finish()
    }
}

/// An event's view as published to its sockets; `version` counts publications, so a socket
/// can tell how many it skipped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Versioned {
    pub view: QueueView,
    pub version: u64,
}

/// A registered socket: its slot and the event's throttled view.
pub struct Registration {
    pub slot: Arc<Slot>,
    pub view: watch::Receiver<Versioned>,
}

impl Hub {
    #[must_use]
    pub fn new(room: WaitingRoom) -> Self {
        Self {
            room,
            events: Mutex::new(HashMap::new()),
        }
    }

    /// Sockets connected here, all events together.
    #[must_use]
    pub fn connections(&self) -> usize {
        lock(&self.events).values().map(|e| e.len()).sum()
    }

    /// Registers a socket of `user` (replacing, and waking, any older socket of theirs).
    pub fn register(
        &self,
        event: EventId,
        user: UserId,
        place: Place,
        admission: Option<(i64, i64)>,
        view: QueueView,
    ) -> Registration {
        // The events stay locked until the slot is in its event: `unregister` removes an
        // event it finds empty under this lock, which would otherwise orphan the new socket
        // (never told of an admission or of the closing).
        let mut events = lock(&self.events);
        let sockets = Arc::clone(
            events
                .entry(event)
                .or_insert_with(|| Arc::new(EventSockets::new(event, view))),
        );
        let slot = Arc::new(Slot {
            user,
            number: AtomicU64::new(place.number().unwrap_or(0)),
            admission: Mutex::new(admission),
            replaced: AtomicBool::new(false),
            left: AtomicBool::new(false),
            wake: Notify::new(),
        });
        let mut slots = lock(&sockets.slots);
        if let Some(old) = slots.by_user.insert(user, Arc::clone(&slot)) {
            // The replaced socket leaves nothing behind: its number (the user may have left
            // and joined again since) maps to nobody here any more.
            if let Place::Number(n) = old.place()
                && slots.by_number.get(&n) == Some(&user)
            {
                slots.by_number.remove(&n);
            }
            old.replaced.store(true, Ordering::Release);
            old.wake.notify_one();
        }
        if let Place::Number(n) = place {
            slots.by_number.insert(n, user);
        }
        drop(slots);
        drop(events);
        Registration {
            slot,
            view: sockets.subscribe_from(&view),
        }
    }

    /// Removes a socket (unless a newer one of the same user took its place).
    pub fn unregister(&self, event: EventId, slot: &Arc<Slot>) {
        let mut events = lock(&self.events);
        let Some(sockets) = events.get(&event).cloned() else {
            return;
        };
        let mut slots = lock(&sockets.slots);
        if slots
            .by_user
            .get(&slot.user)
            .is_some_and(|current| Arc::ptr_eq(current, slot))
        {
            slots.by_user.remove(&slot.user);
            if let Place::Number(n) = slot.place()
                && slots.by_number.get(&n) == Some(&slot.user)
            {
                slots.by_number.remove(&n);
            }
        }
        let empty = slots.by_user.is_empty();
        drop(slots);
        if empty {
            events.remove(&event);
        }
    }

    /// Why the event's queue is closed, when this replica knows it is (from its sockets'
    /// latest view of the event).
    #[must_use]
    pub fn closed_reason(&self, event: EventId) -> Option<flash_protocol::ws::ClosedReason> {
        let sockets = self.sockets_of(event)?;
        let latest = *lock(&sockets.latest);
        (latest.state == RawState::Closed)
            .then_some(latest.closed_reason)
            .flatten()
    }

    fn sockets_of(&self, event: EventId) -> Option<Arc<EventSockets>> {
        lock(&self.events).get(&event).cloned()
    }

    /// Applies one notification from the queue's channel.
    pub async fn on_notification(&self, event: EventId, payload: &str) {
        let Some(sockets) = self.sockets_of(event) else {
            return;
        };
        let mut words = payload.split_ascii_whitespace();
        match words.next() {
            Some("serving") => {
                let numbers: Vec<i64> = words.filter_map(|w| w.parse().ok()).collect();
                let &[from, to, _at_ms, _ttl_s] = numbers.as_slice() else {
                    tracing::warn!(%payload, "malformed queue notification");
                    return;
                };
                let (from, to) = (
                    u64::try_from(from).unwrap_or(0),
                    u64::try_from(to).unwrap_or(0),
                );
                let through = sockets.admitted_through.load(Ordering::Acquire);
                if from <= through {
                    self.admit_recorded(&sockets, to).await;
                    sockets.admitted_through.fetch_max(to, Ordering::AcqRel);
                    let mut latest = *lock(&sockets.latest);
                    latest.serving = latest.serving.max(to);
                    sockets.update(latest);
                } else {
                    // Notifications were missed: read what happened since.
                    self.catch_up(&sockets).await;
                }
            }
            Some("left") => {
                let user = words.next().and_then(|w| w.parse::<UserId>().ok());
                let place = match words.next() {
                    Some("pre") => Some(Place::PreQueue),
                    Some(n) => n.parse().ok().map(Place::Number),
                    None => None,
                };
                match (user, place) {
                    (Some(user), Some(place)) => sockets.left(user, place),
                    _ => tracing::warn!(%payload, "malformed queue notification"),
                }
            }
            Some("closed") => {
                // The reason travels with the message: local sockets are told at once, with
                // no read from Redis, which may be what is slow (a closing must reach buyers
                // even then); the catch-up reads the rest.
                if let Some(reason) = words.next().and_then(crate::waiting_room::closed_reason) {
                    let mut latest = *lock(&sockets.latest);
                    latest.state = RawState::Closed;
                    latest.closed_reason = Some(reason);
                    sockets.update(latest);
                }
                self.catch_up(&sockets).await;
            }
            Some("config") | None => self.catch_up(&sockets).await,
            Some(_) => tracing::warn!(%payload, "unknown queue notification"),
        }
    }

    /// Reads the event's queue from Redis and hands out what local sockets missed:
    /// admissions, numbers given at opening, settings, closing.
    async fn catch_up(&self, sockets: &EventSockets) {
        let event = sockets.event;
        let view = match self.room.view(event).await {
            Ok(Some(view)) => view,
            Ok(None) => return,
            Err(error) => {
                tracing::warn!(%error, %event, "cannot read the queue");
                return;
            }
        };
        if view.state != RawState::Scheduled {
            let waiting = sockets.pre_queue_users();
            if let Ok(places) = self.room.places(event, &waiting).await {
                for (user, place) in waiting.into_iter().zip(places) {
                    if let Some(Place::Number(n)) = place {
                        sockets.set_number(user, n);
                    }
                }
            }
        }
        let through = sockets.admitted_through.load(Ordering::Acquire);
        if self
            .admit_recorded_with(sockets, view.serving.max(through), view.admission_ttl_s)
            .await
        {
            sockets
                .admitted_through
                .fetch_max(view.serving, Ordering::AcqRel);
        }
        sockets.update(view);
    }

    /// Admits the local sockets served through `through` whose admission Redis recorded (for
    /// that user at that number): a gate token is only ever signed for such an admission.
    async fn admit_recorded(&self, sockets: &EventSockets, through: u64) -> bool {
        let ttl_s = lock(&sockets.latest).admission_ttl_s;
        self.admit_recorded_with(sockets, through, ttl_s).await
    }

    async fn admit_recorded_with(&self, sockets: &EventSockets, through: u64, ttl_s: u32) -> bool {
        let waiting = sockets.unadmitted_through(through);
        if waiting.is_empty() {
            return true;
        }
        let users: Vec<UserId> = waiting.iter().map(|(user, _)| *user).collect();
        match self.room.admissions(sockets.event, &users).await {
            Ok(recorded) => {
                for ((user, number), recorded) in waiting.into_iter().zip(recorded) {
                    if let Some(admission) = recorded.admission_at(number, ttl_s) {
                        sockets.admit(user, number, admission);
                    }
                }
                true
            }
            Err(error) => {
                tracing::warn!(%error, event = %sockets.event, "cannot read admissions");
                false
            }
        }
    }

    /// Publishes the coalesced views (positions) and catches every event up with Redis.
    pub async fn flush_and_catch_up(&self) {
        let events: Vec<Arc<EventSockets>> = lock(&self.events).values().cloned().collect();
        for sockets in events {
            self.catch_up(&sockets).await;
            sockets.flush();
        }
        ::metrics::gauge!("gateway_ws_connections").set(self.connections() as f64);
    }

    /// Listens to every queue's channel until `stop`, reconnecting after failures; and
    /// flushes views and catches up every [`FLUSH_EVERY`].
    pub async fn run(self: Arc<Self>, client: redis::Client, stop: CancellationToken) {
        let pattern = flash_protocol::keys::channel_pattern(self.room.keys().prefix());
        let flusher = {
            let hub = Arc::clone(&self);
            let stop = stop.clone();
            tokio::spawn(async move {
                let mut every = tokio::time::interval(FLUSH_EVERY);
                every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                loop {
                    tokio::select! {
                        () = stop.cancelled() => return,
                        _ = every.tick() => hub.flush_and_catch_up().await,
                    }
                }
            })
        };
        let mut backoff = Duration::from_millis(100);
        while !stop.is_cancelled() {
            match self.listen(&client, &pattern, &stop).await {
                Ok(()) => backoff = Duration::from_millis(100),
                Err(error) => {
                    tracing::warn!(%error, "queue notifications interrupted; resubscribing");
                    tokio::select! {
                        () = stop.cancelled() => break,
                        () = tokio::time::sleep(backoff) => {}
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                }
            }
        }
        flusher.abort();
    }

    async fn listen(
        &self,
        client: &redis::Client,
        pattern: &str,
        stop: &CancellationToken,
    ) -> redis::RedisResult<()> {
        let mut pubsub = client.get_async_pubsub().await?;
        pubsub.psubscribe(pattern).await?;
        // Subscribed: whatever was missed while not, is read now.
        self.flush_and_catch_up().await;
        let mut messages = pubsub.on_message();
        loop {
            tokio::select! {
                () = stop.cancelled() => return Ok(()),
                message = messages.next() => {
                    let Some(message) = message else {
                        return Err(redis::RedisError::from((
                            redis::ErrorKind::Io,
                            "pub/sub connection closed",
                        )));
                    };
                    let Some(event) = flash_protocol::keys::event_of_channel(message.get_channel_name()) else {
                        continue;
                    };
                    let payload = String::from_utf8_lossy(message.get_payload_bytes()).into_owned();
                    self.on_notification(event, &payload).await;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view(serving: u64) -> QueueView {
        QueueView {
            state: RawState::Open,
            paused: false,
            closed_reason: None,
            admit_per_sec: 10,
            admission_ttl_s: 300,
            serving,
            reserved_pending: 0,
        }
    }

    fn slot(user: UserId, number: u64) -> Arc<Slot> {
        Arc::new(Slot {
            user,
            number: AtomicU64::new(number),
            admission: Mutex::new(None),
            replaced: AtomicBool::new(false),
            left: AtomicBool::new(false),
            wake: Notify::new(),
        })
    }

    #[test]
    fn waiting_sockets_are_found_by_number_and_a_leave_forgets_only_its_own_place() {
        let sockets = EventSockets::new(EventId::new_v7(), view(0));
        assert!(
            sockets.unadmitted_through(0).is_empty(),
            "nothing served yet"
        );
        let (alice, bob) = (UserId::new_v7(), UserId::new_v7());
        {
            let mut slots = lock(&sockets.slots);
            for (user, number) in [(alice, 3), (bob, 7)] {
                slots.by_user.insert(user, slot(user, number));
                slots.by_number.insert(number, user);
            }
        }
        assert_eq!(sockets.unadmitted_through(5), vec![(alice, 3)]);
        sockets.admit(alice, 3, (1, 2));
        assert!(sockets.unadmitted_through(5).is_empty(), "admitted once");
        // A leave of another place (bob left an earlier number) changes nothing here.
        sockets.left(bob, Place::Number(2));
        assert_eq!(sockets.unadmitted_through(10), vec![(bob, 7)]);
        sockets.left(bob, Place::Number(7));
        assert!(sockets.unadmitted_through(10).is_empty());
        assert_eq!(sockets.len(), 1);
    }

    #[test]
    fn a_socket_that_registers_after_a_closing_is_told_of_it() {
        let open = view(4);
        let sockets = EventSockets::new(EventId::new_v7(), open);
        // The replica hears the closing (published at once) after the socket's first read.
        let closed = QueueView {
            state: RawState::Closed,
            closed_reason: Some(flash_protocol::ws::ClosedReason::SoldOut),
            ..open
        };
        sockets.update(closed);
        let late = sockets.subscribe_from(&open);
        assert!(
            late.has_changed().unwrap_or(false),
            "the closing is pending"
        );
        assert_eq!(late.borrow().view.state, RawState::Closed);
        // A socket whose first read already saw the closing has nothing pending, nor one
        // that differs only in what is published at the next flush.
        assert!(
            !sockets
                .subscribe_from(&closed)
                .has_changed()
                .unwrap_or(true)
        );
        let reopened = EventSockets::new(EventId::new_v7(), open);
        reopened.update(QueueView { serving: 9, ..open });
        assert!(!reopened.subscribe_from(&open).has_changed().unwrap_or(true));
    }
}
