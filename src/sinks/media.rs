//! What the buses need to know of an event's media: which stored files a message event refers
//! to (`media.sha256`, `file.sha256`, DESIGN.md "Media"), read from the published JSON, so the
//! MQTT and NATS sinks can put the bytes on the bus before the event.
use serde::Deserialize;

/// The parts of a message event that say which files it refers to.
#[derive(Deserialize)]
struct Head {
    #[serde(rename = "type")]
    msg_type: Option<String>,
    origin: Option<String>,
    media: Option<Ref>,
    file: Option<Ref>,
}

#[derive(Deserialize)]
struct Ref {
    sha256: Option<String>,
}

/// A stored file an event refers to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Referred {
    /// Lowercase hex, checked: it becomes a topic level and a store lookup.
    pub sha256: String,
    /// An inbound image (type `image`, not sent by the bridge): Home Assistant's last image.
    pub inbound_image: bool,
}

/// The files a message event's JSON refers to (`media.sha256`, `file.sha256`), without
/// repeats. Cheap for events without media: the JSON is parsed only when it names a `sha256`.
pub fn referred(payload: &[u8]) -> Vec<Referred> {
    if memchr::memmem::find(payload, b"\"sha256\"").is_none() {
        return Vec::new();
    }
    let Ok(head) = serde_json::from_slice::<Head>(payload) else {
        return Vec::new();
    };
    let inbound_image =
        head.msg_type.as_deref() == Some("image") && head.origin.as_deref() != Some("bridge");
    let mut out: Vec<Referred> = Vec::new();
    for r in [head.media, head.file].into_iter().flatten() {
        let Some(sha256) = r.sha256.filter(|s| crate::media::is_sha256(s)) else {
            continue;
        };
        if out.iter().all(|o| o.sha256 != sha256) {
            out.push(Referred {
                sha256,
                inbound_image,
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";
    const B: &str = "2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae";

    #[test]
    fn events_name_their_files_by_media_and_file_sha256() {
        let image = format!(
            r#"{{"kind":"message","type":"image","origin":"contact","text":null,
                "media":{{"msg_id":"1","kind":"image","sha256":"{A}","mime":"image/jpeg"}}}}"#
        );
        assert_eq!(
            referred(image.as_bytes()),
            [Referred {
                sha256: A.into(),
                inbound_image: true
            }]
        );
        let file = format!(
            r#"{{"type":"file","origin":"phone","file":{{"name":"a.pdf","sha256":"{B}"}},
                "media":{{"sha256":"{B}"}}}}"#
        );
        assert_eq!(
            referred(file.as_bytes()),
            [Referred {
                sha256: B.into(),
                inbound_image: false
            }],
            "one file named twice is published once"
        );
        let sent = format!(r#"{{"type":"image","origin":"bridge","media":{{"sha256":"{A}"}}}}"#);
        assert!(!referred(sent.as_bytes())[0].inbound_image);
    }

    #[test]
    fn failed_downloads_text_and_hostile_hashes_name_no_file() {
        let failed = r#"{"type":"image","media":{"sha256":null,"error":"expired"}}"#;
        assert!(referred(failed.as_bytes()).is_empty());
        let text = r#"{"type":"text","text":"my \"sha256\" is secret"}"#;
        assert!(referred(text.as_bytes()).is_empty());
        for bad in ["#", "../../etc/passwd", &A.to_uppercase(), &A[..63]] {
            let event = serde_json::json!({"type": "image", "media": {"sha256": bad}});
            let bytes = serde_json::to_vec(&event).unwrap();
            assert!(referred(&bytes).is_empty(), "{bad}");
        }
    }
}
