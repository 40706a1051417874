//! The `message` event (DESIGN.md "Inbound event"): one inbound WeChat message as the bus
//! carries it, with the extra field its type names.
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::value::RawValue;
use time::OffsetDateTime;

use super::kind::MessageKind;
use super::timestamp::utc_time;

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
    /// The group's or person's contact key, stable across logins (DESIGN.md "Contact keys");
    /// `null` when it has none this login.
    #[serde(default)]
    pub key: Option<String>,
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
    /// The sender's contact key when the sender is a contact with one this login; `null` for
    /// self, for group members who are not contacts, and for contacts without a key.
    #[serde(default)]
    pub key: Option<String>,
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

/// Why a message's file is not in the store (DESIGN.md "Media").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MediaError {
    /// Over `media.max_file_bytes`: not fetched.
    TooLarge,
    /// WeChat no longer has it.
    Expired,
    /// Every try failed until `media.wait` ran out.
    FetchFailed,
}

/// What the store holds of a downloaded file, as an event tells it: the fields `media` and
/// `file` share (DESIGN.md "Media").
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StoredMedia {
    /// Lowercase hex sha256 of the bytes: the name in the store and in `GET /media/<sha256>`.
    pub sha256: String,
    /// Sniffed from the bytes.
    pub mime: String,
    /// Bytes.
    pub size: u64,
    /// Images: pixels.
    pub width: Option<u32>,
    /// Images: pixels.
    pub height: Option<u32>,
    /// A signed `GET /media/<sha256>` link, when the bridge knows its own base URL.
    pub url: Option<String>,
    /// The bytes, when at most `media.inline_max_bytes`.
    pub base64: Option<String>,
}

/// `media` of image, voice, video and emoticon messages.
///
/// When the kind is in `media.download`, the event goes out once the download is done:
/// `sha256`, `mime` and `size` describe the stored file, or they are `null` and `error` says
/// why. A kind not downloaded carries `null` there and no `error`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Media {
    /// The MsgId the download URL names.
    pub msg_id: String,
    /// Which kind of media.
    pub kind: MediaKind,
    /// Lowercase hex sha256 of the stored bytes; `null` when not stored.
    #[serde(default)]
    pub sha256: Option<String>,
    /// MIME type sniffed from the bytes; `null` when not stored.
    #[serde(default)]
    pub mime: Option<String>,
    /// Bytes stored; `null` when not stored.
    #[serde(default)]
    pub size: Option<u64>,
    /// A file name, when WeChat gave one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Images: width in pixels.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub width: Option<u32>,
    /// Images: height in pixels.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub height: Option<u32>,
    /// Voice only: VoiceLength.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_ms: Option<u64>,
    /// Video only: PlayLength.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_s: Option<u64>,
    /// Signed `GET /media/<sha256>` link (no token needed), when the bridge has a base URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// The bytes, when at most `media.inline_max_bytes`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base64: Option<String>,
    /// Why the file is not stored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<MediaError>,
}

impl Media {
    /// `media` before any download: what the message itself says.
    pub fn new(msg_id: String, kind: MediaKind) -> Media {
        Media {
            msg_id,
            kind,
            sha256: None,
            mime: None,
            size: None,
            name: None,
            width: None,
            height: None,
            duration_ms: None,
            duration_s: None,
            url: None,
            base64: None,
            error: None,
        }
    }

    /// Records the stored file.
    pub fn stored(&mut self, s: StoredMedia) {
        self.sha256 = Some(s.sha256);
        self.mime = Some(s.mime);
        self.size = Some(s.size);
        self.width = s.width;
        self.height = s.height;
        self.url = s.url;
        self.base64 = s.base64;
        self.error = None;
    }

    /// Records why there is no file.
    pub fn failed(&mut self, error: MediaError) {
        self.sha256 = None;
        self.mime = None;
        self.size = None;
        self.error = Some(error);
    }
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

/// `file` of a `file` message. With `file` in `media.download` it gains the stored file's
/// fields as [`Media`] does; not downloaded, `size` is WeChat's FileSize and `sha256` and
/// `mime` are `null`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct File {
    /// The file name.
    pub name: String,
    /// Bytes: of the stored file; else WeChat's FileSize, `null` when that is not a number
    /// or when `error` is set.
    pub size: Option<u64>,
    /// Needed to download it.
    pub media_id: String,
    /// Lowercase hex sha256 of the stored bytes; `null` when not stored.
    #[serde(default)]
    pub sha256: Option<String>,
    /// MIME type sniffed from the bytes; `null` when not stored.
    #[serde(default)]
    pub mime: Option<String>,
    /// Images: width in pixels.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub width: Option<u32>,
    /// Images: height in pixels.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub height: Option<u32>,
    /// Signed `GET /media/<sha256>` link (no token needed), when the bridge has a base URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// The bytes, when at most `media.inline_max_bytes`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base64: Option<String>,
    /// Why the file is not stored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<MediaError>,
}

impl File {
    /// `file` before any download: what the message itself says.
    pub fn new(name: String, size: Option<u64>, media_id: String) -> File {
        File {
            name,
            size,
            media_id,
            sha256: None,
            mime: None,
            width: None,
            height: None,
            url: None,
            base64: None,
            error: None,
        }
    }

    /// Records the stored file.
    pub fn stored(&mut self, s: StoredMedia) {
        self.sha256 = Some(s.sha256);
        self.mime = Some(s.mime);
        self.size = Some(s.size);
        self.width = s.width;
        self.height = s.height;
        self.url = s.url;
        self.base64 = s.base64;
        self.error = None;
    }

    /// Records why there is no file.
    pub fn failed(&mut self, error: MediaError) {
        self.sha256 = None;
        self.mime = None;
        self.size = None;
        self.error = Some(error);
    }
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

impl MessageEvent {
    /// The event as the bus carries it: one line of JSON, the bytes of `serde_json::to_vec`.
    /// The buffer is sized from `raw` and `text`, most of the line, so it is not regrown (and
    /// copied) as it fills.
    pub fn to_json(&self) -> serde_json::Result<Vec<u8>> {
        let text = self.text.as_ref().map_or(0, String::len);
        let mut out = Vec::with_capacity(self.raw.get().len() + text + 512);
        serde_json::to_writer(&mut out, self)?;
        Ok(out)
    }
}

/// A field that may be absent (`None`), `null` (`Some(None)`) or a string.
fn present_or_null<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Option<String>>, D::Error> {
    Option::<String>::deserialize(d).map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{Event, Kind};
    use serde_json::{json, Value};
    use time::macros::datetime;

    pub(in crate::event) fn sample_message() -> MessageEvent {
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
                key: Some("c_familyabcdef".into()),
            },
            from: Sender {
                id: "@a81".into(),
                name: "Alice".into(),
                remark: Some("Mom".into()),
                is_self: false,
                key: None,
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
            r#"{"kind":"message","id":"4839201934821","account":"home","time":"2026-11-28T16:20:01Z","type":"text","msg_type":1,"origin":"contact","chat":{"id":"@@9f3","name":"Family","group":true,"key":"c_familyabcdef"},"from":{"id":"@a81","name":"Alice","remark":"Mom","self":false,"key":null},"text":"dinner at 7?","mentioned":false,"raw":{"MsgId":"4839201934821","NewMsgId":9007199254740993}}"#
        );
    }

    #[test]
    fn to_json_writes_the_bytes_serde_json_writes() {
        let mut m = sample_message();
        assert_eq!(m.to_json().unwrap(), serde_json::to_vec(&m).unwrap());
        m.text = Some("長い".repeat(400));
        assert_eq!(m.to_json().unwrap(), serde_json::to_vec(&m).unwrap());
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
        assert_eq!(event.kind(), Some(Kind::Message));
        assert_eq!(event.name(), "message");
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
        let mut media = Media {
            duration_ms: Some(3200),
            ..Media::new("1".into(), MediaKind::Voice)
        };
        assert_eq!(
            serde_json::to_value(&media).unwrap(),
            json!({"msg_id":"1","kind":"voice","sha256":null,"mime":null,"size":null,"duration_ms":3200})
        );
        media.stored(StoredMedia {
            sha256: "ab".repeat(32),
            mime: "audio/mpeg".into(),
            size: 5,
            url: Some("http://h/media/x".into()),
            ..StoredMedia::default()
        });
        assert_eq!(
            serde_json::to_value(&media).unwrap(),
            json!({"msg_id":"1","kind":"voice","sha256":"ab".repeat(32),"mime":"audio/mpeg",
                   "size":5,"duration_ms":3200,"url":"http://h/media/x"})
        );
        media.failed(MediaError::FetchFailed);
        assert_eq!(
            serde_json::to_value(&media).unwrap()["error"],
            json!("fetch_failed")
        );
        assert_eq!(serde_json::to_value(&media).unwrap()["sha256"], json!(null));
        assert_eq!(
            serde_json::to_value(MessageType::FriendRequest).unwrap(),
            json!("friend_request")
        );
    }
}
