//! The request side of the wire format, checked as strictly as the real API checks it.

use serde::Deserialize;
use serde_json::Value;

#[derive(Debug, Deserialize)]
pub(super) struct ChatRequest {
    pub(super) model: String,
    pub(super) messages: Vec<InMessage>,
    #[serde(default)]
    pub(super) tools: Option<Vec<ToolDef>>,
    #[serde(default)]
    pub(super) stream: Option<bool>,
    #[serde(default)]
    pub(super) stream_options: Option<StreamOptions>,
}

#[derive(Debug, Deserialize)]
pub(super) struct StreamOptions {
    #[serde(default)]
    pub(super) include_usage: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(super) enum Role {
    System,
    Developer,
    User,
    Assistant,
    Tool,
}

#[derive(Debug, Deserialize)]
pub(super) struct InMessage {
    pub(super) role: Role,
    #[serde(default)]
    pub(super) content: Option<Content>,
    #[serde(default)]
    pub(super) tool_calls: Option<Vec<InToolCall>>,
    #[serde(default)]
    pub(super) tool_call_id: Option<String>,
}

/// A string, or content parts of which the text ones count.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub(super) enum Content {
    Text(String),
    Parts(Vec<ContentPart>),
}

#[derive(Debug, Deserialize)]
pub(super) struct ContentPart {
    #[serde(default)]
    pub(super) text: Option<String>,
}

#[derive(Debug, Deserialize)]
pub(super) struct InToolCall {
    pub(super) id: String,
    pub(super) function: InFunction,
}

#[derive(Debug, Deserialize)]
pub(super) struct InFunction {
    pub(super) name: String,
    #[serde(default)]
    pub(super) arguments: Value,
}

#[derive(Debug, Deserialize)]
pub(super) struct ToolDef {
    #[serde(rename = "type")]
    pub(super) kind: String,
    pub(super) function: FunctionDef,
}

#[derive(Debug, Deserialize)]
pub(super) struct FunctionDef {
    pub(super) name: String,
}

impl InMessage {
    pub(super) fn text(&self) -> String {
        match &self.content {
            None => String::new(),
            Some(Content::Text(t)) => t.clone(),
            Some(Content::Parts(p)) => p.iter().filter_map(|p| p.text.as_deref()).collect(),
        }
    }

    /// Characters this message puts in the prompt: its text and its tool calls.
    pub(super) fn chars(&self) -> usize {
        let calls: usize = self.tool_calls.iter().flatten().map(call_chars).sum();
        self.text().chars().count() + calls
    }
}

pub(super) fn call_chars(c: &InToolCall) -> usize {
    let args = match &c.function.arguments {
        Value::String(s) => s.chars().count(),
        Value::Null => 0,
        other => other.to_string().chars().count(),
    };
    c.function.name.chars().count() + args
}

/// What the real API checks: known roles, a non-empty list, and every assistant tool call
/// answered by a tool message (and no tool message answering nothing).
pub(super) fn validate(req: &ChatRequest) -> Result<(), (String, &'static str)> {
    if req.stream_options.is_some() && req.stream != Some(true) {
        return Err((
            "The 'stream_options' parameter is only allowed when 'stream' is enabled.".into(),
            "stream_options",
        ));
    }
    if req.messages.is_empty() {
        return Err(("[] is too short - 'messages'".into(), "messages"));
    }
    if let Some(t) = req.tools.iter().flatten().find(|t| t.kind != "function") {
        return Err((format!("unsupported tool type {:?}", t.kind), "tools"));
    }
    let mut i = 0;
    while i < req.messages.len() {
        let m = &req.messages[i];
        i += 1;
        match m.role {
            Role::Tool => {
                return Err((
                    "Invalid parameter: messages with role 'tool' must be a response to a preceeding message with 'tool_calls'.".into(),
                    "messages",
                ));
            }
            Role::Assistant => {
                let mut pending: Vec<&str> = m
                    .tool_calls
                    .iter()
                    .flatten()
                    .map(|c| c.id.as_str())
                    .collect();
                while i < req.messages.len() && req.messages[i].role == Role::Tool {
                    let t = &req.messages[i];
                    let id = t.tool_call_id.as_deref().unwrap_or("");
                    let Some(pos) = pending.iter().position(|p| *p == id) else {
                        return Err((
                            format!(
                                "Invalid parameter: tool message with tool_call_id {id:?} does not answer a pending tool call."
                            ),
                            "messages",
                        ));
                    };
                    pending.remove(pos);
                    i += 1;
                }
                if !pending.is_empty() {
                    return Err((
                        format!(
                            "An assistant message with 'tool_calls' must be followed by tool messages responding to each 'tool_call_id'. The following tool_call_ids did not have response messages: {}",
                            pending.join(", ")
                        ),
                        "messages",
                    ));
                }
            }
            Role::System | Role::Developer | Role::User => {}
        }
    }
    Ok(())
}
