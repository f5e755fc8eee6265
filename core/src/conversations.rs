//! Conversation storage: conversations with their turn lease, ordered messages, idempotency
//! records and the audit of tool executions. One interface, one implementation over either
//! database: the SQL is the same for both dialects (`$N`, `RETURNING`, `ON CONFLICT`), and
//! only the driver a query runs on is chosen per call (`db::on_pool!`).

use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::db::{Database, on_pool, on_tx};
use crate::error::{DbError, failed};

/// Why a store call failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("not found")]
    NotFound,
    /// The turn's lease expired and another turn took the conversation.
    #[error("the conversation lease was lost")]
    LeaseLost,
    /// The database failed or could not be reached; the error names the operation.
    #[error(transparent)]
    Database(#[from] DbError),
}

/// Who wrote a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    User,
    Assistant,
    Tool,
}

impl Role {
    fn as_str(self) -> &'static str {
        match self {
            Role::User => "user",
            Role::Assistant => "assistant",
            Role::Tool => "tool",
        }
    }

    fn parse(s: &str) -> Role {
        match s {
            "assistant" => Role::Assistant,
            "tool" => Role::Tool,
            _ => Role::User,
        }
    }
}

/// A tool call as the model asked for it; `arguments` is the model's JSON text, kept verbatim.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ToolCallRecord {
    pub id: String,
    pub name: String,
    pub arguments: String,
}

/// A message to store.
#[derive(Debug, Clone, Default)]
pub struct NewMessage {
    pub role: Option<Role>,
    pub content: String,
    pub tool_calls: Vec<ToolCallRecord>,
    pub tool_call_id: Option<String>,
    pub tool_name: Option<String>,
    pub is_error: bool,
    pub prompt_tokens: Option<i64>,
    pub completion_tokens: Option<i64>,
    /// Of `prompt_tokens`, those the provider served from its cache.
    pub cached_prompt_tokens: Option<i64>,
    /// The model that wrote an assistant message.
    pub model: Option<String>,
}

impl NewMessage {
    /// The answer of tool `tool` to the call `call_id`.
    pub fn tool_answer(call_id: &str, tool: &str, content: String, is_error: bool) -> NewMessage {
        NewMessage {
            role: Some(Role::Tool),
            content,
            tool_call_id: Some(call_id.to_string()),
            tool_name: Some(tool.to_string()),
            is_error,
            ..NewMessage::default()
        }
    }
}

/// A stored message.
#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema)]
pub struct Message {
    pub seq: i64,
    pub role: Role,
    pub content: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tool_calls: Vec<ToolCallRecord>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tool_call_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tool_name: Option<String>,
    pub is_error: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prompt_tokens: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub completion_tokens: Option<i64>,
    /// Of `prompt_tokens`, those the provider served from its cache.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cached_prompt_tokens: Option<i64>,
    /// The model that wrote an assistant message.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    pub created_at: DateTime<Utc>,
}

/// A conversation as listed.
#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema)]
pub struct Conversation {
    pub id: Uuid,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// Outcome of trying to take a conversation's turn lease.
#[derive(Debug, PartialEq, Eq)]
pub enum Lease {
    Acquired,
    /// Another turn holds it.
    Busy,
    /// No such conversation for this user.
    NotFound,
}

/// What an `Idempotency-Key` says about a request.
#[derive(Debug, PartialEq)]
pub enum Idempotency {
    /// First time: run it.
    New,
    /// An earlier attempt failed after storing the message in this conversation: finish it
    /// without storing the message again.
    Resume { conversation_id: Option<Uuid> },
    /// Already answered: send this again.
    Replay { status: u16, body: String },
    /// The key was used for a different request.
    Mismatch,
    /// The first attempt is still running.
    InProgress,
}

/// A tool execution for the audit trail.
#[derive(Debug, Clone)]
pub struct ToolExecution {
    pub user_id: String,
    pub conversation_id: Option<Uuid>,
    pub tool_call_id: Option<String>,
    pub tool: String,
    pub arguments: String,
    pub result: String,
    pub is_error: bool,
    pub duration_ms: i64,
}

fn now() -> DateTime<Utc> {
    let t = Utc::now();
    DateTime::from_timestamp_micros(t.timestamp_micros()).unwrap_or(t)
}

/// Storage of conversations, messages, idempotency records and the tool audit.
#[async_trait]
pub trait ConversationStore: Send + Sync + 'static {
    /// Creates a conversation already leased to the caller's turn.
    async fn create(
        &self,
        user: &str,
        id: Uuid,
        title: &str,
        lease: &str,
        until: DateTime<Utc>,
    ) -> Result<Conversation, StoreError>;
    async fn acquire(
        &self,
        user: &str,
        id: Uuid,
        lease: &str,
        until: DateTime<Utc>,
    ) -> Result<Lease, StoreError>;
    async fn release(&self, id: Uuid, lease: &str) -> Result<(), StoreError>;
    /// Appends messages in order, atomically, if `lease` still holds the conversation, and
    /// renews the lease (or releases it with `release`, for a turn's last message): a turn
    /// that outlived its lease can never interleave with the next one.
    async fn append(
        &self,
        id: Uuid,
        lease: &str,
        renew_until: DateTime<Utc>,
        msgs: &[NewMessage],
        release: bool,
    ) -> Result<Vec<Message>, StoreError>;
    /// The last `limit` messages, oldest first.
    async fn recent(&self, id: Uuid, limit: u32) -> Result<Vec<Message>, StoreError>;
    async fn list(
        &self,
        user: &str,
        limit: u32,
        offset: u32,
    ) -> Result<Vec<Conversation>, StoreError>;
    /// Messages after `after_seq`, oldest first; `NotFound` when not this user's.
    async fn messages(
        &self,
        user: &str,
        id: Uuid,
        after_seq: i64,
        limit: u32,
    ) -> Result<Vec<Message>, StoreError>;
    /// Looks up (or starts) the record of `key`. A `running` record last touched before
    /// `stale_before` was abandoned and is taken over; any record last touched before
    /// `expired_before` (the idempotency TTL) counts as absent and is replaced, so an
    /// expired answer is never replayed even before the sweeper deletes it.
    async fn idempotency_begin(
        &self,
        user: &str,
        key: &str,
        hash: &str,
        stale_before: DateTime<Utc>,
        expired_before: DateTime<Utc>,
    ) -> Result<Idempotency, StoreError>;
    async fn idempotency_conversation(
        &self,
        user: &str,
        key: &str,
        id: Uuid,
    ) -> Result<(), StoreError>;
    /// Records the end of a keyed request: `done` with its answer, or `failed`.
    async fn idempotency_finish(
        &self,
        user: &str,
        key: &str,
        done: Option<(u16, &str)>,
    ) -> Result<(), StoreError>;
    /// Adds tool executions to the audit trail, completing their `started` rows if any.
    async fn record_tools(&self, es: &[ToolExecution]) -> Result<(), StoreError>;
    /// Records tool calls about to run (audit state `started`), in one statement.
    async fn tools_started(&self, es: &[ToolExecution]) -> Result<(), StoreError>;
    /// Marks the `started` audit rows of a conversation `interrupted`; how many there were.
    async fn tools_interrupted(&self, conversation: Uuid) -> Result<u64, StoreError>;
}

/// The conversation store on a database.
pub fn conversation_store(db: &Database) -> Arc<dyn ConversationStore> {
    Arc::new(SqlConversationStore { db: db.clone() })
}

/// [`ConversationStore`] over either database.
struct SqlConversationStore {
    db: Database,
}

/// The columns of [`MessageRow`], as a literal so that queries stay `&'static str`.
macro_rules! message_columns {
    () => {
        "seq, role, content, tool_calls, tool_call_id, tool_name, is_error, prompt_tokens, \
         completion_tokens, cached_prompt_tokens, model, created_at"
    };
}

/// A `messages` row.
#[derive(sqlx::FromRow)]
struct MessageRow {
    seq: i64,
    role: String,
    content: String,
    /// The calls as JSON text.
    tool_calls: Option<String>,
    tool_call_id: Option<String>,
    tool_name: Option<String>,
    is_error: bool,
    prompt_tokens: Option<i64>,
    completion_tokens: Option<i64>,
    cached_prompt_tokens: Option<i64>,
    model: Option<String>,
    created_at: DateTime<Utc>,
}

impl From<MessageRow> for Message {
    fn from(r: MessageRow) -> Message {
        Message {
            seq: r.seq,
            role: Role::parse(&r.role),
            content: r.content,
            tool_calls: r
                .tool_calls
                .and_then(|c| serde_json::from_str(&c).ok())
                .unwrap_or_default(),
            tool_call_id: r.tool_call_id,
            tool_name: r.tool_name,
            is_error: r.is_error,
            prompt_tokens: r.prompt_tokens,
            completion_tokens: r.completion_tokens,
            cached_prompt_tokens: r.cached_prompt_tokens,
            model: r.model,
            created_at: r.created_at,
        }
    }
}

/// A `conversations` row as listed.
#[derive(sqlx::FromRow)]
struct ConversationRow {
    id: String,
    title: Option<String>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

impl TryFrom<ConversationRow> for Conversation {
    type Error = sqlx::Error;

    fn try_from(r: ConversationRow) -> Result<Conversation, sqlx::Error> {
        Ok(Conversation {
            id: Uuid::parse_str(&r.id).map_err(|e| sqlx::Error::Decode(Box::new(e)))?,
            title: r.title,
            created_at: r.created_at,
            updated_at: r.updated_at,
        })
    }
}

fn conversations(rows: Vec<ConversationRow>) -> Result<Vec<Conversation>, sqlx::Error> {
    rows.into_iter().map(Conversation::try_from).collect()
}

/// An `idempotency_keys` row.
#[derive(sqlx::FromRow)]
struct IdempotencyRow {
    request_hash: String,
    state: String,
    conversation_id: Option<String>,
    status_code: Option<i32>,
    response: Option<String>,
    updated_at: DateTime<Utc>,
}

// COUNT(*) is a 64-bit integer in both dialects.
const OWNS: &str = "SELECT COUNT(*) FROM conversations WHERE id = $1 AND user_id = $2";

const CREATE: &str = "INSERT INTO conversations (id, user_id, title, created_at, updated_at, \
     lease_token, lease_expires_at) VALUES ($1, $2, $3, $4, $4, $5, $6) \
     RETURNING id, title, created_at, updated_at";

const ACQUIRE: &str = "UPDATE conversations SET lease_token = $3, lease_expires_at = $4, \
     updated_at = $5 \
     WHERE id = $1 AND user_id = $2 AND (lease_token IS NULL OR lease_expires_at < $5)";

const RELEASE: &str = "UPDATE conversations SET lease_token = NULL, lease_expires_at = NULL \
     WHERE id = $1 AND lease_token = $2";

/// Checks the lease, renews or releases it, and reserves the message numbers, in one
/// statement; on PostgreSQL it also locks the row until commit.
const RESERVE_SEQ: &str = "UPDATE conversations SET updated_at = $3, \
     last_seq = last_seq + $5, \
     lease_token = CASE WHEN $6 THEN NULL ELSE lease_token END, \
     lease_expires_at = CASE WHEN $6 THEN NULL \
                             WHEN lease_expires_at < $4 THEN $4 ELSE lease_expires_at END \
     WHERE id = $1 AND lease_token = $2 RETURNING last_seq";

const INSERT_MESSAGES: &str = "INSERT INTO messages (conversation_id, seq, role, content, \
     tool_calls, tool_call_id, tool_name, is_error, prompt_tokens, completion_tokens, \
     cached_prompt_tokens, model, created_at) ";

const RECENT: &str = concat!(
    "SELECT ",
    message_columns!(),
    " FROM messages WHERE conversation_id = $1 ORDER BY seq DESC LIMIT $2"
);

const LIST: &str = "SELECT id, title, created_at, updated_at FROM conversations \
     WHERE user_id = $1 ORDER BY updated_at DESC, id LIMIT $2 OFFSET $3";

const MESSAGES_AFTER: &str = concat!(
    "SELECT ",
    message_columns!(),
    " FROM messages WHERE conversation_id = $1 AND seq > $2 ORDER BY seq LIMIT $3"
);

/// Starts a keyed request: inserts its record, or replaces one that has expired (last
/// touched before `$5`) as if it were absent. One statement, so two requests racing for an
/// expired key cannot both start.
const IDEMPOTENCY_BEGIN: &str = "INSERT INTO idempotency_keys \
     (user_id, key, request_hash, state, created_at, updated_at) \
     VALUES ($1, $2, $3, 'running', $4, $4) \
     ON CONFLICT (user_id, key) DO UPDATE SET request_hash = excluded.request_hash, \
        state = 'running', conversation_id = NULL, status_code = NULL, response = NULL, \
        created_at = excluded.created_at, updated_at = excluded.updated_at \
     WHERE idempotency_keys.updated_at < $5";

const KEY_GET: &str = "SELECT request_hash, state, conversation_id, status_code, response, \
     updated_at FROM idempotency_keys WHERE user_id = $1 AND key = $2";

/// Takes over a failed or abandoned key, only if nobody else did since it was read.
const KEY_TAKE_OVER: &str = "UPDATE idempotency_keys SET state = 'running', updated_at = $3 \
     WHERE user_id = $1 AND key = $2 AND updated_at = $4 AND state <> 'done'";

const KEY_CONVERSATION: &str =
    "UPDATE idempotency_keys SET conversation_id = $3 WHERE user_id = $1 AND key = $2";

const KEY_FINISH: &str = "UPDATE idempotency_keys SET state = $3, status_code = $4, \
     response = $5, updated_at = $6 WHERE user_id = $1 AND key = $2";

const TOOL_FINISH: &str = "UPDATE tool_executions SET result = $1, is_error = $2, \
     duration_ms = $3, state = 'finished' \
     WHERE conversation_id = $4 AND tool_call_id = $5 AND state = 'started'";

const TOOLS_INTERRUPTED: &str = "UPDATE tool_executions SET state = 'interrupted', \
     is_error = TRUE, result = '{\"error\":\"interrupted\"}' \
     WHERE conversation_id = $1 AND state = 'started'";

const INSERT_TOOLS: &str = "INSERT INTO tool_executions (user_id, conversation_id, \
     tool_call_id, tool, arguments, result, is_error, duration_ms, created_at, state) ";

impl SqlConversationStore {
    async fn owns(&self, user: &str, id: Uuid) -> Result<bool, DbError> {
        let n: i64 = on_pool!(&self.db, |p| {
            sqlx::query_scalar(OWNS)
                .bind(id.to_string())
                .bind(user)
                .fetch_one(p)
                .await
        })
        .map_err(failed("checking a conversation's owner"))?;
        Ok(n > 0)
    }

    async fn insert_tools(&self, es: &[ToolExecution], state: &str) -> Result<(), StoreError> {
        if es.is_empty() {
            return Ok(());
        }
        let ts = now();
        on_pool!(&self.db, |p| {
            let mut q = sqlx::QueryBuilder::new(INSERT_TOOLS);
            q.push_values(es, |mut b, e| {
                b.push_bind(e.user_id.clone())
                    .push_bind(e.conversation_id.map(|c| c.to_string()))
                    .push_bind(e.tool_call_id.clone())
                    .push_bind(e.tool.clone())
                    .push_bind(e.arguments.clone())
                    .push_bind(e.result.clone())
                    .push_bind(e.is_error)
                    .push_bind(e.duration_ms)
                    .push_bind(ts)
                    .push_bind(state.to_string());
            });
            q.build().execute(p).await.map(drop)
        })
        .map_err(failed("recording tool executions"))?;
        Ok(())
    }
}

#[async_trait]
impl ConversationStore for SqlConversationStore {
    async fn create(
        &self,
        user: &str,
        id: Uuid,
        title: &str,
        lease: &str,
        until: DateTime<Utc>,
    ) -> Result<Conversation, StoreError> {
        let what = "creating a conversation";
        let ts = now();
        let row: ConversationRow = on_pool!(&self.db, |p| {
            sqlx::query_as(CREATE)
                .bind(id.to_string())
                .bind(user)
                .bind(title)
                .bind(ts)
                .bind(lease)
                .bind(until)
                .fetch_one(p)
                .await
        })
        .map_err(failed(what))?;
        Ok(Conversation::try_from(row).map_err(failed(what))?)
    }

    async fn acquire(
        &self,
        user: &str,
        id: Uuid,
        lease: &str,
        until: DateTime<Utc>,
    ) -> Result<Lease, StoreError> {
        let ts = now();
        let taken = on_pool!(&self.db, |p| {
            sqlx::query(ACQUIRE)
                .bind(id.to_string())
                .bind(user)
                .bind(lease)
                .bind(until)
                .bind(ts)
                .execute(p)
                .await
                .map(|r| r.rows_affected())
        })
        .map_err(failed("taking a conversation's lease"))?;
        if taken == 1 {
            return Ok(Lease::Acquired);
        }
        Ok(if self.owns(user, id).await? {
            Lease::Busy
        } else {
            Lease::NotFound
        })
    }

    async fn release(&self, id: Uuid, lease: &str) -> Result<(), StoreError> {
        on_pool!(&self.db, |p| {
            sqlx::query(RELEASE)
                .bind(id.to_string())
                .bind(lease)
                .execute(p)
                .await
                .map(drop)
        })
        .map_err(failed("releasing a conversation's lease"))?;
        Ok(())
    }

    async fn append(
        &self,
        id: Uuid,
        lease: &str,
        renew_until: DateTime<Utc>,
        msgs: &[NewMessage],
        release: bool,
    ) -> Result<Vec<Message>, StoreError> {
        if msgs.is_empty() {
            return Ok(Vec::new());
        }
        let what = "appending messages";
        let mut tx = self
            .db
            .begin()
            .await
            .map_err(failed("starting a transaction"))?;
        let ts = now();
        let last: Option<i64> = on_tx!(&mut tx, |c| {
            sqlx::query_scalar(RESERVE_SEQ)
                .bind(id.to_string())
                .bind(lease)
                .bind(ts)
                .bind(renew_until)
                .bind(msgs.len() as i64)
                .bind(release)
                .fetch_optional(c)
                .await
        })
        .map_err(failed("renewing a conversation's lease"))?;
        let Some(last) = last else {
            return Err(StoreError::LeaseLost);
        };
        let first = last - msgs.len() as i64 + 1;
        let rows: Vec<MessageRow> = on_tx!(&mut tx, |c| {
            let mut insert = sqlx::QueryBuilder::new(INSERT_MESSAGES);
            insert.push_values(msgs.iter().enumerate(), |mut b, (i, m)| {
                let calls = (!m.tool_calls.is_empty())
                    .then(|| serde_json::to_string(&m.tool_calls).ok())
                    .flatten();
                b.push_bind(id.to_string())
                    .push_bind(first + i as i64)
                    .push_bind(m.role.unwrap_or(Role::User).as_str())
                    .push_bind(m.content.clone())
                    .push_bind(calls)
                    .push_bind(m.tool_call_id.clone())
                    .push_bind(m.tool_name.clone())
                    .push_bind(m.is_error)
                    .push_bind(m.prompt_tokens)
                    .push_bind(m.completion_tokens)
                    .push_bind(m.cached_prompt_tokens)
                    .push_bind(m.model.clone())
                    .push_bind(ts);
            });
            insert.push(concat!(" RETURNING ", message_columns!()));
            insert.build_query_as().fetch_all(c).await
        })
        .map_err(failed(what))?;
        tx.commit().await.map_err(failed(what))?;
        let mut out: Vec<Message> = rows.into_iter().map(Message::from).collect();
        out.sort_by_key(|m| m.seq);
        Ok(out)
    }

    async fn recent(&self, id: Uuid, limit: u32) -> Result<Vec<Message>, StoreError> {
        let rows: Vec<MessageRow> = on_pool!(&self.db, |p| {
            sqlx::query_as(RECENT)
                .bind(id.to_string())
                .bind(i64::from(limit))
                .fetch_all(p)
                .await
        })
        .map_err(failed("reading recent messages"))?;
        let mut v: Vec<Message> = rows.into_iter().map(Message::from).collect();
        v.reverse();
        Ok(v)
    }

    async fn list(
        &self,
        user: &str,
        limit: u32,
        offset: u32,
    ) -> Result<Vec<Conversation>, StoreError> {
        let what = "listing conversations";
        let rows: Vec<ConversationRow> = on_pool!(&self.db, |p| {
            sqlx::query_as(LIST)
                .bind(user)
                .bind(i64::from(limit))
                .bind(i64::from(offset))
                .fetch_all(p)
                .await
        })
        .map_err(failed(what))?;
        Ok(conversations(rows).map_err(failed(what))?)
    }

    async fn messages(
        &self,
        user: &str,
        id: Uuid,
        after_seq: i64,
        limit: u32,
    ) -> Result<Vec<Message>, StoreError> {
        if !self.owns(user, id).await? {
            return Err(StoreError::NotFound);
        }
        let rows: Vec<MessageRow> = on_pool!(&self.db, |p| {
            sqlx::query_as(MESSAGES_AFTER)
                .bind(id.to_string())
                .bind(after_seq)
                .bind(i64::from(limit))
                .fetch_all(p)
                .await
        })
        .map_err(failed("reading messages"))?;
        Ok(rows.into_iter().map(Message::from).collect())
    }

    async fn idempotency_begin(
        &self,
        user: &str,
        key: &str,
        hash: &str,
        stale_before: DateTime<Utc>,
        expired_before: DateTime<Utc>,
    ) -> Result<Idempotency, StoreError> {
        let what = "checking an idempotency key";
        let ts = now();
        // New, or replacing an expired record in the same atomic statement.
        let inserted = on_pool!(&self.db, |p| {
            sqlx::query(IDEMPOTENCY_BEGIN)
                .bind(user)
                .bind(key)
                .bind(hash)
                .bind(ts)
                .bind(expired_before)
                .execute(p)
                .await
                .map(|r| r.rows_affected())
        })
        .map_err(failed(what))?;
        if inserted == 1 {
            return Ok(Idempotency::New);
        }
        let row: IdempotencyRow = on_pool!(&self.db, |p| {
            sqlx::query_as(KEY_GET)
                .bind(user)
                .bind(key)
                .fetch_one(p)
                .await
        })
        .map_err(failed(what))?;
        if row.request_hash != hash {
            return Ok(Idempotency::Mismatch);
        }
        let conversation_id = row.conversation_id.and_then(|c| Uuid::parse_str(&c).ok());
        match row.state.as_str() {
            "done" => Ok(Idempotency::Replay {
                status: row
                    .status_code
                    .and_then(|s| u16::try_from(s).ok())
                    .unwrap_or(200),
                body: row.response.unwrap_or_default(),
            }),
            "running" if row.updated_at >= stale_before => Ok(Idempotency::InProgress),
            _ => {
                // Failed, or abandoned by a crashed turn: take it over atomically.
                let taken = on_pool!(&self.db, |p| {
                    sqlx::query(KEY_TAKE_OVER)
                        .bind(user)
                        .bind(key)
                        .bind(ts)
                        .bind(row.updated_at)
                        .execute(p)
                        .await
                        .map(|r| r.rows_affected())
                })
                .map_err(failed("taking over an idempotency key"))?;
                if taken == 1 {
                    Ok(Idempotency::Resume { conversation_id })
                } else {
                    Ok(Idempotency::InProgress)
                }
            }
        }
    }

    async fn idempotency_conversation(
        &self,
        user: &str,
        key: &str,
        id: Uuid,
    ) -> Result<(), StoreError> {
        on_pool!(&self.db, |p| {
            sqlx::query(KEY_CONVERSATION)
                .bind(user)
                .bind(key)
                .bind(id.to_string())
                .execute(p)
                .await
                .map(drop)
        })
        .map_err(failed("linking an idempotency key to its conversation"))?;
        Ok(())
    }

    async fn idempotency_finish(
        &self,
        user: &str,
        key: &str,
        done: Option<(u16, &str)>,
    ) -> Result<(), StoreError> {
        let (state, status, body) = match done {
            Some((s, b)) => ("done", Some(i32::from(s)), Some(b)),
            None => ("failed", None, None),
        };
        let ts = now();
        on_pool!(&self.db, |p| {
            sqlx::query(KEY_FINISH)
                .bind(user)
                .bind(key)
                .bind(state)
                .bind(status)
                .bind(body)
                .bind(ts)
                .execute(p)
                .await
                .map(drop)
        })
        .map_err(failed("finishing an idempotency key"))?;
        Ok(())
    }

    async fn record_tools(&self, es: &[ToolExecution]) -> Result<(), StoreError> {
        // Calls recorded as started are completed in place; any others are added.
        let mut rest = Vec::with_capacity(es.len());
        for e in es {
            let done = match (&e.conversation_id, &e.tool_call_id) {
                (Some(c), Some(call)) => {
                    on_pool!(&self.db, |p| {
                        sqlx::query(TOOL_FINISH)
                            .bind(&e.result)
                            .bind(e.is_error)
                            .bind(e.duration_ms)
                            .bind(c.to_string())
                            .bind(call)
                            .execute(p)
                            .await
                            .map(|r| r.rows_affected())
                    })
                    .map_err(failed("completing a tool execution"))?
                        > 0
                }
                _ => false,
            };
            if !done {
                rest.push(e.clone());
            }
        }
        self.insert_tools(&rest, "finished").await
    }

    async fn tools_started(&self, es: &[ToolExecution]) -> Result<(), StoreError> {
        self.insert_tools(es, "started").await
    }

    async fn tools_interrupted(&self, conversation: Uuid) -> Result<u64, StoreError> {
        let n = on_pool!(&self.db, |p| {
            sqlx::query(TOOLS_INTERRUPTED)
                .bind(conversation.to_string())
                .execute(p)
                .await
                .map(|r| r.rows_affected())
        })
        .map_err(failed("marking tool executions interrupted"))?;
        Ok(n)
    }
}
