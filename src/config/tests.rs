//! Behaviour of the loader: discovery, `${VAR}`, overrides, strictness, validation, masking,
//! and the example file staying in step with the types.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use yaml_serde::Value;

use super::load::load_in;
use super::test_support::{env, parse_err, parse_ok};
use super::*;

const EXAMPLE: &str = include_str!("../../bridge.example.yaml");

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).expect("write a test file");
    path
}

// Discovery

#[test]
fn defaults_apply_when_no_file_is_found() {
    let dir = tempfile::tempdir().unwrap();
    let loaded = load_in(dir.path(), None, &env(&[])).unwrap();
    assert_eq!(loaded.source, None);
    assert_eq!(loaded.config, Config::default());
    assert_eq!(loaded.config.account, "default");
    assert_eq!(loaded.config.state_dir, Path::new("./state"));
    assert_eq!(loaded.config.wechat.qr_png, Path::new("./state/qr.png"));
    assert_eq!(
        loaded.config.wechat.login_url.as_str(),
        "https://login.wx.qq.com/"
    );
    assert_eq!(loaded.config.send.rate.per_second, 0.5);
    assert_eq!(loaded.config.retry.max, Duration::from_secs(300));
    assert!(loaded.config.mqtt.is_none() && loaded.config.nats.is_none());
    assert!(loaded.config.webhooks.is_empty() && loaded.config.http.is_none());
}

#[test]
fn explicit_file_wins_over_env_and_working_dir() {
    let dir = tempfile::tempdir().unwrap();
    let explicit = write(dir.path(), "explicit.yaml", "account: explicit");
    let named = write(dir.path(), "named.yaml", "account: named");
    write(dir.path(), "bridge.yaml", "account: cwd");
    let vars = env(&[("WXBRIDGE_CONFIG", named.to_str().unwrap())]);
    let loaded = load_in(dir.path(), Some(&explicit), &vars).unwrap();
    assert_eq!(loaded.config.account, "explicit");
    assert_eq!(loaded.source, Some(explicit));
}

#[test]
fn env_named_file_wins_over_working_dir() {
    let dir = tempfile::tempdir().unwrap();
    let named = write(dir.path(), "named.yaml", "account: named");
    write(dir.path(), "bridge.yaml", "account: cwd");
    let vars = env(&[("WXBRIDGE_CONFIG", named.to_str().unwrap())]);
    let loaded = load_in(dir.path(), None, &vars).unwrap();
    assert_eq!(loaded.config.account, "named");
    assert_eq!(loaded.source, Some(named));
}

#[test]
fn bridge_yaml_in_working_dir_is_found() {
    let dir = tempfile::tempdir().unwrap();
    let found = write(dir.path(), "bridge.yaml", "account: cwd");
    let loaded = load_in(dir.path(), None, &env(&[("WXBRIDGE_CONFIG", "")])).unwrap();
    assert_eq!(loaded.config.account, "cwd");
    assert_eq!(loaded.source, Some(found));
}

#[test]
fn missing_explicit_file_is_an_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "bridge.yaml", "account: cwd");
    let missing = dir.path().join("nope.yaml");
    let err = load_in(dir.path(), Some(&missing), &env(&[])).unwrap_err();
    assert!(matches!(
        err,
        ConfigError::NotFound {
            named_by: "--config",
            ..
        }
    ));
    assert!(err
        .to_string()
        .contains("nope.yaml: config file not found (named by --config)"));
}

#[test]
fn missing_env_named_file_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "bridge.yaml", "account: cwd");
    let missing = dir.path().join("gone.yaml");
    let vars = env(&[("WXBRIDGE_CONFIG", missing.to_str().unwrap())]);
    let err = load_in(dir.path(), None, &vars).unwrap_err();
    assert!(err
        .to_string()
        .ends_with("gone.yaml: config file not found (named by WXBRIDGE_CONFIG)"));
}

#[test]
fn errors_name_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), "bridge.yaml", "mqtt:\n  qos: 3\n");
    let err = load_in(dir.path(), None, &env(&[])).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!("{}: mqtt.qos: must be 0, 1 or 2 (got 3)", path.display())
    );
}

#[test]
fn syntax_errors_keep_line_and_column() {
    let err = parse_err("account: home\nsend:\n  rate: [\n", &[]);
    assert!(err.starts_with("bridge.yaml: "), "{err}");
    assert!(err.contains("line 4 column 1"), "{err}");
}

#[test]
fn an_empty_file_means_defaults() {
    assert_eq!(parse_ok("# nothing yet\n", &[]), Config::default());
}

#[test]
fn a_file_that_is_not_a_mapping_is_rejected() {
    let err = parse_err("- account\n", &[]);
    assert!(
        err.starts_with("bridge.yaml: (top level): expected a mapping"),
        "{err}"
    );
}

// ${VAR}

#[test]
fn variables_are_expanded_inside_strings() {
    let config = parse_ok(
        "mqtt:\n  url: mqtt://${HOST}:1883\n  password: ${PW}\n  qos: ${QOS}\n",
        &[("HOST", "broker"), ("PW", "s3cret #1"), ("QOS", "2")],
    );
    let mqtt = config.mqtt.unwrap();
    assert_eq!(mqtt.url.as_str(), "mqtt://broker:1883");
    assert_eq!(mqtt.password.unwrap().expose(), "s3cret #1");
    assert_eq!(mqtt.qos, 2);
}

#[test]
fn variables_are_expanded_in_lists() {
    let config = parse_ok("send:\n  allow: [Mom, \"${WHO}\"]\n", &[("WHO", "Dad")]);
    assert_eq!(config.send.allow, ["Mom", "Dad"]);
}

#[test]
fn missing_variable_error_names_the_key_and_the_variable() {
    let err = parse_err(
        "webhooks:\n  - url: http://127.0.0.1/hook\n    secret: ${WEBHOOK_SECRET}\n",
        &[],
    );
    assert_eq!(
        err,
        "bridge.yaml: webhooks[0].secret: environment variable WEBHOOK_SECRET is not set \
         (write ${WEBHOOK_SECRET:-} to allow it to be unset)"
    );
}

#[test]
fn fallback_applies_when_variable_is_unset_or_empty() {
    let yaml = "account: ${NAME:-fallback}\n";
    assert_eq!(parse_ok(yaml, &[]).account, "fallback");
    assert_eq!(parse_ok(yaml, &[("NAME", "")]).account, "fallback");
    assert_eq!(parse_ok(yaml, &[("NAME", "home")]).account, "home");
}

#[test]
fn a_reference_that_expands_to_nothing_leaves_the_key_unset() {
    let config = parse_ok("http:\n  token: ${WXBRIDGE_TOKEN:-}\n", &[]);
    assert_eq!(config.http.unwrap().token, None);
    let config = parse_ok("mqtt:\n  password: ${MQTT_PW}\n", &[("MQTT_PW", "")]);
    assert_eq!(config.mqtt.unwrap().password, None);
}

#[test]
fn double_dollar_is_a_literal_reference() {
    let config = parse_ok("mqtt:\n  password: a$${B}c$d\n", &[("B", "no")]);
    assert_eq!(config.mqtt.unwrap().password.unwrap().expose(), "a${B}c$d");
}

#[test]
fn malformed_reference_is_an_error_naming_the_key() {
    let err = parse_err("account: ${NOT CLOSED\n", &[]);
    assert!(
        err.starts_with("bridge.yaml: account: `${` without a closing `}`"),
        "{err}"
    );
    let err = parse_err("account: ${1X}\n", &[]);
    assert!(
        err.starts_with("bridge.yaml: account: \"${1X}\" is not a variable name"),
        "{err}"
    );
}

// WXBRIDGE__ overrides

#[test]
fn overrides_set_typed_values_from_text() {
    let config = parse_ok(
        "mqtt: {}\nnats: {}\n",
        &[
            ("WXBRIDGE__ACCOUNT", "home"),
            ("WXBRIDGE__MQTT__QOS", "2"),
            ("WXBRIDGE__MQTT__PASSWORD", "007"),
            ("WXBRIDGE__NATS__JETSTREAM", "true"),
            ("WXBRIDGE__WECHAT__ZOMBIE_AFTER", "5s"),
            ("WXBRIDGE__SEND__RATE__PER_SECOND", "0.25"),
            ("WXBRIDGE__SEND__MAX_BYTES", "1024"),
        ],
    );
    assert_eq!(config.account, "home");
    let mqtt = config.mqtt.unwrap();
    assert_eq!(mqtt.qos, 2);
    assert_eq!(mqtt.password.unwrap().expose(), "007");
    assert_eq!(mqtt.client_id, "wxbridge-home");
    assert!(config.nats.unwrap().jetstream);
    assert_eq!(config.wechat.zombie_after, Duration::from_secs(5));
    assert_eq!(config.send.rate.per_second, 0.25);
    assert_eq!(config.send.max_bytes, 1024);
}

#[test]
fn override_replaces_a_value_from_the_file() {
    let config = parse_ok(
        "mqtt:\n  url: mqtt://a:1883\n",
        &[("WXBRIDGE__MQTT__URL", "mqtts://b:8883")],
    );
    assert_eq!(config.mqtt.unwrap().url.as_str(), "mqtts://b:8883");
}

#[test]
fn override_creates_a_section() {
    let config = parse_ok("", &[("WXBRIDGE__MQTT__URL", "mqtt://broker:1883")]);
    let mqtt = config.mqtt.unwrap();
    assert_eq!(mqtt.url.as_str(), "mqtt://broker:1883");
    assert_eq!(mqtt.base_topic, "wechat");
    assert_eq!(mqtt.client_id, "wxbridge-default");
}

#[test]
fn override_creates_a_list_item() {
    let config = parse_ok(
        "",
        &[
            ("WXBRIDGE__WEBHOOKS__0__URL", "https://example.com/hook"),
            ("WXBRIDGE__WEBHOOKS__0__EVENTS__0", "login"),
        ],
    );
    assert_eq!(config.webhooks.len(), 1);
    assert_eq!(config.webhooks[0].url.as_str(), "https://example.com/hook");
    assert_eq!(config.webhooks[0].events, [EventKind::Login]);
    assert_eq!(config.webhooks[0].timeout, Duration::from_secs(5));
}

#[test]
fn override_appends_after_items_from_the_file() {
    let config = parse_ok(
        "webhooks:\n  - url: http://a/\n",
        &[("WXBRIDGE__WEBHOOKS__1__URL", "http://b/")],
    );
    let urls: Vec<&str> = config.webhooks.iter().map(|w| w.url.as_str()).collect();
    assert_eq!(urls, ["http://a/", "http://b/"]);
}

#[test]
fn overrides_fill_lists_in_numeric_index_order() {
    let vars: Vec<(String, String)> = (0..12)
        .map(|i| (format!("WXBRIDGE__SEND__ALLOW__{i}"), format!("n{i}")))
        .collect();
    let pairs: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let config = parse_ok("", &pairs);
    let expected: Vec<String> = (0..12).map(|i| format!("n{i}")).collect();
    assert_eq!(config.send.allow, expected);
}

#[test]
fn override_that_skips_a_list_index_is_an_error() {
    let err = parse_err("", &[("WXBRIDGE__WEBHOOKS__2__URL", "http://a/")]);
    assert_eq!(
        err,
        "WXBRIDGE__WEBHOOKS__2__URL: webhooks has 0 item(s), so the next index is 0"
    );
}

#[test]
fn override_below_a_single_value_is_an_error() {
    let err = parse_err("account: home\n", &[("WXBRIDGE__ACCOUNT__NAME", "x")]);
    assert_eq!(
        err,
        "WXBRIDGE__ACCOUNT__NAME: account is a single value, not a section or list"
    );
}

#[test]
fn override_with_an_empty_key_is_an_error() {
    let err = parse_err("", &[("WXBRIDGE__MQTT____URL", "x")]);
    assert!(
        err.starts_with("WXBRIDGE__MQTT____URL: an empty key"),
        "{err}"
    );
}

#[test]
fn null_override_turns_a_section_off() {
    let config = parse_ok("mqtt:\n  qos: 0\n", &[("WXBRIDGE__MQTT", "null")]);
    assert_eq!(config.mqtt, None);
}

#[test]
fn config_file_variable_and_other_variables_are_not_overrides() {
    let config = parse_ok(
        "",
        &[
            ("WXBRIDGE_CONFIG", "x.yaml"),
            ("WXBRIDGE_TOKEN", "t"),
            ("HOME", "/root"),
        ],
    );
    assert_eq!(config, Config::default());
}

#[test]
fn errors_in_overridden_keys_name_the_variable() {
    let err = parse_err("", &[("WXBRIDGE__MQTT__QOS", "7")]);
    assert_eq!(
        err,
        "WXBRIDGE__MQTT__QOS: mqtt.qos: must be 0, 1 or 2 (got 7)"
    );
    let err = parse_err("", &[("WXBRIDGE__MQTT__HOTS", "x")]);
    assert!(
        err.starts_with("WXBRIDGE__MQTT__HOTS: unknown key \"mqtt.hots\""),
        "{err}"
    );
    let err = parse_err("", &[("WXBRIDGE__WEBHOOKS__0__SECRET", "x")]);
    assert_eq!(
        err,
        "WXBRIDGE__WEBHOOKS__0__SECRET: webhooks[0]: missing field `url`"
    );
}

// Strict keys and types

#[test]
fn unknown_key_is_rejected_by_name() {
    let err = parse_err("mqtt:\n  hots: broker\n", &[]);
    assert_eq!(
        err,
        "bridge.yaml: unknown key \"mqtt.hots\" (known keys: url, client_id, username, password, \
         ca_file, cert_file, key_file, base_topic, qos, media)"
    );
    let err = parse_err("acount: home\n", &[]);
    assert!(
        err.starts_with("bridge.yaml: unknown key \"acount\" (known keys: account, "),
        "{err}"
    );
    let err = parse_err("webhooks:\n  - url: http://a/\n    secrets: x\n", &[]);
    assert!(
        err.starts_with("bridge.yaml: unknown key \"webhooks[0].secrets\""),
        "{err}"
    );
    let err = parse_err("send:\n  rate:\n    burst: 1\n    per_minute: 3\n", &[]);
    assert!(
        err.starts_with("bridge.yaml: unknown key \"send.rate.per_minute\""),
        "{err}"
    );
}

#[test]
fn unknown_event_kind_is_rejected() {
    let err = parse_err(
        "webhooks:\n  - url: http://a/\n    events: [message, typing]\n",
        &[],
    );
    assert_eq!(
        err,
        "bridge.yaml: webhooks[0].events[1]: unknown value \"typing\" \
         (expected one of: message, login, logout, contacts, error, receipt)"
    );
}

#[test]
fn wrong_types_name_the_key() {
    let err = parse_err("mqtt:\n  qos: high\n", &[]);
    assert!(
        err.starts_with("bridge.yaml: mqtt.qos: invalid type: string \"high\""),
        "{err}"
    );
    let err = parse_err("retry:\n  initial: 5\n", &[]);
    assert!(err.starts_with("bridge.yaml: retry.initial: "), "{err}");
    assert!(
        err.ends_with("expected a duration such as 5s, 30m or 1h 30m"),
        "{err}"
    );
    let err = parse_err("webhooks:\n  - events: [message]\n", &[]);
    assert_eq!(err, "bridge.yaml: webhooks[0]: missing field `url`");
}

#[test]
fn numbers_are_accepted_where_text_is_expected() {
    let config = parse_ok(
        "account: 42\nmqtt:\n  password: 1234\nsend:\n  allow: [123, true]\n",
        &[],
    );
    assert_eq!(config.account, "42");
    assert_eq!(config.mqtt.unwrap().password.unwrap().expose(), "1234");
    assert_eq!(config.send.allow, ["123", "true"]);
}

// Derived defaults

#[test]
fn qr_png_defaults_to_the_state_dir() {
    let config = parse_ok("state_dir: /var/lib/wxbridge\n", &[]);
    assert_eq!(config.wechat.qr_png, Path::new("/var/lib/wxbridge/qr.png"));
    let config = parse_ok("state_dir: /srv\nwechat:\n  qr_png: /srv/www/qr.png\n", &[]);
    assert_eq!(config.wechat.qr_png, Path::new("/srv/www/qr.png"));
}

#[test]
fn mqtt_client_id_defaults_to_the_account() {
    let config = parse_ok("account: home\nmqtt: {}\n", &[]);
    assert_eq!(config.mqtt.unwrap().client_id, "wxbridge-home");
    let config = parse_ok("account: home\nmqtt:\n  client_id: mine\n", &[]);
    assert_eq!(config.mqtt.unwrap().client_id, "mine");
}

// Validation

#[test]
fn each_validation_rule_names_its_key() {
    let cases = [
        (
            "account: 'my home'",
            "account: must be letters, digits, `_` or `-` (got \"my home\")",
        ),
        ("account: ''", "account: must be letters"),
        ("state_dir: ''", "state_dir: must not be empty"),
        (
            "wechat: {login_url: 'ftp://x'}",
            "wechat.login_url: must start with http:// or https://",
        ),
        (
            "wechat: {zombie_after: 0s}",
            "wechat.zombie_after: must be longer than 0s",
        ),
        (
            "send: {rate: {per_second: 0}}",
            "send.rate.per_second: must be more than 0 (got 0)",
        ),
        (
            "send: {rate: {per_second: -1}}",
            "send.rate.per_second: must be more than 0 (got -1)",
        ),
        (
            "send: {rate: {burst: 0}}",
            "send.rate.burst: must be at least 1",
        ),
        (
            "send: {default_ttl: 0s}",
            "send.default_ttl: must be longer than 0s",
        ),
        (
            "send: {max_bytes: 0}",
            "send.max_bytes: must be more than 0",
        ),
        (
            "send: {limits: {per_recipient: {per_minute: 0}}}",
            "send.limits.per_recipient.per_minute: must be at least 1",
        ),
        (
            "send: {limits: {per_day: 0}}",
            "send.limits.per_day: must be at least 1",
        ),
        (
            "send: {limits: {jitter: [2s, 1s]}}",
            "send.limits.jitter: the first (shortest) pause",
        ),
        (
            "send: {limits: {quiet_hours: '23:00'}}",
            "send.limits.quiet_hours: must be \"HH:MM-HH:MM\"",
        ),
        (
            "send: {allow: [Mom, \"group:\"]}",
            "send.allow[1]: must name a remark, an id or `group:<name>`",
        ),
        (
            "retry: {initial: 0s}",
            "retry.initial: must be longer than 0s",
        ),
        (
            "retry: {initial: 10m, max: 5m}",
            "retry.initial: must not be longer than retry.max (got 10m > 5m)",
        ),
        (
            "spool: {max_events_per_sink: 0}",
            "spool.max_events_per_sink: must be at least 1",
        ),
        (
            "mqtt: {url: 'http://broker'}",
            "mqtt.url: must start with mqtt:// or mqtts://",
        ),
        ("mqtt: {url: 'mqtt://'}", "mqtt.url: must include a host"),
        ("mqtt: {qos: 3}", "mqtt.qos: must be 0, 1 or 2 (got 3)"),
        ("mqtt: {client_id: ''}", "mqtt.client_id: must not be empty"),
        (
            "mqtt: {base_topic: 'a/#'}",
            "mqtt.base_topic: must not contain '#'",
        ),
        (
            "mqtt: {cert_file: c.pem}",
            "mqtt.cert_file: needs mqtt.key_file too",
        ),
        (
            "nats: {url: 'mqtt://x'}",
            "nats.url: must start with nats:// or tls://",
        ),
        (
            "nats: {token: t, user: u, password: p}",
            "nats: set only one of credentials_file, token, or user/password",
        ),
        ("nats: {user: u}", "nats.user: needs nats.password too"),
        (
            "webhooks: [{url: 'mqtt://x'}]",
            "webhooks[0].url: must start with http:// or https://",
        ),
        (
            "webhooks: [{url: 'http://x', events: []}]",
            "webhooks[0].events: must name at least one",
        ),
        (
            "webhooks: [{url: 'http://x', timeout: 0s}]",
            "webhooks[0].timeout: must be longer than 0s",
        ),
        (
            "http: {listen: 'localhost:80'}",
            "http.listen: expected IP:port such as 127.0.0.1:8787",
        ),
        ("http: {token: ''}", "http.token: is empty"),
        (
            "homeassistant: {prefix: ''}",
            "homeassistant.prefix: must not be empty",
        ),
    ];
    for (yaml, expected) in cases {
        let err = parse_err(yaml, &[]);
        assert!(
            err.starts_with(&format!("bridge.yaml: {expected}")),
            "{yaml}: expected {expected:?}, got {err:?}"
        );
    }
}

#[test]
fn send_limits_default_as_designed_and_parse_as_written() {
    let limits = parse_ok("", &[]).send.limits;
    assert_eq!(
        (
            limits.per_recipient.per_minute,
            limits.per_recipient.per_hour,
            limits.per_day
        ),
        (6, 60, 500)
    );
    assert_eq!(
        limits.jitter(),
        (Duration::from_millis(300), Duration::from_millis(1500))
    );
    assert_eq!(limits.quiet_hours, None);
    let yaml = "send:\n  limits:\n    per_recipient: { per_minute: 2, per_hour: 20 }\n    \
                per_day: 50\n    jitter: [0s, 2s]\n    quiet_hours: \"23:00-07:00\"\n";
    let limits = parse_ok(yaml, &[]).send.limits;
    assert_eq!(limits.per_recipient.per_hour, 20);
    assert_eq!(limits.jitter(), (Duration::ZERO, Duration::from_secs(2)));
    assert_eq!(limits.quiet().map(|q| (q.start, q.end)), Some((1380, 420)));
}

#[test]
fn valid_edge_values_pass_validation() {
    parse_ok(
        "send: {rate: {per_second: 0.01, burst: 1}, max_bytes: 1}\nretry: {initial: 5m, max: 5m}\n\
         mqtt: {url: 'mqtts://b:8883', qos: 0, cert_file: c, key_file: k}\n\
         nats: {url: 'tls://n:4222', user: u, password: p}\n\
         webhooks: [{url: 'https://h/'}]\nhttp: {listen: '[::1]:9000'}\n",
        &[],
    );
}

// Output

#[test]
fn effective_yaml_masks_secrets_but_shows_unset_ones_as_null() {
    let config = parse_ok(
        "mqtt:\n  password: hunter2\nnats:\n  token: null\nwebhooks:\n  - url: http://a/\n    secret: whsec_abc\n\
         http:\n  token: tok\n",
        &[],
    );
    let yaml = config.effective_yaml();
    for secret in ["hunter2", "whsec_abc", "tok\n"] {
        assert!(!yaml.contains(secret), "{secret} leaked:\n{yaml}");
    }
    let tree: Value = yaml_serde::from_str(&yaml).unwrap();
    assert_eq!(tree["mqtt"]["password"], Value::from("***"));
    assert_eq!(tree["webhooks"][0]["secret"], Value::from("***"));
    assert_eq!(tree["http"]["token"], Value::from("***"));
    assert_eq!(tree["nats"]["token"], Value::Null);
    assert_eq!(tree["mqtt"]["username"], Value::Null);
}

#[test]
fn debug_output_masks_secrets() {
    let config = parse_ok("mqtt:\n  password: hunter2\n", &[]);
    let debug = format!("{config:?}");
    assert!(!debug.contains("hunter2"));
    assert!(debug.contains("password: Some(\"***\")"));
}

#[test]
fn effective_yaml_loads_back_to_the_same_config() {
    let config = parse_ok(
        "account: home\nstate_dir: /srv/wx\nmqtt: {qos: 2}\nnats: {jetstream: true}\n\
         webhooks: [{url: 'http://a/', events: [message, error], timeout: 1m 30s}]\nhttp: {}\n\
         send: {allow: [Mom], rate: {per_second: 1.5}}\n",
        &[],
    );
    assert_eq!(parse_ok(&config.effective_yaml(), &[]), config);
}

// The example file

/// Every key path in a YAML tree; list items share the path `list[]`.
fn key_paths(value: &Value, prefix: &str, out: &mut BTreeSet<String>) {
    match value {
        Value::Mapping(entries) => {
            for (key, item) in entries {
                let key = key.as_str().expect("keys are strings");
                let path = if prefix.is_empty() {
                    key.to_owned()
                } else {
                    format!("{prefix}.{key}")
                };
                out.insert(path.clone());
                key_paths(item, &path, out);
            }
        }
        Value::Sequence(items) => {
            for item in items {
                key_paths(item, &format!("{prefix}[]"), out);
            }
        }
        _ => {}
    }
}

#[test]
fn example_file_loads_and_shows_every_key() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), "bridge.example.yaml", EXAMPLE);
    let loaded = load_in(dir.path(), Some(&path), &env(&[])).expect("the example loads");

    let mut documented = BTreeSet::new();
    key_paths(&yaml_serde::from_str(EXAMPLE).unwrap(), "", &mut documented);
    let mut effective = BTreeSet::new();
    key_paths(
        &yaml_serde::from_str(&loaded.config.effective_yaml()).unwrap(),
        "",
        &mut effective,
    );
    let undocumented: Vec<_> = effective.difference(&documented).collect();
    assert!(
        undocumented.is_empty(),
        "keys missing from bridge.example.yaml: {undocumented:?}"
    );
    assert_eq!(documented, effective);
}

#[test]
fn example_file_shows_the_defaults() {
    let config = parse_ok(EXAMPLE, &[]);
    let defaults = Config::default();
    assert_eq!(config.account, defaults.account);
    assert_eq!(config.state_dir, defaults.state_dir);
    assert_eq!(config.wechat, defaults.wechat);
    assert_eq!(config.send, defaults.send);
    assert_eq!(config.retry, defaults.retry);
    assert_eq!(config.spool, defaults.spool);
    assert_eq!(config.mqtt, Some(MqttConfig::default()));
    assert_eq!(config.nats, Some(NatsConfig::default()));
    assert_eq!(config.http, Some(HttpConfig::default()));
    assert_eq!(config.homeassistant, defaults.homeassistant);
    assert_eq!(config.media, defaults.media);
    let webhook = WebhookConfig::new("http://127.0.0.1:8080/hook".parse().unwrap());
    assert_eq!(config.webhooks, [webhook]);
}

#[test]
fn example_file_uses_variables_when_set() {
    let config = parse_ok(
        EXAMPLE,
        &[("WEBHOOK_SECRET", "whsec_x"), ("WXBRIDGE_TOKEN", "t")],
    );
    assert_eq!(
        config.webhooks[0].secret.as_ref().unwrap().expose(),
        "whsec_x"
    );
    assert_eq!(config.http.unwrap().token.unwrap().expose(), "t");
}
