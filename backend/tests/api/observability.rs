use serde_json::json;
use todo_test_support::Kind;

use crate::helpers::*;

#[tokio::test]
async fn request_ids_are_kept_when_sane_and_made_otherwise() {
    let Some(app) = spawn_app(Kind::Sqlite).await else {
        return;
    };
    let url = format!("{}/api/alice/tasks", app.address);
    let r = app
        .client
        .get(&url)
        .header("x-request-id", "abc-123")
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["x-request-id"], "abc-123");
    let r = app
        .client
        .get(&url)
        .header("x-request-id", "bad id\twith tab")
        .send()
        .await
        .unwrap();
    let made = r.headers()["x-request-id"].to_str().unwrap().to_string();
    assert!(uuid::Uuid::parse_str(&made).is_ok(), "{made}");
    let r = app.client.get(&url).send().await.unwrap();
    let other = r.headers()["x-request-id"].to_str().unwrap().to_string();
    assert_ne!(made, other);
    app.cleanup().await;
}

#[tokio::test]
async fn metrics_count_requests_model_calls_tools_and_turns_without_user_ids() {
    let Some(app) = spawn_app(Kind::Sqlite).await else {
        return;
    };
    app.llm_responds(Script::new(
        &[
            ("c1", "add_task", r#"{"title":"Milk"}"#),
            ("c2", "complete_task", r#"{"id":42}"#),
        ],
        "Done.",
    ))
    .await;
    let user = "user-7f3a9c";
    assert_eq!(
        app.chat(user, json!({"message": "add milk"}))
            .await
            .status(),
        200
    );
    let r = app.get("/metrics").await;
    assert_eq!(r.status(), 200);
    assert!(
        r.headers()["content-type"]
            .to_str()
            .unwrap()
            .contains("openmetrics-text")
    );
    let text = r.text().await.unwrap();
    for needle in [
        r#"http_requests_total{route="/api/{user_id}/chat",method="POST",status="200"} 1"#,
        r#"llm_requests_total{model="test-model",outcome="ok"} 2"#,
        r#"llm_tokens_total{model="test-model",kind="prompt"} 220"#,
        r#"llm_tokens_total{model="test-model",kind="completion"} 30"#,
        r#"tool_calls_total{tool="add_task",outcome="ok"} 1"#,
        r#"tool_calls_total{tool="complete_task",outcome="error"} 1"#,
        r#"chat_turns_total{outcome="ok"} 1"#,
        "db_pool_connections{state=\"idle\"}",
        "http_request_duration_seconds_bucket",
        "tool_call_duration_seconds_count",
    ] {
        assert!(text.contains(needle), "missing {needle} in\n{text}");
    }
    assert!(!text.contains(user), "a user id reached the metrics");
    app.cleanup().await;
}
