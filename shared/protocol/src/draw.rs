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

use sha2::{Digest, Sha256};

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
}
