//! The byte layouts of the values the redb spool stores: spooled entries and stored results.
//!
//! An entry is a small binary header followed by the payload bytes as published, so a payload
//! is never re-encoded (no JSON-in-JSON):
//!
//! ```text
//! version: u8 (1) | kind: u8 | appended_ms: u64 BE | id_len: u32 BE | id
//!   | reply_len: u32 BE (u32::MAX = none) | reply_to | payload (the rest)
//! ```
//!
//! A stored result is `stored_ms: u64 BE` followed by the payload.
use crate::spool::{Entry, Kind, Seq, SpoolError};

const VERSION: u8 = 1;
/// Marks an absent `reply_to`.
const NO_REPLY: u32 = u32::MAX;
/// Where `appended_ms` starts: after version and kind.
const APPENDED_AT: usize = 2;
const HEADER: usize = APPENDED_AT + 8;

/// The stored byte of a kind. Fixed forever: changing one misreads every spooled entry.
pub(in crate::spool) fn kind_byte(kind: Kind) -> u8 {
    match kind {
        Kind::Message => 0,
        Kind::Login => 1,
        Kind::Logout => 2,
        Kind::Contacts => 3,
        Kind::Error => 4,
        Kind::Result => 5,
        Kind::Receipt => 6,
    }
}

/// The kind stored as `byte`, if any.
pub(in crate::spool) fn kind_of(byte: u8) -> Option<Kind> {
    Some(match byte {
        0 => Kind::Message,
        1 => Kind::Login,
        2 => Kind::Logout,
        3 => Kind::Contacts,
        4 => Kind::Error,
        5 => Kind::Result,
        6 => Kind::Receipt,
        _ => return None,
    })
}

fn len_u32(len: usize, what: &str) -> Result<u32, SpoolError> {
    u32::try_from(len)
        .ok()
        .filter(|&n| n != NO_REPLY)
        .ok_or_else(|| SpoolError::new(format!("{what} is too long ({len} bytes)")))
}

/// Writes one entry into `out` (cleared first).
pub(super) fn encode_entry(
    kind: Kind,
    id: &str,
    reply_to: Option<&str>,
    appended_ms: u64,
    payload: &[u8],
    out: &mut Vec<u8>,
) -> Result<(), SpoolError> {
    out.clear();
    out.reserve(HEADER + 8 + id.len() + reply_to.map_or(0, str::len) + payload.len());
    out.push(VERSION);
    out.push(kind_byte(kind));
    out.extend_from_slice(&appended_ms.to_be_bytes());
    out.extend_from_slice(&len_u32(id.len(), "entry id")?.to_be_bytes());
    out.extend_from_slice(id.as_bytes());
    match reply_to {
        Some(reply) => {
            out.extend_from_slice(&len_u32(reply.len(), "reply subject")?.to_be_bytes());
            out.extend_from_slice(reply.as_bytes());
        }
        None => out.extend_from_slice(&NO_REPLY.to_be_bytes()),
    }
    out.extend_from_slice(payload);
    Ok(())
}

fn corrupt(seq: Seq, why: &str) -> SpoolError {
    SpoolError::new(format!("entry {seq} is unreadable: {why}"))
}

/// Splits `n` bytes off the front of `rest`.
fn take<'a>(rest: &mut &'a [u8], n: usize, seq: Seq) -> Result<&'a [u8], SpoolError> {
    if rest.len() < n {
        return Err(corrupt(seq, "truncated"));
    }
    let (head, tail) = rest.split_at(n);
    *rest = tail;
    Ok(head)
}

fn take_u32(rest: &mut &[u8], seq: Seq) -> Result<u32, SpoolError> {
    let bytes = take(rest, 4, seq)?;
    Ok(u32::from_be_bytes(bytes.try_into().expect("took 4 bytes")))
}

fn take_str(rest: &mut &[u8], len: u32, seq: Seq) -> Result<String, SpoolError> {
    let len = usize::try_from(len).map_err(|_| corrupt(seq, "length"))?;
    let bytes = take(rest, len, seq)?;
    String::from_utf8(bytes.to_vec()).map_err(|_| corrupt(seq, "text is not UTF-8"))
}

/// Reads the entry stored under `seq`.
pub(super) fn decode_entry(seq: Seq, bytes: &[u8]) -> Result<Entry, SpoolError> {
    let mut rest = bytes;
    let head = take(&mut rest, HEADER, seq)?;
    if head[0] != VERSION {
        return Err(corrupt(seq, "unknown version"));
    }
    let kind = kind_of(head[1]).ok_or_else(|| corrupt(seq, "unknown kind"))?;
    let appended_ms = u64::from_be_bytes(head[APPENDED_AT..HEADER].try_into().expect("8 bytes"));
    let id_len = take_u32(&mut rest, seq)?;
    let id = take_str(&mut rest, id_len, seq)?;
    let reply_to = match take_u32(&mut rest, seq)? {
        NO_REPLY => None,
        len => Some(take_str(&mut rest, len, seq)?),
    };
    Ok(Entry {
        seq,
        kind,
        id,
        payload: rest.to_vec(),
        reply_to,
        appended_ms,
    })
}

/// Reads only the append time of the entry stored under `seq`.
pub(super) fn entry_appended_ms(seq: Seq, bytes: &[u8]) -> Result<u64, SpoolError> {
    bytes
        .get(APPENDED_AT..HEADER)
        .map(|b| u64::from_be_bytes(b.try_into().expect("8 bytes")))
        .ok_or_else(|| corrupt(seq, "truncated"))
}

/// A stored result: when it was stored, then its payload.
pub(super) fn encode_result(stored_ms: u64, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(8 + payload.len());
    out.extend_from_slice(&stored_ms.to_be_bytes());
    out.extend_from_slice(payload);
    out
}

/// When a stored result was stored; `None` when the value is too short to be one.
pub(super) fn result_stored_ms(bytes: &[u8]) -> Option<u64> {
    bytes
        .get(..8)
        .map(|b| u64::from_be_bytes(b.try_into().expect("8 bytes")))
}

/// The payload of a stored result.
pub(super) fn result_payload(bytes: &[u8]) -> &[u8] {
    bytes.get(8..).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_round_trip_with_and_without_reply_subject() {
        let mut buf = Vec::new();
        for reply in [None, Some("_INBOX.abc"), Some("")] {
            encode_entry(Kind::Result, "r-1", reply, 42, br#"{"ok":true}"#, &mut buf).unwrap();
            let entry = decode_entry(7, &buf).unwrap();
            assert_eq!(
                entry,
                Entry {
                    seq: 7,
                    kind: Kind::Result,
                    id: "r-1".into(),
                    payload: br#"{"ok":true}"#.to_vec(),
                    reply_to: reply.map(str::to_owned),
                    appended_ms: 42,
                }
            );
            assert_eq!(entry_appended_ms(7, &buf).unwrap(), 42);
        }
    }

    #[test]
    fn every_kind_keeps_its_byte() {
        for kind in [
            Kind::Message,
            Kind::Login,
            Kind::Logout,
            Kind::Contacts,
            Kind::Error,
            Kind::Result,
        ] {
            assert_eq!(kind_of(kind_byte(kind)), Some(kind));
        }
    }

    #[test]
    fn truncated_or_foreign_entries_are_errors_not_panics() {
        let mut buf = Vec::new();
        encode_entry(Kind::Message, "m", None, 1, b"{}", &mut buf).unwrap();
        for cut in 0..buf.len() - 2 {
            assert!(decode_entry(1, &buf[..cut]).is_err(), "cut at {cut}");
        }
        buf[0] = 9;
        assert!(decode_entry(1, &buf).is_err());
    }

    #[test]
    fn results_keep_their_time_and_payload() {
        let stored = encode_result(5, b"{}");
        assert_eq!(result_stored_ms(&stored), Some(5));
        assert_eq!(result_payload(&stored), b"{}");
        assert_eq!(result_stored_ms(b"abc"), None);
    }
}
