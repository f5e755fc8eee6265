//! Seeds a person's tasks through `todo-mcp stdio` (the real tools, on the run's database),
//! so every conversation starts from a known list whatever earlier cases did.

use std::path::Path;
use std::process::Stdio;

use anyhow::{Context, bail};
use chrono::NaiveDate;
use chrono_tz::Tz;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

use crate::cases::{DueSpec, Seed};

pub async fn seed(
    mcp_bin: &Path,
    db_url: &str,
    user: &str,
    seeds: &[Seed],
    today: NaiveDate,
    tz: Tz,
) -> anyhow::Result<()> {
    if seeds.is_empty() {
        return Ok(());
    }
    let mut child = tokio::process::Command::new(mcp_bin)
        .arg("stdio")
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("DATABASE_URL", db_url)
        .env("TODO_USER_ID", user)
        .env("RUST_LOG", "warn")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("cannot start {}", mcp_bin.display()))?;
    let mut rpc = Rpc {
        stdin: child.stdin.take().context("no stdin")?,
        lines: BufReader::new(child.stdout.take().context("no stdout")?).lines(),
        next_id: 0,
    };
    rpc.call(
        "initialize",
        json!({"protocolVersion": "2025-06-18", "capabilities": {},
               "clientInfo": {"name": "todo-eval", "version": "0"}}),
    )
    .await?;
    rpc.send(&json!({"jsonrpc": "2.0", "method": "notifications/initialized"}))
        .await?;
    for s in seeds {
        let mut args = json!({"title": s.title, "tags": s.tags});
        if let Some(d) = &s.due
            && let Some(v) = DueSpec::parse(d)?.seed_value(today, tz)
        {
            args["due"] = json!(v);
        }
        if let Some(p) = &s.priority {
            args["priority"] = json!(p);
        }
        let r = rpc
            .call("tools/call", json!({"name": "add_task", "arguments": args}))
            .await?;
        let id = r["structuredContent"]["id"]
            .as_i64()
            .context("add_task answered no task number")?;
        if s.completed {
            rpc.call(
                "tools/call",
                json!({"name": "complete_task", "arguments": {"id": id}}),
            )
            .await?;
        }
        if s.deleted {
            rpc.call(
                "tools/call",
                json!({"name": "delete_task", "arguments": {"id": id}}),
            )
            .await?;
        }
    }
    drop(rpc);
    let _ = child.wait().await;
    Ok(())
}

/// Newline-delimited JSON-RPC over the child's stdin/stdout.
struct Rpc {
    stdin: tokio::process::ChildStdin,
    lines: tokio::io::Lines<BufReader<tokio::process::ChildStdout>>,
    next_id: u64,
}

impl Rpc {
    async fn send(&mut self, msg: &Value) -> anyhow::Result<()> {
        self.stdin.write_all(format!("{msg}\n").as_bytes()).await?;
        self.stdin.flush().await?;
        Ok(())
    }

    async fn call(&mut self, method: &str, params: Value) -> anyhow::Result<Value> {
        self.next_id += 1;
        let id = self.next_id;
        self.send(&json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}))
            .await?;
        loop {
            let line = self
                .lines
                .next_line()
                .await?
                .context("todo-mcp closed its output")?;
            let v: Value = serde_json::from_str(&line).context("todo-mcp wrote non-JSON")?;
            if v["id"] == json!(id) {
                if v.get("error").is_some() || v["result"]["isError"] == json!(true) {
                    bail!("todo-mcp {method} failed: {v}");
                }
                return Ok(v["result"].clone());
            }
        }
    }
}
