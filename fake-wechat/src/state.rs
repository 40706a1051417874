//! The fake's whole state behind one mutex, the notifier long polls wait on, and the
//! session rules every endpoint shares (who is logged in, which credentials are valid, which
//! Ret or retcode a refusal carries).

use std::collections::{HashMap, VecDeque};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::Value;
use tokio::sync::Notify;

use crate::contacts::Book;
use crate::ids;
use crate::media::outbox::Outbox;
use crate::media::Library;
use crate::msg::Msg;
use crate::record::{Fault, QueuedMsg, RequestRecord, SentMsg, Violation};
use crate::Options;

/// The first MsgId/NewMsgId handed out: above 2^53, so a client that parses NewMsgId as an
/// f64 merges neighbouring ids (§2).
const FIRST_MSG_ID: u64 = 7_000_000_000_000_000_001;

/// State shared by the server task and every [`FakeWeChat`](crate::FakeWeChat) handle.
pub(crate) struct Shared {
    pub opts: Options,
    /// `http://127.0.0.1:PORT`, the origin of every role.
    pub base_url: String,
    state: Mutex<State>,
    /// Woken on every change; long polls re-check their condition.
    changed: Notify,
}

impl Shared {
    pub fn new(opts: Options, base_url: String) -> Shared {
        let state = State::new(&opts);
        Shared {
            opts,
            base_url,
            state: Mutex::new(state),
            changed: Notify::new(),
        }
    }

    /// The state; a panic in another holder does not make it unusable.
    pub fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Reads the state (no long poll is woken).
    pub fn read<T>(&self, f: impl FnOnce(&State) -> T) -> T {
        f(&self.lock())
    }

    /// Changes the state and wakes every long poll.
    pub fn update<T>(&self, f: impl FnOnce(&mut State) -> T) -> T {
        let out = f(&mut self.lock());
        self.changed.notify_waiters();
        out
    }

    /// Waits up to `hold` for `check` to return `Some`, re-checking after each change.
    pub async fn wait_for<T>(
        &self,
        hold: Duration,
        mut check: impl FnMut(&mut State) -> Option<T>,
    ) -> Option<T> {
        let now = tokio::time::Instant::now();
        let deadline = now
            .checked_add(hold)
            .unwrap_or(now + Duration::from_secs(365 * 24 * 3600));
        loop {
            let notified = self.changed.notified();
            tokio::pin!(notified);
            // Registered before the check, so a change in between is not lost.
            notified.as_mut().enable();
            let hit = check(&mut self.lock());
            if hit.is_some() {
                return hit;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return None;
            }
        }
    }
}

/// Where a QR uuid stands (§1.3).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum QrStatus {
    Waiting,
    Scanned,
    Confirmed { ticket: String, scan: u64 },
    Expired,
    Cancelled,
}

impl QrStatus {
    pub fn pending(&self) -> bool {
        matches!(self, QrStatus::Waiting | QrStatus::Scanned)
    }
}

#[derive(Debug)]
pub(crate) struct Qr {
    pub status: QrStatus,
    /// The last status a poll answered, so a changed one is answered at once.
    pub reported: QrStatus,
}

/// The account: what outlives a login.
#[derive(Debug)]
pub(crate) struct Account {
    pub uin: u64,
    pub uvid: String,
    pub auth_ticket: String,
    /// Set by the first login: push login needs its cookies.
    pub logged_in_once: bool,
}

/// One login's credentials.
#[derive(Debug)]
pub(crate) struct Session {
    pub sid: String,
    pub skey: String,
    pub pass_ticket_decoded: String,
    pub pass_ticket: String,
    pub data_ticket: String,
    /// Logged in in desktop mode (`mod=desktop`, §1.5): file sends then need `mod=desktop`
    /// and an empty appid (§9.3).
    pub desktop: bool,
    /// Set once the session is over: by logout (1100) or by an expire control.
    pub ended: Option<u32>,
}

/// One entry of the account's sync stream; its position is its sequence number.
#[derive(Debug)]
pub(crate) enum SyncEntry {
    Msg(Value),
    ModContact(Value),
    DelContact(String),
}

/// Why a request was refused: the Ret (or synccheck retcode) and a note for ErrMsg.
#[derive(Debug)]
pub(crate) struct Refusal {
    pub ret: i64,
    pub why: String,
}

impl Refusal {
    pub fn new(ret: i64, why: impl Into<String>) -> Refusal {
        Refusal {
            ret,
            why: why.into(),
        }
    }
}

pub(crate) struct State {
    pub account: Account,
    pub book: Book,
    pub session: Option<Session>,
    pub qrs: HashMap<String, Qr>,
    /// The uuid most recently polled while pending: what scan/confirm act on.
    pub current_qr: Option<String>,
    /// Login tickets handed out by a confirm, and whether they were used; keyed by ticket.
    pub tickets: HashMap<String, (String, bool)>,
    pub forbid_login: bool,
    pub push_login: bool,
    pub logins: usize,
    /// The sync stream; entry `i` has sequence number `i + 1`.
    pub stream: Vec<SyncEntry>,
    /// The highest sequence number any webwxsync returned; init starts there.
    pub delivered: u64,
    pub next_msg_id: u64,
    pub rotate_skey: bool,
    pub sent: Vec<SentMsg>,
    pub echo_sent: bool,
    /// Echoes carry a MsgId of their own rather than the send's MsgID.
    pub echo_new_ids: bool,
    /// `(ret, sends still accepted)` once fail_sends was called.
    pub send_failure: Option<(i64, usize)>,
    pub faults: HashMap<String, VecDeque<Fault>>,
    pub requests: Vec<RequestRecord>,
    /// Every queued message's media.
    pub media: Library,
    /// See `FakeWeChat::set_media_delay` and `set_media_rate`.
    pub media_delay: Duration,
    pub media_rate: Option<u64>,
    /// Rules broken on the media endpoints and of the request table.
    pub violations: Vec<Violation>,
    /// Whether the latest login asked for desktop mode (`mod=desktop`), which the request
    /// table's check goes by until there is a session.
    pub login_desktop: Option<bool>,
    /// Uploads and media sends.
    pub outbox: Outbox,
}

impl State {
    fn new(opts: &Options) -> State {
        State {
            account: Account {
                uin: ids::wxuin(),
                uvid: ids::hex(32),
                auth_ticket: ids::cookie_token(32),
                logged_in_once: false,
            },
            book: Book::new(opts.seed_contacts),
            session: None,
            qrs: HashMap::new(),
            current_qr: None,
            tickets: HashMap::new(),
            forbid_login: false,
            push_login: opts.push_login,
            logins: 0,
            stream: Vec::new(),
            delivered: 0,
            next_msg_id: FIRST_MSG_ID,
            rotate_skey: false,
            sent: Vec::new(),
            echo_sent: false,
            echo_new_ids: false,
            send_failure: None,
            faults: HashMap::new(),
            requests: Vec::new(),
            media: Library::default(),
            media_delay: Duration::ZERO,
            media_rate: None,
            violations: Vec::new(),
            login_desktop: None,
            outbox: Outbox::default(),
        }
    }

    /// A fresh QR uuid, waiting for a scan.
    pub fn new_qr(&mut self) -> String {
        let uuid = ids::qr_uuid();
        self.qrs.insert(
            uuid.clone(),
            Qr {
                status: QrStatus::Waiting,
                reported: QrStatus::Waiting,
            },
        );
        uuid
    }

    /// The uuid scan/confirm act on; panics with advice when no client is polling one.
    pub fn current_qr_mut(&mut self) -> &mut Qr {
        let uuid = self
            .current_qr
            .clone()
            .expect("no client has polled a login uuid yet; await wait_for_login_poll() first");
        self.qrs.get_mut(&uuid).expect("current uuid is known")
    }

    pub fn next_id(&mut self) -> u64 {
        let id = self.next_msg_id;
        self.next_msg_id += 1;
        id
    }

    /// Appends a message to the sync stream with fresh ids.
    pub fn push_msg(&mut self, msg: Msg) -> QueuedMsg {
        let id = self.next_id();
        let media_len = msg.media_len;
        let entry = msg.finish(&self.book.me.user_name, id, unix_now());
        self.media.register(&entry, media_len);
        let queued = QueuedMsg {
            msg_id: match &entry["MsgId"] {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            },
            new_msg_id: entry["NewMsgId"].as_u64().unwrap_or(id),
        };
        self.stream.push(SyncEntry::Msg(entry));
        queued
    }

    /// Appends the server's copy of a sent message (§8.1) with id `id`; a sent upload's
    /// bytes are what its downloads serve.
    pub fn push_echo(&mut self, msg: Msg, id: u64, bytes: Option<std::sync::Arc<Vec<u8>>>) {
        let entry = msg.finish(&self.book.me.user_name, id, unix_now());
        match bytes {
            Some(b) => self.media.register_bytes(&entry, b),
            None => self.media.register(&entry, None),
        }
        self.stream.push(SyncEntry::Msg(entry));
    }

    /// Notes a broken rule of a media endpoint.
    pub fn violation(&mut self, endpoint: &str, rule: impl Into<String>) {
        self.violations.push(Violation {
            endpoint: endpoint.to_owned(),
            rule: rule.into(),
        });
    }

    /// The sequence number of the newest stream entry.
    pub fn head(&self) -> u64 {
        self.stream.len() as u64
    }

    /// Checks a session's credentials. `uin`, `sid` and `skey` are what the request carried
    /// (`None` = absent). No session at all is 1100; credentials of another (older) session
    /// are 1101, as WeChat says when the account logged in elsewhere; an ended session
    /// answers the code it ended with.
    pub fn check_credentials(
        &self,
        uin: Option<u64>,
        sid: Option<&str>,
        skey: Option<&str>,
    ) -> Result<&Session, Refusal> {
        let session = self.check_session(uin, sid)?;
        if skey != Some(session.skey.as_str()) {
            return Err(Refusal::new(1101, "Skey does not match the session"));
        }
        Ok(session)
    }

    /// [`State::check_credentials`] without the skey, which may rotate under a held poll.
    pub fn check_session(&self, uin: Option<u64>, sid: Option<&str>) -> Result<&Session, Refusal> {
        let Some(session) = &self.session else {
            return Err(Refusal::new(1100, "no session: log in first"));
        };
        if uin != Some(self.account.uin) {
            return Err(Refusal::new(1101, "Uin does not match the session"));
        }
        if sid != Some(session.sid.as_str()) {
            return Err(Refusal::new(1101, "Sid does not match the session"));
        }
        if let Some(code) = session.ended {
            return Err(Refusal::new(code.into(), "session ended"));
        }
        Ok(session)
    }

    /// Checks a `BaseRequest` object (§2): Uin as a number or a string, Sid, Skey;
    /// DeviceID is not looked at.
    pub fn check_base_request(&self, base: Option<&Value>) -> Result<&Session, Refusal> {
        let Some(base) = base.filter(|b| b.is_object()) else {
            return Err(Refusal::new(1100, "BaseRequest missing"));
        };
        let uin = match &base["Uin"] {
            Value::Number(n) => n.as_u64(),
            Value::String(s) => s.parse().ok(),
            _ => None,
        };
        self.check_credentials(uin, base["Sid"].as_str(), base["Skey"].as_str())
    }

    /// Checks the session cookies (`wxuin`, `wxsid`): absent is 1102, as synccheck answers
    /// a client without cookies (§2); values of another session are 1102 as well.
    pub fn check_cookies(&self, cookies: &HashMap<String, String>) -> Result<(), Refusal> {
        let (Some(uin), Some(sid)) = (cookies.get("wxuin"), cookies.get("wxsid")) else {
            return Err(Refusal::new(1102, "wxuin/wxsid cookies missing"));
        };
        match &self.session {
            Some(s) if *uin == self.account.uin.to_string() && *sid == s.sid => Ok(()),
            Some(_) => Err(Refusal::new(1102, "cookies of another session")),
            None => Err(Refusal::new(1100, "no session: log in first")),
        }
    }

    /// Checks a `pass_ticket` query parameter, if there is one: it must equal the pass
    /// ticket after one or two percent-decodes (§1.4).
    pub fn check_pass_ticket(&self, query: &HashMap<String, String>) -> Result<(), Refusal> {
        let (Some(given), Some(session)) = (query.get("pass_ticket"), &self.session) else {
            return Ok(());
        };
        // The query was decoded once already: a raw `%2B` arrives as `+`, a re-encoded
        // `%252B` as `%2B`.
        if *given == session.pass_ticket_decoded || *given == session.pass_ticket {
            Ok(())
        } else {
            Err(Refusal::new(1101, "pass_ticket does not match"))
        }
    }
}

pub(crate) fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}
