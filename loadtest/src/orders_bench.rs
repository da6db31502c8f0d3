//! The orders benchmark: one hot event, many concurrent buyers through HTTP, each with a
//! valid access token and gate token; then the database is checked for oversell.
//!
//! Buyers are inserted into the api's database directly (Argon2 at production cost would make
//! preparing them the benchmark) and their tokens signed with the local dev keys, so the api
//! under test must run with `FLASH_DEV_KEYS=true`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use flash_protocol::claims::{GATE_AUDIENCE, GATE_ISSUER, GateClaims, Role};
use flash_protocol::event::Event;
use flash_protocol::{EventId, UserId};
use flash_tokens::SigningKey;
use hyper::{Method, StatusCode};
use serde::Serialize;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::http::Conn;
use crate::setup::DevTokens;
use crate::stats::{Latencies, Summary};

#[derive(Debug, clap::Args)]
pub struct OrdersArgs {
    /// The api (host:port).
    #[arg(long, default_value = "127.0.0.1:4000")]
    pub api: SocketAddr,
    /// The api's database, to create buyers and to check for oversell afterwards.
    #[arg(long, env = "DATABASE_URL")]
    pub database_url: String,
    /// Orders to place (one buyer each).
    #[arg(long, default_value_t = 100_000)]
    pub orders: usize,
    #[arg(long, default_value_t = 64)]
    pub concurrency: usize,
    /// Tickets on sale.
    #[arg(long, default_value_t = 1_000_000)]
    pub stock: u32,
    /// A label for the result (e.g. the api's order strategy).
    #[arg(long, default_value = "")]
    pub label: String,
}

struct Buyer {
    access: String,
    gate: String,
    key: String,
}

#[derive(Debug, Serialize)]
struct OrdersResult {
    bench: &'static str,
    label: String,
    orders_ok: u64,
    seconds: f64,
    per_sec: f64,
    latency: Summary,
    errors: Vec<(u16, u64)>,
    stock: u32,
    sold: i64,
    remaining: i64,
    oversold: bool,
    violations: Vec<crate::audit::Violation>,
}

pub async fn run(args: OrdersArgs) -> anyhow::Result<()> {
    let pool = flash_kit::stores::connect_postgres(&args.database_url, 4).await?;
    let dev = DevTokens::new()?;
    let admin = dev.token(UserId::new_v7(), Role::Admin, 3600)?;
    let mut conn = Conn::open(args.api, None).await?;
    let now = OffsetDateTime::now_utc();
    let fmt = |t: OffsetDateTime| t.format(&time::format_description::well_known::Rfc3339);
    let body = serde_json::json!({
        "name": "Orders benchmark", "venue": "Loopback Arena",
        "starts_at": fmt(now + time::Duration::days(1))?,
        "sale_opens_at": fmt(now - time::Duration::minutes(1))?,
        "price_cents": 4200, "currency": "EUR",
        "inventory": args.stock, "max_per_user": 1,
        "queue": {"admit_per_sec": 100_000, "max_active": 1_000_000, "admission_ttl_s": 3600}
    });
    let reply = conn
        .expect(
            "creating the event",
            StatusCode::CREATED,
            Method::POST,
            "/api/v1/admin/events",
            Some(&admin),
            Some(serde_json::to_vec(&body)?),
        )
        .await?;
    let event: Event = serde_json::from_slice(&reply)?;

    eprintln!("preparing {} buyers…", args.orders);
    let ids: Vec<Uuid> = (0..args.orders).map(|_| Uuid::now_v7()).collect();
    for chunk in ids.chunks(10_000) {
        let emails: Vec<String> = chunk
            .iter()
            .map(|id| format!("{}@bench.invalid", id.simple()))
            .collect();
        sqlx::query(
            "INSERT INTO users (id, email, password_hash) \
             SELECT id, email, 'bench: no password' FROM unnest($1::uuid[], $2::text[]) AS u(id, email)",
        )
        .bind(chunk)
        .bind(&emails)
        .execute(&pool)
        .await
        .context("inserting buyers")?;
    }
    let gate_key = SigningKey::dev(flash_tokens::keys::DEV_GATE_KEY)?;
    let exp = now.unix_timestamp() + 3600;
    let buyers: Vec<Buyer> = ids
        .iter()
        .map(|id| {
            let user = UserId(*id);
            Ok(Buyer {
                access: dev.token(user, Role::User, 3600)?,
                gate: gate_key.sign(&GateClaims {
                    sub: user,
                    evt: EventId(event.id.0),
                    jti: Uuid::new_v4(),
                    iss: GATE_ISSUER.into(),
                    aud: GATE_AUDIENCE.into(),
                    iat: now.unix_timestamp(),
                    exp,
                })?,
                key: Uuid::new_v4().to_string(),
            })
        })
        .collect::<anyhow::Result<_>>()?;
    let buyers = Arc::new(buyers);

    eprintln!("ordering with {} concurrent buyers…", args.concurrency);
    let next = Arc::new(AtomicUsize::new(0));
    let path = Arc::new(format!("/api/v1/events/{}/orders", event.id));
    let order_body = Arc::new(serde_json::to_vec(&serde_json::json!({"quantity": 1}))?);
    let started = Instant::now();
    let mut workers = Vec::new();
    for _ in 0..args.concurrency {
        let mut conn = Conn::open(args.api, None).await?;
        let (buyers, next, path, order_body) = (
            Arc::clone(&buyers),
            Arc::clone(&next),
            Arc::clone(&path),
            Arc::clone(&order_body),
        );
        workers.push(tokio::spawn(async move {
            let mut latencies = Latencies::new();
            let mut errors: std::collections::BTreeMap<u16, u64> = Default::default();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(buyer) = buyers.get(i) else { break };
                let began = Instant::now();
                let outcome = conn
                    .request_with(
                        Method::POST,
                        &path,
                        Some(&buyer.access),
                        Some(order_body.to_vec()),
                        &[("gate-token", &buyer.gate), ("idempotency-key", &buyer.key)],
                    )
                    .await;
                match outcome {
                    Ok((StatusCode::CREATED, _)) => latencies.record(began.elapsed()),
                    Ok((status, _)) => *errors.entry(status.as_u16()).or_default() += 1,
                    Err(_) => *errors.entry(0).or_default() += 1,
                }
            }
            (latencies, errors)
        }));
    }
    let mut latencies = Latencies::new();
    let mut errors: std::collections::BTreeMap<u16, u64> = Default::default();
    for worker in workers {
        let (l, e) = worker.await?;
        latencies.merge(&l);
        for (k, v) in e {
            *errors.entry(k).or_default() += v;
        }
    }
    let elapsed = started.elapsed();

    // The sale's invariants, from the database.
    let ledger = crate::audit::ledger(&pool, event.id.0)
        .await?
        .context("the benchmark's event is gone")?;
    let violations = crate::audit::violations(&ledger, crate::audit::Pending::Allowed);
    let (sold, remaining) = (ledger.live_tickets, ledger.remaining);
    let result = OrdersResult {
        bench: "orders",
        label: args.label,
        orders_ok: latencies.count(),
        seconds: elapsed.as_secs_f64(),
        per_sec: latencies.count() as f64 / elapsed.as_secs_f64(),
        latency: latencies.summary(),
        errors: errors.into_iter().collect(),
        stock: args.stock,
        sold,
        remaining,
        oversold: !violations.is_empty() || sold != i64::try_from(latencies.count()).unwrap_or(-1),
        violations,
    };
    eprintln!(
        "orders [{}]: {:.0}/s over {:.1}s; {}; errors {:?}; sold {} + remaining {} = stock {}: {}",
        result.label,
        result.per_sec,
        result.seconds,
        result.latency,
        result.errors,
        sold,
        remaining,
        args.stock,
        if result.oversold {
            "INCONSISTENT"
        } else {
            "consistent, no oversell"
        }
    );
    tokio::time::sleep(Duration::from_millis(10)).await;
    crate::bench::print_result(&result)?;
    pool.close().await;
    if result.oversold {
        bail!("the sale's invariants do not hold: {:?}", result.violations);
    }
    Ok(())
}
