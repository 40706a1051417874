//! The send command's validation, field by field, and its queued form.

use super::*;
use crate::event::SendResult;
use time::macros::datetime;

const MAX: usize = 65536;

#[test]
fn error_codes_are_snake_case_on_the_wire() {
    for code in [
        ErrorCode::InvalidJson,
        ErrorCode::InvalidCommand,
        ErrorCode::UnknownRecipient,
        ErrorCode::AmbiguousRecipient,
        ErrorCode::Forbidden,
        ErrorCode::NotLoggedIn,
        ErrorCode::Expired,
        ErrorCode::RateLimited,
        ErrorCode::LimitExceeded,
        ErrorCode::WechatError,
        ErrorCode::Timeout,
        ErrorCode::MediaForbidden,
        ErrorCode::MediaTooLarge,
        ErrorCode::MediaFetchFailed,
        ErrorCode::UploadFailed,
    ] {
        assert_eq!(
            serde_json::to_value(code).unwrap(),
            Value::String(code.as_str().into())
        );
    }
}

fn command_err(payload: &str) -> CommandError {
    parse_command(payload.as_bytes(), MAX).unwrap_err()
}

#[test]
fn valid_commands_are_accepted() {
    let c = parse_command(
        br#"{"to":"Mom","text":"on my way","request_id":"r-17"}"#,
        MAX,
    )
    .unwrap();
    assert_eq!(c.to.as_deref(), Some("Mom"));
    assert_eq!(c.to_id, None);
    assert_eq!(c.text.as_deref(), Some("on my way"));
    assert_eq!(c.request_id.as_deref(), Some("r-17"));
    let c = parse_command(
        br#"{"to_id":"@a81","text":"x","expires_at":"2026-11-28T19:00:00+01:00","to":null}"#,
        MAX,
    )
    .unwrap();
    assert_eq!(c.to_id.as_deref(), Some("@a81"));
    assert_eq!(c.expires_at, Some(datetime!(2026-11-28 18:00:00 UTC)));
    let stored = serde_json::to_string(&c).unwrap();
    assert_eq!(
        stored,
        r#"{"to_id":"@a81","text":"x","expires_at":"2026-11-28T18:00:00Z"}"#
    );
    assert_eq!(serde_json::from_str::<Command>(&stored).unwrap(), c);
}

#[test]
fn a_contact_key_names_the_recipient_and_is_queued_as_given() {
    let c = parse_command(br#"{"to_key":"c_abcdefgh2345","text":"hi"}"#, MAX).unwrap();
    assert_eq!(c.to_key.as_deref(), Some("c_abcdefgh2345"));
    assert_eq!((c.to, c.to_id), (None, None));
    let stored = serde_json::to_string(
        &parse_command(br#"{"to_key":"c_abcdefgh2345","text":"hi"}"#, MAX).unwrap(),
    )
    .unwrap();
    assert_eq!(stored, r#"{"to_key":"c_abcdefgh2345","text":"hi"}"#);
}

#[test]
fn media_may_come_with_or_without_text() {
    let c = parse_command(
        br#"{"to":"Family","image":{"url":"https://cam.example/snap.jpg"},"text":"door"}"#,
        MAX,
    )
    .unwrap();
    let media = c.media.unwrap();
    assert_eq!(media.kind, crate::event::SendKind::Image);
    assert_eq!(
        media.source,
        crate::event::MediaSource::Url("https://cam.example/snap.jpg".into())
    );
    assert_eq!(c.text.as_deref(), Some("door"));
    let c = parse_command(
        format!(
            r#"{{"to":"Mom","file":{{"sha256":"{}","name":"a.pdf"}}}}"#,
            "0".repeat(64)
        )
        .as_bytes(),
        MAX,
    )
    .unwrap();
    assert_eq!(c.text, None);
    let stored = serde_json::to_string(&c).unwrap();
    assert_eq!(
        stored,
        format!(
            r#"{{"to":"Mom","file":{{"sha256":"{}","name":"a.pdf"}}}}"#,
            "0".repeat(64)
        ),
        "the queue holds the command's own shape"
    );
    assert_eq!(parse_command(stored.as_bytes(), MAX).unwrap(), c);
    assert_eq!(c.media.unwrap().name.as_deref(), Some("a.pdf"));
    for payload in [
        r#"{"to":"Mom","image":{"url":"https://a/b"},"text":""}"#,
        r#"{"to":"Mom","image":{},"text":"hi"}"#,
        r#"{"image":{"url":"https://a/b"}}"#,
    ] {
        assert_eq!(
            command_err(payload).code,
            ErrorCode::InvalidCommand,
            "{payload}"
        );
    }
}

#[test]
fn oversized_payload_is_rejected_before_parsing() {
    let big = vec![b'{'; 10 * 1024 * 1024];
    let e = parse_command(&big, MAX).unwrap_err();
    assert_eq!(
        e.code,
        ErrorCode::InvalidCommand,
        "the size decides, not the broken JSON"
    );
    assert!(e.message.contains("send.max_bytes"), "{}", e.message);
    let exact = br#"{"to":"a","text":"b"}"#;
    assert!(parse_command(exact, exact.len()).is_ok());
    assert!(parse_command(exact, exact.len() - 1).is_err());
}

#[test]
fn an_oversized_command_keeps_the_request_id_its_head_proves() {
    let big = format!(
        r#"{{"request_id":"r-big","to":"Mom","text":"{}"}}"#,
        "x".repeat(100_000)
    );
    let e = parse_command(big.as_bytes(), MAX).unwrap_err();
    assert_eq!(e.code, ErrorCode::InvalidCommand);
    assert!(e.message.contains("send.max_bytes"), "{}", e.message);
    assert_eq!(e.request_id.as_deref(), Some("r-big"));
    assert_eq!(SendResult::from(e).request_id.as_deref(), Some("r-big"));
    // Past the head it cannot be seen: null, as for a command without one.
    let late = format!(
        r#"{{"to":"Mom","text":"{}","request_id":"r-late"}}"#,
        "x".repeat(100_000)
    );
    assert_eq!(
        parse_command(late.as_bytes(), MAX).unwrap_err().request_id,
        None
    );
}

#[test]
fn non_json_payloads_are_invalid_json() {
    assert_eq!(
        parse_command(b"\xff\xfe{}", MAX).unwrap_err().code,
        ErrorCode::InvalidJson
    );
    assert_eq!(command_err("{\"to\":").code, ErrorCode::InvalidJson);
    assert_eq!(command_err("hello").code, ErrorCode::InvalidJson);
}

#[test]
fn invalid_commands_name_the_field() {
    let cases = [
        ("[1,2]", "object"),
        (r#""text""#, "object"),
        (r#"{"to":"Mom"}"#, "`text`"),
        (r#"{"to":"Mom","text":""}"#, "`text`"),
        (r#"{"to":"Mom","text":5}"#, "`text`"),
        (r#"{"text":"hi"}"#, "`to`"),
        (r#"{"to":"Mom","to_id":"@a","text":"hi"}"#, "not several"),
        (
            r#"{"to_id":"@a","to_key":"c_abcdefgh2345","text":"hi"}"#,
            "not several",
        ),
        (
            r#"{"to_key":"C_ABCDEFGH2345","text":"hi"}"#,
            "C_ABCDEFGH2345",
        ),
        (r#"{"to_key":"Mom","text":"hi"}"#, "`to_key` `Mom`"),
        (r#"{"to_key":5,"text":"hi"}"#, "`to_key`"),
        (r#"{"to":"","text":"hi"}"#, "`to`"),
        (r#"{"to_id":7,"text":"hi"}"#, "`to_id`"),
        (
            r#"{"to":"Mom","text":"hi","request_id":17}"#,
            "`request_id`",
        ),
        (
            r#"{"to":"Mom","text":"hi","expires_at":"tomorrow"}"#,
            "`expires_at`",
        ),
        (
            r#"{"to":"Mom","text":"hi","expires_at":1700000000}"#,
            "`expires_at`",
        ),
        (r#"{"to":"Mom","text":"hi","priority":1}"#, "`priority`"),
    ];
    for (payload, field) in cases {
        let e = command_err(payload);
        assert_eq!(e.code, ErrorCode::InvalidCommand, "{payload}");
        assert!(e.message.contains(field), "{payload}: {}", e.message);
    }
}

#[test]
fn expires_at_beyond_the_years_rfc3339_can_write_is_invalid() {
    // Both are valid RFC 3339, but in UTC they fall in year 10000 and year -1.
    for t in ["9999-12-31T23:59:59-01:00", "0000-01-01T00:00:00+01:00"] {
        let e = command_err(&format!(r#"{{"to":"a","text":"b","expires_at":"{t}"}}"#));
        assert_eq!(e.code, ErrorCode::InvalidCommand, "{t}");
        assert!(e.message.contains("`expires_at`"), "{}", e.message);
    }
}

#[test]
fn expires_at_is_kept_to_the_second_as_the_queue_stores_it() {
    for t in ["2026-11-28T18:00:00.999Z", "2016-12-31T23:59:60Z"] {
        let payload = format!(r#"{{"to":"a","text":"b","expires_at":"{t}"}}"#);
        let c = parse_command(payload.as_bytes(), MAX).unwrap();
        let stored = serde_json::to_string(&c).unwrap();
        assert_eq!(serde_json::from_str::<Command>(&stored).unwrap(), c, "{t}");
    }
}

#[test]
fn request_id_is_recovered_from_a_bad_command() {
    let e = command_err(r#"{"request_id":"r-18","to":"Mom","text":""}"#);
    assert_eq!(e.request_id.as_deref(), Some("r-18"));
    let e = command_err(r#"{"request_id":"r-19","colour":"red"}"#);
    assert_eq!(e.request_id.as_deref(), Some("r-19"));
    let result = SendResult::from(e);
    assert_eq!(result.request_id.as_deref(), Some("r-19"));
    assert_eq!(result.error.unwrap().code, ErrorCode::InvalidCommand);
    assert_eq!(
        command_err(r#"{"request_id":5,"text":"x"}"#).request_id,
        None
    );
}
