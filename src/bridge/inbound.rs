//! The session side of the bridge: the login policy (DESIGN.md "Login policy") and the
//! synccheck → webwxsync loop, whose answers are committed to the spool with their sync keys.
use std::collections::HashSet;
use std::path::Path;
use std::time::Duration;

use time::OffsetDateTime;

use super::{log_drops, Bridge};
use crate::event::{
    ContactsEvent, ContactsKind, Event, LoginEvent, LoginKind, LoginQr, LoginUser, LogoutEvent,
    LogoutKind, Origin, SessionState,
};
use crate::spool::{Kind, NewEntry};
use crate::wechat::client::WxError;
use crate::wechat::contacts::clean_name;
use crate::wechat::login::{self, LoginError, LoginProgress};
use crate::wechat::message;
use crate::wechat::session::{write_private_atomically, Session, StoredSession, SyncKeys};

/// How many QR codes may expire in a row before `run` stops asking (DESIGN.md "Login policy").
const RUN_QR_LIMIT: u32 = 3;
/// A session that dies sooner than this after its login counts as a quick death.
const QUICK_DEATH: Duration = Duration::from_secs(5 * 60);
/// The longest wait between rounds of QR codes nobody scans.
const QR_PAUSE_MAX: Duration = Duration::from_secs(30 * 60);
/// WeChat does not say how long a QR code lives; the web page's last a few minutes.
const QR_LIFETIME: Duration = Duration::from_secs(4 * 60);

impl Bridge {
    /// Log in, sync until the session ends, log in again: until shutdown.
    pub(super) async fn supervise_session(&self) {
        let mut quick_deaths = 0;
        while !self.shutdown.is_cancelled() {
            let Some(session) = self.obtain_session().await else {
                break;
            };
            self.save_session(&session);
            let user = session.user();
            self.publish(Event::from(LoginEvent {
                kind: LoginKind,
                account: self.config.account.clone(),
                time: OffsetDateTime::now_utc(),
                user: LoginUser {
                    id: user.user_name.clone(),
                    name: clean_name(&user.nick_name),
                    uin: user.uin,
                },
            }))
            .await;
            self.warn_about_allow(&session.book());
            self.session.send_replace(Some(session.clone()));
            self.set_state(SessionState::Online, "");
            let end = self.sync_loop(&session).await;
            self.session.send_replace(None);
            // A relogin asked for while online meant nothing then; it must not cut short a
            // later wait (login_forbidden, the pause after unscanned QR codes).
            let _ = tokio::time::timeout(Duration::ZERO, self.relogin.notified()).await;
            let reason = match end {
                SyncEnd::Shutdown => {
                    self.save_session(&session);
                    break;
                }
                SyncEnd::Expired(code) => format!("WeChat ended the session (code {code})"),
                SyncEnd::LoggedOut => {
                    self.log_out(&session).await;
                    "logged out on request".to_owned()
                }
            };
            self.publish(Event::from(LogoutEvent {
                kind: LogoutKind,
                account: self.config.account.clone(),
                time: OffsetDateTime::now_utc(),
                reason: reason.clone(),
            }))
            .await;
            if matches!(end, SyncEnd::LoggedOut) {
                quick_deaths = 0;
                self.set_state(SessionState::LoginRequired, reason);
                continue;
            }
            if session.started().elapsed() < QUICK_DEATH {
                quick_deaths += 1;
            } else {
                quick_deaths = 0;
            }
            if quick_deaths >= 2 {
                quick_deaths = 0;
                self.wait_forbidden(
                    "the session died within 5 minutes of login twice in a row; \
                     WeChat may be restricting this account, so no new login is tried \
                     until one is requested",
                )
                .await;
                continue;
            }
            self.set_state(SessionState::LoginRequired, reason);
        }
    }

    /// Stored session → push login → QR, until one works or shutdown (None).
    async fn obtain_session(&self) -> Option<Session> {
        if let Some(stored) = self.load_stored() {
            if let Some(s) = self.resume_stored(&stored).await? {
                return Some(s);
            }
            match login::push(&self.client, &stored, &|p| self.show_progress(p)).await {
                Ok(s) => {
                    crate::metrics::login("push");
                    return Some(self.fresh(s).await);
                }
                Err(LoginError::Forbidden(r)) => self.wait_forbidden(&r.to_string()).await,
                Err(e) => {
                    tracing::info!(cause = %e, "push login did not work; falling back to a QR code")
                }
            }
        }
        let mut backoff = self.retry().schedule();
        let mut pause = self.config.retry.initial;
        loop {
            if self.shutdown.is_cancelled() {
                return None;
            }
            // The state says `login_required` once there is a QR code to scan
            // (`show_progress`), not while it is still being asked for.
            let progress = |p| self.show_progress(p);
            let attempt = tokio::select! {
                _ = self.shutdown.cancelled() => return None,
                r = login::qr(&self.client, RUN_QR_LIMIT, &progress) => r,
            };
            match attempt {
                Ok(s) => {
                    crate::metrics::login("qr");
                    return Some(self.fresh(s).await);
                }
                Err(LoginError::Forbidden(r)) => self.wait_forbidden(&r.to_string()).await,
                Err(LoginError::QrExpired(n)) => {
                    self.set_state(
                        SessionState::LoginRequired,
                        format!(
                            "{n} QR codes expired without a scan; waiting for a re-login request"
                        ),
                    );
                    self.qr.send_replace(None);
                    pause = (pause * 2).min(QR_PAUSE_MAX);
                    tokio::select! {
                        _ = self.shutdown.cancelled() => return None,
                        _ = self.relogin.notified() => {}
                        _ = tokio::time::sleep(pause) => {}
                    }
                }
                Err(e) => {
                    tracing::warn!(cause = %e, "login failed; retrying");
                    if let Some(reason) = e.unreachable() {
                        self.set_state(SessionState::Offline, format!("{reason}; retrying"));
                    }
                    crate::metrics::retry("login");
                    let d = backoff.next().unwrap_or(self.config.retry.max);
                    if !self.nap(d).await {
                        return None;
                    }
                }
            }
        }
    }

    /// Resumes the stored session with the spool's sync keys. Outer None: shutdown; inner None:
    /// the session is no longer valid. Connection trouble is retried: it says nothing about the
    /// session, and throwing a good session away would cost a scan.
    async fn resume_stored(&self, stored: &StoredSession) -> Option<Option<Session>> {
        let keys = match self.spool.sync_keys().await {
            Ok(k) => k.and_then(|bytes| match decode_keys(&bytes) {
                Ok(k) => Some(k),
                Err(e) => {
                    tracing::error!(cause = %e, "cannot read the stored sync keys; resuming from init's");
                    None
                }
            }),
            Err(e) => {
                tracing::error!(cause = %e, "cannot read the sync keys; resuming from init's");
                None
            }
        };
        let mut backoff = self.retry().schedule();
        loop {
            match login::resume(&self.client, stored, keys.clone()).await {
                Ok(s) => {
                    tracing::info!("resumed the stored session");
                    crate::metrics::login("stored");
                    if keys.is_none() {
                        self.store_keys(&s).await;
                    }
                    return Some(Some(s));
                }
                Err(e) if is_transient(&e) => {
                    tracing::warn!(cause = %e, "cannot reach WeChat to resume the stored session; retrying");
                    if let Some(reason) = e.unreachable() {
                        self.set_state(SessionState::Offline, format!("{reason}; retrying"));
                    }
                    crate::metrics::retry("resume");
                    let d = backoff.next().unwrap_or(self.config.retry.max);
                    if !self.nap(d).await {
                        return None;
                    }
                }
                Err(e) => {
                    tracing::info!(cause = %e, "the stored session is no longer valid");
                    return Some(None);
                }
            }
        }
    }

    /// A new session (push or QR) starts from its own sync keys.
    async fn fresh(&self, session: Session) -> Session {
        self.store_keys(&session).await;
        session
    }

    async fn store_keys(&self, session: &Session) {
        if let Err(e) = self
            .spool
            .commit_sync(Vec::new(), Vec::new(), Some(encode_keys(&session.keys())))
            .await
        {
            tracing::error!(cause = %e, "cannot store the sync keys");
        }
    }

    /// `login_forbidden` until a re-login is requested (or shutdown).
    async fn wait_forbidden(&self, reason: &str) {
        tracing::error!("{reason}");
        self.set_state(SessionState::LoginForbidden, reason);
        tokio::select! {
            _ = self.shutdown.cancelled() => {}
            _ = self.relogin.notified() => {}
        }
    }

    fn load_stored(&self) -> Option<StoredSession> {
        match self.session_file.load() {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(cause = %e, "cannot read the stored session");
                None
            }
        }
    }

    pub(super) fn save_session(&self, session: &Session) {
        if let Err(e) = self.session_file.save(&session.to_stored()) {
            tracing::error!(cause = %e, path = %self.session_file.path().display(), "cannot store the session");
        }
    }

    /// Shows a login step on stderr, and in the state once the person has something to do:
    /// a QR code to scan (published with it), a push login to confirm.
    fn show_progress(&self, p: LoginProgress) {
        let png = show_login_progress(&p, &self.config.wechat.qr_png);
        match (&p, png) {
            (LoginProgress::Qr { content, .. }, Some(png)) => {
                self.set_state(SessionState::LoginRequired, "scan the QR code with WeChat");
                self.qr.send_replace(Some(LoginQr {
                    url: content.clone(),
                    png,
                    expires_at: OffsetDateTime::now_utc() + QR_LIFETIME,
                }));
            }
            (LoginProgress::Qr { .. }, None) => self.set_state(
                SessionState::LoginRequired,
                "scan the QR code with WeChat (shown on stderr)",
            ),
            (LoginProgress::PushSent, _) => self.set_state(
                SessionState::LoginRequired,
                "confirm the login on your phone",
            ),
            _ => {}
        }
    }

    /// Ends the session at WeChat and forgets it (the session file and the sync keys), so the
    /// next login is a fresh one.
    async fn log_out(&self, session: &Session) {
        if let Err(e) = session.client().logout(&session.credentials()).await {
            tracing::warn!(cause = %e, "WeChat did not confirm the logout; forgetting the session anyway");
        }
        if let Err(e) = self.session_file.remove() {
            tracing::error!(cause = %e, "cannot remove the session file");
        }
        if let Err(e) = self.spool.clear_sync_keys().await {
            tracing::error!(cause = %e, "cannot forget the sync keys");
        }
    }

    /// synccheck → webwxsync until the session ends, a logout is requested, or shutdown.
    /// Timeouts, connection errors and 5xx are retried with backoff on the same session.
    async fn sync_loop(&self, session: &Session) -> SyncEnd {
        let mut backoff = self.retry().schedule();
        let mut counter = super::now_ms();
        let mut last_ok = std::time::Instant::now();
        let mut failing = false;
        loop {
            if last_ok.elapsed() >= self.config.wechat.zombie_after {
                // A session can go quiet without an error (PROTOCOL.md §10, wechat4u): ask
                // webwxinit whether it still lives.
                tracing::warn!(
                    quiet_for = %humantime::format_duration(self.config.wechat.zombie_after),
                    "no successful sync for wechat.zombie_after; re-validating the session"
                );
                match session.client().init(&session.credentials()).await {
                    Ok(init) => {
                        session.rotate_skey(&init.skey);
                        last_ok = std::time::Instant::now();
                    }
                    Err(WxError::SessionExpired { code, .. }) => return SyncEnd::Expired(code),
                    Err(e) => {
                        tracing::debug!(cause = %e, "re-validation failed; retrying");
                        last_ok = std::time::Instant::now();
                    }
                }
            }
            let creds = session.credentials();
            let keys = session.keys();
            let check = tokio::select! {
                _ = self.shutdown.cancelled() => return SyncEnd::Shutdown,
                _ = self.logout.notified() => return SyncEnd::LoggedOut,
                c = session.client().synccheck(&creds, keys.for_synccheck(), counter) => c,
            };
            counter += 1;
            let result = match check {
                Ok(c) if c.selector == 0 => Ok(()),
                Ok(_) => self.sync_once(session).await,
                Err(e) => Err(e),
            };
            match result {
                Ok(()) => {
                    if failing {
                        tracing::info!("syncing again");
                        failing = false;
                    }
                    last_ok = std::time::Instant::now();
                    self.last_sync.send_replace(Some(last_ok));
                    backoff = self.retry().schedule();
                }
                Err(WxError::SessionExpired { code, .. }) => return SyncEnd::Expired(code),
                Err(e) => {
                    crate::metrics::retry("sync");
                    // Logged once per outage, not once per retry.
                    if failing {
                        tracing::debug!(cause = %e, "sync failed again");
                    } else {
                        tracing::warn!(cause = %e, "sync failed; retrying on the same session");
                        failing = true;
                    }
                    let d = backoff.next().unwrap_or(self.config.retry.max);
                    if !self.nap(d).await {
                        return SyncEnd::Shutdown;
                    }
                }
            }
        }
    }

    /// One webwxsync: contacts first (so names resolve), then the messages; the new events,
    /// their MsgIds and the new keys go to the spool in one transaction.
    async fn sync_once(&self, session: &Session) -> Result<(), WxError> {
        let creds = session.credentials();
        let resp = session
            .client()
            .sync(&creds, &session.keys().sync_key)
            .await?;
        // An answer may repeat the skey it already has: the session file (an fsync) is
        // written only when it changed.
        if session.rotate_skey(&resp.skey) {
            self.save_session(session);
        }

        let changes = session
            .with_book_mut(|b| b.apply_changes(resp.mod_contact_list, resp.del_contact_list));
        if !changes.is_empty() {
            self.publish(Event::from(ContactsEvent {
                kind: ContactsKind,
                account: self.config.account.clone(),
                time: OffsetDateTime::now_utc(),
                added: changes.added,
                modified: changes.modified,
                removed: changes.removed,
            }))
            .await;
        }

        // WeChat counts this answer as delivered: whatever happens to the lookup, its messages
        // are committed (with names falling back to ids), and only then does an expired
        // session end the loop.
        let mut ended = None;
        let missing = session.book().missing_for(&resp.add_msg_list);
        if !missing.is_empty() {
            match session.client().batch_get_contacts(&creds, &missing).await {
                Ok(found) => session.with_book_mut(|b| b.apply_batch(&missing, found)),
                Err(e) => {
                    tracing::warn!(cause = %e, "cannot fetch unknown contacts; names fall back to ids");
                    if e.is_session_expired() {
                        ended = Some(e);
                    }
                }
            }
        }

        let ids: Vec<String> = resp.add_msg_list.iter().map(|m| m.msg_id.clone()).collect();
        let unseen = self
            .spool
            .unseen(ids.clone())
            .await
            .map_err(|e| WxError::Garbage {
                endpoint: "spool",
                detail: e.to_string(),
            })?;
        let self_name = session.user().user_name.clone();
        let mut in_batch = HashSet::new();
        let mut entries = Vec::new();
        let mut types = Vec::new();
        for (msg, new) in resp.add_msg_list.iter().zip(unseen) {
            if !new || !in_batch.insert(msg.msg_id.as_str()) {
                continue;
            }
            if msg.from_user_name == self_name {
                self.sent.settle().await;
            }
            let sent_by = self.sent.lookup(&msg.msg_id);
            let event = {
                let book = session.book();
                let ctx = message::Context {
                    account: &self.config.account,
                    book: &book,
                    sent_by_bridge: sent_by.as_ref().map(|r| r.as_deref()),
                };
                message::normalize(msg, &ctx)
            };
            let Some(mut event) = event else { continue };
            if event.origin == Origin::Phone {
                // An echo that carries a MsgId of its own: recognised by chat and text.
                let echo = event
                    .text
                    .as_deref()
                    .and_then(|text| self.sent.claim_echo(&event.chat.id, text));
                if let Some(request_id) = echo {
                    event.origin = Origin::Bridge;
                    event.request_id = Some(request_id);
                }
            }
            types.push(event.message_type);
            match serde_json::to_vec(&event) {
                Ok(payload) => entries.push(NewEntry {
                    kind: Kind::Message,
                    id: msg.msg_id.clone(),
                    payload,
                    reply_to: None,
                }),
                Err(e) => {
                    tracing::error!(cause = %e, msg_id = %msg.msg_id, "cannot serialize an event")
                }
            }
        }

        let mut keys = session.keys();
        let keys_changed = keys.update(resp.sync_key, resp.sync_check_key);
        if entries.is_empty() && !keys_changed && ids.is_empty() {
            return ended.map_or(Ok(()), Err);
        }
        failpoint("after_sync_before_commit");
        let committed = self
            .spool
            .commit_sync(entries, ids, Some(encode_keys(&keys)))
            .await
            .map_err(|e| WxError::Garbage {
                endpoint: "spool",
                detail: e.to_string(),
            })?;
        log_drops(&committed.dropped);
        crate::metrics::messages_received(&types);
        session.update_keys(keys.sync_key, keys.sync_check_key);
        if !committed.seqs.is_empty() {
            self.wake.notify_waiters();
        }
        ended.map_or(Ok(()), Err)
    }
}

/// Why a sync loop ended.
enum SyncEnd {
    /// The process is stopping; the session is kept.
    Shutdown,
    /// WeChat ended the session with this code.
    Expired(i64),
    /// A logout was requested.
    LoggedOut,
}

/// Crash-recovery tests kill the process at a named point: `WXBRIDGE_FAILPOINT=<name>`.
/// Only debug builds look.
fn failpoint(name: &str) {
    #[cfg(debug_assertions)]
    if std::env::var("WXBRIDGE_FAILPOINT").is_ok_and(|v| v == name) {
        eprintln!("failpoint {name}: aborting");
        std::process::abort();
    }
    #[cfg(not(debug_assertions))]
    let _ = name;
}

/// Connection trouble that says nothing about the session's validity.
fn is_transient(e: &WxError) -> bool {
    matches!(
        e,
        WxError::Http { .. } | WxError::Status { .. } | WxError::Garbage { .. }
    )
}

/// What a person at the terminal needs during a login: the QR (also written as a PNG) and the
/// prompts, on stderr. Answers the QR's PNG when it drew one.
pub fn show_login_progress(p: &LoginProgress, qr_png: &Path) -> Option<Vec<u8>> {
    let mut drawn = None;
    match p {
        LoginProgress::Qr {
            content,
            expired_before,
            ..
        } => {
            let mut written = String::new();
            match crate::qr::png(content) {
                Ok(png) => {
                    if let Some(dir) = qr_png.parent().filter(|d| !d.as_os_str().is_empty()) {
                        let _ = std::fs::create_dir_all(dir);
                    }
                    match write_private_atomically(qr_png, &png) {
                        Ok(()) => written = format!(" (also saved as {})", qr_png.display()),
                        Err(e) => {
                            tracing::warn!(cause = %e, path = %qr_png.display(), "cannot write the QR code")
                        }
                    }
                    drawn = Some(png);
                }
                Err(e) => tracing::warn!(cause = %e, "cannot render the QR code"),
            }
            let again = if *expired_before > 0 {
                "The last QR code expired. Here is a new one.\n"
            } else {
                ""
            };
            eprintln!(
                "\n{again}Scan this QR code with WeChat on your phone (Me → Scan){written}:\n\n{}\n{content}\n",
                crate::qr::terminal(content)
            );
        }
        LoginProgress::Scanned => eprintln!("Scanned. Now confirm the login on your phone."),
        LoginProgress::PushSent => {
            eprintln!("A login request was sent to your phone: open WeChat there and confirm it.")
        }
        LoginProgress::Confirmed => eprintln!("Confirmed. Logging in…"),
    }
    drawn
}

/// The sync keys as the spool keeps them (opaque bytes to it): `SyncKeys` as JSON
/// (`{"sync_key":…,"sync_check_key":…}`), as earlier versions stored them.
fn encode_keys(keys: &SyncKeys) -> Vec<u8> {
    // Plain numbers and lists: serializing them cannot fail.
    serde_json::to_vec(keys).unwrap_or_default()
}

fn decode_keys(bytes: &[u8]) -> Result<SyncKeys, serde_json::Error> {
    serde_json::from_slice(bytes)
}
