//! The drill's side of HTTP: where the suite is, keep-alive connection pools per source
//! address (the gateway limits requests per client IP, so a crowd comes from many), and
//! answers sorted into success, a problem `code`, or a failure to get an answer.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use hyper::body::Bytes;
use hyper::{Method, StatusCode};
use serde::{Deserialize, Serialize};
use tokio::sync::Semaphore;

use crate::http::Conn;

/// Where the drill points.
#[derive(Clone, Debug, clap::Args)]
pub struct TargetArgs {
    /// The suite's origin (`/api/…` and `/queue/…`), plain HTTP.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    pub base_url: String,
    /// The api (host:port), instead of the origin.
    #[arg(long)]
    pub api: Option<SocketAddr>,
    /// Gateway replicas (host:port, comma-separated), instead of the origin; buyers are spread
    /// over them.
    #[arg(long, value_delimiter = ',')]
    pub gateway: Vec<SocketAddr>,
    /// Source addresses of the crowd (comma-separated). Default against a loopback suite:
    /// one per `--users-per-source` buyers, each in a /24 of its own (127.1.0.2, 127.1.1.2,
    /// …), as a crowd comes from many addresses and networks and the suite limits each (the
    /// gateway by default 500 requests a second, bursts of 2,000, per address). Sign-ups and
    /// logins come from finer sources still (20 buyers each, `127.A.B.3`).
    #[arg(long, value_delimiter = ',')]
    pub source: Vec<IpAddr>,
    #[arg(long, default_value_t = 1_000)]
    pub users_per_source: usize,
    /// Keep-alive HTTP connections to each target (the api, each gateway), all drill
    /// processes and source addresses together: the load is closed-loop, so this is the
    /// number of requests in flight at most (at least one per source address and process).
    #[arg(long, default_value_t = 64)]
    pub connections: usize,
    /// The operator account that creates the drill's event.
    #[arg(long, env = "FLASH_ADMIN_EMAIL", default_value = "admin@flash.local")]
    pub admin_email: String,
    #[arg(
        long,
        env = "FLASH_ADMIN_PASSWORD",
        default_value = "flash-admin-local",
        hide_default_value = true
    )]
    pub admin_password: String,
}

/// Resolved addresses, as handed to every drill process.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Targets {
    pub api: SocketAddr,
    pub gateways: Vec<SocketAddr>,
    /// Empty: the system's choice.
    pub sources: Vec<IpAddr>,
    pub connections_per_source: usize,
}

/// The most automatic source addresses.
const MAX_AUTO_SOURCES: usize = 1_000;

impl TargetArgs {
    /// Resolves the addresses for a crowd of `users` driven by `processes` drill processes.
    pub async fn resolve(&self, users: usize, processes: usize) -> anyhow::Result<Targets> {
        let origin = origin_addr(&self.base_url).await?;
        let api = self.api.unwrap_or(origin);
        let gateways = if self.gateway.is_empty() {
            vec![origin]
        } else {
            self.gateway.clone()
        };
        let loopback = api.ip().is_loopback() && gateways.iter().all(|g| g.ip().is_loopback());
        let sources = if !self.source.is_empty() {
            self.source.clone()
        } else if loopback && api.is_ipv4() {
            let wanted = users.div_ceil(self.users_per_source.max(1));
            (0..wanted.clamp(1, MAX_AUTO_SOURCES))
                .map(|i| crate::crowd::spread_source(i, 2))
                .collect()
        } else {
            Vec::new()
        };
        let pools = processes.max(1) * sources.len().max(1);
        Ok(Targets {
            api,
            gateways,
            sources,
            connections_per_source: self.connections.div_ceil(pools).max(1),
        })
    }
}

/// `http://host:port[/]` → the address it names.
pub async fn origin_addr(base_url: &str) -> anyhow::Result<SocketAddr> {
    let rest = base_url
        .strip_prefix("http://")
        .with_context(|| format!("{base_url}: the drill speaks plain http://"))?;
    let authority = rest.trim_end_matches('/');
    if authority.contains('/') {
        bail!("{base_url}: give the origin only (no path)");
    }
    let with_port = if authority
        .rsplit_once(':')
        .is_some_and(|(_, p)| p.parse::<u16>().is_ok())
    {
        authority.to_owned()
    } else {
        format!("{authority}:80")
    };
    tokio::net::lookup_host(&with_port)
        .await
        .with_context(|| format!("resolving {with_port}"))?
        .next()
        .with_context(|| format!("{with_port} has no address"))
}

/// An answer, sorted.
#[derive(Debug)]
pub enum Answer {
    /// 2xx.
    Ok(StatusCode, Bytes),
    /// A problem+json answer: its `code` (or `HTTP <status>` when the body is not one).
    Problem(StatusCode, String),
    /// No answer: connection failure or timeout.
    Failed(String),
}

impl Answer {
    fn from_reply(status: StatusCode, body: Bytes) -> Self {
        if status.is_success() {
            return Self::Ok(status, body);
        }
        #[derive(Deserialize)]
        struct Code {
            code: String,
        }
        let code = serde_json::from_slice::<Code>(&body)
            .map_or_else(|_| format!("HTTP {}", status.as_u16()), |c| c.code);
        Self::Problem(status, code)
    }

    /// Worth trying again: no answer, a server error, or a rate limit.
    #[must_use]
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Ok(..) => false,
            Self::Problem(status, _) => {
                status.is_server_error() || *status == StatusCode::TOO_MANY_REQUESTS
            }
            Self::Failed(_) => true,
        }
    }

    /// The error key of a failed request (for the table of errors by code).
    #[must_use]
    pub fn error_key(&self) -> Option<String> {
        match self {
            Self::Ok(..) => None,
            Self::Problem(_, code) => Some(code.clone()),
            Self::Failed(why) => Some(why.clone()),
        }
    }

    #[must_use]
    pub fn code(&self) -> Option<&str> {
        match self {
            Self::Problem(_, code) => Some(code),
            _ => None,
        }
    }
}

/// A request, owned so it can be retried.
pub struct Call<'a> {
    pub method: Method,
    pub path: &'a str,
    pub bearer: Option<&'a str>,
    pub json: Option<Vec<u8>>,
    pub headers: &'a [(&'a str, &'a str)],
}

/// How long one request may take before it counts as failed.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// Keep-alive connections to one address from one source address.
pub struct Pool {
    addr: SocketAddr,
    source: Option<IpAddr>,
    idle: Mutex<Vec<Conn>>,
    permits: Semaphore,
}

impl Pool {
    #[must_use]
    pub fn new(addr: SocketAddr, source: Option<IpAddr>, connections: usize) -> Self {
        Self {
            addr,
            source,
            idle: Mutex::new(Vec::new()),
            permits: Semaphore::new(connections.max(1)),
        }
    }

    fn take_idle(&self) -> Option<Conn> {
        let mut idle = self
            .idle
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        while let Some(conn) = idle.pop() {
            if !conn.is_closed() {
                return Some(conn);
            }
        }
        None
    }

    fn give_back(&self, conn: Conn) {
        self.idle
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(conn);
    }

    /// Sends `call` on a pooled connection; returns the answer and the time from sending to
    /// the whole answer (waiting for a free connection is not counted).
    pub async fn send(&self, call: &Call<'_>) -> (Answer, Duration) {
        let Ok(_permit) = self.permits.acquire().await else {
            return (Answer::Failed("pool closed".into()), Duration::ZERO);
        };
        let began = Instant::now();
        let conn = match self.take_idle() {
            Some(conn) => Ok(conn),
            None => tokio::time::timeout(REQUEST_TIMEOUT, Conn::open(self.addr, self.source))
                .await
                .unwrap_or_else(|_| Err(anyhow::anyhow!("connect timeout"))),
        };
        let mut conn = match conn {
            Ok(conn) => conn,
            Err(_) => return (Answer::Failed("connect failed".into()), began.elapsed()),
        };
        let sent = Instant::now();
        let reply = tokio::time::timeout(
            REQUEST_TIMEOUT,
            conn.request_with(
                call.method.clone(),
                call.path,
                call.bearer,
                call.json.clone(),
                call.headers,
            ),
        )
        .await;
        let took = sent.elapsed();
        match reply {
            Ok(Ok((status, body))) => {
                self.give_back(conn);
                (Answer::from_reply(status, body), took)
            }
            Ok(Err(_)) => (Answer::Failed("connection lost".into()), took),
            Err(_) => (Answer::Failed("timeout".into()), took),
        }
    }
}

/// Every pool of one drill process: the api and each gateway, per source address.
pub struct Pools {
    api: Vec<Pool>,
    gateways: Vec<Vec<Pool>>,
}

impl Pools {
    #[must_use]
    pub fn new(targets: &Targets) -> Self {
        let sources: Vec<Option<IpAddr>> = if targets.sources.is_empty() {
            vec![None]
        } else {
            targets.sources.iter().copied().map(Some).collect()
        };
        let per = targets.connections_per_source;
        Self {
            api: sources
                .iter()
                .map(|s| Pool::new(targets.api, *s, per))
                .collect(),
            gateways: targets
                .gateways
                .iter()
                .map(|g| sources.iter().map(|s| Pool::new(*g, *s, per)).collect())
                .collect(),
        }
    }

    /// The api pool of buyer `index`.
    #[must_use]
    pub fn api(&self, index: usize) -> &Pool {
        &self.api[index % self.api.len()]
    }

    /// The gateway pool of buyer `index`.
    #[must_use]
    pub fn gateway(&self, index: usize) -> &Pool {
        let gateway = &self.gateways[index % self.gateways.len()];
        &gateway[index % gateway.len()]
    }
}

/// Requests and failed requests of one process: by key, and per second of the drill.
#[derive(Debug, Default)]
pub struct Tally {
    inner: Mutex<TallyInner>,
}

#[derive(Debug, Default, Clone, Serialize, Deserialize)]
pub struct TallyInner {
    pub requests: u64,
    pub errors: BTreeMap<String, u64>,
    /// Failed requests per second since t = 0.
    pub errors_per_sec: BTreeMap<u64, u64>,
    /// WebSocket disconnections the buyer did not ask for, by close code or cause.
    pub disconnects: BTreeMap<String, u64>,
}

impl Tally {
    fn with<R>(&self, f: impl FnOnce(&mut TallyInner) -> R) -> R {
        f(&mut self
            .inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner))
    }

    /// Counts a request and, when it failed unexpectedly, its error at `second`.
    pub fn request(&self, error: Option<String>, second: u64) {
        self.with(|t| {
            t.requests += 1;
            if let Some(key) = error {
                *t.errors.entry(key).or_default() += 1;
                *t.errors_per_sec.entry(second).or_default() += 1;
            }
        });
    }

    pub fn disconnect(&self, why: String) {
        self.with(|t| *t.disconnects.entry(why).or_default() += 1);
    }

    #[must_use]
    pub fn snapshot(&self) -> TallyInner {
        self.with(|t| t.clone())
    }
}

impl TallyInner {
    /// Adds another process's tally.
    pub fn merge(&mut self, other: &TallyInner) {
        self.requests += other.requests;
        for (k, v) in &other.errors {
            *self.errors.entry(k.clone()).or_default() += v;
        }
        for (k, v) in &other.errors_per_sec {
            *self.errors_per_sec.entry(*k).or_default() += v;
        }
        for (k, v) in &other.disconnects {
            *self.disconnects.entry(k.clone()).or_default() += v;
        }
    }

    #[must_use]
    pub fn failed(&self) -> u64 {
        self.errors.values().sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    #[tokio::test]
    async fn origins_resolve_and_other_schemes_are_refused() {
        let addr = origin_addr("http://127.0.0.1:8080/").await.expect("origin");
        assert_eq!(addr, "127.0.0.1:8080".parse().expect("addr"));
        assert_eq!(
            origin_addr("http://127.0.0.1")
                .await
                .expect("origin")
                .port(),
            80
        );
        assert!(origin_addr("https://127.0.0.1:8443").await.is_err());
        assert!(origin_addr("http://127.0.0.1:8080/api").await.is_err());
    }

    #[test]
    fn answers_are_sorted_by_status_and_code() {
        let problem = Answer::from_reply(
            StatusCode::CONFLICT,
            Bytes::from_static(br#"{"code":"SOLD_OUT","status":409}"#),
        );
        assert_eq!(problem.code(), Some("SOLD_OUT"));
        assert!(!problem.is_transient());
        let bare = Answer::from_reply(StatusCode::BAD_GATEWAY, Bytes::from_static(b"<html>"));
        assert_eq!(bare.error_key().as_deref(), Some("HTTP 502"));
        assert!(bare.is_transient());
        assert!(Answer::Failed("timeout".into()).is_transient());
        assert!(
            Answer::from_reply(StatusCode::OK, Bytes::new())
                .error_key()
                .is_none()
        );
    }

    #[tokio::test]
    async fn a_loopback_crowd_is_spread_over_source_addresses() {
        let args = TargetArgs {
            base_url: "http://127.0.0.1:8080".into(),
            api: None,
            gateway: vec![],
            source: vec![],
            users_per_source: 400,
            connections: 128,
            admin_email: String::new(),
            admin_password: String::new(),
        };
        let targets = args.resolve(1_001, 2).await.expect("targets");
        assert_eq!(targets.sources.len(), 3);
        assert_eq!(
            targets.connections_per_source, 22,
            "128 over 2 processes × 3 sources"
        );
        assert_eq!(targets.sources[0], IpAddr::V4(Ipv4Addr::new(127, 1, 0, 2)));
        assert_eq!(targets.sources[2], IpAddr::V4(Ipv4Addr::new(127, 1, 2, 2)));
        let networks: std::collections::HashSet<String> = targets
            .sources
            .iter()
            .map(|ip| flash_kit::limits::network_of(*ip))
            .collect();
        assert_eq!(networks.len(), 3, "each source in a /24 of its own");
        let crowd = args.resolve(10_000_000, 4).await.expect("t");
        assert_eq!(crowd.sources.len(), 1_000);
        assert_eq!(
            crowd.sources[999],
            IpAddr::V4(Ipv4Addr::new(127, 4, 231, 2))
        );
        assert_eq!(crowd.connections_per_source, 1, "at least one per pool");
    }
}
