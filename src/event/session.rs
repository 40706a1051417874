//! The session events (DESIGN.md "Inbound event", "Session state JSON"): `login`, `logout`,
//! `contacts`, `error` and `state`, and the login QR the state topics publish beside them.
use std::fmt;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use super::kind::{ContactsKind, ErrorKind, LoginKind, LogoutKind, StateKind};
use super::timestamp::{rfc3339, utc_time};

/// The logged-in user in a [`LoginEvent`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LoginUser {
    /// Self's UserName for this login.
    pub id: String,
    /// Self's NickName, cleaned.
    pub name: String,
    /// The account's numeric uin, stable across logins.
    pub uin: u64,
}

/// `{"kind":"login"}`: a session started.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LoginEvent {
    /// Always `login`.
    pub kind: LoginKind,
    /// The configured account name.
    pub account: String,
    /// When.
    #[serde(with = "utc_time")]
    pub time: OffsetDateTime,
    /// Who logged in.
    pub user: LoginUser,
}

/// `{"kind":"logout"}`: the session ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogoutEvent {
    /// Always `logout`.
    pub kind: LogoutKind,
    /// The configured account name.
    pub account: String,
    /// When.
    #[serde(with = "utc_time")]
    pub time: OffsetDateTime,
    /// Why, in plain words.
    pub reason: String,
}

/// A contact as `contacts` events list it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ContactSummary {
    /// UserName (valid for this login only).
    pub id: String,
    /// NickName (a group's name), cleaned.
    pub name: String,
    /// RemarkName, cleaned; `null` when none.
    pub remark: Option<String>,
    /// True for a group.
    pub group: bool,
}

/// `{"kind":"contacts"}`: the contact book changed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContactsEvent {
    /// Always `contacts`.
    pub kind: ContactsKind,
    /// The configured account name.
    pub account: String,
    /// When.
    #[serde(with = "utc_time")]
    pub time: OffsetDateTime,
    /// New contacts.
    pub added: Vec<ContactSummary>,
    /// Changed contacts.
    pub modified: Vec<ContactSummary>,
    /// Removed contacts.
    pub removed: Vec<ContactSummary>,
    /// Contacts that got no key this login because they matched ambiguously (DESIGN.md
    /// "Contact keys"); empty when every contact was bound or given a new key.
    #[serde(default)]
    pub ambiguous: Vec<Ambiguous>,
}

/// A contact of this login that could not be told apart from another, in a [`ContactsEvent`].
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Ambiguous {
    /// Its UserName (valid for this login only).
    pub id: String,
    /// Its remark, else its NickName (a group's name), cleaned.
    pub name: String,
    /// The stored keys it matched, or that another contact matched as well; empty when it is
    /// new and looks exactly like another new contact, so no key could stay unambiguous.
    pub candidates: Vec<String>,
}

/// `{"kind":"error"}`: something the user should know went wrong.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorEvent {
    /// Always `error`.
    pub kind: ErrorKind,
    /// The configured account name.
    pub account: String,
    /// When.
    #[serde(with = "utc_time")]
    pub time: OffsetDateTime,
    /// A short snake_case code; open-ended, unlike [`ErrorCode`](super::ErrorCode).
    pub code: String,
    /// Plain words.
    pub message: String,
}

/// The session state (DESIGN.md "Session state JSON").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SessionState {
    /// The process is starting.
    Starting,
    /// Logged in and syncing.
    Online,
    /// A scan or confirmation is awaited.
    LoginRequired,
    /// WeChat refused the account; waits for a re-login request.
    LoginForbidden,
    /// Stopped.
    Offline,
}

impl SessionState {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            SessionState::Starting => "starting",
            SessionState::Online => "online",
            SessionState::LoginRequired => "login_required",
            SessionState::LoginForbidden => "login_forbidden",
            SessionState::Offline => "offline",
        }
    }
}

impl fmt::Display for SessionState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The retained state payload exactly as DESIGN.md shows it: `{"state","since","reason"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionStatus {
    /// The state.
    pub state: SessionState,
    /// When it was entered.
    #[serde(with = "utc_time")]
    pub since: OffsetDateTime,
    /// Human-readable, may be empty.
    pub reason: String,
}

/// The state as a stream event (stdout, NATS): [`SessionStatus`] plus `kind` and `account`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StateEvent {
    /// Always `state`.
    pub kind: StateKind,
    /// The configured account name.
    pub account: String,
    /// The state itself.
    #[serde(flatten)]
    pub status: SessionStatus,
}

/// The login QR while a scan is awaited (DESIGN.md topics `/qr` and `/qr/png`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoginQr {
    /// What the QR encodes: `https://login.weixin.qq.com/l/<uuid>`.
    pub url: String,
    /// The QR as PNG bytes (published raw on `/qr/png`).
    pub png: Vec<u8>,
    /// When WeChat will expire it (an estimate: WeChat does not say).
    pub expires_at: OffsetDateTime,
}

impl LoginQr {
    /// The retained `/qr` payload: `{"url","png_base64","expires_at"}`.
    pub fn to_json(&self) -> Vec<u8> {
        use base64::Engine as _;
        serde_json::to_vec(&serde_json::json!({
            "url": self.url,
            "png_base64": base64::engine::general_purpose::STANDARD.encode(&self.png),
            "expires_at": rfc3339(self.expires_at),
        }))
        .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn state_event_is_the_design_payload_plus_kind_and_account() {
        let status = SessionStatus {
            state: SessionState::LoginForbidden,
            since: datetime!(2026-11-28 16:20:01 UTC),
            reason: "ret 1203".into(),
        };
        assert_eq!(
            serde_json::to_string(&status).unwrap(),
            r#"{"state":"login_forbidden","since":"2026-11-28T16:20:01Z","reason":"ret 1203"}"#
        );
        let event = StateEvent {
            kind: StateKind,
            account: "home".into(),
            status,
        };
        assert_eq!(
            serde_json::to_string(&event).unwrap(),
            r#"{"kind":"state","account":"home","state":"login_forbidden","since":"2026-11-28T16:20:01Z","reason":"ret 1203"}"#
        );
    }

    #[test]
    fn a_line_of_another_kind_does_not_parse_as_this_kind() {
        let line = r#"{"kind":"logout","account":"a","time":"2026-11-28T16:20:01Z","reason":"x"}"#;
        assert!(serde_json::from_str::<LoginEvent>(line).is_err());
        assert!(serde_json::from_str::<LogoutEvent>(line).is_ok());
    }
}
