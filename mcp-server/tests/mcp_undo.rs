//! The `undo` tool through real MCP clients: in-process (a chat turn's grouped session and a
//! plain one), the `todo-mcp stdio` binary, and streamable HTTP. Without a group every MCP
//! request is its own undo group; a grouped session (one chat turn) is undone as a whole.

#![allow(clippy::unwrap_used)]

use std::future::Future;
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use rmcp::ServiceExt;
use serde_json::json;
use todo_core::tasks::{ChangeKind, Task, TaskStore, UndoReport};
use todo_mcp::http::{HttpSettings, router};
use todo_mcp::tools::{Identity, TaskTools};
use todo_test_support::Kind;
use todo_test_support::db::with_database;
use todo_test_support::mcp::{Client, call, ok, text_of, tool_error};
use todo_test_support::process::command;
use tokio::time::timeout;
use tokio_util::sync::CancellationToken;

const BIN: &str = env!("CARGO_BIN_EXE_todo-mcp");
/// Generous for a debug build on a busy machine; only reached on failure.
const DEADLINE: Duration = Duration::from_secs(20);

/// Runs `test` with a fresh database of `kind` (its store and URL), removed afterwards.
async fn with_db<F, Fut>(kind: Kind, test: F)
where
    F: FnOnce(Arc<dyn TaskStore>, String) -> Fut,
    Fut: Future<Output = ()>,
{
    with_database(kind, |db, url| test(db.task_store(), url)).await
}

async fn connect(tools: TaskTools) -> Client {
    let (server_io, client_io) = tokio::io::duplex(64 * 1024);
    tokio::spawn(async move {
        if let Ok(running) = tools.serve(server_io).await {
            let _ = running.waiting().await;
        }
    });
    ().serve(client_io).await.expect("MCP handshake in process")
}

async fn add(client: &Client, title: &str) -> Task {
    ok(&call(client, "add_task", json!({ "title": title })).await)
}

/// Task numbers the client sees as live.
async fn live(client: &Client) -> Vec<i64> {
    let page: todo_core::tasks::TaskPage =
        ok(&call(client, "list_tasks", json!({"status": "all"})).await);
    page.tasks.iter().map(|t| t.id).collect()
}

#[tokio::test]
async fn the_undo_tool_is_listed_with_a_schema_and_truthful_annotations() {
    with_db(Kind::Sqlite, |store, _| async move {
        let client = connect(TaskTools::new(store, Identity::Fixed("alice".into()))).await;
        let tools = client.list_all_tools().await.unwrap();
        let undo = tools
            .iter()
            .find(|t| t.name == "undo")
            .expect("undo listed");
        let a = undo.annotations.clone().unwrap();
        assert_eq!(a.read_only_hint, Some(false), "it changes tasks");
        assert_eq!(a.destructive_hint, Some(true), "it can revert changes");
        assert_eq!(a.idempotent_hint, Some(false), "twice walks further back");
        assert_eq!(a.open_world_hint, Some(false));
        assert_eq!(undo.input_schema.get("type"), Some(&json!("object")));
        assert!(
            undo.input_schema
                .get("properties")
                .is_none_or(|p| p.as_object().is_some_and(|o| o.is_empty())),
            "undo takes no arguments: {:?}",
            undo.input_schema
        );
        let out = undo.output_schema.clone().expect("an output schema");
        assert!(out["properties"].get("undone").is_some(), "{out:?}");
        client.cancel().await.unwrap();
    })
    .await;
}

#[tokio::test]
async fn a_grouped_session_is_undone_as_one_turn_and_then_walks_back() {
    with_db(Kind::Sqlite, |store, _| async move {
        // An earlier turn adds one task; the next turn adds two and completes the first.
        let t1 =
            connect(TaskTools::new(store.clone(), Identity::Fixed("alice".into())).in_group("t1"))
                .await;
        let first = add(&t1, "Buy milk").await;
        t1.cancel().await.unwrap();
        let t2 =
            connect(TaskTools::new(store.clone(), Identity::Fixed("alice".into())).in_group("t2"))
                .await;
        add(&t2, "Call mum").await;
        add(&t2, "Water plants").await;
        let _: Task = ok(&call(&t2, "complete_task", json!({"id": first.id})).await);

        let r = call(&t2, "undo", json!({})).await;
        let report: UndoReport = ok(&r);
        assert_eq!(report.undone.len(), 3, "{}", text_of(&r));
        let milk = report
            .undone
            .iter()
            .find(|u| u.task.id == first.id)
            .unwrap();
        assert_eq!(milk.changes, vec![ChangeKind::Complete]);
        assert_eq!(milk.task, first, "back exactly as it was");
        assert!(text_of(&r).contains("trash"), "{}", text_of(&r));
        assert_eq!(live(&t2).await, vec![first.id]);

        // Again: the earlier turn.
        let report: UndoReport = ok(&call(&t2, "undo", json!({})).await);
        assert_eq!(report.undone[0].changes, vec![ChangeKind::Add]);
        assert!(live(&t2).await.is_empty());
        let none = tool_error(&call(&t2, "undo", json!({})).await);
        assert!(none.contains("nothing to undo"), "{none}");
        t2.cancel().await.unwrap();
    })
    .await;
}

#[tokio::test]
async fn bad_undo_calls_are_tool_errors() {
    with_db(Kind::Sqlite, |store, _| async move {
        let client = connect(TaskTools::new(
            store.clone(),
            Identity::Fixed("alice".into()),
        ))
        .await;
        add(&client, "A").await;
        let e = tool_error(&call(&client, "undo", json!({"steps": 2})).await);
        assert!(e.contains("steps"), "names the unknown argument: {e}");
        let e = tool_error(&call(&client, "undo", json!({"user_id": "bob"})).await);
        assert!(e.contains("user_id"), "{e}");
        // Naming oneself is allowed, as for every tool.
        let _: UndoReport = ok(&call(&client, "undo", json!({"user_id": "alice"})).await);
        client.cancel().await.unwrap();
    })
    .await;
}

#[tokio::test]
async fn undo_refuses_naming_the_task_when_it_changed_afterwards() {
    with_db(Kind::Sqlite, |store, _| async move {
        let turn = connect(
            TaskTools::new(store.clone(), Identity::Fixed("alice".into())).in_group("turn"),
        )
        .await;
        let other = connect(TaskTools::new(
            store.clone(),
            Identity::Fixed("alice".into()),
        ))
        .await;
        let a = add(&turn, "A").await;
        // Another client renames it while the turn is still going, then the turn goes on.
        let _: Task = ok(&call(&other, "update_task", json!({"id": a.id, "title": "A!"})).await);
        add(&turn, "B").await;
        let e = tool_error(&call(&other, "undo", json!({})).await);
        assert!(e.contains(&format!("#{}", a.id)), "names the task: {e}");
        assert!(e.contains("Nothing was undone"), "{e}");
        assert_eq!(live(&other).await.len(), 2, "nothing changed");
        turn.cancel().await.unwrap();
        other.cancel().await.unwrap();
    })
    .await;
}

#[tokio::test]
async fn undo_never_touches_another_users_changes() {
    with_db(Kind::Sqlite, |store, _| async move {
        let alice = connect(TaskTools::new(
            store.clone(),
            Identity::Fixed("alice".into()),
        ))
        .await;
        let bob = connect(TaskTools::new(store.clone(), Identity::Fixed("bob".into()))).await;
        add(&alice, "Alice's").await;
        let e = tool_error(&call(&bob, "undo", json!({})).await);
        assert!(e.contains("nothing to undo"), "{e}");
        assert_eq!(live(&alice).await.len(), 1);
        alice.cancel().await.unwrap();
        bob.cancel().await.unwrap();
    })
    .await;
}

/// Over stdio each request is its own group: undo reverts the last call only.
#[tokio::test]
async fn over_stdio_each_request_is_its_own_group() {
    with_db(Kind::Sqlite, |_, url| async move {
        let mut child = command(BIN)
            .arg("stdio")
            .env("DATABASE_URL", &url)
            .env("TODO_USER_ID", "carol")
            .env("RUST_LOG", "warn")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn todo-mcp stdio");
        let io = (child.stdout.take().unwrap(), child.stdin.take().unwrap());
        let client: Client = timeout(DEADLINE, ().serve(io))
            .await
            .expect("handshake within the deadline")
            .expect("MCP handshake over stdio");
        let a = add(&client, "First").await;
        let b = add(&client, "Second").await;
        let report: UndoReport = ok(&call(&client, "undo", json!({})).await);
        assert_eq!(report.undone.len(), 1);
        assert_eq!(report.undone[0].task.id, b.id);
        assert_eq!(live(&client).await, vec![a.id]);
        let _: UndoReport = ok(&call(&client, "undo", json!({})).await);
        assert!(live(&client).await.is_empty());
        client.cancel().await.unwrap();
        let _ = timeout(DEADLINE, child.wait()).await;
    })
    .await;
}

/// Over streamable HTTP, on PostgreSQL when available: same rules, per request.
#[tokio::test]
async fn over_http_on_postgres_undo_walks_back_request_by_request() {
    for kind in [Kind::Postgres, Kind::Sqlite] {
        with_db(kind, |store, _| async move {
            use rmcp::transport::StreamableHttpClientTransport;
            let shutdown = CancellationToken::new();
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = listener.local_addr().unwrap();
            let app = router(
                store,
                HttpSettings {
                    allowed_hosts: vec!["127.0.0.1".into(), "localhost".into()],
                    allowed_origins: vec![],
                    open_user: "dave".into(),
                    auth: None,
                    public_url: None,
                    authorization_servers: vec![],
                },
                shutdown.clone(),
            );
            let server = tokio::spawn(todo_mcp::http::serve(listener, app, shutdown.clone()));
            let client: Client = timeout(
                DEADLINE,
                ().serve(StreamableHttpClientTransport::from_uri(format!(
                    "http://{addr}/mcp"
                ))),
            )
            .await
            .expect("handshake within the deadline")
            .expect("MCP handshake over HTTP");
            let a = add(&client, "Over HTTP").await;
            let _: Task = ok(&call(&client, "complete_task", json!({"id": a.id})).await);
            let r: UndoReport = ok(&call(&client, "undo", json!({})).await);
            assert_eq!(r.undone[0].task, a, "the completion is undone");
            let r: UndoReport = ok(&call(&client, "undo", json!({})).await);
            assert_eq!(r.undone[0].changes, vec![ChangeKind::Add]);
            let e = tool_error(&call(&client, "undo", json!({})).await);
            assert!(e.contains("nothing to undo"), "{e}");
            client.cancel().await.unwrap();
            shutdown.cancel();
            let _ = timeout(DEADLINE, server).await;
        })
        .await;
    }
}

/// A client that names a group in the `todo-change-group` header (as the backend does for
/// a chat turn) gets its requests undone together; a malformed name is ignored.
#[tokio::test]
async fn over_http_a_named_change_group_spans_requests() {
    use rmcp::transport::StreamableHttpClientTransport;
    use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;

    with_db(Kind::Sqlite, |store, _| async move {
        let shutdown = CancellationToken::new();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let app = router(
            store,
            HttpSettings {
                allowed_hosts: vec!["127.0.0.1".into()],
                allowed_origins: vec![],
                open_user: "erin".into(),
                auth: None,
                public_url: None,
                authorization_servers: vec![],
            },
            shutdown.clone(),
        );
        let server = tokio::spawn(todo_mcp::http::serve(listener, app, shutdown.clone()));
        let connect = |group: &str| {
            let headers = std::collections::HashMap::from([(
                http::HeaderName::from_static(todo_mcp::tools::CHANGE_GROUP_HEADER),
                http::HeaderValue::from_str(group).unwrap(),
            )]);
            let config =
                StreamableHttpClientTransportConfig::with_uri(format!("http://{addr}/mcp"))
                    .custom_headers(headers);
            async move {
                let c: Client = timeout(
                    DEADLINE,
                    ().serve(StreamableHttpClientTransport::from_config(config)),
                )
                .await
                .expect("handshake within the deadline")
                .expect("MCP handshake over HTTP");
                c
            }
        };
        let bad = connect("not a group!").await;
        add(&bad, "Alone 1").await;
        add(&bad, "Alone 2").await;
        let turn = connect("turn-7").await;
        add(&turn, "One").await;
        add(&turn, "Two").await;
        let r: UndoReport = ok(&call(&turn, "undo", json!({})).await);
        assert_eq!(r.undone.len(), 2, "both requests of the group");
        assert_eq!(live(&turn).await, vec![1, 2]);
        let r: UndoReport = ok(&call(&bad, "undo", json!({})).await);
        assert_eq!(
            r.undone.len(),
            1,
            "an ignored group name leaves groups of one"
        );
        assert_eq!(live(&bad).await, vec![1]);
        turn.cancel().await.unwrap();
        bad.cancel().await.unwrap();
        shutdown.cancel();
        let _ = timeout(DEADLINE, server).await;
    })
    .await;
}
