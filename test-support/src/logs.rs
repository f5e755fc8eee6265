//! Log capture for in-process tests: with `TEST_LOG` set, the tracing events of the code
//! under test go to the test's captured output (shown for a failing test, or for every test
//! with `--no-capture`), filtered by `RUST_LOG` (default `info`). Without it nothing is
//! installed and tests stay quiet. Child processes: see [`crate::process::Service`].

use std::sync::Once;

/// Whether `TEST_LOG` asks for logs.
pub fn enabled() -> bool {
    std::env::var_os("TEST_LOG").is_some_and(|v| !v.is_empty())
}

/// Installs the test log subscriber once per test process, when [`enabled`]. Called by
/// [`crate::TestDb::new`], so every test with a database gets it.
pub fn init() {
    static INIT: Once = Once::new();
    INIT.call_once(|| {
        if !enabled() {
            return;
        }
        let filter = tracing_subscriber::EnvFilter::try_from_default_env()
            .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
        // Another subscriber may already be set (a test installing its own): keep it.
        let _ = tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_test_writer()
            .try_init();
    });
}
