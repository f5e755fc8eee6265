//! todo-backend: the stateless chat service. HTTP handlers → the agent (one turn: model,
//! tools, prompt) → the conversation store; tools come from the todo-mcp library over MCP.

pub mod access;
pub mod agent;
pub mod api;
pub mod app;
pub mod config;
pub mod error;
pub mod metrics;
pub mod openapi;
pub mod page;
pub mod sse;
pub mod store;
pub mod telemetry;
