//! HTTP clients of the services under test: the backend's chat API and metrics, the mock
//! model's counters, and todo-mcp's JSON-RPC endpoint.

use std::time::Duration;

use anyhow::Context;
use serde_json::{Value, json};

pub fn http_client(pool: usize) -> anyhow::Result<reqwest::Client> {
    Ok(reqwest::Client::builder()
        .pool_max_idle_per_host(pool)
        .timeout(Duration::from_secs(30))
        .no_proxy()
        .build()?)
}

/// The backend's chat API.
#[derive(Clone)]
pub struct Backend {
    pub http: reqwest::Client,
    pub base: String,
}

impl Backend {
    /// One chat turn; the conversation id on success, a short failure kind otherwise.
    pub async fn turn(
        &self,
        user: &str,
        conversation: Option<&str>,
        message: &str,
    ) -> Result<String, String> {
        let mut body = json!({ "message": message });
        if let Some(c) = conversation {
            body["conversation_id"] = json!(c);
        }
        let r = self
            .http
            .post(format!("{}/api/{user}/chat", self.base))
            .json(&body)
            .send()
            .await
            .map_err(|e| {
                if e.is_timeout() {
                    "client timeout".to_string()
                } else {
                    "connection error".to_string()
                }
            })?;
        let status = r.status();
        let v: Value = r
            .json()
            .await
            .map_err(|_| format!("HTTP {status}, no JSON"))?;
        if !status.is_success() {
            let code = v["error"]["code"].as_str().unwrap_or("?");
            return Err(format!("HTTP {} {code}", status.as_u16()));
        }
        let calls = v["tool_calls"].as_array().map_or(0, Vec::len);
        if calls != 1 || v["tool_calls"][0]["is_error"] != json!(false) {
            return Err(format!("{calls} tool calls (expected one, successful)"));
        }
        v["conversation_id"]
            .as_str()
            .map(str::to_string)
            .ok_or_else(|| "no conversation_id".to_string())
    }

    /// Stored messages of a conversation (oldest first).
    pub async fn messages(&self, user: &str, conversation: &str) -> anyhow::Result<Vec<Value>> {
        let v: Value = self
            .http
            .get(format!(
                "{}/api/{user}/conversations/{conversation}/messages?limit=500",
                self.base
            ))
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?;
        Ok(v["messages"].as_array().cloned().unwrap_or_default())
    }

    /// Sum and count of a Prometheus histogram over all its label sets.
    pub async fn histogram(&self, name: &str) -> anyhow::Result<(f64, f64)> {
        let text = self
            .http
            .get(format!("{}/metrics", self.base))
            .send()
            .await?
            .text()
            .await?;
        Ok(histogram_totals(&text, name))
    }
}

/// `(Σ name_sum, Σ name_count)` in a Prometheus/OpenMetrics text exposition.
pub fn histogram_totals(text: &str, name: &str) -> (f64, f64) {
    let (sum_name, count_name) = (format!("{name}_sum"), format!("{name}_count"));
    let mut sum = 0.0;
    let mut count = 0.0;
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let metric = line.split(['{', ' ']).next().unwrap_or("");
        let value = line
            .rsplit(' ')
            .next()
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0);
        // OpenMetrics may append an exemplar or timestamp; the value is then not last.
        let value = if line.contains(" # ") {
            line.split(" # ")
                .next()
                .and_then(|l| l.rsplit(' ').next())
                .and_then(|v| v.parse().ok())
                .unwrap_or(0.0)
        } else {
            value
        };
        if metric == sum_name {
            sum += value;
        } else if metric == count_name {
            count += value;
        }
    }
    (sum, count)
}

/// The mock model's counters.
#[derive(Clone)]
pub struct Mock {
    pub http: reqwest::Client,
    pub base: String,
}

#[derive(Debug, Clone, Copy, Default)]
pub struct MockStats {
    pub requests: f64,
    pub rejected: f64,
    pub prompt_tokens: f64,
}

impl Mock {
    pub async fn stats(&self) -> anyhow::Result<MockStats> {
        let v: Value = self
            .http
            .get(format!("{}/stats", self.base))
            .send()
            .await?
            .json()
            .await
            .context("mock-llm /stats")?;
        let f = |k: &str| v[k].as_f64().unwrap_or(0.0);
        Ok(MockStats {
            requests: f("requests"),
            rejected: f("rejected"),
            prompt_tokens: f("prompt_tokens"),
        })
    }

    /// Latency of `n` direct chat completions (one user message asking to add a task, the
    /// add_task tool offered), one after another, in microseconds: the mock's own time.
    pub async fn direct_calls_us(&self, n: usize) -> anyhow::Result<Vec<u64>> {
        let body = json!({
            "model": "mock",
            "messages": [
                {"role": "system", "content": "calibration"},
                {"role": "user", "content": "add task 1"}
            ],
            "tools": [{"type": "function", "function": {"name": "add_task", "parameters": {"type": "object"}}}],
            "max_tokens": 1024
        });
        let mut out = Vec::with_capacity(n);
        for _ in 0..n {
            let t = std::time::Instant::now();
            let r = self
                .http
                .post(format!("{}/v1/chat/completions", self.base))
                .json(&body)
                .send()
                .await?
                .error_for_status()?;
            r.bytes().await?;
            out.push(t.elapsed().as_micros() as u64);
        }
        Ok(out)
    }

    pub async fn reset(&self) -> anyhow::Result<()> {
        self.http
            .post(format!("{}/reset", self.base))
            .send()
            .await?
            .error_for_status()?;
        Ok(())
    }
}

/// todo-mcp over streamable HTTP, stateless: one JSON-RPC request per POST.
#[derive(Clone)]
pub struct McpHttp {
    pub http: reqwest::Client,
    pub url: String,
}

impl McpHttp {
    /// One JSON-RPC request; the `result` on success.
    pub async fn rpc(
        &self,
        token: Option<&str>,
        id: u64,
        method: &str,
        params: Value,
    ) -> Result<Value, String> {
        let mut req = self
            .http
            .post(&self.url)
            .header("accept", "application/json, text/event-stream")
            .header("mcp-protocol-version", "2025-06-18")
            .json(&json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        let r = req.send().await.map_err(|e| {
            if e.is_timeout() {
                "client timeout".to_string()
            } else {
                "connection error".to_string()
            }
        })?;
        let status = r.status();
        let text = r
            .text()
            .await
            .map_err(|_| format!("HTTP {status}, no body"))?;
        if !status.is_success() {
            return Err(format!("HTTP {}", status.as_u16()));
        }
        // Plain JSON is configured; an SSE answer carries the JSON on a `data:` line.
        let json_text = if text.trim_start().starts_with('{') {
            text.as_str()
        } else {
            text.lines()
                .find_map(|l| l.strip_prefix("data:"))
                .map(str::trim)
                .unwrap_or("")
        };
        let v: Value =
            serde_json::from_str(json_text).map_err(|_| "answer is not JSON-RPC".to_string())?;
        if let Some(e) = v.get("error") {
            return Err(format!(
                "JSON-RPC error {}",
                e["code"].as_i64().unwrap_or_default()
            ));
        }
        Ok(v["result"].clone())
    }

    /// `tools/call` of add_task; fails unless the tool succeeded.
    pub async fn add_task(&self, token: Option<&str>, id: u64, title: &str) -> Result<(), String> {
        let r = self
            .rpc(
                token,
                id,
                "tools/call",
                json!({"name": "add_task", "arguments": {"title": title}}),
            )
            .await?;
        if r["isError"] == json!(true) {
            return Err("tool error".into());
        }
        if r["structuredContent"]["id"].as_i64().is_none() {
            return Err("no task in the result".into());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::histogram_totals;

    #[test]
    fn histogram_sums_cover_every_label_set() {
        let text = "# TYPE x histogram\n\
                    x_bucket{le=\"0.1\"} 3\n\
                    x_sum{model=\"a\",outcome=\"ok\"} 1.5\n\
                    x_count{model=\"a\",outcome=\"ok\"} 3\n\
                    x_sum{model=\"a\",outcome=\"timeout\"} 0.5\n\
                    x_count{model=\"a\",outcome=\"timeout\"} 1\n\
                    xy_sum 100\n";
        assert_eq!(histogram_totals(text, "x"), (2.0, 4.0));
    }
}
