//! One exhaustive table of error codes (code → HTTP status → title) and the RFC 9457 problem
//! details every service answers with. Clients branch on `code`; it never changes meaning.

use std::fmt;

use serde::{Deserialize, Serialize};

/// The media type of every error body.
pub const PROBLEM_CONTENT_TYPE: &str = "application/problem+json";

macro_rules! error_codes {
    ($($(#[$doc:meta])* $variant:ident => ($wire:literal, $status:literal, $title:literal),)+) => {
        /// Every stable, machine-readable error code of the public contract.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
        pub enum ErrorCode {
            $($(#[$doc])* #[serde(rename = $wire)] $variant,)+
        }

        impl ErrorCode {
            /// Every code, in table order.
            pub const ALL: &'static [ErrorCode] = &[$(ErrorCode::$variant,)+];

            /// The wire name, e.g. `SOLD_OUT`.
            #[must_use]
            pub const fn as_str(self) -> &'static str {
                match self { $(ErrorCode::$variant => $wire,)+ }
            }

            /// The HTTP status this code is answered with.
            #[must_use]
            pub const fn status(self) -> u16 {
                match self { $(ErrorCode::$variant => $status,)+ }
            }

            /// A short, human-readable summary that does not change between occurrences.
            #[must_use]
            pub const fn title(self) -> &'static str {
                match self { $(ErrorCode::$variant => $title,)+ }
            }
        }
    };
}

error_codes! {
    /// Unparseable JSON or a malformed request line.
    BadRequest => ("BAD_REQUEST", 400, "The request could not be parsed"),
    /// Missing, malformed or expired access token.
    Unauthenticated => ("UNAUTHENTICATED", 401, "Authentication is required"),
    /// Wrong e-mail or password, or an unusable refresh token.
    InvalidCredentials => ("INVALID_CREDENTIALS", 401, "The credentials are not valid"),
    /// Authenticated, but the role does not allow this call.
    Forbidden => ("FORBIDDEN", 403, "This call is not allowed for your role"),
    /// The join challenge's solution is wrong, forged, for another user or event, or used.
    ChallengeFailed => ("CHALLENGE_FAILED", 403, "The challenge was not solved"),
    /// The gate token is not a valid token from the gateway.
    GateTokenInvalid => ("GATE_TOKEN_INVALID", 403, "The gate token is not valid"),
    /// The gate token's admission window has passed.
    GateTokenExpired => ("GATE_TOKEN_EXPIRED", 403, "The gate token has expired"),
    /// The gate token was already used for an order.
    GateTokenUsed => ("GATE_TOKEN_USED", 403, "The gate token was already used"),
    /// The gate token belongs to another user or another event.
    GateTokenMismatch => ("GATE_TOKEN_MISMATCH", 403, "The gate token is for another user or event"),
    /// No route or resource at this address.
    NotFound => ("NOT_FOUND", 404, "Not found"),
    /// No event with this id.
    EventNotFound => ("EVENT_NOT_FOUND", 404, "The event does not exist"),
    /// No order with this id for this user.
    OrderNotFound => ("ORDER_NOT_FOUND", 404, "The order does not exist"),
    /// The user holds no ticket in this event's queue.
    NotInQueue => ("NOT_IN_QUEUE", 404, "You are not in this queue"),
    /// The route exists but not with this method.
    MethodNotAllowed => ("METHOD_NOT_ALLOWED", 405, "Method not allowed"),
    /// An account with this e-mail exists.
    EmailTaken => ("EMAIL_TAKEN", 409, "This e-mail is already registered"),
    /// No stock left for the requested quantity.
    SoldOut => ("SOLD_OUT", 409, "Sold out"),
    /// The user's live orders for the event would exceed `max_per_user`.
    LimitExceeded => ("LIMIT_EXCEEDED", 409, "The per-user ticket limit would be exceeded"),
    /// The `Idempotency-Key` was used before for a different request.
    IdempotencyKeyReused => ("IDEMPOTENCY_KEY_REUSED", 409, "The idempotency key was used for a different request"),
    /// The queue is closed (sold out or ended) and takes no one.
    QueueClosed => ("QUEUE_CLOSED", 409, "The queue is closed"),
    /// The body is larger than the service accepts.
    PayloadTooLarge => ("PAYLOAD_TOO_LARGE", 413, "The request body is too large"),
    /// The body is not JSON (`Content-Type`).
    UnsupportedMediaType => ("UNSUPPORTED_MEDIA_TYPE", 415, "The request body must be JSON"),
    /// A well-formed body or parameter with invalid values.
    Validation => ("VALIDATION", 422, "The request is not valid"),
    /// The queue asks newcomers to solve a challenge first (none sent, or it expired).
    ChallengeRequired => ("CHALLENGE_REQUIRED", 428, "Solve the queue's challenge to join"),
    /// Too many requests; retry after the `Retry-After` header.
    RateLimited => ("RATE_LIMITED", 429, "Too many requests"),
    /// An unexpected failure; details are logged, never returned.
    Internal => ("INTERNAL", 500, "Internal error"),
    /// A store the service depends on is unreachable; retry later.
    Unavailable => ("UNAVAILABLE", 503, "The service is temporarily unavailable"),
    /// The request took longer than the service allows.
    Timeout => ("TIMEOUT", 504, "The request timed out"),
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One invalid field of a `VALIDATION` problem.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct FieldError {
    /// The field's JSON name (dotted for nested fields, e.g. `queue.max_active`).
    pub field: String,
    /// What is wrong with it.
    pub message: String,
}

/// RFC 9457 problem details with the stable `code` extension (and `errors` for validation).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Problem {
    /// A URI naming the problem type: `urn:flash-tickets:problem:<code>`.
    #[serde(rename = "type")]
    pub type_uri: String,
    pub title: String,
    pub status: u16,
    pub code: ErrorCode,
    pub detail: String,
    /// The invalid fields, for `VALIDATION`; omitted when empty.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<FieldError>,
}

impl Problem {
    /// The problem for `code`, with a detail that may say more about this occurrence.
    #[must_use]
    pub fn new(code: ErrorCode, detail: impl Into<String>) -> Self {
        Self {
            type_uri: format!("urn:flash-tickets:problem:{}", code.as_str()),
            title: code.title().to_owned(),
            status: code.status(),
            code,
            detail: detail.into(),
            errors: Vec::new(),
        }
    }

    /// The problem with its title as its detail.
    #[must_use]
    pub fn from_code(code: ErrorCode) -> Self {
        Self::new(code, code.title())
    }

    /// A `VALIDATION` problem listing the invalid fields.
    #[must_use]
    pub fn validation(errors: Vec<FieldError>) -> Self {
        let detail = errors
            .iter()
            .map(|e| format!("{}: {}", e.field, e.message))
            .collect::<Vec<_>>()
            .join("; ");
        Self {
            errors,
            ..Self::new(ErrorCode::Validation, detail)
        }
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({}): {}", self.code, self.status, self.detail)
    }
}

impl std::error::Error for Problem {}
