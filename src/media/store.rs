//! The content-addressed file store: `<dir>/<sha256[0:2]>/<sha256>`, bounded by size and age.
//!
//! Bytes stream into a temporary file inside `dir` (so the final rename is on the same file
//! system and atomic) while they are hashed; a file is never held whole in memory. The file is
//! synced before the rename, so a name in the store always holds its complete bytes: a crash
//! leaves at most a temporary file, which the next [`MediaStore::open`] deletes.
//!
//! The index lives in memory, rebuilt at open by scanning the directory. The last use of a
//! file is its modification time (set on every [`MediaStore::get`]), so least-recently-used
//! order survives a restart. Eviction runs after each new file, at open, and from
//! [`MediaStore::upkeep`]: first every file unused for `max_age`, then the least recently used
//! until the total is within `max_bytes`. The file just stored is never the one evicted for
//! it, so a caller always finds what [`MediaStore::ingest`] answered until the next one.
use std::collections::{BTreeSet, HashMap};
use std::fs;
use std::io;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt, AsyncWriteExt, BufWriter};
use tokio_util::sync::CancellationToken;

use super::sniff::{self, Sniffed, HEAD_BYTES};
use super::{is_sha256, Bounds, IngestError, Stored};

/// Temporary files start with this; anything so named at open is a leftover.
const TEMP_PREFIX: &str = ".tmp-";
/// Size of the write buffer and of the read buffer of [`MediaStore::ingest`].
const CHUNK: usize = 64 * 1024;

/// The store. Cheap to clone; every clone shares one index.
#[derive(Clone)]
pub struct MediaStore {
    inner: Arc<Inner>,
}

struct Inner {
    dir: PathBuf,
    bounds: Bounds,
    index: Mutex<Index>,
}

/// What the store holds, by sha256, and in order of last use.
#[derive(Default)]
struct Index {
    files: HashMap<String, Entry>,
    by_use: BTreeSet<(SystemTime, String)>,
    bytes: u64,
}

struct Entry {
    size: u64,
    used: SystemTime,
    /// MIME type and image size, once sniffed (lazily for files found at open).
    sniffed: Option<Sniffed>,
}

impl Index {
    fn insert(&mut self, sha256: String, entry: Entry) {
        self.bytes += entry.size;
        self.by_use.insert((entry.used, sha256.clone()));
        if let Some(old) = self.files.insert(sha256.clone(), entry) {
            self.bytes -= old.size;
            self.by_use.remove(&(old.used, sha256));
        }
    }

    fn remove(&mut self, sha256: &str) -> Option<Entry> {
        let entry = self.files.remove(sha256)?;
        self.bytes -= entry.size;
        self.by_use.remove(&(entry.used, sha256.to_owned()));
        Some(entry)
    }

    fn touch(&mut self, sha256: &str, now: SystemTime) {
        if let Some(entry) = self.files.get_mut(sha256) {
            self.by_use.remove(&(entry.used, sha256.to_owned()));
            entry.used = now;
            self.by_use.insert((now, sha256.to_owned()));
        }
    }

    fn publish_gauges(&self) {
        crate::metrics::media_store_size(self.bytes, self.files.len());
    }
}

/// Why a file was evicted (the `reason` label of the eviction counter).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Eviction {
    /// Unused for `max_age`.
    Age,
    /// Least recently used while the store was over `max_bytes`.
    Size,
}

impl MediaStore {
    /// Creates `dir` (0700) if missing, indexes what is there, deletes leftover temp files,
    /// and evicts what is over the bounds.
    pub fn open(dir: PathBuf, bounds: Bounds) -> io::Result<MediaStore> {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&dir)?;
        let mut index = Index::default();
        for entry in fs::read_dir(&dir)? {
            let entry = entry?;
            let name = entry.file_name();
            let name = name.to_string_lossy();
            if name.starts_with(TEMP_PREFIX) {
                remove_quietly(&entry.path());
            } else if name.len() == 2 && entry.file_type()?.is_dir() {
                scan_shard(&entry.path(), &name, &mut index)?;
            }
        }
        let store = MediaStore {
            inner: Arc::new(Inner {
                dir,
                bounds,
                index: Mutex::new(index),
            }),
        };
        store.evict(SystemTime::now(), None);
        store.lock().publish_gauges();
        Ok(store)
    }

    /// The store's directory.
    pub fn dir(&self) -> &Path {
        &self.inner.dir
    }

    /// Streams `reader` into the store (see [`MediaWriter`]).
    pub async fn ingest<R: tokio::io::AsyncRead + Unpin>(
        &self,
        mut reader: R,
        max_bytes: u64,
    ) -> Result<Stored, IngestError> {
        let mut writer = self.writer(max_bytes)?;
        let mut buf = vec![0u8; CHUNK];
        loop {
            let n = reader.read(&mut buf).await?;
            if n == 0 {
                break;
            }
            writer.write(&buf[..n]).await?;
        }
        writer.finish().await
    }

    /// A writer that stores what it is given, chunk by chunk, once finished.
    pub fn writer(&self, max_bytes: u64) -> io::Result<MediaWriter> {
        let temp = self
            .inner
            .dir
            .join(format!("{TEMP_PREFIX}{:016x}", fastrand::u64(..)));
        let file = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&temp)?;
        Ok(MediaWriter {
            store: self.clone(),
            file: Some(BufWriter::with_capacity(
                CHUNK,
                tokio::fs::File::from_std(file),
            )),
            temp,
            hasher: Sha256::new(),
            size: 0,
            max_bytes,
            head: Vec::new(),
        })
    }

    /// The stored file, if present; marks it used (in memory and as the file's mtime). A file
    /// removed behind the store's back is forgotten.
    pub fn get(&self, sha256: &str) -> Option<Stored> {
        if !is_sha256(sha256) {
            return None;
        }
        let path = self.path_of(sha256);
        let now = SystemTime::now();
        let mut index = self.lock();
        let entry = index.files.get(sha256)?;
        let size = entry.size;
        let cached = entry.sniffed.clone();
        // Opened to persist the use; failing to open means the file is gone.
        let file = match fs::File::open(&path) {
            Ok(file) => file,
            Err(e) => {
                tracing::warn!(sha256, cause = %e, "a stored media file is gone; forgetting it");
                index.remove(sha256);
                index.publish_gauges();
                return None;
            }
        };
        if let Err(e) = file.set_modified(now) {
            tracing::debug!(sha256, cause = %e, "cannot record the use of a media file");
        }
        index.touch(sha256, now);
        let sniffed = match cached {
            Some(sniffed) => sniffed,
            None => {
                let sniffed = sniff::sniff_file(&path);
                if let Some(entry) = index.files.get_mut(sha256) {
                    entry.sniffed = Some(sniffed.clone());
                }
                sniffed
            }
        };
        Some(stored(sha256, size, sniffed, path))
    }

    /// Evicts what is over the bounds every `every` until `shutdown` (also at open and after
    /// each new file; this catches files that merely grew old).
    pub async fn upkeep(self, every: Duration, shutdown: CancellationToken) {
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(every) => {
                    let store = self.clone();
                    let account = crate::metrics::current();
                    let _ = tokio::task::spawn_blocking(move || {
                        crate::metrics::within(account, || store.evict(SystemTime::now(), None))
                    })
                    .await;
                }
            }
        }
    }

    /// Evicts files unused for `max_age`, then the least recently used until the store fits
    /// `max_bytes`, never `keep`. Answers how many files went.
    pub(super) fn evict(&self, now: SystemTime, keep: Option<&str>) -> usize {
        let Bounds { max_bytes, max_age } = self.inner.bounds;
        let oldest_kept = now.checked_sub(max_age).unwrap_or(SystemTime::UNIX_EPOCH);
        let mut index = self.lock();
        let mut victims = Vec::new();
        for (used, sha256) in &index.by_use {
            if *used >= oldest_kept {
                break;
            }
            if Some(sha256.as_str()) != keep {
                victims.push((sha256.clone(), Eviction::Age));
            }
        }
        let mut remaining = index.bytes
            - victims
                .iter()
                .map(|(sha, _)| index.files[sha].size)
                .sum::<u64>();
        if remaining > max_bytes {
            for (_, sha256) in &index.by_use {
                if remaining <= max_bytes {
                    break;
                }
                if Some(sha256.as_str()) == keep || victims.iter().any(|(v, _)| v == sha256) {
                    continue;
                }
                remaining -= index.files[sha256].size;
                victims.push((sha256.clone(), Eviction::Size));
            }
        }
        // Deleted under the lock, so a concurrent ingest of the same bytes cannot rename its
        // file into place between the index forgetting the name and the file going.
        for (sha256, reason) in &victims {
            if let Some(entry) = index.remove(sha256) {
                remove_quietly(&self.path_of(sha256));
                crate::metrics::media_evicted(*reason == Eviction::Age, entry.size);
                tracing::debug!(sha256, size = entry.size, ?reason, "media file evicted");
            }
        }
        if !victims.is_empty() {
            index.publish_gauges();
        }
        victims.len()
    }

    /// `<dir>/<sha256[0:2]>/<sha256>`; `sha256` must have passed [`is_sha256`].
    fn path_of(&self, sha256: &str) -> PathBuf {
        self.inner.dir.join(&sha256[..2]).join(sha256)
    }

    fn lock(&self) -> MutexGuard<'_, Index> {
        // A panic while holding the lock leaves a consistent index (every update is a few
        // infallible steps), so a poisoned lock is still usable.
        self.inner
            .index
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Moves a finished temporary file into place (or drops it when the bytes are already
    /// stored), records it and evicts what the new file pushes over the bounds.
    fn commit(&self, temp: &Path, sha256: &str, size: u64, sniffed: Sniffed) -> io::Result<Stored> {
        let path = self.path_of(sha256);
        let now = SystemTime::now();
        let mut index = self.lock();
        if let Some(entry) = index.files.get(sha256) {
            if path.exists() {
                remove_quietly(temp);
                let sniffed = entry.sniffed.clone().unwrap_or(sniffed);
                if let Ok(file) = fs::File::open(&path) {
                    let _ = file.set_modified(now);
                }
                index.touch(sha256, now);
                return Ok(stored(sha256, size, sniffed, path));
            }
            index.remove(sha256);
        } else if let Ok(meta) = fs::metadata(&path) {
            // Put there behind the index's back (a copy while running): the same bytes by
            // name, kept as they are.
            remove_quietly(temp);
            index.insert(
                sha256.to_owned(),
                Entry {
                    size: meta.len(),
                    used: now,
                    sniffed: Some(sniffed.clone()),
                },
            );
            index.publish_gauges();
            return Ok(stored(sha256, meta.len(), sniffed, path));
        }
        let shard = path.parent().expect("a stored path has a shard directory");
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(shard)?;
        fs::rename(temp, &path)?;
        // The rename itself is durable only once the directory is synced.
        fs::File::open(shard)?.sync_all()?;
        index.insert(
            sha256.to_owned(),
            Entry {
                size,
                used: now,
                sniffed: Some(sniffed.clone()),
            },
        );
        index.publish_gauges();
        drop(index);
        self.evict(now, Some(sha256));
        Ok(stored(sha256, size, sniffed, path))
    }
}

/// Streams bytes into the store: hashed as they arrive, written to a temporary file, stored
/// under their sha256 by [`MediaWriter::finish`]. Dropping an unfinished writer removes the
/// temporary file.
pub struct MediaWriter {
    store: MediaStore,
    /// `None` once finished or failed.
    file: Option<BufWriter<tokio::fs::File>>,
    temp: PathBuf,
    hasher: Sha256,
    size: u64,
    max_bytes: u64,
    /// The first bytes, for sniffing the type.
    head: Vec<u8>,
}

impl MediaWriter {
    /// Adds `chunk`. More than `max_bytes` in all fails with [`IngestError::TooLarge`] and
    /// removes the temporary file at once.
    pub async fn write(&mut self, chunk: &[u8]) -> Result<(), IngestError> {
        let Some(file) = self.file.as_mut() else {
            return Err(IngestError::Io(io::Error::other(
                "the media writer has failed",
            )));
        };
        self.size += chunk.len() as u64;
        if self.size > self.max_bytes {
            self.abandon();
            return Err(IngestError::TooLarge {
                limit: self.max_bytes,
            });
        }
        if self.head.len() < HEAD_BYTES {
            let take = (HEAD_BYTES - self.head.len()).min(chunk.len());
            self.head.extend_from_slice(&chunk[..take]);
        }
        self.hasher.update(chunk);
        if let Err(e) = file.write_all(chunk).await {
            self.abandon();
            return Err(e.into());
        }
        Ok(())
    }

    /// Syncs the file and stores it under its sha256 (see [`MediaStore`]).
    pub async fn finish(mut self) -> Result<Stored, IngestError> {
        let Some(mut file) = self.file.take() else {
            return Err(IngestError::Io(io::Error::other(
                "the media writer has failed",
            )));
        };
        let synced = async {
            file.flush().await?;
            file.get_ref().sync_all().await
        }
        .await;
        drop(file);
        if let Err(e) = synced {
            remove_quietly(&self.temp);
            return Err(e.into());
        }
        let sha256 = hex(&self.hasher.clone().finalize());
        let head = std::mem::take(&mut self.head);
        let temp = self.temp.clone();
        let store = self.store.clone();
        let size = self.size;
        let account = crate::metrics::current();
        let committed = tokio::task::spawn_blocking(move || {
            let sniffed = sniff::sniff(&head, &temp);
            crate::metrics::within(account, || store.commit(&temp, &sha256, size, sniffed))
        })
        .await
        .unwrap_or_else(|e| Err(io::Error::other(e)));
        if committed.is_err() {
            remove_quietly(&self.temp);
        }
        Ok(committed?)
    }

    /// Bytes written so far.
    pub fn size(&self) -> u64 {
        self.size
    }

    fn abandon(&mut self) {
        self.file = None;
        remove_quietly(&self.temp);
    }
}

impl Drop for MediaWriter {
    fn drop(&mut self) {
        if self.file.is_some() {
            remove_quietly(&self.temp);
        }
    }
}

/// Indexes the files of one shard directory (`<dir>/ab/`); a temporary file there is a
/// leftover and removed, other names are not the store's and left alone.
fn scan_shard(shard: &Path, prefix: &str, index: &mut Index) -> io::Result<()> {
    for entry in fs::read_dir(shard)? {
        let entry = entry?;
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.starts_with(TEMP_PREFIX) {
            remove_quietly(&entry.path());
            continue;
        }
        if !is_sha256(&name) || !name.starts_with(prefix) {
            continue;
        }
        let meta = entry.metadata()?;
        if !meta.is_file() {
            continue;
        }
        let used = meta.modified().unwrap_or(SystemTime::UNIX_EPOCH);
        index.insert(
            name.into_owned(),
            Entry {
                size: meta.len(),
                used,
                sniffed: None,
            },
        );
    }
    Ok(())
}

fn stored(sha256: &str, size: u64, sniffed: Sniffed, path: PathBuf) -> Stored {
    Stored {
        sha256: sha256.to_owned(),
        size,
        mime: sniffed.mime,
        width: sniffed.width,
        height: sniffed.height,
        path,
    }
}

/// Removes `path`; a file already gone is fine, anything else is logged.
fn remove_quietly(path: &Path) {
    if let Err(e) = fs::remove_file(path) {
        if e.kind() != io::ErrorKind::NotFound {
            tracing::warn!(path = %path.display(), cause = %e, "cannot remove a media file");
        }
    }
}

/// Lowercase hex of `bytes`.
pub(super) fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut out, b| {
            let _ = write!(out, "{b:02x}");
            out
        })
}
