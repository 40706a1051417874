//! What each fuzz target feeds to the bridge and the invariants it asserts. One function per
//! target in `fuzz_targets/`; `tests/it/hostile.rs` includes this file and runs the same
//! functions on every saved input under `tests/corpus/<target>/`, so seeds and past crashes
//! are regression tests in `cargo test` without libFuzzer.
//!
//! A check fails by panicking, which libFuzzer reports as a crash. Inputs are bytes; the
//! parsers take text, so bytes that are not UTF-8 are read lossily (WeChat's bodies reach the
//! parsers as decoded text too) and commands, which arrive as bytes, are passed unchanged.
#![forbid(unsafe_code)]

use wxbridge::event::{parse_command, Command, ErrorCode, Event, MessageEvent, MessageType};
use wxbridge::wechat::client::{announced_length, MediaEndpoint, MediaRequest};
use wxbridge::wechat::contacts::ContactBook;
use wxbridge::wechat::message::{normalize, Context};
use wxbridge::wechat::protocol::upload::{file_appmsg, CheckUploadResponse, UploadResponse};
use wxbridge::wechat::protocol::{
    parse_jslogin, parse_login_poll, parse_login_xml, parse_sync_response, parse_synccheck, AddMsg,
    Contact, LoginPoll, Member, ProtocolError, RecommendInfo,
};
use wxbridge::wechat::text::{clean_text, replace_emoji_spans, split_group_prefix};

/// The snippet a [`ProtocolError::Unexpected`] carries is capped at this many characters.
const SNIPPET_CHARS: usize = 120;

/// `js_text`: every JS-text parser (jslogin, login poll, synccheck; PROTOCOL.md §1.1, §1.3, §6)
/// on the same body. What they return must come from the body, and error snippets stay short.
pub fn js_text(data: &[u8]) {
    let body = String::from_utf8_lossy(data);
    match parse_jslogin(&body) {
        Ok(uuid) => assert!(!uuid.is_empty() && body.contains(&uuid), "uuid {uuid:?}"),
        Err(e) => check_snippet(&e),
    }
    match parse_login_poll(&body) {
        Ok(LoginPoll::Confirmed { redirect_uri }) => {
            assert!(!redirect_uri.is_empty() && body.contains(&redirect_uri));
        }
        Ok(_) => {}
        Err(e) => check_snippet(&e),
    }
    match parse_synccheck(&body) {
        Ok(check) => {
            assert!(body.contains("window.synccheck"));
            let _ = check.action();
        }
        Err(e) => check_snippet(&e),
    }
}

fn check_snippet(e: &ProtocolError) {
    if let ProtocolError::Unexpected { snippet, .. } = e {
        assert!(snippet.chars().count() <= SNIPPET_CHARS);
    }
    let _ = e.to_string();
}

/// `login_xml`: the `webwxnewloginpage` answer (PROTOCOL.md §1.4). A ticket is only handed out
/// with every credential present; refusals render as text.
pub fn login_xml(data: &[u8]) {
    let body = String::from_utf8_lossy(data);
    match parse_login_xml(&body) {
        Ok(ticket) => {
            assert!(!ticket.skey.is_empty());
            assert!(!ticket.wxsid.is_empty());
            assert!(!ticket.pass_ticket.is_empty());
        }
        Err(e) => {
            let _ = e.to_string();
        }
    }
}

/// `sync_response`: a whole `webwxsync` body (PROTOCOL.md §7), then what the sync loop does
/// with it: contact changes, the batch lookup of unknown names, and [`normalize`] on every
/// `AddMsgList` entry against a small contact book, both as received and as the bridge's own
/// echo. Each event must keep its raw entry and survive a JSON round trip.
pub fn sync_response(data: &[u8]) {
    let body = String::from_utf8_lossy(data);
    let Ok(sync) = parse_sync_response(&body) else {
        return;
    };
    let _ = sync.sync_key.to_query();
    let _ = sync.sync_check_key.to_query();
    let mut book = small_book();
    let _ = book.missing_for(&sync.add_msg_list);
    let changes = book.apply_changes(sync.mod_contact_list, sync.del_contact_list);
    let _ = changes.is_empty();
    for msg in &sync.add_msg_list {
        for sent_by_bridge in [None, Some(Some("r-1")), Some(None)] {
            let ctx = Context {
                account: "home",
                book: &book,
                sent_by_bridge,
            };
            if let Some(event) = check_normalize(msg, &ctx) {
                let raw = msg
                    .raw
                    .as_ref()
                    .expect("parsed entries keep their raw JSON");
                assert_eq!(event.raw.get(), raw.get());
            }
        }
    }
}

/// `message_content`: one crafted `AddMsg` whose type, routing and flags come from the first
/// bytes and whose text fields (Content, OriContent, Url, FileName, FileSize, MediaId,
/// RecommendInfo) are the rest, split at NUL. Runs the text pipeline on the content directly,
/// then [`normalize`], which reaches the XML-bearing types (cards, links, files, locations,
/// revokes, friend requests).
pub fn message_content(data: &[u8]) {
    let (head, tail) = data.split_at(data.len().min(4));
    let byte = |i: usize| head.get(i).copied().unwrap_or(0);
    let text = String::from_utf8_lossy(tail);
    let mut fields = text.split('\0');
    let mut next = || fields.next().unwrap_or("").to_owned();

    let content = next();
    check_text_pipeline(&content);

    const TYPES: [u32; 20] = [
        1, 3, 34, 37, 42, 43, 47, 48, 49, 51, 62, 9999, 10000, 10002, 40, 50, 52, 53, 0, 1,
    ];
    const APP_TYPES: [u32; 8] = [0, 5, 6, 2000, 2001, 1, 17, 100_001];
    const TIMES: [i64; 8] = [
        1_795_882_801,
        0,
        -1,
        i64::MAX,
        i64::MIN,
        253_402_300_800,
        -62_167_219_201,
        -377_705_116_800,
    ];
    let flags = byte(1);
    let in_group = flags & 1 != 0;
    let from_self = flags & 2 != 0;
    let (from, to) = match (in_group, from_self) {
        (true, false) => ("@@9f3", "@self"),
        (true, true) => ("@self", "@@9f3"),
        (false, false) => ("@a81", "@self"),
        (false, true) => ("@self", "@a81"),
    };
    let msg = AddMsg {
        msg_id: if flags & 4 != 0 {
            String::new()
        } else {
            "4839201934821".into()
        },
        new_msg_id: 4_839_201_934_821,
        from_user_name: from.into(),
        to_user_name: to.into(),
        msg_type: TYPES[usize::from(byte(0)) % TYPES.len()],
        content,
        sub_msg_type: if flags & 8 != 0 { 48 } else { 0 },
        app_msg_type: APP_TYPES[usize::from(byte(2)) % APP_TYPES.len()],
        ori_content: next(),
        url: next(),
        file_name: next(),
        file_size: next(),
        media_id: next(),
        voice_length: u64::from(byte(3)) * 1000,
        play_length: u64::from(byte(3)),
        create_time: TIMES[usize::from(byte(3)) % TIMES.len()],
        recommend_info: RecommendInfo {
            user_name: "@d44".into(),
            nick_name: next(),
            content: next(),
            ticket: next(),
            alias: next(),
        },
        ..AddMsg::default()
    };
    let book = small_book();
    let sent_by_bridge = match flags >> 4 & 3 {
        0 | 1 => None,
        2 => Some(Some("r-17")),
        _ => Some(None),
    };
    let ctx = Context {
        account: "home",
        book: &book,
        sent_by_bridge,
    };
    if let Some(event) = check_normalize(&msg, &ctx) {
        if let Some(text) = &event.text {
            if !msg.content.contains('&') {
                assert!(!text.contains("<br/>"), "text {text:?}");
            }
        }
    }
}

/// The text pipeline's own promises on any string (PROTOCOL.md §8.3–§8.5).
fn check_text_pipeline(s: &str) {
    let cleaned = clean_text(s);
    if !s.contains('&') {
        assert!(!cleaned.contains("<br/>"), "{cleaned:?}");
    }
    // Spans only ever shrink text: a span is at least 30 bytes, its emoji at most 8.
    assert!(replace_emoji_spans(s).len() <= s.len());
    if let Some((sender, rest)) = split_group_prefix(s) {
        assert!(sender.len() > usize::from(sender.starts_with('@')));
        assert_eq!(format!("{sender}:<br/>{rest}"), s);
    }
}

/// [`normalize`] plus the invariants every event must meet; returns the event when there is one.
fn check_normalize(msg: &AddMsg, ctx: &Context<'_>) -> Option<MessageEvent> {
    let event = normalize(msg, ctx);
    let expected = msg.msg_type != 51 && !msg.msg_id.is_empty();
    assert_eq!(event.is_some(), expected, "MsgType {}", msg.msg_type);
    let event = event?;
    assert_eq!(event.id, msg.msg_id);
    assert_eq!(event.account, ctx.account);
    assert_eq!(event.msg_type, msg.msg_type);
    assert_eq!(ctx.sent_by_bridge.is_some(), event.request_id.is_some());
    if event.from.is_self {
        assert!(!event.mentioned, "one's own messages never mention oneself");
    }
    let extras = [
        event.location.is_some(),
        event.media.is_some(),
        event.friend_request.is_some(),
        event.card.is_some(),
        event.link.is_some(),
        event.file.is_some(),
        event.app.is_some(),
        event.revoke.is_some(),
    ];
    let has_text = matches!(event.message_type, MessageType::Text | MessageType::System);
    let want_extras = usize::from(!has_text && event.message_type != MessageType::Other);
    assert_eq!(
        extras.iter().filter(|x| **x).count(),
        want_extras,
        "{:?}",
        event.message_type
    );
    assert_eq!(event.text.is_some(), has_text);
    // What sinks publish must read back as the same event.
    let line = serde_json::to_string(&event).expect("an event serializes");
    let back: Event = serde_json::from_str(&line)
        .unwrap_or_else(|e| panic!("a published event must read back ({e}): {line}"));
    assert_eq!(back.name(), "message");
    assert_eq!(
        serde_json::to_string(&back).expect("serializes again"),
        line
    );
    Some(event)
}

/// `command`: a send command payload (DESIGN.md "Outbound command and result") with a
/// `send.max_bytes` taken from the first two bytes. Nothing over the limit is accepted, an
/// accepted command is well formed and survives the outbound queue's JSON round trip, and
/// only `invalid_json` / `invalid_command` are ever answered.
pub fn command(data: &[u8]) {
    let (max_bytes, payload) = match data {
        [a, b, rest @ ..] => (usize::from(u16::from_le_bytes([*a, *b])), rest),
        _ => (0, data),
    };
    let limited = parse_command(payload, max_bytes);
    let unlimited = parse_command(payload, usize::MAX);
    if payload.len() > max_bytes {
        let e = limited.expect_err("over max_bytes is never accepted");
        assert_eq!(e.code, ErrorCode::InvalidCommand);
        assert_eq!(e.request_id, None);
    } else {
        assert_eq!(limited, unlimited, "the limit only decides by size");
    }
    match unlimited {
        Ok(cmd) => {
            assert!(cmd.text.as_ref().is_some_and(|t| !t.is_empty()) || cmd.media.is_some());
            assert!(cmd.to.is_some() != cmd.to_id.is_some());
            assert!(cmd.to.as_ref().is_none_or(|s| !s.is_empty()));
            assert!(cmd.to_id.as_ref().is_none_or(|s| !s.is_empty()));
            assert!(cmd.request_id.as_ref().is_none_or(|s| !s.is_empty()));
            let stored = serde_json::to_string(&cmd).expect("a command serializes");
            let back: Command = serde_json::from_str(&stored)
                .unwrap_or_else(|e| panic!("a queued command must read back ({e}): {stored}"));
            assert_eq!(back, cmd);
            assert_eq!(parse_command(stored.as_bytes(), usize::MAX), Ok(cmd));
        }
        Err(e) => {
            assert!(matches!(
                e.code,
                ErrorCode::InvalidJson | ErrorCode::InvalidCommand
            ));
            assert!(e.request_id.as_ref().is_none_or(|s| !s.is_empty()));
        }
    }
}

/// `media_xml`: an image, voice, video, emoticon or file message (PROTOCOL.md §8.2) whose
/// Content (the media XML, escaped or not), FileName, FileSize, MediaId and EncryFileName are
/// the input split at NUL, the type from the first byte. The event must name its media, and
/// the download the bridge would make (PROTOCOL.md §9.5) must come from the entry: the right
/// endpoint, the attachment's own sender, MediaId and EncryFileName, and a size limit checked
/// against no more than what the entry announces. Then the file's `<appmsg>` as the bridge
/// sends it (PROTOCOL.md §9.3), escaped as the servers echo it, must read back with its size
/// and, for a plain title, its name.
pub fn media_xml(data: &[u8]) {
    let (head, tail) = data.split_at(data.len().min(2));
    let byte = |i: usize| head.get(i).copied().unwrap_or(0);
    let text = String::from_utf8_lossy(tail);
    let mut fields = text.split('\0');
    let mut next = || fields.next().unwrap_or("").to_owned();
    let (content, file_name, file_size, media_id, encry) = (next(), next(), next(), next(), next());

    const TYPES: [u32; 6] = [3, 34, 43, 47, 62, 49];
    let msg_type = TYPES[usize::from(byte(0)) % TYPES.len()];
    let raw = serde_json::json!({
        "MsgId": "4839201934821",
        "FromUserName": "@a81",
        "ToUserName": "@self",
        "MsgType": msg_type,
        "AppMsgType": 6,
        "Content": content,
        "FileName": file_name,
        "FileSize": file_size,
        "MediaId": media_id,
        "EncryFileName": encry,
    });
    let msg = AddMsg {
        msg_id: "4839201934821".into(),
        from_user_name: "@a81".into(),
        to_user_name: "@self".into(),
        msg_type,
        app_msg_type: 6,
        content: content.clone(),
        file_name: file_name.clone(),
        file_size: file_size.clone(),
        media_id: media_id.clone(),
        voice_length: u64::from(byte(1)) * 100,
        play_length: u64::from(byte(1)),
        create_time: 1_795_882_801,
        raw: Some(serde_json::value::RawValue::from_string(raw.to_string()).expect("JSON")),
        ..AddMsg::default()
    };
    let book = small_book();
    let ctx = Context {
        account: "home",
        book: &book,
        sent_by_bridge: None,
    };
    let event = check_normalize(&msg, &ctx).expect("a media message with a MsgId is an event");
    let (req, announced) =
        MediaRequest::for_event(&event).expect("media and files have a download request");
    assert_eq!(req.msg_id, msg.msg_id);
    match msg_type {
        49 => {
            let file = event.file.as_ref().expect("AppMsgType 6 is a file");
            assert_eq!(req.endpoint, MediaEndpoint::Attachment);
            assert_eq!(req.sender, "@a81");
            assert_eq!(req.media_id, media_id);
            assert_eq!(req.encry_file_name, encry);
            assert_eq!(
                announced, file.size,
                "the limit is checked against FileSize"
            );
        }
        _ => {
            let media = event.media.as_ref().expect("a media type carries media");
            let endpoint = match msg_type {
                3 | 47 => MediaEndpoint::MsgImg,
                34 => MediaEndpoint::Voice,
                _ => MediaEndpoint::Video,
            };
            assert_eq!(req.endpoint, endpoint);
            assert_eq!(media.msg_id, msg.msg_id);
            match endpoint {
                MediaEndpoint::MsgImg => assert_eq!(announced, None),
                _ => assert_eq!(announced, announced_length(&content)),
            }
        }
    }
    if let Some(n) = announced_length(&content) {
        assert!(
            content.contains(&n.to_string()),
            "{n} is not in {content:?}"
        );
    }

    // The bridge's own file message, as the servers would echo it.
    let len = u64::from(byte(1)) << (byte(0) % 40);
    let sent = file_appmsg(&file_name, len, &media_id, byte(0) & 1 == 0);
    let echo = AddMsg {
        msg_type: 49,
        app_msg_type: 6,
        content: sent
            .replace('&', "&amp;")
            .replace('<', "&lt;")
            .replace('>', "&gt;")
            .replace('"', "&quot;"),
        file_name: String::new(),
        file_size: String::new(),
        ..msg
    };
    let event = check_normalize(&echo, &ctx).expect("a file is an event");
    let file = event.file.expect("the echo is a file");
    let plain = |s: &str| {
        !s.is_empty()
            && s.trim() == s
            && !s.contains("emoji")
            && !s.contains('\u{a0}')
            && s.chars()
                .all(|c| !c.is_control() && !matches!(c, '\u{fffe}' | '\u{ffff}'))
    };
    if plain(&file_name) && plain(&media_id) {
        assert_eq!(file.size, Some(len), "{sent}");
        assert_eq!(file.name, file_name, "{sent}");
    }
}

/// `upload_answer`: a `webwxuploadmedia` or `webwxcheckupload` answer (PROTOCOL.md §9.2),
/// read as the upload client reads it. Reading never panics and gives the same result twice,
/// and a MediaId, Signature or AESKey read from a body without escapes is in that body.
pub fn upload_answer(data: &[u8]) {
    let body = String::from_utf8_lossy(data);
    let upload = serde_json::from_str::<UploadResponse>(&body);
    let check = serde_json::from_str::<CheckUploadResponse>(&body);
    assert_eq!(
        format!("{upload:?}"),
        format!("{:?}", serde_json::from_str::<UploadResponse>(&body))
    );
    let literal = |value: &str| body.contains('\\') || body.contains(value);
    if let Ok(answer) = &upload {
        assert!(literal(&answer.media_id) && literal(&answer.start_pos));
    }
    if let Ok(answer) = &check {
        assert!(literal(&answer.media_id));
        assert!(literal(&answer.signature) && literal(&answer.aes_key));
    }
}

/// Self, one person and one group whose members include self, as in PROTOCOL.md §8.3.
fn small_book() -> ContactBook {
    let mut book = ContactBook::new(Contact {
        user_name: "@self".into(),
        nick_name: "Sam".into(),
        ..Contact::default()
    });
    book.upsert(Contact {
        user_name: "@a81".into(),
        nick_name: "Alice <span class=\"emoji emoji1f604\"></span>".into(),
        remark_name: "Mom &amp; co".into(),
        ..Contact::default()
    });
    let member = |user_name: &str, nick_name: &str, display_name: &str| Member {
        user_name: user_name.into(),
        nick_name: nick_name.into(),
        display_name: display_name.into(),
    };
    book.upsert(Contact {
        user_name: "@@9f3".into(),
        nick_name: "Family".into(),
        member_count: 3,
        member_list: vec![
            member("@a81", "Alice", "Mama"),
            member("@b22", "Bob", ""),
            member("@self", "Sam", "Sammy"),
        ]
        .into(),
        ..Contact::default()
    });
    book
}
