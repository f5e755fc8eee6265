//! Conversation store contract, on both databases.

use chrono::{Duration, Utc};
use todo_core::conversations::{
    Idempotency, Lease, NewMessage, Role, StoreError, conversation_store,
};
use todo_test_support::{Kind, TestDb};
use uuid::Uuid;

fn msg(text: &str) -> NewMessage {
    NewMessage {
        role: Some(Role::User),
        content: text.into(),
        ..NewMessage::default()
    }
}

async fn leases_serialise_turns_and_a_lost_lease_appends_nothing(kind: Kind) {
    let Some(db) = TestDb::new(kind).await.unwrap() else {
        return;
    };
    let s = conversation_store(&db.db);
    let id = Uuid::now_v7();
    let soon = Utc::now() + Duration::seconds(60);
    s.create("alice", id, "t", "lease-a", soon).await.unwrap();
    assert_eq!(
        s.acquire("alice", id, "lease-b", soon).await.unwrap(),
        Lease::Busy
    );
    assert_eq!(
        s.acquire("bob", id, "lease-b", soon).await.unwrap(),
        Lease::NotFound
    );
    assert_eq!(
        s.append(id, "lease-a", soon, &[msg("one")], false)
            .await
            .unwrap()[0]
            .seq,
        1
    );
    // A wrong token appends nothing.
    assert!(matches!(
        s.append(id, "lease-b", soon, &[msg("x")], false).await,
        Err(StoreError::LeaseLost)
    ));
    s.release(id, "lease-a").await.unwrap();
    assert_eq!(
        s.acquire("alice", id, "lease-b", soon).await.unwrap(),
        Lease::Acquired
    );
    // Turn A is over: its late writes are refused, B's go on in order.
    assert!(matches!(
        s.append(id, "lease-a", soon, &[msg("late")], false).await,
        Err(StoreError::LeaseLost)
    ));
    let stored = s
        .append(id, "lease-b", soon, &[msg("two"), msg("three")], false)
        .await
        .unwrap();
    assert_eq!(stored.iter().map(|m| m.seq).collect::<Vec<_>>(), [2, 3]);
    // An expired lease (a crashed turn) is taken over.
    s.release(id, "lease-b").await.unwrap();
    let past = Utc::now() - Duration::seconds(1);
    assert_eq!(
        s.acquire("alice", id, "lease-c", past).await.unwrap(),
        Lease::Acquired
    );
    assert_eq!(
        s.acquire("alice", id, "lease-d", soon).await.unwrap(),
        Lease::Acquired
    );
    // A turn's last append releases the lease with it.
    let stored = s
        .append(id, "lease-d", soon, &[msg("four")], true)
        .await
        .unwrap();
    assert_eq!(stored[0].seq, 4);
    assert!(matches!(
        s.append(id, "lease-d", soon, &[msg("x")], false).await,
        Err(StoreError::LeaseLost)
    ));
    assert_eq!(
        s.acquire("alice", id, "lease-e", soon).await.unwrap(),
        Lease::Acquired
    );
    let all = s.messages("alice", id, 0, 100).await.unwrap();
    assert_eq!(
        all.iter().map(|m| m.content.as_str()).collect::<Vec<_>>(),
        ["one", "two", "three", "four"]
    );
    assert!(matches!(
        s.messages("bob", id, 0, 100).await,
        Err(StoreError::NotFound)
    ));
    assert_eq!(
        s.recent(id, 2)
            .await
            .unwrap()
            .iter()
            .map(|m| m.seq)
            .collect::<Vec<_>>(),
        [3, 4]
    );
    db.cleanup().await;
}

async fn idempotency_records_move_through_their_states(kind: Kind) {
    let Some(db) = TestDb::new(kind).await.unwrap() else {
        return;
    };
    let s = conversation_store(&db.db);
    let stale = Utc::now() - Duration::seconds(120);
    assert_eq!(
        s.idempotency_begin("alice", "k", "h1", stale)
            .await
            .unwrap(),
        Idempotency::New
    );
    assert_eq!(
        s.idempotency_begin("alice", "k", "h1", stale)
            .await
            .unwrap(),
        Idempotency::InProgress
    );
    assert_eq!(
        s.idempotency_begin("alice", "k", "h2", stale)
            .await
            .unwrap(),
        Idempotency::Mismatch
    );
    assert_eq!(
        s.idempotency_begin("bob", "k", "h2", stale).await.unwrap(),
        Idempotency::New
    );
    let conv = Uuid::now_v7();
    s.idempotency_conversation("alice", "k", conv)
        .await
        .unwrap();
    s.idempotency_finish("alice", "k", None).await.unwrap();
    assert_eq!(
        s.idempotency_begin("alice", "k", "h1", stale)
            .await
            .unwrap(),
        Idempotency::Resume {
            conversation_id: Some(conv)
        }
    );
    s.idempotency_finish("alice", "k", Some((200, "{\"ok\":true}")))
        .await
        .unwrap();
    assert_eq!(
        s.idempotency_begin("alice", "k", "h1", stale)
            .await
            .unwrap(),
        Idempotency::Replay {
            status: 200,
            body: "{\"ok\":true}".into()
        }
    );
    // A running record abandoned by a crashed turn is taken over once it is stale.
    assert_eq!(
        s.idempotency_begin("alice", "k2", "h", stale)
            .await
            .unwrap(),
        Idempotency::New
    );
    let future = Utc::now() + Duration::seconds(1);
    assert_eq!(
        s.idempotency_begin("alice", "k2", "h", future)
            .await
            .unwrap(),
        Idempotency::Resume {
            conversation_id: None
        }
    );
    db.cleanup().await;
}

todo_test_support::on_both_databases!(
    leases_serialise_turns_and_a_lost_lease_appends_nothing,
    idempotency_records_move_through_their_states
);
