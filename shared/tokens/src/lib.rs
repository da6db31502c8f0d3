//! EdDSA (Ed25519) JSON Web Tokens for Flash Tickets: signing keys with RFC 7638 thumbprint
//! `kid`s, JWKS documents, and verification against any of several keys so keys can rotate.
//! The api signs access tokens and verifies gate tokens; the gateway does the reverse.
//!
//! # Layout
//! - [`keys`]: [`SigningKey`] (generate, load PEM, derive local dev keys), [`Jwk`], [`Jwks`].
//! - [`verify`]: [`Verifier`] for one issuer and audience over a key set.
//! - [`batch`]: signatures of concurrent verifications checked as one batch.
//! - [`ring`]: [`KeyRing`], a verifier whose keys come from configuration or a remote JWKS that
//!   is refreshed, including on an unknown `kid`.
//! - [`source`]: keys from a service's configuration (PEM, file, dev key; JWKS URL or inline).

pub mod batch;
pub mod keys;
pub mod ring;
pub mod source;
pub mod verify;

pub use keys::{Jwk, Jwks, KeyError, SigningKey};
pub use ring::KeyRing;
pub use verify::{Unverified, Verifier, VerifyError};
