//! Redis key builders. Every key of one event's queue contains the hash tag `{<event_id>}`, so
//! multi-key Lua scripts run unchanged on Redis Cluster. A prefix namespaces a deployment (or
//! a test) and never contains braces, so the hash tag is always the event id.

use crate::ids::{EventId, UserId};

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

    /// A fixed-window rate-limit counter for one subject (a user id or an IP) of one action.
    #[must_use]
    pub fn rate_limit(&self, action: &str, subject: &str, window: u64) -> String {
        format!("{}rl:{action}:{{{subject}}}:{window}", self.prefix)
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
    /// Hash: queue configuration and state (`admit_per_sec`, `max_active`, `admission_ttl_s`,
    /// `opens_at`, `state`).
    pub config: String,
    /// Counter: the last number given out.
    pub seq: String,
    /// Counter: the highest number served (admitted) so far.
    pub serving: String,
    /// Hash: user id → number.
    pub users: String,
    /// Set: users who joined before opening, numbered at random at opening.
    pub pre_queue: String,
    /// Sorted set: admitted, unfinished users scored by admission expiry (ms).
    pub admitted: String,
    /// Hash: counters for operators (admissions, expiries, leaves, last tick).
    pub stats: String,
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
            pre_queue: format!("{base}:pre"),
            admitted: format!("{base}:admitted"),
            stats: format!("{base}:stats"),
            channel: format!("{base}:notify"),
        }
    }

    /// Every key (not the channel), for scripts and cleanup.
    #[must_use]
    pub fn all(&self) -> [&str; 7] {
        [
            &self.config,
            &self.seq,
            &self.serving,
            &self.users,
            &self.pre_queue,
            &self.admitted,
            &self.stats,
        ]
    }
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

/// The per-user hash field name of a user id in [`QueueKeys::users`].
#[must_use]
pub fn user_field(user: UserId) -> String {
    user.to_string()
}
