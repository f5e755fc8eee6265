//! What a turn reports while it runs: started, text as the model writes it, each tool call
//! started and finished. A streamed turn (server-sent events) forwards them to the client;
//! a JSON turn has no sink and answers with the collected form, [`super::TurnAnswer`].
//!
//! The sink is task-local rather than an argument threaded through the loop: the loop emits
//! at the points where it already does the work, and a turn run without a sink (JSON, or a
//! test) emits into nothing. Sending never blocks and never fails the turn: a client that
//! went away only stops receiving.

use std::future::Future;

use serde::Serialize;
use serde_json::Value;
use tokio::sync::mpsc;
use tokio::task::futures::TaskLocalFuture;
use uuid::Uuid;

/// One event of a running turn. Serialised as the `data` of a server-sent event whose
/// name is [`TurnEvent::name`].
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum TurnEvent {
    /// The person's message is stored under this conversation (event `started`).
    Started { conversation_id: Uuid },
    /// A piece of the model's text, in order (event `delta`).
    Delta { text: String },
    /// A tool call is about to run (event `tool_call_started`).
    ToolCallStarted {
        id: String,
        name: String,
        /// The arguments as an object, or the model's raw text when it was not JSON.
        arguments: Value,
    },
    /// A tool call ran (event `tool_call_finished`).
    ToolCallFinished {
        id: String,
        name: String,
        result: Value,
        is_error: bool,
    },
}

impl TurnEvent {
    /// The server-sent event name.
    pub fn name(&self) -> &'static str {
        match self {
            TurnEvent::Started { .. } => "started",
            TurnEvent::Delta { .. } => "delta",
            TurnEvent::ToolCallStarted { .. } => "tool_call_started",
            TurnEvent::ToolCallFinished { .. } => "tool_call_finished",
        }
    }
}

/// Where a turn's events go.
pub type EventSender = mpsc::UnboundedSender<TurnEvent>;

tokio::task_local! {
    static SINK: Option<EventSender>;
}

/// Runs `turn` with its events sent to `sink` (none: a JSON turn).
pub fn scoped<F: Future>(
    sink: Option<EventSender>,
    turn: F,
) -> TaskLocalFuture<Option<EventSender>, F> {
    SINK.scope(sink, turn)
}

/// `future.with_events(sink)`: [`scoped`] as a method, for a spawn site.
pub trait WithEvents: Future + Sized {
    fn with_events(self, sink: Option<EventSender>) -> TaskLocalFuture<Option<EventSender>, Self> {
        scoped(sink, self)
    }
}

impl<F: Future> WithEvents for F {}

/// Sends an event to the current turn's sink, if it has one.
pub fn emit(event: TurnEvent) {
    let _ = SINK.try_with(|s| {
        if let Some(s) = s {
            // A closed receiver means the client left; the turn goes on regardless.
            let _ = s.send(event);
        }
    });
}

/// Whether the current turn has a sink (then the model is asked to stream).
pub fn streaming() -> bool {
    SINK.try_with(Option::is_some).unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn events_reach_the_sink_of_their_own_turn_only() {
        let (tx, mut rx) = mpsc::unbounded_channel();
        scoped(Some(tx), async {
            assert!(streaming());
            emit(TurnEvent::Delta { text: "hi".into() });
        })
        .await;
        // Outside the scope nothing is sent and nothing fails.
        assert!(!streaming());
        emit(TurnEvent::Delta {
            text: "lost".into(),
        });
        assert_eq!(
            rx.recv().await,
            Some(TurnEvent::Delta { text: "hi".into() })
        );
        assert_eq!(rx.recv().await, None);
    }

    #[tokio::test]
    async fn a_closed_receiver_does_not_disturb_the_turn() {
        let (tx, rx) = mpsc::unbounded_channel();
        drop(rx);
        let out = scoped(Some(tx), async {
            emit(TurnEvent::Started {
                conversation_id: Uuid::nil(),
            });
            7
        })
        .await;
        assert_eq!(out, 7);
    }

    #[test]
    fn event_names_and_data_are_the_documented_ones() {
        let e = TurnEvent::ToolCallFinished {
            id: "c1".into(),
            name: "add_task".into(),
            result: serde_json::json!({"id": 1}),
            is_error: false,
        };
        assert_eq!(e.name(), "tool_call_finished");
        assert_eq!(
            serde_json::to_value(&e).unwrap(),
            serde_json::json!({"id": "c1", "name": "add_task", "result": {"id": 1}, "is_error": false})
        );
    }
}
