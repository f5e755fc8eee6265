use serde_json::{Value, json};
use todo_test_support::Kind;
use wiremock::ResponseTemplate;

use crate::helpers::*;
use crate::on_both_stores;

on_both_stores!(
    a_turn_adds_a_task_and_answers_with_its_tool_calls,
    |app: TestApp| async move {
        app.llm_responds(Script::new(
            &[(
                "call_a",
                "add_task",
                r#"{"title":"Buy milk","due":"2026-11-23"}"#,
            )],
            "Added “Buy milk” for tomorrow.",
        ))
        .await;
        let r = app
            .chat(
                "alice",
                json!({"message": "add buy milk for tomorrow", "timezone": "Europe/Paris"}),
            )
            .await;
        assert_eq!(r.status(), 200);
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["response"], "Added “Buy milk” for tomorrow.");
        let conv = body["conversation_id"].as_str().unwrap().to_string();
        assert!(uuid::Uuid::parse_str(&conv).is_ok());
        assert!(body["created_at"].as_str().is_some());
        let calls = body["tool_calls"].as_array().unwrap();
        assert_eq!(calls.len(), 1);
        assert_eq!(calls[0]["name"], "add_task");
        assert_eq!(
            calls[0]["arguments"],
            json!({"title": "Buy milk", "due": "2026-11-23"})
        );
        assert_eq!(calls[0]["is_error"], false);
        assert_eq!(calls[0]["result"]["title"], "Buy milk");
        assert_eq!(calls[0]["result"]["id"], 1);

        // The task exists for alice only.
        let tasks = app.get_json("/api/alice/tasks").await;
        assert_eq!(tasks["tasks"][0]["title"], "Buy milk");
        let bob = app.get_json("/api/bob/tasks").await;
        assert_eq!(bob["tasks"], json!([]));

        // What the model was sent: system prompt with time zone, tools from MCP, max_tokens.
        let reqs = app.llm_requests().await;
        assert_eq!(reqs.len(), 2);
        let first = &reqs[0];
        assert_eq!(first["model"], "test-model");
        assert_eq!(first["max_tokens"], 512);
        let system = first["messages"][0]["content"].as_str().unwrap();
        assert_eq!(system, "You manage tasks.");
        // The moment, the zone and the open tasks come with the latest message, as data.
        let latest = first["messages"][1]["content"].as_str().unwrap();
        assert!(latest.contains("Europe/Paris"), "{latest}");
        assert!(latest.contains("Open tasks: none."), "{latest}");
        assert!(latest.ends_with("\nadd buy milk for tomorrow"), "{latest}");
        let names: Vec<&str> = first["tools"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["function"]["name"].as_str().unwrap())
            .collect();
        for n in [
            "add_task",
            "list_tasks",
            "complete_task",
            "delete_task",
            "update_task",
        ] {
            assert!(names.contains(&n), "{names:?}");
        }
        assert!(first["tools"][0]["function"]["parameters"]["properties"].is_object());
        let second = &reqs[1];
        assert_valid_sequence(&second["messages"]);
        assert_eq!(
            second["messages"][2]["tool_calls"][0]["function"]["arguments"],
            r#"{"title":"Buy milk","due":"2026-11-23"}"#
        );
        assert!(
            second["messages"][3]["content"]
                .as_str()
                .unwrap()
                .contains("Buy milk")
        );

        // The stored conversation: user, assistant(tool_calls), tool, assistant, with token usage.
        let msgs = app
            .get_json(&format!("/api/alice/conversations/{conv}/messages"))
            .await;
        let roles = stored_roles(&msgs);
        assert_eq!(roles, ["user", "assistant", "tool", "assistant"]);
        assert_eq!(msgs["messages"][1]["tool_calls"][0]["name"], "add_task");
        assert_eq!(msgs["messages"][2]["tool_call_id"], "call_a");
        assert_eq!(msgs["messages"][3]["prompt_tokens"], 100);
        let seqs: Vec<i64> = msgs["messages"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["seq"].as_i64().unwrap())
            .collect();
        assert_eq!(seqs, [1, 2, 3, 4]);

        let audit = app.audit().await;
        assert_eq!(audit.len(), 1);
        assert_eq!(audit[0].tool, "add_task");
        assert!(!audit[0].is_error);
        assert_eq!(audit[0].conversation_id.as_deref(), Some(conv.as_str()));
        assert!(audit[0].result.contains("Buy milk"), "{}", audit[0].result);

        let list = app.get_json("/api/alice/conversations").await;
        assert_eq!(list["conversations"][0]["id"], conv.as_str());
        assert_eq!(
            app.get_json("/api/bob/conversations").await["conversations"],
            json!([])
        );
        // Another user's conversation is not found, for reads and for chat.
        assert_eq!(
            app.get(&format!("/api/bob/conversations/{conv}/messages"))
                .await
                .status(),
            404
        );
        let r = app
            .chat("bob", json!({"message": "hi", "conversation_id": conv}))
            .await;
        assert_eq!(r.status(), 404);
        app.cleanup().await;
    }
);

on_both_stores!(
    parallel_tool_calls_all_run_and_are_each_answered,
    |app: TestApp| async move {
        app.llm_responds(Script::new(
            &[
                ("c1", "add_task", r#"{"title":"Milk"}"#),
                ("c2", "add_task", r#"{"title":"Bread"}"#),
                ("c3", "list_tasks", r#"{}"#),
            ],
            "Added both.",
        ))
        .await;
        let body: Value = app
            .chat("alice", json!({"message": "add milk and bread"}))
            .await
            .json()
            .await
            .unwrap();
        let calls = body["tool_calls"].as_array().unwrap();
        assert_eq!(calls.len(), 3);
        assert!(calls.iter().all(|c| c["is_error"] == false));
        assert_eq!(calls[2]["result"]["tasks"].as_array().unwrap().len(), 2);
        let reqs = app.llm_requests().await;
        let msgs = reqs[1]["messages"].as_array().unwrap();
        assert_valid_sequence(&reqs[1]["messages"]);
        let answered: Vec<&str> = msgs
            .iter()
            .filter(|m| m["role"] == "tool")
            .map(|m| m["tool_call_id"].as_str().unwrap())
            .collect();
        assert_eq!(answered, ["c1", "c2", "c3"]);
        app.cleanup().await;
    }
);

on_both_stores!(
    bad_tool_calls_go_back_to_the_model_as_tool_errors,
    |app: TestApp| async move {
        app.llm_responds(Script::new(
            &[
                ("c1", "launch_rockets", r#"{}"#),
                ("c2", "add_task", r#"{"title": "#),
                ("c3", "complete_task", r#"{"id": 99}"#),
                ("c4", "add_task", r#"{"title": ""}"#),
                ("c5", "add_task", r#"["not", "an", "object"]"#),
            ],
            "Some of that failed.",
        ))
        .await;
        let r = app.chat("alice", json!({"message": "do odd things"})).await;
        assert_eq!(r.status(), 200);
        let body: Value = r.json().await.unwrap();
        let calls = body["tool_calls"].as_array().unwrap();
        assert_eq!(calls.len(), 5);
        assert!(calls.iter().all(|c| c["is_error"] == true), "{calls:?}");
        let unknown = calls[0]["result"]["error"].as_str().unwrap();
        assert!(unknown.contains("no tool named"), "{unknown}");
        // The list of real tools comes from the MCP catalogue.
        assert!(
            unknown.contains(
                "add_task, complete_task, delete_task, list_tasks, restore_task, undo, update_task"
            ),
            "{unknown}"
        );
        assert!(
            calls[1]["result"]["error"]
                .as_str()
                .unwrap()
                .contains("not valid JSON")
        );
        assert_eq!(calls[1]["arguments"], r#"{"title": "#);
        assert!(
            calls[2]["result"]["error"]
                .as_str()
                .unwrap()
                .contains("#99")
        );
        assert!(
            calls[3]["result"]["error"]
                .as_str()
                .unwrap()
                .contains("title")
        );
        assert!(
            calls[4]["result"]["error"]
                .as_str()
                .unwrap()
                .contains("JSON object")
        );
        let reqs = app.llm_requests().await;
        assert_valid_sequence(&reqs[1]["messages"]);
        // The audit trail has every execution: user, conversation, tool, arguments as the
        // model sent them, outcome and duration.
        let conv = body["conversation_id"].as_str().unwrap();
        let audit = app.audit().await;
        let tools: Vec<&str> = audit.iter().map(|a| a.tool.as_str()).collect();
        assert_eq!(
            tools,
            [
                "launch_rockets",
                "add_task",
                "complete_task",
                "add_task",
                "add_task"
            ]
        );
        assert!(audit.iter().all(|a| a.user_id == "alice" && a.is_error));
        assert!(
            audit
                .iter()
                .all(|a| a.conversation_id.as_deref() == Some(conv))
        );
        assert!(audit.iter().all(|a| a.duration_ms >= 0));
        assert_eq!(audit[1].arguments, r#"{"title": "#);
        assert!(audit[2].result.contains("#99"), "{}", audit[2].result);
        app.cleanup().await;
    }
);

on_both_stores!(
    a_model_that_never_stops_calling_tools_is_cut_off_with_an_answer,
    |app: TestApp| async move {
        // A new read each round (a repeated identical read ends the turn sooner: rereads.rs).
        let round = std::sync::atomic::AtomicUsize::new(0);
        app.llm_responds(move |req: &wiremock::Request| {
            let body: Value = req.body_json().unwrap();
            if body.get("tools").is_some() {
                let n = round.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let args = format!(r#"{{"offset": {n}}}"#);
                ResponseTemplate::new(200).set_body_json(tool_reply(&[(
                    "c",
                    "list_tasks",
                    args.as_str(),
                )]))
            } else {
                ResponseTemplate::new(200)
                    .set_body_json(text_reply("I listed your tasks several times."))
            }
        })
        .await;
        let r = app.chat("alice", json!({"message": "loop"})).await;
        assert_eq!(r.status(), 200);
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["response"], "I listed your tasks several times.");
        let reqs = app.llm_requests().await;
        assert_eq!(reqs.len(), 6, "default max_rounds");
        assert!(reqs.last().unwrap().get("tools").is_none());
        assert_eq!(body["tool_calls"].as_array().unwrap().len(), 5);
        app.cleanup().await;
    }
);

on_both_stores!(
    history_is_rehydrated_and_bounded,
    |app: TestApp| async move {
        app.llm_responds(Script::new(&[], "ok")).await;
        let first: Value = app
            .chat("alice", json!({"message": "hello 0"}))
            .await
            .json()
            .await
            .unwrap();
        let conv = first["conversation_id"].as_str().unwrap().to_string();
        for i in 1..25 {
            let r = app
                .chat(
                    "alice",
                    json!({"message": format!("hello {i}"), "conversation_id": conv}),
                )
                .await;
            assert_eq!(r.status(), 200);
        }
        let reqs = app.llm_requests().await;
        let last = &reqs.last().unwrap()["messages"];
        let n = last.as_array().unwrap().len();
        // The 40-message window starts at an assistant reply, which is dropped so the history
        // begins with a person's message: 39 messages plus the system prompt.
        assert_eq!(n, 40, "{last}");
        let latest = last[n - 1]["content"].as_str().unwrap();
        assert!(
            latest.starts_with("<context>") && latest.ends_with("\nhello 24"),
            "{latest}"
        );
        assert_eq!(last[1]["role"], "user");
        assert_valid_sequence(last);
        app.cleanup().await;
    }
);

#[tokio::test]
async fn destructive_calls_beyond_the_limit_are_refused_back_to_the_model() {
    let Some(app) = spawn_app(Kind::Sqlite).await else {
        return;
    };
    app.llm_responds(Script::new(&[("a1", "add_task", r#"{"title":"a"}"#)], "ok"))
        .await;
    for _ in 0..5 {
        app.chat("alice", json!({"message": "add"})).await;
    }
    app.llm.reset().await;
    let deletes: Vec<(String, &str, String)> = (1..=5)
        .map(|i| (format!("d{i}"), "delete_task", format!(r#"{{"id":{i}}}"#)))
        .collect();
    let d: Vec<(&str, &str, &str)> = deletes
        .iter()
        .map(|(a, b, c)| (a.as_str(), *b, c.as_str()))
        .collect();
    app.llm_responds(Script::new(&d, "Deleted some.")).await;
    let body: Value = app
        .chat("alice", json!({"message": "delete everything"}))
        .await
        .json()
        .await
        .unwrap();
    let calls = body["tool_calls"].as_array().unwrap();
    let errors: Vec<bool> = calls
        .iter()
        .map(|c| c["is_error"].as_bool().unwrap())
        .collect();
    assert_eq!(errors, [false, false, false, true, true]);
    assert!(
        calls[3]["result"]["error"]
            .as_str()
            .unwrap()
            .contains("confirm")
    );
    let left = app.get_json("/api/alice/tasks").await;
    assert_eq!(left["tasks"].as_array().unwrap().len(), 2);
    app.cleanup().await;
}
