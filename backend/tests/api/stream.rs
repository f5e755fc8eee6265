//! Streamed turns: `Accept: text/event-stream` answers server-sent events, the model is
//! streamed, and everything that holds for a JSON turn holds for a streamed one.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use todo_test_support::Kind;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use wiremock::{Request, Respond, ResponseTemplate};

use crate::auth::{hs256_options, token};
use crate::helpers::*;
use crate::on_both_stores;

/// One server-sent event as a client sees it.
#[derive(Debug, Clone)]
struct Sse {
    event: String,
    data: String,
}

impl Sse {
    fn json(&self) -> Value {
        serde_json::from_str(&self.data).unwrap_or_else(|e| panic!("{self:?}: {e}"))
    }
}

fn parse_sse(text: &str) -> Vec<Sse> {
    text.replace("\r\n", "\n")
        .split("\n\n")
        .filter_map(|block| {
            let mut event = String::from("message");
            let mut data: Option<String> = None;
            for line in block.lines() {
                if let Some(v) = line.strip_prefix("event:") {
                    event = v.trim().to_string();
                } else if let Some(v) = line.strip_prefix("data:") {
                    let v = v.strip_prefix(' ').unwrap_or(v);
                    data = Some(match data {
                        Some(d) => format!("{d}\n{v}"),
                        None => v.to_string(),
                    });
                }
            }
            data.map(|data| Sse { event, data })
        })
        .collect()
}

async fn chat_stream(
    app: &TestApp,
    user: &str,
    key: Option<&str>,
    body: Value,
) -> reqwest::Response {
    let mut r = app
        .client
        .post(format!("{}/api/{user}/chat", app.address))
        .header("accept", "text/event-stream")
        .json(&body);
    if let Some(k) = key {
        r = r.header("idempotency-key", k);
    }
    r.send().await.expect("request")
}

/// The events of a streamed turn, after checking it is one.
async fn events(r: reqwest::Response) -> Vec<Sse> {
    assert_eq!(r.status(), 200);
    let ct = r.headers()["content-type"].to_str().unwrap().to_string();
    assert!(ct.starts_with("text/event-stream"), "{ct}");
    parse_sse(&r.text().await.unwrap())
}

fn names(ev: &[Sse]) -> Vec<&str> {
    ev.iter().map(|e| e.event.as_str()).collect()
}

/// A chat-completion stream as OpenAI sends it: `data:` lines, usage in a last chunk
/// without choices, `[DONE]`.
fn sse_body(chunks: &[Value]) -> String {
    let mut s = String::new();
    for c in chunks {
        s.push_str(&format!("data: {c}\n\n"));
    }
    s.push_str("data: [DONE]\n\n");
    s
}

fn delta_chunk(delta: Value, finish: Option<&str>) -> Value {
    json!({"id":"chatcmpl-s","object":"chat.completion.chunk","created":1_790_000_000,"model":"test-model",
           "choices":[{"index":0,"delta":delta,"finish_reason":finish}]})
}

fn usage_chunk(p: u32, c: u32) -> Value {
    json!({"id":"chatcmpl-s","object":"chat.completion.chunk","created":1_790_000_000,"model":"test-model",
           "choices":[],"usage":{"prompt_tokens":p,"completion_tokens":c,"total_tokens":p+c}})
}

/// Text in pieces (one cut inside the quotation mark's word), then usage.
fn text_stream(pieces: &[&str]) -> String {
    let mut chunks = vec![delta_chunk(json!({"role":"assistant","content":""}), None)];
    chunks.extend(
        pieces
            .iter()
            .map(|p| delta_chunk(json!({"content": p}), None)),
    );
    chunks.push(delta_chunk(json!({}), Some("stop")));
    chunks.push(usage_chunk(90, 9));
    sse_body(&chunks)
}

/// One `add_task` call whose arguments arrive in three fragments.
fn tool_stream() -> String {
    sse_body(&[
        delta_chunk(
            json!({"role":"assistant","content":null,"tool_calls":[{"index":0,"id":"call_s1","type":"function","function":{"name":"add_task","arguments":""}}]}),
            None,
        ),
        delta_chunk(
            json!({"tool_calls":[{"index":0,"function":{"arguments":"{\"title\": \"Buy mi"}}]}),
            None,
        ),
        delta_chunk(
            json!({"tool_calls":[{"index":0,"function":{"arguments":"lk\", \"due\": \"2026-"}}]}),
            None,
        ),
        delta_chunk(
            json!({"tool_calls":[{"index":0,"function":{"arguments":"11-23\"}"}}]}),
            None,
        ),
        delta_chunk(json!({}), Some("tool_calls")),
        usage_chunk(120, 20),
    ])
}

/// Streams a tool call for the person's message and text after the tool results.
struct Streamer;

impl Respond for Streamer {
    fn respond(&self, req: &Request) -> ResponseTemplate {
        let body: Value = req.body_json().unwrap_or(Value::Null);
        let last = body["messages"].as_array().and_then(|m| m.last()).cloned();
        let body = if last.is_some_and(|m| m["role"] == "tool") {
            text_stream(&[
                "Added ",
                "\u{2018}Buy milk\u{2019}",
                " \u{1f95b} for tomorrow.",
            ])
        } else {
            tool_stream()
        };
        ResponseTemplate::new(200).set_body_raw(body, "text/event-stream")
    }
}

on_both_stores!(
    a_streamed_turn_reports_each_step_and_ends_with_the_json_answer,
    |app: TestApp| async move {
        app.llm_responds(Streamer).await;
        let ev = events(
            chat_stream(
                &app,
                "alice",
                None,
                json!({"message": "add buy milk tomorrow"}),
            )
            .await,
        )
        .await;
        assert_eq!(
            names(&ev),
            [
                "started",
                "tool_call_started",
                "tool_call_finished",
                "delta",
                "delta",
                "delta",
                "done"
            ],
            "{ev:?}"
        );
        let conv = ev[0].json()["conversation_id"]
            .as_str()
            .unwrap()
            .to_string();
        assert_eq!(
            ev[1].json(),
            json!({"id": "call_s1", "name": "add_task", "arguments": {"title": "Buy milk", "due": "2026-11-23"}})
        );
        let finished = ev[2].json();
        assert_eq!(finished["name"], "add_task");
        assert_eq!(finished["is_error"], false);
        assert_eq!(finished["result"]["title"], "Buy milk");
        let text: String = ev[3..6]
            .iter()
            .map(|e| e.json()["text"].as_str().unwrap().to_string())
            .collect();
        assert_eq!(
            text,
            "Added \u{2018}Buy milk\u{2019} \u{1f95b} for tomorrow."
        );

        // `done` is the JSON answer: same fields, the text and tool calls the events showed.
        let done = ev[6].json();
        assert_eq!(done["conversation_id"], conv.as_str());
        assert_eq!(done["response"], text.as_str());
        assert_eq!(done["tool_calls"][0]["name"], "add_task");
        assert_eq!(done["tool_calls"][0]["result"], finished["result"]);
        let mut keys: Vec<&String> = done.as_object().unwrap().keys().collect();
        keys.sort();
        assert_eq!(
            keys,
            [
                "conversation_id",
                "created_at",
                "response",
                "tool_calls",
                "usage"
            ]
        );

        // The model was streamed and asked for usage; the usage of the last chunk was stored.
        let reqs = app.llm_requests().await;
        assert_eq!(reqs.len(), 2);
        for r in &reqs {
            assert_eq!(r["stream"], true);
            assert_eq!(r["stream_options"]["include_usage"], true);
        }
        assert_valid_sequence(&reqs[1]["messages"]);
        assert_eq!(
            reqs[1]["messages"][2]["tool_calls"][0]["function"]["arguments"],
            r#"{"title": "Buy milk", "due": "2026-11-23"}"#
        );
        let msgs = app
            .get_json(&format!("/api/alice/conversations/{conv}/messages"))
            .await;
        let m = msgs["messages"].as_array().unwrap();
        assert_eq!(m.len(), 4);
        assert_eq!(m[1]["prompt_tokens"], 120);
        assert_eq!(m[3]["content"], text.as_str());
        assert_eq!(m[3]["prompt_tokens"], 90);
        assert_eq!(m[3]["completion_tokens"], 9);
        assert_eq!(
            app.get_json("/api/alice/tasks").await["tasks"][0]["title"],
            "Buy milk"
        );
        app.cleanup().await;
    }
);

#[tokio::test]
async fn without_the_accept_header_nothing_changes() {
    let Some(app) = spawn_app(Kind::Sqlite).await else {
        return;
    };
    app.llm_responds(Script::new(&[], "Hello.")).await;
    let r = app.chat("alice", json!({"message": "hi"})).await;
    assert_eq!(r.status(), 200);
    assert!(
        r.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/json")
    );
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["response"], "Hello.");
    let reqs = app.llm_requests().await;
    assert_eq!(reqs[0]["stream"], false);
    assert!(reqs[0].get("stream_options").is_none());
    app.cleanup().await;
}

#[tokio::test]
async fn a_provider_that_does_not_stream_is_shown_as_one_delta() {
    let Some(app) = spawn_app(Kind::Sqlite).await else {
        return;
    };
    app.llm_responds(Script::new(
        &[("call_a", "add_task", r#"{"title":"Tea"}"#)],
        "Added tea.",
    ))
    .await;
    let ev = events(chat_stream(&app, "alice", None, json!({"message": "add tea"})).await).await;
    assert_eq!(
        names(&ev),
        [
            "started",
            "tool_call_started",
            "tool_call_finished",
            "delta",
            "done"
        ]
    );
    assert_eq!(ev[3].json()["text"], "Added tea.");
    assert_eq!(ev[4].json()["response"], "Added tea.");
    app.cleanup().await;
}

#[tokio::test]
async fn requests_refused_before_the_turn_starts_are_plain_json_errors() {
    let Some(app) = spawn_app(Kind::Sqlite).await else {
        return;
    };
    app.llm_responds(Streamer).await;
    let cases = [
        (json!({"message": "   "}), 422, "empty_message"),
        (
            json!({"message": "hi", "conversation_id": "nope"}),
            400,
            "invalid_conversation_id",
        ),
        (
            json!({"message": "hi", "timezone": "Mars/Base"}),
            422,
            "invalid_timezone",
        ),
        (
            json!({"message": "hi", "conversation_id": uuid::Uuid::new_v4().to_string()}),
            404,
            "not_found",
        ),
    ];
    for (body, status, code) in cases {
        let r = chat_stream(&app, "alice", None, body.clone()).await;
        assert_eq!(r.status(), status, "{body}");
        assert!(
            r.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with("application/json"),
            "{body}"
        );
        let v: Value = r.json().await.unwrap();
        assert_eq!(v["error"]["code"], code, "{body}");
    }
    assert!(app.llm_requests().await.is_empty());
    app.cleanup().await;

    let Some(app) = spawn_app_with(
        Kind::Sqlite,
        Options {
            llm_configured: false,
            ..Options::default()
        },
    )
    .await
    else {
        return;
    };
    // Without a model a free-form message is answered (not refused) with the commands and
    // the settings that enable chat, streamed like any turn.
    let ev = events(chat_stream(&app, "alice", None, json!({"message": "hi"})).await).await;
    let names: Vec<&str> = ev.iter().map(|e| e.event.as_str()).collect();
    assert_eq!(names.first(), Some(&"started"), "{names:?}");
    assert_eq!(names.last(), Some(&"done"), "{names:?}");
    let done = ev.last().unwrap().json();
    let text = done["response"].as_str().unwrap();
    assert!(
        text.contains("OPENAI_API_KEY") && text.contains("/add"),
        "{text}"
    );
    app.cleanup().await;
}

#[tokio::test]
async fn a_streamed_turn_needs_the_same_token_as_a_json_one() {
    let Some(app) = spawn_app_with(Kind::Sqlite, hs256_options()).await else {
        return;
    };
    app.llm_responds(Streamer).await;
    let r = chat_stream(&app, "alice", None, json!({"message": "hi"})).await;
    assert_eq!(r.status(), 401);
    let r = app
        .client
        .post(format!("{}/api/alice/chat", app.address))
        .header("accept", "text/event-stream")
        .bearer_auth(token("bob"))
        .json(&json!({"message": "hi"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    let r = app
        .client
        .post(format!("{}/api/alice/chat", app.address))
        .header("accept", "text/event-stream")
        .bearer_auth(token("alice"))
        .json(&json!({"message": "add milk"}))
        .send()
        .await
        .unwrap();
    assert_eq!(names(&events(r).await).last(), Some(&"done"));
    assert!(app.llm_requests().await.len() >= 2);
    app.cleanup().await;
}

on_both_stores!(
    a_replayed_key_streams_the_stored_answer_without_the_model,
    |app: TestApp| async move {
        app.llm_responds(Streamer).await;
        let body = json!({"message": "add buy milk"});
        let first = events(chat_stream(&app, "alice", Some("k-1"), body.clone()).await).await;
        let calls = app.llm_requests().await.len();
        let r = chat_stream(&app, "alice", Some("k-1"), body.clone()).await;
        assert_eq!(r.headers()["idempotent-replayed"], "true");
        let again = events(r).await;
        assert_eq!(names(&again), ["started", "done"]);
        assert_eq!(again[0].json(), first[0].json());
        assert_eq!(
            again[1].data,
            first.last().unwrap().data,
            "the stored answer, byte for byte"
        );
        // The same key asked for JSON answers the same stored body.
        let r = app.chat_with_key("alice", "k-1", body).await;
        assert_eq!(r.text().await.unwrap(), again[1].data);
        assert_eq!(
            app.llm_requests().await.len(),
            calls,
            "no model call on replay"
        );
        assert_eq!(
            app.get_json("/api/alice/tasks").await["tasks"]
                .as_array()
                .unwrap()
                .len(),
            1
        );
        app.cleanup().await;
    }
);

on_both_stores!(
    a_model_error_after_the_start_is_an_error_event_and_a_retry_resumes,
    |app: TestApp| async move {
        // The first call is refused (400: not retried), later ones stream.
        wiremock::Mock::given(wiremock::matchers::method("POST"))
            .respond_with(ResponseTemplate::new(400).set_body_json(
                json!({"error": {"message": "bad", "type": "invalid_request_error"}}),
            ))
            .up_to_n_times(1)
            .with_priority(1)
            .mount(&app.llm)
            .await;
        app.llm_responds(Streamer).await;
        let body = json!({"message": "add buy milk"});
        let ev = events(chat_stream(&app, "alice", Some("k-2"), body.clone()).await).await;
        assert_eq!(names(&ev), ["started", "error"]);
        assert_eq!(ev[1].json()["error"]["code"], "llm_rejected");
        assert!(ev[1].json()["error"]["message"].is_string());
        let conv = ev[0].json()["conversation_id"]
            .as_str()
            .unwrap()
            .to_string();

        // The retry with the same key continues the same conversation; the message is stored once.
        let ev = events(chat_stream(&app, "alice", Some("k-2"), body).await).await;
        assert_eq!(names(&ev).last(), Some(&"done"), "{ev:?}");
        assert_eq!(ev[0].json()["conversation_id"], conv.as_str());
        let msgs = app
            .get_json(&format!("/api/alice/conversations/{conv}/messages"))
            .await;
        let roles = stored_roles(&msgs);
        assert_eq!(roles, ["user", "assistant", "tool", "assistant"]);
        assert_eq!(
            app.get_json("/api/alice/tasks").await["tasks"]
                .as_array()
                .unwrap()
                .len(),
            1
        );
        app.cleanup().await;
    }
);

/// A raw HTTP/1.1 model server: answers connection `n` with response `n`, written as
/// chunked transfer encoding in the given byte pieces (cut anywhere, even inside a UTF-8
/// character). `cut: true` drops the connection before the stream ends.
struct RawLlm {
    addr: std::net::SocketAddr,
    bodies: Arc<Mutex<Vec<Value>>>,
    task: tokio::task::JoinHandle<()>,
}

struct RawAnswer {
    pieces: Vec<Vec<u8>>,
    cut: bool,
}

impl RawAnswer {
    /// `text`'s bytes cut into pieces of `n` bytes.
    fn split(text: &str, n: usize, cut: bool) -> RawAnswer {
        RawAnswer {
            pieces: text.as_bytes().chunks(n).map(<[u8]>::to_vec).collect(),
            cut,
        }
    }
}

impl RawLlm {
    async fn start(answers: Vec<RawAnswer>) -> RawLlm {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let bodies = Arc::new(Mutex::new(Vec::new()));
        let seen = bodies.clone();
        let task = tokio::spawn(async move {
            for a in answers {
                let Ok((mut sock, _)) = listener.accept().await else {
                    return;
                };
                let Some(body) = read_request(&mut sock).await else {
                    return;
                };
                seen.lock().unwrap().push(body);
                let head = "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\nconnection: close\r\n\r\n";
                if sock.write_all(head.as_bytes()).await.is_err() {
                    return;
                }
                for p in &a.pieces {
                    let mut frame = format!("{:x}\r\n", p.len()).into_bytes();
                    frame.extend_from_slice(p);
                    frame.extend_from_slice(b"\r\n");
                    if sock.write_all(&frame).await.is_err() || sock.flush().await.is_err() {
                        break;
                    }
                    // Lets the client read this piece on its own.
                    tokio::task::yield_now().await;
                }
                if !a.cut {
                    let _ = sock.write_all(b"0\r\n\r\n").await;
                }
                let _ = sock.shutdown().await;
            }
        });
        RawLlm { addr, bodies, task }
    }

    fn base_url(&self) -> String {
        format!("http://{}/v1", self.addr)
    }
}

impl Drop for RawLlm {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn read_request(sock: &mut tokio::net::TcpStream) -> Option<Value> {
    let mut buf = Vec::new();
    let mut tmp = [0u8; 8192];
    loop {
        let n = sock.read(&mut tmp).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&tmp[..n]);
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
            let len: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse().ok())?;
            while buf.len() < end + 4 + len {
                let n = sock.read(&mut tmp).await.ok()?;
                if n == 0 {
                    return None;
                }
                buf.extend_from_slice(&tmp[..n]);
            }
            return serde_json::from_slice(&buf[end + 4..end + 4 + len]).ok();
        }
    }
}

todo_test_support::on_both_databases!(
    bytes_split_anywhere_assemble_and_a_cut_stream_leaves_a_continuable_history
);

async fn bytes_split_anywhere_assemble_and_a_cut_stream_leaves_a_continuable_history(kind: Kind) {
    // Turn 1: a tool call and a reply cut into 3-byte pieces (inside characters and JSON).
    // Turn 2: the reply stops half-way, the connection drops. Turn 3: it works again.
    let answers = vec![
        RawAnswer::split(&tool_stream(), 3, false),
        RawAnswer::split(
            &text_stream(&["Added \u{2018}Buy milk\u{2019} \u{1f95b}."]),
            3,
            false,
        ),
        RawAnswer::split(
            &sse_body(&[delta_chunk(json!({"content": "I will tell you ab"}), None)])
                .replace("data: [DONE]\n\n", ""),
            5,
            true,
        ),
        RawAnswer::split(&text_stream(&["Here ", "you are."]), 7, false),
    ];
    let raw = RawLlm::start(answers).await;
    let o = Options {
        llm_base_url: Some(raw.base_url()),
        max_retries: 0,
        ..Options::default()
    };
    let Some(app) = spawn_app_with(kind, o).await else {
        return;
    };

    let ev = events(chat_stream(&app, "alice", None, json!({"message": "add milk"})).await).await;
    assert_eq!(names(&ev).last(), Some(&"done"), "{ev:?}");
    assert_eq!(
        ev[1].json()["arguments"],
        json!({"title": "Buy milk", "due": "2026-11-23"})
    );
    let done = ev.last().unwrap().json();
    assert_eq!(
        done["response"],
        "Added \u{2018}Buy milk\u{2019} \u{1f95b}."
    );
    let conv = done["conversation_id"].as_str().unwrap().to_string();

    let ev = events(
        chat_stream(
            &app,
            "alice",
            None,
            json!({"message": "tell me", "conversation_id": conv}),
        )
        .await,
    )
    .await;
    assert_eq!(names(&ev), ["started", "delta", "error"], "{ev:?}");
    assert_eq!(ev[2].json()["error"]["code"], "llm_unavailable");

    let ev = events(
        chat_stream(
            &app,
            "alice",
            None,
            json!({"message": "and now?", "conversation_id": conv}),
        )
        .await,
    )
    .await;
    assert_eq!(
        ev.last().unwrap().json()["response"],
        "Here you are.",
        "{ev:?}"
    );
    let bodies = raw.bodies.lock().unwrap().clone();
    assert_eq!(bodies.len(), 4);
    assert_valid_sequence(&bodies[3]["messages"]);
    app.cleanup().await;
}

#[tokio::test]
async fn a_client_that_leaves_mid_stream_does_not_lose_the_turn() {
    let Some(app) = spawn_app(Kind::Sqlite).await else {
        return;
    };
    // Slow enough that the client is gone before the model answers.
    app.llm_responds(SlowStreamer(Duration::from_millis(300)))
        .await;
    let mut r = chat_stream(&app, "alice", None, json!({"message": "add buy milk"})).await;
    assert_eq!(r.status(), 200);
    let mut seen = String::new();
    while !seen.contains("\n\n") {
        let chunk = r.chunk().await.unwrap().expect("a first event");
        seen.push_str(&String::from_utf8_lossy(&chunk));
    }
    let started = parse_sse(&seen);
    assert_eq!(started[0].event, "started");
    let conv = started[0].json()["conversation_id"]
        .as_str()
        .unwrap()
        .to_string();
    drop(r);

    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let msgs = app
            .get_json(&format!("/api/alice/conversations/{conv}/messages"))
            .await;
        let m = msgs["messages"].as_array().unwrap().clone();
        if m.len() == 4 {
            assert_eq!(m[3]["role"], "assistant");
            assert!(m[3]["content"].as_str().unwrap().contains("Buy milk"));
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the turn was not finished: {m:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        app.get_json("/api/alice/tasks").await["tasks"][0]["title"],
        "Buy milk"
    );
    app.cleanup().await;
}

struct SlowStreamer(Duration);

impl Respond for SlowStreamer {
    fn respond(&self, req: &Request) -> ResponseTemplate {
        Streamer.respond(req).set_delay(self.0)
    }
}

#[tokio::test]
async fn streamed_turns_count_against_the_rate_limit_and_a_busy_conversation_is_409() {
    let o = Options {
        access: todo_backend::access::AccessSettings {
            rate_limit_per_minute: 2,
            ..todo_backend::access::AccessSettings::default()
        },
        ..Options::default()
    };
    let Some(app) = spawn_app_with(Kind::Sqlite, o).await else {
        return;
    };
    // The first turn is slow, so a second one on its conversation finds it busy.
    app.llm_responds(SlowStreamer(Duration::from_millis(1500)))
        .await;
    let mut r = chat_stream(&app, "alice", None, json!({"message": "add buy milk"})).await;
    let mut seen = String::new();
    while !seen.contains("\n\n") {
        let chunk = r.chunk().await.unwrap().expect("a first event");
        seen.push_str(&String::from_utf8_lossy(&chunk));
    }
    let conv = parse_sse(&seen)[0].json()["conversation_id"]
        .as_str()
        .unwrap()
        .to_string();
    let busy = chat_stream(
        &app,
        "alice",
        None,
        json!({"message": "and?", "conversation_id": conv}),
    )
    .await;
    assert_eq!(busy.status(), 409);
    assert!(busy.headers().contains_key("retry-after"));
    let v: Value = busy.json().await.unwrap();
    assert_eq!(v["error"]["code"], "conversation_busy");
    // Two turns were started this minute: the third is refused before any stream.
    let limited = chat_stream(&app, "alice", None, json!({"message": "third"})).await;
    assert_eq!(limited.status(), 429);
    assert!(
        limited.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/json")
    );
    assert_eq!(names(&events(r).await).last(), Some(&"done"));
    app.cleanup().await;
}

#[tokio::test]
async fn a_streamed_reply_cut_off_by_the_token_limit_ends_in_an_error_and_is_not_stored() {
    let Some(app) = spawn_app(Kind::Sqlite).await else {
        return;
    };
    let cut = sse_body(&[
        delta_chunk(
            json!({"role":"assistant","content":"Here are your tasks: milk, br"}),
            None,
        ),
        delta_chunk(json!({}), Some("length")),
        usage_chunk(90, 512),
    ]);
    wiremock::Mock::given(wiremock::matchers::method("POST"))
        .respond_with(ResponseTemplate::new(200).set_body_raw(cut, "text/event-stream"))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&app.llm)
        .await;
    app.llm_responds(Streamer).await;
    let ev =
        events(chat_stream(&app, "alice", None, json!({"message": "what's left?"})).await).await;
    // The text already shown stays shown; the turn then says why it stopped.
    assert_eq!(names(&ev), ["started", "delta", "error"], "{ev:?}");
    assert_eq!(ev[2].json()["error"]["code"], "llm_reply_truncated");
    assert!(
        ev[2].json()["error"]["message"]
            .as_str()
            .unwrap()
            .contains("LLM_MAX_TOKENS")
    );
    let conv = ev[0].json()["conversation_id"]
        .as_str()
        .unwrap()
        .to_string();
    let msgs = app
        .get_json(&format!("/api/alice/conversations/{conv}/messages"))
        .await;
    let roles = stored_roles(&msgs);
    assert_eq!(roles, ["user"], "the cut-off reply was stored: {msgs}");
    app.cleanup().await;
}
