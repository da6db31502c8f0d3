//! The bootstrap admin, and granting the admin role.
//!
//! At start-up, with `FLASH_ADMIN_EMAIL` and `FLASH_ADMIN_PASSWORD` set, the admin account is
//! created when no account has that e-mail (in any letter case). An existing account is never
//! promoted by start-up: whoever registered that e-mail first chose its password, and it may
//! not be the operator. The service says so in its log and starts anyway; promoting an
//! existing account is a deliberate act, `flash-api admin grant EMAIL`, logged as such.
//! Safe with many replicas starting at once.

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

/// What start-up found for the bootstrap admin.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Bootstrap {
    /// No admin e-mail configured.
    NotConfigured,
    /// Created now.
    Created(UserId),
    /// The account exists and is an admin already.
    Present(UserId),
    /// An account with that e-mail exists and is not an admin: left as it is.
    Refused(UserId),
}

/// Creates the admin account when it is missing; never promotes an existing one.
pub async fn ensure_admin(
    pool: &PgPool,
    hashing: &PasswordHashing,
    email: Option<&str>,
    password: Option<&SecretString>,
) -> Result<Bootstrap, BootstrapError> {
    let (email, password) = match (email, password) {
        (None, None) => return Ok(Bootstrap::NotConfigured),
        (Some(email), Some(password)) if !email.trim().is_empty() => (email.trim(), password),
        _ => return Err(BootstrapError::Incomplete),
    };
    if let Some(found) = existing(pool, email).await? {
        return Ok(report(email, found));
    }
    let hash = hashing.hash(password.clone()).await?;
    let created: Option<uuid::Uuid> = sqlx::query_scalar(
        "INSERT INTO users (id, email, password_hash, role) VALUES ($1, $2, $3, 'admin') \
         ON CONFLICT ((lower(email))) DO NOTHING RETURNING id",
    )
    .bind(UserId::new_v7().0)
    .bind(email)
    .bind(hash)
    .fetch_optional(pool)
    .await?;
    if let Some(id) = created {
        tracing::info!(%email, "bootstrap admin created");
        return Ok(Bootstrap::Created(UserId(id)));
    }
    // Another replica, or someone registering, took the e-mail in between.
    match existing(pool, email).await? {
        Some(found) => Ok(report(email, found)),
        None => Err(BootstrapError::Db(sqlx::Error::RowNotFound)),
    }
}

async fn existing(pool: &PgPool, email: &str) -> Result<Option<(uuid::Uuid, bool)>, sqlx::Error> {
    sqlx::query_as("SELECT id, role = 'admin' FROM users WHERE lower(email) = lower($1)")
        .bind(email)
        .fetch_optional(pool)
        .await
}

fn report(email: &str, (id, admin): (uuid::Uuid, bool)) -> Bootstrap {
    if admin {
        tracing::info!(%email, "bootstrap admin present");
        Bootstrap::Present(UserId(id))
    } else {
        tracing::error!(
            %email,
            user = %id,
            "FLASH_ADMIN_EMAIL names an existing account that is not an admin: it is NOT promoted \
             (whoever registered it chose its password). If it is yours, run `flash-api admin grant {email}`; \
             otherwise choose another FLASH_ADMIN_EMAIL"
        );
        Bootstrap::Refused(UserId(id))
    }
}

/// What granting the admin role did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Grant {
    Granted(UserId),
    AlreadyAdmin(UserId),
    NoSuchAccount,
}

/// Gives the account with `email` the admin role: the deliberate act start-up never performs.
/// Logged with who ran it (`by`, e.g. the operator's login name) and when.
pub async fn grant_admin(pool: &PgPool, email: &str, by: &str) -> Result<Grant, sqlx::Error> {
    let email = email.trim();
    let Some((id, admin)) = existing(pool, email).await? else {
        tracing::warn!(%email, %by, "admin grant: no account with this e-mail");
        return Ok(Grant::NoSuchAccount);
    };
    if admin {
        tracing::info!(%email, user = %id, %by, "admin grant: already an admin");
        return Ok(Grant::AlreadyAdmin(UserId(id)));
    }
    let mut tx = pool.begin().await?;
    sqlx::query("UPDATE users SET role = 'admin' WHERE id = $1")
        .bind(id)
        .execute(&mut *tx)
        .await?;
    crate::db::audit::record(
        &mut tx,
        &crate::db::audit::Entry {
            // The command line: no operator account acted.
            actor: None,
            action: flash_protocol::audit::AuditAction::AdminGrant,
            event_id: None,
            changes: flash_protocol::audit::changes(
                &[("role", "user".into())],
                &[
                    ("user_id", id.to_string().into()),
                    ("email", email.into()),
                    ("role", "admin".into()),
                ],
            ),
            dedup_id: None,
        },
    )
    .await?;
    tx.commit().await?;
    tracing::warn!(
        action = "admin.grant",
        %email,
        user = %id,
        %by,
        at = %time::OffsetDateTime::now_utc(),
        "admin role granted"
    );
    Ok(Grant::Granted(UserId(id)))
}
