//! [`Suite`]: the three services built from their own configurations, and the origin that
//! hosts their public routes next to the web assets (served with a strict content security
//! policy: the web UI loads nothing from elsewhere).

use std::net::SocketAddr;

use axum::Router;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse as _, Response};
use flash_kit::http::{ProblemResponse, with_common_layers};
use flash_kit::ops;
use flash_protocol::ErrorCode;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tower_http::services::ServeDir;

use crate::config::SuiteConfig;

/// Why the suite could not start.
#[derive(Debug, thiserror::Error)]
pub enum SuiteError {
    #[error("gateway: {0}")]
    Gateway(#[from] flash_gateway::app::BuildError),
    #[error("api: {0}")]
    Api(#[from] flash_api::app::BuildError),
    #[error("api database: {0}")]
    Database(#[from] flash_api::db::DbError),
    #[error("pay: {0}")]
    Pay(#[from] flash_pay::app::BuildError),
    #[error("demo event: {0}")]
    Demo(#[from] crate::demo::DemoError),
    #[error("web assets: {0} is not a directory (set FLASH_WEB_DIR)")]
    WebDir(String),
    #[error("cannot listen on the origin: {0}")]
    Listen(#[from] std::io::Error),
    #[error("the api's runtime stopped while the api was being built")]
    ApiRuntime,
}

/// The whole suite, built and bound.
pub struct Suite {
    pub gateway: flash_gateway::Application,
    pub api: flash_api::Application,
    /// Where the api runs (see [`ApiRuntime`]).
    api_runtime: ApiRuntime,
    pub pay: flash_pay::Application,
    /// The demo event, once [`ensure_demo_event`](Self::ensure_demo_event) made sure of it.
    pub demo: Option<crate::demo::Demo>,
    origin: TcpListener,
    router: Router,
    limits: flash_kit::server::ConnectionLimits,
    grace: std::time::Duration,
}

impl Suite {
    /// Builds every service (creating the api's database first when asked) and the origin.
    pub async fn build(config: SuiteConfig) -> Result<Self, SuiteError> {
        let web_dir = &config.origin.web_dir;
        if !web_dir.is_dir() {
            return Err(SuiteError::WebDir(web_dir.display().to_string()));
        }
        if config.origin.create_database {
            flash_api::db::create_if_missing(&config.api.database_url).await?;
        }
        let api_runtime = ApiRuntime::start()?;
        let api = api_runtime
            .handle()
            .spawn(flash_api::Application::build(config.api))
            .await
            .map_err(|_| SuiteError::ApiRuntime)??;
        let gateway = flash_gateway::Application::build(config.gateway).await?;
        let pay = flash_pay::Application::build(config.pay).await?;

        let metrics = api
            .service
            .metrics()
            .clone()
            .merged(gateway.service.metrics())
            .merged(pay.service.metrics());
        let readiness = api
            .service
            .readiness()
            .clone()
            .merged(gateway.service.readiness())
            .merged(pay.service.readiness());
        let web = Router::new()
            .fallback_service(
                ServeDir::new(web_dir).not_found_service(axum::routing::any(web_not_found)),
            )
            .layer(axum::middleware::map_response(web_headers));
        let router = Router::new()
            .merge(on_runtime(
                api.service.public_router(),
                api_runtime.handle().clone(),
            ))
            .merge(gateway.service.public_router())
            .merge(ops::router(readiness, metrics))
            .merge(with_common_layers(
                web,
                "web",
                config.origin.common.request_timeout(),
            ));
        let origin = flash_kit::server::listen(config.origin.addr)?;
        Ok(Self {
            gateway,
            api,
            api_runtime,
            pay,
            demo: None,
            origin,
            router,
            limits: config.origin.common.connection_limits(),
            grace: config.origin.common.shutdown_grace(),
        })
    }

    /// Makes sure a demo event is on sale (`FLASH_DEMO_EVENT`); see [`crate::demo`].
    pub async fn ensure_demo_event(&mut self) -> Result<crate::demo::Demo, SuiteError> {
        let demo = crate::demo::ensure(&self.api.state.db, &self.gateway.state.room).await?;
        self.demo = Some(demo);
        Ok(demo)
    }

    /// The origin's address.
    ///
    /// # Panics
    /// Never for a bound listener.
    #[must_use]
    pub fn origin_addr(&self) -> SocketAddr {
        self.origin.local_addr().expect("bound listener")
    }

    /// Serves the origin and every service's own port until `shutdown`, then drains.
    pub async fn run_until(self, shutdown: CancellationToken) -> std::io::Result<()> {
        if let Some(demo) = self.demo {
            tracing::info!(
                url = %format!("http://{}/#/events/{}", self.origin_addr(), demo.event()),
                ?demo,
                "demo event on sale"
            );
        }
        tracing::info!(
            origin = %self.origin_addr(),
            gateway_port = self.gateway.port(),
            api_port = self.api.port(),
            pay_port = self.pay.port(),
            "flash suite listening"
        );
        let api = self
            .api_runtime
            .handle()
            .spawn(self.api.run_until(shutdown.clone()));
        let (origin, gateway, api, pay) = tokio::join!(
            flash_kit::server::serve(
                "origin",
                self.origin,
                self.router,
                self.limits,
                shutdown.clone(),
                self.grace
            ),
            self.gateway.run_until(shutdown.clone()),
            api,
            self.pay.run_until(shutdown),
        );
        let api = api.unwrap_or_else(|_| Err(std::io::Error::other("the api's runtime stopped")));
        origin.and(gateway).and(api).and(pay)
    }
}

/// The api's own runtime in the suite. Its handlers, stores and background work then do not
/// wait for a turn on one runtime behind the gateway's joins, polls and sockets, as in a
/// deployment, where the api has pods of its own: in `make drill` an order awaits several
/// times (its limit's Redis reply, the batch writer's answer), and each wait used to requeue
/// it behind the crowd's work (BENCHMARKS.md). Shut down in the background when dropped.
struct ApiRuntime(Option<tokio::runtime::Runtime>);

impl ApiRuntime {
    fn start() -> std::io::Result<Self> {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(std::thread::available_parallelism().map_or(2, usize::from))
            .thread_name("api")
            .enable_all()
            .build()
            .map(|runtime| Self(Some(runtime)))
    }

    fn handle(&self) -> &tokio::runtime::Handle {
        match &self.0 {
            Some(runtime) => runtime.handle(),
            None => unreachable!("the runtime is taken only when dropped"),
        }
    }
}

impl Drop for ApiRuntime {
    fn drop(&mut self) {
        if let Some(runtime) = self.0.take() {
            runtime.shutdown_background();
        }
    }
}

/// `router` with each request handled on `runtime` (the origin's connection stays where it
/// was accepted; the handler, and what it awaits, runs there).
fn on_runtime(router: Router, runtime: tokio::runtime::Handle) -> Router {
    router.layer(tower::layer::layer_fn(move |inner| SpawnOn {
        inner,
        runtime: runtime.clone(),
    }))
}

#[derive(Clone)]
struct SpawnOn<S> {
    inner: S,
    runtime: tokio::runtime::Handle,
}

impl<S> tower::Service<axum::extract::Request> for SpawnOn<S>
where
    S: tower::Service<
            axum::extract::Request,
            Response = Response,
            Error = std::convert::Infallible,
        > + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
{
    type Response = Response;
    type Error = std::convert::Infallible;
    type Future = std::pin::Pin<
        Box<dyn std::future::Future<Output = Result<Response, std::convert::Infallible>> + Send>,
    >;

    fn poll_ready(
        &mut self,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: axum::extract::Request) -> Self::Future {
        let task = self
            .runtime
            .spawn(tower::ServiceExt::oneshot(self.inner.clone(), request));
        Box::pin(async move {
            Ok(match task.await {
                Ok(Ok(response)) => response,
                Ok(Err(never)) => match never {},
                // Only when the api's runtime is shutting down.
                Err(_) => ProblemResponse::new(
                    ErrorCode::Unavailable,
                    "The service is shutting down; retry shortly",
                )
                .into_response(),
            })
        })
    }
}

/// What the web UI may load: its own origin only (scripts, styles, the api and the gateway,
/// WebSockets included), never a frame of another site.
pub const WEB_CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; \
    style-src 'self'; img-src 'self' data:; connect-src 'self'; font-src 'self'; \
    object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/// Security headers of every web asset, and revalidation on every load (`Last-Modified`), so a
/// new release is picked up at once.
async fn web_headers(mut response: Response) -> Response {
    let headers = response.headers_mut();
    for (name, value) in [
        (header::CONTENT_SECURITY_POLICY, WEB_CONTENT_SECURITY_POLICY),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::REFERRER_POLICY, "no-referrer"),
        (header::X_FRAME_OPTIONS, "DENY"),
        (header::CACHE_CONTROL, "no-cache"),
    ] {
        headers.insert(name, HeaderValue::from_static(value));
    }
    response
}

async fn web_not_found() -> ProblemResponse {
    ProblemResponse::new(ErrorCode::NotFound, "No such page")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_router_on_a_runtime_handles_its_requests_there() {
        let runtime = ApiRuntime::start().expect("runtime");
        let router = on_runtime(
            Router::new().route(
                "/where",
                axum::routing::get(|| async {
                    std::thread::current().name().unwrap_or_default().to_owned()
                }),
            ),
            runtime.handle().clone(),
        );
        let response = tower::ServiceExt::oneshot(
            router,
            axum::extract::Request::get("/where")
                .body(axum::body::Body::empty())
                .expect("request"),
        )
        .await
        .expect("infallible");
        let body = axum::body::to_bytes(response.into_body(), 1024)
            .await
            .expect("body");
        assert_eq!(&body[..], b"api", "the handler ran on the api's runtime");
    }
}
