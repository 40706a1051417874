//! Compacts JSON text without parsing it: whitespace between tokens goes, everything else
//! (member order, number texts such as a `NewMsgId` above 2^53, string escapes) stays byte for
//! byte.
//!
//! The real servers lay out every answer with one object member per line (PROTOCOL.md §8.7), so
//! an `AddMsgList` entry kept as received would span ~50 lines of an event's `raw`, and the
//! embedded default promises one JSON object per stdout line (DESIGN.md). A pass over the
//! bytes that knows only "inside a string" and "after a backslash" is enough for text that is
//! already valid JSON, and much cheaper than a parse and re-serialization (which would also
//! send decimals and integers beyond 64 bits through `f64`, `arbitrary_precision` being off).
//!
//! The sync answer is compacted whole, once, before it is parsed ([`compact_checked`]): every
//! entry's `raw` is then a slice of that text, and the parse walks no layout whitespace.
use std::borrow::Cow;

use memchr::memchr2;

/// The JSON text `json` with the whitespace outside its strings removed; borrowed when there
/// is none. `json` must be valid JSON (a `RawValue`'s text is): the pass does not check it.
pub fn compact(json: &str) -> Cow<'_, str> {
    match squeeze(json, false) {
        Ok(text) | Err(Joined(text)) => text,
    }
}

/// [`compact`] for text not yet known to be JSON: `None` when the whitespace removed would
/// have joined two tokens (`1 2`, `tr ue`), the one way removing it could turn invalid text
/// into valid JSON. Otherwise the result is valid JSON exactly when `json` is, with the same
/// values.
pub fn compact_checked(json: &str) -> Option<Cow<'_, str>> {
    squeeze(json, true).ok()
}

/// What [`squeeze`] made of the text when a strict pass found two tokens joined.
struct Joined<'a>(Cow<'a, str>);

/// One pass over the bytes that knows only "inside a string" and "outside": strings are
/// skipped to their closing quote (memchr for the quote or a backslash), runs of whitespace
/// outside them are dropped. With `strict`, stops at a run between two bytes that can only
/// belong to literals or numbers, which valid JSON never separates by whitespace alone.
fn squeeze(json: &str, strict: bool) -> Result<Cow<'_, str>, Joined<'_>> {
    let bytes = json.as_bytes();
    let mut out: Option<String> = None;
    // The start of the text not yet copied: everything before it is copied or dropped.
    let mut run = 0;
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if b == b'"' {
            i += 1;
            loop {
                match memchr2(b'"', b'\\', &bytes[i..]) {
                    // An escape is two bytes at least; what follows the backslash cannot
                    // end the string.
                    Some(k) if bytes[i + k] == b'\\' => i = (i + k + 2).min(bytes.len()),
                    Some(k) => {
                        i += k + 1;
                        break;
                    }
                    None => {
                        i = bytes.len();
                        break;
                    }
                }
            }
        } else if is_json_space(b) {
            let start = i;
            while i < bytes.len() && is_json_space(bytes[i]) {
                i += 1;
            }
            if strict
                && start > 0
                && i < bytes.len()
                && is_scalar_byte(bytes[start - 1])
                && is_scalar_byte(bytes[i])
            {
                return Err(Joined(finish(json, out, run)));
            }
            // `start` and `i` are at ASCII bytes or the end, so both slices end on a
            // character boundary.
            let o = out.get_or_insert_with(|| String::with_capacity(json.len()));
            o.push_str(&json[run..start]);
            run = i;
        } else {
            i += 1;
        }
    }
    Ok(finish(json, out, run))
}

fn finish(json: &str, out: Option<String>, run: usize) -> Cow<'_, str> {
    match out {
        None => Cow::Borrowed(json),
        Some(mut o) => {
            o.push_str(&json[run..]);
            Cow::Owned(o)
        }
    }
}

/// The four whitespace characters JSON allows between tokens (RFC 8259 §2).
fn is_json_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r')
}

/// Bytes of `true`, `false`, `null` and numbers: two of them with whitespace between are two
/// tokens that compacting would join.
fn is_scalar_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'.' | b'+' | b'-')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_servers_layout_becomes_one_line() {
        let wire = "{\n\"MsgId\": \"4839201934821\",\n\"RecommendInfo\": {\n\"UserName\": \"\",\n\"QQNum\": 0\n}\n,\n\"List\": [{\n\"Key\": 1\n}\n,{\n\"Key\": 2\n}\n],\n\"NewMsgId\": 9007199254740993\n}";
        assert_eq!(
            compact(wire),
            r#"{"MsgId":"4839201934821","RecommendInfo":{"UserName":"","QQNum":0},"List":[{"Key":1},{"Key":2}],"NewMsgId":9007199254740993}"#
        );
    }

    #[test]
    fn whitespace_inside_strings_is_kept() {
        let wire = "{ \"Content\" : \"a b\\t\\n  c\\r\\n\" ,\r\n\t\"Url\":\"x y\" }";
        assert_eq!(
            compact(wire),
            "{\"Content\":\"a b\\t\\n  c\\r\\n\",\"Url\":\"x y\"}"
        );
    }

    #[test]
    fn escaped_quotes_and_backslashes_do_not_end_a_string() {
        // `\\` ends in a backslash that escapes nothing; `\"` does not close the string.
        let wire = r#"{ "a" : "say \"hi \" \\" , "b" : "\\\" x \\\\" , "c" : "\u0022 y" }"#;
        assert_eq!(
            compact(wire),
            r#"{"a":"say \"hi \" \\","b":"\\\" x \\\\","c":"\u0022 y"}"#
        );
    }

    #[test]
    fn number_texts_and_order_are_kept_exactly() {
        let wire = "{\n\"Z\": 1.50,\n\"A\": -0e+3,\n\"NewMsgId\": 18446744073709551615,\n\"Big\": 123456789012345678901234567890\n}";
        assert_eq!(
            compact(wire),
            r#"{"Z":1.50,"A":-0e+3,"NewMsgId":18446744073709551615,"Big":123456789012345678901234567890}"#
        );
    }

    #[test]
    fn compact_text_is_borrowed_not_copied() {
        let text = r#"{"a":[1,2,{"b":"c d"}],"e":null}"#;
        assert!(matches!(compact(text), Cow::Borrowed(t) if t == text));
    }

    #[test]
    fn a_checked_compaction_refuses_to_join_two_tokens() {
        for joined in [
            "[1 2]",
            "[tr ue]",
            "{\"a\": 1\n2}",
            "[- 1]",
            "[1. 5]",
            "[null\tnull]",
        ] {
            assert_eq!(compact_checked(joined), None, "{joined}");
        }
        let wire = "{\n\"a\": [1, -2.5e+3, true, null],\n\"b\": \"x y\"\n}";
        assert_eq!(
            compact_checked(wire).as_deref(),
            Some(r#"{"a":[1,-2.5e+3,true,null],"b":"x y"}"#)
        );
    }

    #[test]
    fn a_backslash_at_the_end_of_unterminated_text_does_not_overrun() {
        assert_eq!(compact("\"abc\\"), "\"abc\\");
        assert_eq!(compact("[\"a\\\"\" ,1]"), "[\"a\\\"\",1]");
    }

    #[test]
    fn non_ascii_and_line_separators_in_strings_survive() {
        let wire = "{\n\"Content\": \"好的\u{2028}晚上见\u{2029} 👍\u{85}\"\n}";
        assert_eq!(
            compact(wire),
            "{\"Content\":\"好的\u{2028}晚上见\u{2029} 👍\u{85}\"}"
        );
    }
}

/// Property tests: any layout a server may choose gives the same compact text, and a sync
/// answer in any layout gives one-line events whose `raw` is the entry token for token.
#[cfg(test)]
mod props {
    use proptest::prelude::*;

    use super::compact;
    use crate::event::{Event, MessageEvent};
    use crate::wechat::contacts::ContactBook;
    use crate::wechat::message::{normalize, Context};
    use crate::wechat::protocol::{
        parse_sync_response, parse_sync_response_entry_by_entry, Contact,
    };

    /// A JSON value as text pieces, so one tree can be written in any layout and the
    /// expected compact text is known without going through a parser (and so through `f64`).
    #[derive(Debug, Clone)]
    enum J {
        Lit(&'static str),
        Num(String),
        Str(String),
        Arr(Vec<J>),
        Obj(Vec<(String, J)>),
    }

    /// String contents as they appear on the wire: escapes, raw non-ASCII, U+2028/U+2029
    /// raw and escaped, spaces, braces and commas that must not be taken for tokens.
    fn string_body() -> impl Strategy<Value = String> {
        let piece = prop_oneof![
            "[a-zA-Z0-9 ,:{}\\[\\]]{0,6}",
            Just("\\n".to_owned()),
            Just("\\r\\n".to_owned()),
            Just("\\t".to_owned()),
            Just("\\\"".to_owned()),
            Just("\\\\".to_owned()),
            Just("\\\\\\\"".to_owned()),
            Just("\\/".to_owned()),
            Just("\\u2028".to_owned()),
            Just("\u{2028}".to_owned()),
            Just("\u{2029}".to_owned()),
            Just("\u{85}".to_owned()),
            Just("好的 👍".to_owned()),
            Just("\\ud83d\\ude42".to_owned()),
            Just("&lt;br/&gt;<br/>".to_owned()),
        ];
        prop::collection::vec(piece, 0..6).prop_map(|p| p.concat())
    }

    fn number() -> impl Strategy<Value = String> {
        prop_oneof![
            any::<u64>().prop_map(|n| n.to_string()),
            any::<i64>().prop_map(|n| n.to_string()),
            Just("123456789012345678901234567890".to_owned()),
            "-?(0|[1-9][0-9]{0,8})(\\.[0-9]{1,3})?([eE][+-]?[0-9]{1,2})?",
        ]
    }

    fn value() -> impl Strategy<Value = J> {
        let leaf = prop_oneof![
            prop_oneof![Just("null"), Just("true"), Just("false")].prop_map(J::Lit),
            number().prop_map(J::Num),
            string_body().prop_map(J::Str),
        ];
        leaf.prop_recursive(3, 24, 5, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..5).prop_map(J::Arr),
                prop::collection::vec(("X[a-z]{1,4}", inner), 0..5).prop_map(J::Obj),
            ]
        })
    }

    type Gap<'a> = &'a mut dyn FnMut() -> &'static str;

    /// Writes `j` with `gap()` between every two tokens.
    fn write(j: &J, out: &mut String, gap: Gap<'_>) {
        match j {
            J::Lit(l) => out.push_str(l),
            J::Num(n) => out.push_str(n),
            J::Str(s) => {
                out.push('"');
                out.push_str(s);
                out.push('"');
            }
            J::Arr(items) => write_list(out, gap, ('[', ']'), items.len(), &mut |i, out, gap| {
                write(&items[i], out, gap)
            }),
            J::Obj(members) => {
                write_list(out, gap, ('{', '}'), members.len(), &mut |i, out, gap| {
                    let (k, v) = &members[i];
                    out.push('"');
                    out.push_str(k);
                    out.push('"');
                    out.push_str(gap());
                    out.push(':');
                    out.push_str(gap());
                    write(v, out, gap);
                })
            }
        }
    }

    fn write_list(
        out: &mut String,
        gap: Gap<'_>,
        (open, close): (char, char),
        n: usize,
        item: &mut dyn FnMut(usize, &mut String, Gap<'_>),
    ) {
        out.push(open);
        for i in 0..n {
            out.push_str(gap());
            if i > 0 {
                out.push(',');
                out.push_str(gap());
            }
            item(i, out, &mut *gap);
        }
        out.push_str(gap());
        out.push(close);
    }

    fn compact_of(j: &J) -> String {
        let mut out = String::new();
        write(j, &mut out, &mut || "");
        out
    }

    /// Whitespace runs picked by a seeded generator: none, the servers' `\n`, `\r\n`, tabs
    /// and spaces.
    fn layout(seed: u64) -> impl FnMut() -> &'static str {
        let mut rng = fastrand::Rng::with_seed(seed);
        const GAPS: [&str; 7] = ["", "", "\n", "\r\n", " ", "\t", "\n \t\r\n"];
        move || GAPS[rng.usize(..GAPS.len())]
    }

    fn laid_out(j: &J, seed: u64) -> String {
        let mut out = String::new();
        let mut gap = layout(seed);
        out.push_str(gap());
        write(j, &mut out, &mut gap);
        out.push_str(gap());
        out
    }

    /// An AddMsgList entry with the fields the bridge reads, random content and extra members.
    fn entry() -> impl Strategy<Value = J> {
        (
            any::<u64>(),
            string_body(),
            prop::collection::vec(("X[a-z]{1,4}", value()), 0..4),
        )
            .prop_map(|(id, content, extra)| {
                let mut members = vec![
                    ("MsgId".to_owned(), J::Str(id.to_string())),
                    ("FromUserName".to_owned(), J::Str(FRIEND.to_owned())),
                    ("ToUserName".to_owned(), J::Str(ME.to_owned())),
                    ("MsgType".to_owned(), J::Num("1".to_owned())),
                    ("Content".to_owned(), J::Str(content)),
                    ("CreateTime".to_owned(), J::Num("1700000000".to_owned())),
                    ("NewMsgId".to_owned(), J::Num(id.to_string())),
                ];
                members.extend(extra);
                J::Obj(members)
            })
    }

    const ME: &str = "@5e1f0c2a9b8d7e6f5a4b3c2d1e0f9a8b";
    const FRIEND: &str = "@a81c3e5f7092b4d6f8a0c2e4f6a8b0c2";

    fn sync_answer(entries: Vec<J>) -> J {
        let key = J::Obj(vec![
            ("Count".to_owned(), J::Num("1".to_owned())),
            (
                "List".to_owned(),
                J::Arr(vec![J::Obj(vec![
                    ("Key".to_owned(), J::Num("1".to_owned())),
                    ("Val".to_owned(), J::Num("654321001".to_owned())),
                ])]),
            ),
        ]);
        J::Obj(vec![
            (
                "BaseResponse".to_owned(),
                J::Obj(vec![
                    ("Ret".to_owned(), J::Num("0".to_owned())),
                    ("ErrMsg".to_owned(), J::Str(String::new())),
                ]),
            ),
            ("AddMsgCount".to_owned(), J::Num(entries.len().to_string())),
            ("AddMsgList".to_owned(), J::Arr(entries)),
            ("ModContactList".to_owned(), J::Arr(vec![])),
            ("SyncKey".to_owned(), key.clone()),
            ("SKey".to_owned(), J::Str(String::new())),
            ("SyncCheckKey".to_owned(), key),
        ])
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(128))]

        #[test]
        fn any_layout_compacts_to_the_same_tokens(j in value(), seed in any::<u64>()) {
            let wire = laid_out(&j, seed);
            prop_assert_eq!(compact(wire.trim_matches([' ', '\t', '\n', '\r'])), compact_of(&j));
        }

        #[test]
        fn the_whole_answer_compacted_parses_as_entry_by_entry_does_also_when_broken(
            entries in prop::collection::vec(entry(), 1..4),
            seed in any::<u64>(),
            cut in any::<prop::sample::Index>(),
            insert in prop_oneof![Just(""), Just(" "), Just("\n"), Just("1"), Just("\""), Just("\\"), Just(",")],
        ) {
            let mut body = laid_out(&sync_answer(entries), seed);
            // A byte inserted anywhere (at a character boundary): often not JSON any more.
            let mut at = cut.index(body.len() + 1);
            while !body.is_char_boundary(at) {
                at -= 1;
            }
            body.insert_str(at, insert);
            let fast = parse_sync_response(&body);
            let reference = parse_sync_response_entry_by_entry(&body);
            match (&fast, &reference) {
                (Ok(a), Ok(b)) => prop_assert_eq!(format!("{a:?}"), format!("{b:?}")),
                (Err(a), Err(b)) => prop_assert_eq!(a.to_string(), b.to_string()),
                _ => prop_assert!(false, "{:?} against {:?} for {}", fast.is_ok(), reference.is_ok(), body),
            }
        }

        #[test]
        fn a_sync_answer_in_any_layout_gives_one_line_events_with_the_entry_as_raw(
            entries in prop::collection::vec(entry(), 1..4),
            seed in any::<u64>(),
        ) {
            let expected: Vec<String> = entries.iter().map(compact_of).collect();
            let body = laid_out(&sync_answer(entries), seed);
            let resp = parse_sync_response(&body).expect("the answer parses");
            let book = ContactBook::new(Contact { user_name: ME.into(), ..Contact::default() });
            let ctx = Context { account: "home", book: &book, sent_by_bridge: None };
            prop_assert_eq!(resp.add_msg_list.len(), expected.len());
            for (msg, want) in resp.add_msg_list.iter().zip(&expected) {
                prop_assert_eq!(msg.raw.as_ref().map(|r| r.get()), Some(want.as_str()));
                let event = normalize(msg, &ctx).expect("a text is an event");
                let line = serde_json::to_string(&event).unwrap();
                prop_assert!(!line.contains(['\n', '\r']), "{}", line);
                let back: MessageEvent = match serde_json::from_str(&line).unwrap() {
                    Event::Message(m) => *m,
                    other => panic!("not a message: {other:?}"),
                };
                prop_assert_eq!(back.raw.get(), want.as_str());
            }
        }
    }
}
