//! WebSocket frames of `GET /queue/v1/events/{id}/ws` (JSON text, tagged by `type`) and the
//! close codes the gateway uses.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::queue::TicketState;

/// No valid `auth` frame within the deadline, or a bad token.
pub const CLOSE_UNAUTHENTICATED: u16 = 4401;
/// The user has not joined this event's queue.
pub const CLOSE_NOT_IN_QUEUE: u16 = 4404;
/// Too many connections for this user: reconnect after the number of seconds the close
/// reason names (an extension of the contract, the WebSocket form of 429 `RATE_LIMITED`).
pub const CLOSE_RATE_LIMITED: u16 = 4429;
/// The server is restarting: reconnect (to any replica) and keep your place.
pub const CLOSE_SERVICE_RESTART: u16 = 1012;
/// The queue closed (a `closed` frame came first).
pub const CLOSE_NORMAL: u16 = 1000;
/// A binary frame: the server reads JSON text frames only.
pub const CLOSE_UNSUPPORTED: u16 = 1003;
/// A frame that is not one of the contract's, or over the socket's frame budget.
pub const CLOSE_POLICY: u16 = 1008;
/// The queue could not be read; reconnect after a short wait.
pub const CLOSE_INTERNAL: u16 = 1011;
/// A newer socket of the same user took over.
pub const CLOSE_REPLACED: u16 = 4409;
/// Seconds the client has to send its `auth` frame.
pub const AUTH_DEADLINE_SECS: u64 = 5;

/// Frames the client sends.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ClientFrame {
    /// Must be the first frame: the access token.
    Auth {
        token: String,
    },
    Ping,
}

impl std::fmt::Debug for ClientFrame {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ClientFrame::Auth { .. } => f.write_str("Auth { token: [redacted] }"),
            ClientFrame::Ping => f.write_str("Ping"),
        }
    }
}

/// Why a queue closed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ClosedReason {
    SoldOut,
    Ended,
}

/// Frames the server sends.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerFrame {
    /// On connect and whenever the position changes (at most about once a second).
    Position {
        state: TicketState,
        number: Option<u64>,
        ahead: Option<u64>,
        eta_s: Option<u64>,
        /// As on the `Ticket`: orders still being paid while no ticket is left.
        #[serde(default)]
        reserved_pending: u64,
    },
    /// The user may buy now; never dropped.
    Admitted {
        gate_token: String,
        #[serde(with = "time::serde::rfc3339")]
        expires_at: OffsetDateTime,
    },
    /// The queue closed; no admission will follow.
    Closed {
        reason: ClosedReason,
    },
    Pong,
}
