//! Chat-turn scenarios against todo-backend: throughput at several concurrencies, a
//! scripted conversation's prompt tokens, and how cost scales with stored data.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};

use crate::clients::{Backend, Mock};
use crate::db;
use crate::point::{self, Env, PointReport};

/// Each chat turn is `add task <n>`: one model call that asks for add_task, the tool call,
/// and one model call that answers in words.
pub const MODEL_CALLS_PER_TURN: u64 = 2;

/// Opens one conversation per user (an unmeasured first turn) and returns their ids.
async fn open_conversations(backend: &Backend, users: &[String]) -> anyhow::Result<Vec<String>> {
    let mut handles = Vec::new();
    for u in users {
        let (b, u) = (backend.clone(), u.clone());
        handles.push(tokio::spawn(
            async move { b.turn(&u, None, "add task 0").await },
        ));
    }
    let mut ids = Vec::new();
    for h in handles {
        match h.await? {
            Ok(id) => ids.push(id),
            Err(e) => bail!("opening a conversation failed: {e}"),
        }
    }
    Ok(ids)
}

/// A closed-loop point of `add task <n>` turns, each worker its own user and conversation.
#[allow(clippy::too_many_arguments)]
async fn turns_point(
    env: &Env,
    backend: &Backend,
    label: &str,
    users: Vec<String>,
    conversations: Vec<String>,
    duration: Duration,
    max_turns: u64,
    latency: Duration,
) -> anyhow::Result<PointReport> {
    let users = Arc::new(users);
    let conversations = Arc::new(conversations);
    let b = backend.clone();
    point::measure(
        env,
        label,
        users.len(),
        duration,
        max_turns,
        MODEL_CALLS_PER_TURN,
        latency,
        move |w, i| {
            let (b, users, conversations) = (b.clone(), users.clone(), conversations.clone());
            async move {
                b.turn(
                    &users[w],
                    Some(&conversations[w]),
                    &format!("add task {}", i + 1),
                )
                .await
                .map(drop)
            }
        },
    )
    .await
}

/// Turns per second, latency and per-turn cost at each concurrency.
pub async fn headline(
    env: &Env,
    backend: &Backend,
    run: &str,
    concurrency: &[usize],
    duration: Duration,
    latency: Duration,
) -> anyhow::Result<Vec<PointReport>> {
    let mut out = Vec::new();
    for &c in concurrency {
        let users: Vec<String> = (0..c).map(|i| format!("{run}-c{c}-u{i}")).collect();
        let conversations = open_conversations(backend, &users).await?;
        let label = format!("{c} concurrent users");
        // A generous budget: the point is bounded by time; this only bounds a runaway.
        let max = 2_000 * duration.as_secs().max(1);
        out.push(
            turns_point(
                env,
                backend,
                &label,
                users,
                conversations,
                duration,
                max,
                latency,
            )
            .await?,
        );
    }
    Ok(out)
}

/// One turn of the scripted conversation.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ScriptedTurn {
    pub turn: usize,
    pub model_calls: f64,
    /// Prompt tokens of the turn's model calls, as the mock counted them.
    pub prompt_tokens_mock: f64,
    /// The same, from the usage the backend stored with its assistant messages.
    pub prompt_tokens_stored: Vec<i64>,
    pub latency_ms: f64,
}

/// A fresh user's conversation of `turns` `add` turns, one at a time.
pub async fn scripted(
    backend: &Backend,
    mock: &Mock,
    run: &str,
    turns: usize,
) -> anyhow::Result<Vec<ScriptedTurn>> {
    let user = format!("{run}-scripted");
    let mut conversation: Option<String> = None;
    let mut out = Vec::new();
    for t in 1..=turns {
        let before = mock.stats().await?;
        let started = std::time::Instant::now();
        let id = backend
            .turn(&user, conversation.as_deref(), &format!("add task {t}"))
            .await
            .map_err(|e| anyhow::anyhow!("scripted turn {t} failed: {e}"))?;
        let latency_ms = started.elapsed().as_secs_f64() * 1000.0;
        let after = mock.stats().await?;
        conversation = Some(id);
        out.push(ScriptedTurn {
            turn: t,
            model_calls: after.requests - before.requests,
            prompt_tokens_mock: after.prompt_tokens - before.prompt_tokens,
            prompt_tokens_stored: Vec::new(),
            latency_ms,
        });
    }
    // Cross-check with the usage stored per assistant message, grouped by turn.
    let id = conversation.context("no conversation")?;
    let messages = backend.messages(&user, &id).await?;
    let mut turn = 0usize;
    for m in &messages {
        match m["role"].as_str() {
            Some("user") => turn += 1,
            Some("assistant") => {
                if let (Some(p), Some(row)) = (m["prompt_tokens"].as_i64(), out.get_mut(turn - 1)) {
                    row.prompt_tokens_stored.push(p);
                }
            }
            _ => {}
        }
    }
    Ok(out)
}

// ------------------------------------------------------------------------------------
// Scaling with stored data

/// Open tasks given to every user of the history-length points: more than the prompt's
/// cap (20), so the open-task list is the same size throughout and only history varies.
pub const TASKS_FOR_HISTORY_POINTS: u64 = 25;

fn values_list(rows: &[(String, String)]) -> String {
    rows.iter()
        .map(|(a, b)| format!("('{a}', '{b}')"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// SQL seeding, for each (conversation, user), a conversation of `n` messages shaped like
/// real `add` turns: user, assistant with one add_task call, its tool result, assistant text.
fn seed_conversations_sql(rows: &[(String, String)], n: u64) -> String {
    let values = values_list(rows);
    // When n is not a multiple of 4, the first n % 4 messages are small talk
    // (user/assistant pairs), so every seeded conversation ends with a complete turn.
    let p = n % 4;
    // The assistant's tool call as the backend stores it (ToolCallRecord JSON).
    let calls = r#"'[{"id":"seed_' || t || '","name":"add_task","arguments":"{\"title\":\"seeded task ' || t || '\"}"}]'"#;
    format!(
        "INSERT INTO conversations (id, user_id, title, created_at, updated_at, last_seq) \
         SELECT c.id, c.uid, 'seeded', now() - interval '30 days', now(), {n} FROM (VALUES {values}) AS c(id, uid); \
         INSERT INTO messages (conversation_id, seq, role, content, tool_calls, tool_call_id, tool_name, \
                               is_error, prompt_tokens, completion_tokens, created_at) \
         SELECT c.id, s, \
           CASE WHEN s <= {p} THEN (CASE WHEN s % 2 = 1 THEN 'user' ELSE 'assistant' END) \
                WHEN k = 1 THEN 'user' WHEN k = 3 THEN 'tool' ELSE 'assistant' END, \
           CASE WHEN s <= {p} THEN (CASE WHEN s % 2 = 1 THEN 'hello' ELSE 'You said: hello' END) \
                WHEN k = 1 THEN 'add seeded task ' || t \
                WHEN k = 2 THEN '' \
                WHEN k = 3 THEN 'Added #' || t || ' [ ] seeded task ' || t \
                ELSE 'Done. Added #' || t || ' [ ] seeded task ' || t END, \
           CASE WHEN s > {p} AND k = 2 THEN {calls} END, \
           CASE WHEN s > {p} AND k = 3 THEN 'seed_' || t END, \
           CASE WHEN s > {p} AND k = 3 THEN 'add_task' END, \
           false, \
           CASE WHEN s > {p} AND k IN (2, 4) THEN 900 END, \
           CASE WHEN s > {p} AND k IN (2, 4) THEN 12 END, \
           now() - interval '30 days' + s * interval '1 second' \
         FROM (VALUES {values}) AS c(id, uid), generate_series(1, {n}) AS s, \
              LATERAL (SELECT ((s - {p} - 1) % 4) + 1 AS k, (s - {p} - 1) / 4 AS t) AS x"
    )
}

/// SQL giving each user `n` open tasks (a third without a due date) and its counter.
fn seed_tasks_sql(users: &[String], n: u64) -> String {
    let values = users
        .iter()
        .map(|u| format!("('{u}')"))
        .collect::<Vec<_>>()
        .join(", ");
    format!(
        "INSERT INTO tasks (user_id, number, title, completed, due_at, priority, tags, created_at, updated_at) \
         SELECT u.uid, i, 'seeded task ' || i, false, \
           CASE WHEN i % 3 = 0 THEN NULL ELSE now() + (i % 365) * interval '1 day' END, \
           (i % 3)::smallint, '', now(), now() \
         FROM (VALUES {values}) AS u(uid), generate_series(1, {n}) AS i; \
         INSERT INTO task_counters (user_id, last_number) SELECT u.uid, {n} FROM (VALUES {values}) AS u(uid)"
    )
}

/// ~1M rows of other users: 5,000 users × 100 tasks, 5,000 conversations × 100 messages.
fn seed_background_sql(users: u64, per_user: u64) -> String {
    format!(
        "INSERT INTO tasks (user_id, number, title, completed, due_at, priority, tags, created_at, updated_at) \
         SELECT 'bg-u' || u, i, 'background task ' || i, i % 4 = 0, \
           CASE WHEN i % 3 = 0 THEN NULL ELSE now() + (i % 365) * interval '1 day' END, \
           (i % 3)::smallint, '', now(), now() \
         FROM generate_series(1, {users}) AS u, generate_series(1, {per_user}) AS i; \
         INSERT INTO task_counters (user_id, last_number) \
         SELECT 'bg-u' || u, {per_user} FROM generate_series(1, {users}) AS u; \
         INSERT INTO conversations (id, user_id, title, created_at, updated_at, last_seq) \
         SELECT md5('bg' || u)::uuid::text, 'bg-u' || u, 'background', now(), now(), {per_user} \
         FROM generate_series(1, {users}) AS u; \
         INSERT INTO messages (conversation_id, seq, role, content, created_at) \
         SELECT md5('bg' || u)::uuid::text, s, CASE WHEN s % 2 = 1 THEN 'user' ELSE 'assistant' END, \
           repeat('background message ', 5) || s, now() \
         FROM generate_series(1, {users}) AS u, generate_series(1, {per_user}) AS s; \
         ANALYZE"
    )
}

/// What the scaling runs report.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Scaling {
    pub history: Vec<(u64, PointReport)>,
    pub tasks: Vec<(u64, PointReport)>,
    pub background: Option<(Vec<(String, i64)>, PointReport)>,
    pub background_seed_seconds: f64,
    /// EXPLAIN ANALYZE of the open-task query, for the smallest and largest task counts,
    /// and of the index-friendly rewrite for the largest.
    pub plans: Vec<(String, String)>,
}

/// The SQL of `TaskStore::open_tasks` (a default `list` of pending tasks), as
/// mcp-server/src/tasks/store.rs builds it; keep in step when that changes.
pub const OPEN_TASKS_SQL: &str = "SELECT number, title, description, completed, due_at, due_all_day, priority, \
     tags, created_at, updated_at, completed_at, deleted_at FROM tasks WHERE user_id = $1 \
     AND deleted_at IS NULL AND completed = FALSE \
     ORDER BY completed, CASE WHEN due_at IS NULL THEN 1 ELSE 0 END, due_at, priority DESC, number \
     LIMIT $2 OFFSET 0";

/// The same order written so PostgreSQL can read it from the existing index
/// `tasks_user_live (user_id, completed, due_at) WHERE deleted_at IS NULL`: ascending
/// b-tree order already puts NULL due dates last, which is what the CASE spells out.
/// Shown next to the current query's plan as the suggested fix.
pub const OPEN_TASKS_SQL_INDEXED: &str = "SELECT number, title, description, completed, due_at, due_all_day, priority, \
     tags, created_at, updated_at, completed_at, deleted_at FROM tasks WHERE user_id = $1 \
     AND deleted_at IS NULL AND completed = FALSE \
     ORDER BY completed, due_at NULLS LAST, priority DESC, number \
     LIMIT $2 OFFSET 0";

#[allow(clippy::too_many_arguments)]
pub async fn scaling(
    env: &Env,
    backend: &Backend,
    run: &str,
    users: usize,
    lengths: &[u64],
    task_counts: &[u64],
    background_users: u64,
    duration: Duration,
    latency: Duration,
) -> anyhow::Result<Scaling> {
    let max = 2_000 * duration.as_secs().max(1);
    let point = |prefix: String, messages: u64, tasks: u64| {
        let env = env.clone();
        let backend = backend.clone();
        async move {
            let user_ids: Vec<String> = (0..users).map(|i| format!("{prefix}-u{i}")).collect();
            let conv_ids: Vec<String> = (0..users)
                .map(|_| uuid::Uuid::new_v4().to_string())
                .collect();
            let rows: Vec<(String, String)> = conv_ids
                .iter()
                .cloned()
                .zip(user_ids.iter().cloned())
                .collect();
            db::exec(&env.db, seed_conversations_sql(&rows, messages)).await?;
            db::exec(&env.db, seed_tasks_sql(&user_ids, tasks)).await?;
            db::exec(
                &env.db,
                "ANALYZE conversations, messages, tasks, task_counters".into(),
            )
            .await?;
            let label = format!("{messages} stored messages, {tasks} open tasks");
            turns_point(
                &env, &backend, &label, user_ids, conv_ids, duration, max, latency,
            )
            .await
        }
    };
    let mut history = Vec::new();
    for &n in lengths {
        let r = point(format!("{run}-len{n}"), n, TASKS_FOR_HISTORY_POINTS).await?;
        history.push((n, r));
    }
    let mut tasks = Vec::new();
    let mut plans = Vec::new();
    let base_len = lengths.first().copied().unwrap_or(10);
    for &t in task_counts {
        let prefix = format!("{run}-tasks{t}");
        let r = point(prefix.clone(), base_len, t).await?;
        tasks.push((t, r));
        if Some(&t) == task_counts.first() || Some(&t) == task_counts.last() {
            // The first user of the point, after its turns (a few more tasks than seeded).
            let user = format!("{prefix}-u0");
            let plan = db::explain(&env.db, OPEN_TASKS_SQL, &user, 21).await?;
            plans.push((format!("{t} seeded open tasks, current query"), plan));
            if Some(&t) == task_counts.last() {
                let plan = db::explain(&env.db, OPEN_TASKS_SQL_INDEXED, &user, 21).await?;
                plans.push((
                    format!("{t} seeded open tasks, ORDER BY completed, due_at NULLS LAST, priority DESC, number"),
                    plan,
                ));
            }
        }
    }
    let mut background = None;
    let mut background_seed_seconds = 0.0;
    if background_users > 0 {
        eprintln!(
            "todo-bench: seeding {} background rows",
            background_users * 200 + background_users * 2
        );
        let started = std::time::Instant::now();
        db::exec(&env.db, seed_background_sql(background_users, 100)).await?;
        background_seed_seconds = started.elapsed().as_secs_f64();
        let counts = db::table_rows(&env.db).await?;
        let r = point(format!("{run}-bg"), base_len, TASKS_FOR_HISTORY_POINTS).await?;
        background = Some((counts, r));
    }
    Ok(Scaling {
        history,
        tasks,
        background,
        background_seed_seconds,
        plans,
    })
}
