//! `todo-backend`: the chat service.

use todo_backend::config::{Command, Config};
use todo_backend::{app, lifecycle};
use todo_core::db::Database;
use todo_service::runtime;
use todo_service::settings::nonempty;

fn main() -> std::process::ExitCode {
    todo_service::settings::start(|c: &Config| &c.log, run)
}

async fn run(config: Config) -> anyhow::Result<()> {
    let command = config.command.clone().unwrap_or(Command::Serve {
        bind: "127.0.0.1:8000".parse()?,
    });
    match command {
        Command::Migrate => {
            let db = Database::connect(config.db.url().as_deref(), &config.db.options()?).await?;
            db.migrate().await?;
            tracing::info!(database = db.kind(), "migrations applied");
            db.close().await;
        }
        Command::Serve { bind } => {
            let settings = config.settings()?;
            todo_mcp::tools::args::set_timezone(nonempty(&config.todo_timezone))
                .map_err(anyhow::Error::msg)?;
            let auth = &settings.access.auth;
            runtime::check_open_bind("todo-backend", bind, auth.is_configured())?;
            if auth.is_configured() {
                tracing::info!(verification = %auth.describe(), "bearer tokens required on /api");
            }
            let serve_limits = config.serve.limits()?;
            let shutdown_settings = config.shutdown()?;
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
                shutdown_settings,
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
