//! The `request_id` of a command too large to parse: a bounded scan of the payload's head for
//! a top-level `"request_id"` string, so the `invalid_command` answer to an oversized command
//! can still carry it (DESIGN.md "Outbound command and result": a result for every command,
//! with its `request_id`).
//!
//! The scan is a small JSON tokenizer over the object's top level only: it steps over nested
//! objects and arrays (and the strings inside them, escapes included) without looking into
//! them, so a `"request_id"` in a nested value or inside a string never counts. It answers
//! only what the head proves: the value's closing quote must lie inside the head (a cut
//! string is never trusted), the value must be a non-empty string as [`super::parse_command`]
//! demands, and a second top-level `request_id` seen in the head makes the answer `None`
//! (`serde_json` would keep the last; which one counts is then unclear). A `request_id` that
//! lies past the head, or a head that is not the start of a JSON object, answers `None`.

/// The top-level `request_id` string of the JSON object `head` begins, if the head proves it.
pub(super) fn request_id(head: &[u8]) -> Option<String> {
    let mut s = Scanner { bytes: head, at: 0 };
    let mut found = None;
    match top_level(&mut s, &mut found) {
        Scan::Closed => found,
        // What the head holds is read; what lies past it cannot make a found id wrong,
        // except a duplicate, which no bounded scan can rule out.
        Scan::Stopped if s.at >= head.len() => found,
        Scan::Stopped | Scan::Bad => None,
    }
}

/// How a scan of the top level ended.
enum Scan {
    /// The object's closing brace.
    Closed,
    /// The head ended, or (when the head has bytes left) it is not JSON.
    Stopped,
    /// It is not a command the bridge could read (a second `request_id`, say).
    Bad,
}

fn top_level(s: &mut Scanner, found: &mut Option<String>) -> Scan {
    let mut step = || -> Option<Scan> {
        s.skip_ws();
        s.expect(b'{')?;
        let mut seen = false;
        loop {
            s.skip_ws();
            if s.peek()? == b'}' {
                return Some(Scan::Closed);
            }
            let key = s.string()?;
            s.skip_ws();
            s.expect(b':')?;
            s.skip_ws();
            if decode(key).as_deref() == Some("request_id") {
                if std::mem::replace(&mut seen, true) {
                    return Some(Scan::Bad);
                }
                if s.peek()? == b'"' {
                    *found = decode(s.string()?).filter(|v| !v.is_empty());
                } else {
                    s.value()?;
                }
            } else {
                s.value()?;
            }
            s.skip_ws();
            match s.peek()? {
                b',' => s.at += 1,
                b'}' => return Some(Scan::Closed),
                _ => return Some(Scan::Bad),
            }
        }
    };
    step().unwrap_or(Scan::Stopped)
}

/// A string token's text, its escapes resolved; `None` if it is no valid JSON string.
fn decode(token: &[u8]) -> Option<String> {
    if token.contains(&b'\\') {
        serde_json::from_slice(token).ok()
    } else {
        std::str::from_utf8(&token[1..token.len() - 1])
            .ok()
            .map(str::to_owned)
    }
}

/// A cursor over the head; every method answers `None` when the head ends first.
struct Scanner<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Scanner<'a> {
    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.at).copied()
    }

    fn next(&mut self) -> Option<u8> {
        let b = self.peek()?;
        self.at += 1;
        Some(b)
    }

    /// Steps over `want`; leaves anything else unread, so a stop inside the head tells a
    /// syntax error from the head's end.
    fn expect(&mut self, want: u8) -> Option<()> {
        (self.peek()? == want).then(|| self.at += 1)
    }

    fn skip_ws(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.at += 1;
        }
    }

    /// A whole string token, quotes included; `None` if the head ends inside it.
    fn string(&mut self) -> Option<&'a [u8]> {
        let start = self.at;
        self.expect(b'"')?;
        loop {
            match self.next()? {
                b'"' => return Some(&self.bytes[start..self.at]),
                // Whatever follows a backslash is part of the escape, a quote included.
                b'\\' => {
                    self.next()?;
                }
                _ => {}
            }
        }
    }

    /// Steps over one value: a string, a nested object or array, or a scalar.
    fn value(&mut self) -> Option<()> {
        match self.peek()? {
            b'"' => self.string().map(drop),
            b'{' | b'[' => {
                let mut depth = 0usize;
                loop {
                    match self.peek()? {
                        b'"' => {
                            self.string()?;
                            continue;
                        }
                        b'{' | b'[' => depth += 1,
                        b'}' | b']' => {
                            depth -= 1;
                            if depth == 0 {
                                self.at += 1;
                                return Some(());
                            }
                        }
                        _ => {}
                    }
                    self.at += 1;
                }
            }
            _ => {
                let start = self.at;
                while !matches!(
                    self.peek()?,
                    b',' | b'}' | b']' | b' ' | b'\t' | b'\n' | b'\r'
                ) {
                    self.at += 1;
                }
                (self.at > start).then_some(())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_top_level_request_id_is_found_before_or_after_other_fields() {
        assert_eq!(
            request_id(br#"{"request_id":"r-17","to":"Mom","text":"xxxx"#).as_deref(),
            Some("r-17")
        );
        assert_eq!(
            request_id(br#" { "to" : "Mom" , "n": -1.5e3, "ok": true, "request_id" : "r-18" } "#)
                .as_deref(),
            Some("r-18")
        );
    }

    #[test]
    fn escapes_in_keys_and_values_are_resolved() {
        assert_eq!(
            request_id(br#"{"request\u005fid":"r\"19\\","text":"x"#).as_deref(),
            Some("r\"19\\")
        );
        assert_eq!(
            request_id(r#"{"request_id":"r-ü-\u00fc"}"#.as_bytes()).as_deref(),
            Some("r-ü-ü")
        );
    }

    #[test]
    fn nested_values_and_strings_never_count() {
        for head in [
            r#"{"meta":{"request_id":"inner"},"text":"x"}"#,
            r#"{"list":[{"request_id":"inner"}],"text":"x"}"#,
            r#"{"text":"\"request_id\":\"fake\"","to":"a"}"#,
            r#"{"text":"a \\","request_id2":"no"}"#,
        ] {
            assert_eq!(request_id(head.as_bytes()), None, "{head}");
        }
        assert_eq!(
            request_id(br#"{"meta":{"a":"}\"]"},"request_id":"outer""#).as_deref(),
            Some("outer")
        );
    }

    #[test]
    fn a_cut_string_is_never_trusted() {
        let full = br#"{"to":"Mom","request_id":"r-20","text":"..."#;
        let end = full.iter().position(|b| *b == b'0').unwrap() + 1;
        for cut in 0..=end {
            assert_eq!(request_id(&full[..cut]), None, "cut at {cut}");
        }
        assert_eq!(request_id(&full[..end + 1]).as_deref(), Some("r-20"));
        // Cut right after a backslash: the quote that follows may be escaped.
        assert_eq!(request_id(br#"{"request_id":"r\"#), None);
    }

    #[test]
    fn wrong_types_duplicates_and_non_objects_give_none() {
        for head in [
            r#"{"request_id":17,"text":"x"}"#,
            r#"{"request_id":"","text":"x"}"#,
            r#"{"request_id":null}"#,
            r#"{"request_id":"a","request_id":"b","text":"x"}"#,
            r#"[{"request_id":"a"}]"#,
            r#""request_id""#,
            r#"{"request_id" "a"}"#,
            r#"{"to":"a" "request_id":"b"}"#,
            "",
        ] {
            assert_eq!(request_id(head.as_bytes()), None, "{head}");
        }
        assert_eq!(request_id(b"{\"request_id\":\"\xff\"}"), None);
    }
}
