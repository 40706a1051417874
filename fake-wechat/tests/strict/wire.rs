//! The wire layout (PROTOCOL.md §2, §8.7): JSON answers as `text/plain` with one object member
//! per line, as captured from the real servers; gzip when the client accepts it.

use std::collections::BTreeSet;
use std::io::Read;

use serde_json::{json, Value};
use wxbridge_fake::{FakeWeChat, Msg, Options};

use crate::support::{fast, logged_in, start, Client};

/// A webwxsync answer in the layout of the captures (values made up): every member on its
/// own line, `}` closing on its own line and followed by a line break, `,{` between array
/// items, `[{` opening a list, `[]` for an empty one, two line breaks after an object that is
/// the last member (`}\n\n}`), a final newline.
const CAPTURED_LAYOUT: &str = "{\n\"BaseResponse\": {\n\"Ret\": 0,\n\"ErrMsg\": \"\"\n}\n,\n\"AddMsgCount\": 1,\n\"AddMsgList\": [{\n\"MsgId\": \"1234567890123456789\",\n\"FromUserName\": \"@@0a1b\",\n\"ToUserName\": \"@2c3d\",\n\"MsgType\": 1,\n\"Content\": \"@4e5f:<br/>see you at 7\",\n\"Status\": 3,\n\"RecommendInfo\": {\n\"UserName\": \"\",\n\"QQNum\": 0,\n\"OpCode\": 0\n}\n,\n\"ForwardFlag\": 0,\n\"AppInfo\": {\n\"AppID\": \"\",\n\"Type\": 0\n}\n,\n\"NewMsgId\": 1234567890123456789\n}\n],\n\"ModContactCount\": 0,\n\"ModContactList\": [],\n\"Profile\": {\n\"BitFlag\": 0,\n\"UserName\": {\n\"Buff\": \"\"\n}\n,\n\"Signature\": \"\"\n}\n,\n\"ContinueFlag\": 0,\n\"SyncKey\": {\n\"Count\": 2,\n\"List\": [{\n\"Key\": 1,\n\"Val\": 654321001\n}\n,{\n\"Key\": 1000,\n\"Val\": 1700000000\n}\n]\n}\n,\n\"SKey\": \"\",\n\"SyncCheckKey\": {\n\"Count\": 1,\n\"List\": [{\n\"Key\": 1,\n\"Val\": 654321001\n}\n]\n}\n\n}\n";

/// What kind of line each line of `text` is: punctuation as is, a member as `"K": ` plus
/// `{`, `[{`, `[]` or `scalar`, with any trailing comma.
fn line_kinds(text: &str) -> BTreeSet<String> {
    let is_scalar =
        |s: &str| serde_json::from_str::<Value>(s).is_ok_and(|v| !v.is_object() && !v.is_array());
    text.lines()
        .map(|line| {
            let Some(rest) = line
                .strip_prefix('"')
                .and_then(|l| l.split_once("\": "))
                .map(|(_, r)| r)
            else {
                return line.to_owned();
            };
            let kind = match rest {
                "{" | "[{" | "[]," => rest.to_owned(),
                // An empty list may be an answer's last member (webwxsync's refusal ends
                // with AddMsgList), where no comma follows it.
                "[]" => "[],".to_owned(),
                r if is_scalar(r) => "scalar".to_owned(),
                r if r.strip_suffix(',').is_some_and(is_scalar) => "scalar,".to_owned(),
                r => format!("unexpected: {r}"),
            };
            format!("\"K\": {kind}")
        })
        .collect()
}

/// Asserts `text` is laid out as the captures are, and returns it parsed.
fn assert_wire(endpoint: &str, text: &str) -> Value {
    let seen = line_kinds(text);
    let captured = line_kinds(CAPTURED_LAYOUT);
    let extra: Vec<_> = seen.difference(&captured).collect();
    assert!(
        extra.is_empty(),
        "{endpoint}: lines no capture has: {extra:?}\n{text}"
    );
    assert!(
        text.starts_with("{\n\"") && text.ends_with("\n}\n"),
        "{endpoint}: {text}"
    );
    serde_json::from_str(text).unwrap_or_else(|e| panic!("{endpoint}: {e}\n{text}"))
}

/// A client that never decompresses by itself, whatever reqwest features the workspace
/// enables, so a test sees the bytes the fake sent. webwxinit needs no cookies.
fn raw_http() -> reqwest::Client {
    reqwest::Client::builder().no_gzip().build().unwrap()
}

/// POSTs JSON and returns the answer's Content-Type and text.
async fn post_text(c: &Client, endpoint: &str, body: &Value) -> (String, String) {
    let resp = c
        .http
        .post(c.cgi(endpoint))
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    let ct = resp.headers()["content-type"].to_str().unwrap().to_owned();
    (ct, resp.text().await.unwrap())
}

#[test]
fn the_captured_layout_reads_as_json() {
    let v: Value = serde_json::from_str(CAPTURED_LAYOUT).unwrap();
    assert_eq!(
        v["AddMsgList"][0]["NewMsgId"].as_u64(),
        Some(1234567890123456789)
    );
    assert!(line_kinds(CAPTURED_LAYOUT)
        .iter()
        .all(|k| !k.contains("unexpected")));
}

#[tokio::test]
async fn every_json_answer_has_one_member_per_line_as_captured() {
    let fake = start().await;
    let group = fake.add_group("Family", &[("Alice", "Mama")], true);
    let mut c = logged_in(&fake).await;
    let friend = fake.add_contact("Bob", "");
    fake.queue(Msg::text(&friend, "hi\nthere, {\"a\": [1]}"));
    fake.queue(Msg::friend_request("Carol", "hello"));
    let br = c.base_request();
    let calls = [
        ("webwxinit", json!({"BaseRequest": br})),
        (
            "webwxstatusnotify",
            json!({"BaseRequest": br, "Code": 3, "FromUserName": c.me, "ToUserName": c.me, "ClientMsgId": 1}),
        ),
        (
            "webwxbatchgetcontact",
            json!({"BaseRequest": br, "Count": 1, "List": [{"UserName": group.user_name, "EncryChatRoomId": ""}]}),
        ),
        (
            "webwxsync",
            json!({"BaseRequest": br, "SyncKey": c.sync_key, "rr": -1}),
        ),
        (
            "webwxsendmsg",
            json!({"BaseRequest": br, "Msg": {"Type": 1, "Content": "ok", "FromUserName": c.me,
                "ToUserName": friend, "LocalID": "17000000001230456", "ClientMsgId": "17000000001230456"}, "Scene": 0}),
        ),
        // A refusal is laid out the same way.
        (
            "webwxsync",
            json!({"BaseRequest": br, "SyncKey": {"Count": 0, "List": []}}),
        ),
    ];
    for (endpoint, body) in calls {
        let (ct, text) = post_text(&c, endpoint, &body).await;
        assert_eq!(ct, "text/plain", "{endpoint}");
        let v = assert_wire(endpoint, &text);
        if endpoint == "webwxsync" && v["BaseResponse"]["Ret"] == 0 {
            assert_eq!(v["AddMsgCount"], 2, "{text}");
            assert!(text.contains("\"AddMsgList\": [{\n\""), "{text}");
            assert!(
                text.contains("\n}\n,{\n\""),
                "items joined as captured: {text}"
            );
            assert!(text.contains("\n}\n],\n\"ModContactCount\""), "{text}");
            assert!(text.contains("\"RecommendInfo\": {\n\""), "{text}");
            c.sync_key = v["SyncKey"].clone();
        }
    }
    let contacts = c
        .http
        .get(c.cgi("webwxgetcontact"))
        .query(&[("r", "1"), ("seq", "0"), ("skey", c.skey.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(contacts.headers()["content-type"], "text/plain");
    let text = contacts.text().await.unwrap();
    let v = assert_wire("webwxgetcontact", &text);
    assert!(v["MemberCount"].as_u64().unwrap() > 1);
}

#[tokio::test]
async fn the_sync_key_is_written_byte_for_byte_as_captured() {
    let fake = start().await;
    let mut c = logged_in(&fake).await;
    fake.queue(Msg::text(&fake.add_contact("Bob", ""), "hi"));
    let body = json!({"BaseRequest": c.base_request(), "SyncKey": c.sync_key, "rr": -1});
    let (_, text) = post_text(&c, "webwxsync", &body).await;
    let v: Value = serde_json::from_str(&text).unwrap();
    let items: Vec<String> = v["SyncKey"]["List"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| format!("{{\n\"Key\": {},\n\"Val\": {}\n}}", k["Key"], k["Val"]))
        .collect();
    let expected = format!(
        "\n\"SyncKey\": {{\n\"Count\": {},\n\"List\": [{}\n]\n}}\n,\n",
        v["SyncKey"]["Count"],
        items.join("\n,")
    );
    assert!(text.contains(&expected), "{expected}\nnot in\n{text}");
    assert!(text.starts_with("{\n\"BaseResponse\": {\n"), "{text}");
    c.sync_key = v["SyncKey"].clone();
}

#[tokio::test]
async fn answers_are_gzipped_whole_when_the_client_accepts_gzip() {
    let fake = start().await;
    let c = logged_in(&fake).await;
    let body = json!({"BaseRequest": c.base_request()}).to_string();
    let http = raw_http();
    let plain = http
        .post(c.cgi("webwxinit"))
        .body(body.clone())
        .send()
        .await
        .unwrap();
    assert!(plain.headers().get("content-encoding").is_none());
    let plain = plain.text().await.unwrap();

    let packed = http
        .post(c.cgi("webwxinit"))
        .header("accept-encoding", "gzip, deflate")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(packed.headers()["content-encoding"], "gzip");
    assert_eq!(packed.headers()["content-type"], "text/plain");
    let length: usize = packed.headers()["content-length"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    let bytes = packed.bytes().await.unwrap();
    assert_eq!(bytes.len(), length);
    let mut text = String::new();
    flate2::read::GzDecoder::new(&bytes[..])
        .read_to_string(&mut text)
        .unwrap();
    // Same layout; only SystemTime may have moved on.
    assert_eq!(line_kinds(&text), line_kinds(&plain));
    assert_wire("webwxinit (gzip)", &text);

    let js = http
        .get(format!("{}/jslogin", c.base))
        .query(&[("appid", crate::support::APPID), ("fun", "new")])
        .header("accept-encoding", "gzip")
        .send()
        .await
        .unwrap();
    assert_eq!(js.headers()["content-encoding"], "gzip");
}

#[tokio::test]
async fn compact_json_answers_on_one_line_for_the_benchmark() {
    let fake = FakeWeChat::start_with(Options {
        compact_json: true,
        gzip: false,
        ..fast()
    })
    .await;
    let c = logged_in(&fake).await;
    let resp = raw_http()
        .post(c.cgi("webwxinit"))
        .header("accept-encoding", "gzip")
        .body(json!({"BaseRequest": c.base_request()}).to_string())
        .send()
        .await
        .unwrap();
    assert!(resp.headers().get("content-encoding").is_none());
    let text = resp.text().await.unwrap();
    assert!(!text.contains('\n'), "{text}");
    assert_eq!(
        serde_json::from_str::<Value>(&text).unwrap()["BaseResponse"]["Ret"],
        0
    );
}
