//! Replicas as a deployment runs them, on one PostgreSQL: a conversation spread over three
//! processes survives a SIGKILL and a restart of all of them, a per-user rate is one
//! allowance across replicas, and a rolling restart under load loses and doubles nothing.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio::sync::Mutex;

use crate::checks::{assert_history, titles};
use crate::fleet::{Answer, Fleet, Needs};

const STOP_WITHIN: Duration = Duration::from_secs(30);
const MAX_TURNS_PER_CLIENT: usize = 90;

#[tokio::test]
async fn three_replicas_share_a_conversation_through_a_sigkill_and_a_restart_of_every_replica() {
    let Some(mut f) = Fleet::start(Needs::Postgres, 3, 0, &[]).await else {
        return;
    };
    let u = "xena";
    let mut said: Vec<String> = Vec::new();
    // Turns alternate between the replicas.
    let conv = turn(&f, 0, u, "add Task 0", None, &mut said).await;
    for k in 1..3 {
        turn(&f, k, u, &format!("add Task {k}"), Some(&conv), &mut said).await;
    }
    // Replica 1 crashes midway; the others carry on.
    f.kill(1).await;
    for (k, i) in [(3, 0), (4, 2), (5, 0)] {
        turn(&f, i, u, &format!("add Task {k}"), Some(&conv), &mut said).await;
    }
    f.restart(1).await;
    turn(&f, 1, u, "done 2", Some(&conv), &mut said).await;
    // Every replica restarts (as containers do); the conversation continues.
    for i in 0..3 {
        if i == 1 {
            f.kill(i).await;
        } else {
            f.stop_gracefully(i, STOP_WITHIN).await;
        }
        f.restart(i).await;
    }
    for (k, i) in [(6, 2), (7, 1)] {
        turn(&f, i, u, &format!("add Task {k}"), Some(&conv), &mut said).await;
    }
    let said: Vec<&str> = said.iter().map(String::as_str).collect();
    for i in 0..3 {
        assert_history(&f.messages(i, u, &conv).await, &said);
    }
    let mut all = titles(&f.all_tasks(0, u).await);
    all.sort();
    let want: Vec<String> = (0..8).map(|k| format!("Task {k}")).collect();
    assert_eq!(all, want, "each task once, none lost");
    let done = f.get(2, &format!("/api/{u}/tasks?status=completed")).await;
    assert_eq!(
        titles(done.json["tasks"].as_array().expect("tasks")),
        ["Task 1"]
    );
    f.finish().await;
}

/// One turn on replica `i` that must succeed in conversation `conv`; returns its id.
async fn turn(
    f: &Fleet,
    i: usize,
    user: &str,
    message: &str,
    conv: Option<&str>,
    said: &mut Vec<String>,
) -> String {
    let base = f.replica(i).url("");
    let a = f
        .chat_at(&base, user, message, conv, None)
        .await
        .expect("an answer");
    assert_eq!(a.status, 200, "{message:?} on replica {i}: {a:?}");
    let id = a.json["conversation_id"]
        .as_str()
        .expect("a conversation id")
        .to_string();
    if let Some(c) = conv {
        assert_eq!(id, c, "one conversation");
    }
    said.push(message.to_string());
    id
}

#[tokio::test]
async fn a_user_flooding_three_replicas_gets_one_allowance_not_three() {
    let per_minute = 4;
    let Some(f) = Fleet::start(Needs::Postgres, 3, 0, &[("RATE_LIMIT_PER_MINUTE", "4")]).await
    else {
        return;
    };
    let started = std::time::Instant::now();
    let flood = (0..24).map(|k| {
        let base = f.replica(k % 3).url("");
        let f = &f;
        async move { f.chat_at(&base, "yuri", "hello", None, None).await }
    });
    let answers: Vec<Answer> = futures::future::join_all(flood)
        .await
        .into_iter()
        .map(|r| r.expect("every request is answered"))
        .collect();
    // One more turn is allowed per 15 s elapsed (none on any ordinary run).
    let refills = started.elapsed().as_secs() as usize / 15;
    let ok = answers.iter().filter(|a| a.status == 200).count();
    for a in answers.iter().filter(|a| a.status != 200) {
        assert_eq!(a.status, 429, "{a:?}");
        assert_eq!(a.code(), "rate_limited", "{a:?}");
        assert!(a.retry_after.is_some(), "{a:?}");
    }
    assert!(
        ok >= per_minute && ok <= per_minute + refills,
        "{ok} of 24 allowed across three replicas; one allowance is {per_minute} \
         (counted per process it would be {})",
        per_minute * 3
    );
    // Another user has an allowance of their own.
    let other = f
        .chat_at(&f.replica(1).url(""), "zoe", "hello", None, None)
        .await
        .expect("an answer");
    assert_eq!(other.status, 200, "{other:?}");
    f.finish().await;
}

/// A balancer in front of the replicas, as a Service is: round-robin over those in
/// rotation; a replica leaves the rotation when it says it is shutting down or refuses
/// connections, and joins again once restarted.
struct Balancer {
    urls: Mutex<Vec<Option<String>>>,
    next: std::sync::atomic::AtomicUsize,
}

impl Balancer {
    async fn pick(&self) -> (usize, String) {
        loop {
            let urls = self.urls.lock().await;
            let n = urls.len();
            for _ in 0..n {
                let i = self.next.fetch_add(1, Ordering::SeqCst) % n;
                if let Some(u) = &urls[i] {
                    return (i, u.clone());
                }
            }
            drop(urls);
            // Every replica is out for a moment (one is restarting): try again shortly.
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    async fn take_out(&self, i: usize, url: &str) {
        let mut urls = self.urls.lock().await;
        if urls[i].as_deref() == Some(url) {
            urls[i] = None;
        }
    }

    async fn put_in(&self, i: usize, url: String) {
        self.urls.lock().await[i] = Some(url);
    }
}

/// What the clients saw.
#[derive(Default)]
struct Seen {
    ok: usize,
    retryable_503: usize,
    refused_connections: usize,
    unexpected: Vec<String>,
}

#[tokio::test]
async fn a_rolling_restart_under_steady_load_loses_no_turn_and_doubles_none() {
    let Some(mut f) = Fleet::start(
        Needs::Postgres,
        3,
        100,
        &[("SHUTDOWN_DELAY_SECS", "1"), ("RATE_LIMIT_PER_MINUTE", "0")],
    )
    .await
    else {
        return;
    };
    let balancer = Arc::new(Balancer {
        urls: Mutex::new((0..3).map(|i| Some(f.replica(i).url(""))).collect()),
        next: Default::default(),
    });
    let stop = Arc::new(AtomicBool::new(false));
    let seen = Arc::new(Mutex::new(Seen::default()));
    let clients = 4;
    let mut loops = Vec::new();
    for c in 0..clients {
        let (balancer, stop, seen) = (balancer.clone(), stop.clone(), seen.clone());
        let http = f.http.clone();
        loops.push(tokio::spawn(async move {
            let user = format!("load{c}");
            let mut conv: Option<String> = None;
            let mut said = Vec::new();
            let mut k = 0;
            // Bounded so one conversation's history and task list fit one page each.
            while (!stop.load(Ordering::SeqCst) || k < 3) && k < MAX_TURNS_PER_CLIENT {
                let message = format!("add L{c} item {k}");
                let key = format!("{user}-{k}");
                // One logical request, retried (same key) until it gets its 200.
                loop {
                    let (i, base) = balancer.pick().await;
                    let mut body = serde_json::json!({ "message": message });
                    if let Some(id) = &conv {
                        body["conversation_id"] = serde_json::json!(id);
                    }
                    let sent = http
                        .post(format!("{base}/api/{user}/chat"))
                        .header("Idempotency-Key", &key)
                        .json(&body)
                        .send()
                        .await;
                    let a = match sent {
                        Ok(r) => crate::fleet::answer(r).await,
                        Err(e) if e.is_connect() => {
                            seen.lock().await.refused_connections += 1;
                            balancer.take_out(i, &base).await;
                            continue;
                        }
                        Err(e) => {
                            seen.lock().await.unexpected.push(format!("{message}: {e}"));
                            return (user, conv, said);
                        }
                    };
                    if a.status == 200 {
                        seen.lock().await.ok += 1;
                        conv = a.json["conversation_id"].as_str().map(str::to_string);
                        break;
                    }
                    if a.status == 503 && a.retry_after.is_some() {
                        seen.lock().await.retryable_503 += 1;
                        if a.code() == "shutting_down" {
                            balancer.take_out(i, &base).await;
                        }
                        continue;
                    }
                    seen.lock()
                        .await
                        .unexpected
                        .push(format!("{message}: {a:?}"));
                    return (user, conv, said);
                }
                said.push(message);
                k += 1;
                // A steady pace rather than a flat-out flood.
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            (user, conv, said)
        }));
    }
    // Replicas are replaced one at a time, each stopped with SIGTERM while serving.
    for i in 0..3 {
        let before = seen.lock().await.ok;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        while seen.lock().await.ok < before + 4 {
            assert!(
                tokio::time::Instant::now() < deadline,
                "no progress under load"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        f.stop_gracefully(i, STOP_WITHIN).await;
        f.restart(i).await;
        balancer.put_in(i, f.replica(i).url("")).await;
    }
    stop.store(true, Ordering::SeqCst);
    let mut results = Vec::new();
    for l in loops {
        results.push(l.await.expect("a client loop"));
    }
    let seen = seen.lock().await;
    eprintln!(
        "rolling restart: {} turns answered 200, {} retryable 503s, {} refused connections",
        seen.ok, seen.retryable_503, seen.refused_connections
    );
    assert!(
        seen.unexpected.is_empty(),
        "unexpected answers: {:#?}",
        seen.unexpected
    );
    for (user, conv, said) in results {
        let conv = conv.expect("a conversation");
        let said: Vec<&str> = said.iter().map(String::as_str).collect();
        assert_history(&f.messages(0, &user, &conv).await, &said);
        let stored: BTreeSet<String> = titles(&f.all_tasks(1, &user).await).into_iter().collect();
        let want: BTreeSet<String> = said
            .iter()
            .map(|m| m.trim_start_matches("add ").to_string())
            .collect();
        assert_eq!(stored, want, "{user}: every task once");
        assert_eq!(
            f.all_tasks(2, &user).await.len(),
            said.len(),
            "{user}: no task doubled"
        );
    }
    f.finish().await;
}
