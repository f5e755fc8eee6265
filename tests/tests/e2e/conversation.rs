//! Turns on one backend: every tool, parallel calls, tool errors, and the requests
//! refused before any model call.

use serde_json::json;

use crate::checks::{assert_call, assert_history, titles};
use crate::support::Stack;

#[tokio::test]
async fn a_conversation_drives_every_tool_and_the_task_list_follows() {
    let s = Stack::start(1).await;
    let b = s.backend(0);
    let u = "alice";

    let t = b.chat_ok(u, "add Buy milk due 2026-12-01", None).await;
    let conv = t.conversation_id();
    assert_eq!(t.calls().len(), 1, "{t:?}");
    let r = assert_call(
        &t.calls()[0],
        "add_task",
        json!({"title": "Buy milk", "due": "2026-12-01"}),
        false,
    );
    assert_eq!(
        (r["id"].as_i64(), r["title"].as_str()),
        (Some(1), Some("Buy milk"))
    );
    assert_eq!(r["due"], "2026-12-01");
    assert_eq!(r["completed"], false);
    assert_eq!(t.response(), "Done. Added #1 [ ] Buy milk (due 2026-12-01)");
    assert_eq!(titles(&b.tasks(u, None).await), ["Buy milk"]);

    let t = b.chat_ok(u, "add Call mom", Some(&conv)).await;
    assert_eq!(
        t.conversation_id(),
        conv,
        "the turn continues the conversation"
    );
    let r = assert_call(
        &t.calls()[0],
        "add_task",
        json!({"title": "Call mom"}),
        false,
    );
    assert_eq!(r["id"], 2);
    assert_eq!(titles(&b.tasks(u, None).await), ["Buy milk", "Call mom"]);

    let t = b.chat_ok(u, "list", Some(&conv)).await;
    let r = assert_call(&t.calls()[0], "list_tasks", json!({}), false);
    let listed: Vec<&str> = r["tasks"]
        .as_array()
        .map(|a| a.iter().filter_map(|t| t["title"].as_str()).collect())
        .unwrap_or_default();
    assert_eq!(listed, ["Buy milk", "Call mom"], "{r}");
    assert!(
        t.response().contains("#1 [ ] Buy milk") && t.response().contains("#2 [ ] Call mom"),
        "{t:?}"
    );

    let t = b.chat_ok(u, "done 1", Some(&conv)).await;
    let r = assert_call(&t.calls()[0], "complete_task", json!({"id": 1}), false);
    assert_eq!(
        (r["id"].as_i64(), r["completed"].as_bool()),
        (Some(1), Some(true))
    );
    assert!(r["completed_at"].is_string(), "{r}");
    assert_eq!(
        t.response(),
        "Done. Completed #1 [x] Buy milk (due 2026-12-01)"
    );
    assert_eq!(
        titles(&b.tasks(u, None).await),
        ["Call mom"],
        "pending tasks only by default"
    );
    assert_eq!(titles(&b.tasks(u, Some("completed")).await), ["Buy milk"]);

    let t = b.chat_ok(u, "rename 2 to Call mum", Some(&conv)).await;
    let r = assert_call(
        &t.calls()[0],
        "update_task",
        json!({"id": 2, "title": "Call mum"}),
        false,
    );
    assert_eq!(r["title"], "Call mum");
    assert_eq!(titles(&b.tasks(u, None).await), ["Call mum"]);

    let t = b.chat_ok(u, "delete 2", Some(&conv)).await;
    let r = assert_call(&t.calls()[0], "delete_task", json!({"id": 2}), false);
    assert!(r["deleted_at"].is_string(), "{r}");
    assert!(
        t.response().starts_with("Done. Moved to the trash"),
        "{t:?}"
    );
    assert!(b.tasks(u, None).await.is_empty());
    assert_eq!(titles(&b.tasks(u, Some("deleted")).await), ["Call mum"]);

    let t = b.chat_ok(u, "restore 2", Some(&conv)).await;
    let r = assert_call(&t.calls()[0], "restore_task", json!({"id": 2}), false);
    assert!(r.get("deleted_at").is_none(), "{r}");
    assert_eq!(titles(&b.tasks(u, None).await), ["Call mum"]);
    assert!(b.tasks(u, Some("deleted")).await.is_empty());

    // A task that does not exist: a tool error the model reads, not a failed request.
    let t = b.chat_ok(u, "done 99", Some(&conv)).await;
    let r = assert_call(&t.calls()[0], "complete_task", json!({"id": 99}), true);
    assert!(
        r["error"]
            .as_str()
            .is_some_and(|e| e.contains("No task #99")),
        "{r}"
    );
    assert!(t.response().contains("No task #99"), "{t:?}");

    let t = b.chat_ok(u, "thanks!", Some(&conv)).await;
    assert!(t.calls().is_empty());
    assert_eq!(t.response(), "You said: thanks!");

    let said = [
        "add Buy milk due 2026-12-01",
        "add Call mom",
        "list",
        "done 1",
        "rename 2 to Call mum",
        "delete 2",
        "restore 2",
        "done 99",
        "thanks!",
    ];
    assert_history(&b.messages(u, &conv).await, &said);
    // Every turn with tools took two model calls; the last one took one.
    assert_eq!(s.mock_requests().await, 2 * 8 + 1);
    // Another user sees none of it.
    assert!(b.tasks("bob", Some("all")).await.is_empty());
    s.finish().await;
}

#[tokio::test]
async fn parallel_tool_calls_in_one_answer_all_run() {
    let s = Stack::start(1).await;
    let b = s.backend(0);
    let t = b.chat_ok("carol", "add milk and bread", None).await;
    assert_eq!(t.calls().len(), 2, "{t:?}");
    let milk = assert_call(&t.calls()[0], "add_task", json!({"title": "milk"}), false);
    let bread = assert_call(&t.calls()[1], "add_task", json!({"title": "bread"}), false);
    assert_eq!(
        (milk["id"].as_i64(), bread["id"].as_i64()),
        (Some(1), Some(2))
    );
    assert_eq!(t.response(), "Done. Added #1 [ ] milk; Added #2 [ ] bread");
    assert_eq!(titles(&b.tasks("carol", None).await), ["milk", "bread"]);
    let conv = t.conversation_id();
    let history = b.messages("carol", &conv).await;
    assert_history(&history, &["add milk and bread"]);
    let assistant = &history[1];
    assert_eq!(
        assistant["tool_calls"].as_array().map(Vec::len),
        Some(2),
        "{assistant}"
    );
    s.finish().await;
}

#[tokio::test]
async fn invalid_arguments_and_unknown_tools_are_tool_errors_and_the_conversation_goes_on() {
    let s = Stack::start(1).await;
    let b = s.backend(0);
    let u = "dave";

    let t = b.chat_ok(u, "bad json", None).await;
    let conv = t.conversation_id();
    assert_eq!(t.calls().len(), 1, "{t:?}");
    // Arguments that are not JSON are reported as the text the model sent.
    let r = assert_call(&t.calls()[0], "list_tasks", json!(r#"{"status":"#), true);
    assert!(
        r["error"]
            .as_str()
            .is_some_and(|e| e.contains("not valid JSON")),
        "{r}"
    );
    assert!(
        t.response()
            .starts_with("Done. The arguments were not valid JSON"),
        "{t:?}"
    );

    let t = b.chat_ok(u, "unknown tool", Some(&conv)).await;
    let r = assert_call(&t.calls()[0], "launch_rockets", json!({"count": 3}), true);
    assert!(
        r["error"]
            .as_str()
            .is_some_and(|e| e.contains("launch_rockets")),
        "{r}"
    );

    let t = b.chat_ok(u, "add Still works", Some(&conv)).await;
    assert_call(
        &t.calls()[0],
        "add_task",
        json!({"title": "Still works"}),
        false,
    );
    assert_eq!(titles(&b.tasks(u, None).await), ["Still works"]);

    let history = b.messages(u, &conv).await;
    assert_history(&history, &["bad json", "unknown tool", "add Still works"]);
    let errors: Vec<bool> = history
        .iter()
        .filter(|m| m["role"] == "tool")
        .map(|m| m["is_error"].as_bool().unwrap_or(false))
        .collect();
    assert_eq!(errors, [true, true, false]);
    s.finish().await;
}

#[tokio::test]
async fn another_users_conversation_is_not_found() {
    let s = Stack::start(1).await;
    let b = s.backend(0);
    let t = b.chat_ok("ivy", "add Secret plan", None).await;
    let conv = t.conversation_id();
    let before = s.mock_requests().await;

    let r = b
        .post_chat(
            "mallory",
            &json!({"message": "list", "conversation_id": conv}),
            None,
        )
        .await;
    assert_eq!(r.status, 404, "{r:?}");
    assert_eq!(r.json["error"]["code"], "not_found");
    let r = b
        .get(&format!("/api/mallory/conversations/{conv}/messages"))
        .await;
    assert_eq!(r.status, 404, "{r:?}");
    let unknown = uuid::Uuid::new_v4();
    let r = b
        .post_chat(
            "ivy",
            &json!({"message": "list", "conversation_id": unknown}),
            None,
        )
        .await;
    assert_eq!(r.status, 404, "{r:?}");
    assert_eq!(s.mock_requests().await, before, "nothing reached the model");
    // Ivy's conversation is untouched.
    assert_history(&b.messages("ivy", &conv).await, &["add Secret plan"]);
    s.finish().await;
}

#[tokio::test]
async fn without_a_model_commands_add_list_and_complete_and_free_text_explains_them() {
    let s = Stack::start_without_llm().await;
    let b = s.backend(0);
    // Free text is answered (200, stored) with the commands and the settings for a model.
    let t = b.chat_ok("jill", "add milk", None).await;
    let conv = t.conversation_id();
    for needed in [
        "/add",
        "/list",
        "/done",
        "/help",
        "OPENAI_API_KEY",
        "OPENAI_BASE_URL",
        "LLM_MODEL",
    ] {
        assert!(t.response().contains(needed), "{needed} missing: {t:?}");
    }
    assert!(t.calls().is_empty(), "{t:?}");
    // The README's first command alone: add, list, complete.
    let c = Some(conv.as_str());
    let t = b
        .chat_ok("jill", "/add Buy milk tomorrow 5pm #shopping", c)
        .await;
    assert_eq!(t.calls().len(), 1, "{t:?}");
    assert_eq!(t.calls()[0]["name"], "add_task");
    assert_eq!(t.calls()[0]["is_error"], false, "{t:?}");
    assert!(
        t.response().starts_with("Added #1 [ ] Buy milk (due "),
        "{t:?}"
    );
    let t = b.chat_ok("jill", "/list", c).await;
    assert!(t.response().contains("#1 [ ] Buy milk"), "{t:?}");
    let t = b.chat_ok("jill", "/done 1", c).await;
    assert!(
        t.response().starts_with("Completed #1 [x] Buy milk"),
        "{t:?}"
    );
    let t = b.chat_ok("jill", "/done", c).await;
    assert!(t.response().contains("Usage: /done <n>"), "{t:?}");
    assert_history(
        &b.messages("jill", &conv).await,
        &[
            "add milk",
            "/add Buy milk tomorrow 5pm #shopping",
            "/list",
            "/done 1",
            "/done",
        ],
    );
    let tasks = b.get("/api/jill/tasks?status=completed").await;
    assert_eq!(tasks.status, 200, "{tasks:?}");
    assert_eq!(
        titles(tasks.json["tasks"].as_array().expect("a task list")),
        ["Buy milk"]
    );
    assert_eq!(b.get("/healthz").await.status, 200);
    assert_eq!(b.get("/readyz").await.status, 200);
    s.finish().await;
}

#[tokio::test]
async fn malformed_chat_requests_get_the_error_shape_and_never_reach_the_model() {
    let s = Stack::start(1).await;
    let b = s.backend(0);
    let long = "x".repeat(4001);
    let huge = "x".repeat(70 * 1024);
    let cases: Vec<(&str, reqwest::RequestBuilder, u16, &str)> = vec![
        (
            "empty message",
            b.chat_request("pat").json(&json!({"message": "  "})),
            422,
            "empty_message",
        ),
        (
            "too long",
            b.chat_request("pat").json(&json!({"message": long})),
            422,
            "message_too_long",
        ),
        (
            "too large",
            b.chat_request("pat").json(&json!({"message": huge})),
            413,
            "body_too_large",
        ),
        (
            "not JSON",
            b.chat_request("pat")
                .header("content-type", "application/json")
                .body("{\"message\":"),
            400,
            "malformed_body",
        ),
        (
            "no message",
            b.chat_request("pat").json(&json!({"text": "hi"})),
            422,
            "invalid_body",
        ),
        (
            "bad conversation id",
            b.chat_request("pat")
                .json(&json!({"message": "hi", "conversation_id": "nope"})),
            400,
            "invalid_conversation_id",
        ),
        (
            "bad time zone",
            b.chat_request("pat")
                .json(&json!({"message": "hi", "timezone": "Mars/Base"})),
            422,
            "invalid_timezone",
        ),
    ];
    for (case, request, status, code) in cases {
        let r = b.send(request).await;
        assert_eq!(r.status, status, "{case}: {r:?}");
        assert_eq!(r.json["error"]["code"], code, "{case}: {r:?}");
        assert!(r.json["error"]["message"].is_string(), "{case}: {r:?}");
    }
    assert_eq!(s.mock_requests().await, 0);
    assert!(b.get("/api/pat/conversations").await.json["conversations"] == json!([]));
    s.finish().await;
}
