//! One chat turn: the person's message, the model, the tools, and the stored history.
//! Nothing survives in memory between turns; every turn rehydrates from the database.

pub mod confirm;
pub mod history;
pub mod llm;
pub mod prompt;
pub mod textcalls;
pub mod toolbox;

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use serde::Serialize;
use serde_json::Value;
use todo_mcp::tasks::TaskStore;
use uuid::Uuid;

use self::llm::{Completion, Llm, LlmError, WireFunction, WireMessage, WireToolCall};
use self::toolbox::{ToolOutcome, ToolSession, Toolbox};
use crate::metrics::Metrics;
use crate::store::{
    ConversationStore, Lease, NewMessage, Role, StoreError, ToolCallRecord, ToolExecution,
};

/// Bounds on one turn.
#[derive(Debug, Clone)]
pub struct TurnLimits {
    /// LLM round trips per turn.
    pub max_rounds: usize,
    /// Stored messages loaded as history.
    pub history_messages: u32,
    /// Token estimate budget for the history.
    pub history_tokens: usize,
    /// Open tasks shown to the model.
    pub open_tasks: u32,
    /// Whole-turn deadline for model calls.
    pub turn_timeout: Duration,
    /// Destructive tool calls allowed in one turn before the model must ask the person.
    pub max_destructive_calls: usize,
    /// End a round whose calls all succeeded and all wrote with a composed confirmation
    /// instead of a second model call (see `confirm`).
    pub compose_confirmations: bool,
}

impl Default for TurnLimits {
    fn default() -> Self {
        TurnLimits {
            max_rounds: 6,
            history_messages: 40,
            history_tokens: 6_000,
            open_tasks: 20,
            turn_timeout: Duration::from_secs(60),
            max_destructive_calls: 3,
            compose_confirmations: true,
        }
    }
}

/// A tool call of the turn, as answered to the client.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct ToolCallReport {
    pub name: String,
    pub arguments: Value,
    pub result: Value,
    pub is_error: bool,
}

/// The collected answer of a turn.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct TurnAnswer {
    pub conversation_id: Uuid,
    pub response: String,
    pub tool_calls: Vec<ToolCallReport>,
    pub created_at: DateTime<Utc>,
}

/// What a turn needs.
#[derive(Debug)]
pub struct TurnRequest {
    pub user: String,
    pub conversation_id: Option<Uuid>,
    pub message: String,
    pub timezone: Tz,
    /// An earlier attempt already stored the message (idempotent retry): don't store it again.
    pub resume: bool,
    /// Called once the user message is stored (idempotency bookkeeping).
    pub on_stored: Option<tokio::sync::oneshot::Sender<Uuid>>,
}

/// Why a turn failed. The person's message, once stored, stays stored.
#[derive(Debug, thiserror::Error)]
pub enum TurnError {
    #[error("conversation not found")]
    NotFound,
    #[error("another message of this conversation is being answered")]
    Busy,
    #[error("no language model is configured")]
    NotConfigured,
    #[error(transparent)]
    Llm(#[from] LlmError),
    #[error("the language model did not answer in time")]
    Timeout,
    #[error("storage failed")]
    Store(#[from] StoreError),
    #[error("the tools could not be reached")]
    Tools(#[source] anyhow::Error),
}

/// The agent: model, tools, stores and limits.
pub struct Agent {
    pub llm: Option<Llm>,
    pub toolbox: Toolbox,
    pub conversations: Arc<dyn ConversationStore>,
    pub tasks: Arc<dyn TaskStore>,
    pub prompt: String,
    pub limits: TurnLimits,
    pub metrics: Arc<Metrics>,
}

fn title_from(message: &str) -> String {
    let one_line = message.split_whitespace().collect::<Vec<_>>().join(" ");
    let mut t: String = one_line.chars().take(60).collect();
    if one_line.chars().count() > 60 {
        t.push('…');
    }
    t
}

impl Agent {
    /// Runs one turn under the conversation's lease.
    #[tracing::instrument(name = "turn", skip_all, fields(conversation_id = tracing::field::Empty))]
    pub async fn run(&self, mut req: TurnRequest) -> Result<TurnAnswer, TurnError> {
        let llm = self.llm.as_ref().ok_or(TurnError::NotConfigured)?;
        let lease = Uuid::new_v4().to_string();
        let until = self.lease_until();
        let id = match req.conversation_id {
            Some(id) => match self
                .conversations
                .acquire(&req.user, id, &lease, until)
                .await?
            {
                Lease::Acquired => id,
                Lease::Busy => return Err(TurnError::Busy),
                Lease::NotFound => return Err(TurnError::NotFound),
            },
            None => {
                let id = Uuid::now_v7();
                self.conversations
                    .create(&req.user, id, &title_from(&req.message), &lease, until)
                    .await?;
                id
            }
        };
        tracing::Span::current().record("conversation_id", tracing::field::display(id));
        let result = self.run_leased(llm, id, &lease, &mut req).await;
        // A finished turn released the lease with its last message; a failed one does here.
        if result.is_err()
            && let Err(e) = self.conversations.release(id, &lease).await
        {
            tracing::warn!(error = %e, "releasing a conversation lease failed; it will expire");
        }
        result
    }

    /// A lease outlives the turn's model deadline by a margin; every append renews it.
    fn lease_until(&self) -> DateTime<Utc> {
        Utc::now()
            + chrono::Duration::from_std(self.limits.turn_timeout + Duration::from_secs(30))
                .unwrap_or(chrono::Duration::minutes(2))
    }

    async fn run_leased(
        &self,
        llm: &Llm,
        id: Uuid,
        lease: &str,
        req: &mut TurnRequest,
    ) -> Result<TurnAnswer, TurnError> {
        let deadline = Instant::now() + self.limits.turn_timeout;
        if !req.resume {
            self.conversations
                .append(
                    id,
                    lease,
                    self.lease_until(),
                    &[NewMessage {
                        role: Some(Role::User),
                        content: req.message.clone(),
                        ..NewMessage::default()
                    }],
                    false,
                )
                .await?;
        }
        if let Some(tx) = req.on_stored.take() {
            let _ = tx.send(id);
        }
        // History, the open-task view and the tool session are independent: fetch together.
        let (stored, open, session) = tokio::join!(
            self.conversations.recent(id, self.limits.history_messages),
            self.tasks.open_tasks(&req.user, self.limits.open_tasks + 1),
            self.toolbox.session_in_zone(&req.user, req.timezone),
        );
        let stored = stored?;
        let open = open.map_err(|e| match e {
            todo_mcp::tasks::StoreError::Database(d) => TurnError::Store(StoreError::Database(d)),
            todo_mcp::tasks::StoreError::NotFound => TurnError::Store(StoreError::NotFound),
        })?;
        let session = session.map_err(TurnError::Tools)?;
        let more_open = open.len() > self.limits.open_tasks as usize;
        let open = &open[..open.len().min(self.limits.open_tasks as usize)];
        // Instructions (then the tools) first and always the same bytes: a cacheable prefix.
        // What changes every turn travels with the person's latest message.
        let mut messages = vec![WireMessage::System {
            content: prompt::system_message(&self.prompt),
        }];
        messages.extend(history::to_wire(&stored, self.limits.history_tokens));
        let context = prompt::context_block(Utc::now(), req.timezone, open, more_open);
        if let Some(WireMessage::User { content }) = messages
            .iter_mut()
            .rev()
            .find(|m| matches!(m, WireMessage::User { .. }))
        {
            *content = prompt::with_context(&context, content);
        }

        let result = self
            .rounds(
                llm,
                id,
                lease,
                &req.user,
                &session,
                messages,
                deadline,
                req.timezone,
            )
            .await;
        session.close().await;
        result
    }

    #[allow(clippy::too_many_arguments)] // the turn's state, passed rather than bundled for one caller
    async fn rounds(
        &self,
        llm: &Llm,
        id: Uuid,
        lease: &str,
        user: &str,
        session: &ToolSession,
        mut messages: Vec<WireMessage>,
        deadline: Instant,
        tz: Tz,
    ) -> Result<TurnAnswer, TurnError> {
        let mut reports = Vec::new();
        let mut destructive = 0usize;
        for round in 0..self.limits.max_rounds {
            let last_round = round + 1 == self.limits.max_rounds;
            // The last round offers no tools, so the model has to answer in words.
            let tools = if last_round {
                &[][..]
            } else {
                self.toolbox.functions()
            };
            let started = Instant::now();
            let c = tokio::time::timeout_at(deadline.into(), llm.complete(&messages, tools)).await;
            let outcome = match &c {
                Err(_) => "timeout",
                Ok(Ok(_)) => "ok",
                Ok(Err(LlmError::RateLimited)) => "rate_limited",
                Ok(Err(LlmError::Unavailable(_))) => "unavailable",
                Ok(Err(LlmError::Rejected { .. })) => "rejected",
                Ok(Err(LlmError::BadReply(_))) => "bad_reply",
            };
            let (p, k) = match &c {
                Ok(Ok(c)) => (c.prompt_tokens, c.completion_tokens),
                _ => (0, 0),
            };
            self.metrics
                .observe_llm(llm.model(), outcome, started.elapsed(), p, k);
            if let Ok(Ok(c)) = &c {
                self.metrics
                    .observe_cached_prompt_tokens(llm.model(), c.cached_prompt_tokens);
            }
            let c = c.map_err(|_| TurnError::Timeout)??;
            if c.tool_calls.is_empty() || last_round {
                return self.finish(id, lease, c, reports).await;
            }
            let round_start = reports.len();
            let (assistant, results) = self
                .run_calls(id, user, session, &c, &mut reports, &mut destructive)
                .await;
            let mut to_store = vec![NewMessage {
                role: Some(Role::Assistant),
                content: c.content.clone().unwrap_or_default(),
                tool_calls: assistant.clone(),
                prompt_tokens: Some(i64::from(c.prompt_tokens)),
                completion_tokens: Some(i64::from(c.completion_tokens)),
                ..NewMessage::default()
            }];
            to_store.extend(results.iter().map(|(call_id, name, o)| NewMessage {
                role: Some(Role::Tool),
                content: o.text.clone(),
                tool_call_id: Some(call_id.clone()),
                tool_name: Some(name.clone()),
                is_error: o.is_error,
                ..NewMessage::default()
            }));
            // The call and its answers are stored together: history stays valid.
            self.conversations
                .append(id, lease, self.lease_until(), &to_store, false)
                .await?;
            // Writes that all succeeded need no second model call to be confirmed.
            if self.limits.compose_confirmations
                && let Some(text) = confirm::compose(&reports[round_start..], tz, Utc::now())
            {
                return self
                    .finish(id, lease, Completion::composed(text), reports)
                    .await;
            }
            messages.push(WireMessage::Assistant {
                content: c.content.clone(),
                tool_calls: assistant
                    .iter()
                    .map(|a| WireToolCall {
                        id: a.id.clone(),
                        kind: "function",
                        function: WireFunction {
                            name: a.name.clone(),
                            arguments: a.arguments.clone(),
                        },
                    })
                    .collect(),
            });
            messages.extend(
                results
                    .into_iter()
                    .map(|(call_id, _, o)| WireMessage::Tool {
                        tool_call_id: call_id,
                        content: o.text,
                    }),
            );
        }
        // Every round but the last returns or continues; the last always returns. Only a
        // limit of zero rounds (refused by the settings) ends here.
        Err(TurnError::Llm(LlmError::BadReply(
            "no model rounds are allowed".into(),
        )))
    }

    /// Runs every call of one assistant message, in order; each gets an answer.
    async fn run_calls(
        &self,
        id: Uuid,
        user: &str,
        session: &ToolSession,
        c: &Completion,
        reports: &mut Vec<ToolCallReport>,
        destructive: &mut usize,
    ) -> (Vec<ToolCallRecord>, Vec<(String, String, ToolOutcome)>) {
        let mut records = Vec::with_capacity(c.tool_calls.len());
        let mut results = Vec::with_capacity(c.tool_calls.len());
        let mut audits = Vec::with_capacity(c.tool_calls.len());
        for call in &c.tool_calls {
            records.push(ToolCallRecord {
                id: call.id.clone(),
                name: call.name.clone(),
                arguments: call.arguments.clone(),
            });
            let started = Instant::now();
            let parsed: Result<serde_json::Map<String, Value>, String> =
                match serde_json::from_str::<Value>(if call.arguments.trim().is_empty() {
                    "{}"
                } else {
                    &call.arguments
                }) {
                    Ok(Value::Object(o)) => Ok(o),
                    Ok(_) => Err("The arguments must be a JSON object.".into()),
                    Err(e) => Err(format!(
                        "The arguments were not valid JSON ({e}); send a JSON object."
                    )),
                };
            let outcome = if !self.toolbox.knows(&call.name) {
                ToolOutcome::error(format!(
                    "There is no tool named {:?}. Available tools: {}.",
                    call.name,
                    self.toolbox.names().join(", ")
                ))
            } else {
                match &parsed {
                    Err(m) => ToolOutcome::error(m.clone()),
                    Ok(_)
                        if self.toolbox.is_destructive(&call.name)
                            && *destructive >= self.limits.max_destructive_calls =>
                    {
                        ToolOutcome::error(format!(
                            "Refused: more than {} destructive changes in one turn. Tell the person what you \
                             intend to change and ask them to confirm before continuing.",
                            self.limits.max_destructive_calls
                        ))
                    }
                    Ok(args) => {
                        if self.toolbox.is_destructive(&call.name) {
                            *destructive += 1;
                        }
                        session.call(&call.name, args.clone()).await
                    }
                }
            };
            let elapsed = started.elapsed();
            self.metrics
                .observe_tool(&call.name, outcome.is_error, elapsed);
            audits.push(ToolExecution {
                user_id: user.to_string(),
                conversation_id: Some(id),
                tool_call_id: Some(call.id.clone()),
                tool: call.name.clone(),
                arguments: call.arguments.clone(),
                result: outcome.result.to_string(),
                is_error: outcome.is_error,
                duration_ms: elapsed.as_millis() as i64,
            });
            tracing::info!(tool = %call.name, is_error = outcome.is_error, duration_ms = elapsed.as_millis() as u64, "tool call");
            reports.push(ToolCallReport {
                name: call.name.clone(),
                arguments: match parsed {
                    Ok(o) => Value::Object(o),
                    Err(_) => Value::String(call.arguments.clone()),
                },
                result: outcome.result.clone(),
                is_error: outcome.is_error,
            });
            results.push((call.id.clone(), call.name.clone(), outcome));
        }
        if let Err(e) = self.conversations.record_tools(&audits).await {
            tracing::error!(error = %e, calls = audits.len(), "recording tool executions failed");
        }
        (records, results)
    }

    async fn finish(
        &self,
        id: Uuid,
        lease: &str,
        c: Completion,
        reports: Vec<ToolCallReport>,
    ) -> Result<TurnAnswer, TurnError> {
        let response = c.content.clone().unwrap_or_else(|| {
            if reports.is_empty() {
                "Sorry, I have no answer to that.".to_string()
            } else {
                "Done.".to_string()
            }
        });
        let stored = self
            .conversations
            .append(
                id,
                lease,
                self.lease_until(),
                &[NewMessage {
                    role: Some(Role::Assistant),
                    content: response.clone(),
                    prompt_tokens: Some(i64::from(c.prompt_tokens)),
                    completion_tokens: Some(i64::from(c.completion_tokens)),
                    ..NewMessage::default()
                }],
                true,
            )
            .await?;
        let created_at = stored.first().map_or_else(Utc::now, |m| m.created_at);
        Ok(TurnAnswer {
            conversation_id: id,
            response,
            tool_calls: reports,
            created_at,
        })
    }
}
