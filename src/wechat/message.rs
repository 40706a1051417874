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
        key: None,
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
        member.map(|m| m.display_name),
        member.map(|m| m.nick_name),
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
        key: None,
    }
}

/// True when `text` @-mentions self by the name self has in `group` (PROTOCOL.md §8.3).
fn mentions_self(book: &ContactBook, group: &str, text: &str) -> bool {
    let me = book.self_user();
    let group_name = book
        .member(group, &me.user_name)
        .map(|m| clean_name(m.display_name))
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
    let media = |kind| Media::new(msg.msg_id.clone(), kind);
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
            let name = non_empty(clean_name(&msg.file_name))
                .or(title)
                .unwrap_or_default();
            let size = msg.file_size.trim().parse().ok().or_else(|| {
                // `<appmsg><appattach><totallen>`.
                let attach =
                    appmsg.and_then(|n| n.children().find(|c| c.has_tag_name("appattach")));
                attach
                    .and_then(|n| child_text(n, "totallen"))
                    .and_then(|s| s.parse().ok())
            });
            event.file = Some(File::new(name, size, msg.media_id.clone()));
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
mod tests;

#[cfg(test)]
mod properties;
