//! Throwaway databases: a fresh, migrated database of either kind per test, removed when
//! its [`TestDb`] is dropped — at the end of the test or while a failing test unwinds.

use std::future::Future;
use std::path::PathBuf;

use anyhow::Context;
use sqlx::Connection;
use todo_core::db::{Database, DbOptions};

/// Which database a test runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Sqlite,
    Postgres,
}

/// A fresh, migrated database. Dropping it removes it: the PostgreSQL database is dropped
/// (`WITH (FORCE)`, so open pools do not keep it alive), the SQLite directory deleted.
pub struct TestDb {
    pub db: Database,
    /// The URL of this database, for child processes.
    pub url: String,
    /// Removes the database on drop (read only by this crate's own tests).
    #[allow(dead_code)]
    guard: Guard,
}

/// Removes its database when dropped.
struct Guard(Option<Place>);

enum Place {
    Postgres { admin_url: String, name: String },
    Sqlite { dir: PathBuf },
}

/// The PostgreSQL server tests use: `DATABASE_URL` when it is a postgres URL.
/// `scripts/test.sh` starts a throwaway cluster and sets it.
pub fn postgres_admin_url() -> Option<String> {
    std::env::var("DATABASE_URL")
        .ok()
        .filter(|u| u.starts_with("postgres://") || u.starts_with("postgresql://"))
}

fn replace_db_name(url: &str, name: &str) -> String {
    let (base, query) = match url.find('?') {
        Some(i) => (&url[..i], &url[i..]),
        None => (url, ""),
    };
    let after_scheme = base.find("://").map(|i| i + 3).unwrap_or(0);
    let path_start = base[after_scheme..]
        .find('/')
        .map(|i| i + after_scheme)
        .unwrap_or(base.len());
    format!("{}/{}{}", &base[..path_start], name, query)
}

impl TestDb {
    /// A new migrated database. `None` for PostgreSQL when no server is configured: the
    /// test has then been reported SKIPPED (see [`crate::skip`]) and should return; where
    /// PostgreSQL is required that is a panic instead.
    pub async fn new(kind: Kind) -> anyhow::Result<Option<TestDb>> {
        TestDb::create(kind, true).await
    }

    /// As [`TestDb::new`] but empty, not migrated: for tests of migrating itself.
    pub async fn unmigrated(kind: Kind) -> anyhow::Result<Option<TestDb>> {
        TestDb::create(kind, false).await
    }

    async fn create(kind: Kind, migrate: bool) -> anyhow::Result<Option<TestDb>> {
        crate::logs::init();
        let unique = format!("t_{}", uuid::Uuid::new_v4().simple());
        let opts = DbOptions {
            max_connections: 5,
            ..DbOptions::default()
        };
        match kind {
            Kind::Sqlite => {
                let dir = std::env::temp_dir().join(format!("todo-agent-test-{unique}"));
                std::fs::create_dir_all(&dir)?;
                // Armed before connecting, so a failed migration leaves nothing behind.
                let guard = Guard(Some(Place::Sqlite { dir: dir.clone() }));
                let url = format!("sqlite://{}", dir.join("todo.db").display());
                let db = Database::connect(Some(&url), &opts).await;
                let db = TestDb::armed(db, url, guard, migrate).await?;
                Ok(Some(db))
            }
            Kind::Postgres => {
                let Some(admin_url) = postgres_admin_url() else {
                    crate::skip(
                        "needs PostgreSQL (set DATABASE_URL to a postgres:// URL, or run \
                         ./scripts/test.sh)",
                    );
                    return Ok(None);
                };
                let mut conn = sqlx::PgConnection::connect(&admin_url)
                    .await
                    .context("connecting to the test PostgreSQL server")?;
                sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {unique}")))
                    .execute(&mut conn)
                    .await
                    .context("creating a test database")?;
                conn.close().await?;
                let url = replace_db_name(&admin_url, &unique);
                let guard = Guard(Some(Place::Postgres {
                    admin_url,
                    name: unique,
                }));
                let db = Database::connect(Some(&url), &opts).await;
                let db = TestDb::armed(db, url, guard, migrate).await?;
                Ok(Some(db))
            }
        }
    }

    /// Migrates (when asked); on any error `guard` still removes what was created.
    async fn armed(
        db: anyhow::Result<Database>,
        url: String,
        guard: Guard,
        migrate: bool,
    ) -> anyhow::Result<TestDb> {
        let db = match db {
            Ok(db) => db,
            Err(e) => {
                drop(guard);
                return Err(e);
            }
        };
        let t = TestDb { db, url, guard };
        if migrate {
            t.db.migrate()
                .await
                .context("migrating the test database")?;
        }
        Ok(t)
    }

    /// PostgreSQL when one is configured (always in CI), else SQLite, saying so: for tests
    /// that hold for both and want the production database where there is one.
    pub async fn postgres_or_sqlite() -> TestDb {
        if postgres_admin_url().is_none() && !crate::postgres_required() {
            eprintln!("no PostgreSQL configured: this test runs on SQLite");
            return TestDb::new(Kind::Sqlite)
                .await
                .expect("a fresh SQLite test database")
                .expect("SQLite is always available");
        }
        TestDb::new(Kind::Postgres)
            .await
            .expect("a fresh PostgreSQL test database")
            .expect("PostgreSQL is configured")
    }

    /// Closes the pool, then removes the database (as dropping it would).
    pub async fn cleanup(self) {
        self.db.close().await;
    }
}

/// Runs `body` with a fresh database of `kind` (its pool and URL); the database is removed
/// afterwards whatever happens, a panic in `body` included. Without PostgreSQL outside CI
/// the test is reported SKIPPED and `body` does not run.
pub async fn with_database<F, Fut>(kind: Kind, body: F)
where
    F: FnOnce(Database, String) -> Fut,
    Fut: Future<Output = ()>,
{
    let Some(t) = TestDb::new(kind).await.expect("a fresh test database") else {
        return;
    };
    body(t.db.clone(), t.url.clone()).await;
    t.cleanup().await;
}

impl Drop for Guard {
    fn drop(&mut self) {
        match self.0.take() {
            None => {}
            Some(Place::Sqlite { dir }) => {
                let _ = std::fs::remove_dir_all(dir);
            }
            Some(Place::Postgres { admin_url, name }) => drop_postgres(admin_url, name),
        }
    }
}

/// Drops a test database from a thread of its own with its own runtime: `Drop` runs inside
/// a test's runtime (which must not be blocked on) or while unwinding from a panic.
fn drop_postgres(admin_url: String, name: String) {
    let dropped = std::thread::spawn(move || -> anyhow::Result<()> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        rt.block_on(async {
            let mut conn = sqlx::PgConnection::connect(&admin_url).await?;
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
            )))
            .execute(&mut conn)
            .await?;
            conn.close().await?;
            Ok(())
        })
    })
    .join();
    match dropped {
        Ok(Ok(())) => {}
        Ok(Err(e)) => eprintln!("warning: could not drop a test database: {e:#}"),
        Err(_) => eprintln!("warning: dropping a test database panicked"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_names_are_swapped_keeping_options() {
        assert_eq!(
            replace_db_name(
                "postgres://u:p@127.0.0.1:5432/postgres?sslmode=disable",
                "t_1"
            ),
            "postgres://u:p@127.0.0.1:5432/t_1?sslmode=disable"
        );
        assert_eq!(replace_db_name("postgres://h", "t_1"), "postgres://h/t_1");
    }

    async fn postgres_database_exists(name: &str) -> bool {
        let admin = postgres_admin_url().expect("PostgreSQL is configured");
        let mut conn = sqlx::PgConnection::connect(&admin).await.unwrap();
        let n: i64 = sqlx::query_scalar("SELECT count(*) FROM pg_database WHERE datname = $1")
            .bind(name)
            .fetch_one(&mut conn)
            .await
            .unwrap();
        n == 1
    }

    fn where_it_lives(t: &TestDb) -> String {
        match &t.guard.0 {
            Some(Place::Postgres { name, .. }) => name.clone(),
            Some(Place::Sqlite { dir }) => dir.display().to_string(),
            None => unreachable!("a live TestDb is armed"),
        }
    }

    async fn is_removed(kind: Kind, place: &str) -> bool {
        match kind {
            Kind::Sqlite => !std::path::Path::new(place).exists(),
            Kind::Postgres => !postgres_database_exists(place).await,
        }
    }

    /// A test that panics half-way still leaves no database behind: the guard runs while
    /// the panic unwinds, with no cleanup call reached.
    async fn a_panicking_test_leaves_no_database_behind(kind: Kind) {
        let Some(t) = TestDb::new(kind).await.unwrap() else {
            return;
        };
        let place = where_it_lives(&t);
        assert!(
            !is_removed(kind, &place).await,
            "{place} exists while in use"
        );
        let test = tokio::spawn(async move {
            let _db = t;
            panic!("the test fails half-way");
        });
        let outcome = test.await;
        assert!(outcome.unwrap_err().is_panic());
        assert!(is_removed(kind, &place).await, "{place} was left behind");
    }

    /// Dropping (no cleanup call) and `cleanup` both remove the database.
    async fn drop_and_cleanup_both_remove_the_database(kind: Kind) {
        let Some(t) = TestDb::new(kind).await.unwrap() else {
            return;
        };
        let place = where_it_lives(&t);
        drop(t);
        assert!(is_removed(kind, &place).await, "{place} survived a drop");

        let t = TestDb::new(kind).await.unwrap().expect("configured above");
        let place = where_it_lives(&t);
        t.cleanup().await;
        assert!(is_removed(kind, &place).await, "{place} survived cleanup");
    }

    crate::on_both_databases!(
        multi_thread;
        a_panicking_test_leaves_no_database_behind,
        drop_and_cleanup_both_remove_the_database,
    );
}
