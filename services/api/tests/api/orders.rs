//! Orders: every contract path and error code.

use flash_protocol::order::{Order, OrderStatus};
use flash_protocol::{EventId, OrderId};
use reqwest::Method;
use serde_json::json;

use crate::helpers::{TestApi, gate_token};

#[tokio::test]
async fn a_buyer_orders_with_a_gate_token_and_reads_the_order() {
    let api = TestApi::spawn().await;
    let event = api.event(10, 4).await;
    let buyer = api.user().await;
    let gate = gate_token(buyer.id, event.id, 60);
    let order: Order =
        serde_json::from_value(api.order(&buyer, event.id, 3, &gate, "key-1").await.ok(201))
            .expect("order");
    assert_eq!(
        (
            order.event_id,
            order.quantity,
            order.amount_cents,
            order.status
        ),
        (event.id, 3, 7500, OrderStatus::PendingPayment)
    );
    assert_eq!(api.remaining(event.id).await, 7);

    // Replay: the same order, nothing new.
    let replay: Order =
        serde_json::from_value(api.order(&buyer, event.id, 3, &gate, "key-1").await.ok(200))
            .expect("order");
    assert_eq!(replay, order);
    assert_eq!(api.remaining(event.id).await, 7);

    let read: Order = serde_json::from_value(
        api.get_json(&format!("/api/v1/orders/{}", order.id), Some(&buyer.access))
            .await
            .ok(200),
    )
    .expect("order");
    assert_eq!(read, order);
    let mine: Vec<Order> = serde_json::from_value(
        api.get_json("/api/v1/me/orders", Some(&buyer.access))
            .await
            .ok(200),
    )
    .expect("orders");
    assert_eq!(mine, std::slice::from_ref(&order));

    // Another user cannot see it; unknown ids are not found.
    let other = api.user().await;
    assert_eq!(
        api.get_json(&format!("/api/v1/orders/{}", order.id), Some(&other.access))
            .await
            .code(404),
        "ORDER_NOT_FOUND"
    );
    assert_eq!(
        api.get_json(
            &format!("/api/v1/orders/{}", OrderId::new_v7()),
            Some(&buyer.access)
        )
        .await
        .code(404),
        "ORDER_NOT_FOUND"
    );

    // The order and its messages were written together.
    let types: Vec<String> = sqlx::query_scalar("SELECT message_type FROM outbox ORDER BY id")
        .fetch_all(&api.pool)
        .await
        .expect("outbox");
    assert_eq!(
        types,
        ["event.created", "payment.requested", "gate.consumed"]
    );
    api.stop().await;
}

#[tokio::test]
async fn gate_token_errors_have_their_codes_and_consume_nothing() {
    let api = TestApi::spawn().await;
    let event = api.event(10, 2).await;
    let other_event = api.event(10, 2).await;
    let buyer = api.user().await;
    let someone = api.user().await;

    let expired = gate_token(buyer.id, event.id, -60);
    assert_eq!(
        api.order(&buyer, event.id, 1, &expired, "a")
            .await
            .code(403),
        "GATE_TOKEN_EXPIRED"
    );
    assert_eq!(
        api.order(&buyer, event.id, 1, "garbage", "b")
            .await
            .code(403),
        "GATE_TOKEN_INVALID"
    );
    let forged = flash_tokens::SigningKey::generate().expect("key").sign(&json!({"sub": buyer.id, "evt": event.id, "jti": uuid::Uuid::new_v4(), "iss": "flash-gateway", "aud": "flash-api", "iat": 0, "exp": 4_000_000_000_i64})).expect("sign");
    assert_eq!(
        api.order(&buyer, event.id, 1, &forged, "c").await.code(403),
        "GATE_TOKEN_INVALID"
    );
    let not_mine = gate_token(someone.id, event.id, 60);
    assert_eq!(
        api.order(&buyer, event.id, 1, &not_mine, "d")
            .await
            .code(403),
        "GATE_TOKEN_MISMATCH"
    );
    let wrong_event = gate_token(buyer.id, other_event.id, 60);
    assert_eq!(
        api.order(&buyer, event.id, 1, &wrong_event, "e")
            .await
            .code(403),
        "GATE_TOKEN_MISMATCH"
    );
    let missing = api
        .call(
            Method::POST,
            &format!("/api/v1/events/{}/orders", event.id),
            Some(&buyer.access),
            Some(json!({"quantity": 1})),
            &[("Idempotency-Key", "f")],
        )
        .await;
    assert_eq!(missing.code(403), "GATE_TOKEN_INVALID");

    // A refused request (limit, validation) leaves the gate token usable.
    let gate = gate_token(buyer.id, event.id, 60);
    assert_eq!(
        api.order(&buyer, event.id, 3, &gate, "g").await.code(409),
        "LIMIT_EXCEEDED"
    );
    let no_key = api
        .call(
            Method::POST,
            &format!("/api/v1/events/{}/orders", event.id),
            Some(&buyer.access),
            Some(json!({"quantity": 1})),
            &[("Gate-Token", &gate)],
        )
        .await;
    assert_eq!(no_key.code(422), "VALIDATION");
    assert_eq!(
        api.order(&buyer, event.id, 0, &gate, "h").await.code(422),
        "VALIDATION"
    );
    api.order(&buyer, event.id, 1, &gate, "i").await.ok(201);
    // Used now.
    assert_eq!(
        api.order(&buyer, event.id, 1, &gate, "j").await.code(403),
        "GATE_TOKEN_USED"
    );
    assert_eq!(api.remaining(event.id).await, 9);
    api.stop().await;
}

#[tokio::test]
async fn limits_keys_and_stock_have_their_codes() {
    let api = TestApi::spawn().await;
    let event = api.event(3, 2).await;
    let buyer = api.user().await;
    api.buy(&buyer, event.id, 2, "one").await.ok(201);
    // max_per_user 2: one more is over the limit, and the gate token stays unused.
    let gate = gate_token(buyer.id, event.id, 60);
    assert_eq!(
        api.order(&buyer, event.id, 1, &gate, "two").await.code(409),
        "LIMIT_EXCEEDED"
    );
    // The same key for a different request.
    assert_eq!(
        api.order(&buyer, event.id, 1, &gate, "one").await.code(409),
        "IDEMPOTENCY_KEY_REUSED"
    );

    let second = api.user().await;
    assert_eq!(
        api.buy(&second, event.id, 2, "x").await.code(409),
        "SOLD_OUT"
    );
    api.buy(&second, event.id, 1, "y").await.ok(201);
    let third = api.user().await;
    assert_eq!(
        api.buy(&third, event.id, 1, "z").await.code(409),
        "SOLD_OUT"
    );
    assert_eq!(api.remaining(event.id).await, 0);
    // Stock reached zero: the gateway is told once.
    let sold_out: i64 =
        sqlx::query_scalar("SELECT count(*) FROM outbox WHERE message_type = 'event.sold_out'")
            .fetch_one(&api.pool)
            .await
            .expect("count");
    assert_eq!(sold_out, 1);
    // Each used gate token tells the gateway the stock its order left: at 0 it stops
    // admitting before it frees the admission.
    let left: Vec<Option<i64>> = sqlx::query_scalar(
        "SELECT (payload->>'remaining')::bigint FROM outbox \
         WHERE message_type = 'gate.consumed' ORDER BY id",
    )
    .fetch_all(&api.pool)
    .await
    .expect("consumed");
    assert_eq!(left, [Some(1), Some(0)]);

    let unknown = EventId::new_v7();
    assert_eq!(
        api.buy(&buyer, unknown, 1, "u").await.code(404),
        "EVENT_NOT_FOUND"
    );
    // Keys are per user: another user may use "one".
    let fourth = api.user().await;
    let stock = api.remaining(event.id).await;
    assert_eq!(
        api.buy(&fourth, event.id, 1, "one").await.code(409),
        "SOLD_OUT"
    );
    assert_eq!(stock, 0);
    api.stop().await;
}
