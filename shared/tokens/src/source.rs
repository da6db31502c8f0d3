//! Where a service's keys come from, as its configuration names them: a signing key from PEM
//! text, a PEM file or the local dev key; a verification ring from a JWKS URL and/or inline
//! JWKS, plus the dev key's when dev keys are on.

use std::path::Path;

use crate::keys::{Jwks, KeyError, SigningKey};
use crate::ring::KeyRing;

/// Refuses the well-known dev keys beside real key material: `real` names each key setting
/// and whether it is set. A deployment that configured real keys and also turned dev keys on
/// would sign with, or accept, keys anyone can derive.
pub fn refuse_dev_keys_beside(dev: bool, real: &[(&'static str, bool)]) -> Result<(), KeyError> {
    let set: Vec<&'static str> = real
        .iter()
        .filter(|(_, set)| *set)
        .map(|(name, _)| *name)
        .collect();
    if dev && !set.is_empty() {
        return Err(KeyError::DevKeysWithRealKeys(set));
    }
    Ok(())
}

/// The signing key, from the first source set: `pem`, then `file`, then the dev key labelled
/// `dev` (when given). `None` when no source is set.
pub fn signing_key(
    pem: Option<&str>,
    file: Option<&Path>,
    dev: Option<&str>,
) -> Result<Option<SigningKey>, KeyError> {
    if let Some(pem) = pem {
        return SigningKey::from_pem(pem).map(Some);
    }
    if let Some(path) = file {
        return SigningKey::from_pem_file(path).map(Some);
    }
    dev.map(SigningKey::dev).transpose()
}

/// The ring verifying tokens of `issuer` for `audience`: keys fetched from `url` (refreshed)
/// on top of the pinned ones (`inline` JWKS, and the dev key labelled `dev` when given).
/// `None` when there is neither a URL nor a pinned key.
pub fn verification_ring(
    url: Option<&str>,
    inline: Option<&str>,
    dev: Option<&str>,
    issuer: &str,
    audience: &str,
) -> Result<Option<KeyRing>, KeyError> {
    let mut pinned = match inline {
        Some(json) => Jwks::from_json(json)?,
        None => Jwks::default(),
    };
    if let Some(label) = dev {
        pinned = pinned.merged(&SigningKey::dev(label)?.jwks());
    }
    match url {
        Some(url) => KeyRing::remote(url, pinned, issuer, audience).map(Some),
        None if pinned.keys.is_empty() => Ok(None),
        None => KeyRing::fixed(&pinned, issuer, audience).map(Some),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dev_keys_beside_real_keys_are_refused_naming_them() {
        assert!(refuse_dev_keys_beside(true, &[("A", false), ("B", false)]).is_ok());
        assert!(refuse_dev_keys_beside(false, &[("A", true)]).is_ok());
        let error = refuse_dev_keys_beside(true, &[("A", true), ("B", false), ("C", true)])
            .expect_err("refused")
            .to_string();
        assert!(
            error.contains("FLASH_DEV_KEYS") && error.contains("(A, C)"),
            "{error}"
        );
    }

    #[test]
    fn the_first_source_set_wins_and_none_is_none() {
        let dev = signing_key(None, None, Some("label"))
            .expect("dev")
            .expect("a key");
        assert_eq!(dev.kid(), SigningKey::dev("label").expect("dev").kid());
        assert!(signing_key(None, None, None).expect("no error").is_none());
        assert!(signing_key(Some("not a pem"), None, Some("label")).is_err());
        assert!(
            verification_ring(None, None, None, "iss", "aud")
                .expect("no error")
                .is_none()
        );
        assert!(
            verification_ring(None, None, Some("label"), "iss", "aud")
                .expect("ring")
                .is_some()
        );
    }
}
