//! The waiting room in Redis: every operation on one event's queue is one Lua script over keys
//! that share the event's hash tag, so it is atomic, O(1) per join and per admission, and runs
//! unchanged on Redis Cluster.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use flash_kit::stores::RedisConnection;

use crate::challenge::Proof;
use flash_protocol::draw::Seed;
use flash_protocol::event::QueueSettings;
use flash_protocol::keys::{QueueKeys, RedisKeys};
use flash_protocol::queue::{QueuePatch, QueueState, QueueStats};
use flash_protocol::ws::ClosedReason;
use flash_protocol::{EventId, UserId};
use redis::{Script, Value};
use time::OffsetDateTime;

/// A failure of the waiting room's store.
#[derive(Debug, thiserror::Error)]
pub enum RoomError {
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
    #[error("unexpected answer from a queue script: {0}")]
    Protocol(String),
    /// The failure of a script call made for several requests at once, told to each.
    #[error("{0}")]
    Shared(std::sync::Arc<RoomError>),
}

impl RoomError {
    /// Whether Redis did not answer within the connection's response timeout (the call may
    /// still have run).
    #[must_use]
    pub fn is_timeout(&self) -> bool {
        match self {
            RoomError::Redis(error) => error.is_timeout(),
            RoomError::Protocol(_) => false,
            RoomError::Shared(error) => error.is_timeout(),
        }
    }
}

/// Where a user holds a place.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Place {
    /// Joined before opening; numbered at opening.
    PreQueue,
    Number(u64),
}

impl Place {
    fn parse(value: &Value) -> Result<Self, RoomError> {
        match text_of(value)?.as_ref() {
            "pre" => Ok(Place::PreQueue),
            other => other
                .parse()
                .map(Place::Number)
                .map_err(|_| RoomError::Protocol(format!("place {other:?}"))),
        }
    }

    #[must_use]
    pub fn number(self) -> Option<u64> {
        match self {
            Place::PreQueue => None,
            Place::Number(n) => Some(n),
        }
    }
}

/// What joining did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Joined {
    /// No queue for this event (the api has not announced it).
    Missing,
    /// The queue is closed and the user held no place.
    Closed,
    /// The user holds a place (`new` when this call took it).
    Place { place: Place, new: bool },
    /// The queue asks newcomers for a solved challenge, and this one lacked it.
    Challenge(Lacking),
}

/// What a newcomer's proof lacked when the queue asks for one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Lacking {
    /// No proof, or its challenge expired: ask for a new one (428).
    Required,
    /// The nonce is malformed (422).
    Invalid,
    /// Wrong, forged, someone else's, or used before (403).
    Failed,
}

impl Proof {
    /// The proof as `join.lua` takes it.
    fn script_arg(&self) -> String {
        match self {
            Proof::None | Proof::Expired => String::new(),
            Proof::Invalid => "invalid".into(),
            Proof::Failed => "failed".into(),
            Proof::Solved(solved) => format!("ok {} {}", solved.expires_ms, solved.id),
        }
    }
}

/// The raw state of a queue.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RawState {
    Scheduled,
    Open,
    Closed,
}

impl RawState {
    fn parse(value: &str) -> Result<Self, RoomError> {
        match value {
            "scheduled" => Ok(Self::Scheduled),
            // Numbering the pre-queue at opening is part of being open: admissions run
            // (within the numbers given so far) and newcomers join after the pre-queue.
            "open" | "opening" => Ok(Self::Open),
            "closed" => Ok(Self::Closed),
            other => Err(RoomError::Protocol(format!("state {other:?}"))),
        }
    }
}

/// What an operator's change did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Patched {
    /// No queue for this event.
    Missing,
    /// Too many audit records wait to be relayed (the broker is away): nothing changed.
    AuditBacklog,
    /// Applied; `recorded` when something changed (and its audit record was written).
    Done { recorded: bool },
}

/// What Redis holds of an event's draw.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DrawState {
    /// `None` for a queue created before the draw existed.
    pub seed: Option<Seed>,
    /// When the pre-queue was frozen; the seed is revealed from then on.
    pub opened_at_ms: Option<i64>,
    /// Participants in the draw (frozen from opening on).
    pub participants: u64,
    /// The participants file's hash, once a replica has computed it.
    pub participants_sha256: Option<String>,
}

/// One user's view of a queue, read atomically.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Snapshot {
    /// `None` when the queue does not exist.
    pub state: Option<RawState>,
    pub paused: bool,
    pub closed_reason: Option<ClosedReason>,
    pub admit_per_sec: u32,
    pub admission_ttl_s: u32,
    /// `None` when the user holds no place.
    pub place: Option<Place>,
    pub serving: u64,
    /// End of the user's admission window while it is open (ms since the epoch).
    pub admission_ends_ms: Option<i64>,
    /// When the user was admitted (ms since the epoch), if ever.
    pub admitted_at_ms: Option<i64>,
    pub expired: bool,
    pub now_ms: i64,
    /// Orders still being paid while no ticket is left: the queue holds (admits nobody).
    pub reserved_pending: u64,
}

/// What every socket of one event shares.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct QueueView {
    pub state: RawState,
    pub paused: bool,
    pub closed_reason: Option<ClosedReason>,
    pub admit_per_sec: u32,
    pub admission_ttl_s: u32,
    pub serving: u64,
    /// Orders still being paid while no ticket is left: the queue holds (admits nobody).
    pub reserved_pending: u64,
}

impl QueueView {
    /// Whether going from this view to `next` opens, closes or reopens the queue: told to
    /// every socket at once; any other change (the serving number, a pause, the rates) waits
    /// for the next flush and each socket's own moment within it.
    #[must_use]
    pub fn turns_into(&self, next: &QueueView) -> bool {
        self.state != next.state || self.closed_reason != next.closed_reason
    }

    /// Whether the queue admits now: open, not paused, not holding its line, with a rate (the
    /// ticks' own test).
    #[must_use]
    pub fn admits(&self) -> bool {
        self.state == RawState::Open
            && !self.paused
            && self.reserved_pending == 0
            && self.admit_per_sec > 0
    }
}

/// What Redis recorded of one user's place and admission.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Recorded {
    /// `None` when the user holds no place.
    pub place: Option<Place>,
    /// When the user was admitted (ms), if they hold an admission (open or used).
    pub admitted_at_ms: Option<i64>,
    /// End of the admission window while it is open (ms).
    pub admission_ends_ms: Option<i64>,
}

impl Recorded {
    /// The admission (admitted at, ends at; ms) Redis recorded for this user at `number`; an
    /// admission no longer open (used) ends `ttl_s` after it began.
    #[must_use]
    pub fn admission_at(&self, number: u64, ttl_s: u32) -> Option<(i64, i64)> {
        if self.place != Some(Place::Number(number)) {
            return None;
        }
        let at = self.admitted_at_ms?;
        Some((
            at,
            self.admission_ends_ms
                .unwrap_or(at + i64::from(ttl_s) * 1000),
        ))
    }
}

/// What one tick did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TickOutcome {
    /// The size of the pre-queue frozen at opening, when this tick opened the queue.
    pub opened: Option<u64>,
    /// While the pre-queue is being numbered (one chunk per tick), the last number given.
    pub numbering: Option<u64>,
    pub expired: u64,
    pub admitted: u64,
    pub from: u64,
    pub serving: u64,
    /// Milliseconds from join to admission of each admitted user.
    pub waits_ms: Vec<u64>,
}

impl TickOutcome {
    /// Adds what a following tick did.
    pub fn absorb(&mut self, next: TickOutcome) {
        self.opened = self.opened.or(next.opened);
        self.numbering = next.numbering;
        self.expired += next.expired;
        self.admitted += next.admitted;
        self.serving = next.serving;
        self.waits_ms.extend(next.waits_ms);
    }
}

/// What the api told us about an event, in the queue's terms.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EventAnnouncement {
    pub event: EventId,
    pub name: String,
    pub sale_opens_at: OffsetDateTime,
    pub status: flash_protocol::event::EventStatus,
    pub settings: Settings,
    /// Tickets in stock, when tickets came back: the queue admits no more buyers than could
    /// still buy (`EventUpdated::remaining`).
    pub remaining: Option<u64>,
}

/// What an announcement does to the queue's settings. The gateway owns them once the queue
/// exists (its admin `PATCH`): only an admin's explicit change through the api replaces them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Settings {
    /// A new event's settings: they fill only what the queue lacks.
    Initial(QueueSettings),
    /// An admin set them through the api: they replace the queue's.
    Replace(QueueSettings),
    /// The announcement says nothing of them: the queue keeps its own.
    Keep,
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// A fresh secret seed for a new queue's draw.
fn new_seed() -> Result<Seed, RoomError> {
    let mut bytes = [0u8; 32];
    aws_lc_rs::rand::fill(&mut bytes)
        .map_err(|_| RoomError::Protocol("the system gave no randomness".into()))?;
    Ok(Seed::from_bytes(bytes))
}

fn text(value: &Value) -> Result<String, RoomError> {
    text_of(value).map(std::borrow::Cow::into_owned)
}

/// A string value, borrowed where Redis sent text (no copy for a number or a place read).
fn text_of(value: &Value) -> Result<std::borrow::Cow<'_, str>, RoomError> {
    match value {
        Value::BulkString(bytes) => std::str::from_utf8(bytes)
            .map(std::borrow::Cow::Borrowed)
            .map_err(|_| RoomError::Protocol("non-UTF-8 string".into())),
        Value::SimpleString(s) => Ok(std::borrow::Cow::Borrowed(s)),
        Value::Int(i) => Ok(std::borrow::Cow::Owned(i.to_string())),
        other => Err(RoomError::Protocol(format!(
            "expected a string, got {other:?}"
        ))),
    }
}

fn opt_text(value: &Value) -> Result<Option<String>, RoomError> {
    match value {
        Value::Nil | Value::Boolean(false) => Ok(None),
        other => text(other).map(Some),
    }
}

fn int(value: &Value) -> Result<i64, RoomError> {
    match value {
        Value::Int(i) => Ok(*i),
        other => {
            let s = text_of(other)?;
            // Lua may hand back a float's text (e.g. a ZSCORE); only whole numbers are used.
            s.parse::<i64>()
                .or_else(|_| s.parse::<f64>().map(|f| f as i64))
                .map_err(|_| RoomError::Protocol(format!("expected a number, got {s:?}")))
        }
    }
}

fn uint(value: &Value) -> Result<u64, RoomError> {
    u64::try_from(int(value)?).map_err(|_| RoomError::Protocol("negative count".into()))
}

fn array(value: Value) -> Result<Vec<Value>, RoomError> {
    match value {
        Value::Array(items) => Ok(items),
        other => Err(RoomError::Protocol(format!(
            "expected an array, got {other:?}"
        ))),
    }
}

fn field(items: &[Value], index: usize) -> Result<&Value, RoomError> {
    items
        .get(index)
        .ok_or_else(|| RoomError::Protocol(format!("missing field {index}")))
}

/// A closing reason as Redis stores and publishes it.
pub(crate) fn closed_reason(value: &str) -> Option<ClosedReason> {
    match value {
        "sold_out" => Some(ClosedReason::SoldOut),
        "ended" => Some(ClosedReason::Ended),
        _ => None,
    }
}

/// Values before the users' answers of `join.lua` and `status.lua`: the queue's settings,
/// serving, the time and the orders being paid while it holds.
const HEADER: usize = 8;
/// The admission of a place the serving number has not reached (`status.lua` answers the
/// place alone) or that was taken now: none, and not expired.
static NO_ADMISSION: [&Value; 3] = [&Value::Nil, &Value::Nil, &Value::Int(0)];

/// A script call for `users` of a queue, with the keys a user's snapshot reads first (config,
/// users, serving, admitted, admitted_at, expired).
fn placed_call<'a>(
    script: &'a Script,
    k: &QueueKeys,
    users: &[UserId],
) -> redis::ScriptInvocation<'a> {
    let mut call = script.key(&k.config);
    call.key(&k.users)
        .key(&k.serving)
        .key(&k.admitted)
        .key(&k.admitted_at)
        .key(&k.expired);
    for user in users {
        call.arg(user.to_string());
    }
    call
}

/// The queue's part of every snapshot of one call, from its [`HEADER`] (read once however
/// many users the call answers): no place, no admission.
fn header_snapshot(header: &[Value]) -> Result<Snapshot, RoomError> {
    queue_snapshot(fields(header, [0, 1, 2, 3, 4, 5, 6, 7])?)
}

/// `base` for a user holding `place`, with the three values of its admission (end, admitted
/// at, expired).
fn placed(
    base: Snapshot,
    place: &Value,
    [ends, admitted_at, expired]: [&Value; 3],
) -> Result<Snapshot, RoomError> {
    Ok(Snapshot {
        place: match place {
            Value::Nil | Value::Boolean(false) => None,
            other => Some(Place::parse(other)?),
        },
        admission_ends_ms: optional_int(ends)?,
        admitted_at_ms: optional_int(admitted_at)?,
        expired: int(expired)? == 1,
        ..base
    })
}

/// The values at `at` of `items`.
fn fields<const N: usize>(items: &[Value], at: [usize; N]) -> Result<[&Value; N], RoomError> {
    let mut found = [&NIL; N];
    for (slot, index) in found.iter_mut().zip(at) {
        *slot = field(items, index)?;
    }
    Ok(found)
}

static NIL: Value = Value::Nil;

/// The one answer of a call made for one user.
fn only<T>(mut answers: Vec<T>, what: &str) -> Result<T, RoomError> {
    match (answers.pop(), answers.is_empty()) {
        (Some(answer), true) => Ok(answer),
        _ => Err(RoomError::Protocol(format!(
            "not one answer for the {what}"
        ))),
    }
}

/// A snapshot as `view.lua` and a join of someone already placed answer it: the queue's
/// settings, the place, serving, the admission's three values, the time and the orders being
/// paid.
fn parse_snapshot(items: &[Value]) -> Result<Snapshot, RoomError> {
    let base = queue_snapshot(fields(items, [0, 1, 2, 3, 4, 6, 10, 11])?)?;
    placed(base, field(items, 5)?, fields(items, [7, 8, 9])?)
}

/// The queue's part of a snapshot, from its values in [`HEADER`]'s order.
fn queue_snapshot(
    [
        state,
        paused,
        closed,
        admit_per_sec,
        admission_ttl_s,
        serving,
        now_ms,
        reserved_pending,
    ]: [&Value; HEADER],
) -> Result<Snapshot, RoomError> {
    Ok(Snapshot {
        state: match state {
            Value::Nil | Value::Boolean(false) => None,
            other => Some(RawState::parse(&text_of(other)?)?),
        },
        paused: text_of(paused)? == "1",
        closed_reason: closed_reason(&text_of(closed)?),
        admit_per_sec: u32::try_from(uint(admit_per_sec)?).unwrap_or(u32::MAX),
        admission_ttl_s: u32::try_from(uint(admission_ttl_s)?).unwrap_or(u32::MAX),
        place: None,
        serving: uint(serving)?,
        admission_ends_ms: None,
        admitted_at_ms: None,
        expired: false,
        now_ms: int(now_ms)?,
        reserved_pending: uint(reserved_pending)?,
    })
}

fn optional_int(value: &Value) -> Result<Option<i64>, RoomError> {
    match value {
        Value::Nil | Value::Boolean(false) => Ok(None),
        other => int(other).map(Some),
    }
}

/// The most pre-queue places one tick numbers at opening: one script call stays within a few
/// milliseconds however large the pre-queue (measured by `loadtest/bench/prequeue.sh`).
pub const OPENING_CHUNK: u32 = 250;
/// Most users one read of many users' places or admissions names: well under what Lua's
/// `unpack` takes (about 8,000), and a short command however many sockets a replica holds.
pub const USERS_PER_CALL: usize = 1_000;

/// Seeds of draws (and queues seen open), kept while at most this many events are known (a
/// seed never changes; an open queue never goes back to its pre-queue).
const SEEDS_KEPT: usize = 10_000;

struct Scripts {
    admissions: Script,
    retire: Script,
    join: Script,
    tick: Script,
    status: Script,
    leave: Script,
    upsert: Script,
    close: Script,
    consume: Script,
    patch: Script,
    stats: Script,
    view: Script,
}

impl Scripts {
    fn new() -> Self {
        Self {
            admissions: Script::new(include_str!("lua/admissions.lua")),
            retire: Script::new(include_str!("lua/retire.lua")),
            join: Script::new(concat!(
                include_str!("lua/snapshot.lua"),
                include_str!("lua/join.lua")
            )),
            tick: Script::new(include_str!("lua/tick.lua")),
            status: Script::new(concat!(
                "#!lua flags=no-writes\n",
                include_str!("lua/status.lua")
            )),
            leave: Script::new(include_str!("lua/leave.lua")),
            upsert: Script::new(include_str!("lua/upsert.lua")),
            close: Script::new(include_str!("lua/close.lua")),
            consume: Script::new(include_str!("lua/consume.lua")),
            patch: Script::new(include_str!("lua/patch.lua")),
            stats: Script::new(include_str!("lua/stats.lua")),
            view: Script::new(include_str!("lua/view.lua")),
        }
    }
}

/// Every queue of one deployment (one key prefix).
#[derive(Clone)]
pub struct WaitingRoom {
    redis: RedisConnection,
    keys: RedisKeys,
    scripts: Arc<Scripts>,
    seeds: Arc<Mutex<HashMap<EventId, Seed>>>,
    /// Queues seen open: their joins need no draw key (a queue never goes back to its
    /// pre-queue once open).
    opened: Arc<Mutex<HashSet<EventId>>>,
    /// Whether a queue this room opens keeps its joins' numbers in a list (`numbers`).
    numbers_list: bool,
}

impl std::fmt::Debug for WaitingRoom {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WaitingRoom")
            .field("prefix", &self.keys.prefix())
            .finish_non_exhaustive()
    }
}

impl WaitingRoom {
    #[must_use]
    pub fn new(redis: impl Into<RedisConnection>, keys: RedisKeys) -> Self {
        Self {
            redis: redis.into(),
            keys,
            scripts: Arc::new(Scripts::new()),
            seeds: Arc::default(),
            opened: Arc::default(),
            numbers_list: true,
        }
    }

    /// Whether the queues this room opens keep their joins' numbers in a list (the default)
    /// or, as versions before the list did, in the `by_number` hash.
    #[must_use]
    pub fn listing_numbers(mut self, on: bool) -> Self {
        self.numbers_list = on;
        self
    }

    /// The same queues over another connection (the ticker's own, so that admissions never
    /// wait behind request traffic on a shared pipeline).
    #[must_use]
    pub fn with_connection(&self, redis: RedisConnection) -> Self {
        Self {
            redis,
            keys: self.keys.clone(),
            scripts: Arc::clone(&self.scripts),
            seeds: Arc::clone(&self.seeds),
            opened: Arc::clone(&self.opened),
            numbers_list: self.numbers_list,
        }
    }

    #[must_use]
    pub fn keys(&self) -> &RedisKeys {
        &self.keys
    }

    fn queue(&self, event: EventId) -> QueueKeys {
        self.keys.queue(event)
    }

    /// The secret seed of an event's draw; `None` for a queue that does not exist or was
    /// created before the draw.
    pub async fn seed(&self, event: EventId) -> Result<Option<Seed>, RoomError> {
        if let Some(seed) = lock(&self.seeds).get(&event) {
            return Ok(Some(*seed));
        }
        let text: Option<String> = redis::cmd("HGET")
            .arg(self.queue(event).config)
            .arg("seed")
            .query_async(&mut self.redis.clone())
            .await?;
        let Some(text) = text else {
            return Ok(None);
        };
        let seed = Seed::parse_hex(&text).map_err(|e| RoomError::Protocol(e.to_string()))?;
        let mut seeds = lock(&self.seeds);
        if seeds.len() >= SEEDS_KEPT {
            seeds.clear();
        }
        seeds.insert(event, seed);
        Ok(Some(seed))
    }

    /// Takes a place in the queue (the same place again for a user who holds one) and reads
    /// the user's view of the queue in the same step.
    pub async fn join(
        &self,
        event: EventId,
        user: UserId,
    ) -> Result<(Joined, Snapshot), RoomError> {
        only(self.join_many(event, &[user]).await?, "join")
    }

    /// [`join`](Self::join) for several users in one script call: numbers follow the order
    /// of `users` (their order of arrival), one answer per user in that order.
    pub async fn join_many(
        &self,
        event: EventId,
        users: &[UserId],
    ) -> Result<Vec<(Joined, Snapshot)>, RoomError> {
        let requests: Vec<(UserId, Proof)> = users.iter().map(|&u| (u, Proof::None)).collect();
        self.join_many_proved(event, &requests).await
    }

    /// [`join_many`](Self::join_many) with each user's proof of a solved challenge (needed by
    /// a newcomer when the queue's challenge difficulty is above 0).
    pub async fn join_many_proved(
        &self,
        event: EventId,
        users: &[(UserId, Proof)],
    ) -> Result<Vec<(Joined, Snapshot)>, RoomError> {
        if users.is_empty() {
            return Ok(Vec::new());
        }
        let items = match self.try_join_many(event, users).await {
            // The queue was created (with its seed) after this replica last read it.
            Err(RoomError::Redis(e)) if e.code() == Some("NOSEED") => {
                lock(&self.seeds).remove(&event);
                lock(&self.opened).remove(&event);
                self.try_join_many(event, users).await?
            }
            other => other?,
        };
        let (header, answers) = items.split_at(HEADER);
        let base = header_snapshot(header)?;
        if base.state == Some(RawState::Open) {
            let mut opened = lock(&self.opened);
            if opened.len() >= SEEDS_KEPT {
                opened.clear();
            }
            opened.insert(event);
        }
        answers
            .chunks(2)
            .map(|answer| {
                let outcome = text(field(answer, 0)?)?;
                if outcome == "challenge" {
                    let lacking = match text(field(answer, 1)?)?.as_str() {
                        "invalid" => Lacking::Invalid,
                        "failed" => Lacking::Failed,
                        _ => Lacking::Required,
                    };
                    // Nothing was read for a refused newcomer: the header's view, no place.
                    let snapshot = placed(base, &NIL, NO_ADMISSION)?;
                    return Ok((Joined::Challenge(lacking), snapshot));
                }
                let snapshot = if outcome == "new" {
                    // The place taken, neither admitted nor expired.
                    placed(base, field(answer, 1)?, NO_ADMISSION)?
                } else {
                    parse_snapshot(&array(field(answer, 1)?.clone())?)?
                };
                let joined = match outcome.as_str() {
                    "missing" => Joined::Missing,
                    "closed" => Joined::Closed,
                    "new" | "existing" => Joined::Place {
                        place: snapshot
                            .place
                            .ok_or_else(|| RoomError::Protocol("joined without a place".into()))?,
                        new: outcome == "new",
                    },
                    other => return Err(RoomError::Protocol(format!("join outcome {other:?}"))),
                };
                Ok((joined, snapshot))
            })
            .collect()
    }

    async fn try_join_many(
        &self,
        event: EventId,
        users: &[(UserId, Proof)],
    ) -> Result<Vec<Value>, RoomError> {
        let k = self.queue(event);
        let seed = if lock(&self.opened).contains(&event) {
            None
        } else {
            self.seed(event).await?
        };
        let mut call = self.scripts.join.key(&k.config);
        call.key(&k.users)
            .key(&k.serving)
            .key(&k.admitted)
            .key(&k.admitted_at)
            .key(&k.expired)
            .key(&k.seq)
            .key(&k.by_number)
            .key(&k.pre_queue)
            .key(&k.joined_at)
            .key(&k.draw)
            .key(&k.challenges_used)
            .key(&k.numbers);
        // The columns join.lua reads: the users, then their draw keys when the queue has a
        // seed and their proofs when one was brought (an empty column is left out).
        let proofs: Vec<String> = users.iter().map(|(_, proof)| proof.script_arg()).collect();
        let proved = proofs.iter().any(|proof| !proof.is_empty());
        let columns = match (seed.is_some(), proved) {
            (true, true) => "kp",
            (true, false) => "k",
            (false, true) => "p",
            (false, false) => "",
        };
        call.arg(users.len()).arg(columns);
        for (user, _) in users {
            call.arg(user.to_string());
        }
        if let Some(seed) = seed {
            for (user, _) in users {
                call.arg(seed.key_of(event, *user).to_hex());
            }
        }
        if proved {
            for proof in proofs {
                call.arg(proof);
            }
        }
        self.call_many(call, 2, users.len(), "joins").await
    }

    /// A user's view of the queue.
    pub async fn snapshot(&self, event: EventId, user: UserId) -> Result<Snapshot, RoomError> {
        only(self.snapshots(event, &[user]).await?, "status")
    }

    /// [`snapshot`](Self::snapshot) of several users in one consistent step, in their order.
    pub async fn snapshots(
        &self,
        event: EventId,
        users: &[UserId],
    ) -> Result<Vec<Snapshot>, RoomError> {
        if users.is_empty() {
            return Ok(Vec::new());
        }
        let k = self.queue(event);
        let call = placed_call(&self.scripts.status, &k, users);
        let items = self.call_many(call, 1, users.len(), "statuses").await?;
        let (header, places) = items.split_at(HEADER);
        let base = header_snapshot(header)?;
        places
            .iter()
            .map(|place| match place {
                Value::Array(reached) => match reached.split_first() {
                    Some((number, admission)) if admission.len() == NO_ADMISSION.len() => {
                        placed(base, number, fields(admission, [0, 1, 2])?)
                    }
                    _ => Err(RoomError::Protocol(format!(
                        "{} values of a reached place",
                        reached.len()
                    ))),
                },
                waiting => placed(base, waiting, NO_ADMISSION),
            })
            .collect()
    }

    /// Runs a script answering a [`HEADER`] and then `per_user` values for each of `users`
    /// users; its values, once their count is checked.
    async fn call_many(
        &self,
        call: redis::ScriptInvocation<'_>,
        per_user: usize,
        users: usize,
        what: &str,
    ) -> Result<Vec<Value>, RoomError> {
        let result: Value = call.invoke_async(&mut self.redis.clone()).await?;
        let items = array(result)?;
        if items.len() != HEADER + per_user * users {
            return Err(RoomError::Protocol(format!(
                "{} values for {users} {what}",
                items.len()
            )));
        }
        Ok(items)
    }

    /// Gives up a place (every replica is told, and closes the user's sockets of that place);
    /// `false` when the user held none.
    pub async fn leave(&self, event: EventId, user: UserId) -> Result<bool, RoomError> {
        let k = self.queue(event);
        let member = self
            .seed(event)
            .await?
            .map(|seed| format!("{}{user}", seed.key_of(event, user).to_hex()))
            .unwrap_or_default();
        let left: i64 = self
            .scripts
            .leave
            .key(&k.users)
            .key(&k.by_number)
            .key(&k.pre_queue)
            .key(&k.admitted)
            .key(&k.admitted_at)
            .key(&k.expired)
            .key(&k.stats)
            .key(&k.serving)
            .key(&k.joined_at)
            .key(&k.config)
            .key(&k.draw)
            .arg(user.to_string())
            .arg(&k.channel)
            .arg(member)
            .invoke_async(&mut self.redis.clone())
            .await?;
        Ok(left == 1)
    }

    /// One admission tick (opening the queue first when its time has come).
    pub async fn tick(&self, event: EventId) -> Result<TickOutcome, RoomError> {
        let k = self.queue(event);
        let result: Value = self
            .scripts
            .tick
            .key(&k.config)
            .key(&k.seq)
            .key(&k.serving)
            .key(&k.users)
            .key(&k.by_number)
            .key(&k.pre_queue)
            .key(&k.admitted)
            .key(&k.admitted_at)
            .key(&k.expired)
            .key(&k.stats)
            .key(&k.joined_at)
            .key(&k.draw)
            .key(&k.numbers)
            .arg(&k.channel)
            .arg(OPENING_CHUNK)
            .arg(if self.numbers_list { "list" } else { "hash" })
            .invoke_async(&mut self.redis.clone())
            .await?;
        let items = array(result)?;
        let opened = int(field(&items, 1)?)?;
        let numbering = int(field(&items, 6)?)?;
        Ok(TickOutcome {
            opened: u64::try_from(opened).ok(),
            expired: uint(field(&items, 2)?)?,
            admitted: uint(field(&items, 3)?)?,
            from: uint(field(&items, 4)?)?,
            serving: uint(field(&items, 5)?)?,
            numbering: u64::try_from(numbering).ok(),
            waits_ms: items
                .get(7..)
                .unwrap_or_default()
                .iter()
                .map(uint)
                .collect::<Result<_, _>>()?,
        })
    }

    /// Creates or updates an event's queue from the api's announcement; registers the event
    /// for ticking, and opens it at once when it is on sale.
    pub async fn upsert(&self, event: &EventAnnouncement) -> Result<(), RoomError> {
        self.upsert_in_order(event, 0).await
    }

    /// [`upsert`](Self::upsert) from a message at `sequence` in the api's outbox (0: unknown):
    /// an announcement older than the last status change applied changes nothing.
    pub async fn upsert_in_order(
        &self,
        event: &EventAnnouncement,
        sequence: i64,
    ) -> Result<(), RoomError> {
        let k = self.queue(event.event);
        let status = match event.status {
            flash_protocol::event::EventStatus::Scheduled => "scheduled",
            flash_protocol::event::EventStatus::OnSale => "on_sale",
            flash_protocol::event::EventStatus::SoldOut => "sold_out",
            flash_protocol::event::EventStatus::Ended => "ended",
        };
        let opens_at_ms =
            i64::try_from(event.sale_opens_at.unix_timestamp_nanos() / 1_000_000).unwrap_or(0);
        let (mode, queue) = match event.settings {
            Settings::Initial(queue) => ("initial", Some(queue)),
            Settings::Replace(queue) => ("replace", Some(queue)),
            Settings::Keep => ("keep", None),
        };
        let difficulty = match event.settings {
            Settings::Initial(q) => q.challenge_difficulty,
            Settings::Replace(_) | Settings::Keep => 0,
        };
        let queue = queue.map_or([0; 3], |q| {
            [q.admit_per_sec, q.max_active, q.admission_ttl_s]
        });
        let _: Value = self
            .scripts
            .upsert
            .key(&k.config)
            .key(&k.stats)
            .arg(&event.name)
            .arg(opens_at_ms)
            .arg(mode)
            .arg(queue[0])
            .arg(queue[1])
            .arg(queue[2])
            .arg(status)
            .arg(&k.channel)
            .arg(sequence)
            .arg(new_seed()?.to_hex())
            .arg(difficulty)
            .arg(event.remaining.map(|n| n.to_string()).unwrap_or_default())
            .invoke_async(&mut self.redis.clone())
            .await?;
        let _: i64 = redis::cmd("SADD")
            .arg(self.keys.events())
            .arg(event.event.to_string())
            .query_async(&mut self.redis.clone())
            .await?;
        if event.status == flash_protocol::event::EventStatus::OnSale {
            // On sale now: open without waiting for the tickers to notice the new queue.
            self.tick(event.event).await?;
        }
        Ok(())
    }

    /// Closes a queue; `true` when it closed now.
    pub async fn close(&self, event: EventId, reason: ClosedReason) -> Result<bool, RoomError> {
        self.close_in_order(event, reason, 0, 0).await
    }

    /// [`close`](Self::close) from a message at `sequence` in the api's outbox (0: unknown):
    /// a closing older than the last status change applied changes nothing. Sold out with
    /// `reserved_pending` orders still being paid, the queue holds instead: every place kept,
    /// nobody admitted until tickets come back (`false`).
    pub async fn close_in_order(
        &self,
        event: EventId,
        reason: ClosedReason,
        sequence: i64,
        reserved_pending: u64,
    ) -> Result<bool, RoomError> {
        let k = self.queue(event);
        let reason = match reason {
            ClosedReason::SoldOut => "sold_out",
            ClosedReason::Ended => "ended",
        };
        let closed: i64 = self
            .scripts
            .close
            .key(&k.config)
            .arg(reason)
            .arg(&k.channel)
            .arg(sequence)
            .arg(reserved_pending)
            .invoke_async(&mut self.redis.clone())
            .await?;
        Ok(closed == 1)
    }

    /// When `user` was last admitted to `event` (ms), if they hold an admission.
    pub async fn admitted_at(
        &self,
        event: EventId,
        user: UserId,
    ) -> Result<Option<i64>, RoomError> {
        let value: Value = redis::cmd("HGET")
            .arg(self.queue(event).admitted_at)
            .arg(user.to_string())
            .query_async(&mut self.redis.clone())
            .await?;
        match value {
            Value::Nil => Ok(None),
            other => int(&other).map(Some),
        }
    }

    /// The api used the gate token of the user's admission at `admitted_at_ms`: frees that
    /// admission's place (idempotent); `false` when it was free already, the user's admission
    /// is another one, or `admitted_at_ms` is `None` (nothing to free). `took_last` is `Some(sequence)` when the order took the
    /// event's last ticket, told by a message at `sequence` in the api's outbox (0: unknown):
    /// unless a newer status change was applied, the queue then admits nobody more, before the
    /// place is freed (consume.lua).
    pub async fn consume(
        &self,
        event: EventId,
        user: UserId,
        admitted_at_ms: Option<i64>,
        took_last: Option<i64>,
    ) -> Result<bool, RoomError> {
        let k = self.queue(event);
        let freed: i64 = self
            .scripts
            .consume
            .key(&k.admitted)
            .key(&k.stats)
            .key(&k.admitted_at)
            .key(&k.config)
            .arg(user.to_string())
            .arg(admitted_at_ms.map(|at| at.to_string()).unwrap_or_default())
            .arg(if took_last.is_some() { "0" } else { "" })
            .arg(took_last.unwrap_or(0))
            .invoke_async(&mut self.redis.clone())
            .await?;
        Ok(freed == 1)
    }

    /// Applies an operator's change; `false` when the queue does not exist.
    pub async fn patch(
        &self,
        event: EventId,
        actor: UserId,
        patch: &QueuePatch,
    ) -> Result<Patched, RoomError> {
        let k = self.queue(event);
        let mut invocation = self.scripts.patch.key(&k.config);
        invocation
            .key(&k.audit)
            .arg(&k.channel)
            .arg(uuid::Uuid::now_v7().to_string())
            .arg(actor.to_string())
            .arg(event.to_string())
            .arg(crate::audit::MOST_WAITING);
        let fields = [
            ("admit_per_sec", patch.admit_per_sec),
            ("max_active", patch.max_active),
            ("admission_ttl_s", patch.admission_ttl_s),
        ];
        for (name, value) in fields {
            if let Some(value) = value {
                invocation.arg(name).arg(value);
            }
        }
        if let Some(paused) = patch.paused {
            invocation.arg("paused").arg(u8::from(paused));
        }
        if let Some(difficulty) = patch.challenge_difficulty {
            invocation.arg("challenge_difficulty").arg(difficulty);
        }
        let (found, recorded): (i64, i64) =
            invocation.invoke_async(&mut self.redis.clone()).await?;
        Ok(match found {
            0 => Patched::Missing,
            -1 => Patched::AuditBacklog,
            _ => Patched::Done {
                recorded: recorded == 1,
            },
        })
    }

    /// Marks `event` as having audit records to relay.
    pub async fn mark_audit_pending(&self, event: EventId) -> Result<(), RoomError> {
        let _: i64 = redis::cmd("SADD")
            .arg(self.keys.audit_pending())
            .arg(event.to_string())
            .query_async(&mut self.redis.clone())
            .await?;
        Ok(())
    }

    /// The events marked as having audit records to relay.
    pub async fn audit_pending(&self) -> Result<Vec<EventId>, RoomError> {
        self.event_set(self.keys.audit_pending()).await
    }

    /// Up to `count` of `event`'s audit records waiting to be relayed, oldest first.
    pub async fn audit_records(
        &self,
        event: EventId,
        count: u32,
    ) -> Result<Vec<String>, RoomError> {
        Ok(redis::cmd("LRANGE")
            .arg(self.queue(event).audit)
            .arg(0)
            .arg(i64::from(count) - 1)
            .query_async(&mut self.redis.clone())
            .await?)
    }

    /// Takes one relayed record off `event`'s list (by its exact text, so that a record
    /// another replica appended meanwhile stays).
    pub async fn drop_audit_record(&self, event: EventId, record: &str) -> Result<(), RoomError> {
        let _: i64 = redis::cmd("LREM")
            .arg(self.queue(event).audit)
            .arg(1)
            .arg(record)
            .query_async(&mut self.redis.clone())
            .await?;
        Ok(())
    }

    /// `event` has nothing left to relay: no longer marked (a record written meanwhile is
    /// found by the next sweep).
    pub async fn audit_done(&self, event: EventId) -> Result<(), RoomError> {
        let _: i64 = redis::cmd("SREM")
            .arg(self.keys.audit_pending())
            .arg(event.to_string())
            .query_async(&mut self.redis.clone())
            .await?;
        Ok(())
    }

    /// The operators' view; `None` when the queue does not exist.
    pub async fn stats(&self, event: EventId) -> Result<Option<QueueStats>, RoomError> {
        let k = self.queue(event);
        let result: Value = self
            .scripts
            .stats
            .key(&k.config)
            .key(&k.seq)
            .key(&k.serving)
            .key(&k.admitted)
            .key(&k.stats)
            .key(&k.pre_queue)
            .key(&k.draw)
            .invoke_async(&mut self.redis.clone())
            .await?;
        let items = array(result)?;
        let Some(state) = opt_text(field(&items, 0)?)? else {
            return Ok(None);
        };
        let paused = text(field(&items, 1)?)? == "1";
        let state = match RawState::parse(&state)? {
            RawState::Closed => QueueState::Closed,
            RawState::Scheduled => QueueState::Scheduled,
            RawState::Open if paused => QueueState::Paused,
            RawState::Open => QueueState::Open,
        };
        let small = |i| -> Result<u32, RoomError> {
            Ok(u32::try_from(uint(field(&items, i)?)?).unwrap_or(u32::MAX))
        };
        let last_number = uint(field(&items, 5)?)?;
        let admitted_total = uint(field(&items, 8)?)?;
        let left_waiting = uint(field(&items, 9)?)?;
        let pre_queue = uint(field(&items, 10)?)?;
        Ok(Some(QueueStats {
            event_id: event,
            state,
            // Nobody waits for a closed queue: everyone in it was told the sale is over.
            waiting: if state == QueueState::Closed {
                0
            } else {
                last_number
                    .saturating_sub(admitted_total)
                    .saturating_sub(left_waiting)
                    + pre_queue
            },
            admitted_active: uint(field(&items, 7)?)?,
            serving: uint(field(&items, 6)?)?,
            last_number,
            admit_per_sec: small(2)?,
            max_active: small(3)?,
            admission_ttl_s: small(4)?,
            challenge_difficulty: u8::try_from(uint(field(&items, 13)?)?).unwrap_or(u8::MAX),
            reserved_pending: if state == QueueState::Closed {
                0
            } else {
                uint(field(&items, 14)?)?
            },
        }))
    }

    /// What Redis holds of an event's draw; `None` when the queue does not exist.
    pub async fn draw_state(&self, event: EventId) -> Result<Option<DrawState>, RoomError> {
        let k = self.queue(event);
        /// `(state, seed, participants_sha256)`, `opened_at_ms`, the draw's size.
        type Read = (
            (Option<String>, Option<String>, Option<String>),
            Option<i64>,
            u64,
        );
        let ((state, seed, hash), opened_at_ms, participants): Read = redis::pipe()
            .cmd("HMGET")
            .arg(&k.config)
            .arg("state")
            .arg("seed")
            .arg("participants_sha256")
            .cmd("HGET")
            .arg(&k.stats)
            .arg("opened_at_ms")
            .cmd("ZCARD")
            .arg(&k.draw)
            .query_async(&mut self.redis.clone())
            .await?;
        if state.is_none() {
            return Ok(None);
        }
        let seed = seed
            .map(|text| Seed::parse_hex(&text).map_err(|e| RoomError::Protocol(e.to_string())))
            .transpose()?;
        Ok(Some(DrawState {
            seed,
            opened_at_ms,
            participants,
            participants_sha256: hash,
        }))
    }

    /// Up to `count` of the draw's participants from position `from` (0-based), in number
    /// order.
    pub async fn participants(
        &self,
        event: EventId,
        from: u64,
        count: u64,
    ) -> Result<Vec<UserId>, RoomError> {
        if count == 0 {
            return Ok(Vec::new());
        }
        let members: Vec<String> = redis::cmd("ZRANGE")
            .arg(self.queue(event).draw)
            .arg(from)
            .arg(from + count - 1)
            .query_async(&mut self.redis.clone())
            .await?;
        members
            .iter()
            .map(|member| {
                member
                    .get(64..)
                    .and_then(|user| user.parse().ok())
                    .ok_or_else(|| RoomError::Protocol(format!("draw member {member:?}")))
            })
            .collect()
    }

    /// Keeps the hash of an opened draw's participants file (the first to compute it wins;
    /// the file never changes after opening).
    pub async fn keep_participants_hash(
        &self,
        event: EventId,
        sha256: &str,
    ) -> Result<(), RoomError> {
        let _: i64 = redis::cmd("HSETNX")
            .arg(self.queue(event).config)
            .arg("participants_sha256")
            .arg(sha256)
            .query_async(&mut self.redis.clone())
            .await?;
        Ok(())
    }

    /// The event is over: its queue leaves the set every replica ticks, and its keys expire
    /// `after` (kept that long for late status reads). `true` when retired now.
    pub async fn retire(
        &self,
        event: EventId,
        after: std::time::Duration,
    ) -> Result<bool, RoomError> {
        let k = self.queue(event);
        let mut invocation = self.scripts.retire.prepare_invoke();
        for key in k.all() {
            invocation.key(key);
        }
        invocation.arg(u64::try_from(after.as_millis()).unwrap_or(u64::MAX).max(1));
        let retired: i64 = invocation.invoke_async(&mut self.redis.clone()).await?;
        let _: i64 = redis::cmd("SREM")
            .arg(self.keys.events())
            .arg(event.to_string())
            .query_async(&mut self.redis.clone())
            .await?;
        Ok(retired == 1)
    }

    /// Every event with a queue.
    pub async fn events(&self) -> Result<Vec<EventId>, RoomError> {
        self.event_set(self.keys.events()).await
    }

    /// The event ids in the set `key`.
    async fn event_set(&self, key: String) -> Result<Vec<EventId>, RoomError> {
        let members: Vec<String> = redis::cmd("SMEMBERS")
            .arg(key)
            .query_async(&mut self.redis.clone())
            .await?;
        Ok(members.iter().filter_map(|m| m.parse().ok()).collect())
    }

    /// What every socket of an event shares; `None` when the queue does not exist.
    pub async fn view(&self, event: EventId) -> Result<Option<QueueView>, RoomError> {
        let k = self.queue(event);
        let result: Value = self
            .scripts
            .view
            .key(&k.config)
            .key(&k.serving)
            .invoke_async(&mut self.redis.clone())
            .await?;
        let items = array(result)?;
        let Some(state) = opt_text(field(&items, 0)?)? else {
            return Ok(None);
        };
        let state = RawState::parse(&state)?;
        Ok(Some(QueueView {
            state,
            paused: text(field(&items, 1)?)? == "1",
            closed_reason: if state == RawState::Closed {
                Some(closed_reason(&text(field(&items, 2)?)?).unwrap_or(ClosedReason::Ended))
            } else {
                None
            },
            admit_per_sec: u32::try_from(uint(field(&items, 3)?)?).unwrap_or(u32::MAX),
            admission_ttl_s: u32::try_from(uint(field(&items, 4)?)?).unwrap_or(u32::MAX),
            serving: uint(field(&items, 5)?)?,
            reserved_pending: uint(field(&items, 6)?)?,
        }))
    }

    /// The queue's state and the difficulty of its join challenge; `None` when the queue does
    /// not exist.
    pub async fn challenge_difficulty(
        &self,
        event: EventId,
    ) -> Result<Option<(RawState, u8)>, RoomError> {
        let (state, difficulty): (Option<String>, Option<u8>) = redis::cmd("HMGET")
            .arg(self.queue(event).config)
            .arg("state")
            .arg("challenge_difficulty")
            .query_async(&mut self.redis.clone())
            .await?;
        state
            .map(|state| Ok((RawState::parse(&state)?, difficulty.unwrap_or(0))))
            .transpose()
    }

    /// The places of `users` (`None` for a user without one), read [`USERS_PER_CALL`] at a
    /// time (a replica's every pre-queue socket at the opening).
    pub async fn places(
        &self,
        event: EventId,
        users: &[UserId],
    ) -> Result<Vec<Option<Place>>, RoomError> {
        let key = self.queue(event).users;
        per_chunk(
            users,
            "places",
            |chunk| {
                let mut command = redis::cmd("HMGET");
                command
                    .arg(&key)
                    .arg(chunk.iter().map(ToString::to_string).collect::<Vec<_>>());
                let mut redis = self.redis.clone();
                async move { Ok(command.query_async(&mut redis).await?) }
            },
            |value| match value {
                Value::Nil => Ok(None),
                other => Place::parse(&other).map(Some),
            },
        )
        .await
    }

    /// What Redis recorded of `users`' places and admissions, each user's read in one step: a
    /// gate token is only ever signed for an admission recorded here for that user and
    /// number. Any number of users (a replica's every waiting socket when many are admitted
    /// at once), read [`USERS_PER_CALL`] at a time.
    pub async fn admissions(
        &self,
        event: EventId,
        users: &[UserId],
    ) -> Result<Vec<Recorded>, RoomError> {
        let k = self.queue(event);
        per_chunk(
            users,
            "admissions",
            |chunk| {
                let mut invocation = self.scripts.admissions.key(&k.users);
                invocation.key(&k.admitted).key(&k.admitted_at);
                for user in chunk {
                    invocation.arg(user.to_string());
                }
                let mut redis = self.redis.clone();
                async move { array(invocation.invoke_async(&mut redis).await?) }
            },
            recorded_of,
        )
        .await
    }
}

/// Reads `users` [`USERS_PER_CALL`] at a time: `read` answers a chunk with one value per
/// user, in its order, and `parse` makes each a `T`.
async fn per_chunk<'a, T, Read>(
    users: &'a [UserId],
    what: &str,
    mut read: impl FnMut(&'a [UserId]) -> Read,
    parse: impl Fn(Value) -> Result<T, RoomError>,
) -> Result<Vec<T>, RoomError>
where
    Read: std::future::Future<Output = Result<Vec<Value>, RoomError>>,
{
    let mut parsed = Vec::with_capacity(users.len());
    for chunk in users.chunks(USERS_PER_CALL) {
        let values = read(chunk).await?;
        if values.len() != chunk.len() {
            return Err(RoomError::Protocol(format!(
                "{what}: {} answers for {} users",
                values.len(),
                chunk.len()
            )));
        }
        for value in values {
            parsed.push(parse(value)?);
        }
    }
    Ok(parsed)
}

/// One user's entry of `admissions.lua`: {number|false, admitted_at_ms|false,
/// admission_end_ms|false}.
fn recorded_of(entry: Value) -> Result<Recorded, RoomError> {
    let fields = array(entry)?;
    let optional = |i: usize| -> Result<Option<i64>, RoomError> {
        match field(&fields, i)? {
            Value::Nil | Value::Boolean(false) => Ok(None),
            other => int(other).map(Some),
        }
    };
    Ok(Recorded {
        place: match field(&fields, 0)? {
            Value::Nil | Value::Boolean(false) => None,
            other => Some(Place::parse(other)?),
        },
        admitted_at_ms: optional(1)?,
        admission_ends_ms: optional(2)?,
    })
}
