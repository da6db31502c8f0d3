//! The operators' audit log.

use axum::extract::State;
use flash_kit::auth::AdminUser;
use flash_kit::http::{Json, Query};
use flash_protocol::EventId;
use flash_protocol::audit::{AuditRecord, DEFAULT_LIMIT, LIMIT};
use serde::Deserialize;

use crate::app::AppState;
use crate::error::{ApiError, Validator};

/// Which records to read.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AuditQuery {
    /// Only this event's records.
    pub event_id: Option<EventId>,
    /// At most this many (1–1000, default 100).
    pub limit: Option<u32>,
    /// Only records older than this one (its `id`): the next page back.
    pub before: Option<i64>,
}

/// Every change operators made to sales, newest first (admin): event creations and updates
/// in the api, queue settings changed in the gateway, admin grants.
#[utoipa::path(get, path = "/api/v1/admin/audit", operation_id = "listAudit", tag = "admin",
    params(AuditQuery),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The records, newest first", body = Vec<AuditRecord>),
        (status = 403, description = "`FORBIDDEN`: not an admin", body = flash_protocol::Problem, content_type = "application/problem+json"),
        (status = 422, description = "`VALIDATION`: `limit` outside 1–1000, or an id that is not one", body = flash_protocol::Problem, content_type = "application/problem+json"),
    ))]
pub async fn list(
    State(state): State<AppState>,
    AdminUser(_): AdminUser,
    Query(query): Query<AuditQuery>,
) -> Result<Json<Vec<AuditRecord>>, ApiError> {
    let limit = query.limit.unwrap_or(DEFAULT_LIMIT);
    let mut v = Validator::default();
    v.check(
        LIMIT.contains(&limit),
        "limit",
        format!("must be between {} and {}", LIMIT.start(), LIMIT.end()),
    );
    v.finish()?;
    Ok(Json(
        crate::db::audit::list(&state.db, query.event_id, limit, query.before).await?,
    ))
}
