//! One WebSocket of the waiting room (`GET /queue/v1/events/{id}/ws`), written against any
//! `Sink + Stream` of messages so it is tested over channels as well as over real sockets.
//!
//! The client authenticates with its first frame within 5 s (else 4401); a user who has not
//! joined is closed with 4404 (and so is a socket whose user leaves the queue, on any
//! replica); a newer socket of the same user closes this one (4409); a user over their
//! connection limit is closed with 4429; a client over its frame budget with 1008; a
//! restarting server closes with 1012. Frames are state, not a queue: a slow client only
//! ever gets the newest position, and the admitted frame is never dropped. When an admission
//! runs out unused the socket is told (`position` in state `expired`).

use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message, WebSocketUpgrade};
use flash_kit::auth::Authenticator;
pub use flash_protocol::ws::{
    CLOSE_INTERNAL, CLOSE_NORMAL, CLOSE_POLICY, CLOSE_REPLACED, CLOSE_UNSUPPORTED,
};
use flash_protocol::ws::{
    CLOSE_NOT_IN_QUEUE, CLOSE_RATE_LIMITED, CLOSE_SERVICE_RESTART, CLOSE_UNAUTHENTICATED,
    ClientFrame, ServerFrame,
};
use flash_protocol::{EventId, UserId};
use futures::{Sink, SinkExt as _, Stream, StreamExt as _};
use tokio_util::sync::CancellationToken;

use crate::gate::GateIssuer;
use crate::hub::{Hub, Registration};
use crate::limits::{FrameBudget, Limits};
use crate::ticket::{Absent, Standing};
use crate::waiting_room::{Place, QueueView, WaitingRoom};

/// Largest frame or message accepted from a client.
pub const MAX_CLIENT_MESSAGE: usize = 4096;
/// How long one send to a client may take before the socket is given up.
const SEND_TIMEOUT: Duration = Duration::from_secs(10);
/// A new socket's first read of the queue is tried again after these waits, doubling.
const SNAPSHOT_RETRY_FIRST: Duration = Duration::from_millis(250);
const SNAPSHOT_RETRY_LAST: Duration = Duration::from_secs(2);
/// How long after an admission's end a socket asks Redis again whether it lapsed (the tick
/// that frees it runs every 100 ms by default).
const EXPIRY_RECHECK: Duration = Duration::from_millis(150);
/// Server pings keep idle connections open through proxies.
const HEARTBEAT: Duration = Duration::from_secs(30);

/// What one socket needs.
#[derive(Clone)]
pub struct SocketContext {
    pub event: EventId,
    pub room: WaitingRoom,
    pub hub: Arc<Hub>,
    pub auth: Arc<Authenticator>,
    pub gate: Arc<GateIssuer>,
    pub limits: Arc<Limits>,
    pub shutdown: CancellationToken,
    pub auth_deadline: Duration,
    /// A stop closes this socket at a random moment within this window (serving it meanwhile).
    pub drain: Duration,
}

/// A socket's own moment within `window`, uniform over it: when it closes for a stop (so a
/// replica's sockets reconnect elsewhere spread out) and when it sends a new position after a
/// flush (so they do not all send in the same instant).
#[must_use]
pub fn moment_within(window: Duration) -> Duration {
    let window = u64::try_from(window.as_millis()).unwrap_or(u64::MAX);
    if window == 0 {
        return Duration::ZERO;
    }
    // A fresh random UUID's bits: the process's own randomness, no generator to keep.
    let draw = uuid::Uuid::new_v4().as_u64_pair().1;
    Duration::from_millis(draw % window)
}

enum Flow {
    Continue,
    Stop,
}

struct Socket<S> {
    inner: S,
}

impl<S, E> Socket<S>
where
    S: Stream<Item = Result<Message, E>> + Sink<Message> + Unpin,
{
    async fn send(&mut self, message: Message) -> Flow {
        match tokio::time::timeout(SEND_TIMEOUT, self.inner.send(message)).await {
            Ok(Ok(())) => Flow::Continue,
            _ => Flow::Stop,
        }
    }

    async fn frame(&mut self, frame: &ServerFrame) -> Flow {
        let kind = match frame {
            ServerFrame::Position { .. } => "position",
            ServerFrame::Admitted { .. } => "admitted",
            ServerFrame::Closed { .. } => "closed",
            ServerFrame::Pong => "pong",
        };
        let Ok(text) = serde_json::to_string(frame) else {
            return Flow::Stop;
        };
        ::metrics::counter!("gateway_ws_frames_sent_total", "type" => kind).increment(1);
        self.send(Message::Text(text.into())).await
    }

    async fn close(&mut self, code: u16, reason: impl Into<String>) {
        ::metrics::counter!("gateway_ws_closed_total", "code" => code.to_string()).increment(1);
        let frame = CloseFrame {
            code,
            reason: reason.into().into(),
        };
        let _ = self.send(Message::Close(Some(frame))).await;
        let _ = tokio::time::timeout(Duration::from_secs(1), self.inner.close()).await;
    }

    /// The next text frame before any other data; `None` when the client went away.
    async fn first_text(&mut self) -> Option<Result<String, ()>> {
        loop {
            match self.inner.next().await? {
                Ok(Message::Text(text)) => return Some(Ok(text.to_string())),
                Ok(Message::Ping(_) | Message::Pong(_)) => {}
                Ok(Message::Binary(_)) => return Some(Err(())),
                Ok(Message::Close(_)) | Err(_) => return None,
            }
        }
    }
}

/// What one message of an authenticated client asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Incoming {
    /// A `ping` frame: answer `pong`.
    Ping,
    /// Nothing to answer: another `auth` frame, a protocol ping or pong.
    Nothing,
    /// The client closed the socket.
    Closed,
    /// Not a frame of the contract: close the socket with this code and reason.
    Refused(u16, &'static str),
}

/// Reads one message of an authenticated client: JSON text frames of the contract only
/// (binary frames are closed with 1003, any other text with 1008).
#[must_use]
pub fn client_message(message: &Message) -> Incoming {
    match message {
        Message::Text(text) => match serde_json::from_str::<ClientFrame>(text) {
            Ok(ClientFrame::Ping) => Incoming::Ping,
            Ok(ClientFrame::Auth { .. }) => Incoming::Nothing,
            Err(_) => Incoming::Refused(CLOSE_POLICY, "unknown frame"),
        },
        Message::Binary(_) => Incoming::Refused(CLOSE_UNSUPPORTED, "text frames only"),
        Message::Ping(_) | Message::Pong(_) => Incoming::Nothing,
        Message::Close(_) => Incoming::Closed,
    }
}

/// The limits of a client's socket: frames and messages of at most [`MAX_CLIENT_MESSAGE`]
/// bytes (a larger one ends the socket before it is read), and small buffers.
pub fn limited(upgrade: WebSocketUpgrade) -> WebSocketUpgrade {
    // Client frames are tiny (auth ~350 bytes): a 1 KiB read buffer keeps an idle socket
    // small; a larger frame (up to the limit) grows it for that frame only.
    upgrade
        .read_buffer_size(1024)
        .write_buffer_size(0)
        .max_write_buffer_size(64 * 1024)
        .max_message_size(MAX_CLIENT_MESSAGE)
        .max_frame_size(MAX_CLIENT_MESSAGE)
}

fn now_ms() -> i64 {
    i64::try_from(time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000)
        .unwrap_or(i64::MAX)
}

/// Counts one frame of the client's against the socket's budget; `false` when over it.
fn within(budget: Option<&FrameBudget>) -> bool {
    budget.is_none_or(FrameBudget::spend)
}

/// Whether an admitted socket's window ran out, by Redis's clock: the expired standing to
/// tell, or (while Redis still has the admission open) how long to wait before asking again.
/// Neither for an admission used for an order, which stays admitted.
async fn expiry(ctx: &SocketContext, user: UserId) -> (Option<Duration>, Option<Standing>) {
    let snapshot = match ctx.room.snapshot(ctx.event, user).await {
        Ok(snapshot) => snapshot,
        Err(_) => return (Some(Duration::from_secs(1)), None),
    };
    match crate::ticket::standing(&snapshot) {
        Ok(expired @ Standing::Expired { .. }) => (None, Some(expired)),
        Ok(Standing::Admitted { .. }) => match snapshot.admission_ends_ms {
            // Open in Redis: the tick frees it within one interval of its end.
            Some(ends) => (
                Some(
                    EXPIRY_RECHECK
                        + Duration::from_millis(u64::try_from(ends - snapshot.now_ms).unwrap_or(0)),
                ),
                None,
            ),
            None => (None, None),
        },
        _ => (None, None),
    }
}

/// Runs one socket to its end.
pub async fn run<S, E>(socket: S, ctx: SocketContext)
where
    S: Stream<Item = Result<Message, E>> + Sink<Message> + Unpin,
{
    let mut socket = Socket { inner: socket };
    let Some(user) = authenticate(&mut socket, &ctx).await else {
        return;
    };
    if let Err(refused) = ctx.limits.websocket_of(user).await {
        let seconds = flash_kit::limits::retry_seconds(refused.retry_after);
        socket
            .close(
                CLOSE_RATE_LIMITED,
                format!("too many connections; retry in {seconds} s"),
            )
            .await;
        return;
    }
    let mut backoff = SNAPSHOT_RETRY_FIRST;
    let snapshot = loop {
        match ctx.room.snapshot(ctx.event, user).await {
            Ok(snapshot) => break snapshot,
            Err(error) => {
                // Redis is slow or away. A closing this replica already knows needs no read;
                // otherwise the client stays connected while the read is tried again (cheaper
                // for everyone than a reconnect storm of handshakes and authentications).
                if let Some(reason) = ctx.hub.closed_reason(ctx.event) {
                    if let Flow::Continue = socket.frame(&ServerFrame::Closed { reason }).await {
                        socket.close(CLOSE_NORMAL, "the queue is closed").await;
                    }
                    return;
                }
                if backoff > SNAPSHOT_RETRY_LAST {
                    tracing::warn!(%error, "cannot read the queue for a socket");
                    socket
                        .close(CLOSE_INTERNAL, "queue unavailable; reconnect")
                        .await;
                    return;
                }
                tokio::time::sleep(backoff).await;
                backoff *= 2;
            }
        }
    };
    let standing = match crate::ticket::standing(&snapshot) {
        Ok(standing) => standing,
        Err(Absent::NoSuchQueue | Absent::NotInQueue) => {
            socket
                .close(CLOSE_NOT_IN_QUEUE, "join the queue first")
                .await;
            return;
        }
    };
    let (Some(state), Some(place)) = (snapshot.state, snapshot.place) else {
        socket
            .close(CLOSE_NOT_IN_QUEUE, "join the queue first")
            .await;
        return;
    };
    let view = QueueView {
        state,
        paused: snapshot.paused,
        closed_reason: snapshot.closed_reason,
        admit_per_sec: snapshot.admit_per_sec,
        admission_ttl_s: snapshot.admission_ttl_s,
        serving: snapshot.serving,
        reserved_pending: snapshot.reserved_pending,
    };
    let admission = match standing {
        Standing::Admitted {
            admitted_at_ms,
            ends_ms,
            ..
        } => Some((admitted_at_ms, ends_ms)),
        _ => None,
    };
    // A closing (or pause) this replica heard between the socket's first read and its
    // registration comes marked as a change (it is not published again).
    let registration = ctx.hub.register(ctx.event, user, place, admission, view);
    let slot = Arc::clone(&registration.slot);
    if left_meanwhile(&ctx, user, place).await {
        ctx.hub.unregister(ctx.event, &slot);
        socket
            .close(CLOSE_NOT_IN_QUEUE, "join the queue first")
            .await;
        return;
    }
    session(
        &mut socket,
        &ctx,
        user,
        registration,
        standing,
        snapshot.expired,
    )
    .await;
    ctx.hub.unregister(ctx.event, &slot);
}

/// Whether the user gave up `place` between the socket's first read and its registration:
/// that leave was published before the socket could hear it, so Redis is asked once more (a
/// pre-queue place that was numbered meanwhile is still the same place; a read that fails
/// leaves the socket open).
async fn left_meanwhile(ctx: &SocketContext, user: UserId, place: Place) -> bool {
    let Ok(now) = ctx.room.places(ctx.event, &[user]).await else {
        return false;
    };
    match (place, now.first().copied().flatten()) {
        (_, None) => true,
        (Place::PreQueue, Some(_)) => false,
        (Place::Number(was), Some(now)) => now != Place::Number(was),
    }
}

async fn authenticate<S, E>(socket: &mut Socket<S>, ctx: &SocketContext) -> Option<UserId>
where
    S: Stream<Item = Result<Message, E>> + Sink<Message> + Unpin,
{
    let first = match tokio::time::timeout(ctx.auth_deadline, socket.first_text()).await {
        Ok(Some(first)) => first,
        Ok(None) => return None,
        Err(_) => {
            socket
                .close(CLOSE_UNAUTHENTICATED, "no auth frame in time")
                .await;
            return None;
        }
    };
    let token = match first.map(|text| serde_json::from_str::<ClientFrame>(&text)) {
        Ok(Ok(ClientFrame::Auth { token })) => token,
        _ => {
            socket
                .close(CLOSE_UNAUTHENTICATED, "the first frame must be auth")
                .await;
            return None;
        }
    };
    match ctx.auth.verify(&token).await {
        Ok(claims) => Some(claims.sub),
        Err(_) => {
            socket
                .close(CLOSE_UNAUTHENTICATED, "invalid access token")
                .await;
            None
        }
    }
}

/// Sends what the standing says; `Stop` once the socket is done (closed queue).
async fn announce<S, E>(
    socket: &mut Socket<S>,
    ctx: &SocketContext,
    user: UserId,
    standing: &Standing,
    last_position: &mut Option<ServerFrame>,
    admitted_sent: &mut bool,
) -> Flow
where
    S: Stream<Item = Result<Message, E>> + Sink<Message> + Unpin,
{
    match standing {
        Standing::Closed { reason, .. } => {
            if let Flow::Stop = socket.frame(&ServerFrame::Closed { reason: *reason }).await {
                return Flow::Stop;
            }
            socket.close(CLOSE_NORMAL, "the queue is closed").await;
            Flow::Stop
        }
        Standing::Admitted { .. } if *admitted_sent => Flow::Continue,
        Standing::Admitted { .. } => match standing.gate(&ctx.gate, ctx.event, user) {
            Ok(Some(gate)) => {
                *admitted_sent = true;
                let frame = ServerFrame::Admitted {
                    gate_token: gate.token,
                    expires_at: gate.expires_at,
                };
                socket.frame(&frame).await
            }
            Ok(None) => Flow::Continue,
            Err(error) => {
                tracing::error!(%error, "cannot sign a gate token");
                socket.close(CLOSE_INTERNAL, "try again").await;
                Flow::Stop
            }
        },
        other => {
            let frame = other.position_frame();
            if last_position.as_ref() == Some(&frame) {
                return Flow::Continue;
            }
            let flow = socket.frame(&frame).await;
            *last_position = Some(frame);
            flow
        }
    }
}

async fn session<S, E>(
    socket: &mut Socket<S>,
    ctx: &SocketContext,
    user: UserId,
    registration: Registration,
    standing: Standing,
    expired: bool,
) where
    S: Stream<Item = Result<Message, E>> + Sink<Message> + Unpin,
{
    let Registration { slot, mut view } = registration;
    let budget = ctx.limits.frame_budget();
    let mut last_position = None;
    let mut admitted_sent = false;
    let mut expiry_checked = expired;
    // When to ask Redis whether the admission ran out: its end, and again a little later
    // while Redis (whose clock rules) still has it open.
    let mut expiry_due: Option<tokio::time::Instant> = None;
    // Not marked seen: a change the registration found pending is acted on first.
    let mut seen_version = view.borrow().version;
    // The view this socket last acted on, and when it sends a new position: at its own moment
    // after each flush (see POSITION_SPREAD), the same for every flush.
    let mut acted = view.borrow().view;
    let position_offset = moment_within(crate::hub::POSITION_SPREAD);
    let mut position_due: Option<tokio::time::Instant> = None;
    if let Flow::Stop = announce(
        socket,
        ctx,
        user,
        &standing,
        &mut last_position,
        &mut admitted_sent,
    )
    .await
    {
        return;
    }
    if expired {
        // Expired sockets learn it once and then only wait for closing or their own exit.
        admitted_sent = true;
    }
    let mut heartbeat =
        tokio::time::interval_at(tokio::time::Instant::now() + HEARTBEAT, HEARTBEAT);
    let mut closing_at: Option<tokio::time::Instant> = None;
    loop {
        if admitted_sent && !expiry_checked && expiry_due.is_none() {
            expiry_due = slot.admission().map(|(_, ends)| {
                tokio::time::Instant::now()
                    + Duration::from_millis(u64::try_from(ends - now_ms()).unwrap_or(0))
            });
        }
        let next: Option<Standing> = tokio::select! {
            biased;
            () = async {
                match closing_at {
                    Some(at) => tokio::time::sleep_until(at).await,
                    None => ctx.shutdown.cancelled().await,
                }
            } => {
                // The stop is noticed first; the socket goes on being served until its turn.
                if closing_at.is_none() && !ctx.drain.is_zero() {
                    closing_at = Some(tokio::time::Instant::now() + moment_within(ctx.drain));
                    None
                } else {
                    socket.close(CLOSE_SERVICE_RESTART, "server restarting; reconnect").await;
                    return;
                }
            }
            () = slot.wake.notified() => {
                if slot.is_replaced() {
                    socket.close(CLOSE_REPLACED, "replaced by a newer connection").await;
                    return;
                }
                if slot.has_left() {
                    socket.close(CLOSE_NOT_IN_QUEUE, "you left the queue").await;
                    return;
                }
                acted = view.borrow().view;
                slot.standing(&acted, now_ms()).ok()
            }
            changed = view.changed() => {
                if changed.is_err() {
                    return;
                }
                let published = *view.borrow_and_update();
                let skipped = published.version.saturating_sub(seen_version + 1);
                if skipped > 0 {
                    ::metrics::counter!("gateway_ws_frames_dropped_total").increment(skipped);
                }
                seen_version = published.version;
                if acted.turns_into(&published.view) {
                    acted = published.view;
                    position_due = None;
                    slot.standing(&published.view, now_ms()).ok()
                } else {
                    position_due.get_or_insert_with(|| {
                        tokio::time::Instant::now() + position_offset
                    });
                    None
                }
            }
            () = async {
                match position_due {
                    Some(due) => tokio::time::sleep_until(due).await,
                    None => std::future::pending().await,
                }
            } => {
                position_due = None;
                acted = view.borrow().view;
                slot.standing(&acted, now_ms()).ok()
            }
            () = async {
                match expiry_due.filter(|_| !expiry_checked) {
                    Some(due) => tokio::time::sleep_until(due).await,
                    None => std::future::pending().await,
                }
            } => {
                let (again, told) = expiry(ctx, user).await;
                expiry_checked = again.is_none();
                expiry_due = again.map(|wait| tokio::time::Instant::now() + wait);
                told
            }
            incoming = socket.inner.next() => match incoming {
                Some(Ok(_)) if !within(budget.as_ref()) => {
                    socket.close(CLOSE_POLICY, "too many frames").await;
                    return;
                }
                Some(Ok(message)) => match client_message(&message) {
                    Incoming::Ping => {
                        if let Flow::Stop = socket.frame(&ServerFrame::Pong).await {
                            return;
                        }
                        None
                    }
                    Incoming::Nothing => None,
                    Incoming::Refused(code, reason) => {
                        socket.close(code, reason).await;
                        return;
                    }
                    Incoming::Closed => return,
                },
                Some(Err(_)) | None => return,
            },
            _ = heartbeat.tick() => {
                if let Flow::Stop = socket.send(Message::Ping(Default::default())).await {
                    return;
                }
                None
            }
        };
        if let Some(standing) = next
            && let Flow::Stop = announce(
                socket,
                ctx,
                user,
                &standing,
                &mut last_position,
                &mut admitted_sent,
            )
            .await
        {
            return;
        }
    }
}
