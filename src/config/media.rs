//! The `media` section (DESIGN.md "Media"): which inbound media is fetched, where and how much
//! of it is kept, and what outbound sources may be read. Byte sizes are written as plain
//! numbers or with a unit (`100MiB`, `25MB`); see [`byte_size`].

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use url::Url;

/// `1 KiB`.
const KIB: u64 = 1024;
/// `1 MiB`.
const MIB: u64 = 1024 * KIB;
/// `1 GiB`.
const GIB: u64 = 1024 * MIB;

/// The `media` section.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct MediaConfig {
    /// Inbound message types whose bytes are fetched; empty turns downloads off.
    pub download: Vec<MediaDownload>,
    /// The content-addressed store (`<dir>/<sha256[0:2]>/<sha256>`); when not set,
    /// `<state_dir>/media` (filled in by the loader).
    pub dir: Option<PathBuf>,
    /// Bound of the store in bytes; least recently used files are evicted past it.
    #[serde(with = "byte_size")]
    pub max_bytes: u64,
    /// Files not used for this long are evicted.
    #[serde(with = "humantime_serde")]
    pub max_age: Duration,
    /// Inbound files larger than this are not fetched (the event says `too_large`).
    #[serde(with = "byte_size")]
    pub max_file_bytes: u64,
    /// How long an inbound event may wait for its download before it is published anyway.
    #[serde(with = "humantime_serde")]
    pub wait: Duration,
    /// Files up to this size also travel base64-encoded in the event; 0: never.
    #[serde(with = "byte_size")]
    pub inline_max_bytes: u64,
    /// Base URL of the HTTP API as others reach it, for the signed `media.url` of events;
    /// when not set, `http.public_url`, else `http://<http.listen>`.
    pub public_url: Option<Url>,
    /// Outbound `{"url": …}` sources.
    pub fetch: MediaFetchConfig,
    /// Directories an outbound `{"path": …}` source may read from; empty: paths are refused.
    pub paths: Vec<PathBuf>,
}

impl Default for MediaConfig {
    fn default() -> Self {
        MediaConfig {
            download: MediaDownload::ALL.to_vec(),
            dir: Some(default_media_dir(Path::new(super::DEFAULT_STATE_DIR))),
            max_bytes: 2 * GIB,
            max_age: Duration::from_secs(30 * 24 * 3600),
            max_file_bytes: 100 * MIB,
            wait: Duration::from_secs(20),
            inline_max_bytes: 0,
            public_url: None,
            fetch: MediaFetchConfig::default(),
            paths: Vec::new(),
        }
    }
}

impl MediaConfig {
    /// The store directory: `dir`, or `<state_dir>/media` when it is not set.
    pub fn dir_in(&self, state_dir: &Path) -> PathBuf {
        self.dir
            .clone()
            .unwrap_or_else(|| default_media_dir(state_dir))
    }
}

/// The store directory used when `media.dir` is not set.
pub(super) fn default_media_dir(state_dir: &Path) -> PathBuf {
    state_dir.join("media")
}

/// `media.fetch`: outbound `{"url": …}` sources.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct MediaFetchConfig {
    /// Hosts a URL may name: host names (`*.example.com` for its subdomains), IP addresses or
    /// CIDR blocks. Empty: any public host. Loopback, private and link-local addresses are
    /// refused unless listed.
    pub allow_hosts: Vec<String>,
    /// A source larger than this is refused (`media_too_large`) while it streams; also the
    /// cap of a multipart `POST /send` file.
    #[serde(with = "byte_size")]
    pub max_bytes: u64,
    /// Deadline of one fetch.
    #[serde(with = "humantime_serde")]
    pub timeout: Duration,
}

impl Default for MediaFetchConfig {
    fn default() -> Self {
        MediaFetchConfig {
            allow_hosts: Vec::new(),
            max_bytes: 25 * MIB,
            timeout: Duration::from_secs(30),
        }
    }
}

/// An inbound message type whose bytes can be fetched (`media.download`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum MediaDownload {
    /// Pictures (MsgType 3).
    Image,
    /// Voice notes (MsgType 34).
    Voice,
    /// Videos (MsgType 43, 62).
    Video,
    /// File attachments (MsgType 49, AppMsgType 6).
    File,
    /// Stickers (MsgType 47).
    Emoticon,
}

impl MediaDownload {
    /// Every type, the default of `media.download`.
    pub const ALL: [MediaDownload; 5] = [
        MediaDownload::Image,
        MediaDownload::Voice,
        MediaDownload::Video,
        MediaDownload::File,
        MediaDownload::Emoticon,
    ];

    /// The name used in the config and in the event's `media.kind`.
    pub fn as_str(self) -> &'static str {
        match self {
            MediaDownload::Image => "image",
            MediaDownload::Voice => "voice",
            MediaDownload::Video => "video",
            MediaDownload::File => "file",
            MediaDownload::Emoticon => "emoticon",
        }
    }
}

impl fmt::Display for MediaDownload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Serde for byte sizes: a plain number of bytes, or a number with a unit: `B`, `KiB`, `MiB`,
/// `GiB`, `TiB` (powers of 1024) or `KB`, `MB`, `GB`, `TB` (powers of 1000), case-insensitive,
/// with an optional space (`2GiB`, `512 KiB`, `25MB`). Written back with the largest binary
/// unit that divides the value exactly, so `check-config` shows `2GiB`, not `2147483648`.
pub mod byte_size {
    use std::fmt;

    use serde::de::{self, Visitor};
    use serde::{Deserializer, Serializer};

    /// The units, longest first so `KiB` is tried before `B`.
    const UNITS: [(&str, u64); 9] = [
        ("kib", 1 << 10),
        ("mib", 1 << 20),
        ("gib", 1 << 30),
        ("tib", 1 << 40),
        ("kb", 1_000),
        ("mb", 1_000_000),
        ("gb", 1_000_000_000),
        ("tb", 1_000_000_000_000),
        ("b", 1),
    ];

    /// Parses `text` as a byte size; the error says what a size looks like.
    pub fn parse(text: &str) -> Result<u64, String> {
        let trimmed = text.trim();
        let digits_end = trimmed
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(trimmed.len());
        let (number, unit) = trimmed.split_at(digits_end);
        let unit = unit.trim().to_ascii_lowercase();
        let multiplier = if unit.is_empty() {
            Some(1)
        } else {
            UNITS
                .iter()
                .find(|(name, _)| *name == unit)
                .map(|(_, factor)| *factor)
        };
        let bad = || {
            format!(
                "expected a size in bytes such as 1048576, 512KiB, 100MiB or 2GiB (got {text:?})"
            )
        };
        let (Ok(number), Some(multiplier)) = (number.parse::<u64>(), multiplier) else {
            return Err(bad());
        };
        number
            .checked_mul(multiplier)
            .ok_or_else(|| format!("is too large (got {text:?})"))
    }

    /// `value` with the largest binary unit that divides it.
    pub fn format(value: u64) -> String {
        for (unit, factor) in [
            ("TiB", 1u64 << 40),
            ("GiB", 1 << 30),
            ("MiB", 1 << 20),
            ("KiB", 1 << 10),
        ] {
            if value != 0 && value.is_multiple_of(factor) {
                return format!("{}{unit}", value / factor);
            }
        }
        value.to_string()
    }

    pub fn serialize<S: Serializer>(value: &u64, serializer: S) -> Result<S::Ok, S::Error> {
        let text = format(*value);
        match text.parse::<u64>() {
            Ok(plain) => serializer.serialize_u64(plain),
            Err(_) => serializer.serialize_str(&text),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<u64, D::Error> {
        deserializer.deserialize_any(SizeVisitor)
    }

    struct SizeVisitor;

    impl Visitor<'_> for SizeVisitor {
        type Value = u64;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a size in bytes such as 1048576, 512KiB, 100MiB or 2GiB")
        }

        fn visit_u64<E: de::Error>(self, value: u64) -> Result<u64, E> {
            Ok(value)
        }

        fn visit_i64<E: de::Error>(self, value: i64) -> Result<u64, E> {
            u64::try_from(value)
                .map_err(|_| E::custom(format_args!("must not be negative (got {value})")))
        }

        fn visit_f64<E: de::Error>(self, value: f64) -> Result<u64, E> {
            Err(E::custom(format_args!(
                "expected a whole number of bytes such as 1048576 or 100MiB (got {value})"
            )))
        }

        fn visit_str<E: de::Error>(self, text: &str) -> Result<u64, E> {
            parse(text).map_err(E::custom)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::byte_size::{format, parse};

    #[test]
    fn byte_sizes_accept_binary_and_decimal_units_and_plain_numbers() {
        assert_eq!(parse("2GiB"), Ok(2 << 30));
        assert_eq!(parse("100MiB"), Ok(100 << 20));
        assert_eq!(parse("25MiB"), Ok(25 << 20));
        assert_eq!(parse("512KiB"), Ok(512 << 10));
        assert_eq!(parse("512 kib"), Ok(512 << 10));
        assert_eq!(parse("25MB"), Ok(25_000_000));
        assert_eq!(parse("1048576"), Ok(1 << 20));
        assert_eq!(parse("0"), Ok(0));
        assert_eq!(parse("7B"), Ok(7));
    }

    #[test]
    fn byte_sizes_refuse_what_is_not_a_size() {
        for bad in ["", "MiB", "-1", "1.5GiB", "12 parsecs", "2 GiB extra"] {
            let err = parse(bad).expect_err(bad);
            assert!(err.contains("such as"), "{bad}: {err}");
        }
        assert!(parse("99999999999TiB").unwrap_err().contains("too large"));
    }

    #[test]
    fn byte_sizes_print_with_the_largest_exact_unit() {
        assert_eq!(format(2 << 30), "2GiB");
        assert_eq!(format(25 << 20), "25MiB");
        assert_eq!(format(1000), "1000");
        assert_eq!(format(0), "0");
        for value in [0, 1, 1000, 512 << 10, 3 << 30, (5 << 20) + 1] {
            assert_eq!(parse(&format(value)), Ok(value));
        }
    }
}
