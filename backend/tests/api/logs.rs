//! Plain-text logs stay one line per event whatever the model or the network says: the real
//! binary, logging in its default plain format, meets a model that names tools and fills
//! arguments with line breaks, ANSI escape sequences and forged log lines, and a provider
//! whose mid-stream error message carries the same. Every line it writes is one of its own
//! events, with those strings escaped.

use serde_json::{Value, json};
use todo_test_support::{Kind, TestDb};
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

use crate::helpers::*;
use crate::limits::{line_with, run_backend};

/// A line that, written raw, would pass for one of the service's own log lines.
const FORGED: &str = "\n2026-01-01T00:00:00.000000Z  INFO FORGED admin logged in\x1b[31m";

/// Every character that must not reach a log line raw, behind a plain prefix.
fn hostile(prefix: &str) -> String {
    format!("{prefix}{FORGED}\r\x1b[2K\u{202e}reversed\u{2028}next")
}

fn model(req: &Request) -> ResponseTemplate {
    let body: Value = req.body_json().unwrap_or(Value::Null);
    if body["stream"] == true {
        let chunk = json!({"error": {"message": hostile("provider overloaded")}});
        return ResponseTemplate::new(200)
            .set_body_raw(format!("data: {chunk}\n\n"), "text/event-stream");
    }
    let last = body["messages"]
        .as_array()
        .and_then(|m| m.last())
        .map(|m| m["role"].clone());
    if last == Some(json!("tool")) {
        return ResponseTemplate::new(200).set_body_json(text_reply("Done."));
    }
    let name = hostile("list_tasks");
    let args =
        json!({ "title": hostile("Milk"), hostile("key").as_str(): hostile("value") }).to_string();
    ResponseTemplate::new(200).set_body_json(tool_reply(&[
        ("c1", name.as_str(), "{}"),
        ("c2", "add_task", args.as_str()),
        ("c3", "list_tasks", args.as_str()),
    ]))
}

/// A line as the plain formatter starts one: `2026-12-01T18:00:00.123456Z  INFO …`.
fn starts_like_a_log_line(line: &str) -> bool {
    let b = line.as_bytes();
    b.len() > 28
        && b[..4].iter().all(u8::is_ascii_digit)
        && b[4] == b'-'
        && b[10] == b'T'
        && line.contains('Z')
}

#[tokio::test]
async fn model_and_provider_strings_are_escaped_in_plain_text_logs() {
    let db = TestDb::new(Kind::Sqlite).await.unwrap().unwrap();
    let llm = MockServer::start().await;
    Mock::given(wiremock::matchers::method("POST"))
        .respond_with(model)
        .mount(&llm)
        .await;
    let base_url = format!("{}/v1", llm.uri());
    let (mut child, mut lines) = run_backend(
        &[
            ("OPENAI_BASE_URL", base_url.as_str()),
            ("OPENAI_API_KEY", "sk-test"),
            ("LLM_MODEL", "test-model"),
            ("LLM_MAX_RETRIES", "0"),
            ("AGENT_COMPOSE_CONFIRMATIONS", "false"),
        ],
        &db.url,
    )
    .await;
    let mut seen = String::new();
    let line = line_with(&mut lines, "listening on http://", &mut seen).await;
    let i = line.find("http://").unwrap();
    let base = line[i..].split_whitespace().next().unwrap().to_string();
    let client = reqwest::Client::new();

    let r = client
        .post(format!("{base}/api/alice/chat"))
        .json(&json!({"message": "add milk"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.unwrap();
    let calls = body["tool_calls"].as_array().unwrap();
    assert_eq!(calls.len(), 3, "{body}");
    assert!(calls.iter().all(|c| c["is_error"] == true), "{body}");

    let streamed = client
        .post(format!("{base}/api/alice/chat"))
        .header("accept", "text/event-stream")
        .json(&json!({"message": "and bread"}))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(streamed.contains("event: error"), "{streamed}");

    // Both turns were answered, so everything they logged is in the pipe.
    child.kill().await.unwrap();
    while let Ok(Some(l)) = lines.next_line().await {
        seen.push_str(&l);
        seen.push('\n');
    }
    // The hostile strings were logged (so this test can fail), escaped, inside real events.
    let escaped = "\\n2026-01-01T00:00:00.000000Z  INFO FORGED admin logged in\\u{1b}[31m\\r\
                   \\u{1b}[2K\\u{202e}reversed\\u{2028}next";
    let requested = seen
        .lines()
        .find(|l| l.contains("does not exist"))
        .unwrap_or_else(|| panic!("the unknown tool was not logged:\n{seen}"));
    assert!(
        requested.contains(&format!("requested=list_tasks{escaped}")),
        "{requested}"
    );
    let provider = seen
        .lines()
        .find(|l| l.contains("failed mid-stream"))
        .unwrap_or_else(|| panic!("the provider's error was not logged:\n{seen}"));
    assert!(
        provider.contains(&format!("provider overloaded{escaped}")),
        "{provider}"
    );
    for line in seen.lines() {
        assert!(
            starts_like_a_log_line(line) && !line.starts_with("2026-01-01T00:00:00"),
            "a line that is not one of the service's events:\n{line:?}\nin:\n{seen}"
        );
        assert!(
            !line.contains(['\x1b', '\r', '\u{202e}', '\u{2028}']),
            "a raw control character: {line:?}"
        );
    }
    // Arguments (task titles: personal data) are not logged at all, not even escaped.
    assert!(!seen.contains("Milk"), "{seen}");
    db.cleanup().await;
}
