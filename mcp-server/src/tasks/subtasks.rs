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
//! The SQL half (`sql_subtasks!`) is instantiated per driver next to the store.

use super::model::Task;
use super::store::StoreError;

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

/// The subtask and repeat half of a SQL task store.
macro_rules! sql_subtasks {
    ($name:ident, $db:ty, $row:ty) => {
        impl $name {
            /// Whether a task has live subtasks.
            async fn has_children(
                tx: &mut sqlx::Transaction<'static, $db>,
                user: &str,
                id: i64,
            ) -> Result<bool, sqlx::Error> {
                let n: i64 = sqlx::query_scalar(
                    "SELECT COUNT(*) FROM tasks WHERE user_id = $1 AND parent_number = $2 \
                     AND deleted_at IS NULL",
                )
                .bind(user)
                .bind(id)
                .fetch_one(&mut **tx)
                .await?;
                Ok(n > 0)
            }

            /// The parent a shape names, locked so it cannot change under the check.
            async fn parent_of(
                tx: &mut sqlx::Transaction<'static, $db>,
                user: &str,
                parent: Option<i64>,
            ) -> Result<Option<Task>, sqlx::Error> {
                match parent {
                    Some(p) => Self::lock_task(tx, user, p).await,
                    None => Ok(None),
                }
            }

            /// Locks and returns the subtasks of `id` that `which` selects (a constant SQL
            /// condition on the child rows).
            async fn lock_children(
                tx: &mut sqlx::Transaction<'static, $db>,
                user: &str,
                id: i64,
                which: &'static str,
                deleted_at: Option<DateTime<Utc>>,
            ) -> Result<Vec<Task>, sqlx::Error> {
                let sql = format!(
                    "UPDATE tasks SET number = number WHERE user_id = $1 AND parent_number = $2 \
                     AND {which} RETURNING {}",
                    columns!()
                );
                let mut q = sqlx::query(sqlx::AssertSqlSafe(sql.as_str())).bind(user).bind(id);
                if let Some(d) = deleted_at {
                    q = q.bind(d);
                }
                let rows = q.fetch_all(&mut **tx).await?;
                let mut tasks = rows
                    .iter()
                    .map(Self::task_from_row)
                    .collect::<Result<Vec<_>, _>>()?;
                tasks.sort_by_key(|t| t.id);
                Ok(tasks)
            }

            /// Records a done occurrence of a repeating task as a completed task of its own
            /// (a new number, no rule, no parent), journaled as an add.
            async fn insert_occurrence(
                &self,
                tx: &mut sqlx::Transaction<'static, $db>,
                user: &str,
                group: &str,
                done: &Task,
                due: Option<Due>,
                ts: DateTime<Utc>,
            ) -> Result<Task, sqlx::Error> {
                let number: i64 = sqlx::query_scalar(
                    "INSERT INTO task_counters (user_id, last_number) VALUES ($1, 1) \
                     ON CONFLICT (user_id) DO UPDATE SET last_number = task_counters.last_number + 1 \
                     RETURNING last_number",
                )
                .bind(user)
                .fetch_one(&mut **tx)
                .await?;
                let row = sqlx::query(concat!(
                    "INSERT INTO tasks (user_id, number, title, description, due_at, due_all_day, \
                     priority, tags, created_at, updated_at, search_text, completed, completed_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $9, $10, TRUE, $9) RETURNING ",
                    columns!(),
                    ""
                ))
                .bind(user)
                .bind(number)
                .bind(&done.title)
                .bind(&done.description)
                .bind(due.map(|d| d.at))
                .bind(due.is_some_and(|d| d.all_day))
                .bind(done.priority.as_i16())
                .bind(encode_tags(&done.tags))
                .bind(ts)
                .bind(search_text(&done.title, done.description.as_deref()))
                .fetch_one(&mut **tx)
                .await?;
                let task = Self::task_from_row(&row)?;
                self.journal(tx, user, group, ChangeKind::Add, None, &task).await?;
                Ok(task)
            }
        }
    };
}

pub(crate) use sql_subtasks;

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
