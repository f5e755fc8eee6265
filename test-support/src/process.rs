//! Child processes for tests: the one launcher of the workspace's real binaries
//! ([`command`]: environment cleared, then an allow-list, then what the test sets), and
//! [`Service`], a started server whose output is drained in the background (so a pipe
//! never fills and blocks it), ready only once it answers, and killed on drop.

use std::ffi::OsStr;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, bail};
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::process::Command;
use tokio::sync::oneshot;
use tokio::time::Instant;

/// Where a workspace binary built by cargo lives, found next to the running test
/// executable (`target/<profile>/deps/<test>` → `target/<profile>/<name>`).
///
/// `cargo nextest run --workspace` (scripts/test.sh) and `cargo build --workspace --bins`
/// build them; `TODO_E2E_BIN_DIR` points elsewhere.
pub fn workspace_bin(name: &str) -> anyhow::Result<PathBuf> {
    let dir = match std::env::var_os("TODO_E2E_BIN_DIR") {
        Some(d) => PathBuf::from(d),
        None => {
            let exe = std::env::current_exe().context("cannot find the test executable")?;
            let mut dir = exe
                .parent()
                .map(Path::to_path_buf)
                .context("the test executable has no directory")?;
            if dir.file_name().is_some_and(|n| n == "deps") {
                dir.pop();
            }
            dir
        }
    };
    let path = dir.join(format!("{name}{}", std::env::consts::EXE_SUFFIX));
    if !path.is_file() {
        bail!(
            "{} is missing: build the workspace binaries first \
             (`cargo build --workspace --bins`, or run ./scripts/test.sh, whose \
             `cargo nextest run --workspace` builds them)",
            path.display()
        );
    }
    Ok(path)
}

/// Environment variables a child inherits from the test process; everything else is
/// given explicitly, so a developer's `OPENAI_API_KEY` or `DATABASE_URL` never leaks in.
pub const INHERITED: [&str; 4] = ["PATH", "HOME", "TMPDIR", "LANG"];

/// The one way tests start a program: its environment cleared, then only [`INHERITED`]
/// copied in; the test adds what the child should see with `.env(…)`. Stdin is null and
/// the child is killed when its handle is dropped; stdout and stderr are the caller's to set.
pub fn command(program: impl AsRef<OsStr>) -> Command {
    let mut cmd = Command::new(program);
    cmd.env_clear().stdin(Stdio::null()).kill_on_drop(true);
    for k in INHERITED {
        if let Some(v) = std::env::var_os(k) {
            cmd.env(k, v);
        }
    }
    cmd
}

/// How to start a child.
#[derive(Debug, Clone)]
pub struct Spawn {
    /// A short name for messages ("backend A").
    pub name: String,
    pub program: PathBuf,
    pub args: Vec<String>,
    pub env: Vec<(String, String)>,
    /// A path answering 200 once the child is ready (e.g. `/healthz`).
    pub ready_path: String,
    /// How long the child may take to bind and become ready.
    pub ready_within: Duration,
}

impl Spawn {
    pub fn new(name: impl Into<String>, program: impl Into<PathBuf>) -> Spawn {
        Spawn {
            name: name.into(),
            program: program.into(),
            args: Vec::new(),
            env: Vec::new(),
            ready_path: "/healthz".into(),
            ready_within: Duration::from_secs(60),
        }
    }

    pub fn args<I: IntoIterator<Item = S>, S: Into<String>>(mut self, args: I) -> Spawn {
        self.args.extend(args.into_iter().map(Into::into));
        self
    }

    pub fn env(mut self, key: impl Into<String>, value: impl Into<String>) -> Spawn {
        self.env.push((key.into(), value.into()));
        self
    }
}

/// A running child that logged `listening on http://ADDR` and answers its ready path.
/// Killed when dropped; its output is printed then if the test is failing or `TEST_LOG`
/// is set.
pub struct Service {
    name: String,
    addr: SocketAddr,
    child: tokio::process::Child,
    log: Arc<Mutex<String>>,
}

const LISTENING: &str = "listening on http://";

/// The address in a `… listening on http://ADDR …` line.
pub fn listening_addr(line: &str) -> Option<SocketAddr> {
    let rest = &line[line.find(LISTENING)? + LISTENING.len()..];
    let end = rest
        .find(|c: char| c.is_whitespace() || c == '"' || c == '/')
        .unwrap_or(rest.len());
    rest[..end].parse().ok()
}

/// Output kept per child; older output is dropped first (long benchmark runs log a lot).
const MAX_LOG_BYTES: usize = 4 * 1024 * 1024;

fn drain<R: AsyncRead + Unpin + Send + 'static>(
    reader: R,
    log: Arc<Mutex<String>>,
    mut addr_tx: Option<oneshot::Sender<SocketAddr>>,
) {
    tokio::spawn(async move {
        let mut reader = BufReader::new(reader);
        let mut buf = Vec::new();
        // Read to the end whatever the bytes are, so the child never blocks on a full pipe.
        loop {
            buf.clear();
            match reader.read_until(b'\n', &mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
            let line = String::from_utf8_lossy(&buf);
            let line = line.trim_end_matches(['\n', '\r']);
            if let Some(addr) = listening_addr(line)
                && let Some(tx) = addr_tx.take()
            {
                let _ = tx.send(addr);
            }
            if let Ok(mut l) = log.lock() {
                if l.len() > MAX_LOG_BYTES {
                    let mut cut = l.len() - MAX_LOG_BYTES / 2;
                    while !l.is_char_boundary(cut) {
                        cut += 1;
                    }
                    l.replace_range(..cut, "[…]\n");
                }
                l.push_str(line);
                l.push('\n');
            }
        }
    });
}

impl Service {
    /// Starts the child and waits, up to `spec.ready_within`, until it is ready.
    pub async fn start(spec: Spawn) -> anyhow::Result<Service> {
        let mut cmd = command(&spec.program);
        cmd.args(&spec.args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        cmd.envs(spec.env.iter().map(|(k, v)| (k, v)));
        let mut child = cmd
            .spawn()
            .with_context(|| format!("cannot start {} ({})", spec.name, spec.program.display()))?;
        let log = Arc::new(Mutex::new(String::new()));
        let (tx, rx) = oneshot::channel();
        if let Some(out) = child.stdout.take() {
            drain(out, log.clone(), None);
        }
        if let Some(err) = child.stderr.take() {
            drain(err, log.clone(), Some(tx));
        }
        let mut service = Service {
            name: spec.name.clone(),
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            child,
            log,
        };
        let deadline = Instant::now() + spec.ready_within;
        service.addr = match tokio::time::timeout_at(deadline, rx).await {
            Ok(Ok(addr)) => addr,
            // Output closed without the line: the child exited (or closed stderr).
            Ok(Err(_)) => {
                let status = tokio::time::timeout(Duration::from_secs(5), service.child.wait())
                    .await
                    .ok()
                    .and_then(Result::ok);
                bail!(service.failure(&format!("exited before listening ({})", describe(status))));
            }
            Err(_) => bail!(service.failure("did not log its address in time")),
        };
        service.wait_ready(&spec.ready_path, deadline).await?;
        Ok(service)
    }

    async fn wait_ready(&mut self, path: &str, deadline: Instant) -> anyhow::Result<()> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(2))
            .build()?;
        let url = self.url(path);
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                bail!(self.failure(&format!(
                    "exited while starting ({})",
                    describe(Some(status))
                )));
            }
            if let Ok(r) = http.get(&url).send().await
                && r.status().is_success()
            {
                return Ok(());
            }
            if Instant::now() >= deadline {
                bail!(self.failure(&format!("{url} did not answer 200 in time")));
            }
            // A short poll interval, bounded by the deadline above.
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    fn failure(&self, what: &str) -> String {
        format!("{} {what}; its output:\n{}", self.name, self.log())
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://ADDR{path}`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Everything the child has written so far.
    pub fn log(&self) -> String {
        self.log.lock().map(|l| l.clone()).unwrap_or_default()
    }

    /// Kills the child at once (SIGKILL: a crash, not a shutdown) and reaps it.
    pub async fn kill(&mut self) -> anyhow::Result<ExitStatus> {
        // An already exited child makes start_kill fail; wait() still reports it.
        let _ = self.child.start_kill();
        tokio::time::timeout(Duration::from_secs(10), self.child.wait())
            .await
            .with_context(|| format!("{} did not die within 10 s", self.name))?
            .with_context(|| format!("waiting for {} failed", self.name))
    }

    /// Sends SIGTERM (a graceful stop, as Kubernetes does) without waiting.
    pub fn terminate(&self) -> anyhow::Result<()> {
        let pid = self
            .child
            .id()
            .and_then(|id| i32::try_from(id).ok())
            .and_then(rustix::process::Pid::from_raw)
            .with_context(|| format!("{} has already exited", self.name))?;
        rustix::process::kill_process(pid, rustix::process::Signal::TERM)
            .with_context(|| format!("sending SIGTERM to {}", self.name))
    }

    /// Waits up to `within` for the child to exit and returns its status.
    pub async fn wait_exit(&mut self, within: Duration) -> anyhow::Result<ExitStatus> {
        tokio::time::timeout(within, self.child.wait())
            .await
            .with_context(|| format!("{} did not exit within {within:?}", self.name))?
            .with_context(|| format!("waiting for {} failed", self.name))
    }

    /// Waits up to `within` for `needle` in the child's output (which may trail its exit).
    pub async fn wait_log(&self, needle: &str, within: Duration) -> anyhow::Result<()> {
        let deadline = Instant::now() + within;
        while !self.log().contains(needle) {
            if Instant::now() >= deadline {
                bail!(self.failure(&format!("never logged {needle:?}")));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Ok(())
    }

    /// The child's process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }
}

fn describe(status: Option<ExitStatus>) -> String {
    status.map_or_else(|| "exit status unknown".into(), |s| s.to_string())
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
        if std::thread::panicking() || crate::logs::enabled() {
            eprintln!(
                "----- output of {} ({}) -----\n{}",
                self.name,
                self.addr,
                self.log()
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{INHERITED, command, listening_addr};

    /// Whatever the test process has (cargo sets `CARGO_*` for every test), a child sees
    /// only the allow-list and what the test gives it.
    #[tokio::test]
    async fn a_child_sees_only_the_allowed_environment_and_what_the_test_sets() {
        assert!(
            std::env::var_os("CARGO_PKG_NAME").is_some(),
            "the test runner sets CARGO_PKG_NAME, which must not leak"
        );
        let out = command("env")
            .env("TODO_GIVEN", "yes")
            .output()
            .await
            .expect("running env");
        assert!(out.status.success());
        let text = String::from_utf8(out.stdout).expect("UTF-8 environment");
        let names: Vec<&str> = text.lines().filter_map(|l| l.split('=').next()).collect();
        assert!(names.contains(&"TODO_GIVEN"), "{text}");
        for name in names {
            assert!(
                name == "TODO_GIVEN" || INHERITED.contains(&name),
                "{name} leaked into the child: {text}"
            );
        }
    }

    #[test]
    fn the_address_is_found_in_plain_and_structured_log_lines() {
        let cases = [
            ("listening on http://127.0.0.1:8000", Some("127.0.0.1:8000")),
            (
                "2026-11-22T10:00:00Z  INFO listening on http://127.0.0.1:41234 database=\"postgres\"",
                Some("127.0.0.1:41234"),
            ),
            (
                "{\"message\":\"listening on http://[::1]:9000\",\"level\":\"INFO\"}",
                Some("[::1]:9000"),
            ),
            (
                "listening on http://127.0.0.1:8000/",
                Some("127.0.0.1:8000"),
            ),
            ("listening soon", None),
        ];
        for (line, expected) in cases {
            assert_eq!(
                listening_addr(line),
                expected.map(|a| a.parse().expect("a socket address")),
                "{line}"
            );
        }
    }
}
