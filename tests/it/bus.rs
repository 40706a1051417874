//! The bridge on real buses, end to end: the `wxbridge` binary with mosquitto, nats-server
//! (JetStream on) and a webhook receiver, WeChat being the fake.
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::http::HeaderMap;
use bytes::Bytes;
use futures_util::StreamExt;
use serde_json::{json, Value};
use wxbridge_fake::Msg;

use crate::brokers::{self, Broker};
use crate::schema::assert_valid;
use crate::support::{Bridge, World, WAIT};
use crate::watch::Watcher;

const SECRET: &str = "s3cret-for-tests";

/// A webhook receiver: records every POST; answers `{"reply":"pong"}` to a `ping` and
/// `{"reply":"ping"}` to a `start`.
#[derive(Clone, Default)]
pub struct Receiver {
    got: Arc<Mutex<Vec<(HeaderMap, Bytes)>>>,
}

impl Receiver {
    pub async fn start() -> (Receiver, String) {
        let r = Receiver::default();
        let app = axum::Router::new()
            .route("/hook", axum::routing::post(hook))
            .with_state(r.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        (r, url)
    }

    fn events(&self) -> Vec<Value> {
        let got = self.got.lock().unwrap();
        got.iter()
            .map(|(_, body)| serde_json::from_slice(body).unwrap())
            .collect()
    }

    pub async fn wait_for(&self, what: &str, pred: impl Fn(&Value) -> bool) -> (HeaderMap, Bytes) {
        tokio::time::timeout(WAIT, async {
            loop {
                let found = {
                    let got = self.got.lock().unwrap();
                    got.iter()
                        .find(|(_, b)| pred(&serde_json::from_slice(b).unwrap()))
                        .cloned()
                };
                if let Some(hit) = found {
                    return hit;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
        .await
        .unwrap_or_else(|_| panic!("the webhook never got {what}"))
    }

    /// The first recorded POST whose event says `text`, waiting for it.
    pub async fn with_text(&self, text: &str) -> (HeaderMap, Value) {
        let (headers, body) = self.wait_for(text, |v| v["text"] == text).await;
        (headers, serde_json::from_slice(&body).unwrap())
    }
}

async fn hook(State(r): State<Receiver>, headers: HeaderMap, body: Bytes) -> String {
    let v: Value = serde_json::from_slice(&body).unwrap_or_default();
    r.got.lock().unwrap().push((headers, body));
    match v["text"].as_str() {
        Some("ping") => json!({"reply": "pong"}).to_string(),
        Some("start") => json!({"reply": "ping"}).to_string(),
        _ => String::new(),
    }
}

fn bus_config(mqtt: &Broker, nats: &Broker, hook: &str) -> String {
    format!(
        "mqtt:\n  url: mqtt://127.0.0.1:{}\n  client_id: wxbridge-test\n\
         nats:\n  url: nats://127.0.0.1:{}\n  jetstream: true\n\
         webhooks:\n  - url: {hook}\n    secret: {SECRET}\n",
        mqtt.port, nats.port
    )
}

/// The JSON of the next publish on `topic`.
async fn next_json(w: &mut Watcher, topic: &str) -> Value {
    let m = w.next_on(topic).await;
    let v: Value = serde_json::from_slice(&m.payload).unwrap();
    assert_valid(&v);
    v
}

/// The first non-empty payload on each of `topics` (an empty retained one means "cleared"),
/// in the order of `topics`.
async fn non_empty(w: &mut Watcher, topics: &[&str]) -> Vec<Bytes> {
    let mut got: Vec<Option<Bytes>> = vec![None; topics.len()];
    while got.iter().any(Option::is_none) {
        let m = w.next().await;
        if let Some(i) = topics.iter().position(|t| *t == m.topic) {
            if !m.payload.is_empty() && got[i].is_none() {
                got[i] = Some(m.payload);
            }
        }
    }
    got.into_iter().flatten().collect()
}

/// Waits for the retained `/state` to say `state`.
async fn until_state(w: &mut Watcher, state: &str) {
    loop {
        let m = w.next_on("wechat/test/state").await;
        let v: Value = serde_json::from_slice(&m.payload).unwrap();
        if v["state"] == state {
            return;
        }
    }
}

#[tokio::test]
async fn an_inbound_message_reaches_mqtt_nats_jetstream_and_a_signed_webhook() {
    let world = World::new().await;
    let alice = world.fake.add_contact("Alice", "Mom");
    let (mqtt, nats) = (brokers::mosquitto(), brokers::nats_server());
    let (receiver, url) = Receiver::start().await;
    let config = world.config(&bus_config(&mqtt, &nats, &url));
    let mut w = Watcher::new(mqtt.port, "observer", "wechat/test/#").await;
    let nc = async_nats::connect(format!("127.0.0.1:{}", nats.port))
        .await
        .unwrap();
    let mut core = nc.subscribe("wechat.test.message").await.unwrap();

    let _bridge = Bridge::spawn(&config, &["run"]);
    // While a scan is awaited: the retained QR topics, the PNG decodable.
    let status = w.next_on("wechat/test/status").await;
    assert_eq!(
        &status.payload[..],
        b"online",
        "the process is up even before login"
    );
    let qr = non_empty(&mut w, &["wechat/test/qr", "wechat/test/qr/png"]).await;
    let png = image::load_from_memory(&qr[1]).expect("qr/png is a PNG");
    assert!(png.width() > 50);
    let qr_json: Value = serde_json::from_slice(&qr[0]).unwrap();
    assert!(qr_json["url"]
        .as_str()
        .unwrap()
        .starts_with("https://login.weixin.qq.com/l/"));
    assert!(qr_json["png_base64"].is_string() && qr_json["expires_at"].is_string());
    world.scan_and_confirm().await;
    // Online, and the QR cleared (it is withdrawn before the state changes; the two topics are
    // published by separate tasks, so either may come first).
    let (mut online, mut cleared) = (false, false);
    while !(online && cleared) {
        let m = w.next().await;
        match m.topic.as_str() {
            "wechat/test/state" => {
                let v: Value = serde_json::from_slice(&m.payload).unwrap();
                online |= v["state"] == "online";
            }
            "wechat/test/qr/png" => {
                assert!(m.payload.is_empty(), "no new QR once scanned");
                cleared = true;
            }
            _ => {}
        }
    }
    let mut late = Watcher::new(mqtt.port, "late", "wechat/test/+").await;
    let retained = late.drain(Duration::from_millis(500)).await;
    let topics: Vec<&str> = retained.iter().map(|m| m.topic.as_str()).collect();
    assert!(topics.contains(&"wechat/test/state") && topics.contains(&"wechat/test/status"));
    assert!(
        !topics.contains(&"wechat/test/qr"),
        "no retained QR after login: {topics:?}"
    );

    let queued = world.fake.queue(Msg::text(&alice, "door bell rang"));
    let on_mqtt = next_json(&mut w, "wechat/test/message").await;
    assert_eq!(on_mqtt["id"], queued.msg_id.as_str());
    assert_eq!(on_mqtt["from"]["remark"], "Mom");

    let on_nats = tokio::time::timeout(WAIT, core.next())
        .await
        .unwrap()
        .unwrap();
    let v: Value = serde_json::from_slice(&on_nats.payload).unwrap();
    assert_valid(&v);
    assert_eq!(v["id"], queued.msg_id.as_str());

    let js = async_nats::jetstream::new(nc.clone());
    let mut stream = js
        .get_stream("WECHAT")
        .await
        .expect("the stream was created");
    let info = stream.info().await.unwrap();
    assert_eq!(
        info.config.subjects,
        ["wechat.test.message", "wechat.test.event"],
        "the stream never captures .send"
    );
    let consumer: async_nats::jetstream::consumer::PullConsumer = stream
        .create_consumer(async_nats::jetstream::consumer::pull::Config::default())
        .await
        .unwrap();
    let mut batch = consumer.fetch().max_messages(10).messages().await.unwrap();
    let mut stored = Vec::new();
    while let Some(Ok(m)) = batch.next().await {
        assert!(m
            .headers
            .as_ref()
            .and_then(|h| h.get("Nats-Msg-Id"))
            .is_some());
        stored.push(serde_json::from_slice::<Value>(&m.payload).unwrap());
    }
    assert!(
        stored.iter().any(|v| v["id"] == queued.msg_id.as_str()),
        "{stored:?}"
    );

    let (headers, body) = receiver
        .wait_for("the message", |v| v["id"] == queued.msg_id.as_str())
        .await;
    assert_eq!(headers["x-wxbridge-event"], "message");
    assert_eq!(
        headers["webhook-id"],
        format!("test:{}", queued.msg_id).as_str()
    );
    let verifier = standardwebhooks::Webhook::from_bytes(SECRET.as_bytes().to_vec()).unwrap();
    verifier
        .verify(&body, &headers)
        .expect("the signature verifies");
    for e in receiver.events() {
        assert_valid(&e);
    }
}

#[tokio::test]
async fn commands_over_mqtt_and_nats_requests_reach_wechat_with_their_results() {
    let world = World::new().await;
    let alice = world.fake.add_contact("Alice", "Mom");
    let (mqtt, nats) = (brokers::mosquitto(), brokers::nats_server());
    let (_receiver, url) = Receiver::start().await;
    let config = world.config(&bus_config(&mqtt, &nats, &url));
    let mut w = Watcher::new(mqtt.port, "observer", "wechat/test/#").await;
    let _bridge = Bridge::spawn(&config, &["run"]);
    world.scan_and_confirm().await;
    until_state(&mut w, "online").await;

    w.publish(
        "wechat/test/send",
        false,
        br#"{"to":"Mom","text":"via mqtt","request_id":"m-1"}"#.to_vec(),
    )
    .await;
    let result = next_json(&mut w, "wechat/test/send/result").await;
    assert_eq!(result["ok"], true, "{result}");
    assert_eq!(result["request_id"], "m-1");

    let nc = async_nats::connect(format!("127.0.0.1:{}", nats.port))
        .await
        .unwrap();
    let reply = nc
        .request(
            "wechat.test.send",
            Bytes::from_static(br#"{"to":"Mom","text":"via nats","request_id":"n-1"}"#),
        )
        .await
        .expect("the request is answered");
    let reply: Value = serde_json::from_slice(&reply.payload).unwrap();
    assert_valid(&reply);
    assert_eq!(reply["ok"], true, "{reply}");
    assert_eq!(reply["request_id"], "n-1");
    let also = next_json(&mut w, "wechat/test/send/result").await;
    assert_eq!(
        also["request_id"], "n-1",
        "the result is also published on MQTT"
    );

    // Over send.max_bytes (64 KiB) but under NATS's 1 MB: refused unread, its request_id kept.
    let big = format!(
        r#"{{"request_id":"n-big","to":"Mom","text":"{}"}}"#,
        "x".repeat(100_000)
    );
    let reply = nc
        .request("wechat.test.send", Bytes::from(big))
        .await
        .expect("the oversized request is answered");
    let reply: Value = serde_json::from_slice(&reply.payload).unwrap();
    assert_valid(&reply);
    assert_eq!(reply["error"]["code"], "invalid_command", "{reply}");
    assert_eq!(reply["request_id"], "n-big", "{reply}");
    let also = next_json(&mut w, "wechat/test/send/result").await;
    assert_eq!(also["request_id"], "n-big");

    let sent = world.fake.wait_sent(2, WAIT).await;
    assert_eq!(sent.len(), 2);
    assert!(sent.iter().all(|s| s.to == alice));
    assert_eq!(
        sent.iter().map(|s| s.content.as_str()).collect::<Vec<_>>(),
        ["via mqtt", "via nats"]
    );
}

#[tokio::test]
async fn a_webhook_reply_is_sent_but_the_bridges_own_messages_are_not_answered() {
    let world = World::new().await;
    let alice = world.fake.add_contact("Alice", "");
    world.fake.echo_sent(true);
    let (receiver, url) = Receiver::start().await;
    let config = world.config(&format!("webhooks:\n  - url: {url}\n"));
    let _bridge = Bridge::spawn(&config, &["run"]);
    world.scan_and_confirm().await;

    // "start" is answered with "ping"; the echo of that "ping" comes back as origin bridge,
    // and the receiver answers every "ping" with "pong": the bridge must not send it.
    world.fake.queue(Msg::text(&alice, "start"));
    let echo = receiver
        .wait_for("the echo of the reply", |v| v["origin"] == "bridge")
        .await;
    let echo: Value = serde_json::from_slice(&echo.1).unwrap();
    assert_eq!(echo["text"], "ping");
    assert!(echo["request_id"]
        .as_str()
        .unwrap()
        .starts_with("reply:test:"));
    // A contact's "ping" afterwards is answered, after the echo (webhook deliveries go in
    // spool order): once the echo of its "pong" is back, any answer to the bridge's own
    // "ping" would have been sent already.
    let ping = world.fake.queue(Msg::text(&alice, "ping"));
    let reply_id = format!("reply:test:{}", ping.msg_id);
    receiver
        .wait_for("the echo of the pong", |v| {
            v["request_id"] == reply_id.as_str()
        })
        .await;
    let sent = world.fake.sent();
    let texts: Vec<_> = sent.iter().map(|s| s.content.as_str()).collect();
    assert_eq!(
        texts,
        ["ping", "pong"],
        "the bridge's own ping got no answer"
    );
    assert!(sent.iter().all(|s| s.to == alice));
}

#[tokio::test]
async fn a_broker_down_at_start_gets_every_event_once_it_is_up() {
    let world = World::new().await;
    let alice = world.fake.add_contact("Alice", "");
    let mut mqtt = brokers::mosquitto();
    // Subscribed before the broker goes down: the broker keeps the watcher's persistent
    // session across the restart, so it gets what the bridge publishes the moment the broker
    // is back, however fast the bridge is.
    let mut w = Watcher::new(mqtt.port, "observer", "wechat/test/message").await;
    mqtt.stop();
    let config = world.config(&format!(
        "mqtt:\n  url: mqtt://127.0.0.1:{}\n  client_id: wxbridge-test\n",
        mqtt.port
    ));
    let _bridge = Bridge::spawn(&config, &["run"]);
    world.scan_and_confirm().await;
    let ids: Vec<String> = (0..5)
        .map(|i| world.fake.queue(Msg::text(&alice, &format!("m{i}"))).msg_id)
        .collect();
    tokio::time::sleep(Duration::from_millis(500)).await;
    mqtt.start();
    for id in &ids {
        let v = next_json(&mut w, "wechat/test/message").await;
        assert_eq!(&v["id"], id.as_str(), "in spool order");
    }
}

#[tokio::test]
async fn malformed_commands_on_mqtt_each_get_their_error_and_the_link_stays_up() {
    let world = World::new().await;
    world.fake.add_contact("Alice", "Mom");
    let mqtt = brokers::mosquitto();
    let config = world.config(&format!(
        "mqtt:\n  url: mqtt://127.0.0.1:{}\n  client_id: wxbridge-test\n",
        mqtt.port
    ));
    let mut w = Watcher::new(mqtt.port, "observer", "wechat/test/#").await;
    let _bridge = Bridge::spawn(&config, &["run"]);
    world.scan_and_confirm().await;
    until_state(&mut w, "online").await;

    let ten_mb = {
        let mut v = br#"{"to":"Mom","text":""#.to_vec();
        v.extend(std::iter::repeat_n(b'x', 10 * 1024 * 1024));
        v.extend_from_slice(br#""}"#);
        v
    };
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (b"not json".to_vec(), "invalid_json"),
        (vec![0xc3, 0x28, 0xff], "invalid_json"),
        (br#"{"to":"Mom"}"#.to_vec(), "invalid_command"),
        (
            br#"{"to":"Mom","text":"x","colour":"blue"}"#.to_vec(),
            "invalid_command",
        ),
        (
            br#"{"to":"Nobody","text":"x"}"#.to_vec(),
            "unknown_recipient",
        ),
        (ten_mb, "invalid_command"),
    ];
    for (payload, code) in cases {
        w.publish("wechat/test/send", false, payload).await;
        let r = next_json(&mut w, "wechat/test/send/result").await;
        assert_eq!(r["error"]["code"], code, "{r}");
    }
    w.publish(
        "wechat/test/send",
        false,
        br#"{"to":"Mom","text":"still here","request_id":"ok"}"#.to_vec(),
    )
    .await;
    let r = next_json(&mut w, "wechat/test/send/result").await;
    assert_eq!(r["ok"], true, "{r}");
    let flaps = w
        .drain(Duration::from_millis(300))
        .await
        .into_iter()
        .filter(|m| m.topic == "wechat/test/status" && &m.payload[..] == b"offline")
        .count();
    assert_eq!(flaps, 0, "the bridge's MQTT connection never dropped");
    assert_eq!(world.fake.sent().len(), 1);
}

#[tokio::test]
async fn killed_between_a_sync_and_its_commit_then_restarted_delivers_every_message_once() {
    let world = World::new().await;
    let alice = world.fake.add_contact("Alice", "");
    let config = world.config("");
    // A first run logs in and stores the session.
    let bridge = world.run_logged_in().await;
    assert_eq!(bridge.stop().await, 0);

    let crashing = Bridge::spawn_with_env(
        &config,
        &["run"],
        &[("WXBRIDGE_FAILPOINT", "after_sync_before_commit")],
    );
    let ids: Vec<String> = (0..5)
        .map(|i| world.fake.queue(Msg::text(&alice, &format!("m{i}"))).msg_id)
        .collect();
    let (code, stderr) = crashing.exit().await;
    assert_ne!(code, 0, "the failpoint aborted the process: {stderr}");
    assert!(stderr.contains("failpoint after_sync_before_commit"));

    let mut bridge = Bridge::spawn(&config, &["run"]);
    for id in &ids {
        let m = bridge.next_message().await;
        assert_eq!(&m["id"], id.as_str());
    }
    let more = bridge.drain_for(Duration::from_secs(1)).await;
    assert!(
        more.iter().all(|v| v["kind"] != "message"),
        "none twice: {more:?}"
    );
}

#[tokio::test]
async fn a_17_mb_command_is_answered_with_its_request_id_and_a_17_mb_retained_birth_never_drops_the_link(
) {
    const HUGE: usize = 17 * 1000 * 1000;
    let world = World::new().await;
    let mqtt = brokers::mosquitto();
    let config = world.config(&format!(
        "mqtt:\n  url: mqtt://127.0.0.1:{}\n  client_id: wxbridge-test\n",
        mqtt.port
    ));
    let mut w = Watcher::new(mqtt.port, "observer", "wechat/test/#").await;
    // Retained where the bridge subscribes at every connect; past its own 16 MiB packet limit.
    w.publish("homeassistant/status", true, vec![b'x'; HUGE])
        .await;
    // Twice: the second run meets the retained publish again, as a restart would.
    for run in 0..2 {
        let bridge = Bridge::spawn(&config, &["run"]);
        // Bounded: a wedged link reconnects for ever, and each reconnect publishes again.
        tokio::time::timeout(WAIT, async {
            while &w.next_on("wechat/test/status").await.payload[..] != b"online" {}
        })
        .await
        .expect("the bridge is online");
        let mut huge = format!(r#"{{"request_id":"huge-{run}","to":"Mom","text":""#).into_bytes();
        huge.resize(HUGE, b'x');
        huge.extend_from_slice(br#""}"#);
        w.publish("wechat/test/send", false, huge).await;
        let r = tokio::time::timeout(WAIT, next_json(&mut w, "wechat/test/send/result"))
            .await
            .expect("the huge command is answered");
        assert_eq!(r["error"]["code"], "invalid_command", "{r}");
        assert_eq!(r["request_id"], format!("huge-{run}"), "{r}");
        assert!(
            r["error"]["message"]
                .as_str()
                .unwrap()
                .contains("send.max_bytes"),
            "{r}"
        );
        let after = format!(r#"{{"request_id":"after-{run}","text":"x"}}"#).into_bytes();
        w.publish("wechat/test/send", false, after).await;
        let r = next_json(&mut w, "wechat/test/send/result").await;
        assert_eq!(r["request_id"], format!("after-{run}"), "{r}");
        let stderr = bridge.stderr();
        assert!(stderr.contains("oversized mqtt publish"), "{stderr}");
        assert!(!stderr.contains("mqtt connection lost"), "{stderr}");
        assert_eq!(bridge.stop().await, 0);
    }
}
