//! HTTP API tests: the real application, a fresh database per test, wiremock as the LLM.

#![allow(clippy::unwrap_used)]

mod auth;
mod chat;
mod failures;
mod helpers;
mod hostile;
mod limits;
mod observability;
mod providers;
mod remote_mcp;
mod store;
#[path = "../../../mcp-server/tests/support/tokens.rs"]
mod tokens;
mod validation;
