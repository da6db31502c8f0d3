//! From the buyers' records to the report: figures, timeline, and the invariants checked from
//! outside (plus the database audit when the drill was given the api's database).

use std::collections::{BTreeMap, HashSet};

use flash_protocol::EventId;
use flash_protocol::claims::GateClaims;

use super::buyer::{Outcome, Record};
use super::chaos::Happened;
use super::client::TallyInner;
use super::report::{Check, Histograms, Payments, Rate, Report, Second, Setup, buckets};
use crate::audit::{Ledger, Violation};
use crate::stats::Latencies;

/// The thresholds a drill must meet.
#[derive(Clone, Debug, clap::Args)]
pub struct Slos {
    /// Join latency, 99th percentile, at most (ms).
    #[arg(long, default_value_t = 100.0)]
    pub slo_join_p99_ms: f64,
    /// Order latency, 99th percentile, at most (ms).
    #[arg(long, default_value_t = 200.0)]
    pub slo_order_p99_ms: f64,
    /// Share of failed requests, below.
    #[arg(long, default_value_t = 0.001)]
    pub slo_error_rate: f64,
}

/// A gate-token sample from the queue: one gate sample per sampled queue second.
#[derive(Clone, Copy, Debug)]
pub struct QueueSample {
    pub t: u64,
    pub waiting: u64,
    pub admitted_active: u64,
}

/// Everything the report is made of.
pub struct Inputs<'a> {
    pub setup: Setup,
    pub crowd_members: usize,
    pub crowd_seconds: f64,
    pub event: EventId,
    pub remaining_at_end: u32,
    pub event_status_at_end: String,
    pub opens_ms: Option<u64>,
    pub records: &'a [Record],
    /// The bot farm's accounts (`--bot-farm`): beside the crowd, their tickets in its stock.
    pub farm_records: &'a [Record],
    pub tally: &'a TallyInner,
    pub polls: &'a Latencies,
    pub samples: &'a [QueueSample],
    pub chaos: Vec<Happened>,
    pub ledger: Option<(Ledger, Vec<Violation>)>,
    pub slos: &'a Slos,
    /// Verifies a gate token with the gateway's published keys.
    pub verify_gate: &'a dyn Fn(&str) -> Result<GateClaims, String>,
}

fn latencies(values_us: impl IntoIterator<Item = u64>) -> Latencies {
    let mut l = Latencies::new();
    for v in values_us {
        l.record_us(v);
    }
    l
}

fn rate(count: u64, first_ms: Option<u64>, last_ms: Option<u64>) -> f64 {
    match (first_ms, last_ms) {
        (Some(a), Some(b)) if b > a => count as f64 * 1000.0 / (b - a) as f64,
        _ => 0.0,
    }
}

fn check(name: &str, ok: bool, detail: String) -> Check {
    Check {
        name: name.into(),
        ok,
        detail,
    }
}

/// Builds the report.
#[must_use]
pub fn report(inputs: Inputs<'_>) -> Report {
    let records = inputs.records;
    let opens = inputs.opens_ms.unwrap_or(0);

    // Figures.
    let joined: Vec<&Record> = records.iter().filter(|r| r.joined_ms.is_some()).collect();
    let join_lat = latencies(joined.iter().filter_map(|r| r.join_us));
    let joins = Rate {
        count: joined.len() as u64,
        per_sec: rate(
            joined.len() as u64,
            joined.iter().filter_map(|r| r.join_sent_ms).min(),
            joined.iter().filter_map(|r| r.joined_ms).max(),
        ),
        latency: join_lat.summary(),
    };
    let waits_us: Vec<u64> = records
        .iter()
        .filter_map(|r| {
            let from = r.joined_ms?.max(if r.pre_queue { opens } else { 0 });
            Some(r.admitted_ms?.saturating_sub(from) * 1000)
        })
        .collect();
    let admitted_at: Vec<u64> = records.iter().filter_map(|r| r.admitted_ms).collect();
    let admission = Rate {
        count: waits_us.len() as u64,
        per_sec: rate(
            admitted_at.len() as u64,
            admitted_at.iter().min().copied(),
            admitted_at.iter().max().copied(),
        ),
        latency: latencies(waits_us.iter().copied()).summary(),
    };
    let ordered: Vec<&Record> = records.iter().filter(|r| r.order_us.is_some()).collect();
    let order_lat = latencies(ordered.iter().filter_map(|r| r.order_us));
    let accepted = records.iter().filter(|r| r.order_id.is_some()).count() as u64;
    let orders = Rate {
        count: accepted,
        per_sec: rate(
            accepted,
            ordered.iter().filter_map(|r| r.order_sent_ms).min(),
            ordered.iter().filter_map(|r| r.order_sent_ms).max(),
        ),
        latency: order_lat.summary(),
    };
    let count = |o: Outcome| records.iter().filter(|r| r.outcome == o).count() as u64;
    let settle_lat = latencies(records.iter().filter_map(|r| r.settle_ms.map(|m| m * 1000)));
    let payments = Payments {
        settled: records.iter().filter(|r| r.final_ms.is_some()).count() as u64,
        paid: count(Outcome::Paid),
        failed: count(Outcome::PaymentFailed),
        expired: count(Outcome::OrderExpired),
        not_settled: count(Outcome::NotSettled),
        settle: settle_lat.summary(),
    };
    let mut outcomes = BTreeMap::new();
    for r in records {
        *outcomes.entry(r.outcome.name().to_owned()).or_default() += 1;
    }
    let failures: BTreeMap<String, u64> =
        records
            .iter()
            .filter_map(|r| r.failure.clone())
            .fold(BTreeMap::new(), |mut m, f| {
                *m.entry(f).or_default() += 1;
                m
            });
    let window_ms = records
        .iter()
        .filter_map(|r| r.final_ms.or(r.admitted_ms).or(r.joined_ms))
        .max()
        .unwrap_or(0);

    // Timeline.
    let last_s = window_ms / 1000 + 1;
    let mut timeline: Vec<Second> = (0..=last_s)
        .map(|t| Second {
            t,
            ..Second::default()
        })
        .collect();
    let mut bump = |at_ms: Option<u64>, f: fn(&mut Second)| {
        if let Some(second) = at_ms.and_then(|ms| timeline.get_mut((ms / 1000) as usize)) {
            f(second);
        }
    };
    for r in records {
        bump(r.joined_ms, |s| s.joins += 1);
        bump(r.admitted_ms, |s| s.admissions += 1);
        bump(r.order_id.and(r.order_sent_ms), |s| s.orders += 1);
        bump(r.final_ms, |s| s.settled += 1);
    }
    for (second, n) in &inputs.tally.errors_per_sec {
        if let Some(s) = timeline.get_mut(*second as usize) {
            s.errors += n;
        }
    }
    for sample in inputs.samples {
        if let Some(s) = timeline.get_mut(sample.t as usize) {
            s.waiting = Some(sample.waiting);
            s.admitted_active = Some(sample.admitted_active);
        }
    }

    let invariants = invariants(&inputs, accepted);
    let requests = inputs.tally.requests;
    let failed_requests = inputs.tally.failed();
    let error_rate = if requests == 0 {
        0.0
    } else {
        failed_requests as f64 / requests as f64
    };
    let slo = inputs.slos;
    let slos = vec![
        check(
            "join p99",
            joins.count > 0 && joins.latency.p99_ms <= slo.slo_join_p99_ms,
            format!(
                "{:.1} ms (at most {} ms) over {} joins",
                joins.latency.p99_ms, slo.slo_join_p99_ms, joins.count
            ),
        ),
        check(
            "order p99",
            ordered.is_empty() || orders.latency.p99_ms <= slo.slo_order_p99_ms,
            format!(
                "{:.1} ms (at most {} ms) over {} order requests",
                orders.latency.p99_ms,
                slo.slo_order_p99_ms,
                ordered.len()
            ),
        ),
        check(
            "error rate",
            error_rate < slo.slo_error_rate,
            format!(
                "{:.4} % of {requests} requests failed (below {} %)",
                error_rate * 100.0,
                slo.slo_error_rate * 100.0
            ),
        ),
    ];
    let passed = invariants.iter().chain(&slos).all(|c| c.ok);
    let mut errors = inputs.tally.errors.clone();
    for (failure, n) in failures {
        *errors.entry(format!("gave up: {failure}")).or_default() += n;
    }
    Report {
        setup: inputs.setup,
        crowd_members: inputs.crowd_members,
        crowd_seconds: inputs.crowd_seconds,
        event_id: inputs.event.to_string(),
        remaining_at_end: inputs.remaining_at_end,
        event_status_at_end: inputs.event_status_at_end,
        window_s: window_ms as f64 / 1000.0,
        sold_out_after_s: records
            .iter()
            .filter(|r| matches!(r.outcome, Outcome::Closed | Outcome::SoldOut))
            .map(|r| r.ended_ms)
            .min()
            .map(|ms| ms as f64 / 1000.0),
        joins,
        join_from_arrival: latencies(
            joined
                .iter()
                .filter_map(|r| Some(r.joined_ms?.saturating_sub(r.arrived_ms) * 1000)),
        )
        .summary(),
        status_polls: inputs.polls.summary(),
        admission,
        orders,
        payments,
        outcomes,
        requests,
        failed_requests,
        error_rate,
        errors,
        disconnects: inputs.tally.disconnects.clone(),
        histograms: Histograms {
            join: buckets(
                joined
                    .iter()
                    .filter_map(|r| r.join_us)
                    .map(|us| us as f64 / 1000.0),
            ),
            order: buckets(
                ordered
                    .iter()
                    .filter_map(|r| r.order_us)
                    .map(|us| us as f64 / 1000.0),
            ),
            admission_wait: buckets(waits_us.iter().map(|us| *us as f64 / 1000.0)),
            settle: buckets(records.iter().filter_map(|r| r.settle_ms).map(|m| m as f64)),
        },
        timeline,
        invariants,
        slos,
        chaos: inputs.chaos,
        attacks: Vec::new(),
        farm: None,
        ledger: inputs.ledger.map(|(ledger, _)| ledger),
        passed,
    }
}

fn invariants(inputs: &Inputs<'_>, accepted: u64) -> Vec<Check> {
    let records = inputs.records;
    let tickets = i64::from(inputs.setup.tickets);
    let mut checks = Vec::new();

    // Stock, from the buyers' side (the farm's too): tickets in orders paid or still pending.
    let live: i64 = records
        .iter()
        .chain(inputs.farm_records)
        .filter(|r| r.outcome.holds_tickets())
        .map(|r| i64::from(r.quantity))
        .sum();
    let remaining = i64::from(inputs.remaining_at_end);
    checks.push(check(
        "no oversell",
        live <= tickets,
        format!("{live} tickets in paid or pending orders, {tickets} on sale"),
    ));
    checks.push(check(
        "stock accounting adds up",
        remaining + live == tickets,
        format!(
            "{remaining} left + {live} in paid or pending orders = {} (inventory {tickets})",
            remaining + live
        ),
    ));

    let inconsistent = records
        .iter()
        .filter(|r| r.repeat_consistent == Some(false))
        .count();
    let repeated = records
        .iter()
        .filter(|r| r.repeat_consistent.is_some())
        .count();
    let disagree = records
        .iter()
        .filter(|r| r.mine_agrees == Some(false))
        .count();
    let looked = records.iter().filter(|r| r.mine_agrees.is_some()).count();
    let ids: HashSet<_> = records.iter().filter_map(|r| r.order_id).collect();
    checks.push(check(
        "one order per idempotency key",
        inconsistent == 0 && disagree == 0 && ids.len() as u64 == accepted,
        format!(
            "{repeated} orders sent twice with one key, {inconsistent} answered differently; \
             {disagree} of {looked} buyers' /me/orders differ from what they were answered"
        ),
    ));

    let not_settled = records
        .iter()
        .chain(inputs.farm_records)
        .filter(|r| r.outcome == Outcome::NotSettled)
        .count();
    checks.push(check(
        "every accepted order reaches a final state",
        not_settled == 0,
        format!("{accepted} accepted, {not_settled} not final within the deadline"),
    ));

    // Buyers may still wait in an open queue with tickets left (stock came back late); once
    // the sale is over, every waiting buyer must have been told.
    let still = records
        .iter()
        .filter(|r| r.outcome == Outcome::StillWaiting)
        .count();
    let over = inputs.event_status_at_end != "on_sale" || inputs.remaining_at_end == 0;
    checks.push(check(
        "waiting buyers are told when the sale is over",
        still == 0 || !over,
        format!(
            "{still} buyers still waiting at the deadline; the event is {} with {} tickets left",
            inputs.event_status_at_end, inputs.remaining_at_end
        ),
    ));

    checks.push(returns_reach_the_line(records, inputs.remaining_at_end));

    let lost = records
        .iter()
        .filter(|r| r.outcome == Outcome::LostPlace)
        .count();
    let changed: u32 = records.iter().map(|r| r.place_changed).sum();
    let checked: u32 = records.iter().map(|r| r.place_checks).sum();
    checks.push(check(
        "reconnecting keeps the place",
        lost == 0 && changed == 0,
        format!(
            "{checked} reconnections checked, {changed} found another number; {lost} places lost"
        ),
    ));

    checks.push(fifo_numbers(records, inputs.opens_ms));
    checks.push(admission_order(records, inputs));
    if inputs.opens_ms.is_some() {
        checks.push(pre_queue_coverage(records, inputs.opens_ms.unwrap_or(0)));
    }
    if let Some((_, violations)) = &inputs.ledger {
        checks.push(check(
            "database audit",
            violations.is_empty(),
            if violations.is_empty() {
                "every invariant holds in the api's database".into()
            } else {
                violations
                    .iter()
                    .map(|v| format!("{}: {}", v.invariant, v.detail))
                    .collect::<Vec<_>>()
                    .join("; ")
            },
        ));
    }
    checks
}

/// After opening, a join that finished before another was sent got the smaller number.
fn fifo_numbers(records: &[Record], opens_ms: Option<u64>) -> Check {
    let mut joins: Vec<(u64, u64, u64)> = records
        .iter()
        .filter(|r| !r.pre_queue)
        .filter(|r| opens_ms.is_none_or(|o| r.join_sent_ms.is_some_and(|s| s > o)))
        .filter_map(|r| Some((r.join_sent_ms?, r.joined_ms?, r.number?)))
        .collect();
    let n = joins.len();
    // Sweep in order of sending; keep the largest number among joins finished earlier.
    let mut by_done: Vec<(u64, u64)> = joins.iter().map(|(_, done, num)| (*done, *num)).collect();
    by_done.sort_unstable();
    joins.sort_unstable();
    let (mut next, mut largest, mut broken) = (0, 0_u64, 0);
    for (sent, _, number) in &joins {
        while next < by_done.len() && by_done[next].0 < *sent {
            largest = largest.max(by_done[next].1);
            next += 1;
        }
        if largest >= *number {
            broken += 1;
        }
    }
    check(
        "queue numbers follow join order after opening",
        broken == 0,
        format!("{broken} of {n} joins got a number below one handed out before they were sent"),
    )
}

/// Admission follows the numbers: a smaller number is never admitted later (gate tokens'
/// `iat`, the gateway's own admission time), and every gate token is genuine.
fn admission_order(records: &[Record], inputs: &Inputs<'_>) -> Check {
    let mut admitted = Vec::new();
    let mut bad_tokens = 0;
    for r in records {
        let Some(token) = &r.gate_token else { continue };
        match (inputs.verify_gate)(token) {
            Ok(claims) if Some(claims.sub) == r.user && claims.evt == inputs.event => {
                if let Some(number) = r.number {
                    admitted.push((number, claims.iat));
                }
            }
            _ => bad_tokens += 1,
        }
    }
    admitted.sort_unstable();
    let inversions = admitted.windows(2).filter(|w| w[0].1 > w[1].1).count();
    check(
        "admission follows queue order",
        inversions == 0 && bad_tokens == 0,
        format!(
            "{} admissions by number, {inversions} admitted before a smaller number; \
             {bad_tokens} gate tokens not valid for their buyer and event",
            admitted.len()
        ),
    )
}

/// The pre-queue is numbered 1..=k at opening, each buyer exactly once, in shuffled order.
fn pre_queue_coverage(records: &[Record], opens_ms: u64) -> Check {
    // Who was surely in the pre-queue at opening, and who may have been (left near it).
    let margin = 2_000;
    let pre: Vec<&Record> = records.iter().filter(|r| r.pre_queue).collect();
    let surely: Vec<&&Record> = pre
        .iter()
        .filter(|r| r.left_ms.is_none_or(|l| l >= opens_ms + margin))
        .collect();
    let maybe = pre
        .iter()
        .filter(|r| r.left_ms.is_none_or(|l| l + margin >= opens_ms))
        .count() as u64;
    let numbers: Vec<u64> = pre.iter().filter_map(|r| r.number).collect();
    let distinct: HashSet<u64> = numbers.iter().copied().collect();
    let duplicates = numbers.len() - distinct.len();
    let out_of_range = numbers.iter().filter(|n| **n == 0 || **n > maybe).count();
    let unnumbered = surely
        .iter()
        .filter(|r| r.number.is_none() && !matches!(r.outcome, Outcome::Failed))
        .count();
    let later_below = records
        .iter()
        .filter(|r| !r.pre_queue && r.number.is_some_and(|n| n <= surely.len() as u64))
        .count();
    // Shuffled: the rank correlation of arrival order and number is near zero.
    let mut pairs: Vec<(u64, u64)> = surely
        .iter()
        .filter_map(|r| Some((r.join_sent_ms?, r.number?)))
        .collect();
    let rho = spearman(&mut pairs);
    let n = pairs.len() as f64;
    let shuffled = n < 100.0 || rho.abs() <= (6.0 / n.sqrt()).max(0.1);
    check(
        "pre-queue shuffle covers everyone exactly once",
        duplicates == 0 && out_of_range == 0 && unnumbered == 0 && later_below == 0 && shuffled,
        format!(
            "{} in the pre-queue at opening: {duplicates} numbers given twice, {out_of_range} \
             outside 1..={maybe}, {unnumbered} never numbered, {later_below} later arrivals \
             numbered among them; rank correlation of arrival and number {rho:.3}",
            surely.len()
        ),
    )
}

/// Spearman's rank correlation of (a, b) pairs (ties broken by order).
fn spearman(pairs: &mut [(u64, u64)]) -> f64 {
    let n = pairs.len();
    if n < 2 {
        return 0.0;
    }
    pairs.sort_unstable();
    let mut by_b: Vec<(u64, usize)> = pairs.iter().enumerate().map(|(i, p)| (p.1, i)).collect();
    by_b.sort_unstable();
    let d2: f64 = by_b
        .iter()
        .enumerate()
        .map(|(rank_b, (_, rank_a))| {
            let d = rank_b as f64 - *rank_a as f64;
            d * d
        })
        .sum();
    let n = n as f64;
    1.0 - 6.0 * d2 / (n * (n * n - 1.0))
}

/// A ticket that came back (a failed or lapsed payment) while buyers were still in line goes to
/// them: the queue holds its line while orders are being paid and closes only when nothing can
/// come back. Tickets left over while buyers were sent away say it closed too early.
fn returns_reach_the_line(records: &[Record], remaining_at_end: u32) -> Check {
    let sent_away = records
        .iter()
        .filter(|r| r.outcome == Outcome::Closed)
        .count();
    check(
        "no ticket that came back is left unsold while buyers were sent away",
        remaining_at_end == 0 || sent_away == 0,
        format!(
            "{remaining_at_end} tickets left at the end; {sent_away} buyers were told the queue had closed"
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn joined(sent: u64, done: u64, number: u64) -> Record {
        Record {
            join_sent_ms: Some(sent),
            joined_ms: Some(done),
            number: Some(number),
            ..Record::default()
        }
    }

    #[test]
    fn fifo_numbering_flags_a_later_join_with_a_smaller_number() {
        let fair = [
            joined(0, 5, 1),
            joined(1, 6, 3),
            joined(2, 4, 2),
            joined(10, 12, 4),
        ];
        assert!(fifo_numbers(&fair, None).ok);
        // Sent at 10, after the join numbered 4 finished at 8: it must be above 4.
        let unfair = [joined(0, 5, 1), joined(1, 8, 4), joined(10, 12, 3)];
        let verdict = fifo_numbers(&unfair, None);
        assert!(!verdict.ok, "{}", verdict.detail);
        // Concurrent joins may be numbered either way.
        let concurrent = [joined(0, 10, 2), joined(1, 9, 1)];
        assert!(fifo_numbers(&concurrent, None).ok);
    }

    #[test]
    fn spearman_sees_order_and_its_absence() {
        let mut same: Vec<(u64, u64)> = (0..100).map(|i| (i, i)).collect();
        assert!((spearman(&mut same) - 1.0).abs() < 1e-9);
        let mut reversed: Vec<(u64, u64)> = (0..100).map(|i| (i, 100 - i)).collect();
        assert!((spearman(&mut reversed) + 1.0).abs() < 1e-9);
        // A fixed scramble: multiplication by a unit modulo a prime.
        let mut scrambled: Vec<(u64, u64)> = (0..1009).map(|i| (i, (i * 389) % 1009)).collect();
        assert!(spearman(&mut scrambled).abs() < 0.2);
    }

    fn pre(number: Option<u64>, sent: u64) -> Record {
        Record {
            pre_queue: true,
            join_sent_ms: Some(sent),
            joined_ms: Some(sent + 1),
            number,
            outcome: Outcome::Closed,
            ..Record::default()
        }
    }

    #[test]
    fn the_pre_queue_must_be_numbered_once_each_from_one() {
        let good = [
            pre(Some(2), 0),
            pre(Some(1), 1),
            pre(Some(3), 2),
            joined(9_000, 9_001, 4),
        ];
        assert!(pre_queue_coverage(&good, 5_000).ok);
        let twice = [pre(Some(1), 0), pre(Some(1), 1), pre(Some(2), 2)];
        assert!(!pre_queue_coverage(&twice, 5_000).ok);
        let missing = [pre(Some(1), 0), pre(None, 1)];
        assert!(!pre_queue_coverage(&missing, 5_000).ok);
        let gap = [pre(Some(1), 0), pre(Some(5), 1)];
        assert!(!pre_queue_coverage(&gap, 5_000).ok);
        let late_inside = [pre(Some(1), 0), pre(Some(2), 1), joined(9_000, 9_001, 2)];
        assert!(!pre_queue_coverage(&late_inside, 5_000).ok);
    }

    #[test]
    fn tickets_left_while_buyers_were_sent_away_break_the_sale() {
        let sent_away = [pre(Some(1), 0), joined(0, 1, 2)];
        assert!(returns_reach_the_line(&sent_away, 0).ok, "sold out");
        assert!(
            !returns_reach_the_line(&sent_away, 1).ok,
            "closed too early"
        );
        let nobody_sent_away = [joined(0, 1, 2)];
        assert!(
            returns_reach_the_line(&nobody_sent_away, 3).ok,
            "nobody wanted them"
        );
    }
}
