//! `todo-bench`: the load driver behind docs/BENCHMARKS.md. scripts/bench.sh starts
//! PostgreSQL (with pg_stat_statements), mock-llm, todo-backend and todo-mcp, then runs
//! `todo-bench backend …` and `todo-bench mcp …`, which append Markdown to a report file.
//!
//! Every load point is bounded in time and in request count, and talks to 127.0.0.1 only.

mod chat;
mod clients;
mod commands;
mod db;
mod load;
mod mcp;
mod point;
mod procfs;
mod stream;

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::{Args, Parser, Subcommand};

use crate::clients::{Backend, McpHttp, Mock};
use crate::point::{Env, PointReport};

#[derive(Parser)]
#[command(
    name = "todo-bench",
    about = "Load driver for todo-backend and todo-mcp"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Args, Clone)]
struct Common {
    /// PostgreSQL URL (superuser: pg_stat_statements is reset between points).
    #[arg(long)]
    database_url: String,
    /// PID of the postmaster (its children's CPU is PostgreSQL's).
    #[arg(long)]
    pg_pid: u32,
    /// PostgreSQL's port on 127.0.0.1.
    #[arg(long)]
    pg_port: u16,
    /// Markdown report, appended to.
    #[arg(long)]
    report: PathBuf,
    /// Raw figures as JSON lines, appended to.
    #[arg(long)]
    json: PathBuf,
    /// Prefix of the user ids this run creates.
    #[arg(long, default_value = "bench")]
    run_id: String,
    /// Concurrency levels.
    #[arg(long, value_delimiter = ',', default_value = "1,16,64")]
    concurrency: Vec<usize>,
    /// Seconds per load point.
    #[arg(long, default_value_t = 15)]
    duration_secs: u64,
}

#[derive(Subcommand)]
enum Command {
    /// Chat turns against todo-backend: throughput, scripted conversation, scaling.
    Backend {
        #[command(flatten)]
        common: Common,
        #[arg(long)]
        backend_url: String,
        #[arg(long)]
        backend_pid: u32,
        #[arg(long)]
        mock_url: String,
        #[arg(long)]
        mock_pid: u32,
        /// The mock's --latency-ms.
        #[arg(long, default_value_t = 50)]
        llm_latency_ms: u64,
        /// Turns of the scripted conversation.
        #[arg(long, default_value_t = 20)]
        scripted_turns: usize,
        /// Seconds per scaling point.
        #[arg(long, default_value_t = 10)]
        scaling_secs: u64,
        /// Concurrent users of the scaling points.
        #[arg(long, default_value_t = 16)]
        scaling_users: usize,
        #[arg(long, value_delimiter = ',', default_value = "10,1000,10000")]
        history_lengths: Vec<u64>,
        #[arg(long, value_delimiter = ',', default_value = "10,1000,10000")]
        task_counts: Vec<u64>,
        /// Other users seeded for the "~1M rows" point (each: 100 tasks, 100 messages); 0 skips it.
        #[arg(long, default_value_t = 5000)]
        background_users: u64,
        /// Another todo-backend, started with different settings, measured at the highest
        /// concurrency next to this one: `NAME@URL@PID` (repeatable).
        #[arg(long = "variant")]
        variants: Vec<String>,
    },
    /// todo-mcp alone: stateless tools/call over HTTP.
    Mcp {
        #[command(flatten)]
        common: Common,
        /// The /mcp endpoint.
        #[arg(long)]
        mcp_url: String,
        #[arg(long)]
        mcp_pid: u32,
        /// AUTH_JWT_SECRET of the server (each client then acts as its own user).
        #[arg(long, env = "BENCH_JWT_SECRET")]
        jwt_secret: Option<String>,
    },
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    match run(Cli::parse()).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("todo-bench: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

struct Output {
    md: String,
    json: Vec<serde_json::Value>,
}

impl Output {
    fn save(&self, c: &Common) -> anyhow::Result<()> {
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&c.report)
            .with_context(|| format!("cannot write {}", c.report.display()))?;
        f.write_all(self.md.as_bytes())?;
        let mut j = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&c.json)?;
        for v in &self.json {
            writeln!(j, "{v}")?;
        }
        Ok(())
    }
}

fn mb(v: Option<f64>) -> String {
    v.map_or("?".into(), |v| format!("{v:.1} MB"))
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Backend {
            common,
            backend_url,
            backend_pid,
            mock_url,
            mock_pid,
            llm_latency_ms,
            scripted_turns,
            scaling_secs,
            scaling_users,
            history_lengths,
            task_counts,
            background_users,
            variants,
        } => {
            let max_c = common.concurrency.iter().copied().max().unwrap_or(1);
            let http = clients::http_client(max_c.max(scaling_users) + 8)?;
            let backend = Backend {
                http: http.clone(),
                base: backend_url.trim_end_matches('/').to_string(),
            };
            let mock = Mock {
                http,
                base: mock_url.trim_end_matches('/').to_string(),
            };
            let env = Env {
                target_pid: backend_pid,
                backend: Some(backend.clone()),
                mock: Some(mock.clone()),
                mock_pid: Some(mock_pid),
                db: db::connect(&common.database_url).await?,
                pg_pid: common.pg_pid,
                pg_port: common.pg_port,
                ticks_per_second: procfs::ticks_per_second(),
            };
            let latency = Duration::from_millis(llm_latency_ms);
            let idle_start = procfs::rss_mb(backend_pid);
            let mut out = Output {
                md: String::new(),
                json: Vec::new(),
            };

            // Calibration on the idle machine: a PostgreSQL round trip, a direct mock call.
            let rt = load::Summary::of(&db::round_trip_us(&common.database_url, 2000).await?, 0);
            let mock_direct = load::Summary::of(&mock.direct_calls_us(20).await?, 0);
            let _ = writeln!(
                out.md,
                "### Calibration (idle machine, before the load)\n\n\
                 - One PostgreSQL round trip (`SELECT 1`, prepared, dedicated connection, 2,000 in a row): \
                 p50 {:.3} ms, p99 {:.3} ms, mean {:.3} ms.\n\
                 - One mock-llm chat completion called directly (20 in a row, --latency-ms {llm_latency_ms}): \
                 p50 {:.2} ms, p99 {:.2} ms, mean {:.2} ms.\n",
                rt.p50_ms,
                rt.p99_ms,
                rt.mean_ms,
                mock_direct.p50_ms,
                mock_direct.p99_ms,
                mock_direct.mean_ms
            );
            out.json.push(serde_json::json!({"kind": "calibration", "pg_round_trip": rt, "mock_direct": mock_direct}));

            eprintln!("todo-bench: warm-up (not reported)");
            chat::headline(
                &env,
                &backend,
                &format!("{}-warmup", common.run_id),
                &[8],
                Duration::from_secs(3),
                latency,
            )
            .await?;

            let duration = Duration::from_secs(common.duration_secs);
            let points = chat::headline(
                &env,
                &backend,
                &common.run_id,
                &common.concurrency,
                duration,
                latency,
            )
            .await?;
            tokio::time::sleep(Duration::from_secs(2)).await;
            let idle_after = procfs::rss_mb(backend_pid);
            let peak = procfs::hwm_mb(backend_pid);
            render_chat(&mut out, &points, llm_latency_ms);
            eprintln!("todo-bench: command turns (no model call)");
            let command_points = commands::headline(
                &env,
                &backend,
                &common.run_id,
                &common.concurrency,
                duration,
            )
            .await?;
            commands::render(&mut out.md, &command_points, &points);
            out.json
                .push(serde_json::json!({"kind": "commands", "points": command_points}));
            render_statements(&mut out, &points);
            let _ = writeln!(
                out.md,
                "\n### todo-backend memory\n\n| idle after start-up | peak (VmHWM) after the points above | idle 2 s after the load |\n|---|---|---|\n| {} | {} | {} |\n",
                mb(idle_start),
                mb(peak),
                mb(idle_after)
            );
            out.json.push(serde_json::json!({"kind": "chat", "points": points,
                "rss": {"idle_start_mb": idle_start, "peak_mb": peak, "idle_after_mb": idle_after}}));

            if !variants.is_empty() {
                let rows = run_variants(
                    &env,
                    &backend,
                    &variants,
                    &common.run_id,
                    max_c,
                    duration,
                    latency,
                    idle_start,
                )
                .await?;
                render_variants(&mut out, &rows, max_c);
                out.json
                    .push(serde_json::json!({"kind": "variants", "rows": rows}));
            }

            eprintln!("todo-bench: scripted {scripted_turns}-turn conversation");
            let scripted = chat::scripted(&backend, &mock, &common.run_id, scripted_turns).await?;
            render_scripted(&mut out, &scripted);
            out.json
                .push(serde_json::json!({"kind": "scripted", "turns": scripted}));

            eprintln!("todo-bench: streamed turns (time to first event)");
            let streamed =
                stream::measure(&backend, &common.run_id, scripted_turns.max(20)).await?;
            stream::render(&mut out.md, &streamed, llm_latency_ms);
            out.json
                .push(serde_json::json!({"kind": "streamed", "result": streamed}));

            eprintln!("todo-bench: scaling");
            let scaling = chat::scaling(
                &env,
                &backend,
                &common.run_id,
                scaling_users,
                &history_lengths,
                &task_counts,
                background_users,
                Duration::from_secs(scaling_secs),
                latency,
            )
            .await?;
            render_scaling(&mut out, &scaling, scaling_users);
            let final_peak = procfs::hwm_mb(backend_pid);
            let final_idle = procfs::rss_mb(backend_pid);
            let _ = writeln!(
                out.md,
                "\ntodo-backend after the scaling runs: peak (VmHWM) {}, RSS now {}.\n",
                mb(final_peak),
                mb(final_idle)
            );
            out.json
                .push(serde_json::json!({"kind": "scaling", "scaling": scaling,
                "rss": {"peak_mb": final_peak, "now_mb": final_idle}}));
            out.save(&common)?;
        }
        Command::Mcp {
            common,
            mcp_url,
            mcp_pid,
            jwt_secret,
        } => {
            let max_c = common.concurrency.iter().copied().max().unwrap_or(1);
            let mcp = McpHttp {
                http: clients::http_client(max_c + 8)?,
                url: mcp_url,
            };
            let env = Env {
                target_pid: mcp_pid,
                backend: None,
                mock: None,
                mock_pid: None,
                db: db::connect(&common.database_url).await?,
                pg_pid: common.pg_pid,
                pg_port: common.pg_port,
                ticks_per_second: procfs::ticks_per_second(),
            };
            let idle_start = procfs::rss_mb(mcp_pid);
            let secret = jwt_secret.as_deref();
            let probe_token = secret
                .map(|s| mcp::token(s, &format!("{}-mcp-probe", common.run_id)))
                .transpose()?;
            mcp::probe(&mcp, probe_token.as_deref()).await?;
            let (tool_count, tool_chars) =
                mcp::tool_definitions(&mcp, probe_token.as_deref()).await?;
            eprintln!("todo-bench: MCP warm-up (not reported)");
            mcp::points(
                &env,
                &mcp,
                secret,
                &format!("{}-warmup", common.run_id),
                &[8],
                Duration::from_secs(2),
                false,
            )
            .await?;
            let duration = Duration::from_secs(common.duration_secs);
            let mut points = mcp::points(
                &env,
                &mcp,
                secret,
                &common.run_id,
                &common.concurrency,
                duration,
                false,
            )
            .await?;
            if secret.is_some() {
                points.extend(
                    mcp::points(&env, &mcp, secret, &common.run_id, &[max_c], duration, true)
                        .await?,
                );
            }
            tokio::time::sleep(Duration::from_secs(2)).await;
            let idle_after = procfs::rss_mb(mcp_pid);
            let peak = procfs::hwm_mb(mcp_pid);
            let mut out = Output {
                md: String::new(),
                json: Vec::new(),
            };
            render_mcp(&mut out, &points);
            let _ = writeln!(
                out.md,
                "\nA bare `tools/call` without `initialize` is answered (stateless mode). tools/list: {tool_count} tools \
                 whose function definitions, as sent to the model with every call, are {tool_chars} characters \
                 (≈ {} tokens at 4 characters a token; the mock's prompt-token count leaves them out, real providers bill them).\n",
                tool_chars / 4
            );
            render_statements(&mut out, &points[..1.min(points.len())]);
            let _ = writeln!(
                out.md,
                "\n### todo-mcp memory\n\n| idle after start-up | peak (VmHWM) | idle 2 s after the load |\n|---|---|---|\n| {} | {} | {} |\n",
                mb(idle_start),
                mb(peak),
                mb(idle_after)
            );
            out.json.push(serde_json::json!({"kind": "mcp", "points": points,
                "rss": {"idle_start_mb": idle_start, "peak_mb": peak, "idle_after_mb": idle_after}}));
            out.save(&common)?;
            if points.iter().any(|p| p.ok == 0) {
                bail!("a point completed no request");
            }
        }
    }
    Ok(())
}

/// A backend variant's point and memory.
#[derive(serde::Serialize)]
struct VariantRow {
    name: String,
    point: PointReport,
    idle_start_mb: Option<f64>,
    peak_mb: Option<f64>,
    idle_after_mb: Option<f64>,
}

/// Each variant at `c` users (after the same warm-up as the baseline), then the baseline
/// again, so the comparison is made minutes apart rather than across runs.
#[allow(clippy::too_many_arguments)]
async fn run_variants(
    env: &Env,
    baseline: &Backend,
    variants: &[String],
    run: &str,
    c: usize,
    duration: Duration,
    latency: Duration,
    baseline_idle: Option<f64>,
) -> anyhow::Result<Vec<VariantRow>> {
    let mut rows = Vec::new();
    for v in variants {
        let parts: Vec<&str> = v.splitn(3, '@').collect();
        let [name, url, pid] = parts[..] else {
            bail!("--variant {v:?}: expected NAME@URL@PID");
        };
        let pid: u32 = pid
            .parse()
            .with_context(|| format!("--variant {v:?}: bad PID"))?;
        let b = Backend {
            http: baseline.http.clone(),
            base: url.trim_end_matches('/').to_string(),
        };
        let venv = Env {
            target_pid: pid,
            backend: Some(b.clone()),
            ..env.clone()
        };
        let idle_start_mb = procfs::rss_mb(pid);
        eprintln!("todo-bench: variant {name}: warm-up (not reported)");
        chat::headline(
            &venv,
            &b,
            &format!("{run}-{name}-warmup"),
            &[8],
            Duration::from_secs(3),
            latency,
        )
        .await?;
        let mut p =
            chat::headline(&venv, &b, &format!("{run}-{name}"), &[c], duration, latency).await?;
        tokio::time::sleep(Duration::from_secs(2)).await;
        rows.push(VariantRow {
            name: name.to_string(),
            point: p.remove(0),
            idle_start_mb,
            peak_mb: procfs::hwm_mb(pid),
            idle_after_mb: procfs::rss_mb(pid),
        });
    }
    let mut p = chat::headline(
        env,
        baseline,
        &format!("{run}-again"),
        &[c],
        duration,
        latency,
    )
    .await?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    rows.push(VariantRow {
        name: "baseline (again, after the variants)".into(),
        point: p.remove(0),
        idle_start_mb: baseline_idle,
        peak_mb: procfs::hwm_mb(env.target_pid),
        idle_after_mb: procfs::rss_mb(env.target_pid),
    });
    Ok(rows)
}

fn render_variants(out: &mut Output, rows: &[VariantRow], c: usize) {
    let md = &mut out.md;
    let _ = writeln!(
        md,
        "\n### Backend variants at {c} concurrent users (separate todo-backend processes, same database and mock)\n\n\
         | variant | turns/s | overhead p50 | overhead p99 | service time (mean) | DB round trips/turn | CPU ms/turn backend | CPU ms/turn postgres | CPU busy | RSS idle at start | RSS peak | RSS idle after |\n\
         |---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    );
    for r in rows {
        let p = &r.point;
        let _ = writeln!(
            md,
            "| {} | {:.1} | {:.2} ms | {:.2} ms | {} ms | {} | {:.2} | {:.2} | {:.0}% | {} | {} | {} |",
            r.name,
            p.per_second,
            p.overhead.p50_ms,
            p.overhead.p99_ms,
            opt(
                p.llm_call_mean_ms
                    .map(|l| p.latency.mean_ms - l * chat::MODEL_CALLS_PER_TURN as f64),
                2
            ),
            opt(p.db_round_trips_per_op, 1),
            p.cpu_ms_per_op_target,
            p.cpu_ms_per_op_postgres,
            p.cpu_busy * 100.0,
            mb(r.idle_start_mb),
            mb(r.peak_mb),
            mb(r.idle_after_mb),
        );
    }
}

fn opt(v: Option<f64>, digits: usize) -> String {
    v.map_or("–".into(), |v| format!("{v:.digits$}"))
}

fn render_chat(out: &mut Output, points: &[PointReport], latency_ms: u64) {
    let md = &mut out.md;
    let _ = writeln!(
        md,
        "### Chat turns (`add task <n>`: 2 model calls + 1 add_task call each; mock latency {latency_ms} ms per call)\n\n\
         Overhead = turn latency − 2 × {latency_ms} ms. \"LLM call (backend)\" is the mean model-call time the backend \
         itself measured (its `llm_request_duration_seconds`), i.e. the mock's delay plus HTTP and JSON on both sides.\n\n\
         \"Service time\" is the mean turn latency minus 2 × that measured call time: the backend's own share.\n\n\
         | users | turns | errors | turns/s | p50 | p99 | overhead p50 | overhead p99 | overhead max | LLM call (backend) | service time (mean) |\n\
         |---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|"
    );
    for p in points {
        let _ = writeln!(
            md,
            "| {} | {} | {} | {:.1} | {:.1} ms | {:.1} ms | {:.2} ms | {:.2} ms | {:.1} ms | {} ms | {} ms |",
            p.concurrency,
            p.ok,
            p.errors,
            p.per_second,
            p.latency.p50_ms,
            p.latency.p99_ms,
            p.overhead.p50_ms,
            p.overhead.p99_ms,
            p.overhead.max_ms,
            opt(p.llm_call_mean_ms, 1),
            opt(
                p.llm_call_mean_ms
                    .map(|l| p.latency.mean_ms - l * chat::MODEL_CALLS_PER_TURN as f64),
                2
            ),
        );
    }
    render_costs(md, points, "turn");
}

fn render_costs(md: &mut String, points: &[PointReport], op: &str) {
    let _ = writeln!(
        md,
        "\nCost per {op} (CPU from /proc, all processes on the same 2 cores; DB from pg_stat_statements):\n\n\
         | concurrency | DB statements/{op} | DB round trips/{op} | DB transactions/{op} | DB exec ms/{op} | model calls/{op} | prompt tokens/{op} | CPU ms/{op}: service | postgres | mock | driver | CPU busy | service RSS peak |\n\
         |---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    );
    for p in points {
        let _ = writeln!(
            md,
            "| {} | {:.1} | {} | {:.1} | {:.2} | {} | {} | {:.2} | {:.2} | {} | {:.2} | {:.0}% | {:.1} MB |",
            p.concurrency,
            p.db_statements_per_op,
            opt(p.db_round_trips_per_op, 1),
            p.db_transactions_per_op,
            p.db_exec_ms_per_op,
            opt(p.llm_calls_per_op, 2),
            opt(p.prompt_tokens_per_op, 0),
            p.cpu_ms_per_op_target,
            p.cpu_ms_per_op_postgres,
            opt(p.cpu_ms_per_op_mock, 2),
            p.cpu_ms_per_op_driver,
            p.cpu_busy * 100.0,
            p.rss_peak_mb,
        );
    }
    let rejected: f64 = points.iter().filter_map(|p| p.mock_rejected).sum();
    if rejected > 0.0 {
        let _ = writeln!(
            md,
            "\n**The mock model rejected {rejected} requests as malformed** (see its log).\n"
        );
    }
}

/// Per-statement calls per operation at the first point (the same at every point).
fn render_statements(out: &mut Output, points: &[PointReport]) {
    let Some(p) = points.first() else { return };
    let ops = (p.ok as f64).max(1.0);
    let _ = writeln!(
        out.md,
        "\n<details><summary>Statements per operation ({}; pg_stat_statements)</summary>\n\n| calls/op | mean ms | statement |\n|---:|---:|---|",
        p.label
    );
    for (calls, mean, q) in &p.statements.top {
        let q: String = q.chars().take(160).collect();
        let _ = writeln!(
            out.md,
            "| {:.2} | {:.3} | `{}` |",
            calls / ops,
            mean,
            q.replace('|', "\\|")
        );
    }
    let _ = writeln!(out.md, "\n</details>\n");
}

fn render_scripted(out: &mut Output, turns: &[chat::ScriptedTurn]) {
    let md = &mut out.md;
    let _ = writeln!(
        md,
        "\n### Prompt tokens per turn, scripted {}-turn conversation (`add task 1` … one user, one conversation)\n\n\
         Tokens as the mock counts them (characters of the messages / 4; tool schemas not counted); \
         \"stored\" is the usage the backend saved with each assistant message (call 1 + call 2).\n\n\
         | turn | model calls | prompt tokens (mock) | stored usage per call | latency |\n|---:|---:|---:|---|---:|",
        turns.len()
    );
    for t in turns {
        let stored = t
            .prompt_tokens_stored
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(" + ");
        let _ = writeln!(
            md,
            "| {} | {:.0} | {:.0} | {} | {:.1} ms |",
            t.turn, t.model_calls, t.prompt_tokens_mock, stored, t.latency_ms
        );
    }
}

fn scaling_row(md: &mut String, x: &str, p: &PointReport) {
    let slowest = p
        .statements
        .top
        .iter()
        .max_by(|a, b| (a.0 * a.1).total_cmp(&(b.0 * b.1)))
        .map(|(c, m, q)| {
            format!(
                "{:.3} ms × {:.1}/turn: `{}`",
                m,
                c / (p.ok as f64).max(1.0),
                q.chars().take(90).collect::<String>().replace('|', "\\|")
            )
        })
        .unwrap_or_default();
    let _ = writeln!(
        md,
        "| {x} | {} | {} | {:.1} | {:.2} ms | {:.2} ms | {} | {:.1} | {} | {:.2} ms | {:.2} | {:.2} | {slowest} |",
        p.ok,
        p.errors,
        p.per_second,
        p.overhead.p50_ms,
        p.overhead.p99_ms,
        opt(p.prompt_tokens_per_op, 0),
        p.db_statements_per_op,
        opt(p.db_round_trips_per_op, 1),
        p.db_exec_ms_per_op,
        p.cpu_ms_per_op_target,
        p.cpu_ms_per_op_postgres,
    );
}

const SCALING_HEADER: &str = "| turns | errors | turns/s | overhead p50 | overhead p99 | prompt tokens/turn | DB statements/turn | DB round trips/turn | DB exec/turn | CPU ms/turn backend | CPU ms/turn postgres | largest DB time share (mean × calls/turn) |";
const SCALING_RULE: &str = "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|";

fn render_scaling(out: &mut Output, s: &chat::Scaling, users: usize) {
    let md = &mut out.md;
    let _ = writeln!(
        md,
        "\n### Scaling with stored data ({users} concurrent users, each continuing its own seeded conversation)\n\n\
         #### Conversation length (each user also has {} open tasks, above the prompt's cap of 20)\n\n\
         | stored messages {}\n|---:{}",
        chat::TASKS_FOR_HISTORY_POINTS,
        SCALING_HEADER,
        SCALING_RULE
    );
    for (n, p) in &s.history {
        scaling_row(md, &n.to_string(), p);
    }
    let _ = writeln!(
        md,
        "\n#### Open tasks of the user (conversation of {} stored messages)\n\n| open tasks {}\n|---:{}",
        s.history.first().map_or(10, |h| h.0),
        SCALING_HEADER,
        SCALING_RULE
    );
    for (n, p) in &s.tasks {
        scaling_row(md, &n.to_string(), p);
    }
    if let Some((counts, p)) = &s.background {
        let total: i64 = counts.iter().map(|c| c.1).sum();
        let _ = writeln!(
            md,
            "\n#### With other users' data (~1M rows; seeded in {:.0} s)\n\nRow counts: {} (total {total}).\n\n| point {}\n|---{}",
            s.background_seed_seconds,
            counts
                .iter()
                .map(|(t, n)| format!("{t} {n}"))
                .collect::<Vec<_>>()
                .join(", "),
            SCALING_HEADER,
            SCALING_RULE
        );
        if let Some((n, base)) = s.history.first() {
            scaling_row(md, &format!("before ({n} msgs, 25 tasks)"), base);
        }
        scaling_row(md, "after (same shape, new users)", p);
    }
    for (what, plan) in &s.plans {
        let _ = writeln!(
            md,
            "\n<details><summary>Open-task query plan: {what}</summary>\n\n```\n{}```\n\n</details>",
            plan
        );
    }
}

fn render_mcp(out: &mut Output, points: &[PointReport]) {
    let md = &mut out.md;
    let _ = writeln!(
        md,
        "\n### todo-mcp alone: `tools/call` add_task over stateless streamable HTTP\n\n\
         | clients | calls | errors | calls/s | p50 | p90 | p99 | max |\n|---|---:|---|---:|---:|---:|---:|---:|"
    );
    for p in points {
        let _ = writeln!(
            md,
            "| {} | {} | {} | {:.1} | {:.2} ms | {:.2} ms | {:.2} ms | {:.1} ms |",
            p.label,
            p.ok,
            p.errors,
            p.per_second,
            p.latency.p50_ms,
            p.latency.p90_ms,
            p.latency.p99_ms,
            p.latency.max_ms
        );
    }
    render_costs(md, points, "call");
}
