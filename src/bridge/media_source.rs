//! A command's media source, turned into a file in the media store before the command is
//! queued (DESIGN.md "Media"), so the durable queue holds only `{"sha256", "name"}` and a
//! restart needs no second fetch.
//!
//! | source | rule | refused as |
//! |---|---|---|
//! | `url` | [`fetch`]: http(s), `media.fetch.allow_hosts`, public addresses, redirects re-checked, size and time capped | `media_forbidden`, `media_too_large`, `media_fetch_failed` |
//! | `path` | [`local`]: a regular file inside `media.paths`, canonicalized | `media_forbidden`, `media_too_large` |
//! | `base64` | decoded size capped | `invalid_command`, `media_too_large` |
//! | `sha256` | must be in the store | `invalid_command` |
//!
//! Every size is capped by `media.fetch.max_bytes`.
use url::Url;

use crate::config::MediaConfig;
use crate::event::{check_name, ErrorCode, MediaSource, SendMedia};
use crate::media::{IngestError, MediaStore, Stored};

mod fetch;
mod local;

pub use fetch::Fetcher;

/// Why a source could not be stored: the result's code and message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct SourceError {
    pub code: ErrorCode,
    pub message: String,
}

impl SourceError {
    fn new(code: ErrorCode, message: impl Into<String>) -> SourceError {
        SourceError {
            code,
            message: message.into(),
        }
    }
}

/// Builds the fetcher of `{"url"}` sources from `media.fetch`.
pub(super) fn fetcher(config: &MediaConfig) -> Fetcher {
    Fetcher::new(&config.fetch.allow_hosts, config.fetch.timeout)
}

/// Stores the bytes `media` names and answers the stored file and the name to send it under.
/// Checks come first: a refused source is never read.
pub(super) async fn store(
    media: &SendMedia,
    store: &MediaStore,
    fetcher: &Fetcher,
    config: &MediaConfig,
) -> Result<(Stored, String), SourceError> {
    let kind = media.kind;
    let max = config.fetch.max_bytes;
    let too_large = |what: &str| {
        SourceError::new(
            ErrorCode::MediaTooLarge,
            format!("{what} is larger than media.fetch.max_bytes ({max} bytes)"),
        )
    };
    let ingest_error = |e: IngestError, what: &str| match e {
        IngestError::TooLarge { .. } => too_large(what),
        IngestError::Io(e) => SourceError::new(
            ErrorCode::MediaFetchFailed,
            format!("cannot store the {kind}: {e}"),
        ),
    };
    let (stored, guessed) = match &media.source {
        MediaSource::Sha256(sha) => {
            let stored = store.get(sha).ok_or_else(|| {
                SourceError::new(
                    ErrorCode::InvalidCommand,
                    format!(
                        "`{kind}.sha256`: no stored file has this sha256 (never stored, or \
                         evicted from the media store)"
                    ),
                )
            })?;
            (stored, None)
        }
        MediaSource::Base64(data) => {
            // Four characters carry three bytes: refused before decoding anything.
            if (data.len() as u64) / 4 * 3 > max + 2 {
                return Err(too_large(&format!("`{kind}.base64`")));
            }
            let bytes = decode_base64(data).map_err(|e| {
                SourceError::new(
                    ErrorCode::InvalidCommand,
                    format!("`{kind}.base64` is not base64: {e}"),
                )
            })?;
            let stored = store
                .ingest(bytes.as_slice(), max)
                .await
                .map_err(|e| ingest_error(e, &format!("`{kind}.base64`")))?;
            (stored, None)
        }
        MediaSource::Path(path) => {
            let allowed = config.paths.clone();
            let wanted = path.clone();
            let opened =
                tokio::task::spawn_blocking(move || local::open_allowed(&wanted, &allowed, max))
                    .await
                    .map_err(|e| SourceError::new(ErrorCode::MediaFetchFailed, e.to_string()))?;
            let (file, _) = opened.map_err(|e| match e {
                local::PathError::Forbidden(m) => SourceError::new(ErrorCode::MediaForbidden, m),
                local::PathError::TooLarge { .. } => too_large(&path.display().to_string()),
            })?;
            let stored = store
                .ingest(tokio::fs::File::from_std(file), max)
                .await
                .map_err(|e| ingest_error(e, &path.display().to_string()))?;
            let name = path.file_name().and_then(|n| n.to_str()).map(str::to_owned);
            (stored, name)
        }
        MediaSource::Url(url) => {
            let url = Url::parse(url).map_err(|e| {
                SourceError::new(
                    ErrorCode::InvalidCommand,
                    format!("`{kind}.url` is not a URL: {e}"),
                )
            })?;
            let stored = fetch_into(&url, store, fetcher, max).await?;
            (stored, last_segment(&url))
        }
    };
    let name = media
        .name
        .clone()
        .or(guessed.filter(|n| check_name(n).is_ok() && !n.is_empty()))
        .unwrap_or_else(|| made_up_name(&stored));
    Ok((stored, name))
}

/// Streams a URL's body into the store.
async fn fetch_into(
    url: &Url,
    store: &MediaStore,
    fetcher: &Fetcher,
    max: u64,
) -> Result<Stored, SourceError> {
    let failed = |e: fetch::FetchError| match e {
        fetch::FetchError::Forbidden(m) => SourceError::new(ErrorCode::MediaForbidden, m),
        fetch::FetchError::TooLarge { limit } => SourceError::new(
            ErrorCode::MediaTooLarge,
            format!("the URL's answer is larger than media.fetch.max_bytes ({limit} bytes)"),
        ),
        fetch::FetchError::Failed(m) => SourceError::new(
            ErrorCode::MediaFetchFailed,
            format!("cannot fetch the URL: {m}"),
        ),
    };
    let mut resp = fetcher.open(url, max).await.map_err(failed)?;
    let mut writer = store.writer(max).map_err(|e| {
        SourceError::new(
            ErrorCode::MediaFetchFailed,
            format!("cannot write to the media store: {e}"),
        )
    })?;
    while let Some(chunk) = fetch::next_chunk(&mut resp).await.map_err(failed)? {
        writer.write(&chunk).await.map_err(|e| match e {
            IngestError::TooLarge { limit } => failed(fetch::FetchError::TooLarge { limit }),
            IngestError::Io(e) => SourceError::new(
                ErrorCode::MediaFetchFailed,
                format!("cannot write to the media store: {e}"),
            ),
        })?;
    }
    writer.finish().await.map_err(|e| {
        SourceError::new(
            ErrorCode::MediaFetchFailed,
            format!("cannot store the fetched file: {e}"),
        )
    })
}

/// Standard base64, padded or not.
fn decode_base64(data: &str) -> Result<Vec<u8>, base64::DecodeError> {
    use base64::engine::{general_purpose, DecodePaddingMode, Engine, GeneralPurpose};
    const ENGINE: GeneralPurpose = GeneralPurpose::new(
        &base64::alphabet::STANDARD,
        general_purpose::GeneralPurposeConfig::new()
            .with_decode_padding_mode(DecodePaddingMode::Indifferent),
    );
    ENGINE.decode(data)
}

/// The URL path's last segment, percent-decoded: `snap.jpg` of `…/camera/snap.jpg?t=1`.
fn last_segment(url: &Url) -> Option<String> {
    let segment = url.path_segments()?.next_back()?;
    let decoded = percent_encoding::percent_decode_str(segment)
        .decode_utf8()
        .ok()?;
    Some(decoded.into_owned())
}

/// A name for bytes that came without one: the start of their sha256 and the extension of
/// the type they show (`3f2a9c01b7d4.jpg`).
fn made_up_name(stored: &Stored) -> String {
    let ext = match stored.mime.as_str() {
        "image/jpeg" => "jpg",
        "image/png" => "png",
        "image/gif" => "gif",
        "image/webp" => "webp",
        "image/bmp" => "bmp",
        "video/mp4" => "mp4",
        "audio/mpeg" => "mp3",
        "application/pdf" => "pdf",
        "application/zip" => "zip",
        "text/plain" => "txt",
        _ => "bin",
    };
    format!("{}.{ext}", &stored.sha256[..12])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_come_from_the_url_or_the_bytes() {
        let url = Url::parse("https://cam.example/a%20b/snap%201.jpg?t=1").unwrap();
        assert_eq!(last_segment(&url).as_deref(), Some("snap 1.jpg"));
        let stored = Stored {
            sha256: "3f2a9c01b7d4".to_owned() + &"0".repeat(52),
            size: 1,
            mime: "image/png".into(),
            width: None,
            height: None,
            path: "/x".into(),
        };
        assert_eq!(made_up_name(&stored), "3f2a9c01b7d4.png");
    }

    #[test]
    fn base64_is_read_with_or_without_padding() {
        assert_eq!(decode_base64("aGk=").unwrap(), b"hi");
        assert_eq!(decode_base64("aGk").unwrap(), b"hi");
        assert!(decode_base64("a*k=").is_err());
    }
}
