//! The gateway's HTTP routes under `/queue` (CONTRACT.md, "gateway").

use std::sync::Arc;

use axum::Router;
use axum::extract::ws::WebSocketUpgrade;
use axum::extract::{FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post};
use flash_kit::auth::{AdminUser, CurrentUser};
use flash_kit::http::{Json, Path};
use flash_protocol::error::FieldError;
use flash_protocol::queue::{QueuePatch, QueueStats, Ticket};
use flash_protocol::{EventId, UserId};

use crate::app::AppState;
use crate::error::ApiError;
use crate::ticket::Absent;
use crate::waiting_room::Joined;
use crate::ws::{self, SocketContext};

/// The public routes (without the common layers).
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/queue/.well-known/jwks.json", get(jwks))
        .route("/queue/v1/events/{id}/join", post(join))
        .route("/queue/v1/events/{id}/status", get(status))
        .route("/queue/v1/events/{id}/leave", post(leave))
        .route("/queue/v1/events/{id}/ws", get(websocket))
        .route(
            "/queue/v1/admin/events/{id}",
            get(admin_stats).patch(admin_patch),
        )
        .route("/queue/{*rest}", any(flash_kit::http::not_found))
        .with_state(state)
}

/// The client's address (the last `X-Forwarded-For` entry behind the load balancer).
struct ClientIp(std::net::IpAddr);

impl FromRequestParts<AppState> for ClientIp {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        Ok(Self(flash_kit::limits::client_ip(
            parts,
            state.trust_forwarded_for,
        )))
    }
}

/// A signed-in caller within the rate limits (per user and per client IP); a caller over them
/// is answered 429 before the handler runs.
struct Limited(UserId);

impl FromRequestParts<AppState> for Limited {
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let CurrentUser(claims) = CurrentUser::from_request_parts(parts, state)
            .await
            .map_err(IntoResponse::into_response)?;
        let ClientIp(ip) = ClientIp::from_request_parts(parts, state)
            .await
            .unwrap_or_else(|never| match never {});
        state
            .limits
            .check(claims.sub, ip)
            .map_err(IntoResponse::into_response)?;
        Ok(Self(claims.sub))
    }
}

async fn jwks(State(state): State<AppState>) -> Response {
    (
        [(header::CACHE_CONTROL, "public, max-age=300")],
        Json(state.gate.jwks().clone()),
    )
        .into_response()
}

/// The user's ticket as it stands now.
async fn ticket(state: &AppState, event: EventId, user: UserId) -> Result<Ticket, ApiError> {
    let snapshot = state.room.snapshot(event, user).await?;
    ticket_of(state, event, user, &snapshot)
}

/// The ticket a snapshot describes.
fn ticket_of(
    state: &AppState,
    event: EventId,
    user: UserId,
    snapshot: &crate::waiting_room::Snapshot,
) -> Result<Ticket, ApiError> {
    let standing = crate::ticket::standing(snapshot).map_err(|absent| match absent {
        Absent::NoSuchQueue | Absent::NotInQueue => ApiError::NotInQueue,
    })?;
    let gate = standing.gate(&state.gate, event, user)?;
    Ok(standing.ticket(event, gate))
}

async fn join(
    State(state): State<AppState>,
    Limited(user): Limited,
    Path(event): Path<EventId>,
) -> Result<Json<Ticket>, ApiError> {
    let (outcome, snapshot) = state.room.join(event, user).await?;
    let label = match outcome {
        Joined::Missing => "missing",
        Joined::Closed => "closed",
        Joined::Place { new: true, .. } => "joined",
        Joined::Place { new: false, .. } => "again",
    };
    ::metrics::counter!("gateway_joins_total", "outcome" => label).increment(1);
    match outcome {
        Joined::Missing => Err(ApiError::EventNotFound),
        Joined::Closed => Err(ApiError::QueueClosed),
        Joined::Place { .. } => Ok(Json(ticket_of(&state, event, user, &snapshot)?)),
    }
}

async fn status(
    State(state): State<AppState>,
    Limited(user): Limited,
    Path(event): Path<EventId>,
) -> Result<Json<Ticket>, ApiError> {
    Ok(Json(ticket(&state, event, user).await?))
}

async fn leave(
    State(state): State<AppState>,
    CurrentUser(claims): CurrentUser,
    Path(event): Path<EventId>,
) -> Result<StatusCode, ApiError> {
    state.limits.leave(claims.sub).await?;
    if state.room.leave(event, claims.sub).await? {
        ::metrics::counter!("gateway_leaves_total").increment(1);
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::NotInQueue)
    }
}

async fn websocket(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    Path(event): Path<EventId>,
    upgrade: WebSocketUpgrade,
) -> Response {
    if let Err(refused) = state.limits.websocket_from(ip).await {
        return refused.into_response();
    }
    let context = SocketContext {
        event,
        room: state.room.clone(),
        hub: Arc::clone(&state.hub),
        auth: Arc::clone(&state.auth),
        gate: Arc::clone(&state.gate),
        limits: Arc::clone(&state.limits),
        shutdown: state.shutdown.clone(),
        auth_deadline: state.ws_auth_timeout,
    };
    ws::limited(upgrade).on_upgrade(move |socket| ws::run(socket, context))
}

async fn admin_stats(
    State(state): State<AppState>,
    AdminUser(_): AdminUser,
    Path(event): Path<EventId>,
) -> Result<Json<QueueStats>, ApiError> {
    state
        .room
        .stats(event)
        .await?
        .map(Json)
        .ok_or(ApiError::EventNotFound)
}

use flash_protocol::event::bounds::{ADMISSION_TTL_S, ADMIT_PER_SEC, MAX_ACTIVE};

fn validate(patch: &QueuePatch) -> Result<(), ApiError> {
    let mut errors = Vec::new();
    let mut check = |name: &str, value: Option<u32>, range: std::ops::RangeInclusive<u32>| {
        if let Some(value) = value.filter(|v| !range.contains(v)) {
            errors.push(FieldError {
                field: name.to_owned(),
                message: format!(
                    "must be between {} and {} (got {value})",
                    range.start(),
                    range.end()
                ),
            });
        }
    };
    check("admit_per_sec", patch.admit_per_sec, ADMIT_PER_SEC);
    check("max_active", patch.max_active, MAX_ACTIVE);
    check("admission_ttl_s", patch.admission_ttl_s, ADMISSION_TTL_S);
    if errors.is_empty() {
        Ok(())
    } else {
        Err(ApiError::Validation(errors))
    }
}

async fn admin_patch(
    State(state): State<AppState>,
    AdminUser(admin): AdminUser,
    Path(event): Path<EventId>,
    Json(patch): Json<QueuePatch>,
) -> Result<Json<QueueStats>, ApiError> {
    validate(&patch)?;
    if !state.room.patch(event, &patch).await? {
        return Err(ApiError::EventNotFound);
    }
    tracing::info!(%event, admin = %admin.sub, ?patch, "queue settings changed");
    state
        .room
        .stats(event)
        .await?
        .map(Json)
        .ok_or(ApiError::EventNotFound)
}
