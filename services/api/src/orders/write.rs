//! The decision procedure: a batch of requests, decided in arrival order against the
//! database under the events' stock locks, then written with one statement per table.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use flash_protocol::ErrorCode;
use flash_protocol::messages::{EventSoldOut, GateConsumed, Message as _, PaymentRequested};
use flash_protocol::order::{Order, OrderStatus};
use flash_protocol::{EventId, OrderId, PaymentId};
use sqlx::{PgConnection, PgPool};
use time::OffsetDateTime;
use uuid::Uuid;

use super::{OrderRequest, Outcome};
use crate::db::micros;
use crate::db::orders::{OrderRow, select_order};
use crate::db::outbox::{self, Outgoing};
use crate::error::ApiError;

/// Attempts of a batch that collides with another writer.
const ATTEMPTS: usize = 5;

/// The terms and stock of the events in `$1`.
macro_rules! select_terms {
    () => {
        "SELECT e.id, e.price_cents, e.currency, e.max_per_user, e.sale_opens_at, e.starts_at, \
         s.remaining FROM event_stock s JOIN events e ON e.id = s.event_id \
         WHERE s.event_id = ANY($1) ORDER BY s.event_id"
    };
}

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

/// Whether a failed batch may succeed when tried again: a concurrent writer won a race, or
/// the connection broke (a batch that did commit is then found by its idempotency keys and
/// answered the same).
fn retryable(error: &sqlx::Error) -> bool {
    match error {
        sqlx::Error::Io(_) | sqlx::Error::Protocol(_) => true,
        sqlx::Error::Database(db) => matches!(
            db.code().as_deref(),
            Some("23505" | "40001" | "40P01" | "23514")
        ),
        _ => false,
    }
}

/// How a batch reads the stock it decides on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Locking {
    /// Read without locks, then write in one statement; the constraints (stock, holdings,
    /// unique token and key) turn a race lost to another writer into an error, and the batch is
    /// decided again. Batches of one event overlap: only the write waits for the stock row.
    Optimistic,
    /// Lock the events' stock rows first (the classic design), so nothing can change under
    /// the decision; batches of one event run one after another.
    Pessimistic,
}

/// Decides and writes `requests` atomically, deciding again when a concurrent writer won a
/// race. Retries take the stock lock first, so a batch always makes progress. Outcomes are in
/// the order of `requests`.
pub async fn with_retries(
    pool: &PgPool,
    requests: &[OrderRequest],
    hold: Duration,
    locking: Locking,
) -> Result<Vec<Outcome>, ApiError> {
    let mut attempt = 0;
    loop {
        attempt += 1;
        let result = if locking == Locking::Optimistic && attempt == 1 {
            async {
                let mut conn = pool.acquire().await?;
                decide_and_write(&mut conn, requests, hold, Locking::Optimistic).await
            }
            .await
        } else {
            async {
                let mut tx = pool.begin().await?;
                let outcomes =
                    decide_and_write(&mut tx, requests, hold, Locking::Pessimistic).await?;
                tx.commit().await?;
                Ok::<_, sqlx::Error>(outcomes)
            }
            .await
        };
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

/// Pessimistic: runs in the caller's transaction. Optimistic: on a connection outside any
/// transaction, where the reads see what is committed and the write is one atomic statement.
async fn decide_and_write(
    tx: &mut PgConnection,
    requests: &[OrderRequest],
    hold: Duration,
    locking: Locking,
) -> Result<Vec<Outcome>, sqlx::Error> {
    let now = micros(OffsetDateTime::now_utc());
    let mut event_ids: Vec<Uuid> = requests.iter().map(|r| r.event.0).collect();
    event_ids.sort_unstable();
    event_ids.dedup();

    // Pessimistic: the stock rows, locked in a fixed order, so every later read in this
    // transaction sees what the previous batch committed.
    let terms: Vec<EventTerms> = sqlx::query_as(match locking {
        Locking::Pessimistic => concat!(select_terms!(), " FOR UPDATE OF s"),
        Locking::Optimistic => select_terms!(),
    })
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
           FROM unnest($1::uuid[], $2::text[]) AS r(user_id, key) \
           CROSS JOIN LATERAL ( \
             SELECT k.user_id, k.key, k.request_hash, k.order_id FROM idempotency_keys k \
             WHERE k.user_id = r.user_id AND k.key = r.key LIMIT 1) k), \
         used AS ( \
           SELECT array_agg(c.jti) AS used_jtis FROM unnest($3::uuid[]) AS r(jti) \
           CROSS JOIN LATERAL ( \
             SELECT c.jti FROM consumed_gate_tokens c WHERE c.jti = r.jti LIMIT 1) c), \
         live AS ( \
           SELECT array_agg(h.user_id) AS live_users, array_agg(h.event_id) AS live_events, \
                  array_agg(h.held::bigint) AS live_quantities \
           FROM (SELECT DISTINCT * FROM unnest($1::uuid[], $4::uuid[])) AS r(user_id, event_id) \
           CROSS JOIN LATERAL ( \
             SELECT h.user_id, h.event_id, h.held FROM holdings h \
             WHERE h.user_id = r.user_id AND h.event_id = r.event_id LIMIT 1) h) \
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
        write_accepted(tx, &accepted, &terms, hold, now).await?;
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
        refund: None,
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

/// Writes the accepted orders in one statement: orders, consumed tokens, idempotency keys,
/// outbox messages, holdings and stock. `event.sold_out` is written by the same statement
/// when, and only when, it takes an event's stock to zero; each `gate.consumed` carries the
/// stock it left (`remaining`).
async fn write_accepted(
    tx: &mut PgConnection,
    accepted: &[(&OrderRequest, &NewOrder)],
    terms: &HashMap<Uuid, EventTerms>,
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
    let caps: Vec<i32> = accepted
        .iter()
        .map(|(r, _)| terms.get(&r.event.0).map_or(0, |t| t.max_per_user))
        .collect();

    let mut messages = Vec::with_capacity(accepted.len() * 2);
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
            // The stock once written: the statement fills it in (below).
            remaining: None,
        }));
    }
    let outbox = outbox::Columns::of(&messages);

    // Stock per event taken by this batch, and the sold-out message each would announce.
    // The message says how many orders are still being paid (tickets that may come back to
    // the line): those of this batch, and those before it, counted in the statement.
    let mut taken: HashMap<Uuid, (i64, i64)> = HashMap::new();
    for (request, _) in accepted {
        let (tickets, orders) = taken.entry(request.event.0).or_default();
        *tickets += i64::from(request.quantity);
        *orders += 1;
    }
    let mut stock_events = Vec::with_capacity(taken.len());
    let mut stock_taken = Vec::with_capacity(taken.len());
    let mut placed_orders = Vec::with_capacity(taken.len());
    for (event, (tickets, orders)) in taken {
        stock_events.push(event);
        stock_taken.push(tickets);
        placed_orders.push(orders);
    }
    let sold_out: Vec<Outgoing> = stock_events
        .iter()
        .map(|event| {
            Outgoing::new(&EventSoldOut {
                event_id: EventId(*event),
                sold_out_at: now,
                reserved_pending: 0,
            })
        })
        .collect();
    let sold_out_ids: Vec<Uuid> = sold_out.iter().map(|m| m.message_id).collect();
    let sold_out_payloads: Vec<&serde_json::Value> = sold_out.iter().map(|m| &m.payload).collect();

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
         held AS ( \
           INSERT INTO holdings (user_id, event_id, held, cap) \
           SELECT user_id, event_id, sum(quantity), max(cap) \
           FROM unnest($3::uuid[], $2::uuid[], $4::int[], $20::int[]) AS h(user_id, event_id, quantity, cap) \
           GROUP BY user_id, event_id \
           ON CONFLICT (user_id, event_id) \
           DO UPDATE SET held = holdings.held + excluded.held, cap = excluded.cap), \
         stock AS ( \
           UPDATE event_stock s SET remaining = s.remaining - d.taken \
           FROM unnest($18::uuid[], $19::bigint[]) AS d(event_id, taken) \
           WHERE s.event_id = d.event_id RETURNING s.event_id, s.remaining), \
         announced AS ( \
           INSERT INTO outbox (message_id, exchange, routing_key, message_type, payload) \
           SELECT m.message_id, m.exchange, m.routing_key, m.message_type, \
                  CASE WHEN stock.event_id IS NOT NULL \
                  THEN jsonb_set(m.payload, '{remaining}', to_jsonb(stock.remaining)) \
                  ELSE m.payload END \
           FROM unnest($13::uuid[], $14::text[], $15::text[], $16::text[], $17::jsonb[]) \
             AS m(message_id, exchange, routing_key, message_type, payload) \
           LEFT JOIN stock ON m.message_type = $27 \
             AND stock.event_id = (m.payload->>'event_id')::uuid) \
         INSERT INTO outbox (message_id, exchange, routing_key, message_type, payload) \
         SELECT m.message_id, $23, $24, $25, jsonb_set(m.payload, '{reserved_pending}', to_jsonb( \
           CASE WHEN ev.returns_until IS NOT NULL AND ev.returns_until <= $9 THEN 0 \
           ELSE m.placed + (SELECT count(*) FROM orders o \
                            WHERE o.event_id = m.event_id AND o.status = 'pending_payment') END)) \
         FROM unnest($18::uuid[], $21::uuid[], $22::jsonb[], $26::bigint[]) \
           AS m(event_id, message_id, payload, placed) \
         JOIN stock ON stock.event_id = m.event_id JOIN events ev ON ev.id = m.event_id \
         WHERE stock.remaining = 0",
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
    .bind(&caps)
    .bind(&sold_out_ids)
    .bind(&sold_out_payloads)
    .bind(EventSoldOut::EXCHANGE.base_name())
    .bind(EventSoldOut::ROUTING_KEY)
    .bind(EventSoldOut::TYPE)
    .bind(&placed_orders)
    .bind(GateConsumed::TYPE)
    .execute(&mut *tx)
    .await?;
    Ok(())
}
