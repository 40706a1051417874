//! Contact keys end to end (DESIGN.md "Contact keys"): the fake hands out new UserNames at
//! every login, as WeChat does, and the keys must stay with their contacts through the
//! binding rules, never guessed between look-alikes, on stdout, MQTT and NATS.
use std::collections::HashMap;
use std::time::Duration;

use bytes::Bytes;
use serde_json::{json, Value};
use wxbridge::event::is_contact_key;
use wxbridge_fake::Msg;

use crate::brokers;
use crate::schema::{assert_valid, assert_valid_contacts};
use crate::support::{Bridge, World, WAIT};
use crate::watch::Watcher;

/// Stops the bridge (the session is kept), forgets the session so the next start needs a
/// QR login, which hands out new UserNames, and starts it again.
async fn log_in_again(world: &World, bridge: Bridge) -> Bridge {
    assert_eq!(bridge.stop().await, 0);
    std::fs::remove_file(world.state_dir().join("session.json")).unwrap();
    world.run_logged_in().await
}

/// A message from `nick` (a person) to the account: its event.
async fn message_from(world: &World, bridge: &mut Bridge, nick: &str) -> Value {
    let queued = world
        .fake
        .queue(Msg::text(&world.fake.user_name_of(nick), "hello"));
    let m = bridge
        .next_where("the message", |v| v["id"] == queued.msg_id.as_str())
        .await;
    assert_valid(&m);
    m
}

/// The key a message from `nick` carries as `chat.key` (None: `null`).
async fn key_of(world: &World, bridge: &mut Bridge, nick: &str) -> Option<String> {
    let m = message_from(world, bridge, nick).await;
    m["chat"]["key"].as_str().map(str::to_owned)
}

/// Sends a command on stdin and answers its result.
async fn send(bridge: &mut Bridge, command: Value) -> Value {
    let rid = command["request_id"].clone();
    bridge.send_line(command.to_string().as_bytes()).await;
    let r = bridge
        .next_where("the result", |v| {
            v["kind"] == "result" && v["request_id"] == rid
        })
        .await;
    assert_valid(&r);
    r
}

#[tokio::test]
async fn keys_stay_with_their_contacts_across_three_logins_with_new_user_names() {
    let world = World::new().await;
    world.fake.add_contact("Alice", "Mom");
    world
        .fake
        .add_contact_with("Bob", "", 1, "Zhejiang", "Hangzhou");
    world
        .fake
        .add_group("Family", &[("Alice", ""), ("Bob", ""), ("Carol", "")], true);
    let mut bridge = world.run_logged_in().await;

    let mut first = HashMap::new();
    for nick in ["Alice", "Bob"] {
        let key = key_of(&world, &mut bridge, nick).await.expect("a key");
        assert!(is_contact_key(&key), "{key}");
        first.insert(nick, key);
    }
    let family_key = group_key(&world, &mut bridge).await;
    assert_eq!(first.len(), 2);
    assert_ne!(first["Alice"], first["Bob"]);
    assert!(![&first["Alice"], &first["Bob"]].contains(&&family_key));

    let mut names: Vec<String> = ["Alice", "Bob", "Family"]
        .map(|n| world.fake.user_name_of(n))
        .to_vec();
    for login in 2..=4 {
        bridge = log_in_again(&world, bridge).await;
        let now: Vec<String> = ["Alice", "Bob", "Family"]
            .map(|n| world.fake.user_name_of(n))
            .to_vec();
        for (old, new) in names.iter().zip(&now) {
            assert_ne!(old, new, "login {login} handed out new UserNames");
        }
        for nick in ["Alice", "Bob"] {
            assert_eq!(
                key_of(&world, &mut bridge, nick).await.as_deref(),
                Some(first[nick].as_str()),
                "{nick} at login {login}"
            );
        }
        assert_eq!(group_key(&world, &mut bridge).await, family_key);
        names = now;
    }
}

/// A message from Alice in the family group: the group's key, once Alice's is checked as the
/// sender's.
async fn group_key(world: &World, bridge: &mut Bridge) -> String {
    let family = world.fake.user_name_of("Family");
    let alice = world.fake.user_name_of("Alice");
    let queued = world
        .fake
        .queue(Msg::group_text(&family, &alice, "dinner?"));
    let m = bridge
        .next_where("the group message", |v| v["id"] == queued.msg_id.as_str())
        .await;
    assert_valid(&m);
    assert_eq!(m["chat"]["id"], family.as_str());
    let sender = m["from"]["key"]
        .as_str()
        .expect("Alice is a contact with a key");
    assert!(is_contact_key(sender));
    m["chat"]["key"]
        .as_str()
        .expect("the group has a key")
        .to_owned()
}

#[tokio::test]
async fn a_to_key_send_after_a_relogin_reaches_the_right_contact() {
    let world = World::new().await;
    world.fake.add_contact("Alice", "Mom");
    world.fake.add_contact("Alicia", "");
    let mut bridge = world.run_logged_in().await;
    let key = key_of(&world, &mut bridge, "Alice").await.expect("a key");

    let mut bridge = log_in_again(&world, bridge).await;
    let alice = world.fake.user_name_of("Alice");
    let r = send(
        &mut bridge,
        json!({"to_key": key, "text": "on my way", "request_id": "k-1"}),
    )
    .await;
    assert_eq!(r["ok"], true, "{r}");
    assert_eq!(r["to"], json!({"id": alice, "name": "Mom", "key": key}));
    let sent = world.fake.wait_sent(1, WAIT).await;
    assert_eq!(sent[0].to, alice);
    assert_eq!(sent[0].content, "on my way");

    let r = send(
        &mut bridge,
        json!({"to_key": "c_aaaaaaaaaaaa", "text": "x", "request_id": "k-2"}),
    )
    .await;
    assert_eq!(r["error"]["code"], "invalid_command", "{r}");
    assert!(
        r["error"]["message"]
            .as_str()
            .unwrap()
            .contains("c_aaaaaaaaaaaa"),
        "{r}"
    );
}

#[tokio::test]
async fn look_alike_contacts_are_reported_and_not_guessed() {
    let world = World::new().await;
    world
        .fake
        .add_contact_with("Ann", "", 2, "Guangdong", "Shenzhen");
    world
        .fake
        .add_contact_with("Bob", "", 1, "Beijing", "Beijing");
    let mut bridge = world.run_logged_in().await;
    let ann_key = key_of(&world, &mut bridge, "Ann").await.expect("a key");
    let bob_key = key_of(&world, &mut bridge, "Bob").await.expect("a key");

    // Bob now looks exactly like Ann did: name, sex, province, city.
    let bob = world.fake.user_name_of("Bob");
    world.fake.set_nick(&bob, "Ann");
    world.fake.set_details(&bob, 2, "Guangdong", "Shenzhen");
    let mut bridge = log_in_again(&world, bridge).await;

    let twins = world.fake.user_names_of("Ann");
    assert_eq!(twins.len(), 2);
    let event = bridge
        .seen_or_next("the contacts event", |v| {
            v["kind"] == "contacts" && !v["ambiguous"].as_array().is_none_or(Vec::is_empty)
        })
        .await;
    assert_valid(&event);
    let mut reported: Vec<(String, Value)> = event["ambiguous"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            (
                a["id"].as_str().unwrap().to_owned(),
                a["candidates"].clone(),
            )
        })
        .collect();
    reported.sort_by(|a, b| a.0.cmp(&b.0));
    let mut expected: Vec<(String, Value)> = twins
        .iter()
        .map(|id| (id.clone(), json!([ann_key])))
        .collect();
    expected.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(reported, expected);

    for twin in &twins {
        let queued = world.fake.queue(Msg::text(twin, "which one?"));
        let m = bridge
            .next_where("a twin's message", |v| v["id"] == queued.msg_id.as_str())
            .await;
        assert_eq!(m["chat"]["key"], Value::Null, "no key is guessed: {m}");
    }
    let r = send(
        &mut bridge,
        json!({"to_key": ann_key, "text": "hi", "request_id": "t-1"}),
    )
    .await;
    assert_eq!(r["error"]["code"], "ambiguous_recipient", "{r}");
    let r = send(
        &mut bridge,
        json!({"to_key": bob_key, "text": "hi", "request_id": "t-2"}),
    )
    .await;
    assert_eq!(r["error"]["code"], "unknown_recipient", "{r}");
    assert!(world.fake.sent().is_empty(), "nothing went to either");
}

#[tokio::test]
async fn a_renamed_contact_keeps_its_key_through_its_remark() {
    let world = World::new().await;
    world
        .fake
        .add_contact_with("Alice", "Mom", 2, "Zhejiang", "Hangzhou");
    let mut bridge = world.run_logged_in().await;
    let key = key_of(&world, &mut bridge, "Alice").await.expect("a key");

    // A new name and a move: only the remark is left to recognise her by.
    let alice = world.fake.user_name_of("Alice");
    world.fake.set_nick(&alice, "Alice 🌸");
    world.fake.set_details(&alice, 2, "Shanghai", "Shanghai");
    let mut bridge = log_in_again(&world, bridge).await;
    assert_eq!(
        key_of(&world, &mut bridge, "Alice 🌸").await.as_deref(),
        Some(key.as_str())
    );

    // Renamed again while logged in: the UserName keeps its key.
    let alice = world.fake.user_name_of("Alice 🌸");
    world.fake.set_nick(&alice, "Ally");
    world.fake.push_mod_contact(&alice);
    bridge
        .next_where("the contacts event", |v| {
            v["kind"] == "contacts" && v["modified"][0]["name"] == "Ally"
        })
        .await;
    assert_eq!(
        key_of(&world, &mut bridge, "Ally").await.as_deref(),
        Some(key.as_str())
    );
}

#[tokio::test]
async fn a_contact_renamed_while_logged_in_keeps_its_key_at_the_next_login() {
    let world = World::new().await;
    world
        .fake
        .add_contact_with("Bob", "", 1, "Zhejiang", "Hangzhou");
    let mut bridge = world.run_logged_in().await;
    let key = key_of(&world, &mut bridge, "Bob").await.expect("a key");

    // No remark: only the record the rename updated (and stored) can find him again.
    let bob = world.fake.user_name_of("Bob");
    world.fake.set_nick(&bob, "Robert");
    world.fake.push_mod_contact(&bob);
    bridge
        .next_where("the contacts event", |v| {
            v["kind"] == "contacts" && v["modified"][0]["name"] == "Robert"
        })
        .await;
    let mut bridge = log_in_again(&world, bridge).await;
    assert_eq!(
        key_of(&world, &mut bridge, "Robert").await.as_deref(),
        Some(key.as_str())
    );
}

#[tokio::test]
async fn the_retained_contacts_topic_and_nats_contacts_get_list_the_keys() {
    let world = World::new().await;
    world.fake.add_contact("Alice", "Mom");
    world
        .fake
        .add_group("Family", &[("Alice", ""), ("Dan", "")], true);
    let (mqtt, nats) = (brokers::mosquitto(), brokers::nats_server());
    let config = world.config(&format!(
        "mqtt:\n  url: mqtt://127.0.0.1:{}\n  client_id: wxbridge-test\n\
         nats:\n  url: nats://127.0.0.1:{}\n",
        mqtt.port, nats.port
    ));
    let mut w = Watcher::new(mqtt.port, "observer", "wechat/test/contacts").await;
    let _bridge = Bridge::spawn(&config, &["run"]);
    world.scan_and_confirm().await;

    // `[]` until the login; then the fake's own contacts beside these two.
    let roster = next_roster(&mut w, |r| !r.is_empty()).await;
    for e in &roster {
        assert_valid_entry(e);
    }
    let alice = world.fake.user_name_of("Alice");
    let family = world.fake.user_name_of("Family");
    let by_id: HashMap<&str, &Value> = roster
        .iter()
        .map(|e| (e["id"].as_str().unwrap(), e))
        .collect();
    let alice_key = by_id[alice.as_str()]["key"].as_str().unwrap().to_owned();
    let family_key = by_id[family.as_str()]["key"].as_str().unwrap().to_owned();
    assert!(is_contact_key(&alice_key) && is_contact_key(&family_key));
    assert_eq!(
        *by_id[alice.as_str()],
        json!({"key": alice_key, "id": alice, "name": "Alice", "remark": "Mom", "group": false})
    );
    assert_eq!(
        *by_id[family.as_str()],
        json!({"key": family_key, "id": family, "name": "Family", "remark": null, "group": true,
               "members": 3})
    );

    let nc = async_nats::connect(format!("127.0.0.1:{}", nats.port))
        .await
        .unwrap();
    let answer = tokio::time::timeout(WAIT, async {
        loop {
            match nc.request("wechat.test.contacts.get", Bytes::new()).await {
                Ok(msg) => return msg.payload,
                Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
            }
        }
    })
    .await
    .expect("contacts.get answered");
    let answered: Vec<Value> = serde_json::from_slice(&answer).unwrap();
    assert_eq!(answered, roster);

    // A contact renamed while logged in: republished, same key.
    world.fake.set_nick(&alice, "Ally");
    world.fake.push_mod_contact(&alice);
    let renamed = next_roster(&mut w, |r| r.iter().any(|e| e["name"] == "Ally")).await;
    let ally = renamed.iter().find(|e| e["name"] == "Ally").unwrap();
    assert_eq!(ally["key"], alice_key.as_str());
    assert_eq!(ally["id"], alice.as_str());
}

/// A roster entry: a well-formed key (the fake's contacts are all distinct) and the fields of
/// DESIGN.md's list, `members` for groups only.
fn assert_valid_entry(e: &Value) {
    let key = e["key"].as_str().unwrap_or_default();
    assert!(is_contact_key(key), "{e}");
    let group = e["group"].as_bool().unwrap();
    let fields: Vec<&String> = e.as_object().unwrap().keys().collect();
    let expected: &[&str] = if group {
        &["group", "id", "key", "members", "name", "remark"]
    } else {
        &["group", "id", "key", "name", "remark"]
    };
    assert_eq!(fields, expected, "{e}");
}

/// The next contacts list on the topic that `pred` accepts.
async fn next_roster(w: &mut Watcher, pred: impl Fn(&Vec<Value>) -> bool) -> Vec<Value> {
    loop {
        let m = w.next_on("wechat/test/contacts").await;
        let json: Value = serde_json::from_slice(&m.payload).unwrap();
        assert_valid_contacts(&json);
        let roster: Vec<Value> = serde_json::from_value(json).unwrap();
        if pred(&roster) {
            return roster;
        }
    }
}

#[tokio::test]
async fn an_allow_list_with_a_key_admits_its_contact_by_name_after_a_relogin() {
    let world = World::new().await;
    // No remarks: neither name would satisfy an entry (nicknames never do).
    world.fake.add_contact("Alice", "");
    world.fake.add_contact("Bob", "");
    let mut bridge = world.run_logged_in().await;
    let key = key_of(&world, &mut bridge, "Alice").await.expect("a key");
    let bob_before = world.fake.user_name_of("Bob");
    assert_eq!(bridge.stop().await, 0);

    // A new login (new UserNames), allowing Alice by her key and Bob by his old id.
    std::fs::remove_file(world.state_dir().join("session.json")).unwrap();
    let allow = [
        ("WXBRIDGE__SEND__ALLOW__0", key.as_str()),
        ("WXBRIDGE__SEND__ALLOW__1", bob_before.as_str()),
    ];
    let mut bridge = Bridge::spawn_with_env(&world.config(""), &["run"], &allow);
    world.scan_and_confirm().await;
    bridge.wait_state("online").await;
    let alice = world.fake.user_name_of("Alice");
    assert_ne!(world.fake.user_name_of("Bob"), bob_before);

    let r = send(
        &mut bridge,
        json!({"to": "Alice", "text": "allowed", "request_id": "al-1"}),
    )
    .await;
    assert_eq!(r["ok"], true, "{r}");
    assert_eq!(r["to"]["key"], key.as_str(), "{r}");
    let r = send(
        &mut bridge,
        json!({"to": "Bob", "text": "refused", "request_id": "al-2"}),
    )
    .await;
    assert_eq!(r["error"]["code"], "forbidden", "{r}");
    let sent = world.fake.sent();
    assert_eq!(sent.len(), 1, "only Alice's");
    assert_eq!(sent[0].to, alice);
    let stderr = bridge.stderr();
    assert!(
        stderr.contains(&bob_before) && stderr.contains("one login only"),
        "the `@` entry is warned about: {stderr}"
    );
}

#[tokio::test]
async fn wxbridge_contacts_lists_the_keys_run_gives() {
    let world = World::new().await;
    world.fake.add_contact("Alice", "Mom");
    world.fake.add_contact("Bob", "");
    let mut bridge = world.run_logged_in().await;
    let alice_key = key_of(&world, &mut bridge, "Alice").await.expect("a key");
    assert_eq!(bridge.stop().await, 0);
    // A contact `run` has not seen: the command gives it its key, and `run` keeps it.
    world.fake.add_contact("Carol", "");

    let (code, stdout, stderr) = world.command(&["contacts", "--json"]).await;
    assert_eq!(code, 0, "{stderr}");
    let listed: Vec<Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let key_of_listed = |name: &str| {
        let c = listed
            .iter()
            .find(|c| c["name"] == name)
            .unwrap_or_else(|| panic!("{name} listed: {stdout}"));
        c["key"].as_str().map(str::to_owned)
    };
    assert_eq!(key_of_listed("Alice").as_deref(), Some(alice_key.as_str()));
    let bob_key = key_of_listed("Bob").expect("Bob's key");
    let carol_key = key_of_listed("Carol").expect("Carol's key");
    assert!(is_contact_key(&bob_key) && is_contact_key(&carol_key));
    assert!(alice_key != bob_key && bob_key != carol_key && alice_key != carol_key);

    let (code, stdout, stderr) = world.command(&["contacts"]).await;
    assert_eq!(code, 0, "{stderr}");
    let line = stdout
        .lines()
        .find(|l| l.contains("(Mom)"))
        .unwrap_or_else(|| panic!("Alice's line: {stdout}"));
    assert!(line.ends_with(&format!("  {alice_key}")), "{line}");

    let mut bridge = world.start(&["run"]);
    bridge.wait_state("online").await;
    assert_eq!(
        key_of(&world, &mut bridge, "Carol").await.as_deref(),
        Some(carol_key.as_str())
    );
    assert_eq!(
        key_of(&world, &mut bridge, "Bob").await.as_deref(),
        Some(bob_key.as_str())
    );
}

#[tokio::test]
async fn the_send_command_honours_a_key_in_send_allow() {
    let world = World::new().await;
    world.fake.add_contact("Alice", "");
    world.fake.add_contact("Bob", "");
    let mut bridge = world.run_logged_in().await;
    let key = key_of(&world, &mut bridge, "Alice").await.expect("a key");
    assert_eq!(bridge.stop().await, 0);

    let config = world.config("");
    let send = |to: &'static str| {
        let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_wxbridge"))
            .arg("--config")
            .arg(&config)
            .args(["send", "--to", to, "from the shell"])
            .env("WXBRIDGE__SEND__ALLOW__0", &key)
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
    assert!(stderr.contains("Bob is not in send.allow"), "{stderr}");
    let (code, stderr) = send("Alice").await;
    assert_eq!(code, Some(0), "{stderr}");
    let sent = world.fake.sent();
    assert_eq!(sent.len(), 1, "only Alice's");
    assert_eq!(sent[0].to, world.fake.user_name_of("Alice"));
}
