//! The mock model's command grammar: what it "decides" to do with a person's message.
//! Deterministic, case-insensitive, and small enough that a test can predict every reply.
//!
//! | message                        | reply                                             |
//! |--------------------------------|---------------------------------------------------|
//! | `add <title> [due YYYY-MM-DD]` | `add_task {title, due?}`                          |
//! | `add <A> and <B> [and …]`      | one `add_task` per part, all in one message       |
//! | `list`, `what's left`          | `list_tasks {}`                                   |
//! | `done <n>`                     | `complete_task {id}`                              |
//! | `delete <n>`                   | `delete_task {id}`                                |
//! | `rename <n> to <title>`        | `update_task {id, title}`                         |
//! | `restore <n>`                  | `restore_task {id}`                               |
//! | `bad json`                     | `list_tasks` with the arguments text `{"status":` |
//! | `unknown tool`                 | a call to `launch_rockets`, which no server has   |
//! | anything else                  | the text `You said: <message>`                    |

use serde_json::{Value, json};

/// A tool call the mock model makes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedCall {
    pub name: String,
    /// The arguments as the JSON *string* the wire format carries (possibly invalid JSON).
    pub arguments: String,
    /// Whether the tool must be among the request's `tools`; false only for the calls
    /// that deliberately name a tool nobody offers.
    pub must_be_offered: bool,
}

impl PlannedCall {
    fn new(name: &str, arguments: Value) -> PlannedCall {
        PlannedCall {
            name: name.to_string(),
            arguments: arguments.to_string(),
            must_be_offered: true,
        }
    }
}

/// What the mock model answers to a person's message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Plan {
    /// Tool calls, in order, in one assistant message.
    Calls(Vec<PlannedCall>),
    /// A plain text answer.
    Text(String),
}

/// The tool calls (or text) for the person's message `text`.
pub fn plan(text: &str) -> Plan {
    // Whitespace is normalised so "add   milk" and "add milk\n" mean the same.
    let s = text.split_whitespace().collect::<Vec<_>>().join(" ");
    let echo = || Plan::Text(format!("You said: {s}"));
    let bare = s.trim_end_matches(['?', '.', '!']);
    if bare.eq_ignore_ascii_case("list")
        || bare.eq_ignore_ascii_case("what's left")
        || bare.eq_ignore_ascii_case("what\u{2019}s left")
    {
        return Plan::Calls(vec![PlannedCall::new("list_tasks", json!({}))]);
    }
    if bare.eq_ignore_ascii_case("bad json") {
        return Plan::Calls(vec![PlannedCall {
            name: "list_tasks".into(),
            arguments: r#"{"status":"#.into(),
            must_be_offered: true,
        }]);
    }
    if bare.eq_ignore_ascii_case("unknown tool") {
        return Plan::Calls(vec![PlannedCall {
            name: "launch_rockets".into(),
            arguments: json!({"count": 3}).to_string(),
            must_be_offered: false,
        }]);
    }
    if let Some(rest) = keyword(&s, "add") {
        return add(rest).unwrap_or_else(echo);
    }
    for (kw, tool) in [
        ("done", "complete_task"),
        ("delete", "delete_task"),
        ("restore", "restore_task"),
    ] {
        if let Some(rest) = keyword(&s, kw) {
            return match task_number(rest) {
                Some(id) => Plan::Calls(vec![PlannedCall::new(tool, json!({ "id": id }))]),
                None => echo(),
            };
        }
    }
    if let Some(rest) = keyword(&s, "rename") {
        return rename(rest).unwrap_or_else(echo);
    }
    echo()
}

/// `rest` after a leading `kw` and a space, matched case-insensitively.
fn keyword<'a>(s: &'a str, kw: &str) -> Option<&'a str> {
    let head = s.get(..kw.len())?;
    let rest = s.get(kw.len()..)?;
    (head.eq_ignore_ascii_case(kw) && rest.starts_with(' ')).then(|| rest.trim())
}

/// `3` or `#3`.
fn task_number(s: &str) -> Option<i64> {
    s.trim().trim_start_matches('#').parse().ok()
}

/// Splits on `sep` matched case-insensitively (`sep` is ASCII, so byte offsets agree).
fn split_ci<'a>(s: &'a str, sep: &str) -> Vec<&'a str> {
    let lower = s.to_ascii_lowercase();
    let mut parts = Vec::new();
    let mut start = 0;
    for (i, _) in lower.match_indices(sep) {
        parts.push(&s[start..i]);
        start = i + sep.len();
    }
    parts.push(&s[start..]);
    parts
}

fn is_date(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 10
        && b.iter().enumerate().all(|(i, c)| match i {
            4 | 7 => *c == b'-',
            _ => c.is_ascii_digit(),
        })
}

fn add(rest: &str) -> Option<Plan> {
    let mut calls = Vec::new();
    for part in split_ci(rest, " and ") {
        let part = part.trim();
        // A trailing "due YYYY-MM-DD"; "due" followed by anything else stays in the title.
        let (title, due) = match split_ci(part, " due ").as_slice() {
            [.., last] if is_date(last.trim()) && part.len() > last.len() + 5 => {
                let title = &part[..part.len() - last.len() - 5];
                (title.trim(), Some(last.trim()))
            }
            _ => (part, None),
        };
        if title.is_empty() {
            return None;
        }
        let args = match due {
            Some(d) => json!({ "title": title, "due": d }),
            None => json!({ "title": title }),
        };
        calls.push(PlannedCall::new("add_task", args));
    }
    Some(Plan::Calls(calls))
}

fn rename(rest: &str) -> Option<Plan> {
    let (n, tail) = rest.split_once(' ')?;
    let id = task_number(n)?;
    let title = keyword(tail.trim(), "to")?;
    if title.is_empty() {
        return None;
    }
    Some(Plan::Calls(vec![PlannedCall::new(
        "update_task",
        json!({ "id": id, "title": title }),
    )]))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn calls(text: &str) -> Vec<(String, Value)> {
        match plan(text) {
            Plan::Calls(c) => c
                .into_iter()
                .map(|c| {
                    let args = serde_json::from_str(&c.arguments)
                        .unwrap_or_else(|e| panic!("{text:?}: arguments {:?}: {e}", c.arguments));
                    (c.name, args)
                })
                .collect(),
            Plan::Text(t) => panic!("{text:?} gave text {t:?}"),
        }
    }

    fn one(name: &str, args: Value) -> Vec<(String, Value)> {
        vec![(name.to_string(), args)]
    }

    #[test]
    fn every_command_maps_to_its_tool_call() {
        let cases: Vec<(&str, Vec<(String, Value)>)> = vec![
            (
                "add Buy milk",
                one("add_task", json!({"title": "Buy milk"})),
            ),
            (
                "ADD Buy milk DUE 2026-12-01",
                one(
                    "add_task",
                    json!({"title": "Buy milk", "due": "2026-12-01"}),
                ),
            ),
            (
                "add  pay   taxes due tomorrow",
                one("add_task", json!({"title": "pay taxes due tomorrow"})),
            ),
            (
                "add milk and bread",
                vec![
                    ("add_task".into(), json!({"title": "milk"})),
                    ("add_task".into(), json!({"title": "bread"})),
                ],
            ),
            (
                "Add milk due 2026-01-02 AND bread due 2026-01-03",
                vec![
                    (
                        "add_task".into(),
                        json!({"title": "milk", "due": "2026-01-02"}),
                    ),
                    (
                        "add_task".into(),
                        json!({"title": "bread", "due": "2026-01-03"}),
                    ),
                ],
            ),
            ("list", one("list_tasks", json!({}))),
            ("List", one("list_tasks", json!({}))),
            ("what's left?", one("list_tasks", json!({}))),
            ("What\u{2019}s left", one("list_tasks", json!({}))),
            ("done 3", one("complete_task", json!({"id": 3}))),
            ("Done #12", one("complete_task", json!({"id": 12}))),
            ("delete 2", one("delete_task", json!({"id": 2}))),
            ("restore 2", one("restore_task", json!({"id": 2}))),
            (
                "rename 4 to Call Mum",
                one("update_task", json!({"id": 4, "title": "Call Mum"})),
            ),
            (
                "RENAME #4 TO call mum",
                one("update_task", json!({"id": 4, "title": "call mum"})),
            ),
        ];
        for (text, expected) in cases {
            assert_eq!(calls(text), expected, "for the message {text:?}");
        }
    }

    #[test]
    fn calls_are_offered_tools_except_the_deliberately_unknown_one() {
        let Plan::Calls(c) = plan("add x and y") else {
            panic!("expected calls")
        };
        assert!(c.iter().all(|c| c.must_be_offered));
        let Plan::Calls(c) = plan("unknown tool") else {
            panic!("expected calls")
        };
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].name, "launch_rockets");
        assert!(!c[0].must_be_offered);
    }

    #[test]
    fn bad_json_sends_arguments_that_do_not_parse() {
        let Plan::Calls(c) = plan("Bad JSON") else {
            panic!("expected calls")
        };
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].name, "list_tasks");
        assert_eq!(c[0].arguments, r#"{"status":"#);
        assert!(serde_json::from_str::<Value>(&c[0].arguments).is_err());
    }

    #[test]
    fn anything_else_is_echoed() {
        for (text, expected) in [
            ("hello there", "You said: hello there"),
            ("  hello\n there ", "You said: hello there"),
            ("done soon", "You said: done soon"),
            ("delete", "You said: delete"),
            ("add", "You said: add"),
            ("rename 4 Call Mum", "You said: rename 4 Call Mum"),
            ("rename x to y", "You said: rename x to y"),
            ("rename 4 to", "You said: rename 4 to"),
            ("additional info", "You said: additional info"),
            ("listing", "You said: listing"),
            ("ünïcödé add", "You said: ünïcödé add"),
        ] {
            assert_eq!(plan(text), Plan::Text(expected.into()), "for {text:?}");
        }
    }

    #[test]
    fn the_same_message_always_gets_the_same_plan() {
        for text in ["add a and b due 2026-01-01", "list", "hi", "bad json"] {
            assert_eq!(plan(text), plan(text));
        }
    }
}
