//! What the person's own words support, checked against what the model asked for.
//!
//! Small models fill in what nobody said and pick one task where several fit. The eval saw
//! both with the local model (docs/EVALS.md): "Add water the plants" became a task due
//! "tomorrow 17:00" (the example in the prompt, copied), and "Mark the call task as done",
//! with "Call Anna" and "Call Bob" open, completed Anna. Both checks below only ever take
//! something away from what the model asked — a due, or the whole round — so a wrong
//! verdict costs a date or a question, never a change nobody asked for.

use serde_json::{Map, Value};
use std::collections::BTreeSet;
use todo_core::tasks::Task;
use todo_core::tasks::when::mentions_a_time;

use super::llm::RequestedCall;

/// The person's latest message and the open tasks they saw it against.
#[derive(Debug, Clone, Copy)]
pub struct Said<'a> {
    pub message: &'a str,
    pub open: &'a [Task],
}

/// Takes `due` out of an `add_task`/`update_task` call when it is written in words and the
/// message says nothing about when (no digit, no date or time word): those words came from
/// somewhere else, an example or an earlier turn. Returns what was taken out. A date or
/// date-time the model wrote out ("2026-12-02") is left alone: it may be its reading of words
/// in another language.
pub fn unasked_due(name: &str, args: &mut Map<String, Value>, message: &str) -> Option<String> {
    if !matches!(name, "add_task" | "update_task") {
        return None;
    }
    let due = args.get("due")?.as_str()?.trim().to_string();
    let written_out = due.starts_with(|c: char| c.is_ascii_digit());
    if due.is_empty() || written_out || mentions_a_time(message) {
        return None;
    }
    args.remove("due");
    Some(due)
}

/// Words that tell tasks apart: lower-cased runs of letters and digits, three or more long,
/// without the few words every request is made of.
fn words(text: &str) -> BTreeSet<String> {
    const COMMON: &[&str] = &["the", "and", "for", "with", "task", "tasks", "this", "that"];
    text.to_lowercase()
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| w.chars().count() >= 3 && !COMMON.contains(w))
        .map(str::to_string)
        .collect()
}

/// Whether the message names task `id` by its number ("#3", "3").
fn names_number(message: &str, id: i64) -> bool {
    let id = id.to_string();
    message
        .split(|c: char| !c.is_ascii_digit())
        .any(|n| n == id)
}

/// When a call of this reply completes, deletes or changes an open task that the message's
/// words fit no better than another open task the reply leaves alone: what the call would do
/// ("mark as done") and every task that fits, the chosen one first. `None` when each call's
/// task is told apart by the words, named by number, or not found by words at all ("done with
/// it").
pub fn ambiguous<'t>(
    calls: &[RequestedCall],
    said: Said<'t>,
) -> Option<(&'static str, Vec<&'t Task>)> {
    let message = words(said.message);
    let chosen: Vec<(&str, i64)> = calls
        .iter()
        .filter_map(|c| {
            let args: Value = serde_json::from_str(&c.arguments).ok()?;
            let id = match args.get("id")? {
                Value::Number(n) => n.as_i64()?,
                Value::String(s) => s.trim().trim_start_matches('#').parse().ok()?,
                _ => return None,
            };
            Some((c.name.as_str(), id))
        })
        .collect();
    for &(name, id) in &chosen {
        let verb = match name {
            "complete_task" => "mark as done",
            "delete_task" => "delete",
            "update_task" => "change",
            _ => continue,
        };
        let Some(task) = said.open.iter().find(|t| t.id == id) else {
            continue;
        };
        let title = words(&task.title);
        let fit: BTreeSet<&String> = message.intersection(&title).collect();
        if fit.is_empty() || names_number(said.message, id) {
            continue;
        }
        let others: Vec<&Task> = said
            .open
            .iter()
            .filter(|t| t.id != id && !chosen.iter().any(|&(_, c)| c == t.id))
            .filter(|t| {
                let theirs = words(&t.title);
                fit.iter().all(|w| theirs.contains(*w))
            })
            .collect();
        if !others.is_empty() {
            let mut fits = vec![task];
            fits.extend(others);
            return Some((verb, fits));
        }
    }
    None
}

/// The question that ends a turn whose request fits several tasks; nothing was changed.
pub fn question(verb: &str, fits: &[&Task]) -> String {
    let named: Vec<String> = fits
        .iter()
        .map(|t| format!("#{} “{}”", t.id, t.title))
        .collect();
    let list = match named.split_last() {
        Some((last, [])) => last.clone(),
        Some((last, rest)) => format!("{} or {last}", rest.join(", ")),
        None => String::new(),
    };
    format!("Which one should I {verb}: {list}? Nothing is changed yet.")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn task(id: i64, title: &str) -> Task {
        serde_json::from_value(json!({
            "id": id, "title": title, "description": null, "completed": false,
            "priority": "medium", "tags": [], "due": null,
            "created_at": "2026-12-01T10:00:00Z", "updated_at": "2026-12-01T10:00:00Z"
        }))
        .unwrap()
    }

    fn call(name: &str, args: Value) -> RequestedCall {
        RequestedCall {
            id: "c".into(),
            name: name.into(),
            arguments: args.to_string(),
        }
    }

    /// Two open tasks that "call" fits equally, and one it does not.
    fn calls_and_an_email() -> [Task; 3] {
        [
            task(1, "Call Anna"),
            task(2, "Call Bob"),
            task(3, "Email Carol"),
        ]
    }

    fn ids(fits: &[&Task]) -> Vec<i64> {
        fits.iter().map(|t| t.id).collect()
    }

    #[test]
    fn a_due_in_words_for_a_message_without_a_when_is_taken_out() {
        let mut args = json!({"title": "Water the plants", "due": "tomorrow 17:00"});
        let a = args.as_object_mut().unwrap();
        assert_eq!(
            unasked_due("add_task", a, "Add water the plants").as_deref(),
            Some("tomorrow 17:00")
        );
        assert!(!a.contains_key("due") && a.contains_key("title"), "{a:?}");

        // Said, in words or digits: kept.
        for (message, due) in [
            ("Remind me to call mom tomorrow at 5pm", "tomorrow 17:00"),
            ("I need to renew my passport by Friday", "friday"),
            ("Add call the bank in 3 days", "in 3 days"),
            ("Move the rent to Friday", "friday"),
        ] {
            let mut args = json!({"id": 1, "due": due});
            let a = args.as_object_mut().unwrap();
            assert_eq!(unasked_due("update_task", a, message), None, "{message}");
            assert_eq!(a["due"], due);
        }
        // A written-out date may be the model's reading of another language: kept.
        let mut args = json!({"title": "Appeler maman", "due": "2026-12-02"});
        let a = args.as_object_mut().unwrap();
        assert_eq!(
            unasked_due("add_task", a, "Ajoute appeler maman demain"),
            None
        );
        // Other tools, and calls without a due, are not touched.
        let mut args = json!({"due_after": "tomorrow"});
        let a = args.as_object_mut().unwrap();
        assert_eq!(unasked_due("list_tasks", a, "what's on my list"), None);
        let mut args = json!({"title": "x", "due": null});
        assert_eq!(
            unasked_due("add_task", args.as_object_mut().unwrap(), "add x"),
            None
        );
    }

    #[test]
    fn a_request_that_fits_several_open_tasks_is_a_question() {
        let open = calls_and_an_email();
        let said = |message| Said {
            message,
            open: &open,
        };
        let (verb, fits) = ambiguous(
            &[call("complete_task", json!({"id": 1}))],
            said("Mark the call task as done"),
        )
        .unwrap();
        assert_eq!((verb, ids(&fits)), ("mark as done", vec![1, 2]));
        assert_eq!(
            question(verb, &fits),
            "Which one should I mark as done: #1 “Call Anna” or #2 “Call Bob”? Nothing is changed yet."
        );
        // A number as a string, and deleting, are read the same way.
        let (verb, fits) = ambiguous(
            &[call("delete_task", json!({"id": "#2"}))],
            said("delete the call"),
        )
        .unwrap();
        assert_eq!((verb, ids(&fits)), ("delete", vec![2, 1]));
    }

    #[test]
    fn words_that_tell_the_task_apart_or_its_number_let_the_call_run() {
        let open = calls_and_an_email();
        let said = |message| Said {
            message,
            open: &open,
        };
        let complete = |id: i64| [call("complete_task", json!({"id": id}))];
        for (message, id) in [
            ("The one with Bob", 2),
            ("done with the call to Anna", 1),
            ("Remove the email to Carol", 3),
            ("mark #1 as done, the call", 1),
            // Words that fit no task ("it"): the model's reading of the conversation stands.
            ("done with it", 1),
            // A task that is not open (re-opening a done one) is not checked.
            ("the call is not done after all", 7),
        ] {
            assert!(
                ambiguous(&complete(id), said(message)).is_none(),
                "{message}"
            );
        }
        // Both fitting tasks acted on in one reply: what was asked for ("both calls").
        let both = [
            call("complete_task", json!({"id": 1})),
            call("complete_task", json!({"id": 2})),
        ];
        assert!(ambiguous(&both, said("mark the call tasks as done")).is_none());
        // Adding and listing name no task.
        let add = [call("add_task", json!({"title": "Call Dan"}))];
        assert!(ambiguous(&add, said("add call Dan")).is_none());
    }

    #[test]
    fn renaming_counts_the_old_title_words_not_the_new_ones() {
        let open = [
            task(1, "Pay rent"),
            task(2, "Call the plumber"),
            task(3, "Call Anna"),
        ];
        let said = Said {
            message: "Rename the plumber task to Call the electrician",
            open: &open,
        };
        let rename = [call(
            "update_task",
            json!({"id": 2, "title": "Call the electrician"}),
        )];
        assert!(ambiguous(&rename, said).is_none());
    }
}
