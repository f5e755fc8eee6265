//! The undo contract of the task store, run against SQLite and PostgreSQL alike: every change
//! is journaled under its group, `undo` reverts the newest group exactly, walks back group by
//! group, refuses (naming the task) when a later change touched one of its tasks, and is
//! scoped by user. PostgreSQL runs report SKIPPED when no server is configured (and fail
//! instead in CI).

#![allow(clippy::unwrap_used)]

use std::future::Future;
use std::sync::Arc;

use todo_core::db::Database;
use todo_core::tasks::{
    ChangeKind, Due, ListFilter, NewTask, Priority, StatusFilter, Task, TaskPatch, TaskStore,
    Title, UndoError,
};
use todo_test_support::db::with_database;
use todo_test_support::{Kind, on_both_databases};

const ALICE: &str = "alice";
const BOB: &str = "bob";

/// Runs one contract on a fresh database of `kind`, removed afterwards whatever the outcome.
async fn run<F, Fut>(kind: Kind, contract: F)
where
    F: FnOnce(Database) -> Fut,
    Fut: Future<Output = ()>,
{
    with_database(kind, |db, _| contract(db)).await
}

on_both_databases!(
    multi_thread, via run;
    every_change_is_journaled_with_the_task_before_and_after_in_its_group,
    undo_of_a_turn_reverts_all_its_changes_exactly,
    undoing_twice_walks_further_back_until_nothing_is_left,
    undo_of_an_add_moves_the_task_to_the_trash_and_numbers_are_not_reused,
    undo_of_delete_and_restore_puts_the_trash_back_as_it_was,
    a_later_change_to_the_same_task_blocks_the_undo_and_names_the_task,
    a_later_change_that_was_itself_undone_no_longer_blocks,
    undo_is_scoped_by_user,
    a_failed_change_is_not_journaled,
    undo_of_completing_a_repeating_task_restores_it_exactly,
    undo_of_a_parent_change_reverts_its_subtasks_too,
);

fn task(title: &str) -> NewTask {
    NewTask {
        title: Title::parse(title).unwrap(),
        parent: None,
        repeat: None,
        description: None,
        due: None,
        priority: Priority::Medium,
        tags: Vec::new(),
    }
}

fn all(status: StatusFilter) -> ListFilter {
    ListFilter {
        status,
        limit: 100,
        ..ListFilter::default()
    }
}

/// Every task of the user, live and trashed, by number.
async fn everything(store: &Arc<dyn TaskStore>, user: &str) -> Vec<Task> {
    let mut v = store
        .list(user, &all(StatusFilter::All))
        .await
        .unwrap()
        .tasks;
    v.extend(
        store
            .list(user, &all(StatusFilter::Deleted))
            .await
            .unwrap()
            .tasks,
    );
    v.sort_by_key(|t| t.id);
    v
}

/// (group, task, action, before, after) of every journal row of `user`, oldest first.
async fn journal(db: &Database, user: &str) -> Vec<(String, i64, String, Option<Task>, Task)> {
    const SQL: &str = "SELECT group_id, task_number, action, task_before, task_after \
                       FROM task_journal WHERE user_id = $1 ORDER BY id";
    let rows: Vec<(String, i64, String, Option<String>, String)> = match db {
        Database::Postgres(p) => sqlx::query_as(SQL).bind(user).fetch_all(p).await.unwrap(),
        Database::Sqlite(p) => sqlx::query_as(SQL).bind(user).fetch_all(p).await.unwrap(),
    };
    rows.into_iter()
        .map(|(g, n, a, b, af)| {
            (
                g,
                n,
                a,
                b.map(|b| serde_json::from_str(&b).unwrap()),
                serde_json::from_str(&af).unwrap(),
            )
        })
        .collect()
}

fn complete() -> TaskPatch {
    TaskPatch {
        completed: Some(true),
        ..TaskPatch::default()
    }
}

async fn every_change_is_journaled_with_the_task_before_and_after_in_its_group(db: Database) {
    let store = db.task_store();
    let turn = store.grouped("turn-1");
    let a = turn.add(ALICE, task("Buy milk")).await.unwrap();
    let done = turn.update(ALICE, a.id, &complete()).await.unwrap();
    // Without a group (one MCP request each): a fresh group per change.
    let renamed = store
        .update(
            ALICE,
            a.id,
            &TaskPatch {
                title: Some(Title::parse("Buy oat milk").unwrap()),
                ..TaskPatch::default()
            },
        )
        .await
        .unwrap();
    let trashed = store.delete(ALICE, a.id).await.unwrap();
    let back = store.restore(ALICE, a.id).await.unwrap();

    let j = journal(&db, ALICE).await;
    let actions: Vec<&str> = j.iter().map(|e| e.2.as_str()).collect();
    assert_eq!(
        actions,
        ["add", "complete", "update", "delete", "restore"],
        "one entry per change, named by what it did"
    );
    assert_eq!(j[0].0, "turn-1");
    assert_eq!(j[1].0, "turn-1", "a bound group spans the turn");
    assert_ne!(j[2].0, "turn-1");
    assert_ne!(j[2].0, j[3].0, "ungrouped changes are groups of one");
    assert_ne!(j[3].0, j[4].0);
    assert!(j.iter().all(|e| e.1 == a.id));
    assert_eq!(j[0].3, None, "an add has no before");
    assert_eq!(j[0].4, a);
    assert_eq!(j[1].3.as_ref(), Some(&a));
    assert_eq!(j[1].4, done);
    assert_eq!(j[2].3.as_ref(), Some(&done));
    assert_eq!(j[2].4, renamed);
    assert_eq!(j[3].4, trashed);
    assert_eq!(j[4].3.as_ref(), Some(&trashed));
    assert_eq!(j[4].4, back);
}

async fn undo_of_a_turn_reverts_all_its_changes_exactly(db: Database) {
    let store = db.task_store();
    let setup = store.grouped("setup");
    let milk = setup
        .add(
            ALICE,
            NewTask {
                description: Some("2 litres".into()),
                due: Some(Due::parse("due", "2026-12-24").unwrap()),
                tags: vec!["shop".into()],
                ..task("Buy milk")
            },
        )
        .await
        .unwrap();
    let call = setup.add(ALICE, task("Call mum")).await.unwrap();
    let before = everything(&store, ALICE).await;

    // One turn: three changes to two tasks, and one new task.
    let turn = store.grouped("turn");
    turn.update(
        ALICE,
        milk.id,
        &TaskPatch {
            title: Some(Title::parse("Buy bread").unwrap()),
            description: Some(None),
            due: Some(Some(Due::parse("due", "2027-01-02T09:30:00Z").unwrap())),
            priority: Some(Priority::High),
            tags: Some(vec![]),
            completed: None,
            parent: None,
            repeat: None,
        },
    )
    .await
    .unwrap();
    turn.update(ALICE, milk.id, &complete()).await.unwrap();
    turn.delete(ALICE, call.id).await.unwrap();
    let new = turn.add(ALICE, task("Water plants")).await.unwrap();

    let report = store.undo(ALICE).await.unwrap();
    let mut changed: Vec<(i64, Vec<ChangeKind>)> = report
        .undone
        .iter()
        .map(|u| (u.task.id, u.changes.clone()))
        .collect();
    changed.sort_by_key(|c| c.0);
    assert_eq!(
        changed,
        vec![
            (milk.id, vec![ChangeKind::Update, ChangeKind::Complete]),
            (call.id, vec![ChangeKind::Delete]),
            (new.id, vec![ChangeKind::Add]),
        ]
    );
    let after = everything(&store, ALICE).await;
    assert_eq!(
        after[..2],
        before[..],
        "every field, timestamps included, is back"
    );
    assert_eq!(after[2].id, new.id);
    assert!(
        after[2].deleted_at.is_some(),
        "the added task is in the trash"
    );
    // Text search follows the restored title.
    let found = store
        .list(
            ALICE,
            &ListFilter {
                query: Some("milk".into()),
                ..all(StatusFilter::All)
            },
        )
        .await
        .unwrap()
        .tasks;
    assert_eq!(found.len(), 1, "search text follows the restored title");
}

async fn undoing_twice_walks_further_back_until_nothing_is_left(db: Database) {
    let store = db.task_store();
    let t = store.grouped("one").add(ALICE, task("A")).await.unwrap();
    let done = store
        .grouped("two")
        .update(ALICE, t.id, &complete())
        .await
        .unwrap();
    store
        .grouped("three")
        .update(
            ALICE,
            t.id,
            &TaskPatch {
                title: Some(Title::parse("B").unwrap()),
                ..TaskPatch::default()
            },
        )
        .await
        .unwrap();

    let r1 = store.undo(ALICE).await.unwrap();
    assert_eq!(r1.undone[0].task, done, "first undo reverts the rename");
    let r2 = store.undo(ALICE).await.unwrap();
    assert_eq!(r2.undone[0].task, t, "second undo reverts the completion");
    let r3 = store.undo(ALICE).await.unwrap();
    assert_eq!(r3.undone[0].changes, vec![ChangeKind::Add]);
    assert!(matches!(store.undo(ALICE).await, Err(UndoError::Nothing)));
}

async fn undo_of_an_add_moves_the_task_to_the_trash_and_numbers_are_not_reused(db: Database) {
    let store = db.task_store();
    let a = store.add(ALICE, task("Oops")).await.unwrap();
    store.undo(ALICE).await.unwrap();
    assert!(store.get(ALICE, a.id).await.is_err(), "not live any more");
    let trash = store
        .list(ALICE, &all(StatusFilter::Deleted))
        .await
        .unwrap()
        .tasks;
    assert_eq!(trash.len(), 1);
    assert_eq!(trash[0].title, "Oops");
    let b = store.add(ALICE, task("Next")).await.unwrap();
    assert_eq!(b.id, a.id + 1, "the number is not handed out again");
}

async fn undo_of_delete_and_restore_puts_the_trash_back_as_it_was(db: Database) {
    let store = db.task_store();
    let a = store.add(ALICE, task("Keep")).await.unwrap();
    store.delete(ALICE, a.id).await.unwrap();
    let r = store.undo(ALICE).await.unwrap();
    assert_eq!(r.undone[0].task, a, "the delete is undone exactly");
    assert_eq!(store.get(ALICE, a.id).await.unwrap(), a);

    let trashed = store.delete(ALICE, a.id).await.unwrap();
    store.restore(ALICE, a.id).await.unwrap();
    store.undo(ALICE).await.unwrap();
    let trash = store
        .list(ALICE, &all(StatusFilter::Deleted))
        .await
        .unwrap()
        .tasks;
    assert_eq!(
        trash,
        vec![trashed],
        "the restore is undone: back in the trash"
    );
}

async fn a_later_change_to_the_same_task_blocks_the_undo_and_names_the_task(db: Database) {
    let store = db.task_store();
    let x = store.add(ALICE, task("X")).await.unwrap();
    let y = store.add(ALICE, task("Y")).await.unwrap();
    // A long turn and an MCP request interleave: the turn completes X, the request renames X,
    // then the turn completes Y. The turn is the newest group, but X changed after it.
    let turn = store.grouped("turn");
    turn.update(ALICE, x.id, &complete()).await.unwrap();
    let renamed = store
        .grouped("request")
        .update(
            ALICE,
            x.id,
            &TaskPatch {
                title: Some(Title::parse("X renamed").unwrap()),
                ..TaskPatch::default()
            },
        )
        .await
        .unwrap();
    let y_done = turn.update(ALICE, y.id, &complete()).await.unwrap();
    match store.undo(ALICE).await {
        Err(UndoError::Conflict { task, later }) => {
            assert_eq!(task, x.id, "names the task");
            assert_eq!(later, Some(ChangeKind::Update), "and the later change");
        }
        other => panic!("expected a conflict on #{}, got {other:?}", x.id),
    }
    // All or nothing: Y stays completed, X keeps the later rename.
    assert_eq!(store.get(ALICE, y.id).await.unwrap(), y_done);
    assert_eq!(store.get(ALICE, x.id).await.unwrap(), renamed);
    // Refusing again is stable; nothing was marked undone.
    assert!(matches!(
        store.undo(ALICE).await,
        Err(UndoError::Conflict { .. })
    ));

    // A change the journal never saw (made by hand, or before the journal existed) blocks
    // too: the task no longer looks the way the group left it.
    let z = store.add(BOB, task("Z")).await.unwrap();
    store
        .grouped("g1")
        .update(BOB, z.id, &complete())
        .await
        .unwrap();
    const SQL: &str =
        "UPDATE tasks SET title = 'changed by hand' WHERE user_id = $1 AND number = $2";
    match &db {
        Database::Postgres(p) => sqlx::query(SQL)
            .bind(BOB)
            .bind(z.id)
            .execute(p)
            .await
            .map(drop),
        Database::Sqlite(p) => sqlx::query(SQL)
            .bind(BOB)
            .bind(z.id)
            .execute(p)
            .await
            .map(drop),
    }
    .unwrap();
    match store.undo(BOB).await {
        Err(UndoError::Conflict { task, later: None }) => assert_eq!(task, z.id),
        other => panic!("expected a conflict naming #{}, got {other:?}", z.id),
    }
    let now = store.get(BOB, z.id).await.unwrap();
    assert!(now.completed, "a refused undo changes nothing");
    assert_eq!(now.title, "changed by hand");
}

async fn a_later_change_that_was_itself_undone_no_longer_blocks(db: Database) {
    let store = db.task_store();
    let a = store.add(ALICE, task("A")).await.unwrap();
    store
        .grouped("g1")
        .update(ALICE, a.id, &complete())
        .await
        .unwrap();
    store
        .grouped("g2")
        .update(
            ALICE,
            a.id,
            &TaskPatch {
                title: Some(Title::parse("A2").unwrap()),
                ..TaskPatch::default()
            },
        )
        .await
        .unwrap();
    store.undo(ALICE).await.unwrap();
    let r = store.undo(ALICE).await.unwrap();
    assert_eq!(r.undone[0].task, a);
}

async fn undo_is_scoped_by_user(db: Database) {
    let store = db.task_store();
    let mine = store.add(ALICE, task("Mine")).await.unwrap();
    store.update(ALICE, mine.id, &complete()).await.unwrap();
    let theirs = store.add(BOB, task("Theirs")).await.unwrap();
    // Bob's undo reverts Bob's newest change only, even though Alice's is as recent.
    let r = store.undo(BOB).await.unwrap();
    assert_eq!(r.undone.len(), 1);
    assert_eq!(r.undone[0].task.title, "Theirs");
    assert!(store.get(BOB, theirs.id).await.is_err());
    assert!(store.get(ALICE, mine.id).await.unwrap().completed);
    assert!(matches!(store.undo(BOB).await, Err(UndoError::Nothing)));
    // Alice's journal is untouched by Bob's undo.
    assert!(!store.undo(ALICE).await.unwrap().undone[0].task.completed);
    // A user who never changed anything has nothing to undo.
    assert!(matches!(store.undo("carol").await, Err(UndoError::Nothing)));
}

async fn a_failed_change_is_not_journaled(db: Database) {
    let store = db.task_store();
    assert!(store.update(ALICE, 42, &complete()).await.is_err());
    assert!(store.delete(ALICE, 42).await.is_err());
    assert!(store.restore(ALICE, 42).await.is_err());
    let a = store.add(ALICE, task("A")).await.unwrap();
    assert!(
        store.restore(ALICE, a.id).await.is_err(),
        "a live task cannot be restored"
    );
    let j = journal(&db, ALICE).await;
    assert_eq!(j.len(), 1, "only the add: {j:?}");
}

async fn undo_of_completing_a_repeating_task_restores_it_exactly(db: Database) {
    let store = db.task_store();
    let (repeat, due) = todo_core::tasks::repeat::parse("every day at 9am")
        .unwrap()
        .resolve(
            Some(Due::parse("due", "2030-03-30").unwrap()),
            "Europe/Paris".parse().unwrap(),
            chrono::Utc::now(),
        )
        .unwrap();
    let plants = store
        .grouped("setup")
        .add(
            ALICE,
            NewTask {
                due: Some(due),
                repeat: Some(repeat),
                ..task("Water plants")
            },
        )
        .await
        .unwrap();
    let before = everything(&store, ALICE).await;
    let moved = store
        .grouped("turn")
        .update(ALICE, plants.id, &complete())
        .await
        .unwrap();
    // 09:00 in Paris, before and after summer time starts on 31 March 2030.
    assert_eq!(plants.due.as_deref(), Some("2030-03-30T08:00:00Z"));
    assert_eq!(moved.due.as_deref(), Some("2030-03-31T07:00:00Z"));
    let report = store.undo(ALICE).await.unwrap();
    let mut changed: Vec<(i64, Vec<ChangeKind>)> = report
        .undone
        .iter()
        .map(|u| (u.task.id, u.changes.clone()))
        .collect();
    changed.sort_by_key(|c| c.0);
    assert_eq!(
        changed,
        vec![
            (plants.id, vec![ChangeKind::Complete]),
            (plants.id + 1, vec![ChangeKind::Add]),
        ]
    );
    let after = everything(&store, ALICE).await;
    // The task is back exactly (due, rule, timestamps); the recorded occurrence is in the trash.
    assert_eq!(after[0], before[0]);
    assert_eq!(after.len(), 2);
    assert!(after[1].deleted_at.is_some() && after[1].completed);
    // Completing again moves it on again.
    let again = store.update(ALICE, plants.id, &complete()).await.unwrap();
    assert_eq!(again.due, moved.due);
}

async fn undo_of_a_parent_change_reverts_its_subtasks_too(db: Database) {
    let store = db.task_store();
    let setup = store.grouped("setup");
    let trip = setup.add(ALICE, task("Trip")).await.unwrap();
    let sub = |t: &str| NewTask {
        parent: Some(trip.id),
        ..task(t)
    };
    setup.add(ALICE, sub("Flights")).await.unwrap();
    setup.add(ALICE, sub("Hotel")).await.unwrap();
    let before = everything(&store, ALICE).await;
    store
        .grouped("done")
        .update(ALICE, trip.id, &complete())
        .await
        .unwrap();
    assert!(everything(&store, ALICE).await.iter().all(|t| t.completed));
    let report = store.undo(ALICE).await.unwrap();
    assert_eq!(report.undone.len(), 3, "the parent and both subtasks");
    assert_eq!(everything(&store, ALICE).await, before);
    store
        .grouped("delete")
        .delete(ALICE, trip.id)
        .await
        .unwrap();
    assert!(
        everything(&store, ALICE)
            .await
            .iter()
            .all(|t| t.deleted_at.is_some())
    );
    store.undo(ALICE).await.unwrap();
    assert_eq!(everything(&store, ALICE).await, before);
    // Without a group, a parent change and its subtasks still form one group.
    store.delete(ALICE, trip.id).await.unwrap();
    assert_eq!(store.undo(ALICE).await.unwrap().undone.len(), 3);
    assert_eq!(everything(&store, ALICE).await, before);
}
