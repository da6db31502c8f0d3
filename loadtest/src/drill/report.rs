//! A drill's report: the figures, the checks and the timeline, as JSON (the whole report),
//! as a table for people, and as one self-contained HTML page with inline SVG charts (no
//! script, nothing fetched).

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

use super::chaos::Happened;
use super::hostile::Attack;
use crate::audit::Ledger;
use crate::stats::Summary;

/// What was run.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Setup {
    pub kind: String,
    pub run: String,
    pub started_at: String,
    pub users: usize,
    pub tickets: u32,
    pub max_per_user: u32,
    pub quantity: u32,
    pub admit_per_sec: u32,
    pub max_active: u32,
    pub admission_ttl_s: u32,
    pub arrival: String,
    pub ramp_s: f64,
    /// Seconds from t = 0 to the sale's opening (pre-queue drills).
    pub opens_s: Option<f64>,
    pub late_share: f64,
    pub polling_share: f64,
    pub abandon_share: f64,
    pub reconnect_share: f64,
    pub retry_share: f64,
    pub shards: usize,
    pub sources: usize,
    /// Keep-alive connections to each target, all processes together (requests in flight
    /// at most: the load is closed-loop).
    pub connections: usize,
    pub api: String,
    pub gateways: Vec<String>,
    pub machine: String,
}

/// A count over a window, with its latency.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Rate {
    pub count: u64,
    pub per_sec: f64,
    pub latency: Summary,
}

/// One bar of a histogram: values up to `le_ms` (`None`: every larger value).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Bucket {
    pub le_ms: Option<f64>,
    pub count: u64,
}

/// One second of the drill.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Second {
    pub t: u64,
    pub joins: u64,
    pub admissions: u64,
    pub orders: u64,
    pub settled: u64,
    pub errors: u64,
    /// From the gateway's queue stats, sampled each second.
    pub waiting: Option<u64>,
    pub admitted_active: Option<u64>,
}

/// One invariant or SLO, and whether it held.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Check {
    pub name: String,
    pub ok: bool,
    pub detail: String,
}

/// Payments as the buyers saw them.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Payments {
    pub settled: u64,
    pub paid: u64,
    pub failed: u64,
    pub expired: u64,
    pub not_settled: u64,
    /// Server time from order creation to final state.
    pub settle: Summary,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Histograms {
    pub join: Vec<Bucket>,
    pub order: Vec<Bucket>,
    pub admission_wait: Vec<Bucket>,
    pub settle: Vec<Bucket>,
}

/// The whole report (`--json` writes it; `flash-drill report` reads it back).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Report {
    pub setup: Setup,
    pub crowd_members: usize,
    pub crowd_seconds: f64,
    pub event_id: String,
    pub remaining_at_end: u32,
    pub event_status_at_end: String,
    /// Seconds from t = 0 until the last buyer was done.
    pub window_s: f64,
    /// Seconds from t = 0 until the first buyer was told sold out or closed.
    pub sold_out_after_s: Option<f64>,
    pub joins: Rate,
    /// From a buyer's arrival to their join's answer: the wait for a free connection too,
    /// as a browser in a crowd would see it.
    pub join_from_arrival: Summary,
    pub status_polls: Summary,
    /// From joining (or the opening, for the pre-queue) to admission.
    pub admission: Rate,
    pub orders: Rate,
    pub payments: Payments,
    pub outcomes: BTreeMap<String, u64>,
    pub requests: u64,
    pub failed_requests: u64,
    pub error_rate: f64,
    pub errors: BTreeMap<String, u64>,
    pub disconnects: BTreeMap<String, u64>,
    pub histograms: Histograms,
    pub timeline: Vec<Second>,
    pub invariants: Vec<Check>,
    pub slos: Vec<Check>,
    pub chaos: Vec<Happened>,
    /// The hostile mix (`flash-drill abuse`): what each attacker did and got.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub attacks: Vec<Attack>,
    pub ledger: Option<Ledger>,
    pub passed: bool,
}

/// An attacker's gains, e.g. `0 tokens (0 allowed), 2 tickets (2 allowed)`.
fn gains(attack: &Attack) -> String {
    attack
        .gains
        .iter()
        .map(|g| {
            let allowed = if g.allowed == u64::MAX {
                "no limit".to_owned()
            } else {
                format!("{} allowed", g.allowed)
            };
            format!("{} {} ({allowed})", g.got, g.what)
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// Histogram edges (ms): a 1-2-5 series from 0.1 ms to 100 s, then everything above.
const EDGES_MS: [f64; 19] = [
    0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0, 200.0, 500.0, 1_000.0, 2_000.0, 5_000.0,
    10_000.0, 20_000.0, 50_000.0, 100_000.0,
];

/// Counts `values_ms` into the 1-2-5 buckets (the last bucket is "more").
#[must_use]
pub fn buckets(values_ms: impl IntoIterator<Item = f64>) -> Vec<Bucket> {
    let mut counts = vec![0_u64; EDGES_MS.len() + 1];
    for value in values_ms {
        let slot = EDGES_MS
            .iter()
            .position(|edge| value <= *edge)
            .unwrap_or(EDGES_MS.len());
        counts[slot] += 1;
    }
    counts
        .into_iter()
        .enumerate()
        .map(|(i, count)| Bucket {
            le_ms: EDGES_MS.get(i).copied(),
            count,
        })
        .collect()
}

fn verdict(ok: bool) -> &'static str {
    if ok { "ok  " } else { "FAIL" }
}

fn ms(value: f64) -> String {
    if value >= 10_000.0 {
        format!("{:.1}s", value / 1000.0)
    } else if value >= 100.0 {
        format!("{value:.0}ms")
    } else {
        format!("{value:.1}ms")
    }
}

fn list(map: &BTreeMap<String, u64>) -> String {
    if map.is_empty() {
        return "none".into();
    }
    map.iter()
        .map(|(k, v)| format!("{k} {v}"))
        .collect::<Vec<_>>()
        .join(", ")
}

impl Report {
    /// The rows of the figures table: name, count, rate per second, latency.
    fn figures(&self) -> [(&'static str, u64, Option<f64>, &Summary); 6] {
        [
            (
                "joins",
                self.joins.count,
                Some(self.joins.per_sec),
                &self.joins.latency,
            ),
            (
                "join, from arrival",
                self.join_from_arrival.count,
                None,
                &self.join_from_arrival,
            ),
            (
                "status polls",
                self.status_polls.count,
                None,
                &self.status_polls,
            ),
            (
                "time to admission",
                self.admission.count,
                Some(self.admission.per_sec),
                &self.admission.latency,
            ),
            (
                "orders",
                self.orders.count,
                Some(self.orders.per_sec),
                &self.orders.latency,
            ),
            (
                "payment (order → final)",
                self.payments.settled,
                None,
                &self.payments.settle,
            ),
        ]
    }

    /// The report as a table for a terminal.
    #[must_use]
    pub fn table(&self) -> String {
        let s = &self.setup;
        let mut out = String::new();
        let _ = writeln!(
            out,
            "Flash Tickets drill ({}): {} buyers, {} tickets, arrival {}, {} process(es), {} source address(es), {} connections per target: {}",
            s.kind,
            s.users,
            s.tickets,
            s.arrival,
            s.shards,
            s.sources,
            s.connections,
            if self.passed { "PASSED" } else { "FAILED" }
        );
        let _ = writeln!(
            out,
            "crowd of {} signed up and logged in in {:.1}s ({:.0}/s, before t = 0); event {}; window {:.1}s; {}",
            self.crowd_members,
            self.crowd_seconds,
            self.crowd_members as f64 / self.crowd_seconds.max(1e-9),
            self.event_id,
            self.window_s,
            self.sold_out_after_s.map_or_else(
                || "never sold out".into(),
                |s| format!("sold out after {s:.1}s")
            )
        );
        let _ = writeln!(
            out,
            "\n{:<26}{:>9}{:>11}{:>10}{:>10}{:>10}{:>10}",
            "", "count", "per s", "p50", "p95", "p99", "max"
        );
        for (name, count, per_sec, l) in self.figures() {
            let _ = writeln!(
                out,
                "{name:<26}{count:>9}{:>11}{:>10}{:>10}{:>10}{:>10}",
                per_sec.map_or_else(String::new, |r| format!("{r:.0}")),
                ms(l.p50_ms),
                ms(l.p95_ms),
                ms(l.p99_ms),
                ms(l.max_ms)
            );
        }
        let _ = writeln!(
            out,
            "\noutcomes: {}\nstock: {} of {} left at the end (event {}); paid {}, declined {}, expired {}, not settled {}",
            list(&self.outcomes),
            self.remaining_at_end,
            s.tickets,
            self.event_status_at_end,
            self.payments.paid,
            self.payments.failed,
            self.payments.expired,
            self.payments.not_settled
        );
        let _ = writeln!(
            out,
            "requests {}, failed {} ({:.3} %): {}\nWebSocket disconnections not asked for: {}",
            self.requests,
            self.failed_requests,
            self.error_rate * 100.0,
            list(&self.errors),
            list(&self.disconnects)
        );
        for happened in &self.chaos {
            let _ = writeln!(
                out,
                "chaos {} at {:.1}s: {} in {:.1}s; ready again {}: {}",
                happened.action,
                happened.began_s,
                if happened.ok { "done" } else { "FAILED" },
                happened.took_s,
                happened
                    .ready_after_s
                    .map_or_else(|| "never".into(), |r| format!("after {r:.1}s")),
                happened.detail
            );
        }
        if !self.attacks.is_empty() {
            let _ = writeln!(out, "\nattackers:");
            for a in &self.attacks {
                let _ = writeln!(
                    out,
                    "  [{}] {} ({} tries in {:.1}s): {}\n        answers: {}\n        {}",
                    verdict(a.within_rules()),
                    a.name,
                    a.tries,
                    a.seconds,
                    gains(a),
                    list(&a.answers),
                    a.trouble.as_deref().unwrap_or(&a.how)
                );
            }
        }
        let _ = writeln!(out, "\ninvariants:");
        for check in &self.invariants {
            let _ = writeln!(
                out,
                "  [{}] {}: {}",
                verdict(check.ok),
                check.name,
                check.detail
            );
        }
        let _ = writeln!(out, "SLOs:");
        for check in &self.slos {
            let _ = writeln!(
                out,
                "  [{}] {}: {}",
                verdict(check.ok),
                check.name,
                check.detail
            );
        }
        out
    }

    /// The report as one HTML page.
    #[must_use]
    pub fn html(&self) -> String {
        let s = &self.setup;
        let mut page = String::new();
        let title = format!(
            "Flash Tickets drill: {} buyers, {} tickets ({})",
            s.users, s.tickets, s.kind
        );
        let _ = write!(
            page,
            "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
             <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
             <title>{}</title><style>{STYLE}</style></head><body><main>\
             <h1>{}</h1><p class=\"verdict {}\">{}</p>",
            esc(&title),
            esc(&title),
            if self.passed { "pass" } else { "fail" },
            if self.passed {
                "Passed: every invariant and SLO held."
            } else {
                "Failed: see the checks below."
            }
        );
        let _ = write!(
            page,
            "<p>Run <code>{}</code> started {}; arrival <b>{}</b>; {} process(es), {} source \
             address(es); api {}; gateway(s) {}; {}. Event <code>{}</code>: {} of {} tickets left \
             at the end ({}). The crowd ({} buyers) signed up and logged in in {:.1}s before t = 0.</p>",
            esc(&s.run),
            esc(&s.started_at),
            esc(&s.arrival),
            s.shards,
            s.sources,
            esc(&s.api),
            esc(&s.gateways.join(", ")),
            esc(&s.machine),
            esc(&self.event_id),
            self.remaining_at_end,
            s.tickets,
            esc(&self.event_status_at_end),
            self.crowd_members,
            self.crowd_seconds
        );
        page.push_str("<h2>Checks</h2><table><tr><th>check</th><th>held</th><th>detail</th></tr>");
        for check in self.invariants.iter().chain(&self.slos) {
            let _ = write!(
                page,
                "<tr class=\"{}\"><td>{}</td><td>{}</td><td>{}</td></tr>",
                if check.ok { "pass" } else { "fail" },
                esc(&check.name),
                if check.ok { "yes" } else { "NO" },
                esc(&check.detail)
            );
        }
        page.push_str("</table><h2>Figures</h2><table><tr><th></th><th>count</th><th>per s</th><th>p50</th><th>p95</th><th>p99</th><th>max</th></tr>");
        for (name, count, per_sec, l) in self.figures() {
            let _ = write!(
                page,
                "<tr><td>{name}</td><td>{count}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                per_sec.map_or_else(String::new, |r| format!("{r:.0}")),
                ms(l.p50_ms),
                ms(l.p95_ms),
                ms(l.p99_ms),
                ms(l.max_ms)
            );
        }
        page.push_str("</table>");
        let _ = write!(
            page,
            "<p>Outcomes: {}.</p><p>Requests {}, failed {} ({:.3} %): {}. WebSocket disconnections not asked for: {}.</p>",
            esc(&list(&self.outcomes)),
            self.requests,
            self.failed_requests,
            self.error_rate * 100.0,
            esc(&list(&self.errors)),
            esc(&list(&self.disconnects))
        );
        if !self.chaos.is_empty() {
            page.push_str("<h2>Chaos</h2><table><tr><th>action</th><th>at</th><th>took</th><th>ready again after</th><th>detail</th></tr>");
            for h in &self.chaos {
                let _ = write!(
                    page,
                    "<tr class=\"{}\"><td>{}</td><td>{:.1}s</td><td>{:.1}s</td><td>{}</td><td>{}</td></tr>",
                    if h.ok { "pass" } else { "fail" },
                    esc(&h.action),
                    h.began_s,
                    h.took_s,
                    h.ready_after_s
                        .map_or_else(|| "never".into(), |r| format!("{r:.1}s")),
                    esc(&h.detail)
                );
            }
            page.push_str("</table>");
        }
        if !self.attacks.is_empty() {
            page.push_str("<h2>Attackers</h2><table><tr><th>attacker</th><th>tries</th><th>got (allowed)</th><th>answers</th><th>how</th></tr>");
            for a in &self.attacks {
                let _ = write!(
                    page,
                    "<tr class=\"{}\"><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                    if a.within_rules() { "pass" } else { "fail" },
                    esc(&a.name),
                    a.tries,
                    esc(&gains(a)),
                    esc(&list(&a.answers)),
                    esc(a.trouble.as_deref().unwrap_or(&a.how))
                );
            }
            page.push_str("</table>");
        }
        page.push_str("<h2>Over time</h2>");
        let marks: Vec<f64> = self.chaos.iter().map(|h| h.began_s).collect();
        let series = |f: fn(&Second) -> u64| -> Vec<(f64, f64)> {
            self.timeline
                .iter()
                .map(|s| (s.t as f64, f(s) as f64))
                .collect()
        };
        page.push_str(&line_chart(
            "Per second: joins, admissions, orders, settled payments, failed requests",
            &[
                ("joins", series(|s| s.joins)),
                ("admissions", series(|s| s.admissions)),
                ("orders", series(|s| s.orders)),
                ("settled", series(|s| s.settled)),
                ("failed requests", series(|s| s.errors)),
            ],
            &marks,
        ));
        let sampled = |f: fn(&Second) -> Option<u64>| -> Vec<(f64, f64)> {
            self.timeline
                .iter()
                .filter_map(|s| f(s).map(|v| (s.t as f64, v as f64)))
                .collect()
        };
        page.push_str(&line_chart(
            "The queue (gateway stats each second): waiting and admitted",
            &[
                ("waiting", sampled(|s| s.waiting)),
                ("admitted, not yet done", sampled(|s| s.admitted_active)),
            ],
            &marks,
        ));
        page.push_str("<h2>Distributions</h2><div class=\"grid\">");
        for (name, buckets) in [
            ("Join latency", &self.histograms.join),
            ("Order latency", &self.histograms.order),
            ("Time to admission", &self.histograms.admission_wait),
            ("Payment: order to final state", &self.histograms.settle),
        ] {
            page.push_str(&bar_chart(name, buckets));
        }
        page.push_str("</div>");
        if let Some(ledger) = &self.ledger {
            let _ = write!(
                page,
                "<h2>Database</h2><p>inventory {}, remaining {}, tickets in live orders {}; orders {} \
                 (pending {}, paid {}, failed {}, expired {}).</p>",
                ledger.inventory,
                ledger.remaining,
                ledger.live_tickets,
                ledger.orders,
                ledger.pending,
                ledger.paid,
                ledger.failed,
                ledger.expired
            );
        }
        page.push_str("</main></body></html>\n");
        page
    }
}

const STYLE: &str = "body{font:15px/1.45 system-ui,sans-serif;color:#1a1a1a;background:#fff;margin:0}\
main{max-width:1100px;margin:0 auto;padding:1rem}\
table{border-collapse:collapse;margin:.5rem 0 1rem;width:100%}\
td,th{border-bottom:1px solid #ddd;padding:.3rem .5rem;text-align:left;vertical-align:top}\
tr.fail td{background:#fde8e8}\
.verdict{font-size:1.2rem;font-weight:600;padding:.5rem .8rem;border-radius:4px}\
.verdict.pass{background:#e3f4e6;color:#14532d}.verdict.fail{background:#fde8e8;color:#7f1d1d}\
.grid{display:grid;grid-template-columns:repeat(auto-fit,minmax(320px,1fr));gap:1rem}\
figure{margin:0}figcaption{font-weight:600;margin:.3rem 0}\
svg text{font:11px system-ui,sans-serif;fill:#333}\
code{background:#f3f3f3;padding:0 .2rem}";

const COLOURS: [&str; 5] = ["#1f5fbf", "#c2410c", "#15803d", "#7e22ce", "#b91c1c"];

fn esc(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// A bar chart of histogram buckets (empty leading and trailing buckets trimmed).
fn bar_chart(title: &str, buckets: &[Bucket]) -> String {
    let first = buckets.iter().position(|b| b.count > 0);
    let last = buckets.iter().rposition(|b| b.count > 0);
    let mut svg = format!("<figure><figcaption>{}</figcaption>", esc(title));
    let (Some(first), Some(last)) = (first, last) else {
        svg.push_str("<p>No values.</p></figure>");
        return svg;
    };
    let shown = &buckets[first..=last];
    let (width, height, left, bottom) = (340.0, 180.0, 40.0, 30.0);
    let max = shown.iter().map(|b| b.count).max().unwrap_or(1).max(1) as f64;
    let slot = (width - left) / shown.len() as f64;
    let _ = write!(
        svg,
        "<svg viewBox=\"0 0 {width} {height}\" width=\"100%\" role=\"img\" aria-label=\"{}\">",
        esc(title)
    );
    for (i, bucket) in shown.iter().enumerate() {
        let h = (height - bottom - 10.0) * bucket.count as f64 / max;
        let x = left + i as f64 * slot;
        let label = bucket
            .le_ms
            .map_or_else(|| "more".into(), |le| format!("≤{}", ms(le)));
        let _ = write!(
            svg,
            "<rect x=\"{:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{h:.1}\" fill=\"{}\"><title>{label}: {}</title></rect>\
             <text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\" font-size=\"9\">{}</text>",
            x + 1.0,
            height - bottom - h,
            (slot - 2.0).max(1.0),
            COLOURS[0],
            bucket.count,
            x + slot / 2.0,
            height - bottom + 12.0,
            esc(&label)
        );
    }
    let _ = write!(
        svg,
        "<text x=\"2\" y=\"12\">{max:.0}</text><text x=\"2\" y=\"{:.0}\">0</text></svg></figure>",
        height - bottom
    );
    svg
}

/// A line chart of several series over seconds, with vertical marks (chaos actions).
fn line_chart(title: &str, series: &[(&str, Vec<(f64, f64)>)], marks: &[f64]) -> String {
    let (width, height, left, bottom) = (1000.0, 240.0, 55.0, 25.0);
    let max_x = series
        .iter()
        .flat_map(|(_, points)| points.iter().map(|p| p.0))
        .fold(1.0_f64, f64::max);
    let max_y = series
        .iter()
        .flat_map(|(_, points)| points.iter().map(|p| p.1))
        .fold(1.0_f64, f64::max);
    let x = |v: f64| left + (width - left - 10.0) * v / max_x;
    let y = |v: f64| height - bottom - (height - bottom - 10.0) * v / max_y;
    let mut svg = format!(
        "<figure><figcaption>{}</figcaption><svg viewBox=\"0 0 {width} {height}\" width=\"100%\" role=\"img\" aria-label=\"{}\">",
        esc(title),
        esc(title)
    );
    let _ = write!(
        svg,
        "<line x1=\"{left}\" y1=\"{0}\" x2=\"{1}\" y2=\"{0}\" stroke=\"#999\"/>\
         <text x=\"{2}\" y=\"15\" text-anchor=\"end\">{max_y:.0}</text>\
         <text x=\"{2}\" y=\"{0}\" text-anchor=\"end\">0</text>\
         <text x=\"{1}\" y=\"{3}\" text-anchor=\"end\">{max_x:.0} s</text>",
        height - bottom,
        width - 10.0,
        left - 4.0,
        height - 5.0
    );
    for mark in marks {
        let _ = write!(
            svg,
            "<line x1=\"{0:.1}\" y1=\"10\" x2=\"{0:.1}\" y2=\"{1}\" stroke=\"#b91c1c\" stroke-dasharray=\"4 3\"><title>chaos at {2:.1}s</title></line>",
            x(*mark),
            height - bottom,
            mark
        );
    }
    for (i, (name, points)) in series.iter().enumerate() {
        let colour = COLOURS[i % COLOURS.len()];
        if !points.is_empty() {
            let path: Vec<String> = points
                .iter()
                .map(|(px, py)| format!("{:.1},{:.1}", x(*px), y(*py)))
                .collect();
            let _ = write!(
                svg,
                "<polyline fill=\"none\" stroke=\"{colour}\" stroke-width=\"1.6\" points=\"{}\"><title>{}</title></polyline>",
                path.join(" "),
                esc(name)
            );
        }
        let _ = write!(
            svg,
            "<rect x=\"{:.0}\" y=\"{:.0}\" width=\"10\" height=\"10\" fill=\"{colour}\"/><text x=\"{:.0}\" y=\"{:.0}\">{}</text>",
            left + 10.0 + i as f64 * 160.0,
            height - 14.0,
            left + 24.0 + i as f64 * 160.0,
            height - 5.0,
            esc(name)
        );
    }
    svg.push_str("</svg></figure>");
    svg
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_land_in_their_buckets() {
        let b = buckets([0.05, 0.1, 0.15, 3.0, 250.0, 1e9]);
        let count_at = |le: f64| b.iter().find(|x| x.le_ms == Some(le)).map(|x| x.count);
        assert_eq!(count_at(0.1), Some(2));
        assert_eq!(count_at(0.2), Some(1));
        assert_eq!(count_at(5.0), Some(1));
        assert_eq!(count_at(500.0), Some(1));
        assert_eq!(b.last().map(|x| (x.le_ms, x.count)), Some((None, 1)));
        assert_eq!(b.iter().map(|x| x.count).sum::<u64>(), 6);
    }

    #[test]
    fn charts_escape_their_text_and_draw_something() {
        let chart = bar_chart("a <b>", &buckets([1.0, 2.0, 2.0]));
        assert!(chart.contains("a &lt;b&gt;"));
        assert_eq!(chart.matches("<rect").count(), 2);
        assert!(bar_chart("none", &buckets([])).contains("No values"));
        let lines = line_chart("t", &[("joins", vec![(0.0, 1.0), (1.0, 5.0)])], &[0.5]);
        assert!(lines.contains("<polyline") && lines.contains("chaos at 0.5s"));
    }
}
