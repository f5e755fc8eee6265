//! What both services share at run time: logging, shutdown signals, bind-address rules and
//! the request id.

use std::net::SocketAddr;

use tokio_util::sync::CancellationToken;
use tracing_subscriber::EnvFilter;

/// Logs to stderr (stdout belongs to the stdio transport); `LOG_FORMAT=json` for JSON lines.
pub fn init_tracing(rust_log: &str, json: bool) {
    // rmcp logs every in-process session at info; keep it quiet unless asked for by name.
    let mut directives = if rust_log.is_empty() {
        "info".to_string()
    } else {
        rust_log.to_string()
    };
    for quiet in ["rmcp", "sqlx", "hyper"] {
        if !directives.contains(quiet) {
            directives.push_str(&format!(",{quiet}=warn"));
        }
    }
    let filter = EnvFilter::try_new(&directives).unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false);
    let result = if json {
        builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .try_init()
    } else {
        // Every value escaped: nothing logged can break or forge a line (`crate::logfmt`).
        builder
            .with_ansi(false)
            .fmt_fields(crate::logfmt::plain_fields())
            .try_init()
    };
    // A second initialisation (tests) keeps the first subscriber.
    drop(result);
}

/// The request id header, kept from the client when sane and echoed on every response.
pub const REQUEST_ID: &str = "x-request-id";

/// The client's request id when it is plain (1–128 of `A-Za-z0-9-_.:`, so it cannot inject
/// anything into logs), else a new time-ordered UUID.
pub fn request_id(headers: &http::HeaderMap) -> String {
    headers
        .get(REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .filter(|v| sane_request_id(v))
        .map(str::to_string)
        .unwrap_or_else(|| uuid::Uuid::now_v7().to_string())
}

fn sane_request_id(id: &str) -> bool {
    (1..=128).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'))
}

/// The process exit code for a run's result; the error chain is logged once, in the
/// configured log format.
pub fn exit_code(result: anyhow::Result<()>) -> std::process::ExitCode {
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// A token cancelled on SIGTERM or Ctrl-C: the one shutdown path for servers and tests.
pub fn shutdown_on_signals() -> CancellationToken {
    let token = CancellationToken::new();
    let t = token.clone();
    tokio::spawn(async move {
        let ctrl_c = tokio::signal::ctrl_c();
        #[cfg(unix)]
        {
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(mut term) => {
                    tokio::select! {
                        _ = ctrl_c => {},
                        _ = term.recv() => {},
                    }
                }
                Err(_) => {
                    let _ = ctrl_c.await;
                }
            }
        }
        #[cfg(not(unix))]
        let _ = ctrl_c.await;
        tracing::info!("shutdown signal received; draining");
        t.cancel();
    });
    token
}

/// Refuses an unauthenticated service on anything but loopback; says so when it runs open.
pub fn check_open_bind(
    service: &str,
    addr: SocketAddr,
    auth_configured: bool,
) -> anyhow::Result<()> {
    if auth_configured {
        return Ok(());
    }
    if !addr.ip().is_loopback() {
        anyhow::bail!(
            "{service} refuses to listen on {addr} without authentication: set AUTH_JWT_SECRET \
             or AUTH_JWKS_URL, or bind a loopback address such as 127.0.0.1"
        );
    }
    tracing::warn!(
        %addr,
        "no AUTH_* setting: serving UNAUTHENTICATED requests, on loopback only"
    );
    Ok(())
}

/// Whether a `Host` value (name, optional port) is safe to echo and names an accepted host.
pub fn host_allowed(host: &str, allowed: &[String]) -> bool {
    if host.is_empty()
        || host.len() > 255
        || !host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '[' | ']'))
    {
        return false;
    }
    let name = if let Some(rest) = host.strip_prefix('[') {
        rest.split(']').next().unwrap_or("")
    } else {
        match host.rsplit_once(':') {
            Some((name, port)) if port.chars().all(|c| c.is_ascii_digit()) => name,
            _ => host,
        }
    };
    allowed.iter().any(|a| a.eq_ignore_ascii_case(name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_request_ids_are_kept() {
        let with = |v: &str| {
            let mut h = http::HeaderMap::new();
            h.insert(REQUEST_ID, http::HeaderValue::from_str(v).unwrap());
            request_id(&h)
        };
        assert_eq!(with("abc-123_x.y:z"), "abc-123_x.y:z");
        for bad in ["a b", "a\tb", &"a".repeat(129), "é"] {
            let made = with(bad);
            assert!(uuid::Uuid::parse_str(&made).is_ok(), "{bad:?} gave {made}");
        }
        assert!(uuid::Uuid::parse_str(&request_id(&http::HeaderMap::new())).is_ok());
    }

    #[test]
    fn open_services_stay_on_loopback() {
        assert!(check_open_bind("x", "127.0.0.1:1".parse().unwrap(), false).is_ok());
        assert!(check_open_bind("x", "[::1]:1".parse().unwrap(), false).is_ok());
        let err = check_open_bind("x", "0.0.0.0:1".parse().unwrap(), false).unwrap_err();
        assert!(err.to_string().contains("AUTH_JWT_SECRET"));
        assert!(check_open_bind("x", "0.0.0.0:1".parse().unwrap(), true).is_ok());
    }
}
