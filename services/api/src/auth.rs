//! Accounts and tokens: the password policy, access tokens (EdDSA, with `kid`) and rotating
//! refresh tokens.

use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use flash_protocol::UserId;
use flash_protocol::auth::{TOKEN_TYPE_BEARER, TokenResponse};
use flash_protocol::claims::{ACCESS_AUDIENCE, ACCESS_ISSUER, AccessClaims, Role};
use flash_tokens::{Jwks, SigningKey};
use sha2::{Digest, Sha256};
use sqlx::PgPool;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::db;
use crate::error::{ApiError, Validator};
use crate::limits::ApiLimits;

/// Shortest and longest password accepted (characters).
pub const PASSWORD_LEN: std::ops::RangeInclusive<usize> = 8..=128;

/// Checks an e-mail and a password for registration.
pub fn validate_registration(email: &str, password: &str) -> Result<(), ApiError> {
    let mut v = Validator::default();
    v.check(
        is_valid_email(email),
        "email",
        "must be an e-mail address like name@example.com",
    );
    let chars = password.chars().count();
    v.check(
        PASSWORD_LEN.contains(&chars),
        "password",
        format!(
            "must be {} to {} characters",
            PASSWORD_LEN.start(),
            PASSWORD_LEN.end()
        ),
    );
    v.check(
        !password.trim().is_empty() && !password.chars().any(char::is_control),
        "password",
        "must not be blank or contain control characters",
    );
    v.finish()
}

/// A deliberately plain check: one `@`, a non-empty local part, a dotted domain, no spaces.
#[must_use]
pub fn is_valid_email(email: &str) -> bool {
    if !(3..=254).contains(&email.len())
        || email.chars().any(|c| c.is_whitespace() || c.is_control())
    {
        return false;
    }
    match email.split_once('@') {
        Some((local, domain)) => {
            !local.is_empty()
                && local.len() <= 64
                && !domain.contains('@')
                && domain.contains('.')
                && !domain.starts_with('.')
                && !domain.ends_with('.')
        }
        None => false,
    }
}

/// Issues access and refresh tokens.
pub struct Tokens {
    signing: SigningKey,
    jwks: Jwks,
    access_ttl: Duration,
    refresh_ttl: Duration,
    /// How long after a rotation the rotated token still yields the same successor.
    reuse_grace: Duration,
}

impl std::fmt::Debug for Tokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tokens")
            .field("kid", &self.signing.kid())
            .finish_non_exhaustive()
    }
}

fn digest(token: &str) -> Vec<u8> {
    Sha256::digest(token.as_bytes()).to_vec()
}

/// What a refresh token's successor is derived from.
#[derive(serde::Serialize)]
struct Successor<'a> {
    successor_of: &'a str,
}

impl Tokens {
    #[must_use]
    pub fn new(signing: SigningKey, jwks: Jwks, lifetimes: TokenLifetimes) -> Self {
        Self {
            signing,
            jwks,
            access_ttl: lifetimes.access,
            refresh_ttl: lifetimes.refresh,
            reuse_grace: lifetimes.reuse_grace,
        }
    }

    /// The published access-token keys.
    #[must_use]
    pub fn jwks(&self) -> &Jwks {
        &self.jwks
    }

    /// A signed access token issued now.
    pub fn access_token(&self, user: UserId, role: Role) -> Result<String, ApiError> {
        self.access_token_at(user, role, OffsetDateTime::now_utc().unix_timestamp())
    }

    /// The access token issued at `iat` (seconds): the same claims give the same token
    /// (Ed25519 signatures are deterministic).
    fn access_token_at(&self, user: UserId, role: Role, iat: i64) -> Result<String, ApiError> {
        let ttl = i64::try_from(self.access_ttl.as_secs()).unwrap_or(i64::MAX);
        Ok(self.signing.sign(&AccessClaims {
            sub: user,
            role,
            iss: ACCESS_ISSUER.to_owned(),
            aud: ACCESS_AUDIENCE.to_owned(),
            iat,
            exp: iat.saturating_add(ttl),
        })?)
    }

    fn response(&self, access_token: String, refresh_token: String) -> TokenResponse {
        TokenResponse {
            access_token,
            refresh_token,
            token_type: TOKEN_TYPE_BEARER.to_owned(),
            expires_in: self.access_ttl.as_secs(),
        }
    }

    /// An access token and the first refresh token of a new family (a login).
    pub async fn issue(
        &self,
        pool: &PgPool,
        user: UserId,
        role: Role,
    ) -> Result<TokenResponse, ApiError> {
        let mut raw = [0_u8; 32];
        raw[..16].copy_from_slice(Uuid::new_v4().as_bytes());
        raw[16..].copy_from_slice(Uuid::new_v4().as_bytes());
        let refresh_token = URL_SAFE_NO_PAD.encode(raw);
        let expires_at = OffsetDateTime::now_utc() + self.refresh_ttl;
        let mut conn = pool.acquire().await?;
        db::refresh::insert(
            &mut conn,
            user.0,
            Uuid::now_v7(),
            &digest(&refresh_token),
            expires_at,
        )
        .await?;
        Ok(self.response(self.access_token(user, role)?, refresh_token))
    }

    /// The refresh token that follows `token`: derived from it with the signing key, so
    /// that every replica finds the same one and nobody without the key can.
    fn successor(&self, token: &str) -> Result<String, ApiError> {
        let digest_hex: String = Sha256::digest(token.as_bytes())
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        let signed = self.signing.sign(&Successor {
            successor_of: &digest_hex,
        })?;
        Ok(URL_SAFE_NO_PAD.encode(Sha256::digest(signed.as_bytes())))
    }

    /// Rotates a refresh token: the next pair, or `INVALID_CREDENTIALS` (unknown, expired,
    /// revoked, or reused — which also revokes its family). The same token presented again
    /// within the reuse grace while its successor is unused gets the same pair again, so a
    /// retried or raced refresh never logs the user out; refreshes are limited per family.
    pub async fn refresh(
        &self,
        pool: &PgPool,
        limits: &ApiLimits,
        refresh_token: &str,
    ) -> Result<TokenResponse, ApiError> {
        let invalid = || {
            ApiError::client(
                flash_protocol::ErrorCode::InvalidCredentials,
                "The refresh token is not valid; log in again",
            )
        };
        if refresh_token.is_empty() || refresh_token.len() > 256 {
            return Err(invalid());
        }
        let token_hash = digest(refresh_token);
        let family = db::refresh::family_of(pool, &token_hash)
            .await?
            .ok_or_else(invalid)?;
        limits.refresh(family).await?;
        let successor = self.successor(refresh_token)?;
        let rotation = db::refresh::rotate(
            pool,
            db::refresh::Rotate {
                token_hash: &token_hash,
                successor_hash: &digest(&successor),
                successor_ttl: self.refresh_ttl,
                grace: self.reuse_grace,
            },
        )
        .await?;
        match rotation {
            db::refresh::Rotation::Rotated {
                user, rotated_at, ..
            } => {
                let role = db::users::role(pool, user).await?.ok_or_else(invalid)?;
                let access =
                    self.access_token_at(UserId(user), role, rotated_at.unix_timestamp())?;
                Ok(self.response(access, successor))
            }
            db::refresh::Rotation::Reused => {
                tracing::warn!("refresh token reused; its family is revoked");
                ::metrics::counter!("api_refresh_token_reuse_total").increment(1);
                Err(invalid())
            }
            db::refresh::Rotation::Invalid => Err(invalid()),
        }
    }
}

/// How long tokens live.
#[derive(Clone, Copy, Debug)]
pub struct TokenLifetimes {
    pub access: Duration,
    pub refresh: Duration,
    /// A refresh token used again within this long of its rotation gets the same successor.
    pub reuse_grace: Duration,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_are_checked_plainly() {
        for good in ["a@b.co", "ada.lovelace+tickets@example.org", "X@Y.Z"] {
            assert!(is_valid_email(good), "{good}");
        }
        for bad in [
            "", "a", "a@b", "@b.co", "a@@b.co", "a b@c.co", "a@.co", "a@co.", "a@b.co\n",
        ] {
            assert!(!is_valid_email(bad), "{bad:?}");
        }
        assert!(!is_valid_email(&format!("{}@example.com", "a".repeat(65))));
    }

    #[test]
    fn passwords_follow_the_policy() {
        assert!(validate_registration("a@b.co", "long enough").is_ok());
        assert!(validate_registration("a@b.co", "short").is_err());
        assert!(validate_registration("a@b.co", "        ").is_err());
        assert!(validate_registration("a@b.co", &"x".repeat(129)).is_err());
        assert!(validate_registration("a@b.co", "tab\tinside ok?").is_err());
        let Err(ApiError::Validation(errors)) = validate_registration("nope", "x") else {
            panic!("both fields invalid");
        };
        assert_eq!(errors.len(), 2);
    }
}
