//! The api's errors, each answered as problem+json with its stable code; internals are
//! logged once, never returned.

use flash_kit::telemetry::{LOG_EVERY, LogThrottle};
use std::time::Duration;

use axum::response::{IntoResponse, Response};
use flash_kit::http::{ProblemResponse, with_retry_after};
use flash_kit::limits::Refused;
use flash_protocol::error::FieldError;
use flash_protocol::{ErrorCode, Problem};

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// A contract error the client can act on.
    #[error("{0}: {1}")]
    Client(ErrorCode, String),
    #[error("invalid request")]
    Validation(Vec<FieldError>),
    /// A store is unreachable or overloaded: retry later.
    #[error("store unavailable: {0}")]
    Unavailable(String),
    /// The api is saturated (password hashing): retry after the wait.
    #[error("busy; retry in {} ms", .0.as_millis())]
    Busy(Duration),
    /// Over a rate limit.
    #[error(transparent)]
    Limited(#[from] Refused),
    /// A bug or an unexpected state.
    #[error("internal: {0}")]
    Internal(String),
}

impl ApiError {
    #[must_use]
    pub fn client(code: ErrorCode, detail: impl Into<String>) -> Self {
        Self::Client(code, detail.into())
    }

    /// One invalid field.
    #[must_use]
    pub fn field(field: &str, message: impl Into<String>) -> Self {
        Self::Validation(vec![FieldError {
            field: field.to_owned(),
            message: message.into(),
        }])
    }
}

/// Whether `error` says the database is out of reach for now (a retry may succeed): no
/// connection in time, a broken connection, or the server shutting down, restarting or not
/// yet accepting connections (SQLSTATE classes 08 and 57P).
#[must_use]
pub fn database_unavailable(error: &sqlx::Error) -> bool {
    match error {
        sqlx::Error::PoolTimedOut | sqlx::Error::Io(_) | sqlx::Error::PoolClosed => true,
        sqlx::Error::Database(db) => db
            .code()
            .is_some_and(|code| code.starts_with("08") || code.starts_with("57P")),
        _ => false,
    }
}

impl From<sqlx::Error> for ApiError {
    fn from(error: sqlx::Error) -> Self {
        if database_unavailable(&error) {
            Self::Unavailable(error.to_string())
        } else {
            Self::Internal(error.to_string())
        }
    }
}

impl From<crate::password::PasswordError> for ApiError {
    fn from(error: crate::password::PasswordError) -> Self {
        match error {
            crate::password::PasswordError::Busy { retry_after } => Self::Busy(retry_after),
            other => Self::Internal(other.to_string()),
        }
    }
}

impl From<flash_tokens::KeyError> for ApiError {
    fn from(error: flash_tokens::KeyError) -> Self {
        Self::Internal(error.to_string())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let problem = match self {
            ApiError::Limited(refused) => return refused.into_response(),
            ApiError::Busy(wait) => {
                ::metrics::counter!("api_busy_total").increment(1);
                let mut response = ProblemResponse(Problem::new(
                    ErrorCode::Unavailable,
                    "Too many sign-ins at once; retry shortly",
                ))
                .into_response();
                with_retry_after(&mut response, wait);
                return response;
            }
            ApiError::Client(code, detail) => Problem::new(code, detail),
            ApiError::Validation(errors) => Problem::validation(errors),
            ApiError::Unavailable(error) => {
                static SITE: LogThrottle = LogThrottle::new();
                if let Some(held_back) = SITE.allow(LOG_EVERY) {
                    tracing::warn!(%error, held_back, "store unavailable");
                }
                Problem::new(
                    ErrorCode::Unavailable,
                    "The service is temporarily unavailable; retry shortly",
                )
            }
            ApiError::Internal(error) => {
                tracing::error!(%error, "internal error");
                Problem::from_code(ErrorCode::Internal)
            }
        };
        ProblemResponse(problem).into_response()
    }
}

/// Collects invalid fields, then answers 422 with all of them.
#[derive(Debug, Default)]
pub struct Validator(Vec<FieldError>);

impl Validator {
    pub fn check(&mut self, ok: bool, field: &str, message: impl Into<String>) {
        if !ok {
            self.0.push(FieldError {
                field: field.to_owned(),
                message: message.into(),
            });
        }
    }

    pub fn finish(self) -> Result<(), ApiError> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(ApiError::Validation(self.0))
        }
    }
}
