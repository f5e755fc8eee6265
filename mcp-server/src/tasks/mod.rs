//! Tasks: the domain model, its validation, and the stores.

mod model;
mod store;
pub mod when;

pub use model::*;
pub use store::{PgTaskStore, SqliteTaskStore, StoreError, TaskStore};
