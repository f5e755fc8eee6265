//! What the API's requests and answers carry: bodies, queries and lists, with the schemas
//! the OpenAPI document is generated from.

use serde::Deserialize;
use todo_core::tasks::StatusFilter;
use uuid::Uuid;

/// Body of `POST /api/{user_id}/chat`.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct ChatBody {
    /// What the person said (1 to MAX_MESSAGE_CHARS characters after trimming, 4000 by default).
    #[schemars(length(min = 1, max = 4000), pattern(r"\S"))]
    pub message: String,
    /// Continue this conversation (a UUID); omit to start a new one.
    #[serde(default)]
    #[schemars(with = "Option<Uuid>")]
    pub conversation_id: Option<String>,
    /// IANA time zone of the person, e.g. "Europe/Paris" (default UTC).
    #[serde(default)]
    #[schemars(schema_with = "timezone_schema")]
    pub timezone: Option<String>,
}

fn timezone_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    let names: Vec<&str> = chrono_tz::TZ_VARIANTS.iter().map(|tz| tz.name()).collect();
    schemars::json_schema!({ "type": ["string", "null"], "enum": names.into_iter().map(Some).chain([None]).collect::<Vec<_>>() })
}

/// A page of conversations.
#[derive(Debug, serde::Serialize, schemars::JsonSchema)]
pub struct ConversationList {
    pub conversations: Vec<todo_core::conversations::Conversation>,
}

/// Messages of one conversation, oldest first.
#[derive(Debug, serde::Serialize, schemars::JsonSchema)]
pub struct MessageList {
    pub conversation_id: Uuid,
    pub messages: Vec<todo_core::conversations::Message>,
}

/// Paging query.
#[derive(Debug, Deserialize)]
pub struct Page {
    pub limit: Option<u32>,
    pub offset: Option<u32>,
}

/// Query of the messages endpoint.
#[derive(Debug, Deserialize)]
pub struct MessagesQuery {
    /// Only messages after this sequence number.
    pub after: Option<i64>,
    pub limit: Option<u32>,
}

/// Query of the tasks endpoint.
#[derive(Debug, Deserialize)]
pub struct TasksQuery {
    pub status: Option<StatusFilter>,
    pub query: Option<String>,
    pub tag: Option<String>,
    pub limit: Option<u32>,
    pub offset: Option<u32>,
}

/// Query of the usage endpoint.
#[derive(Debug, Deserialize)]
pub struct UsageQuery {
    /// First UTC day, `YYYY-MM-DD` (default: 29 days before `to`).
    pub from: Option<String>,
    /// Last UTC day, inclusive (default: today).
    pub to: Option<String>,
    /// Only this conversation.
    pub conversation_id: Option<String>,
}
