//! "Undo that" through the chat API: the model calls the `undo` tool, which reverts the
//! person's most recent turn of changes — all of them — whichever conversation made it.

use serde_json::{Value, json};
use todo_test_support::Kind;

use crate::helpers::{ByMessage, TestApp, spawn_app};
use crate::on_both_stores;

fn script() -> ByMessage {
    ByMessage(vec![
        (
            "add milk and mum",
            vec![
                ("c1", "add_task", r#"{"title":"Buy milk"}"#),
                (
                    "c2",
                    "add_task",
                    r#"{"title":"Call mum","priority":"high"}"#,
                ),
            ],
        ),
        (
            "busy turn",
            vec![
                ("c3", "complete_task", r#"{"id":1}"#),
                (
                    "c4",
                    "update_task",
                    r#"{"id":2,"title":"Call dad","due":"2026-12-24"}"#,
                ),
                ("c5", "add_task", r#"{"title":"Water plants"}"#),
            ],
        ),
        ("add x", vec![("c6", "add_task", r#"{"title":"X"}"#)]),
        ("undo that", vec![("u1", "undo", "{}")]),
    ])
}

async fn say(app: &TestApp, user: &str, message: &str, conversation: Option<&str>) -> Value {
    let mut body = json!({ "message": message });
    if let Some(c) = conversation {
        body["conversation_id"] = json!(c);
    }
    let r = app.chat(user, body).await;
    let status = r.status();
    let text = r.text().await.unwrap();
    assert_eq!(status, 200, "{message}: {text}");
    serde_json::from_str(&text).unwrap()
}

/// (number, title, completed, due) of every task with this status.
async fn tasks(app: &TestApp, user: &str, status: &str) -> Vec<(i64, String, bool, Value)> {
    let page = app
        .get_json(&format!("/api/{user}/tasks?status={status}"))
        .await;
    let mut v: Vec<_> = page["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            (
                t["id"].as_i64().unwrap(),
                t["title"].as_str().unwrap().to_string(),
                t["completed"].as_bool().unwrap(),
                t["due"].clone(),
            )
        })
        .collect();
    v.sort_by_key(|t| t.0);
    v
}

on_both_stores!(
    undo_that_reverts_every_change_of_the_last_turn_then_walks_back,
    |app: TestApp| async move {
        app.llm_responds(script()).await;
        let first = say(&app, "alice", "add milk and mum", None).await;
        let conv = first["conversation_id"].as_str().unwrap().to_string();
        let before = app.get_json("/api/alice/tasks?status=all").await;
        let busy = say(&app, "alice", "busy turn", Some(&conv)).await;
        assert!(
            busy["tool_calls"]
                .as_array()
                .unwrap()
                .iter()
                .all(|c| c["is_error"] == false),
            "{busy}"
        );

        let undo = say(&app, "alice", "undo that", Some(&conv)).await;
        let call = &undo["tool_calls"][0];
        assert_eq!(call["name"], "undo");
        assert_eq!(call["is_error"], false, "{call}");
        assert_eq!(
            call["result"]["undone"].as_array().unwrap().len(),
            3,
            "the three tasks of that turn: {call}"
        );
        // Exactly as before the busy turn: every field, timestamps included.
        assert_eq!(app.get_json("/api/alice/tasks?status=all").await, before);
        assert_eq!(
            tasks(&app, "alice", "deleted").await,
            vec![(3, "Water plants".to_string(), false, Value::Null)],
            "the task that turn added is in the trash"
        );

        // Again: the first turn's two adds.
        let undo = say(&app, "alice", "undo that", Some(&conv)).await;
        assert_eq!(
            undo["tool_calls"][0]["result"]["undone"]
                .as_array()
                .unwrap()
                .len(),
            2
        );
        assert!(tasks(&app, "alice", "all").await.is_empty());
        // And nothing is left: the model reads a tool error it can explain.
        let undo = say(&app, "alice", "undo that", Some(&conv)).await;
        assert_eq!(undo["tool_calls"][0]["is_error"], true);
        assert!(
            undo["tool_calls"][0]["result"]["error"]
                .as_str()
                .unwrap()
                .contains("nothing to undo"),
            "{undo}"
        );
        app.cleanup().await;
    }
);

on_both_stores!(
    undo_reaches_across_conversations_of_one_person_and_never_another,
    |app: TestApp| async move {
        app.llm_responds(script()).await;
        say(&app, "alice", "add milk and mum", None).await;
        say(&app, "alice", "add x", None).await;
        say(&app, "bob", "add x", None).await;
        // A third, fresh conversation of Alice's undoes her newest turn (in another one).
        let undo = say(&app, "alice", "undo that", None).await;
        let undone = &undo["tool_calls"][0]["result"]["undone"];
        assert_eq!(undone.as_array().unwrap().len(), 1, "{undo}");
        assert_eq!(undone[0]["task"]["title"], "X");
        assert_eq!(undone[0]["changes"], json!(["add"]));
        assert_eq!(
            tasks(&app, "alice", "all")
                .await
                .iter()
                .map(|t| t.1.as_str())
                .collect::<Vec<_>>(),
            ["Buy milk", "Call mum"]
        );
        // Bob's task is untouched, and Bob's undo reverts Bob's change only.
        assert_eq!(tasks(&app, "bob", "all").await.len(), 1);
        let undo = say(&app, "bob", "undo that", None).await;
        assert_eq!(undo["tool_calls"][0]["is_error"], false);
        assert!(tasks(&app, "bob", "all").await.is_empty());
        assert_eq!(tasks(&app, "alice", "all").await.len(), 2);
        app.cleanup().await;
    }
);

#[tokio::test]
async fn the_model_is_offered_undo_and_told_when_to_use_it() {
    let Some(app) = spawn_app(Kind::Sqlite).await else {
        return;
    };
    app.llm_responds(script()).await;
    say(&app, "alice", "hello", None).await;
    let req = &app.llm_requests().await[0];
    let offered: Vec<&str> = req["tools"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|t| t["function"]["name"].as_str())
        .collect();
    assert!(offered.contains(&"undo"), "{offered:?}");
    // The built-in prompt (the tests run with a short one) maps "undo that" to the tool.
    let built_in = todo_backend::agent::prompt::BUILT_IN;
    assert!(
        built_in.contains("\"undo that") && built_in.contains("→ undo."),
        "AGENT_PROMPT.md maps \"undo that\" to the undo tool"
    );
    app.cleanup().await;
}
