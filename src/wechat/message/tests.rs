//! Unit tests of `message`.
use super::*;
use crate::event::Event;
use crate::wechat::protocol::{parse_sync_response, Contact, Member};

fn book() -> ContactBook {
    let mut b = ContactBook::new(Contact {
        user_name: "@self".into(),
        nick_name: "Sam".into(),
        ..Contact::default()
    });
    b.upsert(Contact {
        user_name: "@a81".into(),
        nick_name: "Alice".into(),
        remark_name: "Mom".into(),
        ..Contact::default()
    });
    b.upsert(Contact {
        user_name: "@@9f3".into(),
        nick_name: "Family <span class=\"emoji emoji1f3e0\"></span>".into(),
        member_count: 3,
        member_list: vec![
            Member {
                user_name: "@a81".into(),
                nick_name: "Alice".into(),
                display_name: "Mama".into(),
            },
            Member {
                user_name: "@b22".into(),
                nick_name: "Bob".into(),
                display_name: String::new(),
            },
            Member {
                user_name: "@self".into(),
                nick_name: "Sam".into(),
                display_name: "Sammy".into(),
            },
        ]
        .into(),
        ..Contact::default()
    });
    b
}

/// Parses entries the way the sync code does, so `raw` is set as in production.
fn entries(list: &str) -> Vec<AddMsg> {
    let body = format!(
        r#"{{"BaseResponse":{{"Ret":0,"ErrMsg":""}},"AddMsgCount":1,"AddMsgList":[{list}],
        "ModContactList":[],"DelContactList":[],"SyncKey":{{"Count":0,"List":[]}},"SKey":""}}"#
    );
    parse_sync_response(&body).unwrap().add_msg_list
}

fn one(entry: &str) -> MessageEvent {
    one_with(entry, None)
}

fn one_with(entry: &str, sent_by_bridge: Option<Option<&str>>) -> MessageEvent {
    let book = book();
    let ctx = Context {
        account: "home",
        book: &book,
        sent_by_bridge,
    };
    normalize(&entries(entry)[0], &ctx).expect("a message")
}

#[test]
fn group_text_resolves_the_member_and_strips_the_prefix() {
    let e = one(
        r#"{"MsgId":"4839201934821","NewMsgId":4839201934821,"FromUserName":"@@9f3","ToUserName":"@self",
        "MsgType":1,"Content":"@a81:<br/>dinner at 7? &lt;3 <span class=\"emoji emoji1f604\"></span>",
        "CreateTime":1795882801,"FileSize":"","SubMsgType":0}"#,
    );
    assert_eq!(e.message_type, MessageType::Text);
    assert_eq!(e.text.as_deref(), Some("dinner at 7? <3 😄"));
    assert_eq!(e.chat.id, "@@9f3");
    assert_eq!(e.chat.name, "Family 🏠");
    assert!(e.chat.group);
    assert_eq!(e.from.id, "@a81");
    assert_eq!(e.from.name, "Mama");
    assert_eq!(e.from.remark.as_deref(), Some("Mom"));
    assert!(!e.from.is_self);
    assert_eq!(e.origin, Origin::Contact);
    assert!(!e.mentioned);
    let line = serde_json::to_string(&e).unwrap();
    assert!(line.contains(r#""time":"2026-11-28T16:20:01Z""#), "{line}");
    assert!(line.contains(r#""raw":{"MsgId":"4839201934821""#), "{line}");
    let back: Event = serde_json::from_str(&line).unwrap();
    assert_eq!(back.name(), "message");
}

#[test]
fn member_without_display_name_is_named_by_nickname_or_id() {
    let e = one(
        r#"{"MsgId":"2","FromUserName":"@@9f3","ToUserName":"@self","MsgType":1,"Content":"@b22:<br/>yo"}"#,
    );
    assert_eq!(e.from.name, "Bob");
    assert_eq!(e.from.remark, None);
    let e = one(
        r#"{"MsgId":"3","FromUserName":"@@9f3","ToUserName":"@self","MsgType":1,"Content":"@zz9:<br/>yo"}"#,
    );
    assert_eq!(e.from.name, "@zz9");
    assert_eq!(e.text.as_deref(), Some("yo"));
}

#[test]
fn mention_of_self_group_name_is_detected() {
    let entry = |text: &str| {
        format!(
            r#"{{"MsgId":"4","FromUserName":"@@9f3","ToUserName":"@self","MsgType":1,"Content":"@b22:<br/>{text}"}}"#
        )
    };
    assert!(one(&entry("@Sammy\u{2005}come here")).mentioned);
    assert!(one(&entry("over to @Sammy")).mentioned);
    assert!(!one(&entry("@Sammyx hi")).mentioned);
    assert!(!one(&entry("@Sam\u{2005}hi")).mentioned);
}

#[test]
fn message_from_self_on_the_phone_goes_to_the_recipient_chat() {
    let e = one(
        r#"{"MsgId":"5","FromUserName":"@self","ToUserName":"@a81","MsgType":1,"Content":"on my way"}"#,
    );
    assert_eq!(e.origin, Origin::Phone);
    assert_eq!(e.request_id, None);
    assert_eq!(e.chat.id, "@a81");
    assert_eq!(e.chat.name, "Mom");
    assert!(!e.chat.group);
    assert!(e.from.is_self);
    assert_eq!(e.from.name, "Sam");
    let e = one(
        r#"{"MsgId":"6","FromUserName":"@self","ToUserName":"@@9f3","MsgType":1,"Content":"@Sammy\u2005me"}"#,
    );
    assert_eq!(e.chat.id, "@@9f3");
    assert_eq!(e.from.name, "Sammy");
    assert!(!e.mentioned);
}

#[test]
fn message_sent_by_the_bridge_carries_its_request_id() {
    let e = one_with(
        r#"{"MsgId":"7","FromUserName":"@self","ToUserName":"filehelper","MsgType":1,"Content":"note"}"#,
        Some(Some("r-17")),
    );
    assert_eq!(e.origin, Origin::Bridge);
    assert_eq!(e.request_id, Some(Some("r-17".to_owned())));
    assert_eq!(e.chat.name, "File Transfer");
    let line = serde_json::to_string(&e).unwrap();
    assert!(line.contains(r#""origin":"bridge","request_id":"r-17""#));
    let e = one_with(
        r#"{"MsgId":"7","FromUserName":"@self","ToUserName":"@a81","MsgType":1,"Content":"x"}"#,
        Some(None),
    );
    assert_eq!(
        (e.origin, e.request_id.clone()),
        (Origin::Bridge, Some(None))
    );
    let line = serde_json::to_string(&e).unwrap();
    assert!(
        line.contains(r#""origin":"bridge","request_id":null"#),
        "{line}"
    );
}

#[test]
fn status_notify_and_id_less_entries_are_not_messages() {
    let book = book();
    let ctx = Context {
        account: "home",
        book: &book,
        sent_by_bridge: None,
    };
    let list = entries(
        r#"{"MsgId":"8","FromUserName":"@self","ToUserName":"@self","MsgType":51,"StatusNotifyCode":4,
        "StatusNotifyUserName":"@a81,@@9f3","Content":"&lt;msg&gt;&lt;op id='4'&gt;&lt;username&gt;wxid_a,123@chatroom&lt;/username&gt;&lt;/op&gt;&lt;/msg&gt;"},
        {"MsgId":"","FromUserName":"@a81","ToUserName":"@self","MsgType":1,"Content":"x"}"#,
    );
    assert!(list.iter().all(|m| normalize(m, &ctx).is_none()));
}

#[test]
fn revoke_names_the_recalled_message() {
    let e = one(
        r#"{"MsgId":"9","FromUserName":"@a81","ToUserName":"@self","MsgType":10002,
        "Content":"&lt;sysmsg type=\"revokemsg\"&gt;&lt;revokemsg&gt;&lt;session&gt;wxid_a&lt;/session&gt;&lt;oldmsgid&gt;1690000001&lt;/oldmsgid&gt;&lt;msgid&gt;4839201934821&lt;/msgid&gt;&lt;replacemsg&gt;&lt;![CDATA[\"Alice\" recalled a message]]&gt;&lt;/replacemsg&gt;&lt;/revokemsg&gt;&lt;/sysmsg&gt;"}"#,
    );
    assert_eq!(e.message_type, MessageType::Revoke);
    assert_eq!(
        e.revoke.unwrap().revoked_id.as_deref(),
        Some("4839201934821")
    );
    assert_eq!(e.text, None);
}

#[test]
fn malformed_revoke_falls_back_to_search_then_null() {
    assert_eq!(
        revoked_id("&lt;sysmsg&gt;&lt;revokemsg&gt;&lt;msgid&gt;42&lt;/msgid&gt;&lt;broken"),
        Some("42".into())
    );
    assert_eq!(revoked_id("&lt;sysmsg&gt;&lt;revokemsg"), None);
    assert_eq!(revoked_id(""), None);
}

#[test]
fn card_is_read_from_the_escaped_xml() {
    let e = one(
        r#"{"MsgId":"10","FromUserName":"@@9f3","ToUserName":"@self","MsgType":42,
        "Content":"@a81:<br/>&lt;?xml version=\"1.0\"?&gt;<br/>&lt;msg bigheadimgurl=\"\" username=\"@c33\" nickname=\"Carol &amp;amp; Co\" alias=\"carol_w\" province=\"\" sex=\"2\" /&gt;<br/>",
        "RecommendInfo":{"UserName":"@c33","NickName":"Carol","Alias":"","Content":"","Ticket":""}}"#,
    );
    assert_eq!(e.message_type, MessageType::Card);
    assert_eq!(e.from.id, "@a81");
    let card = e.card.unwrap();
    assert_eq!(card.name.as_deref(), Some("Carol & Co"));
    assert_eq!(card.alias.as_deref(), Some("carol_w"));
    assert_eq!(e.text, None);
}

#[test]
fn malformed_card_falls_back_to_recommend_info() {
    let e = one(
        r#"{"MsgId":"11","FromUserName":"@a81","ToUserName":"@self","MsgType":42,
        "Content":"&lt;msg nickname=\"broken","RecommendInfo":{"NickName":"Carol","Alias":""}}"#,
    );
    let card = e.card.unwrap();
    assert_eq!(card.name.as_deref(), Some("Carol"));
    assert_eq!(card.alias, None);
}

#[test]
fn link_is_read_from_appmsg() {
    let e = one(
        r#"{"MsgId":"12","FromUserName":"@a81","ToUserName":"@self","MsgType":49,"AppMsgType":5,
        "FileName":"Fallback title","Url":"http://mp.weixin.qq.com/s?a=1&amp;b=2",
        "Content":"&lt;?xml version=\"1.0\"?&gt;<br/>&lt;msg&gt;<br/>&lt;appmsg appid=\"\" sdkver=\"0\"&gt;<br/>&lt;title&gt;Rust 2026 &amp;amp; you&lt;/title&gt;<br/>&lt;des&gt;What changed&lt;/des&gt;<br/>&lt;type&gt;5&lt;/type&gt;<br/>&lt;url&gt;http://mp.weixin.qq.com/s?a=1&amp;amp;b=2&lt;/url&gt;<br/>&lt;/appmsg&gt;<br/>&lt;/msg&gt;"}"#,
    );
    assert_eq!(e.message_type, MessageType::Link);
    let link = e.link.unwrap();
    assert_eq!(link.title.as_deref(), Some("Rust 2026 & you"));
    assert_eq!(
        link.url.as_deref(),
        Some("http://mp.weixin.qq.com/s?a=1&b=2")
    );
    assert_eq!(link.description.as_deref(), Some("What changed"));
    assert_eq!(e.text, None);
}

#[test]
fn link_with_broken_xml_uses_the_entry_fields() {
    let e = one(
        r#"{"MsgId":"13","FromUserName":"@a81","ToUserName":"@self","MsgType":49,"AppMsgType":5,
        "FileName":"Title","Url":"http://example.com/?a=1&amp;b=2","Content":"&lt;msg&gt;&lt;appmsg"}"#,
    );
    let link = e.link.unwrap();
    assert_eq!(link.title.as_deref(), Some("Title"));
    assert_eq!(link.url.as_deref(), Some("http://example.com/?a=1&b=2"));
    assert_eq!(link.description, None);
}

#[test]
fn file_carries_name_size_and_media_id() {
    let e = one(
        r#"{"MsgId":"14","FromUserName":"@a81","ToUserName":"@self","MsgType":49,"AppMsgType":6,
        "FileName":"report.pdf","FileSize":"123456","MediaId":"@crypt_abc",
        "Content":"&lt;msg&gt;&lt;appmsg&gt;&lt;title&gt;report.pdf&lt;/title&gt;&lt;type&gt;6&lt;/type&gt;&lt;/appmsg&gt;&lt;/msg&gt;"}"#,
    );
    assert_eq!(e.message_type, MessageType::File);
    assert_eq!(
        e.file,
        Some(File::new(
            "report.pdf".into(),
            Some(123_456),
            "@crypt_abc".into()
        ))
    );
}

#[test]
fn other_app_messages_keep_their_type_and_title() {
    let e = one(
        r#"{"MsgId":"15","FromUserName":"@a81","ToUserName":"@self","MsgType":49,"AppMsgType":2000,
        "FileName":"微信转账","Content":""}"#,
    );
    assert_eq!(e.message_type, MessageType::App);
    let app = e.app.unwrap();
    assert_eq!(app.app_msg_type, 2000);
    assert_eq!(app.title.as_deref(), Some("微信转账"));
    assert_eq!(app.url, None);
}

#[test]
fn map_text_is_a_location_with_coordinates() {
    let e = one(
        r#"{"MsgId":"16","FromUserName":"@a81","ToUserName":"@self","MsgType":1,"SubMsgType":48,
        "Url":"http://apis.map.qq.com/uri/v1/geocoder?coord=39.9,116.4",
        "Content":"Tiananmen Square, Beijing:<br/>/cgi-bin/mmwebwx-bin/webwxgetpubliclinkimg?url=xxx&amp;msgid=16&amp;pictype=location",
        "OriContent":"&lt;?xml version=\"1.0\"?&gt;\n&lt;msg&gt;\n\t&lt;location x=\"39.903740\" y=\"116.397827\" scale=\"16\" label=\"Tiananmen\" maptype=\"0\" poiname=\"Square\" /&gt;\n&lt;/msg&gt;"}"#,
    );
    assert_eq!(e.message_type, MessageType::Location);
    let loc = e.location.unwrap();
    assert_eq!(loc.label, "Tiananmen Square, Beijing");
    // The map link's coord= wins over the XML.
    assert_eq!(loc.lat, Some(39.9));
    assert_eq!(loc.lon, Some(116.4));
    assert!(loc.url.unwrap().starts_with("http://apis.map.qq.com"));
    assert_eq!(e.text, None);
}

/// A real entry of the corpus (`tests/corpus/real/entries`), as stored.
fn real(name: &str) -> serde_json::Value {
    let path = format!(
        "{}/tests/corpus/real/entries/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

#[test]
fn map_link_text_without_sub_msg_type_is_a_location_from_coord() {
    // The captured location with the two fields that mark it taken away: only the map
    // link is left to tell (PROTOCOL.md §8.7).
    let mut entry = real("wwdk-receive-790000000000000.json");
    entry["SubMsgType"] = 0.into();
    entry["OriContent"] = "".into();
    let e = one(&entry.to_string());
    assert_eq!(e.message_type, MessageType::Location);
    let loc = e.location.unwrap();
    assert_eq!(loc.label, "深圳市xxxx");
    assert_eq!((loc.lat, loc.lon), (Some(22.0), Some(113.0)));
    assert_eq!(e.text, None);
}

#[test]
fn text_with_another_url_or_a_bad_coord_stays_what_it_was() {
    let e = one(
        r#"{"MsgId":"31","FromUserName":"@a81","ToUserName":"@self","MsgType":1,
        "Url":"http://example.com/?coord=1,2","Content":"see example.com"}"#,
    );
    assert_eq!(e.message_type, MessageType::Text);
    let e = one(
        r#"{"MsgId":"32","FromUserName":"@a81","ToUserName":"@self","MsgType":1,
        "Url":"http://apis.map.qq.com/uri/v1/geocoder?coord=91.5,NaN","Content":"Somewhere:<br/>/x"}"#,
    );
    let loc = e.location.unwrap();
    assert_eq!((loc.lat, loc.lon), (None, None));
    assert_eq!(loc.label, "Somewhere");
}

#[test]
fn file_content_ending_in_an_escaped_line_break_still_reads_its_xml() {
    // Real file Content ends in `&lt;br/&gt;`: a second root once unescaped. Without
    // AppMsgType and FileSize only the XML tells the type and the size.
    let mut entry = real("wwdk-receive-8800000000000000000.json");
    assert!(entry["Content"]
        .as_str()
        .unwrap()
        .ends_with("&lt;br/&gt;<br/>"));
    entry["AppMsgType"] = 0.into();
    entry["FileSize"] = "".into();
    let e = one(&entry.to_string());
    assert_eq!(e.message_type, MessageType::File);
    let file = e.file.unwrap();
    assert_eq!(file.name, "fileName.zip");
    assert_eq!(file.size, Some(1024));
}

#[test]
fn friend_request_xml_with_attributes_run_together_still_parses() {
    // `sign="…"percard="1"`: no space between two attributes, which a strict parser
    // refuses; RecommendInfo empty, so only the XML has the request.
    let e = one(
        r#"{"MsgId":"33","FromUserName":"fmessage","ToUserName":"@self","MsgType":37,
        "Content":"&lt;msg fromusername=\"wxid_d\" fromnickname=\"Dave\" content=\"I am &amp;quot;Dave&amp;quot;\" sign=\"hi\"percard=\"1\" ticket=\"v2_t@stranger\"&gt;&lt;brandlist count=\"0\"&gt;&lt;/brandlist&gt;&lt;/msg&gt;"}"#,
    );
    assert_eq!(
        e.friend_request,
        Some(FriendRequest {
            name: "Dave".into(),
            greeting: "I am \"Dave\"".into(),
            ticket: "v2_t@stranger".into(),
        })
    );
}

#[test]
fn shapes_real_traffic_holds_that_no_open_capture_has_give_their_events() {
    // Constructed after PROTOCOL.md §8.7 (see tests/corpus/real/README.md for why these
    // are not in the corpus).
    // An own recall in a group: From the group, no member prefix.
    let e = one(
        r#"{"MsgId":"40","FromUserName":"@@9f3","ToUserName":"@self","MsgType":10002,
        "Content":"&lt;sysmsg type=\"revokemsg\"&gt;&lt;revokemsg&gt;&lt;session&gt;5538097630@chatroom&lt;/session&gt;&lt;oldmsgid&gt;1096526481&lt;/oldmsgid&gt;&lt;msgid&gt;4241293912041778012&lt;/msgid&gt;&lt;replacemsg&gt;&lt;![CDATA[你撤回了一条消息]]&gt;&lt;/replacemsg&gt;&lt;/revokemsg&gt;&lt;/sysmsg&gt;"}"#,
    );
    assert_eq!(e.chat.id, "@@9f3");
    assert_eq!(
        e.revoke.unwrap().revoked_id.as_deref(),
        Some("4241293912041778012")
    );
    // A link whose Url is entity-escaped and percent-encoded several times over: entities
    // are decoded once, percent-encoding is kept.
    let e = one(
        r#"{"MsgId":"41","FromUserName":"@a81","ToUserName":"@self","MsgType":49,"AppMsgType":5,
        "FileName":"Article","Url":"http://mp.weixin.qq.com/s?__biz=MzA&amp;mid=1&amp;url=https%25253A%25252F%25252Fexample.com","Content":""}"#,
    );
    assert_eq!(
        e.link.unwrap().url.as_deref(),
        Some("http://mp.weixin.qq.com/s?__biz=MzA&mid=1&url=https%25253A%25252F%25252Fexample.com")
    );
    // A file sent from the phone with empty Content.
    let e = one(
        r#"{"MsgId":"42","FromUserName":"@self","ToUserName":"filehelper","MsgType":49,"AppMsgType":6,
        "FileName":"a.pdf","FileSize":"10","MediaId":"@crypt_1","Content":""}"#,
    );
    assert_eq!(
        (e.message_type, e.origin),
        (MessageType::File, Origin::Phone)
    );
    assert_eq!(e.chat.id, "filehelper");
    assert_eq!(e.file.unwrap().name, "a.pdf");
    // Status notifies of every code seen are never messages.
    for code in [1, 2, 4, 5, 9] {
        let list = entries(&format!(
            r#"{{"MsgId":"5{code}","FromUserName":"@self","ToUserName":"filehelper","MsgType":51,"Content":"","StatusNotifyCode":{code},"StatusNotifyUserName":"filehelper"}}"#
        ));
        let book = book();
        let ctx = Context {
            account: "home",
            book: &book,
            sent_by_bridge: None,
        };
        assert!(normalize(&list[0], &ctx).is_none(), "code {code}");
    }
}

#[test]
fn repairing_leaves_well_formed_xml_and_cdata_alone() {
    let xml = "<sysmsg type=\"revokemsg\"><revokemsg><replacemsg><![CDATA[\"施嘉威\"撤回了 a=\"b\"c]]></replacemsg></revokemsg></sysmsg>";
    assert_eq!(repair_xml(xml), xml);
    assert_eq!(repair_xml("<msg a='1'b=\"2\"/>"), "<msg a='1' b=\"2\"/>");
    assert_eq!(repair_xml("<msg><x/></msg>\n<br/>\n"), "<msg><x/></msg>");
}

#[test]
fn type_48_location_reads_its_own_xml() {
    let e = one(
        r#"{"MsgId":"17","FromUserName":"@a81","ToUserName":"@self","MsgType":48,
        "Content":"&lt;msg&gt;&lt;location x=\"31.2\" y=\"121.5\" label=\"The Bund\" /&gt;&lt;/msg&gt;"}"#,
    );
    let loc = e.location.unwrap();
    assert_eq!(loc.label, "The Bund");
    assert_eq!((loc.lat, loc.lon), (Some(31.2), Some(121.5)));
    assert_eq!(loc.url, None);
}

#[test]
fn media_types_carry_download_fields_and_no_text() {
    let media = |msg_type: u32| {
        one(&format!(
            r#"{{"MsgId":"18","FromUserName":"@a81","ToUserName":"@self","MsgType":{msg_type},
            "VoiceLength":3200,"PlayLength":12,"Content":"&lt;msg&gt;&lt;img /&gt;&lt;/msg&gt;"}}"#
        ))
    };
    let image = media(3);
    assert_eq!(image.message_type, MessageType::Image);
    assert_eq!(image.media.as_ref().unwrap().kind, MediaKind::Image);
    assert_eq!(image.text, None);
    let voice = media(34).media.unwrap();
    assert_eq!(
        (voice.kind, voice.duration_ms, voice.duration_s),
        (MediaKind::Voice, Some(3200), None)
    );
    let video = media(62).media.unwrap();
    assert_eq!(
        (video.kind, video.duration_ms, video.duration_s),
        (MediaKind::Video, None, Some(12))
    );
    assert_eq!(media(43).message_type, MessageType::Video);
    assert_eq!(media(47).media.unwrap().kind, MediaKind::Emoticon);
    assert_eq!(media(47).media.unwrap().msg_id, "18");
}

#[test]
fn friend_request_comes_from_recommend_info() {
    let e = one(
        r#"{"MsgId":"19","FromUserName":"fmessage","ToUserName":"@self","MsgType":37,
        "Content":"&lt;msg fromusername=\"wxid_d\" fromnickname=\"Dave\" content=\"hi\" ticket=\"t0\"/&gt;",
        "RecommendInfo":{"UserName":"@d44","NickName":"Dave <span class=\"emoji emoji1f44b\"></span>","Content":"I'm Dave from work","Ticket":"v2_ticket@stranger"}}"#,
    );
    assert_eq!(e.message_type, MessageType::FriendRequest);
    assert_eq!(e.chat.id, "fmessage");
    assert_eq!(
        e.friend_request,
        Some(FriendRequest {
            name: "Dave 👋".into(),
            greeting: "I'm Dave from work".into(),
            ticket: "v2_ticket@stranger".into(),
        })
    );
}

#[test]
fn group_system_notice_keeps_its_text_and_the_group_as_sender() {
    let e = one(
        r#"{"MsgId":"20","FromUserName":"@@9f3","ToUserName":"@self","MsgType":10000,
        "Content":"\"Alice\" invited \"Bob\" to the group chat"}"#,
    );
    assert_eq!(e.message_type, MessageType::System);
    assert_eq!(
        e.text.as_deref(),
        Some("\"Alice\" invited \"Bob\" to the group chat")
    );
    assert_eq!(e.from.id, "@@9f3");
    assert_eq!(e.from.name, "Family 🏠");
}

#[test]
fn unknown_types_are_other_and_unknown_chats_are_named_by_id() {
    let e = one(
        r#"{"MsgId":"21","FromUserName":"@stranger","ToUserName":"@self","MsgType":53,"Content":"voip"}"#,
    );
    assert_eq!(e.message_type, MessageType::Other);
    assert_eq!(e.text, None);
    assert_eq!(e.chat.name, "@stranger");
    assert_eq!(e.from.name, "@stranger");
}

#[test]
fn out_of_range_create_time_does_not_panic() {
    let e = one(
        r#"{"MsgId":"22","FromUserName":"@a81","ToUserName":"@self","MsgType":1,"Content":"x","CreateTime":9223372036854775807}"#,
    );
    assert_eq!(e.time, OffsetDateTime::UNIX_EPOCH);
}

#[test]
fn create_time_rfc3339_cannot_write_is_the_epoch() {
    // Year -1 and year -9999: valid timestamps, but "-0001-…" is not RFC 3339.
    for create_time in [-62_167_219_201_i64, -377_705_116_800] {
        let e = one(&format!(
            r#"{{"MsgId":"23","FromUserName":"@a81","ToUserName":"@self","MsgType":1,"Content":"x","CreateTime":{create_time}}}"#
        ));
        assert_eq!(e.time, OffsetDateTime::UNIX_EPOCH);
    }
}
