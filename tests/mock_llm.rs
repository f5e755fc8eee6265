//! `mock-llm`: a deterministic OpenAI-compatible chat-completions server for end-to-end
//! tests and benchmarks. See `todo_e2e::mock` for what it answers.

use std::net::SocketAddr;
use std::time::Duration;

use clap::Parser;
use todo_e2e::mock::{self, MockConfig};

#[derive(Parser)]
#[command(
    name = "mock-llm",
    version,
    about = "Deterministic OpenAI-compatible chat completions for tests and benchmarks"
)]
struct Cli {
    /// Address to listen on; port 0 picks a free port (logged on stderr).
    #[arg(long, default_value = "127.0.0.1:0")]
    bind: SocketAddr,
    /// Delay added before every chat completion answer, in milliseconds.
    #[arg(long, default_value_t = 0)]
    latency_ms: u64,
    /// Delay between the chunks of a streamed answer, in milliseconds.
    #[arg(long, default_value_t = 0)]
    chunk_delay_ms: u64,
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let listener = match tokio::net::TcpListener::bind(cli.bind).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("mock-llm: cannot listen on {}: {e}", cli.bind);
            return std::process::ExitCode::FAILURE;
        }
    };
    match listener.local_addr() {
        Ok(addr) => eprintln!("listening on http://{addr}"),
        Err(e) => {
            eprintln!("mock-llm: {e}");
            return std::process::ExitCode::FAILURE;
        }
    }
    let config = MockConfig {
        latency: Duration::from_millis(cli.latency_ms),
        chunk_delay: Duration::from_millis(cli.chunk_delay_ms),
    };
    match mock::serve(listener, config, shutdown()).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("mock-llm: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// Ctrl-C or SIGTERM.
async fn shutdown() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
