//! A large answer parsed from the chunks it arrived in.
//!
//! A large account's webwxbatchgetcontact answers run to several megabytes each (50 groups of
//! up to 500 members, in the servers' one-member-per-line layout). Read as one text, each is a
//! single allocation of that size: glibc then raises its mmap threshold to it, and the next
//! answers are carved from the heap, between the members parsed meanwhile, where freeing them
//! gives nothing back to the system. Kept as the decoder's small chunks and dropped chunk by
//! chunk as the parser passes them, an answer never needs a large block and never has to be
//! held whole next to what is parsed from it.
use std::collections::VecDeque;
use std::io::{self, BufReader, Read};

use bytes::{Buf, Bytes};
use serde::de::DeserializeOwned;

/// How much of the answer the parser reads ahead.
const READ_AHEAD: usize = 16 * 1024;

/// An answer's body as the chunks it arrived in; reading consumes and frees them.
#[derive(Debug, Default)]
pub(super) struct Chunks(VecDeque<Bytes>);

impl Chunks {
    /// Reads the whole body of `resp`.
    pub(super) async fn read(mut resp: reqwest::Response) -> reqwest::Result<Chunks> {
        let mut chunks = VecDeque::new();
        while let Some(chunk) = resp.chunk().await? {
            chunks.push_back(chunk);
        }
        Ok(Chunks(chunks))
    }

    /// Parses the body as JSON. Unlike the text path, an invalid UTF-8 byte inside a string
    /// is an error rather than replaced (the servers send UTF-8, PROTOCOL.md §2).
    pub(super) fn parse<T: DeserializeOwned>(self) -> serde_json::Result<T> {
        serde_json::from_reader(BufReader::with_capacity(READ_AHEAD, self))
    }
}

impl From<Vec<Bytes>> for Chunks {
    fn from(chunks: Vec<Bytes>) -> Chunks {
        Chunks(chunks.into())
    }
}

impl Read for Chunks {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while let Some(front) = self.0.front_mut() {
            if front.is_empty() {
                self.0.pop_front();
                continue;
            }
            let n = buf.len().min(front.len());
            buf[..n].copy_from_slice(&front[..n]);
            front.advance(n);
            if front.is_empty() {
                self.0.pop_front();
            }
            return Ok(n);
        }
        Ok(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_split_anywhere_across_chunks_parses_as_a_whole() {
        let text = r#"{"A": "x\"é", "B": [1, 2, {"C": null}]}"#;
        let whole: serde_json::Value = serde_json::from_str(text).unwrap();
        for cut in 0..text.len() {
            for step in 1..4 {
                let bytes = text.as_bytes();
                let mut parts = vec![Bytes::copy_from_slice(&bytes[..cut])];
                parts.extend(bytes[cut..].chunks(step).map(Bytes::copy_from_slice));
                parts.push(Bytes::new());
                let parsed: serde_json::Value = Chunks::from(parts).parse().unwrap();
                assert_eq!(parsed, whole, "cut at {cut}, then by {step}");
            }
        }
    }

    #[test]
    fn a_truncated_body_is_an_error() {
        let chunks = Chunks::from(vec![Bytes::from_static(b"{\"A\": [1, 2")]);
        assert!(chunks.parse::<serde_json::Value>().is_err());
    }
}
