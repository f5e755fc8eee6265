//! HTTP API tests: the real application, a fresh database per test, wiremock as the LLM.

#![allow(clippy::unwrap_used)]

mod auth;
mod chat;
mod failures;
mod helpers;
mod hostile;
mod limits;
mod observability;
mod page;
mod remote_mcp;
mod store;
mod stream;
#[path = "../../../mcp-server/tests/support/tokens.rs"]
mod tokens;
mod validation;
