//! What is kept, and for how long: idempotency records expire (`IDEMPOTENCY_TTL_HOURS`,
//! 24 h), tasks in the trash are purged after `TRASH_RETENTION_DAYS` (30) and tool audit
//! rows after `AUDIT_RETENTION_DAYS` (90); 0 keeps them forever. A sweeper deletes what
//! has expired at start-up and then every `RETENTION_SWEEP_SECS` (3600). Several replicas
//! sweeping at once is harmless: each delete is idempotent.

use std::time::Duration;

use chrono::{DateTime, Utc};
use todo_core::db::Database;
use tokio_util::sync::CancellationToken;

/// Retention settings.
#[derive(Debug, Clone)]
pub struct Retention {
    pub idempotency_ttl: Duration,
    /// `None`: kept forever.
    pub trash: Option<Duration>,
    pub audit: Option<Duration>,
    pub sweep_every: Duration,
}

impl Default for Retention {
    fn default() -> Self {
        Retention {
            idempotency_ttl: Duration::from_secs(24 * 3600),
            trash: Some(Duration::from_secs(30 * 86_400)),
            audit: Some(Duration::from_secs(90 * 86_400)),
            sweep_every: Duration::from_secs(3600),
        }
    }
}

fn at_most(name: &str, v: u64, max: u64) -> anyhow::Result<u64> {
    anyhow::ensure!(
        v <= max,
        "{name}={v} is outside the accepted range 0..={max}"
    );
    Ok(v)
}

impl Retention {
    /// From `IDEMPOTENCY_TTL_HOURS`, `TRASH_RETENTION_DAYS`, `AUDIT_RETENTION_DAYS` and
    /// `RETENTION_SWEEP_SECS`, refused out of range.
    pub fn new(
        ttl_hours: u64,
        trash_days: u64,
        audit_days: u64,
        sweep_secs: u64,
    ) -> anyhow::Result<Retention> {
        let days = |n: u64| (n > 0).then(|| Duration::from_secs(n * 86_400));
        let ttl = at_most("IDEMPOTENCY_TTL_HOURS", ttl_hours, 24 * 365)?;
        anyhow::ensure!(ttl >= 1, "IDEMPOTENCY_TTL_HOURS must be at least 1");
        let sweep = at_most("RETENTION_SWEEP_SECS", sweep_secs, 7 * 86_400)?;
        anyhow::ensure!(sweep >= 10, "RETENTION_SWEEP_SECS must be at least 10");
        Ok(Retention {
            idempotency_ttl: Duration::from_secs(ttl * 3600),
            trash: days(at_most("TRASH_RETENTION_DAYS", trash_days, 36_500)?),
            audit: days(at_most("AUDIT_RETENTION_DAYS", audit_days, 36_500)?),
            sweep_every: Duration::from_secs(sweep),
        })
    }
}

/// Rows deleted by one sweep.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Swept {
    pub idempotency: u64,
    pub trash: u64,
    pub audit: u64,
}

const IDEMPOTENCY_SQL: &str = "DELETE FROM idempotency_keys WHERE updated_at < $1";
const TRASH_SQL: &str = "DELETE FROM tasks WHERE deleted_at IS NOT NULL AND deleted_at < $1";
const AUDIT_SQL: &str = "DELETE FROM tool_executions WHERE created_at < $1";

async fn delete_before(
    db: &Database,
    sql: &'static str,
    before: DateTime<Utc>,
) -> Result<u64, sqlx::Error> {
    Ok(match db {
        Database::Postgres(p) => sqlx::query(sql)
            .bind(before)
            .execute(p)
            .await?
            .rows_affected(),
        Database::Sqlite(p) => sqlx::query(sql)
            .bind(before)
            .execute(p)
            .await?
            .rows_affected(),
    })
}

/// The moment `age` before `now` (1970 when `age` reaches further back: nothing is older).
pub fn before(now: DateTime<Utc>, age: Duration) -> DateTime<Utc> {
    chrono::Duration::from_std(age)
        .ok()
        .and_then(|age| now.checked_sub_signed(age))
        .unwrap_or(DateTime::UNIX_EPOCH)
}

/// Deletes what has expired as of `now`.
pub async fn sweep(db: &Database, r: &Retention, now: DateTime<Utc>) -> Result<Swept, sqlx::Error> {
    let mut swept = Swept {
        idempotency: delete_before(db, IDEMPOTENCY_SQL, before(now, r.idempotency_ttl)).await?,
        ..Swept::default()
    };
    if let Some(age) = r.trash {
        swept.trash = delete_before(db, TRASH_SQL, before(now, age)).await?;
    }
    if let Some(age) = r.audit {
        swept.audit = delete_before(db, AUDIT_SQL, before(now, age)).await?;
    }
    Ok(swept)
}

/// Sweeps now and then every `sweep_every` until `shutdown`.
pub fn spawn_sweeper(db: Database, r: Retention, shutdown: CancellationToken) {
    tokio::spawn(async move {
        loop {
            match sweep(&db, &r, Utc::now()).await {
                Ok(s) if s != Swept::default() => tracing::info!(
                    idempotency = s.idempotency,
                    trash = s.trash,
                    audit = s.audit,
                    "expired records deleted"
                ),
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "retention sweep failed; retried later"),
            }
            tokio::select! {
                _ = tokio::time::sleep(r.sweep_every) => {}
                _ = shutdown.cancelled() => return,
            }
        }
    });
}
