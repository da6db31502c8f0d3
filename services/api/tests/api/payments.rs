//! Payment results and hold expiry: one outcome per order, stock returned exactly once.

use std::collections::BTreeSet;
use std::time::Duration;

use flash_kit::amqp::publish;
use flash_protocol::messages::{
    DEAD_REASON_HEADER, EventSoldOut, Message, PaymentCompleted, PaymentOutcome,
    PaymentRefundRequested, PaymentRefunded, PaymentRequested, Queue, RefundOutcome,
};
use flash_protocol::order::{Order, OrderStatus, Refund, RefundStatus};
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

/// A connection to the test's broker with a channel in confirm mode (close the connection after).
async fn confirmed_channel(api: &TestApi) -> (lapin::Connection, lapin::Channel) {
    let connection =
        lapin::Connection::connect(&api.stores.amqp.url, lapin::ConnectionProperties::default())
            .await
            .expect("amqp");
    let channel = connection.create_channel().await.expect("channel");
    channel
        .confirm_select(Default::default())
        .await
        .expect("confirms");
    (connection, channel)
}

/// Publishes `message` as the pay worker does (confirmed), with `message_id`.
async fn send_as_pay<M: Message>(api: &TestApi, message_id: &str, message: &M) {
    let (connection, channel) = confirmed_channel(api).await;
    publish(&channel, &api.stores.amqp.names, message_id, message)
        .await
        .expect("publish");
    drop(connection.close(200, "sent".into()).await);
}

pub(crate) async fn send_result(
    api: &TestApi,
    order: OrderId,
    payment: PaymentId,
    outcome: PaymentOutcome,
) {
    let result = PaymentCompleted {
        payment_id: payment,
        order_id: order,
        outcome,
        reason: (outcome == PaymentOutcome::Declined).then(|| "card_declined".to_owned()),
        processed_at: OffsetDateTime::now_utc(),
    };
    send_as_pay(api, &Uuid::new_v4().to_string(), &result).await;
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

    // The event had sold out and has tickets again: the gateway is told it is on sale, and
    // how many there are (it admits no more buyers than could buy them).
    let updates: Vec<serde_json::Value> = sqlx::query_scalar(
        "SELECT payload FROM outbox WHERE message_type = 'event.updated' ORDER BY id",
    )
    .fetch_all(&api.pool)
    .await
    .expect("outbox");
    assert_eq!(updates.len(), 1);
    assert_eq!(updates[0]["status"], "on_sale");
    assert_eq!(updates[0]["remaining"], 2);
    api.stop().await;
}

/// An approval while tickets are left (a sale's usual result, applied by one statement) pays
/// its order once and records the result once; an approval naming another payment, or seen
/// again, changes nothing; stock and holdings stay as the order left them.
#[tokio::test]
async fn approvals_while_tickets_are_left_pay_once() {
    let api = TestApi::spawn().await;
    let event = api.event(5, 3).await;
    let buyer = api.users(1).await.remove(0);
    let order = place(&api, &buyer, event.id, 2).await;
    assert_eq!(api.remaining(event.id).await, 3, "tickets are left");
    let payment = payment_id(&api, order).await;

    send_result(&api, order, PaymentId::new_v7(), PaymentOutcome::Approved).await;
    api.eventually("the stranger's approval is seen", || async {
        metrics(&api)
            .await
            .contains("api_payment_results_total{applied=\"unknown\"} 1")
    })
    .await;
    assert_eq!(
        status_of(&api, &buyer, order).await,
        OrderStatus::PendingPayment,
        "another payment's approval pays nothing"
    );

    send_result(&api, order, payment, PaymentOutcome::Approved).await;
    wait_status(&api, &buyer, order, OrderStatus::Paid).await;
    send_result(&api, order, payment, PaymentOutcome::Approved).await;
    api.eventually("the approval seen again", || async {
        metrics(&api)
            .await
            .contains("api_payment_results_total{applied=\"duplicate\"} 1")
    })
    .await;
    let text = metrics(&api).await;
    assert!(
        text.contains("api_payment_results_total{applied=\"paid\"} 1"),
        "paid once:\n{text}"
    );
    let recorded: Vec<(String, Option<String>)> =
        sqlx::query_as("SELECT outcome, reason FROM payment_results WHERE order_id = $1")
            .bind(order.0)
            .fetch_all(&api.pool)
            .await
            .expect("payment_results");
    assert_eq!(recorded, [("approved".to_owned(), None)]);
    assert_eq!(status_of(&api, &buyer, order).await, OrderStatus::Paid);
    assert_eq!(api.remaining(event.id).await, 3, "no ticket came back");
    assert_eq!(held(&api, &buyer, event.id).await, 2);
    api.stop().await;
}

/// A return while tickets are still on sale is announced too, with the stock: late in a sale
/// the gateway must not admit a second's worth of buyers for one ticket.
#[tokio::test]
async fn every_return_tells_the_gateway_how_many_tickets_are_left() {
    let api = TestApi::spawn().await;
    let event = api.event(5, 2).await;
    let buyer = api.users(1).await.remove(0);
    let declined = place(&api, &buyer, event.id, 2).await;
    assert_eq!(api.remaining(event.id).await, 3);
    let payment = payment_id(&api, declined).await;
    send_result(&api, declined, payment, PaymentOutcome::Declined).await;
    wait_status(&api, &buyer, declined, OrderStatus::PaymentFailed).await;
    let updates: Vec<serde_json::Value> = sqlx::query_scalar(
        "SELECT payload FROM outbox WHERE message_type = 'event.updated' ORDER BY id",
    )
    .fetch_all(&api.pool)
    .await
    .expect("outbox");
    assert_eq!(updates.len(), 1, "{updates:?}");
    assert_eq!(updates[0]["status"], "on_sale");
    assert_eq!(updates[0]["remaining"], 5);
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

/// Publishes a refund's outcome as the pay worker does.
async fn send_refunded(api: &TestApi, refunded: &PaymentRefunded) {
    send_as_pay(api, &refunded.payment_id.to_string(), refunded).await;
}

async fn order_of(api: &TestApi, buyer: &User, order: OrderId) -> Order {
    serde_json::from_value(
        api.get_json(&format!("/api/v1/orders/{order}"), Some(&buyer.access))
            .await
            .ok(200),
    )
    .expect("order")
}

async fn refund_of(api: &TestApi, buyer: &User, order: OrderId) -> Option<Refund> {
    order_of(api, buyer, order).await.refund
}

/// The refund requests in the api's outbox, oldest first.
async fn refunds_asked(api: &TestApi) -> Vec<PaymentRefundRequested> {
    let payloads: Vec<serde_json::Value> = sqlx::query_scalar(
        "SELECT payload FROM outbox WHERE message_type = $1 AND routing_key = $2 ORDER BY id",
    )
    .bind(PaymentRefundRequested::TYPE)
    .bind(PaymentRefundRequested::ROUTING_KEY)
    .fetch_all(&api.pool)
    .await
    .expect("outbox");
    payloads
        .into_iter()
        .map(|payload| serde_json::from_value(payload).expect("a refund request"))
        .collect()
}

async fn metrics(api: &TestApi) -> String {
    api.running
        .get("/metrics")
        .await
        .text()
        .await
        .expect("metrics")
}

#[tokio::test]
async fn a_payment_approved_after_the_hold_is_refunded_once_and_the_order_shows_it() {
    let stores = Stores::new().await;
    let mut cfg = stores.config();
    cfg.orders.hold_secs = 1;
    let api = TestApi::spawn_with(cfg, stores).await;
    let event = api.event(10, 10).await;
    let buyer = api.users(1).await.remove(0);
    let refunded = place(&api, &buyer, event.id, 2).await;
    let refused = place(&api, &buyer, event.id, 1).await;
    let declined = place(&api, &buyer, event.id, 1).await;
    for order in [refunded, refused, declined] {
        wait_status(&api, &buyer, order, OrderStatus::Expired).await;
        assert_eq!(refund_of(&api, &buyer, order).await, None, "no refund yet");
    }
    let expired = order_of(&api, &buyer, refunded).await;

    // Approved twice (the pay worker publishes at least once) and declined once, all late.
    let payment = payment_id(&api, refunded).await;
    send_result(&api, refunded, payment, PaymentOutcome::Approved).await;
    send_result(&api, refunded, payment, PaymentOutcome::Approved).await;
    let refused_payment = payment_id(&api, refused).await;
    send_result(&api, refused, refused_payment, PaymentOutcome::Approved).await;
    send_result(
        &api,
        declined,
        payment_id(&api, declined).await,
        PaymentOutcome::Declined,
    )
    .await;
    api.eventually("both refunds are pending", || async {
        refund_of(&api, &buyer, refunded).await.map(|r| r.status) == Some(RefundStatus::Pending)
            && refund_of(&api, &buyer, refused).await.map(|r| r.status)
                == Some(RefundStatus::Pending)
    })
    .await;
    let asked = refunds_asked(&api).await;
    assert_eq!(
        asked.len(),
        2,
        "one refund asked per late approval: {asked:?}"
    );
    assert_eq!(asked[0].payment_id, payment);
    assert_eq!(asked[0].order_id, refunded);
    assert_eq!(asked[0].amount_cents, expired.amount_cents);
    assert_eq!(asked[0].currency, expired.currency);
    assert_eq!(asked[1].payment_id, refused_payment);
    let pending = order_of(&api, &buyer, refunded).await;
    assert_eq!(pending.status, OrderStatus::Expired, "still no ticket");
    assert_eq!(
        api.remaining(event.id).await,
        10,
        "no ticket comes back twice"
    );
    // The gauges see them (read every 5 s).
    api.eventually("the gauge counts the pending refunds", || async {
        metrics(&api).await.contains("api_refunds_pending 2")
    })
    .await;

    // The provider answers: refunded (twice: applied once), and refused for the other.
    let at = OffsetDateTime::now_utc()
        .replace_nanosecond(0)
        .expect("time");
    let outcome = PaymentRefunded {
        payment_id: payment,
        order_id: refunded,
        outcome: RefundOutcome::Refunded,
        reason: None,
        processed_at: at,
    };
    send_refunded(&api, &outcome).await;
    send_refunded(
        &api,
        &PaymentRefunded {
            processed_at: at + time::Duration::minutes(5),
            ..outcome.clone()
        },
    )
    .await;
    send_refunded(
        &api,
        &PaymentRefunded {
            payment_id: refused_payment,
            order_id: refused,
            outcome: RefundOutcome::Failed,
            reason: Some("not_captured".into()),
            processed_at: at,
        },
    )
    .await;
    // Outcomes of refunds nobody asked for change nothing.
    send_refunded(
        &api,
        &PaymentRefunded {
            payment_id: PaymentId::new_v7(),
            order_id: declined,
            ..outcome.clone()
        },
    )
    .await;
    send_refunded(
        &api,
        &PaymentRefunded {
            payment_id: payment_id(&api, declined).await,
            order_id: declined,
            ..outcome.clone()
        },
    )
    .await;
    api.eventually("every refund outcome is applied", || async {
        metrics(&api)
            .await
            .contains("api_refunds_total{outcome=\"unknown\"} 2")
    })
    .await;
    assert_eq!(
        refund_of(&api, &buyer, refunded).await,
        Some(Refund {
            status: RefundStatus::Refunded,
            at
        }),
        "applied once: the first outcome's time"
    );
    assert_eq!(
        refund_of(&api, &buyer, refused).await.map(|r| r.status),
        Some(RefundStatus::Failed)
    );
    assert_eq!(refund_of(&api, &buyer, declined).await, None);
    let listed: Vec<Order> = serde_json::from_value(
        api.get_json("/api/v1/me/orders", Some(&buyer.access))
            .await
            .ok(200),
    )
    .expect("orders");
    let shown = listed
        .iter()
        .find(|order| order.id == refunded)
        .expect("listed");
    assert_eq!(shown.refund.map(|r| r.status), Some(RefundStatus::Refunded));
    let text = metrics(&api).await;
    for line in [
        "api_refunds_total{outcome=\"requested\"} 2",
        "api_refunds_total{outcome=\"refunded\"} 1",
        "api_refunds_total{outcome=\"failed\"} 1",
        "api_refunds_total{outcome=\"duplicate\"} 1",
        "api_payment_results_total{applied=\"refunding\"} 2",
        "api_payment_results_total{applied=\"duplicate\"} 1",
        "api_payment_results_total{applied=\"late\"} 1",
    ] {
        assert!(text.contains(line), "{line} missing:\n{text}");
    }
    assert_eq!(refunds_asked(&api).await.len(), 2, "nothing asked again");

    // An approval seen again after its result's record was retired asks for nothing more.
    sqlx::query("DELETE FROM payment_results WHERE payment_id = $1")
        .bind(payment.0)
        .execute(&api.pool)
        .await
        .expect("retire the record");
    send_result(&api, refunded, payment, PaymentOutcome::Approved).await;
    api.eventually("the approval is seen again", || async {
        metrics(&api)
            .await
            .contains("api_payment_results_total{applied=\"duplicate\"} 2")
    })
    .await;
    assert_eq!(refunds_asked(&api).await.len(), 2, "no second refund");
    // Nor does an approval of a paid order seen again after its record was retired.
    let paid = place(&api, &buyer, event.id, 1).await;
    let paid_with = payment_id(&api, paid).await;
    send_result(&api, paid, paid_with, PaymentOutcome::Approved).await;
    wait_status(&api, &buyer, paid, OrderStatus::Paid).await;
    sqlx::query("DELETE FROM payment_results WHERE payment_id = $1")
        .bind(paid_with.0)
        .execute(&api.pool)
        .await
        .expect("retire the record");
    send_result(&api, paid, paid_with, PaymentOutcome::Approved).await;
    api.eventually("the paid order's approval is seen again", || async {
        metrics(&api)
            .await
            .contains("api_payment_results_total{applied=\"duplicate\"} 3")
    })
    .await;
    assert_eq!(
        refunds_asked(&api).await.len(),
        2,
        "a paid order is not refunded"
    );
    assert_eq!(refund_of(&api, &buyer, paid).await, None);
    assert_eq!(
        refund_of(&api, &buyer, refunded).await.map(|r| r.status),
        Some(RefundStatus::Refunded)
    );
    api.stop().await;
}

/// A result the api cannot read, or cannot apply however often it is delivered, is moved to
/// `api.payment-results.dead` with the reason (never dropped), and the results behind it are
/// applied.
#[tokio::test]
async fn results_that_cannot_be_read_or_applied_go_to_the_dead_letters() {
    let stores = Stores::new().await;
    let mut cfg = stores.config();
    cfg.orders.result_redelivery_ms = 10;
    let api = TestApi::spawn_with(cfg, stores).await;
    let event = api.event(10, 10).await;
    let buyer = api.users(1).await.remove(0);
    let stuck = place(&api, &buyer, event.id, 1).await;
    let fine = place(&api, &buyer, event.id, 1).await;

    let (connection, channel) = confirmed_channel(&api).await;
    // Not JSON, though it says it is a result.
    channel
        .basic_publish(
            api.stores
                .amqp
                .names
                .exchange(PaymentCompleted::EXCHANGE)
                .into(),
            PaymentCompleted::ROUTING_KEY.into(),
            Default::default(),
            b"{not json",
            flash_kit::amqp::properties_for(PaymentCompleted::TYPE, "garbage"),
        )
        .await
        .expect("publish")
        .await
        .expect("confirm");
    // A declined result whose reason Postgres cannot store (a NUL character): every attempt
    // to apply it fails.
    drop(connection.close(200, "sent".into()).await);
    send_as_pay(
        &api,
        "nul",
        &PaymentCompleted {
            payment_id: payment_id(&api, stuck).await,
            order_id: stuck,
            outcome: PaymentOutcome::Declined,
            reason: Some("card\u{0}declined".into()),
            processed_at: OffsetDateTime::now_utc(),
        },
    )
    .await;
    send_result(
        &api,
        fine,
        payment_id(&api, fine).await,
        PaymentOutcome::Approved,
    )
    .await;
    wait_status(&api, &buyer, fine, OrderStatus::Paid).await;

    let dead = consume(
        &api.stores.amqp,
        Queue::ApiPaymentResultsDead,
        Duration::from_secs(3),
        Duration::from_secs(20),
    )
    .await;
    let mut reasons: Vec<(String, String)> = dead
        .iter()
        .map(|delivery| {
            let headers = delivery.properties.headers().clone().unwrap_or_default();
            let reason = match headers.inner().get(DEAD_REASON_HEADER) {
                Some(lapin::types::AMQPValue::LongString(reason)) => reason.to_string(),
                other => panic!("reason header {other:?}"),
            };
            (reason, String::from_utf8_lossy(&delivery.data).into_owned())
        })
        .collect();
    reasons.sort();
    assert_eq!(reasons.len(), 2, "{reasons:?}");
    assert!(
        reasons[0].0.starts_with("not applied in 10 deliveries: "),
        "{reasons:?}"
    );
    assert!(reasons[0].1.contains(&stuck.to_string()), "the body kept");
    assert!(reasons[1].0.starts_with("undecodable: "), "{reasons:?}");
    assert_eq!(reasons[1].1, "{not json");
    assert_eq!(
        status_of(&api, &buyer, stuck).await,
        OrderStatus::PendingPayment,
        "a result that was not applied changed nothing"
    );
    let text = metrics(&api).await;
    assert!(
        text.contains("api_payment_results_total{applied=\"dead\"} 2"),
        "{text}"
    );
    api.stop().await;
}

/// The `event.sold_out` messages in the outbox for `event`, oldest first.
async fn sold_outs(api: &TestApi, event: flash_protocol::EventId) -> Vec<EventSoldOut> {
    let payloads: Vec<serde_json::Value> = sqlx::query_scalar(
        "SELECT payload FROM outbox WHERE message_type = $1 AND payload->>'event_id' = $2 \
         ORDER BY id",
    )
    .bind(EventSoldOut::TYPE)
    .bind(event.to_string())
    .fetch_all(&api.pool)
    .await
    .expect("outbox");
    payloads
        .into_iter()
        .map(|payload| serde_json::from_value(payload).expect("a sold-out message"))
        .collect()
}

async fn event_of(api: &TestApi, event: flash_protocol::EventId) -> flash_protocol::event::Event {
    serde_json::from_value(
        api.get_json(&format!("/api/v1/events/{event}"), None)
            .await
            .ok(200),
    )
    .expect("event")
}

/// Sold out while orders are being paid, the gateway is told how many (its queue holds the
/// line); as they are paid the count falls, and at 0 the queue may close. A ticket that comes
/// back reopens the sale; past the event's `returns_until`, nothing holds the line.
#[tokio::test]
async fn a_sell_out_tells_the_gateway_how_many_orders_are_still_being_paid() {
    let api = TestApi::spawn().await;
    let event = api.event(2, 2).await;
    let buyers = api.users(3).await;
    let first = place(&api, &buyers[0], event.id, 1).await;
    let second = place(&api, &buyers[1], event.id, 1).await;
    let announced = sold_outs(&api, event.id).await;
    assert_eq!(announced.len(), 1, "{announced:?}");
    assert_eq!(
        announced[0].reserved_pending, 2,
        "both orders are being paid"
    );
    let shown = event_of(&api, event.id).await;
    assert_eq!(shown.status, flash_protocol::event::EventStatus::SoldOut);
    assert_eq!(shown.reserved_pending, 2);

    send_result(
        &api,
        first,
        payment_id(&api, first).await,
        PaymentOutcome::Approved,
    )
    .await;
    wait_status(&api, &buyers[0], first, OrderStatus::Paid).await;
    let announced = sold_outs(&api, event.id).await;
    assert_eq!(announced.len(), 2);
    assert_eq!(announced[1].reserved_pending, 1);
    assert_eq!(event_of(&api, event.id).await.reserved_pending, 1);

    // The other payment fails: its ticket is back on sale (the queue admits again), and the
    // next buyer's order sells out again with one order being paid.
    send_result(
        &api,
        second,
        payment_id(&api, second).await,
        PaymentOutcome::Declined,
    )
    .await;
    wait_status(&api, &buyers[1], second, OrderStatus::PaymentFailed).await;
    let back = event_of(&api, event.id).await;
    assert_eq!(back.remaining, 1);
    assert_eq!(
        back.reserved_pending, 0,
        "counted only while nothing is left"
    );
    let third = place(&api, &buyers[2], event.id, 1).await;
    let announced = sold_outs(&api, event.id).await;
    assert_eq!(announced.len(), 3);
    assert_eq!(announced[2].reserved_pending, 1);

    // The operator's cut-off passes: nothing holds the line any more.
    let admin = api.admin_token().await;
    let until = OffsetDateTime::now_utc() - time::Duration::seconds(1);
    api.call(
        reqwest::Method::PATCH,
        &format!("/api/v1/admin/events/{}", event.id),
        Some(&admin),
        Some(serde_json::json!({
            "returns_until": until.format(&time::format_description::well_known::Rfc3339).expect("time")
        })),
        &[],
    )
    .await
    .ok(200);
    api.eventually("the cut-off is announced", || async {
        sold_outs(&api, event.id).await.len() == 4
    })
    .await;
    let announced = sold_outs(&api, event.id).await;
    assert_eq!(announced[3].reserved_pending, 0, "the queue closes");
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    assert_eq!(sold_outs(&api, event.id).await.len(), 4, "announced once");
    // Paid after the cut-off: still nothing can come back.
    send_result(
        &api,
        third,
        payment_id(&api, third).await,
        PaymentOutcome::Approved,
    )
    .await;
    wait_status(&api, &buyers[2], third, OrderStatus::Paid).await;
    let announced = sold_outs(&api, event.id).await;
    assert_eq!(announced.len(), 5);
    assert_eq!(announced[4].reserved_pending, 0);
    api.stop().await;
}

/// An operator lowering the inventory to what orders hold sells the event out: the gateway is
/// told how many of those orders are still being paid before it is told "sold out", so its
/// queue holds the line rather than closing.
#[tokio::test]
async fn an_operator_selling_the_event_out_holds_the_line_for_orders_being_paid() {
    let api = TestApi::spawn().await;
    let event = api.event(3, 2).await;
    let buyer = api.users(1).await.remove(0);
    place(&api, &buyer, event.id, 1).await;
    let admin = api.admin_token().await;
    api.call(
        reqwest::Method::PATCH,
        &format!("/api/v1/admin/events/{}", event.id),
        Some(&admin),
        Some(serde_json::json!({"inventory": 1})),
        &[],
    )
    .await
    .ok(200);
    let announced = sold_outs(&api, event.id).await;
    assert_eq!(announced.len(), 1, "{announced:?}");
    assert_eq!(announced[0].reserved_pending, 1);
    let order: Vec<String> = sqlx::query_scalar(
        "SELECT message_type FROM outbox WHERE payload->>'event_id' = $1 \
         AND message_type IN ('event.sold_out', 'event.updated') ORDER BY id",
    )
    .bind(event.id.to_string())
    .fetch_all(&api.pool)
    .await
    .expect("outbox");
    assert_eq!(
        order.iter().rev().take(2).rev().collect::<Vec<_>>(),
        ["event.sold_out", "event.updated"],
        "the count first: {order:?}"
    );
    assert_eq!(event_of(&api, event.id).await.reserved_pending, 1);
    api.stop().await;
}
