//! Live counters of a drill process, and the one-line progress display the parent prints
//! while the burst runs.

use std::sync::atomic::{AtomicU64, Ordering};

use serde::{Deserialize, Serialize};

macro_rules! counters {
    ($($(#[$doc:meta])* $name:ident),+ $(,)?) => {
        /// Counters shared by every buyer of one process.
        #[derive(Debug, Default)]
        pub struct Counters { $($(#[$doc])* pub $name: AtomicU64,)+ }

        /// A reading of [`Counters`] (summed over processes by the parent).
        #[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
        pub struct Snapshot { $(pub $name: u64,)+ }

        impl Counters {
            #[must_use]
            pub fn snapshot(&self) -> Snapshot {
                Snapshot { $($name: self.$name.load(Ordering::Relaxed),)+ }
            }
        }

        impl Snapshot {
            pub fn add(&mut self, other: &Snapshot) {
                $(self.$name += other.$name;)+
            }
        }
    };
}

counters! {
    /// Buyers whose arrival time has come.
    arrived,
    /// Joins answered with a ticket.
    joined,
    /// Buyers in the queue now (joined, not yet admitted or out).
    waiting,
    /// Admissions seen.
    admitted,
    /// Orders accepted.
    ordered,
    /// Orders seen in a final state.
    settled,
    /// Orders seen paid.
    paid,
    /// Buyers told sold out or closed.
    turned_away,
    /// Buyers who left the queue.
    abandoned,
    /// Buyers whose visit is over, whatever its outcome.
    done,
    /// Failed requests.
    errors,
}

impl Counters {
    pub fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    pub fn drop_one(counter: &AtomicU64) {
        counter.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Snapshot {
    /// One progress line, e.g. for stderr.
    #[must_use]
    pub fn line(&self, elapsed_s: f64, users: usize) -> String {
        format!(
            "[{elapsed_s:>6.1}s] arrived {}/{users}  joined {}  waiting {}  admitted {}  ordered {}  paid {}/{}  turned away {}  left {}  done {}  errors {}",
            self.arrived,
            self.joined,
            self.waiting,
            self.admitted,
            self.ordered,
            self.paid,
            self.settled,
            self.turned_away,
            self.abandoned,
            self.done,
            self.errors,
        )
    }
}
