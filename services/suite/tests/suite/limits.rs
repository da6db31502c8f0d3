//! Rate limits hold across replicas: two replicas of every service share one set of stores,
//! and a user, an address or a network gets the configured allowance in all, not twice it.
//! Each test sets tight limits explicitly, as an operator would.

use std::time::Duration;

use flash_kit::limits::Rate;
use serde_json::json;

use crate::helpers::{
    QueueSocket, Replica, Stores, admin, buyer, client_from, event_on_sale, log_in, queue_call,
    register, send,
};

fn rate(text: &str) -> Rate {
    text.parse().expect("rate")
}

#[tokio::test]
async fn sign_ups_are_limited_per_address_and_per_network_across_replicas() {
    let stores = Stores::new().await;
    let mut config = stores.suite_config();
    config.api.limits.signup_per_address = rate("3/min");
    config.api.limits.signup_per_network = rate("5/min");
    let (a, b) = (
        Replica::start(config.clone()).await,
        Replica::start(config).await,
    );
    let email = |i: u32| {
        format!(
            "signup-{i}-{}@flash.test",
            flash_kit::testing::unique_suffix()
        )
    };
    let one = client_from("127.31.1.1");
    for (i, replica) in [&a, &b, &a].into_iter().enumerate() {
        let answer = register(&one, &replica.base, &email(i as u32), "a long password").await;
        assert_eq!(answer.status, 201, "sign-up {i}: {answer:?}");
    }
    // The fourth from the same address, on the other replica: over the limit, nothing made.
    let refused_email = email(99);
    let refused = register(&one, &b.base, &refused_email, "a long password").await;
    refused.assert_limited();
    let relogin = log_in(&one, &a.base, &refused_email, "a long password").await;
    assert_eq!(
        relogin.code(401),
        "INVALID_CREDENTIALS",
        "no account was made"
    );
    // Another address of the same /24 has its own allowance, until the network's is spent.
    let two = client_from("127.31.1.2");
    assert_eq!(
        register(&two, &a.base, &email(4), "a long password")
            .await
            .status,
        201
    );
    assert_eq!(
        register(&two, &b.base, &email(5), "a long password")
            .await
            .status,
        201
    );
    register(&two, &a.base, &email(6), "a long password")
        .await
        .assert_limited();
    // Another network is untouched.
    let elsewhere = client_from("127.31.2.1");
    assert_eq!(
        register(&elsewhere, &b.base, &email(7), "a long password")
            .await
            .status,
        201
    );
    a.stop().await;
    b.stop().await;
}

#[tokio::test]
async fn failed_logins_lock_an_address_out_of_an_account_but_never_lock_out_its_owner() {
    let stores = Stores::new().await;
    let mut config = stores.suite_config();
    config.api.limits.login_failures_per_account_address = rate("3/15min");
    config.api.limits.login_failures_per_account = rate("5/h");
    let (a, b) = (
        Replica::start(config.clone()).await,
        Replica::start(config).await,
    );
    let email = format!("owner-{}@flash.test", flash_kit::testing::unique_suffix());
    let owner = client_from("127.32.1.1");
    assert_eq!(
        register(&owner, &a.base, &email, "the owner's password")
            .await
            .status,
        201
    );
    assert_eq!(
        log_in(&owner, &a.base, &email, "the owner's password")
            .await
            .status,
        200
    );

    // A stranger guesses from one address, on both replicas: three failures, then that address
    // is locked out of the account, right password or not.
    let stranger = client_from("127.32.2.1");
    for replica in [&a, &b, &a] {
        let answer = log_in(&stranger, &replica.base, &email, "a guess").await;
        assert_eq!(answer.code(401), "INVALID_CREDENTIALS");
    }
    log_in(&stranger, &b.base, &email, "the owner's password")
        .await
        .assert_limited();

    // More strangers from other networks spend the account's allowance: a new address is
    // refused even with the right password…
    for n in 3..=4 {
        let guesser = client_from(&format!("127.32.{n}.1"));
        let _ = log_in(&guesser, &a.base, &email, "a guess").await;
    }
    let newcomer = client_from("127.32.9.1");
    log_in(&newcomer, &b.base, &email, "the owner's password")
        .await
        .assert_limited();
    // …but the owner, at an address they logged in from before, still gets in.
    for replica in [&a, &b] {
        let answer = log_in(&owner, &replica.base, &email, "the owner's password").await;
        assert_eq!(answer.status, 200, "{answer:?}");
    }
    a.stop().await;
    b.stop().await;
}

#[tokio::test]
async fn refreshes_orders_leaves_and_sockets_are_limited_across_replicas() {
    let stores = Stores::new().await;
    let mut config = stores.suite_config();
    config.api.limits.refresh_per_family = rate("2/min");
    config.api.limits.orders_per_user = rate("2/min");
    config.gateway.limits.leaves_per_user = rate("2/min");
    config.gateway.limits.ws_per_user = rate("2/min");
    config.gateway.limits.frames_per_socket = rate("5/min");
    let (a, b) = (
        Replica::start(config.clone()).await,
        Replica::start(config).await,
    );
    let (access, mut refresh) = buyer(&a.base).await;

    // Refreshes per token family.
    let client = reqwest::Client::new();
    for replica in [&a, &b] {
        let answer = send(
            client
                .post(format!("{}/api/v1/auth/refresh", replica.base))
                .json(&json!({"refresh_token": refresh})),
        )
        .await;
        assert_eq!(answer.status, 200, "{answer:?}");
        refresh = answer.body["refresh_token"]
            .as_str()
            .expect("refresh")
            .to_owned();
    }
    send(
        client
            .post(format!("{}/api/v1/auth/refresh", a.base))
            .json(&json!({"refresh_token": refresh})),
    )
    .await
    .assert_limited();

    // Orders per user, counted before anything else is looked at.
    let admin = admin(&a.base).await;
    let event = event_on_sale(
        &a.base,
        &admin,
        10,
        json!({"admit_per_sec": 100, "max_active": 100, "admission_ttl_s": 60}),
    )
    .await;
    let order = |base: &str| {
        send(
            client
                .post(format!("{base}/api/v1/events/{event}/orders"))
                .bearer_auth(&access)
                .header("Gate-Token", "not a token")
                .header("Idempotency-Key", flash_kit::testing::unique_suffix())
                .json(&json!({"quantity": 1})),
        )
    };
    assert_eq!(order(&a.base).await.code(403), "GATE_TOKEN_INVALID");
    assert_eq!(order(&b.base).await.code(403), "GATE_TOKEN_INVALID");
    order(&a.base).await.assert_limited();

    // Leaves per user.
    for replica in [&a, &b] {
        assert_eq!(
            queue_call(&replica.base, &event, "join", &access)
                .await
                .status,
            200
        );
        assert_eq!(
            queue_call(&replica.base, &event, "leave", &access)
                .await
                .status,
            204
        );
    }
    assert_eq!(
        queue_call(&a.base, &event, "join", &access).await.status,
        200
    );
    queue_call(&b.base, &event, "leave", &access)
        .await
        .assert_limited();

    // WebSockets per user: the third, on either replica, is closed with 4429. The waits are
    // bounds, not targets: under a full parallel test run a socket's first frame took over 5 s.
    const SOCKET_WAIT: Duration = Duration::from_secs(20);
    let mut first = QueueSocket::open(a.gateway_port, &event, &access).await;
    assert!(first.until("position", SOCKET_WAIT).await.is_some());
    let mut second = QueueSocket::open(b.gateway_port, &event, &access).await;
    assert!(second.until("position", SOCKET_WAIT).await.is_some());
    let mut third = QueueSocket::open(a.gateway_port, &event, &access).await;
    assert_eq!(third.closing(SOCKET_WAIT).await, Some(4429));

    // Frames per socket: the sixth ping in a minute closes the socket with 1008.
    for _ in 0..6 {
        assert!(second.send_text(r#"{"type":"ping"}"#).await);
    }
    assert_eq!(second.closing(SOCKET_WAIT).await, Some(1008));
    a.stop().await;
    b.stop().await;
}

#[tokio::test]
async fn websocket_upgrades_are_limited_per_address() {
    let stores = Stores::new().await;
    let mut config = stores.suite_config();
    config.gateway.limits.ws_per_address = rate("2/min");
    let replica = Replica::start(config).await;
    let (access, _) = buyer(&replica.base).await;
    let admin = admin(&replica.base).await;
    let event = event_on_sale(
        &replica.base,
        &admin,
        10,
        json!({"admit_per_sec": 100, "max_active": 100, "admission_ttl_s": 60}),
    )
    .await;
    assert_eq!(
        queue_call(&replica.base, &event, "join", &access)
            .await
            .status,
        200
    );
    let url = format!(
        "ws://127.0.0.1:{}/queue/v1/events/{event}/ws",
        replica.gateway_port
    );
    for _ in 0..2 {
        tokio_tungstenite::connect_async(&url)
            .await
            .expect("upgraded");
    }
    match tokio_tungstenite::connect_async(&url).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            assert_eq!(response.status().as_u16(), 429);
            assert!(response.headers().contains_key("retry-after"));
        }
        other => panic!("the third upgrade from one address went through: {other:?}"),
    }
    replica.stop().await;
}
