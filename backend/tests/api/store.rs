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
    let ttl = Utc::now() - Duration::hours(24);
    assert_eq!(
        s.idempotency_begin("alice", "k", "h1", stale, ttl)
            .await
            .unwrap(),
        Idempotency::New
    );
    assert_eq!(
        s.idempotency_begin("alice", "k", "h1", stale, ttl)
            .await
            .unwrap(),
        Idempotency::InProgress
    );
    assert_eq!(
        s.idempotency_begin("alice", "k", "h2", stale, ttl)
            .await
            .unwrap(),
        Idempotency::Mismatch
    );
    assert_eq!(
        s.idempotency_begin("bob", "k", "h2", stale, ttl)
            .await
            .unwrap(),
        Idempotency::New
    );
    let conv = Uuid::now_v7();
    s.idempotency_conversation("alice", "k", conv)
        .await
        .unwrap();
    s.idempotency_finish("alice", "k", None).await.unwrap();
    assert_eq!(
        s.idempotency_begin("alice", "k", "h1", stale, ttl)
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
        s.idempotency_begin("alice", "k", "h1", stale, ttl)
            .await
            .unwrap(),
        Idempotency::Replay {
            status: 200,
            body: "{\"ok\":true}".into()
        }
    );
    // A running record abandoned by a crashed turn is taken over once it is stale.
    assert_eq!(
        s.idempotency_begin("alice", "k2", "h", stale, ttl)
            .await
            .unwrap(),
        Idempotency::New
    );
    let future = Utc::now() + Duration::seconds(1);
    assert_eq!(
        s.idempotency_begin("alice", "k2", "h", future, ttl)
            .await
            .unwrap(),
        Idempotency::Resume {
            conversation_id: None
        }
    );
    db.cleanup().await;
}

/// An idempotency record past its TTL is never replayed, even before the sweeper deletes
/// it: the lookup treats it as absent and starts the request again (whatever its state and
/// body were); within the TTL the same record replays.
async fn an_expired_idempotency_record_is_replaced_not_replayed(kind: Kind) {
    let Some(db) = TestDb::new(kind).await.unwrap() else {
        eprintln!("SKIPPED: no {kind:?} database for the idempotency expiry test");
        return;
    };
    let s = conversation_store(&db.db);
    let stale = Utc::now() - Duration::seconds(120);
    let within = Utc::now() - Duration::hours(24);
    assert_eq!(
        s.idempotency_begin("alice", "k", "h1", stale, within)
            .await
            .unwrap(),
        Idempotency::New
    );
    let conv = Uuid::now_v7();
    s.idempotency_conversation("alice", "k", conv)
        .await
        .unwrap();
    s.idempotency_finish("alice", "k", Some((200, "first answer")))
        .await
        .unwrap();
    let replay = Idempotency::Replay {
        status: 200,
        body: "first answer".into(),
    };
    assert_eq!(
        s.idempotency_begin("alice", "k", "h1", stale, within)
            .await
            .unwrap(),
        replay,
        "within the TTL the answer replays"
    );
    // Every record written so far was last touched before this moment: all have expired.
    let expired = Utc::now() + Duration::seconds(1);
    assert_eq!(
        s.idempotency_begin("alice", "k", "h1", stale, expired)
            .await
            .unwrap(),
        Idempotency::New,
        "past the TTL the request runs again"
    );
    // The replacement is a fresh record: running, no answer, no conversation of the old one.
    assert_eq!(
        s.idempotency_begin("alice", "k", "h1", stale, within)
            .await
            .unwrap(),
        Idempotency::InProgress
    );
    s.idempotency_finish("alice", "k", None).await.unwrap();
    assert_eq!(
        s.idempotency_begin("alice", "k", "h1", stale, within)
            .await
            .unwrap(),
        Idempotency::Resume {
            conversation_id: None
        },
        "the old conversation link went with the old record"
    );
    // An expired key may be reused for another request body; an unexpired one may not.
    assert_eq!(
        s.idempotency_begin("alice", "k", "h2", stale, within)
            .await
            .unwrap(),
        Idempotency::Mismatch
    );
    let expired = Utc::now() + Duration::seconds(1);
    assert_eq!(
        s.idempotency_begin("alice", "k", "h2", stale, expired)
            .await
            .unwrap(),
        Idempotency::New
    );
    // Other users' records are not touched by alice's lookups.
    assert_eq!(
        s.idempotency_begin("bob", "k", "h1", stale, within)
            .await
            .unwrap(),
        Idempotency::New
    );
    db.cleanup().await;
}

todo_test_support::on_both_databases!(
    leases_serialise_turns_and_a_lost_lease_appends_nothing,
    idempotency_records_move_through_their_states,
    an_expired_idempotency_record_is_replaced_not_replayed
);
