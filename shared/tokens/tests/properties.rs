//! Property tests of token verification: arbitrary strings and every kind of tampering with a
//! valid token (a character changed, segments swapped or dropped, another `alg`, a forged
//! signature, claims edited, expired, another issuer or audience, another key) are refused
//! with the right error and never accepted; a valid token is accepted with its claims. Remote
//! key sets (JWKS documents a peer serves) are refused with a typed error when malformed.
//! A fixed number of cases per property keeps `make test` bounded.

use std::sync::LazyLock;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use flash_protocol::claims::{
    ACCESS_AUDIENCE, ACCESS_ISSUER, AccessClaims, GATE_AUDIENCE, GATE_ISSUER, GateClaims, Role,
};
use flash_protocol::{EventId, UserId};
use flash_tokens::verify::LEEWAY_SECS;
use flash_tokens::{Jwk, Jwks, KeyError, KeyRing, SigningKey, Verifier, VerifyError};
use proptest::prelude::*;
use proptest::test_runner::TestCaseError;
use uuid::Uuid;

/// Cases per property .
const CASES: u32 = 512;

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: CASES,
        ..ProptestConfig::default()
    }
}

/// The api's access-token key and the gateway's gate-token key.
static ACCESS_KEY: LazyLock<SigningKey> =
    LazyLock::new(|| SigningKey::generate().expect("access key"));
static GATE_KEY: LazyLock<SigningKey> = LazyLock::new(|| SigningKey::generate().expect("gate key"));
/// A key nobody trusts.
static OTHER_PKCS8: LazyLock<Vec<u8>> = LazyLock::new(|| {
    use aws_lc_rs::rand::SystemRandom;
    use aws_lc_rs::signature::Ed25519KeyPair;
    Ed25519KeyPair::generate_pkcs8(&SystemRandom::new())
        .expect("other key")
        .as_ref()
        .to_vec()
});
static OTHER_KEY: LazyLock<SigningKey> =
    LazyLock::new(|| SigningKey::from_pkcs8_der(&OTHER_PKCS8).expect("other key"));

static ACCESS: LazyLock<Verifier> = LazyLock::new(|| {
    Verifier::new(&ACCESS_KEY.jwks(), ACCESS_ISSUER, ACCESS_AUDIENCE).expect("access verifier")
});
static GATE: LazyLock<Verifier> = LazyLock::new(|| {
    Verifier::new(&GATE_KEY.jwks(), GATE_ISSUER, GATE_AUDIENCE).expect("gate verifier")
});

static RUNTIME: LazyLock<tokio::runtime::Runtime> = LazyLock::new(|| {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime")
});

fn now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

fn fail(message: impl std::fmt::Display) -> TestCaseError {
    TestCaseError::fail(message.to_string())
}

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

fn segments(token: &str) -> Result<[String; 3], TestCaseError> {
    let parts: Vec<&str> = token.split('.').collect();
    match parts.as_slice() {
        [h, p, s] => Ok([(*h).to_owned(), (*p).to_owned(), (*s).to_owned()]),
        _ => Err(fail(format!("not a compact JWT: {token}"))),
    }
}

/// Refused as `Invalid` with this reason (`InvalidSignature`, `InvalidAudience`, …).
fn refused_as<T: std::fmt::Debug>(
    outcome: Result<T, VerifyError>,
    kind: &str,
) -> Result<(), TestCaseError> {
    let reason = invalid_kind(outcome)?;
    prop_assert_eq!(reason.as_str(), kind);
    Ok(())
}

/// The `Invalid` reason's kind (`InvalidSignature`, `InvalidAudience`, …).
fn invalid_kind<T: std::fmt::Debug>(
    outcome: Result<T, VerifyError>,
) -> Result<String, TestCaseError> {
    match outcome {
        Err(VerifyError::Invalid(reason)) => Ok(reason),
        other => Err(fail(format!("expected Invalid, got {other:?}"))),
    }
}

// ---------------------------------------------------------------------------------------------
// Strategies

fn uuid() -> impl Strategy<Value = Uuid> {
    any::<u128>().prop_map(Uuid::from_u128)
}

fn role() -> impl Strategy<Value = Role> {
    prop_oneof![Just(Role::User), Just(Role::Admin)]
}

/// Access claims valid for at least another minute.
fn access_claims() -> impl Strategy<Value = AccessClaims> {
    (uuid(), role(), 0_i64..86_400, 60_i64..10_000_000).prop_map(|(sub, role, age, left)| {
        let now = now();
        AccessClaims {
            sub: UserId(sub),
            role,
            iss: ACCESS_ISSUER.to_owned(),
            aud: ACCESS_AUDIENCE.to_owned(),
            iat: now - age,
            exp: now + left,
        }
    })
}

/// Gate claims valid for at least another minute.
fn gate_claims() -> impl Strategy<Value = GateClaims> {
    (uuid(), uuid(), uuid(), 60_i64..3_600).prop_map(|(sub, evt, jti, left)| {
        let now = now();
        GateClaims {
            sub: UserId(sub),
            evt: EventId(evt),
            jti,
            iss: GATE_ISSUER.to_owned(),
            aud: GATE_AUDIENCE.to_owned(),
            iat: now,
            exp: now + left,
        }
    })
}

/// Strings a peer might send as a token: anything, or three base64url segments of JSON or
/// bytes.
fn garbage_token() -> impl Strategy<Value = String> {
    let segment = prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..96).prop_map(|b| b64(&b)),
        "[A-Za-z0-9_-]{0,120}",
        r#"\{"alg":"(EdDSA|HS256|none|RS256)"(,"kid":"[A-Za-z0-9_-]{0,43}")?(,"typ":"JWT")?\}"#
            .prop_map(|json| b64(json.as_bytes())),
        r#"\{"sub":"[0-9a-f-]{0,36}","role":"(user|admin)","iss":"flash-api","aud":"flash","iat":[0-9]{1,10},"exp":-?[0-9]{1,12}\}"#
            .prop_map(|json| b64(json.as_bytes())),
    ];
    prop_oneof![
        any::<String>(),
        "[A-Za-z0-9_.=+/-]{0,300}",
        (segment.clone(), segment.clone(), segment).prop_map(|(h, p, s)| format!("{h}.{p}.{s}")),
    ]
}

/// Algorithm names other than `EdDSA`: the other families jsonwebtoken knows, and names it
/// does not.
fn other_alg() -> impl Strategy<Value = String> {
    prop_oneof![
        proptest::sample::select(
            &[
                "HS256", "HS384", "HS512", "RS256", "RS384", "RS512", "PS256", "PS384", "PS512",
                "ES256", "ES384",
            ][..]
        )
        .prop_map(str::to_owned),
        proptest::sample::select(&["none", "None", "eddsa", "EdDSA ", "ED25519", ""][..])
            .prop_map(str::to_owned),
        "[A-Za-z0-9]{1,10}".prop_filter("not EdDSA", |a| a != "EdDSA"),
    ]
}

/// Names jsonwebtoken knows, whose refusal is `InvalidAlgorithm` (unknown names fail to parse).
const KNOWN_ALGS: &[&str] = &[
    "HS256", "HS384", "HS512", "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256",
    "ES384",
];

// ---------------------------------------------------------------------------------------------
// Properties

proptest! {
    #![proptest_config(config())]

    /// A valid access token is accepted with its claims; its header names the key.
    #[test]
    fn valid_access_tokens_are_accepted(claims in access_claims()) {
        let token = ACCESS_KEY.sign(&claims).map_err(fail)?;
        prop_assert_eq!(Verifier::kid_of(&token), Some(ACCESS_KEY.kid().to_owned()));
        prop_assert_eq!(ACCESS.verify::<AccessClaims>(&token), Ok(claims.clone()));
        let ring = KeyRing::fixed(&ACCESS_KEY.jwks(), ACCESS_ISSUER, ACCESS_AUDIENCE).map_err(fail)?;
        prop_assert_eq!(RUNTIME.block_on(ring.verify::<AccessClaims>(&token)), Ok(claims));
    }

    /// A valid gate token is accepted by the gate verifier and refused by the access verifier
    /// (and an access token by the gate verifier).
    #[test]
    fn valid_gate_tokens_are_accepted_only_as_gate_tokens(gate in gate_claims(), access in access_claims()) {
        let gate_token = GATE_KEY.sign(&gate).map_err(fail)?;
        prop_assert_eq!(GATE.verify::<GateClaims>(&gate_token), Ok(gate));
        // Another key, so unknown to the access verifier; signed by the access key, the
        // claims are still not an access token's.
        prop_assert_eq!(ACCESS.verify::<AccessClaims>(&gate_token), Err(VerifyError::UnknownKey));
        let access_token = ACCESS_KEY.sign(&access).map_err(fail)?;
        prop_assert_eq!(GATE.verify::<GateClaims>(&access_token), Err(VerifyError::UnknownKey));
        let both = Jwks { keys: vec![ACCESS_KEY.jwk().clone(), GATE_KEY.jwk().clone()] };
        let gate_by_both = Verifier::new(&both, GATE_ISSUER, GATE_AUDIENCE).map_err(fail)?;
        invalid_kind(gate_by_both.verify::<GateClaims>(&access_token))?;
        let access_by_both = Verifier::new(&both, ACCESS_ISSUER, ACCESS_AUDIENCE).map_err(fail)?;
        invalid_kind(access_by_both.verify::<AccessClaims>(&gate_token))?;
    }

    /// Arbitrary strings are never accepted: `Invalid`, or `UnknownKey` when a header parses
    /// with a `kid` that is not ours; never `Expired` (the signature is checked first).
    #[test]
    fn arbitrary_strings_are_refused(token in garbage_token()) {
        for outcome in [
            ACCESS.verify::<AccessClaims>(&token).map(drop),
            GATE.verify::<GateClaims>(&token).map(drop),
            RUNTIME.block_on(
                KeyRing::fixed(&ACCESS_KEY.jwks(), ACCESS_ISSUER, ACCESS_AUDIENCE)
                    .map_err(fail)?
                    .verify::<AccessClaims>(&token),
            ).map(drop),
        ] {
            match outcome {
                Err(VerifyError::Invalid(_)) => {}
                Err(VerifyError::UnknownKey) => {
                    let kid = Verifier::kid_of(&token);
                    prop_assert!(kid.is_some_and(|k| k != ACCESS_KEY.kid()), "UnknownKey for {:?}", token);
                }
                other => prop_assert!(false, "{:?} gave {:?}", token, other),
            }
        }
    }

    /// One character of a valid token changed, anywhere: refused (`UnknownKey` only when the
    /// change is in the header and turned the `kid` into another).
    #[test]
    fn a_token_with_one_character_changed_is_refused(claims in access_claims(), at in any::<prop::sample::Index>(), replacement in prop_oneof![proptest::char::range('A', 'Z'), proptest::char::range('a', 'z'), proptest::char::range('0', '9'), Just('-'), Just('_'), Just('.'), Just('='), Just('+'), Just('/'), any::<char>()]) {
        let token = ACCESS_KEY.sign(&claims).map_err(fail)?;
        let mut chars: Vec<char> = token.chars().collect();
        let i = at.index(chars.len());
        prop_assume!(chars[i] != replacement);
        chars[i] = replacement;
        let mutated: String = chars.into_iter().collect();
        let header_len = token.find('.').unwrap_or(token.len());
        match ACCESS.verify::<AccessClaims>(&mutated) {
            Err(VerifyError::Invalid(_)) => {}
            Err(VerifyError::UnknownKey) => prop_assert!(i < header_len, "UnknownKey for a change at {} of {}", i, mutated),
            other => prop_assert!(false, "{} (changed at {}) gave {:?}", mutated, i, other),
        }
    }

    /// A character dropped or added, or the token cut short: refused.
    #[test]
    fn a_token_cut_or_extended_is_refused(claims in access_claims(), at in any::<prop::sample::Index>(), extra in "[A-Za-z0-9_.-]{1,4}") {
        let token = ACCESS_KEY.sign(&claims).map_err(fail)?;
        let i = at.index(token.len());
        let dropped = format!("{}{}", &token[..i], &token[i + 1..]);
        let inserted = format!("{}{extra}{}", &token[..i], &token[i..]);
        let cut = token[..i].to_owned();
        for mutated in [dropped, inserted, cut, format!("{token}{extra}")] {
            let outcome = ACCESS.verify::<AccessClaims>(&mutated);
            prop_assert!(
                matches!(outcome, Err(VerifyError::Invalid(_) | VerifyError::UnknownKey)),
                "{} gave {:?}", mutated, outcome
            );
        }
    }

    /// The three segments in any other order, repeated or missing: refused as invalid.
    #[test]
    fn swapped_repeated_or_missing_segments_are_refused(claims in access_claims(), order in proptest::collection::vec(0_usize..3, 0..5)) {
        let token = ACCESS_KEY.sign(&claims).map_err(fail)?;
        let parts = segments(&token)?;
        prop_assume!(order != [0, 1, 2]);
        let rebuilt = order.iter().map(|&i| parts[i].as_str()).collect::<Vec<_>>().join(".");
        invalid_kind(ACCESS.verify::<AccessClaims>(&rebuilt))?;
    }

    /// The header's `alg` changed to anything but `EdDSA`, with the signature kept or made
    /// with the public key as an HMAC secret (algorithm confusion): refused, as
    /// `InvalidAlgorithm` for algorithms jsonwebtoken knows.
    #[test]
    fn another_alg_in_the_header_is_refused(claims in access_claims(), alg in other_alg(), drop_signature in any::<bool>()) {
        let token = ACCESS_KEY.sign(&claims).map_err(fail)?;
        let [_, payload, signature] = segments(&token)?;
        let header = serde_json::json!({ "alg": alg, "typ": "JWT", "kid": ACCESS_KEY.kid() });
        let header = b64(header.to_string().as_bytes());
        let signature = if drop_signature { String::new() } else { signature };
        let forged = format!("{header}.{payload}.{signature}");
        let kind = invalid_kind(ACCESS.verify::<AccessClaims>(&forged))?;
        if KNOWN_ALGS.contains(&alg.as_str()) {
            prop_assert_eq!(kind.as_str(), "InvalidAlgorithm");
            if alg.starts_with("HS") {
                // HMAC over the token with the published public key as the secret.
                let secret = URL_SAFE_NO_PAD.decode(&ACCESS_KEY.jwk().x).map_err(fail)?;
                let mut header = jsonwebtoken::Header::new(match alg.as_str() {
                    "HS384" => jsonwebtoken::Algorithm::HS384,
                    "HS512" => jsonwebtoken::Algorithm::HS512,
                    _ => jsonwebtoken::Algorithm::HS256,
                });
                header.kid = Some(ACCESS_KEY.kid().to_owned());
                let confused = jsonwebtoken::encode(&header, &claims, &jsonwebtoken::EncodingKey::from_secret(&secret)).map_err(fail)?;
                refused_as(ACCESS.verify::<AccessClaims>(&confused), "InvalidAlgorithm")?;
            }
        }
    }

    /// Claims edited after signing (another user, the admin role, a later expiry) with the
    /// signature kept: `InvalidSignature`.
    #[test]
    fn edited_claims_are_refused_as_an_invalid_signature(claims in access_claims(), sub in uuid(), longer in 1_i64..1_000_000) {
        let token = ACCESS_KEY.sign(&claims).map_err(fail)?;
        let [header, _, signature] = segments(&token)?;
        let edits = [
            AccessClaims { sub: UserId(sub), ..claims.clone() },
            AccessClaims { role: Role::Admin, ..claims.clone() },
            AccessClaims { exp: claims.exp + longer, ..claims.clone() },
        ];
        for edited in edits.into_iter().filter(|edited| *edited != claims) {
            let payload = b64(&serde_json::to_vec(&edited).map_err(fail)?);
            let forged = format!("{header}.{payload}.{signature}");
            refused_as(ACCESS.verify::<AccessClaims>(&forged), "InvalidSignature")?;
        }
    }

    /// A token signed by a key we do not trust: `UnknownKey` under its own `kid`,
    /// `InvalidSignature` under ours.
    #[test]
    fn tokens_of_other_keys_are_refused(claims in access_claims()) {
        let foreign = OTHER_KEY.sign(&claims).map_err(fail)?;
        prop_assert_eq!(ACCESS.verify::<AccessClaims>(&foreign), Err(VerifyError::UnknownKey));
        let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::EdDSA);
        header.kid = Some(ACCESS_KEY.kid().to_owned());
        let forged = jsonwebtoken::encode(&header, &claims, &jsonwebtoken::EncodingKey::from_ed_der(&OTHER_PKCS8)).map_err(fail)?;
        refused_as(ACCESS.verify::<AccessClaims>(&forged), "InvalidSignature")?;
    }

    /// A token without a `kid` is checked against the only key there is, and refused as
    /// `UnknownKey` where there are several.
    #[test]
    fn tokens_without_a_kid(claims in access_claims()) {
        let header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::EdDSA);
        let der = SigningKey::generate_pem().map_err(fail)?;
        let key = SigningKey::from_pem(&der).map_err(fail)?;
        // Sign with the same key material without a `kid`.
        let body: String = der.lines().filter(|l| !l.starts_with("-----")).collect();
        let pkcs8 = base64::engine::general_purpose::STANDARD.decode(body).map_err(fail)?;
        let token = jsonwebtoken::encode(&header, &claims, &jsonwebtoken::EncodingKey::from_ed_der(&pkcs8)).map_err(fail)?;
        prop_assert_eq!(Verifier::kid_of(&token), None);
        let one = Verifier::new(&key.jwks(), ACCESS_ISSUER, ACCESS_AUDIENCE).map_err(fail)?;
        prop_assert_eq!(one.verify::<AccessClaims>(&token), Ok(claims));
        let two = Verifier::new(&key.jwks().merged(&ACCESS_KEY.jwks()), ACCESS_ISSUER, ACCESS_AUDIENCE).map_err(fail)?;
        prop_assert_eq!(two.verify::<AccessClaims>(&token), Err(VerifyError::UnknownKey));
        // Not ours without a kid either.
        refused_as(ACCESS.verify::<AccessClaims>(&token), "InvalidSignature")?;
    }

    /// Expired beyond the leeway: `Expired` (and accepted by a verifier ignoring expiry, which
    /// still checks the rest).
    #[test]
    fn expired_tokens_are_refused_as_expired(claims in access_claims(), ago in 1_i64..100_000_000, gate in gate_claims()) {
        let exp = now() - i64::try_from(LEEWAY_SECS).unwrap_or(5) - ago;
        let expired = AccessClaims { iat: exp - 900, exp, ..claims };
        let token = ACCESS_KEY.sign(&expired).map_err(fail)?;
        prop_assert_eq!(ACCESS.verify::<AccessClaims>(&token), Err(VerifyError::Expired));
        prop_assert_eq!(ACCESS.clone().ignoring_expiry().verify::<AccessClaims>(&token), Ok(expired));
        let expired_gate = GateClaims { exp, ..gate };
        let token = GATE_KEY.sign(&expired_gate).map_err(fail)?;
        prop_assert_eq!(GATE.verify::<GateClaims>(&token), Err(VerifyError::Expired));
        // Expiry ignored, another audience is still refused.
        let elsewhere = Verifier::new(&GATE_KEY.jwks(), GATE_ISSUER, "elsewhere").map_err(fail)?.ignoring_expiry();
        refused_as(elsewhere.verify::<GateClaims>(&token), "InvalidAudience")?;
    }

    /// Another issuer or audience: `InvalidIssuer`, `InvalidAudience`.
    #[test]
    fn other_issuers_and_audiences_are_refused(claims in access_claims(), gate in gate_claims(), name in prop_oneof![any::<String>(), Just(GATE_ISSUER.to_owned()), Just(GATE_AUDIENCE.to_owned()), Just(String::new()), Just(format!("{ACCESS_ISSUER} "))]) {
        if name != ACCESS_ISSUER {
            let token = ACCESS_KEY.sign(&AccessClaims { iss: name.clone(), ..claims.clone() }).map_err(fail)?;
            refused_as(ACCESS.verify::<AccessClaims>(&token), "InvalidIssuer")?;
        }
        if name != ACCESS_AUDIENCE {
            let token = ACCESS_KEY.sign(&AccessClaims { aud: name.clone(), ..claims }).map_err(fail)?;
            refused_as(ACCESS.verify::<AccessClaims>(&token), "InvalidAudience")?;
        }
        if name != GATE_AUDIENCE {
            let token = GATE_KEY.sign(&GateClaims { aud: name.clone(), ..gate.clone() }).map_err(fail)?;
            refused_as(GATE.verify::<GateClaims>(&token), "InvalidAudience")?;
        }
        if name != GATE_ISSUER {
            let token = GATE_KEY.sign(&GateClaims { iss: name, ..gate }).map_err(fail)?;
            refused_as(GATE.verify::<GateClaims>(&token), "InvalidIssuer")?;
        }
    }

    /// JWKS documents from a peer: arbitrary text is parsed or refused as `KeyError::Jwks`;
    /// a key whose `x` is not a public key is refused naming its kid, or never verifies a
    /// token signed by another key.
    #[test]
    fn jwks_documents_from_peers(text in prop_oneof![any::<String>(), r#"\{"keys":\[(\{"kty":"(OKP|RSA)","crv":"Ed25519","x":"[A-Za-z0-9_=+/-]{0,60}","kid":"[a-z]{0,8}"\},?){0,3}\]\}"#], x in prop_oneof!["[A-Za-z0-9_-]{0,90}", any::<String>(), proptest::collection::vec(any::<u8>(), 0..64).prop_map(|b| b64(&b))], claims in access_claims()) {
        match Jwks::from_json(&text) {
            Ok(jwks) => {
                if let Ok(verifier) = Verifier::new(&jwks, ACCESS_ISSUER, ACCESS_AUDIENCE) {
                    let token = ACCESS_KEY.sign(&claims).map_err(fail)?;
                    prop_assert!(verifier.verify::<AccessClaims>(&token).is_err(), "accepted by {:?}", text);
                }
            }
            Err(KeyError::Jwks(_)) => {}
            Err(other) => prop_assert!(false, "{:?} refused with {:?}", text, other),
        }
        let bogus = Jwk { x: x.clone(), kid: ACCESS_KEY.kid().to_owned(), ..ACCESS_KEY.jwk().clone() };
        match Verifier::new(&Jwks { keys: vec![bogus] }, ACCESS_ISSUER, ACCESS_AUDIENCE) {
            Ok(verifier) => {
                let token = ACCESS_KEY.sign(&claims).map_err(fail)?;
                let outcome = verifier.verify::<AccessClaims>(&token);
                if x == ACCESS_KEY.jwk().x {
                    prop_assert_eq!(outcome, Ok(claims));
                } else {
                    refused_as(outcome, "InvalidSignature")?;
                }
            }
            Err(KeyError::Jwk { kid, .. }) => prop_assert_eq!(kid.as_str(), ACCESS_KEY.kid()),
            Err(other) => prop_assert!(false, "{:?} refused with {:?}", x, other),
        }
    }
}
