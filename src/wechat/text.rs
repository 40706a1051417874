//! WeChat's text pipeline (PROTOCOL.md §8.3–§8.5): the group sender prefix, `<br/>`, HTML
//! entities and emoji spans. Message text and contact names both go through it, so it is a leaf
//! that `message` and `contacts` use and that uses neither.
//!
//! Everything here is pure and total: a malformed span stays literal text, never a panic.
use std::borrow::Cow;

use memchr::{memchr, memchr2};

/// Splits the group sender prefix off group content: `@a81:<br/>hi` → `("@a81", "hi")`.
///
/// The official regex is `^(@[a-zA-Z0-9]+|[a-zA-Z0-9_-]+):<br/>` (PROTOCOL.md §8.3).
pub fn split_group_prefix(content: &str) -> Option<(&str, &str)> {
    let (body, allowed): (&str, fn(u8) -> bool) = match content.strip_prefix('@') {
        Some(rest) => (rest, |b| b.is_ascii_alphanumeric()),
        None => (content, |b| {
            b.is_ascii_alphanumeric() || b == b'_' || b == b'-'
        }),
    };
    let id_len = body.bytes().take_while(|&b| allowed(b)).count();
    if id_len == 0 {
        return None;
    }
    let rest = body[id_len..].strip_prefix(":<br/>")?;
    let sender_len = content.len() - body.len() + id_len;
    Some((&content[..sender_len], rest))
}

/// `<br/>` → `\n`.
pub fn br_to_newline(s: &str) -> String {
    br_to_newline_cow(s).into_owned()
}

/// [`br_to_newline`], borrowed when there is no `<`: most text has none, and a byte search
/// is much cheaper than setting up a substring search.
fn br_to_newline_cow(s: &str) -> Cow<'_, str> {
    if memchr(b'<', s.as_bytes()).is_none() {
        return Cow::Borrowed(s);
    }
    Cow::Owned(s.replace("<br/>", "\n"))
}

/// Decodes HTML entities (`&lt; &amp; &#39;` …), once.
pub fn unescape_html(s: &str) -> String {
    html_escape::decode_html_entities(s).into_owned()
}

const SPAN_OPEN: &str = "<span class=\"emoji emoji";
const SPAN_CLOSE: &str = "\"></span";

/// itchat's fixes for cat faces the server sends in place of faces (PROTOCOL.md §8.5).
const CAT_FACE_FIXES: [(&str, &str); 9] = [
    ("1f63c", "1f601"),
    ("1f639", "1f602"),
    ("1f63a", "1f603"),
    ("1f4ab", "1f616"),
    ("1f64d", "1f614"),
    ("1f63b", "1f60d"),
    ("1f63d", "1f618"),
    ("1f64e", "1f621"),
    ("1f63f", "1f622"),
];

/// Replaces emoji spans `<span class="emoji emoji1f604"></span>` with the Unicode they stand for
/// (PROTOCOL.md §8.5).
///
/// The code is 1–10 hex digits (either case). A 6-digit code is two code points split 2+4
/// (keycap `2320e3` = `#` U+20E3), a 10-digit code two split 5+5 (flag `1f1e81f1f3`), anything
/// else one. A span missing its final `>` is accepted (itchat repairs one such code; any is
/// accepted here), and itchat's nine cat-face codes are mapped to the faces meant. A span
/// whose code is not a valid code point is left as it is.
pub fn replace_emoji_spans(s: &str) -> String {
    replace_emoji_spans_cow(s).into_owned()
}

/// [`replace_emoji_spans`], borrowed when `s` has no `<` and so no span.
fn replace_emoji_spans_cow(s: &str) -> Cow<'_, str> {
    if memchr(b'<', s.as_bytes()).is_none() {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(at) = rest.find(SPAN_OPEN) {
        out.push_str(&rest[..at]);
        let after_open = &rest[at + SPAN_OPEN.len()..];
        match parse_span(after_open) {
            Some((emoji, used)) => {
                out.push_str(&emoji);
                rest = &after_open[used..];
            }
            None => {
                out.push_str(SPAN_OPEN);
                rest = after_open;
            }
        }
    }
    out.push_str(rest);
    Cow::Owned(out)
}

/// Reads `1f604"></span>` (the part after [`SPAN_OPEN`]) into the emoji and the bytes used.
fn parse_span(s: &str) -> Option<(String, usize)> {
    let code_len = s.bytes().take(11).take_while(u8::is_ascii_hexdigit).count();
    if !(1..=10).contains(&code_len) {
        return None;
    }
    let after_code = s[code_len..].strip_prefix(SPAN_CLOSE)?;
    let used = code_len + SPAN_CLOSE.len() + usize::from(after_code.starts_with('>'));
    let code = s[..code_len].to_ascii_lowercase();
    let code = CAT_FACE_FIXES
        .iter()
        .find(|(wrong, _)| *wrong == code)
        .map_or(code.as_str(), |(_, right)| right);
    let parts: Vec<&str> = match code.len() {
        6 => vec![&code[..2], &code[2..]],
        10 => vec![&code[..5], &code[5..]],
        _ => vec![code],
    };
    let emoji = parts
        .into_iter()
        .map(|hex| u32::from_str_radix(hex, 16).ok().and_then(char::from_u32))
        .collect::<Option<String>>()?;
    Some((emoji, used))
}

/// `<br/>` → newline, HTML-unescape, emoji spans → Unicode: the order of PROTOCOL.md §8.4 after
/// the group prefix is gone. Used for message text and for names.
pub fn clean_text(s: &str) -> String {
    // Only `<` (`<br/>`, spans) and `&` (entities, among them escaped spans) start anything
    // the pipeline changes; most names and many texts have neither.
    if memchr2(b'<', b'&', s.as_bytes()).is_none() {
        return s.to_owned();
    }
    let lines = br_to_newline_cow(s);
    let unescaped = html_escape::decode_html_entities(&lines);
    replace_emoji_spans_cow(&unescaped).into_owned()
}

/// Normalizes a name the way message text is: entities decoded, emoji spans to Unicode.
pub fn clean_name(raw: &str) -> String {
    clean_text(raw)
}

/// `None` for an empty string, so an empty field reads as `null`.
pub(crate) fn non_empty(s: String) -> Option<String> {
    (!s.is_empty()).then_some(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn group_prefix_is_split_by_the_official_pattern() {
        assert_eq!(split_group_prefix("@a81:<br/>hi"), Some(("@a81", "hi")));
        assert_eq!(
            split_group_prefix("wxid_ab-1:<br/>x:<br/>y"),
            Some(("wxid_ab-1", "x:<br/>y"))
        );
        assert_eq!(split_group_prefix("@a_1:<br/>hi"), None);
        assert_eq!(split_group_prefix(":<br/>hi"), None);
        assert_eq!(split_group_prefix("@:<br/>hi"), None);
        assert_eq!(split_group_prefix("hello there:<br/>"), None);
        assert_eq!(split_group_prefix("@a81:hi"), None);
    }

    #[test]
    fn emoji_spans_become_unicode() {
        let span = |code: &str| format!("<span class=\"emoji emoji{code}\"></span>");
        assert_eq!(replace_emoji_spans(&span("1f604")), "😄");
        assert_eq!(replace_emoji_spans(&span("2320e3")), "#\u{20e3}");
        assert_eq!(replace_emoji_spans(&span("1f1e81f1f3")), "🇨🇳");
        assert_eq!(replace_emoji_spans(&span("2764")), "❤");
        assert_eq!(replace_emoji_spans(&span("1F604")), "😄");
        assert_eq!(
            replace_emoji_spans(&format!("a{}b{}c", span("1f604"), span("1f44d"))),
            "a😄b👍c"
        );
    }

    #[test]
    fn emoji_span_missing_its_bracket_is_repaired() {
        assert_eq!(
            replace_emoji_spans("<span class=\"emoji emoji1f450\"></span ok"),
            "👐 ok"
        );
        assert_eq!(
            replace_emoji_spans("<span class=\"emoji emoji1f450\"></span"),
            "👐"
        );
    }

    #[test]
    fn wrongly_sent_cat_faces_are_remapped() {
        let fixed: String = CAT_FACE_FIXES
            .iter()
            .map(|(wrong, _)| {
                replace_emoji_spans(&format!("<span class=\"emoji emoji{wrong}\"></span>"))
            })
            .collect();
        assert_eq!(fixed, "😁😂😃😖😔😍😘😡😢");
    }

    #[test]
    fn unparsable_spans_stay_as_text() {
        for s in [
            "<span class=\"emoji emoji\"></span>",
            "<span class=\"emoji emojizz\"></span>",
            "<span class=\"emoji emojid800\"></span>",
            "<span class=\"emoji emoji1100000\"></span>x",
            "<span class=\"emoji emoji1f60412345678\"></span>",
            "<span class=\"emoji emoji1f604\">",
            "<span class=\"emoji emoji1f604",
            "<span class=\"emoji emoji",
        ] {
            assert_eq!(replace_emoji_spans(s), s);
        }
        assert_eq!(
            replace_emoji_spans(
                "<span class=\"emoji emoji<span class=\"emoji emoji1f604\"></span>"
            ),
            "<span class=\"emoji emoji😄"
        );
    }

    #[test]
    fn text_pipeline_runs_in_protocol_order() {
        assert_eq!(
            clean_text(
                "a &lt;b&gt; &amp;amp;<br/>c&#39;s <span class=\"emoji emoji1f604\"></span>"
            ),
            "a <b> &amp;\nc's 😄"
        );
        // Unescaping comes before spans, so an escaped span is an emoji too (itchat, openwechat).
        assert_eq!(
            clean_text("&lt;span class=&quot;emoji emoji1f604&quot;&gt;&lt;/span&gt;"),
            "😄"
        );
    }

    #[test]
    fn names_are_cleaned_like_text() {
        assert_eq!(clean_name("Tom &amp; Jerry"), "Tom & Jerry");
    }
}

/// Properties of the text pipeline on generated input (proptest): what holds for any content,
/// and what WeChat's own escaping (the fake server's `wx_escape`) must read back as.
#[cfg(test)]
pub(super) mod properties {
    use proptest::prelude::*;
    use wxbridge_fake::wx_escape;

    use super::*;

    fn span(code: &str) -> String {
        format!("{SPAN_OPEN}{code}\"></span>")
    }

    /// Text built from the pieces the pipeline reacts to, glued with arbitrary characters.
    pub(in crate::wechat) fn content() -> impl Strategy<Value = String> {
        let piece = prop_oneof![
            any::<char>().prop_map(String::from),
            "[0-9a-fA-F]{1,12}",
            Just("<br/>".to_owned()),
            Just("&amp;".to_owned()),
            Just("&lt;".to_owned()),
            Just("&#x1F604;".to_owned()),
            Just(SPAN_OPEN.to_owned()),
            Just(SPAN_CLOSE.to_owned()),
            Just(">".to_owned()),
            Just(":<br/>".to_owned()),
            Just("@".to_owned()),
        ];
        prop::collection::vec(piece, 0..24).prop_map(|p| p.concat())
    }

    /// Characters a user types, weighted towards the ones WeChat escapes or turns into spans.
    fn typed_text() -> impl Strategy<Value = String> {
        let ch = prop_oneof![
            any::<char>(),
            prop::sample::select(vec![
                '&', '<', '>', '"', '\n', '#', '1', '\u{FE0F}', '\u{20E3}'
            ]),
            prop::char::range('\u{1F000}', '\u{1FAFF}'),
            prop::char::range('\u{2600}', '\u{27BF}'),
            prop::char::range('\u{1F1E6}', '\u{1F1FF}'),
        ];
        prop::collection::vec(ch, 0..40).prop_map(|c| c.into_iter().collect())
    }

    fn is_cat_face(c: char) -> bool {
        let code = format!("{:x}", u32::from(c));
        CAT_FACE_FIXES.iter().any(|(wrong, _)| *wrong == code)
    }

    proptest! {
        #[test]
        fn every_line_break_tag_becomes_a_newline(s in content()) {
            let out = clean_text(&s);
            prop_assert!(replace_emoji_spans(&s).len() <= s.len());
            if !s.contains('&') {
                prop_assert!(!out.contains("<br/>"), "{out:?}");
                prop_assert_eq!(
                    out.matches('\n').count(),
                    s.matches('\n').count() + s.matches("<br/>").count()
                );
            }
        }

        #[test]
        fn the_pipeline_is_its_three_steps_in_order(s in content(), t in typed_text()) {
            // The steps written out without the shortcuts (no `<` nor `&`: nothing to do;
            // borrowed steps) that `clean_text` takes.
            let reference = |s: &str| {
                let unescaped =
                    html_escape::decode_html_entities(&s.replace("<br/>", "\n")).into_owned();
                let mut out = String::new();
                let mut rest = unescaped.as_str();
                while let Some(at) = rest.find(SPAN_OPEN) {
                    out.push_str(&rest[..at]);
                    let after = &rest[at + SPAN_OPEN.len()..];
                    match parse_span(after) {
                        Some((emoji, used)) => {
                            out.push_str(&emoji);
                            rest = &after[used..];
                        }
                        None => {
                            out.push_str(SPAN_OPEN);
                            rest = after;
                        }
                    }
                }
                out.push_str(rest);
                out
            };
            for s in [s.clone(), t.clone(), wx_escape(&t)] {
                prop_assert_eq!(clean_text(&s), reference(&s));
            }
        }

        #[test]
        fn text_escaped_by_the_server_reads_back_as_typed(s in typed_text()) {
            // The server drops U+FE0F; the nine cat faces are remapped on purpose (§8.5); a
            // typed literal span is read as an emoji, as itchat and openwechat do.
            prop_assume!(
                !s.chars().any(is_cat_face) && !s.replace('\u{FE0F}', "").contains(SPAN_OPEN)
            );
            prop_assert_eq!(clean_text(&wx_escape(&s)), s.replace('\u{FE0F}', ""));
        }

        #[test]
        fn a_span_of_one_code_point_reads_back_as_that_char(
            c in any::<char>(),
            upper in any::<bool>(),
            bracket in any::<bool>(),
        ) {
            // Six hex digits are two code points (2+4); only U+100000 and up have six.
            prop_assume!(u32::from(c) < 0x10_0000 && !is_cat_face(c));
            let code = format!("{:x}", u32::from(c));
            let code = if upper { code.to_uppercase() } else { code };
            let mut s = span(&code);
            if !bracket {
                s.pop();
            }
            prop_assert_eq!(replace_emoji_spans(&format!("a{s}b")), format!("a{c}b"));
        }

        #[test]
        fn six_and_ten_digit_spans_are_two_code_points(
            a in 0x10u32..=0xff,
            b in 0x1000u32..=0xffff,
            c in 0x1_0000u32..=0xf_ffff,
            d in 0x1_0000u32..=0xf_ffff,
        ) {
            prop_assume!(!(0xd800..=0xdfff).contains(&b));
            let want = |x: u32| char::from_u32(x).unwrap();
            prop_assert_eq!(
                replace_emoji_spans(&span(&format!("{a:02x}{b:04x}"))),
                format!("{}{}", want(a), want(b))
            );
            prop_assert_eq!(
                replace_emoji_spans(&span(&format!("{c:05x}{d:05x}"))),
                format!("{}{}", want(c), want(d))
            );
        }

        #[test]
        fn group_prefix_split_then_rejoined_is_the_content(
            id in prop_oneof!["@[a-zA-Z0-9]{1,40}", "[a-zA-Z0-9_-]{1,40}"],
            body in content(),
            other in content(),
        ) {
            let joined = format!("{id}:<br/>{body}");
            prop_assert_eq!(split_group_prefix(&joined), Some((id.as_str(), body.as_str())));
            if let Some((sender, rest)) = split_group_prefix(&other) {
                prop_assert_eq!(format!("{sender}:<br/>{rest}"), other);
            }
        }
    }
}
