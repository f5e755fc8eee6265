//! todo-mcp alone: stateless `tools/call` (add_task) POSTs to /mcp.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use serde_json::json;

use crate::clients::McpHttp;
use crate::point::{self, Env, PointReport};

/// The `aud` todo-mcp is started with by `scripts/bench.sh` (todo-mcp requires one).
pub const AUDIENCE: &str = "todo-mcp-bench";

/// An HS256 user token for `sub`, valid for an hour.
pub fn token(secret: &str, sub: &str) -> anyhow::Result<String> {
    let now = SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs();
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &json!({"sub": sub, "aud": AUDIENCE, "iat": now, "exp": now + 3600}),
        &jsonwebtoken::EncodingKey::from_secret(secret.as_bytes()),
    )
    .context("signing a benchmark token")
}

/// Checks that a bare `tools/call` (no `initialize` first) works in stateless mode.
pub async fn probe(mcp: &McpHttp, token: Option<&str>) -> anyhow::Result<()> {
    mcp.add_task(token, 1, "probe")
        .await
        .map_err(|e| anyhow::anyhow!("a stateless tools/call without initialize failed: {e}"))
}

/// `tools/call` per second at each concurrency; every worker its own user (its own token)
/// unless `shared_user`, where all workers act for one user.
pub async fn points(
    env: &Env,
    mcp: &McpHttp,
    secret: Option<&str>,
    run: &str,
    concurrency: &[usize],
    duration: Duration,
    shared_user: bool,
) -> anyhow::Result<Vec<PointReport>> {
    let mut out = Vec::new();
    for &c in concurrency {
        let tokens: Vec<Option<String>> = (0..c)
            .map(|i| {
                let sub = if shared_user {
                    format!("{run}-mcp-shared")
                } else {
                    format!("{run}-mcp-c{c}-u{i}")
                };
                secret.map(|s| token(s, &sub)).transpose()
            })
            .collect::<anyhow::Result<_>>()?;
        let tokens = Arc::new(tokens);
        let m = mcp.clone();
        let label = if shared_user {
            format!("{c} concurrent clients, one user")
        } else {
            format!("{c} concurrent clients")
        };
        let max = 20_000 * duration.as_secs().max(1);
        out.push(
            point::measure(
                env,
                &label,
                c,
                duration,
                max,
                0,
                Duration::ZERO,
                move |w, i| {
                    let (m, tokens) = (m.clone(), tokens.clone());
                    async move {
                        m.add_task(tokens[w].as_deref(), i + 2, &format!("task {i}"))
                            .await
                    }
                },
            )
            .await?,
        );
    }
    Ok(out)
}

/// The tool definitions a model is sent with every call (as the backend builds them from
/// tools/list): (number of tools, characters of their JSON).
pub async fn tool_definitions(
    mcp: &McpHttp,
    token: Option<&str>,
) -> anyhow::Result<(usize, usize)> {
    let r = mcp
        .rpc(token, 99, "tools/list", json!({}))
        .await
        .map_err(|e| anyhow::anyhow!("tools/list failed: {e}"))?;
    let tools = r["tools"].as_array().cloned().unwrap_or_default();
    let mut chars = 0;
    for t in &tools {
        let mut params = t["inputSchema"].clone();
        if let Some(o) = params.as_object_mut() {
            o.remove("$schema");
        }
        let def = json!({"type": "function", "function": {
            "name": t["name"], "description": t["description"], "parameters": params}});
        chars += def.to_string().chars().count();
    }
    Ok((tools.len(), chars))
}
