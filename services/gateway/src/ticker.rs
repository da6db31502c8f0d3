//! The admission ticker: every replica ticks every queue (the Lua script keeps the total at
//! the configured rate), records what happened as metrics, and refreshes the queue gauges.
//! Series per event are this replica's own ([`QueueMetrics`]): they go away when the event's
//! queue is retired.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use flash_kit::metrics::{Source, write_family};
use flash_protocol::EventId;
use tokio_util::sync::CancellationToken;

use crate::waiting_room::WaitingRoom;

/// One event's series on this replica.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct EventSeries {
    admitted: u64,
    expired: u64,
    waiting: u64,
    admitted_active: u64,
    serving: u64,
    /// 1 while the queue admits (open, not paused, not holding its line, its settings known),
    /// 0 otherwise: stall alerts only consider open queues.
    open: u64,
}

/// The series of every queue this replica ticks, by event: admissions and lapsed admissions
/// (counters), and the queue's waiting, admitted and serving (gauges).
#[derive(Debug, Default)]
pub struct QueueMetrics {
    events: Mutex<BTreeMap<EventId, EventSeries>>,
}

impl QueueMetrics {
    fn with<T>(&self, work: impl FnOnce(&mut BTreeMap<EventId, EventSeries>) -> T) -> T {
        let mut events = self
            .events
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        work(&mut events)
    }

    /// Keeps the series of `live` events only (a retired queue's series go).
    fn retain(&self, live: &[EventId]) {
        self.with(|events| events.retain(|event, _| live.contains(event)));
    }

    /// Events with series, for tests and debugging.
    #[must_use]
    pub fn events(&self) -> Vec<EventId> {
        self.with(|events| events.keys().copied().collect())
    }
}

/// One family of per-event series: name, kind, and the value it takes from an event's series.
type Family = (&'static str, &'static str, fn(&EventSeries) -> u64);

impl Source for QueueMetrics {
    fn render(&self, out: &mut String) {
        let snapshot: Vec<(String, EventSeries)> = self.with(|events| {
            events
                .iter()
                .map(|(event, series)| (event.to_string(), *series))
                .collect()
        });
        let families: [Family; 6] = [
            ("gateway_admissions_total", "counter", |s| s.admitted),
            ("gateway_admissions_expired_total", "counter", |s| s.expired),
            ("gateway_queue_waiting", "gauge", |s| s.waiting),
            ("gateway_queue_admitted_active", "gauge", |s| {
                s.admitted_active
            }),
            ("gateway_queue_serving", "gauge", |s| s.serving),
            ("gateway_queue_open", "gauge", |s| s.open),
        ];
        for (name, kind, value) in families {
            write_family(
                out,
                name,
                kind,
                "event",
                snapshot
                    .iter()
                    .map(|(event, series)| (event.as_str(), value(series) as f64)),
            );
        }
    }
}

/// How often the list of queues and the queue gauges are refreshed.
const REFRESH_EVERY: Duration = Duration::from_secs(2);

/// Ticks until `stop`.
pub async fn run(
    room: WaitingRoom,
    every: Duration,
    metrics: Arc<QueueMetrics>,
    stop: CancellationToken,
) {
    let mut interval = tokio::time::interval(every);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut events: Vec<EventId> = Vec::new();
    let mut refreshed: Option<Instant> = None;
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            _ = interval.tick() => {}
        }
        if refreshed.is_none_or(|at| at.elapsed() >= REFRESH_EVERY) {
            refreshed = Some(Instant::now());
            match room.events().await {
                Ok(list) => {
                    events = list;
                    metrics.retain(&events);
                }
                Err(error) => tracing::warn!(%error, "cannot list queues"),
            }
            refresh_gauges(&room, &events, &metrics).await;
        }
        // Every queue at once: one slow queue does not hold back the others' admissions.
        let ticks = events.iter().map(|&event| {
            let room = &room;
            async move {
                let started = Instant::now();
                let mut outcome = room.tick(event).await;
                // While its pre-queue is numbered (a bounded chunk per call), a queue is
                // ticked again at once, for up to half a tick period.
                while let Ok(so_far) = &mut outcome
                    && so_far.numbering.is_some()
                    && started.elapsed() < every / 2
                {
                    match room.tick(event).await {
                        Ok(next) => so_far.absorb(next),
                        Err(error) => outcome = Err(error),
                    }
                }
                ::metrics::histogram!("gateway_tick_duration_seconds")
                    .record(started.elapsed().as_secs_f64());
                (event, outcome)
            }
        });
        for (event, outcome) in futures::future::join_all(ticks).await {
            match outcome {
                Ok(outcome) => {
                    if outcome.admitted > 0 || outcome.expired > 0 {
                        metrics.with(|events| {
                            let series = events.entry(event).or_default();
                            series.admitted += outcome.admitted;
                            series.expired += outcome.expired;
                        });
                    }
                    for wait in outcome.waits_ms {
                        ::metrics::histogram!("gateway_time_to_admission_seconds")
                            .record(wait as f64 / 1000.0);
                    }
                    if let Some(numbered) = outcome.opened {
                        tracing::info!(%event, numbered, "queue opened; numbering its pre-queue in the draw's order");
                    }
                }
                Err(error) => tracing::warn!(%error, %event, "admission tick failed"),
            }
        }
    }
}

async fn refresh_gauges(room: &WaitingRoom, events: &[EventId], metrics: &QueueMetrics) {
    for &event in events {
        if let Ok(Some(stats)) = room.stats(event).await {
            let admitting = match room.view(event).await {
                Ok(Some(view)) => view.admits(),
                _ => false,
            };
            metrics.with(|events| {
                let series = events.entry(event).or_default();
                series.waiting = stats.waiting;
                series.admitted_active = stats.admitted_active;
                series.serving = stats.serving;
                series.open = u64::from(admitting);
            });
        }
    }
}
