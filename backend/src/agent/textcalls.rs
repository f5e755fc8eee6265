//! Tool calls that small and local models write as JSON text in the message content
//! (a ```json block, a `<tool_call>` tag or a bare object) instead of `tool_calls`. They are
//! taken as calls only when every block names a tool offered in the request and carries an
//! object of arguments; anything else stays text. The tool still validates the arguments.

use serde_json::Value;

use super::llm::RequestedCall;

/// The calls written in `content`, or none.
pub fn from_content(content: &str, tools: &[Value]) -> Vec<RequestedCall> {
    let offered: Vec<&str> = tools
        .iter()
        .filter_map(|t| t["function"]["name"].as_str())
        .collect();
    if offered.is_empty() {
        return Vec::new();
    }
    let mut calls = Vec::new();
    for block in blocks(content) {
        let Ok(v) = serde_json::from_str::<Value>(block) else {
            return Vec::new();
        };
        let items = match v {
            Value::Array(a) => a,
            other => vec![other],
        };
        for item in items {
            let Some(name) = item.get("name").and_then(Value::as_str) else {
                return Vec::new();
            };
            if !offered.contains(&name) {
                return Vec::new();
            }
            let args = match item.get("arguments").or_else(|| item.get("parameters")) {
                None | Some(Value::Null) => Value::Object(Default::default()),
                Some(Value::String(s)) => match serde_json::from_str::<Value>(s) {
                    Ok(o @ Value::Object(_)) => o,
                    _ => return Vec::new(),
                },
                Some(o @ Value::Object(_)) => o.clone(),
                Some(_) => return Vec::new(),
            };
            calls.push(RequestedCall {
                id: format!(
                    "call_text_{}_{}",
                    uuid::Uuid::new_v4().simple(),
                    calls.len()
                ),
                name: name.to_string(),
                arguments: args.to_string(),
            });
        }
    }
    calls
}

/// The JSON texts in `content`: fenced blocks, `<tool_call>` tags, or the whole content
/// when it is one bare object or array.
fn blocks(content: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut rest = content;
    while let Some(start) = rest.find("```") {
        let after = &rest[start + 3..];
        let body_start = after.find('\n').map_or(0, |i| i + 1);
        let Some(end) = after[body_start..].find("```") else {
            break;
        };
        out.push(after[body_start..body_start + end].trim());
        rest = &after[body_start + end + 3..];
    }
    let mut rest = content;
    while let Some(start) = rest.find("<tool_call>") {
        let after = &rest[start + "<tool_call>".len()..];
        let Some(end) = after.find("</tool_call>") else {
            break;
        };
        out.push(after[..end].trim());
        rest = &after[end..];
    }
    if out.is_empty() {
        let t = content.trim();
        if (t.starts_with('{') && t.ends_with('}')) || (t.starts_with('[') && t.ends_with(']')) {
            out.push(t);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn tools() -> Vec<Value> {
        ["add_task", "list_tasks"]
            .iter()
            .map(|n| json!({"type": "function", "function": {"name": n, "parameters": {}}}))
            .collect()
    }

    #[test]
    fn fenced_tagged_and_bare_calls_are_read() {
        let fenced =
            "```json\n{\"name\": \"add_task\", \"arguments\": {\"title\": \"Buy milk\"}}\n```";
        let c = from_content(fenced, &tools());
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].name, "add_task");
        assert_eq!(
            serde_json::from_str::<Value>(&c[0].arguments).unwrap(),
            json!({"title": "Buy milk"})
        );
        let tagged = "<tool_call>\n{\"name\": \"list_tasks\", \"arguments\": \"{}\"}\n</tool_call>";
        assert_eq!(from_content(tagged, &tools())[0].name, "list_tasks");
        let bare = r#"[{"name": "add_task", "parameters": {"title": "A"}}, {"name": "add_task", "arguments": {"title": "B"}}]"#;
        let c = from_content(bare, &tools());
        assert_eq!(c.len(), 2);
        assert_ne!(c[0].id, c[1].id);
    }

    #[test]
    fn prose_unknown_tools_and_bad_arguments_stay_text() {
        for content in [
            "Added “Buy milk” for tomorrow.",
            "```json\n{\"name\": \"drop_database\", \"arguments\": {}}\n```",
            "```json\n{\"name\": \"add_task\", \"arguments\": [1, 2]}\n```",
            "```json\n{\"name\": \"add_task\", \"arguments\": \"not json\"}\n```",
            "```json\n{\"title\": \"no name\"}\n```",
            "{\"name\": \"add_task\"",
            "Here is some code: ```rust\nfn main() {}\n```",
        ] {
            assert!(from_content(content, &tools()).is_empty(), "{content}");
        }
        // No tools offered (the last round): never a call.
        let fenced = "```json\n{\"name\": \"add_task\", \"arguments\": {}}\n```";
        assert!(from_content(fenced, &[]).is_empty());
    }
}
