//! The language model: OpenAI-compatible chat completions through async-openai, with
//! bounded retries that honour `Retry-After`, timeouts, and lenient response parsing
//! (OpenAI, Ollama, vLLM and others differ in small ways).

use std::pin::Pin;
use std::time::Duration;

use async_openai::Client;
use async_openai::config::OpenAIConfig;
use async_openai::error::OpenAIError;
use async_openai::middleware::{HttpRequestFactory, ReqwestService};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// LLM settings.
#[derive(Clone)]
pub struct LlmConfig {
    pub base_url: String,
    pub api_key: String,
    pub model: String,
    pub max_tokens: u32,
    /// Per HTTP request.
    pub request_timeout: Duration,
    /// Retries after the first attempt.
    pub max_retries: usize,
    /// Longest single wait between attempts; a longer `Retry-After` ends the retries.
    pub max_retry_wait: Duration,
    /// Temperature, top_p and seed sent with every request (unset: the server's default).
    pub sampling: Sampling,
}

/// Sampling settings (`LLM_TEMPERATURE`, `LLM_TOP_P`, `LLM_SEED`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Sampling {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub top_p: Option<f32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seed: Option<i64>,
}

impl std::fmt::Debug for LlmConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LlmConfig")
            .field("base_url", &self.base_url)
            .field("model", &self.model)
            .field("api_key", &"***")
            .finish_non_exhaustive()
    }
}

/// A message in the wire format of chat completions.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(tag = "role", rename_all = "lowercase")]
pub enum WireMessage {
    System {
        content: String,
    },
    User {
        content: String,
    },
    Assistant {
        #[serde(skip_serializing_if = "Option::is_none")]
        content: Option<String>,
        #[serde(skip_serializing_if = "Vec::is_empty")]
        tool_calls: Vec<WireToolCall>,
    },
    Tool {
        tool_call_id: String,
        content: String,
    },
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct WireToolCall {
    pub id: String,
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub function: WireFunction,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct WireFunction {
    pub name: String,
    pub arguments: String,
}

/// The body of a chat-completions request, plain or streamed.
#[derive(Serialize)]
pub(super) struct ChatRequest<'a> {
    model: &'a str,
    messages: &'a [WireMessage],
    #[serde(skip_serializing_if = "<[Value]>::is_empty")]
    tools: &'a [Value],
    #[serde(skip_serializing_if = "Option::is_none")]
    tool_choice: Option<&'static str>,
    max_tokens: u32,
    #[serde(flatten)]
    sampling: Sampling,
    stream: bool,
    /// Streamed calls ask for usage in the last chunk.
    #[serde(skip_serializing_if = "Option::is_none")]
    stream_options: Option<StreamOptions>,
}

#[derive(Serialize)]
pub(super) struct StreamOptions {
    include_usage: bool,
}

impl<'a> ChatRequest<'a> {
    /// A request with `config`'s model, limit and sampling; streamed ones ask for usage.
    pub(super) fn new(
        config: &'a LlmConfig,
        messages: &'a [WireMessage],
        tools: &'a [Value],
        stream: bool,
    ) -> Self {
        ChatRequest {
            model: &config.model,
            messages,
            tools,
            tool_choice: (!tools.is_empty()).then_some("auto"),
            max_tokens: config.max_tokens,
            sampling: config.sampling,
            stream,
            stream_options: stream.then_some(StreamOptions {
                include_usage: true,
            }),
        }
    }
}

#[derive(Deserialize)]
struct ChatResponse {
    #[serde(default)]
    choices: Vec<Choice>,
    #[serde(default)]
    usage: Option<Usage>,
}

#[derive(Deserialize)]
struct Choice {
    #[serde(default)]
    message: Option<RespMessage>,
    #[serde(default)]
    finish_reason: Option<String>,
}

#[derive(Deserialize, Default)]
struct RespMessage {
    #[serde(default)]
    content: Option<String>,
    #[serde(default)]
    tool_calls: Option<Vec<RespToolCall>>,
}

#[derive(Deserialize)]
struct RespToolCall {
    #[serde(default)]
    id: Option<String>,
    function: RespFunction,
}

#[derive(Deserialize)]
struct RespFunction {
    #[serde(default)]
    name: String,
    /// A JSON string per the API; some servers send an object.
    #[serde(default)]
    arguments: Value,
}

#[derive(Deserialize, Default, Clone, Copy)]
struct Usage {
    #[serde(default)]
    prompt_tokens: u32,
    #[serde(default)]
    completion_tokens: u32,
    /// OpenAI's `usage.prompt_tokens_details.cached_tokens`; other providers omit it.
    #[serde(default)]
    prompt_tokens_details: Option<PromptTokensDetails>,
}

#[derive(Deserialize, Default, Clone, Copy)]
struct PromptTokensDetails {
    #[serde(default)]
    cached_tokens: Option<u32>,
}

/// A tool call the model asked for.
#[derive(Debug, Clone, PartialEq)]
pub struct RequestedCall {
    pub id: String,
    pub name: String,
    /// Raw JSON text from the model; may be invalid.
    pub arguments: String,
}

/// One model reply.
#[derive(Debug, Clone, PartialEq)]
pub struct Completion {
    pub content: Option<String>,
    pub tool_calls: Vec<RequestedCall>,
    /// Why the model stopped (`stop`, `tool_calls`, `length`…), where the provider says.
    pub finish_reason: Option<String>,
    pub prompt_tokens: u32,
    pub completion_tokens: u32,
    /// Prompt tokens the provider served from its prefix cache, where it says.
    pub cached_prompt_tokens: u32,
}

impl Completion {
    /// A reply composed without a model call (see `confirm`).
    pub fn composed(text: String) -> Completion {
        Completion {
            content: Some(text),
            tool_calls: Vec::new(),
            finish_reason: None,
            prompt_tokens: 0,
            completion_tokens: 0,
            cached_prompt_tokens: 0,
        }
    }
}

/// Why a model call failed, after retries.
#[derive(Debug, thiserror::Error)]
pub enum LlmError {
    #[error("the language model is rate limited")]
    RateLimited,
    #[error("the language model is unavailable: {0}")]
    Unavailable(String),
    #[error("the language model rejected the request ({status}): {message}")]
    Rejected { status: u16, message: String },
    #[error("the language model sent an unusable reply: {0}")]
    BadReply(String),
    /// `finish_reason: "length"`: the reply stopped at `max_tokens`, mid-sentence or
    /// mid-call. It is not stored or acted on as if it were whole.
    #[error("the language model's reply was cut off at its token limit ({max_tokens} tokens)")]
    Truncated { max_tokens: u32 },
}

/// The chat-completions client.
#[derive(Clone)]
pub struct Llm {
    client: Client<OpenAIConfig>,
    config: LlmConfig,
    /// For streamed calls: the request timeout bounds each read, not the whole answer.
    stream_http: reqwest::Client,
}

impl Llm {
    pub fn new(config: LlmConfig) -> anyhow::Result<Llm> {
        let http = reqwest::Client::builder()
            .timeout(config.request_timeout)
            .connect_timeout(Duration::from_secs(5))
            .build()?;
        let service = tower::ServiceBuilder::new()
            .retry(RetryPolicy::new(config.max_retries, config.max_retry_wait))
            .service(ReqwestService::new(http));
        let oa = OpenAIConfig::new()
            .with_api_base(config.base_url.trim_end_matches('/'))
            .with_api_key(config.api_key.clone());
        let client = Client::with_config(oa).with_http_service(service);
        let stream_http = reqwest::Client::builder()
            .read_timeout(config.request_timeout)
            .connect_timeout(Duration::from_secs(5))
            .build()?;
        Ok(Llm {
            client,
            config,
            stream_http,
        })
    }

    pub fn model(&self) -> &str {
        &self.config.model
    }

    /// What a streamed call is made with (`super::stream`).
    pub(super) fn stream_parts(&self) -> (&reqwest::Client, &LlmConfig) {
        (&self.stream_http, &self.config)
    }

    /// One chat completion with the given tools (OpenAI function definitions).
    #[tracing::instrument(name = "llm_call", skip_all, fields(model = %self.config.model, messages = messages.len()))]
    pub async fn complete(
        &self,
        messages: &[WireMessage],
        tools: &[Value],
    ) -> Result<Completion, LlmError> {
        let req = ChatRequest::new(&self.config, messages, tools, false);
        let resp: ChatResponse = self
            .client
            .chat()
            .create_byot(&req)
            .await
            .map_err(classify)?;
        let usage = resp.usage.unwrap_or_default();
        let choice = resp
            .choices
            .into_iter()
            .next()
            .ok_or_else(|| LlmError::BadReply("no choices".into()))?;
        let msg = choice.message.unwrap_or_default();
        let mut tool_calls: Vec<RequestedCall> = msg
            .tool_calls
            .unwrap_or_default()
            .into_iter()
            .enumerate()
            .map(|(i, c)| RequestedCall {
                // A missing id would make the history invalid; give it a stable one.
                id: c
                    .id
                    .filter(|s| !s.is_empty())
                    .unwrap_or_else(|| format!("call_{}_{i}", uuid::Uuid::new_v4().simple())),
                name: c.function.name,
                arguments: match c.function.arguments {
                    Value::String(s) => s,
                    Value::Null => "{}".into(),
                    other => other.to_string(),
                },
            })
            .collect();
        let mut content = msg.content.filter(|c| !c.trim().is_empty());
        // Small local models often write the call as JSON text instead.
        if tool_calls.is_empty()
            && let Some(text) = &content
        {
            tool_calls = super::textcalls::from_content(text, tools);
            if !tool_calls.is_empty() {
                content = None;
            }
        }
        Ok(Completion {
            content,
            tool_calls,
            finish_reason: choice.finish_reason,
            prompt_tokens: usage.prompt_tokens,
            completion_tokens: usage.completion_tokens,
            cached_prompt_tokens: usage
                .prompt_tokens_details
                .and_then(|d| d.cached_tokens)
                .unwrap_or(0),
        })
    }
}

fn classify(e: OpenAIError) -> LlmError {
    match e {
        OpenAIError::ApiError(r) => {
            let status = r.status_code.as_u16();
            match status {
                429 => LlmError::RateLimited,
                408 | 409 | 500..=599 => LlmError::Unavailable(format!("HTTP {status}")),
                _ => LlmError::Rejected {
                    status,
                    message: r.api_error.message.chars().take(300).collect(),
                },
            }
        }
        OpenAIError::Reqwest(e) if e.is_timeout() => LlmError::Unavailable("timed out".into()),
        OpenAIError::Reqwest(e) if e.is_connect() => {
            LlmError::Unavailable("connection failed".into())
        }
        OpenAIError::Reqwest(e) => LlmError::Unavailable(format!("transport error: {e}")),
        OpenAIError::JSONDeserialize(e, _) => LlmError::BadReply(e.to_string()),
        other => LlmError::BadReply(other.to_string()),
    }
}

/// Retries connection failures, timeouts, 408, 409, 429 and 5xx with exponential backoff,
/// or after `Retry-After` (seconds or an HTTP date) when the server gives one.
#[derive(Clone, Debug)]
pub struct RetryPolicy {
    max_retries: usize,
    max_wait: Duration,
    attempts: usize,
}

impl RetryPolicy {
    pub fn new(max_retries: usize, max_wait: Duration) -> Self {
        RetryPolicy {
            max_retries,
            max_wait,
            attempts: 0,
        }
    }

    fn backoff(&self) -> Duration {
        let base = Duration::from_millis(250).saturating_mul(1 << self.attempts.min(6));
        // Up to 25% jitter keeps replicas from retrying in step.
        let jitter = base.mul_f64(rand_fraction() * 0.25);
        (base + jitter).min(self.max_wait)
    }
}

fn rand_fraction() -> f64 {
    f64::from(uuid::Uuid::new_v4().as_u128() as u16) / f64::from(u16::MAX)
}

/// Longest `Retry-After` taken literally; anything longer means "not within this turn".
const MAX_RETRY_AFTER_SECS: u64 = 86_400;

/// Parses `Retry-After`: delay-seconds or an HTTP date.
pub fn parse_retry_after(v: &str, now: chrono::DateTime<chrono::Utc>) -> Option<Duration> {
    let v = v.trim();
    // Clamped: a server's number must not overflow a Duration (`1e300` would panic).
    if let Ok(secs) = v.parse::<u64>() {
        return Some(Duration::from_secs(secs.min(MAX_RETRY_AFTER_SECS)));
    }
    if let Ok(secs) = v.parse::<f64>() {
        return (secs.is_finite() && secs >= 0.0)
            .then(|| Duration::from_secs_f64(secs.min(MAX_RETRY_AFTER_SECS as f64)));
    }
    let at = chrono::DateTime::parse_from_rfc2822(v).ok()?;
    Some(
        (at.with_timezone(&chrono::Utc) - now)
            .to_std()
            .unwrap_or(Duration::ZERO),
    )
}

impl tower::retry::Policy<HttpRequestFactory, reqwest::Response, OpenAIError> for RetryPolicy {
    type Future = Pin<Box<dyn std::future::Future<Output = ()> + Send + 'static>>;

    fn retry(
        &mut self,
        _req: &mut HttpRequestFactory,
        result: &mut Result<reqwest::Response, OpenAIError>,
    ) -> Option<Self::Future> {
        if self.attempts >= self.max_retries {
            return None;
        }
        let wait = match result {
            Ok(r) => {
                let s = r.status().as_u16();
                if !(matches!(s, 408 | 409 | 429) || r.status().is_server_error()) {
                    return None;
                }
                match r
                    .headers()
                    .get(reqwest::header::RETRY_AFTER)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| parse_retry_after(v, chrono::Utc::now()))
                {
                    // A server asking for longer than we may wait gets its error now.
                    Some(d) if d > self.max_wait => return None,
                    Some(d) => d,
                    None => self.backoff(),
                }
            }
            Err(OpenAIError::Reqwest(e)) if e.is_connect() || e.is_timeout() => self.backoff(),
            Err(_) => return None,
        };
        self.attempts += 1;
        tracing::warn!(
            attempt = self.attempts,
            wait_ms = wait.as_millis() as u64,
            "retrying the language model"
        );
        Some(Box::pin(tokio::time::sleep(wait)))
    }

    fn clone_request(&mut self, req: &HttpRequestFactory) -> Option<HttpRequestFactory> {
        Some(req.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_takes_seconds_or_dates() {
        let now = chrono::DateTime::parse_from_rfc3339("2026-11-22T10:00:00Z")
            .unwrap()
            .with_timezone(&chrono::Utc);
        assert_eq!(parse_retry_after("3", now), Some(Duration::from_secs(3)));
        assert_eq!(
            parse_retry_after("0.5", now),
            Some(Duration::from_millis(500))
        );
        assert_eq!(
            parse_retry_after("Sun, 22 Nov 2026 10:00:07 GMT", now),
            Some(Duration::from_secs(7))
        );
        assert_eq!(
            parse_retry_after("Sun, 22 Nov 2026 09:00:00 GMT", now),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("soon", now), None);
        for absurd in ["1e300", "18446744073709551615", "1.7976931348623157e308"] {
            assert_eq!(
                parse_retry_after(absurd, now),
                Some(Duration::from_secs(MAX_RETRY_AFTER_SECS)),
                "{absurd}"
            );
        }
    }

    #[test]
    fn backoff_grows_and_is_capped() {
        let mut p = RetryPolicy::new(10, Duration::from_secs(2));
        let first = p.backoff();
        assert!(first >= Duration::from_millis(250) && first <= Duration::from_millis(313));
        p.attempts = 5;
        assert_eq!(p.backoff(), Duration::from_secs(2));
    }

    #[test]
    fn wire_messages_serialise_as_the_api_expects() {
        let m = WireMessage::Assistant {
            content: None,
            tool_calls: vec![WireToolCall {
                id: "call_1".into(),
                kind: "function",
                function: WireFunction {
                    name: "add_task".into(),
                    arguments: "{\"title\":\"x\"}".into(),
                },
            }],
        };
        let v = serde_json::to_value(&m).unwrap();
        assert_eq!(v["role"], "assistant");
        assert_eq!(v["tool_calls"][0]["type"], "function");
        assert_eq!(
            v["tool_calls"][0]["function"]["arguments"],
            "{\"title\":\"x\"}"
        );
        assert!(v.get("content").is_none());
        let t = serde_json::to_value(WireMessage::Tool {
            tool_call_id: "call_1".into(),
            content: "ok".into(),
        })
        .unwrap();
        assert_eq!(
            t,
            serde_json::json!({"role": "tool", "tool_call_id": "call_1", "content": "ok"})
        );
    }
}
