//! Serving HTTP/1.1 (WebSocket upgrades included) with the limits a server facing a hostile
//! network needs: a cap on open connections, a deadline for a request's head once its first
//! byte arrived (and for a new connection's first request), an idle timeout between requests
//! on a kept-alive connection, bounded header buffers, and a graceful stop with a deadline.
//!
//! The head deadline starts at the first byte, not when the connection goes idle (as Go's
//! `ReadHeaderTimeout` after its `IdleTimeout`): a load balancer may keep a connection idle for
//! minutes, while a client that started a request must finish its head within seconds.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::connect_info::ConnectInfo;
use axum::http::{Request, StatusCode};
use futures::task::AtomicWaker;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower::ServiceExt as _;

/// Largest request head (request line and headers) read into a connection's buffer.
pub const MAX_HEAD_BYTES: usize = 32 * 1024;
/// Most headers in one request.
pub const MAX_HEADERS: usize = 64;

/// Connections the kernel may hold for a listener before the server accepts them. Linux cuts
/// it to the host's `net.core.somaxconn` (4,096 by default; a pod has its own), so the host
/// decides. Tokio's own (1,024) overflows when thousands of buyers open their sockets in the
/// same second: the kernel then drops their handshakes, and each waits a second or more for
/// its retransmission (BENCHMARKS.md).
pub const LISTEN_BACKLOG: u32 = 65_535;

/// A listener on `addr` with the [`LISTEN_BACKLOG`] (an address in use by a closed socket
/// still in `TIME_WAIT` may be bound again, as with Tokio's own `bind`).
pub fn listen(addr: SocketAddr) -> io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(LISTEN_BACKLOG)
}

/// What a server allows its connections (see `CommonConfig`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConnectionLimits {
    /// Connections open at once, WebSockets included; at the cap the server stops accepting
    /// until one closes (new connections wait in the listen backlog).
    pub max_connections: usize,
    /// Time to send a whole request head, from its first byte (from the connection's opening
    /// for its first request).
    pub header_read_timeout: Duration,
    /// Time a kept-alive connection may stay silent between requests.
    pub idle_timeout: Duration,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        Self {
            max_connections: 16_384,
            header_read_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(310),
        }
    }
}

/// Serves `router` on `listener` until `shutdown` fires, then lets in-flight requests finish
/// for at most `grace`. Handlers may extract `ConnectInfo<SocketAddr>`; `name` labels the
/// connection metrics (`http_connections_open`, `http_connections_closed_total`).
pub async fn serve(
    name: &'static str,
    listener: TcpListener,
    router: Router,
    limits: ConnectionLimits,
    shutdown: CancellationToken,
    grace: Duration,
) -> io::Result<()> {
    let addr = listener.local_addr()?;
    let slots = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let connections = TaskTracker::new();
    let open = Arc::new(Open::default());
    loop {
        let permit = tokio::select! {
            () = shutdown.cancelled() => break,
            permit = Arc::clone(&slots).acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => break,
            },
        };
        if slots.available_permits() == 0 {
            ::metrics::counter!("http_connection_cap_reached_total", "service" => name)
                .increment(1);
        }
        let (stream, peer) = tokio::select! {
            () = shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    // Out of descriptors or memory, or a connection reset before accept: wait
                    // a moment rather than spin.
                    tracing::warn!(%error, %addr, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        let activity = Arc::new(Activity::new(limits));
        connections.spawn(serve_connection(Connection {
            name,
            stream,
            peer,
            permit,
            router: router.clone(),
            registered: Open::register(&open, Arc::clone(&activity)),
            activity,
        }));
    }
    drop(listener);
    open.drain();
    connections.close();
    if tokio::time::timeout(grace, connections.wait())
        .await
        .is_err()
    {
        tracing::warn!(%addr, grace_s = grace.as_secs(), "connections still open at the shutdown deadline; closing them");
    }
    Ok(())
}

struct Connection {
    name: &'static str,
    stream: TcpStream,
    peer: SocketAddr,
    permit: OwnedSemaphorePermit,
    router: Router,
    activity: Arc<Activity>,
    registered: Registered,
}

async fn serve_connection(connection: Connection) {
    let Connection {
        name,
        stream,
        peer,
        permit,
        router,
        activity,
        registered: _registered,
    } = connection;
    let open = ::metrics::gauge!("http_connections_open", "service" => name);
    open.increment(1.0);
    let io = TokioIo::new(Watched {
        inner: stream,
        activity: Arc::clone(&activity),
        _slot: permit,
    });
    let on_request = Arc::clone(&activity);
    let service = hyper::service::service_fn(move |mut request: Request<Incoming>| {
        request.extensions_mut().insert(ConnectInfo(peer));
        on_request.set(State::InRequest);
        let activity = Arc::clone(&on_request);
        let router = router.clone();
        async move {
            let response = router.oneshot(request.map(Body::new)).await;
            if let Ok(response) = &response {
                activity.set(if response.status() == StatusCode::SWITCHING_PROTOCOLS {
                    State::Upgraded
                } else {
                    State::Idle(activity.now_ms())
                });
            }
            response
        }
    });
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .keep_alive(true)
        .max_buf_size(MAX_HEAD_BYTES)
        .max_headers(MAX_HEADERS);
    let connection = builder.serve_connection(io, service).with_upgrades();
    let mut connection = std::pin::pin!(connection);
    let mut watchdog = Watchdog::new(activity);
    let reason = loop {
        tokio::select! {
            result = connection.as_mut() => {
                break if result.is_ok() { "done" } else { "error" };
            }
            alarm = std::future::poll_fn(|cx| watchdog.poll_alarm(cx)) => match alarm {
                Alarm::Drain => connection.as_mut().graceful_shutdown(),
                Alarm::Lapsed(reason) => break reason,
            },
        }
    };
    open.decrement(1.0);
    ::metrics::counter!("http_connections_closed_total", "service" => name, "reason" => reason)
        .increment(1);
}

/// Where a connection is in its life, as far as its deadlines go.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// Reading a request head whose first byte arrived at (ms since the connection began).
    ReadingHead(u64),
    /// A request is being answered (its deadline is the request timeout's).
    InRequest,
    /// Kept alive and silent since (ms).
    Idle(u64),
    /// Handed over to another protocol (WebSocket): its own rules apply.
    Upgraded,
}

const KIND_SHIFT: u32 = 62;
const SINCE_MASK: u64 = (1 << KIND_SHIFT) - 1;

impl State {
    fn encode(self) -> u64 {
        match self {
            State::ReadingHead(since) => since & SINCE_MASK,
            State::InRequest => 1 << KIND_SHIFT,
            State::Idle(since) => (2 << KIND_SHIFT) | (since & SINCE_MASK),
            State::Upgraded => 3 << KIND_SHIFT,
        }
    }

    fn decode(value: u64) -> Self {
        let since = value & SINCE_MASK;
        match value >> KIND_SHIFT {
            0 => State::ReadingHead(since),
            1 => State::InRequest,
            2 => State::Idle(since),
            _ => State::Upgraded,
        }
    }
}

/// The watchdog's armed deadline while it waits for a change instead (a request is being
/// answered, or the connection was upgraded).
const UNARMED: u64 = u64::MAX;

/// A connection's [`State`], shared by its reads, its requests and its [`Watchdog`].
///
/// The watchdog sleeps until the deadline of the state it last judged (its `armed` deadline)
/// and judges the state again when it passes. A new state nudges it only when its deadline
/// comes sooner: a request's head begun on an idle connection, or any deadline while the
/// watchdog waits out a request. A busy kept-alive connection goes through three states per
/// request and has its watchdog judge about once per header timeout, not three times per
/// request. Nothing here takes a lock: the watchdog is polled at every wake of its
/// connection's task.
struct Activity {
    began: Instant,
    limits: ConnectionLimits,
    state: AtomicU64,
    /// When the watchdog wakes by itself (ms since `began`), or [`UNARMED`].
    armed: AtomicU64,
    /// The watchdog must judge the state anew.
    nudged: AtomicBool,
    /// The server drains: the connection ends after its request in flight.
    draining: AtomicBool,
    watchdog: AtomicWaker,
}

impl Activity {
    /// A new connection reads its first request's head from now.
    fn new(limits: ConnectionLimits) -> Self {
        Self {
            began: Instant::now(),
            limits,
            state: AtomicU64::new(State::ReadingHead(0).encode()),
            armed: AtomicU64::new(UNARMED),
            nudged: AtomicBool::new(false),
            draining: AtomicBool::new(false),
            watchdog: AtomicWaker::new(),
        }
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.began.elapsed().as_millis()).unwrap_or(SINCE_MASK)
    }

    fn get(&self) -> State {
        State::decode(self.state.load(Ordering::SeqCst))
    }

    /// When a connection in `state` lapses (ms since `began`), and why; never while a
    /// request is answered or upgraded.
    fn due(&self, state: State) -> Option<(u64, &'static str)> {
        let (since, allowed, reason) = match state {
            State::ReadingHead(since) => (since, self.limits.header_read_timeout, "header_timeout"),
            State::Idle(since) => (since, self.limits.idle_timeout, "idle_timeout"),
            State::InRequest | State::Upgraded => return None,
        };
        let allowed = u64::try_from(allowed.as_millis()).unwrap_or(SINCE_MASK);
        Some((since.saturating_add(allowed), reason))
    }

    fn set(&self, state: State) {
        // Sequentially consistent with the watchdog's `armed` then `state`: either it sees
        // this state, or this sees the deadline it armed.
        self.state.store(state.encode(), Ordering::SeqCst);
        let due = self.due(state).map_or(UNARMED, |(at, _)| at);
        if due < self.armed.load(Ordering::SeqCst) {
            self.nudge();
        }
    }

    fn nudge(&self) {
        self.nudged.store(true, Ordering::SeqCst);
        self.watchdog.wake();
    }

    /// The server drains: tell the watchdog.
    fn drain(&self) {
        self.draining.store(true, Ordering::SeqCst);
        self.nudge();
    }

    /// Bytes arrived: an idle connection starts a request head now.
    fn bytes_read(&self) {
        if let State::Idle(_) = self.get() {
            self.set(State::ReadingHead(self.now_ms()));
        }
    }
}

/// What a connection's watchdog tells it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Alarm {
    /// The server drains: finish the request in flight, then close.
    Drain,
    /// The connection overstayed: a head not read within the header timeout, or silence
    /// beyond the idle timeout.
    Lapsed(&'static str),
}

/// Watches a connection's [`Activity`]: never alarms while a request is answered or upgraded.
struct Watchdog {
    activity: Arc<Activity>,
    /// The state judged last, and its deadline (`sleep` is set to it).
    judged: Option<(State, Option<(u64, &'static str)>)>,
    sleep: Pin<Box<tokio::time::Sleep>>,
    told_to_drain: bool,
}

impl Watchdog {
    fn new(activity: Arc<Activity>) -> Self {
        let sleep = Box::pin(tokio::time::sleep_until(activity.began));
        Self {
            activity,
            judged: None,
            sleep,
            told_to_drain: false,
        }
    }

    /// Judges the state as it is now and arms its deadline.
    fn judge(&mut self) -> Option<(u64, &'static str)> {
        let activity = &self.activity;
        loop {
            let state = activity.get();
            let due = activity.due(state);
            activity
                .armed
                .store(due.map_or(UNARMED, |(at, _)| at), Ordering::SeqCst);
            // Changed before the deadline was armed, perhaps without a nudge: judge anew.
            if activity.get() != state {
                continue;
            }
            if let Some((at, _)) = due {
                let deadline = activity.began + Duration::from_millis(at);
                if self.sleep.deadline() != deadline {
                    self.sleep.as_mut().reset(deadline);
                }
            }
            self.judged = Some((state, due));
            return due;
        }
    }

    fn poll_alarm(&mut self, cx: &mut Context<'_>) -> Poll<Alarm> {
        self.activity.watchdog.register(cx.waker());
        if !self.told_to_drain && self.activity.draining.load(Ordering::SeqCst) {
            self.told_to_drain = true;
            return Poll::Ready(Alarm::Drain);
        }
        let mut due = match self.judged {
            Some((_, due)) if !self.activity.nudged.swap(false, Ordering::SeqCst) => due,
            _ => self.judge(),
        };
        while let Some((_, reason)) = due {
            if self.sleep.as_mut().poll(cx).is_pending() {
                return Poll::Pending;
            }
            if self
                .judged
                .is_some_and(|(state, _)| self.activity.get() == state)
            {
                return Poll::Ready(Alarm::Lapsed(reason));
            }
            // The deadline passed for a state since replaced: judge the one now.
            due = self.judge();
        }
        Poll::Pending
    }

    #[cfg(test)]
    async fn alarm(&mut self) -> Alarm {
        std::future::poll_fn(|cx| self.poll_alarm(cx)).await
    }
}

impl Drop for Watchdog {
    /// Lets go of the connection task's waker. An upgraded connection's socket keeps its
    /// [`Activity`] after the task ends, and a waker kept there would keep the ended task's
    /// memory too (about 1.2 KiB per WebSocket).
    fn drop(&mut self) {
        drop(self.activity.watchdog.take());
    }
}

/// A server's open connections, told when it drains.
#[derive(Default)]
struct Open {
    connections: std::sync::Mutex<Connections>,
}

/// The open connections' activities, by an id given at their opening.
#[derive(Default)]
struct Connections {
    next_id: u64,
    by_id: std::collections::HashMap<u64, Arc<Activity>>,
}

impl Open {
    fn lock(&self) -> std::sync::MutexGuard<'_, Connections> {
        self.connections
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Counts a new connection as open until the returned guard is dropped.
    fn register(open: &Arc<Self>, activity: Arc<Activity>) -> Registered {
        let mut connections = open.lock();
        let id = connections.next_id;
        connections.next_id += 1;
        connections.by_id.insert(id, activity);
        Registered {
            open: Arc::clone(open),
            id,
        }
    }

    fn drain(&self) {
        for activity in self.lock().by_id.values() {
            activity.drain();
        }
    }
}

/// A connection counted as open.
struct Registered {
    open: Arc<Open>,
    id: u64,
}

impl Drop for Registered {
    fn drop(&mut self) {
        self.open.lock().by_id.remove(&self.id);
    }
}

/// A connection's socket, which tells its [`Activity`] of every read and holds the
/// connection's place under the cap for as long as the socket lives (after a WebSocket
/// upgrade too).
struct Watched {
    inner: TcpStream,
    activity: Arc<Activity>,
    _slot: OwnedSemaphorePermit,
}

impl AsyncRead for Watched {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let polled = Pin::new(&mut this.inner).poll_read(cx, buf);
        if matches!(polled, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            this.activity.bytes_read();
        }
        polled
    }
}

impl AsyncWrite for Watched {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_survive_their_encoding() {
        for state in [
            State::ReadingHead(0),
            State::ReadingHead(123_456_789),
            State::InRequest,
            State::Idle(0),
            State::Idle(987_654),
            State::Upgraded,
        ] {
            assert_eq!(State::decode(state.encode()), state);
        }
    }

    fn limits() -> ConnectionLimits {
        ConnectionLimits {
            max_connections: 1,
            header_read_timeout: Duration::from_secs(2),
            idle_timeout: Duration::from_secs(30),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_started_head_lapses_after_the_header_timeout_and_silence_after_the_idle_timeout() {
        let activity = Arc::new(Activity::new(limits()));
        let mut watchdog = Watchdog::new(Arc::clone(&activity));
        let started = tokio::time::Instant::now();
        assert_eq!(watchdog.alarm().await, Alarm::Lapsed("header_timeout"));
        assert!(started.elapsed() >= Duration::from_secs(2));

        activity.set(State::Idle(activity.now_ms()));
        let started = tokio::time::Instant::now();
        assert_eq!(watchdog.alarm().await, Alarm::Lapsed("idle_timeout"));
        assert!(started.elapsed() >= Duration::from_secs(30));

        // A request being answered never lapses, however long it takes.
        activity.set(State::InRequest);
        let waited = tokio::time::timeout(Duration::from_secs(600), watchdog.alarm()).await;
        assert!(waited.is_err());
    }

    /// Counts its wakes; held by every waker made of it.
    #[derive(Default)]
    struct Wakes(AtomicU64);

    impl futures::task::ArcWake for Wakes {
        fn wake_by_ref(arc_self: &Arc<Self>) {
            arc_self.0.fetch_add(1, Ordering::Relaxed);
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_watchdog_gone_keeps_no_waker_of_its_task() {
        let activity = Arc::new(Activity::new(limits()));
        let wakes = Arc::new(Wakes::default());
        let mut watchdog = Watchdog::new(Arc::clone(&activity));
        {
            let waker = futures::task::waker(Arc::clone(&wakes));
            let mut cx = Context::from_waker(&waker);
            assert!(watchdog.poll_alarm(&mut cx).is_pending());
        }
        assert!(Arc::strong_count(&wakes) > 1, "kept while it watches");
        drop(watchdog);
        // An upgraded connection's socket still holds the activity, not the task's waker.
        assert_eq!(Arc::strong_count(&wakes), 1);
        activity.nudge();
        assert_eq!(wakes.0.load(Ordering::Relaxed), 0);
    }

    /// Drives a watchdog on its own task, counting how often it is polled.
    fn watched(activity: &Arc<Activity>) -> (tokio::task::JoinHandle<Alarm>, Arc<AtomicU64>) {
        let polls = Arc::new(AtomicU64::new(0));
        let mut watchdog = Watchdog::new(Arc::clone(activity));
        let counted = Arc::clone(&polls);
        let task = tokio::spawn(async move {
            std::future::poll_fn(|cx| {
                counted.fetch_add(1, Ordering::Relaxed);
                watchdog.poll_alarm(cx)
            })
            .await
        });
        (task, polls)
    }

    /// What the watchdog said, if it did within ten minutes.
    async fn in_time(watchdog: tokio::task::JoinHandle<Alarm>) -> Option<Alarm> {
        tokio::time::timeout(Duration::from_secs(600), watchdog)
            .await
            .ok()
            .and_then(Result::ok)
    }

    /// The watchdog says `reason` within the second after `seconds` from `since`.
    async fn lapses_after(
        watchdog: tokio::task::JoinHandle<Alarm>,
        since: tokio::time::Instant,
        reason: &'static str,
        seconds: u64,
    ) {
        assert_eq!(in_time(watchdog).await, Some(Alarm::Lapsed(reason)));
        let took = since.elapsed();
        assert!(
            took >= Duration::from_secs(seconds) && took < Duration::from_secs(seconds + 1),
            "{took:?}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_head_begun_on_an_idle_connection_wakes_the_watchdog_for_its_sooner_deadline() {
        let activity = Arc::new(Activity::new(limits()));
        activity.set(State::Idle(activity.now_ms()));
        let (watchdog, _) = watched(&activity);
        tokio::time::sleep(Duration::from_secs(5)).await;
        let head_began = tokio::time::Instant::now();
        activity.bytes_read();
        lapses_after(watchdog, head_began, "header_timeout", 2).await;
    }

    #[tokio::test(start_paused = true)]
    async fn a_request_answered_after_the_header_timeout_wakes_the_watchdog_waiting_it_out() {
        let activity = Arc::new(Activity::new(limits()));
        activity.set(State::InRequest);
        let (watchdog, _) = watched(&activity);
        tokio::time::sleep(Duration::from_secs(100)).await;
        assert!(!watchdog.is_finished());
        let answered = tokio::time::Instant::now();
        activity.set(State::Idle(activity.now_ms()));
        lapses_after(watchdog, answered, "idle_timeout", 30).await;
    }

    #[tokio::test(start_paused = true)]
    async fn requests_on_a_busy_connection_leave_its_watchdog_asleep() {
        let activity = Arc::new(Activity::new(limits()));
        let (watchdog, polls) = watched(&activity);
        tokio::task::yield_now().await;
        // A thousand requests, 1 ms apart: head, answer, idle.
        for _ in 0..1_000 {
            activity.set(State::InRequest);
            tokio::task::yield_now().await;
            activity.set(State::Idle(activity.now_ms()));
            tokio::time::sleep(Duration::from_millis(1)).await;
            activity.bytes_read();
            tokio::task::yield_now().await;
        }
        // Woken when the first head's deadline passed (at 2 s), not by each request.
        let polled = polls.load(Ordering::Relaxed);
        assert!(polled <= 3, "the watchdog was polled {polled} times");
        assert!(!watchdog.is_finished());
        // Silence after the last head began: it lapses on the header timeout still.
        assert_eq!(
            in_time(watchdog).await,
            Some(Alarm::Lapsed("header_timeout"))
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_drain_is_told_once_and_the_watch_goes_on() {
        let activity = Arc::new(Activity::new(limits()));
        activity.set(State::InRequest);
        let mut watchdog = Watchdog::new(Arc::clone(&activity));
        let waiting = tokio::time::timeout(Duration::from_secs(60), watchdog.alarm()).await;
        assert!(waiting.is_err());
        activity.drain();
        assert_eq!(watchdog.alarm().await, Alarm::Drain);
        let started = tokio::time::Instant::now();
        activity.set(State::Idle(activity.now_ms()));
        assert_eq!(watchdog.alarm().await, Alarm::Lapsed("idle_timeout"));
        assert!(started.elapsed() >= Duration::from_secs(30));
    }

    /// A server told to stop lets a request in flight finish and closes a kept-alive idle
    /// connection at once, without waiting out its grace.
    #[tokio::test]
    async fn a_stopping_server_finishes_requests_in_flight_and_closes_idle_connections() {
        use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

        let router = Router::new()
            .route(
                "/slow",
                axum::routing::get(|| async {
                    tokio::time::sleep(Duration::from_millis(300)).await;
                    "slow"
                }),
            )
            .route("/quick", axum::routing::get(|| async { "quick" }));
        let listener = listen("127.0.0.1:0".parse().expect("address")).expect("listener");
        let addr = listener.local_addr().expect("address");
        let shutdown = CancellationToken::new();
        let server = tokio::spawn(serve(
            "test",
            listener,
            router,
            ConnectionLimits::default(),
            shutdown.clone(),
            Duration::from_secs(30),
        ));
        let request = |path: &str| format!("GET {path} HTTP/1.1\r\nhost: test\r\n\r\n");
        // Kept alive and idle after one answer.
        let mut idle = TcpStream::connect(addr).await.expect("connect");
        idle.write_all(request("/quick").as_bytes())
            .await
            .expect("write");
        let mut answer = [0u8; 512];
        let read = idle.read(&mut answer).await.expect("read");
        assert!(String::from_utf8_lossy(&answer[..read]).ends_with("quick"));
        // In flight when the server is told to stop.
        let mut busy = TcpStream::connect(addr).await.expect("connect");
        busy.write_all(request("/slow").as_bytes())
            .await
            .expect("write");
        tokio::time::sleep(Duration::from_millis(100)).await;
        let started = std::time::Instant::now();
        shutdown.cancel();
        let mut slow = Vec::new();
        busy.read_to_end(&mut slow).await.expect("read");
        assert!(String::from_utf8_lossy(&slow).ends_with("slow"), "{slow:?}");
        // The idle connection was closed by the server, not left to the grace.
        let closed = tokio::time::timeout(Duration::from_secs(5), idle.read(&mut answer)).await;
        assert!(matches!(closed, Ok(Ok(0))), "{closed:?}");
        let stopped = tokio::time::timeout(Duration::from_secs(10), server).await;
        assert!(matches!(stopped, Ok(Ok(Ok(())))), "{stopped:?}");
        assert!(started.elapsed() < Duration::from_secs(10));
    }
}
