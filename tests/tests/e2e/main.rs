//! End to end: the real `todo-backend` and `mock-llm` binaries as child processes, on a
//! fresh database per test (PostgreSQL when `DATABASE_URL` names one, which
//! scripts/test.sh arranges; SQLite otherwise, unless `TODO_REQUIRE_POSTGRES`/`CI` is set).
//!
//! `todo-backend` is found next to this test executable: build the workspace's binaries
//! first (`cargo build --workspace --bins`; `cargo nextest run --workspace` does it).

mod checks;
mod conversation;
mod deployment;
mod fleet;
mod mcp_balanced;
mod proxy;
mod replicas;
mod retries;
mod shutdown;
mod support;
