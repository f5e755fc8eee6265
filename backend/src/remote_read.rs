//! Task reads of the HTTP API in remote-MCP mode: through the same tools that write, so a
//! person (and the model) never see task #N of one database and act on #N of another.

use serde_json::{Map, Value};
use todo_core::tasks::{ListFilter, StatusFilter, TaskPage};

use crate::agent::Agent;

/// The `list_tasks` arguments for a validated filter.
fn arguments(filter: &ListFilter) -> Map<String, Value> {
    let mut args = Map::new();
    let status = match filter.status {
        StatusFilter::Pending => "pending",
        StatusFilter::Completed => "completed",
        StatusFilter::All => "all",
        StatusFilter::Deleted => "deleted",
    };
    args.insert("status".into(), status.into());
    if let Some(q) = &filter.query {
        args.insert("query".into(), q.clone().into());
    }
    if let Some(t) = &filter.tag {
        args.insert("tag".into(), t.clone().into());
    }
    args.insert("limit".into(), filter.limit.into());
    args.insert("offset".into(), filter.offset.into());
    args
}

/// Lists `user`'s tasks through a tool session, within the per-request timeout.
pub async fn list_tasks(
    agent: &Agent,
    user: &str,
    filter: &ListFilter,
) -> anyhow::Result<TaskPage> {
    let timeout = agent.limits.mcp_request_timeout;
    let work = async {
        let session = agent.toolbox.session(user).await?;
        let page = session.list_tasks(arguments(filter)).await;
        session.close().await;
        page
    };
    tokio::time::timeout(timeout, work)
        .await
        .map_err(|_| anyhow::anyhow!("the MCP server did not answer in time"))?
}
