//! Subtasks, and how they live with repeating tasks. The rules, in one place:
//!
//! - One level: a subtask's parent is a top-level task; a task with subtasks cannot itself
//!   become a subtask.
//! - The parent is a live task of the same user; anything else (another user's task, a task in
//!   the trash, a number never used) is "not found".
//! - Repeating and subtasks do not mix: a repeating task has no subtasks and a subtask does not
//!   repeat (what a completed occurrence would do to its children has no clear answer).
//! - Completing a parent completes its open subtasks with it; deleting a parent moves its
//!   subtasks to the trash with it, and restoring it brings back the subtasks deleted with it.
//!   Each of these is journaled in the same group, so one undo reverts all of it. Re-opening a
//!   parent leaves its subtasks as they are.
//!
//! The SQL half is the `impl SqlTaskStore` below; the store calls it.

use chrono::{DateTime, Utc};

use super::journal::ChangeKind;
use super::model::{Due, Task, encode_tags, search_text};
use super::store::{NEXT_NUMBER, SqlTaskStore, StoreError, TaskRow, task_columns};
use crate::db::{Transaction, on_tx};
use crate::error::{DbError, failed};

/// What a task will look like after a change, as far as the rules care.
pub(crate) struct Shape {
    /// `None` for a task being added.
    pub id: Option<i64>,
    pub parent: Option<i64>,
    pub repeats: bool,
    pub has_due: bool,
    pub has_children: bool,
}

fn refused(msg: String) -> StoreError {
    StoreError::Refused(msg)
}

/// Checks a task's shape against the rules; `parent` is the parent task as stored (any
/// state, `None` when no such task of this user exists).
pub(crate) fn check(shape: &Shape, parent: Option<&Task>) -> Result<(), StoreError> {
    if shape.repeats && !shape.has_due {
        return Err(refused(
            "A repeating task needs a due date: keep the due date, or stop the repeat \
             (repeat: null) first."
                .into(),
        ));
    }
    if shape.repeats && shape.has_children {
        return Err(refused(format!(
            "Task #{} has subtasks, and a task with subtasks cannot repeat.",
            shape.id.unwrap_or_default()
        )));
    }
    let Some(p) = shape.parent else {
        return Ok(());
    };
    let Some(parent) = parent.filter(|t| t.deleted_at.is_none()) else {
        return Err(refused(format!(
            "No task #{p} was found to be the parent. Call list_tasks to see the task numbers."
        )));
    };
    if shape.id == Some(p) {
        return Err(refused("A task cannot be its own subtask.".into()));
    }
    if let Some(grand) = parent.parent_id {
        return Err(refused(format!(
            "Task #{p} is itself a subtask of #{grand}; subtasks go one level deep. \
             Use parent_id {grand} instead."
        )));
    }
    if shape.has_children {
        return Err(refused(format!(
            "Task #{} has subtasks of its own, so it cannot become a subtask (one level deep).",
            shape.id.unwrap_or_default()
        )));
    }
    if parent.repeat.is_some() {
        return Err(refused(format!(
            "Task #{p} repeats, and a repeating task cannot have subtasks."
        )));
    }
    if shape.repeats {
        return Err(refused(
            "A subtask cannot repeat: give the repeat to a top-level task.".into(),
        ));
    }
    Ok(())
}

/// Which subtasks of a parent a cascade takes.
pub(crate) enum Children {
    /// Live and not completed: what completing the parent completes.
    Open,
    /// Live: what deleting the parent moves to the trash.
    Live,
    /// Trashed at the same moment as the parent: what restoring it brings back.
    TrashedAt(DateTime<Utc>),
}

const HAS_CHILDREN: &str = "SELECT COUNT(*) FROM tasks WHERE user_id = $1 AND parent_number = $2 \
     AND deleted_at IS NULL";

const LOCK_OPEN_CHILDREN: &str = concat!(
    "UPDATE tasks SET number = number WHERE user_id = $1 AND parent_number = $2 \
     AND deleted_at IS NULL AND completed = FALSE RETURNING ",
    task_columns!()
);

const LOCK_LIVE_CHILDREN: &str = concat!(
    "UPDATE tasks SET number = number WHERE user_id = $1 AND parent_number = $2 \
     AND deleted_at IS NULL RETURNING ",
    task_columns!()
);

const LOCK_CHILDREN_TRASHED_AT: &str = concat!(
    "UPDATE tasks SET number = number WHERE user_id = $1 AND parent_number = $2 \
     AND deleted_at = $3 RETURNING ",
    task_columns!()
);

/// A done occurrence of a repeating task: completed, no rule, no parent.
const INSERT_OCCURRENCE: &str = concat!(
    "INSERT INTO tasks (user_id, number, title, description, due_at, due_all_day, priority, \
     tags, created_at, updated_at, search_text, completed, completed_at) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $9, $10, TRUE, $9) RETURNING ",
    task_columns!()
);

/// The subtask and repeat half of the task store.
impl SqlTaskStore {
    /// Whether a task has live subtasks.
    pub(crate) async fn has_children(
        tx: &mut Transaction,
        user: &str,
        id: i64,
    ) -> Result<bool, DbError> {
        let n: i64 = on_tx!(tx, |c| {
            sqlx::query_scalar(HAS_CHILDREN)
                .bind(user)
                .bind(id)
                .fetch_one(c)
                .await
        })
        .map_err(failed("counting subtasks"))?;
        Ok(n > 0)
    }

    /// The parent a shape names, locked so it cannot change under the check.
    pub(crate) async fn parent_of(
        tx: &mut Transaction,
        user: &str,
        parent: Option<i64>,
    ) -> Result<Option<Task>, DbError> {
        match parent {
            Some(p) => Self::lock_task(tx, user, p).await,
            None => Ok(None),
        }
    }

    /// Locks and returns the subtasks of `id` that `which` selects, in number order.
    async fn lock_children(
        tx: &mut Transaction,
        user: &str,
        id: i64,
        which: &Children,
    ) -> Result<Vec<Task>, DbError> {
        let rows: Vec<TaskRow> = on_tx!(tx, |c| {
            match which {
                Children::Open => {
                    sqlx::query_as(LOCK_OPEN_CHILDREN)
                        .bind(user)
                        .bind(id)
                        .fetch_all(c)
                        .await
                }
                Children::Live => {
                    sqlx::query_as(LOCK_LIVE_CHILDREN)
                        .bind(user)
                        .bind(id)
                        .fetch_all(c)
                        .await
                }
                Children::TrashedAt(at) => {
                    sqlx::query_as(LOCK_CHILDREN_TRASHED_AT)
                        .bind(user)
                        .bind(id)
                        .bind(*at)
                        .fetch_all(c)
                        .await
                }
            }
        })
        .map_err(failed("locking subtasks"))?;
        let mut tasks: Vec<Task> = rows.into_iter().map(Task::from).collect();
        tasks.sort_by_key(|t| t.id);
        Ok(tasks)
    }

    /// Applies `change` (SQL with `$1` user, `$2` number, `$3` now; journaled as `kind`) to
    /// each subtask of `id` that `which` selects, in the parent's change group.
    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn cascade(
        &self,
        tx: &mut Transaction,
        user: &str,
        group: &str,
        id: i64,
        which: Children,
        ts: DateTime<Utc>,
        (change, kind): (&'static str, ChangeKind),
    ) -> Result<(), DbError> {
        for child in Self::lock_children(tx, user, id, &which).await? {
            let row: TaskRow = on_tx!(&mut *tx, |c| {
                sqlx::query_as(change)
                    .bind(user)
                    .bind(child.id)
                    .bind(ts)
                    .fetch_one(c)
                    .await
            })
            .map_err(failed("changing a subtask with its parent"))?;
            let after = Task::from(row);
            self.journal(tx, user, group, kind, Some(&child), &after)
                .await?;
        }
        Ok(())
    }

    /// Records a done occurrence of a repeating task as a completed task of its own (a new
    /// number, no rule, no parent), journaled as an add.
    pub(crate) async fn insert_occurrence(
        &self,
        tx: &mut Transaction,
        user: &str,
        group: &str,
        done: &Task,
        due: Option<Due>,
        ts: DateTime<Utc>,
    ) -> Result<Task, DbError> {
        let number: i64 = on_tx!(&mut *tx, |c| {
            sqlx::query_scalar(NEXT_NUMBER)
                .bind(user)
                .fetch_one(c)
                .await
        })
        .map_err(failed("numbering a done occurrence"))?;
        let tags = encode_tags(&done.tags);
        let search = search_text(&done.title, done.description.as_deref());
        let row: TaskRow = on_tx!(&mut *tx, |c| {
            sqlx::query_as(INSERT_OCCURRENCE)
                .bind(user)
                .bind(number)
                .bind(&done.title)
                .bind(&done.description)
                .bind(due.map(|d| d.at))
                .bind(due.is_some_and(|d| d.all_day))
                .bind(done.priority.as_i16())
                .bind(&tags)
                .bind(ts)
                .bind(&search)
                .fetch_one(c)
                .await
        })
        .map_err(failed("recording a done occurrence"))?;
        let task = Task::from(row);
        self.journal(tx, user, group, ChangeKind::Add, None, &task)
            .await?;
        Ok(task)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::tasks::{Priority, Repeat};

    fn task(id: i64) -> Task {
        let t = chrono::DateTime::from_timestamp(1_800_000_000, 0).unwrap();
        Task {
            id,
            title: "t".into(),
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

    fn shape(id: Option<i64>, parent: Option<i64>) -> Shape {
        Shape {
            id,
            parent,
            repeats: false,
            has_due: false,
            has_children: false,
        }
    }

    fn message(r: Result<(), StoreError>) -> String {
        match r {
            Err(StoreError::Refused(m)) => m,
            other => panic!("expected a refusal, got {other:?}"),
        }
    }

    #[test]
    fn one_level_of_live_parents_without_repeats() {
        assert!(check(&shape(None, Some(1)), Some(&task(1))).is_ok());
        assert!(message(check(&shape(None, Some(9)), None)).contains("No task #9"));
        let mut trashed = task(1);
        trashed.deleted_at = Some(trashed.created_at);
        assert!(message(check(&shape(None, Some(1)), Some(&trashed))).contains("No task #1"));
        let mut sub = task(2);
        sub.parent_id = Some(1);
        let m = message(check(&shape(None, Some(2)), Some(&sub)));
        assert!(m.contains("one level") && m.contains("parent_id 1"), "{m}");
        assert!(message(check(&shape(Some(1), Some(1)), Some(&task(1)))).contains("own subtask"));
        let mut with_children = shape(Some(3), Some(1));
        with_children.has_children = true;
        assert!(message(check(&with_children, Some(&task(1)))).contains("subtasks of its own"));
        let mut repeating = task(1);
        repeating.repeat = Some(Repeat::from_stored("FREQ=DAILY".into(), "UTC".into()));
        assert!(message(check(&shape(None, Some(1)), Some(&repeating))).contains("repeats"));
        let mut repeating_child = shape(None, Some(1));
        repeating_child.repeats = true;
        repeating_child.has_due = true;
        assert!(message(check(&repeating_child, Some(&task(1)))).contains("cannot repeat"));
    }

    #[test]
    fn a_repeat_needs_a_due_date_and_no_subtasks() {
        let mut s = shape(Some(4), None);
        s.repeats = true;
        assert!(message(check(&s, None)).contains("needs a due date"));
        s.has_due = true;
        assert!(check(&s, None).is_ok());
        s.has_children = true;
        assert!(message(check(&s, None)).contains("cannot repeat"));
    }
}
