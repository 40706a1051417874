//! The test's remote control: [`FakeWeChat`] starts the server on 127.0.0.1 and changes or
//! inspects its state (QR scans, session expiry, queued messages, faults, recorded traffic).
//!
//! UserNames are those of the current login: every login after the first hands out new ones
//! (see `renumber`), so a test that logs in again looks contacts up again
//! ([`FakeWeChat::user_name_of`], [`FakeWeChat::contacts`], [`FakeWeChat::group`]); the
//! controls that take a UserName panic, with that advice, when given one of an earlier login.

use std::sync::Arc;
use std::time::Duration;

use axum::serve::ListenerExt as _;
use tokio::net::TcpListener;
use tokio::task::AbortHandle;

use crate::contacts::{group_info, Contact, ContactInfo, Details, GroupInfo};
use crate::msg::Msg;
use crate::record::{Fault, QueuedMsg, RequestRecord, SentMsg};
use crate::state::{unix_now, QrStatus, Shared, State, SyncEntry};
use crate::{ids, server, Options};

/// How long [`FakeWeChat::wait_for_login_poll`] waits before it gives up.
const LOGIN_POLL_WAIT: Duration = Duration::from_secs(30);

/// A running fake server. Cheap to clone; the server stops when the last clone is dropped
/// or on [`FakeWeChat::shutdown`].
#[derive(Clone)]
pub struct FakeWeChat {
    pub(crate) shared: Arc<Shared>,
    _task: Arc<ServerTask>,
}

struct ServerTask(AbortHandle);

impl Drop for ServerTask {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// The current login's credentials, for assertions.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SessionInfo {
    /// wxuin (the same for every login of the account).
    pub uin: u64,
    /// wxsid.
    pub sid: String,
    /// The skey in force (changes on [`FakeWeChat::rotate_skey`]).
    pub skey: String,
    /// The pass ticket as the login XML gave it (percent-encoded).
    pub pass_ticket: String,
    /// The code the session ended with (logout: 1100; see [`FakeWeChat::expire_session`]).
    pub ended: Option<u32>,
}

impl FakeWeChat {
    /// Starts a fake with default [`Options`]. Needs a tokio runtime.
    pub async fn start() -> FakeWeChat {
        FakeWeChat::start_with(Options::default()).await
    }

    /// Starts a fake with `opts`.
    ///
    /// # Panics
    /// If the port cannot be bound.
    pub async fn start_with(opts: Options) -> FakeWeChat {
        let listener = TcpListener::bind(("127.0.0.1", opts.port))
            .await
            .expect("bind the fake WeChat server");
        let addr = listener.local_addr().expect("local address");
        let shared = Arc::new(Shared::new(opts, format!("http://{addr}")));
        let app = server::router(shared.clone());
        // A streamed body (media downloads) goes out as the headers, then each chunk: with
        // Nagle's algorithm on, a chunk waits for the ACK of the headers, which the client
        // delays up to 40 ms, so every small download took 30-40 ms instead of one.
        let listener = listener.tap_io(|tcp| {
            let _ = tcp.set_nodelay(true);
        });
        let task = tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, app).await {
                tracing::error!(error = %e, "fake WeChat server stopped");
            }
        });
        FakeWeChat {
            shared,
            _task: Arc::new(ServerTask(task.abort_handle())),
        }
    }

    /// `http://127.0.0.1:PORT`: the `login_url` to configure a client with. The login poll's
    /// redirect points at the same origin, so it serves every role (§0).
    pub fn url(&self) -> String {
        self.shared.base_url.clone()
    }

    /// Stops the server now (handles stay usable for inspection).
    pub fn shutdown(&self) {
        self._task.0.abort();
    }

    // ---- login ----

    /// Waits until a client polls a uuid that is still waiting for a scan or confirm, and
    /// returns it. That uuid is then the *current* one, which the QR controls act on; a newer
    /// uuid becomes current as soon as it is polled.
    ///
    /// # Panics
    /// After 30 s without such a poll.
    pub async fn wait_for_login_poll(&self) -> String {
        self.shared
            .wait_for(LOGIN_POLL_WAIT, |st| {
                let uuid = st.current_qr.clone()?;
                st.qrs[&uuid].status.pending().then_some(uuid)
            })
            .await
            .expect("no client polled a fresh login uuid within 30 s")
    }

    /// The phone scanned the current QR: its poll answers 201 with an avatar.
    ///
    /// # Panics
    /// This and the other QR controls panic if no client has polled a uuid yet.
    pub fn scan(&self) {
        self.shared.update(|st| {
            let qr = st.current_qr_mut();
            if qr.status == QrStatus::Waiting {
                qr.status = QrStatus::Scanned;
            }
        });
    }

    /// The phone confirmed (after a scan, or directly for push login): the current uuid's
    /// poll answers 200 with a redirect holding a fresh, single-use ticket.
    pub fn confirm(&self) {
        self.shared.update(|st| {
            let uuid = st.current_qr.clone().unwrap_or_default();
            let ticket = ids::login_ticket();
            let qr = st.current_qr_mut();
            if qr.status.pending() {
                qr.status = QrStatus::Confirmed {
                    ticket: ticket.clone(),
                    scan: unix_now(),
                };
                st.tickets.insert(ticket, (uuid, false));
            }
        });
    }

    /// The current QR expired: its poll answers 400; the client needs a new uuid.
    pub fn expire_qr(&self) {
        self.set_qr(QrStatus::Expired);
    }

    /// The login was cancelled on the phone: the current uuid's poll answers 202.
    pub fn cancel_qr(&self) {
        self.set_qr(QrStatus::Cancelled);
    }

    fn set_qr(&self, status: QrStatus) {
        self.shared.update(|st| {
            let qr = st.current_qr_mut();
            if qr.status.pending() {
                qr.status = status;
            }
        });
    }

    /// While on, webwxnewloginpage answers ret 1203 with no skey (the ticket is used up).
    pub fn forbid_login(&self, on: bool) {
        self.shared.update(|st| st.forbid_login = on);
    }

    /// Whether webwxpushloginurl offers push login (§1.6).
    pub fn enable_push_login(&self, on: bool) {
        self.shared.update(|st| st.push_login = on);
    }

    /// Ends the current session as the server does: synccheck answers retcode `code` and
    /// every JSON call Ret `code` (1100, 1101 or 1102), until a new login replaces it.
    /// A held synccheck answers at once.
    pub fn expire_session(&self, code: u32) {
        self.shared.update(|st| {
            if let Some(s) = st.session.as_mut() {
                s.ended = Some(code);
            }
        });
    }

    /// The next webwxsync answers a new non-empty SKey; from then on only it is accepted.
    pub fn rotate_skey(&self) {
        self.shared.update(|st| st.rotate_skey = true);
    }

    /// Successful webwxnewloginpage calls so far. Each after the first gave everyone new
    /// UserNames.
    pub fn logins(&self) -> usize {
        self.shared.lock().logins
    }

    /// Waits until at least `n` logins succeeded or `timeout` passed; returns the count. A
    /// test that looks contacts up again after a login waits for it with this.
    pub async fn wait_logins(&self, n: usize, timeout: Duration) -> usize {
        self.shared
            .wait_for(timeout, |st| (st.logins >= n).then_some(()))
            .await;
        self.logins()
    }

    /// The current login's credentials, if there was a login.
    pub fn session(&self) -> Option<SessionInfo> {
        let st = self.shared.lock();
        st.session.as_ref().map(|s| SessionInfo {
            uin: st.account.uin,
            sid: s.sid.clone(),
            skey: s.skey.clone(),
            pass_ticket: s.pass_ticket.clone(),
            ended: s.ended,
        })
    }

    // ---- contacts ----

    /// The account itself (UserName, NickName).
    pub fn self_user(&self) -> ContactInfo {
        self.shared.lock().book.me.info()
    }

    /// Every contact and group the account knows (saved or not), without self.
    pub fn contacts(&self) -> Vec<ContactInfo> {
        let st = self.shared.lock();
        st.book.contacts.iter().map(|c| c.info()).collect()
    }

    /// A group by UserName.
    pub fn group(&self, user_name: &str) -> Option<GroupInfo> {
        self.shared.lock().book.group(user_name).map(group_info)
    }

    /// The current UserName of the contact or group whose NickName (a group's name) is
    /// `nick`: what a test that logged in again uses instead of a UserName it kept.
    ///
    /// # Panics
    /// Unless exactly one contact or group has that NickName (look-alikes:
    /// [`FakeWeChat::user_names_of`]).
    pub fn user_name_of(&self, nick: &str) -> String {
        match self.user_names_of(nick).as_slice() {
            [one] => one.clone(),
            [] => panic!("no contact or group is named {nick:?}"),
            many => panic!("{} contacts are named {nick:?}: {many:?}", many.len()),
        }
    }

    /// The current UserNames of every contact and group whose NickName is `nick`, in the
    /// order they were added (which logins keep).
    pub fn user_names_of(&self, nick: &str) -> Vec<String> {
        let st = self.shared.lock();
        st.book
            .contacts
            .iter()
            .filter(|c| c.nick == nick)
            .map(|c| c.user_name.clone())
            .collect()
    }

    /// A contact's Sex, Province and City, as getcontact and batchgetcontact carry them.
    pub fn details(&self, user_name: &str) -> Option<Details> {
        self.shared.lock().book.get(user_name).map(Contact::details)
    }

    /// Changes a contact's Sex (0 unknown, 1 male, 2 female), Province and City quietly.
    ///
    /// # Panics
    /// If `user_name` is not a contact of this login.
    pub fn set_details(&self, user_name: &str, sex: u32, province: &str, city: &str) {
        let details = Details {
            sex,
            province: province.to_owned(),
            city: city.to_owned(),
        };
        self.shared
            .update(|st| contact_mut(st, user_name).set_details(&details));
    }

    /// Adds a friend with these Sex, Province and City quietly; returns its UserName. Two
    /// friends with the same NickName and details and no remark look alike: only their
    /// UserNames tell them apart, and those change at every login.
    pub fn add_contact_with(
        &self,
        nick: &str,
        remark: &str,
        sex: u32,
        province: &str,
        city: &str,
    ) -> String {
        let user_name = self.add_contact(nick, remark);
        self.set_details(&user_name, sex, province, city);
        user_name
    }

    /// Adds a friend quietly (listed by getcontact from now on); returns its UserName.
    /// Call [`FakeWeChat::push_mod_contact`] to also announce it through webwxsync.
    pub fn add_contact(&self, nick: &str, remark: &str) -> String {
        self.shared.update(|st| st.book.add_person(nick, remark))
    }

    /// Adds a group of `(nick, display name)` members plus the account (last). A member whose
    /// nick is a friend's is that friend. `saved` groups are in getcontact (MemberCount only);
    /// others are found only by batchgetcontact.
    pub fn add_group(&self, name: &str, members: &[(&str, &str)], saved: bool) -> GroupInfo {
        self.shared
            .update(|st| st.book.add_group(name, members, saved))
    }

    /// Adds a member to a group quietly; returns the member's UserName.
    ///
    /// # Panics
    /// If `group` is not a group of this login.
    pub fn add_group_member(&self, group: &str, nick: &str, display: &str) -> String {
        self.shared.update(|st| {
            contact_mut(st, group);
            let existing = st
                .book
                .contacts
                .iter()
                .find(|c| c.group.is_none() && c.nick == nick)
                .map(|c| c.user_name.clone());
            let user_name = existing.unwrap_or_else(ids::person_user_name);
            let g = st.book.get_mut(group).and_then(|c| c.group.as_mut());
            let g = g.unwrap_or_else(|| panic!("{group} is not a group"));
            let at = g.members.len().saturating_sub(1);
            g.members.insert(
                at,
                crate::contacts::Member {
                    user_name: user_name.clone(),
                    nick: nick.to_owned(),
                    display: display.to_owned(),
                },
            );
            user_name
        })
    }

    /// Removes a member from a group quietly.
    ///
    /// # Panics
    /// If `group` is not a group of this login or `member` a UserName of an earlier one.
    pub fn remove_group_member(&self, group: &str, member: &str) {
        self.shared.update(|st| {
            refuse_retired(st, member);
            if let Some(g) = contact_mut(st, group).group.as_mut() {
                g.members.retain(|m| m.user_name != member);
            }
        });
    }

    /// Changes a contact's NickName (a group's name) quietly.
    ///
    /// # Panics
    /// If `user_name` is not a contact or group of this login.
    pub fn set_nick(&self, user_name: &str, nick: &str) {
        self.shared
            .update(|st| contact_mut(st, user_name).nick = nick.to_owned());
    }

    /// Changes a contact's RemarkName quietly.
    ///
    /// # Panics
    /// If `user_name` is not a contact or group of this login.
    pub fn set_remark(&self, user_name: &str, remark: &str) {
        self.shared
            .update(|st| contact_mut(st, user_name).remark = remark.to_owned());
    }

    /// Announces a contact's current state in the next webwxsync's ModContactList (groups
    /// with their MemberList). synccheck answers selector 4 if nothing else is pending.
    ///
    /// # Panics
    /// If `user_name` is unknown.
    pub fn push_mod_contact(&self, user_name: &str) {
        self.shared.update(|st| {
            let skey = st
                .session
                .as_ref()
                .map(|s| s.skey.clone())
                .unwrap_or_default();
            let c = contact_mut(st, user_name).clone();
            let v = st.book.mod_contact_json(&c, &skey);
            st.stream.push(SyncEntry::ModContact(v));
        });
    }

    /// Removes a contact and announces it in the next webwxsync's DelContactList.
    pub fn push_del_contact(&self, user_name: &str) {
        self.shared.update(|st| {
            st.book.remove(user_name);
            st.stream.push(SyncEntry::DelContact(user_name.to_owned()));
        });
    }

    // ---- messages ----

    /// Queues an inbound message; a held synccheck answers selector 2 at once.
    ///
    /// # Panics
    /// If the message is From or To (or its group sender prefix names) a UserName of an
    /// earlier login.
    pub fn queue(&self, msg: Msg) -> QueuedMsg {
        let (users, member) = msg.parties();
        self.shared.update(|st| {
            for user in users.iter().chain(member.iter()) {
                refuse_retired(st, user);
            }
            st.push_msg(msg)
        })
    }

    /// Queues a captured entry ([`Msg::verbatim`]) through the normal webwxsync answer, after
    /// making its other UserNames known, so the client can resolve From and To as it would
    /// in a real session: a `@@` name becomes an unsaved group (found by batchgetcontact)
    /// holding the Content's sender prefix as a member, any other `@` name a contact.
    /// Learned names are `group <8 chars>` / `user <8 chars>` of the UserName past its `@`s.
    pub fn queue_verbatim(&self, entry: serde_json::Value, own: Option<&str>) -> QueuedMsg {
        let msg = Msg::verbatim(entry, own);
        let (users, member) = msg.parties();
        self.shared.update(|st| {
            let member = member.map(|m| (captured_name("user", &m), m));
            for user in &users {
                if user.starts_with("@@") {
                    let m = member.as_ref().map(|(nick, u)| (u.as_str(), nick.as_str()));
                    st.book
                        .learn_group_member(user, &captured_name("group", user), m);
                } else {
                    st.book.learn_person(user, &captured_name("user", user));
                }
            }
            st.push_msg(msg)
        })
    }

    /// What webwxsendmsg accepted, in order.
    pub fn sent(&self) -> Vec<SentMsg> {
        self.shared.lock().sent.clone()
    }

    /// Waits until at least `n` sends were accepted or `timeout` passed; returns them all.
    pub async fn wait_sent(&self, n: usize, timeout: Duration) -> Vec<SentMsg> {
        self.shared
            .wait_for(timeout, |st| (st.sent.len() >= n).then_some(()))
            .await;
        self.sent()
    }

    /// While on, every accepted send is also queued as an inbound message From = self,
    /// To = recipient, with the MsgId the send answered (the phone's copy, §8.1).
    pub fn echo_sent(&self, on: bool) {
        self.shared.update(|st| st.echo_sent = on);
    }

    // ---- echoes with their own MsgIds ----

    /// While on, every accepted send is echoed as [`FakeWeChat::echo_sent`] describes, but the
    /// echo carries a new MsgId of its own instead of the send's MsgID, so a client can only
    /// recognise it by chat and text. Off: echoes (if on) carry the send's MsgID again.
    pub fn echo_sent_with_new_ids(&self, on: bool) {
        self.shared.update(|st| {
            st.echo_new_ids = on;
            st.echo_sent |= on;
        });
    }

    // ---- sends ----

    /// After `after` more accepted sends, webwxsendmsg answers Ret `ret` (e.g. 1205) until
    /// called again; `ret` 0 turns this off.
    pub fn fail_sends(&self, ret: i64, after: usize) {
        self.shared
            .update(|st| st.send_failure = (ret != 0).then_some((ret, after)));
    }

    // ---- faults and traffic ----

    /// The next `times` requests to `endpoint` (the last path segment: "synccheck",
    /// "webwxsync", "login", …) get `fault`.
    pub fn fault(&self, endpoint: &str, fault: Fault, times: usize) {
        self.shared.update(|st| {
            st.faults
                .entry(endpoint.to_owned())
                .or_default()
                .extend(std::iter::repeat_n(fault, times));
        });
    }

    /// Recorded requests to `endpoint` ("" for all), oldest first.
    pub fn requests(&self, endpoint: &str) -> Vec<RequestRecord> {
        let st = self.shared.lock();
        st.requests
            .iter()
            .filter(|r| endpoint.is_empty() || r.endpoint == endpoint)
            .cloned()
            .collect()
    }

    /// Waits until `n` requests to `endpoint` were recorded or `timeout` passed; returns them.
    pub async fn wait_requests(
        &self,
        endpoint: &str,
        n: usize,
        timeout: Duration,
    ) -> Vec<RequestRecord> {
        self.shared
            .wait_for(timeout, |st| {
                let seen = st
                    .requests
                    .iter()
                    .filter(|r| r.endpoint == endpoint)
                    .count();
                (seen >= n).then_some(())
            })
            .await;
        self.requests(endpoint)
    }
}

/// Panics, with advice, when `user_name` is a UserName of an earlier login.
fn refuse_retired(st: &State, user_name: &str) {
    if st.book.is_retired(user_name) {
        panic!(
            "{user_name} is a UserName of an earlier login: every login hands out new ones; \
             look the contact up again (FakeWeChat::user_name_of, contacts, group)"
        );
    }
}

/// The contact or group `user_name` names in this login.
///
/// # Panics
/// If there is none, with advice when it is a UserName of an earlier login.
fn contact_mut<'a>(st: &'a mut State, user_name: &str) -> &'a mut Contact {
    refuse_retired(st, user_name);
    st.book
        .get_mut(user_name)
        .unwrap_or_else(|| panic!("unknown contact {user_name}"))
}

/// The name [`FakeWeChat::queue_verbatim`] gives a captured UserName: `kind` and the first
/// eight characters past its `@`s (`@@9cdc69…` → `group 9cdc696e`).
pub fn captured_name(kind: &str, user_name: &str) -> String {
    let bare = user_name.trim_start_matches('@');
    let short: String = bare.chars().take(8).collect();
    format!("{kind} {short}")
}
