//! A closed-loop load generator: N workers, each sending its next request as soon as the
//! previous one answered, until a deadline or a total request budget, whichever comes first.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// What one load point produced.
#[derive(Debug, Default)]
pub struct LoadResult {
    /// Successful operations.
    pub ok: u64,
    /// Failures by a short description (status or error kind).
    pub errors: BTreeMap<String, u64>,
    /// Latency of every successful operation, in microseconds.
    pub latencies_us: Vec<u64>,
    /// Wall time from the first request to the last answer.
    pub elapsed: Duration,
}

impl LoadResult {
    pub fn per_second(&self) -> f64 {
        self.ok as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    pub fn error_count(&self) -> u64 {
        self.errors.values().sum()
    }

    pub fn errors_text(&self) -> String {
        if self.errors.is_empty() {
            return "0".into();
        }
        self.errors
            .iter()
            .map(|(k, v)| format!("{v}× {k}"))
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// Latency summary, each value minus `subtract_us` (floored at 0).
    pub fn summary(&self, subtract_us: u64) -> Summary {
        Summary::of(&self.latencies_us, subtract_us)
    }
}

/// Percentiles of a latency sample, in milliseconds.
#[derive(Debug, Clone, Copy, Default, serde::Serialize)]
pub struct Summary {
    pub n: usize,
    pub mean_ms: f64,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

impl Summary {
    pub fn of(sample_us: &[u64], subtract_us: u64) -> Summary {
        if sample_us.is_empty() {
            return Summary::default();
        }
        let mut v: Vec<u64> = sample_us
            .iter()
            .map(|x| x.saturating_sub(subtract_us))
            .collect();
        v.sort_unstable();
        // Nearest-rank percentile.
        let pct = |q: f64| {
            let rank = ((q * v.len() as f64).ceil() as usize).clamp(1, v.len());
            v[rank - 1] as f64 / 1000.0
        };
        Summary {
            n: v.len(),
            mean_ms: v.iter().sum::<u64>() as f64 / v.len() as f64 / 1000.0,
            p50_ms: pct(0.50),
            p90_ms: pct(0.90),
            p99_ms: pct(0.99),
            max_ms: *v.last().unwrap_or(&0) as f64 / 1000.0,
        }
    }
}

/// Runs `op(worker, iteration)` on `concurrency` workers until `duration` has passed or
/// `max_ops` operations were started. An operation returns `Err(kind)` on failure.
pub async fn closed_loop<F, Fut>(
    concurrency: usize,
    duration: Duration,
    max_ops: u64,
    op: F,
) -> LoadResult
where
    F: Fn(usize, u64) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Result<(), String>> + Send + 'static,
{
    let started = Instant::now();
    let deadline = started + duration;
    let budget = Arc::new(AtomicU64::new(0));
    let mut workers = Vec::with_capacity(concurrency);
    for w in 0..concurrency {
        let op = op.clone();
        let budget = budget.clone();
        workers.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            let mut errors: BTreeMap<String, u64> = BTreeMap::new();
            let mut i = 0u64;
            while Instant::now() < deadline && budget.fetch_add(1, Ordering::Relaxed) < max_ops {
                let t = Instant::now();
                match op(w, i).await {
                    Ok(()) => lat.push(t.elapsed().as_micros() as u64),
                    Err(kind) => *errors.entry(kind).or_default() += 1,
                }
                i += 1;
            }
            (lat, errors)
        }));
    }
    let mut out = LoadResult::default();
    for w in workers {
        match w.await {
            Ok((lat, errors)) => {
                out.ok += lat.len() as u64;
                out.latencies_us.extend(lat);
                for (k, v) in errors {
                    *out.errors.entry(k).or_default() += v;
                }
            }
            Err(e) => {
                *out.errors
                    .entry(format!("worker panicked: {e}"))
                    .or_default() += 1
            }
        }
    }
    out.elapsed = started.elapsed();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_use_the_nearest_rank() {
        let v: Vec<u64> = (1..=100).map(|x| x * 1000).collect();
        let s = Summary::of(&v, 0);
        assert_eq!(s.p50_ms, 50.0);
        assert_eq!(s.p99_ms, 99.0);
        assert_eq!(s.max_ms, 100.0);
        let s = Summary::of(&v, 10_000);
        assert_eq!(s.p50_ms, 40.0);
        assert_eq!(Summary::of(&[], 0).n, 0);
    }

    #[tokio::test]
    async fn the_loop_stops_at_its_budget() {
        let r = closed_loop(4, Duration::from_secs(30), 10, |_, _| async { Ok(()) }).await;
        assert_eq!(r.ok, 10);
    }
}
