//! Verification of EdDSA JWTs for one issuer and audience against a set of keys.
//!
//! A token is read in two steps, so that the signatures of many tokens can be checked together
//! ([`crate::batch`]): [`Verifier::unverified`] parses it (three base64url segments, a header
//! with `alg: EdDSA` naming a known key, the claims) and [`Unverified::finish`] takes the
//! verdict on its signature. The signature is always judged first: a token whose signature
//! does not hold is `Invalid`, whatever its claims say (never `Expired`).
//!
//! Signatures are Ed25519 under ZIP 215's rules (`ed25519-zebra`), for which checking a batch
//! agrees with checking each signature alone. They accept a few encodings RFC 8032's strict
//! rules refuse (non-canonical points, the cofactored equation); none of them lets anyone
//! without the private key sign new claims.

use std::collections::HashMap;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ed25519_zebra::{Signature, VerificationKey, VerificationKeyBytes};
use jsonwebtoken::Algorithm;
use serde::Deserialize;
use serde::de::DeserializeOwned;

use crate::batch::SignatureCheck;
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

impl VerifyError {
    fn invalid(reason: Reason) -> Self {
        Self::Invalid(reason.to_string())
    }
}

/// The reasons of [`VerifyError::Invalid`], named as jsonwebtoken names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Reason {
    /// Not three base64url segments.
    InvalidToken,
    InvalidAlgorithm,
    InvalidSignature,
    /// The claims are not JSON of the expected shape.
    InvalidClaims,
    MissingRequiredClaim(&'static str),
    InvalidIssuer,
    InvalidAudience,
}

impl std::fmt::Display for Reason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::MissingRequiredClaim(claim) => write!(f, "MissingRequiredClaim({claim:?})"),
            other => std::fmt::Debug::fmt(other, f),
        }
    }
}

/// The registered claims every token must carry (RFC 7519 §4.1).
#[derive(Deserialize)]
struct Registered {
    exp: Option<i64>,
    iss: Option<String>,
    aud: Option<Audience>,
    sub: Option<String>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Audience {
    One(String),
    Many(Vec<String>),
}

/// A token that parsed and names a known key; its signature is not checked yet.
pub struct Unverified<C> {
    signature: SignatureCheck,
    /// The claims, or why they are refused, once the signature holds.
    claims: Result<C, VerifyError>,
}

impl<C> Unverified<C> {
    /// What is left to check: the signature.
    #[must_use]
    pub fn signature(&self) -> &SignatureCheck {
        &self.signature
    }

    /// The claims, given whether the signature holds.
    pub fn finish(self, signature_holds: bool) -> Result<C, VerifyError> {
        if signature_holds {
            self.claims
        } else {
            Err(VerifyError::invalid(Reason::InvalidSignature))
        }
    }
}

/// Verifies tokens of one issuer for one audience, signed by any key of a set.
#[derive(Clone)]
pub struct Verifier {
    keys: HashMap<String, VerificationKeyBytes>,
    issuer: String,
    audience: String,
    check_expiry: bool,
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
            let refused = |reason: String| KeyError::Jwk {
                kid: jwk.kid.clone(),
                reason,
            };
            let bytes = URL_SAFE_NO_PAD
                .decode(&jwk.x)
                .map_err(|e| refused(format!("x is not base64url: {e}")))?;
            let key = VerificationKey::try_from(bytes.as_slice())
                .map_err(|e| refused(format!("x is not an Ed25519 public key: {e}")))?;
            keys.insert(jwk.kid.clone(), VerificationKeyBytes::from(key));
        }
        Ok(Self {
            keys,
            issuer: issuer.to_owned(),
            audience: audience.to_owned(),
            check_expiry: true,
        })
    }

    /// The same checks without `exp`: for telling whether a token was genuine (signed by a
    /// known key, for this issuer and audience) after it was used, e.g. a drill's audit of
    /// gate tokens long after the admission window.
    #[must_use]
    pub fn ignoring_expiry(mut self) -> Self {
        self.check_expiry = false;
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
        let unverified = self.unverified(token)?;
        let holds = unverified.signature().holds();
        unverified.finish(holds)
    }

    /// Everything but the signature: the token's shape, its header (`alg` EdDSA, a known
    /// `kid`, or none where there is one key) and its claims, judged once the signature holds.
    pub fn unverified<C: DeserializeOwned>(
        &self,
        token: &str,
    ) -> Result<Unverified<C>, VerifyError> {
        let mut segments = token.split('.');
        let (Some(header), Some(payload), Some(signature), None) = (
            segments.next(),
            segments.next(),
            segments.next(),
            segments.next(),
        ) else {
            return Err(VerifyError::invalid(Reason::InvalidToken));
        };
        let parsed = jsonwebtoken::decode_header(token)
            .map_err(|e| VerifyError::Invalid(format!("{:?}", e.kind())))?;
        let key = match parsed.kid.as_deref() {
            Some(kid) => self.keys.get(kid).ok_or(VerifyError::UnknownKey)?,
            None if self.keys.len() == 1 => {
                self.keys.values().next().ok_or(VerifyError::UnknownKey)?
            }
            None => return Err(VerifyError::UnknownKey),
        };
        if parsed.alg != Algorithm::EdDSA {
            return Err(VerifyError::invalid(Reason::InvalidAlgorithm));
        }
        let signature: [u8; 64] = URL_SAFE_NO_PAD
            .decode(signature)
            .ok()
            .and_then(|bytes| bytes.try_into().ok())
            .ok_or_else(|| VerifyError::invalid(Reason::InvalidSignature))?;
        let message = &token[..header.len() + 1 + payload.len()];
        Ok(Unverified {
            signature: SignatureCheck::new(*key, Signature::from_bytes(&signature), message),
            claims: self.claims(payload),
        })
    }

    /// The claims of a base64url payload, if they are for us and unexpired.
    fn claims<C: DeserializeOwned>(&self, payload: &str) -> Result<C, VerifyError> {
        let json = URL_SAFE_NO_PAD
            .decode(payload)
            .map_err(|_| VerifyError::invalid(Reason::InvalidClaims))?;
        let registered: Registered = serde_json::from_slice(&json)
            .map_err(|_| VerifyError::invalid(Reason::InvalidClaims))?;
        let exp = present(registered.exp, "exp")?;
        let iss = present(registered.iss, "iss")?;
        let aud = present(registered.aud, "aud")?;
        present(registered.sub, "sub")?;
        if self.check_expiry && exp.saturating_add(LEEWAY_SECS.cast_signed()) < unix_now() {
            return Err(VerifyError::Expired);
        }
        if iss != self.issuer {
            return Err(VerifyError::invalid(Reason::InvalidIssuer));
        }
        let for_us = match aud {
            Audience::One(aud) => aud == self.audience,
            Audience::Many(auds) => auds.contains(&self.audience),
        };
        if !for_us {
            return Err(VerifyError::invalid(Reason::InvalidAudience));
        }
        serde_json::from_slice(&json).map_err(|_| VerifyError::invalid(Reason::InvalidClaims))
    }
}

/// Seconds since the Unix epoch.
fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |since| since.as_secs().cast_signed())
}

/// A required claim, or why the token is refused without it.
fn present<T>(claim: Option<T>, name: &'static str) -> Result<T, VerifyError> {
    claim.ok_or_else(|| VerifyError::invalid(Reason::MissingRequiredClaim(name)))
}
