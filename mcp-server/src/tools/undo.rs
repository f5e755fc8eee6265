//! The `undo` tool: reverts the caller's most recent group of changes (one chat turn, or one
//! MCP request) that is not yet undone. The journal and the revert live in the task store.

use std::borrow::Cow;

use rmcp::RoleServer;
use rmcp::model::{CallToolResult, JsonObject};
use rmcp::service::RequestContext;
use schemars::JsonSchema;
use serde::Deserialize;

use super::{TaskTools, ToolFailure, parse_args, store_failure, structured};
use todo_core::tasks::UndoError;

/// The HTTP header naming the undo group of a request's changes: a backend sends one value
/// for every tool call of a chat turn, so the turn is undone as a whole. Groups are scoped by
/// the authenticated user, so a client can only ever group its own changes.
pub const CHANGE_GROUP_HEADER: &str = "todo-change-group";

/// A request's undo group, from [`CHANGE_GROUP_HEADER`], placed in the request's extensions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChangeGroup(pub String);

impl ChangeGroup {
    /// The header's value when it is plain (1–64 of `A-Za-z0-9-_`); anything else is ignored
    /// and the request is a group of its own.
    pub fn from_header(value: &str) -> Option<ChangeGroup> {
        ((1..=64).contains(&value.len())
            && value
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'))
        .then(|| ChangeGroup(value.to_string()))
    }
}

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

    /// These tools for one request: in the request's [`ChangeGroup`] when it names one.
    pub(super) fn for_request(&self, ctx: &RequestContext<RoleServer>) -> Cow<'_, TaskTools> {
        match ctx
            .extensions
            .get::<http::request::Parts>()
            .and_then(|p| p.extensions.get::<ChangeGroup>())
        {
            Some(g) => Cow::Owned(self.clone().in_group(&g.0)),
            None => Cow::Borrowed(self),
        }
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

#[cfg(test)]
mod tests {
    use super::ChangeGroup;

    #[test]
    fn only_plain_group_names_are_taken() {
        assert_eq!(
            ChangeGroup::from_header("0190a-b_C"),
            Some(ChangeGroup("0190a-b_C".into()))
        );
        for bad in ["", "a b", "a/b", "é", &"a".repeat(65)] {
            assert_eq!(ChangeGroup::from_header(bad), None, "{bad:?}");
        }
    }
}
