//! The system prompt: AGENT_PROMPT.md (compiled in, replaceable at run time) plus the
//! moment and time zone of the person, and a compact view of their open tasks.

use chrono::{DateTime, Datelike, Duration, Utc};
use chrono_tz::Tz;
use todo_mcp::tasks::Task;

/// The prompt compiled into the binary.
pub const BUILT_IN: &str = include_str!("../../../AGENT_PROMPT.md");

/// Resolves an IANA time zone name; `None` for an unknown one.
pub fn parse_timezone(name: &str) -> Option<Tz> {
    name.trim().parse::<Tz>().ok()
}

/// The full system message for one turn.
pub fn system_message(
    base: &str,
    now: DateTime<Utc>,
    tz: Tz,
    open: &[Task],
    more_open: bool,
) -> String {
    let local = now.with_timezone(&tz);
    let tomorrow = local.date_naive() + Duration::days(1);
    let mut s = String::with_capacity(base.len() + 512);
    s.push_str(base.trim_end());
    s.push_str(&format!(
        "\n\nNow: {} ({}), time zone {} (UTC{}). Today is {}; tomorrow is {}.\n",
        local.format("%Y-%m-%dT%H:%M%:z"),
        local.weekday(),
        tz.name(),
        local.format("%:z"),
        local.format("%Y-%m-%d"),
        tomorrow.format("%Y-%m-%d"),
    ));
    if open.is_empty() {
        s.push_str("Open tasks: none.\n");
    } else {
        s.push_str("Open tasks (soonest due first):\n");
        for t in open {
            s.push_str("- ");
            s.push_str(&t.one_line());
            s.push('\n');
        }
        if more_open {
            s.push_str("- … more: use list_tasks to see the rest.\n");
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_prompt_carries_local_time_and_tomorrow() {
        let now = DateTime::parse_from_rfc3339("2026-11-22T23:30:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let tz = parse_timezone("Europe/Paris").unwrap();
        let s = system_message("Base.", now, tz, &[], false);
        assert!(s.starts_with("Base."));
        assert!(s.contains("2026-11-23T00:30+01:00"), "{s}");
        assert!(
            s.contains("Today is 2026-11-23; tomorrow is 2026-11-24"),
            "{s}"
        );
        assert!(s.contains("Europe/Paris"));
        assert!(s.contains("Open tasks: none."));
        assert!(parse_timezone("Mars/Base").is_none());
    }
}
