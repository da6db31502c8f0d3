//! The drill as the end-to-end test of the whole suite: a small crowd against the suite in
//! this process (real Postgres, Redis and RabbitMQ, names of its own), every invariant and
//! SLO checked from outside and in the database.

use flash_drill::drill::analysis::Slos;
use flash_drill::drill::client::TargetArgs;
use flash_drill::drill::farm::FarmArgs;
use flash_drill::drill::hostile::HostileArgs;
use flash_drill::drill::plan::{Arrival, Behaviour};
use flash_drill::drill::report::Report;
use flash_drill::drill::{AbuseArgs, BurstArgs, DrillArgs, SaleArgs, abuse, burst};
use flash_kit::testing::Running;
use flash_suite::Suite;
use flash_suite::testing::{ADMIN_EMAIL, ADMIN_PASSWORD, Stores};

/// The whole suite in this process, with a paying provider that declines one in ten.
async fn start(stores: &Stores) -> (std::net::SocketAddr, Running) {
    start_with(stores, |_| {}).await
}

/// [`start`], with `adjust` applied to its configuration last.
async fn start_with(
    stores: &Stores,
    adjust: impl FnOnce(&mut flash_suite::SuiteConfig),
) -> (std::net::SocketAddr, Running) {
    let mut config = stores.suite_config();
    config.api.database_max_connections = 8;
    // See the abuse test: a connection sometimes outlives the drill at the origin's stop.
    config.origin.common.shutdown_grace_secs = 3;
    config.pay.provider.latency_p50_ms = 20.0;
    config.pay.provider.latency_p99_ms = 80.0;
    config.pay.provider.decline_rate = 0.1;
    adjust(&mut config);
    let suite = Suite::build(config).await.expect("suite builds");
    let addr = suite.origin_addr();
    (
        addr,
        Running::spawn(addr.port(), |stop| suite.run_until(stop)),
    )
}

fn args(origin: std::net::SocketAddr, db: &str, users: usize, tickets: u32) -> BurstArgs {
    BurstArgs {
        drill: DrillArgs {
            target: TargetArgs {
                base_url: format!("http://{origin}"),
                api: None,
                gateway: vec![],
                source: vec![],
                users_per_source: 100,
                connections: 16,
                admin_email: ADMIN_EMAIL.into(),
                admin_password: ADMIN_PASSWORD.into(),
            },
            sale: SaleArgs {
                tickets: Some(tickets),
                max_per_user: 2,
                admit_per_sec: 200,
                max_active: 50,
                admission_ttl_s: 60,
                challenge_difficulty: 0,
            },
            behaviour: Behaviour {
                polling_share: 0.3,
                abandon_share: 0.1,
                reconnect_share: 0.2,
                retry_share: 0.3,
                quantity: 1,
                think_ms: 50,
                poll_interval_ms: 300,
                follow_interval_ms: 200,
                seed: 11,
            },
            // Latency SLOs are for release builds on a quiet machine (BENCHMARKS.md); here,
            // a debug build among parallel tests, only errors and invariants are held to.
            slos: Slos {
                slo_join_p99_ms: 10_000.0,
                slo_order_p99_ms: 10_000.0,
                slo_error_rate: 0.001,
            },
            farm: FarmArgs {
                bot_farm: 0,
                bot_farm_addresses: 4,
                bot_farm_cores: 1,
                bot_farm_connections: 4,
            },
            shards: Some(1),
            signup_concurrency: 16,
            deadline_secs: 60,
            final_within_secs: 30,
            late_payments: false,
            database_url: Some(db.to_owned()),
            chaos: vec![],
            redis_url: String::new(),
            run: None,
            json: None,
            html: None,
            quiet: true,
        },
        users,
        arrival: Arrival::Burst,
        ramp_secs: 1.0,
        pre_queue_secs: 4,
        late_share: 0.25,
    }
}

fn failed(report: &Report) -> Vec<String> {
    report
        .invariants
        .iter()
        .chain(&report.slos)
        .filter(|c| !c.ok)
        .map(|c| format!("{}: {}", c.name, c.detail))
        .collect()
}

fn outcome(report: &Report, name: &str) -> u64 {
    report.outcomes.get(name).copied().unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn buyers_solve_the_queues_challenge_and_the_sale_holds() {
    let stores = Stores::new().await;
    let (origin_addr, origin) = start(&stores).await;
    let mut args = args(origin_addr, &stores.db.url, 120, 20);
    args.drill.sale.challenge_difficulty = 10;
    // At most 6 × 2 of the 20 tickets go to the farm, which comes first: the crowd buys too.
    args.drill.farm.bot_farm = 6;
    args.drill.farm.bot_farm_addresses = 2;
    let report = burst(args).await.expect("the drill runs");
    assert!(report.passed, "{}\n{:?}", report.table(), failed(&report));
    // Every buyer got in line only by solving (a join without a solution is refused 428).
    assert!(report.joins.count >= 20, "{}", report.table());
    assert_eq!(outcome(&report, "failed"), 0, "{:?}", report.errors);
    assert!(outcome(&report, "paid") > 0);

    // The farm came at t = 0: every account got a place, each for one solve it paid for.
    let farm = report.farm.clone().expect("the farm's report");
    assert_eq!((farm.accounts, farm.addresses, farm.difficulty), (6, 2, 10));
    assert_eq!(farm.places, 6, "{farm:?}");
    assert!(farm.solves >= farm.places, "{farm:?}");
    assert!(
        farm.attempts >= farm.solves && farm.cpu_seconds > 0.0,
        "{farm:?}"
    );
    assert!(farm.cpu_seconds_per_place.is_some_and(|s| s > 0.0));
    assert!(farm.tickets <= 6 * 2, "{farm:?}");
    // Its tickets are in the stock the checks count, and in the database.
    let ledger = report.ledger.clone().expect("audited in the database");
    let farm_paid = farm.outcomes.get("paid").copied().unwrap_or(0);
    assert_eq!(
        i64::try_from(outcome(&report, "paid") + farm_paid).expect("small"),
        ledger.paid,
        "the crowd's and the farm's paid orders are the database's"
    );
    let names: Vec<&str> = report.invariants.iter().map(|c| c.name.as_str()).collect();
    assert!(names.contains(&"the bot farm got no more than its accounts may"));
    let text = report.table();
    assert!(
        text.contains("bot farm:") && text.contains("per place"),
        "{text}"
    );
    origin.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_sells_out_without_oversell_and_every_order_settles() {
    let stores = Stores::new().await;
    // Three in ten declined: with one in ten, a sale of some thirty payments had none in one
    // run of about twenty-five (0.9^30), and the declines' path went unchecked.
    let (origin_addr, origin) =
        start_with(&stores, |config| config.pay.provider.decline_rate = 0.3).await;

    let report = burst(args(origin_addr, &stores.db.url, 240, 40))
        .await
        .expect("the drill runs");
    assert!(report.passed, "{}\n{:?}", report.table(), failed(&report));

    // The sale really happened, and the checks really looked at it.
    // Every buyer's visit ended one way or another; most joined (the rest came after the
    // sale closed and were told at the door).
    assert_eq!(report.outcomes.values().sum::<u64>(), 240);
    assert!(report.joins.count >= 40, "{}", report.table());
    let ledger = report.ledger.clone().expect("audited in the database");
    assert_eq!(ledger.inventory, 40);
    assert!(ledger.paid > 0 && ledger.pending == 0, "{ledger:?}");
    assert_eq!(
        i64::try_from(outcome(&report, "paid")).expect("small"),
        ledger.paid,
        "buyers saw what the database holds"
    );
    assert!(outcome(&report, "queue closed") + outcome(&report, "sold out at checkout") > 0);
    assert!(outcome(&report, "abandoned") > 0);
    assert_eq!(outcome(&report, "failed"), 0, "{:?}", report.errors);
    assert!(report.payments.failed > 0, "30 % of payments are declined");
    let names: Vec<&str> = report.invariants.iter().map(|c| c.name.as_str()).collect();
    for expected in [
        "no oversell",
        "stock accounting adds up",
        "one order per idempotency key",
        "every accepted order reaches a final state",
        "queue numbers follow join order after opening",
        "admission follows queue order",
        "reconnecting keeps the place",
        "database audit",
    ] {
        assert!(
            names.contains(&expected),
            "{expected} missing from {names:?}"
        );
    }
    assert_eq!(
        report.timeline.iter().map(|s| s.joins).sum::<u64>(),
        report.joins.count
    );
    let html = report.html();
    assert!(html.contains("<svg") && html.contains("Passed"));
    // The JSON report reads back as the same report (`flash-drill report`).
    let json = serde_json::to_string(&report).expect("json");
    let again: Report = serde_json::from_str(&json).expect("reads back");
    assert_eq!(again.table(), report.table());
    origin.stop().await;
}

/// Payments that land after their order's hold (a one-second hold, a provider taking about a
/// second) are refunded, each exactly once, and the sale still holds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn payments_approved_after_their_hold_are_each_refunded_once() {
    let stores = Stores::new().await;
    let (origin_addr, origin) = start_with(&stores, |config| {
        config.api.orders.hold_secs = 1;
        config.api.orders.sweep_ms = 200;
        config.pay.provider.latency_p50_ms = 1_000.0;
        config.pay.provider.latency_p99_ms = 2_500.0;
    })
    .await;

    let mut args = args(origin_addr, &stores.db.url, 120, 30);
    args.drill.late_payments = true;
    let report = burst(args).await.expect("the drill runs");
    assert!(report.passed, "{}\n{:?}", report.table(), failed(&report));
    let ledger = report.ledger.clone().expect("audited in the database");
    assert!(ledger.late_approvals > 0, "{ledger:?}");
    assert_eq!(ledger.late_approvals_without_one_refund, 0, "{ledger:?}");
    assert_eq!(ledger.refunds_pending, 0, "{ledger:?}");
    assert_eq!(
        ledger.refunded, ledger.late_approvals,
        "every payment approved too late was given back: {ledger:?}"
    );
    assert!(report.html().contains("payments approved after their hold"));
    origin.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pre_queue_is_shuffled_once_at_opening_and_late_arrivals_queue_in_order() {
    let stores = Stores::new().await;
    let (origin_addr, origin) = start(&stores).await;

    let mut args = args(origin_addr, &stores.db.url, 160, 200);
    args.arrival = Arrival::PreQueue;
    let report = burst(args).await.expect("the drill runs");
    assert!(report.passed, "{}\n{:?}", report.table(), failed(&report));
    let coverage = report
        .invariants
        .iter()
        .find(|c| c.name == "pre-queue shuffle covers everyone exactly once")
        .expect("checked");
    assert!(coverage.ok, "{}", coverage.detail);
    assert!(
        coverage.detail.contains(" 0 numbers given twice"),
        "{}",
        coverage.detail
    );
    // The draw was published, checks out from outside, and gave each early buyer their line.
    let draw = report
        .invariants
        .iter()
        .find(|c| c.name == "the published draw verifies and numbers the pre-queue")
        .expect("checked");
    assert!(
        draw.ok && draw.detail.contains(", 0 holding another number"),
        "{}",
        draw.detail
    );
    // Enough tickets for everyone who stays: all of them buy.
    assert_eq!(outcome(&report, "sold out at checkout"), 0);
    assert!(outcome(&report, "paid") + outcome(&report, "payment failed") > 100);
    origin.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missed_slo_fails_the_drill_and_says_which() {
    let stores = Stores::new().await;
    let (origin_addr, origin) = start(&stores).await;

    let mut args = args(origin_addr, &stores.db.url, 30, 10);
    args.drill.slos.slo_join_p99_ms = 0.001;
    let report = burst(args).await.expect("the drill runs");
    assert!(!report.passed);
    assert_eq!(failed(&report).len(), 1, "{:?}", failed(&report));
    assert!(failed(&report)[0].starts_with("join p99"));
    let error =
        flash_drill::drill::conclude(&report, None, None).expect_err("a failed drill is an error");
    assert!(error.to_string().contains("join p99"), "{error}");
    let failed = error
        .downcast_ref::<flash_drill::drill::Failed>()
        .expect("a typed failure");
    assert!(failed.invariants.is_empty());
    assert_eq!(failed.exit_code(), 1, "only an SLO was missed");
    origin.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attackers_beside_a_burst_get_no_more_than_the_rules_allow() {
    let stores = Stores::new().await;
    let mut config = stores.suite_config();
    config.api.database_max_connections = 8;
    // Half-sent requests are closed within this.
    config.origin.common.http_header_read_timeout_secs = 2;
    // Under parallel tests a connection sometimes outlives the drill on the origin, which then
    // waits out its whole grace at the stop (20 s by default): shorter here, so the stop stays
    // within the harness's 10 s. The connection is not found yet (see BENCHMARKS / the notes).
    config.origin.common.shutdown_grace_secs = 3;
    let suite = Suite::build(config).await.expect("suite builds");
    let origin_addr = suite.origin_addr();
    let origin = Running::spawn(origin_addr.port(), |stop| suite.run_until(stop));

    let report = abuse(AbuseArgs {
        burst: args(origin_addr, &stores.db.url, 160, 30),
        hostile: HostileArgs {
            login_flood: 20,
            signup_flood: 90,
            signup_limit: flash_api::config::defaults::LIMIT_SIGNUP_PER_ADDRESS
                .parse()
                .expect("the default rate"),
            leavers: 4,
            rejoiners: 4,
            rejoin_rounds: 3,
            made_up: 300,
            half_sent: 50,
            header_read_timeout_secs: 2,
        },
    })
    .await
    .expect("the drill runs");
    assert!(report.passed, "{}\n{:?}", report.table(), failed(&report));
    assert!(
        report
            .invariants
            .iter()
            .any(|c| c.name == "attackers got no more than the rules allow" && c.ok)
    );
    let attack = |name: &str| {
        report
            .attacks
            .iter()
            .find(|a| a.name == name)
            .unwrap_or_else(|| panic!("{name} missing from {}", report.table()))
    };
    let answered = |name: &str, key: &str| attack(name).answers.get(key).copied().unwrap_or(0);
    // Each attacker really attacked, and was refused the way the rules say.
    let flood = attack("login flood");
    assert!(flood.tries >= 20, "{}", report.table());
    assert_eq!(flood.gains[0].got, 0);
    assert!(answered("login flood", "401") > 0, "{}", report.table());
    let signups = attack("sign-up flood");
    assert_eq!(signups.tries, 90);
    // The per-address limit lets 60 attempts through at once (an attempt that found every
    // hashing slot taken, 503, counts as one); the rest are refused with 429.
    let through = signups.gains[0].got + answered("sign-up flood", "503");
    assert!(
        (60..=61).contains(&through) && signups.gains[0].got > 0,
        "{}",
        report.table()
    );
    assert_eq!(answered("sign-up flood", "429"), 90 - through);
    // Every socket of a left place is closed with 4404 (or with 1000 once the sale is over);
    // a leaver who came after the sell-out had no place to open one for (409).
    let closed_left = answered("leave and keep the socket", "socket closed 4404");
    assert!(closed_left >= 1, "{}", report.table());
    assert_eq!(
        closed_left + answered("leave and keep the socket", "socket closed 1000"),
        answered("leave and keep the socket", "socket opened"),
        "{}",
        report.table()
    );
    assert_eq!(
        answered("leave and keep the socket", "join 200")
            + answered("leave and keep the socket", "join 409"),
        4,
        "{}",
        report.table()
    );
    assert_eq!(attack("leave and keep the socket").gains[0].got, 0);
    assert_eq!(attack("leave and rejoin").gains[0].got, 0);
    assert!(attack("made-up requests").tries >= 300);
    assert_eq!(attack("made-up requests").gains[0].got, 0);
    let half = attack("half-sent requests");
    assert_eq!(half.tries, 50);
    assert_eq!(half.gains[0].got, 0, "{}", report.table());
    // The report shows them, and reads back.
    assert!(report.table().contains("attackers:"));
    assert!(report.html().contains("<h2>Attackers</h2>"));
    let json = serde_json::to_string(&report).expect("json");
    let again: Report = serde_json::from_str(&json).expect("reads back");
    assert_eq!(again.attacks.len(), report.attacks.len());
    origin.stop().await;
}
