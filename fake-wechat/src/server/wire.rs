//! The JSON layout the real servers answer in (PROTOCOL.md §8.7), as a serde_json
//! [`Formatter`], so every answer, the streamed webwxsync one included, is written in it
//! directly rather than re-laid-out afterwards.
//!
//! Captured answers (HTTP captures in public project documentation; their `Content-Length`
//! values match only this form) show:
//! - `{`, then every member on its own line as `"Key": value`, members joined by `,\n`, and
//!   `\n}` closing the object;
//! - a closing `}` is always followed by a line break: `}\n,\n"Next"` in an object,
//!   `}\n,{` between array items, `}\n]` at the end of an array and `}\n\n}` at the end of
//!   an object;
//! - an array opens straight onto its first item (`"List": [{`), and `],\n` follows it;
//! - empty arrays are `[]`; the whole answer ends with one `\n`.
//!
//! No capture shows an array of scalars or an empty object; they are written inline
//! (`[1,2]`, `{}`), as the rule "only `}` brings a line break" gives.

use std::io;

use serde::Serialize;
use serde_json::ser::Formatter;

/// How the fake lays out its JSON answers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Layout {
    /// The real servers' layout (the default).
    Wire,
    /// One line, as `serde_json::to_string` writes it (for the benchmark).
    Compact,
}

/// `value` as the body of an answer in `layout`.
pub(crate) fn to_body(value: &impl Serialize, layout: Layout) -> serde_json::Result<String> {
    let bytes = match layout {
        Layout::Compact => serde_json::to_vec(value)?,
        Layout::Wire => {
            let mut out = Vec::with_capacity(256);
            let mut ser =
                serde_json::Serializer::with_formatter(&mut out, WireFormatter::default());
            value.serialize(&mut ser)?;
            out.push(b'\n');
            out
        }
    };
    // serde_json writes UTF-8 only.
    Ok(String::from_utf8(bytes).unwrap_or_default())
}

/// `value` in the real servers' layout, as the fake answers by default: for benchmarks and
/// tests that feed a client the exact text a server would send.
pub fn wire_json(value: &impl Serialize) -> String {
    to_body(value, Layout::Wire).unwrap_or_default()
}

/// Writes the servers' layout; strings, numbers and escapes as serde_json's default does.
#[derive(Default)]
pub(crate) struct WireFormatter {
    /// The last thing written was a `}` (the next token starts on a new line).
    after_close: bool,
    /// The last thing written was `{` or `[` (the container may turn out empty).
    just_opened: bool,
}

impl WireFormatter {
    /// The line break a closed object is owed, if it is owed one.
    fn take_break(&mut self) -> &'static [u8] {
        self.just_opened = false;
        if std::mem::take(&mut self.after_close) {
            b"\n"
        } else {
            b""
        }
    }
}

impl Formatter for WireFormatter {
    fn begin_array<W: ?Sized + io::Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.just_opened = true;
        w.write_all(b"[")
    }

    fn end_array<W: ?Sized + io::Write>(&mut self, w: &mut W) -> io::Result<()> {
        w.write_all(self.take_break())?;
        w.write_all(b"]")
    }

    fn begin_array_value<W: ?Sized + io::Write>(
        &mut self,
        w: &mut W,
        first: bool,
    ) -> io::Result<()> {
        let brk = self.take_break();
        if first {
            Ok(())
        } else {
            w.write_all(brk)?;
            w.write_all(b",")
        }
    }

    fn end_array_value<W: ?Sized + io::Write>(&mut self, _w: &mut W) -> io::Result<()> {
        Ok(())
    }

    fn begin_object<W: ?Sized + io::Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.just_opened = true;
        w.write_all(b"{")
    }

    fn end_object<W: ?Sized + io::Write>(&mut self, w: &mut W) -> io::Result<()> {
        let empty = self.just_opened;
        // A last member that is an object keeps its line break, so two close the parent:
        // `}\n\n}` (gowebwx's webwxsync, whose answer ends with the SyncKey object).
        let brk = self.take_break();
        w.write_all(brk)?;
        self.after_close = true;
        w.write_all(if empty { b"}" } else { b"\n}" })
    }

    fn begin_object_key<W: ?Sized + io::Write>(
        &mut self,
        w: &mut W,
        first: bool,
    ) -> io::Result<()> {
        let brk = self.take_break();
        if first {
            w.write_all(b"\n")
        } else {
            w.write_all(brk)?;
            w.write_all(b",\n")
        }
    }

    fn end_object_key<W: ?Sized + io::Write>(&mut self, _w: &mut W) -> io::Result<()> {
        Ok(())
    }

    fn begin_object_value<W: ?Sized + io::Write>(&mut self, w: &mut W) -> io::Result<()> {
        w.write_all(b": ")
    }

    fn end_object_value<W: ?Sized + io::Write>(&mut self, _w: &mut W) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn wire(v: &serde_json::Value) -> String {
        to_body(v, Layout::Wire).unwrap()
    }

    #[test]
    fn a_sync_answer_is_laid_out_as_captured() {
        // serde_json without `preserve_order` sorts a Value's members; the layout is the point.
        let mut entry = serde_json::Map::new();
        entry.insert("MsgId".into(), json!("3000089369891155132"));
        entry.insert("AppInfo".into(), json!({"AppID": "", "Type": 0}));
        entry.insert("NewMsgId".into(), json!(3_000_089_369_891_155_132u64));
        let v = json!({
            "AddMsgList": [entry],
            "BaseResponse": {"ErrMsg": "", "Ret": 0},
            "DelContactList": [],
            "SyncKey": {"Count": 2, "List": [{"Key": 1, "Val": 630477379}, {"Key": 2, "Val": 630478256}]},
        });
        assert_eq!(
            wire(&v),
            "{\n\"AddMsgList\": [{\n\"AppInfo\": {\n\"AppID\": \"\",\n\"Type\": 0\n}\n,\n\"MsgId\": \"3000089369891155132\",\n\"NewMsgId\": 3000089369891155132\n}\n],\n\"BaseResponse\": {\n\"ErrMsg\": \"\",\n\"Ret\": 0\n}\n,\n\"DelContactList\": [],\n\"SyncKey\": {\n\"Count\": 2,\n\"List\": [{\n\"Key\": 1,\n\"Val\": 630477379\n}\n,{\n\"Key\": 2,\n\"Val\": 630478256\n}\n]\n}\n\n}\n"
        );
    }

    #[test]
    fn scalars_arrays_and_empties_stay_inline() {
        assert_eq!(
            wire(&json!({"a": [1, "x", null], "b": {}, "c": [[]]})),
            "{\n\"a\": [1,\"x\",null],\n\"b\": {}\n,\n\"c\": [[]]\n}\n"
        );
    }

    #[test]
    fn both_layouts_carry_the_same_value() {
        let v = json!({"A": [{"B": "line\nbreak \"q\" 好"}, {"C": 18446744073709551615u64}], "D": {"E": {"F": []}}});
        for layout in [Layout::Wire, Layout::Compact] {
            let back: serde_json::Value =
                serde_json::from_str(&to_body(&v, layout).unwrap()).unwrap();
            assert_eq!(back, v);
        }
        assert_eq!(to_body(&v, Layout::Compact).unwrap(), v.to_string());
    }
}
