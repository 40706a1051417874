//! Micro-benchmarks of the hot pure paths: one webwxsync answer of 100 mixed messages parsed,
//! normalized into events and serialized as the bus carries them (on one line, and in the
//! servers' one-member-per-line layout, whose entries are compacted for `raw`); and the
//! send-command parser on a typical command. The end-to-end numbers are `wxbridge-bench`'s.
use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use serde_json::{json, Map, Value};
use wxbridge::event::parse_command;
use wxbridge::wechat::compact::compact;
use wxbridge::wechat::contacts::ContactBook;
use wxbridge::wechat::message::{normalize, Context};
use wxbridge::wechat::protocol::{parse_sync_response, Contact, Member};
use wxbridge_fake::wx_escape;

const ME: &str = "@5e1f0c2a9b8d7e6f5a4b3c2d1e0f9a8b";
const MOM: &str = "@a81c3e5f7092b4d6f8a0c2e4f6a8b0c2";
const BOB: &str = "@b22d4f6a8c0e2a4c6e8a0c2e4a6c8e0a";
const SHOP: &str = "@c33e5a7c9e1a3c5e7a9c1e3a5c7e9a1c";
const FAMILY: &str = "@@9f3a6c9f2c5f8c1f4c7f0c3f6c9f2c5f8c1f4c7f0c3f6c9f2c5f8c1f4c7f0c3f";

/// The address book the bridge would hold: self, three friends, a group with its members.
fn book() -> ContactBook {
    let person = |user_name: &str, nick: &str, remark: &str| Contact {
        user_name: user_name.into(),
        nick_name: nick.into(),
        remark_name: remark.into(),
        ..Contact::default()
    };
    let member = |user_name: &str, nick: &str, display: &str| Member {
        user_name: user_name.into(),
        nick_name: nick.into(),
        display_name: display.into(),
    };
    let mut b = ContactBook::new(person(ME, "Sam", ""));
    b.upsert(person(MOM, "Alice", "Mom"));
    b.upsert(person(
        BOB,
        "Bob <span class=\"emoji emoji1f3c3\"></span>",
        "",
    ));
    b.upsert(person(SHOP, "Corner Shop &amp; Café", "shop"));
    b.upsert(Contact {
        user_name: FAMILY.into(),
        nick_name: "Family <span class=\"emoji emoji1f3e0\"></span>".into(),
        member_count: 4,
        member_list: vec![
            member(MOM, "Alice", "Mama"),
            member(BOB, "Bob", ""),
            member("@d44f6b8d0f2b4d6f8b0d2f4b6d8f0b2d", "Cousin Li", "小李"),
            member(ME, "Sam", "Sammy"),
        ]
        .into(),
        ..Contact::default()
    });
    b
}

/// An AddMsgList entry with every field a real one has.
fn entry(id: u64, from: &str, to: &str, msg_type: u32, content: &str, extra: Value) -> Value {
    let mut v = json!({
        "MsgId": id.to_string(), "FromUserName": from, "ToUserName": to, "MsgType": msg_type,
        "Content": content, "Status": 3, "ImgStatus": 1, "CreateTime": 1_795_969_201u64,
        "VoiceLength": 0, "PlayLength": 0, "FileName": "", "FileSize": "", "MediaId": "",
        "Url": "", "AppMsgType": 0, "StatusNotifyCode": 0, "StatusNotifyUserName": "",
        "RecommendInfo": {"UserName": "", "NickName": "", "QQNum": 0, "Province": "",
            "City": "", "Content": "", "Signature": "", "Alias": "", "Scene": 0,
            "VerifyFlag": 0, "AttrStatus": 0, "Sex": 0, "Ticket": "", "OpCode": 0},
        "ForwardFlag": 0, "AppInfo": {"AppID": "", "Type": 0}, "HasProductId": 0,
        "Ticket": "", "ImgHeight": 0, "ImgWidth": 0, "SubMsgType": 0, "NewMsgId": id,
        "OriContent": "", "EncryFileName": ""
    });
    if let (Some(m), Value::Object(extra)) = (v.as_object_mut(), extra) {
        m.extend(extra);
    }
    v
}

fn app_xml(kind: u32, title: &str, des: &str, url: &str, attach: &str) -> String {
    wx_escape(&format!(
        "<?xml version=\"1.0\"?>\n<msg>\n\t<appmsg appid=\"\" sdkver=\"0\">\n\t\t<title>{title}</title>\n\t\t<des>{des}</des>\n\t\t<type>{kind}</type>\n\t\t<url>{url}</url>\n\t\t{attach}\n\t</appmsg>\n\t<fromusername>wxid_a1b2c3</fromusername>\n</msg>\n"
    ))
}

/// Entry `i` of a realistic mix: private and group texts (emoji, entities, mentions, long
/// ones), links, images, voice, stickers, files, a location, a system notice, a status
/// notify (which is not a message), a text written on the phone.
fn mixed(i: usize) -> Value {
    let id = 7_000_000_000_000_000_001 + i as u64;
    let group = |member: &str, text: &str| format!("{member}:<br/>{}", wx_escape(text));
    match i % 20 {
        0 | 5 | 12 => entry(id, MOM, ME, 1, &wx_escape("on my way, see you at 7? 🙂"), json!({})),
        1 | 7 | 14 => entry(id, FAMILY, ME, 1, &group(BOB, "Dinner at Grandma's & \"bring\" the <cake> 🎂🎉"), json!({})),
        2 => entry(id, FAMILY, ME, 1, &group(MOM, "@Sammy\u{2005}can you pick up the kids?"), json!({})),
        3 => entry(id, SHOP, ME, 1, &wx_escape(&"Your order #1234 is ready.\nOpening hours 9–21, closed Mondays. ".repeat(6)), json!({})),
        4 => entry(id, BOB, ME, 49, &app_xml(5, "Ten hikes near the city", "Our pick for spring &amp; summer", "https://mp.weixin.qq.com/s?__biz=MzA5&amp;mid=2650", ""),
            json!({"AppMsgType": 5, "FileName": "Ten hikes near the city", "Url": "https://mp.weixin.qq.com/s?__biz=MzA5&mid=2650"})),
        6 => entry(id, MOM, ME, 3, &wx_escape("<?xml version=\"1.0\"?>\n<msg>\n\t<img aeskey=\"8a7f\" encryver=\"1\" cdnthumblength=\"3482\" length=\"48213\" md5=\"0c4f\" />\n</msg>\n"),
            json!({"ImgStatus": 2, "ImgHeight": 120, "ImgWidth": 90})),
        8 => entry(id, BOB, ME, 34, &wx_escape("<msg><voicemsg endflag=\"1\" voiceformat=\"4\" voicelength=\"4200\" length=\"5432\" /></msg>"), json!({"VoiceLength": 4200})),
        9 => entry(id, MOM, ME, 1, &wx_escape("好的，晚上见 👍"), json!({})),
        10 => entry(id, FAMILY, ME, 1, &group("@d44f6b8d0f2b4d6f8b0d2f4b6d8f0b2d", &"周六上午十点在老地方集合，别迟到。\n".repeat(8)), json!({})),
        11 => entry(id, BOB, ME, 47, &wx_escape("<msg><emoji fromusername = \"wxid_b\" type=\"2\" md5=\"1f2e\" len = \"40816\" width= \"240\" height= \"240\" ></emoji></msg>"), json!({"ImgStatus": 2})),
        13 => entry(id, SHOP, ME, 49, &app_xml(6, "Q3 report &amp; budget.pdf", "", "", "<appattach><totallen>482133</totallen><attachid>@cdn_1</attachid><fileext>pdf</fileext></appattach>"),
            json!({"AppMsgType": 6, "FileName": "Q3 report & budget.pdf", "FileSize": "482133", "MediaId": "@crypt_5d1e"})),
        15 => entry(id, MOM, ME, 1, "Sanlitun:<br/>/cgi-bin/mmwebwx-bin/webwxgetpubliclinkimg?url=xxx&amp;msgid=1&amp;pictype=location",
            json!({"SubMsgType": 48, "Url": "http://apis.map.qq.com/uri/v1/geocoder?coord=39.93,116.45"})),
        16 => entry(id, FAMILY, ME, 10000, &wx_escape("\"Cousin Li\" joined the group chat"), json!({})),
        17 => entry(id, ME, ME, 51, &wx_escape("<msg>\n<op id='4'>\n<username>filehelper</username>\n</op>\n</msg>"), json!({"StatusNotifyCode": 4})),
        18 => entry(id, ME, MOM, 1, &wx_escape("call you later"), json!({})),
        _ => entry(id, FAMILY, ME, 3, &group(MOM, "<?xml version=\"1.0\"?>\n<msg><img length=\"91234\" /></msg>"), json!({"ImgStatus": 2})),
    }
}

/// A webwxsync answer with 100 mixed entries, on one line.
fn sync_body() -> String {
    sync_value().to_string()
}

/// The same answer in the real servers' layout (one member per line, PROTOCOL.md §8.7): the
/// entries' `raw` must be compacted.
fn wire_body() -> String {
    wxbridge_fake::wire_json(&sync_value())
}

fn sync_value() -> Value {
    let list: Vec<Value> = (0..100).map(mixed).collect();
    let key =
        json!({"Count": 2, "List": [{"Key": 1, "Val": 654321100}, {"Key": 2, "Val": 654321140}]});
    let mut body = Map::new();
    body.insert("BaseResponse".into(), json!({"Ret": 0, "ErrMsg": ""}));
    body.insert("AddMsgCount".into(), json!(list.len()));
    body.insert("AddMsgList".into(), Value::Array(list));
    for k in ["ModContactList", "DelContactList", "ModChatRoomMemberList"] {
        body.insert(k.into(), json!([]));
    }
    body.insert("ContinueFlag".into(), json!(0));
    body.insert("SyncKey".into(), key.clone());
    body.insert("SyncCheckKey".into(), key);
    body.insert("SKey".into(), json!(""));
    Value::Object(body)
}

/// Parse, normalize every entry, serialize every event: what the sync loop does per answer.
fn relay(body: &str, book: &ContactBook) -> usize {
    let resp = parse_sync_response(body).expect("the body parses");
    let ctx = Context {
        account: "home",
        book,
        sent_by_bridge: None,
    };
    resp.add_msg_list
        .iter()
        .filter_map(|m| normalize(m, &ctx))
        .map(|e| serde_json::to_vec(&e).expect("an event serializes").len())
        .sum()
}

fn sync_answer(c: &mut Criterion) {
    let body = sync_body();
    let book = book();
    assert!(relay(&body, &book) > 0);
    let parsed = parse_sync_response(&body).expect("the body parses");
    let mut g = c.benchmark_group("webwxsync_100_mixed");
    g.throughput(Throughput::Elements(100));
    g.bench_function("parse", |b| {
        b.iter(|| parse_sync_response(black_box(&body)).map(|r| r.add_msg_list.len()))
    });
    g.bench_function("normalize_and_serialize", |b| {
        let ctx = Context {
            account: "home",
            book: &book,
            sent_by_bridge: None,
        };
        b.iter(|| {
            black_box(&parsed)
                .add_msg_list
                .iter()
                .filter_map(|m| normalize(m, &ctx))
                .map(|e| serde_json::to_vec(&e).map(|v| v.len()).unwrap_or(0))
                .sum::<usize>()
        })
    });
    g.bench_function("parse_normalize_serialize", |b| {
        b.iter(|| relay(black_box(&body), &book))
    });
    // The servers' layout: the same parse plus compacting each entry for `raw`.
    let wire = wire_body();
    g.bench_function("parse_wire_layout", |b| {
        b.iter(|| parse_sync_response(black_box(&wire)).map(|r| r.add_msg_list.len()))
    });
    g.bench_function("parse_normalize_serialize_wire_layout", |b| {
        b.iter(|| relay(black_box(&wire), &book))
    });
    // The compaction alone, over the 100 entries' texts as the servers lay them out.
    let entries: Vec<String> = (0..100)
        .map(|i| wxbridge_fake::wire_json(&mixed(i)))
        .collect();
    g.bench_function("compact_wire_entries", |b| {
        b.iter(|| {
            black_box(&entries)
                .iter()
                .map(|e| compact(e.trim_end()).len())
                .sum::<usize>()
        })
    });
    g.finish();
}

fn send_command(c: &mut Criterion) {
    let typical =
        br#"{"to":"Mom","text":"on my way, see you at 7 \ud83d\ude42","request_id":"r-17","expires_at":"2026-11-28T18:00:00Z"}"#;
    assert!(parse_command(typical, 65536).is_ok());
    c.bench_function("parse_command/typical", |b| {
        b.iter(|| parse_command(black_box(typical), 65536))
    });
}

criterion_group!(benches, sync_answer, send_command);
criterion_main!(benches);
