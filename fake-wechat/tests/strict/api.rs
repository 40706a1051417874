//! The JSON calls (§2–§5, §9.1): BaseRequest, pass_ticket, contacts, sending, faults.

use std::time::Duration;

use serde_json::{json, Value};
use wxbridge_fake::Fault;

use crate::support::{http, logged_in, start};

#[tokio::test]
async fn a_json_post_without_base_request_is_1100() {
    let fake = start().await;
    let c = logged_in(&fake).await;
    let (_, v) = c.post("webwxinit", &json!({})).await;
    assert_eq!(v["BaseResponse"]["Ret"], 1100);
}

#[tokio::test]
async fn a_wrong_sid_or_skey_in_base_request_is_1101() {
    let fake = start().await;
    let c = logged_in(&fake).await;
    for (field, value) in [("Sid", "nope"), ("Skey", "@crypt_0_0")] {
        let mut br = c.base_request();
        br[field] = json!(value);
        let (_, v) = c.post("webwxinit", &json!({"BaseRequest": br})).await;
        assert_eq!(v["BaseResponse"]["Ret"], 1101, "{field}");
    }
}

#[tokio::test]
async fn uin_as_a_string_no_device_id_and_no_content_type_are_accepted() {
    let fake = start().await;
    let c = logged_in(&fake).await;
    let body = json!({"BaseRequest": {"Uin": c.uin, "Sid": c.sid, "Skey": c.skey}});
    let text = c
        .http
        .post(c.cgi("webwxinit"))
        .body(body.to_string())
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let v: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v["BaseResponse"]["Ret"], 0);
}

#[tokio::test]
async fn pass_ticket_must_match_after_one_or_two_decodes() {
    let fake = start().await;
    let c = logged_in(&fake).await;
    let body = json!({"BaseRequest": c.base_request()}).to_string();
    let init = |query: String| {
        let (c, body) = (&c, body.clone());
        async move {
            let url = format!("{}?r=1&pass_ticket={query}", c.cgi("webwxinit"));
            let text = c
                .http
                .post(url)
                .body(body)
                .send()
                .await
                .unwrap()
                .text()
                .await
                .unwrap();
            serde_json::from_str::<Value>(&text).unwrap()["BaseResponse"]["Ret"].clone()
        }
    };
    // itchat pastes the ticket raw; the official client encodes it once more.
    assert_eq!(init(c.pass_ticket.clone()).await, 0);
    assert_eq!(init(c.pass_ticket.replace('%', "%25")).await, 0);
    // decoding it before pasting turns '+' into a space
    let decoded = c
        .pass_ticket
        .replace("%2B", "+")
        .replace("%2F", "/")
        .replace("%3D", "=");
    assert_ne!(init(decoded).await, 0);
    assert_ne!(init("wrong".into()).await, 0);
}

#[tokio::test]
async fn getcontact_needs_the_session_cookies() {
    let fake = start().await;
    let c = logged_in(&fake).await;
    let text = http(false)
        .get(c.cgi("webwxgetcontact"))
        .query(&[("seq", "0"), ("skey", &c.skey)])
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(
        serde_json::from_str::<Value>(&text).unwrap()["BaseResponse"]["Ret"],
        1102
    );
}

#[tokio::test]
async fn batchgetcontact_takes_at_most_50_and_resolves_members() {
    let fake = start().await;
    let c = logged_in(&fake).await;
    let g = fake.add_group("Family", &[("Alice", "Mum"), ("Carol", "")], false);
    let getcontact = c.contact_page(0).await;
    assert!(
        !getcontact.contains(&g.user_name),
        "an unsaved group is not in the address book"
    );
    let list: Vec<Value> = (0..51)
        .map(|_| json!({"UserName": g.user_name, "EncryChatRoomId": ""}))
        .collect();
    let (_, v) = c
        .post(
            "webwxbatchgetcontact",
            &json!({"BaseRequest": c.base_request(), "Count": 51, "List": list}),
        )
        .await;
    assert_eq!(v["BaseResponse"]["Ret"], 1);
    let (_, v) = c
        .post(
            "webwxbatchgetcontact",
            &json!({"BaseRequest": c.base_request(), "Count": 2, "List": [
        {"UserName": g.user_name, "EncryChatRoomId": ""},
        {"UserName": g.members[0].user_name, "EncryChatRoomId": g.user_name}]}),
        )
        .await;
    let group = &v["ContactList"][0];
    assert_eq!(group["EncryChatRoomId"], g.encry_chat_room_id.as_str());
    assert_eq!(group["MemberList"][0]["DisplayName"], "Mum");
    assert_eq!(
        group["MemberList"][2]["UserName"],
        fake.self_user().user_name.as_str()
    );
    assert_eq!(v["ContactList"][1]["NickName"], "Alice");
}

#[tokio::test]
async fn sendmsg_refuses_what_the_server_refuses() {
    let fake = start().await;
    let c = logged_in(&fake).await;
    let bob = fake.add_contact("Bob", "");
    let send = |msg: Value| {
        let c = &c;
        async move {
            let (_, v) = c
                .post(
                    "webwxsendmsg",
                    &json!({"BaseRequest": c.base_request(), "Msg": msg, "Scene": 0}),
                )
                .await;
            v
        }
    };
    let ok = json!({"Type": 1, "Content": "hi", "FromUserName": c.me, "ToUserName": bob, "LocalID": 1, "ClientMsgId": 1});
    let with = |k: &str, v: Value| {
        let mut m = ok.clone();
        m[k] = v;
        m
    };
    assert_eq!(send(with("Type", json!(3))).await["BaseResponse"]["Ret"], 1);
    assert_eq!(
        send(with("FromUserName", json!(bob))).await["BaseResponse"]["Ret"],
        1
    );
    assert_eq!(
        send(with("ToUserName", json!("@unknown"))).await["BaseResponse"]["Ret"],
        1
    );
    assert_eq!(
        send(with("ClientMsgId", json!(2))).await["BaseResponse"]["Ret"],
        1
    );
    let to_self = send(with("ToUserName", json!(c.me))).await;
    assert_eq!(
        (
            to_self["BaseResponse"]["Ret"].clone(),
            to_self["MsgID"].clone()
        ),
        (json!(1204), json!(""))
    );
    assert!(fake.sent().is_empty());
    // numbers and strings for LocalID, filehelper as a recipient
    assert_eq!(send(ok.clone()).await["LocalID"], "1");
    let mut fh = with("ToUserName", json!("filehelper"));
    fh["LocalID"] = json!("17000000001230456");
    fh["ClientMsgId"] = json!("17000000001230456");
    assert_eq!(send(fh).await["BaseResponse"]["Ret"], 0);
    assert_eq!(fake.sent().len(), 2);
}

#[tokio::test]
async fn fail_sends_and_echo_sent() {
    let fake = start().await;
    let mut c = logged_in(&fake).await;
    fake.echo_sent(true);
    fake.fail_sends(1205, 1);
    let first = c.send_text("filehelper", "a <b>", json!(5)).await;
    assert_eq!(first["BaseResponse"]["Ret"], 0);
    assert_eq!(
        c.send_text("filehelper", "b", json!(6)).await["BaseResponse"]["Ret"],
        1205
    );
    let v = c.sync().await;
    let echo = &v["AddMsgList"][0];
    assert_eq!(echo["MsgId"], first["MsgID"]);
    assert_eq!(
        (echo["FromUserName"].as_str(), echo["ToUserName"].as_str()),
        (Some(c.me.as_str()), Some("filehelper"))
    );
    assert_eq!(echo["Content"], "a &lt;b&gt;");
}

#[tokio::test]
async fn scheduled_faults_hit_the_next_requests_only() {
    let fake = start().await;
    let mut c = logged_in(&fake).await;
    fake.fault("webwxsync", Fault::Status(500), 1);
    fake.fault("webwxsync", Fault::Garbage, 1);
    fake.fault("synccheck", Fault::Slow(Duration::from_millis(300)), 1);
    let body = json!({"BaseRequest": c.base_request(), "SyncKey": c.sync_key, "rr": 1});
    let r = c
        .http
        .post(c.cgi("webwxsync"))
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 500);
    let r = c
        .http
        .post(c.cgi("webwxsync"))
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    assert!(serde_json::from_str::<Value>(&r.text().await.unwrap()).is_err());
    assert_eq!(c.sync().await["BaseResponse"]["Ret"], 0);
    let t = tokio::time::Instant::now();
    c.synccheck().await;
    assert!(t.elapsed() >= Duration::from_millis(300));
    assert_eq!(fake.requests("webwxsync").len(), 3);
}
