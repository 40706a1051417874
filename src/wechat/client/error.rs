//! How an exchange with WeChat fails: [`WxError`] for any endpoint, [`SendError`] for a text
//! that was not sent, and the mapping of a `BaseResponse.Ret` to them (PROTOCOL.md §9.1, §11).
use thiserror::Error;

use crate::wechat::protocol::{self, BaseResponse, LoginRefused};

/// A failed exchange with WeChat.
#[derive(Debug, Error)]
pub enum WxError {
    /// Connection refused, reset, timed out, a DNS or TLS failure… Told with its whole chain
    /// of causes, where the reason is. The error holds no URL, only the host: the session's
    /// credentials travel in query strings.
    #[error("{endpoint} ({host}): {}", crate::wechat::cause::chain(source))]
    Http {
        /// The endpoint name.
        endpoint: &'static str,
        /// The host (and port) the request went to.
        host: String,
        /// The transport error.
        #[source]
        source: reqwest::Error,
    },
    /// A non-2xx status.
    #[error("{endpoint}: HTTP {status}")]
    Status {
        /// The endpoint name.
        endpoint: &'static str,
        /// The status code.
        status: u16,
    },
    /// A body this client cannot read.
    #[error("{endpoint}: unreadable answer: {detail}")]
    Garbage {
        /// The endpoint name.
        endpoint: &'static str,
        /// What was wrong.
        detail: String,
    },
    /// The session is over (synccheck retcode or Ret 1100/1101/1102).
    #[error("the WeChat session ended ({endpoint} answered {code})")]
    SessionExpired {
        /// The endpoint name.
        endpoint: &'static str,
        /// The retcode or Ret.
        code: i64,
    },
    /// Another non-zero `BaseResponse.Ret`.
    #[error("{endpoint}: WeChat answered Ret {ret} {message}")]
    Ret {
        /// The endpoint name.
        endpoint: &'static str,
        /// The Ret.
        ret: i64,
        /// ErrMsg.
        message: String,
    },
    /// `webwxnewloginpage` gave no session.
    #[error(transparent)]
    LoginRefused(#[from] LoginRefused),
}

impl WxError {
    /// True when only a new login can help.
    pub fn is_session_expired(&self) -> bool {
        matches!(self, WxError::SessionExpired { .. })
    }

    /// For the session state while WeChat cannot be reached: "cannot reach login.wx.qq.com:
    /// Connection refused (os error 111)"; None when WeChat was reached.
    pub fn unreachable(&self) -> Option<String> {
        match self {
            WxError::Http { host, source, .. } => Some(format!(
                "cannot reach {host}: {}",
                crate::wechat::cause::root(source)
            )),
            WxError::Status {
                endpoint: _,
                status: status @ 500..,
            } => Some(format!("WeChat answers HTTP {status}")),
            _ => None,
        }
    }
}

/// Why a text was not sent (PROTOCOL.md §9.1, §11).
#[derive(Debug, Error)]
pub enum SendError {
    /// Ret 1100–1102: the session is over.
    #[error("the WeChat session ended (Ret {0})")]
    SessionExpired(i64),
    /// Ret 1204: this account may not send to itself; use filehelper.
    #[error("WeChat refused a message to yourself (Ret 1204); send to filehelper instead")]
    ToSelf,
    /// Ret 1205: sending too fast.
    #[error("WeChat says this account sends too often (Ret 1205)")]
    TooFrequent,
    /// Any other non-zero Ret.
    #[error("WeChat refused the message (Ret {ret}{})", if .message.is_empty() { String::new() } else { format!(": {}", .message) })]
    Rejected {
        /// The Ret.
        ret: i64,
        /// ErrMsg.
        message: String,
    },
    /// The request did not complete.
    #[error(transparent)]
    Transport(WxError),
}

impl SendError {
    /// WeChat's Ret, when it answered with one.
    pub fn ret(&self) -> Option<i64> {
        match self {
            SendError::SessionExpired(r) => Some(*r),
            SendError::ToSelf => Some(1204),
            SendError::TooFrequent => Some(1205),
            SendError::Rejected { ret, .. } => Some(*ret),
            SendError::Transport(_) => None,
        }
    }
}

/// Maps a `BaseResponse.Ret` to success, the end of the session, or [`WxError::Ret`].
pub(super) fn check_ret(endpoint: &'static str, base: &BaseResponse) -> Result<(), WxError> {
    match base.ret {
        0 => Ok(()),
        ret if protocol::ret_ends_session(ret) => Err(WxError::SessionExpired {
            endpoint,
            code: ret,
        }),
        ret => Err(WxError::Ret {
            endpoint,
            ret,
            message: base.err_msg.clone(),
        }),
    }
}

/// For `map_err`: an answer of `endpoint` that does not parse, with the parser's words.
pub(super) fn garbage<E: std::fmt::Display>(endpoint: &'static str) -> impl FnOnce(E) -> WxError {
    move |e| WxError::Garbage {
        endpoint,
        detail: e.to_string(),
    }
}
