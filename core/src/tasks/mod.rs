//! Tasks: the domain model, its validation, and the stores.

mod journal;
mod model;
pub mod repeat;
mod store;
mod subtasks;
pub mod when;

pub use journal::{ChangeKind, UndoError, UndoReport, UndoneTask};
pub use model::*;
pub use repeat::Repeat;
pub use store::{SqlTaskStore, StoreError, TaskStore};
