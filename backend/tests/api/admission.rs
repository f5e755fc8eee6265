//! Who gets a turn: a per-user cap on turns in flight (429 + Retry-After) so one person cannot
//! take every global slot, and an idempotent replay of a stored answer is never refused by the
//! rate limit or the slot cap.

use std::time::Duration;

use serde_json::{Value, json};
use todo_backend::access::AccessSettings;
use todo_test_support::Kind;
use wiremock::ResponseTemplate;

use crate::helpers::*;

/// Polls until the mock model has received `n` requests.
async fn wait_for_llm_requests(app: &TestApp, n: usize) {
    tokio::time::timeout(Duration::from_secs(30), async {
        while app.llm_requests().await.len() < n {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("the turns reached the model");
}

#[tokio::test]
async fn one_user_cannot_take_every_slot_and_gets_429_with_retry_after() {
    let o = with_access(AccessSettings {
        max_turns_per_user: 2,
        max_concurrent_turns: 8,
        ..AccessSettings::default()
    });
    let Some(app) = spawn_app_with(Kind::Sqlite, o).await else {
        return;
    };
    // The model takes a while, so alice's first turns are still in flight.
    app.llm_responds(
        ResponseTemplate::new(200)
            .set_body_json(text_reply("ok"))
            .set_delay(Duration::from_secs(3)),
    )
    .await;
    let app = std::sync::Arc::new(app);
    let mut running = Vec::new();
    for i in 0..2 {
        let app = app.clone();
        running.push(tokio::spawn(async move {
            app.chat("alice", json!({"message": format!("slow {i}")}))
                .await
                .status()
        }));
    }
    wait_for_llm_requests(&app, 2).await;
    let r = app.chat("alice", json!({"message": "a third"})).await;
    assert_eq!(r.status(), 429);
    assert_eq!(r.headers()["retry-after"], "2");
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], "too_many_turns", "{body}");
    // Someone else still gets a turn.
    let bob = app.clone();
    let bob = tokio::spawn(async move { bob.chat("bob", json!({"message": "hi"})).await.status() });
    for t in running {
        assert_eq!(t.await.unwrap(), 200);
    }
    assert_eq!(bob.await.unwrap(), 200);
    // Alice's finished turns free her places.
    assert_eq!(
        app.chat("alice", json!({"message": "again"}))
            .await
            .status(),
        200
    );
    std::sync::Arc::into_inner(app).unwrap().cleanup().await;
}

#[tokio::test]
async fn a_replay_is_never_refused_by_the_rate_limit_or_the_slot_cap() {
    let o = with_access(AccessSettings {
        rate_limit_per_minute: 1,
        max_concurrent_turns: 1,
        ..AccessSettings::default()
    });
    let Some(app) = spawn_app_with(Kind::Sqlite, o).await else {
        return;
    };
    app.llm_responds(Script::new(&[], "ok")).await;
    let body = json!({"message": "hello"});
    let first = app.chat_with_key("alice", "k-1", body.clone()).await;
    assert_eq!(first.status(), 200);
    let first: Value = first.json().await.unwrap();
    // The rate is spent: a new turn is refused, the replay is not.
    let r = app.chat("alice", json!({"message": "new"})).await;
    assert_eq!(r.status(), 429);
    let replay = app.chat_with_key("alice", "k-1", body.clone()).await;
    assert_eq!(replay.status(), 200);
    assert_eq!(replay.headers()["idempotent-replayed"], "true");
    assert_eq!(replay.json::<Value>().await.unwrap(), first);

    // A refused keyed request leaves its key free: once allowed, it runs.
    let refused = app
        .chat_with_key("alice", "k-2", json!({"message": "later"}))
        .await;
    assert_eq!(refused.status(), 429);
    let again = app
        .chat_with_key("alice", "k-2", json!({"message": "later"}))
        .await;
    assert_eq!(
        again.status(),
        429,
        "still over the rate, not 'in progress'"
    );
    let code = again.json::<Value>().await.unwrap()["error"]["code"].clone();
    assert_eq!(code, "rate_limited");
    app.cleanup().await;
}

#[tokio::test]
async fn a_replay_is_served_while_every_slot_is_taken() {
    let o = with_access(AccessSettings {
        max_concurrent_turns: 1,
        ..AccessSettings::default()
    });
    let Some(app) = spawn_app_with(Kind::Sqlite, o).await else {
        return;
    };
    app.llm_responds(Script::new(&[], "ok")).await;
    let body = json!({"message": "hello"});
    assert_eq!(
        app.chat_with_key("alice", "k-1", body.clone())
            .await
            .status(),
        200
    );
    app.llm.reset().await;
    app.llm_responds(
        ResponseTemplate::new(200)
            .set_body_json(text_reply("slow"))
            .set_delay(Duration::from_secs(3)),
    )
    .await;
    let app = std::sync::Arc::new(app);
    let slow = app.clone();
    let slow =
        tokio::spawn(async move { slow.chat("bob", json!({"message": "slow"})).await.status() });
    wait_for_llm_requests(&app, 1).await;
    assert_eq!(
        app.chat("carol", json!({"message": "x"})).await.status(),
        503
    );
    let replay = app.chat_with_key("alice", "k-1", body).await;
    assert_eq!(replay.status(), 200);
    assert_eq!(replay.headers()["idempotent-replayed"], "true");
    assert_eq!(slow.await.unwrap(), 200);
    std::sync::Arc::into_inner(app).unwrap().cleanup().await;
}

/// With two replicas on one PostgreSQL database, one person still has one cap: a turn in
/// flight on each replica fills a cap of 2, and a third is refused by either replica (429 +
/// Retry-After) while another person is served; once the turns end, either replica admits
/// the person again.
#[tokio::test]
async fn the_per_user_cap_counts_turns_on_every_replica() {
    let o = || {
        with_access(AccessSettings {
            max_turns_per_user: 2,
            max_concurrent_turns: 8,
            ..AccessSettings::default()
        })
    };
    let Some(a) = spawn_app_with(Kind::Postgres, o()).await else {
        eprintln!("SKIPPED: no PostgreSQL for the replicas' shared turn cap");
        return;
    };
    let b = spawn_replica(&a, o()).await;
    for app in [&a, &b] {
        app.llm_responds(
            ResponseTemplate::new(200)
                .set_body_json(text_reply("ok"))
                .set_delay(Duration::from_secs(3)),
        )
        .await;
    }
    let (a, b) = (std::sync::Arc::new(a), std::sync::Arc::new(b));
    let mut running = Vec::new();
    for (i, app) in [a.clone(), b.clone()].into_iter().enumerate() {
        running.push(tokio::spawn(async move {
            app.chat("alice", json!({"message": format!("slow {i}")}))
                .await
                .status()
        }));
    }
    wait_for_llm_requests(&a, 1).await;
    wait_for_llm_requests(&b, 1).await;
    for app in [&a, &b] {
        let r = app.chat("alice", json!({"message": "a third"})).await;
        assert_eq!(r.status(), 429, "each replica sees both turns");
        assert_eq!(r.headers()["retry-after"], "2");
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["error"]["code"], "too_many_turns", "{body}");
    }
    let bob = b.clone();
    let bob = tokio::spawn(async move { bob.chat("bob", json!({"message": "hi"})).await.status() });
    for t in running {
        assert_eq!(t.await.unwrap(), 200);
    }
    assert_eq!(bob.await.unwrap(), 200);
    for app in [&a, &b] {
        assert_eq!(
            app.chat("alice", json!({"message": "again"}))
                .await
                .status(),
            200,
            "ended turns free their places on every replica"
        );
    }
    std::sync::Arc::into_inner(b).unwrap().cleanup().await;
    std::sync::Arc::into_inner(a).unwrap().cleanup().await;
}
