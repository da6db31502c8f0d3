//! `flash-drill verify-draw EVENT`: checks a whole published draw from outside, as anyone
//! could: the revealed seed against the commitment, the participants file against its hash
//! and count, and every line in the order the rule (`sha256-commit-reveal-v1`) gives.

use std::collections::HashMap;
use std::io::Write as _;
use std::net::SocketAddr;

use anyhow::Context as _;
use flash_protocol::draw::{Fairness, participants_path, pseudonym, verify};
use flash_protocol::{EventId, UserId};
use hyper::{Method, StatusCode};

use crate::http::Conn;

/// `flash-drill verify-draw`.
#[derive(Clone, Debug, clap::Args)]
pub struct VerifyDrawArgs {
    /// The event whose draw to check.
    pub event: EventId,
    /// The suite's origin (where `/queue/…` is served).
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    pub base_url: String,
}

/// A draw that was checked: its record, and the pseudonyms in number order.
pub struct Checked {
    pub fairness: Fairness,
    pub order: Vec<String>,
}

/// What the gateway at `origin` publishes of `event`'s draw.
pub async fn published(origin: SocketAddr, event: EventId) -> anyhow::Result<(Fairness, Vec<u8>)> {
    let mut conn = Conn::open(origin, None).await?;
    let body = conn
        .expect(
            "reading the draw's record",
            StatusCode::OK,
            Method::GET,
            &format!("/queue/v1/events/{event}/fairness"),
            None,
            None,
        )
        .await?;
    let fairness: Fairness = serde_json::from_slice(&body).context("the draw's record")?;
    let path = fairness
        .participants_url
        .clone()
        .unwrap_or_else(|| participants_path(event));
    let file = conn
        .expect(
            "reading the participants file",
            StatusCode::OK,
            Method::GET,
            &path,
            None,
            None,
        )
        .await?;
    Ok((fairness, file.to_vec()))
}

/// Fetches and checks `event`'s draw.
pub async fn check(origin: SocketAddr, event: EventId) -> anyhow::Result<Checked> {
    let (fairness, file) = published(origin, event).await?;
    let order = verify(&fairness, &file).with_context(|| format!("the draw of event {event}"))?;
    Ok(Checked { fairness, order })
}

/// Of `places` (user, number), how many are in the draw and how many of those hold another
/// number than their line.
#[must_use]
pub fn misplaced(
    order: &[String],
    event: EventId,
    places: impl IntoIterator<Item = (UserId, u64)>,
) -> (usize, usize) {
    let lines: HashMap<&str, u64> = order
        .iter()
        .enumerate()
        .map(|(i, p)| (p.as_str(), i as u64 + 1))
        .collect();
    let (mut drawn, mut wrong) = (0, 0);
    for (user, number) in places {
        if let Some(line) = lines.get(pseudonym(event, user).as_str()) {
            drawn += 1;
            if *line != number {
                wrong += 1;
            }
        }
    }
    (drawn, wrong)
}

/// `flash-drill verify-draw`: says what was checked; fails on any fault.
pub async fn run(args: VerifyDrawArgs) -> anyhow::Result<()> {
    let origin = crate::drill::client::origin_addr(&args.base_url).await?;
    let checked = check(origin, args.event).await?;
    let f = &checked.fairness;
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "the draw of event {} verifies ({}):\n  the seed {} hashes to the commitment {}\n  \
         the participants file ({} lines) hashes to {}\n  its {} lines are in ascending order \
         of SHA-256(seed ‖ pseudonym): line i holds number i",
        args.event,
        f.algorithm,
        f.seed.as_deref().unwrap_or_default(),
        f.commitment.as_deref().unwrap_or_default(),
        checked.order.len(),
        f.participants_sha256.as_deref().unwrap_or_default(),
        checked.order.len(),
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_number_other_than_the_line_is_found() {
        let event = EventId::new_v7();
        let users: Vec<UserId> = (0..3).map(|_| UserId::new_v7()).collect();
        let order: Vec<String> = users.iter().map(|u| pseudonym(event, *u)).collect();
        let late = UserId::new_v7();
        assert_eq!(
            misplaced(&order, event, [(users[0], 1), (users[1], 2), (late, 4)]),
            (2, 0)
        );
        assert_eq!(
            misplaced(&order, event, [(users[0], 2), (users[1], 1), (users[2], 3)]),
            (3, 2)
        );
    }
}
