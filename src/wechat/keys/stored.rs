//! The key book as the spool stores it (value `contact_keys`), JSON:
//! `{"version":2,"keys":{"c_…":{…record…}}}`. A record's member hashes are one base64 string
//! (standard, padded) of their 8-byte little-endian forms, not a JSON list of names: a large
//! account's groups hold hundreds of thousands of members, and the book is written again on
//! contact changes.
//!
//! Version 1 (the first one) kept the members' nicknames; it is still read, its names hashed,
//! and the book is stored in version 2 at the next login.
use std::collections::BTreeMap;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use serde::{Deserialize, Serialize};
use thiserror::Error;

use super::{name_hash, Record};

/// The format this version writes.
const FORMAT_VERSION: u32 = 2;

/// The oldest format this version still reads.
const FIRST_VERSION: u32 = 1;

/// The stored book could not be read.
#[derive(Debug, Error)]
pub enum KeysError {
    /// Not the JSON this version writes.
    #[error("the stored contact keys are not readable: {0}")]
    Garbage(#[from] serde_json::Error),
    /// A record's member hashes are not base64 of whole 8-byte hashes.
    #[error("the stored contact keys are not readable: bad member hashes for {0}")]
    Hashes(String),
    /// Written by another version.
    #[error("the stored contact keys are of format {0}, which this version does not read")]
    Version(u32),
}

/// A record as version 2 writes it.
#[derive(Serialize)]
struct WireRef<'a> {
    remark: &'a str,
    nick: &'a str,
    sex: u64,
    province: &'a str,
    city: &'a str,
    group: bool,
    members: u64,
    member_hashes: String,
    last_seen: i64,
}

/// A record as version 2 reads it.
#[derive(Deserialize, Default)]
#[serde(default)]
struct Wire {
    remark: String,
    nick: String,
    sex: u64,
    province: String,
    city: String,
    group: bool,
    members: u64,
    member_hashes: String,
    last_seen: i64,
}

/// A record as version 1 wrote it: the members' nicknames (cleaned, sorted, each once).
#[derive(Deserialize, Default)]
#[serde(default)]
struct WireV1 {
    remark: String,
    nick: String,
    sex: u64,
    province: String,
    city: String,
    group: bool,
    members: u64,
    member_nicks: Vec<String>,
    last_seen: i64,
}

#[derive(Deserialize)]
struct Stored<R> {
    keys: BTreeMap<String, R>,
}

/// The bytes to store for `records`.
pub(super) fn encode(records: &BTreeMap<String, Record>) -> Vec<u8> {
    #[derive(Serialize)]
    struct StoredRef<'a> {
        version: u32,
        keys: BTreeMap<&'a str, WireRef<'a>>,
    }
    let keys = records
        .iter()
        .map(|(k, r)| {
            let mut raw = Vec::with_capacity(r.member_hashes.len() * 8);
            for h in &r.member_hashes {
                raw.extend_from_slice(&h.to_le_bytes());
            }
            let wire = WireRef {
                remark: &r.remark,
                nick: &r.nick,
                sex: r.sex,
                province: &r.province,
                city: &r.city,
                group: r.group,
                members: r.members,
                member_hashes: STANDARD.encode(raw),
                last_seen: r.last_seen,
            };
            (k.as_str(), wire)
        })
        .collect();
    // Strings and numbers only: serializing cannot fail.
    serde_json::to_vec(&StoredRef {
        version: FORMAT_VERSION,
        keys,
    })
    .unwrap_or_default()
}

/// The records stored in `bytes`, and whether they were in an older format.
pub(super) fn decode(bytes: &[u8]) -> Result<(BTreeMap<String, Record>, bool), KeysError> {
    #[derive(Deserialize)]
    struct Version {
        version: u32,
    }
    let v: Version = serde_json::from_slice(bytes)?;
    match v.version {
        FORMAT_VERSION => {
            let stored: Stored<Wire> = serde_json::from_slice(bytes)?;
            let mut out = BTreeMap::new();
            for (key, w) in stored.keys {
                let raw = STANDARD
                    .decode(&w.member_hashes)
                    .map_err(|_| KeysError::Hashes(key.clone()))?;
                if raw.len() % 8 != 0 {
                    return Err(KeysError::Hashes(key));
                }
                let member_hashes = raw
                    .chunks_exact(8)
                    .map(|c| u64::from_le_bytes(c.try_into().unwrap_or_default()))
                    .collect();
                let record = Record {
                    remark: w.remark,
                    nick: w.nick,
                    sex: w.sex,
                    province: w.province,
                    city: w.city,
                    group: w.group,
                    members: w.members,
                    member_hashes: sorted(member_hashes),
                    last_seen: w.last_seen,
                };
                out.insert(key, record);
            }
            Ok((out, false))
        }
        FIRST_VERSION => {
            let stored: Stored<WireV1> = serde_json::from_slice(bytes)?;
            let out = stored
                .keys
                .into_iter()
                .map(|(key, w)| {
                    let hashes = w.member_nicks.iter().map(|n| name_hash(n)).collect();
                    let record = Record {
                        remark: w.remark,
                        nick: w.nick,
                        sex: w.sex,
                        province: w.province,
                        city: w.city,
                        group: w.group,
                        members: w.members,
                        member_hashes: sorted(hashes),
                        last_seen: w.last_seen,
                    };
                    (key, record)
                })
                .collect();
            Ok((out, true))
        }
        other => Err(KeysError::Version(other)),
    }
}

/// Hashes sorted and each once, as the similarity needs them, whatever the bytes said.
fn sorted(mut hashes: Vec<u64>) -> Vec<u64> {
    hashes.sort_unstable();
    hashes.dedup();
    hashes.shrink_to_fit();
    hashes
}
