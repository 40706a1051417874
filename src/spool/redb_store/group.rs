//! Group commit on the redb spool: several writes staged into one write transaction, for the
//! writer thread ([`crate::spool::Store`]), which commits it without durability and makes it
//! durable with one journal append (`spool::journal`), or durably when the journal cannot. Each
//! write is also a transaction of its own through the [`Spool`](crate::spool::Spool) trait;
//! both paths stage through the same functions here and in the parent module.
use std::sync::atomic::Ordering;

use redb::{Durability, ReadableTable, WriteTransaction};

use super::tables::{
    all_cursors, delete_through, head, next_counter, Context, COMMANDS, CURSORS, ENTRIES,
    JOURNAL_APPLIED, JOURNAL_GENERATION, KEYS, META, NEXT_COMMAND, SYNC_KEYS, VALUES,
};
use super::{codec, cursor_of, due, RedbSpool};
use crate::spool::{Backlog, Committed, NewEntry, Seq, SpoolError};

/// Writes staged into one open transaction; nothing is visible or durable before
/// [`Group::commit`]. Dropping a group aborts all of it.
pub(in crate::spool) struct Group<'a> {
    spool: &'a RedbSpool,
    txn: WriteTransaction,
    now: u64,
    /// Whether the hourly prune of `seen` (of `results`) is due and not yet done in this group.
    prune_seen: bool,
    prune_results: bool,
    pruned_seen: bool,
    pruned_results: bool,
    dropped: Vec<(String, u64)>,
}

impl RedbSpool {
    /// Opens a group: one write transaction for what the writer has pending, staged as at
    /// `now` (unix ms), committed with `durability`.
    pub(in crate::spool) fn group_at(
        &self,
        now: u64,
        durability: Durability,
    ) -> Result<Group<'_>, SpoolError> {
        Ok(Group {
            spool: self,
            txn: self.write_with(durability)?,
            now,
            prune_seen: due(&self.seen_pruned_ms, now),
            prune_results: due(&self.results_pruned_ms, now),
            pruned_seen: false,
            pruned_results: false,
            dropped: Vec::new(),
        })
    }

    /// Where the journal stands in the last commit: its generation and the last record of it
    /// applied (both 0 in a spool that never had a journal).
    pub(in crate::spool) fn journal_position(&self) -> Result<(u64, u64), SpoolError> {
        let txn = self.read()?;
        let meta = txn.open_table(META).ctx("open meta")?;
        let get =
            |key| Ok::<_, SpoolError>(meta.get(key).ctx("read meta")?.map_or(0, |v| v.value()));
        Ok((get(JOURNAL_GENERATION)?, get(JOURNAL_APPLIED)?))
    }

    /// A durable commit of everything committed so far that starts journal `generation`: the
    /// journal's older records are all in it.
    pub(in crate::spool) fn checkpoint(&self, generation: u64) -> Result<(), SpoolError> {
        let txn = self.write()?;
        {
            let mut meta = txn.open_table(META).ctx("open meta")?;
            meta.insert(JOURNAL_GENERATION, generation)
                .ctx("start a journal generation")?;
            meta.insert(JOURNAL_APPLIED, 0)
                .ctx("start a journal generation")?;
        }
        txn.commit().ctx("commit a checkpoint")
    }

    /// `sink`'s committed cursor.
    pub(in crate::spool) fn cursor(&self, sink: &str) -> Result<Seq, SpoolError> {
        let txn = self.read()?;
        let cursors = txn.open_table(CURSORS).ctx("open cursors")?;
        cursor_of(&cursors, sink)
    }

    /// `sink`'s backlog as if its cursor were at least `delivered` (a cursor move the writer
    /// holds but has not committed yet).
    pub(in crate::spool) fn backlog_after(
        &self,
        sink: &str,
        delivered: Seq,
    ) -> Result<Backlog, SpoolError> {
        let txn = self.read()?;
        let meta = txn.open_table(META).ctx("open meta")?;
        let cursors = txn.open_table(CURSORS).ctx("open cursors")?;
        let cursor = cursor_of(&cursors, sink)?.max(delivered);
        let table = txn.open_table(ENTRIES).ctx("open entries")?;
        let oldest_ms = match table
            .range(cursor + 1..)
            .ctx("read the oldest entry")?
            .next()
        {
            Some(row) => {
                let (seq, bytes) = row.ctx("read an entry")?;
                Some(codec::entry_appended_ms(seq.value(), bytes.value())?)
            }
            None => None,
        };
        let dropped = self
            .dropped
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(sink)
            .copied()
            .unwrap_or(0);
        Ok(Backlog {
            depth: head(&meta)?.saturating_sub(cursor),
            oldest_ms,
            dropped,
        })
    }
}

impl Group<'_> {
    /// Stages [`Spool::commit_sync`](crate::spool::Spool::commit_sync). The seqs answered hold
    /// once the group commits.
    pub(in crate::spool) fn sync(
        &mut self,
        entries: &[NewEntry],
        held: &[u32],
        msg_ids: &[&str],
        keys: Option<&[u8]>,
    ) -> Result<Committed, SpoolError> {
        let prune = self.prune_seen && !self.pruned_seen;
        let committed = self
            .spool
            .stage_sync(&self.txn, entries, held, msg_ids, keys, self.now, prune)?;
        self.pruned_seen |= prune;
        self.dropped.extend(committed.dropped.iter().cloned());
        Ok(committed)
    }

    /// Stages [`Spool::complete_command`](crate::spool::Spool::complete_command).
    pub(in crate::spool) fn complete(
        &mut self,
        id: u64,
        request_id: Option<&str>,
        result_entry: &NewEntry,
    ) -> Result<Seq, SpoolError> {
        let prune = self.prune_results && !self.pruned_results;
        let committed =
            self.spool
                .stage_complete(&self.txn, id, request_id, result_entry, self.now, prune)?;
        self.pruned_results |= prune;
        self.dropped.extend(committed.dropped.iter().cloned());
        Ok(committed.seqs[0])
    }

    /// Stages [`Spool::release`](crate::spool::Spool::release).
    pub(in crate::spool) fn release(
        &mut self,
        seq: Seq,
        payload: &[u8],
    ) -> Result<bool, SpoolError> {
        self.spool.stage_release(&self.txn, seq, payload)
    }

    /// Stages [`Spool::ack`](crate::spool::Spool::ack).
    pub(in crate::spool) fn ack(&mut self, sink: &str, seq: Seq) -> Result<(), SpoolError> {
        stage_ack(&self.txn, sink, seq)
    }

    /// Stages [`Spool::register_sink`](crate::spool::Spool::register_sink).
    pub(in crate::spool) fn register(&mut self, sink: &str) -> Result<(), SpoolError> {
        stage_register(&self.txn, sink)
    }

    /// Stages [`Spool::retain_sinks`](crate::spool::Spool::retain_sinks).
    pub(in crate::spool) fn retain(&mut self, keep: &[&str]) -> Result<(), SpoolError> {
        stage_retain(&self.txn, keep)
    }

    /// Stages [`Spool::clear_sync_keys`](crate::spool::Spool::clear_sync_keys).
    pub(in crate::spool) fn clear_keys(&mut self) -> Result<(), SpoolError> {
        stage_clear_keys(&self.txn)
    }

    /// Stages [`Spool::enqueue_command`](crate::spool::Spool::enqueue_command).
    pub(in crate::spool) fn enqueue(&mut self, record: &[u8]) -> Result<u64, SpoolError> {
        stage_enqueue(&self.txn, record)
    }

    /// Stages [`Spool::put_value`](crate::spool::Spool::put_value).
    pub(in crate::spool) fn put_value(
        &mut self,
        name: &str,
        value: &[u8],
    ) -> Result<(), SpoolError> {
        stage_put_value(&self.txn, name, value)
    }

    /// Records in the group that it is journal record `index` of `generation`, so that a
    /// recovery never applies that record again on top of it.
    pub(in crate::spool) fn journaled(
        &mut self,
        generation: u64,
        index: u64,
    ) -> Result<(), SpoolError> {
        let mut meta = self.txn.open_table(META).ctx("open meta")?;
        meta.insert(JOURNAL_GENERATION, generation)
            .ctx("record the journal position")?;
        meta.insert(JOURNAL_APPLIED, index)
            .ctx("record the journal position")?;
        Ok(())
    }

    /// Commits everything staged with the group's durability (`Immediate`: one fsync).
    pub(in crate::spool) fn commit(self) -> Result<(), SpoolError> {
        self.txn.commit().ctx("commit a group of writes")?;
        if self.pruned_seen {
            self.spool.seen_pruned_ms.store(self.now, Ordering::Relaxed);
        }
        if self.pruned_results {
            self.spool
                .results_pruned_ms
                .store(self.now, Ordering::Relaxed);
        }
        self.spool.count_dropped(&self.dropped);
        Ok(())
    }
}

pub(in crate::spool::redb_store) fn stage_clear_keys(
    txn: &WriteTransaction,
) -> Result<(), SpoolError> {
    let mut table = txn.open_table(KEYS).ctx("open keys")?;
    table.remove(SYNC_KEYS).ctx("clear the sync keys")?;
    Ok(())
}

pub(in crate::spool::redb_store) fn stage_register(
    txn: &WriteTransaction,
    sink: &str,
) -> Result<(), SpoolError> {
    let meta = txn.open_table(META).ctx("open meta")?;
    let mut cursors = txn.open_table(CURSORS).ctx("open cursors")?;
    if cursors.get(sink).ctx("read a cursor")?.is_some() {
        return Ok(());
    }
    cursors
        .insert(sink, head(&meta)?)
        .ctx("register the sink")?;
    Ok(())
}

pub(in crate::spool::redb_store) fn stage_retain(
    txn: &WriteTransaction,
    keep: &[&str],
) -> Result<(), SpoolError> {
    let mut cursors = txn.open_table(CURSORS).ctx("open cursors")?;
    let gone: Vec<String> = all_cursors(&cursors)?
        .into_iter()
        .map(|(name, _)| name)
        .filter(|name| !keep.contains(&name.as_str()))
        .collect();
    for name in &gone {
        tracing::info!(sink = %name, "forgetting a sink that is no longer configured");
        cursors.remove(name.as_str()).ctx("forget a cursor")?;
    }
    // With no sink left, nothing will ever read an entry.
    let lowest = all_cursors(&cursors)?
        .into_iter()
        .map(|(_, c)| c)
        .min()
        .unwrap_or(u64::MAX);
    let mut table = txn.open_table(ENTRIES).ctx("open entries")?;
    delete_through(&mut table, lowest)
}

pub(in crate::spool::redb_store) fn stage_ack(
    txn: &WriteTransaction,
    sink: &str,
    seq: Seq,
) -> Result<(), SpoolError> {
    let meta = txn.open_table(META).ctx("open meta")?;
    let mut cursors = txn.open_table(CURSORS).ctx("open cursors")?;
    let cursor = cursor_of(&cursors, sink)?;
    // Past the head would make the sink skip entries not yet appended.
    let seq = seq.min(head(&meta)?);
    if seq <= cursor {
        return Ok(());
    }
    cursors.insert(sink, seq).ctx("advance the cursor")?;
    let lowest = all_cursors(&cursors)?
        .into_iter()
        .map(|(_, c)| c)
        .min()
        .unwrap_or(seq);
    let mut table = txn.open_table(ENTRIES).ctx("open entries")?;
    delete_through(&mut table, lowest)
}

pub(in crate::spool::redb_store) fn stage_enqueue(
    txn: &WriteTransaction,
    record: &[u8],
) -> Result<u64, SpoolError> {
    let mut meta = txn.open_table(META).ctx("open meta")?;
    let mut commands = txn.open_table(COMMANDS).ctx("open commands")?;
    let id = next_counter(&meta, NEXT_COMMAND)?;
    commands.insert(id, record).ctx("queue the command")?;
    meta.insert(NEXT_COMMAND, id + 1)
        .ctx("advance the command id")?;
    Ok(id)
}

pub(in crate::spool::redb_store) fn stage_put_value(
    txn: &WriteTransaction,
    name: &str,
    value: &[u8],
) -> Result<(), SpoolError> {
    let mut table = txn.open_table(VALUES).ctx("open values")?;
    table.insert(name, value).ctx("store a value")?;
    Ok(())
}
