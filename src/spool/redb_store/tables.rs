//! The tables of the redb spool (the layout is in the parent module's docs), and the small
//! reads and writes on them that several transactions share.
use std::fs::OpenOptions;
use std::path::Path;

use redb::{ReadableTable, TableDefinition};

use crate::spool::{Seq, SpoolError};

pub(super) const ENTRIES: TableDefinition<u64, &[u8]> = TableDefinition::new("entries");
pub(super) const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
pub(super) const CURSORS: TableDefinition<&str, u64> = TableDefinition::new("cursors");
pub(super) const SEEN: TableDefinition<&str, u64> = TableDefinition::new("seen");
pub(super) const KEYS: TableDefinition<&str, &[u8]> = TableDefinition::new("keys");
pub(super) const COMMANDS: TableDefinition<u64, &[u8]> = TableDefinition::new("commands");
pub(super) const RESULTS: TableDefinition<&str, &[u8]> = TableDefinition::new("results");
pub(super) const HELD: TableDefinition<u64, ()> = TableDefinition::new("held");
pub(super) const VALUES: TableDefinition<&str, &[u8]> = TableDefinition::new("values");

/// `meta`: the seq the next entry gets.
pub(super) const NEXT_SEQ: &str = "next_seq";
/// `meta`: the id the next command gets.
pub(super) const NEXT_COMMAND: &str = "next_command";
/// `meta`: the journal generation the last checkpoint started (see `spool::journal`).
pub(super) const JOURNAL_GENERATION: &str = "journal_generation";
/// `meta`: the last journal record of that generation this state holds (0: none).
pub(super) const JOURNAL_APPLIED: &str = "journal_applied";
/// `keys`: the sync keys.
pub(super) const SYNC_KEYS: &str = "sync";

/// Attaches what the store was doing to a redb (or I/O, or serde) error.
pub(super) trait Context<T> {
    fn ctx(self, doing: &str) -> Result<T, SpoolError>;
}

impl<T, E: std::error::Error + Send + Sync + 'static> Context<T> for Result<T, E> {
    fn ctx(self, doing: &str) -> Result<T, SpoolError> {
        self.map_err(|e| SpoolError::caused_by(doing, e))
    }
}

pub(super) fn unknown_sink(sink: &str) -> SpoolError {
    SpoolError::new(format!("unknown sink {sink:?}; register it first"))
}

/// Creates the file owner-only (it holds message contents), and tightens an existing one. A
/// symbolic link in its place is refused: redb would write through it.
pub(super) fn create_private_file(path: &Path) -> Result<(), SpoolError> {
    use crate::wechat::session::{explain_link, no_follow};
    let mut options = OpenOptions::new();
    options.write(true).create(true).truncate(false);
    #[cfg(unix)]
    {
        use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
        options.mode(0o600);
        let file = no_follow(&mut options)
            .open(path)
            .map_err(|e| explain_link(path, e))
            .ctx("create the spool file")?;
        file.set_permissions(std::fs::Permissions::from_mode(0o600))
            .ctx("restrict the spool file")?;
    }
    #[cfg(not(unix))]
    no_follow(&mut options)
        .open(path)
        .map_err(|e| explain_link(path, e))
        .ctx("create the spool file")?;
    Ok(())
}

/// The next value of a `meta` counter; counters start at 1.
pub(super) fn next_counter(
    meta: &impl ReadableTable<&'static str, u64>,
    name: &str,
) -> Result<u64, SpoolError> {
    Ok(meta.get(name).ctx("read meta")?.map_or(1, |v| v.value()))
}

/// The last seq appended (0 when none yet).
pub(super) fn head(meta: &impl ReadableTable<&'static str, u64>) -> Result<Seq, SpoolError> {
    Ok(next_counter(meta, NEXT_SEQ)? - 1)
}

pub(super) fn all_cursors(
    cursors: &impl ReadableTable<&'static str, u64>,
) -> Result<Vec<(String, u64)>, SpoolError> {
    cursors
        .iter()
        .ctx("list cursors")?
        .map(|row| {
            let (sink, cursor) = row.ctx("read a cursor")?;
            Ok((sink.value().to_owned(), cursor.value()))
        })
        .collect()
}

/// The first held seq at or after `from`, if any: no sink reads past it.
pub(super) fn first_held_from(
    held: &impl ReadableTable<u64, ()>,
    from: Seq,
) -> Result<Option<Seq>, SpoolError> {
    match held.range(from..).ctx("read held entries")?.next() {
        Some(row) => Ok(Some(row.ctx("read a held entry")?.0.value())),
        None => Ok(None),
    }
}

/// Deletes the entries with seq ≤ `seq`: one range, however many.
pub(super) fn delete_through(
    table: &mut redb::Table<'_, u64, &'static [u8]>,
    seq: Seq,
) -> Result<(), SpoolError> {
    table
        .retain_in(..=seq, |_, _| false)
        .ctx("delete delivered entries")
}
