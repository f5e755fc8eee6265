//! The mock served in-process on port 0 and driven over HTTP, as the backend drives it.

use serde_json::{Value, json};

use super::{MockConfig, MockLlm};

const ALL_TOOLS: [&str; 6] = [
    "add_task",
    "list_tasks",
    "complete_task",
    "delete_task",
    "update_task",
    "restore_task",
];

fn tools(names: &[&str]) -> Value {
    names
        .iter()
        .map(|n| {
            json!({"type": "function", "function": {"name": n, "description": "", "parameters": {"type": "object"}}})
        })
        .collect()
}

struct Mock {
    server: MockLlm,
    http: reqwest::Client,
}

impl Mock {
    async fn start() -> Mock {
        let server = MockLlm::start(([127, 0, 0, 1], 0).into(), MockConfig::default())
            .await
            .expect("the mock binds a free port");
        Mock {
            server,
            http: reqwest::Client::new(),
        }
    }

    async fn post_raw(&self, path: &str, body: impl Into<reqwest::Body>) -> (u16, Value) {
        let r = self
            .http
            .post(format!("http://{}{path}", self.server.addr()))
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .expect("the mock answers");
        let status = r.status().as_u16();
        (status, r.json().await.expect("a JSON body"))
    }

    async fn complete(&self, messages: Value, tool_names: &[&str]) -> Value {
        let body = json!({"model": "mock-1", "messages": messages, "tools": tools(tool_names)});
        let (status, v) = self
            .post_raw("/v1/chat/completions", body.to_string())
            .await;
        assert_eq!(status, 200, "{v}");
        v
    }

    async fn stats(&self) -> Value {
        self.http
            .get(format!("http://{}/stats", self.server.addr()))
            .send()
            .await
            .expect("stats answer")
            .json()
            .await
            .expect("stats are JSON")
    }
}

fn user(text: &str) -> Value {
    json!([{"role": "system", "content": "You manage tasks."}, {"role": "user", "content": text}])
}

#[tokio::test]
async fn a_command_gets_tool_calls_in_the_real_wire_format() {
    let mock = Mock::start().await;
    let v = mock.complete(user("add milk and bread"), &ALL_TOOLS).await;
    assert!(
        v["id"].as_str().is_some_and(|s| s.starts_with("chatcmpl-")),
        "{v}"
    );
    assert_eq!(v["object"], "chat.completion");
    assert!(v["created"].is_u64());
    assert_eq!(v["model"], "mock-1");
    let choice = &v["choices"][0];
    assert_eq!(choice["index"], 0);
    assert_eq!(choice["finish_reason"], "tool_calls");
    assert_eq!(choice["message"]["role"], "assistant");
    assert!(choice["message"]["content"].is_null());
    let calls = choice["message"]["tool_calls"]
        .as_array()
        .expect("tool calls");
    assert_eq!(calls.len(), 2);
    for (call, title) in calls.iter().zip(["milk", "bread"]) {
        assert!(call["id"].as_str().is_some_and(|s| s.starts_with("call_")));
        assert_eq!(call["type"], "function");
        assert_eq!(call["function"]["name"], "add_task");
        let args = call["function"]["arguments"]
            .as_str()
            .expect("arguments are a string");
        assert_eq!(
            serde_json::from_str::<Value>(args).ok(),
            Some(json!({"title": title}))
        );
    }
    assert_ne!(calls[0]["id"], calls[1]["id"]);
    // ("You manage tasks." + "add milk and bread") = 17 + 18 characters.
    assert_eq!(v["usage"]["prompt_tokens"], 35 / 4);
    let (p, c, t) = (
        v["usage"]["prompt_tokens"].as_u64(),
        v["usage"]["completion_tokens"].as_u64(),
        v["usage"]["total_tokens"].as_u64(),
    );
    assert_eq!(p.zip(c).map(|(p, c)| p + c), t);
}

#[tokio::test]
async fn the_same_request_gets_the_same_answer() {
    let mock = Mock::start().await;
    let a = mock.complete(user("done 3"), &ALL_TOOLS).await;
    let b = mock.complete(user("done 3"), &ALL_TOOLS).await;
    assert_eq!(a["id"], b["id"]);
    assert_eq!(a["choices"], b["choices"]);
    assert_eq!(a["usage"], b["usage"]);
}

#[tokio::test]
async fn tool_results_are_summarised_as_text() {
    let mock = Mock::start().await;
    let messages = json!([
        {"role": "system", "content": "sys"},
        {"role": "user", "content": "add a and b"},
        {"role": "assistant", "content": null, "tool_calls": [
            {"id": "c1", "type": "function", "function": {"name": "add_task", "arguments": "{\"title\":\"a\"}"}},
            {"id": "c2", "type": "function", "function": {"name": "add_task", "arguments": "{\"title\":\"b\"}"}}
        ]},
        {"role": "tool", "tool_call_id": "c1", "content": "Added #1 a"},
        {"role": "tool", "tool_call_id": "c2", "content": [{"type": "text", "text": "Added #2 b"}]}
    ]);
    let v = mock.complete(messages, &ALL_TOOLS).await;
    assert_eq!(v["choices"][0]["finish_reason"], "stop");
    assert_eq!(
        v["choices"][0]["message"]["content"],
        "Done. Added #1 a; Added #2 b"
    );
    assert!(v["choices"][0]["message"].get("tool_calls").is_none());
}

#[tokio::test]
async fn other_text_is_echoed_and_missing_tools_are_named() {
    let mock = Mock::start().await;
    let v = mock.complete(user("Hello  there"), &ALL_TOOLS).await;
    assert_eq!(
        v["choices"][0]["message"]["content"],
        "You said: Hello there"
    );
    assert_eq!(v["choices"][0]["finish_reason"], "stop");

    let v = mock
        .complete(user("delete 2"), &["add_task", "list_tasks"])
        .await;
    assert_eq!(
        v["choices"][0]["message"]["content"],
        "I can't do that: the tool delete_task is not available."
    );
    // The unknown tool is called whatever is offered: that is its purpose.
    let v = mock.complete(user("unknown tool"), &[]).await;
    assert_eq!(
        v["choices"][0]["message"]["tool_calls"][0]["function"]["name"],
        "launch_rockets"
    );
}

#[tokio::test]
async fn both_paths_serve_completions_and_stats_count_and_reset() {
    let mock = Mock::start().await;
    let body = json!({"model": "m", "messages": user("list")}).to_string();
    let (s1, _) = mock.post_raw("/v1/chat/completions", body.clone()).await;
    // Without tools, list_tasks is not offered: a text answer.
    let (s2, v) = mock.post_raw("/chat/completions", body).await;
    assert_eq!((s1, s2), (200, 200));
    assert_eq!(v["choices"][0]["finish_reason"], "stop");
    let (s3, _) = mock.post_raw("/v1/chat/completions", "{").await;
    assert_eq!(s3, 400);
    let stats = mock.stats().await;
    assert_eq!(stats["requests"], 3);
    assert_eq!(stats["rejected"], 1);
    let (status, after) = mock.post_raw("/reset", "").await;
    assert_eq!(status, 200);
    assert_eq!(after["requests"], 0);
    assert_eq!(mock.stats().await["requests"], 0);
}

#[tokio::test]
async fn malformed_requests_get_openai_style_400s() {
    let mock = Mock::start().await;
    let cases: Vec<(&str, String, Option<&str>)> = vec![
        ("not JSON", "{\"model\":".into(), None),
        ("no messages", json!({"model": "m"}).to_string(), None),
        ("no model", json!({"messages": user("hi")}).to_string(), None),
        ("empty messages", json!({"model": "m", "messages": []}).to_string(), Some("messages")),
        (
            "unknown role",
            json!({"model": "m", "messages": [{"role": "robot", "content": "x"}]}).to_string(),
            None,
        ),
        (
            "stream options without a stream",
            json!({"model": "m", "messages": user("hi"), "stream_options": {"include_usage": true}}).to_string(),
            Some("stream_options"),
        ),
        (
            "an unanswered tool call",
            json!({"model": "m", "messages": [
                {"role": "user", "content": "add a"},
                {"role": "assistant", "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "add_task", "arguments": "{}"}}]},
                {"role": "user", "content": "and?"}
            ]})
            .to_string(),
            Some("messages"),
        ),
        (
            "an orphan tool message",
            json!({"model": "m", "messages": [
                {"role": "user", "content": "hi"},
                {"role": "tool", "tool_call_id": "c9", "content": "x"}
            ]})
            .to_string(),
            Some("messages"),
        ),
    ];
    for (case, body, param) in cases {
        let (status, v) = mock.post_raw("/v1/chat/completions", body).await;
        assert_eq!(status, 400, "{case}: {v}");
        let e = &v["error"];
        assert!(
            e["message"].as_str().is_some_and(|m| !m.is_empty()),
            "{case}: {v}"
        );
        assert_eq!(e["type"], "invalid_request_error", "{case}");
        assert_eq!(e["param"].as_str(), param, "{case}");
        assert!(e["code"].is_null(), "{case}");
    }
}

#[tokio::test]
async fn injected_failures_come_after_the_skipped_requests_and_then_stop() {
    let mock = Mock::start().await;
    let (status, plan) = mock
        .post_raw(
            "/faults",
            json!({"skip": 1, "count": 2, "status": 503, "retry_after": "1"}).to_string(),
        )
        .await;
    assert_eq!(status, 200, "{plan}");
    assert_eq!(plan["count"], 2);
    let body = json!({"model": "m", "messages": user("hi")}).to_string();
    let mut seen = Vec::new();
    for _ in 0..4 {
        let r = mock
            .http
            .post(format!("http://{}/v1/chat/completions", mock.server.addr()))
            .body(body.clone())
            .send()
            .await
            .expect("the mock answers");
        let retry_after = r
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        seen.push((r.status().as_u16(), retry_after));
    }
    assert_eq!(
        seen,
        [
            (200, None),
            (503, Some("1".into())),
            (503, Some("1".into())),
            (200, None)
        ]
    );
    let stats = mock.stats().await;
    assert_eq!(
        (
            stats["requests"].as_u64(),
            stats["injected_failures"].as_u64()
        ),
        (Some(4), Some(2))
    );

    let (status, v) = mock
        .post_raw("/faults", json!({"count": 1, "status": 200}).to_string())
        .await;
    assert_eq!(status, 400, "{v}");
    let (status, _) = mock
        .post_raw("/faults", json!({"count": 5}).to_string())
        .await;
    assert_eq!(status, 200);
    mock.post_raw("/reset", "").await;
    let (status, _) = mock.post_raw("/v1/chat/completions", body).await;
    assert_eq!(status, 200, "reset clears the faults");
}

#[tokio::test]
async fn a_streamed_request_gets_chunks_that_add_up_to_the_plain_answer() {
    let mock = Mock::start().await;
    let plain = mock.complete(user("add buy milk"), &["add_task"]).await;
    let body = json!({"model": "mock-1", "messages": user("add buy milk"), "tools": tools(&["add_task"]),
                      "stream": true, "stream_options": {"include_usage": true}});
    let r = mock
        .http
        .post(format!("http://{}/v1/chat/completions", mock.server.addr()))
        .json(&body)
        .send()
        .await
        .expect("the mock answers");
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "text/event-stream");
    let text = r.text().await.expect("a body");
    let data: Vec<&str> = text
        .split("\n\n")
        .filter_map(|e| e.strip_prefix("data: "))
        .collect();
    assert_eq!(data.last(), Some(&"[DONE]"));
    let chunks: Vec<Value> = data[..data.len() - 1]
        .iter()
        .map(|d| serde_json::from_str(d).expect("a JSON chunk"))
        .collect();
    let args: String = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["tool_calls"][0]["function"]["arguments"].as_str())
        .collect();
    let want = &plain["choices"][0]["message"]["tool_calls"][0];
    assert_eq!(
        args,
        want["function"]["arguments"].as_str().expect("arguments")
    );
    // Ids derive from the request, which differs by its `stream` flag.
    assert!(
        chunks[1]["choices"][0]["delta"]["tool_calls"][0]["id"]
            .as_str()
            .is_some_and(|id| id.starts_with("call_"))
    );
    assert_eq!(chunks.last().expect("chunks")["usage"], plain["usage"]);
}
