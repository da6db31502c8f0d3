//! The audit log (migration `audit_log`): written in the transaction of the change it
//! records, read newest first. The table refuses updates and deletes.

use flash_protocol::audit::{AuditAction, AuditRecord, Changes};
use flash_protocol::{EventId, UserId};
use sqlx::{PgConnection, PgPool};
use time::OffsetDateTime;
use uuid::Uuid;

/// A record to write.
#[derive(Clone, Debug)]
pub struct Entry {
    /// The operator; `None` for the command line.
    pub actor: Option<UserId>,
    pub action: AuditAction,
    pub event_id: Option<EventId>,
    pub changes: Changes,
    /// Set when the record was relayed from another service, which may send it again.
    pub dedup_id: Option<String>,
}

/// Writes `entry` in the caller's transaction (with the actor's e-mail as it is now); a
/// change that changed nothing, or a relayed record already written, writes nothing.
/// Whether a record was written.
pub async fn record(tx: &mut PgConnection, entry: &Entry) -> Result<bool, sqlx::Error> {
    if entry.changes.is_empty() {
        return Ok(false);
    }
    let changes = serde_json::to_value(&entry.changes).unwrap_or_default();
    let written = sqlx::query(
        "INSERT INTO audit_log (actor, actor_email, action, event_id, changes, dedup_id) \
         SELECT $1, (SELECT email FROM users WHERE id = $1), $2, $3, $4, $5 \
         ON CONFLICT (dedup_id) DO NOTHING",
    )
    .bind(entry.actor.map(|u| u.0))
    .bind(entry.action.as_str())
    .bind(entry.event_id.map(|e| e.0))
    .bind(changes)
    .bind(&entry.dedup_id)
    .execute(tx)
    .await?;
    Ok(written.rows_affected() == 1)
}

#[derive(sqlx::FromRow)]
struct Row {
    id: i64,
    at: OffsetDateTime,
    actor: Option<Uuid>,
    actor_email: Option<String>,
    action: String,
    event_id: Option<Uuid>,
    changes: serde_json::Value,
}

/// At most `limit` records, newest first, of one event or of all; only those older than
/// `before` (a record id) when given.
pub async fn list(
    pool: &PgPool,
    event: Option<EventId>,
    limit: u32,
    before: Option<i64>,
) -> Result<Vec<AuditRecord>, sqlx::Error> {
    let rows: Vec<Row> = sqlx::query_as(
        "SELECT id, at, actor, actor_email, action, event_id, changes FROM audit_log \
         WHERE ($1::uuid IS NULL OR event_id = $1) AND ($2::bigint IS NULL OR id < $2) \
         ORDER BY id DESC LIMIT $3",
    )
    .bind(event.map(|e| e.0))
    .bind(before)
    .bind(i64::from(limit))
    .fetch_all(pool)
    .await?;
    Ok(rows
        .into_iter()
        .filter_map(|row| {
            Some(AuditRecord {
                id: row.id,
                at: row.at,
                actor: row.actor.map(UserId),
                actor_email: row.actor_email,
                // The table's check keeps actions to names; one this build does not know
                // (a newer replica's) is left out rather than misreported.
                action: AuditAction::parse(&row.action)?,
                event_id: row.event_id.map(EventId),
                changes: serde_json::from_value(row.changes).ok()?,
            })
        })
        .collect())
}
