//! The decision procedure: a batch of requests, decided in arrival order against the
//! database under the events' stock locks, then written with one statement per table.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use flash_protocol::ErrorCode;
use flash_protocol::messages::{EventSoldOut, GateConsumed, PaymentRequested};
use flash_protocol::order::{Order, OrderStatus};
use flash_protocol::{EventId, OrderId, PaymentId};
use sqlx::{PgConnection, PgPool};
use time::OffsetDateTime;
use uuid::Uuid;

use super::{OrderRequest, Outcome};
use crate::db::orders::{OrderRow, select_order};
use crate::db::outbox::{self, Outgoing};
use crate::error::ApiError;

/// Attempts of a batch that collides with another writer.
const ATTEMPTS: usize = 5;

#[derive(sqlx::FromRow)]
struct EventTerms {
    id: Uuid,
    price_cents: i64,
    currency: String,
    max_per_user: i32,
    sale_opens_at: OffsetDateTime,
    starts_at: OffsetDateTime,
    remaining: i32,
}

/// What was decided for one request.
enum Decision {
    Refuse(ErrorCode, String),
    /// Replay the order that an earlier request made (in the database).
    Replay(Uuid),
    /// Same key and request as an earlier request of this batch: same outcome as it.
    SameAs(usize),
    Accept(NewOrder),
}

struct NewOrder {
    id: Uuid,
    payment_id: Uuid,
    amount_cents: i64,
    currency: String,
}

fn refuse(code: ErrorCode, detail: impl Into<String>) -> Decision {
    Decision::Refuse(code, detail.into())
}

/// Whether a failed batch may succeed when tried again (a concurrent writer won a race).
fn retryable(error: &sqlx::Error) -> bool {
    match error {
        sqlx::Error::Database(db) => matches!(
            db.code().as_deref(),
            Some("23505" | "40001" | "40P01" | "23514")
        ),
        _ => false,
    }
}

/// Decides and writes `requests` in one transaction, retrying it when it collides with a
/// concurrent writer. Outcomes are in the order of `requests`.
pub async fn with_retries(
    pool: &PgPool,
    requests: &[OrderRequest],
    hold: Duration,
) -> Result<Vec<Outcome>, ApiError> {
    let mut attempt = 0;
    loop {
        attempt += 1;
        let result = async {
            let mut tx = pool.begin().await?;
            let outcomes = decide_and_write(&mut tx, requests, hold).await?;
            tx.commit().await?;
            Ok::<_, sqlx::Error>(outcomes)
        }
        .await;
        match result {
            Ok(outcomes) => return Ok(outcomes),
            Err(error) if retryable(&error) && attempt < ATTEMPTS => {
                ::metrics::counter!("api_order_batch_retries_total").increment(1);
                tracing::debug!(%error, attempt, "order batch collided; retrying");
            }
            Err(error) => return Err(error.into()),
        }
    }
}

/// What the database says about a batch's requests, read in one statement.
#[derive(sqlx::FromRow)]
struct Known {
    key_users: Option<Vec<Uuid>>,
    key_names: Option<Vec<String>>,
    key_hashes: Option<Vec<Vec<u8>>>,
    key_orders: Option<Vec<Uuid>>,
    used_jtis: Option<Vec<Uuid>>,
    live_users: Option<Vec<Uuid>>,
    live_events: Option<Vec<Uuid>>,
    live_quantities: Option<Vec<i64>>,
}

/// Postgres keeps microseconds: answer with what is stored.
fn micros(t: OffsetDateTime) -> OffsetDateTime {
    t.replace_nanosecond(t.nanosecond() / 1000 * 1000)
        .unwrap_or(t)
}

async fn decide_and_write(
    tx: &mut PgConnection,
    requests: &[OrderRequest],
    hold: Duration,
) -> Result<Vec<Outcome>, sqlx::Error> {
    let now = micros(OffsetDateTime::now_utc());
    let mut event_ids: Vec<Uuid> = requests.iter().map(|r| r.event.0).collect();
    event_ids.sort_unstable();
    event_ids.dedup();

    // The stock rows, locked in a fixed order: batches on one event run one after another,
    // and every later read in this transaction sees what the previous one committed.
    let terms: Vec<EventTerms> = sqlx::query_as(
        "SELECT e.id, e.price_cents, e.currency, e.max_per_user, e.sale_opens_at, e.starts_at, \
         s.remaining FROM event_stock s JOIN events e ON e.id = s.event_id \
         WHERE s.event_id = ANY($1) ORDER BY s.event_id FOR UPDATE OF s",
    )
    .bind(&event_ids)
    .fetch_all(&mut *tx)
    .await?;
    let mut remaining: HashMap<Uuid, i32> = terms.iter().map(|t| (t.id, t.remaining)).collect();
    let terms: HashMap<Uuid, EventTerms> = terms.into_iter().map(|t| (t.id, t)).collect();

    // Idempotency keys already used, gate tokens already consumed, tickets the buyers hold.
    let users: Vec<Uuid> = requests.iter().map(|r| r.user.0).collect();
    let keys: Vec<&str> = requests
        .iter()
        .map(|r| r.idempotency_key.as_str())
        .collect();
    let jtis: Vec<Uuid> = requests.iter().map(|r| r.jti).collect();
    let request_events: Vec<Uuid> = requests.iter().map(|r| r.event.0).collect();
    let known: Known = sqlx::query_as(
        "WITH keys AS ( \
           SELECT array_agg(k.user_id) AS key_users, array_agg(k.key) AS key_names, \
                  array_agg(k.request_hash) AS key_hashes, array_agg(k.order_id) AS key_orders \
           FROM idempotency_keys k JOIN unnest($1::uuid[], $2::text[]) AS r(user_id, key) \
           ON k.user_id = r.user_id AND k.key = r.key), \
         used AS ( \
           SELECT array_agg(jti) AS used_jtis FROM consumed_gate_tokens WHERE jti = ANY($3)), \
         live AS ( \
           SELECT array_agg(user_id) AS live_users, array_agg(event_id) AS live_events, \
                  array_agg(held) AS live_quantities \
           FROM (SELECT o.user_id, o.event_id, sum(o.quantity)::bigint AS held FROM orders o \
                 WHERE (o.user_id, o.event_id) IN (SELECT * FROM unnest($1::uuid[], $4::uuid[])) \
                 AND o.status IN ('pending_payment', 'paid') GROUP BY o.user_id, o.event_id) h) \
         SELECT * FROM keys, used, live",
    )
    .bind(&users)
    .bind(&keys)
    .bind(&jtis)
    .bind(&request_events)
    .fetch_one(&mut *tx)
    .await?;
    let used_keys: HashMap<(Uuid, String), (Vec<u8>, Uuid)> = known
        .key_users
        .unwrap_or_default()
        .into_iter()
        .zip(known.key_names.unwrap_or_default())
        .zip(known.key_hashes.unwrap_or_default())
        .zip(known.key_orders.unwrap_or_default())
        .map(|(((user, key), hash), order)| ((user, key), (hash, order)))
        .collect();
    let consumed: HashSet<Uuid> = known.used_jtis.unwrap_or_default().into_iter().collect();
    let mut live: HashMap<(Uuid, Uuid), i64> = known
        .live_users
        .unwrap_or_default()
        .into_iter()
        .zip(known.live_events.unwrap_or_default())
        .zip(known.live_quantities.unwrap_or_default())
        .collect();

    // Decide, in arrival order.
    let mut decisions = Vec::with_capacity(requests.len());
    let mut batch_keys: HashMap<(Uuid, &str), (usize, &[u8])> = HashMap::new();
    let mut batch_jtis: HashSet<Uuid> = HashSet::new();
    for (i, request) in requests.iter().enumerate() {
        let key = (request.user.0, request.idempotency_key.clone());
        let decision = if let Some((hash, order)) = used_keys.get(&key) {
            if *hash == request.request_hash {
                Decision::Replay(*order)
            } else {
                refuse(
                    ErrorCode::IdempotencyKeyReused,
                    "This Idempotency-Key was used for a different request",
                )
            }
        } else if let Some(&(first, hash)) =
            batch_keys.get(&(request.user.0, request.idempotency_key.as_str()))
        {
            if hash == request.request_hash.as_slice() {
                Decision::SameAs(first)
            } else {
                refuse(
                    ErrorCode::IdempotencyKeyReused,
                    "This Idempotency-Key was used for a different request",
                )
            }
        } else {
            batch_keys.insert(
                (request.user.0, request.idempotency_key.as_str()),
                (i, request.request_hash.as_slice()),
            );
            decide_new(
                request,
                &terms,
                &mut remaining,
                &mut live,
                &consumed,
                &mut batch_jtis,
                now,
            )
        };
        decisions.push(decision);
    }

    // Write what was accepted, in one statement.
    let accepted: Vec<(&OrderRequest, &NewOrder)> = requests
        .iter()
        .zip(&decisions)
        .filter_map(|(r, d)| match d {
            Decision::Accept(order) => Some((r, order)),
            _ => None,
        })
        .collect();
    if !accepted.is_empty() {
        let sold_out: Vec<Uuid> = event_ids
            .iter()
            .filter(|event| {
                remaining.get(event) == Some(&0)
                    && terms.get(event).is_some_and(|t| t.remaining > 0)
            })
            .copied()
            .collect();
        write_accepted(tx, &accepted, &sold_out, hold, now).await?;
    }

    // Replays answer with the stored order.
    let mut wanted: Vec<Uuid> = decisions
        .iter()
        .filter_map(|d| match d {
            Decision::Replay(id) => Some(*id),
            _ => None,
        })
        .collect();
    wanted.sort_unstable();
    wanted.dedup();
    let rows: Vec<OrderRow> = if wanted.is_empty() {
        Vec::new()
    } else {
        sqlx::query_as(select_order!("WHERE id = ANY($1)"))
            .bind(&wanted)
            .fetch_all(&mut *tx)
            .await?
    };
    let stored: HashMap<Uuid, Order> = rows.into_iter().map(|r| (r.id, r.to_order())).collect();
    let created = |request: &OrderRequest, order: &NewOrder| Order {
        id: OrderId(order.id),
        event_id: request.event,
        quantity: request.quantity,
        amount_cents: order.amount_cents,
        currency: order.currency.clone(),
        status: OrderStatus::PendingPayment,
        created_at: now,
        updated_at: now,
    };
    let resolve = |index: usize, replay: bool| -> Outcome {
        match &decisions[index] {
            Decision::Refuse(code, detail) => Outcome::Refused(*code, detail.clone()),
            Decision::Replay(id) => stored.get(id).map_or_else(
                || Outcome::Refused(ErrorCode::Internal, "order vanished".into()),
                |order| Outcome::Replayed(order.clone()),
            ),
            Decision::Accept(order) if replay => {
                Outcome::Replayed(created(&requests[index], order))
            }
            Decision::Accept(order) => Outcome::Created(created(&requests[index], order)),
            Decision::SameAs(_) => Outcome::Refused(ErrorCode::Internal, "unresolved".into()),
        }
    };
    Ok((0..decisions.len())
        .map(|i| match decisions[i] {
            Decision::SameAs(first) => resolve(first, true),
            _ => resolve(i, false),
        })
        .collect())
}

#[allow(clippy::too_many_arguments)]
fn decide_new(
    request: &OrderRequest,
    terms: &HashMap<Uuid, EventTerms>,
    remaining: &mut HashMap<Uuid, i32>,
    live: &mut HashMap<(Uuid, Uuid), i64>,
    consumed: &HashSet<Uuid>,
    batch_jtis: &mut HashSet<Uuid>,
    now: OffsetDateTime,
) -> Decision {
    let Some(event) = terms.get(&request.event.0) else {
        return refuse(ErrorCode::EventNotFound, "No such event");
    };
    if now >= event.starts_at {
        return refuse(ErrorCode::SoldOut, "The event has ended");
    }
    if now < event.sale_opens_at {
        return refuse(ErrorCode::Validation, "The sale has not opened yet");
    }
    if consumed.contains(&request.jti) || batch_jtis.contains(&request.jti) {
        return refuse(
            ErrorCode::GateTokenUsed,
            "This gate token was already used for an order",
        );
    }
    let quantity = i64::from(request.quantity);
    let held = live.get(&(request.user.0, event.id)).copied().unwrap_or(0);
    if held + quantity > i64::from(event.max_per_user) {
        return refuse(
            ErrorCode::LimitExceeded,
            format!(
                "At most {} tickets per buyer; you hold {held}",
                event.max_per_user
            ),
        );
    }
    let left = remaining.get(&event.id).copied().unwrap_or(0);
    if i64::from(left) < quantity {
        return refuse(
            ErrorCode::SoldOut,
            if left == 0 {
                "Sold out".to_owned()
            } else {
                format!("Only {left} tickets remain")
            },
        );
    }
    let Some(amount_cents) = event.price_cents.checked_mul(quantity) else {
        return refuse(ErrorCode::Validation, "The amount is too large");
    };
    remaining.insert(event.id, left - i32::try_from(quantity).unwrap_or(i32::MAX));
    *live.entry((request.user.0, event.id)).or_default() += quantity;
    batch_jtis.insert(request.jti);
    Decision::Accept(NewOrder {
        id: Uuid::now_v7(),
        payment_id: Uuid::now_v7(),
        amount_cents,
        currency: event.currency.clone(),
    })
}

async fn write_accepted(
    tx: &mut PgConnection,
    accepted: &[(&OrderRequest, &NewOrder)],
    sold_out: &[Uuid],
    hold: Duration,
    now: OffsetDateTime,
) -> Result<(), sqlx::Error> {
    let ids: Vec<Uuid> = accepted.iter().map(|(_, o)| o.id).collect();
    let events: Vec<Uuid> = accepted.iter().map(|(r, _)| r.event.0).collect();
    let users: Vec<Uuid> = accepted.iter().map(|(r, _)| r.user.0).collect();
    let quantities: Vec<i32> = accepted
        .iter()
        .map(|(r, _)| i32::try_from(r.quantity).unwrap_or(i32::MAX))
        .collect();
    let amounts: Vec<i64> = accepted.iter().map(|(_, o)| o.amount_cents).collect();
    let currencies: Vec<&str> = accepted.iter().map(|(_, o)| o.currency.as_str()).collect();
    let payments: Vec<Uuid> = accepted.iter().map(|(_, o)| o.payment_id).collect();
    let jtis: Vec<Uuid> = accepted.iter().map(|(r, _)| r.jti).collect();
    let keys: Vec<&str> = accepted
        .iter()
        .map(|(r, _)| r.idempotency_key.as_str())
        .collect();
    let hashes: Vec<&[u8]> = accepted
        .iter()
        .map(|(r, _)| r.request_hash.as_slice())
        .collect();

    let mut messages = Vec::with_capacity(accepted.len() * 2 + sold_out.len());
    for (request, order) in accepted {
        messages.push(Outgoing::with_id(
            order.payment_id,
            &PaymentRequested {
                payment_id: PaymentId(order.payment_id),
                order_id: OrderId(order.id),
                user_id: request.user,
                amount_cents: order.amount_cents,
                currency: order.currency.clone(),
                requested_at: now,
            },
        ));
        messages.push(Outgoing::new(&GateConsumed {
            event_id: request.event,
            user_id: request.user,
            jti: request.jti,
            order_id: OrderId(order.id),
            consumed_at: now,
        }));
    }
    for event in sold_out {
        messages.push(Outgoing::new(&EventSoldOut {
            event_id: EventId(*event),
            sold_out_at: now,
        }));
    }
    let outbox = outbox::Columns::of(&messages);

    // Stock per event taken by this batch.
    let mut taken: HashMap<Uuid, i64> = HashMap::new();
    for (request, _) in accepted {
        *taken.entry(request.event.0).or_default() += i64::from(request.quantity);
    }
    let (stock_events, stock_taken): (Vec<Uuid>, Vec<i64>) = taken.into_iter().unzip();

    sqlx::query(
        "WITH placed AS ( \
           INSERT INTO orders (id, event_id, user_id, quantity, amount_cents, currency, payment_id, \
                               hold_expires_at, created_at, updated_at) \
           SELECT id, event_id, user_id, quantity, amount_cents, currency, payment_id, $8, $9, $9 \
           FROM unnest($1::uuid[], $2::uuid[], $3::uuid[], $4::int[], $5::bigint[], $6::text[], $7::uuid[]) \
             AS o(id, event_id, user_id, quantity, amount_cents, currency, payment_id)), \
         consumed AS ( \
           INSERT INTO consumed_gate_tokens (jti, order_id, consumed_at) \
           SELECT * , $9 FROM unnest($10::uuid[], $1::uuid[])), \
         keyed AS ( \
           INSERT INTO idempotency_keys (user_id, key, request_hash, order_id, created_at) \
           SELECT *, $9 FROM unnest($3::uuid[], $11::text[], $12::bytea[], $1::uuid[])), \
         announced AS ( \
           INSERT INTO outbox (message_id, exchange, routing_key, message_type, payload) \
           SELECT * FROM unnest($13::uuid[], $14::text[], $15::text[], $16::text[], $17::jsonb[])) \
         UPDATE event_stock s SET remaining = s.remaining - d.taken \
         FROM unnest($18::uuid[], $19::bigint[]) AS d(event_id, taken) WHERE s.event_id = d.event_id",
    )
    .bind(&ids)
    .bind(&events)
    .bind(&users)
    .bind(&quantities)
    .bind(&amounts)
    .bind(&currencies)
    .bind(&payments)
    .bind(now + hold)
    .bind(now)
    .bind(&jtis)
    .bind(&keys)
    .bind(&hashes)
    .bind(&outbox.ids)
    .bind(&outbox.exchanges)
    .bind(&outbox.routing_keys)
    .bind(&outbox.types)
    .bind(&outbox.payloads)
    .bind(&stock_events)
    .bind(&stock_taken)
    .execute(&mut *tx)
    .await?;
    Ok(())
}
