//! The downloader: fetches the media of held message events into the media store, fills the
//! event's `media` (or `file`) fields and releases the entry (DESIGN.md "Media").
//!
//! # How an event waits for its file
//!
//! The sync loop commits a media message *held* in the same spool group as the rest of its
//! answer (no commit of its own), so the sync keys move on at once and a slow download never
//! holds up a sync. No sink is handed the held entry or anything spooled after it (each sink
//! keeps spool order), while what came before flows. The loop then hands the entry to this
//! task, which downloads it (at most [`PARALLEL`] at a time) and releases it with its final
//! payload in one durable spool write, then wakes the sinks.
//!
//! Each entry has a deadline: `media.wait` after it was spooled. Failures (a transport error,
//! a 5xx, no session while logged out) are retried with `retry.*` backoff until then; at the
//! deadline the event goes out with `error: fetch_failed`. A file WeChat no longer has is
//! `expired` at once; one announced over `media.max_file_bytes` is `too_large` and, when the
//! message itself says its size (files), is never requested.
//!
//! # Stops and crashes
//!
//! A stop abandons the downloads under way (their temporary files go with them): their entries
//! stay held in the spool, and the next start lists them ([`Store::held`]) and downloads them
//! again, each with a fresh `media.wait`. A file already stored is not fetched again: right
//! after the store has it, its sha256 and the MsgId are written to
//! `<state_dir>/media-held/<seq>`, and a held entry with such a record (of its MsgId) whose
//! file is in the store is released from it. What remains is the instant between the store's
//! rename and that write: a crash there costs one more download, never the event.
//!
//! # Sessions
//!
//! Each try asks with the session current at that moment, so a relogin in the middle of a
//! wait is used at once. The servers answer a download outside a live session as they answer
//! for media they no longer have, with nothing; such an answer counts as `expired` only when
//! the session it was asked with is still the current one, else it is retried.
use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use base64::Engine as _;
use tokio::sync::{mpsc, watch, Notify, Semaphore};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::{MediaConfig, MediaDownload};
use crate::event::{MediaError, MediaKind, MessageEvent, StoredMedia};
use crate::media::{IngestError, Media, Stored};
use crate::retry::Retry;
use crate::spool::{Seq, Store};
use crate::wechat::client::{DownloadError, MediaRequest};
use crate::wechat::session::Session;

/// Downloads under way at once, at most.
pub const PARALLEL: usize = 4;
/// How many times a release is tried before the entry waits for the next start.
const RELEASE_TRIES: usize = 5;

/// A held entry to download for.
#[derive(Debug)]
pub(super) struct Job {
    seq: Seq,
    payload: Vec<u8>,
    deadline: Instant,
}

impl Job {
    /// A held entry spooled now, whose event may wait `wait`.
    pub(super) fn new(seq: Seq, payload: Vec<u8>, wait: Duration) -> Job {
        Job {
            seq,
            payload,
            deadline: Instant::now() + wait,
        }
    }
}

impl super::Bridge {
    /// Hands a held entry just committed to the downloader; it may wait `media.wait`.
    pub(super) fn hand_to_downloader(&self, seq: Seq, payload: Vec<u8>) {
        // Closed only after shutdown: the entry stays held for the next start.
        let _ = self
            .downloads
            .send(Job::new(seq, payload, self.media.config.wait));
    }

    /// Runs the downloader until shutdown (see the module docs).
    pub(super) async fn download_loop(&self) {
        // Held for as long as the loop runs and given back when it stops, also when a panic
        // ends the bridge's tasks: the restarted loop takes the same queue.
        let mut jobs = self.download_jobs.lock().await;
        let records = self.config.state_dir.join(RECORDS);
        if let Err(e) = crate::wechat::session::ensure_private_dir(&records) {
            tracing::warn!(cause = %e, dir = %records.display(), "cannot create the directory of stored-file records; a restart may fetch a file again");
        }
        Downloader {
            media: self.media.clone(),
            records,
            spool: self.spool.clone(),
            wake: self.wake.clone(),
            session: self.session.subscribe(),
            retry: self.retry(),
            shutdown: self.shutdown.clone(),
        }
        .run(&mut jobs)
        .await
    }
}

/// `<state_dir>/media-held`: one file per held entry whose file the store has, named by its
/// seq, holding `<sha256> <MsgId>`.
const RECORDS: &str = "media-held";

/// Whether `config` downloads the media `event` carries (false: it carries none).
pub(super) fn wanted(config: &MediaConfig, event: &MessageEvent) -> bool {
    let kind = match (&event.media, &event.file) {
        (Some(m), _) => match m.kind {
            MediaKind::Image => MediaDownload::Image,
            MediaKind::Voice => MediaDownload::Voice,
            MediaKind::Video => MediaDownload::Video,
            MediaKind::Emoticon => MediaDownload::Emoticon,
        },
        (None, Some(_)) => MediaDownload::File,
        (None, None) => return false,
    };
    config.download.contains(&kind)
}

/// The downloader's parts.
pub(super) struct Downloader {
    /// The store, the signer, the base URL and the `media` section.
    pub(super) media: Media,
    /// `<state_dir>/media-held`: the sha256 of each held entry whose file is stored ([`RECORDS`]).
    pub(super) records: PathBuf,
    pub(super) spool: Store,
    pub(super) wake: Arc<Notify>,
    pub(super) session: watch::Receiver<Option<Session>>,
    pub(super) retry: Retry,
    pub(super) shutdown: CancellationToken,
}

/// Why a fetch gave no file.
enum Failure {
    Final(MediaError),
    Retry(String),
}

impl Downloader {
    /// Downloads for the entries held from before this start, then for each job sent, until
    /// shutdown; then waits for the downloads to stop (each releases what it already has).
    pub(super) async fn run(self, jobs: &mut mpsc::UnboundedReceiver<Job>) {
        let this = Arc::new(self);
        let active = Arc::new(Mutex::new(HashSet::new()));
        let limit = Arc::new(Semaphore::new(PARALLEL));
        let tracker = TaskTracker::new();
        let start = |job: Job| {
            let fresh = active
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .insert(job.seq);
            if !fresh {
                return;
            }
            let (this, active, limit) = (this.clone(), active.clone(), limit.clone());
            // Inherits the account, so the download's metrics carry its label.
            tracker.spawn(crate::metrics::inherit(async move {
                let seq = job.seq;
                this.handle(job, &limit).await;
                active
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .remove(&seq);
            }));
        };
        match this.spool.held().await {
            Ok(held) => {
                if !held.is_empty() {
                    tracing::info!(
                        held = held.len(),
                        "downloading the media of events held before this start"
                    );
                }
                for e in held {
                    start(Job::new(e.seq, e.payload, this.media.config.wait));
                }
            }
            Err(e) => {
                tracing::error!(cause = %e, "cannot list the held events; they wait for the next start")
            }
        }
        loop {
            tokio::select! {
                _ = this.shutdown.cancelled() => break,
                job = jobs.recv() => match job {
                    Some(job) => start(job),
                    None => break,
                },
            }
        }
        tracker.close();
        tracker.wait().await;
    }

    /// One held entry: fetch (abandoned at shutdown: the entry stays held), then release.
    async fn handle(&self, job: Job, limit: &Semaphore) {
        let Ok(mut event) = serde_json::from_slice::<MessageEvent>(&job.payload) else {
            tracing::error!(
                seq = job.seq,
                "a held event is unreadable; releasing it as it is"
            );
            self.release(job.seq, job.payload, None).await;
            return;
        };
        let outcome = if wanted(&self.media.config, &event) {
            tokio::select! {
                _ = self.shutdown.cancelled() => return,
                outcome = self.fetch(&event, job.seq, job.deadline, limit) => Some(outcome),
            }
        } else {
            // Held by a start whose `media.download` had this kind.
            None
        };
        let kind = kind_label(&event);
        if let Some(outcome) = outcome {
            let filled = match outcome {
                // Counted by `fetch`: downloaded or found.
                Ok(stored) => Ok(self.describe(stored).await),
                Err(error) => {
                    crate::metrics::media_download(kind, error_label(error));
                    tracing::warn!(msg_id = %event.id, kind, error = error_label(error), "media not stored");
                    Err(error)
                }
            };
            match (event.media.as_mut(), event.file.as_mut(), filled) {
                (Some(m), _, Ok(s)) => m.stored(s),
                (Some(m), _, Err(e)) => m.failed(e),
                (None, Some(f), Ok(s)) => f.stored(s),
                (None, Some(f), Err(e)) => f.failed(e),
                (None, None, _) => {}
            }
        }
        let payload = match event.to_json() {
            Ok(p) => p,
            Err(e) => {
                tracing::error!(cause = %e, seq = job.seq, "cannot serialize an event; releasing it as it was");
                job.payload
            }
        };
        self.release(job.seq, payload, Some(job.deadline)).await;
    }

    /// Releases `seq` with `payload`, wakes the sinks and forgets its record.
    async fn release(&self, seq: Seq, payload: Vec<u8>, deadline: Option<Instant>) {
        // Every sink waits behind a held entry: a failed release is tried again a few times
        // (the spool's own failures are rare and mostly lasting) before it waits for a restart.
        let mut pauses = self.retry.schedule().take(RELEASE_TRIES - 1);
        let mut released = self.spool.release(seq, payload.clone()).await;
        while released.is_err() {
            let Some(pause) = pauses.next() else { break };
            tracing::warn!(seq, "cannot release a held event; trying again");
            tokio::time::sleep(pause).await;
            released = self.spool.release(seq, payload.clone()).await;
        }
        match released {
            Ok(_) => {
                self.wake.notify_waiters();
                if let Some(deadline) = deadline {
                    let spooled = deadline.checked_sub(self.media.config.wait);
                    if let Some(spooled) = spooled {
                        crate::metrics::media_wait(spooled.elapsed());
                    }
                }
                let _ = tokio::fs::remove_file(self.records.join(seq.to_string())).await;
            }
            // The entry stays held; the next start downloads (or finds) it again.
            Err(e) => tracing::error!(cause = %e, seq, "cannot release a held event"),
        }
    }

    /// The event's fields for a stored file: signed url and inline bytes when configured.
    async fn describe(&self, stored: Stored) -> StoredMedia {
        let url = self.media.signed_url(&stored.sha256).map(String::from);
        let base64 = if stored.size > 0 && stored.size <= self.media.config.inline_max_bytes {
            match tokio::fs::read(&stored.path).await {
                Ok(bytes) => Some(base64::engine::general_purpose::STANDARD.encode(bytes)),
                Err(e) => {
                    tracing::warn!(cause = %e, "cannot read a stored file to inline it");
                    None
                }
            }
        } else {
            None
        };
        StoredMedia {
            sha256: stored.sha256,
            mime: stored.mime,
            size: stored.size,
            width: stored.width,
            height: stored.height,
            url,
            base64,
        }
    }

    /// The stored file of `event`'s media: found from an earlier start, or downloaded with
    /// retries until `deadline`.
    async fn fetch(
        &self,
        event: &MessageEvent,
        seq: Seq,
        deadline: Instant,
        limit: &Semaphore,
    ) -> Result<Stored, MediaError> {
        let record = self.records.join(seq.to_string());
        // `<sha256> <MsgId>`: the MsgId guards against a record left over from another
        // spool file, whose seqs would not be this one's.
        let found = tokio::fs::read_to_string(&record)
            .await
            .ok()
            .and_then(|text| {
                let (sha, msg_id) = text.trim().split_once(' ')?;
                (msg_id == event.id)
                    .then(|| self.media.store.get(sha))
                    .flatten()
            });
        if let Some(stored) = found {
            crate::metrics::media_download(kind_label(event), "found");
            return Ok(stored);
        }
        let Some((req, announced)) = MediaRequest::for_event(event) else {
            return Err(MediaError::FetchFailed);
        };
        let max = self.media.config.max_file_bytes;
        if announced.is_some_and(|n| n > max) {
            return Err(MediaError::TooLarge);
        }
        let Ok(_permit) = tokio::time::timeout_at(deadline, limit.acquire()).await else {
            return Err(MediaError::FetchFailed);
        };
        let mut backoff = self.retry.schedule();
        let mut session = self.session.clone();
        loop {
            // While logged out there is no session to ask with: wait for the next one.
            let current =
                match tokio::time::timeout_at(deadline, session.wait_for(Option::is_some)).await {
                    Ok(Ok(s)) => s.clone(),
                    _ => return Err(MediaError::FetchFailed),
                };
            let Some(current) = current else {
                return Err(MediaError::FetchFailed);
            };
            let why = match tokio::time::timeout_at(deadline, self.try_once(&current, &req)).await {
                Err(_) => return Err(MediaError::FetchFailed),
                Ok(Ok(stored)) => {
                    let text = format!("{} {}", stored.sha256, event.id);
                    if let Err(e) = tokio::fs::write(&record, text).await {
                        tracing::warn!(cause = %e, "cannot record a stored file; a restart would fetch it again");
                    }
                    super::inbound::failpoint("media_stored_before_release");
                    crate::metrics::media_download(kind_label(event), "stored");
                    return Ok(stored);
                }
                // The servers answer a download outside a live session as they answer for
                // media they no longer have: with nothing. If the session has ended or been
                // replaced meanwhile, that answer says nothing about the file.
                Ok(Err(Failure::Final(MediaError::Expired)))
                    if !session
                        .borrow()
                        .as_ref()
                        .is_some_and(|s| s.same_as(&current)) =>
                {
                    "the session ended during the download".to_owned()
                }
                Ok(Err(Failure::Final(error))) => return Err(error),
                Ok(Err(Failure::Retry(why))) => why,
            };
            crate::metrics::retry("media");
            tracing::debug!(cause = %why, msg_id = %event.id, "a media download failed; retrying");
            let pause = backoff.next().unwrap_or(Duration::from_secs(5));
            if tokio::time::timeout_at(deadline, tokio::time::sleep(pause))
                .await
                .is_err()
            {
                return Err(MediaError::FetchFailed);
            }
        }
    }

    /// One download into the store.
    async fn try_once(&self, session: &Session, req: &MediaRequest) -> Result<Stored, Failure> {
        let max = self.media.config.max_file_bytes;
        let creds = session.credentials();
        let mut download = match session.client().download(&creds, req, max).await {
            Ok(d) => d,
            Err(DownloadError::Gone { .. }) => return Err(Failure::Final(MediaError::Expired)),
            Err(DownloadError::TooLarge { .. }) => {
                return Err(Failure::Final(MediaError::TooLarge))
            }
            Err(DownloadError::Failed(e)) => return Err(Failure::Retry(e.to_string())),
        };
        let mut writer = self
            .media
            .store
            .writer(max)
            .map_err(|e| Failure::Retry(format!("cannot write to the media store: {e}")))?;
        let ingest = |e: IngestError| match e {
            IngestError::TooLarge { .. } => Failure::Final(MediaError::TooLarge),
            other => Failure::Retry(other.to_string()),
        };
        loop {
            match download.chunk().await {
                Ok(Some(chunk)) => {
                    crate::metrics::media_bytes(chunk.len());
                    writer.write(&chunk).await.map_err(ingest)?;
                }
                Ok(None) => break,
                Err(DownloadError::Gone { .. }) => return Err(Failure::Final(MediaError::Expired)),
                Err(e) => return Err(Failure::Retry(e.to_string())),
            }
        }
        writer.finish().await.map_err(ingest)
    }
}

fn kind_label(event: &MessageEvent) -> &'static str {
    match (&event.media, &event.file) {
        (Some(m), _) => match m.kind {
            MediaKind::Image => "image",
            MediaKind::Voice => "voice",
            MediaKind::Video => "video",
            MediaKind::Emoticon => "emoticon",
        },
        _ => "file",
    }
}

fn error_label(e: MediaError) -> &'static str {
    match e {
        MediaError::TooLarge => "too_large",
        MediaError::Expired => "expired",
        MediaError::FetchFailed => "fetch_failed",
    }
}

#[cfg(test)]
mod tests;
