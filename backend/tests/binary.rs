//! The real `todo-backend` binary: start-up rules, JSON logs, and graceful shutdown.
#![allow(clippy::unwrap_used)] // test helpers outside #[test] functions

use std::process::Stdio;
use std::time::Duration;

use serde_json::Value;
use todo_test_support::settings::{env_example, help_entries};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::mpsc;

struct Running {
    child: Child,
    lines: mpsc::UnboundedReceiver<String>,
    seen: Vec<String>,
    address: String,
}

fn command(db_dir: &std::path::Path) -> Command {
    let mut c = todo_test_support::process::command(env!("CARGO_BIN_EXE_todo-backend"));
    c.env(
        "DATABASE_URL",
        format!("sqlite://{}/todo.db", db_dir.display()),
    )
    .stdin(Stdio::null())
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .kill_on_drop(true);
    c
}

async fn start(mut c: Command) -> Running {
    let mut child = c.spawn().expect("spawn todo-backend");
    let stderr = child.stderr.take().unwrap();
    let (tx, mut rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        let mut r = BufReader::new(stderr).lines();
        while let Ok(Some(l)) = r.next_line().await {
            if tx.send(l).is_err() {
                break;
            }
        }
    });
    let mut seen = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let line = tokio::time::timeout_at(deadline, rx.recv())
            .await
            .expect("todo-backend did not report its address in time")
            .expect("todo-backend exited before listening");
        let found = line.find("listening on http://").map(|i| {
            line[i + "listening on ".len()..]
                .split(['"', ' '])
                .next()
                .unwrap_or("")
                .to_string()
        });
        seen.push(line);
        if let Some(a) = found {
            return Running {
                child,
                lines: rx,
                seen,
                address: a,
            };
        }
    }
}

impl Running {
    /// Sends SIGTERM and returns the exit status and every log line.
    async fn stop(mut self) -> (std::process::ExitStatus, Vec<String>) {
        let pid = self.child.id().expect("pid").to_string();
        let ok = std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap();
        assert!(ok.success());
        let status = tokio::time::timeout(Duration::from_secs(10), self.child.wait())
            .await
            .expect("no exit within 10 s of SIGTERM")
            .unwrap();
        while let Ok(Some(l)) =
            tokio::time::timeout(Duration::from_secs(2), self.lines.recv()).await
        {
            self.seen.push(l);
        }
        (status, self.seen)
    }
}

#[tokio::test]
async fn json_logs_carry_request_ids_and_never_message_contents() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = command(dir.path());
    c.env("LOG_FORMAT", "json")
        .env("RUST_LOG", "info")
        .args(["serve", "--bind", "127.0.0.1:0"]);
    let app = start(c).await;
    let client = reqwest::Client::new();
    let marker = "secret-shopping-list-4711";
    let r = client
        .post(format!("{}/api/alice/chat", app.address))
        .header("x-request-id", "req-json-1")
        .json(&serde_json::json!({ "message": marker }))
        .send()
        .await
        .unwrap();
    // No model configured: answered with the commands and the settings, and stored.
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["x-request-id"], "req-json-1");
    let r = client
        .get(format!("{}/api/alice/tasks", app.address))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let (status, lines) = app.stop().await;
    assert!(status.success(), "exit status {status:?}");
    assert!(!lines.is_empty());
    let mut saw_request = false;
    for l in &lines {
        let v: Value = serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}"));
        assert!(
            v.get("level").is_some() && v.get("timestamp").is_some(),
            "{l}"
        );
        if l.contains("req-json-1") {
            saw_request = true;
            assert_eq!(v["span"]["route"], "/api/{user_id}/chat", "{l}");
        }
        assert!(!l.contains(marker), "message content logged: {l}");
    }
    assert!(
        saw_request,
        "no log line carried the request id: {lines:#?}"
    );
    assert!(lines.iter().any(|l| l.contains("stopped")), "{lines:#?}");
}

#[tokio::test]
async fn an_unauthenticated_service_refuses_a_public_bind() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = command(dir.path());
    c.args(["serve", "--bind", "0.0.0.0:0"]);
    let out = tokio::time::timeout(Duration::from_secs(30), c.output())
        .await
        .unwrap()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("AUTH_JWT_SECRET"), "{err}");
}

#[tokio::test]
async fn a_bad_database_url_is_reported_without_its_password() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = command(dir.path());
    c.env("DATABASE_URL", "postgres://app:hunter2@127.0.0.1:1/todo")
        .env("DATABASE_CONNECT_TIMEOUT_SECS", "1")
        .args(["migrate"]);
    let out = tokio::time::timeout(Duration::from_secs(30), c.output())
        .await
        .unwrap()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("cannot connect to the database"), "{err}");
    assert!(!err.contains("hunter2"), "{err}");
}

#[tokio::test]
async fn migrate_creates_the_embedded_database() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = command(dir.path());
    c.args(["migrate"]);
    let out = tokio::time::timeout(Duration::from_secs(30), c.output())
        .await
        .unwrap()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(dir.path().join("todo.db").exists());
}

#[tokio::test]
async fn absurd_or_open_ended_settings_are_refused_at_start_up_with_a_message() {
    let dir = tempfile::tempdir().unwrap();
    for (name, value, expected) in [
        ("TURN_TIMEOUT_SECS", "1000000000000", "TURN_TIMEOUT_SECS"),
        ("ALLOWED_ORIGINS", "*", "ALLOWED_ORIGINS"),
        ("ALLOWED_HOSTS", "*", "ALLOWED_HOSTS"),
        ("MAX_TOOL_CALLS_PER_TURN", "0", "MAX_TOOL_CALLS_PER_TURN"),
        // A history allowance that would leave no room in the prompt budget.
        ("HISTORY_MAX_TOKENS", "20000", "MAX_PROMPT_TOKENS"),
        (
            "HEADER_READ_TIMEOUT_SECS",
            "100000",
            "HEADER_READ_TIMEOUT_SECS",
        ),
        // A remote todo-mcp without user authentication (and no single-user opt-in).
        (
            "MCP_SERVER_URL",
            "http://127.0.0.1:9/mcp",
            "SINGLE_USER_DEV",
        ),
    ] {
        let mut c = command(dir.path());
        c.env(name, value)
            .env("MCP_SERVICE_SECRET", "s".repeat(32))
            .args(["serve", "--bind", "127.0.0.1:0"]);
        let out = tokio::time::timeout(Duration::from_secs(30), c.output())
            .await
            .unwrap()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{name}={value} was accepted: {err}");
        assert!(err.contains(expected), "{name}={value}: {err}");
    }
}

#[tokio::test]
async fn a_client_trickling_its_headers_is_disconnected() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = command(dir.path());
    c.env("HEADER_READ_TIMEOUT_SECS", "1")
        .args(["serve", "--bind", "127.0.0.1:0"]);
    let app = start(c).await;
    let addr = app.address.trim_start_matches("http://").to_string();
    let mut s = tokio::net::TcpStream::connect(&addr).await.unwrap();
    tokio::io::AsyncWriteExt::write_all(&mut s, b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        .await
        .unwrap();
    let mut buf = Vec::new();
    let read = tokio::time::timeout(
        Duration::from_secs(30),
        tokio::io::AsyncReadExt::read_to_end(&mut s, &mut buf),
    )
    .await;
    assert!(read.is_ok(), "the slow client's connection stayed open");
    let r = reqwest::get(format!("{}/healthz", app.address))
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let (status, _) = app.stop().await;
    assert!(status.success());
}

#[tokio::test]
async fn help_lists_every_setting_of_env_example_with_its_default() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = command(dir.path());
    c.env_remove("DATABASE_URL").arg("--help");
    let out = c.output().await.unwrap();
    assert!(out.status.success());
    let help = String::from_utf8_lossy(&out.stdout);
    let listed = help_entries(&help);
    // Settings of todo-mcp alone.
    let mcp_only = ["MCP_PUBLIC_URL", "TODO_USER_ID"];
    // Example values, not defaults (no model is configured by default).
    let examples = ["OPENAI_BASE_URL", "OPENAI_API_KEY", "LLM_MODEL"];
    let documented = env_example();
    for (name, value) in &documented {
        if mcp_only.contains(&name.as_str()) {
            assert!(!listed.contains_key(name), "{name} is todo-mcp's");
            continue;
        }
        let entry = listed
            .get(name)
            .unwrap_or_else(|| panic!("--help does not list {name}:\n{help}"));
        if !value.is_empty() && !examples.contains(&name.as_str()) {
            assert!(
                entry.contains(&format!("[default: {value}]")),
                ".env.example gives {name}={value} but --help says:\n{entry}"
            );
        }
    }
    for name in listed.keys() {
        assert!(
            documented.iter().any(|(k, _)| k == name),
            "{name} is a setting missing from .env.example"
        );
    }
    // Secrets never show, even when set.
    let mut c = command(dir.path());
    c.env("AUTH_JWT_SECRET", "hunter2-hunter2-hunter2-hunter2-hunter2")
        .arg("--help");
    let out = c.output().await.unwrap();
    assert!(!String::from_utf8_lossy(&out.stdout).contains("hunter2"));
}

#[tokio::test]
async fn a_malformed_setting_is_refused_by_name_with_exit_code_2() {
    let dir = tempfile::tempdir().unwrap();
    for (name, value) in [
        ("LLM_MAX_TOKENS", "lots"),
        ("MAX_CONNECTIONS", "-1"),
        ("AGENT_COMPOSE_CONFIRMATIONS", "maybe"),
    ] {
        let mut c = command(dir.path());
        c.env(name, value).args(["serve", "--bind", "127.0.0.1:0"]);
        let out = tokio::time::timeout(Duration::from_secs(30), c.output())
            .await
            .unwrap()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{name}={value}: {err}");
        assert!(
            err.contains(&format!("{name} has an invalid value \"{value}\"")),
            "{name}={value}: {err}"
        );
    }
    // An empty value means the default, as in a copied .env.example.
    let mut c = command(dir.path());
    c.env("LLM_MAX_TOKENS", "")
        .env("MAX_CONNECTIONS", " ")
        .arg("migrate");
    let out = c.output().await.unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test]
async fn dot_env_is_read_and_the_environment_wins() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join(".env"),
        "MAX_CONNECTIONS=lots\nTURN_TIMEOUT_SECS=0\n",
    )
    .unwrap();
    let mut c = command(dir.path());
    c.current_dir(dir.path()).arg("migrate");
    let out = c.output().await.unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("MAX_CONNECTIONS has an invalid value"),
        "{err}"
    );

    let mut c = command(dir.path());
    c.current_dir(dir.path())
        .env("MAX_CONNECTIONS", "64")
        .args(["serve", "--bind", "127.0.0.1:0"]);
    let out = tokio::time::timeout(Duration::from_secs(30), c.output())
        .await
        .unwrap()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    // MAX_CONNECTIONS came from the environment; TURN_TIMEOUT_SECS=0 from .env is refused.
    assert!(!out.status.success());
    assert!(err.contains("TURN_TIMEOUT_SECS"), "{err}");
    assert!(!err.contains("MAX_CONNECTIONS"), "{err}");
}

#[tokio::test]
async fn unrouted_requests_and_preflights_are_logged_with_their_request_id() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = command(dir.path());
    c.env("LOG_FORMAT", "json")
        .env("ALLOWED_ORIGINS", "https://app.example.com")
        .args(["serve", "--bind", "127.0.0.1:0"]);
    let running = start(c).await;
    let client = reqwest::Client::new();
    let base = running.address.clone();
    let cases = [
        (
            reqwest::Method::GET,
            "/no/such/page",
            "edge-404",
            404,
            "unmatched",
        ),
        // The path matched a route (named in the log), the method did not.
        (
            reqwest::Method::PUT,
            "/api/me/chat",
            "edge-405",
            405,
            "/api/{user_id}/chat",
        ),
        // Answered by the CORS layer before any routing.
        (
            reqwest::Method::OPTIONS,
            "/api/me/chat",
            "edge-preflight",
            200,
            "unmatched",
        ),
    ];
    for (method, path, id, status, _) in &cases {
        let r = client
            .request(method.clone(), format!("{base}{path}"))
            .header("x-request-id", *id)
            .header("origin", "https://app.example.com")
            .header("access-control-request-method", "POST")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), *status, "{method} {path}");
        assert_eq!(r.headers()["x-request-id"], *id);
        if *status >= 400 {
            let v: Value = r.json().await.unwrap();
            assert!(v["error"]["code"].is_string(), "{v}");
        }
    }
    let (_, lines) = running.stop().await;
    for (method, _, id, status, route) in &cases {
        let served = lines.iter().find_map(|l| {
            let v: Value = serde_json::from_str(l).ok()?;
            (v["span"]["request_id"] == *id && v["message"] == "served").then_some(v)
        });
        let v = served.unwrap_or_else(|| panic!("no access log line for {id}: {lines:#?}"));
        assert_eq!(v["status"], *status, "{v}");
        assert_eq!(v["span"]["method"], method.as_str(), "{v}");
        assert_eq!(v["span"]["route"], *route, "{v}");
    }
}
