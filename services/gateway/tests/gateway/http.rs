//! The HTTP contract of the gateway: join, status, leave, admin, JWKS, errors and limits.

use flash_gateway::config::LimitConfig;
use flash_kit::testing::{TestAmqp, TestRedis};
use flash_protocol::claims::{GATE_AUDIENCE, GATE_ISSUER, GateClaims, Role};
use flash_protocol::event::EventStatus;
use flash_protocol::queue::{QueueState, QueueStats, Ticket, TicketState};
use flash_protocol::ws::ClosedReason;
use flash_protocol::{EventId, UserId};
use flash_tokens::{Jwks, Verifier};
use reqwest::Method;
use serde_json::json;

use crate::helpers::{TestGateway, config, problem_code, settings, token_for};

#[tokio::test]
async fn join_status_leave_follow_the_contract() {
    let gw = TestGateway::spawn().await;
    let event = gw.open_event(settings(1, 10, 60)).await;
    // Someone ahead keeps our user waiting for a while (1 admission a second).
    let (first, second) = (
        token_for(UserId::new_v7(), Role::User),
        token_for(UserId::new_v7(), Role::User),
    );
    let ticket: Ticket = gw.join(event, &first).await.json().await.expect("ticket");
    assert_eq!((ticket.number, ticket.event_id), (Some(1), event));
    let response = gw.join(event, &second).await;
    assert_eq!(response.status(), 200);
    let ticket: Ticket = response.json().await.expect("ticket");
    assert_eq!(ticket.number, Some(2));
    assert!(matches!(
        ticket.state,
        TicketState::Waiting | TicketState::Admitted
    ));

    // Joining again gives the same ticket.
    let again: Ticket = gw.join(event, &second).await.json().await.expect("ticket");
    assert_eq!(again.number, Some(2));
    let status: Ticket = gw
        .status(event, &second)
        .await
        .json()
        .await
        .expect("ticket");
    assert_eq!(status.number, Some(2));

    let left = gw
        .call(
            Method::POST,
            &format!("/queue/v1/events/{event}/leave"),
            Some(&second),
            None,
        )
        .await;
    assert_eq!(left.status(), 204);
    assert_eq!(
        problem_code(gw.status(event, &second).await, 404).await,
        "NOT_IN_QUEUE"
    );
    let left_again = gw
        .call(
            Method::POST,
            &format!("/queue/v1/events/{event}/leave"),
            Some(&second),
            None,
        )
        .await;
    assert_eq!(problem_code(left_again, 404).await, "NOT_IN_QUEUE");
    gw.running.stop().await;
}

#[tokio::test]
async fn admitted_users_get_a_gate_token_the_api_can_verify() {
    let gw = TestGateway::spawn().await;
    let event = gw.open_event(settings(1000, 1000, 120)).await;
    let user = UserId::new_v7();
    let token = token_for(user, Role::User);
    assert_eq!(gw.join(event, &token).await.status(), 200);
    let ticket = gw
        .wait_for_state(event, &token, TicketState::Admitted)
        .await;
    let gate = ticket.gate_token.clone().expect("gate token");
    assert_eq!((ticket.ahead, ticket.eta_s), (Some(0), Some(0)));

    // The api verifies it with the gateway's published keys.
    let jwks: Jwks = gw
        .call(Method::GET, "/queue/.well-known/jwks.json", None, None)
        .await
        .json()
        .await
        .expect("jwks");
    let claims: GateClaims = Verifier::new(&jwks, GATE_ISSUER, GATE_AUDIENCE)
        .expect("verifier")
        .verify(&gate)
        .expect("a valid gate token");
    assert_eq!((claims.sub, claims.evt), (user, event));
    assert_eq!(claims.exp - claims.iat, 120);
    assert_eq!(
        ticket.gate_expires_at.map(|t| t.unix_timestamp()),
        Some(claims.exp)
    );
    // Polling again returns the same token: one admission, one jti.
    let again: Ticket = gw.status(event, &token).await.json().await.expect("ticket");
    assert_eq!(again.gate_token, Some(gate));
    gw.running.stop().await;
}

#[tokio::test]
async fn errors_are_problems_with_the_contract_codes() {
    let gw = TestGateway::spawn().await;
    let user = token_for(UserId::new_v7(), Role::User);
    let unknown = EventId::new_v7();
    assert_eq!(
        problem_code(gw.join(unknown, &user).await, 404).await,
        "EVENT_NOT_FOUND"
    );
    assert_eq!(
        problem_code(gw.status(unknown, &user).await, 404).await,
        "NOT_IN_QUEUE"
    );

    // Missing, malformed, foreign and expired tokens.
    let event = gw.open_event(settings(10, 10, 60)).await;
    let path = format!("/queue/v1/events/{event}/join");
    for token in [None, Some("garbage"), Some("a.b.c")] {
        let response = gw.call(Method::POST, &path, token, None).await;
        assert_eq!(
            problem_code(response, 401).await,
            "UNAUTHENTICATED",
            "{token:?}"
        );
    }
    let foreign = flash_tokens::SigningKey::generate()
        .expect("key")
        .sign(&serde_json::json!({"sub": UserId::new_v7(), "role": "user", "iss": "flash-api", "aud": "flash", "iat": 0, "exp": 4_000_000_000_i64}))
        .expect("sign");
    assert_eq!(
        problem_code(gw.join(event, &foreign).await, 401).await,
        "UNAUTHENTICATED"
    );

    // Malformed ids and bodies.
    let response = gw
        .call(
            Method::POST,
            "/queue/v1/events/not-a-uuid/join",
            Some(&user),
            None,
        )
        .await;
    assert_eq!(problem_code(response, 422).await, "VALIDATION");

    // A closed queue takes nobody new.
    gw.room
        .close(event, ClosedReason::SoldOut)
        .await
        .expect("close");
    assert_eq!(
        problem_code(gw.join(event, &user).await, 409).await,
        "QUEUE_CLOSED"
    );
    gw.running.stop().await;
}

#[tokio::test]
async fn closed_queues_tell_waiting_users() {
    let gw = TestGateway::spawn().await;
    let event = gw
        .announce(
            EventStatus::Scheduled,
            time::Duration::hours(1),
            settings(10, 10, 60),
        )
        .await;
    let token = token_for(UserId::new_v7(), Role::User);
    let ticket: Ticket = gw.join(event, &token).await.json().await.expect("ticket");
    assert_eq!(
        (ticket.state, ticket.number, ticket.ahead, ticket.eta_s),
        (TicketState::PreQueue, None, None, None)
    );
    gw.room
        .close(event, ClosedReason::Ended)
        .await
        .expect("close");
    let ticket: Ticket = gw.status(event, &token).await.json().await.expect("ticket");
    assert_eq!(ticket.state, TicketState::Closed);
    gw.running.stop().await;
}

#[tokio::test]
async fn operators_read_and_change_the_queue() {
    let gw = TestGateway::spawn().await;
    let event = gw.open_event(settings(10, 100, 60)).await;
    let admin = token_for(UserId::new_v7(), Role::Admin);
    let user = token_for(UserId::new_v7(), Role::User);
    let path = format!("/queue/v1/admin/events/{event}");

    let response = gw.call(Method::GET, &path, Some(&user), None).await;
    assert_eq!(problem_code(response, 403).await, "FORBIDDEN");
    let response = gw.call(Method::GET, &path, None, None).await;
    assert_eq!(problem_code(response, 401).await, "UNAUTHENTICATED");

    gw.join(event, &user).await;
    let stats: QueueStats = gw
        .call(Method::GET, &path, Some(&admin), None)
        .await
        .json()
        .await
        .expect("stats");
    assert_eq!(
        (stats.event_id, stats.last_number, stats.admit_per_sec),
        (event, 1, 10)
    );

    let response = gw
        .call(
            Method::PATCH,
            &path,
            Some(&admin),
            Some(json!({"admit_per_sec": 25, "max_active": 7, "paused": true})),
        )
        .await;
    assert_eq!(response.status(), 200);
    let stats: QueueStats = response.json().await.expect("stats");
    assert_eq!(
        (stats.state, stats.admit_per_sec, stats.max_active),
        (QueueState::Paused, 25, 7)
    );
    let stats: QueueStats = gw
        .call(
            Method::PATCH,
            &path,
            Some(&admin),
            Some(json!({"paused": false})),
        )
        .await
        .json()
        .await
        .expect("stats");
    assert_eq!(stats.state, QueueState::Open);

    for bad in [
        json!({"admit_per_sec": 0}),
        json!({"admission_ttl_s": 1}),
        json!({"max_active": -1}),
        json!({"paused": "yes"}),
    ] {
        let response = gw
            .call(Method::PATCH, &path, Some(&admin), Some(bad.clone()))
            .await;
        assert_eq!(problem_code(response, 422).await, "VALIDATION", "{bad}");
    }
    let unchanged: QueueStats = gw
        .call(Method::GET, &path, Some(&admin), None)
        .await
        .json()
        .await
        .expect("stats");
    assert_eq!(
        (unchanged.admit_per_sec, unchanged.max_active),
        (25, 7),
        "a refused patch changes nothing"
    );

    let missing = format!("/queue/v1/admin/events/{}", EventId::new_v7());
    let response = gw
        .call(
            Method::PATCH,
            &missing,
            Some(&admin),
            Some(json!({"paused": true})),
        )
        .await;
    assert_eq!(problem_code(response, 404).await, "EVENT_NOT_FOUND");
    let response = gw.call(Method::GET, &missing, Some(&admin), None).await;
    assert_eq!(problem_code(response, 404).await, "EVENT_NOT_FOUND");
    gw.running.stop().await;
}

#[tokio::test]
async fn joins_and_polls_over_the_limit_get_429_with_retry_after() {
    let (redis, amqp) = (TestRedis::new(), TestAmqp::new());
    let mut config = config(&redis, &amqp);
    config.limits = LimitConfig {
        user_per_sec: 1,
        user_burst: 3,
        ip_per_sec: 0,
        ..LimitConfig::default()
    };
    let gw = TestGateway::spawn_with(config, redis, amqp).await;
    let event = gw.open_event(settings(10, 10, 60)).await;
    let token = token_for(UserId::new_v7(), Role::User);
    for _ in 0..3 {
        assert_eq!(gw.join(event, &token).await.status(), 200);
    }
    let limited = gw.status(event, &token).await;
    let retry_after: u64 = limited.headers()["retry-after"]
        .to_str()
        .expect("header")
        .parse()
        .expect("seconds");
    assert!((1..=2).contains(&retry_after), "{retry_after}");
    assert_eq!(problem_code(limited, 429).await, "RATE_LIMITED");
    // Another user is not affected.
    let other = token_for(UserId::new_v7(), Role::User);
    assert_eq!(gw.join(event, &other).await.status(), 200);
    gw.running.stop().await;
}

#[tokio::test]
async fn malformed_bodies_are_refused_and_change_nothing() {
    let gw = TestGateway::spawn().await;
    let event = gw.open_event(settings(10, 100, 60)).await;
    let admin = token_for(UserId::new_v7(), Role::Admin);
    let url = gw.url(&format!("/queue/v1/admin/events/{event}"));
    let client = reqwest::Client::new();
    let send = |body: reqwest::Body, content_type: &'static str| {
        client
            .patch(&url)
            .bearer_auth(&admin)
            .header("content-type", content_type)
            .body(body)
            .send()
    };
    let response = send("{\"paused\":".into(), "application/json")
        .await
        .expect("send");
    assert_eq!(problem_code(response, 400).await, "BAD_REQUEST");
    let response = send("paused=true".into(), "application/x-www-form-urlencoded")
        .await
        .expect("send");
    assert_eq!(problem_code(response, 415).await, "UNSUPPORTED_MEDIA_TYPE");
    let huge = format!("{{\"paused\":true,\"pad\":\"{}\"}}", "x".repeat(128 * 1024));
    let response = send(huge.into(), "application/json").await.expect("send");
    assert_eq!(problem_code(response, 413).await, "PAYLOAD_TOO_LARGE");
    let stats: QueueStats = gw
        .call(
            Method::GET,
            &format!("/queue/v1/admin/events/{event}"),
            Some(&admin),
            None,
        )
        .await
        .json()
        .await
        .expect("stats");
    assert_eq!(stats.state, QueueState::Open, "nothing changed");
    gw.running.stop().await;
}

#[tokio::test]
async fn queue_and_socket_metrics_are_exported() {
    let gw = TestGateway::spawn().await;
    let event = gw.open_event(settings(1000, 1000, 60)).await;
    let token = token_for(UserId::new_v7(), Role::User);
    gw.join(event, &token).await;
    gw.wait_for_state(event, &token, TicketState::Admitted)
        .await;
    let serving = format!("gateway_queue_serving{{event=\"{event}\"}}");
    // Open and admitting: stall alerts consider it.
    let open = format!("gateway_queue_open{{event=\"{event}\"}} 1");
    let names = [
        "gateway_joins_total",
        "gateway_admissions_total",
        "gateway_time_to_admission_seconds_bucket",
        "gateway_tick_duration_seconds_bucket",
        "gateway_queue_waiting",
        "gateway_queue_admitted_active",
        serving.as_str(),
        open.as_str(),
        "http_requests_total{service=\"gateway\"",
    ];
    // The gauges are refreshed every two seconds, and a tick records its admissions' waits
    // after it returns (a poll may see the admission first): wait for all of them.
    let mut text = String::new();
    for _ in 0..60 {
        text = gw.get("/metrics").await.text().await.expect("metrics");
        if names.iter().all(|name| text.contains(name)) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    for name in names {
        assert!(text.contains(name), "{name} missing from\n{text}");
    }
    // Sold out with nothing left to come back: closed, no longer open.
    gw.room
        .close(event, flash_protocol::ws::ClosedReason::SoldOut)
        .await
        .expect("close");
    let closed = format!("gateway_queue_open{{event=\"{event}\"}} 0");
    for _ in 0..60 {
        text = gw.get("/metrics").await.text().await.expect("metrics");
        if text.contains(&closed) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(text.contains(&closed), "{closed} missing from\n{text}");
    gw.running.stop().await;
}
