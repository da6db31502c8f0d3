//! Chaos during a drill: restart the local Redis or RabbitMQ, or a service process, at a
//! chosen second of the burst. The invariants must hold anyway; the report lists what was
//! done, how long it took, and when the suite answered `/ready` again.
//!
//! - `redis@S`: `SHUTDOWN SAVE`, then `redis-server` again with the same port, bind address
//!   and directory, which loads the snapshot (as a replicated Redis keeps its data through a
//!   failover); the snapshot file is removed once loaded.
//! - `rabbitmq@S`: `rabbitmqctl stop_app` then `start_app` (durable queues and persistent
//!   messages survive; every connection drops).
//! - `postgres@S`: a fast shutdown of the api's Postgres (every connection drops, open
//!   transactions roll back), [`POSTGRES_DOWN`] without it, then started again
//!   (`pg_ctlcluster` where the cluster is Debian's, else `pg_ctl`). Meanwhile the api answers
//!   503 `UNAVAILABLE` and the buyers retry.
//! - `restart:NAME@S`: SIGTERM to the oldest process named NAME (e.g. `flash`,
//!   `flash-gateway`), then the same command line again, with its environment and directory.
//!
//! Only stores on this machine (loopback) are touched.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::str::FromStr;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use hyper::{Method, StatusCode};
use serde::{Deserialize, Serialize};

use crate::http::Conn;

/// What to break.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    Redis,
    Rabbitmq,
    Postgres,
    Restart(String),
}

/// One chaos action: what, and when (seconds after t = 0).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Spec {
    pub kind: Kind,
    pub at_s: u64,
}

impl FromStr for Spec {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let (kind, at) = text
            .rsplit_once('@')
            .ok_or_else(|| format!("{text}: expected KIND@SECONDS, e.g. redis@10"))?;
        let at_s = at
            .trim_end_matches('s')
            .parse()
            .map_err(|_| format!("{text}: {at} is not a number of seconds"))?;
        let kind = match kind {
            "redis" => Kind::Redis,
            "rabbitmq" => Kind::Rabbitmq,
            "postgres" => Kind::Postgres,
            _ => match kind.strip_prefix("restart:") {
                Some(name) if !name.is_empty() && !name.contains('/') => {
                    Kind::Restart(name.to_owned())
                }
                _ => {
                    return Err(format!(
                        "{text}: the kind is redis, rabbitmq, postgres or restart:PROCESS-NAME"
                    ));
                }
            },
        };
        Ok(Self { kind, at_s })
    }
}

impl std::fmt::Display for Spec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.kind {
            Kind::Redis => write!(f, "redis@{}s", self.at_s),
            Kind::Rabbitmq => write!(f, "rabbitmq@{}s", self.at_s),
            Kind::Postgres => write!(f, "postgres@{}s", self.at_s),
            Kind::Restart(name) => write!(f, "restart:{name}@{}s", self.at_s),
        }
    }
}

/// What a chaos action did.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Happened {
    pub action: String,
    /// Seconds after t = 0 when it began.
    pub began_s: f64,
    /// Seconds the restart itself took.
    pub took_s: f64,
    /// Seconds from the beginning until every target answered `/ready` 200 again.
    pub ready_after_s: Option<f64>,
    pub ok: bool,
    pub detail: String,
}

/// Where the stores and services are, for chaos.
#[derive(Clone, Debug)]
pub struct Scene {
    pub redis: SocketAddr,
    /// The api's database (`--chaos postgres@…` restarts its server).
    pub database_url: Option<String>,
    /// Addresses whose `/ready` must answer 200 again afterwards.
    pub ready_targets: Vec<SocketAddr>,
}

/// Carries out `spec` now; never fails the drill (a failed action is reported).
pub async fn unleash(spec: &Spec, scene: &Scene, t0: Instant) -> Happened {
    let began = Instant::now();
    let result = match &spec.kind {
        Kind::Redis => {
            let redis = scene.redis;
            tokio::task::spawn_blocking(move || restart_redis(redis))
                .await
                .unwrap_or_else(|e| Err(anyhow::anyhow!("{e}")))
        }
        Kind::Rabbitmq => tokio::task::spawn_blocking(restart_rabbitmq)
            .await
            .unwrap_or_else(|e| Err(anyhow::anyhow!("{e}"))),
        Kind::Postgres => match scene.database_url.clone() {
            Some(url) => tokio::task::spawn_blocking(move || restart_postgres(&url))
                .await
                .unwrap_or_else(|e| Err(anyhow::anyhow!("{e}"))),
            None => Err(anyhow::anyhow!(
                "--chaos postgres@… needs the api's database (--database-url)"
            )),
        },
        Kind::Restart(name) => {
            let name = name.clone();
            tokio::task::spawn_blocking(move || restart_process(&name))
                .await
                .unwrap_or_else(|e| Err(anyhow::anyhow!("{e}")))
        }
    };
    let took = began.elapsed();
    let (ok, detail) = match result {
        Ok(detail) => (true, detail),
        Err(error) => (false, format!("{error:#}")),
    };
    let ready_after = if ok {
        wait_ready(&scene.ready_targets, Duration::from_secs(60))
            .await
            .then(|| began.elapsed().as_secs_f64())
    } else {
        None
    };
    Happened {
        action: spec.to_string(),
        began_s: began.saturating_duration_since(t0).as_secs_f64(),
        took_s: took.as_secs_f64(),
        ready_after_s: ready_after,
        ok,
        detail,
    }
}

async fn wait_ready(targets: &[SocketAddr], within: Duration) -> bool {
    let until = Instant::now() + within;
    for target in targets {
        loop {
            let ready = async {
                let mut conn = Conn::open(*target, None).await?;
                let (status, _) = conn.request(Method::GET, "/ready", None, None).await?;
                anyhow::Ok(status == StatusCode::OK)
            };
            if matches!(
                tokio::time::timeout(Duration::from_secs(3), ready).await,
                Ok(Ok(true))
            ) {
                break;
            }
            if Instant::now() > until {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    true
}

fn run(command: &mut Command) -> anyhow::Result<String> {
    let output = command
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("running {command:?}"))?;
    let text = String::from_utf8_lossy(&output.stdout).into_owned();
    if !output.status.success() {
        bail!(
            "{command:?} failed: {} {}",
            text.trim(),
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    Ok(text)
}

fn redis_cli(redis: SocketAddr) -> Command {
    let mut command = Command::new("redis-cli");
    command
        .arg("-h")
        .arg(redis.ip().to_string())
        .arg("-p")
        .arg(redis.port().to_string());
    command
}

fn redis_config(redis: SocketAddr, name: &str) -> anyhow::Result<String> {
    let text = run(redis_cli(redis).args(["CONFIG", "GET", name]))?;
    Ok(text.lines().nth(1).unwrap_or_default().trim().to_owned())
}

fn restart_redis(redis: SocketAddr) -> anyhow::Result<String> {
    if !redis.ip().is_loopback() {
        bail!("Redis at {redis} is not on this machine");
    }
    let dir = redis_config(redis, "dir")?;
    let file = redis_config(redis, "dbfilename")?;
    let bind = redis_config(redis, "bind")?;
    let logfile = redis_config(redis, "logfile")?;
    let snapshot = PathBuf::from(&dir).join(if file.is_empty() { "dump.rdb" } else { &file });
    // SHUTDOWN answers nothing when it succeeds (the connection just ends).
    drop(run(redis_cli(redis).args(["SHUTDOWN", "SAVE"])));
    let down = Instant::now();
    while run(redis_cli(redis).arg("PING")).is_ok() {
        if down.elapsed() > Duration::from_secs(30) {
            bail!("Redis did not stop");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let mut start = Command::new("redis-server");
    start
        .args(["--daemonize", "yes", "--port"])
        .arg(redis.port().to_string())
        .args(["--save", "", "--appendonly", "no", "--dir"])
        .arg(&dir)
        .arg("--bind")
        .args(bind.split_whitespace());
    if !logfile.is_empty() {
        start.arg("--logfile").arg(&logfile);
    }
    run(&mut start)?;
    let up = Instant::now();
    loop {
        if run(redis_cli(redis).arg("PING")).is_ok_and(|pong| pong.trim() == "PONG") {
            break;
        }
        if up.elapsed() > Duration::from_secs(30) {
            bail!("Redis did not come back");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    // Loaded: this machine's Redis keeps nothing on disk, so the snapshot goes.
    drop(std::fs::remove_file(&snapshot));
    Ok(format!(
        "stopped with a snapshot and started again (dir {dir})"
    ))
}

fn restart_rabbitmq() -> anyhow::Result<String> {
    run(Command::new("rabbitmqctl").args(["-q", "stop_app"]))?;
    run(Command::new("rabbitmqctl").args(["-q", "start_app"]))?;
    run(Command::new("rabbitmqctl").args(["-q", "await_startup"]))?;
    Ok("stop_app, start_app".into())
}

/// How long `postgres@S` keeps the server down.
pub const POSTGRES_DOWN: Duration = Duration::from_secs(3);

fn psql(url: &str, sql: &str) -> Command {
    let mut command = Command::new("psql");
    command.args([
        "-X",
        "-A",
        "-t",
        "-v",
        "ON_ERROR_STOP=1",
        "-d",
        url,
        "-c",
        sql,
    ]);
    command
}

/// One Debian cluster (`pg_lsclusters`): version, name, data directory.
fn debian_cluster(data_dir: &str) -> Option<(String, String)> {
    let listed = run(Command::new("pg_lsclusters").arg("-h")).ok()?;
    listed.lines().find_map(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        (fields.get(5) == Some(&data_dir)).then(|| (fields[0].to_owned(), fields[1].to_owned()))
    })
}

fn restart_postgres(url: &str) -> anyhow::Result<String> {
    // An empty server address is a Unix socket: this machine too.
    let where_ = run(&mut psql(
        url,
        "select coalesce(host(inet_server_addr()), ''), current_setting('data_directory')",
    ))?;
    let (host, data_dir) = where_
        .trim()
        .split_once('|')
        .context("psql answered no server address and data directory")?;
    let local = host.is_empty()
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    if !local {
        bail!("Postgres at {host} is not on this machine");
    }
    let how = if let Some((version, cluster)) = debian_cluster(data_dir) {
        run(Command::new("pg_ctlcluster").args([&version, &cluster, "stop", "-m", "fast"]))?;
        std::thread::sleep(POSTGRES_DOWN);
        run(Command::new("pg_ctlcluster").args([&version, &cluster, "start"]))?;
        format!("pg_ctlcluster {version} {cluster} stop -m fast, start")
    } else {
        run(Command::new("pg_ctl").args(["-D", data_dir, "-w", "-m", "fast", "stop"]))?;
        std::thread::sleep(POSTGRES_DOWN);
        let log = PathBuf::from(data_dir).join("flash-drill-chaos.log");
        run(Command::new("pg_ctl")
            .args(["-D", data_dir, "-w", "-l"])
            .arg(&log)
            .arg("start"))?;
        format!("pg_ctl -D {data_dir} stop -m fast, start")
    };
    let up = Instant::now();
    while run(&mut psql(url, "select 1")).is_err() {
        if up.elapsed() > Duration::from_secs(60) {
            bail!("Postgres did not come back ({how})");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Ok(format!("{how}; down {} s", POSTGRES_DOWN.as_secs()))
}

/// A process of this machine, as read from /proc.
struct Process {
    pid: u32,
    argv: Vec<String>,
    env: Vec<(String, String)>,
    cwd: PathBuf,
}

fn nul_split(bytes: &[u8]) -> Vec<String> {
    bytes
        .split(|b| *b == 0)
        .filter(|part| !part.is_empty())
        .map(|part| String::from_utf8_lossy(part).into_owned())
        .collect()
}

/// The oldest process whose name is `name` (one that exits meanwhile is passed over).
fn find_process(name: &str) -> anyhow::Result<Process> {
    let mut candidates: Vec<(u64, u32)> = Vec::new();
    for entry in std::fs::read_dir("/proc")?.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|p| p.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(comm) = std::fs::read_to_string(format!("/proc/{pid}/comm")) else {
            continue;
        };
        if comm.trim_end() != name {
            continue;
        }
        // Field 22 of /proc/PID/stat is the start time; the command name (field 2) may hold
        // spaces, so count from its closing parenthesis.
        let started = std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .ok()
            .and_then(|stat| {
                let after = stat.rsplit_once(')')?.1.to_owned();
                after.split_whitespace().nth(19)?.parse::<u64>().ok()
            })
            .unwrap_or(u64::MAX);
        candidates.push((started, pid));
    }
    candidates.sort_unstable();
    candidates
        .into_iter()
        .find_map(|(_, pid)| read_process(pid).ok())
        .with_context(|| format!("no process named {name}"))
}

fn read_process(pid: u32) -> anyhow::Result<Process> {
    let argv = nul_split(&std::fs::read(format!("/proc/{pid}/cmdline"))?);
    let env = nul_split(&std::fs::read(format!("/proc/{pid}/environ"))?)
        .into_iter()
        .filter_map(|pair| {
            pair.split_once('=')
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
        })
        .collect();
    let cwd = std::fs::read_link(format!("/proc/{pid}/cwd"))?;
    if argv.is_empty() {
        bail!("process {pid} has no command line");
    }
    Ok(Process {
        pid,
        argv,
        env,
        cwd,
    })
}

/// Whether `pid` still runs (a zombie, exited but not yet waited for, does not).
fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
        stat.rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .is_some_and(|state| state != "Z")
    })
}

fn restart_process(name: &str) -> anyhow::Result<String> {
    use std::os::unix::process::CommandExt as _;
    let process = find_process(name)?;
    run(Command::new("kill")
        .arg("-TERM")
        .arg(process.pid.to_string()))?;
    let stopping = Instant::now();
    while alive(process.pid) {
        if stopping.elapsed() > Duration::from_secs(60) {
            bail!("process {} ({name}) did not stop within 60 s", process.pid);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let stopped_in = stopping.elapsed();
    let log = std::env::temp_dir().join(format!("flash-drill-restart-{name}.log"));
    let out = std::fs::File::create(&log)?;
    let child = Command::new(&process.argv[0])
        .args(&process.argv[1..])
        .env_clear()
        .envs(process.env.iter().map(|(k, v)| (k, v)))
        .current_dir(&process.cwd)
        .stdin(Stdio::null())
        .stdout(out.try_clone()?)
        .stderr(out)
        .process_group(0)
        .spawn()
        .with_context(|| format!("starting {} again", process.argv[0]))?;
    Ok(format!(
        "pid {} stopped in {:.1}s (SIGTERM), started again as pid {} (log {})",
        process.pid,
        stopped_in.as_secs_f64(),
        child.id(),
        log.display()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_parse_and_print() {
        for text in [
            "redis@10s",
            "rabbitmq@5s",
            "postgres@12s",
            "restart:flash-api@30s",
        ] {
            let spec: Spec = text.parse().expect("valid");
            assert_eq!(spec.to_string(), text);
        }
        assert_eq!(
            "redis@7".parse::<Spec>().expect("valid"),
            Spec {
                kind: Kind::Redis,
                at_s: 7
            }
        );
        for bad in [
            "redis",
            "mysql@3",
            "restart:@3",
            "restart:../x@3",
            "redis@soon",
        ] {
            assert!(bad.parse::<Spec>().is_err(), "{bad}");
        }
    }

    /// The process called `name` that satisfies `accept`, waiting up to 5 s for it (a process
    /// carries its name only once its exec is done).
    fn process_named(name: &str, accept: impl Fn(&Process) -> bool) -> Result<Process, String> {
        let mut found = find_process(name);
        for _ in 0..100 {
            if found.as_ref().is_ok_and(&accept) {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
            found = find_process(name);
        }
        found.map_err(|e| e.to_string())
    }

    #[test]
    fn a_process_is_found_by_name_and_restarted_with_its_command_line_and_environment() {
        // A copy of `sleep` under a name of its own, so that nothing else matches.
        let name = format!("ftdrill{}", std::process::id());
        let dir = std::env::temp_dir().join(&name);
        std::fs::create_dir_all(&dir).expect("dir");
        let exe = dir.join(&name);
        std::fs::copy("/bin/sleep", &exe).expect("copy sleep");
        let mut first = Command::new(&exe)
            .arg("60")
            .current_dir(&dir)
            .env("DRILL_MARK", "kept")
            .spawn()
            .expect("spawn");
        assert!(find_process("no-such-process-xyz").is_err());
        // The child carries the name once its exec is done.
        let found = process_named(&name, |_| true).expect("found");
        assert_eq!(found.pid, first.id());
        assert_eq!(found.argv[1], "60");
        assert_eq!(found.cwd, dir.canonicalize().expect("dir"));

        let said = restart_process(&name).expect("restarted");
        assert!(
            first.wait().expect("the first one ended").code().is_none(),
            "killed by SIGTERM"
        );
        let again = process_named(&name, |p| p.pid != found.pid).expect("started again");
        assert_ne!(again.pid, found.pid, "{said}");
        assert_eq!(again.argv, found.argv);
        assert!(again.env.contains(&("DRILL_MARK".into(), "kept".into())));
        run(Command::new("kill").arg(again.pid.to_string())).expect("stop it");
        drop(std::fs::remove_dir_all(&dir));
    }
}
