//! What every suite test needs: its own stores, a suite on free ports, JSON calls.

pub use flash_suite::testing::{ADMIN_EMAIL, ADMIN_PASSWORD, Stores};

/// A JSON call to the origin; the status and the body.
pub async fn call(
    client: &reqwest::Client,
    request: reqwest::RequestBuilder,
) -> (u16, serde_json::Value) {
    let response = client
        .execute(request.build().expect("request"))
        .await
        .expect("response");
    let status = response.status().as_u16();
    let body = response.json().await.unwrap_or(serde_json::Value::Null);
    (status, body)
}

pub async fn login(client: &reqwest::Client, base: &str, email: &str, password: &str) -> String {
    let (status, body) = call(
        client,
        client
            .post(format!("{base}/api/v1/auth/login"))
            .json(&serde_json::json!({"email": email, "password": password})),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    body["access_token"].as_str().expect("token").to_owned()
}

/// Polls `check` every 250 ms (within the gateway's per-user rate) for up to 20 s until it
/// returns something.
pub async fn eventually<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    for _ in 0..80 {
        if let Some(found) = check().await {
            return found;
        }
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    }
    panic!("{what}: not within 20 s");
}

use std::net::IpAddr;
use std::time::Duration;

use flash_kit::testing::Running;
use flash_suite::{Suite, SuiteConfig};
use futures::{SinkExt as _, StreamExt as _};
use serde_json::{Value, json};

/// One running replica of the whole suite (origin, api, gateway, pay) against shared stores:
/// start two on the same [`Stores`] for two replicas of every service.
pub struct Replica {
    pub origin: Running,
    /// `http://127.0.0.1:<origin port>`.
    pub base: String,
    /// The gateway's own port (WebSockets, `/metrics`).
    pub gateway_port: u16,
}

impl Replica {
    pub async fn start(config: SuiteConfig) -> Self {
        let suite = Suite::build(config).await.expect("suite builds");
        let gateway_port = suite.gateway.port();
        let origin = Running::spawn(suite.origin_addr().port(), |shutdown| {
            suite.run_until(shutdown)
        });
        Self {
            base: origin.base.clone(),
            origin,
            gateway_port,
        }
    }

    pub async fn stop(self) {
        self.origin.stop().await;
    }
}

/// An HTTP client whose connections come from `ip` (any 127.0.0.0/8 address on loopback).
pub fn client_from(ip: &str) -> reqwest::Client {
    reqwest::Client::builder()
        .local_address(ip.parse::<IpAddr>().expect("ip"))
        .build()
        .expect("client")
}

/// A response: status, `Retry-After` (seconds) and JSON body (`Null` when empty).
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub retry_after: Option<u64>,
    pub body: Value,
}

impl Answer {
    /// The problem code, after checking the status.
    pub fn code(&self, status: u16) -> &str {
        assert_eq!(self.status, status, "{self:?}");
        self.body["code"].as_str().expect("a problem body")
    }

    /// A 429 `RATE_LIMITED` that says when to come back.
    pub fn assert_limited(&self) {
        assert_eq!(self.code(429), "RATE_LIMITED");
        assert!(self.retry_after.is_some_and(|s| s >= 1), "{self:?}");
    }
}

pub async fn send(request: reqwest::RequestBuilder) -> Answer {
    let response = request.send().await.expect("response");
    let status = response.status().as_u16();
    let retry_after = response
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok());
    let body = response.json().await.unwrap_or(Value::Null);
    Answer {
        status,
        retry_after,
        body,
    }
}

pub async fn register(client: &reqwest::Client, base: &str, email: &str, password: &str) -> Answer {
    send(
        client
            .post(format!("{base}/api/v1/auth/register"))
            .json(&json!({"email": email, "password": password})),
    )
    .await
}

pub async fn log_in(client: &reqwest::Client, base: &str, email: &str, password: &str) -> Answer {
    send(
        client
            .post(format!("{base}/api/v1/auth/login"))
            .json(&json!({"email": email, "password": password})),
    )
    .await
}

/// A new buyer (signed up and logged in from an address of their own in 127.200.0.0/16):
/// their access and refresh tokens.
pub async fn buyer(base: &str) -> (String, String) {
    let n = u16::from_str_radix(&flash_kit::testing::unique_suffix()[..4], 16).expect("hex");
    let client = client_from(&format!("127.200.{}.{}", n >> 8, (n & 0xff).max(1)));
    let email = format!("buyer-{}@flash.test", flash_kit::testing::unique_suffix());
    assert_eq!(
        register(&client, base, &email, "a buyer password")
            .await
            .status,
        201
    );
    let tokens = log_in(&client, base, &email, "a buyer password").await;
    assert_eq!(tokens.status, 200, "{tokens:?}");
    (
        tokens.body["access_token"]
            .as_str()
            .expect("access")
            .to_owned(),
        tokens.body["refresh_token"]
            .as_str()
            .expect("refresh")
            .to_owned(),
    )
}

/// The bootstrap admin's access token.
pub async fn admin(base: &str) -> String {
    let answer = log_in(&reqwest::Client::new(), base, ADMIN_EMAIL, ADMIN_PASSWORD).await;
    assert_eq!(answer.status, 200, "{answer:?}");
    answer.body["access_token"]
        .as_str()
        .expect("token")
        .to_owned()
}

pub fn rfc3339(t: time::OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339)
        .expect("time")
}

/// An event on sale with these queue settings, known to the gateway; its id.
pub async fn event_on_sale(base: &str, admin: &str, inventory: u32, queue: Value) -> String {
    let now = time::OffsetDateTime::now_utc();
    let client = reqwest::Client::new();
    let created = send(
        client
            .post(format!("{base}/api/v1/admin/events"))
            .bearer_auth(admin)
            .json(&json!({
                "name": "Abuse test", "venue": "Loopback Hall",
                "starts_at": rfc3339(now + time::Duration::days(1)),
                "sale_opens_at": rfc3339(now - time::Duration::minutes(1)),
                "price_cents": 1000, "currency": "EUR", "inventory": inventory,
                "max_per_user": 4, "queue": queue
            })),
    )
    .await;
    assert_eq!(created.status, 201, "{created:?}");
    let id = created.body["id"].as_str().expect("id").to_owned();
    eventually("the gateway knows the event", || async {
        let stats = send(
            client
                .get(format!("{base}/queue/v1/admin/events/{id}"))
                .bearer_auth(admin),
        )
        .await;
        (stats.status == 200).then_some(())
    })
    .await;
    id
}

/// `POST /queue/v1/events/{event}/{action}` (join or leave) as `token`.
pub async fn queue_call(base: &str, event: &str, action: &str, token: &str) -> Answer {
    send(
        reqwest::Client::new()
            .post(format!("{base}/queue/v1/events/{event}/{action}"))
            .bearer_auth(token),
    )
    .await
}

/// The operator pauses (`true`) or resumes the event's queue.
pub async fn pause(base: &str, admin: &str, event: &str, paused: bool) {
    let answer = send(
        reqwest::Client::new()
            .patch(format!("{base}/queue/v1/admin/events/{event}"))
            .bearer_auth(admin)
            .json(&json!({"paused": paused})),
    )
    .await;
    assert_eq!(answer.status, 200, "{answer:?}");
}

type WsStream =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// A WebSocket of the waiting room, authenticated.
pub struct QueueSocket(WsStream);

/// What a socket saw next: a frame, or its closing code.
#[derive(Debug, PartialEq)]
pub enum Seen {
    Frame(Value),
    Closed(u16),
    Nothing,
}

impl QueueSocket {
    pub async fn open(gateway_port: u16, event: &str, token: &str) -> Self {
        let url = format!("ws://127.0.0.1:{gateway_port}/queue/v1/events/{event}/ws");
        let (mut ws, _) = tokio_tungstenite::connect_async(url)
            .await
            .expect("upgrade");
        ws.send(tokio_tungstenite::tungstenite::Message::Text(
            json!({"type": "auth", "token": token}).to_string().into(),
        ))
        .await
        .expect("auth");
        Self(ws)
    }

    pub async fn send_text(&mut self, text: &str) -> bool {
        self.0
            .send(tokio_tungstenite::tungstenite::Message::Text(text.into()))
            .await
            .is_ok()
    }

    /// The next frame or closing within `within` (pings skipped).
    pub async fn next(&mut self, within: Duration) -> Seen {
        use tokio_tungstenite::tungstenite::Message;
        let deadline = tokio::time::Instant::now() + within;
        loop {
            match tokio::time::timeout_at(deadline, self.0.next()).await {
                Err(_) => return Seen::Nothing,
                Ok(None | Some(Err(_))) => return Seen::Closed(1006),
                Ok(Some(Ok(Message::Text(text)))) => {
                    return Seen::Frame(serde_json::from_str(&text).expect("json frame"));
                }
                Ok(Some(Ok(Message::Close(frame)))) => {
                    return Seen::Closed(frame.map_or(1005, |f| u16::from(f.code)));
                }
                Ok(Some(Ok(_))) => {}
            }
        }
    }

    /// Frames until the first of type `kind`, within `within`; `None` when it never came
    /// (the socket closed, or time ran out).
    pub async fn until(&mut self, kind: &str, within: Duration) -> Option<Value> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match self.next(left).await {
                Seen::Frame(frame) if frame["type"] == kind => return Some(frame),
                Seen::Frame(_) => {}
                Seen::Closed(_) | Seen::Nothing => return None,
            }
        }
    }

    /// Reads until the socket closes (within `within`); its code.
    pub async fn closing(&mut self, within: Duration) -> Option<u16> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match self.next(left).await {
                Seen::Frame(_) => {}
                Seen::Closed(code) => return Some(code),
                Seen::Nothing => return None,
            }
        }
    }
}
