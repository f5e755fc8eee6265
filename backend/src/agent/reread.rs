//! A model that asks again for what it has already read in this turn is stuck, not curious:
//! the eval saw the local model call `list_tasks` with the same arguments round after round
//! until the round limit, then write one more call as text instead of answering
//! (docs/EVALS.md). The data it asked for is the answer, so such a turn ends with that data
//! rendered, instead of another identical call and another model round.

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use serde_json::Value;
use todo_mcp::tasks::TaskPage;

use super::llm::RequestedCall;
use crate::commands::render::{Here, task_line};

/// The successful read-only calls of one turn: tool name, parsed arguments, result.
#[derive(Debug, Default)]
pub struct Reads(Vec<(String, Value, Value)>);

impl Reads {
    /// Remembers a read that succeeded. Arguments that are not JSON are not remembered.
    pub fn record(&mut self, name: &str, arguments: &str, result: &Value) {
        if let Ok(args) = serde_json::from_str::<Value>(arguments) {
            self.0.push((name.to_string(), args, result.clone()));
        }
    }

    /// The earlier results, when every call of this reply repeats a read of this turn with
    /// the same arguments (key order and whitespace aside); `None` otherwise.
    pub fn repeated(&self, calls: &[RequestedCall]) -> Option<Vec<&Value>> {
        if calls.is_empty() {
            return None;
        }
        calls
            .iter()
            .map(|call| {
                let args = serde_json::from_str::<Value>(&call.arguments).ok()?;
                self.0
                    .iter()
                    .rev()
                    .find(|(name, a, _)| *name == call.name && *a == args)
                    .map(|(_, _, result)| result)
            })
            .collect()
    }
}

/// The answer made of the repeated reads' results: each task list rendered one task a line
/// (as the chat commands show them). `None` when a result is not a task list.
pub fn answer(results: &[&Value], tz: Tz, now: DateTime<Utc>) -> Option<String> {
    let here = Here { now, tz };
    let mut lines: Vec<String> = Vec::new();
    for r in results {
        let page: TaskPage = serde_json::from_value((*r).clone()).ok()?;
        lines.extend(page.tasks.iter().map(|t| task_line(t, here)));
        if page.next_offset.is_some() {
            lines.push("(there are more)".into());
        }
    }
    if lines.is_empty() {
        return Some("No tasks match.".into());
    }
    lines.dedup();
    Some(format!("Here they are:\n{}", lines.join("\n")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn call(name: &str, args: &str) -> RequestedCall {
        RequestedCall {
            id: "c".into(),
            name: name.into(),
            arguments: args.into(),
        }
    }

    fn page() -> Value {
        json!({"tasks": [{
            "id": 3, "title": "Buy milk", "description": null, "completed": false,
            "priority": "medium", "tags": ["shopping"], "due": null,
            "created_at": "2026-12-01T10:00:00Z", "updated_at": "2026-12-01T10:00:00Z"
        }]})
    }

    #[test]
    fn only_a_reply_that_repeats_every_call_is_a_repeat() {
        let mut reads = Reads::default();
        reads.record(
            "list_tasks",
            r#"{"status": "pending", "tag": "shopping"}"#,
            &page(),
        );
        // The same arguments in another order and spacing repeat the read.
        let again = [call(
            "list_tasks",
            r#"{"tag":"shopping","status":"pending"}"#,
        )];
        assert_eq!(reads.repeated(&again), Some(vec![&page()]));
        // Other arguments, another tool, or a repeat beside something new: not a repeat.
        assert_eq!(
            reads.repeated(&[call("list_tasks", r#"{"status":"all"}"#)]),
            None
        );
        assert_eq!(
            reads.repeated(&[call("complete_task", r#"{"id":3}"#)]),
            None
        );
        let mixed = [
            call("list_tasks", r#"{"tag":"shopping","status":"pending"}"#),
            call("list_tasks", "{}"),
        ];
        assert_eq!(reads.repeated(&mixed), None);
        assert_eq!(reads.repeated(&[]), None);
        assert_eq!(reads.repeated(&[call("list_tasks", "not json")]), None);
    }

    #[test]
    fn the_answer_is_the_listed_tasks_or_says_none_matched() {
        let tz: Tz = "Europe/Paris".parse().unwrap();
        let now = Utc::now();
        let p = page();
        let a = answer(&[&p], tz, now).unwrap();
        assert!(a.contains("#3 [ ] Buy milk #shopping"), "{a}");
        let empty = json!({"tasks": []});
        assert_eq!(answer(&[&empty], tz, now).unwrap(), "No tasks match.");
        // Something that is not a task list is left to the model.
        assert_eq!(answer(&[&json!({"id": 1})], tz, now), None);
    }
}
