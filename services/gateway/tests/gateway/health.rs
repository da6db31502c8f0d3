//! Health, readiness by store, and start-up failures.

use std::net::SocketAddr;

use flash_gateway::Application;
use flash_kit::testing::{TcpProxy, TestAmqp, TestRedis};
use flash_protocol::Problem;

use crate::helpers::{TestGateway, config};

#[tokio::test]
async fn health_endpoints_answer_with_real_checks() {
    let app = TestGateway::spawn().await;
    assert_eq!(app.get("/live").await.status(), 200);
    let (status, report) = app.ready().await;
    assert_eq!(status, 200, "{report:?}");
    let names: Vec<&str> = report.checks.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["redis", "rabbitmq"]);
    assert_eq!(app.get("/queue/v1/unknown").await.status(), 404);
    let metrics = app.get("/metrics").await.text().await.expect("metrics");
    assert!(
        metrics.contains(r#"http_requests_total{service="gateway",method="GET",route="/queue/{*rest}",status="404"}"#),
        "{metrics}"
    );
    app.running.stop().await;
}

#[tokio::test]
async fn unknown_queue_routes_are_problem_json() {
    let app = TestGateway::spawn().await;
    for path in ["/queue/v9/nothing", "/elsewhere"] {
        let response = app.get(path).await;
        assert_eq!(response.status(), 404, "{path}");
        assert_eq!(
            response.headers()["content-type"],
            "application/problem+json"
        );
        let problem: Problem = response.json().await.expect("problem");
        assert_eq!(problem.code.as_str(), "NOT_FOUND");
    }
    app.running.stop().await;
}

#[tokio::test]
async fn ready_fails_naming_redis_while_redis_is_cut_off_and_recovers() {
    let (redis, amqp) = (TestRedis::new(), TestAmqp::new());
    let target: SocketAddr = "127.0.0.1:6379".parse().expect("addr");
    let proxy = TcpProxy::start(target).await;
    let mut cfg = config(&redis, &amqp);
    cfg.redis.url = proxy.url_for(&redis.url);
    let app = TestGateway::spawn_with(cfg, redis, amqp).await;
    assert_eq!(app.ready().await.0, 200);

    proxy.cut();
    let report = app.wait_ready(503).await;
    assert_eq!(report.failing, ["redis"]);
    assert_eq!(
        app.get("/live").await.status(),
        200,
        "liveness must not depend on stores"
    );

    proxy.restore().await;
    app.wait_ready(200).await;
    app.running.stop().await;
}

/// Without RabbitMQ the gateway still holds its line: it stays ready (degraded), buyers still
/// join, and the broker's state is a metric instead.
#[tokio::test]
async fn a_broker_outage_leaves_the_gateway_ready_and_serving() {
    let (redis, amqp) = (TestRedis::new(), TestAmqp::new());
    let target: SocketAddr = "127.0.0.1:5672".parse().expect("addr");
    let proxy = TcpProxy::start(target).await;
    let mut cfg = config(&redis, &amqp);
    cfg.amqp_url = proxy.url_for(&amqp.url);
    let app = TestGateway::spawn_with(cfg, redis, amqp).await;
    let event = app.open_event(crate::helpers::settings(10, 10, 60)).await;
    assert_eq!(app.ready().await.0, 200);

    proxy.cut();
    let report = app.wait_degraded("rabbitmq").await;
    assert!(report.failing.is_empty(), "{report:?}");
    let user = flash_protocol::UserId::new_v7();
    let token = crate::helpers::token_for(user, flash_protocol::claims::Role::User);
    assert_eq!(
        app.join(event, &token).await.status(),
        200,
        "buyers still join"
    );
    // The supervisor notices within a quarter of a second.
    let mut metrics = String::new();
    for _ in 0..50 {
        metrics = app.get("/metrics").await.text().await.expect("metrics");
        if metrics.contains("amqp_connected 0") {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(metrics.contains("amqp_connected 0"), "{metrics}");

    proxy.restore().await;
    for _ in 0..100 {
        let (_, report) = app.ready().await;
        if report.degraded.is_empty() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let (status, report) = app.ready().await;
    assert_eq!((status, report.degraded.len()), (200, 0), "{report:?}");
    app.running.stop().await;
}

#[tokio::test]
async fn bad_configuration_and_unreachable_stores_stop_start_up_with_a_clear_error() {
    let (redis, amqp) = (TestRedis::new(), TestAmqp::new());
    let mut cfg = config(&redis, &amqp);
    cfg.redis.key_prefix = "bad{prefix}:".into();
    let error = Application::build(cfg).await.err().expect("refused");
    assert!(error.to_string().contains("may not contain"), "{error}");

    let mut cfg = config(&redis, &amqp);
    cfg.redis.url = "redis://127.0.0.1:1".into();
    let error = Application::build(cfg).await.err().expect("refused");
    assert!(
        error.to_string().starts_with("redis is unreachable"),
        "{error}"
    );

    let mut cfg = config(&redis, &amqp);
    cfg.amqp_url = "amqp://guest:guest@127.0.0.1:1/%2f".into();
    let error = Application::build(cfg).await.err().expect("refused");
    assert!(
        error.to_string().starts_with("rabbitmq is unreachable"),
        "{error}"
    );
}
