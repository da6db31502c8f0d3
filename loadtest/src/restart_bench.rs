//! `flash-drill bench restart`: one gateway of several is stopped (SIGTERM) while every buyer
//! holds a queue WebSocket, and its buyers come back to the other replicas as the web client
//! does after a close (`services/web/public/js/queue-client.js`):
//!
//! - after a 1012 (a restarting replica) it waits a random moment of up to
//!   `--client-jitter-ms` (the web client's 3 s; 0 for the client before issue #20), then
//!   polls `status` once over HTTP and, without waiting for that answer, opens a new socket
//!   after its first backoff (500 ms plus up to 30 %);
//! - after any other close, or a connection that simply ends, it polls at once and reconnects
//!   after the same backoff;
//! - a reconnection that fails (no first frame within 10 s, a close) polls at once and tries
//!   again after 1 s (plus up to 30 %); after the third failure it polls every 3 s (the first
//!   poll after up to 1 s) and tries the socket again after 30 s.
//!
//! What it measures: the reconnections (socket upgrades and status polls) arriving at the
//! remaining gateways, stamped by the client at the moment each one starts its connection,
//! counted per 100 ms and per second from the SIGTERM; when the last moved socket had its
//! first frame again; and that every one of them came back with its place (none lost). The
//! crowd is prepared through the real path: sign-ups and logins at the api (from many
//! addresses, as `flash-drill crowd`), an event created by the operator, joins and sockets at
//! the gateways (socket `i` on gateway `i mod N`), spread over child processes (a process may
//! hold at most 20,000 open files). Ends with one `RESULT {"bench":"restart",...}` line.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::net::{IpAddr, SocketAddr};
use std::process::Stdio;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context as _, bail, ensure};
use flash_protocol::EventId;
use flash_protocol::event::{NewEvent, QueueSettings};
use flash_protocol::queue::{QueuePatch, Ticket};
use flash_protocol::ws::{CLOSE_SERVICE_RESTART, ServerFrame};
use futures::StreamExt as _;
use hyper::{Method, StatusCode};
use rand::rngs::SmallRng;
use rand::{Rng as _, SeedableRng as _};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use tokio::io::{AsyncBufReadExt as _, AsyncWriteExt as _};
use tokio_tungstenite::tungstenite::Message;
use tokio_util::sync::CancellationToken;

use crate::crowd::{self, Member};
use crate::http::Conn;
use crate::socket;

/// Sockets per client process by default (a process may hold at most 20,000 open files; each
/// moved socket also needs its poll's connection and its new socket for a while).
const SOCKETS_PER_SHARD: usize = 5_000;
/// The web client's wait for a socket's first frame before it counts the attempt as failed.
const FIRST_FRAME: Duration = Duration::from_secs(10);
/// The web client: failed attempts in a row before it polls instead.
const FAILURES_BEFORE_POLLING: u32 = 3;
/// The web client, polling: a status call every 3 s, the socket tried again every 30 s; the
/// first poll after a random moment of up to 1 s.
const POLL_EVERY: Duration = Duration::from_secs(3);
const WS_RETRY_WHILE_POLLING: Duration = Duration::from_secs(30);
const FIRST_POLL_JITTER_MS: u64 = 1_000;
/// Longest wait for one status poll's answer.
const POLL_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Clone, Debug, clap::Args)]
pub struct RestartArgs {
    /// The api (host:port): the crowd signs up and logs in there, the operator creates the
    /// event there.
    #[arg(long, default_value = "127.0.0.1:4000")]
    pub api: SocketAddr,
    /// Gateway replicas, comma-separated (at least two); the FIRST one is stopped.
    #[arg(long, value_delimiter = ',', required = true)]
    pub gateway: Vec<SocketAddr>,
    /// Process id of the first gateway: it is sent SIGTERM once every socket is open.
    #[arg(long)]
    pub stop_pid: Option<u32>,
    /// Queue sockets held, one per buyer, spread over the gateways.
    #[arg(long, default_value_t = 10_000)]
    pub sockets: usize,
    /// Client processes (default: one per 5,000 sockets).
    #[arg(long)]
    pub shards: Option<usize>,
    /// Source addresses of the gateway connections, comma-separated (e.g. 127.0.0.2,…).
    #[arg(long, value_delimiter = ',')]
    pub source: Vec<IpAddr>,
    /// After a 1012, a client waits a random moment of up to this many ms before it polls and
    /// reconnects (the web client: 3,000; 0 for the client before issue #20).
    #[arg(long, default_value_t = 3_000)]
    pub client_jitter_ms: u64,
    /// The web client's first backoff before a reconnection (plus up to 30 %), doubling.
    #[arg(long, default_value_t = 500)]
    pub backoff_ms: u64,
    /// The stopped gateway's `WS_DRAIN_MS`, as it was started (reported; not set here).
    #[arg(long, default_value_t = 10_000)]
    pub drain_ms: u64,
    /// Seconds after the SIGTERM by which every moved socket must be back (else it is lost).
    #[arg(long, default_value_t = 90)]
    pub deadline_secs: u64,
    /// Sign-ups and logins in flight (over all client processes).
    #[arg(long, default_value_t = 64)]
    pub signup_concurrency: usize,
    /// The operator who creates the event.
    #[arg(long, env = "FLASH_ADMIN_EMAIL")]
    pub admin_email: Option<String>,
    #[arg(long, env = "FLASH_ADMIN_PASSWORD", hide_env_values = true)]
    pub admin_password: Option<String>,
    /// Internal: this process is shard `i` of a run (set by the parent).
    #[arg(long, hide = true)]
    pub shard: Option<usize>,
    /// Internal: the run's event (set by the parent).
    #[arg(long, hide = true)]
    pub event: Option<EventId>,
    /// Internal: the run's name, which makes its buyers' e-mails (set by the parent).
    #[arg(long, hide = true)]
    pub run: Option<String>,
}

/// The machine-readable result.
#[derive(Debug, Serialize)]
struct RestartResult {
    bench: &'static str,
    sockets: usize,
    gateways: usize,
    drain_ms: u64,
    client_jitter_ms: u64,
    peak_reconnects_per_100ms: u64,
    peak_reconnects_per_s: u64,
    /// From the SIGTERM to the last moved socket's first frame on another gateway.
    all_back_ms: Option<u64>,
    lost: usize,
    /// Sockets that were on the stopped gateway.
    moved: usize,
    peak_upgrades_per_100ms: u64,
    peak_polls_per_100ms: u64,
    upgrades: usize,
    polls: usize,
    failed_upgrades: u64,
    /// Status polls by HTTP status (0: no answer).
    poll_statuses: BTreeMap<u16, u64>,
    /// How the stopped gateway's sockets ended, by close code ("none": the connection ended
    /// without a close frame).
    closes: BTreeMap<String, u64>,
    first_close_ms: Option<u64>,
    last_close_ms: Option<u64>,
    /// When the stopped gateway's process was gone (or a zombie), from the SIGTERM.
    gateway_exit_ms: Option<u64>,
    /// Moved sockets whose first frame on the new gateway showed another number.
    place_changed: u64,
    /// Sockets on the other gateways that closed meanwhile (should be 0).
    others_closed: u64,
    /// Reconnections (upgrades + polls) in each second from the SIGTERM.
    per_second: Vec<u64>,
}

/// One client process's share of the run.
#[derive(Debug, Default, Serialize, Deserialize)]
struct ShardReport {
    opened: usize,
    failed: usize,
    moved: usize,
    tally: Tally,
    others_closed: u64,
}

/// What the moved buyers did after the stop (epoch µs).
#[derive(Debug, Default, Serialize, Deserialize)]
struct Tally {
    closes_us: Vec<u64>,
    close_codes: BTreeMap<String, u64>,
    polls_us: Vec<u64>,
    poll_statuses: BTreeMap<u16, u64>,
    upgrades_us: Vec<u64>,
    failed_upgrades: u64,
    back_us: Vec<u64>,
    place_changed: u64,
}

impl Tally {
    fn merge(&mut self, other: Self) {
        self.closes_us.extend(other.closes_us);
        for (code, n) in other.close_codes {
            *self.close_codes.entry(code).or_default() += n;
        }
        self.polls_us.extend(other.polls_us);
        for (status, n) in other.poll_statuses {
            *self.poll_statuses.entry(status).or_default() += n;
        }
        self.upgrades_us.extend(other.upgrades_us);
        self.failed_upgrades += other.failed_upgrades;
        self.back_us.extend(other.back_us);
        self.place_changed += other.place_changed;
    }
}

type Shared = Arc<Mutex<Tally>>;

fn record(tally: &Shared, write: impl FnOnce(&mut Tally)) {
    // A poisoned lock only means another task panicked mid-write; the counts stay usable.
    let mut tally = tally
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    write(&mut tally);
}

pub async fn run(args: RestartArgs) -> anyhow::Result<()> {
    match (args.shard, args.event, args.run.clone()) {
        (Some(shard), Some(event), Some(run)) => shard_main(&args, shard, event, &run).await,
        _ => parent(&args).await,
    }
}

fn epoch_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
}

/// How many arrivals fall in each `window_us` from `start_us` (arrivals before it are left
/// out); the last window is the one of the latest arrival.
#[must_use]
pub fn window_counts(arrivals_us: &[u64], start_us: u64, window_us: u64) -> Vec<u64> {
    let window = window_us.max(1);
    let mut counts: Vec<u64> = Vec::new();
    for &at in arrivals_us {
        let Some(since) = at.checked_sub(start_us) else {
            continue;
        };
        let slot = usize::try_from(since / window).unwrap_or(usize::MAX);
        if slot >= counts.len() {
            counts.resize(slot.saturating_add(1), 0);
        }
        counts[slot] += 1;
    }
    counts
}

/// The largest count of arrivals in one `window_us` from `start_us` (windows laid end to end).
#[must_use]
pub fn peak(arrivals_us: &[u64], start_us: u64, window_us: u64) -> u64 {
    window_counts(arrivals_us, start_us, window_us)
        .into_iter()
        .max()
        .unwrap_or(0)
}

/// The web client's wait before its next socket attempt after `failures` failures in a row
/// (`failed()` in queue-client.js): `base` doubling (at most 10 s) plus up to 30 % of it,
/// `draw` in [0, 1); `None` once it polls instead.
#[must_use]
pub fn web_backoff(failures: u32, base: Duration, draw: f64) -> Option<Duration> {
    if failures >= FAILURES_BEFORE_POLLING {
        return None;
    }
    let doubled = base
        .saturating_mul(1 << failures.saturating_sub(1).min(16))
        .min(Duration::from_secs(10));
    Some(doubled + doubled.mul_f64(0.3 * draw.clamp(0.0, 1.0)))
}

/// The share of `total` that client process `shard` of `shards` holds: (first index, count).
#[must_use]
pub fn share(total: usize, shards: usize, shard: usize) -> (usize, usize) {
    let shards = shards.max(1);
    let count = |s: usize| total / shards + usize::from(s < total % shards);
    ((0..shard).map(count).sum(), count(shard))
}

/// Milliseconds from `start_us` to `at_us` (0 if before).
fn ms_since(start_us: u64, at_us: u64) -> u64 {
    at_us.saturating_sub(start_us) / 1_000
}

// ---------------------------------------------------------------------------------------
// The parent: the event, the client processes, the SIGTERM, the figures.

async fn parent(args: &RestartArgs) -> anyhow::Result<()> {
    ensure!(
        args.gateway.len() >= 2,
        "at least two gateways: the first is stopped, the others take its sockets"
    );
    ensure!(args.sockets > 0, "no sockets to hold");
    let stop_pid = args
        .stop_pid
        .context("--stop-pid: the process id of the first gateway, which is stopped")?;
    let stop_pid = rustix::process::Pid::from_raw(i32::try_from(stop_pid)?)
        .context("--stop-pid: not a process id")?;
    let (Some(email), Some(password)) = (&args.admin_email, &args.admin_password) else {
        bail!("the operator's login: set FLASH_ADMIN_EMAIL and FLASH_ADMIN_PASSWORD");
    };
    let admin = crate::drill::login(args.api, email, password).await?;
    let event = create_event(args, &admin).await?;
    let run = format!("restart-{}-{}", epoch_us() / 1_000_000, std::process::id());
    let shards = shards_of(args);
    eprintln!(
        "event {event}; {shards} client processes sign up, join and open {} sockets over {} gateways…",
        args.sockets,
        args.gateway.len()
    );
    let started = std::time::Instant::now();
    let mut children = Vec::with_capacity(shards);
    for shard in 0..shards {
        children.push(Child::spawn(shard, event, &run)?);
    }
    let mut opened = 0;
    let mut failed = 0;
    let mut moved = 0;
    for child in &mut children {
        let ready = child.report().await?;
        opened += ready.opened;
        failed += ready.failed;
        moved += ready.moved;
    }
    eprintln!(
        "{opened} sockets open ({failed} failed), {moved} of them on {} (to be stopped), in {:.1}s",
        args.gateway[0],
        started.elapsed().as_secs_f64()
    );
    ensure!(
        opened == args.sockets && failed == 0,
        "only {opened} of {} sockets opened: not measuring a restart under fewer",
        args.sockets
    );
    // Let the openings' own traffic settle before the stop.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let stop_us = epoch_us();
    rustix::process::kill_process(stop_pid, rustix::process::Signal::TERM)
        .context("sending SIGTERM to the gateway")?;
    for child in &mut children {
        child.say(&format!("go {stop_us}")).await?;
    }
    eprintln!(
        "SIGTERM sent to {}; waiting for its sockets to come back elsewhere (at most {} s)…",
        args.gateway[0], args.deadline_secs
    );
    let exit_watch = tokio::spawn(watch_exit(stop_pid));
    let mut tally = Tally::default();
    let mut others_closed = 0;
    for child in &mut children {
        let report = child.report().await?;
        tally.merge(report.tally);
        others_closed += report.others_closed;
        child.wait().await?;
    }
    let gateway_exit_us = tokio::time::timeout(Duration::from_secs(5), exit_watch)
        .await
        .ok()
        .and_then(Result::ok);
    let arrivals: Vec<u64> = tally
        .polls_us
        .iter()
        .chain(&tally.upgrades_us)
        .copied()
        .collect();
    let lost = moved.saturating_sub(tally.back_us.len());
    let result = RestartResult {
        bench: "restart",
        sockets: opened,
        gateways: args.gateway.len(),
        drain_ms: args.drain_ms,
        client_jitter_ms: args.client_jitter_ms,
        peak_reconnects_per_100ms: peak(&arrivals, stop_us, 100_000),
        peak_reconnects_per_s: peak(&arrivals, stop_us, 1_000_000),
        all_back_ms: (lost == 0)
            .then(|| tally.back_us.iter().max().map(|&at| ms_since(stop_us, at)))
            .flatten(),
        lost,
        moved,
        peak_upgrades_per_100ms: peak(&tally.upgrades_us, stop_us, 100_000),
        peak_polls_per_100ms: peak(&tally.polls_us, stop_us, 100_000),
        upgrades: tally.upgrades_us.len(),
        polls: tally.polls_us.len(),
        failed_upgrades: tally.failed_upgrades,
        poll_statuses: tally.poll_statuses,
        closes: tally.close_codes,
        first_close_ms: tally
            .closes_us
            .iter()
            .min()
            .map(|&at| ms_since(stop_us, at)),
        last_close_ms: tally
            .closes_us
            .iter()
            .max()
            .map(|&at| ms_since(stop_us, at)),
        gateway_exit_ms: gateway_exit_us.map(|at| ms_since(stop_us, at)),
        place_changed: tally.place_changed,
        others_closed,
        per_second: window_counts(&arrivals, stop_us, 1_000_000),
    };
    eprintln!(
        "restart: {} of {} moved sockets back ({} lost) after {} ms; closes {:?} from {:?} to {:?} ms; gateway gone after {:?} ms",
        tally.back_us.len(),
        moved,
        result.lost,
        result
            .all_back_ms
            .map_or_else(|| "—".to_owned(), |ms| ms.to_string()),
        result.closes,
        result.first_close_ms,
        result.last_close_ms,
        result.gateway_exit_ms,
    );
    eprintln!(
        "reconnections at the remaining gateways: peak {} per 100 ms ({} upgrades, {} polls at their own peaks), {} per s; {} upgrades ({} failed), {} polls {:?}; per second: {:?}",
        result.peak_reconnects_per_100ms,
        result.peak_upgrades_per_100ms,
        result.peak_polls_per_100ms,
        result.peak_reconnects_per_s,
        result.upgrades,
        result.failed_upgrades,
        result.polls,
        result.poll_statuses,
        result.per_second,
    );
    eprintln!(
        "per 100 ms: {:?}",
        window_counts(&arrivals, stop_us, 100_000)
    );
    crate::bench::print_result(&result)?;
    ensure!(
        result.lost == 0,
        "{} moved sockets did not come back",
        result.lost
    );
    Ok(())
}

/// When the process is gone (or a zombie its parent has not reaped yet), in epoch µs.
async fn watch_exit(pid: rustix::process::Pid) -> u64 {
    loop {
        let gone = match std::fs::read_to_string(format!("/proc/{}/stat", pid.as_raw_nonzero())) {
            Ok(stat) => stat
                .rfind(')')
                .and_then(|end| stat[end + 1..].split_whitespace().next())
                .is_none_or(|state| state == "Z" || state == "X"),
            Err(_) => true,
        };
        if gone {
            return epoch_us();
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// One client process, speaking JSON lines (`SHARD {…}` on its stdout, `go US` on its stdin).
struct Child {
    process: tokio::process::Child,
    lines: tokio::io::Lines<tokio::io::BufReader<tokio::process::ChildStdout>>,
}

impl Child {
    fn spawn(shard: usize, event: EventId, run: &str) -> anyhow::Result<Self> {
        let mut process = tokio::process::Command::new(std::env::current_exe()?)
            .args(std::env::args().skip(1))
            .arg("--shard")
            .arg(shard.to_string())
            .arg("--event")
            .arg(event.to_string())
            .arg("--run")
            .arg(run)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .context("spawning a client process")?;
        let stdout = process.stdout.take().context("a client's stdout")?;
        Ok(Self {
            process,
            lines: tokio::io::BufReader::new(stdout).lines(),
        })
    }

    async fn report(&mut self) -> anyhow::Result<ShardReport> {
        while let Some(line) = self.lines.next_line().await? {
            if let Some(json) = line.trim().strip_prefix("SHARD ") {
                return serde_json::from_str(json).context("a client's report");
            }
        }
        bail!("a client process ended early")
    }

    async fn say(&mut self, line: &str) -> anyhow::Result<()> {
        let stdin = self.process.stdin.as_mut().context("a client's stdin")?;
        stdin.write_all(format!("{line}\n").as_bytes()).await?;
        stdin.flush().await?;
        Ok(())
    }

    async fn wait(&mut self) -> anyhow::Result<()> {
        drop(self.process.stdin.take());
        let status = self.process.wait().await?;
        ensure!(status.success(), "a client process failed: {status}");
        Ok(())
    }
}

/// Creates an on-sale event at the api, waits until every gateway knows it, and pauses its
/// queue (nobody is admitted: every buyer waits on a socket).
async fn create_event(args: &RestartArgs, admin: &str) -> anyhow::Result<EventId> {
    let now = OffsetDateTime::now_utc();
    let new = NewEvent {
        name: format!("Restart bench {}", now.unix_timestamp()),
        venue: "Loopback Arena".into(),
        starts_at: now + time::Duration::days(1),
        sale_opens_at: now,
        price_cents: 4_200,
        currency: "EUR".into(),
        inventory: 1_000,
        max_per_user: 2,
        queue: QueueSettings {
            admit_per_sec: 1,
            max_active: 1,
            admission_ttl_s: 300,
            challenge_difficulty: 0,
        },
        returns_until: None,
    };
    let event = crate::drill::publish_event(args.api, &args.gateway, admin, &new).await?;
    let path = format!("/queue/v1/admin/events/{}", event.id);
    let patch = QueuePatch {
        paused: Some(true),
        ..QueuePatch::default()
    };
    Conn::open(args.gateway[0], None)
        .await?
        .expect(
            "pausing the queue",
            StatusCode::OK,
            Method::PATCH,
            &path,
            Some(admin),
            Some(serde_json::to_vec(&patch)?),
        )
        .await?;
    Ok(event.id)
}

// ---------------------------------------------------------------------------------------
// A client process: its share of the buyers.

fn shard_say(report: &ShardReport) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    writeln!(out, "SHARD {}", serde_json::to_string(report)?)?;
    out.flush()?;
    Ok(())
}

/// A buyer with a socket open: its global index, the number it holds, the socket.
struct Holder {
    index: usize,
    member: Member,
    number: Option<u64>,
    socket: socket::Socket,
}

async fn shard_main(
    args: &RestartArgs,
    shard: usize,
    event: EventId,
    run: &str,
) -> anyhow::Result<()> {
    let shards = shards_of(args);
    ensure!(
        args.gateway.len() >= 2,
        "at least two gateways: the first is stopped, the others take its sockets"
    );
    let (first, count) = share(args.sockets, shards, shard);
    let indices: Vec<usize> = (first..first + count).collect();
    let concurrency = (args.signup_concurrency / shards).max(1);
    let crowd = crowd::sign_up_indices(args.api, run, &indices, concurrency).await?;
    ensure!(
        crowd.members.len() == count,
        "{} of {count} buyers signed up",
        crowd.members.len()
    );
    let members: Vec<(usize, Member)> = indices.into_iter().zip(crowd.members).collect();
    let numbers = join_all(args, event, &members).await?;
    let (holders, failed) = open_all(args, event, members, numbers).await;
    let stopped = args.gateway[0];
    let moved = holders
        .iter()
        .filter(|h| gateway_of(args, h.index) == stopped)
        .count();
    shard_say(&ShardReport {
        opened: holders.len(),
        failed,
        moved,
        ..ShardReport::default()
    })?;
    let tally: Shared = Arc::default();
    let back = Arc::new(AtomicUsize::new(0));
    let done = CancellationToken::new();
    let mut others = tokio::task::JoinSet::new();
    let mut movers = tokio::task::JoinSet::new();
    for holder in holders {
        if gateway_of(args, holder.index) == stopped {
            movers.spawn(come_back(
                args.clone(),
                event,
                holder,
                Arc::clone(&tally),
                Arc::clone(&back),
                done.clone(),
            ));
        } else {
            others.spawn(hold(holder.socket, done.clone()));
        }
    }
    // The parent's go-ahead, sent right after the SIGTERM, with its moment.
    let mut stdin = tokio::io::BufReader::new(tokio::io::stdin()).lines();
    let go = stdin.next_line().await?.context("the parent went away")?;
    let stop_us: u64 = go
        .strip_prefix("go ")
        .and_then(|us| us.trim().parse().ok())
        .context("expected `go EPOCH_US`")?;
    let deadline_us = stop_us + args.deadline_secs * 1_000_000;
    while back.load(Ordering::Acquire) < moved && epoch_us() < deadline_us {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Everyone back (or the deadline): a last second for the sockets on the other gateways to
    // show whether any of them closed, then let go.
    tokio::time::sleep(Duration::from_secs(1)).await;
    done.cancel();
    let mut others_closed = 0;
    while let Some(stayed) = others.join_next().await {
        if !stayed.unwrap_or(false) {
            others_closed += 1;
        }
    }
    movers.abort_all();
    while movers.join_next().await.is_some() {}
    let tally = std::mem::take(
        &mut *tally
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner),
    );
    shard_say(&ShardReport {
        tally,
        others_closed,
        ..ShardReport::default()
    })
}

/// Client processes: `--shards`, or one per [`SOCKETS_PER_SHARD`]; at least one, at most one
/// per socket.
fn shards_of(args: &RestartArgs) -> usize {
    args.shards
        .unwrap_or_else(|| args.sockets.div_ceil(SOCKETS_PER_SHARD))
        .clamp(1, args.sockets.max(1))
}

fn gateway_of(args: &RestartArgs, index: usize) -> SocketAddr {
    args.gateway[index % args.gateway.len()]
}

fn source_of(args: &RestartArgs, index: usize) -> Option<IpAddr> {
    (!args.source.is_empty()).then(|| args.source[index % args.source.len()])
}

/// Joins every member to the event on its gateway (keep-alive connections, 16 per gateway);
/// returns each one's number.
async fn join_all(
    args: &RestartArgs,
    event: EventId,
    members: &[(usize, Member)],
) -> anyhow::Result<Vec<Option<u64>>> {
    let path: Arc<str> = format!("/queue/v1/events/{event}/join").into();
    let members: Arc<[(usize, Member)]> = members.into();
    let numbers = Arc::new(Mutex::new(vec![None; members.len()]));
    let mut workers = tokio::task::JoinSet::new();
    for (g, gateway) in args.gateway.iter().copied().enumerate() {
        let mine: Arc<[usize]> = (0..members.len())
            .filter(|&k| gateway_of(args, members[k].0) == gateway)
            .collect();
        let next = Arc::new(AtomicUsize::new(0));
        for w in 0..16 {
            let (mine, next, members, numbers, path) = (
                Arc::clone(&mine),
                Arc::clone(&next),
                Arc::clone(&members),
                Arc::clone(&numbers),
                Arc::clone(&path),
            );
            let source = source_of(args, g * 16 + w);
            workers.spawn(async move {
                let mut conn = Conn::open(gateway, source).await?;
                loop {
                    let Some(&k) = mine.get(next.fetch_add(1, Ordering::Relaxed)) else {
                        return anyhow::Ok(());
                    };
                    let (index, member) = &members[k];
                    let mut pause = Duration::from_millis(100);
                    let ticket = loop {
                        if conn.is_closed() {
                            conn = Conn::open(gateway, source).await?;
                        }
                        let (status, body) = conn
                            .request(Method::POST, &path, Some(&member.access), None)
                            .await?;
                        if status == StatusCode::OK {
                            break serde_json::from_slice::<Ticket>(&body)
                                .with_context(|| format!("the join of buyer {index}"))?;
                        }
                        if status != StatusCode::TOO_MANY_REQUESTS
                            && status != StatusCode::SERVICE_UNAVAILABLE
                        {
                            bail!(
                                "the join of buyer {index}: {status} {}",
                                String::from_utf8_lossy(&body)
                            );
                        }
                        tokio::time::sleep(pause).await;
                        pause = (pause * 2).min(Duration::from_secs(2));
                    };
                    let mut numbers = numbers
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner);
                    numbers[k] = ticket.number;
                }
            });
        }
    }
    while let Some(done) = workers.join_next().await {
        done.context("a join worker panicked")??;
    }
    let numbers = std::mem::take(
        &mut *numbers
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner),
    );
    Ok(numbers)
}

/// Opens every member's socket on its gateway and reads its first frame (256 at a time);
/// returns the open ones and how many failed.
async fn open_all(
    args: &RestartArgs,
    event: EventId,
    members: Vec<(usize, Member)>,
    numbers: Vec<Option<u64>>,
) -> (Vec<Holder>, usize) {
    let opened: Vec<anyhow::Result<Holder>> =
        futures::stream::iter(members.into_iter().zip(numbers))
            .map(|((index, member), number)| async move {
                let mut socket = socket::open(
                    gateway_of(args, index),
                    source_of(args, index),
                    event,
                    &member.access,
                )
                .await?;
                socket::next_frame(&mut socket, Duration::from_secs(30)).await?;
                Ok(Holder {
                    index,
                    member,
                    number,
                    socket,
                })
            })
            .buffer_unordered(256)
            .collect()
            .await;
    let mut holders = Vec::with_capacity(opened.len());
    let mut failed = 0;
    for outcome in opened {
        match outcome {
            Ok(holder) => holders.push(holder),
            Err(error) => {
                failed += 1;
                if failed <= 5 {
                    eprintln!("a socket did not open: {error:#}");
                }
            }
        }
    }
    (holders, failed)
}

/// How a socket ended: its close code, or `None` when the connection ended without one.
async fn until_closed(socket: &mut socket::Socket) -> Option<u16> {
    while let Some(message) = socket.next().await {
        match message {
            Ok(Message::Close(frame)) => return frame.map(|f| u16::from(f.code)),
            Ok(_) => {}
            Err(_) => return None,
        }
    }
    None
}

/// Holds a socket until `done`; whether it was still open then.
async fn hold(mut socket: socket::Socket, done: CancellationToken) -> bool {
    tokio::select! {
        () = done.cancelled() => true,
        _ = until_closed(&mut socket) => false,
    }
}

/// One buyer of the stopped gateway: waits for its socket's end, then polls and reconnects
/// to another gateway as the web client does, and holds the new socket until `done`.
async fn come_back(
    args: RestartArgs,
    event: EventId,
    holder: Holder,
    tally: Shared,
    back: Arc<AtomicUsize>,
    done: CancellationToken,
) {
    let Holder {
        index,
        member,
        number,
        mut socket,
    } = holder;
    let code = until_closed(&mut socket).await;
    let closed_us = epoch_us();
    drop(socket);
    record(&tally, |t| {
        t.closes_us.push(closed_us);
        *t.close_codes
            .entry(code.map_or_else(|| "none".to_owned(), |c| c.to_string()))
            .or_default() += 1;
    });
    let seed =
        u64::try_from(index).unwrap_or(0) ^ (closed_us << 20) ^ u64::from(std::process::id());
    let mut rng = SmallRng::seed_from_u64(seed);
    // The remaining gateways, taken in turn (as a load balancer would spread them).
    let remaining: Vec<SocketAddr> = args.gateway[1..].to_vec();
    let target = |attempt: usize| remaining[(index + attempt) % remaining.len()];
    let source = source_of(&args, index);
    let poll = {
        let tally = Arc::clone(&tally);
        let path: Arc<str> = format!("/queue/v1/events/{event}/status").into();
        let token: Arc<str> = member.access.clone().into();
        move |gateway: SocketAddr| {
            let (tally, path, token) = (Arc::clone(&tally), Arc::clone(&path), Arc::clone(&token));
            // Not awaited by the reconnection, as the web client's `pollOnce()` is not.
            tokio::spawn(async move {
                record(&tally, |t| t.polls_us.push(epoch_us()));
                let answer = tokio::time::timeout(POLL_TIMEOUT, async {
                    let mut conn = Conn::open(gateway, source).await?;
                    conn.request(Method::GET, &path, Some(&token), None).await
                })
                .await;
                let status = match answer {
                    Ok(Ok((status, _))) => status.as_u16(),
                    _ => 0,
                };
                record(&tally, |t| *t.poll_statuses.entry(status).or_default() += 1);
            });
        }
    };
    if code == Some(CLOSE_SERVICE_RESTART) && args.client_jitter_ms > 0 {
        let wait = rng.random_range(0..args.client_jitter_ms);
        tokio::time::sleep(Duration::from_millis(wait)).await;
    }
    poll(target(0));
    let base = Duration::from_millis(args.backoff_ms);
    let mut failures: u32 = 1;
    let mut attempt = 0;
    loop {
        match web_backoff(failures, base, rng.random::<f64>()) {
            Some(wait) => tokio::time::sleep(wait).await,
            None => {
                // Polling: a status call after up to 1 s, then every 3 s; the socket again
                // after 30 s.
                let retry_at = tokio::time::Instant::now() + WS_RETRY_WHILE_POLLING;
                let mut next_poll = tokio::time::Instant::now()
                    + Duration::from_millis(rng.random_range(0..FIRST_POLL_JITTER_MS));
                while next_poll < retry_at {
                    tokio::time::sleep_until(next_poll).await;
                    poll(target(attempt));
                    next_poll += POLL_EVERY;
                }
                tokio::time::sleep_until(retry_at).await;
            }
        }
        let gateway = target(attempt);
        record(&tally, |t| t.upgrades_us.push(epoch_us()));
        let opened = async {
            let mut socket = socket::open(gateway, source, event, &member.access).await?;
            let frame = socket::next_frame(&mut socket, FIRST_FRAME).await?;
            anyhow::Ok((socket, frame))
        }
        .await;
        match opened {
            Ok((socket, frame)) => {
                let at = epoch_us();
                let changed = match frame {
                    ServerFrame::Position { number: now, .. } => now != number,
                    _ => true,
                };
                record(&tally, |t| {
                    t.back_us.push(at);
                    t.place_changed += u64::from(changed);
                });
                back.fetch_add(1, Ordering::Release);
                hold(socket, done).await;
                return;
            }
            Err(_) => {
                record(&tally, |t| t.failed_upgrades += 1);
                // The web client: a failed attempt polls at once and backs off further.
                failures += 1;
                attempt += 1;
                poll(target(attempt));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arrivals_are_counted_per_window_from_the_stop() {
        let start = 1_000_000;
        // Before the stop (left out), two in the first 100 ms, none in the second, three in
        // the third (its edge included), one much later.
        let arrivals = [
            999_999, 1_000_000, 1_099_999, 1_200_000, 1_250_000, 1_299_999, 2_000_000,
        ];
        assert_eq!(
            window_counts(&arrivals, start, 100_000),
            vec![2, 0, 3, 0, 0, 0, 0, 0, 0, 0, 1]
        );
        assert_eq!(peak(&arrivals, start, 100_000), 3);
        assert_eq!(window_counts(&arrivals, start, 1_000_000), vec![5, 1]);
        assert_eq!(peak(&arrivals, start, 1_000_000), 5);
        assert_eq!(peak(&[], start, 100_000), 0);
        assert_eq!(peak(&[5], start, 100_000), 0, "only before the stop");
        assert_eq!(
            window_counts(&[start], start, 0),
            vec![1],
            "a zero window is 1 µs"
        );
    }

    #[test]
    fn the_backoff_is_the_web_clients() {
        let base = Duration::from_millis(500);
        assert_eq!(web_backoff(1, base, 0.0), Some(Duration::from_millis(500)));
        assert_eq!(web_backoff(1, base, 1.0), Some(Duration::from_millis(650)));
        assert_eq!(
            web_backoff(2, base, 0.0),
            Some(Duration::from_millis(1_000))
        );
        assert_eq!(
            web_backoff(2, base, 0.5),
            Some(Duration::from_millis(1_150))
        );
        assert_eq!(
            web_backoff(3, base, 0.0),
            None,
            "polls after three failures"
        );
        assert_eq!(
            web_backoff(2, Duration::from_secs(8), 0.0),
            Some(Duration::from_secs(10)),
            "at most 10 s before the jitter"
        );
        assert_eq!(web_backoff(1, base, 7.0), Some(Duration::from_millis(650)));
    }

    #[test]
    fn shares_cover_every_socket_once() {
        for (total, shards) in [(10_000, 2), (10_001, 3), (5, 8), (0, 1), (7, 0)] {
            let shards_used = shards.max(1);
            let mut next = 0;
            for shard in 0..shards_used {
                let (first, count) = share(total, shards, shard);
                assert_eq!(first, next, "{total} over {shards}");
                next += count;
            }
            assert_eq!(next, total);
        }
        assert_eq!(share(10_000, 2, 1), (5_000, 5_000));
        assert_eq!(share(10_001, 3, 0), (0, 3_334));
    }

    #[test]
    fn milliseconds_since_the_stop_never_go_negative() {
        assert_eq!(ms_since(10_000, 9_000), 0);
        assert_eq!(ms_since(10_000, 1_510_000), 1_500);
    }
}
