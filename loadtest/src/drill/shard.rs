//! A drill process's share of the crowd (a shard): it signs its buyers up, says it is ready,
//! waits for the go with t = 0, runs every visit, reports progress while they run, and hands
//! back the records. The parent runs one shard in its own process, or several as child
//! processes (a process may hold at most 20,000 open files) that speak JSON lines on
//! stdin/stdout.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::Context as _;
use flash_protocol::EventId;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt as _, AsyncWriteExt as _};
use tokio::sync::{mpsc, oneshot};

use super::buyer::{Ctx, Record, visit};
use super::client::{TallyInner, Targets};
use super::plan::{Behaviour, Schedule};
use super::progress::Snapshot;
use crate::crowd;

/// Everything a shard needs to know before the go.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ShardPlan {
    pub shard: usize,
    pub shards: usize,
    /// Distinguishes this drill's crowd from earlier ones.
    pub run: String,
    pub targets: Targets,
    pub behaviour: Behaviour,
    pub schedule: Schedule,
    pub signup_concurrency: usize,
    /// Seconds after t = 0 at which buyers still waiting give up.
    pub deadline_secs: u64,
    /// Seconds an accepted order may take to reach a final state.
    pub final_within_secs: u64,
}

impl ShardPlan {
    /// The buyers of this shard: every `shards`-th, so each shard gets a share of every part
    /// of the arrival schedule.
    #[must_use]
    pub fn indices(&self) -> Vec<usize> {
        (self.shard..self.schedule.users)
            .step_by(self.shards.max(1))
            .collect()
    }
}

/// The go: the event and t = 0 (ms since the Unix epoch, shared by every process).
#[derive(Clone, Copy, Debug, Serialize, Deserialize)]
pub struct Go {
    pub event: EventId,
    pub t0_epoch_ms: u64,
}

/// What a shard tells the parent.
#[derive(Debug, Serialize, Deserialize)]
pub enum ShardMsg {
    Ready { members: usize, seconds: f64 },
    Progress(Snapshot),
    Done(Box<ShardResult>),
    Failed(String),
}

/// A shard's results.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct ShardResult {
    pub records: Vec<Record>,
    pub tally: TallyInner,
    /// Status-poll latencies as (µs, count).
    pub polls: Vec<(u64, u64)>,
}

#[must_use]
pub fn epoch_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// This process's instant for `epoch_ms`.
fn instant_of(epoch: u64) -> Instant {
    let now = epoch_ms();
    let now_instant = Instant::now();
    if epoch >= now {
        now_instant + Duration::from_millis(epoch - now)
    } else {
        now_instant
            .checked_sub(Duration::from_millis(now - epoch))
            .unwrap_or(now_instant)
    }
}

/// Runs a shard: signs up, reports `Ready`, waits for `go`, runs the visits, reports
/// `Progress` and finally `Done`.
pub async fn run(
    plan: ShardPlan,
    tell: mpsc::UnboundedSender<ShardMsg>,
    go: oneshot::Receiver<Go>,
) -> anyhow::Result<()> {
    let indices = plan.indices();
    let crowd = crowd::sign_up_indices(
        plan.targets.api,
        &plan.run,
        &indices,
        plan.signup_concurrency,
    )
    .await
    .context("preparing the crowd")?;
    drop(tell.send(ShardMsg::Ready {
        members: crowd.members.len(),
        seconds: crowd.elapsed.as_secs_f64(),
    }));
    let go = go.await.context("the drill ended before the go")?;
    let t0 = instant_of(go.t0_epoch_ms);
    let ctx = Arc::new(Ctx::new(
        go.event,
        plan.targets.clone(),
        plan.behaviour.clone(),
        t0,
        t0 + Duration::from_secs(plan.deadline_secs),
        Duration::from_secs(plan.final_within_secs),
    ));
    let reporter = {
        let ctx = Arc::clone(&ctx);
        let tell = tell.clone();
        tokio::spawn(async move {
            let mut every = tokio::time::interval(Duration::from_millis(500));
            loop {
                every.tick().await;
                if tell
                    .send(ShardMsg::Progress(ctx.counters.snapshot()))
                    .is_err()
                {
                    break;
                }
            }
        })
    };
    let mut visits = tokio::task::JoinSet::new();
    for (index, member) in indices.into_iter().zip(crowd.members) {
        let ctx = Arc::clone(&ctx);
        let traits = plan.behaviour.traits(&plan.schedule, index);
        visits.spawn(async move { visit(&ctx, index, &member, traits).await });
    }
    let mut records = Vec::with_capacity(visits.len());
    while let Some(record) = visits.join_next().await {
        records.push(record.context("a buyer's task panicked")?);
    }
    reporter.abort();
    records.sort_by_key(|r| r.index);
    drop(tell.send(ShardMsg::Progress(ctx.counters.snapshot())));
    let polls = ctx
        .polls
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .to_counts();
    drop(tell.send(ShardMsg::Done(Box::new(ShardResult {
        records,
        tally: ctx.tally.snapshot(),
        polls,
    }))));
    Ok(())
}

/// A running shard, as the parent sees it.
pub struct Handle {
    messages: Option<mpsc::UnboundedReceiver<ShardMsg>>,
    go: Option<oneshot::Sender<Go>>,
    child: Option<tokio::process::Child>,
}

impl Handle {
    /// Runs the shard in this process.
    #[must_use]
    pub fn in_process(plan: ShardPlan) -> Self {
        let (tell, messages) = mpsc::unbounded_channel();
        let (go, go_rx) = oneshot::channel();
        tokio::spawn(async move {
            if let Err(error) = run(plan, tell.clone(), go_rx).await {
                drop(tell.send(ShardMsg::Failed(format!("{error:#}"))));
            }
        });
        Self {
            messages: Some(messages),
            go: Some(go),
            child: None,
        }
    }

    /// Runs the shard as a child process (`flash-drill shard`), the plan on its stdin.
    pub fn child(plan: &ShardPlan) -> anyhow::Result<Self> {
        let exe = std::env::current_exe().context("finding flash-drill")?;
        let mut child = tokio::process::Command::new(exe)
            .arg("shard")
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .context("starting a drill process")?;
        let mut stdin = child.stdin.take().context("shard stdin")?;
        let stdout = child.stdout.take().context("shard stdout")?;
        let plan_line = format!("{}\n", serde_json::to_string(plan)?);
        let (tell, messages) = mpsc::unbounded_channel();
        let (go, go_rx) = oneshot::channel::<Go>();
        tokio::spawn(async move {
            if stdin.write_all(plan_line.as_bytes()).await.is_err() {
                return;
            }
            if let Ok(go) = go_rx.await {
                let line = format!("{}\n", serde_json::to_string(&go).unwrap_or_default());
                drop(stdin.write_all(line.as_bytes()).await);
                drop(stdin.flush().await);
            }
            // Keep stdin open until the child is done: its closing means "stop".
            std::future::pending::<()>().await;
        });
        let shard = plan.shard;
        tokio::spawn(async move {
            let mut lines = tokio::io::BufReader::new(stdout).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                let Some(json) = line.strip_prefix(LINE_PREFIX) else {
                    continue;
                };
                let message = serde_json::from_str(json).unwrap_or_else(|e| {
                    ShardMsg::Failed(format!("shard {shard}: unreadable message: {e}"))
                });
                let last = matches!(message, ShardMsg::Done(_) | ShardMsg::Failed(_));
                if tell.send(message).is_err() || last {
                    return;
                }
            }
            drop(tell.send(ShardMsg::Failed(format!(
                "shard {shard}: the process ended before reporting"
            ))));
        });
        Ok(Self {
            messages: Some(messages),
            go: Some(go),
            child: Some(child),
        })
    }

    /// The shard's messages (once).
    pub fn take_messages(&mut self) -> mpsc::UnboundedReceiver<ShardMsg> {
        self.messages
            .take()
            .unwrap_or_else(|| mpsc::unbounded_channel().1)
    }

    /// Gives the go.
    pub fn go(&mut self, go: Go) {
        if let Some(sender) = self.go.take() {
            let _ = sender.send(go);
        }
    }

    /// Waits for the child process (if any) to exit.
    pub async fn finish(&mut self) {
        if let Some(child) = &mut self.child {
            drop(tokio::time::timeout(Duration::from_secs(10), child.wait()).await);
        }
    }
}

const LINE_PREFIX: &str = "DRILL ";

/// `flash-drill shard`: the child side. Reads the plan and then the go from stdin, and writes
/// its messages to stdout.
pub async fn child_main() -> anyhow::Result<()> {
    let mut lines = tokio::io::BufReader::new(tokio::io::stdin()).lines();
    let plan: ShardPlan = serde_json::from_str(
        &lines
            .next_line()
            .await?
            .context("no plan on stdin (this subcommand is run by flash-drill burst)")?,
    )?;
    let (tell, mut messages) = mpsc::unbounded_channel();
    let (go, go_rx) = oneshot::channel();
    tokio::spawn(async move {
        if let Ok(Some(line)) = lines.next_line().await
            && let Ok(parsed) = serde_json::from_str::<Go>(&line)
        {
            let _ = go.send(parsed);
        }
        // stdin closed before the end: the parent is gone.
        while let Ok(Some(_)) = lines.next_line().await {}
        std::process::exit(2);
    });
    let writer = tokio::spawn(async move {
        let mut stdout = tokio::io::stdout();
        while let Some(message) = messages.recv().await {
            let done = matches!(message, ShardMsg::Done(_) | ShardMsg::Failed(_));
            let line = format!("{LINE_PREFIX}{}\n", serde_json::to_string(&message)?);
            stdout.write_all(line.as_bytes()).await?;
            stdout.flush().await?;
            if done {
                break;
            }
        }
        anyhow::Ok(())
    });
    let outcome = run(plan, tell.clone(), go_rx).await;
    if let Err(error) = &outcome {
        drop(tell.send(ShardMsg::Failed(format!("{error:#}"))));
    }
    drop(tell);
    writer.await??;
    outcome
}
