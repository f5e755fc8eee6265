//! The MCP contract through real clients: an rmcp client joined in-process, the built
//! `todo-mcp` binary over stdio, and the binary over streamable HTTP (raw JSON-RPC POSTs
//! and the rmcp streamable HTTP client).
//!
//! Every child process is spawned with `kill_on_drop`, so a failing test never leaves one
//! behind; readiness is awaited by reading the child's output under a deadline.

#![allow(clippy::unwrap_used)]

use std::future::Future;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rmcp::ServiceExt;
use rmcp::model::{CallToolResult, Tool};
use serde_json::{Value, json};
use todo_core::tasks::{Task, TaskPage, TaskStore};
use todo_mcp::tools::{Identity, TaskTools};
use todo_test_support::Kind;
use todo_test_support::db::with_database;
use todo_test_support::mcp::{Client, call, text_of, tool_error};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWriteExt, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::mpsc;
use tokio::time::timeout;

const BIN: &str = env!("CARGO_BIN_EXE_todo-mcp");
const TOOLS: [&str; 7] = [
    "add_task",
    "list_tasks",
    "complete_task",
    "delete_task",
    "update_task",
    "restore_task",
    "undo",
];
/// Generous for a debug build on a busy 2-core machine; only reached on failure.
const DEADLINE: Duration = Duration::from_secs(20);

// ---------------------------------------------------------------- shared helpers

/// Runs `test` with a fresh SQLite database, removing it afterwards even on failure.
async fn with_sqlite<F, Fut>(test: F)
where
    F: FnOnce(TestDbHandle) -> Fut,
    Fut: Future<Output = ()>,
{
    with_database(Kind::Sqlite, |db, url| {
        test(TestDbHandle {
            store: db.task_store(),
            url,
        })
    })
    .await
}

/// What a test needs of its database: the store, and the URL for child processes.
#[derive(Clone)]
struct TestDbHandle {
    store: Arc<dyn TaskStore>,
    url: String,
}

/// The structured content of a successful result.
#[track_caller]
fn ok(r: &CallToolResult) -> Value {
    assert_eq!(
        r.is_error,
        Some(false),
        "expected success, got {}",
        text_of(r)
    );
    r.structured_content
        .clone()
        .unwrap_or_else(|| panic!("no structured content in {r:?}"))
}

#[track_caller]
fn ok_task(r: &CallToolResult) -> Task {
    serde_json::from_value(ok(r)).expect("structured content is a Task")
}

#[track_caller]
fn ok_page(r: &CallToolResult) -> TaskPage {
    serde_json::from_value(ok(r)).expect("structured content is a TaskPage")
}

fn page_ids(p: &TaskPage) -> Vec<i64> {
    p.tasks.iter().map(|t| t.id).collect()
}

async fn list(client: &Client, arguments: Value) -> TaskPage {
    ok_page(&call(client, "list_tasks", arguments).await)
}

/// An rmcp client joined to `TaskTools` for `user` over an in-memory duplex pipe.
async fn connect(store: Arc<dyn TaskStore>, user: &str) -> Client {
    let (server_io, client_io) = tokio::io::duplex(64 * 1024);
    let tools = TaskTools::new(store, Identity::Fixed(user.to_string()));
    tokio::spawn(async move {
        if let Ok(running) = tools.serve(server_io).await {
            let _ = running.waiting().await;
        }
    });
    ().serve(client_io).await.expect("MCP handshake in process")
}

// ---------------------------------------------------------------- in process

#[tokio::test]
async fn tools_list_shows_every_tool_with_schemas_and_truthful_annotations() {
    with_sqlite(|db| async move {
        let client = connect(db.store, "alice").await;
        let tools = client.list_all_tools().await.unwrap();
        let mut names: Vec<&str> = tools.iter().map(|t| t.name.as_ref()).collect();
        names.sort_unstable();
        let mut want = TOOLS.to_vec();
        want.sort_unstable();
        assert_eq!(names, want);

        let tool = |name: &str| -> Tool { tools.iter().find(|t| t.name == name).cloned().unwrap() };
        for t in &tools {
            let name = t.name.as_ref();
            assert!(
                t.description.as_deref().is_some_and(|d| d.len() > 20),
                "{name} has a description"
            );
            assert_eq!(
                t.input_schema.get("type"),
                Some(&json!("object")),
                "{name} input"
            );
            let output = t
                .output_schema
                .as_ref()
                .unwrap_or_else(|| panic!("{name} output schema"));
            assert_eq!(output.get("type"), Some(&json!("object")), "{name} output");
            assert!(t.annotations.is_some(), "{name} has annotations");
            assert!(
                !t.input_schema.contains_key("properties")
                    || !t.input_schema["properties"]
                        .as_object()
                        .unwrap()
                        .contains_key("user_id"),
                "{name} never asks for a user_id"
            );
        }

        let add = tool("add_task");
        assert_eq!(add.input_schema["required"], json!(["title"]));
        let props = add.input_schema["properties"].as_object().unwrap();
        for field in ["title", "description", "due", "priority", "tags"] {
            assert!(props.contains_key(field), "add_task takes {field}");
        }
        let task_props = add.output_schema.unwrap()["properties"].clone();
        for field in [
            "id",
            "title",
            "completed",
            "due",
            "priority",
            "tags",
            "created_at",
        ] {
            assert!(task_props.get(field).is_some(), "a task output has {field}");
        }

        let list_tool = tool("list_tasks");
        let props = list_tool.input_schema["properties"].as_object().unwrap();
        for field in [
            "status",
            "query",
            "tag",
            "due_before",
            "due_after",
            "limit",
            "offset",
        ] {
            assert!(props.contains_key(field), "list_tasks takes {field}");
        }
        assert!(
            list_tool
                .input_schema
                .get("required")
                .is_none_or(|r| r == &json!([]))
        );
        let out = list_tool.output_schema.unwrap();
        assert!(out["properties"].get("tasks").is_some());
        assert!(out["properties"].get("next_offset").is_some());

        for name in ["complete_task", "delete_task", "restore_task"] {
            assert_eq!(tool(name).input_schema["required"], json!(["id"]), "{name}");
        }
        assert_eq!(tool("update_task").input_schema["required"], json!(["id"]));

        // (read_only, destructive) as each tool really behaves.
        let truth = [
            ("list_tasks", true, false),
            ("add_task", false, false),
            ("complete_task", false, false),
            ("restore_task", false, false),
            ("delete_task", false, true),
            ("update_task", false, true),
            ("undo", false, true),
        ];
        for (name, read_only, destructive) in truth {
            let a = tool(name).annotations.unwrap();
            assert_eq!(a.read_only_hint, Some(read_only), "{name} read-only hint");
            if !read_only {
                assert_eq!(
                    a.destructive_hint,
                    Some(destructive),
                    "{name} destructive hint"
                );
            }
            assert_eq!(a.open_world_hint, Some(false), "{name} is a closed world");
        }
        assert_eq!(
            tool("list_tasks").annotations.unwrap().idempotent_hint,
            Some(true)
        );
        assert_eq!(
            tool("add_task").annotations.unwrap().idempotent_hint,
            Some(false)
        );
        client.cancel().await.unwrap();
    })
    .await;
}

#[tokio::test]
async fn every_tool_works_end_to_end_with_structured_results() {
    with_sqlite(|db| async move {
        let client = connect(db.store, "alice").await;

        let added = call(
            &client,
            "add_task",
            json!({
                "title": "  Buy milk ",
                "description": "two litres",
                "due": "2026-11-23T17:00:00+01:00",
                "priority": "high",
                "tags": ["Shopping", "#errands"]
            }),
        )
        .await;
        assert_eq!(
            text_of(&added),
            "Added #1 [ ] Buy milk (due 2026-11-23T16:00:00Z, high) #shopping #errands"
        );
        let milk = ok_task(&added);
        assert_eq!(milk.id, 1);
        assert_eq!(milk.title, "Buy milk");
        assert_eq!(milk.description.as_deref(), Some("two litres"));
        assert_eq!(milk.due.as_deref(), Some("2026-11-23T16:00:00Z"));
        assert_eq!(milk.tags, ["shopping", "errands"]);
        assert_eq!(ok(&added)["priority"], json!("high"));
        assert_eq!(ok(&added)["completed"], json!(false));
        assert!(milk.completed_at.is_none() && milk.deleted_at.is_none());

        let bread = ok_task(&call(&client, "add_task", json!({"title": "Bake bread", "due": "2026-11-22"})).await);
        assert_eq!(bread.id, 2);
        assert_eq!(bread.due.as_deref(), Some("2026-11-22"));

        let page = list(&client, json!({})).await;
        assert_eq!(page_ids(&page), [2, 1], "soonest due first");
        assert_eq!(page.next_offset, None);
        let first = call(&client, "list_tasks", json!({"limit": 1})).await;
        assert_eq!(ok_page(&first).next_offset, Some(1));
        assert!(text_of(&first).contains("call again with offset 1"), "{}", text_of(&first));
        let second = list(&client, json!({"limit": 1, "offset": 1})).await;
        assert_eq!(page_ids(&second), [1]);
        assert_eq!(second.next_offset, None);
        assert_eq!(page_ids(&list(&client, json!({"query": "MILK"})).await), [1]);
        assert_eq!(page_ids(&list(&client, json!({"tag": "#Errands"})).await), [1]);
        assert_eq!(
            page_ids(&list(&client, json!({"due_after": "2026-11-23", "due_before": "2026-11-24"})).await),
            [1]
        );

        // Quoted and hashed task numbers are accepted; null clears a field.
        let updated = call(
            &client,
            "update_task",
            json!({"id": "#2", "title": "Bake sourdough", "due": null, "priority": "low", "tags": ["home"]}),
        )
        .await;
        let bread2 = ok_task(&updated);
        assert_eq!(bread2.title, "Bake sourdough");
        assert_eq!(bread2.due, None);
        assert_eq!(bread2.tags, ["home"]);
        assert_eq!(ok(&updated)["priority"], json!("low"));
        assert!(text_of(&updated).starts_with("Updated #2"), "{}", text_of(&updated));
        assert!(bread2.updated_at > bread.updated_at);

        let completed = call(&client, "complete_task", json!({"id": 1})).await;
        let done = ok_task(&completed);
        assert!(done.completed);
        let completed_at = done.completed_at.expect("completed_at is set");
        assert!(text_of(&completed).starts_with("Completed #1 [x] Buy milk"));
        let again = ok_task(&call(&client, "complete_task", json!({"id": "1"})).await);
        assert_eq!(again.completed_at, Some(completed_at), "completing twice changes nothing");
        assert_eq!(page_ids(&list(&client, json!({"status": "completed"})).await), [1]);
        assert_eq!(page_ids(&list(&client, json!({})).await), [2]);

        let reopened = ok_task(&call(&client, "update_task", json!({"id": 1, "completed": false})).await);
        assert!(!reopened.completed);
        assert_eq!(reopened.completed_at, None);

        let deleted = call(&client, "delete_task", json!({"id": 2})).await;
        assert!(ok_task(&deleted).deleted_at.is_some());
        assert!(text_of(&deleted).contains("restore_task"), "{}", text_of(&deleted));
        assert_eq!(page_ids(&list(&client, json!({"status": "all"})).await), [1]);
        assert_eq!(page_ids(&list(&client, json!({"status": "deleted"})).await), [2]);

        let restored = call(&client, "restore_task", json!({"id": 2})).await;
        let back = ok_task(&restored);
        assert_eq!(back.deleted_at, None);
        assert_eq!(back.title, "Bake sourdough");
        assert!(text_of(&restored).starts_with("Restored #2"));
        assert_eq!(page_ids(&list(&client, json!({"status": "all"})).await), [1, 2]);
        assert_eq!(page_ids(&list(&client, json!({"status": "deleted"})).await), Vec::<i64>::new());

        let empty = call(&client, "list_tasks", json!({"query": "nothing like this"})).await;
        assert_eq!(page_ids(&ok_page(&empty)), Vec::<i64>::new());
        assert_eq!(text_of(&empty), "No tasks match.");
        client.cancel().await.unwrap();
    })
    .await;
}

#[tokio::test]
async fn bad_calls_are_tool_errors_with_a_helpful_message_and_the_server_keeps_serving() {
    with_sqlite(|db| async move {
        let client = connect(db.store, "alice").await;
        let seed = ok_task(&call(&client, "add_task", json!({"title": "seed"})).await);
        let long_title = "x".repeat(201);

        let cases: Vec<(&str, Value, &str)> = vec![
            ("complete_task", json!({"id": 99}), "No task #99 was found"),
            ("delete_task", json!({"id": 99}), "No task #99 was found"),
            (
                "update_task",
                json!({"id": 99, "title": "x"}),
                "No task #99 was found",
            ),
            ("restore_task", json!({"id": 99}), "No deleted task #99"),
            (
                "add_task",
                json!({"title": ""}),
                "`title` must not be empty",
            ),
            (
                "add_task",
                json!({"title": "   "}),
                "`title` must not be empty",
            ),
            (
                "add_task",
                json!({"title": long_title}),
                "201 characters; the limit is 200",
            ),
            ("add_task", json!({"title": "two\nlines"}), "one line"),
            ("add_task", json!({"title": 5}), "`title`: invalid type"),
            (
                "complete_task",
                json!({"id": "abc"}),
                "`id` must be a task number such as 3",
            ),
            ("complete_task", json!({"id": 2.5}), "whole task number"),
            (
                "complete_task",
                json!({"id": 0}),
                "task number of 1 or more",
            ),
            (
                "add_task",
                json!({"title": "x", "due": "whenever suits"}),
                "`due` must be an ISO 8601 date",
            ),
            (
                "add_task",
                // Without an offset a date-time is read in the caller's zone; this one is no time.
                json!({"title": "x", "due": "2026-11-23T25:00"}),
                "`due` must be an ISO 8601",
            ),
            (
                "update_task",
                json!({"id": 1, "due": "one of these weeks"}),
                "`due` must be an ISO 8601 date",
            ),
            (
                "add_task",
                json!({"title": "x", "priority": "urgent"}),
                "unknown variant `urgent`",
            ),
            (
                "add_task",
                json!({"title": "x", "tags": ["a,b"]}),
                "may hold only letters",
            ),
            (
                "add_task",
                json!({"title": "x", "colour": "red"}),
                "unknown field `colour`",
            ),
            ("add_task", json!({}), "missing field `title`"),
            ("complete_task", json!({}), "missing field `id`"),
            ("update_task", json!({"title": "x"}), "missing field `id`"),
            ("update_task", json!({"id": 1}), "Nothing to change"),
            (
                "restore_task",
                json!({"id": 1}),
                "only tasks in the trash can be restored",
            ),
            (
                "list_tasks",
                json!({"limit": 0}),
                "`limit` must be between 1 and 100",
            ),
            (
                "list_tasks",
                json!({"status": "done"}),
                "unknown variant `done`",
            ),
            (
                "list_tasks",
                json!({"due_before": "soon"}),
                "`due_before` must be an ISO 8601",
            ),
            (
                "list_tasks",
                json!({"due_after": "2026-11-24", "due_before": "2026-11-23"}),
                "`due_after` must be earlier than `due_before`",
            ),
            (
                "add_task",
                json!({"title": "x", "user_id": "bob"}),
                "`user_id` is not an argument",
            ),
            (
                "delete_task",
                json!({"id": 1, "user_id": "bob"}),
                "`user_id` is not an argument",
            ),
            (
                "list_tasks",
                json!({"user_id": 7}),
                "`user_id` is not an argument",
            ),
        ];
        for (tool, arguments, want) in cases {
            let shown = arguments.to_string();
            let r = call(&client, tool, arguments).await;
            let msg = tool_error(&r);
            assert!(
                msg.contains(want),
                "{tool} {shown}: expected a message containing {want:?}, got {msg:?}"
            );
            assert!(
                r.structured_content.is_none(),
                "{tool} {shown}: no structured content"
            );
            // The server keeps serving, and nothing changed.
            let all = list(&client, json!({"status": "all"})).await;
            assert_eq!(
                all.tasks,
                std::slice::from_ref(&seed),
                "after {tool} {shown}"
            );
        }
        assert_eq!(
            page_ids(&list(&client, json!({"status": "deleted"})).await),
            Vec::<i64>::new()
        );
        client.cancel().await.unwrap();
    })
    .await;
}

#[tokio::test]
async fn a_user_id_argument_is_accepted_only_when_it_names_the_caller() {
    with_sqlite(|db| async move {
        let client = connect(db.store.clone(), "alice").await;
        let refused = call(
            &client,
            "add_task",
            json!({"title": "for bob", "user_id": "bob"}),
        )
        .await;
        assert!(tool_error(&refused).contains("signed-in user"));

        let accepted = ok_task(
            &call(
                &client,
                "add_task",
                json!({"title": "mine", "user_id": "alice"}),
            )
            .await,
        );
        assert_eq!(accepted.id, 1);
        let listed = call(&client, "list_tasks", json!({"user_id": "alice"})).await;
        assert_eq!(page_ids(&ok_page(&listed)), [1]);

        // Nothing was created for bob, and alice's task is hers.
        let bob = db.store.list("bob", &all_filter()).await.unwrap();
        assert!(bob.tasks.is_empty());
        assert_eq!(db.store.get("alice", 1).await.unwrap().title, "mine");
        client.cancel().await.unwrap();
    })
    .await;
}

#[tokio::test]
async fn a_restore_of_a_task_not_in_the_trash_names_what_the_trash_holds() {
    with_sqlite(|db| async move {
        let client = connect(db.store, "alice").await;
        let open = ok_task(&call(&client, "add_task", json!({"title": "Call Anna"})).await);
        let msg = tool_error(&call(&client, "restore_task", json!({"id": open.id})).await);
        assert!(
            msg.contains("No deleted task #1") && msg.contains("The trash is empty."),
            "{msg}"
        );

        for title in ["Sketch the garden idea", "Old plan"] {
            let t = ok_task(&call(&client, "add_task", json!({"title": title})).await);
            ok(&call(&client, "delete_task", json!({"id": t.id})).await);
        }
        // The guess a model makes without the trash in view: an open task's number.
        let msg = tool_error(&call(&client, "restore_task", json!({"id": open.id})).await);
        assert!(msg.contains("No deleted task #1"), "{msg}");
        assert!(msg.contains("In the trash:"), "{msg}");
        assert!(msg.contains("#2 [ ] Sketch the garden idea"), "{msg}");
        assert!(msg.contains("#3 [ ] Old plan"), "{msg}");
        assert!(!msg.contains("Call Anna"), "only the trash is named: {msg}");

        // With the number it names, the restore succeeds, and nothing else changed.
        let back = ok_task(&call(&client, "restore_task", json!({"id": 2})).await);
        assert_eq!(back.title, "Sketch the garden idea");
        assert_eq!(
            list(&client, json!({"status": "deleted"}))
                .await
                .tasks
                .len(),
            1
        );
        client.cancel().await.unwrap();
    })
    .await;
}

fn all_filter() -> todo_core::tasks::ListFilter {
    todo_core::tasks::ListFilter {
        status: todo_core::tasks::StatusFilter::All,
        limit: 100,
        ..Default::default()
    }
}

#[tokio::test]
async fn another_user_cannot_see_complete_update_delete_or_restore_a_task() {
    with_sqlite(|db| async move {
        let alice = connect(db.store.clone(), "alice").await;
        let bob = connect(db.store.clone(), "bob").await;
        let secret = ok_task(&call(&alice, "add_task", json!({"title": "alice's secret"})).await);
        let trashed = ok_task(&call(&alice, "add_task", json!({"title": "alice's trash"})).await);
        ok(&call(&alice, "delete_task", json!({"id": trashed.id})).await);

        for status in ["pending", "completed", "all", "deleted"] {
            let p = list(&bob, json!({"status": status})).await;
            assert!(p.tasks.is_empty(), "bob sees nothing in {status}");
        }
        assert!(
            list(&bob, json!({"status": "all", "query": "secret"}))
                .await
                .tasks
                .is_empty()
        );

        let attempts = [
            (
                "complete_task",
                json!({"id": secret.id}),
                "No task #1 was found",
            ),
            (
                "update_task",
                json!({"id": secret.id, "title": "pwned"}),
                "No task #1 was found",
            ),
            (
                "delete_task",
                json!({"id": secret.id}),
                "No task #1 was found",
            ),
            (
                "restore_task",
                json!({"id": trashed.id}),
                "No deleted task #2",
            ),
            (
                "complete_task",
                json!({"id": 1, "user_id": "alice"}),
                "`user_id` is not an argument",
            ),
        ];
        for (tool, arguments, want) in attempts {
            let msg = tool_error(&call(&bob, tool, arguments).await);
            assert!(msg.contains(want), "{tool}: {msg}");
            assert!(!msg.to_lowercase().contains("forbidden"), "{tool}: {msg}");
            // A failed restore names the caller's own trash, never another person's.
            assert!(!msg.contains("alice's"), "{tool}: {msg}");
        }

        // Bob's own numbering starts at 1 and never shows alice's tasks.
        let bobs = ok_task(&call(&bob, "add_task", json!({"title": "bob's own"})).await);
        assert_eq!(bobs.id, 1);
        assert_eq!(list(&bob, json!({"status": "all"})).await.tasks, [bobs]);

        // Alice's tasks are untouched.
        assert_eq!(list(&alice, json!({"status": "all"})).await.tasks, [secret]);
        assert_eq!(
            page_ids(&list(&alice, json!({"status": "deleted"})).await),
            [trashed.id]
        );
        alice.cancel().await.unwrap();
        bob.cancel().await.unwrap();
    })
    .await;
}

/// Like [`connect`], reading local times in `tz` (the person's zone, as the chat sets it).
async fn connect_in(store: Arc<dyn TaskStore>, user: &str, tz: &str) -> Client {
    let (server_io, client_io) = tokio::io::duplex(64 * 1024);
    let tools =
        TaskTools::new(store, Identity::Fixed(user.to_string())).with_timezone(tz.parse().unwrap());
    tokio::spawn(async move {
        if let Ok(running) = tools.serve(server_io).await {
            let _ = running.waiting().await;
        }
    });
    ().serve(client_io).await.expect("MCP handshake in process")
}

#[tokio::test]
async fn repeating_tasks_are_set_shown_completed_into_the_next_and_stopped() {
    with_sqlite(|db| async move {
        let c = connect_in(db.store.clone(), "alice", "Europe/Paris").await;
        let r = call(&c, "add_task", json!({"title": "Water plants", "due": "2030-01-01", "repeat": "every 3 days"})).await;
        let plants = ok_task(&r);
        let rep = plants.repeat.clone().expect("a rule");
        assert_eq!((rep.rule.as_str(), rep.text.as_str(), rep.timezone.as_str()), ("FREQ=DAILY;INTERVAL=3", "every 3 days", "Europe/Paris"));
        assert!(text_of(&r).contains("↻ every 3 days"), "{}", text_of(&r));

        // Completing moves it three days on and says so; the done one is kept.
        let r = call(&c, "complete_task", json!({"id": plants.id})).await;
        let next = ok_task(&r);
        assert_eq!(next.due.as_deref(), Some("2030-01-04"));
        assert!(!next.completed);
        assert!(text_of(&r).contains("Next:"), "{}", text_of(&r));
        let done = list(&c, json!({"status": "completed"})).await;
        assert_eq!(done.tasks.len(), 1);
        assert_eq!(done.tasks[0].due.as_deref(), Some("2030-01-01"));

        // A new due date or title keeps the rule; null or "never" stops it.
        let moved = ok_task(&call(&c, "update_task", json!({"id": plants.id, "due": "2030-02-01", "title": "Water the plants"})).await);
        assert_eq!(moved.repeat, next.repeat);
        let weekdays = ok_task(&call(&c, "update_task", json!({"id": plants.id, "repeat": "weekdays"})).await);
        assert_eq!(weekdays.repeat.as_ref().unwrap().text, "every weekday");
        let stopped = ok_task(&call(&c, "update_task", json!({"id": plants.id, "repeat": null})).await);
        assert!(stopped.repeat.is_none());
        assert_eq!(stopped.due.as_deref(), Some("2030-02-01"));
        ok(&call(&c, "update_task", json!({"id": plants.id, "repeat": "every monday"})).await);
        let never = ok_task(&call(&c, "update_task", json!({"id": plants.id, "repeat": "never"})).await);
        assert!(never.repeat.is_none());

        // Without a due date the first occurrence is the due date; "at" sets its time.
        let mon = ok_task(&call(&c, "add_task", json!({"title": "Bins", "repeat": "every monday"})).await);
        let d = chrono::NaiveDate::parse_from_str(mon.due.as_deref().unwrap(), "%Y-%m-%d").unwrap();
        assert_eq!(chrono::Datelike::weekday(&d), chrono::Weekday::Mon);
        let raw = ok_task(&call(&c, "add_task", json!({"title": "Pay rent", "repeat": "RRULE:FREQ=MONTHLY;BYDAY=-1FR", "due": "2030-01-25"})).await);
        assert_eq!(raw.repeat.unwrap().text, "every month on the last Friday");

        // Every day at 9 in Paris stays 09:00 across the change to summer time (31 March 2030).
        let nine = ok_task(&call(&c, "add_task", json!({"title": "Standup", "due": "2030-03-30", "repeat": "every day at 9am"})).await);
        assert_eq!(nine.due.as_deref(), Some("2030-03-30T08:00:00Z"));
        let next = ok_task(&call(&c, "complete_task", json!({"id": nine.id})).await);
        assert_eq!(next.due.as_deref(), Some("2030-03-31T07:00:00Z"));
        let next = ok_task(&call(&c, "update_task", json!({"id": nine.id, "completed": true})).await);
        assert_eq!(next.due.as_deref(), Some("2030-04-01T07:00:00Z"));

        // Bad rules say what to send; nothing is added.
        let before = list(&c, json!({"status": "all"})).await.tasks.len();
        for (arguments, want) in [
            (json!({"title": "x", "repeat": "sometimes"}), "\"every monday\""),
            (json!({"title": "x", "repeat": "every blursday"}), "RRULE:FREQ=WEEKLY;BYDAY=MO"),
            (json!({"title": "x", "repeat": "RRULE:FREQ=HOURLY"}), "at most daily"),
            (json!({"title": "x", "repeat": "RRULE:FREQ=WEEKLY;BYDAY=XX"}), "not a valid RRULE"),
            (json!({"title": "x", "repeat": 3}), "`repeat`"),
        ] {
            let msg = tool_error(&call(&c, "add_task", arguments.clone()).await);
            assert!(msg.contains(want), "{arguments}: {msg}");
        }
        assert_eq!(list(&c, json!({"status": "all"})).await.tasks.len(), before);
        let msg = tool_error(&call(&c, "update_task", json!({"id": nine.id, "due": null})).await);
        assert!(msg.contains("needs a due date"), "{msg}");
        c.cancel().await.unwrap();
    })
    .await;
}

#[tokio::test]
async fn subtasks_are_added_listed_completed_and_scoped_by_user() {
    with_sqlite(|db| async move {
        let alice = connect(db.store.clone(), "alice").await;
        let bob = connect(db.store.clone(), "bob").await;
        let trip = ok_task(&call(&alice, "add_task", json!({"title": "Plan trip"})).await);
        let r = call(
            &alice,
            "add_task",
            json!({"title": "Book flights", "parent_id": "#1"}),
        )
        .await;
        let flights = ok_task(&r);
        assert_eq!(flights.parent_id, Some(trip.id));
        assert!(text_of(&r).contains("subtask of #1"), "{}", text_of(&r));
        let hotel = ok_task(
            &call(
                &alice,
                "add_task",
                json!({"title": "Book hotel", "parent": 1}),
            )
            .await,
        );
        let milk = ok_task(&call(&alice, "add_task", json!({"title": "Buy milk"})).await);

        // A task with its subtasks: the parent first, then the subtasks.
        let r = call(&alice, "list_tasks", json!({"parent_id": trip.id})).await;
        assert_eq!(page_ids(&ok_page(&r)), [flights.id, hotel.id]);
        let text = text_of(&r);
        assert!(
            text.starts_with("#1 [ ] Plan trip\nSubtasks:\n  #2"),
            "{text}"
        );
        let top = list(&alice, json!({"subtasks": false})).await;
        let mut ids = page_ids(&top);
        ids.sort();
        assert_eq!(ids, [trip.id, milk.id]);
        assert_eq!(list(&alice, json!({})).await.tasks.len(), 4);

        // Refusals name the rule; another user's parent is not found.
        for (client, arguments, want) in [
            (
                &alice,
                json!({"title": "x", "parent_id": flights.id}),
                "one level",
            ),
            (
                &alice,
                json!({"title": "x", "parent_id": 99}),
                "No task #99",
            ),
            (
                &bob,
                json!({"title": "x", "parent_id": trip.id}),
                "No task #1",
            ),
            (
                &alice,
                json!({"title": "x", "parent_id": 1, "repeat": "every day"}),
                "cannot repeat",
            ),
            (
                &alice,
                json!({"title": "x", "parent_id": "first"}),
                "parent_id",
            ),
        ] {
            let msg = tool_error(&call(client, "add_task", arguments.clone()).await);
            assert!(msg.contains(want), "{arguments}: {msg}");
        }
        let msg = tool_error(&call(&bob, "list_tasks", json!({"parent_id": trip.id})).await);
        assert!(msg.contains("No task #1"), "{msg}");
        assert!(list(&bob, json!({"status": "all"})).await.tasks.is_empty());

        // Completing the parent completes its open subtasks.
        ok(&call(&alice, "complete_task", json!({"id": trip.id})).await);
        let subs = list(&alice, json!({"parent_id": trip.id})).await;
        assert!(subs.tasks.iter().all(|t| t.completed), "{:?}", subs.tasks);
        // Moving out and back under.
        let loose = ok_task(
            &call(
                &alice,
                "update_task",
                json!({"id": hotel.id, "parent_id": null}),
            )
            .await,
        );
        assert_eq!(loose.parent_id, None);
        let under = ok_task(
            &call(
                &alice,
                "update_task",
                json!({"id": milk.id, "parent_id": trip.id}),
            )
            .await,
        );
        assert_eq!(under.parent_id, Some(trip.id));
        alice.cancel().await.unwrap();
        bob.cancel().await.unwrap();
    })
    .await;
}

// ---------------------------------------------------------------- child processes

/// A spawned `todo-mcp`, killed when dropped, whose stderr is collected line by line.
struct Proc {
    child: Child,
    stderr_rx: mpsc::UnboundedReceiver<String>,
    stderr: Arc<Mutex<Vec<String>>>,
}

fn command(db_url: &str) -> Command {
    let mut c = todo_test_support::process::command(BIN);
    c.env("DATABASE_URL", db_url)
        .env("RUST_LOG", "info")
        .env("TODO_USER_ID", "carol")
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    c
}

fn collect_lines(
    r: impl AsyncRead + Unpin + Send + 'static,
) -> (mpsc::UnboundedReceiver<String>, Arc<Mutex<Vec<String>>>) {
    let (tx, rx) = mpsc::unbounded_channel();
    let all = Arc::new(Mutex::new(Vec::new()));
    let sink = all.clone();
    tokio::spawn(async move {
        let mut lines = BufReader::new(r).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            sink.lock().unwrap().push(line.clone());
            let _ = tx.send(line);
        }
    });
    (rx, all)
}

impl Proc {
    fn spawn(mut cmd: Command) -> Proc {
        let mut child = cmd.spawn().expect("spawn todo-mcp");
        let (stderr_rx, stderr) = collect_lines(child.stderr.take().unwrap());
        Proc {
            child,
            stderr_rx,
            stderr,
        }
    }

    fn logs(&self) -> String {
        self.stderr.lock().unwrap().join("\n")
    }

    /// The first stderr line containing `needle`, waiting at most [`DEADLINE`].
    async fn stderr_line(&mut self, needle: &str) -> String {
        let rx = &mut self.stderr_rx;
        let found = timeout(DEADLINE, async {
            while let Some(line) = rx.recv().await {
                if line.contains(needle) {
                    return Some(line);
                }
            }
            None
        })
        .await;
        match found {
            Ok(Some(line)) => line,
            Ok(None) => panic!(
                "todo-mcp exited before logging {needle:?}:\n{}",
                self.logs()
            ),
            Err(_) => panic!("no {needle:?} within {DEADLINE:?}:\n{}", self.logs()),
        }
    }

    async fn exit_status(&mut self, within: Duration) -> std::process::ExitStatus {
        match timeout(within, self.child.wait()).await {
            Ok(status) => status.unwrap(),
            Err(_) => panic!("todo-mcp did not exit within {within:?}:\n{}", self.logs()),
        }
    }
}

// ---------------------------------------------------------------- stdio

fn stdio_command(db_url: &str) -> Command {
    let mut c = command(db_url);
    c.arg("stdio").stdin(Stdio::piped()).stdout(Stdio::piped());
    c
}

#[tokio::test]
async fn stdio_binary_serves_an_rmcp_client() {
    with_sqlite(|db| async move {
        let mut p = Proc::spawn(stdio_command(&db.url));
        let stdout = p.child.stdout.take().unwrap();
        let stdin = p.child.stdin.take().unwrap();
        let client: Client = timeout(DEADLINE, ().serve((stdout, stdin)))
            .await
            .expect("handshake within the deadline")
            .expect("MCP handshake over stdio");
        let info = client
            .peer_info()
            .expect("server info")
            .server_info
            .as_ref()
            .map(|i| i.name.clone());
        assert_eq!(info.as_deref(), Some("todo-mcp"));

        let tools = client.list_all_tools().await.unwrap();
        assert_eq!(tools.len(), TOOLS.len());
        let added = ok_task(
            &call(
                &client,
                "add_task",
                json!({"title": "Water the plants", "tags": ["home"]}),
            )
            .await,
        );
        assert_eq!(added.id, 1);
        let page = list(&client, json!({"tag": "home"})).await;
        assert_eq!(page.tasks, [added]);

        // The task belongs to TODO_USER_ID.
        assert_eq!(
            db.store.get("carol", 1).await.unwrap().title,
            "Water the plants"
        );
        assert!(db.store.get("local", 1).await.is_err());

        client.cancel().await.unwrap();
        let status = p.exit_status(DEADLINE).await;
        assert!(
            status.success(),
            "stdio server exits cleanly when stdin closes: {status}"
        );
        p.stderr_line("serving MCP over stdio").await;
    })
    .await;
}

#[tokio::test]
async fn stdio_stdout_carries_only_json_rpc_and_logs_go_to_stderr() {
    with_sqlite(|db| async move {
        let mut p = Proc::spawn(stdio_command(&db.url));
        let mut stdin = p.child.stdin.take().unwrap();
        let mut stdout = BufReader::new(p.child.stdout.take().unwrap()).lines();
        let mut seen: Vec<String> = Vec::new();

        async fn send(stdin: &mut tokio::process::ChildStdin, msg: Value) {
            let mut line = serde_json::to_vec(&msg).unwrap();
            line.push(b'\n');
            stdin.write_all(&line).await.unwrap();
            stdin.flush().await.unwrap();
        }
        // Reads stdout lines until the response to `id`; every line must be JSON-RPC.
        async fn response(
            stdout: &mut tokio::io::Lines<BufReader<tokio::process::ChildStdout>>,
            seen: &mut Vec<String>,
            id: i64,
        ) -> Value {
            timeout(DEADLINE, async {
                loop {
                    let line =
                        stdout.next_line().await.unwrap().unwrap_or_else(|| {
                            panic!("stdout closed before response {id}: {seen:?}")
                        });
                    seen.push(line.clone());
                    let v: Value = serde_json::from_str(&line)
                        .unwrap_or_else(|e| panic!("stdout line is not JSON ({e}): {line:?}"));
                    assert_eq!(v["jsonrpc"], json!("2.0"), "not JSON-RPC: {line}");
                    if v["id"] == json!(id) {
                        return v;
                    }
                }
            })
            .await
            .unwrap_or_else(|_| panic!("no response {id} within {DEADLINE:?}"))
        }

        send(
            &mut stdin,
            json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
                "protocolVersion": "2025-06-18",
                "capabilities": {},
                "clientInfo": {"name": "raw-test", "version": "0"}
            }}),
        )
        .await;
        let init = response(&mut stdout, &mut seen, 1).await;
        assert_eq!(
            init["result"]["serverInfo"]["name"],
            json!("todo-mcp"),
            "{init}"
        );
        send(
            &mut stdin,
            json!({"jsonrpc": "2.0", "method": "notifications/initialized"}),
        )
        .await;

        send(
            &mut stdin,
            json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {
                "name": "add_task", "arguments": {"title": "Raw JSON-RPC task"}
            }}),
        )
        .await;
        let added = response(&mut stdout, &mut seen, 2).await;
        assert_eq!(added["result"]["isError"], json!(false), "{added}");
        assert_eq!(
            added["result"]["structuredContent"]["id"],
            json!(1),
            "{added}"
        );

        send(
            &mut stdin,
            json!({"jsonrpc": "2.0", "id": 3, "method": "tools/call", "params": {
                "name": "list_tasks", "arguments": {}
            }}),
        )
        .await;
        let listed = response(&mut stdout, &mut seen, 3).await;
        assert_eq!(
            listed["result"]["structuredContent"]["tasks"][0]["title"],
            json!("Raw JSON-RPC task"),
            "{listed}"
        );

        send(
            &mut stdin,
            json!({"jsonrpc": "2.0", "id": 4, "method": "tools/call", "params": {
                "name": "complete_task", "arguments": {"id": 42}
            }}),
        )
        .await;
        let failed = response(&mut stdout, &mut seen, 4).await;
        assert_eq!(
            failed["result"]["isError"],
            json!(true),
            "a tool error, not a protocol error: {failed}"
        );

        // Closing stdin ends the session; whatever else reached stdout must be JSON-RPC too.
        drop(stdin);
        let rest = timeout(DEADLINE, async {
            let mut rest = Vec::new();
            while let Some(line) = stdout.next_line().await.unwrap() {
                rest.push(line);
            }
            rest
        })
        .await
        .expect("stdout closes after stdin does");
        for line in &rest {
            let v: Value = serde_json::from_str(line)
                .unwrap_or_else(|e| panic!("stdout line is not JSON ({e}): {line:?}"));
            assert_eq!(v["jsonrpc"], json!("2.0"), "{line}");
        }
        seen.extend(rest);
        assert_eq!(seen.len(), 4, "one line per response: {seen:?}");

        let status = p.exit_status(DEADLINE).await;
        assert!(status.success(), "{status}");
        // The logs went to stderr.
        let line = p.stderr_line("serving MCP over stdio").await;
        assert!(line.contains("INFO"), "{line}");
        assert!(line.contains("carol"), "{line}");
    })
    .await;
}

// ---------------------------------------------------------------- HTTP

/// A `todo-mcp http` child and the URL of its `/mcp` endpoint.
struct HttpServer {
    proc: Proc,
    url: String,
}

async fn spawn_http(db_url: &str) -> HttpServer {
    let mut cmd = command(db_url);
    cmd.args(["http", "--bind", "127.0.0.1:0"]);
    let mut proc = Proc::spawn(cmd);
    let line = proc.stderr_line("listening on http://").await;
    let start = line.find("http://").unwrap();
    let url = line[start..].split_whitespace().next().unwrap().to_string();
    assert!(url.ends_with("/mcp"), "{line}");
    HttpServer { proc, url }
}

fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .timeout(DEADLINE)
        .build()
        .unwrap()
}

fn rpc(id: i64, method: &str, params: Value) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params})
}

fn initialize(id: i64) -> Value {
    rpc(
        id,
        "initialize",
        json!({
            "protocolVersion": "2025-06-18",
            "capabilities": {},
            "clientInfo": {"name": "raw-http-test", "version": "0"}
        }),
    )
}

fn tool_call(id: i64, name: &str, arguments: Value) -> Value {
    rpc(
        id,
        "tools/call",
        json!({"name": name, "arguments": arguments}),
    )
}

fn mcp_post(url: &str, body: &Value) -> reqwest::RequestBuilder {
    http()
        .post(url)
        .header("Accept", "application/json, text/event-stream")
        .header("Content-Type", "application/json")
        .header("MCP-Protocol-Version", "2025-06-18")
        .body(serde_json::to_vec(body).unwrap())
}

/// The JSON-RPC message of a successful POST (a JSON body, or the first SSE `data:`).
async fn json_rpc(resp: reqwest::Response) -> (reqwest::header::HeaderMap, Value) {
    let status = resp.status();
    let headers = resp.headers().clone();
    let body = resp.text().await.unwrap();
    assert_eq!(status, reqwest::StatusCode::OK, "body: {body}");
    let json_text = body
        .lines()
        .find_map(|l| l.strip_prefix("data:"))
        .map(str::trim)
        .filter(|d| !d.is_empty())
        .unwrap_or(&body);
    let v: Value = serde_json::from_str(json_text)
        .unwrap_or_else(|e| panic!("response is not JSON ({e}): {body}"));
    (headers, v)
}

#[tokio::test]
async fn http_is_stateless_across_two_processes_sharing_a_database() {
    with_sqlite(|db| async move {
        let a = spawn_http(&db.url).await;
        let b = spawn_http(&db.url).await;
        assert_ne!(a.url, b.url);

        let (headers, init) =
            json_rpc(mcp_post(&a.url, &initialize(1)).send().await.unwrap()).await;
        assert_eq!(
            init["result"]["serverInfo"]["name"],
            json!("todo-mcp"),
            "{init}"
        );
        assert!(
            headers.get("mcp-session-id").is_none(),
            "stateless: no session is handed out"
        );

        // The other process answers a tool call that carries no session id.
        let (_, added) = json_rpc(
            mcp_post(
                &b.url,
                &tool_call(2, "add_task", json!({"title": "Across replicas"})),
            )
            .send()
            .await
            .unwrap(),
        )
        .await;
        assert_eq!(added["result"]["isError"], json!(false), "{added}");
        assert_eq!(
            added["result"]["structuredContent"]["id"],
            json!(1),
            "{added}"
        );

        let (_, listed) = json_rpc(
            mcp_post(&a.url, &tool_call(3, "list_tasks", json!({})))
                .send()
                .await
                .unwrap(),
        )
        .await;
        let tasks = &listed["result"]["structuredContent"]["tasks"];
        assert_eq!(tasks.as_array().map(Vec::len), Some(1), "{listed}");
        assert_eq!(tasks[0]["title"], json!("Across replicas"));

        // Without auth, the caller is TODO_USER_ID.
        assert_eq!(
            db.store.get("carol", 1).await.unwrap().title,
            "Across replicas"
        );

        // Every response carries a request id: the client's when sane, else a new one.
        let r = mcp_post(&a.url, &rpc(5, "tools/list", json!({})))
            .header("x-request-id", "mcp-req-1")
            .send()
            .await
            .unwrap();
        assert_eq!(r.headers()["x-request-id"], "mcp-req-1");
        let r = mcp_post(&a.url, &rpc(6, "tools/list", json!({})))
            .send()
            .await
            .unwrap();
        assert!(r.headers().contains_key("x-request-id"));

        // tools/list works without initialize too.
        let (_, tools) = json_rpc(
            mcp_post(&b.url, &rpc(4, "tools/list", json!({})))
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(
            tools["result"]["tools"].as_array().map(Vec::len),
            Some(TOOLS.len())
        );
    })
    .await;
}

#[tokio::test]
async fn http_refuses_foreign_origins_and_hosts_before_reaching_the_tools() {
    with_sqlite(|db| async move {
        let s = spawn_http(&db.url).await;
        let add = tool_call(1, "add_task", json!({"title": "smuggled"}));

        let evil_origin = mcp_post(&s.url, &add)
            .header("Origin", "https://evil.example")
            .send()
            .await
            .unwrap();
        assert_eq!(evil_origin.status(), reqwest::StatusCode::FORBIDDEN);

        let evil_host = mcp_post(&s.url, &add)
            .header("Host", "evil.example")
            .send()
            .await
            .unwrap();
        assert_eq!(evil_host.status(), reqwest::StatusCode::FORBIDDEN);

        let evil_host_with_port = mcp_post(&s.url, &add)
            .header("Host", "evil.example:8001")
            .send()
            .await
            .unwrap();
        assert_eq!(evil_host_with_port.status(), reqwest::StatusCode::FORBIDDEN);

        // Nothing reached the store.
        let all = db.store.list("carol", &all_filter()).await.unwrap();
        assert!(all.tasks.is_empty(), "{:?}", all.tasks);

        // A loopback page and `localhost` are accepted.
        let (_, ok_origin) = json_rpc(
            mcp_post(&s.url, &tool_call(2, "list_tasks", json!({})))
                .header("Origin", "http://localhost:3000")
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(ok_origin["result"]["isError"], json!(false), "{ok_origin}");
        let port = s
            .url
            .rsplit(':')
            .next()
            .unwrap()
            .trim_end_matches("/mcp")
            .to_string();
        let (_, ok_host) = json_rpc(
            mcp_post(&s.url, &tool_call(3, "list_tasks", json!({})))
                .header("Host", format!("localhost:{port}"))
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(ok_host["result"]["isError"], json!(false), "{ok_host}");
    })
    .await;
}

#[tokio::test]
async fn http_refuses_an_oversized_body_with_413() {
    with_sqlite(|db| async move {
        let s = spawn_http(&db.url).await;
        let huge = "x".repeat(todo_mcp::http::MAX_BODY_BYTES + 1024);
        let resp = mcp_post(
            &s.url,
            &tool_call(1, "add_task", json!({"title": "big", "description": huge})),
        )
        .send()
        .await
        .unwrap();
        assert_eq!(resp.status(), reqwest::StatusCode::PAYLOAD_TOO_LARGE);
        assert!(
            db.store
                .list("carol", &all_filter())
                .await
                .unwrap()
                .tasks
                .is_empty()
        );

        // A body just under the limit is served (and refused by the domain rules instead).
        let (_, under) = json_rpc(
            mcp_post(
                &s.url,
                &tool_call(
                    2,
                    "add_task",
                    json!({"title": "big", "description": "y".repeat(200 * 1024)}),
                ),
            )
            .send()
            .await
            .unwrap(),
        )
        .await;
        assert_eq!(under["result"]["isError"], json!(true), "{under}");
        assert!(
            under["result"]["content"][0]["text"]
                .as_str()
                .unwrap()
                .contains("`description`")
        );
    })
    .await;
}

#[tokio::test]
async fn http_exits_cleanly_on_sigterm() {
    with_sqlite(|db| async move {
        let mut s = spawn_http(&db.url).await;
        // The server is really serving before the signal.
        json_rpc(mcp_post(&s.url, &initialize(1)).send().await.unwrap()).await;
        let pid = s.proc.child.id().expect("running child has a pid");
        let kill = std::process::Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status()
            .expect("run kill");
        assert!(kill.success());
        let status = s.proc.exit_status(Duration::from_secs(5)).await;
        assert!(
            status.success(),
            "exit after SIGTERM: {status}\n{}",
            s.proc.logs()
        );
        s.proc.stderr_line("shutdown signal received").await;
    })
    .await;
}

#[tokio::test]
async fn http_refuses_to_listen_beyond_loopback_without_auth() {
    with_sqlite(|db| async move {
        let mut cmd = command(&db.url);
        cmd.args(["http", "--bind", "0.0.0.0:0"]);
        let mut p = Proc::spawn(cmd);
        let status = p.exit_status(DEADLINE).await;
        assert!(!status.success(), "must refuse to start: {status}");
        let line = p.stderr_line("AUTH_JWT_SECRET").await;
        assert!(line.contains("0.0.0.0"), "{line}");
    })
    .await;
}

#[tokio::test]
async fn rmcp_streamable_http_client_round_trips() {
    use rmcp::transport::StreamableHttpClientTransport;

    with_sqlite(|db| async move {
        let s = spawn_http(&db.url).await;
        let client: Client = timeout(
            DEADLINE,
            ().serve(StreamableHttpClientTransport::from_uri(s.url.clone())),
        )
        .await
        .expect("handshake within the deadline")
        .expect("MCP handshake over streamable HTTP");

        let tools = client.list_all_tools().await.unwrap();
        let mut names: Vec<&str> = tools.iter().map(|t| t.name.as_ref()).collect();
        names.sort_unstable();
        let mut want = TOOLS.to_vec();
        want.sort_unstable();
        assert_eq!(names, want);

        let added = ok_task(
            &call(
                &client,
                "add_task",
                json!({"title": "Over HTTP", "priority": "low"}),
            )
            .await,
        );
        assert_eq!(added.id, 1);
        let done = ok_task(&call(&client, "complete_task", json!({"id": 1})).await);
        assert!(done.completed);
        let page = list(&client, json!({"status": "completed"})).await;
        assert_eq!(page.tasks, [done]);
        let missing = call(&client, "delete_task", json!({"id": 7})).await;
        assert!(tool_error(&missing).contains("No task #7"));
        client.cancel().await.unwrap();
    })
    .await;
}
