//! The HTTP API, by area: [`chat`] (the turn), [`read`] (conversations, messages, tasks,
//! usage), [`ops`] (health, readiness, metrics, the API description, the page), with the
//! bodies and queries in [`types`]. Each area lists its operations in one table — method,
//! path, handler and OpenAPI description together — from which both the router and the
//! OpenAPI document are built, so neither can name an operation the other lacks.

use std::sync::Arc;

use axum::Router;
use axum::http::Method;
use axum::routing::{MethodFilter, MethodRouter};
use serde_json::{Map, Value, json};
use todo_core::db::Database;
use uuid::Uuid;

use crate::agent::Agent;
use crate::error::ApiError;
use crate::openapi::Doc;
use todo_core::conversations::ConversationStore;

pub mod chat;
pub mod ops;
pub mod read;
pub mod types;

/// Shared state of the handlers.
#[derive(Clone)]
pub struct AppState {
    pub db: Database,
    pub agent: Arc<Agent>,
    pub conversations: Arc<dyn ConversationStore>,
    pub max_message_chars: usize,
    pub metrics: Arc<crate::metrics::Metrics>,
    /// Authentication, rate and concurrency limits.
    pub access: Arc<crate::access::Access>,
    /// Readiness and draining (`crate::lifecycle`).
    pub lifecycle: Arc<crate::lifecycle::Lifecycle>,
    /// `IDEMPOTENCY_TTL_HOURS`: an older idempotency record is never replayed.
    pub idempotency_ttl: std::time::Duration,
}

/// Where an operation lives, which decides the layers around it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Area {
    /// Under `/api/{user_id}`: a token naming the path's user, refused while draining.
    Api,
    /// Probes, metrics, the API description and the page: no token.
    Public,
}

/// One operation: what routes it and what documents it.
pub struct Operation {
    pub method: Method,
    /// The route template, as axum and OpenAPI both write it (`/api/{user_id}/chat`).
    pub path: &'static str,
    pub area: Area,
    /// The handler, routed for the given method.
    pub route: fn(MethodFilter) -> MethodRouter<AppState>,
    /// The OpenAPI operation object.
    pub doc: fn(&mut Doc) -> Value,
}

/// Every operation of the API.
pub fn operations() -> impl Iterator<Item = &'static Operation> {
    chat::OPERATIONS
        .iter()
        .chain(read::OPERATIONS)
        .chain(ops::OPERATIONS)
}

/// The routes of every operation, `/api` ones behind the owner check and the drain gate.
pub fn routes(state: &AppState) -> Router<AppState> {
    let mut api = Router::new();
    let mut public = Router::new();
    for op in operations() {
        let filter = MethodFilter::try_from(op.method.clone())
            .expect("operations use standard HTTP methods");
        match op.area {
            Area::Api => api = api.route(op.path, (op.route)(filter)),
            Area::Public => public = public.route(op.path, (op.route)(filter)),
        }
    }
    let api = api
        // Refused fast (503, Retry-After) while draining or while the database is away.
        .route_layer(axum::middleware::from_fn_with_state(
            state.lifecycle.clone(),
            crate::lifecycle::gate,
        ))
        .route_layer(axum::middleware::from_fn_with_state(
            state.access.clone(),
            crate::access::require_owner,
        ));
    api.merge(public)
}

/// The OpenAPI document, from the same operations as the router.
pub fn document() -> Value {
    let mut d = Doc::default();
    let mut paths = Map::new();
    for op in operations() {
        let entry = paths.entry(op.path).or_insert_with(|| json!({}));
        entry[op.method.as_str().to_ascii_lowercase()] = (op.doc)(&mut d);
    }
    d.finish(paths)
}

/// Checks a user id from the path.
pub fn valid_user(raw: &str) -> Result<String, ApiError> {
    // Counted in characters, as the OpenAPI schema's maxLength is.
    if raw.is_empty() || raw.chars().count() > 128 || raw.chars().any(char::is_control) {
        return Err(ApiError::bad_request(
            "invalid_user_id",
            "user_id must be 1 to 128 printable characters",
        ));
    }
    Ok(raw.to_string())
}

fn parse_id(raw: &str) -> Result<Uuid, ApiError> {
    Uuid::parse_str(raw.trim()).map_err(|_| {
        ApiError::bad_request("invalid_conversation_id", "conversation_id must be a UUID")
    })
}

#[cfg(test)]
mod openapi_tests {
    use super::*;

    #[test]
    fn every_operation_is_documented_once() {
        let doc = document();
        let paths = doc["paths"].as_object().unwrap();
        let documented: usize = paths.values().map(|p| p.as_object().unwrap().len()).sum();
        assert_eq!(
            documented,
            operations().count(),
            "an operation is listed twice"
        );
        for op in operations() {
            let method = op.method.as_str().to_ascii_lowercase();
            assert!(
                paths[op.path][&method]["operationId"].is_string(),
                "{method} {} has no operationId",
                op.path
            );
        }
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
    fn the_committed_openapi_document_matches_the_code() {
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
