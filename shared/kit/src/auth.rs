//! Access tokens on incoming requests: verification against the api's keys, a bounded cache
//! of verified tokens (EdDSA verification costs tens of microseconds; polling and reconnects
//! should not pay it again), and the `CurrentUser` / `AdminUser` extractors.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{FromRef, FromRequestParts};
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use flash_protocol::ErrorCode;
use flash_protocol::claims::{AccessClaims, Role};
use flash_tokens::{KeyRing, VerifyError};
use moka::Expiry;
use moka::sync::Cache;
use sha2::{Digest, Sha256};

use crate::http::ProblemResponse;

/// Why a request is not authenticated.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("missing bearer token")]
    Missing,
    #[error("the access token has expired")]
    Expired,
    #[error("invalid access token")]
    Invalid,
}

impl From<AuthError> for ProblemResponse {
    fn from(error: AuthError) -> Self {
        ProblemResponse::new(ErrorCode::Unauthenticated, error.to_string())
    }
}

struct UntilExpiry;

impl Expiry<[u8; 32], Arc<AccessClaims>> for UntilExpiry {
    fn expire_after_create(
        &self,
        _key: &[u8; 32],
        claims: &Arc<AccessClaims>,
        _created_at: Instant,
    ) -> Option<Duration> {
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        Some(Duration::from_secs(
            u64::try_from(claims.exp.saturating_sub(now)).unwrap_or(0),
        ))
    }
}

/// Verifies access tokens, remembering the verified ones until they expire.
pub struct Authenticator {
    keys: Arc<KeyRing>,
    verified: Cache<[u8; 32], Arc<AccessClaims>>,
}

impl std::fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authenticator")
            .field("keys", &self.keys)
            .field("cached", &self.verified.entry_count())
            .finish()
    }
}

impl Authenticator {
    /// `capacity`: how many verified tokens to remember at most.
    #[must_use]
    pub fn new(keys: Arc<KeyRing>, capacity: u64) -> Self {
        Self {
            keys,
            verified: Cache::builder()
                .max_capacity(capacity)
                .expire_after(UntilExpiry)
                .build(),
        }
    }

    #[must_use]
    pub fn keys(&self) -> &Arc<KeyRing> {
        &self.keys
    }

    /// The claims of a valid, unexpired access token.
    pub async fn verify(&self, token: &str) -> Result<Arc<AccessClaims>, AuthError> {
        let digest: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        if let Some(claims) = self.verified.get(&digest) {
            if claims.exp > now {
                return Ok(claims);
            }
            return Err(AuthError::Expired);
        }
        match self.keys.verify::<AccessClaims>(token).await {
            Ok(claims) => {
                ::metrics::counter!("auth_tokens_verified_total").increment(1);
                let claims = Arc::new(claims);
                self.verified.insert(digest, Arc::clone(&claims));
                Ok(claims)
            }
            Err(VerifyError::Expired) => Err(AuthError::Expired),
            Err(_) => Err(AuthError::Invalid),
        }
    }

    /// The claims behind an `Authorization: Bearer …` header.
    pub async fn from_header(&self, parts: &Parts) -> Result<Arc<AccessClaims>, AuthError> {
        let token = parts
            .headers
            .get(AUTHORIZATION)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| {
                value
                    .strip_prefix("Bearer ")
                    .or_else(|| value.strip_prefix("bearer "))
            })
            .map(str::trim)
            .filter(|token| !token.is_empty())
            .ok_or(AuthError::Missing)?;
        self.verify(token).await
    }
}

/// State parts that hold the access-token checker: with them, a
/// [`SharedState`](crate::http::SharedState) serves [`CurrentUser`] and [`AdminUser`].
pub trait HoldsAuthenticator {
    fn authenticator(&self) -> &Arc<Authenticator>;
}

impl<T: HoldsAuthenticator> FromRef<crate::http::SharedState<T>> for Arc<Authenticator> {
    fn from_ref(state: &crate::http::SharedState<T>) -> Self {
        Arc::clone(state.authenticator())
    }
}

/// The authenticated caller (401 `UNAUTHENTICATED` otherwise).
#[derive(Clone, Debug)]
pub struct CurrentUser(pub Arc<AccessClaims>);

impl<S> FromRequestParts<S> for CurrentUser
where
    Arc<Authenticator>: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = ProblemResponse;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let auth = Arc::<Authenticator>::from_ref(state);
        Ok(Self(auth.from_header(parts).await?))
    }
}

/// An authenticated admin (401 without a valid token, 403 `FORBIDDEN` for other roles).
#[derive(Clone, Debug)]
pub struct AdminUser(pub Arc<AccessClaims>);

impl<S> FromRequestParts<S> for AdminUser
where
    Arc<Authenticator>: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = ProblemResponse;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let CurrentUser(claims) = CurrentUser::from_request_parts(parts, state).await?;
        if claims.role == Role::Admin {
            Ok(Self(claims))
        } else {
            Err(ProblemResponse::new(
                ErrorCode::Forbidden,
                "This call needs the admin role",
            ))
        }
    }
}
