//! `todo-mcp`: the task tools as an MCP server over stdio or streamable HTTP.

use std::net::SocketAddr;

use anyhow::Context;
use clap::{Parser, Subcommand};
use rmcp::ServiceExt;
use todo_core::db::Database;
use todo_mcp::http::{self, HttpSettings};
use todo_mcp::tools::{Identity, TaskTools};
use todo_service::runtime;
use todo_service::settings::{AuthArgs, DbArgs, HostArgs, LogArgs, ServeArgs, nonempty};

/// Every setting of todo-mcp: a long option each, or the environment variable named in
/// brackets (also read from `.env`).
#[derive(Parser)]
#[command(
    name = "todo-mcp",
    version,
    about = "Task tools for MCP clients (stdio or streamable HTTP)"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// The user `todo-mcp stdio` (and an unauthenticated `todo-mcp http`) serves.
    #[arg(long, env = "TODO_USER_ID", default_value = "local", value_parser = todo_service::settings::lenient::<String>())]
    todo_user_id: String,
    /// The zone in which a due date-time without a UTC offset is read; unset: the machine's.
    #[arg(long, env = "TODO_TIMEZONE")]
    todo_timezone: Option<String>,
    /// Public base URL named in the OAuth protected-resource metadata; unset: from `Host`.
    #[arg(long, env = "MCP_PUBLIC_URL")]
    mcp_public_url: Option<String>,
    #[command(flatten)]
    db: DbArgs,
    #[command(flatten)]
    auth: AuthArgs,
    #[command(flatten)]
    hosts: HostArgs,
    #[command(flatten)]
    serve: ServeArgs,
    #[command(flatten)]
    log: LogArgs,
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

fn main() -> std::process::ExitCode {
    todo_service::settings::start(|c: &Cli| &c.log, run)
}

impl Cli {
    fn user(&self) -> anyhow::Result<String> {
        let user = self.todo_user_id.trim().to_string();
        anyhow::ensure!(
            !user.is_empty() && user.len() <= 128,
            "TODO_USER_ID must be 1 to 128 characters"
        );
        Ok(user)
    }

    async fn open_db(&self) -> anyhow::Result<Database> {
        let db = Database::connect(self.db.url().as_deref(), &self.db.options()?).await?;
        db.migrate().await?;
        Ok(db)
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    if !matches!(cli.command, Command::Migrate) {
        todo_mcp::tools::args::set_timezone(nonempty(&cli.todo_timezone))
            .map_err(anyhow::Error::msg)?;
    }
    match cli.command {
        Command::Migrate => {
            let db = cli.open_db().await?;
            tracing::info!(database = db.kind(), "migrations applied");
            db.close().await;
        }
        Command::Stdio => {
            let user = cli.user()?;
            let db = cli.open_db().await?;
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
            let mut auth = cli.auth.settings()?;
            auth.service_secret = cli.auth.service_secret()?;
            auth.check_for_mcp()?;
            runtime::check_open_bind("todo-mcp http", bind, auth.is_configured())?;
            let verifier = if auth.is_configured() {
                let v = todo_core::auth::Verifier::new(&auth)?;
                tracing::info!(verification = %auth.describe(), "bearer tokens required");
                v.warm_up().await;
                Some(v)
            } else {
                None
            };
            let serve_limits = cli.serve.limits()?;
            let user = cli.user()?;
            let db = cli.open_db().await?;
            let listener = http::bind(bind).await?;
            let local = listener.local_addr()?;
            let shutdown = runtime::shutdown_on_signals();
            let app = http::routes(
                db.task_store(),
                HttpSettings {
                    allowed_hosts: cli.hosts.hosts_for(local),
                    allowed_origins: cli.hosts.origins_with_loopback(),
                    open_user: user,
                    auth: verifier,
                    public_url: nonempty(&cli.mcp_public_url),
                    authorization_servers: auth.issuer.into_iter().collect(),
                },
                shutdown.clone(),
            );
            // The request layer goes on last, so /readyz and the fallback are traced too.
            let app = http::traced(http::with_readiness(app, db.clone()));
            tracing::info!(database = db.kind(), "listening on http://{local}/mcp");
            http::serve_with(listener, app, shutdown, serve_limits).await?;
            db.close().await;
            tracing::info!("stopped");
        }
    }
    Ok(())
}
