//! Ed25519 signing keys, their public JWKs and JWKS documents.

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{Ed25519KeyPair, KeyPair};
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// Label of the derived local key the api signs access tokens with (`FLASH_DEV_KEYS`).
pub const DEV_ACCESS_KEY: &str = "api-access";
/// Label of the derived local key the gateway signs gate tokens with (`FLASH_DEV_KEYS`).
pub const DEV_GATE_KEY: &str = "gateway-gate";

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("not an Ed25519 PKCS#8 private key: {0}")]
    Pkcs8(String),
    #[error("not a PEM \"PRIVATE KEY\" block")]
    Pem,
    #[error("key generation failed")]
    Generate,
    #[error("invalid JWK {kid:?}: {reason}")]
    Jwk { kid: String, reason: String },
    #[error("invalid JWKS document: {0}")]
    Jwks(#[from] serde_json::Error),
    #[error("cannot read key file {path}: {source}")]
    File {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("signing failed: {0}")]
    Sign(#[from] jsonwebtoken::errors::Error),
    #[error(
        "FLASH_DEV_KEYS=true together with real key material ({}): the dev keys are well known, anyone can sign with them. Unset FLASH_DEV_KEYS (or the real keys, for a local run)",
        .0.join(", ")
    )]
    DevKeysWithRealKeys(Vec<&'static str>),
}

/// A public Ed25519 key as a JWK (RFC 8037).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Jwk {
    pub kty: String,
    pub crv: String,
    /// The public key, base64url without padding.
    pub x: String,
    pub kid: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alg: Option<String>,
    #[serde(rename = "use", default, skip_serializing_if = "Option::is_none")]
    pub use_: Option<String>,
}

impl Jwk {
    /// The JWK of a raw 32-byte Ed25519 public key; `kid` is its RFC 7638 thumbprint.
    #[must_use]
    pub fn ed25519(public: &[u8]) -> Self {
        let x = URL_SAFE_NO_PAD.encode(public);
        Self {
            kid: thumbprint(&x),
            kty: "OKP".into(),
            crv: "Ed25519".into(),
            x,
            alg: Some("EdDSA".into()),
            use_: Some("sig".into()),
        }
    }

    /// Whether this is an Ed25519 signing key (other keys in a JWKS are ignored).
    #[must_use]
    pub fn is_ed25519(&self) -> bool {
        self.kty == "OKP"
            && self.crv == "Ed25519"
            && self.alg.as_deref().is_none_or(|alg| alg == "EdDSA")
            && self.use_.as_deref().is_none_or(|u| u == "sig")
    }
}

/// RFC 7638 thumbprint of an OKP key: base64url(SHA-256 of the canonical members).
fn thumbprint(x: &str) -> String {
    let canonical = format!(r#"{{"crv":"Ed25519","kty":"OKP","x":"{x}"}}"#);
    URL_SAFE_NO_PAD.encode(Sha256::digest(canonical.as_bytes()))
}

/// A JWKS document: `{"keys": [...]}`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Jwks {
    pub keys: Vec<Jwk>,
}

impl Jwks {
    /// Parses a JWKS document.
    pub fn from_json(text: &str) -> Result<Self, KeyError> {
        Ok(serde_json::from_str(text)?)
    }

    /// The union of two key sets (by `kid`), e.g. the current and the next key during rotation.
    #[must_use]
    pub fn merged(mut self, other: &Jwks) -> Self {
        for key in &other.keys {
            if !self.keys.iter().any(|k| k.kid == key.kid) {
                self.keys.push(key.clone());
            }
        }
        self
    }
}

/// An Ed25519 private key with its `kid`; signs JWTs with `alg: EdDSA`.
pub struct SigningKey {
    jwk: Jwk,
    encoding: EncodingKey,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKey")
            .field("kid", &self.jwk.kid)
            .finish_non_exhaustive()
    }
}

impl SigningKey {
    fn from_key_pair(pair: &Ed25519KeyPair) -> Result<Self, KeyError> {
        let pkcs8 = pair.to_pkcs8().map_err(|_| KeyError::Generate)?;
        Ok(Self {
            jwk: Jwk::ed25519(pair.public_key().as_ref()),
            encoding: EncodingKey::from_ed_der(pkcs8.as_ref()),
        })
    }

    /// A new random key (tests, or a single-replica deployment that restarts its sessions).
    pub fn generate() -> Result<Self, KeyError> {
        let pkcs8 =
            Ed25519KeyPair::generate_pkcs8(&SystemRandom::new()).map_err(|_| KeyError::Generate)?;
        Self::from_pkcs8_der(pkcs8.as_ref())
    }

    /// A new random private key as PEM, as `openssl genpkey -algorithm ed25519` writes it
    /// (for tests and tools that configure a service with real key material).
    pub fn generate_pem() -> Result<String, KeyError> {
        let pkcs8 =
            Ed25519KeyPair::generate_pkcs8(&SystemRandom::new()).map_err(|_| KeyError::Generate)?;
        Ok(format!(
            "-----BEGIN PRIVATE KEY-----\n{}\n-----END PRIVATE KEY-----\n",
            STANDARD.encode(pkcs8.as_ref())
        ))
    }

    /// From a PKCS#8 DER private key (v1 or v2).
    pub fn from_pkcs8_der(der: &[u8]) -> Result<Self, KeyError> {
        let pair = Ed25519KeyPair::from_pkcs8_maybe_unchecked(der)
            .map_err(|e| KeyError::Pkcs8(e.to_string()))?;
        Self::from_key_pair(&pair)
    }

    /// From a PEM `PRIVATE KEY` block, as `openssl genpkey -algorithm ed25519` writes it.
    pub fn from_pem(pem: &str) -> Result<Self, KeyError> {
        let body: String = pem
            .lines()
            .map(str::trim)
            .skip_while(|line| *line != "-----BEGIN PRIVATE KEY-----")
            .skip(1)
            .take_while(|line| *line != "-----END PRIVATE KEY-----")
            .collect();
        if body.is_empty() {
            return Err(KeyError::Pem);
        }
        let der = STANDARD.decode(body).map_err(|_| KeyError::Pem)?;
        Self::from_pkcs8_der(&der)
    }

    /// From a PEM file.
    pub fn from_pem_file(path: &std::path::Path) -> Result<Self, KeyError> {
        let text = std::fs::read_to_string(path).map_err(|source| KeyError::File {
            path: path.display().to_string(),
            source,
        })?;
        Self::from_pem(&text)
    }

    /// A key derived from a public label: the same everywhere, so separate local processes
    /// agree without sharing files. For local runs only: anyone can derive it.
    pub fn dev(label: &str) -> Result<Self, KeyError> {
        let seed = Sha256::digest(format!("flash-tickets local dev key: {label}").as_bytes());
        let pair = Ed25519KeyPair::from_seed_unchecked(seed.as_slice())
            .map_err(|e| KeyError::Pkcs8(e.to_string()))?;
        Self::from_key_pair(&pair)
    }

    #[must_use]
    pub fn kid(&self) -> &str {
        &self.jwk.kid
    }

    /// The public half.
    #[must_use]
    pub fn jwk(&self) -> &Jwk {
        &self.jwk
    }

    /// A JWKS holding just this key's public half.
    #[must_use]
    pub fn jwks(&self) -> Jwks {
        Jwks {
            keys: vec![self.jwk.clone()],
        }
    }

    /// A compact JWT (`alg: EdDSA`, `typ: JWT`, `kid`) over `claims`.
    pub fn sign<C: Serialize>(&self, claims: &C) -> Result<String, KeyError> {
        let mut header = Header::new(Algorithm::EdDSA);
        header.kid = Some(self.jwk.kid.clone());
        Ok(jsonwebtoken::encode(&header, claims, &self.encoding)?)
    }

    /// A 32-byte secret derived from this key for `purpose`: the SHA-256 of the key's
    /// signature over it. Ed25519 signatures are deterministic, so every replica holding the
    /// key derives the same secret, and nobody without the key can; the signature itself is
    /// never published.
    pub fn derive_secret(&self, purpose: &str) -> Result<[u8; 32], KeyError> {
        let signature = jsonwebtoken::crypto::sign(
            format!("flash-tickets derived secret: {purpose}").as_bytes(),
            &self.encoding,
            Algorithm::EdDSA,
        )?;
        Ok(Sha256::digest(signature.as_bytes()).into())
    }
}
