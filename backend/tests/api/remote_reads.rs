//! In remote-MCP mode every task read goes through the same tools that write: the open-task
//! view the model is shown and `GET /api/{user_id}/tasks` come from the remote store, never
//! from the backend's own database.

use secrecy::SecretString;
use serde_json::{Value, json};
use todo_backend::access::AccessSettings;
use todo_core::tasks::{NewTask, Title};
use todo_test_support::Kind;

use crate::helpers::*;
use crate::stalls::{SERVICE_SECRET, StallingMcp};

fn task(title: &str) -> NewTask {
    NewTask {
        title: Title::parse(title).unwrap(),
        parent: None,
        repeat: None,
        description: None,
        due: None,
        priority: Default::default(),
        tags: vec!["home".into()],
    }
}

#[tokio::test]
async fn the_task_list_and_the_models_view_come_from_the_remote_store() {
    let mcp = StallingMcp::start().await;
    let o = Options {
        mcp_server_url: Some(mcp.url.clone()),
        access: AccessSettings {
            mcp_service_secret: Some(SecretString::from(SERVICE_SECRET)),
            single_user_dev: true,
            ..AccessSettings::default()
        },
        ..Options::default()
    };
    let Some(app) = spawn_app_with(Kind::Sqlite, o).await else {
        return;
    };
    mcp.store.add("alice", task("Remote milk")).await.unwrap();
    // The backend's own database has a task with the same number that the tools never see.
    let local = app.db.as_ref().unwrap().db.task_store();
    local.add("alice", task("Local decoy")).await.unwrap();

    let page = app.get_json("/api/alice/tasks?tag=home").await;
    let titles: Vec<&str> = page["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["title"].as_str().unwrap())
        .collect();
    assert_eq!(titles, ["Remote milk"], "{page}");
    assert_eq!(
        app.get_json("/api/bob/tasks").await["tasks"],
        json!([]),
        "scoped to the path's user"
    );

    app.llm_responds(Script::new(&[], "You have milk to buy."))
        .await;
    let r = app.chat("alice", json!({"message": "what's open?"})).await;
    assert_eq!(r.status(), 200);
    let sent: Vec<Value> = app.llm_requests().await;
    let prompt = sent[0]["messages"].to_string();
    assert!(prompt.contains("Remote milk"), "{prompt}");
    assert!(!prompt.contains("Local decoy"), "{prompt}");
    app.cleanup().await;
    mcp.stop().await;
}
