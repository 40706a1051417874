//! One `AddMsgList` entry → one [`MessageEvent`] (DESIGN.md "Inbound event", PROTOCOL.md §8):
//! routing, the XML payloads and the type's extra field. The text pipeline WeChat's escaped
//! content and names need (§8.3–§8.5) is in [`crate::wechat::text`].
//!
//! Everything here is pure and total: malformed XML or spans degrade to `null` fields or
//! literal text, never to a panic or a dropped message.
use serde_json::value::RawValue;
use time::OffsetDateTime;

use crate::event::{
    App, Card, Chat, File, FriendRequest, Link, Location, Media, MediaKind, MessageEvent,
    MessageKind, MessageType, Origin, Revoke, Sender,
};
use crate::wechat::contacts::ContactBook;
use crate::wechat::protocol::{is_group_name, AddMsg};
use crate::wechat::text::{
    br_to_newline, clean_name, clean_text, non_empty, replace_emoji_spans, split_group_prefix,
    unescape_html,
};

/// The separator after an @-mention (PROTOCOL.md §8.3).
const MENTION_END: char = '\u{2005}';

/// What [`normalize`] needs besides the entry.
#[derive(Debug, Clone, Copy)]
pub struct Context<'a> {
    /// The configured account name.
    pub account: &'a str,
    /// The contact book, with the groups and members of this batch already fetched
    /// ([`ContactBook::missing_for`]).
    pub book: &'a ContactBook,
    /// `Some` when this bridge sent this MsgId, holding the command's request_id (which a
    /// command may lack); the event is then `origin: bridge`.
    pub sent_by_bridge: Option<Option<&'a str>>,
}

/// Parses WeChat's XML payloads leniently: a payload that starts with `<` is tried as it is
/// (OriContent may arrive unescaped), anything else, or what failed, is tried HTML-unescaped
/// with `<br/>` as newlines, any text before the first `<` skipped and the flaws real captures
/// show repaired ([`repair_xml`]). DTDs are refused.
fn parse_xml<'a>(s: &'a str, buffer: &'a mut String) -> Option<roxmltree::Document<'a>> {
    let options = || roxmltree::ParsingOptions {
        allow_dtd: false,
        nodes_limit: 10_000,
        ..roxmltree::ParsingOptions::default()
    };
    let trimmed = s.trim_start();
    if trimmed.starts_with('<') {
        if let Ok(doc) = roxmltree::Document::parse_with_options(trimmed, options()) {
            return Some(doc);
        }
    }
    let cleaned = clean_xml(s);
    let start = cleaned.find('<')?;
    *buffer = repair_xml(&cleaned[start..]);
    roxmltree::Document::parse_with_options(buffer, options()).ok()
}

/// Mends what makes a strict parser refuse WeChat's XML (PROTOCOL.md §8.7), and is a no-op on
/// well-formed XML: text after the root element's end tag is dropped (file Content ends with
/// an escaped `<br/>` that becomes a second root), and a space is put between an attribute's
/// closing quote and the next attribute's name (`sign="…"percard="1"` in friend requests).
fn repair_xml(xml: &str) -> String {
    let mut out = String::with_capacity(xml.len() + 8);
    let mut rest = xml;
    while let Some(at) = rest.find('<') {
        out.push_str(&rest[..at]);
        rest = &rest[at..];
        // CDATA sections and comments are text: copied as they are.
        let verbatim_end = [("<![CDATA[", "]]>"), ("<!--", "-->")]
            .into_iter()
            .find(|(open, _)| rest.starts_with(open))
            .map(|(_, close)| rest.find(close).map_or(rest.len(), |i| i + close.len()));
        if let Some(end) = verbatim_end {
            out.push_str(&rest[..end]);
            rest = &rest[end..];
            continue;
        }
        let tag_len = tag_len(rest);
        let mut quote = None;
        let mut chars = rest[..tag_len].chars().peekable();
        while let Some(c) = chars.next() {
            out.push(c);
            match quote {
                None if c == '"' || c == '\'' => quote = Some(c),
                Some(q) if c == q => {
                    quote = None;
                    if chars
                        .peek()
                        .is_some_and(|n| n.is_ascii_alphabetic() || *n == '_')
                    {
                        out.push(' ');
                    }
                }
                _ => {}
            }
        }
        rest = &rest[tag_len..];
    }
    out.push_str(rest);
    match root_end(&out) {
        Some(end) => out[..end].to_owned(),
        None => out,
    }
}

/// The length of the tag `s` starts with, up to and including its `>` outside quotes (all of
/// `s` when unterminated).
fn tag_len(s: &str) -> usize {
    let mut quote = None;
    for (i, c) in s.char_indices() {
        match quote {
            None if c == '"' || c == '\'' => quote = Some(c),
            None if c == '>' => return i + 1,
            Some(q) if c == q => quote = None,
            _ => {}
        }
    }
    s.len()
}

/// Where the root element ends: just past the last `</name>` of the first element's name.
/// `None` when there is no such end tag (a self-closing root, or broken XML).
fn root_end(xml: &str) -> Option<usize> {
    let mut rest = xml;
    let open = loop {
        let at = rest.find('<')?;
        rest = &rest[at + 1..];
        if rest.starts_with(|c: char| c.is_alphabetic() || c == '_') {
            break rest;
        }
    };
    let name_len = open
        .find(|c: char| c.is_whitespace() || c == '>' || c == '/')
        .unwrap_or(open.len());
    let close = format!("</{}>", &open[..name_len]);
    xml.rfind(&close).map(|at| at + close.len())
}

/// Escaped content → XML text: `<br/>` → newline, entities decoded once.
fn clean_xml(s: &str) -> String {
    unescape_html(&br_to_newline(s))
}

/// The first element named `name`, anywhere.
fn element<'a, 'i>(
    doc: &'a roxmltree::Document<'i>,
    name: &str,
) -> Option<roxmltree::Node<'a, 'i>> {
    doc.descendants().find(|n| n.has_tag_name(name))
}

/// The trimmed text of the first child element `name` of `node`; `None` when empty.
fn child_text(node: roxmltree::Node<'_, '_>, name: &str) -> Option<String> {
    let child = node.children().find(|n| n.has_tag_name(name))?;
    let text: String = child
        .descendants()
        .filter(|n| n.is_text())
        .filter_map(|n| n.text())
        .collect();
    non_empty(replace_emoji_spans(text.trim()))
}

/// An attribute, with emoji spans converted; `None` when missing or empty.
fn attr(node: roxmltree::Node<'_, '_>, name: &str) -> Option<String> {
    node.attribute(name)
        .map(|v| replace_emoji_spans(v.trim()))
        .and_then(non_empty)
}

/// A group message's fields that depend on who sent it where.
struct Routing<'m> {
    chat_id: &'m str,
    group: Option<&'m str>,
    sender: &'m str,
    body: &'m str,
}

fn route<'m>(msg: &'m AddMsg, book: &ContactBook) -> Routing<'m> {
    let (from, to) = (msg.from_user_name.as_str(), msg.to_user_name.as_str());
    let group = [from, to].into_iter().find(|u| is_group_name(u));
    let server_text = matches!(msg.msg_type, 9999 | 10000);
    match group {
        // Only members' messages carry the prefix; system texts never do (§8.3).
        Some(g) if from == g && !server_text => match split_group_prefix(&msg.content) {
            Some((sender, body)) => Routing {
                chat_id: g,
                group: Some(g),
                sender,
                body,
            },
            None => Routing {
                chat_id: g,
                group: Some(g),
                sender: g,
                body: &msg.content,
            },
        },
        Some(g) => Routing {
            chat_id: g,
            group: Some(g),
            sender: from,
            body: &msg.content,
        },
        None => Routing {
            chat_id: if book.is_self(from) { to } else { from },
            group: None,
            sender: from,
            body: &msg.content,
        },
    }
}

/// Turns one AddMsgList entry into a message event, or `None` for entries that are not chat
/// messages (MsgType 51, or an entry without a MsgId).
///
/// `text` is set for `text` and `system` only; every other type carries its content in its
/// extra field and has `text: null`. `mentioned` is false for one's own messages.
pub fn normalize(msg: &AddMsg, ctx: &Context<'_>) -> Option<MessageEvent> {
    if msg.msg_type == 51 || msg.msg_id.is_empty() {
        return None;
    }
    let book = ctx.book;
    let routing = route(msg, book);
    let is_self = book.is_self(routing.sender);
    let origin = match (ctx.sent_by_bridge, is_self) {
        (Some(_), _) => Origin::Bridge,
        (None, true) => Origin::Phone,
        (None, false) => Origin::Contact,
    };
    let chat = Chat {
        id: routing.chat_id.to_owned(),
        name: book.name_of(routing.chat_id),
        group: routing.group.is_some(),
    };
    let from = sender(book, routing.group, routing.sender);
    let mut event = MessageEvent {
        kind: MessageKind,
        id: msg.msg_id.clone(),
        account: ctx.account.to_owned(),
        time: create_time(msg.create_time),
        message_type: MessageType::Other,
        msg_type: msg.msg_type,
        origin,
        request_id: ctx.sent_by_bridge.map(|r| r.map(str::to_owned)),
        chat,
        from,
        text: None,
        mentioned: false,
        location: None,
        media: None,
        friend_request: None,
        card: None,
        link: None,
        file: None,
        app: None,
        revoke: None,
        raw: msg.raw.clone().unwrap_or_else(null_raw),
    };
    fill_content(&mut event, msg, routing.body);
    if let (Some(group), false, Some(text)) = (routing.group, is_self, event.text.as_deref()) {
        event.mentioned = mentions_self(book, group, text);
    }
    Some(event)
}

/// CreateTime as a time RFC 3339 can write (years 0000–9999); anything else is the epoch, as
/// a CreateTime is never that far off and the event must stay readable.
fn create_time(unix: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(unix)
        .ok()
        .filter(|t| (0..=9999).contains(&t.year()))
        .unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

fn null_raw() -> Box<RawValue> {
    RawValue::from_string("null".to_owned()).expect("null is JSON")
}

/// `from`: in a group, the member's group DisplayName, else their NickName from the MemberList,
/// else from the book, else the id; the remark only from the book.
fn sender(book: &ContactBook, group: Option<&str>, id: &str) -> Sender {
    let contact = book.get(id);
    let member = group.and_then(|g| book.member(g, id));
    let name = [
        member.map(|m| m.display_name.as_str()),
        member.map(|m| m.nick_name.as_str()),
        contact.map(|c| c.nick_name.as_str()),
    ]
    .into_iter()
    .flatten()
    .map(clean_name)
    .find(|n| !n.is_empty());
    let name = match name {
        Some(name) => name,
        // A group's own notices: the group is the sender.
        None if is_group_name(id) => book.name_of(id),
        None => id.to_owned(),
    };
    Sender {
        id: id.to_owned(),
        name,
        remark: contact
            .map(|c| clean_name(&c.remark_name))
            .and_then(non_empty),
        is_self: book.is_self(id),
    }
}

/// True when `text` @-mentions self by the name self has in `group` (PROTOCOL.md §8.3).
fn mentions_self(book: &ContactBook, group: &str, text: &str) -> bool {
    let me = book.self_user();
    let group_name = book
        .member(group, &me.user_name)
        .map(|m| clean_name(&m.display_name))
        .filter(|n| !n.is_empty());
    let name = group_name.unwrap_or_else(|| clean_name(&me.nick_name));
    if name.is_empty() {
        return false;
    }
    let tag = format!("@{name}");
    text.ends_with(&tag) || text.contains(&format!("{tag}{MENTION_END}"))
}

/// Sets `message_type`, `text` and the type's extra field from the content past the prefix.
fn fill_content(event: &mut MessageEvent, msg: &AddMsg, body: &str) {
    let media = |kind| Media {
        msg_id: msg.msg_id.clone(),
        kind,
        duration_ms: None,
        duration_s: None,
    };
    match msg.msg_type {
        1 if (msg.sub_msg_type == 48 && !msg.url.is_empty()) || is_map_url(&msg.url) => {
            event.message_type = MessageType::Location;
            event.location = Some(location(msg, body));
        }
        1 => {
            event.message_type = MessageType::Text;
            event.text = Some(clean_text(body));
        }
        48 => {
            event.message_type = MessageType::Location;
            event.location = Some(location(msg, body));
        }
        3 => {
            event.message_type = MessageType::Image;
            event.media = Some(media(MediaKind::Image));
        }
        34 => {
            event.message_type = MessageType::Voice;
            event.media = Some(Media {
                duration_ms: Some(msg.voice_length),
                ..media(MediaKind::Voice)
            });
        }
        43 | 62 => {
            event.message_type = MessageType::Video;
            event.media = Some(Media {
                duration_s: Some(msg.play_length),
                ..media(MediaKind::Video)
            });
        }
        47 => {
            event.message_type = MessageType::Emoticon;
            event.media = Some(media(MediaKind::Emoticon));
        }
        37 => {
            event.message_type = MessageType::FriendRequest;
            event.friend_request = Some(friend_request(msg, body));
        }
        42 => {
            event.message_type = MessageType::Card;
            event.card = Some(card(msg, body));
        }
        49 => fill_app(event, msg, body),
        9999 | 10000 => {
            event.message_type = MessageType::System;
            event.text = Some(clean_text(body));
        }
        10002 => {
            event.message_type = MessageType::Revoke;
            event.revoke = Some(Revoke {
                revoked_id: revoked_id(body),
            });
        }
        _ => {}
    }
}

/// A location: the address before `:\n` in the content, coordinates from the map link's
/// `coord=`, else from the XML (in the content for MsgType 48, in OriContent for MsgType 1,
/// where WeChat's `x` is the latitude).
fn location(msg: &AddMsg, body: &str) -> Location {
    let mut buffer = String::new();
    let mut ori_buffer = String::new();
    let doc = parse_xml(body, &mut buffer)
        .filter(|d| element(d, "location").is_some())
        .or_else(|| parse_xml(&msg.ori_content, &mut ori_buffer));
    let node = doc.as_ref().and_then(|d| element(d, "location"));
    let coordinate = |name| {
        node.and_then(|n| n.attribute(name))
            .and_then(|v| v.trim().parse::<f64>().ok())
            .filter(|v| v.is_finite())
    };
    let text_label = if body.trim_start().starts_with("&lt;") || body.trim_start().starts_with('<')
    {
        None
    } else {
        let text = clean_text(body);
        let label = text.rfind(":\n").map_or(text.as_str(), |at| &text[..at]);
        non_empty(label.trim().to_owned())
    };
    let label = text_label
        .or_else(|| node.and_then(|n| attr(n, "label")))
        .or_else(|| node.and_then(|n| attr(n, "poiname")))
        .unwrap_or_default();
    let url = unescape_html(&msg.url);
    let (lat, lon) = match map_coordinates(&url) {
        Some((lat, lon)) => (Some(lat), Some(lon)),
        None => (coordinate("x"), coordinate("y")),
    };
    Location {
        label,
        lat,
        lon,
        url: non_empty(url),
    }
}

/// True for the map link of a location sent as text (`apis.map.qq.com/…`, PROTOCOL.md §8.2).
fn is_map_url(url: &str) -> bool {
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))
        .unwrap_or(url);
    rest.starts_with("apis.map.qq.com/")
}

/// `coord=<lat>,<lon>` of a map link, when both are finite and in range (DESIGN.md: the
/// coordinates come from `coord=` when present). Values are read as they stand: the link is
/// entity-unescaped once by the caller and never URL-decoded.
fn map_coordinates(url: &str) -> Option<(f64, f64)> {
    let query = url.split_once('?')?.1;
    let value = query
        .split('&')
        .find_map(|pair| pair.strip_prefix("coord="))?;
    let (lat, lon) = value.split_once(',')?;
    let lat: f64 = lat.trim().parse().ok()?;
    let lon: f64 = lon.trim().parse().ok()?;
    ((-90.0..=90.0).contains(&lat) && (-180.0..=180.0).contains(&lon)).then_some((lat, lon))
}

/// A friend request from RecommendInfo, falling back to the `<msg fromnickname=… content=…
/// ticket=…>` attributes of the content.
fn friend_request(msg: &AddMsg, body: &str) -> FriendRequest {
    let info = &msg.recommend_info;
    let mut buffer = String::new();
    let doc = parse_xml(body, &mut buffer);
    let node = doc.as_ref().and_then(|d| element(d, "msg"));
    let pick = |own: &str, xml_attr: &str| {
        non_empty(clean_name(own))
            .or_else(|| node.and_then(|n| attr(n, xml_attr)))
            .unwrap_or_default()
    };
    FriendRequest {
        name: pick(&info.nick_name, "fromnickname"),
        greeting: pick(&info.content, "content"),
        ticket: pick(&info.ticket, "ticket"),
    }
}

/// A business card from `<msg username=… nickname=… alias=…/>`, falling back to RecommendInfo.
fn card(msg: &AddMsg, body: &str) -> Card {
    let mut buffer = String::new();
    let doc = parse_xml(body, &mut buffer);
    let node = doc.as_ref().and_then(|d| element(d, "msg"));
    let info = &msg.recommend_info;
    Card {
        name: node
            .and_then(|n| attr(n, "nickname"))
            .or_else(|| non_empty(clean_name(&info.nick_name))),
        alias: node
            .and_then(|n| attr(n, "alias"))
            .or_else(|| non_empty(clean_name(&info.alias))),
    }
}

/// MsgType 49: link (5), file (6) or another app message, from the `<appmsg>` XML with the
/// entry's FileName and Url as fallbacks.
fn fill_app(event: &mut MessageEvent, msg: &AddMsg, body: &str) {
    let mut buffer = String::new();
    let doc = parse_xml(body, &mut buffer);
    let appmsg = doc.as_ref().and_then(|d| element(d, "appmsg"));
    let field = |name| appmsg.and_then(|n| child_text(n, name));
    let title = field("title").or_else(|| non_empty(clean_name(&msg.file_name)));
    let url = field("url").or_else(|| non_empty(unescape_html(&msg.url)));
    let app_msg_type = match msg.app_msg_type {
        0 => field("type").and_then(|t| t.parse().ok()).unwrap_or(0),
        t => t,
    };
    match app_msg_type {
        5 => {
            event.message_type = MessageType::Link;
            event.link = Some(Link {
                title,
                url,
                description: field("des"),
            });
        }
        6 => {
            event.message_type = MessageType::File;
            event.file = Some(File {
                name: non_empty(clean_name(&msg.file_name))
                    .or(title)
                    .unwrap_or_default(),
                size: msg.file_size.trim().parse().ok().or_else(|| {
                    // `<appmsg><appattach><totallen>`.
                    let attach =
                        appmsg.and_then(|n| n.children().find(|c| c.has_tag_name("appattach")));
                    attach
                        .and_then(|n| child_text(n, "totallen"))
                        .and_then(|s| s.parse().ok())
                }),
                media_id: msg.media_id.clone(),
            });
        }
        _ => {
            event.message_type = MessageType::App;
            event.app = Some(App {
                app_msg_type,
                title,
                url,
            });
        }
    }
}

/// The recalled MsgId: `<msgid>` inside `<revokemsg>` (PROTOCOL.md §8.2), found by a plain
/// search when the XML does not parse.
fn revoked_id(body: &str) -> Option<String> {
    let mut buffer = String::new();
    if let Some(doc) = parse_xml(body, &mut buffer) {
        if let Some(id) = element(&doc, "revokemsg").and_then(|n| child_text(n, "msgid")) {
            return Some(id);
        }
    }
    let text = clean_xml(body);
    let start = text.find("<msgid>")? + "<msgid>".len();
    let len = text[start..].find("</msgid>")?;
    non_empty(text[start..start + len].trim().to_owned())
}

#[cfg(test)]
mod tests {
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
                    attr_status: 0,
                },
                Member {
                    user_name: "@b22".into(),
                    nick_name: "Bob".into(),
                    display_name: String::new(),
                    attr_status: 0,
                },
                Member {
                    user_name: "@self".into(),
                    nick_name: "Sam".into(),
                    display_name: "Sammy".into(),
                    attr_status: 0,
                },
            ],
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
            Some(File {
                name: "report.pdf".into(),
                size: Some(123_456),
                media_id: "@crypt_abc".into(),
            })
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
}

/// Properties of normalizing on generated input (proptest): a group message's text is the
/// cleaned body, whatever the body holds.
#[cfg(test)]
mod properties {
    use proptest::prelude::*;

    use super::*;
    use crate::wechat::protocol::{Contact, Member};
    use crate::wechat::text::properties::content;

    proptest! {

        #[test]
        fn group_text_is_the_cleaned_body_from_the_prefixed_member(
            member in prop::sample::select(vec!["@a81", "@b22", "@zz9"]),
            body in content(),
        ) {
            let mut book = ContactBook::new(Contact {
                user_name: "@self".into(),
                nick_name: "Sam".into(),
                ..Contact::default()
            });
            book.upsert(Contact {
                user_name: "@@9f3".into(),
                nick_name: "Family".into(),
                member_list: vec![Member {
                    user_name: "@a81".into(),
                    nick_name: "Alice".into(),
                    ..Member::default()
                }],
                ..Contact::default()
            });
            let msg = AddMsg {
                msg_id: "1".into(),
                from_user_name: "@@9f3".into(),
                to_user_name: "@self".into(),
                msg_type: 1,
                content: format!("{member}:<br/>{body}"),
                ..AddMsg::default()
            };
            let ctx = Context { account: "home", book: &book, sent_by_bridge: None };
            let event = normalize(&msg, &ctx).unwrap();
            prop_assert_eq!(event.from.id.as_str(), member);
            let cleaned = clean_text(&body);
            prop_assert_eq!(event.text.as_deref(), Some(cleaned.as_str()));
            prop_assert_eq!(event.chat.id.as_str(), "@@9f3");
            prop_assert!(serde_json::to_string(&event).is_ok());
        }
    }
}
