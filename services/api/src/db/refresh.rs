//! Refresh tokens: stored as hashes, rotated on use, revoked by family on reuse. A token used
//! again within a short grace of its rotation (a client retrying a lost answer, or the same
//! client racing itself) gets the same successor instead of revoking the family; the
//! successor is derived from the token, so every replica finds the same one.

use sqlx::{PgConnection, PgPool};
use std::time::Duration;
use time::OffsetDateTime;
use uuid::Uuid;

/// What presenting a refresh token found.
#[derive(Debug, PartialEq, Eq)]
pub enum Rotation {
    /// Valid: rotated at `rotated_at` (now, or within the grace before), to the successor;
    /// issue the pair of that moment for `user` in `family`.
    Rotated {
        user: Uuid,
        family: Uuid,
        rotated_at: OffsetDateTime,
    },
    /// Unknown, expired or revoked.
    Invalid,
    /// Used before, outside the grace (or its successor was used since): someone replayed it.
    /// The whole family is now revoked.
    Reused,
}

/// A new token of `family` for `user`, valid until `expires_at` (nothing when it exists).
pub async fn insert(
    conn: &mut PgConnection,
    user: Uuid,
    family: Uuid,
    token_hash: &[u8],
    expires_at: OffsetDateTime,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO refresh_tokens (id, user_id, family_id, token_hash, expires_at) \
         VALUES ($1, $2, $3, $4, $5) ON CONFLICT (token_hash) DO NOTHING",
    )
    .bind(Uuid::now_v7())
    .bind(user)
    .bind(family)
    .bind(token_hash)
    .bind(expires_at)
    .execute(conn)
    .await?;
    Ok(())
}

/// The family of a stored token, if any (to limit refreshes per family before rotating).
pub async fn family_of(pool: &PgPool, token_hash: &[u8]) -> Result<Option<Uuid>, sqlx::Error> {
    sqlx::query_scalar("SELECT family_id FROM refresh_tokens WHERE token_hash = $1")
        .bind(token_hash)
        .fetch_optional(pool)
        .await
}

#[derive(sqlx::FromRow)]
struct StoredToken {
    user_id: Uuid,
    family_id: Uuid,
    expired: bool,
    used_at: Option<OffsetDateTime>,
    in_grace: bool,
    revoked_at: Option<OffsetDateTime>,
}

/// How a rotation is done: the successor's hash, how long it lives, and the grace for a
/// token used again.
#[derive(Clone, Copy, Debug)]
pub struct Rotate<'a> {
    pub token_hash: &'a [u8],
    pub successor_hash: &'a [u8],
    pub successor_ttl: Duration,
    pub grace: Duration,
}

/// Uses the token, atomically (the row is locked): the first use rotates it to its
/// successor; a use within the grace while the successor is unused rotates to the same one;
/// any other use is reuse, which revokes the family.
pub async fn rotate(pool: &PgPool, how: Rotate<'_>) -> Result<Rotation, sqlx::Error> {
    let mut tx = pool.begin().await?;
    let row: Option<StoredToken> = sqlx::query_as(
        "SELECT user_id, family_id, expires_at <= now() AS expired, used_at, \
           coalesce(used_at > now() - make_interval(secs => $2), false) AS in_grace, revoked_at \
         FROM refresh_tokens WHERE token_hash = $1 FOR UPDATE",
    )
    .bind(how.token_hash)
    .bind(how.grace.as_secs_f64())
    .fetch_optional(&mut *tx)
    .await?;
    let Some(token) = row else {
        return Ok(Rotation::Invalid);
    };
    if token.revoked_at.is_some() {
        return Ok(Rotation::Invalid);
    }
    if let Some(used_at) = token.used_at {
        if token.in_grace && successor_unused(&mut tx, how.successor_hash).await? {
            return Ok(Rotation::Rotated {
                user: token.user_id,
                family: token.family_id,
                rotated_at: used_at,
            });
        }
        sqlx::query(
            "UPDATE refresh_tokens SET revoked_at = now() WHERE family_id = $1 AND revoked_at IS NULL",
        )
        .bind(token.family_id)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        return Ok(Rotation::Reused);
    }
    if token.expired {
        return Ok(Rotation::Invalid);
    }
    let rotated_at: OffsetDateTime = sqlx::query_scalar(
        "UPDATE refresh_tokens SET used_at = date_trunc('second', now()) WHERE token_hash = $1 \
         RETURNING used_at",
    )
    .bind(how.token_hash)
    .fetch_one(&mut *tx)
    .await?;
    insert(
        &mut tx,
        token.user_id,
        token.family_id,
        how.successor_hash,
        rotated_at + how.successor_ttl,
    )
    .await?;
    tx.commit().await?;
    Ok(Rotation::Rotated {
        user: token.user_id,
        family: token.family_id,
        rotated_at,
    })
}

async fn successor_unused(
    tx: &mut PgConnection,
    successor_hash: &[u8],
) -> Result<bool, sqlx::Error> {
    let unused: Option<bool> = sqlx::query_scalar(
        "SELECT used_at IS NULL AND revoked_at IS NULL FROM refresh_tokens WHERE token_hash = $1",
    )
    .bind(successor_hash)
    .fetch_optional(tx)
    .await?;
    Ok(unused == Some(true))
}
