//! The login endpoints (PROTOCOL.md §1, §10): jslogin, the QR long poll,
//! webwxnewloginpage (ticket → session and cookies), push login, logout.

use axum::body::Bytes;
use axum::extract::{Query, State as AxState};
use axum::http::header::{CONTENT_TYPE, LOCATION};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::{cookies, form_pairs, js, json_text, order, session_cookies, set_cookie, Ctx, Params};
use crate::ids;
use crate::state::{unix_now, QrStatus, Session};

/// The web client's appid (§1.1).
const APPID: &str = "wx782c26e4c19acffb";

/// The desktop-mode `extspam` header value (§1.5), 880 characters.
pub const EXTSPAM: &str = concat!(
    "Go8FCIkFEokFCggwMDAwMDAwMRAGGvAESySibk50w5Wb3uTl2c2h64jVVrV7gNs06GFlWplHQbY/5FfiO++1yH4ykCyNPWKXmco+",
    "wfQzK5R98D3so7rJ5LmGFvBLjGceleySrc3SOf2Pc1gVehzJgODeS0lDL3/I/0S2SSE98YgKleq6Uqx6ndTy9yaL9qFxJL7eiA/R",
    "3SEfTaW1SBoSITIu+EEkXff+Pv8NHOk7N57rcGk1w0ZzRrQDkXTOXFN2iHYIzAAZPIOY45Lsh+A4slpgnDiaOvRtlQYCt97nmPLu",
    "TipOJ8Qc5pM7ZsOsAPPrCQL7nK0I7aPrFDF0q4ziUUKettzW8MrAaiVfmbD1/VkmLNVqqZVvBCtRblXb5FHmtS8FxnqCzYP4WFvz",
    "3T0TcrOqwLX1M/DQvcHaGGw0B0y4bZMs7lVScGBFxMj3vbFi2SRKbKhaitxHfYHAOAa0X7/MSS0RNAjdwoyGHeOepXOKY+h3iHeq",
    "CvgOH6LOifdHf/1aaZNwSkGotYnYScW8Yx63LnSwba7+hESrtPa/huRmB9KWvMCKbDThL/nne14hnL277EDCSocPu3rOSYjuB9gK",
    "SOdVmWsj9Dxb/iZIe+S6AiG29Esm+/eUacSba0k8wn5HhHg9d4tIcixrxveflc8vi2/wNQGVFNsGO6tB5WF0xf/plngOvQ1/ivGV",
    "/C1Qpdhzznh0ExAVJ6dwzNg7qIEBaw+BzTJTUuRcPk92Sn6QDn2Pu3mpONaEumacjW4w6ipPnPw+g2TfywJjeEcpSZaP4Q3YV5HG",
    "8D6UjWA4GSkBKculWpdCMadx0usMomsSS/74QgpYqcPkmamB4nVv1JxczYITIqItIKjD35IGKAUwAA==",
);

/// What 1203 says (§1.4): the login environment is abnormal; use the Windows/Mac client.
const FORBIDDEN_MESSAGE: &str = "当前登录环境异常。为了你的帐号安全，暂时不能登录web微信。你可以通过Windows微信、Mac微信或者手机客户端微信登录。";

/// The web page a logout redirects to.
pub(crate) async fn home() -> Response {
    (
        [(CONTENT_TYPE, "text/html; charset=utf-8")],
        "<!DOCTYPE html><html><head><title>微信网页版</title></head><body></body></html>",
    )
        .into_response()
}

/// `jslogin` (§1.1): a fresh QR uuid, in the exact JS text itchat's regex needs (every
/// capture agrees: spaces around `=`, `; ` between, no trailing newline). wechat4u POSTs it,
/// so a form body counts as well as the query.
pub(crate) async fn jslogin(AxState(shared): Ctx, Query(mut q): Params, body: Bytes) -> Response {
    q.extend(form_pairs(&String::from_utf8_lossy(&body)));
    if q.get("appid").map(String::as_str) != Some(APPID) {
        return js(r#"window.QRLogin.code = 400; window.QRLogin.uuid = "";"#.to_owned());
    }
    let uuid = shared.update(|st| st.new_qr());
    js(format!(
        r#"window.QRLogin.code = 200; window.QRLogin.uuid = "{uuid}";"#
    ))
}

/// The login long poll (§1.3). A status the poller has not seen yet is answered at once;
/// otherwise the poll is held for `poll_hold` and answers 408. Confirmed, expired and
/// cancelled are final and answered at once every time. An unknown uuid is 400.
pub(crate) async fn poll(AxState(shared): Ctx, Query(q): Params) -> Response {
    let uuid = q.get("uuid").cloned().unwrap_or_default();
    let known = shared.update(|st| {
        let pending = st.qrs.get(&uuid).map(|qr| qr.status.pending());
        if pending == Some(true) {
            st.current_qr = Some(uuid.clone());
        }
        pending.is_some()
    });
    if !known {
        return js("window.code=400;".to_owned());
    }
    let answer = shared
        .wait_for(shared.opts.poll_hold, |st| {
            let qr = st.qrs.get_mut(&uuid)?;
            if qr.status.pending() && qr.status == qr.reported {
                return None;
            }
            qr.reported = qr.status.clone();
            Some(poll_body(&qr.status, &uuid, &shared.base_url))
        })
        .await;
    js(answer.unwrap_or_else(|| "window.code=408;".to_owned()))
}

/// The poll's JS text, byte for byte as captured (tests/corpus/real/answers/, checked by the
/// strict test `js_answers_match_the_captures_byte_for_byte_around_their_values`): no
/// trailing newline, no space around `=` except in `window.userAvatar = '…'`.
///
/// Where the captures disagree: the 200 answer has a newline after `window.code=200;` as in
/// hotlcc's capture; qjesus's capture has none, but its Content-Length (183) is one byte more
/// than its 182 bytes, the newline the document lost; wechat4u's is a mock string the library's
/// authors wrote. The 201 answer carries the avatar as in qjesus's raw capture; wechat4u's mock
/// (`window.code=201;` alone) was shortened.
fn poll_body(status: &QrStatus, uuid: &str, base: &str) -> String {
    match status {
        QrStatus::Waiting => "window.code=408;".to_owned(),
        QrStatus::Scanned => "window.code=201;window.userAvatar = 'data:img/jpg;base64,AAAA';".to_owned(),
        QrStatus::Confirmed { ticket, scan } => format!(
            "window.code=200;\nwindow.redirect_uri=\"{base}/cgi-bin/mmwebwx-bin/webwxnewloginpage?ticket={ticket}&uuid={uuid}&lang=zh_CN&scan={scan}\";"
        ),
        QrStatus::Expired => "window.code=400;".to_owned(),
        QrStatus::Cancelled => "window.code=202;".to_owned(),
    }
}

fn error_xml(ret: i64, message: &str) -> String {
    format!("<error><ret>{ret}</ret><message>{message}</message></error>")
}

fn login_xml(body: String) -> Response {
    ([(CONTENT_TYPE, "text/plain;charset=utf-8")], body).into_response()
}

/// `webwxnewloginpage` (§1.4): trades an unused ticket for a session. Without `version=v2`
/// it answers as the server did before v2: 301 with no Location, so a client cannot follow
/// it, and (unlike back then) no skey in the body.
pub(crate) async fn new_login_page(
    AxState(shared): Ctx,
    headers: HeaderMap,
    Query(q): Params,
) -> Response {
    if q.get("version").map(String::as_str) != Some("v2") {
        return (
            StatusCode::MOVED_PERMANENTLY,
            [(CONTENT_TYPE, "text/plain;charset=utf-8")],
            error_xml(1, "version=v2 is required"),
        )
            .into_response();
    }
    let ticket = q.get("ticket").cloned().unwrap_or_default();
    let uuid = q.get("uuid").cloned().unwrap_or_default();
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let desktop = q.get("mod").map(String::as_str) == Some("desktop")
        && header("client-version") == Some("2.0.0")
        && header("extspam") == Some(EXTSPAM);
    let outcome = shared.update(|st| {
        match st.tickets.get_mut(&ticket) {
            Some((for_uuid, used)) if !*used && *for_uuid == uuid => *used = true,
            _ => return Err(error_xml(-14, "ticket error")),
        }
        if st.forbid_login || (shared.opts.require_desktop && !desktop) {
            return Err(error_xml(1203, FORBIDDEN_MESSAGE));
        }
        let (decoded, encoded) = ids::pass_ticket();
        let session = Session {
            sid: ids::wxsid(),
            skey: ids::skey(),
            pass_ticket_decoded: decoded,
            pass_ticket: encoded,
            data_ticket: ids::cookie_token(64),
            desktop,
            ended: None,
        };
        let xml = format!(
            "<error><ret>0</ret><message></message><skey>{}</skey><wxsid>{}</wxsid><wxuin>{}</wxuin><pass_ticket>{}</pass_ticket><isgrayscale>1</isgrayscale></error>",
            session.skey, session.sid, st.account.uin, session.pass_ticket
        );
        let mut cookies = HeaderMap::new();
        session_cookies(&mut cookies, st.account.uin, &session);
        const TEN_YEARS: u64 = 10 * 365 * 24 * 3600;
        set_cookie(&mut cookies, "webwxuvid", &st.account.uvid, Some(TEN_YEARS));
        set_cookie(&mut cookies, "webwx_auth_ticket", &st.account.auth_ticket, Some(TEN_YEARS));
        set_cookie(&mut cookies, "wxloadtime", &unix_now().to_string(), Some(12 * 3600));
        set_cookie(&mut cookies, "mm_lang", "zh_CN", Some(TEN_YEARS));
        // A new session: like the real servers, new UserNames for everyone (PROTOCOL.md
        // §5.3); the first login's are those handed out before it.
        if st.logins > 0 {
            st.renumber();
        }
        st.session = Some(session);
        st.account.logged_in_once = true;
        st.logins += 1;
        Ok((cookies, xml))
    });
    match outcome {
        Ok((cookies, xml)) => (cookies, login_xml(xml)).into_response(),
        Err(xml) => login_xml(xml),
    }
}

/// `webwxpushloginurl` (§1.6): when push login is on and the request carries the last
/// login's `wxuin` and `webwx_auth_ticket` cookies and its uin, a new uuid for the login
/// poll; otherwise `ret` "1".
pub(crate) async fn push_login_url(
    AxState(shared): Ctx,
    headers: HeaderMap,
    Query(q): Params,
) -> Response {
    let jar = cookies(&headers);
    let answer = shared.update(|st| {
        let uin = st.account.uin.to_string();
        if !st.push_login {
            return Err("push login is off");
        }
        if !st.account.logged_in_once
            || jar.get("webwx_auth_ticket") != Some(&st.account.auth_ticket)
            || jar.get("wxuin") != Some(&uin)
        {
            return Err("webwx_auth_ticket/wxuin cookies missing or wrong");
        }
        if q.get("uin") != Some(&uin) {
            return Err("uin does not match");
        }
        Ok(st.new_qr())
    });
    match answer {
        Ok(uuid) => json_text(
            shared.opts.layout(),
            &order::PUSH_LOGIN,
            &json!({"ret": "0", "msg": "all ok", "uuid": uuid}),
        ),
        Err(why) => json_text(
            shared.opts.layout(),
            &order::PUSH_LOGIN,
            &json!({"ret": "1", "msg": why}),
        ),
    }
}

/// `webwxlogout` (§10): ends the session named by `skey` (query) or `sid`/`uin` (the official
/// client's form), then redirects to the home page. Unknown credentials change nothing.
pub(crate) async fn logout(AxState(shared): Ctx, Query(q): Params, body: Bytes) -> Response {
    let form = form_pairs(&String::from_utf8_lossy(&body));
    shared.update(|st| {
        let uin = st.account.uin.to_string();
        if let Some(s) = st.session.as_mut() {
            let by_skey = q.get("skey") == Some(&s.skey);
            let by_form = form.get("sid") == Some(&s.sid) && form.get("uin") == Some(&uin);
            if (by_skey || by_form) && s.ended.is_none() {
                s.ended = Some(1100);
            }
        }
    });
    let location = format!("{}/?&lang=zh_CN", shared.base_url);
    (StatusCode::FOUND, [(LOCATION, location)], "").into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extspam_is_the_published_value() {
        assert_eq!(EXTSPAM.len(), 880);
        assert!(EXTSPAM.starts_with("Go8FCIkFEokF") && EXTSPAM.ends_with("AA=="));
    }
}
