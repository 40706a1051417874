//! Contact keys in the running bridge (DESIGN.md "Contact keys"): the key book
//! ([`ContactKeys`]) is read from the account's spool (value `contact_keys`) at the first
//! login, bound after each login and on every contact change, and stored again whenever it
//! changed; the roster it gives (every contact of this login with its key) is a watch the bus
//! links publish. Contacts left without a key are reported in a `contacts` event.
//!
//! A book the spool holds but this version cannot read is left as it is: keys are then off
//! for the run (every key `null`, `to_key` refused) rather than handed out anew, which would
//! replace every key automations know.
use std::sync::Arc;

use time::OffsetDateTime;

use super::Bridge;
use crate::event::{Ambiguous, ContactsEvent, ContactsKind, ErrorCode, Event, Roster, SendResult};
use crate::wechat::contacts::ContactBook;
use crate::wechat::keys::{ContactKeys, KeyLookup, Outcome, SPOOL_VALUE as VALUE_NAME};
use crate::wechat::protocol::Contact;
use crate::wechat::session::Session;

/// The book as the bridge holds it.
#[derive(Debug, Default)]
pub(super) enum KeyState {
    /// Not read from the spool yet (before the first login).
    #[default]
    NotLoaded,
    /// Read (or new).
    Ready(ContactKeys),
    /// The stored book could not be read: keys are off for this run.
    Unreadable,
}

impl Bridge {
    /// After a login's contact load: binds the login's contacts, publishes the roster and any
    /// contact left without a key, and stores the book.
    pub(super) async fn bind_keys(&self, session: &Session) {
        self.load_keys().await;
        let now = OffsetDateTime::now_utc().unix_timestamp();
        let Some((outcome, bytes)) = self.change_keys(session, |keys, book| {
            let outcome = keys.bind_login(book.iter(), now);
            tracing::info!(
                keys = keys.len(),
                ambiguous = outcome.ambiguous.len(),
                "contact keys bound"
            );
            outcome
        }) else {
            return;
        };
        if let Some(bytes) = bytes {
            if let Err(e) = self.spool.put_value(VALUE_NAME, bytes).await {
                tracing::error!(cause = %e, "cannot store the contact keys");
            }
        }
        if !outcome.ambiguous.is_empty() {
            self.publish(Event::from(contacts_event(
                &self.config.account,
                outcome.ambiguous,
            )))
            .await;
        }
    }

    /// Within a login: `touched` UserNames were added or changed, `removed` ones are gone.
    /// Keys follow, the roster is republished, the book is stored when it changed; answers
    /// the contacts left without a key.
    pub(super) fn follow_contacts(
        &self,
        session: &Session,
        touched: &[String],
        removed: &[String],
    ) -> Vec<Ambiguous> {
        if touched.is_empty() && removed.is_empty() {
            return Vec::new();
        }
        let now = OffsetDateTime::now_utc().unix_timestamp();
        let Some((outcome, bytes)) = self.change_keys(session, |keys, book| {
            let contacts: Vec<&Contact> = touched
                .iter()
                .filter(|id| !book.is_self(id))
                .filter_map(|id| book.get(id))
                .collect();
            let removed: Vec<&str> = removed.iter().map(String::as_str).collect();
            keys.update(contacts, &removed, now)
        }) else {
            return Vec::new();
        };
        if let Some(bytes) = bytes {
            // Held for the spool's next group commit (this sync answer's, as a rule): the
            // change costs no fsync of its own.
            self.spool.hold_value(VALUE_NAME, bytes);
        }
        outcome.ambiguous
    }

    /// Applies `change` to the book with this login's contacts and publishes the roster that
    /// follows; answers its outcome and, when the book changed, the bytes to store. With keys
    /// off the roster goes out without keys and there is nothing to answer.
    fn change_keys(
        &self,
        session: &Session,
        change: impl FnOnce(&mut ContactKeys, &ContactBook) -> Outcome,
    ) -> Option<(Outcome, Option<Vec<u8>>)> {
        let book = session.book();
        let mut state = self.keys_lock();
        let KeyState::Ready(keys) = &mut *state else {
            drop(state);
            self.publish_roster(unkeyed_roster(&book));
            return None;
        };
        let outcome = change(keys, &book);
        let bytes = outcome.changed.then(|| keys.to_bytes());
        let roster = keys.roster(&book);
        drop(state);
        drop(book);
        self.publish_roster(roster);
        Some((outcome, bytes))
    }

    /// The session ended: its ids mean nothing any more.
    pub(super) fn clear_roster(&self) {
        self.publish_roster(Vec::new());
    }

    /// The key of a UserName in this login.
    pub(super) fn key_of(&self, user_name: &str) -> Option<String> {
        match &*self.keys_lock() {
            KeyState::Ready(keys) => keys.key_of(user_name).map(str::to_owned),
            _ => None,
        }
    }

    /// The UserName a `to_key` names in this login, or the result that refuses it.
    pub(super) fn resolve_key(
        &self,
        key: &str,
        request_id: &Option<String>,
    ) -> Result<String, Box<SendResult>> {
        let refuse = |code, message: String| {
            Err(Box::new(SendResult::err(request_id.clone(), code, message)))
        };
        let state = self.keys_lock();
        let KeyState::Ready(keys) = &*state else {
            return refuse(
                ErrorCode::UnknownRecipient,
                format!(
                    "no contact has the key {key}: the stored contact keys could not be read \
                     (see the log)"
                ),
            );
        };
        match keys.find(key) {
            KeyLookup::Bound(id) => Ok(id.to_owned()),
            KeyLookup::Disputed(ids) => refuse(
                ErrorCode::AmbiguousRecipient,
                format!(
                    "the key {key} matches {} contacts of this login ({}), so it is bound to \
                     none; see the contacts event's `ambiguous`",
                    ids.len(),
                    ids.join(", ")
                ),
            ),
            KeyLookup::Absent => refuse(
                ErrorCode::UnknownRecipient,
                format!("no contact of this login has the key {key}"),
            ),
            KeyLookup::Unknown => refuse(
                ErrorCode::InvalidCommand,
                format!("unknown contact key {key}: this account never gave it out"),
            ),
        }
    }

    /// Reads the book from the spool, once.
    async fn load_keys(&self) {
        if !matches!(*self.keys_lock(), KeyState::NotLoaded) {
            return;
        }
        let loaded = match self.spool.value(VALUE_NAME).await {
            Ok(None) => KeyState::Ready(ContactKeys::new()),
            Ok(Some(bytes)) => match ContactKeys::from_bytes(&bytes) {
                Ok(keys) => KeyState::Ready(keys),
                Err(e) => {
                    tracing::error!(cause = %e, "contact keys are off for this run; the stored ones are kept as they are");
                    KeyState::Unreadable
                }
            },
            Err(e) => {
                tracing::error!(cause = %e, "cannot read the contact keys; they are off for this run");
                KeyState::Unreadable
            }
        };
        *self.keys_lock() = loaded;
    }

    fn keys_lock(&self) -> std::sync::MutexGuard<'_, KeyState> {
        self.keys
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn publish_roster(&self, roster: Roster) {
        self.roster.send_if_modified(|current| {
            if **current == roster {
                return false;
            }
            *current = Arc::new(roster);
            true
        });
    }
}

/// The roster without keys, while keys are off.
fn unkeyed_roster(book: &ContactBook) -> Roster {
    ContactKeys::new().roster(book)
}

/// A `contacts` event that only reports contacts left without a key.
fn contacts_event(account: &str, ambiguous: Vec<Ambiguous>) -> ContactsEvent {
    ContactsEvent {
        kind: ContactsKind,
        account: account.to_owned(),
        time: OffsetDateTime::now_utc(),
        added: Vec::new(),
        modified: Vec::new(),
        removed: Vec::new(),
        ambiguous,
    }
}
