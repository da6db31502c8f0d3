//! RabbitMQ: a connection kept up across broker restarts, and the whole topology (exchanges,
//! queues, bindings, retry and dead-letter wiring) declared in one place.

use std::sync::{Arc, Weak};
use std::time::Duration;

use flash_protocol::messages::{
    ATTEMPTS_HEADER, DEAD_REASON_HEADER, Exchange, ExchangeKind, Names, Queue,
};
use futures::future::BoxFuture;
use lapin::options::{
    ExchangeDeclareOptions, ExchangeDeleteOptions, QueueBindOptions, QueueDeclareOptions,
    QueueDeleteOptions,
};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{Channel, Connection, ConnectionProperties};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::ops::Check;
use crate::stores::redact_url;

/// How long opening a connection may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long closing the connection may take at shutdown.
const CLOSE_WITHIN: Duration = Duration::from_secs(2);

/// How often the supervisor looks at the connection.
const SUPERVISE_EVERY: Duration = Duration::from_millis(250);
const BACKOFF_MIN: Duration = Duration::from_millis(200);
const BACKOFF_MAX: Duration = Duration::from_secs(5);

#[derive(Debug, thiserror::Error)]
pub enum AmqpError {
    #[error("rabbitmq is unreachable at {url}: {reason}")]
    Unreachable { url: String, reason: String },
    #[error("rabbitmq is not connected")]
    NotConnected,
    #[error("rabbitmq: {0}")]
    Protocol(#[from] lapin::Error),
    #[error("rabbitmq refused a {0} message")]
    Rejected(&'static str),
    #[error("no queue is bound for {0} messages")]
    Unroutable(&'static str),
    #[error("cannot encode a {0} message: {1}")]
    Encode(&'static str, serde_json::Error),
    #[error("rabbitmq did not answer in time ({1}, {0:?})")]
    Timeout(Duration, &'static str),
}

/// Longest wait for a publish and its confirm, or for an ack to be sent: a connection that
/// died without the client noticing must not hold work forever.
pub const ANSWER_TIMEOUT: Duration = Duration::from_secs(10);

/// The queue arguments of each queue: quorum queues for work that must survive a broker node,
/// and the retry queues' dead-letter wiring back to the queue they retry.
fn queue_arguments(queue: Queue, names: &Names) -> FieldTable {
    let mut args = FieldTable::default();
    if let Some(back_to) = queue.retries_to() {
        // Messages wait here for their per-message TTL (`expiration`), then dead-letter
        // back to the queue they are retried from.
        args.insert(
            "x-dead-letter-exchange".into(),
            AMQPValue::LongString(names.exchange(Exchange::Payments).into()),
        );
        args.insert(
            "x-dead-letter-routing-key".into(),
            AMQPValue::LongString(back_to.into()),
        );
    } else {
        args.insert(
            "x-queue-type".into(),
            AMQPValue::LongString("quorum".into()),
        );
    }
    args
}

/// Declares every exchange, queue and binding (idempotent; every service does it at start).
pub async fn declare_topology(channel: &Channel, names: &Names) -> Result<(), lapin::Error> {
    for exchange in Exchange::ALL {
        let kind = match exchange.kind() {
            ExchangeKind::Direct => lapin::ExchangeKind::Direct,
            ExchangeKind::Topic => lapin::ExchangeKind::Topic,
        };
        channel
            .exchange_declare(
                names.exchange(exchange).into(),
                kind,
                ExchangeDeclareOptions {
                    durable: true,
                    ..ExchangeDeclareOptions::default()
                },
                FieldTable::default(),
            )
            .await?;
    }
    for queue in Queue::ALL {
        let name = names.queue(queue);
        channel
            .queue_declare(
                name.clone().into(),
                QueueDeclareOptions {
                    durable: true,
                    ..QueueDeclareOptions::default()
                },
                queue_arguments(queue, names),
            )
            .await?;
        let (exchange, routing_keys) = queue.bindings();
        for routing_key in routing_keys {
            channel
                .queue_bind(
                    name.clone().into(),
                    names.exchange(exchange).into(),
                    (*routing_key).into(),
                    QueueBindOptions::default(),
                    FieldTable::default(),
                )
                .await?;
        }
    }
    Ok(())
}

/// Deletes every queue and exchange `declare_topology` declares under `names` (tests and
/// benchmark runs remove what they declared; deleting what is already gone succeeds).
pub async fn remove_topology(channel: &Channel, names: &Names) -> Result<(), lapin::Error> {
    for queue in Queue::ALL {
        channel
            .queue_delete(names.queue(queue).into(), QueueDeleteOptions::default())
            .await?;
    }
    for exchange in Exchange::ALL {
        channel
            .exchange_delete(
                names.exchange(exchange).into(),
                ExchangeDeleteOptions::default(),
            )
            .await?;
    }
    Ok(())
}

async fn open(url: &str, names: &Names) -> Result<Connection, AmqpError> {
    let unreachable = |reason: String| AmqpError::Unreachable {
        url: redact_url(url),
        reason,
    };
    let connection = tokio::time::timeout(
        CONNECT_TIMEOUT,
        Connection::connect(url, ConnectionProperties::default()),
    )
    .await
    .map_err(|_| unreachable(format!("no answer within {} s", CONNECT_TIMEOUT.as_secs())))?
    .map_err(|e| unreachable(e.to_string()))?;
    let channel = connection.create_channel().await?;
    declare_topology(&channel, names).await?;
    drop(channel.close(200, "topology declared".into()).await);
    Ok(connection)
}

type Current = watch::Sender<Option<Arc<Connection>>>;

/// A RabbitMQ connection that a background task re-opens (and re-declares the topology on)
/// whenever the broker goes away. Consumers [`watch`](Broker::watch) it to resume. It stays
/// open until [`close`](Broker::close) (or drop), so the work using it can finish first.
pub struct Broker {
    names: Names,
    current: Arc<Current>,
    stop: CancellationToken,
    supervisor: std::sync::Mutex<Option<tokio::task::JoinHandle<()>>>,
}

impl std::fmt::Debug for Broker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Broker")
            .field("names", &self.names)
            .field("connected", &self.is_connected())
            .finish()
    }
}

impl Broker {
    /// Connects (failing if the broker cannot be reached now), declares the topology, and
    /// keeps the connection up until [`close`](Self::close) or drop.
    pub async fn connect(url: &str, names: Names) -> Result<Self, AmqpError> {
        let connection = open(url, &names).await?;
        let current = Arc::new(watch::Sender::new(Some(Arc::new(connection))));
        let stop = CancellationToken::new();
        let supervisor = tokio::spawn(supervise(
            url.to_owned(),
            names.clone(),
            Arc::downgrade(&current),
            stop.clone(),
        ));
        Ok(Self {
            names,
            current,
            stop,
            supervisor: std::sync::Mutex::new(Some(supervisor)),
        })
    }

    /// Closes the connection cleanly (call once the work using it is done).
    pub async fn close(&self) {
        self.stop.cancel();
        let supervisor = self
            .supervisor
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
        if let Some(supervisor) = supervisor {
            let _ = supervisor.await;
        }
    }

    #[must_use]
    pub fn names(&self) -> &Names {
        &self.names
    }

    /// The connection, when there is one up now.
    #[must_use]
    pub fn connection(&self) -> Option<Arc<Connection>> {
        self.current
            .borrow()
            .as_ref()
            .filter(|c| c.status().connected())
            .cloned()
    }

    /// Changes of connection: `Some` after each (re)connect, `None` while down.
    #[must_use]
    pub fn watch(&self) -> watch::Receiver<Option<Arc<Connection>>> {
        self.current.subscribe()
    }

    #[must_use]
    pub fn is_connected(&self) -> bool {
        self.connection().is_some()
    }

    /// A new channel on the current connection.
    pub async fn channel(&self) -> Result<Channel, AmqpError> {
        let connection = self.connection().ok_or(AmqpError::NotConnected)?;
        Ok(connection.create_channel().await?)
    }

    /// A readiness check named `rabbitmq`.
    #[must_use]
    pub fn check(&self) -> BrokerCheck {
        BrokerCheck(Arc::clone(&self.current))
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

async fn supervise(url: String, names: Names, current: Weak<Current>, shutdown: CancellationToken) {
    let mut backoff = BACKOFF_MIN;
    loop {
        tokio::select! {
            () = shutdown.cancelled() => break,
            () = tokio::time::sleep(SUPERVISE_EVERY) => {}
        }
        let Some(sender) = current.upgrade() else {
            return;
        };
        let healthy = sender
            .borrow()
            .as_ref()
            .is_some_and(|c| c.status().connected());
        // The broker's state as a metric: the api and the gateway stay ready without it
        // (degraded), so an alert on this, not readiness, says it is away.
        ::metrics::gauge!("amqp_connected").set(if healthy { 1.0 } else { 0.0 });
        if healthy {
            backoff = BACKOFF_MIN;
            continue;
        }
        if sender.borrow().is_some() {
            tracing::warn!("rabbitmq connection lost; reconnecting");
            sender.send_replace(None);
        }
        let opened = tokio::select! {
            () = shutdown.cancelled() => break,
            opened = open(&url, &names) => opened,
        };
        match opened {
            Ok(connection) => {
                tracing::info!("rabbitmq reconnected");
                sender.send_replace(Some(Arc::new(connection)));
                backoff = BACKOFF_MIN;
            }
            Err(error) => {
                tracing::warn!(%error, retry_in_ms = backoff.as_millis(), "rabbitmq reconnect failed");
                drop(sender);
                tokio::select! {
                    () = shutdown.cancelled() => break,
                    () = tokio::time::sleep(backoff) => {}
                }
                backoff = (backoff * 2).min(BACKOFF_MAX);
            }
        }
    }
    if let Some(sender) = current.upgrade()
        && let Some(connection) = sender.send_replace(None)
    {
        // A broker that does not answer the close must not hold the shutdown up.
        if tokio::time::timeout(CLOSE_WITHIN, connection.close(200, "shutting down".into()))
            .await
            .is_err()
        {
            tracing::warn!("rabbitmq did not confirm the close in time; dropping the connection");
        }
    }
}

/// `/ready` check: the broker connection is up.
#[derive(Clone)]
pub struct BrokerCheck(Arc<Current>);

impl Check for BrokerCheck {
    fn name(&self) -> &'static str {
        "rabbitmq"
    }

    fn check(&self) -> BoxFuture<'_, Result<(), String>> {
        let connected = self
            .0
            .borrow()
            .as_ref()
            .is_some_and(|c| c.status().connected());
        Box::pin(async move {
            if connected {
                Ok(())
            } else {
                Err("not connected; reconnecting".to_owned())
            }
        })
    }
}

/// The properties every message is published with: persistent, JSON, its `message_id`
/// (the consumer's idempotency key) and its type in the `type` header and property.
#[must_use]
pub fn properties<M: flash_protocol::messages::Message>(
    message_id: &str,
) -> lapin::BasicProperties {
    properties_for(M::TYPE, message_id)
}

/// [`properties`] for a message type known only at run time (the outbox relay).
#[must_use]
pub fn properties_for(message_type: &str, message_id: &str) -> lapin::BasicProperties {
    use flash_protocol::messages::{CONTENT_TYPE, TYPE_HEADER};
    let mut headers = FieldTable::default();
    headers.insert(
        TYPE_HEADER.into(),
        AMQPValue::LongString(message_type.into()),
    );
    lapin::BasicProperties::default()
        .with_message_id(message_id.into())
        .with_content_type(CONTENT_TYPE.into())
        .with_delivery_mode(2)
        .with_type(message_type.into())
        .with_headers(headers)
}

/// [`properties_for`] plus the message's outbox position (the sequence header).
#[must_use]
pub fn outbox_properties(
    message_type: &str,
    message_id: &str,
    sequence: i64,
) -> lapin::BasicProperties {
    let properties = properties_for(message_type, message_id);
    let mut headers = properties.headers().clone().unwrap_or_default();
    headers.insert(
        flash_protocol::messages::SEQUENCE_HEADER.into(),
        AMQPValue::LongLongInt(sequence),
    );
    properties.with_headers(headers)
}

/// A message's outbox position (the sequence header), when it has one.
#[must_use]
pub fn message_sequence(properties: &lapin::BasicProperties) -> Option<i64> {
    let headers = properties.headers().as_ref()?;
    match headers
        .inner()
        .get(flash_protocol::messages::SEQUENCE_HEADER)?
    {
        AMQPValue::LongLongInt(value) => Some(*value),
        AMQPValue::LongInt(value) => Some(i64::from(*value)),
        AMQPValue::LongUInt(value) => Some(i64::from(*value)),
        AMQPValue::ShortInt(value) => Some(i64::from(*value)),
        _ => None,
    }
}

/// A delivery that must be a message of type `M`: its body decoded, or why it cannot be
/// (another type, or a body that is not one).
pub fn decode_delivery<M: flash_protocol::messages::Message>(
    properties: &lapin::BasicProperties,
    body: &[u8],
) -> Result<M, flash_protocol::messages::DecodeError> {
    let kind = message_type(properties).unwrap_or_default();
    if kind == M::TYPE {
        flash_protocol::messages::decode::<M>(body)
    } else {
        Err(flash_protocol::messages::DecodeError::UnknownType(kind))
    }
}

/// A message's type: the `type` header, else the AMQP `type` property.
#[must_use]
pub fn message_type(properties: &lapin::BasicProperties) -> Option<String> {
    let from_header = properties.headers().as_ref().and_then(|headers| {
        match headers.inner().get(flash_protocol::messages::TYPE_HEADER) {
            Some(AMQPValue::LongString(value)) => Some(value.to_string()),
            Some(AMQPValue::ShortString(value)) => Some(value.as_str().to_owned()),
            _ => None,
        }
    });
    from_header.or_else(|| {
        properties
            .kind()
            .as_ref()
            .map(|kind| kind.as_str().to_owned())
    })
}

/// Publishes `message` where its type says, and waits for the broker's confirm when the
/// channel is in confirm mode (a nack or an unroutable message is an error).
pub async fn publish<M: flash_protocol::messages::Message>(
    channel: &Channel,
    names: &Names,
    message_id: &str,
    message: &M,
) -> Result<(), AmqpError> {
    let body = serde_json::to_vec(message).map_err(|e| AmqpError::Encode(M::TYPE, e))?;
    publish_confirmed(
        channel,
        names,
        M::EXCHANGE,
        M::ROUTING_KEY,
        &body,
        properties::<M>(message_id),
    )
    .await
}

/// Publishes `body` (mandatory, so an unroutable message is an error) and waits for the
/// broker's confirm, at most [`ANSWER_TIMEOUT`].
async fn publish_confirmed(
    channel: &Channel,
    names: &Names,
    exchange: Exchange,
    routing_key: &'static str,
    body: &[u8],
    properties: lapin::BasicProperties,
) -> Result<(), AmqpError> {
    let confirm = tokio::time::timeout(ANSWER_TIMEOUT, async {
        channel
            .basic_publish(
                names.exchange(exchange).into(),
                routing_key.into(),
                lapin::options::BasicPublishOptions {
                    mandatory: true,
                    ..lapin::options::BasicPublishOptions::default()
                },
                body,
                properties,
            )
            .await?
            .await
    })
    .await
    .map_err(|_| AmqpError::Timeout(ANSWER_TIMEOUT, "publisher confirm"))??;
    if confirm.is_nack() {
        return Err(AmqpError::Rejected(routing_key));
    }
    if confirm.take_message().is_some() {
        return Err(AmqpError::Unroutable(routing_key));
    }
    Ok(())
}

/// A confirm-mode channel shared by concurrent publishers (each waits for its own confirm, so
/// confirms are pipelined), re-opened on the current connection when it breaks.
pub struct Publisher {
    broker: Arc<Broker>,
    channel: tokio::sync::Mutex<Option<Channel>>,
}

impl Publisher {
    #[must_use]
    pub fn new(broker: Arc<Broker>) -> Self {
        Self {
            broker,
            channel: tokio::sync::Mutex::new(None),
        }
    }

    async fn channel(&self) -> Result<Channel, AmqpError> {
        let mut current = self.channel.lock().await;
        if let Some(channel) = current.as_ref()
            && channel.status().connected()
        {
            return Ok(channel.clone());
        }
        let channel = self.broker.channel().await?;
        channel
            .confirm_select(lapin::options::ConfirmSelectOptions::default())
            .await?;
        *current = Some(channel.clone());
        Ok(channel)
    }

    /// Publishes `body` (mandatory, so an unroutable message is an error) and waits for the
    /// broker's confirm.
    pub async fn publish(
        &self,
        exchange: Exchange,
        routing_key: &'static str,
        body: &[u8],
        properties: lapin::BasicProperties,
    ) -> Result<(), AmqpError> {
        let channel = self.channel().await?;
        publish_confirmed(
            &channel,
            self.broker.names(),
            exchange,
            routing_key,
            body,
            properties,
        )
        .await
    }

    /// Publishes a typed message with its standard properties.
    pub async fn send<M: flash_protocol::messages::Message>(
        &self,
        message_id: &str,
        message: &M,
    ) -> Result<(), AmqpError> {
        let body = serde_json::to_vec(message).map_err(|e| AmqpError::Encode(M::TYPE, e))?;
        self.publish(
            M::EXCHANGE,
            M::ROUTING_KEY,
            &body,
            properties::<M>(message_id),
        )
        .await
    }
}

/// What to do with a delivery once its handler is done.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Disposition {
    /// Its work is durable: remove it.
    Ack,
    /// A transient failure: deliver it again later.
    Requeue,
    /// It can never be handled (poison): drop it (or dead-letter it, where the queue has a
    /// dead-letter exchange).
    Reject,
}

/// Consumes `queue` with manual acks and `prefetch` deliveries in flight, handing each to
/// `handle` (up to `prefetch` at once), until `stop`; resumes on every broker reconnect.
/// A delivery is acknowledged only after `handle` returns, as it says.
pub async fn consume<F, Fut>(
    broker: Arc<Broker>,
    queue: Queue,
    tag: &'static str,
    prefetch: u16,
    stop: CancellationToken,
    handle: F,
) where
    F: Fn(lapin::message::Delivery) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = Disposition> + Send + 'static,
{
    let handle = Arc::new(handle);
    let mut connections = broker.watch();
    loop {
        let connection = connections.borrow_and_update().clone();
        if let Some(connection) = connection
            && let Err(error) =
                consume_on(&connection, &broker, queue, tag, prefetch, &stop, &handle).await
        {
            tracing::warn!(%error, queue = queue.base_name(), "consumer interrupted");
        }
        if stop.is_cancelled() {
            return;
        }
        tokio::select! {
            () = stop.cancelled() => return,
            changed = connections.changed() => {
                if changed.is_err() {
                    return;
                }
            }
            () = tokio::time::sleep(Duration::from_secs(1)) => {}
        }
    }
}

async fn consume_on<F, Fut>(
    connection: &Connection,
    broker: &Broker,
    queue: Queue,
    tag: &'static str,
    prefetch: u16,
    stop: &CancellationToken,
    handle: &Arc<F>,
) -> Result<(), AmqpError>
where
    F: Fn(lapin::message::Delivery) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = Disposition> + Send + 'static,
{
    use futures::StreamExt as _;
    use lapin::options::{BasicConsumeOptions, BasicQosOptions};
    let channel = connection.create_channel().await?;
    channel
        .basic_qos(prefetch, BasicQosOptions::default())
        .await?;
    let deliveries = channel
        .basic_consume(
            broker.names().queue(queue).into(),
            tag.into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await?;
    let mut deliveries = std::pin::pin!(deliveries.take_until(stop.clone().cancelled_owned()));
    let mut in_flight = futures::stream::FuturesUnordered::new();
    // The broker replacing the connection means this one is gone, whether or not its
    // deliveries stream noticed: give up on it (unacked deliveries are redelivered).
    let mut connections = broker.watch();
    connections.borrow_and_update();
    loop {
        tokio::select! {
            delivery = deliveries.next(), if in_flight.len() < usize::from(prefetch.max(1)) => {
                let Some(delivery) = delivery else { break };
                let delivery = delivery?;
                let handle = Arc::clone(handle);
                // Each delivery settles itself, so that one acknowledgement in flight never
                // holds up the other handlers.
                in_flight.push(async move {
                    let acker = delivery.acker.clone();
                    let disposition = handle(delivery).await;
                    settle_within(&acker, disposition).await
                });
            }
            Some(settled) = in_flight.next(), if !in_flight.is_empty() => settled?,
            _ = connections.changed() => return Err(AmqpError::NotConnected),
        }
    }
    // Stopping: let the deliveries in flight finish and settle them (unacked ones would be
    // redelivered anyway).
    while let Some(settled) = in_flight.next().await {
        settled?;
    }
    Ok(())
}

async fn settle_within(acker: &lapin::Acker, disposition: Disposition) -> Result<(), AmqpError> {
    tokio::time::timeout(ANSWER_TIMEOUT, settle(acker, disposition))
        .await
        .map_err(|_| AmqpError::Timeout(ANSWER_TIMEOUT, "acknowledgement"))??;
    Ok(())
}

/// Acknowledges, requeues or rejects one delivery.
pub async fn settle(acker: &lapin::Acker, disposition: Disposition) -> Result<(), lapin::Error> {
    use lapin::options::{BasicAckOptions, BasicNackOptions};
    let requeue = match disposition {
        Disposition::Ack => {
            acker.ack(BasicAckOptions::default()).await?;
            return Ok(());
        }
        Disposition::Requeue => true,
        Disposition::Reject => false,
    };
    acker
        .nack(BasicNackOptions {
            requeue,
            ..BasicNackOptions::default()
        })
        .await?;
    Ok(())
}

/// An integer header of a delivery, whatever integer type the sender gave it.
#[must_use]
pub fn integer_header(properties: &lapin::BasicProperties, name: &str) -> Option<i64> {
    let value = properties
        .headers()
        .as_ref()
        .and_then(|headers| headers.inner().get(name).cloned());
    match value {
        Some(AMQPValue::LongUInt(n)) => Some(i64::from(n)),
        Some(AMQPValue::LongInt(n)) => Some(i64::from(n)),
        Some(AMQPValue::LongLongInt(n)) => Some(n),
        Some(AMQPValue::ShortInt(n)) => Some(i64::from(n)),
        Some(AMQPValue::ShortUInt(n)) => Some(i64::from(n)),
        _ => None,
    }
}

/// The attempt a delivery is (1 unless a retry said otherwise, in the attempts header).
#[must_use]
pub fn attempt_of(properties: &lapin::BasicProperties) -> u32 {
    let attempt = integer_header(properties, ATTEMPTS_HEADER).unwrap_or(1);
    u32::try_from(attempt.max(1)).unwrap_or(u32::MAX)
}

/// How often a quorum queue delivered this message before (its `x-delivery-count` header:
/// absent on the first delivery).
#[must_use]
pub fn earlier_deliveries(properties: &lapin::BasicProperties) -> u32 {
    let count = integer_header(properties, "x-delivery-count").unwrap_or(0);
    u32::try_from(count.max(0)).unwrap_or(u32::MAX)
}

/// Longest dead-letter reason, in bytes. The reason travels in a header, and a delivery's
/// headers must fit in one AMQP frame (128 KiB by default): a reason quoting a huge field of
/// a poison message would make every dead-lettering of it fail (the broker closes the
/// connection), so the message would be redelivered forever.
pub const MAX_REASON_BYTES: usize = 1024;

/// `reason` cut to at most [`MAX_REASON_BYTES`] (at a character boundary).
#[must_use]
pub fn bounded_reason(reason: &str) -> &str {
    let mut end = reason.len().min(MAX_REASON_BYTES);
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    &reason[..end]
}

/// A delivery's properties with the attempt (and a dead-letter reason, bounded) in its
/// headers, persistent.
#[must_use]
pub fn with_headers(
    properties: &lapin::BasicProperties,
    attempt: u32,
    reason: Option<&str>,
) -> lapin::BasicProperties {
    let mut headers = properties.headers().clone().unwrap_or_default();
    headers.insert(ATTEMPTS_HEADER.into(), AMQPValue::LongUInt(attempt));
    if let Some(reason) = reason {
        headers.insert(
            DEAD_REASON_HEADER.into(),
            AMQPValue::LongString(bounded_reason(reason).into()),
        );
    }
    properties
        .clone()
        .with_headers(headers)
        .with_delivery_mode(2)
}
