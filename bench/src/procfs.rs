//! Memory and CPU of processes, from /proc (Linux only).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

/// A field of /proc/<pid>/status in kB (`VmRSS`, `VmHWM`).
pub fn status_kb(pid: u32, field: &str) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    s.lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
}

pub fn rss_mb(pid: u32) -> Option<f64> {
    status_kb(pid, "VmRSS").map(|kb| kb as f64 / 1024.0)
}

pub fn hwm_mb(pid: u32) -> Option<f64> {
    status_kb(pid, "VmHWM").map(|kb| kb as f64 / 1024.0)
}

/// (parent pid, user + system CPU ticks) of a process.
fn stat(pid: u32) -> Option<(u32, u64)> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may hold spaces and parentheses: fields start after the last ')'.
    let rest = &s[s.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // rest[0] is field 3 (state): ppid is field 4, utime 14, stime 15.
    let ppid = f.get(1)?.parse().ok()?;
    let ut: u64 = f.get(11)?.parse().ok()?;
    let st: u64 = f.get(12)?.parse().ok()?;
    Some((ppid, ut + st))
}

/// CPU ticks used so far by `pid` (threads included), and by its direct children if
/// `with_children` (PostgreSQL: the postmaster and its backends). Children that exited
/// meanwhile are not counted.
pub fn cpu_ticks(pid: u32, with_children: bool) -> u64 {
    let own = stat(pid).map_or(0, |(_, t)| t);
    if !with_children {
        return own;
    }
    let mut total = own;
    if let Ok(dir) = std::fs::read_dir("/proc") {
        for e in dir.flatten() {
            let Some(p) = e.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else {
                continue;
            };
            if let Some((ppid, t)) = stat(p)
                && ppid == pid
            {
                total += t;
            }
        }
    }
    total
}

/// Clock ticks per second (`getconf CLK_TCK`, 100 on Linux).
pub fn ticks_per_second() -> f64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100.0)
}

/// Samples a process's RSS every 50 ms in the background; the highest value seen is kept.
pub struct RssSampler {
    stop: Arc<AtomicBool>,
    max_kb: Arc<AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

impl RssSampler {
    pub fn start(pid: u32) -> RssSampler {
        let stop = Arc::new(AtomicBool::new(false));
        let max_kb = Arc::new(AtomicU64::new(status_kb(pid, "VmRSS").unwrap_or(0)));
        let (s, m) = (stop.clone(), max_kb.clone());
        let task = tokio::spawn(async move {
            // Bounded: stops when asked, or after an hour whatever happens.
            for _ in 0..72_000 {
                if s.load(Ordering::Relaxed) {
                    break;
                }
                if let Some(kb) = status_kb(pid, "VmRSS") {
                    m.fetch_max(kb, Ordering::Relaxed);
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        });
        RssSampler { stop, max_kb, task }
    }

    /// Highest RSS seen, in MB.
    pub async fn finish(self) -> f64 {
        self.stop.store(true, Ordering::Relaxed);
        let _ = self.task.await;
        self.max_kb.load(Ordering::Relaxed) as f64 / 1024.0
    }
}

/// Data-carrying TCP segments (sent, received) on the sockets `pid` holds toward
/// 127.0.0.1:`port`, from `ss -tinp` (tcp_info). On loopback each client write is one
/// segment, so the sent count is the number of requests the process wrote to that server:
/// its round trips, including those no statement statistics see (a pool's liveness pings).
/// `None` when `ss` is unavailable or shows no socket.
pub fn tcp_data_segments(pid: u32, port: u16) -> Option<(u64, u64)> {
    let out = std::process::Command::new("ss")
        .args([
            "-tinpH",
            "state",
            "established",
            "dport",
            "=",
            &format!(":{port}"),
        ])
        .output()
        .ok()?;
    let text = String::from_utf8(out.stdout).ok()?;
    let owner = format!("pid={pid},");
    let mut lines = text.lines().peekable();
    let (mut sent, mut received, mut sockets) = (0u64, 0u64, 0u32);
    while let Some(line) = lines.next() {
        // Each socket: a line with the addresses and users, then an indented tcp_info line.
        let Some(info) = lines.next_if(|l| l.starts_with(char::is_whitespace)) else {
            continue;
        };
        if !line.contains(&owner) {
            continue;
        }
        let field = |name: &str| {
            info.split_whitespace()
                .find_map(|f| f.strip_prefix(name))
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(0)
        };
        sent += field("data_segs_out:");
        received += field("data_segs_in:");
        sockets += 1;
    }
    (sockets > 0).then_some((sent, received))
}
