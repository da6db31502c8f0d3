//! The pre-queue draw, `sha256-commit-reveal-v1`: the order in which the buyers who joined
//! before opening are numbered, fixed by a secret seed whose SHA-256 (the commitment) is
//! published when the queue is created and which is revealed at opening.
//!
//! - a buyer's pseudonym is the lowercase hex SHA-256 of `"{event_id}:{user_id}"` (both in
//!   their canonical lowercase hyphenated form);
//! - their key is the SHA-256 of the 32 seed bytes followed by the pseudonym's ASCII;
//! - the pre-queue is numbered 1, 2, … in ascending bytewise order of the keys.
//!
//! Pure functions: the gateway computes each buyer's key when they join (so that opening only
//! reads a sorted set in chunks), and anyone can recompute the order from the revealed seed.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;

use crate::{EventId, UserId};

/// The name of this rule, as published with a draw.
pub const ALGORITHM: &str = "sha256-commit-reveal-v1";

/// Lowercase hex of `bytes`.
#[must_use]
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for &b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 0x0f)]));
    }
    out
}

/// A draw's secret seed: 32 bytes, 64 lowercase hex characters when revealed.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Seed([u8; 32]);

impl std::fmt::Debug for Seed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Secret until opening: never in a log line.
        f.write_str("Seed(..)")
    }
}

/// A seed's text was not 64 hex characters.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("a draw seed is 64 hex characters")]
pub struct BadSeed;

impl Seed {
    #[must_use]
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// Parses 64 hex characters (either case).
    pub fn parse_hex(text: &str) -> Result<Self, BadSeed> {
        let text = text.as_bytes();
        if text.len() != 64 {
            return Err(BadSeed);
        }
        let digit = |c: u8| char::from(c).to_digit(16).ok_or(BadSeed);
        let mut bytes = [0u8; 32];
        for (byte, pair) in bytes.iter_mut().zip(text.chunks_exact(2)) {
            *byte = u8::try_from(digit(pair[0])? << 4 | digit(pair[1])?).map_err(|_| BadSeed)?;
        }
        Ok(Self(bytes))
    }

    /// The revealed form: 64 lowercase hex characters.
    #[must_use]
    pub fn to_hex(&self) -> String {
        hex(&self.0)
    }

    /// What is published before opening: lowercase hex SHA-256 of the 32 seed bytes.
    #[must_use]
    pub fn commitment(&self) -> String {
        hex(&Sha256::digest(self.0))
    }

    /// A buyer's sort key in this draw.
    #[must_use]
    pub fn key(&self, pseudonym: &str) -> DrawKey {
        let mut hasher = Sha256::new();
        hasher.update(self.0);
        hasher.update(pseudonym.as_bytes());
        DrawKey(hasher.finalize().into())
    }

    /// The sort key of `user` in `event`'s draw.
    #[must_use]
    pub fn key_of(&self, event: EventId, user: UserId) -> DrawKey {
        self.key(&pseudonym(event, user))
    }
}

/// A buyer's pseudonym in an event's draw: what the published participants list shows.
#[must_use]
pub fn pseudonym(event: EventId, user: UserId) -> String {
    hex(&Sha256::digest(format!("{event}:{user}").as_bytes()))
}

/// A buyer's place in the draw's order: the pre-queue is numbered in ascending order of keys.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct DrawKey([u8; 32]);

impl DrawKey {
    /// 64 lowercase hex characters, which sort as the bytes do.
    #[must_use]
    pub fn to_hex(&self) -> String {
        hex(&self.0)
    }
}

/// What anyone may check of a queue's draw (`GET /queue/v1/events/{id}/fairness`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Fairness {
    pub event_id: EventId,
    /// Always [`ALGORITHM`].
    #[schema(example = "sha256-commit-reveal-v1")]
    pub algorithm: String,
    /// Lowercase hex SHA-256 of the 32 seed bytes, published when the queue is created and
    /// never changed; `null` for a queue created before the draw existed.
    pub commitment: Option<String>,
    /// The seed (64 lowercase hex characters), revealed at opening; `null` until then.
    pub seed: Option<String>,
    /// When the pre-queue was frozen and the seed revealed; `null` until then.
    #[serde(with = "time::serde::rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub opened_at: Option<OffsetDateTime>,
    /// Lines in the participants file (the pre-queue at opening); `null` until opening.
    pub participants_count: Option<u64>,
    /// Lowercase hex SHA-256 of the participants file's bytes; `null` until opening.
    pub participants_sha256: Option<String>,
    /// Where the participants file is (same origin): the pre-queue's pseudonyms in number
    /// order, one per line, each ending in `\n`; `null` until opening.
    pub participants_url: Option<String>,
}

/// Where an event's participants file is served.
#[must_use]
pub fn participants_path(event: EventId) -> String {
    format!("/queue/v1/events/{event}/participants.txt")
}

/// One line of a participants file: a pseudonym and its newline.
pub const PARTICIPANT_LINE: usize = 65;

/// How a published draw fails to check out.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DrawFault {
    #[error("the draw is not revealed yet (no seed, or no participants file)")]
    NotRevealed,
    #[error("the algorithm is {0:?}, not {ALGORITHM}")]
    Algorithm(String),
    #[error("the revealed seed is not 64 hex characters")]
    BadSeed,
    #[error("the revealed seed does not hash to the commitment")]
    Commitment,
    #[error("the participants file does not hash to participants_sha256")]
    ParticipantsHash,
    #[error("line {0} of the participants file is not a pseudonym and a newline")]
    BadLine(u64),
    #[error("the participants file has {lines} lines, participants_count says {count}")]
    Count { lines: u64, count: u64 },
    #[error("line {0} does not come after line {prev} in the draw's order", prev = .0 - 1)]
    OutOfOrder(u64),
}

/// Checks a published draw: the seed against the commitment, the participants file against
/// its hash and count, and that its lines are in ascending order of their keys. Returns the
/// pseudonyms in number order (line i holds number i).
pub fn verify(fairness: &Fairness, participants: &[u8]) -> Result<Vec<String>, DrawFault> {
    if fairness.algorithm != ALGORITHM {
        return Err(DrawFault::Algorithm(fairness.algorithm.clone()));
    }
    let (Some(commitment), Some(seed), Some(sha), Some(count)) = (
        &fairness.commitment,
        &fairness.seed,
        &fairness.participants_sha256,
        fairness.participants_count,
    ) else {
        return Err(DrawFault::NotRevealed);
    };
    let seed = Seed::parse_hex(seed).map_err(|_| DrawFault::BadSeed)?;
    if seed.commitment() != *commitment {
        return Err(DrawFault::Commitment);
    }
    if hex(&Sha256::digest(participants)) != *sha {
        return Err(DrawFault::ParticipantsHash);
    }
    let mut pseudonyms = Vec::with_capacity(participants.len() / PARTICIPANT_LINE);
    let mut previous: Option<DrawKey> = None;
    for (i, line) in participants.chunks(PARTICIPANT_LINE).enumerate() {
        let number = i as u64 + 1;
        let well_formed = line.len() == PARTICIPANT_LINE
            && line[64] == b'\n'
            && line[..64]
                .iter()
                .all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(c));
        if !well_formed {
            return Err(DrawFault::BadLine(number));
        }
        let pseudonym = String::from_utf8_lossy(&line[..64]).into_owned();
        let key = seed.key(&pseudonym);
        if previous.is_some_and(|p| p >= key) {
            return Err(DrawFault::OutOfOrder(number));
        }
        previous = Some(key);
        pseudonyms.push(pseudonym);
    }
    let lines = pseudonyms.len() as u64;
    if lines != count {
        return Err(DrawFault::Count { lines, count });
    }
    Ok(pseudonyms)
}

#[cfg(test)]
mod tests {
    use super::*;

    // Expected digests computed independently (Python's hashlib) from the rule's text.
    const EVENT: &str = "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b";
    const USER: &str = "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5c";

    #[test]
    fn the_commitment_pseudonym_and_key_follow_the_published_rule() {
        let seed = Seed::from_bytes([7; 32]);
        assert_eq!(
            seed.commitment(),
            "4bb06f8e4e3a7715d201d573d0aa423762e55dabd61a2c02278fa56cc6d294e0"
        );
        let (event, user) = (EVENT.parse().expect("id"), USER.parse().expect("id"));
        let pseudonym = pseudonym(event, user);
        assert_eq!(
            pseudonym,
            "f81a8046788728fd1a006ff13b75684d34e631210f1edc7920a96da3f1afce6f"
        );
        assert_eq!(
            seed.key_of(event, user).to_hex(),
            "613654c18a2eb10a14aa79ad5469c2ec586f985e52a42e78ab20c193330a33b2"
        );
    }

    #[test]
    fn a_seed_reads_back_from_its_hex_and_nothing_else() {
        let seed = Seed::from_bytes(std::array::from_fn(|i| u8::try_from(i * 8).unwrap_or(0)));
        assert_eq!(Seed::parse_hex(&seed.to_hex()), Ok(seed));
        assert_eq!(Seed::parse_hex(&seed.to_hex().to_uppercase()), Ok(seed));
        for bad in [
            "",
            "00",
            &"g".repeat(64),
            &"0".repeat(63),
            &"0".repeat(65),
            &"é".repeat(32),
        ] {
            assert_eq!(Seed::parse_hex(bad), Err(BadSeed), "{bad:?}");
        }
        assert_eq!(
            format!("{seed:?}"),
            "Seed(..)",
            "a seed never reaches a log"
        );
    }

    #[test]
    fn keys_sort_as_their_hex_does() {
        let seed = Seed::from_bytes([1; 32]);
        let keys: Vec<DrawKey> = (0..200).map(|i| seed.key(&i.to_string())).collect();
        let mut by_bytes = keys.clone();
        by_bytes.sort();
        let mut by_hex = keys;
        by_hex.sort_by_key(DrawKey::to_hex);
        assert_eq!(by_bytes, by_hex);
    }

    /// A revealed draw of `n` buyers: its fairness record and participants file.
    fn published(n: usize) -> (Fairness, Vec<u8>, Vec<String>) {
        let seed = Seed::from_bytes([42; 32]);
        let event: EventId = EVENT.parse().expect("id");
        let mut drawn: Vec<(DrawKey, String)> = (0..n)
            .map(|_| {
                let p = pseudonym(event, UserId::new_v7());
                (seed.key(&p), p)
            })
            .collect();
        drawn.sort();
        let order: Vec<String> = drawn.into_iter().map(|(_, p)| p).collect();
        let file: Vec<u8> = order
            .iter()
            .flat_map(|p| format!("{p}\n").into_bytes())
            .collect();
        let fairness = Fairness {
            event_id: event,
            algorithm: ALGORITHM.into(),
            commitment: Some(seed.commitment()),
            seed: Some(seed.to_hex()),
            opened_at: Some(OffsetDateTime::UNIX_EPOCH),
            participants_count: Some(n as u64),
            participants_sha256: Some(hex(&Sha256::digest(&file))),
            participants_url: Some(participants_path(event)),
        };
        (fairness, file, order)
    }

    #[test]
    fn a_published_draw_verifies_and_gives_the_order() {
        let (fairness, file, order) = published(50);
        assert_eq!(verify(&fairness, &file), Ok(order));
        let (empty, none, _) = published(0);
        assert_eq!(verify(&empty, &none), Ok(vec![]));
    }

    #[test]
    fn any_tampering_with_a_draw_is_found() {
        let (fairness, file, _) = published(20);
        let rehash = |f: &Fairness, bytes: &[u8]| Fairness {
            participants_sha256: Some(hex(&Sha256::digest(bytes))),
            ..f.clone()
        };
        // Two lines swapped (and the hash made to match): out of order.
        let mut swapped = file.clone();
        let (a, b) = swapped.split_at_mut(PARTICIPANT_LINE * 4);
        a[PARTICIPANT_LINE * 3..].swap_with_slice(&mut b[..PARTICIPANT_LINE]);
        assert_eq!(
            verify(&rehash(&fairness, &swapped), &swapped),
            Err(DrawFault::OutOfOrder(5))
        );
        // A line dropped: the count says so.
        let short = &file[PARTICIPANT_LINE..];
        assert_eq!(
            verify(&rehash(&fairness, short), short),
            Err(DrawFault::Count {
                lines: 19,
                count: 20
            })
        );
        // The file changed after its hash was published.
        let mut edited = file.clone();
        edited[0] = if edited[0] == b'a' { b'b' } else { b'a' };
        assert_eq!(verify(&fairness, &edited), Err(DrawFault::ParticipantsHash));
        // Another seed than the committed one.
        let other = Fairness {
            seed: Some(Seed::from_bytes([1; 32]).to_hex()),
            ..fairness.clone()
        };
        assert_eq!(verify(&other, &file), Err(DrawFault::Commitment));
        // Not a pseudonym per line.
        let mut upper = file.clone();
        upper[..64].make_ascii_uppercase();
        upper[0] = b'G';
        assert_eq!(
            verify(&rehash(&fairness, &upper), &upper),
            Err(DrawFault::BadLine(1))
        );
        // Not revealed yet.
        let sealed = Fairness {
            seed: None,
            ..fairness
        };
        assert_eq!(verify(&sealed, &file), Err(DrawFault::NotRevealed));
    }
}
