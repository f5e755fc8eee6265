//! Tool argument structs. Their doc comments become the JSON Schema descriptions a model
//! reads, so they are written for the model.

use std::sync::OnceLock;

use chrono::{DateTime, Datelike, NaiveDateTime, TimeZone, Utc};
use chrono_tz::Tz;
use schemars::JsonSchema;
use serde::{Deserialize, Deserializer};
use serde_json::Value;

use todo_core::tasks::{Priority, StatusFilter};

/// The time zone in which date-times without a UTC offset are read when no caller names
/// one: `TODO_TIMEZONE`, else the machine's zone (`TZ`, `/etc/timezone`, `/etc/localtime`),
/// else UTC. An invalid `TODO_TIMEZONE` is an error the binaries report at start-up.
pub fn configured_timezone() -> Result<Tz, String> {
    ZONE.get_or_init(|| zone_named(std::env::var("TODO_TIMEZONE").ok()))
        .clone()
}

/// Fixes the zone of [`configured_timezone`] to `TODO_TIMEZONE` as a binary's settings read
/// it (at start-up, before any tool runs); the answer says whether it is valid.
pub fn set_timezone(name: Option<String>) -> Result<Tz, String> {
    ZONE.get_or_init(|| zone_named(name)).clone()
}

static ZONE: OnceLock<Result<Tz, String>> = OnceLock::new();

fn zone_named(name: Option<String>) -> Result<Tz, String> {
    match name.filter(|v| !v.trim().is_empty()) {
        Some(v) => v.trim().parse::<Tz>().map_err(|_| {
            format!("TODO_TIMEZONE {v:?} is not an IANA time zone such as Europe/Paris")
        }),
        None => Ok(machine_timezone().unwrap_or(Tz::UTC)),
    }
}

fn machine_timezone() -> Option<Tz> {
    let from_tz = std::env::var("TZ")
        .ok()
        .and_then(|v| v.trim_start_matches(':').parse::<Tz>().ok());
    let from_file = || {
        std::fs::read_to_string("/etc/timezone")
            .ok()
            .and_then(|v| v.trim().parse::<Tz>().ok())
    };
    let from_link = || {
        let target = std::fs::read_link("/etc/localtime").ok()?;
        let s = target.to_string_lossy();
        let (_, name) = s.split_once("zoneinfo/")?;
        name.parse::<Tz>().ok()
    };
    from_tz.or_else(from_file).or_else(from_link)
}

/// Reads a due value as a model writes it, in the person's zone `tz`: a date or a date-time
/// with an offset passes unchanged; a date-time without an offset (`2026-12-02T17:00`,
/// also with a space or seconds) is that wall-clock time in `tz`. Due words as a person
/// types them ("friday", "tomorrow 5pm", "in 3 days": `tasks::when`) are read in `tz` too: the
/// eval saw the local model turn "Friday" into Saturday's date when it did the arithmetic
/// itself, and copying the person's words is what small models do reliably. Anything else
/// gets a message naming the exact form to use, with today's date.
pub fn local_due(field: &str, raw: &str, tz: Tz, now: DateTime<Utc>) -> Result<String, String> {
    let s = raw.trim();
    if chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d").is_ok()
        || DateTime::parse_from_rfc3339(s).is_ok()
    {
        return Ok(s.to_string());
    }
    let naive = [
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%dT%H:%M",
        "%Y-%m-%d %H:%M:%S%.f",
        "%Y-%m-%d %H:%M",
    ]
    .iter()
    .find_map(|f| NaiveDateTime::parse_from_str(s, f).ok());
    if let Some(n) = naive {
        // In a daylight-saving gap the wall-clock time does not exist: an hour later does.
        let local = tz.from_local_datetime(&n).earliest().or_else(|| {
            tz.from_local_datetime(&(n + chrono::Duration::hours(1)))
                .earliest()
        });
        if let Some(t) = local {
            return Ok(t.to_rfc3339());
        }
    }
    if let Ok(when) = todo_core::tasks::when::parse(s, now, tz) {
        return Ok(when.to_due());
    }
    let today = now.with_timezone(&tz);
    let tomorrow = today.date_naive() + chrono::Duration::days(1);
    Err(format!(
        "`{field}` must be an ISO 8601 date such as {tomorrow} or a local date-time such as {tomorrow}T17:00 \
         (the person's time zone {tz} is applied), not {raw:?}. Today is {} ({}), so \"tomorrow at 5pm\" \
         is {tomorrow}T17:00. Call again with that form.",
        today.format("%Y-%m-%d"),
        today.weekday(),
    ))
}

/// Repairs what small models commonly send before the arguments are typed: `task_id` for
/// `id`, a priority in capitals, one tag as a string, numbers and booleans as strings.
/// Nothing here changes which task or user a call acts on.
pub fn normalize(args: &mut serde_json::Map<String, Value>) {
    if !args.contains_key("id")
        && let Some(v) = args.remove("task_id")
    {
        args.insert("id".into(), v);
    }
    if let Some(Value::String(p)) = args.get_mut("priority") {
        *p = p.trim().to_lowercase();
    }
    if let Some(Value::String(status)) = args.get_mut("status") {
        *status = status.trim().to_lowercase();
    }
    if let Some(Value::String(t)) = args.get("tags") {
        let tags: Vec<Value> = t
            .split(',')
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .map(|t| Value::String(t.to_string()))
            .collect();
        args.insert("tags".into(), Value::Array(tags));
    }
    for key in ["limit", "offset"] {
        if let Some(Value::String(n)) = args.get(key)
            && let Ok(n) = n.trim().parse::<u32>()
        {
            args.insert(key.into(), Value::from(n));
        }
    }
    if !args.contains_key("parent_id")
        && let Some(v) = args.remove("parent")
    {
        args.insert("parent_id".into(), v);
    }
    for key in ["completed", "subtasks"] {
        if let Some(Value::String(b)) = args.get(key) {
            match b.trim().to_lowercase().as_str() {
                "true" => {
                    args.insert(key.into(), Value::Bool(true));
                }
                "false" => {
                    args.insert(key.into(), Value::Bool(false));
                }
                _ => {}
            }
        }
    }
}

/// Accepts a task number as `3`, `"3"` or `"#3"`: models quote numbers often enough.
fn task_number<'de, D: Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        Int(i64),
        Text(String),
        Float(f64),
    }
    match Raw::deserialize(d)? {
        Raw::Int(n) => Ok(n),
        Raw::Float(f) if f.fract() == 0.0 && f.abs() < 1e15 => Ok(f as i64),
        Raw::Float(f) => Err(serde::de::Error::custom(format!(
            "`id` must be a whole task number, got {f}"
        ))),
        Raw::Text(s) => s.trim().trim_start_matches('#').parse().map_err(|_| {
            serde::de::Error::custom(format!("`id` must be a task number such as 3, got {s:?}"))
        }),
    }
}

fn some_task_number<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
    explicit_null_task_number(d).map(Option::flatten)
}

/// A task number or `null` (see [`task_number`]).
fn explicit_null_task_number<'de, D: Deserializer<'de>>(
    d: D,
) -> Result<Option<Option<i64>>, D::Error> {
    struct Number(i64);
    impl<'de> Deserialize<'de> for Number {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            task_number(d).map(Number)
        }
    }
    Option::<Number>::deserialize(d).map(|n| Some(n.map(|n| n.0)))
}

/// `null` means "clear it", absence means "leave it".
fn explicit_null<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(d).map(Some)
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AddTaskArgs {
    /// What to do, one short line (1–200 characters), e.g. "Buy milk".
    pub title: String,
    /// Optional details or notes.
    #[serde(default)]
    pub description: Option<String>,
    /// When: words ("friday", "tomorrow 17:00"), a date "2026-11-23" or a local date-time "2026-11-23T17:00".
    #[serde(default)]
    pub due: Option<String>,
    /// low, medium (default) or high.
    #[serde(default)]
    pub priority: Option<Priority>,
    /// Labels such as "work" or "shopping" (letters, digits, - and _; at most 10).
    #[serde(default)]
    pub tags: Option<Vec<String>>,
    /// e.g. "every monday", "every 3 days", "weekdays", "RRULE:…".
    #[serde(default)]
    pub repeat: Option<String>,
    /// Makes it a subtask of this task.
    #[serde(default, deserialize_with = "some_task_number")]
    #[schemars(with = "Option<i64>")]
    pub parent_id: Option<i64>,
}

#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ListTasksArgs {
    /// pending (default), completed, all, or deleted (the trash).
    #[serde(default)]
    pub status: Option<StatusFilter>,
    /// Text to find in titles and descriptions (case-insensitive).
    #[serde(default)]
    pub query: Option<String>,
    /// Only tasks with this tag.
    #[serde(default)]
    pub tag: Option<String>,
    /// Only tasks due before this date or date-time (a date means before that day starts).
    #[serde(default)]
    pub due_before: Option<String>,
    /// Only tasks due at or after this date or date-time.
    #[serde(default)]
    pub due_after: Option<String>,
    /// Only subtasks of this task.
    #[serde(default, deserialize_with = "some_task_number")]
    #[schemars(with = "Option<i64>")]
    pub parent_id: Option<i64>,
    /// false hides subtasks.
    #[serde(default)]
    pub subtasks: Option<bool>,
    /// Page size, 1–100 (default 20).
    #[serde(default)]
    pub limit: Option<u32>,
    /// Tasks to skip, from the previous page's next_offset.
    #[serde(default)]
    pub offset: Option<u32>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TaskIdArgs {
    /// The task number shown as "#3" in lists.
    #[serde(deserialize_with = "task_number")]
    #[schemars(with = "i64")]
    pub id: i64,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateTaskArgs {
    /// The task number shown as "#3" in lists.
    #[serde(deserialize_with = "task_number")]
    #[schemars(with = "i64")]
    pub id: i64,
    /// New title.
    #[serde(default)]
    pub title: Option<String>,
    /// New description; null removes it.
    #[serde(default, deserialize_with = "explicit_null")]
    pub description: Option<Option<String>>,
    /// New due (words, date or local date-time); null removes it.
    #[serde(default, deserialize_with = "explicit_null")]
    pub due: Option<Option<String>>,
    /// low, medium or high.
    #[serde(default)]
    pub priority: Option<Priority>,
    /// Replaces all tags; [] removes them.
    #[serde(default)]
    pub tags: Option<Vec<String>>,
    /// true marks it done, false re-opens it.
    #[serde(default)]
    pub completed: Option<bool>,
    /// As in add_task; null stops repeating.
    #[serde(default, deserialize_with = "explicit_null")]
    pub repeat: Option<Option<String>>,
    /// null makes it top-level.
    #[serde(default, deserialize_with = "explicit_null_task_number")]
    #[schemars(with = "Option<i64>")]
    pub parent_id: Option<Option<i64>>,
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn task_numbers_may_be_quoted_or_hashed() {
        for v in [json!(3), json!("3"), json!("#3"), json!(3.0)] {
            let a: TaskIdArgs = serde_json::from_value(json!({ "id": v })).unwrap();
            assert_eq!(a.id, 3);
        }
        for v in [json!("three"), json!(2.5), json!(null), json!([3])] {
            assert!(serde_json::from_value::<TaskIdArgs>(json!({ "id": v })).is_err());
        }
    }

    #[test]
    fn update_tells_null_from_absent() {
        let a: UpdateTaskArgs =
            serde_json::from_value(json!({"id": 1, "due": null, "title": "x"})).unwrap();
        assert_eq!(a.due, Some(None));
        assert_eq!(a.description, None);
    }

    fn now() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-12-01T12:00:00Z")
            .unwrap()
            .with_timezone(&Utc)
    }

    #[test]
    fn date_times_without_an_offset_are_read_in_the_persons_zone() {
        let ny: Tz = "America/New_York".parse().unwrap();
        for raw in [
            "2026-12-02T17:00",
            "2026-12-02T17:00:00",
            "2026-12-02 17:00",
            "2026-12-02T17:00:00.000",
        ] {
            assert_eq!(
                local_due("due", raw, ny, now()).unwrap(),
                "2026-12-02T17:00:00-05:00",
                "{raw}"
            );
        }
        // Summer time in Paris: +02:00.
        let paris: Tz = "Europe/Paris".parse().unwrap();
        assert_eq!(
            local_due("due", "2026-07-01T09:30", paris, now()).unwrap(),
            "2026-07-01T09:30:00+02:00"
        );
        // 02:30 does not exist in Paris on 2026-03-29; an hour later does.
        assert_eq!(
            local_due("due", "2026-03-29T02:30", paris, now()).unwrap(),
            "2026-03-29T03:30:00+02:00"
        );
        // Dates and offset date-times are not touched.
        for raw in [
            "2026-12-02",
            "2026-12-02T17:00:00+01:00",
            "2026-12-02T16:00:00Z",
        ] {
            assert_eq!(local_due("due", raw, ny, now()).unwrap(), raw);
        }
    }

    #[test]
    fn due_words_are_read_in_the_persons_zone() {
        // now() is Tue 2026-12-01 in New York.
        let ny: Tz = "America/New_York".parse().unwrap();
        for (raw, due) in [
            ("friday", "2026-12-04"),
            ("Friday", "2026-12-04"),
            ("tomorrow", "2026-12-02"),
            ("tomorrow 5pm", "2026-12-02T22:00:00Z"),
            ("friday 14:30", "2026-12-04T19:30:00Z"),
            ("in 3 days", "2026-12-04"),
        ] {
            assert_eq!(local_due("due", raw, ny, now()).unwrap(), due, "{raw}");
        }
    }

    #[test]
    fn what_is_neither_a_date_nor_due_words_gets_the_exact_form_to_use() {
        let ny: Tz = "America/New_York".parse().unwrap();
        for raw in [
            "someday soon",
            "2026-13-45",
            "the 5th of never",
            "friday-ish",
        ] {
            let e = local_due("due", raw, ny, now()).unwrap_err();
            assert!(e.contains("2026-12-02T17:00"), "{e}");
            assert!(e.contains("Today is 2026-12-01 (Tue)"), "{e}");
            assert!(e.contains(raw), "{e}");
        }
    }

    #[test]
    fn common_slips_of_small_models_are_repaired_and_nothing_else() {
        let mut a = json!({"task_id": "4", "priority": "High", "tags": "work, home",
                           "limit": "5", "completed": "false", "status": "Pending"})
        .as_object()
        .cloned()
        .unwrap();
        normalize(&mut a);
        assert_eq!(
            Value::Object(a.clone()),
            json!({"id": "4", "priority": "high", "tags": ["work", "home"], "limit": 5,
                   "completed": false, "status": "pending"})
        );
        let u: UpdateTaskArgs =
            serde_json::from_value(json!({"id": a["id"], "completed": a["completed"]})).unwrap();
        assert_eq!((u.id, u.completed), (4, Some(false)));
        // Both names given: left alone, so the unknown field is refused, not guessed.
        let mut both = json!({"id": 1, "task_id": 2}).as_object().cloned().unwrap();
        normalize(&mut both);
        assert!(serde_json::from_value::<TaskIdArgs>(Value::Object(both)).is_err());
        // Unparseable numbers stay strings and fail typing.
        let mut bad = json!({"limit": "many"}).as_object().cloned().unwrap();
        normalize(&mut bad);
        assert!(serde_json::from_value::<ListTasksArgs>(Value::Object(bad)).is_err());
    }

    #[test]
    fn parents_are_task_numbers_or_null() {
        let a: AddTaskArgs =
            serde_json::from_value(json!({"title": "x", "parent_id": "#3"})).unwrap();
        assert_eq!(a.parent_id, Some(3));
        let u: UpdateTaskArgs =
            serde_json::from_value(json!({"id": 4, "parent_id": null})).unwrap();
        assert_eq!(u.parent_id, Some(None));
        let u: UpdateTaskArgs = serde_json::from_value(json!({"id": 4})).unwrap();
        assert_eq!(u.parent_id, None);
        assert!(
            serde_json::from_value::<AddTaskArgs>(json!({"title": "x", "parent_id": "three"}))
                .is_err()
        );
        let mut m = json!({"title": "x", "parent": 2, "subtasks": "false"})
            .as_object()
            .cloned()
            .unwrap();
        normalize(&mut m);
        assert_eq!(
            Value::Object(m),
            json!({"title": "x", "parent_id": 2, "subtasks": false})
        );
    }

    #[test]
    fn unknown_fields_are_refused() {
        let err = serde_json::from_value::<AddTaskArgs>(json!({"title": "x", "colour": "red"}))
            .unwrap_err();
        assert!(err.to_string().contains("colour"));
    }
}
