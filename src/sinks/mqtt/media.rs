//! Media on the MQTT link (DESIGN.md "Media"): the bytes of the files a message event refers
//! to (`media.sha256`, `file.sha256`), read from the media store and published before the event.
//!
//! - With `mqtt.media: true`, every such file goes to `<base>/<account>/media/<sha256>` (the
//!   event's QoS, not retained: a retained copy of every file would pile up in the broker
//!   for ever), and the event is published only once the broker confirmed the file (its
//!   PUBACK), so a subscriber that has the event can have had the file. Entries without media
//!   keep their pipelining; an entry with media waits for that one confirmation.
//! - With Home Assistant discovery on, an inbound image (not one the bridge sent) also goes to
//!   `<base>/<account>/homeassistant/last_image`, retained, for the `last_image` entity; this
//!   needs no `mqtt.media`.
//!
//! (An event whose download failed names no file: its `sha256` is null.) A file the store no
//! longer has (evicted) or cannot read is skipped: the event is published anyway, and the skip is logged and counted
//! (`wxbridge_media_skipped_total{sink="mqtt"}`). A file too large for an MQTT packet (MQTT's
//! own limit, 256 MiB) is skipped the same way, rather than breaking the connection. The link
//! task reads one file at a time, on Tokio's blocking pool, and holds it in memory while it is
//! published (rumqttc takes whole payloads): a file costs about twice its size while it goes out.
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};

use rumqttc::QoS;
use tokio_util::sync::CancellationToken;

use super::link::Publisher;
use super::options::MAX_MEDIA_PACKET;
use super::topics::Topics;
use super::tracker::Tag;
use crate::media::MediaStore;
use crate::sinks::media::referred;

/// What the sink needs to put media next to the events: the store and what to publish.
#[derive(Clone)]
pub(super) struct Media {
    /// Where the files are.
    pub store: MediaStore,
    /// `mqtt.media`: each file's bytes on the media topic, before its event.
    pub bytes: bool,
    /// Home Assistant discovery is on: inbound images also as its last image.
    pub last_image: bool,
}

/// A file to publish before its event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct File {
    /// Its sha256 (lowercase hex).
    pub sha256: String,
    /// Where the store keeps it.
    pub path: PathBuf,
    /// `<base>/<account>/media/<sha256>` with `mqtt.media`: publish there and wait for the
    /// broker's confirmation before the event.
    pub bytes_topic: Option<String>,
    /// Also publish it as Home Assistant's last image.
    pub last_image: bool,
}

/// The size of a PUBLISH of `payload` bytes on `topic` (fixed header, topic, packet id).
pub(super) fn packet_size(topic: &str, payload: u64) -> u64 {
    (1 + 4 + 2 + topic.len() + 2) as u64 + payload
}

impl Media {
    /// What to publish before a message event with this payload: each referred file the store
    /// has, with where it goes. What cannot go is logged and counted here.
    pub fn files(&self, id: &str, payload: &[u8], topics: &Topics) -> Vec<File> {
        let mut files = Vec::new();
        for r in referred(payload) {
            let last_image = self.last_image && r.inbound_image;
            if !self.bytes && !last_image {
                continue;
            }
            let Some(stored) = self.store.get(&r.sha256) else {
                tracing::warn!(
                    id,
                    sha256 = %r.sha256,
                    "the event's file is not in the media store (evicted?); the event goes to \
                     mqtt without it"
                );
                crate::metrics::media_skipped("mqtt", "missing");
                continue;
            };
            let topic = topics.media(&r.sha256);
            if packet_size(&topic, stored.size) > MAX_MEDIA_PACKET as u64 {
                tracing::warn!(
                    id,
                    sha256 = %r.sha256,
                    bytes = stored.size,
                    limit = MAX_MEDIA_PACKET,
                    "the event's file is larger than an mqtt packet can be; the event goes to \
                     mqtt without it"
                );
                crate::metrics::media_skipped("mqtt", "too_large");
                continue;
            }
            let last_image = last_image && stored.mime.starts_with("image/");
            if self.bytes || last_image {
                files.push(File {
                    sha256: r.sha256,
                    path: stored.path,
                    bytes_topic: self.bytes.then_some(topic),
                    last_image,
                });
            }
        }
        files
    }
}

/// Clears the link task's busy flag however the publish of a file ends.
struct Busy<'a>(&'a AtomicBool);

impl Drop for Busy<'_> {
    fn drop(&mut self) {
        self.0.store(false, Ordering::Relaxed);
    }
}

impl Publisher {
    /// Publishes one file ahead of its event: on the media topic, then waits for the broker's
    /// confirmation (QoS 1 and 2), and as Home Assistant's last image. Returns early when the
    /// sink gives up on the batch (`abandoned`) or at shutdown; a file that cannot be read is
    /// skipped, logged and counted.
    pub(super) async fn publish_file(&self, file: &File, qos: QoS, abandoned: &CancellationToken) {
        self.media_busy.store(true, Ordering::Relaxed);
        let _busy = Busy(&self.media_busy);
        // On Tokio's blocking pool: a large file never holds up a runtime worker.
        let bytes = match tokio::fs::read(&file.path).await {
            Ok(bytes) => bytes::Bytes::from(bytes),
            Err(e) => {
                tracing::warn!(
                    sha256 = %file.sha256,
                    cause = %e,
                    "cannot read the event's file from the media store (evicted?); the event \
                     goes to mqtt without it"
                );
                crate::metrics::media_skipped("mqtt", "missing");
                return;
            }
        };
        if let Some(topic) = &file.bytes_topic {
            let id = self.media_ids.fetch_add(1, Ordering::Relaxed) + 1;
            let mut acked = self.media_acked.clone();
            self.publish(
                Tag::Media {
                    lane: self.lane,
                    id,
                },
                topic,
                qos,
                false,
                bytes.clone(),
            )
            .await;
            if qos != QoS::AtMostOnce {
                tokio::select! {
                    _ = acked.wait_for(|a| *a >= id) => {}
                    _ = abandoned.cancelled() => return,
                    _ = self.control.shutdown.cancelled() => return,
                }
            }
        }
        if file.last_image {
            self.retained(&self.topics.ha_last_image, bytes).await;
        }
    }
}
