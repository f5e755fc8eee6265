//! todo-backend: the stateless chat service. HTTP handlers → the agent (one turn: model,
//! tools, prompt) → the conversation store of todo-core; tools come over MCP, from the
//! todo-mcp library in-process or from a remote todo-mcp.

pub mod access;
pub mod agent;
pub mod api;
pub mod app;
pub mod commands;
pub mod config;
pub mod error;
pub mod guard;
pub mod inflight;
pub mod lifecycle;
pub mod limits;
pub mod metrics;
pub mod openapi;
pub mod page;
pub mod preflight;
pub mod remote_read;
pub mod retention;
pub mod sse;
pub mod telemetry;
pub mod usage;
