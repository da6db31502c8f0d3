//! The gateway's OpenAPI document (served as generated, committed as `docs/openapi/queue.json`)
//! and the AsyncAPI document of the WebSocket frames and AMQP messages (`docs/asyncapi.json`).

use std::path::PathBuf;

use flash_kit::testing::{assert_golden, pretty_json};
use serde_json::Value;

use crate::helpers::TestGateway;

fn docs() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../docs")
}

fn openapi() -> String {
    pretty_json(&flash_gateway::routes::openapi())
}

fn asyncapi() -> String {
    pretty_json(&flash_protocol::asyncapi::document())
}

#[test]
fn the_committed_documents_are_what_the_code_generates() {
    assert_golden(&docs().join("openapi/queue.json"), &openapi());
    assert_golden(&docs().join("asyncapi.json"), &asyncapi());
}

#[test]
fn the_openapi_document_lists_every_route_with_its_problems() {
    let doc: Value = serde_json::from_str(&openapi()).expect("json");
    assert_eq!(doc["openapi"], "3.1.0");
    let paths = &doc["paths"];
    let join = &paths["/queue/v1/events/{id}/join"]["post"];
    assert_eq!(join["security"][0]["bearer"], serde_json::json!([]));
    for status in ["200", "401", "404", "409", "429", "503"] {
        assert!(
            join["responses"][status].is_object(),
            "join answers {status}"
        );
    }
    assert!(paths["/queue/v1/events/{id}/ws"]["get"]["responses"]["101"].is_object());
    assert!(paths["/queue/v1/admin/events/{id}"]["get"].is_object());
    assert!(paths["/queue/v1/admin/events/{id}"]["patch"].is_object());
    let paused = &doc["components"]["schemas"]["QueuePatch"]["properties"]["admit_per_sec"];
    assert_eq!(paused["minimum"], 1);
}

#[test]
fn the_asyncapi_document_has_every_frame_message_and_close_code() {
    let doc: Value = serde_json::from_str(&asyncapi()).expect("json");
    assert_eq!(doc["asyncapi"], "3.1.0");
    let socket = &doc["channels"]["queueSocket"];
    let frames: Vec<&String> = socket["messages"]
        .as_object()
        .expect("messages")
        .keys()
        .collect();
    for frame in ["auth", "ping", "position", "admitted", "closed", "pong"] {
        assert!(
            frames.iter().any(|f| *f == frame),
            "frame {frame} in {frames:?}"
        );
    }
    let described = socket["description"].as_str().expect("description");
    for (code, _) in flash_protocol::asyncapi::CLOSE_CODES {
        assert!(
            described.contains(&format!("`{code}`")),
            "close code {code}"
        );
    }
    for routing_key in [
        "payment.requested",
        "payment.completed",
        "event.created",
        "event.updated",
        "event.sold_out",
        "gate.consumed",
    ] {
        assert!(
            doc["channels"]
                .as_object()
                .expect("channels")
                .values()
                .any(|c| c["address"] == routing_key),
            "a channel for {routing_key}"
        );
    }
    let admitted = &doc["components"]["messages"]["ws.admitted"]["payload"];
    assert_eq!(admitted["properties"]["type"]["enum"][0], "admitted");
    assert!(admitted["properties"]["gate_token"].is_object());
}

#[tokio::test]
async fn the_gateway_serves_its_document() {
    let app = TestGateway::spawn().await;
    let response = app.get(flash_gateway::routes::OPENAPI_PATH).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "application/json");
    let served: Value = response.json().await.expect("json");
    let generated: Value = serde_json::from_str(&openapi()).expect("json");
    assert_eq!(served, generated);
    app.running.stop().await;
}
