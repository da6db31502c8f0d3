//! Redis key builders. Every key of one event's queue contains the hash tag `{<event_id>}`, so
//! multi-key Lua scripts run unchanged on Redis Cluster. A prefix namespaces a deployment (or
//! a test) and never contains braces, so the hash tag is always the event id.

use crate::ids::EventId;

/// Default prefix of every key.
pub const DEFAULT_PREFIX: &str = "flash:";

/// A prefix that would change the hash tag of the keys.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("a Redis key prefix may not contain '{{' or '}}': {0:?}")]
pub struct InvalidPrefix(pub String);

/// Builds every Redis key and channel name the services use.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RedisKeys {
    prefix: String,
}

impl Default for RedisKeys {
    fn default() -> Self {
        Self {
            prefix: DEFAULT_PREFIX.to_owned(),
        }
    }
}

impl RedisKeys {
    pub fn new(prefix: impl Into<String>) -> Result<Self, InvalidPrefix> {
        let prefix = prefix.into();
        if prefix.contains(['{', '}']) {
            return Err(InvalidPrefix(prefix));
        }
        Ok(Self { prefix })
    }

    #[must_use]
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The keys of one event's queue.
    #[must_use]
    pub fn queue(&self, event: EventId) -> QueueKeys {
        QueueKeys::new(&self.prefix, event)
    }

    /// Set of event ids the gateway runs a queue for.
    #[must_use]
    pub fn events(&self) -> String {
        format!("{}events", self.prefix)
    }

    /// Set of event ids whose queue has audit records waiting to be relayed (a hint: every
    /// queue's list is also swept now and then).
    #[must_use]
    pub fn audit_pending(&self) -> String {
        format!("{}audit-pending", self.prefix)
    }

    /// The counter of rate limit `limit` for `subject` (an address, a network, a user or token
    /// family id, a hashed account). Each subject is its own hash tag, so on Redis Cluster the
    /// limits spread over the shards. Braces in `subject` are replaced, so it cannot change
    /// the tag.
    #[must_use]
    pub fn limit(&self, limit: &str, subject: &str) -> String {
        format!(
            "{}rl:{{{limit}:{}}}",
            self.prefix,
            subject.replace(['{', '}'], "_")
        )
    }

    /// Sorted set of the addresses an account logged in from (member: address, score: ms),
    /// which its failed-login lock does not apply to.
    #[must_use]
    pub fn known_addresses(&self, account: &str) -> String {
        format!(
            "{}known:{{{}}}",
            self.prefix,
            account.replace(['{', '}'], "_")
        )
    }

    /// Pattern matching every key under this prefix (for cleanup in tests and tools).
    #[must_use]
    pub fn all_keys_pattern(&self) -> String {
        format!("{}*", self.prefix)
    }
}

/// The keys of one event's queue; all share the hash tag `{event_id}`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QueueKeys {
    /// Hash: settings and state (`name`, `opens_at_ms`, `admit_per_sec`, `max_active`,
    /// `admission_ttl_s`, `state`, `paused`, `closed_reason`, the draw's secret `seed`, the
    /// first number of [`numbers`](Self::numbers) `numbers_from`, and while the pre-queue is
    /// numbered `numbered_through`, `numbering_end`, `draw_at`).
    pub config: String,
    /// Counter: the last number given out.
    pub seq: String,
    /// Counter: the highest number served so far.
    pub serving: String,
    /// Hash: user id → number (`pre` while in the pre-queue).
    pub users: String,
    /// Hash: number → user id, for the numbers given to the pre-queue at opening (and every
    /// number of a queue opened before [`numbers`](Self::numbers) existed); a place left is
    /// removed, so admission skips it.
    pub by_number: String,
    /// List: the numbers joins give from opening on, in order: the entry at index `i` is
    /// number `numbers_from + i` (`numbers_from` in the config, set at opening), as
    /// `<user id> <joined ms>`. Appending costs Redis less than a hash entry. A place left
    /// keeps its entry: admission skips a number its user no longer holds.
    pub numbers: String,
    /// Hash: user id → join time (ms), for time-to-admission.
    pub joined_at: String,
    /// Sorted set: users who joined before opening, as `<draw key hex><user id>` members all
    /// scored 0, so in the draw's order ([`crate::draw`]); numbered in chunks at opening and
    /// kept unchanged from then on (the published participants).
    pub draw: String,
    /// Set: users who joined before opening a queue created without a draw seed (before the
    /// draw existed), numbered in random order at opening.
    pub pre_queue: String,
    /// Sorted set: admitted, unfinished users scored by the end of their admission (ms).
    pub admitted: String,
    /// Hash: user id → admission time (ms).
    pub admitted_at: String,
    /// Set: users whose admission ran out unused.
    pub expired: String,
    /// Hash: counters and tick state (`last_tick_ms`, `credit`, `admitted_total`,
    /// `left_waiting`, `expired_total`, `consumed_total`, `opened_at_ms`).
    pub stats: String,
    /// Prefix of the per-user sets of used join challenges (`<prefix>:<user id>`), each
    /// expiring with the last challenge it holds.
    pub challenges_used: String,
    /// List: operators' changes to this queue waiting to be relayed to the api's audit log
    /// (JSON records, oldest first; bounded).
    pub audit: String,
    /// Pub/sub channel on which replicas learn of changes to this queue.
    pub channel: String,
}

impl QueueKeys {
    fn new(prefix: &str, event: EventId) -> Self {
        let base = format!("{prefix}q:{{{event}}}");
        Self {
            config: format!("{base}:config"),
            seq: format!("{base}:seq"),
            serving: format!("{base}:serving"),
            users: format!("{base}:users"),
            by_number: format!("{base}:by-number"),
            numbers: format!("{base}:numbers"),
            joined_at: format!("{base}:joined-at"),
            draw: format!("{base}:draw"),
            pre_queue: format!("{base}:pre"),
            admitted: format!("{base}:admitted"),
            admitted_at: format!("{base}:admitted-at"),
            expired: format!("{base}:expired"),
            stats: format!("{base}:stats"),
            challenges_used: format!("{base}:challenge-used"),
            audit: format!("{base}:audit"),
            channel: format!("{base}:notify"),
        }
    }

    /// Every key (not the channel), for scripts and cleanup.
    #[must_use]
    pub fn all(&self) -> [&str; 14] {
        [
            &self.config,
            &self.seq,
            &self.serving,
            &self.users,
            &self.by_number,
            &self.numbers,
            &self.joined_at,
            &self.draw,
            &self.pre_queue,
            &self.admitted,
            &self.admitted_at,
            &self.expired,
            &self.stats,
            &self.audit,
        ]
    }
}

/// Pattern matching the notification channel of every queue under `prefix`.
#[must_use]
pub fn channel_pattern(prefix: &str) -> String {
    format!("{prefix}q:*:notify")
}

/// The event a notification channel belongs to (the text of its hash tag).
#[must_use]
pub fn event_of_channel(channel: &str) -> Option<EventId> {
    let tag = hash_tag(channel);
    if tag == channel {
        return None;
    }
    tag.parse().ok()
}

/// The hash tag of a key: the text between the first `{` and the next `}`, as Redis Cluster
/// computes it (the whole key when there is none or it is empty).
#[must_use]
pub fn hash_tag(key: &str) -> &str {
    if let Some(open) = key.find('{')
        && let Some(len) = key[open + 1..].find('}')
        && len > 0
    {
        return &key[open + 1..open + 1 + len];
    }
    key
}
