//! The task store: one interface, one implementation over either database. The SQL is the
//! same for both dialects (`$N` parameters, `RETURNING`, `ON CONFLICT … DO UPDATE`); only
//! the driver a query runs on is chosen per call (`db::on_pool!`).

use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::journal::{ChangeKind, UndoError, UndoReport};
use super::model::{
    Due, ListFilter, NewTask, Priority, StatusFilter, Task, TaskPage, TaskPatch, decode_tags,
    encode_tags, like_pattern, search_text,
};
use super::repeat::{self, Repeat};
use super::subtasks;
use crate::db::{Database, Transaction, on_pool, on_tx};
use crate::error::{DbError, failed};

/// Why a store call failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// No live task with that number for this user (another user's task included).
    #[error("task not found")]
    NotFound,
    /// The database failed or could not be reached; the error names the operation.
    #[error(transparent)]
    Database(#[from] DbError),
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
    async fn undo(&self, user: &str) -> Result<UndoReport, UndoError>;
}

/// The columns of [`TaskRow`], as a literal so that queries stay `&'static str`.
macro_rules! task_columns {
    () => {
        "number, title, description, completed, due_at, due_all_day, priority, tags, \
         created_at, updated_at, completed_at, deleted_at, parent_number, repeat_rule, repeat_tz"
    };
}
pub(crate) use task_columns;

/// A task as stored: what every task query returns.
#[derive(Debug, sqlx::FromRow)]
pub(crate) struct TaskRow {
    number: i64,
    title: String,
    description: Option<String>,
    completed: bool,
    due_at: Option<DateTime<Utc>>,
    due_all_day: bool,
    priority: i16,
    tags: String,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
    completed_at: Option<DateTime<Utc>>,
    deleted_at: Option<DateTime<Utc>>,
    parent_number: Option<i64>,
    repeat_rule: Option<String>,
    repeat_tz: Option<String>,
}

impl From<TaskRow> for Task {
    fn from(r: TaskRow) -> Task {
        Task {
            id: r.number,
            title: r.title,
            description: r.description,
            completed: r.completed,
            due: r.due_at.map(|at| {
                Due {
                    at,
                    all_day: r.due_all_day,
                }
                .render()
            }),
            priority: Priority::from_i16(r.priority),
            tags: decode_tags(&r.tags),
            created_at: r.created_at,
            updated_at: r.updated_at,
            completed_at: r.completed_at,
            deleted_at: r.deleted_at,
            parent_id: r.parent_number,
            repeat: r
                .repeat_rule
                .map(|rule| Repeat::from_stored(rule, r.repeat_tz.unwrap_or_else(|| "UTC".into()))),
        }
    }
}

/// Takes the user's next task number (their counter row is created on first use).
pub(crate) const NEXT_NUMBER: &str = "INSERT INTO task_counters (user_id, last_number) VALUES ($1, 1) \
     ON CONFLICT (user_id) DO UPDATE SET last_number = task_counters.last_number + 1 \
     RETURNING last_number";

const INSERT_TASK: &str = concat!(
    "INSERT INTO tasks (user_id, number, title, description, due_at, due_all_day, priority, \
     tags, created_at, updated_at, search_text, parent_number, repeat_rule, repeat_tz) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $9, $10, $11, $12, $13) RETURNING ",
    task_columns!()
);

const GET_LIVE_TASK: &str = concat!(
    "SELECT ",
    task_columns!(),
    " FROM tasks WHERE user_id = $1 AND number = $2 AND deleted_at IS NULL"
);

/// One statement, so concurrent changes to different fields never undo each other (and on
/// PostgreSQL the row stays locked until the search text follows).
const UPDATE_TASK: &str = concat!(
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
     RETURNING ",
    task_columns!()
);

const UPDATE_SEARCH_TEXT: &str =
    "UPDATE tasks SET search_text = $3 WHERE user_id = $1 AND number = $2";

const TRASH_TASK: &str = concat!(
    "UPDATE tasks SET deleted_at = $3, updated_at = $3 \
     WHERE user_id = $1 AND number = $2 AND deleted_at IS NULL RETURNING ",
    task_columns!()
);

const RESTORE_TASK: &str = concat!(
    "UPDATE tasks SET deleted_at = NULL, updated_at = $3 \
     WHERE user_id = $1 AND number = $2 AND deleted_at IS NOT NULL RETURNING ",
    task_columns!()
);

/// A parent completes with its open subtasks.
pub(crate) const COMPLETE_CHILD: &str = concat!(
    "UPDATE tasks SET completed = TRUE, completed_at = $3, updated_at = $3 \
     WHERE user_id = $1 AND number = $2 RETURNING ",
    task_columns!()
);

/// A parent goes to the trash with its subtasks, all at the same moment.
pub(crate) const TRASH_CHILD: &str = concat!(
    "UPDATE tasks SET deleted_at = $3, updated_at = $3 \
     WHERE user_id = $1 AND number = $2 RETURNING ",
    task_columns!()
);

/// The subtasks that went to the trash with their parent come back with it.
pub(crate) const RESTORE_CHILD: &str = concat!(
    "UPDATE tasks SET deleted_at = NULL, updated_at = $3 \
     WHERE user_id = $1 AND number = $2 RETURNING ",
    task_columns!()
);

/// Now, at the microsecond precision that round-trips through both databases unchanged.
pub(crate) fn now() -> DateTime<Utc> {
    let t = Utc::now();
    DateTime::from_timestamp_micros(t.timestamp_micros()).unwrap_or(t)
}

/// The SQL and parameters of a list: `$1` is the user, the filter's values follow.
struct ListSql {
    sql: String,
    query: Option<String>,
    tag: Option<String>,
    due_before: Option<DateTime<Utc>>,
    due_after: Option<DateTime<Utc>>,
    parent: Option<i64>,
}

impl ListSql {
    fn new(f: &ListFilter) -> ListSql {
        let mut sql =
            concat!("SELECT ", task_columns!(), " FROM tasks WHERE user_id = $1").to_string();
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
        sql.push_str(match f.status {
            // The trash, most recently deleted first: what "bring it back" looks for.
            StatusFilter::Deleted => " ORDER BY deleted_at DESC, number DESC",
            // Matches the index (user_id, completed, due_at), so a page reads a few index
            // entries instead of sorting all of a user's tasks.
            _ => " ORDER BY completed, due_at NULLS LAST, priority DESC, number",
        });
        sql.push_str(&format!(" LIMIT ${} OFFSET ${}", next(), next()));
        ListSql {
            sql,
            query,
            tag,
            due_before: f.due_before,
            due_after: f.due_after,
            parent: f.parent,
        }
    }
}

/// The task store on a database.
#[derive(Clone, Debug)]
pub struct SqlTaskStore {
    pub(crate) db: Database,
    /// The undo group of this store's changes; `None`: one group per change.
    pub(crate) group: Option<Arc<str>>,
}

impl SqlTaskStore {
    pub fn new(db: Database) -> Self {
        SqlTaskStore { db, group: None }
    }

    pub(crate) async fn begin(&self) -> Result<Transaction, DbError> {
        self.db
            .begin()
            .await
            .map_err(failed("starting a transaction"))
    }
}

pub(crate) async fn commit(tx: Transaction, what: &'static str) -> Result<(), DbError> {
    tx.commit().await.map_err(failed(what))
}

#[async_trait]
impl TaskStore for SqlTaskStore {
    async fn add(&self, user: &str, t: NewTask) -> Result<Task, StoreError> {
        let mut tx = self.begin().await?;
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
        let number: i64 = on_tx!(&mut tx, |c| {
            sqlx::query_scalar(NEXT_NUMBER)
                .bind(user)
                .fetch_one(c)
                .await
        })
        .map_err(failed("numbering a new task"))?;
        let ts = now();
        let search = search_text(&t.title, t.description.as_deref());
        let row: TaskRow = on_tx!(&mut tx, |c| {
            sqlx::query_as(INSERT_TASK)
                .bind(user)
                .bind(number)
                .bind(t.title.as_str())
                .bind(&t.description)
                .bind(t.due.map(|d| d.at))
                .bind(t.due.is_some_and(|d| d.all_day))
                .bind(t.priority.as_i16())
                .bind(encode_tags(&t.tags))
                .bind(ts)
                .bind(&search)
                .bind(t.parent)
                .bind(t.repeat.as_ref().map(|r| r.rule.as_str()))
                .bind(t.repeat.as_ref().map(|r| r.timezone.as_str()))
                .fetch_one(c)
                .await
        })
        .map_err(failed("inserting a task"))?;
        let task = Task::from(row);
        self.journal(
            &mut tx,
            user,
            &self.change_group(),
            ChangeKind::Add,
            None,
            &task,
        )
        .await?;
        commit(tx, "committing a new task").await?;
        Ok(task)
    }

    async fn get(&self, user: &str, id: i64) -> Result<Task, StoreError> {
        let row: Option<TaskRow> = on_pool!(&self.db, |p| {
            sqlx::query_as(GET_LIVE_TASK)
                .bind(user)
                .bind(id)
                .fetch_optional(p)
                .await
        })
        .map_err(failed("reading a task"))?;
        row.map(Task::from).ok_or(StoreError::NotFound)
    }

    async fn list(&self, user: &str, f: &ListFilter) -> Result<TaskPage, StoreError> {
        let l = ListSql::new(f);
        // One row more than the page tells whether another page follows.
        let limit = i64::from(f.limit) + 1;
        let offset = i64::from(f.offset);
        let rows: Vec<TaskRow> = on_pool!(&self.db, |p| {
            // Built only from constant fragments; every value is a bind parameter.
            let mut q = sqlx::query_as(sqlx::AssertSqlSafe(l.sql.as_str())).bind(user);
            if let Some(v) = &l.query {
                q = q.bind(v);
            }
            if let Some(v) = &l.tag {
                q = q.bind(v);
            }
            if let Some(v) = l.due_before {
                q = q.bind(v);
            }
            if let Some(v) = l.due_after {
                q = q.bind(v);
            }
            if let Some(v) = l.parent {
                q = q.bind(v);
            }
            q.bind(limit).bind(offset).fetch_all(p).await
        })
        .map_err(failed("listing tasks"))?;
        let mut tasks: Vec<Task> = rows.into_iter().map(Task::from).collect();
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
        let mut tx = self.begin().await?;
        let Some(before) = Self::lock_task(&mut tx, user, id)
            .await?
            .filter(|t| t.deleted_at.is_none())
        else {
            return Err(StoreError::NotFound);
        };
        // Subtask and repeat rules (see `subtasks`), on the task as the change leaves it.
        let parent = asked.parent.unwrap_or(before.parent_id);
        let rule = asked
            .repeat
            .clone()
            .unwrap_or_else(|| before.repeat.clone());
        let what = "reading a stored due date";
        let due = match asked.due {
            Some(d) => d,
            None => before
                .due
                .as_deref()
                .map(|d| Due::parse("due", d))
                .transpose()
                .map_err(|e| failed(what)(sqlx::Error::Decode(e.0.into())))?,
        };
        let has_children =
            (parent.is_some() || rule.is_some()) && Self::has_children(&mut tx, user, id).await?;
        let shape = subtasks::Shape {
            id: Some(id),
            parent,
            repeats: rule.is_some(),
            has_due: due.is_some(),
            has_children,
        };
        if asked.parent.is_some() || asked.repeat.is_some() || asked.due.is_some() {
            let parent_task = Self::parent_of(&mut tx, user, parent).await?;
            subtasks::check(&shape, parent_task.as_ref())?;
        }
        // Completing a repeating task: this occurrence is recorded as done and the task moves
        // to the next one; when the series has ended it is simply completed.
        let completes = asked.completed == Some(true) && !before.completed;
        let next = match (&rule, due) {
            (Some(r), Some(d)) if completes => repeat::next_due(r, d, ts).map_err(|e| {
                failed("computing the next occurrence")(sqlx::Error::Decode(e.0.into()))
            })?,
            _ => None,
        };
        let rolled;
        let p = match next {
            Some(n) => {
                rolled = TaskPatch {
                    completed: None,
                    due: Some(Some(n)),
                    ..asked.clone()
                };
                &rolled
            }
            None => asked,
        };
        let row: Option<TaskRow> = on_tx!(&mut tx, |c| {
            sqlx::query_as(UPDATE_TASK)
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
                .fetch_optional(c)
                .await
        })
        .map_err(failed("updating a task"))?;
        let task = row.map(Task::from).ok_or(StoreError::NotFound)?;
        if text_changes {
            let search = search_text(&task.title, task.description.as_deref());
            on_tx!(&mut tx, |c| {
                sqlx::query(UPDATE_SEARCH_TEXT)
                    .bind(user)
                    .bind(id)
                    .bind(&search)
                    .execute(c)
                    .await
                    .map(drop)
            })
            .map_err(failed("updating a task's search text"))?;
        }
        let only_completes = *asked
            == TaskPatch {
                completed: Some(true),
                ..TaskPatch::default()
            };
        let kind = if only_completes {
            ChangeKind::Complete
        } else {
            ChangeKind::Update
        };
        self.journal(&mut tx, user, &group, kind, Some(&before), &task)
            .await?;
        if next.is_some() {
            self.insert_occurrence(&mut tx, user, &group, &task, due, ts)
                .await?;
        }
        if completes {
            // A parent completes with its open subtasks.
            self.cascade(
                &mut tx,
                user,
                &group,
                id,
                subtasks::Children::Open,
                ts,
                (COMPLETE_CHILD, ChangeKind::Complete),
            )
            .await?;
        }
        commit(tx, "committing a task update").await?;
        Ok(task)
    }

    async fn delete(&self, user: &str, id: i64) -> Result<Task, StoreError> {
        let ts = now();
        let mut tx = self.begin().await?;
        let Some(before) = Self::lock_task(&mut tx, user, id)
            .await?
            .filter(|t| t.deleted_at.is_none())
        else {
            return Err(StoreError::NotFound);
        };
        let row: Option<TaskRow> = on_tx!(&mut tx, |c| {
            sqlx::query_as(TRASH_TASK)
                .bind(user)
                .bind(id)
                .bind(ts)
                .fetch_optional(c)
                .await
        })
        .map_err(failed("moving a task to the trash"))?;
        let task = row.map(Task::from).ok_or(StoreError::NotFound)?;
        let group = self.change_group();
        self.journal(
            &mut tx,
            user,
            &group,
            ChangeKind::Delete,
            Some(&before),
            &task,
        )
        .await?;
        // A parent goes to the trash with its subtasks, all at the same moment.
        self.cascade(
            &mut tx,
            user,
            &group,
            id,
            subtasks::Children::Live,
            ts,
            (TRASH_CHILD, ChangeKind::Delete),
        )
        .await?;
        commit(tx, "committing a task deletion").await?;
        Ok(task)
    }

    async fn restore(&self, user: &str, id: i64) -> Result<Task, StoreError> {
        let ts = now();
        let mut tx = self.begin().await?;
        let Some(before) = Self::lock_task(&mut tx, user, id)
            .await?
            .filter(|t| t.deleted_at.is_some())
        else {
            return Err(StoreError::NotFound);
        };
        if let Some(p) = before.parent_id
            && Self::lock_task(&mut tx, user, p)
                .await?
                .is_none_or(|t| t.deleted_at.is_some())
        {
            return Err(StoreError::Refused(format!(
                "Task #{id} is a subtask of #{p}, which is in the trash: restore #{p} first \
                 (its subtasks come back with it)."
            )));
        }
        let row: Option<TaskRow> = on_tx!(&mut tx, |c| {
            sqlx::query_as(RESTORE_TASK)
                .bind(user)
                .bind(id)
                .bind(ts)
                .fetch_optional(c)
                .await
        })
        .map_err(failed("restoring a task"))?;
        let task = row.map(Task::from).ok_or(StoreError::NotFound)?;
        let group = self.change_group();
        self.journal(
            &mut tx,
            user,
            &group,
            ChangeKind::Restore,
            Some(&before),
            &task,
        )
        .await?;
        // The subtasks that went to the trash with it come back with it.
        if let Some(deleted_at) = before.deleted_at {
            self.cascade(
                &mut tx,
                user,
                &group,
                id,
                subtasks::Children::TrashedAt(deleted_at),
                ts,
                (RESTORE_CHILD, ChangeKind::Restore),
            )
            .await?;
        }
        commit(tx, "committing a task restore").await?;
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
        Arc::new(SqlTaskStore {
            db: self.db.clone(),
            group: Some(group.into()),
        })
    }

    async fn undo(&self, user: &str) -> Result<UndoReport, UndoError> {
        self.undo_last(user).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::DbOptions;
    use crate::error::Chain;
    use crate::tasks::Title;

    #[tokio::test]
    async fn a_failed_query_names_what_failed_and_keeps_the_driver_error() {
        let db = Database::connect(Some("sqlite::memory:"), &DbOptions::default())
            .await
            .unwrap();
        db.migrate().await.unwrap();
        let store = db.task_store();
        let task = || NewTask {
            title: Title::parse("Buy milk").unwrap(),
            description: None,
            due: None,
            priority: Priority::default(),
            tags: vec![],
            parent: None,
            repeat: None,
        };
        assert!(store.add("alice", task()).await.is_ok());
        // A schema that broke under the service: the insert itself fails.
        on_pool!(&db, |p| {
            sqlx::query("ALTER TABLE tasks RENAME TO tasks_elsewhere")
                .execute(p)
                .await
                .map(drop)
        })
        .unwrap();
        let Err(StoreError::Database(e)) = store.add("alice", task()).await else {
            panic!("an insert into a missing table succeeded");
        };
        assert_eq!(e.what, "inserting a task");
        let shown = Chain(&e).to_string();
        assert!(shown.starts_with("inserting a task: "), "{shown}");
        assert!(shown.contains("no such table: tasks"), "{shown}");
        let Err(StoreError::Database(e)) = store.get("alice", 1).await else {
            panic!("a read from a missing table succeeded");
        };
        assert_eq!(e.what, "reading a task");
        db.close().await;
    }
}
