//! The HTTP surface: the router with the real paths, the middleware that records requests
//! and injects faults, the one that gzips and the one that holds answers back as a distant
//! server's would arrive, and the response shapes every endpoint shares
//! (JSON as `text/plain` in the servers' layout with its members in the servers' order, JS
//! text, BaseResponse refusals, cookies).

mod api;
mod download;
mod login;
mod multipart;
mod order;
mod send_media;
mod sync;
mod upload;
mod wire;

pub use login::EXTSPAM;
pub(crate) use order::Shape;
pub use wire::wire_json;
pub(crate) use wire::Layout;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::{Query, Request, State as AxState};
use std::io::Write;

use axum::http::header::{
    ACCEPT_ENCODING, CONTENT_ENCODING, CONTENT_LENGTH, CONTENT_TYPE, SET_COOKIE,
};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use flate2::write::GzEncoder;
use flate2::Compression;
use serde_json::{json, Value};

use crate::record::{Fault, RequestRecord};
use crate::state::{Refusal, Session, Shared, State};

/// Every cgi endpoint lives here, on every role's host (§0).
const CGI: &str = "/cgi-bin/mmwebwx-bin";

pub(crate) type Ctx = AxState<Arc<Shared>>;
pub(crate) type Params = Query<HashMap<String, String>>;

pub(crate) fn router(shared: Arc<Shared>) -> Router {
    let cgi = |name: &str| format!("{CGI}/{name}");
    Router::new()
        .route("/", get(login::home))
        .route("/jslogin", get(login::jslogin).post(login::jslogin))
        .route(&cgi("login"), get(login::poll))
        .route(&cgi("webwxnewloginpage"), get(login::new_login_page))
        .route(&cgi("webwxpushloginurl"), get(login::push_login_url))
        .route(&cgi("webwxlogout"), get(login::logout).post(login::logout))
        .route(&cgi("webwxinit"), axum::routing::post(api::init))
        .route(
            &cgi("webwxstatusnotify"),
            axum::routing::post(api::status_notify),
        )
        .route(
            &cgi("webwxgetcontact"),
            get(api::get_contact).post(api::get_contact),
        )
        .route(
            &cgi("webwxbatchgetcontact"),
            axum::routing::post(api::batch_get_contact),
        )
        .route(&cgi("webwxsendmsg"), axum::routing::post(api::send_msg))
        .route(&cgi("webwxsendmsgimg"), post(send_media::send_msg_img))
        .route(&cgi("webwxsendvideomsg"), post(send_media::send_video_msg))
        .route(&cgi("webwxsendappmsg"), post(send_media::send_app_msg))
        .route(&cgi("webwxsendemoticon"), post(send_media::send_emoticon))
        .route(&cgi("webwxuploadmedia"), post(upload::upload_media))
        .route(&cgi("webwxcheckupload"), post(upload::check_upload))
        .route(&cgi("webwxgetmsgimg"), get(download::get_msg_img))
        .route(&cgi("webwxgetvoice"), get(download::get_voice))
        .route(&cgi("webwxgetvideo"), get(download::get_video))
        .route(&cgi("webwxgetmedia"), get(download::get_media))
        .route(&cgi("synccheck"), get(sync::sync_check))
        .route(&cgi("webwxsync"), axum::routing::post(sync::sync))
        .layer(middleware::from_fn_with_state(shared.clone(), intercept))
        .layer(middleware::from_fn_with_state(shared.clone(), gzip))
        .layer(middleware::from_fn_with_state(shared.clone(), distance))
        .with_state(shared)
}

/// Holds every answer back by `answer_delay` once it is ready (the outermost layer, so faults
/// and refusals wait too): the round trip to a server far away.
async fn distance(AxState(shared): Ctx, req: Request, next: Next) -> Response {
    let res = next.run(req).await;
    if !shared.opts.answer_delay.is_zero() {
        tokio::time::sleep(shared.opts.answer_delay).await;
    }
    res
}

/// Gzips every non-empty text answer to a client that accepts it, as the real servers do
/// (§2), whole and with a `Content-Length`. Media bodies (images, audio, video, files) go
/// out as they are and streamed, as in the captures.
async fn gzip(AxState(shared): Ctx, req: Request, next: Next) -> Response {
    let wanted = shared.opts.gzip && accepts_gzip(req.headers());
    let res = next.run(req).await;
    let text = res
        .headers()
        .get(CONTENT_TYPE)
        .is_some_and(|t| t.as_bytes().starts_with(b"text/"));
    if !wanted || !text || res.headers().contains_key(CONTENT_ENCODING) {
        return res;
    }
    let (mut parts, body) = res.into_parts();
    let Ok(plain) = axum::body::to_bytes(body, usize::MAX).await else {
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    };
    if plain.is_empty() {
        return Response::from_parts(parts, Body::from(plain));
    }
    let mut enc = GzEncoder::new(
        Vec::with_capacity(plain.len() / 4 + 64),
        Compression::fast(),
    );
    let packed = match enc.write_all(&plain).and_then(|()| enc.finish()) {
        Ok(packed) => packed,
        Err(_) => return StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    };
    parts
        .headers
        .insert(CONTENT_ENCODING, HeaderValue::from_static("gzip"));
    parts.headers.remove(CONTENT_LENGTH);
    Response::from_parts(parts, Body::from(packed))
}

/// Whether `Accept-Encoding` lists `gzip` (or `*`) without `q=0`.
fn accepts_gzip(headers: &HeaderMap) -> bool {
    headers
        .get_all(ACCEPT_ENCODING)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|coding| {
            let mut parts = coding.split(';').map(str::trim);
            let name = parts.next().unwrap_or("");
            let refused = parts.any(|p| {
                p.strip_prefix("q=")
                    .and_then(|q| q.parse::<f32>().ok())
                    .is_some_and(|q| q == 0.0)
            });
            (name.eq_ignore_ascii_case("gzip") || name == "*") && !refused
        })
}

/// Records the request, then applies the next scheduled fault for its endpoint, if any.
async fn intercept(AxState(shared): Ctx, req: Request, next: Next) -> Response {
    let endpoint = req.uri().path().rsplit('/').next().unwrap_or("").to_owned();
    let (parts, body) = req.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, 64 << 20).await else {
        return StatusCode::PAYLOAD_TOO_LARGE.into_response();
    };
    let raw_query = parts.uri.query().unwrap_or("");
    let headers = header_map(&parts.headers);
    let fault = shared.update(|st| {
        if shared.opts.check_requests {
            check_against_table(st, &shared.base_url, &parts, raw_query, &headers, &bytes);
        }
        if shared.opts.record_requests {
            st.requests.push(RequestRecord {
                endpoint: endpoint.clone(),
                method: parts.method.to_string(),
                path: parts.uri.path().to_owned(),
                query: Query::<BTreeMap<String, String>>::try_from_uri(&parts.uri)
                    .map(|q| q.0)
                    .unwrap_or_default(),
                query_names: crate::table::query_pairs(raw_query)
                    .into_iter()
                    .map(|(k, _)| k)
                    .collect(),
                headers: headers.clone(),
                body: recorded_body(&parts.headers, &bytes),
            });
        }
        st.faults.get_mut(&endpoint).and_then(|q| q.pop_front())
    });
    match fault {
        Some(Fault::Status(code)) => {
            return StatusCode::from_u16(code)
                .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
                .into_response()
        }
        Some(Fault::Garbage) => return text(r#"<html><body>{"BaseResponse":{"Ret":0,"#.to_owned()),
        Some(Fault::Slow(d)) => tokio::time::sleep(d).await,
        None => {}
    }
    next.run(Request::from_parts(parts, Body::from(bytes)))
        .await
}

/// Compares a request with the official client's (the request table) in the mode the login
/// chose, and notes what differs as violations. The mode comes from the login requests
/// themselves (`mod=desktop` in jslogin's redirect_uri, on webwxnewloginpage and push login),
/// then from the session.
fn check_against_table(
    st: &mut State,
    base: &str,
    parts: &axum::http::request::Parts,
    raw_query: &str,
    headers: &BTreeMap<String, String>,
    body: &[u8],
) {
    let path = parts.uri.path();
    let endpoint = path.rsplit('/').next().unwrap_or("");
    let pairs = crate::table::query_pairs(raw_query);
    let param = |k: &str| pairs.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
    match endpoint {
        "jslogin" => {
            st.login_desktop =
                Some(param("redirect_uri").is_some_and(|r| r.contains("mod=desktop")))
        }
        "webwxnewloginpage" | "webwxpushloginurl" => {
            st.login_desktop = Some(param("mod") == Some("desktop"))
        }
        _ => {}
    }
    let desktop = match endpoint {
        "jslogin" | "login" | "webwxnewloginpage" | "webwxpushloginurl" => st.login_desktop,
        _ => st.session.as_ref().map(|s| s.desktop).or(st.login_desktop),
    };
    let seen = crate::table::Seen {
        method: parts.method.as_str(),
        path,
        raw_query,
        headers,
        body,
    };
    for rule in crate::table::check(&seen, desktop, base) {
        st.violation(endpoint, rule);
    }
}

/// Most of a multipart body that is recorded: its form fields and the start of its file.
const MULTIPART_RECORDED: usize = 64 * 1024;

/// The body as recorded: lossy UTF-8, and for a multipart upload (512 KiB chunks of a file
/// that may be tens of MiB) only its first 64 KiB, so recording stays small.
fn recorded_body(headers: &HeaderMap, bytes: &[u8]) -> String {
    let multipart = headers
        .get(CONTENT_TYPE)
        .is_some_and(|t| t.as_bytes().starts_with(b"multipart/"));
    let end = if multipart {
        bytes.len().min(MULTIPART_RECORDED)
    } else {
        bytes.len()
    };
    String::from_utf8_lossy(&bytes[..end]).into_owned()
}

fn header_map(headers: &HeaderMap) -> BTreeMap<String, String> {
    let mut out: BTreeMap<String, String> = BTreeMap::new();
    for (name, value) in headers {
        let value = String::from_utf8_lossy(value.as_bytes()).into_owned();
        let sep = if name == "cookie" { "; " } else { ", " };
        out.entry(name.as_str().to_owned())
            .and_modify(|v| {
                v.push_str(sep);
                v.push_str(&value);
            })
            .or_insert(value);
    }
    out
}

/// `name=value` pairs of every `Cookie` header (a test helper may pass a joined string).
pub(crate) fn cookie_pairs(header: Option<&str>) -> Vec<(String, String)> {
    header
        .unwrap_or("")
        .split(';')
        .filter_map(|p| p.trim().split_once('='))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .collect()
}

/// The request's cookies by name.
pub(crate) fn cookies(headers: &HeaderMap) -> HashMap<String, String> {
    headers
        .get_all("cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| cookie_pairs(Some(v)))
        .collect()
}

/// A body with `Content-Type: text/plain`, as the real server sends JSON (§2).
pub(crate) fn text(body: String) -> Response {
    ([(CONTENT_TYPE, "text/plain")], body).into_response()
}

/// JSON, sent as the real server does: `text/plain`, raw UTF-8, in its layout (see [`wire`])
/// and with its members in the order of `shape` (see [`order`]).
pub(crate) fn json_text(layout: Layout, shape: &'static Shape, v: &Value) -> Response {
    serialized(layout, &order::Ordered::new(v, shape))
}

/// [`json_text`] for an answer already in order (see [`order::Spliced`]).
pub(crate) fn serialized(layout: Layout, answer: &impl serde::Serialize) -> Response {
    match wire::to_body(answer, layout) {
        Ok(body) => text(body),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    }
}

/// JS text for the login and synccheck polls; clients match it with regexes (§1, §6).
pub(crate) fn js(body: String) -> Response {
    ([(CONTENT_TYPE, "text/javascript")], body).into_response()
}

pub(crate) fn base_response(ret: i64, msg: &str) -> Value {
    json!({"Ret": ret, "ErrMsg": msg})
}

/// A refusal of a JSON call: `{"BaseResponse":{"Ret":…}}` plus endpoint-specific empties.
pub(crate) fn refused(
    layout: Layout,
    shape: &'static Shape,
    r: &Refusal,
    extra: Value,
) -> Response {
    let mut v = json!({"BaseResponse": base_response(r.ret, &r.why)});
    if let (Value::Object(m), Value::Object(e)) = (&mut v, extra) {
        m.extend(e);
    }
    json_text(layout, shape, &v)
}

/// Parses a JSON POST body and checks its BaseRequest and any `pass_ticket`; on refusal,
/// the response to send. No Content-Type is required (itchat sends none, §2).
pub(crate) fn json_call(
    st: &State,
    query: &HashMap<String, String>,
    body: &Bytes,
) -> Result<Value, Refusal> {
    let v: Value = serde_json::from_slice(body)
        .map_err(|e| Refusal::new(1200, format!("body is not JSON: {e}")))?;
    st.check_base_request(v.get("BaseRequest"))?;
    st.check_pass_ticket(query)?;
    Ok(v)
}

/// Appends a `Set-Cookie`. Cookies are host-only (no `Domain`): the fake serves every role
/// from one 127.0.0.1 origin, so host-only cookies reach them all. They keep `Secure` as the real ones have
/// (§1.4): cookie_store treats loopback as a secure origin, so it still stores and sends
/// them over plain http (the `secure_cookies_come_back_over_loopback_http` test checks it).
pub(crate) fn set_cookie(headers: &mut HeaderMap, name: &str, value: &str, max_age: Option<u64>) {
    let mut c = format!("{name}={value}; Path=/; Secure");
    if let Some(age) = max_age {
        c.push_str(&format!("; Max-Age={age}"));
    }
    if let Ok(v) = HeaderValue::from_str(&c) {
        headers.append(SET_COOKIE, v);
    }
}

/// The session cookies webwxnewloginpage sets and webwxsync refreshes.
pub(crate) fn session_cookies(headers: &mut HeaderMap, uin: u64, s: &Session) {
    const HALF_DAY: u64 = 12 * 3600;
    set_cookie(headers, "wxuin", &uin.to_string(), Some(HALF_DAY));
    set_cookie(headers, "wxsid", &s.sid, Some(HALF_DAY));
    set_cookie(headers, "webwx_data_ticket", &s.data_ticket, Some(HALF_DAY));
}

/// An `application/x-www-form-urlencoded` body.
pub(crate) fn form_pairs(body: &str) -> HashMap<String, String> {
    let decode = |s: &str| {
        percent_encoding::percent_decode_str(&s.replace('+', " "))
            .decode_utf8_lossy()
            .into_owned()
    };
    body.split('&')
        .filter_map(|p| p.split_once('='))
        .map(|(k, v)| (decode(k), decode(v)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gzip_is_accepted_by_name_or_star_unless_q_is_zero() {
        let with = |v: &str| {
            let mut h = HeaderMap::new();
            h.insert(ACCEPT_ENCODING, HeaderValue::from_str(v).unwrap());
            accepts_gzip(&h)
        };
        assert!(with("gzip"));
        assert!(with("deflate, GZIP;q=0.5, br"));
        assert!(with("*"));
        assert!(!with("gzip;q=0"));
        assert!(!with("deflate, br"));
        assert!(!accepts_gzip(&HeaderMap::new()));
    }

    #[test]
    fn form_bodies_and_cookies_decode() {
        let f = form_pairs("sid=Ab%2Bc&uin=123");
        assert_eq!(f["sid"], "Ab+c");
        assert_eq!(f["uin"], "123");
        let c = cookie_pairs(Some("wxuin=1; wxsid=a+b/c"));
        assert_eq!(c[1], ("wxsid".to_owned(), "a+b/c".to_owned()));
    }
}
