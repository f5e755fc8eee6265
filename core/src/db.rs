//! Database selection: the URL scheme picks PostgreSQL or SQLite; no URL means a SQLite
//! file in the user's data directory. Connection, retries, pool limits and migrations.

use std::path::PathBuf;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use sqlx::ConnectOptions;
use sqlx::migrate::Migrator;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};

use crate::tasks::{SqlTaskStore, TaskStore};

static PG_MIGRATOR: Migrator = sqlx::migrate!("../migrations/postgres");
static SQLITE_MIGRATOR: Migrator = sqlx::migrate!("../migrations/sqlite");

/// Pool and retry settings.
#[derive(Debug, Clone)]
pub struct DbOptions {
    /// Connections per process; size it so replicas × this stays under the server's limit.
    pub max_connections: u32,
    /// How long a request may wait for a pooled connection before failing.
    pub acquire_timeout: Duration,
    /// How long start-up keeps retrying an unreachable database.
    pub connect_retry_for: Duration,
}

impl Default for DbOptions {
    fn default() -> Self {
        DbOptions {
            max_connections: 10,
            acquire_timeout: Duration::from_secs(3),
            connect_retry_for: Duration::from_secs(10),
        }
    }
}

/// A connected database of either kind.
#[derive(Clone, Debug)]
pub enum Database {
    Postgres(PgPool),
    Sqlite(SqlitePool),
}

/// An open transaction on either kind of database.
#[derive(Debug)]
pub enum Transaction {
    Postgres(sqlx::Transaction<'static, sqlx::Postgres>),
    Sqlite(sqlx::Transaction<'static, sqlx::Sqlite>),
}

impl Transaction {
    pub async fn commit(self) -> Result<(), sqlx::Error> {
        match self {
            Transaction::Postgres(t) => t.commit().await,
            Transaction::Sqlite(t) => t.commit().await,
        }
    }
}

/// The one place the two drivers meet: evaluates `$body` with `$pool` bound to the pool of
/// whichever database `$db` (a `&Database`) is. The body is ordinary Rust — a query and its
/// `.await` — compiled once per driver; both dialects take the same SQL (`$N` parameters,
/// `RETURNING`, `ON CONFLICT`).
macro_rules! on_pool {
    ($db:expr, |$pool:ident| $body:expr) => {
        match $db {
            $crate::db::Database::Postgres($pool) => $body,
            $crate::db::Database::Sqlite($pool) => $body,
        }
    };
}

/// [`on_pool!`] for a `&mut Transaction`: `$conn` is the transaction's connection.
macro_rules! on_tx {
    ($tx:expr, |$conn:ident| $body:expr) => {
        match $tx {
            $crate::db::Transaction::Postgres(t) => {
                let $conn = &mut **t;
                $body
            }
            $crate::db::Transaction::Sqlite(t) => {
                let $conn = &mut **t;
                $body
            }
        }
    };
}

pub(crate) use {on_pool, on_tx};

/// The SQLite file used when `DATABASE_URL` is unset.
pub fn default_sqlite_path() -> anyhow::Result<PathBuf> {
    let base = dirs::data_dir()
        .or_else(|| dirs::home_dir().map(|h| h.join(".local/share")))
        .context("no data directory for this user; set DATABASE_URL")?;
    Ok(base.join("todo-agent").join("todo.db"))
}

/// Shows a URL without its password (in the user part or a `password=` query parameter),
/// for logs and error messages.
pub fn redact_url(url: &str) -> String {
    let url = redact_password_param(url);
    let url = url.as_str();
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => {
            let creds = &url[s + 3..at];
            match creds.find(':') {
                Some(c) => format!("{}{}:***{}", &url[..s + 3], &creds[..c], &url[at..]),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}

/// Replaces the value of every `password=` query parameter with `***`.
fn redact_password_param(url: &str) -> String {
    let Some((base, query)) = url.split_once('?') else {
        return url.to_string();
    };
    let query: Vec<String> = query
        .split('&')
        .map(|pair| match pair.split_once('=') {
            Some((k, _)) if k.eq_ignore_ascii_case("password") => format!("{k}=***"),
            _ => pair.to_string(),
        })
        .collect();
    format!("{base}?{}", query.join("&"))
}

impl Database {
    /// Connects to `url`, or to the default SQLite file when `None`, retrying a database
    /// that is not up yet for `connect_retry_for`.
    pub async fn connect(url: Option<&str>, opts: &DbOptions) -> anyhow::Result<Database> {
        let url = match url.map(str::trim).filter(|u| !u.is_empty()) {
            Some(u) => u.to_string(),
            None => {
                let path = default_sqlite_path()?;
                format!("sqlite://{}", path.display())
            }
        };
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            let options = PgConnectOptions::from_str(&url)
                .with_context(|| format!("invalid DATABASE_URL {}", redact_url(&url)))?
                .application_name("todo-agent");
            retry_connect(&url, opts, || options.connect()).await?;
            let pool = PgPoolOptions::new()
                .max_connections(opts.max_connections)
                .acquire_timeout(opts.acquire_timeout)
                // A ping on every acquire costs a round trip per query; broken connections
                // fail their query instead, and idle ones are recycled before servers drop them.
                .test_before_acquire(false)
                .idle_timeout(Duration::from_secs(300))
                .connect_lazy_with(options);
            Ok(Database::Postgres(pool))
        } else if url.starts_with("sqlite:") {
            let mut options = SqliteConnectOptions::from_str(&url)
                .with_context(|| format!("invalid DATABASE_URL {url}"))?
                .create_if_missing(true)
                .journal_mode(SqliteJournalMode::Wal)
                .synchronous(SqliteSynchronous::Normal)
                .busy_timeout(Duration::from_secs(5))
                .foreign_keys(true);
            let filename = options.get_filename().to_path_buf();
            let in_memory = url.contains(":memory:") || filename.as_os_str().is_empty();
            if in_memory {
                options = options.journal_mode(SqliteJournalMode::Memory);
            } else if let Some(dir) = filename.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir)
                    .with_context(|| format!("cannot create the directory {}", dir.display()))?;
            }
            // An in-memory database lives in one connection; a file one has one writer at a
            // time, so a small pool only queues less.
            let max = if in_memory {
                1
            } else {
                opts.max_connections.min(8)
            };
            // The in-memory database would not outlive a probe connection; a file is probed
            // so a locked or unreadable file is reported clearly.
            if !in_memory {
                retry_connect(&url, opts, || options.connect()).await?;
            }
            let lifetime = |d: u64| (!in_memory).then(|| Duration::from_secs(d));
            let pool = SqlitePoolOptions::new()
                .max_connections(max)
                .min_connections(u32::from(in_memory))
                .idle_timeout(lifetime(600))
                .max_lifetime(lifetime(1800))
                .acquire_timeout(opts.acquire_timeout)
                // A local file cannot go away under an open connection: no ping needed.
                .test_before_acquire(false)
                .connect_with(options)
                .await
                .with_context(|| format!("cannot open the database at {url}"))?;
            Ok(Database::Sqlite(pool))
        } else {
            bail!(
                "DATABASE_URL must start with postgres://, postgresql:// or sqlite: (got {})",
                redact_url(&url)
            )
        }
    }

    /// Applies pending migrations. Safe when several processes start at once: PostgreSQL
    /// serialises migrators with an advisory lock; SQLite's losers retry after the winner.
    pub async fn migrate(&self) -> anyhow::Result<()> {
        match self {
            Database::Postgres(p) => PG_MIGRATOR
                .run(p)
                .await
                .context("applying PostgreSQL migrations failed"),
            Database::Sqlite(p) => {
                let mut last = None;
                for attempt in 0..5u64 {
                    match SQLITE_MIGRATOR.run(p).await {
                        Ok(()) => return Ok(()),
                        Err(e) => {
                            last = Some(e);
                            tokio::time::sleep(Duration::from_millis(100 * (attempt + 1))).await;
                        }
                    }
                }
                Err(anyhow::Error::from(last.expect("at least one attempt"))
                    .context("applying SQLite migrations failed"))
            }
        }
    }

    /// Reverts every migration (for tests of the down scripts and for operators).
    pub async fn migrate_down_all(&self) -> anyhow::Result<()> {
        match self {
            Database::Postgres(p) => PG_MIGRATOR.undo(p, 0).await?,
            Database::Sqlite(p) => SQLITE_MIGRATOR.undo(p, 0).await?,
        }
        Ok(())
    }

    /// The task store on this database.
    pub fn task_store(&self) -> Arc<dyn TaskStore> {
        Arc::new(SqlTaskStore::new(self.clone()))
    }

    /// Starts a transaction.
    pub async fn begin(&self) -> Result<Transaction, sqlx::Error> {
        Ok(match self {
            Database::Postgres(p) => Transaction::Postgres(p.begin().await?),
            Database::Sqlite(p) => Transaction::Sqlite(p.begin().await?),
        })
    }

    /// Checks that the database answers (for readiness probes).
    pub async fn ping(&self) -> Result<(), sqlx::Error> {
        match self {
            Database::Postgres(p) => sqlx::query("SELECT 1").execute(p).await.map(drop),
            Database::Sqlite(p) => sqlx::query("SELECT 1").execute(p).await.map(drop),
        }
    }

    /// `postgres` or `sqlite`.
    pub fn kind(&self) -> &'static str {
        match self {
            Database::Postgres(_) => "postgres",
            Database::Sqlite(_) => "sqlite",
        }
    }

    /// Pool connections (in use, idle), for metrics.
    pub fn pool_stats(&self) -> (u32, u32) {
        let (size, idle) = match self {
            Database::Postgres(p) => (p.size(), p.num_idle() as u32),
            Database::Sqlite(p) => (p.size(), p.num_idle() as u32),
        };
        (size.saturating_sub(idle), idle)
    }

    /// Closes every connection.
    pub async fn close(&self) {
        match self {
            Database::Postgres(p) => p.close().await,
            Database::Sqlite(p) => p.close().await,
        }
    }
}

/// Opens single connections until one succeeds (dropping it), so that start-up reports the
/// real cause ("connection refused") rather than a pool time-out.
async fn retry_connect<C, F, Fut>(url: &str, opts: &DbOptions, mut attempt: F) -> anyhow::Result<()>
where
    C: sqlx::Connection,
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<C, sqlx::Error>>,
{
    let deadline = tokio::time::Instant::now() + opts.connect_retry_for;
    let mut delay = Duration::from_millis(200);
    loop {
        match attempt().await {
            Ok(c) => {
                let _ = c.close().await;
                return Ok(());
            }
            Err(e) if is_transient(&e) && tokio::time::Instant::now() + delay < deadline => {
                tracing::warn!(database = %redact_url(url), error = %e, "database not reachable yet; retrying");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(2));
            }
            Err(e) => {
                return Err(anyhow::Error::from(e).context(format!(
                    "cannot connect to the database at {}",
                    redact_url(url)
                )));
            }
        }
    }
}

/// Worth another attempt: the server is unreachable or starting up (57P03), or a SQLite
/// file is busy or locked (primary codes 5 and 6), as when several processes create it at once.
fn is_transient(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Io(_) | sqlx::Error::PoolTimedOut => true,
        sqlx::Error::Database(d) => {
            let code = d.code();
            let code = code.as_deref().unwrap_or("");
            code == "57P03" || code.parse::<i32>().is_ok_and(|c| matches!(c & 0xff, 5 | 6))
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_never_reach_messages() {
        assert_eq!(
            redact_url("postgres://app:s3cret@db:5432/todo?sslmode=require"),
            "postgres://app:***@db:5432/todo?sslmode=require"
        );
        assert_eq!(redact_url("sqlite:///tmp/x.db"), "sqlite:///tmp/x.db");
        assert_eq!(
            redact_url("postgres://db/todo?user=app&password=s3c@ret&sslmode=require"),
            "postgres://db/todo?user=app&password=***&sslmode=require"
        );
        assert_eq!(
            redact_url("postgres://db/todo?PASSWORD=x"),
            "postgres://db/todo?PASSWORD=***"
        );
    }

    #[tokio::test]
    async fn an_unknown_scheme_is_refused_with_a_clear_message() {
        let err = Database::connect(Some("mysql://u:pw@h/db"), &DbOptions::default())
            .await
            .unwrap_err();
        let msg = format!("{err:#}");
        assert!(msg.contains("must start with postgres://"), "{msg}");
        assert!(!msg.contains("pw@"), "{msg}");
    }

    #[tokio::test]
    async fn sqlite_creates_its_folders_and_migrates_up_down_up() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a/b/todo.db");
        let db = Database::connect(
            Some(&format!("sqlite://{}", path.display())),
            &DbOptions::default(),
        )
        .await
        .unwrap();
        db.migrate().await.unwrap();
        assert!(path.exists());
        db.migrate_down_all().await.unwrap();
        db.migrate().await.unwrap();
        db.ping().await.unwrap();
    }
}
