//! Statelessness: any process serves any turn, a crash loses nothing, a busy
//! conversation is never interleaved, and any stored history is sent validly.

use serde_json::json;

use crate::checks::{assert_call, assert_history, titles};
use crate::support::Stack;

#[tokio::test]
async fn a_conversation_survives_a_backend_crash_and_continues_on_a_new_process() {
    let mut s = Stack::start(1).await;
    let u = "erin";
    let t = s.backend(0).chat_ok(u, "add Water plants", None).await;
    let conv = t.conversation_id();
    s.kill_backend(0).await;

    s.add_backend().await;
    let b = s.backend(1);
    let t = b.chat_ok(u, "add Feed cat", Some(&conv)).await;
    assert_eq!(t.conversation_id(), conv);
    let r = assert_call(
        &t.calls()[0],
        "add_task",
        json!({"title": "Feed cat"}),
        false,
    );
    assert_eq!(r["id"], 2, "numbering continues from the first process");
    let t = b.chat_ok(u, "list", Some(&conv)).await;
    assert_eq!(
        t.calls()[0]["result"]["tasks"].as_array().map(Vec::len),
        Some(2)
    );
    assert_history(
        &b.messages(u, &conv).await,
        &["add Water plants", "add Feed cat", "list"],
    );
    s.finish().await;
}

#[tokio::test]
async fn two_backends_alternating_turns_keep_one_consistent_history() {
    let s = Stack::start(2).await;
    let u = "frank";
    let said = ["add one", "add two and three", "done 2", "list"];
    let mut conv: Option<String> = None;
    for (i, message) in said.iter().enumerate() {
        let b = s.backend(i % 2);
        let t = b.chat_ok(u, message, conv.as_deref()).await;
        let id = t.conversation_id();
        if let Some(c) = &conv {
            assert_eq!(&id, c, "turn {i} on {} changed the conversation", b.name());
        }
        conv = Some(id);
    }
    let conv = conv.unwrap_or_default();
    for i in 0..2 {
        let history = s.backend(i).messages(u, &conv).await;
        assert_history(&history, &said);
    }
    let mut all = titles(&s.backend(1).tasks(u, Some("all")).await);
    all.sort();
    assert_eq!(all, ["one", "three", "two"]);
    assert_eq!(
        titles(&s.backend(1).tasks(u, Some("completed")).await),
        ["two"]
    );
    let pending = titles(&s.backend(0).tasks(u, None).await);
    assert_eq!(pending, ["one", "three"]);
    s.finish().await;
}

#[tokio::test]
async fn a_second_turn_on_a_busy_conversation_is_refused_not_interleaved() {
    // The model takes 600 ms a call, so the first turn is still running when the second
    // arrives, on the other process.
    let s = Stack::start_with_latency(2, 600).await;
    let u = "kim";
    let t = s.backend(0).chat_ok(u, "add first", None).await;
    let conv = t.conversation_id();
    let before = s.mock_requests().await;

    let (a, b) = (s.backend(0), s.backend(1));
    let second = json!({"message": "add second", "conversation_id": conv});
    let third = json!({"message": "add third", "conversation_id": conv});
    let slow = a.post_chat(u, &second, None);
    let racing = async {
        // Once the model has the first request, that turn holds the conversation.
        s.wait_for_mock_requests(before + 1).await;
        b.post_chat(u, &third, None).await
    };
    let (slow, racing) = tokio::join!(slow, racing);
    assert_eq!(slow.status, 200, "{slow:?}");
    assert_eq!(racing.status, 409, "{racing:?}");
    assert_eq!(racing.json["error"]["code"], "conversation_busy");
    assert!(racing.header("retry-after").is_some(), "{racing:?}");

    let history = b.messages(u, &conv).await;
    assert_history(&history, &["add first", "add second"]);
    assert_eq!(titles(&b.tasks(u, None).await), ["first", "second"]);
    // Once the first turn is over the conversation takes messages again.
    let t = b.chat_ok(u, "add third", Some(&conv)).await;
    assert_call(&t.calls()[0], "add_task", json!({"title": "third"}), false);
    s.finish().await;
}

#[tokio::test]
async fn a_history_window_cut_anywhere_still_reaches_the_model_as_a_valid_sequence() {
    // The mock model rejects, as real APIs do, a tool call without its answer or a tool
    // message without its call. Small windows cut the stored history at every position.
    for window in ["2", "3", "4", "5"] {
        let mut s = Stack::start_without_backends().await;
        s.add_backend_with(&[("HISTORY_MAX_MESSAGES", window)])
            .await;
        let b = s.backend(0);
        let u = "olga";
        let said = [
            "add a and b",
            "list",
            "done 1",
            "hello",
            "add c",
            "bad json",
            "list",
        ];
        let mut conv: Option<String> = None;
        for message in said {
            let t = b.chat_ok(u, message, conv.as_deref()).await;
            conv = Some(t.conversation_id());
        }
        assert_history(&b.messages(u, &conv.unwrap_or_default()).await, &said);
        let stats_rejected = s.mock_rejected().await;
        assert_eq!(
            stats_rejected, 0,
            "window {window}: the model rejected a request"
        );
        s.finish().await;
    }
}
