//! Payment results and hold expiry: one outcome per order, stock returned exactly once.

use std::collections::BTreeSet;
use std::time::Duration;

use flash_kit::amqp::publish;
use flash_protocol::messages::{PaymentCompleted, PaymentOutcome, PaymentRequested, Queue};
use flash_protocol::order::{Order, OrderStatus};
use flash_protocol::{OrderId, PaymentId};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::helpers::{Stores, TestApi, User, consume};

pub(crate) async fn payment_id(api: &TestApi, order: OrderId) -> PaymentId {
    PaymentId(
        sqlx::query_scalar("SELECT payment_id FROM orders WHERE id = $1")
            .bind(order.0)
            .fetch_one(&api.pool)
            .await
            .expect("payment id"),
    )
}

pub(crate) async fn send_result(
    api: &TestApi,
    order: OrderId,
    payment: PaymentId,
    outcome: PaymentOutcome,
) {
    let connection =
        lapin::Connection::connect(&api.stores.amqp.url, lapin::ConnectionProperties::default())
            .await
            .expect("amqp");
    let channel = connection.create_channel().await.expect("channel");
    channel
        .confirm_select(Default::default())
        .await
        .expect("confirms");
    let result = PaymentCompleted {
        payment_id: payment,
        order_id: order,
        outcome,
        reason: (outcome == PaymentOutcome::Declined).then(|| "card_declined".to_owned()),
        processed_at: OffsetDateTime::now_utc(),
    };
    publish(
        &channel,
        &api.stores.amqp.names,
        &Uuid::new_v4().to_string(),
        &result,
    )
    .await
    .expect("publish");
    drop(connection.close(200, "sent".into()).await);
}

async fn status_of(api: &TestApi, buyer: &User, order: OrderId) -> OrderStatus {
    let order: Order = serde_json::from_value(
        api.get_json(&format!("/api/v1/orders/{order}"), Some(&buyer.access))
            .await
            .ok(200),
    )
    .expect("order");
    order.status
}

pub(crate) async fn wait_status(api: &TestApi, buyer: &User, order: OrderId, want: OrderStatus) {
    for _ in 0..200 {
        if status_of(api, buyer, order).await == want {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("order never became {want:?}");
}

pub(crate) async fn place(
    api: &TestApi,
    buyer: &User,
    event: flash_protocol::EventId,
    quantity: u32,
) -> OrderId {
    let order: Order = serde_json::from_value(
        api.buy(buyer, event, quantity, &Uuid::new_v4().to_string())
            .await
            .ok(201),
    )
    .expect("order");
    order.id
}

/// Tickets the buyer holds for the event, as the per-buyer limit counts them.
async fn held(api: &TestApi, buyer: &User, event: flash_protocol::EventId) -> i32 {
    sqlx::query_scalar("SELECT held FROM holdings WHERE user_id = $1 AND event_id = $2")
        .bind(buyer.id.0)
        .bind(event.0)
        .fetch_one(&api.pool)
        .await
        .expect("holdings")
}

#[tokio::test]
async fn results_settle_orders_once_and_declines_return_stock_once() {
    let api = TestApi::spawn().await;
    let event = api.event(3, 3).await;
    let buyer = api.users(1).await.remove(0);
    let paid = place(&api, &buyer, event.id, 1).await;
    let declined = place(&api, &buyer, event.id, 2).await;
    assert_eq!(api.remaining(event.id).await, 0, "sold out");

    send_result(
        &api,
        paid,
        payment_id(&api, paid).await,
        PaymentOutcome::Approved,
    )
    .await;
    wait_status(&api, &buyer, paid, OrderStatus::Paid).await;

    let payment = payment_id(&api, declined).await;
    send_result(&api, declined, payment, PaymentOutcome::Declined).await;
    wait_status(&api, &buyer, declined, OrderStatus::PaymentFailed).await;
    assert_eq!(
        api.remaining(event.id).await,
        2,
        "declined tickets are back"
    );

    // The same result again, and a different one late: nothing changes.
    send_result(&api, declined, payment, PaymentOutcome::Declined).await;
    send_result(&api, declined, payment, PaymentOutcome::Approved).await;
    send_result(&api, paid, PaymentId::new_v7(), PaymentOutcome::Declined).await;
    send_result(
        &api,
        OrderId::new_v7(),
        PaymentId::new_v7(),
        PaymentOutcome::Approved,
    )
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        status_of(&api, &buyer, declined).await,
        OrderStatus::PaymentFailed
    );
    assert_eq!(status_of(&api, &buyer, paid).await, OrderStatus::Paid);
    assert_eq!(api.remaining(event.id).await, 2, "stock returned once");
    assert_eq!(
        held(&api, &buyer, event.id).await,
        1,
        "the buyer holds the paid ticket"
    );

    // The event had sold out and has tickets again: the gateway is told it is on sale.
    let updates: Vec<serde_json::Value> = sqlx::query_scalar(
        "SELECT payload FROM outbox WHERE message_type = 'event.updated' ORDER BY id",
    )
    .fetch_all(&api.pool)
    .await
    .expect("outbox");
    assert_eq!(updates.len(), 1);
    assert_eq!(updates[0]["status"], "on_sale");
    api.stop().await;
}

#[tokio::test]
async fn unpaid_orders_expire_once_with_two_replicas_and_late_results_change_nothing() {
    let stores = Stores::new().await;
    let mut cfg = stores.config();
    cfg.orders.hold_secs = 1;
    let second = flash_api::Application::build(cfg.clone())
        .await
        .expect("second replica");
    let second_port = second.port();
    let second =
        flash_kit::testing::Running::spawn(second_port, |shutdown| second.run_until(shutdown));
    let api = TestApi::spawn_with(cfg, stores).await;

    let event = api.event(10, 10).await;
    let buyer = api.users(1).await.remove(0);
    let mut orders = Vec::new();
    for quantity in [1, 2, 3] {
        orders.push(place(&api, &buyer, event.id, quantity).await);
    }
    assert_eq!(api.remaining(event.id).await, 4);
    for order in &orders {
        wait_status(&api, &buyer, *order, OrderStatus::Expired).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        api.remaining(event.id).await,
        10,
        "every ticket back, exactly once"
    );
    assert_eq!(
        held(&api, &buyer, event.id).await,
        0,
        "the buyer holds none"
    );

    send_result(
        &api,
        orders[0],
        payment_id(&api, orders[0]).await,
        PaymentOutcome::Approved,
    )
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        status_of(&api, &buyer, orders[0]).await,
        OrderStatus::Expired
    );
    assert_eq!(api.remaining(event.id).await, 10);
    // Within the limit again: the buyer can order the event's maximum.
    place(&api, &buyer, event.id, 10).await;
    second.stop().await;
    api.stop().await;
}

#[tokio::test]
async fn unanswered_payments_are_asked_again_with_the_same_payment_id_until_settled() {
    let stores = Stores::new().await;
    let mut cfg = stores.config();
    cfg.orders.payment_reask_secs = 1;
    let api = TestApi::spawn_with(cfg, stores).await;
    let event = api.event(10, 2).await;
    let buyer = api.users(1).await.remove(0);
    let order = place(&api, &buyer, event.id, 1).await;
    let payment = payment_id(&api, order).await;

    // Nobody answers (no pay worker): the request comes again, the same payment each time.
    let deliveries = consume(
        &api.stores.amqp,
        Queue::PayRequests,
        Duration::from_secs(3),
        Duration::from_millis(3500),
    )
    .await;
    assert!(
        deliveries.len() >= 2,
        "asked again: {} requests",
        deliveries.len()
    );
    let mut message_ids = BTreeSet::new();
    for delivery in &deliveries {
        let request: PaymentRequested = serde_json::from_slice(&delivery.data).expect("request");
        assert_eq!((request.payment_id, request.order_id), (payment, order));
        assert_eq!(request.user_id, buyer.id);
        message_ids.insert(delivery.properties.message_id().clone());
    }
    assert_eq!(
        message_ids.len(),
        deliveries.len(),
        "each a message of its own"
    );

    // Settled: never asked again.
    send_result(&api, order, payment, PaymentOutcome::Approved).await;
    wait_status(&api, &buyer, order, OrderStatus::Paid).await;
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let asked_after: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM outbox WHERE message_type = 'payment.requested' \
         AND created_at > (SELECT updated_at FROM orders WHERE id = $1)",
    )
    .bind(order.0)
    .fetch_one(&api.pool)
    .await
    .expect("outbox");
    assert_eq!(asked_after, 0, "a paid order is not asked for again");
    api.stop().await;
}

#[tokio::test]
async fn payment_is_asked_again_less_and_less_often_and_at_most_so_many_times() {
    let stores = Stores::new().await;
    let mut cfg = stores.config();
    cfg.orders.payment_reask_secs = 1;
    cfg.orders.payment_reask_max = 2;
    let api = TestApi::spawn_with(cfg, stores).await;
    let event = api.event(10, 2).await;
    let buyer = api.users(1).await.remove(0);
    let order = place(&api, &buyer, event.id, 1).await;

    // Nobody answers: asked when taken, again after 1 s, again 2 s after that, then no more.
    let started = tokio::time::Instant::now();
    let deliveries = consume(
        &api.stores.amqp,
        Queue::PayRequests,
        Duration::from_secs(4),
        Duration::from_secs(8),
    )
    .await;
    assert_eq!(deliveries.len(), 3, "asked once and again twice");
    assert!(
        started.elapsed() >= Duration::from_secs(6),
        "then nothing for 4 s"
    );
    let (asks, asked_at, created_at): (i32, time::OffsetDateTime, time::OffsetDateTime) =
        sqlx::query_as(
            "SELECT payment_asks, payment_asked_at, created_at FROM orders WHERE id = $1",
        )
        .bind(order.0)
        .fetch_one(&api.pool)
        .await
        .expect("order");
    assert_eq!(asks, 2);
    // The second re-ask came 1 + 2 s after the order, not 1 + 1.
    assert!(
        asked_at - created_at >= time::Duration::milliseconds(2900),
        "{}",
        asked_at - created_at
    );
    api.stop().await;
}
