//! Gate tokens: the gateway's signed permission to buy, one per admission.
//!
//! A token is derived entirely from the admission (event, user, admission time and end), so
//! every replica issues the same token for the same admission (Ed25519 signatures are
//! deterministic): polling, reconnecting or switching replicas never mints a second `jti`.

use flash_protocol::claims::{GATE_AUDIENCE, GATE_ISSUER, GateClaims};
use flash_protocol::{EventId, UserId};
use flash_tokens::{Jwks, KeyError, SigningKey};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;
use uuid::Uuid;

/// Signs gate tokens with the gateway's key, and publishes it beside earlier ones.
#[derive(Debug)]
pub struct GateIssuer {
    key: SigningKey,
    published: Jwks,
}

/// A signed gate token and when it expires.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GateToken {
    pub token: String,
    pub expires_at: OffsetDateTime,
}

impl GateIssuer {
    /// An issuer publishing only its own key.
    #[must_use]
    pub fn new(key: SigningKey) -> Self {
        let published = key.jwks();
        Self { key, published }
    }

    /// An issuer publishing `published` (its own key and earlier ones, while rotating).
    #[must_use]
    pub fn publishing(key: SigningKey, published: Jwks) -> Self {
        Self { key, published }
    }

    #[must_use]
    pub fn key(&self) -> &SigningKey {
        &self.key
    }

    /// The keys gate tokens are checked against: the signing key and earlier ones.
    #[must_use]
    pub fn jwks(&self) -> &Jwks {
        &self.published
    }

    /// The `jti` of an admission: a UUID (v8) from a hash of what identifies it.
    #[must_use]
    pub fn jti(event: EventId, user: UserId, admitted_at_ms: i64) -> Uuid {
        let digest = Sha256::digest(format!("gate|{event}|{user}|{admitted_at_ms}").as_bytes());
        let mut bytes = [0_u8; 16];
        bytes.copy_from_slice(&digest[..16]);
        uuid::Builder::from_custom_bytes(bytes).into_uuid()
    }

    /// The token of the admission of `user` to `event` at `admitted_at_ms`, valid until
    /// `ends_ms` (both ms since the epoch).
    pub fn issue(
        &self,
        event: EventId,
        user: UserId,
        admitted_at_ms: i64,
        ends_ms: i64,
    ) -> Result<GateToken, KeyError> {
        let claims = GateClaims {
            sub: user,
            evt: event,
            jti: Self::jti(event, user, admitted_at_ms),
            iss: GATE_ISSUER.to_owned(),
            aud: GATE_AUDIENCE.to_owned(),
            iat: admitted_at_ms.div_euclid(1000),
            exp: ends_ms.div_euclid(1000),
        };
        let token = self.key.sign(&claims)?;
        let expires_at =
            OffsetDateTime::from_unix_timestamp(claims.exp).unwrap_or(OffsetDateTime::UNIX_EPOCH);
        Ok(GateToken { token, expires_at })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use flash_tokens::Verifier;

    #[test]
    fn the_same_admission_always_gets_the_same_token() {
        let issuer = GateIssuer::new(SigningKey::generate().expect("key"));
        let (event, user) = (EventId::new_v7(), UserId::new_v7());
        let now_ms = OffsetDateTime::now_utc().unix_timestamp() * 1000;
        let one = issuer
            .issue(event, user, now_ms, now_ms + 300_000)
            .expect("issue");
        let two = issuer
            .issue(event, user, now_ms, now_ms + 300_000)
            .expect("issue");
        assert_eq!(one, two);
        let again = issuer
            .issue(event, user, now_ms + 1, now_ms + 300_001)
            .expect("issue");
        assert_ne!(one.token, again.token, "a new admission is a new token");

        let verifier =
            Verifier::new(&issuer.key().jwks(), GATE_ISSUER, GATE_AUDIENCE).expect("verifier");
        let claims: GateClaims = verifier.verify(&one.token).expect("valid");
        assert_eq!((claims.sub, claims.evt), (user, event));
        assert_eq!(claims.jti, GateIssuer::jti(event, user, now_ms));
        assert_eq!(claims.exp - claims.iat, 300);
        assert_eq!(one.expires_at.unix_timestamp(), claims.exp);
    }
}
