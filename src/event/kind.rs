//! The `kind` field every event and result carries: one unit type per kind, which serializes as
//! its fixed name and accepts only that name, so a line of one kind never parses as another;
//! and [`Kind`], the one enum of the kinds that go through the spool.
use serde::de::{self, Deserializer, Unexpected};
use serde::ser::Serializer;
use serde::{Deserialize, Serialize};

/// Declares a unit type that serializes as one fixed string and accepts only that string, so
/// each event carries its own `kind` and a line of another kind fails to parse as this one.
macro_rules! kind_tag {
    ($(#[$doc:meta])* $name:ident = $lit:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
        pub struct $name;

        impl $name {
            /// The `kind` value on the wire.
            pub const NAME: &'static str = $lit;
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str($lit)
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                if s == $lit {
                    Ok($name)
                } else {
                    Err(de::Error::invalid_value(Unexpected::Str(&s), &$lit))
                }
            }
        }
    };
}

kind_tag!(
    /// `kind: "message"`.
    MessageKind = "message"
);
kind_tag!(
    /// `kind: "login"`.
    LoginKind = "login"
);
kind_tag!(
    /// `kind: "logout"`.
    LogoutKind = "logout"
);
kind_tag!(
    /// `kind: "contacts"`.
    ContactsKind = "contacts"
);
kind_tag!(
    /// `kind: "error"`.
    ErrorKind = "error"
);
kind_tag!(
    /// `kind: "state"`.
    StateKind = "state"
);
kind_tag!(
    /// `kind: "result"`.
    ResultKind = "result"
);
kind_tag!(
    /// `kind: "receipt"`.
    ReceiptKind = "receipt"
);

/// What kind of payload a spooled entry is; decides where sinks publish it. Every kind the bus
/// carries through the spool: all events but `state` (published retained, never spooled), and
/// the result and the receipts of a command.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// An inbound message (`/message`).
    Message,
    /// A login event (`/event`).
    Login,
    /// A logout event (`/event`).
    Logout,
    /// A contacts event (`/event`).
    Contacts,
    /// An error event (`/event`).
    Error,
    /// The result of a send command (`/send/result`).
    Result,
    /// A receipt of a send command (`/send/receipt`).
    Receipt,
}

impl Kind {
    /// The `kind` string of the payload.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Message => MessageKind::NAME,
            Kind::Login => LoginKind::NAME,
            Kind::Logout => LogoutKind::NAME,
            Kind::Contacts => ContactsKind::NAME,
            Kind::Error => ErrorKind::NAME,
            Kind::Result => ResultKind::NAME,
            Kind::Receipt => ReceiptKind::NAME,
        }
    }
}
