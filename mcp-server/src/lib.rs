//! todo-mcp: the MCP tool server over the task domain of `todo-core` — the tools and their
//! stdio and streamable-HTTP transports — and the settings both binaries parse. The chat
//! backend serves these tools in-process.

pub mod http;
pub mod tools;
