//! The api's OpenAPI document: served as generated, committed as `docs/openapi/api.json`.

use std::path::PathBuf;

use flash_kit::testing::{assert_golden, pretty_json};

use crate::helpers::TestApi;

fn committed() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../docs/openapi/api.json")
}

fn generated() -> String {
    pretty_json(&flash_api::routes::openapi())
}

#[test]
fn the_committed_openapi_document_is_what_the_code_generates() {
    assert_golden(&committed(), &generated());
}

#[test]
fn the_document_lists_every_route_with_its_problems_and_bounds() {
    let doc: serde_json::Value = serde_json::from_str(&generated()).expect("json");
    assert_eq!(doc["openapi"], "3.1.0");
    let paths = doc["paths"].as_object().expect("paths");
    for (path, method) in [
        ("/api/v1/auth/login", "post"),
        ("/api/v1/events/{id}/orders", "post"),
        ("/api/v1/admin/events/{id}", "patch"),
        ("/api/v1/me/orders", "get"),
        ("/api/.well-known/jwks.json", "get"),
    ] {
        assert!(paths[path][method].is_object(), "{method} {path}");
    }
    let order = &paths["/api/v1/events/{id}/orders"]["post"];
    for status in ["200", "201", "401", "403", "409", "422", "429", "503"] {
        assert!(
            order["responses"][status].is_object(),
            "order answers {status}"
        );
    }
    assert!(
        order["responses"]["409"]["description"]
            .as_str()
            .is_some_and(|d| d.contains("SOLD_OUT")),
        "the 409 names its codes"
    );
    assert_eq!(
        order["responses"]["409"]["content"]["application/problem+json"]["schema"]["$ref"],
        "#/components/schemas/Problem"
    );
    let ttl = &doc["components"]["schemas"]["QueueSettings"]["properties"]["admission_ttl_s"];
    assert_eq!(ttl["minimum"], 10);
    assert_eq!(ttl["maximum"], 3600);
    assert_eq!(
        doc["components"]["securitySchemes"]["bearer"]["scheme"],
        "bearer"
    );
}

#[tokio::test]
async fn the_api_serves_its_document() {
    let app = TestApi::spawn().await;
    let response = app.get(flash_api::routes::OPENAPI_PATH).await;
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["content-type"],
        "application/json",
        "served as JSON"
    );
    let served: serde_json::Value = response.json().await.expect("json");
    let generated: serde_json::Value = serde_json::from_str(&generated()).expect("json");
    assert_eq!(served, generated);
    app.stop().await;
}
