//! The JSON Schemas in `schemas/` against what the bridge really emits and accepts.
//! [`assert_valid`] is how every scenario test checks a payload it receives.
use std::sync::OnceLock;

use jsonschema::{Draft, Validator};
use serde_json::{json, Value};
use time::macros::datetime;
use wxbridge::event::{
    parse_command, Ambiguous, ContactSummary, ContactsEvent, ContactsKind, ErrorCode, ErrorEvent,
    ErrorKind, Event, LoginEvent, LoginKind, LoginUser, LogoutEvent, LogoutKind, MessageEvent,
    Receipt, SendResult, SentMedia, SessionState, SessionStatus, StateEvent, StateKind,
};
use wxbridge::wechat::contacts::ContactBook;
use wxbridge::wechat::message::{normalize, Context};
use wxbridge::wechat::protocol::{parse_sync_response, Contact, Member};

struct Schemas {
    event: Validator,
    command: Validator,
    result: Validator,
    receipt: Validator,
    contacts: Validator,
}

fn schemas() -> &'static Schemas {
    static SCHEMAS: OnceLock<Schemas> = OnceLock::new();
    SCHEMAS.get_or_init(|| Schemas {
        event: compile(
            "event.schema.json",
            include_str!("../../schemas/event.schema.json"),
        ),
        command: compile(
            "command.schema.json",
            include_str!("../../schemas/command.schema.json"),
        ),
        result: compile(
            "result.schema.json",
            include_str!("../../schemas/result.schema.json"),
        ),
        receipt: compile(
            "receipt.schema.json",
            include_str!("../../schemas/receipt.schema.json"),
        ),
        contacts: compile(
            "contacts.schema.json",
            include_str!("../../schemas/contacts.schema.json"),
        ),
    })
}

fn compile(name: &str, text: &str) -> Validator {
    let schema: Value =
        serde_json::from_str(text).unwrap_or_else(|e| panic!("schemas/{name} is not JSON: {e}"));
    jsonschema::meta::validate(&schema)
        .unwrap_or_else(|e| panic!("schemas/{name} is not a valid JSON Schema: {e}"));
    jsonschema::options()
        .with_draft(Draft::Draft202012)
        .should_validate_formats(true)
        .build(&schema)
        .unwrap_or_else(|e| panic!("schemas/{name} does not compile: {e}"))
}

fn errors(validator: &Validator, payload: &Value) -> Vec<String> {
    validator
        .iter_errors(payload)
        .map(|e| format!("at `{}`: {e}", e.instance_path()))
        .collect()
}

fn assert_matches(name: &str, validator: &Validator, payload: &Value) {
    let errors = errors(validator, payload);
    assert!(
        errors.is_empty(),
        "payload does not match schemas/{name}.schema.json:\n  {}\npayload: {payload}",
        errors.join("\n  ")
    );
}

/// Panics, listing the validation errors, unless `payload` matches its schema: the result
/// schema for `kind: "result"`, the receipt schema for `kind: "receipt"`, else the event
/// schema.
pub fn assert_valid(payload: &Value) {
    let s = schemas();
    match payload.get("kind").and_then(Value::as_str) {
        Some("result") => assert_matches("result", &s.result, payload),
        Some("receipt") => assert_matches("receipt", &s.receipt, payload),
        _ => assert_matches("event", &s.event, payload),
    }
}

/// Panics, listing the validation errors, unless `payload` is a valid contact list (the
/// retained contacts topic, NATS `contacts.get`).
pub fn assert_valid_contacts(payload: &Value) {
    assert_matches("contacts", &schemas().contacts, payload);
}

/// Panics, listing the validation errors, unless `payload` is a valid send command.
pub fn assert_valid_command(payload: &Value) {
    assert_matches("command", &schemas().command, payload);
}

fn assert_invalid(payload: &Value) {
    let s = schemas();
    let validator = match payload.get("kind").and_then(Value::as_str) {
        Some("result") => &s.result,
        Some("receipt") => &s.receipt,
        _ => &s.event,
    };
    assert!(
        !errors(validator, payload).is_empty(),
        "the schema accepts {payload}"
    );
}

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
        nick_name: "Family".into(),
        member_count: 2,
        member_list: vec![
            Member {
                user_name: "@a81".into(),
                nick_name: "Alice".into(),
                display_name: "Mama".into(),
            },
            Member {
                user_name: "@self".into(),
                nick_name: "Sam".into(),
                display_name: String::new(),
            },
        ]
        .into(),
        ..Contact::default()
    });
    b
}

/// One AddMsgList entry through the sync parser and `normalize`, as the bridge does it.
fn normalized(entry: &str, sent_by_bridge: Option<Option<&str>>) -> Value {
    let body = format!(
        r#"{{"BaseResponse":{{"Ret":0,"ErrMsg":""}},"AddMsgCount":1,"AddMsgList":[{entry}],
        "ModContactList":[],"DelContactList":[],"SyncKey":{{"Count":0,"List":[]}},"SKey":""}}"#
    );
    let msg = parse_sync_response(&body).unwrap().add_msg_list.remove(0);
    let book = book();
    let ctx = Context {
        account: "home",
        book: &book,
        sent_by_bridge,
    };
    let event: MessageEvent = normalize(&msg, &ctx).expect("a message");
    serde_json::to_value(&event).unwrap()
}

fn entry(msg_type: u32, extra: &str) -> String {
    format!(
        r#"{{"MsgId":"4839201934821","FromUserName":"@a81","ToUserName":"@self","MsgType":{msg_type},
        "CreateTime":1795882801{extra}}}"#
    )
}

/// Emitted messages of every type, keyed by the type they should have.
fn sample_messages() -> Vec<(&'static str, Value)> {
    vec![
        (
            "text",
            normalized(
                r#"{"MsgId":"1","FromUserName":"@@9f3","ToUserName":"@self","MsgType":1,
                "Content":"@a81:<br/>dinner at 7? &lt;3","CreateTime":1795882801}"#,
                None,
            ),
        ),
        (
            "location",
            normalized(
                &entry(
                    1,
                    r#","SubMsgType":48,"Url":"http://apis.map.qq.com/uri/v1/geocoder?coord=39.9,116.4",
                    "Content":"Tiananmen Square:<br/>/cgi-bin/mmwebwx-bin/webwxgetpubliclinkimg?url=x",
                    "OriContent":"&lt;msg&gt;&lt;location x=\"39.9\" y=\"116.4\" label=\"T\" /&gt;&lt;/msg&gt;""#,
                ),
                None,
            ),
        ),
        (
            "location",
            normalized(
                &entry(
                    48,
                    r#","Content":"&lt;msg&gt;&lt;location label=\"The Bund\" /&gt;&lt;/msg&gt;""#,
                ),
                None,
            ),
        ),
        ("image", normalized(&entry(3, r#","Content":"""#), None)),
        (
            "voice",
            normalized(&entry(34, r#","VoiceLength":3200"#), None),
        ),
        ("video", normalized(&entry(43, r#","PlayLength":12"#), None)),
        ("video", normalized(&entry(62, r#","PlayLength":3"#), None)),
        ("emoticon", normalized(&entry(47, ""), None)),
        (
            "friend_request",
            normalized(
                r#"{"MsgId":"19","FromUserName":"fmessage","ToUserName":"@self","MsgType":37,
                "RecommendInfo":{"UserName":"@d44","NickName":"Dave","Content":"hi","Ticket":"v2@t"}}"#,
                None,
            ),
        ),
        (
            "card",
            normalized(
                &entry(
                    42,
                    r#","Content":"&lt;msg username=\"@c33\" nickname=\"Carol\" alias=\"\" /&gt;""#,
                ),
                None,
            ),
        ),
        (
            "link",
            normalized(
                &entry(
                    49,
                    r#","AppMsgType":5,"FileName":"Title","Url":"http://example.com/","Content":"""#,
                ),
                None,
            ),
        ),
        (
            "file",
            normalized(
                &entry(
                    49,
                    r#","AppMsgType":6,"FileName":"report.pdf","FileSize":"12","MediaId":"@crypt""#,
                ),
                None,
            ),
        ),
        (
            "app",
            normalized(
                &entry(49, r#","AppMsgType":2000,"FileName":"微信转账""#),
                None,
            ),
        ),
        (
            "system",
            normalized(&entry(10000, r#","Content":"Alice joined""#), None),
        ),
        (
            "revoke",
            normalized(
                &entry(
                    10002,
                    r#","Content":"&lt;sysmsg&gt;&lt;revokemsg&gt;&lt;msgid&gt;42&lt;/msgid&gt;&lt;/revokemsg&gt;&lt;/sysmsg&gt;""#,
                ),
                None,
            ),
        ),
        (
            "other",
            normalized(&entry(53, r#","Content":"voip""#), None),
        ),
        (
            "text",
            normalized(
                r#"{"MsgId":"5","FromUserName":"@self","ToUserName":"@a81","MsgType":1,"Content":"on my way"}"#,
                None,
            ),
        ),
        (
            "text",
            normalized(
                r#"{"MsgId":"7","FromUserName":"@self","ToUserName":"@a81","MsgType":1,"Content":"x"}"#,
                Some(Some("r-17")),
            ),
        ),
    ]
}

#[test]
fn messages_of_every_type_match_the_event_schema() {
    let samples = sample_messages();
    for (expected_type, payload) in &samples {
        assert_eq!(payload["type"], *expected_type, "{payload}");
        assert_valid(payload);
    }
    let origins: Vec<_> = samples.iter().map(|(_, p)| p["origin"].clone()).collect();
    for origin in ["contact", "phone", "bridge"] {
        assert!(origins.contains(&json!(origin)), "no {origin} sample");
    }
}

#[test]
fn login_logout_contacts_error_and_state_match_the_event_schema() {
    let t = datetime!(2026-11-28 16:20:01.5 UTC);
    let events: Vec<Event> = vec![
        LoginEvent {
            kind: LoginKind,
            account: "home".into(),
            time: t,
            user: LoginUser {
                id: "@self".into(),
                name: "Sam".into(),
                uin: 42,
            },
        }
        .into(),
        LogoutEvent {
            kind: LogoutKind,
            account: "home".into(),
            time: t,
            reason: "logged out on the phone".into(),
        }
        .into(),
        ContactsEvent {
            kind: ContactsKind,
            account: "home".into(),
            time: t,
            added: vec![ContactSummary {
                id: "@a81".into(),
                name: "Alice".into(),
                remark: Some("Mom".into()),
                group: false,
            }],
            modified: vec![ContactSummary {
                id: "@@9f3".into(),
                name: "Family".into(),
                remark: None,
                group: true,
            }],
            removed: vec![],
            ambiguous: vec![Ambiguous {
                id: "@b22".into(),
                name: "Bob".into(),
                candidates: vec!["c_abcdefgh2345".into(), "c_7bcdefgh2345".into()],
            }],
        }
        .into(),
        ErrorEvent {
            kind: ErrorKind,
            account: "home".into(),
            time: t,
            code: "spool_full".into(),
            message: "dropped 3 events".into(),
        }
        .into(),
        StateEvent {
            kind: StateKind,
            account: "home".into(),
            status: SessionStatus {
                state: SessionState::LoginRequired,
                since: t,
                reason: String::new(),
            },
        }
        .into(),
    ];
    for event in &events {
        assert_valid(&serde_json::to_value(event).unwrap());
    }
}

/// A result of a command with media and text: sent, or failed after the media went out.
fn media_result(ok: bool) -> SendResult {
    let media = Some(SentMedia {
        sha256: "ab".repeat(32),
        size: 48213,
    });
    if ok {
        let mut r = SendResult::ok(None, "2040", "@a81", "Alice").with_media(media);
        r.text_msg_id = Some("2041".into());
        r
    } else {
        let mut r = SendResult::err(None, ErrorCode::Timeout, "the image was sent; not the text")
            .with_media(media);
        r.msg_id = Some("2040".into());
        r
    }
}

#[test]
fn results_ok_and_err_match_the_result_schema() {
    let results = [
        SendResult::ok(Some("r-17".into()), "2038", "@a81", "Alice"),
        SendResult::ok(None, "2039", "filehelper", "filehelper"),
        SendResult::err(
            Some("r-18".into()),
            ErrorCode::UnknownRecipient,
            "no contact named `Bob`",
        ),
        SendResult::err(None, ErrorCode::Expired, "not sent before 18:00"),
        SendResult::wechat_error(Some("r-19".into()), 1205, "WeChat refused"),
        SendResult::from(parse_command(b"{nope", 65536).unwrap_err()),
        SendResult::from(parse_command(br#"{"request_id":"r-20","to":"Mom"}"#, 65536).unwrap_err()),
        media_result(true),
        media_result(false),
        SendResult::err(None, ErrorCode::MediaForbidden, "not a public address"),
        SendResult::err(
            None,
            ErrorCode::MediaTooLarge,
            "larger than media.fetch.max_bytes",
        ),
        SendResult::err(None, ErrorCode::MediaFetchFailed, "HTTP 404"),
        SendResult::err(None, ErrorCode::UploadFailed, "HTTP 500"),
    ];
    for result in &results {
        assert_valid(&serde_json::to_value(result).unwrap());
        let mut repeated = result.clone();
        repeated.duplicate = true;
        let repeated = serde_json::to_value(&repeated).unwrap();
        assert_eq!(repeated["duplicate"], true);
        assert_valid(&repeated);
        let mut not_a_repeat = repeated;
        not_a_repeat["duplicate"] = json!(false);
        assert_invalid(&not_a_repeat);
    }
}

#[test]
fn commands_the_bridge_accepts_match_the_command_schema() {
    for payload in [
        json!({"to": "Mom", "text": "on my way", "request_id": "r-17"}),
        json!({"to_id": "@a81", "text": "…", "expires_at": "2026-11-28T18:00:00Z"}),
        json!({"to": null, "to_id": "@a81", "text": "x", "expires_at": "2026-11-28T19:00:00+01:00"}),
        json!({"to": "filehelper", "text": "note", "request_id": null}),
        json!({"to_key": "c_abcdefgh2345", "text": "hi", "to": null}),
        json!({"to": "Family", "image": {"url": "https://cam.example/snap.jpg"}, "text": "door"}),
        json!({"to": "Mom", "file": {"path": "/srv/share/a.pdf", "name": "report.pdf"}}),
        json!({"to": "Mom", "video": {"base64": "AAAA", "name": "clip.mp4"}, "text": null}),
        json!({"to": "Mom", "emoticon": {"sha256": "ab".repeat(32)}, "image": null}),
    ] {
        assert_valid_command(&payload);
        assert!(
            parse_command(payload.to_string().as_bytes(), 65536).is_ok(),
            "{payload}"
        );
    }
}

#[test]
fn commands_the_bridge_refuses_fail_the_command_schema() {
    let command = &schemas().command;
    for payload in [
        json!({"to": "Mom"}),
        json!({"to": "Mom", "text": ""}),
        json!({"text": "hi"}),
        json!({"to": "Mom", "to_id": "@a81", "text": "hi"}),
        json!({"to_id": "@a81", "to_key": "c_abcdefgh2345", "text": "hi"}),
        json!({"to_key": "C_ABCDEFGH2345", "text": "hi"}),
        json!({"to_key": "Mom", "text": "hi"}),
        json!({"to": "", "text": "hi"}),
        json!({"to": "Mom", "text": "hi", "request_id": 17}),
        json!({"to": "Mom", "text": "hi", "expires_at": "tomorrow"}),
        json!({"to": "Mom", "text": "hi", "priority": 1}),
        json!({"to": "Mom", "image": {}}),
        json!({"to": "Mom", "image": {"url": "https://a/b", "path": "/c"}}),
        json!({"to": "Mom", "image": {"base64": "AAAA"}}),
        json!({"to": "Mom", "image": {"sha256": "abc"}}),
        json!({"to": "Mom", "image": {"url": "https://a/b"}, "file": {"url": "https://a/c"}}),
        json!({"to": "Mom", "image": {"url": "https://a/b", "size": 3}}),
        json!({"to": "Mom", "image": null}),
    ] {
        assert!(
            !errors(command, &payload).is_empty(),
            "the schema accepts {payload}"
        );
        assert!(
            parse_command(payload.to_string().as_bytes(), 65536).is_err(),
            "the bridge accepts {payload}"
        );
    }
}

#[test]
fn malformed_events_and_results_are_rejected() {
    let message = sample_messages().remove(0).1;
    let with = |path: &[&str], value: Value| {
        let mut m = message.clone();
        let (last, parents) = path.split_last().unwrap();
        let mut at = &mut m;
        for p in parents {
            at = &mut at[*p];
        }
        at[*last] = value;
        m
    };
    let without = |field: &str| {
        let mut m = message.clone();
        m.as_object_mut().unwrap().remove(field);
        m
    };
    assert_invalid(&with(&["kind"], json!("mesage")));
    assert_invalid(&without("kind"));
    assert_invalid(&without("chat"));
    assert_invalid(&with(&["chat", "group"], json!("yes")));
    assert_invalid(&with(&["chat", "key"], json!("C_ABCDEFGH2345")));
    assert_invalid(&with(&["from", "key"], json!("@a81")));
    assert_invalid(&with(&["type"], json!("sticker")));
    assert_invalid(&with(&["time"], json!("yesterday")));
    assert_invalid(&with(&["text"], Value::Null));
    assert_invalid(&with(&["colour"], json!("red")));
    assert_invalid(&with(&["request_id"], json!("r-1")));
    assert_invalid(&with(&["media"], json!({"msg_id": "1", "kind": "image"})));
    assert_invalid(&with(&["origin"], json!("bridge")));

    let image = normalized(&entry(3, ""), None);
    let mut voice_kind = image.clone();
    voice_kind["media"]["kind"] = json!("voice");
    assert_invalid(&voice_kind);
    let mut no_media = image.clone();
    no_media.as_object_mut().unwrap().remove("media");
    assert_invalid(&no_media);
    // Media fields: a stored file, a failed one, and the mixtures the contract rules out.
    let sha = "ab".repeat(32);
    let mut stored = image.clone();
    stored["media"]["sha256"] = json!(sha);
    stored["media"]["mime"] = json!("image/png");
    stored["media"]["size"] = json!(70);
    stored["media"]["width"] = json!(2);
    stored["media"]["url"] = json!("http://127.0.0.1/media/x?exp=1&sig=00");
    assert_valid(&stored);
    let mut failed = image.clone();
    failed["media"]["error"] = json!("expired");
    assert_valid(&failed);
    let mut failed_with_hash = stored.clone();
    failed_with_hash["media"]["error"] = json!("too_large");
    assert_invalid(&failed_with_hash);
    let mut unknown_error = failed.clone();
    unknown_error["media"]["error"] = json!("gone");
    assert_invalid(&unknown_error);
    let mut upper_hash = stored.clone();
    upper_hash["media"]["sha256"] = json!("AB".repeat(32));
    assert_invalid(&upper_hash);
    let mut url_without_file = image.clone();
    url_without_file["media"]["url"] = json!("http://127.0.0.1/media/x");
    assert_invalid(&url_without_file);

    let err = serde_json::to_value(SendResult::err(None, ErrorCode::Timeout, "late")).unwrap();
    let mut bad_code = err.clone();
    bad_code["error"]["code"] = json!("oops");
    assert_invalid(&bad_code);
    let mut ret_without_wechat_error = err.clone();
    ret_without_wechat_error["error"]["ret"] = json!(1);
    assert_invalid(&ret_without_wechat_error);
    let mut wechat_error_without_ret = err.clone();
    wechat_error_without_ret["error"]["code"] = json!("wechat_error");
    assert_invalid(&wechat_error_without_ret);
    let mut no_request_id = err;
    no_request_id.as_object_mut().unwrap().remove("request_id");
    assert_invalid(&no_request_id);
    assert_invalid(&json!({"kind": "result", "request_id": "r", "ok": true}));
}

#[test]
fn receipts_match_the_receipt_schema_and_mixed_ones_are_rejected() {
    let queued = serde_json::to_value(Receipt::queued(Some("r-1".into()), 3)).unwrap();
    let echoed = serde_json::to_value(Receipt::echoed(None, "4839")).unwrap();
    assert_valid(&queued);
    assert_valid(&echoed);
    let mut queued_with_msg_id = queued.clone();
    queued_with_msg_id["msg_id"] = json!("1");
    assert_invalid(&queued_with_msg_id);
    let mut queued_at_zero = queued.clone();
    queued_at_zero["position"] = json!(0);
    assert_invalid(&queued_at_zero);
    let mut echoed_without_msg_id = echoed.clone();
    echoed_without_msg_id
        .as_object_mut()
        .unwrap()
        .remove("msg_id");
    assert_invalid(&echoed_without_msg_id);
    let mut other_status = echoed;
    other_status["status"] = json!("read");
    assert_invalid(&other_status);
}

#[test]
fn the_contact_list_matches_its_schema_and_a_malformed_key_does_not() {
    use wxbridge::event::RosterEntry;
    let roster = vec![
        RosterEntry {
            key: Some("c_abcdefgh2345".into()),
            id: "@@9f3".into(),
            name: "Family".into(),
            remark: None,
            group: true,
            members: Some(3),
        },
        RosterEntry {
            key: None,
            id: "@a81".into(),
            name: "Alice".into(),
            remark: Some("Mom".into()),
            group: false,
            members: None,
        },
    ];
    let list = serde_json::to_value(&roster).unwrap();
    assert_valid_contacts(&list);
    assert_valid_contacts(&json!([]));
    let mut bad = list.clone();
    bad[0]["key"] = json!("c_ABCDEFGH2345");
    assert!(!errors(&schemas().contacts, &bad).is_empty());
    let mut bad = list;
    bad[1].as_object_mut().unwrap().remove("key");
    assert!(!errors(&schemas().contacts, &bad).is_empty());
}
