//! The confirmation of a round whose tool calls all succeeded and all wrote: composed from
//! the tool results in the style AGENT_PROMPT.md asks of the model ("Added “Buy milk” for
//! tomorrow."), so a simple write turn needs one model call instead of two. Reads and
//! failures are not composed: the model still has to reason about them.

use chrono::{DateTime, Datelike, NaiveDate, Utc};
use chrono_tz::Tz;
use serde_json::Value;

use super::ToolCallReport;

/// The confirmation for `reports` (the calls of one round), or `None` when any call failed,
/// read data, or answered something unexpected.
pub fn compose(reports: &[ToolCallReport], tz: Tz, now: DateTime<Utc>) -> Option<String> {
    if reports.is_empty() {
        return None;
    }
    let today = now.with_timezone(&tz).date_naive();
    let mut sentences = Vec::with_capacity(reports.len());
    for r in reports {
        if r.is_error {
            return None;
        }
        let task = &r.result;
        let title = task.get("title")?.as_str()?;
        let due = || due_phrase(task.get("due").and_then(Value::as_str), tz, today);
        let s = match r.name.as_str() {
            "add_task" => {
                let high = task.get("priority").and_then(Value::as_str) == Some("high");
                format!(
                    "Added “{title}”{}{}.",
                    due().map(|d| format!(" for {d}")).unwrap_or_default(),
                    if high { ", high priority" } else { "" }
                )
            }
            "complete_task" => format!("Marked “{title}” as done."),
            "delete_task" => format!("Moved “{title}” to the trash."),
            "restore_task" => format!("Restored “{title}”."),
            "update_task" => {
                let args = &r.arguments;
                if args.get("completed") == Some(&Value::Bool(false)) {
                    format!("Reopened “{title}”.")
                } else if args.get("completed") == Some(&Value::Bool(true)) {
                    format!("Marked “{title}” as done.")
                } else if args.get("due").is_some() {
                    match due() {
                        Some(d) => format!("Moved “{title}” to {d}."),
                        None => format!("Removed the due date of “{title}”."),
                    }
                } else {
                    format!("Updated “{title}”.")
                }
            }
            // list_tasks and anything unknown: the model has to read the result.
            _ => return None,
        };
        sentences.push(s);
    }
    Some(sentences.join(" "))
}

/// "today", "tomorrow", "Friday" (within a week), else "Dec 12" (with the year when it
/// differs); a time is added as "17:00" in the person's zone.
fn due_phrase(due: Option<&str>, tz: Tz, today: NaiveDate) -> Option<String> {
    let due = due?;
    let (date, time) = match NaiveDate::parse_from_str(due, "%Y-%m-%d") {
        Ok(d) => (d, None),
        Err(_) => {
            let at = DateTime::parse_from_rfc3339(due).ok()?.with_timezone(&tz);
            (at.date_naive(), Some(at.format("%H:%M").to_string()))
        }
    };
    let days = (date - today).num_days();
    let day = match days {
        0 => "today".to_string(),
        1 => "tomorrow".to_string(),
        2..=6 => date.format("%A").to_string(),
        _ if date.year() == today.year() => date.format("%b %-d").to_string(),
        _ => date.format("%b %-d, %Y").to_string(),
    };
    Some(match time {
        Some(t) => format!("{day} at {t}"),
        None => day,
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn report(name: &str, args: Value, result: Value, is_error: bool) -> ToolCallReport {
        ToolCallReport {
            name: name.into(),
            arguments: args,
            result,
            is_error,
        }
    }

    fn now() -> DateTime<Utc> {
        // Tuesday 2026-12-01, 07:00 in New York.
        DateTime::parse_from_rfc3339("2026-12-01T12:00:00Z")
            .unwrap()
            .with_timezone(&Utc)
    }

    const NY: Tz = chrono_tz::America::New_York;

    #[test]
    fn writes_are_confirmed_with_title_and_due_in_the_persons_zone() {
        let add = report(
            "add_task",
            json!({"title": "Call mom"}),
            json!({"id": 1, "title": "Call mom", "due": "2026-12-02T22:00:00Z", "priority": "medium"}),
            false,
        );
        assert_eq!(
            compose(&[add], NY, now()).as_deref(),
            Some("Added “Call mom” for tomorrow at 17:00.")
        );
        let two = [
            report(
                "add_task",
                json!({}),
                json!({"title": "Buy eggs", "priority": "high"}),
                false,
            ),
            report(
                "complete_task",
                json!({"id": 2}),
                json!({"title": "Buy bread"}),
                false,
            ),
        ];
        assert_eq!(
            compose(&two, NY, now()).as_deref(),
            Some("Added “Buy eggs”, high priority. Marked “Buy bread” as done.")
        );
        let moved = report(
            "update_task",
            json!({"id": 3, "due": "2026-12-04"}),
            json!({"title": "Pay rent", "due": "2026-12-04"}),
            false,
        );
        assert_eq!(
            compose(&[moved], NY, now()).as_deref(),
            Some("Moved “Pay rent” to Friday.")
        );
        let reopened = report(
            "update_task",
            json!({"id": 3, "completed": false}),
            json!({"title": "Milk"}),
            false,
        );
        assert_eq!(
            compose(&[reopened], NY, now()).as_deref(),
            Some("Reopened “Milk”.")
        );
        for (name, want) in [
            ("delete_task", "Moved “X” to the trash."),
            ("restore_task", "Restored “X”."),
        ] {
            let r = report(name, json!({"id": 1}), json!({"title": "X"}), false);
            assert_eq!(compose(&[r], NY, now()).as_deref(), Some(want));
        }
    }

    #[test]
    fn reads_failures_and_odd_results_go_back_to_the_model() {
        let ok = report("add_task", json!({}), json!({"title": "A"}), false);
        let list = report("list_tasks", json!({}), json!({"tasks": []}), false);
        let failed = report("add_task", json!({}), json!({"error": "bad due"}), true);
        let untitled = report("complete_task", json!({}), json!({"text": "done"}), false);
        assert!(compose(&[ok.clone(), list], NY, now()).is_none());
        assert!(compose(&[ok.clone(), failed], NY, now()).is_none());
        assert!(compose(&[untitled], NY, now()).is_none());
        assert!(compose(&[], NY, now()).is_none());
        assert!(compose(&[ok], NY, now()).is_some());
    }

    #[test]
    fn due_phrases_name_near_days_and_dates_further_away() {
        let today = NaiveDate::from_ymd_opt(2026, 12, 1).unwrap();
        let p = |d: &str| due_phrase(Some(d), NY, today).unwrap();
        assert_eq!(p("2026-12-01"), "today");
        assert_eq!(p("2026-12-07"), "Monday");
        assert_eq!(p("2026-12-24"), "Dec 24");
        assert_eq!(p("2027-01-05"), "Jan 5, 2027");
        assert_eq!(p("2026-12-01T23:30:00Z"), "today at 18:30");
        assert!(due_phrase(None, NY, today).is_none());
        assert!(due_phrase(Some("soon"), NY, today).is_none());
    }
}
