//! The account's address book: self, friends, official accounts, groups and their members,
//! and their JSON shape in init, getcontact, batchgetcontact and ModContactList (PROTOCOL.md §5.3).
//! UserNames are those of the current login; `renumber` hands out new ones at each login.

use std::collections::{HashMap, HashSet};

use serde::ser::{Serialize, SerializeMap, SerializeSeq, Serializer};
use serde_json::{json, Value};

use crate::escape::wx_escape;
use crate::ids;

/// A person as a test sees it. For group members `display_name` is the name in that group
/// (may be empty); elsewhere it is empty.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ContactInfo {
    /// The session UserName (`@…`, `@@…` for groups, or a fixed name such as `filehelper`).
    pub user_name: String,
    /// NickName.
    pub nick_name: String,
    /// RemarkName (the owner's label), may be empty.
    pub remark_name: String,
    /// DisplayName inside a group, may be empty.
    pub display_name: String,
}

/// A group as a test sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GroupInfo {
    /// The group's `@@…` UserName.
    pub user_name: String,
    /// The group's name (its NickName).
    pub name: String,
    /// Its `EncryChatRoomId` (`@` + 32 hex).
    pub encry_chat_room_id: String,
    /// Members in MemberList order; the account itself is always the last one.
    pub members: Vec<ContactInfo>,
}

/// What a person's profile says besides the names (§5.3): Sex (0 unknown, 1 male, 2 female),
/// Province and City, as getcontact and batchgetcontact carry them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Details {
    /// Sex: 0 unknown, 1 male, 2 female.
    pub sex: u32,
    /// Province, may be empty.
    pub province: String,
    /// City, may be empty.
    pub city: String,
}

/// ContactFlag bits (§5.3).
const FLAG_CONTACT: u32 = 0x1;
const FLAG_CHAT_CONTACT: u32 = 0x2;
const FLAG_SAVED_GROUP: u32 = 0x4;
/// VerifyFlag of an official account (brand + verified).
const VERIFY_OFFICIAL: u32 = 24;

#[derive(Clone, Debug)]
pub(crate) struct Member {
    pub user_name: String,
    pub nick: String,
    pub display: String,
}

#[derive(Clone, Debug)]
pub(crate) struct Group {
    pub members: Vec<Member>,
    pub saved: bool,
    pub encry_id: String,
}

#[derive(Clone, Debug)]
pub(crate) struct Contact {
    pub user_name: String,
    pub nick: String,
    pub remark: String,
    pub verify_flag: u32,
    pub contact_flag: u32,
    pub sex: u32,
    pub province: String,
    pub city: String,
    pub signature: String,
    pub head_seq: u32,
    pub group: Option<Group>,
}

impl Contact {
    fn person(user_name: String, nick: &str, remark: &str) -> Contact {
        Contact {
            user_name,
            nick: nick.to_owned(),
            remark: remark.to_owned(),
            verify_flag: 0,
            contact_flag: FLAG_CONTACT | FLAG_CHAT_CONTACT,
            sex: 1,
            province: String::new(),
            city: String::new(),
            signature: String::new(),
            head_seq: fastrand::u32(600_000_000..700_000_000),
            group: None,
        }
    }

    pub fn info(&self) -> ContactInfo {
        ContactInfo {
            user_name: self.user_name.clone(),
            nick_name: self.nick.clone(),
            remark_name: self.remark.clone(),
            display_name: String::new(),
        }
    }

    pub fn details(&self) -> Details {
        Details {
            sex: self.sex,
            province: self.province.clone(),
            city: self.city.clone(),
        }
    }

    pub fn set_details(&mut self, d: &Details) {
        self.sex = d.sex;
        self.province = d.province.clone();
        self.city = d.city.clone();
    }
}

/// Everyone the account knows, with its own entry apart.
#[derive(Debug)]
pub(crate) struct Book {
    pub me: Contact,
    pub contacts: Vec<Contact>,
    /// UserNames of earlier logins, which no longer name anyone.
    pub retired: HashSet<String>,
}

impl Book {
    pub fn new(seed: bool) -> Book {
        let mut me = Contact::person(ids::person_user_name(), "Wx Bridge Owner", "");
        me.signature = "owner of this bridge".into();
        let mut book = Book {
            me,
            contacts: Vec::new(),
            retired: HashSet::new(),
        };
        let mut filehelper = Contact::person("filehelper".into(), "文件传输助手", "");
        filehelper.sex = 0;
        book.contacts.push(filehelper);
        if seed {
            let mut weixin = Contact::person("weixin".into(), "微信团队", "");
            weixin.verify_flag = 56;
            weixin.sex = 0;
            book.contacts.push(weixin);
            // Provinces and cities as real captures carry them, official accounts included.
            let a = book.add_person("Xiao Ming 🌟", "");
            let b = book.add_person("Li Lei", "Lei (work)");
            let official = book.add_person("Tech Daily", "");
            for (user, sex, province, city) in [
                (&a, 1, "北京", "海淀"),
                (&b, 1, "上海", "嘉定"),
                (&official, 0, "广东", "深圳"),
            ] {
                if let Some(c) = book.get_mut(user) {
                    c.set_details(&Details {
                        sex,
                        province: province.into(),
                        city: city.into(),
                    });
                }
            }
            if let Some(c) = book.get_mut(&official) {
                c.verify_flag = VERIFY_OFFICIAL;
            }
            let na = book.get(&a).map(|c| c.nick.clone()).unwrap_or_default();
            let nb = book.get(&b).map(|c| c.nick.clone()).unwrap_or_default();
            book.add_group(
                "Weekend Hiking",
                &[
                    (na.as_str(), ""),
                    (nb.as_str(), "Lei"),
                    ("Wang Fang", "Fang"),
                ],
                true,
            );
        }
        book
    }

    pub fn add_person(&mut self, nick: &str, remark: &str) -> String {
        let user_name = ids::person_user_name();
        self.contacts
            .push(Contact::person(user_name.clone(), nick, remark));
        user_name
    }

    /// Members whose nick matches a friend reuse the friend's UserName; the others are
    /// strangers known only through the group.
    pub fn add_group(&mut self, name: &str, members: &[(&str, &str)], saved: bool) -> GroupInfo {
        // The first person with each nick, looked up once per member: a benchmark fills 500
        // groups of 500 against 5,000 friends.
        let mut people: HashMap<&str, &str> = HashMap::new();
        for c in self.contacts.iter().filter(|c| c.group.is_none()) {
            people
                .entry(c.nick.as_str())
                .or_insert(c.user_name.as_str());
        }
        let mut list: Vec<Member> = members
            .iter()
            .map(|(nick, display)| Member {
                user_name: people
                    .get(nick)
                    .map(|&u| u.to_owned())
                    .unwrap_or_else(ids::person_user_name),
                nick: (*nick).to_owned(),
                display: (*display).to_owned(),
            })
            .collect();
        list.push(Member {
            user_name: self.me.user_name.clone(),
            nick: self.me.nick.clone(),
            display: String::new(),
        });
        let mut contact = Contact::person(ids::group_user_name(), name, "");
        contact.sex = 0;
        contact.contact_flag = if saved {
            FLAG_CONTACT | FLAG_CHAT_CONTACT | FLAG_SAVED_GROUP
        } else {
            FLAG_CHAT_CONTACT
        };
        contact.group = Some(Group {
            members: list,
            saved,
            encry_id: format!("@{}", ids::hex(32)),
        });
        let info = group_info(&contact);
        self.contacts.push(contact);
        info
    }

    /// Adds a person or official account under a UserName a captured entry carries, unless
    /// it is already known (as self, a contact or a group).
    pub fn learn_person(&mut self, user_name: &str, nick: &str) {
        self.retired.remove(user_name);
        if self.me.user_name != user_name && self.get(user_name).is_none() {
            let mut c = Contact::person(user_name.to_owned(), nick, "");
            c.sex = 0;
            self.contacts.push(c);
        }
    }

    /// Adds an unsaved group under a captured `@@` UserName (with the account as its last
    /// member) unless known, and `member` to it unless already in it.
    pub fn learn_group_member(&mut self, group: &str, name: &str, member: Option<(&str, &str)>) {
        self.retired.remove(group);
        if let Some((user_name, _)) = member {
            self.retired.remove(user_name);
        }
        if self.get(group).is_none() {
            let mut c = Contact::person(group.to_owned(), name, "");
            c.sex = 0;
            c.contact_flag = FLAG_CHAT_CONTACT;
            c.group = Some(Group {
                members: vec![Member {
                    user_name: self.me.user_name.clone(),
                    nick: self.me.nick.clone(),
                    display: String::new(),
                }],
                saved: false,
                encry_id: format!("@{}", ids::hex(32)),
            });
            self.contacts.push(c);
        }
        let Some((user_name, nick)) = member else {
            return;
        };
        if let Some(g) = self.get_mut(group).and_then(|c| c.group.as_mut()) {
            if g.members.iter().all(|m| m.user_name != user_name) {
                let at = g.members.len().saturating_sub(1);
                g.members.insert(
                    at,
                    Member {
                        user_name: user_name.to_owned(),
                        nick: nick.to_owned(),
                        display: String::new(),
                    },
                );
            }
        }
    }

    pub fn get(&self, user_name: &str) -> Option<&Contact> {
        self.contacts.iter().find(|c| c.user_name == user_name)
    }

    pub fn get_mut(&mut self, user_name: &str) -> Option<&mut Contact> {
        self.contacts.iter_mut().find(|c| c.user_name == user_name)
    }

    pub fn remove(&mut self, user_name: &str) -> Option<Contact> {
        let i = self
            .contacts
            .iter()
            .position(|c| c.user_name == user_name)?;
        Some(self.contacts.remove(i))
    }

    /// A group by its `@@` UserName or its EncryChatRoomId (itchat sends the latter, §5.2).
    pub fn group(&self, id: &str) -> Option<&Contact> {
        self.contacts.iter().find(|c| {
            c.group
                .as_ref()
                .is_some_and(|g| c.user_name == id || g.encry_id == id)
        })
    }

    /// Any member of any group with this UserName.
    pub fn any_member(&self, user_name: &str) -> Option<&Member> {
        self.contacts
            .iter()
            .filter_map(|c| c.group.as_ref())
            .flat_map(|g| g.members.iter())
            .find(|m| m.user_name == user_name)
    }

    /// What `webwxgetcontact` lists: everyone except groups that are not saved.
    pub fn address_book(&self) -> Vec<&Contact> {
        // The real server lists the account's own record too (last, in a captured answer:
        // tests/corpus/real/answers/wechat4u-webwxgetcontact.json).
        self.contacts
            .iter()
            .filter(|c| c.group.as_ref().is_none_or(|g| g.saved))
            .chain(std::iter::once(&self.me))
            .collect()
    }

    /// What `webwxinit` lists as recent chats: filehelper, the first saved group, two friends.
    pub fn recent(&self) -> Vec<&Contact> {
        let mut out: Vec<&Contact> = self.get("filehelper").into_iter().collect();
        out.extend(
            self.contacts
                .iter()
                .filter(|c| c.group.as_ref().is_some_and(|g| g.saved))
                .take(1),
        );
        out.extend(
            self.contacts
                .iter()
                .filter(|c| c.group.is_none() && c.user_name.starts_with('@') && c.verify_flag == 0)
                .take(2),
        );
        out
    }

    /// The contact object of §5.3, names escaped and with emoji spans as the server sends them. Groups carry their MemberList only when `members` is set
    /// (batchgetcontact); init and getcontact send it empty.
    pub fn contact_json(&self, c: &Contact, skey: &str, members: bool) -> Value {
        let (member_count, member_list, encry) = match &c.group {
            Some(g) => (
                g.members.len(),
                if members {
                    g.members.iter().map(member_entry).collect()
                } else {
                    Vec::new()
                },
                g.encry_id.clone(),
            ),
            None => (0, Vec::new(), String::new()),
        };
        let (py_initial, py_full) = pinyin(&c.nick);
        let (rpy_initial, rpy_full) = pinyin(&c.remark);
        json!({
            "Uin": 0,
            "UserName": c.user_name,
            "NickName": wx_escape(&c.nick),
            "HeadImgUrl": head_img_url(c, skey),
            "ContactFlag": c.contact_flag,
            "MemberCount": member_count,
            "MemberList": member_list,
            "RemarkName": wx_escape(&c.remark),
            "HideInputBarFlag": 0,
            "Sex": c.sex,
            "Signature": c.signature,
            "VerifyFlag": c.verify_flag,
            "OwnerUin": 0,
            "PYInitial": py_initial,
            "PYQuanPin": py_full,
            "RemarkPYInitial": rpy_initial,
            "RemarkPYQuanPin": rpy_full,
            "StarFriend": 0,
            "AppAccountFlag": 0,
            "Statues": 0,
            "AttrStatus": if c.group.is_some() { 0 } else { 102_437 },
            "Province": c.province,
            "City": c.city,
            "Alias": "",
            "SnsFlag": 17,
            "UniFriend": 0,
            "DisplayName": "",
            "ChatRoomId": 0,
            "KeyWord": "",
            "EncryChatRoomId": encry,
            "IsOwner": 0,
        })
    }

    /// A contact as webwxsync's ModContactList carries it: a field set of its own, with the
    /// group's owner and members but no Uin, pinyin or EncryChatRoomId (the one capture with
    /// an entry, tests/corpus/real/answers/wechat4u-webwxsync.json).
    pub fn mod_contact_json(&self, c: &Contact, skey: &str) -> Value {
        let group = c.group.as_ref();
        json!({
            "UserName": c.user_name,
            "NickName": wx_escape(&c.nick),
            "Sex": c.sex,
            "HeadImgUpdateFlag": 1,
            "ContactType": 0,
            "Alias": "",
            "ChatRoomOwner": group
                .and_then(|g| g.members.first())
                .map(|m| m.user_name.as_str())
                .unwrap_or(""),
            "HeadImgUrl": head_img_url(c, skey),
            "ContactFlag": c.contact_flag,
            "MemberCount": group.map_or(0, |g| g.members.len()),
            "MemberList": group
                .map(|g| g.members.iter().map(member_entry).collect::<Vec<_>>())
                .unwrap_or_default(),
            "HideInputBarFlag": 0,
            "Signature": c.signature,
            "VerifyFlag": c.verify_flag,
            "RemarkName": wx_escape(&c.remark),
            "Statues": 0,
            "AttrStatus": if group.is_some() { 0 } else { 102_437 },
            "Province": c.province,
            "City": c.city,
            "SnsFlag": 17,
            "KeyWord": "",
        })
    }

    /// A group member answered as a contact of its own (batchgetcontact with
    /// `EncryChatRoomId`): the friend's full entry if it is a friend, else a stranger's.
    pub fn member_json(&self, m: &Member, skey: &str) -> Value {
        if let Some(friend) = self.get(&m.user_name) {
            let mut v = self.contact_json(friend, skey, false);
            v["DisplayName"] = json!(wx_escape(&m.display));
            return v;
        }
        let mut stranger = Contact::person(m.user_name.clone(), &m.nick, "");
        stranger.contact_flag = 0;
        let mut v = self.contact_json(&stranger, skey, false);
        v["DisplayName"] = json!(wx_escape(&m.display));
        v
    }

    /// `User` in the webwxinit answer (§3): the only entry with a real Uin, and a field set
    /// of its own; every webwxinit capture has the pinyin fields and ContactFlag empty or 0.
    pub fn self_json(&self, uin: u64, skey: &str) -> Value {
        let me = &self.me;
        json!({
            "Uin": uin,
            "UserName": me.user_name,
            "NickName": wx_escape(&me.nick),
            "HeadImgUrl": head_img_url(me, skey),
            "RemarkName": "",
            "PYInitial": "",
            "PYQuanPin": "",
            "RemarkPYInitial": "",
            "RemarkPYQuanPin": "",
            "HideInputBarFlag": 0,
            "StarFriend": 0,
            "Sex": me.sex,
            "Signature": me.signature,
            "AppAccountFlag": 0,
            "VerifyFlag": 0,
            "ContactFlag": 0,
            "WebWxPluginSwitch": 0,
            "HeadImgFlag": 1,
            "SnsFlag": 17,
        })
    }
}

/// The avatar path of a contact or group (§5.3).
fn head_img_url(c: &Contact, skey: &str) -> String {
    let icon = if c.group.is_some() {
        "webwxgetheadimg"
    } else {
        "webwxgeticon"
    };
    format!(
        "/cgi-bin/mmwebwx-bin/{icon}?seq={}&username={}&skey={skey}",
        c.head_seq, c.user_name
    )
}

pub(crate) fn group_info(c: &Contact) -> GroupInfo {
    let g = c.group.as_ref();
    GroupInfo {
        user_name: c.user_name.clone(),
        name: c.nick.clone(),
        encry_chat_room_id: g.map(|g| g.encry_id.clone()).unwrap_or_default(),
        members: g
            .map(|g| {
                g.members
                    .iter()
                    .map(|m| ContactInfo {
                        user_name: m.user_name.clone(),
                        nick_name: m.nick.clone(),
                        remark_name: String::new(),
                        display_name: m.display.clone(),
                    })
                    .collect()
            })
            .unwrap_or_default(),
    }
}

/// A group's MemberList as webwxbatchgetcontact answers it, written member by member as
/// [`member_entry`] builds one (the same members, in the same order), but straight from the
/// book: a large account's answer carries 25,000 members, and a `Value` apiece made the fake
/// slower than the client it serves.
pub(crate) struct MemberList<'a>(pub &'a [Member]);

impl Serialize for MemberList<'_> {
    fn serialize<S: Serializer>(&self, ser: S) -> Result<S::Ok, S::Error> {
        let mut seq = ser.serialize_seq(Some(self.0.len()))?;
        for m in self.0 {
            seq.serialize_element(&MemberEntry(m))?;
        }
        seq.end()
    }
}

struct MemberEntry<'a>(&'a Member);

impl Serialize for MemberEntry<'_> {
    fn serialize<S: Serializer>(&self, ser: S) -> Result<S::Ok, S::Error> {
        let m = self.0;
        let (py_initial, py_full) = pinyin(&m.nick);
        let mut map = ser.serialize_map(Some(11))?;
        map.serialize_entry("Uin", &0)?;
        map.serialize_entry("UserName", &m.user_name)?;
        map.serialize_entry("NickName", &wx_escape(&m.nick))?;
        map.serialize_entry("AttrStatus", &2_147_584_103_u64)?;
        map.serialize_entry("PYInitial", &py_initial)?;
        map.serialize_entry("PYQuanPin", &py_full)?;
        map.serialize_entry("RemarkPYInitial", "")?;
        map.serialize_entry("RemarkPYQuanPin", "")?;
        map.serialize_entry("MemberStatus", &0)?;
        map.serialize_entry("DisplayName", &wx_escape(&m.display))?;
        map.serialize_entry("KeyWord", "")?;
        map.end()
    }
}

fn member_entry(m: &Member) -> Value {
    let (py_initial, py_full) = pinyin(&m.nick);
    json!({
        "Uin": 0,
        "UserName": m.user_name,
        "NickName": wx_escape(&m.nick),
        "AttrStatus": 2_147_584_103_u64,
        "PYInitial": py_initial,
        "PYQuanPin": py_full,
        "RemarkPYInitial": "",
        "RemarkPYQuanPin": "",
        "MemberStatus": 0,
        "DisplayName": wx_escape(&m.display),
        "KeyWord": "",
    })
}

/// Stand-in pinyin fields: the real ones romanise Chinese; for ASCII names the server sends
/// the initials and the lowercased name, which is what we reproduce.
fn pinyin(name: &str) -> (String, String) {
    if name.is_empty() || !name.is_ascii() {
        return (String::new(), String::new());
    }
    let initials = name
        .split_whitespace()
        .filter_map(|w| w.chars().next())
        .map(|c| c.to_ascii_uppercase())
        .collect();
    let full = name
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .map(|c| c.to_ascii_lowercase())
        .collect();
    (initials, full)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_reuse_friends_and_end_with_self() {
        let mut book = Book::new(false);
        let alice = book.add_person("Alice", "Mom");
        let g = book.add_group("Family", &[("Alice", "Mum"), ("Carol", "")], false);
        assert_eq!(g.members.len(), 3);
        assert_eq!(g.members[0].user_name, alice);
        assert_ne!(g.members[1].user_name, alice);
        assert_eq!(g.members[2].user_name, book.me.user_name);
        assert!(book.group(&g.encry_chat_room_id).is_some());
        assert!(book
            .address_book()
            .iter()
            .all(|c| c.user_name != g.user_name));
        assert_eq!(
            book.address_book().last().map(|c| &c.user_name),
            Some(&book.me.user_name),
            "getcontact lists the account itself"
        );
    }

    #[test]
    fn getcontact_groups_have_count_but_no_members() {
        let mut book = Book::new(false);
        let g = book.add_group("Family", &[("Bob", "")], true);
        let c = book.get(&g.user_name).unwrap();
        let v = book.contact_json(c, "@crypt_x", false);
        assert_eq!(v["MemberCount"], 2);
        assert_eq!(v["MemberList"].as_array().unwrap().len(), 0);
        let v = book.contact_json(c, "@crypt_x", true);
        assert_eq!(v["MemberList"][0]["NickName"], "Bob");
    }
}
