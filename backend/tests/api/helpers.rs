//! Test harness: the real application on port 0 with a fresh database and a wiremock
//! server speaking the chat-completions wire format in place of the LLM.

use std::sync::Arc;
use std::time::Duration;

use secrecy::SecretString;
use serde_json::{Value, json};
use todo_backend::access::AccessSettings;
use todo_backend::agent::TurnLimits;
use todo_backend::agent::llm::LlmConfig;
use todo_backend::app;
use todo_backend::config::Settings;
use todo_core::auth::{AuthSettings, Verifier};
use todo_core::tasks::TaskStore;
use todo_mcp::http::{self, HttpSettings};
use todo_test_support::{Kind, TestDb};
use tokio_util::sync::CancellationToken;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

/// One row of `tool_executions`.
#[derive(Debug, sqlx::FromRow)]
pub struct AuditRow {
    pub user_id: String,
    pub conversation_id: Option<String>,
    pub tool: String,
    pub arguments: String,
    pub result: String,
    pub is_error: bool,
    pub duration_ms: i64,
}

pub struct TestApp {
    pub address: String,
    pub llm: MockServer,
    pub client: reqwest::Client,
    pub db: Option<TestDb>,
    shutdown: CancellationToken,
}

/// Options for [`spawn_app_with`].
pub struct Options {
    pub llm_configured: bool,
    pub limits: TurnLimits,
    pub max_retries: usize,
    pub max_message_chars: usize,
    pub max_body_bytes: usize,
    pub request_timeout: Duration,
    /// Authentication and limits (default: open, as on loopback).
    pub access: AccessSettings,
    pub mcp_server_url: Option<String>,
    /// `LLM_PRICES` (default: none).
    pub prices: String,
    /// The model's base URL when it is not the wiremock server (e.g. a raw stream server).
    pub llm_base_url: Option<String>,
    /// Retention, including the idempotency TTL (default: the built-in one).
    pub retention: todo_backend::retention::Retention,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            llm_configured: true,
            limits: TurnLimits {
                turn_timeout: Duration::from_secs(10),
                // Most tests script the model's words after tool results; the composed
                // confirmation of write rounds is tested in providers.rs.
                compose_confirmations: false,
                ..TurnLimits::default()
            },
            max_retries: 2,
            max_message_chars: 4000,
            max_body_bytes: 64 * 1024,
            request_timeout: Duration::from_secs(5),
            access: AccessSettings::default(),
            mcp_server_url: None,
            prices: String::new(),
            llm_base_url: None,
            retention: Default::default(),
        }
    }
}

/// The default options with these access settings.
pub fn with_access(access: AccessSettings) -> Options {
    Options {
        access,
        ..Options::default()
    }
}

pub async fn spawn_app(kind: Kind) -> Option<TestApp> {
    spawn_app_with(kind, Options::default()).await
}

/// Starts the application; `None` when PostgreSQL is not available outside CI.
pub async fn spawn_app_with(kind: Kind, o: Options) -> Option<TestApp> {
    let db = TestDb::new(kind).await.expect("test database")?;
    let mut app = start_on(&db.url, o).await;
    app.db = Some(db);
    Some(app)
}

/// Another replica of `app`: the same database, its own state, limits and mock model.
pub async fn spawn_replica(app: &TestApp, o: Options) -> TestApp {
    start_on(&app.db.as_ref().expect("database").url, o).await
}

async fn start_on(db_url: &str, o: Options) -> TestApp {
    let llm = MockServer::start().await;
    let settings = Settings {
        database_url: Some(db_url.to_string()),
        db: Default::default(),
        llm: o.llm_configured.then(|| LlmConfig {
            base_url: o
                .llm_base_url
                .clone()
                .unwrap_or_else(|| format!("{}/v1", llm.uri())),
            api_key: "sk-test-secret".into(),
            model: "test-model".into(),
            max_tokens: 512,
            request_timeout: o.request_timeout,
            max_retries: o.max_retries,
            max_retry_wait: Duration::from_secs(2),
            sampling: Default::default(),
        }),
        mcp_server_url: o.mcp_server_url,
        prompt: "You manage tasks.".into(),
        limits: o.limits,
        max_message_chars: o.max_message_chars,
        max_body_bytes: o.max_body_bytes,
        access: o.access,
        prices: todo_backend::usage::Prices::parse(&o.prices).expect("test prices"),
        retention: o.retention,
    };
    let state = app::build_state(&settings).await.expect("app state");
    let listener = app::bind("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let address = format!("http://{}", listener.local_addr().unwrap());
    let shutdown = CancellationToken::new();
    let router = app::router(state, settings.max_body_bytes);
    tokio::spawn(app::serve(listener, router, shutdown.clone()));
    TestApp {
        address,
        llm,
        client: reqwest::Client::new(),
        db: None,
        shutdown,
    }
}

impl TestApp {
    pub async fn chat(&self, user: &str, body: Value) -> reqwest::Response {
        self.client
            .post(format!("{}/api/{user}/chat", self.address))
            .json(&body)
            .send()
            .await
            .expect("request")
    }

    pub async fn chat_with_key(&self, user: &str, key: &str, body: Value) -> reqwest::Response {
        self.client
            .post(format!("{}/api/{user}/chat", self.address))
            .header("Idempotency-Key", key)
            .json(&body)
            .send()
            .await
            .expect("request")
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.client
            .get(format!("{}{path}", self.address))
            .send()
            .await
            .expect("request")
    }

    pub async fn get_json(&self, path: &str) -> Value {
        let r = self.get(path).await;
        let status = r.status();
        let body = r.text().await.unwrap_or_default();
        assert_eq!(status, 200, "GET {path}: {body}");
        serde_json::from_str(&body).unwrap()
    }

    /// The id and stored messages of the first conversation `user`'s list shows (the tests
    /// calling it have one).
    pub async fn listed_conversation_messages(&self, user: &str) -> (String, Value) {
        let list = self.get_json(&format!("/api/{user}/conversations")).await;
        let id = list["conversations"][0]["id"]
            .as_str()
            .unwrap_or_else(|| panic!("no conversation listed: {list}"))
            .to_string();
        let messages = self
            .get_json(&format!("/api/{user}/conversations/{id}/messages"))
            .await;
        (id, messages)
    }

    /// Bodies of the chat-completion requests the mock LLM received.
    pub async fn llm_requests(&self) -> Vec<Value> {
        self.llm
            .received_requests()
            .await
            .unwrap_or_default()
            .iter()
            .map(|r| r.body_json::<Value>().unwrap())
            .collect()
    }

    /// Mounts a responder for every chat completion.
    pub async fn llm_responds(&self, r: impl Respond + 'static) {
        Mock::given(method("POST"))
            .and(path("/v1/chat/completions"))
            .respond_with(r)
            .mount(&self.llm)
            .await;
    }

    /// The tool audit trail, oldest first.
    pub async fn audit(&self) -> Vec<AuditRow> {
        const SQL: &str = "SELECT user_id, conversation_id, tool, arguments, result, is_error, \
                           duration_ms FROM tool_executions ORDER BY id";
        match &self.db.as_ref().expect("database").db {
            todo_core::db::Database::Postgres(p) => sqlx::query_as(SQL).fetch_all(p).await,
            todo_core::db::Database::Sqlite(p) => sqlx::query_as(SQL).fetch_all(p).await,
        }
        .expect("audit rows")
    }

    pub async fn cleanup(mut self) {
        self.shutdown.cancel();
        if let Some(db) = self.db.take() {
            db.cleanup().await;
        }
    }
}

/// A completion answering in words.
pub fn text_reply(text: &str) -> Value {
    json!({
        "id": "chatcmpl-1", "object": "chat.completion", "created": 1_790_000_000, "model": "test-model",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 100, "completion_tokens": 10, "total_tokens": 110}
    })
}

/// A completion calling tools: (id, name, arguments as the model's JSON text).
pub fn tool_reply(calls: &[(&str, &str, &str)]) -> Value {
    let calls: Vec<Value> = calls
        .iter()
        .map(|(id, name, args)| json!({"id": id, "type": "function", "function": {"name": name, "arguments": args}}))
        .collect();
    json!({
        "id": "chatcmpl-2", "object": "chat.completion", "created": 1_790_000_000, "model": "test-model",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": null, "tool_calls": calls}, "finish_reason": "tool_calls"}],
        "usage": {"prompt_tokens": 120, "completion_tokens": 20, "total_tokens": 140}
    })
}

/// Calls these tools when the last message is the person's; answers `text` after tool results.
pub struct Script {
    pub calls: Vec<(String, String, String)>,
    pub text: String,
}

impl Script {
    pub fn new(calls: &[(&str, &str, &str)], text: &str) -> Script {
        Script {
            calls: calls
                .iter()
                .map(|(a, b, c)| (a.to_string(), b.to_string(), c.to_string()))
                .collect(),
            text: text.into(),
        }
    }
}

impl Respond for Script {
    fn respond(&self, req: &Request) -> ResponseTemplate {
        let body: Value = req.body_json().unwrap_or(Value::Null);
        let last_role = body["messages"]
            .as_array()
            .and_then(|m| m.last())
            .and_then(|m| m["role"].as_str())
            .unwrap_or("")
            .to_string();
        if last_role == "tool" || self.calls.is_empty() {
            ResponseTemplate::new(200).set_body_json(text_reply(&self.text))
        } else {
            let calls: Vec<(&str, &str, &str)> = self
                .calls
                .iter()
                .map(|(a, b, c)| (a.as_str(), b.as_str(), c.as_str()))
                .collect();
            ResponseTemplate::new(200).set_body_json(tool_reply(&calls))
        }
    }
}

/// Sends a chat request that must succeed; its JSON answer.
pub async fn chat_ok(app: &TestApp, user: &str, body: Value) -> Value {
    let r = app.chat(user, body).await;
    let status = r.status();
    let v: Value = r.json().await.unwrap();
    assert_eq!(status, 200, "{v}");
    v
}

/// Checks an error answer: its status, `{"error": {"code", "message"}}` with a message, and
/// a `WWW-Authenticate: Bearer …` challenge on a 401. `case` names the request in failures.
pub async fn expect_error(r: reqwest::Response, status: u16, code: &str, case: &str) {
    assert_eq!(r.status(), status, "{case}");
    let challenge = r
        .headers()
        .get("www-authenticate")
        .map(|v| v.to_str().unwrap().to_string());
    if status == 401 {
        let c = challenge.unwrap_or_else(|| panic!("{case}: 401 without WWW-Authenticate"));
        assert!(c.starts_with("Bearer"), "{case}: {c}");
    }
    let body: Value = r
        .json()
        .await
        .unwrap_or_else(|e| panic!("{case}: not JSON: {e}"));
    assert_eq!(body["error"]["code"], code, "{case}: {body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()),
        "{case}: an error carries a message: {body}"
    );
}

/// Checks the invariant the chat-completions API enforces on a message list.
pub fn assert_valid_sequence(messages: &Value) {
    let msgs = messages.as_array().expect("messages array");
    let mut k = 0;
    while k < msgs.len() {
        let m = &msgs[k];
        if m["role"] == "assistant"
            && let Some(calls) = m["tool_calls"].as_array()
        {
            for (j, c) in calls.iter().enumerate() {
                let t = &msgs[k + 1 + j];
                assert_eq!(
                    t["role"], "tool",
                    "call {} unanswered in {messages}",
                    c["id"]
                );
                assert_eq!(
                    t["tool_call_id"], c["id"],
                    "answer out of order in {messages}"
                );
            }
            k += 1 + calls.len();
            continue;
        }
        assert_ne!(
            m["role"], "tool",
            "orphan tool message at {k} in {messages}"
        );
        k += 1;
    }
}

/// Runs a test body, given a [`TestApp`], on both stores: the tests `NAME::sqlite` and
/// `NAME::postgres` (see `todo_test_support::on_both_databases!`).
#[macro_export]
macro_rules! on_both_stores {
    ($name:ident, $body:expr) => {
        async fn $name(kind: Kind) {
            if let Some(app) = spawn_app(kind).await {
                ($body)(app).await;
            }
        }
        todo_test_support::on_both_databases!($name);
    };
}

/// A real todo-mcp served in process over streamable HTTP on a loopback port, on its own
/// SQLite database, requiring the backend's service credential signed with
/// `service_secret`; `wrap` layers its router (to record or hold requests).
pub struct McpServer {
    pub url: String,
    pub store: Arc<dyn TaskStore>,
    shutdown: CancellationToken,
    db: TestDb,
}

impl McpServer {
    pub async fn start(
        service_secret: &str,
        wrap: impl FnOnce(axum::Router) -> axum::Router,
    ) -> McpServer {
        let db = TestDb::new(Kind::Sqlite).await.unwrap().unwrap();
        let verifier = Verifier::new(&AuthSettings {
            service_secret: Some(SecretString::from(service_secret)),
            ..AuthSettings::default()
        })
        .unwrap();
        let listener = http::bind("127.0.0.1:0".parse().unwrap()).await.unwrap();
        let local = listener.local_addr().unwrap();
        let shutdown = CancellationToken::new();
        let app = wrap(http::router(
            db.db.task_store(),
            HttpSettings {
                allowed_hosts: todo_service::settings::allowed_hosts(local, &[]),
                allowed_origins: vec![],
                open_user: "nobody".into(),
                auth: Some(verifier),
                public_url: None,
                authorization_servers: vec![],
            },
            shutdown.clone(),
        ));
        tokio::spawn(http::serve(listener, app, shutdown.clone()));
        McpServer {
            url: format!("http://{local}/mcp"),
            store: db.db.task_store(),
            shutdown,
            db,
        }
    }

    pub async fn stop(self) {
        self.shutdown.cancel();
        self.db.cleanup().await;
    }
}

/// The roles of a stored conversation's messages (`GET …/messages`), in order.
pub fn stored_roles(messages: &Value) -> Vec<&str> {
    messages["messages"]
        .as_array()
        .expect("a messages array")
        .iter()
        .map(|m| m["role"].as_str().expect("a role"))
        .collect()
}

/// A scripted tool call: (id, tool, arguments as the model's JSON text).
pub type Call = (&'static str, &'static str, &'static str);

/// Answers the person's message with the tool calls scripted for it, then with words once
/// the tool results are in.
pub struct ByMessage(pub Vec<(&'static str, Vec<Call>)>);

impl Respond for ByMessage {
    fn respond(&self, req: &Request) -> ResponseTemplate {
        let body: Value = req.body_json().unwrap_or(Value::Null);
        let msgs = body["messages"].as_array().cloned().unwrap_or_default();
        let last = msgs.last().cloned().unwrap_or(Value::Null);
        if last["role"] == "tool" {
            return ResponseTemplate::new(200).set_body_json(text_reply("Done."));
        }
        // The latest message carries the app's <context> block first; the person's words follow.
        let said = last["content"].as_str().unwrap_or("");
        let said = said.rsplit("</context>\n").next().unwrap_or(said);
        match self.0.iter().find(|(m, _)| *m == said) {
            Some((_, calls)) => ResponseTemplate::new(200).set_body_json(tool_reply(calls)),
            None => ResponseTemplate::new(200).set_body_json(text_reply("Hm?")),
        }
    }
}
