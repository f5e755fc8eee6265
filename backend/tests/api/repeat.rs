//! Repeating tasks and subtasks through the chat API with a scripted model: the model's tool
//! calls reach the same rules as every other path, in the person's time zone, and the read API
//! shows the rule and the parent.

use serde_json::{Value, json};
use todo_test_support::Kind;

use crate::helpers::{ByMessage, TestApp, spawn_app};
use crate::on_both_stores;

fn script() -> ByMessage {
    ByMessage(vec![
        (
            "water the plants every 3 days from 2030",
            vec![(
                "c1",
                "add_task",
                r#"{"title":"Water plants","due":"2030-01-01","repeat":"every 3 days"}"#,
            )],
        ),
        (
            "standup every day at 9",
            vec![(
                "c2",
                "add_task",
                r#"{"title":"Standup","due":"2030-03-30","repeat":"every day at 9am"}"#,
            )],
        ),
        (
            "done with standup",
            vec![("c3", "complete_task", r#"{"id":2}"#)],
        ),
        ("undo that", vec![("u1", "undo", "{}")]),
        (
            "stop the standup",
            vec![("c4", "update_task", r#"{"id":2,"repeat":null}"#)],
        ),
        (
            "plan a trip",
            vec![("c5", "add_task", r#"{"title":"Plan trip"}"#)],
        ),
        (
            "add flights to the trip",
            vec![(
                "c6",
                "add_task",
                r#"{"title":"Book flights","parent_id":4}"#,
            )],
        ),
        (
            "show the trip",
            vec![("c7", "list_tasks", r#"{"parent_id":4}"#)],
        ),
        (
            "add seat under flights",
            vec![("c8", "add_task", r#"{"title":"Seat","parent_id":5}"#)],
        ),
        (
            "add x sometimes",
            vec![("c9", "add_task", r#"{"title":"X","repeat":"sometimes"}"#)],
        ),
    ])
}

async fn say(app: &TestApp, user: &str, message: &str) -> Value {
    let r = app
        .chat(
            user,
            json!({"message": message, "timezone": "Europe/Paris"}),
        )
        .await;
    let status = r.status();
    let text = r.text().await.unwrap();
    assert_eq!(status, 200, "{message}: {text}");
    serde_json::from_str(&text).unwrap()
}

fn call(turn: &Value) -> &Value {
    &turn["tool_calls"][0]
}

on_both_stores!(
    a_model_sets_a_repeat_completes_into_the_next_occurrence_undoes_it_and_adds_subtasks,
    |app: TestApp| async move {
        app.llm_responds(script()).await;
        let w = say(&app, "alice", "water the plants every 3 days from 2030").await;
        assert_eq!(call(&w)["is_error"], false, "{w}");
        assert_eq!(call(&w)["result"]["repeat"]["text"], "every 3 days");

        // 09:00 in Paris, kept across the change to summer time on 31 March 2030.
        let s = say(&app, "alice", "standup every day at 9").await;
        assert_eq!(call(&s)["result"]["due"], "2030-03-30T08:00:00Z");
        let before = call(&s)["result"].clone();
        let d = say(&app, "alice", "done with standup").await;
        let next = &call(&d)["result"];
        assert_eq!(next["id"], 2);
        assert_eq!(next["completed"], false);
        assert_eq!(next["due"], "2030-03-31T07:00:00Z");
        assert_eq!(next["repeat"], before["repeat"]);
        let done = app.get_json("/api/alice/tasks?status=completed").await;
        assert_eq!(done["tasks"][0]["id"], 3, "{done}");
        assert_eq!(done["tasks"][0]["due"], "2030-03-30T08:00:00Z");

        // Undo puts the task back exactly; the recorded occurrence goes to the trash.
        let u = say(&app, "alice", "undo that").await;
        assert_eq!(call(&u)["is_error"], false, "{u}");
        let open = app.get_json("/api/alice/tasks?status=pending").await;
        let standup = open["tasks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["id"] == 2)
            .unwrap()
            .clone();
        assert_eq!(standup, before);
        let trash = app.get_json("/api/alice/tasks?status=deleted").await;
        assert_eq!(trash["tasks"][0]["id"], 3);

        let stop = say(&app, "alice", "stop the standup").await;
        assert!(call(&stop)["result"].get("repeat").is_none(), "{stop}");

        // Subtasks: added under a parent, listed with it, one level only.
        say(&app, "alice", "plan a trip").await;
        let f = say(&app, "alice", "add flights to the trip").await;
        assert_eq!(call(&f)["result"]["parent_id"], 4);
        let l = say(&app, "alice", "show the trip").await;
        assert_eq!(call(&l)["result"]["tasks"][0]["title"], "Book flights");
        let deep = say(&app, "alice", "add seat under flights").await;
        assert_eq!(call(&deep)["is_error"], true);
        assert!(
            call(&deep)["result"].to_string().contains("one level"),
            "{deep}"
        );
        let bad = say(&app, "alice", "add x sometimes").await;
        assert_eq!(call(&bad)["is_error"], true);
        assert!(
            call(&bad)["result"].to_string().contains("every monday"),
            "{bad}"
        );

        // Another person's task is no parent: not found.
        let bob = say(&app, "bob", "add flights to the trip").await;
        assert_eq!(call(&bob)["is_error"], true);
        assert!(
            call(&bob)["result"].to_string().contains("No task #4"),
            "{bob}"
        );
        assert_eq!(
            app.get_json("/api/bob/tasks?status=all").await["tasks"],
            json!([])
        );

        // The read API shows the rule and the parent.
        let all = app.get_json("/api/alice/tasks?status=all").await;
        let tasks = all["tasks"].as_array().unwrap();
        let water = tasks.iter().find(|t| t["id"] == 1).unwrap();
        assert_eq!(water["repeat"]["rule"], "FREQ=DAILY;INTERVAL=3");
        assert_eq!(water["repeat"]["timezone"], "Europe/Paris");
        assert_eq!(tasks.iter().find(|t| t["id"] == 5).unwrap()["parent_id"], 4);
        app.cleanup().await;
    }
);
