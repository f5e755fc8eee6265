//! The task store: one interface, implemented for PostgreSQL and SQLite from one body of SQL.

use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::Row;

use super::journal::{self, ChangeKind, UndoError, sql_journal};
use super::repeat::{self, Repeat};
use super::subtasks::{self, sql_subtasks};

use super::model::{
    Due, ListFilter, NewTask, Priority, StatusFilter, Task, TaskPage, TaskPatch, decode_tags,
    encode_tags, like_pattern, search_text,
};

/// Why a store call failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// No live task with that number for this user (another user's task included).
    #[error("task not found")]
    NotFound,
    /// The database failed or could not be reached.
    #[error("database error")]
    Database(#[from] sqlx::Error),
    /// The change breaks a rule of subtasks or repeating tasks; the message says what to do.
    #[error("{0}")]
    Refused(String),
}

/// Persistence of tasks. Every method is scoped to one user in SQL.
#[async_trait]
pub trait TaskStore: Send + Sync + 'static {
    async fn add(&self, user: &str, task: NewTask) -> Result<Task, StoreError>;
    /// A live (not deleted) task.
    async fn get(&self, user: &str, id: i64) -> Result<Task, StoreError>;
    async fn list(&self, user: &str, filter: &ListFilter) -> Result<TaskPage, StoreError>;
    /// Applies a change to a live task.
    async fn update(&self, user: &str, id: i64, patch: &TaskPatch) -> Result<Task, StoreError>;
    /// Moves a live task to the trash.
    async fn delete(&self, user: &str, id: i64) -> Result<Task, StoreError>;
    /// Brings a task back from the trash.
    async fn restore(&self, user: &str, id: i64) -> Result<Task, StoreError>;
    /// Open (not completed, not deleted) tasks, soonest due first: the agent's compact view.
    async fn open_tasks(&self, user: &str, limit: u32) -> Result<Vec<Task>, StoreError>;
    /// The same store, journaling its changes under `group` (a chat turn) for undo; without
    /// one every change is its own group.
    fn grouped(&self, group: &str) -> Arc<dyn TaskStore>;
    /// Reverts the user's most recent group of changes not yet undone (see `journal`).
    async fn undo(&self, user: &str) -> Result<journal::UndoReport, UndoError>;
}

/// The columns every task query returns, as a literal so queries stay `&'static str`.
macro_rules! columns {
    () => {
        "number, title, description, completed, due_at, due_all_day, priority, \
         tags, created_at, updated_at, completed_at, deleted_at, \
         parent_number, repeat_rule, repeat_tz"
    };
}

fn now() -> DateTime<Utc> {
    // Microsecond precision round-trips through both databases unchanged.
    let t = Utc::now();
    DateTime::from_timestamp_micros(t.timestamp_micros()).unwrap_or(t)
}

/// Builds the WHERE clause and ORDER of a list; parameters from `$2` on, `$1` is the user.
struct ListSql {
    sql: String,
    query: Option<String>,
    tag: Option<String>,
    due_before: Option<DateTime<Utc>>,
    due_after: Option<DateTime<Utc>>,
}

impl ListSql {
    fn new(f: &ListFilter) -> ListSql {
        let mut sql = concat!("SELECT ", columns!(), " FROM tasks WHERE user_id = $1").to_string();
        sql.push_str(match f.status {
            StatusFilter::Pending => " AND deleted_at IS NULL AND completed = FALSE",
            StatusFilter::Completed => " AND deleted_at IS NULL AND completed = TRUE",
            StatusFilter::All => " AND deleted_at IS NULL",
            StatusFilter::Deleted => " AND deleted_at IS NOT NULL",
        });
        let mut n = 1;
        let mut next = || {
            n += 1;
            n
        };
        let query = f.query.as_deref().map(like_pattern);
        if query.is_some() {
            let p = next();
            sql.push_str(&format!(" AND search_text LIKE ${p} ESCAPE '\\'"));
        }
        // Tags may hold `_`, a LIKE wildcard: escape it so "home_2" never matches "home-2".
        let tag = f.tag.as_ref().map(|t| like_pattern(&format!(",{t},")));
        if tag.is_some() {
            sql.push_str(&format!(" AND tags LIKE ${} ESCAPE '\\'", next()));
        }
        if f.due_before.is_some() {
            sql.push_str(&format!(" AND due_at < ${}", next()));
        }
        if f.due_after.is_some() {
            sql.push_str(&format!(" AND due_at >= ${}", next()));
        }
        if f.parent.is_some() {
            sql.push_str(&format!(" AND parent_number = ${}", next()));
        }
        if f.hide_subtasks {
            sql.push_str(" AND parent_number IS NULL");
        }
        sql.push_str(
            // Matches the index (user_id, completed, due_at), so a page reads a few index
            // entries instead of sorting all of a user's tasks.
            " ORDER BY completed, due_at NULLS LAST, priority DESC, number",
        );
        sql.push_str(&format!(" LIMIT ${} OFFSET ${}", next(), next()));
        ListSql {
            sql,
            query,
            tag,
            due_before: f.due_before,
            due_after: f.due_after,
        }
    }
}

/// One implementation of [`TaskStore`] per sqlx driver, from the same SQL.
/// Both dialects accept `$N` parameters, `RETURNING` and `ON CONFLICT … DO UPDATE`.
macro_rules! sql_task_store {
    ($name:ident, $db:ty, $row:ty) => {
        /// Task store on this database.
        #[derive(Clone, Debug)]
        pub struct $name {
            pool: sqlx::Pool<$db>,
            /// The undo group of this store's changes; `None`: one group per change.
            group: Option<Arc<str>>,
        }

        sql_journal!($name, $db, $row);
        sql_subtasks!($name, $db, $row);

        impl $name {
            pub fn new(pool: sqlx::Pool<$db>) -> Self {
                Self { pool, group: None }
            }

            fn task_from_row(row: &$row) -> Result<Task, sqlx::Error> {
                let due_at: Option<DateTime<Utc>> = row.try_get("due_at")?;
                let all_day: bool = row.try_get("due_all_day")?;
                let tags: String = row.try_get("tags")?;
                let priority: i16 = row.try_get("priority")?;
                let rule: Option<String> = row.try_get("repeat_rule")?;
                let rule_tz: Option<String> = row.try_get("repeat_tz")?;
                Ok(Task {
                    id: row.try_get("number")?,
                    title: row.try_get("title")?,
                    description: row.try_get("description")?,
                    completed: row.try_get("completed")?,
                    due: due_at.map(|at| Due { at, all_day }.render()),
                    priority: Priority::from_i16(priority),
                    tags: decode_tags(&tags),
                    created_at: row.try_get("created_at")?,
                    updated_at: row.try_get("updated_at")?,
                    completed_at: row.try_get("completed_at")?,
                    deleted_at: row.try_get("deleted_at")?,
                    parent_id: row.try_get("parent_number")?,
                    repeat: rule.map(|r| Repeat::from_stored(r, rule_tz.unwrap_or_else(|| "UTC".into()))),
                })
            }

            fn one(row: Option<$row>) -> Result<Task, StoreError> {
                match row {
                    Some(r) => Ok(Self::task_from_row(&r)?),
                    None => Err(StoreError::NotFound),
                }
            }
        }

        #[async_trait]
        impl TaskStore for $name {
            async fn add(&self, user: &str, t: NewTask) -> Result<Task, StoreError> {
                let mut tx = self.pool.begin().await?;
                let parent = Self::parent_of(&mut tx, user, t.parent).await?;
                subtasks::check(
                    &subtasks::Shape {
                        id: None,
                        parent: t.parent,
                        repeats: t.repeat.is_some(),
                        has_due: t.due.is_some(),
                        has_children: false,
                    },
                    parent.as_ref(),
                )?;
                let number: i64 = sqlx::query_scalar(
                    "INSERT INTO task_counters (user_id, last_number) VALUES ($1, 1) \
                     ON CONFLICT (user_id) DO UPDATE SET last_number = task_counters.last_number + 1 \
                     RETURNING last_number",
                )
                .bind(user)
                .fetch_one(&mut *tx)
                .await?;
                let ts = now();
                let row = sqlx::query(concat!(
                    "INSERT INTO tasks (user_id, number, title, description, due_at, due_all_day, \
                     priority, tags, created_at, updated_at, search_text, parent_number, repeat_rule, repeat_tz) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $9, $10, $11, $12, $13) RETURNING ", columns!(), ""
                ))
                .bind(user)
                .bind(number)
                .bind(&t.title)
                .bind(&t.description)
                .bind(t.due.map(|d| d.at))
                .bind(t.due.is_some_and(|d| d.all_day))
                .bind(t.priority.as_i16())
                .bind(encode_tags(&t.tags))
                .bind(ts)
                .bind(search_text(&t.title, t.description.as_deref()))
                .bind(t.parent)
                .bind(t.repeat.as_ref().map(|r| r.rule.as_str()))
                .bind(t.repeat.as_ref().map(|r| r.timezone.as_str()))
                .fetch_one(&mut *tx)
                .await?;
                let task = Self::task_from_row(&row)?;
                self.journal(&mut tx, user, &self.change_group(), ChangeKind::Add, None, &task).await?;
                tx.commit().await?;
                Ok(task)
            }

            async fn get(&self, user: &str, id: i64) -> Result<Task, StoreError> {
                let row = sqlx::query(concat!(
                    "SELECT ", columns!(), " FROM tasks WHERE user_id = $1 AND number = $2 AND deleted_at IS NULL"
                ))
                .bind(user)
                .bind(id)
                .fetch_optional(&self.pool)
                .await?;
                Self::one(row)
            }

            async fn list(&self, user: &str, f: &ListFilter) -> Result<TaskPage, StoreError> {
                let l = ListSql::new(f);
                // Built only from constant fragments; every value is a bind parameter.
                let mut q = sqlx::query(sqlx::AssertSqlSafe(l.sql.as_str())).bind(user);
                if let Some(p) = &l.query {
                    q = q.bind(p);
                }
                if let Some(t) = &l.tag {
                    q = q.bind(t);
                }
                if let Some(b) = l.due_before {
                    q = q.bind(b);
                }
                if let Some(a) = l.due_after {
                    q = q.bind(a);
                }
                if let Some(p) = f.parent {
                    q = q.bind(p);
                }
                // One row more than the page tells whether another page follows.
                let rows = q
                    .bind(i64::from(f.limit) + 1)
                    .bind(i64::from(f.offset))
                    .fetch_all(&self.pool)
                    .await?;
                let mut tasks = rows
                    .iter()
                    .map(Self::task_from_row)
                    .collect::<Result<Vec<_>, _>>()?;
                let next_offset = if tasks.len() > f.limit as usize {
                    tasks.truncate(f.limit as usize);
                    Some(f.offset + f.limit)
                } else {
                    None
                };
                Ok(TaskPage { tasks, next_offset })
            }

            async fn update(&self, user: &str, id: i64, asked: &TaskPatch) -> Result<Task, StoreError> {
                let text_changes = asked.title.is_some() || asked.description.is_some();
                let group = self.change_group();
                let ts = now();
                let mut tx = self.pool.begin().await?;
                let Some(before) = Self::lock_task(&mut tx, user, id).await?.filter(|t| t.deleted_at.is_none()) else {
                    return Err(StoreError::NotFound);
                };
                // Subtask and repeat rules (see `subtasks`), on the task as the change leaves it.
                let parent = asked.parent.unwrap_or(before.parent_id);
                let rule = asked.repeat.clone().unwrap_or_else(|| before.repeat.clone());
                let due = match asked.due {
                    Some(d) => d,
                    None => before.due.as_deref().map(|d| Due::parse("due", d)).transpose()
                        .map_err(|e| sqlx::Error::Decode(e.0.into()))?,
                };
                let shape = subtasks::Shape {
                    id: Some(id),
                    parent,
                    repeats: rule.is_some(),
                    has_due: due.is_some(),
                    has_children: (parent.is_some() || rule.is_some())
                        && Self::has_children(&mut tx, user, id).await?,
                };
                if asked.parent.is_some() || asked.repeat.is_some() || asked.due.is_some() {
                    let parent_task = Self::parent_of(&mut tx, user, parent).await?;
                    subtasks::check(&shape, parent_task.as_ref())?;
                }
                // Completing a repeating task: this occurrence is recorded as done and the task
                // moves to the next one; when the series has ended it is simply completed.
                let completes = asked.completed == Some(true) && !before.completed;
                let next = match (&rule, due) {
                    (Some(r), Some(d)) if completes => repeat::next_due(r, d, ts)
                        .map_err(|e| sqlx::Error::Decode(e.0.into()))?,
                    _ => None,
                };
                let rolled;
                let p = match next {
                    Some(n) => {
                        rolled = TaskPatch { completed: None, due: Some(Some(n)), ..asked.clone() };
                        &rolled
                    }
                    None => asked,
                };
                // One statement: concurrent changes to different fields never undo each other
                // (and on PostgreSQL the row stays locked until the search text follows).
                let row = sqlx::query(concat!(
                    "UPDATE tasks SET \
                       title = COALESCE($3, title), \
                       description = CASE WHEN $4 THEN $5 ELSE description END, \
                       due_at = CASE WHEN $6 THEN $7 ELSE due_at END, \
                       due_all_day = CASE WHEN $6 THEN $8 ELSE due_all_day END, \
                       priority = COALESCE($9, priority), \
                       tags = COALESCE($10, tags), \
                       completed_at = CASE WHEN $11 IS NULL THEN completed_at \
                                           WHEN $11 THEN COALESCE(completed_at, $12) ELSE NULL END, \
                       completed = COALESCE($11, completed), \
                       updated_at = $12, \
                       parent_number = CASE WHEN $13 THEN $14 ELSE parent_number END, \
                       repeat_rule = CASE WHEN $15 THEN $16 ELSE repeat_rule END, \
                       repeat_tz = CASE WHEN $15 THEN $17 ELSE repeat_tz END \
                     WHERE user_id = $1 AND number = $2 AND deleted_at IS NULL \
                     RETURNING ", columns!(), ""
                ))
                .bind(user)
                .bind(id)
                .bind(p.title.as_deref())
                .bind(p.description.is_some())
                .bind(p.description.clone().flatten())
                .bind(p.due.is_some())
                .bind(p.due.flatten().map(|d| d.at))
                .bind(p.due.flatten().is_some_and(|d| d.all_day))
                .bind(p.priority.map(Priority::as_i16))
                .bind(p.tags.as_deref().map(encode_tags))
                .bind(p.completed)
                .bind(ts)
                .bind(p.parent.is_some())
                .bind(p.parent.flatten())
                .bind(p.repeat.is_some())
                .bind(p.repeat.clone().flatten().map(|r| r.rule))
                .bind(p.repeat.clone().flatten().map(|r| r.timezone))
                .fetch_optional(&mut *tx)
                .await?;
                let task = Self::one(row)?;
                if text_changes {
                    sqlx::query("UPDATE tasks SET search_text = $3 WHERE user_id = $1 AND number = $2")
                        .bind(user)
                        .bind(id)
                        .bind(search_text(&task.title, task.description.as_deref()))
                        .execute(&mut *tx)
                        .await?;
                }
                let only_completes = *asked == TaskPatch { completed: Some(true), ..TaskPatch::default() };
                let kind = if only_completes { ChangeKind::Complete } else { ChangeKind::Update };
                self.journal(&mut tx, user, &group, kind, Some(&before), &task).await?;
                if next.is_some() {
                    self.insert_occurrence(&mut tx, user, &group, &task, due, ts).await?;
                }
                if completes {
                    // A parent completes with its open subtasks.
                    for child in Self::lock_children(&mut tx, user, id, "deleted_at IS NULL AND completed = FALSE", None).await? {
                        let row = sqlx::query(concat!(
                            "UPDATE tasks SET completed = TRUE, completed_at = $3, updated_at = $3 \
                             WHERE user_id = $1 AND number = $2 RETURNING ", columns!(), ""
                        ))
                        .bind(user)
                        .bind(child.id)
                        .bind(ts)
                        .fetch_one(&mut *tx)
                        .await?;
                        let after = Self::task_from_row(&row)?;
                        self.journal(&mut tx, user, &group, ChangeKind::Complete, Some(&child), &after).await?;
                    }
                }
                tx.commit().await?;
                Ok(task)
            }

            async fn delete(&self, user: &str, id: i64) -> Result<Task, StoreError> {
                let ts = now();
                let mut tx = self.pool.begin().await?;
                let Some(before) = Self::lock_task(&mut tx, user, id).await?.filter(|t| t.deleted_at.is_none()) else {
                    return Err(StoreError::NotFound);
                };
                let row = sqlx::query(concat!(
                    "UPDATE tasks SET deleted_at = $3, updated_at = $3 \
                     WHERE user_id = $1 AND number = $2 AND deleted_at IS NULL RETURNING ", columns!(), ""
                ))
                .bind(user)
                .bind(id)
                .bind(ts)
                .fetch_optional(&mut *tx)
                .await?;
                let task = Self::one(row)?;
                let group = self.change_group();
                self.journal(&mut tx, user, &group, ChangeKind::Delete, Some(&before), &task).await?;
                // A parent goes to the trash with its subtasks, all at the same moment.
                for child in Self::lock_children(&mut tx, user, id, "deleted_at IS NULL", None).await? {
                    let row = sqlx::query(concat!(
                        "UPDATE tasks SET deleted_at = $3, updated_at = $3 \
                         WHERE user_id = $1 AND number = $2 RETURNING ", columns!(), ""
                    ))
                    .bind(user)
                    .bind(child.id)
                    .bind(ts)
                    .fetch_one(&mut *tx)
                    .await?;
                    let after = Self::task_from_row(&row)?;
                    self.journal(&mut tx, user, &group, ChangeKind::Delete, Some(&child), &after).await?;
                }
                tx.commit().await?;
                Ok(task)
            }

            async fn restore(&self, user: &str, id: i64) -> Result<Task, StoreError> {
                let ts = now();
                let mut tx = self.pool.begin().await?;
                let Some(before) = Self::lock_task(&mut tx, user, id).await?.filter(|t| t.deleted_at.is_some()) else {
                    return Err(StoreError::NotFound);
                };
                if let Some(p) = before.parent_id
                    && Self::lock_task(&mut tx, user, p).await?.is_none_or(|t| t.deleted_at.is_some())
                {
                    return Err(StoreError::Refused(format!(
                        "Task #{id} is a subtask of #{p}, which is in the trash: restore #{p} first \
                         (its subtasks come back with it)."
                    )));
                }
                let row = sqlx::query(concat!(
                    "UPDATE tasks SET deleted_at = NULL, updated_at = $3 \
                     WHERE user_id = $1 AND number = $2 AND deleted_at IS NOT NULL RETURNING ", columns!(), ""
                ))
                .bind(user)
                .bind(id)
                .bind(ts)
                .fetch_optional(&mut *tx)
                .await?;
                let task = Self::one(row)?;
                let group = self.change_group();
                self.journal(&mut tx, user, &group, ChangeKind::Restore, Some(&before), &task).await?;
                // The subtasks that went to the trash with it come back with it.
                for child in Self::lock_children(&mut tx, user, id, "deleted_at = $3", before.deleted_at).await? {
                    let row = sqlx::query(concat!(
                        "UPDATE tasks SET deleted_at = NULL, updated_at = $3 \
                         WHERE user_id = $1 AND number = $2 RETURNING ", columns!(), ""
                    ))
                    .bind(user)
                    .bind(child.id)
                    .bind(ts)
                    .fetch_one(&mut *tx)
                    .await?;
                    let after = Self::task_from_row(&row)?;
                    self.journal(&mut tx, user, &group, ChangeKind::Restore, Some(&child), &after).await?;
                }
                tx.commit().await?;
                Ok(task)
            }

            async fn open_tasks(&self, user: &str, limit: u32) -> Result<Vec<Task>, StoreError> {
                let filter = ListFilter {
                    limit,
                    ..ListFilter::default()
                };
                Ok(self.list(user, &filter).await?.tasks)
            }

            fn grouped(&self, group: &str) -> Arc<dyn TaskStore> {
                Arc::new(Self { pool: self.pool.clone(), group: Some(group.into()) })
            }

            async fn undo(&self, user: &str) -> Result<journal::UndoReport, UndoError> {
                self.undo_last(user).await
            }
        }
    };
}

sql_task_store!(PgTaskStore, sqlx::Postgres, sqlx::postgres::PgRow);
sql_task_store!(SqliteTaskStore, sqlx::Sqlite, sqlx::sqlite::SqliteRow);
