//! Tasks: the domain model, its validation, and the stores.

mod journal;
mod model;
mod store;
pub mod when;

pub use journal::{ChangeKind, UndoError, UndoReport, UndoneTask};
pub use model::*;
pub use store::{SqlTaskStore, StoreError, TaskStore};
