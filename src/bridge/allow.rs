//! `send.allow`: which recipients commands may reach.
//!
//! An entry may only be satisfied by what the account owner controls, never by what a contact
//! controls: anyone can set their own NickName to `Mom`, and any member of a group can rename
//! it. So a plain entry matches a contact's RemarkName (which only the owner sets) or its
//! UserName (which WeChat assigns; `filehelper` is the File Transfer helper), and never a
//! NickName. A group is allowed by its name only through the explicit form `group:<name>`,
//! with which the owner accepts that whichever group bears that name is allowed.
//!
//! An entry may also be a contact key (`c_…`, DESIGN.md "Contact keys"): the bridge hands
//! keys out itself and never binds one to look-alikes, and unlike an `@…` UserName, which
//! matches for one login only, a key keeps allowing its contact after a relogin.
use std::collections::HashSet;

use super::Bridge;
use crate::event::is_contact_key;
use crate::wechat::contacts::{clean_name, ContactBook, FILEHELPER};
use crate::wechat::protocol::Contact;

/// The prefix of an entry that allows a group by its current name.
pub const GROUP_PREFIX: &str = "group:";

/// One `send.allow` entry, read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Entry<'a> {
    /// A RemarkName or a UserName.
    Name(&'a str),
    /// A contact key: the contact that has it in this login.
    Key(&'a str),
    /// `group:<name>`: a group whose name is this.
    Group(&'a str),
}

fn parse(entry: &str) -> Entry<'_> {
    match entry.strip_prefix(GROUP_PREFIX) {
        Some(name) => Entry::Group(name),
        None if is_contact_key(entry) => Entry::Key(entry),
        None => Entry::Name(entry),
    }
}

/// How a contact is named to the owner: its remark, else its nickname.
pub(super) fn display(c: &Contact) -> String {
    let name = if c.remark_name.is_empty() {
        &c.nick_name
    } else {
        &c.remark_name
    };
    clean_name(name)
}

/// Why `send.allow` refuses `contact` (whose key in this login is `key`, if it has one), or
/// `None` when it may be sent to: the list is empty, or an entry allows the contact. Only the
/// resolved contact counts, never the text a command named it by (that could match an entry
/// while resolving, case-insensitively, to someone else). The one-shot `send` and the
/// bridge's queue both ask here.
pub fn refusal(allow: &[String], contact: &Contact, key: Option<&str>) -> Option<String> {
    (!allow.is_empty() && !allows(allow, contact, key)).then(|| {
        format!(
            "{} is not in send.allow (entries match remarks, contact keys and ids, and groups \
             as `group:<name>`; never nicknames)",
            display(contact)
        )
    })
}

/// True when some entry of `allow` allows `contact`, whose key is `key` (see the module docs).
fn allows(allow: &[String], contact: &Contact, key: Option<&str>) -> bool {
    let remark = clean_name(&contact.remark_name);
    allow.iter().any(|a| match parse(a) {
        Entry::Key(k) => key == Some(k),
        Entry::Name(name) => name == contact.user_name || (!remark.is_empty() && remark == name),
        Entry::Group(name) => {
            contact.is_group() && !name.is_empty() && clean_name(&contact.nick_name) == name
        }
    })
}

/// For each plain entry that matches no RemarkName in `book` but a person's NickName or a
/// group's name, the entry and a warning saying why it allows no one and what to write instead.
fn name_only_entries(allow: &[String], book: &ContactBook) -> Vec<(String, String)> {
    let mut warnings = Vec::new();
    for entry in allow {
        let Entry::Name(name) = parse(entry) else {
            continue;
        };
        if name.starts_with('@') || name.eq_ignore_ascii_case(FILEHELPER) {
            continue;
        }
        if book.iter().any(|c| clean_name(&c.remark_name) == name) {
            continue;
        }
        let by_nick = |group: bool| {
            book.iter()
                .filter(|c| c.is_group() == group && clean_name(&c.nick_name) == name)
                .map(|c| c.user_name.clone())
                .min()
        };
        let warning = if let Some(id) = by_nick(false) {
            format!(
                "send.allow entry `{name}` matches no remark, only the nickname of {id}; a \
                 nickname is chosen by the contact, so the entry allows no one: set a remark \
                 for the contact in WeChat and list the remark"
            )
        } else if let Some(id) = by_nick(true) {
            format!(
                "send.allow entry `{name}` matches only the name of group {id}, which any member \
                 can change, so the entry allows no one: write `{GROUP_PREFIX}{name}` to allow \
                 the group by its name"
            )
        } else {
            continue;
        };
        warnings.push((entry.clone(), warning));
    }
    warnings
}

/// The warning for `@…` entries, which match only for the login whose id they name.
fn id_entries_warning(allow: &[String]) -> Option<String> {
    let ids: Vec<&str> = allow
        .iter()
        .map(String::as_str)
        .filter(|a| a.starts_with('@'))
        .collect();
    (!ids.is_empty()).then(|| {
        format!(
            "send.allow lists {}: an `@…` id is handed out anew at every login, so the entry \
             allows its contact for one login only; list the contact's key (`c_…`, the \
             `chat.key` of its messages) or its remark instead",
            ids.join(", ")
        )
    })
}

/// Warns, when the bridge is made (once per account, not again at a restart after a panic),
/// about `send.allow` entries that are `@…` ids.
pub(super) fn warn_about_ids(allow: &[String]) {
    if let Some(warning) = id_entries_warning(allow) {
        tracing::warn!("{warning}");
    }
}

impl Bridge {
    /// Warns, once per entry for the life of the process, about `send.allow` entries that
    /// could only match a nickname or a group's name in this login's contacts.
    pub(super) fn warn_about_allow(&self, book: &ContactBook) {
        let warnings = name_only_entries(&self.config.send.allow, book);
        if warnings.is_empty() {
            return;
        }
        let Ok(mut warned) = self.allow_warned.lock() else {
            return;
        };
        for (entry, warning) in warnings {
            if warned.insert(entry) {
                tracing::warn!("{warning}");
            }
        }
    }
}

/// The entries already warned about, so each is logged once.
pub(super) type Warned = std::sync::Mutex<HashSet<String>>;

#[cfg(test)]
mod tests {
    use super::*;

    fn contact(id: &str, nick: &str, remark: &str) -> Contact {
        Contact {
            user_name: id.into(),
            nick_name: nick.into(),
            remark_name: remark.into(),
            ..Contact::default()
        }
    }

    fn allow(entries: &[&str]) -> Vec<String> {
        entries.iter().map(|e| (*e).to_owned()).collect()
    }

    #[test]
    fn an_empty_list_allows_everyone_and_a_refusal_names_the_contact_and_the_key() {
        let mom = contact("@mom", "Alice", "Mom");
        assert_eq!(refusal(&[], &mom, None), None);
        assert_eq!(refusal(&allow(&["Mom"]), &mom, None), None);
        let refused = refusal(&allow(&["Bob"]), &mom, None).unwrap();
        assert!(refused.starts_with("Mom is not in send.allow"), "{refused}");
    }

    #[test]
    fn a_nickname_never_satisfies_an_entry() {
        let list = allow(&["Mom", "Bob"]);
        assert!(allows(&list, &contact("@mom", "Alice", "Mom"), None));
        assert!(!allows(&list, &contact("@imposter", "Mom", ""), None));
        assert!(!allows(&list, &contact("@bob", "Bob", ""), None));
        assert!(!allows(&list, &contact("@bob", "Bob", "Robert"), None));
    }

    #[test]
    fn remarks_are_compared_cleaned_and_ids_as_given() {
        let list = allow(&["Tom & Jerry", "@a81", "filehelper"]);
        assert!(allows(&list, &contact("@tj", "x", "Tom &amp; Jerry"), None));
        assert!(allows(&list, &contact("@a81", "Whoever", ""), None));
        assert!(allows(
            &list,
            &contact(FILEHELPER, "File Transfer", ""),
            None
        ));
        assert!(!allows(&list, &contact("@other", "filehelper", ""), None));
    }

    #[test]
    fn a_group_is_allowed_by_name_only_with_the_group_form() {
        let plain = allow(&["Family"]);
        assert!(!allows(&plain, &contact("@@fam", "Family", ""), None));
        assert!(allows(&plain, &contact("@@fam", "Family", "Family"), None));
        let opted_in = allow(&["group:Family"]);
        assert!(allows(&opted_in, &contact("@@fam", "Family", ""), None));
        assert!(
            !allows(&opted_in, &contact("@fam", "Family", ""), None),
            "a person is not a group"
        );
        assert!(!allows(&allow(&["group:"]), &contact("@@x", "", ""), None));
    }

    #[test]
    fn entries_that_only_a_nickname_or_group_name_matches_are_warned_about() {
        let mut book = ContactBook::new(contact("@self", "Me", ""));
        book.upsert(contact("@mom", "Alice", "Mom"));
        book.upsert(contact("@bob", "Bob", ""));
        book.upsert(contact("@@club", "Chess Club", ""));
        let list = allow(&[
            "Mom",
            "Bob",
            "Chess Club",
            "group:Chess Club",
            "Nobody",
            "filehelper",
            "@bob",
        ]);
        let warnings = name_only_entries(&list, &book);
        let entries: Vec<&str> = warnings.iter().map(|(e, _)| e.as_str()).collect();
        assert_eq!(entries, ["Bob", "Chess Club"]);
        assert!(warnings[0].1.contains("set a remark"), "{}", warnings[0].1);
        assert!(
            warnings[1].1.contains("`group:Chess Club`"),
            "{}",
            warnings[1].1
        );
    }

    #[test]
    fn a_key_entry_allows_the_contact_with_that_key_whatever_its_names() {
        let list = allow(&["c_abcdefghij23"]);
        let mom = contact("@new", "Alice", "");
        assert!(allows(&list, &mom, Some("c_abcdefghij23")));
        assert!(!allows(&list, &mom, Some("c_zzzzzzzzzz77")));
        assert!(!allows(&list, &mom, None));
        assert!(
            !allows(
                &list,
                &contact("@x", "c_abcdefghij23", "c_abcdefghij23"),
                None
            ),
            "a key entry is no name: a remark or nickname equal to it does not match"
        );
    }

    #[test]
    fn id_entries_are_warned_about_as_lasting_one_login() {
        assert_eq!(id_entries_warning(&allow(&["Mom", "c_abcdefghij23"])), None);
        let warning = id_entries_warning(&allow(&["Mom", "@a81", "@@f3"])).unwrap();
        assert!(warning.contains("@a81, @@f3"), "{warning}");
        assert!(warning.contains("one login only"), "{warning}");
    }
}
