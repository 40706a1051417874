//! The contact list with stable keys (DESIGN.md "Contact keys"): what the retained
//! `<base>/<account>/contacts` topic, the NATS `<prefix>.<account>.contacts.get` request and
//! `GET /contacts` list for the current login.
use serde::{Deserialize, Serialize};

/// One contact or group of the current login.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RosterEntry {
    /// The stable key (`c_` + 12 base32 characters); None while the contact is ambiguous.
    pub key: Option<String>,
    /// The web id of this login (`@…`).
    pub id: String,
    /// The display name (NickName, cleaned).
    pub name: String,
    /// The RemarkName the account gave it, if any.
    pub remark: Option<String>,
    /// True for a group.
    pub group: bool,
    /// A group's member count, when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub members: Option<u32>,
}

/// The whole list, as published.
pub type Roster = Vec<RosterEntry>;
