//! A record before every side effect, proven on the real binary: todo-backend is killed with
//! SIGKILL while a tool call it started is under way. The history it leaves holds the
//! assistant message with the call and an audit row saying the call started; the next
//! attempt (an idempotent retry) shows the call as interrupted, never runs it again, and the
//! conversation goes on.

use std::process::Stdio;
use std::sync::atomic::Ordering;
use std::time::Duration;

use serde_json::{Value, json};
use todo_core::tasks::ListFilter;
use todo_test_support::{Kind, TestDb};
use tokio::io::{AsyncBufReadExt, BufReader};
use wiremock::MockServer;
use wiremock::matchers::{method, path};

use crate::helpers::*;
use crate::stalls::{Mode, SERVICE_SECRET, StallingMcp};

const DEADLINE: Duration = Duration::from_secs(60);

struct Backend {
    child: tokio::process::Child,
    address: String,
}

async fn start_backend(db_url: &str, llm: &str, mcp: &str) -> Backend {
    let mut cmd = todo_test_support::process::command(env!("CARGO_BIN_EXE_todo-backend"));
    cmd.args(["serve", "--bind", "127.0.0.1:0"])
        .env("DATABASE_URL", db_url)
        .env("OPENAI_BASE_URL", format!("{llm}/v1"))
        .env("OPENAI_API_KEY", "sk-test")
        .env("LLM_MODEL", "test-model")
        .env("MCP_SERVER_URL", mcp)
        .env("MCP_SERVICE_SECRET", SERVICE_SECRET)
        .env("SINGLE_USER_DEV", "true")
        .env("TURN_TIMEOUT_SECS", "6")
        .env("MCP_REQUEST_TIMEOUT_SECS", "600")
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let address = tokio::time::timeout(DEADLINE, async {
        let mut seen = String::new();
        while let Some(line) = lines.next_line().await.unwrap() {
            seen.push_str(&line);
            seen.push('\n');
            if let Some(i) = line.find("listening on http://") {
                return line[i + "listening on ".len()..]
                    .split_whitespace()
                    .next()
                    .unwrap()
                    .to_string();
            }
        }
        panic!("todo-backend exited before listening:\n{seen}");
    })
    .await
    .expect("todo-backend started");
    // Keep draining stderr so the process never blocks on a full pipe.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    Backend { child, address }
}

async fn audit_states(db: &TestDb) -> Vec<(String, String)> {
    const SQL: &str = "SELECT tool, state FROM tool_executions ORDER BY id";
    match &db.db {
        todo_core::db::Database::Postgres(p) => sqlx::query_as(SQL).fetch_all(p).await,
        todo_core::db::Database::Sqlite(p) => sqlx::query_as(SQL).fetch_all(p).await,
    }
    .unwrap()
}

async fn alices_tasks(mcp: &StallingMcp) -> Vec<String> {
    let filter = ListFilter {
        status: Default::default(),
        query: None,
        tag: None,
        due_before: None,
        due_after: None,
        parent: None,
        hide_subtasks: false,
        limit: 100,
        offset: 0,
    };
    let page = mcp.store.list("alice", &filter).await.unwrap();
    page.tasks.into_iter().map(|t| t.title).collect()
}

#[tokio::test]
async fn a_backend_killed_mid_tool_call_leaves_a_history_the_retry_continues_without_a_second_task()
{
    let mcp = StallingMcp::start().await;
    let db = TestDb::new(Kind::Sqlite).await.unwrap().unwrap();
    let llm = MockServer::start().await;
    wiremock::Mock::given(method("POST"))
        .and(path("/v1/chat/completions"))
        .respond_with(Script::new(
            &[("call-1", "add_task", r#"{"title":"Buy milk"}"#)],
            "Added “Buy milk”.",
        ))
        .mount(&llm)
        .await;
    let client = reqwest::Client::builder()
        .timeout(DEADLINE)
        .build()
        .unwrap();
    let body = json!({"message": "remember to buy milk"});

    // The tool runs (the task exists) but its answer never comes back; then SIGKILL.
    let mut first = start_backend(&db.url, &llm.uri(), &mcp.url).await;
    mcp.set(Mode::HoldToolResults);
    let request = client
        .post(format!("{}/api/alice/chat", first.address))
        .header("Idempotency-Key", "milk-1")
        .json(&body)
        .send();
    let pending = tokio::spawn(request);
    tokio::time::timeout(DEADLINE, async {
        while mcp.held.load(Ordering::SeqCst) == 0 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("the tool call reached todo-mcp");
    first.child.kill().await.unwrap(); // SIGKILL
    assert!(pending.await.unwrap().is_err(), "the killed turn answered");
    assert_eq!(alices_tasks(&mcp).await, ["Buy milk"]);

    // What the killed process left: the call, stored before it ran, and its audit row.
    assert_eq!(
        audit_states(&db).await,
        [("add_task".to_string(), "started".to_string())]
    );
    mcp.set(Mode::Answer);
    let second = start_backend(&db.url, &llm.uri(), &mcp.url).await;
    let list: Value = client
        .get(format!("{}/api/alice/conversations", second.address))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = list["conversations"][0]["id"].as_str().unwrap().to_string();
    let messages_url = format!("{}/api/alice/conversations/{id}/messages", second.address);
    let before: Value = client
        .get(&messages_url)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let roles = stored_roles(&before);
    assert_eq!(roles, ["user", "assistant"], "{before}");

    // The retry (same key) waits out the dead turn's lease, then finishes the turn.
    let answer = tokio::time::timeout(DEADLINE, async {
        loop {
            let r = client
                .post(format!("{}/api/alice/chat", second.address))
                .header("Idempotency-Key", "milk-1")
                .json(&body)
                .send()
                .await
                .unwrap();
            if r.status() != 409 {
                return r;
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    })
    .await
    .expect("the retry was answered");
    let status = answer.status();
    let answer: Value = answer.json().await.unwrap();
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["conversation_id"], id.as_str(), "{answer}");
    assert_eq!(
        alices_tasks(&mcp).await,
        ["Buy milk"],
        "a second task was made"
    );

    // The interrupted call is shown as interrupted, in the history and in the audit.
    let after: Value = client
        .get(&messages_url)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let tool = after["messages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["role"] == "tool")
        .unwrap_or_else(|| panic!("no tool message: {after}"))
        .clone();
    assert!(
        tool["content"].as_str().unwrap().contains("interrupted"),
        "{tool}"
    );
    assert_eq!(
        audit_states(&db).await,
        [("add_task".to_string(), "interrupted".to_string())]
    );

    // And the conversation goes on.
    let r = client
        .post(format!("{}/api/alice/chat", second.address))
        .json(&json!({"message": "thanks", "conversation_id": id}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    for req in llm.received_requests().await.unwrap() {
        assert_valid_sequence(&req.body_json::<Value>().unwrap()["messages"]);
    }
    drop(second);
    db.cleanup().await;
    mcp.stop().await;
}
