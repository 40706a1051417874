//! Behaviour of the redb spool against real files in temporary directories.
use std::sync::Arc;
use std::time::Duration;

use tempfile::TempDir;

use super::*;
use crate::spool::Kind;

const DAY_MS: u64 = 24 * HOUR_MS;
/// A fixed "now" for the tests that move the clock.
const T0: u64 = 1_800_000_000_000;

fn open(dir: &TempDir, max: u64) -> RedbSpool {
    RedbSpool::open(&dir.path().join("spool.redb"), max).unwrap()
}

fn message(id: &str) -> NewEntry {
    NewEntry {
        kind: Kind::Message,
        id: id.to_owned(),
        payload: format!(r#"{{"kind":"message","id":"{id}"}}"#).into_bytes(),
        reply_to: None,
    }
}

fn messages(ids: std::ops::Range<u32>) -> Vec<NewEntry> {
    ids.map(|i| message(&format!("m{i}"))).collect()
}

fn keys(val: u64) -> Vec<u8> {
    format!("{{\"sync\":{val}}}").into_bytes()
}

fn ids(entries: &[Entry]) -> Vec<&str> {
    entries.iter().map(|e| e.id.as_str()).collect()
}

fn seqs(entries: &[Entry]) -> Vec<Seq> {
    entries.iter().map(|e| e.seq).collect()
}

fn stored_entries(spool: &RedbSpool) -> u64 {
    let txn = spool.read().unwrap();
    txn.open_table(ENTRIES).unwrap().len().unwrap()
}

#[test]
fn spool_is_shareable_across_threads() {
    fn shareable<T: Send + Sync + 'static>() {}
    shareable::<RedbSpool>();
    let dir = TempDir::new().unwrap();
    let spool: Arc<dyn Spool> = Arc::new(open(&dir, 100));
    spool.register_sink("a").unwrap();
    let writers: Vec<_> = (0..4)
        .map(|t| {
            let spool = Arc::clone(&spool);
            std::thread::spawn(move || spool.append(messages(t * 10..t * 10 + 10)).unwrap())
        })
        .collect();
    for w in writers {
        w.join().unwrap();
    }
    assert_eq!(
        seqs(&spool.pending("a", 100).unwrap()),
        (1..=40).collect::<Vec<_>>()
    );
}

#[cfg(unix)]
#[test]
fn spool_file_is_private_to_its_owner() {
    use std::os::unix::fs::PermissionsExt;
    let dir = TempDir::new().unwrap();
    let spool = open(&dir, 10);
    let mode = std::fs::metadata(&spool.path).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    assert!(spool.disk_size().unwrap() > 0);
}

#[cfg(unix)]
#[test]
fn a_spool_file_planted_as_a_link_is_refused_and_its_target_left_alone() {
    let dir = TempDir::new().unwrap();
    let victim = dir.path().join("victim");
    std::fs::write(&victim, "precious").unwrap();
    let path = dir.path().join("spool.redb");
    std::os::unix::fs::symlink(&victim, &path).unwrap();
    let Err(err) = RedbSpool::open(&path, 10) else {
        panic!("a link is refused");
    };
    assert!(err.to_string().contains("is a symbolic link"), "{err}");
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious");
}

#[test]
fn sinks_read_in_order_with_independent_cursors() {
    let dir = TempDir::new().unwrap();
    let spool = open(&dir, 100);
    spool.register_sink("mqtt").unwrap();
    spool.register_sink("nats").unwrap();
    let committed = spool
        .commit_sync(messages(0..5), &["m0", "m1", "m2", "m3", "m4"], None)
        .unwrap();
    assert_eq!(committed.seqs, vec![1, 2, 3, 4, 5]);
    assert!(committed.dropped.is_empty());

    let first = spool.pending("mqtt", 2).unwrap();
    assert_eq!(ids(&first), ["m0", "m1"]);
    assert_eq!(seqs(&first), [1, 2]);
    assert_eq!(first[0].kind, Kind::Message);
    assert_eq!(first[0].payload, br#"{"kind":"message","id":"m0"}"#);
    spool.ack("mqtt", 2).unwrap();

    assert_eq!(seqs(&spool.pending("mqtt", 10).unwrap()), [3, 4, 5]);
    assert_eq!(seqs(&spool.pending("nats", 10).unwrap()), [1, 2, 3, 4, 5]);
    spool.ack("nats", 5).unwrap();
    assert!(spool.pending("nats", 10).unwrap().is_empty());
    assert_eq!(seqs(&spool.pending("mqtt", 10).unwrap()), [3, 4, 5]);

    assert_eq!(spool.backlog("mqtt").unwrap().depth, 3);
    assert_eq!(spool.backlog("nats").unwrap(), Backlog::default());
}

#[test]
fn unknown_sinks_are_errors() {
    let dir = TempDir::new().unwrap();
    let spool = open(&dir, 10);
    assert!(spool.pending("nobody", 1).is_err());
    assert!(spool.ack("nobody", 1).is_err());
    assert!(spool.backlog("nobody").is_err());
}

#[test]
fn cursors_keys_and_queue_survive_reopen() {
    let dir = TempDir::new().unwrap();
    {
        let spool = open(&dir, 100);
        spool.register_sink("a").unwrap();
        spool.register_sink("b").unwrap();
        spool
            .commit_sync(messages(0..4), &["m0", "m1", "m2", "m3"], Some(&*keys(7)))
            .unwrap();
        spool.ack("a", 3).unwrap();
        spool.enqueue_command(b"cmd".to_vec()).unwrap();
    }
    let spool = open(&dir, 100);
    spool.register_sink("a").unwrap();
    spool.register_sink("b").unwrap();
    assert_eq!(seqs(&spool.pending("a", 10).unwrap()), [4]);
    assert_eq!(seqs(&spool.pending("b", 10).unwrap()), [1, 2, 3, 4]);
    assert_eq!(spool.sync_keys().unwrap(), Some(keys(7)));
    assert_eq!(spool.queue_depth().unwrap(), 1);
    // The counter continues; seqs are not reused.
    assert_eq!(spool.append(messages(4..5)).unwrap().seqs, [5]);
    assert_eq!(spool.enqueue_command(b"next".to_vec()).unwrap(), 2);
}

#[test]
fn seen_marks_survive_reopen() {
    let dir = TempDir::new().unwrap();
    {
        let spool = open(&dir, 100);
        spool.register_sink("a").unwrap();
        assert_eq!(spool.unseen(&["x", "y"]).unwrap(), [true, true]);
        spool.commit_sync(vec![message("x")], &["x"], None).unwrap();
        // Marking again is harmless.
        spool.commit_sync(Vec::new(), &["x"], None).unwrap();
    }
    let spool = open(&dir, 100);
    assert_eq!(spool.unseen(&["x", "y"]).unwrap(), [false, true]);
}

#[test]
fn clearing_sync_keys_forgets_them() {
    let dir = TempDir::new().unwrap();
    let spool = open(&dir, 100);
    assert_eq!(spool.sync_keys().unwrap(), None);
    spool.commit_sync(Vec::new(), &[], Some(&*keys(1))).unwrap();
    spool.commit_sync(Vec::new(), &[], Some(&*keys(2))).unwrap();
    assert_eq!(spool.sync_keys().unwrap(), Some(keys(2)));
    spool.clear_sync_keys().unwrap();
    assert_eq!(spool.sync_keys().unwrap(), None);
}

#[test]
fn bound_drops_oldest_for_the_lagging_sink_only_and_counts() {
    let dir = TempDir::new().unwrap();
    let spool = open(&dir, 5);
    spool.register_sink("fast").unwrap();
    spool.register_sink("slow").unwrap();
    spool.append(messages(0..4)).unwrap();
    spool.ack("fast", 4).unwrap();

    let committed = spool.append(messages(4..8)).unwrap();
    assert_eq!(committed.seqs, [5, 6, 7, 8]);
    assert_eq!(committed.dropped, [("slow".to_owned(), 3)]);
    assert_eq!(seqs(&spool.pending("slow", 10).unwrap()), [4, 5, 6, 7, 8]);
    assert_eq!(seqs(&spool.pending("fast", 10).unwrap()), [5, 6, 7, 8]);
    spool.ack("fast", 8).unwrap();

    let committed = spool.append(messages(8..10)).unwrap();
    assert_eq!(committed.dropped, [("slow".to_owned(), 2)]);
    assert_eq!(seqs(&spool.pending("slow", 10).unwrap()), [6, 7, 8, 9, 10]);

    let slow = spool.backlog("slow").unwrap();
    assert_eq!((slow.depth, slow.dropped), (5, 5));
    let fast = spool.backlog("fast").unwrap();
    assert_eq!((fast.depth, fast.dropped), (2, 0));
    // What neither sink can read any more is gone from the file.
    assert_eq!(stored_entries(&spool), 5);
}

#[test]
fn new_sink_starts_at_the_head_and_known_sink_keeps_its_cursor() {
    let dir = TempDir::new().unwrap();
    let spool = open(&dir, 100);
    spool.register_sink("old").unwrap();
    spool.append(messages(0..3)).unwrap();
    spool.register_sink("new").unwrap();
    spool.register_sink("old").unwrap();
    assert!(spool.pending("new", 10).unwrap().is_empty());
    assert_eq!(spool.backlog("new").unwrap().depth, 0);
    assert_eq!(seqs(&spool.pending("old", 10).unwrap()), [1, 2, 3]);
    spool.append(messages(3..4)).unwrap();
    assert_eq!(ids(&spool.pending("new", 10).unwrap()), ["m3"]);
}

#[test]
fn acking_backwards_or_past_the_head_is_harmless() {
    let dir = TempDir::new().unwrap();
    let spool = open(&dir, 100);
    spool.register_sink("a").unwrap();
    spool.append(messages(0..5)).unwrap();
    spool.ack("a", 3).unwrap();
    spool.ack("a", 1).unwrap();
    assert_eq!(seqs(&spool.pending("a", 10).unwrap()), [4, 5]);
    spool.ack("a", 99).unwrap();
    spool.append(messages(5..6)).unwrap();
    assert_eq!(seqs(&spool.pending("a", 10).unwrap()), [6]);
}

#[test]
fn entries_acked_by_every_sink_are_deleted() {
    let dir = TempDir::new().unwrap();
    let spool = open(&dir, 100);
    spool.register_sink("a").unwrap();
    spool.register_sink("b").unwrap();
    spool.append(messages(0..10)).unwrap();
    spool.ack("a", 10).unwrap();
    assert_eq!(stored_entries(&spool), 10);
    spool.ack("b", 4).unwrap();
    assert_eq!(stored_entries(&spool), 6);
    spool.ack("b", 10).unwrap();
    assert_eq!(stored_entries(&spool), 0);
}

#[test]
fn without_sinks_appends_are_numbered_but_not_kept() {
    let dir = TempDir::new().unwrap();
    let spool = open(&dir, 100);
    assert_eq!(spool.append(messages(0..3)).unwrap().seqs, [1, 2, 3]);
    assert_eq!(stored_entries(&spool), 0);
    spool.register_sink("late").unwrap();
    assert_eq!(spool.append(messages(3..4)).unwrap().seqs, [4]);
    assert_eq!(seqs(&spool.pending("late", 10).unwrap()), [4]);
}

#[test]
fn backlog_reports_the_oldest_undelivered_append() {
    let dir = TempDir::new().unwrap();
    let spool = open(&dir, 100);
    spool.register_sink("a").unwrap();
    spool
        .commit_sync_at(messages(0..1), &[], &[], None, T0)
        .unwrap();
    spool
        .commit_sync_at(messages(1..2), &[], &[], None, T0 + 10)
        .unwrap();
    assert_eq!(spool.backlog("a").unwrap().oldest_ms, Some(T0));
    spool.ack("a", 1).unwrap();
    assert_eq!(spool.backlog("a").unwrap().oldest_ms, Some(T0 + 10));
    assert_eq!(spool.pending("a", 1).unwrap()[0].appended_ms, T0 + 10);
}

#[test]
fn seen_marks_older_than_a_week_are_pruned() {
    let dir = TempDir::new().unwrap();
    let spool = open(&dir, 100);
    spool.register_sink("a").unwrap();
    spool
        .commit_sync_at(Vec::new(), &[], &["old"], None, T0)
        .unwrap();
    spool
        .commit_sync_at(Vec::new(), &[], &["recent"], None, T0 + 6 * DAY_MS)
        .unwrap();
    // Within the hour of the last prune nothing is scanned.
    spool
        .commit_sync_at(Vec::new(), &[], &["x"], None, T0 + 6 * DAY_MS + HOUR_MS / 2)
        .unwrap();
    assert_eq!(spool.unseen(&["old"]).unwrap(), [false]);
    spool
        .commit_sync_at(Vec::new(), &[], &["y"], None, T0 + 8 * DAY_MS)
        .unwrap();
    assert_eq!(
        spool.unseen(&["old", "recent", "x", "y"]).unwrap(),
        [true, false, false, false]
    );
}

#[test]
fn commands_are_queued_in_order_and_completed_with_their_result() {
    let dir = TempDir::new().unwrap();
    let spool = open(&dir, 100);
    spool.register_sink("a").unwrap();
    for record in ["one", "two", "three"] {
        spool.enqueue_command(record.as_bytes().to_vec()).unwrap();
    }
    let queued = spool.queued_commands(2).unwrap();
    assert_eq!(
        queued,
        [
            QueuedCommand {
                id: 1,
                record: b"one".to_vec()
            },
            QueuedCommand {
                id: 2,
                record: b"two".to_vec()
            },
        ]
    );
    assert_eq!(spool.queue_depth().unwrap(), 3);

    let result = NewEntry {
        kind: Kind::Result,
        id: "res-1".to_owned(),
        payload: br#"{"ok":true}"#.to_vec(),
        reply_to: Some("_INBOX.1".to_owned()),
    };
    let seq = spool.complete_command(1, Some("req-1"), result).unwrap();
    assert_eq!(seq, 1);
    assert_eq!(spool.queue_depth().unwrap(), 2);
    assert_eq!(spool.queued_commands(10).unwrap()[0].id, 2);
    assert_eq!(
        spool
            .recent_result("req-1", Duration::from_secs(60))
            .unwrap()
            .as_deref(),
        Some(&br#"{"ok":true}"#[..])
    );
    let spooled = spool.pending("a", 10).unwrap();
    assert_eq!(spooled.len(), 1);
    assert_eq!(spooled[0].kind, Kind::Result);
    assert_eq!(spooled[0].reply_to.as_deref(), Some("_INBOX.1"));

    // Ids are never reused, even after the newest command is completed.
    let last = message("r3");
    spool.complete_command(3, None, last).unwrap();
    assert_eq!(spool.enqueue_command(b"four".to_vec()).unwrap(), 4);
}

#[test]
fn recent_result_only_within_its_window() {
    let dir = TempDir::new().unwrap();
    let spool = open(&dir, 100);
    spool.register_sink("a").unwrap();
    let id = spool.enqueue_command(b"c".to_vec()).unwrap();
    spool
        .complete_command_at(id, Some("req"), message("r"), T0)
        .unwrap();
    let minute = Duration::from_secs(60);
    let later = |ms| spool.recent_result_at("req", minute, T0 + ms).unwrap();
    assert!(later(59_999).is_some());
    assert!(later(60_000).is_none());
    assert!(spool
        .recent_result_at("other", minute, T0)
        .unwrap()
        .is_none());

    // A day later the next completion prunes it for good.
    let id = spool.enqueue_command(b"d".to_vec()).unwrap();
    spool
        .complete_command_at(id, Some("req2"), message("r2"), T0 + DAY_MS + 1)
        .unwrap();
    let week = Duration::from_secs(7 * 24 * 3600);
    assert!(spool
        .recent_result_at("req", week, T0 + DAY_MS + 1)
        .unwrap()
        .is_none());
    assert!(spool
        .recent_result_at("req2", week, T0 + DAY_MS + 1)
        .unwrap()
        .is_some());
}

#[test]
fn an_uncommitted_sync_leaves_nothing_behind() {
    let dir = TempDir::new().unwrap();
    {
        let spool = open(&dir, 100);
        spool.register_sink("a").unwrap();
        spool
            .commit_sync(messages(0..2), &["m0", "m1"], Some(&*keys(1)))
            .unwrap();
        // A crash between writing a sync answer and committing it.
        let txn = spool.write().unwrap();
        spool
            .stage_sync(
                &txn,
                &messages(2..4),
                &[],
                &["m2", "m3"],
                Some(&*keys(2)),
                T0,
                true,
            )
            .unwrap();
        drop(txn);
    }
    let spool = open(&dir, 100);
    assert_eq!(ids(&spool.pending("a", 10).unwrap()), ["m0", "m1"]);
    assert_eq!(spool.sync_keys().unwrap(), Some(keys(1)));
    assert_eq!(
        spool.unseen(&["m0", "m1", "m2", "m3"]).unwrap(),
        [false, false, true, true]
    );
    // The replay gets the seqs the lost answer would have had.
    assert_eq!(spool.append(messages(2..3)).unwrap().seqs, [3]);
}

#[test]
fn a_committed_sync_keeps_entries_marks_and_keys_together() {
    let dir = TempDir::new().unwrap();
    {
        let spool = open(&dir, 100);
        spool.register_sink("a").unwrap();
        spool
            .commit_sync(messages(0..3), &["m0", "m1", "m2"], Some(&*keys(9)))
            .unwrap();
    }
    let spool = open(&dir, 100);
    assert_eq!(ids(&spool.pending("a", 10).unwrap()), ["m0", "m1", "m2"]);
    assert_eq!(spool.sync_keys().unwrap(), Some(keys(9)));
    assert_eq!(spool.unseen(&["m0", "m1", "m2"]).unwrap(), [false; 3]);
}

#[test]
fn sinks_no_longer_configured_are_forgotten_and_free_their_backlog() {
    let dir = TempDir::new().unwrap();
    let spool = open(&dir, 100);
    spool.register_sink("kept").unwrap();
    spool.register_sink("gone").unwrap();
    spool.append(messages(0..5)).unwrap();
    let last = spool.pending("kept", 10).unwrap().last().unwrap().seq;
    spool.ack("kept", last).unwrap();
    assert_eq!(stored_entries(&spool), 5, "the lagging sink pins them");
    spool.retain_sinks(&["kept"]).unwrap();
    assert_eq!(stored_entries(&spool), 0);
    assert!(spool.pending("gone", 10).is_err(), "its cursor is gone");
    spool.append(messages(5..7)).unwrap();
    assert_eq!(spool.pending("kept", 10).unwrap().len(), 2);
    spool.retain_sinks(&[]).unwrap();
    assert_eq!(
        stored_entries(&spool),
        0,
        "with no sink left nothing is kept"
    );
}

#[test]
fn a_spool_error_keeps_the_redb_error_as_its_source() {
    let dir = tempfile::tempdir().unwrap();
    let _first = open(&dir, 10);
    let err = RedbSpool::open(&dir.path().join("spool.redb"), 10).unwrap_err();
    let source = std::error::Error::source(&err).expect("a source");
    assert!(
        source.downcast_ref::<redb::DatabaseError>().is_some(),
        "{source:?}"
    );
    // The message still says what failed and why, for logs that print only the top error.
    let message = err.to_string();
    assert!(
        message.starts_with("spool: open the spool file: "),
        "{message}"
    );
}

#[test]
fn a_held_entry_stops_each_sink_before_it_until_released() {
    let dir = TempDir::new().unwrap();
    let spool = open(&dir, 100);
    spool.register_sink("mqtt").unwrap();
    spool.register_sink("hook").unwrap();
    spool
        .commit_sync_holding(messages(0..4), &[1], &["m0", "m1", "m2", "m3"], None)
        .unwrap();
    // What came before flows; the held one and what came after wait, for every sink.
    assert_eq!(ids(&spool.pending("mqtt", 10).unwrap()), ["m0"]);
    assert_eq!(ids(&spool.pending("hook", 10).unwrap()), ["m0"]);
    spool.ack("mqtt", 1).unwrap();
    assert!(spool.pending("mqtt", 10).unwrap().is_empty());
    assert!(spool.pending_after("hook", 1, 10).unwrap().is_empty());
    assert_eq!(ids(&spool.held().unwrap()), ["m1"]);

    assert!(spool.release(2, br#"{"media":"done"}"#).unwrap());
    let pending = spool.pending("mqtt", 10).unwrap();
    assert_eq!(ids(&pending), ["m1", "m2", "m3"]);
    assert_eq!(pending[0].payload, br#"{"media":"done"}"#);
    assert_eq!(pending[0].seq, 2, "a release keeps the seq");
    assert!(spool.held().unwrap().is_empty());
    assert_eq!(
        ids(&spool.pending("hook", 10).unwrap()),
        ["m0", "m1", "m2", "m3"]
    );
}

#[test]
fn releasing_twice_or_an_unknown_seq_changes_nothing() {
    let dir = TempDir::new().unwrap();
    let spool = open(&dir, 100);
    spool.register_sink("a").unwrap();
    spool
        .commit_sync_holding(messages(0..1), &[0], &["m0"], None)
        .unwrap();
    assert!(spool.release(1, b"first").unwrap());
    assert!(!spool.release(1, b"second").unwrap());
    assert!(!spool.release(99, b"nothing").unwrap());
    assert_eq!(spool.pending("a", 10).unwrap()[0].payload, b"first");
}

#[test]
fn held_entries_survive_a_reopen_with_their_append_time() {
    let dir = TempDir::new().unwrap();
    {
        let spool = open(&dir, 100);
        spool.register_sink("a").unwrap();
        spool
            .commit_sync_at(messages(0..3), &[0, 2], &["m0", "m1", "m2"], None, T0)
            .unwrap();
    }
    let spool = open(&dir, 100);
    let held = spool.held().unwrap();
    assert_eq!(ids(&held), ["m0", "m2"]);
    assert!(held.iter().all(|e| e.appended_ms == T0));
    assert!(spool.pending("a", 10).unwrap().is_empty());
    spool.release(1, b"{}").unwrap();
    assert_eq!(ids(&spool.pending("a", 10).unwrap()), ["m0", "m1"]);
    assert_eq!(spool.pending("a", 10).unwrap()[0].appended_ms, T0);
}

#[test]
fn a_held_entry_dropped_at_the_bound_loses_its_mark_too() {
    let dir = TempDir::new().unwrap();
    let spool = open(&dir, 2);
    spool.register_sink("a").unwrap();
    spool
        .commit_sync_holding(messages(0..1), &[0], &["m0"], None)
        .unwrap();
    spool.append(messages(1..4)).unwrap();
    assert!(spool.held().unwrap().is_empty());
    assert_eq!(ids(&spool.pending("a", 10).unwrap()), ["m2", "m3"]);
    assert!(!spool.release(1, b"late").unwrap());
}

#[test]
fn with_no_sink_nothing_is_held() {
    let dir = TempDir::new().unwrap();
    let spool = open(&dir, 100);
    spool
        .commit_sync_holding(messages(0..1), &[0], &["m0"], None)
        .unwrap();
    assert!(spool.held().unwrap().is_empty());
}

#[test]
fn a_value_is_replaced_whole_and_survives_reopen() {
    let dir = TempDir::new().unwrap();
    let spool = open(&dir, 100);
    assert_eq!(spool.value("limits").unwrap(), None);
    spool.put_value("limits", b"{\"sends\":[1]}").unwrap();
    spool.put_value("limits", b"{}").unwrap();
    spool.put_value("other", b"x").unwrap();
    drop(spool);
    let spool = open(&dir, 100);
    assert_eq!(spool.value("limits").unwrap(), Some(b"{}".to_vec()));
    assert_eq!(spool.value("other").unwrap(), Some(b"x".to_vec()));
}
