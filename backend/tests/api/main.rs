//! HTTP API tests: the real application, a fresh database per test, wiremock as the LLM.

mod chat;
mod failures;
mod helpers;
mod observability;
mod store;
mod validation;
