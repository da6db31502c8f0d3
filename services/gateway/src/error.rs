//! The gateway's errors, each answered as problem+json with its stable code; internals are
//! logged, never returned.

use axum::response::{IntoResponse, Response};
use flash_kit::http::ProblemResponse;
use flash_kit::telemetry::{LOG_EVERY, LogThrottle};
use flash_protocol::error::FieldError;
use flash_protocol::{ErrorCode, Problem};

use crate::waiting_room::RoomError;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("no queue for this event")]
    EventNotFound,
    #[error("not in this queue")]
    NotInQueue,
    #[error("the queue is closed")]
    QueueClosed,
    #[error("the queue asks for a solved challenge")]
    ChallengeRequired,
    #[error("the challenge was not solved")]
    ChallengeFailed,
    #[error(transparent)]
    Limited(#[from] flash_kit::limits::Refused),
    #[error("invalid request")]
    Validation(Vec<FieldError>),
    #[error(transparent)]
    Store(#[from] RoomError),
    #[error("gate token signing: {0}")]
    Signing(#[from] flash_tokens::KeyError),
    #[error("too many audit records wait to be relayed")]
    AuditBacklog,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let problem = match &self {
            ApiError::Limited(refused) => return refused.into_response(),
            ApiError::EventNotFound => Problem::new(
                ErrorCode::EventNotFound,
                "No queue for this event (unknown, or not announced yet)",
            ),
            ApiError::NotInQueue => Problem::new(ErrorCode::NotInQueue, "Join the queue first"),
            ApiError::QueueClosed => Problem::new(
                ErrorCode::QueueClosed,
                "The queue is closed: sold out or ended",
            ),
            ApiError::ChallengeRequired => Problem::new(
                ErrorCode::ChallengeRequired,
                "This queue asks newcomers to solve a challenge: GET …/challenge, solve it, and \
                 join with {\"challenge\", \"nonce\"}",
            ),
            ApiError::ChallengeFailed => Problem::new(
                ErrorCode::ChallengeFailed,
                "The nonce does not solve this challenge, or the challenge is not yours or was \
                 used; ask for a new one",
            ),
            ApiError::Validation(errors) => Problem::validation(errors.clone()),
            ApiError::Store(error) => {
                static SITE: LogThrottle = LogThrottle::new();
                if let Some(held_back) = SITE.allow(LOG_EVERY) {
                    tracing::error!(%error, held_back, "queue store failed");
                }
                Problem::new(
                    ErrorCode::Unavailable,
                    "The queue is unavailable; retry shortly",
                )
            }
            ApiError::Signing(error) => {
                tracing::error!(%error, "gate token signing failed");
                Problem::from_code(ErrorCode::Internal)
            }
            ApiError::AuditBacklog => {
                ::metrics::counter!("gateway_audit_refused_total").increment(1);
                tracing::error!(
                    "queue change refused: its audit record could not be kept (is the broker away?)"
                );
                Problem::new(
                    ErrorCode::Unavailable,
                    "Changes cannot be recorded in the audit log right now, so none is made; retry shortly",
                )
            }
        };
        ProblemResponse(problem).into_response()
    }
}
