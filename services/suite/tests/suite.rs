//! The whole suite in one process on port 0, against real Postgres, Redis and RabbitMQ.

use flash_api::config::Argon2Config;
use flash_kit::config::CommonConfig;
use flash_kit::testing::{Running, TestAmqp, TestDatabase, TestRedis};
use flash_protocol::Problem;
use flash_suite::config::{DEFAULT_WEB_DIR, OriginConfig};
use flash_suite::{Suite, SuiteConfig};

struct Stores {
    db: TestDatabase,
    redis: TestRedis,
    amqp: TestAmqp,
}

impl Stores {
    fn suite_config(&self) -> SuiteConfig {
        let any_port = "127.0.0.1:0".parse().expect("addr");
        let amqp_prefix = self.amqp.names.prefix().to_owned();
        SuiteConfig {
            origin: OriginConfig {
                addr: any_port,
                web_dir: DEFAULT_WEB_DIR.into(),
                create_database: true,
                common: CommonConfig::default(),
            },
            gateway: flash_gateway::Config {
                addr: any_port,
                redis_url: self.redis.url.clone(),
                redis_key_prefix: self.redis.prefix.clone(),
                amqp_url: self.amqp.url.clone(),
                amqp_name_prefix: amqp_prefix.clone(),
                keys: flash_gateway::config::KeyConfig {
                    dev_keys: true,
                    ..flash_gateway::config::KeyConfig::default()
                },
                tick_interval_ms: 50,
                ws_auth_timeout_secs: 5,
                limits: flash_gateway::config::LimitConfig::default(),
                common: CommonConfig::default(),
            },
            api: flash_api::Config {
                addr: any_port,
                database_url: self.db.url.clone(),
                database_max_connections: 4,
                migrate_on_start: true,
                amqp_url: self.amqp.url.clone(),
                amqp_name_prefix: amqp_prefix.clone(),
                admin_email: Some("admin@flash.test".into()),
                admin_password: Some("an admin password".into()),
                keys: flash_api::config::KeyConfig {
                    dev_keys: true,
                    access_ttl_secs: 900,
                    refresh_ttl_secs: 3600,
                    ..flash_api::config::KeyConfig::default()
                },
                orders: flash_api::config::OrderConfig::default(),
                argon2: Argon2Config {
                    memory_kib: 1024,
                    iterations: 1,
                    parallelism: 1,
                },
                common: CommonConfig::default(),
            },
            pay: flash_pay::Config {
                ops_addr: any_port,
                amqp_url: self.amqp.url.clone(),
                amqp_name_prefix: amqp_prefix,
                common: CommonConfig::default(),
            },
        }
    }
}

#[tokio::test]
async fn one_origin_serves_web_api_queue_and_every_health_endpoint() {
    let stores = Stores {
        db: TestDatabase::create().await,
        redis: TestRedis::new(),
        amqp: TestAmqp::new(),
    };
    let suite = Suite::build(stores.suite_config())
        .await
        .expect("suite builds");
    let service_ports = [suite.gateway.port(), suite.api.port(), suite.pay.port()];
    let origin = Running::spawn(suite.origin_addr().port(), |shutdown| {
        suite.run_until(shutdown)
    });

    // The web placeholder at `/`.
    let page = origin.get("/").await;
    assert_eq!(page.status(), 200);
    assert!(
        page.headers()["content-type"]
            .to_str()
            .expect("type")
            .starts_with("text/html")
    );
    assert!(
        page.text()
            .await
            .expect("html")
            .contains("<h1>Flash Tickets</h1>")
    );
    assert_eq!(origin.get("/styles.css").await.status(), 200);

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
    let stores = Stores {
        db: TestDatabase::create().await,
        redis: TestRedis::new(),
        amqp: TestAmqp::new(),
    };
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
