//! No way in through a browser: in the default open (loopback) mode a page that rebinds its
//! DNS name to 127.0.0.1, or a foreign page posting across origins, gets a JSON 421/403 on
//! every route, never the person's tasks, and never starts a chat turn.

use reqwest::Method;
use secrecy::SecretString;
use serde_json::{Value, json};
use todo_backend::access::AccessSettings;
use todo_test_support::Kind;

use crate::helpers::*;
use crate::on_both_stores;

/// Every route, with a body for the ones that take one.
fn routes() -> Vec<(Method, String, Option<Value>)> {
    let id = "0190a000-0000-7000-8000-000000000000";
    vec![
        (
            Method::POST,
            "/api/alice/chat".into(),
            Some(json!({"message": "delete everything"})),
        ),
        (Method::GET, "/api/alice/tasks".into(), None),
        (Method::GET, "/api/alice/conversations".into(), None),
        (
            Method::GET,
            format!("/api/alice/conversations/{id}/messages"),
            None,
        ),
        (Method::GET, "/metrics".into(), None),
        (Method::GET, "/openapi.json".into(), None),
        (Method::GET, "/".into(), None),
        (Method::GET, "/no/such/route".into(), None),
        (Method::OPTIONS, "/api/alice/chat".into(), None),
    ]
}

async fn send(
    app: &TestApp,
    (method, path, body): &(Method, String, Option<Value>),
    host: Option<&str>,
    origin: Option<&str>,
) -> reqwest::Response {
    let mut req = app
        .client
        .request(method.clone(), format!("{}{path}", app.address));
    if let Some(h) = host {
        req = req.header("Host", h);
    }
    if let Some(o) = origin {
        req = req.header("Origin", o);
    }
    if let Some(b) = body {
        req = req.json(b);
    }
    req.send().await.expect("request")
}

async fn seed_a_task(app: &TestApp) {
    app.llm_responds(Script::new(
        &[("c1", "add_task", r#"{"title":"Secret plan"}"#)],
        "Added.",
    ))
    .await;
    assert_eq!(
        app.chat("alice", json!({"message": "add it"}))
            .await
            .status(),
        200
    );
}

on_both_stores!(
    a_rebound_host_name_or_a_foreign_page_is_refused_on_every_route,
    |app: TestApp| async move {
        seed_a_task(&app).await;
        let turns_before = app.llm_requests().await.len();
        let port = app.address.rsplit(':').next().unwrap().to_string();
        let rebound = format!("attacker.example:{port}");
        for route in routes() {
            let case = format!("{} {} with Host {rebound}", route.0, route.1);
            let r = send(&app, &route, Some(&rebound), None).await;
            expect_error(r, 421, "host_not_allowed", &case).await;
            // The rebinding page's own origin is its own name: refused as well.
            let r = send(
                &app,
                &route,
                Some(&rebound),
                Some(&format!("http://{rebound}")),
            )
            .await;
            expect_error(r, 421, "host_not_allowed", &case).await;
            for origin in [
                "https://attacker.example",
                "null",
                "http://127.0.0.1.attacker.example",
            ] {
                let case = format!("{} {} from Origin {origin}", route.0, route.1);
                let r = send(&app, &route, None, Some(origin)).await;
                expect_error(r, 403, "origin_not_allowed", &case).await;
            }
        }
        assert_eq!(
            app.llm_requests().await.len(),
            turns_before,
            "a refused request reached the model"
        );
        let conversations = app.get_json("/api/alice/conversations").await;
        assert_eq!(
            conversations["conversations"].as_array().unwrap().len(),
            1,
            "a refused chat started a conversation: {conversations}"
        );
        // Probes stay reachable by any name (orchestrators address pods by IP).
        for probe in ["/healthz", "/readyz"] {
            let r = send(
                &app,
                &(Method::GET, probe.into(), None),
                Some(&rebound),
                None,
            )
            .await;
            assert_eq!(r.status(), 200, "{probe}");
        }
        app.cleanup().await;
    }
);

on_both_stores!(
    loopback_pages_and_the_services_own_origin_are_served,
    |app: TestApp| async move {
        seed_a_task(&app).await;
        let authority = app.address.trim_start_matches("http://").to_string();
        let tasks = (Method::GET, "/api/alice/tasks".to_string(), None);
        for (host, origin) in [
            (None, None),
            (None, Some("http://localhost:5173")),
            (None, Some(format!("http://{authority}").as_str())),
            (
                Some(format!(
                    "localhost:{}",
                    authority.rsplit(':').next().unwrap()
                )),
                None,
            ),
        ]
        .iter()
        .map(|(h, o)| (h.clone(), o.map(str::to_string)))
        .collect::<Vec<_>>()
        {
            let r = send(&app, &tasks, host.as_deref(), origin.as_deref()).await;
            assert_eq!(r.status(), 200, "Host {host:?} Origin {origin:?}");
            let body: Value = r.json().await.unwrap();
            assert_eq!(body["tasks"][0]["title"], "Secret plan", "{body}");
        }
        app.cleanup().await;
    }
);

#[tokio::test]
async fn configured_hosts_and_origins_widen_the_rules_and_metrics_can_need_a_token() {
    let o = Options {
        access: AccessSettings {
            allowed_hosts: vec!["todo.example.com".into()],
            allowed_origins: vec!["https://app.example.com".into()],
            metrics_token: Some(SecretString::from("m".repeat(32))),
            ..AccessSettings::default()
        },
        ..Options::default()
    };
    let Some(app) = spawn_app_with(Kind::Sqlite, o).await else {
        return;
    };
    let tasks = (Method::GET, "/api/alice/tasks".to_string(), None);
    let r = send(
        &app,
        &tasks,
        Some("todo.example.com"),
        Some("https://app.example.com"),
    )
    .await;
    assert_eq!(r.status(), 200);
    let r = send(
        &app,
        &tasks,
        Some("todo.example.com"),
        Some("https://todo.example.com"),
    )
    .await;
    assert_eq!(r.status(), 200, "same origin");
    let r = send(
        &app,
        &tasks,
        Some("todo.example.com"),
        Some("https://evil.example.com"),
    )
    .await;
    expect_error(r, 403, "origin_not_allowed", "foreign origin").await;

    let metrics = format!("{}/metrics", app.address);
    let r = app.client.get(&metrics).send().await.unwrap();
    expect_error(r, 401, "unauthorized", "metrics without the token").await;
    let r = app
        .client
        .get(&metrics)
        .bearer_auth("x".repeat(32))
        .send()
        .await
        .unwrap();
    expect_error(r, 401, "unauthorized", "metrics with a wrong token").await;
    let r = app
        .client
        .get(&metrics)
        .header("Host", "10.1.2.3:8000")
        .bearer_auth("m".repeat(32))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "a scraper addressing the pod by IP");
    assert!(r.text().await.unwrap().contains("# EOF"));
    app.cleanup().await;
}
