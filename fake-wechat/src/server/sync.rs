//! Receiving (PROTOCOL.md §6, §7): the synccheck long poll and webwxsync, both driven by
//! the SyncKey's key 1, which encodes a position in the account's sync stream.

use std::collections::HashMap;

use axum::body::Bytes;
use axum::extract::{Query, State as AxState};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::{json, Value};

use super::order::{self, Ordered};
use super::wire::to_body;
use super::{base_response, cookies, js, json_call, refused, session_cookies, text};
use super::{set_cookie, Ctx, Params};
use crate::ids;
use crate::state::{unix_now, Refusal, State, SyncEntry};

/// Key 1's value is this plus the sequence number of the last entry the key covers.
const KEY1_BASE: u64 = 654_321_000;
/// Key 2 moves with key 1, as the real sequence-like keys do.
const KEY2_BASE: u64 = 654_321_040;
const KEY3_BASE: u64 = 654_320_990;

/// A SyncKey (and SyncCheckKey) covering the stream up to `seq`.
pub(crate) fn sync_key(seq: u64) -> Value {
    json!({"Count": 4, "List": [
        {"Key": 1, "Val": KEY1_BASE + seq},
        {"Key": 2, "Val": KEY2_BASE + seq},
        {"Key": 3, "Val": KEY3_BASE},
        {"Key": 1000, "Val": unix_now()},
    ]})
}

/// The position key 1 holds, if it is one this stream could have handed out.
fn position(key1: u64, head: u64) -> Option<u64> {
    key1.checked_sub(KEY1_BASE).filter(|&seq| seq <= head)
}

/// The position a SyncKey object names: Count > 0 and equal to the List's length, every
/// entry `{Key, Val}` numbers, key 1 present and valid.
fn key_position(key: &Value, head: u64) -> Option<u64> {
    let list = key["List"].as_array()?;
    let count = key["Count"].as_u64()?;
    if count == 0 || count != list.len() as u64 {
        return None;
    }
    let mut key1 = None;
    for item in list {
        let (k, v) = (item["Key"].as_u64()?, item["Val"].as_u64()?);
        if k == 1 {
            key1 = Some(v);
        }
    }
    position(key1?, head)
}

/// The position a synccheck `synckey` parameter (`1_x|2_y|…`) names.
fn param_position(param: &str, head: u64) -> Option<u64> {
    let mut key1 = None;
    for pair in param.split('|') {
        let (k, v) = pair.split_once('_')?;
        let (k, v): (u64, u64) = (k.parse().ok()?, v.parse().ok()?);
        if k == 1 {
            key1 = Some(v);
        }
    }
    position(key1?, head)
}

/// No trailing newline: clients compare the whole body (`===` in several JS clients, an
/// anchored `^…$` in openwechat), and none of the captures (hotlcc, qjesus, retcodes 1100 and
/// 1101 in urinx's) has one; qjesus's is 43 bytes, its Content-Length.
fn synccheck_body(retcode: i64, selector: u32) -> Response {
    js(format!(
        "window.synccheck={{retcode:\"{retcode}\",selector:\"{selector}\"}}"
    ))
}

/// Checks a synccheck's session: cookies first (absent: 1102), then `uin`/`sid`/`skey`
/// against the session (1101), then the session's end code.
/// While the poll is held only the session itself is re-checked (`with_skey` false): a
/// rotation of the skey must not fail a poll that started with the old one.
fn check_poll(
    st: &State,
    q: &HashMap<String, String>,
    jar: &HashMap<String, String>,
    with_skey: bool,
) -> Result<(), Refusal> {
    let (Some(_), Some(_)) = (jar.get("wxuin"), jar.get("wxsid")) else {
        return Err(Refusal::new(1102, "cookies missing"));
    };
    let uin = q.get("uin").and_then(|u| u.parse().ok());
    let param = |k: &str| q.get(k).map(String::as_str);
    if with_skey {
        st.check_credentials(uin, param("sid"), param("skey"))?;
    } else {
        st.check_session(uin, param("sid"))?;
    }
    st.check_cookies(jar)
}

/// What a synccheck at `seq` should report: 2 when messages follow it, 4 when only contact
/// changes do, else 0.
fn selector(st: &State, seq: u64) -> u32 {
    let rest = st.stream.get(seq as usize..).unwrap_or(&[]);
    if rest.iter().any(|e| matches!(e, SyncEntry::Msg(_))) {
        2
    } else if rest.is_empty() {
        0
    } else {
        4
    }
}

/// `synccheck` (§6): answers at once when the session is refused or when entries follow the
/// given key; otherwise holds for `sync_hold` and answers selector 0. A queued message, an
/// expiry or a new login wakes a held poll. A missing or malformed `synckey` is retcode
/// 1100, as for a request the push host cannot place.
pub(crate) async fn sync_check(
    AxState(shared): Ctx,
    headers: HeaderMap,
    Query(q): Params,
) -> Response {
    let jar = cookies(&headers);
    let seq = {
        let st = shared.lock();
        if let Err(r) = check_poll(&st, &q, &jar, true) {
            return synccheck_body(r.ret, 0);
        }
        match q.get("synckey").and_then(|k| param_position(k, st.head())) {
            Some(seq) => seq,
            None => return synccheck_body(1100, 0),
        }
    };
    let answer = shared
        .wait_for(shared.opts.sync_hold, |st| {
            match check_poll(st, &q, &jar, false) {
                Err(r) => Some((r.ret, 0)),
                Ok(()) => Some((0, selector(st, seq))).filter(|&(_, s)| s != 0),
            }
        })
        .await;
    let (retcode, sel) = answer.unwrap_or((0, 0));
    synccheck_body(retcode, sel)
}

/// `webwxsync` (§7): the entries after the given SyncKey, at most `sync_batch`, and keys
/// advanced to the last one returned. A stale key gets its entries again. `sid`/`skey` in
/// the query are optional but must match when present. After `rotate_skey` the answer
/// carries a new SKey, and only that one is accepted from then on.
pub(crate) async fn sync(AxState(shared): Ctx, Query(q): Params, body: Bytes) -> Response {
    let outcome = shared.update(|st| {
        let v = json_call(st, &q, &body)?;
        let session = st
            .session
            .as_ref()
            .ok_or(Refusal::new(1100, "no session"))?;
        for (param, value) in [("sid", &session.sid), ("skey", &session.skey)] {
            if q.get(param).is_some_and(|p| p != value) {
                return Err(Refusal::new(
                    1101,
                    format!("{param} in the query does not match"),
                ));
            }
        }
        let from = key_position(&v["SyncKey"], st.head())
            .ok_or_else(|| Refusal::new(1, "parameter error: bad SyncKey"))?;
        let batch = shared.opts.sync_batch.max(1);
        let entries = st.stream.get(from as usize..).unwrap_or(&[]);
        let taken = &entries[..entries.len().min(batch)];
        let (mut msgs, mut mods, mut dels) = (Vec::new(), Vec::new(), Vec::new());
        for e in taken {
            match e {
                SyncEntry::Msg(m) => msgs.push(m),
                SyncEntry::ModContact(c) => mods.push(c),
                SyncEntry::DelContact(u) => dels.push(json!({"UserName": u, "ContactFlag": 0})),
            }
        }
        let last = from + taken.len() as u64;
        let more = entries.len() > taken.len();
        st.delivered = st.delivered.max(last);
        let new_skey = if st.rotate_skey {
            st.rotate_skey = false;
            let skey = ids::skey();
            if let Some(s) = st.session.as_mut() {
                s.skey.clone_from(&skey);
            }
            skey
        } else {
            String::new()
        };
        let mut cookies = HeaderMap::new();
        if let Some(s) = &st.session {
            session_cookies(&mut cookies, st.account.uin, s);
        }
        let now = unix_now();
        set_cookie(&mut cookies, "wxloadtime", &format!("{now}_expired"), None);
        set_cookie(&mut cookies, "wxpluginkey", &now.to_string(), None);
        // Serialized under the lock, straight from the stream and in the servers' layout: no
        // copy of the messages, no second pass over the text.
        let (base, profile) = (base_response(0, ""), profile());
        let (key, check_key) = (sync_key(last), sync_key(last));
        let answer = SyncAnswer {
            base_response: Ordered::new(&base, &order::BASE_RESPONSE),
            add_msg_count: msgs.len(),
            add_msg_list: msgs
                .iter()
                .map(|m| Ordered::entry(m, order::MSG_ENTRY))
                .collect(),
            mod_contact_count: mods.len(),
            mod_contact_list: mods
                .iter()
                .map(|c| Ordered::entry(c, order::MOD_CONTACT_ENTRY))
                .collect(),
            del_contact_count: dels.len(),
            del_contact_list: dels
                .iter()
                .map(|d| Ordered::entry(d, order::DEL_CONTACT_ENTRY))
                .collect(),
            mod_chat_room_member_count: 0,
            mod_chat_room_member_list: [],
            profile: Ordered::new(&profile, &order::PROFILE),
            continue_flag: u8::from(more),
            sync_key: Ordered::new(&key, &order::SYNC_KEY),
            s_key: new_skey,
            sync_check_key: Ordered::new(&check_key, &order::SYNC_KEY),
        };
        let body =
            to_body(&answer, shared.opts.layout()).map_err(|e| Refusal::new(-1, e.to_string()))?;
        Ok((cookies, body))
    });
    match outcome {
        Ok((cookies, body)) => (cookies, text(body)).into_response(),
        Err(r) => refused(
            shared.opts.layout(),
            &order::SYNC,
            &r,
            json!({"AddMsgCount": 0, "AddMsgList": []}),
        ),
    }
}

/// A webwxsync answer, its members in the captured order (`order::SYNC`); the entries are
/// borrowed from the stream.
#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct SyncAnswer<'a> {
    base_response: Ordered<'a>,
    add_msg_count: usize,
    add_msg_list: Vec<Ordered<'a>>,
    mod_contact_count: usize,
    mod_contact_list: Vec<Ordered<'a>>,
    del_contact_count: usize,
    del_contact_list: Vec<Ordered<'a>>,
    mod_chat_room_member_count: u32,
    mod_chat_room_member_list: [Value; 0],
    profile: Ordered<'a>,
    continue_flag: u8,
    sync_key: Ordered<'a>,
    s_key: String,
    sync_check_key: Ordered<'a>,
}

fn profile() -> Value {
    json!({
        "BitFlag": 0, "UserName": {"Buff": ""}, "NickName": {"Buff": ""}, "BindUin": 0,
        "BindEmail": {"Buff": ""}, "BindMobile": {"Buff": ""}, "Status": 0, "Sex": 0,
        "PersonalCard": 0, "Alias": "", "HeadImgUpdateFlag": 0, "HeadImgUrl": "",
        "Signature": ""
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_round_trip_and_reject_nonsense() {
        let k = sync_key(7);
        assert_eq!(key_position(&k, 10), Some(7));
        assert_eq!(key_position(&k, 5), None, "a key from the future");
        assert_eq!(key_position(&json!({"Count": 0, "List": []}), 10), None);
        assert_eq!(
            key_position(
                &json!({"Count": 2, "List": [{"Key": 1, "Val": KEY1_BASE}]}),
                10
            ),
            None
        );
        let p = format!("1_{}|2_1|3_1|1000_1", KEY1_BASE + 3);
        assert_eq!(param_position(&p, 3), Some(3));
        assert_eq!(param_position("", 3), None);
        assert_eq!(param_position("1_x", 3), None);
    }
}
