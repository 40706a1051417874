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
mod tests {
    use super::*;
    use crate::event::SendResult;
    use time::macros::datetime;

    const MAX: usize = 65536;

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
            ErrorCode::LimitExceeded,
            ErrorCode::WechatError,
            ErrorCode::Timeout,
            ErrorCode::MediaForbidden,
            ErrorCode::MediaTooLarge,
            ErrorCode::MediaFetchFailed,
            ErrorCode::UploadFailed,
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
        assert_eq!(c.text.as_deref(), Some("on my way"));
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
    fn a_contact_key_names_the_recipient_and_is_queued_as_given() {
        let c = parse_command(br#"{"to_key":"c_abcdefgh2345","text":"hi"}"#, MAX).unwrap();
        assert_eq!(c.to_key.as_deref(), Some("c_abcdefgh2345"));
        assert_eq!((c.to, c.to_id), (None, None));
        let stored = serde_json::to_string(
            &parse_command(br#"{"to_key":"c_abcdefgh2345","text":"hi"}"#, MAX).unwrap(),
        )
        .unwrap();
        assert_eq!(stored, r#"{"to_key":"c_abcdefgh2345","text":"hi"}"#);
    }

    #[test]
    fn media_may_come_with_or_without_text() {
        let c = parse_command(
            br#"{"to":"Family","image":{"url":"https://cam.example/snap.jpg"},"text":"door"}"#,
            MAX,
        )
        .unwrap();
        let media = c.media.unwrap();
        assert_eq!(media.kind, crate::event::SendKind::Image);
        assert_eq!(
            media.source,
            crate::event::MediaSource::Url("https://cam.example/snap.jpg".into())
        );
        assert_eq!(c.text.as_deref(), Some("door"));
        let c = parse_command(
            format!(
                r#"{{"to":"Mom","file":{{"sha256":"{}","name":"a.pdf"}}}}"#,
                "0".repeat(64)
            )
            .as_bytes(),
            MAX,
        )
        .unwrap();
        assert_eq!(c.text, None);
        let stored = serde_json::to_string(&c).unwrap();
        assert_eq!(
            stored,
            format!(
                r#"{{"to":"Mom","file":{{"sha256":"{}","name":"a.pdf"}}}}"#,
                "0".repeat(64)
            ),
            "the queue holds the command's own shape"
        );
        assert_eq!(parse_command(stored.as_bytes(), MAX).unwrap(), c);
        assert_eq!(c.media.unwrap().name.as_deref(), Some("a.pdf"));
        for payload in [
            r#"{"to":"Mom","image":{"url":"https://a/b"},"text":""}"#,
            r#"{"to":"Mom","image":{},"text":"hi"}"#,
            r#"{"image":{"url":"https://a/b"}}"#,
        ] {
            assert_eq!(
                command_err(payload).code,
                ErrorCode::InvalidCommand,
                "{payload}"
            );
        }
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
            (r#"{"to":"Mom","to_id":"@a","text":"hi"}"#, "not several"),
            (
                r#"{"to_id":"@a","to_key":"c_abcdefgh2345","text":"hi"}"#,
                "not several",
            ),
            (
                r#"{"to_key":"C_ABCDEFGH2345","text":"hi"}"#,
                "C_ABCDEFGH2345",
            ),
            (r#"{"to_key":"Mom","text":"hi"}"#, "`to_key` `Mom`"),
            (r#"{"to_key":5,"text":"hi"}"#, "`to_key`"),
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

#[cfg(test)]
mod properties {
    use proptest::prelude::*;
    use serde_json::json;

    use super::*;
    use crate::event::rfc3339;
    use crate::event::timestamp::properties::time;

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
            prop_assert_eq!(cmd.text.as_deref(), Some(text.as_str()));
            prop_assert_eq!(&cmd.request_id, &request_id);
            prop_assert_eq!(cmd.expires_at, expires_at);
            let stored = serde_json::to_string(&cmd).unwrap();
            prop_assert_eq!(serde_json::from_str::<Command>(&stored).unwrap(), cmd);
        }
    }
}
