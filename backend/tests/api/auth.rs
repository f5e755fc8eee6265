//! Authentication of the HTTP API: a verified bearer token on every `/api` route, bound to
//! the path's user; public health, metrics and schema; tokens never leave the service.

use std::time::Duration;

use reqwest::Method;
use secrecy::SecretString;
use serde_json::{Value, json};
use todo_backend::access::AccessSettings;
use todo_core::auth::AuthSettings;
use todo_test_support::Kind;

use crate::helpers::*;
use crate::tokens::*;

pub const ISSUER: &str = "https://auth.example";
pub const AUDIENCE: &str = "todo-api";

/// Options for an app verifying HS256 tokens with [`SECRET`], `iss` and `aud` required.
pub fn hs256_options() -> Options {
    Options {
        access: AccessSettings {
            auth: AuthSettings {
                jwt_secret: Some(SecretString::from(SECRET)),
                issuer: Some(ISSUER.into()),
                audience: Some(AUDIENCE.into()),
                ..AuthSettings::default()
            },
            ..AccessSettings::default()
        },
        ..Options::default()
    }
}

/// A valid token for `sub` under [`hs256_options`].
pub fn token(sub: &str) -> String {
    hs256(SECRET, &good_claims(sub))
}

pub fn good_claims(sub: &str) -> Value {
    claims_with(sub, json!({"iss": ISSUER, "aud": AUDIENCE}))
}

/// Sends a request with an optional raw Authorization header value.
pub async fn send(
    app: &TestApp,
    method: Method,
    path: &str,
    authorization: Option<&str>,
    body: Option<Value>,
) -> reqwest::Response {
    let mut req = app.client.request(method, format!("{}{path}", app.address));
    if let Some(a) = authorization {
        req = req.header("Authorization", a);
    }
    if let Some(b) = body {
        req = req.json(&b);
    }
    req.send().await.expect("request")
}

fn routes(user: &str) -> Vec<(Method, String, Option<Value>)> {
    let conv = uuid::Uuid::new_v4();
    vec![
        (
            Method::POST,
            format!("/api/{user}/chat"),
            Some(json!({"message": "hi"})),
        ),
        (Method::GET, format!("/api/{user}/conversations"), None),
        (
            Method::GET,
            format!("/api/{user}/conversations/{conv}/messages"),
            None,
        ),
        (Method::GET, format!("/api/{user}/tasks"), None),
        (Method::GET, format!("/api/{user}/usage"), None),
    ]
}

#[tokio::test]
async fn every_api_route_refuses_a_missing_or_bad_token_with_401() {
    let Some(app) = spawn_app_with(Kind::Sqlite, hs256_options()).await else {
        return;
    };
    app.llm_responds(Script::new(&[], "never")).await;
    let expired = hs256(
        SECRET,
        &claims_with(
            "alice",
            json!({"iss": ISSUER, "aud": AUDIENCE, "exp": now() - 3600}),
        ),
    );
    let not_yet = hs256(
        SECRET,
        &claims_with(
            "alice",
            json!({"iss": ISSUER, "aud": AUDIENCE, "nbf": now() + 3600}),
        ),
    );
    let wrong_aud = hs256(
        SECRET,
        &claims_with("alice", json!({"iss": ISSUER, "aud": "other"})),
    );
    let wrong_iss = hs256(
        SECRET,
        &claims_with(
            "alice",
            json!({"iss": "https://evil.example", "aud": AUDIENCE}),
        ),
    );
    let no_aud = hs256(SECRET, &claims_with("alice", json!({"iss": ISSUER})));
    let wrong_key = hs256(OTHER_SECRET, &good_claims("alice"));
    let cases: Vec<(&str, Option<String>)> = vec![
        ("no Authorization", None),
        ("garbage", Some("Bearer garbage".into())),
        ("not bearer", Some("Basic YWxpY2U6cGFzc3dvcmQ=".into())),
        ("empty bearer", Some("Bearer ".into())),
        ("expired", Some(format!("Bearer {expired}"))),
        ("not valid yet", Some(format!("Bearer {not_yet}"))),
        ("wrong audience", Some(format!("Bearer {wrong_aud}"))),
        ("wrong issuer", Some(format!("Bearer {wrong_iss}"))),
        ("missing audience", Some(format!("Bearer {no_aud}"))),
        ("wrong key", Some(format!("Bearer {wrong_key}"))),
        (
            "alg none",
            Some(format!("Bearer {}", unsigned(&good_claims("alice")))),
        ),
        (
            "asymmetric token, no JWKS configured",
            Some(format!(
                "Bearer {}",
                signed_by(TestKey::Ed25519, &good_claims("alice"))
            )),
        ),
    ];
    for (case, header) in &cases {
        for (method, path, body) in routes("alice") {
            let r = send(&app, method.clone(), &path, header.as_deref(), body).await;
            expect_error(r, 401, "unauthorized", &format!("{case}: {method} {path}")).await;
        }
    }
    // Health, readiness, metrics and the schema stay public.
    for path in ["/healthz", "/readyz", "/metrics", "/openapi.json"] {
        assert_eq!(app.get(path).await.status(), 200, "{path}");
    }
    assert!(
        app.llm_requests().await.is_empty(),
        "a refused request reached the LLM"
    );
    app.cleanup().await;
}

#[tokio::test]
async fn a_token_opens_only_its_own_users_paths() {
    let Some(app) = spawn_app_with(Kind::Sqlite, hs256_options()).await else {
        return;
    };
    app.llm_responds(Script::new(
        &[("c1", "add_task", r#"{"title":"Alice's task"}"#)],
        "Added.",
    ))
    .await;
    let alice = format!("Bearer {}", token("alice"));
    for (method, path, body) in routes("bob") {
        let r = send(&app, method.clone(), &path, Some(&alice), body).await;
        expect_error(r, 403, "forbidden", &format!("{method} {path}")).await;
    }
    // A percent-encoded or differently-cased name is another user too.
    for path in [
        "/api/Alice/tasks",
        "/api/alice%20/tasks",
        "/api/alic%65x/tasks",
    ] {
        let r = send(&app, Method::GET, path, Some(&alice), None).await;
        expect_error(r, 403, "forbidden", path).await;
    }
    assert!(app.llm_requests().await.is_empty());

    // Her own paths work, the percent-encoded spelling of her own name included.
    let r = send(
        &app,
        Method::POST,
        "/api/alice/chat",
        Some(&alice),
        Some(json!({"message": "add a task"})),
    )
    .await;
    assert_eq!(r.status(), 200);
    let conv = r.json::<Value>().await.unwrap()["conversation_id"]
        .as_str()
        .unwrap()
        .to_string();
    for path in [
        "/api/alice/tasks".to_string(),
        "/api/%61lice/tasks".to_string(),
        "/api/alice/conversations".to_string(),
        format!("/api/alice/conversations/{conv}/messages"),
    ] {
        let r = send(&app, Method::GET, &path, Some(&alice), None).await;
        assert_eq!(r.status(), 200, "{path}");
    }
    // Bob with his own token sees none of it.
    let bob = format!("Bearer {}", token("bob"));
    let r = send(&app, Method::GET, "/api/bob/tasks", Some(&bob), None).await;
    assert_eq!(r.json::<Value>().await.unwrap()["tasks"], json!([]));
    let r = send(
        &app,
        Method::GET,
        &format!("/api/bob/conversations/{conv}/messages"),
        Some(&bob),
        None,
    )
    .await;
    assert_eq!(r.status(), 404);
    app.cleanup().await;
}

#[tokio::test]
async fn tokens_from_a_jwks_issuer_verify_and_alg_confusion_is_refused() {
    let issuer = jwks_server(&[TestKey::Ed25519, TestKey::Rsa, TestKey::P256]).await;
    let o = Options {
        access: AccessSettings {
            auth: AuthSettings {
                jwks_url: Some(format!("{}/jwks", issuer.uri())),
                ..AuthSettings::default()
            },
            ..AccessSettings::default()
        },
        ..Options::default()
    };
    let Some(app) = spawn_app_with(Kind::Sqlite, o).await else {
        return;
    };
    assert_eq!(jwks_fetches(&issuer).await, 1, "fetched at start-up");
    for key in [TestKey::Ed25519, TestKey::Rsa, TestKey::P256] {
        let t = format!("Bearer {}", signed_by(key, &claims("alice")));
        let r = send(&app, Method::GET, "/api/alice/tasks", Some(&t), None).await;
        assert_eq!(r.status(), 200, "{key:?}");
    }
    let c = claims("alice");
    let refused = [
        (
            "HS256 keyed with the published RSA key",
            hs256_with_kid(TestKey::Rsa.kid(), &public_jwk_bytes(TestKey::Rsa), &c),
        ),
        ("HS256 with any secret", hs256(SECRET, &c)),
        ("unknown key", signed_by(TestKey::Ed25519Stranger, &c)),
        (
            "stranger key under a known kid",
            signed(TestKey::Ed25519Stranger, Some(TestKey::Ed25519.kid()), &c),
        ),
    ];
    for (case, t) in refused {
        let r = send(
            &app,
            Method::GET,
            "/api/alice/tasks",
            Some(&format!("Bearer {t}")),
            None,
        )
        .await;
        expect_error(r, 401, "unauthorized", case).await;
    }
    app.cleanup().await;
}

#[tokio::test]
async fn the_bearer_token_never_reaches_the_llm_or_the_stored_history() {
    let Some(app) = spawn_app_with(Kind::Sqlite, hs256_options()).await else {
        return;
    };
    app.llm_responds(Script::new(
        &[("c1", "add_task", r#"{"title":"Buy milk"}"#)],
        "Added.",
    ))
    .await;
    let t = token("alice");
    let r = send(
        &app,
        Method::POST,
        "/api/alice/chat",
        Some(&format!("Bearer {t}")),
        Some(json!({"message": "add buy milk"})),
    )
    .await;
    assert_eq!(r.status(), 200);
    let answer = r.text().await.unwrap();
    assert!(!answer.contains(&t));

    let received = app.llm.received_requests().await.unwrap();
    assert_eq!(received.len(), 2);
    // Its signature alone would be enough to recognise a leak.
    let signature = t.rsplit('.').next().unwrap();
    for req in &received {
        let body = String::from_utf8_lossy(&req.body);
        assert!(!body.contains(signature), "token in an LLM request body");
        for (name, value) in req.headers.iter() {
            let v = value.to_str().unwrap_or("");
            assert!(!v.contains(signature), "token in LLM request header {name}");
        }
        // The LLM gets its own key, nothing else.
        assert_eq!(
            req.headers["authorization"].to_str().unwrap(),
            "Bearer sk-test-secret"
        );
    }
    let conv = serde_json::from_str::<Value>(&answer).unwrap()["conversation_id"]
        .as_str()
        .unwrap()
        .to_string();
    let stored = send(
        &app,
        Method::GET,
        &format!("/api/alice/conversations/{conv}/messages"),
        Some(&format!("Bearer {t}")),
        None,
    )
    .await
    .text()
    .await
    .unwrap();
    assert!(!stored.contains(signature));
    // Nor the metrics, which count by route template, never by raw header or path.
    let metrics = app.get("/metrics").await.text().await.unwrap();
    assert!(metrics.contains("/api/{user_id}/chat"), "{metrics}");
    assert!(!metrics.contains(signature));
    app.cleanup().await;
}

#[test]
fn no_authorization_header_produces_a_server_error() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let Some(app) = rt.block_on(spawn_app_with(Kind::Sqlite, hs256_options())) else {
        return;
    };
    rt.block_on(app.llm_responds(Script::new(&[], "ok")));
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap();
    no_authorization_value_gets_a_server_error(&rt, token("alice"), |value, chat| {
        let req = if chat {
            client
                .post(format!("{}/api/alice/chat", app.address))
                .json(&json!({"message": "hi"}))
        } else {
            client.get(format!("{}/api/alice/tasks", app.address))
        };
        async move {
            req.header("Authorization", value.as_slice())
                .send()
                .await
                .map(|r| r.status())
        }
    });
    rt.block_on(app.cleanup());
}
