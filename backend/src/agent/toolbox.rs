//! The agent's tools, reached through MCP: in-process (client and server joined by an
//! in-memory duplex, no network hop) or a remote `todo-mcp http`. Function definitions
//! for the model are generated from the MCP tool list, never written twice.

use std::collections::HashSet;
use std::sync::Arc;

use anyhow::Context;
use rmcp::model::{CallToolRequestParams, CallToolResult, ContentBlock, JsonObject, Tool};
use rmcp::service::RunningService;
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use rmcp::{RoleClient, ServiceExt};
use secrecy::ExposeSecret;
use serde_json::{Value, json};
use todo_core::auth::ServiceCredential;
use todo_core::conversations::{ToolCallRecord, ToolExecution};
use todo_core::tasks::TaskStore;
use todo_mcp::tools::{Identity, TaskTools};
use tracing::Instrument;
use uuid::Uuid;

/// Where the tools run.
#[derive(Clone)]
enum Source {
    InProcess(Arc<dyn TaskStore>),
    /// A remote server, called with the backend's own credential naming the user.
    Remote(String, ServiceCredential),
}

/// The tool catalogue and the way to reach it.
#[derive(Clone)]
pub struct Toolbox {
    source: Source,
    functions: Arc<Vec<Value>>,
    names: Arc<HashSet<String>>,
    destructive: Arc<HashSet<String>>,
    read_only: Arc<HashSet<String>>,
}

/// The outcome of one tool call, as the model and the API see it.
#[derive(Debug, Clone)]
pub struct ToolOutcome {
    /// Structured result (or `{"error": message}`).
    pub result: Value,
    /// Text for the model.
    pub text: String,
    pub is_error: bool,
}

impl ToolOutcome {
    /// This outcome's row in the audit trail (`tool_executions`).
    pub fn audit(
        &self,
        user: &str,
        conversation: Uuid,
        call: &ToolCallRecord,
        elapsed: std::time::Duration,
    ) -> ToolExecution {
        ToolExecution {
            user_id: user.to_string(),
            conversation_id: Some(conversation),
            tool_call_id: Some(call.id.clone()),
            tool: call.name.clone(),
            arguments: call.arguments.clone(),
            result: self.result.to_string(),
            is_error: self.is_error,
            duration_ms: elapsed.as_millis() as i64,
        }
    }

    pub fn error(message: impl Into<String>) -> ToolOutcome {
        let message = message.into();
        ToolOutcome {
            result: json!({ "error": message }),
            text: message,
            is_error: true,
        }
    }
}

/// An MCP client session acting for one user.
pub struct ToolSession {
    client: RunningService<RoleClient, ()>,
}

/// Drops what tells a model nothing but costs tokens on every call: the meta-schema key
/// (which some OpenAI-compatible servers also reject), `"default": null` and integer formats.
fn compact_schema(v: &mut Value) {
    match v {
        Value::Object(o) => {
            o.remove("$schema");
            if o.get("default") == Some(&Value::Null) {
                o.remove("default");
            }
            if o.get("format")
                .and_then(Value::as_str)
                .is_some_and(|f| matches!(f, "int64" | "int32" | "uint32" | "uint64" | "uint"))
            {
                o.remove("format");
            }
            o.values_mut().for_each(compact_schema);
        }
        Value::Array(a) => a.iter_mut().for_each(compact_schema),
        _ => {}
    }
}

/// OpenAI function definition from an MCP tool.
pub fn function_definition(t: &Tool) -> Value {
    let mut params = Value::Object((*t.input_schema).clone());
    compact_schema(&mut params);
    json!({
        "type": "function",
        "function": {
            "name": t.name,
            "description": t.description.as_deref().unwrap_or(""),
            "parameters": params,
        }
    })
}

impl Toolbox {
    /// Tools served in this process over `store`.
    pub async fn in_process(store: Arc<dyn TaskStore>) -> anyhow::Result<Toolbox> {
        Self::discover(Source::InProcess(store)).await
    }

    /// Tools of a remote `todo-mcp http` at `url`, called with `credential`.
    pub async fn remote(url: &str, credential: ServiceCredential) -> anyhow::Result<Toolbox> {
        Self::discover(Source::Remote(url.to_string(), credential))
            .await
            .with_context(|| format!("cannot list the tools of the MCP server at {url}"))
    }

    async fn discover(source: Source) -> anyhow::Result<Toolbox> {
        let mut tb = Toolbox {
            source,
            functions: Arc::default(),
            names: Arc::default(),
            destructive: Arc::default(),
            read_only: Arc::default(),
        };
        // The catalogue is the same for every user; list it once through a real session.
        let session = tb.session("catalogue").await?;
        let tools = session
            .client
            .list_all_tools()
            .await
            .context("tools/list failed")?;
        session.close().await;
        tb.functions = Arc::new(tools.iter().map(function_definition).collect());
        tb.names = Arc::new(tools.iter().map(|t| t.name.to_string()).collect());
        tb.destructive = Arc::new(
            tools
                .iter()
                .filter(|t| {
                    t.annotations.as_ref().is_some_and(|a| {
                        a.destructive_hint == Some(true) && a.read_only_hint != Some(true)
                    })
                })
                .map(|t| t.name.to_string())
                .collect(),
        );
        tb.read_only = Arc::new(
            tools
                .iter()
                .filter(|t| {
                    t.annotations
                        .as_ref()
                        .is_some_and(|a| a.read_only_hint == Some(true))
                })
                .map(|t| t.name.to_string())
                .collect(),
        );
        Ok(tb)
    }

    /// Function definitions for the model.
    pub fn functions(&self) -> &[Value] {
        &self.functions
    }

    pub fn knows(&self, name: &str) -> bool {
        self.names.contains(name)
    }

    /// The tool names, sorted (for messages to the model).
    pub fn names(&self) -> Vec<&str> {
        let mut v: Vec<&str> = self.names.iter().map(String::as_str).collect();
        v.sort_unstable();
        v
    }

    /// Whether the tools run in a remote todo-mcp, whose store may not be this backend's:
    /// then every task read goes through MCP too.
    pub fn is_remote(&self) -> bool {
        matches!(self.source, Source::Remote(..))
    }

    /// Whether the tool is annotated read-only (it changes nothing).
    pub fn is_read_only(&self, name: &str) -> bool {
        self.read_only.contains(name)
    }

    /// Whether the tool is annotated destructive.
    pub fn is_destructive(&self, name: &str) -> bool {
        self.destructive.contains(name)
    }

    /// Opens a session acting for `user`; in-process tools read due date-times without an
    /// offset in the machine's zone (`TODO_TIMEZONE`).
    pub async fn session(&self, user: &str) -> anyhow::Result<ToolSession> {
        let tz = todo_mcp::tools::args::configured_timezone().unwrap_or(chrono_tz::Tz::UTC);
        self.session_in_zone(user, tz).await
    }

    /// Opens a session acting for `user` whose in-process tools read due date-times without
    /// an offset in `tz` (the chat request's zone). A remote server applies its own setting.
    pub async fn session_in_zone(
        &self,
        user: &str,
        tz: chrono_tz::Tz,
    ) -> anyhow::Result<ToolSession> {
        let client =
            match &self.source {
                Source::InProcess(store) => {
                    let (client_io, server_io) = tokio::io::duplex(256 * 1024);
                    // One session is one turn: its changes form one undo group.
                    let tools = TaskTools::new(store.clone(), Identity::Fixed(user.to_string()))
                        .in_group(&uuid::Uuid::now_v7().to_string())
                        .with_timezone(tz);
                    // The server task carries the turn's span, so its database work is logged
                    // under the request's id.
                    tokio::spawn(async move {
                    match tools.serve(server_io).await {
                        Ok(running) => {
                            let _ = running.waiting().await;
                        }
                        Err(e) => {
                            tracing::warn!(error = %e, "in-process MCP server failed to start")
                        }
                    }
                }.instrument(tracing::Span::current()));
                    ().serve(client_io)
                        .await
                        .context("in-process MCP handshake failed")?
                }
                Source::Remote(url, credential) => {
                    // Never the person's own token: a short credential of ours naming them.
                    let token = credential.token_for(user)?;
                    // Every call of this session (one turn) in one undo group.
                    let group = http::HeaderValue::from_str(&uuid::Uuid::now_v7().to_string())?;
                    let transport = StreamableHttpClientTransport::from_config(
                        StreamableHttpClientTransportConfig::with_uri(url.as_str())
                            .auth_header(token.expose_secret())
                            .custom_headers(std::collections::HashMap::from([(
                                http::HeaderName::from_static(todo_mcp::tools::CHANGE_GROUP_HEADER),
                                group,
                            )])),
                    );
                    ().serve(transport)
                        .await
                        .context("MCP handshake with the remote server failed")?
                }
            };
        Ok(ToolSession { client })
    }
}

impl ToolSession {
    /// Calls a tool; every failure becomes an error outcome the model can read.
    #[tracing::instrument(name = "tool_call", skip(self, args), fields(tool = %name))]
    pub async fn call(&self, name: &str, args: JsonObject) -> ToolOutcome {
        let params = CallToolRequestParams::new(name.to_string()).with_arguments(args);
        match self.client.call_tool(params).await {
            Ok(r) => outcome(r),
            Err(e) => {
                tracing::warn!(tool = name, error = %e, "MCP tool call failed");
                ToolOutcome::error(format!("The tool {name} could not be run: {e}"))
            }
        }
    }

    /// Lists tasks through the `list_tasks` tool (the store the tools write).
    pub async fn list_tasks(&self, args: JsonObject) -> anyhow::Result<todo_core::tasks::TaskPage> {
        let o = self.call("list_tasks", args).await;
        anyhow::ensure!(!o.is_error, "list_tasks failed: {}", o.text);
        serde_json::from_value(o.result).context("list_tasks answered an unexpected shape")
    }

    pub async fn close(self) {
        let _ = self.client.cancel().await;
    }
}

fn outcome(r: CallToolResult) -> ToolOutcome {
    let text = r
        .content
        .iter()
        .filter_map(|c| match c {
            ContentBlock::Text(t) => Some(t.text.as_str()),
            _ => None,
        })
        .collect::<Vec<_>>()
        .join("\n");
    let is_error = r.is_error == Some(true);
    let result = match r.structured_content {
        Some(v) => v,
        None if is_error => json!({ "error": text }),
        None => json!({ "text": text }),
    };
    ToolOutcome {
        result,
        text,
        is_error,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schemas_sent_to_the_model_keep_meaning_and_lose_noise() {
        let mut v = json!({
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "type": "object",
            "additionalProperties": false,
            "properties": {
                "id": {"type": "integer", "format": "int64", "description": "n"},
                "due": {"type": ["string", "null"], "default": null},
                "limit": {"type": ["integer", "null"], "format": "uint32", "minimum": 0, "default": 20},
                "when": {"type": "string", "format": "date-time"}
            },
            "required": ["id"]
        });
        compact_schema(&mut v);
        assert_eq!(
            v,
            json!({
                "type": "object",
                "additionalProperties": false,
                "properties": {
                    "id": {"type": "integer", "description": "n"},
                    "due": {"type": ["string", "null"]},
                    "limit": {"type": ["integer", "null"], "minimum": 0, "default": 20},
                    "when": {"type": "string", "format": "date-time"}
                },
                "required": ["id"]
            })
        );
    }
}
