//! `flash-drill bench join-script`: what Redis spends on a join when nothing else wants the
//! machine's cores. Joins buyers to an open queue straight through the gateway's own waiting
//! room (its join script, in batches the size the gateway's coalescer sends, one call at a
//! time), and reads around them Redis's CPU (from `/proc`, when Redis runs here) and Redis's
//! own account of the script calls (`INFO commandstats`: their time includes the commands
//! they make).

use std::time::Instant;

use anyhow::Context as _;
use flash_gateway::waiting_room::{EventAnnouncement, Settings, WaitingRoom};
use flash_kit::stores::{RedisMode, connect_redis_in};
use flash_protocol::event::{EventStatus, QueueSettings};
use flash_protocol::keys::RedisKeys;
use flash_protocol::{EventId, UserId};
use serde::Serialize;
use time::OffsetDateTime;

use crate::bench::{CpuUse, CpuWatch, Watched, print_cpu};

#[derive(Clone, Debug, clap::Args)]
pub struct JoinScriptArgs {
    /// Redis holding the queue.
    #[arg(long, env = "REDIS_URL", default_value = "redis://127.0.0.1:6379")]
    pub redis_url: String,
    /// Key prefix of this run (its keys are the caller's to delete).
    #[arg(long, env = "REDIS_KEY_PREFIX", default_value = "join-script-bench:")]
    pub key_prefix: String,
    /// Buyers joining.
    #[arg(long, default_value_t = 100_000)]
    pub users: usize,
    /// Buyers per script call: 24 is what one gateway's coalescer sent on average under
    /// `gateway.sh joins` (4,178 calls for 100,000 joins in `INFO commandstats`).
    #[arg(long, default_value_t = 24)]
    pub batch: usize,
}

#[derive(Debug, Serialize)]
struct JoinScriptResult {
    bench: &'static str,
    users: usize,
    batch: usize,
    joins_per_sec: f64,
    /// Redis's CPU per join (from `/proc`) and this process's, when Redis runs here.
    cpu: Vec<CpuUse>,
    /// Time Redis counted in the join script per join, the commands it makes included.
    script_us_per_join: f64,
    script_calls: u64,
}

/// `calls` and `usec` of `EVALSHA` in an `INFO commandstats` answer.
fn evalsha_stats(info: &str) -> Option<(u64, u64)> {
    let line = info
        .lines()
        .find_map(|line| line.trim().strip_prefix("cmdstat_evalsha:"))?;
    let field = |name: &str| {
        line.split(',')
            .find_map(|pair| pair.strip_prefix(name)?.strip_prefix('='))
            .and_then(|value| value.parse().ok())
    };
    Some((field("calls")?, field("usec")?))
}

async fn info(
    conn: &mut redis::aio::MultiplexedConnection,
    section: &str,
) -> anyhow::Result<String> {
    Ok(redis::cmd("INFO").arg(section).query_async(conn).await?)
}

/// Redis's process id, when it runs on this machine.
fn local_pid(server_info: &str) -> Option<u32> {
    let pid = server_info
        .lines()
        .find_map(|line| line.trim().strip_prefix("process_id:"))?
        .parse()
        .ok()?;
    std::path::Path::new(&format!("/proc/{pid}/stat"))
        .exists()
        .then_some(pid)
}

pub async fn run(args: JoinScriptArgs) -> anyhow::Result<()> {
    anyhow::ensure!(args.batch > 0, "--batch must be at least 1");
    let keys = RedisKeys::new(args.key_prefix.clone())?;
    let room = WaitingRoom::new(
        connect_redis_in(&args.redis_url, RedisMode::Node).await?,
        keys,
    );
    let mut redis = redis::Client::open(args.redis_url.as_str())?
        .get_multiplexed_async_connection()
        .await?;
    let event = EventId::new_v7();
    room.upsert(&EventAnnouncement {
        event,
        name: "Join script benchmark".into(),
        sale_opens_at: OffsetDateTime::now_utc() - time::Duration::minutes(1),
        status: EventStatus::OnSale,
        settings: Settings::Initial(QueueSettings {
            admit_per_sec: 1,
            max_active: 1,
            admission_ttl_s: 600,
            challenge_difficulty: 0,
        }),
        remaining: None,
    })
    .await?;
    // One admission tick opens the queue, as a gateway's ticker would (joins are then
    // numbered in its numbers list); the first join loads the script.
    room.tick(event).await.context("opening tick")?;
    let users: Vec<UserId> = (0..=args.users).map(|_| UserId::new_v7()).collect();
    room.join_many(event, &users[..1]).await.context("join")?;

    let watched: Vec<Watched> = local_pid(&info(&mut redis, "server").await?)
        .map(|pid| Watched {
            name: "redis".into(),
            pid,
        })
        .into_iter()
        .collect();
    let (calls_before, usec_before) =
        evalsha_stats(&info(&mut redis, "commandstats").await?).unwrap_or_default();
    let watch = CpuWatch::start(&watched)?;
    let began = Instant::now();
    for batch in users[1..].chunks(args.batch) {
        room.join_many(event, batch).await.context("join")?;
    }
    let seconds = began.elapsed().as_secs_f64();
    let cpu = watch.finish(args.users as u64)?;
    let (calls_after, usec_after) = evalsha_stats(&info(&mut redis, "commandstats").await?)
        .context("no EVALSHA in INFO commandstats")?;

    let joined = args.users.max(1) as f64;
    let result = JoinScriptResult {
        bench: "join-script",
        users: args.users,
        batch: args.batch,
        joins_per_sec: joined / seconds.max(1e-9),
        cpu,
        script_us_per_join: usec_after.saturating_sub(usec_before) as f64 / joined,
        script_calls: calls_after.saturating_sub(calls_before),
    };
    eprintln!(
        "join script: {} joins in batches of {} at {:.0}/s; Redis counted {:.2} µs per join in the script",
        result.users, result.batch, result.joins_per_sec, result.script_us_per_join,
    );
    print_cpu(&result.cpu, "join");
    crate::bench::print_result(&result)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn evalsha_figures_are_read_from_commandstats() {
        let info = "# Commandstats\r\ncmdstat_hset:calls=9,usec=70,usec_per_call=7.78,rejected_calls=0,failed_calls=0\r\n\
                    cmdstat_evalsha:calls=4178,usec=501579,usec_per_call=120.05,rejected_calls=0,failed_calls=0\r\n";
        assert_eq!(evalsha_stats(info), Some((4178, 501_579)));
        assert_eq!(evalsha_stats("# Commandstats\r\n"), None);
        assert_eq!(local_pid("process_id:notanumber\r\n"), None);
    }
}
