//! Typed, strict configuration and its loader.
//!
//! The YAML shape is the contract in DESIGN.md ("Configuration"); `bridge.example.yaml` at the
//! repository top documents every key and a test keeps it in step with these types. Every
//! struct rejects unknown keys. [`load`] finds the file, expands `${VAR}`, applies
//! `WXBRIDGE__SECTION__KEY` overrides, deserializes and validates, so a [`Config`] in hand is
//! always valid. Nothing here is global: callers pass the process environment in as a map.

mod accounts;
mod error;
mod expand;
mod lenient;
mod limits;
mod load;
mod media;
mod overrides;
mod sinks;
mod tree;
mod validate;

#[cfg(test)]
mod accounts_tests;
#[cfg(test)]
mod http_tests;
#[cfg(test)]
mod media_tests;
#[cfg(test)]
mod test_support;
#[cfg(test)]
mod tests;

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use url::Url;
use yaml_serde::Value;

pub use error::ConfigError;
pub use limits::{LimitsConfig, PerRecipient, QuietHours};
pub use load::{load, parse, Loaded};
pub use media::{byte_size, MediaConfig, MediaDownload, MediaFetchConfig};
use sinks::default_client_id;
pub use sinks::{
    EventKind, HomeAssistantConfig, HttpConfig, MqttConfig, NatsConfig, WebhookConfig,
};

/// The directory used when `state_dir` is not set.
const DEFAULT_STATE_DIR: &str = "./state";
/// The account name used when `account` is not set.
const DEFAULT_ACCOUNT: &str = "default";

/// The whole configuration: one section per part of the bridge.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Name used in topics, subjects and the default MQTT client id; `[a-zA-Z0-9_-]+`. Not
    /// set (and left at its default) when `accounts` is used.
    pub account: String,
    /// Directory for the session, spool, dedup index and lock; relative to the working
    /// directory. With `accounts`, each account's state is in `<state_dir>/<account>`.
    pub state_dir: PathBuf,
    /// Several accounts in one process, instead of `account` (DESIGN.md "Several accounts").
    /// Empty: the one account `account`. Each entry holds its effective `wechat`, `send` and
    /// `media`: the shared sections with its own keys merged over them by the loader.
    pub accounts: Vec<AccountConfig>,
    /// How to reach and log in to WeChat. With `accounts`, the shared base each account's own
    /// section is merged over; per-account code reads the views of [`Config::accounts`].
    pub wechat: WechatConfig,
    /// Outbound messages: throttle, allow-list, expiry and size limit. With `accounts`, the
    /// shared base (see `wechat`).
    pub send: SendConfig,
    /// Reconnect schedule shared by every link (exponential, jittered).
    pub retry: RetryConfig,
    /// Bounds of the durable event spool.
    pub spool: SpoolConfig,
    /// MQTT sink; `None` (section absent) turns MQTT off.
    pub mqtt: Option<MqttConfig>,
    /// NATS sink; `None` (section absent) turns NATS off.
    pub nats: Option<NatsConfig>,
    /// Webhooks that receive events by HTTP POST; zero or more.
    pub webhooks: Vec<WebhookConfig>,
    /// HTTP listener (health, metrics, send API); `None` (section absent) means no listener.
    pub http: Option<HttpConfig>,
    /// Home Assistant MQTT discovery; only takes effect when `mqtt` is configured.
    pub homeassistant: HomeAssistantConfig,
    /// Inbound media downloads, the media store and outbound media sources. With `accounts`,
    /// the shared base (see `wechat`).
    pub media: MediaConfig,
}

/// One entry of `accounts`: its name and the sections that may differ per account, as they
/// apply to it (the loader merges the account's keys over the shared sections, key by key).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct AccountConfig {
    /// Name used in topics and subjects and for its state dir; `[a-zA-Z0-9_-]+`, unique.
    pub account: String,
    /// Its `wechat` section.
    #[serde(default)]
    pub wechat: WechatConfig,
    /// Its `send` section.
    #[serde(default)]
    pub send: SendConfig,
    /// Its `media` section.
    #[serde(default)]
    pub media: MediaConfig,
}

impl AccountConfig {
    /// An account named `account` with every section at its default.
    pub fn new(account: impl Into<String>) -> Self {
        AccountConfig {
            account: account.into(),
            wechat: WechatConfig::default(),
            send: SendConfig::default(),
            media: MediaConfig::default(),
        }
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            account: DEFAULT_ACCOUNT.to_owned(),
            state_dir: PathBuf::from(DEFAULT_STATE_DIR),
            accounts: Vec::new(),
            wechat: WechatConfig::default(),
            send: SendConfig::default(),
            retry: RetryConfig::default(),
            spool: SpoolConfig::default(),
            mqtt: None,
            nats: None,
            webhooks: Vec::new(),
            http: None,
            homeassistant: HomeAssistantConfig::default(),
            media: MediaConfig::default(),
        }
    }
}

impl Config {
    /// The full effective configuration as YAML, for `check-config`.
    ///
    /// Secrets that are set print as `"***"`; unset ones print as `null`. With `accounts`,
    /// each account shows its effective `wechat`, `send` and `media` and the top-level
    /// `account` and shared copies of those sections are left out, so the text loads back to
    /// the same accounts.
    pub fn effective_yaml(&self) -> String {
        let shown = yaml_serde::to_value(self).map(|mut tree| {
            if let Value::Mapping(root) = &mut tree {
                let hidden: &[&str] = if self.several_accounts() {
                    &["account", "wechat", "send", "media"]
                } else {
                    &["accounts"]
                };
                for key in hidden {
                    root.remove(*key);
                }
            }
            tree
        });
        shown
            .and_then(|tree| yaml_serde::to_string(&tree))
            .unwrap_or_else(|err| format!("# the configuration cannot be shown: {err}\n"))
    }

    /// The accounts this config runs (DESIGN.md "Several accounts"), each as a config of its
    /// own: `account` is its name, `state_dir` its own directory, and `wechat`, `send` and
    /// `media` carry its overrides; every other section is the shared one. A config with the
    /// top-level `account` runs that one account in `state_dir` itself. A view lists no
    /// `accounts` of its own.
    pub fn accounts(&self) -> Vec<Config> {
        if !self.several_accounts() {
            return vec![self.clone()];
        }
        self.accounts
            .iter()
            .map(|entry| Config {
                account: entry.account.clone(),
                state_dir: self.state_dir.join(&entry.account),
                accounts: Vec::new(),
                wechat: entry.wechat.clone(),
                send: entry.send.clone(),
                media: entry.media.clone(),
                ..self.clone()
            })
            .collect()
    }

    /// True when the config lists its accounts under `accounts:` (then the HTTP API serves
    /// `/accounts/<account>/…` and the session commands take `--account`).
    pub fn several_accounts(&self) -> bool {
        !self.accounts.is_empty()
    }

    /// The names of the accounts this config runs, in order.
    pub fn account_names(&self) -> Vec<&str> {
        if self.several_accounts() {
            self.accounts.iter().map(|a| a.account.as_str()).collect()
        } else {
            vec![self.account.as_str()]
        }
    }
}

/// The `wechat` section.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct WechatConfig {
    /// Login host every other WeChat host derives from; tests point it at a local fake.
    #[serde(with = "display_fromstr")]
    pub login_url: Url,
    /// Use the desktop (UOS) login variant (PROTOCOL.md §1.5).
    pub desktop_mode: bool,
    /// Where the login QR is written; when not set, `<state_dir>/qr.png` (filled in by the loader).
    pub qr_png: PathBuf,
    /// With no successful sync for this long while online, the session is re-validated.
    #[serde(with = "humantime_serde")]
    pub zombie_after: Duration,
}

impl Default for WechatConfig {
    fn default() -> Self {
        WechatConfig {
            login_url: Url::parse("https://login.wx.qq.com").expect("the default login URL parses"),
            desktop_mode: true,
            qr_png: default_qr_png(Path::new(DEFAULT_STATE_DIR)),
            zombie_after: Duration::from_secs(30 * 60),
        }
    }
}

/// The QR path used when `wechat.qr_png` is not set.
fn default_qr_png(state_dir: &Path) -> PathBuf {
    state_dir.join("qr.png")
}

/// The `send` section.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct SendConfig {
    /// Outbound throttle; it protects the account from being flagged.
    pub rate: RateConfig,
    /// Human-paced limits on top of `rate`: per recipient, per day, jitter, quiet hours.
    pub limits: LimitsConfig,
    /// When non-empty, only these recipients (names as in a send command's `to`) may be sent to.
    pub allow: Vec<String>,
    /// A command not sent within this time (and without `expires_at`) is answered `expired`.
    #[serde(with = "humantime_serde")]
    pub default_ttl: Duration,
    /// A command payload larger than this many bytes is answered `invalid_command`.
    pub max_bytes: usize,
}

impl Default for SendConfig {
    fn default() -> Self {
        SendConfig {
            rate: RateConfig::default(),
            limits: LimitsConfig::default(),
            allow: Vec::new(),
            default_ttl: Duration::from_secs(10 * 60),
            max_bytes: 65536,
        }
    }
}

/// `send.rate`: a token bucket.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct RateConfig {
    /// Tokens added per second; more than 0.
    pub per_second: f64,
    /// Bucket size: how many messages may go out back to back; at least 1.
    pub burst: u32,
}

impl Default for RateConfig {
    fn default() -> Self {
        RateConfig {
            per_second: 0.5,
            burst: 5,
        }
    }
}

/// The `retry` section: every link's reconnect schedule.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct RetryConfig {
    /// First delay after a failure; doubles (with jitter) up to `max`.
    #[serde(with = "humantime_serde")]
    pub initial: Duration,
    /// Longest delay between two attempts.
    #[serde(with = "humantime_serde")]
    pub max: Duration,
}

impl Default for RetryConfig {
    fn default() -> Self {
        RetryConfig {
            initial: Duration::from_secs(1),
            max: Duration::from_secs(5 * 60),
        }
    }
}

/// The `spool` section.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct SpoolConfig {
    /// Past this many waiting events, a sink's oldest events are dropped, counted and logged.
    pub max_events_per_sink: u64,
}

impl Default for SpoolConfig {
    fn default() -> Self {
        SpoolConfig {
            max_events_per_sink: 100_000,
        }
    }
}

/// A password, token or signing secret.
///
/// `Debug` and `Serialize` print `"***"` so the value never reaches logs or `check-config`
/// output; [`Secret::expose`] is the one way to read it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// What `Debug` and `Serialize` print instead of the value.
    pub const MASK: &'static str = "***";

    /// Wraps a secret value.
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// The secret itself, for the one place that sends it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(Self::MASK, f)
    }
}

impl Serialize for Secret {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(Self::MASK)
    }
}

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer).map(Secret)
    }
}

/// Serde for types whose text form is `Display`/`FromStr` (URLs, socket addresses): the `url`
/// crate's own serde support is not enabled.
mod display_fromstr {
    use std::fmt::Display;
    use std::str::FromStr;

    use serde::{de, Deserialize, Deserializer, Serializer};

    pub fn serialize<T: Display, S: Serializer>(
        value: &T,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        serializer.collect_str(value)
    }

    pub fn deserialize<'de, T, D>(deserializer: D) -> Result<T, D::Error>
    where
        T: FromStr,
        T::Err: Display,
        D: Deserializer<'de>,
    {
        let text = String::deserialize(deserializer)?;
        text.parse()
            .map_err(|err| de::Error::custom(format_args!("{err} (got {text:?})")))
    }
}

/// Serde for `http.listen`, with an error that shows the expected form.
mod socket_addr {
    use std::net::SocketAddr;

    use serde::{de, Deserialize, Deserializer};

    pub use super::display_fromstr::serialize;

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<SocketAddr, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(|_| {
            de::Error::custom(format_args!(
                "expected IP:port such as 127.0.0.1:8787 (got {text:?}); host names are not resolved"
            ))
        })
    }
}
