//! Caps on one turn: tool calls per reply and per turn, the size of a tool result sent back
//! to the model, the prompt budget checked before every model round, and which calls count
//! toward MAX_DESTRUCTIVE_CALLS_PER_TURN (the README sentence, as a test).

use serde_json::{Value, json};
use todo_backend::agent::TurnLimits;
use todo_test_support::Kind;

use crate::helpers::*;

fn with_limits(f: impl FnOnce(&mut TurnLimits)) -> Options {
    let mut o = Options::default();
    f(&mut o.limits);
    o
}

async fn turn(app: &TestApp) -> Value {
    let r = app.chat("alice", json!({"message": "go"})).await;
    assert_eq!(r.status(), 200);
    r.json().await.unwrap()
}

fn adds(n: usize) -> Vec<(String, String, String)> {
    (0..n)
        .map(|i| {
            (
                format!("c{i}"),
                "add_task".to_string(),
                format!(r#"{{"title":"Task {i}"}}"#),
            )
        })
        .collect()
}

fn script(calls: &[(String, String, String)], text: &str) -> Script {
    let c: Vec<(&str, &str, &str)> = calls
        .iter()
        .map(|(a, b, c)| (a.as_str(), b.as_str(), c.as_str()))
        .collect();
    Script::new(&c, text)
}

#[tokio::test]
async fn calls_beyond_the_per_reply_cap_are_answered_not_run() {
    let o = with_limits(|l| l.max_tool_calls_per_reply = 2);
    let Some(app) = spawn_app_with(Kind::Sqlite, o).await else {
        return;
    };
    app.llm_responds(script(&adds(5), "Done.")).await;
    let body = turn(&app).await;
    let calls = body["tool_calls"].as_array().unwrap();
    assert_eq!(calls.len(), 5);
    for (i, c) in calls.iter().enumerate() {
        assert_eq!(c["is_error"], i >= 2, "call {i}: {c}");
    }
    assert!(
        calls[4]["result"]["error"]
            .as_str()
            .unwrap()
            .contains("at most 2")
    );
    let tasks = app.get_json("/api/alice/tasks").await;
    assert_eq!(tasks["tasks"].as_array().unwrap().len(), 2);
    for req in app.llm_requests().await {
        assert_valid_sequence(&req["messages"]);
    }
    app.cleanup().await;
}

#[tokio::test]
async fn the_per_turn_cap_stops_tool_calls_and_the_model_must_answer_in_words() {
    let o = with_limits(|l| l.max_tool_calls_per_turn = 3);
    let Some(app) = spawn_app_with(Kind::Sqlite, o).await else {
        return;
    };
    // A model that always calls two more tools.
    app.llm_responds(|req: &wiremock::Request| {
        let body: Value = req.body_json().unwrap();
        let n = body["messages"].as_array().unwrap().len();
        if body["tools"].as_array().is_none_or(|t| t.is_empty()) {
            return wiremock::ResponseTemplate::new(200).set_body_json(text_reply("Stopped."));
        }
        let calls = [
            (
                format!("a{n}"),
                "add_task",
                format!(r#"{{"title":"A{n}"}}"#),
            ),
            (
                format!("b{n}"),
                "add_task",
                format!(r#"{{"title":"B{n}"}}"#),
            ),
        ];
        let c: Vec<(&str, &str, &str)> = calls
            .iter()
            .map(|(a, b, c)| (a.as_str(), *b, c.as_str()))
            .collect();
        wiremock::ResponseTemplate::new(200).set_body_json(tool_reply(&c))
    })
    .await;
    let body = turn(&app).await;
    assert_eq!(body["response"], "Stopped.");
    let ran = body["tool_calls"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["is_error"] == false)
        .count();
    assert_eq!(ran, 3, "{body}");
    app.cleanup().await;
}

#[tokio::test]
async fn a_long_tool_result_reaches_the_model_cut_with_a_note() {
    let o = with_limits(|l| l.max_tool_result_chars = 150);
    let Some(app) = spawn_app_with(Kind::Sqlite, o).await else {
        return;
    };
    let long: Vec<(String, String, String)> = (0..3)
        .map(|i| {
            let title = format!("Task {i} {}", "with a long title ".repeat(5));
            (
                format!("c{i}"),
                "add_task".into(),
                json!({ "title": title }).to_string(),
            )
        })
        .collect();
    app.llm_responds(script(&long, "ok")).await;
    turn(&app).await;
    app.llm.reset().await;
    app.llm_responds(Script::new(&[("l", "list_tasks", "{}")], "Listed."))
        .await;
    let body = turn(&app).await;
    // The client gets the whole result; the model a cut one.
    assert_eq!(
        body["tool_calls"][0]["result"]["tasks"]
            .as_array()
            .unwrap()
            .len(),
        3
    );
    let second = &app.llm_requests().await[1];
    let tool = second["messages"]
        .as_array()
        .unwrap()
        .iter()
        .rev()
        .find(|m| m["role"] == "tool")
        .unwrap();
    let text = tool["content"].as_str().unwrap();
    assert!(text.contains("more characters left out"), "{text}");
    assert!(text.chars().count() < 300, "{text}");
    app.cleanup().await;
}

#[tokio::test]
async fn a_prompt_over_the_budget_is_not_sent_to_the_model() {
    let o = with_limits(|l| l.max_prompt_tokens = 10);
    let Some(app) = spawn_app_with(Kind::Sqlite, o).await else {
        return;
    };
    app.llm_responds(Script::new(&[], "never")).await;
    let body = turn(&app).await;
    assert!(
        body["response"]
            .as_str()
            .unwrap()
            .contains("I stopped here"),
        "{body}"
    );
    assert!(app.llm_requests().await.is_empty());
    app.cleanup().await;
}

/// The budget is re-checked before every round, not only the first: the first round fits,
/// then a tool result (a page of long-titled tasks) pushes the second past the budget. That
/// second request is never sent; the person gets an answer saying what happened, and the
/// stored history stays a valid sequence that the next turn continues.
#[tokio::test]
async fn a_tool_result_that_outgrows_the_budget_stops_the_turn_before_the_next_round() {
    let o = with_limits(|l| {
        // ~2,000 estimated tokens of tools and prompt fit; with the page they are ~6,000.
        l.max_prompt_tokens = 5_000;
        // At most half the budget, as the settings require: the next turn then fits.
        l.history_tokens = 2_000;
        l.max_tool_result_chars = 100_000;
        // The open-task view would put the long titles into the first round too.
        l.open_tasks = 0;
    });
    let Some(app) = spawn_app_with(Kind::Sqlite, o).await else {
        return;
    };
    let store = app.db.as_ref().expect("database").db.task_store();
    for i in 0..100 {
        let title = format!("Task {i:03} {}", "with a rather long title ".repeat(7));
        store
            .add(
                "alice",
                todo_core::tasks::NewTask {
                    title: todo_core::tasks::Title::parse(
                        &title.chars().take(200).collect::<String>(),
                    )
                    .expect("a valid title"),
                    description: None,
                    due: None,
                    priority: Default::default(),
                    tags: vec![],
                    parent: None,
                    repeat: None,
                },
            )
            .await
            .unwrap();
    }
    wiremock::Mock::given(wiremock::matchers::method("POST"))
        .and(wiremock::matchers::path("/v1/chat/completions"))
        .respond_with(Script::new(
            &[("l1", "list_tasks", r#"{"limit": 100}"#)],
            "never sent",
        ))
        .expect(1)
        .named("only the first round reaches the model")
        .mount(&app.llm)
        .await;
    let body = turn(&app).await;
    app.llm.verify().await;
    assert!(
        body["response"]
            .as_str()
            .unwrap()
            .contains("I stopped here"),
        "{body}"
    );
    // The first round did run its tool: the page was listed and reported.
    assert_eq!(body["tool_calls"][0]["name"], "list_tasks");
    assert_eq!(body["tool_calls"][0]["is_error"], false);
    assert_eq!(
        body["tool_calls"][0]["result"]["tasks"]
            .as_array()
            .unwrap()
            .len(),
        100
    );

    // Nothing is lost: the call, its result and the answer are stored in order.
    let conv = body["conversation_id"].as_str().unwrap().to_string();
    let stored = app
        .get_json(&format!("/api/alice/conversations/{conv}/messages"))
        .await;
    let roles = stored_roles(&stored);
    assert_eq!(roles, ["user", "assistant", "tool", "assistant"]);
    assert_valid_sequence(&stored["messages"]);

    // The next turn of the conversation goes on.
    app.llm.reset().await;
    app.llm_responds(Script::new(&[], "Which ones?")).await;
    let r = app
        .chat(
            "alice",
            json!({"message": "just the first three", "conversation_id": conv}),
        )
        .await;
    assert_eq!(r.status(), 200);
    let next: Value = r.json().await.unwrap();
    assert_eq!(next["response"], "Which ones?");
    let sent = app.llm_requests().await;
    assert_eq!(sent.len(), 1);
    assert_valid_sequence(&sent[0]["messages"]);
    app.cleanup().await;
}

#[tokio::test]
async fn failed_destructive_calls_count_and_refused_ones_do_not() {
    let o = with_limits(|l| l.max_destructive_calls = 2);
    let Some(app) = spawn_app_with(Kind::Sqlite, o).await else {
        return;
    };
    app.llm_responds(Script::new(
        &[
            // Refused before reaching the tool: do not count.
            ("x1", "delete_task", "not json"),
            ("x2", "delete_task", "[1]"),
            // Sent to the tool, "not found": count.
            ("d1", "delete_task", r#"{"id": 41}"#),
            ("d2", "update_task", r#"{"id": 42, "title": "x"}"#),
            // Over the limit: refused.
            ("d3", "delete_task", r#"{"id": 43}"#),
        ],
        "Asked.",
    ))
    .await;
    let body = turn(&app).await;
    let results: Vec<String> = body["tool_calls"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["result"].to_string())
        .collect();
    assert!(!results[2].contains("Refused"), "{}", results[2]);
    assert!(!results[3].contains("Refused"), "{}", results[3]);
    assert!(results[4].contains("Refused"), "{}", results[4]);
    app.cleanup().await;
}

#[tokio::test]
async fn unknown_tool_names_share_one_metric_label() {
    let Some(app) = spawn_app(Kind::Sqlite).await else {
        return;
    };
    let long = "x".repeat(500);
    app.llm_responds(Script::new(
        &[
            ("u1", "drop\ntables\"{}", "{}"),
            ("u2", &long, "{}"),
            ("u3", "add_task", r#"{"title":"Milk"}"#),
        ],
        "ok",
    ))
    .await;
    turn(&app).await;
    let metrics = app.get("/metrics").await.text().await.unwrap();
    assert!(
        metrics.contains(r#"tool_calls_total{tool="unknown",outcome="error"} 2"#),
        "{metrics}"
    );
    assert!(metrics.contains(r#"tool_calls_total{tool="add_task",outcome="ok"} 1"#));
    assert!(!metrics.contains("drop") && !metrics.contains(&long));
    app.cleanup().await;
}
