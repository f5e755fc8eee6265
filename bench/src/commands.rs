//! Command turns against todo-backend: `/add task <n>` runs add_task through the MCP tools
//! with no model call, so its throughput and cost sit next to the model turns' in the report.

use std::fmt::Write as _;
use std::sync::Arc;
use std::time::Duration;

use anyhow::bail;

use crate::clients::Backend;
use crate::point::{self, Env, PointReport};

/// A command turn calls no model.
const MODEL_CALLS_PER_TURN: u64 = 0;

/// Command turns per second, latency and per-turn cost at each concurrency, each worker its
/// own user and conversation (opened by an unmeasured first command).
pub async fn headline(
    env: &Env,
    backend: &Backend,
    run: &str,
    concurrency: &[usize],
    duration: Duration,
) -> anyhow::Result<Vec<PointReport>> {
    let mut out = Vec::new();
    for &c in concurrency {
        let users: Vec<String> = (0..c).map(|i| format!("{run}-cmd-c{c}-u{i}")).collect();
        let mut conversations = Vec::with_capacity(c);
        for u in &users {
            match backend.turn(u, None, "/add task 0").await {
                Ok(id) => conversations.push(id),
                Err(e) => bail!("opening a conversation with a command failed: {e}"),
            }
        }
        let (users, conversations) = (Arc::new(users), Arc::new(conversations));
        let b = backend.clone();
        // Bounded by time; the count only stops a runaway.
        let max = 20_000 * duration.as_secs().max(1);
        out.push(
            point::measure(
                env,
                &format!("{c} concurrent users, commands"),
                c,
                duration,
                max,
                MODEL_CALLS_PER_TURN,
                Duration::ZERO,
                move |w, i| {
                    let (b, users, conversations) =
                        (b.clone(), users.clone(), conversations.clone());
                    async move {
                        b.turn(
                            &users[w],
                            Some(&conversations[w]),
                            &format!("/add task {}", i + 1),
                        )
                        .await
                        .map(drop)
                    }
                },
            )
            .await?,
        );
    }
    Ok(out)
}

/// Command turns next to model turns, concurrency by concurrency.
pub fn render(md: &mut String, commands: &[PointReport], model: &[PointReport]) {
    let _ = writeln!(
        md,
        "\n### Command turns next to model turns\n\n\
         A command turn is `/add task <n>`: the same add_task call through the same MCP tool session, \
         stored as the same four messages, with no model call. A model turn is the `add task <n>` \
         turn above (two mock model calls).\n\n\
         | users | command turns/s | p50 | p99 | DB statements/turn | CPU ms/turn: service | postgres | model turns/s | p50 | p99 |\n\
         |---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    );
    for c in commands {
        let m = model.iter().find(|m| m.concurrency == c.concurrency);
        let _ = writeln!(
            md,
            "| {} | {:.1} | {:.2} ms | {:.2} ms | {:.1} | {:.2} | {:.2} | {} | {} | {} |",
            c.concurrency,
            c.per_second,
            c.latency.p50_ms,
            c.latency.p99_ms,
            c.db_statements_per_op,
            c.cpu_ms_per_op_target,
            c.cpu_ms_per_op_postgres,
            m.map_or("–".into(), |m| format!("{:.1}", m.per_second)),
            m.map_or("–".into(), |m| format!("{:.1} ms", m.latency.p50_ms)),
            m.map_or("–".into(), |m| format!("{:.1} ms", m.latency.p99_ms)),
        );
    }
    if let Some(bad) = commands.iter().find(|c| c.error_count > 0) {
        let _ = writeln!(md, "\nErrors at {} users: {}.", bad.concurrency, bad.errors);
    }
}
