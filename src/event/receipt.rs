//! The `receipt` of a send (DESIGN.md "Receipts"): news about a command between its arrival
//! and beyond its result. `queued` says it is waiting and where it stands in the queue;
//! `echoed` says WeChat's sync gave the sent message back, which proves WeChat stored it.
//! Receipts come on top of the one result every command gets and never replace it.
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use super::kind::ReceiptKind;
use super::timestamp::utc_time;

/// What a [`Receipt`] reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReceiptStatus {
    /// The command has waited (not logged in, throttled, over a limit) and is still queued.
    Queued,
    /// The sent message came back in webwxsync.
    Echoed,
}

/// `{"kind":"receipt","request_id","status","msg_id"?,"position"?,"time"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Receipt {
    /// Always `receipt`.
    pub kind: ReceiptKind,
    /// The command's request_id; `null` when it had none (as on its result).
    pub request_id: Option<String>,
    /// `queued` or `echoed`.
    pub status: ReceiptStatus,
    /// For `echoed`: the MsgID the send's answer gave (the one its result carries), or the
    /// echo's own when the echo came before the answer or the answer never came.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub msg_id: Option<String>,
    /// For `queued`: 1 for the next command to go out, 2 for the one behind it, and so on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub position: Option<u32>,
    /// When.
    #[serde(with = "utc_time")]
    pub time: OffsetDateTime,
}

impl Receipt {
    /// A command that is waiting at `position`.
    pub fn queued(request_id: Option<String>, position: u32) -> Receipt {
        Receipt {
            kind: ReceiptKind,
            request_id,
            status: ReceiptStatus::Queued,
            msg_id: None,
            position: Some(position),
            time: OffsetDateTime::now_utc(),
        }
    }

    /// A sent message that came back in the sync.
    pub fn echoed(request_id: Option<String>, msg_id: impl Into<String>) -> Receipt {
        Receipt {
            kind: ReceiptKind,
            request_id,
            status: ReceiptStatus::Echoed,
            msg_id: Some(msg_id.into()),
            position: None,
            time: OffsetDateTime::now_utc(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn receipts_serialize_to_the_documented_shape() {
        let mut q = Receipt::queued(Some("r-1".into()), 2);
        q.time = datetime!(2026-11-28 16:20:01.5 UTC);
        assert_eq!(
            serde_json::to_string(&q).unwrap(),
            r#"{"kind":"receipt","request_id":"r-1","status":"queued","position":2,"time":"2026-11-28T16:20:01Z"}"#
        );
        let mut e = Receipt::echoed(None, "4839");
        e.time = datetime!(2026-11-28 16:20:01 UTC);
        let line = serde_json::to_string(&e).unwrap();
        assert_eq!(
            line,
            r#"{"kind":"receipt","request_id":null,"status":"echoed","msg_id":"4839","time":"2026-11-28T16:20:01Z"}"#
        );
        assert_eq!(serde_json::from_str::<Receipt>(&line).unwrap(), e);
        assert!(serde_json::from_str::<Receipt>(&line.replace("receipt", "result")).is_err());
    }
}
