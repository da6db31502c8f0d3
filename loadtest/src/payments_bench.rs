//! The payments benchmark: payment requests published as the api's relay does (persistent,
//! publisher confirms, pipelined), a running pay worker turns each into one outcome, and the
//! benchmark consumes the outcomes from `api.payment-results`. End to end: from the first
//! request published to the last outcome consumed.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use flash_kit::amqp::{declare_topology, properties};
use flash_protocol::messages::{
    Message as _, PaymentCompleted, PaymentOutcome, PaymentRequested, Queue,
};
use flash_protocol::{OrderId, PaymentId, UserId};
use futures::StreamExt as _;
use lapin::options::{
    BasicConsumeOptions, BasicPublishOptions, BasicQosOptions, ConfirmSelectOptions,
};
use lapin::types::FieldTable;
use serde::Serialize;
use time::OffsetDateTime;
use tokio::sync::Mutex;
use uuid::Uuid;

use crate::stats::{Latencies, Summary};

#[derive(Debug, clap::Args)]
pub struct PaymentsArgs {
    /// The pay worker's RabbitMQ and name prefix (its `AMQP_URL`, `AMQP_NAME_PREFIX`).
    #[command(flatten)]
    pub broker: crate::bench::BrokerTarget,
    #[arg(long, default_value_t = 100_000)]
    pub payments: usize,
    /// Published requests awaiting their confirm at most.
    #[arg(long, default_value_t = 2_000)]
    pub window: usize,
    /// Seconds to wait for the last outcome.
    #[arg(long, default_value_t = 120)]
    pub timeout_secs: u64,
}

#[derive(Debug, Serialize)]
struct PaymentsResult {
    bench: &'static str,
    payments: usize,
    outcomes: usize,
    duplicates: u64,
    approved: u64,
    declined: u64,
    seconds: f64,
    per_sec: f64,
    publish_per_sec: f64,
    latency: Summary,
}

pub async fn run(args: PaymentsArgs) -> anyhow::Result<()> {
    let names = args.broker.names();
    let connection = lapin::Connection::connect(
        &args.broker.amqp_url,
        lapin::ConnectionProperties::default(),
    )
    .await
    .context("connecting to rabbitmq")?;
    let channel = connection.create_channel().await?;
    declare_topology(&channel, &names).await?;

    let ids: Vec<Uuid> = (0..args.payments).map(|_| Uuid::now_v7()).collect();
    let index: HashMap<Uuid, usize> = ids.iter().enumerate().map(|(i, id)| (*id, i)).collect();
    let sent_at: Arc<Mutex<Vec<Option<Instant>>>> = Arc::new(Mutex::new(vec![None; ids.len()]));

    // Outcomes, consumed as they come.
    let consumer_channel = connection.create_channel().await?;
    consumer_channel
        .basic_qos(5_000, BasicQosOptions::default())
        .await?;
    let mut deliveries = consumer_channel
        .basic_consume(
            names.queue(Queue::ApiPaymentResults).into(),
            "flash-drill".into(),
            BasicConsumeOptions {
                no_ack: true,
                ..BasicConsumeOptions::default()
            },
            FieldTable::default(),
        )
        .await?;
    let expected = args.payments;
    let receiver = {
        let sent_at = Arc::clone(&sent_at);
        tokio::spawn(async move {
            let mut seen = vec![false; expected];
            let (mut outcomes, mut duplicates, mut approved, mut declined) =
                (0usize, 0u64, 0u64, 0u64);
            let mut latencies = Latencies::new();
            let mut last = Instant::now();
            while outcomes < expected {
                let Some(delivery) = deliveries.next().await else {
                    break;
                };
                let delivery = delivery?;
                let Ok(result) = serde_json::from_slice::<PaymentCompleted>(&delivery.data) else {
                    continue;
                };
                let Some(&i) = index.get(&result.payment_id.0) else {
                    continue;
                };
                if seen[i] {
                    duplicates += 1;
                    continue;
                }
                seen[i] = true;
                outcomes += 1;
                last = Instant::now();
                match result.outcome {
                    PaymentOutcome::Approved => approved += 1,
                    PaymentOutcome::Declined => declined += 1,
                }
                if let Some(sent) = sent_at.lock().await[i] {
                    latencies.record(last.duration_since(sent));
                }
            }
            Ok::<_, anyhow::Error>((outcomes, duplicates, approved, declined, latencies, last))
        })
    };

    // Requests, pipelined with confirms.
    channel
        .confirm_select(ConfirmSelectOptions::default())
        .await?;
    let started = Instant::now();
    let mut confirms = futures::stream::FuturesUnordered::new();
    let exchange = names.exchange(PaymentRequested::EXCHANGE);
    for (i, id) in ids.iter().enumerate() {
        while confirms.len() >= args.window {
            if let Some(confirm) = confirms.next().await {
                check(confirm)?;
            }
        }
        let request = PaymentRequested {
            payment_id: PaymentId(*id),
            order_id: OrderId::new_v7(),
            user_id: UserId::new_v7(),
            amount_cents: 4200,
            currency: "EUR".into(),
            requested_at: OffsetDateTime::now_utc(),
        };
        let body = serde_json::to_vec(&request)?;
        sent_at.lock().await[i] = Some(Instant::now());
        let confirm = channel
            .basic_publish(
                exchange.as_str().into(),
                PaymentRequested::ROUTING_KEY.into(),
                BasicPublishOptions::default(),
                &body,
                properties::<PaymentRequested>(&id.to_string()),
            )
            .await?;
        confirms.push(confirm);
    }
    while let Some(confirm) = confirms.next().await {
        check(confirm)?;
    }
    let published = started.elapsed();

    let (outcomes, duplicates, approved, declined, latencies, last) =
        tokio::time::timeout(Duration::from_secs(args.timeout_secs), receiver)
            .await
            .context("waiting for the outcomes")???;
    let seconds = last.duration_since(started).as_secs_f64();
    let result = PaymentsResult {
        bench: "payments",
        payments: args.payments,
        outcomes,
        duplicates,
        approved,
        declined,
        seconds,
        per_sec: outcomes as f64 / seconds,
        publish_per_sec: args.payments as f64 / published.as_secs_f64(),
        latency: latencies.summary(),
    };
    eprintln!(
        "payments: {outcomes} of {} outcomes in {seconds:.1}s = {:.0}/s end to end \
         (published at {:.0}/s); {approved} approved, {declined} declined, {duplicates} duplicates; \
         request→outcome {:?}",
        args.payments, result.per_sec, result.publish_per_sec, result.latency
    );
    crate::bench::print_result(&result)?;
    drop(connection.close(200, "done".into()).await);
    if outcomes < args.payments {
        bail!("{} payments got no outcome", args.payments - outcomes);
    }
    Ok(())
}

fn check(confirm: Result<lapin::Confirmation, lapin::Error>) -> anyhow::Result<()> {
    let confirm = confirm?;
    if confirm.is_nack() {
        bail!("the broker refused a request");
    }
    Ok(())
}
