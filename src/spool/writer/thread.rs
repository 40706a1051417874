//! The writer thread: what it is asked ([`Request`]), how it stages writes into one group
//! and answers them after the commit, and the cursor moves it holds (see the parent module).
use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use redb::Durability;
use tokio::sync::oneshot;

use super::{Counters, Read, Reply};
use crate::spool::journal::record::RecordBuf;
use crate::spool::journal::{Journal, CHECKPOINT_RECORDS};
use crate::spool::redb_store::{now_ms, Group};
use crate::spool::{Committed, NewEntry, RedbSpool, Seq, SpoolError};

/// At most this many requests are taken into one group, so replies are not held back
/// behind an unbounded stream of writes.
const MAX_GROUP: usize = 1024;

pub(super) enum Request {
    Read(Read),
    Write(Write),
    /// A cursor move nobody waits for.
    Ack {
        sink: String,
        seq: Seq,
    },
    /// A value nobody waits for, held for the next commit.
    HoldValue {
        name: String,
        value: Vec<u8>,
    },
    /// Commit what is held, then stop.
    Close(oneshot::Sender<()>),
}

/// A write whose caller waits for its commit.
pub(super) enum Write {
    Sync {
        entries: Vec<NewEntry>,
        held: Vec<u32>,
        msg_ids: Vec<String>,
        keys: Option<Vec<u8>>,
        reply: Reply<Committed>,
    },
    Release {
        seq: Seq,
        payload: Vec<u8>,
        reply: Reply<bool>,
    },
    ClearKeys(Reply<()>),
    Register {
        sink: String,
        reply: Reply<()>,
    },
    Retain {
        keep: Vec<String>,
        reply: Reply<()>,
    },
    Enqueue {
        record: Vec<u8>,
        reply: Reply<u64>,
    },
    Complete {
        id: u64,
        request_id: Option<String>,
        entry: NewEntry,
        reply: Reply<Seq>,
    },
    PutValue {
        name: String,
        value: Vec<u8>,
        reply: Reply<()>,
    },
}

/// What a write answered once staged; sent only after its commit.
enum Answer {
    Committed(Committed),
    Done,
    Id(u64),
    Released(bool),
}

impl Write {
    /// Stages this write into `group`.
    fn stage(&self, group: &mut Group<'_>) -> Result<Answer, SpoolError> {
        Ok(match self {
            Write::Sync {
                entries,
                held,
                msg_ids,
                keys,
                ..
            } => {
                let ids: Vec<&str> = msg_ids.iter().map(String::as_str).collect();
                Answer::Committed(group.sync(entries, held, &ids, keys.as_deref())?)
            }
            Write::Release { seq, payload, .. } => Answer::Released(group.release(*seq, payload)?),
            Write::ClearKeys(_) => {
                group.clear_keys()?;
                Answer::Done
            }
            Write::Register { sink, .. } => {
                group.register(sink)?;
                Answer::Done
            }
            Write::Retain { keep, .. } => {
                let keep: Vec<&str> = keep.iter().map(String::as_str).collect();
                group.retain(&keep)?;
                Answer::Done
            }
            Write::Enqueue { record, .. } => Answer::Id(group.enqueue(record)?),
            Write::Complete {
                id,
                request_id,
                entry,
                ..
            } => Answer::Id(group.complete(*id, request_id.as_deref(), entry)?),
            Write::PutValue { name, value, .. } => {
                group.put_value(name, value)?;
                Answer::Done
            }
        })
    }

    /// Writes this write into the group's journal record.
    fn record(&self, rec: &mut RecordBuf) -> Result<(), SpoolError> {
        match self {
            Write::Sync {
                entries,
                held,
                msg_ids,
                keys,
                ..
            } => rec.sync(entries, held, msg_ids, keys.as_deref()),
            Write::Release { seq, payload, .. } => rec.release(*seq, payload),
            Write::ClearKeys(_) => {
                rec.clear_keys();
                Ok(())
            }
            Write::Register { sink, .. } => rec.register(sink),
            Write::Retain { keep, .. } => rec.retain(keep),
            Write::Enqueue { record, .. } => rec.enqueue(record),
            Write::Complete {
                id,
                request_id,
                entry,
                ..
            } => rec.complete(*id, request_id.as_deref(), entry),
            Write::PutValue { name, value, .. } => rec.put_value(name, value),
        }
    }

    /// Sends the answer of a committed group.
    fn reply(self, answer: Answer) {
        // A caller that went away (shutdown) needs no answer.
        match (self, answer) {
            (Write::Sync { reply, .. }, Answer::Committed(c)) => drop(reply.send(Ok(c))),
            (Write::Release { reply, .. }, Answer::Released(r)) => drop(reply.send(Ok(r))),
            (
                Write::ClearKeys(reply)
                | Write::Register { reply, .. }
                | Write::Retain { reply, .. }
                | Write::PutValue { reply, .. },
                _,
            ) => drop(reply.send(Ok(()))),
            (Write::Enqueue { reply, .. } | Write::Complete { reply, .. }, Answer::Id(id)) => {
                drop(reply.send(Ok(id)))
            }
            (write, _) => write.fail(&SpoolError::new("a write got a mismatched answer")),
        }
    }

    fn fail(self, e: &SpoolError) {
        let e = || SpoolError::new(e.to_string());
        match self {
            Write::Sync { reply, .. } => drop(reply.send(Err(e()))),
            Write::Release { reply, .. } => drop(reply.send(Err(e()))),
            Write::ClearKeys(reply)
            | Write::Register { reply, .. }
            | Write::Retain { reply, .. }
            | Write::PutValue { reply, .. } => drop(reply.send(Err(e()))),
            Write::Enqueue { reply, .. } | Write::Complete { reply, .. } => {
                drop(reply.send(Err(e())))
            }
        }
    }
}

/// A cursor move held for the next commit.
#[derive(Debug, Clone, Copy)]
struct Held {
    /// The committed cursor when the first held move came.
    committed: Seq,
    /// The newest move.
    seq: Seq,
}

/// What a read sees: the committed spool and the cursor moves held over it.
pub(super) struct View<'a> {
    pub(super) spool: &'a RedbSpool,
    held: &'a HashMap<String, Held>,
}

impl View<'_> {
    /// How far `sink` has delivered, counting a held cursor move (0: nothing held).
    pub(super) fn delivered(&self, sink: &str) -> Seq {
        self.held.get(sink).map_or(0, |h| h.seq)
    }
}

/// The writer thread's state.
pub(super) struct Writer {
    spool: RedbSpool,
    journal: Journal,
    rx: mpsc::Receiver<Request>,
    counters: Arc<Counters>,
    /// Cursor moves not committed yet, per sink.
    held: HashMap<String, Held>,
    /// Values held for the next commit, the newest per name.
    held_values: HashMap<String, Vec<u8>>,
    /// When the oldest of `held` and `held_values` came. This thread has no tokio runtime, so tokio's
    /// `Instant` reads the real clock here even when a test pauses the runtime's.
    held_since: Option<Instant>,
    lazy_limit: u64,
    linger: Duration,
    /// When the first record of the journal's generation was written (none yet: `None`).
    journal_since: Option<Instant>,
    checkpoint_after: Duration,
    /// Set when a write could be made durable neither by the journal nor by a checkpoint:
    /// from then on every write fails (the journal would have a gap), until a restart
    /// recovers from what is durable.
    broken: Option<String>,
}

/// How the writer is tuned; the defaults in [`super::Store::spawn`].
pub(in crate::spool) struct Tuning {
    pub(in crate::spool) lazy_limit: u64,
    pub(in crate::spool) linger: Duration,
    pub(in crate::spool) checkpoint_after: Duration,
    /// The journal file's size.
    pub(in crate::spool) journal_bytes: u64,
}

impl Writer {
    /// A writer over `spool` whose `journal` has been recovered.
    pub(super) fn new(
        spool: RedbSpool,
        journal: Journal,
        rx: mpsc::Receiver<Request>,
        counters: Arc<Counters>,
        tuning: Tuning,
    ) -> Writer {
        Writer {
            spool,
            journal,
            rx,
            counters,
            held: HashMap::new(),
            held_values: HashMap::new(),
            held_since: None,
            lazy_limit: tuning.lazy_limit,
            linger: tuning.linger,
            journal_since: None,
            checkpoint_after: tuning.checkpoint_after,
            broken: None,
        }
    }

    pub(super) fn run(mut self) {
        let closed = self.serve();
        // The database is closed before `close` returns, so the file can be opened again.
        drop(self);
        if let Some(done) = closed {
            let _ = done.send(());
        }
    }

    /// How long to wait for a request before a held cursor move or a checkpoint is due (`None`:
    /// nothing is due).
    fn timeout(&self) -> Option<Duration> {
        // Counted from the oldest held move, so a stream of reads cannot put it off.
        let linger = self
            .held_since
            .map(|since| self.linger.saturating_sub(since.elapsed()));
        let checkpoint = self
            .journal_since
            .map(|since| self.checkpoint_after.saturating_sub(since.elapsed()));
        match (linger, checkpoint) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Answers requests until every handle is gone or one asks to close (answered with the
    /// sender to tell it when the database is closed).
    fn serve(&mut self) -> Option<oneshot::Sender<()>> {
        loop {
            let first = match self.timeout() {
                None => self.rx.recv().map_err(|_| RecvTimeoutError::Disconnected),
                Some(wait) => self.rx.recv_timeout(wait),
            };
            let first = match first {
                Ok(r) => r,
                Err(RecvTimeoutError::Timeout) => {
                    if self.overdue() {
                        self.commit(Vec::new());
                    }
                    self.checkpoint_if_due(false);
                    continue;
                }
                Err(RecvTimeoutError::Disconnected) => {
                    // Every handle is gone: nothing can ask any more, but what is held must
                    // not be lost.
                    self.commit(Vec::new());
                    self.checkpoint_if_due(true);
                    return None;
                }
            };
            let mut writes = Vec::new();
            let mut urgent = false;
            let mut close = None;
            let mut next = Some(first);
            let mut taken = 0;
            while let Some(request) = next.take() {
                taken += 1;
                match request {
                    Request::Read(read) => read(&View {
                        spool: &self.spool,
                        held: &self.held,
                    }),
                    Request::Write(w) => {
                        if let Write::PutValue { name, .. } = &w {
                            // A value held before this put is older: the put replaces it.
                            self.held_values.remove(name);
                        }
                        writes.push(w);
                    }
                    Request::Ack { sink, seq } => urgent |= self.hold(sink, seq),
                    Request::HoldValue { name, value } => {
                        self.held_values.insert(name, value);
                        self.held_since.get_or_insert_with(Instant::now);
                    }
                    Request::Close(done) => {
                        close = Some(done);
                        break;
                    }
                }
                if taken < MAX_GROUP {
                    next = self.rx.try_recv().ok();
                }
            }
            if !writes.is_empty() || urgent || self.overdue() || close.is_some() {
                self.commit(writes);
            }
            self.checkpoint_if_due(close.is_some());
            if close.is_some() {
                return close;
            }
        }
    }

    /// Whether the oldest held cursor move has waited its linger out.
    fn overdue(&self) -> bool {
        self.held_since
            .is_some_and(|since| since.elapsed() >= self.linger)
    }

    /// Holds `sink`'s cursor move; true when it has gone more than a flight past the committed
    /// cursor and must be committed now.
    fn hold(&mut self, sink: String, seq: Seq) -> bool {
        let held = match self.held.get_mut(&sink) {
            Some(held) => held,
            None => {
                let committed = match self.spool.cursor(&sink) {
                    Ok(c) => c,
                    Err(e) => {
                        tracing::error!(sink = %sink, cause = %e, "cannot advance the cursor");
                        return false;
                    }
                };
                self.held.entry(sink).or_insert(Held { committed, seq: 0 })
            }
        };
        held.seq = held.seq.max(seq);
        let urgent = held.seq.saturating_sub(held.committed) > self.lazy_limit;
        self.held_since.get_or_insert_with(Instant::now);
        urgent
    }

    /// Makes `writes`, every held cursor move and every held value durable in one group;
    /// answers the writes after it. If the group fails, each item gets a group of its own, so
    /// each caller gets its own outcome.
    fn commit(&mut self, writes: Vec<Write>) {
        if writes.is_empty() && self.held.is_empty() && self.held_values.is_empty() {
            return;
        }
        let held = std::mem::take(&mut self.held);
        let values = std::mem::take(&mut self.held_values);
        self.held_since = None;
        match self.durable(&writes, &held, &values) {
            Ok(answers) => {
                for (write, answer) in writes.into_iter().zip(answers) {
                    write.reply(answer);
                }
            }
            Err(e) => {
                tracing::debug!(cause = %e, "a group commit failed; committing its items one by one");
                for write in writes {
                    match self.durable(
                        std::slice::from_ref(&write),
                        &HashMap::new(),
                        &HashMap::new(),
                    ) {
                        Ok(mut answers) => write.reply(answers.remove(0)),
                        Err(e) => write.fail(&e),
                    }
                }
                for (sink, held) in held {
                    let one = HashMap::from([(sink, held)]);
                    if let Err(e) = self.durable(&[], &one, &HashMap::new()) {
                        let sink = one.keys().next().map_or("", String::as_str);
                        tracing::error!(sink, cause = %e, "cannot advance the cursor");
                    }
                }
                for (name, value) in values {
                    let one = HashMap::from([(name, value)]);
                    if let Err(e) = self.durable(&[], &HashMap::new(), &one) {
                        let name = one.keys().next().map_or("", String::as_str);
                        tracing::error!(name, cause = %e, "cannot store a value");
                    }
                }
            }
        }
    }

    /// Stages `writes`, `held` and `values` into one group, commits it without durability
    /// (readable at once, nothing written to the spool file), then makes it durable: one
    /// journal record and an fdatasync, or a checkpoint when the record does not fit (see
    /// `spool::journal`). The answers come in the order of `writes`.
    fn durable(
        &mut self,
        writes: &[Write],
        held: &HashMap<String, Held>,
        values: &HashMap<String, Vec<u8>>,
    ) -> Result<Vec<Answer>, SpoolError> {
        if let Some(why) = &self.broken {
            return Err(SpoolError::new(why.clone()));
        }
        let now = now_ms();
        let mut record = RecordBuf::new(now);
        let mut group = self.spool.group_at(now, Durability::None)?;
        let mut answers = Vec::with_capacity(writes.len());
        for write in writes {
            write.record(&mut record)?;
            answers.push(write.stage(&mut group)?);
        }
        for (sink, held) in held {
            record.ack(sink, held.seq)?;
            group.ack(sink, held.seq)?;
        }
        for (name, value) in values {
            record.put_value(name, value)?;
            group.put_value(name, value)?;
        }
        let journaled = self.journal.fits(record.bytes().len());
        if journaled {
            group.journaled(self.journal.generation(), self.journal.next_index())?;
        }
        group.commit()?;
        // Readable from here on; durable once the record is synced or a checkpoint is made.
        let appended = if journaled {
            self.journal.append(record.bytes())
        } else {
            Err(SpoolError::new(
                "the group's record does not fit in the journal",
            ))
        };
        match appended {
            Ok(()) => {
                self.counters.fsynced();
                self.journal_since.get_or_insert_with(Instant::now);
            }
            Err(e) => {
                if journaled {
                    tracing::warn!(cause = %e, "cannot append to the spool journal; checkpointing instead");
                }
                if let Err(e) = self.checkpoint() {
                    let why = format!(
                        "the spool cannot make writes durable any more ({e}); restart the bridge"
                    );
                    tracing::error!("{why}");
                    self.broken = Some(why);
                    return Err(e);
                }
            }
        }
        self.counters.commits.fetch_add(1, Ordering::Relaxed);
        Ok(answers)
    }

    /// A durable redb commit of everything so far, and a new journal generation.
    fn checkpoint(&mut self) -> Result<(), SpoolError> {
        let generation = self.journal.generation() + 1;
        self.spool.checkpoint(generation)?;
        self.counters.fsynced();
        self.journal.start(generation);
        self.journal_since = None;
        Ok(())
    }

    /// Checkpoints when the journal holds [`CHECKPOINT_RECORDS`] records, when its first
    /// record is older than the checkpoint interval, or (`closing`) when it holds any.
    fn checkpoint_if_due(&mut self, closing: bool) {
        let records = self.journal.records();
        let due = records >= CHECKPOINT_RECORDS
            || (records > 0 && closing)
            || self
                .journal_since
                .is_some_and(|since| since.elapsed() >= self.checkpoint_after);
        if !due {
            return;
        }
        if self.broken.is_some() {
            // Nothing more is written; no timer should keep waking the thread.
            self.journal_since = None;
        } else if let Err(e) = self.checkpoint() {
            // The journal keeps its records (a restart replays them); tried again after
            // another interval, or when the next record does not fit.
            tracing::warn!(cause = %e, "a spool checkpoint failed; the journal keeps its records");
            self.journal_since = Some(Instant::now());
        }
    }
}
