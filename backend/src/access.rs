//! Who may call the API, and how much: bearer tokens on every `/api` route with the path's
//! `{user_id}` bound to the token's `sub`, a per-user rate of chat turns, a cap on concurrent
//! model turns in this process, and CORS for the configured origins only.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, Request, State};
use axum::http::{HeaderName, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use secrecy::SecretString;
use todo_core::auth::{AuthError, AuthSettings, Verifier, bearer_token};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tower_http::cors::{AllowOrigin, CorsLayer};

use crate::error::ApiError;

/// Authentication and abuse-limit settings. Secrets cannot be printed.
#[derive(Debug, Clone)]
pub struct AccessSettings {
    /// How user tokens are verified (`AUTH_*`); nothing configured: open, loopback only.
    pub auth: AuthSettings,
    /// `MCP_SERVICE_SECRET`: signs the backend's credential toward a remote todo-mcp.
    pub mcp_service_secret: Option<SecretString>,
    /// `RATE_LIMIT_PER_MINUTE`: chat turns one user may start per minute (0: no limit).
    pub rate_limit_per_minute: u32,
    /// `MAX_CONCURRENT_TURNS`: model turns running at once in this process.
    pub max_concurrent_turns: usize,
    /// `ALLOWED_ORIGINS`: browser origins granted CORS.
    pub allowed_origins: Vec<String>,
    /// `ALLOWED_HOSTS`: `Host` names accepted besides loopback (see `guard`).
    pub allowed_hosts: Vec<String>,
    /// `METRICS_TOKEN`: when set, `/metrics` needs it as a bearer token.
    pub metrics_token: Option<SecretString>,
    /// `SINGLE_USER_DEV`: allows a remote todo-mcp without user authentication.
    pub single_user_dev: bool,
    /// `MCP_ALLOW_PLAIN_HTTP`: allows plain http to a non-loopback `MCP_SERVER_URL`.
    pub mcp_allow_plain_http: bool,
    /// `MAX_TURNS_PER_USER`: chat turns one user may have in flight (0: no cap); on
    /// PostgreSQL counted across replicas.
    pub max_turns_per_user: usize,
}

impl Default for AccessSettings {
    fn default() -> Self {
        AccessSettings {
            auth: AuthSettings::default(),
            mcp_service_secret: None,
            rate_limit_per_minute: 30,
            max_concurrent_turns: 32,
            allowed_origins: Vec::new(),
            allowed_hosts: Vec::new(),
            metrics_token: None,
            single_user_dev: false,
            mcp_allow_plain_http: false,
            max_turns_per_user: 4,
        }
    }
}

/// The access rules of a running service.
pub struct Access {
    verifier: Option<Verifier>,
    rate: crate::limits::UserLimit,
    turns: Arc<Semaphore>,
    max_turns: usize,
    allowed_origins: Vec<HeaderValue>,
    /// Host and Origin rules (and the `/metrics` token).
    pub guard: Arc<crate::guard::Guard>,
    /// Turns in flight per user.
    pub in_flight: crate::inflight::InFlight,
}

impl Access {
    pub fn new(s: &AccessSettings) -> anyhow::Result<Access> {
        let guard = Arc::new(crate::guard::Guard::new(
            &s.allowed_hosts,
            &s.allowed_origins,
            s.metrics_token.clone(),
        )?);
        let verifier = if s.auth.is_configured() {
            Some(Verifier::new(&s.auth)?)
        } else {
            None
        };
        let allowed_origins = s
            .allowed_origins
            .iter()
            .map(|o| {
                HeaderValue::from_str(o.trim_end_matches('/'))
                    .map_err(|_| anyhow::anyhow!("ALLOWED_ORIGINS has an invalid origin {o:?}"))
            })
            .collect::<anyhow::Result<_>>()?;
        Ok(Access {
            verifier,
            rate: crate::limits::UserLimit::in_memory("chat", s.rate_limit_per_minute),
            turns: Arc::new(Semaphore::new(s.max_concurrent_turns.max(1))),
            max_turns: s.max_concurrent_turns.max(1),
            allowed_origins,
            guard,
            in_flight: crate::inflight::InFlight::new(s.max_turns_per_user),
        })
    }

    /// The token verifier, when authentication is configured.
    pub fn verifier(&self) -> Option<&Verifier> {
        self.verifier.as_ref()
    }

    /// Counts per-user limits in `db` when it is shared by replicas (PostgreSQL).
    pub fn counted_in(mut self, db: &todo_core::db::Database, per_minute: u32) -> Access {
        self.rate = crate::limits::UserLimit::counted_in(db, "chat", per_minute);
        self
    }

    /// Counts each user's turns in flight in `db` when it is shared by replicas (PostgreSQL);
    /// a place left by a dead process counts for `hold` at most.
    pub fn turns_counted_in(
        mut self,
        db: &todo_core::db::Database,
        max_per_user: usize,
        hold: Duration,
    ) -> Access {
        self.in_flight = crate::inflight::InFlight::counted_in(db, max_per_user, hold);
        self
    }

    /// Model turns running now in this process (their slots are taken).
    pub fn turns_in_flight(&self) -> usize {
        self.max_turns
            .saturating_sub(self.turns.available_permits())
    }

    /// Counts one chat turn of `user`; 429 with `Retry-After` past the rate.
    pub async fn check_rate(&self, user: &str) -> Result<(), ApiError> {
        let counted = self
            .rate
            .check(user)
            .await
            .map_err(|e| ApiError::unavailable("counting the chat rate failed", &e))?;
        counted.map_err(|wait| {
            let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
            ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "rate_limited",
                "Too many messages in a short time; wait a moment and send it again.",
            )
            .with_retry_after(secs.max(1))
        })
    }

    /// A slot for one model turn, held until the turn ends; 503 when all are taken. Never
    /// queues: a saturated process sheds load at once.
    pub fn start_turn(&self) -> Result<OwnedSemaphorePermit, ApiError> {
        self.turns.clone().try_acquire_owned().map_err(|_| {
            ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "busy",
                "The service is answering as many messages as it can; try again in a moment.",
            )
            .with_retry_after(2)
        })
    }

    /// Wraps `router` in CORS for the allowed origins; with none, no CORS headers at all.
    pub fn with_cors(&self, router: Router) -> Router {
        if self.allowed_origins.is_empty() {
            return router;
        }
        router.layer(
            CorsLayer::new()
                .allow_origin(AllowOrigin::list(self.allowed_origins.clone()))
                .allow_methods([Method::GET, Method::POST])
                .allow_headers([
                    header::AUTHORIZATION,
                    header::CONTENT_TYPE,
                    HeaderName::from_static("idempotency-key"),
                ])
                .expose_headers([
                    header::RETRY_AFTER,
                    HeaderName::from_static("idempotent-replayed"),
                ])
                .max_age(Duration::from_secs(600)),
        )
    }
}

fn unauthorized(err: &AuthError) -> Response {
    tracing::debug!(reason = %err, "API request refused");
    let mut resp =
        ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", err.to_string()).into_response();
    if let Ok(v) = HeaderValue::from_str(&err.www_authenticate(&[])) {
        resp.headers_mut().insert(header::WWW_AUTHENTICATE, v);
    }
    resp
}

/// Route middleware for `/api/{user_id}/…`: a verified bearer token whose `sub` is the path's
/// user. Without authentication configured (loopback only) every request passes.
pub async fn require_owner(
    State(access): State<Arc<Access>>,
    params: Result<Path<HashMap<String, String>>, PathRejection>,
    req: Request,
    next: Next,
) -> Response {
    let Some(verifier) = access.verifier() else {
        return next.run(req).await;
    };
    let verified = match bearer_token(req.headers()) {
        Ok(token) => verifier.verify(token).await,
        Err(e) => Err(e),
    };
    let user = match verified {
        Ok(u) => u,
        Err(e) => return unauthorized(&e),
    };
    let path_user = match &params {
        Ok(Path(p)) => p.get("user_id").map(String::as_str),
        Err(_) => None,
    };
    if path_user != Some(user.sub.as_str()) {
        return ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            "This token belongs to another user.",
        )
        .into_response();
    }
    next.run(req).await
}

/// Chat turns per user per minute, as a generic cell rate (GCRA): a full minute's allowance
/// may be spent at once, then one more per `60 s / rate`.
///
/// In-process: the counter for SQLite (one process); with PostgreSQL the same algorithm runs
/// in the database (`crate::limits`), so replicas share one allowance.
pub struct RateLimiter {
    per_minute: u32,
    /// Theoretical arrival time of the next allowed turn, per user.
    next: Mutex<HashMap<String, Instant>>,
}

/// Entries kept before idle users are swept out.
const SWEEP_ABOVE: usize = 10_000;

impl RateLimiter {
    pub fn new(per_minute: u32) -> RateLimiter {
        RateLimiter {
            per_minute,
            next: Mutex::new(HashMap::new()),
        }
    }

    /// Counts one turn for `key`, or says how long to wait.
    pub fn check(&self, key: &str) -> Result<(), Duration> {
        if self.per_minute == 0 {
            return Ok(());
        }
        let interval = Duration::from_secs(60) / self.per_minute;
        let tolerance = Duration::from_secs(60).saturating_sub(interval);
        let now = Instant::now();
        let mut next = match self.next.lock() {
            Ok(n) => n,
            Err(poisoned) => poisoned.into_inner(),
        };
        if next.len() > SWEEP_ABOVE {
            next.retain(|_, t| *t > now);
        }
        let tat = next.get(key).copied().filter(|t| *t > now).unwrap_or(now);
        let ahead = tat - now;
        if ahead > tolerance {
            return Err(ahead - tolerance);
        }
        next.insert(key.to_string(), tat + interval);
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn the_rate_allows_a_burst_then_one_per_interval_per_user() {
        let r = RateLimiter::new(3);
        for _ in 0..3 {
            assert!(r.check("alice").is_ok());
        }
        let wait = r.check("alice").unwrap_err();
        assert!(
            wait > Duration::from_secs(15) && wait <= Duration::from_secs(20),
            "{wait:?}"
        );
        assert!(r.check("bob").is_ok(), "users are counted apart");
        assert!(RateLimiter::new(0).check("alice").is_ok());
    }
}
