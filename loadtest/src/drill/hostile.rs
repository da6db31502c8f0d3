//! The hostile mix of `flash-drill abuse`: attackers beside a normal burst, each reporting
//! what it got next to what the rules allow it.
//!
//! - **login flood**: connections from addresses of their own (a /24 each, as a botnet would
//!   come) log in with unknown e-mails for as long as the burst lasts. Gains: tokens (none
//!   allowed); the api must answer them 401, 429 or 503 and keep serving the crowd.
//! - **sign-up flood**: sign-ups from one address, as fast as they are answered. Gains:
//!   accounts, at most the per-address limit allows in the time it took.
//! - **leave and keep the socket**: buyers join, open the queue's WebSocket, leave and keep
//!   the socket. Gains: admissions and tickets (none allowed).
//! - **leave and rejoin**: buyers join, leave and join again in a loop, keeping every socket
//!   open, and buy with every gate token they are given. Gains: admissions (one each at
//!   most) and tickets (the event's per-user maximum at most).
//! - **made-up requests**: made-up methods and paths to every service. Gains: metric series
//!   naming what they made up (none allowed).
//! - **half-sent requests**: connections that send half a request line and stop. Gains:
//!   connections still held after the header-read timeout (none allowed).
//!
//! Attackers come from 127.200.0.0 and above, apart from the crowd's addresses.

use std::collections::{BTreeMap, HashSet};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use flash_kit::limits::Rate;
use flash_protocol::EventId;
use flash_protocol::auth::{LoginRequest, RegisterRequest};
use flash_protocol::order::{CreateOrder, GATE_TOKEN_HEADER, IDEMPOTENCY_KEY_HEADER};
use flash_protocol::ws::ServerFrame;
use futures::StreamExt as _;
use hyper::{Method, StatusCode};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::sync::{Mutex, watch};
use tokio_tungstenite::tungstenite::Message;

use super::report::Check;
use crate::crowd::Member;
use crate::http::{Conn, connect_tcp};
use crate::socket;

/// How hostile the mix is (`flash-drill abuse`).
#[derive(Clone, Debug, clap::Args)]
pub struct HostileArgs {
    /// Connections logging in with unknown e-mails while the burst lasts, each from an
    /// address and /24 of its own.
    #[arg(long, default_value_t = 200)]
    pub login_flood: usize,
    /// Sign-ups sent from one address.
    #[arg(long, default_value_t = 200)]
    pub signup_flood: u64,
    /// The api's sign-up limit per address (`LIMIT_SIGNUP_PER_ADDRESS`): what the sign-up
    /// flood may get.
    #[arg(long, default_value = flash_api::config::defaults::LIMIT_SIGNUP_PER_ADDRESS)]
    pub signup_limit: Rate,
    /// Buyers who leave and keep their socket open.
    #[arg(long, default_value_t = 20)]
    pub leavers: usize,
    /// Buyers who leave and join again in a loop, keeping every socket open.
    #[arg(long, default_value_t = 20)]
    pub rejoiners: usize,
    /// Leave-and-join rounds of each rejoiner.
    #[arg(long, default_value_t = 5)]
    pub rejoin_rounds: usize,
    /// Requests with made-up methods and paths, to each service.
    #[arg(long, default_value_t = 10_000)]
    pub made_up: usize,
    /// Connections per service that send half a request line and stop.
    #[arg(long, default_value_t = 1_000)]
    pub half_sent: usize,
    /// The services' header-read timeout (`HTTP_HEADER_READ_TIMEOUT_SECS`): how long a
    /// half-sent request may hold its connection.
    #[arg(long, default_value_t = flash_kit::server::ConnectionLimits::default().header_read_timeout.as_secs())]
    pub header_read_timeout_secs: u64,
}

/// One thing an attacker got, and what the rules allow.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Gain {
    pub what: String,
    pub got: u64,
    pub allowed: u64,
}

/// What one attacker did and got.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Attack {
    pub name: String,
    pub how: String,
    pub tries: u64,
    /// Answers by HTTP status (or what became of the connection).
    pub answers: BTreeMap<String, u64>,
    pub gains: Vec<Gain>,
    pub seconds: f64,
    /// What went wrong on the attacker's side (it could not run as planned).
    pub trouble: Option<String>,
}

impl Attack {
    /// Every gain within what is allowed, and the attack ran.
    #[must_use]
    pub fn within_rules(&self) -> bool {
        self.trouble.is_none() && self.gains.iter().all(|g| g.got <= g.allowed)
    }
}

/// The invariant over every attacker.
#[must_use]
pub fn check(attacks: &[Attack]) -> Check {
    let over: Vec<String> = attacks
        .iter()
        .filter(|a| !a.within_rules())
        .map(|a| {
            let gains: Vec<String> = a
                .gains
                .iter()
                .filter(|g| g.got > g.allowed)
                .map(|g| format!("{} {} > {}", g.got, g.what, g.allowed))
                .collect();
            format!(
                "{}: {}{}",
                a.name,
                gains.join(", "),
                a.trouble.as_deref().unwrap_or_default()
            )
        })
        .collect();
    Check {
        name: "attackers got no more than the rules allow".into(),
        ok: over.is_empty(),
        detail: if over.is_empty() {
            format!("{} attackers, each within its limits", attacks.len())
        } else {
            over.join("; ")
        },
    }
}

/// Where the attackers go.
#[derive(Clone, Debug)]
pub struct Field {
    pub api: SocketAddr,
    pub gateways: Vec<SocketAddr>,
    pub event: EventId,
    pub max_per_user: u32,
    /// The queue's admission window, which dates an admission from its `expires_at`.
    pub admission_ttl_s: u32,
    pub run: String,
}

impl Field {
    /// Every distinct service address.
    fn services(&self) -> Vec<SocketAddr> {
        let mut all = vec![self.api];
        for g in &self.gateways {
            if !all.contains(g) {
                all.push(*g);
            }
        }
        all
    }
}

/// Attacker `i` of group `group`'s address: 127.(200 + group).(i / 250).(1 + i % 250),
/// apart from the crowd's 127.1–127.199.
fn attacker_source(group: u8, i: usize) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(
        127,
        200u8.saturating_add(group),
        u8::try_from(i / 250).unwrap_or(u8::MAX),
        u8::try_from(1 + i % 250).unwrap_or(1),
    ))
}

/// The login flood's connection `i`: a /24 of its own.
fn flood_source(i: usize) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(
        127,
        210u8.saturating_add(u8::try_from(i / 256).unwrap_or(40).min(40)),
        u8::try_from(i % 256).unwrap_or(0),
        9,
    ))
}

/// Accounts for the queue attackers, signed up through the real path before the burst.
pub async fn prepare(field: &Field, args: &HostileArgs) -> anyhow::Result<Vec<Member>> {
    let count = args.leavers + args.rejoiners;
    if count == 0 {
        return Ok(Vec::new());
    }
    let crowd =
        crate::crowd::sign_up(field.api, &format!("{}-hostile", field.run), count, 8).await?;
    Ok(crowd.members)
}

/// Runs every attacker from now until `stop` turns true; their reports.
pub async fn unleash(
    field: Field,
    args: HostileArgs,
    members: Vec<Member>,
    stop: watch::Receiver<bool>,
) -> Vec<Attack> {
    let (leavers, rejoiners) = members.split_at(args.leavers.min(members.len()));
    let (leavers, rejoiners) = (leavers.to_vec(), rejoiners.to_vec());
    let field = Arc::new(field);
    let mut tasks = tokio::task::JoinSet::new();
    {
        let (api, run, stop) = (field.api, field.run.clone(), stop.clone());
        let n = args.login_flood;
        tasks.spawn(async move { login_flood(api, &run, n, stop).await });
    }
    {
        let field = Arc::clone(&field);
        let (n, limit) = (args.signup_flood, args.signup_limit);
        tasks.spawn(async move { signup_flood(&field, n, limit).await });
    }
    {
        let (field, stop) = (Arc::clone(&field), stop.clone());
        tasks.spawn(async move { leave_and_keep(&field, leavers, stop).await });
    }
    {
        let (field, stop) = (Arc::clone(&field), stop.clone());
        let rounds = args.rejoin_rounds;
        tasks.spawn(async move { leave_and_rejoin(&field, rejoiners, rounds, stop).await });
    }
    {
        let field = Arc::clone(&field);
        let n = args.made_up;
        tasks.spawn(async move { made_up(&field, n).await });
    }
    {
        let field = Arc::clone(&field);
        let (n, timeout) = (
            args.half_sent,
            Duration::from_secs(args.header_read_timeout_secs),
        );
        tasks.spawn(async move { half_sent(&field, n, timeout).await });
    }
    let mut attacks = Vec::new();
    while let Some(done) = tasks.join_next().await {
        attacks.push(done.unwrap_or_else(|e| Attack {
            name: "an attacker".into(),
            trouble: Some(format!("panicked: {e}")),
            ..Attack::default()
        }));
    }
    attacks.sort_by(|a, b| a.name.cmp(&b.name));
    attacks
}

/// Answers by status, shared by an attacker's tasks.
#[derive(Default)]
struct Answers(std::sync::Mutex<BTreeMap<String, u64>>);

impl Answers {
    fn add(&self, key: impl Into<String>) {
        if let Ok(mut map) = self.0.lock() {
            *map.entry(key.into()).or_default() += 1;
        }
    }

    fn take(&self) -> BTreeMap<String, u64> {
        self.0.lock().map(|m| m.clone()).unwrap_or_default()
    }
}

fn status_key(status: StatusCode) -> String {
    status.as_u16().to_string()
}

/// `connections` connections, each from a /24 of its own, logging in to `api` with unknown
/// e-mails (named after `run`) until `stop`.
pub async fn login_flood(
    api: SocketAddr,
    run: &str,
    connections: usize,
    stop: watch::Receiver<bool>,
) -> Attack {
    let started = Instant::now();
    let answers = Arc::new(Answers::default());
    let tokens = Arc::new(AtomicU64::new(0));
    let tries = Arc::new(AtomicU64::new(0));
    let mut workers = tokio::task::JoinSet::new();
    for i in 0..connections {
        let (answers, tokens, tries, mut stop) = (
            Arc::clone(&answers),
            Arc::clone(&tokens),
            Arc::clone(&tries),
            stop.clone(),
        );
        let run = run.to_owned();
        workers.spawn(async move {
            let mut conn: Option<Conn> = None;
            let mut k = 0u64;
            while !*stop.borrow() {
                k += 1;
                let body = serde_json::to_vec(&LoginRequest {
                    email: format!("nobody-{run}-{i}-{k}@hostile.example"),
                    password: format!("guess {k}"),
                })
                .unwrap_or_default();
                if conn.as_ref().is_none_or(Conn::is_closed) {
                    conn = Conn::open(api, Some(flood_source(i))).await.ok();
                }
                let Some(open) = conn.as_mut() else {
                    answers.add("could not connect");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    continue;
                };
                tries.fetch_add(1, Ordering::Relaxed);
                let sent = open.request(Method::POST, "/api/v1/auth/login", None, Some(body));
                let answer = tokio::select! {
                    answer = sent => answer,
                    _ = stop.changed() => break,
                };
                match answer {
                    Ok((status, _)) => {
                        if status == StatusCode::OK {
                            tokens.fetch_add(1, Ordering::Relaxed);
                        }
                        answers.add(status_key(status));
                    }
                    Err(_) => {
                        answers.add("connection failed");
                        conn = None;
                    }
                }
            }
        });
    }
    while workers.join_next().await.is_some() {}
    Attack {
        name: "login flood".into(),
        how: format!(
            "{connections} connections, each from a /24 of its own, logging in with unknown e-mails while the burst lasts"
        ),
        tries: tries.load(Ordering::Relaxed),
        answers: answers.take(),
        gains: vec![Gain {
            what: "tokens".into(),
            got: tokens.load(Ordering::Relaxed),
            allowed: 0,
        }],
        seconds: started.elapsed().as_secs_f64(),
        trouble: None,
    }
}

async fn signup_flood(field: &Field, count: u64, limit: Rate) -> Attack {
    let started = Instant::now();
    let answers = Answers::default();
    let mut accounts = 0u64;
    let mut trouble = None;
    let source = attacker_source(0, 0);
    let mut conn: Option<Conn> = None;
    let mut first: Option<Instant> = None;
    let mut last = started;
    for k in 0..count {
        if conn.as_ref().is_none_or(Conn::is_closed) {
            match Conn::open(field.api, Some(source)).await {
                Ok(open) => conn = Some(open),
                Err(error) => {
                    trouble = Some(format!("could not connect: {error:#}"));
                    break;
                }
            }
        }
        let Some(open) = conn.as_mut() else { break };
        let body = serde_json::to_vec(&RegisterRequest {
            email: format!("signup-{}-{k}@hostile.example", field.run),
            password: format!("A long enough passphrase {k}"),
        })
        .unwrap_or_default();
        let sent = Instant::now();
        first.get_or_insert(sent);
        last = sent;
        match open
            .request(Method::POST, "/api/v1/auth/register", None, Some(body))
            .await
        {
            Ok((status, _)) => {
                if status == StatusCode::CREATED {
                    accounts += 1;
                }
                answers.add(status_key(status));
            }
            Err(_) => {
                answers.add("connection failed");
                conn = None;
            }
        }
    }
    let elapsed = first.map_or(Duration::ZERO, |f| last.saturating_duration_since(f));
    Attack {
        name: "sign-up flood".into(),
        how: format!("{count} sign-ups from one address ({source}), as fast as answered"),
        tries: count,
        answers: answers.take(),
        gains: vec![Gain {
            what: "accounts".into(),
            got: accounts,
            allowed: limit.most_within(elapsed),
        }],
        seconds: started.elapsed().as_secs_f64(),
        trouble,
    }
}

/// One member's calls to the gateway and the api.
struct Visitor<'a> {
    field: &'a Field,
    member: &'a Member,
    source: IpAddr,
    gateway: SocketAddr,
    answers: &'a Answers,
}

impl Visitor<'_> {
    async fn call(&self, to: SocketAddr, method: Method, path: &str) -> Option<StatusCode> {
        let mut conn = Conn::open(to, Some(self.source)).await.ok()?;
        let (status, _) = conn
            .request(method, path, Some(&self.member.access), None)
            .await
            .ok()?;
        self.answers.add(format!(
            "{path_kind} {}",
            status.as_u16(),
            path_kind = kind_of(path)
        ));
        Some(status)
    }

    async fn join(&self) -> Option<StatusCode> {
        let path = format!("/queue/v1/events/{}/join", self.field.event);
        self.call(self.gateway, Method::POST, &path).await
    }

    async fn leave(&self) -> Option<StatusCode> {
        let path = format!("/queue/v1/events/{}/leave", self.field.event);
        self.call(self.gateway, Method::POST, &path).await
    }

    async fn socket(&self) -> Option<socket::Socket> {
        let opened = socket::open(
            self.gateway,
            Some(self.source),
            self.field.event,
            &self.member.access,
        )
        .await;
        self.answers.add(if opened.is_ok() {
            "socket opened"
        } else {
            "socket refused"
        });
        opened.ok()
    }

    /// Orders one ticket (the most a rejoiner tries per token) with `gate`; whether it took.
    async fn order(&self, gate: &str, quantity: u32) -> u64 {
        let Ok(mut conn) = Conn::open(self.field.api, Some(self.source)).await else {
            return 0;
        };
        let key = uuid::Uuid::new_v4().to_string();
        let body = serde_json::to_vec(&CreateOrder { quantity }).unwrap_or_default();
        let answer = conn
            .request_with(
                Method::POST,
                &format!("/api/v1/events/{}/orders", self.field.event),
                Some(&self.member.access),
                Some(body),
                &[(GATE_TOKEN_HEADER, gate), (IDEMPOTENCY_KEY_HEADER, &key)],
            )
            .await;
        match answer {
            Ok((status, _)) => {
                self.answers.add(format!("order {}", status.as_u16()));
                if status == StatusCode::CREATED {
                    u64::from(quantity)
                } else {
                    0
                }
            }
            Err(_) => 0,
        }
    }
}

fn kind_of(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or(path)
}

/// Gate tokens one attacker's sockets were given, each with whether its admission came after
/// the place it was for had been left.
#[derive(Default)]
struct Given(Mutex<Vec<(String, bool)>>);

impl Given {
    async fn tokens(&self) -> Vec<String> {
        self.0.lock().await.iter().map(|(t, _)| t.clone()).collect()
    }

    async fn after_leaving(&self) -> u64 {
        self.0
            .lock()
            .await
            .iter()
            .filter(|(_, after)| *after)
            .count() as u64
    }
}

/// When the leave of a socket's place was answered (unset while the place is held).
type LeftAt = Arc<std::sync::OnceLock<OffsetDateTime>>;

/// Whether an admission dated `admitted_at` (by the queue's clock) was given to a place after
/// its leave was answered at `left`. An admission made before the leave reached the queue
/// may still arrive after the answer (two connections, no order between them); one made
/// after it may not exist at all.
fn admitted_after_leaving(admitted_at: OffsetDateTime, left: Option<OffsetDateTime>) -> bool {
    left.is_some_and(|left| admitted_at > left + CLOCK_SKEW)
}

/// How far the queue's clock (Redis's) may be ahead of this machine's.
const CLOCK_SKEW: Duration = Duration::from_millis(50);

/// Reads `socket` until `stop`, keeping every gate token it is given in `given`.
async fn watch_socket(
    mut socket: socket::Socket,
    given: Arc<Given>,
    left: LeftAt,
    ttl_s: u32,
    answers: Arc<Answers>,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        let message = tokio::select! {
            message = socket.next() => message,
            _ = stop.changed() => return,
        };
        match message {
            Some(Ok(Message::Text(text))) => {
                if let Ok(ServerFrame::Admitted {
                    gate_token,
                    expires_at,
                }) = serde_json::from_str::<ServerFrame>(&text)
                {
                    let admitted_at = expires_at - Duration::from_secs(u64::from(ttl_s));
                    let after = admitted_after_leaving(admitted_at, left.get().copied());
                    answers.add(if after {
                        "socket admitted after leaving"
                    } else {
                        "socket admitted before leaving"
                    });
                    given.0.lock().await.push((gate_token, after));
                }
            }
            Some(Ok(Message::Close(frame))) => {
                answers.add(format!(
                    "socket closed {}",
                    frame.map_or(0, |f| u16::from(f.code))
                ));
                return;
            }
            Some(Ok(_)) => {}
            Some(Err(_)) | None => {
                answers.add("socket ended");
                return;
            }
        }
    }
}

async fn leave_and_keep(
    field: &Field,
    members: Vec<Member>,
    stop: watch::Receiver<bool>,
) -> Attack {
    let started = Instant::now();
    let answers = Arc::new(Answers::default());
    let given = Arc::new(Given::default());
    let mut watchers = tokio::task::JoinSet::new();
    let mut tickets = 0u64;
    let mut tries = 0;
    for (i, member) in members.iter().enumerate() {
        let visitor = Visitor {
            field,
            member,
            source: attacker_source(1, i),
            gateway: field.gateways[i % field.gateways.len()],
            answers: &answers,
        };
        tries += 1;
        if visitor.join().await.is_none_or(|s| !s.is_success()) {
            continue;
        }
        let Some(socket) = visitor.socket().await else {
            continue;
        };
        let left = LeftAt::default();
        watchers.spawn(watch_socket(
            socket,
            Arc::clone(&given),
            Arc::clone(&left),
            field.admission_ttl_s,
            Arc::clone(&answers),
            stop.clone(),
        ));
        if visitor.leave().await.is_some_and(|s| s.is_success()) {
            let _ = left.set(OffsetDateTime::now_utc());
        }
    }
    while watchers.join_next().await.is_some() {}
    // Every token these sockets were given, tried at the checkout: the place was left, so
    // even one admitted just before the leave buys nothing.
    let tokens = given.tokens().await;
    for (i, gate) in tokens.iter().enumerate() {
        let member = &members[i % members.len().max(1)];
        let visitor = Visitor {
            field,
            member,
            source: attacker_source(1, i),
            gateway: field.gateways[0],
            answers: &answers,
        };
        tickets += visitor.order(gate, 1).await;
    }
    Attack {
        name: "leave and keep the socket".into(),
        how: format!(
            "{} buyers join, open the queue's WebSocket, leave and keep the socket open",
            members.len()
        ),
        tries,
        answers: answers.take(),
        gains: vec![
            Gain {
                what: "admissions after leaving".into(),
                got: given.after_leaving().await,
                allowed: 0,
            },
            Gain {
                what: "tickets".into(),
                got: tickets,
                allowed: 0,
            },
        ],
        seconds: started.elapsed().as_secs_f64(),
        trouble: None,
    }
}

async fn leave_and_rejoin(
    field: &Field,
    members: Vec<Member>,
    rounds: usize,
    stop: watch::Receiver<bool>,
) -> Attack {
    let started = Instant::now();
    let answers = Arc::new(Answers::default());
    let mut runs = tokio::task::JoinSet::new();
    for (i, member) in members.into_iter().enumerate() {
        let (field, answers, stop) = (field.clone(), Arc::clone(&answers), stop.clone());
        runs.spawn(async move {
            let visitor = Visitor {
                field: &field,
                member: &member,
                source: attacker_source(2, i),
                gateway: field.gateways[i % field.gateways.len()],
                answers: &answers,
            };
            let given = Arc::new(Given::default());
            let mut watchers = tokio::task::JoinSet::new();
            for round in 0..=rounds {
                if visitor.join().await.is_none_or(|s| !s.is_success()) {
                    continue;
                }
                let left = LeftAt::default();
                if let Some(socket) = visitor.socket().await {
                    watchers.spawn(watch_socket(
                        socket,
                        Arc::clone(&given),
                        Arc::clone(&left),
                        field.admission_ttl_s,
                        Arc::clone(&answers),
                        stop.clone(),
                    ));
                }
                if round < rounds && visitor.leave().await.is_some_and(|s| s.is_success()) {
                    let _ = left.set(OffsetDateTime::now_utc());
                }
            }
            // Buy with every token as it comes, until the burst is over.
            let mut tried = HashSet::new();
            let mut tickets = 0u64;
            let mut stop_here = stop.clone();
            loop {
                let fresh: Vec<String> = given
                    .tokens()
                    .await
                    .into_iter()
                    .filter(|t| !tried.contains(t))
                    .collect();
                for gate in fresh {
                    tickets += visitor.order(&gate, field.max_per_user).await;
                    tried.insert(gate);
                }
                if *stop_here.borrow() {
                    break;
                }
                let _ = tokio::time::timeout(Duration::from_millis(500), stop_here.changed()).await;
            }
            while watchers.join_next().await.is_some() {}
            for gate in given.tokens().await.iter().filter(|t| !tried.contains(*t)) {
                tickets += visitor.order(gate, field.max_per_user).await;
            }
            (given.after_leaving().await, tickets)
        });
    }
    let (mut most_admissions, mut most_tickets, mut buyers) = (0, 0, 0u64);
    while let Some(done) = runs.join_next().await {
        if let Ok((admissions, tickets)) = done {
            buyers += 1;
            most_admissions = most_admissions.max(admissions);
            most_tickets = most_tickets.max(tickets);
        }
    }
    Attack {
        name: "leave and rejoin".into(),
        how: format!(
            "{buyers} buyers join, leave and join again {rounds} times, keeping every socket open and buying with every gate token"
        ),
        tries: buyers * (rounds as u64 + 1),
        answers: answers.take(),
        gains: vec![
            Gain {
                what: "admissions after leaving (most of one buyer)".into(),
                got: most_admissions,
                allowed: 0,
            },
            Gain {
                what: "tickets (most of one buyer)".into(),
                got: most_tickets,
                allowed: u64::from(field.max_per_user),
            },
        ],
        seconds: started.elapsed().as_secs_f64(),
        trouble: None,
    }
}

/// A made-up token no service could know: letters only (a valid HTTP method).
fn made_up_word(run: &str, i: usize) -> String {
    let mut word = String::from("ZQ");
    let mut n = i;
    loop {
        word.push(char::from(b'A' + u8::try_from(n % 26).unwrap_or(0)));
        n /= 26;
        if n == 0 {
            break;
        }
    }
    word.push_str(
        &run.chars()
            .filter(char::is_ascii_alphabetic)
            .take(4)
            .collect::<String>()
            .to_uppercase(),
    );
    word
}

async fn metrics_of(service: SocketAddr) -> Option<String> {
    let mut conn = Conn::open(service, None).await.ok()?;
    let (status, body) = conn
        .request(Method::GET, "/metrics", None, None)
        .await
        .ok()?;
    status
        .is_success()
        .then(|| String::from_utf8_lossy(&body).into_owned())
}

async fn made_up(field: &Field, per_service: usize) -> Attack {
    let started = Instant::now();
    let answers = Answers::default();
    let mut tries = 0;
    let mut leaked = 0u64;
    let mut how = Vec::new();
    for (s, service) in field.services().into_iter().enumerate() {
        let before = metrics_of(service).await;
        let mut conn: Option<Conn> = None;
        for i in 0..per_service {
            if conn.as_ref().is_none_or(Conn::is_closed) {
                conn = Conn::open(service, Some(attacker_source(3, s))).await.ok();
            }
            let Some(open) = conn.as_mut() else { break };
            let word = made_up_word(&field.run, i);
            let method = Method::from_bytes(word.as_bytes()).unwrap_or(Method::GET);
            let path = format!(
                "/{}/{word}/{i}",
                if i % 2 == 0 { "api/v1" } else { "queue/v1" }
            );
            tries += 1;
            match open.request(method, &path, None, None).await {
                Ok((status, _)) => answers.add(status_key(status)),
                Err(_) => {
                    answers.add("connection failed");
                    conn = None;
                }
            }
        }
        let after = metrics_of(service).await;
        match (before, after) {
            (Some(before), Some(after)) => {
                let named: u64 = after
                    .lines()
                    .filter(|l| !l.starts_with('#') && l.contains("ZQ"))
                    .count() as u64;
                leaked += named;
                how.push(format!(
                    "{service}: /metrics {} → {} bytes",
                    before.len(),
                    after.len()
                ));
            }
            _ => how.push(format!("{service}: no /metrics")),
        }
    }
    Attack {
        name: "made-up requests".into(),
        how: format!(
            "{per_service} requests with made-up methods and paths to each service; {}",
            how.join(", ")
        ),
        tries,
        answers: answers.take(),
        gains: vec![Gain {
            what: "metric series naming what they made up".into(),
            got: leaked,
            allowed: 0,
        }],
        seconds: started.elapsed().as_secs_f64(),
        trouble: None,
    }
}

async fn half_sent(field: &Field, per_service: usize, timeout: Duration) -> Attack {
    let started = Instant::now();
    let answers = Arc::new(Answers::default());
    let held = Arc::new(AtomicU64::new(0));
    let mut holders = tokio::task::JoinSet::new();
    let margin = Duration::from_secs(5);
    for (s, service) in field.services().into_iter().enumerate() {
        for i in 0..per_service {
            let (answers, held) = (Arc::clone(&answers), Arc::clone(&held));
            let source = attacker_source(4 + u8::try_from(s).unwrap_or(0), i % 500);
            holders.spawn(async move {
                let Ok(mut stream) = connect_tcp(service, Some(source)).await else {
                    answers.add("could not connect");
                    return;
                };
                if stream.write_all(b"GET /api/v1/eve").await.is_err() {
                    answers.add("refused while sending");
                    return;
                }
                let sent = Instant::now();
                let mut buf = [0u8; 512];
                let read = tokio::time::timeout(timeout + margin, async {
                    loop {
                        match stream.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(_) => {}
                        }
                    }
                })
                .await;
                if read.is_err() {
                    held.fetch_add(1, Ordering::Relaxed);
                    answers.add("still open");
                } else {
                    answers.add(format!(
                        "closed after {} s",
                        sent.elapsed().as_secs_f64().ceil()
                    ));
                }
            });
        }
    }
    let tries = holders.len() as u64;
    while holders.join_next().await.is_some() {}
    Attack {
        name: "half-sent requests".into(),
        how: format!(
            "{per_service} connections to each service sending half a request line, then nothing"
        ),
        tries,
        answers: answers.take(),
        gains: vec![Gain {
            what: format!(
                "connections held past the {} s header timeout (+{} s)",
                timeout.as_secs(),
                margin.as_secs()
            ),
            got: held.load(Ordering::Relaxed),
            allowed: 0,
        }],
        seconds: started.elapsed().as_secs_f64(),
        trouble: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attackers_come_from_apart_from_the_crowd() {
        for i in [0, 1, 249, 250, 999] {
            let IpAddr::V4(a) = attacker_source(2, i) else {
                panic!("v4")
            };
            assert_eq!(a.octets()[1], 202);
            assert_ne!(a.octets()[3], 0);
        }
        let flood: HashSet<[u8; 3]> = (0..1_000)
            .map(|i| match flood_source(i) {
                IpAddr::V4(a) => [a.octets()[0], a.octets()[1], a.octets()[2]],
                IpAddr::V6(_) => [0; 3],
            })
            .collect();
        assert_eq!(
            flood.len(),
            1_000,
            "each flood connection has a /24 of its own"
        );
    }

    #[test]
    fn only_an_admission_dated_after_the_leave_counts_against_the_rules() {
        let left = OffsetDateTime::UNIX_EPOCH + Duration::from_secs(1_000);
        // Made while the place was held, told after the leave's answer: the race of two
        // connections, not a gain.
        assert!(!admitted_after_leaving(
            left - Duration::from_millis(5),
            Some(left)
        ));
        assert!(!admitted_after_leaving(left + CLOCK_SKEW, Some(left)));
        assert!(admitted_after_leaving(
            left + CLOCK_SKEW + Duration::from_millis(1),
            Some(left)
        ));
        // A place still held may be admitted at any time.
        assert!(!admitted_after_leaving(left, None));
    }

    #[test]
    fn made_up_words_are_methods_and_distinct() {
        let words: HashSet<String> = (0..2_000).map(|i| made_up_word("run7x", i)).collect();
        assert_eq!(words.len(), 2_000);
        for w in &words {
            assert!(Method::from_bytes(w.as_bytes()).is_ok(), "{w}");
            assert!(w.starts_with("ZQ"));
        }
    }

    #[test]
    fn the_check_names_what_an_attacker_got_beyond_the_rules() {
        let fine = Attack {
            name: "a".into(),
            gains: vec![Gain {
                what: "tokens".into(),
                got: 0,
                allowed: 0,
            }],
            ..Attack::default()
        };
        let over = Attack {
            name: "b".into(),
            gains: vec![Gain {
                what: "tickets".into(),
                got: 3,
                allowed: 2,
            }],
            ..Attack::default()
        };
        assert!(check(std::slice::from_ref(&fine)).ok);
        let failed = check(&[fine, over]);
        assert!(!failed.ok);
        assert!(
            failed.detail.contains("b: 3 tickets > 2"),
            "{}",
            failed.detail
        );
    }
}
