//! `todo-mcp`: the task tools as an MCP server over stdio or streamable HTTP.

use std::net::SocketAddr;

use anyhow::Context;
use clap::{Parser, Subcommand};
use rmcp::ServiceExt;
use todo_core::auth::{self, AuthSettings, Verifier};
use todo_core::db::{Database, DbOptions};
use todo_mcp::http::{self, HttpSettings};
use todo_mcp::tools::{Identity, TaskTools};
use todo_service::runtime;

#[derive(Parser)]
#[command(
    name = "todo-mcp",
    version,
    about = "Task tools for MCP clients (stdio or streamable HTTP)"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve one user (TODO_USER_ID, default "local") over stdin/stdout, for Claude Desktop.
    Stdio,
    /// Serve streamable HTTP at /mcp.
    Http {
        #[arg(long, default_value = "127.0.0.1:8001")]
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

fn user_from_env() -> anyhow::Result<String> {
    let user = std::env::var("TODO_USER_ID").unwrap_or_else(|_| "local".into());
    let user = user.trim().to_string();
    anyhow::ensure!(
        !user.is_empty() && user.len() <= 128,
        "TODO_USER_ID must be 1 to 128 characters"
    );
    Ok(user)
}

async fn open_db() -> anyhow::Result<Database> {
    let url = std::env::var("DATABASE_URL").ok();
    let db = Database::connect(url.as_deref(), &DbOptions::from_env()?).await?;
    db.migrate().await?;
    Ok(db)
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Migrate => {
            let db = open_db().await?;
            tracing::info!(database = db.kind(), "migrations applied");
            db.close().await;
        }
        Command::Stdio => {
            let user = user_from_env()?;
            todo_mcp::tools::args::configured_timezone().map_err(anyhow::Error::msg)?;
            let db = open_db().await?;
            tracing::info!(database = db.kind(), %user, "serving MCP over stdio");
            let tools = TaskTools::new(db.task_store(), Identity::Fixed(user));
            let service = tools
                .serve(rmcp::transport::io::stdio_pipes())
                .await
                .context("MCP initialisation over stdio failed")?;
            let shutdown = runtime::shutdown_on_signals();
            tokio::select! {
                r = service.waiting() => { r.context("stdio service failed")?; }
                _ = shutdown.cancelled() => {}
            }
            db.close().await;
        }
        Command::Http { bind } => {
            todo_mcp::tools::args::configured_timezone().map_err(anyhow::Error::msg)?;
            let mut auth = AuthSettings::from_env()?;
            auth.service_secret = auth::secret_from_env("MCP_SERVICE_SECRET")?;
            auth.check_for_mcp()?;
            runtime::check_open_bind("todo-mcp http", bind, auth.is_configured())?;
            let verifier = if auth.is_configured() {
                let v = Verifier::new(&auth)?;
                tracing::info!(verification = %auth.describe(), "bearer tokens required");
                v.warm_up().await;
                Some(v)
            } else {
                None
            };
            let serve_limits = todo_service::serve::ServeLimits::from_env()?;
            let user = user_from_env()?;
            let db = open_db().await?;
            let listener = http::bind(bind).await?;
            let local = listener.local_addr()?;
            let shutdown = runtime::shutdown_on_signals();
            let app = http::router(
                db.task_store(),
                HttpSettings {
                    allowed_hosts: runtime::allowed_hosts(local),
                    allowed_origins: runtime::allowed_origins(),
                    open_user: user,
                    auth: verifier,
                    public_url: std::env::var("MCP_PUBLIC_URL")
                        .ok()
                        .filter(|u| !u.trim().is_empty()),
                    authorization_servers: auth.issuer.into_iter().collect(),
                },
                shutdown.clone(),
            );
            let app = http::with_readiness(app, db.clone());
            tracing::info!(database = db.kind(), "listening on http://{local}/mcp");
            http::serve_with(listener, app, shutdown, serve_limits).await?;
            db.close().await;
            tracing::info!("stopped");
        }
    }
    Ok(())
}
