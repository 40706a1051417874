//! Home Assistant discovery against a real mosquitto: every config payload checked against
//! the keys HA's MQTT documentation requires and allows, the re-announce on HA's birth
//! message, removal of entities no longer configured, the buttons and notify entities reaching
//! the bridge, the QR image, the templates as Jinja renders them; one notify end to end through
//! the real binary to the fake WeChat; and the Node-RED example flow.
use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::time::Duration;

use serde_json::{json, Value};
use time::macros::datetime;
use wxbridge::config::{HomeAssistantConfig, MqttConfig};
use wxbridge::event::{LoginQr, SessionState};
use wxbridge::sinks::mqtt::MqttSink;
use wxbridge::sinks::{Accepted, Origin};

use crate::brokers::{self, Broker};
use crate::control::{control, Side};
use crate::support::{Bridge, World};
use crate::watch::Watcher;

const WAIT: Duration = Duration::from_secs(10);

/// What Home Assistant's documentation says one component's discovery payload requires and
/// allows. Sources, as found: the `{% configuration %}` tables of
/// <https://www.home-assistant.io/integrations/binary_sensor.mqtt/>, `sensor.mqtt/`,
/// `event.mqtt/`, `image.mqtt/`, `button.mqtt/` and `notify.mqtt/`, and the discovery section
/// of <https://www.home-assistant.io/integrations/mqtt/>. `platform` is left out everywhere:
/// "Only allowed and required in MQTT auto discovery device messages", and these are
/// single-component messages.
struct Documented {
    component: &'static str,
    /// "required: true" (or, for `image`, one of the "required: exclusive" pair).
    required: &'static [&'static str],
    /// Documented for this component on top of [`SHARED`].
    own: &'static [&'static str],
}

/// Keys every one of the six pages documents, identically: "availability: A list of MQTT
/// topics subscribed to receive availability (online/offline) updates. Must not be used
/// together with `availability_topic`", "device: Information about the device this … is a
/// part of … Only works when `unique_id` is set", "unique_id: An ID that uniquely identifies
/// this …", and so on. `origin` comes from the MQTT page: "It is recommended to add
/// information about the origin of MQTT entities by including the `origin` option".
const SHARED: &[&str] = &[
    "availability",
    "availability_mode",
    "availability_template",
    "availability_topic",
    "device",
    "enabled_by_default",
    "encoding",
    "entity_category",
    "entity_picture",
    "icon",
    "json_attributes_template",
    "json_attributes_topic",
    "name",
    "object_id",
    "origin",
    "payload_available",
    "payload_not_available",
    "unique_id",
];

const DOCUMENTED: &[Documented] = &[
    // binary_sensor.mqtt: "state_topic: The MQTT topic subscribed to receive sensor's state.
    // Valid states are `OFF` and `ON`. … required: true".
    Documented {
        component: "binary_sensor",
        required: &["state_topic"],
        own: &[
            "device_class",
            "expire_after",
            "force_update",
            "off_delay",
            "payload_off",
            "payload_on",
            "qos",
            "state_topic",
            "value_template",
        ],
    },
    // sensor.mqtt: "state_topic: The MQTT topic subscribed to receive sensor values. …
    // required: true"; "options: List of allowed sensor state value. … The sensor's
    // `device_class` must be set to `enum`."
    Documented {
        component: "sensor",
        required: &["state_topic"],
        own: &[
            "device_class",
            "expire_after",
            "force_update",
            "last_reset_value_template",
            "options",
            "qos",
            "state_class",
            "state_topic",
            "suggested_display_precision",
            "unit_of_measurement",
            "value_template",
        ],
    },
    // event.mqtt: "event_types: A list of valid `event_type` strings. required: true";
    // "state_topic: The MQTT topic subscribed to receive JSON event payloads. The JSON payload
    // should contain the `event_type` element. … required: true"; "value_template: Defines a
    // template to extract the value and render it to a valid JSON event payload."
    Documented {
        component: "event",
        required: &["event_types", "state_topic"],
        own: &[
            "device_class",
            "event_types",
            "qos",
            "state_topic",
            "value_template",
        ],
    },
    // image.mqtt: "image_topic: … This option cannot be used together with the `url_topic`
    // option. But at least one of these option is required. required: exclusive";
    // "content_type: The content type of and image data message received on `image_topic`."
    // The page documents no `qos`.
    Documented {
        component: "image",
        required: &["image_topic"],
        own: &[
            "content_type",
            "image_encoding",
            "image_topic",
            "url_template",
            "url_topic",
        ],
    },
    // button.mqtt: "command_topic: The MQTT topic to publish commands to trigger the button.
    // required: true"; "payload_press: The payload To send to trigger the button. default:
    // PRESS".
    Documented {
        component: "button",
        required: &["command_topic"],
        own: &[
            "command_template",
            "command_topic",
            "device_class",
            "payload_press",
            "qos",
            "retain",
        ],
    },
    // notify.mqtt: "command_topic: The MQTT topic to publish send message commands at." The
    // page says "required: false", but the platform's schema has
    // `vol.Required(CONF_COMMAND_TOPIC)` (homeassistant/components/mqtt/notify.py), and a notify
    // entity without one could send nothing.
    Documented {
        component: "notify",
        required: &["command_topic"],
        own: &["command_template", "command_topic", "qos", "retain"],
    },
];

/// Inside `availability`: "topic: An MQTT topic subscribed to receive availability
/// (online/offline) updates. required: true", plus `payload_available`,
/// `payload_not_available` and `value_template`.
const AVAILABILITY: &[&str] = &[
    "topic",
    "payload_available",
    "payload_not_available",
    "value_template",
];

/// Inside `device`: "At least one of identifiers or connections must be present to identify
/// the device."
const DEVICE: &[&str] = &[
    "configuration_url",
    "connections",
    "hw_version",
    "identifiers",
    "manufacturer",
    "model",
    "model_id",
    "name",
    "serial_number",
    "suggested_area",
    "sw_version",
    "via_device",
];

/// Inside `origin`: "name: The name of the application that is the origin of the discovered
/// MQTT item. (Required)", `sw_version`, `support_url`.
const ORIGIN: &[&str] = &["name", "sw_version", "support_url"];

/// Every message `type` (DESIGN.md "Inbound event").
const MESSAGE_TYPES: &[&str] = &[
    "text",
    "location",
    "image",
    "voice",
    "video",
    "emoticon",
    "friend_request",
    "card",
    "link",
    "file",
    "app",
    "system",
    "revoke",
    "other",
];

/// The entities of account `home` without notify targets: `(component, object)`.
const FIXED: &[(&str, &str)] = &[
    ("binary_sensor", "connected"),
    ("sensor", "session"),
    ("sensor", "last_message"),
    ("event", "message"),
    ("image", "login_qr"),
    ("image", "last_image"),
    ("button", "relogin"),
    ("button", "logout"),
];

/// Starts the link of account `home` with discovery as `homeassistant` says.
fn start(broker: &Broker, homeassistant: &HomeAssistantConfig) -> (MqttSink, Side) {
    let (control, side) = control(SessionState::LoginRequired, Duration::from_millis(500));
    let config = MqttConfig {
        url: format!("mqtt://127.0.0.1:{}", broker.port).parse().unwrap(),
        client_id: "wxbridge-home".to_owned(),
        ..MqttConfig::default()
    };
    (
        crate::mqtt::start_link(&config, homeassistant, control),
        side,
    )
}

fn targets(names: &[&str]) -> HomeAssistantConfig {
    HomeAssistantConfig {
        notify_targets: names.iter().map(|n| n.to_string()).collect(),
        ..HomeAssistantConfig::default()
    }
}

/// Stops a link and waits until it has said `offline` and disconnected.
async fn stop(sink: MqttSink, side: Side) {
    let stopped = sink.stopped();
    side.shutdown.cancel();
    tokio::time::timeout(WAIT, stopped)
        .await
        .expect("stopped in time");
}

/// The next non-empty config payload on each of `n` distinct `homeassistant/…/config`
/// topics, by topic; other messages are skipped.
async fn configs(w: &mut Watcher, n: usize) -> BTreeMap<String, Value> {
    let mut got = BTreeMap::new();
    while got.len() < n {
        let m = w.next().await;
        if m.topic.ends_with("/config") && !m.payload.is_empty() {
            let v: Value = serde_json::from_slice(&m.payload)
                .unwrap_or_else(|e| panic!("{} is not JSON ({e})", m.topic));
            got.entry(m.topic).or_insert(v);
        }
    }
    got
}

/// What a late subscriber to `homeassistant/#` gets retained.
async fn retained_configs(broker: &Broker, id: &str) -> BTreeMap<String, Vec<u8>> {
    let mut late = Watcher::new(broker.port, id, "homeassistant/#").await;
    late.drain(Duration::from_millis(500))
        .await
        .into_iter()
        .filter(|m| m.retain)
        .map(|m| (m.topic, m.payload.to_vec()))
        .collect()
}

/// The config of `(component, object)` of account `home`.
fn config<'a>(got: &'a BTreeMap<String, Value>, component: &str, object: &str) -> &'a Value {
    let topic = format!("homeassistant/{component}/wxbridge_home/{object}/config");
    got.get(&topic)
        .unwrap_or_else(|| panic!("no config on {topic}; got {:?}", got.keys()))
}

/// Checks one payload against [`DOCUMENTED`] and what every entity of ours shares.
fn check(topic: &str, v: &Value) -> String {
    let levels: Vec<&str> = topic.split('/').collect();
    let ["homeassistant", component, "wxbridge_home", object, "config"] = levels[..] else {
        panic!("{topic}: not <prefix>/<component>/wxbridge_home/<object>/config");
    };
    let doc = DOCUMENTED
        .iter()
        .find(|d| d.component == component)
        .unwrap_or_else(|| panic!("{topic}: no documented component {component}"));
    let payload = v
        .as_object()
        .unwrap_or_else(|| panic!("{topic}: not an object"));
    for key in doc.required {
        assert!(
            payload.contains_key(*key),
            "{topic}: required `{key}` missing"
        );
    }
    for key in payload.keys() {
        assert!(
            SHARED.contains(&key.as_str()) || doc.own.contains(&key.as_str()),
            "{topic}: `{key}` is not documented for {component}"
        );
    }
    let nested = |key: &str, allowed: &[&str]| {
        for k in v[key].as_object().unwrap().keys() {
            assert!(allowed.contains(&k.as_str()), "{topic}: `{key}.{k}`");
        }
    };

    // Availability: the process status, so relogin stays usable while logged out; the login
    // QR also needs a QR to show (see the QR test).
    assert!(!payload.contains_key("availability_topic"), "{topic}");
    let availability = v["availability"].as_array().expect("availability list");
    let expected = if object == "login_qr" { 2 } else { 1 };
    assert_eq!(availability.len(), expected, "{topic}");
    for entry in availability {
        for k in entry.as_object().unwrap().keys() {
            assert!(
                AVAILABILITY.contains(&k.as_str()),
                "{topic}: availability.{k}"
            );
        }
    }
    if expected > 1 {
        assert_eq!(v["availability_mode"], "all", "{topic}");
    }
    assert_eq!(
        availability[0],
        json!({"topic": "wechat/home/status", "payload_available": "online",
               "payload_not_available": "offline"}),
        "{topic}"
    );

    // One device per account.
    nested("device", DEVICE);
    let device = &v["device"];
    assert_eq!(device["identifiers"], json!(["wxbridge_home"]), "{topic}");
    assert_eq!(device["name"], "WeChat home", "{topic}");
    for key in ["manufacturer", "model", "sw_version"] {
        assert!(
            device[key].as_str().is_some_and(|s| !s.is_empty()),
            "{topic}: {key}"
        );
    }
    nested("origin", ORIGIN);
    assert_eq!(v["origin"]["name"], "wxbridge", "{topic}");

    assert_eq!(
        v["unique_id"],
        format!("wxbridge_home_{object}"),
        "{topic}: unique id"
    );
    assert!(v["name"].as_str().is_some_and(|n| !n.is_empty()), "{topic}");
    if payload.contains_key("options") {
        assert_eq!(
            v["device_class"], "enum",
            "{topic}: options need the enum class"
        );
    }
    v["unique_id"].as_str().unwrap().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_discovery_payload_is_what_home_assistant_documents() {
    let broker = brokers::mosquitto();
    let mut w = Watcher::new(broker.port, "ha", "homeassistant/#").await;
    let (_sink, _side) = start(&broker, &targets(&["Mom", "Family Group"]));
    let got = configs(&mut w, FIXED.len() + 2).await;

    let mut ids = HashSet::new();
    for (topic, v) in &got {
        let id = check(topic, v);
        assert!(ids.insert(id.clone()), "unique id {id} used twice");
    }
    let mut expected: BTreeSet<String> = FIXED
        .iter()
        .map(|(c, o)| format!("homeassistant/{c}/wxbridge_home/{o}/config"))
        .collect();
    expected.insert("homeassistant/notify/wxbridge_home/notify_Mom/config".into());
    expected.insert("homeassistant/notify/wxbridge_home/notify_Family_20Group/config".into());
    assert_eq!(got.keys().cloned().collect::<BTreeSet<_>>(), expected);

    let connected = config(&got, "binary_sensor", "connected");
    assert_eq!(connected["device_class"], "connectivity");
    assert_eq!(connected["state_topic"], "wechat/home/state");
    let session = config(&got, "sensor", "session");
    assert_eq!(session["state_topic"], "wechat/home/state");
    assert_eq!(
        session["options"],
        json!([
            "starting",
            "online",
            "login_required",
            "login_forbidden",
            "offline"
        ])
    );
    for (component, object) in [("sensor", "last_message"), ("event", "message")] {
        assert_eq!(
            config(&got, component, object)["state_topic"],
            "wechat/home/message"
        );
    }
    assert_eq!(
        config(&got, "event", "message")["event_types"],
        json!(MESSAGE_TYPES)
    );
    let image = config(&got, "image", "login_qr");
    assert_eq!(image["image_topic"], "wechat/home/homeassistant/login_qr");
    assert_eq!(image["content_type"], "image/png");
    let last = config(&got, "image", "last_image");
    assert_eq!(last["image_topic"], "wechat/home/homeassistant/last_image");
    assert_eq!(last["content_type"], "image/jpeg");
    assert_eq!(last["name"], "Last image");
    assert_eq!(
        config(&got, "button", "relogin")["command_topic"],
        "wechat/home/relogin"
    );
    assert_eq!(
        config(&got, "button", "logout")["command_topic"],
        "wechat/home/logout"
    );
    let mom = config(&got, "notify", "notify_Mom");
    assert_eq!(mom["name"], "Mom");
    assert_eq!(mom["command_topic"], "wechat/home/notify/Mom");
    let family = config(&got, "notify", "notify_Family_20Group");
    assert_eq!(family["name"], "Family Group");
    assert_eq!(family["command_topic"], "wechat/home/notify/Family_20Group");

    // Retained, so an HA that starts later finds them.
    let retained = retained_configs(&broker, "late").await;
    for topic in &expected {
        let payload = retained.get(topic).expect("retained");
        assert_eq!(
            &serde_json::from_slice::<Value>(payload).unwrap(),
            &got[topic]
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn home_assistant_coming_online_gets_every_config_again() {
    let broker = brokers::mosquitto();
    let mut w = Watcher::new(broker.port, "ha", "homeassistant/#").await;
    let (_sink, _side) = start(&broker, &targets(&["Mom"]));
    let first = configs(&mut w, FIXED.len() + 1).await;
    w.drain(Duration::from_millis(300)).await;

    // HA's last will: nothing to do.
    w.publish("homeassistant/status", false, b"offline".to_vec())
        .await;
    let quiet = w.drain(Duration::from_millis(500)).await;
    assert!(
        quiet.iter().all(|m| !m.topic.ends_with("/config")),
        "configs after `offline`: {quiet:?}"
    );

    // HA's birth: every config again.
    w.publish("homeassistant/status", false, b"online".to_vec())
        .await;
    let again = configs(&mut w, FIXED.len() + 1).await;
    assert_eq!(again, first);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn entities_no_longer_configured_are_removed_from_home_assistant() {
    let broker = brokers::mosquitto();
    let mut w = Watcher::new(broker.port, "ha", "homeassistant/#").await;
    let dad = "homeassistant/notify/wxbridge_home/notify_Dad/config";
    let mom = "homeassistant/notify/wxbridge_home/notify_Mom/config";

    let (sink, side) = start(&broker, &targets(&["Mom", "Dad"]));
    configs(&mut w, FIXED.len() + 2).await;
    // A QR shown on the QR entity's own image topic, retained.
    let qr_image = "wechat/home/homeassistant/login_qr";
    let mut images = Watcher::new(broker.port, "images", qr_image).await;
    side.qr.send_replace(Some(LoginQr {
        url: "https://login.weixin.qq.com/l/x==".to_owned(),
        png: b"\x89PNG not really".to_vec(),
        expires_at: datetime!(2026-11-28 16:25:01 UTC),
    }));
    assert!(!images.next_on(qr_image).await.payload.is_empty());
    stop(sink, side).await;

    // Dad is dropped from the config: his notify entity goes, Mom's stays.
    let (sink, side) = start(&broker, &targets(&["Mom"]));
    let removed = w.next_on(dad).await;
    assert!(removed.payload.is_empty(), "an empty payload removes it");
    let retained = retained_configs(&broker, "after-dad").await;
    assert!(!retained.contains_key(dad), "{:?}", retained.keys());
    assert!(retained.contains_key(mom));
    assert_eq!(retained.len(), FIXED.len() + 1, "{:?}", retained.keys());
    stop(sink, side).await;

    // Discovery turned off: the whole device goes.
    let off = HomeAssistantConfig {
        enabled: false,
        ..targets(&["Mom"])
    };
    let (_sink, _side) = start(&broker, &off);
    let mut emptied = BTreeSet::new();
    while emptied.len() < FIXED.len() + 1 {
        let m = w.next().await;
        if m.topic.ends_with("/config") && m.payload.is_empty() {
            emptied.insert(m.topic);
        }
    }
    assert!(emptied.contains(mom));
    let retained = retained_configs(&broker, "after-off").await;
    assert!(retained.is_empty(), "still retained: {:?}", retained.keys());
    // The QR entity's image went with it.
    assert!(images.next_on(qr_image).await.payload.is_empty());
    let mut late = Watcher::new(broker.port, "late-images", "wechat/home/homeassistant/#").await;
    let left = late.drain(Duration::from_millis(500)).await;
    assert!(left.is_empty(), "still retained: {left:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_buttons_and_notify_entities_reach_the_bridge() {
    let broker = brokers::mosquitto();
    let mut w = Watcher::new(broker.port, "ha", "homeassistant/#").await;
    // Retained, a logout would fire at every reconnect: it must be ignored.
    w.publish("wechat/home/logout", true, b"PRESS".to_vec())
        .await;
    let (_sink, mut side) = start(&broker, &targets(&["Mom", "妈妈"]));
    let got = configs(&mut w, FIXED.len() + 2).await;
    let stale = tokio::time::timeout(Duration::from_millis(500), side.logout.notified()).await;
    assert!(stale.is_err(), "a retained logout fired");
    w.publish("wechat/home/logout", true, Vec::new()).await;

    let press = |component: &str, object: &str| {
        config(&got, component, object)["command_topic"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    // HA publishes `payload_press` (default PRESS) to the command topic.
    let relogin = side.relogin.notified();
    w.publish(&press("button", "relogin"), false, b"PRESS".to_vec())
        .await;
    tokio::time::timeout(WAIT, relogin)
        .await
        .expect("relogin notified");
    let logout = side.logout.notified();
    w.publish(&press("button", "logout"), false, b"PRESS".to_vec())
        .await;
    tokio::time::timeout(WAIT, logout)
        .await
        .expect("logout notified");

    // notify.send_message publishes the message text to the command topic.
    let object = config(&got, "notify", "notify__e5_a6_88_e5_a6_88");
    assert_eq!(object["name"], "妈妈");
    for (object, target) in [("notify_Mom", "Mom"), ("notify__e5_a6_88_e5_a6_88", "妈妈")] {
        let text = format!("dinner at 7? ({target})");
        w.publish(&press("notify", object), false, text.clone().into_bytes())
            .await;
        let mut cmd = tokio::time::timeout(WAIT, side.commands.recv())
            .await
            .expect("a command in time")
            .unwrap();
        assert_eq!(cmd.origin, Origin::Mqtt);
        let v: Value = serde_json::from_slice(&cmd.payload).unwrap();
        assert_eq!(v, json!({"to": target, "text": text}));
        cmd.accepted
            .take()
            .unwrap()
            .send(Accepted::Queued(1))
            .unwrap();
    }

    // A target that is not configured (any more) is acked and ignored.
    w.publish("wechat/home/notify/Dad", false, b"hello?".to_vec())
        .await;
    let none = tokio::time::timeout(Duration::from_millis(500), side.commands.recv()).await;
    assert!(none.is_err(), "a command for an unknown target: {none:?}");
}

/// Home Assistant's view of the login QR entity, fed from what the broker delivers: the image
/// bytes its image topic last carried, and each availability topic's last verdict (HA starts
/// every topic at unavailable until a message arrives).
struct QrEntity {
    image_topic: String,
    image: Option<Vec<u8>>,
    /// `(topic, value_template, available)` per availability entry.
    availability: Vec<(String, Option<String>, bool)>,
    /// `availability_mode`: `all`, `any`, or (HA's default) `latest`.
    mode: String,
    /// The last verdict on any availability topic.
    latest: bool,
}

impl QrEntity {
    fn new(config: &Value) -> QrEntity {
        let availability = config["availability"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| {
                let template = a["value_template"].as_str().map(str::to_owned);
                (a["topic"].as_str().unwrap().to_owned(), template, false)
            })
            .collect();
        QrEntity {
            image_topic: config["image_topic"].as_str().unwrap().to_owned(),
            image: None,
            availability,
            mode: config["availability_mode"]
                .as_str()
                .unwrap_or("latest")
                .to_owned(),
            latest: false,
        }
    }

    /// Takes one message as HA's MQTT image entity does.
    fn receive(&mut self, topic: &str, payload: &[u8]) {
        if topic == self.image_topic {
            assert!(
                !payload.is_empty(),
                "an empty image reached HA's image topic"
            );
            self.image = Some(payload.to_vec());
        }
        for (t, template, available) in &mut self.availability {
            if t == topic {
                let word = match template {
                    Some(template) => render_payload(template, payload).unwrap(),
                    None => String::from_utf8_lossy(payload).into_owned(),
                };
                match word.as_str() {
                    "online" => (*available, self.latest) = (true, true),
                    "offline" => (*available, self.latest) = (false, false),
                    _ => {}
                }
            }
        }
    }

    /// Whether HA shows the entity as available, per its `availability_mode`.
    fn available(&self) -> bool {
        match self.mode.as_str() {
            "all" => self.availability.iter().all(|(_, _, a)| *a),
            "any" => self.availability.iter().any(|(_, _, a)| *a),
            _ => self.latest,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_login_qr_entity_is_available_only_while_a_scan_is_awaited_and_never_gets_an_empty_image(
) {
    if render("{{ 1 }}", &json!({})).is_none() {
        eprintln!("SKIPPED: python3 with jinja2 is needed to render the availability template");
        return;
    }
    let broker = brokers::mosquitto();
    let mut w = Watcher::new(broker.port, "ha", "homeassistant/#").await;
    let (_sink, side) = start(&broker, &HomeAssistantConfig::default());
    let got = configs(&mut w, FIXED.len()).await;
    let config = config(&got, "image", "login_qr");
    assert_eq!(config["content_type"], "image/png");
    let mut ha = QrEntity::new(config);
    assert_ne!(
        ha.image_topic, "wechat/home/qr/png",
        "that one is emptied after login"
    );

    let mut bus = Watcher::new(broker.port, "tablet", "wechat/home/#").await;
    let feed = |ha: &mut QrEntity, msgs: Vec<crate::watch::Msg>| {
        for m in msgs {
            ha.receive(&m.topic, &m.payload);
        }
    };
    feed(&mut ha, bus.drain(Duration::from_millis(500)).await);
    assert!(!ha.available(), "no QR yet: unavailable");

    // A scan is awaited: the PNG arrives on HA's image topic before the entity turns available.
    let url = "https://login.weixin.qq.com/l/abc123==";
    let png = wxbridge::qr::png(url).unwrap();
    side.qr.send_replace(Some(LoginQr {
        url: url.to_owned(),
        png: png.clone(),
        expires_at: datetime!(2026-11-28 16:25:01 UTC),
    }));
    while !ha.available() {
        let m = bus.next().await;
        ha.receive(&m.topic, &m.payload);
        if ha.available() {
            assert_eq!(
                ha.image.as_deref(),
                Some(&png[..]),
                "available with the new QR"
            );
        }
    }
    let decoded =
        image::load_from_memory_with_format(ha.image.as_ref().unwrap(), image::ImageFormat::Png)
            .expect("a PNG HA can show");
    assert!(decoded.width() >= 21 && decoded.width() == decoded.height());

    // Logged in: unavailable again, the image untouched; `/qr/png` itself is still cleared.
    side.qr.send_replace(None);
    let mut cleared = false;
    while ha.available() || !cleared {
        let m = bus.next().await;
        cleared |= m.topic == "wechat/home/qr/png" && m.payload.is_empty();
        ha.receive(&m.topic, &m.payload);
    }
    feed(&mut ha, bus.drain(Duration::from_millis(500)).await);
    assert!(!ha.available());
    assert_eq!(ha.image.as_deref(), Some(&png[..]));

    // An HA that starts now finds the image retained and the entity unavailable.
    let mut late = QrEntity::new(config);
    let mut fresh = Watcher::new(broker.port, "late-ha", "wechat/home/#").await;
    feed(&mut late, fresh.drain(Duration::from_millis(500)).await);
    assert!(!late.available());
    assert_eq!(late.image.as_deref(), Some(&png[..]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_real_bridge_shows_the_login_qr_entity_until_the_scan_and_then_makes_it_unavailable() {
    if render("{{ 1 }}", &json!({})).is_none() {
        eprintln!("SKIPPED: python3 with jinja2 is needed to render the availability template");
        return;
    }
    let world = World::new().await;
    let broker = brokers::mosquitto();
    let config = world.config(&format!(
        "mqtt:\n  url: mqtt://127.0.0.1:{}\n  client_id: wxbridge-test\n",
        broker.port
    ));
    let mut w = Watcher::new(broker.port, "ha", "#").await;
    let _bridge = Bridge::spawn(&config, &["run"]);
    // The bridge publishes its status and the QR before the discovery configs: keep them for
    // the entity, as HA gets them retained once it subscribes.
    let mut before = Vec::new();
    let discovery = loop {
        let m = w.next().await;
        if m.topic == "homeassistant/image/wxbridge_test/login_qr/config" && !m.payload.is_empty() {
            break serde_json::from_slice::<Value>(&m.payload).unwrap();
        }
        before.push(m);
    };
    let mut ha = QrEntity::new(&discovery);
    assert!(!ha.available());
    for m in before {
        ha.receive(&m.topic, &m.payload);
    }

    // Offline → online: the bridge is up and waits for a scan.
    while !ha.available() {
        let m = w.next().await;
        ha.receive(&m.topic, &m.payload);
    }
    let png = ha.image.clone().expect("the QR is shown");
    image::load_from_memory_with_format(&png, image::ImageFormat::Png).expect("a PNG");

    // Scanned: online, and the entity unavailable again without an empty image.
    world.scan_and_confirm().await;
    let mut online = false;
    while !online || ha.available() {
        let m = w.next().await;
        if m.topic == "wechat/test/state" {
            let v: Value = serde_json::from_slice(&m.payload).unwrap();
            online |= v["state"] == "online";
        }
        ha.receive(&m.topic, &m.payload);
    }
    for m in w.drain(Duration::from_millis(500)).await {
        ha.receive(&m.topic, &m.payload);
    }
    assert!(!ha.available(), "unavailable while logged in");
    assert_eq!(ha.image.as_deref(), Some(&png[..]));
}

/// Renders `template` as HA renders a template on an MQTT payload: `value` is the payload as
/// text, `value_json` its JSON when it is JSON. None without python3 and jinja2.
fn render_payload(template: &str, payload: &[u8]) -> Option<String> {
    let text = String::from_utf8_lossy(payload);
    let value_json = serde_json::from_slice::<Value>(payload).unwrap_or(Value::Null);
    render_with(template, &value_json, Some(&text))
}

/// Renders `template` with `value_json` as Jinja's sandbox does (HA's templates are Jinja
/// with extra filters; `to_json` is the one ours use). None when `python3` with `jinja2` is
/// not installed.
fn render(template: &str, value_json: &Value) -> Option<String> {
    render_with(template, value_json, None)
}

/// [`render`], with `value` (the payload as text) set too when given.
fn render_with(template: &str, value_json: &Value, value: Option<&str>) -> Option<String> {
    const SCRIPT: &str = "import json, sys\n\
        from jinja2.sandbox import ImmutableSandboxedEnvironment\n\
        env = ImmutableSandboxedEnvironment()\n\
        env.filters['to_json'] = lambda v: json.dumps(v, ensure_ascii=False)\n\
        req = json.load(sys.stdin)\n\
        vars = {'value_json': req['value']}\n\
        if req.get('text') is not None: vars['value'] = req['text']\n\
        sys.stdout.write(env.from_string(req['template']).render(**vars))\n";
    let probe = std::process::Command::new("python3")
        .args(["-c", "import jinja2"])
        .output();
    if !probe.is_ok_and(|o| o.status.success()) {
        return None;
    }
    let mut child = std::process::Command::new("python3")
        .args(["-c", SCRIPT])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let request = json!({"template": template, "value": value_json, "text": value});
    {
        use std::io::Write as _;
        let mut stdin = child.stdin.take().unwrap();
        stdin.write_all(request.to_string().as_bytes()).unwrap();
    }
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{template}: {err}");
    Some(String::from_utf8(out.stdout).unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_templates_turn_messages_into_what_home_assistant_expects() {
    if render("{{ 1 }}", &json!({})).is_none() {
        eprintln!("SKIPPED: python3 with jinja2 is needed to render the templates");
        return;
    }
    let broker = brokers::mosquitto();
    let mut w = Watcher::new(broker.port, "ha", "homeassistant/#").await;
    let (_sink, _side) = start(&broker, &HomeAssistantConfig::default());
    let got = configs(&mut w, FIXED.len()).await;
    let template = |component: &str, object: &str, key: &str| {
        config(&got, component, object)[key]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let message = json!({
        "kind": "message", "id": "4839201934821", "account": "home",
        "time": "2026-11-28T16:20:01Z", "type": "text", "msg_type": 1, "origin": "contact",
        "chat": {"id": "@@9f3", "name": "Family", "group": true},
        "from": {"id": "@a81", "name": "Alice", "remark": "Mom", "self": false},
        "text": "the door is open", "mentioned": false,
        "raw": {"MsgId": "4839201934821", "Content": "@a81:<br/>the door is open"}
    });
    let mut without_raw = message.clone();
    without_raw.as_object_mut().unwrap().remove("raw");

    // The event platform wants a JSON object with `event_type` (one of `event_types`); the
    // rest becomes the entity's attributes.
    let rendered = render(&template("event", "message", "value_template"), &message).unwrap();
    let mut event: Value = serde_json::from_str(&rendered).unwrap();
    assert_eq!(event["event_type"], "text");
    event.as_object_mut().unwrap().remove("event_type");
    assert_eq!(event, without_raw);

    let last = |m: &Value| render(&template("sensor", "last_message", "value_template"), m);
    assert_eq!(last(&message).unwrap(), "Mom: the door is open");
    let mut image = message.clone();
    image["type"] = json!("image");
    image["text"] = Value::Null;
    image["from"]["remark"] = Value::Null;
    assert_eq!(last(&image).unwrap(), "Alice: [image]");
    let mut long = message.clone();
    long["text"] = json!("门".repeat(300));
    let state = last(&long).unwrap();
    assert_eq!(state.chars().count(), 255, "HA's state limit");
    let attributes = render(
        &template("sensor", "last_message", "json_attributes_template"),
        &message,
    )
    .unwrap();
    assert_eq!(
        serde_json::from_str::<Value>(&attributes).unwrap(),
        without_raw
    );

    let state = |s: &str| json!({"state": s, "since": "2026-11-28T16:20:01Z", "reason": "why"});
    let connected = template("binary_sensor", "connected", "value_template");
    assert_eq!(render(&connected, &state("online")).unwrap(), "ON");
    assert_eq!(render(&connected, &state("login_required")).unwrap(), "OFF");
    let session = template("sensor", "session", "value_template");
    assert_eq!(
        render(&session, &state("login_forbidden")).unwrap(),
        "login_forbidden"
    );
    let attributes = template("sensor", "session", "json_attributes_template");
    let attributes: Value =
        serde_json::from_str(&render(&attributes, &state("online")).unwrap()).unwrap();
    assert_eq!(
        attributes,
        json!({"since": "2026-11-28T16:20:01Z", "reason": "why"})
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_notify_from_home_assistant_is_sent_to_its_target_in_wechat() {
    let world = World::new().await;
    let alice = world.fake.add_contact("Alice", "Mom");
    let broker = brokers::mosquitto();
    let config = world.config(&format!(
        "mqtt:\n  url: mqtt://127.0.0.1:{}\n  client_id: wxbridge-test\n\
         homeassistant:\n  notify_targets: [Mom]\n",
        broker.port
    ));
    let mut w = Watcher::new(broker.port, "ha", "#").await;
    let _bridge = Bridge::spawn(&config, &["run"]);

    let notify = w
        .json_on(
            "homeassistant/notify/wxbridge_test/notify_Mom/config",
            |v| v["command_topic"].is_string(),
        )
        .await;
    world.scan_and_confirm().await;
    w.json_on("wechat/test/state", |v| v["state"] == "online")
        .await;

    let topic = notify["command_topic"].as_str().unwrap();
    w.publish(topic, false, "dinner at 7?".as_bytes().to_vec())
        .await;
    let sent = world.fake.wait_sent(1, WAIT).await;
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert_eq!(sent[0].to, alice);
    assert_eq!(sent[0].content, "dinner at 7?");
    let result = w.json_on("wechat/test/send/result", |_| true).await;
    assert_eq!(result["ok"], true, "{result}");
    assert_eq!(result["to"]["id"], alice.as_str());
}

#[test]
fn the_node_red_example_replies_over_the_default_topics() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/node-red-flow.json");
    let text = std::fs::read_to_string(path).expect("the example flow exists");
    let flow: Value = serde_json::from_str(&text).expect("the flow is valid JSON");
    let nodes = flow
        .as_array()
        .expect("a Node-RED export is an array of nodes");
    let ids: HashSet<&str> = nodes.iter().filter_map(|n| n["id"].as_str()).collect();
    assert_eq!(ids.len(), nodes.len(), "every node has a distinct id");
    let of_type = |t: &str| {
        let found: Vec<&Value> = nodes.iter().filter(|n| n["type"] == t).collect();
        assert_eq!(found.len(), 1, "one `{t}` node");
        found[0]
    };

    let defaults = MqttConfig::default();
    let base = format!("{}/home", defaults.base_topic);
    let broker = of_type("mqtt-broker");
    assert_eq!(broker["broker"], defaults.url.host_str().unwrap());
    assert_eq!(broker["port"], defaults.url.port().unwrap().to_string());
    let input = of_type("mqtt in");
    let function = of_type("function");
    let output = of_type("mqtt out");
    assert_eq!(input["topic"], format!("{base}/message"));
    assert_eq!(input["datatype"], "json");
    assert_eq!(output["topic"], format!("{base}/send"));
    assert_eq!(
        output["retain"], "false",
        "a retained command would be ignored"
    );
    for node in [input, output] {
        assert_eq!(node["broker"], broker["id"]);
    }
    assert_eq!(input["wires"], json!([[function["id"]]]));
    assert_eq!(function["wires"], json!([[output["id"]]]));
    let code = function["func"].as_str().unwrap();
    assert!(
        code.contains("\"bridge\""),
        "the bridge's own sends are ignored"
    );
    assert!(code.contains("\"ping\"") && code.contains("\"pong\""));
    assert!(code.contains("to_id"));
    for node in nodes.iter().filter(|n| n["z"].is_string()) {
        assert!(ids.contains(node["z"].as_str().unwrap()), "{node}");
        for wire in node["wires"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|w| w.as_array().unwrap())
        {
            assert!(ids.contains(wire.as_str().unwrap()), "{node}");
        }
    }
}
