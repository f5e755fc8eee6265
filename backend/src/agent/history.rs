//! Turning stored messages into what the model is sent: always a valid sequence (every
//! assistant tool call answered by exactly one tool message), bounded by a token estimate.

use todo_core::conversations::{Message, Role, ToolCallRecord};

use crate::agent::llm::{WireFunction, WireMessage, WireToolCall};

/// Said to the model for a call whose result was never recorded (a crash mid-turn).
pub const INTERRUPTED: &str = "No result was recorded for this call (the turn was interrupted). \
                               Check with list_tasks before assuming it happened.";

/// A rough token estimate: ~4 characters a token, plus per-message overhead.
pub fn estimate_tokens(m: &WireMessage) -> usize {
    let chars = match m {
        WireMessage::System { content } | WireMessage::User { content } => content.len(),
        WireMessage::Assistant {
            content,
            tool_calls,
        } => {
            content.as_ref().map_or(0, String::len)
                + tool_calls
                    .iter()
                    .map(|c| c.function.name.len() + c.function.arguments.len() + c.id.len())
                    .sum::<usize>()
        }
        WireMessage::Tool {
            tool_call_id,
            content,
        } => tool_call_id.len() + content.len(),
    };
    chars / 4 + 4
}

/// Stored messages → a valid wire sequence, trimmed from the front to `max_tokens`
/// (the last user message is always kept).
/// A stored tool call as the chat-completions API takes it back.
pub fn wire_call(c: &ToolCallRecord) -> WireToolCall {
    WireToolCall {
        id: c.id.clone(),
        kind: "function",
        function: WireFunction {
            name: c.name.clone(),
            arguments: c.arguments.clone(),
        },
    }
}

pub fn to_wire(history: &[Message], max_tokens: usize) -> Vec<WireMessage> {
    // Blocks start at user messages, so trimming never cuts a tool exchange in half.
    let mut blocks: Vec<Vec<WireMessage>> = Vec::new();
    let mut i = 0;
    while i < history.len() {
        let m = &history[i];
        i += 1;
        match m.role {
            Role::User => blocks.push(vec![WireMessage::User {
                content: m.content.clone(),
            }]),
            Role::Assistant => {
                let Some(block) = blocks.last_mut() else {
                    continue; // history window starts mid-turn: drop until a user message
                };
                let calls: Vec<WireToolCall> = m.tool_calls.iter().map(wire_call).collect();
                let content = (!m.content.is_empty()).then(|| m.content.clone());
                if calls.is_empty() {
                    if content.is_some() {
                        block.push(WireMessage::Assistant {
                            content,
                            tool_calls: vec![],
                        });
                    }
                    continue;
                }
                // Answer each call, in order, from the tool messages that follow.
                let mut answers: Vec<Option<String>> = vec![None; calls.len()];
                while i < history.len() && history[i].role == Role::Tool {
                    let t = &history[i];
                    if let Some(pos) = calls
                        .iter()
                        .position(|c| Some(&c.id) == t.tool_call_id.as_ref())
                        && answers[pos].is_none()
                    {
                        answers[pos] = Some(t.content.clone());
                    }
                    i += 1;
                }
                let ids: Vec<String> = calls.iter().map(|c| c.id.clone()).collect();
                block.push(WireMessage::Assistant {
                    content,
                    tool_calls: calls,
                });
                for (id, answer) in ids.into_iter().zip(answers) {
                    block.push(WireMessage::Tool {
                        tool_call_id: id,
                        content: answer.unwrap_or_else(|| INTERRUPTED.to_string()),
                    });
                }
            }
            // A tool message not directly after its assistant message is an orphan.
            Role::Tool => {}
        }
    }
    let mut total: usize = blocks
        .iter()
        .flat_map(|b| b.iter())
        .map(estimate_tokens)
        .sum();
    let mut start = 0;
    while total > max_tokens && start + 1 < blocks.len() {
        total -= blocks[start].iter().map(estimate_tokens).sum::<usize>();
        start += 1;
    }
    blocks.into_iter().skip(start).flatten().collect()
}

#[cfg(test)]
mod tests {
    use chrono::Utc;

    use super::*;
    use todo_core::conversations::ToolCallRecord;

    fn msg(seq: i64, role: Role, content: &str) -> Message {
        Message {
            seq,
            role,
            content: content.into(),
            tool_calls: vec![],
            tool_call_id: None,
            tool_name: None,
            is_error: false,
            prompt_tokens: None,
            completion_tokens: None,
            cached_prompt_tokens: None,
            model: None,
            created_at: Utc::now(),
        }
    }

    fn call(id: &str) -> ToolCallRecord {
        ToolCallRecord {
            id: id.into(),
            name: "add_task".into(),
            arguments: "{}".into(),
        }
    }

    fn tool(seq: i64, id: &str) -> Message {
        Message {
            tool_call_id: Some(id.into()),
            ..msg(seq, Role::Tool, "ok")
        }
    }

    /// Checks the invariant the API enforces.
    fn assert_valid(w: &[WireMessage]) {
        let mut k = 0;
        while k < w.len() {
            if let WireMessage::Assistant { tool_calls, .. } = &w[k] {
                for (j, c) in tool_calls.iter().enumerate() {
                    match w.get(k + 1 + j) {
                        Some(WireMessage::Tool { tool_call_id, .. }) => {
                            assert_eq!(tool_call_id, &c.id)
                        }
                        other => panic!("call {} unanswered, got {other:?}", c.id),
                    }
                }
                k += 1 + tool_calls.len();
            } else {
                assert!(
                    !matches!(w[k], WireMessage::Tool { .. }),
                    "orphan tool message at {k}"
                );
                k += 1;
            }
        }
    }

    #[test]
    fn an_interrupted_turn_gets_a_placeholder_answer() {
        let a = Message {
            tool_calls: vec![call("c1"), call("c2")],
            ..msg(2, Role::Assistant, "")
        };
        let h = vec![
            msg(1, Role::User, "add two"),
            a,
            tool(3, "c2"),
            msg(4, Role::User, "and?"),
        ];
        let w = to_wire(&h, 10_000);
        assert_valid(&w);
        assert_eq!(w.len(), 5);
        assert!(
            matches!(&w[2], WireMessage::Tool { tool_call_id, content } if tool_call_id == "c1" && content == INTERRUPTED)
        );
        assert!(
            matches!(&w[3], WireMessage::Tool { tool_call_id, content } if tool_call_id == "c2" && content == "ok")
        );
    }

    #[test]
    fn a_window_starting_mid_turn_and_orphans_are_dropped() {
        let a = Message {
            tool_calls: vec![call("c1")],
            ..msg(2, Role::Assistant, "")
        };
        let h = vec![
            tool(1, "c0"),
            a.clone(),
            tool(3, "c1"),
            msg(4, Role::User, "hi"),
            tool(5, "zz"),
        ];
        let w = to_wire(&h, 10_000);
        assert_valid(&w);
        assert_eq!(
            w,
            vec![WireMessage::User {
                content: "hi".into()
            }]
        );
    }

    #[test]
    fn trimming_drops_whole_old_exchanges_and_keeps_the_last_message() {
        let mut h = Vec::new();
        for n in 0..50 {
            h.push(msg(n * 2, Role::User, &"x".repeat(400)));
            h.push(msg(n * 2 + 1, Role::Assistant, &"y".repeat(400)));
        }
        h.push(msg(100, Role::User, &"z".repeat(4000)));
        let w = to_wire(&h, 2_000);
        assert_valid(&w);
        let total: usize = w.iter().map(estimate_tokens).sum();
        assert!(total <= 2_000, "{total}");
        assert!(matches!(w.first(), Some(WireMessage::User { .. })));
        assert!(
            matches!(w.last(), Some(WireMessage::User { content }) if content.starts_with('z'))
        );
        // Even a single oversized message is kept: the person's request is never dropped.
        let w = to_wire(&h, 10);
        assert_eq!(w.len(), 1);
    }
}
