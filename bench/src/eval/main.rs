//! `todo-eval`: runs everyday requests through a real todo-backend and a real model, and
//! judges each by the task list it leaves behind (see docs/EVALS.md; scripts/eval.sh).
//!
//! A recording proxy sits between the backend and the model endpoint and counts, per turn,
//! model calls, prompt tokens sent and processed, completion tokens and time. It is a
//! measurement, not a test: a run takes minutes of CPU with a local model.

mod cases;
mod proxy;
mod report;
mod seed;

use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use chrono::Utc;
use chrono_tz::Tz;
use clap::Parser;
use serde_json::{Value, json};

use crate::cases::{Suite, TaskView};
use crate::report::TurnRecord;

#[derive(Parser)]
#[command(
    name = "todo-eval",
    about = "Outcome-judged evaluation of the agent against a real model"
)]
struct Cli {
    /// The case file.
    #[arg(long, default_value = "bench/evals/cases.json")]
    cases: PathBuf,
    /// The todo-backend binary under test.
    #[arg(long, default_value = "target/debug/todo-backend")]
    backend_bin: PathBuf,
    /// The todo-mcp binary (seeds each person's tasks).
    #[arg(long, default_value = "target/debug/todo-mcp")]
    mcp_bin: PathBuf,
    /// OpenAI-compatible base URL of the model.
    #[arg(
        long,
        env = "EVAL_BASE_URL",
        default_value = "http://127.0.0.1:8081/v1"
    )]
    base_url: String,
    #[arg(long, env = "EVAL_MODEL", default_value = "local")]
    model: String,
    #[arg(
        long,
        env = "EVAL_API_KEY",
        default_value = "local",
        hide_env_values = true
    )]
    api_key: String,
    /// Repetitions of the whole suite (each on a fresh database).
    #[arg(long, default_value_t = 1)]
    runs: usize,
    /// Only conversations whose name contains one of these (comma-separated).
    #[arg(long, value_delimiter = ',')]
    only: Vec<String>,
    /// Extra environment for the backend, VAR=value (repeatable), e.g. LLM_TEMPERATURE=0.
    #[arg(long = "backend-env")]
    backend_env: Vec<String>,
    /// A label for the report (e.g. "baseline").
    #[arg(long, default_value = "run")]
    label: String,
    /// Markdown report, appended to.
    #[arg(long)]
    report: Option<PathBuf>,
    /// One JSON line per turn, appended to.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Send one uncounted turn before the cases of each run (fills the server's prefix cache).
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    warm_up: bool,
    /// Every model request and answer, one JSON line each, appended to (for reading failures).
    #[arg(long)]
    exchanges: Option<PathBuf>,
    /// Seconds one chat turn may take before it counts as failed.
    #[arg(long, default_value_t = 1200)]
    turn_timeout_secs: u64,
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    // On Ctrl-C or SIGTERM the run future is dropped, and with it the backend it started.
    let result = tokio::select! {
        r = run(Cli::parse()) => r,
        _ = stop_signal() => Err(anyhow::anyhow!("stopped by a signal")),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("todo-eval: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn stop_signal() {
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(t) => t,
        Err(_) => return std::future::pending().await,
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}

/// A todo-backend started for one run, killed on drop.
struct BackendProcess {
    child: tokio::process::Child,
    base: String,
    _dir: TempDir,
    db_url: String,
}

struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

async fn start_backend(cli: &Cli, proxy: &str, run: usize) -> anyhow::Result<BackendProcess> {
    let dir = std::env::temp_dir().join(format!("todo-eval-{}-{run}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let dir = TempDir(dir);
    let db_url = format!("sqlite:{}", dir.0.join("eval.db").display());
    let port = free_port()?;
    let mut cmd = tokio::process::Command::new(&cli.backend_bin);
    cmd.arg("serve")
        .arg("--bind")
        .arg(format!("127.0.0.1:{port}"))
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("DATABASE_URL", &db_url)
        .env("OPENAI_BASE_URL", proxy)
        .env("OPENAI_API_KEY", &cli.api_key)
        .env("LLM_MODEL", &cli.model)
        .env(
            "LLM_REQUEST_TIMEOUT_SECS",
            cli.turn_timeout_secs.to_string(),
        )
        .env("TURN_TIMEOUT_SECS", cli.turn_timeout_secs.to_string())
        .env("LLM_MAX_RETRIES", "0")
        .env("RATE_LIMIT_PER_MINUTE", "1000")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::from(std::fs::File::create(
            dir.0.join("backend.log"),
        )?))
        .kill_on_drop(true);
    for kv in &cli.backend_env {
        let (k, v) = kv
            .split_once('=')
            .with_context(|| format!("--backend-env {kv:?} is not VAR=value"))?;
        cmd.env(k, v);
    }
    let child = cmd
        .spawn()
        .with_context(|| format!("cannot start {}", cli.backend_bin.display()))?;
    let base = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::builder().no_proxy().build()?;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(r) = http.get(format!("{base}/readyz")).send().await
            && r.status().is_success()
        {
            break;
        }
        if Instant::now() > deadline {
            bail!(
                "the backend did not become ready in 60 s (log: {}/backend.log)",
                dir.0.display()
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok(BackendProcess {
        child,
        base,
        _dir: dir,
        db_url,
    })
}

async fn snapshot(http: &reqwest::Client, base: &str, user: &str) -> anyhow::Result<Vec<TaskView>> {
    let mut all = Vec::new();
    for status in ["all", "deleted"] {
        let v: Value = http
            .get(format!("{base}/api/{user}/tasks?status={status}&limit=100"))
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?;
        let tasks: Vec<TaskView> = serde_json::from_value(v["tasks"].clone())
            .context("the tasks endpoint answered an unexpected shape")?;
        all.extend(tasks);
    }
    all.sort_by_key(|t| t.id);
    all.dedup_by_key(|t| t.id);
    Ok(all)
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let text = std::fs::read_to_string(&cli.cases)
        .with_context(|| format!("cannot read {}", cli.cases.display()))?;
    let suite = Suite::parse(&text)?;
    eprintln!(
        "todo-eval: {} cases in {} conversations, {} run(s), model endpoint {}",
        suite.case_count(),
        suite.conversations.len(),
        cli.runs,
        cli.base_url
    );
    let rec = proxy::Recorder::new(&cli.base_url, cli.exchanges.as_deref())?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let proxy_url = format!("http://{}/v1", listener.local_addr()?);
    tokio::spawn(proxy::serve(listener, rec.clone()));
    let http = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(cli.turn_timeout_secs + 30))
        .build()?;
    let stamp = Utc::now().format("%Y%m%dT%H%M%SZ").to_string();
    let mut records: Vec<TurnRecord> = Vec::new();
    for run in 1..=cli.runs {
        let mut backend = start_backend(&cli, &proxy_url, run).await?;
        // One uncounted turn first, so the server holds the shared prompt prefix (as it would
        // in service); the figures of the cold call are printed, not counted.
        if cli.warm_up {
            let started = Instant::now();
            let _ = http
                .post(format!(
                    "{}/api/eval-warm-up-{stamp}-{run}/chat",
                    backend.base
                ))
                .json(&json!({"message": "hi", "timezone": "UTC"}))
                .send()
                .await;
            let calls = rec.take();
            eprintln!(
                "[run {run}] warm-up: {:.1}s, {} call(s), {} prompt tokens processed",
                started.elapsed().as_secs_f64(),
                calls.len(),
                calls.iter().map(|c| c.processed_tokens).sum::<u64>()
            );
        }
        let mut first_call_of_run = !cli.warm_up;
        for conv in suite
            .conversations
            .iter()
            .filter(|c| cli.only.is_empty() || cli.only.iter().any(|o| c.name.contains(o.as_str())))
        {
            let tz: Tz = conv
                .timezone
                .parse()
                .map_err(|_| anyhow::anyhow!("unknown zone {}", conv.timezone))?;
            let user = format!("eval-{stamp}-{run}-{}", conv.name);
            let today = Utc::now().with_timezone(&tz).date_naive();
            seed::seed(&cli.mcp_bin, &backend.db_url, &user, &conv.seed, today, tz).await?;
            let mut conversation: Option<String> = None;
            let mut seen_messages = 0usize;
            for turn in &conv.turns {
                let today = Utc::now().with_timezone(&tz).date_naive();
                let before = snapshot(&http, &backend.base, &user).await?;
                rec.take();
                let mut body = json!({"message": turn.say, "timezone": conv.timezone});
                if let Some(c) = &conversation {
                    body["conversation_id"] = json!(c);
                }
                let started = Instant::now();
                let answer = http
                    .post(format!("{}/api/{user}/chat", backend.base))
                    .json(&body)
                    .send()
                    .await;
                let (status, reply) = match answer {
                    Ok(r) => {
                        let s = r.status().as_u16();
                        (s, r.json::<Value>().await.unwrap_or(Value::Null))
                    }
                    Err(e) => (0, json!({"error": {"message": e.to_string()}})),
                };
                let wall = started.elapsed();
                let calls = rec.take();
                if let Some(c) = reply["conversation_id"].as_str() {
                    conversation = Some(c.to_string());
                }
                let after = snapshot(&http, &backend.base, &user).await?;
                let response = reply["response"].as_str().unwrap_or("").to_string();
                let mut faults = if status == 200 {
                    cases::judge(&turn.expect, &before, &after, &response, today, tz)
                } else {
                    vec![format!(
                        "HTTP {status}: {}",
                        reply["error"]["code"].as_str().unwrap_or("?")
                    )]
                };
                // The stored conversation of the turn: the tools it really called.
                let mut stored = Vec::new();
                if let Some(c) = &conversation {
                    let v: Value = http
                        .get(format!(
                            "{}/api/{user}/conversations/{c}/messages?limit=500",
                            backend.base
                        ))
                        .send()
                        .await?
                        .json()
                        .await?;
                    let all = v["messages"].as_array().cloned().unwrap_or_default();
                    stored = all
                        .get(seen_messages..)
                        .map(<[Value]>::to_vec)
                        .unwrap_or_default();
                    seen_messages = all.len();
                    if status == 200
                        && stored.last().and_then(|m| m["content"].as_str())
                            != Some(response.as_str())
                    {
                        faults.push("the stored conversation does not end with the reply".into());
                    }
                }
                let tools = cases::tools_called(&stored);
                let r = TurnRecord::new(
                    run,
                    &conv.name,
                    &turn.case,
                    faults,
                    wall,
                    &calls,
                    first_call_of_run,
                    tools,
                    response,
                );
                if !calls.is_empty() {
                    first_call_of_run = false;
                }
                eprintln!("{}", r.line());
                if let Some(p) = &cli.json {
                    use std::io::Write as _;
                    let mut f = std::fs::OpenOptions::new()
                        .create(true)
                        .append(true)
                        .open(p)?;
                    writeln!(f, "{}", serde_json::to_string(&r.to_json(&cli.label))?)?;
                }
                records.push(r);
            }
        }
        let _ = backend.child.kill().await;
    }
    let md = report::render(&cli.label, &records, cli.runs, &suite_command_line());
    println!("{md}");
    if let Some(p) = &cli.report {
        use std::io::Write as _;
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(p)?;
        writeln!(f, "{md}")?;
    }
    Ok(())
}

fn suite_command_line() -> String {
    std::env::args().collect::<Vec<_>>().join(" ")
}
