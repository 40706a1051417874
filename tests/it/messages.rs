//! Inbound: one event of every type with its extra fields, unknown groups, contact paging,
//! dedup and contact updates.
use serde_json::{json, Value};
use wxbridge_fake::{Msg, Options};

use crate::support::{text, World};

#[tokio::test]
async fn every_message_type_becomes_its_event_with_its_extra_fields() {
    let world = World::new().await;
    let alice = world.fake.add_contact("Alice", "Mom");
    let group = world.fake.add_group("Family", &[("Bob", "")], true);
    let bob = group.members[0].user_name.clone();
    let mut bridge = world.run_logged_in().await;

    let recalled = world.fake.queue(Msg::text(&alice, "oops"));
    let msgs = vec![
        ("text", Msg::text(&alice, "hello")),
        (
            "location",
            Msg::location(&alice, "Central Park", 40.78, -73.97),
        ),
        ("image", Msg::image(&alice)),
        ("voice", Msg::voice(&alice, 4200)),
        ("video", Msg::video(&alice, 12)),
        ("emoticon", Msg::emoticon(&alice)),
        (
            "friend_request",
            Msg::friend_request("Carol", "hi, it's Carol"),
        ),
        ("card", Msg::card(&alice, "Dave", "dave_w")),
        (
            "link",
            Msg::link(
                &alice,
                "News",
                "Today's news",
                "https://example.com/a?b=1&c=2",
            ),
        ),
        ("file", Msg::file(&alice, "report.pdf", 48213)),
        (
            "app",
            Msg::app(&alice, 33, "Mini program", "https://example.com/app"),
        ),
        (
            "system",
            Msg::system(&group.user_name, "Bob joined the group"),
        ),
        (
            "revoke",
            Msg::revoke(&alice, &recalled.msg_id, "Alice recalled a message"),
        ),
        (
            "status_notify",
            Msg::status_notify(4, &[&alice, &group.user_name]),
        ),
        ("phone", Msg::phone_text(&bob, "sent from my phone")),
    ];
    let mut ids = Vec::new();
    for (label, m) in msgs {
        ids.push((label, world.fake.queue(m).msg_id));
    }
    let first = bridge.next_message().await;
    assert_eq!(first["id"], recalled.msg_id.as_str());

    let mut got = std::collections::HashMap::new();
    for _ in 0..ids.len() - 1 {
        let m = bridge.next_message().await;
        got.insert(m["id"].as_str().unwrap().to_owned(), m);
    }
    let ev = |label: &str| -> &Value {
        let id = &ids.iter().find(|(l, _)| *l == label).unwrap().1;
        got.get(id)
            .unwrap_or_else(|| panic!("no event for {label}"))
    };
    let status_id = &ids.iter().find(|(l, _)| *l == "status_notify").unwrap().1;
    assert!(
        !got.contains_key(status_id),
        "MsgType 51 is never published"
    );

    assert_eq!(ev("text")["type"], "text");
    assert_eq!(text(ev("text")), "hello");
    assert_eq!(ev("text")["from"]["remark"], "Mom");
    assert_eq!(ev("text")["chat"]["name"], "Mom");

    let loc = &ev("location")["location"];
    assert_eq!(ev("location")["type"], "location");
    assert_eq!(loc["label"], "Central Park");
    assert_eq!(loc["lat"].as_f64(), Some(40.78));
    assert_eq!(loc["lon"].as_f64(), Some(-73.97));
    assert!(loc["url"].as_str().unwrap().contains("apis.map.qq.com"));

    for (label, kind) in [
        ("image", "image"),
        ("voice", "voice"),
        ("video", "video"),
        ("emoticon", "emoticon"),
    ] {
        let e = ev(label);
        assert_eq!(e["type"], label);
        assert_eq!(e["media"]["kind"], kind);
        assert_eq!(e["media"]["msg_id"], e["id"]);
        assert!(e["text"].is_null(), "{label} has no text");
    }
    assert_eq!(ev("voice")["media"]["duration_ms"], 4200);
    assert_eq!(ev("video")["media"]["duration_s"], 12);

    let fr = &ev("friend_request")["friend_request"];
    assert_eq!(ev("friend_request")["type"], "friend_request");
    assert_eq!(fr["name"], "Carol");
    assert_eq!(fr["greeting"], "hi, it's Carol");
    assert!(!fr["ticket"].as_str().unwrap().is_empty());

    assert_eq!(
        ev("card")["card"],
        json!({"name": "Dave", "alias": "dave_w"})
    );
    assert_eq!(
        ev("link")["link"],
        json!({"title": "News", "url": "https://example.com/a?b=1&c=2", "description": "Today's news"})
    );
    let file = &ev("file")["file"];
    assert_eq!(file["name"], "report.pdf");
    assert_eq!(file["size"], 48213);
    assert!(file["media_id"].as_str().unwrap().starts_with("@crypt_"));
    assert_eq!(ev("app")["app"]["app_msg_type"], 33);
    assert_eq!(ev("app")["app"]["title"], "Mini program");

    assert_eq!(ev("system")["type"], "system");
    assert_eq!(text(ev("system")), "Bob joined the group");
    assert_eq!(ev("system")["chat"]["group"], true);

    assert_eq!(ev("revoke")["type"], "revoke");
    assert_eq!(
        ev("revoke")["revoke"]["revoked_id"],
        recalled.msg_id.as_str()
    );

    let phone = ev("phone");
    assert_eq!(phone["origin"], "phone");
    assert_eq!(phone["from"]["self"], true);
    assert_eq!(
        phone["chat"]["id"],
        bob.as_str(),
        "own messages are in the recipient's chat"
    );
    assert!(phone.get("request_id").is_none());
}

#[tokio::test]
async fn a_group_missing_from_the_address_book_is_fetched_with_batchgetcontact() {
    let world = World::new().await;
    let hidden = world
        .fake
        .add_group("Secret Club", &[("Eve", "Evie")], false);
    let eve = hidden.members[0].user_name.clone();
    let mut bridge = world.run_logged_in().await;
    let before = world.fake.requests("webwxbatchgetcontact").len();
    world
        .fake
        .queue(Msg::group_text(&hidden.user_name, &eve, "psst"));
    let m = bridge.next_message().await;
    assert_eq!(m["chat"]["name"], "Secret Club");
    assert_eq!(m["from"]["name"], "Evie");
    let asked: Vec<_> = world.fake.requests("webwxbatchgetcontact")[before..]
        .iter()
        .filter_map(|r| r.json())
        .collect();
    assert!(
        asked
            .iter()
            .any(|b| b["List"].to_string().contains(&hidden.user_name)),
        "batchgetcontact asked for the group: {asked:?}"
    );
}

#[tokio::test]
async fn a_large_accounts_groups_come_in_calls_of_50_and_name_their_members() {
    let world = World::new().await;
    let people: Vec<(String, String)> = (0..499)
        .map(|i| (format!("Member {i} 🌟"), format!("M<{i}> \"x\"")))
        .collect();
    let people: Vec<(&str, &str)> = people
        .iter()
        .map(|(n, d)| (n.as_str(), d.as_str()))
        .collect();
    for i in 0..60 {
        world
            .fake
            .add_group(&format!("Group {i}"), &people[..2], true);
    }
    let big = world.fake.add_group("Big Group", &people, true);
    let mut bridge = world.run_logged_in().await;
    let calls = world.fake.requests("webwxbatchgetcontact");
    assert!(
        calls.len() >= 2,
        "62 groups need two calls: {}",
        calls.len()
    );
    for call in calls.iter().filter_map(|r| r.json()) {
        assert!(call["List"].as_array().unwrap().len() <= 50, "{call}");
    }
    let last = &big.members[498];
    world
        .fake
        .queue(Msg::group_text(&big.user_name, &last.user_name, "hi"));
    let m = bridge.next_message().await;
    assert_eq!(m["chat"]["name"], "Big Group");
    assert_eq!(m["from"]["name"], "M<498> \"x\"");
    bridge.stop().await;
    let (code, out, err) = world.command(&["contacts", "--json"]).await;
    assert_eq!(code, 0, "{err}");
    let listed: Value = out
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .find(|c| c["name"] == "Big Group")
        .expect("the big group is listed");
    assert_eq!(listed["members"], 500);
}

#[tokio::test]
async fn the_address_book_is_paged_until_seq_is_zero() {
    let world = World::with(Options {
        contact_page_size: 2,
        ..Default::default()
    })
    .await;
    for i in 0..7 {
        world.fake.add_contact(&format!("Friend {i}"), "");
    }
    let login = world.start(&["login"]);
    world.scan_and_confirm().await;
    assert_eq!(login.exit().await.0, 0);
    let pages_at_login = world.fake.requests("webwxgetcontact");
    assert!(
        pages_at_login.len() >= 4,
        "7+ contacts at 2 a page: {}",
        pages_at_login.len()
    );
    assert_eq!(pages_at_login[0].query["seq"], "0");

    let (code, out, err) = world.command(&["contacts", "--json"]).await;
    assert_eq!(code, 0, "{err}");
    let names: Vec<String> = out
        .lines()
        .map(|l| {
            serde_json::from_str::<Value>(l).unwrap()["name"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    for i in 0..7 {
        assert!(
            names.contains(&format!("Friend {i}")),
            "Friend {i} in {names:?}"
        );
    }
}

#[tokio::test]
async fn the_same_msgid_is_emitted_once() {
    let world = World::new().await;
    let alice = world.fake.add_contact("Alice", "");
    let mut bridge = world.run_logged_in().await;
    world
        .fake
        .queue(Msg::text(&alice, "first").with("MsgId", json!("777000111")));
    world
        .fake
        .queue(Msg::text(&alice, "again").with("MsgId", json!("777000111")));
    world.fake.queue(Msg::text(&alice, "after"));
    assert_eq!(text(&bridge.next_message().await), "first");
    assert_eq!(text(&bridge.next_message().await), "after");
}

#[tokio::test]
async fn contact_changes_are_published_and_used() {
    let world = World::new().await;
    let alice = world.fake.add_contact("Alice", "");
    let mut bridge = world.run_logged_in().await;
    world.fake.set_remark(&alice, "Mom");
    world.fake.push_mod_contact(&alice);
    world.fake.queue(Msg::text(&alice, "hi"));
    let change = bridge
        .next_where("contacts event", |v| v["kind"] == "contacts")
        .await;
    assert_eq!(change["modified"][0]["remark"], "Mom");
    let m = bridge.next_message().await;
    assert_eq!(m["from"]["remark"], "Mom");
}
