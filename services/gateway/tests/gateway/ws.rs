//! The WebSocket contract over real sockets (and one stuck client over channels).

use std::convert::Infallible;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use flash_gateway::ws::{self, SocketContext};
use flash_protocol::claims::{GATE_AUDIENCE, GATE_ISSUER, GateClaims, Role};
use flash_protocol::queue::{QueuePatch, TicketState};
use flash_protocol::ws::{ClosedReason, ServerFrame};
use flash_protocol::{EventId, UserId};
use futures::{Sink, SinkExt as _, Stream, StreamExt as _};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream, connect_async};

use crate::helpers::{TestGateway, settings, token_for};

type Client = WebSocketStream<MaybeTlsStream<TcpStream>>;

async fn connect(gw: &TestGateway, event: EventId) -> Client {
    connect_async(gw.ws_url(event)).await.expect("upgrade").0
}

async fn send(client: &mut Client, text: &str) {
    client.send(Message::Text(text.into())).await.expect("send");
}

async fn auth(client: &mut Client, token: &str) {
    send(
        client,
        &serde_json::json!({"type": "auth", "token": token}).to_string(),
    )
    .await;
}

/// The next server frame (skipping pings), within `within`.
async fn frame(client: &mut Client, within: Duration) -> ServerFrame {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let message = tokio::time::timeout_at(deadline, client.next())
            .await
            .expect("a frame in time")
            .expect("socket open")
            .expect("message");
        match message {
            Message::Text(text) => return serde_json::from_str(&text).expect("a contract frame"),
            Message::Ping(_) | Message::Pong(_) => {}
            other => panic!("expected a frame, got {other:?}"),
        }
    }
}

/// The close code the server ends with (skipping any frames before it).
async fn close_code(client: &mut Client) -> u16 {
    loop {
        let message = tokio::time::timeout(Duration::from_secs(5), client.next())
            .await
            .expect("closed in time");
        match message {
            Some(Ok(Message::Close(Some(frame)))) => return frame.code.into(),
            Some(Ok(Message::Close(None))) | None | Some(Err(_)) => panic!("closed without a code"),
            Some(Ok(_)) => {}
        }
    }
}

async fn paused_event(gw: &TestGateway) -> EventId {
    let event = gw.open_event(settings(1000, 1000, 60)).await;
    gw.room
        .patch(
            event,
            UserId::new_v7(),
            &QueuePatch {
                paused: Some(true),
                ..QueuePatch::default()
            },
        )
        .await
        .expect("pause");
    event
}

async fn resume(gw: &TestGateway, event: EventId) {
    gw.room
        .patch(
            event,
            UserId::new_v7(),
            &QueuePatch {
                paused: Some(false),
                ..QueuePatch::default()
            },
        )
        .await
        .expect("resume");
}

/// Asserts that `times` (each since the same start) are spread over at least `at_least`, not
/// at once, and all within `within`; the last of them.
fn assert_spread(what: &str, times: &[Duration], at_least: Duration, within: Duration) -> Duration {
    let (first, last) = (
        times.iter().min().copied().unwrap_or_default(),
        times.iter().max().copied().unwrap_or_default(),
    );
    assert!(
        last - first >= at_least,
        "{what} spread over their window, not at once: {times:?}"
    );
    assert!(
        last <= within,
        "every one of the {what} within its window: {times:?}"
    );
    last
}

/// A user who joined, and their authenticated socket.
async fn waiting_socket(gw: &TestGateway, event: EventId) -> (UserId, Client) {
    let user = UserId::new_v7();
    let token = token_for(user, Role::User);
    assert_eq!(gw.join(event, &token).await.status(), 200);
    let mut client = connect(gw, event).await;
    auth(&mut client, &token).await;
    (user, client)
}

#[tokio::test]
async fn authentication_is_the_first_frame_within_the_deadline() {
    let gw = TestGateway::spawn().await;
    let event = gw.open_event(settings(10, 10, 60)).await;

    let mut silent = connect(&gw, event).await;
    assert_eq!(
        close_code(&mut silent).await,
        4401,
        "no auth frame within the deadline"
    );

    for first in [
        serde_json::json!({"type": "auth", "token": "garbage"}).to_string(),
        serde_json::json!({"type": "ping"}).to_string(),
        "not json".to_owned(),
    ] {
        let mut client = connect(&gw, event).await;
        send(&mut client, &first).await;
        assert_eq!(close_code(&mut client).await, 4401, "{first}");
    }
    let mut binary = connect(&gw, event).await;
    binary
        .send(Message::Binary(vec![1, 2, 3].into()))
        .await
        .expect("send");
    assert_eq!(close_code(&mut binary).await, 4401);

    // A valid token of a user who has not joined.
    let mut stranger = connect(&gw, event).await;
    auth(&mut stranger, &token_for(UserId::new_v7(), Role::User)).await;
    assert_eq!(close_code(&mut stranger).await, 4404);
    let mut unknown = connect(&gw, EventId::new_v7()).await;
    auth(&mut unknown, &token_for(UserId::new_v7(), Role::User)).await;
    assert_eq!(close_code(&mut unknown).await, 4404);
    gw.running.stop().await;
}

#[tokio::test]
async fn a_waiting_socket_sees_its_position_then_its_admission() {
    position_then_admission(TestGateway::spawn().await).await;
}

/// The same on a Redis Cluster: the queue's scripts run on its event's node, and the
/// admission published there reaches the socket through pub/sub on another.
#[tokio::test]
async fn a_waiting_socket_is_admitted_through_a_redis_cluster() {
    let gw = TestGateway::spawn_on_cluster().await;
    assert_eq!(gw.get("/ready").await.status(), 200, "ready on the cluster");
    position_then_admission(gw).await;
}

async fn position_then_admission(gw: TestGateway) {
    let event = paused_event(&gw).await;
    let (user, mut client) = waiting_socket(&gw, event).await;
    let ServerFrame::Position {
        state,
        number,
        ahead,
        eta_s,
        ..
    } = frame(&mut client, Duration::from_secs(2)).await
    else {
        panic!("position first");
    };
    assert_eq!(
        (state, number, ahead, eta_s),
        (TicketState::Waiting, Some(1), Some(0), None),
        "paused: no ETA"
    );

    send(&mut client, r#"{"type":"ping"}"#).await;
    assert_eq!(
        frame(&mut client, Duration::from_secs(2)).await,
        ServerFrame::Pong
    );

    resume(&gw, event).await;
    let admitted = loop {
        match frame(&mut client, Duration::from_secs(3)).await {
            ServerFrame::Admitted {
                gate_token,
                expires_at,
            } => break (gate_token, expires_at),
            ServerFrame::Position { .. } => {}
            other => panic!("unexpected {other:?}"),
        }
    };
    let claims: GateClaims =
        flash_tokens::Verifier::new(&gw.state.gate.key().jwks(), GATE_ISSUER, GATE_AUDIENCE)
            .expect("verifier")
            .verify(&admitted.0)
            .expect("valid gate token");
    assert_eq!(
        (claims.sub, claims.evt, claims.exp),
        (user, event, admitted.1.unix_timestamp())
    );
    // Polling agrees with the socket.
    let ticket: flash_protocol::queue::Ticket = gw
        .status(event, &token_for(user, Role::User))
        .await
        .json()
        .await
        .expect("ticket");
    assert_eq!(ticket.gate_token.as_deref(), Some(admitted.0.as_str()));
    let metrics = gw.get("/metrics").await.text().await.expect("metrics");
    for name in [
        "gateway_ws_frames_sent_total{type=\"admitted\"}",
        "gateway_ws_frames_sent_total{type=\"pong\"}",
        "gateway_ws_connections",
    ] {
        assert!(metrics.contains(name), "{name} missing");
    }
    gw.running.stop().await;
}

#[tokio::test]
async fn garbage_frames_close_the_socket_with_a_reason() {
    let gw = TestGateway::spawn().await;
    let event = paused_event(&gw).await;
    let (_, mut client) = waiting_socket(&gw, event).await;
    frame(&mut client, Duration::from_secs(2)).await;
    send(&mut client, r#"{"type":"subscribe","all":true}"#).await;
    assert_eq!(close_code(&mut client).await, 1008);

    let (_, mut client) = waiting_socket(&gw, event).await;
    frame(&mut client, Duration::from_secs(2)).await;
    client
        .send(Message::Binary(vec![0; 16].into()))
        .await
        .expect("send");
    assert_eq!(close_code(&mut client).await, 1003);

    // Over the frame size limit: the connection is dropped, the gateway lives on.
    let (_, mut client) = waiting_socket(&gw, event).await;
    frame(&mut client, Duration::from_secs(2)).await;
    let _ = client
        .send(Message::Text("x".repeat(64 * 1024).into()))
        .await;
    let ended = tokio::time::timeout(Duration::from_secs(5), async {
        while let Some(Ok(message)) = client.next().await {
            if matches!(message, Message::Close(_)) {
                break;
            }
        }
    })
    .await;
    assert!(ended.is_ok(), "an oversized frame ends the connection");
    assert_eq!(gw.get("/live").await.status(), 200);
    gw.running.stop().await;
}

#[tokio::test]
async fn a_newer_socket_of_the_same_user_replaces_the_older() {
    let gw = TestGateway::spawn().await;
    let event = paused_event(&gw).await;
    let user = UserId::new_v7();
    let token = token_for(user, Role::User);
    gw.join(event, &token).await;
    let mut old = connect(&gw, event).await;
    auth(&mut old, &token).await;
    frame(&mut old, Duration::from_secs(2)).await;
    let mut new = connect(&gw, event).await;
    auth(&mut new, &token).await;
    assert!(matches!(
        frame(&mut new, Duration::from_secs(2)).await,
        ServerFrame::Position { .. }
    ));
    assert_eq!(close_code(&mut old).await, 4409);
    // The newer one still gets its admission.
    resume(&gw, event).await;
    loop {
        if let ServerFrame::Admitted { .. } = frame(&mut new, Duration::from_secs(3)).await {
            break;
        }
    }
    gw.running.stop().await;
}

#[tokio::test]
async fn sold_out_tells_every_waiting_socket_at_once() {
    let gw = TestGateway::spawn().await;
    let event = paused_event(&gw).await;
    let mut clients = Vec::new();
    for _ in 0..20 {
        let (_, mut client) = waiting_socket(&gw, event).await;
        frame(&mut client, Duration::from_secs(2)).await;
        clients.push(client);
    }
    let started = Instant::now();
    gw.room
        .close(event, ClosedReason::SoldOut)
        .await
        .expect("close");
    for client in &mut clients {
        assert_eq!(
            frame(client, Duration::from_secs(2)).await,
            ServerFrame::Closed {
                reason: ClosedReason::SoldOut
            }
        );
        assert_eq!(close_code(client).await, 1000);
    }
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "closing is not throttled"
    );
    gw.running.stop().await;
}

#[tokio::test]
async fn new_positions_leave_spread_over_the_flush_not_at_once() {
    let gw = TestGateway::spawn().await;
    // Two buyers ahead hold every admission, so the sockets behind them stay waiting; a third
    // waits first in line, so that every socket has someone ahead (and an ETA that a rate
    // changes).
    let event = gw.open_event(settings(1000, 2, 60)).await;
    for _ in 0..3 {
        let token = token_for(UserId::new_v7(), Role::User);
        assert_eq!(gw.join(event, &token).await.status(), 200);
    }
    let until = Instant::now() + Duration::from_secs(10);
    while gw.room.tick(event).await.expect("tick").serving < 2 {
        assert!(Instant::now() < until, "the two ahead were not admitted");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut clients = Vec::new();
    for _ in 0..24 {
        let (_, mut client) = waiting_socket(&gw, event).await;
        frame(&mut client, Duration::from_secs(2)).await;
        clients.push(client);
    }
    // A slower rate changes every waiting socket's ETA but neither opens nor closes the queue.
    let patched = QueuePatch {
        admit_per_sec: Some(1),
        ..QueuePatch::default()
    };
    gw.room
        .patch(event, UserId::new_v7(), &patched)
        .await
        .expect("patch");
    let started = Instant::now();
    let arrivals = futures::future::join_all(clients.iter_mut().map(|client| async move {
        match frame(client, Duration::from_secs(5)).await {
            ServerFrame::Position { .. } => started.elapsed(),
            other => panic!("expected a new position, got {other:?}"),
        }
    }))
    .await;
    assert_spread(
        "new positions",
        &arrivals,
        Duration::from_millis(300),
        flash_gateway::hub::FLUSH_EVERY
            + flash_gateway::hub::POSITION_SPREAD
            + Duration::from_millis(1_500),
    );
    gw.running.stop().await;
}

#[tokio::test]
async fn a_stop_closes_its_sockets_spread_over_the_drain_window() {
    let redis = flash_kit::testing::TestRedis::new();
    let amqp = flash_kit::testing::TestAmqp::new();
    let mut cfg = crate::helpers::config(&redis, &amqp);
    cfg.ws_drain_ms = 1_500;
    let gw = TestGateway::spawn_with(cfg, redis, amqp).await;
    let event = paused_event(&gw).await;
    let mut clients = Vec::new();
    for _ in 0..24 {
        let token = token_for(UserId::new_v7(), Role::User);
        gw.join(event, &token).await;
        let mut client = connect(&gw, event).await;
        auth(&mut client, &token).await;
        frame(&mut client, Duration::from_secs(2)).await;
        clients.push(client);
    }
    let TestGateway { running, .. } = gw;
    let started = tokio::time::Instant::now();
    let stopping = tokio::spawn(async move {
        running.stop().await;
        started.elapsed()
    });
    let closes = futures::future::join_all(clients.iter_mut().map(|client| async move {
        assert_eq!(close_code(client).await, 1012);
        started.elapsed()
    }))
    .await;
    let stopped = stopping.await.expect("stopped");
    let last = assert_spread(
        "closes",
        &closes,
        Duration::from_millis(400),
        Duration::from_millis(3_000),
    );
    // The server stops tracking a connection once it is upgraded: the stop must wait for its
    // sockets itself, or the process ends and drops them without a close frame.
    assert!(
        stopped >= last,
        "the stop returned after {stopped:?}, before its last socket closed ({last:?})"
    );
}

#[tokio::test]
async fn shutdown_closes_with_1012_and_a_reconnect_elsewhere_keeps_the_place() {
    let gw = TestGateway::spawn().await;
    let event = paused_event(&gw).await;
    // Two people ahead, then our user.
    for _ in 0..2 {
        gw.join(event, &token_for(UserId::new_v7(), Role::User))
            .await;
    }
    let user = UserId::new_v7();
    let token = token_for(user, Role::User);
    gw.join(event, &token).await;
    let mut client = connect(&gw, event).await;
    auth(&mut client, &token).await;
    let first = frame(&mut client, Duration::from_secs(2)).await;

    // A second replica on the same stores.
    let (port, other) = gw.replica().await;

    let TestGateway { running, .. } = gw;
    let stopping = tokio::spawn(running.stop());
    assert_eq!(close_code(&mut client).await, 1012);
    stopping.await.expect("stopped");

    let url = format!("ws://127.0.0.1:{port}/queue/v1/events/{event}/ws");
    let mut again = connect_async(url).await.expect("reconnect").0;
    auth(&mut again, &token).await;
    assert_eq!(
        frame(&mut again, Duration::from_secs(2)).await,
        first,
        "same place, same frame"
    );
    assert!(matches!(
        first,
        ServerFrame::Position {
            number: Some(3),
            ahead: Some(2),
            ..
        }
    ));
    other.stop().await;
}

#[tokio::test]
async fn a_stuck_client_never_delays_the_others() {
    let gw = TestGateway::spawn().await;
    let event = paused_event(&gw).await;

    // The stuck client is first in line.
    let stuck_user = UserId::new_v7();
    let stuck_token = token_for(stuck_user, Role::User);
    gw.join(event, &stuck_token).await;
    let (to_server, incoming) = futures::channel::mpsc::unbounded();
    to_server
        .unbounded_send(Ok(axum::extract::ws::Message::Text(
            serde_json::json!({"type": "auth", "token": stuck_token})
                .to_string()
                .into(),
        )))
        .expect("queue auth");
    let context = SocketContext {
        event,
        room: gw.state.room.clone(),
        hub: Arc::clone(&gw.state.hub),
        auth: Arc::clone(&gw.state.auth),
        gate: Arc::clone(&gw.state.gate),
        limits: Arc::clone(&gw.state.limits),
        shutdown: gw.state.shutdown.clone(),
        auth_deadline: Duration::from_secs(1),
        drain: Duration::ZERO,
    };
    let stuck = tokio::spawn(ws::run(
        ScriptedClient {
            incoming,
            outgoing: None,
        },
        context,
    ));

    let mut clients = Vec::new();
    for _ in 0..5 {
        let (_, mut client) = waiting_socket(&gw, event).await;
        frame(&mut client, Duration::from_secs(2)).await;
        clients.push(client);
    }
    resume(&gw, event).await;
    for client in &mut clients {
        loop {
            if let ServerFrame::Admitted { .. } = frame(client, Duration::from_secs(3)).await {
                break;
            }
        }
    }
    assert!(
        !stuck.is_finished(),
        "the stuck client is still being waited on, alone"
    );
    stuck.abort();
    drop(to_server);
    gw.running.stop().await;
}

/// A client whose frames are scripted and whose received messages are recorded; without a
/// recorder (`outgoing: None`) it never accepts another byte (a stuck client).
struct ScriptedClient {
    incoming:
        futures::channel::mpsc::UnboundedReceiver<Result<axum::extract::ws::Message, Infallible>>,
    outgoing: Option<futures::channel::mpsc::UnboundedSender<axum::extract::ws::Message>>,
}

impl ScriptedClient {
    fn ready(&self) -> Poll<Result<(), Infallible>> {
        if self.outgoing.is_some() {
            Poll::Ready(Ok(()))
        } else {
            Poll::Pending
        }
    }
}

impl Stream for ScriptedClient {
    type Item = Result<axum::extract::ws::Message, Infallible>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.incoming.poll_next_unpin(cx)
    }
}

impl Sink<axum::extract::ws::Message> for ScriptedClient {
    type Error = Infallible;

    fn poll_ready(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.ready()
    }

    fn start_send(
        self: Pin<&mut Self>,
        item: axum::extract::ws::Message,
    ) -> Result<(), Infallible> {
        if let Some(outgoing) = &self.outgoing {
            drop(outgoing.unbounded_send(item));
        }
        Ok(())
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.ready()
    }

    fn poll_close(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.ready()
    }
}

/// Under a Redis that cannot answer (overloaded, or cut off as here), a replica still tells
/// buyers the sale is over: its waiting sockets from the closing message alone, and sockets
/// that connect afterwards from what it knows, without a read. Nobody waits on for a sold-out
/// event.
#[tokio::test]
async fn a_closing_reaches_sockets_even_when_the_queue_cannot_be_read() {
    use flash_gateway::hub::Hub;
    use flash_gateway::waiting_room::{Place, QueueView, RawState, WaitingRoom};
    use flash_kit::stores::{RedisMode, connect_redis_in};
    use flash_kit::testing::{TcpProxy, TestRedis};

    let gw = TestGateway::spawn().await;
    let redis = TestRedis::new();
    let proxy = TcpProxy::start("127.0.0.1:6379".parse().expect("addr")).await;
    let conn = connect_redis_in(&proxy.url_for(&redis.url), RedisMode::Node)
        .await
        .expect("redis");
    let room = WaitingRoom::new(conn, redis.keys());
    let hub = Arc::new(Hub::new(room.clone()));
    let event = EventId::new_v7();
    let open = QueueView {
        state: RawState::Open,
        paused: false,
        closed_reason: None,
        admit_per_sec: 10,
        admission_ttl_s: 60,
        serving: 0,
        reserved_pending: 0,
    };
    let mut waiting = hub.register(event, UserId::new_v7(), Place::Number(5), None, open);
    waiting.view.borrow_and_update();

    proxy.cut();
    tokio::time::timeout(
        Duration::from_secs(15),
        hub.on_notification(event, "closed sold_out"),
    )
    .await
    .expect("the notification is handled in time");
    assert!(
        waiting.view.has_changed().expect("hub alive"),
        "the socket is woken"
    );
    let view = waiting.view.borrow_and_update().view;
    assert_eq!(
        (view.state, view.closed_reason),
        (RawState::Closed, Some(ClosedReason::SoldOut))
    );

    // A buyer connects now: the queue cannot be read, and they are told all the same.
    let token = token_for(UserId::new_v7(), Role::User);
    let (to_server, incoming) = futures::channel::mpsc::unbounded();
    to_server
        .unbounded_send(Ok(axum::extract::ws::Message::Text(
            serde_json::json!({"type": "auth", "token": token})
                .to_string()
                .into(),
        )))
        .expect("queue auth");
    let (outgoing, mut received) = futures::channel::mpsc::unbounded();
    let context = SocketContext {
        event,
        room,
        hub,
        auth: Arc::clone(&gw.state.auth),
        gate: Arc::clone(&gw.state.gate),
        limits: Arc::clone(&gw.state.limits),
        shutdown: gw.state.shutdown.clone(),
        auth_deadline: Duration::from_secs(1),
        drain: Duration::ZERO,
    };
    tokio::time::timeout(
        Duration::from_secs(15),
        ws::run(
            ScriptedClient {
                incoming,
                outgoing: Some(outgoing),
            },
            context,
        ),
    )
    .await
    .expect("the socket ends in time");
    let Some(axum::extract::ws::Message::Text(text)) = received.next().await else {
        panic!("a frame first");
    };
    assert_eq!(
        serde_json::from_str::<ServerFrame>(&text).expect("a contract frame"),
        ServerFrame::Closed {
            reason: ClosedReason::SoldOut
        }
    );
    let Some(axum::extract::ws::Message::Close(Some(close))) = received.next().await else {
        panic!("then a close");
    };
    assert_eq!(close.code, 1000);
    drop(to_server);
    gw.running.stop().await;
}
