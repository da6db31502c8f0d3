//! The api's HTTP routes under `/api` (docs/contract.md), and the OpenAPI document made from
//! them: each route is registered with its handler's `#[utoipa::path]`, so the document lists
//! exactly the routes that are served.

pub mod audit;
pub mod auth;
pub mod events;
pub mod orders;

use axum::Router;
use axum::routing::{any, get};
use utoipa::OpenApi as _;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::app::AppState;

/// Where the api serves its OpenAPI document.
pub const OPENAPI_PATH: &str = "/api/openapi.json";

#[derive(utoipa::OpenApi)]
#[openapi(
    info(
        title = "Flash Tickets api",
        description = "Accounts, events and orders: each ticket is sold once. Errors are \
                       `application/problem+json` with a stable `code`; the waiting room and \
                       its gate tokens are the gateway's (`/queue/openapi.json`).",
        license(name = "Apache-2.0", identifier = "Apache-2.0"),
    ),
    tags(
        (name = "auth", description = "Accounts and tokens"),
        (name = "events", description = "What is on sale"),
        (name = "orders", description = "Buying with a gate token, and one's orders"),
        (name = "admin", description = "Events as admins create, change and watch them"),
    )
)]
struct ApiDoc;

fn documented() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(auth::jwks))
        .routes(routes!(auth::register))
        .routes(routes!(auth::login))
        .routes(routes!(auth::refresh))
        .routes(routes!(events::list))
        .routes(routes!(events::get))
        .routes(routes!(events::create))
        .routes(routes!(events::update))
        .routes(routes!(events::stats))
        .routes(routes!(audit::list))
        .routes(routes!(orders::create))
        .routes(routes!(orders::get))
        .routes(routes!(orders::mine))
}

/// The served routes and the document describing them.
fn parts() -> (Router<AppState>, utoipa::openapi::OpenApi) {
    flash_kit::http::split_documented(documented())
}

/// The api's OpenAPI 3.1 document.
#[must_use]
pub fn openapi() -> utoipa::openapi::OpenApi {
    parts().1
}

/// The public routes (without the common layers), with the document at [`OPENAPI_PATH`].
pub fn router(state: AppState) -> Router {
    let (routes, doc) = parts();
    routes
        .route(OPENAPI_PATH, get(flash_kit::http::json_document(&doc)))
        .route("/api/{*rest}", any(flash_kit::http::not_found))
        .with_state(state)
}
