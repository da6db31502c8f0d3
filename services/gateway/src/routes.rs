//! The gateway's HTTP routes under `/queue` (docs/contract.md), and the OpenAPI document made
//! from them: each route is registered with its handler's `#[utoipa::path]`, so the document
//! lists exactly the routes that are served.

use std::sync::Arc;

use axum::Router;
use axum::extract::ws::WebSocketUpgrade;
use axum::extract::{FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};
use flash_kit::auth::{AdminUser, CurrentUser};
use flash_kit::http::{Json, Path};
use flash_protocol::error::FieldError;
use flash_protocol::queue::{QueuePatch, QueueStats, Ticket};
use flash_protocol::{EventId, UserId};
use utoipa::OpenApi as _;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::app::AppState;
use crate::error::ApiError;
use crate::ticket::Absent;
use crate::waiting_room::{Joined, Lacking, Patched};
use crate::ws::{self, SocketContext};

/// Where the gateway serves its OpenAPI document.
pub const OPENAPI_PATH: &str = "/queue/openapi.json";

#[derive(utoipa::OpenApi)]
#[openapi(
    info(
        title = "Flash Tickets gateway",
        description = "The waiting room: join, wait (WebSocket or polling), be admitted with a \
                       gate token for the api's orders (`/api/openapi.json`). Errors are \
                       `application/problem+json` with a stable `code`.",
        license(name = "Apache-2.0", identifier = "Apache-2.0"),
    ),
    tags(
        (name = "queue", description = "A buyer's place in an event's queue"),
        (name = "tokens", description = "The keys of the gate tokens"),
        (name = "admin", description = "Queues as operators watch and steer them"),
    )
)]
struct GatewayDoc;

fn documented() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(GatewayDoc::openapi())
        .routes(routes!(jwks))
        .routes(routes!(challenge))
        .routes(routes!(join))
        .routes(routes!(status))
        .routes(routes!(leave))
        .routes(routes!(websocket))
        .routes(routes!(fairness))
        .routes(routes!(participants))
        .routes(routes!(admin_stats, admin_patch))
}

/// The served routes and the document describing them.
fn parts() -> (Router<AppState>, utoipa::openapi::OpenApi) {
    flash_kit::http::split_documented(documented())
}

/// The gateway's OpenAPI 3.1 document.
#[must_use]
pub fn openapi() -> utoipa::openapi::OpenApi {
    parts().1
}

/// The public routes (without the common layers), with the document at [`OPENAPI_PATH`].
pub fn router(state: AppState) -> Router {
    let (routes, doc) = parts();
    routes
        .route(OPENAPI_PATH, get(flash_kit::http::json_document(&doc)))
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

/// The public keys that verify the gateway's gate tokens (Ed25519, by `kid`).
#[utoipa::path(get, path = "/queue/.well-known/jwks.json", operation_id = "getGateKeys", tag = "tokens",
    responses((status = 200, description = "The key set; cacheable for 5 minutes", body = flash_tokens::Jwks)))]
async fn jwks(State(state): State<AppState>) -> Response {
    (
        [(header::CACHE_CONTROL, "public, max-age=300")],
        Json(state.gate.jwks().clone()),
    )
        .into_response()
}

/// The user's ticket as it stands now.
async fn ticket(state: &AppState, event: EventId, user: UserId) -> Result<Ticket, ApiError> {
    let snapshot = state.statuses.call(&state.room, event, user).await?;
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
    Ok(standing.ticket(event, user, gate))
}

/// A challenge to solve before joining, when the queue asks for one (its difficulty is above
/// 0): find a `nonce` such that SHA-256 of `challenge + ":" + nonce` starts with `difficulty`
/// zero bits, and join with both. Valid for 180 s, once, for this user and event.
#[utoipa::path(get, path = "/queue/v1/events/{id}/challenge", operation_id = "getJoinChallenge", tag = "queue",
    params(("id" = EventId, Path, description = "The event")),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "A challenge bound to this user and event", body = flash_protocol::challenge::Challenge),
        (status = 404, description = "`EVENT_NOT_FOUND`", body = flash_protocol::Problem, content_type = "application/problem+json"),
        (status = 409, description = "`QUEUE_CLOSED`: sold out or ended", body = flash_protocol::Problem, content_type = "application/problem+json"),
        (status = 429, description = "`RATE_LIMITED`: wait for the seconds in `Retry-After`", body = flash_protocol::Problem, content_type = "application/problem+json", headers(("Retry-After" = u64, description = "Seconds to wait"))),
    ))]
async fn challenge(
    State(state): State<AppState>,
    Limited(user): Limited,
    Path(event): Path<EventId>,
) -> Result<Response, ApiError> {
    let Some((queue, difficulty)) = state.room.challenge_difficulty(event).await? else {
        return Err(ApiError::EventNotFound);
    };
    if queue == crate::waiting_room::RawState::Closed {
        return Err(ApiError::QueueClosed);
    }
    let challenge = state
        .challenges
        .issue(event, user, difficulty, time::OffsetDateTime::now_utc())
        .map_err(|_| {
            ApiError::Store(crate::waiting_room::RoomError::Protocol(
                "the system gave no randomness".into(),
            ))
        })?;
    Ok(([(header::CACHE_CONTROL, "no-store")], Json(challenge)).into_response())
}

/// Takes a place in the event's queue, or gives back the place the user holds (joining again
/// is free and changes nothing). When the queue asks for a challenge, a newcomer sends a
/// solved one; someone who holds a place never solves again. Before the sale opens the place is in the pre-queue, numbered
/// at opening in the order of a draw fixed when the queue was created; after, numbers follow
/// arrival.
#[utoipa::path(post, path = "/queue/v1/events/{id}/join", operation_id = "joinQueue", tag = "queue",
    params(("id" = EventId, Path, description = "The event")),
    request_body(content = Option<flash_protocol::challenge::JoinProof>, description = "A solved challenge; needed by a newcomer when the queue's difficulty is above 0, ignored at 0"),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The user's ticket", body = Ticket),
        (status = 403, description = "`CHALLENGE_FAILED`: wrong nonce, forged, someone else's or used", body = flash_protocol::Problem, content_type = "application/problem+json"),
        (status = 404, description = "`EVENT_NOT_FOUND`", body = flash_protocol::Problem, content_type = "application/problem+json"),
        (status = 409, description = "`QUEUE_CLOSED`: sold out or ended", body = flash_protocol::Problem, content_type = "application/problem+json"),
        (status = 428, description = "`CHALLENGE_REQUIRED`: solve a challenge (none sent, or it expired)", body = flash_protocol::Problem, content_type = "application/problem+json"),
        (status = 429, description = "`RATE_LIMITED`: wait for the seconds in `Retry-After`", body = flash_protocol::Problem, content_type = "application/problem+json", headers(("Retry-After" = u64, description = "Seconds to wait"))),
    ))]
async fn join(
    State(state): State<AppState>,
    Limited(user): Limited,
    Path(event): Path<EventId>,
    proof: Option<Json<flash_protocol::challenge::JoinProof>>,
) -> Result<Json<Ticket>, ApiError> {
    let proof = state.challenges.verify(
        proof.as_ref().map(|Json(proof)| proof),
        event,
        user,
        time::OffsetDateTime::now_utc(),
    );
    let (outcome, snapshot) = state.joins.call(&state.room, event, (user, proof)).await?;
    let label = match outcome {
        Joined::Missing => "missing",
        Joined::Closed => "closed",
        Joined::Challenge(_) => "challenged",
        Joined::Place { new: true, .. } => "joined",
        Joined::Place { new: false, .. } => "again",
    };
    ::metrics::counter!("gateway_joins_total", "outcome" => label).increment(1);
    match outcome {
        Joined::Missing => Err(ApiError::EventNotFound),
        Joined::Closed => Err(ApiError::QueueClosed),
        Joined::Challenge(Lacking::Required) => Err(ApiError::ChallengeRequired),
        Joined::Challenge(Lacking::Failed) => Err(ApiError::ChallengeFailed),
        Joined::Challenge(Lacking::Invalid) => Err(ApiError::Validation(vec![FieldError {
            field: "nonce".into(),
            message: flash_protocol::challenge::BadNonce.to_string(),
        }])),
        Joined::Place { .. } => Ok(Json(ticket_of(&state, event, user, &snapshot)?)),
    }
}

/// The user's ticket as it stands: position, estimate, or the gate token once admitted. For
/// clients without WebSockets (poll every few seconds).
#[utoipa::path(get, path = "/queue/v1/events/{id}/status", operation_id = "getQueueStatus", tag = "queue",
    params(("id" = EventId, Path, description = "The event")),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The user's ticket", body = Ticket),
        (status = 404, description = "`NOT_IN_QUEUE`", body = flash_protocol::Problem, content_type = "application/problem+json"),
        (status = 429, description = "`RATE_LIMITED`: wait for the seconds in `Retry-After`", body = flash_protocol::Problem, content_type = "application/problem+json", headers(("Retry-After" = u64, description = "Seconds to wait"))),
    ))]
async fn status(
    State(state): State<AppState>,
    Limited(user): Limited,
    Path(event): Path<EventId>,
) -> Result<Json<Ticket>, ApiError> {
    Ok(Json(ticket(&state, event, user).await?))
}

/// Gives up the user's place (and any admission not yet used); the user's sockets are closed
/// with 4404.
#[utoipa::path(post, path = "/queue/v1/events/{id}/leave", operation_id = "leaveQueue", tag = "queue",
    params(("id" = EventId, Path, description = "The event")),
    security(("bearer" = [])),
    responses(
        (status = 204, description = "The place is given up"),
        (status = 404, description = "`NOT_IN_QUEUE`", body = flash_protocol::Problem, content_type = "application/problem+json"),
        (status = 429, description = "`RATE_LIMITED`: wait for the seconds in `Retry-After`", body = flash_protocol::Problem, content_type = "application/problem+json", headers(("Retry-After" = u64, description = "Seconds to wait"))),
    ))]
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

/// The queue's WebSocket: the first frame is `auth` with the access token, then the server
/// sends `position`, `admitted` and `closed` frames (docs/asyncapi.json describes them).
#[utoipa::path(get, path = "/queue/v1/events/{id}/ws", operation_id = "openQueueSocket", tag = "queue",
    params(("id" = EventId, Path, description = "The event")),
    responses(
        (status = 101, description = "Switching to the WebSocket protocol"),
        (status = 429, description = "`RATE_LIMITED`: wait for the seconds in `Retry-After`", body = flash_protocol::Problem, content_type = "application/problem+json", headers(("Retry-After" = u64, description = "Seconds to wait"))),
    ))]
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
        drain: state.ws_drain,
    };
    let sockets = state.sockets.clone();
    ws::limited(upgrade).on_upgrade(move |socket| sockets.track_future(ws::run(socket, context)))
}

/// The event's draw (`sha256-commit-reveal-v1`): the commitment to its secret seed from the
/// start, and from the opening on the seed and the participants file, so that anyone can
/// recompute the pre-queue's order (docs/contract.md, "The draw"). Public.
#[utoipa::path(get, path = "/queue/v1/events/{id}/fairness", operation_id = "getQueueFairness", tag = "queue",
    params(("id" = EventId, Path, description = "The event")),
    responses(
        (status = 200, description = "The draw's record", body = flash_protocol::draw::Fairness),
        (status = 404, description = "`EVENT_NOT_FOUND`", body = flash_protocol::Problem, content_type = "application/problem+json"),
        (status = 429, description = "`RATE_LIMITED`: wait for the seconds in `Retry-After`", body = flash_protocol::Problem, content_type = "application/problem+json", headers(("Retry-After" = u64, description = "Seconds to wait"))),
    ))]
async fn fairness(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    Path(event): Path<EventId>,
) -> Result<Response, ApiError> {
    state.limits.check_address(ip)?;
    match state.draws.record(&state.room, event).await? {
        crate::fairness::Published::Missing => Err(ApiError::EventNotFound),
        crate::fairness::Published::Record(record) => {
            // Unchanging once revealed; before that the seed appears at opening.
            let cache = if record.seed.is_some() {
                "public, max-age=86400"
            } else {
                "public, max-age=1"
            };
            Ok(([(header::CACHE_CONTROL, cache)], Json(record)).into_response())
        }
    }
}

/// The participants of the event's draw: the pseudonyms of the pre-queue at opening in number
/// order, one per line (line i holds number i), each line ending in a newline. Frozen at
/// opening; 404 until then. Public.
#[utoipa::path(get, path = "/queue/v1/events/{id}/participants.txt", operation_id = "getQueueParticipants", tag = "queue",
    params(("id" = EventId, Path, description = "The event")),
    responses(
        (status = 200, description = "The participants file", body = String, content_type = "text/plain"),
        (status = 404, description = "`EVENT_NOT_FOUND`: no queue, or its draw is not revealed yet", body = flash_protocol::Problem, content_type = "application/problem+json"),
        (status = 429, description = "`RATE_LIMITED`: wait for the seconds in `Retry-After`", body = flash_protocol::Problem, content_type = "application/problem+json", headers(("Retry-After" = u64, description = "Seconds to wait"))),
    ))]
async fn participants(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    Path(event): Path<EventId>,
) -> Result<Response, ApiError> {
    state.limits.check_address(ip)?;
    let crate::fairness::Published::Record(record) = state.draws.record(&state.room, event).await?
    else {
        return Err(ApiError::EventNotFound);
    };
    let (Some(total), Some(sha)) = (record.participants_count, record.participants_sha256) else {
        return Err(ApiError::EventNotFound);
    };
    let length = total * flash_protocol::draw::PARTICIPANT_LINE as u64;
    let body =
        axum::body::Body::from_stream(crate::fairness::file(state.room.clone(), event, total));
    Ok((
        [
            (header::CONTENT_TYPE, "text/plain; charset=utf-8".to_owned()),
            (header::CONTENT_LENGTH, length.to_string()),
            (
                header::CACHE_CONTROL,
                "public, max-age=31536000, immutable".to_owned(),
            ),
            (header::ETAG, format!("\"{sha}\"")),
        ],
        body,
    )
        .into_response())
}

/// The queue as operators watch it (admin).
#[utoipa::path(get, path = "/queue/v1/admin/events/{id}", operation_id = "getQueue", tag = "admin",
    params(("id" = EventId, Path, description = "The event")),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The queue", body = QueueStats),
        (status = 403, description = "`FORBIDDEN`: not an admin", body = flash_protocol::Problem, content_type = "application/problem+json"),
        (status = 404, description = "`EVENT_NOT_FOUND`", body = flash_protocol::Problem, content_type = "application/problem+json"),
    ))]
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
    check(
        "challenge_difficulty",
        patch.challenge_difficulty.map(u32::from),
        0..=u32::from(flash_protocol::challenge::MAX_DIFFICULTY),
    );
    if errors.is_empty() {
        Ok(())
    } else {
        Err(ApiError::Validation(errors))
    }
}

/// Changes the queue's settings or pauses and resumes admissions (admin); absent fields stay
/// as they are. These settings are the gateway's from then on.
#[utoipa::path(patch, path = "/queue/v1/admin/events/{id}", operation_id = "updateQueue", tag = "admin",
    params(("id" = EventId, Path, description = "The event")),
    request_body = QueuePatch,
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The queue as it is now", body = QueueStats),
        (status = 403, description = "`FORBIDDEN`: not an admin", body = flash_protocol::Problem, content_type = "application/problem+json"),
        (status = 404, description = "`EVENT_NOT_FOUND`", body = flash_protocol::Problem, content_type = "application/problem+json"),
    ))]
async fn admin_patch(
    State(state): State<AppState>,
    AdminUser(admin): AdminUser,
    Path(event): Path<EventId>,
    Json(patch): Json<QueuePatch>,
) -> Result<Json<QueueStats>, ApiError> {
    validate(&patch)?;
    match state.room.patch(event, admin.sub, &patch).await? {
        Patched::Missing => return Err(ApiError::EventNotFound),
        Patched::AuditBacklog => return Err(ApiError::AuditBacklog),
        Patched::Done { recorded } => {
            if recorded {
                state.audit.written(event).await;
            }
        }
    }
    tracing::info!(%event, admin = %admin.sub, ?patch, "queue settings changed");
    state
        .room
        .stats(event)
        .await?
        .map(Json)
        .ok_or(ApiError::EventNotFound)
}
