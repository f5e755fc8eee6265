//! One slow client cannot hold the service: request headers must arrive within the header
//! timeout (a client trickling them is disconnected) and open connections are bounded, so
//! a crowd of slow clients larger than the bound still leaves room for a real request.

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use axum::Router;
use axum::routing::get;
use todo_service::serve::{ServeLimits, serve};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;

const DEADLINE: Duration = Duration::from_secs(30);

/// Opens a connection that sends half a request's headers and then nothing.
pub async fn slow_client(addr: std::net::SocketAddr) -> TcpStream {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(b"GET /ok HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
        .await
        .unwrap();
    s
}

/// Waits for the server to close `s` (EOF or reset); panics if it never does.
pub async fn closed_by_server(mut s: TcpStream) {
    let mut buf = Vec::new();
    let r = tokio::time::timeout(DEADLINE, s.read_to_end(&mut buf)).await;
    assert!(r.is_ok(), "the server kept a slow client's connection open");
}

#[tokio::test]
async fn slow_clients_are_cut_off_and_cannot_crowd_out_a_real_request() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let shutdown = CancellationToken::new();
    let app = Router::new().route("/ok", get(|| async { "ok" }));
    let limits = ServeLimits {
        header_read_timeout: Duration::from_secs(1),
        max_connections: 2,
    };
    let server = tokio::spawn(serve(listener, app, shutdown.clone(), limits));

    // More slow clients than the server keeps connections.
    let mut slow = Vec::new();
    for _ in 0..5 {
        slow.push(slow_client(addr).await);
    }
    let client = reqwest::Client::builder()
        .no_proxy()
        .timeout(DEADLINE)
        .build()
        .unwrap();
    let r = client
        .get(format!("http://{addr}/ok"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.text().await.unwrap(), "ok");
    for s in slow {
        closed_by_server(s).await;
    }
    // An idle keep-alive connection is let go as well.
    let mut idle = TcpStream::connect(addr).await.unwrap();
    idle.write_all(b"GET /ok HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        .await
        .unwrap();
    closed_by_server(idle).await;

    shutdown.cancel();
    tokio::time::timeout(DEADLINE, server)
        .await
        .expect("the server drained")
        .unwrap()
        .unwrap();
}
