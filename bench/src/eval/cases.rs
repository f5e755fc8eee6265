//! The eval's cases (a JSON file) and the judge: a turn passes when the task list it
//! leaves behind changed exactly as expected, whatever the reply's wording.

use std::collections::BTreeMap;

use anyhow::{Context, bail};
use chrono::{DateTime, Duration, NaiveDate, NaiveTime, TimeZone, Utc};
use chrono_tz::Tz;
use serde::Deserialize;
use serde_json::Value;

/// The whole case file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Suite {
    pub conversations: Vec<Conversation>,
}

/// Turns sent in one conversation, by one person in one time zone.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Conversation {
    pub name: String,
    pub timezone: String,
    /// Tasks the person has before the conversation starts (added through todo-mcp).
    #[serde(default)]
    pub seed: Vec<Seed>,
    pub turns: Vec<Turn>,
}

/// A task to create before the conversation.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Seed {
    pub title: String,
    /// Relative day as in [`DueSpec`], e.g. "tomorrow".
    #[serde(default)]
    pub due: Option<String>,
    #[serde(default)]
    pub priority: Option<String>,
    #[serde(default)]
    pub tags: Vec<String>,
    /// Created and then deleted (it sits in the trash).
    #[serde(default)]
    pub deleted: bool,
    #[serde(default)]
    pub completed: bool,
}

/// One message of the person and what it must do to the task list.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Turn {
    /// Unique name of the case.
    pub case: String,
    pub say: String,
    #[serde(default)]
    pub expect: Expect,
}

/// Expected changes. Every change not listed fails the case; an empty `Expect` means
/// "nothing may change".
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Expect {
    #[serde(default)]
    pub added: Vec<Matcher>,
    #[serde(default)]
    pub completed: Vec<Matcher>,
    #[serde(default)]
    pub reopened: Vec<Matcher>,
    #[serde(default)]
    pub deleted: Vec<Matcher>,
    #[serde(default)]
    pub restored: Vec<Matcher>,
    /// Existing tasks whose fields changed; matched against their new state.
    #[serde(default)]
    pub updated: Vec<Matcher>,
    /// The reply must be a question (the person has to choose).
    #[serde(default)]
    pub asks: bool,
    /// Words the reply must contain (a list shows these tasks), case-insensitive.
    #[serde(default)]
    pub mentions: Vec<String>,
    /// Words the reply must not contain (a filtered list leaves these out).
    #[serde(default)]
    pub omits: Vec<String>,
}

/// What a task must look like. `title` is a case-insensitive substring; `a|b` allows either.
#[derive(Debug, Default, Deserialize, Clone)]
#[serde(deny_unknown_fields)]
pub struct Matcher {
    pub title: String,
    /// See [`DueSpec::parse`]; absent: not checked.
    #[serde(default)]
    pub due: Option<String>,
    #[serde(default)]
    pub priority: Option<String>,
    /// Tags the task must carry (others allowed).
    #[serde(default)]
    pub tags: Vec<String>,
    /// Title words that must not appear ("Add eggs" for "add eggs and add bread").
    #[serde(default)]
    pub title_not: Vec<String>,
}

impl Suite {
    pub fn parse(text: &str) -> anyhow::Result<Suite> {
        let s: Suite = serde_json::from_str(text).context("the case file is not valid")?;
        let mut names = std::collections::HashSet::new();
        for c in &s.conversations {
            c.timezone
                .parse::<Tz>()
                .map_err(|_| anyhow::anyhow!("{}: unknown time zone {}", c.name, c.timezone))?;
            let today = NaiveDate::from_ymd_opt(2026, 1, 1).unwrap_or_default();
            for seed in &c.seed {
                if let Some(d) = &seed.due {
                    DueSpec::parse(d)?.resolve(today);
                }
            }
            for t in &c.turns {
                if !names.insert(t.case.clone()) {
                    bail!("case {} appears twice", t.case);
                }
                let e = &t.expect;
                for m in e
                    .added
                    .iter()
                    .chain(&e.completed)
                    .chain(&e.reopened)
                    .chain(&e.deleted)
                    .chain(&e.restored)
                    .chain(&e.updated)
                {
                    if let Some(d) = &m.due {
                        DueSpec::parse(d).with_context(|| format!("case {}", t.case))?;
                    }
                }
            }
        }
        Ok(s)
    }

    /// Cases in the file.
    pub fn case_count(&self) -> usize {
        self.conversations.iter().map(|c| c.turns.len()).sum()
    }
}

/// A due date relative to the day of the run in the person's zone: `none`, `today`,
/// `tomorrow`, `+3d`, `friday` (the next Friday after today), each optionally followed by
/// a local time `17:00`.
#[derive(Debug, Clone, PartialEq)]
pub enum DueSpec {
    None,
    Day {
        offset: Relative,
        time: Option<NaiveTime>,
    },
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Relative {
    Days(i64),
    Next(chrono::Weekday),
}

impl DueSpec {
    pub fn parse(s: &str) -> anyhow::Result<DueSpec> {
        let s = s.trim().to_lowercase();
        if s == "none" {
            return Ok(DueSpec::None);
        }
        let mut parts = s.split_whitespace();
        let day = parts.next().unwrap_or("");
        let offset = match day {
            "today" => Relative::Days(0),
            "tomorrow" => Relative::Days(1),
            d if d.starts_with('+') && d.ends_with('d') => Relative::Days(
                d[1..d.len() - 1]
                    .parse()
                    .with_context(|| format!("bad day offset {d:?}"))?,
            ),
            d => Relative::Next(
                d.parse::<chrono::Weekday>()
                    .map_err(|_| anyhow::anyhow!("bad due spec {s:?}"))?,
            ),
        };
        let time = match parts.next() {
            None => None,
            Some(t) => Some(
                NaiveTime::parse_from_str(t, "%H:%M")
                    .with_context(|| format!("bad time in due spec {s:?}"))?,
            ),
        };
        if parts.next().is_some() {
            bail!("bad due spec {s:?}");
        }
        Ok(DueSpec::Day { offset, time })
    }

    /// The local date this spec names, given today's local date.
    pub fn resolve(&self, today: NaiveDate) -> Option<NaiveDate> {
        match self {
            DueSpec::None => None,
            DueSpec::Day { offset, .. } => Some(match offset {
                Relative::Days(n) => today + Duration::days(*n),
                Relative::Next(w) => {
                    let mut d = today + Duration::days(1);
                    while chrono::Datelike::weekday(&d) != *w {
                        d += Duration::days(1);
                    }
                    d
                }
            }),
        }
    }

    /// Whether a stored due (`YYYY-MM-DD` or an RFC 3339 instant) fits. A spec without a
    /// time accepts the whole day or any instant on that local day.
    pub fn accepts(&self, due: Option<&str>, today: NaiveDate, tz: Tz) -> bool {
        let Some(want) = self.resolve(today) else {
            return due.is_none();
        };
        let Some(due) = due else { return false };
        let time = match self {
            DueSpec::Day { time, .. } => *time,
            DueSpec::None => None,
        };
        if let Ok(d) = NaiveDate::parse_from_str(due, "%Y-%m-%d") {
            return time.is_none() && d == want;
        }
        let Ok(at) = DateTime::parse_from_rfc3339(due) else {
            return false;
        };
        let local = at.with_timezone(&tz);
        match time {
            None => local.date_naive() == want,
            Some(t) => tz
                .from_local_datetime(&want.and_time(t))
                .earliest()
                .is_some_and(|w| w.with_timezone(&Utc) == at.with_timezone(&Utc)),
        }
    }

    /// The value to seed: a date, or an RFC 3339 instant for a timed spec.
    pub fn seed_value(&self, today: NaiveDate, tz: Tz) -> Option<String> {
        let date = self.resolve(today)?;
        match self {
            DueSpec::Day { time: Some(t), .. } => tz
                .from_local_datetime(&date.and_time(*t))
                .earliest()
                .map(|d| d.to_rfc3339()),
            _ => Some(date.format("%Y-%m-%d").to_string()),
        }
    }
}

/// A task as the backend lists it (the fields the judge reads).
#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct TaskView {
    pub id: i64,
    pub title: String,
    #[serde(default)]
    pub description: Option<String>,
    pub completed: bool,
    #[serde(default)]
    pub due: Option<String>,
    pub priority: String,
    #[serde(default)]
    pub tags: Vec<String>,
    #[serde(default)]
    pub deleted_at: Option<String>,
}

impl TaskView {
    fn deleted(&self) -> bool {
        self.deleted_at.is_some()
    }
}

impl Matcher {
    pub fn matches(&self, t: &TaskView, today: NaiveDate, tz: Tz) -> bool {
        let title = t.title.to_lowercase();
        if !self
            .title
            .split('|')
            .any(|alt| title.contains(&alt.trim().to_lowercase()))
        {
            return false;
        }
        if self
            .title_not
            .iter()
            .any(|w| title.contains(&w.to_lowercase()))
        {
            return false;
        }
        if let Some(p) = &self.priority
            && !p.eq_ignore_ascii_case(&t.priority)
        {
            return false;
        }
        if !self
            .tags
            .iter()
            .all(|w| t.tags.iter().any(|g| g.eq_ignore_ascii_case(w)))
        {
            return false;
        }
        match &self.due {
            None => true,
            Some(spec) => {
                DueSpec::parse(spec).is_ok_and(|d| d.accepts(t.due.as_deref(), today, tz))
            }
        }
    }
}

/// How a task changed in one turn.
#[derive(Debug, Default)]
struct Changes<'a> {
    added: Vec<&'a TaskView>,
    completed: Vec<&'a TaskView>,
    reopened: Vec<&'a TaskView>,
    deleted: Vec<&'a TaskView>,
    restored: Vec<&'a TaskView>,
    updated: Vec<&'a TaskView>,
}

fn diff<'a>(before: &[TaskView], after: &'a [TaskView]) -> Changes<'a> {
    let old: BTreeMap<i64, &TaskView> = before.iter().map(|t| (t.id, t)).collect();
    let mut c = Changes::default();
    for t in after {
        let Some(o) = old.get(&t.id) else {
            c.added.push(t);
            continue;
        };
        if !o.deleted() && t.deleted() {
            c.deleted.push(t);
        }
        if o.deleted() && !t.deleted() {
            c.restored.push(t);
        }
        if !o.completed && t.completed {
            c.completed.push(t);
        }
        if o.completed && !t.completed {
            c.reopened.push(t);
        }
        if o.title != t.title
            || o.description != t.description
            || o.due != t.due
            || o.priority != t.priority
            || o.tags != t.tags
        {
            c.updated.push(t);
        }
    }
    c
}

/// Every expected change must be found in a distinct task, and nothing else may change.
fn judge_kind(
    kind: &str,
    expected: &[Matcher],
    actual: &[&TaskView],
    today: NaiveDate,
    tz: Tz,
    faults: &mut Vec<String>,
) {
    let mut used = vec![false; actual.len()];
    for m in expected {
        let hit = actual
            .iter()
            .enumerate()
            .find(|(i, t)| !used[*i] && m.matches(t, today, tz));
        match hit {
            Some((i, _)) => used[i] = true,
            None => faults.push(format!(
                "no {kind} task matching {:?}{} (got: {})",
                m.title,
                m.due
                    .as_deref()
                    .map(|d| format!(" due {d}"))
                    .unwrap_or_default(),
                describe(actual)
            )),
        }
    }
    for (i, t) in actual.iter().enumerate() {
        if !used[i] && expected.is_empty() {
            faults.push(format!("unexpected {kind}: {}", describe(&[t])));
        } else if !used[i] {
            faults.push(format!("extra {kind}: {}", describe(&[t])));
        }
    }
}

fn describe(ts: &[&TaskView]) -> String {
    if ts.is_empty() {
        return "nothing".into();
    }
    ts.iter()
        .map(|t| {
            format!(
                "#{} {:?} due {} {} [{}]",
                t.id,
                t.title,
                t.due.as_deref().unwrap_or("-"),
                t.priority,
                t.tags.join(",")
            )
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// The verdict on one turn: empty when it passed, else what went wrong.
pub fn judge(
    expect: &Expect,
    before: &[TaskView],
    after: &[TaskView],
    reply: &str,
    today: NaiveDate,
    tz: Tz,
) -> Vec<String> {
    let c = diff(before, after);
    let mut faults = Vec::new();
    judge_kind("added", &expect.added, &c.added, today, tz, &mut faults);
    judge_kind(
        "completed",
        &expect.completed,
        &c.completed,
        today,
        tz,
        &mut faults,
    );
    judge_kind(
        "reopened",
        &expect.reopened,
        &c.reopened,
        today,
        tz,
        &mut faults,
    );
    judge_kind(
        "deleted",
        &expect.deleted,
        &c.deleted,
        today,
        tz,
        &mut faults,
    );
    judge_kind(
        "restored",
        &expect.restored,
        &c.restored,
        today,
        tz,
        &mut faults,
    );
    // A completed or deleted task also "changed"; only field edits count as updates.
    judge_kind(
        "updated",
        &expect.updated,
        &c.updated,
        today,
        tz,
        &mut faults,
    );
    let lower = reply.to_lowercase();
    if expect.asks && !reply.contains('?') {
        faults.push("expected a question back".into());
    }
    for w in &expect.mentions {
        if !lower.contains(&w.to_lowercase()) {
            faults.push(format!("the reply does not mention {w:?}"));
        }
    }
    for w in &expect.omits {
        if lower.contains(&w.to_lowercase()) {
            faults.push(format!("the reply mentions {w:?}"));
        }
    }
    faults
}

/// Tool names called in the stored messages of one turn (assistant tool calls).
pub fn tools_called(messages: &[Value]) -> Vec<String> {
    messages
        .iter()
        .filter(|m| m["role"] == "assistant")
        .filter_map(|m| m["tool_calls"].as_array())
        .flatten()
        .filter_map(|c| c["name"].as_str().map(str::to_string))
        .collect()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn task(id: i64, title: &str, due: Option<&str>) -> TaskView {
        TaskView {
            id,
            title: title.into(),
            description: None,
            completed: false,
            due: due.map(str::to_string),
            priority: "medium".into(),
            tags: vec![],
            deleted_at: None,
        }
    }

    fn day(s: &str) -> NaiveDate {
        NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
    }

    const NY: Tz = chrono_tz::America::New_York;

    #[test]
    fn due_specs_resolve_relative_to_the_local_day() {
        let today = day("2026-12-01"); // a Tuesday
        let tomorrow_5pm = DueSpec::parse("tomorrow 17:00").unwrap();
        assert!(tomorrow_5pm.accepts(Some("2026-12-02T22:00:00Z"), today, NY));
        assert!(!tomorrow_5pm.accepts(Some("2026-12-02T17:00:00Z"), today, NY));
        assert!(!tomorrow_5pm.accepts(Some("2026-12-02"), today, NY));
        let tomorrow = DueSpec::parse("tomorrow").unwrap();
        assert!(tomorrow.accepts(Some("2026-12-02"), today, NY));
        // 03:00 UTC on the 3rd is still the 2nd in New York.
        assert!(tomorrow.accepts(Some("2026-12-03T03:00:00Z"), today, NY));
        assert!(!tomorrow.accepts(Some("2026-12-03"), today, NY));
        assert!(!tomorrow.accepts(None, today, NY));
        assert_eq!(
            DueSpec::parse("friday").unwrap().resolve(today),
            Some(day("2026-12-04"))
        );
        assert_eq!(
            DueSpec::parse("tuesday").unwrap().resolve(today),
            Some(day("2026-12-08"))
        );
        assert_eq!(
            DueSpec::parse("+3d").unwrap().resolve(today),
            Some(day("2026-12-04"))
        );
        assert!(DueSpec::parse("none").unwrap().accepts(None, today, NY));
        assert!(
            !DueSpec::parse("none")
                .unwrap()
                .accepts(Some("2026-12-02"), today, NY)
        );
        for bad in ["soonish", "tomorrow 5pm", "+xd", "today 17:00 extra"] {
            assert!(DueSpec::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(
            DueSpec::parse("tomorrow 09:30")
                .unwrap()
                .seed_value(today, NY)
                .as_deref(),
            Some("2026-12-02T09:30:00-05:00")
        );
    }

    #[test]
    fn a_turn_passes_only_with_exactly_the_expected_changes() {
        let today = day("2026-12-01");
        let before = vec![task(1, "Buy milk", None)];
        let mut done = before.clone();
        done[0].completed = true;
        let expect: Expect =
            serde_json::from_value(json!({"completed": [{"title": "milk"}]})).unwrap();
        assert!(judge(&expect, &before, &done, "Done!", today, NY).is_empty());
        // The right change plus one nobody asked for fails.
        let mut extra = done.clone();
        extra.push(task(2, "Buy milk", None));
        let f = judge(&expect, &before, &extra, "Done!", today, NY);
        assert_eq!(f.len(), 1, "{f:?}");
        assert!(f[0].contains("unexpected added"), "{f:?}");
        // Nothing happened: the expected change is missing.
        let f = judge(&expect, &before, &before, "Done!", today, NY);
        assert!(f[0].contains("no completed task"), "{f:?}");
    }

    #[test]
    fn two_requests_need_two_distinct_tasks() {
        let today = day("2026-12-01");
        let expect: Expect = serde_json::from_value(json!({"added": [
            {"title": "eggs", "title_not": ["add", "bread"], "due": "none"},
            {"title": "bread", "title_not": ["add", "eggs"], "due": "none"}
        ]}))
        .unwrap();
        let one = vec![task(1, "Add eggs", Some("2026-12-02"))];
        assert_eq!(judge(&expect, &[], &one, "", today, NY).len(), 3);
        let two = vec![task(1, "Buy eggs", None), task(2, "Buy bread", None)];
        assert!(judge(&expect, &[], &two, "", today, NY).is_empty());
    }

    #[test]
    fn deletes_restores_updates_and_questions_are_told_apart() {
        let today = day("2026-12-01");
        let before = vec![task(1, "Call dentist", None), task(2, "Pay rent", None)];
        let mut after = before.clone();
        after[0].deleted_at = Some("2026-12-01T10:00:00Z".into());
        after[1].due = Some("2026-12-04".into());
        let expect: Expect = serde_json::from_value(json!({
            "deleted": [{"title": "dentist"}],
            "updated": [{"title": "rent", "due": "friday"}]
        }))
        .unwrap();
        assert!(judge(&expect, &before, &after, "ok", today, NY).is_empty());
        let restored = judge(&Expect::default(), &after, &before, "ok", today, NY);
        assert!(
            restored.iter().any(|f| f.contains("unexpected restored")),
            "{restored:?}"
        );
        let ask: Expect = serde_json::from_value(json!({"asks": true})).unwrap();
        assert!(judge(&ask, &before, &before, "Which one do you mean?", today, NY).is_empty());
        assert_eq!(
            judge(&ask, &before, &before, "Deleted it.", today, NY).len(),
            1
        );
        let list: Expect =
            serde_json::from_value(json!({"mentions": ["rent"], "omits": ["dentist"]})).unwrap();
        assert!(judge(&list, &before, &before, "#2 Pay rent", today, NY).is_empty());
        assert_eq!(
            judge(&list, &before, &before, "Dentist, rent", today, NY).len(),
            1
        );
    }

    #[test]
    fn the_case_file_is_checked_when_read() {
        let ok = r#"{"conversations": [{"name": "c", "timezone": "Europe/Paris",
            "turns": [{"case": "a", "say": "hi"}]}]}"#;
        assert_eq!(Suite::parse(ok).unwrap().case_count(), 1);
        for bad in [
            r#"{"conversations": [{"name": "c", "timezone": "Mars/Base", "turns": []}]}"#,
            r#"{"conversations": [{"name": "c", "timezone": "UTC", "turns": [
                {"case": "a", "say": "x"}, {"case": "a", "say": "y"}]}]}"#,
            r#"{"conversations": [{"name": "c", "timezone": "UTC", "turns": [
                {"case": "a", "say": "x", "expect": {"added": [{"title": "t", "due": "soon"}]}}]}]}"#,
            r#"{"conversations": [{"name": "c", "timezone": "UTC", "turns": [
                {"case": "a", "say": "x", "expect": {"colour": 1}}]}]}"#,
        ] {
            assert!(Suite::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_suite_shipped_with_the_repository_parses() {
        let text = include_str!("../../evals/cases.json");
        let s = Suite::parse(text).unwrap();
        assert!(s.case_count() >= 24, "{}", s.case_count());
    }

    #[test]
    fn tool_calls_are_read_from_stored_assistant_messages() {
        let msgs = vec![
            json!({"role": "user", "content": "add x"}),
            json!({"role": "assistant", "content": "", "tool_calls": [
                {"id": "1", "name": "add_task", "arguments": "{}"},
                {"id": "2", "name": "list_tasks", "arguments": "{}"}]}),
            json!({"role": "tool", "content": "ok", "tool_name": "add_task"}),
        ];
        assert_eq!(tools_called(&msgs), vec!["add_task", "list_tasks"]);
    }
}
