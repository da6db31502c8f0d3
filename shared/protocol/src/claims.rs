//! JWT claims of the two kinds of token (both EdDSA / Ed25519, with a `kid` header).

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::ids::{EventId, UserId};

/// `iss` of access tokens.
pub const ACCESS_ISSUER: &str = "flash-api";
/// `aud` of access tokens.
pub const ACCESS_AUDIENCE: &str = "flash";
/// `iss` of gate tokens.
pub const GATE_ISSUER: &str = "flash-gateway";
/// `aud` of gate tokens.
pub const GATE_AUDIENCE: &str = "flash-api";
/// Default lifetime of a gate token, in seconds after admission.
pub const DEFAULT_GATE_TTL_SECS: u64 = 300;

/// What a user may do.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    User,
    Admin,
}

/// Claims of an access token issued by the api.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct AccessClaims {
    pub sub: UserId,
    pub role: Role,
    pub iss: String,
    pub aud: String,
    /// Issued at, seconds since the Unix epoch.
    pub iat: i64,
    /// Expires at, seconds since the Unix epoch.
    pub exp: i64,
}

/// Claims of a gate token issued by the gateway on admission; valid for one order.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct GateClaims {
    pub sub: UserId,
    pub evt: EventId,
    /// Unique per admission; the api consumes it once.
    pub jti: Uuid,
    pub iss: String,
    pub aud: String,
    pub iat: i64,
    pub exp: i64,
}
