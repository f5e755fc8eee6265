//! todo-service: the plumbing both binaries run on and nothing else — logging set-up,
//! request ids, bind and host rules, the HTTP server loop with its connection limits, and
//! graceful shutdown. No database and no MCP: both services build on it.

pub mod logfmt;
pub mod runtime;
pub mod serve;
pub mod trace;
