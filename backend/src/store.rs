//! Conversation storage: conversations with their turn lease, ordered messages, idempotency
//! records and the audit of tool executions. One interface, implemented for PostgreSQL and
//! SQLite from one body of SQL (both accept `$N`, `RETURNING` and `ON CONFLICT`).

use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::Row;
use todo_mcp::db::Database;
use uuid::Uuid;

/// Why a store call failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("not found")]
    NotFound,
    /// The turn's lease expired and another turn took the conversation.
    #[error("the conversation lease was lost")]
    LeaseLost,
    #[error("database error")]
    Database(#[from] sqlx::Error),
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
    match db {
        Database::Postgres(p) => Arc::new(PgConversationStore { pool: p.clone() }),
        Database::Sqlite(p) => Arc::new(SqliteConversationStore { pool: p.clone() }),
    }
}

fn now() -> DateTime<Utc> {
    let t = Utc::now();
    DateTime::from_timestamp_micros(t.timestamp_micros()).unwrap_or(t)
}

macro_rules! message_columns {
    () => {
        "seq, role, content, tool_calls, tool_call_id, tool_name, is_error, prompt_tokens, completion_tokens, \
         cached_prompt_tokens, model, created_at"
    };
}

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

macro_rules! sql_conversation_store {
    ($name:ident, $db:ty, $row:ty) => {
        struct $name {
            pool: sqlx::Pool<$db>,
        }

        impl $name {
            fn message(r: &$row) -> Result<Message, sqlx::Error> {
                let calls: Option<String> = r.try_get("tool_calls")?;
                let role: String = r.try_get("role")?;
                Ok(Message {
                    seq: r.try_get("seq")?,
                    role: Role::parse(&role),
                    content: r.try_get("content")?,
                    tool_calls: calls
                        .and_then(|c| serde_json::from_str(&c).ok())
                        .unwrap_or_default(),
                    tool_call_id: r.try_get("tool_call_id")?,
                    tool_name: r.try_get("tool_name")?,
                    is_error: r.try_get("is_error")?,
                    prompt_tokens: r.try_get("prompt_tokens")?,
                    completion_tokens: r.try_get("completion_tokens")?,
                    cached_prompt_tokens: r.try_get("cached_prompt_tokens")?,
                    model: r.try_get("model")?,
                    created_at: r.try_get("created_at")?,
                })
            }

            async fn owns(&self, user: &str, id: Uuid) -> Result<bool, sqlx::Error> {
                // COUNT(*) is a 64-bit integer in both dialects.
                let n: i64 = sqlx::query_scalar(
                    "SELECT COUNT(*) FROM conversations WHERE id = $1 AND user_id = $2",
                )
                .bind(id.to_string())
                .bind(user)
                .fetch_one(&self.pool)
                .await?;
                Ok(n > 0)
            }

            fn conversation(r: &$row) -> Result<Conversation, sqlx::Error> {
                let id: String = r.try_get("id")?;
                Ok(Conversation {
                    id: Uuid::parse_str(&id).map_err(|e| sqlx::Error::Decode(Box::new(e)))?,
                    title: r.try_get("title")?,
                    created_at: r.try_get("created_at")?,
                    updated_at: r.try_get("updated_at")?,
                })
            }
        }

        #[async_trait]
        impl ConversationStore for $name {
            async fn create(&self, user: &str, id: Uuid, title: &str, lease: &str, until: DateTime<Utc>) -> Result<Conversation, StoreError> {
                let ts = now();
                let row = sqlx::query(
                    "INSERT INTO conversations (id, user_id, title, created_at, updated_at, lease_token, lease_expires_at) \
                     VALUES ($1, $2, $3, $4, $4, $5, $6) RETURNING id, title, created_at, updated_at",
                )
                .bind(id.to_string())
                .bind(user)
                .bind(title)
                .bind(ts)
                .bind(lease)
                .bind(until)
                .fetch_one(&self.pool)
                .await?;
                Ok(Self::conversation(&row)?)
            }

            async fn acquire(&self, user: &str, id: Uuid, lease: &str, until: DateTime<Utc>) -> Result<Lease, StoreError> {
                let ts = now();
                let taken = sqlx::query(
                    "UPDATE conversations SET lease_token = $3, lease_expires_at = $4, updated_at = $5 \
                     WHERE id = $1 AND user_id = $2 AND (lease_token IS NULL OR lease_expires_at < $5)",
                )
                .bind(id.to_string())
                .bind(user)
                .bind(lease)
                .bind(until)
                .bind(ts)
                .execute(&self.pool)
                .await?
                .rows_affected();
                if taken == 1 {
                    return Ok(Lease::Acquired);
                }
                Ok(if self.owns(user, id).await? { Lease::Busy } else { Lease::NotFound })
            }

            async fn release(&self, id: Uuid, lease: &str) -> Result<(), StoreError> {
                sqlx::query(
                    "UPDATE conversations SET lease_token = NULL, lease_expires_at = NULL \
                     WHERE id = $1 AND lease_token = $2",
                )
                .bind(id.to_string())
                .bind(lease)
                .execute(&self.pool)
                .await?;
                Ok(())
            }

            async fn append(&self, id: Uuid, lease: &str, renew_until: DateTime<Utc>, msgs: &[NewMessage], release: bool) -> Result<Vec<Message>, StoreError> {
                if msgs.is_empty() {
                    return Ok(Vec::new());
                }
                let mut tx = self.pool.begin().await?;
                let ts = now();
                // One statement checks the lease, renews or releases it, and reserves the
                // message numbers; on PostgreSQL it also locks the row until commit.
                let last: Option<i64> = sqlx::query_scalar(
                    "UPDATE conversations SET updated_at = $3, last_seq = last_seq + $5, \
                     lease_token = CASE WHEN $6 THEN NULL ELSE lease_token END, \
                     lease_expires_at = CASE WHEN $6 THEN NULL \
                                             WHEN lease_expires_at < $4 THEN $4 ELSE lease_expires_at END \
                     WHERE id = $1 AND lease_token = $2 RETURNING last_seq",
                )
                .bind(id.to_string())
                .bind(lease)
                .bind(ts)
                .bind(renew_until)
                .bind(msgs.len() as i64)
                .bind(release)
                .fetch_optional(&mut *tx)
                .await?;
                let Some(last) = last else {
                    return Err(StoreError::LeaseLost);
                };
                let first = last - msgs.len() as i64 + 1;
                let mut insert = sqlx::QueryBuilder::<$db>::new(
                    "INSERT INTO messages (conversation_id, seq, role, content, tool_calls, tool_call_id, \
                     tool_name, is_error, prompt_tokens, completion_tokens, cached_prompt_tokens, model, \
                     created_at) ",
                );
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
                let rows = insert.build().fetch_all(&mut *tx).await?;
                tx.commit().await?;
                let mut out = rows.iter().map(Self::message).collect::<Result<Vec<_>, _>>()?;
                out.sort_by_key(|m| m.seq);
                Ok(out)
            }

            async fn recent(&self, id: Uuid, limit: u32) -> Result<Vec<Message>, StoreError> {
                let rows = sqlx::query(concat!(
                    "SELECT ", message_columns!(),
                    " FROM messages WHERE conversation_id = $1 ORDER BY seq DESC LIMIT $2"
                ))
                .bind(id.to_string())
                .bind(i64::from(limit))
                .fetch_all(&self.pool)
                .await?;
                let mut v = rows.iter().map(Self::message).collect::<Result<Vec<_>, _>>()?;
                v.reverse();
                Ok(v)
            }

            async fn list(&self, user: &str, limit: u32, offset: u32) -> Result<Vec<Conversation>, StoreError> {
                let rows = sqlx::query(
                    "SELECT id, title, created_at, updated_at FROM conversations WHERE user_id = $1 \
                     ORDER BY updated_at DESC, id LIMIT $2 OFFSET $3",
                )
                .bind(user)
                .bind(i64::from(limit))
                .bind(i64::from(offset))
                .fetch_all(&self.pool)
                .await?;
                Ok(rows.iter().map(Self::conversation).collect::<Result<Vec<_>, _>>()?)
            }

            async fn messages(&self, user: &str, id: Uuid, after_seq: i64, limit: u32) -> Result<Vec<Message>, StoreError> {
                if !self.owns(user, id).await? {
                    return Err(StoreError::NotFound);
                }
                let rows = sqlx::query(concat!(
                    "SELECT ", message_columns!(),
                    " FROM messages WHERE conversation_id = $1 AND seq > $2 ORDER BY seq LIMIT $3"
                ))
                .bind(id.to_string())
                .bind(after_seq)
                .bind(i64::from(limit))
                .fetch_all(&self.pool)
                .await?;
                Ok(rows.iter().map(Self::message).collect::<Result<Vec<_>, _>>()?)
            }

            async fn idempotency_begin(&self, user: &str, key: &str, hash: &str, stale_before: DateTime<Utc>, expired_before: DateTime<Utc>) -> Result<Idempotency, StoreError> {
                let ts = now();
                // New, or replacing an expired record in the same atomic statement.
                let inserted = sqlx::query(IDEMPOTENCY_BEGIN)
                .bind(user)
                .bind(key)
                .bind(hash)
                .bind(ts)
                .bind(expired_before)
                .execute(&self.pool)
                .await?
                .rows_affected();
                if inserted == 1 {
                    return Ok(Idempotency::New);
                }
                let row = sqlx::query(
                    "SELECT request_hash, state, conversation_id, status_code, response, updated_at \
                     FROM idempotency_keys WHERE user_id = $1 AND key = $2",
                )
                .bind(user)
                .bind(key)
                .fetch_one(&self.pool)
                .await?;
                let stored_hash: String = row.try_get("request_hash")?;
                if stored_hash != hash {
                    return Ok(Idempotency::Mismatch);
                }
                let state: String = row.try_get("state")?;
                let updated: DateTime<Utc> = row.try_get("updated_at")?;
                let conv: Option<String> = row.try_get("conversation_id")?;
                let conversation_id = conv.and_then(|c| Uuid::parse_str(&c).ok());
                match state.as_str() {
                    "done" => {
                        let status: Option<i32> = row.try_get("status_code")?;
                        let body: Option<String> = row.try_get("response")?;
                        Ok(Idempotency::Replay {
                            status: status.and_then(|s| u16::try_from(s).ok()).unwrap_or(200),
                            body: body.unwrap_or_default(),
                        })
                    }
                    "running" if updated >= stale_before => Ok(Idempotency::InProgress),
                    _ => {
                        // Failed, or abandoned by a crashed turn: take it over atomically.
                        let taken = sqlx::query(
                            "UPDATE idempotency_keys SET state = 'running', updated_at = $3 \
                             WHERE user_id = $1 AND key = $2 AND updated_at = $4 AND state <> 'done'",
                        )
                        .bind(user)
                        .bind(key)
                        .bind(ts)
                        .bind(updated)
                        .execute(&self.pool)
                        .await?
                        .rows_affected();
                        if taken == 1 {
                            Ok(Idempotency::Resume { conversation_id })
                        } else {
                            Ok(Idempotency::InProgress)
                        }
                    }
                }
            }

            async fn idempotency_conversation(&self, user: &str, key: &str, id: Uuid) -> Result<(), StoreError> {
                sqlx::query("UPDATE idempotency_keys SET conversation_id = $3 WHERE user_id = $1 AND key = $2")
                    .bind(user)
                    .bind(key)
                    .bind(id.to_string())
                    .execute(&self.pool)
                    .await?;
                Ok(())
            }

            async fn idempotency_finish(&self, user: &str, key: &str, done: Option<(u16, &str)>) -> Result<(), StoreError> {
                let (state, status, body) = match done {
                    Some((s, b)) => ("done", Some(i32::from(s)), Some(b)),
                    None => ("failed", None, None),
                };
                sqlx::query(
                    "UPDATE idempotency_keys SET state = $3, status_code = $4, response = $5, updated_at = $6 \
                     WHERE user_id = $1 AND key = $2",
                )
                .bind(user)
                .bind(key)
                .bind(state)
                .bind(status)
                .bind(body)
                .bind(now())
                .execute(&self.pool)
                .await?;
                Ok(())
            }

            async fn record_tools(&self, es: &[ToolExecution]) -> Result<(), StoreError> {
                // Calls recorded as started are completed in place; any others are added.
                let mut rest = Vec::with_capacity(es.len());
                for e in es {
                    let done = match (&e.conversation_id, &e.tool_call_id) {
                        (Some(c), Some(call)) => sqlx::query(
                            "UPDATE tool_executions SET result = $1, is_error = $2, duration_ms = $3, \
                             state = 'finished' WHERE conversation_id = $4 AND tool_call_id = $5 \
                             AND state = 'started'",
                        )
                        .bind(&e.result)
                        .bind(e.is_error)
                        .bind(e.duration_ms)
                        .bind(c.to_string())
                        .bind(call)
                        .execute(&self.pool)
                        .await?
                        .rows_affected() > 0,
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
                let r = sqlx::query(
                    "UPDATE tool_executions SET state = 'interrupted', is_error = TRUE, \
                     result = '{\"error\":\"interrupted\"}' WHERE conversation_id = $1 AND state = 'started'",
                )
                .bind(conversation.to_string())
                .execute(&self.pool)
                .await?;
                Ok(r.rows_affected())
            }
        }

        impl $name {
            async fn insert_tools(&self, es: &[ToolExecution], state: &str) -> Result<(), StoreError> {
                if es.is_empty() {
                    return Ok(());
                }
                let ts = now();
                let mut q = sqlx::QueryBuilder::<$db>::new(
                    "INSERT INTO tool_executions (user_id, conversation_id, tool_call_id, tool, arguments, \
                     result, is_error, duration_ms, created_at, state) ",
                );
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
                q.build().execute(&self.pool).await?;
                Ok(())
            }
        }
    };
}

sql_conversation_store!(PgConversationStore, sqlx::Postgres, sqlx::postgres::PgRow);
sql_conversation_store!(
    SqliteConversationStore,
    sqlx::Sqlite,
    sqlx::sqlite::SqliteRow
);
