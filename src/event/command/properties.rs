//! Properties of `parse_command`: past `max_bytes` the size alone decides, and a well-formed
//! command reads back as written, through its queued form too.

use proptest::prelude::*;
use serde_json::json;

use super::*;
use crate::event::rfc3339;
use crate::event::timestamp::properties::time;

/// Payloads near the shape of a command: valid ones, broken ones and raw bytes.
fn payload() -> impl Strategy<Value = Vec<u8>> {
    let field = prop_oneof![
        Just(Value::Null),
        Just(json!("")),
        "[a-zA-Z@ 😄]{1,12}".prop_map(Value::String),
        any::<i64>().prop_map(Value::from),
    ];
    let key = prop::sample::select(vec!["to", "to_id", "text", "request_id", "expires_at", "x"]);
    prop_oneof![
        prop::collection::btree_map(key, field, 0..5).prop_map(|m| serde_json::to_vec(&m).unwrap()),
        prop::collection::vec(any::<u8>(), 0..64),
    ]
}

proptest! {
    #[test]
    fn beyond_max_bytes_the_size_alone_decides(p in payload(), max in 0usize..96) {
        let limited = parse_command(&p, max);
        if p.len() > max {
            let e = limited.unwrap_err();
            prop_assert_eq!(e.code, ErrorCode::InvalidCommand);
            prop_assert!(e.message.contains("send.max_bytes"));
            // A request_id read from the head is the one the whole payload carries.
            if e.request_id.is_some() {
                let whole = match parse_command(&p, usize::MAX) {
                    Ok(c) => c.request_id,
                    Err(e) => e.request_id,
                };
                prop_assert_eq!(e.request_id, whole);
            }
        } else {
            prop_assert_eq!(limited, parse_command(&p, usize::MAX));
        }
    }

    #[test]
    fn a_well_formed_command_is_read_as_written(
        by_id in any::<bool>(),
        to in "[^\u{0}]{1,20}",
        text in "(?s).{1,40}",
        request_id in proptest::option::of("[ -~]{1,20}"),
        expires_at in proptest::option::of(time()),
    ) {
        let mut payload = json!({ "text": text });
        payload[if by_id { "to_id" } else { "to" }] = json!(to);
        if let Some(r) = &request_id {
            payload["request_id"] = json!(r);
        }
        if let Some(t) = expires_at {
            payload["expires_at"] = json!(rfc3339(t));
        }
        let bytes = serde_json::to_vec(&payload).unwrap();
        let cmd = parse_command(&bytes, bytes.len()).unwrap();
        prop_assert_eq!(cmd.to_id.clone(), by_id.then(|| to.clone()));
        prop_assert_eq!(cmd.to.clone(), (!by_id).then(|| to.clone()));
        prop_assert_eq!(cmd.text.as_deref(), Some(text.as_str()));
        prop_assert_eq!(&cmd.request_id, &request_id);
        prop_assert_eq!(cmd.expires_at, expires_at);
        let stored = serde_json::to_string(&cmd).unwrap();
        prop_assert_eq!(serde_json::from_str::<Command>(&stored).unwrap(), cmd);
    }
}
