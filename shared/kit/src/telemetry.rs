//! Tracing initialisation shared by every binary.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt;

use crate::config::LogFormat;

/// Installs the global subscriber: level from `RUST_LOG` (default `info`), text or JSON lines
/// on stderr. A second call (several services in one process) keeps the first subscriber.
pub fn init(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = fmt().with_env_filter(filter).with_writer(std::io::stderr);
    let result = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .try_init(),
    };
    // Already installed by another service in this process: that one stays.
    drop(result);
}

/// How often a throttled call site may log ([`LogThrottle`]).
pub const LOG_EVERY: Duration = Duration::from_secs(1);

/// At most one log line per interval from one call site, for failures that repeat with every
/// request while a store is down or overloaded: logging each would write thousands of lines a
/// second and take CPU from the requests (their metrics still count every one). Keep one in a
/// `static` per call site.
#[derive(Debug, Default)]
pub struct LogThrottle {
    /// Milliseconds since the process's first throttled line when the site last logged, plus
    /// one (0: never).
    last_ms: AtomicU64,
    held_back: AtomicU64,
}

impl LogThrottle {
    #[must_use]
    pub const fn new() -> Self {
        Self {
            last_ms: AtomicU64::new(0),
            held_back: AtomicU64::new(0),
        }
    }

    /// `Some(n)` when the site may log now (`n`: lines held back since it last did), `None`
    /// when it logged less than `every` ago (this one is counted as held back).
    pub fn allow(&self, every: Duration) -> Option<u64> {
        static START: OnceLock<Instant> = OnceLock::new();
        let elapsed = START.get_or_init(Instant::now).elapsed();
        let now = u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX - 1) + 1;
        let every = u64::try_from(every.as_millis()).unwrap_or(u64::MAX);
        let last = self.last_ms.load(Ordering::Relaxed);
        if last != 0 && now.saturating_sub(last) < every
            || self
                .last_ms
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_err()
        {
            self.held_back.fetch_add(1, Ordering::Relaxed);
            return None;
        }
        Some(self.held_back.swap(0, Ordering::Relaxed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_throttled_site_logs_once_per_interval_and_counts_the_rest() {
        let site = LogThrottle::new();
        let every = Duration::from_millis(200);
        assert_eq!(site.allow(every), Some(0));
        assert_eq!(site.allow(every), None);
        assert_eq!(site.allow(every), None);
        std::thread::sleep(Duration::from_millis(250));
        assert_eq!(site.allow(every), Some(2), "the two held back are reported");
        assert_eq!(site.allow(every), None);
    }
}
