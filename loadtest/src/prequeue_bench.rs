//! `flash-drill bench prequeue`: opening a pre-queue of a million. Fills one event's pre-queue
//! straight into Redis through the gateway's own waiting room (the join script, in batches),
//! opens it with the gateway's own admission tickers (several, as replicas would), and
//! reports the longest Redis command meanwhile (from `SLOWLOG`), the time from the opening
//! time to the first admission, how long numbering took, and whether 1…N were each given once
//! in the draw's order.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail, ensure};
use flash_gateway::waiting_room::{EventAnnouncement, Settings, WaitingRoom};
use flash_kit::stores::{RedisMode, connect_redis_in};
use flash_protocol::event::{EventStatus, QueueSettings};
use flash_protocol::keys::RedisKeys;
use flash_protocol::{EventId, UserId};
use futures::StreamExt as _;
use serde::Serialize;
use time::OffsetDateTime;
use tokio_util::sync::CancellationToken;

#[derive(Clone, Debug, clap::Args)]
pub struct PrequeueArgs {
    /// Redis holding the queue.
    #[arg(long, env = "REDIS_URL", default_value = "redis://127.0.0.1:6379")]
    pub redis_url: String,
    /// Key prefix of this run (its keys are the caller's to delete).
    #[arg(long, env = "REDIS_KEY_PREFIX", default_value = "prequeue-bench:")]
    pub key_prefix: String,
    /// Buyers in the pre-queue.
    #[arg(long, default_value_t = 1_000_000)]
    pub users: usize,
    /// Admission tickers (gateway replicas) opening it at once.
    #[arg(long, default_value_t = 2)]
    pub tickers: usize,
    /// The tickers' period (the gateway's `TICK_INTERVAL_MS`).
    #[arg(long, default_value_t = 100)]
    pub tick_ms: u64,
    /// Admissions per second once open.
    #[arg(long, default_value_t = 500)]
    pub admit_per_sec: u32,
    /// Commands slower than this many µs are logged during the opening (SLOWLOG).
    #[arg(long, default_value_t = 1_000)]
    pub slowlog_us: u64,
    /// Writes every logged command's duration (µs, oldest first) to this file.
    #[arg(long)]
    pub slowlog_file: Option<std::path::PathBuf>,
    /// Longest wait for the whole pre-queue to be numbered, in seconds.
    #[arg(long, default_value_t = 300)]
    pub timeout_secs: u64,
}

#[derive(Debug, Serialize)]
struct PrequeueResult {
    bench: &'static str,
    n: usize,
    tickers: usize,
    chunk: u32,
    fill_per_sec: f64,
    max_command_ms: f64,
    max_command: String,
    commands_over_5ms: usize,
    first_admission_ms: i64,
    numbering_ms: i64,
    numbered_once: bool,
    in_draw_order: bool,
}

/// Joins `users` in batches, several calls in flight, as the gateway's coalescer would.
async fn fill(room: &WaitingRoom, event: EventId, users: &[UserId]) -> anyhow::Result<()> {
    let mut calls = futures::stream::iter(users.chunks(1_000))
        .map(|batch| room.join_many(event, batch))
        .buffer_unordered(4);
    while let Some(answers) = calls.next().await {
        answers.context("join")?;
    }
    Ok(())
}

async fn query<T: redis::FromRedisValue>(
    conn: &mut redis::aio::MultiplexedConnection,
    cmd: &redis::Cmd,
) -> anyhow::Result<T> {
    Ok(cmd.query_async(conn).await?)
}

pub async fn run(args: PrequeueArgs) -> anyhow::Result<()> {
    let keys = RedisKeys::new(args.key_prefix.clone())?;
    let room = WaitingRoom::new(
        connect_redis_in(&args.redis_url, RedisMode::Node).await?,
        keys.clone(),
    );
    let mut redis = redis::Client::open(args.redis_url.as_str())?
        .get_multiplexed_async_connection()
        .await?;
    let event = EventId::new_v7();
    let k = keys.queue(event);
    let announce = |opens_in: time::Duration| EventAnnouncement {
        event,
        name: "Pre-queue benchmark".into(),
        sale_opens_at: OffsetDateTime::now_utc() + opens_in,
        status: EventStatus::Scheduled,
        settings: Settings::Initial(QueueSettings {
            admit_per_sec: args.admit_per_sec,
            max_active: 1_000_000,
            admission_ttl_s: 600,
            challenge_difficulty: 0,
        }),
        remaining: None,
    };
    room.upsert(&announce(time::Duration::hours(1))).await?;

    let users: Vec<UserId> = (0..args.users).map(|_| UserId::new_v7()).collect();
    eprintln!("filling a pre-queue of {}…", users.len());
    let began = Instant::now();
    fill(&room, event, &users).await?;
    let fill_per_sec = users.len() as f64 / began.elapsed().as_secs_f64();
    eprintln!("filled at {fill_per_sec:.0} joins/s; opening…");

    // Every command over 1 ms from here on is logged.
    let config = |name: &str| redis::cmd("CONFIG").arg("GET").arg(name).clone();
    let saved: Vec<(String, String)> = [
        query::<Vec<String>>(&mut redis, &config("slowlog-log-slower-than")).await?,
        query::<Vec<String>>(&mut redis, &config("slowlog-max-len")).await?,
    ]
    .into_iter()
    .filter_map(|pair| match pair.as_slice() {
        [name, value] => Some((name.clone(), value.clone())),
        _ => None,
    })
    .collect();
    let set =
        |name: &str, value: &str| redis::cmd("CONFIG").arg("SET").arg(name).arg(value).clone();
    query::<()>(
        &mut redis,
        &set("slowlog-log-slower-than", &args.slowlog_us.to_string()),
    )
    .await?;
    query::<()>(&mut redis, &set("slowlog-max-len", "100000")).await?;
    query::<()>(&mut redis, redis::cmd("SLOWLOG").arg("RESET")).await?;

    let outcome = open_and_watch(&args, &room, &mut redis, event, &announce).await;
    let slow: anyhow::Result<Vec<redis::Value>> =
        query(&mut redis, redis::cmd("SLOWLOG").arg("GET").arg(100_000)).await;
    // The server's settings are put back whatever happened.
    for (name, value) in &saved {
        query::<()>(&mut redis, &set(name, value)).await?;
    }
    query::<()>(&mut redis, redis::cmd("SLOWLOG").arg("RESET")).await?;
    let slow = slow?;
    let (first_admission_ms, numbering_ms) = outcome?;

    let (max_command_us, max_command, over_5ms) = longest(&slow);
    if let Some(path) = &args.slowlog_file {
        let lines: String = slow
            .iter()
            .rev()
            .filter_map(|entry| match entry {
                redis::Value::Array(fields) => match (fields.get(2), fields.get(3)) {
                    (Some(redis::Value::Int(us)), Some(redis::Value::Array(argv))) => {
                        Some(format!("{us} {}\n", argv.len()))
                    }
                    _ => None,
                },
                _ => None,
            })
            .collect();
        std::fs::write(path, lines)?;
    }
    eprintln!("checking the numbers…");
    let (numbered_once, in_draw_order) = check(&mut redis, &k, users.len()).await?;
    let result = PrequeueResult {
        bench: "prequeue",
        n: users.len(),
        tickers: args.tickers,
        chunk: flash_gateway::waiting_room::OPENING_CHUNK,
        fill_per_sec: fill_per_sec.round(),
        max_command_ms: max_command_us as f64 / 1000.0,
        max_command,
        commands_over_5ms: over_5ms,
        first_admission_ms,
        numbering_ms,
        numbered_once,
        in_draw_order,
    };
    eprintln!(
        "longest command {:.2} ms ({}), {} over 5 ms; first admission {} ms after the opening \
         time; numbered in {} ms; 1…N once: {}, in the draw's order: {}",
        result.max_command_ms,
        result.max_command,
        result.commands_over_5ms,
        result.first_admission_ms,
        result.numbering_ms,
        result.numbered_once,
        result.in_draw_order
    );
    crate::bench::print_result(&result)?;
    ensure!(
        numbered_once && in_draw_order,
        "the pre-queue was not numbered once in the draw's order"
    );
    Ok(())
}

/// Opens the queue with the gateway's tickers and waits until it is numbered: (ms from the
/// opening time to the first admission, ms from the opening time to the last number).
async fn open_and_watch(
    args: &PrequeueArgs,
    room: &WaitingRoom,
    redis: &mut redis::aio::MultiplexedConnection,
    event: EventId,
    announce: &dyn Fn(time::Duration) -> EventAnnouncement,
) -> anyhow::Result<(i64, i64)> {
    let k = room.keys().queue(event);
    let stop = CancellationToken::new();
    let tickers: Vec<_> = (0..args.tickers)
        .map(|_| {
            tokio::spawn(flash_gateway::ticker::run(
                room.clone(),
                Duration::from_millis(args.tick_ms),
                Arc::default(),
                stop.clone(),
            ))
        })
        .collect();
    let _stop = stop.clone().drop_guard();
    room.upsert(&announce(time::Duration::ZERO)).await?;
    let opens_at_ms: i64 =
        query(redis, redis::cmd("HGET").arg(&k.config).arg("opens_at_ms")).await?;
    let deadline = Instant::now() + Duration::from_secs(args.timeout_secs);
    let mut first_admission_ms = None;
    loop {
        let (state, admitted_at): (Option<String>, Option<i64>) = redis::pipe()
            .cmd("HGET")
            .arg(&k.config)
            .arg("state")
            .cmd("HGET")
            .arg(&k.admitted_at)
            .arg(
                query::<Option<String>>(redis, redis::cmd("HGET").arg(&k.by_number).arg(1))
                    .await?
                    .unwrap_or_default(),
            )
            .query_async(redis)
            .await?;
        if first_admission_ms.is_none()
            && let Some(at) = admitted_at
        {
            first_admission_ms = Some(at - opens_at_ms);
        }
        if state.as_deref() == Some("open") && first_admission_ms.is_some() {
            break;
        }
        if Instant::now() > deadline {
            bail!(
                "not numbered within {} s (state {state:?})",
                args.timeout_secs
            );
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let done_ms = OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000;
    stop.cancel();
    for ticker in tickers {
        ticker.await?;
    }
    Ok((
        first_admission_ms.unwrap_or_default(),
        i64::try_from(done_ms).unwrap_or(i64::MAX) - opens_at_ms,
    ))
}

/// The longest command in a `SLOWLOG GET` answer (µs, its name), and how many took over 5 ms.
fn longest(entries: &[redis::Value]) -> (i64, String, usize) {
    let mut max = (0, String::new());
    let mut over = 0;
    for entry in entries {
        let redis::Value::Array(fields) = entry else {
            continue;
        };
        let (Some(redis::Value::Int(us)), Some(redis::Value::Array(argv))) =
            (fields.get(2), fields.get(3))
        else {
            continue;
        };
        over += usize::from(*us > 5_000);
        if *us > max.0 {
            // The command and, for a script, its number of keys (which tells the scripts
            // apart: the tick has 12).
            let name = argv
                .iter()
                .take(3)
                .enumerate()
                .filter(|(i, _)| *i != 1)
                .filter_map(|(_, arg)| match arg {
                    redis::Value::BulkString(bytes) => Some(String::from_utf8_lossy(bytes)),
                    _ => None,
                })
                .collect::<Vec<_>>()
                .join(" ");
            max = (*us, name);
        }
    }
    (max.0, max.1, over)
}

/// Whether numbers 1…n were each given to one user, and in the draw's order (the draw's
/// i-th member holds number i).
async fn check(
    redis: &mut redis::aio::MultiplexedConnection,
    k: &flash_protocol::keys::QueueKeys,
    n: usize,
) -> anyhow::Result<(bool, bool)> {
    const STEP: usize = 10_000;
    let mut seen = HashSet::with_capacity(n);
    let mut once = true;
    let mut in_order = true;
    for from in (1..=n).step_by(STEP) {
        let to = (from + STEP - 1).min(n);
        let holders: Vec<Option<String>> = query(
            redis,
            redis::cmd("HMGET")
                .arg(&k.by_number)
                .arg((from..=to).collect::<Vec<_>>()),
        )
        .await?;
        let drawn: Vec<String> = query(
            redis,
            redis::cmd("ZRANGE").arg(&k.draw).arg(from - 1).arg(to - 1),
        )
        .await?;
        in_order &= drawn.len() == holders.len();
        for (holder, member) in holders.iter().zip(&drawn) {
            let Some(holder) = holder else {
                once = false;
                continue;
            };
            once &= seen.insert(holder.clone());
            in_order &= member.get(64..) == Some(holder.as_str());
        }
    }
    let count: usize = query(redis, redis::cmd("HLEN").arg(&k.by_number)).await?;
    Ok((once && seen.len() == n && count == n, in_order))
}
