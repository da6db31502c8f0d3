//! The gateway's waiting room as clients and operators see it.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::ids::EventId;

/// Where a user is in an event's queue.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum TicketState {
    /// The sale has not opened; the number is drawn at random at opening.
    PreQueue,
    /// Has a number and waits for it to be served.
    Waiting,
    /// May buy now with the gate token.
    Admitted,
    /// The admission was not used in time.
    Expired,
    /// The queue closed (sold out or ended).
    Closed,
}

/// `Ticket`: a user's place in an event's queue (`join` and `status`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Ticket {
    pub event_id: EventId,
    /// The user's number; `null` in the pre-queue until the sale opens.
    pub number: Option<u64>,
    pub state: TicketState,
    /// People ahead; `null` when not known (pre-queue).
    pub ahead: Option<u64>,
    /// Estimated seconds until admission; `null` when it cannot be estimated honestly
    /// (pre-queue, paused queue, no admissions yet).
    pub eta_s: Option<u64>,
    /// Set when `state` is `admitted`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gate_token: Option<String>,
    /// Set when `state` is `admitted`.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "time::serde::rfc3339::option"
    )]
    pub gate_expires_at: Option<OffsetDateTime>,
    /// The buyer's pseudonym in the event's draw ([`crate::draw::pseudonym`]), set while the
    /// ticket is `pre_queue`: the line of the published participants file that is theirs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pseudonym: Option<String>,
    /// Orders still being paid while no ticket is left: the line is kept and moves again if one
    /// of them fails (0 otherwise).
    #[serde(default)]
    pub reserved_pending: u64,
}

/// An event's queue as a whole.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum QueueState {
    /// The sale has not opened; arrivals form the pre-queue.
    Scheduled,
    /// Admitting.
    Open,
    /// Open, but an operator stopped admissions.
    Paused,
    /// Sold out or ended: admits and accepts no one.
    Closed,
}

/// `QueueStats`: the operators' view of one queue.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct QueueStats {
    pub event_id: EventId,
    pub state: QueueState,
    /// Users holding a number that has not been served; 0 once the queue is closed (all of
    /// them were told the sale is over).
    pub waiting: u64,
    /// Admitted users who have neither ordered nor expired.
    pub admitted_active: u64,
    /// The highest number served so far.
    pub serving: u64,
    /// The highest number given out so far.
    pub last_number: u64,
    pub admit_per_sec: u32,
    pub max_active: u32,
    pub admission_ttl_s: u32,
    /// Leading zero bits a newcomer's join challenge asks for (0: no challenge).
    pub challenge_difficulty: u8,
    /// Orders still being paid while the event is sold out: above 0, the queue holds (`state`
    /// stays `open`; every place is kept and nobody is admitted until tickets come back or
    /// none can). Absent: 0.
    #[serde(default)]
    pub reserved_pending: u64,
}

/// `PATCH /queue/v1/admin/events/{id}` body; absent fields stay as they are.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct QueuePatch {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub admit_per_sec: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_active: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub admission_ttl_s: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub paused: Option<bool>,
    /// 0–32 leading zero bits (0 turns the challenge off). Raising it never costs anyone the
    /// place they hold.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(maximum = 32)]
    pub challenge_difficulty: Option<u8>,
}
