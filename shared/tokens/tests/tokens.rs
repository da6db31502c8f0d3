//! Signing and verification of access and gate tokens, key rotation and remote key sets.

use std::sync::{Arc, Mutex};

use axum::Router;
use axum::routing::get;
use base64::Engine as _;
use flash_protocol::claims::{
    ACCESS_AUDIENCE, ACCESS_ISSUER, AccessClaims, GATE_AUDIENCE, GATE_ISSUER, GateClaims, Role,
};
use flash_protocol::{EventId, UserId};
use flash_tokens::{Jwks, KeyRing, SigningKey, Verifier, VerifyError};

fn now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

fn access(exp_in: i64) -> AccessClaims {
    AccessClaims {
        sub: UserId::new_v7(),
        role: Role::User,
        iss: ACCESS_ISSUER.into(),
        aud: ACCESS_AUDIENCE.into(),
        iat: now(),
        exp: now() + exp_in,
    }
}

fn access_verifier(jwks: &Jwks) -> Verifier {
    Verifier::new(jwks, ACCESS_ISSUER, ACCESS_AUDIENCE).expect("verifier")
}

#[test]
fn access_tokens_round_trip_with_kid_header() {
    let key = SigningKey::generate().expect("key");
    let claims = access(900);
    let token = key.sign(&claims).expect("sign");
    assert_eq!(Verifier::kid_of(&token).as_deref(), Some(key.kid()));
    let verified: AccessClaims = access_verifier(&key.jwks()).verify(&token).expect("valid");
    assert_eq!(verified, claims);
}

#[test]
fn gate_tokens_round_trip() {
    let key = SigningKey::generate().expect("key");
    let claims = GateClaims {
        sub: UserId::new_v7(),
        evt: EventId::new_v7(),
        jti: uuid::Uuid::new_v4(),
        iss: GATE_ISSUER.into(),
        aud: GATE_AUDIENCE.into(),
        iat: now(),
        exp: now() + 300,
    };
    let token = key.sign(&claims).expect("sign");
    let verifier = Verifier::new(&key.jwks(), GATE_ISSUER, GATE_AUDIENCE).expect("verifier");
    assert_eq!(
        verifier.verify::<GateClaims>(&token).expect("valid"),
        claims
    );
    // An access-token verifier refuses a gate token (issuer and audience differ).
    assert!(matches!(
        access_verifier(&key.jwks()).verify::<AccessClaims>(&token),
        Err(VerifyError::Invalid(_))
    ));
}

#[test]
fn expired_forged_and_foreign_tokens_are_refused() {
    let key = SigningKey::generate().expect("key");
    let verifier = access_verifier(&key.jwks());
    let expired = key.sign(&access(-60)).expect("sign");
    assert_eq!(
        verifier.verify::<AccessClaims>(&expired),
        Err(VerifyError::Expired)
    );

    let other = SigningKey::generate().expect("key");
    let foreign = other.sign(&access(900)).expect("sign");
    assert_eq!(
        verifier.verify::<AccessClaims>(&foreign),
        Err(VerifyError::UnknownKey)
    );

    // Same kid, payload swapped for another user's: the signature no longer matches.
    let token = key.sign(&access(900)).expect("sign");
    let forged_payload = key.sign(&access(900)).expect("sign");
    let mut parts: Vec<&str> = token.split('.').collect();
    parts[1] = forged_payload.split('.').nth(1).expect("payload");
    let forged = parts.join(".");
    assert!(matches!(
        verifier.verify::<AccessClaims>(&forged),
        Err(VerifyError::Invalid(_))
    ));

    let mut wrong_issuer = access(900);
    wrong_issuer.iss = "someone-else".into();
    let token = key.sign(&wrong_issuer).expect("sign");
    assert!(matches!(
        verifier.verify::<AccessClaims>(&token),
        Err(VerifyError::Invalid(_))
    ));

    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let claims = serde_json::to_vec(&access(900)).expect("json");
    let unsigned = format!(
        "{}.{}.",
        b64.encode(br#"{"alg":"none","typ":"JWT"}"#),
        b64.encode(claims)
    );
    assert!(verifier.verify::<AccessClaims>(&unsigned).is_err());
    for garbage in ["", "a.b.c", "not a token", "....", "\u{0}"] {
        assert!(
            verifier.verify::<AccessClaims>(garbage).is_err(),
            "{garbage:?}"
        );
    }
}

#[test]
fn several_kids_are_accepted_so_keys_can_rotate() {
    let old = SigningKey::generate().expect("key");
    let new = SigningKey::generate().expect("key");
    assert_ne!(old.kid(), new.kid());
    let verifier = access_verifier(&old.jwks().merged(&new.jwks()));
    for key in [&old, &new] {
        let token = key.sign(&access(900)).expect("sign");
        assert!(verifier.verify::<AccessClaims>(&token).is_ok());
    }
}

#[test]
fn keys_load_from_pem_and_dev_keys_are_stable() {
    let pkcs8 =
        aws_lc_rs::signature::Ed25519KeyPair::generate_pkcs8(&aws_lc_rs::rand::SystemRandom::new())
            .expect("pkcs8");
    let body = base64::engine::general_purpose::STANDARD.encode(pkcs8.as_ref());
    let pem = format!("-----BEGIN PRIVATE KEY-----\n{body}\n-----END PRIVATE KEY-----\n");
    let loaded = SigningKey::from_pem(&pem).expect("pem");
    let again = SigningKey::from_pem(&pem).expect("pem");
    assert_eq!(loaded.kid(), again.kid());
    assert!(
        SigningKey::from_pem("-----BEGIN PUBLIC KEY-----\nAA==\n-----END PUBLIC KEY-----").is_err()
    );
    assert!(SigningKey::from_pem("garbage").is_err());

    let dev_a = SigningKey::dev("api").expect("dev");
    let dev_b = SigningKey::dev("api").expect("dev");
    assert_eq!(dev_a.jwk(), dev_b.jwk());
    assert_ne!(dev_a.kid(), SigningKey::dev("gateway").expect("dev").kid());
    let token = dev_a.sign(&access(60)).expect("sign");
    assert!(
        access_verifier(&dev_b.jwks())
            .verify::<AccessClaims>(&token)
            .is_ok()
    );
}

#[test]
fn jwks_documents_have_the_rfc_shape() {
    let key = SigningKey::dev("shape").expect("dev");
    let json = serde_json::to_value(key.jwks()).expect("json");
    let jwk = &json["keys"][0];
    assert_eq!(jwk["kty"], "OKP");
    assert_eq!(jwk["crv"], "Ed25519");
    assert_eq!(jwk["alg"], "EdDSA");
    assert_eq!(jwk["use"], "sig");
    assert_eq!(jwk["kid"], key.kid());
    assert_eq!(
        jwk["x"].as_str().expect("x").len(),
        43,
        "32 bytes, base64url unpadded"
    );
    let parsed = Jwks::from_json(&json.to_string()).expect("parses");
    assert_eq!(parsed, key.jwks());
    assert!(Jwks::from_json("{\"keys\": 3}").is_err());
}

#[tokio::test]
async fn a_remote_key_set_is_fetched_and_refreshed_on_an_unknown_kid() {
    let first = SigningKey::generate().expect("key");
    let second = SigningKey::generate().expect("key");
    let served = Arc::new(Mutex::new(first.jwks()));
    let jwks = Arc::clone(&served);
    let app = Router::new().route(
        "/jwks.json",
        get(move || {
            let body = serde_json::to_string(&*jwks.lock().expect("lock")).expect("json");
            async move { body }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}/jwks.json", listener.local_addr().expect("addr"));
    tokio::spawn(async move { axum::serve(listener, app).await });

    let ring =
        KeyRing::remote(&url, Jwks::default(), ACCESS_ISSUER, ACCESS_AUDIENCE).expect("ring");
    // Before any fetch, an unknown kid triggers one.
    let token = first.sign(&access(60)).expect("sign");
    ring.verify::<AccessClaims>(&token)
        .await
        .expect("fetched and valid");

    // The issuer rotates; a token with the new kid is refused until the next refresh is
    // allowed, then accepted.
    *served.lock().expect("lock") = first.jwks().merged(&second.jwks());
    let rotated = second.sign(&access(60)).expect("sign");
    assert_eq!(
        ring.verify::<AccessClaims>(&rotated).await,
        Err(VerifyError::UnknownKey)
    );
    ring.refresh().await.expect("refresh");
    assert!(ring.verify::<AccessClaims>(&rotated).await.is_ok());
    assert!(
        ring.verify::<AccessClaims>(&token).await.is_ok(),
        "old key still accepted"
    );

    let unreachable = KeyRing::remote(
        "http://127.0.0.1:1/jwks.json",
        Jwks::default(),
        ACCESS_ISSUER,
        ACCESS_AUDIENCE,
    )
    .expect("ring");
    assert!(unreachable.refresh().await.is_err());
    assert_eq!(
        unreachable.verify::<AccessClaims>(&token).await,
        Err(VerifyError::UnknownKey)
    );
}

#[tokio::test]
async fn an_issuer_that_was_not_up_yet_is_asked_again_within_a_second() {
    let key = SigningKey::generate().expect("key");
    // The issuer's address is known before it listens (a service starting before its issuer).
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    drop(listener);
    let ring = KeyRing::remote(
        &format!("http://{addr}/jwks.json"),
        Jwks::default(),
        ACCESS_ISSUER,
        ACCESS_AUDIENCE,
    )
    .expect("ring");
    let token = key.sign(&access(60)).expect("sign");
    assert!(ring.refresh().await.is_err(), "not up yet");
    let body = serde_json::to_string(&key.jwks()).expect("json");
    let app = Router::new().route("/jwks.json", get(move || async move { body }));
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .expect("bind again");
    tokio::spawn(async move { axum::serve(listener, app).await });
    // Not before a second has passed since the failed fetch…
    assert_eq!(
        ring.verify::<AccessClaims>(&token).await,
        Err(VerifyError::UnknownKey)
    );
    // …then an unknown kid fetches again (not after the ten seconds of a fetch that worked).
    tokio::time::sleep(flash_tokens::ring::RETRY_INTERVAL).await;
    assert!(ring.verify::<AccessClaims>(&token).await.is_ok());
}

#[test]
fn ignoring_expiry_accepts_a_used_token_and_still_refuses_foreign_ones() {
    let key = SigningKey::generate().expect("key");
    let expired = key.sign(&access(-3600)).expect("sign");
    let lenient = access_verifier(&key.jwks()).ignoring_expiry();
    assert_eq!(
        lenient
            .verify::<AccessClaims>(&expired)
            .map(|c| c.exp < now()),
        Ok(true),
        "genuine though expired"
    );
    let other = SigningKey::generate().expect("key");
    assert_eq!(
        lenient.verify::<AccessClaims>(&other.sign(&access(-3600)).expect("sign")),
        Err(VerifyError::UnknownKey)
    );
}

#[test]
fn a_derived_secret_is_the_same_for_the_same_key_and_purpose_only() {
    let pem = SigningKey::generate_pem().expect("pem");
    let (one, again) = (
        SigningKey::from_pem(&pem).expect("key"),
        SigningKey::from_pem(&pem).expect("key"),
    );
    let other = SigningKey::generate().expect("key");
    let secret = one.derive_secret("join challenges").expect("secret");
    assert_eq!(
        secret,
        again.derive_secret("join challenges").expect("secret")
    );
    assert_ne!(secret, one.derive_secret("something else").expect("secret"));
    assert_ne!(
        secret,
        other.derive_secret("join challenges").expect("secret")
    );
}

/// The signatures of tokens verified at once are checked in batches, and each token still gets
/// its own verdict: the forged ones among many valid ones are refused, the rest accepted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_verifications_share_batches_and_each_gets_its_own_verdict() {
    let key = SigningKey::generate().expect("key");
    let ring = Arc::new(KeyRing::fixed(&key.jwks(), ACCESS_ISSUER, ACCESS_AUDIENCE).expect("ring"));
    let mut tokens = Vec::new();
    for i in 0..300 {
        let claims = access(900);
        let token = key.sign(&claims).expect("sign");
        // Every seventh: the payload of another token under this one's signature.
        let token = if i % 7 == 3 {
            let other = key.sign(&access(900)).expect("sign");
            let mut parts: Vec<&str> = token.split('.').collect();
            parts[1] = other.split('.').nth(1).expect("payload");
            (parts.join("."), None)
        } else {
            (token, Some(claims))
        };
        tokens.push(token);
    }
    let mut tasks = tokio::task::JoinSet::new();
    for (token, claims) in tokens {
        let ring = Arc::clone(&ring);
        tasks.spawn(async move { (ring.verify::<AccessClaims>(&token).await, claims) });
    }
    let (mut accepted, mut refused) = (0, 0);
    while let Some(outcome) = tasks.join_next().await {
        match outcome.expect("task") {
            (Ok(verified), Some(claims)) => {
                assert_eq!(verified, claims);
                accepted += 1;
            }
            (Err(VerifyError::Invalid(reason)), None) => {
                assert_eq!(reason, "InvalidSignature");
                refused += 1;
            }
            other => panic!("wrong verdict: {other:?}"),
        }
    }
    assert_eq!((accepted, refused), (257, 43));
    let done = ring.signature_batches();
    assert_eq!(done.signatures, 300, "{done:?}");
    assert!(done.batches < 150, "hardly batched: {done:?}");
}

/// A batch with bad signatures in it is judged one signature at a time: exactly the bad ones
/// fail, wherever they are in the batch.
#[test]
fn a_batch_with_bad_signatures_refuses_exactly_those() {
    use rand08::SeedableRng as _;
    let key = SigningKey::generate().expect("key");
    let other = SigningKey::generate().expect("key");
    let verifier = access_verifier(&key.jwks());
    let mut rng = rand08::rngs::StdRng::seed_from_u64(7);
    for bad in [vec![], vec![0], vec![5], vec![1, 2, 9]] {
        let mut checks = Vec::new();
        for i in 0..10 {
            let signer = if bad.contains(&i) { &other } else { &key };
            // The other key's token under our kid: parses, but its signature is not ours.
            let token = signer.sign(&access(900)).expect("sign");
            let ours = key.sign(&access(900)).expect("sign");
            let header = ours.split('.').next().expect("header");
            let (_, rest) = token.split_once('.').expect("segments");
            let unverified = verifier
                .unverified::<AccessClaims>(&format!("{header}.{rest}"))
                .expect("parses");
            checks.push(unverified.signature().clone());
        }
        let refs: Vec<_> = checks.iter().collect();
        let verdicts = flash_tokens::batch::each_holds(&refs, &mut rng);
        let expected: Vec<bool> = (0..10).map(|i| !bad.contains(&i)).collect();
        assert_eq!(verdicts, expected, "bad at {bad:?}");
    }
}
