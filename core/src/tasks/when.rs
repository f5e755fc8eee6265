//! Due words a person types — "today", "tomorrow 5pm", "fri", "next monday 9:30",
//! "in 2 hours", "dec 24", "2026-12-24" — read in the person's time zone.
//!
//! Pure: the caller passes the moment (`now`) and the zone, so every rule is testable.
//! Wall-clock times resolve through the zone's rules for that very date: across a DST change
//! "9:00" is still 9:00 local; a time that does not exist (the hour skipped in spring) moves
//! forward by the gap; a time that happens twice (autumn) is the first of the two. Durations
//! in minutes or hours are real elapsed time; days, weeks and months move the calendar.
//!
//! Written here rather than taken from a crate: interim 0.2 (the maintained fork of
//! chrono-english) resolves a wall-clock time with the offset of that time read as UTC, which is
//! an hour off around a DST change, and answers a date-time even for "fri", so a whole day
//! cannot be told from midnight; two_timer and dateparser cover other grammars.

use chrono::{
    DateTime, Datelike, Duration, LocalResult, Months, NaiveDate, NaiveDateTime, NaiveTime, Offset,
    SecondsFormat, TimeZone, Utc, Weekday,
};
use chrono_tz::Tz;

use super::InvalidInput;

/// A moment read from due words.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum When {
    /// A whole day ("fri", "dec 24").
    Day(NaiveDate),
    /// An exact instant ("tomorrow 5pm", "in 2 hours").
    At(DateTime<Utc>),
}

impl When {
    /// The form the task tools take as `due`: `2026-12-24`, or an RFC 3339 instant in UTC.
    pub fn to_due(self) -> String {
        match self {
            When::Day(d) => d.format("%Y-%m-%d").to_string(),
            When::At(t) => t.to_rfc3339_opts(SecondsFormat::Secs, true),
        }
    }
}

/// What the words accept, for messages to people.
pub const DUE_WORDS_HELP: &str = "today, tomorrow 5pm, fri, next monday 9:30, in 2 hours, \
                                  dec 24, 2026-12-24 or 2026-12-24T17:00";

fn not_understood(raw: &str) -> InvalidInput {
    InvalidInput(format!(
        "{raw:?} is not a due date I understand; try {DUE_WORDS_HELP}."
    ))
}

/// Reads `text` as due words at `now` in `tz`.
pub fn parse(text: &str, now: DateTime<Utc>, tz: Tz) -> Result<When, InvalidInput> {
    let lower = text.trim().to_lowercase();
    let words: Vec<&str> = lower
        .split(|c: char| c.is_whitespace() || c == ',')
        .filter(|w| !w.is_empty())
        .collect();
    parse_words(&words, now, tz).ok_or_else(|| not_understood(text.trim()))
}

/// The longest trailing run of `words` that reads as due words: the index where it starts and
/// what it means. `None` when no suffix does. At least one word is always left before it.
pub fn parse_suffix(words: &[&str], now: DateTime<Utc>, tz: Tz) -> Option<(usize, When)> {
    let lower: Vec<String> = words.iter().map(|w| w.to_lowercase()).collect();
    // Due words are at most a handful ("next monday at 9:30 am"): bound the search.
    let first = words.len().saturating_sub(6).max(1);
    (first..words.len()).find_map(|i| {
        let tail: Vec<&str> = lower[i..].iter().map(String::as_str).collect();
        parse_words(&tail, now, tz).map(|w| (i, w))
    })
}

/// Whether `text` says anything about when: a digit, or a word these due words are made of
/// ("tomorrow", "fri", "dec", "noon", "next", "week"…) or that sets a date around them ("by",
/// "until", "due", "every"). Generous on purpose: it is used to tell a message with no date or
/// time at all, where a due would be invented. English words only; digits in any language.
pub fn mentions_a_time(text: &str) -> bool {
    const WORDS: &[&str] = &[
        "today",
        "tonight",
        "tomorrow",
        "tmrw",
        "tmr",
        "yesterday",
        "next",
        "this",
        "week",
        "weeks",
        "weekend",
        "weekday",
        "weekdays",
        "month",
        "months",
        "year",
        "day",
        "days",
        "hour",
        "hours",
        "minute",
        "minutes",
        "min",
        "noon",
        "midday",
        "midnight",
        "morning",
        "afternoon",
        "evening",
        "night",
        "am",
        "pm",
        "by",
        "until",
        "till",
        "before",
        "after",
        "due",
        "deadline",
        "every",
        "daily",
        "weekly",
        "monthly",
        "yearly",
        "later",
        "soon",
        "asap",
        "eod",
        "eow",
    ];
    text.chars().any(|c| c.is_ascii_digit())
        || text
            .to_lowercase()
            .split(|c: char| !c.is_alphanumeric())
            .any(|w| WORDS.contains(&w) || weekday(w).is_some() || month(w).is_some())
}

fn parse_words(words: &[&str], now: DateTime<Utc>, tz: Tz) -> Option<When> {
    if words.is_empty() {
        return None;
    }
    let local = now.with_timezone(&tz);
    let today = local.date_naive();
    if words.len() == 1
        && let Some(w) = iso(words[0], tz)
    {
        return Some(w);
    }
    if let Some(w) = in_duration(words, now, today) {
        return Some(w);
    }
    let (date, rest) = match date_part(words, today) {
        Some((d, n)) => (Some(d), &words[n..]),
        None => (None, words),
    };
    let time = if rest.is_empty() {
        None
    } else {
        Some(time_part(rest)?)
    };
    match (date, time) {
        (Some(d), None) => Some(When::Day(d)),
        (Some(d), Some(t)) => Some(When::At(resolve(tz, d.and_time(t)))),
        // A time alone is the next time the clock shows it.
        (None, Some(t)) => {
            let at = resolve(tz, today.and_time(t));
            Some(When::At(if at > now {
                at
            } else {
                resolve(tz, today.succ_opt()?.and_time(t))
            }))
        }
        (None, None) => None,
    }
}

/// A local wall-clock time in `tz` as an instant: a skipped time moves forward by the gap, a
/// repeated one is the first.
pub fn resolve(tz: Tz, local: NaiveDateTime) -> DateTime<Utc> {
    match tz.from_local_datetime(&local) {
        LocalResult::Single(t) => t.with_timezone(&Utc),
        LocalResult::Ambiguous(first, _) => first.with_timezone(&Utc),
        LocalResult::None => {
            // Read with the offset in force before the gap: 02:30 in a 02:00→03:00 gap is 03:30.
            let before = tz
                .offset_from_utc_datetime(&(local - Duration::days(1)))
                .fix();
            (local - Duration::seconds(i64::from(before.local_minus_utc()))).and_utc()
        }
    }
}

/// `2026-12-24`, `2026-12-24T17:00` (local), or an RFC 3339 date-time with its offset.
fn iso(w: &str, tz: Tz) -> Option<When> {
    if let Ok(d) = NaiveDate::parse_from_str(w, "%Y-%m-%d") {
        return Some(When::Day(d));
    }
    let w = w.to_uppercase();
    if let Ok(t) = DateTime::parse_from_rfc3339(&w) {
        return Some(When::At(t.with_timezone(&Utc)));
    }
    ["%Y-%m-%dT%H:%M", "%Y-%m-%dT%H:%M:%S"]
        .iter()
        .find_map(|f| NaiveDateTime::parse_from_str(&w, f).ok())
        .map(|local| When::At(resolve(tz, local)))
}

/// `in 2 hours`, `in 30 min`, `in a week`, `in 3 days`, `in 2 months`.
fn in_duration(words: &[&str], now: DateTime<Utc>, today: NaiveDate) -> Option<When> {
    let (n, unit) = match words {
        ["in", n, unit] => (count(n)?, *unit),
        // "in 2h", "in 30m"
        ["in", joined] => {
            let split = joined.find(|c: char| !c.is_ascii_digit())?;
            let (n, unit) = joined.split_at(split);
            (n.parse().ok()?, unit)
        }
        _ => return None,
    };
    if !(1..=10_000).contains(&n) {
        return None;
    }
    let unit = unit.trim_end_matches('s');
    Some(match unit {
        "m" | "min" | "minute" => When::At(now + Duration::minutes(n)),
        "h" | "hr" | "hour" => When::At(now + Duration::hours(n)),
        "d" | "day" => When::Day(today.checked_add_signed(Duration::days(n))?),
        "w" | "wk" | "week" => When::Day(today.checked_add_signed(Duration::weeks(n))?),
        "month" | "mo" => When::Day(today.checked_add_months(Months::new(u32::try_from(n).ok()?))?),
        _ => return None,
    })
}

fn count(w: &str) -> Option<i64> {
    match w {
        "a" | "an" | "one" => Some(1),
        "two" => Some(2),
        "three" => Some(3),
        _ => w.parse().ok(),
    }
}

/// A date at the start of `words`, and how many words it took.
fn date_part(words: &[&str], today: NaiveDate) -> Option<(NaiveDate, usize)> {
    match words {
        [w, ..] if NaiveDate::parse_from_str(w, "%Y-%m-%d").is_ok() => {
            Some((NaiveDate::parse_from_str(w, "%Y-%m-%d").ok()?, 1))
        }
        ["today" | "tonight", ..] => Some((today, 1)),
        ["tomorrow" | "tmrw" | "tmr", ..] => Some((today.succ_opt()?, 1)),
        ["next", w, ..] if weekday(w).is_some() => Some((next_weekday(today, weekday(w)?), 2)),
        ["next", "week", ..] => Some((next_weekday(today, Weekday::Mon), 2)),
        ["next", "month", ..] => Some((today.checked_add_months(Months::new(1))?.with_day(1)?, 2)),
        ["this", w, ..] if weekday(w).is_some() => {
            let wd = weekday(w)?;
            Some((
                if today.weekday() == wd {
                    today
                } else {
                    next_weekday(today, wd)
                },
                2,
            ))
        }
        [w, ..] if weekday(w).is_some() => Some((next_weekday(today, weekday(w)?), 1)),
        _ => month_day(words, today),
    }
}

/// The first `wd` after `today` (a week on when today is `wd`).
fn next_weekday(today: NaiveDate, wd: Weekday) -> NaiveDate {
    let ahead = (7 + wd.num_days_from_monday() - today.weekday().num_days_from_monday()) % 7;
    today + Duration::days(if ahead == 0 { 7 } else { i64::from(ahead) })
}

fn weekday(w: &str) -> Option<Weekday> {
    Some(match w {
        "mon" | "monday" => Weekday::Mon,
        "tue" | "tues" | "tuesday" => Weekday::Tue,
        "wed" | "weds" | "wednesday" => Weekday::Wed,
        "thu" | "thur" | "thurs" | "thursday" => Weekday::Thu,
        "fri" | "friday" => Weekday::Fri,
        "sat" | "saturday" => Weekday::Sat,
        "sun" | "sunday" => Weekday::Sun,
        _ => return None,
    })
}

fn month(w: &str) -> Option<u32> {
    const NAMES: [&str; 12] = [
        "january",
        "february",
        "march",
        "april",
        "may",
        "june",
        "july",
        "august",
        "september",
        "october",
        "november",
        "december",
    ];
    let w = w.trim_end_matches('.');
    if w.len() < 3 {
        return None;
    }
    // From three letters on, a prefix names one month ("sept", "dec", "december").
    let m = NAMES.iter().position(|n| n.starts_with(w))?;
    u32::try_from(m + 1).ok()
}

fn day_of_month(w: &str) -> Option<u32> {
    let digits = w.trim_end_matches(|c: char| c.is_ascii_alphabetic());
    let suffix = &w[digits.len()..];
    if !matches!(suffix, "" | "st" | "nd" | "rd" | "th") {
        return None;
    }
    let d: u32 = digits.parse().ok()?;
    (1..=31).contains(&d).then_some(d)
}

fn year(w: &str) -> Option<i32> {
    (w.len() == 4)
        .then(|| w.parse().ok())
        .flatten()
        .filter(|y| (1970..=9999).contains(y))
}

/// `dec 24`, `24 dec`, `december 24th 2027`: without a year, the next such day from today on.
fn month_day(words: &[&str], today: NaiveDate) -> Option<(NaiveDate, usize)> {
    let (m, d) = match words {
        [a, b, ..] if month(a).is_some() && day_of_month(b).is_some() => {
            (month(a)?, day_of_month(b)?)
        }
        [a, b, ..] if day_of_month(a).is_some() && month(b).is_some() => {
            (month(b)?, day_of_month(a)?)
        }
        _ => return None,
    };
    if let Some(y) = words.get(2).and_then(|w| year(w)) {
        return Some((NaiveDate::from_ymd_opt(y, m, d)?, 3));
    }
    // Feb 29 looks ahead to the next leap year.
    (0..8)
        .filter_map(|k| NaiveDate::from_ymd_opt(today.year() + k, m, d))
        .find(|date| *date >= today)
        .map(|date| (date, 2))
}

/// A time of day: `5pm`, `5:30 pm`, `17:00`, `9.30`, `at 9`, `noon`, `midnight`.
fn time_part(words: &[&str]) -> Option<NaiveTime> {
    let (words, after_at) = match words {
        ["at" | "@", rest @ ..] => (rest, true),
        _ => (words, false),
    };
    let (clock, meridiem) = match words {
        ["noon" | "midday"] => return NaiveTime::from_hms_opt(12, 0, 0),
        ["midnight"] => return NaiveTime::from_hms_opt(0, 0, 0),
        ["morning"] => return NaiveTime::from_hms_opt(9, 0, 0),
        ["evening"] => return NaiveTime::from_hms_opt(18, 0, 0),
        [one] => split_meridiem(one),
        [clock, m @ ("am" | "pm" | "a.m." | "p.m.")] => (*clock, Some(m.starts_with('p'))),
        _ => return None,
    };
    if clock.is_empty() || clock.len() > 5 {
        return None;
    }
    let (h, min) = match clock.split_once([':', '.']) {
        Some((h, m)) if m.len() == 2 && !h.is_empty() => {
            (h.parse::<u32>().ok()?, m.parse::<u32>().ok()?)
        }
        Some(_) => return None,
        // A bare number is an hour with am/pm or after "at" ("at 9"); "17" alone is no time.
        None if meridiem.is_some() || after_at => (clock.parse::<u32>().ok()?, 0),
        None => return None,
    };
    if h > 23 || min > 59 {
        return None;
    }
    let h = match meridiem {
        None => h,
        Some(_) if !(1..=12).contains(&h) => return None,
        Some(false) if h == 12 => 0,
        Some(true) if h < 12 => h + 12,
        Some(_) => h,
    };
    NaiveTime::from_hms_opt(h, min, 0)
}

fn split_meridiem(w: &str) -> (&str, Option<bool>) {
    for (suffix, pm) in [("a.m.", false), ("p.m.", true), ("am", false), ("pm", true)] {
        if let Some(clock) = w.strip_suffix(suffix) {
            return (clock, Some(pm));
        }
    }
    (w, None)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn tz(name: &str) -> Tz {
        name.parse().unwrap()
    }

    fn day(s: &str) -> When {
        When::Day(NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap())
    }

    fn at(s: &str) -> When {
        When::At(utc(s))
    }

    /// (words, expected) at one moment and zone, each case named in its failure.
    fn check(now: &str, zone: &str, cases: &[(&str, When)]) {
        for (words, want) in cases {
            let got = parse(words, utc(now), tz(zone));
            assert_eq!(
                got.as_ref().ok(),
                Some(want),
                "{words:?} at {now} in {zone}: {got:?}"
            );
        }
    }

    #[test]
    fn the_everyday_forms_in_paris_on_a_monday_afternoon() {
        // Monday 2026-11-23, 15:00 in Paris (UTC+1).
        check(
            "2026-11-23T14:00:00Z",
            "Europe/Paris",
            &[
                ("today", day("2026-11-23")),
                ("Today", day("2026-11-23")),
                ("tomorrow", day("2026-11-24")),
                ("tomorrow 5pm", at("2026-11-24T16:00:00Z")),
                ("tomorrow at 5:30 pm", at("2026-11-24T16:30:00Z")),
                ("tomorrow 17:00", at("2026-11-24T16:00:00Z")),
                ("today 9pm", at("2026-11-23T20:00:00Z")),
                ("fri", day("2026-11-27")),
                ("Friday", day("2026-11-27")),
                ("mon", day("2026-11-30")),
                ("next monday 9:30", at("2026-11-30T08:30:00Z")),
                ("next fri", day("2026-11-27")),
                ("this monday", day("2026-11-23")),
                ("next week", day("2026-11-30")),
                ("next month", day("2026-12-01")),
                ("in 2 hours", at("2026-11-23T16:00:00Z")),
                ("in 30 min", at("2026-11-23T14:30:00Z")),
                ("in 2h", at("2026-11-23T16:00:00Z")),
                ("in an hour", at("2026-11-23T15:00:00Z")),
                ("in 3 days", day("2026-11-26")),
                ("in a week", day("2026-11-30")),
                ("in 2 months", day("2027-01-23")),
                ("dec 24", day("2026-12-24")),
                ("24 December", day("2026-12-24")),
                ("december 24th 2027", day("2027-12-24")),
                ("dec 24 6pm", at("2026-12-24T17:00:00Z")),
                ("nov 1", day("2027-11-01")),
                ("nov 23", day("2026-11-23")),
                ("2026-12-24", day("2026-12-24")),
                ("2026-12-24T17:00", at("2026-12-24T16:00:00Z")),
                ("2026-12-24t17:00:00-05:00", at("2026-12-24T22:00:00Z")),
                ("5pm", at("2026-11-23T16:00:00Z")),
                ("9am", at("2026-11-24T08:00:00Z")),
                ("noon", at("2026-11-24T11:00:00Z")),
                ("tomorrow noon", at("2026-11-24T11:00:00Z")),
                ("tomorrow midnight", at("2026-11-23T23:00:00Z")),
                ("12am", at("2026-11-23T23:00:00Z")),
                ("tomorrow at 9", at("2026-11-24T08:00:00Z")),
                ("2026-12-24 5pm", at("2026-12-24T16:00:00Z")),
                ("sept 3", day("2027-09-03")),
            ],
        );
    }

    #[test]
    fn words_that_are_no_date_are_refused_with_the_forms_that_work() {
        let now = utc("2026-11-23T14:00:00Z");
        for words in [
            "",
            "soon",
            "buy milk",
            "17",
            "tomorrow 25:00",
            "13pm",
            "feb 30 2027",
            "dec 32",
            "in 0 days",
            "in 2 fortnights",
            "next",
            "2026-13-01",
            "tomorrow tomorrow",
            "at",
            "9:7",
            "ma 3",
        ] {
            let err = parse(words, now, tz("Europe/Paris")).unwrap_err();
            assert!(err.0.contains("tomorrow 5pm"), "{words:?}: {err}");
        }
    }

    #[test]
    fn past_midnight_in_another_zone_today_is_the_persons_today() {
        // 23:30 UTC on Monday is already Tuesday 08:30 in Tokyo and still Monday 15:30 in LA.
        let now = "2026-11-23T23:30:00Z";
        check(
            now,
            "Asia/Tokyo",
            &[
                ("today", day("2026-11-24")),
                ("tomorrow", day("2026-11-25")),
                ("tomorrow 5pm", at("2026-11-25T08:00:00Z")),
                ("tue", day("2026-12-01")),
                ("wed", day("2026-11-25")),
                ("9am", at("2026-11-24T00:00:00Z")),
                ("in 3 days", day("2026-11-27")),
            ],
        );
        check(
            now,
            "America/Los_Angeles",
            &[
                ("today", day("2026-11-23")),
                ("tomorrow 5pm", at("2026-11-25T01:00:00Z")),
                ("tue", day("2026-11-24")),
            ],
        );
    }

    #[test]
    fn wall_clock_times_hold_across_a_dst_change() {
        // Paris's clocks go forward on Sunday 2026-03-29 at 02:00 → 03:00.
        check(
            "2026-03-28T11:00:00Z", // 12:00 CET (UTC+1)
            "Europe/Paris",
            &[
                // After the change Paris is UTC+2: 9:00 local is 07:00 UTC.
                ("tomorrow 9am", at("2026-03-29T07:00:00Z")),
                // Before the change, at 01:30 local, still UTC+1.
                ("tomorrow 1:30am", at("2026-03-29T00:30:00Z")),
                // 02:30 does not exist that night: moved forward by the gap, to 03:30 CEST.
                ("tomorrow 2:30am", at("2026-03-29T01:30:00Z")),
                ("tomorrow", day("2026-03-29")),
                // 24 real hours later is 13:00 local, not 12:00.
                ("in 24 hours", at("2026-03-29T11:00:00Z")),
            ],
        );
        // Autumn: Paris goes back from 03:00 to 02:00 on Sunday 2026-10-25; 02:30 happens twice.
        check(
            "2026-10-24T10:00:00Z",
            "Europe/Paris",
            &[
                ("tomorrow 2:30am", at("2026-10-25T00:30:00Z")),
                ("tomorrow 9am", at("2026-10-25T08:00:00Z")),
            ],
        );
        // New York's spring change (2026-03-08 02:00 → 03:00), seen hours away from UTC's.
        check(
            "2026-03-07T17:00:00Z", // Saturday 12:00 EST
            "America/New_York",
            &[
                ("tomorrow 5am", at("2026-03-08T09:00:00Z")),
                ("tomorrow 1am", at("2026-03-08T06:00:00Z")),
                ("sun 8pm", at("2026-03-09T00:00:00Z")),
            ],
        );
    }

    #[test]
    fn a_due_suffix_is_found_after_the_title() {
        let now = utc("2026-11-23T14:00:00Z");
        let paris = tz("Europe/Paris");
        let split = |s: &str| {
            let words: Vec<&str> = s.split_whitespace().collect();
            parse_suffix(&words, now, paris).map(|(i, w)| (words[..i].join(" "), w))
        };
        assert_eq!(
            split("buy milk tomorrow 5pm"),
            Some(("buy milk".into(), at("2026-11-24T16:00:00Z")))
        );
        assert_eq!(
            split("call mom next monday 9:30"),
            Some(("call mom".into(), at("2026-11-30T08:30:00Z")))
        );
        assert_eq!(
            split("pay rent dec 24"),
            Some(("pay rent".into(), day("2026-12-24")))
        );
        assert_eq!(split("read chapter 3"), None);
        assert_eq!(split("tomorrow"), None, "the title is never empty");
        assert_eq!(
            split("plan the day today"),
            Some(("plan the day".into(), day("2026-11-23")))
        );
    }

    #[test]
    fn due_text_is_what_the_tools_take() {
        assert_eq!(day("2026-12-24").to_due(), "2026-12-24");
        assert_eq!(at("2026-12-24T16:00:00Z").to_due(), "2026-12-24T16:00:00Z");
        for w in [day("2026-12-24"), at("2026-12-24T16:00:00Z")] {
            assert!(super::super::Due::parse("due", &w.to_due()).is_ok());
        }
    }

    #[test]
    fn a_message_with_no_date_or_time_is_told_from_one_with() {
        for said in [
            "Remind me to call mom tomorrow at 5pm",
            "I need to renew my passport by Friday",
            "Add call the bank in 3 days",
            "pay rent dec 24",
            "water the plants every morning",
            "Urgent: pay the electricity bill by tomorrow",
            "rappeler maman à 17h",
        ] {
            assert!(mentions_a_time(said), "{said}");
        }
        for said in [
            "Add water the plants",
            "Add eggs and add bread",
            "Add buy stamps and mark Call Anna as done",
            "Add a high priority task to send the quarterly report, tag it work",
            "decide on the paint colour",
        ] {
            assert!(!mentions_a_time(said), "{said}");
        }
    }
}
