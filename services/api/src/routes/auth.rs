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

pub async fn jwks(State(state): State<AppState>) -> Response {
    (
        [(header::CACHE_CONTROL, "public, max-age=300")],
        Json(state.tokens.jwks().clone()),
    )
        .into_response()
}

pub async fn register(
    State(state): State<AppState>,
    Json(body): Json<RegisterRequest>,
) -> Result<(StatusCode, Json<RegisterResponse>), ApiError> {
    let email = body.email.trim();
    validate_registration(email, &body.password)?;
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

pub async fn login(
    State(state): State<AppState>,
    Json(body): Json<LoginRequest>,
) -> Result<Json<TokenResponse>, ApiError> {
    // Oversized input never reaches Argon2.
    if body.email.len() > 254 || body.password.len() > 1024 {
        return Err(invalid_credentials());
    }
    let account = db::users::by_email(&state.db, body.email.trim()).await?;
    let password = SecretString::from(body.password);
    let Some(account) = account else {
        // Same work as a wrong password, so response times do not reveal who has an account.
        state
            .passwords
            .verify(password, state.dummy_hash.to_string())
            .await?;
        return Err(invalid_credentials());
    };
    if !state
        .passwords
        .verify(password, account.password_hash.clone())
        .await?
    {
        return Err(invalid_credentials());
    }
    let tokens = state
        .tokens
        .issue(&state.db, UserId(account.id), account.role(), None)
        .await?;
    ::metrics::counter!("api_logins_total").increment(1);
    Ok(Json(tokens))
}

pub async fn refresh(
    State(state): State<AppState>,
    Json(body): Json<RefreshRequest>,
) -> Result<Json<TokenResponse>, ApiError> {
    Ok(Json(
        state.tokens.refresh(&state.db, &body.refresh_token).await?,
    ))
}
