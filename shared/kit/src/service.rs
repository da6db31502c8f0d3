//! The shape every service shares: a bound listener, the service's public routes, its
//! readiness checks, and background tasks stopped after the server has drained.

use std::net::SocketAddr;

use axum::Router;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::config::CommonConfig;
use crate::metrics::Exposition;
use crate::ops::{self, Readiness};

/// A service ready to run: `Application::build` in each service returns one of these.
#[derive(Debug)]
pub struct Service {
    name: &'static str,
    listener: TcpListener,
    public: Router,
    readiness: Readiness,
    metrics: Exposition,
    common: CommonConfig,
    background: CancellationToken,
}

/// What a service hands to [`Service::bind`].
#[derive(Debug)]
pub struct Parts {
    pub name: &'static str,
    /// Where the service's own port listens (`:0` picks a free port).
    pub addr: SocketAddr,
    /// The public routes (already with [`crate::http::with_common_layers`]).
    pub public: Router,
    pub readiness: Readiness,
    /// What `/metrics` shows (the recorder, and series the service renders itself).
    pub metrics: Exposition,
    pub common: CommonConfig,
    /// Cancelled once the server has stopped: the service's background tasks watch it.
    pub background: CancellationToken,
}

impl Service {
    /// Binds the service's listener.
    pub async fn bind(parts: Parts) -> std::io::Result<Self> {
        let listener = crate::server::listen(parts.addr)?;
        Ok(Self {
            name: parts.name,
            listener,
            public: parts.public,
            readiness: parts.readiness,
            metrics: parts.metrics,
            common: parts.common,
            background: parts.background,
        })
    }

    #[must_use]
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// The address actually bound.
    ///
    /// # Panics
    /// Never for a bound TCP listener.
    #[must_use]
    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .expect("bound listener has an address")
    }

    #[must_use]
    pub fn port(&self) -> u16 {
        self.local_addr().port()
    }

    /// The public routes, for hosting them on another origin (the all-in-one binary).
    pub fn public_router(&self) -> Router {
        self.public.clone()
    }

    #[must_use]
    pub fn readiness(&self) -> &Readiness {
        &self.readiness
    }

    #[must_use]
    pub fn metrics(&self) -> &Exposition {
        &self.metrics
    }

    /// [`run_until`](Self::run_until), then waits (within the shutdown grace) for `workers`,
    /// which watch the background token and stop at their next safe point.
    pub async fn run_with_workers(
        self,
        shutdown: CancellationToken,
        workers: tokio::task::JoinSet<()>,
    ) -> std::io::Result<()> {
        self.run_draining(shutdown, workers, std::future::ready(()))
            .await
    }

    /// [`run_with_workers`](Self::run_with_workers), awaiting `drain` once the server has
    /// stopped and before the background work is told to stop: connections the server no
    /// longer tracks (upgraded WebSockets) close over it, while the background they rely on
    /// (admission ticks, fan-out) still runs. `drain` bounds itself.
    pub async fn run_draining(
        self,
        shutdown: CancellationToken,
        mut workers: tokio::task::JoinSet<()>,
        drain: impl std::future::Future<Output = ()>,
    ) -> std::io::Result<()> {
        let grace = self.common.shutdown_grace();
        let name = self.name;
        let result = self.serve_then(shutdown, drain).await;
        let drained = tokio::time::timeout(grace, async {
            while workers.join_next().await.is_some() {}
        })
        .await;
        if drained.is_err() {
            tracing::warn!(
                service = name,
                "background work still running at the deadline"
            );
            workers.abort_all();
        }
        result
    }

    /// Serves the public routes and `/live`, `/ready`, `/metrics` on the service's port until
    /// `shutdown` fires and in-flight requests finish (bounded by the shutdown grace), then
    /// stops the service's background tasks.
    pub async fn run_until(self, shutdown: CancellationToken) -> std::io::Result<()> {
        self.serve_then(shutdown, std::future::ready(())).await
    }

    /// Serves until `shutdown` (see [`run_until`](Self::run_until)), awaits `drain`, then stops
    /// the background tasks.
    async fn serve_then(
        self,
        shutdown: CancellationToken,
        drain: impl std::future::Future<Output = ()>,
    ) -> std::io::Result<()> {
        let router = self
            .public
            .merge(ops::router(self.readiness, self.metrics))
            .fallback(crate::http::not_found);
        tracing::info!(service = self.name, addr = %self.listener.local_addr()?, "listening");
        let result = crate::server::serve(
            self.name,
            self.listener,
            router,
            self.common.connection_limits(),
            shutdown,
            self.common.shutdown_grace(),
        )
        .await;
        drain.await;
        self.background.cancel();
        tracing::info!(service = self.name, "stopped");
        result
    }
}

/// Runs `work` on a thread of its own, with a single-threaded runtime: background work that
/// moves every sale forward (relays, consumers, admission ticks) then never queues behind the
/// request handlers for a turn on the shared runtime, however many sockets they serve. Stores
/// it talks to must be connected inside `work`, so that their I/O runs on that thread too.
/// Resolves when `work` has finished (or could not start, which is logged).
pub fn on_own_thread<F, Fut>(
    name: &'static str,
    work: F,
) -> impl std::future::Future<Output = ()> + Send + 'static
where
    F: FnOnce() -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + 'static,
{
    let (done, finished) = tokio::sync::oneshot::channel::<()>();
    let spawned = std::thread::Builder::new()
        .name(name.into())
        .spawn(move || {
            match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(runtime) => runtime.block_on(work()),
                Err(error) => tracing::error!(%error, thread = name, "cannot start a runtime"),
            }
            let _ = done.send(());
        });
    if let Err(error) = spawned {
        tracing::error!(%error, thread = name, "cannot start a thread");
    }
    async move {
        let _ = finished.await;
    }
}
