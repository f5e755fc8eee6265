//! Two `todo-mcp http` processes behind a round-robin balancer serve one MCP client that
//! opens a new connection per request: stateless streamable HTTP never answers "session not
//! found", and a replica stopped with SIGTERM exits cleanly while the other carries on.

use std::time::Duration;

use rmcp::ServiceExt;
use rmcp::model::CallToolRequestParams;
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use serde_json::{Value, json};
use todo_test_support::TestDb;
use todo_test_support::process::{Service, Spawn, workspace_bin};

use crate::proxy::Proxy;

async fn mcp_server(name: &str, db_url: &str) -> Service {
    let bin = workspace_bin("todo-mcp").unwrap_or_else(|e| panic!("{e:#}"));
    Service::start(
        Spawn::new(name, bin)
            .args(["http", "--bind", "127.0.0.1:0"])
            .env("DATABASE_URL", db_url)
            .env("TODO_USER_ID", "mia")
            .env("RUST_LOG", "info"),
    )
    .await
    .unwrap_or_else(|e| panic!("starting {name}: {e:#}"))
}

async fn call(
    client: &rmcp::service::RunningService<rmcp::RoleClient, ()>,
    tool: &str,
    args: Value,
) -> Value {
    let Value::Object(args) = args else {
        panic!("arguments are an object")
    };
    let r = client
        .call_tool(CallToolRequestParams::new(tool.to_string()).with_arguments(args))
        .await
        .unwrap_or_else(|e| panic!("{tool} through the balancer: {e}"));
    assert_ne!(r.is_error, Some(true), "{tool}: {r:?}");
    r.structured_content
        .unwrap_or_else(|| panic!("{tool} has a structured result"))
}

#[tokio::test]
async fn two_mcp_servers_behind_a_round_robin_balancer_serve_one_client_without_session_errors() {
    let db = TestDb::postgres_or_sqlite().await;
    let a = mcp_server("todo-mcp A", &db.url).await;
    let mut b = mcp_server("todo-mcp B", &db.url).await;
    let balancer = Proxy::start(vec![a.addr(), b.addr()]).await;
    for s in [&a, &b] {
        let ready = reqwest::get(s.url("/readyz"))
            .await
            .expect("/readyz answers");
        assert_eq!(ready.status(), 200, "{} is ready", s.name());
    }

    // No connection reuse: every request is a new connection, so consecutive requests of
    // one client land on alternating servers.
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .timeout(Duration::from_secs(30))
        .build()
        .expect("an HTTP client");
    let url = format!("http://{}/mcp", balancer.addr());
    let client = ()
        .serve(StreamableHttpClientTransport::with_client(
            http,
            StreamableHttpClientTransportConfig::with_uri(url.as_str()),
        ))
        .await
        .expect("MCP handshake through the balancer");

    let tools = client
        .list_all_tools()
        .await
        .expect("tools through the balancer");
    assert!(tools.iter().any(|t| t.name == "add_task"), "{tools:?}");
    for k in 1..=6 {
        let added = call(
            &client,
            "add_task",
            json!({"title": format!("Balanced {k}")}),
        )
        .await;
        assert_eq!(added["id"], k, "{added}");
    }
    call(&client, "complete_task", json!({"id": 3})).await;
    let served = balancer.served();
    assert!(
        served.iter().all(|n| *n >= 3),
        "both servers took requests: {served:?}"
    );

    // One server is stopped as Kubernetes does; it exits cleanly and the other serves on.
    b.terminate().expect("SIGTERM");
    let status = b
        .wait_exit(Duration::from_secs(30))
        .await
        .unwrap_or_else(|e| panic!("{e:#}\n{}", b.log()));
    assert!(
        status.success(),
        "todo-mcp B exited with {status}:\n{}",
        b.log()
    );
    b.wait_log("stopped", Duration::from_secs(10))
        .await
        .unwrap_or_else(|e| panic!("{e:#}"));
    let page = call(&client, "list_tasks", json!({"status": "all"})).await;
    let tasks = page["tasks"].as_array().expect("tasks");
    assert_eq!(tasks.len(), 6, "{page}");
    let pending = call(&client, "list_tasks", json!({})).await;
    assert_eq!(
        pending["tasks"].as_array().map(Vec::len),
        Some(5),
        "{pending}"
    );

    client.cancel().await.expect("closing the client");
    for (name, s) in [("A", a.log()), ("B", b.log())] {
        assert!(
            !s.to_lowercase().contains("session not found"),
            "{name}:\n{s}"
        );
    }
    drop(balancer);
    drop(a);
    db.cleanup().await;
}
