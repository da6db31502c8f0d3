//! [`KeyRing`]: the keys a service accepts, from configuration or from the issuer's JWKS
//! endpoint. A remote key set is refreshed periodically and when a token names an unknown
//! `kid` (at most once per [`MIN_REFRESH_INTERVAL`] after a fetch that worked, and once per
//! [`RETRY_INTERVAL`] after one that failed, so garbage tokens cannot hammer the issuer, while
//! an issuer that was not up yet is asked again soon).

use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use serde::de::DeserializeOwned;
use tokio_util::sync::CancellationToken;

use crate::batch::{Batcher, Batches};
use crate::keys::{Jwks, KeyError};
use crate::verify::{Unverified, Verifier, VerifyError};

/// Smallest gap between two fetches of a remote JWKS.
pub const MIN_REFRESH_INTERVAL: Duration = Duration::from_secs(10);
/// Smallest gap after a fetch that failed (the issuer was down or not started yet).
pub const RETRY_INTERVAL: Duration = Duration::from_secs(1);

#[derive(Debug, thiserror::Error)]
pub enum RefreshError {
    #[error("fetching {url}: {reason}")]
    Fetch { url: String, reason: String },
    #[error(transparent)]
    Keys(#[from] KeyError),
}

struct Remote {
    url: String,
    client: reqwest::Client,
    pinned: Jwks,
    /// When the last fetch began, and whether it worked.
    last_fetch: Mutex<Option<(Instant, bool)>>,
}

/// Keys accepted for one issuer and audience.
pub struct KeyRing {
    issuer: String,
    audience: String,
    current: RwLock<Arc<Verifier>>,
    remote: Option<Remote>,
    /// Signatures of concurrent verifications, checked together.
    signatures: Batcher,
}

impl std::fmt::Debug for KeyRing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyRing")
            .field("issuer", &self.issuer)
            .field("remote", &self.remote.as_ref().map(|r| r.url.as_str()))
            .field("verifier", &self.verifier())
            .finish()
    }
}

impl KeyRing {
    /// A fixed key set from configuration.
    pub fn fixed(jwks: &Jwks, issuer: &str, audience: &str) -> Result<Self, KeyError> {
        Ok(Self {
            issuer: issuer.to_owned(),
            audience: audience.to_owned(),
            current: RwLock::new(Arc::new(Verifier::new(jwks, issuer, audience)?)),
            remote: None,
            signatures: Batcher::new(),
        })
    }

    /// Keys fetched from `url` (plus `pinned` ones from configuration, always accepted).
    /// Empty of remote keys until [`refresh`](Self::refresh) succeeds.
    pub fn remote(url: &str, pinned: Jwks, issuer: &str, audience: &str) -> Result<Self, KeyError> {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(5))
            .build()
            .map_err(|e| KeyError::Jwk {
                kid: String::new(),
                reason: e.to_string(),
            })?;
        Ok(Self {
            issuer: issuer.to_owned(),
            audience: audience.to_owned(),
            current: RwLock::new(Arc::new(Verifier::new(&pinned, issuer, audience)?)),
            remote: Some(Remote {
                url: url.to_owned(),
                client,
                pinned,
                last_fetch: Mutex::new(None),
            }),
            signatures: Batcher::new(),
        })
    }

    /// The verifier as it is now.
    #[must_use]
    pub fn verifier(&self) -> Arc<Verifier> {
        Arc::clone(
            &self
                .current
                .read()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        )
    }

    /// Fetches the remote JWKS now and swaps it in (no-op for a fixed key set).
    pub async fn refresh(&self) -> Result<(), RefreshError> {
        let Some(remote) = &self.remote else {
            return Ok(());
        };
        // Counted as a fetch from its start (no stampede while it is under way); one that
        // failed may be tried again sooner.
        let started = Instant::now();
        let mark = |worked| {
            *remote
                .last_fetch
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner) = Some((started, worked));
        };
        mark(true);
        let outcome = self.fetch(remote).await;
        if outcome.is_err() {
            mark(false);
        }
        outcome
    }

    async fn fetch(&self, remote: &Remote) -> Result<(), RefreshError> {
        let fetch_error = |reason: String| RefreshError::Fetch {
            url: remote.url.clone(),
            reason,
        };
        let response = remote
            .client
            .get(&remote.url)
            .send()
            .await
            .and_then(reqwest::Response::error_for_status)
            .map_err(|e| fetch_error(e.to_string()))?;
        let text = response
            .text()
            .await
            .map_err(|e| fetch_error(e.to_string()))?;
        let jwks = Jwks::from_json(&text)?.merged(&remote.pinned);
        let verifier = Verifier::new(&jwks, &self.issuer, &self.audience)?;
        *self
            .current
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Arc::new(verifier);
        Ok(())
    }

    fn may_refresh_now(&self) -> bool {
        self.remote.as_ref().is_some_and(|remote| {
            remote
                .last_fetch
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .is_none_or(|(at, worked)| {
                    at.elapsed()
                        >= if worked {
                            MIN_REFRESH_INTERVAL
                        } else {
                            RETRY_INTERVAL
                        }
                })
        })
    }

    /// Verifies `token`; an unknown `kid` triggers one refresh of a remote key set. Its
    /// signature is checked together with those of concurrent calls.
    pub async fn verify<C: DeserializeOwned>(&self, token: &str) -> Result<C, VerifyError> {
        let unverified: Unverified<C> = match self.verifier().unverified(token) {
            Err(VerifyError::UnknownKey) if self.may_refresh_now() => {
                if let Err(error) = self.refresh().await {
                    tracing_warn(&error);
                }
                self.verifier().unverified(token)?
            }
            other => other?,
        };
        let holds = self.signatures.holds(unverified.signature().clone()).await;
        unverified.finish(holds)
    }

    /// The signatures [`verify`](Self::verify) checked, and in how many batches.
    #[must_use]
    pub fn signature_batches(&self) -> Batches {
        self.signatures.done()
    }

    /// Refreshes a remote key set every `every` until `stop` (every [`RETRY_INTERVAL`] while
    /// fetches fail, e.g. until the issuer has started); a no-op for fixed keys.
    pub fn spawn_refresh(self: &Arc<Self>, every: Duration, stop: CancellationToken) {
        if self.remote.is_none() {
            return;
        }
        let ring = Arc::clone(self);
        tokio::spawn(async move {
            loop {
                let wait = match ring.refresh().await {
                    Ok(()) => every,
                    Err(error) => {
                        tracing_warn(&error);
                        RETRY_INTERVAL.min(every)
                    }
                };
                tokio::select! {
                    () = stop.cancelled() => return,
                    () = tokio::time::sleep(wait) => {}
                }
            }
        });
    }
}

fn tracing_warn(error: &RefreshError) {
    tracing::warn!(%error, "could not refresh the JWKS; keeping the keys we have");
}
