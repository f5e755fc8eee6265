//! Metrics in the Prometheus/OpenMetrics text format at `/metrics`. Labels are bounded sets
//! (route templates, tool names, outcomes): never a user id, a path or a message.

use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct HttpLabels {
    pub route: String,
    pub method: String,
    pub status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabels {
    pub route: String,
    pub method: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct LlmLabels {
    pub model: String,
    pub outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ModelLabels {
    pub model: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TokenLabels {
    pub model: String,
    pub kind: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ToolLabels {
    pub tool: String,
    pub outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct NameLabels {
    pub tool: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabels {
    pub outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StateLabels {
    pub state: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabels {
    pub reason: String,
}

fn latency() -> Histogram {
    Histogram::new([
        0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
    ])
}

/// Every metric the backend exports.
pub struct Metrics {
    registry: Registry,
    pub http_requests: Family<HttpLabels, Counter>,
    pub http_duration: Family<RouteLabels, Histogram>,
    pub llm_requests: Family<LlmLabels, Counter>,
    pub llm_duration: Family<ModelLabels, Histogram>,
    pub llm_tokens: Family<TokenLabels, Counter>,
    pub tool_calls: Family<ToolLabels, Counter>,
    pub tool_duration: Family<NameLabels, Histogram>,
    pub turns: Family<OutcomeLabels, Counter>,
    pub db_connections: Family<StateLabels, Gauge>,
    pub rejections: Family<ReasonLabels, Counter>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        let mut registry = Registry::default();
        let m = Metrics {
            http_requests: Family::default(),
            http_duration: Family::new_with_constructor(latency),
            llm_requests: Family::default(),
            llm_duration: Family::new_with_constructor(latency),
            llm_tokens: Family::default(),
            tool_calls: Family::default(),
            tool_duration: Family::new_with_constructor(latency),
            turns: Family::default(),
            db_connections: Family::default(),
            rejections: Family::default(),
            registry: Registry::default(),
        };
        registry.register(
            "http_requests",
            "HTTP requests by route template, method and status",
            m.http_requests.clone(),
        );
        registry.register(
            "http_request_duration_seconds",
            "HTTP request latency",
            m.http_duration.clone(),
        );
        registry.register(
            "llm_requests",
            "Language-model calls by model and outcome",
            m.llm_requests.clone(),
        );
        registry.register(
            "llm_request_duration_seconds",
            "Language-model call latency (retries included)",
            m.llm_duration.clone(),
        );
        registry.register(
            "llm_tokens",
            "Tokens reported by the model, by kind (prompt, completion, and cached_prompt: the part of prompt served from the provider's cache)",
            m.llm_tokens.clone(),
        );
        registry.register(
            "tool_calls",
            "Tool calls by tool and outcome",
            m.tool_calls.clone(),
        );
        registry.register(
            "tool_call_duration_seconds",
            "Tool call latency",
            m.tool_duration.clone(),
        );
        registry.register("chat_turns", "Chat turns by outcome", m.turns.clone());
        registry.register(
            "db_pool_connections",
            "Database pool connections by state (in_use, idle)",
            m.db_connections.clone(),
        );
        registry.register(
            "rejections",
            "Requests refused by a limit, by reason",
            m.rejections.clone(),
        );
        Metrics { registry, ..m }
    }

    pub fn observe_http(&self, route: &str, method: &str, status: u16, elapsed: Duration) {
        self.http_requests
            .get_or_create(&HttpLabels {
                route: route.into(),
                method: method.into(),
                status,
            })
            .inc();
        self.http_duration
            .get_or_create(&RouteLabels {
                route: route.into(),
                method: method.into(),
            })
            .observe(elapsed.as_secs_f64());
    }

    pub fn observe_llm(
        &self,
        model: &str,
        outcome: &str,
        elapsed: Duration,
        prompt: u32,
        completion: u32,
    ) {
        self.llm_requests
            .get_or_create(&LlmLabels {
                model: model.into(),
                outcome: outcome.into(),
            })
            .inc();
        self.llm_duration
            .get_or_create(&ModelLabels {
                model: model.into(),
            })
            .observe(elapsed.as_secs_f64());
        for (kind, n) in [("prompt", prompt), ("completion", completion)] {
            self.llm_tokens
                .get_or_create(&TokenLabels {
                    model: model.into(),
                    kind: kind.into(),
                })
                .inc_by(u64::from(n));
        }
    }

    /// Prompt tokens the provider served from its cache (kind `cached_prompt`, a part of
    /// `prompt`).
    pub fn observe_cached_prompt_tokens(&self, model: &str, n: u32) {
        self.llm_tokens
            .get_or_create(&TokenLabels {
                model: model.into(),
                kind: "cached_prompt".into(),
            })
            .inc_by(u64::from(n));
    }

    pub fn observe_tool(&self, tool: &str, is_error: bool, elapsed: Duration) {
        let outcome = if is_error { "error" } else { "ok" };
        self.tool_calls
            .get_or_create(&ToolLabels {
                tool: tool.into(),
                outcome: outcome.into(),
            })
            .inc();
        self.tool_duration
            .get_or_create(&NameLabels { tool: tool.into() })
            .observe(elapsed.as_secs_f64());
    }

    pub fn observe_turn(&self, outcome: &str) {
        self.turns
            .get_or_create(&OutcomeLabels {
                outcome: outcome.into(),
            })
            .inc();
    }

    pub fn reject(&self, reason: &str) {
        self.rejections
            .get_or_create(&ReasonLabels {
                reason: reason.into(),
            })
            .inc();
    }

    /// The text exposition, with pool gauges read now.
    pub fn render(&self, pool: (u32, u32)) -> String {
        self.db_connections
            .get_or_create(&StateLabels {
                state: "in_use".into(),
            })
            .set(i64::from(pool.0));
        self.db_connections
            .get_or_create(&StateLabels {
                state: "idle".into(),
            })
            .set(i64::from(pool.1));
        let mut out = String::new();
        if encode(&mut out, &self.registry).is_err() {
            tracing::error!("encoding metrics failed");
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_exposition_names_every_metric_with_bounded_labels() {
        let m = Metrics::new();
        m.observe_http("/api/{user_id}/chat", "POST", 200, Duration::from_millis(3));
        m.observe_llm("gpt", "ok", Duration::from_millis(50), 120, 7);
        m.observe_cached_prompt_tokens("gpt", 96);
        m.observe_tool("add_task", false, Duration::from_millis(1));
        m.observe_turn("ok");
        m.reject("rate_limited");
        let text = m.render((1, 4));
        for needle in [
            r#"http_requests_total{route="/api/{user_id}/chat",method="POST",status="200"} 1"#,
            r#"llm_tokens_total{model="gpt",kind="prompt"} 120"#,
            r#"llm_tokens_total{model="gpt",kind="cached_prompt"} 96"#,
            r#"tool_calls_total{tool="add_task",outcome="ok"} 1"#,
            r#"chat_turns_total{outcome="ok"} 1"#,
            r#"db_pool_connections{state="idle"} 4"#,
            r#"rejections_total{reason="rate_limited"} 1"#,
            "http_request_duration_seconds_bucket",
        ] {
            assert!(text.contains(needle), "missing {needle} in\n{text}");
        }
    }
}
