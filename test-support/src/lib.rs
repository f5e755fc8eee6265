//! Test helpers of the todo-agent workspace, used only as a dev-dependency.
//!
//! - [`TestDb`]: a fresh, migrated database of either [`Kind`], removed when dropped — also
//!   when the test panics.
//! - [`on_both_databases!`]: one test body, run as a SQLite and a PostgreSQL test.
//! - [`skip`]: how a test that cannot run here says so (and fails where it must run).
//! - [`process`]: the one launcher of the workspace's real binaries, environment cleared.
//! - [`tokens`]: signed, broken and hostile bearer tokens, and a mock JWKS issuer.
//! - [`logs`]: the tests' own log lines, shown when `TEST_LOG` is set.
//! - [`mcp`]: calling tools as an MCP client and reading their results.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

mod both;
pub mod db;
pub mod logs;
pub mod mcp;
pub mod process;
pub mod settings;
mod skip;
pub mod tokens;

pub use db::{Kind, TestDb, postgres_admin_url};
pub use skip::{postgres_required, skip};
