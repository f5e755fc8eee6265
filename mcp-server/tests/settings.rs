//! The `todo-mcp` binary's settings and its request layer: `--help` is the reference (and
//! agrees with `.env.example`), malformed values are refused by name, `.env` is read, and
//! what the router answers on its own is traced and shaped like everything else.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::process::Stdio;
use std::time::Duration;

use serde_json::Value;
use todo_test_support::settings::{env_example, help_entries};
use tokio::io::{AsyncBufReadExt, BufReader};

fn command(dir: &std::path::Path) -> tokio::process::Command {
    let mut c = todo_test_support::process::command(env!("CARGO_BIN_EXE_todo-mcp"));
    c.env(
        "DATABASE_URL",
        format!("sqlite://{}/todo.db", dir.display()),
    )
    .current_dir(dir);
    c
}

#[tokio::test]
async fn help_lists_every_setting_with_the_default_env_example_gives() {
    let dir = tempfile::tempdir().unwrap();
    let out = command(dir.path()).arg("--help").output().await.unwrap();
    assert!(out.status.success());
    let help = String::from_utf8_lossy(&out.stdout);
    let listed = help_entries(&help);
    let documented: BTreeMap<String, String> = env_example().into_iter().collect();
    for name in [
        "DATABASE_URL",
        "DATABASE_MAX_CONNECTIONS",
        "DATABASE_CONNECT_TIMEOUT_SECS",
        "TODO_USER_ID",
        "TODO_TIMEZONE",
        "MCP_PUBLIC_URL",
        "MCP_SERVICE_SECRET",
        "AUTH_JWT_SECRET",
        "AUTH_JWKS_URL",
        "AUTH_JWKS_REFETCH_SECS",
        "AUTH_ISSUER",
        "AUTH_AUDIENCE",
        "AUTH_LEEWAY_SECS",
        "ALLOWED_ORIGINS",
        "ALLOWED_HOSTS",
        "HEADER_READ_TIMEOUT_SECS",
        "MAX_CONNECTIONS",
        "RUST_LOG",
        "LOG_FORMAT",
    ] {
        assert!(
            listed.contains_key(name),
            "--help does not list {name}:\n{help}"
        );
    }
    for (name, entry) in &listed {
        let value = documented
            .get(name)
            .unwrap_or_else(|| panic!("{name} is a setting missing from .env.example"));
        if !value.is_empty() {
            assert!(
                entry.contains(&format!("[default: {value}]")),
                ".env.example gives {name}={value} but --help says:\n{entry}"
            );
        }
    }
}

#[tokio::test]
async fn a_malformed_setting_is_refused_by_name_with_exit_code_2() {
    let dir = tempfile::tempdir().unwrap();
    for (name, value) in [("MAX_CONNECTIONS", "many"), ("AUTH_LEEWAY_SECS", "-5")] {
        let out = command(dir.path())
            .env(name, value)
            .args(["http", "--bind", "127.0.0.1:0"])
            .output()
            .await
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{name}={value}: {err}");
        assert!(
            err.contains(&format!("{name} has an invalid value \"{value}\"")),
            "{err}"
        );
    }
    // In range but refused by a check: exit 1, with the variable's name.
    let out = command(dir.path())
        .env("HEADER_READ_TIMEOUT_SECS", "100000")
        .args(["http", "--bind", "127.0.0.1:0"])
        .output()
        .await
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("HEADER_READ_TIMEOUT_SECS=100000 is outside"),
        "{err}"
    );
}

#[tokio::test]
async fn dot_env_is_read_and_the_environment_wins() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join(".env"),
        "TODO_USER_ID=\nMAX_CONNECTIONS=many\n",
    )
    .unwrap();
    let out = command(dir.path()).arg("migrate").output().await.unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("MAX_CONNECTIONS has an invalid value"),
        "{err}"
    );
    let out = command(dir.path())
        .env("MAX_CONNECTIONS", "8")
        .arg("migrate")
        .output()
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test]
async fn fallbacks_405s_and_preflights_carry_a_request_id_a_log_line_and_the_error_shape() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = command(dir.path())
        .env("LOG_FORMAT", "json")
        .args(["http", "--bind", "127.0.0.1:0"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let mut seen = Vec::new();
    let base = loop {
        let line = tokio::time::timeout_at(deadline, lines.next_line())
            .await
            .expect("todo-mcp did not report its address in time")
            .unwrap()
            .expect("todo-mcp exited before listening");
        if let Some(i) = line.find("listening on http://") {
            let addr: String = line[i + "listening on ".len()..]
                .split(['"', ' '])
                .next()
                .unwrap()
                .trim_end_matches("/mcp")
                .to_string();
            seen.push(line);
            break addr;
        }
        seen.push(line);
    };
    let client = reqwest::Client::new();
    let cases = [
        (reqwest::Method::GET, "/no/such/page", "mcp-404", Some(404)),
        (
            reqwest::Method::POST,
            "/.well-known/oauth-protected-resource",
            "mcp-405",
            Some(405),
        ),
        (reqwest::Method::OPTIONS, "/mcp", "mcp-preflight", None),
    ];
    for (method, path, id, status) in &cases {
        let r = client
            .request(method.clone(), format!("{base}{path}"))
            .header("x-request-id", *id)
            .header("origin", "http://localhost:3000")
            .header("access-control-request-method", "POST")
            .send()
            .await
            .unwrap();
        assert_eq!(r.headers()["x-request-id"], *id, "{method} {path}");
        if let Some(s) = status {
            assert_eq!(r.status().as_u16(), *s, "{method} {path}");
            let v: Value = r.json().await.unwrap();
            assert!(v["error"]["code"].is_string(), "{v}");
            assert!(v["error"]["message"].is_string(), "{v}");
        }
    }
    // Stop it and read every log line.
    let pid = child.id().unwrap().to_string();
    std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap();
    tokio::time::timeout(Duration::from_secs(10), child.wait())
        .await
        .unwrap()
        .unwrap();
    while let Ok(Some(l)) = lines.next_line().await {
        seen.push(l);
    }
    for (method, _, id, _) in &cases {
        let served = seen.iter().find_map(|l| {
            let v: Value = serde_json::from_str(l).ok()?;
            (v["span"]["request_id"] == *id && v["message"] == "served").then_some(v)
        });
        let v = served.unwrap_or_else(|| panic!("no access log line for {id}: {seen:#?}"));
        assert_eq!(v["span"]["method"], method.as_str(), "{v}");
    }
}
