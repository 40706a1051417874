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
    /// Headers by lowercase name; repeated `cookie` headers are joined with `; `, others
    /// with `, `.
    pub headers: BTreeMap<String, String>,
    /// The body, lossily decoded as UTF-8.
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

/// A rule of the media endpoints a client broke (see
/// [`FakeWeChat::violations`](crate::FakeWeChat::violations)).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Violation {
    /// The endpoint (last path segment): `webwxgetvideo`, `webwxuploadmedia`, …
    pub endpoint: String,
    /// What was wrong, e.g. "webwx_data_ticket does not match the cookie".
    pub rule: String,
}
