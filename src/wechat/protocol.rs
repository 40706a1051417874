//! Pure protocol: the wire types of the WeChat web protocol (PROTOCOL.md), the parsers for its
//! JS-text and XML bodies (in `bodies.rs`, re-exported here), and the decisions its return codes
//! imply. No I/O lives here.
use std::borrow::Cow;

use serde::de::{self, Deserializer};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use super::compact::{compact, compact_checked};

/// The web client's application id, sent on `jslogin` (PROTOCOL.md §1.1).
pub const APP_ID: &str = "wx782c26e4c19acffb";

/// The desktop-mode (UOS) `extspam` header of PROTOCOL.md §1.5, sent only on `webwxnewloginpage`.
pub const EXTSPAM: &str = concat!(
    "Go8FCIkFEokFCggwMDAwMDAwMRAGGvAESySibk50w5Wb3uTl2c2h64jVVrV7gNs06GFlWplHQbY/5FfiO++1yH4ykCyNPWKXmco+",
    "wfQzK5R98D3so7rJ5LmGFvBLjGceleySrc3SOf2Pc1gVehzJgODeS0lDL3/I/0S2SSE98YgKleq6Uqx6ndTy9yaL9qFxJL7eiA/R",
    "3SEfTaW1SBoSITIu+EEkXff+Pv8NHOk7N57rcGk1w0ZzRrQDkXTOXFN2iHYIzAAZPIOY45Lsh+A4slpgnDiaOvRtlQYCt97nmPLu",
    "TipOJ8Qc5pM7ZsOsAPPrCQL7nK0I7aPrFDF0q4ziUUKettzW8MrAaiVfmbD1/VkmLNVqqZVvBCtRblXb5FHmtS8FxnqCzYP4WFvz",
    "3T0TcrOqwLX1M/DQvcHaGGw0B0y4bZMs7lVScGBFxMj3vbFi2SRKbKhaitxHfYHAOAa0X7/MSS0RNAjdwoyGHeOepXOKY+h3iHeq",
    "CvgOH6LOifdHf/1aaZNwSkGotYnYScW8Yx63LnSwba7+hESrtPa/huRmB9KWvMCKbDThL/nne14hnL277EDCSocPu3rOSYjuB9gK",
    "SOdVmWsj9Dxb/iZIe+S6AiG29Esm+/eUacSba0k8wn5HhHg9d4tIcixrxveflc8vi2/wNQGVFNsGO6tB5WF0xf/plngOvQ1/ivGV",
    "/C1Qpdhzznh0ExAVJ6dwzNg7qIEBaw+BzTJTUuRcPk92Sn6QDn2Pu3mpONaEumacjW4w6ipPnPw+g2TfywJjeEcpSZaP4Q3YV5HG",
    "8D6UjWA4GSkBKculWpdCMadx0usMomsSS/74QgpYqcPkmamB4nVv1JxczYITIqItIKjD35IGKAUwAA=="
);

// The User-Agent of each mode and the desktop-mode `client-version` header are in the request
// table (`src/wechat/requests/official.json`), with every other header.

/// Where the login redirect sends the browser; the jslogin `redirect_uri` names it (PROTOCOL.md §1.1).
pub const NEWLOGINPAGE_REDIRECT: &str = "https://wx.qq.com/cgi-bin/mmwebwx-bin/webwxnewloginpage";

mod bodies;
mod members;
pub mod upload;

pub use bodies::{
    parse_jslogin, parse_login_poll, parse_login_xml, parse_synccheck, qr_content, LoginPoll,
    LoginRefused, LoginTicket, ProtocolError, SyncAction, SyncCheck,
};
pub use members::{MemberRef, Members};

/// True for the `BaseResponse.Ret` values that mean the session is gone (PROTOCOL.md §2, §7).
pub fn ret_ends_session(ret: i64) -> bool {
    (1100..=1102).contains(&ret)
}

/// The `BaseRequest` object every JSON POST carries (PROTOCOL.md §2).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct BaseRequest {
    /// wxuin.
    pub uin: u64,
    /// wxsid.
    pub sid: String,
    /// The current skey.
    pub skey: String,
    /// `e` + 15 digits.
    #[serde(rename = "DeviceID")]
    pub device_id: String,
}

/// `BaseResponse` of every JSON answer.
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "PascalCase", default)]
pub struct BaseResponse {
    /// 0 ok; see PROTOCOL.md §2 for the rest.
    pub ret: i64,
    /// Usually empty.
    pub err_msg: String,
}

/// One pair of a sync key.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct KeyVal {
    /// The key number (1, 2, 3, 1000, …).
    pub key: u64,
    /// Its value; only grows.
    pub val: u64,
}

/// `SyncKey` / `SyncCheckKey` (PROTOCOL.md §3, §7).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct SyncKey {
    /// Number of pairs; a key whose Count is 0 is ignored.
    pub count: u32,
    /// The pairs.
    pub list: Vec<KeyVal>,
}

impl SyncKey {
    /// True when the server sent an empty key, which must not replace the stored one.
    pub fn is_empty(&self) -> bool {
        self.count == 0 || self.list.is_empty()
    }

    /// The `synckey` query value: `1_654321001|2_654321050|…`.
    pub fn to_query(&self) -> String {
        let mut out = String::with_capacity(self.list.len() * 16);
        for (i, kv) in self.list.iter().enumerate() {
            if i > 0 {
                out.push('|');
            }
            out.push_str(&format!("{}_{}", kv.key, kv.val));
        }
        out
    }
}

/// A member of a group's MemberList (PROTOCOL.md §5.2), as code builds one; a parsed list is
/// held as [`Members`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Member {
    /// Per-login id, `@…`.
    pub user_name: String,
    /// The member's own name.
    pub nick_name: String,
    /// The member's name in this group, may be empty.
    pub display_name: String,
}

/// A contact object (PROTOCOL.md §5.3): a person, a group or an official account.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct Contact {
    /// 0 except for self.
    pub uin: u64,
    /// Per-login id: `@…` person, `@@…` group, or a fixed name such as `filehelper`.
    pub user_name: String,
    /// Own name (may contain emoji spans).
    pub nick_name: String,
    /// The name you gave them.
    pub remark_name: String,
    /// Name inside a group (members only).
    pub display_name: String,
    /// Relative avatar path.
    pub head_img_url: String,
    /// Bits, PROTOCOL.md §5.3.
    pub contact_flag: u64,
    /// Bits; 8 = official account.
    pub verify_flag: u64,
    /// Number of members for a group.
    pub member_count: u64,
    /// Members for a group (empty until batchgetcontact).
    pub member_list: Members,
    /// For groups: `@<32 hex>`.
    pub encry_chat_room_id: String,
    /// WeChat id, often empty.
    pub alias: String,
    /// 0 unknown, 1 male, 2 female.
    pub sex: u64,
    /// The province a person gave in their profile, often empty.
    pub province: String,
    /// The city a person gave in their profile, often empty.
    pub city: String,
    /// Status line.
    pub signature: String,
}

impl Contact {
    /// The official group test: `^@@` or an `@chatroom` suffix (PROTOCOL.md §5.3).
    pub fn is_group(&self) -> bool {
        is_group_name(&self.user_name)
    }
}

/// True for a group's UserName.
pub fn is_group_name(user_name: &str) -> bool {
    user_name.starts_with("@@") || user_name.ends_with("@chatroom")
}

/// `RecommendInfo` of friend requests and cards (PROTOCOL.md §8.1).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct RecommendInfo {
    /// The person's UserName.
    pub user_name: String,
    /// Their name.
    pub nick_name: String,
    /// The greeting of a friend request.
    pub content: String,
    /// Needed to accept a request.
    pub ticket: String,
    /// WeChat id.
    pub alias: String,
}

/// An `AddMsgList` entry's fields this client reads (PROTOCOL.md §8.1). The entry as received,
/// with the whitespace between its tokens removed, is kept in `raw` so events can carry it
/// without re-serialising it.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct AddMsg {
    /// WeChat's id (a string on the wire; accept a number too).
    #[serde(deserialize_with = "string_or_number")]
    pub msg_id: String,
    /// A number above 2^53: parsed as u64, never f64.
    pub new_msg_id: u64,
    /// Sender (a group for group messages).
    pub from_user_name: String,
    /// Receiver.
    pub to_user_name: String,
    /// PROTOCOL.md §8.2.
    pub msg_type: u32,
    /// Escaped content (`<br/>`, entities, emoji spans).
    pub content: String,
    /// 48 with a map Url on MsgType 1 = location.
    pub sub_msg_type: u32,
    /// For MsgType 49.
    pub app_msg_type: u32,
    /// Link or map URL.
    pub url: String,
    /// File name or app title.
    pub file_name: String,
    /// A string on the wire.
    #[serde(deserialize_with = "string_or_number")]
    pub file_size: String,
    /// For files.
    pub media_id: String,
    /// Voice length in ms.
    pub voice_length: u64,
    /// Video length in s.
    pub play_length: u64,
    /// Unix seconds.
    pub create_time: i64,
    /// Friend requests and cards.
    pub recommend_info: RecommendInfo,
    /// MsgType 51.
    pub status_notify_code: u32,
    /// MsgType 51.
    pub status_notify_user_name: String,
    /// The original XML of some types.
    pub ori_content: String,
    /// The entry as received, compacted: member order, number texts and string escapes are
    /// the server's.
    #[serde(skip)]
    pub raw: Option<Box<RawValue>>,
}

fn string_or_number<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Either {
        S(String),
        N(u64),
        I(i64),
    }
    Ok(match Either::deserialize(d).map_err(de::Error::custom)? {
        Either::S(s) => s,
        Either::N(n) => n.to_string(),
        Either::I(n) => n.to_string(),
    })
}

/// `webwxinit` answer (PROTOCOL.md §3).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct InitResponse {
    /// Ret.
    pub base_response: BaseResponse,
    /// A new skey when non-empty.
    #[serde(rename = "SKey")]
    pub skey: String,
    /// Recent chats.
    pub contact_list: Vec<Contact>,
    /// The key for the first webwxsync.
    pub sync_key: SyncKey,
    /// Self.
    pub user: Contact,
}

/// `webwxsync` answer (PROTOCOL.md §7). `AddMsgList` is parsed entry by entry, see
/// [`parse_sync_response`].
#[derive(Debug, Default)]
pub struct SyncResponse {
    /// Ret.
    pub base_response: BaseResponse,
    /// New messages, in order.
    pub add_msg_list: Vec<AddMsg>,
    /// Contacts added or changed.
    pub mod_contact_list: Vec<Contact>,
    /// Contacts removed (only UserName is meaningful).
    pub del_contact_list: Vec<Contact>,
    /// The key for the next webwxsync (ignore when empty).
    pub sync_key: SyncKey,
    /// The key for the next synccheck (ignore when empty).
    pub sync_check_key: SyncKey,
    /// A new skey when non-empty.
    pub skey: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", default)]
#[derive(Default)]
struct SyncWire<'a> {
    base_response: BaseResponse,
    #[serde(borrow)]
    add_msg_list: Vec<&'a RawValue>,
    mod_contact_list: Vec<Contact>,
    del_contact_list: Vec<Contact>,
    sync_key: SyncKey,
    sync_check_key: SyncKey,
    #[serde(rename = "SKey")]
    skey: String,
}

/// Parses a `webwxsync` body, keeping each `AddMsgList` entry's JSON beside its fields,
/// compacted onto one line (see [`compact`](super::compact)).
///
/// The servers put every member on its own line (PROTOCOL.md §8.7) and events carry each entry
/// on one line, so the whole answer is compacted once and then parsed: each entry's `raw` is a
/// slice of valid JSON already, copied without a second validation. Text that is not valid
/// JSON (or that compacting could make valid) takes [`parse_entry_by_entry`], whose result and
/// errors are what this function answers.
pub fn parse_sync_response(body: &str) -> Result<SyncResponse, serde_json::Error> {
    if let Some(text) = compact_checked(body) {
        if let Ok(resp) = parse_compacted(&text) {
            return Ok(resp);
        }
    }
    parse_entry_by_entry(body)
}

/// The sync answer from text with no whitespace between its tokens.
fn parse_compacted(text: &str) -> Result<SyncResponse, serde_json::Error> {
    let mut wire: SyncWire<'_> = serde_json::from_str(text)?;
    let add_msg_list = std::mem::take(&mut wire.add_msg_list)
        .into_iter()
        .map(|raw| {
            let mut msg: AddMsg = serde_json::from_str(raw.get())?;
            msg.raw = Some(raw.to_owned());
            Ok(msg)
        })
        .collect::<Result<_, serde_json::Error>>()?;
    Ok(wire.into_response(add_msg_list))
}

/// The sync answer parsed as received, each entry compacted on its own: the reference the fast
/// path must agree with, and the path that reports where a malformed answer is malformed.
fn parse_entry_by_entry(body: &str) -> Result<SyncResponse, serde_json::Error> {
    let wire: SyncWire<'_> = serde_json::from_str(body)?;
    let mut add_msg_list = Vec::with_capacity(wire.add_msg_list.len());
    for raw in &wire.add_msg_list {
        let text = compact(raw.get());
        let mut msg: AddMsg = serde_json::from_str(&text)?;
        msg.raw = Some(match text {
            Cow::Borrowed(_) => (*raw).to_owned(),
            Cow::Owned(text) => RawValue::from_string(text)?,
        });
        add_msg_list.push(msg);
    }
    Ok(wire.into_response(add_msg_list))
}

impl SyncWire<'_> {
    fn into_response(self, add_msg_list: Vec<AddMsg>) -> SyncResponse {
        SyncResponse {
            base_response: self.base_response,
            add_msg_list,
            mod_contact_list: self.mod_contact_list,
            del_contact_list: self.del_contact_list,
            sync_key: self.sync_key,
            sync_check_key: self.sync_check_key,
            skey: self.skey,
        }
    }
}

/// The reference parse, for the tests that hold the fast path to it.
#[cfg(test)]
pub(crate) fn parse_sync_response_entry_by_entry(
    body: &str,
) -> Result<SyncResponse, serde_json::Error> {
    parse_entry_by_entry(body)
}

/// `webwxgetcontact` answer (PROTOCOL.md §5.1).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct GetContactResponse {
    /// Ret.
    pub base_response: BaseResponse,
    /// The next page's seq; 0 = last page.
    pub seq: u64,
    /// This page.
    pub member_list: Vec<Contact>,
}

/// `webwxbatchgetcontact` answer (PROTOCOL.md §5.2).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct BatchContactResponse {
    /// Ret.
    pub base_response: BaseResponse,
    /// The contacts asked for.
    pub contact_list: Vec<Contact>,
}

/// The most `webwxbatchgetcontact` takes in one call (PROTOCOL.md §5.2).
pub const BATCH_CONTACT_MAX: usize = 50;

/// One entry of a `webwxbatchgetcontact` request.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct BatchItem {
    /// Who.
    pub user_name: String,
    /// For a group member: the group's UserName (official client); else empty.
    pub encry_chat_room_id: String,
}

/// `webwxsendmsg` answer (PROTOCOL.md §9.1).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct SendMsgResponse {
    /// Ret.
    #[serde(rename = "BaseResponse")]
    pub base_response: BaseResponse,
    /// WeChat's id for the sent message; empty on failure.
    #[serde(rename = "MsgID", deserialize_with = "string_or_number")]
    pub msg_id: String,
}

/// `webwxpushloginurl` answer (PROTOCOL.md §1.6); `ret` is a string.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct PushLoginResponse {
    /// "0" on success.
    #[serde(deserialize_with = "string_or_number")]
    pub ret: String,
    /// The uuid to poll with tip=1.
    pub uuid: String,
}

/// A new DeviceID: `e` + 15 random digits (PROTOCOL.md §2).
pub fn new_device_id() -> String {
    let mut id = String::with_capacity(16);
    id.push('e');
    for _ in 0..15 {
        id.push(char::from(b'0' + fastrand::u8(0..10)));
    }
    id
}

/// LocalID = ClientMsgId as the official client builds it: the 13-digit ms time and four
/// random digits, 17 digits in all (PROTOCOL.md §9.1).
pub fn new_client_msg_id(now_ms: u64) -> String {
    format!("{now_ms}{:04}", fastrand::u16(0..10000))
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod properties;
