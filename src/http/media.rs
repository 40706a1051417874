//! `GET /media/<sha256>`: a stored file, streamed from disk.
//!
//! Access: the API's own rules (token or page cookie, and the `Host` check), or a valid signed
//! link (`?exp=<unix s>&sig=<hex>`, see [`crate::media::Signer`]). A signed link is a
//! credential of its own, good for one file until it expires: it needs no token and is not
//! held to `http.allowed_hosts` (it is what a webhook receiver is handed, and it reaches the
//! bridge by whatever name `media.public_url` gives). A link whose signature is wrong, made for
//! another file or expired is refused with 403, even alongside a token: it is a broken link,
//! and saying so is more useful than serving it by other means.
//!
//! The answer: `Content-Type` sniffed from the bytes, `Content-Length`, `ETag: "<sha256>"`
//! (`If-None-Match` answers 304), `Accept-Ranges: bytes` and a single `Range` (206 with
//! `Content-Range`, 416 when it lies past the end; several ranges get the whole file). The
//! file is read in chunks as it is sent, never whole. A name that is not a sha256 never
//! becomes a path: it is answered 404 like a file that is not (or no longer) stored. Since
//! the bytes come from other people, they are served with `nosniff` and a sandboxing CSP, so
//! a browser never runs them as a page of this origin.
use std::io::SeekFrom;

use axum::body::Body;
use axum::extract::{Path, Request, State};
use axum::http::header::{
    ACCEPT_RANGES, CACHE_CONTROL, CONTENT_LENGTH, CONTENT_RANGE, CONTENT_SECURITY_POLICY,
    CONTENT_TYPE, ETAG, IF_NONE_MATCH, IF_RANGE, RANGE, X_CONTENT_TYPE_OPTIONS,
};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tokio::io::{AsyncReadExt, AsyncSeekExt};
use tokio_util::io::ReaderStream;

use super::auth::refuse;
use super::Account;
use crate::media::{is_sha256, unix_now};

/// Marks a request that carries a valid signed link; the host and token guards let it pass.
#[derive(Debug, Clone, Copy)]
pub struct SignedMedia;

/// Chunk size of the file stream.
const CHUNK: usize = 64 * 1024;

/// The middleware in front of `/media/…`, outside the host and token guards: a request with
/// `exp` and `sig` is let through as [`SignedMedia`] when they verify and refused when not;
/// one without them goes on to the usual guards.
pub async fn signed(State(state): State<Account>, mut request: Request, next: Next) -> Response {
    let (exp, sig) = link_params(request.uri().query());
    match (exp, sig) {
        (None, None) => next.run(request).await,
        (Some(exp), Some(sig)) => {
            let sha256 = request
                .uri()
                .path()
                .rsplit_once('/')
                .map_or("", |(_, name)| name)
                .to_owned();
            let now = unix_now();
            let exp = exp.parse::<u64>().ok();
            match exp {
                Some(exp) if state.media.signer.verify(&sha256, exp, &sig, now) => {
                    request.extensions_mut().insert(SignedMedia);
                    next.run(request).await
                }
                Some(exp) if exp < now => {
                    refuse(StatusCode::FORBIDDEN, "this media link has expired")
                }
                _ => refuse(
                    StatusCode::FORBIDDEN,
                    "this media link's signature is not valid for this file",
                ),
            }
        }
        _ => refuse(
            StatusCode::FORBIDDEN,
            "a media link needs both exp and sig (or leave both out and use the token)",
        ),
    }
}

/// `exp` and `sig` from a query string.
fn link_params(query: Option<&str>) -> (Option<String>, Option<String>) {
    let (mut exp, mut sig) = (None, None);
    for pair in query.unwrap_or_default().split('&') {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        match key {
            "exp" => exp = Some(value.to_owned()),
            "sig" => sig = Some(value.to_owned()),
            _ => {}
        }
    }
    (exp, sig)
}

/// `GET /media/<sha256>`.
pub async fn get(
    State(state): State<Account>,
    Path(sha256): Path<String>,
    headers: HeaderMap,
) -> Response {
    let not_found = || {
        refuse(
            StatusCode::NOT_FOUND,
            "no such media file (or it was evicted)",
        )
    };
    if !is_sha256(&sha256) {
        return not_found();
    }
    let Some(stored) = state.media.store.get(&sha256) else {
        return not_found();
    };
    // Opened once: the length and the bytes come from the same file even if it is evicted
    // meanwhile (an unlinked file stays readable while open).
    let Ok(mut file) = tokio::fs::File::open(&stored.path).await else {
        return not_found();
    };
    let Ok(size) = file.metadata().await.map(|m| m.len()) else {
        return not_found();
    };
    let etag = format!("\"{sha256}\"");
    let mut response_headers = HeaderMap::new();
    let mut set = |name, value: &str| {
        if let Ok(value) = HeaderValue::from_str(value) {
            response_headers.insert(name, value);
        }
    };
    set(ETAG, &etag);
    set(ACCEPT_RANGES, "bytes");
    set(CACHE_CONTROL, "no-store");
    set(X_CONTENT_TYPE_OPTIONS, "nosniff");
    set(CONTENT_SECURITY_POLICY, "sandbox; default-src 'none'");
    if matches_etag(headers.get(IF_NONE_MATCH), &etag) {
        return (StatusCode::NOT_MODIFIED, response_headers).into_response();
    }
    set(CONTENT_TYPE, &stored.mime);
    // A Range under an If-Range for another version is ignored: the whole file is sent.
    let range_applies = headers
        .get(IF_RANGE)
        .is_none_or(|v| v.to_str().is_ok_and(|v| v.trim() == etag));
    let range = match headers.get(RANGE).and_then(|v| v.to_str().ok()) {
        Some(header) if range_applies => parse_range(header, size),
        _ => Range::Full,
    };
    let (status, start, len) = match range {
        Range::Full => (StatusCode::OK, 0, size),
        Range::Part { start, end } => {
            set(CONTENT_RANGE, &format!("bytes {start}-{end}/{size}"));
            (StatusCode::PARTIAL_CONTENT, start, end - start + 1)
        }
        Range::Unsatisfiable => {
            set(CONTENT_RANGE, &format!("bytes */{size}"));
            return (StatusCode::RANGE_NOT_SATISFIABLE, response_headers).into_response();
        }
    };
    set(CONTENT_LENGTH, &len.to_string());
    if start > 0 && file.seek(SeekFrom::Start(start)).await.is_err() {
        return not_found();
    }
    let body = Body::from_stream(ReaderStream::with_capacity(file.take(len), CHUNK));
    (status, response_headers, body).into_response()
}

/// Whether an `If-None-Match` header names `etag` (or is `*`); weak tags compare too.
fn matches_etag(header: Option<&HeaderValue>, etag: &str) -> bool {
    let Some(Ok(header)) = header.map(HeaderValue::to_str) else {
        return false;
    };
    header.split(',').map(str::trim).any(|tag| {
        let tag = tag.strip_prefix("W/").unwrap_or(tag);
        tag == "*" || tag == etag
    })
}

/// What a `Range` header asks of a file of some size.
#[derive(Debug, PartialEq, Eq)]
enum Range {
    /// No usable single range: send everything (200).
    Full,
    /// Bytes `start..=end` (206).
    Part { start: u64, end: u64 },
    /// A range wholly past the end (416).
    Unsatisfiable,
}

/// Reads `bytes=a-b`, `bytes=a-` and `bytes=-n` against `size`. Other units, several
/// ranges and malformed values are ignored (the whole file is sent), as RFC 9110 allows.
fn parse_range(header: &str, size: u64) -> Range {
    let Some(spec) = header.trim().strip_prefix("bytes=") else {
        return Range::Full;
    };
    if spec.contains(',') {
        return Range::Full;
    }
    let Some((first, last)) = spec.trim().split_once('-') else {
        return Range::Full;
    };
    let number = |text: &str| -> Option<u64> {
        let text = text.trim();
        (!text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()))
            .then(|| text.parse().ok())
            .flatten()
    };
    let (first, last) = (first.trim(), last.trim());
    if first.is_empty() {
        // The last n bytes.
        return match number(last) {
            None => Range::Full,
            Some(0) => Range::Unsatisfiable,
            Some(_) if size == 0 => Range::Unsatisfiable,
            Some(n) => Range::Part {
                start: size.saturating_sub(n),
                end: size - 1,
            },
        };
    }
    let Some(start) = number(first) else {
        return Range::Full;
    };
    let end = match (last.is_empty(), number(last)) {
        (true, _) => None,
        (false, Some(end)) if end >= start => Some(end),
        (false, _) => return Range::Full,
    };
    if start >= size {
        return Range::Unsatisfiable;
    }
    Range::Part {
        start,
        end: end.map_or(size - 1, |end| end.min(size - 1)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn single_ranges_are_read_against_the_size() {
        assert_eq!(
            parse_range("bytes=0-9", 100),
            Range::Part { start: 0, end: 9 }
        );
        assert_eq!(
            parse_range("bytes=90-", 100),
            Range::Part { start: 90, end: 99 }
        );
        assert_eq!(
            parse_range("bytes=90-500", 100),
            Range::Part { start: 90, end: 99 }
        );
        assert_eq!(
            parse_range("bytes=-10", 100),
            Range::Part { start: 90, end: 99 }
        );
        assert_eq!(
            parse_range("bytes=-500", 100),
            Range::Part { start: 0, end: 99 }
        );
        assert_eq!(parse_range("bytes=0-", 1), Range::Part { start: 0, end: 0 });
    }

    #[test]
    fn ranges_past_the_end_are_unsatisfiable() {
        assert_eq!(parse_range("bytes=100-", 100), Range::Unsatisfiable);
        assert_eq!(parse_range("bytes=100-200", 100), Range::Unsatisfiable);
        assert_eq!(parse_range("bytes=-0", 100), Range::Unsatisfiable);
        assert_eq!(parse_range("bytes=0-", 0), Range::Unsatisfiable);
    }

    #[test]
    fn other_range_headers_get_the_whole_file() {
        for header in [
            "items=0-9",
            "bytes=0-9,20-29",
            "bytes=9-0",
            "bytes=x-9",
            "bytes=",
            "bytes=-",
            "bytes=5",
            "bytes=+1-2",
        ] {
            assert_eq!(parse_range(header, 100), Range::Full, "{header}");
        }
    }

    #[test]
    fn if_none_match_compares_entity_tags() {
        let etag = "\"abc\"";
        let value = |s: &str| HeaderValue::from_str(s).unwrap();
        assert!(matches_etag(Some(&value("\"abc\"")), etag));
        assert!(matches_etag(Some(&value("\"x\", W/\"abc\"")), etag));
        assert!(matches_etag(Some(&value("*")), etag));
        assert!(!matches_etag(Some(&value("\"abcd\"")), etag));
        assert!(!matches_etag(None, etag));
    }

    #[test]
    fn link_parameters_are_read_from_the_query() {
        assert_eq!(
            link_params(Some("exp=12&sig=ab&x=1")),
            (Some("12".into()), Some("ab".into()))
        );
        assert_eq!(link_params(Some("sig=ab")), (None, Some("ab".into())));
        assert_eq!(link_params(None), (None, None));
    }
}
