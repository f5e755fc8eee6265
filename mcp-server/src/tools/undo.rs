//! The `undo` tool: reverts the caller's most recent group of changes (one chat turn, or one
//! MCP request) that is not yet undone. The journal and the revert live in the task store.

use rmcp::model::{CallToolResult, JsonObject};
use schemars::JsonSchema;
use serde::Deserialize;

use super::{TaskTools, ToolFailure, parse_args, store_failure, structured};
use crate::tasks::UndoError;

/// `undo` takes no arguments.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct UndoArgs {}

impl TaskTools {
    /// These tools with every change journaled under `group` (one chat turn), so one undo
    /// reverts the whole turn. Without it, each call is its own group.
    pub fn in_group(mut self, group: &str) -> Self {
        self.store = self.store.grouped(group);
        self
    }

    pub(super) async fn undo_last(
        &self,
        user: &str,
        raw: JsonObject,
    ) -> Result<CallToolResult, ToolFailure> {
        let _: UndoArgs = parse_args("undo", raw, user)?;
        match self.store.undo(user).await {
            Ok(report) => Ok(structured(report.text(), &report)),
            Err(UndoError::Nothing) => Err(ToolFailure::Invalid(
                "There is nothing to undo: no change made through these tools is left to revert."
                    .into(),
            )),
            Err(UndoError::Conflict { task, later }) => {
                let how = later.map_or_else(
                    || "changed".to_string(),
                    |k| format!("changed again (a later {})", k.as_str()),
                );
                Err(ToolFailure::Invalid(format!(
                    "Nothing was undone: task #{task} was {how} after the change you asked to \
                     undo, so reverting it would lose that. Tell the person, and change task \
                     #{task} directly if they still want it back."
                )))
            }
            Err(UndoError::Store(e)) => Err(store_failure(0)(e)),
        }
    }
}
