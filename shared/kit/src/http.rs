//! HTTP glue: problem+json responses and extractors that reject with them, the golden-signal
//! middleware and the common layers.

use std::any::Any;
use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, MatchedPath, Request};
use axum::http::{HeaderValue, StatusCode, header, request::Parts};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use flash_protocol::error::PROBLEM_CONTENT_TYPE;
use flash_protocol::{ErrorCode, Problem};
use serde::de::DeserializeOwned;
use tower_http::catch_panic::CatchPanicLayer;

/// Largest request body any service accepts.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// A [`Problem`] as an HTTP response (`application/problem+json`).
#[derive(Debug)]
pub struct ProblemResponse(pub Problem);

impl ProblemResponse {
    #[must_use]
    pub fn new(code: ErrorCode, detail: impl Into<String>) -> Self {
        Self(Problem::new(code, detail))
    }
}

impl From<Problem> for ProblemResponse {
    fn from(problem: Problem) -> Self {
        Self(problem)
    }
}

impl IntoResponse for ProblemResponse {
    fn into_response(self) -> Response {
        let status =
            StatusCode::from_u16(self.0.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let body = serde_json::to_vec(&self.0).unwrap_or_default();
        let mut response = (status, body).into_response();
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static(PROBLEM_CONTENT_TYPE),
        );
        response
    }
}

/// `axum::Json`, but every rejection is problem+json: unparseable JSON is 400 `BAD_REQUEST`,
/// well-formed JSON of the wrong shape 422 `VALIDATION`, a body over the limit 413.
#[derive(Debug, Clone, Copy, Default)]
pub struct Json<T>(pub T);

impl<T, S> FromRequest<S> for Json<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ProblemResponse;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match axum::Json::<T>::from_request(req, state).await {
            Ok(axum::Json(value)) => Ok(Self(value)),
            Err(rejection) => Err(json_rejection(&rejection)),
        }
    }
}

/// An optional JSON body (`Option<Json<T>>`): a request without a body and without a
/// `Content-Type` has none; any other body is read as [`Json`] reads it.
impl<T, S> axum::extract::OptionalFromRequest<S> for Json<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ProblemResponse;

    async fn from_request(req: Request, state: &S) -> Result<Option<Self>, Self::Rejection> {
        if req.headers().contains_key(header::CONTENT_TYPE) {
            return <Self as FromRequest<S>>::from_request(req, state)
                .await
                .map(Some);
        }
        match axum::body::Bytes::from_request(req, state).await {
            Ok(body) if body.is_empty() => Ok(None),
            Ok(_) => Err(ProblemResponse::new(
                ErrorCode::UnsupportedMediaType,
                "A request body must be sent as application/json",
            )),
            Err(rejection) => Err(ProblemResponse::new(
                if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                    ErrorCode::PayloadTooLarge
                } else {
                    ErrorCode::BadRequest
                },
                rejection.body_text(),
            )),
        }
    }
}

impl<T: serde::Serialize> IntoResponse for Json<T> {
    fn into_response(self) -> Response {
        axum::Json(self.0).into_response()
    }
}

fn json_rejection(rejection: &JsonRejection) -> ProblemResponse {
    let code = match rejection {
        JsonRejection::JsonDataError(_) => ErrorCode::Validation,
        JsonRejection::MissingJsonContentType(_) => ErrorCode::UnsupportedMediaType,
        JsonRejection::JsonSyntaxError(_) => ErrorCode::BadRequest,
        other if other.status() == StatusCode::PAYLOAD_TOO_LARGE => ErrorCode::PayloadTooLarge,
        _ => ErrorCode::BadRequest,
    };
    ProblemResponse::new(code, rejection.body_text())
}

/// `axum::extract::Path` whose rejection is 422 `VALIDATION` problem+json.
#[derive(Debug, Clone, Copy)]
pub struct Path<T>(pub T);

impl<T, S> FromRequestParts<S> for Path<T>
where
    T: DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = ProblemResponse;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match axum::extract::Path::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Path(value)) => Ok(Self(value)),
            Err(rejection) => Err(path_rejection(&rejection)),
        }
    }
}

fn path_rejection(rejection: &PathRejection) -> ProblemResponse {
    let code = if rejection.status().is_server_error() {
        ErrorCode::Internal
    } else {
        ErrorCode::Validation
    };
    ProblemResponse::new(code, rejection.body_text())
}

/// `axum::extract::Query` whose rejection is 422 `VALIDATION` problem+json.
#[derive(Debug, Clone, Copy)]
pub struct Query<T>(pub T);

impl<T, S> FromRequestParts<S> for Query<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ProblemResponse;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match axum::extract::Query::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Query(value)) => Ok(Self(value)),
            Err(rejection) => Err(query_rejection(&rejection)),
        }
    }
}

fn query_rejection(rejection: &QueryRejection) -> ProblemResponse {
    ProblemResponse::new(ErrorCode::Validation, rejection.body_text())
}

/// What a service's handlers share, behind one pointer: the copy that each request's
/// extractors and middleware take is one reference count, not one per part. The parts are
/// read through `Deref`.
pub struct SharedState<T>(std::sync::Arc<T>);

impl<T> SharedState<T> {
    #[must_use]
    pub fn new(parts: T) -> Self {
        Self(std::sync::Arc::new(parts))
    }
}

impl<T> Clone for SharedState<T> {
    fn clone(&self) -> Self {
        Self(std::sync::Arc::clone(&self.0))
    }
}

impl<T> std::ops::Deref for SharedState<T> {
    type Target = T;

    fn deref(&self) -> &T {
        &self.0
    }
}

/// Sets `Retry-After` to `wait` in whole seconds (rounded up, at least 1).
pub fn with_retry_after(response: &mut Response, wait: Duration) {
    let seconds = crate::limits::retry_seconds(wait);
    if let Ok(value) = HeaderValue::from_str(&seconds.to_string()) {
        response.headers_mut().insert(header::RETRY_AFTER, value);
    }
}

/// The routes of `router` and the OpenAPI document describing them, completed with what every
/// service's document shares ([`flash_protocol::openapi::Common`]).
pub fn split_documented<S>(
    router: utoipa_axum::router::OpenApiRouter<S>,
) -> (Router<S>, utoipa::openapi::OpenApi)
where
    S: Clone + Send + Sync + 'static,
{
    let (routes, mut doc) = router.split_for_parts();
    utoipa::Modify::modify(&flash_protocol::openapi::Common, &mut doc);
    (routes, doc)
}

/// A handler answering one JSON document (e.g. an OpenAPI document), serialised once.
pub fn json_document<T: serde::Serialize>(
    document: &T,
) -> impl Fn() -> std::future::Ready<Response> + Clone + Send + Sync + 'static {
    let body = axum::body::Bytes::from(serde_json::to_vec_pretty(document).unwrap_or_default());
    move || {
        std::future::ready(
            ([(header::CONTENT_TYPE, "application/json")], body.clone()).into_response(),
        )
    }
}

/// 404 `NOT_FOUND` for any unknown route.
pub async fn not_found() -> ProblemResponse {
    ProblemResponse::new(ErrorCode::NotFound, "No such route")
}

/// 405 `METHOD_NOT_ALLOWED` for a known route called with another method.
pub async fn method_not_allowed() -> ProblemResponse {
    ProblemResponse::from(Problem::from_code(ErrorCode::MethodNotAllowed))
}

/// The layers every public router gets: golden-signal metrics labelled with `service`, a
/// request deadline answered with 504 problem+json, panics turned into 500 problem+json, a
/// body limit, and problem+json for unknown routes and methods.
pub fn with_common_layers(router: Router, service: &'static str, timeout: Duration) -> Router {
    router
        .method_not_allowed_fallback(method_not_allowed)
        .layer(middleware::from_fn(move |req: Request, next: Next| {
            deadline(timeout, req, next)
        }))
        .layer(axum::extract::DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(CatchPanicLayer::custom(panic_response))
        .layer(middleware::from_fn({
            let signals = Arc::new(GoldenSignals::new(service));
            move |req: Request, next: Next| {
                let signals = Arc::clone(&signals);
                async move { signals.observe(req, next).await }
            }
        }))
}

fn panic_response(panic: Box<dyn Any + Send + 'static>) -> Response {
    let message = panic
        .downcast_ref::<&str>()
        .map(ToString::to_string)
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_default();
    tracing::error!(panic = %message, "handler panicked");
    ProblemResponse::new(ErrorCode::Internal, "Internal error").into_response()
}

async fn deadline(limit: Duration, req: Request, next: Next) -> Response {
    match tokio::time::timeout(limit, next.run(req)).await {
        Ok(response) => response,
        Err(_) => ProblemResponse::new(
            ErrorCode::Timeout,
            format!("The request took longer than {} s", limit.as_secs()),
        )
        .into_response(),
    }
}

/// The `method` label: the standard methods by name, anything else `other` (a client can send
/// any token as a method; labels must stay a bounded set).
#[must_use]
pub fn method_label(method: &axum::http::Method) -> &'static str {
    use axum::http::Method;
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        Method::CONNECT => "CONNECT",
        Method::TRACE => "TRACE",
        _ => "other",
    }
}

/// The series of one service's requests of one method, route and status.
struct Series {
    requests: ::metrics::Counter,
    /// For a 5xx status only.
    errors: Option<::metrics::Counter>,
    duration: ::metrics::Histogram,
}

impl Series {
    fn record(&self, took: Duration) {
        self.requests.increment(1);
        if let Some(errors) = &self.errors {
            errors.increment(1);
        }
        self.duration.record(took.as_secs_f64());
    }
}

/// Requests, errors, duration and in-flight requests by service, method, route (the matched
/// template, `unmatched` otherwise) and status. Each series is looked up in the recorder once
/// and kept (building a key of four labels and finding it for every request cost about a
/// microsecond); the set stays bounded, as the labels do: methods are a fixed set, routes the
/// router's templates, statuses the codes the service answers.
struct GoldenSignals {
    service: &'static str,
    in_flight: ::metrics::Gauge,
    series: RwLock<SeriesByLabels>,
}

/// Series by (method, status), then route.
type SeriesByLabels = HashMap<(&'static str, u16), HashMap<String, Series>>;

impl GoldenSignals {
    fn new(service: &'static str) -> Self {
        // The process's recorder first: a series taken before it exists would count nowhere.
        drop(crate::metrics::install());
        Self {
            service,
            in_flight: ::metrics::gauge!("http_requests_in_flight", "service" => service),
            series: RwLock::default(),
        }
    }

    async fn observe(&self, req: Request, next: Next) -> Response {
        let route = req.extensions().get::<MatchedPath>().cloned();
        let method = method_label(req.method());
        let started = Instant::now();
        self.in_flight.increment(1.0);
        let response = next.run(req).await;
        self.in_flight.decrement(1.0);
        let route = route.as_ref().map_or("unmatched", MatchedPath::as_str);
        self.record(method, route, response.status(), started.elapsed());
        response
    }

    /// Counts one request in its series, found under the read lock; a series not seen
    /// before is taken from the recorder once and kept.
    fn record(&self, method: &'static str, route: &str, status: StatusCode, took: Duration) {
        let key = (method, status.as_u16());
        if let Some(series) = self
            .series
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(&key)
            .and_then(|routes| routes.get(route))
        {
            series.record(took);
            return;
        }
        let labels = [
            ("service", self.service.to_owned()),
            ("method", method.to_owned()),
            ("route", route.to_owned()),
            ("status", status.as_u16().to_string()),
        ];
        let series = Series {
            requests: ::metrics::counter!("http_requests_total", &labels),
            errors: status
                .is_server_error()
                .then(|| ::metrics::counter!("http_request_errors_total", &labels)),
            duration: ::metrics::histogram!("http_request_duration_seconds", &labels),
        };
        series.record(took);
        self.series
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .entry(key)
            .or_default()
            .insert(route.to_owned(), series);
    }
}

#[cfg(test)]
mod tests {
    use super::SharedState;

    #[test]
    fn a_copy_of_the_shared_state_is_the_same_parts() {
        let state = SharedState::new(vec![1, 2, 3]);
        let copy = state.clone();
        assert!(std::ptr::eq(&*state, &*copy), "no part was copied");
        assert_eq!(*copy, [1, 2, 3]);
    }
}
