//! The `result` of a send command (DESIGN.md "Outbound command and result"): what was sent and
//! where, or why not.
use serde::{Deserialize, Serialize};

use super::command::{CommandError, ErrorCode};
use super::kind::ResultKind;

/// Where a sent message went.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Recipient {
    /// Its UserName.
    pub id: String,
    /// Its display name.
    pub name: String,
    /// Its contact key (DESIGN.md "Contact keys"); `null` when it has none this login.
    #[serde(default)]
    pub key: Option<String>,
}

/// `media` of a result: the file that was (or was to be) sent, as the media store holds it;
/// `{"sha256": …}` sends it again.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SentMedia {
    /// Lowercase hex sha256 of the bytes.
    pub sha256: String,
    /// Their length in bytes.
    pub size: u64,
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
    /// WeChat's MsgID, on success: of the media message when the command had media. Also on
    /// a failure after the media went out, when only the text was not sent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub msg_id: Option<String>,
    /// The text's MsgID when a command with media also had text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text_msg_id: Option<String>,
    /// Where it went, on success.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<Recipient>,
    /// The command's media once it was stored, on success and failure alike.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media: Option<SentMedia>,
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
            text_msg_id: None,
            to: Some(Recipient {
                id: to_id.into(),
                name: to_name.into(),
                key: None,
            }),
            media: None,
            error: None,
            duplicate: false,
        }
    }

    /// This result with the recipient's contact key, when it went somewhere.
    pub fn with_to_key(mut self, key: Option<String>) -> Self {
        if let Some(to) = self.to.as_mut() {
            to.key = key;
        }
        self
    }

    /// A failure without a WeChat Ret.
    pub fn err(request_id: Option<String>, code: ErrorCode, message: impl Into<String>) -> Self {
        SendResult {
            kind: ResultKind,
            request_id,
            ok: false,
            msg_id: None,
            text_msg_id: None,
            to: None,
            media: None,
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

impl SendResult {
    /// This result with the command's `media`.
    pub fn with_media(mut self, media: Option<SentMedia>) -> Self {
        self.media = media;
        self
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

    #[test]
    fn send_results_serialize_exactly_as_the_contract() {
        let ok = SendResult::ok(Some("r-17".into()), "2038", "@a81", "Alice");
        assert_eq!(
            serde_json::to_string(&ok).unwrap(),
            r#"{"kind":"result","request_id":"r-17","ok":true,"msg_id":"2038","to":{"id":"@a81","name":"Alice","key":null}}"#
        );
        let keyed = ok.with_to_key(Some("c_abcdefgh2345".into()));
        assert_eq!(
            serde_json::to_string(&keyed).unwrap(),
            r#"{"kind":"result","request_id":"r-17","ok":true,"msg_id":"2038","to":{"id":"@a81","name":"Alice","key":"c_abcdefgh2345"}}"#
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
        let mut media = SendResult::ok(None, "2039", "@a81", "Alice").with_media(Some(SentMedia {
            sha256: "ab".repeat(32),
            size: 48213,
        }));
        media.text_msg_id = Some("2040".into());
        assert_eq!(
            serde_json::to_string(&media).unwrap(),
            format!(
                r#"{{"kind":"result","request_id":null,"ok":true,"msg_id":"2039","text_msg_id":"2040","to":{{"id":"@a81","name":"Alice","key":null}},"media":{{"sha256":"{}","size":48213}}}}"#,
                "ab".repeat(32)
            )
        );
    }
}
