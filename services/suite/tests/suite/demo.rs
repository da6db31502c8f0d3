//! The demo event of `make up` (`FLASH_DEMO_EVENT=true`): created through the api's own path
//! so the gateway hears of it, kept across restarts, announced again to an emptied Redis, and
//! replaced by a fresh one once it has sold out.

use flash_kit::testing::Running;
use flash_protocol::EventId;
use flash_protocol::queue::QueueState;
use flash_suite::Suite;
use flash_suite::demo::{DEMO_NAME, Demo};

use crate::helpers::{ADMIN_EMAIL, ADMIN_PASSWORD, Stores, call, eventually, login};

/// Builds and serves a suite with the demo event on; what start-up did, and the origin.
async fn start(stores: &Stores) -> (Demo, Running, flash_gateway::waiting_room::WaitingRoom) {
    let mut suite = Suite::build(stores.suite_config())
        .await
        .expect("suite builds");
    let demo = suite.ensure_demo_event().await.expect("a demo event");
    assert_eq!(suite.demo, Some(demo));
    let room = suite.gateway.state.room.clone();
    let origin = Running::spawn(suite.origin_addr().port(), |shutdown| {
        suite.run_until(shutdown)
    });
    (demo, origin, room)
}

/// Waits until the gateway has a queue for the event (it learns through the outbox relay).
async fn known_to_gateway(room: &flash_gateway::waiting_room::WaitingRoom, event: EventId) {
    eventually("the gateway knows the demo event", || async {
        room.stats(event).await.ok().flatten().map(|_| ())
    })
    .await;
}

async fn demo_events(base: &str) -> Vec<serde_json::Value> {
    let client = reqwest::Client::new();
    let (status, events) = call(&client, client.get(format!("{base}/api/v1/events"))).await;
    assert_eq!(status, 200, "{events}");
    events
        .as_array()
        .expect("a list")
        .iter()
        .filter(|e| e["name"] == DEMO_NAME)
        .cloned()
        .collect()
}

/// Deletes every Redis key of the test's prefix (an emptied Redis).
fn empty_redis(stores: &Stores) {
    let client = redis::Client::open(stores.redis.url.as_str()).expect("redis url");
    let mut conn = client.get_connection().expect("redis");
    let deleted =
        flash_kit::testing::delete_prefixed(&mut conn, &stores.redis.prefix).expect("delete");
    assert!(deleted.keys > 0, "the queue had keys");
}

#[tokio::test]
async fn the_demo_event_is_on_sale_at_start_and_kept_across_restarts() {
    let stores = Stores::new().await;

    // First start: created, on sale, and the gateway takes buyers for it.
    let (demo, origin, room) = start(&stores).await;
    let Demo::Created(first) = demo else {
        panic!("a fresh database gets a new demo event, not {demo:?}");
    };
    known_to_gateway(&room, first).await;
    let stats = room.stats(first).await.expect("redis").expect("queue");
    assert_eq!(stats.state, QueueState::Open);
    assert_eq!(stats.admit_per_sec, 1, "slow enough to watch the line move");
    let listed = demo_events(&origin.base).await;
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(listed[0]["id"], first.to_string());
    assert_eq!(listed[0]["status"], "on_sale");
    assert_eq!(listed[0]["remaining"], listed[0]["inventory"]);
    origin.stop().await;

    // A restart keeps it: no second demo event.
    let (demo, origin, _) = start(&stores).await;
    assert_eq!(demo, Demo::Kept(first));
    assert_eq!(demo_events(&origin.base).await.len(), 1);
    origin.stop().await;

    // Redis was emptied meanwhile: the same event is announced to the gateway again.
    empty_redis(&stores);
    let (demo, origin, room) = start(&stores).await;
    assert_eq!(demo, Demo::Announced(first));
    known_to_gateway(&room, first).await;

    // It sells out (the operator takes the stock away): the next start puts a new one on sale
    // and leaves the sold-out one listed as it is.
    let client = reqwest::Client::new();
    let admin = login(&client, &origin.base, ADMIN_EMAIL, ADMIN_PASSWORD).await;
    let (status, body) = call(
        &client,
        client
            .patch(format!("{}/api/v1/admin/events/{first}", origin.base))
            .bearer_auth(&admin)
            .json(&serde_json::json!({"inventory": 0})),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "sold_out");
    origin.stop().await;

    let (demo, origin, room) = start(&stores).await;
    let Demo::Created(second) = demo else {
        panic!("a sold-out demo is replaced, not {demo:?}");
    };
    assert_ne!(second, first);
    known_to_gateway(&room, second).await;
    let mut statuses: Vec<(String, String)> = demo_events(&origin.base)
        .await
        .iter()
        .map(|e| {
            (
                e["id"].as_str().unwrap_or_default().to_owned(),
                e["status"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    statuses.sort_by_key(|(id, _)| *id != first.to_string());
    assert_eq!(
        statuses,
        [
            (first.to_string(), "sold_out".to_owned()),
            (second.to_string(), "on_sale".to_owned())
        ]
    );
    origin.stop().await;
}

#[tokio::test]
async fn without_the_setting_there_is_no_demo_event() {
    let stores = Stores::new().await;
    let suite = Suite::build(stores.suite_config())
        .await
        .expect("suite builds");
    assert_eq!(suite.demo, None);
    let origin = Running::spawn(suite.origin_addr().port(), |shutdown| {
        suite.run_until(shutdown)
    });
    assert!(demo_events(&origin.base).await.is_empty());
    origin.stop().await;
}
