//! Test support shared by this workspace's tests: a fresh, migrated database of either kind
//! that removes itself afterwards. Not for production use.

use anyhow::Context;
use sqlx::Connection;

use todo_core::db::{Database, DbOptions};

/// Which database a test runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Sqlite,
    Postgres,
}

/// A fresh database; dropped (PostgreSQL) or deleted (SQLite) by [`TestDb::cleanup`].
pub struct TestDb {
    pub db: Database,
    /// The URL of this database, for child processes.
    pub url: String,
    admin_url: Option<String>,
    name: Option<String>,
    _dir: Option<tempfile_dir::TempDir>,
}

mod tempfile_dir {
    /// A directory removed on drop.
    pub struct TempDir(pub std::path::PathBuf);
    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

/// The PostgreSQL server URL tests use: `DATABASE_URL` when it is a postgres URL.
/// The README's test command starts a throwaway cluster and sets it.
pub fn postgres_admin_url() -> Option<String> {
    std::env::var("DATABASE_URL")
        .ok()
        .filter(|u| u.starts_with("postgres://") || u.starts_with("postgresql://"))
}

/// Whether PostgreSQL tests must run (in CI they may not be skipped).
pub fn postgres_required() -> bool {
    std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false")
        || std::env::var("REQUIRE_POSTGRES").is_ok()
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
    /// A new migrated database, or `None` for PostgreSQL when no server is configured
    /// outside CI (the test then says it was skipped).
    pub async fn new(kind: Kind) -> anyhow::Result<Option<TestDb>> {
        let unique = format!("t_{}", uuid::Uuid::new_v4().simple());
        let opts = DbOptions {
            max_connections: 5,
            ..DbOptions::default()
        };
        match kind {
            Kind::Sqlite => {
                let dir = std::env::temp_dir().join(format!("todo-agent-test-{unique}"));
                std::fs::create_dir_all(&dir)?;
                let url = format!("sqlite://{}", dir.join("todo.db").display());
                let db = Database::connect(Some(&url), &opts).await?;
                db.migrate().await?;
                Ok(Some(TestDb {
                    db,
                    url,
                    admin_url: None,
                    name: None,
                    _dir: Some(tempfile_dir::TempDir(dir)),
                }))
            }
            Kind::Postgres => {
                let Some(admin) = postgres_admin_url() else {
                    anyhow::ensure!(
                        !postgres_required(),
                        "DATABASE_URL must point at PostgreSQL in CI (run scripts/test.sh)"
                    );
                    eprintln!("skipped: no PostgreSQL (set DATABASE_URL or run scripts/test.sh)");
                    return Ok(None);
                };
                let mut conn = sqlx::PgConnection::connect(&admin)
                    .await
                    .context("connecting to the test PostgreSQL server")?;
                sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {unique}")))
                    .execute(&mut conn)
                    .await?;
                conn.close().await?;
                let url = replace_db_name(&admin, &unique);
                let db = Database::connect(Some(&url), &opts).await?;
                db.migrate().await?;
                Ok(Some(TestDb {
                    db,
                    url,
                    admin_url: Some(admin),
                    name: Some(unique),
                    _dir: None,
                }))
            }
        }
    }

    /// Closes the pool and removes the database.
    pub async fn cleanup(self) {
        self.db.close().await;
        if let (Some(admin), Some(name)) = (&self.admin_url, &self.name)
            && let Ok(mut conn) = sqlx::PgConnection::connect(admin).await
        {
            let _ = sqlx::query(sqlx::AssertSqlSafe(format!(
                "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
            )))
            .execute(&mut conn)
            .await;
            let _ = conn.close().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::replace_db_name;

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
}
