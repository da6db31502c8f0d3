//! Gateway benchmarks: joins, status polls, idle WebSockets (one gateway or several, from
//! several client processes and source addresses), and mass admission of waiting sockets.
//! Each prints a human summary and one JSON line (`RESULT {...}`) for BENCHMARKS.md.

use std::io::{BufRead as _, Write as _};
use std::net::{IpAddr, SocketAddr};
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context as _, bail};
use flash_protocol::claims::Role;
use flash_protocol::event::QueueSettings;
use flash_protocol::messages::Names;
use flash_protocol::ws::ServerFrame;
use flash_protocol::{EventId, UserId};
use hyper::{Method, StatusCode};
use serde::{Deserialize, Serialize};
use tokio::io::AsyncBufReadExt as _;

use crate::http::Conn;
use crate::setup::{DevTokens, announce_event};
use crate::socket;
use crate::stats::{Latencies, Summary};

/// Where the benchmark points and how it spreads its connections.
#[derive(Clone, Debug, clap::Args)]
pub struct Target {
    /// Gateway addresses (host:port), comma-separated; connections are spread over them.
    #[arg(long, value_delimiter = ',', default_value = "127.0.0.1:3000")]
    pub gateway: Vec<SocketAddr>,
    /// Source addresses for client connections, comma-separated (e.g. 127.0.0.2,127.0.0.3):
    /// each gives ~28,000 more ephemeral ports.
    #[arg(long, value_delimiter = ',')]
    pub source: Vec<IpAddr>,
    /// RabbitMQ of the suite, to announce the benchmark's event as the api would.
    #[command(flatten)]
    pub broker: BrokerTarget,
    /// Processes whose CPU time is read from /proc around the timed part, as NAME=PID
    /// (repeatable, e.g. `--watch-pid redis=812 --watch-pid gateway=4410`): the result gives
    /// each one's CPU per operation and the cores it used, and this load generator's own.
    #[arg(long = "watch-pid", value_parser = parse_watched)]
    pub watch: Vec<Watched>,
}

/// A process watched for CPU time.
#[derive(Clone, Debug)]
pub struct Watched {
    pub name: String,
    pub pid: u32,
}

fn parse_watched(text: &str) -> Result<Watched, String> {
    let (name, pid) = text
        .split_once('=')
        .ok_or_else(|| format!("expected NAME=PID, got {text:?}"))?;
    let pid = pid
        .parse()
        .map_err(|_| format!("not a process id: {pid:?}"))?;
    if name.is_empty() {
        return Err("the name is empty".into());
    }
    Ok(Watched {
        name: name.to_owned(),
        pid,
    })
}

/// Clock ticks per second of `/proc/PID/stat`'s times (`USER_HZ`, 100 on Linux).
const USER_HZ: f64 = 100.0;

/// CPU seconds (user + system, every thread) a process has used, from `/proc/PID/stat`.
fn cpu_seconds(pid: u32) -> anyhow::Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    stat_cpu_seconds(&stat).context("utime and stime in /proc/PID/stat")
}

/// utime + stime of a `/proc/PID/stat` line, in seconds. The fields are counted after the
/// command name's closing parenthesis (a name may hold spaces and parentheses itself).
pub(crate) fn stat_cpu_seconds(stat: &str) -> Option<f64> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // After the name: state is field 3, utime field 14, stime field 15.
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) as f64 / USER_HZ)
}

/// The CPU of the watched processes from one instant.
pub(crate) struct CpuWatch {
    started: Instant,
    at_start: Vec<(Watched, f64)>,
}

/// One watched process's CPU over a timed part.
#[derive(Debug, Serialize)]
pub(crate) struct CpuUse {
    name: String,
    /// CPU microseconds per operation.
    us_per_op: f64,
    /// Cores used on average (CPU seconds per second).
    cores: f64,
}

impl CpuWatch {
    /// Watches `watched` and, when there is any, this load generator itself (`generator`):
    /// it shares the machine's cores with what it measures, so its own CPU is part of the
    /// picture.
    pub(crate) fn start(watched: &[Watched]) -> anyhow::Result<Self> {
        let generator = Watched {
            name: "generator".into(),
            pid: std::process::id(),
        };
        let at_start = watched
            .iter()
            .chain((!watched.is_empty()).then_some(&generator))
            .map(|w| Ok((w.clone(), cpu_seconds(w.pid)?)))
            .collect::<anyhow::Result<_>>()?;
        Ok(Self {
            started: Instant::now(),
            at_start,
        })
    }

    pub(crate) fn finish(self, operations: u64) -> anyhow::Result<Vec<CpuUse>> {
        let seconds = self.started.elapsed().as_secs_f64().max(1e-9);
        self.at_start
            .into_iter()
            .map(|(w, before)| {
                let used = cpu_seconds(w.pid)? - before;
                Ok(CpuUse {
                    name: w.name,
                    us_per_op: used * 1e6 / operations.max(1) as f64,
                    cores: used / seconds,
                })
            })
            .collect()
    }
}

/// The suite's RabbitMQ.
#[derive(Clone, Debug, clap::Args)]
pub struct BrokerTarget {
    #[arg(
        long,
        env = "AMQP_URL",
        default_value = "amqp://guest:guest@127.0.0.1:5672/%2f"
    )]
    pub amqp_url: String,
    /// The suite's exchange and queue name prefix.
    #[arg(long, env = "AMQP_NAME_PREFIX", default_value = "")]
    pub amqp_name_prefix: String,
}

impl BrokerTarget {
    #[must_use]
    pub fn names(&self) -> Names {
        Names::new(self.amqp_name_prefix.clone())
    }

    /// Deletes the queues and exchanges under this (non-empty) name prefix: what a benchmark
    /// run declared, removed when it ends. An empty prefix is refused (it names a suite's own).
    pub async fn remove_topology(&self) -> anyhow::Result<()> {
        anyhow::ensure!(
            !self.amqp_name_prefix.is_empty(),
            "refusing to remove the unprefixed topology"
        );
        let connection =
            lapin::Connection::connect(&self.amqp_url, lapin::ConnectionProperties::default())
                .await?;
        let channel = connection.create_channel().await?;
        flash_kit::amqp::remove_topology(&channel, &self.names()).await?;
        connection.close(200, "cleaned up".into()).await?;
        Ok(())
    }
}

impl Target {
    fn gateway_for(&self, i: usize) -> SocketAddr {
        self.gateway[i % self.gateway.len()]
    }

    fn source_for(&self, i: usize) -> Option<IpAddr> {
        (!self.source.is_empty()).then(|| self.source[i % self.source.len()])
    }
}

#[derive(Debug, clap::Subcommand)]
pub enum Bench {
    /// Joins of distinct users, as fast as `concurrency` connections allow.
    Joins {
        #[command(flatten)]
        target: Target,
        #[arg(long, default_value_t = 100_000)]
        users: usize,
        #[arg(long, default_value_t = 64)]
        concurrency: usize,
    },
    /// Status polls of users who joined, for a fixed time.
    Status {
        #[command(flatten)]
        target: Target,
        #[arg(long, default_value_t = 10_000)]
        users: usize,
        #[arg(long, default_value_t = 64)]
        concurrency: usize,
        #[arg(long, default_value_t = 10)]
        seconds: u64,
    },
    /// Admission ticks of one queue with `users` waiting, for a fixed time: the ticks and
    /// admissions the gateways count (their /metrics) and the watched processes' CPU per tick.
    Ticks {
        #[command(flatten)]
        target: Target,
        #[arg(long, default_value_t = 10_000)]
        users: usize,
        #[arg(long, default_value_t = 64)]
        concurrency: usize,
        /// The queue's admissions per second.
        #[arg(long, default_value_t = 500)]
        admit_per_sec: u32,
        #[arg(long, default_value_t = 10)]
        seconds: u64,
    },
    /// Idle WebSockets held open; reports the gateways' memory per socket.
    Sockets {
        #[command(flatten)]
        target: Target,
        #[command(flatten)]
        shards: Shards,
        #[arg(long, default_value_t = 15_000)]
        users: usize,
        /// Seconds to hold the sockets open once all are connected.
        #[arg(long, default_value_t = 10)]
        hold_secs: u64,
        /// Process ids of the gateways, to read their memory before and after.
        #[arg(long, value_delimiter = ',')]
        gateway_pids: Vec<u32>,
    },
    /// Orders of one hot event through the api, then an oversell check (api issue #4).
    Orders(crate::orders_bench::OrdersArgs),
    /// Concurrent logins with unknown e-mails against the api (each connection from a /24 of
    /// its own): the api's memory and threads, its answers by code, and the p99 of
    /// `GET /api/v1/events` idle and meanwhile.
    Logins(crate::logins_bench::LoginsArgs),
    /// Opening a pre-queue of N (a million by default), filled straight into Redis through
    /// the gateway's own waiting room and opened by its own tickers: the longest Redis command
    /// meanwhile, the time to the first admission, and 1…N each given once in the draw's order.
    Prequeue(crate::prequeue_bench::PrequeueArgs),
    /// What Redis spends on a join when nothing else wants the cores: buyers joined through
    /// the gateway's own join script in the coalescer's batches, one call at a time, with
    /// Redis's CPU (`/proc`) and its own time in the script (`INFO commandstats`) per join.
    JoinScript(crate::join_script_bench::JoinScriptArgs),
    /// What the join challenge costs: the gateway's issuing and verifying per challenge, and
    /// the native solve time at each difficulty.
    Challenge(crate::challenge_bench::ChallengeArgs),
    /// Payment requests through a running pay worker, end to end (pay issue #5).
    Payments(crate::payments_bench::PaymentsArgs),
    /// One gateway of several stopped (SIGTERM) while every buyer holds a queue socket: its
    /// buyers poll and reconnect to the others as the web client does after a 1012; the
    /// reconnections the others see per 100 ms and per second, and that every socket came back.
    Restart(crate::restart_bench::RestartArgs),
    /// Waiting sockets all admitted at once: time from the operator's resume to each
    /// socket's admitted frame.
    Admit {
        #[command(flatten)]
        target: Target,
        #[command(flatten)]
        shards: Shards,
        #[arg(long, default_value_t = 10_000)]
        users: usize,
    },
}

/// Splitting a benchmark's sockets over several processes (at most 20,000 files each).
#[derive(Clone, Debug, clap::Args)]
pub struct Shards {
    /// Client processes to spread the sockets over.
    #[arg(long, default_value_t = 1)]
    pub shards: usize,
    /// Internal: this process is shard `i` of a run (set by the parent).
    #[arg(long, hide = true)]
    pub shard: Option<usize>,
    /// Internal: the event of a sharded run (set by the parent).
    #[arg(long, hide = true)]
    pub event: Option<EventId>,
}

/// The machine-readable result: one `RESULT {json}` line on stdout.
pub fn print_result<T: Serialize>(result: &T) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    writeln!(out, "RESULT {}", serde_json::to_string(result)?)?;
    Ok(())
}

pub async fn run(bench: Bench) -> anyhow::Result<()> {
    match bench {
        Bench::Joins {
            target,
            users,
            concurrency,
        } => joins(&target, users, concurrency).await,
        Bench::Status {
            target,
            users,
            concurrency,
            seconds,
        } => status(&target, users, concurrency, seconds).await,
        Bench::Ticks {
            target,
            users,
            concurrency,
            admit_per_sec,
            seconds,
        } => ticks(&target, users, concurrency, admit_per_sec, seconds).await,
        Bench::Sockets {
            target,
            shards,
            users,
            hold_secs,
            gateway_pids,
        } => match (shards.shard, shards.event) {
            (Some(shard), Some(event)) => {
                sockets_shard(&target, &shards, shard, event, users).await
            }
            _ => sockets(&target, &shards, hold_secs, &gateway_pids).await,
        },
        Bench::Orders(args) => crate::orders_bench::run(args).await,
        Bench::Payments(args) => crate::payments_bench::run(args).await,
        Bench::Logins(args) => crate::logins_bench::run(args).await,
        Bench::Prequeue(args) => crate::prequeue_bench::run(args).await,
        Bench::JoinScript(args) => crate::join_script_bench::run(args).await,
        Bench::Challenge(args) => crate::challenge_bench::run(&args),
        Bench::Restart(args) => crate::restart_bench::run(args).await,
        Bench::Admit {
            target,
            shards,
            users,
        } => match (shards.shard, shards.event) {
            (Some(shard), Some(event)) => admit_shard(&target, &shards, shard, event, users).await,
            _ => admit(&target, &shards).await,
        },
    }
}

async fn new_event(target: &Target, queue: QueueSettings) -> anyhow::Result<EventId> {
    let event = announce_event(&target.broker.amqp_url, &target.broker.names(), queue).await?;
    // The gateway applies the announcement asynchronously: wait until it knows the queue.
    let tokens = DevTokens::new()?;
    let admin = tokens.token(UserId::new_v7(), Role::Admin, 3600)?;
    for gateway in &target.gateway {
        let mut conn = Conn::open(*gateway, None).await?;
        let path = format!("/queue/v1/admin/events/{event}");
        let mut known = false;
        for _ in 0..100 {
            let (status, _) = conn.request(Method::GET, &path, Some(&admin), None).await?;
            if status == StatusCode::OK {
                known = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        if !known {
            bail!("gateway {gateway} never learned of event {event}: is it on the same broker?");
        }
    }
    Ok(event)
}

async fn set_paused(target: &Target, event: EventId, paused: bool) -> anyhow::Result<()> {
    let admin = DevTokens::new()?.token(UserId::new_v7(), Role::Admin, 3600)?;
    let mut conn = Conn::open(target.gateway_for(0), None).await?;
    let body = serde_json::to_vec(&serde_json::json!({ "paused": paused }))?;
    conn.expect(
        "pausing",
        StatusCode::OK,
        Method::PATCH,
        &format!("/queue/v1/admin/events/{event}"),
        Some(&admin),
        Some(body),
    )
    .await?;
    Ok(())
}

fn mint(tokens: &DevTokens, users: usize) -> anyhow::Result<Vec<String>> {
    (0..users)
        .map(|_| tokens.token(UserId::new_v7(), Role::User, 3600))
        .collect()
}

/// Runs `concurrency` workers over one keep-alive connection each; each calls `step` with the
/// next index until `next` says stop. Returns latencies, errors by status, and elapsed time.
async fn drive<F, Fut>(
    target: &Target,
    concurrency: usize,
    next: Arc<dyn Fn() -> Option<usize> + Send + Sync>,
    step: F,
) -> anyhow::Result<(Latencies, Vec<(u16, u64)>, Duration)>
where
    F: Fn(Conn, usize) -> Fut + Send + Sync + Clone + 'static,
    Fut: std::future::Future<Output = (Conn, anyhow::Result<StatusCode>)> + Send,
{
    let mut conns = Vec::with_capacity(concurrency);
    for i in 0..concurrency {
        conns.push(Conn::open(target.gateway_for(i), target.source_for(i)).await?);
    }
    let started = Instant::now();
    let workers: Vec<_> = conns
        .into_iter()
        .map(|mut conn| {
            let next = Arc::clone(&next);
            let step = step.clone();
            tokio::spawn(async move {
                let mut latencies = Latencies::new();
                let mut errors: std::collections::BTreeMap<u16, u64> = Default::default();
                while let Some(i) = next() {
                    let began = Instant::now();
                    let (back, outcome) = step(conn, i).await;
                    conn = back;
                    match outcome {
                        Ok(StatusCode::OK | StatusCode::NO_CONTENT) => {
                            latencies.record(began.elapsed());
                        }
                        Ok(status) => *errors.entry(status.as_u16()).or_default() += 1,
                        Err(_) => *errors.entry(0).or_default() += 1,
                    }
                }
                (latencies, errors)
            })
        })
        .collect();
    let mut latencies = Latencies::new();
    let mut errors: std::collections::BTreeMap<u16, u64> = Default::default();
    for worker in workers {
        let (l, e) = worker.await?;
        latencies.merge(&l);
        for (status, n) in e {
            *errors.entry(status).or_default() += n;
        }
    }
    Ok((latencies, errors.into_iter().collect(), started.elapsed()))
}

#[derive(Debug, Serialize)]
struct ThroughputResult {
    bench: &'static str,
    requests: u64,
    seconds: f64,
    per_sec: f64,
    latency: Summary,
    errors: Vec<(u16, u64)>,
    /// The watched processes' CPU over the timed part (`--watch-pid`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    cpu: Vec<CpuUse>,
}

fn report(
    bench: &'static str,
    latencies: &Latencies,
    errors: Vec<(u16, u64)>,
    elapsed: Duration,
    cpu: Vec<CpuUse>,
) -> anyhow::Result<()> {
    let seconds = elapsed.as_secs_f64();
    let result = ThroughputResult {
        bench,
        requests: latencies.count(),
        seconds,
        per_sec: latencies.count() as f64 / seconds,
        latency: latencies.summary(),
        errors,
        cpu,
    };
    eprintln!(
        "{bench}: {:.0}/s over {:.1}s; {}; errors {:?}",
        result.per_sec, seconds, result.latency, result.errors
    );
    print_cpu(&result.cpu, "operation");
    print_result(&result)
}

/// The watched processes' CPU, a line each, per `operation`.
pub(crate) fn print_cpu(cpu: &[CpuUse], operation: &str) {
    for used in cpu {
        eprintln!(
            "  {}: {:.1} µs of CPU per {operation}, {:.2} cores",
            used.name, used.us_per_op, used.cores
        );
    }
}

async fn joins(target: &Target, users: usize, concurrency: usize) -> anyhow::Result<()> {
    let event = new_event(
        target,
        QueueSettings {
            admit_per_sec: 100,
            max_active: 100,
            admission_ttl_s: 300,
            challenge_difficulty: 0,
        },
    )
    .await?;
    eprintln!("minting {users} access tokens, then joining…");
    let joined = join_users(target, event, users, concurrency).await?;
    report(
        "joins",
        &joined.latencies,
        joined.errors,
        joined.elapsed,
        joined.cpu,
    )
}

/// Users who joined an event, and how their joins went.
struct Joined {
    /// Access tokens, one per user.
    tokens: Arc<Vec<String>>,
    latencies: Latencies,
    errors: Vec<(u16, u64)>,
    elapsed: Duration,
    /// The watched processes' CPU over the joins.
    cpu: Vec<CpuUse>,
}

/// Mints access tokens for `count` new users (not timed), then joins each to `event` over
/// HTTP with `concurrency` connections (timed).
async fn join_users(
    target: &Target,
    event: EventId,
    count: usize,
    concurrency: usize,
) -> anyhow::Result<Joined> {
    let tokens = Arc::new(mint(&DevTokens::new()?, count)?);
    let counter = Arc::new(AtomicUsize::new(0));
    let next: Arc<dyn Fn() -> Option<usize> + Send + Sync> = Arc::new(move || {
        let i = counter.fetch_add(1, Ordering::Relaxed);
        (i < count).then_some(i)
    });
    let path = Arc::new(format!("/queue/v1/events/{event}/join"));
    let join_tokens = Arc::clone(&tokens);
    let watch = CpuWatch::start(&target.watch)?;
    let (latencies, errors, elapsed) = drive(target, concurrency, next, move |mut conn, i| {
        let tokens = Arc::clone(&join_tokens);
        let path = Arc::clone(&path);
        async move {
            let outcome = conn
                .request(Method::POST, &path, Some(&tokens[i]), None)
                .await
                .map(|(s, _)| s);
            (conn, outcome)
        }
    })
    .await?;
    let cpu = watch.finish(latencies.count())?;
    Ok(Joined {
        tokens,
        latencies,
        errors,
        elapsed,
        cpu,
    })
}

async fn status(
    target: &Target,
    users: usize,
    concurrency: usize,
    seconds: u64,
) -> anyhow::Result<()> {
    let event = new_event(
        target,
        QueueSettings {
            admit_per_sec: 1,
            max_active: 1,
            admission_ttl_s: 300,
            challenge_difficulty: 0,
        },
    )
    .await?;
    eprintln!("joining {users} users…");
    let tokens = join_users(target, event, users, concurrency).await?.tokens;
    eprintln!("polling for {seconds}s…");
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let polls = Arc::new(AtomicUsize::new(0));
    let next: Arc<dyn Fn() -> Option<usize> + Send + Sync> = Arc::new(move || {
        (Instant::now() < deadline).then(|| polls.fetch_add(1, Ordering::Relaxed) % users)
    });
    let path = Arc::new(format!("/queue/v1/events/{event}/status"));
    let watch = CpuWatch::start(&target.watch)?;
    let (latencies, errors, elapsed) = drive(target, concurrency, next, move |mut conn, i| {
        let tokens = Arc::clone(&tokens);
        let path = Arc::clone(&path);
        async move {
            let outcome = conn
                .request(Method::GET, &path, Some(&tokens[i]), None)
                .await
                .map(|(s, _)| s);
            (conn, outcome)
        }
    })
    .await?;
    let cpu = watch.finish(latencies.count())?;
    report("status", &latencies, errors, elapsed, cpu)
}

#[derive(Debug, Serialize)]
struct TicksResult {
    bench: &'static str,
    ticks: u64,
    seconds: f64,
    per_sec: f64,
    admissions: u64,
    /// Mean tick duration as the gateways measured it.
    tick_mean_ms: f64,
    cpu: Vec<CpuUse>,
}

/// The sum of every series of `name` in a Prometheus text exposition.
pub(crate) fn metric_total(text: &str, name: &str) -> f64 {
    text.lines()
        .filter(|line| !line.starts_with('#'))
        .filter_map(|line| {
            let rest = line.strip_prefix(name)?;
            if !(rest.starts_with('{') || rest.starts_with(' ')) {
                return None;
            }
            line.rsplit(' ').next()?.parse::<f64>().ok()
        })
        .sum()
}

/// Ticks, their summed seconds and admissions, over every gateway.
async fn tick_counters(target: &Target) -> anyhow::Result<(f64, f64, f64)> {
    let mut totals = (0.0, 0.0, 0.0);
    for gateway in &target.gateway {
        let mut conn = Conn::open(*gateway, None).await?;
        let text = conn
            .expect(
                "metrics",
                StatusCode::OK,
                Method::GET,
                "/metrics",
                None,
                None,
            )
            .await?;
        let text = String::from_utf8_lossy(&text);
        totals.0 += metric_total(&text, "gateway_tick_duration_seconds_count");
        totals.1 += metric_total(&text, "gateway_tick_duration_seconds_sum");
        totals.2 += metric_total(&text, "gateway_admissions_total");
    }
    Ok(totals)
}

async fn ticks(
    target: &Target,
    users: usize,
    concurrency: usize,
    admit_per_sec: u32,
    seconds: u64,
) -> anyhow::Result<()> {
    let event = new_event(
        target,
        QueueSettings {
            admit_per_sec,
            max_active: 1_000_000,
            admission_ttl_s: 3600,
            challenge_difficulty: 0,
        },
    )
    .await?;
    eprintln!("joining {users} users…");
    join_users(target, event, users, concurrency).await?;
    eprintln!("watching the ticks for {seconds}s…");
    let before = tick_counters(target).await?;
    let watch = CpuWatch::start(&target.watch)?;
    let started = Instant::now();
    tokio::time::sleep(Duration::from_secs(seconds)).await;
    let after = tick_counters(target).await?;
    let elapsed = started.elapsed().as_secs_f64();
    let ticks = (after.0 - before.0).max(0.0) as u64;
    let cpu = watch.finish(ticks)?;
    let result = TicksResult {
        bench: "ticks",
        ticks,
        seconds: elapsed,
        per_sec: ticks as f64 / elapsed,
        admissions: (after.2 - before.2).max(0.0) as u64,
        tick_mean_ms: (after.1 - before.1) * 1e3 / ticks.max(1) as f64,
        cpu,
    };
    eprintln!(
        "ticks: {} in {elapsed:.1}s ({:.1}/s), {} admissions, {:.2} ms each on average",
        result.ticks, result.per_sec, result.admissions, result.tick_mean_ms
    );
    print_cpu(&result.cpu, "tick");
    print_result(&result)
}

/// Memory of a process (resident set), in KiB.
fn rss_kib(pid: u32) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    status_field(&status, "VmRSS").context("VmRSS")
}

/// The number a `/proc/PID/status` text gives for `name` (e.g. `VmRSS` in KiB, `Threads`).
pub(crate) fn status_field(status: &str, name: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(':'))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// What one shard reports, one JSON line on stdout.
#[derive(Debug, Default, Serialize, Deserialize)]
struct ShardReport {
    opened: u64,
    failed: u64,
    open_latency: Option<Summary>,
    /// Epoch microseconds at which each admitted frame arrived (admit benchmark).
    admitted_at_us: Vec<u64>,
    still_open: u64,
}

fn shard_users(users: usize, shards: usize, shard: usize) -> usize {
    users / shards + usize::from(shard < users % shards)
}

/// Joins `count` users and opens an authenticated socket for each; returns the sockets that
/// got their first position frame.
async fn open_sockets(
    target: &Target,
    event: EventId,
    count: usize,
    offset: usize,
) -> anyhow::Result<(Vec<socket::Socket>, Latencies, u64)> {
    // Join over HTTP (not measured).
    let Joined { tokens, errors, .. } = join_users(target, event, count, 32).await?;
    if !errors.is_empty() {
        eprintln!("join errors: {errors:?}");
    }
    let failed = Arc::new(AtomicU64::new(0));
    let opened = futures::stream::iter(0..count)
        .map(|i| {
            let tokens = Arc::clone(&tokens);
            let failed = Arc::clone(&failed);
            let gateway = target.gateway_for(offset + i);
            let source = target.source_for(offset + i);
            async move {
                let began = Instant::now();
                let result = async {
                    let mut s = socket::open(gateway, source, event, &tokens[i]).await?;
                    socket::next_frame(&mut s, Duration::from_secs(30)).await?;
                    anyhow::Ok(s)
                }
                .await;
                match result {
                    Ok(s) => Some((s, began.elapsed())),
                    Err(error) => {
                        if failed.fetch_add(1, Ordering::Relaxed) < 5 {
                            eprintln!("socket failed: {error:#}");
                        }
                        None
                    }
                }
            }
        })
        .buffer_unordered(256);
    use futures::StreamExt as _;
    let opened: Vec<_> = opened.collect().await;
    let mut latencies = Latencies::new();
    let sockets = opened
        .into_iter()
        .flatten()
        .map(|(s, took)| {
            latencies.record(took);
            s
        })
        .collect();
    Ok((sockets, latencies, failed.load(Ordering::Relaxed)))
}

/// Spawns `shards` copies of this benchmark as child processes; returns them with their
/// line readers.
fn spawn_shards(
    args: &[String],
    shards: usize,
    event: EventId,
) -> anyhow::Result<Vec<std::process::Child>> {
    let exe = std::env::current_exe()?;
    (0..shards)
        .map(|shard| {
            std::process::Command::new(&exe)
                .args(args)
                .arg("--shard")
                .arg(shard.to_string())
                .arg("--event")
                .arg(event.to_string())
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::inherit())
                .spawn()
                .context("spawning a shard")
        })
        .collect()
}

/// The parent's arguments, without the program name, for its shards.
fn own_args() -> Vec<String> {
    std::env::args().skip(1).collect()
}

fn read_line(child: &mut std::process::Child) -> anyhow::Result<ShardReport> {
    let stdout = child.stdout.as_mut().context("shard stdout")?;
    let mut reader = std::io::BufReader::new(stdout);
    let mut line = String::new();
    loop {
        line.clear();
        if reader.read_line(&mut line)? == 0 {
            bail!("a shard exited early");
        }
        if let Some(json) = line.trim().strip_prefix("SHARD ") {
            return Ok(serde_json::from_str(json)?);
        }
    }
}

fn shard_say(report: &ShardReport) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    writeln!(out, "SHARD {}", serde_json::to_string(report)?)?;
    out.flush()?;
    Ok(())
}

/// Waits for a line on stdin (the parent's go-ahead or its closing the pipe).
async fn parent_says() -> anyhow::Result<Option<String>> {
    let mut lines = tokio::io::BufReader::new(tokio::io::stdin()).lines();
    Ok(lines.next_line().await?)
}

async fn sockets(
    target: &Target,
    shards: &Shards,
    hold_secs: u64,
    pids: &[u32],
) -> anyhow::Result<()> {
    let event = new_event(
        target,
        QueueSettings {
            admit_per_sec: 1,
            max_active: 1,
            admission_ttl_s: 300,
            challenge_difficulty: 0,
        },
    )
    .await?;
    set_paused(target, event, true).await?;
    let before: Vec<u64> = pids
        .iter()
        .map(|&pid| rss_kib(pid))
        .collect::<Result<_, _>>()?;
    let started = Instant::now();
    let mut children = spawn_shards(&own_args(), shards.shards, event)?;
    let mut reports = Vec::new();
    for child in &mut children {
        reports.push(read_line(child)?);
    }
    let connected_in = started.elapsed();
    let opened: u64 = reports.iter().map(|r| r.opened).sum();
    let failed: u64 = reports.iter().map(|r| r.failed).sum();
    eprintln!(
        "{opened} sockets open ({failed} failed) in {:.1}s; holding {hold_secs}s…",
        connected_in.as_secs_f64()
    );
    tokio::time::sleep(Duration::from_secs(hold_secs)).await;
    let after: Vec<u64> = pids
        .iter()
        .map(|&pid| rss_kib(pid))
        .collect::<Result<_, _>>()?;
    let per_gateway = opened as f64 / pids.len().max(1) as f64;
    let per_socket_kib: Vec<f64> = before
        .iter()
        .zip(&after)
        .map(|(b, a)| (a.saturating_sub(*b)) as f64 / per_gateway.max(1.0))
        .collect();
    // Let the shards go and collect their final counts.
    for child in &mut children {
        drop(child.stdin.take());
    }
    let mut still_open = 0;
    for child in &mut children {
        still_open += read_line(child)?.still_open;
        child.wait()?;
    }
    #[derive(Serialize)]
    struct SocketsResult {
        bench: &'static str,
        sockets: u64,
        failed: u64,
        still_open_after_hold: u64,
        gateways: usize,
        connect_seconds: f64,
        rss_before_kib: Vec<u64>,
        rss_after_kib: Vec<u64>,
        rss_per_socket_kib: Vec<f64>,
        open_latency_p99_ms: Vec<f64>,
    }
    let result = SocketsResult {
        bench: "sockets",
        sockets: opened,
        failed,
        still_open_after_hold: still_open,
        gateways: target.gateway.len(),
        connect_seconds: connected_in.as_secs_f64(),
        rss_before_kib: before,
        rss_after_kib: after,
        rss_per_socket_kib: per_socket_kib,
        open_latency_p99_ms: reports
            .iter()
            .filter_map(|r| r.open_latency.map(|s| s.p99_ms))
            .collect(),
    };
    eprintln!(
        "sockets: {} open, {} still open after {hold_secs}s, RSS per socket (KiB) {:?}",
        result.sockets, result.still_open_after_hold, result.rss_per_socket_kib
    );
    print_result(&result)
}

async fn sockets_shard(
    target: &Target,
    shards: &Shards,
    shard: usize,
    event: EventId,
    users: usize,
) -> anyhow::Result<()> {
    let count = shard_users(users, shards.shards, shard);
    let offset = (0..shard)
        .map(|s| shard_users(users, shards.shards, s))
        .sum();
    let (sockets, latencies, failed) = open_sockets(target, event, count, offset).await?;
    shard_say(&ShardReport {
        opened: sockets.len() as u64,
        failed,
        open_latency: Some(latencies.summary()),
        ..ShardReport::default()
    })?;
    let open = Arc::new(AtomicU64::new(sockets.len() as u64));
    // Hold: drain frames (pings) until the parent lets go.
    let holders: Vec<_> = sockets
        .into_iter()
        .map(|mut s| {
            let open = Arc::clone(&open);
            tokio::spawn(async move {
                use futures::StreamExt as _;
                while let Some(message) = s.next().await {
                    if message.is_err() {
                        break;
                    }
                }
                open.fetch_sub(1, Ordering::Relaxed);
            })
        })
        .collect();
    parent_says().await?;
    let still_open = open.load(Ordering::Relaxed);
    for holder in holders {
        holder.abort();
    }
    shard_say(&ShardReport {
        still_open,
        ..ShardReport::default()
    })
}

async fn admit(target: &Target, shards: &Shards) -> anyhow::Result<()> {
    let queue = QueueSettings {
        admit_per_sec: 100_000,
        max_active: 1_000_000,
        admission_ttl_s: 300,
        challenge_difficulty: 0,
    };
    let event = new_event(target, queue).await?;
    set_paused(target, event, true).await?;
    let mut children = spawn_shards(&own_args(), shards.shards, event)?;
    let mut waiting = 0;
    for child in &mut children {
        waiting += read_line(child)?.opened;
    }
    eprintln!("{waiting} sockets waiting; resuming the queue…");
    tokio::time::sleep(Duration::from_secs(1)).await;
    let resumed_us = epoch_us();
    set_paused(target, event, false).await?;
    for child in &mut children {
        let stdin = child.stdin.as_mut().context("shard stdin")?;
        writeln!(stdin, "go")?;
    }
    let mut latencies = Latencies::new();
    let mut received = 0;
    for child in &mut children {
        let report = read_line(child)?;
        received += report.admitted_at_us.len();
        for at in report.admitted_at_us {
            latencies.record(Duration::from_micros(at.saturating_sub(resumed_us)));
        }
        child.wait()?;
    }
    #[derive(Serialize)]
    struct AdmitResult {
        bench: &'static str,
        waiting: u64,
        admitted_frames: usize,
        from_resume: Summary,
    }
    let result = AdmitResult {
        bench: "admit",
        waiting,
        admitted_frames: received,
        from_resume: latencies.summary(),
    };
    eprintln!(
        "admit: {received}/{waiting} admitted frames; from resume {}",
        result.from_resume
    );
    print_result(&result)
}

fn epoch_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
}

async fn admit_shard(
    target: &Target,
    shards: &Shards,
    shard: usize,
    event: EventId,
    users: usize,
) -> anyhow::Result<()> {
    let count = shard_users(users, shards.shards, shard);
    let offset = (0..shard)
        .map(|s| shard_users(users, shards.shards, s))
        .sum();
    let (sockets, latencies, failed) = open_sockets(target, event, count, offset).await?;
    let waiters: Vec<_> = sockets
        .into_iter()
        .map(|mut s| {
            tokio::spawn(async move {
                loop {
                    match socket::next_frame(&mut s, Duration::from_secs(60)).await {
                        Ok(ServerFrame::Admitted { .. }) => return Some(epoch_us()),
                        Ok(_) => {}
                        Err(_) => return None,
                    }
                }
            })
        })
        .collect();
    shard_say(&ShardReport {
        opened: waiters.len() as u64,
        failed,
        open_latency: Some(latencies.summary()),
        ..ShardReport::default()
    })?;
    parent_says().await?;
    let mut admitted_at_us = Vec::with_capacity(waiters.len());
    for waiter in waiters {
        if let Ok(Some(at)) = tokio::time::timeout(Duration::from_secs(30), waiter)
            .await
            .unwrap_or(Ok(None))
        {
            admitted_at_us.push(at);
        }
    }
    shard_say(&ShardReport {
        admitted_at_us,
        ..ShardReport::default()
    })
}

#[cfg(test)]
mod tests {
    use super::{metric_total, parse_watched, stat_cpu_seconds, status_field};

    #[test]
    fn cpu_times_are_read_after_the_command_name() {
        // A command name with spaces and a parenthesis, as a process may choose.
        let stat = "812 (redis (x) y) S 1 812 812 0 -1 4194560 5000 0 0 0 250 70 0 0 20 0 5 0";
        assert_eq!(stat_cpu_seconds(stat), Some(3.2));
        assert_eq!(stat_cpu_seconds("812 (redis) S 1"), None);
        assert!(parse_watched("redis=812").is_ok_and(|w| w.name == "redis" && w.pid == 812));
        assert!(parse_watched("redis").is_err());
        assert!(parse_watched("=812").is_err());
        assert!(parse_watched("redis=x").is_err());
    }

    #[test]
    fn metric_totals_add_every_series_of_exactly_that_name() {
        let text = "# TYPE gateway_admissions_total counter\n\
                    gateway_admissions_total{event=\"a\"} 3\n\
                    gateway_admissions_total{event=\"b\"} 4\n\
                    gateway_admissions_total_other 100\n\
                    gateway_tick_duration_seconds_count 12\n";
        assert!((metric_total(text, "gateway_admissions_total") - 7.0).abs() < 1e-9);
        assert!((metric_total(text, "gateway_tick_duration_seconds_count") - 12.0).abs() < 1e-9);
        assert!(metric_total(text, "missing").abs() < 1e-9);
    }

    #[test]
    fn proc_status_fields_are_read_by_exact_name() {
        let status = "Name:\tflash-api\nVmRSSX:\t1 kB\nVmRSS:\t  43012 kB\nThreads:\t8\n";
        assert_eq!(status_field(status, "VmRSS"), Some(43_012));
        assert_eq!(status_field(status, "Threads"), Some(8));
        assert_eq!(status_field(status, "VmHWM"), None);
        assert_eq!(status_field(status, "Name"), None, "not a number");
    }
}
