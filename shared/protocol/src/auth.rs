//! Bodies of the api's `/api/v1/auth/*` calls.

use serde::{Deserialize, Serialize};

use crate::ids::UserId;

/// `POST /api/v1/auth/register`.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct RegisterRequest {
    pub email: String,
    pub password: String,
}

/// 201 answer to a registration.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct RegisterResponse {
    pub user_id: UserId,
}

/// `POST /api/v1/auth/login`.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct LoginRequest {
    pub email: String,
    pub password: String,
}

/// `POST /api/v1/auth/refresh`.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct RefreshRequest {
    pub refresh_token: String,
}

/// The token type of every access token.
pub const TOKEN_TYPE_BEARER: &str = "Bearer";

/// 200 answer to login and refresh.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct TokenResponse {
    pub access_token: String,
    pub refresh_token: String,
    /// Always `Bearer`.
    pub token_type: String,
    /// Seconds until the access token expires.
    pub expires_in: u64,
}

// Credentials never reach a log through `Debug`.
macro_rules! redacted_debug {
    ($name:ident { $($shown:ident),* } hides $($hidden:ident),+) => {
        impl std::fmt::Debug for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.debug_struct(stringify!($name))
                    $(.field(stringify!($shown), &self.$shown))*
                    $(.field(stringify!($hidden), &"[redacted]"))+
                    .finish()
            }
        }
    };
}

redacted_debug!(RegisterRequest { email } hides password);
redacted_debug!(LoginRequest { email } hides password);
redacted_debug!(RefreshRequest {} hides refresh_token);
redacted_debug!(TokenResponse { token_type, expires_in } hides access_token, refresh_token);
