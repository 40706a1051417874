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

/// How a contact key starts.
pub const KEY_PREFIX: &str = "c_";

/// How many base32 characters follow [`KEY_PREFIX`] (60 random bits).
pub const KEY_CHARS: usize = 12;

/// True for a well-formed contact key: `c_` and 12 characters of RFC 4648's base32 alphabet in
/// lower case (`a`–`z`, `2`–`7`). Lower case because keys end up in topic names, file names and
/// YAML, where case-insensitive eyes and tools are common; upper case is not accepted, so one
/// key has one spelling.
pub fn is_contact_key(s: &str) -> bool {
    s.strip_prefix(KEY_PREFIX).is_some_and(|rest| {
        rest.len() == KEY_CHARS
            && rest
                .bytes()
                .all(|b| b.is_ascii_lowercase() || (b'2'..=b'7').contains(&b))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_is_c_and_twelve_lower_case_base32_characters() {
        assert!(is_contact_key("c_abcdefgh2345"));
        assert!(is_contact_key("c_zzzzzzzz7777"));
        for bad in [
            "c_abcdefgh234",
            "c_abcdefgh23456",
            "c_ABCDEFGH2345",
            "c_abcdefgh2301",
            "d_abcdefgh2345",
            "abcdefgh2345",
            "",
        ] {
            assert!(!is_contact_key(bad), "{bad}");
        }
    }
}
