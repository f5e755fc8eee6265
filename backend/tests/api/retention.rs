//! Retention: idempotency records expire (24 h by default) and trashed tasks and audit rows
//! are purged after their configured age; everything younger, and every live task, stays.

use chrono::{Duration, Utc};
use todo_backend::retention::{Retention, Swept, sweep};
use todo_core::db::Database;
use todo_core::tasks::{NewTask, Title};
use todo_test_support::{Kind, TestDb};

/// Runs one statement with a timestamp and a text parameter on either database.
async fn exec(db: &Database, sql: &'static str, at: chrono::DateTime<Utc>, text: &str) {
    let r = match db {
        Database::Postgres(p) => sqlx::query(sql)
            .bind(at)
            .bind(text)
            .execute(p)
            .await
            .map(|_| ()),
        Database::Sqlite(p) => sqlx::query(sql)
            .bind(at)
            .bind(text)
            .execute(p)
            .await
            .map(|_| ()),
    };
    r.unwrap_or_else(|e| panic!("{sql}: {e}"));
}

async fn count(db: &Database, sql: &'static str) -> i64 {
    match db {
        Database::Postgres(p) => sqlx::query_scalar(sql).fetch_one(p).await,
        Database::Sqlite(p) => sqlx::query_scalar(sql).fetch_one(p).await,
    }
    .unwrap()
}

async fn expired_records_are_swept_and_the_rest_kept(kind: Kind) {
    let Some(t) = TestDb::new(kind).await.unwrap() else {
        return;
    };
    let db = &t.db;
    let now = Utc::now();
    for (key, age) in [("old", Duration::hours(25)), ("fresh", Duration::hours(23))] {
        exec(
            db,
            "INSERT INTO idempotency_keys (user_id, key, request_hash, state, created_at, updated_at) \
             VALUES ('alice', $2, 'h', 'done', $1, $1)",
            now - age,
            key,
        )
        .await;
    }
    for (tool, age) in [("old", Duration::days(91)), ("fresh", Duration::days(89))] {
        exec(
            db,
            "INSERT INTO tool_executions (user_id, tool, arguments, result, is_error, duration_ms, created_at) \
             VALUES ('alice', $2, '{}', '{}', FALSE, 1, $1)",
            now - age,
            tool,
        )
        .await;
    }
    let tasks = db.task_store();
    let mut ids = Vec::new();
    for title in ["trashed long ago", "trashed lately", "live and old"] {
        let task = tasks
            .add(
                "alice",
                NewTask {
                    title: Title::parse(title).unwrap(),
                    parent: None,
                    repeat: None,
                    description: None,
                    due: None,
                    priority: Default::default(),
                    tags: vec![],
                },
            )
            .await
            .unwrap();
        ids.push(task.id);
    }
    tasks.delete("alice", ids[0]).await.unwrap();
    tasks.delete("alice", ids[1]).await.unwrap();
    exec(
        db,
        "UPDATE tasks SET deleted_at = $1 WHERE title = $2",
        now - Duration::days(31),
        "trashed long ago",
    )
    .await;
    exec(
        db,
        "UPDATE tasks SET created_at = $1 WHERE title = $2",
        now - Duration::days(400),
        "live and old",
    )
    .await;

    let swept = sweep(db, &Retention::default(), now).await.unwrap();
    assert_eq!(
        swept,
        Swept {
            idempotency: 1,
            trash: 1,
            audit: 1
        }
    );
    assert_eq!(
        count(
            db,
            "SELECT COUNT(*) FROM idempotency_keys WHERE key = 'fresh'"
        )
        .await,
        1
    );
    assert_eq!(count(db, "SELECT COUNT(*) FROM idempotency_keys").await, 1);
    assert_eq!(
        count(
            db,
            "SELECT COUNT(*) FROM tool_executions WHERE tool = 'fresh'"
        )
        .await,
        1
    );
    assert_eq!(count(db, "SELECT COUNT(*) FROM tool_executions").await, 1);
    assert_eq!(count(db, "SELECT COUNT(*) FROM tasks").await, 2);
    assert_eq!(
        count(
            db,
            "SELECT COUNT(*) FROM tasks WHERE title = 'trashed long ago'"
        )
        .await,
        0
    );

    // Zero keeps trash and audit forever.
    let forever = Retention {
        trash: None,
        audit: None,
        ..Retention::default()
    };
    let later = now + Duration::days(3650);
    let swept = sweep(db, &forever, later).await.unwrap();
    assert_eq!((swept.trash, swept.audit), (0, 0));
    assert_eq!(swept.idempotency, 1, "idempotency records always expire");
    t.cleanup().await;
}

todo_test_support::on_both_databases!(expired_records_are_swept_and_the_rest_kept);

/// The TTL from the settings reaches the chat endpoint's lookup: with a 2 h TTL, an answered
/// key whose record was last touched 1 h ago replays without calling the model, and one
/// touched 3 h ago (not yet swept) runs a new turn. Timestamps are moved, not waited for.
async fn an_expired_key_runs_a_new_turn_before_any_sweep(kind: Kind) {
    use crate::helpers::*;
    use serde_json::{Value, json};

    let o = Options {
        retention: Retention {
            idempotency_ttl: std::time::Duration::from_secs(2 * 3600),
            ..Retention::default()
        },
        ..Options::default()
    };
    let Some(app) = spawn_app_with(kind, o).await else {
        eprintln!("SKIPPED: no {kind:?} database for the idempotency TTL test");
        return;
    };
    app.llm_responds(Script::new(&[], "Hello.")).await;
    let db = &app.db.as_ref().expect("database").db;
    let body = json!({"message": "hi"});
    let send = || async {
        let r = app.chat_with_key("alice", "key-1", body.clone()).await;
        assert_eq!(r.status(), 200);
        let replayed = r.headers().get("idempotent-replayed").is_some();
        let answer: Value = r.json().await.unwrap();
        (
            replayed,
            answer["conversation_id"].as_str().unwrap().to_string(),
        )
    };
    let backdate = |age: Duration| {
        exec(
            db,
            "UPDATE idempotency_keys SET updated_at = $1 WHERE key = $2",
            Utc::now() - age,
            "key-1",
        )
    };
    let (replayed, first) = send().await;
    assert!(!replayed);
    assert_eq!(app.llm_requests().await.len(), 1);

    backdate(Duration::hours(1)).await;
    let (replayed, again) = send().await;
    assert!(replayed, "within the TTL the stored answer is sent again");
    assert_eq!(again, first);
    assert_eq!(app.llm_requests().await.len(), 1, "a replay calls no model");

    backdate(Duration::hours(3)).await;
    let (replayed, next) = send().await;
    assert!(!replayed, "past the TTL the request is new");
    assert_ne!(next, first, "a new turn, in a new conversation");
    assert_eq!(app.llm_requests().await.len(), 2);
    // And the new answer is what the key replays from now on.
    let (replayed, last) = send().await;
    assert!(replayed);
    assert_eq!(last, next);
    assert_eq!(app.llm_requests().await.len(), 2);
    app.cleanup().await;
}

todo_test_support::on_both_databases!(an_expired_key_runs_a_new_turn_before_any_sweep);
