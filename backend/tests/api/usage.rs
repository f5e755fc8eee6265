//! Token usage and cost: stored per model call with the assistant message, summed per turn
//! in the answer, per day and per conversation at `GET /api/{user_id}/usage`, counted in
//! the metrics, and priced with `LLM_PRICES`.

use serde_json::{Value, json};
use todo_test_support::Kind;
use wiremock::{Request, Respond, ResponseTemplate};

use crate::helpers::{Options, TestApp, spawn_app, spawn_app_with};

/// A tool round (1000 prompt tokens, 400 of them cached, 50 completion), then an answer
/// (1200 prompt, 1000 cached, 20 completion).
struct Cached;

impl Respond for Cached {
    fn respond(&self, req: &Request) -> ResponseTemplate {
        let body: Value = req.body_json().unwrap_or(Value::Null);
        let last_role = body["messages"]
            .as_array()
            .and_then(|m| m.last())
            .map(|m| m["role"].clone())
            .unwrap_or(Value::Null);
        let (message, finish, p, c, k) = if last_role == "tool" {
            (
                json!({"role": "assistant", "content": "Added."}),
                "stop",
                1200,
                1000,
                20,
            )
        } else {
            (
                json!({"role": "assistant", "content": null, "tool_calls": [
                    {"id": "a1", "type": "function", "function": {"name": "add_task", "arguments": "{\"title\":\"Buy milk\"}"}}
                ]}),
                "tool_calls",
                1000,
                400,
                50,
            )
        };
        ResponseTemplate::new(200).set_body_json(json!({
            "id": "x", "object": "chat.completion", "created": 1_790_000_000, "model": "test-model",
            "choices": [{"index": 0, "message": message, "finish_reason": finish}],
            "usage": {"prompt_tokens": p, "completion_tokens": k, "total_tokens": p + k,
                      "prompt_tokens_details": {"cached_tokens": c}}
        }))
    }
}

async fn chat(app: &TestApp, user: &str, body: Value) -> Value {
    let r = app.chat(user, body).await;
    assert_eq!(r.status(), 200);
    r.json().await.unwrap()
}

fn today() -> String {
    chrono::Utc::now().date_naive().to_string()
}

async fn priced_app(kind: Kind) -> Option<TestApp> {
    spawn_app_with(
        kind,
        Options {
            // input 2, output 8, cached input 1 per million tokens.
            prices: "test-model=2:8:1".into(),
            ..Options::default()
        },
    )
    .await
}

async fn usage_is_stored_summed_and_priced(app: TestApp) {
    app.llm_responds(Cached).await;
    let a = chat(&app, "alice", json!({"message": "add milk"})).await;
    let expected_turn = json!({
        "model_calls": 2,
        "prompt_tokens": 2200,
        "cached_prompt_tokens": 1400,
        "completion_tokens": 70,
        // (600 + 200) × 2 + 1400 × 1 + 70 × 8, per million.
        "cost": 0.00356,
    });
    assert_eq!(a["usage"], expected_turn, "{a}");
    let conv = a["conversation_id"].as_str().unwrap().to_string();
    // The same conversation again, and a second conversation.
    chat(
        &app,
        "alice",
        json!({"message": "again", "conversation_id": conv}),
    )
    .await;
    let b = chat(&app, "alice", json!({"message": "other"})).await;
    let conv_b = b["conversation_id"].as_str().unwrap().to_string();
    // Another person's turn never counts for Alice.
    chat(&app, "bob", json!({"message": "add milk"})).await;

    // Each model call is stored with its assistant message.
    let msgs = app
        .get_json(&format!("/api/alice/conversations/{conv}/messages"))
        .await;
    let assistant: Vec<&Value> = msgs["messages"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["role"] == "assistant")
        .collect();
    assert_eq!(assistant.len(), 4);
    assert_eq!(assistant[0]["prompt_tokens"], 1000);
    assert_eq!(assistant[0]["cached_prompt_tokens"], 400);
    assert_eq!(assistant[0]["completion_tokens"], 50);
    assert_eq!(assistant[0]["model"], "test-model");
    assert_eq!(assistant[1]["cached_prompt_tokens"], 1000);

    let day = today();
    let u = app.get_json("/api/alice/usage").await;
    assert_eq!(u["to"], json!(day));
    assert_eq!(u["days"].as_array().unwrap().len(), 1, "{u}");
    let d = &u["days"][0];
    assert_eq!(d["date"], json!(day));
    assert_eq!(d["model"], "test-model");
    assert_eq!(d["model_calls"], 6);
    assert_eq!(d["prompt_tokens"], 6600);
    assert_eq!(d["cached_prompt_tokens"], 4200);
    assert_eq!(d["completion_tokens"], 210);
    assert_eq!(d["cost"], json!(0.01068));
    assert_eq!(u["total"]["prompt_tokens"], 6600);
    assert_eq!(u["total"]["cost"], json!(0.01068));
    let convs = u["conversations"].as_array().unwrap();
    assert_eq!(convs.len(), 2);
    assert_eq!(
        convs[0]["conversation_id"],
        json!(conv),
        "most tokens first"
    );
    assert_eq!(convs[0]["prompt_tokens"], 4400);
    assert_eq!(convs[1]["conversation_id"], json!(conv_b));
    assert_eq!(convs[1]["model_calls"], 2);

    // One conversation only.
    let one = app
        .get_json(&format!("/api/alice/usage?conversation_id={conv_b}"))
        .await;
    assert_eq!(one["total"]["prompt_tokens"], 2200);
    assert_eq!(one["conversations"].as_array().unwrap().len(), 1);

    // A range without model calls.
    let old = app
        .get_json("/api/alice/usage?from=2020-01-01&to=2020-01-31")
        .await;
    assert_eq!(old["days"], json!([]));
    assert_eq!(old["conversations"], json!([]));
    assert_eq!(old["total"]["model_calls"], 0);
    assert_eq!(old["total"]["prompt_tokens"], 0);
    assert!(old["total"].get("cost").is_none(), "no calls, no cost");

    // Metrics count tokens by model and kind.
    let metrics = app.get("/metrics").await.text().await.unwrap();
    for needle in [
        r#"llm_tokens_total{model="test-model",kind="prompt"} 8800"#,
        r#"llm_tokens_total{model="test-model",kind="cached_prompt"} 5600"#,
        r#"llm_tokens_total{model="test-model",kind="completion"} 280"#,
    ] {
        assert!(metrics.contains(needle), "missing {needle}");
    }
    app.cleanup().await;
}

async fn usage_is_stored_summed_and_priced_on(kind: Kind) {
    if let Some(app) = priced_app(kind).await {
        usage_is_stored_summed_and_priced(app).await;
    }
}

todo_test_support::on_both_databases!(usage_is_stored_summed_and_priced_on);

#[tokio::test]
async fn without_prices_or_cached_counts_usage_has_tokens_and_no_cost() {
    let Some(app) = spawn_app(Kind::Sqlite).await else {
        return;
    };
    // The plain helpers' replies report no prompt_tokens_details.
    app.llm_responds(crate::helpers::Script::new(&[], "Hi."))
        .await;
    let a = chat(&app, "alice", json!({"message": "hi"})).await;
    assert_eq!(
        a["usage"],
        json!({"model_calls": 1, "prompt_tokens": 100, "cached_prompt_tokens": 0, "completion_tokens": 10})
    );
    let u = app.get_json("/api/alice/usage").await;
    assert_eq!(u["total"]["prompt_tokens"], 100);
    assert!(u["total"].get("cost").is_none(), "{u}");
    app.cleanup().await;
}

#[tokio::test]
async fn usage_queries_are_validated() {
    let Some(app) = spawn_app(Kind::Sqlite).await else {
        return;
    };
    let other = uuid::Uuid::now_v7();
    for (query, status, code) in [
        ("from=yesterday", 422, "invalid_range"),
        ("to=2026-13-01", 422, "invalid_range"),
        ("conversation_id=nope", 400, "invalid_conversation_id"),
        (
            &format!("conversation_id={other}") as &str,
            404,
            "not_found",
        ),
    ] {
        let r = app.get(&format!("/api/alice/usage?{query}")).await;
        let got = r.status().as_u16();
        let body: Value = r.json().await.unwrap();
        assert_eq!(got, status, "{query}: {body}");
        assert_eq!(body["error"]["code"], code, "{query}: {body}");
    }
    // Every schema-valid range is answered (the API fuzzer's positive-data check): a long
    // one, one with only `from`, and one that ends before it starts, which is empty.
    for query in [
        "from=2000-01-01&to=2026-01-01",
        "from=2000-01-01",
        "from=2026-12-02&to=2026-12-01",
    ] {
        let r = app.get(&format!("/api/alice/usage?{query}")).await;
        assert_eq!(r.status(), 200, "{query}");
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["total"]["model_calls"], 0, "{query}: {body}");
    }
    app.cleanup().await;
}
