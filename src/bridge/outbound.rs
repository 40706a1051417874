//! The outbound side: commands from every source are validated and written to the durable
//! queue (then acknowledged to their source), and the sender takes them in order, resolves the
//! recipient, waits for the limiter and a live session, sends, and spools exactly one result.
use std::time::Duration;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use tokio::sync::mpsc;

use super::allow::display;
use super::Bridge;
use crate::event::{parse_command, Command, CommandError, ErrorCode, SendResult, SessionState};
use crate::limiter::Limiter;
use crate::sinks::webhook::REPLY_PREFIX;
use crate::sinks::{Accepted, IncomingCommand, Origin};
use crate::spool::{Kind, NewEntry};
use crate::wechat::client::SendError;
use crate::wechat::contacts::ResolveError;
use crate::wechat::protocol::Contact;
use crate::wechat::session::Session;

/// How long a request_id is remembered for idempotency (DESIGN.md).
const REQUEST_ID_WINDOW: Duration = Duration::from_secs(24 * 60 * 60);
/// How often a 1205 answer is retried before the command is answered `rate_limited`.
const TOO_FREQUENT_RETRIES: u32 = 3;

/// A command as the outbound queue stores it.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Record {
    command: Command,
    /// When it arrived (unix ms): the default deadline counts from here.
    received_ms: i64,
    /// The NATS reply subject of a request.
    reply_to: Option<String>,
}

impl Bridge {
    /// Validates each incoming command: an invalid one is answered at once, a valid one is
    /// written to the durable queue. Either way its source is then told it may acknowledge.
    pub(super) async fn intake_loop(&self, mut commands: mpsc::Receiver<IncomingCommand>) {
        loop {
            let incoming = tokio::select! {
                _ = self.shutdown.cancelled() => return,
                c = commands.recv() => match c { Some(c) => c, None => return },
            };
            let reply_to = match &incoming.origin {
                Origin::Nats { reply } => reply.clone(),
                _ => None,
            };
            let parsed = parse_command(&incoming.payload, self.config.send.max_bytes)
                .and_then(|c| reserved_request_id(c, &incoming.origin));
            let handled = match parsed {
                Err(e) => {
                    tracing::info!(code = %e.code, origin = ?incoming.origin, "rejected a command: {}", e.message);
                    let result = SendResult::from(e);
                    self.answer(None, result.clone(), reply_to)
                        .await
                        .then_some(Accepted::Answered(result))
                }
                Ok(command) => {
                    let record = Record {
                        command,
                        received_ms: (OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000)
                            as i64,
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
            };
            // Not handled: dropping `accepted` tells the source not to acknowledge it.
            if let (Some(outcome), Some(done)) = (handled, incoming.accepted) {
                let _ = done.send(outcome);
            }
        }
    }

    /// Spools a result (completing queued command `id` when given). False if the spool failed.
    async fn answer(&self, id: Option<u64>, result: SendResult, reply_to: Option<String>) -> bool {
        crate::metrics::send_result(&result);
        let payload = match serde_json::to_vec(&result) {
            Ok(p) => p,
            Err(e) => {
                tracing::error!(cause = %e, "cannot serialize a result");
                return false;
            }
        };
        let entry = NewEntry {
            kind: Kind::Result,
            id: super::new_id(),
            payload,
            reply_to,
        };
        let stored = match id {
            Some(id) => self
                .spool
                .complete_command(id, result.request_id.clone(), entry)
                .await
                .map(|_| {
                    // Nobody listening is fine: only synchronous sources wait here.
                    let _ = self.results.send((id, result));
                }),
            None => self
                .spool
                .append(vec![entry])
                .await
                .map(|c| super::log_drops(&c.dropped)),
        };
        match stored {
            Ok(()) => {
                self.wake.notify_waiters();
                true
            }
            Err(e) => {
                tracing::error!(cause = %e, "cannot store a result");
                false
            }
        }
    }

    /// Takes queued commands in order, one at a time, until shutdown. A command in progress at
    /// shutdown stays queued and is taken again after a restart.
    pub(super) async fn send_loop(&self) {
        let rate = &self.config.send.rate;
        let mut limiter = Limiter::new(rate.per_second, rate.burst);
        loop {
            let next = match self.spool.queued_commands(1).await {
                Ok(mut q) => q.pop(),
                Err(e) => {
                    tracing::error!(cause = %e, "cannot read the outbound queue");
                    if !self.nap(Duration::from_secs(1)).await {
                        return;
                    }
                    continue;
                }
            };
            let Some(queued) = next else {
                tokio::select! {
                    _ = self.shutdown.cancelled() => return,
                    _ = self.queue_changed.notified() => continue,
                }
            };
            let record: Record = match serde_json::from_slice(&queued.record) {
                Ok(r) => r,
                Err(e) => {
                    tracing::error!(cause = %e, id = queued.id, "unreadable queued command; answering it invalid");
                    let result = SendResult::err(
                        None,
                        ErrorCode::InvalidCommand,
                        "the queued command could not be read back",
                    );
                    self.answer(Some(queued.id), result, None).await;
                    continue;
                }
            };
            let request_id = record.command.request_id.clone();
            if let Some(rid) = &request_id {
                match self.spool.recent_result(rid, REQUEST_ID_WINDOW).await {
                    Ok(Some(previous)) => {
                        if let Ok(mut previous) = serde_json::from_slice::<SendResult>(&previous) {
                            // Marked, so a caller that changed the recipient or the text can
                            // tell that this command was not sent.
                            previous.duplicate = true;
                            tracing::info!(request_id = %rid, "repeated request_id; repeating its result");
                            self.answer(Some(queued.id), previous, record.reply_to)
                                .await;
                            continue;
                        }
                    }
                    Ok(None) => {}
                    Err(e) => tracing::warn!(cause = %e, "cannot look up the request_id"),
                }
            }
            let Some(result) = self.send_one(&record, &mut limiter).await else {
                return;
            };
            self.answer(Some(queued.id), result, record.reply_to).await;
        }
    }

    /// Sends one command; None only on shutdown.
    async fn send_one(&self, record: &Record, limiter: &mut Limiter) -> Option<SendResult> {
        let cmd = &record.command;
        let rid = cmd.request_id.clone();
        let received =
            OffsetDateTime::from_unix_timestamp_nanos(i128::from(record.received_ms) * 1_000_000)
                .unwrap_or_else(|_| OffsetDateTime::now_utc());
        let deadline = cmd
            .expires_at
            .unwrap_or(received + self.config.send.default_ttl);
        let mut too_frequent = 0;
        let mut session_rx = self.session.subscribe();
        loop {
            let left = deadline - OffsetDateTime::now_utc();
            if left <= time::Duration::ZERO {
                return Some(SendResult::err(
                    rid,
                    ErrorCode::Expired,
                    "not sent before its deadline (expires_at or send.default_ttl)",
                ));
            }
            if self.status.borrow().state == SessionState::LoginForbidden {
                return Some(SendResult::err(
                    rid,
                    ErrorCode::NotLoggedIn,
                    "WeChat refused the login; request a new login before sending",
                ));
            }
            let left: Duration = left.try_into().unwrap_or(Duration::ZERO);
            let session = tokio::select! {
                _ = self.shutdown.cancelled() => return None,
                _ = tokio::time::sleep(left) => continue,
                _ = self.status_changed_to_forbidden() => continue,
                s = session_rx.wait_for(Option::is_some) => match s {
                    Ok(s) => s.clone().expect("waited for Some"),
                    Err(_) => return None,
                },
            };
            let recipient = match self.resolve(&session, cmd) {
                Ok(r) => r,
                Err(result) => return Some(*result),
            };
            tokio::select! {
                _ = self.shutdown.cancelled() => return None,
                waited = limiter.acquire() => if !waited.is_zero() {
                    tracing::debug!(waited_ms = waited.as_millis() as u64, "send throttled");
                    crate::metrics::throttled(waited);
                },
            }
            let guard = self.sent.begin(
                &recipient.user_name,
                cmd.text.as_deref().unwrap_or_default(),
                rid.as_deref(),
            );
            let sent = session
                .send_text(
                    &recipient.user_name,
                    cmd.text.as_deref().unwrap_or_default(),
                )
                .await;
            let name = display(&recipient);
            let e = match sent {
                Ok(msg_id) => {
                    guard.finish(Some(&msg_id));
                    return Some(SendResult::ok(rid, msg_id, recipient.user_name, name));
                }
                Err(e) => {
                    // Without an answer the message may have gone out: its echo must still
                    // be recognised. A refusal sent nothing.
                    if matches!(e, SendError::Transport(_)) {
                        guard.finish(None);
                    } else {
                        guard.forget();
                    }
                    e
                }
            };
            match e {
                SendError::TooFrequent if too_frequent < TOO_FREQUENT_RETRIES => {
                    too_frequent += 1;
                    limiter.slow_down();
                    crate::metrics::retry("send");
                    tracing::warn!(
                        attempt = too_frequent,
                        "WeChat says too frequent; slowing down"
                    );
                }
                SendError::TooFrequent => {
                    return Some(SendResult::err(
                        rid,
                        ErrorCode::RateLimited,
                        "WeChat answered 1205 (too frequent) and the retries ran out",
                    ))
                }
                SendError::SessionExpired(ret) => {
                    tracing::info!(
                        ret,
                        "the session ended while sending; the command waits for the next login"
                    );
                    let next =
                        session_rx.wait_for(|s| s.as_ref().is_none_or(|s2| !s2.same_as(&session)));
                    let _ = tokio::time::timeout(left, next).await;
                }
                SendError::Transport(e) => {
                    // The request may have reached WeChat: retrying could send twice.
                    return Some(SendResult::err(
                        rid,
                        ErrorCode::Timeout,
                        format!(
                            "no answer from WeChat; the message may or may not have been sent: {e}"
                        ),
                    ));
                }
                other => {
                    let ret = other.ret().unwrap_or(-1);
                    return Some(SendResult::wechat_error(rid, ret, other.to_string()));
                }
            }
        }
    }

    /// Resolves when the state becomes `login_forbidden`.
    async fn status_changed_to_forbidden(&self) {
        let mut rx = self.status.subscribe();
        let _ = rx
            .wait_for(|s| s.state == SessionState::LoginForbidden)
            .await;
    }

    /// `to_id`, or `to` by the book's rules, then the allow-list.
    fn resolve(&self, session: &Session, cmd: &Command) -> Result<Contact, Box<SendResult>> {
        let rid = cmd.request_id.clone();
        let book = session.book();
        let found = match (&cmd.to_id, &cmd.to) {
            (Some(id), _) => book.resolve_id(id).cloned().ok_or_else(|| {
                SendResult::err(
                    rid.clone(),
                    ErrorCode::UnknownRecipient,
                    format!("no contact has the id {id} in this login (ids change at every login)"),
                )
            }),
            (None, Some(to)) => book.resolve(to).cloned().map_err(|e| match e {
                ResolveError::Ambiguous { .. } => {
                    SendResult::err(rid.clone(), ErrorCode::AmbiguousRecipient, e.to_string())
                }
                _ => SendResult::err(rid.clone(), ErrorCode::UnknownRecipient, e.to_string()),
            }),
            (None, None) => Err(SendResult::err(
                rid.clone(),
                ErrorCode::InvalidCommand,
                "a command needs `to` or `to_id`",
            )),
        }
        .map_err(Box::new)?;
        // Only by what the owner controls (see `allow`).
        if let Some(refused) = super::allow::refusal(&self.config.send.allow, &found) {
            return Err(Box::new(SendResult::err(
                rid,
                ErrorCode::Forbidden,
                refused,
            )));
        }
        Ok(found)
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
