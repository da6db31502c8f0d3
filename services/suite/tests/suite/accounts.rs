//! Accounts and keys under attack: the bootstrap admin never takes over an account, dev keys
//! never sit beside real ones, the gateway rotates its key without refusing outstanding gate
//! tokens, a raced refresh yields one pair, and what is kept only to recognise repeats is
//! retired.

use flash_tokens::SigningKey;
use serde_json::{Value, json};

use crate::helpers::{
    Replica, Stores, admin, buyer, client_from, event_on_sale, eventually, log_in, queue_call,
    register, send,
};

/// The claims of a JWT, read without checking its signature.
fn claims_of(token: &str) -> Value {
    use base64::Engine as _;
    let part = token.split('.').nth(1).expect("a JWT");
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(part)
        .expect("base64url");
    serde_json::from_slice(&bytes).expect("claims")
}

#[tokio::test]
async fn the_bootstrap_admin_never_takes_over_an_account_someone_registered() {
    let stores = Stores::new().await;
    let first = Replica::start(stores.suite_config()).await;
    let lead = format!(
        "new-ops-lead-{}@example.com",
        flash_kit::testing::unique_suffix()
    );
    let attacker = client_from("127.33.1.1");
    assert_eq!(
        register(&attacker, &first.base, &lead, "the attacker's password")
            .await
            .status,
        201
    );
    first.stop().await;

    // The operators later name that e-mail (in capitals) as the bootstrap admin.
    let mut config = stores.suite_config();
    config.api.admin_email = Some(lead.to_uppercase());
    let second = Replica::start(config).await;
    let tokens = log_in(&attacker, &second.base, &lead, "the attacker's password").await;
    assert_eq!(tokens.status, 200);
    let access = tokens.body["access_token"].as_str().expect("token");
    assert_eq!(claims_of(access)["role"], "user", "not promoted");
    let admin_call = send(
        reqwest::Client::new()
            .post(format!("{}/api/v1/admin/events", second.base))
            .bearer_auth(access)
            .json(&json!({})),
    )
    .await;
    assert_eq!(admin_call.code(403), "FORBIDDEN");
    second.stop().await;
}

#[tokio::test]
async fn dev_keys_beside_real_key_material_stop_the_service_at_start() {
    let stores = Stores::new().await;
    let pem = SigningKey::generate_pem().expect("pem");
    let mut config = stores.suite_config();
    config.gateway.keys.gate_signing_key = Some(pem.clone());
    let error = flash_suite::Suite::build(config)
        .await
        .err()
        .expect("refused")
        .to_string();
    assert!(
        error.contains("FLASH_DEV_KEYS") && error.contains("GATE_SIGNING_KEY"),
        "{error}"
    );
    let mut config = stores.suite_config();
    config.api.keys.api_signing_key = Some(pem);
    let error = flash_suite::Suite::build(config)
        .await
        .err()
        .expect("refused")
        .to_string();
    assert!(
        error.contains("FLASH_DEV_KEYS") && error.contains("API_SIGNING_KEY"),
        "{error}"
    );
}

/// A free port on loopback (bound, then let go) for a service whose address must be known
/// before it starts.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

/// A suite with real keys: the api signs access tokens with `api_pem` and checks gate tokens
/// against its own gateway's JWKS; the gateway signs with `gate_pem` and publishes
/// `previous` beside it.
fn with_real_keys(
    stores: &Stores,
    api_pem: &str,
    gate_pem: &str,
    previous: Option<String>,
) -> flash_suite::SuiteConfig {
    let mut config = stores.suite_config();
    let gateway_port = free_port();
    let access_jwks =
        serde_json::to_string(&SigningKey::from_pem(api_pem).expect("api key").jwks())
            .expect("jwks");
    config.api.keys.dev_keys = false;
    config.api.keys.api_signing_key = Some(api_pem.to_owned());
    config.api.keys.gate_jwks_url = Some(format!(
        "http://127.0.0.1:{gateway_port}/queue/.well-known/jwks.json"
    ));
    config.gateway.addr = ([127, 0, 0, 1], gateway_port).into();
    config.gateway.keys.dev_keys = false;
    config.gateway.keys.gate_signing_key = Some(gate_pem.to_owned());
    config.gateway.keys.gate_previous_jwks = previous;
    config.gateway.keys.access_jwks = Some(access_jwks);
    config
}

#[tokio::test]
async fn the_gateway_rotates_its_key_without_refusing_outstanding_gate_tokens() {
    let stores = Stores::new().await;
    let api_pem = SigningKey::generate_pem().expect("pem");
    let (old_pem, new_pem) = (
        SigningKey::generate_pem().expect("pem"),
        SigningKey::generate_pem().expect("pem"),
    );
    let old = Replica::start(with_real_keys(&stores, &api_pem, &old_pem, None)).await;
    let admin = admin(&old.base).await;
    let event = event_on_sale(
        &old.base,
        &admin,
        10,
        json!({"admit_per_sec": 100, "max_active": 100, "admission_ttl_s": 300}),
    )
    .await;
    let (user, _) = buyer(&old.base).await;
    assert_eq!(
        queue_call(&old.base, &event, "join", &user).await.status,
        200
    );
    let status_url = |base: &str| format!("{base}/queue/v1/events/{event}/status");
    let old_token = eventually("admitted", || async {
        let ticket = send(
            reqwest::Client::new()
                .get(status_url(&old.base))
                .bearer_auth(&user),
        )
        .await;
        ticket.body["gate_token"].as_str().map(str::to_owned)
    })
    .await;
    old.stop().await;

    // The rotation: the new key signs, the old one is published beside it.
    let old_jwks = serde_json::to_string(&SigningKey::from_pem(&old_pem).expect("old key").jwks())
        .expect("jwks");
    let new = Replica::start(with_real_keys(&stores, &api_pem, &new_pem, Some(old_jwks))).await;
    // The api started before its gateway listened: it asks for the keys again within a second.
    tokio::time::sleep(flash_tokens::ring::RETRY_INTERVAL * 2).await;
    let jwks =
        send(reqwest::Client::new().get(format!("{}/queue/.well-known/jwks.json", new.base))).await;
    let kids: Vec<&str> = jwks.body["keys"]
        .as_array()
        .expect("keys")
        .iter()
        .filter_map(|k| k["kid"].as_str())
        .collect();
    for key in [&old_pem, &new_pem] {
        let kid = SigningKey::from_pem(key).expect("key").kid().to_owned();
        assert!(kids.contains(&kid.as_str()), "{kid} published: {kids:?}");
    }
    // The token signed before the rotation still buys.
    let order = send(
        reqwest::Client::new()
            .post(format!("{}/api/v1/events/{event}/orders", new.base))
            .bearer_auth(&user)
            .header("Gate-Token", &old_token)
            .header("Idempotency-Key", "after-rotation")
            .json(&json!({"quantity": 1})),
    )
    .await;
    assert_eq!(order.status, 201, "{order:?}");
    // And the admission, asked again, is signed with the new key.
    let ticket = send(
        reqwest::Client::new()
            .get(status_url(&new.base))
            .bearer_auth(&user),
    )
    .await;
    let resigned = ticket.body["gate_token"].as_str().expect("token");
    assert_eq!(
        claims_of(resigned)["jti"],
        claims_of(&old_token)["jti"],
        "the same admission"
    );
    new.stop().await;
}

#[tokio::test]
async fn a_raced_refresh_across_replicas_yields_exactly_one_new_pair() {
    let stores = Stores::new().await;
    let config = stores.suite_config();
    let (a, b) = (
        Replica::start(config.clone()).await,
        Replica::start(config).await,
    );
    let (_, refresh) = buyer(&a.base).await;
    let client = reqwest::Client::new();
    let attempts = (0..8).map(|i| {
        let base = if i % 2 == 0 { &a.base } else { &b.base };
        send(
            client
                .post(format!("{base}/api/v1/auth/refresh"))
                .json(&json!({"refresh_token": refresh})),
        )
    });
    let answers = futures::future::join_all(attempts).await;
    let pairs: std::collections::HashSet<(String, String)> = answers
        .iter()
        .map(|answer| {
            assert_eq!(answer.status, 200, "{answer:?}");
            (
                answer.body["access_token"]
                    .as_str()
                    .expect("access")
                    .to_owned(),
                answer.body["refresh_token"]
                    .as_str()
                    .expect("refresh")
                    .to_owned(),
            )
        })
        .collect();
    assert_eq!(pairs.len(), 1, "one new pair, whoever won the race");
    let (_, next) = pairs.into_iter().next().expect("a pair");
    let used = send(
        client
            .post(format!("{}/api/v1/auth/refresh", b.base))
            .json(&json!({"refresh_token": next})),
    )
    .await;
    assert_eq!(used.status, 200);
    // The raced token, once its successor is used, is a replay: the family is revoked.
    let replay = send(
        client
            .post(format!("{}/api/v1/auth/refresh", a.base))
            .json(&json!({"refresh_token": refresh})),
    )
    .await;
    assert_eq!(replay.code(401), "INVALID_CREDENTIALS");
    a.stop().await;
    b.stop().await;
}

#[tokio::test]
async fn records_kept_only_to_recognise_repeats_are_retired_after_their_window() {
    let stores = Stores::new().await;
    let mut config = stores.suite_config();
    config.api.retention.sweep_secs = 1;
    let replica = Replica::start(config).await;
    let base = &replica.base;
    let admin = admin(base).await;
    let event = event_on_sale(
        base,
        &admin,
        10,
        json!({"admit_per_sec": 100, "max_active": 100, "admission_ttl_s": 60}),
    )
    .await;
    let (user, _) = buyer(base).await;
    assert_eq!(queue_call(base, &event, "join", &user).await.status, 200);
    let gate = eventually("admitted", || async {
        let ticket = send(
            reqwest::Client::new()
                .get(format!("{base}/queue/v1/events/{event}/status"))
                .bearer_auth(&user),
        )
        .await;
        ticket.body["gate_token"].as_str().map(str::to_owned)
    })
    .await;
    let order = send(
        reqwest::Client::new()
            .post(format!("{base}/api/v1/events/{event}/orders"))
            .bearer_auth(&user)
            .header("Gate-Token", &gate)
            .header("Idempotency-Key", "kept-a-while")
            .json(&json!({"quantity": 1})),
    )
    .await;
    assert_eq!(order.status, 201, "{order:?}");
    let pool = flash_kit::stores::connect_postgres(&stores.db.url, 1)
        .await
        .expect("pool");
    let count = |table: &'static str| {
        let pool = pool.clone();
        async move {
            sqlx::query_scalar::<_, i64>(&format!("SELECT count(*) FROM {table}"))
                .fetch_one(&pool)
                .await
                .expect("count")
        }
    };
    eventually("the payment's outcome arrived", || async {
        (count("payment_results").await == 1).then_some(())
    })
    .await;
    // Time passes beyond every window (each record made older than its retention).
    for statement in [
        "UPDATE idempotency_keys SET created_at = now() - interval '25 hours'",
        "UPDATE consumed_gate_tokens SET consumed_at = now() - interval '25 hours'",
        "UPDATE payment_results SET received_at = now() - interval '31 days'",
        "UPDATE refresh_tokens SET expires_at = now() - interval '8 days'",
    ] {
        sqlx::query(statement)
            .execute(&pool)
            .await
            .expect(statement);
    }
    // A new buyer's refresh token is young: it stays.
    buyer(base).await;
    eventually("retired", || async {
        let left = [
            count("idempotency_keys").await,
            count("consumed_gate_tokens").await,
            count("payment_results").await,
            count("refresh_tokens").await,
        ];
        (left == [0, 0, 0, 1]).then_some(())
    })
    .await;
    // The order itself is the sale's record: it stays.
    assert_eq!(count("orders").await, 1);
    pool.close().await;
    replica.stop().await;
}
