//! `POST /send` with `multipart/form-data`: a send command whose media comes as a file part.
//!
//! Text fields `to`, `to_id`, `to_key`, `text`, `request_id` and `expires_at` are the
//! command's fields (each at most `send.max_bytes`). The one part with a file name is the media: its field
//! name picks the kind (`image`, `file`, `video`, `emoticon`; any other name sends it as a
//! `file`). It streams into the media store as it arrives, capped at `media.fetch.max_bytes`,
//! so an upload is never held in memory. The command then goes through the same intake as a
//! JSON body, as `{"<kind>": {"sha256": …, "name": <file name>}, …}`, and is answered the
//! same way. A file over the cap is answered with a `media_too_large` result; the rest of
//! the body is read and dropped (up to as much again) so the client gets the answer rather
//! than a reset connection.
use axum::body::Bytes;
use axum::extract::Request;
use axum::http::header::CONTENT_TYPE;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{Map, Value};

use super::auth::refuse;
use super::Account;
use crate::event::{ErrorCode, SendResult};
use crate::media::{IngestError, Stored};

/// The text fields a multipart command may have: those of a JSON command.
const TEXT_FIELDS: [&str; 6] = ["to", "to_id", "to_key", "text", "request_id", "expires_at"];
/// The media kinds a file part's field name can pick.
const KINDS: [&str; 4] = ["image", "file", "video", "emoticon"];

/// Whether the request is `multipart/form-data`.
pub fn is_multipart(headers: &HeaderMap) -> bool {
    headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("multipart/form-data"))
}

/// The media kind a file part's field name picks.
fn kind_of(field: &str) -> &'static str {
    KINDS
        .iter()
        .find(|k| k.eq_ignore_ascii_case(field))
        .copied()
        .unwrap_or("file")
}

/// What a multipart body held.
#[derive(Debug, Default)]
struct Upload {
    fields: Map<String, Value>,
    /// The file part: its kind, what was stored, its file name.
    file: Option<(&'static str, Stored, String)>,
}

impl Upload {
    /// The JSON command the intake gets.
    fn command(self) -> Vec<u8> {
        let mut command = self.fields;
        if let Some((kind, stored, name)) = self.file {
            let mut source = Map::new();
            source.insert("sha256".into(), Value::String(stored.sha256));
            if !name.is_empty() {
                source.insert("name".into(), Value::String(name));
            }
            command.insert(kind.into(), Value::Object(source));
        }
        serde_json::to_vec(&Value::Object(command)).expect("a JSON map serializes")
    }

    fn request_id(&self) -> Option<String> {
        self.fields
            .get("request_id")
            .and_then(Value::as_str)
            .map(str::to_owned)
    }
}

/// Why a multipart body did not become a command.
enum Refusal {
    /// The body is not well-formed multipart (400).
    Malformed(String),
    /// A command problem, answered as an `invalid_command` result.
    Invalid(String),
    /// The file is over `media.fetch.max_bytes`.
    TooLarge(u64),
    /// The store failed (500).
    Store(std::io::Error),
}

/// `POST /send` with a multipart body.
pub async fn send(state: Account, request: Request) -> Response {
    let boundary = request
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(multer::parse_boundary);
    let Some(Ok(boundary)) = boundary else {
        return refuse(
            StatusCode::BAD_REQUEST,
            "multipart/form-data needs a boundary parameter",
        );
    };
    let text_limit = state.max_bytes as u64;
    let file_limit = state.media.config.fetch.max_bytes;
    let limits = TEXT_FIELDS
        .iter()
        .fold(multer::SizeLimit::new(), |limit, field| {
            limit.for_field(*field, text_limit)
        });
    let constraints = multer::Constraints::new().size_limit(limits);
    let body = request.into_body().into_data_stream();
    let mut multipart = multer::Multipart::with_constraints(body, boundary, constraints);
    let mut upload = Upload::default();
    let outcome = read(&state, &mut multipart, &mut upload, file_limit).await;
    let request_id = upload.request_id();
    match outcome {
        Ok(()) => super::api::submit(&state, Bytes::from(upload.command())).await,
        Err(Refusal::Malformed(message)) => refuse(StatusCode::BAD_REQUEST, &message),
        Err(Refusal::Invalid(message)) => Json(SendResult::err(
            request_id,
            ErrorCode::InvalidCommand,
            message,
        ))
        .into_response(),
        Err(Refusal::TooLarge(limit)) => {
            // Read on (and drop) what follows, so the answer reaches a client still sending.
            let _ = drain(&mut multipart, &mut upload, file_limit).await;
            let request_id = upload.request_id();
            tracing::info!(limit, "a multipart upload was over media.fetch.max_bytes");
            Json(SendResult::err(
                request_id,
                ErrorCode::MediaTooLarge,
                format!("the file is larger than media.fetch.max_bytes ({limit} bytes)"),
            ))
            .into_response()
        }
        Err(Refusal::Store(e)) => {
            tracing::warn!(cause = %e, "cannot store a multipart upload");
            refuse(
                StatusCode::INTERNAL_SERVER_ERROR,
                "the media store cannot take the file",
            )
        }
    }
}

/// Reads every part: text fields into `upload.fields`, the file part into the store.
async fn read(
    state: &Account,
    multipart: &mut multer::Multipart<'static>,
    upload: &mut Upload,
    file_limit: u64,
) -> Result<(), Refusal> {
    while let Some(mut field) = multipart.next_field().await.map_err(malformed)? {
        let name = field.name().unwrap_or_default().to_owned();
        if let Some(file_name) = field.file_name().map(base_name) {
            if upload.file.is_some() {
                return Err(Refusal::Invalid(
                    "a multipart command carries one file part only".into(),
                ));
            }
            let mut writer = state
                .media
                .store
                .writer(file_limit)
                .map_err(Refusal::Store)?;
            while let Some(chunk) = field.chunk().await.map_err(malformed)? {
                writer.write(&chunk).await.map_err(|e| match e {
                    IngestError::TooLarge { limit } => Refusal::TooLarge(limit),
                    IngestError::Io(e) => Refusal::Store(e),
                })?;
            }
            let stored = writer.finish().await.map_err(|e| match e {
                IngestError::TooLarge { limit } => Refusal::TooLarge(limit),
                IngestError::Io(e) => Refusal::Store(e),
            })?;
            upload.file = Some((kind_of(&name), stored, file_name));
        } else {
            read_text(field, &name, upload).await?;
        }
    }
    Ok(())
}

/// A text field into `upload.fields`; unknown names are refused.
async fn read_text(
    field: multer::Field<'static>,
    name: &str,
    upload: &mut Upload,
) -> Result<(), Refusal> {
    if !TEXT_FIELDS.contains(&name) {
        return Err(Refusal::Invalid(format!(
            "unknown field `{name}`; expected `to`, `to_id`, `to_key`, `text`, `request_id`, \
             `expires_at` and one file part (image, file, video or emoticon, with a file name)"
        )));
    }
    let text = field.text().await.map_err(|e| match e {
        multer::Error::FieldSizeExceeded { .. } => {
            Refusal::Invalid(format!("field `{name}` is larger than send.max_bytes"))
        }
        other => malformed(other),
    })?;
    if upload
        .fields
        .insert(name.to_owned(), Value::String(text))
        .is_some()
    {
        return Err(Refusal::Invalid(format!("field `{name}` is given twice")));
    }
    Ok(())
}

/// Reads what is left of the body after a refused file, keeping the text fields (for the
/// result's `request_id`); stops after `budget` bytes of file data.
async fn drain(
    multipart: &mut multer::Multipart<'static>,
    upload: &mut Upload,
    budget: u64,
) -> Result<(), multer::Error> {
    let mut left = budget;
    while let Some(mut field) = multipart.next_field().await? {
        let name = field.name().unwrap_or_default().to_owned();
        if field.file_name().is_none() && TEXT_FIELDS.contains(&name.as_str()) {
            if let Ok(text) = field.text().await {
                upload.fields.entry(name).or_insert(Value::String(text));
            }
            continue;
        }
        while let Some(chunk) = field.chunk().await? {
            left = left.saturating_sub(chunk.len() as u64);
            if left == 0 {
                return Ok(());
            }
        }
    }
    Ok(())
}

/// The last component of a client's file name (browsers on Windows may send a full path).
fn base_name(name: &str) -> String {
    name.rsplit(['/', '\\'])
        .next()
        .unwrap_or_default()
        .to_owned()
}

fn malformed(e: multer::Error) -> Refusal {
    match e {
        // The cap on the file part itself is the writer's; this is a text field's.
        multer::Error::FieldSizeExceeded { field_name, .. } => Refusal::Invalid(format!(
            "field `{}` is larger than send.max_bytes",
            field_name.unwrap_or_default()
        )),
        other => Refusal::Malformed(format!("the multipart body cannot be read: {other}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn stored(sha256: &str) -> Stored {
        Stored {
            sha256: sha256.into(),
            size: 3,
            mime: "image/png".into(),
            width: None,
            height: None,
            path: "/x".into(),
        }
    }

    #[test]
    fn the_file_part_becomes_a_sha256_source_of_its_kind() {
        let mut upload = Upload::default();
        upload.fields.insert("to".into(), "Mom".into());
        upload.fields.insert("request_id".into(), "r-1".into());
        upload.file = Some((kind_of("image"), stored("ab"), "cam.jpg".into()));
        let command: Value = serde_json::from_slice(&upload.command()).unwrap();
        assert_eq!(
            command,
            json!({"to": "Mom", "request_id": "r-1", "image": {"sha256": "ab", "name": "cam.jpg"}})
        );
    }

    #[test]
    fn the_field_name_picks_the_kind_and_anything_else_is_a_file() {
        assert_eq!(kind_of("image"), "image");
        assert_eq!(kind_of("Video"), "video");
        assert_eq!(kind_of("emoticon"), "emoticon");
        assert_eq!(kind_of("file"), "file");
        assert_eq!(kind_of("attachment"), "file");
        assert_eq!(kind_of("voice"), "file");
        assert_eq!(kind_of(""), "file");
    }

    #[test]
    fn a_file_without_a_name_has_no_name_field_and_paths_lose_their_directories() {
        let upload = Upload {
            fields: Map::new(),
            file: Some(("file", stored("cd"), String::new())),
        };
        let command: Value = serde_json::from_slice(&upload.command()).unwrap();
        assert_eq!(command, json!({"file": {"sha256": "cd"}}));
        assert_eq!(base_name("C:\\Users\\me\\report.pdf"), "report.pdf");
        assert_eq!(base_name("../../etc/passwd"), "passwd");
        assert_eq!(base_name("plain.txt"), "plain.txt");
    }

    #[test]
    fn only_multipart_form_data_is_multipart() {
        let mut headers = HeaderMap::new();
        assert!(!is_multipart(&headers));
        headers.insert(CONTENT_TYPE, "application/json".parse().unwrap());
        assert!(!is_multipart(&headers));
        headers.insert(
            CONTENT_TYPE,
            "Multipart/Form-Data; boundary=x".parse().unwrap(),
        );
        assert!(is_multipart(&headers));
    }
}
