//! Tool argument structs. Their doc comments become the JSON Schema descriptions a model
//! reads, so they are written for the model.

use schemars::JsonSchema;
use serde::{Deserialize, Deserializer};

use crate::tasks::{Priority, StatusFilter};

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
    /// When it is due: a date "2026-11-23" or a date-time with offset "2026-11-23T17:00:00+01:00".
    #[serde(default)]
    pub due: Option<String>,
    /// low, medium (default) or high.
    #[serde(default)]
    pub priority: Option<Priority>,
    /// Labels such as "work" or "shopping" (letters, digits, - and _; at most 10).
    #[serde(default)]
    pub tags: Option<Vec<String>>,
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
    /// New due date or date-time with offset; null removes it.
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

    #[test]
    fn unknown_fields_are_refused() {
        let err = serde_json::from_value::<AddTaskArgs>(json!({"title": "x", "colour": "red"}))
            .unwrap_err();
        assert!(err.to_string().contains("colour"));
    }
}
