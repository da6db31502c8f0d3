//! One simulated buyer's visit: arrive, join, wait on a WebSocket or by polling (abandoning
//! or reconnecting on the way), buy with the gate token and an `Idempotency-Key` (some send it
//! twice), follow the order to its final state, and finally check that `/me/orders` agrees.
//! Failed requests are retried with backoff, with the same key for orders, until a deadline:
//! a drill with chaos must still end with every accepted order in a final state.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use flash_protocol::order::{CreateOrder, GATE_TOKEN_HEADER, IDEMPOTENCY_KEY_HEADER, Order};
use flash_protocol::queue::{Ticket, TicketState};
use flash_protocol::ws::{CLOSE_NOT_IN_QUEUE, CLOSE_UNAUTHENTICATED, ServerFrame};
use flash_protocol::{EventId, OrderId, UserId};
use futures::StreamExt as _;
use hyper::Method;
use serde::{Deserialize, Serialize};
use tokio::time::sleep_until;
use tokio_tungstenite::tungstenite::Message;

use super::client::{Answer, Call, Pool, Pools, Tally, Targets};
use super::plan::{Behaviour, Client, Repeat, Traits};
use super::progress::Counters;
use crate::crowd::Member;
use crate::socket;
use crate::stats::Latencies;

/// What one drill process shares between its buyers.
pub struct Ctx {
    pub event: EventId,
    pub targets: Targets,
    pub pools: Pools,
    pub behaviour: Behaviour,
    /// t = 0 of the drill, on this process's clock.
    pub t0: Instant,
    /// Buyers still waiting at this instant give up (the drill's deadline).
    pub deadline: Instant,
    /// How long an accepted order may take to reach a final state.
    pub final_within: Duration,
    pub counters: Counters,
    pub tally: Tally,
    pub polls: Mutex<Latencies>,
    /// What solving the queue's challenges cost this process's buyers.
    pub solving: Solving,
    /// At most this many challenges solved at once (a farm's cores); none: each buyer on a
    /// device of their own.
    solvers: Option<tokio::sync::Semaphore>,
    paths: Paths,
}

/// Challenges solved, the nonces tried, and the CPU time the solving took (each solve's
/// thread CPU time, so a busy machine does not inflate it).
#[derive(Debug, Default)]
pub struct Solving {
    pub solves: AtomicU64,
    pub attempts: AtomicU64,
    pub cpu_ns: AtomicU64,
}

impl Solving {
    fn add(&self, attempts: u64, cpu: Duration) {
        self.solves.fetch_add(1, Ordering::Relaxed);
        self.attempts.fetch_add(attempts, Ordering::Relaxed);
        self.cpu_ns.fetch_add(
            u64::try_from(cpu.as_nanos()).unwrap_or(u64::MAX),
            Ordering::Relaxed,
        );
    }

    /// CPU-seconds spent solving.
    #[must_use]
    pub fn cpu_seconds(&self) -> f64 {
        self.cpu_ns.load(Ordering::Relaxed) as f64 / 1e9
    }
}

/// The CPU time this thread has used.
fn thread_cpu_time() -> Duration {
    let now = rustix::time::clock_gettime(rustix::time::ClockId::ThreadCPUTime);
    Duration::new(
        u64::try_from(now.tv_sec).unwrap_or(0),
        u32::try_from(now.tv_nsec).unwrap_or(0),
    )
}

struct Paths {
    join: String,
    challenge: String,
    status: String,
    leave: String,
    order: String,
}

impl Ctx {
    #[must_use]
    pub fn new(
        event: EventId,
        targets: Targets,
        behaviour: Behaviour,
        t0: Instant,
        deadline: Instant,
        final_within: Duration,
    ) -> Self {
        let queue = format!("/queue/v1/events/{event}");
        Self {
            event,
            pools: Pools::new(&targets),
            targets,
            behaviour,
            t0,
            deadline,
            final_within,
            counters: Counters::default(),
            tally: Tally::default(),
            polls: Mutex::new(Latencies::new()),
            solving: Solving::default(),
            solvers: None,
            paths: Paths {
                join: format!("{queue}/join"),
                challenge: format!("{queue}/challenge"),
                status: format!("{queue}/status"),
                leave: format!("{queue}/leave"),
                order: format!("/api/v1/events/{event}/orders"),
            },
        }
    }

    /// Solves at most `cores` challenges at once.
    #[must_use]
    pub fn with_solvers(self, cores: usize) -> Self {
        Self {
            solvers: Some(tokio::sync::Semaphore::new(cores.max(1))),
            ..self
        }
    }

    /// Milliseconds since t = 0.
    #[must_use]
    pub fn ms(&self, at: Instant) -> u64 {
        u64::try_from(at.saturating_duration_since(self.t0).as_millis()).unwrap_or(u64::MAX)
    }

    fn now_ms(&self) -> u64 {
        self.ms(Instant::now())
    }

    /// Sends `call` once, counting it (and its error, as `step: CODE`, unless its code is
    /// `expected`).
    async fn send(
        &self,
        step: &str,
        pool: &Pool,
        call: &Call<'_>,
        expected: &[&str],
    ) -> (Answer, Duration) {
        let (answer, took) = pool.send(call).await;
        let error = answer
            .error_key()
            .filter(|_| answer.code().is_none_or(|code| !expected.contains(&code)))
            .map(|key| format!("{step}: {key}"));
        if error.is_some() {
            Counters::bump(&self.counters.errors);
        }
        self.tally.request(error, self.now_ms() / 1000);
        (answer, took)
    }

    /// Sends `call` until it gets an answer that is not transient, or until `give_up`.
    /// Returns the last answer, the latency of that attempt, and when the first attempt was
    /// sent: an attempt answered 503 may still have taken effect (a join numbered after the
    /// gateway's Redis call timed out), so what the call got dates from the first attempt.
    async fn send_until(
        &self,
        step: &str,
        pool: &Pool,
        call: &Call<'_>,
        expected: &[&str],
        give_up: Instant,
    ) -> (Answer, Duration, Instant) {
        let mut backoff = Duration::from_millis(200);
        let first_sent = Instant::now();
        loop {
            let (answer, took) = self.send(step, pool, call, expected).await;
            if !answer.is_transient() || Instant::now() + backoff > give_up {
                return (answer, took, first_sent);
            }
            let wait = if answer.code() == Some("RATE_LIMITED") {
                backoff.max(Duration::from_secs(1))
            } else {
                backoff
            };
            tokio::time::sleep(wait).await;
            backoff = (backoff * 2).min(Duration::from_secs(2));
        }
    }
}

impl Ctx {
    /// Reads a JSON body with `call` (retrying as [`send_until`](Self::send_until)); `None`
    /// when no success came, or it did not decode.
    async fn read<T: serde::de::DeserializeOwned>(
        &self,
        step: &str,
        pool: &Pool,
        call: &Call<'_>,
        give_up: Instant,
    ) -> Option<T> {
        match self.send_until(step, pool, call, &[], give_up).await.0 {
            Answer::Ok(_, body) => serde_json::from_slice(&body).ok(),
            _ => None,
        }
    }
}

/// How a visit ended.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Bought, and the payment went through.
    Paid,
    /// Bought; the payment was declined.
    PaymentFailed,
    /// Bought; the hold ran out before payment.
    OrderExpired,
    /// Bought; the order was still pending at the end (a violation).
    NotSettled,
    /// Admitted, but the stock was gone at checkout.
    SoldOut,
    /// Told the queue closed (sold out or ended) while waiting or at the door.
    Closed,
    /// Left the queue.
    Abandoned,
    /// Admitted but did not use the admission in time.
    AdmissionExpired,
    /// The gateway no longer knew the buyer's place (a violation).
    LostPlace,
    /// Still waiting at the drill's deadline.
    StillWaiting,
    /// Gave up after an error (see the record's `failure`).
    #[default]
    Failed,
}

impl Outcome {
    /// The visit ended holding tickets: in an order paid, or one still pending.
    #[must_use]
    pub const fn holds_tickets(self) -> bool {
        matches!(self, Self::Paid | Self::NotSettled)
    }

    #[must_use]
    pub const fn name(self) -> &'static str {
        match self {
            Self::Paid => "paid",
            Self::PaymentFailed => "payment failed",
            Self::OrderExpired => "order expired",
            Self::NotSettled => "order not settled",
            Self::SoldOut => "sold out at checkout",
            Self::Closed => "queue closed",
            Self::Abandoned => "abandoned",
            Self::AdmissionExpired => "admission expired",
            Self::LostPlace => "lost place",
            Self::StillWaiting => "still waiting",
            Self::Failed => "failed",
        }
    }
}

/// What happened to one buyer; times are ms since t = 0.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Record {
    pub index: usize,
    pub user: Option<UserId>,
    pub socket: bool,
    pub arrived_ms: u64,
    pub join_sent_ms: Option<u64>,
    pub joined_ms: Option<u64>,
    pub join_us: Option<u64>,
    /// Joined before the sale opened.
    pub pre_queue: bool,
    /// The buyer's number in the queue, as last seen.
    pub number: Option<u64>,
    /// When the buyer left the queue (`leave` answered), if they did.
    pub left_ms: Option<u64>,
    pub admitted_ms: Option<u64>,
    pub gate_token: Option<String>,
    /// Reconnections (asked for or forced) after which the place was checked, and how many
    /// of those found a different number.
    pub place_checks: u32,
    pub place_changed: u32,
    pub order_sent_ms: Option<u64>,
    pub order_us: Option<u64>,
    pub order_id: Option<OrderId>,
    pub quantity: u32,
    /// A repeated order got the same answer (`None`: not repeated).
    pub repeat_consistent: Option<bool>,
    pub final_ms: Option<u64>,
    /// Server time from the order's creation to its final state (`updated_at - created_at`).
    pub settle_ms: Option<u64>,
    /// Orders of this event that `/me/orders` lists for the buyer at the end.
    pub mine: Option<u32>,
    /// `/me/orders` lists exactly the buyer's order (or none when they got none).
    pub mine_agrees: Option<bool>,
    pub outcome: Outcome,
    pub failure: Option<String>,
    /// When the visit ended.
    pub ended_ms: u64,
}

/// How waiting ended.
enum Waited {
    Admitted(String),
    Closed,
    Expired,
    Abandoned,
    Lost,
    StillWaiting,
    Failed(String),
}

struct Visit<'a> {
    ctx: &'a Ctx,
    member: &'a Member,
    traits: Traits,
    record: Record,
    gateway: &'a Pool,
    api: &'a Pool,
}

/// Runs buyer `index`'s whole visit.
pub async fn visit(ctx: &Ctx, index: usize, member: &Member, traits: Traits) -> Record {
    let mut visit = Visit {
        ctx,
        member,
        traits,
        record: Record {
            index,
            user: Some(member.user),
            socket: traits.client == Client::Socket,
            quantity: ctx.behaviour.quantity,
            ..Record::default()
        },
        gateway: ctx.pools.gateway(index),
        api: ctx.pools.api(index),
    };
    sleep_until((ctx.t0 + traits.arrival).into()).await;
    visit.record.arrived_ms = ctx.now_ms();
    Counters::bump(&ctx.counters.arrived);
    let outcome = visit.run().await;
    visit.record.outcome = outcome;
    visit.record.ended_ms = ctx.now_ms();
    match outcome {
        Outcome::SoldOut | Outcome::Closed => Counters::bump(&ctx.counters.turned_away),
        Outcome::Abandoned => Counters::bump(&ctx.counters.abandoned),
        _ => {}
    }
    Counters::bump(&ctx.counters.done);
    visit.record
}

impl Visit<'_> {
    fn bearer(&self) -> Option<&str> {
        Some(&self.member.access)
    }

    fn fail(&mut self, why: impl Into<String>) -> Outcome {
        self.record.failure = Some(why.into());
        Outcome::Failed
    }

    async fn run(&mut self) -> Outcome {
        let ticket = match self.join().await {
            Ok(ticket) => ticket,
            Err(outcome) => return outcome,
        };
        Counters::bump(&self.ctx.counters.waiting);
        let waited = if ticket.state == TicketState::Admitted && ticket.gate_token.is_some() {
            Waited::Admitted(ticket.gate_token.unwrap_or_default())
        } else {
            match self.traits.client {
                Client::Socket => self.wait_on_socket().await,
                Client::Polling => self.wait_polling().await,
            }
        };
        Counters::drop_one(&self.ctx.counters.waiting);
        let gate = match waited {
            Waited::Admitted(gate) => gate,
            Waited::Closed => return Outcome::Closed,
            Waited::Expired => return Outcome::AdmissionExpired,
            Waited::Abandoned => return Outcome::Abandoned,
            Waited::Lost => return Outcome::LostPlace,
            Waited::StillWaiting => return Outcome::StillWaiting,
            Waited::Failed(why) => return self.fail(why),
        };
        self.record.admitted_ms = Some(self.ctx.now_ms());
        self.record.gate_token = Some(gate.clone());
        if self.record.number.is_none() {
            // Admitted at the opening before a position frame said the number: the admission
            // checks need it.
            if let Ok(ticket) = self.status().await {
                self.record.number = ticket.number;
            }
        }
        Counters::bump(&self.ctx.counters.admitted);
        if self.traits.abandon_after.is_some() {
            // Changed their mind at checkout: leaving frees the admission for the next buyer.
            return self.leave().await;
        }
        tokio::time::sleep(self.traits.think).await;
        let outcome = match self.order(&gate).await {
            Ok(order) => self.follow(order).await,
            Err(outcome) => outcome,
        };
        self.check_mine().await;
        outcome
    }

    /// A solved challenge of the queue, as the join's body.
    async fn solve_challenge(&mut self) -> Result<Vec<u8>, Outcome> {
        let call = Call {
            method: Method::GET,
            path: &self.ctx.paths.challenge,
            bearer: self.bearer(),
            json: None,
            headers: &[],
        };
        let Some(challenge) = self
            .ctx
            .read::<flash_protocol::challenge::Challenge>(
                "challenge",
                self.gateway,
                &call,
                self.ctx.deadline,
            )
            .await
        else {
            return Err(self.fail("challenge: none given"));
        };
        // The work is CPU-bound: off the runtime's threads, as a farm's solver would run.
        let _core = match &self.ctx.solvers {
            Some(solvers) => solvers.acquire().await.ok(),
            None => None,
        };
        let solved = tokio::task::spawn_blocking(move || {
            let began = thread_cpu_time();
            let solved =
                flash_protocol::challenge::solve(&challenge.challenge, challenge.difficulty, 0);
            let cpu = thread_cpu_time().saturating_sub(began);
            solved.map(|(nonce, attempts)| {
                let proof = flash_protocol::challenge::JoinProof {
                    challenge: challenge.challenge,
                    nonce: nonce.to_string(),
                };
                (proof, attempts, cpu)
            })
        })
        .await;
        match solved {
            Ok(Some((proof, attempts, cpu))) => {
                self.ctx.solving.add(attempts, cpu);
                serde_json::to_vec(&proof).map_err(|error| self.fail(format!("challenge: {error}")))
            }
            _ => Err(self.fail("challenge: not solved")),
        }
    }

    /// Joins (solving the queue's challenge natively when it asks for one); a ticket, or how
    /// the visit ended.
    async fn join(&mut self) -> Result<Ticket, Outcome> {
        let mut proof = None;
        let (answer, took, sent) = loop {
            let call = Call {
                method: Method::POST,
                path: &self.ctx.paths.join,
                bearer: self.bearer(),
                json: proof.take(),
                headers: &[],
            };
            let (answer, took, sent) = self
                .ctx
                .send_until(
                    "join",
                    self.gateway,
                    &call,
                    &["QUEUE_CLOSED", "CHALLENGE_REQUIRED"],
                    self.ctx.deadline,
                )
                .await;
            if answer.code() == Some("CHALLENGE_REQUIRED") && Instant::now() < self.ctx.deadline {
                proof = Some(self.solve_challenge().await?);
                continue;
            }
            break (answer, took, sent);
        };
        match answer {
            Answer::Ok(_, body) => match serde_json::from_slice::<Ticket>(&body) {
                Ok(ticket) => {
                    if self.record.joined_ms.is_none() {
                        // The first join (a poller's reload joins again: the same ticket).
                        self.record.join_sent_ms = Some(self.ctx.ms(sent));
                        self.record.joined_ms = Some(self.ctx.now_ms());
                        self.record.join_us = Some(duration_us(took));
                        self.record.pre_queue = ticket.state == TicketState::PreQueue;
                        self.record.number = ticket.number;
                        Counters::bump(&self.ctx.counters.joined);
                    }
                    if ticket.state == TicketState::Closed {
                        return Err(Outcome::Closed);
                    }
                    Ok(ticket)
                }
                Err(error) => Err(self.fail(format!("join: undecodable ticket: {error}"))),
            },
            Answer::Problem(_, code) if code == "QUEUE_CLOSED" => Err(Outcome::Closed),
            other => Err(self.fail(format!("join: {}", other.error_key().unwrap_or_default()))),
        }
    }

    fn abandon_at(&self) -> Option<Instant> {
        let joined = self.ctx.t0 + Duration::from_millis(self.record.joined_ms?);
        self.traits.abandon_after.map(|after| joined + after)
    }

    /// Notes a number seen after a reconnection.
    fn check_place(&mut self, seen: Option<u64>) {
        self.record.place_checks += 1;
        if self.record.number.is_some() && seen.is_some() && seen != self.record.number {
            self.record.place_changed += 1;
        }
    }

    async fn wait_on_socket(&mut self) -> Waited {
        let ctx = self.ctx;
        let gateway = ctx.targets.gateways[self.record.index % ctx.targets.gateways.len()];
        let source = (!ctx.targets.sources.is_empty())
            .then(|| ctx.targets.sources[self.record.index % ctx.targets.sources.len()]);
        let abandon_at = self.abandon_at();
        let mut reconnect_at = self.traits.reconnect_after.map(|d| Instant::now() + d);
        let never = ctx.deadline + Duration::from_secs(86_400);
        let mut backoff = Duration::from_millis(250);
        let mut reconnected = false;
        loop {
            let opened = tokio::time::timeout(
                Duration::from_secs(10),
                socket::open(gateway, source, ctx.event, &self.member.access),
            )
            .await;
            let mut ws = match opened {
                Ok(Ok(ws)) => ws,
                _ => {
                    ctx.tally.disconnect("ws connect failed".into());
                    if Instant::now() + backoff > ctx.deadline {
                        return Waited::StillWaiting;
                    }
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(2));
                    continue;
                }
            };
            let mut check = reconnected;
            loop {
                tokio::select! {
                    message = ws.next() => match message {
                        Some(Ok(Message::Text(text))) => match serde_json::from_str::<ServerFrame>(&text) {
                            Ok(ServerFrame::Position { state, number, .. }) => {
                                if std::mem::take(&mut check) {
                                    self.check_place(number);
                                }
                                if number.is_some() {
                                    self.record.number = number;
                                }
                                backoff = Duration::from_millis(250);
                                match state {
                                    TicketState::Expired => return Waited::Expired,
                                    TicketState::Closed => return Waited::Closed,
                                    TicketState::Admitted => return self.token_from_status().await,
                                    TicketState::PreQueue | TicketState::Waiting => {}
                                }
                            }
                            Ok(ServerFrame::Admitted { gate_token, .. }) => {
                                if check {
                                    self.check_place(None);
                                }
                                return Waited::Admitted(gate_token);
                            }
                            Ok(ServerFrame::Closed { .. }) => return Waited::Closed,
                            Ok(ServerFrame::Pong) => {}
                            Err(error) => return Waited::Failed(format!("ws: undecodable frame: {error}")),
                        },
                        Some(Ok(Message::Close(frame))) => {
                            let code = frame.map(|f| u16::from(f.code));
                            match code {
                                Some(CLOSE_NOT_IN_QUEUE) => return Waited::Lost,
                                Some(CLOSE_UNAUTHENTICATED) => return Waited::Failed("ws 4401".into()),
                                _ => {
                                    ctx.tally.disconnect(code.map_or_else(|| "ws closed".into(), |c| format!("ws {c}")));
                                    break;
                                }
                            }
                        }
                        Some(Ok(_)) => {}
                        Some(Err(_)) | None => {
                            ctx.tally.disconnect("ws connection lost".into());
                            break;
                        }
                    },
                    () = sleep_until(abandon_at.unwrap_or(never).into()), if abandon_at.is_some() => {
                        drop(ws.close(None).await);
                        return match self.leave().await {
                            Outcome::Abandoned => Waited::Abandoned,
                            _ => Waited::Failed(self.record.failure.clone().unwrap_or_default()),
                        };
                    }
                    () = sleep_until(reconnect_at.unwrap_or(never).into()), if reconnect_at.is_some() => {
                        reconnect_at = None;
                        drop(ws.close(None).await);
                        // Asked for: reconnect at once, no backoff.
                        backoff = Duration::ZERO;
                        break;
                    }
                    () = sleep_until(ctx.deadline.into()) => return Waited::StillWaiting,
                }
            }
            reconnected = true;
            if Instant::now() + backoff > ctx.deadline {
                return Waited::StillWaiting;
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).clamp(Duration::from_millis(250), Duration::from_secs(2));
        }
    }

    /// A position frame said admitted without the admitted frame: read the token.
    async fn token_from_status(&mut self) -> Waited {
        match self.status().await {
            Ok(ticket) => match (ticket.state, ticket.gate_token) {
                (TicketState::Admitted, Some(token)) => Waited::Admitted(token),
                (state, _) => Waited::Failed(format!("admitted, then status says {state:?}")),
            },
            Err(waited) => waited,
        }
    }

    async fn status(&mut self) -> Result<Ticket, Waited> {
        let call = Call {
            method: Method::GET,
            path: &self.ctx.paths.status,
            bearer: self.bearer(),
            json: None,
            headers: &[],
        };
        let (answer, took, _) = self
            .ctx
            .send_until("status", self.gateway, &call, &[], self.ctx.deadline)
            .await;
        match answer {
            Answer::Ok(_, body) => {
                self.ctx
                    .polls
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .record(took);
                serde_json::from_slice::<Ticket>(&body)
                    .map_err(|e| Waited::Failed(format!("status: undecodable ticket: {e}")))
            }
            Answer::Problem(_, code) if code == "NOT_IN_QUEUE" => Err(Waited::Lost),
            other => Err(Waited::Failed(format!(
                "status: {}",
                other.error_key().unwrap_or_default()
            ))),
        }
    }

    async fn wait_polling(&mut self) -> Waited {
        let ctx = self.ctx;
        let abandon_at = self.abandon_at();
        let mut reconnect_at = self.traits.reconnect_after.map(|d| Instant::now() + d);
        let interval =
            Duration::from_millis(ctx.behaviour.poll_interval_ms).mul_f64(self.traits.jitter);
        loop {
            let next = Instant::now() + interval;
            if let Some(at) = abandon_at.filter(|at| *at <= next) {
                sleep_until(at.into()).await;
                return match self.leave().await {
                    Outcome::Abandoned => Waited::Abandoned,
                    _ => Waited::Failed(self.record.failure.clone().unwrap_or_default()),
                };
            }
            if next > ctx.deadline {
                sleep_until(ctx.deadline.into()).await;
                return Waited::StillWaiting;
            }
            sleep_until(next.into()).await;
            let ticket = if reconnect_at.is_some_and(|at| at <= Instant::now()) {
                // A page reload: join again, which must give the same ticket back.
                reconnect_at = None;
                match self.join().await {
                    Ok(ticket) => {
                        self.check_place(ticket.number);
                        ticket
                    }
                    Err(Outcome::Closed) => return Waited::Closed,
                    Err(_) => {
                        return Waited::Failed(self.record.failure.clone().unwrap_or_default());
                    }
                }
            } else {
                match self.status().await {
                    Ok(ticket) => ticket,
                    Err(waited) => return waited,
                }
            };
            if ticket.number.is_some() {
                self.record.number = ticket.number;
            }
            match (ticket.state, ticket.gate_token) {
                (TicketState::Admitted, Some(token)) => return Waited::Admitted(token),
                (TicketState::Closed, _) => return Waited::Closed,
                (TicketState::Expired, _) => return Waited::Expired,
                _ => {}
            }
        }
    }

    async fn leave(&mut self) -> Outcome {
        let call = Call {
            method: Method::POST,
            path: &self.ctx.paths.leave,
            bearer: self.bearer(),
            json: None,
            headers: &[],
        };
        let give_up = self.ctx.deadline;
        match self
            .ctx
            .send_until("leave", self.gateway, &call, &[], give_up)
            .await
            .0
        {
            Answer::Ok(..) => {
                self.record.left_ms = Some(self.ctx.now_ms());
                Outcome::Abandoned
            }
            other => self.fail(format!("leave: {}", other.error_key().unwrap_or_default())),
        }
    }

    /// Places the order (twice, for a repeating buyer); the order, or how the visit ended.
    async fn order(&mut self, gate: &str) -> Result<Order, Outcome> {
        let key = uuid::Uuid::new_v4().to_string();
        let headers = [
            (GATE_TOKEN_HEADER, gate),
            (IDEMPOTENCY_KEY_HEADER, key.as_str()),
        ];
        let body = serde_json::to_vec(&CreateOrder {
            quantity: self.ctx.behaviour.quantity,
        })
        .unwrap_or_default();
        let call = Call {
            method: Method::POST,
            path: &self.ctx.paths.order,
            bearer: self.bearer(),
            json: Some(body),
            headers: &headers,
        };
        // Retried with the same key until the admission window is surely over.
        let give_up = Instant::now() + Duration::from_secs(60);
        let expected = ["SOLD_OUT"];
        let ctx = self.ctx;
        let (first, second) = match self.traits.repeat {
            None => (
                ctx.send_until("order", self.api, &call, &expected, give_up)
                    .await,
                None,
            ),
            Some(Repeat::After) => {
                let first = ctx
                    .send_until("order", self.api, &call, &expected, give_up)
                    .await;
                let again = matches!(first.0, Answer::Ok(..));
                let second = if again {
                    Some(
                        ctx.send_until("order", self.api, &call, &expected, give_up)
                            .await
                            .0,
                    )
                } else {
                    None
                };
                (first, second)
            }
            Some(Repeat::AtOnce) => {
                let (a, b) = tokio::join!(
                    ctx.send_until("order", self.api, &call, &expected, give_up),
                    ctx.send_until("order", self.api, &call, &expected, give_up)
                );
                (a, Some(b.0))
            }
        };
        let (answer, took, sent) = first;
        self.record.order_sent_ms = Some(ctx.ms(sent));
        self.record.order_us = Some(duration_us(took));
        let decode = |answer: &Answer| match answer {
            Answer::Ok(_, body) => serde_json::from_slice::<Order>(body).ok(),
            _ => None,
        };
        let order = decode(&answer);
        if let Some(second) = &second {
            let consistent = match (&order, decode(second)) {
                (Some(a), Some(b)) => a.id == b.id,
                (Some(_), None) | (None, Some(_)) => {
                    // An order and a sold out: both possible only in a race with returned
                    // stock; any other pair (e.g. GATE_TOKEN_USED) breaks idempotency.
                    [&answer, second]
                        .iter()
                        .any(|a| a.code() == Some("SOLD_OUT"))
                }
                (None, None) => true,
            };
            self.record.repeat_consistent = Some(consistent);
        }
        let order = order.or_else(|| second.as_ref().and_then(decode));
        match (order, answer) {
            (Some(order), _) => {
                self.record.order_id = Some(order.id);
                Counters::bump(&ctx.counters.ordered);
                Ok(order)
            }
            (None, Answer::Problem(_, code)) if code == "SOLD_OUT" => Err(Outcome::SoldOut),
            (None, other) => Err(self.fail(format!(
                "order: {}",
                other
                    .error_key()
                    .unwrap_or_else(|| "undecodable order".into())
            ))),
        }
    }

    /// Follows `order` until it is final or its time is up.
    async fn follow(&mut self, order: Order) -> Outcome {
        let ctx = self.ctx;
        let path = format!("/api/v1/orders/{}", order.id);
        let call = Call {
            method: Method::GET,
            path: &path,
            bearer: self.bearer(),
            json: None,
            headers: &[],
        };
        let give_up = Instant::now() + ctx.final_within;
        let interval =
            Duration::from_millis(ctx.behaviour.follow_interval_ms).mul_f64(self.traits.jitter);
        let mut current = order;
        while !current.status.is_final() {
            if Instant::now() + interval > give_up {
                return Outcome::NotSettled;
            }
            tokio::time::sleep(interval).await;
            if let Some(order) = ctx.read("follow", self.api, &call, give_up).await {
                current = order;
            }
        }
        self.record.final_ms = Some(ctx.now_ms());
        self.record.settle_ms =
            u64::try_from((current.updated_at - current.created_at).whole_milliseconds()).ok();
        Counters::bump(&ctx.counters.settled);
        match current.status {
            flash_protocol::order::OrderStatus::Paid => {
                Counters::bump(&ctx.counters.paid);
                Outcome::Paid
            }
            flash_protocol::order::OrderStatus::PaymentFailed => Outcome::PaymentFailed,
            flash_protocol::order::OrderStatus::Expired => Outcome::OrderExpired,
            flash_protocol::order::OrderStatus::PendingPayment => Outcome::NotSettled,
        }
    }

    /// Reads `/me/orders`: the buyer's orders of this event must be exactly the one they got.
    async fn check_mine(&mut self) {
        let call = Call {
            method: Method::GET,
            path: "/api/v1/me/orders",
            bearer: self.bearer(),
            json: None,
            headers: &[],
        };
        let give_up = Instant::now() + Duration::from_secs(30);
        let orders: Option<Vec<Order>> = self.ctx.read("my orders", self.api, &call, give_up).await;
        if let Some(orders) = orders {
            let mine: Vec<OrderId> = orders
                .iter()
                .filter(|o| o.event_id == self.ctx.event)
                .map(|o| o.id)
                .collect();
            self.record.mine = u32::try_from(mine.len()).ok();
            self.record.mine_agrees = Some(match self.record.order_id {
                Some(id) => mine == [id],
                None => mine.is_empty(),
            });
        }
    }
}

fn duration_us(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}
