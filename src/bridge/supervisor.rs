//! The session supervisor: logs in as the [`LoginPolicy`] decides (DESIGN.md "Login policy"):
//! stored session, push login, QR codes; runs the sync loop ([`super::inbound`]) until the
//! session ends; and logs in again, or waits, as the policy says.
use std::path::Path;
use std::time::Duration;

use time::OffsetDateTime;

use super::inbound::{decode_keys, encode_keys, SyncEnd};
use super::login_policy::{Decision, Happened, LoginPolicy};
use super::Bridge;
use crate::event::{
    Event, LoginEvent, LoginKind, LoginQr, LoginUser, LogoutEvent, LogoutKind, SessionState,
};
use crate::wechat::client::WxError;
use crate::wechat::contacts::clean_name;
use crate::wechat::login::{self, LoginError, LoginProgress};
use crate::wechat::session::{write_private_atomically, Session, StoredSession};

/// WeChat does not say how long a QR code lives; the web page's last a few minutes.
const QR_LIFETIME: Duration = Duration::from_secs(4 * 60);

impl Bridge {
    /// Log in, sync until the session ends, log in again: until shutdown. What to do after
    /// each turn is the [`LoginPolicy`]'s to say.
    pub(super) async fn supervise_session(&self) {
        let mut policy =
            LoginPolicy::new(self.config.retry.initial, self.config.wechat.zombie_after);
        while !self.shutdown.is_cancelled() {
            let Some(session) = self.obtain_session(&mut policy).await else {
                break;
            };
            policy.on(Happened::LoggedIn);
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
            // Keys before the session shows: a `to_key` waiting for it finds them bound.
            self.bind_keys(&session).await;
            self.session.send_replace(Some(session.clone()));
            self.set_state(SessionState::Online, "");
            let end = self.sync_loop(&session, &mut policy).await;
            self.session.send_replace(None);
            self.clear_roster();
            // A relogin asked for while online meant nothing then; it must not cut short a
            // later wait (login_forbidden, the pause after unscanned QR codes).
            let _ = tokio::time::timeout(Duration::ZERO, self.relogin.notified()).await;
            let (reason, happened) = match end {
                SyncEnd::Shutdown => {
                    self.save_session(&session);
                    break;
                }
                SyncEnd::Expired(code) => (
                    format!("WeChat ended the session (code {code})"),
                    Happened::SessionDied,
                ),
                SyncEnd::LoggedOut => {
                    self.log_out(&session).await;
                    ("logged out on request".to_owned(), Happened::LoggedOut)
                }
            };
            self.publish(Event::from(LogoutEvent {
                kind: LogoutKind,
                account: self.config.account.clone(),
                time: OffsetDateTime::now_utc(),
                reason: reason.clone(),
            }))
            .await;
            match policy.on(happened) {
                Decision::LogIn => self.set_state(SessionState::LoginRequired, reason),
                waiting => {
                    self.wait_as_told(waiting).await;
                }
            }
        }
    }

    /// Stored session → push login → QR codes, until one works or shutdown (None).
    async fn obtain_session(&self, policy: &mut LoginPolicy) -> Option<Session> {
        if let Some(stored) = self.load_stored() {
            if let Some(s) = self.resume_stored(&stored).await? {
                return Some(s);
            }
            match login::push(&self.client, &stored, &|p| self.show_progress(p)).await {
                Ok(s) => {
                    crate::metrics::login("push");
                    return Some(self.fresh(s).await);
                }
                Err(LoginError::Forbidden(r)) => {
                    let refused = policy.on(Happened::Refused(r.to_string()));
                    if !self.wait_as_told(refused).await {
                        return None;
                    }
                }
                Err(e) => {
                    tracing::info!(cause = %e, "push login did not work; falling back to a QR code")
                }
            }
        }
        let mut backoff = self.retry().schedule();
        let mut next = policy.on(Happened::NoSession);
        loop {
            if self.shutdown.is_cancelled() {
                return None;
            }
            let Decision::AskForQrCodes(codes) = next else {
                if !self.wait_as_told(next).await {
                    return None;
                }
                next = policy.on(Happened::NoSession);
                continue;
            };
            // The state says `login_required` once there is a QR code to scan
            // (`show_progress`), not while it is still being asked for.
            let progress = |p| self.show_progress(p);
            let attempt = tokio::select! {
                _ = self.shutdown.cancelled() => return None,
                r = login::qr(&self.client, codes, &progress) => r,
            };
            match attempt {
                Ok(s) => {
                    crate::metrics::login("qr");
                    return Some(self.fresh(s).await);
                }
                Err(LoginError::Forbidden(r)) => next = policy.on(Happened::Refused(r.to_string())),
                Err(LoginError::QrExpired(_)) => next = policy.on(Happened::QrCodesExpired),
                Err(e) => {
                    tracing::warn!(cause = %e, "login failed; retrying");
                    if !self
                        .retry_later("login", e.unreachable(), &mut backoff)
                        .await
                    {
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
                    if !self
                        .retry_later("resume", e.unreachable(), &mut backoff)
                        .await
                    {
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

    /// After a failed attempt worth repeating: the state says `offline` while WeChat cannot
    /// be reached (`unreachable` names why), the retry is counted under `what`, and the next
    /// delay of `backoff` is slept. False on shutdown.
    async fn retry_later(
        &self,
        what: &'static str,
        unreachable: Option<String>,
        backoff: &mut (impl Iterator<Item = Duration> + Send),
    ) -> bool {
        if let Some(reason) = unreachable {
            self.set_state(SessionState::Offline, format!("{reason}; retrying"));
        }
        crate::metrics::retry(what);
        let d = backoff.next().unwrap_or(self.config.retry.max);
        self.nap(d).await
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

    /// Waits out what the policy decided: `login_forbidden` until a re-login request, a
    /// pause after unscanned QR codes until it ends or a re-login request. False on shutdown.
    /// Decisions that do not wait are done at once.
    async fn wait_as_told(&self, decision: Decision) -> bool {
        let pause = match decision {
            Decision::Forbid { reason } => {
                tracing::error!("{reason}");
                self.set_state(SessionState::LoginForbidden, reason);
                None
            }
            Decision::Pause { wait, reason } => {
                self.set_state(SessionState::LoginRequired, reason);
                self.qr.send_replace(None);
                Some(wait)
            }
            _ => return true,
        };
        let pause = async {
            match pause {
                Some(d) => tokio::time::sleep(d).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = self.shutdown.cancelled() => false,
            _ = self.relogin.notified() => true,
            _ = pause => true,
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
