//! What every suite test needs: its own stores, a suite on free ports, JSON calls.

pub use flash_suite::testing::{ADMIN_EMAIL, ADMIN_PASSWORD, Stores};

/// A JSON call to the origin; the status and the body.
pub async fn call(
    client: &reqwest::Client,
    request: reqwest::RequestBuilder,
) -> (u16, serde_json::Value) {
    let response = client
        .execute(request.build().expect("request"))
        .await
        .expect("response");
    let status = response.status().as_u16();
    let body = response.json().await.unwrap_or(serde_json::Value::Null);
    (status, body)
}

pub async fn login(client: &reqwest::Client, base: &str, email: &str, password: &str) -> String {
    let (status, body) = call(
        client,
        client
            .post(format!("{base}/api/v1/auth/login"))
            .json(&serde_json::json!({"email": email, "password": password})),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    body["access_token"].as_str().expect("token").to_owned()
}

/// Polls `check` every 250 ms (within the gateway's per-user rate) for up to 20 s until it
/// returns something.
pub async fn eventually<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    for _ in 0..80 {
        if let Some(found) = check().await {
            return found;
        }
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    }
    panic!("{what}: not within 20 s");
}
