//! The send command (DESIGN.md "Outbound command and result"): its validation, field by field,
//! and the error codes a command's result can carry.
use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use thiserror::Error;
use time::OffsetDateTime;

use super::head;
use super::roster::is_contact_key;
use super::send_media::{parse_media, MediaField, SendKind, SendMedia};
use super::timestamp::{parse_rfc3339, utc_time_opt};

/// Why a command failed (DESIGN.md "Outbound command and result").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// The payload is not UTF-8 JSON.
    InvalidJson,
    /// A field is missing or invalid, or the payload is over `send.max_bytes`.
    InvalidCommand,
    /// `to`/`to_id`/`to_key` names nobody in this login.
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
    /// A `send.limits` limit held the command past its deadline; the message names the limit.
    LimitExceeded,
    /// WeChat answered another non-zero Ret.
    WechatError,
    /// No answer in time.
    Timeout,
    /// A media source the config does not allow: a URL's scheme or host (`media.fetch.
    /// allow_hosts`, private addresses), a path outside `media.paths`.
    MediaForbidden,
    /// A media source over `media.fetch.max_bytes`.
    MediaTooLarge,
    /// A media URL could not be fetched (status, timeout, connection).
    MediaFetchFailed,
    /// WeChat did not take the upload of the media.
    UploadFailed,
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
            ErrorCode::LimitExceeded => "limit_exceeded",
            ErrorCode::WechatError => "wechat_error",
            ErrorCode::Timeout => "timeout",
            ErrorCode::MediaForbidden => "media_forbidden",
            ErrorCode::MediaTooLarge => "media_too_large",
            ErrorCode::MediaFetchFailed => "media_fetch_failed",
            ErrorCode::UploadFailed => "upload_failed",
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A validated send command. Serializable so the durable outbound queue can store it, in the
/// command's own JSON shape (what [`parse_command`] reads).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(into = "QueuedForm", try_from = "QueuedForm")]
pub struct Command {
    /// A name: remark, nickname, group name or `filehelper`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<String>,
    /// A UserName of the current login.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to_id: Option<String>,
    /// A contact key (DESIGN.md "Contact keys"), well-formed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to_key: Option<String>,
    /// The text to send; never empty. Absent only when `media` is given; with both, the
    /// media goes first.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    /// An image, file, video or emoticon to send. In the outbound queue its source is always
    /// `sha256`: other sources are stored before the command is queued.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media: Option<SendMedia>,
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

/// [`Command`] as JSON: the media as its kind's field.
#[derive(Serialize, Deserialize)]
struct QueuedForm {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    to: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    to_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    to_key: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    text: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    image: Option<MediaField>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    file: Option<MediaField>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    video: Option<MediaField>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    emoticon: Option<MediaField>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    request_id: Option<String>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "utc_time_opt"
    )]
    expires_at: Option<OffsetDateTime>,
}

impl From<Command> for QueuedForm {
    fn from(c: Command) -> Self {
        let mut form = QueuedForm {
            to: c.to,
            to_id: c.to_id,
            to_key: c.to_key,
            text: c.text,
            image: None,
            file: None,
            video: None,
            emoticon: None,
            request_id: c.request_id,
            expires_at: c.expires_at,
        };
        if let Some(media) = c.media {
            let field = Some(media.to_field());
            match media.kind {
                SendKind::Image => form.image = field,
                SendKind::File => form.file = field,
                SendKind::Video => form.video = field,
                SendKind::Emoticon => form.emoticon = field,
            }
        }
        form
    }
}

impl TryFrom<QueuedForm> for Command {
    type Error = String;

    fn try_from(f: QueuedForm) -> Result<Self, String> {
        let given = [
            (SendKind::Image, f.image),
            (SendKind::File, f.file),
            (SendKind::Video, f.video),
            (SendKind::Emoticon, f.emoticon),
        ];
        let mut media = None;
        for (kind, field) in given {
            if let Some(field) = field {
                if media.is_some() {
                    return Err("more than one media field".into());
                }
                media = Some(SendMedia::from_field(kind, field)?);
            }
        }
        Ok(Command {
            to: f.to,
            to_id: f.to_id,
            to_key: f.to_key,
            text: f.text,
            media,
            request_id: f.request_id,
            expires_at: f.expires_at,
        })
    }
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

const COMMAND_FIELDS: [&str; 10] = [
    "to",
    "to_id",
    "to_key",
    "text",
    "request_id",
    "expires_at",
    "image",
    "file",
    "video",
    "emoticon",
];

/// Validates a send command payload.
///
/// - Over `max_bytes`: `invalid_command`, decided before anything is parsed. Its request_id is
///   recovered when the first `max_bytes` bytes prove it (a top-level `"request_id"` string
///   whole inside them, see `head.rs`); else the result's `request_id` is null.
/// - Not UTF-8 or not JSON: `invalid_json` (no request_id).
/// - Otherwise every problem is `invalid_command` naming the field: not an object, an unknown
///   field, `text` missing (without media), not a string or empty, more than one media field,
///   a media field without exactly one source or with a bad one (`send_media.rs`), neither or
///   several of `to` / `to_id` / `to_key`, a `to_key` that is not a contact key, an empty
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
            "unknown field `{unknown}`; expected one of `to`, `to_id`, `to_key`, `text`, \
             `request_id`, `expires_at`, `image`, `file`, `video`, `emoticon`"
        )));
    }
    let media = parse_media(&map).map_err(invalid)?;
    let text = match map.get("text") {
        None | Some(Value::Null) if media.is_some() => None,
        None | Some(Value::Null) => {
            return Err(invalid(
                "missing field `text` (or one of `image`, `file`, `video`, `emoticon`)".into(),
            ))
        }
        Some(Value::String(s)) if s.is_empty() => {
            return Err(invalid("`text` must not be empty".into()))
        }
        Some(Value::String(s)) => Some(s.clone()),
        Some(_) => return Err(invalid("`text` must be a string".into())),
    };
    let to = optional_string(&map, "to").map_err(invalid)?;
    let to_id = optional_string(&map, "to_id").map_err(invalid)?;
    let to_key = optional_string(&map, "to_key").map_err(invalid)?;
    match [&to, &to_id, &to_key]
        .iter()
        .filter(|r| r.is_some())
        .count()
    {
        0 => {
            return Err(invalid(
                "missing recipient: give `to` (a name), `to_id` (a UserName) or `to_key` (a \
                 contact key)"
                    .into(),
            ))
        }
        1 => {}
        _ => {
            return Err(invalid(
                "give one of `to`, `to_id` and `to_key`, not several".into(),
            ))
        }
    }
    if let Some(key) = to_key.as_deref().filter(|k| !is_contact_key(k)) {
        return Err(invalid(format!(
            "`to_key` `{key}` is not a contact key (`c_` and 12 characters a-z, 2-7)"
        )));
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
        to_key,
        text,
        media,
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

#[cfg(test)]
mod properties;
#[cfg(test)]
mod tests;
