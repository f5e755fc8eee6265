use std::time::Duration;

use serde_json::{Value, json};
use todo_test_support::Kind;
use wiremock::Mock;
use wiremock::ResponseTemplate;
use wiremock::matchers::{method, path};

use crate::helpers::*;

async fn mount_sequence(app: &TestApp, first: Vec<ResponseTemplate>, then: ResponseTemplate) {
    for (i, r) in first.into_iter().enumerate() {
        Mock::given(method("POST"))
            .and(path("/v1/chat/completions"))
            .respond_with(r)
            .up_to_n_times(1)
            .with_priority(1 + i as u8)
            .mount(&app.llm)
            .await;
    }
    Mock::given(method("POST"))
        .and(path("/v1/chat/completions"))
        .respond_with(then)
        .with_priority(100)
        .mount(&app.llm)
        .await;
}

fn api_error(status: u16, msg: &str) -> ResponseTemplate {
    ResponseTemplate::new(status).set_body_json(
        json!({"error": {"message": msg, "type": "server_error", "param": null, "code": null}}),
    )
}

#[tokio::test]
async fn server_errors_and_rate_limits_are_retried_honouring_retry_after() {
    let Some(app) = spawn_app(Kind::Sqlite).await else {
        return;
    };
    mount_sequence(
        &app,
        vec![
            api_error(500, "boom"),
            api_error(429, "slow down").insert_header("Retry-After", "1"),
        ],
        ResponseTemplate::new(200).set_body_json(text_reply("Hello!")),
    )
    .await;
    let started = std::time::Instant::now();
    let r = app.chat("alice", json!({"message": "hi"})).await;
    assert_eq!(r.status(), 200);
    assert!(
        started.elapsed() >= Duration::from_millis(900),
        "Retry-After: 1 was not honoured"
    );
    assert_eq!(app.llm_requests().await.len(), 3);
    app.cleanup().await;
}

#[tokio::test]
async fn an_http_date_retry_after_is_honoured_too() {
    let Some(app) = spawn_app(Kind::Sqlite).await else {
        return;
    };
    let at = (chrono::Utc::now() + chrono::Duration::seconds(2))
        .format("%a, %d %b %Y %H:%M:%S GMT")
        .to_string();
    mount_sequence(
        &app,
        vec![api_error(503, "busy").insert_header("Retry-After", at.as_str())],
        ResponseTemplate::new(200).set_body_json(text_reply("Hello!")),
    )
    .await;
    let started = std::time::Instant::now();
    assert_eq!(
        app.chat("alice", json!({"message": "hi"})).await.status(),
        200
    );
    assert!(started.elapsed() >= Duration::from_millis(900));
    app.cleanup().await;
}

#[tokio::test]
async fn client_errors_from_the_llm_are_not_retried_and_keep_the_message() {
    for (status, code) in [
        (400, "llm_rejected"),
        (401, "llm_rejected"),
        (403, "llm_rejected"),
    ] {
        let Some(app) = spawn_app(Kind::Sqlite).await else {
            return;
        };
        mount_sequence(
            &app,
            vec![],
            api_error(status, "Incorrect API key provided: sk-test-secret"),
        )
        .await;
        let r = app.chat("alice", json!({"message": "remember this"})).await;
        assert_eq!(r.status(), 502, "LLM {status}");
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["error"]["code"], code);
        let text = body.to_string();
        assert!(!text.contains("sk-test"), "secret leaked: {text}");
        assert_eq!(
            app.llm_requests().await.len(),
            1,
            "LLM {status} must not be retried"
        );
        // The person's message is kept; the conversation stays usable.
        let (conv, msgs) = app.listed_conversation_messages("alice").await;
        assert_eq!(msgs["messages"][0]["content"], "remember this");
        app.llm.reset().await;
        app.llm_responds(Script::new(&[], "Back again.")).await;
        let r = app
            .chat(
                "alice",
                json!({"message": "again", "conversation_id": conv}),
            )
            .await;
        assert_eq!(r.status(), 200);
        let reqs = app.llm_requests().await;
        assert_valid_sequence(&reqs[0]["messages"]);
        let contents: Vec<&str> = reqs[0]["messages"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|m| m["role"] == "user")
            .map(|m| m["content"].as_str().unwrap())
            .collect();
        assert_eq!(contents.len(), 2, "{contents:?}");
        assert_eq!(contents[0], "remember this");
        // The latest message carries the turn's context block before the person's words.
        assert!(contents[1].ends_with("\nagain"), "{contents:?}");
        app.cleanup().await;
    }
}

#[tokio::test]
async fn persistent_server_errors_end_in_a_502_after_bounded_retries() {
    let Some(app) = spawn_app(Kind::Sqlite).await else {
        return;
    };
    mount_sequence(&app, vec![], api_error(500, "down")).await;
    let r = app.chat("alice", json!({"message": "hi"})).await;
    assert_eq!(r.status(), 502);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], "llm_unavailable");
    assert_eq!(
        app.llm_requests().await.len(),
        3,
        "one attempt and two retries"
    );
    app.cleanup().await;
}

#[tokio::test]
async fn a_persistent_rate_limit_is_a_503_with_retry_after() {
    let Some(app) = spawn_app(Kind::Sqlite).await else {
        return;
    };
    mount_sequence(
        &app,
        vec![],
        api_error(429, "quota").insert_header("Retry-After", "600"),
    )
    .await;
    let r = app.chat("alice", json!({"message": "hi"})).await;
    assert_eq!(r.status(), 503);
    assert!(r.headers().get("retry-after").is_some());
    // A Retry-After longer than we may wait is not waited for.
    assert_eq!(app.llm_requests().await.len(), 1);
    app.cleanup().await;
}

#[tokio::test]
async fn a_hanging_llm_ends_the_turn_with_a_504() {
    let o = Options {
        limits: todo_backend::agent::TurnLimits {
            turn_timeout: Duration::from_millis(1500),
            ..Default::default()
        },
        max_retries: 0,
        ..Options::default()
    };
    let Some(app) = spawn_app_with(Kind::Sqlite, o).await else {
        return;
    };
    mount_sequence(
        &app,
        vec![],
        ResponseTemplate::new(200)
            .set_body_json(text_reply("late"))
            .set_delay(Duration::from_secs(4)),
    )
    .await;
    let r = app.chat("alice", json!({"message": "hi"})).await;
    assert_eq!(r.status(), 504);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], "llm_timeout");
    app.cleanup().await;
}

#[tokio::test]
async fn a_connection_failure_is_retried_then_a_502() {
    let Some(app) = spawn_app(Kind::Sqlite).await else {
        return;
    };
    // Nothing listens where the mock was.
    let uri = app.llm.uri();
    drop(uri);
    let o = Options::default();
    drop(o);
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dead = listener.local_addr().unwrap();
    drop(listener);
    let db = todo_test_support::TestDb::new(Kind::Sqlite)
        .await
        .unwrap()
        .unwrap();
    let settings = todo_backend::config::Settings {
        db: Default::default(),
        database_url: Some(db.url.clone()),
        llm: Some(todo_backend::agent::llm::LlmConfig {
            base_url: format!("http://{dead}/v1"),
            api_key: "k".into(),
            model: "m".into(),
            max_tokens: 10,
            request_timeout: Duration::from_secs(2),
            max_retries: 1,
            max_retry_wait: Duration::from_secs(1),
            sampling: Default::default(),
        }),
        mcp_server_url: None,
        prompt: "p".into(),
        limits: Default::default(),
        max_message_chars: 100,
        max_body_bytes: 10_000,
        access: Default::default(),
        prices: Default::default(),
        retention: Default::default(),
    };
    let state = todo_backend::app::build_state(&settings).await.unwrap();
    let err = state
        .agent
        .run(todo_backend::agent::TurnRequest {
            user: "alice".into(),
            conversation_id: None,
            message: "hi".into(),
            timezone: chrono_tz::UTC,
            resume: false,
            on_stored: None,
        })
        .await
        .unwrap_err();
    let api: todo_backend::error::ApiError = err.into();
    assert_eq!(api.status, 502);
    assert_eq!(api.code, "llm_unavailable");
    db.cleanup().await;
    app.cleanup().await;
}

#[tokio::test]
async fn concurrent_turns_on_one_conversation_never_interleave() {
    let Some(app) = spawn_app(Kind::Sqlite).await else {
        return;
    };
    app.llm_responds(Script::new(&[], "ok")).await;
    let first: Value = app
        .chat("alice", json!({"message": "start"}))
        .await
        .json()
        .await
        .unwrap();
    let conv = first["conversation_id"].as_str().unwrap().to_string();
    app.llm.reset().await;
    Mock::given(method("POST"))
        .and(path("/v1/chat/completions"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(text_reply("slow"))
                .set_delay(Duration::from_millis(2000)),
        )
        .mount(&app.llm)
        .await;
    let (a, b) = tokio::join!(
        app.chat("alice", json!({"message": "one", "conversation_id": conv})),
        app.chat("alice", json!({"message": "two", "conversation_id": conv})),
    );
    let mut statuses = [a.status().as_u16(), b.status().as_u16()];
    statuses.sort();
    assert_eq!(statuses, [200, 409]);
    let loser = if a.status() == 409 { a } else { b };
    assert!(loser.headers().get("retry-after").is_some());
    let body: Value = loser.json().await.unwrap();
    assert_eq!(body["error"]["code"], "conversation_busy");
    // Once the first is done the conversation takes turns again.
    let r = app
        .chat(
            "alice",
            json!({"message": "three", "conversation_id": conv}),
        )
        .await;
    assert_eq!(r.status(), 200);
    let msgs = app
        .get_json(&format!("/api/alice/conversations/{conv}/messages"))
        .await;
    let roles = stored_roles(&msgs);
    assert_eq!(
        roles,
        [
            "user",
            "assistant",
            "user",
            "assistant",
            "user",
            "assistant"
        ]
    );
    app.cleanup().await;
}

#[tokio::test]
async fn an_idempotent_retry_never_runs_the_llm_or_a_tool_twice() {
    let Some(app) = spawn_app(Kind::Sqlite).await else {
        return;
    };
    app.llm_responds(Script::new(
        &[("c1", "add_task", r#"{"title":"Milk"}"#)],
        "Added.",
    ))
    .await;
    let body = json!({"message": "add milk"});
    let a = app.chat_with_key("alice", "key-1", body.clone()).await;
    assert_eq!(a.status(), 200);
    assert!(a.headers().get("idempotent-replayed").is_none());
    let a: Value = a.json().await.unwrap();
    let b = app.chat_with_key("alice", "key-1", body.clone()).await;
    assert_eq!(b.status(), 200);
    assert_eq!(b.headers()["idempotent-replayed"], "true");
    let b: Value = b.json().await.unwrap();
    assert_eq!(a, b);
    assert_eq!(
        app.llm_requests().await.len(),
        2,
        "the replay called the LLM"
    );
    assert_eq!(
        app.get_json("/api/alice/tasks").await["tasks"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    // The same key with another body is refused; keys are per user.
    let c = app
        .chat_with_key("alice", "key-1", json!({"message": "add bread"}))
        .await;
    assert_eq!(c.status(), 422);
    let c: Value = c.json().await.unwrap();
    assert_eq!(c["error"]["code"], "idempotency_key_reused");
    let d = app
        .chat_with_key("bob", "key-1", json!({"message": "add bread"}))
        .await;
    assert_eq!(d.status(), 200);
    app.cleanup().await;
}

#[tokio::test]
async fn a_retry_after_a_failed_turn_finishes_it_without_repeating_the_message_or_tools() {
    let Some(app) = spawn_app(Kind::Sqlite).await else {
        return;
    };
    // Round 1 calls a tool; round 2 fails for good; the retry must not re-run the tool.
    mount_sequence(
        &app,
        vec![ResponseTemplate::new(200).set_body_json(tool_reply(&[(
            "c1",
            "add_task",
            r#"{"title":"Milk"}"#,
        )]))],
        api_error(500, "down"),
    )
    .await;
    let body = json!({"message": "add milk"});
    let r = app.chat_with_key("alice", "k", body.clone()).await;
    assert_eq!(r.status(), 502);
    app.llm.reset().await;
    app.llm_responds(Script::new(&[], "Added milk.")).await;
    let r = app.chat_with_key("alice", "k", body.clone()).await;
    assert_eq!(r.status(), 200);
    let answer: Value = r.json().await.unwrap();
    assert_eq!(answer["response"], "Added milk.");
    assert_eq!(
        app.get_json("/api/alice/tasks").await["tasks"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    let conv = answer["conversation_id"].as_str().unwrap();
    let msgs = app
        .get_json(&format!("/api/alice/conversations/{conv}/messages"))
        .await;
    let roles = stored_roles(&msgs);
    assert_eq!(roles, ["user", "assistant", "tool", "assistant"]);
    app.cleanup().await;
}

/// A completion stopped by `max_tokens`: `finish_reason: "length"`.
fn cut_off(message: Value) -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(json!({
        "id": "chatcmpl-cut", "object": "chat.completion", "created": 1_790_000_000, "model": "test-model",
        "choices": [{"index": 0, "message": message, "finish_reason": "length"}],
        "usage": {"prompt_tokens": 100, "completion_tokens": 512, "total_tokens": 612}
    }))
}

#[tokio::test]
async fn a_reply_cut_off_by_the_token_limit_is_a_502_and_is_neither_stored_nor_run() {
    for (case, message) in [
        (
            "text",
            json!({"role": "assistant", "content": "You have three tasks: buy milk, call"}),
        ),
        (
            "a tool call",
            json!({"role": "assistant", "content": null, "tool_calls": [{"id": "c1", "type": "function",
                   "function": {"name": "add_task", "arguments": "{\"title\": \"Buy mi"}}]}),
        ),
    ] {
        let Some(app) = spawn_app(Kind::Sqlite).await else {
            return;
        };
        mount_sequence(
            &app,
            vec![cut_off(message)],
            ResponseTemplate::new(200).set_body_json(text_reply("All done.")),
        )
        .await;
        let r = app.chat("alice", json!({"message": "what's left?"})).await;
        assert_eq!(r.status(), 502, "{case}");
        let body: Value = r.json().await.unwrap();
        assert_eq!(
            body["error"]["code"], "llm_reply_truncated",
            "{case}: {body}"
        );
        assert!(
            body["error"]["message"]
                .as_str()
                .unwrap()
                .contains("LLM_MAX_TOKENS"),
            "{case}: {body}"
        );
        // Not retried: the same request would be cut off the same way.
        assert_eq!(app.llm_requests().await.len(), 1, "{case}");
        // Nothing of the cut-off reply is stored or run; the person's message is kept.
        let (conv, msgs) = app.listed_conversation_messages("alice").await;
        let roles = stored_roles(&msgs);
        assert_eq!(roles, ["user"], "{case}: {msgs}");
        assert!(app.audit().await.is_empty(), "{case}: a tool ran");
        assert_eq!(
            app.get_json("/api/alice/tasks").await["tasks"],
            json!([]),
            "{case}"
        );
        let metrics = app.get("/metrics").await.text().await.unwrap();
        assert!(
            metrics.contains(r#"llm_requests_total{model="test-model",outcome="truncated"} 1"#),
            "{case}: {metrics}"
        );
        // The conversation goes on: the next turn sees a valid history.
        let r = app
            .chat(
                "alice",
                json!({"message": "again", "conversation_id": conv}),
            )
            .await;
        assert_eq!(r.status(), 200, "{case}");
        let reqs = app.llm_requests().await;
        assert_valid_sequence(&reqs[1]["messages"]);
        app.cleanup().await;
    }
}
