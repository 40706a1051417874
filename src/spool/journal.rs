//! The spool's journal: how a group commit is made durable with one small append instead of a
//! redb commit that rewrites about eleven B-tree pages (BENCHMARKS.md "The spool's journal").
//!
//! # Design
//!
//! `state_dir/spool.journal` is a preallocated file (zeros written once, so an append changes
//! no file metadata and `fdatasync` writes only the pages appended to). The writer thread
//! makes each group durable like this:
//!
//! 1. it stages the group's writes into redb and commits with `Durability::None`: readable at
//!    once, but redb 4 keeps those pages in its write buffer and writes nothing to the file;
//!    the same transaction records in `meta` which journal record it is (generation, index);
//! 2. it appends one record to the journal — the group's logical writes and the time they
//!    were staged at ([`record`]) — and `fdatasync`s the journal. **That is the durability
//!    point**: only then are the callers answered (a sync's events and keys before the next
//!    webwxsync goes out);
//! 3. every [`CHECKPOINT_RECORDS`] records, after [`CHECKPOINT_AFTER`], when a record would not
//!    fit, and at close, a `Durability::Immediate` redb commit (the checkpoint) writes the
//!    pages once and starts a new generation: the journal is then written again from its start.
//!
//! A record is `len: u32 LE | crc32: u32 LE | generation: u64 LE | index: u64 LE | payload`;
//! the crc covers the length, generation, index and payload.
//!
//! # Recovery
//!
//! On open, redb is at its last durable commit, whose `meta` says generation G and the last
//! record applied, A (a checkpoint: A = 0; redb may also have made non-durable commits durable
//! when it was closed, then A is the last of them). The journal is read from its start while
//! the records are whole (length in bounds, crc matching), of generation G and numbered 1, 2, 3…
//! in turn; the first that is not ends it (a torn last append, a crc mismatch, a stale record
//! of an older generation left behind). Those numbered past A are staged again in order
//! (staging is deterministic, so the seqs and command ids come out as they were), then a
//! checkpoint starts generation G + 1. A crash during recovery leaves the same file and
//! journal, so recovering twice is recovering once. A spool file with no journal (from before
//! the journal) recovers nothing: its redb state is all there is. A spool file that never had
//! a journal (generation 0) beside an existing journal file (a new spool file in an old state
//! dir) has the journal wiped first: its records are another spool's.
//!
//! What a crash can lose: only writes whose callers had no answer yet (their record was not
//! synced). The sync loop did not acknowledge that answer to WeChat, so it comes again and the
//! MsgId index drops what was already stored.
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::Path;
use std::time::Duration;

use redb::Durability;

use super::redb_store::Group;
use super::{RedbSpool, SpoolError};
use record::Op;

pub(in crate::spool) mod record;
#[cfg(test)]
mod tests;

/// The journal's size. A record that does not fit in what is left is made durable by a
/// checkpoint instead (a burst of syncs then checkpoints every few dozen answers; a contact
/// list larger than this is checkpointed on its own).
pub(in crate::spool) const CAPACITY: u64 = 4 * 1024 * 1024;
/// A checkpoint after this many records. It bounds what a restart replays, and the memory of
/// redb's write buffer that holds the pages not yet checkpointed.
pub(in crate::spool) const CHECKPOINT_RECORDS: u64 = 2000;
/// A checkpoint at most this long after the first record of a generation.
pub const CHECKPOINT_AFTER: Duration = Duration::from_secs(30);

/// `len`, `crc`, `generation`, `index`.
const HEADER: usize = 4 + 4 + 8 + 8;
/// The size of the writes that fill a new journal with zeros.
const PAGE: usize = 4096;

/// The journal file and where the next record goes.
#[derive(Debug)]
pub(in crate::spool) struct Journal {
    file: File,
    capacity: u64,
    generation: u64,
    /// Records written in this generation; the next is numbered one more.
    records: u64,
    /// Where the next record starts.
    offset: u64,
    buf: Vec<u8>,
    /// Whether the file was created (all zeros) by this open.
    fresh: bool,
}

fn crc(record: &[u8]) -> u32 {
    let mut h = crc32fast::Hasher::new();
    h.update(&record[..4]);
    h.update(&record[8..]);
    h.finalize()
}

impl Journal {
    /// Opens the journal at `path`, creating it (mode 0600) and filling it with zeros up to
    /// `capacity` when it is shorter. Records are written from the start once
    /// [`Journal::start`] has named the generation.
    pub(in crate::spool) fn open(path: &Path, capacity: u64) -> Result<Journal, SpoolError> {
        let ctx = |doing: &'static str| move |e| SpoolError::caused_by(doing, e);
        let mut file = open_private(path)?;
        let len = file
            .metadata()
            .map_err(ctx("stat the spool journal"))?
            .len();
        let fresh = len == 0;
        if len < capacity {
            // Written zeros, not a hole or fallocate's unwritten extents: writing into those
            // changes file metadata, and every fdatasync would then write it too. And written
            // a page at a time: the page cache keeps a large write in large folios (64 KiB
            // writes: 64 KiB folios), and a record that dirties one byte of such a folio then
            // costs the whole folio at every fdatasync (measured: 69 kB written per sync with
            // 64 KiB writes, about 6 kB with page-sized ones).
            zero(&mut file, len, capacity)?;
            file.sync_all().map_err(ctx("sync the spool journal"))?;
            sync_dir(path)?;
        }
        Ok(Journal {
            file,
            capacity: capacity.max(len),
            generation: 0,
            records: 0,
            offset: 0,
            buf: Vec::new(),
            fresh,
        })
    }

    /// Overwrites the whole file with zeros: its records belong to no spool this one knows.
    fn wipe(&mut self) -> Result<(), SpoolError> {
        zero(&mut self.file, 0, self.capacity)?;
        self.file
            .sync_data()
            .map_err(|e| SpoolError::caused_by("sync the spool journal", e))
    }

    /// The payloads of the whole records of `generation` from the start, with their index.
    pub(in crate::spool) fn records_of(
        &mut self,
        generation: u64,
    ) -> Result<Vec<(u64, Vec<u8>)>, SpoolError> {
        let mut all = Vec::new();
        self.file
            .seek(SeekFrom::Start(0))
            .and_then(|_| self.file.read_to_end(&mut all))
            .map_err(|e| SpoolError::caused_by("read the spool journal", e))?;
        let mut found = Vec::new();
        let mut at = 0usize;
        while let Some(head) = all.get(at..at + HEADER) {
            let len = u32::from_le_bytes(head[..4].try_into().expect("4")) as usize;
            let Some(record) = all.get(at..at + HEADER + len) else {
                break;
            };
            let stored_crc = u32::from_le_bytes(head[4..8].try_into().expect("4"));
            let gen = u64::from_le_bytes(head[8..16].try_into().expect("8"));
            let index = u64::from_le_bytes(head[16..24].try_into().expect("8"));
            if len == 0 || gen != generation || index != found.len() as u64 + 1 {
                break;
            }
            if stored_crc != crc(record) {
                tracing::warn!(
                    generation,
                    index,
                    "the spool journal ends in a record that is not whole (torn by a crash)"
                );
                break;
            }
            found.push((index, record[HEADER..].to_vec()));
            at += HEADER + len;
        }
        Ok(found)
    }

    /// Starts writing `generation` from the start of the file.
    pub(in crate::spool) fn start(&mut self, generation: u64) {
        self.generation = generation;
        self.records = 0;
        self.offset = 0;
    }

    pub(in crate::spool) fn generation(&self) -> u64 {
        self.generation
    }

    /// The index the next record gets.
    pub(in crate::spool) fn next_index(&self) -> u64 {
        self.records + 1
    }

    /// Records written in this generation.
    pub(in crate::spool) fn records(&self) -> u64 {
        self.records
    }

    /// Whether a record of `len` payload bytes fits in what is left of the file.
    pub(in crate::spool) fn fits(&self, len: usize) -> bool {
        self.offset + (HEADER + len) as u64 <= self.capacity
    }

    /// Appends the next record and syncs it: it is durable when this returns.
    pub(in crate::spool) fn append(&mut self, payload: &[u8]) -> Result<(), SpoolError> {
        let len = u32::try_from(payload.len())
            .ok()
            .filter(|_| self.fits(payload.len()))
            .ok_or_else(|| SpoolError::new("a journal record does not fit"))?;
        let index = self.next_index();
        self.buf.clear();
        self.buf.extend_from_slice(&len.to_le_bytes());
        self.buf.extend_from_slice(&[0; 4]);
        self.buf.extend_from_slice(&self.generation.to_le_bytes());
        self.buf.extend_from_slice(&index.to_le_bytes());
        self.buf.extend_from_slice(payload);
        let sum = crc(&self.buf);
        self.buf[4..8].copy_from_slice(&sum.to_le_bytes());
        self.file
            .seek(SeekFrom::Start(self.offset))
            .and_then(|_| self.file.write_all(&self.buf))
            .map_err(|e| SpoolError::caused_by("append to the spool journal", e))?;
        self.file
            .sync_data()
            .map_err(|e| SpoolError::caused_by("sync the spool journal", e))?;
        self.offset += self.buf.len() as u64;
        self.records = index;
        Ok(())
    }
}

/// Writes zeros into `file` from `from` up to `to`, a page at a time.
fn zero(file: &mut File, from: u64, to: u64) -> Result<(), SpoolError> {
    let ctx = |e| SpoolError::caused_by("write zeros into the spool journal", e);
    file.seek(SeekFrom::Start(from)).map_err(ctx)?;
    let zeros = [0u8; PAGE];
    let mut left = to.saturating_sub(from);
    while left > 0 {
        let n = left.min(PAGE as u64) as usize;
        file.write_all(&zeros[..n]).map_err(ctx)?;
        left -= n as u64;
    }
    Ok(())
}

/// Opens (or creates) the journal owner-only; a symbolic link in its place is refused.
fn open_private(path: &Path) -> Result<File, SpoolError> {
    use crate::wechat::session::{explain_link, no_follow};
    let mut options = OpenOptions::new();
    options.read(true).write(true).create(true).truncate(false);
    #[cfg(unix)]
    {
        use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
        options.mode(0o600);
        let file = no_follow(&mut options)
            .open(path)
            .map_err(|e| explain_link(path, e))
            .map_err(|e| SpoolError::caused_by("open the spool journal", e))?;
        file.set_permissions(std::fs::Permissions::from_mode(0o600))
            .map_err(|e| SpoolError::caused_by("restrict the spool journal", e))?;
        Ok(file)
    }
    #[cfg(not(unix))]
    no_follow(&mut options)
        .open(path)
        .map_err(|e| explain_link(path, e))
        .map_err(|e| SpoolError::caused_by("open the spool journal", e))
}

/// Makes a new file's name durable.
fn sync_dir(path: &Path) -> Result<(), SpoolError> {
    #[cfg(unix)]
    if let Some(dir) = path.parent() {
        let dir = if dir.as_os_str().is_empty() {
            Path::new(".")
        } else {
            dir
        };
        File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| SpoolError::caused_by("sync the state directory", e))?;
    }
    #[cfg(not(unix))]
    let _ = path;
    Ok(())
}

/// Stages one replayed write into `group`.
fn apply(group: &mut Group<'_>, op: &Op) -> Result<(), SpoolError> {
    match op {
        Op::Sync {
            entries,
            held,
            msg_ids,
            keys,
        } => {
            let ids: Vec<&str> = msg_ids.iter().map(String::as_str).collect();
            group.sync(entries, held, &ids, keys.as_deref())?;
        }
        Op::Release { seq, payload } => {
            group.release(*seq, payload)?;
        }
        Op::ClearKeys => group.clear_keys()?,
        Op::Register(sink) => group.register(sink)?,
        Op::Retain(keep) => {
            let keep: Vec<&str> = keep.iter().map(String::as_str).collect();
            group.retain(&keep)?;
        }
        Op::Enqueue(record) => {
            group.enqueue(record)?;
        }
        Op::Complete {
            id,
            request_id,
            entry,
        } => {
            group.complete(*id, request_id.as_deref(), entry)?;
        }
        Op::Ack { sink, seq } => group.ack(sink, *seq)?,
        Op::PutValue { name, value } => group.put_value(name, value)?,
    }
    Ok(())
}

/// Re-applies the journal's records that `spool` does not hold yet, then checkpoints into a
/// new generation and points `journal` at it (see the module docs). Answers how many records
/// were replayed. Makes one durable commit.
pub(in crate::spool) fn recover(
    spool: &RedbSpool,
    journal: &mut Journal,
) -> Result<usize, SpoolError> {
    let (generation, replayed) = replay(spool, journal)?;
    if replayed > 0 {
        tracing::info!(
            records = replayed,
            "replayed the spool journal's records written since the last checkpoint"
        );
    }
    spool.checkpoint(generation + 1)?;
    journal.start(generation + 1);
    Ok(replayed)
}

/// The first half of [`recover`]: re-applies the records without durability. Answers the
/// generation replayed and how many records were.
fn replay(spool: &RedbSpool, journal: &mut Journal) -> Result<(u64, usize), SpoolError> {
    let (generation, applied) = spool.journal_position()?;
    if generation == 0 && !journal.fresh {
        // A spool that never had a journal (from before it, or a new spool file beside an
        // old journal): that journal's records are another spool's, and one of them could
        // line up after this spool's own first records as if it were the next one.
        journal.wipe()?;
        return Ok((0, 0));
    }
    let mut replayed = 0;
    for (index, payload) in journal.records_of(generation)? {
        if index <= applied {
            continue;
        }
        let (now, ops) = record::decode(&payload)?;
        let mut group = spool.group_at(now, Durability::None)?;
        ops.iter().try_for_each(|op| apply(&mut group, op))?;
        group.journaled(generation, index)?;
        group.commit()?;
        replayed += 1;
    }
    Ok((generation, replayed))
}
