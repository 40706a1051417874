//! Home Assistant MQTT discovery (the `homeassistant` config section): the retained config
//! payloads that make one HA device per account, "WeChat <account>", out of the topics the
//! link already publishes. Pure: the link task publishes what [`Discovery`] builds, and asks it
//! which incoming publishes concern discovery.
//!
//! Entities, each under `<prefix>/<component>/wxbridge_<account>/<object>/config` with the
//! unique id `wxbridge_<account>_<object>`, all available while `<base>/<account>/status` says
//! `online` (so the re-login button works while the session needs a login). With several
//! accounts on one connection each account is a device of its own (`wxbridge_<account>`,
//! "WeChat <account>"), with the same notify targets, and its entities also need the process's
//! `<base>/status` (the connection's last will, see the module docs of `mqtt`) to say `online`
//! (`availability_mode: all`): a process that dies takes every account's device with it.
//!
//! | component | object | reads / writes |
//! |---|---|---|
//! | `binary_sensor` (connectivity) | `connected` | on while `/state` says `online` |
//! | `sensor` (enum) | `session` | the state word of `/state`; `since`, `reason` as attributes |
//! | `sensor` | `last_message` | `sender: text` of `/message`; the event as attributes |
//! | `event` | `message` | fires per `/message`, `event_type` = the message type |
//! | `image` | `login_qr` | the raw PNG on `/homeassistant/login_qr`; available only while `/qr` holds a QR |
//! | `image` | `last_image` | the last inbound image's bytes on `/homeassistant/last_image` |
//! | `button` | `relogin`, `logout` | publish to `/relogin`, `/logout` |
//! | `notify` | `notify_<slug>` | publish the message text to `/notify/<slug>` |
//!
//! The two images have topics of their own, retained and never emptied: HA stores whatever
//! arrives on an image topic as the image, and its image proxy answers 500 for an empty one, so
//! the empty payload that clears `/qr/png` after a login would show as a broken image. The QR
//! entity is unavailable instead while no scan is awaited: its second availability entry reads
//! `/qr` (the QR JSON while a scan is awaited, emptied after the login) through a template, and
//! `availability_mode: all` needs both it and `/status`. The QR PNG goes out before the QR JSON,
//! so HA never shows the previous code as available. The last image is published (with its
//! bytes read from the media store) before its message event, whether or not `mqtt.media` is
//! on; its `content_type` is fixed at `image/jpeg`, what WeChat sends nearly always, because an
//! MQTT image entity takes one content type for its topic (browsers show a PNG or GIF served
//! under it all the same).
//!
//! Removal: the link subscribes to `<prefix>/+/wxbridge_<account>/+/config`, so the broker
//! hands it every config this account ever left retained; a non-empty one that is not in the
//! current set (a notify target dropped from the config, or everything once discovery is
//! disabled) is answered with an empty retained payload, which makes HA delete the entity. The
//! broker's retained store is the record of what was published: nothing is kept locally, and
//! a wiped state dir or a second machine changes nothing. A removed image entity's image topic
//! is emptied along with its config.
use std::collections::{HashMap, HashSet};

use serde_json::{json, Map, Value};

use super::topics::Topics;
use crate::config::HomeAssistantConfig;
use crate::event::{MessageType, SessionState};

/// Every message type, in the order of DESIGN.md's type table: the event entity's
/// `event_types` (HA drops an event whose type is not listed).
const MESSAGE_TYPES: [MessageType; 14] = [
    MessageType::Text,
    MessageType::Location,
    MessageType::Image,
    MessageType::Voice,
    MessageType::Video,
    MessageType::Emoticon,
    MessageType::FriendRequest,
    MessageType::Card,
    MessageType::Link,
    MessageType::File,
    MessageType::App,
    MessageType::System,
    MessageType::Revoke,
    MessageType::Other,
];

/// Every session state: the options of the enum sensor.
const SESSION_STATES: [SessionState; 5] = [
    SessionState::Starting,
    SessionState::Online,
    SessionState::LoginRequired,
    SessionState::LoginForbidden,
    SessionState::Offline,
];

/// The login QR's second availability: `/qr` holds the QR JSON while a scan is awaited and is
/// emptied after the login (HA renders the template with `value` = the payload as text).
const QR_AVAILABLE_TEMPLATE: &str = "{{ 'online' if value else 'offline' }}";

/// The last image's content type (see the module docs).
const LAST_IMAGE_CONTENT_TYPE: &str = "image/jpeg";

/// The connectivity sensor: on exactly when the session is online.
const CONNECTED_TEMPLATE: &str = "{{ 'ON' if value_json.state == 'online' else 'OFF' }}";

/// The session sensor's state word.
const SESSION_TEMPLATE: &str = "{{ value_json.state }}";

/// The session sensor's attributes: the rest of the state JSON.
const SESSION_ATTRIBUTES_TEMPLATE: &str =
    "{{ {'since': value_json.since, 'reason': value_json.reason} | to_json }}";

/// `sender: text` (the remark when there is one), `[type]` for types without text, cut to
/// the 255 characters HA allows in a state.
const LAST_MESSAGE_TEMPLATE: &str = "{{ ((value_json.from.remark or value_json.from.name) \
     ~ ': ' ~ (value_json.text if value_json.text is not none else '[' ~ value_json.type ~ ']'))\
     [:255] }}";

/// The event without `raw`: the AddMsgList entry repeats what the normalized fields say, and
/// can push the attributes past the 16 KiB HA's recorder stores.
const EVENT_ATTRIBUTES_TEMPLATE: &str =
    "{{ dict(value_json.items() | rejectattr(0, 'eq', 'raw')) | to_json }}";

/// HA's MQTT event platform wants a JSON object with `event_type`; the message JSON has
/// `type`, so the template adds `event_type` to the event (without `raw`, as above).
const EVENT_TEMPLATE: &str = "{{ dict(value_json.items() | rejectattr(0, 'eq', 'raw'), \
     event_type=value_json.type) | to_json }}";

/// What the link needs to announce the account to Home Assistant.
#[derive(Debug)]
pub(super) struct Discovery {
    /// `<prefix>/status`: HA's birth (`online`) and last will.
    pub birth: String,
    /// `<prefix>/+/<node_id>/+/config`: every config of this account, retained or not.
    pub configs_filter: String,
    /// `<prefix>/`.
    prefix: String,
    /// `wxbridge_<account>`.
    node_id: String,
    /// Retained config payloads, `(topic, JSON)`; none when discovery is off.
    configs: Vec<(String, Vec<u8>)>,
    /// The topics of `configs`.
    current: HashSet<String>,
    /// Notify targets by slug.
    targets: HashMap<String, String>,
    /// `(config topic, image topic)` of each image entity whose image topic is ours alone:
    /// emptied together when the entity is removed.
    images: Vec<(String, String)>,
}

impl Discovery {
    /// The discovery of `account`, whose link publishes on `topics`; `process_status` is the
    /// process's own status topic when the connection serves several accounts.
    pub fn new(
        config: &HomeAssistantConfig,
        topics: &Topics,
        account: &str,
        process_status: Option<&str>,
    ) -> Discovery {
        let prefix = config.prefix.trim_end_matches('/');
        let node_id = format!("wxbridge_{account}");
        let mut discovery = Discovery {
            birth: format!("{prefix}/status"),
            configs_filter: format!("{prefix}/+/{node_id}/+/config"),
            prefix: format!("{prefix}/"),
            node_id,
            configs: Vec::new(),
            current: HashSet::new(),
            targets: HashMap::new(),
            images: [
                ("login_qr", &topics.ha_login_qr),
                ("last_image", &topics.ha_last_image),
            ]
            .into_iter()
            .map(|(object, topic)| {
                let config = format!("{prefix}/image/wxbridge_{account}/{object}/config");
                (config, topic.clone())
            })
            .collect(),
        };
        if config.enabled {
            for target in config.notify_targets.iter().filter(|t| !t.is_empty()) {
                discovery
                    .targets
                    .entry(slug(target))
                    .or_insert_with(|| target.clone());
            }
            let entities = Entities {
                prefix,
                topics,
                account,
                process_status,
            };
            discovery.configs = entities.configs(&discovery.targets);
            discovery.current = discovery.configs.iter().map(|(t, _)| t.clone()).collect();
        }
        discovery
    }

    /// The retained config payloads to publish, `(topic, JSON)`.
    pub fn configs(&self) -> &[(String, Vec<u8>)] {
        &self.configs
    }

    /// Whether the publish on `topic` is for the link task (HA's birth, or a config of ours)
    /// rather than a command.
    pub fn concerns(&self, topic: &str) -> bool {
        topic == self.birth || self.is_ours(topic)
    }

    /// A config topic of this account's that is not in the current set: one to empty.
    pub fn is_stale(&self, topic: &str) -> bool {
        self.is_ours(topic) && !self.current.contains(topic)
    }

    /// Whether any entity is announced (discovery is on): the link then also publishes the
    /// images' own topics.
    pub fn enabled(&self) -> bool {
        !self.configs.is_empty()
    }

    /// The image topic that goes with the config on `topic`, if it is an image entity's.
    pub fn image_topic(&self, config_topic: &str) -> Option<&str> {
        self.images
            .iter()
            .find(|(config, _)| config == config_topic)
            .map(|(_, image)| image.as_str())
    }

    /// The notify target whose command topic ends in `slug`.
    pub fn notify_target(&self, slug: &str) -> Option<&str> {
        self.targets.get(slug).map(String::as_str)
    }

    /// `<prefix>/<component>/<node_id>/<object>/config`.
    fn is_ours(&self, topic: &str) -> bool {
        let Some(rest) = topic.strip_prefix(&self.prefix) else {
            return false;
        };
        let levels: Vec<&str> = rest.split('/').collect();
        matches!(levels[..], [_, node, _, "config"] if node == self.node_id)
    }
}

/// The entity payloads of one account.
struct Entities<'a> {
    /// The discovery prefix, without a trailing `/`.
    prefix: &'a str,
    topics: &'a Topics,
    account: &'a str,
    /// `<base>/status` with several accounts.
    process_status: Option<&'a str>,
}

impl Entities<'_> {
    fn configs(&self, targets: &HashMap<String, String>) -> Vec<(String, Vec<u8>)> {
        let t = self.topics;
        let states: Vec<&str> = SESSION_STATES.iter().map(|s| s.as_str()).collect();
        let mut entities = vec![
            self.entity(
                "binary_sensor",
                "connected",
                "Connected",
                json!({
                    "device_class": "connectivity",
                    "state_topic": t.state,
                    "value_template": CONNECTED_TEMPLATE,
                    "qos": 1,
                }),
            ),
            self.entity(
                "sensor",
                "session",
                "Session",
                json!({
                    "device_class": "enum",
                    "options": states,
                    "icon": "mdi:wechat",
                    "state_topic": t.state,
                    "value_template": SESSION_TEMPLATE,
                    "json_attributes_topic": t.state,
                    "json_attributes_template": SESSION_ATTRIBUTES_TEMPLATE,
                    "qos": 1,
                }),
            ),
            self.entity(
                "sensor",
                "last_message",
                "Last message",
                json!({
                    "icon": "mdi:message-text",
                    "state_topic": t.message,
                    "value_template": LAST_MESSAGE_TEMPLATE,
                    "json_attributes_topic": t.message,
                    "json_attributes_template": EVENT_ATTRIBUTES_TEMPLATE,
                    "qos": 1,
                }),
            ),
            self.entity(
                "event",
                "message",
                "Message",
                json!({
                    "icon": "mdi:message-text",
                    "state_topic": t.message,
                    "event_types": MESSAGE_TYPES.map(type_name),
                    "value_template": EVENT_TEMPLATE,
                    "qos": 1,
                }),
            ),
            self.entity(
                "image",
                "login_qr",
                "Login QR",
                json!({
                    "icon": "mdi:qrcode",
                    "image_topic": t.ha_login_qr,
                    "content_type": "image/png",
                    "availability": self.availability(Some(json!({
                        "topic": t.qr,
                        "value_template": QR_AVAILABLE_TEMPLATE,
                        "payload_available": "online",
                        "payload_not_available": "offline",
                    }))),
                    "availability_mode": "all",
                }),
            ),
            self.entity(
                "image",
                "last_image",
                "Last image",
                json!({
                    "icon": "mdi:image",
                    "image_topic": t.ha_last_image,
                    "content_type": LAST_IMAGE_CONTENT_TYPE,
                }),
            ),
            self.entity(
                "button",
                "relogin",
                "Log in again",
                json!({"icon": "mdi:login", "command_topic": t.relogin, "qos": 1}),
            ),
            self.entity(
                "button",
                "logout",
                "Log out",
                json!({"icon": "mdi:logout", "command_topic": t.logout, "qos": 1}),
            ),
        ];
        let mut slugs: Vec<&String> = targets.keys().collect();
        slugs.sort();
        for slug in slugs {
            entities.push(self.entity(
                "notify",
                &format!("notify_{slug}"),
                &targets[slug],
                json!({"icon": "mdi:send", "command_topic": t.notify(slug), "qos": 1}),
            ));
        }
        entities
    }

    /// Available while the process is up: `<base>/<account>/status`, and with several
    /// accounts also `<base>/status`; then `extra`. Past one entry, all must say `online`.
    fn availability(&self, extra: Option<Value>) -> Value {
        let status = |topic: &str| {
            json!({
                "topic": topic,
                "payload_available": "online",
                "payload_not_available": "offline",
            })
        };
        let list: Vec<Value> = self
            .process_status
            .map(status)
            .into_iter()
            .chain([status(&self.topics.status)])
            .chain(extra)
            .collect();
        json!(list)
    }

    /// One retained config: what every entity shares (name, ids, device, origin,
    /// availability) plus `specific`.
    fn entity(
        &self,
        component: &str,
        object: &str,
        name: &str,
        specific: Value,
    ) -> (String, Vec<u8>) {
        let account = self.account;
        let version = env!("CARGO_PKG_VERSION");
        let mut payload: Map<String, Value> = json!({
            "name": name,
            "unique_id": format!("wxbridge_{account}_{object}"),
            "device": {
                "identifiers": [format!("wxbridge_{account}")],
                "name": format!("WeChat {account}"),
                "manufacturer": "wxbridge",
                "model": "WeChat web bridge",
                "sw_version": version,
            },
            "origin": {"name": "wxbridge", "sw_version": version},
            "availability": self.availability(None),
        })
        .as_object()
        .cloned()
        .unwrap_or_default();
        if self.process_status.is_some() {
            // HA's default, `latest`, would follow whichever topic spoke last.
            payload.insert("availability_mode".into(), json!("all"));
        }
        if let Value::Object(specific) = specific {
            payload.extend(specific);
        }
        let topic = format!(
            "{prefix}/{component}/wxbridge_{account}/{object}/config",
            prefix = self.prefix
        );
        (topic, serde_json::to_vec(&payload).unwrap_or_default())
    }
}

/// The wire name of a message type (`friend_request`).
fn type_name(t: MessageType) -> String {
    serde_json::to_value(t)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}

/// A notify target's name as a topic level and object id, which HA restricts to
/// `[a-zA-Z0-9_-]`: ASCII letters, digits and `-` stay, every other byte becomes `_` and its
/// two hex digits. Reversible, so two targets never share a slug, and stable across versions,
/// because HA keys the entity by it (`Family Group` → `Family_20Group`, `妈妈` →
/// `_e5_a6_88_e5_a6_88`).
pub(super) fn slug(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for b in name.bytes() {
        if b.is_ascii_alphanumeric() || b == b'-' {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("_{b:02x}"));
        }
    }
    out
}

#[cfg(test)]
mod tests;
