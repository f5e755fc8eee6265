//! Abuse limits: chat turns per user per minute (429), concurrent model turns per process
//! (503), CORS for the allowed origins only, and what the binary logs.

use std::process::Stdio;
use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{Value, json};
use todo_backend::access::AccessSettings;
use todo_test_support::{Kind, TestDb};
use tokio::io::{AsyncBufReadExt, BufReader};
use wiremock::ResponseTemplate;

use crate::auth::{send, token};
use crate::helpers::*;
use crate::tokens::*;

fn retry_after(r: &reqwest::Response) -> u64 {
    r.headers()
        .get("retry-after")
        .expect("Retry-After")
        .to_str()
        .unwrap()
        .parse()
        .unwrap()
}

#[tokio::test]
async fn a_flood_of_chat_turns_from_one_user_gets_429_with_retry_after() {
    let o = with_access(AccessSettings {
        rate_limit_per_minute: 3,
        ..AccessSettings::default()
    });
    let Some(app) = spawn_app_with(Kind::Sqlite, o).await else {
        return;
    };
    app.llm_responds(Script::new(&[], "ok")).await;
    for i in 0..3 {
        let r = app
            .chat("alice", json!({"message": format!("hi {i}")}))
            .await;
        assert_eq!(r.status(), 200, "turn {i} is within the rate");
    }
    for _ in 0..5 {
        let r = app.chat("alice", json!({"message": "one more"})).await;
        assert_eq!(r.status(), 429);
        let wait = retry_after(&r);
        assert!((1..=20).contains(&wait), "Retry-After {wait}");
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["error"]["code"], "rate_limited", "{body}");
    }
    // Another user has an allowance of their own; reads are not counted.
    assert_eq!(
        app.chat("bob", json!({"message": "hi"})).await.status(),
        200
    );
    assert_eq!(app.get("/api/alice/tasks").await.status(), 200);
    assert_eq!(
        app.llm_requests().await.len(),
        4,
        "refused turns never reach the LLM"
    );
    let metrics = app.get("/metrics").await.text().await.unwrap();
    assert!(
        metrics.contains(r#"rejections_total{reason="rate_limited"} 5"#),
        "{metrics}"
    );
    app.cleanup().await;
}

#[tokio::test]
async fn a_saturated_process_sheds_chat_turns_with_503_and_retry_after() {
    let o = with_access(AccessSettings {
        max_concurrent_turns: 1,
        ..AccessSettings::default()
    });
    let Some(app) = spawn_app_with(Kind::Sqlite, o).await else {
        return;
    };
    app.llm_responds(
        ResponseTemplate::new(200)
            .set_body_json(text_reply("slow answer"))
            .set_delay(Duration::from_millis(1500)),
    )
    .await;
    let first = {
        let client = app.client.clone();
        let url = format!("{}/api/alice/chat", app.address);
        tokio::spawn(async move {
            client
                .post(url)
                .json(&json!({"message": "slow"}))
                .send()
                .await
                .unwrap()
                .status()
        })
    };
    // Wait until the first turn is at the model.
    let deadline = Instant::now() + Duration::from_secs(10);
    while app.llm_requests().await.is_empty() {
        assert!(
            Instant::now() < deadline,
            "the first turn never reached the LLM"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let r = app.chat("bob", json!({"message": "me too"})).await;
    assert_eq!(r.status(), 503);
    assert!(retry_after(&r) >= 1);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], "busy", "{body}");
    assert_eq!(first.await.unwrap(), 200);
    // The slot is free again.
    assert_eq!(
        app.chat("bob", json!({"message": "now"})).await.status(),
        200
    );
    app.cleanup().await;
}

#[tokio::test]
async fn cors_headers_are_given_to_allowed_origins_only() {
    let o = with_access(AccessSettings {
        allowed_origins: vec!["https://app.example".into()],
        ..AccessSettings::default()
    });
    let Some(app) = spawn_app_with(Kind::Sqlite, o).await else {
        return;
    };
    let preflight = |origin: &'static str| {
        app.client
            .request(Method::OPTIONS, format!("{}/api/alice/chat", app.address))
            .header("Origin", origin)
            .header("Access-Control-Request-Method", "POST")
            .header(
                "Access-Control-Request-Headers",
                "authorization,content-type",
            )
            .send()
    };
    let ok = preflight("https://app.example").await.unwrap();
    assert_eq!(
        ok.headers()["access-control-allow-origin"],
        "https://app.example"
    );
    let allowed_headers = ok.headers()["access-control-allow-headers"]
        .to_str()
        .unwrap()
        .to_lowercase();
    assert!(
        allowed_headers.contains("authorization"),
        "{allowed_headers}"
    );

    let evil = preflight("https://evil.example").await.unwrap();
    assert!(evil.headers().get("access-control-allow-origin").is_none());
    assert!(
        evil.headers()
            .get("access-control-allow-credentials")
            .is_none()
    );
    let simple = app
        .client
        .get(format!("{}/api/alice/tasks", app.address))
        .header("Origin", "https://evil.example")
        .send()
        .await
        .unwrap();
    assert!(
        simple
            .headers()
            .get("access-control-allow-origin")
            .is_none()
    );
    app.cleanup().await;

    // Without ALLOWED_ORIGINS no origin gets CORS, not even a loopback page.
    let Some(app) = spawn_app(Kind::Sqlite).await else {
        return;
    };
    let r = app
        .client
        .get(format!("{}/api/alice/tasks", app.address))
        .header("Origin", "http://localhost:3000")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.headers().get("access-control-allow-origin").is_none());
    app.cleanup().await;
}

#[tokio::test]
async fn limits_apply_behind_authentication_too() {
    let mut o = crate::auth::hs256_options();
    o.access.rate_limit_per_minute = 1;
    o.max_body_bytes = 2_000;
    let Some(app) = spawn_app_with(Kind::Sqlite, o).await else {
        return;
    };
    app.llm_responds(Script::new(&[], "ok")).await;
    let alice = format!("Bearer {}", token("alice"));
    let chat = |body: Value| {
        send(
            &app,
            Method::POST,
            "/api/alice/chat",
            Some(&alice),
            Some(body),
        )
    };
    assert_eq!(
        chat(json!({"message": "x".repeat(3_000)})).await.status(),
        413
    );
    assert_eq!(chat(json!({"message": "hi"})).await.status(), 200);
    assert_eq!(chat(json!({"message": "again"})).await.status(), 429);
    app.cleanup().await;
}

/// Starts the binary with only `env` of the settings that matter here; its stderr, by line.
pub(crate) async fn run_backend(
    env: &[(&str, &str)],
    db_url: &str,
) -> (
    tokio::process::Child,
    tokio::io::Lines<BufReader<tokio::process::ChildStderr>>,
) {
    let mut cmd = todo_test_support::process::command(env!("CARGO_BIN_EXE_todo-backend"));
    cmd.args(["serve", "--bind", "127.0.0.1:0"])
        .env("DATABASE_URL", db_url)
        .env("RUST_LOG", "debug");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.stdout(Stdio::null()).stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    let lines = BufReader::new(child.stderr.take().unwrap()).lines();
    (child, lines)
}

pub(crate) async fn line_with(
    lines: &mut tokio::io::Lines<BufReader<tokio::process::ChildStderr>>,
    needle: &str,
    seen: &mut String,
) -> String {
    tokio::time::timeout(Duration::from_secs(30), async {
        while let Some(line) = lines.next_line().await.unwrap() {
            seen.push_str(&line);
            seen.push('\n');
            if line.contains(needle) {
                return line;
            }
        }
        panic!("no line with {needle:?} in:\n{seen}");
    })
    .await
    .unwrap_or_else(|_| panic!("timed out waiting for {needle:?}"))
}

#[tokio::test]
async fn the_binary_says_how_it_authenticates_and_never_logs_tokens_or_secrets() {
    let db = TestDb::new(Kind::Sqlite).await.unwrap().unwrap();
    let mut seen = String::new();

    // Open: says so, loudly.
    let (mut open, mut lines) = run_backend(&[], &db.url).await;
    line_with(&mut lines, "UNAUTHENTICATED", &mut seen).await;
    line_with(&mut lines, "listening on", &mut seen).await;
    open.kill().await.unwrap();

    // A remote todo-mcp without the service secret: refuses to start.
    let (mut refused, mut lines) =
        run_backend(&[("MCP_SERVER_URL", "http://127.0.0.1:9/mcp")], &db.url).await;
    line_with(&mut lines, "MCP_SERVICE_SECRET", &mut seen).await;
    let status = tokio::time::timeout(Duration::from_secs(30), refused.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(!status.success());

    // Authenticated: says which way, and logs neither tokens nor the secret at debug level.
    seen.clear();
    let (mut child, mut lines) = run_backend(&[("AUTH_JWT_SECRET", SECRET)], &db.url).await;
    line_with(&mut lines, "bearer tokens required", &mut seen).await;
    let line = line_with(&mut lines, "listening on http://", &mut seen).await;
    let i = line.find("http://").unwrap();
    let base = line[i..].split_whitespace().next().unwrap().to_string();
    let client = reqwest::Client::new();
    let good = hs256(SECRET, &claims("alice"));
    let forged = hs256(OTHER_SECRET, &claims("alice"));
    for t in [&good, &forged] {
        for path in ["/api/alice/tasks", "/api/bob/tasks"] {
            client
                .get(format!("{base}{path}"))
                .bearer_auth(t)
                .send()
                .await
                .unwrap();
        }
        client
            .post(format!("{base}/api/alice/chat"))
            .bearer_auth(t)
            .json(&json!({"message": "hi"}))
            .send()
            .await
            .unwrap();
    }
    // Every request was answered, so what it logged is in the pipe.
    child.kill().await.unwrap();
    while let Ok(Some(l)) = lines.next_line().await {
        seen.push_str(&l);
        seen.push('\n');
    }
    // Debug logging was really on: the refusals were logged, without what was refused.
    assert!(seen.contains("API request refused"), "{seen}");
    for secret in [
        SECRET,
        good.as_str(),
        forged.as_str(),
        good.rsplit('.').next().unwrap(),
    ] {
        assert!(!seen.contains(secret), "a secret was logged:\n{seen}");
    }
    db.cleanup().await;
}
