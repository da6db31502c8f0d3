//! Register, log in, refresh, and the access-token keys.

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use flash_kit::http::Json;
use flash_protocol::ErrorCode;
use flash_protocol::UserId;
use flash_protocol::auth::{
    LoginRequest, RefreshRequest, RegisterRequest, RegisterResponse, TokenResponse,
};
use secrecy::SecretString;

use crate::app::AppState;
use crate::auth::validate_registration;
use crate::db;
use crate::error::ApiError;
use crate::limits::ClientAddr;

/// The public keys that verify the api's access tokens (Ed25519, by `kid`).
#[utoipa::path(get, path = "/api/.well-known/jwks.json", operation_id = "getAccessKeys", tag = "auth",
    responses((status = 200, description = "The key set; cacheable for 5 minutes", body = flash_tokens::Jwks)))]
pub async fn jwks(State(state): State<AppState>) -> Response {
    (
        [(header::CACHE_CONTROL, "public, max-age=300")],
        Json(state.tokens.jwks().clone()),
    )
        .into_response()
}

/// Creates an account (the e-mail is trimmed; the password is 8 to 128 characters).
#[utoipa::path(post, path = "/api/v1/auth/register", operation_id = "register", tag = "auth",
    request_body = RegisterRequest,
    responses(
        (status = 201, description = "The account exists", body = RegisterResponse),
        (status = 409, description = "`EMAIL_TAKEN`", body = flash_protocol::Problem, content_type = "application/problem+json"),
        (status = 429, description = "`RATE_LIMITED`: wait for the seconds in `Retry-After`", body = flash_protocol::Problem, content_type = "application/problem+json", headers(("Retry-After" = u64, description = "Seconds to wait"))),
    ))]
pub async fn register(
    State(state): State<AppState>,
    ClientAddr(ip): ClientAddr,
    Json(body): Json<RegisterRequest>,
) -> Result<(StatusCode, Json<RegisterResponse>), ApiError> {
    let email = body.email.trim();
    validate_registration(email, &body.password)?;
    state.limits.sign_up(ip).await?;
    let hash = state
        .passwords
        .hash(SecretString::from(body.password))
        .await?;
    match db::users::create(&state.db, email, &hash).await? {
        Some(user_id) => {
            ::metrics::counter!("api_users_registered_total").increment(1);
            Ok((StatusCode::CREATED, Json(RegisterResponse { user_id })))
        }
        None => Err(ApiError::client(
            ErrorCode::EmailTaken,
            "An account with this e-mail exists",
        )),
    }
}

fn invalid_credentials() -> ApiError {
    ApiError::client(
        ErrorCode::InvalidCredentials,
        "The e-mail or the password is not right",
    )
}

/// Exchanges an e-mail and password for an access token and a refresh token.
#[utoipa::path(post, path = "/api/v1/auth/login", operation_id = "login", tag = "auth",
    request_body = LoginRequest,
    responses(
        (status = 200, description = "Signed in", body = TokenResponse),
        (status = 401, description = "`INVALID_CREDENTIALS`", body = flash_protocol::Problem, content_type = "application/problem+json"),
        (status = 429, description = "`RATE_LIMITED`: wait for the seconds in `Retry-After`", body = flash_protocol::Problem, content_type = "application/problem+json", headers(("Retry-After" = u64, description = "Seconds to wait"))),
        (status = 503, description = "`UNAVAILABLE`: no password-hashing slot within a short wait, or a store is away; retry after `Retry-After`", body = flash_protocol::Problem, content_type = "application/problem+json", headers(("Retry-After" = u64, description = "Seconds to wait"))),
    ))]
pub async fn login(
    State(state): State<AppState>,
    ClientAddr(ip): ClientAddr,
    Json(body): Json<LoginRequest>,
) -> Result<Json<TokenResponse>, ApiError> {
    // Oversized input never reaches the limits or Argon2.
    if body.email.len() > 254 || body.password.len() > 1024 {
        return Err(invalid_credentials());
    }
    let email = body.email.trim();
    let attempt = state.limits.login(ip, email).await?;
    // The hashing slot first: a login refused for want of one costs no database query.
    let turn = state.passwords.turn().await?;
    let account = db::users::by_email(&state.db, email).await?;
    let password = SecretString::from(body.password);
    // An unknown account costs the same work as a wrong password, so response times do not
    // reveal who has an account.
    let (stored, account) = match account {
        Some(account) => (account.password_hash.clone(), Some(account)),
        None => (state.dummy_hash.to_string(), None),
    };
    let matches = turn.verify(password, stored).await?;
    let Some(account) = account.filter(|_| matches) else {
        state.limits.login_failed(&attempt).await;
        ::metrics::counter!("api_logins_failed_total").increment(1);
        return Err(invalid_credentials());
    };
    state.limits.login_succeeded(&attempt).await;
    let tokens = state
        .tokens
        .issue(&state.db, UserId(account.id), account.role())
        .await?;
    ::metrics::counter!("api_logins_total").increment(1);
    Ok(Json(tokens))
}

/// Exchanges a refresh token (used once) for a new pair of tokens.
#[utoipa::path(post, path = "/api/v1/auth/refresh", operation_id = "refresh", tag = "auth",
    request_body = RefreshRequest,
    responses(
        (status = 200, description = "New tokens; the refresh token sent is spent", body = TokenResponse),
        (status = 401, description = "`INVALID_CREDENTIALS`: unknown, expired or already used refresh token", body = flash_protocol::Problem, content_type = "application/problem+json"),
        (status = 429, description = "`RATE_LIMITED`: wait for the seconds in `Retry-After`", body = flash_protocol::Problem, content_type = "application/problem+json", headers(("Retry-After" = u64, description = "Seconds to wait"))),
    ))]
pub async fn refresh(
    State(state): State<AppState>,
    Json(body): Json<RefreshRequest>,
) -> Result<Json<TokenResponse>, ApiError> {
    Ok(Json(
        state
            .tokens
            .refresh(&state.db, &state.limits, &body.refresh_token)
            .await?,
    ))
}
