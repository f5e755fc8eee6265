//! Settings from the environment (names are a contract: see `.env.example`).

use std::str::FromStr;
use std::time::Duration;

use anyhow::Context;

use crate::agent::TurnLimits;
use crate::agent::llm::LlmConfig;

/// Everything the backend reads at start-up.
#[derive(Debug, Clone)]
pub struct Settings {
    pub database_url: Option<String>,
    /// `None`: chat answers 503 naming the settings to set.
    pub llm: Option<LlmConfig>,
    pub mcp_server_url: Option<String>,
    /// The system prompt's base text.
    pub prompt: String,
    pub limits: TurnLimits,
    /// Longest chat message, in characters.
    pub max_message_chars: usize,
    /// Largest request body, in bytes.
    pub max_body_bytes: usize,
    /// Authentication, the service credential toward todo-mcp, rate and concurrency limits, CORS.
    pub access: crate::access::AccessSettings,
    /// Per-model prices per million tokens (`LLM_PRICES`), for usage cost.
    pub prices: crate::usage::Prices,
    /// How long idempotency records, trash and audit rows are kept (`IDEMPOTENCY_TTL_HOURS`…).
    pub retention: crate::retention::Retention,
}

fn var(name: &str) -> Option<String> {
    std::env::var(name)
        .ok()
        .map(|v| v.trim().to_string())
        .filter(|v| !v.is_empty())
}

fn parsed<T: FromStr>(name: &str, default: T) -> anyhow::Result<T> {
    match var(name) {
        None => Ok(default),
        Some(v) => v
            .parse()
            .map_err(|_| anyhow::anyhow!("{name} has an invalid value {v:?}")),
    }
}

/// An optional setting: unset gives `default`, "none" gives no value.
fn optional<T: FromStr>(name: &str, default: Option<T>) -> anyhow::Result<Option<T>> {
    match var(name) {
        None => Ok(default),
        Some(v) if v.eq_ignore_ascii_case("none") => Ok(None),
        Some(v) => v
            .parse()
            .map(Some)
            .map_err(|_| anyhow::anyhow!("{name} has an invalid value {v:?}")),
    }
}

impl Settings {
    pub fn from_env() -> anyhow::Result<Settings> {
        let llm = match (
            var("OPENAI_API_KEY"),
            var("OPENAI_BASE_URL"),
            var("LLM_MODEL"),
        ) {
            (None, None, None) => None,
            (key, base, model) => Some(LlmConfig {
                base_url: base.unwrap_or_else(|| "https://api.openai.com/v1".into()),
                // Local servers (Ollama, vLLM) accept any key.
                api_key: key.unwrap_or_else(|| "none".into()),
                model: model.unwrap_or_else(|| "gpt-4o-mini".into()),
                max_tokens: parsed("LLM_MAX_TOKENS", 1024)?,
                request_timeout: Duration::from_secs(parsed("LLM_REQUEST_TIMEOUT_SECS", 30)?),
                max_retries: parsed("LLM_MAX_RETRIES", 2)?,
                max_retry_wait: Duration::from_secs(parsed("LLM_MAX_RETRY_WAIT_SECS", 8)?),
                sampling: crate::agent::llm::Sampling {
                    // Chosen by the eval (docs/EVALS.md); "none" leaves it to the server.
                    temperature: optional("LLM_TEMPERATURE", Some(0.0))?,
                    top_p: optional("LLM_TOP_P", None)?,
                    seed: optional("LLM_SEED", None)?,
                },
            }),
        };
        let prompt = match var("AGENT_PROMPT_PATH") {
            Some(p) => std::fs::read_to_string(&p)
                .with_context(|| format!("cannot read AGENT_PROMPT_PATH {p}"))?,
            None => crate::agent::prompt::BUILT_IN.to_string(),
        };
        let d = TurnLimits::default();
        let limits = TurnLimits {
            max_rounds: parsed("AGENT_MAX_ROUNDS", d.max_rounds)?.max(1),
            history_messages: parsed("HISTORY_MAX_MESSAGES", d.history_messages)?.max(1),
            history_tokens: parsed("HISTORY_MAX_TOKENS", d.history_tokens)?,
            open_tasks: parsed("PROMPT_OPEN_TASKS", d.open_tasks)?,
            turn_timeout: Duration::from_secs(parsed(
                "TURN_TIMEOUT_SECS",
                d.turn_timeout.as_secs(),
            )?),
            max_destructive_calls: parsed(
                "MAX_DESTRUCTIVE_CALLS_PER_TURN",
                d.max_destructive_calls,
            )?,
            mcp_request_timeout: Duration::from_secs(parsed(
                "MCP_REQUEST_TIMEOUT_SECS",
                d.mcp_request_timeout.as_secs(),
            )?),
            max_tool_calls_per_reply: parsed(
                "MAX_TOOL_CALLS_PER_REPLY",
                d.max_tool_calls_per_reply,
            )?,
            max_tool_calls_per_turn: parsed("MAX_TOOL_CALLS_PER_TURN", d.max_tool_calls_per_turn)?,
            max_tool_result_chars: parsed("MAX_TOOL_RESULT_CHARS", d.max_tool_result_chars)?,
            max_prompt_tokens: parsed("MAX_PROMPT_TOKENS", d.max_prompt_tokens)?,
            compose_confirmations: parsed("AGENT_COMPOSE_CONFIRMATIONS", d.compose_confirmations)?,
        };
        let settings = Settings {
            database_url: var("DATABASE_URL"),
            llm,
            mcp_server_url: var("MCP_SERVER_URL"),
            prompt,
            limits,
            max_message_chars: parsed("MAX_MESSAGE_CHARS", 4000)?,
            max_body_bytes: parsed("MAX_BODY_BYTES", 64 * 1024)?,
            access: crate::access::AccessSettings::from_env()?,
            prices: crate::usage::Prices::parse(&var("LLM_PRICES").unwrap_or_default())
                .map_err(anyhow::Error::msg)?,
            retention: crate::retention::Retention::from_env()?,
        };
        crate::preflight::check_settings(&settings)?;
        Ok(settings)
    }
}
