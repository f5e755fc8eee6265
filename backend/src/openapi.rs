//! Building blocks of the OpenAPI 3.1 description served at `/openapi.json`. Schemas are
//! generated from the Rust types the handlers use (JSON Schema 2020-12, which OpenAPI 3.1
//! speaks natively). This module knows nothing of the API itself: each operation of
//! `crate::api` describes itself with these helpers, next to the handler it routes to, and
//! `crate::api::document` assembles the document from the same table that builds the router.

use schemars::generate::SchemaSettings;
use schemars::{JsonSchema, SchemaGenerator};
use serde_json::{Map, Value, json};

use crate::error::ErrorBody;

/// Error statuses of the read endpoints under `/api`.
pub const API_ERRORS: &[u16] = &[400, 401, 403, 422, 500, 503];

/// Schema generators for one document. Responses are described as serialised (fields
/// skipped when empty are optional); request inputs as deserialised (fields with defaults
/// are optional).
pub struct Doc {
    pub output: SchemaGenerator,
    pub input: SchemaGenerator,
}

impl Default for Doc {
    fn default() -> Self {
        let settings = SchemaSettings::draft2020_12().with(|s| {
            s.definitions_path = "/components/schemas".into();
        });
        Doc {
            output: settings.clone().for_serialize().into_generator(),
            input: settings.for_deserialize().into_generator(),
        }
    }
}

impl Doc {
    /// The schema of a request input.
    pub fn input<T: JsonSchema>(&mut self) -> Value {
        self.input.subschema_for::<T>().to_value()
    }

    /// The schema of a response body.
    pub fn output<T: JsonSchema>(&mut self) -> Value {
        self.output.subschema_for::<T>().to_value()
    }

    pub fn json_input<T: JsonSchema>(&mut self) -> Value {
        json!({ "application/json": { "schema": self.input::<T>() } })
    }

    pub fn json_content<T: JsonSchema>(&mut self) -> Value {
        json!({ "application/json": { "schema": self.output::<T>() } })
    }

    /// Error responses by status, each with the error body.
    pub fn errors(&mut self, statuses: &[u16]) -> Map<String, Value> {
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

    /// `errors(statuses)` plus a 200 answer.
    pub fn responses(&mut self, statuses: &[u16], ok: Value) -> Map<String, Value> {
        let mut m = self.errors(statuses);
        m.insert("200".into(), ok);
        m
    }

    /// The document around `paths` (`path → method → operation`).
    pub fn finish(mut self, paths: Map<String, Value>) -> Value {
        let mut schemas = self.output.take_definitions(true);
        for (name, schema) in self.input.take_definitions(true) {
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
            "paths": paths,
            "components": {
                "schemas": schemas,
                "securitySchemes": { "bearerAuth": { "type": "http", "scheme": "bearer", "bearerFormat": "JWT" } }
            }
        })
    }
}

/// The security requirement of the `/api` operations.
pub fn bearer() -> Value {
    json!([{ "bearerAuth": [] }])
}

/// The `{user_id}` path parameter.
pub fn user_param() -> Value {
    json!({ "name": "user_id", "in": "path", "required": true,
            "description": "The signed-in user (must equal the token's subject)",
            "schema": { "type": "string", "minLength": 1, "maxLength": 128,
                        "pattern": r"^[^\u0000-\u001f\u007f-\u009f]+$" } })
}

pub fn query_param(name: &str, description: &str, schema: Value) -> Value {
    json!({ "name": name, "in": "query", "required": false, "description": description, "schema": schema })
}

/// `limit` (1 to `max`) and `offset`.
pub fn page_params(max: u32) -> Vec<Value> {
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

/// A 200 answer in plain text.
pub fn text_ok(description: &str) -> Value {
    json!({ "200": { "description": description, "content": { "text/plain": { "schema": { "type": "string" } } } } })
}
