//! HTTP API tests: the real application, a fresh database per test, wiremock as the LLM.

#![allow(clippy::unwrap_used)]

mod admission;
mod auth;
mod caps;
mod chat;
mod commands;
mod crash;
mod failures;
mod grounding;
mod guard;
mod helpers;
mod hostile;
mod limits;
mod logs;
mod observability;
mod page;
mod providers;
mod remote_mcp;
mod remote_reads;
mod repeat;
mod rereads;
mod retention;
mod routes;
mod stalls;
mod store;
mod stream;
mod undo;
mod usage;
mod validation;

use todo_test_support::tokens;
