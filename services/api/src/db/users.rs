//! Users: accounts, their password hashes and roles.

use flash_protocol::UserId;
use flash_protocol::claims::Role;
use sqlx::PgPool;
use uuid::Uuid;

/// What login needs of an account.
#[derive(Debug, sqlx::FromRow)]
pub struct Account {
    pub id: Uuid,
    pub password_hash: String,
    pub role: String,
}

impl Account {
    #[must_use]
    pub fn role(&self) -> Role {
        if self.role == "admin" {
            Role::Admin
        } else {
            Role::User
        }
    }
}

/// Creates a user; `None` when the e-mail is taken (in any letter case).
pub async fn create(
    pool: &PgPool,
    email: &str,
    password_hash: &str,
) -> Result<Option<UserId>, sqlx::Error> {
    let id = UserId::new_v7();
    let inserted = sqlx::query(
        "INSERT INTO users (id, email, password_hash) VALUES ($1, $2, $3) \
         ON CONFLICT ((lower(email))) DO NOTHING",
    )
    .bind(id.0)
    .bind(email)
    .bind(password_hash)
    .execute(pool)
    .await?;
    Ok((inserted.rows_affected() == 1).then_some(id))
}

pub async fn by_email(pool: &PgPool, email: &str) -> Result<Option<Account>, sqlx::Error> {
    sqlx::query_as("SELECT id, password_hash, role FROM users WHERE lower(email) = lower($1)")
        .bind(email)
        .fetch_optional(pool)
        .await
}

pub async fn role(pool: &PgPool, user: Uuid) -> Result<Option<Role>, sqlx::Error> {
    let role: Option<String> = sqlx::query_scalar("SELECT role FROM users WHERE id = $1")
        .bind(user)
        .fetch_optional(pool)
        .await?;
    Ok(role.map(|r| {
        if r == "admin" {
            Role::Admin
        } else {
            Role::User
        }
    }))
}
