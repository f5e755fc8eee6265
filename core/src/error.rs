//! Database failures that say what failed, and a way to print a whole cause chain once.

use std::error::Error;
use std::fmt;

/// A database call that failed: `what` names the operation ("inserting a task"), the
/// driver's error is the source, so a printed chain reads "inserting a task: <sqlx error>".
#[derive(Debug, thiserror::Error)]
#[error("{what}")]
pub struct DbError {
    pub what: &'static str,
    #[source]
    pub source: sqlx::Error,
}

/// Wraps a driver error with the operation it was part of: `.map_err(failed("reading a task"))`.
pub fn failed(what: &'static str) -> impl FnOnce(sqlx::Error) -> DbError {
    move |source| DbError { what, source }
}

/// Displays an error and every cause under it, `outer: inner: root`: for the one log line
/// at the edge where an error ends.
pub struct Chain<'a>(pub &'a (dyn Error + 'static));

impl fmt::Display for Chain<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)?;
        let mut cause = self.0.source();
        while let Some(c) = cause {
            write!(f, ": {c}")?;
            cause = c.source();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_chain_names_the_operation_then_the_driver_error() {
        let e = failed("inserting a task")(sqlx::Error::RowNotFound);
        let shown = Chain(&e).to_string();
        assert!(shown.starts_with("inserting a task: "), "{shown}");
        assert!(shown.contains("no rows returned"), "{shown}");
        assert_eq!(e.to_string(), "inserting a task");
    }
}
