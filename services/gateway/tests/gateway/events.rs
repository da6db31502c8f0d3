//! The api's messages on `flash.events` drive the queues.

use std::time::Duration;

use flash_gateway::waiting_room::RawState;
use flash_kit::amqp::publish;
use flash_protocol::claims::Role;
use flash_protocol::event::{EventStatus, QueueSettings};
use flash_protocol::messages::{
    EventCreated, EventQueueInfo, EventSoldOut, EventUpdated, GateConsumed,
};
use flash_protocol::queue::{QueueState, Ticket, TicketState};
use flash_protocol::{EventId, OrderId, UserId};
use time::OffsetDateTime;

use crate::helpers::{TestGateway, settings, token_for};

async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    for _ in 0..100 {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("never: {what}");
}

/// A connection to the gateway's broker and a channel with publisher confirms on it.
async fn confirmed_channel(gw: &TestGateway) -> (lapin::Connection, lapin::Channel) {
    let connection =
        lapin::Connection::connect(&gw.amqp.url, lapin::ConnectionProperties::default())
            .await
            .expect("amqp");
    let channel = connection.create_channel().await.expect("channel");
    channel
        .confirm_select(lapin::options::ConfirmSelectOptions::default())
        .await
        .expect("confirms");
    (connection, channel)
}

#[tokio::test]
async fn created_updated_consumed_and_sold_out_messages_are_applied() {
    let gw = TestGateway::spawn().await;
    let (connection, channel) = confirmed_channel(&gw).await;
    let names = &gw.amqp.names;

    let event = EventId::new_v7();
    let info = EventQueueInfo {
        event_id: event,
        name: "Announced".into(),
        sale_opens_at: OffsetDateTime::now_utc(),
        starts_at: OffsetDateTime::now_utc() + time::Duration::days(3),
        status: EventStatus::OnSale,
    };
    publish(
        &channel,
        names,
        "m1",
        &EventCreated {
            event: info.clone(),
            queue: settings(1000, 1, 60),
        },
    )
    .await
    .expect("publish");
    let (alice, bob) = (UserId::new_v7(), UserId::new_v7());
    let (alice_token, bob_token) = (token_for(alice, Role::User), token_for(bob, Role::User));
    eventually("the queue exists", || async {
        gw.join(event, &alice_token).await.status() == 200
    })
    .await;
    gw.join(event, &bob_token).await;
    gw.wait_for_state(event, &alice_token, TicketState::Admitted)
        .await;
    // max_active 1: bob waits until alice's gate token is used.
    let bob_ticket: Ticket = gw
        .status(event, &bob_token)
        .await
        .json()
        .await
        .expect("ticket");
    assert_eq!(bob_ticket.state, TicketState::Waiting);

    // A token of another admission of alice's (say, one before she left and joined again)
    // frees nothing.
    let stale = GateConsumed {
        event_id: event,
        user_id: alice,
        jti: uuid::Uuid::new_v4(),
        order_id: OrderId::new_v7(),
        consumed_at: OffsetDateTime::now_utc(),
        remaining: Some(7),
    };
    publish(&channel, names, "m2-stale", &stale)
        .await
        .expect("publish");
    let admitted_at = gw
        .room
        .admitted_at(event, alice)
        .await
        .expect("read")
        .expect("alice is admitted");
    let consumed = GateConsumed {
        jti: flash_gateway::gate::GateIssuer::jti(event, alice, admitted_at),
        ..stale
    };
    publish(&channel, names, "m2", &consumed)
        .await
        .expect("publish");
    publish(&channel, names, "m2", &consumed)
        .await
        .expect("duplicate delivery is harmless");
    gw.wait_for_state(event, &bob_token, TicketState::Admitted)
        .await;

    // An update changes the settings.
    publish(
        &channel,
        names,
        "m3",
        &EventUpdated {
            event: info.clone(),
            queue: Some(settings(7, 3, 90)),
            remaining: None,
        },
    )
    .await
    .expect("publish");
    eventually("the settings changed", || async {
        gw.room
            .stats(event)
            .await
            .expect("stats")
            .is_some_and(|s| s.admit_per_sec == 7 && s.max_active == 3)
    })
    .await;

    publish(
        &channel,
        names,
        "m4",
        &EventSoldOut {
            event_id: event,
            sold_out_at: OffsetDateTime::now_utc(),
            reserved_pending: 0,
        },
    )
    .await
    .expect("publish");
    gw.wait_for_state(event, &bob_token, TicketState::Closed)
        .await;
    drop(connection.close(200, "done".into()).await);
    gw.running.stop().await;
}

#[tokio::test]
async fn garbage_messages_are_dropped_without_stopping_the_consumer() {
    let gw = TestGateway::spawn().await;
    let connection =
        lapin::Connection::connect(&gw.amqp.url, lapin::ConnectionProperties::default())
            .await
            .expect("amqp");
    let channel = connection.create_channel().await.expect("channel");
    let names = &gw.amqp.names;
    let exchange = names.exchange(flash_protocol::messages::Exchange::Events);
    for (kind, body) in [
        ("event.created", &b"{not json"[..]),
        ("event.unknown", b"{}"),
        ("", b"\xff"),
    ] {
        let mut properties = lapin::BasicProperties::default();
        if !kind.is_empty() {
            properties = properties.with_type(kind.into());
        }
        channel
            .basic_publish(
                exchange.clone().into(),
                "event.created".into(),
                Default::default(),
                body,
                properties,
            )
            .await
            .expect("publish");
    }
    let event = EventId::new_v7();
    let info = EventQueueInfo {
        event_id: event,
        name: "After garbage".into(),
        sale_opens_at: OffsetDateTime::now_utc(),
        starts_at: OffsetDateTime::now_utc(),
        status: EventStatus::OnSale,
    };
    channel
        .confirm_select(Default::default())
        .await
        .expect("confirms");
    publish(
        &channel,
        names,
        "ok",
        &EventCreated {
            event: info,
            queue: settings(10, 10, 60),
        },
    )
    .await
    .expect("publish");
    let token = token_for(UserId::new_v7(), Role::User);
    eventually("a good message after garbage is applied", || async {
        gw.join(event, &token).await.status() == 200
    })
    .await;
    drop(connection.close(200, "done".into()).await);
    gw.running.stop().await;
}

/// Messages may arrive out of order (several replicas consume the queue, each handles many
/// deliveries at once, failures are redelivered): a status change older than the last one
/// applied, by its position in the api's outbox, changes nothing. (The 150,000-buyer drill
/// ended with the queue open after its event sold out: an "on sale again" applied late.)
#[tokio::test]
async fn a_late_status_message_never_undoes_a_newer_one() {
    use flash_kit::amqp::outbox_properties;
    use flash_protocol::messages::{Exchange, Message};

    let gw = TestGateway::spawn().await;
    let (connection, channel) = confirmed_channel(&gw).await;
    let send = |sequence: i64, kind: &'static str, routing_key: &'static str, body: Vec<u8>| {
        let channel = channel.clone();
        let exchange = gw.amqp.names.exchange(Exchange::Events);
        async move {
            channel
                .basic_publish(
                    exchange.as_str().into(),
                    routing_key.into(),
                    lapin::options::BasicPublishOptions::default(),
                    &body,
                    outbox_properties(kind, &format!("message-{sequence}"), sequence),
                )
                .await
                .expect("publish")
                .await
                .expect("confirm");
        }
    };
    let event = EventId::new_v7();
    let info = |status| EventQueueInfo {
        event_id: event,
        name: "Ordered".into(),
        sale_opens_at: OffsetDateTime::now_utc(),
        starts_at: OffsetDateTime::now_utc() + time::Duration::days(3),
        status,
    };
    let state = || async { gw.room.view(event).await.expect("view").map(|v| v.state) };

    send(
        5,
        EventCreated::TYPE,
        EventCreated::ROUTING_KEY,
        serde_json::to_vec(&EventCreated {
            event: info(EventStatus::OnSale),
            queue: settings(10, 10, 60),
        })
        .expect("json"),
    )
    .await;
    eventually("open", || async { state().await == Some(RawState::Open) }).await;
    let sold_out = EventSoldOut {
        event_id: event,
        sold_out_at: OffsetDateTime::now_utc(),
        reserved_pending: 0,
    };
    send(
        10,
        EventSoldOut::TYPE,
        EventSoldOut::ROUTING_KEY,
        serde_json::to_vec(&sold_out).expect("json"),
    )
    .await;
    eventually("closed", || async {
        state().await == Some(RawState::Closed)
    })
    .await;

    // "On sale again" from before the sell-out arrives late: the queue stays closed.
    send(
        9,
        EventUpdated::TYPE,
        EventUpdated::ROUTING_KEY,
        serde_json::to_vec(&EventUpdated {
            event: info(EventStatus::OnSale),
            queue: None,
            remaining: None,
        })
        .expect("json"),
    )
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        state().await,
        Some(RawState::Closed),
        "a late reopening is ignored"
    );

    // A newer one reopens it; the old sell-out redelivered does not close it again.
    send(
        11,
        EventUpdated::TYPE,
        EventUpdated::ROUTING_KEY,
        serde_json::to_vec(&EventUpdated {
            event: info(EventStatus::OnSale),
            queue: None,
            remaining: None,
        })
        .expect("json"),
    )
    .await;
    eventually("open again", || async {
        state().await == Some(RawState::Open)
    })
    .await;
    send(
        10,
        EventSoldOut::TYPE,
        EventSoldOut::ROUTING_KEY,
        serde_json::to_vec(&sold_out).expect("json"),
    )
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        state().await,
        Some(RawState::Open),
        "a redelivered sell-out is ignored"
    );
    drop(connection.close(200, "done".into()).await);
    gw.running.stop().await;
}

/// Waits until the buyer of `tokens[last_in]` is admitted, lets the queue tick more, and
/// checks that exactly `admitted` buyers are in and the next in line still waits.
async fn settles_with(
    gw: &TestGateway,
    event: EventId,
    tokens: &[String],
    last_in: usize,
    admitted: usize,
) {
    gw.wait_for_state(event, &tokens[last_in], TicketState::Admitted)
        .await;
    for _ in 0..5 {
        gw.room.tick(event).await.expect("tick");
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    // Each buyer's state; None once they left.
    let mut states = Vec::new();
    for token in tokens {
        let response = gw.status(event, token).await;
        states.push(if response.status() == 200 {
            Some(response.json::<Ticket>().await.expect("ticket").state)
        } else {
            None
        });
    }
    let now = states
        .iter()
        .filter(|s| **s == Some(TicketState::Admitted))
        .count();
    assert_eq!(now, admitted, "{states:?}");
    assert_eq!(
        states[last_in + 1],
        Some(TicketState::Waiting),
        "{states:?}"
    );
}

/// A new event on sale (`event.created` at outbox position 1), once its queue is open.
async fn on_sale(gw: &TestGateway, channel: &lapin::Channel, queue: QueueSettings) -> EventId {
    let event = EventId::new_v7();
    send_in_order(
        gw,
        channel,
        1,
        &EventCreated {
            event: info(event, EventStatus::OnSale),
            queue,
        },
    )
    .await;
    eventually("open", || async {
        gw.room
            .view(event)
            .await
            .expect("view")
            .is_some_and(|v| v.state == RawState::Open)
    })
    .await;
    event
}

/// Publishes `message` with its outbox position `sequence`, as the api's relay does.
async fn send_in_order<M: flash_protocol::messages::Message>(
    gw: &TestGateway,
    channel: &lapin::Channel,
    sequence: i64,
    message: &M,
) {
    use flash_kit::amqp::outbox_properties;
    use flash_protocol::messages::Exchange;
    channel
        .basic_publish(
            gw.amqp.names.exchange(Exchange::Events).as_str().into(),
            M::ROUTING_KEY.into(),
            lapin::options::BasicPublishOptions::default(),
            &serde_json::to_vec(message).expect("json"),
            outbox_properties(M::TYPE, &format!("message-{sequence}"), sequence),
        )
        .await
        .expect("publish")
        .await
        .expect("confirm");
}

fn info(event: EventId, status: EventStatus) -> EventQueueInfo {
    EventQueueInfo {
        event_id: event,
        name: "Owned".into(),
        sale_opens_at: OffsetDateTime::now_utc(),
        starts_at: OffsetDateTime::now_utc() + time::Duration::days(3),
        status,
    }
}

#[tokio::test]
async fn the_gateway_owns_queue_settings_once_the_queue_exists() {
    let gw = TestGateway::spawn().await;
    let (connection, channel) = confirmed_channel(&gw).await;
    let event = on_sale(&gw, &channel, settings(200, 100, 60)).await;
    let rate = || async {
        gw.room
            .stats(event)
            .await
            .expect("stats")
            .map(|s| s.admit_per_sec)
    };
    eventually("created", || async { rate().await == Some(200) }).await;

    // An operator throttles the queue in the gateway.
    let admin = token_for(UserId::new_v7(), Role::Admin);
    let patched = gw
        .call(
            reqwest::Method::PATCH,
            &format!("/queue/v1/admin/events/{event}"),
            Some(&admin),
            Some(serde_json::json!({"admit_per_sec": 3})),
        )
        .await;
    assert_eq!(patched.status(), 200);

    // Unrelated updates (a rename, stock back on sale) and a redelivered creation keep it.
    send_in_order(
        &gw,
        &channel,
        2,
        &EventUpdated {
            event: info(event, EventStatus::OnSale),
            queue: None,
            remaining: None,
        },
    )
    .await;
    send_in_order(
        &gw,
        &channel,
        1,
        &EventCreated {
            event: info(event, EventStatus::OnSale),
            queue: settings(200, 100, 60),
        },
    )
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(rate().await, Some(3), "the operator's throttle holds");

    // An admin's explicit change through the api replaces it.
    send_in_order(
        &gw,
        &channel,
        3,
        &EventUpdated {
            event: info(event, EventStatus::OnSale),
            queue: Some(settings(50, 100, 60)),
            remaining: None,
        },
    )
    .await;
    eventually("replaced", || async { rate().await == Some(50) }).await;
    drop(connection.close(200, "done".into()).await);
}

#[tokio::test]
async fn an_update_before_its_creation_opens_a_queue_that_admits_once_settings_arrive() {
    let gw = TestGateway::spawn().await;
    let (connection, channel) = confirmed_channel(&gw).await;
    let event = EventId::new_v7();
    send_in_order(
        &gw,
        &channel,
        5,
        &EventUpdated {
            event: info(event, EventStatus::OnSale),
            queue: None,
            remaining: None,
        },
    )
    .await;
    let user = token_for(UserId::new_v7(), Role::User);
    eventually("the queue exists", || async {
        gw.join(event, &user).await.status() == 200
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let ticket: Ticket = gw.status(event, &user).await.json().await.expect("ticket");
    assert_eq!(
        ticket.state,
        TicketState::Waiting,
        "no settings, no admissions"
    );
    // The creation arrives late: its status is old news, its settings are not.
    send_in_order(
        &gw,
        &channel,
        4,
        &EventCreated {
            event: info(event, EventStatus::Scheduled),
            queue: settings(100, 10, 60),
        },
    )
    .await;
    gw.wait_for_state(event, &user, TicketState::Admitted).await;
    drop(connection.close(200, "done".into()).await);
}

#[tokio::test]
async fn an_ended_event_is_retired_its_keys_expire_and_its_series_go() {
    let gw = TestGateway::spawn().await;
    let (connection, channel) = confirmed_channel(&gw).await;
    let event = on_sale(&gw, &channel, settings(100, 10, 60)).await;
    let user = token_for(UserId::new_v7(), Role::User);
    eventually("open", || async {
        gw.join(event, &user).await.status() == 200
    })
    .await;
    let metrics = || async {
        gw.call(reqwest::Method::GET, "/metrics", None, None)
            .await
            .text()
            .await
            .expect("text")
    };
    let label = format!("event=\"{event}\"");
    eventually("the queue has series", || async {
        metrics().await.contains(&label)
    })
    .await;
    assert!(gw.room.events().await.expect("events").contains(&event));

    send_in_order(
        &gw,
        &channel,
        2,
        &EventUpdated {
            event: info(event, EventStatus::Ended),
            queue: None,
            remaining: None,
        },
    )
    .await;
    eventually("retired", || async {
        !gw.room.events().await.expect("events").contains(&event)
    })
    .await;
    let mut redis = redis::Client::open(gw.redis.url.as_str())
        .expect("client")
        .get_multiplexed_async_connection()
        .await
        .expect("redis");
    for key in gw.room.keys().queue(event).all() {
        let ttl: i64 = redis::cmd("PTTL")
            .arg(key)
            .query_async(&mut redis)
            .await
            .expect("pttl");
        // -2: the key never existed (e.g. no pre-queue); otherwise it expires within a day.
        assert!(ttl == -2 || (ttl > 0 && ttl <= 86_400_000), "{key}: {ttl}");
    }
    let ticket: Ticket = gw.status(event, &user).await.json().await.expect("ticket");
    assert_eq!(
        ticket.state,
        TicketState::Closed,
        "late reads still answered"
    );
    // Within the ticker's refresh (2 s), the queue's series are gone from /metrics.
    for _ in 0..60 {
        if !metrics().await.contains(&label) {
            drop(connection.close(200, "done".into()).await);
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the retired queue's series are still exported");
}

/// The order that took the last ticket stops admissions before its admission is freed: its
/// `gate.consumed` says no ticket is left, so a tick before `event.sold_out` arrives gives the
/// freed place to nobody. A later return of tickets admits again; an older message than the
/// return changes nothing.
#[tokio::test]
async fn the_last_ticket_stops_admissions_before_its_admission_is_freed() {
    let gw = TestGateway::spawn().await;
    let (connection, channel) = confirmed_channel(&gw).await;
    let event = on_sale(&gw, &channel, settings(1000, 1, 60)).await;
    let buyers: Vec<UserId> = (0..3).map(|_| UserId::new_v7()).collect();
    let tokens: Vec<String> = buyers.iter().map(|u| token_for(*u, Role::User)).collect();
    assert_eq!(gw.join(event, &tokens[0]).await.status(), 200);
    gw.wait_for_state(event, &tokens[0], TicketState::Admitted)
        .await;
    for token in &tokens[1..] {
        assert_eq!(gw.join(event, token).await.status(), 200);
    }
    let used = |buyer: usize, remaining: Option<u64>| {
        let gw = &gw;
        let user = buyers[buyer];
        async move {
            let admitted_at = gw
                .room
                .admitted_at(event, user)
                .await
                .expect("read")
                .expect("admitted");
            GateConsumed {
                event_id: event,
                user_id: user,
                jti: flash_gateway::gate::GateIssuer::jti(event, user, admitted_at),
                order_id: OrderId::new_v7(),
                consumed_at: OffsetDateTime::now_utc(),
                remaining,
            }
        }
    };
    let settled = || async {
        for _ in 0..5 {
            gw.room.tick(event).await.expect("tick");
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    };

    // The first buyer's order took the last ticket; event.sold_out has not arrived.
    let last = used(0, Some(0)).await;
    send_in_order(&gw, &channel, 3, &last).await;
    eventually("the admission freed", || async {
        gw.room
            .stats(event)
            .await
            .expect("stats")
            .is_some_and(|s| s.admitted_active == 0)
    })
    .await;
    settled().await;
    let waiting = gw.status(event, &tokens[1]).await;
    assert_eq!(
        waiting.json::<Ticket>().await.expect("ticket").state,
        TicketState::Waiting,
        "the freed place went to nobody"
    );

    // Two tickets come back (a later message): the next in line is admitted (one at a time).
    send_in_order(
        &gw,
        &channel,
        5,
        &EventUpdated {
            event: info(event, EventStatus::OnSale),
            queue: None,
            remaining: Some(2),
        },
    )
    .await;
    gw.wait_for_state(event, &tokens[1], TicketState::Admitted)
        .await;
    // A message older than the return that says 0 frees the second buyer's place but stops
    // nothing: the other returned ticket goes to the third.
    let stale = used(1, Some(0)).await;
    send_in_order(&gw, &channel, 4, &stale).await;
    gw.wait_for_state(event, &tokens[2], TicketState::Admitted)
        .await;
    drop(connection.close(200, "done".into()).await);
}

/// Sold out while orders are still being paid, the queue keeps every place and admits nobody;
/// buyers see how many orders are being paid. Tickets coming back (on sale again) admit the
/// next in line; a sold-out with nothing left to pay closes the queue.
#[tokio::test]
async fn a_sold_out_queue_holds_its_line_while_orders_are_being_paid() {
    let gw = TestGateway::spawn().await;
    let (connection, channel) = confirmed_channel(&gw).await;
    let event = on_sale(&gw, &channel, settings(100, 1, 60)).await;
    let view = || async { gw.room.view(event).await.expect("view") };
    let (first, second) = (UserId::new_v7(), UserId::new_v7());
    let (first_token, second_token) = (token_for(first, Role::User), token_for(second, Role::User));
    assert_eq!(gw.join(event, &first_token).await.status(), 200);
    gw.wait_for_state(event, &first_token, TicketState::Admitted)
        .await;
    assert_eq!(gw.join(event, &second_token).await.status(), 200);

    // The first buyer's order took the last ticket; 3 orders are still being paid. The hold
    // comes first here (the test is about the hold; the other order is
    // the_last_ticket_stops_admissions_before_its_admission_is_freed).
    send_in_order(
        &gw,
        &channel,
        2,
        &EventSoldOut {
            event_id: event,
            sold_out_at: OffsetDateTime::now_utc(),
            reserved_pending: 3,
        },
    )
    .await;
    eventually("held before the admission is freed", || async {
        view().await.is_some_and(|v| v.reserved_pending == 3)
    })
    .await;
    send_in_order(
        &gw,
        &channel,
        3,
        &GateConsumed {
            event_id: event,
            user_id: first,
            jti: flash_gateway::gate::GateIssuer::jti(
                event,
                first,
                gw.room
                    .admitted_at(event, first)
                    .await
                    .expect("read")
                    .expect("admitted"),
            ),
            order_id: OrderId::new_v7(),
            consumed_at: OffsetDateTime::now_utc(),
            remaining: Some(0),
        },
    )
    .await;
    eventually("held", || async {
        view().await.is_some_and(|v| v.reserved_pending == 3)
    })
    .await;
    // An edit of the event meanwhile (status sold out) does not close it either.
    send_in_order(
        &gw,
        &channel,
        4,
        &EventUpdated {
            event: info(event, EventStatus::SoldOut),
            queue: None,
            remaining: None,
        },
    )
    .await;
    tokio::time::sleep(Duration::from_millis(600)).await;
    let held: Ticket = gw
        .status(event, &second_token)
        .await
        .json()
        .await
        .expect("ticket");
    assert_eq!(held.state, TicketState::Waiting, "{held:?}");
    assert_eq!(held.reserved_pending, 3);
    assert_eq!(held.eta_s, None, "no honest estimate while nothing is left");
    for _ in 0..3 {
        gw.room.tick(event).await.expect("tick");
    }
    let still: Ticket = gw
        .status(event, &second_token)
        .await
        .json()
        .await
        .expect("ticket");
    assert_eq!(
        still.state,
        TicketState::Waiting,
        "nobody admitted while held"
    );
    assert_eq!(view().await.map(|v| v.state), Some(RawState::Open));
    let stats = gw.room.stats(event).await.expect("stats").expect("queue");
    assert_eq!(
        (stats.state, stats.reserved_pending),
        (QueueState::Open, 3),
        "operators see the hold"
    );

    // A payment failed: its ticket is back, the next in line gets it.
    send_in_order(
        &gw,
        &channel,
        5,
        &EventUpdated {
            event: info(event, EventStatus::OnSale),
            queue: None,
            remaining: None,
        },
    )
    .await;
    let admitted = gw
        .wait_for_state(event, &second_token, TicketState::Admitted)
        .await;
    assert_eq!(admitted.reserved_pending, 0);
    let stats = gw.room.stats(event).await.expect("stats").expect("queue");
    assert_eq!(stats.reserved_pending, 0, "the hold is over");

    // Sold out again with the rest paid: nothing can come back, the queue closes.
    send_in_order(
        &gw,
        &channel,
        6,
        &EventSoldOut {
            event_id: event,
            sold_out_at: OffsetDateTime::now_utc(),
            reserved_pending: 0,
        },
    )
    .await;
    eventually("closed", || async {
        view().await.is_some_and(|v| v.state == RawState::Closed)
    })
    .await;
    drop(connection.close(200, "done".into()).await);
    gw.running.stop().await;
}

/// Tickets that come back late in a sale let in as many buyers as tickets came back, not a
/// second's worth: the budget of a return is the stock; an admission left unused gives its
/// turn back; an update without a count lifts the bound.
#[tokio::test]
async fn a_return_admits_no_more_buyers_than_tickets_left() {
    let gw = TestGateway::spawn().await;
    let (connection, channel) = confirmed_channel(&gw).await;
    let event = on_sale(&gw, &channel, settings(1000, 100, 60)).await;
    // Sold out with orders being paid: the line holds while it forms.
    send_in_order(
        &gw,
        &channel,
        2,
        &EventSoldOut {
            event_id: event,
            sold_out_at: OffsetDateTime::now_utc(),
            reserved_pending: 5,
        },
    )
    .await;
    eventually("held", || async {
        gw.room
            .view(event)
            .await
            .expect("view")
            .is_some_and(|v| v.reserved_pending == 5)
    })
    .await;
    let tokens: Vec<String> = (0..8)
        .map(|_| token_for(UserId::new_v7(), Role::User))
        .collect();
    for token in &tokens {
        assert_eq!(gw.join(event, token).await.status(), 200);
    }
    // A return of stock (`remaining`), as the api's relay sends it at `sequence`.
    let returned = |sequence: i64, remaining: Option<u64>| {
        let (gw, channel) = (&gw, &channel);
        async move {
            let update = EventUpdated {
                event: info(event, EventStatus::OnSale),
                queue: None,
                remaining,
            };
            send_in_order(gw, channel, sequence, &update).await;
        }
    };

    // Two payments failed: 2 tickets back, 2 buyers in, however fast the queue admits.
    returned(3, Some(2)).await;
    settles_with(&gw, event, &tokens, 1, 2).await;

    // One of them leaves unused: the next in line gets that ticket's chance.
    let left = gw
        .call(
            reqwest::Method::POST,
            &format!("/queue/v1/events/{event}/leave"),
            Some(&tokens[0]),
            None,
        )
        .await;
    assert_eq!(left.status(), 204);
    settles_with(&gw, event, &tokens, 2, 2).await;

    // Another return: 3 in stock, 3 more come in (the 2 admitted may take some of them too).
    returned(4, Some(3)).await;
    settles_with(&gw, event, &tokens, 5, 5).await;

    // An edit that says nothing of the stock lifts the bound.
    returned(5, None).await;
    gw.wait_for_state(event, &tokens[7], TicketState::Admitted)
        .await;
    drop(connection.close(200, "done".into()).await);
}
