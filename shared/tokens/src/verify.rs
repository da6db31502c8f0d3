//! Verification of EdDSA JWTs for one issuer and audience against a set of keys.

use std::collections::HashMap;

use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::de::DeserializeOwned;

use crate::keys::{Jwks, KeyError};

/// Seconds of clock skew tolerated on `exp`.
pub const LEEWAY_SECS: u64 = 5;

/// Why a token was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    #[error("the token has expired")]
    Expired,
    #[error("the token was signed by an unknown key")]
    UnknownKey,
    #[error("the token is not valid: {0}")]
    Invalid(String),
}

/// Verifies tokens of one issuer for one audience, signed by any key of a set.
#[derive(Clone)]
pub struct Verifier {
    keys: HashMap<String, DecodingKey>,
    validation: Validation,
}

impl std::fmt::Debug for Verifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Verifier")
            .field("kids", &self.keys.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl Verifier {
    /// A verifier over the Ed25519 keys of `jwks` (other keys are ignored).
    pub fn new(jwks: &Jwks, issuer: &str, audience: &str) -> Result<Self, KeyError> {
        let mut keys = HashMap::new();
        for jwk in jwks.keys.iter().filter(|k| k.is_ed25519()) {
            let key = DecodingKey::from_ed_components(&jwk.x).map_err(|e| KeyError::Jwk {
                kid: jwk.kid.clone(),
                reason: e.to_string(),
            })?;
            keys.insert(jwk.kid.clone(), key);
        }
        let mut validation = Validation::new(Algorithm::EdDSA);
        validation.set_issuer(&[issuer]);
        validation.set_audience(&[audience]);
        validation.set_required_spec_claims(&["exp", "iat", "iss", "aud", "sub"]);
        validation.leeway = LEEWAY_SECS;
        Ok(Self { keys, validation })
    }

    /// The same checks without `exp`: for telling whether a token was genuine (signed by a
    /// known key, for this issuer and audience) after it was used, e.g. a drill's audit of
    /// gate tokens long after the admission window.
    #[must_use]
    pub fn ignoring_expiry(mut self) -> Self {
        self.validation.validate_exp = false;
        self
    }

    /// The `kid`s this verifier accepts.
    pub fn kids(&self) -> impl Iterator<Item = &str> {
        self.keys.keys().map(String::as_str)
    }

    /// Whether a key with this `kid` is known.
    #[must_use]
    pub fn knows(&self, kid: &str) -> bool {
        self.keys.contains_key(kid)
    }

    /// The `kid` in a token's header, if the header parses.
    #[must_use]
    pub fn kid_of(token: &str) -> Option<String> {
        jsonwebtoken::decode_header(token).ok().and_then(|h| h.kid)
    }

    /// The verified claims: signature by a known key, `alg` EdDSA, issuer, audience, `exp`.
    pub fn verify<C: DeserializeOwned>(&self, token: &str) -> Result<C, VerifyError> {
        let header =
            jsonwebtoken::decode_header(token).map_err(|e| VerifyError::Invalid(e.to_string()))?;
        let key = match header.kid.as_deref() {
            Some(kid) => self.keys.get(kid).ok_or(VerifyError::UnknownKey)?,
            None if self.keys.len() == 1 => {
                self.keys.values().next().ok_or(VerifyError::UnknownKey)?
            }
            None => return Err(VerifyError::UnknownKey),
        };
        jsonwebtoken::decode::<C>(token, key, &self.validation)
            .map(|data| data.claims)
            .map_err(|e| match e.kind() {
                ErrorKind::ExpiredSignature => VerifyError::Expired,
                other => VerifyError::Invalid(format!("{other:?}")),
            })
    }
}
