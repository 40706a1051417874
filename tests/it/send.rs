//! Outbound through stdin: sends the fake records, their echo, results for every bad line.
use std::time::Duration;

use serde_json::json;

use crate::support::{Bridge, World, WAIT};

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
    let key = result["to"]["key"].as_str().expect("Mom has a key");
    assert_eq!(
        result["to"],
        json!({"id": alice, "name": "Mom", "key": key})
    );
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
        .find(|v| v["kind"] == "result" && v["request_id"] == "r-2")
        .unwrap();
    assert!(r2["error"]["message"]
        .as_str()
        .unwrap()
        .contains("Nobody Known"));
    let r3 = bridge
        .seen
        .iter()
        .find(|v| v["kind"] == "result" && v["request_id"] == "r-3")
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
async fn a_repeated_request_id_is_sent_once_and_its_repeats_are_marked_duplicate() {
    let world = World::new().await;
    let bob = world.fake.add_contact("Bob", "Bob");
    let mut bridge = world.run_logged_in().await;
    let line = br#"{"to":"filehelper","text":"once","request_id":"dup-1"}"#;
    bridge.send_line(line).await;
    let first = bridge.next_result().await;
    assert_eq!(first["ok"], true, "{first}");
    assert!(first.get("duplicate").is_none(), "{first}");
    bridge.send_line(line).await;
    let second = bridge.next_result().await;
    assert_eq!(second["duplicate"], true, "{second}");
    let mut unmarked = second.clone();
    unmarked.as_object_mut().unwrap().remove("duplicate");
    assert_eq!(
        unmarked, first,
        "an identical repeat answers the first result"
    );

    // Another recipient and text under the same request_id: still the first result, marked,
    // so the caller can tell this command was not sent.
    bridge
        .send_line(br#"{"to":"Bob","text":"something else","request_id":"dup-1"}"#)
        .await;
    let third = bridge.next_result().await;
    assert_eq!(third["duplicate"], true, "{third}");
    assert_eq!(third["msg_id"], first["msg_id"]);
    assert_eq!(third["to"]["id"], "filehelper");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let sent = world.fake.sent();
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert!(sent.iter().all(|m| m.to != bob));
}

#[tokio::test]
async fn a_request_id_with_the_reply_prefix_is_refused_from_commands() {
    let world = World::new().await;
    let mut bridge = world.run_logged_in().await;
    bridge
        .send_line(br#"{"to":"filehelper","text":"sneaky","request_id":"reply:test:4242"}"#)
        .await;
    let r = bridge.next_result().await;
    assert_eq!(r["ok"], false, "{r}");
    assert_eq!(r["error"]["code"], "invalid_command", "{r}");
    assert_eq!(r["request_id"], "reply:test:4242");
    assert!(
        r["error"]["message"]
            .as_str()
            .unwrap()
            .contains("reserved for webhook replies"),
        "{r}"
    );
    bridge
        .send_line(br#"{"to":"filehelper","text":"fine","request_id":"replyish"}"#)
        .await;
    assert_eq!(bridge.next_result().await["ok"], true);
    let sent = world.fake.wait_sent(1, WAIT).await;
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].content, "fine");
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
async fn the_send_command_honours_send_allow() {
    let world = World::new().await;
    let mom = world.fake.add_contact("Alice", "Mom");
    world.fake.add_contact("Bob", "");
    let login = world.start(&["login"]);
    world.scan_and_confirm().await;
    assert_eq!(login.exit().await.0, 0);
    let config = with_allow(&world, "Mom");
    let send = |to: &'static str| {
        let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_wxbridge"))
            .arg("--config")
            .arg(&config)
            .args(["send", "--to", to, "from the shell"])
            .stdin(std::process::Stdio::null())
            .output();
        async move {
            let out = tokio::time::timeout(WAIT, out).await.unwrap().unwrap();
            let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
            (out.status.code(), stderr)
        }
    };
    let (code, stderr) = send("Bob").await;
    assert_eq!(code, Some(1), "{stderr}");
    assert!(
        stderr.contains("Bob is not in send.allow"),
        "the refusal names the contact and the key: {stderr}"
    );
    assert!(world.fake.sent().is_empty(), "nothing went to Bob");
    let (code, stderr) = send("Mom").await;
    assert_eq!(code, Some(0), "{stderr}");
    let sent = world.fake.sent();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].to, mom);
}

/// The harness config with `send.allow` set to `entries` (YAML flow items).
fn with_allow(world: &World, entries: &str) -> std::path::PathBuf {
    let path = world.config("");
    let yaml = std::fs::read_to_string(&path).unwrap();
    assert!(
        yaml.contains("\nsend:\n"),
        "the harness config has a send section"
    );
    let allow = format!("\nsend:\n  allow: [{entries}]\n");
    std::fs::write(&path, yaml.replacen("\nsend:\n", &allow, 1)).unwrap();
    path
}

/// A contact renames itself and the bridge hears of it through webwxsync.
async fn rename(world: &World, bridge: &mut Bridge, user_name: &str, nick: &str) {
    world.fake.set_nick(user_name, nick);
    world.fake.push_mod_contact(user_name);
    bridge
        .next_where("the renamed contact", |v| {
            v["kind"] == "contacts"
                && v["modified"]
                    .as_array()
                    .is_some_and(|m| m.iter().any(|c| c["id"] == user_name && c["name"] == nick))
        })
        .await;
}

#[tokio::test]
async fn a_contact_that_renames_itself_filehelper_never_gets_notes_to_self() {
    let world = World::new().await;
    let stranger = world.fake.add_contact("Stranger", "");
    let mut bridge = world.run_logged_in().await;
    rename(&world, &mut bridge, &stranger, "filehelper").await;

    for (i, to) in ["filehelper", "FileHelper"].iter().enumerate() {
        let line = json!({"to": to, "text": "note to self", "request_id": format!("fh-{i}")});
        bridge.send_line(line.to_string().as_bytes()).await;
        let result = bridge.next_result().await;
        assert_eq!(result["ok"], true, "{result}");
        assert_eq!(result["to"]["id"], "filehelper", "{result}");
    }
    let sent = world.fake.wait_sent(2, WAIT).await;
    assert!(
        sent.iter().all(|m| m.to == "filehelper"),
        "notes to self went to the File Transfer helper only: {sent:?}"
    );
}

#[tokio::test]
async fn send_allow_matches_remarks_and_named_groups_never_nicknames() {
    let world = World::new().await;
    let mom = world.fake.add_contact("Alice", "Mom");
    let bob = world.fake.add_contact("Bob", "");
    let eve = world.fake.add_contact("Eve", "");
    let family = world.fake.add_group("Family", &[("Alice", "")], true);
    let club = world.fake.add_group("Chess Club", &[("Bob", "")], true);
    let config = with_allow(&world, r#"Mom, Bob, "group:Family", "Chess Club""#);
    let mut bridge = Bridge::spawn(&config, &["run"]);
    world.scan_and_confirm().await;
    bridge.wait_state("online").await;
    // Eve now calls herself Mom: her nickname must not pass the entry the owner meant for
    // the contact they named Mom.
    rename(&world, &mut bridge, &eve, "Mom").await;

    let commands = [
        (json!({"to": "Mom", "text": "hi mom"}), Some(&mom)),
        (json!({"to_id": eve, "text": "hi eve"}), None),
        (json!({"to": "Bob", "text": "hi bob"}), None),
        (json!({"to_id": bob, "text": "hi bob"}), None),
        (
            json!({"to": "Family", "text": "hi all"}),
            Some(&family.user_name),
        ),
        (json!({"to": "Chess Club", "text": "check"}), None),
        (json!({"to_id": club.user_name, "text": "mate"}), None),
    ];
    for (i, (command, allowed)) in commands.iter().enumerate() {
        let mut command = command.clone();
        command["request_id"] = json!(format!("al-{i}"));
        bridge.send_line(command.to_string().as_bytes()).await;
        let result = bridge.next_result().await;
        match allowed {
            Some(id) => {
                assert_eq!(result["ok"], true, "{command}: {result}");
                assert_eq!(result["to"]["id"], id.as_str(), "{command}: {result}");
            }
            None => assert_eq!(result["error"]["code"], "forbidden", "{command}: {result}"),
        }
    }
    let sent = world.fake.wait_sent(2, WAIT).await;
    let to: Vec<&str> = sent.iter().map(|m| m.to.as_str()).collect();
    assert_eq!(to, [mom.as_str(), family.user_name.as_str()]);

    let stderr = bridge.stderr();
    let warned = |entry: &str| {
        stderr
            .lines()
            .filter(|l| l.contains(&format!("send.allow entry `{entry}`")))
            .count()
    };
    assert_eq!(warned("Bob"), 1, "Bob matches only a nickname:\n{stderr}");
    assert_eq!(
        warned("Chess Club"),
        1,
        "Chess Club is only a group's name:\n{stderr}"
    );
    assert_eq!(warned("Mom"), 0, "Mom is a remark:\n{stderr}");
    assert!(stderr.contains("`group:Chess Club`"), "{stderr}");
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
