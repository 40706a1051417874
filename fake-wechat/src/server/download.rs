//! Downloads (PROTOCOL.md §9.5): `webwxgetmsgimg`, `webwxgetvoice` and `webwxgetvideo` on
//! the API host, authenticated by the session cookies and `skey`; `webwxgetmedia` on the
//! file host, by the cookies and its own parameters (`fromuser`, `pass_ticket`,
//! `webwx_data_ticket`).
//!
//! What the real servers do, and where it comes from:
//! - A refused or unknown download is not an error status: the servers answer `200` with an
//!   empty body. That is what clients report for downloads outside the session (wxBot#283:
//!   "only status 200, no image content"), for store stickers and for media the servers no
//!   longer have (ItChat#375, #454: files of 0 bytes). Here every such answer also records a
//!   [`Violation`](crate::Violation) unless the client did nothing wrong (expired media,
//!   store stickers).
//! - `webwxgetmsgimg` answers `Content-Type: image/jpeg` whatever the bytes are (a captured
//!   answer carried a GIF under that type), with `Cache-control: max-age=604800`.
//! - `webwxgetvideo` with `Range: bytes=0-` answers `206`, `video/mp4`, `Accept-Ranges`,
//!   `Content-Range` and an `ETag` (the captured answer). Without a Range header it answers
//!   like the refusals, `200` and nothing [U: the official client always sends one, and
//!   clients that did not report 0-byte videos (ItChat#375)].
//! - `webwxgetmedia` answers `application/octet-stream` with a `Content-Disposition` that
//!   names the file [U: header form], and honours Range as the video does [U].
//!
//! Bodies are streamed in chunks so [`set_media_delay`](crate::FakeWeChat::set_media_delay)
//! and [`set_media_rate`](crate::FakeWeChat::set_media_rate) can hold them back; they are
//! never gzipped (the gzip layer leaves non-text answers alone), as the captures show.

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Query, State as AxState};
use axum::http::header::{
    ACCEPT_RANGES, CACHE_CONTROL, CONTENT_DISPOSITION, CONTENT_LENGTH, CONTENT_RANGE, CONTENT_TYPE,
    ETAG, LAST_MODIFIED, RANGE,
};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use tokio::sync::mpsc;

use super::{cookies, Ctx, Params};
use crate::media::{self, Kind, Variant};
use crate::state::{Shared, State};

const IMG: &str = "webwxgetmsgimg";
const VOICE: &str = "webwxgetvoice";
const VIDEO: &str = "webwxgetvideo";
const FILE: &str = "webwxgetmedia";

/// The most a body chunk holds.
const CHUNK: usize = 64 * 1024;

/// The captured video answer's Last-Modified (the epoch); images reuse it [U].
const EPOCH: &str = "Thu, 01 Jan 1970 00:00:00 GMT";

/// How an endpoint answers.
struct Style {
    endpoint: &'static str,
    content_type: &'static str,
    /// Whether it needs and honours `Range` (video) or only honours it (files).
    range: RangeRule,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum RangeRule {
    Ignored,
    Honoured,
    Required,
}

/// Why a download gets no bytes: a rule the client broke, or media the servers do not have.
enum Miss {
    Broken(String),
    Gone,
}

/// The parameter named `name`, or its lowercase spelling (itchat writes `msgid`).
fn param<'a>(q: &'a HashMap<String, String>, names: &[&str]) -> Option<&'a str> {
    names.iter().find_map(|n| q.get(*n)).map(String::as_str)
}

/// Cookies and `skey`, as for the other GETs of the API host.
fn check_api(st: &State, headers: &HeaderMap, q: &HashMap<String, String>) -> Result<(), Miss> {
    let broken = |why: String| Miss::Broken(why);
    st.check_cookies(&cookies(headers))
        .map_err(|r| broken(r.why))?;
    let sid = st.session.as_ref().map(|s| s.sid.as_str());
    let Some(skey) = q.get("skey") else {
        return Err(broken("skey missing".into()));
    };
    st.check_credentials(Some(st.account.uin), sid, Some(skey))
        .map_err(|r| broken(r.why))?;
    Ok(())
}

/// The MsgId a download names, if it is a media message of one of `kinds`.
fn find(st: &State, id: Option<&str>, kinds: &[Kind]) -> Result<String, Miss> {
    let Some(id) = id.filter(|i| !i.is_empty()) else {
        return Err(Miss::Broken("MsgID missing".into()));
    };
    let Some(msg_id) = st.media.msg_id(id) else {
        return Err(Miss::Broken(format!("no media message has MsgID {id}")));
    };
    let item = st.media.get(&msg_id).ok_or(Miss::Gone)?;
    if !kinds.contains(&item.kind) {
        return Err(Miss::Broken(format!(
            "message {id} is {:?}, not served here",
            item.kind
        )));
    }
    if item.expired || item.no_bytes {
        return Err(Miss::Gone);
    }
    Ok(msg_id)
}

/// `webwxgetmsgimg?MsgID=&skey=[&type=big|slave]`: images and emoticons.
pub(crate) async fn get_msg_img(
    AxState(shared): Ctx,
    headers: HeaderMap,
    Query(q): Params,
) -> Response {
    let style = Style {
        endpoint: IMG,
        content_type: "image/jpeg",
        range: RangeRule::Ignored,
    };
    let variant = match q.get("type").map(String::as_str) {
        None | Some("big") => Ok(Variant::Full),
        Some("slave") => Ok(Variant::Thumb),
        Some(other) => Err(Miss::Broken(format!(
            "type={other} is neither big nor slave"
        ))),
    };
    let found = shared.update(|st| {
        let variant = variant?;
        check_api(st, &headers, &q)?;
        let msg_id = find(
            st,
            param(&q, &["MsgID", "msgid"]),
            &[Kind::Image, Kind::Emoticon],
        )?;
        // An emoticon has no separate thumbnail [U]: both answer the GIF.
        let emoticon = st
            .media
            .get(&msg_id)
            .is_some_and(|i| i.kind == Kind::Emoticon);
        Ok((msg_id, if emoticon { Variant::Full } else { variant }))
    });
    answer(&shared, &style, &headers, found).await
}

/// `webwxgetvoice?msgid=&skey=`: MP3.
pub(crate) async fn get_voice(
    AxState(shared): Ctx,
    headers: HeaderMap,
    Query(q): Params,
) -> Response {
    let style = Style {
        endpoint: VOICE,
        content_type: "audio/mpeg",
        range: RangeRule::Ignored,
    };
    let found = shared.update(|st| {
        check_api(st, &headers, &q)?;
        Ok((
            find(st, param(&q, &["msgid", "MsgID"]), &[Kind::Voice])?,
            Variant::Full,
        ))
    });
    answer(&shared, &style, &headers, found).await
}

/// `webwxgetvideo?msgid=&skey=` with `Range`: MP4.
pub(crate) async fn get_video(
    AxState(shared): Ctx,
    headers: HeaderMap,
    Query(q): Params,
) -> Response {
    let style = Style {
        endpoint: VIDEO,
        content_type: "video/mp4",
        range: RangeRule::Required,
    };
    let found = shared.update(|st| {
        check_api(st, &headers, &q)?;
        Ok((
            find(st, param(&q, &["msgid", "MsgID"]), &[Kind::Video])?,
            Variant::Full,
        ))
    });
    answer(&shared, &style, &headers, found).await
}

/// `webwxgetmedia` on the file host: `sender`, `mediaid`, `encryfilename` (or itchat's
/// `filename`), `fromuser` = wxuin, `pass_ticket` (itchat: `undefined`) and
/// `webwx_data_ticket`, which must equal the cookie.
pub(crate) async fn get_media(
    AxState(shared): Ctx,
    headers: HeaderMap,
    Query(q): Params,
) -> Response {
    let style = Style {
        endpoint: FILE,
        content_type: "application/octet-stream",
        range: RangeRule::Honoured,
    };
    let found = shared.update(|st| {
        let broken = |why: &str| Miss::Broken(why.to_owned());
        let jar = cookies(&headers);
        st.check_cookies(&jar).map_err(|r| Miss::Broken(r.why))?;
        let Some(session) = &st.session else {
            return Err(broken("no session"));
        };
        let need = |k: &str| q.get(k).ok_or_else(|| broken(&format!("{k} missing")));
        let sender = need("sender")?;
        let media_id = need("mediaid")?;
        let from_user = need("fromuser")?;
        let pass = need("pass_ticket")?;
        let ticket = need("webwx_data_ticket")?;
        if *from_user != st.account.uin.to_string() {
            return Err(broken("fromuser is not the account's wxuin"));
        }
        if pass != "undefined" {
            st.check_pass_ticket(&q).map_err(|r| Miss::Broken(r.why))?;
        }
        if jar.get("webwx_data_ticket") != Some(ticket) {
            return Err(broken("webwx_data_ticket does not match the cookie"));
        }
        if *ticket != session.data_ticket {
            return Err(broken("webwx_data_ticket is not this session's"));
        }
        let Some(msg_id) = st.media.by_media_id(media_id) else {
            return Err(broken("no file message has this mediaid"));
        };
        let item = st.media.get(&msg_id).ok_or(Miss::Gone)?;
        if *sender != item.from {
            return Err(broken("sender is not the message's FromUserName"));
        }
        let encry = &item.encry_file_name;
        let named = match (q.get("encryfilename"), q.get("filename")) {
            // Decoded once by the query parser: the raw EncryFileName decodes to the name,
            // a re-encoded one to EncryFileName itself.
            (Some(e), _) => *e == *encry || *e == pct_decode(encry),
            (None, Some(f)) => *f == item.file_name,
            (None, None) => return Err(broken("encryfilename (or filename) missing")),
        };
        if !named {
            return Err(broken("encryfilename/filename is not the message's"));
        }
        if item.expired {
            return Err(Miss::Gone);
        }
        Ok((msg_id, Variant::Full, item.file_name.clone()))
    });
    let name = found.as_ref().ok().map(|f| f.2.clone());
    let mut res = answer(&shared, &style, &headers, found.map(|(m, v, _)| (m, v))).await;
    let sent = res.status().is_success()
        && res.headers().get(CONTENT_LENGTH) != Some(&HeaderValue::from_static("0"));
    if let (Some(name), true) = (name, sent) {
        let escaped = name.replace('\\', "\\\\").replace('"', "\\\"");
        let value = format!("attachment; filename=\"{escaped}\"");
        if let Ok(v) = HeaderValue::from_bytes(value.as_bytes()) {
            res.headers_mut().insert(CONTENT_DISPOSITION, v);
        }
    }
    res
}

fn pct_decode(s: &str) -> String {
    percent_encoding::percent_decode_str(s)
        .decode_utf8_lossy()
        .into_owned()
}

/// The answer for a download: the bytes (whole or the asked range), or `200` and nothing.
async fn answer(
    shared: &Arc<Shared>,
    style: &Style,
    headers: &HeaderMap,
    found: Result<(String, Variant), Miss>,
) -> Response {
    let (msg_id, variant) = match found {
        Ok(f) => f,
        Err(miss) => return nothing(shared, style, miss),
    };
    let range = headers
        .get(RANGE)
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
    if style.range == RangeRule::Required && range.is_none() {
        let why = format!("{} without a Range header", style.endpoint);
        return nothing(shared, style, Miss::Broken(why));
    }
    let Some(bytes) = media::bytes(shared, &msg_id, variant) else {
        return nothing(shared, style, Miss::Gone);
    };
    let len = bytes.len() as u64;
    let mut res_headers = HeaderMap::new();
    let mut status = StatusCode::OK;
    let (mut start, mut end) = (0, len);
    if let (Some(r), true) = (&range, style.range != RangeRule::Ignored) {
        match parse_range(r, len) {
            Some((a, b)) => {
                (start, end) = (a, b + 1);
                status = StatusCode::PARTIAL_CONTENT;
                insert(
                    &mut res_headers,
                    CONTENT_RANGE,
                    format!("bytes {a}-{b}/{len}"),
                );
            }
            None => {
                let mut res = StatusCode::RANGE_NOT_SATISFIABLE.into_response();
                insert(res.headers_mut(), CONTENT_RANGE, format!("bytes */{len}"));
                return res;
            }
        }
    }
    insert(
        &mut res_headers,
        CONTENT_TYPE,
        style.content_type.to_owned(),
    );
    match style.endpoint {
        IMG => {
            insert(&mut res_headers, LAST_MODIFIED, EPOCH.to_owned());
            insert(&mut res_headers, CACHE_CONTROL, "max-age=604800".to_owned());
        }
        VIDEO | FILE => {
            insert(&mut res_headers, ACCEPT_RANGES, "bytes".to_owned());
            insert(&mut res_headers, LAST_MODIFIED, EPOCH.to_owned());
            let seed = media::make::seed(&msg_id);
            insert(
                &mut res_headers,
                ETAG,
                format!("{:x}-{len:x}-{seed:x}", seed & 0xfffff),
            );
        }
        _ => {}
    }
    insert(&mut res_headers, CONTENT_LENGTH, (end - start).to_string());
    shared.update(|st| {
        if let Some(item) = st.media.get_mut(&msg_id) {
            item.started += 1;
        }
    });
    let body = stream(shared.clone(), msg_id, bytes, start as usize, end as usize);
    (status, res_headers, body).into_response()
}

fn insert(h: &mut HeaderMap, name: axum::http::HeaderName, value: String) {
    if let Ok(v) = HeaderValue::from_str(&value) {
        h.insert(name, v);
    }
}

/// `200`, the endpoint's type, no body; a broken rule is recorded.
fn nothing(shared: &Shared, style: &Style, miss: Miss) -> Response {
    if let Miss::Broken(why) = miss {
        shared.update(|st| st.violation(style.endpoint, why));
    }
    (
        StatusCode::OK,
        [(CONTENT_TYPE, style.content_type), (CONTENT_LENGTH, "0")],
    )
        .into_response()
}

/// One `bytes=a-b`, `bytes=a-` or `bytes=-n` range of a body of `len` bytes, as inclusive
/// bounds; `None` if it is malformed or unsatisfiable (several ranges are not offered).
fn parse_range(header: &str, len: u64) -> Option<(u64, u64)> {
    let spec = header.trim().strip_prefix("bytes=")?;
    if spec.contains(',') || len == 0 {
        return None;
    }
    let (a, b) = spec.split_once('-')?;
    let (a, b) = (a.trim(), b.trim());
    if a.is_empty() {
        let n: u64 = b.parse().ok().filter(|&n| n > 0)?;
        return Some((len.saturating_sub(n), len - 1));
    }
    let a: u64 = a.parse().ok()?;
    let b: u64 = if b.is_empty() {
        len - 1
    } else {
        b.parse().ok()?
    };
    (a <= b && a < len).then_some((a, b.min(len - 1)))
}

/// The body as a stream of chunks: the first part, then the configured stall, then the
/// rest at the configured rate; a finished send is counted.
fn stream(
    shared: Arc<Shared>,
    msg_id: String,
    bytes: Arc<Vec<u8>>,
    start: usize,
    end: usize,
) -> Body {
    let (delay, rate) = {
        let st = shared.lock();
        (st.media_delay, st.media_rate)
    };
    let (tx, rx) = mpsc::channel(1);
    tokio::spawn(async move {
        let chunk = rate.map_or(CHUNK, |r| (r as usize / 10).clamp(1, CHUNK));
        let len = end - start;
        let first = if delay.is_zero() {
            chunk.min(len)
        } else {
            (len / 2).min(chunk)
        };
        let mut at = start;
        let mut sent_first = false;
        while at < end || !sent_first {
            let n = if sent_first {
                chunk.min(end - at)
            } else {
                first
            };
            if sent_first {
                if let Some(r) = rate {
                    tokio::time::sleep(Duration::from_secs_f64(n as f64 / r as f64)).await;
                }
            }
            if n > 0 {
                let piece = Bytes::copy_from_slice(&bytes[at..at + n]);
                if tx.send(Ok::<_, std::io::Error>(piece)).await.is_err() {
                    return; // the client went away
                }
            }
            at += n;
            if !sent_first {
                sent_first = true;
                if !delay.is_zero() {
                    tokio::time::sleep(delay).await;
                }
            }
        }
        shared.update(|st| {
            if let Some(item) = st.media.get_mut(&msg_id) {
                item.completed += 1;
            }
        });
    });
    Body::from_stream(Chunks(rx))
}

struct Chunks(mpsc::Receiver<Result<Bytes, std::io::Error>>);

impl futures_core::Stream for Chunks {
    type Item = Result<Bytes, std::io::Error>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.0.poll_recv(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_parse_like_http_single_ranges() {
        assert_eq!(parse_range("bytes=0-", 100), Some((0, 99)));
        assert_eq!(parse_range("bytes=10-19", 100), Some((10, 19)));
        assert_eq!(parse_range("bytes=90-200", 100), Some((90, 99)));
        assert_eq!(parse_range("bytes=-10", 100), Some((90, 99)));
        assert_eq!(parse_range("bytes=-1000", 100), Some((0, 99)));
        assert_eq!(parse_range("bytes=100-", 100), None);
        assert_eq!(parse_range("bytes=5-4", 100), None);
        assert_eq!(parse_range("bytes=0-1,5-6", 100), None);
        assert_eq!(parse_range("items=0-", 100), None);
        assert_eq!(parse_range("bytes=0-", 0), None);
    }
}
