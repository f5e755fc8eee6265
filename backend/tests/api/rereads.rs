//! A model stuck asking for the same read again (the local model in the eval called
//! `list_tasks` round after round): the turn ends with what was read, after one repeat.

use serde_json::{Value, json};
use todo_test_support::Kind;
use wiremock::{Request, Respond, ResponseTemplate};

use crate::helpers::*;
use crate::on_both_stores;

/// Always asks for the same list, whatever it was told.
struct AlwaysLists(&'static str);

impl Respond for AlwaysLists {
    fn respond(&self, _req: &Request) -> ResponseTemplate {
        ResponseTemplate::new(200).set_body_json(tool_reply(&[("call_l", "list_tasks", self.0)]))
    }
}

on_both_stores!(
    a_repeated_identical_read_ends_the_turn_with_its_result,
    |app: TestApp| async move {
        app.llm_responds(Script::new(
            &[(
                "call_a",
                "add_task",
                r#"{"title":"Buy milk","tags":["shopping"]}"#,
            )],
            "Added.",
        ))
        .await;
        let r = app
            .chat(
                "alice",
                json!({"message": "add buy milk", "timezone": "Europe/Paris"}),
            )
            .await;
        assert_eq!(r.status(), 200);
        let conv = r.json::<Value>().await.unwrap()["conversation_id"]
            .as_str()
            .unwrap()
            .to_string();
        let before = app.llm_requests().await.len();

        app.llm.reset().await;
        // The model asks for the same list in every reply.
        app.llm_responds(AlwaysLists(r#"{"status": "pending", "tag": "shopping"}"#))
            .await;
        let r = app
            .chat(
                "alice",
                json!({"message": "what's on my shopping list?", "conversation_id": conv, "timezone": "Europe/Paris"}),
            )
            .await;
        assert_eq!(r.status(), 200);
        let body: Value = r.json().await.unwrap();
        // One read ran; the repeat did not run again and asked the model nothing more.
        let calls = body["tool_calls"].as_array().unwrap();
        assert_eq!(calls.len(), 1, "{body}");
        assert_eq!(calls[0]["name"], "list_tasks");
        assert_eq!(app.llm_requests().await.len(), 2, "before: {before}");
        let answer = body["response"].as_str().unwrap();
        assert!(answer.contains("#1 [ ] Buy milk #shopping"), "{answer}");

        // The stored history is one the next turn can continue: the repeat was not stored
        // as an unanswered call, and the answer carries the model call's token counts.
        let msgs = app
            .get_json(&format!("/api/alice/conversations/{conv}/messages"))
            .await;
        let roles = stored_roles(&msgs);
        assert_eq!(
            roles,
            [
                "user",
                "assistant",
                "tool",
                "assistant",
                "user",
                "assistant",
                "tool",
                "assistant"
            ]
        );
        let last = msgs["messages"].as_array().unwrap().last().unwrap().clone();
        assert_eq!(last["content"], answer);
        assert_eq!(last["prompt_tokens"], 120);
        assert!(
            app.audit()
                .await
                .iter()
                .filter(|a| a.tool == "list_tasks")
                .count()
                == 1
        );
    }
);

on_both_stores!(
    a_read_with_other_arguments_is_not_a_repeat,
    |app: TestApp| async move {
        // Different arguments each round: every read runs, until the round limit's last
        // round, which offers no tools and takes the words.
        struct Paging(std::sync::atomic::AtomicUsize);
        impl Respond for Paging {
            fn respond(&self, req: &Request) -> ResponseTemplate {
                let body: Value = req.body_json().unwrap_or(Value::Null);
                if body["tools"].as_array().is_none_or(|t| t.is_empty()) {
                    return ResponseTemplate::new(200).set_body_json(text_reply("Nothing there."));
                }
                let n = self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let args = format!(r#"{{"offset": {n}}}"#);
                ResponseTemplate::new(200).set_body_json(tool_reply(&[(
                    "call_p",
                    "list_tasks",
                    args.as_str(),
                )]))
            }
        }
        app.llm_responds(Paging(std::sync::atomic::AtomicUsize::new(0)))
            .await;
        let r = app
            .chat(
                "alice",
                json!({"message": "show everything", "timezone": "UTC"}),
            )
            .await;
        assert_eq!(r.status(), 200);
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["response"], "Nothing there.");
        assert!(body["tool_calls"].as_array().unwrap().len() > 1, "{body}");
    }
);

on_both_stores!(
    a_failed_call_asked_for_again_unchanged_ends_the_turn_with_its_error,
    |app: TestApp| async move {
        // The eval saw "hi" answered with `undo` five times over, nothing to undo each time.
        struct AlwaysUndo;
        impl Respond for AlwaysUndo {
            fn respond(&self, _req: &Request) -> ResponseTemplate {
                ResponseTemplate::new(200).set_body_json(tool_reply(&[("call_u", "undo", "{}")]))
            }
        }
        app.llm_responds(AlwaysUndo).await;
        let r = app
            .chat("alice", json!({"message": "hi", "timezone": "UTC"}))
            .await;
        assert_eq!(r.status(), 200);
        let body: Value = r.json().await.unwrap();
        assert_eq!(app.llm_requests().await.len(), 2);
        let calls = body["tool_calls"].as_array().unwrap();
        assert_eq!(calls.len(), 1, "{body}");
        assert_eq!(calls[0]["is_error"], true);
        let answer = body["response"].as_str().unwrap();
        assert!(answer.contains("nothing to undo"), "{answer}");
        assert_eq!(
            app.get_json("/api/alice/tasks?status=all").await["tasks"],
            json!([])
        );
    }
);
