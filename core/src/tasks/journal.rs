//! The change journal behind undo: every change a tool makes to a task is recorded with the
//! task before and after, in the same transaction as the change, under a group id — one chat
//! turn, or one MCP request when the caller names no group. `undo` reverts the caller's most
//! recent group not yet undone, and refuses when a later change touched one of its tasks.
//!
//! Undoing an add moves the task to the trash rather than erasing it: nothing is ever lost to
//! an undo either, and task numbers are never handed out again.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::model::{Due, Task, encode_tags, search_text};
use super::store::{SqlTaskStore, StoreError, TaskRow, commit, now, task_columns};
use crate::db::{Transaction, on_tx};
use crate::error::{DbError, failed};

/// What a journaled change did to a task.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum ChangeKind {
    Add,
    Update,
    Complete,
    Delete,
    Restore,
}

impl ChangeKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ChangeKind::Add => "add",
            ChangeKind::Update => "update",
            ChangeKind::Complete => "complete",
            ChangeKind::Delete => "delete",
            ChangeKind::Restore => "restore",
        }
    }

    pub fn parse(s: &str) -> Option<ChangeKind> {
        Some(match s {
            "add" => ChangeKind::Add,
            "update" => ChangeKind::Update,
            "complete" => ChangeKind::Complete,
            "delete" => ChangeKind::Delete,
            "restore" => ChangeKind::Restore,
            _ => return None,
        })
    }

    fn past(self) -> &'static str {
        match self {
            ChangeKind::Add => "added",
            ChangeKind::Update => "updated",
            ChangeKind::Complete => "completed",
            ChangeKind::Delete => "deleted",
            ChangeKind::Restore => "restored",
        }
    }
}

/// One task an undo put back.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct UndoneTask {
    /// The changes to this task that were reverted, in the order they had been made.
    pub changes: Vec<ChangeKind>,
    /// The task as it is now (an undone add is in the trash).
    pub task: Task,
}

/// What the `undo` tool reverted: one group of changes (one chat turn or one MCP request).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct UndoReport {
    /// Every task the group had changed, back in its earlier state, by task number.
    pub undone: Vec<UndoneTask>,
}

impl UndoReport {
    /// A short rendering for a person or a model.
    pub fn text(&self) -> String {
        let mut lines = vec!["Undone:".to_string()];
        for u in &self.undone {
            let what: Vec<&str> = u.changes.iter().map(|c| c.past()).collect();
            let note = if u.changes.first() == Some(&ChangeKind::Add) {
                " — it was new, so it is now in the trash"
            } else {
                ""
            };
            lines.push(format!(
                "- {} (had been {}){note}",
                u.task.one_line(),
                what.join(", then ")
            ));
        }
        lines.join("\n")
    }
}

/// Why an undo did nothing.
#[derive(Debug, thiserror::Error)]
pub enum UndoError {
    /// The caller has no change left to undo.
    #[error("nothing to undo")]
    Nothing,
    /// A change outside the group touched one of its tasks afterwards.
    #[error("task #{task} changed after that")]
    Conflict {
        task: i64,
        /// The later change, when the journal has it.
        later: Option<ChangeKind>,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<DbError> for UndoError {
    fn from(e: DbError) -> Self {
        UndoError::Store(StoreError::Database(e))
    }
}

/// A journal row as read back for an undo.
#[derive(Debug, Clone)]
pub(crate) struct Entry {
    pub id: i64,
    pub task: i64,
    pub kind: ChangeKind,
    pub before: Option<Task>,
    pub after: Task,
}

/// Per task of a group: the state to go back to (`None`: it did not exist), the state the
/// group left it in, the first journal id that touched it, and the changes in order.
pub(crate) struct Plan {
    pub before: Option<Task>,
    pub after: Task,
    pub first_id: i64,
    pub changes: Vec<ChangeKind>,
}

/// Folds a group's entries (oldest first) into one plan per task.
pub(crate) fn plan(entries: Vec<Entry>) -> BTreeMap<i64, Plan> {
    let mut plans: BTreeMap<i64, Plan> = BTreeMap::new();
    for e in entries {
        match plans.get_mut(&e.task) {
            Some(p) => {
                p.after = e.after;
                p.changes.push(e.kind);
            }
            None => {
                plans.insert(
                    e.task,
                    Plan {
                        before: e.before,
                        after: e.after,
                        first_id: e.id,
                        changes: vec![e.kind],
                    },
                );
            }
        }
    }
    plans
}

/// A task as journal text.
pub(crate) fn snapshot(task: &Task) -> Result<String, sqlx::Error> {
    serde_json::to_string(task).map_err(|e| sqlx::Error::Encode(Box::new(e)))
}

pub(crate) fn from_snapshot(text: &str) -> Result<Task, sqlx::Error> {
    serde_json::from_str(text).map_err(|e| sqlx::Error::Decode(Box::new(e)))
}

const INSERT_ENTRY: &str = "INSERT INTO task_journal (user_id, group_id, task_number, action, \
     task_before, task_after, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7)";

/// A no-op update: it locks the row on PostgreSQL and takes the write lock on SQLite.
const LOCK_TASK: &str = concat!(
    "UPDATE tasks SET number = number WHERE user_id = $1 AND number = $2 RETURNING ",
    task_columns!()
);

/// One undo at a time per user: their counter row is the lock.
const LOCK_USER: &str = "UPDATE task_counters SET last_number = last_number WHERE user_id = $1";

const LAST_GROUP: &str = "SELECT group_id FROM task_journal WHERE user_id = $1 \
     AND undone_at IS NULL ORDER BY id DESC LIMIT 1";

const GROUP_ENTRIES: &str = "SELECT id, task_number, action, task_before, task_after \
     FROM task_journal WHERE user_id = $1 AND group_id = $2 AND undone_at IS NULL ORDER BY id";

/// The first change to a task after `$3` from another group, not undone.
const LATER_CHANGE: &str = "SELECT action FROM task_journal WHERE user_id = $1 \
     AND task_number = $2 AND id > $3 AND group_id <> $4 AND undone_at IS NULL \
     ORDER BY id LIMIT 1";

/// Undoing an add: the task goes to the trash, so nothing is lost.
const TRASH_ANY_TASK: &str = concat!(
    "UPDATE tasks SET deleted_at = $3, updated_at = $3 \
     WHERE user_id = $1 AND number = $2 RETURNING ",
    task_columns!()
);

const PUT_BACK_TASK: &str = concat!(
    "UPDATE tasks SET title = $3, description = $4, completed = $5, due_at = $6, \
     due_all_day = $7, priority = $8, tags = $9, created_at = $10, updated_at = $11, \
     completed_at = $12, deleted_at = $13, search_text = $14, \
     parent_number = $15, repeat_rule = $16, repeat_tz = $17 \
     WHERE user_id = $1 AND number = $2 RETURNING ",
    task_columns!()
);

const MARK_UNDONE: &str = "UPDATE task_journal SET undone_at = $3 \
     WHERE user_id = $1 AND group_id = $2 AND undone_at IS NULL";

/// A `task_journal` row as an undo reads it.
#[derive(sqlx::FromRow)]
struct EntryRow {
    id: i64,
    task_number: i64,
    action: String,
    task_before: Option<String>,
    task_after: String,
}

impl TryFrom<EntryRow> for Entry {
    type Error = sqlx::Error;

    fn try_from(r: EntryRow) -> Result<Entry, sqlx::Error> {
        let kind = ChangeKind::parse(&r.action).ok_or_else(|| {
            sqlx::Error::Decode(format!("unknown journal action {:?}", r.action).into())
        })?;
        Ok(Entry {
            id: r.id,
            task: r.task_number,
            kind,
            before: r.task_before.as_deref().map(from_snapshot).transpose()?,
            after: from_snapshot(&r.task_after)?,
        })
    }
}

/// The journal half of the task store: writing entries inside a change's transaction, and
/// the undo itself.
impl SqlTaskStore {
    /// The group a change of this store belongs to: the bound one (a chat turn), or a fresh
    /// one per change (one MCP request makes one change).
    pub(crate) fn change_group(&self) -> String {
        self.group
            .as_deref()
            .map(str::to_string)
            .unwrap_or_else(|| uuid::Uuid::now_v7().to_string())
    }

    /// Records one change inside the transaction that makes it; every change of one store
    /// call shares its `group` (from [`Self::change_group`]).
    pub(crate) async fn journal(
        &self,
        tx: &mut Transaction,
        user: &str,
        group: &str,
        kind: ChangeKind,
        before: Option<&Task>,
        after: &Task,
    ) -> Result<(), DbError> {
        let what = "journaling a change";
        let before = before.map(snapshot).transpose().map_err(failed(what))?;
        let after_text = snapshot(after).map_err(failed(what))?;
        let ts = now();
        on_tx!(tx, |c| {
            sqlx::query(INSERT_ENTRY)
                .bind(user)
                .bind(group)
                .bind(after.id)
                .bind(kind.as_str())
                .bind(&before)
                .bind(&after_text)
                .bind(ts)
                .execute(c)
                .await
                .map(drop)
        })
        .map_err(failed(what))?;
        Ok(())
    }

    /// The task row, locked for the rest of the transaction. Trashed tasks included.
    pub(crate) async fn lock_task(
        tx: &mut Transaction,
        user: &str,
        id: i64,
    ) -> Result<Option<Task>, DbError> {
        let row: Option<TaskRow> = on_tx!(tx, |c| {
            sqlx::query_as(LOCK_TASK)
                .bind(user)
                .bind(id)
                .fetch_optional(c)
                .await
        })
        .map_err(failed("locking a task"))?;
        Ok(row.map(Task::from))
    }

    pub(crate) async fn undo_last(&self, user: &str) -> Result<UndoReport, UndoError> {
        let mut tx = self.begin().await?;
        on_tx!(&mut tx, |c| sqlx::query(LOCK_USER)
            .bind(user)
            .execute(c)
            .await
            .map(drop))
        .map_err(failed("locking the user for an undo"))?;
        let group: Option<String> = on_tx!(&mut tx, |c| {
            sqlx::query_scalar(LAST_GROUP)
                .bind(user)
                .fetch_optional(c)
                .await
        })
        .map_err(failed("finding the last change group"))?;
        let Some(group) = group else {
            return Err(UndoError::Nothing);
        };
        let what = "reading a change group";
        let rows: Vec<EntryRow> = on_tx!(&mut tx, |c| {
            sqlx::query_as(GROUP_ENTRIES)
                .bind(user)
                .bind(&group)
                .fetch_all(c)
                .await
        })
        .map_err(failed(what))?;
        let entries = rows
            .into_iter()
            .map(Entry::try_from)
            .collect::<Result<Vec<_>, _>>()
            .map_err(failed(what))?;
        let plans = plan(entries);
        // Check every task before changing any: an undo is all or nothing.
        for (&task, p) in &plans {
            let later: Option<String> = on_tx!(&mut tx, |c| {
                sqlx::query_scalar(LATER_CHANGE)
                    .bind(user)
                    .bind(task)
                    .bind(p.first_id)
                    .bind(&group)
                    .fetch_optional(c)
                    .await
            })
            .map_err(failed("looking for later changes"))?;
            if let Some(a) = later {
                return Err(UndoError::Conflict {
                    task,
                    later: ChangeKind::parse(&a),
                });
            }
            // A change the journal never saw (made before it existed) counts too.
            if Self::lock_task(&mut tx, user, task).await?.as_ref() != Some(&p.after) {
                return Err(UndoError::Conflict { task, later: None });
            }
        }
        let ts = now();
        let mut undone = Vec::with_capacity(plans.len());
        for (task, p) in plans {
            let row: TaskRow = match &p.before {
                None => on_tx!(&mut tx, |c| {
                    sqlx::query_as(TRASH_ANY_TASK)
                        .bind(user)
                        .bind(task)
                        .bind(ts)
                        .fetch_one(c)
                        .await
                })
                .map_err(failed("undoing an add"))?,
                Some(b) => {
                    let what = "putting a task back";
                    let due = b
                        .due
                        .as_deref()
                        .map(|d| Due::parse("due", d))
                        .transpose()
                        .map_err(|e| failed(what)(sqlx::Error::Decode(e.0.into())))?;
                    let tags = encode_tags(&b.tags);
                    let search = search_text(&b.title, b.description.as_deref());
                    on_tx!(&mut tx, |c| {
                        sqlx::query_as(PUT_BACK_TASK)
                            .bind(user)
                            .bind(task)
                            .bind(&b.title)
                            .bind(&b.description)
                            .bind(b.completed)
                            .bind(due.map(|d| d.at))
                            .bind(due.is_some_and(|d| d.all_day))
                            .bind(b.priority.as_i16())
                            .bind(&tags)
                            .bind(b.created_at)
                            .bind(b.updated_at)
                            .bind(b.completed_at)
                            .bind(b.deleted_at)
                            .bind(&search)
                            .bind(b.parent_id)
                            .bind(b.repeat.as_ref().map(|r| r.rule.as_str()))
                            .bind(b.repeat.as_ref().map(|r| r.timezone.as_str()))
                            .fetch_one(c)
                            .await
                    })
                    .map_err(failed(what))?
                }
            };
            undone.push(UndoneTask {
                changes: p.changes,
                task: Task::from(row),
            });
        }
        on_tx!(&mut tx, |c| {
            sqlx::query(MARK_UNDONE)
                .bind(user)
                .bind(&group)
                .bind(ts)
                .execute(c)
                .await
                .map(drop)
        })
        .map_err(failed("marking a group undone"))?;
        commit(tx, "committing an undo").await?;
        Ok(UndoReport { undone })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tasks::Priority;

    fn task(id: i64, title: &str) -> Task {
        let t = chrono::DateTime::from_timestamp(1_800_000_000, 0).unwrap();
        Task {
            id,
            title: title.into(),
            description: None,
            completed: false,
            due: None,
            priority: Priority::Medium,
            tags: vec![],
            created_at: t,
            updated_at: t,
            completed_at: None,
            deleted_at: None,
            parent_id: None,
            repeat: None,
        }
    }

    #[test]
    fn a_group_folds_into_the_first_before_and_the_last_after_per_task() {
        let e = |id, n, kind, before: Option<&str>, after: &str| Entry {
            id,
            task: n,
            kind,
            before: before.map(|b| task(n, b)),
            after: task(n, after),
        };
        let plans = plan(vec![
            e(1, 7, ChangeKind::Add, None, "a"),
            e(2, 3, ChangeKind::Update, Some("x"), "y"),
            e(3, 7, ChangeKind::Complete, Some("a"), "a done"),
        ]);
        assert_eq!(plans.len(), 2);
        let p7 = &plans[&7];
        assert!(p7.before.is_none());
        assert_eq!(p7.after.title, "a done");
        assert_eq!(p7.first_id, 1);
        assert_eq!(p7.changes, vec![ChangeKind::Add, ChangeKind::Complete]);
        assert_eq!(plans[&3].before.as_ref().unwrap().title, "x");
    }

    #[test]
    fn snapshots_round_trip_and_kinds_parse_back() {
        let mut t = task(3, "Buy milk");
        t.due = Some("2026-12-24".into());
        t.tags = vec!["shop".into()];
        assert_eq!(from_snapshot(&snapshot(&t).unwrap()).unwrap(), t);
        for k in [
            ChangeKind::Add,
            ChangeKind::Update,
            ChangeKind::Complete,
            ChangeKind::Delete,
            ChangeKind::Restore,
        ] {
            assert_eq!(ChangeKind::parse(k.as_str()), Some(k));
        }
        assert_eq!(ChangeKind::parse("drop"), None);
    }

    #[test]
    fn the_report_says_an_undone_add_went_to_the_trash() {
        let r = UndoReport {
            undone: vec![UndoneTask {
                changes: vec![ChangeKind::Add],
                task: task(5, "Call mum"),
            }],
        };
        let text = r.text();
        assert!(text.contains("#5"), "{text}");
        assert!(text.contains("trash"), "{text}");
    }
}
