//! Token usage and what it costs: the sum of one turn's model calls, the optional per-model
//! prices (`LLM_PRICES`), and the per-day and per-conversation sums behind
//! `GET /api/{user_id}/usage`. Usage is read from the assistant messages, which store each
//! model call's tokens and model; turns that called no model (commands) count nothing.

use std::collections::BTreeMap;

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use todo_core::db::Database;
use uuid::Uuid;

/// Tokens of one or more model calls, and their cost when the model has a price.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct TokenUsage {
    /// Model calls counted (0 for a turn answered without the model).
    pub model_calls: u64,
    /// Prompt tokens, cached ones included.
    pub prompt_tokens: u64,
    /// Prompt tokens the provider served from its cache (when it reports them).
    pub cached_prompt_tokens: u64,
    pub completion_tokens: u64,
    /// Cost at the `LLM_PRICES` of the models used; absent when any model used has no price.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cost: Option<f64>,
}

impl TokenUsage {
    /// One model call's tokens.
    pub fn call(prompt: u64, cached: u64, completion: u64) -> TokenUsage {
        TokenUsage {
            model_calls: 1,
            prompt_tokens: prompt,
            cached_prompt_tokens: cached.min(prompt),
            completion_tokens: completion,
            cost: None,
        }
    }

    /// Adds `other`; the cost stays known only while both are.
    pub fn add(&mut self, other: &TokenUsage) {
        let known = self.model_calls == 0 || self.cost.is_some();
        self.model_calls += other.model_calls;
        self.prompt_tokens += other.prompt_tokens;
        self.cached_prompt_tokens += other.cached_prompt_tokens;
        self.completion_tokens += other.completion_tokens;
        self.cost = match (known, self.cost, other.cost) {
            _ if other.model_calls == 0 => self.cost,
            (true, a, Some(b)) => Some(round_cost(a.unwrap_or(0.0) + b)),
            _ => None,
        };
    }

    /// Prices these tokens at `model`'s price, if it has one.
    pub fn priced(mut self, prices: &Prices, model: &str) -> TokenUsage {
        self.cost = if self.model_calls == 0 {
            None
        } else {
            prices.cost(model, &self)
        };
        self
    }
}

/// Rounded to a millionth so sums print cleanly.
fn round_cost(c: f64) -> f64 {
    (c * 1e6).round() / 1e6
}

/// A model's price per million tokens.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Price {
    pub input: f64,
    pub output: f64,
    /// Cached prompt tokens; the input price when not given.
    pub cached_input: f64,
}

/// Per-model prices from `LLM_PRICES`: `model=input:output[:cached_input],…` per million
/// tokens, in whatever currency you bill in (e.g. `gpt-4o-mini=0.15:0.60:0.075`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Prices(BTreeMap<String, Price>);

impl Prices {
    /// Parses the setting; the error says which entry is wrong.
    pub fn parse(raw: &str) -> Result<Prices, String> {
        let mut map = BTreeMap::new();
        for entry in raw.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            // Model names may hold ':' (Ollama's "qwen2.5:1.5b"); prices never hold '='.
            let (model, nums) = entry
                .rsplit_once('=')
                .map(|(m, n)| (m.trim(), n.trim()))
                .filter(|(m, _)| !m.is_empty())
                .ok_or_else(|| {
                    format!("LLM_PRICES entry {entry:?} must look like model=input:output[:cached]")
                })?;
            let parsed: Vec<f64> = nums
                .split(':')
                .map(|n| n.trim().parse::<f64>())
                .collect::<Result<Vec<f64>, _>>()
                .ok()
                .filter(|v| (2..=3).contains(&v.len()))
                .filter(|v| v.iter().all(|p| p.is_finite() && *p >= 0.0))
                .ok_or_else(|| {
                    format!(
                        "LLM_PRICES entry {entry:?}: give 2 or 3 non-negative numbers (per million \
                         tokens) as input:output[:cached]"
                    )
                })?;
            let price = Price {
                input: parsed[0],
                output: parsed[1],
                cached_input: parsed.get(2).copied().unwrap_or(parsed[0]),
            };
            if map.insert(model.to_string(), price).is_some() {
                return Err(format!("LLM_PRICES names {model:?} twice"));
            }
        }
        Ok(Prices(map))
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// What `u`'s tokens cost at `model`'s price.
    pub fn cost(&self, model: &str, u: &TokenUsage) -> Option<f64> {
        let p = self.0.get(model)?;
        let cached = u.cached_prompt_tokens.min(u.prompt_tokens) as f64;
        let uncached = u.prompt_tokens as f64 - cached;
        Some(round_cost(
            (uncached * p.input + cached * p.cached_input + u.completion_tokens as f64 * p.output)
                / 1e6,
        ))
    }
}

/// Usage of one day (UTC) with one model.
#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema)]
pub struct DayUsage {
    pub date: NaiveDate,
    /// The model that answered ("" when not recorded, as for messages stored before usage
    /// tracking).
    pub model: String,
    #[serde(flatten)]
    pub usage: TokenUsage,
}

/// Usage of one conversation within the range, all models together.
#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema)]
pub struct ConversationUsage {
    pub conversation_id: Uuid,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    #[serde(flatten)]
    pub usage: TokenUsage,
}

/// `GET /api/{user_id}/usage`: one person's token usage (and cost) in a date range.
#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema)]
pub struct UsageReport {
    /// First day counted (UTC).
    pub from: NaiveDate,
    /// Last day counted (UTC), inclusive.
    pub to: NaiveDate,
    /// Everything in the range.
    pub total: TokenUsage,
    /// Per day and model, oldest first; days without model calls are left out.
    pub days: Vec<DayUsage>,
    /// Per conversation with model calls in the range, most tokens first (at most 100).
    pub conversations: Vec<ConversationUsage>,
}

/// Conversations listed in a report.
const MAX_CONVERSATIONS: usize = 100;

/// One grouped row: a day or a conversation (`key`), with one model's sums.
#[derive(Debug, sqlx::FromRow)]
struct Row {
    key: String,
    title: Option<String>,
    model: String,
    model_calls: i64,
    prompt_tokens: i64,
    cached_prompt_tokens: i64,
    completion_tokens: i64,
}

impl Row {
    fn usage(&self, prices: &Prices) -> TokenUsage {
        let n = |v: i64| u64::try_from(v).unwrap_or(0);
        TokenUsage {
            model_calls: n(self.model_calls),
            prompt_tokens: n(self.prompt_tokens),
            cached_prompt_tokens: n(self.cached_prompt_tokens),
            completion_tokens: n(self.completion_tokens),
            cost: None,
        }
        .priced(prices, &self.model)
    }
}

/// The sums per group; `$1` user, `$2`/`$3` the instant range, `$4` an optional conversation.
/// Only assistant messages with token counts are model calls.
fn grouped_sql(key: &str, title: &str) -> String {
    format!(
        "SELECT {key} AS key, {title} AS title, COALESCE(m.model, '') AS model, \
         COUNT(*) AS model_calls, \
         CAST(COALESCE(SUM(m.prompt_tokens), 0) AS BIGINT) AS prompt_tokens, \
         CAST(COALESCE(SUM(m.cached_prompt_tokens), 0) AS BIGINT) AS cached_prompt_tokens, \
         CAST(COALESCE(SUM(m.completion_tokens), 0) AS BIGINT) AS completion_tokens \
         FROM messages m JOIN conversations c ON c.id = m.conversation_id \
         WHERE c.user_id = $1 AND m.role = 'assistant' AND m.prompt_tokens IS NOT NULL \
           AND m.created_at >= $2 AND m.created_at < $3 AND ($4 IS NULL OR c.id = $4) \
         GROUP BY 1, 3 ORDER BY 1, 3"
    )
}

/// Runs the same grouped query on either database; only the day expression differs.
macro_rules! grouped {
    ($pool:expr, $day:literal, $user:expr, $from:expr, $to:expr, $conv:expr) => {{
        let days = sqlx::query_as::<_, Row>(sqlx::AssertSqlSafe(grouped_sql($day, "NULL")))
            .bind($user)
            .bind($from)
            .bind($to)
            .bind($conv.clone())
            .fetch_all($pool)
            .await?;
        let convs =
            sqlx::query_as::<_, Row>(sqlx::AssertSqlSafe(grouped_sql("c.id", "MAX(c.title)")))
                .bind($user)
                .bind($from)
                .bind($to)
                .bind($conv.clone())
                .fetch_all($pool)
                .await?;
        (days, convs)
    }};
}

/// One person's usage from `from` to `to` (UTC days, inclusive), optionally of one conversation.
pub async fn report(
    db: &Database,
    prices: &Prices,
    user: &str,
    from: NaiveDate,
    to: NaiveDate,
    conversation: Option<Uuid>,
) -> Result<UsageReport, sqlx::Error> {
    let start: DateTime<Utc> = from.and_time(chrono::NaiveTime::MIN).and_utc();
    let end: DateTime<Utc> = (to + chrono::Days::new(1))
        .and_time(chrono::NaiveTime::MIN)
        .and_utc();
    let conv = conversation.map(|c| c.to_string());
    let (days, convs) = match db {
        Database::Postgres(p) => grouped!(
            p,
            "to_char(m.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD')",
            user,
            start,
            end,
            conv
        ),
        // Timestamps are stored as UTC text that starts with the date.
        Database::Sqlite(p) => grouped!(p, "substr(m.created_at, 1, 10)", user, start, end, conv),
    };
    Ok(assemble(prices, from, to, &days, &convs))
}

fn assemble(
    prices: &Prices,
    from: NaiveDate,
    to: NaiveDate,
    days: &[Row],
    convs: &[Row],
) -> UsageReport {
    let mut total = TokenUsage::default();
    let days: Vec<DayUsage> = days
        .iter()
        .filter_map(|r| {
            let usage = r.usage(prices);
            total.add(&usage);
            Some(DayUsage {
                date: NaiveDate::parse_from_str(&r.key, "%Y-%m-%d").ok()?,
                model: r.model.clone(),
                usage,
            })
        })
        .collect();
    // A conversation may have used several models: one entry, summed, priced per model.
    let mut by_conv: BTreeMap<&str, ConversationUsage> = BTreeMap::new();
    for r in convs {
        let Ok(id) = Uuid::parse_str(&r.key) else {
            continue;
        };
        let entry = by_conv.entry(&r.key).or_insert_with(|| ConversationUsage {
            conversation_id: id,
            title: r.title.clone(),
            usage: TokenUsage::default(),
        });
        entry.usage.add(&r.usage(prices));
    }
    let mut conversations: Vec<ConversationUsage> = by_conv.into_values().collect();
    conversations
        .sort_by_key(|c| std::cmp::Reverse(c.usage.prompt_tokens + c.usage.completion_tokens));
    conversations.truncate(MAX_CONVERSATIONS);
    UsageReport {
        from,
        to,
        total,
        days,
        conversations,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prices_parse_with_optional_cached_price_and_colons_in_model_names() {
        let p = Prices::parse(" gpt-4o-mini=0.15:0.60:0.075 , qwen2.5:1.5b=0:0 ,").unwrap();
        assert_eq!(
            p.0["gpt-4o-mini"],
            Price {
                input: 0.15,
                output: 0.6,
                cached_input: 0.075
            }
        );
        assert_eq!(p.0["qwen2.5:1.5b"].cached_input, 0.0);
        assert!(Prices::parse("").unwrap().is_empty());
        let two = Prices::parse("m=1:2").unwrap();
        assert_eq!(two.0["m"].cached_input, 1.0, "cached defaults to input");
    }

    #[test]
    fn bad_prices_are_refused_naming_the_entry() {
        for (raw, needle) in [
            ("gpt", "gpt"),
            ("=1:2", "=1:2"),
            ("m=1", "m=1"),
            ("m=1:2:3:4", "m=1:2:3:4"),
            ("m=-1:2", "m=-1:2"),
            ("m=a:b", "m=a:b"),
            ("m=1:NaN", "m=1:NaN"),
            ("m=1:2,m=3:4", "twice"),
        ] {
            let e = Prices::parse(raw).unwrap_err();
            assert!(e.contains(needle), "{raw:?} → {e}");
        }
    }

    #[test]
    fn cost_splits_cached_and_uncached_prompt_tokens() {
        let p = Prices::parse("m=2:8:1").unwrap();
        let u = TokenUsage::call(1_000_000, 250_000, 500_000);
        // 750k × 2 + 250k × 1 + 500k × 8, per million.
        assert_eq!(p.cost("m", &u), Some(1.5 + 0.25 + 4.0));
        assert_eq!(p.cost("other", &u), None);
        // A provider reporting more cached than prompt tokens is clamped.
        assert_eq!(TokenUsage::call(10, 50, 0).cached_prompt_tokens, 10);
    }

    #[test]
    fn sums_keep_a_cost_only_while_every_part_has_one() {
        let p = Prices::parse("m=1:1").unwrap();
        let mut total = TokenUsage::default();
        total.add(&TokenUsage::call(1_000_000, 0, 0).priced(&p, "m"));
        total.add(&TokenUsage::call(1_000_000, 0, 0).priced(&p, "m"));
        assert_eq!(total.cost, Some(2.0));
        assert_eq!(total.model_calls, 2);
        // A command turn (no model call) changes nothing.
        total.add(&TokenUsage::default());
        assert_eq!(total.cost, Some(2.0));
        total.add(&TokenUsage::call(5, 0, 5).priced(&p, "unpriced"));
        assert_eq!(total.cost, None, "an unpriced model makes the sum unknown");
        assert_eq!(total.prompt_tokens, 2_000_005);
        assert_eq!(TokenUsage::default().priced(&p, "m").cost, None);
    }

    #[test]
    fn a_report_sums_days_and_folds_models_per_conversation() {
        let p = Prices::parse("a=1:1").unwrap();
        let row = |key: &str, model: &str, n: i64| Row {
            key: key.into(),
            title: Some("t".into()),
            model: model.into(),
            model_calls: 1,
            prompt_tokens: n,
            cached_prompt_tokens: 0,
            completion_tokens: n,
        };
        let c1 = Uuid::now_v7().to_string();
        let c2 = Uuid::now_v7().to_string();
        let day = NaiveDate::from_ymd_opt(2026, 12, 1).unwrap();
        let r = assemble(
            &p,
            day,
            day,
            &[row("2026-12-01", "a", 10), row("2026-12-01", "b", 5)],
            &[row(&c1, "a", 10), row(&c2, "a", 1), row(&c2, "b", 4)],
        );
        assert_eq!(r.days.len(), 2);
        assert_eq!(r.total.prompt_tokens, 15);
        assert_eq!(r.total.model_calls, 2);
        assert_eq!(r.total.cost, None, "model b has no price");
        assert_eq!(r.days[0].usage.cost, Some(0.00002));
        assert_eq!(r.conversations.len(), 2);
        assert_eq!(r.conversations[0].conversation_id.to_string(), c1);
        assert_eq!(r.conversations[1].usage.prompt_tokens, 5);
        assert_eq!(r.conversations[1].usage.model_calls, 2);
    }
}
