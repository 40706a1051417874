//! A group's MemberList (PROTOCOL.md §5.2), held compactly.
//!
//! A large account has hundreds of groups of up to 500 members, so members are most of what a
//! login keeps in memory. Three `String`s per member (72 bytes of headers, three allocations
//! with their malloc overhead, and whatever the answer's other fields cost) came to about
//! 170 bytes each; [`Members`] keeps every name of one list in one allocation and, per member,
//! three end offsets and a slot in a by-UserName index: the names' bytes plus 16. It is parsed
//! straight from the answer, so no per-member structure exists even while parsing, and the
//! fields the bridge never reads (AttrStatus, the pinyin, KeyWord, …) are skipped.
use std::borrow::Cow;
use std::fmt;

use serde::de::{self, Deserializer, SeqAccess, Visitor};
use serde::ser::{SerializeSeq, Serializer};
use serde::{Deserialize, Serialize};

use super::Member;

/// One member as [`Members`] shows it: its names, borrowed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct MemberRef<'a> {
    /// Per-login id, `@…`.
    pub user_name: &'a str,
    /// The member's own name.
    pub nick_name: &'a str,
    /// The member's name in this group, may be empty.
    pub display_name: &'a str,
}

/// A group's members in MemberList order, with a lookup by UserName.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Members {
    /// Every member's UserName, NickName and DisplayName, back to back.
    text: Box<str>,
    /// Per member, where its UserName, NickName and DisplayName end in `text`; each starts
    /// where the one before it ends.
    ends: Box<[[u32; 3]]>,
    /// Indices into `ends`, ordered by UserName.
    by_name: Box<[u32]>,
}

impl Members {
    /// How many members.
    pub fn len(&self) -> usize {
        self.ends.len()
    }

    /// True when the list is empty (for a group: not sent yet, PROTOCOL.md §5.1).
    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    /// The member at `i` in MemberList order.
    pub fn get(&self, i: usize) -> Option<MemberRef<'_>> {
        (i < self.len()).then(|| self.at(i))
    }

    /// The members in MemberList order.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = MemberRef<'_>> + '_ {
        (0..self.len()).map(|i| self.at(i))
    }

    /// The member at `i`, which is below `len()`.
    fn at(&self, i: usize) -> MemberRef<'_> {
        let [user, nick, display] = self.ends[i];
        let start = i.checked_sub(1).map_or(0, |before| self.ends[before][2]);
        let names = |from: u32, to: u32| &self.text[from as usize..to as usize];
        MemberRef {
            user_name: names(start, user),
            nick_name: names(user, nick),
            display_name: names(nick, display),
        }
    }

    /// The member with this UserName (the first, should the list name it twice).
    pub fn find(&self, user_name: &str) -> Option<MemberRef<'_>> {
        let at = self
            .by_name
            .partition_point(|&i| self.at(i as usize).user_name < user_name);
        let &i = self.by_name.get(at)?;
        Some(self.at(i as usize)).filter(|m| m.user_name == user_name)
    }

    /// This list with `member` in place of the one with its UserName, or added at the end.
    pub fn with(&self, member: &Member) -> Members {
        let mut out = Builder::default();
        let mut replaced = false;
        for m in self.iter() {
            if m.user_name == member.user_name && !replaced {
                replaced = true;
                out.push_member(member);
            } else {
                out.push(m.user_name, m.nick_name, m.display_name);
            }
        }
        if !replaced {
            out.push_member(member);
        }
        out.finish()
    }
}

impl fmt::Debug for Members {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

impl From<Vec<Member>> for Members {
    fn from(members: Vec<Member>) -> Members {
        members.into_iter().collect()
    }
}

impl FromIterator<Member> for Members {
    fn from_iter<I: IntoIterator<Item = Member>>(members: I) -> Members {
        let mut out = Builder::default();
        for m in members {
            out.push_member(&m);
        }
        out.finish()
    }
}

/// Collects members into the compact form.
#[derive(Default)]
struct Builder {
    text: String,
    ends: Vec<[u32; 3]>,
}

impl Builder {
    fn push_member(&mut self, m: &Member) -> bool {
        self.push(&m.user_name, &m.nick_name, &m.display_name)
    }

    /// Adds a member; false (and nothing added) once the names pass 4 GiB, which no answer
    /// comes near.
    fn push(&mut self, user_name: &str, nick_name: &str, display_name: &str) -> bool {
        let before = self.text.len();
        let mut end = |s: &str| {
            self.text.push_str(s);
            u32::try_from(self.text.len()).ok()
        };
        match (end(user_name), end(nick_name), end(display_name)) {
            (Some(user), Some(nick), Some(display)) => {
                self.ends.push([user, nick, display]);
                true
            }
            _ => {
                self.text.truncate(before);
                false
            }
        }
    }

    fn finish(self) -> Members {
        let mut members = Members {
            text: self.text.into_boxed_str(),
            ends: self.ends.into_boxed_slice(),
            by_name: Box::default(),
        };
        let mut by_name: Vec<u32> = (0..members.len() as u32).collect();
        // Stable, so the first of two entries with one UserName is the one `find` answers.
        by_name.sort_by_key(|&i| members.at(i as usize).user_name);
        members.by_name = by_name.into_boxed_slice();
        members
    }
}

impl Serialize for Members {
    fn serialize<S: Serializer>(&self, ser: S) -> Result<S::Ok, S::Error> {
        let mut seq = ser.serialize_seq(Some(self.len()))?;
        for m in self.iter() {
            seq.serialize_element(&m)?;
        }
        seq.end()
    }
}

/// A MemberList entry while it is parsed: the three names, borrowed from the answer when
/// they need no unescaping; every other field is skipped.
#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", default)]
struct Entry<'a> {
    #[serde(borrow)]
    user_name: Cow<'a, str>,
    #[serde(borrow)]
    nick_name: Cow<'a, str>,
    #[serde(borrow)]
    display_name: Cow<'a, str>,
}

impl Default for Entry<'_> {
    fn default() -> Self {
        Entry {
            user_name: Cow::Borrowed(""),
            nick_name: Cow::Borrowed(""),
            display_name: Cow::Borrowed(""),
        }
    }
}

impl<'de> Deserialize<'de> for Members {
    fn deserialize<D: Deserializer<'de>>(de: D) -> Result<Members, D::Error> {
        struct List;
        impl<'de> Visitor<'de> for List {
            type Value = Members;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a MemberList array")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Members, A::Error> {
                let mut out = Builder::default();
                while let Some(e) = seq.next_element::<Entry<'de>>()? {
                    if !out.push(&e.user_name, &e.nick_name, &e.display_name) {
                        return Err(de::Error::custom("MemberList too large"));
                    }
                }
                Ok(out.finish())
            }
        }
        de.deserialize_seq(List)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member(user_name: &str, nick_name: &str, display_name: &str) -> Member {
        Member {
            user_name: user_name.into(),
            nick_name: nick_name.into(),
            display_name: display_name.into(),
        }
    }

    #[test]
    fn members_keep_their_order_and_names() {
        let list: Members = vec![
            member("@b", "Bob", ""),
            member("@a", "Alice", "Mum"),
            member("@c", "", "Cee"),
        ]
        .into();
        let names: Vec<_> = list
            .iter()
            .map(|m| (m.user_name, m.nick_name, m.display_name))
            .collect();
        assert_eq!(
            names,
            [("@b", "Bob", ""), ("@a", "Alice", "Mum"), ("@c", "", "Cee")]
        );
        assert_eq!(list.len(), 3);
        assert_eq!(list.get(3), None);
    }

    #[test]
    fn find_answers_by_user_name_and_only_an_exact_one() {
        let list: Members = (0..500)
            .map(|i| member(&format!("@{i:x}"), &format!("n{i}"), ""))
            .collect();
        assert_eq!(list.find("@1f3").map(|m| m.nick_name), Some("n499"));
        assert_eq!(list.find("@0").map(|m| m.nick_name), Some("n0"));
        assert_eq!(list.find("@1f4"), None);
        assert_eq!(list.find("@"), None);
        assert_eq!(Members::default().find("@0"), None);
    }

    #[test]
    fn with_replaces_a_known_member_in_place_and_appends_a_new_one() {
        let list: Members = vec![member("@a", "Alice", ""), member("@b", "Bob", "")].into();
        let renamed = list.with(&member("@a", "Alicia", "Al"));
        assert_eq!(renamed.get(0).map(|m| m.display_name), Some("Al"));
        assert_eq!(renamed.len(), 2);
        let grown = renamed.with(&member("@c", "Carol", ""));
        assert_eq!(grown.get(2).map(|m| m.user_name), Some("@c"));
        assert_eq!(grown.find("@c").map(|m| m.nick_name), Some("Carol"));
    }

    #[test]
    fn a_member_list_parses_its_names_unescaped_and_skips_the_rest() {
        let json = r#"[
            {"Uin": 0, "UserName": "@a", "NickName": "A\u00e9 \"q\"", "AttrStatus": 2147584103,
             "PYInitial": "A", "MemberStatus": 0, "DisplayName": "", "KeyWord": ""},
            {"UserName": "@b"}
        ]"#;
        let list: Members = serde_json::from_str(json).unwrap();
        assert_eq!(
            list.get(0),
            Some(MemberRef {
                user_name: "@a",
                nick_name: "Aé \"q\"",
                display_name: ""
            })
        );
        assert_eq!(list.find("@b").map(|m| m.nick_name), Some(""));
        let round: Members = serde_json::from_str(&serde_json::to_string(&list).unwrap()).unwrap();
        assert_eq!(round, list);
    }

    #[test]
    fn a_member_list_that_is_not_an_array_is_an_error() {
        assert!(serde_json::from_str::<Members>(r#"{"UserName": "@a"}"#).is_err());
        assert!(serde_json::from_str::<Members>("[1]").is_err());
    }
}
