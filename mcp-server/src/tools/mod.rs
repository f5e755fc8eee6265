//! The MCP tool server: the task tools, one implementation for every caller (stdio, HTTP,
//! and the chat backend in-process).

pub mod args;
mod undo;

pub use self::undo::{CHANGE_GROUP_HEADER, ChangeGroup};

use std::sync::Arc;

use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::handler::server::tool::{schema_for_input, schema_for_output};
use rmcp::model::{
    CallToolResult, ContentBlock, Implementation, JsonObject, ServerCapabilities, ServerConfig,
};
use rmcp::service::RequestContext;
use rmcp::{ErrorData as McpError, RoleServer, ServerHandler, tool, tool_handler, tool_router};
use serde::de::DeserializeOwned;

use self::args::{AddTaskArgs, ListTasksArgs, TaskIdArgs, UpdateTaskArgs};
use self::undo::UndoArgs;
use todo_core::tasks::repeat;
use todo_core::tasks::{
    Due, InvalidInput, ListFilter, ListInput, NewTask, StatusFilter, StoreError, Task, TaskPage,
    TaskPatch, TaskStore, UndoReport, validate_description, validate_id, validate_page,
    validate_tags, validate_title,
};

/// How many trashed tasks a failed restore names.
const TRASH_SHOWN: u32 = 5;

/// The authenticated caller of an HTTP request, placed in the request's extensions by the
/// transport's authentication layer. Tools read identity from here, never from arguments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller(pub String);

/// Where the tools learn who the caller is.
#[derive(Debug, Clone)]
pub enum Identity {
    /// One user for the whole connection (stdio, or the chat backend acting for a verified user).
    Fixed(String),
    /// The [`Caller`] of each HTTP request.
    PerRequest,
}

/// A tool failure the model should read and act on.
#[derive(Debug)]
pub enum ToolFailure {
    Invalid(String),
    NotFound(i64),
    Unavailable,
}

impl ToolFailure {
    /// The message a model sees.
    pub fn message(&self) -> String {
        match self {
            ToolFailure::Invalid(m) => m.clone(),
            ToolFailure::NotFound(id) => {
                format!("No task #{id} was found. Call list_tasks to see the current task numbers.")
            }
            ToolFailure::Unavailable => {
                "The task store is unavailable right now; nothing was changed. Try again shortly."
                    .into()
            }
        }
    }

    fn into_result(self) -> CallToolResult {
        CallToolResult::error(vec![ContentBlock::text(self.message())])
    }
}

impl From<InvalidInput> for ToolFailure {
    fn from(e: InvalidInput) -> Self {
        ToolFailure::Invalid(e.0)
    }
}

fn store_failure(id: i64) -> impl FnOnce(StoreError) -> ToolFailure {
    move |e| match e {
        StoreError::NotFound => ToolFailure::NotFound(id),
        StoreError::Refused(m) => ToolFailure::Invalid(m),
        StoreError::Database(err) => {
            tracing::error!(error = %todo_core::error::Chain(&err), "task store call failed");
            ToolFailure::Unavailable
        }
    }
}

/// The task tools over a store.
#[derive(Clone)]
pub struct TaskTools {
    store: Arc<dyn TaskStore>,
    identity: Identity,
    /// Where a due date-time written without a UTC offset is read.
    timezone: chrono_tz::Tz,
    tool_router: ToolRouter<Self>,
}

fn ok_task(verb: &str, task: &Task) -> CallToolResult {
    structured(format!("{verb} {}", task.one_line()), task)
}

fn structured<T: serde::Serialize>(text: String, value: &T) -> CallToolResult {
    match serde_json::to_value(value) {
        Ok(v) => {
            let mut r = CallToolResult::structured(v);
            r.content = vec![ContentBlock::text(text)];
            r
        }
        Err(e) => {
            tracing::error!(error = %e, "serialising a tool result failed");
            ToolFailure::Unavailable.into_result()
        }
    }
}

/// The answer to a completion: a repeating task that moved on says so.
fn completed(task: &Task) -> CallToolResult {
    if !task.completed && task.repeat.is_some() {
        ok_task(
            "Completed this occurrence (kept in the completed list). Next:",
            task,
        )
    } else {
        ok_task("Completed", task)
    }
}

/// Parses arguments into their typed struct; a mismatch is a message for the model.
fn parse_args<T: DeserializeOwned>(
    tool: &str,
    mut args: JsonObject,
    caller: &str,
) -> Result<T, ToolFailure> {
    // Identity is never an argument. A model that names a user may only name the caller.
    if let Some(v) = args.remove("user_id")
        && v.as_str() != Some(caller)
    {
        return Err(ToolFailure::Invalid(
            "`user_id` is not an argument: tools always act for the signed-in user. \
                 Call again without it."
                .into(),
        ));
    }
    args::normalize(&mut args);
    // The path names the field at fault, so the model knows what to fix.
    serde_path_to_error::deserialize(serde_json::Value::Object(args)).map_err(|e| {
        let at = e.path().to_string();
        let field = if at == "." { String::new() } else { format!("`{at}`: ") };
        ToolFailure::Invalid(format!(
            "Invalid arguments for {tool}: {field}{}. Check the tool's input schema and call again.",
            e.inner()
        ))
    })
}

/// A due value read in the caller's zone when it has no offset (see [`args::local_due`]).
fn parse_due(field: &str, raw: &str, tz: chrono_tz::Tz) -> Result<Due, InvalidInput> {
    let normalized = args::local_due(field, raw, tz, chrono::Utc::now()).map_err(InvalidInput)?;
    Due::parse(field, &normalized)
}

/// A due-window bound; a bare date stands for the start of that day (UTC).
fn parse_window_bound(
    field: &str,
    raw: Option<&str>,
    tz: chrono_tz::Tz,
) -> Result<Option<chrono::DateTime<chrono::Utc>>, InvalidInput> {
    raw.map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| parse_due(field, s, tz).map(|d| d.at))
        .transpose()
}

#[tool_router]
impl TaskTools {
    /// Tools acting for `identity` on `store`.
    pub fn new(store: Arc<dyn TaskStore>, identity: Identity) -> Self {
        TaskTools {
            store,
            identity,
            timezone: args::configured_timezone().unwrap_or(chrono_tz::Tz::UTC),
            tool_router: Self::tool_router(),
        }
    }

    /// Reads due date-times without an offset in `tz` (the person's zone, for the chat).
    pub fn with_timezone(mut self, tz: chrono_tz::Tz) -> Self {
        self.timezone = tz;
        self
    }

    fn caller(&self, ctx: &RequestContext<RoleServer>) -> Result<String, McpError> {
        match &self.identity {
            Identity::Fixed(u) => Ok(u.clone()),
            Identity::PerRequest => ctx
                .extensions
                .get::<http::request::Parts>()
                .and_then(|p| p.extensions.get::<Caller>())
                .map(|c| c.0.clone())
                .ok_or_else(|| McpError::invalid_request("unauthenticated request", None)),
        }
    }

    #[tool(
        name = "add_task",
        description = "Create a task for the user. Returns the new task with its number.",
        input_schema = schema_for_input::<AddTaskArgs>().expect("valid schema"),
        output_schema = schema_for_output::<Task>(),
        annotations(title = "Add task", read_only_hint = false, destructive_hint = false, idempotent_hint = false, open_world_hint = false)
    )]
    async fn add_task(
        &self,
        args: JsonObject,
        ctx: RequestContext<RoleServer>,
    ) -> Result<CallToolResult, McpError> {
        let user = self.caller(&ctx)?;
        Ok(self
            .for_request(&ctx)
            .add(&user, args)
            .await
            .unwrap_or_else(ToolFailure::into_result))
    }

    #[tool(
        name = "list_tasks",
        description = "List the user's tasks, open ones first by due date. Filters: status, text query, tag, due window; paged.",
        input_schema = schema_for_input::<ListTasksArgs>().expect("valid schema"),
        output_schema = schema_for_output::<TaskPage>(),
        annotations(title = "List tasks", read_only_hint = true, destructive_hint = false, idempotent_hint = true, open_world_hint = false)
    )]
    async fn list_tasks(
        &self,
        args: JsonObject,
        ctx: RequestContext<RoleServer>,
    ) -> Result<CallToolResult, McpError> {
        let user = self.caller(&ctx)?;
        Ok(self
            .list(&user, args)
            .await
            .unwrap_or_else(ToolFailure::into_result))
    }

    #[tool(
        name = "complete_task",
        description = "Mark a task as done; a repeating one moves to its next occurrence.",
        input_schema = schema_for_input::<TaskIdArgs>().expect("valid schema"),
        output_schema = schema_for_output::<Task>(),
        annotations(title = "Complete task", read_only_hint = false, destructive_hint = false, idempotent_hint = true, open_world_hint = false)
    )]
    async fn complete_task(
        &self,
        args: JsonObject,
        ctx: RequestContext<RoleServer>,
    ) -> Result<CallToolResult, McpError> {
        let user = self.caller(&ctx)?;
        Ok(self
            .for_request(&ctx)
            .complete(&user, args)
            .await
            .unwrap_or_else(ToolFailure::into_result))
    }

    #[tool(
        name = "delete_task",
        description = "Move a task to the trash. It disappears from lists and can be brought back with restore_task.",
        input_schema = schema_for_input::<TaskIdArgs>().expect("valid schema"),
        output_schema = schema_for_output::<Task>(),
        annotations(title = "Delete task", read_only_hint = false, destructive_hint = true, idempotent_hint = true, open_world_hint = false)
    )]
    async fn delete_task(
        &self,
        args: JsonObject,
        ctx: RequestContext<RoleServer>,
    ) -> Result<CallToolResult, McpError> {
        let user = self.caller(&ctx)?;
        Ok(self
            .for_request(&ctx)
            .delete(&user, args)
            .await
            .unwrap_or_else(ToolFailure::into_result))
    }

    #[tool(
        name = "update_task",
        description = "Change any field of a task: title, description, due, priority, tags, completed (false re-opens it), repeat, parent_id. Omitted fields stay as they are.",
        input_schema = schema_for_input::<UpdateTaskArgs>().expect("valid schema"),
        output_schema = schema_for_output::<Task>(),
        annotations(title = "Update task", read_only_hint = false, destructive_hint = true, idempotent_hint = true, open_world_hint = false)
    )]
    async fn update_task(
        &self,
        args: JsonObject,
        ctx: RequestContext<RoleServer>,
    ) -> Result<CallToolResult, McpError> {
        let user = self.caller(&ctx)?;
        Ok(self
            .for_request(&ctx)
            .update(&user, args)
            .await
            .unwrap_or_else(ToolFailure::into_result))
    }

    #[tool(
        name = "restore_task",
        description = "Bring a deleted task back from the trash (list_tasks with status \"deleted\" shows the trash).",
        input_schema = schema_for_input::<TaskIdArgs>().expect("valid schema"),
        output_schema = schema_for_output::<Task>(),
        annotations(title = "Restore task", read_only_hint = false, destructive_hint = false, idempotent_hint = true, open_world_hint = false)
    )]
    async fn restore_task(
        &self,
        args: JsonObject,
        ctx: RequestContext<RoleServer>,
    ) -> Result<CallToolResult, McpError> {
        let user = self.caller(&ctx)?;
        Ok(self
            .for_request(&ctx)
            .restore(&user, args)
            .await
            .unwrap_or_else(ToolFailure::into_result))
    }

    #[tool(
        name = "undo",
        description = "Undo the person's most recent change made with these tools that is not undone yet: everything that turn (or request) changed goes back exactly as it was; a task it added moves to the trash. Call again to go further back. Refuses, naming the task, if that task changed afterwards.",
        input_schema = schema_for_input::<UndoArgs>().expect("valid schema"),
        output_schema = schema_for_output::<UndoReport>(),
        annotations(title = "Undo last change", read_only_hint = false, destructive_hint = true, idempotent_hint = false, open_world_hint = false)
    )]
    async fn undo(
        &self,
        args: JsonObject,
        ctx: RequestContext<RoleServer>,
    ) -> Result<CallToolResult, McpError> {
        let user = self.caller(&ctx)?;
        Ok(self
            .undo_last(&user, args)
            .await
            .unwrap_or_else(ToolFailure::into_result))
    }
}

/// The tool bodies, free of protocol types so the rules read plainly.
impl TaskTools {
    async fn add(&self, user: &str, raw: JsonObject) -> Result<CallToolResult, ToolFailure> {
        let a: AddTaskArgs = parse_args("add_task", raw, user)?;
        let due = a
            .due
            .as_deref()
            .map(|d| parse_due("due", d, self.timezone))
            .transpose()?;
        let (due, repeat) = match a.repeat.as_deref().filter(|r| !repeat::is_stop_word(r)) {
            Some(r) => {
                let (rule, due) =
                    repeat::parse(r)?.resolve(due, self.timezone, chrono::Utc::now())?;
                (Some(due), Some(rule))
            }
            None => (due, None),
        };
        let task = NewTask {
            title: validate_title(&a.title)?,
            description: a
                .description
                .as_deref()
                .map(validate_description)
                .transpose()?
                .flatten(),
            due,
            priority: a.priority.unwrap_or_default(),
            tags: validate_tags(a.tags.as_deref().unwrap_or(&[]))?,
            parent: a.parent_id.map(validate_id).transpose()?,
            repeat,
        };
        let t = self.store.add(user, task).await.map_err(store_failure(0))?;
        Ok(ok_task("Added", &t))
    }

    async fn list(&self, user: &str, raw: JsonObject) -> Result<CallToolResult, ToolFailure> {
        let a: ListTasksArgs = parse_args("list_tasks", raw, user)?;
        let page = validate_page(a.limit, a.offset)?;
        let parent = a.parent_id.map(validate_id).transpose()?;
        let filter = ListInput {
            status: a.status,
            query: a.query.as_deref(),
            tag: a.tag.as_deref(),
            due_before: parse_window_bound("due_before", a.due_before.as_deref(), self.timezone)?,
            due_after: parse_window_bound("due_after", a.due_after.as_deref(), self.timezone)?,
            parent,
            hide_subtasks: a.subtasks == Some(false),
        }
        .validate(page)?;
        let page = self
            .store
            .list(user, &filter)
            .await
            .map_err(store_failure(0))?;
        let mut text = if page.tasks.is_empty() {
            "No tasks match.".to_string()
        } else {
            page.tasks
                .iter()
                .map(Task::one_line)
                .collect::<Vec<_>>()
                .join("\n")
        };
        if let Some(id) = parent {
            // The parent first, its subtasks under it.
            let p = self.store.get(user, id).await.map_err(store_failure(id))?;
            let subs = if page.tasks.is_empty() {
                "  (no subtasks match)".to_string()
            } else {
                format!("  {}", text.replace('\n', "\n  "))
            };
            text = format!("{}\nSubtasks:\n{subs}", p.one_line());
        }
        if let Some(next) = page.next_offset {
            text.push_str(&format!("\n(more: call again with offset {next})"));
        }
        Ok(structured(text, &page))
    }

    async fn complete(&self, user: &str, raw: JsonObject) -> Result<CallToolResult, ToolFailure> {
        let a: TaskIdArgs = parse_args("complete_task", raw, user)?;
        let id = validate_id(a.id)?;
        let patch = TaskPatch {
            completed: Some(true),
            ..TaskPatch::default()
        };
        let t = self
            .store
            .update(user, id, &patch)
            .await
            .map_err(store_failure(id))?;
        Ok(completed(&t))
    }

    async fn delete(&self, user: &str, raw: JsonObject) -> Result<CallToolResult, ToolFailure> {
        let a: TaskIdArgs = parse_args("delete_task", raw, user)?;
        let id = validate_id(a.id)?;
        let t = self
            .store
            .delete(user, id)
            .await
            .map_err(store_failure(id))?;
        Ok(ok_task(
            "Moved to the trash (restore_task brings it back):",
            &t,
        ))
    }

    async fn update(&self, user: &str, raw: JsonObject) -> Result<CallToolResult, ToolFailure> {
        let a: UpdateTaskArgs = parse_args("update_task", raw, user)?;
        let id = validate_id(a.id)?;
        let patch = TaskPatch {
            title: a.title.as_deref().map(validate_title).transpose()?,
            description: match a.description {
                None => None,
                Some(None) => Some(None),
                Some(Some(d)) => Some(validate_description(&d)?),
            },
            due: match a.due {
                None => None,
                Some(None) => Some(None),
                Some(Some(d)) if d.trim().is_empty() => Some(None),
                Some(Some(d)) => Some(Some(parse_due("due", &d, self.timezone)?)),
            },
            priority: a.priority,
            tags: a.tags.as_deref().map(validate_tags).transpose()?,
            completed: a.completed,
            parent: a
                .parent_id
                .map(|p| p.map(validate_id).transpose())
                .transpose()?,
            repeat: None,
        };
        let patch = self.with_repeat(user, id, patch, a.repeat).await?;
        if patch.is_empty() {
            return Err(ToolFailure::Invalid(
                "Nothing to change: give at least one of title, description, due, priority, tags, completed, repeat or parent_id.".into(),
            ));
        }
        let t = self
            .store
            .update(user, id, &patch)
            .await
            .map_err(store_failure(id))?;
        if patch.completed == Some(true) {
            return Ok(completed(&t));
        }
        Ok(ok_task("Updated", &t))
    }

    /// Adds a new rule (or "stop") to a patch. A rule is anchored on the due date the change
    /// leaves (read from the task when the patch has none), or on its first occurrence.
    async fn with_repeat(
        &self,
        user: &str,
        id: i64,
        mut patch: TaskPatch,
        raw: Option<Option<String>>,
    ) -> Result<TaskPatch, ToolFailure> {
        let rule = match raw {
            None => return Ok(patch),
            Some(None) => None,
            Some(Some(r)) if repeat::is_stop_word(&r) => None,
            Some(Some(r)) => Some(repeat::parse(&r)?),
        };
        let Some(spec) = rule else {
            patch.repeat = Some(None);
            return Ok(patch);
        };
        let due = match patch.due {
            Some(d) => d,
            None => {
                let t = self.store.get(user, id).await.map_err(store_failure(id))?;
                t.due.as_deref().map(|d| Due::parse("due", d)).transpose()?
            }
        };
        let (rule, due) = spec.resolve(due, self.timezone, chrono::Utc::now())?;
        patch.due = Some(Some(due));
        patch.repeat = Some(Some(rule));
        Ok(patch)
    }

    async fn restore(&self, user: &str, raw: JsonObject) -> Result<CallToolResult, ToolFailure> {
        let a: TaskIdArgs = parse_args("restore_task", raw, user)?;
        let id = validate_id(a.id)?;
        match self.store.restore(user, id).await {
            Ok(t) => Ok(ok_task("Restored", &t)),
            Err(StoreError::NotFound) => {
                Err(ToolFailure::Invalid(self.not_in_trash(user, id).await))
            }
            Err(other) => Err(store_failure(id)(other)),
        }
    }

    /// Why #`id` cannot be restored, with what the trash does hold: a model that guessed the
    /// number (the trash is not in its view of open tasks) can pick the right one next.
    async fn not_in_trash(&self, user: &str, id: i64) -> String {
        let head =
            format!("No deleted task #{id} was found; only tasks in the trash can be restored.");
        let filter = ListFilter {
            status: StatusFilter::Deleted,
            limit: TRASH_SHOWN,
            ..ListFilter::default()
        };
        match self.store.list(user, &filter).await {
            Ok(page) if page.tasks.is_empty() => format!("{head} The trash is empty."),
            Ok(page) => {
                let mut s = format!("{head} In the trash:");
                for t in &page.tasks {
                    s.push('\n');
                    s.push_str(&t.one_line());
                }
                if page.next_offset.is_some() {
                    s.push_str("\n(more: list_tasks with status \"deleted\")");
                }
                s
            }
            // The refusal stands on its own; the listing is a courtesy.
            Err(_) => head,
        }
    }
}

#[tool_handler(router = self.tool_router)]
impl ServerHandler for TaskTools {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
            .with_server_info(Implementation::new("todo-mcp", env!("CARGO_PKG_VERSION")))
            .with_instructions(
                "Task tools for one signed-in user. Tasks have short numbers (#3). \
                 Deleting moves a task to the trash; restore_task brings it back.",
            )
    }
}
