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
use std::fmt;

use serde::de::{self, Deserializer, Unexpected};
use serde::ser::Serializer;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use serde_json::{Map, Value};
use thiserror::Error;
use time::format_description::well_known::Rfc3339;
use time::macros::format_description;
use time::{OffsetDateTime, UtcOffset};

mod head;

/// Formats a time as RFC 3339 in UTC with whole seconds: `2026-11-28T16:20:01Z`.
pub fn rfc3339(t: OffsetDateTime) -> String {
    let t = t.to_offset(UtcOffset::UTC);
    let t = t.replace_nanosecond(0).unwrap_or(t);
    t.format(format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second]Z"
    ))
    // Only an I/O error of the target can fail this format, and a String has none.
    .unwrap_or_default()
}

/// Parses any RFC 3339 time and converts it to UTC with whole seconds, so that it reads back
/// unchanged from what [`rfc3339`] writes (a queued command keeps its `expires_at`).
///
/// A time whose UTC year falls outside 0000–9999, which an offset can cause at either end
/// (`9999-12-31T23:59:59-01:00`), is refused as a bad year: RFC 3339 cannot write it, and the
/// conversion would panic.
pub fn parse_rfc3339(s: &str) -> Result<OffsetDateTime, time::error::Parse> {
    let bad_year = time::error::Parse::ParseFromDescription(
        time::error::ParseFromDescription::InvalidComponent("year"),
    );
    let t = OffsetDateTime::parse(s, &Rfc3339)?
        .checked_to_offset(UtcOffset::UTC)
        .filter(|t| (0..=9999).contains(&t.year()))
        .ok_or(bad_year)?;
    Ok(t.replace_nanosecond(0).unwrap_or(t))
}

/// Serde adapter for a required [`OffsetDateTime`] in the [`rfc3339`] form.
/// A field that may be absent (`None`), `null` (`Some(None)`) or a string.
fn present_or_null<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Option<String>>, D::Error> {
    Option::<String>::deserialize(d).map(Some)
}

mod utc_time {
    use super::*;

    pub fn serialize<S: Serializer>(t: &OffsetDateTime, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&rfc3339(*t))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<OffsetDateTime, D::Error> {
        let s = String::deserialize(d)?;
        parse_rfc3339(&s).map_err(de::Error::custom)
    }
}

/// Serde adapter for an optional [`OffsetDateTime`] in the [`rfc3339`] form.
mod utc_time_opt {
    use super::*;

    pub fn serialize<S: Serializer>(t: &Option<OffsetDateTime>, s: S) -> Result<S::Ok, S::Error> {
        match t {
            Some(t) => s.serialize_str(&rfc3339(*t)),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<OffsetDateTime>, D::Error> {
        Option::<String>::deserialize(d)?
            .map(|s| parse_rfc3339(&s).map_err(de::Error::custom))
            .transpose()
    }
}

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

/// The `type` of a message event (DESIGN.md type table).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MessageType {
    /// MsgType 1.
    Text,
    /// MsgType 1 with a map Url, or 48.
    Location,
    /// MsgType 3.
    Image,
    /// MsgType 34.
    Voice,
    /// MsgType 43 and 62.
    Video,
    /// MsgType 47.
    Emoticon,
    /// MsgType 37.
    FriendRequest,
    /// MsgType 42.
    Card,
    /// MsgType 49, AppMsgType 5.
    Link,
    /// MsgType 49, AppMsgType 6.
    File,
    /// MsgType 49, any other AppMsgType.
    App,
    /// MsgType 10000 and 9999.
    System,
    /// MsgType 10002.
    Revoke,
    /// Anything else.
    Other,
}

/// Who wrote a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Origin {
    /// Someone else.
    Contact,
    /// The account owner, on another device (From = self).
    Phone,
    /// This bridge; the event then carries `request_id`.
    Bridge,
}

/// The conversation a message belongs to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Chat {
    /// The group's or the other person's UserName (valid for this login only).
    pub id: String,
    /// The group's name, or the person's remark else nickname; the id when unknown.
    pub name: String,
    /// True for a group chat.
    pub group: bool,
}

/// Who wrote a message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sender {
    /// The sender's UserName.
    pub id: String,
    /// Their group DisplayName if set, else their NickName; the id when unknown.
    pub name: String,
    /// The remark you gave them, `null` when none.
    pub remark: Option<String>,
    /// True when the account owner wrote it.
    #[serde(rename = "self")]
    pub is_self: bool,
}

/// `location` of a `location` message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Location {
    /// The address as WeChat shows it.
    pub label: String,
    /// Latitude, when the original XML carried it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lat: Option<f64>,
    /// Longitude, when the original XML carried it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lon: Option<f64>,
    /// The map link, `null` when none.
    pub url: Option<String>,
}

/// What kind of media a [`Media`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MediaKind {
    /// A picture.
    Image,
    /// A voice note (mp3).
    Voice,
    /// A video or micro-video.
    Video,
    /// An emoticon or sticker.
    Emoticon,
}

/// `media` of image, voice, video and emoticon messages: what is needed to download it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Media {
    /// The MsgId the download URL names.
    pub msg_id: String,
    /// Which kind of media.
    pub kind: MediaKind,
    /// Voice only: VoiceLength.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_ms: Option<u64>,
    /// Video only: PlayLength.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_s: Option<u64>,
}

/// `friend_request` of a `friend_request` message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FriendRequest {
    /// The requester's nickname.
    pub name: String,
    /// Their greeting.
    pub greeting: String,
    /// Needed to accept the request.
    pub ticket: String,
}

/// `card` of a `card` (business card) message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Card {
    /// The carded person's nickname, `null` when unreadable.
    pub name: Option<String>,
    /// Their WeChat id, `null` when none.
    pub alias: Option<String>,
}

/// `link` of a `link` message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Link {
    /// The title, `null` when unreadable.
    pub title: Option<String>,
    /// The URL, `null` when unreadable.
    pub url: Option<String>,
    /// The summary (`des`), `null` when none.
    pub description: Option<String>,
}

/// `file` of a `file` message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct File {
    /// The file name.
    pub name: String,
    /// Bytes; `null` when WeChat's FileSize is not a number.
    pub size: Option<u64>,
    /// Needed to download it.
    pub media_id: String,
}

/// `app` of an `app` message (MsgType 49 other than links and files).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct App {
    /// WeChat's AppMsgType (PROTOCOL.md §8.2).
    pub app_msg_type: u32,
    /// The title, `null` when none.
    pub title: Option<String>,
    /// A URL, when the message has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
}

/// `revoke` of a `revoke` message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Revoke {
    /// The MsgId that was recalled, `null` when unreadable.
    pub revoked_id: Option<String>,
}

/// One inbound message (DESIGN.md "Inbound event"). Exactly one of the extra fields is set, the
/// one [`MessageType`] names, and none for text, system and other.
///
/// `raw` borrows nothing: it is the AddMsgList entry as WeChat sent it, compacted onto one line
/// (member order and number texts untouched, see `wechat::compact`). Deserializing
/// works with `serde_json` only, because of `raw`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MessageEvent {
    /// Always `message`.
    pub kind: MessageKind,
    /// WeChat's MsgId.
    pub id: String,
    /// The configured account name.
    pub account: String,
    /// CreateTime.
    #[serde(with = "utc_time")]
    pub time: OffsetDateTime,
    /// What the message is.
    #[serde(rename = "type")]
    pub message_type: MessageType,
    /// WeChat's MsgType.
    pub msg_type: u32,
    /// Who wrote it.
    pub origin: Origin,
    /// Present only when `origin` is `bridge`: the command's request_id, or `null` when the
    /// command had none.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "present_or_null"
    )]
    pub request_id: Option<Option<String>>,
    /// The conversation.
    pub chat: Chat,
    /// The writer.
    pub from: Sender,
    /// Cleaned text for `text` and `system`; `null` for every other type.
    pub text: Option<String>,
    /// A group message that @-mentions the account owner.
    pub mentioned: bool,
    /// For `location`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<Location>,
    /// For `image`, `voice`, `video`, `emoticon`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media: Option<Media>,
    /// For `friend_request`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub friend_request: Option<FriendRequest>,
    /// For `card`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub card: Option<Card>,
    /// For `link`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub link: Option<Link>,
    /// For `file`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file: Option<File>,
    /// For `app`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app: Option<App>,
    /// For `revoke`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revoke: Option<Revoke>,
    /// The AddMsgList entry as received, without the whitespace between its tokens.
    pub raw: Box<RawValue>,
}

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
    /// A short snake_case code; open-ended, unlike [`ErrorCode`].
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
    /// The `kind` on the wire, for sinks that filter by kind.
    pub fn kind(&self) -> &'static str {
        match self {
            Event::Message(_) => MessageKind::NAME,
            Event::Login(_) => LoginKind::NAME,
            Event::Logout(_) => LogoutKind::NAME,
            Event::Contacts(_) => ContactsKind::NAME,
            Event::Error(_) => ErrorKind::NAME,
            Event::State(_) => StateKind::NAME,
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

/// Why a command failed (DESIGN.md "Outbound command and result").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// The payload is not UTF-8 JSON.
    InvalidJson,
    /// A field is missing or invalid, or the payload is over `send.max_bytes`.
    InvalidCommand,
    /// `to`/`to_id` names nobody.
    UnknownRecipient,
    /// `to` names more than one contact.
    AmbiguousRecipient,
    /// Not in `send.allow`.
    Forbidden,
    /// No session.
    NotLoggedIn,
    /// Not sent before `expires_at` / `send.default_ttl`.
    Expired,
    /// WeChat answered 1205 and retries were exhausted.
    RateLimited,
    /// WeChat answered another non-zero Ret.
    WechatError,
    /// No answer in time.
    Timeout,
}

impl ErrorCode {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::InvalidJson => "invalid_json",
            ErrorCode::InvalidCommand => "invalid_command",
            ErrorCode::UnknownRecipient => "unknown_recipient",
            ErrorCode::AmbiguousRecipient => "ambiguous_recipient",
            ErrorCode::Forbidden => "forbidden",
            ErrorCode::NotLoggedIn => "not_logged_in",
            ErrorCode::Expired => "expired",
            ErrorCode::RateLimited => "rate_limited",
            ErrorCode::WechatError => "wechat_error",
            ErrorCode::Timeout => "timeout",
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A validated send command. Serializable so the durable outbound queue can store it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Command {
    /// A name: remark, nickname, group name or `filehelper`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<String>,
    /// A UserName of the current login.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to_id: Option<String>,
    /// What to send; never empty.
    pub text: String,
    /// Echoed in the result; also the idempotency key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    /// Not sent after this time.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "utc_time_opt"
    )]
    pub expires_at: Option<OffsetDateTime>,
}

/// A command that could not be accepted.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("{code}: {message}")]
pub struct CommandError {
    /// `invalid_json` or `invalid_command`.
    pub code: ErrorCode,
    /// Names the field and the problem.
    pub message: String,
    /// The command's request_id when it could still be read, so the result can carry it.
    pub request_id: Option<String>,
}

const COMMAND_FIELDS: [&str; 5] = ["to", "to_id", "text", "request_id", "expires_at"];

/// Validates a send command payload.
///
/// - Over `max_bytes`: `invalid_command`, decided before anything is parsed. Its request_id is
///   recovered when the first `max_bytes` bytes prove it (a top-level `"request_id"` string
///   whole inside them, see `head.rs`); else the result's `request_id` is null.
/// - Not UTF-8 or not JSON: `invalid_json` (no request_id).
/// - Otherwise every problem is `invalid_command` naming the field: not an object, an unknown
///   field, `text` missing, not a string or empty, neither or both of `to` / `to_id`, an empty
///   or non-string recipient or request_id, an `expires_at` that is not RFC 3339. A `null`
///   optional field counts as absent. A past `expires_at` is accepted here: whether it has
///   passed is the sender's decision (`expired`), made against its clock.
///
/// Every `invalid_command` carries the request_id when it is a non-empty string.
pub fn parse_command(payload: &[u8], max_bytes: usize) -> Result<Command, CommandError> {
    if payload.len() > max_bytes {
        return Err(CommandError {
            code: ErrorCode::InvalidCommand,
            message: format!("command is larger than send.max_bytes ({max_bytes} bytes)"),
            // Only the head: a source may hand over no more than `max_bytes + 1` bytes (stdin
            // does), and a bound keeps a huge payload from costing more than a valid one.
            request_id: head::request_id(&payload[..max_bytes]),
        });
    }
    let json_error = |message: String| CommandError {
        code: ErrorCode::InvalidJson,
        message,
        request_id: None,
    };
    let text = std::str::from_utf8(payload)
        .map_err(|e| json_error(format!("command is not UTF-8: {e}")))?;
    let value: Value =
        serde_json::from_str(text).map_err(|e| json_error(format!("command is not JSON: {e}")))?;
    let Value::Object(map) = value else {
        return Err(CommandError {
            code: ErrorCode::InvalidCommand,
            message: "command must be a JSON object".into(),
            request_id: None,
        });
    };
    let request_id = match map.get("request_id") {
        Some(Value::String(s)) if !s.is_empty() => Some(s.clone()),
        _ => None,
    };
    let invalid = |message: String| CommandError {
        code: ErrorCode::InvalidCommand,
        message,
        request_id: request_id.clone(),
    };
    if let Some(unknown) = map.keys().find(|k| !COMMAND_FIELDS.contains(&k.as_str())) {
        return Err(invalid(format!(
            "unknown field `{unknown}`; expected one of `to`, `to_id`, `text`, `request_id`, `expires_at`"
        )));
    }
    let text = match map.get("text") {
        None | Some(Value::Null) => return Err(invalid("missing field `text`".into())),
        Some(Value::String(s)) if s.is_empty() => {
            return Err(invalid("`text` must not be empty".into()))
        }
        Some(Value::String(s)) => s.clone(),
        Some(_) => return Err(invalid("`text` must be a string".into())),
    };
    let to = optional_string(&map, "to").map_err(invalid)?;
    let to_id = optional_string(&map, "to_id").map_err(invalid)?;
    match (&to, &to_id) {
        (None, None) => {
            return Err(invalid(
                "missing recipient: give `to` (a name) or `to_id` (a UserName)".into(),
            ))
        }
        (Some(_), Some(_)) => return Err(invalid("give either `to` or `to_id`, not both".into())),
        _ => {}
    }
    // Checked for its type even though the lenient read above already took a good value.
    optional_string(&map, "request_id").map_err(invalid)?;
    let expires_at = optional_string(&map, "expires_at")
        .map_err(invalid)?
        .map(|s| {
            parse_rfc3339(&s).map_err(|e| {
                invalid(format!(
                    "`expires_at` is not an RFC 3339 time like 2026-11-28T18:00:00Z: {e}"
                ))
            })
        })
        .transpose()?;
    Ok(Command {
        to,
        to_id,
        text,
        request_id,
        expires_at,
    })
}

/// An optional, non-empty string field; `null` counts as absent.
fn optional_string(map: &Map<String, Value>, field: &str) -> Result<Option<String>, String> {
    match map.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.is_empty() => Err(format!("`{field}` must not be empty")),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(format!("`{field}` must be a string")),
    }
}

/// Where a sent message went.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Recipient {
    /// Its UserName.
    pub id: String,
    /// Its display name.
    pub name: String,
}

/// The `error` of a failed [`SendResult`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResultError {
    /// What kind of failure.
    pub code: ErrorCode,
    /// Plain words.
    pub message: String,
    /// WeChat's Ret, only for `wechat_error`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ret: Option<i64>,
}

/// The answer to one command. Build it with [`SendResult::ok`], [`SendResult::err`] or
/// [`SendResult::wechat_error`], which keep `ok` and the fields consistent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SendResult {
    /// Always `result`.
    pub kind: ResultKind,
    /// The command's request_id; `null` when it had none.
    pub request_id: Option<String>,
    /// True when WeChat accepted the message.
    pub ok: bool,
    /// WeChat's MsgID, on success.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub msg_id: Option<String>,
    /// Where it went, on success.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<Recipient>,
    /// Why not, on failure.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<ResultError>,
    /// True when this answers a repeated `request_id`: nothing was sent for this command, and
    /// the other fields are the first command's result. Absent otherwise.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub duplicate: bool,
}

impl SendResult {
    /// A message WeChat accepted.
    pub fn ok(
        request_id: Option<String>,
        msg_id: impl Into<String>,
        to_id: impl Into<String>,
        to_name: impl Into<String>,
    ) -> Self {
        SendResult {
            kind: ResultKind,
            request_id,
            ok: true,
            msg_id: Some(msg_id.into()),
            to: Some(Recipient {
                id: to_id.into(),
                name: to_name.into(),
            }),
            error: None,
            duplicate: false,
        }
    }

    /// A failure without a WeChat Ret.
    pub fn err(request_id: Option<String>, code: ErrorCode, message: impl Into<String>) -> Self {
        SendResult {
            kind: ResultKind,
            request_id,
            ok: false,
            msg_id: None,
            to: None,
            error: Some(ResultError {
                code,
                message: message.into(),
                ret: None,
            }),
            duplicate: false,
        }
    }

    /// WeChat refused the message with `ret`.
    pub fn wechat_error(request_id: Option<String>, ret: i64, message: impl Into<String>) -> Self {
        let mut result = SendResult::err(request_id, ErrorCode::WechatError, message);
        if let Some(error) = result.error.as_mut() {
            error.ret = Some(ret);
        }
        result
    }
}

impl From<CommandError> for SendResult {
    fn from(e: CommandError) -> Self {
        SendResult::err(e.request_id, e.code, e.message)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use time::macros::datetime;

    const MAX: usize = 65536;

    fn sample_message() -> MessageEvent {
        MessageEvent {
            kind: MessageKind,
            id: "4839201934821".into(),
            account: "home".into(),
            time: datetime!(2026-11-28 16:20:01 UTC),
            message_type: MessageType::Text,
            msg_type: 1,
            origin: Origin::Contact,
            request_id: None,
            chat: Chat {
                id: "@@9f3".into(),
                name: "Family".into(),
                group: true,
            },
            from: Sender {
                id: "@a81".into(),
                name: "Alice".into(),
                remark: Some("Mom".into()),
                is_self: false,
            },
            text: Some("dinner at 7?".into()),
            mentioned: false,
            location: None,
            media: None,
            friend_request: None,
            card: None,
            link: None,
            file: None,
            app: None,
            revoke: None,
            raw: RawValue::from_string(
                r#"{"MsgId":"4839201934821","NewMsgId":9007199254740993}"#.into(),
            )
            .unwrap(),
        }
    }

    #[test]
    fn message_event_serializes_exactly_as_the_contract() {
        let line = serde_json::to_string(&sample_message()).unwrap();
        assert_eq!(
            line,
            r#"{"kind":"message","id":"4839201934821","account":"home","time":"2026-11-28T16:20:01Z","type":"text","msg_type":1,"origin":"contact","chat":{"id":"@@9f3","name":"Family","group":true},"from":{"id":"@a81","name":"Alice","remark":"Mom","self":false},"text":"dinner at 7?","mentioned":false,"raw":{"MsgId":"4839201934821","NewMsgId":9007199254740993}}"#
        );
    }

    #[test]
    fn message_event_round_trips_and_keeps_raw_numbers_exact() {
        let mut m = sample_message();
        m.origin = Origin::Bridge;
        m.request_id = Some(Some("r-17".into()));
        m.from.remark = None;
        let line = serde_json::to_string(&m).unwrap();
        assert!(line.contains(r#""request_id":"r-17""#));
        assert!(line.contains(r#""remark":null"#));
        let back: MessageEvent = serde_json::from_str(&line).unwrap();
        assert_eq!(back.request_id, Some(Some("r-17".to_owned())));
        m.request_id = Some(None);
        let line_null = serde_json::to_string(&m).unwrap();
        let back: MessageEvent = serde_json::from_str(&line_null).unwrap();
        assert_eq!(
            back.request_id,
            Some(None),
            "null stays distinct from absent"
        );
        assert_eq!(back.time, m.time);
        assert_eq!(back.raw.get(), m.raw.get());
        let event: Event = serde_json::from_str(&line).unwrap();
        assert_eq!(event.kind(), "message");
        assert_eq!(event.account(), "home");
    }

    #[test]
    fn request_id_is_absent_unless_the_bridge_sent_it() {
        let v: Value = serde_json::to_value(sample_message()).unwrap();
        assert!(v.get("request_id").is_none());
        assert!(v.get("location").is_none());
    }

    #[test]
    fn extra_fields_leave_out_only_the_optional_parts() {
        let loc = Location {
            label: "Tiananmen".into(),
            lat: None,
            lon: None,
            url: None,
        };
        assert_eq!(
            serde_json::to_value(&loc).unwrap(),
            json!({"label":"Tiananmen","url":null})
        );
        let media = Media {
            msg_id: "1".into(),
            kind: MediaKind::Voice,
            duration_ms: Some(3200),
            duration_s: None,
        };
        assert_eq!(
            serde_json::to_value(&media).unwrap(),
            json!({"msg_id":"1","kind":"voice","duration_ms":3200})
        );
        assert_eq!(
            serde_json::to_value(MessageType::FriendRequest).unwrap(),
            json!("friend_request")
        );
    }

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
        let kinds: Vec<_> = events.iter().map(Event::kind).collect();
        assert_eq!(kinds, ["login", "logout", "contacts", "error", "state"]);
        for e in &events {
            let line = serde_json::to_string(e).unwrap();
            assert!(
                line.starts_with(&format!(r#"{{"kind":"{}""#, e.kind())),
                "{line}"
            );
            assert!(line.contains(r#""2026-11-28T15:20:01Z""#), "{line}");
            let back: Event = serde_json::from_str(&line).unwrap();
            assert_eq!(back.kind(), e.kind());
        }
        assert!(serde_json::from_str::<Event>(r#"{"kind":"result"}"#).is_err());
    }

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

    #[test]
    fn rfc3339_is_utc_whole_seconds_with_z() {
        assert_eq!(
            rfc3339(datetime!(2026-11-28 18:20:01.999 +02:00)),
            "2026-11-28T16:20:01Z"
        );
        assert_eq!(rfc3339(OffsetDateTime::UNIX_EPOCH), "1970-01-01T00:00:00Z");
    }

    #[test]
    fn send_results_serialize_exactly_as_the_contract() {
        let ok = SendResult::ok(Some("r-17".into()), "2038", "@a81", "Alice");
        assert_eq!(
            serde_json::to_string(&ok).unwrap(),
            r#"{"kind":"result","request_id":"r-17","ok":true,"msg_id":"2038","to":{"id":"@a81","name":"Alice"}}"#
        );
        let err = SendResult::err(None, ErrorCode::UnknownRecipient, "no contact named `Bob`");
        assert_eq!(
            serde_json::to_string(&err).unwrap(),
            r#"{"kind":"result","request_id":null,"ok":false,"error":{"code":"unknown_recipient","message":"no contact named `Bob`"}}"#
        );
        let wx = SendResult::wechat_error(Some("r-18".into()), -1, "WeChat refused");
        assert_eq!(
            serde_json::to_string(&wx).unwrap(),
            r#"{"kind":"result","request_id":"r-18","ok":false,"error":{"code":"wechat_error","message":"WeChat refused","ret":-1}}"#
        );
        let back: SendResult = serde_json::from_str(&serde_json::to_string(&wx).unwrap()).unwrap();
        assert_eq!(back, wx);
    }

    #[test]
    fn error_codes_are_snake_case_on_the_wire() {
        for code in [
            ErrorCode::InvalidJson,
            ErrorCode::InvalidCommand,
            ErrorCode::UnknownRecipient,
            ErrorCode::AmbiguousRecipient,
            ErrorCode::Forbidden,
            ErrorCode::NotLoggedIn,
            ErrorCode::Expired,
            ErrorCode::RateLimited,
            ErrorCode::WechatError,
            ErrorCode::Timeout,
        ] {
            assert_eq!(
                serde_json::to_value(code).unwrap(),
                Value::String(code.as_str().into())
            );
        }
    }

    fn command_err(payload: &str) -> CommandError {
        parse_command(payload.as_bytes(), MAX).unwrap_err()
    }

    #[test]
    fn valid_commands_are_accepted() {
        let c = parse_command(
            br#"{"to":"Mom","text":"on my way","request_id":"r-17"}"#,
            MAX,
        )
        .unwrap();
        assert_eq!(c.to.as_deref(), Some("Mom"));
        assert_eq!(c.to_id, None);
        assert_eq!(c.text, "on my way");
        assert_eq!(c.request_id.as_deref(), Some("r-17"));
        let c = parse_command(
            br#"{"to_id":"@a81","text":"x","expires_at":"2026-11-28T19:00:00+01:00","to":null}"#,
            MAX,
        )
        .unwrap();
        assert_eq!(c.to_id.as_deref(), Some("@a81"));
        assert_eq!(c.expires_at, Some(datetime!(2026-11-28 18:00:00 UTC)));
        let stored = serde_json::to_string(&c).unwrap();
        assert_eq!(
            stored,
            r#"{"to_id":"@a81","text":"x","expires_at":"2026-11-28T18:00:00Z"}"#
        );
        assert_eq!(serde_json::from_str::<Command>(&stored).unwrap(), c);
    }

    #[test]
    fn oversized_payload_is_rejected_before_parsing() {
        let big = vec![b'{'; 10 * 1024 * 1024];
        let e = parse_command(&big, MAX).unwrap_err();
        assert_eq!(
            e.code,
            ErrorCode::InvalidCommand,
            "the size decides, not the broken JSON"
        );
        assert!(e.message.contains("send.max_bytes"), "{}", e.message);
        let exact = br#"{"to":"a","text":"b"}"#;
        assert!(parse_command(exact, exact.len()).is_ok());
        assert!(parse_command(exact, exact.len() - 1).is_err());
    }

    #[test]
    fn an_oversized_command_keeps_the_request_id_its_head_proves() {
        let big = format!(
            r#"{{"request_id":"r-big","to":"Mom","text":"{}"}}"#,
            "x".repeat(100_000)
        );
        let e = parse_command(big.as_bytes(), MAX).unwrap_err();
        assert_eq!(e.code, ErrorCode::InvalidCommand);
        assert!(e.message.contains("send.max_bytes"), "{}", e.message);
        assert_eq!(e.request_id.as_deref(), Some("r-big"));
        assert_eq!(SendResult::from(e).request_id.as_deref(), Some("r-big"));
        // Past the head it cannot be seen: null, as for a command without one.
        let late = format!(
            r#"{{"to":"Mom","text":"{}","request_id":"r-late"}}"#,
            "x".repeat(100_000)
        );
        assert_eq!(
            parse_command(late.as_bytes(), MAX).unwrap_err().request_id,
            None
        );
    }

    #[test]
    fn non_json_payloads_are_invalid_json() {
        assert_eq!(
            parse_command(b"\xff\xfe{}", MAX).unwrap_err().code,
            ErrorCode::InvalidJson
        );
        assert_eq!(command_err("{\"to\":").code, ErrorCode::InvalidJson);
        assert_eq!(command_err("hello").code, ErrorCode::InvalidJson);
    }

    #[test]
    fn invalid_commands_name_the_field() {
        let cases = [
            ("[1,2]", "object"),
            (r#""text""#, "object"),
            (r#"{"to":"Mom"}"#, "`text`"),
            (r#"{"to":"Mom","text":""}"#, "`text`"),
            (r#"{"to":"Mom","text":5}"#, "`text`"),
            (r#"{"text":"hi"}"#, "`to`"),
            (r#"{"to":"Mom","to_id":"@a","text":"hi"}"#, "not both"),
            (r#"{"to":"","text":"hi"}"#, "`to`"),
            (r#"{"to_id":7,"text":"hi"}"#, "`to_id`"),
            (
                r#"{"to":"Mom","text":"hi","request_id":17}"#,
                "`request_id`",
            ),
            (
                r#"{"to":"Mom","text":"hi","expires_at":"tomorrow"}"#,
                "`expires_at`",
            ),
            (
                r#"{"to":"Mom","text":"hi","expires_at":1700000000}"#,
                "`expires_at`",
            ),
            (r#"{"to":"Mom","text":"hi","priority":1}"#, "`priority`"),
        ];
        for (payload, field) in cases {
            let e = command_err(payload);
            assert_eq!(e.code, ErrorCode::InvalidCommand, "{payload}");
            assert!(e.message.contains(field), "{payload}: {}", e.message);
        }
    }

    #[test]
    fn expires_at_beyond_the_years_rfc3339_can_write_is_invalid() {
        // Both are valid RFC 3339, but in UTC they fall in year 10000 and year -1.
        for t in ["9999-12-31T23:59:59-01:00", "0000-01-01T00:00:00+01:00"] {
            let e = command_err(&format!(r#"{{"to":"a","text":"b","expires_at":"{t}"}}"#));
            assert_eq!(e.code, ErrorCode::InvalidCommand, "{t}");
            assert!(e.message.contains("`expires_at`"), "{}", e.message);
        }
    }

    #[test]
    fn expires_at_is_kept_to_the_second_as_the_queue_stores_it() {
        for t in ["2026-11-28T18:00:00.999Z", "2016-12-31T23:59:60Z"] {
            let payload = format!(r#"{{"to":"a","text":"b","expires_at":"{t}"}}"#);
            let c = parse_command(payload.as_bytes(), MAX).unwrap();
            let stored = serde_json::to_string(&c).unwrap();
            assert_eq!(serde_json::from_str::<Command>(&stored).unwrap(), c, "{t}");
        }
    }

    #[test]
    fn request_id_is_recovered_from_a_bad_command() {
        let e = command_err(r#"{"request_id":"r-18","to":"Mom","text":""}"#);
        assert_eq!(e.request_id.as_deref(), Some("r-18"));
        let e = command_err(r#"{"request_id":"r-19","colour":"red"}"#);
        assert_eq!(e.request_id.as_deref(), Some("r-19"));
        let result = SendResult::from(e);
        assert_eq!(result.request_id.as_deref(), Some("r-19"));
        assert_eq!(result.error.unwrap().code, ErrorCode::InvalidCommand);
        assert_eq!(
            command_err(r#"{"request_id":5,"text":"x"}"#).request_id,
            None
        );
    }
}

/// Properties of command parsing on generated payloads (proptest).
#[cfg(test)]
mod properties {
    use proptest::prelude::*;
    use serde_json::json;

    use super::*;

    /// Payloads near the shape of a command: valid ones, broken ones and raw bytes.
    fn payload() -> impl Strategy<Value = Vec<u8>> {
        let field = prop_oneof![
            Just(Value::Null),
            Just(json!("")),
            "[a-zA-Z@ 😄]{1,12}".prop_map(Value::String),
            any::<i64>().prop_map(Value::from),
        ];
        let key =
            prop::sample::select(vec!["to", "to_id", "text", "request_id", "expires_at", "x"]);
        prop_oneof![
            prop::collection::btree_map(key, field, 0..5)
                .prop_map(|m| serde_json::to_vec(&m).unwrap()),
            prop::collection::vec(any::<u8>(), 0..64),
        ]
    }

    /// A time RFC 3339 can write: years 1 to 9999, whole seconds.
    fn time() -> impl Strategy<Value = OffsetDateTime> {
        (-62_135_596_800i64..=253_402_300_799)
            .prop_map(|s| OffsetDateTime::from_unix_timestamp(s).unwrap())
    }

    proptest! {
        #[test]
        fn beyond_max_bytes_the_size_alone_decides(p in payload(), max in 0usize..96) {
            let limited = parse_command(&p, max);
            if p.len() > max {
                let e = limited.unwrap_err();
                prop_assert_eq!(e.code, ErrorCode::InvalidCommand);
                prop_assert!(e.message.contains("send.max_bytes"));
                // A request_id read from the head is the one the whole payload carries.
                if e.request_id.is_some() {
                    let whole = match parse_command(&p, usize::MAX) {
                        Ok(c) => c.request_id,
                        Err(e) => e.request_id,
                    };
                    prop_assert_eq!(e.request_id, whole);
                }
            } else {
                prop_assert_eq!(limited, parse_command(&p, usize::MAX));
            }
        }

        #[test]
        fn a_well_formed_command_is_read_as_written(
            by_id in any::<bool>(),
            to in "[^\u{0}]{1,20}",
            text in "(?s).{1,40}",
            request_id in proptest::option::of("[ -~]{1,20}"),
            expires_at in proptest::option::of(time()),
        ) {
            let mut payload = json!({ "text": text });
            payload[if by_id { "to_id" } else { "to" }] = json!(to);
            if let Some(r) = &request_id {
                payload["request_id"] = json!(r);
            }
            if let Some(t) = expires_at {
                payload["expires_at"] = json!(rfc3339(t));
            }
            let bytes = serde_json::to_vec(&payload).unwrap();
            let cmd = parse_command(&bytes, bytes.len()).unwrap();
            prop_assert_eq!(cmd.to_id.clone(), by_id.then(|| to.clone()));
            prop_assert_eq!(cmd.to.clone(), (!by_id).then(|| to.clone()));
            prop_assert_eq!(&cmd.text, &text);
            prop_assert_eq!(&cmd.request_id, &request_id);
            prop_assert_eq!(cmd.expires_at, expires_at);
            let stored = serde_json::to_string(&cmd).unwrap();
            prop_assert_eq!(serde_json::from_str::<Command>(&stored).unwrap(), cmd);
        }

        #[test]
        fn rfc3339_times_read_back_exactly(t in time()) {
            prop_assert_eq!(parse_rfc3339(&rfc3339(t)).unwrap(), t);
        }
    }
}
