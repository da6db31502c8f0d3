//! The bootstrap admin: ensured at start-up when `FLASH_ADMIN_EMAIL` and
//! `FLASH_ADMIN_PASSWORD` are set. An existing account with that e-mail is made admin and
//! keeps its password; a new one is created with the given password. Safe with many replicas.

use flash_protocol::UserId;
use secrecy::SecretString;
use sqlx::PgPool;

use crate::password::{PasswordError, PasswordHashing};

#[derive(Debug, thiserror::Error)]
pub enum BootstrapError {
    #[error("FLASH_ADMIN_EMAIL and FLASH_ADMIN_PASSWORD must be set together")]
    Incomplete,
    #[error("bootstrap admin: {0}")]
    Password(#[from] PasswordError),
    #[error("bootstrap admin: {0}")]
    Db(#[from] sqlx::Error),
}

/// Ensures the admin account exists and has the admin role; returns its id.
pub async fn ensure_admin(
    pool: &PgPool,
    hashing: &PasswordHashing,
    email: Option<&str>,
    password: Option<&SecretString>,
) -> Result<Option<UserId>, BootstrapError> {
    let (email, password) = match (email, password) {
        (None, None) => return Ok(None),
        (Some(email), Some(password)) if !email.trim().is_empty() => (email.trim(), password),
        _ => return Err(BootstrapError::Incomplete),
    };
    let existing: Option<(uuid::Uuid,)> =
        sqlx::query_as("SELECT id FROM users WHERE lower(email) = lower($1)")
            .bind(email)
            .fetch_optional(pool)
            .await?;
    if existing.is_none() {
        let hash = hashing.hash(password.clone()).await?;
        sqlx::query(
            "INSERT INTO users (id, email, password_hash, role) VALUES ($1, $2, $3, 'admin') \
             ON CONFLICT ((lower(email))) DO NOTHING",
        )
        .bind(UserId::new_v7().0)
        .bind(email)
        .bind(hash)
        .execute(pool)
        .await?;
    }
    let (id,): (uuid::Uuid,) = sqlx::query_as(
        "UPDATE users SET role = 'admin' WHERE lower(email) = lower($1) RETURNING id",
    )
    .bind(email)
    .fetch_one(pool)
    .await?;
    tracing::info!(%email, "bootstrap admin ready");
    Ok(Some(UserId(id)))
}
