//! The bus sections: `mqtt`, `nats`, `webhooks`, `http` and `homeassistant`, with their
//! defaults. Re-exported from `config`, so their paths stay `crate::config::MqttConfig` etc.

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use url::Url;

use super::{display_fromstr, socket_addr, Secret, DEFAULT_ACCOUNT};

/// The `mqtt` section.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct MqttConfig {
    /// Broker address: `mqtt://host:port`, or `mqtts://` for TLS.
    #[serde(with = "display_fromstr")]
    pub url: Url,
    /// Stable client id for the persistent session; when not set, `wxbridge-<account>`
    /// (filled in by the loader).
    pub client_id: String,
    /// User name for the broker, if it requires one.
    pub username: Option<String>,
    /// Password for the broker.
    pub password: Option<Secret>,
    /// Extra CA certificate (PEM) to trust for `mqtts://`.
    pub ca_file: Option<PathBuf>,
    /// Client certificate (PEM) for TLS client authentication; needs `key_file`.
    pub cert_file: Option<PathBuf>,
    /// Private key (PEM) of `cert_file`.
    pub key_file: Option<PathBuf>,
    /// First topic level: topics are `<base_topic>/<account>/...`.
    pub base_topic: String,
    /// QoS of published events: 0, 1 or 2.
    pub qos: u8,
    /// Also publish each stored inbound file's bytes on `<base_topic>/<account>/media/<sha256>`.
    pub media: bool,
}

impl Default for MqttConfig {
    fn default() -> Self {
        MqttConfig {
            url: Url::parse("mqtt://127.0.0.1:1883").expect("the default MQTT URL parses"),
            client_id: default_client_id(DEFAULT_ACCOUNT),
            username: None,
            password: None,
            ca_file: None,
            cert_file: None,
            key_file: None,
            base_topic: "wechat".to_owned(),
            qos: 1,
            media: false,
        }
    }
}

/// The MQTT client id used when `mqtt.client_id` is not set.
pub(super) fn default_client_id(account: &str) -> String {
    format!("wxbridge-{account}")
}

/// The `nats` section.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct NatsConfig {
    /// Server address: `nats://host:port`, or `tls://` for TLS.
    #[serde(with = "display_fromstr")]
    pub url: Url,
    /// First subject token: subjects are `<subject_prefix>.<account>....`.
    pub subject_prefix: String,
    /// NATS credentials file (JWT and NKey); one of three ways to authenticate.
    pub credentials_file: Option<PathBuf>,
    /// Token authentication.
    pub token: Option<Secret>,
    /// User for user/password authentication; needs `password`.
    pub user: Option<String>,
    /// Password for user/password authentication.
    pub password: Option<Secret>,
    /// Extra CA certificate (PEM) to trust for `tls://`.
    pub ca_file: Option<PathBuf>,
    /// Publish events to a JetStream stream; they count as delivered once acked.
    pub jetstream: bool,
    /// JetStream stream name; its subjects are `<prefix>.<account>.message` and `.event`.
    pub stream: String,
    /// With `jetstream`: the object store bucket that holds inbound files, named by sha256.
    pub media_bucket: String,
}

impl Default for NatsConfig {
    fn default() -> Self {
        NatsConfig {
            url: Url::parse("nats://127.0.0.1:4222").expect("the default NATS URL parses"),
            subject_prefix: "wechat".to_owned(),
            credentials_file: None,
            token: None,
            user: None,
            password: None,
            ca_file: None,
            jetstream: false,
            stream: "WECHAT".to_owned(),
            media_bucket: "wechat-media".to_owned(),
        }
    }
}

/// One entry of `webhooks`.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookConfig {
    /// Where events are POSTed: `http://` or `https://`.
    #[serde(with = "display_fromstr")]
    pub url: Url,
    /// Standard Webhooks signing secret, `whsec_<base64>` or raw text; unsigned when not set.
    #[serde(default)]
    pub secret: Option<Secret>,
    /// Which event kinds to POST.
    #[serde(default = "default_webhook_events")]
    pub events: Vec<EventKind>,
    /// Deadline for one request; a timeout is retried like a failure.
    #[serde(default = "default_webhook_timeout", with = "humantime_serde")]
    pub timeout: Duration,
    /// The most `{"reply":…}` answers sent to one chat in any minute; past it a reply is
    /// dropped, logged and counted, so no reply loop can burn the account. 0: no replies.
    #[serde(default = "default_max_replies_per_minute")]
    pub max_replies_per_minute: u32,
}

impl WebhookConfig {
    /// A webhook to `url` with every other key at its default.
    pub fn new(url: Url) -> Self {
        WebhookConfig {
            url,
            secret: None,
            events: default_webhook_events(),
            timeout: default_webhook_timeout(),
            max_replies_per_minute: default_max_replies_per_minute(),
        }
    }
}

fn default_webhook_events() -> Vec<EventKind> {
    vec![EventKind::Message]
}

fn default_webhook_timeout() -> Duration {
    Duration::from_secs(5)
}

fn default_max_replies_per_minute() -> u32 {
    5
}

/// The kinds of event a webhook can subscribe to (DESIGN.md "Inbound event").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    /// An inbound message (`/message`).
    Message,
    /// A login (`/event`).
    Login,
    /// A logout (`/event`).
    Logout,
    /// A change of the contact book (`/event`).
    Contacts,
    /// An error report (`/event`).
    Error,
    /// A send receipt (`/send/receipt`, DESIGN.md "Receipts").
    Receipt,
}

impl EventKind {
    /// The name used in the config and in the event's `kind`.
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::Message => "message",
            EventKind::Login => "login",
            EventKind::Logout => "logout",
            EventKind::Contacts => "contacts",
            EventKind::Error => "error",
            EventKind::Receipt => "receipt",
        }
    }
}

impl fmt::Display for EventKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The `http` section.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct HttpConfig {
    /// Socket address to listen on, as `IP:port` (host names are not resolved).
    #[serde(with = "socket_addr")]
    pub listen: SocketAddr,
    /// When set, a `Bearer` token is required on every path except `/healthz`. Required when
    /// `listen` is not a loopback address, unless `insecure_no_auth` says otherwise.
    pub token: Option<Secret>,
    /// Serve a non-loopback `listen` address without a token, on purpose.
    pub insecure_no_auth: bool,
    /// Host names (`name` or `name:port`) requests may carry in `Host` besides IP addresses and
    /// `localhost`: the names a reverse proxy or the LAN uses for this bridge.
    pub allowed_hosts: Vec<String>,
    /// At most this many HTTP connections at once (fewer when the descriptor limit is low).
    pub max_connections: usize,
    /// The base URL others reach the HTTP API at; `https://` marks the page cookie `Secure`.
    pub public_url: Option<Url>,
}

impl HttpConfig {
    /// The default `max_connections`.
    pub const DEFAULT_MAX_CONNECTIONS: usize = 256;
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 8787)),
            token: None,
            insecure_no_auth: false,
            allowed_hosts: Vec::new(),
            max_connections: Self::DEFAULT_MAX_CONNECTIONS,
            public_url: None,
        }
    }
}

/// The `homeassistant` section: MQTT discovery.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct HomeAssistantConfig {
    /// Publish discovery messages (when `mqtt` is configured).
    pub enabled: bool,
    /// Home Assistant's discovery prefix.
    pub prefix: String,
    /// Recipients that get a notify entity each.
    pub notify_targets: Vec<String>,
}

impl Default for HomeAssistantConfig {
    fn default() -> Self {
        HomeAssistantConfig {
            enabled: true,
            prefix: "homeassistant".to_owned(),
            notify_targets: Vec::new(),
        }
    }
}
