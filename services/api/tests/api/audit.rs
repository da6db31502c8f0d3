//! The audit log: every operator change recorded once with who, when and what changed,
//! readable by admins newest first, and refused any change by the database itself.

use flash_protocol::audit::{AuditAction, AuditRecord};
use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::{ADMIN_EMAIL, TestApi};

async fn log(api: &TestApi, admin: &str, query: &str) -> Vec<AuditRecord> {
    serde_json::from_value(
        api.get_json(&format!("/api/v1/admin/audit{query}"), Some(admin))
            .await
            .ok(200),
    )
    .expect("records")
}

#[tokio::test]
async fn creating_and_changing_an_event_is_recorded_once_with_who_and_what() {
    let api = TestApi::spawn().await;
    let admin = api.admin_token().await;
    let event = api.event(100, 2).await;
    let other = api.event(10, 1).await;

    let records = log(&api, &admin, &format!("?event_id={}", event.id)).await;
    assert_eq!(records.len(), 1, "{records:?}");
    let created = &records[0];
    assert_eq!(created.action, AuditAction::EventCreate);
    assert_eq!(created.event_id, Some(event.id));
    assert_eq!(created.actor_email.as_deref(), Some(ADMIN_EMAIL));
    assert!(created.actor.is_some());
    assert_eq!(
        created.changes["name"],
        [Value::Null, json!("Test Concert")]
    );
    assert_eq!(
        created.changes["queue.max_active"],
        [Value::Null, json!(500)]
    );
    assert_eq!(created.changes["inventory"], [Value::Null, json!(100)]);

    // A change records what changed, and only that.
    let path = format!("/api/v1/admin/events/{}", event.id);
    let patch = json!({"name": "Renamed", "queue": {"max_active": 20}, "venue": "Test Hall"});
    api.call(Method::PATCH, &path, Some(&admin), Some(patch.clone()), &[])
        .await
        .ok(200);
    // The same again changes nothing, and records nothing.
    api.call(Method::PATCH, &path, Some(&admin), Some(patch), &[])
        .await
        .ok(200);
    let records = log(&api, &admin, &format!("?event_id={}", event.id)).await;
    assert_eq!(records.len(), 2, "{records:?}");
    let updated = &records[0];
    assert_eq!(updated.action, AuditAction::EventUpdate);
    assert!(
        updated.id > created.id && updated.at >= created.at,
        "newest first"
    );
    assert_eq!(
        serde_json::to_value(&updated.changes).expect("json"),
        json!({"name": ["Test Concert", "Renamed"], "queue.max_active": [500, 20]})
    );

    // Every event's records, newest first, in pages.
    let all = log(&api, &admin, "").await;
    assert!(all.len() >= 3);
    assert!(all.windows(2).all(|w| w[0].id > w[1].id));
    let first = log(&api, &admin, "?limit=1").await;
    assert_eq!(first.len(), 1);
    assert_eq!(first[0].id, all[0].id);
    let older = log(&api, &admin, &format!("?limit=1000&before={}", first[0].id)).await;
    assert_eq!(older.len(), all.len() - 1);
    assert!(older.iter().all(|r| r.id < first[0].id));
    assert!(all.iter().any(|r| r.event_id == Some(other.id)));
    api.stop().await;
}

#[tokio::test]
async fn only_admins_read_the_log_and_bad_queries_are_refused() {
    let api = TestApi::spawn().await;
    let admin = api.admin_token().await;
    let buyer = api.user().await;
    assert_eq!(
        api.get_json("/api/v1/admin/audit", Some(&buyer.access))
            .await
            .code(403),
        "FORBIDDEN"
    );
    assert_eq!(
        api.get_json("/api/v1/admin/audit", None).await.code(401),
        "UNAUTHENTICATED"
    );
    for query in ["?limit=0", "?limit=1001", "?event_id=nope", "?before=x"] {
        assert_eq!(
            api.get_json(&format!("/api/v1/admin/audit{query}"), Some(&admin))
                .await
                .code(422),
            "VALIDATION",
            "{query}"
        );
    }
    api.stop().await;
}

#[tokio::test]
async fn the_database_refuses_to_change_or_delete_a_record() {
    let api = TestApi::spawn().await;
    let admin = api.admin_token().await;
    api.event(5, 1).await;
    for statement in [
        "UPDATE audit_log SET action = 'event.update'",
        "DELETE FROM audit_log",
        "TRUNCATE audit_log",
    ] {
        let refused = sqlx::query(statement).execute(&api.pool).await;
        assert!(refused.is_err(), "{statement} must be refused");
    }
    assert_eq!(
        log(&api, &admin, "").await.len(),
        1,
        "the record is still there"
    );
    api.stop().await;
}

#[tokio::test]
async fn an_admin_grant_from_the_command_line_is_recorded() {
    let api = TestApi::spawn().await;
    let admin = api.admin_token().await;
    let email = format!("lead-{}@flash.test", uuid::Uuid::new_v4().simple());
    api.post_json(
        "/api/v1/auth/register",
        None,
        json!({"email": email, "password": "a long enough password"}),
    )
    .await
    .ok(201);
    let granted = flash_api::bootstrap::grant_admin(&api.pool, &email, "ops")
        .await
        .expect("grant");
    assert!(matches!(granted, flash_api::bootstrap::Grant::Granted(_)));
    // Granting again changes nothing and records nothing.
    flash_api::bootstrap::grant_admin(&api.pool, &email, "ops")
        .await
        .expect("grant");
    let records: Vec<AuditRecord> = log(&api, &admin, "")
        .await
        .into_iter()
        .filter(|r| r.action == AuditAction::AdminGrant)
        .collect();
    assert_eq!(records.len(), 1, "{records:?}");
    let grant = &records[0];
    assert_eq!((grant.actor, grant.actor_email.as_deref()), (None, None));
    assert_eq!(grant.changes["role"], [json!("user"), json!("admin")]);
    assert_eq!(grant.changes["email"], [Value::Null, json!(email)]);
    api.stop().await;
}

/// The gateway's queue changes arrive over RabbitMQ at least once: published while the api
/// was away, they are written when it is back, each record once however often it came.
#[tokio::test]
async fn queue_changes_relayed_while_the_api_was_away_are_recorded_once() {
    use flash_kit::amqp::{Broker, Publisher, declare_topology};
    use flash_protocol::messages::QueueUpdated;
    use flash_protocol::{EventId, UserId};

    let stores = crate::helpers::Stores::new().await;
    let broker = std::sync::Arc::new(
        Broker::connect(&stores.amqp.url, stores.amqp.names.clone())
            .await
            .expect("broker"),
    );
    declare_topology(
        &broker.channel().await.expect("channel"),
        &stores.amqp.names,
    )
    .await
    .expect("topology");
    let publisher = Publisher::new(std::sync::Arc::clone(&broker));
    let (event, operator) = (EventId::new_v7(), UserId::new_v7());
    let change = |id: &str, max_active: u32| QueueUpdated {
        id: id.to_owned(),
        event_id: event,
        actor: operator,
        at: time::OffsetDateTime::now_utc(),
        changes: [(
            "queue.max_active".to_owned(),
            [json!(100), json!(max_active)],
        )]
        .into_iter()
        .collect(),
    };
    let first = uuid::Uuid::now_v7().to_string();
    let second = uuid::Uuid::now_v7().to_string();
    for (id, value) in [(&first, 50), (&first, 50), (&second, 40)] {
        publisher.send(id, &change(id, value)).await.expect("sent");
    }

    let config = stores.config();
    let api = TestApi::spawn_with(config, stores).await;
    let admin = api.admin_token().await;
    let query = format!("?event_id={event}");
    for _ in 0..100 {
        if log(&api, &admin, &query).await.len() >= 2 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    // Give a third, duplicate write every chance to appear.
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let records = log(&api, &admin, &query).await;
    assert_eq!(records.len(), 2, "{records:?}");
    assert!(records.iter().all(|r| r.action == AuditAction::QueueUpdate
        && r.actor == Some(operator)
        && r.actor_email.is_none()));
    // Applied as they come (several at once): each change once, in either order.
    let mut afters: Vec<Value> = records
        .iter()
        .map(|r| r.changes["queue.max_active"][1].clone())
        .collect();
    afters.sort_by_key(Value::as_u64);
    assert_eq!(afters, [json!(40), json!(50)]);
    broker.close().await;
    api.stop().await;
}
