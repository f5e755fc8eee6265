//! Streamed turns (`Accept: text/event-stream`): time to the first event and to the first
//! piece of text, next to the whole turn, sequentially, one fresh conversation per turn.

use std::fmt::Write as _;
use std::time::Instant;

use anyhow::{Context, bail};
use serde_json::json;

use crate::clients::Backend;
use crate::load::Summary;

/// The three latencies of the streamed turns, and a JSON turn's for comparison.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Streamed {
    pub turns: usize,
    pub first_event: Summary,
    pub first_text: Summary,
    pub whole_turn: Summary,
    pub json_turn: Summary,
}

/// Microseconds to the first event, the first `delta`, and the end of one streamed turn.
async fn one(backend: &Backend, user: &str, message: &str) -> anyhow::Result<(u64, u64, u64)> {
    let started = Instant::now();
    let mut r = backend
        .http
        .post(format!("{}/api/{user}/chat", backend.base))
        .header("accept", "text/event-stream")
        .json(&json!({ "message": message }))
        .send()
        .await
        .context("streamed turn")?;
    if !r.status().is_success() {
        bail!("streamed turn answered {}", r.status());
    }
    let (mut first_event, mut first_text) = (None, None);
    let mut seen = String::new();
    while let Some(chunk) = r.chunk().await.context("reading the stream")? {
        let us = started.elapsed().as_micros() as u64;
        seen.push_str(&String::from_utf8_lossy(&chunk));
        if first_event.is_none() && seen.contains("\n\n") {
            first_event = Some(us);
        }
        if first_text.is_none() && seen.contains("event: delta") {
            first_text = Some(us);
        }
    }
    let whole = started.elapsed().as_micros() as u64;
    if !seen.contains("event: done") {
        bail!("the stream ended without `done`");
    }
    Ok((
        first_event.unwrap_or(whole),
        first_text.unwrap_or(whole),
        whole,
    ))
}

/// `turns` streamed `add` turns and as many JSON ones, alternating, one at a time.
pub async fn measure(backend: &Backend, run: &str, turns: usize) -> anyhow::Result<Streamed> {
    let user = format!("{run}-streamed");
    let (mut ev, mut tx, mut whole, mut plain) = (vec![], vec![], vec![], vec![]);
    for t in 0..turns {
        let (a, b, c) = one(backend, &user, &format!("add streamed task {t}")).await?;
        ev.push(a);
        tx.push(b);
        whole.push(c);
        let started = Instant::now();
        backend
            .turn(&user, None, &format!("add plain task {t}"))
            .await
            .map_err(|e| anyhow::anyhow!("JSON turn failed: {e}"))?;
        plain.push(started.elapsed().as_micros() as u64);
    }
    Ok(Streamed {
        turns,
        first_event: Summary::of(&ev, 0),
        first_text: Summary::of(&tx, 0),
        whole_turn: Summary::of(&whole, 0),
        json_turn: Summary::of(&plain, 0),
    })
}

/// The report's table.
pub fn render(md: &mut String, s: &Streamed, llm_latency_ms: u64) {
    let _ = writeln!(
        md,
        "\n### Streamed turns: time to first event ({} sequential `add` turns, mock model {llm_latency_ms} ms per call)\n\n\
         The first event (`started`) comes once the message is stored, before the model is called; \
         the first text needs the model's second call (after the tool ran).\n\n\
         | measure | p50 | p90 | p99 | max |\n|---|---:|---:|---:|---:|",
        s.turns
    );
    for (name, v) in [
        ("time to first event", &s.first_event),
        ("time to first text delta", &s.first_text),
        ("streamed turn, whole", &s.whole_turn),
        ("JSON turn (same work)", &s.json_turn),
    ] {
        let _ = writeln!(
            md,
            "| {name} | {:.1} ms | {:.1} ms | {:.1} ms | {:.1} ms |",
            v.p50_ms, v.p90_ms, v.p99_ms, v.max_ms
        );
    }
}
