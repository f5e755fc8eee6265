//! What the model reads first and what it reads last. The system message is AGENT_PROMPT.md
//! alone (compiled in, replaceable at run time): with the tool definitions after it, it is
//! byte-identical across turns, conversations and people, so llama.cpp and hosted providers
//! reuse it as a cached prefix. The moment, the person's time zone and the open-task view
//! change on every turn: they travel with the person's latest message, marked as data.

use chrono::{DateTime, Datelike, Duration, Utc};
use chrono_tz::Tz;
use todo_core::tasks::Task;

/// The prompt compiled into the binary.
pub const BUILT_IN: &str = include_str!("../../../AGENT_PROMPT.md");

/// Opens and closes the data block put before the person's latest message.
pub const CONTEXT_OPEN: &str = "<context>";
pub const CONTEXT_CLOSE: &str = "</context>";

/// How many of the most recently deleted tasks the data block shows. The model cannot bring
/// back by words what it cannot see: the eval's "Restore the garden idea I deleted" got a
/// guessed number while the trash was out of view (docs/EVALS.md).
pub const TRASH_SHOWN: u32 = 3;

/// Resolves an IANA time zone name; `None` for an unknown one.
pub fn parse_timezone(name: &str) -> Option<Tz> {
    name.trim().parse::<Tz>().ok()
}

/// The system message: the same bytes for every turn.
pub fn system_message(base: &str) -> String {
    base.trim_end().to_string()
}

/// The data block for this turn: the moment, the zone, the open tasks and the most recently
/// deleted ones (none: no line).
pub fn context_block(
    now: DateTime<Utc>,
    tz: Tz,
    open: &[Task],
    more_open: bool,
    trash: &[Task],
) -> String {
    let local = now.with_timezone(&tz);
    let tomorrow = local.date_naive() + Duration::days(1);
    let mut s = String::with_capacity(256 + open.len() * 64);
    s.push_str(CONTEXT_OPEN);
    s.push_str(&format!(
        "\nNow: {} ({}), time zone {}. Today is {}; tomorrow is {}.\n",
        local.format("%Y-%m-%dT%H:%M"),
        local.weekday(),
        tz.name(),
        local.format("%Y-%m-%d"),
        tomorrow.format("%Y-%m-%d"),
    ));
    if open.is_empty() {
        s.push_str("Open tasks: none.\n");
    } else {
        s.push_str("Open tasks:\n");
        for t in open {
            s.push_str(&t.one_line());
            s.push('\n');
        }
        if more_open {
            s.push_str("(more: use list_tasks)\n");
        }
    }
    if !trash.is_empty() {
        s.push_str("Recently deleted:\n");
        for t in trash {
            s.push_str(&t.one_line());
            s.push('\n');
        }
    }
    // Small models answer "Done!" without calling anything; the eval saw it (docs/EVALS.md).
    // Said last, next to the request, and outside the cached prefix.
    s.push_str("A change happens only through a tool call.\n");
    s.push_str(CONTEXT_CLOSE);
    s
}

/// The person's latest message as sent to the model: the data block, then their words.
///
/// Measured the other way round too (docs/EVALS.md): with the block after the words the
/// local model called tools more often, for greetings and questions as well, and the
/// pass rate stayed the same.
pub fn with_context(context: &str, message: &str) -> String {
    format!("{context}\n{message}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn the_context_carries_local_time_and_tomorrow() {
        let tz = parse_timezone("Europe/Paris").unwrap();
        let s = context_block(at("2026-11-22T23:30:00Z"), tz, &[], false, &[]);
        assert!(
            s.starts_with(CONTEXT_OPEN) && s.ends_with(CONTEXT_CLOSE),
            "{s}"
        );
        assert!(s.contains("2026-11-23T00:30 (Mon)"), "{s}");
        assert!(
            s.contains("Today is 2026-11-23; tomorrow is 2026-11-24"),
            "{s}"
        );
        assert!(s.contains("Europe/Paris"));
        assert!(s.contains("Open tasks: none."));
        assert!(!s.contains("Recently deleted"), "no trash, no line: {s}");
        assert!(parse_timezone("Mars/Base").is_none());
    }

    #[test]
    fn the_most_recently_deleted_tasks_are_shown_after_the_open_ones() {
        let task = |id: i64, title: &str, deleted: Option<&str>| -> Task {
            serde_json::from_value(serde_json::json!({
                "id": id, "title": title, "description": null, "completed": false,
                "priority": "medium", "tags": [], "due": null, "deleted_at": deleted,
                "created_at": "2026-12-01T10:00:00Z", "updated_at": "2026-12-01T10:00:00Z"
            }))
            .unwrap()
        };
        let tz = parse_timezone("UTC").unwrap();
        let open = [task(1, "Buy groceries", None)];
        let trash = [task(
            4,
            "Sketch the garden idea",
            Some("2026-12-01T11:00:00Z"),
        )];
        let s = context_block(at("2026-12-01T12:00:00Z"), tz, &open, false, &trash);
        let open_at = s.find("#1 [ ] Buy groceries").unwrap();
        let trash_at = s
            .find("Recently deleted:\n#4 [ ] Sketch the garden idea (deleted)\n")
            .unwrap();
        assert!(open_at < trash_at, "{s}");
        assert!(s.ends_with(&format!("tool call.\n{CONTEXT_CLOSE}")), "{s}");
    }

    #[test]
    fn the_system_message_is_the_same_bytes_whoever_and_whenever() {
        // Nothing of the moment, the zone or the tasks may leak into it.
        let a = system_message(BUILT_IN);
        assert_eq!(a, system_message(BUILT_IN));
        assert!(!a.contains("Now:") && !a.contains("Open tasks:"), "{a}");
        let paris = parse_timezone("Europe/Paris").unwrap();
        let tokyo = parse_timezone("Asia/Tokyo").unwrap();
        assert_ne!(
            context_block(at("2026-11-22T10:00:00Z"), paris, &[], false, &[]),
            context_block(at("2026-11-23T10:00:00Z"), tokyo, &[], false, &[])
        );
    }
}
