//! Delivery of spooled entries to NATS: core publish + flush, or JetStream publish + ack for
//! messages and events (the guarantee is in the module docs of [`super`]).
use std::sync::atomic::Ordering;
use std::sync::Arc;

use async_nats::client::PublishErrorKind as CorePublishErrorKind;
use async_nats::connection::State;
use async_nats::jetstream::context::{PublishAckFuture, PublishErrorKind};
use async_nats::jetstream::message::PublishMessage;
use async_nats::Client;
use bytes::Bytes;
use tokio::sync::watch;
use tokio::time::timeout;
use tokio_util::task::TaskTracker;

use super::connect::LinkState;
use super::media::Objects;
use super::stream::Target;
use super::{Subjects, STALL};
use crate::sinks::media::referred;
use crate::sinks::{DeliveryError, Sink};
use crate::spool::{Entry, Kind};

/// The NATS sink: delivers spooled entries and owns the link's background tasks.
/// Built by [`super::Prepared::start`].
pub struct NatsSink {
    pub(super) client: Client,
    /// The stream's context when JetStream is on.
    pub(super) jetstream: Option<Target>,
    pub(super) subjects: Subjects,
    /// Makes up `Nats-Msg-Id`.
    pub(super) account: String,
    pub(super) link: Arc<LinkState>,
    pub(super) tasks: TaskTracker,
    /// The media object store, with JetStream and a media store.
    pub(super) objects: Option<Objects>,
}

/// How far one entry of a batch got while publishing.
enum Sent {
    /// Published to the stream; counts once this ack arrives.
    Stream(PublishAckFuture),
    /// Published by core NATS; counts once the flush completed on the same connection.
    Core,
    /// Refused for good by the client (too large for the server, or a bad subject); logged
    /// and counted, or it would block the sink for ever.
    Refused,
}

fn failed(delivered: usize, cause: impl Into<String>) -> DeliveryError {
    DeliveryError {
        delivered,
        cause: cause.into(),
    }
}

impl NatsSink {
    /// The link's background tasks (command and request handlers, state and QR publishers,
    /// the stream keeper); they end when `Control::shutdown` is cancelled.
    pub fn tasks(&self) -> TaskTracker {
        self.tasks.clone()
    }

    /// The subjects this link uses.
    pub fn subjects(&self) -> &Subjects {
        &self.subjects
    }

    /// How many times the client has connected; a change means a new connection.
    fn connects(&self) -> u64 {
        self.client.statistics().connects.load(Ordering::Relaxed)
    }

    async fn publish(&self, entry: &Entry) -> Result<Sent, String> {
        let payload = Bytes::from(entry.payload.clone());
        let subject = self.subjects.for_kind(entry.kind);
        // Results and receipts answer commands: plain publishes, outside the event stream.
        let answer = matches!(entry.kind, Kind::Result | Kind::Receipt);
        if let (Some(js), false) = (&self.jetstream, answer) {
            let message = PublishMessage::build()
                .payload(payload)
                .message_id(format!("{}:{}", self.account, entry.id));
            return match js.context.send_publish(subject.to_owned(), message).await {
                Ok(ack) => Ok(Sent::Stream(ack)),
                Err(e) if e.kind() == PublishErrorKind::MaxPayloadExceeded => {
                    refuse(entry, &e);
                    Ok(Sent::Refused)
                }
                Err(e) => Err(format!("JetStream publish failed: {e}")),
            };
        }
        match self
            .client
            .publish(subject.to_owned(), payload.clone())
            .await
        {
            Ok(()) => {}
            Err(e) if e.kind() == CorePublishErrorKind::Send => {
                return Err(format!("publish failed: {e}"));
            }
            Err(e) => {
                refuse(entry, &e);
                return Ok(Sent::Refused);
            }
        }
        if let Some(reply) = &entry.reply_to {
            // The requester's answer; the result itself is already on `.send.result`.
            if let Err(e) = self.client.publish(reply.clone(), payload).await {
                if e.kind() == CorePublishErrorKind::Send {
                    return Err(format!("publish failed: {e}"));
                }
                tracing::warn!(id = %entry.id, reply = %reply, cause = %e, "cannot answer the send request");
            }
        }
        Ok(Sent::Core)
    }

    async fn ensure_stream(&self) -> Result<(), DeliveryError> {
        let Some(js) = &self.jetstream else {
            return Ok(());
        };
        if self.link.stream_checked.load(Ordering::Relaxed) {
            return Ok(());
        }
        match timeout(STALL, js.ensure()).await {
            Ok(Ok(())) => {
                self.link.stream_checked.store(true, Ordering::Relaxed);
                Ok(())
            }
            Ok(Err(cause)) => Err(failed(0, cause)),
            Err(_) => Err(failed(0, "the JetStream stream check timed out")),
        }
    }
}

fn refuse(entry: &Entry, cause: &dyn std::fmt::Display) {
    tracing::error!(
        id = %entry.id,
        kind = entry.kind.as_str(),
        bytes = entry.payload.len(),
        cause = %cause,
        "NATS refuses this entry for good; it is skipped"
    );
}

/// Waits for `changed` on a disconnect counter; never returns when the counter is gone.
async fn disconnected(rx: &mut watch::Receiver<u64>) {
    if rx.changed().await.is_err() {
        std::future::pending::<()>().await;
    }
}

impl Sink for NatsSink {
    fn name(&self) -> &str {
        "nats"
    }

    fn accepts(&self, _kind: Kind) -> bool {
        true
    }

    async fn deliver(&mut self, batch: &[Entry]) -> Result<(), DeliveryError> {
        if batch.is_empty() {
            return Ok(());
        }
        let mut disconnects = self.link.disconnects.subscribe();
        let connects = self.connects();
        // While disconnected the client would buffer (and maybe lose) publishes; fail at once
        // and let the spool keep them.
        if self.client.connection_state() != State::Connected {
            return Err(failed(0, "not connected to the NATS server"));
        }
        self.ensure_stream().await?;

        let mut sent = Vec::with_capacity(batch.len());
        let mut stopped = None;
        'entries: for entry in batch {
            // The event's files go into the object store first (`media.rs`).
            if let (Some(objects), Kind::Message) = (&mut self.objects, entry.kind) {
                for file in referred(&entry.payload) {
                    let put = tokio::select! {
                        r = objects.put(&entry.id, &file.sha256, &self.client) => r,
                        _ = disconnected(&mut disconnects) => {
                            Err("the NATS connection was lost".to_owned())
                        }
                    };
                    if let Err(cause) = put {
                        stopped = Some(cause);
                        break 'entries;
                    }
                }
            }
            let step = tokio::select! {
                r = timeout(STALL, self.publish(entry)) => r,
                _ = disconnected(&mut disconnects) => {
                    stopped = Some("the NATS connection was lost".to_owned());
                    break;
                }
            };
            match step {
                Ok(Ok(s)) => sent.push(s),
                Ok(Err(cause)) => {
                    stopped = Some(cause);
                    break;
                }
                Err(_) => {
                    stopped = Some("publishing stalled".to_owned());
                    break;
                }
            }
        }

        // Core publishes count only after a flush on the connection they were written to: a
        // flush after a reconnect says nothing about what the old connection lost.
        let mut flush_error = None;
        if sent.iter().any(|s| matches!(s, Sent::Core)) {
            let flushed = tokio::select! {
                r = timeout(STALL, self.client.flush()) => match r {
                    Ok(Ok(())) => Ok(()),
                    Ok(Err(e)) => Err(format!("flush failed: {e}")),
                    Err(_) => Err("flush stalled".to_owned()),
                },
                _ = disconnected(&mut disconnects) => Err("the NATS connection was lost".to_owned()),
            };
            flush_error = match flushed {
                Ok(()) if self.connects() != connects => {
                    Some("reconnected while the batch was written".to_owned())
                }
                Ok(()) => None,
                Err(cause) => Some(cause),
            };
        }

        let mut delivered = 0;
        for s in sent {
            match s {
                Sent::Refused => {}
                Sent::Core => {
                    if let Some(cause) = flush_error.take() {
                        return Err(failed(delivered, cause));
                    }
                }
                Sent::Stream(ack) => {
                    let acked = tokio::select! {
                        r = ack => r.map_err(|e| {
                            if e.kind() == PublishErrorKind::StreamNotFound {
                                self.link.stream_checked.store(false, Ordering::Relaxed);
                            }
                            format!("JetStream ack failed: {e}")
                        }),
                        _ = disconnected(&mut disconnects) => {
                            Err("the NATS connection was lost before the ack".to_owned())
                        }
                    };
                    match acked {
                        Ok(ack) if ack.duplicate => {
                            tracing::debug!(id = %batch[delivered].id, "JetStream already had it");
                        }
                        Ok(_) => {}
                        Err(cause) => return Err(failed(delivered, cause)),
                    }
                }
            }
            delivered += 1;
        }
        match stopped {
            Some(cause) => Err(failed(delivered, cause)),
            None => Ok(()),
        }
    }
}
