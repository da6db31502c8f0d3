//! `flash-drill bench logins`: a login flood against the api at whatever Argon2 cost it runs
//! (the benchmark script starts it at the production cost). Reports the api's resident
//! memory and threads (sampled every 100 ms), its answers by code, and the p99 of
//! `GET /api/v1/events` when idle and during the flood.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use hyper::{Method, StatusCode};
use serde::Serialize;
use tokio::sync::watch;

use crate::http::Conn;
use crate::stats::{Latencies, Summary};

#[derive(Clone, Debug, clap::Args)]
pub struct LoginsArgs {
    /// The api (host:port).
    #[arg(long, default_value = "127.0.0.1:4000")]
    pub api: SocketAddr,
    /// Logins in flight, each on a connection from a /24 of its own.
    #[arg(long, default_value_t = 1_000)]
    pub concurrency: usize,
    /// Seconds of flood.
    #[arg(long, default_value_t = 20)]
    pub seconds: u64,
    /// Seconds of `GET /api/v1/events` before the flood (the idle figure).
    #[arg(long, default_value_t = 5)]
    pub idle_seconds: u64,
    /// Connections asking `GET /api/v1/events`, one request at a time each.
    #[arg(long, default_value_t = 4)]
    pub probes: usize,
    /// The api's process id: its memory and threads are sampled.
    #[arg(long)]
    pub pid: Option<u32>,
    /// Nice value of the flood's threads (0–19). Above 0 the attackers' load generator, which
    /// shares this machine's cores with the api, yields them first, as an attacker on other
    /// machines would; the probe always runs at the process's priority.
    #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(i32).range(0..=19))]
    pub flood_nice: i32,
}

/// Runs the future `make` builds on a thread and runtime of their own (`threads` workers, a
/// current-thread runtime for 1), each thread at nice `nice`, so that it neither waits behind
/// this process's other tasks nor (with `nice` above 0) takes the CPU from them. `None` when
/// the runtime could not be built.
fn apart<T, F>(
    threads: usize,
    nice: i32,
    make: impl FnOnce() -> F + Send + 'static,
) -> tokio::task::JoinHandle<Option<T>>
where
    F: std::future::Future<Output = T>,
    T: Send + 'static,
{
    let (done, result) = tokio::sync::oneshot::channel();
    std::thread::spawn(move || {
        let lower = move || {
            let _ = flash_kit::priority::lower_this_thread(nice);
        };
        lower();
        let runtime = if threads <= 1 {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
        } else {
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(threads)
                .on_thread_start(lower)
                .enable_all()
                .build()
        };
        let _ = done.send(runtime.ok().map(|runtime| runtime.block_on(make())));
    });
    tokio::spawn(async move { result.await.ok().flatten() })
}

/// What a process used at most.
#[derive(Clone, Copy, Debug, Default, Serialize)]
struct Peak {
    rss_mib: f64,
    threads: u64,
}

fn sample(pid: u32) -> Option<Peak> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    Some(Peak {
        rss_mib: crate::bench::status_field(&status, "VmRSS")? as f64 / 1024.0,
        threads: crate::bench::status_field(&status, "Threads")?,
    })
}

/// [`probe`] [`apart`], so that its figures are the api's and not the wait behind the flood's
/// tasks in this process.
async fn probe_apart(
    api: SocketAddr,
    probes: usize,
    stop: watch::Receiver<bool>,
) -> (Latencies, u64) {
    apart(1, 0, move || probe(api, probes, stop))
        .await
        .ok()
        .flatten()
        .unwrap_or_else(|| (Latencies::new(), 1))
}

/// Asks `GET /api/v1/events` on `probes` connections until `stop`.
async fn probe(api: SocketAddr, probes: usize, stop: watch::Receiver<bool>) -> (Latencies, u64) {
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..probes {
        let stop = stop.clone();
        tasks.spawn(async move {
            let mut latencies = Latencies::new();
            let mut failed = 0u64;
            let mut conn: Option<Conn> = None;
            while !*stop.borrow() {
                if conn.as_ref().is_none_or(Conn::is_closed) {
                    conn = Conn::open(api, None).await.ok();
                }
                let Some(open) = conn.as_mut() else {
                    failed += 1;
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                };
                let sent = Instant::now();
                match open
                    .request(Method::GET, "/api/v1/events", None, None)
                    .await
                {
                    Ok((StatusCode::OK, _)) => latencies.record(sent.elapsed()),
                    Ok(_) => failed += 1,
                    Err(_) => {
                        failed += 1;
                        conn = None;
                    }
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            (latencies, failed)
        });
    }
    let mut all = Latencies::new();
    let mut failed = 0;
    while let Some(Ok((latencies, f))) = tasks.join_next().await {
        all.merge(&latencies);
        failed += f;
    }
    (all, failed)
}

#[derive(Debug, Serialize)]
struct Outcome {
    bench: &'static str,
    concurrency: usize,
    flood_nice: i32,
    seconds: f64,
    logins: u64,
    answers: BTreeMap<String, u64>,
    tokens: u64,
    events_idle: Summary,
    events_during: Summary,
    events_failed_during: u64,
    rss_before_mib: Option<f64>,
    rss_peak_mib: Option<f64>,
    threads_peak: Option<u64>,
}

/// Runs the benchmark and prints its table and `RESULT` line.
///
/// # Errors
/// When the api does not answer `GET /api/v1/events` before the flood.
pub async fn run(args: LoginsArgs) -> anyhow::Result<()> {
    let (stop_idle, idle_stop) = watch::channel(false);
    let idle = tokio::spawn(probe_apart(args.api, args.probes, idle_stop));
    tokio::time::sleep(Duration::from_secs(args.idle_seconds)).await;
    let _ = stop_idle.send(true);
    let (idle, idle_failed) = idle.await?;
    anyhow::ensure!(
        idle.summary().count > 0 && idle_failed == 0,
        "the api at {} did not answer GET /api/v1/events while idle",
        args.api
    );
    let before = args.pid.and_then(sample);

    let (stop, stopped) = watch::channel(false);
    let run = format!("bench{}", std::process::id());
    let flood = {
        let (api, connections, stop) = (args.api, args.concurrency, stopped.clone());
        apart(2, args.flood_nice, move || async move {
            crate::drill::hostile::login_flood(api, &run, connections, stop).await
        })
    };
    let during = tokio::spawn(probe_apart(args.api, args.probes, stopped.clone()));
    let sampler = {
        let mut stopped = stopped.clone();
        tokio::spawn(async move {
            let mut peak: Option<Peak> = None;
            while !*stopped.borrow() {
                if let Some(now) = args.pid.and_then(sample) {
                    let p = peak.get_or_insert(now);
                    p.rss_mib = p.rss_mib.max(now.rss_mib);
                    p.threads = p.threads.max(now.threads);
                }
                let _ = tokio::time::timeout(Duration::from_millis(100), stopped.changed()).await;
            }
            peak
        })
    };
    tokio::time::sleep(Duration::from_secs(args.seconds)).await;
    let _ = stop.send(true);
    let attack = flood
        .await?
        .context("no runtime could be built for the flood")?;
    let (during, failed_during) = during.await?;
    let peak = sampler.await?;

    let outcome = Outcome {
        bench: "logins",
        concurrency: args.concurrency,
        flood_nice: args.flood_nice,
        seconds: attack.seconds,
        logins: attack.tries,
        tokens: attack.gains.first().map_or(0, |g| g.got),
        answers: attack.answers,
        events_idle: idle.summary(),
        events_during: during.summary(),
        events_failed_during: failed_during,
        rss_before_mib: before.map(|b| b.rss_mib),
        rss_peak_mib: peak.map(|p| p.rss_mib),
        threads_peak: peak.map(|p| p.threads),
    };
    {
        use std::io::Write as _;
        let mut out = std::io::stdout().lock();
        writeln!(
            out,
            "logins: {} in {:.1}s from {} connections, answers {:?}",
            outcome.logins, outcome.seconds, outcome.concurrency, outcome.answers
        )?;
        writeln!(out, "GET /api/v1/events idle:   {}", outcome.events_idle)?;
        writeln!(
            out,
            "GET /api/v1/events during: {} ({} failed)",
            outcome.events_during, outcome.events_failed_during
        )?;
        if let (Some(before), Some(peak)) = (before, peak) {
            writeln!(
                out,
                "api memory: {:.0} MiB before, {:.0} MiB at most; threads at most {}",
                before.rss_mib, peak.rss_mib, peak.threads
            )?;
        }
    }
    crate::bench::print_result(&outcome)
}
