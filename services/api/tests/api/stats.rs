//! The operators' stats of an event: stock and orders by status, admins only.

use flash_protocol::EventId;
use flash_protocol::event::{EventStats, OrderCounts};
use flash_protocol::messages::PaymentOutcome;
use flash_protocol::order::OrderStatus;

use crate::helpers::TestApi;
use crate::payments::{payment_id, place, send_result, wait_status};

#[tokio::test]
async fn admins_see_stock_and_orders_by_status() {
    let api = TestApi::spawn().await;
    let event = api.event(20, 4).await;
    let path = format!("/api/v1/admin/events/{}/stats", event.id);

    // Admins only.
    assert_eq!(api.get_json(&path, None).await.code(401), "UNAUTHENTICATED");
    let buyer = api.user().await;
    assert_eq!(
        api.get_json(&path, Some(&buyer.access)).await.code(403),
        "FORBIDDEN"
    );
    let admin = api.admin_token().await;
    let unknown = format!("/api/v1/admin/events/{}/stats", EventId::new_v7());
    assert_eq!(
        api.get_json(&unknown, Some(&admin)).await.code(404),
        "EVENT_NOT_FOUND"
    );
    assert_eq!(
        api.get_json("/api/v1/admin/events/nope/stats", Some(&admin))
            .await
            .code(422),
        "VALIDATION"
    );

    // A new event: all stock, no orders.
    let stats: EventStats =
        serde_json::from_value(api.get_json(&path, Some(&admin)).await.ok(200)).expect("stats");
    assert_eq!(
        stats,
        EventStats {
            event_id: event.id,
            inventory: 20,
            remaining: 20,
            orders: OrderCounts::default(),
        }
    );

    // Orders in every state, settled the way the running system settles them.
    let buyers = api.users(4).await;
    let pending = place(&api, &buyers[0], event.id, 1).await;
    let paid = place(&api, &buyers[1], event.id, 2).await;
    let failed = place(&api, &buyers[2], event.id, 3).await;
    let expired = place(&api, &buyers[3], event.id, 4).await;
    place(&api, &buyers[1], event.id, 1).await;
    send_result(
        &api,
        paid,
        payment_id(&api, paid).await,
        PaymentOutcome::Approved,
    )
    .await;
    send_result(
        &api,
        failed,
        payment_id(&api, failed).await,
        PaymentOutcome::Declined,
    )
    .await;
    sqlx::query("UPDATE orders SET hold_expires_at = now() WHERE id = $1")
        .bind(expired.0)
        .execute(&api.pool)
        .await
        .expect("end the hold");
    wait_status(&api, &buyers[1], paid, OrderStatus::Paid).await;
    wait_status(&api, &buyers[2], failed, OrderStatus::PaymentFailed).await;
    wait_status(&api, &buyers[3], expired, OrderStatus::Expired).await;
    wait_status(&api, &buyers[0], pending, OrderStatus::PendingPayment).await;

    let stats: EventStats =
        serde_json::from_value(api.get_json(&path, Some(&admin)).await.ok(200)).expect("stats");
    assert_eq!(
        stats,
        EventStats {
            event_id: event.id,
            inventory: 20,
            // 1 + 2 + 1 held by live orders; the failed and expired ones came back.
            remaining: 16,
            orders: OrderCounts {
                pending_payment: 2,
                paid: 1,
                payment_failed: 1,
                expired: 1,
            },
        }
    );
    // Another event's orders are not counted.
    let other = api.event(5, 1).await;
    let other_stats: EventStats = serde_json::from_value(
        api.get_json(
            &format!("/api/v1/admin/events/{}/stats", other.id),
            Some(&admin),
        )
        .await
        .ok(200),
    )
    .expect("stats");
    assert_eq!(other_stats.orders, OrderCounts::default());
    api.stop().await;
}
