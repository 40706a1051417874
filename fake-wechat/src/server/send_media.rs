//! Sending uploaded media (PROTOCOL.md §9.3): `webwxsendmsgimg` (Type 3),
//! `webwxsendvideomsg` (43, or 62), `webwxsendappmsg` (6, the file's `<appmsg>` XML) and
//! `webwxsendemoticon` (47). They share webwxsendmsg's envelope, answer and rules (From the
//! account, To a contact but not the account, LocalID = ClientMsgId, `fail_sends`,
//! `echo_sent`), and each names media this session uploaded. A broken rule is refused with
//! Ret 1 [U] and recorded as a [`Violation`](crate::Violation).

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Query, State as AxState};
use axum::response::Response;
use serde_json::{json, Value};

use super::api::id_text;
use super::upload::{note, SIGNED_ABOVE};
use super::{base_response, json_call, json_text, order, refused, Ctx, Params};
use crate::msg::Msg;
use crate::record::{SentMedia, Upload};
use crate::state::{Refusal, State};

/// The appid of the official web client's file messages; desktop mode sends it empty.
const WEB_APPID: &str = "wxeb7ec651dd0aefa9";

#[derive(Clone, Copy, PartialEq, Eq)]
enum What {
    Image,
    Video,
    File,
    Emoticon,
}

impl What {
    fn endpoint(self) -> &'static str {
        match self {
            What::Image => "webwxsendmsgimg",
            What::Video => "webwxsendvideomsg",
            What::File => "webwxsendappmsg",
            What::Emoticon => "webwxsendemoticon",
        }
    }
}

/// `webwxsendmsgimg?fun=async&f=json`.
pub(crate) async fn send_msg_img(AxState(shared): Ctx, Query(q): Params, body: Bytes) -> Response {
    send(&shared, What::Image, &q, &body)
}

/// `webwxsendvideomsg?fun=async&f=json`.
pub(crate) async fn send_video_msg(
    AxState(shared): Ctx,
    Query(q): Params,
    body: Bytes,
) -> Response {
    send(&shared, What::Video, &q, &body)
}

/// `webwxsendappmsg?fun=async&f=json` (`&mod=desktop` in desktop mode).
pub(crate) async fn send_app_msg(AxState(shared): Ctx, Query(q): Params, body: Bytes) -> Response {
    send(&shared, What::File, &q, &body)
}

/// `webwxsendemoticon?fun=sys`.
pub(crate) async fn send_emoticon(AxState(shared): Ctx, Query(q): Params, body: Bytes) -> Response {
    send(&shared, What::Emoticon, &q, &body)
}

fn send(
    shared: &crate::state::Shared,
    what: What,
    q: &HashMap<String, String>,
    body: &Bytes,
) -> Response {
    let layout = shared.opts.layout();
    let outcome = shared.update(|st| {
        let checked = check(st, what, q, body);
        let sent = match checked {
            Ok(sent) => sent,
            Err(r) => {
                note(st, what.endpoint(), &r);
                return Err(r);
            }
        };
        if let Some((ret, left)) = st.send_failure.as_mut() {
            if *left == 0 {
                return Err(Refusal::new(*ret, "send refused by fail_sends"));
            }
            *left -= 1;
        }
        Ok(accept(st, what, sent))
    });
    match outcome {
        Ok((msg_id, local)) => json_text(
            layout,
            &order::SEND_MSG,
            &json!({"BaseResponse": base_response(0, ""), "MsgID": msg_id, "LocalID": local}),
        ),
        Err(r) => refused(
            layout,
            &order::SEND_MSG,
            &r,
            json!({"MsgID": "", "LocalID": ""}),
        ),
    }
}

fn bad(why: impl Into<String>) -> Refusal {
    Refusal::new(1, format!("parameter error: {}", why.into()))
}

/// The text between `<tag>` and `</tag>`.
fn tag<'a>(xml: &'a str, tag: &str) -> Option<&'a str> {
    let start = xml.find(&format!("<{tag}>"))? + tag.len() + 2;
    let end = xml[start..].find(&format!("</{tag}>"))? + start;
    Some(&xml[start..end])
}

/// The `appid` attribute of `<appmsg …>`, quoted with `'` or `"`.
fn appid(xml: &str) -> Option<&str> {
    let open = &xml[xml.find("<appmsg")?..];
    let open = &open[..open.find('>')?];
    let at = open.find("appid=")? + 6;
    let quote = open[at..].chars().next()?;
    let rest = &open[at + 1..];
    Some(&rest[..rest.find(quote)?])
}

/// A send that passed every check, before fail_sends.
struct Checked {
    msg_type: u32,
    to: String,
    local: String,
    media_id: String,
    content: String,
    signature: String,
    emoticon_md5: String,
    upload: Option<(Upload, Arc<Vec<u8>>)>,
}

fn check(
    st: &State,
    what: What,
    q: &HashMap<String, String>,
    body: &Bytes,
) -> Result<Checked, Refusal> {
    let param = |k: &str| q.get(k).map(String::as_str);
    let (fun, f) = (param("fun"), param("f"));
    match what {
        What::Emoticon if fun != Some("sys") => return Err(bad("the query lacks fun=sys")),
        What::Emoticon => {}
        _ if fun != Some("async") || f != Some("json") => {
            return Err(bad("the query lacks fun=async&f=json"))
        }
        _ => {}
    }
    let v = json_call(st, q, body)?;
    let session = st
        .session
        .as_ref()
        .ok_or_else(|| Refusal::new(1100, "no session"))?;
    if what == What::File && session.desktop && param("mod") != Some("desktop") {
        return Err(bad("a desktop-mode session sends files with mod=desktop"));
    }
    let msg = &v["Msg"];
    let me = st.book.me.user_name.as_str();
    if msg["FromUserName"].as_str() != Some(me) {
        return Err(bad("Msg.FromUserName must be the account's UserName"));
    }
    let to = msg["ToUserName"].as_str().unwrap_or("").to_owned();
    if to == me {
        return Err(Refusal::new(
            1204,
            "cannot send to yourself; use filehelper",
        ));
    }
    st.check_recipient(&to, "Msg.ToUserName")?;
    let (Some(local), Some(client)) = (id_text(&msg["LocalID"]), id_text(&msg["ClientMsgId"]))
    else {
        return Err(bad("Msg.LocalID and Msg.ClientMsgId must be digits"));
    };
    if local != client {
        return Err(bad("Msg.LocalID must equal Msg.ClientMsgId"));
    }
    let text = |k: &str| msg[k].as_str().unwrap_or("").to_owned();
    let uploaded = |media_id: &str| {
        st.outbox
            .by_media_id
            .get(media_id)
            .filter(|(_, sid, _)| *sid == session.sid)
            .map(|(i, _, bytes)| (st.outbox.uploads[*i].clone(), bytes.clone()))
            .ok_or_else(|| {
                bad(format!(
                    "MediaId {media_id:?} was not uploaded in this session"
                ))
            })
    };
    let msg_type = msg["Type"].as_u64().unwrap_or(0) as u32;
    let mut checked = Checked {
        msg_type,
        to,
        local,
        media_id: text("MediaId"),
        content: text("Content"),
        signature: text("Signature"),
        emoticon_md5: text("EMoticonMd5"),
        upload: None,
    };
    match what {
        What::Image | What::Video => {
            let ok = if what == What::Image {
                [3, 3]
            } else {
                [43, 62]
            };
            if !ok.contains(&msg_type) {
                return Err(bad(format!("Msg.Type must be {}", ok[0])));
            }
            if !msg["Content"].is_string() {
                return Err(bad("Msg.Content must be a string (empty)"));
            }
            checked.upload = Some(uploaded(&checked.media_id)?);
        }
        What::Emoticon => {
            if msg_type != 47 || msg["EmojiFlag"].as_u64() != Some(2) {
                return Err(bad("Msg.Type must be 47 with EmojiFlag 2"));
            }
            if !checked.media_id.is_empty() {
                checked.upload = Some(uploaded(&checked.media_id)?);
            } else if !(checked.emoticon_md5.len() == 32
                && checked.emoticon_md5.bytes().all(|b| b.is_ascii_hexdigit()))
            {
                return Err(bad("an emoticon needs a MediaId or an EMoticonMd5"));
            }
        }
        What::File => {
            if msg_type != 6 {
                return Err(bad("Msg.Type must be 6"));
            }
            let xml = checked.content.clone();
            let want_appid = if session.desktop { "" } else { WEB_APPID };
            if appid(&xml) != Some(want_appid) {
                return Err(bad(format!("the appmsg's appid must be {want_appid:?}")));
            }
            let title = tag(&xml, "title").unwrap_or("");
            if title.is_empty() || tag(&xml, "type") != Some("6") {
                return Err(bad("the appmsg needs a title and type 6"));
            }
            let media_id = tag(&xml, "attachid").unwrap_or("").to_owned();
            let (upload, bytes) = uploaded(&media_id)?;
            if tag(&xml, "totallen") != Some(upload.size.to_string().as_str()) {
                return Err(bad("the appmsg's totallen is not the upload's size"));
            }
            let ext = title.rsplit_once('.').map(|(_, e)| e).unwrap_or("");
            if tag(&xml, "fileext") != Some(ext) {
                return Err(bad(format!("the appmsg's fileext must be {ext:?}")));
            }
            if upload.size > SIGNED_ABOVE {
                let grant = st.outbox.grants.get(&upload.md5);
                if grant.map(|g| g.signature.as_str()) != Some(checked.signature.as_str()) {
                    return Err(bad(
                        "a file over 25 MiB is sent with checkupload's Signature",
                    ));
                }
            }
            checked.media_id = media_id;
            checked.upload = Some((upload, bytes));
        }
    }
    Ok(checked)
}

/// Records an accepted send and echoes it if asked; the MsgID and LocalID to answer.
fn accept(st: &mut State, what: What, c: Checked) -> (String, String) {
    let id = st.next_id();
    let msg_id = id.to_string();
    let (upload, bytes) = match c.upload {
        Some((u, b)) => (Some(u), Some(b)),
        None => (None, None),
    };
    if st.echo_sent {
        let me = st.book.me.user_name.clone();
        let echo = match what {
            What::Image => Msg::image(&me),
            What::Video => Msg::video(&me, 0).with("MsgType", Value::from(c.msg_type)),
            What::Emoticon => Msg::emoticon(&me),
            What::File => {
                let (name, size) = upload
                    .as_ref()
                    .map(|u| (u.name.clone(), u.size))
                    .unwrap_or_default();
                Msg::file(&me, &name, size)
            }
        };
        let echo_id = if st.echo_new_ids { st.next_id() } else { id };
        st.push_echo(echo.from_self().to(&c.to), echo_id, bytes);
    }
    st.outbox.sent.push(SentMedia {
        endpoint: what.endpoint().to_owned(),
        msg_type: c.msg_type,
        to: c.to,
        media_id: c.media_id,
        content: c.content,
        signature: c.signature,
        emoticon_md5: c.emoticon_md5,
        local_id: c.local.clone(),
        msg_id: msg_id.clone(),
        upload,
    });
    (msg_id, c.local)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_appmsg_xml_reads_its_attributes_and_tags() {
        let xml = "<appmsg appid='wxeb7ec651dd0aefa9' sdkver=''><title>a.pdf</title><type>6</type><appattach><totallen>48213</totallen><attachid>@crypt_1</attachid><fileext>pdf</fileext></appattach></appmsg>";
        assert_eq!(appid(xml), Some(WEB_APPID));
        assert_eq!(appid("<appmsg appid=\"\" sdkver=\"\">"), Some(""));
        assert_eq!(tag(xml, "totallen"), Some("48213"));
        assert_eq!(tag(xml, "attachid"), Some("@crypt_1"));
        assert_eq!(tag(xml, "nope"), None);
    }
}
