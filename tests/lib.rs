//! End-to-end test support for todo-agent: a deterministic mock of an OpenAI-compatible
//! model (also the `mock-llm` binary, reused by benchmarks) and a harness that runs the
//! workspace's real binaries as child processes. The tests are in `tests/e2e.rs`.

pub mod grammar;
pub mod harness;
pub mod mock;
