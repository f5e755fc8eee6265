//! Several `todo-backend` replicas on one database and one mock model, each replaceable by
//! slot (stopped with SIGTERM or SIGKILL, started again), as a deployment runs them.

use std::path::PathBuf;
use std::time::Duration;

use serde_json::{Value, json};
use todo_test_support::process::{Service, Spawn, workspace_bin};
use todo_test_support::{Kind, TestDb};

/// Every request is answered or fails within this.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

/// The database of a fleet: PostgreSQL when it must be (replicas sharing limits), else the
/// configured one with SQLite as the fallback.
pub enum Needs {
    Postgres,
    Any,
}

/// A database, the mock model and replica slots.
pub struct Fleet {
    pub db: Option<TestDb>,
    pub mock: Service,
    pub replicas: Vec<Option<Service>>,
    backend_bin: PathBuf,
    settings: Vec<(String, String)>,
    started: usize,
    pub http: reqwest::Client,
}

/// A client that opens a new connection per request, as a balancer spreading them would.
pub fn fresh_connection_client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(REQUEST_TIMEOUT)
        .pool_max_idle_per_host(0)
        .build()
        .expect("an HTTP client")
}

/// An HTTP answer: status, `Retry-After`, body as JSON (`null` when not JSON).
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: u16,
    pub retry_after: Option<String>,
    pub json: Value,
}

impl Answer {
    pub fn code(&self) -> &str {
        self.json["error"]["code"].as_str().unwrap_or("")
    }
}

pub async fn answer(r: reqwest::Response) -> Answer {
    let status = r.status().as_u16();
    let retry_after = r
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let text = r.text().await.unwrap_or_default();
    Answer {
        status,
        retry_after,
        json: serde_json::from_str(&text).unwrap_or(Value::Null),
    }
}

impl Fleet {
    /// `None` when PostgreSQL is needed and none is configured: the test has been reported
    /// SKIPPED (a failure where PostgreSQL is required) and returns.
    pub async fn start(
        needs: Needs,
        replicas: usize,
        latency_ms: u64,
        settings: &[(&str, &str)],
    ) -> Option<Fleet> {
        let backend_bin = workspace_bin("todo-backend").unwrap_or_else(|e| panic!("{e:#}"));
        let db = match needs {
            Needs::Postgres => TestDb::new(Kind::Postgres)
                .await
                .expect("creating a PostgreSQL test database")?,
            Needs::Any => TestDb::postgres_or_sqlite().await,
        };
        let mock = crate::support::mock_llm(latency_ms).await;
        let mut fleet = Fleet {
            db: Some(db),
            mock,
            replicas: Vec::new(),
            backend_bin,
            settings: settings
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            started: 0,
            http: fresh_connection_client(),
        };
        for _ in 0..replicas {
            let r = fleet.spawn(None).await;
            fleet.replicas.push(Some(r));
        }
        Some(fleet)
    }

    pub fn db_url(&self) -> String {
        self.db.as_ref().map(|d| d.url.clone()).unwrap_or_default()
    }

    /// Starts a replica on `db_url` (the fleet's database when `None`).
    pub async fn spawn(&mut self, db_url: Option<&str>) -> Service {
        let name = format!("backend #{}", self.started);
        self.started += 1;
        let mut spec = Spawn::new(name.clone(), self.backend_bin.clone())
            .args(["serve", "--bind", "127.0.0.1:0"])
            .env(
                "DATABASE_URL",
                db_url.map_or_else(|| self.db_url(), str::to_string),
            )
            .env("RUST_LOG", "info")
            .env("OPENAI_BASE_URL", self.mock.url("/v1"))
            .env("OPENAI_API_KEY", "test")
            .env("LLM_MODEL", "mock");
        for (k, v) in &self.settings {
            spec = spec.env(k.clone(), v.clone());
        }
        Service::start(spec)
            .await
            .unwrap_or_else(|e| panic!("starting {name}: {e:#}"))
    }

    pub fn replica(&self, i: usize) -> &Service {
        self.replicas[i]
            .as_ref()
            .unwrap_or_else(|| panic!("replica {i} is stopped"))
    }

    /// Stops replica `i` with SIGTERM and waits for a clean exit.
    pub async fn stop_gracefully(&mut self, i: usize, within: Duration) {
        let mut r = self.replicas[i].take().expect("a running replica");
        r.terminate().expect("SIGTERM");
        let status = r.wait_exit(within).await.unwrap_or_else(|e| {
            panic!("{e:#}; its output:\n{}", r.log());
        });
        assert!(
            status.success(),
            "{} exited with {status}:\n{}",
            r.name(),
            r.log()
        );
    }

    /// Kills replica `i` with SIGKILL, as a crash would.
    pub async fn kill(&mut self, i: usize) {
        let mut r = self.replicas[i].take().expect("a running replica");
        r.kill().await.expect("SIGKILL");
    }

    /// Starts a new process in slot `i`.
    pub async fn restart(&mut self, i: usize) {
        let r = self.spawn(None).await;
        self.replicas[i] = Some(r);
    }

    /// Chat completion requests the mock model has received.
    pub async fn mock_requests(&self) -> u64 {
        let r = self
            .http
            .get(self.mock.url("/stats"))
            .send()
            .await
            .expect("mock-llm answers /stats");
        let v: Value = r.json().await.expect("mock-llm stats are JSON");
        v["requests"].as_u64().expect("a request count")
    }

    /// `POST /api/{user}/chat` on `url` (a replica's base URL).
    pub async fn chat_at(
        &self,
        base: &str,
        user: &str,
        message: &str,
        conversation: Option<&str>,
        key: Option<&str>,
    ) -> Result<Answer, reqwest::Error> {
        let mut body = json!({ "message": message });
        if let Some(c) = conversation {
            body["conversation_id"] = json!(c);
        }
        let mut req = self
            .http
            .post(format!("{base}/api/{user}/chat"))
            .json(&body);
        if let Some(k) = key {
            req = req.header("Idempotency-Key", k);
        }
        Ok(answer(req.send().await?).await)
    }

    /// `GET path` on replica `i`; panics on a transport error.
    pub async fn get(&self, i: usize, path: &str) -> Answer {
        let url = self.replica(i).url(path);
        let r = self
            .http
            .get(&url)
            .send()
            .await
            .unwrap_or_else(|e| panic!("GET {url}: {e}"));
        answer(r).await
    }

    /// Every stored message of a conversation, in order, read through replica `i`.
    pub async fn messages(&self, i: usize, user: &str, conversation: &str) -> Vec<Value> {
        let a = self
            .get(
                i,
                &format!("/api/{user}/conversations/{conversation}/messages?limit=500"),
            )
            .await;
        assert_eq!(a.status, 200, "{a:?}");
        a.json["messages"].as_array().cloned().unwrap_or_default()
    }

    /// Every task of `user` (all statuses), read through replica `i`.
    pub async fn all_tasks(&self, i: usize, user: &str) -> Vec<Value> {
        let a = self
            .get(i, &format!("/api/{user}/tasks?status=all&limit=100"))
            .await;
        assert_eq!(a.status, 200, "{a:?}");
        a.json["tasks"].as_array().cloned().unwrap_or_default()
    }

    /// Stops everything and removes the database.
    pub async fn finish(mut self) {
        for r in self.replicas.iter_mut().flatten() {
            let _ = r.kill().await;
        }
        let _ = self.mock.kill().await;
        if let Some(db) = self.db.take() {
            db.cleanup().await;
        }
    }
}
