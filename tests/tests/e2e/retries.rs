//! Retries: Idempotency-Key replays and resumes, and a failing model.

use serde_json::json;

use crate::checks::{assert_call, assert_history, titles};
use crate::support::Stack;

#[tokio::test]
async fn an_idempotency_key_replays_the_answer_without_calling_the_model_again() {
    let s = Stack::start(1).await;
    let b = s.backend(0);
    let u = "gina";
    let body = json!({"message": "add Pay rent"});
    let first = b.post_chat(u, &body, Some("key-1")).await;
    assert_eq!(first.status, 200, "{first:?}");
    assert!(first.header("idempotent-replayed").is_none());
    let calls_after_first = s.mock_requests().await;
    assert_eq!(calls_after_first, 2);

    let again = b.post_chat(u, &body, Some("key-1")).await;
    assert_eq!(again.status, 200, "{again:?}");
    assert_eq!(again.header("idempotent-replayed").as_deref(), Some("true"));
    assert_eq!(
        again.text, first.text,
        "the replay is the same body, byte for byte"
    );
    assert_eq!(
        s.mock_requests().await,
        calls_after_first,
        "the model was not called again"
    );
    assert_eq!(
        titles(&b.tasks(u, None).await),
        ["Pay rent"],
        "the tool ran once"
    );

    let other = b
        .post_chat(u, &json!({"message": "add Pay rent twice"}), Some("key-1"))
        .await;
    assert_eq!(other.status, 422, "{other:?}");
    assert_eq!(other.json["error"]["code"], "idempotency_key_reused");
    assert_eq!(s.mock_requests().await, calls_after_first);

    // The key belongs to its user: another user's identical request is new.
    let someone_else = b.post_chat("hank", &body, Some("key-1")).await;
    assert_eq!(someone_else.status, 200, "{someone_else:?}");
    assert!(someone_else.header("idempotent-replayed").is_none());
    assert_eq!(titles(&b.tasks("hank", None).await), ["Pay rent"]);
    s.finish().await;
}

#[tokio::test]
async fn a_retry_while_the_first_attempt_runs_is_told_to_wait_then_gets_the_answer() {
    let s = Stack::start_with_latency(1, 600).await;
    let b = s.backend(0);
    let u = "lee";
    let body = json!({"message": "add Book flights"});
    let first = b.post_chat(u, &body, Some("retry-1"));
    let retry = async {
        s.wait_for_mock_requests(1).await;
        b.post_chat(u, &body, Some("retry-1")).await
    };
    let (first, retry) = tokio::join!(first, retry);
    assert_eq!(first.status, 200, "{first:?}");
    assert_eq!(retry.status, 409, "{retry:?}");
    assert_eq!(retry.json["error"]["code"], "idempotency_in_progress");
    assert!(retry.header("retry-after").is_some(), "{retry:?}");

    let again = b.post_chat(u, &body, Some("retry-1")).await;
    assert_eq!(again.status, 200, "{again:?}");
    assert_eq!(again.header("idempotent-replayed").as_deref(), Some("true"));
    assert_eq!(again.text, first.text);
    assert_eq!(s.mock_requests().await, 2, "one turn, two model calls");
    assert_eq!(titles(&b.tasks(u, None).await), ["Book flights"]);
    s.finish().await;
}

#[tokio::test]
async fn a_model_error_is_retried_and_the_turn_still_succeeds() {
    let s = Stack::start(1).await;
    let b = s.backend(0);
    // Two failures: the backend's two retries absorb them.
    s.inject_faults(json!({"count": 2, "status": 500})).await;
    let t = b.chat_ok("mia", "add Renew passport", None).await;
    assert_call(
        &t.calls()[0],
        "add_task",
        json!({"title": "Renew passport"}),
        false,
    );
    assert_eq!(
        s.mock_requests().await,
        4,
        "two failures, then two good calls"
    );
    assert_eq!(titles(&b.tasks("mia", None).await), ["Renew passport"]);
    s.finish().await;
}

#[tokio::test]
async fn a_turn_that_failed_after_its_tool_ran_resumes_with_its_key_without_running_it_again() {
    let s = Stack::start(1).await;
    let b = s.backend(0);
    let u = "ned";
    let body = json!({"message": "add Pay bills"});
    // The first model call (the tool call) succeeds; every attempt of the second fails.
    s.inject_faults(json!({"skip": 1, "count": 3, "status": 503}))
        .await;
    let failed = b.post_chat(u, &body, Some("bills-1")).await;
    assert_eq!(failed.status, 502, "{failed:?}");
    assert_eq!(failed.json["error"]["code"], "llm_unavailable");
    assert_eq!(
        titles(&b.tasks(u, None).await),
        ["Pay bills"],
        "the tool ran"
    );

    let conversations = b.get(&format!("/api/{u}/conversations")).await;
    let conv = conversations.json["conversations"][0]["id"]
        .as_str()
        .unwrap_or_else(|| panic!("the failed turn's conversation is listed: {conversations:?}"))
        .to_string();

    let retried = b.post_chat(u, &body, Some("bills-1")).await;
    assert_eq!(retried.status, 200, "{retried:?}");
    assert_eq!(retried.json["conversation_id"], conv.as_str());
    assert_eq!(
        retried.json["response"], "Done. Added #1 [ ] Pay bills",
        "the model answers from the stored tool result"
    );
    assert_eq!(
        titles(&b.tasks(u, None).await),
        ["Pay bills"],
        "the tool did not run twice"
    );
    // The person's message is stored once, and the history is complete.
    assert_history(&b.messages(u, &conv).await, &["add Pay bills"]);
    s.finish().await;
}
