//! The flash-sale drill: a crowd of simulated buyers replays a burst against a running suite
//! through the public contract, and the drill proves the sale held: no oversell, stock that
//! adds up, one order per idempotency key, every order final, fair queue order, and the SLOs.
//!
//! # Layout
//! - [`plan`]: arrival schedules and each buyer's traits (seeded, reproducible).
//! - [`client`]: targets, connection pools per source address, answers by problem code.
//! - [`buyer`]: one buyer's visit, and its record.
//! - [`shard`]: a process's share of the crowd; child processes for large crowds.
//! - [`progress`]: live counters and the progress line.
//! - [`chaos`]: restarting Redis, RabbitMQ, Postgres or a service mid-burst.
//! - [`hostile`]: attackers beside the burst (`flash-drill abuse`).
//! - [`analysis`]: records → figures, timeline and invariants.
//! - [`report`]: the report as a table, JSON and HTML.

pub mod analysis;
pub mod buyer;
pub mod chaos;
pub mod client;
pub mod farm;
pub mod hostile;
pub mod plan;
pub mod progress;
pub mod report;
pub mod shard;

use std::io::Write as _;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use flash_protocol::EventId;
use flash_protocol::auth::{LoginRequest, TokenResponse};
use flash_protocol::claims::{GATE_AUDIENCE, GATE_ISSUER, GateClaims};
use flash_protocol::event::{Event, NewEvent, QueueSettings};
use flash_protocol::queue::{QueuePatch, QueueStats};
use hyper::{Method, StatusCode};
use time::OffsetDateTime;
use tokio::sync::mpsc;

use self::analysis::{Inputs, QueueSample, Slos};
use self::chaos::{Happened, Scene};
use self::client::{TallyInner, TargetArgs, Targets};
use self::plan::{Arrival, Behaviour, Schedule};
use self::progress::Snapshot;
use self::report::{Report, Setup};
use self::shard::{Go, Handle, ShardMsg, ShardPlan};
use crate::http::Conn;
use crate::stats::Latencies;

/// The sale a drill creates.
#[derive(Clone, Debug, clap::Args)]
pub struct SaleArgs {
    /// Tickets on sale (default: 2,000 for a burst; one per buyer for a soak).
    #[arg(long)]
    pub tickets: Option<u32>,
    #[arg(long, default_value_t = 2)]
    pub max_per_user: u32,
    /// The queue's admission rate (per second).
    #[arg(long, default_value_t = 500)]
    pub admit_per_sec: u32,
    /// At most this many admitted buyers who have not ordered yet.
    #[arg(long, default_value_t = 1_000)]
    pub max_active: u32,
    #[arg(long, default_value_t = 120)]
    pub admission_ttl_s: u32,
    /// The queue's join challenge (leading zero bits, 0 = off): buyers solve it natively.
    #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u8).range(0..=32))]
    pub challenge_difficulty: u8,
}

/// What every drill shares.
#[derive(Clone, Debug, clap::Args)]
pub struct DrillArgs {
    #[command(flatten)]
    pub target: TargetArgs,
    #[command(flatten)]
    pub sale: SaleArgs,
    #[command(flatten)]
    pub behaviour: Behaviour,
    #[command(flatten)]
    pub slos: Slos,
    #[command(flatten)]
    pub farm: farm::FarmArgs,
    /// Drill processes (default: enough that none holds more than 12,000 buyers).
    #[arg(long)]
    pub shards: Option<usize>,
    /// Connections used to sign the crowd up, per process.
    #[arg(long, default_value_t = 64)]
    pub signup_concurrency: usize,
    /// Seconds after t = 0 at which buyers still waiting give up.
    #[arg(long, default_value_t = 90)]
    pub deadline_secs: u64,
    /// Seconds an accepted order may take to reach a final state.
    #[arg(long, default_value_t = 60)]
    pub final_within_secs: u64,
    /// The suite was started to make payments arrive after their hold (a short
    /// `ORDER_HOLD_SECS`, a slow provider; `make drill-late-payments`): the audit then also
    /// requires that some did, and (as always) that each was refunded exactly once.
    #[arg(long)]
    pub late_payments: bool,
    /// The api's database: the sale is also audited there.
    #[arg(long, env = "DRILL_DATABASE_URL")]
    pub database_url: Option<String>,
    /// Chaos mid-burst, comma-separated: `redis@SECONDS`, `rabbitmq@SECONDS`,
    /// `postgres@SECONDS` (the api's database, `--database-url`), `restart:PROCESS@SECONDS`
    /// (local stores and processes only).
    #[arg(long, value_delimiter = ',')]
    pub chaos: Vec<chaos::Spec>,
    /// The suite's Redis (restarted by `--chaos redis@…`).
    #[arg(long, env = "REDIS_URL", default_value = "redis://127.0.0.1:6379")]
    pub redis_url: String,
    /// Names this drill's crowd (default: the time); reusing one fails at sign-up.
    #[arg(long)]
    pub run: Option<String>,
    /// Write the whole report as JSON here.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Write the report as an HTML page with charts here.
    #[arg(long)]
    pub html: Option<PathBuf>,
    /// No progress line while the drill runs.
    #[arg(long)]
    pub quiet: bool,
}

/// `flash-drill burst`.
#[derive(Clone, Debug, clap::Args)]
pub struct BurstArgs {
    #[command(flatten)]
    pub drill: DrillArgs,
    /// Buyers in the crowd.
    #[arg(long, default_value_t = 20_000)]
    pub users: usize,
    #[arg(long, value_enum, default_value_t = Arrival::Burst)]
    pub arrival: Arrival,
    /// Ramp length (`--arrival ramp`, and the late arrivals of `pre-queue`).
    #[arg(long, default_value_t = 5.0)]
    pub ramp_secs: f64,
    /// Seconds from t = 0 to the sale's opening (`--arrival pre-queue`).
    #[arg(long, default_value_t = 10)]
    pub pre_queue_secs: u64,
    /// Share of buyers arriving after the opening (`--arrival pre-queue`).
    #[arg(long, default_value_t = 0.2)]
    pub late_share: f64,
}

/// `flash-drill abuse`: a burst with attackers beside it.
#[derive(Clone, Debug, clap::Args)]
pub struct AbuseArgs {
    #[command(flatten)]
    pub burst: BurstArgs,
    #[command(flatten)]
    pub hostile: hostile::HostileArgs,
}

/// `flash-drill soak`: buyers arrive at a steady rate for a long time.
#[derive(Clone, Debug, clap::Args)]
pub struct SoakArgs {
    #[command(flatten)]
    pub drill: DrillArgs,
    /// Buyers arriving per second.
    #[arg(long, default_value_t = 50.0)]
    pub rate: f64,
    /// Seconds of arrivals.
    #[arg(long, default_value_t = 300)]
    pub duration_secs: u64,
}

/// `flash-drill report`: a saved JSON report, shown again.
#[derive(Clone, Debug, clap::Args)]
pub struct ReportArgs {
    /// A report written by `--json`.
    pub input: PathBuf,
    /// Write the HTML page here.
    #[arg(long)]
    pub html: Option<PathBuf>,
}

/// Runs a burst drill and returns its report.
pub async fn burst(args: BurstArgs) -> anyhow::Result<Report> {
    let schedule = burst_schedule(&args);
    drill(args.drill, "burst", schedule, 2_000, None).await
}

fn burst_schedule(args: &BurstArgs) -> Schedule {
    Schedule {
        arrival: args.arrival,
        users: args.users,
        ramp_ms: (args.ramp_secs * 1000.0) as u64,
        opens_ms: if args.arrival == Arrival::PreQueue {
            args.pre_queue_secs * 1000
        } else {
            0
        },
        late_share: args.late_share,
    }
}

/// Runs a burst with the hostile mix beside it and returns its report.
pub async fn abuse(args: AbuseArgs) -> anyhow::Result<Report> {
    let schedule = burst_schedule(&args.burst);
    drill(
        args.burst.drill,
        "abuse",
        schedule,
        2_000,
        Some(args.hostile),
    )
    .await
}

/// Runs a soak drill and returns its report.
pub async fn soak(args: SoakArgs) -> anyhow::Result<Report> {
    let users = (args.rate * args.duration_secs as f64).round() as usize;
    let schedule = Schedule {
        arrival: Arrival::Ramp,
        users,
        ramp_ms: args.duration_secs * 1000,
        opens_ms: 0,
        late_share: 0.0,
    };
    let mut drill_args = args.drill;
    // The soak lasts its duration plus the time to settle.
    drill_args.deadline_secs = drill_args.deadline_secs.max(args.duration_secs + 60);
    let tickets = u32::try_from(users).unwrap_or(u32::MAX);
    drill(drill_args, "soak", schedule, tickets, None).await
}

/// Prints `report`, writes its files, and fails when it did not pass.
pub fn conclude(
    report: &Report,
    json: Option<&PathBuf>,
    html: Option<&PathBuf>,
) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    write!(out, "{}", report.table())?;
    if let Some(path) = json {
        std::fs::write(path, serde_json::to_vec_pretty(report)?)
            .with_context(|| format!("writing {}", path.display()))?;
        writeln!(out, "report (JSON): {}", path.display())?;
    }
    if let Some(path) = html {
        std::fs::write(path, report.html())
            .with_context(|| format!("writing {}", path.display()))?;
        writeln!(out, "report (HTML): {}", path.display())?;
    }
    drop(out);
    crate::bench::print_result(&serde_json::json!({
        "drill": report.setup.kind,
        "users": report.setup.users,
        "tickets": report.setup.tickets,
        "joins_per_sec": report.joins.per_sec,
        "join_p99_ms": report.joins.latency.p99_ms,
        "admission_p99_ms": report.admission.latency.p99_ms,
        "orders_per_sec": report.orders.per_sec,
        "order_p99_ms": report.orders.latency.p99_ms,
        "settle_p99_ms": report.payments.settle.p99_ms,
        "error_rate": report.error_rate,
        "passed": report.passed,
    }))?;
    if !report.passed {
        let names = |checks: &[report::Check]| -> Vec<String> {
            checks
                .iter()
                .filter(|c| !c.ok)
                .map(|c| c.name.clone())
                .collect()
        };
        return Err(Failed {
            invariants: names(&report.invariants),
            slos: names(&report.slos),
        }
        .into());
    }
    Ok(())
}

/// A drill that ran and did not pass: which checks failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failed {
    pub invariants: Vec<String>,
    pub slos: Vec<String>,
}

impl Failed {
    /// The exit status it deserves: 2 when an invariant broke (the sale did not hold), 1 when
    /// only SLOs were missed.
    #[must_use]
    pub fn exit_code(&self) -> u8 {
        if self.invariants.is_empty() { 1 } else { 2 }
    }
}

impl std::fmt::Display for Failed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let all: Vec<&str> = self
            .invariants
            .iter()
            .chain(&self.slos)
            .map(String::as_str)
            .collect();
        write!(f, "the drill failed: {}", all.join(", "))
    }
}

impl std::error::Error for Failed {}

/// `flash-drill report`.
pub fn show(args: &ReportArgs) -> anyhow::Result<()> {
    let text =
        std::fs::read(&args.input).with_context(|| format!("reading {}", args.input.display()))?;
    let report: Report = serde_json::from_slice(&text)
        .with_context(|| format!("{} is not a drill report", args.input.display()))?;
    conclude(&report, None, args.html.as_ref())
}

/// Soft limit on open files of this process.
fn open_files_limit() -> usize {
    std::fs::read_to_string("/proc/self/limits")
        .ok()
        .and_then(|limits| {
            let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
            line.split_whitespace().nth(3)?.parse().ok()
        })
        .unwrap_or(1024)
}

/// Buyers one process may hold: each holds a socket while waiting, plus pooled connections,
/// under a limit of 20,000 open files.
const BUYERS_PER_SHARD: usize = 12_000;

fn machine() -> String {
    let cores = std::thread::available_parallelism().map_or(0, std::num::NonZero::get);
    let memory_gib = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            let kib: f64 = m.lines().next()?.split_whitespace().nth(1)?.parse().ok()?;
            Some(kib / 1024.0 / 1024.0)
        })
        .unwrap_or(0.0);
    format!("{cores} cores, {memory_gib:.0} GiB")
}

/// An access token for the operator `email` (the drill's and the benchmarks').
pub(crate) async fn login(
    api: std::net::SocketAddr,
    email: &str,
    password: &str,
) -> anyhow::Result<String> {
    let mut conn = Conn::open(api, None).await?;
    let body = conn
        .expect(
            &format!(
                "logging in as the operator {email} (set FLASH_ADMIN_EMAIL/FLASH_ADMIN_PASSWORD)"
            ),
            StatusCode::OK,
            Method::POST,
            "/api/v1/auth/login",
            None,
            Some(serde_json::to_vec(&LoginRequest {
                email: email.to_owned(),
                password: password.to_owned(),
            })?),
        )
        .await?;
    Ok(serde_json::from_slice::<TokenResponse>(&body)?.access_token)
}

/// Creates `new` at the api as the operator and waits (up to 10 s) until every gateway
/// knows it.
pub(crate) async fn publish_event(
    api: std::net::SocketAddr,
    gateways: &[std::net::SocketAddr],
    admin: &str,
    new: &NewEvent,
) -> anyhow::Result<Event> {
    let mut conn = Conn::open(api, None).await?;
    let body = conn
        .expect(
            &format!("creating the event {:?}", new.name),
            StatusCode::CREATED,
            Method::POST,
            "/api/v1/admin/events",
            Some(admin),
            Some(serde_json::to_vec(new)?),
        )
        .await?;
    let event: Event = serde_json::from_slice(&body)?;
    let path = format!("/queue/v1/admin/events/{}", event.id);
    for gateway in gateways {
        let mut conn = Conn::open(*gateway, None).await?;
        let mut known = false;
        for _ in 0..200 {
            let (status, _) = conn.request(Method::GET, &path, Some(admin), None).await?;
            if status == StatusCode::OK {
                known = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        if !known {
            bail!(
                "gateway {gateway} did not learn of event {} within 10 s: are the api and the gateways on the same broker?",
                event.id
            );
        }
    }
    Ok(event)
}

/// Creates the drill's event and waits until every gateway knows it.
async fn create_event(
    targets: &Targets,
    admin: &str,
    sale: &SaleArgs,
    tickets: u32,
    run: &str,
    opens_at: OffsetDateTime,
) -> anyhow::Result<Event> {
    let new = NewEvent {
        name: format!("Drill {run}"),
        venue: "Loopback Arena".into(),
        starts_at: opens_at + time::Duration::days(1),
        sale_opens_at: opens_at,
        price_cents: 4_200,
        currency: "EUR".into(),
        inventory: tickets,
        max_per_user: sale.max_per_user,
        queue: QueueSettings {
            admit_per_sec: sale.admit_per_sec,
            max_active: sale.max_active,
            admission_ttl_s: sale.admission_ttl_s,
            challenge_difficulty: 0,
        },
        returns_until: None,
    };
    let event = publish_event(targets.api, &targets.gateways, admin, &new).await?;
    if sale.challenge_difficulty > 0 {
        let patch = QueuePatch {
            challenge_difficulty: Some(sale.challenge_difficulty),
            ..QueuePatch::default()
        };
        let mut conn = Conn::open(targets.gateways[0], None).await?;
        conn.expect(
            "turning the join challenge on",
            StatusCode::OK,
            Method::PATCH,
            &format!("/queue/v1/admin/events/{}", event.id),
            Some(admin),
            Some(serde_json::to_vec(&patch)?),
        )
        .await?;
    }
    Ok(event)
}

async fn queue_sample(
    conn: &mut Option<Conn>,
    gateway: std::net::SocketAddr,
    path: &str,
    admin: &str,
) -> Option<QueueStats> {
    if conn.as_ref().is_none_or(Conn::is_closed) {
        *conn = tokio::time::timeout(Duration::from_secs(1), Conn::open(gateway, None))
            .await
            .ok()?
            .ok();
    }
    let request = conn.as_mut()?.request(Method::GET, path, Some(admin), None);
    match tokio::time::timeout(Duration::from_secs(1), request).await {
        Ok(Ok((StatusCode::OK, body))) => serde_json::from_slice(&body).ok(),
        _ => {
            *conn = None;
            None
        }
    }
}

async fn drill(
    args: DrillArgs,
    kind: &str,
    schedule: Schedule,
    default_tickets: u32,
    hostile: Option<hostile::HostileArgs>,
) -> anyhow::Result<Report> {
    let users = schedule.users;
    anyhow::ensure!(users > 0, "a drill needs at least one buyer");
    let tickets = args.sale.tickets.unwrap_or(default_tickets);
    let run = args.run.clone().unwrap_or_else(|| {
        format!(
            "{}-{}",
            OffsetDateTime::now_utc().unix_timestamp(),
            std::process::id()
        )
    });
    let shards = args
        .shards
        .unwrap_or_else(|| users.div_ceil(BUYERS_PER_SHARD))
        .clamp(1, users);
    let targets = args.target.resolve(users, shards).await?;
    let per_shard = users.div_ceil(shards);
    let files = open_files_limit();
    if per_shard + 2_000 > files {
        bail!(
            "{per_shard} buyers per process need more open files than the limit ({files}): \
             raise `ulimit -n` or give more --shards"
        );
    }
    let admin = login(
        targets.api,
        &args.target.admin_email,
        &args.target.admin_password,
    )
    .await?;
    let say = |line: String| {
        if !args.quiet {
            eprintln!("{line}");
        }
    };
    say(format!(
        "drill {run}: {users} buyers in {shards} process(es) over {} source address(es); signing them up…",
        targets.sources.len().max(1)
    ));

    // The crowd, prepared before t = 0.
    let mut handles = Vec::with_capacity(shards);
    for shard in 0..shards {
        let plan = ShardPlan {
            shard,
            shards,
            run: run.clone(),
            targets: targets.clone(),
            behaviour: args.behaviour.clone(),
            schedule: schedule.clone(),
            signup_concurrency: args.signup_concurrency,
            deadline_secs: args.deadline_secs,
            final_within_secs: args.final_within_secs,
        };
        handles.push(if shards == 1 {
            Handle::in_process(plan)
        } else {
            Handle::child(&plan)?
        });
    }
    let (all, mut messages) = mpsc::unbounded_channel::<(usize, ShardMsg)>();
    for (i, handle) in handles.iter_mut().enumerate() {
        let mut inbox = handle.take_messages();
        let all = all.clone();
        tokio::spawn(async move {
            while let Some(message) = inbox.recv().await {
                if all.send((i, message)).is_err() {
                    break;
                }
            }
        });
    }
    drop(all);
    let mut crowd_members = 0;
    let mut crowd_seconds = 0.0_f64;
    let mut ready = 0;
    while ready < shards {
        match messages.recv().await {
            Some((_, ShardMsg::Ready { members, seconds })) => {
                crowd_members += members;
                crowd_seconds = crowd_seconds.max(seconds);
                ready += 1;
            }
            Some((i, ShardMsg::Failed(why))) => bail!("drill process {i}: {why}"),
            Some(_) => {}
            None => bail!("the drill processes ended before they were ready"),
        }
    }
    say(format!(
        "crowd ready: {crowd_members} buyers in {crowd_seconds:.1}s ({:.0}/s)",
        crowd_members as f64 / crowd_seconds.max(1e-9)
    ));
    let mut field = hostile::Field {
        api: targets.api,
        gateways: targets.gateways.clone(),
        event: EventId(uuid::Uuid::nil()),
        max_per_user: args.sale.max_per_user,
        admission_ttl_s: args.sale.admission_ttl_s,
        run: run.clone(),
    };
    let attackers = match &hostile {
        Some(hostile) => {
            let members = hostile::prepare(&field, hostile)
                .await
                .context("signing up the attackers")?;
            say(format!("{} attackers signed up", members.len()));
            Some(members)
        }
        None => None,
    };
    let farm_members = farm::prepare(targets.api, &run, &args.farm)
        .await
        .context("signing up the bot farm")?;
    if !farm_members.is_empty() {
        say(format!(
            "bot farm: {} accounts signed up",
            farm_members.len()
        ));
    }

    // The event; t = 0 once every gateway knows it.
    const SETUP: Duration = Duration::from_secs(5);
    let planned_t0 = OffsetDateTime::now_utc() + SETUP;
    let opens_at = if schedule.opens_ms > 0 {
        planned_t0 + Duration::from_millis(schedule.opens_ms)
    } else {
        OffsetDateTime::now_utc() - time::Duration::minutes(1)
    };
    let event = create_event(&targets, &admin, &args.sale, tickets, &run, opens_at).await?;
    let t0_epoch_ms = if schedule.opens_ms > 0 {
        let t0 = u64::try_from((planned_t0.unix_timestamp_nanos() / 1_000_000).max(0)).unwrap_or(0);
        if shard::epoch_ms() + 200 > t0 {
            bail!("preparing the event took more than {SETUP:?}: the pre-queue would start late");
        }
        t0
    } else {
        shard::epoch_ms() + 300
    };
    let t0 = Instant::now() + Duration::from_millis(t0_epoch_ms.saturating_sub(shard::epoch_ms()));
    for handle in &mut handles {
        handle.go(Go {
            event: event.id,
            t0_epoch_ms,
        });
    }
    say(format!("event {} created; go", event.id));

    // The attackers, from t = 0 until the crowd is done.
    let (stop_attackers, attackers_stop) = tokio::sync::watch::channel(false);
    let attack_task = match (hostile, attackers) {
        (Some(hostile), Some(members)) => {
            field.event = event.id;
            Some(tokio::spawn(async move {
                tokio::time::sleep_until(t0.into()).await;
                hostile::unleash(field, hostile, members, attackers_stop).await
            }))
        }
        _ => None,
    };
    let farm_task = (!farm_members.is_empty()).then(|| {
        let strike = farm::Strike {
            event: event.id,
            api: targets.api,
            gateways: targets.gateways.clone(),
            t0,
            deadline: t0 + Duration::from_secs(args.deadline_secs),
            final_within: Duration::from_secs(args.final_within_secs),
            max_per_user: args.sale.max_per_user,
            difficulty: args.sale.challenge_difficulty,
        };
        let (farm_args, behaviour) = (args.farm.clone(), args.behaviour.clone());
        tokio::spawn(async move { farm::run(strike, &farm_args, &behaviour, farm_members).await })
    });

    // Chaos at its seconds.
    let redis = client::origin_addr(&args.redis_url.replacen("redis://", "http://", 1))
        .await
        .unwrap_or_else(|_| std::net::SocketAddr::from(([127, 0, 0, 1], 6379)));
    let scene = Scene {
        redis,
        database_url: args.database_url.clone(),
        ready_targets: std::iter::once(targets.api)
            .chain(targets.gateways.iter().copied())
            .collect(),
    };
    let chaos_tasks: Vec<_> = args
        .chaos
        .iter()
        .cloned()
        .map(|spec| {
            let scene = scene.clone();
            tokio::spawn(async move {
                tokio::time::sleep_until((t0 + Duration::from_secs(spec.at_s)).into()).await;
                chaos::unleash(&spec, &scene, t0).await
            })
        })
        .collect();

    // The burst: progress, queue samples, results.
    let mut latest = vec![Snapshot::default(); shards];
    let mut results = Vec::with_capacity(shards);
    let mut samples = Vec::new();
    let mut sampler: Option<Conn> = None;
    let stats_path = format!("/queue/v1/admin/events/{}", event.id);
    let mut tick =
        tokio::time::interval_at((t0 + Duration::from_secs(1)).into(), Duration::from_secs(1));
    let hard_stop = t0 + Duration::from_secs(args.deadline_secs + args.final_within_secs + 120);
    while results.len() < shards {
        tokio::select! {
            message = messages.recv() => match message {
                Some((i, ShardMsg::Progress(snapshot))) => latest[i] = snapshot,
                Some((_, ShardMsg::Done(result))) => results.push(*result),
                Some((i, ShardMsg::Failed(why))) => bail!("drill process {i}: {why}"),
                Some((_, ShardMsg::Ready { .. })) => {}
                None => bail!("the drill processes ended before reporting"),
            },
            _ = tick.tick() => {
                let t = Instant::now().saturating_duration_since(t0);
                if let Some(stats) = queue_sample(&mut sampler, targets.gateways[0], &stats_path, &admin).await {
                    samples.push(QueueSample {
                        t: t.as_secs(),
                        waiting: stats.waiting,
                        admitted_active: stats.admitted_active,
                    });
                }
                let mut total = Snapshot::default();
                for s in &latest {
                    total.add(s);
                }
                say(total.line(t.as_secs_f64(), users));
                if Instant::now() > hard_stop {
                    bail!("the drill processes did not finish by the deadline");
                }
            }
        }
    }
    for handle in &mut handles {
        handle.finish().await;
    }
    let _ = stop_attackers.send(true);
    let attacks = match attack_task {
        Some(task) => Some(task.await.context("the attackers panicked")?),
        None => None,
    };
    let (farm, farm_records) = match farm_task {
        Some(task) => {
            let (report, records) = task.await.context("the bot farm panicked")?;
            (Some(report), records)
        }
        None => (None, Vec::new()),
    };
    let mut chaos_done: Vec<Happened> = Vec::new();
    for task in chaos_tasks {
        chaos_done.push(task.await.context("a chaos action panicked")?);
    }

    // After: the event, the database, the gateway's keys.
    let mut api = Conn::open(targets.api, None).await?;
    let body = api
        .expect(
            "reading the event after the drill",
            StatusCode::OK,
            Method::GET,
            &format!("/api/v1/events/{}", event.id),
            None,
            None,
        )
        .await?;
    let after: Event = serde_json::from_slice(&body)?;
    let ledger = match &args.database_url {
        Some(url) => Some(
            audit_event(
                url,
                event.id,
                Duration::from_secs(args.final_within_secs),
                args.late_payments,
            )
            .await?,
        ),
        None => None,
    };
    let mut gateway = Conn::open(targets.gateways[0], None).await?;
    let jwks = gateway
        .expect(
            "reading the gateway's keys",
            StatusCode::OK,
            Method::GET,
            "/queue/.well-known/jwks.json",
            None,
            None,
        )
        .await?;
    let verifier = flash_tokens::Verifier::new(
        &flash_tokens::keys::Jwks::from_json(&String::from_utf8_lossy(&jwks))?,
        GATE_ISSUER,
        GATE_AUDIENCE,
    )?
    // Checked after the sale: a token used minutes ago is past its `exp`, and still genuine.
    .ignoring_expiry();
    let verify = |token: &str| -> Result<GateClaims, String> {
        verifier
            .verify::<GateClaims>(token)
            .map_err(|e| e.to_string())
    };

    let mut records = Vec::with_capacity(users);
    let mut tally = TallyInner::default();
    let mut polls = Latencies::new();
    for result in results {
        records.extend(result.records);
        tally.merge(&result.tally);
        polls.merge(&Latencies::from_counts(&result.polls));
    }
    records.sort_by_key(|r| r.index);
    let b = &args.behaviour;
    let setup = Setup {
        kind: kind.into(),
        run: run.clone(),
        started_at: OffsetDateTime::now_utc()
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default(),
        users,
        tickets,
        max_per_user: args.sale.max_per_user,
        quantity: b.quantity,
        admit_per_sec: args.sale.admit_per_sec,
        max_active: args.sale.max_active,
        admission_ttl_s: args.sale.admission_ttl_s,
        arrival: wire_name(&schedule.arrival),
        ramp_s: schedule.ramp_ms as f64 / 1000.0,
        opens_s: (schedule.opens_ms > 0).then_some(schedule.opens_ms as f64 / 1000.0),
        late_share: schedule.late_share,
        polling_share: b.polling_share,
        abandon_share: b.abandon_share,
        reconnect_share: b.reconnect_share,
        retry_share: b.retry_share,
        shards,
        sources: targets.sources.len(),
        connections: targets.connections_per_source * targets.sources.len().max(1) * shards,
        api: targets.api.to_string(),
        gateways: targets.gateways.iter().map(ToString::to_string).collect(),
        machine: machine(),
    };
    let mut report = analysis::report(Inputs {
        setup,
        crowd_members,
        crowd_seconds,
        event: event.id,
        remaining_at_end: after.remaining,
        event_status_at_end: wire_name(&after.status),
        opens_ms: (schedule.opens_ms > 0).then_some(schedule.opens_ms),
        records: &records,
        farm_records: &farm_records,
        tally: &tally,
        polls: &polls,
        samples: &samples,
        chaos: chaos_done,
        ledger,
        slos: &args.slos,
        verify_gate: &verify,
    });
    if let Some(attacks) = attacks {
        let check = hostile::check(&attacks);
        report.passed &= check.ok;
        report.invariants.push(check);
        report.attacks = attacks;
    }
    if schedule.opens_ms > 0 {
        let check = draw_check(targets.gateways[0], event.id, &records).await;
        report.passed &= check.ok;
        report.invariants.push(check);
    }
    if let Some(farm) = farm {
        let check = farm.check(&farm_records, args.sale.max_per_user);
        report.passed &= check.ok;
        report.invariants.push(check);
        report.farm = Some(farm);
    }
    Ok(report)
}

/// The published draw verifies, and every early buyer holds the number of their line.
async fn draw_check(
    gateway: std::net::SocketAddr,
    event: EventId,
    records: &[buyer::Record],
) -> report::Check {
    let name = "the published draw verifies and numbers the pre-queue".to_owned();
    match crate::draw::check(gateway, event).await {
        Ok(checked) => {
            let places = records
                .iter()
                .filter(|r| r.pre_queue)
                .filter_map(|r| Some((r.user?, r.number?)));
            let (drawn, wrong) = crate::draw::misplaced(&checked.order, event, places);
            report::Check {
                name,
                ok: wrong == 0 && drawn > 0,
                detail: format!(
                    "seed, commitment and the {} participants check out; {drawn} early buyers found in it, {wrong} holding another number than their line",
                    checked.order.len()
                ),
            }
        }
        Err(error) => report::Check {
            name,
            ok: false,
            detail: format!("{error:#}"),
        },
    }
}

/// A unit enum's name on the wire (e.g. `sold_out`).
fn wire_name<T: serde::Serialize>(value: &T) -> String {
    serde_json::to_value(value)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}

/// The database's ledger of the event, after waiting (at most `settle_within`) for every
/// order and every refund to be final. With `late_payments`, the drill was meant to make
/// payments arrive after their hold: that none did is a violation too.
async fn audit_event(
    url: &str,
    event: EventId,
    settle_within: Duration,
    late_payments: bool,
) -> anyhow::Result<(crate::audit::Ledger, Vec<crate::audit::Violation>)> {
    let pool = flash_kit::stores::connect_postgres(url, 1).await?;
    let until = Instant::now() + settle_within;
    let ledger = loop {
        let ledger = crate::audit::ledger(&pool, event.0)
            .await?
            .with_context(|| {
                format!("event {event} is not in the database at {url}: is it the api's?")
            })?;
        if (ledger.pending == 0 && ledger.refunds_pending == 0) || Instant::now() >= until {
            break ledger;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    pool.close().await;
    let mut violations = crate::audit::violations(&ledger, crate::audit::Pending::Violation);
    if late_payments && ledger.late_approvals == 0 {
        violations.push(crate::audit::Violation {
            invariant: "some payments arrived after their hold",
            detail: "--late-payments, yet no payment was approved after its order's hold: run \
                     the suite with a short ORDER_HOLD_SECS and a slow provider \
                     (PAY_LATENCY_P50_MS), as `make drill-late-payments` does"
                .into(),
        });
    }
    Ok((ledger, violations))
}

#[cfg(test)]
mod tests {
    use super::Failed;

    #[test]
    fn a_broken_invariant_exits_2_a_missed_slo_1() {
        let slo = Failed {
            invariants: vec![],
            slos: vec!["join p99".into()],
        };
        assert_eq!(slo.exit_code(), 1);
        assert_eq!(slo.to_string(), "the drill failed: join p99");
        let both = Failed {
            invariants: vec!["no oversell".into()],
            slos: vec!["join p99".into()],
        };
        assert_eq!(both.exit_code(), 2);
        assert_eq!(both.to_string(), "the drill failed: no oversell, join p99");
    }
}
