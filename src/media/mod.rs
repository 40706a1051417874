//! Media files: the content-addressed [`MediaStore`] that inbound downloads, outbound sources
//! and multipart uploads stream into, and the [`Signer`] of the URLs that let others fetch a
//! stored file from `GET /media/<sha256>` without the API token (DESIGN.md "Media").
//!
//! A file is named by the sha256 of its bytes, so the same photo received twice, forwarded or
//! uploaded again is stored once, and a name always means the same bytes. [`Media`] bundles
//! what `run` opens once and hands to the bridge, the sinks and the HTTP API.
use std::io;
use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use thiserror::Error;
use url::Url;

use crate::config::{Config, MediaConfig};

mod sign;
mod sniff;
mod store;
#[cfg(test)]
mod tests;

pub use sign::{Signer, DEFAULT_VALIDITY, KEY_FILE};
pub use sniff::{mime_of, OCTET_STREAM, PLAIN_TEXT};
pub use store::{MediaStore, MediaWriter};

/// A file in the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stored {
    /// sha256 of the bytes, lowercase hex: the file's name.
    pub sha256: String,
    /// Size in bytes.
    pub size: u64,
    /// MIME type sniffed from the bytes (`application/octet-stream` when unknown).
    pub mime: String,
    /// Width in pixels, for images.
    pub width: Option<u32>,
    /// Height in pixels, for images.
    pub height: Option<u32>,
    /// Where it is: `<dir>/<sha256[0:2]>/<sha256>`.
    pub path: PathBuf,
}

/// Why bytes could not be stored.
#[derive(Debug, Error)]
pub enum IngestError {
    /// More than the caller's limit arrived; nothing was kept.
    #[error("larger than {limit} bytes")]
    TooLarge {
        /// The limit in bytes.
        limit: u64,
    },
    /// Reading the source or writing the store failed; nothing was kept.
    #[error(transparent)]
    Io(#[from] io::Error),
}

/// How much the store keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bounds {
    /// Total bytes; least recently used files are evicted past it.
    pub max_bytes: u64,
    /// Files unused for this long are evicted.
    pub max_age: Duration,
}

/// Whether `text` is a sha256 as the store names files: 64 lowercase hex digits. Anything
/// else never becomes a path.
pub fn is_sha256(text: &str) -> bool {
    text.len() == 64
        && text
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// The store, the URL signer and the `media` section, opened once by `run`. Cheap to clone.
#[derive(Clone)]
pub struct Media {
    /// The files.
    pub store: MediaStore,
    /// Signs `media.url` and checks signed `GET /media/…` requests.
    pub signer: Signer,
    /// Where others reach the HTTP API (`media.public_url`, else `http.public_url`, else
    /// `http://<http.listen>`); `None` without an HTTP listener, and then events carry no URL.
    pub base_url: Option<Url>,
    /// The `media` section.
    pub config: MediaConfig,
}

impl Media {
    /// Opens the store (`media.dir`) and the signing key (`<state_dir>/media.key`). The
    /// error says which of the two failed.
    pub fn open(config: &Config) -> Result<Media, String> {
        let dir = config.media.dir_in(&config.state_dir);
        let bounds = Bounds {
            max_bytes: config.media.max_bytes,
            max_age: config.media.max_age,
        };
        let store = MediaStore::open(dir.clone(), bounds).map_err(|e| {
            format!(
                "media.dir: cannot open the media store {}: {e}",
                dir.display()
            )
        })?;
        let signer = Signer::load_or_create(&config.state_dir)
            .map_err(|e| format!("cannot load the media signing key: {e}"))?;
        Ok(Media {
            store,
            signer,
            base_url: base_url(config),
            config: config.media.clone(),
        })
    }

    /// A URL for `sha256`, signed for [`DEFAULT_VALIDITY`] from now; `None` without a base.
    pub fn signed_url(&self, sha256: &str) -> Option<Url> {
        let base = self.base_url.as_ref()?;
        let exp = unix_now().saturating_add(DEFAULT_VALIDITY.as_secs());
        Some(self.signer.url(base, sha256, exp))
    }

    /// With several accounts each account's files are served under `/accounts/<account>/`:
    /// its signed URLs point there (the signature covers `/media/<sha256>` either way).
    pub fn serve_under_account(&mut self, account: &str) {
        let Some(base) = &self.base_url else { return };
        let mut dir = base.clone();
        dir.set_query(None);
        dir.set_fragment(None);
        if !dir.path().ends_with('/') {
            let path = format!("{}/", dir.path());
            dir.set_path(&path);
        }
        self.base_url = dir.join(&format!("accounts/{account}/")).ok();
    }

    /// How often [`MediaStore::upkeep`] should look for files that grew old: a tenth of
    /// `max_age`, between a second and an hour.
    pub fn upkeep_every(&self) -> Duration {
        (self.config.max_age / 10).clamp(Duration::from_secs(1), Duration::from_secs(3600))
    }
}

/// Where others reach the HTTP API: `media.public_url`, `http.public_url` or the listen
/// address.
fn base_url(config: &Config) -> Option<Url> {
    if let Some(url) = &config.media.public_url {
        return Some(url.clone());
    }
    let http = config.http.as_ref()?;
    if let Some(url) = &http.public_url {
        return Some(url.clone());
    }
    Url::parse(&format!("http://{}/", http.listen)).ok()
}

/// Seconds since the Unix epoch.
pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}
