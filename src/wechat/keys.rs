//! Contact keys (DESIGN.md "Contact keys"): names for contacts and groups that outlive a login,
//! where WeChat's `@…` UserNames do not (PROTOCOL.md §5.3). Pure state: the bridge loads the
//! stored book from the spool, hands it each login's contacts and every change to them, and
//! stores it again when [`Outcome::changed`] says so.
//!
//! A key is `c_` and 12 random characters of RFC 4648 base32 in lower case
//! ([`crate::event::is_contact_key`]). The book remembers, per key, what it was last bound to:
//! the remark, the NickName, sex, province and city, and for a group its member count and its
//! members' nicknames (as 64-bit hashes: see [`name_hash`]). After each login the new UserNames are bound to stored keys by these
//! rules, in order, each rule seeing only the keys no earlier rule bound:
//! 1. **remark**: the same RemarkName (a person to a person, a group to a group);
//! 2. **person**: the same NickName, Sex, Province and City;
//! 3. **group**: the same NickName, and members alike: when both sides know their members'
//!    nicknames, a Jaccard similarity (shared names / all names) of at least
//!    [`GROUP_SIMILARITY`]; else the same member count when both know it; else the name alone.
//!
//! Within a rule, a contact that matches exactly one key, which no other contact matches,
//! takes it. A contact that matches several keys, or a key that several contacts match, is
//! not guessed: those contacts get no key for this login, those keys stay with nobody, and the
//! contacts are reported ([`Outcome::ambiguous`]). Contacts no rule matched get new keys,
//! unless they look exactly like another new contact (the rules, run on their would-be
//! records, cannot tell them apart): a key given then would be ambiguous at the next login,
//! so they are reported instead, with no candidates, until something (a remark) sets them
//! apart. Keys no contact has matched for [`FORGET_AFTER_DAYS`] days are dropped.
//!
//! Within a login a UserName keeps its key: a contact renamed by ModContactList keeps it and
//! its record follows, so the next login matches the new name.
use std::collections::{BTreeMap, BTreeSet, HashMap};

use crate::event::{Ambiguous, RosterEntry, KEY_CHARS, KEY_PREFIX};
use crate::wechat::contacts::{clean_name, display_name, ContactBook};
use crate::wechat::protocol::Contact;

/// The least Jaccard similarity of two member-nickname sets for a group to keep its key.
///
/// Groups change members between logins, and two groups of one account can share a name
/// ("Family" on each side of it) and some members. Half of all names shared tolerates a group
/// that gained or lost a third of its members since it was last seen (J = 2/3 when a group of
/// 6 gains 3) while two same-named groups that share a few people (a family's two sides share
/// the couple: J ≈ 0.2) stay apart. The similarity also bounds the member counts: J ≥ 0.5
/// needs the smaller group to be at least half the larger.
pub const GROUP_SIMILARITY: f64 = 0.5;

/// Keys not matched by any contact for this many days are dropped.
pub const FORGET_AFTER_DAYS: i64 = 90;

/// The spool value that holds the book (for `run` and the one-shot commands alike).
pub const SPOOL_VALUE: &str = "contact_keys";

const DAY: i64 = 86_400;

/// RFC 4648 base32, lower case.
const ALPHABET: &[u8; 32] = b"abcdefghijklmnopqrstuvwxyz234567";

/// What a key was last bound to.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Record {
    /// The RemarkName, cleaned; empty when none.
    pub remark: String,
    /// The NickName (a group's name), cleaned.
    pub nick: String,
    /// 0 unknown, 1 male, 2 female.
    pub sex: u64,
    /// The profile's province.
    pub province: String,
    /// The profile's city.
    pub city: String,
    /// True for a group.
    pub group: bool,
    /// A group's member count; 0 when unknown.
    pub members: u64,
    /// A group's members' nicknames, cleaned and hashed ([`name_hash`]), sorted, each once;
    /// empty when unknown. Hashes, not names: a large account's groups hold hundreds of
    /// thousands of members, and the similarity only asks which names are equal.
    pub member_hashes: Vec<u64>,
    /// When a contact last matched it (Unix seconds).
    pub last_seen: i64,
}

impl Record {
    /// What the book would remember of `c`, seen at `now`.
    pub fn of(c: &Contact, now: i64) -> Record {
        let group = c.is_group();
        let mut member_hashes: Vec<u64> = c
            .member_list
            .iter()
            .map(|m| clean_name(m.nick_name))
            .filter(|n| !n.is_empty())
            .map(|n| name_hash(&n))
            .collect();
        member_hashes.sort_unstable();
        member_hashes.dedup();
        member_hashes.shrink_to_fit();
        let members = u64::from(member_count(c));
        Record {
            remark: clean_name(&c.remark_name),
            nick: clean_name(&c.nick_name),
            sex: c.sex,
            province: c.province.trim().to_owned(),
            city: c.city.trim().to_owned(),
            group,
            members: if group { members } else { 0 },
            member_hashes,
            last_seen: now,
        }
    }

    /// True when `self` says more than `old` does: another field, or another day seen. A
    /// change within the day is not worth a write.
    fn differs_from(&self, old: &Record) -> bool {
        let same_day = self.last_seen.div_euclid(DAY) == old.last_seen.div_euclid(DAY);
        // Field by field rather than on a clone: a group's record holds its members.
        !same_day
            || self.remark != old.remark
            || self.nick != old.nick
            || self.sex != old.sex
            || self.province != old.province
            || self.city != old.city
            || self.group != old.group
            || self.members != old.members
            || self.member_hashes != old.member_hashes
    }
}

/// A cleaned member nickname's 64-bit FNV-1a hash, as the book keeps it. FNV-1a because it is
/// fixed (the hashes are stored, so they must not change with the Rust version, as std's
/// hasher may). Two distinct names collide with odds of about 2^-64 per pair: for two groups
/// of 500 (250,000 pairs) about 1 in 7·10^13, and a collision only moves their similarity by
/// one name in the union.
pub fn name_hash(name: &str) -> u64 {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    name.bytes()
        .fold(OFFSET, |h, b| (h ^ u64::from(b)).wrapping_mul(PRIME))
}

/// A group's member count: its MemberList's length, else the MemberCount WeChat gave.
fn member_count(c: &Contact) -> u32 {
    let n = if c.member_list.is_empty() {
        c.member_count
    } else {
        c.member_list.len() as u64
    };
    u32::try_from(n).unwrap_or(u32::MAX)
}

/// One matching rule, in the order they are tried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Rule {
    Remark,
    Person,
    Group,
}

const RULES: [Rule; 3] = [Rule::Remark, Rule::Person, Rule::Group];

impl Rule {
    /// Whether the rule looks at a contact like `seen` at all.
    fn applies(self, seen: &Record) -> bool {
        match self {
            Rule::Remark => !seen.remark.is_empty(),
            Rule::Person => !seen.group,
            Rule::Group => seen.group,
        }
    }

    /// The name the rule needs equal on both sides.
    fn name(self, r: &Record) -> &str {
        match self {
            Rule::Remark => &r.remark,
            Rule::Person | Rule::Group => &r.nick,
        }
    }

    /// Whether a key last bound to `old` matches a contact now like `seen`.
    fn matches(self, old: &Record, seen: &Record) -> bool {
        match self {
            Rule::Remark => old.group == seen.group && old.remark == seen.remark,
            Rule::Person => {
                !old.group
                    && old.nick == seen.nick
                    && old.sex == seen.sex
                    && old.province == seen.province
                    && old.city == seen.city
            }
            Rule::Group => old.group && old.nick == seen.nick && members_alike(old, seen),
        }
    }
}

/// Rule 3's test of two groups' members (see the module doc).
fn members_alike(old: &Record, seen: &Record) -> bool {
    if !old.member_hashes.is_empty() && !seen.member_hashes.is_empty() {
        return jaccard(&old.member_hashes, &seen.member_hashes) >= GROUP_SIMILARITY;
    }
    if old.members > 0 && seen.members > 0 {
        return old.members == seen.members;
    }
    true
}

/// |a ∩ b| / |a ∪ b| of two sorted lists of distinct names (or their hashes).
fn jaccard<T: Ord>(a: &[T], b: &[T]) -> f64 {
    let (mut i, mut j, mut both) = (0, 0, 0usize);
    while i < a.len() && j < b.len() {
        match a[i].cmp(&b[j]) {
            std::cmp::Ordering::Less => i += 1,
            std::cmp::Ordering::Greater => j += 1,
            std::cmp::Ordering::Equal => {
                both += 1;
                i += 1;
                j += 1;
            }
        }
    }
    let all = a.len() + b.len() - both;
    if all == 0 {
        1.0
    } else {
        both as f64 / all as f64
    }
}

/// What the rules made of one contact.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Decision {
    /// It takes this key.
    Bound(String),
    /// It matched these keys, or a key another contact matched too.
    Ambiguous(Vec<String>),
    /// No rule matched it.
    Unmatched,
}

/// Runs the rules in order over `seen` (one record per contact) against `keys`; a key bound or
/// disputed by one rule is out of reach of the later ones.
fn decide(seen: &[&Record], keys: &BTreeMap<&str, &Record>) -> Vec<Decision> {
    let mut out = vec![Decision::Unmatched; seen.len()];
    let mut free: BTreeSet<&str> = keys.keys().copied().collect();
    for rule in RULES {
        // Every rule wants the same remark or name: only those keys are compared, so a large
        // book (thousands of contacts, groups of 500) binds in time linear in its size.
        let mut by_name: HashMap<&str, Vec<&str>> = HashMap::new();
        for &k in &free {
            by_name.entry(rule.name(keys[k])).or_default().push(k);
        }
        let found: Vec<(usize, Vec<&str>)> = seen
            .iter()
            .enumerate()
            .filter(|(i, s)| out[*i] == Decision::Unmatched && rule.applies(s))
            .map(|(i, s)| {
                let hits = by_name
                    .get(rule.name(s))
                    .into_iter()
                    .flatten()
                    .copied()
                    .filter(|k| rule.matches(keys[k], s))
                    .collect();
                (i, hits)
            })
            .filter(|(_, hits): &(usize, Vec<&str>)| !hits.is_empty())
            .collect();
        let mut claims: HashMap<&str, usize> = HashMap::new();
        for (_, hits) in &found {
            for k in hits {
                *claims.entry(k).or_default() += 1;
            }
        }
        for (i, hits) in found {
            for k in &hits {
                free.remove(k);
            }
            out[i] = match hits.as_slice() {
                [one] if claims[one] == 1 => Decision::Bound((*one).to_owned()),
                _ => Decision::Ambiguous(hits.iter().map(|k| (*k).to_owned()).collect()),
            };
        }
    }
    out
}

/// What a binding did, for the caller to report and store.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Outcome {
    /// Contacts left without a key, newly found ambiguous (for the `contacts` event).
    pub ambiguous: Vec<Ambiguous>,
    /// True when the book changed and should be stored.
    pub changed: bool,
}

/// Where a key points in this login.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyLookup<'a> {
    /// To this UserName.
    Bound(&'a str),
    /// Nowhere: these contacts of this login matched it ambiguously.
    Disputed(Vec<&'a str>),
    /// Nowhere: the book knows it, but no contact of this login matched it.
    Absent,
    /// The book does not know it.
    Unknown,
}

/// The key book and the current login's bindings.
#[derive(Debug, Clone, Default)]
pub struct ContactKeys {
    records: BTreeMap<String, Record>,
    /// UserName → key, for this login.
    by_id: HashMap<String, String>,
    /// key → UserName, for this login.
    by_key: HashMap<String, String>,
    /// Keys matched ambiguously this login → the UserNames involved.
    disputed: BTreeMap<String, BTreeSet<String>>,
    /// UserNames of this login that got no key.
    unbound: HashMap<String, Vec<String>>,
    /// Read from an older format: the next binding stores it again, in this one.
    stale_format: bool,
}

impl ContactKeys {
    /// An empty book.
    pub fn new() -> ContactKeys {
        ContactKeys::default()
    }

    /// The book as stored by [`ContactKeys::to_bytes`] (or by an older version); no login is
    /// bound yet.
    pub fn from_bytes(bytes: &[u8]) -> Result<ContactKeys, KeysError> {
        let (records, stale_format) = stored::decode(bytes)?;
        Ok(ContactKeys {
            records: records
                .into_iter()
                .filter(|(k, _)| crate::event::is_contact_key(k))
                .collect(),
            stale_format,
            ..ContactKeys::default()
        })
    }

    /// The book to store (the login's bindings are not: they mean nothing to the next one).
    pub fn to_bytes(&self) -> Vec<u8> {
        stored::encode(&self.records)
    }

    /// How many keys the book holds.
    pub fn len(&self) -> usize {
        self.records.len()
    }

    /// True when the book holds no key.
    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    /// What the book remembers of a key.
    pub fn record(&self, key: &str) -> Option<&Record> {
        self.records.get(key)
    }

    /// Starts a new login: forgets the last login's bindings, drops the keys not seen for
    /// [`FORGET_AFTER_DAYS`], and binds `contacts` (every contact of the login, self excluded).
    pub fn bind_login<'c>(
        &mut self,
        contacts: impl IntoIterator<Item = &'c Contact>,
        now: i64,
    ) -> Outcome {
        self.by_id.clear();
        self.by_key.clear();
        self.disputed.clear();
        self.unbound.clear();
        let before = self.records.len();
        self.records
            .retain(|_, r| now - r.last_seen <= FORGET_AFTER_DAYS * DAY);
        let mut outcome = self.bind(contacts.into_iter().collect(), now);
        outcome.changed |= self.records.len() != before || self.stale_format;
        self.stale_format = false;
        outcome
    }

    /// Follows changes within a login: `touched` contacts were added or changed (a
    /// ModContactList entry, a group whose members changed), `removed` UserNames are gone. A
    /// contact with a key keeps it and its record follows; a new one is bound like at login; a
    /// contact left without a key at login stays without one until the next.
    pub fn update<'c>(
        &mut self,
        touched: impl IntoIterator<Item = &'c Contact>,
        removed: &[&str],
        now: i64,
    ) -> Outcome {
        let mut changed = false;
        for id in removed {
            if let Some(key) = self.by_id.remove(*id) {
                self.by_key.remove(&key);
            }
            self.unbound.remove(*id);
        }
        let mut pending = Vec::new();
        for c in touched {
            if let Some(key) = self.by_id.get(&c.user_name) {
                changed |= self.refresh(key.clone(), Record::of(c, now));
            } else if !self.unbound.contains_key(&c.user_name) {
                pending.push(c);
            }
        }
        let mut outcome = self.bind(pending, now);
        outcome.changed |= changed;
        outcome
    }

    /// The key of a UserName in this login.
    pub fn key_of(&self, user_name: &str) -> Option<&str> {
        self.by_id.get(user_name).map(String::as_str)
    }

    /// Where `key` points in this login.
    pub fn find(&self, key: &str) -> KeyLookup<'_> {
        if let Some(id) = self.by_key.get(key) {
            return KeyLookup::Bound(id);
        }
        if let Some(ids) = self.disputed.get(key) {
            return KeyLookup::Disputed(ids.iter().map(String::as_str).collect());
        }
        if self.records.contains_key(key) {
            KeyLookup::Absent
        } else {
            KeyLookup::Unknown
        }
    }

    /// The contact list with keys, for the retained contacts topic: groups first, then by name
    /// ignoring case, then by id.
    pub fn roster(&self, book: &ContactBook) -> Vec<RosterEntry> {
        let mut all: Vec<RosterEntry> = book
            .iter()
            .map(|c| {
                let remark = clean_name(&c.remark_name);
                RosterEntry {
                    key: self.key_of(&c.user_name).map(str::to_owned),
                    id: c.user_name.clone(),
                    name: clean_name(&c.nick_name),
                    remark: (!remark.is_empty()).then_some(remark),
                    group: c.is_group(),
                    members: c.is_group().then(|| member_count(c)),
                }
            })
            .collect();
        all.sort_by_cached_key(|e| (!e.group, e.name.to_lowercase(), e.id.clone()));
        all
    }

    /// Binds `contacts` (none bound in this login yet) to the keys no contact of this login
    /// holds or disputes, and gives new keys where no rule matched.
    fn bind(&mut self, contacts: Vec<&Contact>, now: i64) -> Outcome {
        let mut outcome = Outcome::default();
        if contacts.is_empty() {
            return outcome;
        }
        let mut seen: Vec<Record> = contacts.iter().map(|c| Record::of(c, now)).collect();
        let decisions = {
            let free: BTreeMap<&str, &Record> = self
                .records
                .iter()
                .filter(|(k, _)| !self.by_key.contains_key(*k) && !self.disputed.contains_key(*k))
                .map(|(k, r)| (k.as_str(), r))
                .collect();
            decide(&seen.iter().collect::<Vec<_>>(), &free)
        };
        let mut unmatched = Vec::new();
        for (i, decision) in decisions.into_iter().enumerate() {
            let c = contacts[i];
            match decision {
                Decision::Bound(key) => {
                    // Taken, not cloned: a bound contact's record is not looked at again.
                    outcome.changed |= self.refresh(key.clone(), std::mem::take(&mut seen[i]));
                    self.by_id.insert(c.user_name.clone(), key.clone());
                    self.by_key.insert(key, c.user_name.clone());
                }
                Decision::Ambiguous(keys) => {
                    for k in &keys {
                        self.disputed
                            .entry(k.clone())
                            .or_default()
                            .insert(c.user_name.clone());
                        // Someone still answers to it: it is not forgotten while disputed.
                        if let Some(r) = self.records.get_mut(k) {
                            if r.last_seen.div_euclid(DAY) != now.div_euclid(DAY) {
                                r.last_seen = now;
                                outcome.changed = true;
                            }
                        }
                    }
                    outcome.ambiguous.push(self.report(c, keys));
                }
                Decision::Unmatched => unmatched.push(i),
            }
        }
        // New contacts: each gets a key, unless the rules could not tell its record from
        // another new one's at the next login.
        let mut fresh: Vec<String> = Vec::with_capacity(unmatched.len());
        while fresh.len() < unmatched.len() {
            let key = self.new_key();
            if !fresh.contains(&key) {
                fresh.push(key);
            }
        }
        let trial: BTreeMap<&str, &Record> = fresh
            .iter()
            .zip(&unmatched)
            .map(|(k, &i)| (k.as_str(), &seen[i]))
            .collect();
        let trial_seen: Vec<&Record> = unmatched.iter().map(|&i| &seen[i]).collect();
        let trial_decisions = decide(&trial_seen, &trial);
        drop((trial, trial_seen));
        for ((key, &i), decision) in fresh.iter().zip(&unmatched).zip(trial_decisions) {
            let c = contacts[i];
            if decision == Decision::Bound(key.clone()) {
                self.records
                    .insert(key.clone(), std::mem::take(&mut seen[i]));
                self.by_id.insert(c.user_name.clone(), key.clone());
                self.by_key.insert(key.clone(), c.user_name.clone());
                outcome.changed = true;
            } else {
                outcome.ambiguous.push(self.report(c, Vec::new()));
            }
        }
        outcome
    }

    /// Notes a contact of this login left without a key, and says so.
    fn report(&mut self, c: &Contact, candidates: Vec<String>) -> Ambiguous {
        self.unbound.insert(c.user_name.clone(), candidates.clone());
        let name = if c.is_group() {
            clean_name(&c.nick_name)
        } else {
            display_name(c)
        };
        Ambiguous {
            id: c.user_name.clone(),
            name,
            candidates,
        }
    }

    /// Stores what `key`'s contact looks like now; true when that is news.
    fn refresh(&mut self, key: String, seen: Record) -> bool {
        // Same look on the same day keeps the stored record, and with it the earlier time.
        let changed = self
            .records
            .get(&key)
            .is_none_or(|old| seen.differs_from(old));
        if changed {
            self.records.insert(key, seen);
        }
        changed
    }

    /// A key the book does not hold yet.
    fn new_key(&self) -> String {
        loop {
            let mut key = String::with_capacity(KEY_PREFIX.len() + KEY_CHARS);
            key.push_str(KEY_PREFIX);
            for _ in 0..KEY_CHARS {
                key.push(ALPHABET[fastrand::usize(..ALPHABET.len())] as char);
            }
            if !self.records.contains_key(&key) {
                return key;
            }
        }
    }
}

mod stored;
pub use stored::KeysError;

#[cfg(test)]
mod tests;
