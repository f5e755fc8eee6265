//! The stack under test: a fresh database, the `mock-llm` binary and one or more
//! `todo-backend` processes on it, with one typed helper per endpoint.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use serde_json::{Value, json};
use todo_test_support::TestDb;
use todo_test_support::process::{Service, Spawn, workspace_bin};

/// Every request gets an answer or fails within this; a hung turn fails the test.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

/// A database, the mock model, and backends sharing both.
pub struct Stack {
    backend_bin: PathBuf,
    db: Option<TestDb>,
    mock: Option<Service>,
    backends: Vec<Backend>,
    http: reqwest::Client,
}

/// The `mock-llm` binary, taking `latency_ms` to answer each request.
pub async fn mock_llm(latency_ms: u64) -> Service {
    Service::start(
        Spawn::new("mock-llm", env!("CARGO_BIN_EXE_mock-llm")).args([
            "--bind".to_string(),
            "127.0.0.1:0".into(),
            "--latency-ms".into(),
            latency_ms.to_string(),
        ]),
    )
    .await
    .expect("starting mock-llm")
}

/// Found before anything is created, so a missing binary leaves nothing behind.
fn backend_bin() -> PathBuf {
    workspace_bin("todo-backend").unwrap_or_else(|e| panic!("{e:#}"))
}

fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(REQUEST_TIMEOUT)
        .build()
        .expect("an HTTP client")
}

impl Stack {
    /// The database, the mock model and `backends` backend processes.
    pub async fn start(backends: usize) -> Stack {
        Self::start_with_latency(backends, 0).await
    }

    /// As [`Stack::start`], the model taking `latency_ms` to answer each request.
    pub async fn start_with_latency(backends: usize, latency_ms: u64) -> Stack {
        let backend_bin = backend_bin();
        let db = TestDb::postgres_or_sqlite().await;
        let mock = mock_llm(latency_ms).await;
        let mut s = Stack {
            backend_bin,
            db: Some(db),
            mock: Some(mock),
            backends: Vec::new(),
            http: http(),
        };
        for _ in 0..backends {
            s.add_backend().await;
        }
        s
    }

    /// The database and the mock model, no backend yet.
    pub async fn start_without_backends() -> Stack {
        Self::start_with_latency(0, 0).await
    }

    /// One backend with no LLM settings at all.
    pub async fn start_without_llm() -> Stack {
        let mut s = Stack {
            backend_bin: backend_bin(),
            db: Some(TestDb::postgres_or_sqlite().await),
            mock: None,
            backends: Vec::new(),
            http: http(),
        };
        s.add_backend().await;
        s
    }

    /// Starts one more backend on the same database (and model, if any).
    pub async fn add_backend(&mut self) {
        self.add_backend_with(&[]).await;
    }

    /// As [`Stack::add_backend`], with extra settings.
    pub async fn add_backend_with(&mut self, settings: &[(&str, &str)]) {
        let name = format!("backend {}", (b'A' + self.backends.len() as u8) as char);
        let program = self.backend_bin.clone();
        let url = self.db.as_ref().map(|d| d.url.clone()).unwrap_or_default();
        let mut spec = Spawn::new(name.clone(), program)
            .args(["serve", "--bind", "127.0.0.1:0"])
            .env("DATABASE_URL", url)
            .env("RUST_LOG", "info");
        if let Some(mock) = &self.mock {
            spec = spec
                .env("OPENAI_BASE_URL", mock.url("/v1"))
                .env("OPENAI_API_KEY", "test")
                .env("LLM_MODEL", "mock")
                // These tests script the model's words after tool results; the composed
                // confirmation of write rounds has its own tests (backend/tests/api/providers.rs).
                .env("AGENT_COMPOSE_CONFIRMATIONS", "false");
        }
        for (k, v) in settings {
            spec = spec.env(*k, *v);
        }
        let service = Service::start(spec)
            .await
            .unwrap_or_else(|e| panic!("starting {name}: {e:#}"));
        self.backends.push(Backend {
            service,
            http: self.http.clone(),
        });
    }

    pub fn backend(&self, i: usize) -> &Backend {
        &self.backends[i]
    }

    /// Kills backend `i` the hard way: no graceful shutdown, as in a crash.
    pub async fn kill_backend(&mut self, i: usize) {
        let b = &mut self.backends[i];
        b.service
            .kill()
            .await
            .unwrap_or_else(|e| panic!("killing {}: {e:#}", b.service.name()));
    }

    /// Chat completion requests the mock model has received.
    pub async fn mock_requests(&self) -> u64 {
        self.mock_stats().await["requests"]
            .as_u64()
            .expect("a request count")
    }

    /// Chat completion requests the mock model refused as malformed.
    pub async fn mock_rejected(&self) -> u64 {
        self.mock_stats().await["rejected"]
            .as_u64()
            .expect("a rejected count")
    }

    async fn mock_stats(&self) -> Value {
        let mock = self.mock.as_ref().expect("this stack has a mock model");
        let stats: Value = self
            .http
            .get(mock.url("/stats"))
            .send()
            .await
            .expect("mock-llm answers /stats")
            .json()
            .await
            .expect("mock-llm stats are JSON");
        stats
    }

    /// Makes the mock model fail requests (see `todo_e2e::mock::FaultPlan`).
    pub async fn inject_faults(&self, plan: Value) {
        let mock = self.mock.as_ref().expect("this stack has a mock model");
        let r = self
            .http
            .post(mock.url("/faults"))
            .json(&plan)
            .send()
            .await
            .expect("mock-llm answers /faults");
        assert!(r.status().is_success(), "fault plan {plan} refused");
    }

    /// Waits until the mock model has received at least `n` requests.
    pub async fn wait_for_mock_requests(&self, n: u64) {
        let deadline = tokio::time::Instant::now() + REQUEST_TIMEOUT;
        while self.mock_requests().await < n {
            assert!(
                tokio::time::Instant::now() < deadline,
                "the model never got {n} requests"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Stops the processes and removes the database. Every child's output is printed when
    /// a test fails, or with `TEST_LOG` set.
    pub async fn finish(mut self) {
        for b in &mut self.backends {
            let _ = b.service.kill().await;
        }
        if let Some(m) = &mut self.mock {
            let _ = m.kill().await;
        }
        if let Some(db) = self.db.take() {
            db.cleanup().await;
        }
    }
}

/// An HTTP answer.
pub struct Reply {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub text: String,
    /// The body as JSON (`null` when it is not JSON).
    pub json: Value,
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    }
}

impl fmt::Debug for Reply {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "HTTP {} {}", self.status, self.text)
    }
}

/// A successful chat answer.
pub struct Turn(pub Value);

impl Turn {
    pub fn conversation_id(&self) -> String {
        self.0["conversation_id"]
            .as_str()
            .unwrap_or_else(|| panic!("no conversation_id in {}", self.0))
            .to_string()
    }

    pub fn response(&self) -> &str {
        self.0["response"]
            .as_str()
            .unwrap_or_else(|| panic!("no response in {}", self.0))
    }

    pub fn calls(&self) -> &[Value] {
        self.0["tool_calls"]
            .as_array()
            .unwrap_or_else(|| panic!("no tool_calls array in {}", self.0))
    }
}

impl fmt::Debug for Turn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// A running `todo-backend`.
pub struct Backend {
    service: Service,
    http: reqwest::Client,
}

impl Backend {
    pub fn name(&self) -> &str {
        self.service.name()
    }

    async fn reply(&self, r: reqwest::RequestBuilder, what: &str) -> Reply {
        let r = r
            .send()
            .await
            .unwrap_or_else(|e| panic!("{} did not answer {what}: {e}", self.name()));
        let status = r.status().as_u16();
        let headers = r.headers().clone();
        let text = r.text().await.unwrap_or_default();
        let json = serde_json::from_str(&text).unwrap_or(Value::Null);
        Reply {
            status,
            headers,
            text,
            json,
        }
    }

    pub async fn get(&self, path: &str) -> Reply {
        self.reply(self.http.get(self.service.url(path)), path)
            .await
    }

    /// A `POST /api/{user}/chat` to finish and [`Backend::send`].
    pub fn chat_request(&self, user: &str) -> reqwest::RequestBuilder {
        self.http
            .post(self.service.url(&format!("/api/{user}/chat")))
    }

    pub async fn send(&self, request: reqwest::RequestBuilder) -> Reply {
        self.reply(request, "a request").await
    }

    /// `POST /api/{user}/chat` with `body`, and an `Idempotency-Key` if given.
    pub async fn post_chat(&self, user: &str, body: &Value, key: Option<&str>) -> Reply {
        let mut r = self
            .http
            .post(self.service.url(&format!("/api/{user}/chat")))
            .json(body);
        if let Some(k) = key {
            r = r.header("Idempotency-Key", k);
        }
        self.reply(r, "a chat turn").await
    }

    /// A chat turn that must succeed.
    pub async fn chat_ok(&self, user: &str, message: &str, conversation: Option<&str>) -> Turn {
        let mut body = json!({ "message": message });
        if let Some(c) = conversation {
            body["conversation_id"] = json!(c);
        }
        let r = self.post_chat(user, &body, None).await;
        assert_eq!(
            r.status,
            200,
            "{user} said {message:?} to {}: {r:?}",
            self.name()
        );
        Turn(r.json)
    }

    /// The user's tasks (`status`: pending by default, completed, all, deleted).
    pub async fn tasks(&self, user: &str, status: Option<&str>) -> Vec<Value> {
        let path = match status {
            Some(s) => format!("/api/{user}/tasks?status={s}"),
            None => format!("/api/{user}/tasks"),
        };
        let r = self.get(&path).await;
        assert_eq!(r.status, 200, "GET {path}: {r:?}");
        r.json["tasks"]
            .as_array()
            .cloned()
            .unwrap_or_else(|| panic!("no tasks array: {r:?}"))
    }

    /// Every stored message of a conversation, in order.
    pub async fn messages(&self, user: &str, conversation: &str) -> Vec<Value> {
        let path = format!("/api/{user}/conversations/{conversation}/messages?limit=500");
        let r = self.get(&path).await;
        assert_eq!(r.status, 200, "GET {path}: {r:?}");
        r.json["messages"]
            .as_array()
            .cloned()
            .unwrap_or_else(|| panic!("no messages array: {r:?}"))
    }
}
