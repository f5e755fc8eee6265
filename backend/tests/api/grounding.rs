//! The person's words against what the model asked for (agent/grounding.rs), through the
//! real application: a request that fits several tasks gets a question and changes nothing;
//! a due in words for a message that names no date or time is left out.

use serde_json::{Value, json};
use todo_test_support::Kind;

use crate::helpers::*;
use crate::on_both_stores;

fn conversation() -> ByMessage {
    ByMessage(vec![
        (
            "add call anna",
            vec![("a1", "add_task", r#"{"title":"Call Anna"}"#)],
        ),
        (
            "add call bob",
            vec![("a2", "add_task", r#"{"title":"Call Bob"}"#)],
        ),
        // What the local model did with this: it completed the first call task.
        (
            "Mark the call task as done",
            vec![("c1", "complete_task", r#"{"id": 1}"#)],
        ),
        (
            "The one with Bob",
            vec![("c2", "complete_task", r#"{"id": 2}"#)],
        ),
        // Copied from an example: nobody said when.
        (
            "Add water the plants",
            vec![(
                "a3",
                "add_task",
                r#"{"title":"Water the plants","due":"tomorrow 17:00"}"#,
            )],
        ),
        (
            "Remind me to call mom tomorrow at 5pm",
            vec![(
                "a4",
                "add_task",
                r#"{"title":"Call mom","due":"tomorrow 17:00"}"#,
            )],
        ),
    ])
}

async fn say(app: &TestApp, conv: Option<&str>, message: &str) -> Value {
    let mut body = json!({"message": message, "timezone": "Europe/Paris"});
    if let Some(c) = conv {
        body["conversation_id"] = json!(c);
    }
    chat_ok(app, "alice", body).await
}

/// (number, completed, due) of each task.
async fn tasks(app: &TestApp) -> Vec<(i64, bool, Value)> {
    app.get_json("/api/alice/tasks?status=all").await["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            (
                t["id"].as_i64().unwrap(),
                t["completed"].as_bool().unwrap(),
                t["due"].clone(),
            )
        })
        .collect()
}

on_both_stores!(
    a_request_that_fits_two_tasks_gets_a_question_and_changes_nothing,
    |app: TestApp| async move {
        app.llm_responds(conversation()).await;
        let first = say(&app, None, "add call anna").await;
        let conv = first["conversation_id"].as_str().unwrap().to_string();
        say(&app, Some(&conv), "add call bob").await;
        let calls_before = app.llm_requests().await.len();

        let asked = say(&app, Some(&conv), "Mark the call task as done").await;
        assert_eq!(
            asked["response"],
            "Which one should I mark as done: #1 “Call Anna” or #2 “Call Bob”? Nothing is changed yet."
        );
        assert_eq!(asked["tool_calls"], json!([]), "nothing ran");
        assert_eq!(app.llm_requests().await.len(), calls_before + 1);
        assert_eq!(
            tasks(&app).await,
            [(1, false, Value::Null), (2, false, Value::Null)]
        );
        assert!(app.audit().await.iter().all(|a| a.tool != "complete_task"));

        // The history is one the next turn continues: the question is the last word, the
        // call that did not run is not stored as an unanswered call.
        let msgs = app
            .get_json(&format!("/api/alice/conversations/{conv}/messages"))
            .await;
        assert_valid_sequence(&msgs["messages"]);
        let last = msgs["messages"].as_array().unwrap().last().unwrap().clone();
        assert_eq!(last["role"], "assistant");
        assert_eq!(last["content"], asked["response"]);
        assert!(
            last["tool_calls"].as_array().is_none_or(|c| c.is_empty()),
            "{last}"
        );

        // The answer names one: that one is done.
        say(&app, Some(&conv), "The one with Bob").await;
        assert_eq!(
            tasks(&app).await,
            [(1, false, Value::Null), (2, true, Value::Null)]
        );
    }
);

on_both_stores!(
    a_due_nobody_said_is_left_out_and_one_they_said_is_kept,
    |app: TestApp| async move {
        app.llm_responds(conversation()).await;
        let plants = say(&app, None, "Add water the plants").await;
        // The client is shown the arguments that ran.
        assert_eq!(
            plants["tool_calls"][0]["arguments"],
            json!({"title": "Water the plants"})
        );
        let mom = say(&app, None, "Remind me to call mom tomorrow at 5pm").await;
        assert_eq!(mom["tool_calls"][0]["is_error"], false);
        let all = app.get_json("/api/alice/tasks?status=all").await;
        let by_title = |title: &str| {
            all["tasks"]
                .as_array()
                .unwrap()
                .iter()
                .find(|t| t["title"] == title)
                .unwrap()
                .clone()
        };
        assert_eq!(by_title("Water the plants")["due"], Value::Null, "{all}");
        assert!(
            by_title("Call mom")["due"]
                .as_str()
                .unwrap()
                .ends_with(":00:00Z"),
            "{all}"
        );
        let reply = plants["response"].as_str().unwrap();
        assert!(!reply.contains("tomorrow"), "{reply}");
    }
);

on_both_stores!(
    the_most_recently_deleted_tasks_are_in_the_next_turns_view,
    |app: TestApp| async move {
        app.llm_responds(ByMessage(vec![
            (
                "add old plan",
                vec![("a1", "add_task", r#"{"title":"Old plan"}"#)],
            ),
            (
                "add new plan",
                vec![("a2", "add_task", r#"{"title":"New plan"}"#)],
            ),
            (
                "delete the old plan",
                vec![("d1", "delete_task", r#"{"id": 1}"#)],
            ),
        ]))
        .await;
        for message in ["add old plan", "add new plan", "delete the old plan"] {
            say(&app, None, message).await;
        }
        say(&app, None, "bring the plan back").await;
        let requests = app.llm_requests().await;
        let last = requests.last().unwrap()["messages"]
            .as_array()
            .unwrap()
            .last()
            .unwrap()["content"]
            .as_str()
            .unwrap()
            .to_string();
        // The open task, then the trash; the person's words after the block.
        let open = last.find("Open tasks:\n#2 [ ] New plan\n").expect(&last);
        let trash = last
            .find("Recently deleted:\n#1 [ ] Old plan (deleted)\n")
            .expect(&last);
        assert!(open < trash, "{last}");
        assert!(last.ends_with("</context>\nbring the plan back"), "{last}");
    }
);
