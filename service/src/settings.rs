//! Settings both binaries share, as clap argument groups that each binary flattens into its
//! one settings struct: every field has a long option and an environment variable (the names
//! are a contract: `.env.example`), so `--help` is the configuration reference. A value is
//! trimmed, and an empty one (`NAME=` copied from `.env.example`) means the default. Checks
//! that need more than the type (ranges, minimum secret lengths, consistency) run when a
//! group is turned into the settings the code uses, with the variable's name in the message.

use std::ffi::OsStr;
use std::marker::PhantomData;
use std::net::SocketAddr;
use std::str::FromStr;
use std::time::Duration;

use clap::builder::TypedValueParser;
use clap::error::ErrorKind;
use secrecy::SecretString;

use crate::serve::ServeLimits;
use todo_core::auth::{AuthSettings, MIN_SECRET_BYTES};
use todo_core::db::DbOptions;

/// The start of both binaries: `.env` is read before any thread exists, then the settings
/// are parsed, logging starts (with the settings' `LogArgs`), and `run` goes on a
/// multi-threaded runtime. An error anywhere is the process's exit status.
pub fn start<C, Fut>(
    log: impl FnOnce(&C) -> &LogArgs,
    run: impl FnOnce(C) -> Fut,
) -> std::process::ExitCode
where
    C: clap::Parser,
    Fut: std::future::Future<Output = anyhow::Result<()>>,
{
    let dotenv = load_dotenv();
    let settings = C::parse();
    log(&settings).init();
    let run = async {
        dotenv?;
        run(settings).await
    };
    let result = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| anyhow::anyhow!("cannot start the async runtime: {e}"))
        .and_then(|rt| rt.block_on(run));
    crate::runtime::exit_code(result)
}

/// Loads `.env` from the working directory (not its parents) when there is one; variables
/// already set in the process environment win. Call before any thread starts.
pub fn load_dotenv() -> anyhow::Result<()> {
    match dotenvy::from_path(".env") {
        Ok(_) => Ok(()),
        Err(e) if e.not_found() => Ok(()),
        Err(e) => Err(anyhow::anyhow!("cannot read .env: {e}")),
    }
}

/// A value parser for a setting: surrounding space trimmed, empty meaning the default, and a
/// failure naming the variable (`LLM_MAX_TOKENS has an invalid value "lots"`).
pub struct Lenient<T>(PhantomData<fn() -> T>);

impl<T> Clone for Lenient<T> {
    fn clone(&self) -> Self {
        Lenient(PhantomData)
    }
}

/// [`Lenient`] for `T`.
pub fn lenient<T>() -> Lenient<T> {
    Lenient(PhantomData)
}

impl<T: FromStr + Clone + Send + Sync + 'static> TypedValueParser for Lenient<T> {
    type Value = T;

    fn parse_ref(
        &self,
        _cmd: &clap::Command,
        arg: Option<&clap::Arg>,
        value: &OsStr,
    ) -> Result<T, clap::Error> {
        let name = arg
            .and_then(|a| a.get_env())
            .map(|e| e.to_string_lossy().into_owned())
            .or_else(|| arg.map(ToString::to_string))
            .unwrap_or_default();
        let raw = value.to_string_lossy();
        let default = arg
            .and_then(|a| a.get_default_values().first())
            .map(|d| d.to_string_lossy().into_owned());
        let v = match (raw.trim(), &default) {
            ("", Some(d)) => d.trim(),
            (v, _) => v,
        };
        v.parse().map_err(|_| {
            clap::Error::raw(
                ErrorKind::ValueValidation,
                format!("{name} has an invalid value {raw:?}\n"),
            )
        })
    }
}

/// A trimmed string, `None` when empty.
pub fn nonempty(v: &Option<String>) -> Option<String> {
    v.as_deref()
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .map(str::to_string)
}

/// A comma-separated list, trimmed, empty entries dropped.
pub fn list(v: &str) -> Vec<String> {
    v.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

/// A shared secret, refused when too short to be safe.
pub fn secret(name: &str, v: &Option<String>) -> anyhow::Result<Option<SecretString>> {
    let Some(v) = nonempty(v) else {
        return Ok(None);
    };
    anyhow::ensure!(
        v.len() >= MIN_SECRET_BYTES,
        "{name} must be at least {MIN_SECRET_BYTES} bytes (for example `openssl rand -hex 32`)"
    );
    Ok(Some(SecretString::from(v)))
}

fn in_range(name: &str, v: u64, min: u64, max: u64) -> anyhow::Result<u64> {
    anyhow::ensure!(
        (min..=max).contains(&v),
        "{name}={v} is outside the accepted range {min}..={max}"
    );
    Ok(v)
}

/// The database.
#[derive(clap::Args, Clone)]
pub struct DbArgs {
    /// `postgres://…` or `sqlite:…`; unset: SQLite in the user's data directory.
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<String>,
    /// Connections per process (keep replicas × this under the server's max_connections).
    #[arg(long, env = "DATABASE_MAX_CONNECTIONS", default_value = "10", value_parser = lenient::<u32>())]
    pub database_max_connections: u32,
    /// How long start-up retries a database that is not reachable yet, in seconds.
    #[arg(long, env = "DATABASE_CONNECT_TIMEOUT_SECS", default_value = "10", value_parser = lenient::<u64>())]
    pub database_connect_timeout_secs: u64,
}

impl DbArgs {
    pub fn url(&self) -> Option<String> {
        nonempty(&self.database_url)
    }

    pub fn options(&self) -> anyhow::Result<DbOptions> {
        anyhow::ensure!(
            self.database_max_connections > 0,
            "DATABASE_MAX_CONNECTIONS must be a positive integer"
        );
        Ok(DbOptions {
            max_connections: self.database_max_connections,
            connect_retry_for: Duration::from_secs(self.database_connect_timeout_secs),
            ..DbOptions::default()
        })
    }
}

/// Token verification (`AUTH_*`) and the backend's service credential.
#[derive(clap::Args, Clone)]
pub struct AuthArgs {
    /// HS256 shared secret of user tokens (at least 32 bytes).
    #[arg(long, env = "AUTH_JWT_SECRET", hide_env_values = true)]
    pub auth_jwt_secret: Option<String>,
    /// An issuer's JWKS (EdDSA, RS256, ES256), e.g. Better Auth's /api/auth/jwks.
    #[arg(long, env = "AUTH_JWKS_URL", hide_env_values = true)]
    pub auth_jwks_url: Option<String>,
    /// Shortest time between two JWKS fetches, in seconds (1 to 86400).
    #[arg(long, env = "AUTH_JWKS_REFETCH_SECS", default_value = "30", value_parser = lenient::<u64>())]
    pub auth_jwks_refetch_secs: u64,
    /// Required `iss` of user tokens.
    #[arg(long, env = "AUTH_ISSUER", hide_env_values = true)]
    pub auth_issuer: Option<String>,
    /// Required `aud` of user tokens.
    #[arg(long, env = "AUTH_AUDIENCE", hide_env_values = true)]
    pub auth_audience: Option<String>,
    /// Clock skew allowed on `exp` and `nbf`, in seconds (at most 300).
    #[arg(long, env = "AUTH_LEEWAY_SECS", default_value = "30", value_parser = lenient::<u64>())]
    pub auth_leeway_secs: u64,
    /// Shared by the backend and a remote todo-mcp (at least 32 bytes): the backend's
    /// short-lived credential toward todo-mcp is signed with it.
    #[arg(long, env = "MCP_SERVICE_SECRET", hide_env_values = true)]
    pub mcp_service_secret: Option<String>,
}

impl AuthArgs {
    /// The verification settings (the service secret is the caller's to add).
    pub fn settings(&self) -> anyhow::Result<AuthSettings> {
        AuthSettings {
            jwt_secret: secret("AUTH_JWT_SECRET", &self.auth_jwt_secret)?,
            jwks_url: nonempty(&self.auth_jwks_url),
            issuer: nonempty(&self.auth_issuer),
            audience: nonempty(&self.auth_audience),
            jwks_refetch_interval: Duration::from_secs(self.auth_jwks_refetch_secs),
            leeway_secs: self.auth_leeway_secs,
            service_secret: None,
        }
        .checked()
    }

    pub fn service_secret(&self) -> anyhow::Result<Option<SecretString>> {
        secret("MCP_SERVICE_SECRET", &self.mcp_service_secret)
    }
}

/// Host names and browser origins accepted besides loopback.
#[derive(clap::Args, Clone)]
pub struct HostArgs {
    /// Browser origins (CORS) accepted besides loopback pages, comma-separated; `*` is refused.
    #[arg(long, env = "ALLOWED_ORIGINS", default_value = "")]
    pub allowed_origins: String,
    /// Host names accepted besides loopback, comma-separated; `*` is refused.
    #[arg(long, env = "ALLOWED_HOSTS", default_value = "")]
    pub allowed_hosts: String,
}

impl HostArgs {
    pub fn origins(&self) -> Vec<String> {
        list(&self.allowed_origins)
    }

    pub fn hosts(&self) -> Vec<String> {
        list(&self.allowed_hosts)
    }

    /// Host names accepted in `Host`: loopback names, the bound host, and `ALLOWED_HOSTS`.
    pub fn hosts_for(&self, bind: SocketAddr) -> Vec<String> {
        allowed_hosts(bind, &self.hosts())
    }

    /// Browser origins accepted: loopback pages on any port, and `ALLOWED_ORIGINS`.
    pub fn origins_with_loopback(&self) -> Vec<String> {
        let mut origins: Vec<String> = vec![
            "http://localhost:*".into(),
            "http://127.0.0.1:*".into(),
            "http://[::1]:*".into(),
        ];
        origins.extend(self.origins());
        origins
    }
}

/// Host names accepted in `Host`: loopback names, the bound host, and `extra`.
pub fn allowed_hosts(bind: SocketAddr, extra: &[String]) -> Vec<String> {
    let mut hosts: Vec<String> = vec!["localhost".into(), "127.0.0.1".into(), "::1".into()];
    if !bind.ip().is_unspecified() {
        hosts.push(bind.ip().to_string());
    }
    hosts.extend(extra.iter().cloned());
    hosts.dedup();
    hosts
}

/// Connection bounds of the HTTP server.
#[derive(clap::Args, Clone)]
pub struct ServeArgs {
    /// Time allowed to send a request's headers, in seconds (1 to 300); slow or idle
    /// connections are closed.
    #[arg(long, env = "HEADER_READ_TIMEOUT_SECS", default_value = "10", value_parser = lenient::<u64>())]
    pub header_read_timeout_secs: u64,
    /// Connections open at once (1 to 1000000).
    #[arg(long, env = "MAX_CONNECTIONS", default_value = "1024", value_parser = lenient::<u64>())]
    pub max_connections: u64,
}

impl ServeArgs {
    pub fn limits(&self) -> anyhow::Result<ServeLimits> {
        Ok(ServeLimits {
            header_read_timeout: Duration::from_secs(in_range(
                "HEADER_READ_TIMEOUT_SECS",
                self.header_read_timeout_secs,
                1,
                300,
            )?),
            max_connections: in_range("MAX_CONNECTIONS", self.max_connections, 1, 1_000_000)?
                as usize,
        })
    }
}

/// Logging.
#[derive(clap::Args, Clone)]
pub struct LogArgs {
    /// Log filter (tracing's EnvFilter syntax).
    #[arg(long, env = "RUST_LOG", default_value = "info")]
    pub rust_log: String,
    /// `json` for one JSON object per line.
    #[arg(long, env = "LOG_FORMAT", default_value = "")]
    pub log_format: String,
}

impl LogArgs {
    /// Starts logging to stderr (`crate::runtime::init_tracing`).
    pub fn init(&self) {
        crate::runtime::init_tracing(
            self.rust_log.trim(),
            self.log_format.trim().eq_ignore_ascii_case("json"),
        );
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(clap::Parser)]
    struct T {
        #[command(flatten)]
        serve: ServeArgs,
        #[command(flatten)]
        db: DbArgs,
    }

    #[test]
    fn empty_means_default_and_bad_values_name_the_setting() {
        let t = T::try_parse_from([
            "t",
            "--max-connections",
            " ",
            "--database-max-connections",
            " 5 ",
        ])
        .unwrap();
        assert_eq!(t.serve.max_connections, 1024);
        assert_eq!(t.db.database_max_connections, 5);
        let e = T::try_parse_from(["t", "--max-connections", "lots"])
            .err()
            .unwrap();
        assert_eq!(e.kind(), ErrorKind::ValueValidation);
        assert!(
            e.to_string()
                .contains("MAX_CONNECTIONS has an invalid value \"lots\""),
            "{e}"
        );
        let t = T::try_parse_from(["t", "--header-read-timeout-secs", "100000"]).unwrap();
        let e = t.serve.limits().err().unwrap().to_string();
        assert!(
            e.contains("HEADER_READ_TIMEOUT_SECS=100000 is outside"),
            "{e}"
        );
        let t = T::try_parse_from(["t", "--database-max-connections", "0"]).unwrap();
        assert!(t.db.options().is_err());
    }
}
