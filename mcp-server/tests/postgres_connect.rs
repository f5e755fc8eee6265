//! Connecting to databases as deployments do: over TLS, to a server that is not there,
//! and with several replicas migrating one fresh database at the same moment.
//!
//! PostgreSQL tests use `DATABASE_URL` (and `TEST_PG_TLS_URL` for TLS), which
//! `scripts/test.sh` sets up; without them they report SKIPPED, and fail in CI.

use std::time::{Duration, Instant};

use anyhow::{Context, ensure};
use sqlx::Connection;
use todo_core::db::{Database, DbOptions};
use todo_test_support::{Kind, TestDb, skip};

fn pg_pool(db: &Database) -> anyhow::Result<&sqlx::PgPool> {
    match db {
        Database::Postgres(p) => Ok(p),
        Database::Sqlite(_) => anyhow::bail!("expected a PostgreSQL database"),
    }
}

/// Whether this session's connection to the server is encrypted, as the server sees it.
async fn session_uses_tls(url: &str) -> anyhow::Result<bool> {
    let opts = DbOptions {
        max_connections: 1,
        connect_retry_for: Duration::from_secs(2),
        ..DbOptions::default()
    };
    let db = Database::connect(Some(url), &opts).await?;
    let ssl =
        sqlx::query_scalar::<_, bool>("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
            .fetch_one(pg_pool(&db)?)
            .await
            .context("reading pg_stat_ssl");
    db.close().await;
    ssl
}

#[tokio::test]
async fn tls_connections_are_really_encrypted() {
    let Ok(tls_url) = std::env::var("TEST_PG_TLS_URL") else {
        skip(
            "needs TEST_PG_TLS_URL, a PostgreSQL URL with sslmode=require (scripts/test.sh sets it)",
        );
        return;
    };
    assert!(
        session_uses_tls(&tls_url).await.unwrap(),
        "the server reports an unencrypted session for {tls_url}"
    );

    // The same server without TLS must say so, or the check above proves nothing.
    let plain = tls_url.replace("sslmode=require", "sslmode=disable");
    assert_ne!(
        plain, tls_url,
        "TEST_PG_TLS_URL should carry sslmode=require"
    );
    assert!(
        !session_uses_tls(&plain).await.unwrap(),
        "an sslmode=disable session reported TLS"
    );
}

#[tokio::test]
async fn an_absent_database_fails_after_retrying_without_leaking_the_password() {
    // A port that was free a moment ago: nothing listens there.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let url = format!("postgres://u:secret@127.0.0.1:{port}/x");
    let opts = DbOptions {
        connect_retry_for: Duration::from_millis(800),
        ..DbOptions::default()
    };
    let started = Instant::now();
    let result = tokio::time::timeout(
        Duration::from_secs(30),
        Database::connect(Some(&url), &opts),
    )
    .await
    .expect("connect must give up on its own, within its retry window");
    let elapsed = started.elapsed();
    let err = result.expect_err("nothing listens there, so connecting must fail");

    let shown = format!("{err:#}");
    let debug = format!("{err:?}");
    assert!(shown.contains("cannot connect to the database"), "{shown}");
    assert!(!shown.contains("secret"), "password leaked: {shown}");
    assert!(!debug.contains("secret"), "password leaked: {debug}");
    // Giving up at once would mean no retry at all (db.rs waits 200 ms before its first).
    assert!(
        elapsed >= Duration::from_millis(200),
        "no retry: {elapsed:?}"
    );
    // sqlx's pool itself keeps retrying a refused connection until `acquire_timeout`, so
    // one attempt can last that long; past the retry window plus one attempt is a hang.
    let bound = opts.connect_retry_for + opts.acquire_timeout + Duration::from_secs(2);
    assert!(
        elapsed < bound,
        "took {elapsed:?}, more than {bound:?}: {shown}"
    );
}

async fn tasks_table_exists(db: &Database) -> anyhow::Result<bool> {
    Ok(
        sqlx::query_scalar::<_, bool>("SELECT to_regclass('public.tasks') IS NOT NULL")
            .fetch_one(pg_pool(db)?)
            .await?,
    )
}

#[tokio::test]
async fn postgres_migrations_go_down_and_up_again() {
    let Some(t) = TestDb::new(Kind::Postgres).await.unwrap() else {
        return;
    };
    // Checks return errors instead of panicking so the database is dropped either way.
    let checks = async {
        ensure!(
            tasks_table_exists(&t.db).await?,
            "tasks missing after migrate"
        );
        t.db.migrate_down_all().await.context("migrate_down_all")?;
        ensure!(
            !tasks_table_exists(&t.db).await?,
            "tasks still there after migrate_down_all"
        );
        t.db.migrate().await.context("migrate after down")?;
        ensure!(
            tasks_table_exists(&t.db).await?,
            "tasks missing after re-migrate"
        );
        Ok(())
    }
    .await;
    t.cleanup().await;
    checks.unwrap();
}

/// Starts `n` "replicas" at once, each connecting and migrating `url` as the services do
/// at start-up.
async fn migrate_concurrently(url: &str, n: usize) -> anyhow::Result<()> {
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..n {
        let url = url.to_string();
        set.spawn(async move {
            let opts = DbOptions {
                max_connections: 2,
                ..DbOptions::default()
            };
            let db = Database::connect(Some(&url), &opts).await?;
            let r = db.migrate().await;
            db.close().await;
            r
        });
    }
    let mut failures = Vec::new();
    while let Some(joined) = set.join_next().await {
        match joined {
            Ok(Ok(())) => {}
            Ok(Err(e)) => failures.push(format!("{e:#}")),
            Err(e) => failures.push(format!("task failed: {e}")),
        }
    }
    ensure!(
        failures.is_empty(),
        "concurrent migrations failed: {failures:?}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_start_ups_migrate_a_fresh_postgres_database_once() {
    // Unmigrated: this test is about migrating a database nobody has touched yet.
    let Some(t) = TestDb::unmigrated(Kind::Postgres).await.unwrap() else {
        return;
    };
    let url = t.url.clone();
    let checks = async {
        migrate_concurrently(&url, 4).await?;
        // Every migration recorded exactly once, and the schema is there.
        let mut db = sqlx::PgConnection::connect(&url).await?;
        let dupes: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM (SELECT version FROM _sqlx_migrations \
             GROUP BY version HAVING count(*) > 1) d",
        )
        .fetch_one(&mut db)
        .await?;
        let applied: i64 =
            sqlx::query_scalar("SELECT count(*) FROM _sqlx_migrations WHERE success")
                .fetch_one(&mut db)
                .await?;
        let tasks: bool = sqlx::query_scalar("SELECT to_regclass('public.tasks') IS NOT NULL")
            .fetch_one(&mut db)
            .await?;
        db.close().await?;
        ensure!(dupes == 0, "a migration was recorded twice");
        ensure!(applied > 0, "no migration recorded");
        ensure!(tasks, "tasks table missing");
        Ok(())
    }
    .await;
    t.cleanup().await;
    checks.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_start_ups_migrate_a_fresh_sqlite_file() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("todo.db").display());
    migrate_concurrently(&url, 4).await.unwrap();

    let db = Database::connect(Some(&url), &DbOptions::default())
        .await
        .unwrap();
    let Database::Sqlite(pool) = &db else {
        panic!("expected SQLite");
    };
    let tasks: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'tasks'",
    )
    .fetch_one(pool)
    .await
    .unwrap();
    let dupes: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM (SELECT version FROM _sqlx_migrations \
         GROUP BY version HAVING count(*) > 1)",
    )
    .fetch_one(pool)
    .await
    .unwrap();
    db.close().await;
    assert_eq!(tasks, 1, "tasks table missing");
    assert_eq!(dupes, 0, "a migration was recorded twice");
}
