//! Queue integrity against two replicas: a place that was left is gone everywhere at once, a
//! gate token is only ever signed for an admission Redis recorded, `gate.consumed` frees the
//! admission its token names, a lapsed admission is told, and the operator's settings in the
//! gateway are not undone by unrelated event updates.

use std::time::Duration;

use serde_json::{Value, json};

use crate::helpers::{
    QueueSocket, Replica, Stores, admin, buyer, event_on_sale, pause, queue_call, send,
};

const WAIT: Duration = Duration::from_secs(15);

/// The `jti` a gate token names (read without checking the signature: the api checks it).
fn jti_of(gate_token: &str) -> String {
    use base64::Engine as _;
    let claims = gate_token.split('.').nth(1).expect("a JWT");
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(claims)
        .expect("base64url");
    let claims: Value = serde_json::from_slice(&bytes).expect("claims");
    claims["jti"].as_str().expect("jti").to_owned()
}

#[tokio::test]
async fn a_place_that_was_left_is_never_admitted_and_a_new_one_is_admitted_once() {
    let stores = Stores::new().await;
    let config = stores.suite_config();
    let (a, b) = (
        Replica::start(config.clone()).await,
        Replica::start(config).await,
    );
    let admin = admin(&a.base).await;
    let event = event_on_sale(
        &a.base,
        &admin,
        10,
        json!({"admit_per_sec": 100, "max_active": 100, "admission_ttl_s": 60}),
    )
    .await;
    pause(&a.base, &admin, &event, true).await;
    let (user, _) = buyer(&a.base).await;

    // Join, follow the place on replica A's socket, leave through replica B.
    assert_eq!(queue_call(&a.base, &event, "join", &user).await.status, 200);
    let mut kept = QueueSocket::open(a.gateway_port, &event, &user).await;
    assert!(kept.until("position", WAIT).await.is_some());
    assert_eq!(
        queue_call(&b.base, &event, "leave", &user).await.status,
        204
    );
    // The socket that was kept open is closed at once (4404): its place is gone.
    assert_eq!(kept.closing(WAIT).await, Some(4404));

    // Join again (a new place at the back) with a socket on B; resume the queue. The new
    // place is admitted once, with one gate token, and the old one never.
    assert_eq!(queue_call(&b.base, &event, "join", &user).await.status, 200);
    let mut again = QueueSocket::open(b.gateway_port, &event, &user).await;
    let mut other = QueueSocket::open(a.gateway_port, &event, &user).await;
    pause(&a.base, &admin, &event, false).await;
    let admitted = again
        .until("admitted", WAIT)
        .await
        .expect("the new place is admitted");
    // The socket on A replaced nothing on B; each socket of the user is told the same
    // admission, never a second one.
    let also = other
        .until("admitted", WAIT)
        .await
        .expect("admitted on A too");
    assert_eq!(
        jti_of(admitted["gate_token"].as_str().expect("token")),
        jti_of(also["gate_token"].as_str().expect("token")),
        "one admission, one jti"
    );
    let status = send(
        reqwest::Client::new()
            .get(format!("{}/queue/v1/events/{event}/status", a.base))
            .bearer_auth(&user),
    )
    .await;
    assert_eq!(status.body["state"], "admitted", "{status:?}");
    a.stop().await;
    b.stop().await;
}

#[tokio::test]
async fn a_used_token_frees_only_the_admission_it_was_signed_for() {
    let stores = Stores::new().await;
    let replica = Replica::start(stores.suite_config()).await;
    let base = &replica.base;
    let admin = admin(base).await;
    // One buyer at a time.
    let event = event_on_sale(
        base,
        &admin,
        10,
        json!({"admit_per_sec": 100, "max_active": 1, "admission_ttl_s": 60}),
    )
    .await;
    let (user, _) = buyer(base).await;
    let (next, _) = buyer(base).await;
    let status = |token: String| {
        let url = format!("{base}/queue/v1/events/{event}/status");
        async move { send(reqwest::Client::new().get(url).bearer_auth(token)).await }
    };
    let admitted = |token: String| async move {
        crate::helpers::eventually("admitted", || async {
            let ticket = status(token.clone()).await;
            ticket.body["gate_token"].as_str().map(str::to_owned)
        })
        .await
    };
    assert_eq!(queue_call(base, &event, "join", &user).await.status, 200);
    let first = admitted(user.clone()).await;
    // The user leaves (freeing the place) and joins again; `next` queues behind.
    assert_eq!(queue_call(base, &event, "leave", &user).await.status, 204);
    assert_eq!(queue_call(base, &event, "join", &user).await.status, 200);
    assert_eq!(queue_call(base, &event, "join", &next).await.status, 200);
    let second = admitted(user.clone()).await;
    assert_ne!(jti_of(&first), jti_of(&second));

    // The token of the first admission is used: that admission was already given up, so
    // nothing is freed and `next` keeps waiting while the second admission holds the place.
    let order = |gate: String, key: &str| {
        send(
            reqwest::Client::new()
                .post(format!("{base}/api/v1/events/{event}/orders"))
                .bearer_auth(&user)
                .header("Gate-Token", gate)
                .header("Idempotency-Key", key)
                .json(&json!({"quantity": 1})),
        )
    };
    assert_eq!(order(first, "first").await.status, 201);
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(status(next.clone()).await.body["state"], "waiting");
    // The second admission's token frees its place: `next` is admitted.
    assert_eq!(order(second, "second").await.status, 201);
    admitted(next).await;
    replica.stop().await;
}

#[tokio::test]
async fn a_socket_is_told_when_its_admission_runs_out() {
    let stores = Stores::new().await;
    let replica = Replica::start(stores.suite_config()).await;
    let admin = admin(&replica.base).await;
    let event = event_on_sale(
        &replica.base,
        &admin,
        10,
        json!({"admit_per_sec": 100, "max_active": 10, "admission_ttl_s": 10}),
    )
    .await;
    let (user, _) = buyer(&replica.base).await;
    assert_eq!(
        queue_call(&replica.base, &event, "join", &user)
            .await
            .status,
        200
    );
    let mut socket = QueueSocket::open(replica.gateway_port, &event, &user).await;
    assert!(socket.until("admitted", WAIT).await.is_some());
    let expired = socket
        .until("position", Duration::from_secs(20))
        .await
        .expect("told when the 10 s window ran out");
    assert_eq!(expired["state"], "expired", "{expired}");
    replica.stop().await;
}

#[tokio::test]
async fn an_operators_throttle_survives_unrelated_event_updates() {
    let stores = Stores::new().await;
    let replica = Replica::start(stores.suite_config()).await;
    let base = &replica.base;
    let admin = admin(base).await;
    let event = event_on_sale(
        base,
        &admin,
        10,
        json!({"admit_per_sec": 200, "max_active": 100, "admission_ttl_s": 60}),
    )
    .await;
    let client = reqwest::Client::new();
    let queue = format!("{base}/queue/v1/admin/events/{event}");
    let throttled = send(
        client
            .patch(&queue)
            .bearer_auth(&admin)
            .json(&json!({"admit_per_sec": 3})),
    )
    .await;
    assert_eq!(throttled.body["admit_per_sec"], 3, "{throttled:?}");
    let renamed = send(
        client
            .patch(format!("{base}/api/v1/admin/events/{event}"))
            .bearer_auth(&admin)
            .json(&json!({"name": "Renamed"})),
    )
    .await;
    assert_eq!(renamed.status, 200, "{renamed:?}");
    let rate = || async {
        send(client.get(&queue).bearer_auth(&admin)).await.body["admit_per_sec"].clone()
    };
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(rate().await, 3, "the rename left the throttle alone");
    // A change of the queue's settings through the api is an operator's too: it applies.
    let changed = send(
        client
            .patch(format!("{base}/api/v1/admin/events/{event}"))
            .bearer_auth(&admin)
            .json(&json!({"queue": {"admit_per_sec": 7}})),
    )
    .await;
    assert_eq!(changed.status, 200, "{changed:?}");
    crate::helpers::eventually("the api's change reaches the queue", || async {
        (rate().await == 7).then_some(())
    })
    .await;
    replica.stop().await;
}

#[tokio::test]
async fn an_event_created_with_a_bot_check_reaches_the_queue_once_and_the_gateway_owns_it() {
    let stores = Stores::new().await;
    let replica = Replica::start(stores.suite_config()).await;
    let base = &replica.base;
    let admin = admin(base).await;
    let client = reqwest::Client::new();
    let now = time::OffsetDateTime::now_utc();
    let too_hard = send(
        client
            .post(format!("{base}/api/v1/admin/events"))
            .bearer_auth(&admin)
            .json(&json!({
                "name": "Too hard", "venue": "Loopback Hall",
                "starts_at": crate::helpers::rfc3339(now + time::Duration::days(1)),
                "sale_opens_at": crate::helpers::rfc3339(now),
                "price_cents": 1000, "currency": "EUR", "inventory": 5, "max_per_user": 1,
                "queue": {"admit_per_sec": 10, "max_active": 10, "admission_ttl_s": 60,
                          "challenge_difficulty": 33}
            })),
    )
    .await;
    assert_eq!(too_hard.status, 422, "{too_hard:?}");
    assert_eq!(
        too_hard.body["errors"][0]["field"], "queue.challenge_difficulty",
        "{too_hard:?}"
    );

    let event = event_on_sale(
        base,
        &admin,
        10,
        json!({"admit_per_sec": 10, "max_active": 10, "admission_ttl_s": 60,
               "challenge_difficulty": 12}),
    )
    .await;
    let queue = format!("{base}/queue/v1/admin/events/{event}");
    let difficulty = || async {
        send(client.get(&queue).bearer_auth(&admin)).await.body["challenge_difficulty"].clone()
    };
    assert_eq!(
        difficulty().await,
        12,
        "the initial difficulty reached the queue"
    );
    // The gateway owns it from then on: an operator's change survives the api's updates.
    let lowered = send(
        client
            .patch(&queue)
            .bearer_auth(&admin)
            .json(&json!({"challenge_difficulty": 4})),
    )
    .await;
    assert_eq!(lowered.body["challenge_difficulty"], 4, "{lowered:?}");
    let changed = send(
        client
            .patch(format!("{base}/api/v1/admin/events/{event}"))
            .bearer_auth(&admin)
            .json(&json!({"name": "Renamed", "queue": {"admit_per_sec": 7}})),
    )
    .await;
    assert_eq!(changed.status, 200, "{changed:?}");
    assert!(
        changed.body["queue"].get("challenge_difficulty").is_none(),
        "the api does not keep it: {changed:?}"
    );
    crate::helpers::eventually("the api's change reaches the queue", || async {
        let stats = send(client.get(&queue).bearer_auth(&admin)).await.body;
        (stats["admit_per_sec"] == 7).then_some(stats)
    })
    .await;
    assert_eq!(
        difficulty().await,
        4,
        "the api's update left the bot check alone"
    );
    replica.stop().await;
}

/// A change an operator makes in the gateway (any replica) reaches the api's audit log once:
/// the change and its record are written together in Redis, relayed by whichever replica
/// gets there first (both try), and kept once by the api.
#[tokio::test]
async fn an_operators_queue_changes_reach_the_audit_log_once_from_any_replica() {
    let stores = Stores::new().await;
    let config = stores.suite_config();
    let (one, two) = (
        Replica::start(config.clone()).await,
        Replica::start(config).await,
    );
    let admin = admin(&one.base).await;
    let event = event_on_sale(
        &one.base,
        &admin,
        10,
        json!({"admit_per_sec": 200, "max_active": 100, "admission_ttl_s": 60}),
    )
    .await;
    let client = reqwest::Client::new();
    let patch = |base: &str, body: Value| {
        send(
            client
                .patch(format!("{base}/queue/v1/admin/events/{event}"))
                .bearer_auth(&admin)
                .json(&body),
        )
    };
    let first = patch(&one.base, json!({"admit_per_sec": 3, "paused": true})).await;
    assert_eq!(first.status, 200, "{first:?}");
    let second = patch(&two.base, json!({"max_active": 50})).await;
    assert_eq!(second.status, 200, "{second:?}");
    // The same again changes nothing, and records nothing.
    assert_eq!(
        patch(&two.base, json!({"max_active": 50})).await.status,
        200
    );

    let log = || async {
        let answer = send(
            client
                .get(format!("{}/api/v1/admin/audit?event_id={event}", one.base))
                .bearer_auth(&admin),
        )
        .await;
        assert_eq!(answer.status, 200, "{answer:?}");
        answer
            .body
            .as_array()
            .expect("records")
            .iter()
            .filter(|r| r["action"] == "queue.update")
            .cloned()
            .collect::<Vec<Value>>()
    };
    crate::helpers::eventually("both changes are in the audit log", || async {
        (log().await.len() >= 2).then_some(())
    })
    .await;
    // Both replicas relay every few seconds: still once each after a sweep.
    tokio::time::sleep(Duration::from_secs(6)).await;
    let records = log().await;
    assert_eq!(records.len(), 2, "{records:?}");
    let (newer, older) = (&records[0], &records[1]);
    assert_eq!(
        older["changes"],
        json!({"queue.admit_per_sec": [200, 3], "queue.paused": [false, true]})
    );
    assert_eq!(newer["changes"], json!({"queue.max_active": [100, 50]}));
    for record in &records {
        assert_eq!(
            record["actor_email"],
            crate::helpers::ADMIN_EMAIL,
            "{record}"
        );
        assert_eq!(record["event_id"], event.to_string());
    }
    one.stop().await;
    two.stop().await;
}

/// End to end: the last ticket is ordered and its payment is slow; the queue holds its line
/// (the next buyer waits, told one order is being paid, on the socket and when polling) instead
/// of closing; the payment is declined, the ticket comes back, and the next in line is admitted.
#[tokio::test]
async fn a_ticket_that_comes_back_goes_to_the_next_in_line() {
    let stores = Stores::new().await;
    let mut config = stores.suite_config();
    config.pay.provider.latency_p50_ms = 1_500.0;
    config.pay.provider.latency_p99_ms = 1_500.0;
    config.pay.provider.decline_rate = 1.0;
    config.pay.provider.transient_rate = 0.0;
    let suite = Replica::start(config).await;
    let base = suite.base.clone();
    let admin = admin(&base).await;
    let event = event_on_sale(
        &base,
        &admin,
        1,
        json!({"admit_per_sec": 100, "max_active": 1, "admission_ttl_s": 60}),
    )
    .await;
    let (first, _) = buyer(&base).await;
    let (second, _) = buyer(&base).await;
    let status_of = |token: String| {
        let base = base.clone();
        let event = event.clone();
        async move {
            send(
                reqwest::Client::new()
                    .get(format!("{base}/queue/v1/events/{event}/status"))
                    .bearer_auth(token),
            )
            .await
        }
    };
    assert_eq!(queue_call(&base, &event, "join", &first).await.status, 200);
    let gate = crate::helpers::eventually("the first buyer is admitted", || async {
        status_of(first.clone()).await.body["gate_token"]
            .as_str()
            .map(str::to_owned)
    })
    .await;
    assert_eq!(queue_call(&base, &event, "join", &second).await.status, 200);
    let mut socket = QueueSocket::open(suite.gateway_port, &event, &second).await;
    let ordered = send(
        reqwest::Client::new()
            .post(format!("{base}/api/v1/events/{event}/orders"))
            .bearer_auth(&first)
            .header("Gate-Token", &gate)
            .header("Idempotency-Key", "the-last-ticket")
            .json(&json!({"quantity": 1})),
    )
    .await;
    assert_eq!(ordered.status, 201, "{ordered:?}");

    // Sold out, one order being paid: the second buyer keeps their place and is told why.
    crate::helpers::eventually("the line is held", || async {
        let ticket = status_of(second.clone()).await.body;
        (ticket["reserved_pending"] == 1).then_some(())
    })
    .await;
    let ticket = status_of(second.clone()).await.body;
    assert_eq!(ticket["state"], "waiting", "{ticket}");
    assert_eq!(ticket["eta_s"], Value::Null, "{ticket}");
    let event_now = send(reqwest::Client::new().get(format!("{base}/api/v1/events/{event}"))).await;
    assert_eq!(event_now.body["status"], "sold_out", "{event_now:?}");
    assert_eq!(event_now.body["reserved_pending"], 1, "{event_now:?}");
    let held = socket
        .until("position", WAIT)
        .await
        .expect("a position frame");
    assert!(
        held["reserved_pending"] == 1 || held["state"] == "waiting",
        "{held}"
    );

    // The payment is declined: the ticket goes to the next in line, who is admitted.
    let admitted = socket
        .until("admitted", WAIT)
        .await
        .expect("the returned ticket admits the next buyer");
    assert!(admitted["gate_token"].is_string(), "{admitted}");
    let ticket = status_of(second.clone()).await.body;
    assert_eq!(ticket["state"], "admitted", "{ticket}");
    assert_eq!(ticket["reserved_pending"], 0, "{ticket}");
    suite.stop().await;
}
