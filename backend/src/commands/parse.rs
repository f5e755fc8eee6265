//! Reading a command line ("/add buy milk tomorrow 5pm !high #shopping") into a [`Command`].
//! Pure: `now` and the person's zone come from the caller.

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use todo_core::tasks::when::{self, When};
use todo_core::tasks::{Priority, repeat};

/// A command typed in chat.
#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    Add {
        title: String,
        due: Option<When>,
        priority: Option<Priority>,
        tags: Vec<String>,
        /// A repeat phrase as typed ("every 3 days"); the tool reads it.
        repeat: Option<String>,
        /// `/sub <n> …`: a subtask of task n.
        parent: Option<i64>,
    },
    List(ListView),
    Done(i64),
    Undone(i64),
    Edit {
        id: i64,
        change: Change,
    },
    Delete(i64),
    Restore(i64),
    Undo,
    Help,
}

/// Which tasks `/list` shows.
#[derive(Debug, Clone, PartialEq)]
pub enum ListView {
    Open,
    /// Open tasks due today or earlier.
    Today,
    /// Open tasks whose due moment has passed (whole days: before today).
    Overdue,
    Done,
    Trash,
    All,
    Tag(String),
    Search(String),
}

/// One field changed by `/edit`.
#[derive(Debug, Clone, PartialEq)]
pub enum Change {
    Title(String),
    /// `None` clears it.
    Due(Option<When>),
    Priority(Priority),
    Tags(Vec<String>),
    /// `None` clears it.
    Description(Option<String>),
    /// A repeat phrase; `None` stops the repeat.
    Repeat(Option<String>),
}

/// Why a command line could not be read: what to say, and the usage line that shows the way.
#[derive(Debug, Clone, PartialEq)]
pub struct Malformed {
    pub problem: String,
    /// The usage line of the command, or the whole help for an unknown one.
    pub usage: &'static str,
}

pub const ADD: &str = "/add <title> [due words] [every …] [!high|!low] [#tag…] — e.g. /add buy milk tomorrow 5pm #shopping, /add water plants every 3 days";
pub const SUB: &str = "/sub <n> <title> [due words] … — adds a subtask of task n";
pub const LIST: &str = "/list [today|overdue|done|trash|all|#tag|words]";
pub const DONE: &str = "/done <n> — e.g. /done 3";
pub const UNDONE: &str = "/undone <n> — re-opens task n";
pub const EDIT: &str = "/edit <n> <title|due|priority|tags|notes|repeat> <value> — e.g. /edit 3 due fri 9am, /edit 3 due none, /edit 3 repeat every monday";
pub const DELETE: &str = "/delete <n> — moves task n to the trash";
pub const RESTORE: &str = "/restore <n> — brings task n back from the trash";
pub const UNDO: &str = "/undo — reverts the most recent change";
pub const HELP_LINE: &str = "/help — this list";

/// Every usage line, for `/help` and for a command that does not exist.
pub fn help() -> &'static str {
    static HELP: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
        let mut s = String::from("Commands (they run at once, without the language model):\n");
        for line in [
            ADD, SUB, LIST, DONE, UNDONE, EDIT, DELETE, RESTORE, UNDO, HELP_LINE,
        ] {
            s.push_str(line);
            s.push('\n');
        }
        s.push_str("Due words: ");
        s.push_str(when::DUE_WORDS_HELP);
        s.push_str(", in your time zone.");
        s
    });
    HELP.as_str()
}

/// Whether a chat message is a command.
pub fn is_command(message: &str) -> bool {
    message.trim_start().starts_with('/')
}

fn bad(usage: &'static str, problem: impl Into<String>) -> Malformed {
    Malformed {
        problem: problem.into(),
        usage,
    }
}

/// Reads a command line (the message, starting with `/`).
pub fn parse(message: &str, now: DateTime<Utc>, tz: Tz) -> Result<Command, Malformed> {
    let line = message.trim().trim_start_matches('/');
    let (name, rest) = match line.split_once(char::is_whitespace) {
        Some((n, r)) => (n, r.trim()),
        None => (line, ""),
    };
    let name = name.to_lowercase();
    match name.as_str() {
        "add" | "a" | "new" => add(rest, now, tz, ADD),
        "sub" | "subtask" => sub(rest, now, tz),
        "list" | "ls" | "l" => list(rest).map(Command::List),
        "done" | "do" | "complete" | "check" => number(rest, DONE).map(Command::Done),
        "undone" | "undo-done" | "reopen" | "uncheck" => number(rest, UNDONE).map(Command::Undone),
        "edit" | "e" | "set" => edit(rest, now, tz),
        "delete" | "del" | "rm" | "trash" => number(rest, DELETE).map(Command::Delete),
        "restore" | "undelete" => number(rest, RESTORE).map(Command::Restore),
        "undo" => no_arguments(rest, UNDO, Command::Undo),
        "help" | "h" | "?" | "commands" => Ok(Command::Help),
        "" => Err(bad(help(), "A command follows the slash.")),
        other => Err(bad(help(), format!("There is no command /{other}."))),
    }
}

fn no_arguments(rest: &str, usage: &'static str, c: Command) -> Result<Command, Malformed> {
    if rest.is_empty() {
        Ok(c)
    } else {
        Err(bad(usage, "This command takes nothing after it."))
    }
}

/// A task number: `3` or `#3`, alone.
fn number(rest: &str, usage: &'static str) -> Result<i64, Malformed> {
    let mut words = rest.split_whitespace();
    let (Some(w), None) = (words.next(), words.next()) else {
        return Err(bad(usage, "Give one task number."));
    };
    task_number(w).ok_or_else(|| bad(usage, format!("{w:?} is not a task number.")))
}

fn task_number(w: &str) -> Option<i64> {
    w.trim_start_matches('#')
        .parse::<i64>()
        .ok()
        .filter(|n| *n >= 1)
}

fn priority(w: &str) -> Option<Priority> {
    match w.to_lowercase().as_str() {
        "high" | "h" | "urgent" | "!" => Some(Priority::High),
        "medium" | "med" | "m" | "normal" => Some(Priority::Medium),
        "low" | "l" => Some(Priority::Low),
        _ => None,
    }
}

/// `#tag` words, as the person typed them (the tools normalise and validate them).
fn tag(w: &str) -> Option<String> {
    w.strip_prefix('#')
        .filter(|t| !t.is_empty() && !t.starts_with('#'))
        .map(str::to_string)
}

/// `/sub <n> <rest of an /add>`.
fn sub(rest: &str, now: DateTime<Utc>, tz: Tz) -> Result<Command, Malformed> {
    let (n, rest) = rest.split_once(char::is_whitespace).unwrap_or((rest, ""));
    let id = task_number(n).ok_or_else(|| bad(SUB, format!("{n:?} is not a task number.")))?;
    match add(rest.trim(), now, tz, SUB)? {
        Command::Add {
            title,
            due,
            priority,
            tags,
            repeat,
            ..
        } => Ok(Command::Add {
            title,
            due,
            priority,
            tags,
            repeat,
            parent: Some(id),
        }),
        other => Ok(other),
    }
}

/// Splits a repeat phrase off the end of the words: the leftmost place where the rest reads
/// as one ("water plants every 3 days").
fn repeat_suffix(words: &[&str]) -> Option<(usize, String)> {
    (0..words.len()).find_map(|i| {
        let phrase = words[i..].join(" ");
        (repeat::starts_phrase(words[i]) && repeat::parse(&phrase).is_ok()).then_some((i, phrase))
    })
}

fn add(rest: &str, now: DateTime<Utc>, tz: Tz, usage: &'static str) -> Result<Command, Malformed> {
    // A quoted title is taken as it is: `/add "meet on friday" fri` puts "fri" in the due date only.
    let (quoted, rest) = match rest.strip_prefix('"').and_then(|r| r.split_once('"')) {
        Some((title, after)) => (Some(title.trim().to_string()), after),
        None => (None, rest),
    };
    let mut priority_word = None;
    let mut tags = Vec::new();
    let mut words = Vec::new();
    for w in rest.split_whitespace() {
        if let Some(p) = w.strip_prefix('!') {
            let p = priority(p).ok_or_else(|| {
                bad(
                    usage,
                    format!("{w:?} is not a priority; use !high, !medium or !low."),
                )
            })?;
            priority_word = Some(p);
        } else if let Some(t) = tag(w) {
            tags.push(t);
        } else {
            words.push(w);
        }
    }
    let (words, repeat) = match repeat_suffix(&words) {
        Some((i, phrase)) => (words[..i].to_vec(), Some(phrase)),
        None => (words, None),
    };
    let (title, due) = match quoted {
        Some(title) => {
            let due = if words.is_empty() {
                None
            } else {
                Some(when::parse(&words.join(" "), now, tz).map_err(|e| bad(usage, e.0))?)
            };
            (title, due)
        }
        None => match when::parse_suffix(&words, now, tz) {
            Some((i, due)) => (words[..i].join(" "), Some(due)),
            None => (words.join(" "), None),
        },
    };
    if title.is_empty() {
        return Err(bad(usage, "The task needs a title."));
    }
    Ok(Command::Add {
        title,
        due,
        priority: priority_word,
        tags,
        repeat,
        parent: None,
    })
}

fn list(rest: &str) -> Result<ListView, Malformed> {
    let lower = rest.to_lowercase();
    Ok(match lower.as_str() {
        "" | "open" | "pending" | "todo" => ListView::Open,
        "today" => ListView::Today,
        "overdue" | "late" => ListView::Overdue,
        "done" | "completed" | "complete" => ListView::Done,
        "trash" | "deleted" | "bin" => ListView::Trash,
        "all" => ListView::All,
        _ => match tag(rest) {
            Some(t) if !rest.contains(char::is_whitespace) => ListView::Tag(t),
            Some(_) => return Err(bad(LIST, "List one #tag at a time.")),
            None => ListView::Search(rest.to_string()),
        },
    })
}

fn edit(rest: &str, now: DateTime<Utc>, tz: Tz) -> Result<Command, Malformed> {
    let mut parts = rest.splitn(3, char::is_whitespace);
    let (Some(n), Some(field), value) = (
        parts.next().filter(|s| !s.is_empty()),
        parts.next(),
        parts.next(),
    ) else {
        return Err(bad(EDIT, "Give a task number, a field and the new value."));
    };
    let id = task_number(n).ok_or_else(|| bad(EDIT, format!("{n:?} is not a task number.")))?;
    let value = value.map(str::trim).unwrap_or("");
    let clears = matches!(
        value.to_lowercase().as_str(),
        "none" | "clear" | "-" | "nothing"
    );
    if value.is_empty() {
        return Err(bad(EDIT, format!("Give the new {field}.")));
    }
    let change = match field.to_lowercase().as_str() {
        "title" | "name" => Change::Title(value.to_string()),
        "due" | "when" | "date" => Change::Due(if clears {
            None
        } else {
            Some(when::parse(value, now, tz).map_err(|e| bad(EDIT, e.0))?)
        }),
        "priority" | "prio" | "p" => {
            Change::Priority(priority(value.trim_start_matches('!')).ok_or_else(|| {
                bad(
                    EDIT,
                    format!("{value:?} is not a priority; use high, medium or low."),
                )
            })?)
        }
        "tags" | "tag" => Change::Tags(if clears {
            Vec::new()
        } else {
            value
                .split(|c: char| c.is_whitespace() || c == ',')
                .filter(|t| !t.is_empty())
                .map(|t| t.trim_start_matches('#').to_string())
                .collect()
        }),
        "notes" | "note" | "description" | "desc" => {
            Change::Description((!clears).then(|| value.to_string()))
        }
        "repeat" | "repeats" | "every" | "recur" => {
            if clears || repeat::is_stop_word(value) {
                Change::Repeat(None)
            } else {
                let phrase = if field.eq_ignore_ascii_case("every") {
                    format!("every {value}")
                } else {
                    value.to_string()
                };
                repeat::parse(&phrase).map_err(|e| bad(EDIT, e.0))?;
                Change::Repeat(Some(phrase))
            }
        }
        other => {
            return Err(bad(
                EDIT,
                format!(
                    "{other:?} is not a field; use title, due, priority, tags, notes or repeat."
                ),
            ));
        }
    };
    Ok(Command::Edit { id, change })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use chrono::NaiveDate;

    use super::*;

    fn now() -> DateTime<Utc> {
        // Monday 2026-11-23, 15:00 in Paris.
        DateTime::parse_from_rfc3339("2026-11-23T14:00:00Z")
            .unwrap()
            .with_timezone(&Utc)
    }

    fn p(s: &str) -> Result<Command, Malformed> {
        parse(s, now(), chrono_tz::Europe::Paris)
    }

    fn at(s: &str) -> When {
        When::At(DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc))
    }

    #[test]
    fn add_takes_title_due_words_priority_and_tags_in_any_order() {
        assert_eq!(
            p("/add Buy milk tomorrow 5pm !high #shopping #Home"),
            Ok(Command::Add {
                title: "Buy milk".into(),
                due: Some(at("2026-11-24T16:00:00Z")),
                priority: Some(Priority::High),
                tags: vec!["shopping".into(), "Home".into()],
                repeat: None,
                parent: None,
            })
        );
        assert_eq!(
            p("/add #work !low write report fri"),
            Ok(Command::Add {
                title: "write report".into(),
                due: Some(When::Day(NaiveDate::from_ymd_opt(2026, 11, 27).unwrap())),
                priority: Some(Priority::Low),
                tags: vec!["work".into()],
                repeat: None,
                parent: None,
            })
        );
        assert_eq!(
            p("/ADD read chapter 3"),
            Ok(Command::Add {
                title: "read chapter 3".into(),
                due: None,
                priority: None,
                tags: vec![],
                repeat: None,
                parent: None,
            })
        );
        // Quotes keep due-looking words in the title.
        assert_eq!(
            p(r#"/add "meet on friday" tomorrow"#),
            Ok(Command::Add {
                title: "meet on friday".into(),
                due: Some(When::Day(NaiveDate::from_ymd_opt(2026, 11, 24).unwrap())),
                priority: None,
                tags: vec![],
                repeat: None,
                parent: None,
            })
        );
    }

    #[test]
    fn add_takes_a_repeat_phrase_and_sub_a_parent() {
        let Command::Add {
            title,
            due,
            repeat,
            parent,
            tags,
            ..
        } = p("/add water plants every 3 days #home").unwrap()
        else {
            panic!("an add")
        };
        assert_eq!(
            (title.as_str(), due, repeat.as_deref(), parent),
            ("water plants", None, Some("every 3 days"), None)
        );
        assert_eq!(tags, vec!["home"]);
        let Command::Add {
            title, due, repeat, ..
        } = p("/add standup tomorrow every weekday at 9am").unwrap()
        else {
            panic!("an add")
        };
        assert_eq!(title, "standup");
        assert_eq!(
            due,
            Some(When::Day(NaiveDate::from_ymd_opt(2026, 11, 24).unwrap()))
        );
        assert_eq!(repeat.as_deref(), Some("every weekday at 9am"));
        // "every" that reads as no rule stays in the title.
        let Command::Add { title, repeat, .. } = p("/add read every book").unwrap() else {
            panic!("an add")
        };
        assert_eq!((title.as_str(), repeat), ("read every book", None));
        let Command::Add { title, parent, .. } = p("/sub 3 book flights fri").unwrap() else {
            panic!("an add")
        };
        assert_eq!((title.as_str(), parent), ("book flights", Some(3)));
        assert_eq!(
            p("/edit 3 repeat every monday"),
            Ok(Command::Edit {
                id: 3,
                change: Change::Repeat(Some("every monday".into()))
            })
        );
        assert_eq!(
            p("/edit 3 repeat none"),
            Ok(Command::Edit {
                id: 3,
                change: Change::Repeat(None)
            })
        );
        assert_eq!(
            p("/edit 3 every 2 weeks"),
            Ok(Command::Edit {
                id: 3,
                change: Change::Repeat(Some("every 2 weeks".into()))
            })
        );
    }

    #[test]
    fn list_views() {
        let cases = [
            ("/list", ListView::Open),
            ("/list today", ListView::Today),
            ("/list Overdue", ListView::Overdue),
            ("/list done", ListView::Done),
            ("/list trash", ListView::Trash),
            ("/list all", ListView::All),
            ("/list #shopping", ListView::Tag("shopping".into())),
            ("/list milk bread", ListView::Search("milk bread".into())),
            ("/ls", ListView::Open),
        ];
        for (line, view) in cases {
            assert_eq!(p(line), Ok(Command::List(view)), "{line}");
        }
    }

    #[test]
    fn number_commands_and_edits() {
        assert_eq!(p("/done 3"), Ok(Command::Done(3)));
        assert_eq!(p("/done #3"), Ok(Command::Done(3)));
        assert_eq!(p("/undone 3"), Ok(Command::Undone(3)));
        assert_eq!(p("/delete 4"), Ok(Command::Delete(4)));
        assert_eq!(p("/restore 4"), Ok(Command::Restore(4)));
        assert_eq!(p("/undo"), Ok(Command::Undo));
        assert_eq!(p("/help"), Ok(Command::Help));
        assert_eq!(
            p("/edit 3 title Buy oat milk"),
            Ok(Command::Edit {
                id: 3,
                change: Change::Title("Buy oat milk".into())
            })
        );
        assert_eq!(
            p("/edit 3 due next monday 9:30"),
            Ok(Command::Edit {
                id: 3,
                change: Change::Due(Some(at("2026-11-30T08:30:00Z")))
            })
        );
        assert_eq!(
            p("/edit 3 due none"),
            Ok(Command::Edit {
                id: 3,
                change: Change::Due(None)
            })
        );
        assert_eq!(
            p("/edit 3 priority !high"),
            Ok(Command::Edit {
                id: 3,
                change: Change::Priority(Priority::High)
            })
        );
        assert_eq!(
            p("/edit 3 tags #a, b"),
            Ok(Command::Edit {
                id: 3,
                change: Change::Tags(vec!["a".into(), "b".into()])
            })
        );
        assert_eq!(
            p("/edit 3 notes clear"),
            Ok(Command::Edit {
                id: 3,
                change: Change::Description(None)
            })
        );
    }

    #[test]
    fn malformed_commands_answer_with_their_usage_line() {
        let cases: [(&str, &str, &str); 18] = [
            ("/edit 3 repeat sometimes", EDIT, "every monday"),
            ("/edit 3 repeat RRULE:FREQ=HOURLY", EDIT, "at most daily"),
            ("/sub x milk", SUB, "not a task number"),
            ("/sub 3", SUB, "title"),
            ("/add", ADD, "title"),
            ("/add !urgent-ish milk", ADD, "priority"),
            ("/add #only #tags", ADD, "title"),
            (r#"/add "x" someday"#, ADD, "due date"),
            ("/done", DONE, "task number"),
            ("/done abc", DONE, "not a task number"),
            ("/done 0", DONE, "not a task number"),
            ("/done 1 2", DONE, "one task number"),
            ("/edit 3", EDIT, "field"),
            ("/edit 3 due", EDIT, "new due"),
            ("/edit 3 colour red", EDIT, "not a field"),
            ("/edit 3 due someday", EDIT, "due date"),
            ("/undo now", UNDO, "nothing after"),
            ("/frobnicate 3", help(), "no command /frobnicate"),
        ];
        for (line, usage, problem) in cases {
            let err = p(line).unwrap_err();
            assert_eq!(err.usage, usage, "{line}");
            assert!(err.problem.contains(problem), "{line}: {}", err.problem);
        }
        assert!(is_command(" /x"));
        assert!(!is_command("add milk /x"));
    }
}
