//! A hostile client against a running suite: slow and half-sent requests, connection floods,
//! made-up methods and paths. Each test checks what the attacker got and that everyone else
//! is still served.

use std::time::{Duration, Instant};

use flash_kit::testing::Running;
use flash_suite::Suite;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

use crate::helpers::Stores;

/// A suite whose every server closes a request head not finished within `header_secs`, and
/// holds at most `max_connections` connections per port.
async fn suite_with_limits(stores: &Stores, header_secs: u64, max_connections: usize) -> Suite {
    let mut config = stores.suite_config();
    for common in [
        &mut config.origin.common,
        &mut config.api.common,
        &mut config.gateway.common,
        &mut config.pay.common,
    ] {
        common.http_header_read_timeout_secs = header_secs;
        common.http_max_connections = max_connections;
    }
    Suite::build(config).await.expect("suite builds")
}

/// Opens a connection and sends half a request line.
async fn half_request(port: u16) -> TcpStream {
    let mut stream = TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("connect");
    stream
        .write_all(b"GET /api/v1/ev")
        .await
        .expect("half a request line");
    stream
}

/// Whether the server closed the connection (end of stream or reset) within `within`.
async fn closed_within(mut stream: TcpStream, within: Duration) -> bool {
    let mut buf = [0_u8; 256];
    loop {
        match tokio::time::timeout(within, stream.read(&mut buf)).await {
            Ok(Ok(0) | Err(_)) => return true,
            Ok(Ok(_)) => {}
            Err(_) => return false,
        }
    }
}

#[tokio::test]
async fn five_thousand_half_sent_requests_are_closed_within_the_header_timeout() {
    let stores = Stores::new().await;
    let suite = suite_with_limits(&stores, 2, 16_384).await;
    let api_port = suite.api.port();
    let origin = Running::spawn(suite.origin_addr().port(), |shutdown| {
        suite.run_until(shutdown)
    });

    let started = Instant::now();
    let mut attackers = Vec::with_capacity(5_000);
    for _ in 0..5_000 {
        attackers.push(half_request(api_port).await);
    }
    // Meanwhile everyone else is answered, on the attacked port and on the origin.
    let client = reqwest::Client::new();
    for base in [format!("http://127.0.0.1:{api_port}"), origin.base.clone()] {
        let response = client
            .get(format!("{base}/api/v1/events"))
            .send()
            .await
            .expect("answered while the slow clients wait");
        assert_eq!(response.status(), 200);
    }
    // Every slow client is closed within the timeout (2 s from its opening, and a margin for
    // a loaded machine), none lingers.
    let closed = futures::future::join_all(
        attackers
            .into_iter()
            .map(|stream| closed_within(stream, Duration::from_secs(10))),
    )
    .await;
    let lingering = closed.iter().filter(|closed| !**closed).count();
    assert_eq!(lingering, 0, "connections not closed by the header timeout");
    assert!(
        started.elapsed() >= Duration::from_secs(2),
        "closed before the timeout: {:?}",
        started.elapsed()
    );
    let metrics = origin.get("/metrics").await.text().await.expect("metrics");
    assert!(
        metrics.lines().any(|line| line.starts_with(
            r#"http_connections_closed_total{service="api",reason="header_timeout"}"#
        ) && line.ends_with(" 5000")),
        "{metrics}"
    );
    origin.stop().await;
}

#[tokio::test]
async fn a_server_at_its_connection_cap_serves_the_next_client_once_a_place_frees() {
    let stores = Stores::new().await;
    let suite = suite_with_limits(&stores, 2, 20).await;
    let api_port = suite.api.port();
    let origin = Running::spawn(suite.origin_addr().port(), |shutdown| {
        suite.run_until(shutdown)
    });
    // Twenty silent connections hold every place of the api's port.
    let mut holders = Vec::new();
    for _ in 0..20 {
        holders.push(half_request(api_port).await);
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let started = Instant::now();
    let response = reqwest::Client::new()
        .get(format!("http://127.0.0.1:{api_port}/api/v1/events"))
        .timeout(Duration::from_secs(15))
        .send()
        .await
        .expect("served once a place is free");
    assert_eq!(response.status(), 200);
    assert!(
        started.elapsed() >= Duration::from_millis(1_500),
        "served while every place was held: {:?}",
        started.elapsed()
    );
    drop(holders);
    origin.stop().await;
}

#[tokio::test]
async fn made_up_methods_and_paths_leave_the_metrics_the_same_size() {
    let stores = Stores::new().await;
    let suite = Suite::build(stores.suite_config())
        .await
        .expect("suite builds");
    let origin = Running::spawn(suite.origin_addr().port(), |shutdown| {
        suite.run_until(shutdown)
    });
    let base = origin.base.clone();
    let client = reqwest::Client::new();
    let made_up = |i: usize| {
        let method = reqwest::Method::from_bytes(format!("M{i:05}X").as_bytes()).expect("method");
        let path = match i % 3 {
            0 => format!("{base}/api/v1/nothing-{i}"),
            1 => format!("{base}/queue/v1/events/{i}/nothing"),
            _ => format!("{base}/page-{i}"),
        };
        client.request(method, path).send()
    };
    // Once, so that every series a made-up request can touch exists.
    for i in 0..30 {
        made_up(i).await.expect("answered");
    }
    let before = origin.get("/metrics").await.text().await.expect("metrics");
    let mut sent = 0;
    while sent < 10_000 {
        let batch: Vec<_> = (sent..sent + 50).map(made_up).collect();
        for response in futures::future::join_all(batch).await {
            assert!(response.expect("answered").status().is_client_error());
        }
        sent += 50;
    }
    let after = origin.get("/metrics").await.text().await.expect("metrics");
    let grown = after.len().abs_diff(before.len());
    assert!(
        grown <= 2048,
        "/metrics grew by {grown} bytes ({} → {})",
        before.len(),
        after.len()
    );
    assert!(after.contains(r#"method="other""#), "{after}");
    assert!(
        !after.contains("M00042X"),
        "a made-up method became a label"
    );
    assert!(
        !after.contains("nothing-42"),
        "a made-up path became a label"
    );
    origin.stop().await;
}

/// This process's threads and its peak resident memory (KiB), from `/proc`.
fn threads_and_peak_kib() -> (usize, u64) {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    let field = |name: &str| {
        status
            .lines()
            .find_map(|line| line.strip_prefix(name))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|n| n.parse::<u64>().ok())
            .expect(name)
    };
    (
        usize::try_from(field("Threads:")).expect("threads"),
        field("VmHWM:"),
    )
}

#[tokio::test]
async fn a_login_flood_at_production_cost_is_bounded_in_memory_and_threads() {
    let stores = Stores::new().await;
    let mut config = stores.suite_config();
    // The production cost, and the login limits off so that every login reaches hashing.
    config.api.argon2.memory_kib = 19_456;
    config.api.argon2.iterations = 2;
    config.api.limits.login_per_address = flash_kit::limits::Rate::OFF;
    config.api.limits.login_per_network = flash_kit::limits::Rate::OFF;
    let suite = Suite::build(config).await.expect("suite builds");
    let slots = suite.api.state.passwords.capacity().slots;
    let origin = Running::spawn(suite.origin_addr().port(), |shutdown| {
        suite.run_until(shutdown)
    });
    let client = reqwest::Client::new();
    let events = format!("{}/api/v1/events", origin.base);
    assert_eq!(
        client.get(&events).send().await.expect("events").status(),
        200
    );
    let (threads_before, peak_before) = threads_and_peak_kib();

    let sampling = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(threads_before));
    let sampler = {
        let most = std::sync::Arc::clone(&sampling);
        tokio::spawn(async move {
            loop {
                most.fetch_max(
                    threads_and_peak_kib().0,
                    std::sync::atomic::Ordering::Relaxed,
                );
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
    };
    let logins = (0..400).map(|i| {
        let client = client.clone();
        let url = format!("{}/api/v1/auth/login", origin.base);
        async move {
            let response = client
                .post(url)
                .json(&serde_json::json!({
                    "email": format!("nobody-{i}@flash.test"), "password": "a guess at a password"
                }))
                .send()
                .await
                .expect("answered");
            let retry_after = response.headers().contains_key("retry-after");
            (response.status().as_u16(), retry_after)
        }
    });
    // Meanwhile the public list keeps answering.
    let browsing = async {
        let mut answered = 0;
        for _ in 0..20 {
            if client
                .get(&events)
                .send()
                .await
                .is_ok_and(|r| r.status() == 200)
            {
                answered += 1;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        answered
    };
    let (answers, answered) = tokio::join!(futures::future::join_all(logins), browsing);
    sampler.abort();
    let (_, peak_after) = threads_and_peak_kib();

    let refused = answers.iter().filter(|(status, _)| *status == 503).count();
    let wrong = answers.iter().filter(|(status, _)| *status == 401).count();
    assert_eq!(refused + wrong, 400, "only 401 or 503: {answers:?}");
    assert!(
        refused > 0,
        "a flood at production cost finds the pool full"
    );
    assert!(
        answers
            .iter()
            .filter(|(status, _)| *status == 503)
            .all(|(_, retry_after)| *retry_after),
        "every 503 says when to retry"
    );
    assert_eq!(answered, 20, "the public list answered throughout");
    let extra_threads = sampling
        .load(std::sync::atomic::Ordering::Relaxed)
        .saturating_sub(threads_before);
    assert!(
        extra_threads < 16,
        "{extra_threads} threads more during the flood"
    );
    // At most `slots` hashes of 19 MiB at once, and the 400 connections' own memory (client
    // and server in this process): far from the 400 × 19 MiB a hash per request would take.
    let grown_mib = peak_after.saturating_sub(peak_before) / 1024;
    assert!(
        grown_mib < 128 + 19 * slots as u64,
        "peak memory grew by {grown_mib} MiB with {slots} hashing slot(s)"
    );
    origin.stop().await;
}
