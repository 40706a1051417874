//! Receiving (§6, §7): synccheck's session checks, SyncKey positions, batching, skey rotation.

use std::time::Duration;

use serde_json::json;
use tokio::time::Instant;
use wxbridge_fake::{FakeWeChat, Msg, Options};

use crate::support::{fast, http, logged_in, start};

const IDLE: &str = "window.synccheck={retcode:\"0\",selector:\"0\"}";
const NEW: &str = "window.synccheck={retcode:\"0\",selector:\"2\"}";

fn retcode(code: u32) -> String {
    format!("window.synccheck={{retcode:\"{code}\",selector:\"0\"}}")
}

#[tokio::test]
async fn synccheck_without_session_cookies_is_1102() {
    let fake = start().await;
    let c = logged_in(&fake).await;
    assert_eq!(
        c.synccheck_with(&http(false), &c.check_key).await,
        retcode(1102)
    );
    assert_eq!(c.synccheck().await, IDLE);
}

#[tokio::test]
async fn synccheck_with_a_wrong_skey_sid_or_uin_is_1101() {
    let fake = start().await;
    let mut c = logged_in(&fake).await;
    let good = (c.skey.clone(), c.sid.clone(), c.uin.clone());
    c.skey = "@crypt_00000000_00000000000000000000000000000000".into();
    assert_eq!(c.synccheck().await, retcode(1101));
    c.skey = good.0;
    c.sid.push('x');
    assert_eq!(c.synccheck().await, retcode(1101));
    c.sid = good.1;
    c.uin = "1".into();
    assert_eq!(c.synccheck().await, retcode(1101));
}

#[tokio::test]
async fn an_expired_session_answers_the_chosen_code_everywhere() {
    let fake = FakeWeChat::start_with(Options {
        sync_hold: Duration::from_secs(5),
        ..fast()
    })
    .await;
    let mut c = logged_in(&fake).await;
    let t = Instant::now();
    let (body, _) = tokio::join!(c.synccheck(), async {
        tokio::time::sleep(Duration::from_millis(100)).await;
        fake.expire_session(1102);
    });
    assert_eq!(body, retcode(1102));
    assert!(t.elapsed() < Duration::from_secs(2), "a held poll is woken");
    assert_eq!(c.sync().await["BaseResponse"]["Ret"], 1102);
}

#[tokio::test]
async fn a_held_synccheck_returns_at_once_when_a_message_is_queued() {
    let fake = FakeWeChat::start_with(Options {
        sync_hold: Duration::from_secs(5),
        ..fast()
    })
    .await;
    let c = logged_in(&fake).await;
    let friend = fake.add_contact("Bob", "");
    let t = Instant::now();
    let (body, _) = tokio::join!(c.synccheck(), async {
        tokio::time::sleep(Duration::from_millis(100)).await;
        fake.queue(Msg::text(&friend, "hi"));
    });
    assert_eq!(body, NEW);
    assert!(t.elapsed() < Duration::from_secs(2));
}

#[tokio::test]
async fn a_stale_sync_key_gets_history_again() {
    let fake = start().await;
    let mut c = logged_in(&fake).await;
    let friend = fake.add_contact("Bob", "");
    let stale = c.sync_key.clone();
    let first = fake.queue(Msg::text(&friend, "one"));
    assert_eq!(
        c.sync().await["AddMsgList"][0]["MsgId"],
        first.msg_id.as_str()
    );
    assert_eq!(
        c.sync().await["AddMsgCount"],
        0,
        "the advanced key acknowledges"
    );
    c.sync_key = stale;
    let replay = c.sync().await;
    assert_eq!(
        replay["AddMsgList"][0]["MsgId"],
        first.msg_id.as_str(),
        "a stale key replays"
    );
}

#[tokio::test]
async fn a_sync_key_with_count_0_or_malformed_is_refused() {
    let fake = start().await;
    let mut c = logged_in(&fake).await;
    c.sync_key = json!({"Count": 0, "List": []});
    assert_ne!(c.sync().await["BaseResponse"]["Ret"], 0);
    c.sync_key = json!({"Count": 1, "List": [{"Key": "1", "Val": "x"}]});
    assert_ne!(c.sync().await["BaseResponse"]["Ret"], 0);
    c.sync_key = json!({"Count": 4, "List": [{"Key": 1, "Val": 1}]});
    assert_ne!(c.sync().await["BaseResponse"]["Ret"], 0);
}

#[tokio::test]
async fn more_than_100_messages_come_in_batches() {
    let fake = FakeWeChat::start_with(Options {
        sync_hold: Duration::from_secs(5),
        ..fast()
    })
    .await;
    let mut c = logged_in(&fake).await;
    let friend = fake.add_contact("Bob", "");
    for i in 0..150 {
        fake.queue(Msg::text(&friend, &format!("m{i}")));
    }
    let first = c.sync().await;
    assert_eq!(first["AddMsgCount"], 100);
    assert_eq!(first["ContinueFlag"], 1);
    let t = Instant::now();
    assert_eq!(c.synccheck().await, NEW);
    assert!(
        t.elapsed() < Duration::from_secs(2),
        "not held: more are waiting"
    );
    let second = c.sync().await;
    assert_eq!(second["AddMsgCount"], 50);
    assert_eq!(second["AddMsgList"][49]["Content"], "m149");
    assert_eq!(c.synccheck().await, IDLE);
}

#[tokio::test]
async fn ids_are_strings_and_big_numbers_and_json_is_text_plain() {
    let fake = start().await;
    let mut c = logged_in(&fake).await;
    let friend = fake.add_contact("Bob", "");
    let q = fake.queue(Msg::file(&friend, "a.pdf", 48213));
    assert!(q.new_msg_id > 1 << 53);
    let body = json!({"BaseRequest": c.base_request(), "SyncKey": c.sync_key, "rr": -1});
    let (headers, v) = c.post("webwxsync", &body).await;
    assert_eq!(headers["content-type"], "text/plain");
    let m = &v["AddMsgList"][0];
    assert!(m["MsgId"].is_string() && m["FileSize"] == "48213");
    assert_eq!(
        m["NewMsgId"].as_u64(),
        Some(q.new_msg_id),
        "an integer, not a float"
    );
    assert!(headers
        .get_all("set-cookie")
        .iter()
        .any(|h| h.to_str().unwrap().starts_with("wxsid=")));
    c.sync_key = v["SyncKey"].clone();
}

#[tokio::test]
async fn after_skey_rotation_only_the_new_skey_is_accepted() {
    let fake = start().await;
    let mut c = logged_in(&fake).await;
    let old = c.skey.clone();
    fake.rotate_skey();
    let v = c.sync().await;
    let new = v["SKey"].as_str().unwrap().to_owned();
    assert!(!new.is_empty() && new != old);
    assert_eq!(c.synccheck().await, IDLE);
    assert_eq!(c.sync().await["SKey"], "", "no rotation pending");
    c.skey = old;
    assert_eq!(c.sync().await["BaseResponse"]["Ret"], 1101);
    assert_eq!(c.synccheck().await, retcode(1101));
}

#[tokio::test]
async fn contact_changes_arrive_in_webwxsync() {
    let fake = start().await;
    let mut c = logged_in(&fake).await;
    let bob = fake.add_contact("Bob", "");
    fake.set_remark(&bob, "Uncle Bob");
    fake.push_mod_contact(&bob);
    fake.push_del_contact(&bob);
    assert_eq!(
        c.synccheck().await,
        "window.synccheck={retcode:\"0\",selector:\"4\"}"
    );
    let v = c.sync().await;
    assert_eq!(v["ModContactList"][0]["RemarkName"], "Uncle Bob");
    assert_eq!(v["DelContactList"][0]["UserName"], bob.as_str());
    assert_eq!(v["AddMsgCount"], 0);
}
