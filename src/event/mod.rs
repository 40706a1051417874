//! The JSON the bus carries (DESIGN.md "Inbound event", "Outbound command and result"): inbound
//! events, the send command and its result. Every type here serializes to exactly the documented
//! shape; users' automations are written against it, so a field changes only with the contract.
//!
//! Conventions used throughout:
//! - times are RFC 3339 in UTC with whole seconds and a `Z` ([`rfc3339`]);
//! - a value that is absent on the wire (an unknown remark, a link without a URL) is `null`,
//!   except the fields DESIGN.md marks optional with `?` (`lat?`, `lon?`, `url?`), the type's
//!   extra field, `request_id` on messages (present only for `origin: bridge`) and `ret` on
//!   errors (only for `wechat_error`), which are left out.
//!
//! One file per wire message: [`message`](MessageEvent), the session events (`login`, `logout`,
//! `contacts`, `error`, `state`), the send [`Command`], its [`SendResult`] and its
//! [`Receipt`]s; the `kind` tags and the time format they share sit in leaves of their own.
use serde::de::{self, Deserializer};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

mod command;
mod head;
mod kind;
mod message;
mod receipt;
mod result;
mod roster;
mod send_media;
mod session;
mod timestamp;

pub use command::{parse_command, Command, CommandError, ErrorCode};
pub use kind::{
    ContactsKind, ErrorKind, Kind, LoginKind, LogoutKind, MessageKind, ReceiptKind, ResultKind,
    StateKind,
};
pub use message::{
    App, Card, Chat, File, FriendRequest, Link, Location, Media, MediaError, MediaKind,
    MessageEvent, MessageType, Origin, Revoke, Sender, StoredMedia,
};
pub use receipt::{Receipt, ReceiptStatus};
pub use result::{Recipient, ResultError, SendResult, SentMedia};
pub use roster::{is_contact_key, Roster, RosterEntry, KEY_CHARS, KEY_PREFIX};
pub use send_media::{check_name, MediaSource, SendKind, SendMedia};
pub use session::{
    Ambiguous, ContactSummary, ContactsEvent, ErrorEvent, LoginEvent, LoginQr, LoginUser,
    LogoutEvent, SessionState, SessionStatus, StateEvent,
};
pub use timestamp::{parse_rfc3339, rfc3339};

/// Any event a sink may carry. Serializes as the inner event, whose own `kind` tells them apart.
///
/// Deserializing reads `kind` first and then the matching event; like [`MessageEvent`], it
/// works with `serde_json` only.
#[derive(Debug, Clone, Serialize)]
#[serde(untagged)]
pub enum Event {
    /// `message` (boxed: it is by far the largest).
    Message(Box<MessageEvent>),
    /// `login`.
    Login(LoginEvent),
    /// `logout`.
    Logout(LogoutEvent),
    /// `contacts`.
    Contacts(ContactsEvent),
    /// `error`.
    Error(ErrorEvent),
    /// `state`.
    State(StateEvent),
}

impl Event {
    /// The `kind` on the wire.
    pub fn name(&self) -> &'static str {
        self.kind().map_or(StateKind::NAME, Kind::as_str)
    }

    /// The [`Kind`] it is spooled as; `None` for `state`, which is never spooled (sinks publish
    /// it retained, from the bridge's current status).
    pub fn kind(&self) -> Option<Kind> {
        match self {
            Event::Message(_) => Some(Kind::Message),
            Event::Login(_) => Some(Kind::Login),
            Event::Logout(_) => Some(Kind::Logout),
            Event::Contacts(_) => Some(Kind::Contacts),
            Event::Error(_) => Some(Kind::Error),
            Event::State(_) => None,
        }
    }

    /// The configured account name the event belongs to.
    pub fn account(&self) -> &str {
        match self {
            Event::Message(e) => &e.account,
            Event::Login(e) => &e.account,
            Event::Logout(e) => &e.account,
            Event::Contacts(e) => &e.account,
            Event::Error(e) => &e.account,
            Event::State(e) => &e.account,
        }
    }
}

impl<'de> Deserialize<'de> for Event {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        // An untagged derive would buffer the value, and RawValue cannot be read back from a
        // buffer (serde-rs/json#497); so keep the text and parse it again by kind.
        #[derive(Deserialize)]
        struct Peek {
            kind: String,
        }
        let raw = Box::<RawValue>::deserialize(d)?;
        let text = raw.get();
        let peek: Peek = serde_json::from_str(text).map_err(de::Error::custom)?;
        let event = match peek.kind.as_str() {
            MessageKind::NAME => serde_json::from_str(text).map(|m: MessageEvent| m.into()),
            LoginKind::NAME => serde_json::from_str(text).map(Event::Login),
            LogoutKind::NAME => serde_json::from_str(text).map(Event::Logout),
            ContactsKind::NAME => serde_json::from_str(text).map(Event::Contacts),
            ErrorKind::NAME => serde_json::from_str(text).map(Event::Error),
            StateKind::NAME => serde_json::from_str(text).map(Event::State),
            other => {
                return Err(de::Error::unknown_variant(
                    other,
                    &["message", "login", "logout", "contacts", "error", "state"],
                ))
            }
        };
        event.map_err(de::Error::custom)
    }
}

impl From<MessageEvent> for Event {
    fn from(e: MessageEvent) -> Self {
        Event::Message(Box::new(e))
    }
}

impl From<LoginEvent> for Event {
    fn from(e: LoginEvent) -> Self {
        Event::Login(e)
    }
}

impl From<LogoutEvent> for Event {
    fn from(e: LogoutEvent) -> Self {
        Event::Logout(e)
    }
}

impl From<ContactsEvent> for Event {
    fn from(e: ContactsEvent) -> Self {
        Event::Contacts(e)
    }
}

impl From<ErrorEvent> for Event {
    fn from(e: ErrorEvent) -> Self {
        Event::Error(e)
    }
}

impl From<StateEvent> for Event {
    fn from(e: StateEvent) -> Self {
        Event::State(e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn every_event_kind_round_trips_through_event() {
        let t = datetime!(2026-11-28 16:20:01.75 +01:00);
        let events: Vec<Event> = vec![
            LoginEvent {
                kind: LoginKind,
                account: "home".into(),
                time: t,
                user: LoginUser {
                    id: "@self".into(),
                    name: "Me".into(),
                    uin: 42,
                },
            }
            .into(),
            LogoutEvent {
                kind: LogoutKind,
                account: "home".into(),
                time: t,
                reason: "logged out on the phone".into(),
            }
            .into(),
            ContactsEvent {
                kind: ContactsKind,
                account: "home".into(),
                time: t,
                added: vec![ContactSummary {
                    id: "@a".into(),
                    name: "Alice".into(),
                    remark: None,
                    group: false,
                }],
                modified: vec![],
                removed: vec![],
                ambiguous: vec![],
            }
            .into(),
            ErrorEvent {
                kind: ErrorKind,
                account: "home".into(),
                time: t,
                code: "spool_full".into(),
                message: "dropped 3 events".into(),
            }
            .into(),
            StateEvent {
                kind: StateKind,
                account: "home".into(),
                status: SessionStatus {
                    state: SessionState::LoginRequired,
                    since: t,
                    reason: String::new(),
                },
            }
            .into(),
        ];
        let names: Vec<_> = events.iter().map(Event::name).collect();
        assert_eq!(names, ["login", "logout", "contacts", "error", "state"]);
        let kinds: Vec<_> = events.iter().map(Event::kind).collect();
        assert_eq!(
            kinds,
            [
                Some(Kind::Login),
                Some(Kind::Logout),
                Some(Kind::Contacts),
                Some(Kind::Error),
                None
            ]
        );
        for e in &events {
            let line = serde_json::to_string(e).unwrap();
            assert!(
                line.starts_with(&format!(r#"{{"kind":"{}""#, e.name())),
                "{line}"
            );
            assert!(line.contains(r#""2026-11-28T15:20:01Z""#), "{line}");
            let back: Event = serde_json::from_str(&line).unwrap();
            assert_eq!(back.name(), e.name());
        }
        assert!(serde_json::from_str::<Event>(r#"{"kind":"result"}"#).is_err());
    }
}
