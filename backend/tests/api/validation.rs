use serde_json::{Value, json};
use todo_test_support::Kind;

use crate::helpers::*;

async fn expect_error(r: reqwest::Response, status: u16, code: &str) {
    crate::helpers::expect_error(r, status, code, code).await;
}

#[tokio::test]
async fn bad_requests_are_refused_before_reaching_the_llm() {
    let o = Options {
        max_message_chars: 50,
        max_body_bytes: 2_000,
        ..Options::default()
    };
    let Some(app) = spawn_app_with(Kind::Sqlite, o).await else {
        return;
    };
    app.llm_responds(Script::new(&[], "never")).await;
    let url = format!("{}/api/alice/chat", app.address);
    let raw = |body: &'static str| {
        app.client
            .post(&url)
            .header("content-type", "application/json")
            .body(body)
            .send()
    };
    expect_error(raw("{not json").await.unwrap(), 400, "malformed_body").await;
    expect_error(raw(r#"{"msg": "x"}"#).await.unwrap(), 422, "invalid_body").await;
    expect_error(raw(r#"{"message": 5}"#).await.unwrap(), 422, "invalid_body").await;
    expect_error(
        app.client.post(&url).body("hi").send().await.unwrap(),
        415,
        "unsupported_media_type",
    )
    .await;
    let cases = [
        (json!({"message": "   "}), 422, "empty_message"),
        (json!({"message": "x".repeat(51)}), 422, "message_too_long"),
        (
            json!({"message": "hi", "conversation_id": "nope"}),
            400,
            "invalid_conversation_id",
        ),
        (
            json!({"message": "hi", "timezone": "Mars/Olympus"}),
            422,
            "invalid_timezone",
        ),
        (
            json!({"message": "hi", "conversation_id": uuid::Uuid::new_v4()}),
            404,
            "not_found",
        ),
    ];
    for (body, status, code) in cases {
        expect_error(app.chat("alice", body).await, status, code).await;
    }
    let big = json!({"message": "y".repeat(3_000)});
    expect_error(app.chat("alice", big).await, 413, "body_too_large").await;
    expect_error(
        app.chat_with_key("alice", &"k".repeat(300), json!({"message": "hi"}))
            .await,
        400,
        "invalid_idempotency_key",
    )
    .await;
    expect_error(
        app.get("/api/alice/conversations/not-a-uuid/messages")
            .await,
        400,
        "invalid_conversation_id",
    )
    .await;
    expect_error(
        app.get("/api/alice/tasks?limit=0").await,
        422,
        "invalid_page",
    )
    .await;
    expect_error(
        app.get("/api/alice/tasks?status=weird").await,
        400,
        "invalid_query",
    )
    .await;
    expect_error(app.get("/nowhere").await, 404, "not_found").await;
    assert!(
        app.llm_requests().await.is_empty(),
        "a bad request reached the LLM"
    );
    app.cleanup().await;
}

#[tokio::test]
async fn without_an_llm_the_service_still_serves_and_chat_names_the_settings() {
    let o = Options {
        llm_configured: false,
        ..Options::default()
    };
    let Some(app) = spawn_app_with(Kind::Sqlite, o).await else {
        return;
    };
    // Free text is answered (not refused) with the commands and the settings to set.
    let r = app.chat("alice", json!({"message": "hi"})).await;
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.unwrap();
    assert!(
        body["response"]
            .as_str()
            .unwrap()
            .contains("OPENAI_API_KEY")
    );
    assert_eq!(app.get("/healthz").await.status(), 200);
    assert_eq!(app.get("/readyz").await.status(), 200);
    assert_eq!(app.get_json("/api/alice/tasks").await["tasks"], json!([]));
    app.cleanup().await;
}

#[tokio::test]
async fn every_tag_filter_the_openapi_document_allows_is_answered_200() {
    let Some(app) = spawn_app(todo_test_support::Kind::Sqlite).await else {
        return;
    };
    // Found by schemathesis' positive-data check: `tag=` was schema-valid but answered 422.
    for tag in ["", "%23", "home", "%23Home", "a_b-9"] {
        let r = app.get(&format!("/api/alice/tasks?tag={tag}")).await;
        assert_eq!(r.status(), 200, "tag={tag}");
    }
    let doc = app.get_json("/openapi.json").await;
    let params = doc["paths"]["/api/{user_id}/tasks"]["get"]["parameters"]
        .as_array()
        .unwrap();
    let tag = params.iter().find(|p| p["name"] == "tag").unwrap();
    assert!(tag["schema"]["pattern"].is_string(), "{tag}");
    // What the schema refuses, the handler refuses too.
    let r = app.get("/api/alice/tasks?tag=a,b").await;
    assert_eq!(r.status(), 422);
    app.cleanup().await;
}
