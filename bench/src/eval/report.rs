//! Per-turn records and the Markdown report: pass rate and its spread over runs, model
//! calls, prompt tokens sent and processed, completion tokens and wall time per turn.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::{Value, json};

use crate::proxy::Call;

const WRITES: [&str; 5] = [
    "add_task",
    "complete_task",
    "delete_task",
    "update_task",
    "restore_task",
];

/// One judged turn.
#[derive(Debug, Clone)]
pub struct TurnRecord {
    pub run: usize,
    pub conversation: String,
    pub case: String,
    pub faults: Vec<String>,
    pub wall: Duration,
    pub calls: usize,
    pub prompt_sent: u64,
    pub processed: u64,
    /// Processed prompt tokens and calls, leaving out the first call of the run (cold cache).
    pub processed_warm: u64,
    pub calls_warm: usize,
    pub cached: u64,
    pub completion: u64,
    pub tools: Vec<String>,
    pub reply: String,
}

impl TurnRecord {
    #[allow(clippy::too_many_arguments)] // one record, built in one place
    pub fn new(
        run: usize,
        conversation: &str,
        case: &str,
        faults: Vec<String>,
        wall: Duration,
        calls: &[Call],
        first_call_of_run: bool,
        tools: Vec<String>,
        reply: String,
    ) -> TurnRecord {
        let warm = if first_call_of_run && !calls.is_empty() {
            &calls[1..]
        } else {
            calls
        };
        TurnRecord {
            run,
            conversation: conversation.into(),
            case: case.into(),
            faults,
            wall,
            calls: calls.len(),
            prompt_sent: calls.iter().map(|c| c.prompt_tokens).sum(),
            processed: calls.iter().map(|c| c.processed_tokens).sum(),
            processed_warm: warm.iter().map(|c| c.processed_tokens).sum(),
            calls_warm: warm.len(),
            cached: calls.iter().map(|c| c.cached_tokens.unwrap_or(0)).sum(),
            completion: calls.iter().map(|c| c.completion_tokens).sum(),
            tools,
            reply,
        }
    }

    pub fn passed(&self) -> bool {
        self.faults.is_empty()
    }

    /// A write turn that also asked for `list_tasks`, which it did not need.
    pub fn list_beside_write(&self) -> bool {
        self.tools.iter().any(|t| WRITES.contains(&t.as_str()))
            && self.tools.iter().any(|t| t == "list_tasks")
    }

    /// Exactly one tool call, a write: the turn the one-call path is about.
    pub fn one_write_tool(&self) -> bool {
        self.tools.len() == 1 && WRITES.contains(&self.tools[0].as_str())
    }

    pub fn line(&self) -> String {
        format!(
            "[run {}] {:<28} {} {:>6.1}s calls={} sent={} processed={} completion={} tools=[{}]{}",
            self.run,
            self.case,
            if self.passed() { "PASS" } else { "FAIL" },
            self.wall.as_secs_f64(),
            self.calls,
            self.prompt_sent,
            self.processed,
            self.completion,
            self.tools.join(","),
            if self.passed() {
                String::new()
            } else {
                format!(
                    " — {} | reply: {:?}",
                    self.faults.join("; "),
                    truncate(&self.reply, 160)
                )
            }
        )
    }

    pub fn to_json(&self, label: &str) -> Value {
        json!({
            "label": label, "run": self.run, "conversation": self.conversation, "case": self.case,
            "passed": self.passed(), "faults": self.faults, "wall_ms": self.wall.as_millis() as u64,
            "calls": self.calls, "prompt_sent": self.prompt_sent, "processed": self.processed,
            "cached": self.cached, "completion": self.completion, "tools": self.tools,
            "reply": self.reply,
        })
    }
}

fn truncate(s: &str, n: usize) -> String {
    let mut t: String = s.chars().take(n).collect();
    if s.chars().count() > n {
        t.push('…');
    }
    t
}

/// Median of a non-empty list (0 for an empty one).
pub fn median(v: &mut [f64]) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    v.sort_by(f64::total_cmp);
    let m = v.len() / 2;
    if v.len() % 2 == 1 {
        v[m]
    } else {
        (v[m - 1] + v[m]) / 2.0
    }
}

fn ratio(a: f64, b: f64) -> f64 {
    if b == 0.0 { 0.0 } else { a / b }
}

/// Overall figures of a set of records.
#[derive(Debug, PartialEq)]
pub struct Summary {
    pub turns: usize,
    pub passed: usize,
    /// Pass rate of each run, in run order.
    pub pass_rate_by_run: Vec<f64>,
    pub calls_per_turn: f64,
    pub sent_per_call: f64,
    pub processed_per_warm_call: f64,
    pub completion_per_turn: f64,
    pub median_wall_s: f64,
    pub median_one_write_wall_s: f64,
    pub one_write_turns: usize,
    pub list_beside_write: usize,
}

pub fn summarize(records: &[TurnRecord]) -> Summary {
    let n = records.len() as f64;
    let calls: usize = records.iter().map(|r| r.calls).sum();
    let warm_calls: usize = records.iter().map(|r| r.calls_warm).sum();
    let mut by_run: BTreeMap<usize, (usize, usize)> = BTreeMap::new();
    for r in records {
        let e = by_run.entry(r.run).or_default();
        e.0 += usize::from(r.passed());
        e.1 += 1;
    }
    let mut walls: Vec<f64> = records.iter().map(|r| r.wall.as_secs_f64()).collect();
    let mut one: Vec<f64> = records
        .iter()
        .filter(|r| r.one_write_tool())
        .map(|r| r.wall.as_secs_f64())
        .collect();
    Summary {
        turns: records.len(),
        passed: records.iter().filter(|r| r.passed()).count(),
        pass_rate_by_run: by_run
            .values()
            .map(|(p, t)| ratio(*p as f64, *t as f64))
            .collect(),
        calls_per_turn: ratio(calls as f64, n),
        sent_per_call: ratio(
            records.iter().map(|r| r.prompt_sent).sum::<u64>() as f64,
            calls as f64,
        ),
        processed_per_warm_call: ratio(
            records.iter().map(|r| r.processed_warm).sum::<u64>() as f64,
            warm_calls as f64,
        ),
        completion_per_turn: ratio(records.iter().map(|r| r.completion).sum::<u64>() as f64, n),
        median_wall_s: median(&mut walls),
        one_write_turns: one.len(),
        median_one_write_wall_s: median(&mut one),
        list_beside_write: records.iter().filter(|r| r.list_beside_write()).count(),
    }
}

/// The Markdown report.
pub fn render(label: &str, records: &[TurnRecord], runs: usize, command: &str) -> String {
    let s = summarize(records);
    let mut out = String::new();
    out.push_str(&format!(
        "### {label} — {} turns × {runs} run(s), {}\n\n`{command}`\n\n",
        if runs == 0 { 0 } else { s.turns / runs.max(1) },
        chrono::Utc::now().format("%Y-%m-%d %H:%M UTC")
    ));
    let rates: Vec<String> = s
        .pass_rate_by_run
        .iter()
        .map(|r| format!("{:.0}%", r * 100.0))
        .collect();
    out.push_str("| figure | value |\n|---|---|\n");
    out.push_str(&format!(
        "| passed | {}/{} ({:.0}%); by run: {} |\n",
        s.passed,
        s.turns,
        ratio(s.passed as f64, s.turns as f64) * 100.0,
        rates.join(", ")
    ));
    out.push_str(&format!(
        "| model calls per turn | {:.2} |\n",
        s.calls_per_turn
    ));
    out.push_str(&format!(
        "| prompt tokens sent per call | {:.0} |\n",
        s.sent_per_call
    ));
    out.push_str(&format!(
        "| prompt tokens processed per call (after the run's first) | {:.0} |\n",
        s.processed_per_warm_call
    ));
    out.push_str(&format!(
        "| completion tokens per turn | {:.1} |\n",
        s.completion_per_turn
    ));
    out.push_str(&format!(
        "| median wall time per turn | {:.1} s |\n",
        s.median_wall_s
    ));
    out.push_str(&format!(
        "| median wall time of a one-write-tool turn | {:.1} s ({} turns) |\n",
        s.median_one_write_wall_s, s.one_write_turns
    ));
    out.push_str(&format!(
        "| write turns that also called list_tasks | {} |\n\n",
        s.list_beside_write
    ));
    out.push_str("| case | passed | median wall s | calls/turn | sent/turn | processed/turn | completion/turn | a failure |\n");
    out.push_str("|---|---|---|---|---|---|---|---|\n");
    let mut by_case: BTreeMap<(String, String), Vec<&TurnRecord>> = BTreeMap::new();
    let mut order = Vec::new();
    for r in records {
        let k = (r.conversation.clone(), r.case.clone());
        if !by_case.contains_key(&k) {
            order.push(k.clone());
        }
        by_case.entry(k).or_default().push(r);
    }
    for k in order {
        let rs = &by_case[&k];
        let n = rs.len() as f64;
        let mut walls: Vec<f64> = rs.iter().map(|r| r.wall.as_secs_f64()).collect();
        let fault = rs
            .iter()
            .find(|r| !r.passed())
            .map(|r| truncate(&r.faults.join("; "), 120).replace('|', "/"))
            .unwrap_or_default();
        out.push_str(&format!(
            "| {} | {}/{} | {:.1} | {:.1} | {:.0} | {:.0} | {:.0} | {} |\n",
            k.1,
            rs.iter().filter(|r| r.passed()).count(),
            rs.len(),
            median(&mut walls),
            rs.iter().map(|r| r.calls).sum::<usize>() as f64 / n,
            rs.iter().map(|r| r.prompt_sent).sum::<u64>() as f64 / n,
            rs.iter().map(|r| r.processed).sum::<u64>() as f64 / n,
            rs.iter().map(|r| r.completion).sum::<u64>() as f64 / n,
            fault
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call(prompt: u64, processed: u64) -> Call {
        Call {
            prompt_tokens: prompt,
            cached_tokens: Some(prompt - processed),
            processed_tokens: processed,
            completion_tokens: 10,
            millis: 5,
            status: 200,
        }
    }

    #[test]
    fn the_summary_counts_runs_calls_and_warm_tokens() {
        let a = TurnRecord::new(
            1,
            "c",
            "a",
            vec![],
            Duration::from_secs(10),
            &[call(1000, 1000), call(1100, 100)],
            true,
            vec!["add_task".into()],
            "Added.".into(),
        );
        let b = TurnRecord::new(
            1,
            "c",
            "b",
            vec!["wrong".into()],
            Duration::from_secs(30),
            &[call(1200, 200)],
            false,
            vec!["add_task".into(), "list_tasks".into()],
            "x".into(),
        );
        let c = TurnRecord::new(
            2,
            "c",
            "a",
            vec![],
            Duration::from_secs(20),
            &[call(1000, 1000)],
            true,
            vec!["complete_task".into()],
            "Done.".into(),
        );
        let s = summarize(&[a, b, c]);
        assert_eq!(s.turns, 3);
        assert_eq!(s.passed, 2);
        assert_eq!(s.pass_rate_by_run, vec![0.5, 1.0]);
        assert!((s.calls_per_turn - 4.0 / 3.0).abs() < 1e-9);
        // The first call of each run (cold) is left out: (100 + 200) / 2.
        assert!((s.processed_per_warm_call - 150.0).abs() < 1e-9);
        assert_eq!(s.median_wall_s, 20.0);
        assert_eq!(s.one_write_turns, 2);
        assert_eq!(s.median_one_write_wall_s, 15.0);
        assert_eq!(s.list_beside_write, 1);
    }

    #[test]
    fn medians_of_odd_even_and_empty_lists() {
        assert_eq!(median(&mut [3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&mut [4.0, 1.0, 2.0, 3.0]), 2.5);
        assert_eq!(median(&mut []), 0.0);
    }

    #[test]
    fn the_report_has_one_row_per_case_with_its_spread() {
        let r = |run, pass: bool| {
            TurnRecord::new(
                run,
                "c",
                "add-milk",
                if pass {
                    vec![]
                } else {
                    vec!["no added task".into()]
                },
                Duration::from_secs(5),
                &[call(100, 50)],
                false,
                vec![],
                String::new(),
            )
        };
        let md = render("after", &[r(1, true), r(2, false)], 2, "todo-eval --runs 2");
        assert!(md.contains("| add-milk | 1/2 |"), "{md}");
        assert!(md.contains("by run: 100%, 0%"), "{md}");
        assert!(md.contains("`todo-eval --runs 2`"), "{md}");
    }
}
