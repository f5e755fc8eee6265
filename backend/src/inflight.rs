//! A per-user cap on chat turns in flight, so one person cannot take every global slot.
//!
//! On PostgreSQL the turns are counted in the database (`user_turns`), so N replicas together
//! allow one person what one does: a turn takes a row, under a per-user advisory lock so that
//! concurrent starts from any process see each other, and deletes it when it ends. A row left
//! by a process that died stops counting at its `expires_at` (the turn's deadline and a
//! margin), so a crash never costs a slot for longer than a turn could have run. On SQLite
//! (one process) the count stays in memory.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::http::StatusCode;
use sqlx::PgPool;
use todo_core::db::Database;
use uuid::Uuid;

use crate::error::ApiError;

/// Turns in flight per user.
#[derive(Debug)]
pub struct InFlight {
    max_per_user: usize,
    counter: Counter,
}

#[derive(Debug)]
enum Counter {
    Memory(Arc<Mutex<HashMap<String, usize>>>),
    /// `hold`: how long a row counts if its turn never deletes it.
    Postgres {
        pool: PgPool,
        hold: Duration,
    },
}

impl Default for InFlight {
    fn default() -> Self {
        InFlight::new(0)
    }
}

/// One turn of one user, counted until dropped.
#[derive(Debug)]
pub struct UserTurn(Held);

#[derive(Debug)]
enum Held {
    Uncounted,
    Memory {
        user: String,
        counts: Arc<Mutex<HashMap<String, usize>>>,
    },
    Postgres {
        pool: PgPool,
        token: String,
    },
}

/// Serialises the starts of one user's turns across processes (until commit).
const LOCK: &str = "SELECT pg_advisory_xact_lock(hashtextextended('user_turns:' || $1, 0))";

/// Takes a place if the user has fewer than `$3` turns counting, and forgets the user's rows
/// whose turns ended without deleting them (their process died). A statement of its own
/// after the lock, so its snapshot sees every place taken before the lock was granted.
const TAKE: &str = "WITH forgotten AS (
         DELETE FROM user_turns WHERE user_id = $1 AND expires_at <= now()
     )
     INSERT INTO user_turns (token, user_id, expires_at)
     SELECT $2, $1, now() + $4 * interval '1 microsecond'
      WHERE (SELECT COUNT(*) FROM user_turns WHERE user_id = $1 AND expires_at > now()) < $3
     RETURNING 1";

const RELEASE: &str = "DELETE FROM user_turns WHERE token = $1";

fn too_many(max: usize) -> ApiError {
    ApiError::new(
        StatusCode::TOO_MANY_REQUESTS,
        "too_many_turns",
        format!("You already have {max} messages being answered; wait for one to finish."),
    )
    .with_retry_after(2)
}

impl InFlight {
    /// Counted in this process; `max_per_user` of 0 means no cap.
    pub fn new(max_per_user: usize) -> InFlight {
        InFlight {
            max_per_user,
            counter: Counter::Memory(Arc::default()),
        }
    }

    /// Counted in `db` when it is PostgreSQL (shared by every replica), in memory otherwise.
    /// `hold` bounds how long a turn's place counts if its process dies: the longest a turn
    /// can run, with a margin.
    pub fn counted_in(db: &Database, max_per_user: usize, hold: Duration) -> InFlight {
        match db {
            Database::Postgres(pool) => InFlight {
                max_per_user,
                counter: Counter::Postgres {
                    pool: pool.clone(),
                    hold,
                },
            },
            Database::Sqlite(_) => InFlight::new(max_per_user),
        }
    }

    /// Where the turns are counted: `postgres` or `memory`.
    pub fn backend(&self) -> &'static str {
        match self.counter {
            Counter::Memory(_) => "memory",
            Counter::Postgres { .. } => "postgres",
        }
    }

    /// Counts a turn of `user`; 429 with `Retry-After` when they already have the cap, 503
    /// when the shared count cannot be reached.
    pub async fn start(&self, user: &str) -> Result<UserTurn, ApiError> {
        if self.max_per_user == 0 {
            return Ok(UserTurn(Held::Uncounted));
        }
        match &self.counter {
            Counter::Memory(counts) => self.start_in_memory(counts, user),
            Counter::Postgres { pool, hold } => {
                let token = Uuid::new_v4().to_string();
                // Made first: if this future is dropped (the client left) once the row may
                // exist, the guard still deletes it.
                let mut turn = UserTurn(Held::Postgres {
                    pool: pool.clone(),
                    token: token.clone(),
                });
                let taken = take(pool, user, &token, self.max_per_user, *hold).await;
                if !matches!(taken, Ok(true)) {
                    turn.0 = Held::Uncounted; // nothing was taken: nothing to delete
                }
                match taken {
                    Ok(true) => Ok(turn),
                    Ok(false) => Err(too_many(self.max_per_user)),
                    Err(e) => Err(ApiError::unavailable("counting turns in flight failed", &e)),
                }
            }
        }
    }

    fn start_in_memory(
        &self,
        counts: &Arc<Mutex<HashMap<String, usize>>>,
        user: &str,
    ) -> Result<UserTurn, ApiError> {
        let mut map = counts.lock().unwrap_or_else(|p| p.into_inner());
        let n = map.entry(user.to_string()).or_insert(0);
        if *n >= self.max_per_user {
            if *n == 0 {
                map.remove(user);
            }
            return Err(too_many(self.max_per_user));
        }
        *n += 1;
        Ok(UserTurn(Held::Memory {
            user: user.to_string(),
            counts: counts.clone(),
        }))
    }

    /// Users with a turn counted in this process (for tests: entries never outlive their
    /// turns). Always 0 when the turns are counted in PostgreSQL.
    pub fn users(&self) -> usize {
        match &self.counter {
            Counter::Memory(counts) => counts.lock().unwrap_or_else(|p| p.into_inner()).len(),
            Counter::Postgres { .. } => 0,
        }
    }
}

async fn take(
    pool: &PgPool,
    user: &str,
    token: &str,
    max: usize,
    hold: Duration,
) -> Result<bool, sqlx::Error> {
    let mut tx = pool.begin().await?;
    sqlx::query(LOCK).bind(user).execute(&mut *tx).await?;
    let taken = sqlx::query(TAKE)
        .bind(user)
        .bind(token)
        .bind(i64::try_from(max).unwrap_or(i64::MAX))
        .bind(i64::try_from(hold.as_micros()).unwrap_or(i64::MAX))
        .fetch_optional(&mut *tx)
        .await?
        .is_some();
    tx.commit().await?;
    Ok(taken)
}

impl UserTurn {
    /// Ends the turn's place now (a dropped `UserTurn` frees it in the background).
    pub async fn release(mut self) {
        if !matches!(self.0, Held::Postgres { .. }) {
            return; // dropped here: the in-memory count goes down at once
        }
        if let Held::Postgres { pool, token } = std::mem::replace(&mut self.0, Held::Uncounted) {
            let deleted = tokio::time::timeout(
                Duration::from_secs(5),
                sqlx::query(RELEASE).bind(&token).execute(&pool),
            )
            .await;
            if !matches!(deleted, Ok(Ok(_))) {
                tracing::warn!("releasing a turn's place failed; it will expire");
            }
        }
    }
}

impl Drop for UserTurn {
    fn drop(&mut self) {
        match &self.0 {
            Held::Uncounted => {}
            Held::Memory { user, counts } => {
                let mut map = counts.lock().unwrap_or_else(|p| p.into_inner());
                if let Some(n) = map.get_mut(user) {
                    *n = n.saturating_sub(1);
                    if *n == 0 {
                        map.remove(user);
                    }
                }
            }
            Held::Postgres { pool, token } => {
                // Without a runtime (shutting down) or a database the row expires instead.
                let Ok(rt) = tokio::runtime::Handle::try_current() else {
                    return;
                };
                let (pool, token) = (pool.clone(), token.clone());
                rt.spawn(async move {
                    if let Err(e) = sqlx::query(RELEASE).bind(&token).execute(&pool).await {
                        tracing::warn!(error = %e, "releasing a turn's place failed; it will expire");
                    }
                });
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use todo_test_support::{Kind, TestDb};

    use super::*;

    #[tokio::test]
    async fn each_user_gets_the_cap_and_a_finished_turn_frees_its_place() {
        let f = InFlight::new(2);
        let a1 = f.start("alice").await.unwrap();
        let _a2 = f.start("alice").await.unwrap();
        let e = f.start("alice").await.unwrap_err();
        assert_eq!(e.status, StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(e.retry_after, Some(2));
        let b = f.start("bob").await.unwrap();
        a1.release().await;
        let _a3 = f.start("alice").await.unwrap();
        drop(b);
        assert_eq!(f.users(), 1, "bob's entry is gone with his turn");
        assert!(InFlight::new(0).start("alice").await.is_ok());
    }

    #[tokio::test]
    async fn sqlite_counts_in_this_process() {
        let Some(t) = TestDb::new(Kind::Sqlite).await.unwrap() else {
            return;
        };
        let f = InFlight::counted_in(&t.db, 1, Duration::from_secs(60));
        assert_eq!(f.backend(), "memory");
        let _a = f.start("alice").await.unwrap();
        assert!(f.start("alice").await.is_err());
        t.cleanup().await;
    }

    async fn places(db: &Database, user: &str) -> i64 {
        let Database::Postgres(p) = db else {
            unreachable!("a PostgreSQL test")
        };
        sqlx::query_scalar("SELECT COUNT(*) FROM user_turns WHERE user_id = $1")
            .bind(user)
            .fetch_one(p)
            .await
            .unwrap()
    }

    /// Three pools stand for three replicas: under concurrent starts from all of them one
    /// person gets the cap once, not once per replica; an ended turn frees its place for any
    /// replica; a place left by a dead process stops counting when it expires.
    #[tokio::test]
    async fn postgres_counts_one_cap_across_replicas_and_never_leaks_a_place() {
        let Some(t) = TestDb::new(Kind::Postgres).await.unwrap() else {
            return;
        };
        let mut replicas = Vec::new();
        for _ in 0..3 {
            let db = Database::connect(Some(&t.url), &todo_core::db::DbOptions::default())
                .await
                .unwrap();
            replicas.push(InFlight::counted_in(&db, 2, Duration::from_secs(600)));
        }
        assert_eq!(replicas[0].backend(), "postgres");
        let starts = (0..12).map(|i| replicas[i % 3].start("alice"));
        let results = futures::future::join_all(starts).await;
        let (held, refused): (Vec<_>, Vec<_>) = results.into_iter().partition(Result::is_ok);
        assert_eq!(held.len(), 2, "one cap for all replicas");
        for e in refused.into_iter().map(Result::unwrap_err) {
            assert_eq!(e.status, StatusCode::TOO_MANY_REQUESTS);
            assert_eq!(e.code, "too_many_turns");
        }
        // Another person is counted apart.
        let bob = replicas[1].start("bob").await.unwrap();

        // A turn that ends frees its place for every replica (the delete runs in the
        // background: poll for it).
        drop(held);
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        while places(&t.db, "alice").await > 0 {
            assert!(tokio::time::Instant::now() < deadline, "places never freed");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let a = replicas[2].start("alice").await.unwrap();

        // A process that dies mid-turn never deletes its row: the place stays taken until
        // the row expires, and then counts no more.
        std::mem::forget(a);
        std::mem::forget(replicas[0].start("alice").await.unwrap());
        assert!(replicas[1].start("alice").await.is_err());
        let Database::Postgres(p) = &t.db else {
            unreachable!()
        };
        sqlx::query("UPDATE user_turns SET expires_at = now() - interval '1 second' WHERE user_id = 'alice'")
            .execute(p)
            .await
            .unwrap();
        let _again = replicas[1].start("alice").await.unwrap();
        let _twice = replicas[2].start("alice").await.unwrap();
        assert_eq!(places(&t.db, "alice").await, 2, "expired rows are cleared");
        drop(bob);
        t.cleanup().await;
    }

    #[tokio::test]
    async fn postgres_unreachable_is_503_not_a_free_pass() {
        let Some(t) = TestDb::new(Kind::Postgres).await.unwrap() else {
            return;
        };
        let db = Database::connect(Some(&t.url), &todo_core::db::DbOptions::default())
            .await
            .unwrap();
        let f = InFlight::counted_in(&db, 2, Duration::from_secs(60));
        db.close().await;
        let e = f.start("alice").await.unwrap_err();
        assert_eq!(e.status, StatusCode::SERVICE_UNAVAILABLE);
        t.cleanup().await;
    }
}
