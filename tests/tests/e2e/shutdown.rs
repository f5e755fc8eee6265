//! What Kubernetes relies on, with real processes: SIGTERM drains (readiness off at once,
//! the turn in flight finishes, new turns get a retryable 503, the process exits within its
//! timeout), and readiness follows PostgreSQL, recovering without a restart.

use std::time::Duration;

use crate::checks::titles;
use crate::fleet::{Fleet, Needs};
use crate::proxy::Proxy;

const DEADLINE: Duration = Duration::from_secs(30);

/// Polls `GET path` on replica 0 until it answers `status`.
async fn wait_status(f: &Fleet, path: &str, status: u16) -> crate::fleet::Answer {
    let deadline = tokio::time::Instant::now() + DEADLINE;
    loop {
        let a = f.get(0, path).await;
        if a.status == status {
            return a;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{path} never answered {status}; last: {a:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn sigterm_turns_readiness_off_refuses_new_turns_and_finishes_the_turn_in_flight() {
    // Each model call takes 1 s, so the turn below is still running when SIGTERM arrives.
    let Some(mut f) = Fleet::start(
        Needs::Any,
        1,
        1000,
        &[
            ("SHUTDOWN_DELAY_SECS", "0"),
            ("SHUTDOWN_TIMEOUT_SECS", "20"),
        ],
    )
    .await
    else {
        unreachable!("Needs::Any always starts");
    };
    let base = f.replica(0).url("");
    assert_eq!(f.get(0, "/readyz").await.status, 200);
    let before = f.mock_requests().await;

    let in_flight = f.chat_at(&base, "uma", "add Slow thing", None, None);
    let sigterm = async {
        // Once the model has the turn's first request, the turn is in flight.
        let deadline = tokio::time::Instant::now() + DEADLINE;
        while f.mock_requests().await <= before {
            assert!(
                tokio::time::Instant::now() < deadline,
                "the turn never started"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        f.replica(0).terminate().expect("SIGTERM");
        let ready = wait_status(&f, "/readyz", 503).await;
        assert_eq!(ready.code(), "shutting_down", "{ready:?}");
        let refused = f
            .chat_at(&base, "uma", "add Too late", None, None)
            .await
            .expect("a draining replica still answers");
        assert_eq!(refused.status, 503, "{refused:?}");
        assert_eq!(refused.code(), "shutting_down", "{refused:?}");
        assert!(refused.retry_after.is_some(), "retryable: {refused:?}");
        assert_eq!(
            f.get(0, "/healthz").await.status,
            200,
            "alive while draining"
        );
    };
    let (done, ()) = tokio::join!(in_flight, sigterm);
    let done = done.expect("the turn in flight is answered");
    assert_eq!(done.status, 200, "{done:?}");

    // Exits by itself, cleanly, within its shutdown timeout.
    let mut r = f.replicas[0].take().expect("the replica");
    let status = r
        .wait_exit(Duration::from_secs(25))
        .await
        .unwrap_or_else(|e| panic!("{e:#}\n{}", r.log()));
    assert!(status.success(), "exit status {status}\n{}", r.log());
    r.wait_log("turns drained", Duration::from_secs(10))
        .await
        .unwrap_or_else(|e| panic!("{e:#}"));

    // The finished turn is stored; the refused one left nothing.
    f.restart(0).await;
    let all = titles(&f.all_tasks(0, "uma").await);
    assert_eq!(all, ["Slow thing"]);
    f.finish().await;
}

#[tokio::test]
async fn a_turn_outlasting_the_shutdown_timeout_does_not_keep_the_process_alive() {
    let Some(mut f) = Fleet::start(Needs::Any, 1, 120_000, &[("SHUTDOWN_TIMEOUT_SECS", "1")]).await
    else {
        unreachable!("Needs::Any always starts");
    };
    let base = f.replica(0).url("");
    let before = f.mock_requests().await;
    let http = f.http.clone();
    let stuck = tokio::spawn(async move {
        http.post(format!("{base}/api/vic/chat"))
            .json(&serde_json::json!({"message": "add Never"}))
            .send()
            .await
    });
    let deadline = tokio::time::Instant::now() + DEADLINE;
    while f.mock_requests().await <= before {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the turn never started"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let mut r = f.replicas[0].take().expect("the replica");
    r.terminate().expect("SIGTERM");
    let status = r
        .wait_exit(Duration::from_secs(20))
        .await
        .unwrap_or_else(|e| panic!("{e:#}\n{}", r.log()));
    assert!(status.success(), "exit status {status}\n{}", r.log());
    r.wait_log("shutdown timeout reached", Duration::from_secs(10))
        .await
        .unwrap_or_else(|e| panic!("{e:#}"));
    assert!(
        stuck.await.expect("the client task").is_err(),
        "the cut turn got no answer"
    );
    f.finish().await;
}

#[tokio::test]
async fn readiness_fails_while_postgresql_is_away_and_recovers_without_a_restart() {
    let Some(mut f) = Fleet::start(Needs::Postgres, 0, 0, &[]).await else {
        return;
    };
    // The replica reaches PostgreSQL through a proxy the test can cut.
    let pg: url_parts::Pg = url_parts::Pg::parse(&f.db_url());
    let proxy = Proxy::start(vec![pg.addr]).await;
    let via_proxy = pg.with_addr(proxy.addr());
    let r = f.spawn(Some(&via_proxy)).await;
    let pid = r.pid();
    f.replicas.push(Some(r));
    let base = f.replica(0).url("");
    let ok = f
        .chat_at(&base, "wes", "add Before", None, None)
        .await
        .expect("a turn");
    assert_eq!(ok.status, 200, "{ok:?}");

    proxy.cut();
    let ready = wait_status(&f, "/readyz", 503).await;
    assert_eq!(ready.code(), "database_unavailable", "{ready:?}");
    assert_eq!(f.get(0, "/healthz").await.status, 200, "liveness stays up");
    // Chat answers 503 JSON with Retry-After throughout; once a second probe has failed the
    // readiness gate answers it (its own code) at once instead of after a pool time-out.
    let deadline = tokio::time::Instant::now() + DEADLINE;
    loop {
        let refused = f
            .chat_at(&base, "wes", "add During", None, None)
            .await
            .expect("an answer");
        assert_eq!(refused.status, 503, "{refused:?}");
        assert!(refused.retry_after.is_some(), "{refused:?}");
        assert!(refused.json["error"]["message"].is_string(), "{refused:?}");
        if refused.code() == "database_unavailable" {
            break;
        }
        assert_eq!(refused.code(), "unavailable", "{refused:?}");
        assert!(
            tokio::time::Instant::now() < deadline,
            "the gate never closed"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let read = f.get(0, "/api/wes/tasks").await;
    assert_eq!(read.status, 503, "{read:?}");
    assert_eq!(read.code(), "database_unavailable", "{read:?}");

    proxy.restore();
    wait_status(&f, "/readyz", 200).await;
    assert_eq!(f.replica(0).pid(), pid, "the same process recovered");
    let deadline = tokio::time::Instant::now() + DEADLINE;
    loop {
        let a = f
            .chat_at(&base, "wes", "add After", None, None)
            .await
            .expect("an answer");
        if a.status == 200 {
            break;
        }
        // A pooled connection the cut broke may fail one call; it is then replaced.
        assert_eq!(a.status, 503, "{a:?}");
        assert!(
            tokio::time::Instant::now() < deadline,
            "chat never recovered: {a:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut all = titles(&f.all_tasks(0, "wes").await);
    all.sort();
    assert_eq!(all, ["After", "Before"]);
    drop(proxy);
    f.finish().await;
}

/// Just enough URL handling to route a PostgreSQL URL through the proxy.
mod url_parts {
    use std::net::SocketAddr;

    pub struct Pg {
        pub addr: SocketAddr,
        url: String,
    }

    impl Pg {
        /// `postgres://user@HOST:PORT/db?…` with a numeric loopback host (as test.sh sets).
        pub fn parse(url: &str) -> Pg {
            let after = url.split_once("://").expect("a URL").1;
            let host_port = after.split(['/', '?']).next().expect("a host");
            let host_port = host_port.rsplit('@').next().expect("a host");
            let addr = host_port
                .parse()
                .unwrap_or_else(|_| panic!("a numeric host:port in the test DATABASE_URL"));
            Pg {
                addr,
                url: url.to_string(),
            }
        }

        pub fn with_addr(&self, addr: SocketAddr) -> String {
            self.url
                .replacen(&self.addr.to_string(), &addr.to_string(), 1)
        }
    }
}
