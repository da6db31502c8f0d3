//! The ops endpoints every service serves on its own port: `/live`, `/ready` and `/metrics`.

use std::sync::Arc;
use std::time::Duration;

use crate::metrics::Exposition;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use futures::future::{BoxFuture, join_all};
use serde::Serialize;

/// How long one readiness check may take before it counts as failed.
pub const CHECK_TIMEOUT: Duration = Duration::from_secs(2);

/// One dependency `/ready` checks, named after the store (`redis`, `postgres`, `rabbitmq`).
pub trait Check: Send + Sync + 'static {
    fn name(&self) -> &'static str;
    /// `Ok` when the dependency answers; `Err` says what failed.
    fn check(&self) -> BoxFuture<'_, Result<(), String>>;
}

/// Whether a failing check takes the service out of its Service's endpoints.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Need {
    /// Without it the service cannot serve: `/ready` answers 503.
    Required,
    /// The service serves without it, degraded (e.g. the api takes orders into its outbox while
    /// RabbitMQ is away): `/ready` stays 200 and names it under `degraded`.
    Degraded,
}

/// The checks of one service (or of every service in the all-in-one process).
#[derive(Clone, Default)]
pub struct Readiness {
    checks: Vec<(Arc<dyn Check>, Need)>,
}

impl std::fmt::Debug for Readiness {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.checks.iter().map(|(c, need)| (c.name(), need)))
            .finish()
    }
}

/// One check's outcome in the `/ready` body.
#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq, Eq)]
pub struct CheckReport {
    pub name: String,
    pub ok: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// The `/ready` body: 200 when `ready`, 503 otherwise with `failing` naming the stores the
/// service cannot serve without; `degraded` names those it serves without, failing now.
#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq, Eq)]
pub struct ReadyReport {
    pub ready: bool,
    pub failing: Vec<String>,
    #[serde(default)]
    pub degraded: Vec<String>,
    pub checks: Vec<CheckReport>,
}

impl Readiness {
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// A check the service cannot serve without.
    #[must_use]
    pub fn with(mut self, check: impl Check) -> Self {
        self.checks.push((Arc::new(check), Need::Required));
        self
    }

    /// A check the service serves without, degraded: reported, never failing `/ready`.
    #[must_use]
    pub fn with_degraded(mut self, check: impl Check) -> Self {
        self.checks.push((Arc::new(check), Need::Degraded));
        self
    }

    /// All checks of `self`, then those of `other` not already present by name (the first
    /// service's need of a store is kept: the all-in-one process serves as its api does).
    #[must_use]
    pub fn merged(mut self, other: &Readiness) -> Self {
        for (check, need) in &other.checks {
            if !self.checks.iter().any(|(c, _)| c.name() == check.name()) {
                self.checks.push((Arc::clone(check), *need));
            }
        }
        self
    }

    /// Runs every check concurrently, each bounded by [`CHECK_TIMEOUT`].
    pub async fn report(&self) -> ReadyReport {
        let checks = join_all(self.checks.iter().map(|(check, _)| async move {
            let outcome = match tokio::time::timeout(CHECK_TIMEOUT, check.check()).await {
                Ok(outcome) => outcome,
                Err(_) => Err(format!("no answer within {} ms", CHECK_TIMEOUT.as_millis())),
            };
            CheckReport {
                name: check.name().to_owned(),
                ok: outcome.is_ok(),
                error: outcome.err(),
            }
        }))
        .await;
        let named = |need: Need| -> Vec<String> {
            checks
                .iter()
                .zip(&self.checks)
                .filter(|(report, (_, n))| !report.ok && *n == need)
                .map(|(report, _)| report.name.clone())
                .collect()
        };
        let (failing, degraded) = (named(Need::Required), named(Need::Degraded));
        ReadyReport {
            ready: failing.is_empty(),
            failing,
            degraded,
            checks,
        }
    }
}

#[derive(Clone)]
struct OpsState {
    readiness: Readiness,
    metrics: Exposition,
}

/// `/live`, `/ready` and `/metrics`.
pub fn router(readiness: Readiness, metrics: Exposition) -> Router {
    Router::new()
        .route("/live", get(live))
        .route("/ready", get(ready))
        .route("/metrics", get(render_metrics))
        .with_state(OpsState { readiness, metrics })
}

async fn live() -> impl IntoResponse {
    Json(serde_json::json!({ "status": "ok" }))
}

async fn ready(State(state): State<OpsState>) -> Response {
    let report = state.readiness.report().await;
    if !report.ready {
        tracing::warn!(failing = ?report.failing, "not ready");
    }
    let status = if report.ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(report)).into_response()
}

async fn render_metrics(State(state): State<OpsState>) -> Response {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        state.metrics.render(),
    )
        .into_response()
}
