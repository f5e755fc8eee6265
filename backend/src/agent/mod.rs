//! One chat turn: the person's message, the model, the tools, and the stored history.
//! Nothing survives in memory between turns; every turn rehydrates from the database.

pub mod bounds;
pub mod confirm;
pub mod events;
pub mod grounding;
pub mod history;
pub mod llm;
pub mod prompt;
pub mod reread;
pub mod stream;
pub mod textcalls;
pub mod toolbox;

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use serde::Serialize;
use serde_json::Value;
use todo_core::conversations::{
    ConversationStore, Lease, NewMessage, Role, StoreError, ToolCallRecord, ToolExecution,
};
use todo_core::error::Chain;
use todo_core::tasks::{ListFilter, StatusFilter, TaskStore};
use uuid::Uuid;

use self::llm::{Completion, Llm, LlmError, WireMessage};
use self::toolbox::{ToolOutcome, ToolSession, Toolbox};
use crate::metrics::Metrics;
use crate::usage::{Prices, TokenUsage};

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
    /// Longest wait for one MCP request (opening the tool session, one tool call).
    pub mcp_request_timeout: Duration,
    /// Tool calls run from one model reply; the rest are answered "not run".
    pub max_tool_calls_per_reply: usize,
    /// Tool calls run in one turn; then the model must answer in words.
    pub max_tool_calls_per_turn: usize,
    /// Characters of one tool result sent back to the model.
    pub max_tool_result_chars: usize,
    /// Estimated prompt tokens of one model round, re-checked before every round.
    pub max_prompt_tokens: usize,
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
            mcp_request_timeout: Duration::from_secs(15),
            max_tool_calls_per_reply: 8,
            max_tool_calls_per_turn: 16,
            max_tool_result_chars: 8_000,
            max_prompt_tokens: 32_000,
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
    /// Tokens (and cost, with `LLM_PRICES`) of this turn's model calls; zeros when the turn
    /// called no model.
    #[serde(default)]
    pub usage: TokenUsage,
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
    /// Per-model prices that turn tokens into cost (`LLM_PRICES`).
    pub prices: Arc<Prices>,
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
        // One deadline for the whole turn; storage gets a short grace past it, then the turn
        // is cut off whatever it is waiting for, so it can never pin a concurrency slot.
        let deadline = Instant::now() + self.limits.turn_timeout;
        let hard_stop = (deadline + bounds::STORAGE_GRACE).into();
        let lease = Uuid::new_v4().to_string();
        let until = self.lease_until();
        let id = tokio::time::timeout_at(hard_stop, async {
            self.take_lease(&req, &lease, until).await
        })
        .await
        .map_err(|_| TurnError::Timeout)??;
        tracing::Span::current().record("conversation_id", tracing::field::display(id));
        let result = tokio::time::timeout_at(
            hard_stop,
            self.run_leased(llm, id, &lease, &mut req, deadline),
        )
        .await
        .unwrap_or(Err(TurnError::Timeout));
        // A finished turn released the lease with its last message; a failed one does here.
        if result.is_err() {
            self.release_lease(id, &lease).await;
        }
        result
    }

    /// Gives a failed turn's lease back (bounded; an unreleased lease expires by itself).
    pub(crate) async fn release_lease(&self, id: Uuid, lease: &str) {
        match tokio::time::timeout(bounds::CLOSE_TIMEOUT, self.conversations.release(id, lease))
            .await
        {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "releasing a conversation lease failed; it will expire")
            }
            Err(_) => tracing::warn!("releasing a conversation lease timed out; it will expire"),
        }
    }

    /// Stores the person's message (unless the turn resumes one already stored) and says so
    /// to whoever waits for the conversation id.
    pub(crate) async fn store_message(
        &self,
        id: Uuid,
        lease: &str,
        req: &mut TurnRequest,
    ) -> Result<(), TurnError> {
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
        Ok(())
    }

    /// Takes the lease of the request's conversation, creating it when there is none.
    pub(crate) async fn take_lease(
        &self,
        req: &TurnRequest,
        lease: &str,
        until: DateTime<Utc>,
    ) -> Result<Uuid, TurnError> {
        Ok(match req.conversation_id {
            Some(id) => match self
                .conversations
                .acquire(&req.user, id, lease, until)
                .await?
            {
                Lease::Acquired => id,
                Lease::Busy => return Err(TurnError::Busy),
                Lease::NotFound => return Err(TurnError::NotFound),
            },
            None => {
                let id = Uuid::now_v7();
                self.conversations
                    .create(&req.user, id, &title_from(&req.message), lease, until)
                    .await?;
                id
            }
        })
    }

    /// A lease outlives the turn's hard stop by a margin; every append renews it.
    pub(crate) fn lease_until(&self) -> DateTime<Utc> {
        Utc::now()
            + chrono::Duration::from_std(
                self.limits.turn_timeout + bounds::STORAGE_GRACE + Duration::from_secs(5),
            )
            .unwrap_or(chrono::Duration::minutes(2))
    }

    /// Answers, as interrupted, the calls of a turn that died mid-call (the assistant message
    /// was stored before its tools ran), so the history stays valid and says what happened.
    async fn close_interrupted(&self, id: Uuid, lease: &str) -> Result<(), TurnError> {
        let tail = self
            .conversations
            .recent(id, self.limits.history_messages)
            .await?;
        let Some(pos) = tail.iter().rposition(|m| m.role == Role::Assistant) else {
            return Ok(());
        };
        if tail[pos + 1..].iter().any(|m| m.role != Role::Tool) {
            return Ok(());
        }
        let answered: std::collections::HashSet<&str> = tail[pos + 1..]
            .iter()
            .filter_map(|m| m.tool_call_id.as_deref())
            .collect();
        let missing: Vec<NewMessage> = tail[pos]
            .tool_calls
            .iter()
            .filter(|c| !answered.contains(c.id.as_str()))
            .map(|c| NewMessage::tool_answer(&c.id, &c.name, history::INTERRUPTED.into(), true))
            .collect();
        if missing.is_empty() {
            return Ok(());
        }
        tracing::warn!(
            calls = missing.len(),
            "an earlier turn was interrupted mid-call"
        );
        self.conversations
            .append(id, lease, self.lease_until(), &missing, false)
            .await?;
        self.conversations.tools_interrupted(id).await?;
        Ok(())
    }

    async fn run_leased(
        &self,
        llm: &Llm,
        id: Uuid,
        lease: &str,
        req: &mut TurnRequest,
        deadline: Instant,
    ) -> Result<TurnAnswer, TurnError> {
        if req.conversation_id.is_some() {
            self.close_interrupted(id, lease).await?;
        }
        self.store_message(id, lease, req).await?;
        events::emit(events::TurnEvent::Started {
            conversation_id: id,
        });
        // History, the open-task view and the tool session are independent: fetch together.
        let remote = self.toolbox.is_remote();
        let (stored, open, trash, session) = tokio::join!(
            self.conversations.recent(id, self.limits.history_messages),
            async {
                // Remote tools: the view is read through them, below.
                if remote {
                    return Ok(Vec::new());
                }
                self.tasks
                    .open_tasks(&req.user, self.limits.open_tasks + 1)
                    .await
            },
            async {
                if remote {
                    return Ok(Vec::new());
                }
                let trash = ListFilter {
                    status: StatusFilter::Deleted,
                    limit: prompt::TRASH_SHOWN,
                    ..ListFilter::default()
                };
                self.tasks.list(&req.user, &trash).await.map(|p| p.tasks)
            },
            async {
                let limit = deadline.min(Instant::now() + self.limits.mcp_request_timeout);
                tokio::time::timeout_at(
                    limit.into(),
                    self.toolbox.session_in_zone(&req.user, req.timezone),
                )
                .await
                .unwrap_or_else(|_| Err(anyhow::anyhow!("opening the tool session timed out")))
            },
        );
        let stored = stored?;
        let task_view = |e| match e {
            todo_core::tasks::StoreError::Database(d) => TurnError::Store(StoreError::Database(d)),
            todo_core::tasks::StoreError::NotFound | todo_core::tasks::StoreError::Refused(_) => {
                TurnError::Store(StoreError::NotFound)
            }
        };
        let open = open.map_err(task_view)?;
        let trash = trash.map_err(task_view)?;
        let session = session.map_err(TurnError::Tools)?;
        let (open, trash) = if remote {
            let read = |status: &str, limit: u32| {
                let mut args = serde_json::Map::new();
                args.insert("status".into(), status.into());
                args.insert("limit".into(), limit.min(100).into());
                session.list_tasks(args)
            };
            let limit = deadline.min(Instant::now() + self.limits.mcp_request_timeout);
            let both = async {
                tokio::try_join!(
                    read("pending", self.limits.open_tasks + 1),
                    read("deleted", prompt::TRASH_SHOWN)
                )
            };
            match tokio::time::timeout_at(limit.into(), both).await {
                Ok(Ok((open, trash))) => (open.tasks, trash.tasks),
                Ok(Err(e)) => return Err(TurnError::Tools(e)),
                Err(_) => return Err(TurnError::Timeout),
            }
        } else {
            (open, trash)
        };
        let more_open = open.len() > self.limits.open_tasks as usize;
        let open = &open[..open.len().min(self.limits.open_tasks as usize)];
        // Instructions (then the tools) first and always the same bytes: a cacheable prefix.
        // What changes every turn travels with the person's latest message.
        let mut messages = vec![WireMessage::System {
            content: prompt::system_message(&self.prompt),
        }];
        messages.extend(history::to_wire(&stored, self.limits.history_tokens));
        let context = prompt::context_block(Utc::now(), req.timezone, open, more_open, &trash);
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
                grounding::Said {
                    message: &req.message,
                    open,
                },
            )
            .await;
        if tokio::time::timeout(bounds::CLOSE_TIMEOUT, session.close())
            .await
            .is_err()
        {
            tracing::warn!("closing the tool session timed out");
        }
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
        said: grounding::Said<'_>,
    ) -> Result<TurnAnswer, TurnError> {
        let mut reports = Vec::new();
        let mut destructive = 0usize;
        let mut calls_in_turn = 0usize;
        let tools_chars: usize = self
            .toolbox
            .functions()
            .iter()
            .map(|f| f.to_string().len())
            .sum();
        let mut usage = TokenUsage::default();
        let mut repeats = reread::Repeats::default();
        for round in 0..self.limits.max_rounds {
            // The last round offers no tools, so the model has to answer in words; so does
            // a turn that has used up its tool calls.
            let last_round = round + 1 == self.limits.max_rounds
                || calls_in_turn >= self.limits.max_tool_calls_per_turn;
            let tools = if last_round {
                &[][..]
            } else {
                self.toolbox.functions()
            };
            let estimate =
                bounds::prompt_tokens(&messages, if last_round { 0 } else { tools_chars });
            if estimate > self.limits.max_prompt_tokens {
                tracing::warn!(
                    estimate,
                    round,
                    "the turn's prompt outgrew its budget; stopping"
                );
                let stop = Completion {
                    content: Some(bounds::OVER_BUDGET.to_string()),
                    tool_calls: vec![],
                    finish_reason: None,
                    prompt_tokens: 0,
                    completion_tokens: 0,
                    cached_prompt_tokens: 0,
                };
                return self
                    .finish(llm, id, lease, stop, reports, usage, false)
                    .await;
            }
            let started = Instant::now();
            let c = tokio::time::timeout_at(deadline.into(), llm.call(&messages, tools)).await;
            let outcome = match &c {
                Err(_) => "timeout",
                Ok(Ok(_)) => "ok",
                Ok(Err(e)) => e.metric_label(),
            };
            let (p, k) = match &c {
                Ok(Ok(c)) => (c.prompt_tokens, c.completion_tokens),
                _ => (0, 0),
            };
            self.metrics
                .observe_llm(llm.model(), outcome, started.elapsed(), p, k);
            let c = c.map_err(|_| TurnError::Timeout)??;
            self.metrics
                .observe_cached_prompt_tokens(llm.model(), c.cached_prompt_tokens);
            usage.add(&self.call_usage(llm, &c));
            if c.tool_calls.is_empty() || last_round {
                return self.finish(llm, id, lease, c, reports, usage, true).await;
            }
            // The turn ends with an answer composed here, and nothing of this reply runs, when
            // it asks again for what this turn already read or for a call that failed the same
            // way (reread.rs), or when the request fits several open tasks as well as the one
            // chosen (grounding.rs).
            let composed = repeats
                .repeated(&c.tool_calls)
                .and_then(|r| reread::answer(&r, tz, Utc::now()))
                .map(|text| {
                    (
                        text,
                        "the model repeated a call; answering with its outcome",
                    )
                })
                .or_else(|| {
                    grounding::ambiguous(&c.tool_calls, said).map(|(verb, fits)| {
                        (
                            grounding::question(verb, &fits),
                            "the request fits several tasks; asking which one",
                        )
                    })
                });
            if let Some((text, why)) = composed {
                tracing::info!(round, "{why}");
                events::emit(events::TurnEvent::Delta { text: text.clone() });
                let answer = Completion {
                    content: Some(text),
                    tool_calls: vec![],
                    ..c
                };
                return self
                    .finish(llm, id, lease, answer, reports, usage, true)
                    .await;
            }
            let round_start = reports.len();
            let assistant: Vec<ToolCallRecord> = c
                .tool_calls
                .iter()
                .map(|call| ToolCallRecord {
                    id: call.id.clone(),
                    name: call.name.clone(),
                    arguments: call.arguments.clone(),
                })
                .collect();
            // A record before every side effect: the calls are stored (message and audit)
            // before any runs, so a process killed mid-call leaves a history the next turn
            // can continue and a trail saying what was under way.
            self.conversations
                .append(
                    id,
                    lease,
                    self.lease_until(),
                    &[NewMessage {
                        role: Some(Role::Assistant),
                        content: c.content.clone().unwrap_or_default(),
                        tool_calls: assistant.clone(),
                        prompt_tokens: Some(i64::from(c.prompt_tokens)),
                        completion_tokens: Some(i64::from(c.completion_tokens)),
                        cached_prompt_tokens: Some(i64::from(c.cached_prompt_tokens)),
                        model: Some(llm.model().to_string()),
                        ..NewMessage::default()
                    }],
                    false,
                )
                .await?;
            let started_rows: Vec<ToolExecution> = c
                .tool_calls
                .iter()
                .map(|call| ToolExecution {
                    user_id: user.to_string(),
                    conversation_id: Some(id),
                    tool_call_id: Some(call.id.clone()),
                    tool: call.name.clone(),
                    arguments: call.arguments.clone(),
                    result: String::new(),
                    is_error: false,
                    duration_ms: 0,
                })
                .collect();
            self.conversations.tools_started(&started_rows).await?;
            messages.push(WireMessage::Assistant {
                content: c.content.clone(),
                tool_calls: assistant.iter().map(history::wire_call).collect(),
            });
            let mut audits = Vec::with_capacity(c.tool_calls.len());
            for (i, (call, record)) in c.tool_calls.iter().zip(&assistant).enumerate() {
                events::emit(events::TurnEvent::ToolCallStarted {
                    id: call.id.clone(),
                    name: call.name.clone(),
                    arguments: serde_json::from_str(&call.arguments)
                        .unwrap_or_else(|_| Value::String(call.arguments.clone())),
                });
                let started = Instant::now();
                let (outcome, arguments) = if i >= self.limits.max_tool_calls_per_reply {
                    let o = ToolOutcome::error(bounds::over_reply_cap(
                        self.limits.max_tool_calls_per_reply,
                    ));
                    (o, Value::String(call.arguments.clone()))
                } else if calls_in_turn >= self.limits.max_tool_calls_per_turn {
                    let o = ToolOutcome::error(bounds::over_turn_cap(
                        self.limits.max_tool_calls_per_turn,
                    ));
                    (o, Value::String(call.arguments.clone()))
                } else {
                    calls_in_turn += 1;
                    self.run_call(session, call, &mut destructive, deadline, said.message)
                        .await
                };
                let elapsed = started.elapsed();
                let known = self.toolbox.knows(&call.name);
                let label = bounds::tool_label(known, &call.name);
                self.metrics.observe_tool(label, outcome.is_error, elapsed);
                tracing::info!(
                    tool = label,
                    is_error = outcome.is_error,
                    duration_ms = elapsed.as_millis() as u64,
                    "tool call"
                );
                let text = bounds::truncate_for_model(
                    outcome.text.clone(),
                    self.limits.max_tool_result_chars,
                );
                // Each answer is stored as soon as it is known.
                self.conversations
                    .append(
                        id,
                        lease,
                        self.lease_until(),
                        &[NewMessage::tool_answer(
                            &call.id,
                            &call.name,
                            text.clone(),
                            outcome.is_error,
                        )],
                        false,
                    )
                    .await?;
                audits.push(outcome.audit(user, id, record, elapsed));
                events::emit(events::TurnEvent::ToolCallFinished {
                    id: call.id.clone(),
                    name: call.name.clone(),
                    result: outcome.result.clone(),
                    is_error: outcome.is_error,
                });
                if outcome.is_error {
                    repeats.record_failure(&call.name, &call.arguments, &outcome.text);
                } else if self.toolbox.is_read_only(&call.name) {
                    repeats.record(&call.name, &call.arguments, &outcome.result);
                }
                reports.push(ToolCallReport {
                    name: call.name.clone(),
                    arguments,
                    result: outcome.result,
                    is_error: outcome.is_error,
                });
                messages.push(WireMessage::Tool {
                    tool_call_id: call.id.clone(),
                    content: text,
                });
            }
            if let Err(e) = self.conversations.record_tools(&audits).await {
                tracing::error!(error = %Chain(&e), calls = audits.len(), "recording tool executions failed");
            }
            // Writes that all succeeded need no second model call to be confirmed.
            if self.limits.compose_confirmations
                && let Some(text) = confirm::compose(&reports[round_start..], tz, Utc::now())
            {
                // Shown like the model's text would have been.
                events::emit(events::TurnEvent::Delta { text: text.clone() });
                return self
                    .finish(
                        llm,
                        id,
                        lease,
                        Completion::composed(text),
                        reports,
                        usage,
                        false,
                    )
                    .await;
            }
        }
        // Every round but the last returns or continues; the last always returns. Only a
        // limit of zero rounds (refused by the settings) ends here.
        Err(TurnError::Llm(LlmError::BadReply(
            "no model rounds are allowed".into(),
        )))
    }

    /// Runs one call within the turn's deadline and the per-request timeout; every failure
    /// is an outcome the model can read. Also the arguments as the client is shown them.
    async fn run_call(
        &self,
        session: &ToolSession,
        call: &llm::RequestedCall,
        destructive: &mut usize,
        deadline: Instant,
        message: &str,
    ) -> (ToolOutcome, Value) {
        let mut parsed: Result<serde_json::Map<String, Value>, String> =
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
        // A due in words for a message that says nothing of when was not asked for.
        if let Ok(args) = &mut parsed
            && let Some(due) = grounding::unasked_due(&call.name, args, message)
        {
            let due: String = due.chars().take(40).collect();
            tracing::info!(tool = %call.name, due = %due, "left out a due the message does not ask for");
        }
        let outcome = if !self.toolbox.knows(&call.name) {
            // The model's own string, cut short; plain-text logs escape it (`todo_service::logfmt`).
            let requested: String = call.name.chars().take(100).collect();
            tracing::warn!(requested = %requested, "the model asked for a tool that does not exist");
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
                Ok(_) if Instant::now() >= deadline => ToolOutcome::error(bounds::OUT_OF_TIME),
                Ok(args) => {
                    if self.toolbox.is_destructive(&call.name) {
                        *destructive += 1;
                    }
                    let limit = deadline.min(Instant::now() + self.limits.mcp_request_timeout);
                    match tokio::time::timeout_at(
                        limit.into(),
                        session.call(&call.name, args.clone()),
                    )
                    .await
                    {
                        Ok(o) => o,
                        Err(_) if limit >= deadline => ToolOutcome::error(bounds::OUT_OF_TIME),
                        Err(_) => {
                            tracing::warn!(tool = %call.name, "tool call timed out");
                            ToolOutcome::error(bounds::no_answer(self.limits.mcp_request_timeout))
                        }
                    }
                }
            }
        };
        let arguments = match parsed {
            Ok(o) => Value::Object(o),
            Err(_) => Value::String(call.arguments.clone()),
        };
        (outcome, arguments)
    }

    /// One model call's tokens, priced.
    fn call_usage(&self, llm: &Llm, c: &Completion) -> TokenUsage {
        TokenUsage::call(
            u64::from(c.prompt_tokens),
            u64::from(c.cached_prompt_tokens),
            u64::from(c.completion_tokens),
        )
        .priced(&self.prices, llm.model())
    }

    // The turn's pieces, each needed here; a struct for them would exist for this call alone.
    #[allow(clippy::too_many_arguments)]
    async fn finish(
        &self,
        llm: &Llm,
        id: Uuid,
        lease: &str,
        c: Completion,
        reports: Vec<ToolCallReport>,
        usage: TokenUsage,
        called: bool,
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
                    // Token counts mark a model call: a composed or refused answer has none.
                    prompt_tokens: called.then(|| i64::from(c.prompt_tokens)),
                    completion_tokens: called.then(|| i64::from(c.completion_tokens)),
                    cached_prompt_tokens: called.then(|| i64::from(c.cached_prompt_tokens)),
                    model: called.then(|| llm.model().to_string()),
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
            usage,
        })
    }
}
