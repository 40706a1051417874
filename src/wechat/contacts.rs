//! The contact book of one login, and recipient resolution for send commands (DESIGN.md
//! "Outbound command and result"). Pure state: the I/O code feeds it from webwxinit,
//! webwxgetcontact, webwxbatchgetcontact and webwxsync, and asks it who a name is.
use std::collections::{HashMap, HashSet};

use thiserror::Error;

use crate::event::{ContactSummary, ErrorCode};
use crate::wechat::protocol::{is_group_name, AddMsg, BatchItem, Contact, Member, MemberRef};
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
    pub fn member(&self, group: &str, user_name: &str) -> Option<MemberRef<'_>> {
        self.contacts.get(group)?.member_list.find(user_name)
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
            };
            group.member_list = group.member_list.with(&member);
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
mod tests;

#[cfg(test)]
mod properties;
