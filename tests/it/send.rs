//! Outbound through stdin: sends the fake records, their echo, results for every bad line.
use std::time::Duration;

use serde_json::json;

use crate::support::{World, WAIT};

#[tokio::test]
async fn a_stdin_command_is_sent_and_its_echo_is_marked_bridge() {
    let world = World::new().await;
    let alice = world.fake.add_contact("Alice", "Mom");
    world.fake.echo_sent(true);
    let mut bridge = world.run_logged_in().await;

    bridge
        .send_line(br#"{"to":"Mom","text":"on my way\nsee you","request_id":"r-17"}"#)
        .await;
    let result = bridge.next_result().await;
    assert_eq!(result["ok"], true, "{result}");
    assert_eq!(result["request_id"], "r-17");
    assert_eq!(result["to"], json!({"id": alice, "name": "Mom"}));
    let sent = world.fake.wait_sent(1, WAIT).await;
    assert_eq!(sent[0].to, alice);
    assert_eq!(sent[0].content, "on my way\nsee you");
    assert_eq!(
        sent[0].local_id.len(),
        17,
        "LocalID shaped like the web client's"
    );
    assert_eq!(result["msg_id"], sent[0].msg_id.as_str());

    let echo = bridge.next_message().await;
    assert_eq!(echo["id"], sent[0].msg_id.as_str());
    assert_eq!(echo["origin"], "bridge");
    assert_eq!(echo["request_id"], "r-17");
    assert_eq!(echo["chat"]["id"], alice.as_str());
}

#[tokio::test]
async fn bad_lines_get_error_results_and_the_bridge_keeps_running() {
    let world = World::new().await;
    world.fake.add_contact("Twin", "");
    world.fake.add_contact("Twin", "");
    let mut bridge = world.run_logged_in().await;

    let big = format!(r#"{{"to":"filehelper","text":"{}"}}"#, "x".repeat(70_000));
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (b"this is not json".to_vec(), "invalid_json"),
        (vec![0xff, 0xfe, b'{', b'}'], "invalid_json"),
        (
            br#"{"text":"no recipient","request_id":"r-1"}"#.to_vec(),
            "invalid_command",
        ),
        (
            br#"{"to":"Nobody Known","text":"hi","request_id":"r-2"}"#.to_vec(),
            "unknown_recipient",
        ),
        (
            br#"{"to":"Twin","text":"hi","request_id":"r-3"}"#.to_vec(),
            "ambiguous_recipient",
        ),
        (big.into_bytes(), "invalid_command"),
    ];
    for (line, code) in &cases {
        bridge.send_line(line).await;
        let r = bridge.next_result().await;
        assert_eq!(r["ok"], false, "{r}");
        assert_eq!(r["error"]["code"], *code, "{r}");
    }
    let r2 = bridge
        .seen
        .iter()
        .find(|v| v["request_id"] == "r-2")
        .unwrap();
    assert!(r2["error"]["message"]
        .as_str()
        .unwrap()
        .contains("Nobody Known"));
    let r3 = bridge
        .seen
        .iter()
        .find(|v| v["request_id"] == "r-3")
        .unwrap();
    assert!(
        r3["error"]["message"]
            .as_str()
            .unwrap()
            .matches('@')
            .count()
            >= 2,
        "the candidates are named: {r3}"
    );

    bridge
        .send_line(br#"{"to":"filehelper","text":"still here","request_id":"ok-1"}"#)
        .await;
    let r = bridge.next_result().await;
    assert_eq!(r["ok"], true, "{r}");
    assert_eq!(
        world.fake.sent().len(),
        1,
        "only the valid command was sent"
    );
}

#[tokio::test]
async fn a_repeated_request_id_is_sent_once_and_answered_twice() {
    let world = World::new().await;
    let mut bridge = world.run_logged_in().await;
    let line = br#"{"to":"filehelper","text":"once","request_id":"dup-1"}"#;
    bridge.send_line(line).await;
    let first = bridge.next_result().await;
    bridge.send_line(line).await;
    let second = bridge.next_result().await;
    assert_eq!(first, second);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(world.fake.sent().len(), 1);
}

#[tokio::test]
async fn too_frequent_is_retried_then_reported_rate_limited() {
    let world = World::new().await;
    let mut bridge = world.run_logged_in().await;
    world.fake.fail_sends(1205, 0);
    bridge
        .send_line(br#"{"to":"filehelper","text":"slow down","request_id":"rl"}"#)
        .await;
    let r = bridge.next_result().await;
    assert_eq!(r["error"]["code"], "rate_limited", "{r}");
    assert!(
        world.fake.requests("webwxsendmsg").len() >= 2,
        "retried before giving up"
    );
}

#[tokio::test]
async fn a_command_past_its_expiry_is_answered_expired() {
    let world = World::new().await;
    let mut bridge = world.run_logged_in().await;
    bridge
        .send_line(br#"{"to":"filehelper","text":"late","expires_at":"2000-01-01T00:00:00Z"}"#)
        .await;
    let r = bridge.next_result().await;
    assert_eq!(r["error"]["code"], "expired", "{r}");
    assert!(r["request_id"].is_null());
    assert!(world.fake.sent().is_empty());
}

#[tokio::test]
async fn the_send_command_sends_through_the_stored_session() {
    let world = World::new().await;
    let alice = world.fake.add_contact("Alice", "Mom");
    let login = world.start(&["login"]);
    world.scan_and_confirm().await;
    assert_eq!(login.exit().await.0, 0);
    let (code, out, err) = world
        .command(&["send", "--to", "Mom", "hello from the shell"])
        .await;
    assert_eq!(code, 0, "{err}");
    let sent = world.fake.sent();
    assert_eq!(sent[0].to, alice);
    assert_eq!(out.trim(), sent[0].msg_id);
}

#[tokio::test]
async fn an_oversized_stdin_command_is_answered_with_the_request_id_at_its_head() {
    let world = World::new().await;
    // No login needed: the intake answers a bad command at once.
    let mut bridge = world.start(&["run"]);
    let pad = "x".repeat(200_000);
    let head_first = format!(r#"{{"request_id":"big-1","to":"filehelper","text":"{pad}"}}"#);
    bridge.send_line(head_first.as_bytes()).await;
    let r = bridge.next_result().await;
    assert_eq!(r["error"]["code"], "invalid_command", "{r}");
    assert_eq!(r["request_id"], "big-1", "{r}");
    assert!(
        r["error"]["message"]
            .as_str()
            .unwrap()
            .contains("send.max_bytes"),
        "{r}"
    );
    // Past the part the size check keeps, it cannot be read: null, as documented.
    let tail_last = format!(r#"{{"to":"filehelper","text":"{pad}","request_id":"big-2"}}"#);
    bridge.send_line(tail_last.as_bytes()).await;
    let r = bridge.next_result().await;
    assert_eq!(r["error"]["code"], "invalid_command", "{r}");
    assert!(r["request_id"].is_null(), "{r}");
    assert!(world.fake.sent().is_empty());
}
