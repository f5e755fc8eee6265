//! The task domain: what a task is, and the rules every input must pass before it is stored.

use chrono::{DateTime, NaiveDate, NaiveTime, SecondsFormat, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::repeat::Repeat;

/// Longest title accepted, in characters, after trimming.
pub const MAX_TITLE_CHARS: usize = 200;
/// Longest description accepted, in characters.
pub const MAX_DESCRIPTION_CHARS: usize = 4000;
/// Most tags a task may carry.
pub const MAX_TAGS: usize = 10;
/// Longest tag, in characters.
pub const MAX_TAG_CHARS: usize = 32;
/// Page size when a list asks for none.
pub const DEFAULT_PAGE: u32 = 20;
/// Largest page a list may ask for.
pub const MAX_PAGE: u32 = 100;
/// Longest text query.
pub const MAX_QUERY_CHARS: usize = 200;

/// Input that breaks a domain rule; the message says what to change.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct InvalidInput(pub String);

fn invalid(msg: impl Into<String>) -> InvalidInput {
    InvalidInput(msg.into())
}

/// How urgent a task is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Priority {
    Low,
    #[default]
    Medium,
    High,
}

impl Priority {
    pub fn as_i16(self) -> i16 {
        match self {
            Priority::Low => 0,
            Priority::Medium => 1,
            Priority::High => 2,
        }
    }

    pub fn from_i16(v: i16) -> Self {
        match v {
            0 => Priority::Low,
            2 => Priority::High,
            _ => Priority::Medium,
        }
    }
}

/// A due moment: a whole day, or an exact instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Due {
    /// The instant (midnight UTC for a whole day).
    pub at: DateTime<Utc>,
    /// True when only the date was given.
    pub all_day: bool,
}

impl Due {
    /// Parses `YYYY-MM-DD` or an RFC 3339 date-time with an offset (`2026-11-23T17:00:00+01:00`).
    pub fn parse(field: &str, raw: &str) -> Result<Due, InvalidInput> {
        let s = raw.trim();
        if let Ok(d) = NaiveDate::parse_from_str(s, "%Y-%m-%d") {
            return Ok(Due {
                at: d.and_time(NaiveTime::MIN).and_utc(),
                all_day: true,
            });
        }
        match DateTime::parse_from_rfc3339(s) {
            Ok(t) => Ok(Due {
                at: truncate_to_seconds(t.with_timezone(&Utc)),
                all_day: false,
            }),
            Err(_) => {
                let hint = if chrono::NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S").is_ok()
                    || chrono::NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M").is_ok()
                {
                    " It has no UTC offset: add one, e.g. 2026-11-23T17:00:00+01:00 or 2026-11-23T16:00:00Z."
                } else {
                    ""
                };
                Err(invalid(format!(
                    "`{field}` must be an ISO 8601 date (2026-11-23) or date-time with offset \
                     (2026-11-23T17:00:00+01:00); got {raw:?}.{hint}"
                )))
            }
        }
    }

    /// The canonical text form: the date alone for a whole day, else RFC 3339 in UTC.
    pub fn render(&self) -> String {
        if self.all_day {
            self.at.format("%Y-%m-%d").to_string()
        } else {
            self.at.to_rfc3339_opts(SecondsFormat::Secs, true)
        }
    }
}

fn truncate_to_seconds(t: DateTime<Utc>) -> DateTime<Utc> {
    DateTime::from_timestamp(t.timestamp(), 0).unwrap_or(t)
}

/// A task as stored and as every tool returns it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Task {
    /// Short number of the task, unique per user; say "task 3".
    pub id: i64,
    pub title: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    pub completed: bool,
    /// `YYYY-MM-DD` for a whole day, else an RFC 3339 instant in UTC.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub due: Option<String>,
    pub priority: Priority,
    pub tags: Vec<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub completed_at: Option<DateTime<Utc>>,
    /// Set when the task is in the trash; restore it with `restore_task`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deleted_at: Option<DateTime<Utc>>,
    /// The task this one is a subtask of.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent_id: Option<i64>,
    /// How the task repeats; completing it moves it to the next occurrence.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repeat: Option<Repeat>,
}

impl Task {
    /// One line for a person or a model: `#3 [ ] Buy milk (due 2026-11-23, high) #shopping`;
    /// a subtask says `subtask of #2`, a repeating task ends its details with `↻ every Monday`.
    pub fn one_line(&self) -> String {
        let mut s = format!(
            "#{} [{}] {}",
            self.id,
            if self.completed { "x" } else { " " },
            self.title
        );
        let mut extras = Vec::new();
        if let Some(parent) = self.parent_id {
            extras.push(format!("subtask of #{parent}"));
        }
        if let Some(due) = &self.due {
            extras.push(format!("due {due}"));
        }
        if self.priority != Priority::Medium {
            extras.push(format!("{:?}", self.priority).to_lowercase());
        }
        if self.deleted_at.is_some() {
            extras.push("deleted".into());
        }
        if !extras.is_empty() {
            s.push_str(&format!(" ({})", extras.join(", ")));
        }
        if let Some(r) = &self.repeat {
            s.push_str(&format!(" ↻ {}", r.text));
        }
        for t in &self.tags {
            s.push_str(&format!(" #{t}"));
        }
        s
    }
}

/// A validated new task.
#[derive(Debug, Clone, PartialEq)]
pub struct NewTask {
    pub title: Title,
    pub description: Option<String>,
    pub due: Option<Due>,
    pub priority: Priority,
    pub tags: Vec<String>,
    /// Makes it a subtask of this task number.
    pub parent: Option<i64>,
    /// An anchored rule (see [`crate::tasks::repeat`]); `due` is then set.
    pub repeat: Option<Repeat>,
}

/// A validated change; `None` leaves a field as it is, `Some(None)` clears it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TaskPatch {
    pub title: Option<Title>,
    pub description: Option<Option<String>>,
    pub due: Option<Option<Due>>,
    pub priority: Option<Priority>,
    pub tags: Option<Vec<String>>,
    pub completed: Option<bool>,
    /// `Some(None)` makes it a top-level task again.
    pub parent: Option<Option<i64>>,
    /// `Some(None)` stops it repeating.
    pub repeat: Option<Option<Repeat>>,
}

impl TaskPatch {
    pub fn is_empty(&self) -> bool {
        *self == TaskPatch::default()
    }
}

/// Which tasks a list shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum StatusFilter {
    #[default]
    Pending,
    Completed,
    All,
    /// Tasks in the trash, which `restore_task` brings back.
    Deleted,
}

/// A validated list query.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ListFilter {
    pub status: StatusFilter,
    /// Lower-cased text to find in title or description.
    pub query: Option<String>,
    pub tag: Option<String>,
    /// Due strictly before this instant.
    pub due_before: Option<DateTime<Utc>>,
    /// Due at or after this instant.
    pub due_after: Option<DateTime<Utc>>,
    /// Only the subtasks of this task.
    pub parent: Option<i64>,
    /// Leaves subtasks out (top-level tasks only).
    pub hide_subtasks: bool,
    pub limit: u32,
    pub offset: u32,
}

/// A list query as a person or a tool sends it, before any rule is checked: the one place
/// where raw list input becomes a [`ListFilter`] (the HTTP API and the `list_tasks` tool both
/// go through it).
#[derive(Debug, Clone, Copy, Default)]
pub struct ListInput<'a> {
    pub status: Option<StatusFilter>,
    pub query: Option<&'a str>,
    /// A blank tag (`tag=` as a form sends it) means no tag filter, as a blank query does.
    pub tag: Option<&'a str>,
    pub due_before: Option<DateTime<Utc>>,
    pub due_after: Option<DateTime<Utc>>,
    pub parent: Option<i64>,
    pub hide_subtasks: bool,
}

impl ListInput<'_> {
    /// Checks every rule and builds the filter for the page `(limit, offset)` (checked apart,
    /// by [`validate_page`], so callers can say which part was wrong).
    pub fn validate(self, (limit, offset): (u32, u32)) -> Result<ListFilter, InvalidInput> {
        if let (Some(before), Some(after)) = (self.due_before, self.due_after)
            && after >= before
        {
            return Err(invalid("`due_after` must be earlier than `due_before`."));
        }
        let tag = self
            .tag
            .filter(|t| !t.trim().trim_start_matches('#').trim().is_empty())
            .map(normalize_tag)
            .transpose()?;
        Ok(ListFilter {
            // A task's subtasks are listed done or not, unless a status is asked for.
            status: self.status.unwrap_or(if self.parent.is_some() {
                StatusFilter::All
            } else {
                StatusFilter::Pending
            }),
            query: self.query.map(validate_query).transpose()?.flatten(),
            tag,
            due_before: self.due_before,
            due_after: self.due_after,
            parent: self.parent,
            hide_subtasks: self.hide_subtasks,
            limit,
            offset,
        })
    }
}

/// One page of tasks.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct TaskPage {
    pub tasks: Vec<Task>,
    /// Offset of the next page, absent on the last one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_offset: Option<u32>,
}

/// Characters that can make stored text display differently from what it is: Unicode line
/// and paragraph separators (a second "line" inside one) and bidirectional controls (text
/// that reads backwards, "Trojan Source").
pub fn is_deceptive_char(c: char) -> bool {
    matches!(
        c,
        '\u{2028}' | '\u{2029}' | '\u{200E}' | '\u{200F}' | '\u{061C}'
            | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}'
    )
}

/// A task title that passed [`Title::parse`]: trimmed, one line, 1 to [`MAX_TITLE_CHARS`]
/// characters, no control or deceptive characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Title(String);

impl Title {
    /// Trims `raw` and checks it; the error says what to change.
    pub fn parse(raw: &str) -> Result<Title, InvalidInput> {
        validate_title(raw)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::ops::Deref for Title {
    type Target = str;

    fn deref(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for Title {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl PartialEq<&str> for Title {
    fn eq(&self, other: &&str) -> bool {
        self.0 == *other
    }
}

impl From<Title> for String {
    fn from(t: Title) -> String {
        t.0
    }
}

/// Trims a title and checks it (see [`Title`]).
pub fn validate_title(raw: &str) -> Result<Title, InvalidInput> {
    let t = raw.trim();
    if t.is_empty() {
        return Err(invalid("`title` must not be empty."));
    }
    if t.chars().any(|c| c.is_control() || is_deceptive_char(c)) {
        return Err(invalid(
            "`title` must be one line without control characters.",
        ));
    }
    let n = t.chars().count();
    if n > MAX_TITLE_CHARS {
        return Err(invalid(format!(
            "`title` is {n} characters; the limit is {MAX_TITLE_CHARS}. Put details in `description`."
        )));
    }
    Ok(Title(t.to_string()))
}

/// Trims a description; an empty one means none.
pub fn validate_description(raw: &str) -> Result<Option<String>, InvalidInput> {
    let t = raw.trim();
    if t.is_empty() {
        return Ok(None);
    }
    // Lines and tabs are fine in a description; other controls and deceptive characters not.
    if t.chars()
        .any(|c| (c.is_control() && c != '\n' && c != '\t') || is_deceptive_char(c))
    {
        return Err(invalid(
            "`description` must not contain control characters, Unicode line separators or \
             bidirectional controls.",
        ));
    }
    let n = t.chars().count();
    if n > MAX_DESCRIPTION_CHARS {
        return Err(invalid(format!(
            "`description` is {n} characters; the limit is {MAX_DESCRIPTION_CHARS}."
        )));
    }
    Ok(Some(t.to_string()))
}

/// Normalises one tag: trimmed, without a leading `#`, lower-case, letters, digits, `-` and `_`.
pub fn normalize_tag(raw: &str) -> Result<String, InvalidInput> {
    let t = raw.trim().trim_start_matches('#').to_lowercase();
    if t.is_empty() {
        return Err(invalid("a tag must not be empty."));
    }
    if t.chars().count() > MAX_TAG_CHARS {
        return Err(invalid(format!(
            "tag {raw:?} is longer than {MAX_TAG_CHARS} characters."
        )));
    }
    if !t
        .chars()
        .all(|c| c.is_alphanumeric() || c == '-' || c == '_')
    {
        return Err(invalid(format!(
            "tag {raw:?} may hold only letters, digits, '-' and '_'."
        )));
    }
    Ok(t)
}

/// Normalises a tag list, dropping duplicates and keeping order.
pub fn validate_tags(raw: &[String]) -> Result<Vec<String>, InvalidInput> {
    let mut out: Vec<String> = Vec::with_capacity(raw.len());
    for r in raw {
        let t = normalize_tag(r)?;
        if !out.contains(&t) {
            out.push(t);
        }
    }
    if out.len() > MAX_TAGS {
        return Err(invalid(format!(
            "a task may carry at most {MAX_TAGS} tags; got {}.",
            out.len()
        )));
    }
    Ok(out)
}

/// Tags as stored: `,a,b,` so that one `LIKE '%,tag,%'` finds a tag in either dialect.
pub fn encode_tags(tags: &[String]) -> String {
    if tags.is_empty() {
        String::new()
    } else {
        format!(",{},", tags.join(","))
    }
}

pub fn decode_tags(s: &str) -> Vec<String> {
    s.split(',')
        .filter(|t| !t.is_empty())
        .map(str::to_string)
        .collect()
}

/// Checks a page request, applying the default size.
pub fn validate_page(limit: Option<u32>, offset: Option<u32>) -> Result<(u32, u32), InvalidInput> {
    let limit = limit.unwrap_or(DEFAULT_PAGE);
    if limit == 0 || limit > MAX_PAGE {
        return Err(invalid(format!(
            "`limit` must be between 1 and {MAX_PAGE}; got {limit}."
        )));
    }
    let offset = offset.unwrap_or(0);
    if offset > 1_000_000 {
        return Err(invalid("`offset` is too large."));
    }
    Ok((limit, offset))
}

/// Lower-cases a search text and checks its length.
pub fn validate_query(raw: &str) -> Result<Option<String>, InvalidInput> {
    let q = raw.trim();
    if q.is_empty() {
        return Ok(None);
    }
    if q.chars().count() > MAX_QUERY_CHARS {
        return Err(invalid(format!(
            "`query` is longer than {MAX_QUERY_CHARS} characters."
        )));
    }
    Ok(Some(q.to_lowercase()))
}

/// What a text query searches: title and description, lower-cased with Unicode rules.
pub fn search_text(title: &str, description: Option<&str>) -> String {
    let mut s = title.to_lowercase();
    if let Some(d) = description {
        s.push(' ');
        s.push_str(&d.to_lowercase());
    }
    s
}

/// A `LIKE` pattern that matches `q` literally anywhere (escape character `\`).
pub fn like_pattern(q: &str) -> String {
    let mut p = String::with_capacity(q.len() + 2);
    p.push('%');
    for c in q.chars() {
        if matches!(c, '%' | '_' | '\\') {
            p.push('\\');
        }
        p.push(c);
    }
    p.push('%');
    p
}

/// Checks a task number given by a caller.
pub fn validate_id(id: i64) -> Result<i64, InvalidInput> {
    if id < 1 {
        return Err(invalid(format!(
            "`id` must be a task number of 1 or more; got {id}. Use list_tasks to find it."
        )));
    }
    Ok(id)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn titles_are_trimmed_and_bounded() {
        assert_eq!(validate_title("  Buy milk \n").as_deref(), Ok("Buy milk"));
        assert!(validate_title("   ").is_err());
        assert!(validate_title(&"x".repeat(MAX_TITLE_CHARS)).is_ok());
        let err = validate_title(&"é".repeat(MAX_TITLE_CHARS + 1)).unwrap_err();
        assert!(err.0.contains("201 characters"), "{err}");
        assert!(validate_title("two\nlines").is_err());
    }

    #[test]
    fn dates_parse_as_whole_days_or_instants() {
        let d = Due::parse("due", "2026-11-23").unwrap();
        assert!(d.all_day);
        assert_eq!(d.render(), "2026-11-23");
        let t = Due::parse("due", "2026-11-23T17:00:00.750+01:00").unwrap();
        assert!(!t.all_day);
        assert_eq!(t.render(), "2026-11-23T16:00:00Z");
    }

    #[test]
    fn malformed_dates_say_what_to_send() {
        let cases = [
            ("tomorrow", "ISO 8601"),
            ("2026-13-01", "ISO 8601"),
            ("2026-11-23T17:00", "no UTC offset"),
            ("2026-11-23T17:00:00", "no UTC offset"),
            ("", "ISO 8601"),
        ];
        for (raw, want) in cases {
            let err = Due::parse("due", raw).unwrap_err();
            assert!(err.0.contains(want), "{raw:?} gave {err}");
        }
    }

    #[test]
    fn tags_are_normalised_deduplicated_and_checked() {
        let tags =
            validate_tags(&["#Shopping".into(), "shopping".into(), "home_2".into()]).unwrap();
        assert_eq!(tags, vec!["shopping", "home_2"]);
        assert!(validate_tags(&["a,b".into()]).is_err());
        assert!(validate_tags(&["".into()]).is_err());
        let many: Vec<String> = (0..11).map(|i| format!("t{i}")).collect();
        assert!(validate_tags(&many).is_err());
        assert_eq!(decode_tags(&encode_tags(&tags)), tags);
        assert_eq!(decode_tags(&encode_tags(&[])), Vec::<String>::new());
    }

    #[test]
    fn like_patterns_escape_wildcards() {
        assert_eq!(like_pattern("50%_off"), "%50\\%\\_off%");
    }

    #[test]
    fn pages_are_bounded() {
        assert_eq!(validate_page(None, None), Ok((DEFAULT_PAGE, 0)));
        assert!(validate_page(Some(0), None).is_err());
        assert!(validate_page(Some(MAX_PAGE + 1), None).is_err());
    }

    #[test]
    fn line_separators_and_bidi_controls_are_refused_in_titles_and_descriptions() {
        for bad in [
            "buy\u{2028}milk",
            "buy\u{2029}milk",
            "pay \u{202E}gnp.exe",
            "a\u{2066}b\u{2069}",
            "x\u{200F}y",
            "x\u{061C}y",
        ] {
            assert!(validate_title(bad).is_err(), "title {bad:?}");
            assert!(validate_description(bad).is_err(), "description {bad:?}");
        }
        assert!(validate_description("line one\nline two\twith a tab").is_ok());
        assert!(validate_description("bell\u{7}").is_err());
        assert_eq!(Title::parse("Café ☕ 日本").unwrap(), "Café ☕ 日本");
    }

    #[test]
    fn ids_must_be_positive() {
        assert!(validate_id(0).is_err());
        assert!(validate_id(-4).is_err());
        assert_eq!(validate_id(3), Ok(3));
    }

    #[test]
    fn list_input_becomes_a_filter_or_says_what_is_wrong() {
        let f = ListInput {
            query: Some("  Milk "),
            tag: Some(" #Errands"),
            ..ListInput::default()
        }
        .validate((20, 0))
        .unwrap();
        assert_eq!(f.status, StatusFilter::Pending);
        assert_eq!(f.query.as_deref(), Some("milk"));
        assert_eq!(f.tag.as_deref(), Some("errands"));
        assert_eq!((f.limit, f.offset), (20, 0));

        // A blank tag or query is no filter; a parent lists its subtasks done or not.
        let f = ListInput {
            query: Some(" "),
            tag: Some(" # "),
            parent: Some(7),
            ..ListInput::default()
        }
        .validate((5, 10))
        .unwrap();
        assert_eq!((f.query, f.tag), (None, None));
        assert_eq!(
            (f.status, f.parent, f.limit, f.offset),
            (StatusFilter::All, Some(7), 5, 10)
        );
        let asked = ListInput {
            parent: Some(7),
            status: Some(StatusFilter::Completed),
            ..ListInput::default()
        };
        assert_eq!(
            asked.validate((1, 0)).unwrap().status,
            StatusFilter::Completed
        );

        let day = |d: u32| Utc.with_ymd_and_hms(2026, 12, d, 0, 0, 0).unwrap();
        let window = |after, before| ListInput {
            due_after: Some(day(after)),
            due_before: Some(day(before)),
            ..ListInput::default()
        };
        assert!(window(1, 2).validate((1, 0)).is_ok());
        for (after, before) in [(2, 2), (3, 2)] {
            let err = window(after, before).validate((1, 0)).unwrap_err();
            assert!(err.0.contains("`due_after` must be earlier"), "{err}");
        }
        let bad_tag = ListInput {
            tag: Some("two words"),
            ..ListInput::default()
        };
        assert!(
            bad_tag
                .validate((1, 0))
                .unwrap_err()
                .0
                .contains("may hold only")
        );
        let long = "q".repeat(MAX_QUERY_CHARS + 1);
        let bad_query = ListInput {
            query: Some(&long),
            ..ListInput::default()
        };
        assert!(
            bad_query
                .validate((1, 0))
                .unwrap_err()
                .0
                .contains("`query` is longer")
        );
    }
}
