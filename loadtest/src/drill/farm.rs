//! A bot farm beside the crowd (`--bot-farm N`): N scripted accounts, signed up before the
//! sale, arrive at t = 0 from a few addresses and do everything the rules let them in one
//! go: join (solving the queue's challenge natively whenever it asks, on as many cores as
//! the farm is given), wait by polling, and buy the most one account may. The report says
//! what the farm got (places, admissions, tickets) and what each place cost it in
//! CPU-seconds at the queue's difficulty.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use flash_protocol::EventId;
use serde::{Deserialize, Serialize};

use super::buyer::{Ctx, Record, visit};
use super::client::Targets;
use super::plan::{Behaviour, Client, Traits};
use super::report::Check;
use crate::crowd::Member;

/// The bot farm (`--bot-farm`).
#[derive(Clone, Debug, clap::Args)]
pub struct FarmArgs {
    /// Scripted accounts of a bot farm that come beside the crowd at t = 0 (0: no farm).
    #[arg(long, default_value_t = 0)]
    pub bot_farm: usize,
    /// Addresses the farm comes from (127.251.0.1 and up).
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u8).range(1..=250))]
    pub bot_farm_addresses: u8,
    /// Cores the farm solves challenges on (its solving runs at most this many at once).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..))]
    pub bot_farm_cores: u16,
    /// Connections the farm keeps open per address and service.
    #[arg(long, default_value_t = 16)]
    pub bot_farm_connections: usize,
}

/// The farm's address `i`: 127.251.0.(1 + i), apart from the crowd's and the attackers'.
fn source(i: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(127, 251, 0, i.saturating_add(1)))
}

/// What the farm did and got.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct FarmReport {
    pub accounts: usize,
    pub addresses: usize,
    pub cores: u16,
    /// The queue's challenge difficulty when the sale began.
    pub difficulty: u8,
    /// Accounts that got a place in the queue.
    pub places: u64,
    pub admissions: u64,
    /// Tickets in the farm's paid or still pending orders.
    pub tickets: u64,
    /// Seconds from t = 0 to the farm's last place.
    pub last_place_s: Option<f64>,
    pub solves: u64,
    pub attempts: u64,
    /// CPU time the farm's solving took (thread CPU time, summed).
    pub cpu_seconds: f64,
    pub cpu_seconds_per_place: Option<f64>,
    pub requests: u64,
    /// Refused or failed requests by step and code (e.g. `join: RATE_LIMITED`).
    pub errors: BTreeMap<String, u64>,
    pub outcomes: BTreeMap<String, u64>,
}

impl FarmReport {
    /// The most the farm may get: one place per account, and the event's per-user maximum
    /// of tickets per account.
    #[must_use]
    pub fn check(&self, records: &[Record], max_per_user: u32) -> Check {
        let over: Vec<&Record> = records
            .iter()
            .filter(|r| r.outcome.holds_tickets() && r.quantity > max_per_user)
            .collect();
        let ok = over.is_empty()
            && self.places <= self.accounts as u64
            && self.tickets <= self.accounts as u64 * u64::from(max_per_user);
        Check {
            name: "the bot farm got no more than its accounts may".into(),
            ok,
            detail: format!(
                "{} places, {} tickets for {} accounts (at most {max_per_user} each); {} accounts over",
                self.places,
                self.tickets,
                self.accounts,
                over.len()
            ),
        }
    }
}

/// The farm's accounts, signed up through the real path before the sale (a farm makes its
/// accounts days ahead, from anywhere: the sign-up limits are not what this measures).
pub async fn prepare(api: SocketAddr, run: &str, args: &FarmArgs) -> anyhow::Result<Vec<Member>> {
    if args.bot_farm == 0 {
        return Ok(Vec::new());
    }
    Ok(
        crate::crowd::sign_up(api, &format!("{run}-farm"), args.bot_farm, 8)
            .await?
            .members,
    )
}

/// Where and when the farm strikes.
pub struct Strike {
    pub event: EventId,
    pub api: SocketAddr,
    pub gateways: Vec<SocketAddr>,
    pub t0: Instant,
    pub deadline: Instant,
    pub final_within: Duration,
    pub max_per_user: u32,
    pub difficulty: u8,
}

/// Runs the farm's accounts from t = 0 to the end of the sale; its report and every
/// account's record (their tickets count in the event's stock).
pub async fn run(
    strike: Strike,
    args: &FarmArgs,
    behaviour: &Behaviour,
    members: Vec<Member>,
) -> (FarmReport, Vec<Record>) {
    let targets = Targets {
        api: strike.api,
        gateways: strike.gateways,
        sources: (0..args.bot_farm_addresses).map(source).collect(),
        connections_per_source: args.bot_farm_connections.max(1),
    };
    // A script buys the most it may, at once, and waits by asking.
    let behaviour = Behaviour {
        quantity: strike.max_per_user,
        ..behaviour.clone()
    };
    let ctx = Arc::new(
        Ctx::new(
            strike.event,
            targets,
            behaviour,
            strike.t0,
            strike.deadline,
            strike.final_within,
        )
        .with_solvers(usize::from(args.bot_farm_cores)),
    );
    let traits = Traits {
        client: Client::Polling,
        arrival: Duration::ZERO,
        abandon_after: None,
        reconnect_after: None,
        repeat: None,
        think: Duration::ZERO,
        jitter: 1.0,
    };
    let mut visits = tokio::task::JoinSet::new();
    let accounts = members.len();
    for (index, member) in members.into_iter().enumerate() {
        let ctx = Arc::clone(&ctx);
        visits.spawn(async move { visit(&ctx, index, &member, traits).await });
    }
    let mut records = Vec::with_capacity(accounts);
    while let Some(done) = visits.join_next().await {
        if let Ok(record) = done {
            records.push(record);
        }
    }
    records.sort_by_key(|r| r.index);
    let report = summarize(&ctx, &records, accounts, args, strike.difficulty);
    (report, records)
}

fn summarize(
    ctx: &Ctx,
    records: &[Record],
    accounts: usize,
    args: &FarmArgs,
    difficulty: u8,
) -> FarmReport {
    let places = records.iter().filter(|r| r.joined_ms.is_some()).count() as u64;
    let mut outcomes = BTreeMap::new();
    for r in records {
        *outcomes.entry(r.outcome.name().to_owned()).or_default() += 1;
    }
    let tally = ctx.tally.snapshot();
    let cpu_seconds = ctx.solving.cpu_seconds();
    FarmReport {
        accounts,
        addresses: usize::from(args.bot_farm_addresses),
        cores: args.bot_farm_cores,
        difficulty,
        places,
        admissions: records.iter().filter(|r| r.admitted_ms.is_some()).count() as u64,
        tickets: records
            .iter()
            .filter(|r| r.outcome.holds_tickets())
            .map(|r| u64::from(r.quantity))
            .sum(),
        last_place_s: records
            .iter()
            .filter_map(|r| r.joined_ms)
            .max()
            .map(|ms| ms as f64 / 1000.0),
        solves: ctx.solving.solves.load(Ordering::Relaxed),
        attempts: ctx.solving.attempts.load(Ordering::Relaxed),
        cpu_seconds,
        cpu_seconds_per_place: (places > 0).then(|| cpu_seconds / places as f64),
        requests: tally.requests,
        errors: tally.errors,
        outcomes,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::drill::buyer::Outcome;

    fn record(outcome: Outcome, quantity: u32) -> Record {
        Record {
            joined_ms: Some(10),
            outcome,
            quantity,
            ..Record::default()
        }
    }

    #[test]
    fn the_farm_is_held_to_its_accounts_limits() {
        let report = FarmReport {
            accounts: 2,
            places: 2,
            tickets: 4,
            ..FarmReport::default()
        };
        let records = [record(Outcome::Paid, 2), record(Outcome::Paid, 2)];
        assert!(report.check(&records, 2).ok);
        // One account with more than it may buy.
        let records = [record(Outcome::Paid, 3), record(Outcome::SoldOut, 2)];
        assert!(!report.check(&records, 2).ok);
        // Tickets beyond what the accounts could hold together.
        let greedy = FarmReport {
            tickets: 5,
            ..report.clone()
        };
        assert!(!greedy.check(&[], 2).ok);
        // A declined payment holds no ticket.
        let records = [record(Outcome::PaymentFailed, 9)];
        assert!(report.check(&records, 2).ok);
    }

    #[test]
    fn the_farms_addresses_are_its_own() {
        assert_eq!(source(0), IpAddr::V4(Ipv4Addr::new(127, 251, 0, 1)));
        assert_eq!(source(249), IpAddr::V4(Ipv4Addr::new(127, 251, 0, 250)));
    }
}
