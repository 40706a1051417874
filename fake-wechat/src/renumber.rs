//! New UserNames at every login, as the real servers hand them out.
//!
//! PROTOCOL.md §5.3: a UserName "is valid only for this login session and differs per
//! logged-in account. There is no stable id" (ItChat#108/#626, openwechat#130/#514), and §12
//! lists stable ids among what users ask for most, since "UserName changes each login".
//! The captures of §8.7 show login-stable ids only outside UserNames: a revoke's `<session>`
//! holds "a stable id (`…@chatroom`, `wxid_…`), not a UserName" (and §8.6: itchat keeps the
//! status-notify Content ids as its login-stable `Uin`).
//!
//! So when a login replaces an earlier one (a new session from webwxnewloginpage, whether
//! by QR or push login), the fake gives the account itself, every contact, every group and
//! every group member a fresh UserName of the same shape (`@` + hex, `@@` + hex for groups;
//! fixed names such as `filehelper` and `weixin` stay). A stranger met in two groups gets
//! the same new name in both, as a friend in a group gets the friend's.
//! The names a test sees before the first login are the first session's. Resuming a
//! session (webwxinit with stored credentials) is not a login and keeps the names.
//!
//! Everything still to be read under the new session speaks the new names: queued messages
//! not yet delivered (the server delivers them to the new session, From/To/Content/MsgSource
//! rewritten), ModContact and DelContact entries, and the media they carry (a download's
//! `sender`). Delivered entries are rewritten too, so a stale SyncKey's replay is consistent.
//! Sent-message records keep the names they were sent to: they are history.
//!
//! The old names stop working: batchgetcontact leaves them out like any unknown name, and
//! a send or upload to one is refused. PROTOCOL.md does not say what the real server
//! answers for a send to a stale UserName; the fake answers Ret 1201, the closest documented
//! answer (PROTOCOL.md §2: "revoke/send to a group that no longer exists", itself marked
//! unconfirmed), and keeps Ret 1 (parameter error) for a name it never handed out.
//! Groups keep their EncryChatRoomId: nothing documents whether it changes.

use std::collections::HashMap;

use serde_json::Value;

use crate::contacts::Book;
use crate::ids;
use crate::state::{Refusal, State, SyncEntry};

/// The Ret for a send to a UserName of an earlier login (see the module docs).
pub(crate) const STALE_RET: i64 = 1201;

/// A fresh UserName shaped like `old`: same `@`/`@@` prefix and length; None for fixed names.
fn fresh_like(old: &str) -> Option<String> {
    if let Some(rest) = old.strip_prefix("@@") {
        Some(format!("@@{}", ids::hex(rest.len().max(1))))
    } else {
        old.strip_prefix('@')
            .map(|rest| format!("@{}", ids::hex(rest.len().max(1))))
    }
}

/// Renames `name` as `map` says, or afresh (and notes it in `map`); fixed names stay.
fn rename(name: &mut String, map: &mut HashMap<String, String>) {
    let Some(fresh) = map.get(name.as_str()).cloned().or_else(|| fresh_like(name)) else {
        return;
    };
    map.insert(std::mem::replace(name, fresh.clone()), fresh);
}

impl Book {
    /// Gives everyone a new UserName; returns old → new and retires the old names.
    pub fn renumber(&mut self) -> HashMap<String, String> {
        let mut map: HashMap<String, String> = HashMap::new();
        rename(&mut self.me.user_name, &mut map);
        for c in &mut self.contacts {
            rename(&mut c.user_name, &mut map);
        }
        // Members after every contact, so a friend in a group takes the friend's new name.
        for g in self.contacts.iter_mut().filter_map(|c| c.group.as_mut()) {
            for m in &mut g.members {
                rename(&mut m.user_name, &mut map);
            }
        }
        self.retired.extend(map.keys().cloned());
        for fresh in map.values() {
            self.retired.remove(fresh);
        }
        map
    }

    /// Whether `user_name` named someone in an earlier login and no one now.
    pub fn is_retired(&self, user_name: &str) -> bool {
        self.retired.contains(user_name)
    }
}

impl State {
    /// A login replaced an earlier one: new UserNames everywhere (see the module docs).
    pub fn renumber(&mut self) {
        let map = self.book.renumber();
        if map.is_empty() {
            return;
        }
        for entry in &mut self.stream {
            match entry {
                SyncEntry::Msg(v) | SyncEntry::ModContact(v) => rename_in(v, &map),
                SyncEntry::DelContact(u) => {
                    if let Some(fresh) = map.get(u.as_str()) {
                        u.clone_from(fresh);
                    }
                }
            }
        }
        self.media.rename_senders(&map);
    }

    /// Refuses a recipient that is not a contact or group of this session: Ret 1201 for a
    /// UserName of an earlier login, else the parameter error `what` describes.
    pub fn check_recipient(&self, to: &str, field: &str) -> Result<(), Refusal> {
        if self.book.get(to).is_some() {
            Ok(())
        } else if self.book.is_retired(to) {
            Err(Refusal::new(
                STALE_RET,
                format!("{field} is a UserName of an earlier login"),
            ))
        } else {
            Err(Refusal::new(
                1,
                format!("parameter error: {field} is not a contact or group of this session"),
            ))
        }
    }
}

/// Replaces every UserName of `map` in the strings of `v`: a UserName is an `@` or `@@`
/// followed by letters and digits, wherever it stands (From, To, a group sender's
/// `@m:<br/>` prefix, MsgSource's `<atusername>@a,@b</atusername>`, StatusNotifyUserName's
/// comma list, a HeadImgUrl's `username=`).
pub(crate) fn rename_in(v: &mut Value, map: &HashMap<String, String>) {
    match v {
        Value::String(s) => {
            if let Some(renamed) = rename_text(s, map) {
                *s = renamed;
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|i| rename_in(i, map)),
        Value::Object(fields) => fields.values_mut().for_each(|f| rename_in(f, map)),
        _ => {}
    }
}

/// `text` with its UserNames renamed, or None when none was in `map`.
fn rename_text(text: &str, map: &HashMap<String, String>) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let (mut copied, mut i, mut changed) = (0, 0, false);
    while i < bytes.len() {
        if bytes[i] != b'@' {
            i += 1;
            continue;
        }
        let start = i;
        while i < bytes.len() && bytes[i] == b'@' {
            i += 1;
        }
        while i < bytes.len() && bytes[i].is_ascii_alphanumeric() {
            i += 1;
        }
        // Token boundaries are ASCII, so these slices fall on char boundaries.
        if let Some(fresh) = map.get(&text[start..i]) {
            out.push_str(&text[copied..start]);
            out.push_str(fresh);
            copied = i;
            changed = true;
        }
    }
    changed.then(|| {
        out.push_str(&text[copied..]);
        out
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn everyone_gets_a_new_name_of_the_same_shape_and_friends_stay_friends_in_groups() {
        let mut book = Book::new(true);
        let before: Vec<String> = book.contacts.iter().map(|c| c.user_name.clone()).collect();
        let me = book.me.user_name.clone();
        let map = book.renumber();
        assert_ne!(book.me.user_name, me);
        assert_eq!(map[&me], book.me.user_name);
        for (old, c) in before.iter().zip(&book.contacts) {
            if old.starts_with('@') {
                assert_ne!(*old, c.user_name);
                assert_eq!(old.len(), c.user_name.len());
                assert_eq!(old.starts_with("@@"), c.user_name.starts_with("@@"));
                assert!(book.is_retired(old));
            } else {
                assert_eq!(*old, c.user_name, "fixed names stay");
            }
        }
        let group = book.contacts.iter().find(|c| c.group.is_some()).unwrap();
        let members = &group.group.as_ref().unwrap().members;
        let ming = book
            .contacts
            .iter()
            .find(|c| c.nick.starts_with("Xiao"))
            .unwrap();
        assert_eq!(members[0].user_name, ming.user_name);
        assert_eq!(members.last().unwrap().user_name, book.me.user_name);
        assert!(members.iter().all(|m| !book.is_retired(&m.user_name)));
    }

    #[test]
    fn queued_entries_and_media_senders_take_the_new_names() {
        let shared = crate::state::Shared::new(crate::Options::default(), String::new());
        shared.update(|st| {
            let alice = st.book.add_person("Alice", "");
            let queued = st.push_msg(crate::Msg::file(&alice, "a.txt", 10));
            st.stream.push(SyncEntry::DelContact(alice.clone()));
            st.renumber();
            let fresh = st.book.contacts.last().unwrap().user_name.clone();
            assert_ne!(fresh, alice);
            let SyncEntry::Msg(v) = &st.stream[0] else {
                panic!("a message first")
            };
            assert_eq!(v["FromUserName"], fresh.as_str());
            assert_eq!(v["ToUserName"], st.book.me.user_name.as_str());
            let item = st.media.get(&queued.msg_id).unwrap();
            assert_eq!(item.from, fresh, "a download's sender is the new name");
            assert!(matches!(&st.stream[1], SyncEntry::DelContact(u) if *u == fresh));
        });
    }

    #[test]
    fn names_are_renamed_wherever_they_stand_in_an_entry() {
        let map: HashMap<String, String> = [
            ("@@g1".to_owned(), "@@g2".to_owned()),
            ("@m1".to_owned(), "@m2".to_owned()),
            ("@me1".to_owned(), "@me2".to_owned()),
        ]
        .into();
        let mut v = json!({
            "FromUserName": "@@g1", "ToUserName": "@me1",
            "Content": "@m1:<br/>hi @m1x @nobody 🌟 @m1",
            "MsgSource": "<atusername>@me1,@m1</atusername>",
            "StatusNotifyUserName": "@@g1,filehelper,",
            "MsgType": 1,
        });
        rename_in(&mut v, &map);
        assert_eq!(v["FromUserName"], "@@g2");
        assert_eq!(v["ToUserName"], "@me2");
        assert_eq!(v["Content"], "@m2:<br/>hi @m1x @nobody 🌟 @m2");
        assert_eq!(v["MsgSource"], "<atusername>@me2,@m2</atusername>");
        assert_eq!(v["StatusNotifyUserName"], "@@g2,filehelper,");
        assert_eq!(v["MsgType"], 1);
    }
}
