//! End-to-end test support for todo-agent: a deterministic mock of an OpenAI-compatible
//! model (also the `mock-llm` binary, reused by benchmarks). The tests are in `tests/e2e.rs`;
//! the process launcher they use is `todo_test_support::process`.

pub mod grammar;
pub mod mock;
