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
}
