//! Rules a well-typed [`Config`] must still meet before anything is started: value ranges,
//! URL schemes, and keys that only make sense together. Each rule lives in one place: what a
//! sink's own library or server decides (NATS subjects and stream names, webhook secrets) and
//! what needs the files the config names is checked by the sink's `prepare` (see
//! [`crate::sinks`]), which `run` and `check-config` both call after this.

use std::time::Duration;

use url::Url;

use super::{AccountConfig, Config, HttpConfig, MediaConfig, SendConfig, WechatConfig};

/// The first rule a configuration breaks.
#[derive(Debug)]
pub(super) struct Problem {
    /// The key path, as in the YAML (`webhooks[0].url`).
    pub(super) key: String,
    /// What is wrong, with the value found.
    pub(super) message: String,
}

fn problem(key: impl Into<String>, message: impl Into<String>) -> Problem {
    Problem {
        key: key.into(),
        message: message.into(),
    }
}

/// Checks `config` against every rule; the first broken one is returned. With `accounts`,
/// the rules of `wechat`, `send` and `media` run on each account's merged sections, and their
/// keys name the account's entry (`accounts[1].send.rate.burst`).
pub(super) fn validate(config: &Config) -> Result<(), Problem> {
    if config.several_accounts() {
        validate_accounts(&config.accounts)?;
    } else {
        account_name("account", &config.account)?;
        validate_wechat_send(&config.wechat, &config.send)?;
        validate_media(&config.media)?;
    }
    if config.state_dir.as_os_str().is_empty() {
        return Err(problem("state_dir", "must not be empty"));
    }
    validate_shared(config)
}

/// A name used in topics, subjects and (with `accounts`) as a directory name.
fn account_name(key: &str, name: &str) -> Result<(), Problem> {
    let valid = !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if !valid {
        return Err(problem(
            key,
            format!("must be letters, digits, `_` or `-` (got {name:?}); it is used in topics"),
        ));
    }
    Ok(())
}

/// Every account: a valid, unique name and valid sections of its own, and no two of them
/// writing the same QR file or keeping the same media store.
fn validate_accounts(accounts: &[AccountConfig]) -> Result<(), Problem> {
    for (index, entry) in accounts.iter().enumerate() {
        let at = |key: &str| format!("accounts[{index}].{key}");
        account_name(&at("account"), &entry.account)?;
        if let Some(first) = accounts[..index]
            .iter()
            .position(|other| other.account == entry.account)
        {
            return Err(problem(
                at("account"),
                format!(
                    "{:?} is already the name of accounts[{first}]; each account needs its own",
                    entry.account
                ),
            ));
        }
        validate_wechat_send(&entry.wechat, &entry.send)
            .and_then(|()| validate_media(&entry.media))
            .map_err(|p| problem(at(&p.key), p.message))?;
        for (first, other) in accounts[..index].iter().enumerate() {
            if other.wechat.qr_png == entry.wechat.qr_png {
                return Err(problem(
                    at("wechat.qr_png"),
                    format!(
                        "{} is also the QR file of accounts[{first}] ({}); with several accounts \
                         set it per account, or leave it out for <state_dir>/<account>/qr.png",
                        entry.wechat.qr_png.display(),
                        other.account
                    ),
                ));
            }
            if let Some(dir) = entry
                .media
                .dir
                .as_ref()
                .filter(|d| other.media.dir.as_ref() == Some(*d))
            {
                return Err(problem(
                    at("media.dir"),
                    format!(
                        "{} is also the media store of accounts[{first}] ({}); with several \
                         accounts set it per account, or leave it out for \
                         <state_dir>/<account>/media",
                        dir.display(),
                        other.account
                    ),
                ));
            }
        }
    }
    Ok(())
}

/// The `wechat` and `send` sections.
fn validate_wechat_send(wechat: &WechatConfig, send: &SendConfig) -> Result<(), Problem> {
    check_url("wechat.login_url", &wechat.login_url, &["http", "https"])?;
    positive("wechat.zombie_after", wechat.zombie_after)?;

    if !(send.rate.per_second.is_finite() && send.rate.per_second > 0.0) {
        return Err(problem(
            "send.rate.per_second",
            format!("must be more than 0 (got {})", send.rate.per_second),
        ));
    }
    if send.rate.burst < 1 {
        return Err(problem("send.rate.burst", "must be at least 1 (got 0)"));
    }
    positive("send.default_ttl", send.default_ttl)?;
    super::limits::validate(&send.limits).map_err(|(k, m)| problem(k, m))?;
    if send.max_bytes == 0 {
        return Err(problem("send.max_bytes", "must be more than 0 (got 0)"));
    }
    for (i, entry) in send.allow.iter().enumerate() {
        if entry.is_empty() || entry == "group:" {
            return Err(problem(
                format!("send.allow[{i}]"),
                format!(
                    "must name a remark, an id or `group:<name>` (got {entry:?}); an empty name \
                     allows no one"
                ),
            ));
        }
    }
    Ok(())
}

/// Every section shared by all accounts.
fn validate_shared(config: &Config) -> Result<(), Problem> {
    positive("retry.initial", config.retry.initial)?;
    if config.retry.initial > config.retry.max {
        return Err(problem(
            "retry.initial",
            format!(
                "must not be longer than retry.max (got {} > {})",
                humantime::format_duration(config.retry.initial),
                humantime::format_duration(config.retry.max)
            ),
        ));
    }
    if config.spool.max_events_per_sink == 0 {
        return Err(problem(
            "spool.max_events_per_sink",
            "must be at least 1 (got 0)",
        ));
    }

    if let Some(mqtt) = &config.mqtt {
        check_url("mqtt.url", &mqtt.url, &["mqtt", "mqtts"])?;
        not_empty("mqtt.client_id", &mqtt.client_id)?;
        topic_part("mqtt.base_topic", &mqtt.base_topic, &['+', '#'])?;
        if mqtt.qos > 2 {
            return Err(problem(
                "mqtt.qos",
                format!("must be 0, 1 or 2 (got {})", mqtt.qos),
            ));
        }
        match (&mqtt.cert_file, &mqtt.key_file) {
            (Some(_), None) => return Err(problem("mqtt.cert_file", "needs mqtt.key_file too")),
            (None, Some(_)) => return Err(problem("mqtt.key_file", "needs mqtt.cert_file too")),
            _ => {}
        }
    }

    if let Some(nats) = &config.nats {
        // The subjects the prefix makes and the stream name are the sink's to check
        // (`sinks::nats::prepare`): they are JetStream's and the server's rules.
        check_url("nats.url", &nats.url, &["nats", "tls"])?;
        let methods = [
            nats.credentials_file.is_some(),
            nats.token.is_some(),
            nats.user.is_some(),
        ];
        if methods.iter().filter(|set| **set).count() > 1 {
            return Err(problem(
                "nats",
                "set only one of credentials_file, token, or user/password",
            ));
        }
        match (&nats.user, &nats.password) {
            (Some(_), None) => return Err(problem("nats.user", "needs nats.password too")),
            (None, Some(_)) => return Err(problem("nats.password", "needs nats.user too")),
            _ => {}
        }
        // JetStream's rule for object store (and KV) bucket names.
        let valid_bucket = !nats.media_bucket.is_empty()
            && nats
                .media_bucket
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
        if !valid_bucket {
            return Err(problem(
                "nats.media_bucket",
                format!(
                    "must be letters, digits, `_` or `-` (got {:?}); it names a JetStream object store",
                    nats.media_bucket
                ),
            ));
        }
    }

    for (index, webhook) in config.webhooks.iter().enumerate() {
        let key = |field: &str| format!("webhooks[{index}].{field}");
        check_url(&key("url"), &webhook.url, &["http", "https"])?;
        if webhook.events.is_empty() {
            return Err(problem(
                key("events"),
                "must name at least one of message, login, logout, contacts, error, receipt",
            ));
        }
        positive(&key("timeout"), webhook.timeout)?;
    }

    if let Some(http) = &config.http {
        validate_http(http)?;
    }

    not_empty("homeassistant.prefix", &config.homeassistant.prefix)
}

/// The `media` section: sizes and durations that leave room to work, URLs the bridge can
/// sign for, hosts it can match. That `paths` exist is checked by [`crate::app::prepare`].
fn validate_media(media: &MediaConfig) -> Result<(), Problem> {
    if media.dir.as_ref().is_some_and(|d| d.as_os_str().is_empty()) {
        return Err(problem("media.dir", "must not be empty"));
    }
    at_least_one_byte("media.max_bytes", media.max_bytes)?;
    at_least_one_byte("media.max_file_bytes", media.max_file_bytes)?;
    if media.max_file_bytes > media.max_bytes {
        return Err(problem(
            "media.max_file_bytes",
            format!(
                "must not be larger than media.max_bytes (got {} > {}): the store could not keep such a file",
                super::byte_size::format(media.max_file_bytes),
                super::byte_size::format(media.max_bytes)
            ),
        ));
    }
    positive("media.max_age", media.max_age)?;
    positive("media.wait", media.wait)?;
    if let Some(url) = &media.public_url {
        check_url("media.public_url", url, &["http", "https"])?;
        if url.query().is_some() || url.fragment().is_some() {
            return Err(problem(
                "media.public_url",
                format!("must be a base URL without ?query or #fragment (got \"{url}\")"),
            ));
        }
    }
    for (index, host) in media.fetch.allow_hosts.iter().enumerate() {
        if !is_host_pattern(host) {
            return Err(problem(
                format!("media.fetch.allow_hosts[{index}]"),
                format!(
                    "must be a host name (*.example.com for its subdomains), an IP address or \
                     a CIDR block such as 192.168.1.0/24, without scheme or port (got {host:?})"
                ),
            ));
        }
    }
    at_least_one_byte("media.fetch.max_bytes", media.fetch.max_bytes)?;
    positive("media.fetch.timeout", media.fetch.timeout)?;
    for (index, path) in media.paths.iter().enumerate() {
        if path.as_os_str().is_empty() {
            return Err(problem(
                format!("media.paths[{index}]"),
                "must not be empty",
            ));
        }
    }
    Ok(())
}

/// A `media.fetch.allow_hosts` entry: `name`, `*.name`, an IP address or `ip/prefix`.
fn is_host_pattern(entry: &str) -> bool {
    if let Some((ip, bits)) = entry.split_once('/') {
        let max = match ip.parse::<std::net::IpAddr>() {
            Ok(std::net::IpAddr::V4(_)) => 32,
            Ok(std::net::IpAddr::V6(_)) => 128,
            Err(_) => return false,
        };
        return bits.parse::<u8>().is_ok_and(|bits| bits <= max);
    }
    if entry.parse::<std::net::IpAddr>().is_ok() {
        return true;
    }
    let name = entry.strip_prefix("*.").unwrap_or(entry);
    !name.is_empty()
        && name.split('.').all(|label| {
            !label.is_empty()
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        })
}

fn at_least_one_byte(key: &str, value: u64) -> Result<(), Problem> {
    if value == 0 {
        return Err(problem(key, "must be more than 0 (got 0)"));
    }
    Ok(())
}

/// The `http` section: a listener others can reach needs a token (or an explicit
/// `insecure_no_auth`), and a token is never empty.
fn validate_http(http: &HttpConfig) -> Result<(), Problem> {
    if http.token.as_ref().is_some_and(|t| t.expose().is_empty()) {
        return Err(problem(
            "http.token",
            "is empty, which would turn authentication off; leave the key out (or null) for no token",
        ));
    }
    if !http.listen.ip().is_loopback() && http.token.is_none() && !http.insecure_no_auth {
        return Err(problem(
            "http.listen",
            format!(
                "{} is reachable from other machines, so http.token must be set \
                 (or set http.insecure_no_auth: true to serve the API to anyone who can reach it)",
                http.listen
            ),
        ));
    }
    if http.max_connections == 0 {
        return Err(problem(
            "http.max_connections",
            "must be at least 1 (got 0)",
        ));
    }
    for (index, host) in http.allowed_hosts.iter().enumerate() {
        let valid = !host.is_empty()
            && host
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-.:[]_".contains(c));
        if !valid {
            return Err(problem(
                format!("http.allowed_hosts[{index}]"),
                format!(
                    "must be a host name, optionally with :port, such as bridge.lan (got {host:?})"
                ),
            ));
        }
    }
    if let Some(url) = &http.public_url {
        check_url("http.public_url", url, &["http", "https"])?;
    }
    Ok(())
}

fn check_url(key: &str, url: &Url, schemes: &[&str]) -> Result<(), Problem> {
    if !schemes.contains(&url.scheme()) {
        let allowed: Vec<String> = schemes.iter().map(|s| format!("{s}://")).collect();
        return Err(problem(
            key,
            format!("must start with {} (got \"{url}\")", allowed.join(" or ")),
        ));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(problem(key, format!("must include a host (got \"{url}\")")));
    }
    Ok(())
}

fn positive(key: &str, duration: Duration) -> Result<(), Problem> {
    if duration.is_zero() {
        return Err(problem(key, "must be longer than 0s"));
    }
    Ok(())
}

fn not_empty(key: &str, value: &str) -> Result<(), Problem> {
    if value.is_empty() {
        return Err(problem(key, "must not be empty"));
    }
    Ok(())
}

/// A topic or subject level: not empty and free of wildcards and separators.
fn topic_part(key: &str, value: &str, forbidden: &[char]) -> Result<(), Problem> {
    not_empty(key, value)?;
    if let Some(c) = value.chars().find(|c| forbidden.contains(c)) {
        return Err(problem(
            key,
            format!("must not contain {c:?} (got {value:?})"),
        ));
    }
    Ok(())
}
