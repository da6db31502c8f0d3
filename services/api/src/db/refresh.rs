//! Refresh tokens: stored as hashes, rotated on use, revoked by family on reuse.

use sqlx::PgPool;
use time::OffsetDateTime;
use uuid::Uuid;

/// What presenting a refresh token found.
#[derive(Debug, PartialEq, Eq)]
pub enum Rotation {
    /// Valid: it is now used; issue the next token in `family` for `user`.
    Rotated { user: Uuid, family: Uuid },
    /// Unknown, expired or revoked.
    Invalid,
    /// Already used: someone replayed it. The whole family is now revoked.
    Reused,
}

pub async fn insert(
    pool: &PgPool,
    user: Uuid,
    family: Uuid,
    token_hash: &[u8],
    expires_at: OffsetDateTime,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO refresh_tokens (id, user_id, family_id, token_hash, expires_at) \
         VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(Uuid::now_v7())
    .bind(user)
    .bind(family)
    .bind(token_hash)
    .bind(expires_at)
    .execute(pool)
    .await?;
    Ok(())
}

#[derive(sqlx::FromRow)]
struct StoredToken {
    user_id: Uuid,
    family_id: Uuid,
    expires_at: OffsetDateTime,
    used_at: Option<OffsetDateTime>,
    revoked_at: Option<OffsetDateTime>,
}

/// Marks the token used, atomically: of two concurrent uses, one rotates and the other is
/// reuse.
pub async fn rotate(pool: &PgPool, token_hash: &[u8]) -> Result<Rotation, sqlx::Error> {
    let mut tx = pool.begin().await?;
    let row: Option<StoredToken> = sqlx::query_as(
        "SELECT user_id, family_id, expires_at, used_at, revoked_at FROM refresh_tokens \
         WHERE token_hash = $1 FOR UPDATE",
    )
    .bind(token_hash)
    .fetch_optional(&mut *tx)
    .await?;
    let Some(StoredToken {
        user_id: user,
        family_id: family,
        expires_at,
        used_at,
        revoked_at,
    }) = row
    else {
        return Ok(Rotation::Invalid);
    };
    if used_at.is_some() {
        sqlx::query(
            "UPDATE refresh_tokens SET revoked_at = now() WHERE family_id = $1 AND revoked_at IS NULL",
        )
        .bind(family)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        return Ok(Rotation::Reused);
    }
    if revoked_at.is_some() || expires_at <= OffsetDateTime::now_utc() {
        return Ok(Rotation::Invalid);
    }
    sqlx::query("UPDATE refresh_tokens SET used_at = now() WHERE token_hash = $1")
        .bind(token_hash)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(Rotation::Rotated { user, family })
}
