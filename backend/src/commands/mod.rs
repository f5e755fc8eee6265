//! Commands typed in chat — `/add`, `/list`, `/done 3`, `/undo`… — run at once against the
//! same MCP tools the model uses, through the same tool session, with no model call. A command
//! turn is stored as an ordinary exchange (the person's message, an assistant message carrying
//! the tool call, the tool's answer, the assistant's reply), so a model reading the history
//! later sees a valid conversation, and it answers in the same [`TurnAnswer`] shape.
//!
//! With no model configured, a message that is not a command gets a short explanation of the
//! commands and of the settings that enable free-form chat, stored the same way.

pub mod parse;
pub mod render;

use std::time::Instant;

use chrono::{DateTime, NaiveTime, Utc};
use rmcp::model::JsonObject;
use serde_json::{Value, json};
use todo_core::conversations::{NewMessage, Role, ToolCallRecord};
use todo_core::error::Chain;
use todo_core::tasks::when::{self, When};
use uuid::Uuid;

use self::parse::{Change, Command, ListView, Malformed};
use self::render::Here;
use crate::agent::toolbox::ToolOutcome;
use crate::agent::{Agent, ToolCallReport, TurnAnswer, TurnError, TurnRequest};

/// What a free-form message is answered with when no model is configured.
pub const NO_MODEL: &str = "No language model is configured here, so I only understand commands. \
Try /add buy milk tomorrow 5pm, /list and /done 1; /help lists them all. \
To chat in your own words, set OPENAI_API_KEY, OPENAI_BASE_URL and LLM_MODEL \
(any OpenAI-compatible server) and restart the service.";

/// Said for `/undo` when the tools have no `undo`.
pub const NO_UNDO: &str =
    "Undo is not available on this server: its tools have no `undo`. Nothing was changed.";

/// The MCP tool behind `/undo`.
const UNDO_TOOL: &str = "undo";

/// Whether this turn is answered here rather than by the model.
pub fn handles(agent: &Agent, message: &str) -> bool {
    parse::is_command(message) || agent.llm.is_none()
}

/// Runs one chat turn: a command or the no-model explanation here, anything else with the model.
pub async fn run_turn(agent: &Agent, req: TurnRequest) -> Result<TurnAnswer, TurnError> {
    if handles(agent, &req.message) {
        run(agent, req).await
    } else {
        agent.run(req).await
    }
}

/// What a command turn does: a tool call, or only a reply.
enum Plan {
    Call {
        command: Command,
        tool: &'static str,
        args: JsonObject,
    },
    Reply(String),
}

fn object(v: Value) -> JsonObject {
    match v {
        Value::Object(o) => o,
        _ => JsonObject::new(),
    }
}

/// The end of the person's day as an instant, and midnight UTC of their date (how a whole-day
/// due date is stored): the tools' due window must take in both.
fn day_bounds(here: Here) -> (DateTime<Utc>, DateTime<Utc>) {
    let today = here.now.with_timezone(&here.tz).date_naive();
    let tomorrow = today.succ_opt().unwrap_or(today);
    let end_local = when::resolve(here.tz, tomorrow.and_time(NaiveTime::MIN));
    (end_local, tomorrow.and_time(NaiveTime::MIN).and_utc())
}

fn stamp(t: DateTime<Utc>) -> String {
    When::At(t).to_due()
}

fn list_args(view: &ListView, here: Here) -> JsonObject {
    let (end_of_today, utc_tomorrow) = day_bounds(here);
    let utc_today = utc_tomorrow - chrono::Duration::days(1);
    object(match view {
        ListView::Open => json!({"limit": 50}),
        ListView::Today => {
            json!({"due_before": stamp(end_of_today.max(utc_tomorrow)), "limit": 100})
        }
        ListView::Overdue => {
            json!({"due_before": stamp(here.now.max(utc_today)), "limit": 100})
        }
        ListView::Done => json!({"status": "completed", "limit": 50}),
        ListView::Trash => json!({"status": "deleted", "limit": 50}),
        ListView::All => json!({"status": "all", "limit": 50}),
        ListView::Tag(t) => json!({"tag": t, "limit": 50}),
        ListView::Search(q) => json!({"query": q, "limit": 50}),
    })
}

fn plan(agent: &Agent, message: &str, here: Here) -> Plan {
    if !parse::is_command(message) {
        return Plan::Reply(NO_MODEL.to_string());
    }
    let command = match parse::parse(message, here.now, here.tz) {
        Ok(c) => c,
        Err(Malformed { problem, usage }) => {
            return Plan::Reply(format!("{problem}\nUsage: {usage}"));
        }
    };
    let (tool, args) = match &command {
        Command::Help => return Plan::Reply(parse::help().to_string()),
        Command::Undo if !agent.toolbox.knows(UNDO_TOOL) => {
            return Plan::Reply(NO_UNDO.to_string());
        }
        Command::Undo => (UNDO_TOOL, JsonObject::new()),
        Command::Add {
            title,
            due,
            priority,
            tags,
            repeat,
            parent,
        } => {
            let mut a = json!({ "title": title });
            if let Some(r) = repeat {
                a["repeat"] = json!(r);
            }
            if let Some(p) = parent {
                a["parent_id"] = json!(p);
            }
            if let Some(d) = due {
                a["due"] = json!(d.to_due());
            }
            if let Some(p) = priority {
                a["priority"] = json!(p);
            }
            if !tags.is_empty() {
                a["tags"] = json!(tags);
            }
            ("add_task", object(a))
        }
        Command::List(view) => ("list_tasks", list_args(view, here)),
        Command::Done(id) => ("complete_task", object(json!({ "id": id }))),
        Command::Undone(id) => (
            "update_task",
            object(json!({ "id": id, "completed": false })),
        ),
        Command::Delete(id) => ("delete_task", object(json!({ "id": id }))),
        Command::Restore(id) => ("restore_task", object(json!({ "id": id }))),
        Command::Edit { id, change } => {
            let (field, value) = match change {
                Change::Title(t) => ("title", json!(t)),
                Change::Due(d) => ("due", d.map_or(Value::Null, |d| json!(d.to_due()))),
                Change::Priority(p) => ("priority", json!(p)),
                Change::Tags(t) => ("tags", json!(t)),
                Change::Description(d) => ("description", json!(d)),
                Change::Repeat(r) => ("repeat", json!(r)),
            };
            ("update_task", object(json!({ "id": id, field: value })))
        }
    };
    Plan::Call {
        command,
        tool,
        args,
    }
}

/// Runs a turn answered without the model, under the conversation's lease.
#[tracing::instrument(name = "command_turn", skip_all, fields(conversation_id = tracing::field::Empty))]
pub async fn run(agent: &Agent, mut req: TurnRequest) -> Result<TurnAnswer, TurnError> {
    let lease = Uuid::new_v4().to_string();
    let id = agent.take_lease(&req, &lease, agent.lease_until()).await?;
    tracing::Span::current().record("conversation_id", tracing::field::display(id));
    let result = run_leased(agent, id, &lease, &mut req).await;
    if result.is_err() {
        agent.release_lease(id, &lease).await;
    }
    result
}

async fn run_leased(
    agent: &Agent,
    id: Uuid,
    lease: &str,
    req: &mut TurnRequest,
) -> Result<TurnAnswer, TurnError> {
    agent.store_message(id, lease, req).await?;
    let here = Here {
        now: Utc::now(),
        tz: req.timezone,
    };
    let (response, mut to_store, reports) = match plan(agent, &req.message, here) {
        Plan::Reply(text) => (text, Vec::new(), Vec::new()),
        Plan::Call {
            command,
            tool,
            args,
        } => {
            let (outcome, report, records) =
                call(agent, id, &req.user, req.timezone, tool, args).await?;
            (
                render::answer(&command, &outcome, here),
                records,
                vec![report],
            )
        }
    };
    to_store.push(NewMessage {
        role: Some(Role::Assistant),
        content: response.clone(),
        // No model call: no token counts (the usage sums count model calls by them).
        ..NewMessage::default()
    });
    let stored = agent
        .conversations
        .append(id, lease, agent.lease_until(), &to_store, true)
        .await?;
    let created_at = stored.last().map_or_else(Utc::now, |m| m.created_at);
    Ok(TurnAnswer {
        conversation_id: id,
        response,
        tool_calls: reports,
        created_at,
        usage: crate::usage::TokenUsage::default(),
    })
}

/// One tool call through a session of the tool box, audited and measured like the model's.
async fn call(
    agent: &Agent,
    conversation: Uuid,
    user: &str,
    tz: chrono_tz::Tz,
    tool: &str,
    args: JsonObject,
) -> Result<(ToolOutcome, ToolCallReport, Vec<NewMessage>), TurnError> {
    let call_id = format!("cmd_{}", Uuid::new_v4().simple());
    let arguments = Value::Object(args.clone()).to_string();
    let session = agent
        .toolbox
        // In the person's zone, as a model turn's tools are: a repeat rule is read there.
        .session_in_zone(user, tz)
        .await
        .map_err(TurnError::Tools)?;
    let started = Instant::now();
    let outcome = session.call(tool, args.clone()).await;
    let elapsed = started.elapsed();
    session.close().await;
    agent.metrics.observe_tool(tool, outcome.is_error, elapsed);
    tracing::info!(
        tool,
        is_error = outcome.is_error,
        duration_ms = elapsed.as_millis() as u64,
        "command tool call"
    );
    let call = ToolCallRecord {
        id: call_id,
        name: tool.to_string(),
        arguments,
    };
    let audit = outcome.audit(user, conversation, &call, elapsed);
    if let Err(e) = agent.conversations.record_tools(&[audit]).await {
        tracing::error!(error = %Chain(&e), "recording a command's tool execution failed");
    }
    let answer = NewMessage::tool_answer(&call.id, tool, outcome.text.clone(), outcome.is_error);
    let records = vec![
        NewMessage {
            role: Some(Role::Assistant),
            tool_calls: vec![call],
            prompt_tokens: Some(0),
            completion_tokens: Some(0),
            ..NewMessage::default()
        },
        answer,
    ];
    let report = ToolCallReport {
        name: tool.to_string(),
        arguments: Value::Object(args),
        result: outcome.result.clone(),
        is_error: outcome.is_error,
    };
    Ok((outcome, report, records))
}
