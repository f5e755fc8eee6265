//! Injected failures: after `skip` good answers, the next `count` chat completions are
//! answered with an error status, for retry and recovery tests. Deterministic: the
//! requests are counted in the order the mock receives them.

use std::sync::Mutex;

use axum::http::StatusCode;
use serde::{Deserialize, Serialize};

/// What `POST /faults` sets (and answers with).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FaultPlan {
    /// Valid requests answered normally before the failures start.
    #[serde(default)]
    pub skip: u32,
    /// Valid requests answered with `status`.
    #[serde(default)]
    pub count: u32,
    /// An HTTP error status, 400 to 599 (default 500).
    #[serde(default = "default_status")]
    pub status: u16,
    /// A `Retry-After` header value sent with each failure.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_after: Option<String>,
}

fn default_status() -> u16 {
    500
}

impl FaultPlan {
    /// The plan's status, if it is an error status.
    pub fn error_status(&self) -> Option<StatusCode> {
        StatusCode::from_u16(self.status)
            .ok()
            .filter(|s| s.is_client_error() || s.is_server_error())
    }
}

/// The plan in force.
#[derive(Debug, Default)]
pub(super) struct Faults(Mutex<FaultPlan>);

/// How one request is to fail.
pub(super) struct Failure {
    pub(super) status: StatusCode,
    pub(super) retry_after: Option<String>,
}

impl Faults {
    pub(super) fn set(&self, plan: FaultPlan) {
        if let Ok(mut p) = self.0.lock() {
            *p = plan;
        }
    }

    pub(super) fn clear(&self) {
        self.set(FaultPlan::default());
    }

    pub(super) fn current(&self) -> FaultPlan {
        self.0.lock().map(|p| p.clone()).unwrap_or_default()
    }

    /// Consumes one request of the plan: `Some` when this request is to fail.
    pub(super) fn next(&self) -> Option<Failure> {
        let mut p = self.0.lock().ok()?;
        if p.skip > 0 {
            p.skip -= 1;
            return None;
        }
        if p.count == 0 {
            return None;
        }
        p.count -= 1;
        Some(Failure {
            status: p.error_status()?,
            retry_after: p.retry_after.clone(),
        })
    }
}
