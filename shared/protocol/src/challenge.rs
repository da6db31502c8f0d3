//! The join challenge: a per-event proof of work an operator turns up when bots come. A buyer
//! asks for a challenge, finds a `nonce` such that SHA-256 of the ASCII bytes of
//! `challenge + ":" + nonce` starts with at least `difficulty` zero bits (counting from the most
//! significant bit of the digest's first byte), and joins with both. The rule is pure and
//! shared by the gateway (verifying), the drill (solving natively) and the web UI's worker
//! (solving in the browser, the same rule in JavaScript).

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;

/// The highest difficulty an operator may set (leading zero bits).
pub const MAX_DIFFICULTY: u8 = 32;
/// A challenge string is at most this many (ASCII) characters.
pub const MAX_CHALLENGE_CHARS: usize = 512;
/// A nonce is at most this many decimal digits.
pub const MAX_NONCE_DIGITS: usize = 20;

/// `GET /queue/v1/events/{id}/challenge`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Challenge {
    /// Opaque, ASCII, at most 512 characters; bound to the user, the event and its expiry.
    pub challenge: String,
    /// Leading zero bits the solution's SHA-256 must have (0–32).
    pub difficulty: u8,
    /// Until when a solution of this challenge is accepted (once).
    #[serde(with = "time::serde::rfc3339")]
    pub expires_at: OffsetDateTime,
}

/// The optional body of `POST /queue/v1/events/{id}/join`: a solved challenge.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct JoinProof {
    /// A challenge from `GET …/challenge`, as it was given.
    #[schema(max_length = 512)]
    pub challenge: String,
    /// A decimal string, `^(0|[1-9][0-9]{0,19})$`, at most 2^64−1.
    #[schema(pattern = "^(0|[1-9][0-9]{0,19})$")]
    pub nonce: String,
}

/// A nonce that is not a canonical decimal number from 0 to 2^64−1.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("nonce must be a decimal string without leading zeros, at most 18446744073709551615")]
pub struct BadNonce;

/// Checks a nonce's form: `^(0|[1-9][0-9]{0,19})$` and at most 2^64−1.
pub fn parse_nonce(nonce: &str) -> Result<u64, BadNonce> {
    let digits = nonce.as_bytes();
    let canonical = !digits.is_empty()
        && digits.len() <= MAX_NONCE_DIGITS
        && digits.iter().all(u8::is_ascii_digit)
        && (digits[0] != b'0' || digits.len() == 1);
    if !canonical {
        return Err(BadNonce);
    }
    nonce.parse().map_err(|_| BadNonce)
}

/// Leading zero bits of a digest, from the most significant bit of its first byte.
#[must_use]
pub fn leading_zero_bits(digest: &[u8]) -> u32 {
    let mut bits = 0;
    for &byte in digest {
        if byte == 0 {
            bits += 8;
        } else {
            return bits + byte.leading_zeros();
        }
    }
    bits
}

/// The work of one attempt: the leading zero bits of SHA-256(`challenge:nonce`).
#[must_use]
pub fn work(challenge: &str, nonce: &str) -> u32 {
    let mut hasher = Sha256::new();
    hasher.update(challenge.as_bytes());
    hasher.update(b":");
    hasher.update(nonce.as_bytes());
    leading_zero_bits(&hasher.finalize())
}

/// Whether `nonce` solves `challenge` at `difficulty`.
#[must_use]
pub fn solves(challenge: &str, nonce: &str, difficulty: u8) -> bool {
    work(challenge, nonce) >= u32::from(difficulty)
}

/// The first nonce from `start` that solves `challenge` at `difficulty`, and how many were
/// tried; `None` when none does before `u64::MAX` (never, in practice, for difficulty ≤ 32).
#[must_use]
pub fn solve(challenge: &str, difficulty: u8, start: u64) -> Option<(u64, u64)> {
    let mut prefix = Sha256::new();
    prefix.update(challenge.as_bytes());
    prefix.update(b":");
    let mut digits = itoa_buffer();
    for (tried, nonce) in (start..=u64::MAX).enumerate() {
        let text = write_decimal(&mut digits, nonce);
        let mut hasher = prefix.clone();
        hasher.update(text);
        if leading_zero_bits(&hasher.finalize()) >= u32::from(difficulty) {
            return Some((nonce, tried as u64 + 1));
        }
    }
    None
}

fn itoa_buffer() -> [u8; MAX_NONCE_DIGITS] {
    [0; MAX_NONCE_DIGITS]
}

/// `n` in decimal, written at the end of `buffer`.
fn write_decimal(buffer: &mut [u8; MAX_NONCE_DIGITS], mut n: u64) -> &[u8] {
    let mut at = buffer.len();
    loop {
        at -= 1;
        buffer[at] = b'0' + u8::try_from(n % 10).unwrap_or(0);
        n /= 10;
        if n == 0 {
            return &buffer[at..];
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nonces_are_canonical_decimals_up_to_u64_max() {
        for good in [
            "0",
            "7",
            "10",
            "18446744073709551615",
            "12345678901234567890",
        ] {
            assert!(parse_nonce(good).is_ok(), "{good}");
        }
        for bad in [
            "",
            "00",
            "01",
            "-1",
            "+1",
            " 1",
            "1.0",
            "18446744073709551616",
            "99999999999999999999",
            "123456789012345678901",
            "١",
        ] {
            assert_eq!(parse_nonce(bad), Err(BadNonce), "{bad:?}");
        }
    }

    #[test]
    fn zero_bits_count_from_the_first_bytes_high_bit() {
        assert_eq!(leading_zero_bits(&[0x80]), 0);
        assert_eq!(leading_zero_bits(&[0x01]), 7);
        assert_eq!(leading_zero_bits(&[0x00, 0x40]), 9);
        assert_eq!(leading_zero_bits(&[0x00, 0x00, 0x00, 0x00, 0xff]), 32);
        assert_eq!(leading_zero_bits(&[0; 32]), 256);
    }

    #[test]
    fn the_work_is_sha256_of_challenge_colon_nonce() {
        // sha256("abc:0") = 5f36ef…, sha256("abc:3") = 0ffad3…: computed independently
        // (Python's hashlib).
        assert_eq!(work("abc", "0"), 1);
        assert_eq!(work("abc", "1"), 0);
        assert_eq!(work("abc", "3"), 4);
        assert!(solves("abc", "3", 4));
        assert!(!solves("abc", "3", 5));
        assert!(solves("abc", "anything", 0));
    }

    #[test]
    fn a_solution_found_is_a_solution_checked() {
        for difficulty in [0, 1, 8, 12] {
            let (nonce, tried) = solve("c2VlZA.challenge", difficulty, 0).expect("solvable");
            assert!(solves("c2VlZA.challenge", &nonce.to_string(), difficulty));
            assert!(tried >= 1);
            assert!(parse_nonce(&nonce.to_string()).is_ok());
        }
        assert_eq!(
            solve("x", 0, 41),
            Some((41, 1)),
            "difficulty 0: the first nonce"
        );
    }
}
