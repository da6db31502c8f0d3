//! Register, log in, refresh (rotation and reuse detection), JWKS and access-token errors.

use flash_protocol::auth::TokenResponse;
use flash_protocol::claims::{ACCESS_AUDIENCE, ACCESS_ISSUER, AccessClaims, Role};
use flash_tokens::{Jwks, Verifier};
use serde_json::json;

use crate::helpers::{Stores, TestApi};

#[tokio::test]
async fn register_login_and_the_tokens_verify_with_the_published_keys() {
    let api = TestApi::spawn().await;
    let reply = api
        .post_json(
            "/api/v1/auth/register",
            None,
            json!({"email": "Ada@Example.com", "password": "analytical engine"}),
        )
        .await
        .ok(201);
    let user_id = reply["user_id"].as_str().expect("user id").to_owned();

    // E-mail is unique regardless of case.
    let taken = api
        .post_json(
            "/api/v1/auth/register",
            None,
            json!({"email": "ada@example.COM", "password": "another one!"}),
        )
        .await;
    assert_eq!(taken.code(409), "EMAIL_TAKEN");

    let tokens: TokenResponse = serde_json::from_value(
        api.login("ada@example.com", "analytical engine")
            .await
            .ok(200),
    )
    .expect("tokens");
    assert_eq!(
        (tokens.token_type.as_str(), tokens.expires_in),
        ("Bearer", 900)
    );
    let jwks: Jwks = serde_json::from_value(
        api.get_json("/api/.well-known/jwks.json", None)
            .await
            .ok(200),
    )
    .expect("jwks");
    let claims: AccessClaims = Verifier::new(&jwks, ACCESS_ISSUER, ACCESS_AUDIENCE)
        .expect("verifier")
        .verify(&tokens.access_token)
        .expect("valid access token");
    assert_eq!((claims.sub.to_string(), claims.role), (user_id, Role::User));
    assert_eq!(claims.exp - claims.iat, 900);

    for (email, password) in [
        ("ada@example.com", "wrong password"),
        ("nobody@example.com", "analytical engine"),
    ] {
        assert_eq!(
            api.login(email, password).await.code(401),
            "INVALID_CREDENTIALS"
        );
    }
    api.stop().await;
}

#[tokio::test]
async fn registration_is_validated_and_changes_nothing_when_refused() {
    let api = TestApi::spawn().await;
    for (body, fields) in [
        (
            json!({"email": "not-an-email", "password": "long enough"}),
            vec!["email"],
        ),
        (
            json!({"email": "a@b.co", "password": "short"}),
            vec!["password"],
        ),
        (
            json!({"email": "", "password": ""}),
            vec!["email", "password"],
        ),
    ] {
        let reply = api
            .post_json("/api/v1/auth/register", None, body.clone())
            .await;
        assert_eq!(reply.code(422), "VALIDATION", "{body}");
        let named: Vec<&str> = reply.body["errors"]
            .as_array()
            .expect("errors")
            .iter()
            .map(|e| e["field"].as_str().expect("field"))
            .collect();
        for field in fields {
            assert!(named.contains(&field), "{field} not named in {named:?}");
        }
    }
    let reply = api
        .post_json("/api/v1/auth/register", None, json!({"email": "a@b.co"}))
        .await;
    assert_eq!(reply.code(422), "VALIDATION");
    let users: i64 = sqlx::query_scalar("SELECT count(*) FROM users WHERE role = 'user'")
        .fetch_one(&api.pool)
        .await
        .expect("count");
    assert_eq!(users, 0);
    api.stop().await;
}

#[tokio::test]
async fn refresh_tokens_rotate_and_a_reused_one_revokes_the_family() {
    let api = TestApi::spawn().await;
    let user = api.user().await;
    let refresh = |token: &str| {
        api.post_json(
            "/api/v1/auth/refresh",
            None,
            json!({"refresh_token": token}),
        )
    };
    let first: TokenResponse =
        serde_json::from_value(refresh(&user.refresh).await.ok(200)).expect("tokens");
    assert_ne!(first.refresh_token, user.refresh, "rotated");
    // The same token again within the grace (a retry of a lost answer): the same pair.
    let again: TokenResponse =
        serde_json::from_value(refresh(&user.refresh).await.ok(200)).expect("tokens");
    assert_eq!(again, first, "a retry gets the pair it lost");
    // The new one is used; the old one presented now is a replay: everything in the family
    // is revoked, the newest too.
    let second: TokenResponse =
        serde_json::from_value(refresh(&first.refresh_token).await.ok(200)).expect("tokens");
    assert_eq!(
        refresh(&user.refresh).await.code(401),
        "INVALID_CREDENTIALS"
    );
    assert_eq!(
        refresh(&second.refresh_token).await.code(401),
        "INVALID_CREDENTIALS"
    );
    for garbage in ["", "nope", &"x".repeat(1000)] {
        assert_eq!(refresh(garbage).await.code(401), "INVALID_CREDENTIALS");
    }
    api.stop().await;
}

#[tokio::test]
async fn a_refresh_token_used_after_its_grace_revokes_the_family() {
    let stores = Stores::new().await;
    let mut config = stores.config();
    config.keys.refresh_reuse_grace_secs = 1;
    let api = TestApi::spawn_with(config, stores).await;
    let user = api.user().await;
    let refresh = |token: &str| {
        api.post_json(
            "/api/v1/auth/refresh",
            None,
            json!({"refresh_token": token}),
        )
    };
    let first: TokenResponse =
        serde_json::from_value(refresh(&user.refresh).await.ok(200)).expect("tokens");
    tokio::time::sleep(std::time::Duration::from_millis(2_100)).await;
    assert_eq!(
        refresh(&user.refresh).await.code(401),
        "INVALID_CREDENTIALS"
    );
    assert_eq!(
        refresh(&first.refresh_token).await.code(401),
        "INVALID_CREDENTIALS",
        "the family is revoked"
    );
    api.stop().await;
}

#[tokio::test]
async fn protected_calls_need_a_valid_token_and_admin_calls_the_admin_role() {
    let api = TestApi::spawn().await;
    let user = api.user().await;
    assert_eq!(
        api.get_json("/api/v1/me/orders", None).await.code(401),
        "UNAUTHENTICATED"
    );
    assert_eq!(
        api.get_json("/api/v1/me/orders", Some("garbage"))
            .await
            .code(401),
        "UNAUTHENTICATED"
    );
    assert_eq!(
        api.get_json("/api/v1/me/orders", Some(&user.access))
            .await
            .ok(200),
        json!([])
    );
    let create = api
        .post_json(
            "/api/v1/admin/events",
            Some(&user.access),
            crate::helpers::new_event(10, 2),
        )
        .await;
    assert_eq!(create.code(403), "FORBIDDEN");
    let admin = api.admin_token().await;
    api.post_json(
        "/api/v1/admin/events",
        Some(&admin),
        crate::helpers::new_event(10, 2),
    )
    .await
    .ok(201);
    api.stop().await;
}
