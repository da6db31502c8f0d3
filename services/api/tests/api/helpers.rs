//! `TestApi`: an api on a free port with its own database and broker names, plus what tests
//! need around it (users, admins, events, gate tokens, HTTP calls).

use std::time::Duration;

use flash_api::config::{Argon2Config, KeyConfig, LimitConfig, OrderConfig};
use flash_api::{Application, Config};
use flash_kit::config::CommonConfig;
use flash_kit::testing::{Running, TestAmqp, TestDatabase, TestRedis};
use flash_protocol::auth::TokenResponse;
use flash_protocol::claims::{GATE_AUDIENCE, GATE_ISSUER, GateClaims};
use flash_protocol::event::Event;
use flash_protocol::messages::Queue;
use flash_protocol::{EventId, UserId};
use flash_tokens::SigningKey;
use flash_tokens::keys::DEV_GATE_KEY;
use reqwest::Method;
use serde_json::{Value, json};
use time::OffsetDateTime;

/// Cheap Argon2 so tests spend their time on behaviour, not hashing.
pub const TEST_ARGON2: Argon2Config = Argon2Config::cheap();

pub const ADMIN_EMAIL: &str = "admin@flash.test";
pub const ADMIN_PASSWORD: &str = "an admin password";

/// The stores of one api test: its own database, broker names and Redis key prefix, each
/// cleaned up when dropped.
pub struct Stores {
    pub db: TestDatabase,
    pub amqp: TestAmqp,
    pub redis: TestRedis,
}

impl Stores {
    pub async fn new() -> Self {
        Self {
            db: TestDatabase::create().await,
            amqp: TestAmqp::new(),
            redis: TestRedis::new(),
        }
    }

    /// The api's configuration against these stores, with quick settings for tests.
    pub fn config(&self) -> Config {
        config(&self.db, &self.amqp, &self.redis)
    }
}

pub fn config(db: &TestDatabase, amqp: &TestAmqp, redis: &TestRedis) -> Config {
    Config {
        addr: "127.0.0.1:0".parse().expect("addr"),
        database_url: db.url.clone(),
        database_max_connections: 8,
        migrate_on_start: true,
        redis: redis.config(),
        amqp_url: amqp.url.clone(),
        amqp_name_prefix: amqp.names.prefix().to_owned(),
        admin_email: Some(ADMIN_EMAIL.into()),
        admin_password: Some(ADMIN_PASSWORD.into()),
        keys: KeyConfig {
            dev_keys: true,
            access_ttl_secs: 900,
            refresh_ttl_secs: 3600,
            refresh_reuse_grace_secs: 30,
            ..KeyConfig::default()
        },
        argon2: TEST_ARGON2,
        limits: LimitConfig::default(),
        retention: flash_api::config::RetentionConfig::default(),
        orders: OrderConfig {
            sweep_ms: 100,
            ..OrderConfig::default()
        },
        common: CommonConfig::default(),
    }
}

pub struct TestApi {
    pub running: Running,
    pub pool: sqlx::PgPool,
    pub stores: Stores,
    client: reqwest::Client,
}

impl std::ops::Deref for TestApi {
    type Target = Running;

    fn deref(&self) -> &Running {
        &self.running
    }
}

/// A response's status and JSON body (`Null` when empty).
pub struct Reply {
    pub status: u16,
    pub body: Value,
}

impl Reply {
    /// The problem code, after checking the status.
    pub fn code(&self, status: u16) -> &str {
        assert_eq!(self.status, status, "{}", self.body);
        self.body["code"].as_str().expect("a problem body")
    }

    pub fn ok(self, status: u16) -> Value {
        assert_eq!(self.status, status, "{}", self.body);
        self.body
    }
}

/// A registered, logged-in user.
pub struct User {
    pub id: UserId,
    pub access: String,
    pub refresh: String,
}

impl TestApi {
    pub async fn spawn() -> Self {
        let stores = Stores::new().await;
        let config = stores.config();
        Self::spawn_with(config, stores).await
    }

    pub async fn spawn_with(config: Config, stores: Stores) -> Self {
        let app = Application::build(config).await.expect("api builds");
        let pool = app.state.db.clone();
        let port = app.port();
        Self {
            running: Running::spawn(port, |shutdown| app.run_until(shutdown)),
            pool,
            stores,
            client: reqwest::Client::new(),
        }
    }

    /// Stops the service (its background work returns its connections), then the pool.
    pub async fn stop(self) {
        self.running.stop().await;
        self.pool.close().await;
    }

    pub async fn call(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
        headers: &[(&str, &str)],
    ) -> Reply {
        let mut request = self.client.request(method, format!("{}{path}", self.base));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.expect("request");
        let status = response.status().as_u16();
        let text = response.text().await.expect("body");
        let body = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        Reply { status, body }
    }

    pub async fn post_json(&self, path: &str, token: Option<&str>, body: Value) -> Reply {
        self.call(Method::POST, path, token, Some(body), &[]).await
    }

    pub async fn get_json(&self, path: &str, token: Option<&str>) -> Reply {
        self.call(Method::GET, path, token, None, &[]).await
    }

    pub async fn login(&self, email: &str, password: &str) -> Reply {
        self.post_json(
            "/api/v1/auth/login",
            None,
            json!({"email": email, "password": password}),
        )
        .await
    }

    /// Registers and logs in a new user.
    pub async fn user(&self) -> User {
        let email = format!("buyer-{}@flash.test", uuid::Uuid::new_v4().simple());
        let password = "correct horse battery";
        let registered = self
            .post_json(
                "/api/v1/auth/register",
                None,
                json!({"email": email, "password": password}),
            )
            .await
            .ok(201);
        let tokens: TokenResponse =
            serde_json::from_value(self.login(&email, password).await.ok(200)).expect("tokens");
        User {
            id: serde_json::from_value(registered["user_id"].clone()).expect("user id"),
            access: tokens.access_token,
            refresh: tokens.refresh_token,
        }
    }

    pub async fn admin_token(&self) -> String {
        let tokens: TokenResponse =
            serde_json::from_value(self.login(ADMIN_EMAIL, ADMIN_PASSWORD).await.ok(200))
                .expect("tokens");
        tokens.access_token
    }

    /// Creates an event on sale now with `inventory` tickets.
    pub async fn event(&self, inventory: u32, max_per_user: u32) -> Event {
        let admin = self.admin_token().await;
        let body = new_event(inventory, max_per_user);
        serde_json::from_value(
            self.post_json("/api/v1/admin/events", Some(&admin), body)
                .await
                .ok(201),
        )
        .expect("event")
    }

    /// Places an order.
    pub async fn order(
        &self,
        user: &User,
        event: EventId,
        quantity: u32,
        gate: &str,
        key: &str,
    ) -> Reply {
        self.call(
            Method::POST,
            &format!("/api/v1/events/{event}/orders"),
            Some(&user.access),
            Some(json!({ "quantity": quantity })),
            &[("Gate-Token", gate), ("Idempotency-Key", key)],
        )
        .await
    }

    /// Places an order with a gate token of its own, as a newly admitted buyer would.
    pub async fn buy(&self, user: &User, event: EventId, quantity: u32, key: &str) -> Reply {
        self.order(user, event, quantity, &gate_token(user.id, event, 60), key)
            .await
    }

    pub async fn remaining(&self, event: EventId) -> i32 {
        sqlx::query_scalar("SELECT remaining FROM event_stock WHERE event_id = $1")
            .bind(event.0)
            .fetch_one(&self.pool)
            .await
            .expect("stock")
    }

    /// Waits until `condition` holds (at most 10 s).
    pub async fn eventually<F, Fut>(&self, what: &str, mut condition: F)
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = bool>,
    {
        for _ in 0..200 {
            if condition().await {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("never: {what}");
    }
}

/// A `NewEvent` body on sale now (opened a minute ago, starting in a week).
pub fn new_event(inventory: u32, max_per_user: u32) -> Value {
    let now = OffsetDateTime::now_utc();
    let fmt = |t: OffsetDateTime| {
        t.format(&time::format_description::well_known::Rfc3339)
            .expect("rfc3339")
    };
    json!({
        "name": "Test Concert",
        "venue": "Test Hall",
        "starts_at": fmt(now + time::Duration::days(7)),
        "sale_opens_at": fmt(now - time::Duration::minutes(1)),
        "price_cents": 2500,
        "currency": "EUR",
        "inventory": inventory,
        "max_per_user": max_per_user,
        "queue": {"admit_per_sec": 50, "max_active": 500, "admission_ttl_s": 300}
    })
}

/// A gate token as the gateway (with local dev keys) would issue it.
pub fn gate_token(user: UserId, event: EventId, valid_for_s: i64) -> String {
    let now = OffsetDateTime::now_utc().unix_timestamp();
    SigningKey::dev(DEV_GATE_KEY)
        .expect("dev key")
        .sign(&GateClaims {
            sub: user,
            evt: event,
            jti: uuid::Uuid::new_v4(),
            iss: GATE_ISSUER.into(),
            aud: GATE_AUDIENCE.into(),
            iat: now,
            exp: now + valid_for_s,
        })
        .expect("sign")
}

impl TestApi {
    /// `n` users inserted directly (no Argon2), with access tokens signed by the api's local
    /// dev key, as login would issue them.
    pub async fn users(&self, n: usize) -> Vec<User> {
        let ids: Vec<uuid::Uuid> = (0..n).map(|_| uuid::Uuid::now_v7()).collect();
        let emails: Vec<String> = ids
            .iter()
            .map(|id| format!("{}@bulk.test", id.simple()))
            .collect();
        sqlx::query(
            "INSERT INTO users (id, email, password_hash) \
             SELECT id, email, 'not-a-hash' FROM unnest($1::uuid[], $2::text[]) AS u(id, email)",
        )
        .bind(&ids)
        .bind(&emails)
        .execute(&self.pool)
        .await
        .expect("users");
        let key = SigningKey::dev(flash_tokens::keys::DEV_ACCESS_KEY).expect("dev key");
        let now = OffsetDateTime::now_utc().unix_timestamp();
        ids.into_iter()
            .map(|id| User {
                id: UserId(id),
                access: key
                    .sign(&flash_protocol::claims::AccessClaims {
                        sub: UserId(id),
                        role: flash_protocol::claims::Role::User,
                        iss: flash_protocol::claims::ACCESS_ISSUER.into(),
                        aud: flash_protocol::claims::ACCESS_AUDIENCE.into(),
                        iat: now,
                        exp: now + 900,
                    })
                    .expect("sign"),
                refresh: String::new(),
            })
            .collect()
    }
}

/// What arrives on `queue` (consumed without acks) until nothing has for `idle`, or `at_most`
/// has passed, in delivery order.
pub async fn consume(
    amqp: &TestAmqp,
    queue: Queue,
    idle: Duration,
    at_most: Duration,
) -> Vec<lapin::message::Delivery> {
    use futures::StreamExt as _;
    let connection = lapin::Connection::connect(&amqp.url, lapin::ConnectionProperties::default())
        .await
        .expect("amqp");
    let channel = connection.create_channel().await.expect("channel");
    let mut consumer = channel
        .basic_consume(
            amqp.names.queue(queue).into(),
            "test-consume".into(),
            lapin::options::BasicConsumeOptions {
                no_ack: true,
                ..Default::default()
            },
            lapin::types::FieldTable::default(),
        )
        .await
        .expect("consume");
    let until = tokio::time::Instant::now() + at_most;
    let mut deliveries = Vec::new();
    while let Ok(Ok(Some(Ok(delivery)))) =
        tokio::time::timeout_at(until, tokio::time::timeout(idle, consumer.next())).await
    {
        deliveries.push(delivery);
    }
    drop(connection.close(200, "consumed".into()).await);
    deliveries
}
