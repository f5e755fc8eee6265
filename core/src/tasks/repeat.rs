//! Repeating tasks. A rule is stored as an RFC 5545 RRULE value with the IANA zone its
//! wall-clock times are read in; the calendar maths is the `rrule` crate's.
//!
//! The task's due date is the rule's DTSTART: completing a repeating task records that
//! occurrence as a completed copy and moves the task itself (same number) to the next
//! occurrence, so the number a person knows keeps meaning the same chore and the completed
//! list keeps the history. Because the start moves, a `COUNT` is turned into the `UNTIL` of
//! its last occurrence when the rule is set. Occurrences are computed in the person's zone,
//! so "every day" at 09:00 stays 09:00 across a daylight-saving change.

use chrono::{DateTime, Duration, NaiveDate, NaiveTime, TimeZone, Utc, Weekday};
use chrono_tz::Tz;
use rrule::{RRule, RRuleSet, Unvalidated};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::model::{Due, InvalidInput};

/// How a task repeats, as stored and as every tool returns it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Repeat {
    /// RFC 5545 RRULE value, e.g. `FREQ=WEEKLY;BYDAY=MO`; the due date is its start.
    pub rule: String,
    /// IANA time zone the occurrences are computed in.
    pub timezone: String,
    /// The rule in words, e.g. "every Monday".
    pub text: String,
}

impl Repeat {
    /// A stored rule read back (`text` is derived, never stored).
    pub fn from_stored(rule: String, timezone: String) -> Repeat {
        let text = describe(&rule, timezone.parse().unwrap_or(Tz::UTC));
        Repeat {
            rule,
            timezone,
            text,
        }
    }

    fn tz(&self) -> Tz {
        self.timezone.parse().unwrap_or(Tz::UTC)
    }
}

/// A rule as a caller wrote it, before it is anchored on a due date.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RepeatSpec {
    /// RRULE parts without COUNT and UNTIL, e.g. `["FREQ=WEEKLY", "BYDAY=MO"]`.
    parts: Vec<String>,
    count: Option<u32>,
    /// A last day, in the person's zone.
    until_day: Option<NaiveDate>,
    /// An UNTIL given in a raw RRULE.
    until_raw: Option<String>,
    /// A time of day from "… at 9am".
    pub at: Option<NaiveTime>,
}

/// What `repeat` accepts, for error messages.
pub const REPEAT_HELP: &str = "\"every day\", \"every monday\", \"every 3 days\", \"weekdays\", \
     \"every 2 weeks on mon and thu\", \"every month on the 15th\", \"every month on the last friday\", \
     \"every year\", optionally with \"at 9am\", \"until 2026-12-31\" or \"5 times\", or an RRULE such as \
     \"RRULE:FREQ=WEEKLY;BYDAY=MO\"";

fn invalid(msg: impl Into<String>) -> InvalidInput {
    InvalidInput(msg.into())
}

fn unreadable(raw: &str) -> InvalidInput {
    invalid(format!(
        "`repeat` {raw:?} is not a rule I can read. Use {REPEAT_HELP}."
    ))
}

/// Words that stop a task repeating.
pub fn is_stop_word(raw: &str) -> bool {
    matches!(
        raw.trim().to_lowercase().as_str(),
        "" | "never" | "none" | "no" | "off" | "stop" | "once" | "does not repeat"
    )
}

/// Whether a word can start a repeat phrase (for the chat commands, which find the phrase at
/// the end of a line).
pub fn starts_phrase(word: &str) -> bool {
    matches!(
        word.to_lowercase().as_str(),
        "every" | "daily" | "weekly" | "monthly" | "yearly" | "annually" | "weekdays" | "weekends"
    ) || word.to_uppercase().starts_with("RRULE:")
}

const WEEKDAY_CODES: [(Weekday, &str); 7] = [
    (Weekday::Mon, "MO"),
    (Weekday::Tue, "TU"),
    (Weekday::Wed, "WE"),
    (Weekday::Thu, "TH"),
    (Weekday::Fri, "FR"),
    (Weekday::Sat, "SA"),
    (Weekday::Sun, "SU"),
];

fn weekday_word(w: &str) -> Option<&'static str> {
    let w = w.trim_end_matches('s');
    let day = match w {
        "mon" | "monday" => Weekday::Mon,
        "tue" | "tues" | "tuesday" => Weekday::Tue,
        "wed" | "wednesday" => Weekday::Wed,
        "thu" | "thur" | "thurs" | "thursday" => Weekday::Thu,
        "fri" | "friday" => Weekday::Fri,
        "sat" | "saturday" => Weekday::Sat,
        "sun" | "sunday" => Weekday::Sun,
        _ => return None,
    };
    WEEKDAY_CODES
        .iter()
        .find(|(d, _)| *d == day)
        .map(|(_, c)| *c)
}

fn month_word(w: &str) -> Option<u32> {
    let names = [
        "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
    ];
    let w = w.trim_end_matches('.');
    if w.len() < 3 {
        return None;
    }
    names
        .iter()
        .position(|n| w.starts_with(n) && (w.len() == 3 || w.starts_with(&full_month(n))))
        .map(|i| i as u32 + 1)
}

fn full_month(abbr: &str) -> String {
    match abbr {
        "jan" => "january",
        "feb" => "february",
        "mar" => "march",
        "apr" => "april",
        "jun" => "june",
        "jul" => "july",
        "aug" => "august",
        "sep" => "sept",
        "oct" => "october",
        "nov" => "november",
        "dec" => "december",
        other => other,
    }
    .to_string()
}

/// `1st`, `2nd`, `15th`, `15`, `first`, `last` … as a month day or a weekday's position.
fn ordinal(w: &str) -> Option<i32> {
    Some(match w {
        "first" => 1,
        "second" => 2,
        "third" => 3,
        "fourth" => 4,
        "fifth" => 5,
        "last" => -1,
        _ => {
            let digits = w.trim_end_matches(|c: char| c.is_ascii_alphabetic());
            let suffix = &w[digits.len()..];
            if !matches!(suffix, "" | "st" | "nd" | "rd" | "th") {
                return None;
            }
            digits.parse().ok()?
        }
    })
}

/// A time of day: `9`, `9am`, `9:30`, `17:00`, `5pm`, `5:30pm`.
fn time_of_day(w: &str) -> Option<NaiveTime> {
    let (body, pm) = if let Some(b) = w.strip_suffix("pm") {
        (b, Some(true))
    } else if let Some(b) = w.strip_suffix("am") {
        (b, Some(false))
    } else {
        (w, None)
    };
    let (h, m) = match body.split_once(':') {
        Some((h, m)) => (h.parse::<u32>().ok()?, m.parse::<u32>().ok()?),
        None => (body.parse::<u32>().ok()?, 0),
    };
    let h = match pm {
        Some(_) if !(1..=12).contains(&h) => return None,
        Some(true) => h % 12 + 12,
        Some(false) => h % 12,
        None => h,
    };
    NaiveTime::from_hms_opt(h, m, 0)
}

/// Reads a rule as a model or a person writes it (see [`REPEAT_HELP`]).
pub fn parse(raw: &str) -> Result<RepeatSpec, InvalidInput> {
    let s = raw.trim();
    if s.len() > 300 {
        return Err(invalid(
            "`repeat` is too long; use a short rule such as \"every monday\".",
        ));
    }
    let upper = s.to_uppercase();
    if upper.starts_with("RRULE:") || upper.starts_with("FREQ=") {
        return parse_rrule(s);
    }
    if upper.contains("DTSTART") {
        return Err(invalid(
            "`repeat` takes only the RRULE line (\"RRULE:FREQ=DAILY\"): the due date is its start.",
        ));
    }
    let lower = s.to_lowercase().replace(',', " ");
    let words: Vec<&str> = lower
        .split_whitespace()
        .filter(|w| *w != "and" && *w != "&")
        .collect();
    Words::new(&words).read().ok_or_else(|| unreadable(raw))
}

fn parse_rrule(raw: &str) -> Result<RepeatSpec, InvalidInput> {
    let body = raw.trim();
    let body = if body.to_uppercase().starts_with("RRULE:") {
        &body[6..]
    } else {
        body
    };
    let body: String = body
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect::<String>()
        .to_uppercase();
    let mut spec = RepeatSpec {
        parts: Vec::new(),
        count: None,
        until_day: None,
        until_raw: None,
        at: None,
    };
    for part in body.split(';').filter(|p| !p.is_empty()) {
        let Some((key, value)) = part.split_once('=') else {
            return Err(invalid(format!(
                "`repeat` RRULE part {part:?} is not KEY=VALUE, e.g. FREQ=WEEKLY;BYDAY=MO."
            )));
        };
        match key {
            "COUNT" => {
                spec.count = Some(value.parse().map_err(|_| {
                    invalid(format!("`repeat` COUNT must be a number, got {value:?}."))
                })?);
            }
            "UNTIL" => spec.until_raw = Some(value.to_string()),
            _ => spec.parts.push(part.to_string()),
        }
    }
    // The crate checks the rest (keys, values, combinations) against a throwaway start.
    let probe = Tz::UTC.with_ymd_and_hms(2026, 1, 1, 12, 0, 0).single();
    if let Some(start) = probe {
        check(
            &spec.rule_text(None),
            rrule::Tz::from(Tz::UTC),
            start.with_timezone(&Tz::UTC),
        )?;
    }
    check_frequency(&spec)?;
    Ok(spec)
}

fn check_frequency(spec: &RepeatSpec) -> Result<(), InvalidInput> {
    match spec.parts.iter().find_map(|p| p.strip_prefix("FREQ=")) {
        Some("DAILY" | "WEEKLY" | "MONTHLY" | "YEARLY") => Ok(()),
        Some(_) => Err(invalid(
            "`repeat` may be at most daily (FREQ=DAILY, WEEKLY, MONTHLY or YEARLY).",
        )),
        None => Err(invalid(
            "`repeat` RRULE needs FREQ, e.g. RRULE:FREQ=WEEKLY;BYDAY=MO.",
        )),
    }
}

/// Validates a rule with the crate, with the start it will have.
fn check(rule: &str, tz: rrule::Tz, start: DateTime<Tz>) -> Result<RRule, InvalidInput> {
    let start = start.with_timezone(&tz);
    rule.parse::<RRule<Unvalidated>>()
        .and_then(|r| r.validate(start))
        .map_err(|e| {
            invalid(format!(
                "`repeat` is not a valid RRULE ({e}). Use {REPEAT_HELP}."
            ))
        })
}

/// A cursor over the words of a phrase.
struct Words<'a> {
    w: &'a [&'a str],
    i: usize,
}

impl<'a> Words<'a> {
    fn new(w: &'a [&'a str]) -> Self {
        Words { w, i: 0 }
    }

    fn peek(&self) -> Option<&'a str> {
        self.w.get(self.i).copied()
    }

    fn eat(&mut self, word: &str) -> bool {
        if self.peek() == Some(word) {
            self.i += 1;
            true
        } else {
            false
        }
    }

    fn next(&mut self) -> Option<&'a str> {
        let w = self.peek()?;
        self.i += 1;
        Some(w)
    }

    fn read(mut self) -> Option<RepeatSpec> {
        let mut parts = Vec::new();
        let mut interval = 1u32;
        let freq: &str;
        let mut days: Vec<String> = Vec::new();
        match self.next()? {
            "daily" => freq = "DAILY",
            "weekly" => freq = "WEEKLY",
            "monthly" => freq = "MONTHLY",
            "yearly" | "annually" => freq = "YEARLY",
            "weekdays" => {
                freq = "WEEKLY";
                days = ["MO", "TU", "WE", "TH", "FR"].map(String::from).to_vec();
            }
            "weekends" => {
                freq = "WEEKLY";
                days = ["SA", "SU"].map(String::from).to_vec();
            }
            "every" | "each" => {
                if self.eat("other") {
                    interval = 2;
                } else if let Some(n) = self.peek().and_then(|w| w.parse::<u32>().ok()) {
                    self.i += 1;
                    interval = n;
                }
                let unit = self.next()?;
                freq = match unit.trim_end_matches('s') {
                    "day" => "DAILY",
                    "week" => "WEEKLY",
                    "month" => "MONTHLY",
                    "year" => "YEARLY",
                    "weekday" if interval == 1 => {
                        days = ["MO", "TU", "WE", "TH", "FR"].map(String::from).to_vec();
                        "WEEKLY"
                    }
                    "weekend" if interval == 1 => {
                        days = ["SA", "SU"].map(String::from).to_vec();
                        "WEEKLY"
                    }
                    _ if interval == 1 => {
                        // "every monday and thursday"
                        days.push(weekday_word(unit)?.to_string());
                        while let Some(d) = self.peek().and_then(weekday_word) {
                            self.i += 1;
                            days.push(d.to_string());
                        }
                        "WEEKLY"
                    }
                    _ => return None,
                };
            }
            _ => return None,
        }
        if interval == 0 || interval > 1000 {
            return None;
        }
        parts.push(format!("FREQ={freq}"));
        if interval > 1 {
            parts.push(format!("INTERVAL={interval}"));
        }
        if self.eat("on") {
            self.eat("the");
            match freq {
                "WEEKLY" if days.is_empty() => {
                    while let Some(d) = self.peek().and_then(weekday_word) {
                        self.i += 1;
                        days.push(d.to_string());
                    }
                    if days.is_empty() {
                        return None;
                    }
                }
                "MONTHLY" => {
                    self.eat("day");
                    let n = ordinal(self.next()?)?;
                    match self.peek().and_then(weekday_word) {
                        Some(d) if (-1..=5).contains(&n) && n != 0 => {
                            self.i += 1;
                            days.push(format!("{n}{d}"));
                        }
                        _ => {
                            self.eat("day");
                            if n == 0 || !(-1..=31).contains(&n) {
                                return None;
                            }
                            parts.push(format!("BYMONTHDAY={n}"));
                        }
                    }
                    self.eat("of");
                    self.eat("the");
                    self.eat("month");
                }
                "YEARLY" => {
                    // "dec 24" or "24 dec"
                    let a = self.next()?;
                    let b = self.next()?;
                    let (m, d) = match (month_word(a), month_word(b)) {
                        (Some(m), None) => (m, ordinal(b)?),
                        (None, Some(m)) => (m, ordinal(a)?),
                        _ => return None,
                    };
                    NaiveDate::from_ymd_opt(2024, m, u32::try_from(d).ok()?)?;
                    parts.push(format!("BYMONTH={m}"));
                    parts.push(format!("BYMONTHDAY={d}"));
                }
                _ => return None,
            }
        }
        if !days.is_empty() {
            parts.push(format!("BYDAY={}", days.join(",")));
        }
        let mut spec = RepeatSpec {
            parts,
            count: None,
            until_day: None,
            until_raw: None,
            at: None,
        };
        while let Some(w) = self.next() {
            match w {
                "at" => spec.at = Some(time_of_day(self.next()?)?),
                "until" => {
                    spec.until_day = Some(NaiveDate::parse_from_str(self.next()?, "%Y-%m-%d").ok()?)
                }
                "for" => {
                    spec.count = Some(self.next()?.parse().ok()?);
                    self.next().filter(|t| matches!(*t, "times" | "time"))?;
                }
                n if n.parse::<u32>().is_ok() => {
                    spec.count = n.parse().ok();
                    self.next().filter(|t| matches!(*t, "times" | "time"))?;
                }
                _ => return None,
            }
        }
        if spec.count == Some(0) || spec.count.is_some_and(|c| c > 1000) {
            return None;
        }
        Some(spec)
    }
}

impl RepeatSpec {
    fn rule_text(&self, until: Option<&str>) -> String {
        let mut parts = self.parts.clone();
        if let Some(c) = self.count {
            parts.push(format!("COUNT={c}"));
        }
        if let Some(u) = until.or(self.until_raw.as_deref()) {
            parts.push(format!("UNTIL={u}"));
        }
        parts.join(";")
    }

    /// The rule anchored on a task: the due date (given, or the first occurrence from `now`
    /// when none is), and the rule to store. A time from "at 9am" sets the time of a due
    /// given as a date, and of a first occurrence.
    pub fn resolve(
        &self,
        due: Option<Due>,
        tz: Tz,
        now: DateTime<Utc>,
    ) -> Result<(Repeat, Due), InvalidInput> {
        let due = match (due, self.at) {
            (Some(d), Some(at)) if d.all_day => Due {
                at: local(tz, d.at.date_naive(), at).with_timezone(&Utc),
                all_day: false,
            },
            (Some(d), _) => d,
            (None, at) => self.first(tz, at, now)?,
        };
        let start = start_of(due, tz);
        let until = match self.until_day {
            Some(day) => {
                let end = local(
                    tz,
                    day,
                    NaiveTime::from_hms_opt(23, 59, 59).unwrap_or_default(),
                );
                Some(ical_utc(end.with_timezone(&Utc)))
            }
            None => None,
        };
        let rule = self.rule_text(until.as_deref());
        let validated = check(&rule, rrule::Tz::from(tz), start)?;
        let rule = match self.count {
            // The start moves with each completion, so the series ends at a fixed instant.
            Some(n) => {
                let last = RRuleSet::new(start.with_timezone(&rrule::Tz::from(tz)))
                    .rrule(validated)
                    .all(u16::try_from(n).unwrap_or(u16::MAX))
                    .dates
                    .last()
                    .map(|d| d.with_timezone(&Utc))
                    .ok_or_else(|| invalid("`repeat` has no occurrence at all; check the rule."))?;
                let mut no_count = self.clone();
                no_count.count = None;
                no_count.rule_text(Some(&ical_utc(last)))
            }
            None => rule,
        };
        Ok((Repeat::from_stored(rule, tz.name().to_string()), due))
    }

    /// The first occurrence from now: today or later for a whole-day rule, after now for one
    /// with a time of day.
    fn first(
        &self,
        tz: Tz,
        at: Option<NaiveTime>,
        now: DateTime<Utc>,
    ) -> Result<Due, InvalidInput> {
        let today = now.with_timezone(&tz).date_naive();
        let (start, all_day) = match at {
            None => (local(tz, today, noon()), true),
            Some(t) => (local(tz, today, t), false),
        };
        let mut plain = self.clone();
        plain.count = None;
        let rule = check(&plain.rule_text(None), rrule::Tz::from(tz), start)?;
        let rtz = rrule::Tz::from(tz);
        let floor = if all_day {
            start
        } else {
            now.with_timezone(&tz).max(start)
        };
        let next = RRuleSet::new(start.with_timezone(&rtz))
            .rrule(rule)
            .after(floor.with_timezone(&rtz))
            .all(1)
            .dates
            .into_iter()
            .next()
            .ok_or_else(|| invalid("`repeat` has no occurrence from today on; check the rule."))?;
        Ok(occurrence(next.with_timezone(&tz), all_day))
    }
}

fn noon() -> NaiveTime {
    NaiveTime::from_hms_opt(12, 0, 0).unwrap_or_default()
}

/// A wall-clock time in `tz`; in a daylight-saving gap, an hour later.
fn local(tz: Tz, day: NaiveDate, t: NaiveTime) -> DateTime<Tz> {
    let n = day.and_time(t);
    tz.from_local_datetime(&n)
        .earliest()
        .or_else(|| tz.from_local_datetime(&(n + Duration::hours(1))).earliest())
        .unwrap_or_else(|| tz.from_utc_datetime(&n))
}

fn ical_utc(t: DateTime<Utc>) -> String {
    t.format("%Y%m%dT%H%M%SZ").to_string()
}

/// The rule's start for a due: its wall-clock time in the zone; a whole day is read at noon,
/// a time every day has.
fn start_of(due: Due, tz: Tz) -> DateTime<Tz> {
    if due.all_day {
        local(tz, due.at.date_naive(), noon())
    } else {
        due.at.with_timezone(&tz)
    }
}

fn occurrence(t: DateTime<Tz>, all_day: bool) -> Due {
    if all_day {
        Due {
            at: t.date_naive().and_time(NaiveTime::MIN).and_utc(),
            all_day: true,
        }
    } else {
        Due {
            at: t.with_timezone(&Utc),
            all_day: false,
        }
    }
}

/// The next occurrence after both the current due and now (missed occurrences are skipped),
/// or `None` when the series has ended.
pub fn next_due(
    repeat: &Repeat,
    due: Due,
    now: DateTime<Utc>,
) -> Result<Option<Due>, InvalidInput> {
    let tz = repeat.tz();
    let rtz = rrule::Tz::from(tz);
    let start = start_of(due, tz);
    let rule = match repeat
        .rule
        .parse::<RRule<Unvalidated>>()
        .and_then(|r| r.validate(start.with_timezone(&rtz)))
    {
        Ok(r) => r,
        Err(rrule::RRuleError::ValidationError(rrule::ValidationError::UntilBeforeStart {
            ..
        })) => return Ok(None),
        Err(e) => {
            return Err(invalid(format!(
                "the stored repeat rule is not valid ({e})"
            )));
        }
    };
    let floor = if due.all_day {
        let today = now.with_timezone(&tz).date_naive();
        local(tz, today.max(due.at.date_naive()), noon())
    } else {
        start.max(now.with_timezone(&tz))
    };
    let next = RRuleSet::new(start.with_timezone(&rtz))
        .rrule(rule)
        .after(floor.with_timezone(&rtz))
        .all(2)
        .dates
        .into_iter()
        .map(|d| d.with_timezone(&tz))
        .find(|d| *d > floor);
    Ok(next.map(|d| occurrence(d, due.all_day)))
}

fn ordinal_word(n: i32) -> String {
    match n {
        1 => "first".into(),
        2 => "second".into(),
        3 => "third".into(),
        4 => "fourth".into(),
        5 => "fifth".into(),
        -1 => "last".into(),
        -2 => "second-to-last".into(),
        _ => format!("{n}th"),
    }
}

fn day_th(n: i32) -> String {
    let suffix = match (n % 10, n % 100) {
        (_, 11..=13) => "th",
        (1, _) => "st",
        (2, _) => "nd",
        (3, _) => "rd",
        _ => "th",
    };
    format!("{n}{suffix}")
}

fn weekday_name(code: &str) -> Option<&'static str> {
    Some(match code {
        "MO" => "Monday",
        "TU" => "Tuesday",
        "WE" => "Wednesday",
        "TH" => "Thursday",
        "FR" => "Friday",
        "SA" => "Saturday",
        "SU" => "Sunday",
        _ => return None,
    })
}

fn join_words(items: &[String]) -> String {
    match items {
        [] => String::new(),
        [one] => one.clone(),
        [init @ .., last] => format!("{} and {last}", init.join(", ")),
    }
}

/// A rule in words ("every Monday", "every 3 days", "every month on the last Friday"); a rule
/// beyond these words is shown as it is.
pub fn describe(rule: &str, tz: Tz) -> String {
    describe_parts(rule, tz).unwrap_or_else(|| format!("RRULE:{rule}"))
}

fn describe_parts(rule: &str, tz: Tz) -> Option<String> {
    let mut freq = None;
    let mut interval = 1i32;
    let mut byday: Vec<&str> = Vec::new();
    let mut monthday = None;
    let mut month = None;
    let mut until = None;
    for part in rule.split(';') {
        let (k, v) = part.split_once('=')?;
        match k {
            "FREQ" => freq = Some(v),
            "INTERVAL" => interval = v.parse().ok()?,
            "BYDAY" => byday = v.split(',').collect(),
            "BYMONTHDAY" if !v.contains(',') => monthday = Some(v.parse::<i32>().ok()?),
            "BYMONTH" if !v.contains(',') => month = Some(v.parse::<u32>().ok()?),
            "UNTIL" => until = Some(v),
            "WKST" => {}
            _ => return None,
        }
    }
    let unit = match freq? {
        "DAILY" => "day",
        "WEEKLY" => "week",
        "MONTHLY" => "month",
        "YEARLY" => "year",
        _ => return None,
    };
    let every = if interval == 1 {
        format!("every {unit}")
    } else {
        format!("every {interval} {unit}s")
    };
    let plain_days: Option<Vec<&str>> = byday
        .iter()
        .map(|d| weekday_name(d))
        .collect::<Option<Vec<_>>>();
    let mut text = match (unit, &byday[..], monthday, month) {
        (_, [], None, None) => every,
        ("week", _, None, None) => {
            let codes: Vec<&str> = byday.clone();
            if interval == 1 && codes == ["MO", "TU", "WE", "TH", "FR"] {
                "every weekday".into()
            } else if interval == 1 && codes == ["SA", "SU"] {
                "every weekend".into()
            } else {
                let names: Vec<String> = plain_days?.iter().map(|s| s.to_string()).collect();
                if interval == 1 {
                    format!("every {}", join_words(&names))
                } else {
                    format!("{every} on {}", join_words(&names))
                }
            }
        }
        ("month", [one], None, None) => {
            let code = &one[one.len().checked_sub(2)?..];
            let n: i32 = one[..one.len() - 2].parse().ok()?;
            format!("{every} on the {} {}", ordinal_word(n), weekday_name(code)?)
        }
        ("month", [], Some(-1), None) => format!("{every} on the last day"),
        ("month", [], Some(d), None) if d > 0 => format!("{every} on the {}", day_th(d)),
        ("year", [], Some(d), Some(m)) if d > 0 => {
            let name = NaiveDate::from_ymd_opt(2024, m, 1)?
                .format("%B")
                .to_string();
            format!("{every} on {d} {name}")
        }
        _ => return None,
    };
    if let Some(u) = until {
        let t = chrono::NaiveDateTime::parse_from_str(u, "%Y%m%dT%H%M%SZ").ok()?;
        let day = Utc.from_utc_datetime(&t).with_timezone(&tz).date_naive();
        text.push_str(&format!(" until {}", day.format("%Y-%m-%d")));
    }
    Some(text)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn rule(phrase: &str) -> String {
        parse(phrase).unwrap().rule_text(None)
    }

    #[test]
    fn phrases_become_rrules() {
        let cases = [
            ("every day", "FREQ=DAILY"),
            ("Daily", "FREQ=DAILY"),
            ("every 3 days", "FREQ=DAILY;INTERVAL=3"),
            ("every other week", "FREQ=WEEKLY;INTERVAL=2"),
            ("every monday", "FREQ=WEEKLY;BYDAY=MO"),
            ("every Mon, Wed and Fri", "FREQ=WEEKLY;BYDAY=MO,WE,FR"),
            ("weekdays", "FREQ=WEEKLY;BYDAY=MO,TU,WE,TH,FR"),
            ("every weekday", "FREQ=WEEKLY;BYDAY=MO,TU,WE,TH,FR"),
            ("weekends", "FREQ=WEEKLY;BYDAY=SA,SU"),
            (
                "every 2 weeks on tuesday and thursday",
                "FREQ=WEEKLY;INTERVAL=2;BYDAY=TU,TH",
            ),
            ("weekly on friday", "FREQ=WEEKLY;BYDAY=FR"),
            ("every month on the last friday", "FREQ=MONTHLY;BYDAY=-1FR"),
            ("monthly on the first monday", "FREQ=MONTHLY;BYDAY=1MO"),
            ("every month on the 15th", "FREQ=MONTHLY;BYMONTHDAY=15"),
            ("every month on the last day", "FREQ=MONTHLY;BYMONTHDAY=-1"),
            ("every year", "FREQ=YEARLY"),
            (
                "every year on dec 24",
                "FREQ=YEARLY;BYMONTH=12;BYMONTHDAY=24",
            ),
            ("every day 5 times", "FREQ=DAILY;COUNT=5"),
            ("RRULE:FREQ=WEEKLY;BYDAY=MO", "FREQ=WEEKLY;BYDAY=MO"),
            ("freq=monthly;bymonthday=1", "FREQ=MONTHLY;BYMONTHDAY=1"),
        ];
        for (phrase, want) in cases {
            assert_eq!(rule(phrase), want, "{phrase}");
        }
        assert_eq!(
            parse("every day at 9am").unwrap().at,
            NaiveTime::from_hms_opt(9, 0, 0)
        );
        assert_eq!(
            parse("every day at 17:30").unwrap().at,
            NaiveTime::from_hms_opt(17, 30, 0)
        );
    }

    #[test]
    fn unreadable_rules_say_what_to_send() {
        for bad in [
            "sometimes",
            "every",
            "every blursday",
            "every 0 days",
            "every month on the 40th",
            "every day until tomorrow",
            "every day at 25",
            "RRULE:FREQ=HOURLY",
            "RRULE:FREQ=FORTNIGHTLY",
            "RRULE:BYDAY=MO",
            "RRULE:FREQ=WEEKLY;BYDAY=XX",
            "DTSTART:20260101T000000Z\nRRULE:FREQ=DAILY",
        ] {
            let e = parse(bad).unwrap_err();
            assert!(
                e.0.contains("every monday") || e.0.contains("FREQ") || e.0.contains("RRULE"),
                "{bad}: {e}"
            );
        }
    }

    #[test]
    fn rules_read_back_in_words() {
        let paris = chrono_tz::Europe::Paris;
        for (r, want) in [
            ("FREQ=DAILY", "every day"),
            ("FREQ=DAILY;INTERVAL=3", "every 3 days"),
            ("FREQ=WEEKLY;BYDAY=MO", "every Monday"),
            ("FREQ=WEEKLY;BYDAY=MO,TH", "every Monday and Thursday"),
            ("FREQ=WEEKLY;BYDAY=MO,TU,WE,TH,FR", "every weekday"),
            ("FREQ=WEEKLY;INTERVAL=2;BYDAY=FR", "every 2 weeks on Friday"),
            ("FREQ=MONTHLY;BYDAY=-1FR", "every month on the last Friday"),
            ("FREQ=MONTHLY;BYMONTHDAY=15", "every month on the 15th"),
            (
                "FREQ=YEARLY;BYMONTH=12;BYMONTHDAY=24",
                "every year on 24 December",
            ),
            (
                "FREQ=DAILY;UNTIL=20261231T225959Z",
                "every day until 2026-12-31",
            ),
            ("FREQ=DAILY;BYHOUR=9,17", "RRULE:FREQ=DAILY;BYHOUR=9,17"),
        ] {
            assert_eq!(describe(r, paris), want, "{r}");
        }
    }

    #[test]
    fn every_day_at_nine_stays_at_nine_across_daylight_saving() {
        let paris = chrono_tz::Europe::Paris;
        // Saturday 28 March 2026, 09:00 in Paris (UTC+1); summer time starts the next night.
        let due = Due {
            at: utc("2026-03-28T08:00:00Z"),
            all_day: false,
        };
        let (repeat, due) = parse("every day")
            .unwrap()
            .resolve(Some(due), paris, utc("2026-03-27T10:00:00Z"))
            .unwrap();
        let next = next_due(&repeat, due, utc("2026-03-28T08:30:00Z"))
            .unwrap()
            .unwrap();
        // Sunday 29 March, 09:00 in Paris, now UTC+2.
        assert_eq!(next.at, utc("2026-03-29T07:00:00Z"));
        // And back in October.
        let due = Due {
            at: utc("2026-10-24T07:00:00Z"),
            all_day: false,
        };
        let next = next_due(&repeat, due, utc("2026-10-24T07:30:00Z"))
            .unwrap()
            .unwrap();
        assert_eq!(next.at, utc("2026-10-25T08:00:00Z"));
    }

    #[test]
    fn missed_occurrences_are_skipped_and_early_completion_moves_one_step() {
        let ny = chrono_tz::America::New_York;
        let (repeat, _) = parse("every monday")
            .unwrap()
            .resolve(None, ny, utc("2026-12-01T12:00:00Z"))
            .unwrap();
        // Due Monday 2026-12-07 (a whole day), completed the Thursday before: the next Monday after it.
        let due = Due::parse("due", "2026-12-07").unwrap();
        assert_eq!(
            next_due(&repeat, due, utc("2026-12-03T12:00:00Z"))
                .unwrap()
                .unwrap()
                .render(),
            "2026-12-14"
        );
        // Completed three weeks late: the next Monday after today.
        assert_eq!(
            next_due(&repeat, due, utc("2026-12-30T12:00:00Z"))
                .unwrap()
                .unwrap()
                .render(),
            "2027-01-04"
        );
    }

    #[test]
    fn a_rule_without_a_due_starts_at_its_first_occurrence() {
        let paris = chrono_tz::Europe::Paris;
        // Tuesday 2026-12-01, 13:00 in Paris.
        let now = utc("2026-12-01T12:00:00Z");
        let (_, due) = parse("every monday")
            .unwrap()
            .resolve(None, paris, now)
            .unwrap();
        assert_eq!(due.render(), "2026-12-07");
        let (_, due) = parse("every day")
            .unwrap()
            .resolve(None, paris, now)
            .unwrap();
        assert_eq!(due.render(), "2026-12-01");
        let (_, due) = parse("every day at 9am")
            .unwrap()
            .resolve(None, paris, now)
            .unwrap();
        assert_eq!(due.at, utc("2026-12-02T08:00:00Z"));
        let (_, due) = parse("every month on the last friday")
            .unwrap()
            .resolve(None, paris, now)
            .unwrap();
        assert_eq!(due.render(), "2026-12-25");
        // A date with "at": that day at that time.
        let day = Due::parse("due", "2026-12-03").unwrap();
        let (_, due) = parse("every day at 9am")
            .unwrap()
            .resolve(Some(day), paris, now)
            .unwrap();
        assert_eq!(due.at, utc("2026-12-03T08:00:00Z"));
    }

    #[test]
    fn count_and_until_end_the_series() {
        let paris = chrono_tz::Europe::Paris;
        let now = utc("2026-12-01T12:00:00Z");
        let start = Due::parse("due", "2026-12-01").unwrap();
        let (repeat, due) = parse("every day 3 times")
            .unwrap()
            .resolve(Some(start), paris, now)
            .unwrap();
        assert!(
            repeat.rule.contains("UNTIL=") && !repeat.rule.contains("COUNT"),
            "{}",
            repeat.rule
        );
        assert_eq!(repeat.text, "every day until 2026-12-03");
        let d2 = next_due(&repeat, due, now).unwrap().unwrap();
        let d3 = next_due(&repeat, d2, now).unwrap().unwrap();
        assert_eq!(d3.render(), "2026-12-03");
        assert_eq!(next_due(&repeat, d3, now).unwrap(), None);
        let (repeat, _) = parse("every day until 2026-12-02")
            .unwrap()
            .resolve(Some(start), paris, now)
            .unwrap();
        let d2 = next_due(&repeat, start, now).unwrap().unwrap();
        assert_eq!(next_due(&repeat, d2, now).unwrap(), None);
        // A raw COUNT too.
        let (repeat, _) = parse("RRULE:FREQ=WEEKLY;COUNT=2")
            .unwrap()
            .resolve(Some(start), paris, now)
            .unwrap();
        assert_eq!(repeat.text, "every week until 2026-12-08");
    }

    #[test]
    fn stop_words_and_phrase_starts() {
        assert!(is_stop_word("Never"));
        assert!(is_stop_word(""));
        assert!(!is_stop_word("every day"));
        assert!(starts_phrase("Every"));
        assert!(starts_phrase("weekdays"));
        assert!(!starts_phrase("water"));
    }
}
