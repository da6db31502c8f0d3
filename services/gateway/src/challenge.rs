//! Join challenges: issued and verified by any replica without a round trip. A challenge is
//! `base64url(payload) "." base64url(HMAC-SHA256(key, base64url(payload)))` where the payload
//! binds the event, the user, the expiry, the difficulty asked when it was issued and a random
//! part (which names it once used). The key is derived from the gate-token signing key, which
//! every replica holds ([`flash_tokens::SigningKey::derive_secret`]).

use std::time::Duration;

use aws_lc_rs::hmac;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use flash_protocol::challenge::{Challenge, JoinProof, MAX_CHALLENGE_CHARS, parse_nonce, solves};
use flash_protocol::{EventId, UserId};
use time::OffsetDateTime;

/// How long a challenge can be solved and used (the contract asks at least 120 s).
pub const VALIDITY: Duration = Duration::from_secs(180);

/// The purpose the challenge key is derived for.
pub const KEY_PURPOSE: &str = "join challenges v1";

/// Issues and verifies challenges.
pub struct Challenges {
    key: hmac::Key,
}

impl std::fmt::Debug for Challenges {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Challenges(..)")
    }
}

/// A solved challenge that may take a place (once: its `id` is remembered until `expires_ms`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Solved {
    pub id: String,
    pub expires_ms: i64,
}

/// What a join's proof amounts to, decided without Redis.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Proof {
    /// No body.
    None,
    /// The nonce is not a canonical decimal up to 2^64−1 (422).
    Invalid,
    /// The challenge expired (428: ask for a new one).
    Expired,
    /// Forged, of another user or event, or the nonce does not solve it (403).
    Failed,
    Solved(Solved),
}

fn millis(at: OffsetDateTime) -> i64 {
    i64::try_from(at.unix_timestamp_nanos() / 1_000_000).unwrap_or(i64::MAX)
}

impl Challenges {
    #[must_use]
    pub fn new(secret: &[u8; 32]) -> Self {
        Self {
            key: hmac::Key::new(hmac::HMAC_SHA256, secret),
        }
    }

    /// A challenge for `user` in `event` at `difficulty`, valid for [`VALIDITY`] from `now`.
    pub fn issue(
        &self,
        event: EventId,
        user: UserId,
        difficulty: u8,
        now: OffsetDateTime,
    ) -> Result<Challenge, aws_lc_rs::error::Unspecified> {
        let mut random = [0u8; 12];
        aws_lc_rs::rand::fill(&mut random)?;
        let expires_at = now + VALIDITY;
        let payload = URL_SAFE_NO_PAD.encode(format!(
            "{event}.{user}.{}.{difficulty}.{}",
            millis(expires_at),
            URL_SAFE_NO_PAD.encode(random)
        ));
        let tag = hmac::sign(&self.key, payload.as_bytes());
        Ok(Challenge {
            challenge: format!("{payload}.{}", URL_SAFE_NO_PAD.encode(tag.as_ref())),
            difficulty,
            expires_at,
        })
    }

    /// What `proof` amounts to for `user` joining `event` at `now`.
    #[must_use]
    pub fn verify(
        &self,
        proof: Option<&JoinProof>,
        event: EventId,
        user: UserId,
        now: OffsetDateTime,
    ) -> Proof {
        let Some(proof) = proof else {
            return Proof::None;
        };
        if parse_nonce(&proof.nonce).is_err() {
            return Proof::Invalid;
        }
        let Some(claims) = self.open(&proof.challenge) else {
            return Proof::Failed;
        };
        if claims.event != event || claims.user != user {
            return Proof::Failed;
        }
        if claims.expires_ms <= millis(now) {
            return Proof::Expired;
        }
        if !solves(&proof.challenge, &proof.nonce, claims.difficulty) {
            return Proof::Failed;
        }
        Proof::Solved(Solved {
            id: claims.id,
            expires_ms: claims.expires_ms,
        })
    }

    /// The claims of a challenge this key issued; `None` for anything else.
    fn open(&self, challenge: &str) -> Option<Claims> {
        if challenge.len() > MAX_CHALLENGE_CHARS {
            return None;
        }
        let (payload, tag) = challenge.split_once('.')?;
        let tag = URL_SAFE_NO_PAD.decode(tag).ok()?;
        hmac::verify(&self.key, payload.as_bytes(), &tag).ok()?;
        let text = String::from_utf8(URL_SAFE_NO_PAD.decode(payload).ok()?).ok()?;
        let mut parts = text.split('.');
        let claims = Claims {
            event: parts.next()?.parse().ok()?,
            user: parts.next()?.parse().ok()?,
            expires_ms: parts.next()?.parse().ok()?,
            difficulty: parts.next()?.parse().ok()?,
            id: parts.next()?.to_owned(),
        };
        parts.next().is_none().then_some(claims)
    }
}

struct Claims {
    event: EventId,
    user: UserId,
    expires_ms: i64,
    difficulty: u8,
    id: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn solved(challenge: &Challenge) -> JoinProof {
        let (nonce, _) =
            flash_protocol::challenge::solve(&challenge.challenge, challenge.difficulty, 0)
                .expect("solvable");
        JoinProof {
            challenge: challenge.challenge.clone(),
            nonce: nonce.to_string(),
        }
    }

    #[test]
    fn a_solved_challenge_passes_for_its_user_and_event_only_while_valid() {
        let challenges = Challenges::new(&[9; 32]);
        let (event, user, now) = (
            EventId::new_v7(),
            UserId::new_v7(),
            OffsetDateTime::now_utc(),
        );
        let issued = challenges.issue(event, user, 8, now).expect("issue");
        assert!(issued.challenge.is_ascii() && issued.challenge.len() <= MAX_CHALLENGE_CHARS);
        assert!(issued.expires_at - now >= time::Duration::seconds(120));
        let proof = solved(&issued);
        let Proof::Solved(ok) = challenges.verify(Some(&proof), event, user, now) else {
            panic!("a right solution is accepted");
        };
        assert_eq!(ok.expires_ms, millis(issued.expires_at));
        // Another replica with the same key agrees.
        assert_eq!(
            Challenges::new(&[9; 32]).verify(Some(&proof), event, user, now),
            Proof::Solved(ok)
        );
        assert_eq!(
            challenges.verify(Some(&proof), event, UserId::new_v7(), now),
            Proof::Failed,
            "another user's"
        );
        assert_eq!(
            challenges.verify(Some(&proof), EventId::new_v7(), user, now),
            Proof::Failed,
            "another event's"
        );
        assert_eq!(
            challenges.verify(Some(&proof), event, user, issued.expires_at),
            Proof::Expired
        );
        assert_eq!(
            Challenges::new(&[8; 32]).verify(Some(&proof), event, user, now),
            Proof::Failed,
            "another key's"
        );
        assert_eq!(challenges.verify(None, event, user, now), Proof::None);
    }

    #[test]
    fn wrong_nonces_and_forgeries_fail_and_malformed_nonces_are_invalid() {
        let challenges = Challenges::new(&[9; 32]);
        let (event, user, now) = (
            EventId::new_v7(),
            UserId::new_v7(),
            OffsetDateTime::now_utc(),
        );
        let issued = challenges.issue(event, user, 16, now).expect("issue");
        let right = solved(&issued);
        // A nonce that does not solve it at 16 bits (the first one that has fewer).
        let wrong = (0..)
            .map(|n: u64| n.to_string())
            .find(|n| !solves(&issued.challenge, n, 16))
            .expect("some nonce fails");
        let attempt = |challenge: &str, nonce: &str| {
            challenges.verify(
                Some(&JoinProof {
                    challenge: challenge.into(),
                    nonce: nonce.into(),
                }),
                event,
                user,
                now,
            )
        };
        assert_eq!(attempt(&issued.challenge, &wrong), Proof::Failed);
        for nonce in ["", "01", "-1", "18446744073709551616", "1e3"] {
            assert_eq!(
                attempt(&issued.challenge, nonce),
                Proof::Invalid,
                "{nonce:?}"
            );
        }
        // The difficulty bound into it cannot be lowered: the payload is signed.
        let (payload, tag) = issued.challenge.split_once('.').expect("two parts");
        let text = String::from_utf8(URL_SAFE_NO_PAD.decode(payload).expect("b64")).expect("utf8");
        let easier = URL_SAFE_NO_PAD.encode(text.replace(".16.", ".0."));
        assert_eq!(attempt(&format!("{easier}.{tag}"), "0"), Proof::Failed);
        for forged in ["", ".", "x.y", &"a".repeat(600), &format!("{payload}.")] {
            assert_eq!(attempt(forged, &right.nonce), Proof::Failed, "{forged:?}");
        }
    }
}
