//! What one journal record holds: the logical writes of one group commit, in the order they
//! were staged, and the time the group was staged at, so that replaying them stages the same
//! rows (the same seqs, the same command ids, the same append times).
//!
//! ```text
//! version: u8 (1) | now: u64 LE | op*
//! op: tag: u8, then its fields; text and bytes are u32 LE length + bytes, an absent
//!     optional is the length u32::MAX, a list is a u32 LE count + its items
//! ```
use crate::spool::redb_store::{kind_byte, kind_of};
use crate::spool::{NewEntry, Seq, SpoolError};

const VERSION: u8 = 1;
const ABSENT: u32 = u32::MAX;

const SYNC: u8 = 1;
const CLEAR_KEYS: u8 = 2;
const REGISTER: u8 = 3;
const RETAIN: u8 = 4;
const ENQUEUE: u8 = 5;
const COMPLETE: u8 = 6;
const ACK: u8 = 7;
/// A sync with held entries: [`SYNC`]'s fields, then the held indices (a text-only sync keeps
/// the shorter form).
const SYNC_HELD: u8 = 8;
const RELEASE: u8 = 9;
const PUT_VALUE: u8 = 10;

/// One logical write of a group, as replay applies it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(in crate::spool) enum Op {
    Sync {
        entries: Vec<NewEntry>,
        held: Vec<u32>,
        msg_ids: Vec<String>,
        keys: Option<Vec<u8>>,
    },
    Release {
        seq: Seq,
        payload: Vec<u8>,
    },
    ClearKeys,
    Register(String),
    Retain(Vec<String>),
    Enqueue(Vec<u8>),
    Complete {
        id: u64,
        request_id: Option<String>,
        entry: NewEntry,
    },
    Ack {
        sink: String,
        seq: Seq,
    },
    PutValue {
        name: String,
        value: Vec<u8>,
    },
}

/// A record being written: the group's time, then its writes as they are staged.
pub(in crate::spool) struct RecordBuf {
    buf: Vec<u8>,
}

fn len_u32(len: usize) -> Result<u32, SpoolError> {
    u32::try_from(len)
        .ok()
        .filter(|&n| n != ABSENT)
        .ok_or_else(|| SpoolError::new(format!("a journal field is too long ({len} bytes)")))
}

impl RecordBuf {
    /// An empty record for a group staged at `now` (unix ms).
    pub(in crate::spool) fn new(now: u64) -> RecordBuf {
        let mut buf = Vec::with_capacity(256);
        buf.push(VERSION);
        buf.extend_from_slice(&now.to_le_bytes());
        RecordBuf { buf }
    }

    /// The encoded record.
    pub(in crate::spool) fn bytes(&self) -> &[u8] {
        &self.buf
    }

    fn u32(&mut self, v: u32) {
        self.buf.extend_from_slice(&v.to_le_bytes());
    }

    fn u64(&mut self, v: u64) {
        self.buf.extend_from_slice(&v.to_le_bytes());
    }

    fn bytes_field(&mut self, b: &[u8]) -> Result<(), SpoolError> {
        self.u32(len_u32(b.len())?);
        self.buf.extend_from_slice(b);
        Ok(())
    }

    fn optional(&mut self, b: Option<&[u8]>) -> Result<(), SpoolError> {
        match b {
            Some(b) => self.bytes_field(b),
            None => {
                self.u32(ABSENT);
                Ok(())
            }
        }
    }

    fn strings<S: AsRef<str>>(&mut self, list: &[S]) -> Result<(), SpoolError> {
        self.u32(len_u32(list.len())?);
        list.iter()
            .try_for_each(|s| self.bytes_field(s.as_ref().as_bytes()))
    }

    fn entry(&mut self, e: &NewEntry) -> Result<(), SpoolError> {
        self.buf.push(kind_byte(e.kind));
        self.bytes_field(e.id.as_bytes())?;
        self.optional(e.reply_to.as_deref().map(str::as_bytes))?;
        self.bytes_field(&e.payload)
    }

    pub(in crate::spool) fn sync(
        &mut self,
        entries: &[NewEntry],
        held: &[u32],
        msg_ids: &[String],
        keys: Option<&[u8]>,
    ) -> Result<(), SpoolError> {
        self.buf
            .push(if held.is_empty() { SYNC } else { SYNC_HELD });
        self.u32(len_u32(entries.len())?);
        entries.iter().try_for_each(|e| self.entry(e))?;
        self.strings(msg_ids)?;
        self.optional(keys)?;
        if !held.is_empty() {
            self.u32(len_u32(held.len())?);
            held.iter().for_each(|&i| self.u32(i));
        }
        Ok(())
    }

    pub(in crate::spool) fn release(&mut self, seq: Seq, payload: &[u8]) -> Result<(), SpoolError> {
        self.buf.push(RELEASE);
        self.u64(seq);
        self.bytes_field(payload)
    }

    pub(in crate::spool) fn clear_keys(&mut self) {
        self.buf.push(CLEAR_KEYS);
    }

    pub(in crate::spool) fn register(&mut self, sink: &str) -> Result<(), SpoolError> {
        self.buf.push(REGISTER);
        self.bytes_field(sink.as_bytes())
    }

    pub(in crate::spool) fn retain(&mut self, keep: &[String]) -> Result<(), SpoolError> {
        self.buf.push(RETAIN);
        self.strings(keep)
    }

    pub(in crate::spool) fn enqueue(&mut self, record: &[u8]) -> Result<(), SpoolError> {
        self.buf.push(ENQUEUE);
        self.bytes_field(record)
    }

    pub(in crate::spool) fn complete(
        &mut self,
        id: u64,
        request_id: Option<&str>,
        entry: &NewEntry,
    ) -> Result<(), SpoolError> {
        self.buf.push(COMPLETE);
        self.u64(id);
        self.optional(request_id.map(str::as_bytes))?;
        self.entry(entry)
    }

    pub(in crate::spool) fn ack(&mut self, sink: &str, seq: Seq) -> Result<(), SpoolError> {
        self.buf.push(ACK);
        self.bytes_field(sink.as_bytes())?;
        self.u64(seq);
        Ok(())
    }

    pub(in crate::spool) fn put_value(
        &mut self,
        name: &str,
        value: &[u8],
    ) -> Result<(), SpoolError> {
        self.buf.push(PUT_VALUE);
        self.bytes_field(name.as_bytes())?;
        self.bytes_field(value)
    }
}

fn corrupt(why: &str) -> SpoolError {
    SpoolError::new(format!("a journal record is unreadable: {why}"))
}

/// Reads a record back: the group's time and its writes in order.
pub(in crate::spool) fn decode(bytes: &[u8]) -> Result<(u64, Vec<Op>), SpoolError> {
    let mut r = Reader { rest: bytes };
    if r.take(1)?[0] != VERSION {
        return Err(corrupt("unknown version"));
    }
    let now = r.u64()?;
    let mut ops = Vec::new();
    while !r.rest.is_empty() {
        let op = match r.take(1)?[0] {
            tag @ (SYNC | SYNC_HELD) => {
                let n = r.u32()?;
                let entries = (0..n).map(|_| r.entry()).collect::<Result<_, _>>()?;
                let msg_ids = r.strings()?;
                let keys = r.optional()?.map(<[u8]>::to_vec);
                let held = if tag == SYNC_HELD {
                    let n = r.u32()?;
                    (0..n).map(|_| r.u32()).collect::<Result<_, _>>()?
                } else {
                    Vec::new()
                };
                Op::Sync {
                    entries,
                    held,
                    msg_ids,
                    keys,
                }
            }
            RELEASE => {
                let seq = r.u64()?;
                let payload = r.bytes()?.to_vec();
                Op::Release { seq, payload }
            }
            CLEAR_KEYS => Op::ClearKeys,
            REGISTER => Op::Register(r.string()?),
            RETAIN => Op::Retain(r.strings()?),
            ENQUEUE => Op::Enqueue(r.bytes()?.to_vec()),
            COMPLETE => {
                let id = r.u64()?;
                let request_id = r.optional()?.map(text).transpose()?;
                let entry = r.entry()?;
                Op::Complete {
                    id,
                    request_id,
                    entry,
                }
            }
            ACK => {
                let sink = r.string()?;
                let seq = r.u64()?;
                Op::Ack { sink, seq }
            }
            PUT_VALUE => {
                let name = r.string()?;
                let value = r.bytes()?.to_vec();
                Op::PutValue { name, value }
            }
            _ => return Err(corrupt("unknown operation")),
        };
        ops.push(op);
    }
    Ok((now, ops))
}

fn text(b: &[u8]) -> Result<String, SpoolError> {
    String::from_utf8(b.to_vec()).map_err(|_| corrupt("text is not UTF-8"))
}

struct Reader<'a> {
    rest: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], SpoolError> {
        if self.rest.len() < n {
            return Err(corrupt("truncated"));
        }
        let (head, tail) = self.rest.split_at(n);
        self.rest = tail;
        Ok(head)
    }

    fn u32(&mut self) -> Result<u32, SpoolError> {
        Ok(u32::from_le_bytes(self.take(4)?.try_into().expect("4")))
    }

    fn u64(&mut self) -> Result<u64, SpoolError> {
        Ok(u64::from_le_bytes(self.take(8)?.try_into().expect("8")))
    }

    fn optional(&mut self) -> Result<Option<&'a [u8]>, SpoolError> {
        match self.u32()? {
            ABSENT => Ok(None),
            len => self.take(len as usize).map(Some),
        }
    }

    fn bytes(&mut self) -> Result<&'a [u8], SpoolError> {
        self.optional()?
            .ok_or_else(|| corrupt("a field is missing"))
    }

    fn string(&mut self) -> Result<String, SpoolError> {
        text(self.bytes()?)
    }

    fn strings(&mut self) -> Result<Vec<String>, SpoolError> {
        let n = self.u32()?;
        (0..n).map(|_| self.string()).collect()
    }

    fn entry(&mut self) -> Result<NewEntry, SpoolError> {
        let kind = kind_of(self.take(1)?[0]).ok_or_else(|| corrupt("unknown kind"))?;
        let id = self.string()?;
        let reply_to = self.optional()?.map(text).transpose()?;
        let payload = self.bytes()?.to_vec();
        Ok(NewEntry {
            kind,
            id,
            payload,
            reply_to,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spool::Kind;

    fn entry(id: &str, reply_to: Option<&str>) -> NewEntry {
        NewEntry {
            kind: Kind::Result,
            id: id.into(),
            payload: br#"{"ok":true}"#.to_vec(),
            reply_to: reply_to.map(str::to_owned),
        }
    }

    #[test]
    fn every_operation_reads_back_as_written() {
        let mut rec = RecordBuf::new(42);
        rec.sync(
            &[entry("a", None), entry("b", Some("_INBOX.1"))],
            &[],
            &["a".into(), "b".into()],
            Some(b"keys"),
        )
        .unwrap();
        rec.sync(&[], &[], &[], None).unwrap();
        rec.sync(
            &[entry("c", None), entry("d", None)],
            &[1],
            &["c".into()],
            None,
        )
        .unwrap();
        rec.release(12, b"{\"media\":1}").unwrap();
        rec.clear_keys();
        rec.register("mqtt").unwrap();
        rec.retain(&["mqtt".into()]).unwrap();
        rec.enqueue(b"cmd").unwrap();
        rec.complete(3, Some("r-1"), &entry("r", None)).unwrap();
        rec.complete(4, None, &entry("s", Some(""))).unwrap();
        rec.ack("mqtt", 9).unwrap();
        rec.put_value("limits", br#"{"sends":[]}"#).unwrap();
        rec.put_value("empty", b"").unwrap();

        let (now, ops) = decode(rec.bytes()).unwrap();
        assert_eq!(now, 42);
        assert_eq!(
            ops,
            vec![
                Op::Sync {
                    entries: vec![entry("a", None), entry("b", Some("_INBOX.1"))],
                    held: vec![],
                    msg_ids: vec!["a".into(), "b".into()],
                    keys: Some(b"keys".to_vec()),
                },
                Op::Sync {
                    entries: vec![],
                    held: vec![],
                    msg_ids: vec![],
                    keys: None
                },
                Op::Sync {
                    entries: vec![entry("c", None), entry("d", None)],
                    held: vec![1],
                    msg_ids: vec!["c".into()],
                    keys: None
                },
                Op::Release {
                    seq: 12,
                    payload: b"{\"media\":1}".to_vec()
                },
                Op::ClearKeys,
                Op::Register("mqtt".into()),
                Op::Retain(vec!["mqtt".into()]),
                Op::Enqueue(b"cmd".to_vec()),
                Op::Complete {
                    id: 3,
                    request_id: Some("r-1".into()),
                    entry: entry("r", None)
                },
                Op::Complete {
                    id: 4,
                    request_id: None,
                    entry: entry("s", Some(""))
                },
                Op::Ack {
                    sink: "mqtt".into(),
                    seq: 9
                },
                Op::PutValue {
                    name: "limits".into(),
                    value: br#"{"sends":[]}"#.to_vec()
                },
                Op::PutValue {
                    name: "empty".into(),
                    value: Vec::new()
                },
            ]
        );
    }

    #[test]
    fn a_cut_record_is_an_error_not_a_panic() {
        let mut rec = RecordBuf::new(1);
        rec.sync(&[entry("a", None)], &[0], &["a".into()], Some(b"k"))
            .unwrap();
        let bytes = rec.bytes();
        for cut in 0..bytes.len() {
            // A cut between operations reads as fewer operations; anywhere else it is an error.
            if let Ok((_, ops)) = decode(&bytes[..cut]) {
                assert!(ops.is_empty(), "cut at {cut}");
            }
        }
    }
}
