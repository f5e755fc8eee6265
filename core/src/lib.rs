//! todo-core: what both services share. The task domain and its validation, the stores of
//! tasks and of conversations (PostgreSQL and SQLite), database selection by URL with the
//! migrations, and token verification. Nothing here knows about HTTP serving or MCP.

pub mod auth;
pub mod conversations;
pub mod db;
pub mod error;
pub mod tasks;
pub mod user;
