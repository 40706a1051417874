//! The writer thread: what it is asked ([`Request`]), how it stages writes into one group
//! and answers them after the commit, and the cursor moves it holds (see the parent module).
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::oneshot;

use super::{Read, Reply};
use crate::spool::redb_store::Group;
use crate::spool::{Committed, NewEntry, RedbSpool, Seq, Spool, SpoolError};

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
    /// Commit what is held, then stop.
    Close(oneshot::Sender<()>),
}

/// A write whose caller waits for its commit.
pub(super) enum Write {
    Sync {
        entries: Vec<NewEntry>,
        msg_ids: Vec<String>,
        keys: Option<Vec<u8>>,
        reply: Reply<Committed>,
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
}

/// What a write answered once staged; sent only after its commit.
enum Answer {
    Committed(Committed),
    Done,
    Id(u64),
}

impl Write {
    /// Stages this write into `group`.
    fn stage(&self, group: &mut Group<'_>) -> Result<Answer, SpoolError> {
        Ok(match self {
            Write::Sync {
                entries,
                msg_ids,
                keys,
                ..
            } => {
                let ids: Vec<&str> = msg_ids.iter().map(String::as_str).collect();
                Answer::Committed(group.sync(entries, &ids, keys.as_deref())?)
            }
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
        })
    }

    /// Commits this write in a transaction of its own (after its group failed); counts the
    /// commit in `commits` before answering.
    fn alone(self, spool: &RedbSpool, commits: &AtomicU64) {
        match self {
            Write::Sync {
                entries,
                msg_ids,
                keys,
                reply,
            } => {
                let ids: Vec<&str> = msg_ids.iter().map(String::as_str).collect();
                answer(
                    reply,
                    spool.commit_sync(entries, &ids, keys.as_deref()),
                    commits,
                )
            }
            Write::ClearKeys(reply) => answer(reply, spool.clear_sync_keys(), commits),
            Write::Register { sink, reply } => answer(reply, spool.register_sink(&sink), commits),
            Write::Retain { keep, reply } => {
                let keep: Vec<&str> = keep.iter().map(String::as_str).collect();
                answer(reply, spool.retain_sinks(&keep), commits)
            }
            Write::Enqueue { record, reply } => {
                answer(reply, spool.enqueue_command(record), commits)
            }
            Write::Complete {
                id,
                request_id,
                entry,
                reply,
            } => answer(
                reply,
                spool.complete_command(id, request_id.as_deref(), entry),
                commits,
            ),
        }
    }

    /// Sends the answer of a committed group.
    fn reply(self, answer: Answer) {
        // A caller that went away (shutdown) needs no answer.
        match (self, answer) {
            (Write::Sync { reply, .. }, Answer::Committed(c)) => drop(reply.send(Ok(c))),
            (
                Write::ClearKeys(reply)
                | Write::Register { reply, .. }
                | Write::Retain { reply, .. },
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
            Write::ClearKeys(reply)
            | Write::Register { reply, .. }
            | Write::Retain { reply, .. } => drop(reply.send(Err(e()))),
            Write::Enqueue { reply, .. } | Write::Complete { reply, .. } => {
                drop(reply.send(Err(e())))
            }
        }
    }
}

/// Counts a successful commit, then sends `result`.
fn answer<T>(reply: Reply<T>, result: Result<T, SpoolError>, commits: &AtomicU64) {
    if result.is_ok() {
        commits.fetch_add(1, Ordering::Relaxed);
    }
    drop(reply.send(result));
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
    rx: mpsc::Receiver<Request>,
    commits: Arc<AtomicU64>,
    /// Cursor moves not committed yet, per sink.
    held: HashMap<String, Held>,
    /// When the oldest of `held` came. This thread has no tokio runtime, so tokio's
    /// `Instant` reads the real clock here even when a test pauses the runtime's.
    held_since: Option<tokio::time::Instant>,
    lazy_limit: u64,
    linger: Duration,
}

impl Writer {
    pub(super) fn new(
        spool: RedbSpool,
        rx: mpsc::Receiver<Request>,
        commits: Arc<AtomicU64>,
        lazy_limit: u64,
        linger: Duration,
    ) -> Writer {
        Writer {
            spool,
            rx,
            commits,
            held: HashMap::new(),
            held_since: None,
            lazy_limit,
            linger,
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

    /// Answers requests until every handle is gone or one asks to close (answered with the
    /// sender to tell it when the database is closed).
    fn serve(&mut self) -> Option<oneshot::Sender<()>> {
        loop {
            let first = match self.held_since {
                None => self.rx.recv().map_err(|_| RecvTimeoutError::Disconnected),
                // Counted from the oldest held move, so a stream of reads cannot put it off.
                Some(since) => self
                    .rx
                    .recv_timeout(self.linger.saturating_sub(since.elapsed())),
            };
            let first = match first {
                Ok(r) => r,
                Err(RecvTimeoutError::Timeout) => {
                    self.commit(Vec::new());
                    continue;
                }
                Err(RecvTimeoutError::Disconnected) => {
                    // Every handle is gone: nothing can ask any more, but what is held must
                    // not be lost.
                    self.commit(Vec::new());
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
                    Request::Write(w) => writes.push(w),
                    Request::Ack { sink, seq } => urgent |= self.hold(sink, seq),
                    Request::Close(done) => {
                        close = Some(done);
                        break;
                    }
                }
                if taken < MAX_GROUP {
                    next = self.rx.try_recv().ok();
                }
            }
            let overdue = self
                .held_since
                .is_some_and(|since| since.elapsed() >= self.linger);
            if !writes.is_empty() || urgent || overdue || close.is_some() {
                self.commit(writes);
            }
            if close.is_some() {
                return close;
            }
        }
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
        self.held_since
            .get_or_insert_with(tokio::time::Instant::now);
        urgent
    }

    /// One durable commit of `writes` and every held cursor move; answers the writes after
    /// it. If the group fails, each item is committed on its own.
    fn commit(&mut self, writes: Vec<Write>) {
        if writes.is_empty() && self.held.is_empty() {
            return;
        }
        let held = std::mem::take(&mut self.held);
        self.held_since = None;
        let staged = self.stage(&writes, &held);
        match staged {
            Ok(answers) => {
                self.commits.fetch_add(1, Ordering::Relaxed);
                for (write, answer) in writes.into_iter().zip(answers) {
                    write.reply(answer);
                }
            }
            Err(e) => {
                tracing::debug!(cause = %e, "a group commit failed; committing its items one by one");
                for write in writes {
                    write.alone(&self.spool, &self.commits);
                }
                for (sink, held) in held {
                    match self.spool.ack(&sink, held.seq) {
                        Ok(()) => {
                            self.commits.fetch_add(1, Ordering::Relaxed);
                        }
                        Err(e) => {
                            tracing::error!(sink = %sink, cause = %e, "cannot advance the cursor");
                        }
                    }
                }
            }
        }
    }

    /// Stages and commits one group; the answers in the order of `writes`.
    fn stage(
        &self,
        writes: &[Write],
        held: &HashMap<String, Held>,
    ) -> Result<Vec<Answer>, SpoolError> {
        let mut group = self.spool.group()?;
        let answers = writes
            .iter()
            .map(|w| w.stage(&mut group))
            .collect::<Result<Vec<_>, _>>()?;
        for (sink, held) in held {
            group.ack(sink, held.seq)?;
        }
        group.commit()?;
        Ok(answers)
    }
}
