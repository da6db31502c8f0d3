//! The api as a running service against real Postgres and RabbitMQ.

use std::net::SocketAddr;

use flash_api::Application;
use flash_api::config::Argon2Config;
use flash_api::password::PasswordHashing;
use flash_kit::testing::TcpProxy;
use flash_protocol::Problem;
use secrecy::SecretString;

use crate::helpers::{Stores, TEST_ARGON2, TestApi};

#[tokio::test]
async fn starts_migrated_with_health_endpoints() {
    let app = TestApi::spawn().await;
    assert_eq!(app.get("/live").await.status(), 200);
    let (status, report) = app.ready().await;
    assert_eq!(status, 200, "{report:?}");
    let names: Vec<&str> = report.checks.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["postgres", "rabbitmq"]);
    let applied: i64 = sqlx::query_scalar("SELECT count(*) FROM _sqlx_migrations WHERE success")
        .fetch_one(&app.pool)
        .await
        .expect("migrations table");
    assert_eq!(applied, flash_api::db::MIGRATOR.iter().count() as i64);
    let response = app.get("/api/v1/nothing-here").await;
    assert_eq!(response.status(), 404);
    let problem: Problem = response.json().await.expect("problem");
    assert_eq!(problem.code.as_str(), "NOT_FOUND");
    app.stop().await;
}

#[tokio::test]
async fn ready_fails_naming_postgres_while_it_is_cut_off_and_recovers() {
    let stores = Stores::new().await;
    let proxy = TcpProxy::start("127.0.0.1:5432".parse::<SocketAddr>().expect("addr")).await;
    let mut config = stores.config();
    config.database_url = proxy.url_for(&stores.db.url);
    let app = TestApi::spawn_with(config, stores).await;
    assert_eq!(app.ready().await.0, 200);

    proxy.cut();
    let report = app.wait_ready(503).await;
    assert_eq!(report.failing, ["postgres"]);

    proxy.restore().await;
    app.wait_ready(200).await;
    app.stop().await;
}

#[tokio::test]
async fn bootstrap_admin_is_created_once_and_never_takes_over_an_existing_account() {
    let stores = Stores::new().await;
    let mut config = stores.config();
    config.admin_email = Some("Admin@Example.com".into());
    config.admin_password = Some(SecretString::from("a long admin password"));

    // Twice, as two replicas starting would: one account, admin, password usable.
    for _ in 0..2 {
        let app = Application::build(config.clone()).await.expect("builds");
        app.state.db.close().await;
    }
    let pool = flash_kit::stores::connect_postgres(&stores.db.url, 1)
        .await
        .expect("pool");
    let rows: Vec<(String, String, String)> =
        sqlx::query_as("SELECT email, role, password_hash FROM users")
            .fetch_all(&pool)
            .await
            .expect("users");
    assert_eq!(rows.len(), 1, "{rows:?}");
    let (email, role, hash) = rows.into_iter().next().expect("one row");
    assert_eq!(
        (email.as_str(), role.as_str()),
        ("Admin@Example.com", "admin")
    );
    assert!(hash.starts_with("$argon2id$"), "{hash}");
    let hashing = PasswordHashing::new(TEST_ARGON2).expect("params");
    assert!(
        hashing
            .verify(SecretString::from("a long admin password"), hash.clone())
            .await
            .expect("verify")
    );
    assert!(
        !hashing
            .verify(SecretString::from("wrong"), hash)
            .await
            .expect("verify")
    );

    // An account someone registered with the e-mail later named as admin (in another letter
    // case) is not promoted: start-up refuses, says so, and starts.
    sqlx::query("INSERT INTO users (id, email, password_hash) VALUES (gen_random_uuid(), 'ops@example.com', 'kept')")
        .execute(&pool)
        .await
        .expect("user");
    config.admin_email = Some("OPS@example.com".into());
    let app = Application::build(config.clone())
        .await
        .expect("starts anyway");
    app.state.db.close().await;
    let role_of_ops = || async {
        sqlx::query_as::<_, (String, String)>(
            "SELECT role, password_hash FROM users WHERE email = 'ops@example.com'",
        )
        .fetch_one(&pool)
        .await
        .expect("ops user")
    };
    let (role, hash) = role_of_ops().await;
    assert_eq!((role.as_str(), hash.as_str()), ("user", "kept"));
    let bootstrap = flash_api::bootstrap::ensure_admin(
        &pool,
        &PasswordHashing::new(TEST_ARGON2).expect("params"),
        Some("OPS@example.com"),
        Some(&SecretString::from("a long admin password")),
    )
    .await
    .expect("bootstrap");
    assert!(
        matches!(bootstrap, flash_api::bootstrap::Bootstrap::Refused(_)),
        "{bootstrap:?}"
    );

    // Promoting it is a deliberate act.
    use flash_api::bootstrap::{Grant, grant_admin};
    assert!(matches!(
        grant_admin(&pool, "Ops@Example.com", "test")
            .await
            .expect("grant"),
        Grant::Granted(_)
    ));
    assert_eq!(role_of_ops().await.0, "admin");
    assert!(matches!(
        grant_admin(&pool, "ops@example.com", "test")
            .await
            .expect("grant"),
        Grant::AlreadyAdmin(_)
    ));
    assert_eq!(
        grant_admin(&pool, "nobody@example.com", "test")
            .await
            .expect("grant"),
        Grant::NoSuchAccount
    );

    // Half a bootstrap configuration is refused.
    config.admin_password = None;
    let error = Application::build(config).await.err().expect("refused");
    assert!(
        error.to_string().contains("must be set together"),
        "{error}"
    );
    pool.close().await;
}

#[tokio::test]
async fn password_hashes_are_salted_argon2id() {
    let hashing = PasswordHashing::new(TEST_ARGON2).expect("params");
    let one = hashing
        .hash(SecretString::from("same password"))
        .await
        .expect("hash");
    let two = hashing
        .hash(SecretString::from("same password"))
        .await
        .expect("hash");
    assert_ne!(one, two, "salted");
    assert!(
        hashing
            .verify(SecretString::from("same password"), one)
            .await
            .expect("verify")
    );
    assert!(
        !hashing
            .verify(SecretString::from("x"), "not a phc string".into())
            .await
            .expect("verify")
    );
    let bad = Argon2Config {
        memory_kib: 1,
        ..TEST_ARGON2
    };
    assert!(PasswordHashing::new(bad).is_err());
}

#[tokio::test]
async fn a_connection_the_server_terminated_is_unavailable_not_internal() {
    // As when Postgres shuts down or restarts: the server ends the session (57P01).
    let db = flash_kit::testing::TestDatabase::create().await;
    let pool = flash_kit::stores::connect_postgres(&db.url, 2)
        .await
        .expect("pool");
    let mut victim = pool.acquire().await.expect("connection");
    let pid: i32 = sqlx::query_scalar("SELECT pg_backend_pid()")
        .fetch_one(&mut *victim)
        .await
        .expect("pid");
    let terminated: bool = sqlx::query_scalar("SELECT pg_terminate_backend($1)")
        .bind(pid)
        .fetch_one(&pool)
        .await
        .expect("terminate");
    assert!(terminated);
    let error = sqlx::query("SELECT 1")
        .execute(&mut *victim)
        .await
        .expect_err("the session is gone");
    assert!(
        flash_api::error::database_unavailable(&error),
        "{error:?} should be retryable"
    );
    let unique = sqlx::query("SELECT 1/0")
        .execute(&pool)
        .await
        .expect_err("an error");
    assert!(
        !flash_api::error::database_unavailable(&unique),
        "{unique:?}"
    );
    drop(victim);
    pool.close().await;
}
