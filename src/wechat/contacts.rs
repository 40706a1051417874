//! The contact book of one login, and recipient resolution for send commands (DESIGN.md
//! "Outbound command and result"). Pure state: the I/O code feeds it from webwxinit,
//! webwxgetcontact, webwxbatchgetcontact and webwxsync, and asks it who a name is.
use std::collections::{HashMap, HashSet};

use thiserror::Error;

use crate::event::{ContactSummary, ErrorCode};
use crate::wechat::protocol::{is_group_name, AddMsg, BatchItem, Contact, Member};
pub use crate::wechat::text::clean_name;
use crate::wechat::text::{non_empty, split_group_prefix};

/// The fixed UserName of the File Transfer helper (PROTOCOL.md §5.3).
pub const FILEHELPER: &str = "filehelper";

/// A contact with its cleaned remark and nickname, as name resolution compares them.
type Named<'a> = (&'a Contact, String, String);

/// How many close names an unknown-recipient error suggests at most.
const MAX_SUGGESTIONS: usize = 5;

/// The name a person is shown by: RemarkName if set, else NickName, cleaned. Empty when both are.
pub fn display_name(contact: &Contact) -> String {
    if contact.remark_name.is_empty() {
        clean_name(&contact.nick_name)
    } else {
        clean_name(&contact.remark_name)
    }
}

/// A contact as `contacts` events list it.
pub fn summarize(contact: &Contact) -> ContactSummary {
    ContactSummary {
        id: contact.user_name.clone(),
        name: clean_name(&contact.nick_name),
        remark: non_empty(clean_name(&contact.remark_name)),
        group: contact.is_group(),
    }
}

/// The File Transfer helper as the book shows it when WeChat did not list it.
fn filehelper_contact() -> Contact {
    Contact {
        user_name: FILEHELPER.into(),
        nick_name: "File Transfer".into(),
        ..Contact::default()
    }
}

/// Why a `to` or `to_id` names no single contact.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ResolveError {
    /// Nobody has that name (or id).
    #[error("no contact {}{}", describe_unknown(.to), describe_suggestions(.suggestions))]
    Unknown {
        /// What was asked for.
        to: String,
        /// Close names (case-insensitive substring matches), at most five.
        suggestions: Vec<String>,
    },
    /// More than one contact has that name in the deciding tier.
    #[error("`{to}` matches {} contacts: {}", .candidates.len(), describe_candidates(.candidates))]
    Ambiguous {
        /// What was asked for.
        to: String,
        /// (UserName, shown name) of each match.
        candidates: Vec<(String, String)>,
    },
}

impl ResolveError {
    /// The result code this maps to.
    pub fn code(&self) -> ErrorCode {
        match self {
            ResolveError::Unknown { .. } => ErrorCode::UnknownRecipient,
            ResolveError::Ambiguous { .. } => ErrorCode::AmbiguousRecipient,
        }
    }
}

fn describe_unknown(to: &str) -> String {
    if to.starts_with('@') {
        format!("with id `{to}` in this login")
    } else {
        format!("named `{to}`")
    }
}

fn describe_suggestions(suggestions: &[String]) -> String {
    if suggestions.is_empty() {
        String::new()
    } else {
        format!("; did you mean: {}", suggestions.join(", "))
    }
}

fn describe_candidates(candidates: &[(String, String)]) -> String {
    candidates
        .iter()
        .map(|(id, name)| format!("{name} ({id})"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// What [`ContactBook::apply_changes`] did, for a `contacts` event.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ContactChanges {
    /// Contacts the book did not know.
    pub added: Vec<ContactSummary>,
    /// Known contacts whose entry changed.
    pub modified: Vec<ContactSummary>,
    /// Known contacts that were removed.
    pub removed: Vec<ContactSummary>,
}

impl ContactChanges {
    /// True when nothing changed, so no event is due.
    pub fn is_empty(&self) -> bool {
        self.added.is_empty() && self.modified.is_empty() && self.removed.is_empty()
    }
}

/// The contacts of one login, by UserName, plus the logged-in user.
///
/// Self is kept apart from the other contacts: [`ContactBook::get`] and
/// [`ContactBook::is_self`] know it, but [`ContactBook::len`], [`ContactBook::iter`] and name
/// resolution do not (a message to yourself goes to `filehelper`).
#[derive(Debug, Clone)]
pub struct ContactBook {
    self_user: Contact,
    contacts: HashMap<String, Contact>,
    /// Answers `filehelper` when WeChat did not list it.
    filehelper: Contact,
}

impl ContactBook {
    /// An empty book for the user webwxinit returned.
    pub fn new(self_user: Contact) -> Self {
        ContactBook {
            self_user,
            contacts: HashMap::new(),
            filehelper: filehelper_contact(),
        }
    }

    /// The logged-in user.
    pub fn self_user(&self) -> &Contact {
        &self.self_user
    }

    /// True for self's UserName.
    pub fn is_self(&self, user_name: &str) -> bool {
        !user_name.is_empty() && user_name == self.self_user.user_name
    }

    /// Adds or replaces a contact, and returns true when the book changed.
    ///
    /// The new entry wins field by field, except that a group entry with an empty MemberList
    /// keeps the members already known (and their count when the new one says 0), and an empty
    /// EncryChatRoomId keeps the known one: webwxgetcontact and ModContactList list saved groups
    /// without members (PROTOCOL.md §5.1), and only webwxbatchgetcontact fills them in, so an
    /// empty list means "not sent", never "no members". An entry for self updates self.
    pub fn upsert(&mut self, contact: Contact) {
        self.upsert_changed(contact);
    }

    /// [`ContactBook::upsert`], telling whether the book changed.
    fn upsert_changed(&mut self, contact: Contact) -> bool {
        if contact.user_name.is_empty() {
            return false;
        }
        if self.is_self(&contact.user_name) {
            let merged = merge(&self.self_user, contact);
            let changed = merged != self.self_user;
            self.self_user = merged;
            return changed;
        }
        let merged = match self.contacts.get(&contact.user_name) {
            Some(old) => merge(old, contact),
            None => contact,
        };
        let changed = self.contacts.get(&merged.user_name) != Some(&merged);
        self.contacts.insert(merged.user_name.clone(), merged);
        changed
    }

    /// Removes a contact and returns it.
    pub fn remove(&mut self, user_name: &str) -> Option<Contact> {
        self.contacts.remove(user_name)
    }

    /// A contact by UserName, self included.
    pub fn get(&self, user_name: &str) -> Option<&Contact> {
        if self.is_self(user_name) {
            return Some(&self.self_user);
        }
        self.contacts.get(user_name)
    }

    /// A member of a known group.
    pub fn member(&self, group: &str, user_name: &str) -> Option<&Member> {
        self.contacts
            .get(group)?
            .member_list
            .iter()
            .find(|m| m.user_name == user_name)
    }

    /// How many contacts, self not counted.
    pub fn len(&self) -> usize {
        self.contacts.len()
    }

    /// True when no contact besides self is known.
    pub fn is_empty(&self) -> bool {
        self.contacts.is_empty()
    }

    /// The contacts in no particular order, self not included.
    pub fn iter(&self) -> impl Iterator<Item = &Contact> {
        self.contacts.values()
    }

    /// The contacts as `wxbridge contacts` and `GET /contacts` list them: groups first, then
    /// by name ignoring case, each as [`listing_json`] describes it.
    pub fn listing(&self) -> Vec<serde_json::Value> {
        let mut all: Vec<&Contact> = self.iter().collect();
        all.sort_by_cached_key(|c| (!c.is_group(), clean_name(&c.nick_name).to_lowercase()));
        all.into_iter().map(listing_json).collect()
    }

    /// The cleaned display name of a UserName (remark, else nickname), falling back to the id
    /// itself when the contact is unknown or nameless. `filehelper` is "File Transfer" when
    /// WeChat did not list it.
    pub fn name_of(&self, user_name: &str) -> String {
        let name = match self.get(user_name) {
            Some(c) => display_name(c),
            None if user_name == FILEHELPER => display_name(&self.filehelper),
            None => String::new(),
        };
        if name.is_empty() {
            user_name.to_owned()
        } else {
            name
        }
    }

    /// Resolves a `to_id`: a UserName the book knows (self excluded), or `filehelper`.
    pub fn resolve_id(&self, user_name: &str) -> Option<&Contact> {
        match self.contacts.get(user_name) {
            Some(c) => Some(c),
            None if user_name == FILEHELPER => Some(&self.filehelper),
            None => None,
        }
    }

    /// Resolves a `to` name. `filehelper` (in any case) is always WeChat's File Transfer
    /// helper, its fixed UserName, even when WeChat did not list it: a contact can name itself
    /// `filehelper`, and a note to self must never reach it. Any other name goes through
    /// tiers, in order, each on cleaned names and exact (case-sensitive):
    /// 1. RemarkName; 2. NickName of a person; 3. NickName of a group;
    /// 4. only when no exact tier matched: any of those names compared case-insensitively.
    ///
    /// The first tier with a match decides: one match is the answer, several are
    /// [`ResolveError::Ambiguous`] (so a unique remark beats a clashing nickname, but two
    /// contacts sharing a remark are never guessed between). No match at all is
    /// [`ResolveError::Unknown`] with up to five names containing `to` case-insensitively.
    pub fn resolve(&self, to: &str) -> Result<&Contact, ResolveError> {
        let lower = to.to_lowercase();
        if lower == FILEHELPER {
            return Ok(self.filehelper_or_listed());
        }
        let named: Vec<Named<'_>> = self
            .contacts
            .values()
            .map(|c| (c, clean_name(&c.remark_name), clean_name(&c.nick_name)))
            .collect();
        let tiers: [fn(&Named<'_>, &str) -> bool; 3] = [
            |(_, remark, _), to| !remark.is_empty() && remark == to,
            |(c, _, nick), to| !c.is_group() && !nick.is_empty() && nick == to,
            |(c, _, nick), to| c.is_group() && !nick.is_empty() && nick == to,
        ];
        for tier in tiers {
            let hits: Vec<&Contact> = named.iter().filter(|n| tier(n, to)).map(|n| n.0).collect();
            if !hits.is_empty() {
                return decide(to, hits);
            }
        }
        let same = |name: &str| !name.is_empty() && name.to_lowercase() == lower;
        let hits: Vec<&Contact> = named
            .iter()
            .filter(|(_, remark, nick)| same(remark) || same(nick))
            .map(|n| n.0)
            .collect();
        if !hits.is_empty() {
            return decide(to, hits);
        }
        let mut suggestions: Vec<String> = named
            .iter()
            .flat_map(|(_, remark, nick)| [remark, nick])
            .filter(|name| !name.is_empty() && !lower.is_empty())
            .filter(|name| name.to_lowercase().contains(&lower))
            .cloned()
            .collect::<HashSet<_>>()
            .into_iter()
            .collect();
        suggestions.sort();
        suggestions.truncate(MAX_SUGGESTIONS);
        Err(ResolveError::Unknown {
            to: to.to_owned(),
            suggestions,
        })
    }

    /// `filehelper` as WeChat listed it, else the synthesized one.
    fn filehelper_or_listed(&self) -> &Contact {
        self.contacts.get(FILEHELPER).unwrap_or(&self.filehelper)
    }

    /// The groups, group members and people these messages reference that the book cannot
    /// name yet, deduplicated, for webwxbatchgetcontact (the caller chunks by 50).
    ///
    /// - a group not in the book, or known without members: the group itself (its answer
    ///   brings the whole MemberList, so its members are not asked for separately);
    /// - a sender (the `@id:<br/>` prefix) missing from a known group's MemberList and not a
    ///   contact either: `{user_name: member, encry_chat_room_id: group}` (a contact is
    ///   already nameable; its group DisplayName follows with the next group update);
    /// - the other party of a one-to-one chat with an `@` UserName the book does not know.
    ///
    /// MsgType 51 is skipped: its ids are conversation lists, not senders.
    pub fn missing_for(&self, msgs: &[AddMsg]) -> Vec<BatchItem> {
        let mut seen = HashSet::new();
        let mut out = Vec::new();
        let mut want = |user_name: &str, group: &str| {
            let item = BatchItem {
                user_name: user_name.to_owned(),
                encry_chat_room_id: group.to_owned(),
            };
            if seen.insert(item.clone()) {
                out.push(item);
            }
        };
        for msg in msgs.iter().filter(|m| m.msg_type != 51) {
            let (from, to) = (msg.from_user_name.as_str(), msg.to_user_name.as_str());
            let group = [from, to].into_iter().find(|u| is_group_name(u));
            match group {
                Some(group) => {
                    let known = self.contacts.get(group);
                    if known.is_none_or(|g| g.member_list.is_empty()) {
                        want(group, "");
                        continue;
                    }
                    if from != group {
                        continue;
                    }
                    let Some((sender, _)) = split_group_prefix(&msg.content) else {
                        continue;
                    };
                    if self.get(sender).is_none() && self.member(group, sender).is_none() {
                        want(sender, group);
                    }
                }
                None => {
                    let peer = if self.is_self(from) { to } else { from };
                    if peer.starts_with('@') && self.get(peer).is_none() {
                        want(peer, "");
                    }
                }
            }
        }
        out
    }

    /// Stores a webwxbatchgetcontact answer to [`ContactBook::missing_for`]'s request.
    ///
    /// A contact asked for as a group member (non-empty EncryChatRoomId in `requested`) is
    /// added to that group's MemberList, not to the book: group members are often strangers,
    /// and a stranger must not become a `to` name. A member of a group the book does not know
    /// is dropped. Everything else is [`ContactBook::upsert`]ed.
    pub fn apply_batch(&mut self, requested: &[BatchItem], fetched: Vec<Contact>) {
        for contact in fetched {
            let group = requested
                .iter()
                .find(|r| r.user_name == contact.user_name && !r.encry_chat_room_id.is_empty())
                .map(|r| r.encry_chat_room_id.as_str());
            let Some(group) = group.filter(|_| !contact.is_group()) else {
                self.upsert(contact);
                continue;
            };
            let Some(group) = self.contacts.get_mut(group) else {
                continue;
            };
            let member = Member {
                user_name: contact.user_name,
                nick_name: contact.nick_name,
                display_name: contact.display_name,
                attr_status: 0,
            };
            match group
                .member_list
                .iter_mut()
                .find(|m| m.user_name == member.user_name)
            {
                Some(known) => *known = member,
                None => group.member_list.push(member),
            }
        }
    }

    /// Applies a webwxsync's ModContactList and DelContactList and reports what changed.
    ///
    /// A modified entry the book did not know is `added`; a known one is `modified` only when
    /// the merged entry differs (ModContactList repeats unchanged groups often). A removed
    /// entry the book did not know is not reported. Self is updated but never reported as
    /// added or removed.
    pub fn apply_changes(
        &mut self,
        modified: Vec<Contact>,
        removed: Vec<Contact>,
    ) -> ContactChanges {
        let mut changes = ContactChanges::default();
        for contact in modified {
            let known = self.get(&contact.user_name).is_some();
            let is_self = self.is_self(&contact.user_name);
            let user_name = contact.user_name.clone();
            if self.upsert_changed(contact) {
                let summary = summarize(self.get(&user_name).unwrap_or(&self.self_user));
                if known || is_self {
                    changes.modified.push(summary);
                } else {
                    changes.added.push(summary);
                }
            }
        }
        for contact in removed {
            if let Some(gone) = self.remove(&contact.user_name) {
                changes.removed.push(summarize(&gone));
            }
        }
        changes
    }
}

/// One match decides; several are ambiguous, listed by id for a stable message.
fn decide<'a>(to: &str, hits: Vec<&'a Contact>) -> Result<&'a Contact, ResolveError> {
    if let [one] = hits.as_slice() {
        return Ok(one);
    }
    let mut candidates: Vec<(String, String)> = hits
        .iter()
        .map(|c| {
            let name = if c.is_group() {
                clean_name(&c.nick_name)
            } else {
                display_name(c)
            };
            (c.user_name.clone(), name)
        })
        .collect();
    candidates.sort();
    Err(ResolveError::Ambiguous {
        to: to.to_owned(),
        candidates,
    })
}

/// `new` wins, except for the fields an entry leaves empty when it was not sent (see
/// [`ContactBook::upsert`]).
fn merge(old: &Contact, mut new: Contact) -> Contact {
    if new.member_list.is_empty() && !old.member_list.is_empty() {
        new.member_list = old.member_list.clone();
        if new.member_count == 0 {
            new.member_count = old.member_count;
        }
    }
    if new.encry_chat_room_id.is_empty() {
        new.encry_chat_room_id.clone_from(&old.encry_chat_room_id);
    }
    new
}

/// A contact in a listing: `{"id","name","remark","group","members"}` with cleaned names,
/// `remark` null when unset and `members` null for a person.
pub fn listing_json(c: &Contact) -> serde_json::Value {
    let remark = clean_name(&c.remark_name);
    serde_json::json!({
        "id": c.user_name,
        "name": clean_name(&c.nick_name),
        "remark": (!remark.is_empty()).then_some(remark),
        "group": c.is_group(),
        "members": c.is_group().then_some(c.member_list.len()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn person(id: &str, nick: &str, remark: &str) -> Contact {
        Contact {
            user_name: id.into(),
            nick_name: nick.into(),
            remark_name: remark.into(),
            ..Contact::default()
        }
    }

    fn group(id: &str, name: &str, members: &[(&str, &str, &str)]) -> Contact {
        Contact {
            user_name: id.into(),
            nick_name: name.into(),
            member_count: members.len() as u64,
            member_list: members
                .iter()
                .map(|(u, n, d)| Member {
                    user_name: (*u).into(),
                    nick_name: (*n).into(),
                    display_name: (*d).into(),
                    attr_status: 0,
                })
                .collect(),
            ..Contact::default()
        }
    }

    fn book() -> ContactBook {
        let mut b = ContactBook::new(person("@self", "Me", ""));
        b.upsert(person("@mom", "Alice", "Mom"));
        b.upsert(person("@alice2", "Alice", ""));
        b.upsert(person(
            "@bob",
            "Bob <span class=\"emoji emoji1f604\"></span>",
            "",
        ));
        b.upsert(person("@carol", "Mom", ""));
        b.upsert(group("@@fam", "Family", &[("@mom", "Alice", "Mama")]));
        b.upsert(group("@@bobs", "Bob", &[]));
        b
    }

    #[test]
    fn remark_tier_beats_a_clashing_nickname() {
        assert_eq!(book().resolve("Mom").unwrap().user_name, "@mom");
    }

    #[test]
    fn two_matches_in_the_deciding_tier_are_ambiguous() {
        let err = book().resolve("Alice").unwrap_err();
        assert_eq!(err.code(), ErrorCode::AmbiguousRecipient);
        let ResolveError::Ambiguous { candidates, .. } = &err else {
            panic!("{err:?}")
        };
        assert_eq!(
            candidates,
            &[
                ("@alice2".to_string(), "Alice".to_string()),
                ("@mom".to_string(), "Mom".to_string())
            ]
        );
        assert!(err.to_string().contains("Mom (@mom)"));
    }

    #[test]
    fn nicknames_are_compared_cleaned_and_persons_before_groups() {
        let b = book();
        assert_eq!(b.resolve("Bob 😄").unwrap().user_name, "@bob");
        assert_eq!(b.resolve("Bob").unwrap().user_name, "@@bobs");
        assert_eq!(b.resolve("Family").unwrap().user_name, "@@fam");
    }

    #[test]
    fn filehelper_resolves_even_when_not_listed() {
        let b = book();
        let c = b.resolve("filehelper").unwrap();
        assert_eq!(c.user_name, FILEHELPER);
        assert_eq!(c.nick_name, "File Transfer");
        assert_eq!(
            book().resolve_id("filehelper").unwrap().user_name,
            FILEHELPER
        );
        let mut listed = book();
        listed.upsert(person("filehelper", "文件传输助手", ""));
        assert_eq!(
            listed.resolve("filehelper").unwrap().nick_name,
            "文件传输助手"
        );
    }

    #[test]
    fn filehelper_is_never_a_contact_that_took_the_name() {
        let mut b = book();
        b.upsert(person("@stranger", "filehelper", ""));
        b.upsert(person("@other", "FileHelper", ""));
        b.upsert(group("@@fh", "filehelper", &[]));
        for to in ["filehelper", "FileHelper", "FILEHELPER"] {
            assert_eq!(b.resolve(to).unwrap().user_name, FILEHELPER, "{to}");
        }
        // Even a remark the owner set does not take the name away from the helper.
        b.upsert(person("@remarked", "X", "filehelper"));
        assert_eq!(b.resolve("filehelper").unwrap().user_name, FILEHELPER);
    }

    #[test]
    fn case_insensitive_match_is_a_last_resort_and_must_be_unique() {
        let b = book();
        assert_eq!(b.resolve("family").unwrap().user_name, "@@fam");
        let mut b2 = b.clone();
        b2.upsert(person("@fam2", "FAMILY", ""));
        assert!(matches!(
            b2.resolve("family"),
            Err(ResolveError::Ambiguous { .. })
        ));
        assert_eq!(b2.resolve("Family").unwrap().user_name, "@@fam");
    }

    #[test]
    fn unknown_names_suggest_close_ones() {
        let err = book().resolve("ali").unwrap_err();
        assert_eq!(err.code(), ErrorCode::UnknownRecipient);
        let ResolveError::Unknown { suggestions, .. } = &err else {
            panic!("{err:?}")
        };
        assert_eq!(suggestions, &["Alice".to_string()]);
        assert!(err.to_string().contains("did you mean: Alice"));
        assert!(book().resolve_id("@nobody").is_none());
    }

    #[test]
    fn self_is_not_a_recipient_by_name() {
        let b = book();
        assert!(b.resolve("Me").is_err());
        assert!(b.resolve_id("@self").is_none());
        assert!(b.is_self("@self"));
        assert_eq!(b.get("@self").unwrap().nick_name, "Me");
        assert_eq!(b.len(), 6);
    }

    #[test]
    fn memberless_group_entry_keeps_known_members() {
        let mut b = book();
        let mut renamed = group("@@fam", "Family 2", &[]);
        renamed.member_count = 0;
        assert!(b.upsert_changed(renamed));
        let fam = b.get("@@fam").unwrap();
        assert_eq!(fam.nick_name, "Family 2");
        assert_eq!(fam.member_list.len(), 1);
        assert_eq!(fam.member_count, 1);
        assert_eq!(b.member("@@fam", "@mom").unwrap().display_name, "Mama");
        assert!(!b.upsert_changed(b.get("@@fam").unwrap().clone()));
    }

    #[test]
    fn missing_for_asks_for_unknown_groups_and_members_once() {
        let b = book();
        let msg = |from: &str, to: &str, content: &str| AddMsg {
            msg_id: "1".into(),
            msg_type: 1,
            from_user_name: from.into(),
            to_user_name: to.into(),
            content: content.into(),
            ..AddMsg::default()
        };
        let msgs = [
            msg("@@fam", "@self", "@mom:<br/>hi"),
            msg("@@fam", "@self", "@dave:<br/>hi"),
            msg("@@fam", "@self", "@dave:<br/>again"),
            msg("@@new", "@self", "@x:<br/>hi"),
            msg("@self", "@@new2", "mine"),
            msg("@@bobs", "@self", "@y:<br/>hi"),
            msg("@stranger", "@self", "hello"),
            msg("@self", "filehelper", "note"),
            AddMsg {
                msg_type: 51,
                ..msg("@self", "@self", "")
            },
        ];
        let want = b.missing_for(&msgs);
        let item = |u: &str, g: &str| BatchItem {
            user_name: u.into(),
            encry_chat_room_id: g.into(),
        };
        assert_eq!(
            want,
            [
                item("@dave", "@@fam"),
                item("@@new", ""),
                item("@@new2", ""),
                item("@@bobs", ""),
                item("@stranger", ""),
            ]
        );
    }

    #[test]
    fn batch_members_join_their_group_not_the_book() {
        let mut b = book();
        let requested = [BatchItem {
            user_name: "@dave".into(),
            encry_chat_room_id: "@@fam".into(),
        }];
        b.apply_batch(&requested, vec![person("@dave", "Dave", "")]);
        assert!(b.get("@dave").is_none());
        assert_eq!(b.member("@@fam", "@dave").unwrap().nick_name, "Dave");
        b.apply_batch(&[], vec![group("@@new", "New", &[("@x", "X", "")])]);
        assert_eq!(b.member("@@new", "@x").unwrap().nick_name, "X");
    }

    #[test]
    fn changes_report_added_modified_and_removed() {
        let mut b = book();
        let changes = b.apply_changes(
            vec![
                person("@erin", "Erin", ""),
                person("@bob", "Bobby", "B"),
                person("@carol", "Mom", ""),
            ],
            vec![person("@alice2", "", ""), person("@ghost", "", "")],
        );
        assert_eq!(changes.added.len(), 1);
        assert_eq!(changes.added[0].name, "Erin");
        assert_eq!(changes.modified.len(), 1);
        assert_eq!(changes.modified[0].remark.as_deref(), Some("B"));
        assert_eq!(changes.removed.len(), 1);
        assert_eq!(changes.removed[0].id, "@alice2");
        assert!(b.get("@alice2").is_none());
        assert!(b.apply_changes(vec![], vec![]).is_empty());
    }

    #[test]
    fn display_names_prefer_remark_and_are_cleaned() {
        let b = book();
        assert_eq!(b.name_of("@mom"), "Mom");
        assert_eq!(b.name_of("@bob"), "Bob 😄");
        assert_eq!(b.name_of("@unknown"), "@unknown");
        assert_eq!(b.name_of("filehelper"), "File Transfer");
    }
}

/// Properties of recipient resolution on generated books (proptest): names are drawn from a
/// tiny alphabet so that clashes, case variants and escaped spellings are common.
#[cfg(test)]
mod properties {
    use proptest::prelude::*;

    use super::*;

    /// A name as WeChat may spell it: a few letters, maybe an entity or an emoji span.
    fn name() -> impl Strategy<Value = String> {
        let piece = prop::sample::select(vec![
            "a",
            "A",
            "b",
            " ",
            "&amp;",
            "<span class=\"emoji emoji1f604\"></span>",
            "😄",
            "filehelper",
        ]);
        prop::collection::vec(piece, 0..3).prop_map(|p| p.concat())
    }

    fn book() -> impl Strategy<Value = ContactBook> {
        let contact = (name(), name(), any::<bool>());
        prop::collection::vec(contact, 0..8).prop_map(|contacts| {
            let mut book = ContactBook::new(Contact {
                user_name: "@self".into(),
                nick_name: "a".into(),
                remark_name: "b".into(),
                ..Contact::default()
            });
            for (i, (nick, remark, group)) in contacts.into_iter().enumerate() {
                book.upsert(Contact {
                    user_name: if group {
                        format!("@@g{i}")
                    } else {
                        format!("@p{i}")
                    },
                    nick_name: nick,
                    remark_name: if group { String::new() } else { remark },
                    ..Contact::default()
                });
            }
            book
        })
    }

    /// The names resolution compares for a contact.
    fn names(c: &Contact) -> [String; 2] {
        [clean_name(&c.remark_name), clean_name(&c.nick_name)]
    }

    proptest! {
        #[test]
        fn a_resolved_contact_always_bears_the_name_asked_for(book in book(), to in name()) {
            let lower = to.to_lowercase();
            match book.resolve(&to) {
                Ok(c) => {
                    prop_assert!(!book.is_self(&c.user_name));
                    let named = names(c)
                        .iter()
                        .any(|n| !n.is_empty() && (*n == to || n.to_lowercase() == lower));
                    prop_assert!(named || lower == FILEHELPER, "{to:?} resolved to {c:?}");
                    prop_assert_eq!(
                        c.user_name == FILEHELPER,
                        lower == FILEHELPER,
                        "{:?} resolved to {:?}", to, c
                    );
                }
                Err(ResolveError::Ambiguous { candidates, .. }) => {
                    prop_assert!(lower != FILEHELPER);
                    prop_assert!(candidates.len() >= 2);
                }
                Err(ResolveError::Unknown { suggestions, .. }) => {
                    prop_assert!(lower != FILEHELPER);
                    prop_assert!(suggestions.len() <= MAX_SUGGESTIONS);
                    for c in book.iter() {
                        for n in names(c) {
                            prop_assert!(n.is_empty() || n.to_lowercase() != lower, "{n:?} was missed");
                        }
                    }
                }
            }
        }

        #[test]
        fn a_unique_remark_resolves_to_its_contact(book in book()) {
            for c in book.iter() {
                let remark = clean_name(&c.remark_name);
                let same = book.iter().filter(|o| clean_name(&o.remark_name) == remark).count();
                // `filehelper` is the helper's name whoever bears it as a remark.
                if !remark.is_empty() && same == 1 && remark.to_lowercase() != FILEHELPER {
                    prop_assert_eq!(&book.resolve(&remark).unwrap().user_name, &c.user_name);
                }
            }
        }

        #[test]
        fn every_contact_but_self_resolves_by_id(book in book()) {
            for c in book.iter() {
                prop_assert_eq!(&book.resolve_id(&c.user_name).unwrap().user_name, &c.user_name);
            }
            prop_assert!(book.resolve_id("@self").is_none());
        }
    }
}
