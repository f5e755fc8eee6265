//! The task store contract: one suite, run against SQLite and PostgreSQL alike.
//!
//! Each contract is an `async fn(Arc<dyn TaskStore>)`; `on_both_databases!` turns it into a
//! `NAME::sqlite` and a `NAME::postgres` test, each on its own fresh database that is
//! removed afterwards, even when the contract fails. PostgreSQL tests report SKIPPED when
//! `DATABASE_URL` names no PostgreSQL server (and fail instead in CI).

#![allow(clippy::unwrap_used)]

use std::future::Future;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use todo_core::tasks::{
    Due, ListFilter, NewTask, Priority, StatusFilter, StoreError, Task, TaskPatch, TaskStore, Title,
};
use todo_test_support::db::with_database;
use todo_test_support::{Kind, on_both_databases};

const ALICE: &str = "alice";
const BOB: &str = "bob";

/// Runs one contract on a fresh database of `kind`, removed afterwards whatever the outcome.
async fn run<F, Fut>(kind: Kind, contract: F)
where
    F: FnOnce(Arc<dyn TaskStore>) -> Fut,
    Fut: Future<Output = ()>,
{
    with_database(kind, |db, _| contract(db.task_store())).await
}

on_both_databases!(
    multi_thread, via run;
    numbers_count_from_one_per_user,
    numbers_are_never_reused_after_delete,
    another_users_task_is_not_found_and_not_listed,
    status_filters_select_open_done_live_and_trashed_tasks,
    text_query_is_case_insensitive_over_title_and_description,
    text_query_treats_like_wildcards_literally,
    tag_filter_matches_whole_tags_only,
    due_window_includes_after_and_excludes_before,
    lists_show_open_first_then_soonest_due_then_undated,
    paging_reports_next_offset_until_the_last_page,
    update_changes_each_field_and_leaves_the_rest,
    update_clears_description_and_due_with_explicit_none,
    reopening_clears_completed_at,
    completing_twice_keeps_the_first_completed_at,
    soft_delete_hides_a_task_until_it_is_restored,
    concurrent_adds_for_one_user_get_distinct_numbers,
    unicode_text_round_trips,
    timestamps_round_trip_exactly,
    open_tasks_are_open_live_and_soonest_first,
    repeating_task_completes_into_its_next_occurrence_and_records_the_done_one,
    a_repeating_series_that_has_ended_completes_like_any_task,
    every_day_at_nine_stays_at_nine_across_daylight_saving,
    editing_due_or_title_keeps_the_rule_and_stop_removes_it,
    a_repeating_task_cannot_lose_its_due_date,
    subtasks_are_added_listed_and_hidden,
    a_parent_must_be_a_live_top_level_task_of_the_same_user,
    repeats_and_subtasks_do_not_mix,
    tasks_move_under_a_parent_and_back,
    completing_a_parent_completes_its_open_subtasks,
    deleting_a_parent_trashes_its_subtasks_and_restoring_brings_them_back,
);

// ---------------------------------------------------------------- helpers

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

fn due(raw: &str) -> Due {
    Due::parse("due", raw).unwrap()
}

fn instant(raw: &str) -> DateTime<Utc> {
    due(raw).at
}

fn filter(status: StatusFilter) -> ListFilter {
    ListFilter {
        status,
        limit: 100,
        ..ListFilter::default()
    }
}

fn query(q: &str) -> ListFilter {
    ListFilter {
        query: Some(q.to_lowercase()),
        ..filter(StatusFilter::All)
    }
}

async fn ids(store: &Arc<dyn TaskStore>, user: &str, f: &ListFilter) -> Vec<i64> {
    store
        .list(user, f)
        .await
        .unwrap()
        .tasks
        .iter()
        .map(|t| t.id)
        .collect()
}

async fn add(store: &Arc<dyn TaskStore>, user: &str, t: NewTask) -> Task {
    store.add(user, t).await.unwrap()
}

fn complete() -> TaskPatch {
    TaskPatch {
        completed: Some(true),
        ..TaskPatch::default()
    }
}

#[track_caller]
fn assert_not_found<T: std::fmt::Debug>(r: Result<T, StoreError>, what: &str) {
    match r {
        Err(StoreError::NotFound) => {}
        other => panic!("{what}: expected NotFound, got {other:?}"),
    }
}

// ---------------------------------------------------------------- contracts

async fn numbers_count_from_one_per_user(store: Arc<dyn TaskStore>) {
    let mut got = Vec::new();
    for title in ["one", "two", "three"] {
        got.push(add(&store, ALICE, task(title)).await);
    }
    assert_eq!(got.iter().map(|t| t.id).collect::<Vec<_>>(), [1, 2, 3]);
    assert_eq!(got[1].title, "two");
    assert!(!got[1].completed);
    assert_eq!(got[1].priority, Priority::Medium);
    assert_eq!(got[1].tags, Vec::<String>::new());
    assert_eq!(got[1].due, None);
    assert_eq!(got[1].completed_at, None);
    assert_eq!(got[1].deleted_at, None);

    let bobs = add(&store, BOB, task("bob's first")).await;
    assert_eq!(bobs.id, 1, "another user starts at 1 again");
    assert_eq!(add(&store, ALICE, task("four")).await.id, 4);
    assert_eq!(store.get(BOB, 1).await.unwrap().title, "bob's first");
    assert_eq!(store.get(ALICE, 1).await.unwrap().title, "one");
}

async fn numbers_are_never_reused_after_delete(store: Arc<dyn TaskStore>) {
    for title in ["a", "b", "c"] {
        add(&store, ALICE, task(title)).await;
    }
    store.delete(ALICE, 3).await.unwrap();
    store.delete(ALICE, 2).await.unwrap();
    assert_eq!(add(&store, ALICE, task("d")).await.id, 4);
    store.restore(ALICE, 2).await.unwrap();
    assert_eq!(add(&store, ALICE, task("e")).await.id, 5);
    assert_eq!(
        ids(&store, ALICE, &filter(StatusFilter::All)).await,
        [1, 2, 4, 5]
    );
}

async fn another_users_task_is_not_found_and_not_listed(store: Arc<dyn TaskStore>) {
    let mine = add(
        &store,
        ALICE,
        NewTask {
            tags: vec!["secret".into()],
            ..task("alice's task")
        },
    )
    .await;
    let trashed = add(&store, ALICE, task("alice's trashed task")).await;
    store.delete(ALICE, trashed.id).await.unwrap();

    assert_not_found(store.get(BOB, mine.id).await, "get");
    assert_not_found(
        store
            .update(
                BOB,
                mine.id,
                &TaskPatch {
                    title: Some(Title::parse("hijacked").unwrap()),
                    ..complete()
                },
            )
            .await,
        "update",
    );
    assert_not_found(store.delete(BOB, mine.id).await, "delete");
    assert_not_found(store.restore(BOB, trashed.id).await, "restore");
    for status in [
        StatusFilter::Pending,
        StatusFilter::Completed,
        StatusFilter::All,
        StatusFilter::Deleted,
    ] {
        assert_eq!(
            ids(&store, BOB, &filter(status)).await,
            Vec::<i64>::new(),
            "{status:?}"
        );
    }
    assert_eq!(ids(&store, BOB, &query("alice")).await, Vec::<i64>::new());
    assert!(store.open_tasks(BOB, 10).await.unwrap().is_empty());

    // Nothing bob tried touched alice's tasks.
    assert_eq!(store.get(ALICE, mine.id).await.unwrap(), mine);
    assert_eq!(
        ids(&store, ALICE, &filter(StatusFilter::Deleted)).await,
        [trashed.id]
    );
}

async fn status_filters_select_open_done_live_and_trashed_tasks(store: Arc<dyn TaskStore>) {
    let open = add(&store, ALICE, task("open")).await.id;
    let done = add(&store, ALICE, task("done")).await.id;
    let trashed = add(&store, ALICE, task("trashed")).await.id;
    let done_trashed = add(&store, ALICE, task("done, then trashed")).await.id;
    store.update(ALICE, done, &complete()).await.unwrap();
    store
        .update(ALICE, done_trashed, &complete())
        .await
        .unwrap();
    store.delete(ALICE, trashed).await.unwrap();
    store.delete(ALICE, done_trashed).await.unwrap();

    let cases = [
        (StatusFilter::Pending, vec![open]),
        (StatusFilter::Completed, vec![done]),
        (StatusFilter::All, vec![open, done]),
        // The trash: the most recently deleted first.
        (StatusFilter::Deleted, vec![done_trashed, trashed]),
    ];
    for (status, want) in cases {
        assert_eq!(
            ids(&store, ALICE, &filter(status)).await,
            want,
            "{status:?}"
        );
    }
}

async fn text_query_is_case_insensitive_over_title_and_description(store: Arc<dyn TaskStore>) {
    let milk = add(&store, ALICE, task("Buy MILK")).await.id;
    let dentist = add(
        &store,
        ALICE,
        NewTask {
            description: Some("Call the Dentist before noon".into()),
            ..task("Phone call")
        },
    )
    .await
    .id;
    let done = add(&store, ALICE, task("milkshake recipe")).await.id;
    store.update(ALICE, done, &complete()).await.unwrap();

    let cases: [(&str, Vec<i64>); 6] = [
        ("milk", vec![milk, done]),
        ("MiLk", vec![milk, done]),
        ("dentist", vec![dentist]),
        ("call", vec![dentist]),
        ("before noon", vec![dentist]),
        ("bread", vec![]),
    ];
    for (q, want) in cases {
        assert_eq!(ids(&store, ALICE, &query(q)).await, want, "query {q:?}");
    }
    let pending_milk = ListFilter {
        status: StatusFilter::Pending,
        ..query("milk")
    };
    assert_eq!(ids(&store, ALICE, &pending_milk).await, [milk]);
}

async fn text_query_treats_like_wildcards_literally(store: Arc<dyn TaskStore>) {
    let percent = add(&store, ALICE, task("50% off sale")).await.id;
    let _plain = add(&store, ALICE, task("500 off sale")).await.id;
    let underscore = add(&store, ALICE, task("rename a_b.txt")).await.id;
    let _letter = add(&store, ALICE, task("rename axb.txt")).await.id;
    let backslash = add(&store, ALICE, task(r"clean C:\temp")).await.id;
    let _no_backslash = add(&store, ALICE, task("clean C:temp")).await.id;

    let cases: [(&str, Vec<i64>); 5] = [
        ("50%", vec![percent]),
        ("%", vec![percent]),
        ("a_b", vec![underscore]),
        ("_", vec![underscore]),
        (r"c:\t", vec![backslash]),
    ];
    for (q, want) in cases {
        assert_eq!(ids(&store, ALICE, &query(q)).await, want, "query {q:?}");
    }
}

async fn tag_filter_matches_whole_tags_only(store: Arc<dyn TaskStore>) {
    let tagged = |title: &str, tags: &[&str]| NewTask {
        tags: tags.iter().map(|t| t.to_string()).collect(),
        ..task(title)
    };
    let home_2 = add(&store, ALICE, tagged("a", &["home_2", "urgent"]))
        .await
        .id;
    let home_dash_2 = add(&store, ALICE, tagged("b", &["home-2"])).await.id;
    let _homex2 = add(&store, ALICE, tagged("c", &["homex2"])).await.id;
    let work = add(&store, ALICE, tagged("d", &["work"])).await.id;
    let _homework = add(&store, ALICE, tagged("e", &["homework"])).await.id;
    let _untagged = add(&store, ALICE, task("f")).await.id;

    let cases: [(&str, Vec<i64>); 5] = [
        ("home_2", vec![home_2]),
        ("home-2", vec![home_dash_2]),
        ("urgent", vec![home_2]),
        ("work", vec![work]),
        ("home", vec![]),
    ];
    for (tag, want) in cases {
        let f = ListFilter {
            tag: Some(tag.into()),
            ..filter(StatusFilter::All)
        };
        assert_eq!(ids(&store, ALICE, &f).await, want, "tag {tag:?}");
    }
    let t = store.get(ALICE, home_2).await.unwrap();
    assert_eq!(t.tags, ["home_2", "urgent"], "tags keep their order");
}

async fn due_window_includes_after_and_excludes_before(store: Arc<dyn TaskStore>) {
    let dated = |title: &str, when: &str| NewTask {
        due: Some(due(when)),
        ..task(title)
    };
    let d20 = add(&store, ALICE, dated("20th", "2026-11-20")).await.id;
    let d23 = add(
        &store,
        ALICE,
        dated("23rd 17:00+01", "2026-11-23T17:00:00+01:00"),
    )
    .await
    .id;
    let d24 = add(&store, ALICE, dated("24th", "2026-11-24")).await.id;
    let d25 = add(&store, ALICE, dated("25th", "2026-11-25")).await.id;
    let _undated = add(&store, ALICE, task("undated")).await.id;

    let window = |after: Option<&str>, before: Option<&str>| ListFilter {
        due_after: after.map(instant),
        due_before: before.map(instant),
        ..filter(StatusFilter::All)
    };
    let cases: [(Option<&str>, Option<&str>, Vec<i64>); 5] = [
        (Some("2026-11-23"), Some("2026-11-25"), vec![d23, d24]),
        // due_after is inclusive: a task due exactly then is in.
        (Some("2026-11-24"), None, vec![d24, d25]),
        (
            Some("2026-11-23T16:00:00Z"),
            Some("2026-11-23T16:00:01Z"),
            vec![d23],
        ),
        // due_before is exclusive: a task due exactly then is out.
        (None, Some("2026-11-23T16:00:00Z"), vec![d20]),
        (None, Some("2026-11-20"), vec![]),
    ];
    for (after, before, want) in cases {
        assert_eq!(
            ids(&store, ALICE, &window(after, before)).await,
            want,
            "after {after:?} before {before:?}"
        );
    }
}

async fn lists_show_open_first_then_soonest_due_then_undated(store: Arc<dyn TaskStore>) {
    let mk = |title: &str, when: Option<&str>, priority: Priority| NewTask {
        due: when.map(due),
        priority,
        ..task(title)
    };
    let undated = add(&store, ALICE, mk("undated", None, Priority::Medium))
        .await
        .id;
    let late = add(&store, ALICE, mk("late", Some("2026-11-25"), Priority::Low))
        .await
        .id;
    let soon = add(&store, ALICE, mk("soon", Some("2026-11-23"), Priority::Low))
        .await
        .id;
    let done_soonest = add(
        &store,
        ALICE,
        mk("done", Some("2026-11-01"), Priority::High),
    )
    .await
    .id;
    let mid = add(
        &store,
        ALICE,
        mk("mid", Some("2026-11-24T09:00:00Z"), Priority::Medium),
    )
    .await
    .id;
    let undated_high = add(&store, ALICE, mk("undated high", None, Priority::High))
        .await
        .id;
    let done_undated = add(&store, ALICE, mk("done undated", None, Priority::Medium))
        .await
        .id;
    let same_day_high = add(
        &store,
        ALICE,
        mk("soon, high", Some("2026-11-23"), Priority::High),
    )
    .await
    .id;
    store
        .update(ALICE, done_soonest, &complete())
        .await
        .unwrap();
    store
        .update(ALICE, done_undated, &complete())
        .await
        .unwrap();

    assert_eq!(
        ids(&store, ALICE, &filter(StatusFilter::All)).await,
        [
            same_day_high,
            soon,
            mid,
            late,
            undated_high,
            undated,
            done_soonest,
            done_undated
        ]
    );
    assert_eq!(
        ids(&store, ALICE, &filter(StatusFilter::Pending)).await,
        [same_day_high, soon, mid, late, undated_high, undated]
    );
}

async fn paging_reports_next_offset_until_the_last_page(store: Arc<dyn TaskStore>) {
    for i in 1..=5 {
        add(&store, ALICE, task(&format!("task {i}"))).await;
    }
    let page = |limit: u32, offset: u32| ListFilter {
        limit,
        offset,
        ..filter(StatusFilter::Pending)
    };
    let cases: [(u32, u32, Vec<i64>, Option<u32>); 6] = [
        (2, 0, vec![1, 2], Some(2)),
        (2, 2, vec![3, 4], Some(4)),
        (2, 4, vec![5], None),
        (5, 0, vec![1, 2, 3, 4, 5], None),
        (4, 0, vec![1, 2, 3, 4], Some(4)),
        (2, 9, vec![], None),
    ];
    for (limit, offset, want, next) in cases {
        let p = store.list(ALICE, &page(limit, offset)).await.unwrap();
        let got: Vec<i64> = p.tasks.iter().map(|t| t.id).collect();
        assert_eq!(got, want, "limit {limit} offset {offset}");
        assert_eq!(p.next_offset, next, "limit {limit} offset {offset}");
    }
}

async fn update_changes_each_field_and_leaves_the_rest(store: Arc<dyn TaskStore>) {
    let original = add(
        &store,
        ALICE,
        NewTask {
            description: Some("two litres".into()),
            due: Some(due("2026-11-23")),
            priority: Priority::Low,
            tags: vec!["shopping".into()],
            ..task("Buy milk")
        },
    )
    .await;
    assert_eq!(original.due.as_deref(), Some("2026-11-23"));
    let id = original.id;

    let t = store
        .update(
            ALICE,
            id,
            &TaskPatch {
                title: Some(Title::parse("Buy oat milk").unwrap()),
                ..TaskPatch::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(t.title, "Buy oat milk");
    assert_eq!(t.description.as_deref(), Some("two litres"));
    assert_eq!(t.due.as_deref(), Some("2026-11-23"));
    assert_eq!(t.priority, Priority::Low);
    assert_eq!(t.tags, ["shopping"]);
    assert!(!t.completed);

    let t = store
        .update(
            ALICE,
            id,
            &TaskPatch {
                description: Some(Some("one carton".into())),
                ..TaskPatch::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(t.description.as_deref(), Some("one carton"));
    assert_eq!(t.title, "Buy oat milk");

    let t = store
        .update(
            ALICE,
            id,
            &TaskPatch {
                due: Some(Some(due("2026-11-24T18:30:00+02:00"))),
                ..TaskPatch::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(t.due.as_deref(), Some("2026-11-24T16:30:00Z"));

    let t = store
        .update(
            ALICE,
            id,
            &TaskPatch {
                due: Some(Some(due("2026-12-01"))),
                ..TaskPatch::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(t.due.as_deref(), Some("2026-12-01"), "back to a whole day");

    let t = store
        .update(
            ALICE,
            id,
            &TaskPatch {
                priority: Some(Priority::High),
                ..TaskPatch::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(t.priority, Priority::High);

    let t = store
        .update(
            ALICE,
            id,
            &TaskPatch {
                tags: Some(vec!["errands".into(), "dairy".into()]),
                ..TaskPatch::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(t.tags, ["errands", "dairy"]);

    let t = store
        .update(
            ALICE,
            id,
            &TaskPatch {
                tags: Some(vec![]),
                ..TaskPatch::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(t.tags, Vec::<String>::new());

    let t = store.update(ALICE, id, &complete()).await.unwrap();
    assert!(t.completed);
    assert!(t.completed_at.is_some());

    let expected = Task {
        title: "Buy oat milk".into(),
        description: Some("one carton".into()),
        due: Some("2026-12-01".into()),
        priority: Priority::High,
        tags: vec![],
        completed: true,
        ..t.clone()
    };
    assert_eq!(t, expected);
    assert_eq!(t.created_at, original.created_at);
    assert_eq!(
        store.get(ALICE, id).await.unwrap(),
        t,
        "get shows the change"
    );
}

async fn update_clears_description_and_due_with_explicit_none(store: Arc<dyn TaskStore>) {
    let id = add(
        &store,
        ALICE,
        NewTask {
            description: Some("details".into()),
            due: Some(due("2026-11-23T08:00:00Z")),
            ..task("clear me")
        },
    )
    .await
    .id;
    let t = store
        .update(
            ALICE,
            id,
            &TaskPatch {
                description: Some(None),
                ..TaskPatch::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(t.description, None);
    assert_eq!(
        t.due.as_deref(),
        Some("2026-11-23T08:00:00Z"),
        "due untouched"
    );

    let t = store
        .update(
            ALICE,
            id,
            &TaskPatch {
                due: Some(None),
                ..TaskPatch::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(t.due, None);
    assert_eq!(t.title, "clear me");
    let stored = store.get(ALICE, id).await.unwrap();
    assert_eq!((stored.description, stored.due), (None, None));
    // An undated task is no longer in any due window.
    let f = ListFilter {
        due_before: Some(instant("2030-01-01")),
        ..filter(StatusFilter::All)
    };
    assert_eq!(ids(&store, ALICE, &f).await, Vec::<i64>::new());
}

async fn reopening_clears_completed_at(store: Arc<dyn TaskStore>) {
    let id = add(&store, ALICE, task("reopen me")).await.id;
    let done = store.update(ALICE, id, &complete()).await.unwrap();
    assert!(done.completed);
    assert!(done.completed_at.is_some());

    let reopen = TaskPatch {
        completed: Some(false),
        ..TaskPatch::default()
    };
    let open = store.update(ALICE, id, &reopen).await.unwrap();
    assert!(!open.completed);
    assert_eq!(open.completed_at, None);
    assert_eq!(
        ids(&store, ALICE, &filter(StatusFilter::Pending)).await,
        [id]
    );
    assert_eq!(
        ids(&store, ALICE, &filter(StatusFilter::Completed)).await,
        Vec::<i64>::new()
    );

    // Completing again starts a new completion time.
    let again = store.update(ALICE, id, &complete()).await.unwrap();
    assert!(again.completed_at.unwrap() > done.completed_at.unwrap());
}

async fn completing_twice_keeps_the_first_completed_at(store: Arc<dyn TaskStore>) {
    let id = add(&store, ALICE, task("once")).await.id;
    let first = store.update(ALICE, id, &complete()).await.unwrap();
    let second = store.update(ALICE, id, &complete()).await.unwrap();
    assert!(second.completed);
    assert_eq!(second.completed_at, first.completed_at);
    assert!(second.updated_at > first.updated_at);

    // Changing another field of a done task keeps its completion time too.
    let renamed = store
        .update(
            ALICE,
            id,
            &TaskPatch {
                title: Some(Title::parse("once, renamed").unwrap()),
                ..TaskPatch::default()
            },
        )
        .await
        .unwrap();
    assert!(renamed.completed);
    assert_eq!(renamed.completed_at, first.completed_at);
}

async fn soft_delete_hides_a_task_until_it_is_restored(store: Arc<dyn TaskStore>) {
    let keep = add(&store, ALICE, task("keep")).await.id;
    let original = add(&store, ALICE, task("trash me")).await;
    let id = original.id;

    let deleted = store.delete(ALICE, id).await.unwrap();
    assert!(deleted.deleted_at.is_some());
    assert_eq!(deleted.title, "trash me");
    assert_eq!(deleted.updated_at, deleted.deleted_at.unwrap());

    assert_not_found(store.get(ALICE, id).await, "get of a deleted task");
    assert_not_found(
        store.update(ALICE, id, &complete()).await,
        "update of a deleted task",
    );
    assert_not_found(store.delete(ALICE, id).await, "second delete");
    assert_eq!(
        ids(&store, ALICE, &filter(StatusFilter::Pending)).await,
        [keep]
    );
    assert_eq!(ids(&store, ALICE, &filter(StatusFilter::All)).await, [keep]);
    assert_eq!(
        ids(&store, ALICE, &filter(StatusFilter::Deleted)).await,
        [id]
    );
    assert!(
        store
            .open_tasks(ALICE, 10)
            .await
            .unwrap()
            .iter()
            .all(|t| t.id != id)
    );

    let restored = store.restore(ALICE, id).await.unwrap();
    assert_eq!(restored.deleted_at, None);
    assert_eq!(restored.title, "trash me");
    assert_eq!(restored.created_at, original.created_at);
    assert!(restored.updated_at > deleted.updated_at);
    assert_eq!(
        ids(&store, ALICE, &filter(StatusFilter::Pending)).await,
        [keep, id]
    );
    assert_eq!(
        ids(&store, ALICE, &filter(StatusFilter::Deleted)).await,
        Vec::<i64>::new()
    );
    assert_eq!(store.get(ALICE, id).await.unwrap(), restored);
    assert_not_found(store.restore(ALICE, id).await, "restore of a live task");
    assert_not_found(store.restore(ALICE, 99).await, "restore of no task");
}

async fn concurrent_adds_for_one_user_get_distinct_numbers(store: Arc<dyn TaskStore>) {
    let mut set = tokio::task::JoinSet::new();
    for i in 0..20 {
        let s = store.clone();
        set.spawn(async move { (ALICE, s.add(ALICE, task(&format!("alice {i}"))).await) });
    }
    for i in 0..5 {
        let s = store.clone();
        set.spawn(async move { (BOB, s.add(BOB, task(&format!("bob {i}"))).await) });
    }
    let (mut alice, mut bob) = (Vec::new(), Vec::new());
    while let Some(joined) = set.join_next().await {
        let (user, result) = joined.unwrap();
        let t = result.unwrap_or_else(|e| panic!("a concurrent add for {user} failed: {e:?}"));
        let ids = if user == ALICE { &mut alice } else { &mut bob };
        ids.push(t.id);
    }
    alice.sort_unstable();
    bob.sort_unstable();
    assert_eq!(alice, (1..=20).collect::<Vec<i64>>());
    assert_eq!(bob, (1..=5).collect::<Vec<i64>>());
    assert_eq!(add(&store, ALICE, task("after")).await.id, 21);
}

async fn unicode_text_round_trips(store: Arc<dyn TaskStore>) {
    let cases = [
        ("Купить молоко 🥛", "две бутылки\nи хлеб", "покупки"),
        (
            "日本語のタスク",
            "説明 — «quotes» and ‘apostrophes’",
            "仕事",
        ),
        (
            "Café crème, naïve façade",
            "Ünïcödé 👩‍👩‍👧 family emoji",
            "über",
        ),
        ("עברית ومرحبا", "right-to-left ‏mark", "bidi"),
    ];
    for (title, description, tag) in cases {
        let added = add(
            &store,
            ALICE,
            NewTask {
                description: Some(description.into()),
                tags: vec![tag.into()],
                ..task(title)
            },
        )
        .await;
        assert_eq!(added.title, title);
        let got = store.get(ALICE, added.id).await.unwrap();
        assert_eq!(got, added);
        assert_eq!(got.description.as_deref(), Some(description));
        assert_eq!(got.tags, [tag]);
        let by_tag = ListFilter {
            tag: Some(tag.into()),
            ..filter(StatusFilter::All)
        };
        assert_eq!(ids(&store, ALICE, &by_tag).await, [added.id], "tag {tag:?}");
    }
    // Non-ASCII text is found whatever its case, on both stores.
    assert_eq!(ids(&store, ALICE, &query("молоко")).await, [1]);
    assert_eq!(ids(&store, ALICE, &query("МОЛОКО")).await, [1]);
    assert_eq!(ids(&store, ALICE, &query("crème")).await, [3]);
    assert_eq!(ids(&store, ALICE, &query("ÜNÏCÖDÉ")).await, [3]);
    // Renaming moves the search text with the title.
    let patch = TaskPatch {
        title: Some(Title::parse("ÉCOLE: inscription").unwrap()),
        ..TaskPatch::default()
    };
    store.update(ALICE, 1, &patch).await.unwrap();
    assert_eq!(ids(&store, ALICE, &query("école")).await, [1]);
    assert_eq!(
        ids(&store, ALICE, &query("молоко")).await,
        Vec::<i64>::new()
    );
    assert_eq!(
        ids(&store, ALICE, &query("бутылки")).await,
        [1],
        "the description still counts"
    );
}

async fn timestamps_round_trip_exactly(store: Arc<dyn TaskStore>) {
    let before = Utc::now();
    let added = add(
        &store,
        ALICE,
        NewTask {
            due: Some(due("2026-11-23T17:45:10+01:00")),
            ..task("timed")
        },
    )
    .await;
    let after = Utc::now();
    assert_eq!(added.created_at, added.updated_at);
    assert!(
        before - chrono::Duration::milliseconds(1) <= added.created_at && added.created_at <= after,
        "created_at {} is the time of the add ({before}..{after})",
        added.created_at
    );
    assert_eq!(added.due.as_deref(), Some("2026-11-23T16:45:10Z"));

    // Read back through every path, the values are identical to the microsecond.
    assert_eq!(store.get(ALICE, added.id).await.unwrap(), added);
    let listed = store.list(ALICE, &filter(StatusFilter::All)).await.unwrap();
    assert_eq!(listed.tasks, std::slice::from_ref(&added));
    assert_eq!(
        store.open_tasks(ALICE, 5).await.unwrap(),
        std::slice::from_ref(&added)
    );

    let changed = store
        .update(
            ALICE,
            added.id,
            &TaskPatch {
                priority: Some(Priority::High),
                ..TaskPatch::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(changed.created_at, added.created_at);
    assert!(changed.updated_at > added.updated_at);
    assert_eq!(store.get(ALICE, added.id).await.unwrap(), changed);

    let done = store.update(ALICE, added.id, &complete()).await.unwrap();
    assert_eq!(done.completed_at, Some(done.updated_at));
    assert_eq!(store.get(ALICE, added.id).await.unwrap(), done);
}

async fn open_tasks_are_open_live_and_soonest_first(store: Arc<dyn TaskStore>) {
    let mk = |title: &str, when: Option<&str>| NewTask {
        due: when.map(due),
        ..task(title)
    };
    let undated = add(&store, ALICE, mk("undated", None)).await.id;
    let later = add(&store, ALICE, mk("later", Some("2026-12-01"))).await.id;
    let sooner = add(&store, ALICE, mk("sooner", Some("2026-11-24")))
        .await
        .id;
    let done = add(&store, ALICE, mk("done", Some("2026-11-01"))).await.id;
    let trashed = add(&store, ALICE, mk("trashed", Some("2026-11-02")))
        .await
        .id;
    store.update(ALICE, done, &complete()).await.unwrap();
    store.delete(ALICE, trashed).await.unwrap();
    add(&store, BOB, mk("bob's", Some("2026-10-01"))).await;

    let open: Vec<i64> = store
        .open_tasks(ALICE, 10)
        .await
        .unwrap()
        .iter()
        .map(|t| t.id)
        .collect();
    assert_eq!(open, [sooner, later, undated]);
    let two: Vec<i64> = store
        .open_tasks(ALICE, 2)
        .await
        .unwrap()
        .iter()
        .map(|t| t.id)
        .collect();
    assert_eq!(two, [sooner, later]);
}

// ---------------------------------------------------------------- repeats and subtasks

fn rule(phrase: &str, due_raw: Option<&str>, tz: &str) -> (todo_core::tasks::Repeat, Due) {
    todo_core::tasks::repeat::parse(phrase)
        .unwrap()
        .resolve(due_raw.map(due), tz.parse().unwrap(), Utc::now())
        .unwrap()
}

fn repeating(title: &str, phrase: &str, due_raw: &str, tz: &str) -> NewTask {
    let (repeat, d) = rule(phrase, Some(due_raw), tz);
    NewTask {
        due: Some(d),
        repeat: Some(repeat),
        ..task(title)
    }
}

fn sub(title: &str, parent: i64) -> NewTask {
    NewTask {
        parent: Some(parent),
        ..task(title)
    }
}

#[track_caller]
fn assert_refused<T: std::fmt::Debug>(r: Result<T, StoreError>, want: &str) {
    match r {
        Err(StoreError::Refused(m)) => assert!(m.contains(want), "{m:?} lacks {want:?}"),
        other => panic!("expected a refusal saying {want:?}, got {other:?}"),
    }
}

async fn repeating_task_completes_into_its_next_occurrence_and_records_the_done_one(
    store: Arc<dyn TaskStore>,
) {
    // Monday 7 January 2030, a whole day.
    let t = add(
        &store,
        ALICE,
        repeating("Water plants", "every monday", "2030-01-07", "Europe/Paris"),
    )
    .await;
    assert_eq!(t.repeat.as_ref().unwrap().rule, "FREQ=WEEKLY;BYDAY=MO");
    assert_eq!(t.repeat.as_ref().unwrap().text, "every Monday");
    assert!(t.one_line().contains("↻ every Monday"), "{}", t.one_line());
    let next = store.update(ALICE, t.id, &complete()).await.unwrap();
    // Same number, still open, one week on, rule kept.
    assert_eq!(next.id, t.id);
    assert!(!next.completed && next.completed_at.is_none());
    assert_eq!(next.due.as_deref(), Some("2030-01-14"));
    assert_eq!(next.repeat, t.repeat);
    // The done occurrence is a completed task of its own, without the rule.
    let done = store
        .list(ALICE, &filter(StatusFilter::Completed))
        .await
        .unwrap()
        .tasks;
    assert_eq!(done.len(), 1);
    assert_eq!(done[0].title, "Water plants");
    assert_eq!(done[0].due.as_deref(), Some("2030-01-07"));
    assert!(done[0].completed && done[0].completed_at.is_some());
    assert!(done[0].repeat.is_none() && done[0].parent_id.is_none());
    assert!(done[0].id > t.id);
    // And again: the next week.
    let again = store.update(ALICE, t.id, &complete()).await.unwrap();
    assert_eq!(again.due.as_deref(), Some("2030-01-21"));
    assert_eq!(
        ids(&store, ALICE, &filter(StatusFilter::Pending)).await,
        vec![t.id]
    );
    assert_eq!(
        ids(&store, ALICE, &filter(StatusFilter::Completed))
            .await
            .len(),
        2
    );
}

async fn a_repeating_series_that_has_ended_completes_like_any_task(store: Arc<dyn TaskStore>) {
    let t = add(
        &store,
        ALICE,
        repeating("Pills", "every day 2 times", "2030-01-01", "UTC"),
    )
    .await;
    assert_eq!(
        t.repeat.as_ref().unwrap().text,
        "every day until 2030-01-02"
    );
    let second = store.update(ALICE, t.id, &complete()).await.unwrap();
    assert_eq!(second.due.as_deref(), Some("2030-01-02"));
    assert!(!second.completed);
    let last = store.update(ALICE, t.id, &complete()).await.unwrap();
    assert!(last.completed, "the last occurrence completes the task");
    assert_eq!(last.due.as_deref(), Some("2030-01-02"));
    // One recorded occurrence plus the task itself.
    assert_eq!(
        ids(&store, ALICE, &filter(StatusFilter::Completed))
            .await
            .len(),
        2
    );
}

async fn every_day_at_nine_stays_at_nine_across_daylight_saving(store: Arc<dyn TaskStore>) {
    // Saturday 27 March 2027, 09:00 in Paris (UTC+1); summer time starts that night.
    let t = add(
        &store,
        ALICE,
        repeating(
            "Standup",
            "every day",
            "2027-03-27T09:00:00+01:00",
            "Europe/Paris",
        ),
    )
    .await;
    assert_eq!(t.due.as_deref(), Some("2027-03-27T08:00:00Z"));
    let next = store.update(ALICE, t.id, &complete()).await.unwrap();
    // Sunday 09:00 in Paris is now 07:00 UTC.
    assert_eq!(next.due.as_deref(), Some("2027-03-28T07:00:00Z"));
    // The same rule read in New York keeps New York's 09:00 (UTC-5, then UTC-4 on 14 March).
    let ny = add(
        &store,
        ALICE,
        repeating(
            "Call",
            "every day",
            "2027-03-13T09:00:00-05:00",
            "America/New_York",
        ),
    )
    .await;
    let next = store.update(ALICE, ny.id, &complete()).await.unwrap();
    assert_eq!(next.due.as_deref(), Some("2027-03-14T13:00:00Z"));
}

async fn editing_due_or_title_keeps_the_rule_and_stop_removes_it(store: Arc<dyn TaskStore>) {
    let t = add(
        &store,
        ALICE,
        repeating("Bins", "every 2 weeks on thursday", "2030-01-03", "UTC"),
    )
    .await;
    let moved = store
        .update(
            ALICE,
            t.id,
            &TaskPatch {
                due: Some(Some(due("2030-01-10"))),
                title: Some(Title::parse("Bins out").unwrap()),
                ..TaskPatch::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(
        moved.repeat, t.repeat,
        "the rule survives a new due date and title"
    );
    assert_eq!(moved.due.as_deref(), Some("2030-01-10"));
    // The next occurrence counts from the new due date.
    let next = store.update(ALICE, t.id, &complete()).await.unwrap();
    assert_eq!(next.due.as_deref(), Some("2030-01-24"));
    let stopped = store
        .update(
            ALICE,
            t.id,
            &TaskPatch {
                repeat: Some(None),
                ..TaskPatch::default()
            },
        )
        .await
        .unwrap();
    assert!(stopped.repeat.is_none());
    assert_eq!(stopped.due.as_deref(), Some("2030-01-24"));
    let done = store.update(ALICE, t.id, &complete()).await.unwrap();
    assert!(done.completed, "without a rule, completing completes");
    // A rule set later on an existing task.
    let plain = add(
        &store,
        ALICE,
        NewTask {
            due: Some(due("2030-02-01")),
            ..task("Rent")
        },
    )
    .await;
    let (r, _) = rule("every month", Some("2030-02-01"), "UTC");
    let ruled = store
        .update(
            ALICE,
            plain.id,
            &TaskPatch {
                repeat: Some(Some(r.clone())),
                ..TaskPatch::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(ruled.repeat, Some(r));
    assert_eq!(
        store
            .update(ALICE, plain.id, &complete())
            .await
            .unwrap()
            .due
            .as_deref(),
        Some("2030-03-01")
    );
}

async fn a_repeating_task_cannot_lose_its_due_date(store: Arc<dyn TaskStore>) {
    let t = add(
        &store,
        ALICE,
        repeating("Bins", "every week", "2030-01-03", "UTC"),
    )
    .await;
    assert_refused(
        store
            .update(
                ALICE,
                t.id,
                &TaskPatch {
                    due: Some(None),
                    ..TaskPatch::default()
                },
            )
            .await,
        "needs a due date",
    );
    assert_refused(
        store
            .add(
                ALICE,
                NewTask {
                    due: None,
                    ..repeating("X", "every week", "2030-01-03", "UTC")
                },
            )
            .await,
        "needs a due date",
    );
    // Clearing both at once is fine.
    let cleared = store
        .update(
            ALICE,
            t.id,
            &TaskPatch {
                due: Some(None),
                repeat: Some(None),
                ..TaskPatch::default()
            },
        )
        .await
        .unwrap();
    assert!(cleared.due.is_none() && cleared.repeat.is_none());
}

async fn subtasks_are_added_listed_and_hidden(store: Arc<dyn TaskStore>) {
    let trip = add(&store, ALICE, task("Plan trip")).await;
    let other = add(&store, ALICE, task("Buy milk")).await;
    let a = add(&store, ALICE, sub("Book flights", trip.id)).await;
    let b = add(&store, ALICE, sub("Book hotel", trip.id)).await;
    assert_eq!(a.parent_id, Some(trip.id));
    assert!(
        a.one_line().contains(&format!("subtask of #{}", trip.id)),
        "{}",
        a.one_line()
    );
    let of_trip = ListFilter {
        parent: Some(trip.id),
        ..filter(StatusFilter::All)
    };
    assert_eq!(ids(&store, ALICE, &of_trip).await, vec![a.id, b.id]);
    let top = ListFilter {
        hide_subtasks: true,
        ..filter(StatusFilter::All)
    };
    let mut top_ids = ids(&store, ALICE, &top).await;
    top_ids.sort();
    assert_eq!(top_ids, vec![trip.id, other.id]);
    assert_eq!(
        ids(&store, ALICE, &filter(StatusFilter::All)).await.len(),
        4
    );
    // Another user sees none of them.
    assert!(ids(&store, BOB, &of_trip).await.is_empty());
}

async fn a_parent_must_be_a_live_top_level_task_of_the_same_user(store: Arc<dyn TaskStore>) {
    let bobs = add(&store, BOB, task("Bob's")).await;
    let mine = add(&store, ALICE, task("Mine")).await;
    // Bob's task number means nothing to Alice; an unused number neither.
    let _ = add(&store, ALICE, task("filler")).await;
    assert_refused(store.add(ALICE, sub("x", 99)).await, "No task #99");
    assert_refused(
        store.add(BOB, sub("x", mine.id + 1)).await,
        &format!("No task #{}", mine.id + 1),
    );
    assert_eq!(
        ids(&store, BOB, &filter(StatusFilter::All)).await,
        vec![bobs.id]
    );
    let child = add(&store, ALICE, sub("child", mine.id)).await;
    assert_refused(
        store.add(ALICE, sub("grandchild", child.id)).await,
        "one level",
    );
    let gone = add(&store, ALICE, task("gone")).await;
    store.delete(ALICE, gone.id).await.unwrap();
    assert_refused(
        store.add(ALICE, sub("x", gone.id)).await,
        &format!("No task #{}", gone.id),
    );
    // Nothing was added by the refusals.
    assert_eq!(
        ids(&store, ALICE, &filter(StatusFilter::All)).await.len(),
        3
    );
}

async fn repeats_and_subtasks_do_not_mix(store: Arc<dyn TaskStore>) {
    let weekly = add(
        &store,
        ALICE,
        repeating("Review", "every friday", "2030-01-04", "UTC"),
    )
    .await;
    assert_refused(store.add(ALICE, sub("x", weekly.id)).await, "repeats");
    let parent = add(&store, ALICE, task("Parent")).await;
    assert_refused(
        store
            .add(
                ALICE,
                NewTask {
                    parent: Some(parent.id),
                    ..repeating("x", "every day", "2030-01-04", "UTC")
                },
            )
            .await,
        "cannot repeat",
    );
    let child = add(&store, ALICE, sub("child", parent.id)).await;
    let (r, _) = rule("every day", Some("2030-01-04"), "UTC");
    let with_rule = TaskPatch {
        repeat: Some(Some(r)),
        due: Some(Some(due("2030-01-04"))),
        ..TaskPatch::default()
    };
    assert_refused(
        store.update(ALICE, parent.id, &with_rule).await,
        "has subtasks",
    );
    assert_refused(
        store.update(ALICE, child.id, &with_rule).await,
        "cannot repeat",
    );
}

async fn tasks_move_under_a_parent_and_back(store: Arc<dyn TaskStore>) {
    let p = add(&store, ALICE, task("Parent")).await;
    let t = add(&store, ALICE, task("Loose")).await;
    let moved = store
        .update(
            ALICE,
            t.id,
            &TaskPatch {
                parent: Some(Some(p.id)),
                ..TaskPatch::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(moved.parent_id, Some(p.id));
    // A task with subtasks cannot go under another; nor under itself.
    let q = add(&store, ALICE, task("Other")).await;
    assert_refused(
        store
            .update(
                ALICE,
                p.id,
                &TaskPatch {
                    parent: Some(Some(q.id)),
                    ..TaskPatch::default()
                },
            )
            .await,
        "subtasks of its own",
    );
    assert_refused(
        store
            .update(
                ALICE,
                q.id,
                &TaskPatch {
                    parent: Some(Some(q.id)),
                    ..TaskPatch::default()
                },
            )
            .await,
        "own subtask",
    );
    // Bob cannot move Alice's task (it is not found for him).
    assert_not_found(
        store
            .update(
                BOB,
                t.id,
                &TaskPatch {
                    parent: Some(Some(p.id)),
                    ..TaskPatch::default()
                },
            )
            .await,
        "another user's task",
    );
    let top = store
        .update(
            ALICE,
            t.id,
            &TaskPatch {
                parent: Some(None),
                ..TaskPatch::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(top.parent_id, None);
}

async fn completing_a_parent_completes_its_open_subtasks(store: Arc<dyn TaskStore>) {
    let p = add(&store, ALICE, task("Move house")).await;
    let a = add(&store, ALICE, sub("Pack", p.id)).await;
    let b = add(&store, ALICE, sub("Clean", p.id)).await;
    let b_done = store.update(ALICE, b.id, &complete()).await.unwrap();
    let unrelated = add(&store, ALICE, task("Unrelated")).await;
    let done = store.update(ALICE, p.id, &complete()).await.unwrap();
    assert!(done.completed);
    let a_now = store.get(ALICE, a.id).await.unwrap();
    assert!(a_now.completed && a_now.completed_at == done.completed_at);
    // An already completed subtask keeps its own completion time.
    assert_eq!(
        store.get(ALICE, b.id).await.unwrap().completed_at,
        b_done.completed_at
    );
    assert!(!store.get(ALICE, unrelated.id).await.unwrap().completed);
    // Re-opening the parent leaves the subtasks as they are.
    store
        .update(
            ALICE,
            p.id,
            &TaskPatch {
                completed: Some(false),
                ..TaskPatch::default()
            },
        )
        .await
        .unwrap();
    assert!(store.get(ALICE, a.id).await.unwrap().completed);
}

async fn deleting_a_parent_trashes_its_subtasks_and_restoring_brings_them_back(
    store: Arc<dyn TaskStore>,
) {
    let p = add(&store, ALICE, task("Party")).await;
    let a = add(&store, ALICE, sub("Invite", p.id)).await;
    let b = add(&store, ALICE, sub("Cake", p.id)).await;
    // Trashed on its own before: stays in the trash when the parent comes back.
    store.delete(ALICE, b.id).await.unwrap();
    store.delete(ALICE, p.id).await.unwrap();
    assert_not_found(
        store.get(ALICE, a.id).await,
        "a subtask of a trashed parent",
    );
    let mut trash = ids(&store, ALICE, &filter(StatusFilter::Deleted)).await;
    trash.sort();
    assert_eq!(trash, vec![p.id, a.id, b.id]);
    // A subtask does not come back before its parent.
    assert_refused(
        store.restore(ALICE, a.id).await,
        &format!("restore #{} first", p.id),
    );
    store.restore(ALICE, p.id).await.unwrap();
    assert!(
        store.get(ALICE, a.id).await.is_ok(),
        "deleted with the parent: restored with it"
    );
    assert_not_found(
        store.get(ALICE, b.id).await,
        "deleted before the parent: still in the trash",
    );
    store.restore(ALICE, b.id).await.unwrap();
}
