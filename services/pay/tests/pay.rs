//! The pay worker as a running service against real RabbitMQ (names of its own per test).

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use flash_kit::amqp::properties;
use flash_kit::config::CommonConfig;
use flash_kit::testing::{Running, TcpProxy, TestAmqp};
use flash_pay::config::{ProviderConfig, WorkerConfig};
use flash_pay::provider::{NOT_CAPTURED, Provider, RefundVerdict, Simulated, Transient, Verdict};
use flash_pay::{Application, Config};
use flash_protocol::messages::{
    ATTEMPTS_HEADER, DEAD_REASON_HEADER, Message, Names, PaymentCompleted, PaymentOutcome,
    PaymentRefundRequested, PaymentRefunded, PaymentRequested, Queue, RefundOutcome,
};
use flash_protocol::{OrderId, PaymentId, UserId};
use futures::future::BoxFuture;
use lapin::options::{BasicGetOptions, BasicPublishOptions, ConfirmSelectOptions};
use lapin::types::{AMQPValue, FieldTable};
use time::OffsetDateTime;

const WAIT: Duration = Duration::from_secs(20);

fn config(amqp: &TestAmqp) -> Config {
    Config {
        ops_addr: "127.0.0.1:0".parse().expect("addr"),
        amqp_url: amqp.url.clone(),
        amqp_name_prefix: amqp.names.prefix().to_owned(),
        worker: WorkerConfig {
            retry_base_ms: 20,
            retry_max_ms: 200,
            ..WorkerConfig::default()
        },
        provider: instant(0.0),
        common: CommonConfig::default(),
    }
}

/// A simulated provider without latency or transient failures.
fn instant(decline_rate: f64) -> ProviderConfig {
    ProviderConfig {
        seed: 42,
        latency_p50_ms: 0.0,
        latency_p99_ms: 0.0,
        decline_rate,
        transient_rate: 0.0,
    }
}

fn request() -> PaymentRequested {
    PaymentRequested {
        payment_id: PaymentId::new_v7(),
        order_id: OrderId::new_v7(),
        user_id: UserId::new_v7(),
        amount_cents: 4200,
        currency: "EUR".into(),
        requested_at: OffsetDateTime::now_utc(),
    }
}

/// The test's side of the broker: publishes requests the way the api's relay does, and reads
/// what the worker published.
struct Broker {
    _connection: lapin::Connection,
    channel: lapin::Channel,
    names: Names,
}

impl Broker {
    async fn open(amqp: &TestAmqp) -> Self {
        let connection =
            lapin::Connection::connect(&amqp.url, lapin::ConnectionProperties::default())
                .await
                .expect("connect");
        let channel = connection.create_channel().await.expect("channel");
        channel
            .confirm_select(ConfirmSelectOptions::default())
            .await
            .expect("confirms");
        flash_kit::amqp::declare_topology(&channel, &amqp.names)
            .await
            .expect("topology");
        Self {
            _connection: connection,
            channel,
            names: amqp.names.clone(),
        }
    }

    /// Publishes a request-shaped message of `message_type` (possibly not a request at all).
    async fn publish_raw(&self, body: &[u8], message_type: &str) {
        self.publish_with(body, flash_kit::amqp::properties_for(message_type, "m"))
            .await;
    }

    async fn publish(&self, request: &PaymentRequested) {
        self.send(request, &request.payment_id.to_string()).await;
    }

    /// Publishes a message as the api's relay does.
    async fn send<M: Message>(&self, message: &M, id: &str) {
        self.publish_to(
            M::ROUTING_KEY,
            &serde_json::to_vec(message).expect("json"),
            properties::<M>(id),
        )
        .await;
    }

    async fn publish_with(&self, body: &[u8], properties: lapin::BasicProperties) {
        self.publish_to(PaymentRequested::ROUTING_KEY, body, properties)
            .await;
    }

    async fn publish_to(&self, routing_key: &str, body: &[u8], properties: lapin::BasicProperties) {
        let confirm = self
            .channel
            .basic_publish(
                self.names.exchange(PaymentRequested::EXCHANGE).into(),
                routing_key.into(),
                BasicPublishOptions::default(),
                body,
                properties,
            )
            .await
            .expect("publish")
            .await
            .expect("confirm");
        assert!(confirm.is_ack());
    }

    /// Takes up to `n` messages from `queue`, waiting for them up to `WAIT`.
    async fn take(&self, queue: Queue, n: usize) -> Vec<lapin::message::BasicGetMessage> {
        self.take_within(queue, n, WAIT).await
    }

    async fn take_within(
        &self,
        queue: Queue,
        n: usize,
        wait: Duration,
    ) -> Vec<lapin::message::BasicGetMessage> {
        let mut got = Vec::new();
        let deadline = tokio::time::Instant::now() + wait;
        while got.len() < n && tokio::time::Instant::now() < deadline {
            match self
                .channel
                .basic_get(
                    self.names.queue(queue).into(),
                    BasicGetOptions { no_ack: true },
                )
                .await
                .expect("get")
            {
                Some(message) => got.push(message),
                None => tokio::time::sleep(Duration::from_millis(20)).await,
            }
        }
        got
    }

    async fn results(&self, n: usize) -> Vec<(String, PaymentCompleted)> {
        self.results_within(n, WAIT).await
    }

    /// Whether any result arrives within a second.
    async fn any_result(&self) -> bool {
        !self
            .results_within(1, Duration::from_secs(1))
            .await
            .is_empty()
    }

    async fn results_within(&self, n: usize, wait: Duration) -> Vec<(String, PaymentCompleted)> {
        self.outcomes_within(n, wait).await
    }

    /// Refund outcomes (every message on the results queue must be one).
    async fn refunds_within(&self, n: usize, wait: Duration) -> Vec<(String, PaymentRefunded)> {
        self.outcomes_within(n, wait).await
    }

    /// Up to `n` messages of the results queue with their message ids, each of type `M`.
    async fn outcomes_within<M: Message>(&self, n: usize, wait: Duration) -> Vec<(String, M)> {
        self.take_within(Queue::ApiPaymentResults, n, wait)
            .await
            .into_iter()
            .map(|m| {
                assert_eq!(
                    header(&m, "type").as_deref(),
                    Some(M::TYPE),
                    "not a {}",
                    M::TYPE
                );
                let id = m
                    .delivery
                    .properties
                    .message_id()
                    .as_ref()
                    .map(|id| id.as_str().to_owned())
                    .unwrap_or_default();
                (id, serde_json::from_slice(&m.delivery.data).expect(M::TYPE))
            })
            .collect()
    }

    async fn count(&self, queue: Queue) -> u32 {
        self.channel
            .queue_declare(
                self.names.queue(queue).into(),
                lapin::options::QueueDeclareOptions {
                    passive: true,
                    ..Default::default()
                },
                FieldTable::default(),
            )
            .await
            .expect("declare")
            .message_count()
    }
}

fn header(message: &lapin::message::BasicGetMessage, name: &str) -> Option<String> {
    let headers = message.delivery.properties.headers().as_ref()?;
    match headers.inner().get(name)? {
        AMQPValue::LongString(s) => Some(s.to_string()),
        AMQPValue::LongUInt(n) => Some(n.to_string()),
        AMQPValue::LongLongInt(n) => Some(n.to_string()),
        other => Some(format!("{other:?}")),
    }
}

/// The worker with `config` and the test's broker side.
async fn start(config: Config, provider: Option<Arc<dyn Provider>>) -> Running {
    let app = match provider {
        Some(provider) => Application::with_provider(config, provider).await,
        None => Application::build(config).await,
    }
    .expect("builds");
    Running::spawn(app.port(), |shutdown| app.run_until(shutdown))
}

/// Fails the first `failures` attempts of every payment (and refund), then approves (or
/// refunds); records attempts.
struct Flaky {
    failures: u32,
    attempts: Mutex<Vec<u32>>,
}

impl Provider for Flaky {
    fn charge<'a>(
        &'a self,
        _request: &'a PaymentRequested,
        attempt: u32,
    ) -> BoxFuture<'a, Result<Verdict, Transient>> {
        Box::pin(async move {
            self.attempts.lock().expect("lock").push(attempt);
            if attempt <= self.failures {
                Err(Transient(format!("simulated outage on attempt {attempt}")))
            } else {
                Ok(Verdict::Approved)
            }
        })
    }

    fn refund<'a>(
        &'a self,
        _request: &'a PaymentRefundRequested,
        attempt: u32,
    ) -> BoxFuture<'a, Result<RefundVerdict, Transient>> {
        Box::pin(async move {
            self.attempts.lock().expect("lock").push(attempt);
            if attempt <= self.failures {
                Err(Transient(format!("simulated outage on attempt {attempt}")))
            } else {
                Ok(RefundVerdict::Refunded)
            }
        })
    }
}

fn refund_of(request: &PaymentRequested) -> PaymentRefundRequested {
    PaymentRefundRequested {
        payment_id: request.payment_id,
        order_id: request.order_id,
        amount_cents: request.amount_cents,
        currency: request.currency.clone(),
        requested_at: OffsetDateTime::now_utc(),
    }
}

#[tokio::test]
async fn refunds_an_approved_payment_once_and_refuses_one_never_captured() {
    let amqp = TestAmqp::new();
    let running = start(config(&amqp), None).await;
    let broker = Broker::open(&amqp).await;
    let refund = refund_of(&request());
    broker.send(&refund, "r1").await;
    let results = broker.refunds_within(1, WAIT).await;
    assert_eq!(results.len(), 1);
    let (message_id, outcome) = &results[0];
    assert_eq!(message_id, &refund.payment_id.to_string());
    assert_eq!(outcome.payment_id, refund.payment_id);
    assert_eq!(outcome.order_id, refund.order_id);
    assert_eq!(outcome.outcome, RefundOutcome::Refunded);
    assert_eq!(outcome.reason, None);
    // Asked again (the api's outbox publishes at least once): the same outcome, as it was.
    broker.send(&refund, "r1-again").await;
    let again = broker.refunds_within(1, WAIT).await;
    assert_eq!(again.len(), 1);
    assert_eq!(&again[0].1, outcome);
    let metrics = running.get("/metrics").await.text().await.expect("metrics");
    assert!(
        metrics.contains("pay_refunds_total{outcome=\"refunded\",delivery=\"new\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("pay_refunds_total{outcome=\"refunded\",delivery=\"redelivered\"} 1"),
        "{metrics}"
    );
    running.stop().await;
    assert_eq!(broker.count(Queue::PayRefunds).await, 0);

    // A provider that declines every charge never captured the money: the refund fails, with
    // the provider's reason.
    let mut declining = config(&amqp);
    declining.provider = instant(1.0);
    let running = start(declining, None).await;
    let refund = refund_of(&request());
    broker.send(&refund, "r2").await;
    let results = broker.refunds_within(1, WAIT).await;
    assert_eq!(results.len(), 1);
    assert_eq!(results[0].1.outcome, RefundOutcome::Failed);
    assert_eq!(results[0].1.reason.as_deref(), Some(NOT_CAPTURED));
    running.stop().await;
    assert_eq!(broker.count(Queue::PayDead).await, 0);
}

#[tokio::test]
async fn a_refund_is_retried_through_its_own_queue_and_poison_refunds_dead_letter() {
    let amqp = TestAmqp::new();
    let flaky = Arc::new(Flaky {
        failures: 2,
        attempts: Mutex::new(Vec::new()),
    });
    let running = start(config(&amqp), Some(flaky.clone())).await;
    let broker = Broker::open(&amqp).await;
    // A charge's body sent as a refund, and a refund of negative money: never done.
    broker
        .publish_to(
            PaymentRefundRequested::ROUTING_KEY,
            b"{}",
            flash_kit::amqp::properties_for(PaymentRequested::TYPE, "p1"),
        )
        .await;
    let mut negative = serde_json::to_value(refund_of(&request())).expect("json");
    negative["amount_cents"] = (-5).into();
    broker
        .publish_to(
            PaymentRefundRequested::ROUTING_KEY,
            &serde_json::to_vec(&negative).expect("json"),
            flash_kit::amqp::properties_for(PaymentRefundRequested::TYPE, "p2"),
        )
        .await;
    let refund = refund_of(&request());
    broker.send(&refund, "r1").await;
    let results = broker.refunds_within(1, WAIT).await;
    assert_eq!(results.len(), 1, "one outcome after the retries");
    assert_eq!(results[0].1.payment_id, refund.payment_id);
    assert_eq!(results[0].1.outcome, RefundOutcome::Refunded);
    assert_eq!(*flaky.attempts.lock().expect("lock"), [1, 2, 3]);
    let dead = broker.take(Queue::PayDead, 2).await;
    let mut reasons: Vec<String> = dead
        .iter()
        .map(|m| header(m, DEAD_REASON_HEADER).expect("reason"))
        .collect();
    reasons.sort();
    assert_eq!(reasons.len(), 2, "{reasons:?}");
    assert_eq!(reasons[0], "invalid: amount_cents is negative");
    assert_eq!(
        reasons[1],
        "undecodable: type \"payment.requested\" is not payment.refund_requested"
    );
    running.stop().await;
    assert_eq!(broker.count(Queue::PayRefundsRetry).await, 0);
    assert_eq!(broker.count(Queue::PayRetry).await, 0);
    assert!(
        broker
            .refunds_within(1, Duration::from_secs(1))
            .await
            .is_empty(),
        "no second outcome"
    );
}

#[tokio::test]
async fn declares_the_topology_and_serves_ops_endpoints() {
    let amqp = TestAmqp::new();
    let app = Application::build(config(&amqp)).await.expect("builds");
    let channel = app.broker.channel().await.expect("channel");
    for queue in Queue::ALL {
        let declared = channel
            .queue_declare(
                amqp.names.queue(queue).into(),
                lapin::options::QueueDeclareOptions {
                    passive: true,
                    ..Default::default()
                },
                lapin::types::FieldTable::default(),
            )
            .await;
        assert!(declared.is_ok(), "{queue:?} not declared: {declared:?}");
    }
    let running = Running::spawn(app.port(), |shutdown| app.run_until(shutdown));
    assert_eq!(running.get("/live").await.status(), 200);
    let (status, report) = running.ready().await;
    assert_eq!(status, 200, "{report:?}");
    assert_eq!(report.checks.len(), 1);
    assert_eq!(report.checks[0].name, "rabbitmq");
    running.stop().await;
}

#[tokio::test]
async fn approves_a_payment_once_with_its_id() {
    let amqp = TestAmqp::new();
    let running = start(config(&amqp), None).await;
    let broker = Broker::open(&amqp).await;
    let request = request();
    broker.publish(&request).await;
    let results = broker.results(1).await;
    assert_eq!(results.len(), 1);
    let (message_id, result) = &results[0];
    assert_eq!(message_id, &request.payment_id.to_string());
    assert_eq!(result.payment_id, request.payment_id);
    assert_eq!(result.order_id, request.order_id);
    assert_eq!(result.outcome, PaymentOutcome::Approved);
    assert_eq!(result.reason, None);
    let metrics = running.get("/metrics").await.text().await.expect("metrics");
    assert!(
        metrics.contains("pay_processed_total{outcome=\"approved\",delivery=\"new\"} 1"),
        "{metrics}"
    );
    running.stop().await;
    assert_eq!(broker.count(Queue::PayRequests).await, 0);
}

#[tokio::test]
async fn declines_with_a_reason() {
    let amqp = TestAmqp::new();
    let mut config = config(&amqp);
    config.provider = instant(1.0);
    let running = start(config, None).await;
    let broker = Broker::open(&amqp).await;
    broker.publish(&request()).await;
    let results = broker.results(1).await;
    assert_eq!(results.len(), 1);
    assert_eq!(results[0].1.outcome, PaymentOutcome::Declined);
    let reason = results[0].1.reason.clone().expect("a reason");
    assert!(
        ["card_declined", "insufficient_funds", "do_not_honor"].contains(&reason.as_str()),
        "{reason}"
    );
    running.stop().await;
}

#[tokio::test]
async fn retries_with_backoff_then_succeeds() {
    let amqp = TestAmqp::new();
    let flaky = Arc::new(Flaky {
        failures: 2,
        attempts: Mutex::new(Vec::new()),
    });
    let running = start(config(&amqp), Some(flaky.clone())).await;
    let broker = Broker::open(&amqp).await;
    let request = request();
    broker.publish(&request).await;
    let results = broker.results(1).await;
    assert_eq!(results.len(), 1, "one outcome after the retries");
    assert_eq!(results[0].1.payment_id, request.payment_id);
    assert_eq!(results[0].1.outcome, PaymentOutcome::Approved);
    assert_eq!(*flaky.attempts.lock().expect("lock"), [1, 2, 3]);
    let metrics = running.get("/metrics").await.text().await.expect("metrics");
    assert!(metrics.contains("pay_retries_total 2"), "{metrics}");
    running.stop().await;
    assert_eq!(broker.count(Queue::PayRetry).await, 0);
    assert_eq!(broker.count(Queue::PayDead).await, 0);
    assert!(!broker.any_result().await, "no second outcome");
}

#[tokio::test]
async fn exhausted_retries_dead_letter_with_the_reason() {
    let amqp = TestAmqp::new();
    let mut config = config(&amqp);
    config.worker.max_attempts = 3;
    let flaky = Arc::new(Flaky {
        failures: u32::MAX,
        attempts: Mutex::new(Vec::new()),
    });
    let running = start(config, Some(flaky.clone())).await;
    let broker = Broker::open(&amqp).await;
    let request = request();
    broker.publish(&request).await;
    let dead = broker.take(Queue::PayDead, 1).await;
    assert_eq!(dead.len(), 1);
    let reason = header(&dead[0], DEAD_REASON_HEADER).expect("reason header");
    assert!(
        reason.starts_with("retries exhausted after 3 attempts"),
        "{reason}"
    );
    assert_eq!(header(&dead[0], ATTEMPTS_HEADER).as_deref(), Some("3"));
    let body: PaymentRequested = serde_json::from_slice(&dead[0].delivery.data).expect("body");
    assert_eq!(body, request, "the request is kept as it was");
    assert_eq!(*flaky.attempts.lock().expect("lock"), [1, 2, 3]);
    assert!(!broker.any_result().await, "no outcome");
    running.stop().await;
}

#[tokio::test]
async fn poison_messages_dead_letter_at_once_and_the_worker_goes_on() {
    let amqp = TestAmqp::new();
    let running = start(config(&amqp), None).await;
    let broker = Broker::open(&amqp).await;
    broker
        .publish_raw(b"{not json", PaymentRequested::TYPE)
        .await;
    broker.publish_raw(b"{}", "payment.refund").await;
    let mut bad_currency = serde_json::to_value(request()).expect("json");
    bad_currency["currency"] = "euros".into();
    broker
        .publish_raw(
            &serde_json::to_vec(&bad_currency).expect("json"),
            PaymentRequested::TYPE,
        )
        .await;
    let good = request();
    broker.publish(&good).await;

    let dead = broker.take(Queue::PayDead, 3).await;
    let mut reasons: Vec<String> = dead
        .iter()
        .map(|m| header(m, DEAD_REASON_HEADER).expect("reason"))
        .collect();
    reasons.sort();
    assert_eq!(reasons.len(), 3, "{reasons:?}");
    assert!(reasons[0].starts_with("invalid: currency"), "{reasons:?}");
    assert!(reasons[1].starts_with("undecodable: "), "{reasons:?}");
    assert!(reasons[2].contains("payment.refund"), "{reasons:?}");
    let results = broker.results(1).await;
    assert_eq!(results.len(), 1);
    assert_eq!(results[0].1.payment_id, good.payment_id);
    running.stop().await;
}

/// A poison request quoting a huge field is dead-lettered with a reason cut to fit in a
/// frame: unbounded, the 200 kB reason made the broker close the connection (`FRAME_ERROR`)
/// on every try, and the request was requeued forever.
#[tokio::test]
async fn poison_with_a_huge_field_dead_letters_with_a_bounded_reason() {
    let amqp = TestAmqp::new();
    let running = start(config(&amqp), None).await;
    let broker = Broker::open(&amqp).await;
    let mut huge_currency = serde_json::to_value(request()).expect("json");
    huge_currency["currency"] = "X".repeat(200_000).into();
    broker
        .publish_raw(
            &serde_json::to_vec(&huge_currency).expect("json"),
            PaymentRequested::TYPE,
        )
        .await;
    let good = request();
    broker.publish(&good).await;

    let dead = broker.take(Queue::PayDead, 1).await;
    let reason = header(&dead[0], DEAD_REASON_HEADER).expect("reason");
    assert!(reason.starts_with("invalid: currency"), "{reason}");
    assert!(
        reason.len() <= flash_pay::worker::MAX_REASON_BYTES,
        "{} bytes",
        reason.len()
    );
    let results = broker.results(1).await;
    assert_eq!(results[0].1.payment_id, good.payment_id);
    running.stop().await;
}

#[tokio::test]
async fn a_redelivered_request_gets_the_same_outcome_from_any_worker() {
    let amqp = TestAmqp::new();
    let mut config = config(&amqp);
    config.provider = instant(0.5);
    let requests: Vec<PaymentRequested> = (0..40).map(|_| request()).collect();
    let mut first: HashMap<PaymentId, PaymentOutcome> = HashMap::new();
    let broker = Broker::open(&amqp).await;
    // The same requests twice to one worker, then once more to a new worker process.
    let running = start(config.clone(), None).await;
    for request in requests.iter().chain(&requests) {
        broker.publish(request).await;
    }
    let results = broker.results(80).await;
    assert_eq!(results.len(), 80);
    running.stop().await;
    let running = start(config.clone(), None).await;
    for request in &requests {
        broker.publish(request).await;
    }
    let again = broker.results(40).await;
    assert_eq!(again.len(), 40);
    running.stop().await;
    for (_, result) in results.iter().chain(&again) {
        let outcome = *first.entry(result.payment_id).or_insert(result.outcome);
        assert_eq!(outcome, result.outcome, "{}", result.payment_id);
    }
    assert_eq!(first.len(), 40);
    let simulated = Simulated::new(config.provider);
    for (payment, outcome) in &first {
        let expected = match simulated.verdict(payment.0) {
            Verdict::Approved => PaymentOutcome::Approved,
            Verdict::Declined(_) => PaymentOutcome::Declined,
        };
        assert_eq!(*outcome, expected);
    }
    let declined = first
        .values()
        .filter(|o| **o == PaymentOutcome::Declined)
        .count();
    assert!((5..35).contains(&declined), "{declined} of 40 declined");
}

#[tokio::test]
async fn the_broker_cut_mid_stream_loses_nothing() {
    flash_kit::telemetry::init(flash_kit::config::LogFormat::Text);
    let amqp = TestAmqp::new();
    let proxy = TcpProxy::start("127.0.0.1:5672".parse::<SocketAddr>().expect("addr")).await;
    let mut config = config(&amqp);
    config.amqp_url = proxy.url_for(&amqp.url);
    config.provider = ProviderConfig {
        latency_p50_ms: 100.0,
        latency_p99_ms: 200.0,
        ..instant(0.3)
    };
    let running = start(config, None).await;
    let broker = Broker::open(&amqp).await;
    let requests: Vec<PaymentRequested> = (0..400).map(|_| request()).collect();
    for request in &requests[..200] {
        broker.publish(request).await;
    }
    // Cut while most of the first 200 are in flight (taken, not yet answered or acked).
    let mut outcomes: BTreeMap<PaymentId, PaymentOutcome> = BTreeMap::new();
    for (_, result) in broker.results(20).await {
        outcomes.insert(result.payment_id, result.outcome);
    }
    proxy.cut();
    for request in &requests[200..] {
        broker.publish(request).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    proxy.restore().await;

    let deadline = tokio::time::Instant::now() + WAIT;
    while outcomes.len() < requests.len() && tokio::time::Instant::now() < deadline {
        for (_, result) in broker.results(requests.len() - outcomes.len()).await {
            let outcome = *outcomes.entry(result.payment_id).or_insert(result.outcome);
            assert_eq!(outcome, result.outcome, "a second, different outcome");
        }
    }
    assert_eq!(
        outcomes.len(),
        requests.len(),
        "every request has its outcome"
    );
    running.wait_ready(200).await;
    running.stop().await;
    assert_eq!(broker.count(Queue::PayRequests).await, 0);
    assert_eq!(broker.count(Queue::PayDead).await, 0);
}

#[tokio::test]
async fn shutdown_finishes_the_payments_in_flight() {
    let amqp = TestAmqp::new();
    let mut config = config(&amqp);
    config.provider = ProviderConfig {
        latency_p50_ms: 400.0,
        latency_p99_ms: 500.0,
        ..instant(0.0)
    };
    let running = start(config, None).await;
    let broker = Broker::open(&amqp).await;
    for _ in 0..30 {
        broker.publish(&request()).await;
    }
    tokio::time::sleep(Duration::from_millis(150)).await;
    running.stop().await;
    assert_eq!(broker.count(Queue::PayRequests).await, 0, "all acked");
    assert_eq!(broker.results(30).await.len(), 30, "all answered");
}

#[tokio::test]
async fn ready_fails_naming_rabbitmq_while_it_is_cut_off_and_recovers() {
    let amqp = TestAmqp::new();
    let proxy = TcpProxy::start("127.0.0.1:5672".parse::<SocketAddr>().expect("addr")).await;
    let mut config = config(&amqp);
    config.amqp_url = proxy.url_for(&amqp.url);
    let app = Application::build(config).await.expect("builds");
    let running = Running::spawn(app.port(), |shutdown| app.run_until(shutdown));
    assert_eq!(running.ready().await.0, 200);

    proxy.cut();
    let report = running.wait_ready(503).await;
    assert_eq!(report.failing, ["rabbitmq"]);

    proxy.restore().await;
    running.wait_ready(200).await;
    running.stop().await;
}
