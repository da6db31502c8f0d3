//! The crowd: simulated buyers who sign up and log in through the api's public auth endpoints,
//! so the drill exercises the real registration and login path (Argon2 included) before the
//! measured window opens. To keep 100,000 sign-ups quick, the suite under a drill runs with a
//! low Argon2 cost (`ARGON2_MEMORY_KIB`, `ARGON2_ITERATIONS`): the same code at a cost that
//! does not make preparation the bottleneck.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use flash_protocol::UserId;
use flash_protocol::auth::{LoginRequest, RegisterRequest, RegisterResponse, TokenResponse};
use hyper::{Method, StatusCode};

use crate::http::Conn;

/// One signed-in buyer.
#[derive(Clone)]
pub struct Member {
    pub email: String,
    pub user: UserId,
    pub access: String,
    pub refresh: String,
}

/// A prepared crowd.
pub struct Crowd {
    pub members: Vec<Member>,
    pub elapsed: Duration,
}

/// The email of member `index` of run `run` (distinct per run, so drills can repeat).
#[must_use]
pub fn email(run: &str, index: usize) -> String {
    format!("drill-{run}-{index}@drill.example")
}

fn password(run: &str, index: usize) -> String {
    format!("Drill {run} passphrase {index}")
}

/// Signs up and logs in `count` members (indices `0..count`) through `api` with `concurrency`
/// connections.
///
/// # Errors
/// The first answer other than 201 (sign-up) or 200 (login), or a connection failure.
pub async fn sign_up(
    api: SocketAddr,
    run: &str,
    count: usize,
    concurrency: usize,
) -> anyhow::Result<Crowd> {
    sign_up_indices(api, run, &(0..count).collect::<Vec<_>>(), concurrency).await
}

/// Signs up and logs in the members with these `indices` (a drill process's share of the
/// crowd); the members come back in the order of `indices`.
///
/// # Errors
/// As [`sign_up`].
pub async fn sign_up_indices(
    api: SocketAddr,
    run: &str,
    indices: &[usize],
    concurrency: usize,
) -> anyhow::Result<Crowd> {
    let started = Instant::now();
    let count = indices.len();
    let indices: Arc<[usize]> = indices.into();
    let next = Arc::new(AtomicUsize::new(0));
    let mut workers = tokio::task::JoinSet::new();
    for _ in 0..concurrency.clamp(1, count.max(1)) {
        let next = Arc::clone(&next);
        let indices = Arc::clone(&indices);
        let run = run.to_owned();
        workers.spawn(async move {
            let mut conn = Conn::open(api, None).await?;
            let mut joined = Vec::new();
            loop {
                let slot = next.fetch_add(1, Ordering::Relaxed);
                let Some(&index) = indices.get(slot) else {
                    return anyhow::Ok(joined);
                };
                joined.push((slot, one(&mut conn, &run, index).await?));
            }
        });
    }
    let mut members: Vec<Option<Member>> = vec![None; count];
    while let Some(done) = workers.join_next().await {
        for (slot, member) in done.context("a sign-up worker panicked")?? {
            members[slot] = Some(member);
        }
    }
    Ok(Crowd {
        members: members.into_iter().flatten().collect(),
        elapsed: started.elapsed(),
    })
}

async fn one(conn: &mut Conn, run: &str, index: usize) -> anyhow::Result<Member> {
    let email = email(run, index);
    let password = password(run, index);
    let register = serde_json::to_vec(&RegisterRequest {
        email: email.clone(),
        password: password.clone(),
    })?;
    let body = conn
        .expect(
            &format!("sign-up of {email}"),
            StatusCode::CREATED,
            Method::POST,
            "/api/v1/auth/register",
            None,
            Some(register),
        )
        .await?;
    let RegisterResponse { user_id } = serde_json::from_slice(&body)?;
    let login = serde_json::to_vec(&LoginRequest {
        email: email.clone(),
        password,
    })?;
    let body = conn
        .expect(
            &format!("login of {email}"),
            StatusCode::OK,
            Method::POST,
            "/api/v1/auth/login",
            None,
            Some(login),
        )
        .await?;
    let tokens: TokenResponse = serde_json::from_slice(&body)?;
    Ok(Member {
        email,
        user: user_id,
        access: tokens.access_token,
        refresh: tokens.refresh_token,
    })
}

/// `flash-drill crowd`: signs up a crowd and reports how fast (a check of the preparation step).
#[derive(Debug, clap::Args)]
pub struct CrowdArgs {
    /// The api, or the suite's origin (host:port).
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub api: SocketAddr,
    #[arg(long, default_value_t = 1_000)]
    pub count: usize,
    #[arg(long, default_value_t = 64)]
    pub concurrency: usize,
    /// Distinguishes this crowd's emails from earlier ones (default: the current time).
    #[arg(long)]
    pub run: Option<String>,
}

/// Runs `flash-drill crowd`.
pub async fn run(args: CrowdArgs) -> anyhow::Result<()> {
    let run = args
        .run
        .unwrap_or_else(|| time::OffsetDateTime::now_utc().unix_timestamp().to_string());
    let crowd = sign_up(args.api, &run, args.count, args.concurrency).await?;
    let seconds = crowd.elapsed.as_secs_f64();
    crate::bench::print_result(&serde_json::json!({
        "bench": "crowd",
        "members": crowd.members.len(),
        "seconds": seconds,
        "per_sec": crowd.members.len() as f64 / seconds,
    }))
}
