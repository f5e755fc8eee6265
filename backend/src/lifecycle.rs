//! A replica's life behind a load balancer: readiness that follows the database and
//! shutdown, new work refused fast (503 with `Retry-After`) while the replica cannot take
//! it, and a SIGTERM drain that lets every turn in flight finish before the listener closes.
//!
//! On SIGTERM: `/readyz` answers 503 at once and new chat turns get a retryable 503; the
//! process keeps listening for `SHUTDOWN_DELAY_SECS` and until its turns in flight are done
//! (at most `SHUTDOWN_TIMEOUT_SECS`), then stops accepting, finishes open requests and exits.

use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::{Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use todo_core::db::Database;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::access::Access;
use crate::error::ApiError;

/// How often the database is probed in the background, and how long one probe may take.
const PROBE_EVERY: Duration = Duration::from_secs(2);
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);
/// Failed probes in a row before turns are refused: one slow probe on a busy machine is
/// not an outage.
const DOWN_AFTER: u32 = 2;

/// Whether this replica should get traffic.
pub struct Lifecycle {
    db: Database,
    draining: AtomicBool,
    /// Database probes failed in a row.
    db_failures: AtomicU32,
}

impl Lifecycle {
    /// Starts following `db` in the background (until the lifecycle is dropped).
    pub fn start(db: Database) -> Arc<Lifecycle> {
        let l = Arc::new(Lifecycle {
            db,
            draining: AtomicBool::new(false),
            db_failures: AtomicU32::new(0),
        });
        let weak = Arc::downgrade(&l);
        tokio::spawn(watch_database(weak));
        l
    }

    /// Shutting down: no new turns.
    pub fn draining(&self) -> bool {
        self.draining.load(Ordering::Relaxed)
    }

    /// The database answered at least one of the last probes.
    pub fn database_up(&self) -> bool {
        self.db_failures.load(Ordering::Relaxed) < DOWN_AFTER
    }

    /// Probes the database now and records the answer.
    async fn probe(&self) -> bool {
        let ok = match tokio::time::timeout(PROBE_TIMEOUT, self.db.ping()).await {
            Ok(Ok(())) => true,
            Ok(Err(e)) => {
                tracing::debug!(error = %e, "database probe failed");
                false
            }
            Err(_) => false,
        };
        if ok {
            if self.db_failures.swap(0, Ordering::Relaxed) >= DOWN_AFTER {
                tracing::info!("database reachable again; taking turns");
            }
        } else if self.db_failures.fetch_add(1, Ordering::Relaxed) + 1 == DOWN_AFTER {
            tracing::warn!("database unreachable; refusing turns until it answers");
        }
        ok
    }

    /// For `/readyz`: ready unless draining or the database does not answer now.
    pub async fn ready(&self) -> Result<(), ApiError> {
        if self.draining() {
            return Err(shutting_down());
        }
        if !self.probe().await {
            return Err(database_away());
        }
        Ok(())
    }

    /// Turns readiness off and refuses new turns.
    pub fn begin_draining(&self) {
        self.draining.store(true, Ordering::Relaxed);
    }
}

fn shutting_down() -> ApiError {
    ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "shutting_down",
        "This server is restarting; send the message again.",
    )
    .with_retry_after(1)
}

fn database_away() -> ApiError {
    ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "database_unavailable",
        "The service cannot reach its database right now; try again shortly.",
    )
    .with_retry_after(2)
}

async fn watch_database(lifecycle: Weak<Lifecycle>) {
    loop {
        tokio::time::sleep(PROBE_EVERY).await;
        let Some(l) = lifecycle.upgrade() else { return };
        l.probe().await;
    }
}

/// Route middleware for `/api`: new turns (POST) are refused while draining, and every call
/// is refused while the database is known to be away, at once rather than after a pool
/// time-out.
pub async fn gate(State(l): State<Arc<Lifecycle>>, req: Request, next: Next) -> Response {
    if l.draining() && req.method() == Method::POST {
        return shutting_down().into_response();
    }
    if !l.database_up() {
        return database_away().into_response();
    }
    next.run(req).await
}

/// Shutdown timing (`SHUTDOWN_DELAY_SECS`, `SHUTDOWN_TIMEOUT_SECS`).
#[derive(Debug, Clone)]
pub struct ShutdownSettings {
    /// Keep listening (unready, refusing turns) at least this long after SIGTERM, so a
    /// balancer that has not yet seen the readiness change gets a retryable 503, not a reset.
    pub delay: Duration,
    /// Exit at the latest this long after SIGTERM, turns finished or not. Kubernetes'
    /// `terminationGracePeriodSeconds` must exceed the preStop delay plus this.
    pub timeout: Duration,
}

/// Waits for `signal`, drains, then cancels the returned token (which stops the listener).
/// The second value is the deadline by which the process must be gone.
pub fn drain_on(
    signal: CancellationToken,
    lifecycle: Arc<Lifecycle>,
    access: Arc<Access>,
    settings: ShutdownSettings,
) -> (
    CancellationToken,
    tokio::sync::watch::Receiver<Option<Instant>>,
) {
    let stop = CancellationToken::new();
    let (deadline_tx, deadline_rx) = tokio::sync::watch::channel(None);
    let s = stop.clone();
    tokio::spawn(async move {
        signal.cancelled().await;
        let started = Instant::now();
        let deadline = started + settings.timeout;
        let _ = deadline_tx.send(Some(deadline));
        lifecycle.begin_draining();
        tracing::info!(
            turns_in_flight = access.turns_in_flight(),
            "draining: readiness off, new turns refused"
        );
        let linger = (started + settings.delay).min(deadline);
        loop {
            let now = Instant::now();
            if now >= deadline {
                tracing::warn!(
                    turns_in_flight = access.turns_in_flight(),
                    "shutdown timeout reached with turns still running; closing the listener"
                );
                break;
            }
            if now >= linger && access.turns_in_flight() == 0 {
                tracing::info!("turns drained; closing the listener");
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        s.cancel();
    });
    (stop, deadline_rx)
}

/// Resolves once the shutdown deadline (set when draining starts) has passed.
pub async fn past(mut deadline: tokio::sync::watch::Receiver<Option<Instant>>) {
    let at = loop {
        if let Some(at) = *deadline.borrow_and_update() {
            break at;
        }
        if deadline.changed().await.is_err() {
            // The drain task is gone without a deadline: never resolve.
            std::future::pending::<()>().await;
        }
    };
    tokio::time::sleep_until(at).await;
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use todo_test_support::{Kind, TestDb};

    use super::*;

    #[tokio::test]
    async fn draining_turns_readiness_off_with_a_retryable_answer() {
        let t = TestDb::new(Kind::Sqlite).await.unwrap().unwrap();
        let l = Lifecycle::start(t.db.clone());
        assert!(l.ready().await.is_ok());
        l.begin_draining();
        let err = l.ready().await.unwrap_err();
        assert_eq!(err.status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(err.code, "shutting_down");
        assert_eq!(err.retry_after, Some(1));
        t.cleanup().await;
    }

    #[tokio::test]
    async fn a_closed_database_is_not_ready() {
        let t = TestDb::new(Kind::Sqlite).await.unwrap().unwrap();
        let l = Lifecycle::start(t.db.clone());
        t.db.close().await;
        let err = l.ready().await.unwrap_err();
        assert_eq!(err.code, "database_unavailable");
        assert!(l.database_up(), "one failed probe is not an outage");
        assert!(l.ready().await.is_err());
        assert!(!l.database_up(), "two are");
        t.cleanup().await;
    }
}
