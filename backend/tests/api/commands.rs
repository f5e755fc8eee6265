//! Commands typed in chat (`/add`, `/list`, `/done 3`…): answered through the MCP tools with
//! no model call, stored as ordinary history, under the same auth, limits and idempotency as
//! any turn; and what a service without a model answers.

use std::time::{Duration, Instant};

use chrono::{NaiveDate, TimeZone, Utc};
use reqwest::Method;
use serde_json::{Value, json};
use todo_backend::access::AccessSettings;
use todo_test_support::Kind;
use wiremock::matchers::any;
use wiremock::{Mock, ResponseTemplate};

use crate::auth::{hs256_options, send, token};
use crate::helpers::*;
use crate::on_both_stores;

/// Any request reaching the model fails the test when the mock server is verified or dropped.
async fn forbid_model_calls(app: &TestApp) {
    Mock::given(any())
        .respond_with(ResponseTemplate::new(500))
        .expect(0)
        .named("no model call for a command")
        .mount(&app.llm)
        .await;
}

/// Sends `message` (Paris time) and returns the 200 answer.
async fn say(app: &TestApp, user: &str, conv: Option<&str>, message: &str) -> Value {
    let mut body = json!({"message": message, "timezone": "Europe/Paris"});
    if let Some(c) = conv {
        body["conversation_id"] = json!(c);
    }
    let r = app.chat(user, body).await;
    let status = r.status();
    let text = r.text().await.unwrap();
    assert_eq!(status, 200, "{message}: {text}");
    serde_json::from_str(&text).unwrap()
}

fn response(v: &Value) -> &str {
    v["response"].as_str().unwrap()
}

async fn messages(app: &TestApp, user: &str, conv: &str) -> Vec<Value> {
    app.get_json(&format!("/api/{user}/conversations/{conv}/messages"))
        .await["messages"]
        .as_array()
        .unwrap()
        .clone()
}

/// Tomorrow 17:00 in Paris as the UTC instant the tools store.
fn tomorrow_5pm_paris() -> String {
    let paris = chrono_tz::Europe::Paris;
    let tomorrow = Utc::now()
        .with_timezone(&paris)
        .date_naive()
        .succ_opt()
        .unwrap();
    paris
        .from_local_datetime(&tomorrow.and_hms_opt(17, 0, 0).unwrap())
        .single()
        .unwrap()
        .with_timezone(&Utc)
        .format("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

on_both_stores!(
    commands_add_list_and_complete_tasks_without_a_model_call_and_stay_valid_history,
    |app: TestApp| async move {
        forbid_model_calls(&app).await;
        let a = say(
            &app,
            "alice",
            None,
            "/add Buy milk tomorrow 5pm !high #shopping",
        )
        .await;
        let conv = a["conversation_id"].as_str().unwrap().to_string();
        let c = Some(conv.as_str());
        assert!(
            response(&a).starts_with("Added #1 [ ] Buy milk (due "),
            "{a}"
        );
        assert!(response(&a).contains("17:00, high) #shopping"), "{a}");
        let calls = a["tool_calls"].as_array().unwrap();
        assert_eq!(calls.len(), 1);
        assert_eq!(calls[0]["name"], "add_task");
        assert_eq!(
            calls[0]["arguments"],
            json!({"title": "Buy milk", "due": tomorrow_5pm_paris(), "priority": "high", "tags": ["shopping"]})
        );
        assert_eq!(calls[0]["is_error"], false);
        assert_eq!(calls[0]["result"]["id"], 1);

        say(&app, "alice", c, "/add Call mom").await;
        let l = say(&app, "alice", c, "/list").await;
        assert_eq!(l["tool_calls"][0]["name"], "list_tasks");
        assert!(response(&l).starts_with("Open tasks:"), "{l}");
        assert!(response(&l).contains("#1 [ ] Buy milk"), "{l}");
        assert!(response(&l).contains("#2 [ ] Call mom"), "{l}");
        assert!(response(&say(&app, "alice", c, "/list #shopping").await).contains("Buy milk"));
        assert!(!response(&say(&app, "alice", c, "/list #shopping").await).contains("Call mom"));
        assert!(response(&say(&app, "alice", c, "/list mom").await).contains("Call mom"));

        let d = say(&app, "alice", c, "/done 1").await;
        assert_eq!(d["tool_calls"][0]["name"], "complete_task");
        assert_eq!(d["tool_calls"][0]["arguments"], json!({"id": 1}));
        assert!(response(&d).starts_with("Completed #1 [x] Buy milk"), "{d}");
        assert!(response(&say(&app, "alice", c, "/list done").await).contains("#1 [x] Buy milk"));
        assert!(!response(&say(&app, "alice", c, "/list").await).contains("Buy milk"));
        let u = say(&app, "alice", c, "/undone 1").await;
        assert_eq!(
            u["tool_calls"][0]["arguments"],
            json!({"id": 1, "completed": false})
        );
        assert!(response(&u).starts_with("Re-opened #1 [ ] Buy milk"), "{u}");
        let e = say(&app, "alice", c, "/edit 1 title Buy oat milk").await;
        assert!(response(&e).contains("#1 [ ] Buy oat milk"), "{e}");
        let e = say(&app, "alice", c, "/edit 1 due none").await;
        assert_eq!(
            e["tool_calls"][0]["arguments"],
            json!({"id": 1, "due": null})
        );
        assert!(e["tool_calls"][0]["result"]["due"].is_null(), "{e}");
        let x = say(&app, "alice", c, "/delete 2").await;
        assert!(response(&x).contains("/restore 2"), "{x}");
        assert!(response(&say(&app, "alice", c, "/list trash").await).contains("Call mom"));
        assert!(response(&say(&app, "alice", c, "/restore 2").await).starts_with("Restored #2"));

        // Another person's task is not found, and that is an answer, not an error status.
        let b = say(&app, "bob", None, "/done 1").await;
        assert_eq!(b["tool_calls"][0]["is_error"], true);
        assert!(response(&b).contains("No task #1"), "{b}");
        let tasks = app.get_json("/api/alice/tasks?status=all").await;
        assert_eq!(tasks["tasks"].as_array().unwrap().len(), 2);

        // Stored like any exchange: user, assistant with the call, tool answer, assistant reply.
        let stored = messages(&app, "alice", &conv).await;
        let roles: Vec<&str> = stored[..4]
            .iter()
            .map(|m| m["role"].as_str().unwrap())
            .collect();
        assert_eq!(roles, ["user", "assistant", "tool", "assistant"]);
        assert_eq!(
            stored[0]["content"],
            "/add Buy milk tomorrow 5pm !high #shopping"
        );
        assert_eq!(stored[1]["tool_calls"][0]["name"], "add_task");
        assert_eq!(stored[2]["tool_call_id"], stored[1]["tool_calls"][0]["id"]);
        assert!(stored[2]["content"].as_str().unwrap().contains("Buy milk"));
        assert_eq!(stored[3]["content"], a["response"]);
        assert!(
            stored[3]["prompt_tokens"].is_null(),
            "a command is no model call"
        );
        assert_eq!(
            stored.len(),
            4 * 15,
            "every command stored as four messages"
        );
        let audit = app.audit().await;
        assert_eq!(audit.len(), 16, "every command's tool call audited");
        assert_eq!(audit[0].tool, "add_task");
        assert_eq!(audit[0].conversation_id.as_deref(), Some(conv.as_str()));

        app.llm.verify().await;
        assert!(
            app.llm_requests().await.is_empty(),
            "a command reached the model"
        );

        // The model reads the commands later as ordinary, valid history.
        app.llm.reset().await;
        app.llm_responds(Script::new(&[], "You have two tasks."))
            .await;
        let r = say(&app, "alice", c, "what's left?").await;
        assert_eq!(response(&r), "You have two tasks.");
        let sent = app.llm_requests().await;
        assert_eq!(sent.len(), 1);
        let history = &sent[0]["messages"];
        assert_valid_sequence(history);
        let text = history.to_string();
        // The last 40 messages: the most recent commands, calls and answers.
        assert!(text.contains("/restore 2"), "{text}");
        assert!(text.contains("restore_task"), "{text}");
        assert!(text.contains("Restored #2"), "{text}");
        app.cleanup().await;
    }
);

on_both_stores!(
    today_and_overdue_lists_follow_the_persons_day,
    |app: TestApp| async move {
        forbid_model_calls(&app).await;
        let a = say(&app, "ann", None, "/add file taxes 2020-01-15").await;
        let c = a["conversation_id"].as_str().map(str::to_string);
        let c = c.as_deref();
        say(&app, "ann", c, "/add water plants today").await;
        say(&app, "ann", c, "/add book flights in 3 days").await;
        say(&app, "ann", c, "/add someday maybe").await;
        let today = response(&say(&app, "ann", c, "/list today").await).to_string();
        assert!(
            today.contains("file taxes") && today.contains("water plants"),
            "{today}"
        );
        assert!(
            !today.contains("book flights") && !today.contains("someday"),
            "{today}"
        );
        let overdue = response(&say(&app, "ann", c, "/list overdue").await).to_string();
        assert!(
            overdue.contains("#1 [ ] file taxes (overdue, due Wed 15 Jan 2020)"),
            "{overdue}"
        );
        assert!(!overdue.contains("water plants"), "{overdue}");
        say(&app, "ann", c, "/done 1").await;
        assert_eq!(
            response(&say(&app, "ann", c, "/list overdue").await),
            "Nothing is overdue."
        );
        app.llm.verify().await;
        app.cleanup().await;
    }
);

#[tokio::test]
async fn today_is_the_day_of_the_persons_time_zone() {
    let Some(app) = spawn_app(Kind::Sqlite).await else {
        return;
    };
    forbid_model_calls(&app).await;
    // Kiritimati (UTC+14) and Pago Pago (UTC-11) are never on the same date.
    for (user, zone) in [
        ("kiri", "Pacific/Kiritimati"),
        ("pago", "Pacific/Pago_Pago"),
    ] {
        let tz: chrono_tz::Tz = zone.parse().unwrap();
        let before = Utc::now().with_timezone(&tz).date_naive();
        let r = app
            .chat(
                user,
                json!({"message": "/add call home today", "timezone": zone}),
            )
            .await;
        assert_eq!(r.status(), 200);
        let r: Value = r.json().await.unwrap();
        let after = Utc::now().with_timezone(&tz).date_naive();
        let due = r["tool_calls"][0]["arguments"]["due"].as_str().unwrap();
        let due = NaiveDate::parse_from_str(due, "%Y-%m-%d").unwrap();
        assert!(due == before || due == after, "{zone}: {due}");
    }
    app.llm.verify().await;
    app.cleanup().await;
}

on_both_stores!(
    malformed_commands_answer_their_usage_line_and_store_the_exchange,
    |app: TestApp| async move {
        forbid_model_calls(&app).await;
        let cases = [
            ("/done abc", "/done <n>"),
            ("/done", "/done <n>"),
            (
                "/edit 1",
                "/edit <n> <title|due|priority|tags|notes|repeat> <value>",
            ),
            ("/edit 1 repeat sometimes", "/edit <n>"),
            ("/sub x milk", "/sub <n>"),
            ("/edit 1 due someday", "/edit <n>"),
            ("/add", "/add <title>"),
            ("/add !urgentish x", "/add <title>"),
            ("/list #a #b", "/list [today"),
            ("/undo please", "/undo"),
            ("/frobnicate", "/help"),
            ("/", "/add <title>"),
        ];
        let mut conv: Option<String> = None;
        for (line, usage) in cases {
            let r = say(&app, "mel", conv.as_deref(), line).await;
            let text = response(&r);
            assert!(text.contains("Usage: "), "{line}: {text}");
            assert!(text.contains(usage), "{line}: {text}");
            assert_eq!(r["tool_calls"], json!([]), "{line}");
            conv = r["conversation_id"].as_str().map(str::to_string);
        }
        let stored = messages(&app, "mel", conv.as_deref().unwrap()).await;
        assert_eq!(stored.len(), 2 * cases.len());
        assert!(stored.iter().all(|m| m["tool_calls"].is_null()));
        let help = say(&app, "mel", None, "/help").await;
        for cmd in [
            "/add", "/list", "/done", "/undone", "/edit", "/delete", "/restore", "/undo",
        ] {
            assert!(response(&help).contains(cmd), "{cmd} missing from /help");
        }
        assert!(app.get_json("/api/mel/tasks").await["tasks"] == json!([]));
        assert!(app.audit().await.is_empty(), "no tool ran");
        app.llm.verify().await;
        app.cleanup().await;
    }
);

#[tokio::test]
async fn slash_undo_reverts_the_last_change_through_the_undo_tool_without_the_model() {
    let Some(app) = spawn_app(Kind::Sqlite).await else {
        return;
    };
    forbid_model_calls(&app).await;
    let a = say(&app, "ned", None, "/add keep me").await;
    let c = a["conversation_id"].as_str().unwrap();
    say(&app, "ned", Some(c), "/edit 1 title renamed").await;
    assert_eq!(
        app.get_json("/api/ned/tasks").await["tasks"][0]["title"],
        "renamed"
    );
    let r = say(&app, "ned", Some(c), "/undo").await;
    assert_eq!(r["tool_calls"][0]["name"], "undo", "{r}");
    assert_eq!(r["tool_calls"][0]["is_error"], false, "{r}");
    assert_eq!(
        app.get_json("/api/ned/tasks").await["tasks"][0]["title"],
        "keep me",
        "the rename is undone"
    );
    // Undoing again walks back to the add: the task goes to the trash.
    let r = say(&app, "ned", Some(c), "/undo").await;
    assert_eq!(r["tool_calls"][0]["is_error"], false, "{r}");
    assert_eq!(app.get_json("/api/ned/tasks").await["tasks"], json!([]));
    // Nothing left: the third undo says so as a tool error, not a 5xx.
    let r = say(&app, "ned", Some(c), "/undo").await;
    assert_eq!(r["tool_calls"][0]["is_error"], true, "{r}");
    app.llm.verify().await;
    app.cleanup().await;
}

#[tokio::test]
async fn a_repeated_idempotency_key_replays_a_command_without_running_it_again() {
    let Some(app) = spawn_app(Kind::Sqlite).await else {
        return;
    };
    forbid_model_calls(&app).await;
    let body = json!({"message": "/add pay rent"});
    let a = app.chat_with_key("ida", "cmd-1", body.clone()).await;
    assert_eq!(a.status(), 200);
    assert!(a.headers().get("idempotent-replayed").is_none());
    let a: Value = a.json().await.unwrap();
    let b = app.chat_with_key("ida", "cmd-1", body).await;
    assert_eq!(b.status(), 200);
    assert_eq!(b.headers()["idempotent-replayed"], "true");
    assert_eq!(b.json::<Value>().await.unwrap(), a);
    let tasks = app.get_json("/api/ida/tasks").await;
    assert_eq!(
        tasks["tasks"].as_array().unwrap().len(),
        1,
        "ran twice: {tasks}"
    );
    assert_eq!(app.audit().await.len(), 1);
    let c = app
        .chat_with_key("ida", "cmd-1", json!({"message": "/add pay bills"}))
        .await;
    assert_eq!(c.status(), 422);
    app.llm.verify().await;
    app.cleanup().await;
}

#[tokio::test]
async fn commands_need_the_path_users_token() {
    let Some(app) = spawn_app_with(Kind::Sqlite, hs256_options()).await else {
        return;
    };
    forbid_model_calls(&app).await;
    let body = Some(json!({"message": "/add secret"}));
    let r = send(&app, Method::POST, "/api/alice/chat", None, body.clone()).await;
    assert_eq!(r.status(), 401);
    let bob = format!("Bearer {}", token("bob"));
    let r = send(
        &app,
        Method::POST,
        "/api/alice/chat",
        Some(&bob),
        body.clone(),
    )
    .await;
    assert_eq!(r.status(), 403);
    assert_eq!(app.audit().await.len(), 0, "a refused command ran a tool");
    let alice = format!("Bearer {}", token("alice"));
    let r = send(&app, Method::POST, "/api/alice/chat", Some(&alice), body).await;
    assert_eq!(r.status(), 200);
    let r = send(&app, Method::GET, "/api/alice/tasks", Some(&alice), None).await;
    let tasks: Value = r.json().await.unwrap();
    assert_eq!(tasks["tasks"][0]["title"], "secret");
    app.llm.verify().await;
    app.cleanup().await;
}

#[tokio::test]
async fn commands_count_against_the_rate_limit() {
    let o = Options {
        access: AccessSettings {
            rate_limit_per_minute: 2,
            ..AccessSettings::default()
        },
        ..Options::default()
    };
    let Some(app) = spawn_app_with(Kind::Sqlite, o).await else {
        return;
    };
    forbid_model_calls(&app).await;
    for i in 0..2 {
        let r = app
            .chat("rey", json!({"message": format!("/add t{i}")}))
            .await;
        assert_eq!(r.status(), 200, "command {i} is within the rate");
    }
    let r = app
        .chat("rey", json!({"message": "/add one too many"}))
        .await;
    assert_eq!(r.status(), 429);
    assert!(r.headers().get("retry-after").is_some());
    assert_eq!(
        app.get_json("/api/rey/tasks").await["tasks"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
    app.llm.verify().await;
    app.cleanup().await;
}

#[tokio::test]
async fn a_command_waits_its_turn_behind_a_running_model_turn() {
    let Some(app) = spawn_app(Kind::Sqlite).await else {
        return;
    };
    let first = say(&app, "sam", None, "/add first").await;
    let conv = first["conversation_id"].as_str().unwrap().to_string();
    app.llm_responds(
        ResponseTemplate::new(200)
            .set_body_json(text_reply("slow answer"))
            .set_delay(Duration::from_millis(1500)),
    )
    .await;
    let slow = {
        let (client, url, conv) = (
            app.client.clone(),
            format!("{}/api/sam/chat", app.address),
            conv.clone(),
        );
        tokio::spawn(async move {
            client
                .post(url)
                .json(&json!({"message": "think slowly", "conversation_id": conv}))
                .send()
                .await
                .unwrap()
                .status()
        })
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    while app.llm_requests().await.is_empty() {
        assert!(
            Instant::now() < deadline,
            "the model turn never reached the model"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let r = app
        .chat(
            "sam",
            json!({"message": "/add second", "conversation_id": conv}),
        )
        .await;
    assert_eq!(r.status(), 409);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], "conversation_busy");
    assert_eq!(slow.await.unwrap(), 200);
    let r = say(&app, "sam", Some(&conv), "/add second").await;
    assert!(response(&r).starts_with("Added #2"));
    let stored = messages(&app, "sam", &conv).await;
    let roles: Vec<&str> = stored.iter().map(|m| m["role"].as_str().unwrap()).collect();
    assert_eq!(
        roles,
        [
            "user",
            "assistant",
            "tool",
            "assistant",
            "user",
            "assistant",
            "user",
            "assistant",
            "tool",
            "assistant"
        ]
    );
    app.cleanup().await;
}

async fn without_a_model_commands_work_and_free_text_explains_them(kind: Kind) {
    let o = Options {
        llm_configured: false,
        ..Options::default()
    };
    let Some(app) = spawn_app_with(kind, o).await else {
        return;
    };
    let hi = say(&app, "newcomer", None, "hi, add milk please").await;
    let text = response(&hi);
    for needed in [
        "/add",
        "/list",
        "/done",
        "/help",
        "OPENAI_API_KEY",
        "OPENAI_BASE_URL",
        "LLM_MODEL",
    ] {
        assert!(text.contains(needed), "{needed} missing from: {text}");
    }
    assert_eq!(hi["tool_calls"], json!([]));
    let conv = hi["conversation_id"].as_str().unwrap().to_string();
    let c = Some(conv.as_str());
    assert!(
        response(&say(&app, "newcomer", c, "/add milk tomorrow").await).starts_with("Added #1")
    );
    assert!(response(&say(&app, "newcomer", c, "/list").await).contains("#1 [ ] milk"));
    assert!(response(&say(&app, "newcomer", c, "/done 1").await).starts_with("Completed #1"));
    let stored = messages(&app, "newcomer", &conv).await;
    assert_eq!(stored[0]["content"], "hi, add milk please");
    assert_eq!(stored[1]["content"], hi["response"]);
    assert_eq!(stored.len(), 2 + 3 * 4);
    let tasks = app.get_json("/api/newcomer/tasks?status=completed").await;
    assert_eq!(tasks["tasks"][0]["title"], "milk");
    assert!(app.llm_requests().await.is_empty());
    app.cleanup().await;
}

todo_test_support::on_both_databases!(without_a_model_commands_work_and_free_text_explains_them);

on_both_stores!(
    commands_add_repeating_tasks_and_subtasks_and_complete_a_repeat_into_its_next_occurrence,
    |app: TestApp| async move {
        forbid_model_calls(&app).await;
        let a = say(&app, "rita", None, "/add water plants every 3 days #home").await;
        let conv = a["conversation_id"].as_str().unwrap().to_string();
        let c = Some(conv.as_str());
        assert_eq!(
            a["tool_calls"][0]["arguments"],
            json!({"title": "water plants", "repeat": "every 3 days", "tags": ["home"]})
        );
        // No due date given: the first occurrence is today, in Paris.
        let today = Utc::now()
            .with_timezone(&chrono_tz::Europe::Paris)
            .date_naive();
        let task = &a["tool_calls"][0]["result"];
        assert_eq!(task["due"], json!(today.to_string()));
        assert_eq!(task["repeat"]["rule"], "FREQ=DAILY;INTERVAL=3");
        assert_eq!(task["repeat"]["timezone"], "Europe/Paris");
        assert!(response(&a).contains("↻ every 3 days #home"), "{a}");

        // Done: this occurrence is recorded, the task moves three days on.
        let d = say(&app, "rita", c, "/done 1").await;
        let in_three = today + chrono::Duration::days(3);
        assert_eq!(
            d["tool_calls"][0]["result"]["due"],
            json!(in_three.to_string())
        );
        assert!(
            response(&d).starts_with("Completed this occurrence; next: #1 [ ] water plants"),
            "{d}"
        );
        assert!(
            response(&say(&app, "rita", c, "/list done").await).contains("#2 [x] water plants")
        );

        // The rule survives a new due date; "/edit n repeat none" stops it.
        let e = say(&app, "rita", c, "/edit 1 due fri").await;
        assert!(response(&e).contains("↻ every 3 days"), "{e}");
        let e = say(&app, "rita", c, "/edit 1 repeat every monday").await;
        assert!(response(&e).contains("↻ every Monday"), "{e}");
        let e = say(&app, "rita", c, "/edit 1 repeat none").await;
        assert_eq!(
            e["tool_calls"][0]["arguments"],
            json!({"id": 1, "repeat": null})
        );
        assert!(!response(&e).contains('↻'), "{e}");

        // Subtasks, and the rules' refusals as the tools word them.
        say(&app, "rita", c, "/add plan trip").await;
        let s = say(&app, "rita", c, "/sub 3 book flights").await;
        assert_eq!(
            s["tool_calls"][0]["arguments"],
            json!({"title": "book flights", "parent_id": 3})
        );
        assert!(
            response(&s).contains("#4 [ ] book flights (subtask of #3)"),
            "{s}"
        );
        let bad = say(&app, "rita", c, "/sub 4 pack bags").await;
        assert_eq!(bad["tool_calls"][0]["is_error"], true);
        assert!(response(&bad).contains("one level"), "{bad}");
        let other = say(&app, "sam", None, "/sub 3 steal").await;
        assert!(response(&other).contains("No task #3"), "{other}");
        let done = say(&app, "rita", c, "/done 3").await;
        assert!(
            response(&done).starts_with("Completed #3 [x] plan trip"),
            "{done}"
        );
        assert!(
            response(&say(&app, "rita", c, "/list done").await).contains("#4 [x] book flights")
        );
        app.llm.verify().await;
        app.cleanup().await;
    }
);
