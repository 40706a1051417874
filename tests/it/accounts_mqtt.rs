//! Several accounts over one MQTT connection, against a real mosquitto: each account's events,
//! retained state and commands on its own topics only, one account's stalled bridge holding up
//! no other's commands and its file awaiting the broker's confirmation no other's events, the process's status as the last will that every account's Home
//! Assistant device also needs, and one device per account. The link is driven by hand with
//! hand-built controls, one per account, as `run` starts it for `accounts:`; one test runs the
//! real binary with two accounts on two fake WeChat servers.
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use serde_json::{json, Value};
use tokio_util::task::TaskTracker;
use wxbridge::config::{HomeAssistantConfig, MqttConfig};
use wxbridge::event::SessionState;
use wxbridge::media::MediaStore;
use wxbridge::sinks::mqtt::{self, MqttSink};
use wxbridge::sinks::{Accepted, Origin};
use wxbridge::spool::Kind;

use crate::accounts::two_accounts_config;
use crate::brokers;
use crate::control::{account, control, deliver_all, entry, status, Side};
use crate::media_sinks::{jpeg, media_entry, put};
use crate::mqtt::Gate;
use crate::support::{Bridge, World};
use crate::watch::Watcher;
use wxbridge_fake::Msg;

const WAIT: Duration = Duration::from_secs(10);

/// Long enough for a command that was going to arrive to have arrived (a failure bound only:
/// the assertions made after it are about what did not arrive).
const QUIET: Duration = Duration::from_millis(700);

/// The accounts, in the order the link serves them.
const ACCOUNTS: [&str; 2] = ["home", "office"];

/// One link for `home` and `office` on the broker at `port`, with discovery as
/// `homeassistant` says: their sinks and their bridges' sides, in that order.
fn start(port: u16, homeassistant: &HomeAssistantConfig) -> (Vec<MqttSink>, Vec<Side>) {
    let (sinks, sides, _stores) = start_with(port, homeassistant, false);
    (sinks, sides)
}

/// [`start`] with `mqtt.media` as given; also answers the accounts' media stores.
fn start_with(
    port: u16,
    homeassistant: &HomeAssistantConfig,
    media: bool,
) -> (Vec<MqttSink>, Vec<Side>, Vec<MediaStore>) {
    let config = MqttConfig {
        url: format!("mqtt://127.0.0.1:{port}").parse().unwrap(),
        client_id: "wxbridge-several".to_owned(),
        media,
        ..MqttConfig::default()
    };
    let (controls, sides): (Vec<_>, Vec<_>) = ACCOUNTS
        .iter()
        .map(|name| {
            let (mut control, side) = control(SessionState::Starting, Duration::from_millis(500));
            control.account = (*name).to_owned();
            (control, side)
        })
        .unzip();
    let views: Vec<_> = ACCOUNTS.iter().map(|name| account(name)).collect();
    let stores = controls.iter().map(|c| c.media.store.clone()).collect();
    let sinks = mqtt::prepare(&config, homeassistant, &views)
        .unwrap()
        .start(controls, &TaskTracker::new())
        .into_iter()
        .map(|started| started.sink)
        .collect();
    (sinks, sides, stores)
}

/// Waits until the process and both accounts said `online` (each account subscribes to its
/// command topics just before, on the same connection).
async fn until_online(port: u16, id: &str) {
    let mut w = Watcher::new(port, id, "wechat/#").await;
    let mut online = BTreeSet::new();
    while online.len() < 3 {
        let m = w.next().await;
        if m.topic.ends_with("/status") && &m.payload[..] == b"online" {
            online.insert(m.topic);
        }
    }
    assert_eq!(
        online,
        BTreeSet::from(
            [
                "wechat/status",
                "wechat/home/status",
                "wechat/office/status"
            ]
            .map(String::from)
        )
    );
}

/// The retained payload on each topic under `filter`, as a new subscriber gets it.
async fn retained(port: u16, id: &str, filter: &str) -> BTreeMap<String, Vec<u8>> {
    let mut w = Watcher::new(port, id, filter).await;
    w.drain(Duration::from_millis(500))
        .await
        .into_iter()
        .filter(|m| m.retain)
        .map(|m| (m.topic, m.payload.to_vec()))
        .collect()
}

/// Asserts that the process and both accounts have left `offline` retained, as a clean stop
/// does.
async fn assert_everything_offline(port: u16) {
    let statuses = retained(port, "statuses", "wechat/#").await;
    for topic in [
        "wechat/status",
        "wechat/home/status",
        "wechat/office/status",
    ] {
        assert_eq!(
            statuses.get(topic).map(Vec::as_slice),
            Some(&b"offline"[..]),
            "{topic}"
        );
    }
}

/// Asserts that no command reaches `side` for a while.
async fn no_command(side: &mut Side, what: &str) {
    let got = tokio::time::timeout(QUIET, side.commands.recv()).await;
    assert!(got.is_err(), "{what}: {got:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_account_publishes_and_takes_commands_on_its_own_topics_only() {
    let broker = brokers::mosquitto();
    let (mut sinks, mut sides) = start(broker.port, &HomeAssistantConfig::default());
    until_online(broker.port, "probe").await;
    let mut w = Watcher::new(broker.port, "watcher", "wechat/#").await;
    w.drain(Duration::from_millis(300)).await;

    // Events: each account's sink, fed from its own spool, publishes under its own name.
    let mut office = sinks.pop().unwrap();
    let mut home = sinks.pop().unwrap();
    let home_batch = [
        entry(1, Kind::Message, "home-m1"),
        entry(2, Kind::Result, "home-r1"),
    ];
    let office_batch = [
        entry(1, Kind::Message, "office-m1"),
        entry(2, Kind::Login, "office-l1"),
    ];
    tokio::join!(
        deliver_all(&mut home, &home_batch, WAIT),
        deliver_all(&mut office, &office_batch, WAIT),
    );
    let mut got = BTreeMap::new();
    while got.len() < 4 {
        let m = w.next().await;
        let announced = m.topic.ends_with("/status") || m.topic.ends_with("/state");
        if announced || m.retain || m.payload.is_empty() {
            continue;
        }
        let v: Value = serde_json::from_slice(&m.payload).unwrap();
        got.insert(v["id"].as_str().unwrap().to_owned(), m.topic);
    }
    let want: BTreeMap<String, String> = [
        ("home-m1", "wechat/home/message"),
        ("home-r1", "wechat/home/send/result"),
        ("office-m1", "wechat/office/message"),
        ("office-l1", "wechat/office/event"),
    ]
    .into_iter()
    .map(|(id, topic)| (id.to_owned(), topic.to_owned()))
    .collect();
    assert_eq!(got, want);

    // Retained state: the office's session comes online, the home's stays as it was.
    sides[1]
        .status
        .send_replace(status(SessionState::Online, ""));
    let state = w.next_on("wechat/office/state").await;
    let v: Value = serde_json::from_slice(&state.payload).unwrap();
    assert_eq!(v["state"], "online");
    let states = retained(broker.port, "states", "wechat/+/state").await;
    let state_of = |account: &str| -> Value {
        serde_json::from_slice(&states[&format!("wechat/{account}/state")]).unwrap()
    };
    assert_eq!(state_of("home")["state"], "starting");
    assert_eq!(state_of("office")["state"], "online");

    // Commands: a send on one account's topic reaches that account's bridge only.
    for (to, other) in [(1, 0), (0, 1)] {
        let topic = format!("wechat/{}/send", ACCOUNTS[to]);
        let payload = json!({"to": "Mom", "text": format!("for {}", ACCOUNTS[to])});
        w.publish(&topic, false, serde_json::to_vec(&payload).unwrap())
            .await;
        let mut cmd = sides[to].command().await;
        assert_eq!(cmd.origin, Origin::Mqtt);
        assert_eq!(
            serde_json::from_slice::<Value>(&cmd.payload).unwrap(),
            payload
        );
        cmd.accepted
            .take()
            .unwrap()
            .send(Accepted::Queued(1))
            .unwrap();
        no_command(
            &mut sides[other],
            &format!("{topic} reached the other account"),
        )
        .await;
    }

    // Re-login and log-out requests too.
    let office_relogin = sides[1].relogin.notified();
    let home_relogin = sides[0].relogin.notified();
    w.publish("wechat/office/relogin", false, b"1".to_vec())
        .await;
    tokio::time::timeout(WAIT, office_relogin)
        .await
        .expect("the office's relogin notified");
    let crossed = tokio::time::timeout(QUIET, home_relogin).await;
    assert!(crossed.is_err(), "the office's relogin reached home");
    let home_logout = sides[0].logout.notified();
    let office_logout = sides[1].logout.notified();
    w.publish("wechat/home/logout", false, b"1".to_vec()).await;
    tokio::time::timeout(WAIT, home_logout)
        .await
        .expect("home's logout notified");
    let crossed = tokio::time::timeout(QUIET, office_logout).await;
    assert!(crossed.is_err(), "home's logout reached the office");

    // A clean stop: every account and the process say `offline`.
    let stopped = home.stopped();
    for side in &sides {
        side.shutdown.cancel();
    }
    tokio::time::timeout(WAIT, stopped)
        .await
        .expect("stopped in time");
    assert_everything_offline(broker.port).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_account_whose_bridge_takes_no_commands_holds_up_no_other() {
    let broker = brokers::mosquitto();
    let (_sinks, mut sides) = start(broker.port, &HomeAssistantConfig::default());
    until_online(broker.port, "probe").await;
    let w = Watcher::new(broker.port, "publisher", "nothing/here").await;

    // Home's bridge takes the first command and never says it has it: home's command task
    // waits on it, and the rest of home's commands wait behind it, unacked.
    for i in 0..5 {
        let payload = json!({"to": "Mom", "text": format!("home {i}")});
        w.publish(
            "wechat/home/send",
            false,
            serde_json::to_vec(&payload).unwrap(),
        )
        .await;
    }
    let stuck = sides[0].command().await;
    assert_eq!(
        serde_json::from_slice::<Value>(&stuck.payload).unwrap()["text"],
        "home 0"
    );

    // The office's commands, published after, are taken all the same.
    for i in 0..3 {
        let payload = json!({"to": "Boss", "text": format!("office {i}")});
        w.publish(
            "wechat/office/send",
            false,
            serde_json::to_vec(&payload).unwrap(),
        )
        .await;
    }
    for i in 0..3 {
        let mut cmd = sides[1].command().await;
        let v: Value = serde_json::from_slice(&cmd.payload).unwrap();
        assert_eq!(v["text"], format!("office {i}"));
        cmd.accepted
            .take()
            .unwrap()
            .send(Accepted::Queued(i))
            .unwrap();
    }
    // Home's bridge answers now: its commands follow, in order.
    let mut stuck = stuck;
    stuck
        .accepted
        .take()
        .unwrap()
        .send(Accepted::Queued(9))
        .unwrap();
    for i in 1..5 {
        let mut cmd = sides[0].command().await;
        let v: Value = serde_json::from_slice(&cmd.payload).unwrap();
        assert_eq!(v["text"], format!("home {i}"));
        cmd.accepted
            .take()
            .unwrap()
            .send(Accepted::Queued(10 + i))
            .unwrap();
    }
    no_command(&mut sides[1], "a home command reached the office").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_awaiting_its_confirmation_holds_up_no_other_accounts_events() {
    let broker = brokers::mosquitto();
    let gate = Gate::new(broker.port).await;
    let (mut sinks, _sides, stores) = start_with(gate.port, &HomeAssistantConfig::default(), true);
    until_online(broker.port, "probe").await;
    let photo = put(&stores[0], &jpeg(7, 2000)).await;
    let mut w = Watcher::new(broker.port, "sub", "wechat/#").await;
    w.drain(Duration::from_millis(300)).await;

    // Home's event waits for the broker's PUBACK of its file, which the gate holds back.
    gate.hold(true);
    let mut office = sinks.pop().unwrap();
    let mut home = sinks.pop().unwrap();
    let batch = [media_entry(
        1,
        "home-600",
        "image",
        "contact",
        &photo.sha256,
    )];
    let home_delivery = tokio::spawn(async move {
        deliver_all(&mut home, &batch, WAIT).await;
        home
    });
    w.next_on(&format!("wechat/home/media/{}", photo.sha256))
        .await;

    // Meanwhile the office's events go out: they wait for no file of home's.
    let batch = [entry(1, Kind::Message, "office-m1")];
    let office_delivery = tokio::spawn(async move {
        deliver_all(&mut office, &batch, WAIT).await;
        office
    });
    let event = w.next_on("wechat/office/message").await;
    let v: Value = serde_json::from_slice(&event.payload).unwrap();
    assert_eq!(v["id"], "office-m1");
    assert!(
        !home_delivery.is_finished(),
        "home's event did not wait for its file"
    );

    gate.hold(false);
    let event = w.next_on("wechat/home/message").await;
    let v: Value = serde_json::from_slice(&event.payload).unwrap();
    assert_eq!(v["id"], "home-600");
    tokio::time::timeout(WAIT, home_delivery)
        .await
        .unwrap()
        .unwrap();
    tokio::time::timeout(WAIT, office_delivery)
        .await
        .unwrap()
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_link_takes_every_account_offline_through_the_process_will() {
    let broker = brokers::mosquitto();
    let gate = Gate::new(broker.port).await;
    let mut w = Watcher::new(broker.port, "watcher", "wechat/status").await;
    let (_sinks, _sides) = start(gate.port, &HomeAssistantConfig::default());
    assert_eq!(&w.next_on("wechat/status").await.payload[..], b"online");
    until_online(broker.port, "probe").await;

    // The connection dies without a DISCONNECT, as when the process is killed.
    gate.cut();
    let will = w.next_on("wechat/status").await;
    assert_eq!(&will.payload[..], b"offline", "the last will");
    // The link reconnects on its own and says so.
    assert_eq!(&w.next_on("wechat/status").await.payload[..], b"online");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_account_is_a_home_assistant_device_of_its_own() {
    let broker = brokers::mosquitto();
    let mut w = Watcher::new(broker.port, "ha", "homeassistant/#").await;
    let homeassistant = HomeAssistantConfig {
        notify_targets: vec!["Mom".to_owned()],
        ..HomeAssistantConfig::default()
    };
    let (_sinks, mut sides) = start(broker.port, &homeassistant);
    // Eight entities and one notify target per account.
    let mut configs: BTreeMap<String, Value> = BTreeMap::new();
    while configs.len() < 18 {
        let m = w.next().await;
        if m.topic.ends_with("/config") && !m.payload.is_empty() {
            configs.insert(m.topic, serde_json::from_slice(&m.payload).unwrap());
        }
    }
    let mut devices = BTreeMap::<String, BTreeSet<String>>::new();
    let mut unique_ids = BTreeSet::new();
    for (topic, v) in &configs {
        let device = v["device"]["identifiers"][0].as_str().unwrap().to_owned();
        let account = device.strip_prefix("wxbridge_").unwrap();
        assert!(
            topic.contains(&format!("/{device}/")),
            "{topic} under {device}"
        );
        assert_eq!(v["device"]["name"], format!("WeChat {account}"));
        assert!(
            unique_ids.insert(v["unique_id"].as_str().unwrap().to_owned()),
            "{topic}"
        );
        // Available only while the process and the account both say so.
        let availability: Vec<&str> = v["availability"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a["topic"].as_str().unwrap())
            .collect();
        assert_eq!(
            availability[..2],
            ["wechat/status", &format!("wechat/{account}/status")]
        );
        assert_eq!(v["availability_mode"], "all", "{topic}");
        devices.entry(device).or_default().insert(topic.clone());
    }
    assert_eq!(
        devices.keys().collect::<Vec<_>>(),
        ["wxbridge_home", "wxbridge_office"],
        "two devices"
    );
    assert!(devices.values().all(|entities| entities.len() == 9));

    // Each device's notify entity sends through its own account.
    let command_topic = |account: &str| {
        configs[&format!("homeassistant/notify/wxbridge_{account}/notify_Mom/config")]
            ["command_topic"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    assert_eq!(command_topic("office"), "wechat/office/notify/Mom");
    w.publish(&command_topic("office"), false, b"late today".to_vec())
        .await;
    let cmd = sides[1].command().await;
    assert_eq!(
        serde_json::from_slice::<Value>(&cmd.payload).unwrap(),
        json!({"to": "Mom", "text": "late today"})
    );
    no_command(&mut sides[0], "the office's notify reached home").await;

    // Home Assistant coming online gets both devices again.
    w.drain(Duration::from_millis(200)).await;
    w.publish("homeassistant/status", false, b"online".to_vec())
        .await;
    let mut again = BTreeSet::new();
    while again.len() < 18 {
        let m = w.next().await;
        if m.topic.ends_with("/config") && !m.payload.is_empty() {
            again.insert(m.topic);
        }
    }
    assert_eq!(again, configs.keys().cloned().collect());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_accounts_in_one_process_share_a_connection_and_never_cross() {
    let (home, office) = (World::new().await, World::new().await);
    let home_mom = home.fake.add_contact("Mother", "Mom");
    let office_mom = office.fake.add_contact("Mom at work", "Mom");
    let broker = brokers::mosquitto();
    let http_port = brokers::free_port();
    let config = two_accounts_config(
        &home,
        &office,
        &format!(
            "mqtt:\n  url: mqtt://127.0.0.1:{port}\n\
             homeassistant:\n  notify_targets: [Mom]\n\
             http:\n  listen: 127.0.0.1:{http}\n",
            port = broker.port,
            http = http_port,
        ),
    );
    let mut w = Watcher::new(broker.port, "watcher", "#").await;
    let bridge = Bridge::spawn(&config, &["run"]);

    // Two Home Assistant devices, one per account, whose entities need the process too.
    let mut devices = BTreeMap::new();
    while devices.len() < 2 {
        let m = w.next().await;
        if m.topic.ends_with("/session/config") && !m.payload.is_empty() {
            let v: Value = serde_json::from_slice(&m.payload).unwrap();
            let id = v["device"]["identifiers"][0].as_str().unwrap().to_owned();
            devices.insert(id, v);
        }
    }
    let identifiers: Vec<&str> = devices.keys().map(String::as_str).collect();
    assert_eq!(identifiers, ["wxbridge_home", "wxbridge_office"]);
    assert_eq!(
        devices["wxbridge_office"]["availability"][0]["topic"],
        "wechat/status"
    );

    // Each account logs in on its own fake; each state comes online on its own topic.
    home.scan_and_confirm().await;
    w.json_on("wechat/home/state", |v| v["state"] == "online")
        .await;
    office.scan_and_confirm().await;
    w.json_on("wechat/office/state", |v| v["state"] == "online")
        .await;

    // A message to each account arrives on that account's topic, with its name.
    office.fake.queue(Msg::text(&office_mom, "meeting moved"));
    home.fake.queue(Msg::text(&home_mom, "dinner?"));
    let mut texts = BTreeMap::new();
    while texts.len() < 2 {
        let m = w.next().await;
        if let Some(account) = m
            .topic
            .strip_prefix("wechat/")
            .and_then(|t| t.strip_suffix("/message"))
        {
            let v: Value = serde_json::from_slice(&m.payload).unwrap();
            assert_eq!(v["account"], account, "{v}");
            texts.insert(account.to_owned(), v["text"].as_str().unwrap().to_owned());
        }
    }
    assert_eq!(texts["home"], "dinner?");
    assert_eq!(texts["office"], "meeting moved");

    // A send on the office's topic is sent by the office's WeChat only, and so is a notify.
    let send = json!({"to": "Mom", "text": "running late", "request_id": "r-office"});
    w.publish(
        "wechat/office/send",
        false,
        serde_json::to_vec(&send).unwrap(),
    )
    .await;
    let result = w
        .json_on("wechat/office/send/result", |v| {
            v["request_id"] == "r-office"
        })
        .await;
    assert_eq!(result["ok"], true, "{result}");
    w.publish("wechat/home/notify/Mom", false, b"on my way".to_vec())
        .await;
    let sent = home.fake.wait_sent(1, WAIT).await;
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert_eq!(
        (sent[0].to.as_str(), sent[0].content.as_str()),
        (home_mom.as_str(), "on my way")
    );
    let sent = office.fake.sent();
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert_eq!(
        (sent[0].to.as_str(), sent[0].content.as_str()),
        (office_mom.as_str(), "running late")
    );

    // A command over the office's send.max_bytes is refused, and counted under its account.
    let mut huge = br#"{"to":"Mom","request_id":"r-huge","text":""#.to_vec();
    huge.extend(std::iter::repeat_n(b'x', 70_000));
    huge.extend(br#""}"#);
    w.publish("wechat/office/send", false, huge).await;
    let result = w
        .json_on("wechat/office/send/result", |v| {
            v["error"]["code"] == "invalid_command"
        })
        .await;
    assert_eq!(result["ok"], false, "{result}");
    let metrics = reqwest::get(format!("http://127.0.0.1:{http_port}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let refused: Vec<&str> = metrics
        .lines()
        .filter(|l| l.starts_with("wxbridge_mqtt_refused_total{"))
        .collect();
    assert!(
        refused.iter().any(|l| l.contains(r#"account="office""#)
            && l.contains(r#"reason="too_large""#)
            && l.ends_with(" 1")),
        "{refused:?}"
    );
    assert!(
        !refused.iter().any(|l| l.contains(r#"account="home""#)),
        "{refused:?}"
    );

    // A clean stop: every account and the process say `offline`.
    assert_eq!(bridge.stop().await, 0);
    assert_everything_offline(broker.port).await;
}
