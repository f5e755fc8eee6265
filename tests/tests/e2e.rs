//! End to end: the real `todo-backend` and `mock-llm` binaries as child processes, on a
//! fresh database per test (PostgreSQL when `DATABASE_URL` names one, which
//! scripts/test.sh arranges; SQLite otherwise, unless `REQUIRE_POSTGRES`/`CI` is set).
//!
//! `todo-backend` is found next to this test executable: build the workspace's binaries
//! first (`cargo build --workspace --bins`; `cargo nextest run --workspace` does it).

#[path = "e2e/checks.rs"]
mod checks;
#[path = "e2e/conversation.rs"]
mod conversation;
#[path = "e2e/deployment.rs"]
mod deployment;
#[path = "e2e/fleet.rs"]
mod fleet;
#[path = "e2e/mcp_balanced.rs"]
mod mcp_balanced;
#[path = "e2e/proxy.rs"]
mod proxy;
#[path = "e2e/replicas.rs"]
mod replicas;
#[path = "e2e/retries.rs"]
mod retries;
#[path = "e2e/shutdown.rs"]
mod shutdown;
#[path = "e2e/support.rs"]
mod support;
