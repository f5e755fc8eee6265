//! One measured load point: counters read before and after a closed-loop run, turned into
//! per-operation figures.

use std::time::Duration;

use sqlx::PgPool;

use crate::clients::{Backend, Mock};
use crate::db::{self, StatementStats};
use crate::load::{LoadResult, Summary};
use crate::procfs::{self, RssSampler};

/// What a point measures against.
#[derive(Clone)]
pub struct Env {
    /// The process under test (todo-backend or todo-mcp).
    pub target_pid: u32,
    /// The backend, when it is the target (for its LLM-latency histogram).
    pub backend: Option<Backend>,
    pub mock: Option<Mock>,
    pub mock_pid: Option<u32>,
    pub db: PgPool,
    /// The postmaster; its children are the connections' backends.
    pub pg_pid: u32,
    /// PostgreSQL's port on 127.0.0.1 (for the target's socket counters).
    pub pg_port: u16,
    pub ticks_per_second: f64,
}

struct Before {
    cpu_target: u64,
    cpu_pg: u64,
    cpu_mock: u64,
    cpu_self: u64,
    llm: (f64, f64),
    segments: Option<(u64, u64)>,
    rss: RssSampler,
}

/// A load point's figures.
#[derive(Debug, Clone, serde::Serialize)]
pub struct PointReport {
    pub label: String,
    pub concurrency: usize,
    pub ok: u64,
    pub errors: String,
    pub error_count: u64,
    pub seconds: f64,
    pub per_second: f64,
    /// End-to-end latency as the client saw it.
    pub latency: Summary,
    /// Latency minus the mock model's configured delay for each of its calls.
    pub overhead: Summary,
    /// Mean duration of one model call as the backend measured it (its metrics), ms.
    pub llm_call_mean_ms: Option<f64>,
    pub llm_calls_per_op: Option<f64>,
    /// Requests the mock model refused as malformed (an invalid history, for instance).
    pub mock_rejected: Option<f64>,
    pub db_statements_per_op: f64,
    /// Requests the service wrote to PostgreSQL per op (TCP data segments): round trips.
    pub db_round_trips_per_op: Option<f64>,
    pub db_transactions_per_op: f64,
    pub db_exec_ms_per_op: f64,
    pub prompt_tokens_per_op: Option<f64>,
    pub cpu_ms_per_op_target: f64,
    pub cpu_ms_per_op_postgres: f64,
    pub cpu_ms_per_op_mock: Option<f64>,
    pub cpu_ms_per_op_driver: f64,
    /// Share of the machine's CPUs busy over the point (all four parties), 0..=1.
    pub cpu_busy: f64,
    pub rss_peak_mb: f64,
    pub statements: StatementStats,
}

async fn begin(env: &Env) -> anyhow::Result<Before> {
    if let Some(m) = &env.mock {
        m.reset().await?;
    }
    db::reset(&env.db).await?;
    let llm = match &env.backend {
        Some(b) => b.histogram("llm_request_duration_seconds").await?,
        None => (0.0, 0.0),
    };
    Ok(Before {
        cpu_target: procfs::cpu_ticks(env.target_pid, false),
        cpu_pg: procfs::cpu_ticks(env.pg_pid, true),
        cpu_mock: env.mock_pid.map_or(0, |p| procfs::cpu_ticks(p, false)),
        cpu_self: procfs::cpu_ticks(std::process::id(), false),
        llm,
        segments: procfs::tcp_data_segments(env.target_pid, env.pg_port),
        rss: RssSampler::start(env.target_pid),
    })
}

async fn end(
    env: &Env,
    b: Before,
    label: &str,
    concurrency: usize,
    r: LoadResult,
    model_calls_per_op: u64,
    model_latency: Duration,
) -> anyhow::Result<PointReport> {
    let rss_peak_mb = b.rss.finish().await;
    let segments = procfs::tcp_data_segments(env.target_pid, env.pg_port);
    let ticks = |now: u64, then: u64| now.saturating_sub(then) as f64;
    let cpu_target = ticks(procfs::cpu_ticks(env.target_pid, false), b.cpu_target);
    let cpu_pg = ticks(procfs::cpu_ticks(env.pg_pid, true), b.cpu_pg);
    let cpu_mock = env
        .mock_pid
        .map(|p| ticks(procfs::cpu_ticks(p, false), b.cpu_mock));
    let cpu_self = ticks(procfs::cpu_ticks(std::process::id(), false), b.cpu_self);
    let statements = db::stats(&env.db).await?;
    let mock = match &env.mock {
        Some(m) => Some(m.stats().await?),
        None => None,
    };
    let llm = match &env.backend {
        Some(bk) => {
            let (s, c) = bk.histogram("llm_request_duration_seconds").await?;
            let (ds, dc) = (s - b.llm.0, c - b.llm.1);
            (dc > 0.0).then(|| ds / dc * 1000.0)
        }
        None => None,
    };
    let ops = (r.ok as f64).max(1.0);
    let ms_per_tick = 1000.0 / env.ticks_per_second;
    let per_op = |t: f64| t * ms_per_tick / ops;
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
    let busy = (cpu_target + cpu_pg + cpu_mock.unwrap_or(0.0) + cpu_self) * ms_per_tick
        / (r.elapsed.as_secs_f64() * 1000.0 * cores);
    let subtract = model_latency.as_micros() as u64 * model_calls_per_op;
    Ok(PointReport {
        label: label.to_string(),
        concurrency,
        ok: r.ok,
        errors: r.errors_text(),
        error_count: r.error_count(),
        seconds: r.elapsed.as_secs_f64(),
        per_second: r.per_second(),
        latency: r.summary(0),
        overhead: r.summary(subtract),
        llm_call_mean_ms: llm,
        llm_calls_per_op: mock.map(|m| m.requests / ops),
        mock_rejected: mock.map(|m| m.rejected),
        // Failed operations did database work too; per successful op is what is asked for.
        db_statements_per_op: statements.calls / ops,
        db_round_trips_per_op: match (b.segments, segments) {
            (Some(s0), Some(s1)) if s1.0 >= s0.0 => Some((s1.0 - s0.0) as f64 / ops),
            _ => None,
        },
        db_transactions_per_op: statements.begins / ops,
        db_exec_ms_per_op: statements.exec_ms / ops,
        prompt_tokens_per_op: mock.map(|m| m.prompt_tokens / ops),
        cpu_ms_per_op_target: per_op(cpu_target),
        cpu_ms_per_op_postgres: per_op(cpu_pg),
        cpu_ms_per_op_mock: cpu_mock.map(per_op),
        cpu_ms_per_op_driver: per_op(cpu_self),
        cpu_busy: busy,
        rss_peak_mb,
        statements,
    })
}

/// Measures one closed-loop point.
#[allow(clippy::too_many_arguments)]
pub async fn measure<F, Fut>(
    env: &Env,
    label: &str,
    concurrency: usize,
    duration: Duration,
    max_ops: u64,
    model_calls_per_op: u64,
    model_latency: Duration,
    op: F,
) -> anyhow::Result<PointReport>
where
    F: Fn(usize, u64) -> Fut + Clone + Send + Sync + 'static,
    Fut: std::future::Future<Output = Result<(), String>> + Send + 'static,
{
    let b = begin(env).await?;
    let r = crate::load::closed_loop(concurrency, duration, max_ops, op).await;
    let p = end(
        env,
        b,
        label,
        concurrency,
        r,
        model_calls_per_op,
        model_latency,
    )
    .await?;
    eprintln!(
        "todo-bench: {label}: {} ok, {} errors, {:.1}/s, p50 {:.2} ms, p99 {:.2} ms (overhead p99 {:.2} ms)",
        p.ok, p.error_count, p.per_second, p.latency.p50_ms, p.latency.p99_ms, p.overhead.p99_ms
    );
    Ok(p)
}
