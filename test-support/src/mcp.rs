//! An MCP client's view of tool results, for tests that call the tools.

use rmcp::RoleClient;
use rmcp::model::{CallToolRequestParams, CallToolResult, JsonObject};
use rmcp::service::RunningService;
use serde_json::Value;

/// A connected MCP client without handlers of its own.
pub type Client = RunningService<RoleClient, ()>;

/// Tool arguments from a JSON object.
#[track_caller]
pub fn args(v: Value) -> JsonObject {
    match v {
        Value::Object(o) => o,
        other => panic!("arguments must be an object, got {other}"),
    }
}

/// Calls `tool`; the call itself must succeed (a tool error is still a result).
pub async fn call(client: &Client, tool: &str, arguments: Value) -> CallToolResult {
    client
        .call_tool(CallToolRequestParams::new(tool.to_string()).with_arguments(args(arguments)))
        .await
        .unwrap_or_else(|e| panic!("{tool} must answer with a tool result, got {e}"))
}

/// The text content of a result, joined by lines.
pub fn text_of(r: &CallToolResult) -> String {
    r.content
        .iter()
        .filter_map(|c| c.as_text().map(|t| t.text.clone()))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The structured content of a successful result, as `T`.
#[track_caller]
pub fn ok<T: serde::de::DeserializeOwned>(r: &CallToolResult) -> T {
    assert_eq!(
        r.is_error,
        Some(false),
        "expected success, got {}",
        text_of(r)
    );
    let content = r
        .structured_content
        .clone()
        .unwrap_or_else(|| panic!("no structured content in {r:?}"));
    serde_json::from_value(content).expect("structured content of the declared shape")
}

/// The message of a tool error, which must have one.
#[track_caller]
pub fn tool_error(r: &CallToolResult) -> String {
    assert_eq!(r.is_error, Some(true), "expected a tool error, got {r:?}");
    let text = text_of(r);
    assert!(!text.is_empty(), "a tool error carries a message");
    text
}
