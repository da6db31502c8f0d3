//! Events: the public list, what admins create and change, and the operators' stats.

use axum::extract::State;
use axum::http::StatusCode;
use flash_kit::auth::AdminUser;
use flash_kit::http::{Json, Path};
use flash_protocol::audit::{AuditAction, changes};
use flash_protocol::event::bounds::{
    ADMISSION_TTL_S, ADMIT_PER_SEC, INVENTORY, MAX_ACTIVE, MAX_PER_USER, PRICE_CENTS, TEXT_CHARS,
};
use flash_protocol::event::{Event, EventPatch, EventStats, EventStatus, NewEvent, QueueSettings};
use flash_protocol::messages::{EventCreated, EventSoldOut, EventUpdated};
use flash_protocol::{ErrorCode, EventId, UserId};
use sqlx::PgPool;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::app::AppState;
use crate::db::audit;
use crate::db::events::EventRow;
use crate::db::micros;
use crate::db::outbox::{self, Outgoing};
use crate::error::{ApiError, Validator};

fn not_found() -> ApiError {
    ApiError::client(ErrorCode::EventNotFound, "No such event")
}

/// Every event, by start time.
#[utoipa::path(get, path = "/api/v1/events", operation_id = "listEvents", tag = "events",
    responses((status = 200, description = "The events", body = Vec<Event>)))]
pub async fn list(State(state): State<AppState>) -> Result<Json<Vec<Event>>, ApiError> {
    let now = OffsetDateTime::now_utc();
    Ok(Json(
        crate::db::events::list(&state.db)
            .await?
            .iter()
            .map(|row| row.to_event(now))
            .collect(),
    ))
}

/// One event, with its remaining stock.
#[utoipa::path(get, path = "/api/v1/events/{id}", operation_id = "getEvent", tag = "events",
    params(("id" = EventId, Path, description = "The event")),
    responses(
        (status = 200, description = "The event", body = Event),
        (status = 404, description = "`EVENT_NOT_FOUND`", body = flash_protocol::Problem, content_type = "application/problem+json"),
    ))]
pub async fn get(
    State(state): State<AppState>,
    Path(id): Path<EventId>,
) -> Result<Json<Event>, ApiError> {
    let row = crate::db::events::get(&state.db, id.0)
        .await?
        .ok_or_else(not_found)?;
    Ok(Json(row.to_event(OffsetDateTime::now_utc())))
}

fn in_range<T: PartialOrd + std::fmt::Display>(
    v: &mut Validator,
    field: &str,
    value: T,
    range: &std::ops::RangeInclusive<T>,
) {
    let ok = range.contains(&value);
    v.check(
        ok,
        field,
        format!("must be between {} and {}", range.start(), range.end()),
    );
}

/// Checks a complete event (a new one, or an existing one with a patch applied).
fn validate(row: &EventRow, sold: i64) -> Result<(), ApiError> {
    let mut v = Validator::default();
    for (field, text) in [("name", &row.name), ("venue", &row.venue)] {
        v.check(
            TEXT_CHARS.contains(&text.trim().chars().count()),
            field,
            format!(
                "must be {} to {} characters",
                TEXT_CHARS.start(),
                TEXT_CHARS.end()
            ),
        );
    }
    v.check(
        row.sale_opens_at < row.starts_at,
        "sale_opens_at",
        "must be before starts_at",
    );
    v.check(
        row.returns_until
            .is_none_or(|until| row.sale_opens_at < until && until <= row.starts_at),
        "returns_until",
        "must be after sale_opens_at and not after starts_at",
    );
    in_range(&mut v, "price_cents", row.price_cents, &PRICE_CENTS);
    v.check(
        row.currency.len() == 3 && row.currency.chars().all(|c| c.is_ascii_uppercase()),
        "currency",
        "must be an ISO 4217 code such as EUR",
    );
    let unsigned = |x: i32| u32::try_from(x).unwrap_or(u32::MAX);
    in_range(&mut v, "inventory", unsigned(row.inventory), &INVENTORY);
    v.check(
        i64::from(row.inventory) >= sold,
        "inventory",
        format!("cannot go below the {sold} tickets already held by orders"),
    );
    in_range(
        &mut v,
        "max_per_user",
        unsigned(row.max_per_user),
        &MAX_PER_USER,
    );
    in_range(
        &mut v,
        "queue.admit_per_sec",
        unsigned(row.admit_per_sec),
        &ADMIT_PER_SEC,
    );
    in_range(
        &mut v,
        "queue.max_active",
        unsigned(row.max_active),
        &MAX_ACTIVE,
    );
    in_range(
        &mut v,
        "queue.admission_ttl_s",
        unsigned(row.admission_ttl_s),
        &ADMISSION_TTL_S,
    );
    v.finish()
}

fn signed(x: u32) -> i32 {
    i32::try_from(x).unwrap_or(i32::MAX)
}

fn apply_queue(row: &mut EventRow, queue: QueueSettings) {
    row.admit_per_sec = signed(queue.admit_per_sec);
    row.max_active = signed(queue.max_active);
    row.admission_ttl_s = signed(queue.admission_ttl_s);
}

/// Creates an event and its waiting room (admin).
#[utoipa::path(post, path = "/api/v1/admin/events", operation_id = "createEvent", tag = "admin",
    request_body = NewEvent,
    security(("bearer" = [])),
    responses(
        (status = 201, description = "The event", body = Event),
        (status = 403, description = "`FORBIDDEN`: not an admin", body = flash_protocol::Problem, content_type = "application/problem+json"),
    ))]
pub async fn create(
    State(state): State<AppState>,
    AdminUser(admin): AdminUser,
    Json(new): Json<NewEvent>,
) -> Result<(StatusCode, Json<Event>), ApiError> {
    let event = create_event(&state.db, new, Some(admin.sub)).await?;
    tracing::info!(event = %event.id, admin = %admin.sub, "event created");
    Ok((StatusCode::CREATED, Json(event)))
}

/// Validates and saves a new event, records it in the audit log as made by `actor` (`None`:
/// the service itself, at start-up) and tells the gateway (outbox: `event.created`), in one
/// transaction: what `POST /api/v1/admin/events` does, also for events made at start-up.
pub async fn create_event(
    db: &PgPool,
    new: NewEvent,
    actor: Option<UserId>,
) -> Result<Event, ApiError> {
    let mut row = EventRow {
        id: Uuid::now_v7(),
        name: new.name.trim().to_owned(),
        venue: new.venue.trim().to_owned(),
        starts_at: micros(new.starts_at),
        sale_opens_at: micros(new.sale_opens_at),
        price_cents: new.price_cents,
        currency: new.currency,
        inventory: signed(new.inventory),
        max_per_user: signed(new.max_per_user),
        admit_per_sec: 0,
        max_active: 0,
        admission_ttl_s: 0,
        returns_until: new.returns_until.map(micros),
        remaining: signed(new.inventory),
        reserved_pending: 0,
    };
    apply_queue(&mut row, new.queue);
    validate(&row, 0)?;
    // The join challenge's initial difficulty travels to the gateway, which owns it from then
    // on: the api does not keep it.
    let mut challenge = Validator::default();
    in_range(
        &mut challenge,
        "queue.challenge_difficulty",
        new.queue.challenge_difficulty,
        &(0..=flash_protocol::challenge::MAX_DIFFICULTY),
    );
    challenge.finish()?;
    let now = OffsetDateTime::now_utc();
    let mut tx = db.begin().await?;
    crate::db::events::save(&mut tx, &row).await?;
    let mut fields = row.audit_fields();
    if new.queue.challenge_difficulty > 0 {
        fields.push((
            "queue.challenge_difficulty",
            new.queue.challenge_difficulty.into(),
        ));
    }
    audit::record(
        &mut tx,
        &audit::Entry {
            actor,
            action: AuditAction::EventCreate,
            event_id: Some(EventId(row.id)),
            changes: changes(&[], &fields),
            dedup_id: None,
        },
    )
    .await?;
    outbox::push(
        &mut tx,
        &[Outgoing::new(&EventCreated {
            event: row.queue_info(now),
            queue: QueueSettings {
                challenge_difficulty: new.queue.challenge_difficulty,
                ..row.queue()
            },
        })],
    )
    .await?;
    tx.commit().await?;
    Ok(row.to_event(now))
}

/// Stock and orders by status (admin).
#[utoipa::path(get, path = "/api/v1/admin/events/{id}/stats", operation_id = "getEventStats", tag = "admin",
    params(("id" = EventId, Path, description = "The event")),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The event's stock and orders", body = EventStats),
        (status = 403, description = "`FORBIDDEN`: not an admin", body = flash_protocol::Problem, content_type = "application/problem+json"),
        (status = 404, description = "`EVENT_NOT_FOUND`", body = flash_protocol::Problem, content_type = "application/problem+json"),
    ))]
pub async fn stats(
    State(state): State<AppState>,
    AdminUser(_): AdminUser,
    Path(id): Path<EventId>,
) -> Result<Json<EventStats>, ApiError> {
    let row = crate::db::events::get(&state.db, id.0)
        .await?
        .ok_or_else(not_found)?;
    let orders = crate::db::orders::count_by_status(&state.db, id.0).await?;
    Ok(Json(EventStats {
        event_id: id,
        inventory: u32::try_from(row.inventory).unwrap_or(0),
        remaining: u32::try_from(row.remaining).unwrap_or(0),
        orders,
    }))
}

/// Changes an event (admin); absent fields stay as they are. Queue settings sent here
/// replace the queue's; otherwise the gateway keeps the ones operators gave it.
#[utoipa::path(patch, path = "/api/v1/admin/events/{id}", operation_id = "updateEvent", tag = "admin",
    params(("id" = EventId, Path, description = "The event")),
    request_body = EventPatch,
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The event as it is now", body = Event),
        (status = 403, description = "`FORBIDDEN`: not an admin", body = flash_protocol::Problem, content_type = "application/problem+json"),
        (status = 404, description = "`EVENT_NOT_FOUND`", body = flash_protocol::Problem, content_type = "application/problem+json"),
    ))]
pub async fn update(
    State(state): State<AppState>,
    AdminUser(admin): AdminUser,
    Path(id): Path<EventId>,
    Json(patch): Json<EventPatch>,
) -> Result<Json<Event>, ApiError> {
    let now = OffsetDateTime::now_utc();
    let mut tx = state.db.begin().await?;
    let mut row = crate::db::events::lock(&mut tx, id.0)
        .await?
        .ok_or_else(not_found)?;
    let was = row.status(now);
    let before = row.audit_fields();
    let sold = i64::from(row.inventory) - i64::from(row.remaining);
    if let Some(name) = patch.name {
        row.name = name.trim().to_owned();
    }
    if let Some(venue) = patch.venue {
        row.venue = venue.trim().to_owned();
    }
    if let Some(starts_at) = patch.starts_at {
        row.starts_at = micros(starts_at);
    }
    if let Some(sale_opens_at) = patch.sale_opens_at {
        row.sale_opens_at = micros(sale_opens_at);
    }
    if let Some(price) = patch.price_cents {
        row.price_cents = price;
    }
    if let Some(currency) = patch.currency {
        row.currency = currency;
    }
    if let Some(max) = patch.max_per_user {
        row.max_per_user = signed(max);
    }
    if let Some(until) = patch.returns_until {
        row.returns_until = Some(micros(until));
    }
    let queue_set = patch.queue.is_some();
    if let Some(queue) = patch.queue {
        let mut settings = row.queue();
        settings.admit_per_sec = queue.admit_per_sec.unwrap_or(settings.admit_per_sec);
        settings.max_active = queue.max_active.unwrap_or(settings.max_active);
        settings.admission_ttl_s = queue.admission_ttl_s.unwrap_or(settings.admission_ttl_s);
        apply_queue(&mut row, settings);
    }
    if let Some(inventory) = patch.inventory {
        row.inventory = signed(inventory);
        row.remaining = i32::try_from((i64::from(row.inventory) - sold).max(0)).unwrap_or(0);
    }
    validate(&row, sold)?;
    crate::db::events::save(&mut tx, &row).await?;
    audit::record(
        &mut tx,
        &audit::Entry {
            actor: Some(admin.sub),
            action: AuditAction::EventUpdate,
            event_id: Some(id),
            changes: changes(&before, &row.audit_fields()),
            dedup_id: None,
        },
    )
    .await?;
    // Queue settings travel only when this request set them: the gateway owns them otherwise
    // (an operator may have throttled the queue there).
    let mut messages = Vec::new();
    if row.status(now) == EventStatus::SoldOut && was != EventStatus::SoldOut {
        // First, so that the queue holds its line (orders still being paid, counted now) before
        // the update saying "sold out" arrives; with none it closes.
        let counted = crate::db::events::get_in(&mut tx, id.0)
            .await?
            .ok_or_else(not_found)?;
        messages.push(Outgoing::new(&EventSoldOut {
            event_id: id,
            sold_out_at: now,
            reserved_pending: counted.returns_possible(now),
        }));
    }
    messages.push(Outgoing::new(&EventUpdated {
        event: row.queue_info(now),
        queue: queue_set.then(|| row.queue()),
        remaining: None,
    }));
    outbox::push(&mut tx, &messages).await?;
    tx.commit().await?;
    tracing::info!(event = %id, admin = %admin.sub, "event changed");
    Ok(Json(row.to_event(now)))
}
