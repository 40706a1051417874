//! The spool as async code sees it: a [`Store`] handle that sends every spool call to one
//! thread of its own, so no tokio worker ever waits on redb or on an fsync (on an SD card an
//! fsync takes tens of milliseconds, and a blocked worker stalls every link it runs).
//!
//! # Group commit
//!
//! The writer takes what is pending when it wakes — a sync's events, MsgIds and keys, queued
//! or completed commands, named values, sink registrations, cursor moves of several sinks —
//! stages it into one redb transaction and makes it durable with one fdatasync: of the
//! journal, which holds the group's writes as one record (see the `journal` module; now and
//! then a checkpoint, a durable redb commit, instead). A caller's reply comes only after that: the bridge awaits
//! its sync's commit before the next webwxsync goes out, which acknowledges the answer to
//! WeChat, so an answer is never lost.
//!
//! Reads (pending entries, backlogs, the queue, the dedup index) run on the same thread,
//! before the writes of the same wake-up: a read never sees a write whose caller has not had
//! its reply.
//!
//! # Cursor moves ride along
//!
//! [`Store::ack`] does not wait: the writer holds the sink's new cursor and commits it with
//! the next durable commit (in steady traffic the next sync's, a few milliseconds later), or
//! on its own after [`ACK_LINGER`] with nothing else to commit, or at once when the sink has
//! moved more than one flight (the `lazy_limit` given to [`Store::spawn`], the delivery loop's
//! window) past its committed cursor. Reads see the held cursor, so a sink never reads again
//! what it delivered. The price is bounded: after a crash a sink may be handed again what it
//! had in flight **and at most one more flight** of entries it had delivered, whose cursor
//! move was not committed yet. Sinks publish with idempotency keys, so such a repeat is
//! dropped by a JetStream stream or a webhook receiver that deduplicates. [`Store::close`]
//! commits the held cursors, so a graceful stop repeats nothing.
//!
//! A value given to [`Store::hold_value`] rides along the same way (with the same linger):
//! the send counts, which then share the fsync of the result asked for right after them.
//! Reads see it only once it is committed.
//!
//! # Errors
//!
//! A write that fails in a group does not fail the others: the writer abandons the group's
//! transaction and hands every item back, then makes each durable in a group of its own, so
//! each caller gets its own outcome. If a group can be made durable neither by the journal nor
//! by a checkpoint, every later write fails (the journal would have a gap) until a restart
//! recovers from what is durable.
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::oneshot;

use super::journal::{self, Journal, CAPACITY, CHECKPOINT_AFTER};
use super::{
    Backlog, Committed, Entry, NewEntry, QueuedCommand, RedbSpool, Seq, Spool, SpoolError,
};
pub(in crate::spool) use thread::Tuning;
use thread::{Request, View, Write, Writer};

#[cfg(test)]
mod tests;
mod thread;

/// How long a held cursor move waits for another commit to ride on before it is committed on
/// its own.
pub const ACK_LINGER: Duration = Duration::from_secs(1);

type Reply<T> = oneshot::Sender<Result<T, SpoolError>>;

/// A read, run on the writer thread; it sends its own reply.
type Read = Box<dyn FnOnce(&View<'_>) + Send>;

/// The spool's handle for async code; cheap to clone. Every call is queued in call order to
/// the writer thread (the request is sent when the method is called, before its future is
/// first polled) and answered from there; see the module docs.
#[derive(Clone)]
pub struct Store {
    tx: mpsc::Sender<Request>,
    counters: Arc<Counters>,
    reads: Arc<AtomicU64>,
}

/// What the writer counts, for tests, the benchmark and `/metrics`.
#[derive(Debug, Default)]
struct Counters {
    /// Groups made durable.
    commits: AtomicU64,
    /// Journal fdatasyncs and durable redb commits.
    fsyncs: AtomicU64,
}

impl Counters {
    fn fsynced(&self) {
        self.fsyncs.fetch_add(1, Ordering::Relaxed);
        crate::metrics::spool_fsync();
    }
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("commits", &self.commits())
            .field("fsyncs", &self.fsyncs())
            .finish_non_exhaustive()
    }
}

fn stopped() -> SpoolError {
    SpoolError::new("the spool's writer has stopped")
}

impl Store {
    /// Recovers `spool` from its journal (`spool.journal` next to the database file; see the
    /// `journal` module) and starts the writer thread over it. A sink's cursor move is
    /// committed at once when it is more than `lazy_limit` entries past its committed cursor
    /// (see the module docs).
    pub fn spawn(spool: RedbSpool, lazy_limit: u64) -> Result<Store, SpoolError> {
        Store::spawn_tuned(
            spool,
            Tuning {
                lazy_limit,
                linger: ACK_LINGER,
                checkpoint_after: CHECKPOINT_AFTER,
                journal_bytes: CAPACITY,
            },
        )
    }

    /// [`Store::spawn`] with held cursor moves committed on their own after `linger`.
    #[cfg(test)]
    fn spawn_lingering(
        spool: RedbSpool,
        lazy_limit: u64,
        linger: Duration,
    ) -> Result<Store, SpoolError> {
        Store::spawn_tuned(
            spool,
            Tuning {
                lazy_limit,
                linger,
                checkpoint_after: CHECKPOINT_AFTER,
                journal_bytes: CAPACITY,
            },
        )
    }

    pub(in crate::spool) fn spawn_tuned(
        spool: RedbSpool,
        tuning: Tuning,
    ) -> Result<Store, SpoolError> {
        let counters = Arc::new(Counters::default());
        let path = spool.path().with_extension("journal");
        let mut journal = Journal::open(&path, tuning.journal_bytes)?;
        journal::recover(&spool, &mut journal)?;
        counters.fsynced();
        let (tx, rx) = mpsc::channel();
        let writer = Writer::new(spool, journal, rx, counters.clone(), tuning);
        // Its fsyncs count for the account whose spool this is.
        let account = crate::metrics::current();
        std::thread::Builder::new()
            .name("spool-writer".into())
            .spawn(move || crate::metrics::within(account, || writer.run()))
            .map_err(|e| SpoolError::caused_by("start the spool's writer thread", e))?;
        Ok(Store {
            tx,
            counters,
            reads: Arc::default(),
        })
    }

    /// How many groups of writes the writer has made durable (for tests and the benchmark).
    pub fn commits(&self) -> u64 {
        self.counters.commits.load(Ordering::Relaxed)
    }

    /// How many times the writer has synced to storage: journal appends and durable redb
    /// commits (`wxbridge_spool_fsyncs_total`).
    pub fn fsyncs(&self) -> u64 {
        self.counters.fsyncs.load(Ordering::Relaxed)
    }

    /// How many reads have been sent to the writer (for tests: each is a trip to its thread).
    pub fn reads(&self) -> u64 {
        self.reads.load(Ordering::Relaxed)
    }

    fn request<T: Send + 'static>(
        &self,
        make: impl FnOnce(Reply<T>) -> Request,
    ) -> impl Future<Output = Result<T, SpoolError>> + Send + 'static {
        let (reply, rx) = oneshot::channel();
        let sent = self.tx.send(make(reply)).is_ok();
        async move {
            if !sent {
                return Err(stopped());
            }
            rx.await.map_err(|_| stopped())?
        }
    }

    fn write<T: Send + 'static>(
        &self,
        make: impl FnOnce(Reply<T>) -> Write,
    ) -> impl Future<Output = Result<T, SpoolError>> + Send + 'static {
        self.request(|reply| Request::Write(make(reply)))
    }

    fn read<T: Send + 'static>(
        &self,
        f: impl FnOnce(&View<'_>) -> Result<T, SpoolError> + Send + 'static,
    ) -> impl Future<Output = Result<T, SpoolError>> + Send + 'static {
        self.reads.fetch_add(1, Ordering::Relaxed);
        self.request(|reply| {
            Request::Read(Box::new(move |view: &View<'_>| drop(reply.send(f(view)))))
        })
    }

    /// [`Spool::unseen`].
    pub fn unseen(
        &self,
        msg_ids: Vec<String>,
    ) -> impl Future<Output = Result<Vec<bool>, SpoolError>> + Send + 'static {
        self.read(move |v| {
            let ids: Vec<&str> = msg_ids.iter().map(String::as_str).collect();
            v.spool.unseen(&ids)
        })
    }

    /// [`Spool::commit_sync`]; answers once the commit is durable.
    pub fn commit_sync(
        &self,
        entries: Vec<NewEntry>,
        msg_ids: Vec<String>,
        keys: Option<Vec<u8>>,
    ) -> impl Future<Output = Result<Committed, SpoolError>> + Send + 'static {
        self.commit_sync_holding(entries, Vec::new(), msg_ids, keys)
    }

    /// [`Spool::commit_sync_holding`]; answers once the commit is durable. Holding costs no
    /// commit of its own: the held entries ride in the sync's group.
    pub fn commit_sync_holding(
        &self,
        entries: Vec<NewEntry>,
        held: Vec<u32>,
        msg_ids: Vec<String>,
        keys: Option<Vec<u8>>,
    ) -> impl Future<Output = Result<Committed, SpoolError>> + Send + 'static {
        self.write(|reply| Write::Sync {
            entries,
            held,
            msg_ids,
            keys,
            reply,
        })
    }

    /// [`Spool::release`]; answers once the commit is durable. The caller wakes the delivery
    /// loops.
    pub fn release(
        &self,
        seq: Seq,
        payload: Vec<u8>,
    ) -> impl Future<Output = Result<bool, SpoolError>> + Send + 'static {
        self.write(move |reply| Write::Release {
            seq,
            payload,
            reply,
        })
    }

    /// [`Spool::held`].
    pub fn held(&self) -> impl Future<Output = Result<Vec<Entry>, SpoolError>> + Send + 'static {
        self.read(|v| v.spool.held())
    }

    /// [`Spool::append`]; answers once the commit is durable.
    pub fn append(
        &self,
        entries: Vec<NewEntry>,
    ) -> impl Future<Output = Result<Committed, SpoolError>> + Send + 'static {
        self.commit_sync(entries, Vec::new(), None)
    }

    /// [`Spool::sync_keys`].
    pub fn sync_keys(
        &self,
    ) -> impl Future<Output = Result<Option<Vec<u8>>, SpoolError>> + Send + 'static {
        self.read(|v| v.spool.sync_keys())
    }

    /// [`Spool::clear_sync_keys`].
    pub fn clear_sync_keys(&self) -> impl Future<Output = Result<(), SpoolError>> + Send + 'static {
        self.write(Write::ClearKeys)
    }

    /// [`Spool::register_sink`].
    pub fn register_sink(
        &self,
        sink: &str,
    ) -> impl Future<Output = Result<(), SpoolError>> + Send + 'static {
        let sink = sink.to_owned();
        self.write(|reply| Write::Register { sink, reply })
    }

    /// [`Spool::retain_sinks`].
    pub fn retain_sinks(
        &self,
        keep: Vec<String>,
    ) -> impl Future<Output = Result<(), SpoolError>> + Send + 'static {
        self.write(|reply| Write::Retain { keep, reply })
    }

    /// [`Spool::pending`], after the sink's held cursor move if any.
    pub fn pending(
        &self,
        sink: &str,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<Entry>, SpoolError>> + Send + 'static {
        self.pending_after(sink, 0, limit)
    }

    /// [`Spool::pending_after`], after the sink's held cursor move if any.
    pub fn pending_after(
        &self,
        sink: &str,
        after: Seq,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<Entry>, SpoolError>> + Send + 'static {
        let sink = sink.to_owned();
        self.read(move |v| {
            let after = after.max(v.delivered(&sink));
            v.spool.pending_after(&sink, after, limit)
        })
    }

    /// [`Spool::ack`], without waiting: the cursor move rides on the next durable commit (see
    /// the module docs for when it is committed and what a crash can repeat). An error is
    /// logged by the writer; the sink's next move supersedes this one.
    pub fn ack(&self, sink: &str, seq: Seq) {
        // A stopped writer has committed what it held; nothing more can be done here.
        let _ = self.tx.send(Request::Ack {
            sink: sink.to_owned(),
            seq,
        });
    }

    /// [`Spool::backlog`], counting the sink's held cursor move.
    pub fn backlog(
        &self,
        sink: &str,
    ) -> impl Future<Output = Result<Backlog, SpoolError>> + Send + 'static {
        let sink = sink.to_owned();
        self.read(move |v| v.spool.backlog_after(&sink, v.delivered(&sink)))
    }

    /// [`Spool::enqueue_command`]; answers once the commit is durable.
    pub fn enqueue_command(
        &self,
        record: Vec<u8>,
    ) -> impl Future<Output = Result<u64, SpoolError>> + Send + 'static {
        self.write(|reply| Write::Enqueue { record, reply })
    }

    /// [`Spool::queued_commands`].
    pub fn queued_commands(
        &self,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<QueuedCommand>, SpoolError>> + Send + 'static {
        self.read(move |v| v.spool.queued_commands(limit))
    }

    /// [`Spool::queue_depth`].
    pub fn queue_depth(&self) -> impl Future<Output = Result<u64, SpoolError>> + Send + 'static {
        self.read(|v| v.spool.queue_depth())
    }

    /// [`Spool::complete_command`]; answers once the commit is durable.
    pub fn complete_command(
        &self,
        id: u64,
        request_id: Option<String>,
        entry: NewEntry,
    ) -> impl Future<Output = Result<Seq, SpoolError>> + Send + 'static {
        self.write(move |reply| Write::Complete {
            id,
            request_id,
            entry,
            reply,
        })
    }

    /// [`Spool::recent_result`].
    pub fn recent_result(
        &self,
        request_id: &str,
        window: Duration,
    ) -> impl Future<Output = Result<Option<Vec<u8>>, SpoolError>> + Send + 'static {
        let request_id = request_id.to_owned();
        self.read(move |v| v.spool.recent_result(&request_id, window))
    }

    /// [`Spool::put_value`]; answers once the commit is durable. Queued when called, like
    /// every call here: a caller that drops the future without awaiting it still has the
    /// value ride in the next group, before any write asked for after it.
    pub fn put_value(
        &self,
        name: &str,
        value: Vec<u8>,
    ) -> impl Future<Output = Result<(), SpoolError>> + Send + 'static {
        let name = name.to_owned();
        self.write(|reply| Write::PutValue { name, value, reply })
    }

    /// [`Spool::put_value`], without waiting: the writer holds the value (the newest per
    /// name) and stages it into its next group commit, whatever write that commit is for, or
    /// commits it on its own after [`ACK_LINGER`] with nothing else to commit, or at close.
    /// Unlike [`Store::put_value`], it does not make the writer commit now: a caller that
    /// asks for another write right after (a send's count, then its result) has both made
    /// durable by one fsync, the value never after the write. An error is logged by the
    /// writer.
    pub fn hold_value(&self, name: &str, value: Vec<u8>) {
        // A stopped writer cannot store it; nothing more can be done here.
        let _ = self.tx.send(Request::HoldValue {
            name: name.to_owned(),
            value,
        });
    }

    /// [`Spool::value`].
    pub fn value(
        &self,
        name: &str,
    ) -> impl Future<Output = Result<Option<Vec<u8>>, SpoolError>> + Send + 'static {
        let name = name.to_owned();
        self.read(move |v| v.spool.value(&name))
    }

    /// [`Spool::disk_size`].
    pub fn disk_size(&self) -> impl Future<Output = Result<u64, SpoolError>> + Send + 'static {
        self.read(|v| v.spool.disk_size())
    }

    /// Commits the held cursor moves and stops the writer; later calls fail. Returns once the
    /// writer is done (at once if it already stopped).
    pub async fn close(&self) {
        let (done, rx) = oneshot::channel();
        if self.tx.send(Request::Close(done)).is_ok() {
            let _ = rx.await;
        }
    }
}
