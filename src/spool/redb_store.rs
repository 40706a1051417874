//! The [`Spool`] on redb: one database file (`state_dir/spool.redb`, mode 0600), every trait
//! method one transaction, every write transaction committed with `Durability::Immediate`.
//! The writer thread's groups (`Group`) commit with the durability it asks for:
//! `Durability::None`, made durable by the journal (`spool::journal`), then checkpoints.
//! Only plain `insert`/`remove`/range deletes are used (CRATES.md §2.7: redb 4 fixed data-loss
//! bugs in `get_mut` and `insert_reserve`).
//!
//! # Layout
//!
//! | table      | key → value   | holds |
//! |------------|---------------|-------|
//! | `entries`  | `u64` → bytes | seq → entry: a binary header, then the payload as published ([`codec`]) |
//! | `meta`     | str → `u64`   | `next_seq`, `next_command`: counters, never derived from the last key, so a seq or command id is never reused after deletes; `journal_generation`, `journal_applied`: how far the journal is applied (`spool::journal`) |
//! | `cursors`  | str → `u64`   | sink → last delivered seq (0 = none) |
//! | `seen`     | str → `u64`   | MsgId → unix ms first seen |
//! | `keys`     | str → bytes   | `sync` → the sync keys as the bridge encodes them (JSON `{"sync_key":…,"sync_check_key":…}`) |
//! | `commands` | `u64` → bytes | command id → the bridge's record |
//! | `results`  | str → bytes   | request_id → stored unix ms (u64 BE), then the result payload |
//! | `held`     | `u64` → ()    | seqs of entries appended *held*: no sink is handed one, or anything after it, until [`Spool::release`] |
//! | `values`   | str → bytes   | small named values the bridge keeps whole and replaces whole ([`Spool::put_value`]): `limits` → the send counts (JSON), `receipts_queued` → the queue ids whose command had its `queued` receipt (JSON), `contact_keys` → the contact key book (JSON) |
//!
//! # Retention
//!
//! - Entries every sink has acked (seq ≤ the lowest cursor) are deleted as one range, in the
//!   acking transaction.
//! - The bound: after an append, a sink more than `max_events_per_sink` behind the head has its
//!   cursor moved so exactly that many remain. The drop is reported in
//!   [`Committed::dropped`], added to the sink's in-memory counter ([`Backlog::dropped`], since
//!   the process started) and logged as a warning; never silent.
//! - With no sink registered at all, appended entries get their seqs but are not stored:
//!   nothing would ever read them, since a sink registered later starts at the head. So the
//!   bridge registers its sinks before it spools anything.
//! - `seen` marks older than 7 days are pruned at most once an hour, inside a `commit_sync`
//!   transaction; that prune scans the index, so it is kept off most commits.
//! - Stored results older than 24 hours are pruned at most once an hour, inside a
//!   `complete_command` transaction; a [`Spool::recent_result`] window past 24 h sees 24 h.
//!
//! Depth is `head − cursor` from the counters (O(1)); seqs a sink skipped still count.
//!
//! # Held entries
//!
//! A message whose media is still downloading is appended held, in the same transaction as
//! the rest of its sync answer: it has its seq, its MsgId is marked seen, the sync keys move
//! on. [`Spool::pending_after`] stops before the first held seq past the cursor, so each sink
//! keeps spool order: what came before flows, what came after waits. [`Spool::release`]
//! replaces the payload (the header, seq and append time stay) and drops the mark. A held
//! entry dropped at the bound loses its mark with it.
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use redb::{
    Database, Durability, ReadTransaction, ReadableDatabase, ReadableTable, ReadableTableMetadata,
    WriteTransaction,
};

use super::{Backlog, Committed, Entry, NewEntry, QueuedCommand, Seq, Spool, SpoolError};
pub(in crate::spool) use codec::{kind_byte, kind_of};
pub(in crate::spool) use group::Group;
use group::{
    stage_ack, stage_clear_keys, stage_enqueue, stage_put_value, stage_register, stage_retain,
};
use tables::{
    all_cursors, create_private_file, delete_through, first_held_from, next_counter, unknown_sink,
    Context, COMMANDS, CURSORS, ENTRIES, HELD, KEYS, META, NEXT_SEQ, RESULTS, SEEN, SYNC_KEYS,
    VALUES,
};

mod codec;
mod group;
mod tables;
#[cfg(test)]
mod tests;

const HOUR_MS: u64 = 60 * 60 * 1000;
/// How long a MsgId stays in the dedup index; far longer than any replay of a sync answer.
const SEEN_KEEP_MS: u64 = 7 * 24 * HOUR_MS;
/// How long a result stays available to [`Spool::recent_result`].
const RESULTS_KEEP_MS: u64 = 24 * HOUR_MS;
/// At most one prune of `seen` (and one of `results`) per this interval.
const PRUNE_EVERY_MS: u64 = HOUR_MS;

pub(in crate::spool) fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// The spool's page cache.
const SPOOL_CACHE_BYTES: usize = 4 * 1024 * 1024;

/// The redb-backed spool. `Send + Sync`; share it as `Arc<dyn Spool>`. Calls block on disk
/// (a write commit waits for fsync), and write transactions run one at a time.
#[derive(Debug)]
pub struct RedbSpool {
    db: Database,
    path: PathBuf,
    max_events_per_sink: u64,
    /// Per sink: entries dropped at the bound since open.
    dropped: Mutex<HashMap<String, u64>>,
    /// Unix ms of the last prune of `seen` (0 = not yet since open).
    seen_pruned_ms: AtomicU64,
    /// Unix ms of the last prune of `results` (0 = not yet since open).
    results_pruned_ms: AtomicU64,
}

impl RedbSpool {
    /// Creates or opens the spool file at `path` (the caller creates its 0700 directory) and
    /// makes sure every table exists. At most `max_events_per_sink` undelivered entries are
    /// kept per sink.
    pub fn open(path: &Path, max_events_per_sink: u64) -> Result<RedbSpool, SpoolError> {
        create_private_file(path)?;
        // redb's default page cache is about 1 GiB: a burst fills it with freshly written
        // pages the allocator never hands back, and RSS stays up (BENCHMARKS.md). The spool
        // is read once per sink, right after it is written, so a small cache loses nothing.
        let db = redb::Builder::new()
            .set_cache_size(SPOOL_CACHE_BYTES)
            .create(path)
            .ctx("open the spool file")?;
        let spool = RedbSpool {
            db,
            path: path.to_owned(),
            max_events_per_sink,
            dropped: Mutex::new(HashMap::new()),
            seen_pruned_ms: AtomicU64::new(0),
            results_pruned_ms: AtomicU64::new(0),
        };
        let txn = spool.write()?;
        txn.open_table(ENTRIES).ctx("create entries")?;
        txn.open_table(META).ctx("create meta")?;
        txn.open_table(CURSORS).ctx("create cursors")?;
        txn.open_table(SEEN).ctx("create seen")?;
        txn.open_table(KEYS).ctx("create keys")?;
        txn.open_table(COMMANDS).ctx("create commands")?;
        txn.open_table(RESULTS).ctx("create results")?;
        txn.open_table(HELD).ctx("create held")?;
        txn.open_table(VALUES).ctx("create values")?;
        txn.commit().ctx("commit the tables")?;
        Ok(spool)
    }

    fn write(&self) -> Result<WriteTransaction, SpoolError> {
        self.write_with(Durability::Immediate)
    }

    fn write_with(&self, durability: Durability) -> Result<WriteTransaction, SpoolError> {
        let mut txn = self.db.begin_write().ctx("begin a write")?;
        txn.set_durability(durability).ctx("set durability")?;
        Ok(txn)
    }

    /// The database file's path.
    pub(in crate::spool) fn path(&self) -> &Path {
        &self.path
    }

    fn read(&self) -> Result<ReadTransaction, SpoolError> {
        self.db.begin_read().ctx("begin a read")
    }

    /// [`Spool::commit_sync`] at `now` (unix ms).
    fn commit_sync_at(
        &self,
        entries: Vec<NewEntry>,
        held: &[u32],
        msg_ids: &[&str],
        keys: Option<&[u8]>,
        now: u64,
    ) -> Result<Committed, SpoolError> {
        if entries.is_empty() && msg_ids.is_empty() && keys.is_none() {
            return Ok(Committed::default());
        }
        let prune = due(&self.seen_pruned_ms, now);
        let txn = self.write()?;
        let committed = self.stage_sync(&txn, &entries, held, msg_ids, keys, now, prune)?;
        txn.commit().ctx("commit a sync")?;
        if prune {
            self.seen_pruned_ms.store(now, Ordering::Relaxed);
        }
        self.count_dropped(&committed.dropped);
        Ok(committed)
    }

    /// Writes a sync answer into `txn` without committing it.
    #[allow(clippy::too_many_arguments)]
    fn stage_sync(
        &self,
        txn: &WriteTransaction,
        entries: &[NewEntry],
        held: &[u32],
        msg_ids: &[&str],
        keys: Option<&[u8]>,
        now: u64,
        prune_seen: bool,
    ) -> Result<Committed, SpoolError> {
        let committed = self.stage_append(txn, entries, held, now)?;
        {
            let mut seen = txn.open_table(SEEN).ctx("open seen")?;
            for id in msg_ids {
                // Idempotent, and keeps the first time seen so a replay does not extend it.
                if seen.get(*id).ctx("read seen")?.is_none() {
                    seen.insert(*id, now).ctx("mark seen")?;
                }
            }
            if prune_seen {
                let cutoff = now.saturating_sub(SEEN_KEEP_MS);
                seen.retain(|_, first| first >= cutoff).ctx("prune seen")?;
            }
        }
        if let Some(keys) = keys {
            let mut table = txn.open_table(KEYS).ctx("open keys")?;
            table.insert(SYNC_KEYS, keys).ctx("store the sync keys")?;
        }
        Ok(committed)
    }

    /// Appends `entries` in `txn` (those whose index is in `held` marked held), then applies
    /// the bound and collects what it frees.
    fn stage_append(
        &self,
        txn: &WriteTransaction,
        entries: &[NewEntry],
        held: &[u32],
        now: u64,
    ) -> Result<Committed, SpoolError> {
        if entries.is_empty() {
            return Ok(Committed::default());
        }
        let mut meta = txn.open_table(META).ctx("open meta")?;
        let mut cursors = txn.open_table(CURSORS).ctx("open cursors")?;
        let mut table = txn.open_table(ENTRIES).ctx("open entries")?;
        let first = next_counter(&meta, NEXT_SEQ)?;
        let sinks = all_cursors(&cursors)?;
        let mut seqs = Vec::with_capacity(entries.len());
        let mut buf = Vec::new();
        for (seq, entry) in (first..).zip(entries) {
            if !sinks.is_empty() {
                codec::encode_entry(
                    entry.kind,
                    &entry.id,
                    entry.reply_to.as_deref(),
                    now,
                    &entry.payload,
                    &mut buf,
                )?;
                table.insert(seq, buf.as_slice()).ctx("append an entry")?;
            }
            seqs.push(seq);
        }
        let head = first + seqs.len() as u64 - 1;
        meta.insert(NEXT_SEQ, head + 1).ctx("advance the seq")?;
        // Unstored entries (no sink) have nobody to wait for them.
        if !held.is_empty() && !sinks.is_empty() {
            let mut marks = txn.open_table(HELD).ctx("open held")?;
            for &index in held {
                let seq = seqs.get(index as usize).copied().ok_or_else(|| {
                    SpoolError::new(format!("held entry {index} is not in the sync"))
                })?;
                marks.insert(seq, ()).ctx("hold an entry")?;
            }
        }

        let mut dropped = Vec::new();
        let mut lowest = head;
        for (sink, cursor) in sinks {
            let mut kept = cursor;
            if head.saturating_sub(cursor) > self.max_events_per_sink {
                kept = head - self.max_events_per_sink;
                cursors
                    .insert(sink.as_str(), kept)
                    .ctx("move a lagging cursor")?;
                dropped.push((sink, kept - cursor));
            }
            lowest = lowest.min(kept);
        }
        if !dropped.is_empty() {
            delete_through(&mut table, lowest)?;
            let mut marks = txn.open_table(HELD).ctx("open held")?;
            marks
                .retain_in(..=lowest, |_, _| false)
                .ctx("drop the marks of dropped entries")?;
        }
        Ok(Committed { seqs, dropped })
    }

    fn count_dropped(&self, dropped: &[(String, u64)]) {
        if dropped.is_empty() {
            return;
        }
        let mut counters = self.dropped.lock().unwrap_or_else(PoisonError::into_inner);
        for (sink, n) in dropped {
            *counters.entry(sink.clone()).or_default() += n;
            tracing::warn!(
                sink = sink.as_str(),
                dropped = n,
                max_events_per_sink = self.max_events_per_sink,
                "spool bound reached; dropped the oldest events of a lagging sink"
            );
        }
    }

    /// [`Spool::complete_command`] at `now` (unix ms).
    fn complete_command_at(
        &self,
        id: u64,
        request_id: Option<&str>,
        result_entry: NewEntry,
        now: u64,
    ) -> Result<Seq, SpoolError> {
        let prune = due(&self.results_pruned_ms, now);
        let txn = self.write()?;
        let committed = self.stage_complete(&txn, id, request_id, &result_entry, now, prune)?;
        txn.commit().ctx("commit a command result")?;
        if prune {
            self.results_pruned_ms.store(now, Ordering::Relaxed);
        }
        self.count_dropped(&committed.dropped);
        Ok(committed.seqs[0])
    }

    /// Writes a command's completion into `txn` without committing it.
    fn stage_complete(
        &self,
        txn: &WriteTransaction,
        id: u64,
        request_id: Option<&str>,
        result_entry: &NewEntry,
        now: u64,
        prune: bool,
    ) -> Result<Committed, SpoolError> {
        {
            let mut commands = txn.open_table(COMMANDS).ctx("open commands")?;
            if commands.remove(id).ctx("remove the command")?.is_none() {
                tracing::debug!(command = id, "completed a command that was not queued");
            }
        }
        {
            let mut results = txn.open_table(RESULTS).ctx("open results")?;
            if let Some(request_id) = request_id {
                let stored = codec::encode_result(now, &result_entry.payload);
                results
                    .insert(request_id, stored.as_slice())
                    .ctx("store the result")?;
            }
            if prune {
                let cutoff = now.saturating_sub(RESULTS_KEEP_MS);
                results
                    .retain(|_, v| codec::result_stored_ms(v).is_some_and(|t| t >= cutoff))
                    .ctx("prune results")?;
            }
        }
        self.stage_append(txn, std::slice::from_ref(result_entry), &[], now)
    }

    /// Writes [`Spool::release`] into `txn` without committing it.
    fn stage_release(
        &self,
        txn: &WriteTransaction,
        seq: Seq,
        payload: &[u8],
    ) -> Result<bool, SpoolError> {
        let was_held = {
            let mut marks = txn.open_table(HELD).ctx("open held")?;
            let removed = marks.remove(seq).ctx("release an entry")?.is_some();
            removed
        };
        if !was_held {
            return Ok(false);
        }
        let mut table = txn.open_table(ENTRIES).ctx("open entries")?;
        let old = match table.get(seq).ctx("read a held entry")? {
            Some(bytes) => codec::decode_entry(seq, bytes.value())?,
            // Dropped at the bound with its mark; a mark without its entry is only tidied.
            None => return Ok(false),
        };
        let mut buf = Vec::new();
        codec::encode_entry(
            old.kind,
            &old.id,
            old.reply_to.as_deref(),
            old.appended_ms,
            payload,
            &mut buf,
        )?;
        table
            .insert(seq, buf.as_slice())
            .ctx("replace a held entry")?;
        Ok(true)
    }

    /// [`Spool::recent_result`] at `now` (unix ms).
    fn recent_result_at(
        &self,
        request_id: &str,
        window: Duration,
        now: u64,
    ) -> Result<Option<Vec<u8>>, SpoolError> {
        let txn = self.read()?;
        let results = txn.open_table(RESULTS).ctx("open results")?;
        let Some(stored) = results.get(request_id).ctx("read a result")? else {
            return Ok(None);
        };
        let stored = stored.value();
        let window = u64::try_from(window.as_millis()).unwrap_or(u64::MAX);
        Ok(codec::result_stored_ms(stored)
            .filter(|&t| now.saturating_sub(t) < window)
            .map(|_| codec::result_payload(stored).to_vec()))
    }
}

/// True when the last prune recorded in `last` is at least [`PRUNE_EVERY_MS`] before `now`.
fn due(last: &AtomicU64, now: u64) -> bool {
    let last = last.load(Ordering::Relaxed);
    last == 0 || now.saturating_sub(last) >= PRUNE_EVERY_MS
}

impl Spool for RedbSpool {
    fn unseen(&self, msg_ids: &[&str]) -> Result<Vec<bool>, SpoolError> {
        let txn = self.read()?;
        let seen = txn.open_table(SEEN).ctx("open seen")?;
        msg_ids
            .iter()
            .map(|id| Ok(seen.get(*id).ctx("read seen")?.is_none()))
            .collect()
    }

    fn commit_sync_holding(
        &self,
        entries: Vec<NewEntry>,
        held: &[u32],
        msg_ids: &[&str],
        keys: Option<&[u8]>,
    ) -> Result<Committed, SpoolError> {
        self.commit_sync_at(entries, held, msg_ids, keys, now_ms())
    }

    fn release(&self, seq: Seq, payload: &[u8]) -> Result<bool, SpoolError> {
        let txn = self.write()?;
        let released = self.stage_release(&txn, seq, payload)?;
        txn.commit().ctx("commit a release")?;
        Ok(released)
    }

    fn held(&self) -> Result<Vec<Entry>, SpoolError> {
        let txn = self.read()?;
        let marks = txn.open_table(HELD).ctx("open held")?;
        let table = txn.open_table(ENTRIES).ctx("open entries")?;
        let mut out = Vec::new();
        for row in marks.iter().ctx("list held entries")? {
            let seq = row.ctx("read a held entry")?.0.value();
            if let Some(bytes) = table.get(seq).ctx("read a held entry")? {
                out.push(codec::decode_entry(seq, bytes.value())?);
            }
        }
        Ok(out)
    }

    fn sync_keys(&self) -> Result<Option<Vec<u8>>, SpoolError> {
        let txn = self.read()?;
        let table = txn.open_table(KEYS).ctx("open keys")?;
        Ok(table
            .get(SYNC_KEYS)
            .ctx("read the sync keys")?
            .map(|keys| keys.value().to_vec()))
    }

    fn clear_sync_keys(&self) -> Result<(), SpoolError> {
        let txn = self.write()?;
        stage_clear_keys(&txn)?;
        txn.commit().ctx("commit clearing the sync keys")
    }

    fn register_sink(&self, sink: &str) -> Result<(), SpoolError> {
        let txn = self.write()?;
        stage_register(&txn, sink)?;
        txn.commit().ctx("commit registering a sink")
    }

    fn retain_sinks(&self, keep: &[&str]) -> Result<(), SpoolError> {
        let txn = self.write()?;
        stage_retain(&txn, keep)?;
        txn.commit().ctx("commit forgetting sinks")
    }

    fn pending_after(
        &self,
        sink: &str,
        after: Seq,
        limit: usize,
    ) -> Result<Vec<Entry>, SpoolError> {
        let txn = self.read()?;
        let cursors = txn.open_table(CURSORS).ctx("open cursors")?;
        let cursor = cursor_of(&cursors, sink)?;
        let table = txn.open_table(ENTRIES).ctx("open entries")?;
        let from = cursor.max(after) + 1;
        let marks = txn.open_table(HELD).ctx("open held")?;
        let until = first_held_from(&marks, from)?.unwrap_or(u64::MAX);
        table
            .range(from..until)
            .ctx("read pending entries")?
            .take(limit)
            .map(|row| {
                let (seq, bytes) = row.ctx("read an entry")?;
                codec::decode_entry(seq.value(), bytes.value())
            })
            .collect()
    }

    fn ack(&self, sink: &str, seq: Seq) -> Result<(), SpoolError> {
        let txn = self.write()?;
        stage_ack(&txn, sink, seq)?;
        txn.commit().ctx("commit an ack")
    }

    fn backlog(&self, sink: &str) -> Result<Backlog, SpoolError> {
        self.backlog_after(sink, 0)
    }

    fn enqueue_command(&self, record: Vec<u8>) -> Result<u64, SpoolError> {
        let txn = self.write()?;
        let id = stage_enqueue(&txn, &record)?;
        txn.commit().ctx("commit a queued command")?;
        Ok(id)
    }

    fn queued_commands(&self, limit: usize) -> Result<Vec<QueuedCommand>, SpoolError> {
        let txn = self.read()?;
        let commands = txn.open_table(COMMANDS).ctx("open commands")?;
        commands
            .iter()
            .ctx("list commands")?
            .take(limit)
            .map(|row| {
                let (id, record) = row.ctx("read a command")?;
                Ok(QueuedCommand {
                    id: id.value(),
                    record: record.value().to_vec(),
                })
            })
            .collect()
    }

    fn queue_depth(&self) -> Result<u64, SpoolError> {
        let txn = self.read()?;
        let commands = txn.open_table(COMMANDS).ctx("open commands")?;
        commands.len().ctx("count commands")
    }

    fn complete_command(
        &self,
        id: u64,
        request_id: Option<&str>,
        result_entry: NewEntry,
    ) -> Result<Seq, SpoolError> {
        self.complete_command_at(id, request_id, result_entry, now_ms())
    }

    fn recent_result(
        &self,
        request_id: &str,
        window: Duration,
    ) -> Result<Option<Vec<u8>>, SpoolError> {
        self.recent_result_at(request_id, window, now_ms())
    }

    fn put_value(&self, name: &str, value: &[u8]) -> Result<(), SpoolError> {
        let txn = self.write()?;
        stage_put_value(&txn, name, value)?;
        txn.commit().ctx("commit a value")
    }

    fn value(&self, name: &str) -> Result<Option<Vec<u8>>, SpoolError> {
        let txn = self.read()?;
        let table = txn.open_table(VALUES).ctx("open values")?;
        Ok(table
            .get(name)
            .ctx("read a value")?
            .map(|v| v.value().to_vec()))
    }

    fn disk_size(&self) -> Result<u64, SpoolError> {
        Ok(std::fs::metadata(&self.path)
            .ctx("stat the spool file")?
            .len())
    }
}

/// `sink`'s cursor; an unknown sink is an error.
fn cursor_of(
    cursors: &impl redb::ReadableTable<&'static str, u64>,
    sink: &str,
) -> Result<Seq, SpoolError> {
    Ok(cursors
        .get(sink)
        .ctx("read a cursor")?
        .ok_or_else(|| unknown_sink(sink))?
        .value())
}
