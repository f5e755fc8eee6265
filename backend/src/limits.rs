//! Per-user limits counted where every replica sees them.
//!
//! A limit is a generic cell rate (GCRA): a full minute's allowance may be spent at once,
//! then one more event per `60 s / rate`. On PostgreSQL the state of each (limit, user) is
//! one row of `user_limits`, advanced by a single atomic upsert on the database's clock, so
//! N replicas together allow what one does and their clocks need not agree. On SQLite (one
//! process) the state stays in memory. A further per-user limit is another [`UserLimit`] with
//! its own name over the same table: no new table, no new code path.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use sqlx::PgPool;
use todo_core::db::Database;

use crate::access::RateLimiter;

/// One per-user limit and where it is counted.
pub struct UserLimit {
    name: &'static str,
    per_minute: u32,
    counter: Counter,
}

enum Counter {
    Memory(RateLimiter),
    Postgres { pool: PgPool, checks: AtomicU64 },
}

/// Advances the user's arrival time by one interval unless that would put it more than the
/// tolerance ahead of now. `ON CONFLICT DO UPDATE` locks the row and re-reads its latest
/// version, so concurrent checks from any number of processes serialise on it.
const TAKE: &str = "INSERT INTO user_limits (limit_name, user_id, tat)
     VALUES ($1, $2, now() + $3 * interval '1 microsecond')
     ON CONFLICT (limit_name, user_id) DO UPDATE
        SET tat = GREATEST(user_limits.tat, now()) + $3 * interval '1 microsecond'
      WHERE user_limits.tat <= now() + $4 * interval '1 microsecond'
     RETURNING 1";

/// How long until the next event would be allowed (after a refusal).
const WAIT: &str = "SELECT GREATEST(EXTRACT(EPOCH FROM (tat - now())) * 1000000 - $3, 0)::float8
       FROM user_limits WHERE limit_name = $1 AND user_id = $2";

/// Rows in the past carry no state; they are swept now and then.
const SWEEP: &str = "DELETE FROM user_limits WHERE tat < now() - interval '1 minute'";

/// Checks between two sweeps of expired rows, per process.
const SWEEP_EVERY: u64 = 4096;

fn micros(d: Duration) -> i64 {
    i64::try_from(d.as_micros()).unwrap_or(i64::MAX)
}

impl UserLimit {
    /// A limit counted in this process only.
    pub fn in_memory(name: &'static str, per_minute: u32) -> UserLimit {
        UserLimit {
            name,
            per_minute,
            counter: Counter::Memory(RateLimiter::new(per_minute)),
        }
    }

    /// A limit counted in `db` when it is PostgreSQL (shared by every replica), in memory
    /// otherwise.
    pub fn counted_in(db: &Database, name: &'static str, per_minute: u32) -> UserLimit {
        match db {
            Database::Postgres(pool) => UserLimit {
                name,
                per_minute,
                counter: Counter::Postgres {
                    pool: pool.clone(),
                    checks: AtomicU64::new(0),
                },
            },
            Database::Sqlite(_) => Self::in_memory(name, per_minute),
        }
    }

    /// Where this limit is counted: `postgres` or `memory`.
    pub fn backend(&self) -> &'static str {
        match self.counter {
            Counter::Memory(_) => "memory",
            Counter::Postgres { .. } => "postgres",
        }
    }

    /// Counts one event of `user`: `Ok(Ok(()))` if allowed, `Ok(Err(wait))` if not, `Err`
    /// when the shared counter cannot be reached.
    pub async fn check(&self, user: &str) -> Result<Result<(), Duration>, sqlx::Error> {
        if self.per_minute == 0 {
            return Ok(Ok(()));
        }
        let (pool, checks) = match &self.counter {
            Counter::Memory(r) => return Ok(r.check(user)),
            Counter::Postgres { pool, checks } => (pool, checks),
        };
        let interval = Duration::from_secs(60) / self.per_minute;
        let tolerance = Duration::from_secs(60).saturating_sub(interval);
        if checks.fetch_add(1, Ordering::Relaxed) % SWEEP_EVERY == SWEEP_EVERY - 1 {
            let pool = pool.clone();
            tokio::spawn(async move {
                if let Err(e) = sqlx::query(SWEEP).execute(&pool).await {
                    tracing::debug!(error = %e, "sweeping expired user limits failed");
                }
            });
        }
        let taken = sqlx::query(TAKE)
            .bind(self.name)
            .bind(user)
            .bind(micros(interval))
            .bind(micros(tolerance))
            .fetch_optional(pool)
            .await?;
        if taken.is_some() {
            return Ok(Ok(()));
        }
        let wait: Option<f64> = sqlx::query_scalar(WAIT)
            .bind(self.name)
            .bind(user)
            .bind(micros(tolerance) as f64)
            .fetch_optional(pool)
            .await?;
        let wait = wait.filter(|w| w.is_finite() && *w >= 0.0).unwrap_or(0.0);
        Ok(Err(
            Duration::from_micros(wait as u64).max(Duration::from_millis(1))
        ))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use todo_test_support::{Kind, TestDb};

    use super::*;

    #[tokio::test]
    async fn sqlite_counts_in_memory_with_the_same_allowance() {
        let Some(t) = TestDb::new(Kind::Sqlite).await.unwrap() else {
            return;
        };
        let limit = UserLimit::counted_in(&t.db, "chat", 2);
        assert_eq!(limit.backend(), "memory");
        assert!(limit.check("ann").await.unwrap().is_ok());
        assert!(limit.check("ann").await.unwrap().is_ok());
        assert!(limit.check("ann").await.unwrap().is_err());
        t.cleanup().await;
    }

    /// Three pools stand for three replicas: together they allow one allowance, counted
    /// atomically however the checks interleave.
    #[tokio::test]
    async fn postgres_counts_one_allowance_across_pools_under_concurrency() {
        let Some(t) = TestDb::new(Kind::Postgres).await.unwrap() else {
            return;
        };
        let mut replicas = Vec::new();
        for _ in 0..3 {
            let db = Database::connect(Some(&t.url), &todo_core::db::DbOptions::default())
                .await
                .unwrap();
            replicas.push(UserLimit::counted_in(&db, "chat", 5));
        }
        assert_eq!(replicas[0].backend(), "postgres");
        let started = std::time::Instant::now();
        let checks = (0..30).map(|i| {
            let limit = &replicas[i % 3];
            async move { limit.check("bob").await.unwrap() }
        });
        let results = futures::future::join_all(checks).await;
        let allowed = results.iter().filter(|r| r.is_ok()).count();
        // 5 per minute is one every 12 s: the burst of 5, plus one per 12 s elapsed (none on
        // any ordinary run; three in-memory counters would have allowed 15).
        let refills = started.elapsed().as_secs() as usize / 12 + 1;
        assert!(
            allowed >= 5 && allowed < 5 + refills,
            "allowed {allowed} of 30"
        );
        for wait in results.iter().filter_map(|r| r.err()) {
            assert!(wait <= Duration::from_secs(12), "{wait:?}");
        }
        // Another user and another limit are counted apart.
        assert!(replicas[1].check("carol").await.unwrap().is_ok());
        let other = UserLimit::counted_in(&t.db, "other", 1);
        assert!(other.check("bob").await.unwrap().is_ok());
        assert!(other.check("bob").await.unwrap().is_err());
        t.cleanup().await;
    }
}
