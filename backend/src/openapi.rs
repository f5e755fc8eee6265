//! The OpenAPI 3.1 description of the HTTP API, served at `/openapi.json`. Schemas are
//! generated from the Rust types the handlers use (JSON Schema 2020-12, which OpenAPI 3.1
//! speaks natively); the operations are declared here, next to each other, and a test
//! checks them against the router and against the committed `docs/openapi.json`.

use schemars::generate::SchemaSettings;
use schemars::{JsonSchema, SchemaGenerator};
use serde_json::{Map, Value, json};

use crate::agent::TurnAnswer;
use crate::api::{ChatBody, ConversationList, MessageList};
use crate::error::ErrorBody;

/// Every routed (method, path) pair, as the router declares them.
pub const ROUTES: &[(&str, &str)] = &[
    ("post", "/api/{user_id}/chat"),
    ("get", "/api/{user_id}/conversations"),
    ("get", "/api/{user_id}/conversations/{id}/messages"),
    ("get", "/api/{user_id}/tasks"),
    ("get", "/api/{user_id}/usage"),
    ("get", "/healthz"),
    ("get", "/readyz"),
    ("get", "/metrics"),
    ("get", "/openapi.json"),
    ("get", "/"),
    ("get", "/assets/{file}"),
];

/// Responses are described as serialised (fields skipped when empty are optional); request
/// inputs as deserialised (fields with defaults are optional).
struct Doc {
    output: SchemaGenerator,
    input: SchemaGenerator,
}

impl Doc {
    fn input<T: JsonSchema>(&mut self) -> Value {
        self.input.subschema_for::<T>().to_value()
    }

    fn json_input<T: JsonSchema>(&mut self) -> Value {
        json!({ "application/json": { "schema": self.input::<T>() } })
    }

    fn json_content<T: JsonSchema>(&mut self) -> Value {
        json!({ "application/json": { "schema": self.output.subschema_for::<T>().to_value() } })
    }

    fn errors(&mut self, statuses: &[u16]) -> Map<String, Value> {
        let mut m = Map::new();
        for s in statuses {
            let description = match s {
                400 => "Malformed request (body, path or query)",
                401 => "Missing or invalid bearer token",
                403 => "The token's subject is not this user",
                404 => "Not found (including another user's conversation)",
                409 => {
                    "Busy: a turn of this conversation, or a request with this Idempotency-Key, is running"
                }
                413 => "Request body too large",
                415 => "Body is not application/json",
                422 => "Well-formed but invalid input",
                429 => "Rate limited",
                500 => "Internal error (no details are disclosed)",
                502 => "The language model failed or refused",
                503 => {
                    "Unavailable: no model configured, model rate limited, database unreachable or service saturated"
                }
                504 => "The language model did not answer in time",
                _ => "Error",
            };
            let mut r =
                json!({ "description": description, "content": self.json_content::<ErrorBody>() });
            if matches!(s, 409 | 429 | 503) {
                r["headers"] = json!({ "Retry-After": { "description": "Seconds to wait before retrying", "schema": { "type": "integer", "minimum": 0 } } });
            }
            m.insert(s.to_string(), r);
        }
        m
    }
}

fn user_param() -> Value {
    json!({ "name": "user_id", "in": "path", "required": true,
            "description": "The signed-in user (must equal the token's subject)",
            "schema": { "type": "string", "minLength": 1, "maxLength": 128,
                        "pattern": r"^[^\u0000-\u001f\u007f-\u009f]+$" } })
}

fn query_param(name: &str, description: &str, schema: Value) -> Value {
    json!({ "name": name, "in": "query", "required": false, "description": description, "schema": schema })
}

fn page_params(max: u32) -> Vec<Value> {
    vec![
        query_param(
            "limit",
            "Page size",
            json!({ "type": "integer", "minimum": 1, "maximum": max }),
        ),
        query_param(
            "offset",
            "Items to skip",
            json!({ "type": "integer", "minimum": 0, "maximum": 1_000_000 }),
        ),
    ]
}

fn text_ok(description: &str) -> Value {
    json!({ "200": { "description": description, "content": { "text/plain": { "schema": { "type": "string" } } } } })
}

/// The OpenAPI document.
pub fn document() -> Value {
    let settings = SchemaSettings::draft2020_12().with(|s| {
        s.definitions_path = "/components/schemas".into();
    });
    let mut d = Doc {
        output: settings.clone().for_serialize().into_generator(),
        input: settings.for_deserialize().into_generator(),
    };
    let api_errors = [400, 401, 403, 422, 500, 503];
    let security = json!([{ "bearerAuth": [] }]);

    let mut chat_responses = d.errors(&[
        400, 401, 403, 404, 409, 413, 415, 422, 429, 500, 502, 503, 504,
    ]);
    chat_responses.insert(
        "200".into(),
        json!({ "description": "The turn's answer", "content": d.json_content::<TurnAnswer>(),
                "headers": { "Idempotent-Replayed": { "description": "Present (true) when this is a stored answer replayed for a repeated Idempotency-Key", "schema": { "type": "string", "enum": ["true"] } } } }),
    );
    let answer = d.output.subschema_for::<TurnAnswer>().to_value();
    let error = d.output.subschema_for::<ErrorBody>().to_value();
    if let Some(ok) = chat_responses.get_mut("200") {
        ok["description"] = crate::sse::OPENAPI_DESCRIPTION.into();
        ok["content"]["text/event-stream"] = crate::sse::openapi_content(answer, error);
    }
    let chat = json!({
        "operationId": "chat",
        "summary": "One chat turn: the model reads the message, calls task tools, and answers",
        "description": "A message starting with `/` is a command run directly against the task tools, without the model: /add <title> [due words] [!high|!low] [#tag…], /list [today|overdue|done|trash|all|#tag|words], /done <n>, /undone <n>, /edit <n> <field> <value>, /delete <n>, /restore <n>, /undo, /help. It answers in the same shape and is stored like any exchange; a malformed command answers its usage line. Due words are read in `timezone`. With no model configured, commands still work and any other message is answered with the commands and the settings that enable free-form chat.",
        "security": security,
        "parameters": [user_param(), {
            "name": "Idempotency-Key", "in": "header", "required": false,
            "description": "A retried request with the same key returns the stored answer without running the model or any tool again",
            "schema": { "type": "string", "minLength": 1, "maxLength": 255 }
        }],
        "requestBody": { "required": true, "content": d.json_input::<ChatBody>() },
        "responses": chat_responses,
    });

    let mut conv_responses = d.errors(&api_errors);
    conv_responses.insert("200".into(), json!({ "description": "Conversations, most recent first", "content": d.json_content::<ConversationList>() }));
    let conv_params: Vec<Value> = std::iter::once(user_param())
        .chain(page_params(100))
        .collect();
    let conversations = json!({
        "operationId": "listConversations", "security": security,
        "parameters": conv_params,
        "responses": conv_responses,
    });

    let mut msg_responses = d.errors(&[400, 401, 403, 404, 422, 500, 503]);
    msg_responses.insert("200".into(), json!({ "description": "Messages, oldest first", "content": d.json_content::<MessageList>() }));
    let messages = json!({
        "operationId": "listMessages", "security": security,
        "parameters": [
            user_param(),
            { "name": "id", "in": "path", "required": true, "schema": { "type": "string", "format": "uuid" } },
            query_param("after", "Only messages after this sequence number", json!({ "type": "integer", "format": "int64" })),
            query_param("limit", "Page size", json!({ "type": "integer", "minimum": 1, "maximum": 500 })),
        ],
        "responses": msg_responses,
    });

    let mut task_responses = d.errors(&api_errors);
    task_responses.insert("200".into(), json!({ "description": "A page of tasks", "content": d.json_content::<todo_core::tasks::TaskPage>() }));
    let mut task_params = vec![
        user_param(),
        query_param(
            "status",
            "Which tasks",
            d.input::<todo_core::tasks::StatusFilter>(),
        ),
        query_param(
            "query",
            "Text in title or description",
            json!({ "type": "string", "maxLength": 200 }),
        ),
        query_param(
            "tag",
            "Only tasks with this tag (an optional leading #; empty: no tag filter)",
            json!({ "type": "string", "maxLength": 33, "pattern": "^#?[A-Za-z0-9_-]{0,32}$" }),
        ),
    ];
    task_params.extend(page_params(100));
    let tasks = json!({
        "operationId": "listTasks", "security": security,
        "parameters": task_params,
        "responses": task_responses,
    });

    let mut usage_responses = d.errors(&[400, 401, 403, 404, 422, 500, 503]);
    usage_responses.insert("200".into(), json!({ "description": "Token usage and cost per day (UTC) and model, and per conversation", "content": d.json_content::<crate::usage::UsageReport>() }));
    let date = json!({ "type": "string", "format": "date" });
    let usage = json!({
        "operationId": "getUsage", "security": security,
        "summary": "The person's model tokens and their cost (with LLM_PRICES) over a range of UTC days (a range ending before it starts is empty)",
        "parameters": [
            user_param(),
            query_param("from", "First UTC day (default: 29 days before `to`)", date.clone()),
            query_param("to", "Last UTC day, inclusive (default: today)", date),
            query_param("conversation_id", "Only this conversation", json!({ "type": "string", "format": "uuid" })),
        ],
        "responses": usage_responses,
    });

    let mut ready = text_ok("The database answers");
    if let Some(m) = ready.as_object_mut() {
        m.extend(d.errors(&[503]))
    }

    let mut schemas = d.output.take_definitions(true);
    for (name, schema) in d.input.take_definitions(true) {
        // A type used both ways must be described the same both ways.
        if let Some(existing) = schemas.get(&name) {
            assert_eq!(existing, &schema, "{name} differs between input and output");
        }
        schemas.insert(name, schema);
    }
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "todo-agent",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Chat-driven todo agent. Errors are {\"error\": {\"code\", \"message\"}}."
        },
        "paths": {
            "/api/{user_id}/chat": { "post": chat },
            "/api/{user_id}/conversations": { "get": conversations },
            "/api/{user_id}/conversations/{id}/messages": { "get": messages },
            "/api/{user_id}/tasks": { "get": tasks },
            "/api/{user_id}/usage": { "get": usage },
            "/healthz": { "get": { "operationId": "healthz", "responses": text_ok("The process is alive") } },
            "/readyz": { "get": { "operationId": "readyz", "responses": ready } },
            "/metrics": { "get": { "operationId": "metrics", "responses": { "200": { "description": "Prometheus / OpenMetrics text", "content": { "application/openmetrics-text": { "schema": { "type": "string" } } } } } } },
            "/": { "get": { "operationId": "chatPage", "summary": "The chat page", "responses": { "200": { "description": "The chat page (HTML; its script and style sheet are under /assets/)", "content": { "text/html": { "schema": { "type": "string" } } } } } } },
            "/assets/{file}": { "get": { "operationId": "pageAsset", "summary": "The chat page's script and style sheet",
                "parameters": [{ "name": "file", "in": "path", "required": true, "schema": { "type": "string", "enum": ["app.js", "app.css"] } }],
                "responses": {
                    "200": { "description": "The file", "content": { "text/javascript": { "schema": { "type": "string" } }, "text/css": { "schema": { "type": "string" } } } },
                    "404": { "description": "No such file", "content": d.json_content::<ErrorBody>() } } } },
            "/openapi.json": { "get": { "operationId": "openapi", "responses": { "200": { "description": "This document", "content": { "application/json": { "schema": { "type": "object" } } } } } } },
        },
        "components": {
            "schemas": schemas,
            "securitySchemes": { "bearerAuth": { "type": "http", "scheme": "bearer", "bearerFormat": "JWT" } }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_route_is_documented_and_every_documented_route_is_routed() {
        let doc = document();
        let paths = doc["paths"].as_object().unwrap();
        for (method, path) in ROUTES {
            assert!(
                paths.get(*path).and_then(|p| p.get(*method)).is_some(),
                "{method} {path} undocumented"
            );
        }
        let documented: usize = paths.values().map(|p| p.as_object().unwrap().len()).sum();
        assert_eq!(documented, ROUTES.len());
    }

    #[test]
    fn every_reference_resolves() {
        let doc = document();
        let text = doc.to_string();
        let schemas = doc["components"]["schemas"].as_object().unwrap();
        for (i, _) in text.match_indices("#/components/schemas/") {
            let rest = &text[i + "#/components/schemas/".len()..];
            let name: String = rest.chars().take_while(|c| *c != '"').collect();
            assert!(schemas.contains_key(&name), "dangling $ref {name}");
        }
        for name in [
            "TurnAnswer",
            "ChatBody",
            "ErrorBody",
            "TaskPage",
            "Task",
            "MessageList",
        ] {
            assert!(
                schemas.contains_key(name),
                "{name} missing: {:?}",
                schemas.keys()
            );
        }
    }

    /// The committed copy is what integrators read; it must not drift from the code.
    /// Regenerate with `UPDATE_OPENAPI=1 cargo test -p todo-backend openapi`.
    #[test]
    fn the_committed_document_matches_the_code() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/openapi.json");
        let fresh = serde_json::to_string_pretty(&document()).unwrap() + "\n";
        if std::env::var("UPDATE_OPENAPI").is_ok() {
            std::fs::write(path, &fresh).unwrap();
        }
        let committed = std::fs::read_to_string(path).unwrap_or_default();
        assert!(
            committed == fresh,
            "docs/openapi.json is stale: run UPDATE_OPENAPI=1 cargo test -p todo-backend openapi"
        );
    }
}
