//! Recovery from the journal. A crash is taken as a copy of the state directory while the
//! store runs: redb's non-durable commits live in its write buffer, not in the file, so the
//! copy holds what a power cut would leave.
use std::path::Path;
use std::time::Duration;

use tempfile::TempDir;

use super::*;
use crate::spool::writer::Tuning;
use crate::spool::{Entry, Kind, NewEntry, Seq, Spool, Store};

const SINK: &str = "s";

fn message(id: &str) -> NewEntry {
    NewEntry {
        kind: Kind::Message,
        id: id.to_owned(),
        payload: format!(r#"{{"text":"{id}"}}"#).into_bytes(),
        reply_to: None,
    }
}

fn spool_path(dir: &Path) -> std::path::PathBuf {
    dir.join("spool.redb")
}

fn journal_path(dir: &Path) -> std::path::PathBuf {
    dir.join("spool.journal")
}

fn open_spool(dir: &Path) -> RedbSpool {
    RedbSpool::open(&spool_path(dir), 100_000).unwrap()
}

fn tuning(journal_bytes: u64) -> Tuning {
    Tuning {
        lazy_limit: 1000,
        // Nothing lingers or checkpoints on a timer during a test.
        linger: Duration::from_secs(3600),
        checkpoint_after: Duration::from_secs(3600),
        journal_bytes,
    }
}

fn spawn(dir: &Path) -> Store {
    Store::spawn_tuned(open_spool(dir), tuning(CAPACITY)).unwrap()
}

/// A store with [`SINK`] registered and its registration checkpointed, so that what a test
/// writes afterwards is in the journal alone.
async fn started(dir: &Path) -> Store {
    let store = spawn(dir);
    store.register_sink(SINK).await.unwrap();
    store.close().await;
    spawn(dir)
}

/// [`started`] with a journal of `journal_bytes`.
async fn started_small(dir: &Path, journal_bytes: u64) -> Store {
    let store = Store::spawn_tuned(open_spool(dir), tuning(journal_bytes)).unwrap();
    store.register_sink(SINK).await.unwrap();
    store.close().await;
    Store::spawn_tuned(open_spool(dir), tuning(journal_bytes)).unwrap()
}

/// What a crash now would leave of `dir`: its files as they are on disk.
fn crash_image(dir: &Path) -> TempDir {
    let image = tempfile::tempdir().unwrap();
    for name in ["spool.redb", "spool.journal"] {
        std::fs::copy(dir.join(name), image.path().join(name)).unwrap();
    }
    image
}

fn seqs(entries: &[Entry]) -> Vec<Seq> {
    entries.iter().map(|e| e.seq).collect()
}

fn ids(entries: &[Entry]) -> Vec<&str> {
    entries.iter().map(|e| e.id.as_str()).collect()
}

/// The byte ranges of the journal's leading records of any generation: (start, end).
fn record_spans(dir: &Path) -> Vec<(usize, usize)> {
    let bytes = std::fs::read(journal_path(dir)).unwrap();
    let mut spans = Vec::new();
    let mut at = 0;
    loop {
        let len = u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap()) as usize;
        if len == 0 {
            return spans;
        }
        spans.push((at, at + HEADER + len));
        at += HEADER + len;
    }
}

fn corrupt(dir: &Path, at: usize) {
    let mut bytes = std::fs::read(journal_path(dir)).unwrap();
    bytes[at] ^= 0xff;
    std::fs::write(journal_path(dir), bytes).unwrap();
}

#[tokio::test]
async fn a_sync_answered_is_in_the_journal_not_yet_in_the_spool_file() {
    let dir = tempfile::tempdir().unwrap();
    let store = started(dir.path()).await;
    let spool_before = std::fs::read(spool_path(dir.path())).unwrap();
    let fsyncs = store.fsyncs();

    let committed = store
        .commit_sync(
            vec![message("m1"), message("m2")],
            vec!["m1".into(), "m2".into()],
            Some(b"keys".to_vec()),
        )
        .await
        .unwrap();
    assert_eq!(committed.seqs, vec![1, 2]);
    assert_eq!(store.fsyncs(), fsyncs + 1, "one fdatasync: the journal's");
    assert_eq!(
        std::fs::read(spool_path(dir.path())).unwrap(),
        spool_before,
        "the spool file is not written until a checkpoint"
    );
    assert_eq!(record_spans(dir.path()).len(), 1);
    // Readable at once.
    assert_eq!(seqs(&store.pending(SINK, 10).await.unwrap()), vec![1, 2]);
}

#[tokio::test]
async fn synced_records_not_yet_checkpointed_are_replayed_after_a_crash() {
    let dir = tempfile::tempdir().unwrap();
    let store = started(dir.path()).await;
    let committed = store
        .commit_sync(
            vec![message("m1"), message("m2")],
            vec!["m1".into(), "m2".into()],
            Some(b"keys".to_vec()),
        )
        .await
        .unwrap();
    let queued = store.enqueue_command(b"cmd".to_vec()).await.unwrap();
    store.ack(SINK, 1);
    store
        .commit_sync(vec![message("m3")], vec!["m3".into()], None)
        .await
        .unwrap();

    let image = crash_image(dir.path());
    // The spool file alone has none of it: the journal is what keeps it.
    let bare = crash_image(dir.path());
    std::fs::remove_file(journal_path(bare.path())).unwrap();
    let spool = open_spool(bare.path());
    assert!(spool.pending(SINK, 10).unwrap().is_empty());
    drop(spool);

    let recovered = spawn(image.path());
    let pending = recovered.pending(SINK, 10).await.unwrap();
    // The same seqs and command id as answered before the crash, and the cursor move that
    // rode on the second sync.
    assert_eq!(seqs(&pending), vec![2, 3]);
    assert_eq!(committed.seqs, vec![1, 2]);
    assert_eq!(ids(&pending), vec!["m2", "m3"]);
    assert_eq!(pending[0].payload, message("m2").payload);
    assert_eq!(recovered.sync_keys().await.unwrap(), Some(b"keys".to_vec()));
    assert_eq!(
        recovered
            .unseen(vec!["m1".into(), "m4".into()])
            .await
            .unwrap(),
        vec![false, true]
    );
    let commands = recovered.queued_commands(10).await.unwrap();
    assert_eq!(commands.len(), 1);
    assert_eq!(
        (commands[0].id, commands[0].record.as_slice()),
        (queued, &b"cmd"[..])
    );
    // New writes go on from there.
    let next = recovered.append(vec![message("m4")]).await.unwrap();
    assert_eq!(next.seqs, vec![4]);
    assert_eq!(
        recovered.enqueue_command(b"c2".to_vec()).await.unwrap(),
        queued + 1
    );
}

#[tokio::test]
async fn a_torn_last_record_is_dropped_and_the_ones_before_it_replayed() {
    let dir = tempfile::tempdir().unwrap();
    let store = started(dir.path()).await;
    store.append(vec![message("m1")]).await.unwrap();
    store.append(vec![message("m2")]).await.unwrap();
    let image = crash_image(dir.path());
    // The second append reached the disk only in part.
    let spans = record_spans(image.path());
    assert_eq!(spans.len(), 2);
    let (start, end) = spans[1];
    let mut bytes = std::fs::read(journal_path(image.path())).unwrap();
    bytes[start + (end - start) / 2..end].fill(0);
    std::fs::write(journal_path(image.path()), bytes).unwrap();

    let recovered = spawn(image.path());
    assert_eq!(ids(&recovered.pending(SINK, 10).await.unwrap()), vec!["m1"]);
    // The seq of the lost append is given again: it was never answered.
    assert_eq!(
        recovered.append(vec![message("m3")]).await.unwrap().seqs,
        vec![2]
    );
}

#[tokio::test]
async fn a_crc_mismatch_ends_the_replay_there() {
    let dir = tempfile::tempdir().unwrap();
    let store = started(dir.path()).await;
    for id in ["m1", "m2", "m3"] {
        store.append(vec![message(id)]).await.unwrap();
    }
    let image = crash_image(dir.path());
    let spans = record_spans(image.path());
    // One payload byte of the second record flipped: it and all after it are not replayed.
    corrupt(image.path(), spans[1].1 - 1);

    let recovered = spawn(image.path());
    assert_eq!(ids(&recovered.pending(SINK, 10).await.unwrap()), vec!["m1"]);
}

#[tokio::test]
async fn records_of_an_older_generation_are_never_replayed() {
    let dir = tempfile::tempdir().unwrap();
    let store = started(dir.path()).await;
    store
        .append(vec![message("m1"), message("m2")])
        .await
        .unwrap();
    // The checkpoint at close starts a new generation; the old records stay in the file.
    store.close().await;
    assert_eq!(
        record_spans(dir.path()).len(),
        1,
        "the old record is still there"
    );

    let reopened = spawn(dir.path());
    assert_eq!(seqs(&reopened.pending(SINK, 10).await.unwrap()), vec![1, 2]);
    // A record of the new generation written over the start of the old one: the old
    // record's remains past it end the replay and are not mistaken for records.
    reopened.append(vec![message("m3")]).await.unwrap();
    let image = crash_image(dir.path());
    let recovered = spawn(image.path());
    assert_eq!(
        seqs(&recovered.pending(SINK, 10).await.unwrap()),
        vec![1, 2, 3]
    );
}

#[tokio::test]
async fn recovering_twice_is_recovering_once() {
    let dir = tempfile::tempdir().unwrap();
    let store = started(dir.path()).await;
    store
        .commit_sync(vec![message("m1")], vec!["m1".into()], None)
        .await
        .unwrap();
    store.enqueue_command(b"cmd".to_vec()).await.unwrap();
    let image = crash_image(dir.path());

    // A recovery stopped after its replay, before its checkpoint: redb makes the replayed
    // commits durable when the database is closed, each marked with its journal record.
    {
        let spool = open_spool(image.path());
        let mut journal = Journal::open(&journal_path(image.path()), CAPACITY).unwrap();
        assert_eq!(replay(&spool, &mut journal).unwrap().1, 2);
    }
    // And a crash right after a whole recovery.
    let again = {
        let recovered = spawn(image.path());
        let image = crash_image(image.path());
        recovered.close().await;
        image
    };
    for dir in [image.path(), again.path()] {
        let spool = open_spool(dir);
        let mut journal = Journal::open(&journal_path(dir), CAPACITY).unwrap();
        recover(&spool, &mut journal).unwrap();
        assert_eq!(ids(&spool.pending(SINK, 10).unwrap()), vec!["m1"]);
        assert_eq!(spool.queue_depth().unwrap(), 1);
    }
}

#[tokio::test]
async fn a_spool_from_before_the_journal_opens_as_it_was() {
    let dir = tempfile::tempdir().unwrap();
    {
        let spool = open_spool(dir.path());
        spool.register_sink(SINK).unwrap();
        spool
            .commit_sync(vec![message("m1")], &["m1"], Some(b"keys"))
            .unwrap();
    }
    assert!(!journal_path(dir.path()).exists());

    let store = spawn(dir.path());
    assert_eq!(seqs(&store.pending(SINK, 10).await.unwrap()), vec![1]);
    assert_eq!(store.sync_keys().await.unwrap(), Some(b"keys".to_vec()));
    assert_eq!(
        store.append(vec![message("m2")]).await.unwrap().seqs,
        vec![2]
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(journal_path(dir.path()))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "the journal holds message contents");
    }
}

#[tokio::test]
async fn a_group_too_large_for_the_journal_is_made_durable_by_a_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let store = started_small(dir.path(), 4096).await;
    let fsyncs = store.fsyncs();
    let big = NewEntry {
        payload: vec![b'x'; 10_000],
        ..message("big")
    };
    store.append(vec![big]).await.unwrap();
    assert_eq!(
        store.fsyncs(),
        fsyncs + 1,
        "one durable commit, no journal append"
    );

    // In the spool file itself, with no journal to replay.
    let image = crash_image(dir.path());
    std::fs::remove_file(journal_path(image.path())).unwrap();
    let spool = open_spool(image.path());
    assert_eq!(ids(&spool.pending(SINK, 10).unwrap()), vec!["big"]);
}

#[tokio::test]
async fn a_full_journal_checkpoints_and_starts_over() {
    let dir = tempfile::tempdir().unwrap();
    let store = started_small(dir.path(), 1024).await;
    let fsyncs = store.fsyncs();
    let ids_written: Vec<String> = (0..40).map(|i| format!("m{i}")).collect();
    for id in &ids_written {
        store.append(vec![message(id)]).await.unwrap();
    }
    // Each append synced once: by the journal, or by a checkpoint when its record did not
    // fit, after which the journal starts over.
    assert_eq!(store.fsyncs() - fsyncs, 40);
    assert!(
        record_spans(dir.path()).len() < 20,
        "the journal started over"
    );
    let image = crash_image(dir.path());
    let recovered = spawn(image.path());
    let pending = recovered.pending(SINK, 100).await.unwrap();
    assert_eq!(
        ids(&pending),
        ids_written.iter().map(String::as_str).collect::<Vec<_>>()
    );
    assert_eq!(seqs(&pending), (1..=40).collect::<Vec<_>>());
}

#[tokio::test]
async fn a_journal_left_beside_a_new_spool_file_is_never_replayed() {
    let dir = tempfile::tempdir().unwrap();
    let store = spawn(dir.path());
    store.register_sink(SINK).await.unwrap();
    store.append(vec![message("old")]).await.unwrap();
    let image = crash_image(dir.path());
    // The spool file is removed and a new one made; the old journal stays.
    std::fs::remove_file(spool_path(image.path())).unwrap();
    let store = spawn(image.path());
    // Its first record is as long as the old spool's first: the old second record follows it
    // in the file, of the same generation and numbered as the next.
    store.register_sink(SINK).await.unwrap();
    let crashed = crash_image(image.path());

    let recovered = spawn(crashed.path());
    assert!(recovered.pending(SINK, 10).await.unwrap().is_empty());
}

/// Bytes this thread has caused to be written to storage (`/proc/thread-self/io`).
#[cfg(target_os = "linux")]
fn thread_write_bytes() -> u64 {
    std::fs::read_to_string("/proc/thread-self/io")
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("write_bytes:")?.trim().parse().ok())
        .unwrap()
}

#[cfg(target_os = "linux")]
#[test]
fn an_append_writes_about_the_pages_it_touches_not_more() {
    let dir = tempfile::tempdir().unwrap();
    let mut journal = Journal::open(&journal_path(dir.path()), CAPACITY).unwrap();
    journal.start(1);
    let record = vec![b'x'; 2000];
    let before = thread_write_bytes();
    for _ in 0..100 {
        journal.append(&record).unwrap();
    }
    // A 2 kB record spans one or two 4 KiB pages. (On a file system that does not count
    // written bytes, such as tmpfs, this reads 0 and proves nothing.)
    let per_append = (thread_write_bytes() - before) / 100;
    assert!(
        per_append <= 12 * 1024,
        "{per_append} bytes written per append"
    );
}

#[tokio::test]
async fn held_entries_and_their_release_ride_the_journal_and_are_replayed() {
    let dir = tempfile::tempdir().unwrap();
    let store = started(dir.path()).await;
    let fsyncs = store.fsyncs();
    store
        .commit_sync_holding(
            vec![message("m1"), message("m2"), message("m3")],
            vec![1],
            vec!["m1".into(), "m2".into(), "m3".into()],
            Some(b"keys".to_vec()),
        )
        .await
        .unwrap();
    assert_eq!(
        store.fsyncs(),
        fsyncs + 1,
        "holding costs no fsync of its own"
    );
    assert_eq!(seqs(&store.pending(SINK, 10).await.unwrap()), vec![1]);

    // A crash with the entry still held: it is held after the restart.
    let held_image = crash_image(dir.path());
    store.release(2, b"{\"done\":1}".to_vec()).await.unwrap();
    let released_image = crash_image(dir.path());

    let recovered = spawn(held_image.path());
    assert_eq!(ids(&recovered.held().await.unwrap()), ["m2"]);
    assert_eq!(seqs(&recovered.pending(SINK, 10).await.unwrap()), vec![1]);
    recovered.close().await;

    let recovered = spawn(released_image.path());
    assert!(recovered.held().await.unwrap().is_empty());
    let pending = recovered.pending(SINK, 10).await.unwrap();
    assert_eq!(seqs(&pending), vec![1, 2, 3]);
    assert_eq!(pending[1].payload, b"{\"done\":1}");
    recovered.close().await;
}

#[tokio::test]
async fn a_value_rides_the_journal_and_is_replayed_after_a_crash() {
    let dir = tempfile::tempdir().unwrap();
    let store = started(dir.path()).await;
    store.put_value("limits", b"one".to_vec()).await.unwrap();
    store.put_value("limits", b"two".to_vec()).await.unwrap();
    let image = crash_image(dir.path());
    // The spool file alone does not have it: only the journal does.
    let bare = crash_image(dir.path());
    std::fs::remove_file(journal_path(bare.path())).unwrap();
    assert_eq!(open_spool(bare.path()).value("limits").unwrap(), None);

    let recovered = spawn(image.path());
    assert_eq!(
        recovered.value("limits").await.unwrap(),
        Some(b"two".to_vec())
    );
}
