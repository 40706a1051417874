//! The intake: commands from every source are validated and written to the durable outbound
//! queue, then acknowledged to their source; an invalid one is answered at once instead.
//!
//! A command with media has its source stored first (`media_source`), and is queued as
//! `{"sha256", "name"}`. That can take as long as a fetch (`media.fetch.timeout`), so it runs
//! beside the intake, up to [`STORING_AT_ONCE`] at a time: a slow URL holds up no other
//! source. Each source hands in one command at a time and waits until it is queued or
//! answered before it acknowledges it and hands in the next, so order holds within a source
//! (a command's own text always follows its media). A command whose file is still being
//! stored at shutdown is not acknowledged, so its broker delivers it again; a file already
//! stored is kept, and a fetch after the restart stores the same bytes under the same name.

use futures_util::stream::{FuturesUnordered, StreamExt};
use time::OffsetDateTime;
use tokio::sync::{mpsc, oneshot};

use super::media_source::{self, Fetcher};
use super::outbound::{Record, REQUEST_ID_WINDOW};
use super::Bridge;
use crate::event::{parse_command, Command, CommandError, ErrorCode, MediaSource, SendResult};
use crate::sinks::webhook::REPLY_PREFIX;
use crate::sinks::{Accepted, IncomingCommand, Origin};

/// How many commands may have their media stored at once before the intake waits.
const STORING_AT_ONCE: usize = 8;

impl Bridge {
    /// Validates each incoming command: an invalid one is answered at once, a valid one is
    /// written to the durable queue (after its media is stored). Either way its source is then
    /// told it may acknowledge.
    pub(super) async fn intake_loop(&self, commands: &mut mpsc::Receiver<IncomingCommand>) {
        let fetcher = media_source::fetcher(&self.config.media);
        let mut storing = FuturesUnordered::new();
        loop {
            let incoming = tokio::select! {
                _ = self.shutdown.cancelled() => return,
                Some(()) = storing.next(), if !storing.is_empty() => continue,
                c = commands.recv(), if storing.len() < STORING_AT_ONCE => match c {
                    Some(c) => c,
                    None => return,
                },
            };
            let reply_to = match &incoming.origin {
                Origin::Nats { reply } => reply.clone(),
                _ => None,
            };
            let parsed = parse_command(&incoming.payload, self.config.send.max_bytes)
                .and_then(|c| reserved_request_id(c, &incoming.origin));
            match parsed {
                Ok(command) if self.needs_storing(&command).await => {
                    let stored_already = command
                        .media
                        .as_ref()
                        .is_some_and(|m| matches!(m.source, MediaSource::Sha256(_)));
                    let task =
                        self.store_then_queue(command, reply_to, incoming.accepted, &fetcher);
                    // A stored file is only looked up: done in line, it keeps its place.
                    if stored_already {
                        task.await;
                    } else {
                        storing.push(task);
                    }
                }
                parsed => {
                    let handled = match parsed {
                        Err(e) => {
                            tracing::info!(code = %e.code, origin = ?incoming.origin, "rejected a command: {}", e.message);
                            self.reject(SendResult::from(e), reply_to).await
                        }
                        Ok(command) => self.queue(command, reply_to).await,
                    };
                    settle(incoming.accepted, handled);
                }
            }
        }
    }

    /// True when the command has media to store (or, for a stored file, to look up) before
    /// it is queued; not when its request_id already has a result: the repeat is answered as
    /// such by the sender without fetching anything.
    async fn needs_storing(&self, command: &Command) -> bool {
        if command.media.is_none() {
            return false;
        }
        match &command.request_id {
            Some(rid) => !matches!(
                self.spool.recent_result(rid, REQUEST_ID_WINDOW).await,
                Ok(Some(_))
            ),
            None => true,
        }
    }

    /// Stores the command's media, then queues it as `{"sha256", "name"}`, or answers why not.
    async fn store_then_queue(
        &self,
        mut command: Command,
        reply_to: Option<String>,
        accepted: Option<oneshot::Sender<Accepted>>,
        fetcher: &Fetcher,
    ) {
        let Some(media) = command.media.as_mut() else {
            return;
        };
        let stored = media_source::store(media, &self.media.store, fetcher, &self.config.media);
        let handled = match stored.await {
            Ok((file, name)) => {
                tracing::debug!(sha256 = %file.sha256, size = file.size, source = media.source.field(), "stored a command's media");
                media.source = MediaSource::Sha256(file.sha256);
                media.name = Some(name);
                self.queue(command, reply_to).await
            }
            Err(e) => {
                tracing::info!(code = %e.code, source = media.source.field(), "refused a command's media: {}", e.message);
                let result = SendResult::err(command.request_id.clone(), e.code, e.message);
                self.reject(result, reply_to).await
            }
        };
        settle(accepted, handled);
    }

    /// Writes a valid command to the durable queue.
    async fn queue(&self, command: Command, reply_to: Option<String>) -> Option<Accepted> {
        let record = Record {
            command,
            received_ms: (OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as i64,
            reply_to,
        };
        let queued = match serde_json::to_vec(&record) {
            Ok(r) => self
                .spool
                .enqueue_command(r)
                .await
                .map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        };
        match queued {
            Ok(id) => {
                self.queue_changed.notify_one();
                Some(Accepted::Queued(id))
            }
            Err(e) => {
                tracing::error!(cause = %e, "cannot queue a command");
                None
            }
        }
    }

    /// Answers a command that will not be queued.
    async fn reject(&self, result: SendResult, reply_to: Option<String>) -> Option<Accepted> {
        self.answer(None, result.clone(), reply_to)
            .await
            .then_some(Accepted::Answered(Box::new(result)))
    }
}

/// Tells the source what became of its command. Not handled (the spool failed): dropping
/// `accepted` tells the source not to acknowledge it.
fn settle(accepted: Option<oneshot::Sender<Accepted>>, handled: Option<Accepted>) {
    if let (Some(outcome), Some(done)) = (handled, accepted) {
        let _ = done.send(outcome);
    }
}

/// Refuses a command whose request_id is a webhook reply's, unless it is one: a command that
/// took a reply's request_id first would be sent in the reply's place, and the reply itself
/// would be answered as a repeat.
fn reserved_request_id(command: Command, origin: &Origin) -> Result<Command, CommandError> {
    match &command.request_id {
        Some(rid) if rid.starts_with(REPLY_PREFIX) && *origin != Origin::Webhook => {
            Err(CommandError {
                code: ErrorCode::InvalidCommand,
                message: format!(
                    "`request_id` must not start with `{REPLY_PREFIX}`: that prefix is reserved \
                     for webhook replies"
                ),
                request_id: command.request_id.clone(),
            })
        }
        _ => Ok(command),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_webhook_replies_may_use_the_reply_prefix() {
        let command = |rid: &str| {
            parse_command(
                format!(r#"{{"to":"filehelper","text":"hi","request_id":"{rid}"}}"#).as_bytes(),
                1024,
            )
            .unwrap()
        };
        for origin in [
            Origin::Stdin,
            Origin::Mqtt,
            Origin::Nats { reply: None },
            Origin::Http,
        ] {
            let err = reserved_request_id(command("reply:home:42"), &origin).unwrap_err();
            assert_eq!(err.code, ErrorCode::InvalidCommand);
            assert_eq!(err.request_id.as_deref(), Some("reply:home:42"));
            assert!(err.message.contains("reserved"), "{}", err.message);
            assert!(reserved_request_id(command("r-reply:1"), &origin).is_ok());
        }
        assert!(reserved_request_id(command("reply:home:42"), &Origin::Webhook).is_ok());
    }
}
