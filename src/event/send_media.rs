//! The media of a send command (DESIGN.md "Media"): `image`, `file`, `video` or `emoticon`,
//! each naming one source, and how the command's JSON for it is validated.
//!
//! Only the shape is checked here. Whether a URL's host or a path may be read, and whether a
//! stored file exists, is the bridge's decision (`bridge::media_source`), made before the
//! command is queued; the queue then holds the media as `{"sha256", "name"}` only.
use std::fmt;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// The longest `name` accepted, in bytes (a common file-system limit for one component).
const NAME_MAX: usize = 255;

/// What WeChat is asked to show: the send endpoint follows from it (PROTOCOL.md §9.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SendKind {
    /// A picture (`webwxsendmsgimg`, Type 3).
    Image,
    /// An attachment (`webwxsendappmsg`, Type 6).
    File,
    /// A video (`webwxsendvideomsg`, Type 43).
    Video,
    /// An emoticon (`webwxsendemoticon`, Type 47).
    Emoticon,
}

impl SendKind {
    /// Every kind, in the order the command's fields are listed.
    pub const ALL: [SendKind; 4] = [
        SendKind::Image,
        SendKind::File,
        SendKind::Video,
        SendKind::Emoticon,
    ];

    /// The command field that carries it.
    pub fn as_str(self) -> &'static str {
        match self {
            SendKind::Image => "image",
            SendKind::File => "file",
            SendKind::Video => "video",
            SendKind::Emoticon => "emoticon",
        }
    }
}

impl fmt::Display for SendKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where the bytes come from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MediaSource {
    /// An http(s) URL the bridge fetches (`media.fetch`).
    Url(String),
    /// A file inside one of `media.paths`.
    Path(PathBuf),
    /// The bytes themselves, base64 (standard alphabet, padding optional).
    Base64(String),
    /// A file already in the media store, by its lowercase hex sha256.
    Sha256(String),
}

impl MediaSource {
    /// The source's field name.
    pub fn field(&self) -> &'static str {
        match self {
            MediaSource::Url(_) => "url",
            MediaSource::Path(_) => "path",
            MediaSource::Base64(_) => "base64",
            MediaSource::Sha256(_) => "sha256",
        }
    }
}

/// The media of a command: its kind, its source and the name it is sent under.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SendMedia {
    /// Which field carried it.
    pub kind: SendKind,
    /// Where its bytes are.
    pub source: MediaSource,
    /// The file name WeChat shows (a file's title; its extension); required with `base64`.
    /// When absent it is taken from the URL's or the path's last segment, else made from the
    /// sha256 and the type the bytes show.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

/// A media field as the command and the outbound queue write it: `{"sha256": …, "name": …}`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct MediaField {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    path: Option<PathBuf>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    base64: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    sha256: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    name: Option<String>,
}

impl SendMedia {
    /// The field that carries this media, in the command's own shape.
    pub(super) fn to_field(&self) -> MediaField {
        let mut field = MediaField {
            name: self.name.clone(),
            ..MediaField::default()
        };
        match &self.source {
            MediaSource::Url(u) => field.url = Some(u.clone()),
            MediaSource::Path(p) => field.path = Some(p.clone()),
            MediaSource::Base64(b) => field.base64 = Some(b.clone()),
            MediaSource::Sha256(s) => field.sha256 = Some(s.clone()),
        }
        field
    }

    /// Reads back what [`SendMedia::to_field`] wrote.
    pub(super) fn from_field(kind: SendKind, field: MediaField) -> Result<SendMedia, String> {
        let source = match (field.url, field.path, field.base64, field.sha256) {
            (Some(u), None, None, None) => MediaSource::Url(u),
            (None, Some(p), None, None) => MediaSource::Path(p),
            (None, None, Some(b), None) => MediaSource::Base64(b),
            (None, None, None, Some(s)) => MediaSource::Sha256(s),
            _ => return Err(format!("`{kind}` needs exactly one source")),
        };
        Ok(SendMedia {
            kind,
            source,
            name: field.name,
        })
    }
}

/// Reads the media field of a command, if it has one. Errors name the field
/// (`image.url`, …); at most one of the kinds may be given.
pub(super) fn parse_media(map: &Map<String, Value>) -> Result<Option<SendMedia>, String> {
    let mut given = SendKind::ALL
        .into_iter()
        .filter(|k| !matches!(map.get(k.as_str()), None | Some(Value::Null)));
    let Some(kind) = given.next() else {
        return Ok(None);
    };
    if let Some(other) = given.next() {
        return Err(format!(
            "give at most one of `image`, `file`, `video`, `emoticon` (got `{kind}` and `{other}`)"
        ));
    }
    let Some(Value::Object(fields)) = map.get(kind.as_str()) else {
        return Err(format!(
            "`{kind}` must be an object with one of `url`, `path`, `base64`, `sha256`"
        ));
    };
    if let Some(unknown) = fields
        .keys()
        .find(|k| !["url", "path", "base64", "sha256", "name"].contains(&k.as_str()))
    {
        return Err(format!(
            "unknown field `{kind}.{unknown}`; expected `url`, `path`, `base64` or `sha256`, and \
             optionally `name`"
        ));
    }
    let string = |field: &str| -> Result<Option<String>, String> {
        match fields.get(field) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) if s.is_empty() => {
                Err(format!("`{kind}.{field}` must not be empty"))
            }
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(_) => Err(format!("`{kind}.{field}` must be a string")),
        }
    };
    let mut sources = Vec::new();
    if let Some(url) = string("url")? {
        url::Url::parse(&url).map_err(|e| format!("`{kind}.url` is not a URL: {e}"))?;
        sources.push(MediaSource::Url(url));
    }
    if let Some(path) = string("path")? {
        sources.push(MediaSource::Path(PathBuf::from(path)));
    }
    if let Some(data) = string("base64")? {
        sources.push(MediaSource::Base64(data));
    }
    if let Some(sha) = string("sha256")? {
        if sha.len() != 64 || !sha.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(format!(
                "`{kind}.sha256` must be 64 hexadecimal characters (the sha256 of a stored file)"
            ));
        }
        sources.push(MediaSource::Sha256(sha.to_ascii_lowercase()));
    }
    if sources.len() != 1 {
        return Err(format!(
            "`{kind}` needs exactly one of `url`, `path`, `base64`, `sha256` (got {})",
            sources.len()
        ));
    }
    let source = sources.remove(0);
    let name = string("name")?;
    if let Some(name) = &name {
        check_name(name).map_err(|problem| format!("`{kind}.name` {problem}"))?;
    } else if matches!(source, MediaSource::Base64(_)) {
        return Err(format!(
            "missing field `{kind}.name`: base64 bytes need a file name"
        ));
    }
    Ok(Some(SendMedia { kind, source, name }))
}

/// Why `name` cannot be a file name WeChat shows, if it cannot: it is one path component of
/// printable characters, so it never names a place on disk nor breaks the upload's headers.
pub fn check_name(name: &str) -> Result<(), &'static str> {
    if name.len() > NAME_MAX {
        return Err("is longer than 255 bytes");
    }
    if name.contains(['/', '\\']) || name == "." || name == ".." {
        return Err("must be a file name, not a path");
    }
    if name.chars().any(char::is_control) {
        return Err("must not contain control characters");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn media(v: Value) -> Result<Option<SendMedia>, String> {
        parse_media(v.as_object().unwrap())
    }

    #[test]
    fn each_kind_takes_each_source() {
        let sha = "AB".repeat(32);
        for kind in SendKind::ALL {
            let cases = [
                (
                    json!({"url": "https://example.com/a.jpg"}),
                    MediaSource::Url("https://example.com/a.jpg".into()),
                ),
                (
                    json!({"path": "/srv/a.jpg"}),
                    MediaSource::Path("/srv/a.jpg".into()),
                ),
                (
                    json!({"base64": "aGk=", "name": "a.txt"}),
                    MediaSource::Base64("aGk=".into()),
                ),
                (json!({"sha256": sha}), MediaSource::Sha256("ab".repeat(32))),
            ];
            for (fields, source) in cases {
                let got = media(json!({ kind.as_str(): fields })).unwrap().unwrap();
                assert_eq!(got.kind, kind);
                assert_eq!(got.source, source, "the sha256 is lowercased");
            }
        }
        assert_eq!(media(json!({"text": "hi", "image": null})).unwrap(), None);
    }

    #[test]
    fn a_bad_media_field_is_named() {
        let cases = [
            (
                json!({"image": {"url": "x"}, "file": {"url": "y"}}),
                "at most one",
            ),
            (
                json!({"image": "https://example.com/a.jpg"}),
                "`image` must be an object",
            ),
            (json!({"video": {}}), "exactly one"),
            (
                json!({"video": {"url": "https://a/b", "path": "/c"}}),
                "exactly one",
            ),
            (json!({"file": {"url": "not a url"}}), "`file.url`"),
            (json!({"file": {"path": ""}}), "`file.path`"),
            (json!({"file": {"path": 7}}), "`file.path`"),
            (json!({"emoticon": {"sha256": "abc"}}), "`emoticon.sha256`"),
            (
                json!({"emoticon": {"sha256": "g".repeat(64)}}),
                "`emoticon.sha256`",
            ),
            (json!({"image": {"base64": "aGk="}}), "`image.name`"),
            (
                json!({"image": {"sha256": "a".repeat(64), "size": 3}}),
                "`image.size`",
            ),
            (
                json!({"file": {"sha256": "a".repeat(64), "name": "../x"}}),
                "`file.name`",
            ),
            (
                json!({"file": {"sha256": "a".repeat(64), "name": "a\nb"}}),
                "`file.name`",
            ),
            (
                json!({"file": {"sha256": "a".repeat(64), "name": "x".repeat(256)}}),
                "`file.name`",
            ),
        ];
        for (v, needle) in cases {
            let e = media(v.clone()).unwrap_err();
            assert!(e.contains(needle), "{v}: {e}");
        }
    }

    #[test]
    fn the_queue_keeps_media_in_the_commands_shape() {
        let m = SendMedia {
            kind: SendKind::File,
            source: MediaSource::Sha256("a".repeat(64)),
            name: Some("report.pdf".into()),
        };
        let stored = serde_json::to_string(&m.to_field()).unwrap();
        assert_eq!(
            stored,
            format!(r#"{{"sha256":"{}","name":"report.pdf"}}"#, "a".repeat(64))
        );
        let back = serde_json::from_str(&stored).unwrap();
        assert_eq!(SendMedia::from_field(SendKind::File, back).unwrap(), m);
    }
}
