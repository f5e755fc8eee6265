//! A per-user cap on chat turns in flight, so one person cannot take every global slot.
//! Counted in this process: with N replicas a person may have up to N times the cap.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::http::StatusCode;

use crate::error::ApiError;

/// Turns in flight per user.
#[derive(Debug, Default)]
pub struct InFlight {
    max_per_user: usize,
    counts: Arc<Mutex<HashMap<String, usize>>>,
}

/// One turn of one user, counted until dropped.
#[derive(Debug)]
pub struct UserTurn {
    user: String,
    counts: Arc<Mutex<HashMap<String, usize>>>,
}

impl InFlight {
    /// `max_per_user` of 0 means no cap.
    pub fn new(max_per_user: usize) -> InFlight {
        InFlight {
            max_per_user,
            counts: Arc::default(),
        }
    }

    /// Counts a turn of `user`; 429 with `Retry-After` when they already have the cap.
    pub fn start(&self, user: &str) -> Result<UserTurn, ApiError> {
        let mut counts = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        let n = counts.entry(user.to_string()).or_insert(0);
        if self.max_per_user > 0 && *n >= self.max_per_user {
            if *n == 0 {
                counts.remove(user);
            }
            return Err(ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "too_many_turns",
                format!(
                    "You already have {} messages being answered; wait for one to finish.",
                    self.max_per_user
                ),
            )
            .with_retry_after(2));
        }
        *n += 1;
        Ok(UserTurn {
            user: user.to_string(),
            counts: self.counts.clone(),
        })
    }

    /// Users with a turn in flight (for tests: entries never outlive their turns).
    pub fn users(&self) -> usize {
        self.counts.lock().unwrap_or_else(|p| p.into_inner()).len()
    }
}

impl Drop for UserTurn {
    fn drop(&mut self) {
        let mut counts = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = counts.get_mut(&self.user) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                counts.remove(&self.user);
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn each_user_gets_the_cap_and_a_finished_turn_frees_its_place() {
        let f = InFlight::new(2);
        let a1 = f.start("alice").unwrap();
        let _a2 = f.start("alice").unwrap();
        let e = f.start("alice").unwrap_err();
        assert_eq!(e.status, StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(e.retry_after, Some(2));
        let b = f.start("bob").unwrap();
        drop(a1);
        let _a3 = f.start("alice").unwrap();
        drop(b);
        assert_eq!(f.users(), 1, "bob's entry is gone with his turn");
        assert!(InFlight::new(0).start("alice").is_ok());
    }
}
