//! The streamed model call: `stream: true` with usage requested, the provider's server-sent
//! events read chunk by chunk and folded into the same [`Completion`] a plain call returns,
//! each piece of text passed on as a [`TurnEvent::Delta`] as it arrives.
//!
//! Providers differ: tool-call arguments arrive in fragments (OpenAI, vLLM) or whole
//! (Ollama); usage comes in a last chunk without choices, or not at all; some answer a
//! streamed request with one plain JSON completion. All of these end in the same
//! `Completion`. Bytes are split into lines before decoding, so a UTF-8 character cut in
//! two by the network is never mangled.

use std::time::Duration;

use serde_json::Value;

use super::events::{self, TurnEvent};
use super::llm::{
    ChatRequest, Completion, Llm, LlmError, RequestedCall, WireMessage, parse_retry_after,
};

impl Llm {
    /// One model call: streamed when the turn has an event sink, plain otherwise. A reply
    /// cut off by the token limit is an error ([`LlmError::Truncated`]), whichever way it came.
    pub async fn call(
        &self,
        messages: &[WireMessage],
        tools: &[Value],
    ) -> Result<Completion, LlmError> {
        let c = self.call_any(messages, tools).await?;
        if c.finish_reason.as_deref() == Some("length") {
            tracing::warn!(
                completion_tokens = c.completion_tokens,
                "the model's reply was cut off by the token limit (LLM_MAX_TOKENS)"
            );
            return Err(LlmError::Truncated {
                max_tokens: self.stream_parts().1.max_tokens,
            });
        }
        Ok(c)
    }

    async fn call_any(
        &self,
        messages: &[WireMessage],
        tools: &[Value],
    ) -> Result<Completion, LlmError> {
        if events::streaming() {
            let mut c = self.stream(messages, tools).await?;
            // Small local models often write the call as JSON text instead (see `complete`).
            if c.tool_calls.is_empty()
                && let Some(text) = &c.content
            {
                c.tool_calls = super::textcalls::from_content(text, tools);
                if !c.tool_calls.is_empty() {
                    c.content = None;
                }
            }
            Ok(c)
        } else {
            self.complete(messages, tools).await
        }
    }

    /// A streamed chat completion; text is emitted as it arrives.
    #[tracing::instrument(name = "llm_stream", skip_all, fields(model = %self.model(), messages = messages.len()))]
    pub async fn stream(
        &self,
        messages: &[WireMessage],
        tools: &[Value],
    ) -> Result<Completion, LlmError> {
        let (http, config) = self.stream_parts();
        let body = ChatRequest::new(config, messages, tools, true);
        let url = format!("{}/chat/completions", config.base_url.trim_end_matches('/'));
        let mut attempt = 0usize;
        // Retried like a plain call, but only before the first byte of an answer: once text
        // has been shown to the person, a second attempt would show it twice.
        let mut resp = loop {
            let sent = http
                .post(&url)
                .bearer_auth(&config.api_key)
                .header(reqwest::header::ACCEPT, "text/event-stream")
                .json(&body)
                .send()
                .await;
            let wait = match &sent {
                Ok(r) if r.status().is_success() => None,
                Ok(r) => {
                    let s = r.status().as_u16();
                    if matches!(s, 408 | 409 | 429) || r.status().is_server_error() {
                        let after = r
                            .headers()
                            .get(reqwest::header::RETRY_AFTER)
                            .and_then(|v| v.to_str().ok())
                            .and_then(|v| parse_retry_after(v, chrono::Utc::now()));
                        match after {
                            Some(d) if d > config.max_retry_wait => None,
                            Some(d) => Some(d),
                            None => Some(backoff(attempt, config.max_retry_wait)),
                        }
                    } else {
                        None
                    }
                }
                Err(e) if e.is_connect() || e.is_timeout() => {
                    Some(backoff(attempt, config.max_retry_wait))
                }
                Err(_) => None,
            };
            match wait {
                Some(wait) if attempt < config.max_retries => {
                    attempt += 1;
                    tracing::warn!(
                        attempt,
                        wait_ms = wait.as_millis() as u64,
                        "retrying the language model"
                    );
                    tokio::time::sleep(wait).await;
                }
                _ => break sent.map_err(transport)?,
            }
        };
        let status = resp.status().as_u16();
        if !resp.status().is_success() {
            let text = resp.text().await.unwrap_or_default();
            return Err(status_error(status, &text));
        }
        let is_sse = resp
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.to_ascii_lowercase().starts_with("text/event-stream"));
        let mut asm = Assembler::default();
        if !is_sse {
            // A provider that does not stream: one whole completion, shown as one delta.
            let bytes = resp.bytes().await.map_err(transport)?;
            let v: Value = serde_json::from_slice(&bytes)
                .map_err(|e| LlmError::BadReply(format!("not JSON: {e}")))?;
            if let Some(t) = asm.push(&v)? {
                events::emit(TurnEvent::Delta { text: t });
            }
            return asm.finish(true);
        }
        let mut lines = SseData::default();
        let mut done = false;
        while !done {
            let chunk = resp.chunk().await.map_err(|e| {
                if e.is_timeout() {
                    LlmError::Unavailable("the stream stalled".into())
                } else {
                    LlmError::Unavailable("the stream was interrupted".into())
                }
            })?;
            let payloads = match chunk {
                Some(bytes) => lines.feed(&bytes)?,
                None => {
                    done = true;
                    lines.end()?
                }
            };
            for data in payloads {
                if data.trim() == "[DONE]" {
                    return asm.finish(true);
                }
                let v: Value = serde_json::from_str(&data)
                    .map_err(|e| LlmError::BadReply(format!("a stream chunk is not JSON: {e}")))?;
                if let Some(t) = asm.push(&v)? {
                    events::emit(TurnEvent::Delta { text: t });
                }
            }
        }
        // The connection closed without `[DONE]`: complete only if the model said it finished.
        asm.finish(false)
    }
}

fn backoff(attempt: usize, max: Duration) -> Duration {
    let base = Duration::from_millis(250).saturating_mul(1 << attempt.min(6));
    let jitter = f64::from(uuid::Uuid::new_v4().as_u128() as u16) / f64::from(u16::MAX) * 0.25;
    (base + base.mul_f64(jitter)).min(max)
}

fn transport(e: reqwest::Error) -> LlmError {
    if e.is_timeout() {
        LlmError::Unavailable("timed out".into())
    } else if e.is_connect() {
        LlmError::Unavailable("connection failed".into())
    } else {
        LlmError::Unavailable(format!("transport error: {e}"))
    }
}

fn status_error(status: u16, body: &str) -> LlmError {
    match status {
        429 => LlmError::RateLimited,
        408 | 409 | 500..=599 => LlmError::Unavailable(format!("HTTP {status}")),
        _ => LlmError::Rejected {
            status,
            message: serde_json::from_str::<Value>(body)
                .ok()
                .and_then(|v| v["error"]["message"].as_str().map(str::to_string))
                .unwrap_or_default()
                .chars()
                .take(300)
                .collect(),
        },
    }
}

/// The `data` payloads of a server-sent event stream, from bytes in arbitrary pieces.
#[derive(Debug, Default)]
pub struct SseData {
    buf: Vec<u8>,
    data: Option<String>,
}

/// A provider line longer than this is not a chat completion chunk.
const MAX_LINE_BYTES: usize = 4 * 1024 * 1024;

impl SseData {
    /// Takes the next bytes; returns the payloads of the events they complete.
    pub fn feed(&mut self, bytes: &[u8]) -> Result<Vec<String>, LlmError> {
        self.buf.extend_from_slice(bytes);
        let mut out = Vec::new();
        let mut start = 0;
        while let Some(n) = self.buf[start..].iter().position(|b| *b == b'\n') {
            let end = start + n;
            let line = &self.buf[start..end];
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            let line = std::str::from_utf8(line)
                .map_err(|_| LlmError::BadReply("the stream is not UTF-8".into()))?;
            if let Some(d) = Self::line(&mut self.data, line) {
                out.push(d);
            }
            start = end + 1;
        }
        self.buf.drain(..start);
        if self.buf.len() > MAX_LINE_BYTES {
            return Err(LlmError::BadReply("a stream line is too long".into()));
        }
        Ok(out)
    }

    /// The end of the stream: a last event without its blank line still counts.
    pub fn end(&mut self) -> Result<Vec<String>, LlmError> {
        let mut out = self.feed(b"\n")?;
        if let Some(d) = self.data.take() {
            out.push(d);
        }
        Ok(out)
    }

    fn line(data: &mut Option<String>, line: &str) -> Option<String> {
        if line.is_empty() {
            return data.take();
        }
        if line.starts_with(':') {
            return None; // a comment (keep-alive)
        }
        let (field, value) = line.split_once(':').unwrap_or((line, ""));
        if field == "data" {
            let value = value.strip_prefix(' ').unwrap_or(value);
            match data {
                Some(d) => {
                    d.push('\n');
                    d.push_str(value);
                }
                None => *data = Some(value.to_string()),
            }
        }
        None
    }
}

#[derive(Debug, Default)]
struct PartialCall {
    id: String,
    name: String,
    arguments: String,
}

/// Folds completion chunks (or one whole completion) into a [`Completion`].
#[derive(Debug, Default)]
pub struct Assembler {
    content: String,
    /// By the chunk's `index`; chunks without one continue the last call or start one.
    calls: Vec<(Option<u64>, PartialCall)>,
    finish_reason: Option<String>,
    prompt_tokens: u32,
    completion_tokens: u32,
    cached_prompt_tokens: u32,
}

impl Assembler {
    /// Folds one chunk in; returns the text it carried.
    pub fn push(&mut self, chunk: &Value) -> Result<Option<String>, LlmError> {
        if let Some(e) = chunk.get("error").filter(|e| !e.is_null()) {
            let msg = e["message"].as_str().unwrap_or("unknown error");
            tracing::warn!(error = %msg.chars().take(300).collect::<String>(), "the language model failed mid-stream");
            return Err(LlmError::Unavailable(
                "the model failed while answering".into(),
            ));
        }
        if let Some(u) = chunk.get("usage").filter(|u| u.is_object()) {
            let n = |k: &str| {
                u[k].as_u64()
                    .map_or(0, |v| u32::try_from(v).unwrap_or(u32::MAX))
            };
            self.prompt_tokens = n("prompt_tokens");
            self.completion_tokens = n("completion_tokens");
            self.cached_prompt_tokens = u["prompt_tokens_details"]["cached_tokens"]
                .as_u64()
                .map_or(0, |v| u32::try_from(v).unwrap_or(u32::MAX));
        }
        let Some(choice) = chunk["choices"].as_array().and_then(|c| c.first()) else {
            return Ok(None);
        };
        if let Some(r) = choice["finish_reason"].as_str() {
            self.finish_reason = Some(r.to_string());
        }
        // `delta` in a stream; `message` from a provider that answered in one piece.
        let delta = match (choice.get("delta"), choice.get("message")) {
            (Some(d), _) if d.is_object() => d,
            (_, Some(m)) if m.is_object() => m,
            _ => return Ok(None),
        };
        for c in delta["tool_calls"].as_array().into_iter().flatten() {
            self.push_call(c);
        }
        match delta["content"].as_str() {
            Some(t) if !t.is_empty() => {
                self.content.push_str(t);
                Ok(Some(t.to_string()))
            }
            _ => Ok(None),
        }
    }

    fn push_call(&mut self, c: &Value) {
        let index = c["index"].as_u64();
        let id = c["id"].as_str().unwrap_or("");
        let pos = match index {
            Some(i) => self.calls.iter().position(|(k, _)| *k == Some(i)),
            // No index: a new id starts a call, anything else continues the last one.
            None if id.is_empty() => self.calls.len().checked_sub(1),
            None => self.calls.iter().position(|(_, p)| p.id == id),
        };
        let pos = pos.unwrap_or_else(|| {
            self.calls.push((index, PartialCall::default()));
            self.calls.len() - 1
        });
        let call = &mut self.calls[pos].1;
        if call.id.is_empty() {
            call.id = id.to_string();
        }
        let f = &c["function"];
        if let Some(n) = f["name"].as_str()
            && !n.is_empty()
            && call.name != n
        {
            call.name.push_str(n);
        }
        match &f["arguments"] {
            Value::String(s) => call.arguments.push_str(s),
            Value::Null => {}
            // Some servers send the arguments as an object, whole.
            other if call.arguments.is_empty() => call.arguments = other.to_string(),
            _ => {}
        }
    }

    /// The completion. `complete` says the stream ended properly (`[DONE]` or one whole
    /// answer); otherwise it must at least have said why the model stopped.
    pub fn finish(self, complete: bool) -> Result<Completion, LlmError> {
        if !complete && self.finish_reason.is_none() {
            return Err(LlmError::Unavailable("the stream ended early".into()));
        }
        let tool_calls = self
            .calls
            .into_iter()
            .enumerate()
            .filter(|(_, (_, p))| !p.name.is_empty())
            .map(|(i, (_, p))| RequestedCall {
                id: if p.id.is_empty() {
                    format!("call_{}_{i}", uuid::Uuid::new_v4().simple())
                } else {
                    p.id
                },
                name: p.name,
                arguments: if p.arguments.trim().is_empty() {
                    "{}".into()
                } else {
                    p.arguments
                },
            })
            .collect();
        Ok(Completion {
            content: Some(self.content).filter(|c| !c.trim().is_empty()),
            tool_calls,
            finish_reason: self.finish_reason,
            prompt_tokens: self.prompt_tokens,
            completion_tokens: self.completion_tokens,
            cached_prompt_tokens: self.cached_prompt_tokens,
        })
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn feed_all(pieces: &[&[u8]]) -> Vec<String> {
        let mut s = SseData::default();
        let mut out = Vec::new();
        for p in pieces {
            out.extend(s.feed(p).unwrap());
        }
        out.extend(s.end().unwrap());
        out
    }

    #[test]
    fn a_character_split_across_reads_is_decoded_whole() {
        let bytes = "data: {\"t\":\"caf\u{e9} \u{1f95b}\"}\n\n".as_bytes();
        // Every possible cut, including inside the two multi-byte characters.
        for cut in 1..bytes.len() {
            let out = feed_all(&[&bytes[..cut], &bytes[cut..]]);
            assert_eq!(out, ["{\"t\":\"caf\u{e9} \u{1f95b}\"}"], "cut at {cut}");
        }
    }

    #[test]
    fn comments_crlf_multiline_data_and_a_missing_last_blank_line() {
        let out = feed_all(&[b": keep-alive\r\n\r\ndata: a\r\ndata: b\r\n\r\nevent: x\ndata:c"]);
        assert_eq!(out, ["a\nb", "c"]);
    }

    #[test]
    fn invalid_utf8_is_a_bad_reply() {
        let mut s = SseData::default();
        assert!(matches!(
            s.feed(b"data: \xff\n\n"),
            Err(LlmError::BadReply(_))
        ));
    }

    #[test]
    fn fragmented_tool_arguments_and_late_usage_assemble() {
        let mut a = Assembler::default();
        let chunks = [
            json!({"choices":[{"index":0,"delta":{"role":"assistant","content":null,"tool_calls":[{"index":0,"id":"call_1","type":"function","function":{"name":"add_task","arguments":""}}]}}]}),
            json!({"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"{\"title\":\"Bu"}}]}}]}),
            json!({"choices":[{"index":0,"delta":{"tool_calls":[{"index":1,"id":"call_2","function":{"name":"list_tasks","arguments":"{}"}}]}}]}),
            json!({"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"y milk\"}"}}]}}]}),
            json!({"choices":[{"index":0,"delta":{},"finish_reason":"tool_calls"}],"usage":null}),
            json!({"choices":[],"usage":{"prompt_tokens":50,"completion_tokens":7,"total_tokens":57}}),
        ];
        for c in &chunks {
            assert_eq!(a.push(c).unwrap(), None);
        }
        let c = a.finish(true).unwrap();
        assert_eq!(c.content, None);
        assert_eq!(c.finish_reason.as_deref(), Some("tool_calls"));
        assert_eq!((c.prompt_tokens, c.completion_tokens), (50, 7));
        assert_eq!(c.tool_calls.len(), 2);
        assert_eq!(c.tool_calls[0].id, "call_1");
        assert_eq!(c.tool_calls[0].name, "add_task");
        assert_eq!(c.tool_calls[0].arguments, r#"{"title":"Buy milk"}"#);
        assert_eq!(c.tool_calls[1].name, "list_tasks");
    }

    #[test]
    fn whole_calls_without_index_or_id_and_object_arguments() {
        let mut a = Assembler::default();
        a.push(&json!({"choices":[{"delta":{"tool_calls":[
            {"function":{"name":"add_task","arguments":{"title":"x"}}}
        ]},"finish_reason":"tool_calls"}]}))
            .unwrap();
        let c = a.finish(false).unwrap();
        assert_eq!(c.tool_calls.len(), 1);
        assert!(c.tool_calls[0].id.starts_with("call_"));
        assert_eq!(c.tool_calls[0].arguments, r#"{"title":"x"}"#);
    }

    #[test]
    fn text_arrives_in_order_and_a_whole_completion_counts_as_one_chunk() {
        let mut a = Assembler::default();
        assert_eq!(
            a.push(&json!({"choices":[{"delta":{"content":"Hel"}}]}))
                .unwrap(),
            Some("Hel".into())
        );
        a.push(&json!({"choices":[{"delta":{"content":"lo"},"finish_reason":"stop"}]}))
            .unwrap();
        assert_eq!(a.finish(true).unwrap().content.as_deref(), Some("Hello"));

        let mut b = Assembler::default();
        let whole = json!({"choices":[{"message":{"role":"assistant","content":"Hi"},"finish_reason":"stop"}],
                           "usage":{"prompt_tokens":3,"completion_tokens":1,
                                    "prompt_tokens_details":{"cached_tokens":2}}});
        assert_eq!(b.push(&whole).unwrap(), Some("Hi".into()));
        let c = b.finish(true).unwrap();
        assert_eq!((c.content.as_deref(), c.prompt_tokens), (Some("Hi"), 3));
        assert_eq!(
            c.cached_prompt_tokens, 2,
            "cached tokens are read from a stream's usage"
        );
    }

    #[test]
    fn a_stream_cut_before_the_model_finished_is_an_error() {
        let mut a = Assembler::default();
        a.push(&json!({"choices":[{"delta":{"content":"Half an ans"}}]}))
            .unwrap();
        assert!(matches!(a.finish(false), Err(LlmError::Unavailable(_))));
    }

    #[test]
    fn an_error_chunk_fails_the_call() {
        let mut a = Assembler::default();
        assert!(matches!(
            a.push(&json!({"error":{"message":"overloaded"}})),
            Err(LlmError::Unavailable(_))
        ));
    }
}
