//! Events: public reads, admin create and patch, validation, and the messages they publish.

use flash_protocol::EventId;
use flash_protocol::event::{Event, EventStatus};
use reqwest::Method;
use serde_json::json;

use crate::helpers::{TestApi, new_event};

async fn outbox_types(api: &TestApi) -> Vec<String> {
    sqlx::query_scalar("SELECT message_type FROM outbox ORDER BY id")
        .fetch_all(&api.pool)
        .await
        .expect("outbox")
}

#[tokio::test]
async fn admins_create_events_everyone_reads_them() {
    let api = TestApi::spawn().await;
    let admin = api.admin_token().await;
    let created: Event = serde_json::from_value(
        api.post_json("/api/v1/admin/events", Some(&admin), new_event(100, 4))
            .await
            .ok(201),
    )
    .expect("event");
    assert_eq!(
        (created.inventory, created.remaining, created.max_per_user),
        (100, 100, 4)
    );
    assert_eq!(
        (
            created.status,
            created.currency.as_str(),
            created.price_cents
        ),
        (EventStatus::OnSale, "EUR", 2500)
    );
    assert_eq!(outbox_types(&api).await, ["event.created"]);

    let listed: Vec<Event> =
        serde_json::from_value(api.get_json("/api/v1/events", None).await.ok(200)).expect("list");
    assert_eq!(listed, std::slice::from_ref(&created));
    let one: Event = serde_json::from_value(
        api.get_json(&format!("/api/v1/events/{}", created.id), None)
            .await
            .ok(200),
    )
    .expect("event");
    assert_eq!(one, created);
    let missing = api
        .get_json(&format!("/api/v1/events/{}", EventId::new_v7()), None)
        .await;
    assert_eq!(missing.code(404), "EVENT_NOT_FOUND");
    assert_eq!(
        api.get_json("/api/v1/events/not-a-uuid", None)
            .await
            .code(422),
        "VALIDATION"
    );
    api.stop().await;
}

#[tokio::test]
async fn invalid_events_are_refused_field_by_field() {
    let api = TestApi::spawn().await;
    let admin = api.admin_token().await;
    let cases = [
        ("name", json!("")),
        ("currency", json!("euro")),
        ("price_cents", json!(-5)),
        ("max_per_user", json!(0)),
        ("inventory", json!(20_000_000)),
        ("sale_opens_at", json!("2099-01-01T00:00:00Z")),
    ];
    for (field, value) in cases {
        let mut body = new_event(10, 2);
        body[field] = value;
        let reply = api
            .post_json("/api/v1/admin/events", Some(&admin), body)
            .await;
        assert_eq!(reply.code(422), "VALIDATION", "{field}");
        if reply.body["errors"].is_array() {
            let fields: Vec<&str> = reply.body["errors"]
                .as_array()
                .expect("errors")
                .iter()
                .map(|e| e["field"].as_str().expect("field"))
                .collect();
            assert!(fields.contains(&field), "{field}: {fields:?}");
        }
    }
    let mut body = new_event(10, 2);
    body["queue"]["admit_per_sec"] = json!(0);
    let reply = api
        .post_json("/api/v1/admin/events", Some(&admin), body)
        .await;
    assert_eq!(reply.code(422), "VALIDATION");
    assert_eq!(reply.body["errors"][0]["field"], "queue.admit_per_sec");
    let events: i64 = sqlx::query_scalar("SELECT count(*) FROM events")
        .fetch_one(&api.pool)
        .await
        .expect("count");
    assert_eq!(events, 0, "nothing was created");
    api.stop().await;
}

#[tokio::test]
async fn patches_change_what_they_name_and_keep_stock_consistent() {
    let api = TestApi::spawn().await;
    let admin = api.admin_token().await;
    let event = api.event(10, 5).await;
    // Two tickets held by an order.
    let buyer = api.user().await;
    api.buy(&buyer, event.id, 2, "k1").await.ok(201);

    let path = format!("/api/v1/admin/events/{}", event.id);
    let patched: Event = serde_json::from_value(
        api.call(
            Method::PATCH,
            &path,
            Some(&admin),
            Some(json!({"name": "Renamed", "inventory": 20, "queue": {"max_active": 9}})),
            &[],
        )
        .await
        .ok(200),
    )
    .expect("event");
    assert_eq!(
        (patched.name.as_str(), patched.inventory, patched.remaining),
        ("Renamed", 20, 18)
    );
    assert_eq!(patched.venue, event.venue, "untouched fields stay");

    let below = api
        .call(
            Method::PATCH,
            &path,
            Some(&admin),
            Some(json!({"inventory": 1})),
            &[],
        )
        .await;
    assert_eq!(below.code(422), "VALIDATION");
    assert_eq!(
        api.remaining(event.id).await,
        18,
        "a refused patch changes nothing"
    );

    // Down to exactly what is sold: sold out, and the gateway is told (how many orders are
    // still being paid first, so that its queue holds the line, then the update).
    let sold: Event = serde_json::from_value(
        api.call(
            Method::PATCH,
            &path,
            Some(&admin),
            Some(json!({"inventory": 2})),
            &[],
        )
        .await
        .ok(200),
    )
    .expect("event");
    assert_eq!((sold.remaining, sold.status), (0, EventStatus::SoldOut));
    let types = outbox_types(&api).await;
    assert!(
        types.ends_with(&["event.sold_out".into(), "event.updated".into()]),
        "{types:?}"
    );

    let unknown = api
        .call(
            Method::PATCH,
            &format!("/api/v1/admin/events/{}", EventId::new_v7()),
            Some(&admin),
            Some(json!({"name": "x"})),
            &[],
        )
        .await;
    assert_eq!(unknown.code(404), "EVENT_NOT_FOUND");
    api.stop().await;
}
