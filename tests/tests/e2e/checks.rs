//! Assertions on answers and stored histories.

use serde_json::Value;

/// The titles of tasks, in the order listed.
pub fn titles(tasks: &[Value]) -> Vec<String> {
    tasks
        .iter()
        .map(|t| t["title"].as_str().unwrap_or_default().to_string())
        .collect()
}

/// Checks one reported tool call and returns its result.
pub fn assert_call(call: &Value, name: &str, arguments: Value, is_error: bool) -> Value {
    assert_eq!(call["name"], name, "{call}");
    assert_eq!(call["arguments"], arguments, "{call}");
    assert_eq!(call["is_error"], is_error, "{call}");
    assert!(call["result"].is_object(), "a structured result: {call}");
    call["result"].clone()
}

/// Checks a stored history: the person's messages in order, each turn ending with an
/// assistant answer, sequence numbers increasing, and every assistant tool call followed
/// at once by its tool messages in the same order (what a model API insists on).
pub fn assert_history(messages: &[Value], said: &[&str]) {
    let dump = || {
        messages
            .iter()
            .map(Value::to_string)
            .collect::<Vec<_>>()
            .join("\n")
    };
    let seqs: Vec<i64> = messages.iter().filter_map(|m| m["seq"].as_i64()).collect();
    assert_eq!(
        seqs.len(),
        messages.len(),
        "every message has a seq:\n{}",
        dump()
    );
    assert!(
        seqs.windows(2).all(|w| w[0] < w[1]),
        "seq increases:\n{}",
        dump()
    );
    let users: Vec<&str> = messages
        .iter()
        .filter(|m| m["role"] == "user")
        .filter_map(|m| m["content"].as_str())
        .collect();
    assert_eq!(users, said, "the person's messages, in order:\n{}", dump());

    let mut i = 0;
    let mut turns = 0;
    while i < messages.len() {
        assert_eq!(
            messages[i]["role"],
            "user",
            "turn {turns} starts with the person:\n{}",
            dump()
        );
        i += 1;
        loop {
            let m = messages
                .get(i)
                .unwrap_or_else(|| panic!("turn {turns} has no final answer:\n{}", dump()));
            assert_eq!(m["role"], "assistant", "message {i}:\n{}", dump());
            i += 1;
            let calls = m["tool_calls"].as_array().cloned().unwrap_or_default();
            if calls.is_empty() {
                assert!(
                    m["content"].as_str().is_some_and(|c| !c.is_empty()),
                    "a final answer has text: {m}"
                );
                break;
            }
            for call in &calls {
                let t = messages
                    .get(i)
                    .unwrap_or_else(|| panic!("call {call} unanswered:\n{}", dump()));
                assert_eq!(
                    t["role"],
                    "tool",
                    "call {call} is answered next:\n{}",
                    dump()
                );
                assert_eq!(
                    t["tool_call_id"],
                    call["id"],
                    "answers in call order:\n{}",
                    dump()
                );
                assert_eq!(t["tool_name"], call["name"], "{t}");
                i += 1;
            }
        }
        turns += 1;
    }
    assert_eq!(turns, said.len());
}
