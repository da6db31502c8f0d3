//! `TestGateway`: a gateway on a free port with its own key prefix and broker names, plus
//! what tests need around it (access tokens, announcing events, HTTP calls).

use std::time::Duration;

use flash_gateway::config::{DEV_ACCESS_KEY, KeyConfig, LimitConfig};
use flash_gateway::waiting_room::{EventAnnouncement, Settings, WaitingRoom};
use flash_gateway::{Application, Config};
use flash_kit::config::CommonConfig;
use flash_kit::stores::{RedisConfig, RedisMode, connect_redis_in};
use flash_kit::testing::{Running, TestAmqp, TestRedis, TestRedisCluster};
use flash_protocol::claims::{ACCESS_AUDIENCE, ACCESS_ISSUER, AccessClaims, Role};
use flash_protocol::event::{EventStatus, QueueSettings};
use flash_protocol::queue::{Ticket, TicketState};
use flash_protocol::{EventId, UserId};
use flash_tokens::SigningKey;
use time::OffsetDateTime;

pub struct TestGateway {
    pub running: Running,
    pub state: flash_gateway::app::AppState,
    pub port: u16,
    pub room: WaitingRoom,
    pub redis: TestRedis,
    pub amqp: TestAmqp,
    client: reqwest::Client,
    /// The Redis Cluster of a gateway in cluster mode (stopped after the gateway).
    _cluster: Option<TestRedisCluster>,
}

impl std::ops::Deref for TestGateway {
    type Target = Running;

    fn deref(&self) -> &Running {
        &self.running
    }
}

pub fn config(redis: &TestRedis, amqp: &TestAmqp) -> Config {
    Config {
        addr: "127.0.0.1:0".parse().expect("addr"),
        redis: redis.config(),
        amqp_url: amqp.url.clone(),
        amqp_name_prefix: amqp.names.prefix().to_owned(),
        keys: KeyConfig {
            dev_keys: true,
            ..KeyConfig::default()
        },
        tick_interval_ms: 20,
        queue_retention_secs: 86_400,
        queue_numbers_list: true,
        ws_auth_timeout_secs: 1,
        ws_drain_ms: 0,
        limits: LimitConfig {
            user_per_sec: 1000,
            user_burst: 1000,
            ip_per_sec: 0,
            ..LimitConfig::default()
        },
        common: CommonConfig::default(),
    }
}

pub fn settings(admit_per_sec: u32, max_active: u32, admission_ttl_s: u32) -> QueueSettings {
    QueueSettings {
        admit_per_sec,
        max_active,
        admission_ttl_s,
        challenge_difficulty: 0,
    }
}

/// An access token the gateway accepts (signed with the api's local dev key).
pub fn token_for(user: UserId, role: Role) -> String {
    let now = OffsetDateTime::now_utc().unix_timestamp();
    SigningKey::dev(DEV_ACCESS_KEY)
        .expect("dev key")
        .sign(&AccessClaims {
            sub: user,
            role,
            iss: ACCESS_ISSUER.into(),
            aud: ACCESS_AUDIENCE.into(),
            iat: now,
            exp: now + 900,
        })
        .expect("sign")
}

pub async fn room_for(redis: &TestRedis) -> WaitingRoom {
    let conn = connect_redis_in(&redis.url, RedisMode::Node)
        .await
        .expect("redis");
    WaitingRoom::new(conn, redis.keys())
}

impl TestGateway {
    pub async fn spawn() -> Self {
        let (redis, amqp) = (TestRedis::new(), TestAmqp::new());
        let config = config(&redis, &amqp);
        Self::spawn_with(config, redis, amqp).await
    }

    pub async fn spawn_with(config: Config, redis: TestRedis, amqp: TestAmqp) -> Self {
        let room = room_for(&redis).await;
        Self::spawn_on(config, room, redis, amqp, None).await
    }

    /// A gateway in cluster mode on a Redis Cluster of its own.
    pub async fn spawn_on_cluster() -> Self {
        let (cluster, redis, amqp) = (
            TestRedisCluster::start().await,
            TestRedis::new(),
            TestAmqp::new(),
        );
        let mut config = config(&redis, &amqp);
        config.redis = RedisConfig {
            url: cluster.url.clone(),
            mode: RedisMode::Cluster,
            key_prefix: cluster.prefix.clone(),
        };
        let conn = connect_redis_in(&cluster.url, RedisMode::Cluster)
            .await
            .expect("redis cluster");
        let room = WaitingRoom::new(conn, cluster.keys());
        Self::spawn_on(config, room, redis, amqp, Some(cluster)).await
    }

    async fn spawn_on(
        config: Config,
        room: WaitingRoom,
        redis: TestRedis,
        amqp: TestAmqp,
        cluster: Option<TestRedisCluster>,
    ) -> Self {
        let app = Application::build(config).await.expect("gateway builds");
        let port = app.port();
        let state = app.state.clone();
        Self {
            running: Running::spawn(port, |shutdown| app.run_until(shutdown)),
            state,
            port,
            room,
            redis,
            amqp,
            client: reqwest::Client::new(),
            _cluster: cluster,
        }
    }

    /// Another replica on this gateway's stores (same keys and names): its port, and the
    /// running service.
    pub async fn replica(&self) -> (u16, Running) {
        let app = Application::build(config(&self.redis, &self.amqp))
            .await
            .expect("second replica");
        let port = app.port();
        (
            port,
            Running::spawn(port, |shutdown| app.run_until(shutdown)),
        )
    }

    /// Announces an event as the api would (status and opening time).
    pub async fn announce(
        &self,
        status: EventStatus,
        opens_in: time::Duration,
        queue: QueueSettings,
    ) -> EventId {
        let event = EventId::new_v7();
        self.room
            .upsert(&EventAnnouncement {
                event,
                name: "Test".into(),
                sale_opens_at: OffsetDateTime::now_utc() + opens_in,
                status,
                settings: Settings::Initial(queue),
                remaining: None,
            })
            .await
            .expect("upsert");
        event
    }

    pub async fn open_event(&self, queue: QueueSettings) -> EventId {
        self.announce(EventStatus::OnSale, time::Duration::ZERO, queue)
            .await
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub fn ws_url(&self, event: EventId) -> String {
        format!("ws://127.0.0.1:{}/queue/v1/events/{event}/ws", self.port)
    }

    pub async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        token: Option<&str>,
        body: Option<serde_json::Value>,
    ) -> reqwest::Response {
        let mut request = self.client.request(method, self.url(path));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        request.send().await.expect("request")
    }

    pub async fn join(&self, event: EventId, token: &str) -> reqwest::Response {
        self.call(
            reqwest::Method::POST,
            &format!("/queue/v1/events/{event}/join"),
            Some(token),
            None,
        )
        .await
    }

    pub async fn status(&self, event: EventId, token: &str) -> reqwest::Response {
        self.call(
            reqwest::Method::GET,
            &format!("/queue/v1/events/{event}/status"),
            Some(token),
            None,
        )
        .await
    }

    /// Polls the ticket until it reaches `state`, for up to 30 s (a loaded CI machine).
    pub async fn wait_for_state(&self, event: EventId, token: &str, state: TicketState) -> Ticket {
        let mut last = None;
        for _ in 0..600 {
            let ticket: Ticket = self
                .status(event, token)
                .await
                .json()
                .await
                .expect("ticket");
            if ticket.state == state {
                return ticket;
            }
            last = Some(ticket);
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("ticket never reached {state:?}; last {last:?}");
    }
}

/// The problem code of an error response, after checking its status and media type.
pub async fn problem_code(response: reqwest::Response, status: u16) -> String {
    assert_eq!(response.status().as_u16(), status);
    assert_eq!(
        response.headers()["content-type"],
        "application/problem+json"
    );
    let problem: flash_protocol::Problem = response.json().await.expect("problem");
    problem.code.as_str().to_owned()
}
