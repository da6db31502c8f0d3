//! Access tokens on incoming requests: verification against the api's keys, a bounded cache
//! of verified tokens (EdDSA verification costs tens of microseconds; polling and reconnects
//! should not pay it again), and the `CurrentUser` / `AdminUser` extractors.
//!
//! The cache is `quick_cache`'s: every request looks it up, and its lookup costs about a hash
//! table's (moka's, with its per-entry expiry, took about 5 % of the gateway's CPU per status
//! poll, BENCHMARKS.md). A remembered token is judged against its `exp` on each lookup; an
//! expired one is forgotten then, or evicted like any other when the cache is full.

use std::sync::Arc;

use axum::extract::{FromRef, FromRequestParts};
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use flash_protocol::ErrorCode;
use flash_protocol::claims::{AccessClaims, Role};
use flash_tokens::{KeyRing, VerifyError};
use quick_cache::sync::Cache;
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

/// Verifies access tokens, remembering the verified ones until they expire.
pub struct Authenticator {
    keys: Arc<KeyRing>,
    verified: Cache<[u8; 32], Arc<AccessClaims>>,
}

impl std::fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authenticator")
            .field("keys", &self.keys)
            .field("remembered", &self.remembered())
            .finish()
    }
}

impl Authenticator {
    /// `capacity`: how many verified tokens to remember at most.
    #[must_use]
    pub fn new(keys: Arc<KeyRing>, capacity: u64) -> Self {
        Self {
            keys,
            verified: Cache::new(usize::try_from(capacity).unwrap_or(usize::MAX)),
        }
    }

    /// How many verified tokens are remembered now.
    #[must_use]
    pub fn remembered(&self) -> usize {
        self.verified.len()
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
            self.verified.remove(&digest);
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

#[cfg(test)]
mod tests {
    use flash_protocol::UserId;
    use flash_protocol::claims::{ACCESS_AUDIENCE, ACCESS_ISSUER};
    use flash_tokens::SigningKey;

    use super::*;

    /// A key, and an authenticator for its tokens remembering at most `capacity`.
    fn authenticator(capacity: u64) -> (SigningKey, Authenticator) {
        let key = SigningKey::generate().expect("key");
        let ring = KeyRing::fixed(&key.jwks(), ACCESS_ISSUER, ACCESS_AUDIENCE).expect("ring");
        (key, Authenticator::new(Arc::new(ring), capacity))
    }

    /// A user's claims, valid for `seconds` from now.
    fn claims(user: u128, seconds: i64) -> AccessClaims {
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        AccessClaims {
            sub: UserId(uuid::Uuid::from_u128(user)),
            role: Role::User,
            iss: ACCESS_ISSUER.to_owned(),
            aud: ACCESS_AUDIENCE.to_owned(),
            iat: now,
            exp: now + seconds,
        }
    }

    #[tokio::test]
    async fn a_remembered_token_is_refused_once_it_expires_and_forgotten() {
        let (key, auth) = authenticator(100);
        let claims = claims(7, 1);
        let token = key.sign(&claims).expect("token");
        assert_eq!(auth.verify(&token).await.map(|c| (*c).clone()), Ok(claims));
        assert_eq!(auth.remembered(), 1);
        // Past `exp`: the signature's check would still let it through (its leeway), the
        // remembered claims do not.
        tokio::time::sleep(std::time::Duration::from_millis(2_100)).await;
        assert_eq!(auth.verify(&token).await.err(), Some(AuthError::Expired));
        assert_eq!(auth.remembered(), 0);
    }

    #[tokio::test]
    async fn the_cache_holds_no_more_tokens_than_its_capacity() {
        let (key, auth) = authenticator(50);
        for user in 0..500 {
            let token = key.sign(&claims(user, 600)).expect("token");
            assert!(auth.verify(&token).await.is_ok());
        }
        let remembered = auth.remembered();
        assert!((1..=50).contains(&remembered), "{remembered} remembered");
    }
}
