//! Consumer of the gateway's queue changes (`api.audit`, `queue.updated`): each is written to
//! the audit log once, by its record id, however often it arrives (the gateway relays at least
//! once). Acknowledged only after the record is committed.

use std::sync::Arc;

use flash_kit::amqp::{Broker, Disposition, consume, decode_delivery};
use flash_protocol::audit::AuditAction;
use flash_protocol::messages::{Queue, QueueUpdated};
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

use crate::db::audit::{self, Entry};

/// Records handled at once.
const PREFETCH: u16 = 16;

/// Writes one relayed change; whether it was new.
pub async fn apply(pool: &PgPool, update: &QueueUpdated) -> Result<bool, sqlx::Error> {
    let mut tx = pool.begin().await?;
    let written = audit::record(
        &mut tx,
        &Entry {
            actor: Some(update.actor),
            action: AuditAction::QueueUpdate,
            event_id: Some(update.event_id),
            changes: update.changes.clone(),
            dedup_id: Some(update.id.clone()),
        },
    )
    .await?;
    tx.commit().await?;
    Ok(written)
}

/// Consumes the gateway's queue changes until `stop`.
pub async fn run(pool: PgPool, broker: Arc<Broker>, stop: CancellationToken) {
    consume(
        broker,
        Queue::ApiAudit,
        "flash-api-audit",
        PREFETCH,
        stop,
        move |delivery| {
            let pool = pool.clone();
            async move {
                let update =
                    match decode_delivery::<QueueUpdated>(&delivery.properties, &delivery.data) {
                        Ok(update) => update,
                        Err(error) => {
                            tracing::error!(%error, "undecodable audit record dropped");
                            ::metrics::counter!("api_audit_records_total", "written" => "poison")
                                .increment(1);
                            return Disposition::Reject;
                        }
                    };
                match apply(&pool, &update).await {
                    Ok(written) => {
                        let label = if written { "new" } else { "duplicate" };
                        ::metrics::counter!("api_audit_records_total", "written" => label)
                            .increment(1);
                        Disposition::Ack
                    }
                    Err(error) => {
                        tracing::warn!(%error, "cannot write an audit record; redelivering");
                        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
                        Disposition::Requeue
                    }
                }
            }
        },
    )
    .await;
}
