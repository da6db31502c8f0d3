//! A drill's report: the figures, the checks and the timeline, as JSON (the whole report),
//! as a table for people, and as one self-contained HTML page with inline SVG charts (no
//! script, nothing fetched).

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

use super::chaos::Happened;
use super::farm::FarmReport;
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
    /// The bot farm beside the crowd (`--bot-farm`): what it got and what it paid.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub farm: Option<FarmReport>,
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

/// The farm in a few lines: what it was, what it got, what it paid.
fn farm_lines(farm: &FarmReport) -> Vec<String> {
    let per_place = farm.cpu_seconds_per_place.map_or_else(
        || "no place".into(),
        |s| format!("{:.1} ms per place", s * 1000.0),
    );
    vec![
        format!(
            "{} accounts from {} addresses, solving on {} core(s) at difficulty {}",
            farm.accounts, farm.addresses, farm.cores, farm.difficulty
        ),
        format!(
            "got {} places{}, {} admissions, {} tickets",
            farm.places,
            farm.last_place_s
                .map_or_else(String::new, |s| format!(" (the last at {s:.1}s)")),
            farm.admissions,
            farm.tickets
        ),
        format!(
            "paid {:.2} CPU-seconds for {} solves ({per_place}; {} nonces tried)",
            farm.cpu_seconds, farm.solves, farm.attempts
        ),
        format!(
            "outcomes: {}; refused or failed: {} of {} requests",
            list(&farm.outcomes),
            list(&farm.errors),
            farm.requests
        ),
    ]
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
        if let Some(farm) = &self.farm {
            let _ = writeln!(out, "\nbot farm:");
            for line in farm_lines(farm) {
                let _ = writeln!(out, "  {line}");
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
        if let Some(farm) = &self.farm {
            page.push_str("<h2>Bot farm</h2><ul>");
            for line in farm_lines(farm) {
                let _ = write!(page, "<li>{}</li>", esc(&line));
            }
            page.push_str("</ul>");
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
                 (pending {}, paid {}, failed {}, expired {}); payments approved after their \
                 hold {} (refunded {}, refund pending {}, refund failed {}).</p>",
                ledger.inventory,
                ledger.remaining,
                ledger.live_tickets,
                ledger.orders,
                ledger.pending,
                ledger.paid,
                ledger.failed,
                ledger.expired,
                ledger.late_approvals,
                ledger.refunded,
                ledger.refunds_pending,
                ledger.refunds_failed
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
.grid{display:grid;grid-template-columns:repeat(auto-fit,minmax(min(100%,360px),1fr));gap:1rem}\
figure{margin:0;min-width:0}figcaption{font-weight:600;margin:.3rem 0}\
.chart{overflow-x:auto}\
svg text{font-family:system-ui,sans-serif;fill:#333}\
code{background:#f3f3f3;padding:0 .2rem}\
@media(max-width:600px){table{display:block;overflow-x:auto}}";

const COLOURS: [&str; 5] = ["#1f5fbf", "#c2410c", "#15803d", "#7e22ce", "#b91c1c"];

fn esc(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// Ticks for an axis from 0 to at least `max`: a 1-2-5 step giving at most `most` intervals.
fn ticks(max: f64, most: usize) -> Vec<f64> {
    let max = if max.is_finite() && max > 0.0 {
        max
    } else {
        1.0
    };
    let raw = max / most.max(1) as f64;
    let magnitude = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 5.0, 10.0]
        .iter()
        .map(|m| m * magnitude)
        .find(|step| *step >= raw)
        .unwrap_or(10.0 * magnitude);
    let count = (max / step).ceil() as usize;
    (0..=count).map(|i| i as f64 * step).collect()
}

/// A tick's label: short (`1.5k`, `20k`, `2M`).
fn tick_label(value: f64) -> String {
    let (scaled, unit) = match value.abs() {
        v if v >= 1e6 => (value / 1e6, "M"),
        v if v >= 1e3 => (value / 1e3, "k"),
        _ => (value, ""),
    };
    if (scaled - scaled.round()).abs() < 1e-9 {
        format!("{scaled:.0}{unit}")
    } else {
        format!("{scaled:.1}{unit}")
    }
}

/// An SVG of a chart's natural `width` × `height`: it fills the column's width but never
/// shrinks below 80 % of its natural size (its text stays at least ~9 px); narrower screens
/// scroll it sideways.
fn chart_open(title: &str, width: f64, height: f64) -> String {
    format!(
        "<figure><figcaption>{0}</figcaption><div class=\"chart\"><svg viewBox=\"0 0 {width} {height}\" \
         width=\"100%\" style=\"min-width:{1:.0}px\" font-size=\"{FONT_PX}\" role=\"img\" aria-label=\"{0}\">",
        esc(title),
        width * 0.8
    )
}

const CHART_CLOSE: &str = "</svg></div></figure>";

/// The y axis: grid lines and labels at `ticks`, from `top` down to `base`.
fn y_axis(svg: &mut String, ticks: &[f64], left: f64, right: f64, top: f64, base: f64) {
    let max = ticks.last().copied().unwrap_or(1.0).max(f64::MIN_POSITIVE);
    for tick in ticks {
        let y = base - (base - top) * tick / max;
        let _ = write!(
            svg,
            "<line x1=\"{left}\" y1=\"{y:.1}\" x2=\"{right}\" y2=\"{y:.1}\" stroke=\"#e2e2e2\"/>\
             <text x=\"{:.0}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>",
            left - 5.0,
            y + 4.0,
            tick_label(*tick)
        );
    }
    let _ = write!(
        svg,
        "<line x1=\"{left}\" y1=\"{top}\" x2=\"{left}\" y2=\"{base}\" stroke=\"#999\"/>\
         <line x1=\"{left}\" y1=\"{base}\" x2=\"{right}\" y2=\"{base}\" stroke=\"#999\"/>"
    );
}

/// The bar chart's natural size and margins: width, height, left, right, top, bottom.
const BAR_CHART: (f64, f64, f64, f64, f64, f64) = (420.0, 250.0, 48.0, 10.0, 12.0, 82.0);
/// The angle of the bar chart's bucket labels, steep enough that neighbours clear each other.
const LABEL_ANGLE_DEG: f64 = 55.0;
/// The size of the charts' text (CSS pixels at the natural size).
const FONT_PX: f64 = 12.0;

/// A bar chart of histogram buckets (empty leading and trailing buckets trimmed): one bar per
/// bucket, its upper edge written under it at an angle so neighbours never overlap, counts on
/// a y axis with grid lines.
fn bar_chart(title: &str, buckets: &[Bucket]) -> String {
    let first = buckets.iter().position(|b| b.count > 0);
    let last = buckets.iter().rposition(|b| b.count > 0);
    let (Some(first), Some(last)) = (first, last) else {
        return format!(
            "<figure><figcaption>{}</figcaption><p>No values.</p></figure>",
            esc(title)
        );
    };
    let shown = &buckets[first..=last];
    let (width, height, left, right, top, bottom) = BAR_CHART;
    let base = height - bottom;
    let scale = ticks(shown.iter().map(|b| b.count).max().unwrap_or(1) as f64, 4);
    let max = scale.last().copied().unwrap_or(1.0).max(1.0);
    let slot = (width - left - right) / shown.len() as f64;
    let mut svg = chart_open(title, width, height);
    y_axis(&mut svg, &scale, left, width - right, top, base);
    for (i, bucket) in shown.iter().enumerate() {
        let h = (base - top) * bucket.count as f64 / max;
        let x = left + i as f64 * slot;
        let label = bucket
            .le_ms
            .map_or_else(|| "more".into(), |le| format!("≤{}", ms(le)));
        let (lx, ly) = (x + slot / 2.0 + 3.0, base + 10.0);
        let _ = write!(
            svg,
            "<rect x=\"{:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{h:.1}\" fill=\"{}\"><title>{label}: {}</title></rect>\
             <text x=\"{lx:.1}\" y=\"{ly:.1}\" text-anchor=\"end\" transform=\"rotate(-{LABEL_ANGLE_DEG} {lx:.1} {ly:.1})\">{}</text>",
            x + 1.0,
            base - h,
            (slot - 2.0).max(1.0),
            COLOURS[0],
            bucket.count,
            esc(&label)
        );
    }
    let _ = write!(
        svg,
        "<text x=\"{:.0}\" y=\"{:.0}\" text-anchor=\"middle\">latency bucket (upper edge)</text>\
         <text x=\"12\" y=\"{:.0}\" text-anchor=\"middle\" transform=\"rotate(-90 12 {:.0})\">count</text>",
        left + (width - left - right) / 2.0,
        height - 4.0,
        (top + base) / 2.0,
        (top + base) / 2.0,
    );
    svg.push_str(CHART_CLOSE);
    svg
}

/// A line chart of several series over seconds, with vertical marks (chaos actions): grid
/// lines and labels on both axes, and a legend that wraps to as many rows as its names need.
fn line_chart(title: &str, series: &[(&str, Vec<(f64, f64)>)], marks: &[f64]) -> String {
    let (width, left, right, top) = (900.0, 52.0, 12.0, 12.0);
    // The legend: about 7 units per character, wrapped within the plot's width.
    let mut legend = Vec::new();
    let (mut lx, mut row) = (left, 0usize);
    for (name, _) in series {
        let item = 24.0 + 7.0 * name.chars().count() as f64;
        if lx + item > width - right && lx > left {
            lx = left;
            row += 1;
        }
        legend.push((lx, row));
        lx += item;
    }
    let rows = row as f64 + 1.0;
    let height = 250.0 + 16.0 * rows;
    let base = height - 40.0 - 16.0 * rows;
    let max_x = series
        .iter()
        .flat_map(|(_, points)| points.iter().map(|p| p.0))
        .fold(1.0_f64, f64::max);
    let max_y = series
        .iter()
        .flat_map(|(_, points)| points.iter().map(|p| p.1))
        .fold(1.0_f64, f64::max);
    let y_ticks = ticks(max_y, 5);
    let x_ticks = ticks(max_x, 10);
    let top_y = y_ticks.last().copied().unwrap_or(1.0).max(1.0);
    let end_x = x_ticks.last().copied().unwrap_or(1.0).max(1.0);
    let x = |v: f64| left + (width - left - right) * v / end_x;
    let y = |v: f64| base - (base - top) * v / top_y;
    let mut svg = chart_open(title, width, height);
    y_axis(&mut svg, &y_ticks, left, width - right, top, base);
    for tick in &x_ticks {
        let _ = write!(
            svg,
            "<line x1=\"{0:.1}\" y1=\"{base}\" x2=\"{0:.1}\" y2=\"{1:.1}\" stroke=\"#999\"/>\
             <text x=\"{0:.1}\" y=\"{2:.1}\" text-anchor=\"middle\">{3}</text>",
            x(*tick),
            base + 4.0,
            base + 16.0,
            tick_label(*tick)
        );
    }
    let _ = write!(
        svg,
        "<text x=\"{:.0}\" y=\"{:.0}\" text-anchor=\"middle\">seconds since t = 0</text>",
        left + (width - left - right) / 2.0,
        base + 30.0
    );
    for mark in marks {
        let _ = write!(
            svg,
            "<line x1=\"{0:.1}\" y1=\"{top}\" x2=\"{0:.1}\" y2=\"{base}\" stroke=\"#b91c1c\" stroke-dasharray=\"4 3\"><title>chaos at {1:.1}s</title></line>",
            x(*mark),
            mark
        );
    }
    for (i, ((name, points), (lx, row))) in series.iter().zip(&legend).enumerate() {
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
        let ly = base + 44.0 + 16.0 * *row as f64;
        let _ = write!(
            svg,
            "<rect x=\"{lx:.0}\" y=\"{:.0}\" width=\"10\" height=\"10\" fill=\"{colour}\"/><text x=\"{:.0}\" y=\"{ly:.0}\">{}</text>",
            ly - 9.0,
            lx + 14.0,
            esc(name)
        );
    }
    svg.push_str(CHART_CLOSE);
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
    fn axes_tick_in_round_steps_past_the_largest_value() {
        assert_eq!(ticks(7.0, 4), vec![0.0, 2.0, 4.0, 6.0, 8.0]);
        assert_eq!(
            ticks(930.0, 5),
            vec![0.0, 200.0, 400.0, 600.0, 800.0, 1000.0]
        );
        assert_eq!(ticks(0.0, 5).last().map(|t| (t * 10.0).round()), Some(10.0));
        assert!(ticks(123_456.0, 10).len() <= 11);
        assert_eq!(tick_label(20_000.0), "20k");
        assert_eq!(tick_label(1_500.0), "1.5k");
        assert_eq!(tick_label(2_000_000.0), "2M");
        assert_eq!(tick_label(40.0), "40");
    }

    #[test]
    fn bucket_labels_clear_each_other_even_when_every_bucket_is_shown() {
        let (width, _, left, right, _, _) = BAR_CHART;
        let slot = (width - left - right) / (EDGES_MS.len() + 1) as f64;
        // Parallel labels at an angle stand slot × sin(angle) apart.
        let apart = slot * LABEL_ANGLE_DEG.to_radians().sin();
        assert!(
            apart >= FONT_PX,
            "labels {apart:.1} apart, text {FONT_PX} px"
        );
        let all: Vec<f64> = EDGES_MS.iter().copied().chain([1e9]).collect();
        let chart = bar_chart("all", &buckets(all));
        assert_eq!(chart.matches("<rect").count(), EDGES_MS.len() + 1);
        assert_eq!(chart.matches("rotate(-55").count(), EDGES_MS.len() + 1);
        // Never drawn smaller than 80 % of its natural size: a narrow screen scrolls it.
        assert!(chart.contains("min-width:336px"));
        assert!(chart.contains(&format!("font-size=\"{FONT_PX}\"")));
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
