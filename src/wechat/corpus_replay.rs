//! Replays the corpus of real captured answers (`tests/corpus/real/`, provenance in its
//! README) through the parsers and [`normalize`](crate::wechat::message::normalize), entry by
//! entry, against the expectations in `tests/corpus/real/expected.json`.
//!
//! The contact book is built the way the fake's `queue_verbatim` builds its own for the
//! scenario replay (`tests/it/real_corpus.rs`): the entry's own UserName is the account, every
//! other `@` name a contact named by `captured_name`, a group holding the sender prefix.
use std::path::{Path, PathBuf};

use serde_json::{json, Value};
use wxbridge_fake::captured_name;

use crate::wechat::contacts::ContactBook;
use crate::wechat::message::{normalize, Context};
use crate::wechat::protocol::{
    is_group_name, parse_jslogin, parse_login_poll, parse_login_xml, parse_sync_response,
    parse_synccheck, ret_ends_session, BaseResponse, BatchContactResponse, Contact,
    GetContactResponse, InitResponse, LoginPoll, LoginRefused, Member, SyncAction,
};
use crate::wechat::text::split_group_prefix;

/// The account for redacted captures that hide which UserName is the account's.
const NOBODY: &str = "@corpus-account";

/// A webwxstatusnotify answer: the fields a client reads of it (PROTOCOL.md §4).
#[derive(serde::Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Notify {
    base_response: BaseResponse,
    #[serde(rename = "MsgID")]
    msg_id: String,
}

fn real_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus/real")
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Wraps one entry's text, as stored, in a webwxsync answer and parses it as the sync loop does.
fn parse_entry(text: &str) -> crate::wechat::protocol::AddMsg {
    let body = format!(
        "{{\"BaseResponse\":{{\"Ret\":0,\"ErrMsg\":\"\"}},\"AddMsgCount\":1,\"AddMsgList\":[{text}],\"SyncKey\":{{\"Count\":0,\"List\":[]}}}}"
    );
    let mut sync = parse_sync_response(&body).expect("the entry parses");
    sync.add_msg_list.remove(0)
}

fn book_for(msg: &crate::wechat::protocol::AddMsg, own: &str) -> ContactBook {
    let mut book = ContactBook::new(Contact {
        user_name: own.to_owned(),
        nick_name: "Corpus Account".into(),
        ..Contact::default()
    });
    let member = split_group_prefix(&msg.content)
        .map(|(m, _)| m)
        .filter(|m| m.starts_with('@') && !is_group_name(m));
    for user in [&msg.from_user_name, &msg.to_user_name] {
        if !user.starts_with('@') || user == own {
            continue;
        }
        if is_group_name(user) {
            let mut members: Vec<Member> = member
                .map(|m| Member {
                    user_name: m.to_owned(),
                    nick_name: captured_name("user", m),
                    ..Member::default()
                })
                .into_iter()
                .collect();
            members.push(Member {
                user_name: own.to_owned(),
                nick_name: "Corpus Account".into(),
                ..Member::default()
            });
            book.upsert(Contact {
                user_name: user.clone(),
                nick_name: captured_name("group", user),
                member_count: members.len() as u64,
                member_list: members.into(),
                ..Contact::default()
            });
        } else {
            book.upsert(Contact {
                user_name: user.clone(),
                nick_name: captured_name("user", user),
                ..Contact::default()
            });
        }
    }
    book
}

/// Every key of `want` matches in `got` (objects compared key by key, recursively); the
/// differences as `path: want … got …` lines.
fn differences(path: &str, want: &Value, got: &Value, out: &mut Vec<String>) {
    match (want, got) {
        (Value::Object(w), Value::Object(g)) => {
            for (k, wv) in w {
                let gv = g.get(k).unwrap_or(&Value::Null);
                differences(&format!("{path}.{k}"), wv, gv, out);
            }
        }
        (Value::Number(w), Value::Number(g)) if w.as_f64() == g.as_f64() => {}
        _ if want == got => {}
        _ => out.push(format!("{path}: want {want} got {got}")),
    }
}

#[test]
fn every_real_entry_gives_its_expected_event() {
    let dir = real_dir();
    let expected: Value = serde_json::from_str(&read(&dir.join("expected.json"))).unwrap();
    let expected = expected.as_object().expect("expected.json is an object");
    let mut failures = Vec::new();
    for (name, exp) in expected {
        let text = read(&dir.join("entries").join(name));
        let msg = parse_entry(&text);
        let own = exp["own"].as_str().unwrap_or(NOBODY);
        let book = book_for(&msg, own);
        let ctx = Context {
            account: "corpus",
            book: &book,
            sent_by_bridge: None,
        };
        let event = normalize(&msg, &ctx).map(|e| serde_json::to_value(&e).unwrap());
        match (&exp["event"], event) {
            (Value::Null, None) => {}
            (Value::Null, Some(e)) => failures.push(format!("{name}: published {e}")),
            (_, None) => failures.push(format!("{name}: no event")),
            (want, Some(got)) => {
                let mut diffs = Vec::new();
                differences(name, want, &got, &mut diffs);
                // The event carries the entry as received.
                let raw: Value = serde_json::from_str(&text).unwrap();
                differences(&format!("{name}.raw"), &raw, &got["raw"], &mut diffs);
                failures.extend(diffs);
            }
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
    let entries = std::fs::read_dir(dir.join("entries")).unwrap().count();
    assert_eq!(entries, expected.len(), "every entry has an expectation");
}

#[test]
fn real_whole_answers_parse_and_the_own_record_is_not_a_contact() {
    let dir = real_dir().join("answers");
    let init: InitResponse =
        serde_json::from_str(&read(&dir.join("wechat4u-webwxinit.json"))).unwrap();
    let own = init.user.user_name.clone();
    assert!(own.starts_with('@'), "{own}");
    let page: GetContactResponse =
        serde_json::from_str(&read(&dir.join("wechat4u-webwxgetcontact.json"))).unwrap();
    assert!(
        page.member_list.iter().any(|c| c.user_name == own),
        "the captured address book lists the account itself"
    );
    let batch: BatchContactResponse =
        serde_json::from_str(&read(&dir.join("wechat4u-webwxbatchgetcontact.json"))).unwrap();
    let sync = parse_sync_response(&read(&dir.join("wechat4u-webwxsync.json"))).unwrap();
    assert_eq!(sync.add_msg_list.len(), 2);

    let mut book = ContactBook::new(init.user.clone());
    for c in init
        .contact_list
        .into_iter()
        .chain(page.member_list.clone())
        .chain(batch.contact_list)
        .chain(sync.mod_contact_list)
    {
        book.upsert(c);
    }
    assert!(book.iter().all(|c| c.user_name != own));
    let others = page
        .member_list
        .iter()
        .filter(|c| c.user_name != own)
        .count();
    assert!(book.len() >= others);
    let me = page
        .member_list
        .iter()
        .find(|c| c.user_name == own)
        .unwrap();
    assert_eq!(book.self_user().nick_name, me.nick_name);
    assert!(
        !book
            .listing()
            .iter()
            .any(|c| c["id"] == Value::String(own.clone())),
        "self is never listed as a recipient"
    );
}

#[test]
fn real_login_answers_parse() {
    let dir = real_dir().join("answers");
    let answer = |name: &str| read(&dir.join(name));
    assert_eq!(
        parse_jslogin(&answer("wechat4u-jslogin.js")).unwrap(),
        "4dcaWx3uBw=="
    );
    assert_eq!(
        parse_login_poll(&answer("wechat4u-login-201.js")).unwrap(),
        LoginPoll::Scanned
    );
    let LoginPoll::Confirmed { redirect_uri } =
        parse_login_poll(&answer("wechat4u-login-200.js")).unwrap()
    else {
        panic!("a confirmed login");
    };
    assert!(redirect_uri
        .starts_with("https://wx2.qq.com/cgi-bin/mmwebwx-bin/webwxnewloginpage?ticket="));
    let ticket = parse_login_xml(&answer("wechat4u-webwxnewloginpage.xml")).unwrap();
    assert_eq!(ticket.wxuin, 155_217_200);
    assert_eq!(ticket.wxsid, "PsWd4FvKROR5EVcG");
    // The same session as the captured webwxinit: its HeadImgUrls carry this skey.
    assert!(answer("wechat4u-webwxinit.json").contains(&ticket.skey));
    let notify: Notify = serde_json::from_str(&answer("wechat4u-webwxstatusnotify.json")).unwrap();
    assert_eq!(notify.base_response.ret, 0);
    assert_eq!(notify.msg_id, "3199705316661781423");
}

/// The redirect of a captured confirmed login (200), which must name the QR code's `uuid`.
fn confirmed_for(answer: &str, uuid: &str) -> String {
    let LoginPoll::Confirmed { redirect_uri } = parse_login_poll(answer).unwrap() else {
        panic!("a confirmed login");
    };
    assert!(
        redirect_uri.contains(&format!("uuid={uuid}")),
        "{redirect_uri}"
    );
    redirect_uri
}

/// The 2018 HTTP capture (QJesus/weixinHttp): one session from the QR code to webwxsync, so
/// the login answers, the credentials and the answers that follow must agree with each other.
#[test]
fn real_2018_capture_parses_as_one_session() {
    let dir = real_dir().join("answers");
    let answer = |name: &str| read(&dir.join(format!("qjesus-{name}")));
    let uuid = parse_jslogin(&answer("jslogin.js")).unwrap();
    assert_eq!(uuid, "gbyKnbsmqQ==");
    assert_eq!(
        parse_login_poll(&answer("login-408.js")).unwrap(),
        LoginPoll::Waiting
    );
    // This 201 answer carries the scanning account's avatar (shortened in the capture).
    assert_eq!(
        parse_login_poll(&answer("login-201.js")).unwrap(),
        LoginPoll::Scanned
    );
    confirmed_for(&answer("login-200.js"), &uuid);
    let ticket = parse_login_xml(&answer("webwxnewloginpage.xml")).unwrap();
    assert_eq!(ticket.wxuin, 176_666_155);
    assert_eq!(ticket.wxsid, "5YpLHmVgWwH5LxN1");

    let init: InitResponse = serde_json::from_str(&answer("webwxinit.json")).unwrap();
    assert!(answer("webwxinit.json").contains(&ticket.skey));
    let own = init.user.user_name.clone();
    assert_eq!(own, "@f0c04abe389590b02d91684d99584439");
    let page: GetContactResponse = serde_json::from_str(&answer("webwxgetcontact.json")).unwrap();
    let batch: BatchContactResponse =
        serde_json::from_str(&answer("webwxbatchgetcontact.json")).unwrap();
    let group = &batch.contact_list[0];
    assert!(is_group_name(&group.user_name));
    // The capture lists one of the group's 14 members.
    assert_eq!((group.member_count, group.member_list.len()), (14, 1));

    // The author put four AddMsgList entries of the session into one answer; AddMsgCount
    // still says 1. The parser takes the list as it is.
    let sync = parse_sync_response(&answer("webwxsync.json")).unwrap();
    assert_eq!(sync.add_msg_list.len(), 4);
    let mut book = ContactBook::new(init.user);
    for c in init
        .contact_list
        .into_iter()
        .chain(page.member_list)
        .chain(batch.contact_list)
    {
        book.upsert(c);
    }
    let events: Vec<_> = sync
        .add_msg_list
        .iter()
        .filter_map(|m| {
            normalize(
                m,
                &Context {
                    account: "corpus",
                    book: &book,
                    sent_by_bridge: None,
                },
            )
        })
        .map(|e| serde_json::to_value(&e).unwrap())
        .collect();
    // Emoticon, video and text; the status notify (code 1) is not a message.
    let types: Vec<_> = events.iter().map(|e| e["type"].clone()).collect();
    assert_eq!(types, ["emoticon", "video", "text"]);
    // The peer is in the init's ChatSet but not among the contacts the capture kept: the
    // messages are still published, from the peer, in a chat with the peer.
    let peer = "@d77f22c1444fcbd7092fa2464899391a3cc0d6a9ec79b0770ce91be01a66a09b";
    assert!(book.iter().all(|c| c.user_name != peer));
    for e in &events {
        assert_eq!(
            (&e["chat"]["id"], &e["from"]["id"]),
            (&json!(peer), &json!(peer))
        );
        assert_eq!(e["from"]["self"], false);
    }

    let check = parse_synccheck(&answer("synccheck.js")).unwrap();
    assert_eq!(check.action(), SyncAction::PollAgain);
    let notify: Notify = serde_json::from_str(&answer("webwxstatusnotify.json")).unwrap();
    assert_eq!(
        (notify.base_response.ret, notify.msg_id.as_str()),
        (0, "8032721323945545465")
    );
}

/// Refusals and lost sessions as the servers worded them, quoted in issue threads: the web
/// login barred for the account (ret 1203, two wordings), synccheck's "logged out" and
/// "logged in elsewhere", and a status notify that failed with the session.
#[test]
fn real_refusals_and_lost_sessions_parse() {
    let dir = real_dir().join("answers");
    let answer = |name: &str| read(&dir.join(name));
    for name in [
        "itchat-issue666-webwxnewloginpage-1203.xml",
        "lbbniu-issue10-webwxnewloginpage-1203.xml",
    ] {
        match parse_login_xml(&answer(name)) {
            Err(LoginRefused::Forbidden { message }) => {
                assert!(message.contains("网页微信"), "{name}: {message}")
            }
            other => panic!("{name}: {other:?}"),
        }
    }
    for (name, code) in [
        ("urinx-issue58-synccheck-1100.js", 1100),
        ("urinx-issue58-synccheck-1101.js", 1101),
    ] {
        let check = parse_synccheck(&answer(name)).unwrap();
        assert_eq!(check.action(), SyncAction::SessionExpired(code), "{name}");
    }
    let failed: Notify =
        serde_json::from_str(&answer("urinx-issue58-webwxstatusnotify-1101.json")).unwrap();
    assert!(ret_ends_session(failed.base_response.ret));
    assert_eq!(failed.msg_id, "");
    let ok: Notify =
        serde_json::from_str(&answer("urinx-issue58-webwxstatusnotify-0.json")).unwrap();
    assert!(!ret_ends_session(ok.base_response.ret));
    assert_eq!(ok.msg_id, "6774292970486330821");
}

/// The login steps a 2018 protocol write-up (hotlcc/wechat4j) quotes, among them the 400
/// of an expired QR code and a 200 with its newline before `window.redirect_uri`.
#[test]
fn real_documented_login_steps_parse() {
    let dir = real_dir().join("answers");
    let answer = |name: &str| read(&dir.join(format!("hotlcc-{name}")));
    let uuid = parse_jslogin(&answer("jslogin.js")).unwrap();
    assert_eq!(uuid, "wcXrINkB9Q==");
    assert_eq!(
        parse_login_poll(&answer("login-400.js")).unwrap(),
        LoginPoll::Expired
    );
    let redirect_uri = confirmed_for(&answer("login-200.js"), &uuid);
    assert!(!redirect_uri.contains('\n'));
    let check = parse_synccheck(&answer("synccheck.js")).unwrap();
    assert_eq!(check.action(), SyncAction::Sync);
    let sync = parse_sync_response(&answer("webwxsync.json")).unwrap();
    assert_eq!(sync.add_msg_list.len(), 1);
    assert_eq!(sync.add_msg_list[0].msg_type, 51);
}

/// A 2016 client's test data (ming123jew/gowebwx): whole answers of two logins, entries
/// ending at `NewMsgId` (no `OriContent`, no `EncryFileName`).
#[test]
fn real_2016_answers_parse() {
    let dir = real_dir().join("answers");
    let answer = |name: &str| read(&dir.join(format!("gowebwx-{name}")));
    let init: InitResponse = serde_json::from_str(&answer("webwxinit.json")).unwrap();
    let init2: InitResponse = serde_json::from_str(&answer("webwxinit-2.json")).unwrap();
    assert_ne!(init.user.user_name, init2.user.user_name, "two logins");
    let page: GetContactResponse = serde_json::from_str(&answer("webwxgetcontact.json")).unwrap();
    assert_eq!(
        page.member_list.len(),
        7,
        "the whole address book of that login"
    );
    let batch: BatchContactResponse =
        serde_json::from_str(&answer("webwxbatchgetcontact.json")).unwrap();
    assert!(batch
        .contact_list
        .iter()
        .all(|c| is_group_name(&c.user_name)));
    // The second sync answer belongs to the first init's login: its status notify goes from
    // the account to itself.
    let sync = parse_sync_response(&answer("webwxsync-2.json")).unwrap();
    let notify = &sync.add_msg_list[0];
    assert_eq!((notify.msg_type, notify.status_notify_code), (51, 4));
    assert_eq!(notify.from_user_name, init.user.user_name);
    assert_eq!(notify.to_user_name, init.user.user_name);
    let other = parse_sync_response(&answer("webwxsync.json")).unwrap();
    assert_eq!(other.add_msg_list.len(), 1);
}
