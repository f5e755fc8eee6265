//! todo-service: the plumbing both binaries run on and nothing else — their shared settings
//! (clap argument groups, `.env`), logging set-up, request ids, bind and host rules, the HTTP
//! server loop with its connection limits, and graceful shutdown. No store and no MCP: it
//! knows `todo-core` only for the settings types it parses (database and token options).

pub mod logfmt;
pub mod runtime;
pub mod serve;
pub mod settings;
pub mod trace;
