//! Orders: buying with a gate token and an idempotency key, and reading one's orders.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use flash_kit::auth::CurrentUser;
use flash_kit::http::{Json, Path};
use flash_protocol::claims::GateClaims;
use flash_protocol::event::bounds::MAX_PER_USER;
use flash_protocol::order::{CreateOrder, GATE_TOKEN_HEADER, IDEMPOTENCY_KEY_HEADER, Order};
use flash_protocol::{ErrorCode, EventId, OrderId};
use flash_tokens::{KeyRing, VerifyError};
use sha2::{Digest, Sha256};

use crate::app::AppState;
use crate::error::ApiError;
use crate::orders::{OrderRequest, Outcome};

/// An idempotency key: 1 to 200 visible ASCII characters.
fn valid_key(key: &str) -> bool {
    (1..=200).contains(&key.len()) && key.bytes().all(|b| b.is_ascii_graphic())
}

/// The request's `Idempotency-Key`, or 422 `VALIDATION` naming the header when it is missing
/// or not 1 to 200 visible ASCII characters.
pub fn idempotency_key(headers: &HeaderMap) -> Result<&str, ApiError> {
    headers
        .get(IDEMPOTENCY_KEY_HEADER)
        .and_then(|v| v.to_str().ok())
        .filter(|k| valid_key(k))
        .ok_or_else(|| {
            ApiError::field(
                IDEMPOTENCY_KEY_HEADER,
                "required: 1 to 200 visible ASCII characters",
            )
        })
}

/// The claims of the request's `Gate-Token`, verified with `keys`: `GATE_TOKEN_INVALID` when
/// it is missing or not a valid token from the gateway, `GATE_TOKEN_EXPIRED` when its
/// admission window has passed.
pub async fn gate_token(keys: &KeyRing, headers: &HeaderMap) -> Result<GateClaims, ApiError> {
    let gate = headers
        .get(GATE_TOKEN_HEADER)
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| {
            ApiError::client(
                ErrorCode::GateTokenInvalid,
                "The Gate-Token header is required",
            )
        })?;
    keys.verify(gate).await.map_err(|e| match e {
        VerifyError::Expired => ApiError::client(
            ErrorCode::GateTokenExpired,
            "The admission window has passed; queue again",
        ),
        VerifyError::UnknownKey | VerifyError::Invalid(_) => ApiError::client(
            ErrorCode::GateTokenInvalid,
            "The gate token is not a valid token from the gateway",
        ),
    })
}

/// Buys tickets with the gate token of an admission. The same `Idempotency-Key` with the same
/// body answers the same order (200) however often it is sent.
#[utoipa::path(post, path = "/api/v1/events/{id}/orders", operation_id = "createOrder", tag = "orders",
    params(
        ("id" = EventId, Path, description = "The event"),
        ("Gate-Token" = String, Header, description = "The gate token of the buyer's admission to this event"),
        ("Idempotency-Key" = String, Header, description = "1 to 200 visible ASCII characters, one per purchase"),
    ),
    request_body = CreateOrder,
    security(("bearer" = [])),
    responses(
        (status = 201, description = "The order, pending payment", body = Order),
        (status = 200, description = "The order this idempotency key made before", body = Order),
        (status = 403, description = "`GATE_TOKEN_INVALID`, `GATE_TOKEN_EXPIRED`, `GATE_TOKEN_USED`, `GATE_TOKEN_MISMATCH`", body = flash_protocol::Problem, content_type = "application/problem+json"),
        (status = 404, description = "`EVENT_NOT_FOUND`", body = flash_protocol::Problem, content_type = "application/problem+json"),
        (status = 409, description = "`SOLD_OUT`, `LIMIT_EXCEEDED`, `IDEMPOTENCY_KEY_REUSED`", body = flash_protocol::Problem, content_type = "application/problem+json"),
        (status = 429, description = "`RATE_LIMITED`: wait for the seconds in `Retry-After`", body = flash_protocol::Problem, content_type = "application/problem+json", headers(("Retry-After" = u64, description = "Seconds to wait"))),
    ))]
pub async fn create(
    State(state): State<AppState>,
    CurrentUser(claims): CurrentUser,
    Path(event): Path<EventId>,
    headers: HeaderMap,
    Json(body): Json<CreateOrder>,
) -> Result<(StatusCode, Json<Order>), ApiError> {
    state.limits.order(claims.sub).await?;
    if !MAX_PER_USER.contains(&body.quantity) {
        return Err(ApiError::field(
            "quantity",
            format!(
                "must be between {} and {}",
                MAX_PER_USER.start(),
                MAX_PER_USER.end()
            ),
        ));
    }
    let key = idempotency_key(&headers)?.to_owned();
    let gate = gate_token(&state.gate_keys, &headers).await?;
    if gate.sub != claims.sub || gate.evt != event {
        return Err(ApiError::client(
            ErrorCode::GateTokenMismatch,
            "The gate token is for another user or event",
        ));
    }
    let request = OrderRequest {
        user: claims.sub,
        event,
        quantity: body.quantity,
        jti: gate.jti,
        idempotency_key: key,
        request_hash: Sha256::digest(format!("{event}|{}", body.quantity).as_bytes()).to_vec(),
    };
    let outcome = state.orders.take(request).await?;
    ::metrics::counter!("api_orders_total", "outcome" => outcome.label()).increment(1);
    match outcome {
        Outcome::Created(order) => Ok((StatusCode::CREATED, Json(order))),
        Outcome::Replayed(order) => Ok((StatusCode::OK, Json(order))),
        Outcome::Refused(code, detail) => Err(ApiError::client(code, detail)),
    }
}

/// One of the caller's orders.
#[utoipa::path(get, path = "/api/v1/orders/{id}", operation_id = "getOrder", tag = "orders",
    params(("id" = OrderId, Path, description = "The order")),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The order", body = Order),
        (status = 404, description = "`ORDER_NOT_FOUND`: no such order of this user", body = flash_protocol::Problem, content_type = "application/problem+json"),
    ))]
pub async fn get(
    State(state): State<AppState>,
    CurrentUser(claims): CurrentUser,
    Path(id): Path<OrderId>,
) -> Result<Json<Order>, ApiError> {
    crate::db::orders::get(&state.db, claims.sub.0, id.0)
        .await?
        .map(|row| Json(row.to_order()))
        .ok_or_else(|| ApiError::client(ErrorCode::OrderNotFound, "No such order"))
}

/// The caller's orders, newest first (the latest 500).
#[utoipa::path(get, path = "/api/v1/me/orders", operation_id = "listMyOrders", tag = "orders",
    security(("bearer" = [])),
    responses((status = 200, description = "The orders", body = Vec<Order>)))]
pub async fn mine(
    State(state): State<AppState>,
    CurrentUser(claims): CurrentUser,
) -> Result<Json<Vec<Order>>, ApiError> {
    Ok(Json(
        crate::db::orders::of_user(&state.db, claims.sub.0)
            .await?
            .iter()
            .map(crate::db::orders::OrderRow::to_order)
            .collect(),
    ))
}
