//! The session's JSON calls (PROTOCOL.md §3–§5, §9.1): webwxinit, webwxstatusnotify,
//! webwxgetcontact, webwxbatchgetcontact, webwxsendmsg.

use axum::body::Bytes;
use axum::extract::{Query, State as AxState};
use axum::http::HeaderMap;
use axum::response::Response;
use serde::ser::{Serialize, SerializeSeq, Serializer};
use serde_json::{json, Value};

use super::sync::sync_key;
use super::{
    base_response, cookies, json_call, json_text, order, refused, serialized, Ctx, Params,
};
use crate::contacts::{Member, MemberList};
use crate::escape::wx_escape;
use crate::msg::Msg;
use crate::record::SentMsg;
use crate::state::{unix_now, Refusal};

/// Most entries one webwxbatchgetcontact may ask for (§5.2).
const BATCH_LIMIT: usize = 50;

/// `webwxinit` (§3): self, recent chats, and a SyncKey that starts after what earlier syncs
/// delivered.
pub(crate) async fn init(AxState(shared): Ctx, Query(q): Params, body: Bytes) -> Response {
    let layout = shared.opts.layout();
    let st = shared.lock();
    if let Err(r) = json_call(&st, &q, &body) {
        return refused(layout, &order::INIT, &r, json!({}));
    }
    let Some(session) = &st.session else {
        return refused(
            layout,
            &order::INIT,
            &Refusal::new(1100, "no session"),
            json!({}),
        );
    };
    let recent = st.book.recent();
    let chat_set: String = recent.iter().map(|c| format!("{},", c.user_name)).collect();
    let list: Vec<Value> = recent
        .iter()
        .map(|c| st.book.contact_json(c, &session.skey, false))
        .collect();
    json_text(
        layout,
        &order::INIT,
        &json!({
            "BaseResponse": base_response(0, ""),
            "Count": list.len(),
            "ContactList": list,
            "SyncKey": sync_key(st.delivered),
            "User": st.book.self_json(st.account.uin, &session.skey),
            "ChatSet": chat_set,
            "SKey": session.skey,
            "ClientVersion": 654_377_017,
            "SystemTime": unix_now(),
            "GrayScale": 1,
            "InviteStartCount": 40,
            "MPSubscribeMsgCount": 0,
            "MPSubscribeMsgList": [],
            "ClickReportInterval": 600_000,
        }),
    )
}

/// `webwxstatusnotify` (§4).
pub(crate) async fn status_notify(AxState(shared): Ctx, Query(q): Params, body: Bytes) -> Response {
    let layout = shared.opts.layout();
    let mut st = shared.lock();
    let v = match json_call(&st, &q, &body) {
        Ok(v) => v,
        Err(r) => return refused(layout, &order::STATUS_NOTIFY, &r, json!({"MsgID": ""})),
    };
    if !v["Code"].is_u64() {
        return refused(
            layout,
            &order::STATUS_NOTIFY,
            &Refusal::new(1, "Code must be a number"),
            json!({"MsgID": ""}),
        );
    }
    let id = st.next_id();
    json_text(
        layout,
        &order::STATUS_NOTIFY,
        &json!({"BaseResponse": base_response(0, ""), "MsgID": id.to_string()}),
    )
}

/// `webwxgetcontact` (§5.1): the address book in pages of `contact_page_size`; `Seq` names
/// the next page, 0 after the last. Saved groups come with MemberCount and no MemberList.
/// A GET without BaseRequest, so it is authenticated by `skey` and the session cookies.
pub(crate) async fn get_contact(
    AxState(shared): Ctx,
    headers: HeaderMap,
    Query(q): Params,
) -> Response {
    let layout = shared.opts.layout();
    let st = shared.lock();
    let auth = st.check_cookies(&cookies(&headers)).and_then(|()| {
        let uin = st.account.uin;
        let sid = st.session.as_ref().map(|s| s.sid.as_str());
        match q.get("skey") {
            None => Err(Refusal::new(1100, "skey missing")),
            Some(skey) => st.check_credentials(Some(uin), sid, Some(skey)),
        }
    });
    let skey = match auth.and_then(|s| st.check_pass_ticket(&q).map(|()| s.skey.clone())) {
        Ok(skey) => skey,
        Err(r) => {
            return refused(
                layout,
                &order::GET_CONTACT,
                &r,
                json!({"MemberCount": 0, "MemberList": [], "Seq": 0}),
            )
        }
    };
    let book = st.book.address_book();
    let page = shared.opts.contact_page_size.max(1);
    let start: usize = q.get("seq").and_then(|s| s.parse().ok()).unwrap_or(0);
    let slice = book.get(start..).unwrap_or(&[]);
    let list: Vec<Value> = slice
        .iter()
        .take(page)
        .map(|c| st.book.contact_json(c, &skey, false))
        .collect();
    let next = if slice.len() > page { start + page } else { 0 };
    json_text(
        layout,
        &order::GET_CONTACT,
        &json!({
            "BaseResponse": base_response(0, ""),
            "MemberCount": list.len(),
            "MemberList": list,
            "Seq": next,
        }),
    )
}

/// `webwxbatchgetcontact` (§5.2): at most 50 entries; a group comes with its MemberList,
/// and `{"UserName":"@m","EncryChatRoomId":"@@g"}` (or the group's EncryChatRoomId) asks for
/// member `@m` of that group. Unknown names are left out.
pub(crate) async fn batch_get_contact(
    AxState(shared): Ctx,
    Query(q): Params,
    body: Bytes,
) -> Response {
    let layout = shared.opts.layout();
    let st = shared.lock();
    let empty = json!({"Count": 0, "ContactList": []});
    let v = match json_call(&st, &q, &body) {
        Ok(v) => v,
        Err(r) => return refused(layout, &order::BATCH_GET_CONTACT, &r, empty),
    };
    let skey = st
        .session
        .as_ref()
        .map(|s| s.skey.clone())
        .unwrap_or_default();
    let Some(items) = v["List"].as_array() else {
        return refused(
            layout,
            &order::BATCH_GET_CONTACT,
            &Refusal::new(1, "List missing"),
            empty,
        );
    };
    if items.len() > BATCH_LIMIT {
        return refused(
            layout,
            &order::BATCH_GET_CONTACT,
            &Refusal::new(1, "parameter error: more than 50"),
            empty,
        );
    }
    let list: Vec<Entry<'_>> = items
        .iter()
        .filter_map(|item| {
            let user = item["UserName"].as_str()?;
            let room = item["EncryChatRoomId"].as_str().unwrap_or("");
            if !room.is_empty() {
                let group = st.book.group(room)?.group.as_ref()?;
                let m = group.members.iter().find(|m| m.user_name == user)?;
                return Some(Entry::Plain(st.book.member_json(m, &skey)));
            }
            if let Some(c) = st.book.get(user) {
                let v = st.book.contact_json(c, &skey, false);
                return Some(match &c.group {
                    Some(g) => Entry::Group(v, &g.members),
                    None => Entry::Plain(v),
                });
            }
            st.book
                .any_member(user)
                .map(|m| Entry::Plain(st.book.member_json(m, &skey)))
        })
        .collect();
    let head = json!({"BaseResponse": base_response(0, ""), "Count": list.len()});
    serialized(
        layout,
        &order::Spliced {
            value: &head,
            shape: &order::BATCH_GET_CONTACT,
            key: "ContactList",
            with: Entries(&list),
        },
    )
}

/// A webwxbatchgetcontact ContactList entry: a group's members are written from the book
/// (see [`MemberList`]), everything else from its `Value`.
enum Entry<'a> {
    Plain(Value),
    Group(Value, &'a [Member]),
}

struct Entries<'a>(&'a [Entry<'a>]);

impl Serialize for Entries<'_> {
    fn serialize<S: Serializer>(&self, ser: S) -> Result<S::Ok, S::Error> {
        let mut seq = ser.serialize_seq(Some(self.0.len()))?;
        for entry in self.0 {
            match entry {
                Entry::Plain(v) => {
                    seq.serialize_element(&order::Ordered::new(v, &order::CONTACT))?
                }
                Entry::Group(v, members) => seq.serialize_element(&order::Spliced {
                    value: v,
                    shape: &order::CONTACT,
                    key: "MemberList",
                    with: MemberList(members),
                })?,
            }
        }
        seq.end()
    }
}

/// LocalID and ClientMsgId as the same string, whether sent as numbers or strings (§9.1).
pub(super) fn id_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) => {
            Some(s.clone())
        }
        Value::Number(n) if n.is_u64() => Some(n.to_string()),
        _ => None,
    }
}

/// `webwxsendmsg` (§9.1): a text (Type 1) from the account to a known contact, group or
/// `filehelper`, with LocalID equal to ClientMsgId. To the account itself is Ret 1204; to a
/// UserName of an earlier login Ret 1201 (see `renumber`).
pub(crate) async fn send_msg(AxState(shared): Ctx, Query(q): Params, body: Bytes) -> Response {
    let layout = shared.opts.layout();
    let empty = json!({"MsgID": "", "LocalID": ""});
    let outcome = shared.update(|st| {
        let v = json_call(st, &q, &body)?;
        let msg = &v["Msg"];
        let bad = |why: &str| Err(Refusal::new(1, format!("parameter error: {why}")));
        if msg["Type"].as_u64() != Some(1) {
            return bad("Msg.Type must be the number 1");
        }
        let Some(content) = msg["Content"].as_str().filter(|c| !c.is_empty()) else {
            return bad("Msg.Content must be a non-empty string");
        };
        if msg["FromUserName"].as_str() != Some(st.book.me.user_name.as_str()) {
            return bad("Msg.FromUserName must be the account's UserName");
        }
        let to = msg["ToUserName"].as_str().unwrap_or("");
        if to == st.book.me.user_name {
            return Err(Refusal::new(
                1204,
                "cannot send to yourself; use filehelper",
            ));
        }
        st.check_recipient(to, "Msg.ToUserName")?;
        let (Some(local), Some(client)) = (id_text(&msg["LocalID"]), id_text(&msg["ClientMsgId"]))
        else {
            return bad("Msg.LocalID and Msg.ClientMsgId must be digits");
        };
        if local != client {
            return bad("Msg.LocalID must equal Msg.ClientMsgId");
        }
        if let Some((ret, left)) = st.send_failure.as_mut() {
            if *left == 0 {
                return Err(Refusal::new(*ret, "send refused by fail_sends"));
            }
            *left -= 1;
        }
        let id = st.next_id();
        let msg_id = id.to_string();
        st.sent.push(SentMsg {
            to: to.to_owned(),
            content: content.to_owned(),
            local_id: local.clone(),
            msg_id: msg_id.clone(),
        });
        if st.echo_sent {
            // The server's copy of what we sent, as it reaches other devices (§8.1).
            let echo = Msg::phone_text(to, "").content(&wx_escape(content));
            let echo_id = if st.echo_new_ids { st.next_id() } else { id };
            let entry = echo.finish(&st.book.me.user_name, echo_id, unix_now());
            st.stream.push(crate::state::SyncEntry::Msg(entry));
        }
        Ok((msg_id, local))
    });
    match outcome {
        Ok((msg_id, local)) => json_text(
            layout,
            &order::SEND_MSG,
            &json!({
                "BaseResponse": base_response(0, ""),
                "MsgID": msg_id,
                "LocalID": local,
            }),
        ),
        Err(r) => refused(layout, &order::SEND_MSG, &r, empty),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::contacts::Book;
    use crate::server::wire::{to_body, Layout};

    #[test]
    fn a_group_written_from_the_book_is_the_group_as_a_value() {
        let mut book = Book::new(false);
        book.add_person("Alice", "");
        let info = book.add_group(
            "Family <3",
            &[("Alice", "Mum"), ("Bob \"B\"", ""), ("Carol 🌟", "C")],
            true,
        );
        let c = book.get(&info.user_name).unwrap();
        let members = &c.group.as_ref().unwrap().members;
        let whole = book.contact_json(c, "@crypt_x", true);
        let bare = book.contact_json(c, "@crypt_x", false);
        for layout in [Layout::Wire, Layout::Compact] {
            let spliced = order::Spliced {
                value: &bare,
                shape: &order::CONTACT,
                key: "MemberList",
                with: MemberList(members),
            };
            let expected = to_body(&order::Ordered::new(&whole, &order::CONTACT), layout).unwrap();
            assert_eq!(to_body(&spliced, layout).unwrap(), expected);
        }
        let head = json!({"BaseResponse": base_response(0, ""), "Count": 1});
        let answer = order::Spliced {
            value: &head,
            shape: &order::BATCH_GET_CONTACT,
            key: "ContactList",
            with: Entries(&[Entry::Group(bare.clone(), members)]),
        };
        let expected = json!({
            "BaseResponse": base_response(0, ""),
            "Count": 1,
            "ContactList": [whole],
        });
        let expected = to_body(
            &order::Ordered::new(&expected, &order::BATCH_GET_CONTACT),
            Layout::Wire,
        );
        assert_eq!(to_body(&answer, Layout::Wire).unwrap(), expected.unwrap());
    }
}
