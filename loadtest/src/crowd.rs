//! The crowd: simulated buyers who sign up and log in through the api's public auth endpoints,
//! so the drill exercises the real registration and login path (Argon2 included) before the
//! measured window opens. To keep 100,000 sign-ups quick, the suite under a drill runs with a
//! low Argon2 cost (`ARGON2_MEMORY_KIB`, `ARGON2_ITERATIONS`): the same code at a cost that
//! does not make preparation the bottleneck.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
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

/// Members signed up from one source address: a crowd comes from many addresses, and the
/// api limits sign-ups and logins per address and per network. 20 stays well inside the
/// defaults (60 sign-ups per address and 600 per /24 in 10 minutes), so a crowd of any size
/// is prepared through the real path at the production limits.
pub const MEMBERS_PER_SOURCE: usize = 20;

/// The `i`th of many source addresses on loopback, each in a /24 of its own:
/// 127.(1 + i / 256).(i % 256).`host` (65,024 of them before they wrap).
#[must_use]
pub fn spread_source(i: usize, host: u8) -> IpAddr {
    let i = i % (254 * 256);
    let (high, low) = (i / 256, i % 256);
    IpAddr::V4(Ipv4Addr::new(
        127,
        u8::try_from(1 + high).unwrap_or(u8::MAX),
        u8::try_from(low).unwrap_or(0),
        host,
    ))
}

/// Sources a crowd's sign-ups start from are picked per run among this many blocks, so that
/// drills run one after another sign up from different addresses (each address may sign up 60
/// in 10 minutes): one block holds 1,250 sources, 25,000 members.
///
/// The blocks stay below 127.200.0.0, where `flash-drill abuse`'s attackers come from (a
/// crowd of more than 25,000 runs on into the next blocks).
const SIGNUP_BLOCKS: usize = 40;
const SOURCES_PER_BLOCK: usize = 1_250;

/// The first sign-up source of the crowd named `run`.
fn first_source(run: &str) -> usize {
    let hash = run.bytes().fold(0usize, |h, b| {
        h.wrapping_mul(31).wrapping_add(usize::from(b))
    });
    hash % SIGNUP_BLOCKS * SOURCES_PER_BLOCK
}

/// Where member `index` of the crowd named `run` signs up and logs in from: its own source
/// against a loopback api (`127.A.B.3`, [`MEMBERS_PER_SOURCE`] members each, from a block
/// picked by `run`), the system's choice otherwise.
#[must_use]
pub fn signup_source(api: SocketAddr, run: &str, index: usize) -> Option<IpAddr> {
    (api.ip().is_loopback() && api.is_ipv4())
        .then(|| spread_source(first_source(run) + index / MEMBERS_PER_SOURCE, 3))
}

/// Signs up and logs in `count` members (indices `0..count`) through `api` with `concurrency`
/// requests in flight.
///
/// # Errors
/// The first answer other than 201 (sign-up) or 200 (login) after retries, or a connection
/// failure.
pub async fn sign_up(
    api: SocketAddr,
    run: &str,
    count: usize,
    concurrency: usize,
) -> anyhow::Result<Crowd> {
    sign_up_indices(api, run, &(0..count).collect::<Vec<_>>(), concurrency).await
}

/// Signs up and logs in the members with these `indices` (a drill process's share of the
/// crowd); the members come back in the order of `indices`. Each member's requests come from
/// its [`signup_source`]; an answer asking to wait (429, 503) is retried after a pause.
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
    // Workers take runs of consecutive members, which mostly share a source address.
    let next = Arc::new(AtomicUsize::new(0));
    let mut workers = tokio::task::JoinSet::new();
    for _ in 0..concurrency.clamp(1, count.max(1)) {
        let next = Arc::clone(&next);
        let indices = Arc::clone(&indices);
        let run = run.to_owned();
        workers.spawn(async move {
            let mut conn: Option<(Option<IpAddr>, Conn)> = None;
            let mut joined = Vec::new();
            loop {
                let first = next.fetch_add(MEMBERS_PER_SOURCE, Ordering::Relaxed);
                if first >= indices.len() {
                    return anyhow::Ok(joined);
                }
                for slot in first..(first + MEMBERS_PER_SOURCE).min(indices.len()) {
                    let index = indices[slot];
                    let source = signup_source(api, &run, index);
                    let conn = match &mut conn {
                        Some((open, conn)) if *open == source && !conn.is_closed() => conn,
                        _ => &mut conn.insert((source, Conn::open(api, source).await?)).1,
                    };
                    joined.push((slot, one(conn, &run, index).await?));
                }
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

/// Attempts of one sign-up or login before the crowd gives up.
const ATTEMPTS: u32 = 30;

/// `request`, asked again while the answer says to wait (429 `RATE_LIMITED`, 503
/// `UNAVAILABLE`: password hashing saturated), pausing 100 ms and doubling up to 2 s.
async fn patiently(
    conn: &mut Conn,
    what: &str,
    path: &str,
    body: &[u8],
    accepted: &[StatusCode],
) -> anyhow::Result<(StatusCode, hyper::body::Bytes)> {
    let mut pause = Duration::from_millis(100);
    for _ in 0..ATTEMPTS {
        let (status, answer) = conn
            .request(Method::POST, path, None, Some(body.to_vec()))
            .await?;
        if accepted.contains(&status) {
            return Ok((status, answer));
        }
        if status != StatusCode::TOO_MANY_REQUESTS && status != StatusCode::SERVICE_UNAVAILABLE {
            anyhow::bail!("{what}: {status} {}", String::from_utf8_lossy(&answer));
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_secs(2));
    }
    anyhow::bail!("{what}: still refused after {ATTEMPTS} attempts")
}

async fn one(conn: &mut Conn, run: &str, index: usize) -> anyhow::Result<Member> {
    let email = email(run, index);
    let password = password(run, index);
    let register = serde_json::to_vec(&RegisterRequest {
        email: email.clone(),
        password: password.clone(),
    })?;
    let (_, body) = patiently(
        conn,
        &format!("sign-up of {email}"),
        "/api/v1/auth/register",
        &register,
        &[StatusCode::CREATED],
    )
    .await?;
    let RegisterResponse { user_id } = serde_json::from_slice(&body)?;
    let login = serde_json::to_vec(&LoginRequest {
        email: email.clone(),
        password,
    })?;
    let (_, body) = patiently(
        conn,
        &format!("login of {email}"),
        "/api/v1/auth/login",
        &login,
        &[StatusCode::OK],
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sources_spread_over_slash_24s_and_members_share_one_per_twenty() {
        assert_eq!(spread_source(0, 3), IpAddr::V4(Ipv4Addr::new(127, 1, 0, 3)));
        assert_eq!(
            spread_source(257, 3),
            IpAddr::V4(Ipv4Addr::new(127, 2, 1, 3))
        );
        let api: SocketAddr = "127.0.0.1:8080".parse().expect("addr");
        assert_eq!(signup_source(api, "r", 0), signup_source(api, "r", 19));
        assert_ne!(signup_source(api, "r", 19), signup_source(api, "r", 20));
        let remote: SocketAddr = "10.0.0.1:8080".parse().expect("addr");
        assert_eq!(signup_source(remote, "r", 0), None);
    }

    #[test]
    fn drills_one_after_another_sign_up_from_other_addresses() {
        let api: SocketAddr = "127.0.0.1:8080".parse().expect("addr");
        let runs = [
            "1764841000-100",
            "1764841090-101",
            "1764841180-102",
            "1764841270-103",
        ];
        let firsts: std::collections::HashSet<_> =
            runs.iter().map(|run| signup_source(api, run, 0)).collect();
        assert!(firsts.len() >= 3, "{firsts:?}");
        // Every block stays within the sources there are.
        const { assert!(SIGNUP_BLOCKS * SOURCES_PER_BLOCK <= 199 * 256) };
        assert!(
            runs.iter()
                .filter_map(|run| signup_source(api, run, 24_999))
                .all(|ip| matches!(ip, IpAddr::V4(v4) if v4.octets()[1] < 200)),
            "a block's last member signs up below the attackers' addresses"
        );
    }
}
