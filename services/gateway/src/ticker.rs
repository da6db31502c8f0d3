//! The admission ticker: every replica ticks every queue (the Lua script keeps the total at
//! the configured rate), records what happened as metrics, and refreshes the queue gauges.

use std::time::{Duration, Instant};

use flash_protocol::EventId;
use tokio_util::sync::CancellationToken;

use crate::waiting_room::WaitingRoom;

/// How often the list of queues and the queue gauges are refreshed.
const REFRESH_EVERY: Duration = Duration::from_secs(2);

/// Ticks until `stop`.
pub async fn run(room: WaitingRoom, every: Duration, stop: CancellationToken) {
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
                Ok(list) => events = list,
                Err(error) => tracing::warn!(%error, "cannot list queues"),
            }
            refresh_gauges(&room, &events).await;
        }
        // Every queue at once: one slow queue does not hold back the others' admissions.
        let ticks = events.iter().map(|&event| {
            let room = &room;
            async move {
                let started = Instant::now();
                let outcome = room.tick(event).await;
                ::metrics::histogram!("gateway_tick_duration_seconds")
                    .record(started.elapsed().as_secs_f64());
                (event, outcome)
            }
        });
        for (event, outcome) in futures::future::join_all(ticks).await {
            match outcome {
                Ok(outcome) => {
                    let label = event.to_string();
                    if outcome.admitted > 0 {
                        ::metrics::counter!("gateway_admissions_total", "event" => label.clone())
                            .increment(outcome.admitted);
                    }
                    if outcome.expired > 0 {
                        ::metrics::counter!("gateway_admissions_expired_total", "event" => label.clone())
                            .increment(outcome.expired);
                    }
                    for wait in outcome.waits_ms {
                        ::metrics::histogram!("gateway_time_to_admission_seconds")
                            .record(wait as f64 / 1000.0);
                    }
                    if let Some(numbered) = outcome.opened {
                        tracing::info!(%event, numbered, "queue opened; pre-queue numbered at random");
                    }
                }
                Err(error) => tracing::warn!(%error, %event, "admission tick failed"),
            }
        }
    }
}

async fn refresh_gauges(room: &WaitingRoom, events: &[EventId]) {
    for &event in events {
        if let Ok(Some(stats)) = room.stats(event).await {
            let label = event.to_string();
            ::metrics::gauge!("gateway_queue_waiting", "event" => label.clone())
                .set(stats.waiting as f64);
            ::metrics::gauge!("gateway_queue_admitted_active", "event" => label.clone())
                .set(stats.admitted_active as f64);
            ::metrics::gauge!("gateway_queue_serving", "event" => label).set(stats.serving as f64);
        }
    }
}
