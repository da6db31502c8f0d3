//! The origin: web, api and queue on one port, health of the whole process, start-up, and a
//! sale from queue to paid order over the public contract.

use flash_drill::audit;
use flash_kit::testing::Running;
use flash_protocol::Problem;
use flash_suite::Suite;

use crate::helpers::{Stores, call, eventually, login};

#[tokio::test]
async fn one_origin_serves_web_api_queue_and_every_health_endpoint() {
    let stores = Stores::new().await;
    let suite = Suite::build(stores.suite_config())
        .await
        .expect("suite builds");
    let service_ports = [suite.gateway.port(), suite.api.port(), suite.pay.port()];
    let origin = Running::spawn(suite.origin_addr().port(), |shutdown| {
        suite.run_until(shutdown)
    });

    // The web UI at `/`: its own scripts and styles only, with a strict policy.
    let page = origin.get("/").await;
    assert_eq!(page.status(), 200);
    assert!(
        page.headers()["content-type"]
            .to_str()
            .expect("type")
            .starts_with("text/html")
    );
    assert_eq!(
        page.headers()["content-security-policy"],
        flash_suite::suite::WEB_CONTENT_SECURITY_POLICY
    );
    assert_eq!(page.headers()["x-content-type-options"], "nosniff");
    let html = page.text().await.expect("html");
    assert!(html.contains("<title>Flash Tickets</title>"), "{html}");
    assert!(html.contains(r#"src="/js/main.js""#), "{html}");
    assert!(
        !html.contains("http://") && !html.contains("https://"),
        "{html}"
    );
    assert_eq!(origin.get("/styles.css").await.status(), 200);
    let script = origin.get("/js/main.js").await;
    assert_eq!(script.status(), 200);
    assert!(
        script.headers()["content-type"]
            .to_str()
            .expect("type")
            .contains("javascript")
    );

    // The api and the gateway answer under their prefixes, with problem+json.
    for (path, code) in [
        ("/api/v1/unknown", "NOT_FOUND"),
        ("/queue/v1/unknown", "NOT_FOUND"),
        ("/no-such-page", "NOT_FOUND"),
    ] {
        let response = origin.get(path).await;
        assert_eq!(response.status(), 404, "{path}");
        assert_eq!(
            response.headers()["content-type"],
            "application/problem+json",
            "{path}"
        );
        let problem: Problem = response.json().await.expect("problem");
        assert_eq!(problem.code.as_str(), code, "{path}");
    }

    // Health of the whole process on the origin: every store checked once.
    assert_eq!(origin.get("/live").await.status(), 200);
    let (status, report) = origin.ready().await;
    assert_eq!(status, 200, "{report:?}");
    let mut names: Vec<&str> = report.checks.iter().map(|c| c.name.as_str()).collect();
    names.sort_unstable();
    assert_eq!(names, ["postgres", "rabbitmq", "redis"]);
    let metrics = origin.get("/metrics").await.text().await.expect("metrics");
    for service in ["api", "gateway", "web"] {
        assert!(
            metrics.contains(&format!(r#"http_requests_total{{service="{service}""#)),
            "{service} missing from\n{metrics}"
        );
    }

    // Each service also on its own port, as in production.
    for port in service_ports {
        let service = format!("http://127.0.0.1:{port}");
        let live = reqwest::get(format!("{service}/live")).await.expect("live");
        assert_eq!(live.status(), 200, "{service}");
        let ready = reqwest::get(format!("{service}/ready"))
            .await
            .expect("ready");
        assert_eq!(ready.status(), 200, "{service}");
        let metrics = reqwest::get(format!("{service}/metrics"))
            .await
            .expect("metrics");
        assert_eq!(metrics.status(), 200, "{service}");
    }

    // The bootstrap admin exists.
    let pool = flash_kit::stores::connect_postgres(&stores.db.url, 1)
        .await
        .expect("pool");
    let role: String =
        sqlx::query_scalar("SELECT role FROM users WHERE email = 'admin@flash.test'")
            .fetch_one(&pool)
            .await
            .expect("admin");
    assert_eq!(role, "admin");
    pool.close().await;

    // Ctrl-C: everything stops cleanly within the grace period.
    origin.stop().await;
    for port in service_ports {
        let gone = reqwest::get(format!("http://127.0.0.1:{port}/live")).await;
        assert!(gone.is_err(), "port {port} still answers after shutdown");
    }
}

#[tokio::test]
async fn a_missing_database_is_created_and_a_bad_web_dir_is_refused() {
    let stores = Stores::new().await;
    let mut config = stores.suite_config();
    config.origin.web_dir = "/definitely/not/here".into();
    let error = Suite::build(config).await.err().expect("refused");
    assert!(error.to_string().contains("FLASH_WEB_DIR"), "{error}");

    // The api's database does not exist yet: the suite creates it (then the guard drops it).
    let fresh = format!("flash_test_{}", flash_kit::testing::unique_suffix());
    let fresh_url = flash_kit::testing::with_database(&stores.db.url, &fresh);
    let mut config = stores.suite_config();
    config.api.database_url = fresh_url.clone();
    let suite = Suite::build(config).await.expect("creates the database");
    suite.api.state.db.close().await;
    drop(suite);
    let admin = flash_kit::stores::connect_postgres(&stores.db.url, 1)
        .await
        .expect("pool");
    let exists: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)")
            .bind(&fresh)
            .fetch_one(&admin)
            .await
            .expect("pg_database");
    assert!(exists);
    sqlx::query(&format!("DROP DATABASE \"{fresh}\" WITH (FORCE)"))
        .execute(&admin)
        .await
        .expect("drop");
    admin.close().await;
}

#[tokio::test]
async fn a_buyer_queues_is_admitted_buys_and_the_order_is_paid() {
    let stores = Stores::new().await;
    let suite = Suite::build(stores.suite_config())
        .await
        .expect("suite builds");
    let base = format!("http://{}", suite.origin_addr());
    let origin = Running::spawn(suite.origin_addr().port(), |shutdown| {
        suite.run_until(shutdown)
    });
    let client = reqwest::Client::new();

    // The operator puts an event on sale.
    let admin = login(&client, &base, "admin@flash.test", "an admin password").await;
    let now = time::OffsetDateTime::now_utc();
    let rfc3339 = |t: time::OffsetDateTime| {
        t.format(&time::format_description::well_known::Rfc3339)
            .expect("time")
    };
    let (status, event) = call(
        &client,
        client
            .post(format!("{base}/api/v1/admin/events"))
            .bearer_auth(&admin)
            .json(&serde_json::json!({
                "name": "End to end", "venue": "Loopback Hall",
                "starts_at": rfc3339(now + time::Duration::days(1)),
                "sale_opens_at": rfc3339(now - time::Duration::minutes(1)),
                "price_cents": 2500, "currency": "EUR", "inventory": 10, "max_per_user": 2,
                "queue": {"admit_per_sec": 100, "max_active": 100, "admission_ttl_s": 60}
            })),
    )
    .await;
    assert_eq!(status, 201, "{event}");
    let event_id = event["id"].as_str().expect("id").to_owned();

    // A buyer signs up and joins the queue once the gateway has heard of the event.
    let (status, body) = call(
        &client,
        client.post(format!("{base}/api/v1/auth/register")).json(
            &serde_json::json!({"email": "buyer@flash.test", "password": "a buyer password"}),
        ),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let buyer = login(&client, &base, "buyer@flash.test", "a buyer password").await;
    let join = format!("{base}/queue/v1/events/{event_id}/join");
    eventually("the gateway knows the event", || async {
        let (status, _) = call(&client, client.post(&join).bearer_auth(&buyer)).await;
        (status == 200).then_some(())
    })
    .await;
    let status_url = format!("{base}/queue/v1/events/{event_id}/status");
    let gate = eventually("admitted", || async {
        let (status, ticket) = call(&client, client.get(&status_url).bearer_auth(&buyer)).await;
        assert!(status == 200 || status == 429, "{ticket}");
        ticket["gate_token"].as_str().map(str::to_owned)
    })
    .await;

    // The buyer orders with the gate token; the payment worker settles it.
    let (status, order) = call(
        &client,
        client
            .post(format!("{base}/api/v1/events/{event_id}/orders"))
            .bearer_auth(&buyer)
            .header("Gate-Token", &gate)
            .header("Idempotency-Key", "first-order")
            .json(&serde_json::json!({"quantity": 2})),
    )
    .await;
    assert_eq!(status, 201, "{order}");
    assert_eq!(order["status"], "pending_payment");
    assert_eq!(order["amount_cents"], 5000);
    let order_url = format!("{base}/api/v1/orders/{}", order["id"].as_str().expect("id"));
    eventually("the order is paid", || async {
        let (status, order) = call(&client, client.get(&order_url).bearer_auth(&buyer)).await;
        assert_eq!(status, 200, "{order}");
        assert_ne!(order["status"], "payment_failed", "{order}");
        (order["status"] == "paid").then_some(())
    })
    .await;
    let (_, event) = call(
        &client,
        client.get(format!("{base}/api/v1/events/{event_id}")),
    )
    .await;
    assert_eq!(event["remaining"], 8, "{event}");

    // The drill's database audit finds the sale sound, and catches a ticket gone missing.
    let pool = flash_kit::stores::connect_postgres(&stores.db.url, 1)
        .await
        .expect("pool");
    let event_uuid: uuid::Uuid = event_id.parse().expect("event id");
    let ledger = audit::ledger(&pool, event_uuid)
        .await
        .expect("audit")
        .expect("the event is in the database");
    assert_eq!(
        (ledger.inventory, ledger.remaining, ledger.live_tickets),
        (10, 8, 2)
    );
    assert_eq!((ledger.orders, ledger.paid), (1, 1));
    assert_eq!(audit::violations(&ledger, audit::Pending::Violation), []);
    sqlx::query("UPDATE event_stock SET remaining = remaining - 1 WHERE event_id = $1")
        .bind(event_uuid)
        .execute(&pool)
        .await
        .expect("leak a ticket");
    let leaked = audit::ledger(&pool, event_uuid)
        .await
        .expect("audit")
        .expect("the event is in the database");
    let broken: Vec<_> = audit::violations(&leaked, audit::Pending::Violation)
        .into_iter()
        .map(|v| v.invariant)
        .collect();
    assert_eq!(broken, ["stock accounting adds up"]);
    pool.close().await;
    origin.stop().await;
}

#[tokio::test]
async fn the_drill_crowd_signs_up_and_logs_in_through_the_public_api() {
    let stores = Stores::new().await;
    let suite = Suite::build(stores.suite_config())
        .await
        .expect("suite builds");
    let addr = suite.origin_addr();
    let origin = Running::spawn(addr.port(), |shutdown| suite.run_until(shutdown));

    let crowd = flash_drill::crowd::sign_up(addr, "t1", 40, 8)
        .await
        .expect("the crowd signs up");
    assert_eq!(crowd.members.len(), 40);
    let users: std::collections::HashSet<_> = crowd.members.iter().map(|m| m.user).collect();
    assert_eq!(users.len(), 40, "every member is a distinct user");
    let client = reqwest::Client::new();
    for member in crowd.members.iter().step_by(13) {
        let (status, orders) = call(
            &client,
            client
                .get(format!("http://{addr}/api/v1/me/orders"))
                .bearer_auth(&member.access),
        )
        .await;
        assert_eq!(status, 200, "{orders}");
        assert_eq!(orders, serde_json::json!([]));
    }
    // A second crowd of the same run collides with the first: the drill says so.
    let again = flash_drill::crowd::sign_up(addr, "t1", 1, 1).await;
    let error = again.err().expect("the email is taken").to_string();
    assert!(error.contains("409"), "{error}");
    origin.stop().await;
}
