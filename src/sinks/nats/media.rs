//! Media in the JetStream object store (DESIGN.md "Media"): with JetStream on, each file a
//! message event refers to (`media.sha256`, `file.sha256`) is put into the object store bucket
//! `nats.media_bucket`, object name = the sha256, before the event is published. A bucket that
//! is missing is created (file storage, the server's default limits; its stream is
//! `OBJ_<bucket>`); an object already there with the same digest is not put again, so a
//! redelivery or a forwarded file costs one lookup. The object's metadata carries `mime`.
//! Without JetStream nothing extra happens: core NATS has nowhere to keep a file, and its
//! subscribers can fetch `media.url` instead.
//!
//! A file the media store no longer has (evicted) is skipped: the event goes anyway, logged and
//! counted (`wxbridge_media_skipped_total{sink="nats",reason="missing"}`). A put that fails
//! while the connection is up and nothing timed out is the server refusing it (the bucket is
//! full, say): it would fail the same way for ever, so it is logged as an error and counted
//! (`reason="failed"`) and the event goes without it. Anything else fails the delivery, which
//! is retried with the event, as a failed publish would be.
use std::collections::HashMap;

use async_nats::connection::State;
use async_nats::jetstream::context::Context;
use async_nats::jetstream::object_store::{Config, ObjectMetadata, ObjectStore, PutErrorKind};
use async_nats::jetstream::stream::StorageType;
use base64::Engine as _;

use crate::media::MediaStore;

/// The sink's side of the object store.
pub(super) struct Objects {
    /// Where the files are.
    pub store: MediaStore,
    /// `nats.media_bucket`.
    pub bucket: String,
    /// The stream's context (its requests bounded by [`super::STALL`]).
    pub context: Context,
    /// The bucket, once looked up or created; forgotten after a failure so the next delivery
    /// looks again (it may have been deleted).
    pub handle: Option<ObjectStore>,
}

/// What became of one file.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Put {
    /// It is in the bucket (now, or already was).
    Stored,
    /// It was skipped for good (logged and counted); the event goes without it.
    Skipped,
}

/// The object store's digest of a file with this sha256 (`SHA-256=` and the URL-safe
/// base64 of the 32 bytes), or None when `sha256` is not 64 hex digits.
pub(super) fn digest(sha256: &str) -> Option<String> {
    if sha256.len() != 64 {
        return None;
    }
    let bytes = (0..32)
        .map(|i| u8::from_str_radix(sha256.get(2 * i..2 * i + 2)?, 16).ok())
        .collect::<Option<Vec<u8>>>()?;
    Some(format!(
        "SHA-256={}",
        base64::engine::general_purpose::URL_SAFE.encode(bytes)
    ))
}

impl Objects {
    async fn bucket(&mut self) -> Result<ObjectStore, String> {
        if let Some(handle) = &self.handle {
            return Ok(handle.clone());
        }
        let handle = match self.context.get_object_store(&self.bucket).await {
            Ok(handle) => handle,
            Err(missing) => {
                let config = Config {
                    bucket: self.bucket.clone(),
                    storage: StorageType::File,
                    ..Default::default()
                };
                let handle = self
                    .context
                    .create_object_store(config)
                    .await
                    .map_err(|e| {
                        format!(
                            "cannot look up ({missing}) or create the object store `{}`: {e}",
                            self.bucket
                        )
                    })?;
                tracing::info!(bucket = %self.bucket, "created the JetStream object store for media");
                handle
            }
        };
        self.handle = Some(handle.clone());
        Ok(handle)
    }

    /// Puts the file `sha256` into the bucket unless it is there already. `Err` when the
    /// delivery should fail and be retried.
    pub async fn put(
        &mut self,
        id: &str,
        sha256: &str,
        client: &async_nats::Client,
    ) -> Result<Put, String> {
        let Some(stored) = self.store.get(sha256) else {
            tracing::warn!(
                id,
                sha256,
                "the event's file is not in the media store (evicted?); the event goes to nats \
                 without it"
            );
            crate::metrics::media_skipped("nats", "missing");
            return Ok(Put::Skipped);
        };
        let bucket = self.bucket().await?;
        match bucket.info(sha256).await {
            Ok(info) if !info.deleted && info.digest == digest(sha256) => {
                return Ok(Put::Stored);
            }
            _ => {}
        }
        let mut file = match tokio::fs::File::open(&stored.path).await {
            Ok(file) => file,
            Err(e) => {
                tracing::warn!(id, sha256, cause = %e, "cannot read the event's file from the media store (evicted?); the event goes to nats without it");
                crate::metrics::media_skipped("nats", "missing");
                return Ok(Put::Skipped);
            }
        };
        let meta = ObjectMetadata {
            name: sha256.to_owned(),
            metadata: HashMap::from([("mime".to_owned(), stored.mime.clone())]),
            ..Default::default()
        };
        match bucket.put(meta, &mut file).await {
            Ok(_) => Ok(Put::Stored),
            Err(e) => {
                self.handle = None;
                let cause = format!(
                    "cannot put {sha256} into the object store `{}`: {e}",
                    self.bucket
                );
                let timed_out = e.kind() == PutErrorKind::TimedOut || cause.contains("timed out");
                if client.connection_state() != State::Connected || timed_out {
                    return Err(cause);
                }
                tracing::error!(id, sha256, bytes = stored.size, cause = %cause, "the NATS server refuses the file; the event goes without it");
                crate::metrics::media_skipped("nats", "failed");
                Ok(Put::Skipped)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_digest_is_the_object_stores_spelling_of_the_sha256() {
        // sha256("test"), as the object store writes it after a put.
        let hex = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";
        assert_eq!(
            digest(hex).unwrap(),
            "SHA-256=n4bQgYhMfWWaL-qgxVrQFaO_TxsrC4Is0V1sFbDwCgg="
        );
        assert_eq!(digest(&hex[..62]), None);
        assert_eq!(digest(&format!("{}zz", &hex[..62])), None);
    }
}
