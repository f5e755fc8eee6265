//! `todo-backend`: the chat service.

use std::net::SocketAddr;

use clap::{Parser, Subcommand};
use todo_backend::config::Settings;
use todo_backend::{app, lifecycle};
use todo_core::db::{Database, DbOptions};
use todo_service::runtime;

#[derive(Parser)]
#[command(
    name = "todo-backend",
    version,
    about = "Chat-driven todo agent: HTTP API"
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the HTTP API (the default).
    Serve {
        #[arg(long, default_value = "127.0.0.1:8000")]
        bind: SocketAddr,
    },
    /// Apply database migrations and exit.
    Migrate,
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    runtime::init_tracing();
    runtime::exit_code(run(Cli::parse()).await)
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let command = cli.command.unwrap_or(Command::Serve {
        bind: "127.0.0.1:8000".parse()?,
    });
    match command {
        Command::Migrate => {
            let url = std::env::var("DATABASE_URL").ok();
            let db = Database::connect(url.as_deref(), &DbOptions::from_env()?).await?;
            db.migrate().await?;
            tracing::info!(database = db.kind(), "migrations applied");
            db.close().await;
        }
        Command::Serve { bind } => {
            let settings = Settings::from_env()?;
            let auth = &settings.access.auth;
            runtime::check_open_bind("todo-backend", bind, auth.is_configured())?;
            if auth.is_configured() {
                tracing::info!(verification = %auth.describe(), "bearer tokens required on /api");
            }
            let serve_limits = todo_service::serve::ServeLimits::from_env()?;
            let state = app::build_state(&settings).await?;
            let db = state.db.clone();
            let listener = app::bind(bind).await?;
            let local = listener.local_addr()?;
            // SIGTERM drains turns first; the listener closes only then.
            let signals = runtime::shutdown_on_signals();
            todo_backend::retention::spawn_sweeper(
                db.clone(),
                settings.retention.clone(),
                signals.child_token(),
            );
            let (shutdown, deadline) = lifecycle::drain_on(
                signals,
                state.lifecycle.clone(),
                state.access.clone(),
                lifecycle::ShutdownSettings::from_env(settings.limits.turn_timeout)?,
            );
            tracing::info!(database = db.kind(), "listening on http://{local}");
            let served = app::serve_with(
                listener,
                app::router(state, settings.max_body_bytes),
                shutdown,
                serve_limits,
            );
            tokio::select! {
                r = served => r?,
                () = lifecycle::past(deadline) => {
                    tracing::warn!("shutdown timeout reached with requests still open; exiting");
                }
            }
            db.close().await;
            tracing::info!("stopped");
        }
    }
    Ok(())
}
