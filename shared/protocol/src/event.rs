//! Events: what the api lists and sells, and what an admin creates.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::ids::EventId;

/// Where an event is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum EventStatus {
    /// Announced; the sale has not opened.
    Scheduled,
    /// The sale is open and stock remains.
    OnSale,
    /// No stock remains.
    SoldOut,
    /// The event has taken place or was ended by an admin.
    Ended,
}

/// Bounds of the values an admin may set, shared by the api and the gateway.
pub mod bounds {
    use std::ops::RangeInclusive;

    /// `queue.admit_per_sec`.
    pub const ADMIT_PER_SEC: RangeInclusive<u32> = 1..=100_000;
    /// `queue.max_active`.
    pub const MAX_ACTIVE: RangeInclusive<u32> = 1..=1_000_000;
    /// `queue.admission_ttl_s`.
    pub const ADMISSION_TTL_S: RangeInclusive<u32> = 10..=3600;
    /// `inventory`.
    pub const INVENTORY: RangeInclusive<u32> = 0..=10_000_000;
    /// `max_per_user`.
    pub const MAX_PER_USER: RangeInclusive<u32> = 1..=100;
    /// `price_cents`.
    pub const PRICE_CENTS: RangeInclusive<i64> = 0..=100_000_000;
    /// Characters of `name` and `venue`.
    pub const TEXT_CHARS: RangeInclusive<usize> = 1..=200;
}

/// How the gateway lets buyers out of the event's waiting room.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct QueueSettings {
    /// Admissions per second at most.
    pub admit_per_sec: u32,
    /// Admitted users who have not yet ordered (or expired), at most.
    pub max_active: u32,
    /// Seconds an admission (and its gate token) stays valid.
    pub admission_ttl_s: u32,
    /// On create only: the join challenge's initial difficulty (0–32 leading zero bits, 0 =
    /// off), carried to the gateway, which owns it from then on (its `QueueStats` shows the
    /// live value). Omitted when 0; the api's `Event` never shows it.
    #[serde(default, skip_serializing_if = "is_zero")]
    #[schema(maximum = 32)]
    pub challenge_difficulty: u8,
}

#[allow(
    clippy::trivially_copy_pass_by_ref,
    reason = "serde's skip_serializing_if takes a reference"
)]
fn is_zero(value: &u8) -> bool {
    *value == 0
}

/// `Event`: one sale as the public sees it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Event {
    pub id: EventId,
    pub name: String,
    pub venue: String,
    #[serde(with = "time::serde::rfc3339")]
    pub starts_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub sale_opens_at: OffsetDateTime,
    pub price_cents: i64,
    /// ISO 4217, e.g. `EUR`.
    pub currency: String,
    /// Tickets put on sale in all.
    pub inventory: u32,
    /// Tickets not yet held by a live order.
    pub remaining: u32,
    pub max_per_user: u32,
    pub status: EventStatus,
    /// While no ticket is left (`sold_out`): orders still being paid, whose tickets come back
    /// to the line if their payment fails (0 otherwise).
    #[serde(default)]
    pub reserved_pending: u64,
    /// Until when tickets that come back go to the people still in line; afterwards a sold-out
    /// queue closes at once. `null`: until the event starts.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "time::serde::rfc3339::option"
    )]
    pub returns_until: Option<OffsetDateTime>,
}

/// `NewEvent`: `POST /api/v1/admin/events`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct NewEvent {
    pub name: String,
    pub venue: String,
    #[serde(with = "time::serde::rfc3339")]
    pub starts_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub sale_opens_at: OffsetDateTime,
    pub price_cents: i64,
    pub currency: String,
    pub inventory: u32,
    pub max_per_user: u32,
    pub queue: QueueSettings,
    /// See [`Event::returns_until`]; absent: until the event starts.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "time::serde::rfc3339::option"
    )]
    pub returns_until: Option<OffsetDateTime>,
}

/// Partial `QueueSettings` inside an [`EventPatch`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct QueueSettingsPatch {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub admit_per_sec: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_active: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub admission_ttl_s: Option<u32>,
}

/// Partial `NewEvent`: `PATCH /api/v1/admin/events/{id}`; absent fields stay as they are.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct EventPatch {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub venue: Option<String>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "time::serde::rfc3339::option"
    )]
    pub starts_at: Option<OffsetDateTime>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "time::serde::rfc3339::option"
    )]
    pub sale_opens_at: Option<OffsetDateTime>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub price_cents: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub currency: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inventory: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_per_user: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub queue: Option<QueueSettingsPatch>,
    /// See [`Event::returns_until`].
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "time::serde::rfc3339::option"
    )]
    pub returns_until: Option<OffsetDateTime>,
}

/// Orders of one event counted by status (each order once, whatever its quantity).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct OrderCounts {
    pub pending_payment: u64,
    pub paid: u64,
    pub payment_failed: u64,
    pub expired: u64,
}

/// `GET /api/v1/admin/events/{id}/stats` (admin): the sale as operators watch it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct EventStats {
    pub event_id: EventId,
    /// Tickets put on sale in all.
    pub inventory: u32,
    /// Tickets not yet held by a live order.
    pub remaining: u32,
    pub orders: OrderCounts,
}
