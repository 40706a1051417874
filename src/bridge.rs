//! Wires WeChat to the outputs: the session supervisor (login policy, the synccheck/webwxsync
//! loop, events) and the sender (outbound queue, recipient resolution, limiter, results).
//!
//! Delivery: each AddMsgList entry becomes at most one event per MsgId (a bounded in-memory
//! dedup index), emitted before the new sync keys are stored, so a crash replays rather than
//! loses. Every send command gets exactly one result.
use std::collections::{HashMap, HashSet, VecDeque};
use std::path::Path;
use std::sync::Mutex;
use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBuilder};
use serde::Serialize;
use time::OffsetDateTime;
use tokio::sync::{mpsc, watch, Notify};
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::event::{
    Command, ContactsEvent, ContactsKind, ErrorCode, Event, LoginEvent, LoginKind, LoginUser,
    LogoutEvent, LogoutKind, SendResult, SessionState, SessionStatus, StateEvent, StateKind,
};
use crate::limiter::Limiter;
use crate::wechat::client::{SendError, Timeouts, WxClient, WxError};
use crate::wechat::contacts::{clean_name, ResolveError};
use crate::wechat::login::{self, LoginError, LoginProgress};
use crate::wechat::message;
use crate::wechat::protocol::Contact;
use crate::wechat::session::{Session, SessionFile};

/// Everything the bridge emits towards the sinks.
#[derive(Debug, Clone, Serialize)]
#[serde(untagged)]
pub enum Output {
    /// An inbound message or another event.
    Event(Event),
    /// The answer to a send command.
    Result(SendResult),
}

/// A send command waiting in the outbound queue.
#[derive(Debug, Clone)]
pub struct Queued {
    /// The command.
    pub command: Command,
    /// When it arrived.
    pub received: OffsetDateTime,
}

/// How many QR codes may expire in a row before `run` stops asking (DESIGN.md "Login policy").
const RUN_QR_LIMIT: u32 = 3;
/// A session that dies sooner than this after its login counts as a quick death.
const QUICK_DEATH: Duration = Duration::from_secs(5 * 60);
/// The longest wait between rounds of QR codes nobody scans.
const QR_PAUSE_MAX: Duration = Duration::from_secs(30 * 60);
/// How many MsgIds the dedup index remembers.
const DEDUP_CAPACITY: usize = 100_000;
/// How long a request_id is remembered for idempotency.
const REQUEST_ID_WINDOW: Duration = Duration::from_secs(24 * 60 * 60);
/// How often a 1205 answer is retried before the command is answered `rate_limited`.
const TOO_FREQUENT_RETRIES: u32 = 3;

/// The parts of a running bridge that its tasks share.
pub struct Bridge {
    config: Config,
    client: WxClient,
    session_file: SessionFile,
    out: mpsc::Sender<Output>,
    status: watch::Sender<SessionStatus>,
    session: watch::Sender<Option<Session>>,
    sent: SentLog,
    relogin: Notify,
    shutdown: CancellationToken,
}

impl Bridge {
    /// A bridge that emits on `out` and stops when `shutdown` is cancelled.
    pub fn new(config: Config, out: mpsc::Sender<Output>, shutdown: CancellationToken) -> Bridge {
        let client = WxClient::new(
            config.wechat.login_url.clone(),
            config.wechat.desktop_mode,
            Timeouts::default(),
        );
        let session_file = SessionFile::in_dir(&config.state_dir);
        Bridge {
            config,
            client,
            session_file,
            out,
            status: watch::Sender::new(SessionStatus {
                state: SessionState::Starting,
                since: OffsetDateTime::now_utc(),
                reason: String::new(),
            }),
            session: watch::Sender::new(None),
            sent: SentLog::default(),
            relogin: Notify::new(),
            shutdown,
        }
    }

    /// The session state, for observers.
    pub fn status(&self) -> watch::Receiver<SessionStatus> {
        self.status.subscribe()
    }

    /// Asks for a new login (relogin topic, HTTP, HA button).
    pub fn request_relogin(&self) {
        self.relogin.notify_one();
    }

    async fn emit(&self, output: impl Into<Output>) {
        // The receiver only goes away at shutdown, when nothing is left to tell.
        let _ = self.out.send(output.into()).await;
    }

    /// Moves to `state`; logs and emits only real transitions.
    async fn set_state(&self, state: SessionState, reason: impl Into<String>) {
        let reason = reason.into();
        let current = self.status.borrow().clone();
        if current.state == state && current.reason == reason {
            return;
        }
        tracing::info!(state = %state, reason = %reason, "session state");
        let status = SessionStatus {
            state,
            since: OffsetDateTime::now_utc(),
            reason,
        };
        self.status.send_replace(status.clone());
        self.emit(Event::from(StateEvent {
            kind: StateKind,
            account: self.config.account.clone(),
            status,
        }))
        .await;
    }

    /// A fresh jittered reconnect schedule (`retry.*`): `initial`, doubling, capped at `max`.
    fn backoff(&self) -> impl Iterator<Item = Duration> {
        ExponentialBuilder::default()
            .with_min_delay(self.config.retry.initial)
            .with_max_delay(self.config.retry.max)
            .with_jitter()
            .without_max_times()
            .build()
    }

    /// Sleeps unless shutdown comes first; false on shutdown.
    async fn nap(&self, d: Duration) -> bool {
        tokio::select! {
            _ = self.shutdown.cancelled() => false,
            _ = tokio::time::sleep(d) => true,
        }
    }

    /// Runs until shutdown: the session supervisor and the sender, side by side.
    pub async fn run(&self, commands: mpsc::Receiver<Queued>) {
        tokio::join!(self.supervise_session(), self.send_loop(commands));
        self.set_state(SessionState::Offline, "shutting down").await;
    }

    /// Log in, sync until the session ends, log in again: forever (DESIGN.md "Login policy").
    async fn supervise_session(&self) {
        let mut quick_deaths = 0;
        while !self.shutdown.is_cancelled() {
            let Some(session) = self.obtain_session().await else {
                break;
            };
            self.save_session(&session);
            let user = session.user();
            self.emit(Event::from(LoginEvent {
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
            self.session.send_replace(Some(session.clone()));
            self.set_state(SessionState::Online, "").await;
            let end = self.sync_loop(&session).await;
            self.session.send_replace(None);
            let Some(code) = end else {
                self.save_session(&session);
                break;
            };
            let reason = format!("WeChat ended the session (code {code})");
            self.emit(Event::from(LogoutEvent {
                kind: LogoutKind,
                account: self.config.account.clone(),
                time: OffsetDateTime::now_utc(),
                reason: reason.clone(),
            }))
            .await;
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
            self.set_state(SessionState::LoginRequired, reason).await;
        }
    }

    /// Stored session → push login → QR, until one works or shutdown (None).
    async fn obtain_session(&self) -> Option<Session> {
        if let Some(stored) = self.load_stored() {
            let mut backoff = self.backoff();
            loop {
                match login::resume(&self.client, &stored).await {
                    Ok(s) => {
                        tracing::info!("resumed the stored session");
                        return Some(s);
                    }
                    Err(e) if is_transient(&e) => {
                        tracing::warn!(cause = %e, "cannot reach WeChat to resume the stored session; retrying");
                        let d = backoff.next().unwrap_or(self.config.retry.max);
                        if !self.nap(d).await {
                            return None;
                        }
                    }
                    Err(e) => {
                        tracing::info!(cause = %e, "the stored session is no longer valid");
                        break;
                    }
                }
            }
            self.set_state(
                SessionState::LoginRequired,
                "confirm the login on your phone",
            )
            .await;
            match login::push(&self.client, &stored, &|p| self.show_progress(p)).await {
                Ok(s) => return Some(s),
                Err(LoginError::Forbidden(r)) => {
                    self.wait_forbidden(&r.to_string()).await;
                }
                Err(e) => {
                    tracing::info!(cause = %e, "push login did not work; falling back to a QR code")
                }
            }
        }
        let mut backoff = self.backoff();
        let mut pause = self.config.retry.initial;
        loop {
            if self.shutdown.is_cancelled() {
                return None;
            }
            self.set_state(SessionState::LoginRequired, "scan the QR code with WeChat")
                .await;
            let progress = |p| self.show_progress(p);
            let attempt = tokio::select! {
                _ = self.shutdown.cancelled() => return None,
                r = login::qr(&self.client, RUN_QR_LIMIT, &progress) => r,
            };
            match attempt {
                Ok(s) => return Some(s),
                Err(LoginError::Forbidden(r)) => self.wait_forbidden(&r.to_string()).await,
                Err(LoginError::QrExpired(n)) => {
                    self.set_state(
                        SessionState::LoginRequired,
                        format!(
                            "{n} QR codes expired without a scan; waiting for a re-login request"
                        ),
                    )
                    .await;
                    pause = (pause * 2).min(QR_PAUSE_MAX);
                    tokio::select! {
                        _ = self.shutdown.cancelled() => return None,
                        _ = self.relogin.notified() => {}
                        _ = tokio::time::sleep(pause) => {}
                    }
                }
                Err(e) => {
                    tracing::warn!(cause = %e, "login failed; retrying");
                    let d = backoff.next().unwrap_or(self.config.retry.max);
                    if !self.nap(d).await {
                        return None;
                    }
                }
            }
        }
    }

    /// `login_forbidden` until a re-login is requested (or shutdown).
    async fn wait_forbidden(&self, reason: &str) {
        tracing::error!("{reason}");
        self.set_state(SessionState::LoginForbidden, reason).await;
        tokio::select! {
            _ = self.shutdown.cancelled() => {}
            _ = self.relogin.notified() => {}
        }
    }

    fn load_stored(&self) -> Option<crate::wechat::session::StoredSession> {
        match self.session_file.load() {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(cause = %e, "cannot read the stored session");
                None
            }
        }
    }

    fn save_session(&self, session: &Session) {
        if let Err(e) = self.session_file.save(&session.to_stored()) {
            tracing::error!(cause = %e, path = %self.session_file.path().display(), "cannot store the session");
        }
    }

    fn show_progress(&self, p: LoginProgress) {
        show_login_progress(&p, &self.config.wechat.qr_png);
    }

    /// synccheck → webwxsync until the session ends (Some(code)) or shutdown (None).
    /// Timeouts, connection errors and 5xx are retried with backoff on the same session.
    async fn sync_loop(&self, session: &Session) -> Option<i64> {
        let mut dedup = Dedup::new(DEDUP_CAPACITY);
        let mut backoff = self.backoff();
        let mut counter = now_ms();
        loop {
            let creds = session.credentials();
            let keys = session.keys();
            let check = tokio::select! {
                _ = self.shutdown.cancelled() => return None,
                c = session.client().synccheck(&creds, keys.for_synccheck(), counter) => c,
            };
            counter += 1;
            let result = match check {
                Ok(c) if c.selector == 0 => Ok(()),
                Ok(_) => self.sync_once(session, &mut dedup).await,
                Err(e) => Err(e),
            };
            match result {
                Ok(()) => backoff = self.backoff(),
                Err(WxError::SessionExpired { code, .. }) => return Some(code),
                Err(e) => {
                    tracing::warn!(cause = %e, "sync failed; retrying on the same session");
                    let d = backoff.next().unwrap_or(self.config.retry.max);
                    if !self.nap(d).await {
                        return None;
                    }
                }
            }
        }
    }

    /// One webwxsync: contacts first (so names resolve), then the messages, then the keys.
    async fn sync_once(&self, session: &Session, dedup: &mut Dedup) -> Result<(), WxError> {
        let creds = session.credentials();
        let resp = session
            .client()
            .sync(&creds, &session.keys().sync_key)
            .await?;
        session.rotate_skey(&resp.skey);

        let changes = session
            .with_book_mut(|b| b.apply_changes(resp.mod_contact_list, resp.del_contact_list));
        if !changes.is_empty() {
            self.emit(Event::from(ContactsEvent {
                kind: ContactsKind,
                account: self.config.account.clone(),
                time: OffsetDateTime::now_utc(),
                added: changes.added,
                modified: changes.modified,
                removed: changes.removed,
            }))
            .await;
        }

        let missing = session.book().missing_for(&resp.add_msg_list);
        if !missing.is_empty() {
            match session.client().batch_get_contacts(&creds, &missing).await {
                Ok(found) => session.with_book_mut(|b| b.apply_batch(&missing, found)),
                Err(e) if e.is_session_expired() => return Err(e),
                Err(e) => {
                    tracing::warn!(cause = %e, "cannot fetch unknown contacts; names fall back to ids")
                }
            }
        }

        let self_name = session.user().user_name.clone();
        for msg in &resp.add_msg_list {
            if !dedup.insert(&msg.msg_id) {
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
            if let Some(event) = event {
                self.emit(Event::from(event)).await;
            }
        }

        if session.update_keys(resp.sync_key, resp.sync_check_key) {
            self.save_session(session);
        }
        Ok(())
    }

    /// Takes commands in order; each gets exactly one result.
    async fn send_loop(&self, mut commands: mpsc::Receiver<Queued>) {
        let rate = &self.config.send.rate;
        let mut limiter = Limiter::new(rate.per_second, rate.burst);
        let mut answered = RecentResults::default();
        loop {
            let queued = tokio::select! {
                _ = self.shutdown.cancelled() => return,
                q = commands.recv() => match q { Some(q) => q, None => return },
            };
            let request_id = queued.command.request_id.clone();
            if let Some(previous) = request_id.as_deref().and_then(|id| answered.get(id)) {
                tracing::info!(request_id = ?request_id, "repeated request_id; repeating its result");
                self.emit(Output::Result(previous)).await;
                continue;
            }
            let Some(result) = self.send_one(&queued, &mut limiter).await else {
                return;
            };
            if let Some(id) = request_id {
                answered.insert(id, result.clone());
            }
            self.emit(Output::Result(result)).await;
        }
    }

    /// Sends one command; None only on shutdown.
    async fn send_one(&self, queued: &Queued, limiter: &mut Limiter) -> Option<SendResult> {
        let cmd = &queued.command;
        let rid = cmd.request_id.clone();
        let deadline = cmd
            .expires_at
            .unwrap_or(queued.received + self.config.send.default_ttl);
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
            let left: Duration = left.try_into().unwrap_or(Duration::ZERO);
            let session = tokio::select! {
                _ = self.shutdown.cancelled() => return None,
                _ = tokio::time::sleep(left) => continue,
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
                },
            }
            let guard = self.sent.begin();
            let sent = session.send_text(&recipient.user_name, &cmd.text).await;
            let name = display(&recipient);
            match sent {
                Ok(msg_id) => {
                    guard.finish(Some((msg_id.clone(), rid.clone())));
                    return Some(SendResult::ok(rid, msg_id, recipient.user_name, name));
                }
                Err(e) => {
                    guard.finish(None);
                    match e {
                        SendError::TooFrequent if too_frequent < TOO_FREQUENT_RETRIES => {
                            too_frequent += 1;
                            limiter.slow_down();
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
                                "session ended while sending; the command waits for the next login"
                            );
                            let next = session_rx
                                .wait_for(|s| s.as_ref().is_none_or(|s2| !same(s2, &session)));
                            let _ = tokio::time::timeout(left, next).await;
                        }
                        SendError::Transport(e) => {
                            // The request may have reached WeChat: retrying could send twice.
                            return Some(SendResult::err(
                                rid,
                                ErrorCode::Timeout,
                                format!("no answer from WeChat, the message may or may not have been sent: {e}"),
                            ));
                        }
                        other => {
                            let ret = other.ret().unwrap_or(-1);
                            return Some(SendResult::wechat_error(rid, ret, other.to_string()));
                        }
                    }
                }
            }
        }
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
        let allow = &self.config.send.allow;
        if !allow.is_empty() {
            let names = [
                clean_name(&found.remark_name),
                clean_name(&found.nick_name),
                found.user_name.clone(),
            ];
            let asked = cmd.to.clone().unwrap_or_default();
            if !allow.iter().any(|a| a == &asked || names.contains(a)) {
                return Err(Box::new(SendResult::err(
                    rid,
                    ErrorCode::Forbidden,
                    format!("{} is not in send.allow", display(&found)),
                )));
            }
        }
        Ok(found)
    }
}

fn same(a: &Session, b: &Session) -> bool {
    a.started() == b.started()
}

fn display(c: &Contact) -> String {
    let name = if c.remark_name.is_empty() {
        &c.nick_name
    } else {
        &c.remark_name
    };
    clean_name(name)
}

/// Connection trouble that says nothing about the session's validity.
fn is_transient(e: &WxError) -> bool {
    matches!(
        e,
        WxError::Http { .. } | WxError::Status { .. } | WxError::Garbage { .. }
    )
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// What a person at the terminal needs during a login: the QR (also written as a PNG) and the
/// prompts, on stderr.
pub fn show_login_progress(p: &LoginProgress, qr_png: &Path) {
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
                    match std::fs::write(qr_png, png) {
                        Ok(()) => written = format!(" (also saved as {})", qr_png.display()),
                        Err(e) => {
                            tracing::warn!(cause = %e, path = %qr_png.display(), "cannot write the QR code")
                        }
                    }
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
}

/// The MsgIds of messages this bridge sent, so their echo is marked `origin: bridge`, and the
/// sends still waiting for WeChat's answer: an echo can come back before the answer does.
#[derive(Default)]
struct SentLog {
    ids: Mutex<SentIds>,
    in_flight: watch::Sender<usize>,
}

#[derive(Default)]
struct SentIds {
    by_msg_id: HashMap<String, Option<String>>,
    order: VecDeque<String>,
}

/// One send in flight; call [`SendGuard::finish`].
struct SendGuard<'a> {
    log: &'a SentLog,
}

impl SentLog {
    fn begin(&self) -> SendGuard<'_> {
        self.in_flight.send_modify(|n| *n += 1);
        SendGuard { log: self }
    }

    /// The request_id (possibly none) of a message this bridge sent.
    fn lookup(&self, msg_id: &str) -> Option<Option<String>> {
        self.ids.lock().ok()?.by_msg_id.get(msg_id).cloned()
    }

    /// Waits (briefly) until no send is waiting for its answer.
    async fn settle(&self) {
        let mut rx = self.in_flight.subscribe();
        let _ = tokio::time::timeout(Duration::from_secs(10), rx.wait_for(|n| *n == 0)).await;
    }
}

impl SendGuard<'_> {
    fn finish(self, sent: Option<(String, Option<String>)>) {
        if let Some((msg_id, request_id)) = sent {
            if let Ok(mut ids) = self.log.ids.lock() {
                ids.by_msg_id.insert(msg_id.clone(), request_id);
                ids.order.push_back(msg_id);
                while ids.order.len() > DEDUP_CAPACITY {
                    if let Some(old) = ids.order.pop_front() {
                        ids.by_msg_id.remove(&old);
                    }
                }
            }
        }
        self.log.in_flight.send_modify(|n| *n = n.saturating_sub(1));
    }
}

/// The MsgIds already emitted, oldest forgotten first.
struct Dedup {
    seen: HashSet<String>,
    order: VecDeque<String>,
    capacity: usize,
}

impl Dedup {
    fn new(capacity: usize) -> Dedup {
        Dedup {
            seen: HashSet::new(),
            order: VecDeque::new(),
            capacity,
        }
    }

    /// True the first time a MsgId is seen.
    fn insert(&mut self, id: &str) -> bool {
        if !self.seen.insert(id.to_owned()) {
            return false;
        }
        self.order.push_back(id.to_owned());
        if self.order.len() > self.capacity {
            if let Some(old) = self.order.pop_front() {
                self.seen.remove(&old);
            }
        }
        true
    }
}

/// Results by request_id for 24 hours (DESIGN.md: `request_id` is an idempotency key).
#[derive(Default)]
struct RecentResults {
    by_id: HashMap<String, (tokio::time::Instant, SendResult)>,
}

impl RecentResults {
    fn get(&mut self, id: &str) -> Option<SendResult> {
        let now = tokio::time::Instant::now();
        self.by_id
            .retain(|_, (at, _)| now.duration_since(*at) < REQUEST_ID_WINDOW);
        self.by_id.get(id).map(|(_, r)| r.clone())
    }

    fn insert(&mut self, id: String, result: SendResult) {
        self.by_id.insert(id, (tokio::time::Instant::now(), result));
    }
}

impl From<Event> for Output {
    fn from(e: Event) -> Self {
        Output::Event(e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dedup_forgets_the_oldest_past_its_capacity() {
        let mut d = Dedup::new(2);
        assert!(d.insert("1"));
        assert!(!d.insert("1"));
        assert!(d.insert("2"));
        assert!(d.insert("3"));
        assert!(d.insert("1"), "1 was forgotten");
        assert!(!d.insert("3"));
    }

    #[tokio::test(start_paused = true)]
    async fn results_are_remembered_for_a_day() {
        let mut r = RecentResults::default();
        r.insert(
            "a".into(),
            SendResult::err(Some("a".into()), ErrorCode::Expired, "x"),
        );
        assert!(r.get("a").is_some());
        tokio::time::advance(REQUEST_ID_WINDOW).await;
        assert!(r.get("a").is_none());
    }
}
