//! Receipts (DESIGN.md "Receipts"): `queued` with its position while a command waits (not
//! logged in, throttled), `echoed` when the sent message comes back in the sync (with the
//! send's MsgID or a MsgId of its own, text and media), on MQTT, NATS, a webhook and stdout;
//! a missing echo is logged and counted; every command still gets exactly one result.
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::http::StatusCode;
use bytes::Bytes;
use futures_util::StreamExt;
use serde_json::{json, Value};

use crate::brokers::{self, free_port};
use crate::schema::assert_valid;
use crate::support::{Bridge, World, WAIT};
use crate::watch::Watcher;

/// A webhook receiver that keeps every body; while `down`, it answers 503 and keeps nothing.
#[derive(Clone, Default)]
struct Hook {
    got: Arc<Mutex<Vec<Value>>>,
    down: Arc<AtomicBool>,
}

impl Hook {
    async fn start() -> (Hook, String) {
        let hook = Hook::default();
        let h = hook.clone();
        let app = axum::Router::new().route(
            "/hook",
            axum::routing::post(move |body: Bytes| async move {
                if h.down.load(Ordering::SeqCst) {
                    return StatusCode::SERVICE_UNAVAILABLE;
                }
                h.got
                    .lock()
                    .unwrap()
                    .push(serde_json::from_slice(&body).unwrap());
                StatusCode::OK
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        (hook, url)
    }

    /// Waits until the bodies received satisfy `done`; returns them all.
    async fn until(&self, what: &str, done: impl Fn(&[Value]) -> bool) -> Vec<Value> {
        tokio::time::timeout(WAIT, async {
            loop {
                let got = self.got.lock().unwrap().clone();
                if done(&got) {
                    return got;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
        .await
        .unwrap_or_else(|_| {
            panic!(
                "the webhook never got {what}; got {:#?}",
                self.got.lock().unwrap()
            )
        })
    }
}

/// The receipt of `rid` with `status` among `seen`, if any.
fn receipt<'a>(seen: &'a [Value], rid: &str, status: &str) -> Option<&'a Value> {
    seen.iter()
        .find(|v| v["kind"] == "receipt" && v["request_id"] == rid && v["status"] == status)
}

/// Has every receipt `(request_id, status)` of `want`.
fn has_all(seen: &[Value], want: &[(&str, &str)]) -> bool {
    want.iter()
        .all(|(rid, status)| receipt(seen, rid, status).is_some())
}

/// Collects JSON publishes on MQTT and NATS until `done` holds for both.
struct Buses {
    mqtt: Watcher,
    nats: async_nats::Subscriber,
    /// (topic, payload) from MQTT, in order.
    on_mqtt: Vec<(String, Value)>,
    /// Payloads on `wechat.test.send.receipt`, in order.
    on_nats: Vec<Value>,
}

impl Buses {
    fn mqtt_receipts(&self) -> Vec<Value> {
        let on = self.on_mqtt.iter();
        on.filter(|(t, _)| t == "wechat/test/send/receipt")
            .map(|(_, v)| v.clone())
            .collect()
    }

    fn mqtt_results(&self) -> Vec<Value> {
        let on = self.on_mqtt.iter();
        on.filter(|(t, _)| t == "wechat/test/send/result")
            .map(|(_, v)| v.clone())
            .collect()
    }

    /// Reads both buses until both have every receipt of `want`.
    async fn until(&mut self, want: &[(&str, &str)]) {
        let read = async {
            while !(has_all(&self.mqtt_receipts(), want) && has_all(&self.on_nats, want)) {
                tokio::select! {
                    m = self.mqtt.next() => {
                        if let Ok(v) = serde_json::from_slice::<Value>(&m.payload) {
                            if v.get("kind").is_some() {
                                assert_valid(&v);
                            }
                            self.on_mqtt.push((m.topic, v));
                        }
                    }
                    m = self.nats.next() => {
                        let v: Value = serde_json::from_slice(&m.unwrap().payload).unwrap();
                        assert_valid(&v);
                        self.on_nats.push(v);
                    }
                }
            }
        };
        if tokio::time::timeout(WAIT, read).await.is_err() {
            panic!(
                "timed out waiting for {want:?}\nMQTT: {:#?}\nNATS: {:#?}",
                self.on_mqtt, self.on_nats
            );
        }
    }

    /// Reads MQTT until `wechat/test/state` says `state`.
    async fn until_state(&mut self, state: &str) {
        loop {
            let m = self.mqtt.next().await;
            if let Ok(v) = serde_json::from_slice::<Value>(&m.payload) {
                let hit = m.topic == "wechat/test/state" && v["state"] == state;
                self.on_mqtt.push((m.topic, v));
                if hit {
                    return;
                }
            }
        }
    }
}

#[tokio::test]
async fn receipts_reach_mqtt_nats_and_a_webhook_queued_while_logged_out_then_echoed_either_way() {
    let world = World::new().await;
    world.fake.add_contact("Alice", "Mom");
    world.fake.echo_sent(true);
    let (mqtt, nats) = (brokers::mosquitto(), brokers::nats_server());
    let (hook, url) = Hook::start().await;
    let config = world.config(&format!(
        "mqtt:\n  url: mqtt://127.0.0.1:{}\n  client_id: wxbridge-receipts\n\
         nats:\n  url: nats://127.0.0.1:{}\n\
         webhooks:\n  - url: {url}\n    events: [receipt]\n",
        mqtt.port, nats.port
    ));
    let nc = async_nats::connect(format!("127.0.0.1:{}", nats.port))
        .await
        .unwrap();
    let mut buses = Buses {
        mqtt: Watcher::new(mqtt.port, "receipts", "wechat/test/#").await,
        nats: nc.subscribe("wechat.test.send.receipt").await.unwrap(),
        on_mqtt: Vec::new(),
        on_nats: Vec::new(),
    };
    let _bridge = Bridge::spawn(&config, &["run"]);
    buses.until_state("login_required").await;

    // Not logged in: both commands wait, each gets `queued` with its place in the queue.
    for rid in ["q-1", "q-2"] {
        let cmd = json!({"to": "Mom", "text": format!("text of {rid}"), "request_id": rid});
        buses
            .mqtt
            .publish("wechat/test/send", false, cmd.to_string().into_bytes())
            .await;
    }
    let queued = [("q-1", "queued"), ("q-2", "queued")];
    buses.until(&queued).await;
    let hooked = hook
        .until("the queued receipts", |got| has_all(got, &queued))
        .await;
    for seen in [buses.mqtt_receipts(), buses.on_nats.clone(), hooked] {
        assert_eq!(receipt(&seen, "q-1", "queued").unwrap()["position"], 1);
        assert_eq!(receipt(&seen, "q-2", "queued").unwrap()["position"], 2);
        assert!(seen.iter().all(|v| v["kind"] == "receipt"), "{seen:#?}");
    }
    assert!(
        buses.mqtt_results().is_empty(),
        "no result while the commands wait"
    );

    // The webhook is down while the sends go out: its receipts wait in the spool.
    hook.down.store(true, Ordering::SeqCst);
    world.scan_and_confirm().await;
    let echoed = [("q-1", "echoed"), ("q-2", "echoed")];
    buses.until(&echoed).await;

    // An echo with a MsgId of its own is recognised by chat and text.
    world.fake.echo_sent_with_new_ids(true);
    let reply = nc
        .request(
            "wechat.test.send",
            Bytes::from_static(br#"{"to":"Mom","text":"via nats","request_id":"n-1"}"#),
        )
        .await
        .expect("the request is answered");
    let n1: Value = serde_json::from_slice(&reply.payload).unwrap();
    assert_eq!(n1["ok"], true, "{n1}");
    buses.until(&[("n-1", "echoed")]).await;
    let echo = world
        .fake
        .sent()
        .iter()
        .find(|s| s.content == "via nats")
        .map(|s| s.msg_id.clone())
        .unwrap();
    assert_eq!(n1["msg_id"], echo.as_str());

    hook.down.store(false, Ordering::SeqCst);
    let all = [echoed[0], echoed[1], ("n-1", "echoed")];
    let hooked = hook
        .until("the echoed receipts after the outage", |got| {
            has_all(got, &all)
        })
        .await;
    let results = buses.mqtt_results();
    for seen in [buses.mqtt_receipts(), buses.on_nats.clone(), hooked] {
        for rid in ["q-1", "q-2"] {
            let result = results.iter().find(|r| r["request_id"] == rid).unwrap();
            assert_eq!(result["ok"], true, "{result}");
            let r = receipt(&seen, rid, "echoed").unwrap();
            assert_eq!(r["msg_id"], result["msg_id"], "{r}");
        }
        let r = receipt(&seen, "n-1", "echoed").unwrap();
        assert_eq!(
            r["msg_id"], n1["msg_id"],
            "the send's MsgID, not the echo's: {r}"
        );
        let echoes = seen.iter().filter(|v| v["status"] == "echoed").count();
        assert_eq!(echoes, 3, "one echoed receipt per send: {seen:#?}");
        assert!(
            receipt(&seen, "n-1", "queued").is_none(),
            "a command that did not wait is not queued"
        );
    }
    // The message event goes before its receipt (one spool write, in order).
    let (_, echo_event) = buses
        .on_mqtt
        .iter()
        .find(|(t, v)| t == "wechat/test/message" && v["text"] == "via nats")
        .expect("the echo's message event");
    assert_ne!(
        echo_event["id"], n1["msg_id"],
        "the echo had a MsgId of its own"
    );
    assert_eq!(echo_event["origin"], "bridge");
    buses.mqtt.drain(Duration::from_millis(500)).await;
    let mut rids: Vec<String> = buses
        .mqtt_results()
        .iter()
        .map(|r| r["request_id"].as_str().unwrap().to_owned())
        .collect();
    rids.sort();
    assert_eq!(rids, ["n-1", "q-1", "q-2"], "exactly one result each");
}

#[tokio::test]
async fn a_throttled_command_is_queued_with_its_position_and_each_gets_one_result() {
    let world = World::new().await;
    world.fake.add_contact("Alice", "Mom");
    world.fake.echo_sent(true);
    // One send every 2 s: the second and third command wait at the throttle.
    let mut bridge = Bridge::spawn_with_env(
        &world.config(""),
        &["run"],
        &[
            ("WXBRIDGE__SEND__RATE__PER_SECOND", "0.5"),
            ("WXBRIDGE__SEND__RATE__BURST", "1"),
        ],
    );
    world.scan_and_confirm().await;
    bridge.wait_state("online").await;
    for rid in ["t-1", "t-2", "t-3"] {
        let cmd = json!({"to": "Mom", "text": format!("text of {rid}"), "request_id": rid});
        bridge.send_line(cmd.to_string().as_bytes()).await;
    }
    for rid in ["t-1", "t-2", "t-3"] {
        bridge
            .seen_or_next(&format!("the echo of {rid}"), |v| {
                v["kind"] == "receipt" && v["request_id"] == rid && v["status"] == "echoed"
            })
            .await;
    }
    let seen = bridge.seen.clone();
    assert!(
        receipt(&seen, "t-1", "queued").is_none(),
        "t-1 went at once"
    );
    assert_eq!(receipt(&seen, "t-2", "queued").unwrap()["position"], 1);
    assert_eq!(receipt(&seen, "t-3", "queued").unwrap()["position"], 2);
    let queued_t2 = seen
        .iter()
        .position(|v| v["request_id"] == "t-2" && v["status"] == "queued");
    let result_t2 = seen
        .iter()
        .position(|v| v["request_id"] == "t-2" && v["kind"] == "result");
    assert!(queued_t2 < result_t2, "queued comes before the result");
    bridge.drain_for(Duration::from_millis(300)).await;
    for rid in ["t-1", "t-2", "t-3"] {
        let results = bridge
            .seen
            .iter()
            .filter(|v| v["kind"] == "result" && v["request_id"] == rid)
            .count();
        assert_eq!(results, 1, "{rid}");
        let r = bridge
            .seen
            .iter()
            .find(|v| v["kind"] == "result" && v["request_id"] == rid)
            .unwrap();
        assert_eq!(
            receipt(&bridge.seen, rid, "echoed").unwrap()["msg_id"],
            r["msg_id"]
        );
    }
    bridge.stop().await;
}

#[tokio::test]
async fn media_and_its_text_are_each_echoed_when_the_echoes_have_msg_ids_of_their_own() {
    let world = World::new().await;
    world.fake.echo_sent_with_new_ids(true);
    let mut bridge = Bridge::spawn_with_env(
        &world.config("media:\n  fetch:\n    allow_hosts: []\n"),
        &["run"],
        &[("WXBRIDGE__SEND__MAX_BYTES", "4194304")],
    );
    world.scan_and_confirm().await;
    bridge.wait_state("online").await;
    use base64::Engine as _;
    let mut jpeg = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00".to_vec();
    jpeg.resize(3000, 7);
    let cmd = json!({"to": "filehelper", "request_id": "m-1", "text": "the photo",
        "image": {"base64": base64::engine::general_purpose::STANDARD.encode(&jpeg), "name": "a.jpg"}});
    bridge.send_line(cmd.to_string().as_bytes()).await;
    let result = bridge
        .next_where("the result", |v| v["kind"] == "result")
        .await;
    assert_eq!(result["ok"], true, "{result}");
    let text_msg_id = result["text_msg_id"].clone();
    assert!(text_msg_id.is_string(), "{result}");
    bridge
        .nth("both echoed receipts", 2, |v| {
            v["kind"] == "receipt" && v["status"] == "echoed"
        })
        .await;
    let mut ids: Vec<Value> = bridge
        .seen
        .iter()
        .filter(|v| v["kind"] == "receipt" && v["request_id"] == "m-1")
        .map(|v| v["msg_id"].clone())
        .collect();
    ids.sort_by_key(|v| v.to_string());
    let mut want = vec![result["msg_id"].clone(), text_msg_id];
    want.sort_by_key(|v| v.to_string());
    assert_eq!(ids, want, "the image's and the text's MsgIDs, once each");
    let echoes: Vec<&Value> = bridge
        .seen
        .iter()
        .filter(|v| v["kind"] == "message" && v["origin"] == "bridge")
        .collect();
    assert!(
        echoes.iter().all(|e| e["id"] != result["msg_id"]),
        "the echoes had MsgIds of their own: {echoes:#?}"
    );
    bridge.stop().await;
}

#[tokio::test]
async fn a_send_whose_echo_never_comes_is_logged_and_counted_and_its_result_stands() {
    let world = World::new().await;
    world.fake.add_contact("Alice", "Mom");
    let http_port = free_port();
    let mut bridge = Bridge::spawn_with_env(
        &world.config(&format!("http:\n  listen: 127.0.0.1:{http_port}\n")),
        &["run"],
        &[("WXBRIDGE_ECHO_DEADLINE_MS", "300")],
    );
    world.scan_and_confirm().await;
    bridge.wait_state("online").await;
    bridge
        .send_line(br#"{"to":"Mom","text":"into the void","request_id":"lost-1"}"#)
        .await;
    let result = bridge.next_result().await;
    assert_eq!(result["ok"], true, "{result}");

    let url = format!("http://127.0.0.1:{http_port}/metrics");
    let counted = tokio::time::timeout(WAIT, async {
        loop {
            let page = reqwest::get(&url).await.unwrap().text().await.unwrap();
            if page
                .lines()
                .any(|l| l.trim() == r#"wxbridge_send_echo_missing_total{account="test"} 1"#)
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await;
    assert!(counted.is_ok(), "the missing echo is counted");
    let log = bridge.stderr();
    let line = log
        .lines()
        .find(|l| l.contains("echo did not come back"))
        .unwrap_or_else(|| panic!("the missing echo is logged:\n{log}"));
    assert!(line.contains("lost-1"), "{line}");
    bridge.drain_for(Duration::from_millis(300)).await;
    let about: Vec<&Value> = bridge
        .seen
        .iter()
        .filter(|v| v["request_id"] == "lost-1")
        .collect();
    assert_eq!(about.len(), 1, "one result and no receipt: {about:#?}");
    assert_eq!(about[0]["ok"], true, "the result stands");
    bridge.stop().await;
}

#[tokio::test]
async fn a_command_still_queued_after_a_restart_gets_no_second_queued_receipt() {
    let world = World::new().await;
    world.fake.add_contact("Alice", "Mom");
    let env = [("WXBRIDGE__SEND__LIMITS__PER_RECIPIENT__PER_MINUTE", "1")];
    let command = |rid: &str| {
        json!({"to": "Mom", "text": format!("text of {rid}"), "request_id": rid})
            .to_string()
            .into_bytes()
    };
    let mut bridge = Bridge::spawn_with_env(&world.config(""), &["run"], &env);
    world.scan_and_confirm().await;
    bridge.wait_state("online").await;
    bridge.send_line(&command("r-1")).await;
    // r-2 is held by Mom's minute: it waits (10 minutes' ttl) and is told so, once.
    bridge.send_line(&command("r-2")).await;
    let queued = bridge
        .seen_or_next("r-2's queued receipt", |v| {
            v["kind"] == "receipt" && v["request_id"] == "r-2" && v["status"] == "queued"
        })
        .await;
    assert_eq!(queued["position"], 1, "{queued}");
    assert_eq!(bridge.stop().await, 0);

    // Restarted (the stored session logs in again), r-2 is still held. r-3, queued behind it,
    // gets its receipt; r-2, looked at first in the same pass, does not get another.
    let mut bridge = Bridge::spawn_with_env(&world.config(""), &["run"], &env);
    bridge.wait_state("online").await;
    bridge.send_line(&command("r-3")).await;
    let queued = bridge
        .seen_or_next("r-3's queued receipt", |v| {
            v["kind"] == "receipt" && v["request_id"] == "r-3" && v["status"] == "queued"
        })
        .await;
    assert_eq!(queued["position"], 2, "{queued}");
    assert!(
        receipt(&bridge.seen, "r-2", "queued").is_none(),
        "r-2 had its queued receipt before the restart: {:?}",
        bridge.seen
    );
    bridge.stop().await;
}
