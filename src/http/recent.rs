//! The status page's "last events" feed: an in-memory [`Sink`] named `recent` that keeps the
//! newest spooled entries of every kind in a ring, and their summaries for the page.
//!
//! It is an ordinary spool sink, so it sees exactly what the other sinks see, in order; it
//! never fails, so it never holds the spool back.
use std::collections::VecDeque;
use std::sync::{Arc, Mutex, PoisonError};

use serde_json::{json, Value};

use crate::sinks::{DeliveryError, Sink};
use crate::spool::{Entry, Kind};

/// How many events the page shows.
pub const RECENT_EVENTS: usize = 20;

/// The newest entries, shared between the sink and the HTTP handlers.
#[derive(Clone, Default)]
pub struct Recent {
    ring: Arc<Mutex<VecDeque<Entry>>>,
}

impl Recent {
    /// An empty feed.
    pub fn new() -> Recent {
        Recent::default()
    }

    /// The sink that fills this feed; start it like any other sink.
    pub fn sink(&self) -> RecentSink {
        RecentSink { feed: self.clone() }
    }

    fn push(&self, entries: &[Entry]) {
        let mut ring = self.ring.lock().unwrap_or_else(PoisonError::into_inner);
        for e in entries {
            if ring.len() == RECENT_EVENTS {
                ring.pop_front();
            }
            ring.push_back(e.clone());
        }
    }

    /// Summaries of the newest entries, newest first.
    pub fn newest_first(&self) -> Vec<Value> {
        let ring = self.ring.lock().unwrap_or_else(PoisonError::into_inner);
        ring.iter().rev().map(summarize).collect()
    }
}

/// The sink side of [`Recent`].
pub struct RecentSink {
    feed: Recent,
}

impl Sink for RecentSink {
    fn name(&self) -> &str {
        "recent"
    }

    fn accepts(&self, _kind: Kind) -> bool {
        true
    }

    async fn deliver(&mut self, batch: &[Entry]) -> Result<(), DeliveryError> {
        self.feed.push(batch);
        Ok(())
    }
}

/// What the page shows of one entry: `{seq, kind, type, time, who, text, ok}`. `type` is the
/// message type (messages only), `who` says who wrote it and where, `text` is the gist; `ok`
/// is set for results.
pub fn summarize(entry: &Entry) -> Value {
    let v: Value = serde_json::from_slice(&entry.payload).unwrap_or(Value::Null);
    let s = |v: &Value| v.as_str().unwrap_or_default().to_owned();
    let time = v["time"]
        .as_str()
        .map(str::to_owned)
        .unwrap_or_else(|| appended(entry.appended_ms));
    let (who, text) = match entry.kind {
        Kind::Message => {
            // The remark is the name the account owner gave the contact.
            let from = match v["from"]["remark"].as_str() {
                Some(remark) if !remark.is_empty() => remark.to_owned(),
                _ => s(&v["from"]["name"]),
            };
            let chat = s(&v["chat"]["name"]);
            let who = if v["chat"]["group"].as_bool() == Some(true) {
                format!("{from} in {chat}")
            } else if v["from"]["self"].as_bool() == Some(true) {
                format!("you to {chat}")
            } else {
                from
            };
            let text = match v["text"].as_str() {
                Some(t) => t.to_owned(),
                None => format!("[{}]", s(&v["type"])),
            };
            (who, text)
        }
        Kind::Login => (s(&v["user"]["name"]), "logged in".to_owned()),
        Kind::Logout => (String::new(), format!("logged out: {}", s(&v["reason"]))),
        Kind::Contacts => {
            let n = |k: &str| v[k].as_array().map_or(0, Vec::len);
            (
                String::new(),
                format!(
                    "contacts: {} added, {} changed, {} removed",
                    n("added"),
                    n("modified"),
                    n("removed")
                ),
            )
        }
        Kind::Error => (String::new(), s(&v["message"])),
        Kind::Receipt => {
            let text = match (s(&v["status"]).as_str(), &v["position"]) {
                ("queued", serde_json::Value::Number(n)) => format!("queued at position {n}"),
                (status, _) => status.to_owned(),
            };
            (s(&v["request_id"]), text)
        }
        Kind::Result => {
            let who = s(&v["to"]["name"]);
            let text = if v["ok"].as_bool() == Some(true) {
                "sent".to_owned()
            } else {
                format!("{}: {}", s(&v["error"]["code"]), s(&v["error"]["message"]))
            };
            (who, text)
        }
    };
    json!({
        "seq": entry.seq,
        "kind": entry.kind.as_str(),
        "type": v.get("type").filter(|_| entry.kind == Kind::Message),
        "time": time,
        "who": who,
        "text": text,
        "ok": v.get("ok").filter(|_| entry.kind == Kind::Result),
    })
}

fn appended(ms: u64) -> String {
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .map(crate::event::rfc3339)
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(seq: u64, kind: Kind, payload: Value) -> Entry {
        Entry {
            seq,
            kind,
            id: seq.to_string(),
            payload: serde_json::to_vec(&payload).unwrap(),
            reply_to: None,
            appended_ms: 1_700_000_000_000,
        }
    }

    #[tokio::test]
    async fn the_feed_keeps_the_newest_twenty_newest_first() {
        let feed = Recent::new();
        let mut sink = feed.sink();
        let batch: Vec<Entry> = (1..=25)
            .map(|i| {
                entry(
                    i,
                    Kind::Message,
                    json!({"kind":"message","type":"text","text":format!("m{i}"),
                           "chat":{"name":"Alice","group":false},"from":{"name":"Alice","self":false}}),
                )
            })
            .collect();
        sink.deliver(&batch).await.unwrap();
        let shown = feed.newest_first();
        assert_eq!(shown.len(), RECENT_EVENTS);
        assert_eq!(shown[0]["text"], "m25");
        assert_eq!(shown[19]["text"], "m6");
        assert_eq!(shown[0]["who"], "Alice");
        assert_eq!(shown[0]["type"], "text");
    }

    #[test]
    fn summaries_say_who_and_what_for_each_kind() {
        let group = entry(
            1,
            Kind::Message,
            json!({"kind":"message","type":"image","text":null,"time":"2026-11-28T16:20:01Z",
                   "chat":{"name":"Family","group":true},"from":{"name":"Bob","self":false}}),
        );
        let s = summarize(&group);
        assert_eq!(s["who"], "Bob in Family");
        assert_eq!(s["text"], "[image]");
        assert_eq!(s["time"], "2026-11-28T16:20:01Z");

        let failed = entry(
            2,
            Kind::Result,
            json!({"kind":"result","request_id":"r","ok":false,
                   "error":{"code":"unknown_recipient","message":"no contact Zed"}}),
        );
        let s = summarize(&failed);
        assert_eq!(s["text"], "unknown_recipient: no contact Zed");
        assert_eq!(s["ok"], false);
        assert_eq!(
            s["time"], "2023-11-14T22:13:20Z",
            "results have no time: the spool's"
        );
        assert!(s["type"].is_null());
    }
}
