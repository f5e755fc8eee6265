//! Token verification: every rule, and the failing side of each. HS256 with a shared
//! secret, EdDSA/RS256/ES256 from a JWKS served by wiremock, the backend's service
//! credential, and the JWKS cache's refetch bound.

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use secrecy::SecretString;
use serde_json::json;
use todo_core::auth::{AuthError, AuthSettings, ServiceCredential, UserId, VerifiedUser, Verifier};
use todo_test_support::tokens::*;

fn secret(s: &str) -> Option<SecretString> {
    Some(SecretString::from(s))
}

fn hs256_verifier(issuer: Option<&str>, audience: Option<&str>) -> Verifier {
    Verifier::new(&AuthSettings {
        jwt_secret: secret(SECRET),
        issuer: issuer.map(str::to_string),
        audience: audience.map(str::to_string),
        ..AuthSettings::default()
    })
    .unwrap()
}

fn jwks_settings(url: String, interval: Duration) -> AuthSettings {
    AuthSettings {
        jwks_url: Some(url),
        jwks_refetch_interval: interval,
        ..AuthSettings::default()
    }
}

fn user(sub: &str) -> Result<VerifiedUser, AuthError> {
    Ok(VerifiedUser {
        sub: UserId::parse(sub).unwrap(),
        service: false,
    })
}

#[track_caller]
fn assert_refused(r: Result<VerifiedUser, AuthError>, case: &str) {
    assert!(r.is_err(), "{case}: accepted {r:?}");
}

#[tokio::test]
async fn hs256_tokens_verify_and_every_broken_one_is_refused() {
    let v = hs256_verifier(None, None);
    assert_eq!(
        v.verify(&hs256(SECRET, &claims("alice"))).await,
        user("alice")
    );
    // An audience or issuer in the token is fine when none is configured.
    let extra = claims_with("alice", json!({"aud": "anything", "iss": "anyone"}));
    assert_eq!(v.verify(&hs256(SECRET, &extra)).await, user("alice"));

    let valid = hs256(SECRET, &claims("alice"));
    let cases: Vec<(&str, String)> = vec![
        (
            "expired",
            hs256(SECRET, &claims_with("alice", json!({"exp": now() - 3600}))),
        ),
        (
            "not valid yet",
            hs256(SECRET, &claims_with("alice", json!({"nbf": now() + 3600}))),
        ),
        (
            "no exp",
            hs256(SECRET, &claims_with("alice", json!({"exp": null}))),
        ),
        (
            "no sub",
            hs256(SECRET, &claims_with("alice", json!({"sub": null}))),
        ),
        ("empty sub", hs256(SECRET, &claims(""))),
        (
            "sub not a string",
            hs256(SECRET, &claims_with("x", json!({"sub": 7}))),
        ),
        (
            "control character in sub",
            hs256(SECRET, &claims("al\u{7}ice")),
        ),
        ("over-long sub", hs256(SECRET, &claims(&"a".repeat(129)))),
        ("wrong key", hs256(OTHER_SECRET, &claims("alice"))),
        ("alg none", unsigned(&claims("alice"))),
        ("tampered payload", tampered(&valid, &claims("bob"))),
        (
            "signature stripped",
            valid.rsplit_once('.').unwrap().0.to_string() + ".",
        ),
        ("not a JWT", "hello".to_string()),
        ("empty", String::new()),
        (
            "asymmetric token without a JWKS",
            signed_by(TestKey::Ed25519, &claims("alice")),
        ),
    ];
    for (case, token) in cases {
        assert_refused(v.verify(&token).await, case);
    }
    assert_eq!(
        v.verify(&hs256(
            SECRET,
            &claims_with("alice", json!({"exp": now() - 3600}))
        ))
        .await,
        Err(AuthError::Expired)
    );
}

#[tokio::test]
async fn issuer_and_audience_are_required_and_checked_when_configured() {
    let v = hs256_verifier(Some("https://auth.example"), Some("todo-api"));
    let good = json!({"iss": "https://auth.example", "aud": "todo-api"});
    assert_eq!(
        v.verify(&hs256(SECRET, &claims_with("alice", good))).await,
        user("alice")
    );
    // `aud` may also be a list containing ours.
    let list = json!({"iss": "https://auth.example", "aud": ["other", "todo-api"]});
    assert_eq!(
        v.verify(&hs256(SECRET, &claims_with("alice", list))).await,
        user("alice")
    );
    let cases = [
        (
            "wrong audience",
            json!({"iss": "https://auth.example", "aud": "other-api"}),
        ),
        (
            "wrong issuer",
            json!({"iss": "https://evil.example", "aud": "todo-api"}),
        ),
        ("missing audience", json!({"iss": "https://auth.example"})),
        ("missing issuer", json!({"aud": "todo-api"})),
    ];
    for (case, fields) in cases {
        assert_refused(
            v.verify(&hs256(SECRET, &claims_with("alice", fields)))
                .await,
            case,
        );
    }
}

#[tokio::test]
async fn jwks_keys_of_every_pinned_type_verify() {
    let issuer = jwks_server(&[TestKey::Ed25519, TestKey::Rsa, TestKey::P256]).await;
    let v = Verifier::new(&jwks_settings(
        format!("{}/jwks", issuer.uri()),
        Duration::from_secs(30),
    ))
    .unwrap();
    for key in [TestKey::Ed25519, TestKey::Rsa, TestKey::P256] {
        assert_eq!(
            v.verify(&signed_by(key, &claims("alice"))).await,
            user("alice"),
            "{key:?}"
        );
    }
    // A token without a kid is tried against the keys of its algorithm.
    assert_eq!(
        v.verify(&signed(TestKey::Ed25519, None, &claims("carol")))
            .await,
        user("carol")
    );
    // The key set was fetched once and cached.
    assert_eq!(jwks_fetches(&issuer).await, 1);
}

#[tokio::test]
async fn jwks_verification_refuses_confusion_forgery_and_wrong_keys() {
    let issuer = jwks_server(&[TestKey::Ed25519, TestKey::Rsa, TestKey::P256]).await;
    let v = Verifier::new(&jwks_settings(
        format!("{}/jwks", issuer.uri()),
        Duration::from_secs(30),
    ))
    .unwrap();
    let c = claims("alice");
    let cases: Vec<(&str, String)> = vec![
        // HS256 keyed with the RSA public key the JWKS publishes: the classic confusion.
        (
            "HS256 under an RSA kid",
            hs256_with_kid(TestKey::Rsa.kid(), &public_jwk_bytes(TestKey::Rsa), &c),
        ),
        (
            "HS256 under an Ed25519 kid",
            hs256_with_kid(
                TestKey::Ed25519.kid(),
                &public_jwk_bytes(TestKey::Ed25519),
                &c,
            ),
        ),
        ("HS256 with no kid", hs256(SECRET, &c)),
        // Right kid, other key type's algorithm.
        (
            "RSA-signed token naming the Ed25519 kid",
            signed(TestKey::Rsa, Some(TestKey::Ed25519.kid()), &c),
        ),
        (
            "P-256 token naming the RSA kid",
            signed(TestKey::P256, Some(TestKey::Rsa.kid()), &c),
        ),
        // A key the issuer never published, under a published kid.
        (
            "stranger key under a known kid",
            signed(TestKey::Ed25519Stranger, Some(TestKey::Ed25519.kid()), &c),
        ),
        (
            "stranger key without kid",
            signed(TestKey::Ed25519Stranger, None, &c),
        ),
        ("alg none", unsigned(&c)),
        (
            "expired",
            signed_by(
                TestKey::Ed25519,
                &claims_with("alice", json!({"exp": now() - 3600})),
            ),
        ),
        (
            "tampered",
            tampered(&signed_by(TestKey::Rsa, &c), &claims("bob")),
        ),
    ];
    for (case, token) in cases {
        assert_refused(v.verify(&token).await, case);
    }
}

#[tokio::test]
async fn an_unknown_kid_refetches_at_most_once_per_interval_and_rotation_works() {
    let issuer = jwks_server(&[TestKey::Ed25519]).await;
    let interval = Duration::from_millis(400);
    let v = Verifier::new(&jwks_settings(format!("{}/jwks", issuer.uri()), interval)).unwrap();
    v.warm_up().await;
    assert_eq!(jwks_fetches(&issuer).await, 1, "fetched at start-up");
    assert_eq!(
        v.verify(&signed_by(TestKey::Ed25519, &claims("alice")))
            .await,
        user("alice")
    );
    assert_eq!(jwks_fetches(&issuer).await, 1, "served from the cache");

    // Signed now: signing 50 tokens on a loaded machine can outlast the interval below.
    let forged: Vec<String> = (0..50)
        .map(|i| {
            signed(
                TestKey::Ed25519Stranger,
                Some(&format!("made-up-{i}")),
                &claims("alice"),
            )
        })
        .collect();

    // The issuer rotates to a new key. Past the interval, the first token under the
    // unknown kid refetches once and verifies.
    serve_jwks(&issuer, &[TestKey::Ed25519, TestKey::Ed25519Rotated]).await;
    tokio::time::sleep(interval + Duration::from_millis(100)).await;
    assert_eq!(
        v.verify(&signed_by(TestKey::Ed25519Rotated, &claims("bob")))
            .await,
        user("bob")
    );
    assert_eq!(
        jwks_fetches(&issuer).await,
        1,
        "one refetch after the reset"
    );

    // Made-up kids within the interval, even many at once, fetch nothing more.
    let results = futures::future::join_all(forged.iter().map(|t| v.verify(t))).await;
    assert!(results.iter().all(Result::is_err));
    assert_eq!(
        jwks_fetches(&issuer).await,
        1,
        "no refetch within the interval"
    );

    // After the interval, a flood of unknown kids costs the issuer one request.
    tokio::time::sleep(interval + Duration::from_millis(100)).await;
    let results = futures::future::join_all(forged.iter().map(|t| v.verify(t))).await;
    assert!(results.iter().all(Result::is_err));
    assert_eq!(jwks_fetches(&issuer).await, 2, "a flood refetches once");
    // Known keys kept working throughout.
    assert_eq!(
        v.verify(&signed_by(TestKey::Ed25519, &claims("alice")))
            .await,
        user("alice")
    );
    assert_eq!(jwks_fetches(&issuer).await, 2);
}

#[tokio::test]
async fn an_unreachable_or_broken_issuer_refuses_tokens_without_panicking() {
    let issuer = wiremock::MockServer::start().await;
    wiremock::Mock::given(wiremock::matchers::any())
        .respond_with(wiremock::ResponseTemplate::new(200).set_body_string("<html>oops</html>"))
        .mount(&issuer)
        .await;
    let v = Verifier::new(&jwks_settings(
        format!("{}/jwks", issuer.uri()),
        Duration::from_secs(30),
    ))
    .unwrap();
    assert_refused(
        v.verify(&signed_by(TestKey::Ed25519, &claims("alice")))
            .await,
        "broken JWKS",
    );
    // Nothing listens on port 9 (discard) on loopback in this sandbox.
    let v = Verifier::new(&jwks_settings(
        "http://127.0.0.1:9/jwks".into(),
        Duration::from_secs(30),
    ))
    .unwrap();
    assert_refused(
        v.verify(&signed_by(TestKey::Ed25519, &claims("alice")))
            .await,
        "unreachable JWKS",
    );
    assert!(
        Verifier::new(&jwks_settings("not a url".into(), Duration::from_secs(1))).is_err(),
        "a malformed AUTH_JWKS_URL is a start-up error"
    );
    assert!(Verifier::new(&AuthSettings::default()).is_err());
}

#[tokio::test]
async fn the_service_credential_is_accepted_only_where_configured_and_only_as_issued() {
    let service = SecretString::from(SERVICE_SECRET);
    let cred = ServiceCredential::new(&service, Duration::from_secs(60));
    let token = secrecy::ExposeSecret::expose_secret(&cred.token_for("alice").unwrap()).to_string();

    // todo-mcp: user tokens and the service credential.
    let mcp = Verifier::new(&AuthSettings {
        jwt_secret: secret(SECRET),
        service_secret: Some(service.clone()),
        ..AuthSettings::default()
    })
    .unwrap();
    assert_eq!(
        mcp.verify(&token).await,
        Ok(VerifiedUser {
            sub: UserId::parse("alice").unwrap(),
            service: true
        })
    );
    assert_eq!(
        mcp.verify(&hs256(SECRET, &claims("bob"))).await,
        user("bob")
    );

    // todo-mcp with only the service secret (behind the backend).
    let mcp_only = Verifier::new(&AuthSettings {
        service_secret: Some(service.clone()),
        ..AuthSettings::default()
    })
    .unwrap();
    assert_eq!(mcp_only.verify(&token).await.unwrap().sub, "alice");
    assert_refused(
        mcp_only.verify(&hs256(SECRET, &claims("bob"))).await,
        "user token where only the service credential is accepted",
    );

    let forged = |fields| hs256(SERVICE_SECRET, &claims_with("alice", fields));
    let cases = [
        (
            "wrong audience",
            forged(json!({"iss": "todo-backend", "aud": "someone-else"})),
        ),
        ("no audience", forged(json!({"iss": "todo-backend"}))),
        (
            "signed with the user secret",
            hs256(
                SECRET,
                &claims_with("alice", json!({"iss": "todo-backend", "aud": "todo-mcp"})),
            ),
        ),
        (
            "expired",
            forged(json!({"iss": "todo-backend", "aud": "todo-mcp", "exp": now() - 3600})),
        ),
    ];
    for (case, t) in cases {
        assert_refused(mcp.verify(&t).await, case);
    }

    // The backend's own verifier never accepts its service credential as a user token.
    let backend = hs256_verifier(None, None);
    assert_refused(
        backend.verify(&token).await,
        "service credential at the backend",
    );
}

#[tokio::test]
async fn a_key_the_issuer_removed_is_refused_within_a_refresh_interval() {
    let issuer = jwks_server(&[TestKey::Ed25519, TestKey::Ed25519Rotated]).await;
    let interval = Duration::from_millis(300);
    let v = Verifier::new(&jwks_settings(format!("{}/jwks", issuer.uri()), interval)).unwrap();
    v.warm_up().await;
    let old = signed_by(TestKey::Ed25519, &claims("alice"));
    assert_eq!(v.verify(&old).await, user("alice"));
    // The issuer drops the old key (it leaked, say).
    serve_jwks(&issuer, &[TestKey::Ed25519Rotated]).await;
    let refused = tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            if v.verify(&old).await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    assert!(refused.is_ok(), "the removed key was still trusted");
    let new = signed_by(TestKey::Ed25519Rotated, &claims("bob"));
    assert_eq!(v.verify(&new).await, user("bob"));
}

#[test]
fn todo_mcp_refuses_user_tokens_without_an_audience_and_one_secret_for_both() {
    let mut s = AuthSettings {
        jwt_secret: secret(SECRET),
        ..AuthSettings::default()
    };
    let e = s.check_for_mcp().unwrap_err();
    assert!(e.to_string().contains("AUTH_AUDIENCE"), "{e}");
    s.audience = Some("todo-mcp".into());
    assert!(s.check_for_mcp().is_ok());
    s.service_secret = secret(SECRET);
    let e = s.check_for_mcp().unwrap_err();
    assert!(e.to_string().contains("MCP_SERVICE_SECRET"), "{e}");
    // The service credential alone needs no audience setting (its own is fixed).
    let service_only = AuthSettings {
        service_secret: secret(SECRET),
        ..AuthSettings::default()
    };
    assert!(service_only.check_for_mcp().is_ok());
}
