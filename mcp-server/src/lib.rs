//! todo-mcp: the task domain, its PostgreSQL and SQLite stores, and the MCP tool server.
//! The chat backend builds on this library; nothing here knows about the backend.

pub mod auth;
pub mod db;
pub mod http;
pub mod logfmt;
pub mod runtime;
pub mod serve;
pub mod tasks;
#[doc(hidden)]
pub mod testing;
pub mod tools;
