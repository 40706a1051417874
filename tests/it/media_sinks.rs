//! Media on the buses, against a real mosquitto and a real `nats-server -js`: the bytes of the
//! files message events refer to on `wechat/<account>/media/<sha256>` before their events
//! (`mqtt.media`), in the JetStream object store before the event (NATS), Home Assistant's
//! last image, and events whose file the store no longer has. The sinks are driven by hand,
//! as `run_delivery` would, with files put into a real media store first; one test runs the
//! real binary end to end, from the fake's image to both buses.
use std::time::Duration;

use async_nats::jetstream;
use futures_util::StreamExt;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use tokio::io::AsyncReadExt;
use tokio_util::task::TaskTracker;
use wxbridge::config::{HomeAssistantConfig, MqttConfig, NatsConfig};
use wxbridge::event::SessionState;
use wxbridge::media::{MediaStore, Stored};
use wxbridge::sinks::mqtt::MqttSink;
use wxbridge::sinks::nats::{self, NatsSink};
use wxbridge::sinks::Control;
use wxbridge::spool::{Entry, Kind};

use crate::brokers;
use crate::control::{control, deliver_all, entry, Side};
use crate::mqtt::{until_connected, Gate};
use crate::watch::{Msg, Watcher};

const WAIT: Duration = Duration::from_secs(20);

/// A control for account `home` (its media store in a temporary state dir) and that store.
fn setup() -> (Control, Side, MediaStore) {
    let (control, side) = control(SessionState::Online, Duration::from_millis(500));
    let store = control.media.store.clone();
    (control, side, store)
}

pub async fn put(store: &MediaStore, bytes: &[u8]) -> Stored {
    store.ingest(bytes, 1 << 30).await.unwrap()
}

/// Bytes that sniff as a JPEG, distinct per `seed`.
pub fn jpeg(seed: u8, len: usize) -> Vec<u8> {
    let mut b = vec![
        0xff, 0xd8, 0xff, 0xe0, 0x00, 0x10, b'J', b'F', b'I', b'F', 0x00,
    ];
    b.extend((0..len).map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed)));
    b.extend([0xff, 0xd9]);
    b
}

fn hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A message event of `type` from `origin` naming `sha256` under `media` (or `file`).
pub fn media_entry(seq: u64, id: &str, msg_type: &str, origin: &str, sha256: &str) -> Entry {
    let media = json!({"msg_id": id, "kind": msg_type, "sha256": sha256, "mime": "image/jpeg",
                       "size": 1});
    let mut event = json!({"kind": "message", "id": id, "account": "home", "type": msg_type,
                           "origin": origin, "text": null});
    if msg_type == "file" {
        event["file"] = json!({"name": "report.bin", "size": 1, "media_id": "m", "sha256": sha256});
    } else {
        event["media"] = media;
    }
    Entry {
        payload: serde_json::to_vec(&event).unwrap(),
        ..entry(seq, Kind::Message, id)
    }
}

fn start_mqtt(port: u16, media_on: bool, control: Control) -> MqttSink {
    let config = MqttConfig {
        url: format!("mqtt://127.0.0.1:{port}").parse().unwrap(),
        client_id: "wxbridge-home".to_owned(),
        media: media_on,
        ..MqttConfig::default()
    };
    crate::mqtt::start_link(&config, &HomeAssistantConfig::default(), control)
}

/// The messages on `wechat/home/message` and `wechat/home/media/+`, in arrival order, until
/// `events` events arrived.
async fn until_events(w: &mut Watcher, events: usize) -> Vec<Msg> {
    let mut got = Vec::new();
    let mut seen = 0;
    while seen < events {
        let m = w.next().await;
        if m.topic == "wechat/home/message" {
            seen += 1;
        }
        if m.topic == "wechat/home/message" || m.topic.starts_with("wechat/home/media/") {
            got.push(m);
        }
    }
    got
}

fn event_id(m: &Msg) -> String {
    let v: Value = serde_json::from_slice(&m.payload).unwrap();
    v["id"].as_str().unwrap().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mqtt_media_bytes_arrive_before_their_event_and_match_the_sha256() {
    let broker = brokers::mosquitto();
    let (control, _side, store) = setup();
    let photo = jpeg(1, 300_000);
    // Larger than the 16 MiB an event may be: media packets have MQTT's own limit.
    let big: Vec<u8> = (0..17 * 1024 * 1024).map(|i| (i % 251) as u8).collect();
    let photo_sha = put(&store, &photo).await.sha256;
    let big_sha = put(&store, &big).await.sha256;
    assert_eq!(photo_sha, hex(&photo));

    let mut w = Watcher::new(broker.port, "sub", "wechat/home/#").await;
    let mut sink = start_mqtt(broker.port, true, control);
    let batch = [
        entry(1, Kind::Message, "100"),
        media_entry(2, "101", "image", "contact", &photo_sha),
        entry(3, Kind::Message, "102"),
        media_entry(4, "103", "file", "phone", &big_sha),
        entry(5, Kind::Message, "104"),
    ];
    deliver_all(&mut sink, &batch, WAIT).await;

    let got = until_events(&mut w, 5).await;
    let order: Vec<String> = got
        .iter()
        .map(|m| match m.topic.strip_prefix("wechat/home/media/") {
            Some(sha) => format!("media:{sha}"),
            None => event_id(m),
        })
        .collect();
    assert_eq!(
        order,
        [
            "100".to_owned(),
            format!("media:{photo_sha}"),
            "101".to_owned(),
            "102".to_owned(),
            format!("media:{big_sha}"),
            "103".to_owned(),
            "104".to_owned(),
        ],
        "each file right before its event, the rest in spool order"
    );
    for m in got.iter().filter(|m| m.topic.contains("/media/")) {
        let sha = m.topic.rsplit('/').next().unwrap();
        assert_eq!(hex(&m.payload), sha, "the bytes are the file");
        assert!(!m.retain);
    }
    assert_eq!(got[1].payload.len(), photo.len());
    assert_eq!(got[4].payload.len(), big.len());

    // Not retained: a late subscriber finds no file.
    let mut late = Watcher::new(broker.port, "late", "wechat/home/media/#").await;
    assert!(late.drain(Duration::from_millis(500)).await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_event_waits_for_the_brokers_puback_of_its_file() {
    let broker = brokers::mosquitto();
    let gate = Gate::new(broker.port).await;
    let (control, _side, store) = setup();
    let photo = put(&store, &jpeg(10, 2000)).await;
    let mut sink = start_mqtt(gate.port, true, control);
    until_connected(&sink).await;
    let mut w = Watcher::new(broker.port, "sub", "wechat/home/#").await;
    w.drain(Duration::from_millis(300)).await;

    gate.hold(true);
    let batch = [media_entry(1, "600", "image", "contact", &photo.sha256)];
    let delivery = tokio::spawn(async move {
        deliver_all(&mut sink, &batch, WAIT).await;
        sink
    });
    let media_topic = format!("wechat/home/media/{}", photo.sha256);
    w.next_on(&media_topic).await;
    // The broker has the file, but its PUBACK is held: the event must wait for it.
    let meanwhile = w.drain(Duration::from_millis(700)).await;
    assert!(
        meanwhile.iter().all(|m| m.topic != "wechat/home/message"),
        "the event went out before the file was confirmed"
    );
    gate.hold(false);
    let event = w.next_on("wechat/home/message").await;
    assert_eq!(event_id(&event), "600");
    tokio::time::timeout(WAIT, delivery).await.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_whose_file_is_gone_from_the_store_is_published_without_it() {
    let broker = brokers::mosquitto();
    let (control, _side, store) = setup();
    let kept = put(&store, &jpeg(2, 1000)).await;
    let gone = put(&store, &jpeg(3, 1000)).await;
    // Evicted behind the store's back: the store has no such file any more.
    std::fs::remove_file(&gone.path).unwrap();
    let unknown = "0".repeat(64);

    let mut w = Watcher::new(broker.port, "sub", "wechat/home/#").await;
    let mut sink = start_mqtt(broker.port, true, control);
    let batch = [
        media_entry(1, "200", "image", "contact", &gone.sha256),
        media_entry(2, "201", "image", "contact", &unknown),
        media_entry(3, "202", "image", "contact", &kept.sha256),
    ];
    deliver_all(&mut sink, &batch, WAIT).await;
    let got = until_events(&mut w, 3).await;
    let topics: Vec<&str> = got.iter().map(|m| m.topic.as_str()).collect();
    let kept_topic = format!("wechat/home/media/{}", kept.sha256);
    assert_eq!(
        topics,
        [
            "wechat/home/message",
            "wechat/home/message",
            kept_topic.as_str(),
            "wechat/home/message"
        ]
    );
    assert_eq!(event_id(&got[0]), "200");
    assert_eq!(event_id(&got[3]), "202");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn home_assistant_shows_the_last_inbound_image_without_mqtt_media() {
    let broker = brokers::mosquitto();
    let (control, _side, store) = setup();
    let first = jpeg(4, 5000);
    let second = jpeg(5, 6000);
    let mine = jpeg(6, 7000);
    let first_sha = put(&store, &first).await.sha256;
    let second_sha = put(&store, &second).await.sha256;
    let mine_sha = put(&store, &mine).await.sha256;
    let image_topic = "wechat/home/homeassistant/last_image";

    let mut w = Watcher::new(broker.port, "ha", "#").await;
    let mut sink = start_mqtt(broker.port, false, control);
    let config = w
        .next_on("homeassistant/image/wxbridge_home/last_image/config")
        .await;
    let config: Value = serde_json::from_slice(&config.payload).unwrap();
    assert_eq!(config["image_topic"], image_topic);

    deliver_all(
        &mut sink,
        &[media_entry(1, "300", "image", "contact", &first_sha)],
        WAIT,
    )
    .await;
    // The image goes before its event, so an automation on the event finds it shown.
    let mut order = Vec::new();
    while order.len() < 2 {
        let m = w.next().await;
        if m.topic == image_topic || m.topic == "wechat/home/message" {
            order.push(m);
        }
    }
    assert_eq!(order[0].topic, image_topic);
    assert_eq!(&order[0].payload[..], &first[..]);
    assert_eq!(order[1].topic, "wechat/home/message");

    // A file, an image the bridge itself sent, then another inbound image: only the latter
    // replaces it. Nothing goes to the media topics (mqtt.media is off).
    let batch = [
        media_entry(2, "301", "file", "contact", &first_sha),
        media_entry(3, "302", "image", "bridge", &mine_sha),
        media_entry(4, "303", "image", "phone", &second_sha),
    ];
    deliver_all(&mut sink, &batch, WAIT).await;
    let mut images = Vec::new();
    let mut events = 0;
    while events < 3 {
        let m = w.next().await;
        assert!(!m.topic.starts_with("wechat/home/media/"), "{}", m.topic);
        if m.topic == image_topic {
            images.push(m.payload.clone());
        }
        events += usize::from(m.topic == "wechat/home/message");
    }
    assert_eq!(images, [bytes::Bytes::from(second.clone())]);

    // Retained: a Home Assistant that starts now shows it.
    let mut late = Watcher::new(broker.port, "late-ha", image_topic).await;
    let retained = late.next_on(image_topic).await;
    assert!(retained.retain);
    assert_eq!(&retained.payload[..], &second[..]);
}

async fn start_nats(port: u16, jetstream: bool, control: Control) -> NatsSink {
    let config = NatsConfig {
        url: format!("nats://127.0.0.1:{port}").parse().unwrap(),
        jetstream,
        ..NatsConfig::default()
    };
    nats::prepare(&config, &[crate::control::account(&control.account)])
        .unwrap()
        .start(vec![control], &TaskTracker::new())
        .await
        .unwrap()
        .remove(0)
        .sink
}

async fn read_object(bucket: &jetstream::object_store::ObjectStore, name: &str) -> Vec<u8> {
    let mut object = bucket.get(name).await.expect("the object is there");
    let mut bytes = Vec::new();
    object.read_to_end(&mut bytes).await.unwrap();
    bytes
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_jetstream_object_store_holds_each_file_before_its_event() {
    let broker = brokers::nats_server();
    let (control, _side, store) = setup();
    let photo = jpeg(7, 400_000);
    let photo_sha = put(&store, &photo).await.sha256;
    let gone = put(&store, &jpeg(8, 100)).await;
    std::fs::remove_file(&gone.path).unwrap();

    let client = async_nats::connect(format!("127.0.0.1:{}", broker.port))
        .await
        .unwrap();
    let js = jetstream::new(client.clone());
    let mut events = client.subscribe("wechat.home.message").await.unwrap();
    client.flush().await.unwrap();
    let mut sink = start_nats(broker.port, true, control).await;

    let batch = [
        media_entry(1, "400", "image", "contact", &photo_sha),
        media_entry(2, "401", "image", "contact", &gone.sha256),
    ];
    let deliver = deliver_all(&mut sink, &batch, WAIT);
    let check = async {
        // As soon as the event is out, the object is there, whole.
        let first = tokio::time::timeout(WAIT, events.next())
            .await
            .unwrap()
            .unwrap();
        let v: Value = serde_json::from_slice(&first.payload).unwrap();
        assert_eq!(v["id"], "400");
        let bucket = js.get_object_store("wechat-media").await.expect("created");
        let bytes = read_object(&bucket, &photo_sha).await;
        assert_eq!(hex(&bytes), photo_sha);
        let info = bucket.info(&photo_sha).await.unwrap();
        assert_eq!(
            info.metadata.get("mime").map(String::as_str),
            Some("image/jpeg")
        );
        // The event whose file is gone still goes.
        let second = tokio::time::timeout(WAIT, events.next())
            .await
            .unwrap()
            .unwrap();
        let v: Value = serde_json::from_slice(&second.payload).unwrap();
        assert_eq!(v["id"], "401");
        assert!(bucket.info(&gone.sha256).await.is_err());
        info.nuid
    };
    let ((), nuid) = tokio::join!(deliver, check);

    // Delivered again (a crash replay, or a forward of the same file): not put again.
    deliver_all(&mut sink, &batch[..1], WAIT).await;
    let bucket = js.get_object_store("wechat-media").await.unwrap();
    assert_eq!(bucket.info(&photo_sha).await.unwrap().nuid, nuid);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn core_nats_carries_no_media() {
    let broker = brokers::nats_server();
    let (control, _side, store) = setup();
    let photo_sha = put(&store, &jpeg(9, 1000)).await.sha256;
    let client = async_nats::connect(format!("127.0.0.1:{}", broker.port))
        .await
        .unwrap();
    let mut events = client.subscribe("wechat.home.message").await.unwrap();
    client.flush().await.unwrap();
    let mut sink = start_nats(broker.port, false, control).await;
    deliver_all(
        &mut sink,
        &[media_entry(1, "500", "image", "contact", &photo_sha)],
        WAIT,
    )
    .await;
    tokio::time::timeout(WAIT, events.next())
        .await
        .unwrap()
        .unwrap();
    let js = jetstream::new(client);
    assert!(js.get_object_store("wechat-media").await.is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_image_from_wechat_reaches_mqtt_nats_and_home_assistant_with_its_bytes() {
    let world = crate::support::World::new().await;
    let alice = world.fake.add_contact("Alice", "Mom");
    let (mqtt, nats) = (brokers::mosquitto(), brokers::nats_server());
    let config = world.config(&format!(
        "mqtt:\n  url: mqtt://127.0.0.1:{}\n  client_id: wxbridge-test\n  media: true\n\
         nats:\n  url: nats://127.0.0.1:{}\n  jetstream: true\n",
        mqtt.port, nats.port
    ));
    let mut w = Watcher::new(mqtt.port, "observer", "wechat/test/#").await;
    let nc = async_nats::connect(format!("127.0.0.1:{}", nats.port))
        .await
        .unwrap();
    let mut events = nc.subscribe("wechat.test.message").await.unwrap();
    nc.flush().await.unwrap();
    let _bridge = crate::support::Bridge::spawn(&config, &["run"]);
    world.scan_and_confirm().await;

    let msg_id = world.fake.queue(wxbridge_fake::Msg::image(&alice)).msg_id;
    let bytes = world.fake.media_bytes(&msg_id).expect("the fake has bytes");
    let sha = hex(&bytes);

    // MQTT: the bytes on the media topic, then the event naming them; HA's last image too.
    let media_topic = format!("wechat/test/media/{sha}");
    let (mut file, mut last_image) = (None, None);
    let event = loop {
        let m = w.next().await;
        if m.topic == media_topic {
            file = Some(m.payload.clone());
        } else if m.topic == "wechat/test/homeassistant/last_image" {
            last_image = Some(m.payload.clone());
        } else if m.topic == "wechat/test/message" {
            break serde_json::from_slice::<Value>(&m.payload).unwrap();
        }
    };
    assert_eq!(event["media"]["sha256"], sha.as_str(), "{event}");
    assert_eq!(file.as_deref(), Some(&bytes[..]), "the file came first");
    assert_eq!(last_image.as_deref(), Some(&bytes[..]));

    // NATS: the object is in the store by the time the event is.
    let event = tokio::time::timeout(WAIT, events.next())
        .await
        .unwrap()
        .unwrap();
    let v: Value = serde_json::from_slice(&event.payload).unwrap();
    assert_eq!(v["media"]["sha256"], sha.as_str());
    let bucket = jetstream::new(nc)
        .get_object_store("wechat-media")
        .await
        .expect("the bucket was created");
    assert_eq!(read_object(&bucket, &sha).await, bytes);
}
