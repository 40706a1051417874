use std::time::Duration;

use tempfile::TempDir;

use super::*;
use crate::spool::Kind;

const SINK: &str = "s";

fn message(id: &str) -> NewEntry {
    NewEntry {
        kind: Kind::Message,
        id: id.to_owned(),
        payload: b"{}".to_vec(),
        reply_to: None,
    }
}

fn open(dir: &TempDir) -> RedbSpool {
    RedbSpool::open(&dir.path().join("spool.redb"), 100_000).unwrap()
}

/// A store with sink [`SINK`] registered; held cursor moves linger for `linger`.
async fn store(dir: &TempDir, lazy_limit: u64, linger: Duration) -> Store {
    let store = Store::spawn_lingering(open(dir), lazy_limit, linger).unwrap();
    store.register_sink(SINK).await.unwrap();
    store
}

/// Parks the writer thread in a read until the returned sender is dropped or sent to, so that
/// what is asked meanwhile is pending together when it wakes.
async fn park(store: &Store) -> std::sync::mpsc::Sender<()> {
    let (parked, is_parked) = oneshot::channel();
    let (release, released) = std::sync::mpsc::channel::<()>();
    // The request goes out now; nobody needs its answer.
    drop(store.read(move |_| {
        let _ = parked.send(());
        let _ = released.recv();
        Ok(())
    }));
    is_parked.await.unwrap();
    release
}

/// Waits (bounded) until the writer has made `n` commits.
async fn commits_reach(store: &Store, n: u64) {
    tokio::time::timeout(Duration::from_secs(10), async {
        while store.commits() < n {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
    .expect("the commit was made");
}

fn seqs(entries: &[Entry]) -> Vec<Seq> {
    entries.iter().map(|e| e.seq).collect()
}

#[tokio::test]
async fn writes_pending_together_are_made_durable_by_one_commit() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(&dir, 1000, Duration::from_secs(3600)).await;
    store.append(vec![message("m0")]).await.unwrap();
    let before = store.commits();

    let release = park(&store).await;
    let sync = store.commit_sync(
        vec![message("m1"), message("m2")],
        vec!["m1".into(), "m2".into()],
        Some(b"keys".to_vec()),
    );
    let queued = store.enqueue_command(b"cmd".to_vec());
    let registered = store.register_sink("t");
    store.ack(SINK, 1);
    drop(release);

    assert_eq!(sync.await.unwrap().seqs, vec![2, 3]);
    assert_eq!(queued.await.unwrap(), 1);
    registered.await.unwrap();
    assert_eq!(
        store.commits(),
        before + 1,
        "one commit for the whole group"
    );
    // The cursor move rode on it too: nothing is left to commit at close.
    store.close().await;
    let spool = open(&dir);
    assert_eq!(seqs(&spool.pending(SINK, 10).unwrap()), vec![2, 3]);
    assert_eq!(spool.sync_keys().unwrap(), Some(b"keys".to_vec()));
    assert_eq!(spool.queue_depth().unwrap(), 1);
    assert!(spool.pending("t", 10).unwrap().is_empty());
}

#[tokio::test]
async fn a_sync_is_answered_only_after_its_commit_is_durable() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(&dir, 1000, Duration::from_secs(3600)).await;
    let before = store.commits();

    let release = park(&store).await;
    let mut sync = Box::pin(store.commit_sync(vec![message("m1")], vec!["m1".into()], None));
    // Not committed yet, so not answered (the writer is parked).
    assert!(
        tokio::time::timeout(Duration::from_millis(100), &mut sync)
            .await
            .is_err(),
        "answered before its commit"
    );
    assert_eq!(store.commits(), before);
    drop(release);
    assert_eq!(sync.await.unwrap().seqs, vec![1]);
    assert_eq!(store.commits(), before + 1);

    // Durable: the file, opened afresh once the writer let it go, holds it.
    store.close().await;
    let spool = open(&dir);
    assert_eq!(seqs(&spool.pending(SINK, 10).unwrap()), vec![1]);
    assert_eq!(spool.unseen(&["m1"]).unwrap(), vec![false]);
}

#[tokio::test]
async fn a_held_cursor_move_is_seen_by_reads_and_committed_at_close() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(&dir, 1000, Duration::from_secs(3600)).await;
    store
        .append(vec![message("m1"), message("m2"), message("m3")])
        .await
        .unwrap();
    let before = store.commits();

    store.ack(SINK, 2);
    // The sink reads on past what it delivered, though the move is not committed yet.
    assert_eq!(seqs(&store.pending(SINK, 10).await.unwrap()), vec![3]);
    assert_eq!(store.backlog(SINK).await.unwrap().depth, 1);
    assert_eq!(
        store.commits(),
        before,
        "the cursor move waits for a commit to ride on"
    );

    store.close().await;
    assert_eq!(seqs(&open(&dir).pending(SINK, 10).unwrap()), vec![3]);
}

#[tokio::test]
async fn a_held_cursor_move_rides_on_the_next_sync_commit() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(&dir, 1000, Duration::from_secs(3600)).await;
    store
        .append(vec![message("m1"), message("m2")])
        .await
        .unwrap();
    let before = store.commits();

    store.ack(SINK, 2);
    store.append(vec![message("m3")]).await.unwrap();
    assert_eq!(store.commits(), before + 1);
    // Read straight from the file: the move is committed, not just held.
    let committed = store.read(|v| v.spool.pending(SINK, 10)).await.unwrap();
    assert_eq!(seqs(&committed), vec![3]);
}

#[tokio::test]
async fn a_cursor_move_more_than_a_flight_ahead_is_committed_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(&dir, 2, Duration::from_secs(3600)).await;
    let entries = (1..=5).map(|i| message(&format!("m{i}"))).collect();
    store.append(entries).await.unwrap();
    let before = store.commits();

    store.ack(SINK, 2);
    store.pending(SINK, 1).await.unwrap();
    assert_eq!(store.commits(), before, "within a flight: held");
    store.ack(SINK, 4);
    commits_reach(&store, before + 1).await;
    let committed = store.read(|v| v.spool.pending(SINK, 10)).await.unwrap();
    assert_eq!(seqs(&committed), vec![5]);
}

#[tokio::test]
async fn a_held_cursor_move_is_committed_on_its_own_when_nothing_else_comes() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(&dir, 1000, Duration::from_millis(50)).await;
    store
        .append(vec![message("m1"), message("m2")])
        .await
        .unwrap();
    let before = store.commits();

    store.ack(SINK, 1);
    commits_reach(&store, before + 1).await;
    let committed = store.read(|v| v.spool.pending(SINK, 10)).await.unwrap();
    assert_eq!(seqs(&committed), vec![2]);
}

#[tokio::test]
async fn a_group_that_fails_hands_its_items_back_to_be_committed_one_by_one() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(&dir, 1000, Duration::from_secs(3600)).await;
    store.register_sink("gone").await.unwrap();
    store.append(vec![message("m1")]).await.unwrap();
    store.ack("gone", 1);
    let before = store.commits();

    // In one group: an append, and the removal of a sink whose cursor move is held, so the
    // move cannot be staged after it and the group fails.
    let release = park(&store).await;
    let sync = store.commit_sync(vec![message("m2")], vec!["m2".into()], None);
    let retained = store.retain_sinks(vec![SINK.to_owned()]);
    drop(release);

    assert_eq!(sync.await.unwrap().seqs, vec![2]);
    retained.await.unwrap();
    assert_eq!(
        store.commits(),
        before + 2,
        "each write committed on its own"
    );
    // Appended exactly once, not also by the abandoned group.
    assert_eq!(seqs(&store.pending(SINK, 10).await.unwrap()), vec![1, 2]);
    assert!(store.pending("gone", 10).await.is_err());
}

#[tokio::test]
async fn calls_after_close_fail_instead_of_hanging() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(&dir, 1000, Duration::from_secs(3600)).await;
    store.close().await;
    assert!(store.append(vec![message("m1")]).await.is_err());
    assert!(store.backlog(SINK).await.is_err());
}

#[tokio::test]
async fn a_stream_of_reads_does_not_put_off_a_held_cursor_move() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(&dir, 1000, Duration::from_millis(200)).await;
    store
        .append(vec![message("m1"), message("m2")])
        .await
        .unwrap();
    let before = store.commits();

    store.ack(SINK, 1);
    // Reads come far more often than the linger; the move is still committed after it.
    tokio::time::timeout(Duration::from_secs(10), async {
        while store.commits() == before {
            store.backlog(SINK).await.unwrap();
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("the held move was committed");
    let committed = store.read(|v| v.spool.pending(SINK, 10)).await.unwrap();
    assert_eq!(seqs(&committed), vec![2]);
}

#[tokio::test]
async fn a_value_put_without_waiting_rides_in_the_group_of_the_result_after_it() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(&dir, 1000, Duration::from_secs(3600)).await;
    let id = store.enqueue_command(b"cmd".to_vec()).await.unwrap();
    let (commits, fsyncs) = (store.commits(), store.fsyncs());

    let release = park(&store).await;
    // Dropped at once, as the send counts are: the put is queued when called.
    drop(store.put_value("limits", b"counts".to_vec()));
    let completed = store.complete_command(id, Some("r-1".into()), message("result"));
    drop(release);
    completed.await.unwrap();

    assert_eq!(store.commits(), commits + 1, "one group for both");
    assert_eq!(store.fsyncs(), fsyncs + 1, "one fsync for both");
    assert_eq!(
        store.value("limits").await.unwrap(),
        Some(b"counts".to_vec())
    );
    store.close().await;
    let spool = open(&dir);
    assert_eq!(spool.value("limits").unwrap(), Some(b"counts".to_vec()));
    assert_eq!(spool.queue_depth().unwrap(), 0);
}

#[tokio::test]
async fn a_held_value_waits_for_the_next_write_and_shares_its_fsync() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(&dir, 1000, Duration::from_secs(3600)).await;
    let id = store.enqueue_command(b"cmd".to_vec()).await.unwrap();
    let (commits, fsyncs) = (store.commits(), store.fsyncs());

    store.hold_value("limits", b"old".to_vec());
    store.hold_value("limits", b"new".to_vec());
    assert_eq!(
        store.value("limits").await.unwrap(),
        None,
        "held, not committed"
    );
    assert_eq!(store.commits(), commits, "holding makes no commit");
    store
        .complete_command(id, Some("r-1".into()), message("result"))
        .await
        .unwrap();
    assert_eq!(store.commits(), commits + 1);
    assert_eq!(
        store.fsyncs(),
        fsyncs + 1,
        "one fsync for the value and the result"
    );
    assert_eq!(store.value("limits").await.unwrap(), Some(b"new".to_vec()));
}

#[tokio::test]
async fn a_held_value_is_committed_on_its_own_when_nothing_else_comes_and_at_close() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(&dir, 1000, Duration::from_millis(50)).await;
    let before = store.commits();
    store.hold_value("limits", b"a".to_vec());
    commits_reach(&store, before + 1).await;
    assert_eq!(store.value("limits").await.unwrap(), Some(b"a".to_vec()));

    let store = {
        store.close().await;
        Store::spawn_lingering(open(&dir), 1000, Duration::from_secs(3600)).unwrap()
    };
    store.hold_value("limits", b"b".to_vec());
    store.close().await;
    assert_eq!(open(&dir).value("limits").unwrap(), Some(b"b".to_vec()));
}

#[tokio::test]
async fn a_put_replaces_a_value_held_before_it() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(&dir, 1000, Duration::from_secs(3600)).await;
    store.hold_value("k", b"held".to_vec());
    store.put_value("k", b"put".to_vec()).await.unwrap();
    store.close().await;
    assert_eq!(open(&dir).value("k").unwrap(), Some(b"put".to_vec()));
}
