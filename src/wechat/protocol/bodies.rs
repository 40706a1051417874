//! The bodies that are not JSON: the JS-text answers of jslogin, the login poll and synccheck
//! (`window.code=200;`, PROTOCOL.md §1, §6) and the XML of webwxnewloginpage (§1.4), read into
//! the types the login and sync loops decide on.
use serde::{Deserialize, Serialize};
use thiserror::Error;

/// A body the server sent that this client cannot read.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum ProtocolError {
    /// The JS-text body lacked an expected assignment.
    #[error("unexpected {what} response: {snippet}")]
    Unexpected {
        /// Which response it was.
        what: &'static str,
        /// The start of the body, for the log.
        snippet: String,
    },
    /// jslogin answered with a code other than 200.
    #[error("jslogin answered code {0}")]
    JsLoginCode(u32),
}

fn unexpected(what: &'static str, body: &str) -> ProtocolError {
    ProtocolError::Unexpected {
        what,
        snippet: body.chars().take(120).collect(),
    }
}

/// Finds `name` in a JS-text body and returns the value assigned to it: the text inside the
/// quotes for a string, or the bare token up to `;`, `,` or `}`. Spacing around `=`/`:` varies
/// between endpoints (PROTOCOL.md §1.1 vs §1.3), so both are skipped.
fn js_value<'a>(body: &'a str, name: &str) -> Option<&'a str> {
    let at = body.find(name)? + name.len();
    let rest = body[at..].trim_start();
    let rest = rest.strip_prefix('=').or_else(|| rest.strip_prefix(':'))?;
    let rest = rest.trim_start();
    if let Some(quoted) = rest.strip_prefix('"') {
        return quoted.find('"').map(|end| &quoted[..end]);
    }
    if let Some(quoted) = rest.strip_prefix('\'') {
        return quoted.find('\'').map(|end| &quoted[..end]);
    }
    let end = rest.find([';', ',', '}', '\n']).unwrap_or(rest.len());
    Some(rest[..end].trim())
}

/// Reads the `jslogin` answer (PROTOCOL.md §1.1) and returns the QR uuid.
pub fn parse_jslogin(body: &str) -> Result<String, ProtocolError> {
    let code: u32 = js_value(body, "window.QRLogin.code")
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| unexpected("jslogin", body))?;
    if code != 200 {
        return Err(ProtocolError::JsLoginCode(code));
    }
    js_value(body, "window.QRLogin.uuid")
        .filter(|u| !u.is_empty())
        .map(str::to_owned)
        .ok_or_else(|| unexpected("jslogin", body))
}

/// The content of the login QR for a uuid (PROTOCOL.md §1.2).
pub fn qr_content(uuid: &str) -> String {
    format!("https://login.weixin.qq.com/l/{uuid}")
}

/// One answer of the login long-poll (PROTOCOL.md §1.3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LoginPoll {
    /// 408: not scanned yet.
    Waiting,
    /// 201: scanned, waiting for the confirmation on the phone.
    Scanned,
    /// 200: confirmed; the session starts at this URL.
    Confirmed {
        /// The `webwxnewloginpage` URL, as sent.
        redirect_uri: String,
    },
    /// 400: the QR code expired.
    Expired,
    /// 202: the login was cancelled on the phone.
    Cancelled,
    /// Anything else (500, 0): the official client reloads.
    Other(u32),
}

/// Reads a login poll answer.
pub fn parse_login_poll(body: &str) -> Result<LoginPoll, ProtocolError> {
    let code: u32 = js_value(body, "window.code")
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| unexpected("login poll", body))?;
    Ok(match code {
        408 => LoginPoll::Waiting,
        201 => LoginPoll::Scanned,
        200 => LoginPoll::Confirmed {
            redirect_uri: js_value(body, "window.redirect_uri")
                .filter(|u| !u.is_empty())
                .ok_or_else(|| unexpected("login poll", body))?
                .to_owned(),
        },
        400 => LoginPoll::Expired,
        202 => LoginPoll::Cancelled,
        other => LoginPoll::Other(other),
    })
}

/// The credentials `webwxnewloginpage` hands out (PROTOCOL.md §1.4).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LoginTicket {
    /// `@crypt_…`; rotated by init and sync responses.
    pub skey: String,
    /// Session id.
    pub wxsid: String,
    /// The account's numeric uin.
    pub wxuin: u64,
    /// Kept verbatim: it arrives already percent-encoded.
    pub pass_ticket: String,
}

/// Why `webwxnewloginpage` gave no session.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum LoginRefused {
    /// ret 1203: this account or environment may not use web WeChat.
    #[error(
        "WeChat refuses web login for this account (ret 1203{}). WeChat decides this per account; \
         it is not a fault of this bridge. Accounts registered recently or flagged for automation \
         are often barred from web login, sometimes for days: use the desktop or phone app",
        if .message.is_empty() { String::new() } else { format!(": {}", .message) }
    )]
    Forbidden {
        /// The server's own words.
        message: String,
    },
    /// Another non-zero ret.
    #[error("WeChat refused the login (ret {ret}: {message})")]
    Failed {
        /// The `ret` element.
        ret: i64,
        /// The `message` element.
        message: String,
    },
    /// The body was not the expected XML.
    #[error("unreadable login answer: {0}")]
    Malformed(String),
}

/// Reads the `webwxnewloginpage` XML.
pub fn parse_login_xml(body: &str) -> Result<LoginTicket, LoginRefused> {
    let doc = roxmltree::Document::parse(body.trim())
        .map_err(|e| LoginRefused::Malformed(e.to_string()))?;
    let field = |name: &str| {
        doc.root_element()
            .children()
            .find(|n| n.has_tag_name(name))
            .and_then(|n| n.text())
            .map(str::trim)
            .unwrap_or("")
            .to_owned()
    };
    let ret: i64 = field("ret")
        .parse()
        .map_err(|_| LoginRefused::Malformed("no <ret>".into()))?;
    let message = field("message");
    match ret {
        0 => {}
        1203 => return Err(LoginRefused::Forbidden { message }),
        ret => return Err(LoginRefused::Failed { ret, message }),
    }
    let (skey, wxsid, wxuin, pass_ticket) = (
        field("skey"),
        field("wxsid"),
        field("wxuin"),
        field("pass_ticket"),
    );
    if skey.is_empty() || wxsid.is_empty() || pass_ticket.is_empty() {
        return Err(LoginRefused::Malformed(
            "ret 0 without skey, wxsid or pass_ticket".into(),
        ));
    }
    let wxuin = wxuin
        .parse()
        .map_err(|_| LoginRefused::Malformed(format!("wxuin {wxuin:?} is not a number")))?;
    Ok(LoginTicket {
        skey,
        wxsid,
        wxuin,
        pass_ticket,
    })
}

/// One `synccheck` answer (PROTOCOL.md §6).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SyncCheck {
    /// 0 ok; 1100/1101/1102 the session is gone.
    pub retcode: u32,
    /// With retcode 0: 0 nothing, anything else means "call webwxsync".
    pub selector: u32,
}

/// What the client does after a synccheck.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SyncAction {
    /// Poll again at once.
    PollAgain,
    /// Call webwxsync, then poll again.
    Sync,
    /// The session is over; log in again.
    SessionExpired(u32),
    /// An unknown retcode: back off and retry on the same session.
    Retry(u32),
}

impl SyncCheck {
    /// The decision every known client makes (PROTOCOL.md §6).
    pub fn action(self) -> SyncAction {
        match (self.retcode, self.selector) {
            (0, 0) => SyncAction::PollAgain,
            (0, _) => SyncAction::Sync,
            (code @ 1100..=1102, _) => SyncAction::SessionExpired(code),
            (code, _) => SyncAction::Retry(code),
        }
    }
}

/// Reads `window.synccheck={retcode:"0",selector:"2"}`.
pub fn parse_synccheck(body: &str) -> Result<SyncCheck, ProtocolError> {
    let num = |name| js_value(body, name).and_then(|v| v.parse().ok());
    match (num("retcode"), num("selector")) {
        (Some(retcode), Some(selector)) if body.contains("window.synccheck") => {
            Ok(SyncCheck { retcode, selector })
        }
        _ => Err(unexpected("synccheck", body)),
    }
}
