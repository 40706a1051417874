//! What the fake observed and can inject: recorded requests, accepted sends, queued
//! messages, and the faults a test schedules for an endpoint.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::Value;

/// One request as the fake received it, for assertions.
#[derive(Clone, Debug)]
pub struct RequestRecord {
    /// The last path segment: `jslogin`, `login`, `synccheck`, `webwxsync`, …
    pub endpoint: String,
    /// `GET`, `POST`, …
    pub method: String,
    /// The full path.
    pub path: String,
    /// Query parameters, percent-decoded once (the last one wins when repeated).
    pub query: BTreeMap<String, String>,
    /// The query's parameter names in the order they were sent.
    pub query_names: Vec<String>,
    /// Headers by lowercase name; repeated `cookie` headers are joined with `; `, others
    /// with `, `.
    pub headers: BTreeMap<String, String>,
    /// The body, lossily decoded as UTF-8 (a `multipart/` body only up to its first 64 KiB:
    /// the form fields and the start of the file).
    pub body: String,
}

impl RequestRecord {
    /// The body as JSON, if it is JSON.
    pub fn json(&self) -> Option<Value> {
        serde_json::from_str(&self.body).ok()
    }

    /// A cookie the request carried.
    pub fn cookie(&self, name: &str) -> Option<String> {
        crate::server::cookie_pairs(self.headers.get("cookie").map(String::as_str))
            .into_iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v)
    }
}

/// A message a client sent with `webwxsendmsg` and the fake accepted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SentMsg {
    /// ToUserName.
    pub to: String,
    /// Content, exactly as sent.
    pub content: String,
    /// LocalID (= ClientMsgId), as a string whether it came as a number or a string.
    pub local_id: String,
    /// The MsgID the fake answered with.
    pub msg_id: String,
}

/// A queued inbound message's ids.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QueuedMsg {
    /// MsgId, a string of digits.
    pub msg_id: String,
    /// NewMsgId, a number above 2^53 (the same digits as MsgId unless a raw entry said
    /// otherwise).
    pub new_msg_id: u64,
}

/// A failure injected into the next requests to one endpoint
/// (see [`FakeWeChat::fault`](crate::FakeWeChat::fault)).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Fault {
    /// Answer with this HTTP status and an empty body.
    Status(u16),
    /// Answer 200 with a body that is neither the expected JSON nor JS text.
    Garbage,
    /// Wait this long, then handle the request normally.
    Slow(Duration),
}

/// A rule a client broke: of the media endpoints, or of the official client's requests (the
/// request table) (see
/// [`FakeWeChat::violations`](crate::FakeWeChat::violations)).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Violation {
    /// The endpoint (last path segment): `webwxgetvideo`, `webwxuploadmedia`, …
    pub endpoint: String,
    /// What was wrong, e.g. "webwx_data_ticket does not match the cookie".
    pub rule: String,
}

/// A file a client uploaded with `webwxuploadmedia` and the fake accepted (see
/// [`FakeWeChat::uploads`](crate::FakeWeChat::uploads)).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Upload {
    /// The MediaId the last chunk's answer gave (`@crypt_…`).
    pub media_id: String,
    /// The `name` field.
    pub name: String,
    /// Bytes received (equal to `size` and TotalLen).
    pub size: u64,
    /// The FileMd5 the client sent, which matched the bytes (lowercase hex).
    pub md5: String,
    /// SHA-256 of the bytes received (lowercase hex), to compare with what was sent.
    pub sha256: String,
    /// Requests it took: 1, or the `chunks` count.
    pub chunks: usize,
    /// The `mediatype` field: `pic`, `video` or `doc`.
    pub media_type: String,
    /// ToUserName of the `uploadmediarequest`.
    pub to: String,
    /// Whether it went through `webwxcheckupload` with its AESKey and Signature (over 25 MiB).
    pub signed: bool,
}

/// A media message a client sent (`webwxsendmsgimg`, `webwxsendvideomsg`, `webwxsendappmsg`,
/// `webwxsendemoticon`) and the fake accepted (see
/// [`FakeWeChat::sent_media`](crate::FakeWeChat::sent_media)).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SentMedia {
    /// The endpoint, e.g. `webwxsendmsgimg`.
    pub endpoint: String,
    /// Msg.Type: 3, 43 (or 62), 6, 47.
    pub msg_type: u32,
    /// ToUserName.
    pub to: String,
    /// The MediaId sent: Msg.MediaId, or for a file the `<attachid>` of its XML; empty for an
    /// emoticon sent by EMoticonMd5.
    pub media_id: String,
    /// Msg.Content as sent (the `<appmsg>` XML for a file).
    pub content: String,
    /// Msg.Signature, if any.
    pub signature: String,
    /// Msg.EMoticonMd5, if any.
    pub emoticon_md5: String,
    /// LocalID (= ClientMsgId).
    pub local_id: String,
    /// The MsgID the fake answered with.
    pub msg_id: String,
    /// The upload the MediaId came from, if it came from one.
    pub upload: Option<Upload>,
}
