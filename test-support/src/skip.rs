//! Tests that cannot run where they are run say so: a `SKIPPED: …` line, never a silent
//! pass. Where they must run (CI, `TODO_REQUIRE_POSTGRES`, as `scripts/test.sh` sets) a
//! missing prerequisite is a failure instead.

use std::io::Write;
use std::path::{Path, PathBuf};

/// Whether tests needing PostgreSQL must run here: in CI (`CI` set and not `false`) or with
/// `TODO_REQUIRE_POSTGRES` (also accepted: `REQUIRE_POSTGRES`) set.
pub fn postgres_required() -> bool {
    std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false")
        || std::env::var_os("TODO_REQUIRE_POSTGRES").is_some()
        || std::env::var_os("REQUIRE_POSTGRES").is_some()
}

/// Reports that the running test does not run here, `why` naming what is missing.
///
/// Panics (the test fails) when [`postgres_required`]: there a skip would hide a test that
/// never ran. Otherwise prints `SKIPPED: <test>: <why>` to stderr and, when `TODO_SKIP_LOG`
/// names a file, appends the same line to it (`scripts/test.sh` prints that file after the
/// run, since the test runner hides a passing test's output). The caller then returns.
pub fn skip(why: &str) {
    let thread = std::thread::current();
    let log = std::env::var_os("TODO_SKIP_LOG").map(PathBuf::from);
    report(
        thread.name().unwrap_or("a test"),
        why,
        postgres_required(),
        log.as_deref(),
    );
}

fn report(test: &str, why: &str, required: bool, log: Option<&Path>) {
    assert!(
        !required,
        "{test} cannot run: {why}; tests may not be skipped here (CI or \
         TODO_REQUIRE_POSTGRES is set) — run ./scripts/test.sh, which provides PostgreSQL"
    );
    let line = format!("SKIPPED: {test}: {why}");
    eprintln!("{line}");
    if let Some(path) = log
        && let Ok(mut f) = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
    {
        let _ = writeln!(f, "{line}");
    }
}

#[cfg(test)]
mod tests {
    use super::report;

    #[test]
    #[should_panic(expected = "tests may not be skipped here")]
    fn a_skip_where_tests_must_run_is_a_failure() {
        report("t", "needs PostgreSQL", true, None);
    }

    #[test]
    fn a_skip_elsewhere_is_reported_and_logged_for_the_summary() {
        let path =
            std::env::temp_dir().join(format!("todo-skip-log-{}", uuid::Uuid::new_v4().simple()));
        report("a::b", "needs PostgreSQL", false, Some(&path));
        report("a::c", "needs TLS", false, Some(&path));
        let text = std::fs::read_to_string(&path).expect("the skip log was written");
        let _ = std::fs::remove_file(&path);
        assert_eq!(
            text,
            "SKIPPED: a::b: needs PostgreSQL\nSKIPPED: a::c: needs TLS\n"
        );
    }
}
