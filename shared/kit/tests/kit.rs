//! The kit against real stores: problem+json everywhere, readiness by store name, per-test
//! isolation that leaves nothing behind, and a broker connection that survives an outage.

use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use axum::routing::{get, post};
use flash_kit::amqp::Broker;
use flash_kit::http::{Json, Path, with_common_layers};
use flash_kit::ops::{Check, Readiness};
use flash_kit::stores::{self, PostgresCheck, RedisCheck};
use flash_kit::testing::{TcpProxy, TestAmqp, TestDatabase, TestRedis, amqp_url, redis_url};
use flash_protocol::messages::Queue;
use flash_protocol::{EventId, Problem};
use futures::future::BoxFuture;
use redis::AsyncTypedCommands as _;
use serde::Deserialize;
use tower::ServiceExt as _;

#[derive(Deserialize)]
struct Body1 {
    quantity: u32,
}

async fn boom() -> &'static str {
    assert!(!std::hint::black_box(true), "handler bug");
    "unreachable"
}

fn test_router() -> Router {
    let routes = Router::new()
        .route(
            "/echo",
            post(|Json(body): Json<Body1>| async move { Json(body.quantity) }),
        )
        .route(
            "/events/{id}",
            get(|Path(id): Path<EventId>| async move { id.to_string() }),
        )
        .route("/boom", get(boom))
        .route(
            "/slow",
            get(|| async {
                tokio::time::sleep(Duration::from_secs(5)).await;
                "late"
            }),
        )
        .fallback(flash_kit::http::not_found);
    with_common_layers(routes, "kit-test", Duration::from_millis(200))
}

async fn call(request: Request<Body>) -> (StatusCode, Option<String>, String) {
    let response = test_router().oneshot(request).await.expect("infallible");
    let status = response.status();
    let content_type = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let body = axum::body::to_bytes(response.into_body(), 1 << 20)
        .await
        .expect("body");
    (
        status,
        content_type,
        String::from_utf8_lossy(&body).into_owned(),
    )
}

fn post_json(uri: &str, body: impl Into<Body>) -> Request<Body> {
    Request::post(uri)
        .header(header::CONTENT_TYPE, "application/json")
        .body(body.into())
        .expect("request")
}

async fn expect_problem(request: Request<Body>, status: u16, code: &str) -> Problem {
    let (actual, content_type, body) = call(request).await;
    assert_eq!(actual.as_u16(), status, "{body}");
    assert_eq!(content_type.as_deref(), Some("application/problem+json"));
    let problem: Problem = serde_json::from_str(&body).expect("problem body");
    assert_eq!(problem.code.as_str(), code);
    assert_eq!(problem.status, status);
    problem
}

#[tokio::test]
async fn good_requests_pass_and_bad_ones_get_problem_json() {
    let (status, _, body) = call(post_json("/echo", r#"{"quantity":3}"#)).await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, "3"));

    expect_problem(post_json("/echo", "{not json"), 400, "BAD_REQUEST").await;
    expect_problem(post_json("/echo", r#"{"quantity":-1}"#), 422, "VALIDATION").await;
    expect_problem(post_json("/echo", r#"{"qty":1}"#), 422, "VALIDATION").await;
    let no_type = Request::post("/echo")
        .body(Body::from(r#"{"quantity":1}"#))
        .expect("request");
    expect_problem(no_type, 415, "UNSUPPORTED_MEDIA_TYPE").await;
    let huge = format!(r#"{{"quantity":1,"pad":"{}"}}"#, "x".repeat(100 * 1024));
    expect_problem(post_json("/echo", huge), 413, "PAYLOAD_TOO_LARGE").await;
    let bad_id = Request::get("/events/not-a-uuid")
        .body(Body::empty())
        .expect("request");
    expect_problem(bad_id, 422, "VALIDATION").await;
    let wrong_method = Request::delete("/echo")
        .body(Body::empty())
        .expect("request");
    expect_problem(wrong_method, 405, "METHOD_NOT_ALLOWED").await;
    let unknown = Request::get("/nowhere")
        .body(Body::empty())
        .expect("request");
    expect_problem(unknown, 404, "NOT_FOUND").await;
}

#[tokio::test]
async fn panics_and_slow_handlers_become_problems_not_crashes() {
    let boom = Request::get("/boom").body(Body::empty()).expect("request");
    let problem = expect_problem(boom, 500, "INTERNAL").await;
    assert!(!problem.detail.contains("handler bug"), "internals leaked");
    let slow = Request::get("/slow").body(Body::empty()).expect("request");
    expect_problem(slow, 504, "TIMEOUT").await;
}

#[tokio::test]
async fn golden_signals_are_recorded_by_route_and_status() {
    let handle = flash_kit::metrics::install();
    call(post_json("/echo", r#"{"quantity":1}"#)).await;
    call(post_json("/echo", "{")).await;
    let text = handle.render();
    let requests = text
        .lines()
        .find(|l| {
            l.starts_with("http_requests_total{")
                && l.contains(r#"service="kit-test""#)
                && l.contains(r#"route="/echo""#)
                && l.contains(r#"status="400""#)
        })
        .unwrap_or_else(|| panic!("no 400 counter for /echo in:\n{text}"));
    let count: f64 = requests
        .rsplit(' ')
        .next()
        .and_then(|v| v.parse().ok())
        .expect("a counter value");
    assert!(count >= 1.0, "{requests}");
    assert!(
        text.contains("http_request_duration_seconds_bucket{"),
        "{text}"
    );
}

struct Failing;

impl Check for Failing {
    fn name(&self) -> &'static str {
        "imaginary"
    }

    fn check(&self) -> BoxFuture<'_, Result<(), String>> {
        Box::pin(async { Err("down".to_owned()) })
    }
}

#[tokio::test]
async fn readiness_names_every_failing_dependency() {
    let db = TestDatabase::create().await;
    let pool = stores::connect_postgres(&db.url, 2)
        .await
        .expect("postgres");
    let redis = stores::connect_redis(&redis_url()).await.expect("redis");
    let ready = Readiness::new()
        .with(PostgresCheck(pool.clone()))
        .with(RedisCheck(redis.into()));
    let report = ready.report().await;
    assert!(report.ready, "{report:?}");
    assert_eq!(report.checks.len(), 2);

    let report = ready.clone().with(Failing).report().await;
    assert!(!report.ready);
    assert_eq!(report.failing, ["imaginary"]);
    pool.close().await;
}

#[tokio::test]
async fn unreachable_stores_fail_fast_naming_the_store() {
    let closed = "127.0.0.1:1";
    let redis = stores::connect_redis(&format!("redis://{closed}"))
        .await
        .expect_err("nothing listens on port 1");
    assert!(
        redis.to_string().starts_with("redis is unreachable"),
        "{redis}"
    );
    let pg = stores::connect_postgres(&format!("postgres://u:secret@{closed}/db"), 1)
        .await
        .expect_err("nothing listens on port 1");
    let message = pg.to_string();
    assert!(message.starts_with("postgres is unreachable"), "{message}");
    assert!(!message.contains("secret"), "password leaked: {message}");
    let amqp = Broker::connect(
        &format!("amqp://guest:guest@{closed}/%2f"),
        TestAmqp::new().names.clone(),
    )
    .await
    .expect_err("nothing listens on port 1");
    assert!(
        amqp.to_string().starts_with("rabbitmq is unreachable"),
        "{amqp}"
    );
}

/// Two tests running side by side, each with its own database, key prefix and broker names,
/// write the same logical data and never see each other's; afterwards nothing is left.
#[tokio::test]
async fn parallel_tests_do_not_see_each_other_and_leave_nothing_behind() {
    async fn one_test(marker: &'static str) -> (String, String, String) {
        let db = TestDatabase::create().await;
        let redis = TestRedis::new();
        let amqp = TestAmqp::new();

        let pool = stores::connect_postgres(&db.url, 2)
            .await
            .expect("postgres");
        sqlx::query("CREATE TABLE notes (body text NOT NULL)")
            .execute(&pool)
            .await
            .expect("create");
        sqlx::query("INSERT INTO notes VALUES ($1)")
            .bind(marker)
            .execute(&pool)
            .await
            .expect("insert");

        let mut conn = stores::connect_redis(&redis.url).await.expect("redis");
        let key = redis.keys().events();
        conn.sadd(&key, marker).await.expect("sadd");

        let broker = Broker::connect(&amqp_url(), amqp.names.clone())
            .await
            .expect("broker");
        let channel = broker.channel().await.expect("channel");
        let queue = amqp.names.queue(Queue::GatewayEvents);
        channel
            .basic_publish(
                "".into(),
                queue.clone().into(),
                lapin::options::BasicPublishOptions::default(),
                marker.as_bytes(),
                lapin::BasicProperties::default(),
            )
            .await
            .expect("publish")
            .await
            .expect("routed");

        // Let the other test write too before reading back.
        tokio::time::sleep(Duration::from_millis(300)).await;

        let rows: Vec<(String,)> = sqlx::query_as("SELECT body FROM notes")
            .fetch_all(&pool)
            .await
            .expect("select");
        assert_eq!(
            rows,
            [(marker.to_owned(),)],
            "database shared between tests"
        );
        let members = conn.smembers(&key).await.expect("smembers");
        assert_eq!(members.into_iter().collect::<Vec<_>>(), [marker.to_owned()]);
        let got = channel
            .basic_get(
                queue.into(),
                lapin::options::BasicGetOptions { no_ack: true },
            )
            .await
            .expect("get")
            .expect("a message");
        assert_eq!(got.delivery.data, marker.as_bytes());
        pool.close().await;
        broker.close().await;
        (
            db.name.clone(),
            redis.prefix.clone(),
            amqp.names.prefix().to_owned(),
        )
        // db, redis and amqp are dropped here: everything they made is removed.
    }

    let (a, b) = tokio::join!(one_test("alpha"), one_test("beta"));
    assert_ne!(a, b);

    let admin = stores::connect_postgres(
        &flash_kit::testing::with_database(&flash_kit::testing::database_url(), "postgres"),
        1,
    )
    .await
    .expect("postgres");
    let mut conn = stores::connect_redis(&redis_url()).await.expect("redis");
    let probe_channel =
        lapin::Connection::connect(&amqp_url(), lapin::ConnectionProperties::default())
            .await
            .expect("amqp");
    for (database, prefix, names) in [a, b] {
        let left: Option<(String,)> =
            sqlx::query_as("SELECT datname::text FROM pg_database WHERE datname = $1")
                .bind(&database)
                .fetch_optional(&admin)
                .await
                .expect("pg_database");
        assert!(left.is_none(), "database {database} left behind");
        let keys = conn.keys(format!("{prefix}*")).await.expect("keys");
        assert!(keys.is_empty(), "redis keys left behind: {keys:?}");
        let channel = probe_channel.create_channel().await.expect("channel");
        let passive = channel
            .queue_declare(
                format!("{names}{}", Queue::GatewayEvents.base_name()).into(),
                lapin::options::QueueDeclareOptions {
                    passive: true,
                    ..Default::default()
                },
                lapin::types::FieldTable::default(),
            )
            .await;
        assert!(passive.is_err(), "queue of {names} left behind");
    }
}

/// A test's cleanup finds its own keys in a few calls even when the Redis it shares holds many
/// times more keys of others (a `make up` beside the tests keeps its buyers' keys for days):
/// it must not scan 10 keys per round trip, starving the tests running beside it.
#[tokio::test]
async fn a_cleanup_among_many_other_keys_takes_few_round_trips() {
    const OTHERS: usize = 40_000;
    let others = TestRedis::new();
    let own = TestRedis::new();
    let mut conn = stores::connect_redis(&redis_url()).await.expect("redis");
    for chunk in (0..OTHERS).collect::<Vec<_>>().chunks(5_000) {
        let mut pipe = redis::pipe();
        for i in chunk {
            pipe.set(format!("{}other:{i}", others.prefix), 1).ignore();
        }
        pipe.exec_async(&mut conn).await.expect("fill");
    }
    for i in 0..3 {
        conn.set(format!("{}own:{i}", own.prefix), 1)
            .await
            .expect("set");
    }
    let total: usize = redis::cmd("DBSIZE")
        .query_async(&mut conn)
        .await
        .expect("dbsize");
    assert!(total >= OTHERS, "{total} keys");

    let prefix = own.prefix.clone();
    let url = own.url.clone();
    let deleted = tokio::task::spawn_blocking(move || {
        let client = redis::Client::open(url.as_str()).expect("url");
        let mut blocking = client.get_connection().expect("redis");
        flash_kit::testing::delete_prefixed(&mut blocking, &prefix).expect("delete")
    })
    .await
    .expect("cleanup");
    assert_eq!(deleted.keys, 3);
    // Redis's default of 10 keys per SCAN would take about `total / 10` calls here; a
    // thousand per call at least keeps a cleanup to a few dozen calls.
    let most = total / 1_000 + 5;
    assert!(
        deleted.scans <= most,
        "{} SCAN calls over {total} keys (at most {most})",
        deleted.scans
    );
    let left = conn.keys(format!("{}*", own.prefix)).await.expect("keys");
    assert!(left.is_empty(), "left behind: {left:?}");
    let others_prefix = others.prefix.clone();
    drop(others);
    let left = conn.keys(format!("{others_prefix}*")).await.expect("keys");
    assert!(left.is_empty(), "{} keys left behind", left.len());
}

/// More buyers than Tokio's own backlog (1,024) open their connections at once while the
/// server is not accepting: every handshake completes and waits in the backlog, none is
/// dropped to wait for a retransmission (the 5 s bound only stops a test that would hang).
#[tokio::test]
async fn a_burst_of_connections_waits_in_the_backlog_instead_of_being_dropped() {
    const BURST: usize = 1_500;
    let listener =
        flash_kit::server::listen(SocketAddr::from(([127, 0, 0, 1], 0))).expect("listen");
    let addr = listener.local_addr().expect("bound");
    let connects = (0..BURST).map(|_| {
        tokio::time::timeout(Duration::from_secs(5), tokio::net::TcpStream::connect(addr))
    });
    let streams = futures::future::join_all(connects).await;
    let connected = streams
        .iter()
        .filter(|stream| matches!(stream, Ok(Ok(_))))
        .count();
    assert_eq!(
        connected, BURST,
        "handshakes dropped by a full backlog (the host's net.core.somaxconn must be at least {BURST})"
    );
}

async fn wait_until(what: &str, mut condition: impl FnMut() -> bool) {
    for _ in 0..200 {
        if condition() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("timed out waiting until {what}");
}

#[tokio::test]
async fn broker_connection_comes_back_after_an_outage() {
    let amqp = TestAmqp::new();
    let target: SocketAddr = "127.0.0.1:5672".parse().expect("addr");
    let proxy = TcpProxy::start(target).await;
    let broker = Broker::connect(&proxy.url_for(&amqp.url), amqp.names.clone())
        .await
        .expect("broker through proxy");
    let check = broker.check();
    assert!(check.check().await.is_ok());
    let mut changes = broker.watch();

    proxy.cut();
    wait_until("the broker is seen down", || !broker.is_connected()).await;
    let failed = check.check().await.expect_err("down");
    assert!(failed.contains("not connected"), "{failed}");

    proxy.restore().await;
    wait_until("the broker reconnects", || broker.is_connected()).await;
    changes.changed().await.expect("a change was published");
    assert!(broker.channel().await.is_ok());
    broker.close().await;
    assert!(!broker.is_connected(), "closed on request");
}

mod limits {
    use std::time::Duration;

    use flash_kit::limits::{Count, Limit, Rate, RateLimiter};
    use flash_kit::stores::{self, RedisMode};
    use flash_kit::testing::{TcpProxy, TestRedis, TestRedisCluster};

    async fn limiter(redis: &TestRedis) -> RateLimiter {
        let conn = stores::connect_redis_in(&redis.url, RedisMode::Node)
            .await
            .expect("redis");
        RateLimiter::new(conn, redis.keys())
    }

    #[tokio::test]
    async fn two_replicas_share_one_limit_and_a_refusal_says_how_long_to_wait() {
        let redis = TestRedis::new();
        let (one, two) = (limiter(&redis).await, limiter(&redis).await);
        let rate = Rate::new(3, Duration::from_secs(60));
        let check = |limiter: &RateLimiter| {
            let limiter = limiter.clone();
            async move {
                limiter
                    .check(&[Limit::new("test", rate, "alice")], Count::Charge)
                    .await
            }
        };
        check(&one).await.expect("first");
        check(&two).await.expect("second, on the other replica");
        check(&one).await.expect("third");
        let refused = check(&two).await.expect_err("fourth is over the limit");
        assert_eq!(refused.limit, "test");
        assert!(
            refused.retry_after > Duration::from_secs(15)
                && refused.retry_after <= Duration::from_secs(20),
            "one more every 20 s: {:?}",
            refused.retry_after
        );
        // Another subject has its own allowance.
        one.check(&[Limit::new("test", rate, "bob")], Count::Charge)
            .await
            .expect("bob is not alice");
    }

    #[tokio::test]
    async fn peeking_counts_nothing_and_a_refused_call_charges_no_limit() {
        let redis = TestRedis::new();
        let limiter = limiter(&redis).await;
        let tight = Rate::new(1, Duration::from_secs(60));
        let loose = Rate::new(10, Duration::from_secs(60));
        for _ in 0..5 {
            limiter
                .check(&[Limit::new("tight", tight, "x")], Count::Peek)
                .await
                .expect("a peek never counts");
        }
        let both = [
            Limit::new("loose", loose, "x"),
            Limit::new("tight", tight, "x"),
        ];
        limiter.check(&both, Count::Charge).await.expect("first");
        for _ in 0..5 {
            let refused = limiter
                .check(&both, Count::Charge)
                .await
                .expect_err("the tight limit refuses");
            assert_eq!(refused.limit, "tight");
        }
        // The loose limit was charged once, not six times: nine more pass it alone.
        for i in 0..9 {
            limiter
                .check(&[Limit::new("loose", loose, "x")], Count::Charge)
                .await
                .unwrap_or_else(|r| panic!("call {i}: {r}"));
        }
        // Off limits are not checked at all.
        limiter
            .check(&[Limit::new("tight", Rate::OFF, "x")], Count::Charge)
            .await
            .expect("off");
    }

    #[tokio::test]
    async fn limits_hold_on_a_redis_cluster() {
        let cluster = TestRedisCluster::start().await;
        let conn = stores::connect_redis_in(&cluster.url, RedisMode::Cluster)
            .await
            .expect("cluster");
        let limiter = RateLimiter::new(conn, cluster.keys());
        let rate = Rate::new(2, Duration::from_secs(60));
        let limits = [
            Limit::new("address", rate, "203.0.113.7"),
            Limit::new(
                "network",
                Rate::new(100, Duration::from_secs(60)),
                "203.0.113.0/24",
            ),
        ];
        limiter.check(&limits, Count::Charge).await.expect("1");
        limiter.check(&limits, Count::Charge).await.expect("2");
        let refused = limiter.check(&limits, Count::Charge).await.expect_err("3");
        assert_eq!(refused.limit, "address");
    }

    #[tokio::test]
    async fn an_unreachable_redis_lets_calls_through() {
        let redis = TestRedis::new();
        let proxy = TcpProxy::start("127.0.0.1:6379".parse().expect("addr")).await;
        let conn = stores::connect_redis_in(&proxy.url_for(&redis.url), RedisMode::Node)
            .await
            .expect("redis through the proxy");
        let limiter = RateLimiter::new(conn, redis.keys());
        let rate = Rate::new(1, Duration::from_secs(60));
        let limit = [Limit::new("test", rate, "carol")];
        limiter.check(&limit, Count::Charge).await.expect("first");
        assert!(limiter.check(&limit, Count::Charge).await.is_err());
        proxy.cut();
        for _ in 0..3 {
            limiter
                .check(&limit, Count::Charge)
                .await
                .expect("limits never stop the sale");
        }
    }
}
