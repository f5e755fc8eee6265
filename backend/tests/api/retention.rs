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
