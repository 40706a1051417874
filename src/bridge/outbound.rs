//! The sender: for each command the `scheduler` picks from the queue, it resolves the
//! recipient, waits for a live session, `send.limits` (see `limits`), the limiter and the
//! jitter (each wait through `Bridge::waiting`, which gives commands that wait their `queued`
//! receipts), uploads and sends the media (PROTOCOL.md §9.2–§9.3) and the text, counts what
//! went out, and spools exactly one result per command.
use std::time::Duration;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use tokio::sync::watch;

use super::allow::display;
use super::sent;
use super::Bridge;
use super::{limits, scheduler};
use crate::event::{
    Command, ErrorCode, MediaSource, SendKind, SendMedia, SendResult, SentMedia, SessionState,
};
use crate::limiter::Limiter;
use crate::media::Stored;
use crate::spool::{Kind, NewEntry};
use crate::wechat::client::{file_md5, MediaMessage, SendError, UploadFile, Uploaded, WxError};
use crate::wechat::contacts::ResolveError;
use crate::wechat::protocol::Contact;
use crate::wechat::session::Session;

/// How long a request_id is remembered for idempotency (DESIGN.md).
pub(super) const REQUEST_ID_WINDOW: Duration = Duration::from_secs(24 * 60 * 60);
/// How often a 1205 answer is retried before the command is answered `rate_limited`.
const TOO_FREQUENT_RETRIES: u32 = 3;

/// A command as the outbound queue stores it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct Record {
    pub(super) command: Command,
    /// When it arrived (unix ms): the default deadline counts from here.
    pub(super) received_ms: i64,
    /// The NATS reply subject of a request.
    pub(super) reply_to: Option<String>,
}

impl Bridge {
    /// Spools a result (completing queued command `id` when given). False if the spool failed.
    pub(super) async fn answer(
        &self,
        id: Option<u64>,
        result: SendResult,
        reply_to: Option<String>,
    ) -> bool {
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

    /// Sends one command; None only on shutdown. [`Taken::Held`] when a send limit holds its
    /// recipient (found only here when the command was chosen while logged out): the command
    /// stays queued and the scheduler serves other recipients meanwhile. With media, the file is uploaded and sent
    /// first, then the text if any: each message passes the limiter, a 1205 or the end of the
    /// session repeats only the step that failed, and a failure after the media went out
    /// carries its MsgID so that only the text needs sending again.
    pub(super) async fn send_one(&self, record: &Record, limiter: &mut Limiter) -> Option<Taken> {
        let cmd = &record.command;
        let file = match &cmd.media {
            None => None,
            Some(media) => match self.queued_media(media) {
                Ok(file) => Some((media, file)),
                Err(message) => {
                    return Some(Taken::Answered(Box::new(SendResult::err(
                        cmd.request_id.clone(),
                        ErrorCode::InvalidCommand,
                        message,
                    ))))
                }
            },
        };
        let mut progress = Progress {
            kind: file.as_ref().map(|(m, _)| m.kind),
            media: file.as_ref().map(|(_, f)| SentMedia {
                sha256: f.sha256.clone(),
                size: f.size,
            }),
            media_msg: None,
            held: false,
        };
        let result = self.send_steps(record, file, limiter, &mut progress).await;
        if progress.held {
            return Some(Taken::Held);
        }
        Some(Taken::Answered(Box::new(progress.complete(result?))))
    }

    /// The steps of [`Bridge::send_one`]; `progress` records what went out, or that a limit
    /// holds the recipient (then None).
    async fn send_steps(
        &self,
        record: &Record,
        file: Option<(&SendMedia, Stored)>,
        limiter: &mut Limiter,
        progress: &mut Progress,
    ) -> Option<SendResult> {
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
        // The upload is kept for the session that made it: a MediaId names a file to one login.
        let mut uploaded: Option<(Session, Uploaded)> = None;
        let mut md5: Option<String> = None;
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
                s = self.waiting(session_rx.wait_for(Option::is_some)) => match s {
                    Ok(s) => s.clone().expect("waited for Some"),
                    Err(_) => return None,
                },
            };
            let recipient = match self.resolve(&session, cmd) {
                Ok(r) => r,
                Err(result) => return Some(*result),
            };
            let to = recipient.user_name.clone();
            let name = display(&recipient);
            let key = self.key_of(&to);
            let counted = counted_as(key.as_deref(), &name);
            if progress.media_msg.is_none() {
                // The scheduler checked before it chose this command, unless it was chosen
                // while logged out: then the check is here. A wait goes back to the
                // scheduler, which holds this recipient alone (a nap here would hold every
                // other recipient behind it) and counts the wait.
                let now = self.limits_clock.now();
                // Not `if let` on the guard: it is not to outlive the check.
                let checked = self.limits_lock().check(&counted, now);
                if let Err(b) = checked {
                    let wait = scheduler::ms(b.until_ms - now.ms);
                    if wait >= left {
                        crate::metrics::limit_hit(b.limit.label());
                        return Some(scheduler::limit_exceeded(rid, b.limit));
                    }
                    progress.held = true;
                    return None;
                }
            }
            let media_step = file.as_ref().filter(|_| progress.media_msg.is_none());
            if let Some((media, stored)) = media_step {
                if uploaded.as_ref().is_none_or(|(s, _)| !s.same_as(&session)) {
                    let done = self.upload(&session, &to, media, stored, &mut md5).await;
                    match done {
                        Ok(u) => uploaded = Some((session.clone(), u)),
                        Err(Failure::Stop(mut result)) => {
                            result.request_id = rid;
                            return Some(*result);
                        }
                        Err(Failure::Retry(e)) => {
                            match self
                                .after_refusal(
                                    e,
                                    &rid,
                                    &mut too_frequent,
                                    limiter,
                                    &session,
                                    &mut session_rx,
                                    left,
                                )
                                .await
                            {
                                Some(result) => return Some(result),
                                None => continue,
                            }
                        }
                    }
                }
            }
            tokio::select! {
                _ = self.shutdown.cancelled() => return None,
                waited = self.waiting(limiter.acquire()) => if !waited.is_zero() {
                    tracing::debug!(waited_ms = waited.as_millis() as u64, "send throttled");
                    crate::metrics::throttled(waited);
                },
            }
            // A person does not send at machine speed (send.limits.jitter).
            let jitter = limits::jitter(self.config.send.limits.jitter());
            if !self.waiting(self.nap(jitter)).await {
                return None;
            }
            let sent = match (media_step, &uploaded) {
                (Some((media, stored)), Some((_, up))) => {
                    let guard = self.sent.begin(
                        &to,
                        &sent::media_echo_key(media.kind.as_str()),
                        rid.as_deref(),
                    );
                    let message = media_message(media, stored);
                    let sent = session.send_media(&to, message, up).await;
                    settle_guard(guard, &sent);
                    match sent {
                        Ok(msg_id) => {
                            self.count_send(&recipient, &counted);
                            progress.media_msg = Some(msg_id.clone());
                            if cmd.text.is_none() {
                                return Some(
                                    SendResult::ok(rid, msg_id, to, name).with_to_key(key),
                                );
                            }
                            // The text goes next, through the limiter like any message.
                            continue;
                        }
                        Err(e) => Err(e),
                    }
                }
                _ => {
                    let text = cmd.text.as_deref().unwrap_or_default();
                    let guard = self.sent.begin(&to, text, rid.as_deref());
                    let sent = session.send_text(&to, text).await;
                    settle_guard(guard, &sent);
                    sent
                }
            };
            let e = match sent {
                Ok(msg_id) => {
                    self.count_send(&recipient, &counted);
                    let result = match progress.media_msg.clone() {
                        Some(media_msg) => {
                            let mut r = SendResult::ok(rid, media_msg, to, name).with_to_key(key);
                            r.text_msg_id = Some(msg_id);
                            r
                        }
                        None => SendResult::ok(rid, msg_id, to, name).with_to_key(key),
                    };
                    return Some(result);
                }
                Err(e) => e,
            };
            if let Some(result) = self
                .after_refusal(
                    e,
                    &rid,
                    &mut too_frequent,
                    limiter,
                    &session,
                    &mut session_rx,
                    left,
                )
                .await
            {
                return Some(result);
            }
        }
    }

    /// What follows a send WeChat did not take: the result that ends the command, or `None`
    /// to try again (after slowing down for a 1205, or after the next login).
    #[allow(clippy::too_many_arguments)]
    async fn after_refusal(
        &self,
        e: SendError,
        rid: &Option<String>,
        too_frequent: &mut u32,
        limiter: &mut Limiter,
        session: &Session,
        session_rx: &mut watch::Receiver<Option<Session>>,
        left: Duration,
    ) -> Option<SendResult> {
        let rid = rid.clone();
        match e {
            SendError::TooFrequent if *too_frequent < TOO_FREQUENT_RETRIES => {
                *too_frequent += 1;
                limiter.slow_down();
                self.tighten_limits();
                crate::metrics::retry("send");
                tracing::warn!(
                    attempt = *too_frequent,
                    "WeChat says too frequent; slowing down"
                );
                None
            }
            SendError::TooFrequent => Some(SendResult::err(
                rid,
                ErrorCode::RateLimited,
                "WeChat answered 1205 (too frequent) and the retries ran out",
            )),
            SendError::SessionExpired(ret) => {
                tracing::info!(
                    ret,
                    "the session ended while sending; the command waits for the next login"
                );
                let next =
                    session_rx.wait_for(|s| s.as_ref().is_none_or(|s2| !s2.same_as(session)));
                let _ = self.waiting(tokio::time::timeout(left, next)).await;
                None
            }
            SendError::Transport(e) => {
                // The request may have reached WeChat: retrying could send twice.
                Some(SendResult::err(
                    rid,
                    ErrorCode::Timeout,
                    format!(
                        "no answer from WeChat; the message may or may not have been sent: {e}"
                    ),
                ))
            }
            other => {
                let ret = other.ret().unwrap_or(-1);
                Some(SendResult::wechat_error(rid, ret, other.to_string()))
            }
        }
    }

    /// Counts a message WeChat took, durably, and in the metrics by recipient class.
    fn count_send(&self, recipient: &Contact, counted: &str) {
        let now = self.limits_clock.now();
        let (today, per_day) = {
            let mut limits = self.limits_lock();
            limits.record(counted, now);
            limits.today(now)
        };
        let class = match recipient.user_name.as_str() {
            "filehelper" => "filehelper",
            u if u.starts_with("@@") => "group",
            _ => "person",
        };
        crate::metrics::limits_sent(class, today, per_day);
    }

    /// After a 1205: halves `send.limits` for an hour and says so in the state's reason.
    fn tighten_limits(&self) {
        let now = self.limits_clock.now();
        self.limits_lock().tighten(now);
        let state = self.status.borrow().state;
        self.set_state(
            state,
            format!(
                "{}: send limits halved for {} minutes",
                scheduler::TIGHTENED,
                limits::TIGHT_FOR_MS / 60_000
            ),
        );
    }

    /// The queued media's stored file. The intake stored it; it is gone only if the store
    /// evicted it since.
    fn queued_media(&self, media: &SendMedia) -> Result<Stored, String> {
        let MediaSource::Sha256(sha) = &media.source else {
            return Err(format!(
                "`{}` was queued without being stored first",
                media.kind
            ));
        };
        self.media.store.get(sha).ok_or_else(|| {
            format!(
                "`{}.sha256`: the file {sha} is no longer in the media store (evicted since the \
                 command was queued); send it again",
                media.kind
            )
        })
    }

    /// Uploads the stored file for `to`: `upload_failed` when WeChat does not take it, a
    /// retry when the session ended or WeChat said 1205. Nothing reached the chat yet, so
    /// either is safe.
    async fn upload(
        &self,
        session: &Session,
        to: &str,
        media: &SendMedia,
        stored: &Stored,
        md5: &mut Option<String>,
    ) -> Result<Uploaded, Failure> {
        let failed = |message: String| {
            Failure::Stop(Box::new(SendResult::err(
                None,
                ErrorCode::UploadFailed,
                message,
            )))
        };
        let md5 = match md5 {
            Some(m) => m.clone(),
            None => {
                let m = file_md5(&stored.path)
                    .await
                    .map_err(|e| failed(format!("cannot read the stored file: {e}")))?;
                *md5 = Some(m.clone());
                m
            }
        };
        let name = media.name.clone().unwrap_or_else(|| stored.sha256.clone());
        let file = UploadFile {
            path: &stored.path,
            name: &name,
            mime: &stored.mime,
            size: stored.size,
            md5: &md5,
        };
        match session.upload(to, file).await {
            Ok(u) => Ok(u),
            Err(WxError::SessionExpired { code, .. }) => {
                Err(Failure::Retry(SendError::SessionExpired(code)))
            }
            Err(WxError::Ret { ret: 1205, .. }) => Err(Failure::Retry(SendError::TooFrequent)),
            Err(e) => {
                tracing::warn!(cause = %e, sha256 = %stored.sha256, "upload failed");
                Err(failed(format!("WeChat did not take the upload: {e}")))
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

    /// `to_id`, `to_key` (bound this login), or `to` by the book's rules, then the allow-list.
    pub(super) fn resolve(
        &self,
        session: &Session,
        cmd: &Command,
    ) -> Result<Contact, Box<SendResult>> {
        let rid = cmd.request_id.clone();
        let keyed = match &cmd.to_key {
            Some(key) => Some(self.resolve_key(key, &rid)?),
            None => None,
        };
        let book = session.book();
        let found = match (keyed.as_ref().or(cmd.to_id.as_ref()), &cmd.to) {
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
                "a command needs `to`, `to_id` or `to_key`",
            )),
        }
        .map_err(Box::new)?;
        // Only by what the owner controls (see `allow`).
        let key = self.key_of(&found.user_name);
        if let Some(refused) =
            super::allow::refusal(&self.config.send.allow, &found, key.as_deref())
        {
            return Err(Box::new(SendResult::err(
                rid,
                ErrorCode::Forbidden,
                refused,
            )));
        }
        Ok(found)
    }
}

/// How an upload failed.
enum Failure {
    /// For good: this result (without its request_id, which the caller fills in).
    Stop(Box<SendResult>),
    /// As a send can: tried again the same way.
    Retry(SendError),
}

/// What a command with media has sent so far.
struct Progress {
    kind: Option<SendKind>,
    media: Option<SentMedia>,
    /// The media message's MsgID, once WeChat took it.
    media_msg: Option<String>,
    /// A send limit holds the recipient: nothing went out, the command stays queued.
    held: bool,
}

/// What became of a command the sender took.
pub(super) enum Taken {
    /// Its result, to answer it with.
    Answered(Box<SendResult>),
    /// A send limit holds its recipient: it stays queued, for the scheduler to take again.
    Held,
}

impl Progress {
    /// The command's result with its media, and, for a failure after the media went out,
    /// the media's MsgID and a message saying only the text is missing.
    fn complete(self, mut result: SendResult) -> SendResult {
        if let (false, Some(msg_id), Some(error)) =
            (result.ok, &self.media_msg, result.error.as_mut())
        {
            let kind = self.kind.map_or("media", SendKind::as_str);
            error.message = format!(
                "the {kind} was sent (msg_id {msg_id}) but the text was not: {}",
                error.message
            );
            result.msg_id = Some(msg_id.clone());
        }
        result.with_media(self.media)
    }
}

/// What WeChat is asked to send for a stored file.
fn media_message<'a>(media: &'a SendMedia, stored: &Stored) -> MediaMessage<'a> {
    match media.kind {
        SendKind::Image => MediaMessage::Image,
        SendKind::Video => MediaMessage::Video,
        SendKind::Emoticon => MediaMessage::Emoticon,
        SendKind::File => MediaMessage::File {
            title: media.name.as_deref().unwrap_or("file"),
            size: stored.size,
        },
    }
}

/// Who `send.limits` counts a send to: the recipient's contact key when it has one, as a key
/// outlives renames and relogins; its display name otherwise. Counts stored by name before
/// never match a key: they only age out of their windows.
pub(super) fn counted_as(key: Option<&str>, name: &str) -> String {
    key.unwrap_or(name).to_owned()
}

/// Records a send's outcome in the sent log: without an answer the message may have gone
/// out, so its echo must still be recognised; a refusal sent nothing.
fn settle_guard(guard: sent::SendGuard<'_>, sent: &Result<String, SendError>) {
    match sent {
        Ok(msg_id) => guard.finish(Some(msg_id)),
        Err(SendError::Transport(_)) => guard.finish(None),
        Err(_) => guard.forget(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn progress(media_msg: Option<&str>) -> Progress {
        Progress {
            kind: Some(SendKind::Image),
            media: Some(SentMedia {
                sha256: "ab".repeat(32),
                size: 10,
            }),
            media_msg: media_msg.map(str::to_owned),
            held: false,
        }
    }

    #[test]
    fn a_failure_after_the_media_went_out_names_the_media_message() {
        let failed = SendResult::err(Some("r".into()), ErrorCode::RateLimited, "1205");
        let r = progress(Some("2039")).complete(failed.clone());
        assert_eq!(r.msg_id.as_deref(), Some("2039"));
        let error = r.error.unwrap();
        assert_eq!(error.code, ErrorCode::RateLimited);
        assert!(
            error
                .message
                .starts_with("the image was sent (msg_id 2039) but the text was not"),
            "{}",
            error.message
        );
        assert_eq!(r.media.unwrap().size, 10);

        let r = progress(None).complete(failed);
        assert_eq!(r.msg_id, None, "nothing went out");
        assert_eq!(r.error.unwrap().message, "1205");
        let ok = progress(Some("2039")).complete(SendResult::ok(None, "2039", "@a", "A"));
        assert!(ok.ok && ok.error.is_none());
        assert_eq!(ok.media.unwrap().sha256, "ab".repeat(32));
    }
}
