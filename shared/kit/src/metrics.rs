//! The process's Prometheus recorder, and series a service renders itself. The `metrics`
//! facade is process-global by design, so it is installed once however many services share the
//! process; every service renders it. A series whose label is data (an event id) is rendered by
//! a [`Source`] its service owns instead, so that it goes away with what it describes: the
//! recorder never forgets a series.

use std::fmt::Write as _;
use std::sync::{Arc, OnceLock};

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

/// Latency buckets (seconds) for every `*_seconds` histogram.
pub const LATENCY_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
    60.0, 300.0,
];

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// Installs the recorder on first use and returns the handle that renders it.
///
/// # Panics
/// Never with the constant buckets above; a recorder installed by someone else is an
/// invariant violation of the process set-up.
#[must_use]
pub fn install() -> PrometheusHandle {
    HANDLE
        .get_or_init(|| {
            let builder = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), LATENCY_BUCKETS)
                .expect("constant, non-empty buckets");
            let recorder = builder.build_recorder();
            let handle = recorder.handle();
            if ::metrics::set_global_recorder(recorder).is_err() {
                tracing::warn!("a metrics recorder was already installed; /metrics shows only this handle's metrics");
            }
            let upkeep = handle.clone();
            std::thread::Builder::new()
                .name("metrics-upkeep".into())
                .spawn(move || {
                    loop {
                        std::thread::sleep(std::time::Duration::from_secs(5));
                        upkeep.run_upkeep();
                    }
                })
                .expect("spawn metrics upkeep thread");
            handle
        })
        .clone()
}

/// Series a service renders itself, in the Prometheus text format (`# TYPE` lines included).
pub trait Source: Send + Sync + 'static {
    fn render(&self, out: &mut String);
}

/// What `/metrics` shows: the process's recorder and the services' own series.
#[derive(Clone)]
pub struct Exposition {
    handle: PrometheusHandle,
    sources: Vec<Arc<dyn Source>>,
}

impl std::fmt::Debug for Exposition {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Exposition")
            .field("sources", &self.sources.len())
            .finish_non_exhaustive()
    }
}

impl Exposition {
    /// The process's recorder alone.
    #[must_use]
    pub fn new() -> Self {
        Self {
            handle: install(),
            sources: Vec::new(),
        }
    }

    #[must_use]
    pub fn with(mut self, source: Arc<dyn Source>) -> Self {
        self.sources.push(source);
        self
    }

    /// These sources and `other`'s (the all-in-one process shows every service's).
    #[must_use]
    pub fn merged(mut self, other: &Exposition) -> Self {
        for source in &other.sources {
            if !self.sources.iter().any(|s| Arc::ptr_eq(s, source)) {
                self.sources.push(Arc::clone(source));
            }
        }
        self
    }

    /// The whole exposition text.
    #[must_use]
    pub fn render(&self) -> String {
        let mut out = self.handle.render();
        for source in &self.sources {
            source.render(&mut out);
        }
        out
    }
}

impl Default for Exposition {
    fn default() -> Self {
        Self::new()
    }
}

/// Writes one family of series: `# TYPE name kind`, then `name{label="value"} number` per
/// entry (label values escaped as the text format wants).
pub fn write_family<'a>(
    out: &mut String,
    name: &str,
    kind: &str,
    label: &str,
    series: impl IntoIterator<Item = (&'a str, f64)>,
) {
    let mut series = series.into_iter().peekable();
    if series.peek().is_none() {
        return;
    }
    let _ = writeln!(out, "# TYPE {name} {kind}");
    for (value, number) in series {
        let escaped = value
            .replace('\\', "\\\\")
            .replace('"', "\\\"")
            .replace('\n', "\\n");
        let _ = writeln!(out, "{name}{{{label}=\"{escaped}\"}} {number}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_family_is_written_in_the_text_format_and_nothing_when_empty() {
        let mut out = String::new();
        write_family(&mut out, "x_total", "counter", "event", []);
        assert!(out.is_empty());
        write_family(
            &mut out,
            "x_total",
            "counter",
            "event",
            [("a", 1.0), ("b\"c", 2.5)],
        );
        assert_eq!(
            out,
            "# TYPE x_total counter\nx_total{event=\"a\"} 1\nx_total{event=\"b\\\"c\"} 2.5\n"
        );
    }
}
