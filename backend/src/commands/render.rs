//! A command's answer in words, from the tool's structured result, with due moments shown in
//! the person's time zone.

use chrono::{DateTime, Datelike, NaiveDate, Utc};
use chrono_tz::Tz;
use todo_core::tasks::{Priority, Task, TaskPage};

use super::parse::{Change, Command, ListView};
use crate::agent::toolbox::ToolOutcome;

/// Where and when the person is.
#[derive(Debug, Clone, Copy)]
pub struct Here {
    pub now: DateTime<Utc>,
    pub tz: Tz,
}

impl Here {
    fn today(&self) -> NaiveDate {
        self.now.with_timezone(&self.tz).date_naive()
    }
}

/// A due value as the tools give it (`2026-11-24` or an RFC 3339 instant): `Tue 24 Nov` or
/// `Tue 24 Nov 17:00` in the person's zone, with the year when it is not this year's.
pub fn due_text(due: &str, here: Here) -> String {
    let year = |d: NaiveDate| {
        if d.year() == here.today().year() {
            String::new()
        } else {
            format!(" {}", d.year())
        }
    };
    if let Ok(d) = NaiveDate::parse_from_str(due, "%Y-%m-%d") {
        return format!("{}{}", d.format("%a %-d %b"), year(d));
    }
    match DateTime::parse_from_rfc3339(due) {
        Ok(t) => {
            let local = t.with_timezone(&here.tz);
            format!(
                "{}{} {}",
                local.format("%a %-d %b"),
                year(local.date_naive()),
                local.format("%H:%M")
            )
        }
        Err(_) => due.to_string(),
    }
}

/// `#3 [ ] Buy milk (due Tue 24 Nov 17:00, high) #shopping`.
pub fn task_line(t: &Task, here: Here) -> String {
    let mut s = format!(
        "#{} [{}] {}",
        t.id,
        if t.completed { "x" } else { " " },
        t.title
    );
    let mut extras = Vec::new();
    if let Some(parent) = t.parent_id {
        extras.push(format!("subtask of #{parent}"));
    }
    if let Some(due) = &t.due {
        let overdue = !t.completed && is_overdue(due, here);
        extras.push(format!(
            "{}due {}",
            if overdue { "overdue, " } else { "" },
            due_text(due, here)
        ));
    }
    if t.priority != Priority::Medium {
        extras.push(format!("{:?}", t.priority).to_lowercase());
    }
    if t.deleted_at.is_some() {
        extras.push("in the trash".into());
    }
    if !extras.is_empty() {
        s.push_str(&format!(" ({})", extras.join(", ")));
    }
    if let Some(r) = &t.repeat {
        s.push_str(&format!(" ↻ {}", r.text));
    }
    for tag in &t.tags {
        s.push_str(&format!(" #{tag}"));
    }
    s
}

/// A whole-day due date is overdue from the next day on; a due instant once it has passed.
fn is_overdue(due: &str, here: Here) -> bool {
    if let Ok(d) = NaiveDate::parse_from_str(due, "%Y-%m-%d") {
        return d < here.today();
    }
    DateTime::parse_from_rfc3339(due).is_ok_and(|t| t < here.now)
}

/// Due today or earlier, in the person's zone.
fn due_by_end_of_today(due: &str, here: Here) -> bool {
    if let Ok(d) = NaiveDate::parse_from_str(due, "%Y-%m-%d") {
        return d <= here.today();
    }
    DateTime::parse_from_rfc3339(due)
        .is_ok_and(|t| t.with_timezone(&here.tz).date_naive() <= here.today())
}

/// Whether a listed task belongs in the view (the tools' due window is in UTC; whole days
/// are the person's days, so the last cut is made here).
pub fn in_view(view: &ListView, t: &Task, here: Here) -> bool {
    match (view, &t.due) {
        (ListView::Today, Some(d)) => due_by_end_of_today(d, here),
        (ListView::Overdue, Some(d)) => is_overdue(d, here),
        (ListView::Today | ListView::Overdue, None) => false,
        _ => true,
    }
}

fn task_of(o: &ToolOutcome) -> Option<Task> {
    serde_json::from_value(o.result.clone()).ok()
}

/// The answer to a command whose tool call ran (`outcome`).
pub fn answer(cmd: &Command, o: &ToolOutcome, here: Here) -> String {
    if o.is_error {
        return o.text.clone();
    }
    if let Command::List(view) = cmd {
        return match serde_json::from_value::<TaskPage>(o.result.clone()) {
            Ok(page) => list(view, &page, here),
            Err(_) => o.text.clone(),
        };
    }
    let Some(t) = task_of(o) else {
        return o.text.clone();
    };
    let line = task_line(&t, here);
    match cmd {
        Command::Add { .. } => format!("Added {line}."),
        Command::Done(_) if t.repeat.is_some() && !t.completed => {
            format!("Completed this occurrence; next: {line}.")
        }
        Command::Done(_) => format!("Completed {line}."),
        Command::Undone(_) => format!("Re-opened {line}."),
        Command::Edit { change, .. } => {
            let what = match change {
                Change::Title(_) => "title",
                Change::Due(_) => "due date",
                Change::Priority(_) => "priority",
                Change::Tags(_) => "tags",
                Change::Description(_) => "notes",
                Change::Repeat(_) => "repeat",
            };
            format!("Changed the {what}: {line}.")
        }
        Command::Delete(n) => format!(
            "Moved #{} {} to the trash; /restore {n} brings it back.",
            t.id, t.title
        ),
        Command::Restore(_) => format!("Restored {line}."),
        Command::List(_) | Command::Undo | Command::Help => o.text.clone(),
    }
}

fn list(view: &ListView, page: &TaskPage, here: Here) -> String {
    let shown: Vec<&Task> = page
        .tasks
        .iter()
        .filter(|t| in_view(view, t, here))
        .collect();
    let (some, none) = match view {
        ListView::Open => ("Open tasks", "No open tasks. Add one with /add <title>."),
        ListView::Today => ("Due today or earlier", "Nothing is due today."),
        ListView::Overdue => ("Overdue", "Nothing is overdue."),
        ListView::Done => ("Done", "No completed tasks."),
        ListView::Trash => (
            "In the trash (/restore <n> brings one back)",
            "The trash is empty.",
        ),
        ListView::All => ("All tasks", "No tasks yet. Add one with /add <title>."),
        ListView::Tag(_) => ("Tagged", "No open tasks with that tag."),
        ListView::Search(_) => ("Matching", "No open tasks match."),
    };
    if shown.is_empty() {
        return none.to_string();
    }
    let mut s = format!("{some}:");
    for t in &shown {
        s.push('\n');
        s.push_str(&task_line(t, here));
    }
    if page.next_offset.is_some() {
        s.push_str("\n… and more: narrow the list with /list #tag or /list words.");
    }
    s
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn here(now: &str, tz: &str) -> Here {
        Here {
            now: DateTime::parse_from_rfc3339(now)
                .unwrap()
                .with_timezone(&Utc),
            tz: tz.parse().unwrap(),
        }
    }

    fn task(id: i64, due: Option<&str>) -> Task {
        let t = DateTime::parse_from_rfc3339("2026-11-01T00:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        Task {
            id,
            title: format!("task {id}"),
            description: None,
            completed: false,
            due: due.map(str::to_string),
            priority: Priority::Medium,
            tags: vec![],
            created_at: t,
            updated_at: t,
            completed_at: None,
            deleted_at: None,
            parent_id: None,
            repeat: None,
        }
    }

    #[test]
    fn due_moments_are_shown_in_the_persons_zone() {
        let h = here("2026-11-23T14:00:00Z", "America/New_York");
        assert_eq!(due_text("2026-11-24", h), "Tue 24 Nov");
        assert_eq!(due_text("2026-11-24T02:00:00Z", h), "Mon 23 Nov 21:00");
        assert_eq!(due_text("2027-01-05", h), "Tue 5 Jan 2027");
        let mut t = task(3, Some("2026-11-20"));
        t.priority = Priority::High;
        t.tags = vec!["shopping".into()];
        assert_eq!(
            task_line(&t, h),
            "#3 [ ] task 3 (overdue, due Fri 20 Nov, high) #shopping"
        );
    }

    #[test]
    fn today_and_overdue_are_cut_at_the_persons_midnight() {
        // 23:30 UTC Monday is Tuesday 08:30 in Tokyo.
        let h = here("2026-11-23T23:30:00Z", "Asia/Tokyo");
        let cases = [
            ("2026-11-23", true, true),
            ("2026-11-24", true, false),
            ("2026-11-25", false, false),
            // Tuesday 06:00 in Tokyo (passed) and Tuesday 20:00 (not yet).
            ("2026-11-23T21:00:00Z", true, true),
            ("2026-11-24T11:00:00Z", true, false),
            // Wednesday 00:30 in Tokyo.
            ("2026-11-24T15:30:00Z", false, false),
        ];
        for (due, today, overdue) in cases {
            let t = task(1, Some(due));
            assert_eq!(in_view(&ListView::Today, &t, h), today, "today: {due}");
            assert_eq!(
                in_view(&ListView::Overdue, &t, h),
                overdue,
                "overdue: {due}"
            );
        }
        assert!(!in_view(&ListView::Today, &task(1, None), h));
        assert!(in_view(&ListView::Open, &task(1, None), h));
    }
}
