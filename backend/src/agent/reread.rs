//! A model that asks again for what it has already read in this turn is stuck, not curious:
//! the eval saw the local model call `list_tasks` with the same arguments round after round
//! until the round limit, then write one more call as text instead of answering
//! (docs/EVALS.md). The data it asked for is the answer, so such a turn ends with that data
//! rendered, instead of another identical call and another model round. The same holds for
//! a call that failed and is asked for again unchanged (the eval saw `undo` with nothing to
//! undo five times): it would fail the same way, so the turn ends with its error.

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use serde_json::Value;
use todo_core::tasks::TaskPage;

use super::llm::RequestedCall;
use crate::commands::render::{Here, task_line};

/// What a repeated call would give again.
#[derive(Debug, Clone, PartialEq)]
pub enum Earlier {
    /// A read's result.
    Read(Value),
    /// A failure's message.
    Failed(String),
}

/// The successful read-only calls and the failed calls of one turn: tool name, parsed
/// arguments, outcome.
#[derive(Debug, Default)]
pub struct Repeats(Vec<(String, Value, Earlier)>);

impl Repeats {
    /// Remembers a read that succeeded. Arguments that are not JSON are not remembered.
    pub fn record(&mut self, name: &str, arguments: &str, result: &Value) {
        self.remember(name, arguments, Earlier::Read(result.clone()));
    }

    /// Remembers a call that failed, with the message the model was given.
    pub fn record_failure(&mut self, name: &str, arguments: &str, message: &str) {
        self.remember(name, arguments, Earlier::Failed(message.to_string()));
    }

    fn remember(&mut self, name: &str, arguments: &str, outcome: Earlier) {
        if let Ok(args) = serde_json::from_str::<Value>(arguments) {
            self.0.push((name.to_string(), args, outcome));
        }
    }

    /// The earlier results, when every call of this reply repeats a read of this turn with
    /// the same arguments (key order and whitespace aside); `None` otherwise.
    pub fn repeated(&self, calls: &[RequestedCall]) -> Option<Vec<&Earlier>> {
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

/// The answer made of the repeated calls' outcomes: each task list rendered one task a line
/// (as the chat commands show them), and a failure's message as it was. `None` when a read's
/// result is not a task list.
pub fn answer(results: &[&Earlier], tz: Tz, now: DateTime<Utc>) -> Option<String> {
    let here = Here { now, tz };
    if let Some(failures) = results
        .iter()
        .map(|r| match r {
            Earlier::Failed(m) => Some(m.as_str()),
            Earlier::Read(_) => None,
        })
        .collect::<Option<Vec<&str>>>()
    {
        let mut failures = failures;
        failures.dedup();
        return Some(failures.join("\n"));
    }
    let mut lines: Vec<String> = Vec::new();
    for r in results {
        let Earlier::Read(r) = r else {
            return None;
        };
        let page: TaskPage = serde_json::from_value(r.clone()).ok()?;
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
        let mut repeats = Repeats::default();
        repeats.record(
            "list_tasks",
            r#"{"status": "pending", "tag": "shopping"}"#,
            &page(),
        );
        // The same arguments in another order and spacing repeat the read.
        let again = [call(
            "list_tasks",
            r#"{"tag":"shopping","status":"pending"}"#,
        )];
        assert_eq!(repeats.repeated(&again), Some(vec![&Earlier::Read(page())]));
        // Other arguments, another tool, or a repeat beside something new: not a repeat.
        assert_eq!(
            repeats.repeated(&[call("list_tasks", r#"{"status":"all"}"#)]),
            None
        );
        assert_eq!(
            repeats.repeated(&[call("complete_task", r#"{"id":3}"#)]),
            None
        );
        let mixed = [
            call("list_tasks", r#"{"tag":"shopping","status":"pending"}"#),
            call("list_tasks", "{}"),
        ];
        assert_eq!(repeats.repeated(&mixed), None);
        assert_eq!(repeats.repeated(&[]), None);
        assert_eq!(repeats.repeated(&[call("list_tasks", "not json")]), None);
        // A failed call asked for again unchanged is a repeat; with other arguments it is not.
        repeats.record_failure("undo", "{}", "There is nothing to undo.");
        let undo = [call("undo", " { } ")];
        assert_eq!(
            repeats.repeated(&undo),
            Some(vec![&Earlier::Failed("There is nothing to undo.".into())])
        );
        assert_eq!(repeats.repeated(&[call("undo", r#"{"x":1}"#)]), None);
    }

    #[test]
    fn the_answer_is_the_listed_tasks_or_says_none_matched() {
        let tz: Tz = "Europe/Paris".parse().unwrap();
        let now = Utc::now();
        let p = Earlier::Read(page());
        let a = answer(&[&p], tz, now).unwrap();
        assert!(a.contains("#3 [ ] Buy milk #shopping"), "{a}");
        let empty = Earlier::Read(json!({"tasks": []}));
        assert_eq!(answer(&[&empty], tz, now).unwrap(), "No tasks match.");
        // Something that is not a task list is left to the model.
        assert_eq!(answer(&[&Earlier::Read(json!({"id": 1}))], tz, now), None);
        // Failures answer with their message; a mix of a read and a failure is left to it.
        let failed = Earlier::Failed("There is nothing to undo.".into());
        assert_eq!(
            answer(&[&failed, &failed], tz, now).unwrap(),
            "There is nothing to undo."
        );
        assert_eq!(answer(&[&p, &failed], tz, now), None);
    }
}
