//! The api's HTTP routes under `/api` (CONTRACT.md, "api").

pub mod auth;
pub mod events;
pub mod orders;

use axum::Router;
use axum::routing::{any, get, patch, post};

use crate::app::AppState;

/// The public routes (without the common layers).
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/api/.well-known/jwks.json", get(auth::jwks))
        .route("/api/v1/auth/register", post(auth::register))
        .route("/api/v1/auth/login", post(auth::login))
        .route("/api/v1/auth/refresh", post(auth::refresh))
        .route("/api/v1/events", get(events::list))
        .route("/api/v1/events/{id}", get(events::get))
        .route("/api/v1/admin/events", post(events::create))
        .route("/api/v1/admin/events/{id}", patch(events::update))
        .route("/api/v1/admin/events/{id}/stats", get(events::stats))
        .route("/api/v1/events/{id}/orders", post(orders::create))
        .route("/api/v1/orders/{id}", get(orders::get))
        .route("/api/v1/me/orders", get(orders::mine))
        .route("/api/{*rest}", any(flash_kit::http::not_found))
        .with_state(state)
}
