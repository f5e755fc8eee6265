//! The backend's settings: one clap struct, every field an option and an environment
//! variable (the names are a contract: `.env.example`, and `--help` lists them with their
//! defaults). [`Config::settings`] turns them into what the code uses and refuses what makes
//! no sense, naming the variable.

use std::net::SocketAddr;
use std::str::FromStr;
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand};
use todo_core::db::DbOptions;
use todo_service::settings::{
    AuthArgs, DbArgs, HostArgs, LogArgs, ServeArgs, lenient, nonempty, secret,
};

use crate::agent::TurnLimits;
use crate::agent::llm::LlmConfig;

/// Every setting of todo-backend: a long option each, or the environment variable named in
/// brackets (also read from `.env`; the environment wins).
#[derive(Parser, Clone)]
#[command(
    name = "todo-backend",
    version,
    about = "Chat-driven todo agent: HTTP API"
)]
pub struct Config {
    #[command(subcommand)]
    pub command: Option<Command>,

    #[command(flatten)]
    pub db: DbArgs,

    /// Base URL of an OpenAI-compatible chat-completions API (default
    /// https://api.openai.com/v1 once any LLM setting is given; none: no free-form chat).
    #[arg(long, env = "OPENAI_BASE_URL")]
    pub openai_base_url: Option<String>,
    /// The model API's key (local servers accept any).
    #[arg(long, env = "OPENAI_API_KEY", hide_env_values = true)]
    pub openai_api_key: Option<String>,
    /// The model (default gpt-4o-mini once any LLM setting is given).
    #[arg(long, env = "LLM_MODEL")]
    pub llm_model: Option<String>,
    /// Completion tokens per model call (always sent as max_tokens); a reply cut off there
    /// is refused (502 llm_reply_truncated), not stored.
    #[arg(long, env = "LLM_MAX_TOKENS", default_value = "1024", value_parser = lenient::<u32>())]
    pub llm_max_tokens: u32,
    /// Per HTTP request to the model, in seconds.
    #[arg(long, env = "LLM_REQUEST_TIMEOUT_SECS", default_value = "30", value_parser = lenient::<u64>())]
    pub llm_request_timeout_secs: u64,
    /// Retries of a model call (connection errors, 408, 409, 429, 5xx).
    #[arg(long, env = "LLM_MAX_RETRIES", default_value = "2", value_parser = lenient::<usize>())]
    pub llm_max_retries: usize,
    /// Longest Retry-After waited for before giving up on a retry, in seconds.
    #[arg(long, env = "LLM_MAX_RETRY_WAIT_SECS", default_value = "8", value_parser = lenient::<u64>())]
    pub llm_max_retry_wait_secs: u64,
    /// Prices per million tokens: model=input:output[:cached_input],…
    #[arg(long, env = "LLM_PRICES", default_value = "")]
    pub llm_prices: String,
    /// Sampling temperature sent with every request ("none": the server's default).
    #[arg(long, env = "LLM_TEMPERATURE", default_value = "0")]
    pub llm_temperature: String,
    /// top_p sent with every request ("none": the server's default).
    #[arg(long, env = "LLM_TOP_P", default_value = "none")]
    pub llm_top_p: String,
    /// Seed sent with every request ("none": not sent).
    #[arg(long, env = "LLM_SEED", default_value = "none")]
    pub llm_seed: String,

    /// A file replacing the compiled-in AGENT_PROMPT.md.
    #[arg(long, env = "AGENT_PROMPT_PATH")]
    pub agent_prompt_path: Option<String>,
    /// Model round trips per turn (1 to 50).
    #[arg(long, env = "AGENT_MAX_ROUNDS", default_value = "6", value_parser = lenient::<usize>())]
    pub agent_max_rounds: usize,
    /// The whole turn's deadline in seconds (1 to 3600; 504 past it).
    #[arg(long, env = "TURN_TIMEOUT_SECS", default_value = "60", value_parser = lenient::<u64>())]
    pub turn_timeout_secs: u64,
    /// Longest wait for one MCP request, in seconds (1 to 600).
    #[arg(long, env = "MCP_REQUEST_TIMEOUT_SECS", default_value = "15", value_parser = lenient::<u64>())]
    pub mcp_request_timeout_secs: u64,
    /// Tool calls run from one model reply (1 to 100).
    #[arg(long, env = "MAX_TOOL_CALLS_PER_REPLY", default_value = "8", value_parser = lenient::<usize>())]
    pub max_tool_calls_per_reply: usize,
    /// Tool calls run in one turn (1 to 1000).
    #[arg(long, env = "MAX_TOOL_CALLS_PER_TURN", default_value = "16", value_parser = lenient::<usize>())]
    pub max_tool_calls_per_turn: usize,
    /// Characters of a tool result sent back to the model (100 to 1000000).
    #[arg(long, env = "MAX_TOOL_RESULT_CHARS", default_value = "8000", value_parser = lenient::<usize>())]
    pub max_tool_result_chars: usize,
    /// Estimated prompt tokens of one model round (1000 to 2000000).
    #[arg(long, env = "MAX_PROMPT_TOKENS", default_value = "32000", value_parser = lenient::<usize>())]
    pub max_prompt_tokens: usize,
    /// Stored messages sent to the model as history (1 to 10000).
    #[arg(long, env = "HISTORY_MAX_MESSAGES", default_value = "40", value_parser = lenient::<u32>())]
    pub history_max_messages: u32,
    /// Estimated tokens of that history (100 to 1000000).
    #[arg(long, env = "HISTORY_MAX_TOKENS", default_value = "6000", value_parser = lenient::<usize>())]
    pub history_max_tokens: usize,
    /// Open tasks shown to the model (0 to 500).
    #[arg(long, env = "PROMPT_OPEN_TASKS", default_value = "20", value_parser = lenient::<u32>())]
    pub prompt_open_tasks: u32,
    /// delete_task and update_task calls attempted in one turn before the model must ask.
    #[arg(long, env = "MAX_DESTRUCTIVE_CALLS_PER_TURN", default_value = "3", value_parser = lenient::<usize>())]
    pub max_destructive_calls_per_turn: usize,
    /// End a round whose tool calls all succeeded and all wrote with a composed confirmation.
    #[arg(long, env = "AGENT_COMPOSE_CONFIRMATIONS", default_value = "true", value_parser = lenient::<bool>(), action = clap::ArgAction::Set)]
    pub agent_compose_confirmations: bool,
    /// Longest chat message, in characters.
    #[arg(long, env = "MAX_MESSAGE_CHARS", default_value = "4000", value_parser = lenient::<usize>())]
    pub max_message_chars: usize,
    /// Largest request body, in bytes.
    #[arg(long, env = "MAX_BODY_BYTES", default_value = "65536", value_parser = lenient::<usize>())]
    pub max_body_bytes: usize,

    /// A remote `todo-mcp http` for the tools (unset: tools run in-process).
    #[arg(long, env = "MCP_SERVER_URL")]
    pub mcp_server_url: Option<String>,
    /// Allows plain http to a non-loopback MCP_SERVER_URL.
    #[arg(long, env = "MCP_ALLOW_PLAIN_HTTP", default_value = "false", value_parser = lenient::<bool>(), action = clap::ArgAction::Set)]
    pub mcp_allow_plain_http: bool,
    /// Allows a remote todo-mcp without user authentication (one-person development setup).
    #[arg(long, env = "SINGLE_USER_DEV", default_value = "false", value_parser = lenient::<bool>(), action = clap::ArgAction::Set)]
    pub single_user_dev: bool,
    /// The zone in which the in-process tools read a due date-time without a UTC offset
    /// when a turn names none; unset: the machine's.
    #[arg(long, env = "TODO_TIMEZONE")]
    pub todo_timezone: Option<String>,

    #[command(flatten)]
    pub auth: AuthArgs,
    #[command(flatten)]
    pub hosts: HostArgs,
    /// When set, /metrics needs `Authorization: Bearer <METRICS_TOKEN>`.
    #[arg(long, env = "METRICS_TOKEN", hide_env_values = true)]
    pub metrics_token: Option<String>,
    /// Chat turns a user may start per minute (0: no limit).
    #[arg(long, env = "RATE_LIMIT_PER_MINUTE", default_value = "30", value_parser = lenient::<u32>())]
    pub rate_limit_per_minute: u32,
    /// Model turns running at once in this process (503 past it).
    #[arg(long, env = "MAX_CONCURRENT_TURNS", default_value = "32", value_parser = lenient::<usize>())]
    pub max_concurrent_turns: usize,
    /// Chat turns one user may have in flight in this process (429 past it).
    #[arg(long, env = "MAX_TURNS_PER_USER", default_value = "4", value_parser = lenient::<usize>())]
    pub max_turns_per_user: usize,
    #[command(flatten)]
    pub serve: ServeArgs,

    /// Hours an idempotency record is kept (1 to 8760).
    #[arg(long, env = "IDEMPOTENCY_TTL_HOURS", default_value = "24", value_parser = lenient::<u64>())]
    pub idempotency_ttl_hours: u64,
    /// Days a trashed task is kept (0: forever).
    #[arg(long, env = "TRASH_RETENTION_DAYS", default_value = "30", value_parser = lenient::<u64>())]
    pub trash_retention_days: u64,
    /// Days a tool audit row is kept (0: forever).
    #[arg(long, env = "AUDIT_RETENTION_DAYS", default_value = "90", value_parser = lenient::<u64>())]
    pub audit_retention_days: u64,
    /// Seconds between two retention sweeps (10 to 604800).
    #[arg(long, env = "RETENTION_SWEEP_SECS", default_value = "3600", value_parser = lenient::<u64>())]
    pub retention_sweep_secs: u64,

    /// Seconds to keep listening (unready) after SIGTERM.
    #[arg(long, env = "SHUTDOWN_DELAY_SECS", default_value = "0", value_parser = lenient::<u64>())]
    pub shutdown_delay_secs: u64,
    /// Seconds after SIGTERM by which the process exits (default: TURN_TIMEOUT_SECS + 10).
    #[arg(long, env = "SHUTDOWN_TIMEOUT_SECS")]
    pub shutdown_timeout_secs: Option<String>,

    #[command(flatten)]
    pub log: LogArgs,
}

/// What to do.
#[derive(Subcommand, Clone)]
pub enum Command {
    /// Serve the HTTP API (the default).
    Serve {
        #[arg(long, default_value = "127.0.0.1:8000")]
        bind: SocketAddr,
    },
    /// Apply database migrations and exit.
    Migrate,
}

/// Everything the backend reads at start-up.
#[derive(Debug, Clone)]
pub struct Settings {
    pub database_url: Option<String>,
    /// Pool size and connection retry (`DATABASE_*`).
    pub db: DbOptions,
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

/// An optional setting: empty gives `default`, "none" gives no value.
fn optional<T: FromStr>(name: &str, raw: &str, default: Option<T>) -> anyhow::Result<Option<T>> {
    match raw.trim() {
        "" => Ok(default),
        v if v.eq_ignore_ascii_case("none") => Ok(None),
        v => v
            .parse()
            .map(Some)
            .map_err(|_| anyhow::anyhow!("{name} has an invalid value {v:?}")),
    }
}

impl Config {
    /// The settings as the code uses them, refused with the variable's name when they make
    /// no sense.
    pub fn settings(&self) -> anyhow::Result<Settings> {
        let llm = match (
            nonempty(&self.openai_api_key),
            nonempty(&self.openai_base_url),
            nonempty(&self.llm_model),
        ) {
            (None, None, None) => None,
            (key, base, model) => Some(LlmConfig {
                base_url: base.unwrap_or_else(|| "https://api.openai.com/v1".into()),
                // Local servers (Ollama, vLLM) accept any key.
                api_key: key.unwrap_or_else(|| "none".into()),
                model: model.unwrap_or_else(|| "gpt-4o-mini".into()),
                max_tokens: self.llm_max_tokens,
                request_timeout: Duration::from_secs(self.llm_request_timeout_secs),
                max_retries: self.llm_max_retries,
                max_retry_wait: Duration::from_secs(self.llm_max_retry_wait_secs),
                sampling: crate::agent::llm::Sampling {
                    // Chosen by the eval (docs/EVALS.md); "none" leaves it to the server.
                    temperature: optional("LLM_TEMPERATURE", &self.llm_temperature, Some(0.0))?,
                    top_p: optional("LLM_TOP_P", &self.llm_top_p, None)?,
                    seed: optional("LLM_SEED", &self.llm_seed, None)?,
                },
            }),
        };
        let prompt = match nonempty(&self.agent_prompt_path) {
            Some(p) => std::fs::read_to_string(&p)
                .with_context(|| format!("cannot read AGENT_PROMPT_PATH {p}"))?,
            None => crate::agent::prompt::BUILT_IN.to_string(),
        };
        let limits = TurnLimits {
            max_rounds: self.agent_max_rounds.max(1),
            history_messages: self.history_max_messages.max(1),
            history_tokens: self.history_max_tokens,
            open_tasks: self.prompt_open_tasks,
            turn_timeout: Duration::from_secs(self.turn_timeout_secs),
            max_destructive_calls: self.max_destructive_calls_per_turn,
            mcp_request_timeout: Duration::from_secs(self.mcp_request_timeout_secs),
            max_tool_calls_per_reply: self.max_tool_calls_per_reply,
            max_tool_calls_per_turn: self.max_tool_calls_per_turn,
            max_tool_result_chars: self.max_tool_result_chars,
            max_prompt_tokens: self.max_prompt_tokens,
            compose_confirmations: self.agent_compose_confirmations,
        };
        let access = crate::access::AccessSettings {
            auth: self.auth.settings()?,
            mcp_service_secret: self.auth.service_secret()?,
            rate_limit_per_minute: self.rate_limit_per_minute,
            max_concurrent_turns: self.max_concurrent_turns,
            allowed_origins: self.hosts.origins(),
            allowed_hosts: self.hosts.hosts(),
            metrics_token: secret("METRICS_TOKEN", &self.metrics_token)?,
            single_user_dev: self.single_user_dev,
            mcp_allow_plain_http: self.mcp_allow_plain_http,
            max_turns_per_user: self.max_turns_per_user,
        };
        let settings = Settings {
            database_url: self.db.url(),
            db: self.db.options()?,
            llm,
            mcp_server_url: nonempty(&self.mcp_server_url),
            prompt,
            limits,
            max_message_chars: self.max_message_chars,
            max_body_bytes: self.max_body_bytes,
            access,
            prices: crate::usage::Prices::parse(self.llm_prices.trim())
                .map_err(anyhow::Error::msg)?,
            retention: self.retention()?,
        };
        crate::preflight::check_settings(&settings)?;
        Ok(settings)
    }

    /// What is kept, and for how long.
    pub fn retention(&self) -> anyhow::Result<crate::retention::Retention> {
        crate::retention::Retention::new(
            self.idempotency_ttl_hours,
            self.trash_retention_days,
            self.audit_retention_days,
            self.retention_sweep_secs,
        )
    }

    /// Shutdown timing; the timeout defaults to the longest turn plus 10 s.
    pub fn shutdown(&self) -> anyhow::Result<crate::lifecycle::ShutdownSettings> {
        let timeout = match nonempty(&self.shutdown_timeout_secs) {
            None => self.turn_timeout_secs.saturating_add(10),
            Some(v) => v
                .parse()
                .map_err(|_| anyhow::anyhow!("SHUTDOWN_TIMEOUT_SECS has an invalid value {v:?}"))?,
        };
        Ok(crate::lifecycle::ShutdownSettings {
            delay: Duration::from_secs(self.shutdown_delay_secs),
            timeout: Duration::from_secs(timeout),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Config {
        Config::try_parse_from(std::iter::once("todo-backend").chain(args.iter().copied())).unwrap()
    }

    #[test]
    fn the_declared_defaults_are_the_code_defaults() {
        let c = parse(&[]);
        let s = c.settings().unwrap();
        assert_eq!(
            format!("{:?}", s.limits),
            format!("{:?}", TurnLimits::default())
        );
        assert_eq!(
            format!("{:?}", s.access),
            format!("{:?}", crate::access::AccessSettings::default())
        );
        assert_eq!(format!("{:?}", s.db), format!("{:?}", DbOptions::default()));
        assert_eq!(
            format!("{:?}", c.retention().unwrap()),
            format!("{:?}", crate::retention::Retention::default())
        );
        assert_eq!(c.shutdown().unwrap().timeout, Duration::from_secs(70));
        assert!(s.llm.is_none());
        assert_eq!(s.max_message_chars, 4000);
        assert_eq!(s.max_body_bytes, 64 * 1024);
    }

    #[test]
    fn sampling_takes_none_and_empty_means_the_default() {
        let c = parse(&[
            "--llm-model",
            "m",
            "--llm-temperature",
            " ",
            "--llm-top-p",
            "0.9",
            "--llm-seed",
            "NONE",
        ]);
        let llm = c.settings().unwrap().llm.unwrap();
        assert_eq!(llm.sampling.temperature, Some(0.0));
        assert_eq!(llm.sampling.top_p, Some(0.9));
        assert_eq!(llm.sampling.seed, None);
        let c = parse(&["--llm-model", "m", "--llm-seed", "soon"]);
        let e = c.settings().err().unwrap().to_string();
        assert!(e.contains("LLM_SEED has an invalid value"), "{e}");
    }
}
