//! The `media` section, `mqtt.media` and `nats.media_bucket`: defaults, byte sizes in every
//! accepted form, the store directory derived from `state_dir`, and each rule naming its key.

use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

use super::*;

fn vars(pairs: &[(&str, &str)]) -> HashMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn parse_ok(yaml: &str) -> Config {
    parse(yaml, "bridge.yaml", &vars(&[])).unwrap_or_else(|e| panic!("{yaml:?}: {e}"))
}

fn parse_err(yaml: &str) -> String {
    match parse(yaml, "bridge.yaml", &vars(&[])) {
        Ok(config) => panic!("{yaml:?} should fail, got {:?}", config.media),
        Err(e) => e.to_string(),
    }
}

#[test]
fn media_defaults_follow_the_design() {
    let config = parse_ok("");
    let media = &config.media;
    assert_eq!(media.download, MediaDownload::ALL);
    assert_eq!(media.dir.as_deref(), Some(Path::new("./state/media")));
    assert_eq!(media.max_bytes, 2 << 30);
    assert_eq!(media.max_age, Duration::from_secs(30 * 86_400));
    assert_eq!(media.max_file_bytes, 100 << 20);
    assert_eq!(media.wait, Duration::from_secs(20));
    assert_eq!(media.inline_max_bytes, 0);
    assert_eq!(media.public_url, None);
    assert!(media.fetch.allow_hosts.is_empty());
    assert_eq!(media.fetch.max_bytes, 25 << 20);
    assert_eq!(media.fetch.timeout, Duration::from_secs(30));
    assert!(media.paths.is_empty());
    let config = parse_ok("mqtt: {}\nnats: {}\n");
    assert!(!config.mqtt.unwrap().media);
    assert_eq!(config.nats.unwrap().media_bucket, "wechat-media");
}

#[test]
fn media_dir_defaults_to_the_state_dir() {
    let config = parse_ok("state_dir: /var/lib/wx\n");
    assert_eq!(
        config.media.dir.as_deref(),
        Some(Path::new("/var/lib/wx/media"))
    );
    let config = parse_ok("state_dir: /var/lib/wx\nmedia: {dir: null}\n");
    assert_eq!(
        config.media.dir.as_deref(),
        Some(Path::new("/var/lib/wx/media"))
    );
    let config = parse_ok("media: {dir: /big/disk}\n");
    assert_eq!(config.media.dir.as_deref(), Some(Path::new("/big/disk")));
    assert_eq!(config.media.dir_in(Path::new("/x")), Path::new("/big/disk"));
}

#[test]
fn byte_sizes_are_read_from_units_plain_numbers_and_the_environment() {
    let config = parse_ok(
        "media: {max_bytes: 3GiB, max_file_bytes: 512KiB, inline_max_bytes: 65536, \
         fetch: {max_bytes: 25MB}}\n",
    );
    assert_eq!(config.media.max_bytes, 3 << 30);
    assert_eq!(config.media.max_file_bytes, 512 << 10);
    assert_eq!(config.media.inline_max_bytes, 65536);
    assert_eq!(config.media.fetch.max_bytes, 25_000_000);

    let env = vars(&[
        ("WXBRIDGE__MEDIA__MAX_BYTES", "1GiB"),
        ("WXBRIDGE__MEDIA__INLINE_MAX_BYTES", "4096"),
    ]);
    let config = parse("", "bridge.yaml", &env).unwrap();
    assert_eq!(config.media.max_bytes, 1 << 30);
    assert_eq!(config.media.inline_max_bytes, 4096);
}

#[test]
fn media_keys_and_types_are_strict() {
    let err = parse_err("media: {download: [image, sticker]}\n");
    assert!(
        err.contains("media.download[1]: unknown value \"sticker\"")
            && err.contains("image, voice, video, file, emoticon"),
        "{err}"
    );
    let err = parse_err("media: {max_bytes: 2 gigs}\n");
    assert!(
        err.starts_with("bridge.yaml: media.max_bytes: expected a size in bytes such as"),
        "{err}"
    );
    let err = parse_err("media: {fetch: {max_bytes: -5}}\n");
    assert!(
        err.contains("media.fetch.max_bytes: must not be negative"),
        "{err}"
    );
    let err = parse_err("media: {fetch: {hosts: []}}\n");
    assert!(err.contains("unknown key \"media.fetch.hosts\""), "{err}");
    let err = parse_err("media: {wait: soon}\n");
    assert!(err.contains("media.wait:"), "{err}");
}

#[test]
fn each_media_rule_names_its_key() {
    let cases = [
        ("media: {dir: ''}", "media.dir: must not be empty"),
        (
            "media: {max_bytes: 0}",
            "media.max_bytes: must be more than 0",
        ),
        (
            "media: {max_file_bytes: 0}",
            "media.max_file_bytes: must be more than 0",
        ),
        (
            "media: {max_bytes: 1MiB, max_file_bytes: 2MiB}",
            "media.max_file_bytes: must not be larger than media.max_bytes (got 2MiB > 1MiB)",
        ),
        (
            "media: {max_age: 0s}",
            "media.max_age: must be longer than 0s",
        ),
        ("media: {wait: 0s}", "media.wait: must be longer than 0s"),
        (
            "media: {public_url: 'ftp://x/'}",
            "media.public_url: must start with http:// or https://",
        ),
        (
            "media: {public_url: 'https://x/?a=1'}",
            "media.public_url: must be a base URL without ?query",
        ),
        (
            "media: {fetch: {allow_hosts: [example.com, 'http://x']}}",
            "media.fetch.allow_hosts[1]: must be a host name",
        ),
        (
            "media: {fetch: {allow_hosts: ['10.0.0.0/33']}}",
            "media.fetch.allow_hosts[0]: must be a host name",
        ),
        (
            "media: {fetch: {allow_hosts: ['cam.lan:8080']}}",
            "media.fetch.allow_hosts[0]: must be a host name",
        ),
        (
            "media: {fetch: {max_bytes: 0}}",
            "media.fetch.max_bytes: must be more than 0",
        ),
        (
            "media: {fetch: {timeout: 0s}}",
            "media.fetch.timeout: must be longer than 0s",
        ),
        ("media: {paths: ['']}", "media.paths[0]: must not be empty"),
        (
            "nats: {media_bucket: 'wechat.media'}",
            "nats.media_bucket: must be letters, digits, `_` or `-`",
        ),
        (
            "nats: {media_bucket: ''}",
            "nats.media_bucket: must be letters",
        ),
    ];
    for (yaml, expected) in cases {
        let err = parse_err(yaml);
        assert!(
            err.starts_with(&format!("bridge.yaml: {expected}")),
            "{yaml}: expected {expected:?}, got {err:?}"
        );
    }
}

#[test]
fn valid_media_values_pass() {
    let config = parse_ok(
        "media: {download: [], max_bytes: 1MiB, max_file_bytes: 1MiB, \
         public_url: 'https://bridge.example/wx/', \
         fetch: {allow_hosts: [cam.lan, '*.example.com', 192.168.1.5, '10.0.0.0/8', '::1', 'fd00::/8']}, \
         paths: [/srv/outbox]}\n\
         mqtt: {media: true}\nnats: {media_bucket: my_media-1}\n",
    );
    assert!(config.media.download.is_empty());
    assert!(config.mqtt.unwrap().media);
    assert_eq!(config.nats.unwrap().media_bucket, "my_media-1");
}

#[test]
fn effective_yaml_shows_sizes_with_units_and_loads_back() {
    let config = parse_ok("media: {max_bytes: 3GiB, fetch: {max_bytes: 1000}}\n");
    let yaml = config.effective_yaml();
    assert!(yaml.contains("max_bytes: 3GiB"), "{yaml}");
    assert!(yaml.contains("max_bytes: 1000\n"), "{yaml}");
    assert_eq!(parse_ok(&yaml), config);
}
