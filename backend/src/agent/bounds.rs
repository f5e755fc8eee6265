//! What bounds the cost of one turn beyond the model's own limits: the slack storage gets
//! after the turn's deadline, the size of a tool result sent back to the model, the prompt
//! budget re-checked before every model round, and the answers for calls not run.

use std::time::Duration;

use super::history::estimate_tokens;
use super::llm::WireMessage;

/// Storage may run this long past the turn's deadline, so that a timed-out turn still
/// leaves a complete history. The turn as a whole is cut off here.
pub const STORAGE_GRACE: Duration = Duration::from_secs(5);

/// Longest a tool session may take to close.
pub const CLOSE_TIMEOUT: Duration = Duration::from_secs(2);

/// The metric label of a tool name chosen by the model: known names, or one `unknown`.
pub fn tool_label(known: bool, name: &str) -> &str {
    if known { name } else { "unknown" }
}

/// A tool result as sent to the model: at most `max_chars` characters, with a note saying
/// how much was left out.
pub fn truncate_for_model(text: String, max_chars: usize) -> String {
    let total = text.chars().count();
    if total <= max_chars {
        return text;
    }
    let mut t: String = text.chars().take(max_chars).collect();
    t.push_str(&format!(
        "\n[… {} more characters left out; ask for less, e.g. a smaller limit]",
        total - max_chars
    ));
    t
}

/// Estimated prompt tokens of `messages` (plus the tool definitions' `tools_chars`).
pub fn prompt_tokens(messages: &[WireMessage], tools_chars: usize) -> usize {
    messages.iter().map(estimate_tokens).sum::<usize>() + tools_chars / 4
}

/// Said to the model for a call beyond the per-reply cap.
pub fn over_reply_cap(cap: usize) -> String {
    format!(
        "Not run: at most {cap} tool calls are run from one reply. Call the rest in your next \
         reply if they are still needed."
    )
}

/// Said to the model for a call beyond the per-turn cap.
pub fn over_turn_cap(cap: usize) -> String {
    format!(
        "Not run: this turn reached its limit of {cap} tool calls. Tell the person what was \
         done and what is left."
    )
}

/// Said to the model for a call whose MCP request timed out.
pub fn no_answer(after: Duration) -> String {
    format!(
        "The tool did not answer within {} s; its effect is unknown. Check with list_tasks \
         before repeating it.",
        after.as_secs()
    )
}

/// Said to the model for a call the turn had no time left for.
pub const OUT_OF_TIME: &str = "Not run or not finished: the turn ran out of time. Its effect is unknown; check with \
     list_tasks before repeating it.";

/// The answer of a turn stopped because its prompt outgrew the budget.
pub const OVER_BUDGET: &str = "I stopped here: this request needs more work than one message \
    allows. Tell me what to do next, in smaller steps.";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_results_are_cut_with_a_note_and_short_ones_kept() {
        assert_eq!(truncate_for_model("abc".into(), 3), "abc");
        let t = truncate_for_model("é".repeat(10), 4);
        assert!(t.starts_with("éééé\n[… 6 more characters"), "{t}");
    }

    #[test]
    fn unknown_tools_share_one_label() {
        assert_eq!(tool_label(true, "add_task"), "add_task");
        assert_eq!(tool_label(false, "x\ny"), "unknown");
    }
}
