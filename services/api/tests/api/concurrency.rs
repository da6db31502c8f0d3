//! Under concurrency: no oversell, one order per gate token, one order per idempotency key —
//! with the group-commit batcher and with one transaction per order alike.

use std::collections::BTreeMap;
use std::sync::Arc;

use flash_api::config::{OrderConfig, OrderStrategy};

use flash_protocol::EventId;

use crate::helpers::{Stores, TestApi, User, gate_token};

async fn api_with(strategy: OrderStrategy) -> Arc<TestApi> {
    racing_api(strategy, OrderConfig::default().batch_max, 2).await
}

/// Small batches and many workers: batches of one event overlap and race for its stock and
/// its buyers' holdings, so the constraints and retries decide.
async fn racing_api(strategy: OrderStrategy, batch_max: usize, workers: usize) -> Arc<TestApi> {
    let stores = Stores::new().await;
    let mut config = stores.config();
    config.orders.strategy = strategy;
    config.orders.batch_max = batch_max;
    config.orders.batch_workers = workers;
    config.database_max_connections = 16;
    Arc::new(TestApi::spawn_with(config, stores).await)
}

/// Each buyer (in order: `i`) orders one ticket at once with a gate token of its own and the
/// key `k{i}`; how many final replies had each (status, code). A buyer told 503 (the pool
/// stayed busy past its acquire timeout: a loaded machine running tests side by side) retries
/// with the same key, as the contract tells clients to.
async fn order_at_once(
    api: &Arc<TestApi>,
    event: EventId,
    buyers: impl Iterator<Item = Arc<User>>,
) -> BTreeMap<(u16, String), usize> {
    let tasks: Vec<_> = buyers
        .enumerate()
        .map(|(i, buyer)| {
            let api = Arc::clone(api);
            tokio::spawn(async move {
                let gate = gate_token(buyer.id, event, 60);
                let mut retries = 0;
                loop {
                    let reply = api.order(&buyer, event, 1, &gate, &format!("k{i}")).await;
                    if reply.status == 503 && retries < 20 {
                        retries += 1;
                        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                        continue;
                    }
                    break (
                        reply.status,
                        reply.body["code"].as_str().unwrap_or("").to_owned(),
                    );
                }
            })
        })
        .collect();
    let mut outcomes = BTreeMap::new();
    for task in tasks {
        *outcomes.entry(task.await.expect("task")).or_default() += 1;
    }
    outcomes
}

async fn many_buyers_few_tickets(strategy: OrderStrategy) {
    many_buyers_few_tickets_on(api_with(strategy).await, strategy).await;
}

async fn many_buyers_few_tickets_on(api: Arc<TestApi>, strategy: OrderStrategy) {
    let event = api.event(50, 1).await;
    let buyers = api.users(500).await;
    let outcomes = order_at_once(&api, event.id, buyers.into_iter().map(Arc::new)).await;
    let expected: BTreeMap<(u16, String), usize> = [
        ((201, String::new()), 50),
        ((409, "SOLD_OUT".to_owned()), 450),
    ]
    .into();
    assert_eq!(outcomes, expected, "{strategy:?}");
    assert_eq!(api.remaining(event.id).await, 0);
    let (orders, tickets): (i64, i64) = sqlx::query_as(
        "SELECT count(*), coalesce(sum(quantity), 0)::bigint FROM orders WHERE event_id = $1",
    )
    .bind(event.id.0)
    .fetch_one(&api.pool)
    .await
    .expect("orders");
    assert_eq!((orders, tickets), (50, 50), "{strategy:?}");
}

#[tokio::test]
async fn five_hundred_buyers_fifty_tickets_batched() {
    many_buyers_few_tickets(OrderStrategy::Batched).await;
}

#[tokio::test]
async fn five_hundred_buyers_fifty_tickets_in_racing_batches() {
    let api = racing_api(OrderStrategy::Batched, 3, 8).await;
    many_buyers_few_tickets_on(api, OrderStrategy::Batched).await;
}

#[tokio::test]
async fn one_buyer_with_many_gate_tokens_at_once_stays_within_the_limit() {
    for (strategy, batch_max, workers) in [
        (OrderStrategy::Batched, 1, 8),
        (OrderStrategy::Batched, 256, 2),
        (OrderStrategy::SingleRow, 1, 1),
    ] {
        let api = racing_api(strategy, batch_max, workers).await;
        let event = api.event(100, 3).await;
        let buyer = Arc::new(api.users(1).await.remove(0));
        let outcomes =
            order_at_once(&api, event.id, std::iter::repeat_n(Arc::clone(&buyer), 20)).await;
        let expected: BTreeMap<(u16, String), usize> = [
            ((201, String::new()), 3),
            ((409, "LIMIT_EXCEEDED".to_owned()), 17),
        ]
        .into();
        assert_eq!(outcomes, expected, "{strategy:?} batches of {batch_max}");
        assert_eq!(api.remaining(event.id).await, 97);
        let held: i32 =
            sqlx::query_scalar("SELECT held FROM holdings WHERE user_id = $1 AND event_id = $2")
                .bind(buyer.id.0)
                .bind(event.id.0)
                .fetch_one(&api.pool)
                .await
                .expect("holdings");
        assert_eq!(held, 3);
    }
}

#[tokio::test]
async fn five_hundred_buyers_fifty_tickets_one_transaction_each() {
    many_buyers_few_tickets(OrderStrategy::SingleRow).await;
}

#[tokio::test]
async fn one_gate_token_with_ten_keys_at_once_buys_once() {
    for strategy in [OrderStrategy::Batched, OrderStrategy::SingleRow] {
        let api = api_with(strategy).await;
        let event = api.event(100, 10).await;
        let buyer = Arc::new(api.users(1).await.remove(0));
        let gate = Arc::new(gate_token(buyer.id, event.id, 60));
        let tasks: Vec<_> = (0..10)
            .map(|i| {
                let (api, buyer, gate) = (Arc::clone(&api), Arc::clone(&buyer), Arc::clone(&gate));
                tokio::spawn(async move {
                    let reply = api
                        .order(&buyer, event.id, 1, &gate, &format!("key-{i}"))
                        .await;
                    (
                        reply.status,
                        reply.body["code"].as_str().unwrap_or("").to_owned(),
                    )
                })
            })
            .collect();
        let mut created = 0;
        for task in tasks {
            match task.await.expect("task") {
                (201, _) => created += 1,
                (403, code) => assert_eq!(code, "GATE_TOKEN_USED"),
                other => panic!("{strategy:?}: unexpected {other:?}"),
            }
        }
        assert_eq!(created, 1, "{strategy:?}");
        assert_eq!(api.remaining(event.id).await, 99);
    }
}

#[tokio::test]
async fn one_key_twenty_times_at_once_makes_one_order() {
    for strategy in [OrderStrategy::Batched, OrderStrategy::SingleRow] {
        let api = api_with(strategy).await;
        let event = api.event(100, 10).await;
        let buyer = Arc::new(api.users(1).await.remove(0));
        let gate = Arc::new(gate_token(buyer.id, event.id, 60));
        let tasks: Vec<_> = (0..20)
            .map(|_| {
                let (api, buyer, gate) = (Arc::clone(&api), Arc::clone(&buyer), Arc::clone(&gate));
                tokio::spawn(async move {
                    let reply = api.order(&buyer, event.id, 2, &gate, "the-one-key").await;
                    (reply.status, reply.body["id"].as_str().map(str::to_owned))
                })
            })
            .collect();
        let mut ids = std::collections::BTreeSet::new();
        for task in tasks {
            let (status, id) = task.await.expect("task");
            assert!(
                status == 200 || status == 201,
                "{strategy:?}: status {status}"
            );
            ids.insert(id.expect("an order"));
        }
        assert_eq!(ids.len(), 1, "{strategy:?}: every reply is the same order");
        assert_eq!(api.remaining(event.id).await, 98);
    }
}
