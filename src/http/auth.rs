//! Access control for the HTTP API: the `http.token` check and the page login, plus a
//! cross-site guard on requests that change something.
//!
//! - With `http.token` set, every path except `/healthz` needs `Authorization: Bearer <token>`
//!   or a page session cookie. Tokens are compared in constant time (both sides are hashed
//!   first, so not even the length leaks).
//! - `GET /?token=<token>` checks the token once, starts a page session and redirects to `/`,
//!   so the token leaves the address bar and the history. The session cookie is a fresh random
//!   value per login (not derived from the token), `HttpOnly`, `SameSite=Strict`, `Secure`
//!   when `http.public_url` is `https://`, and lasts [`SESSION_LIFETIME`]. The bridge keeps
//!   only its digest, in memory: `POST /signout` ends one session, and a restart (which is how
//!   the token changes) ends them all.
//! - A `POST` whose `Origin` is not this server's own is refused (403) with or without a token:
//!   a web page on another site must not be able to send messages through a bridge on the
//!   same machine.
//! - A `GET /media/<sha256>` with a valid signed link needs no token ([`super::media`]).
//! - Every answer behind the guard carries `Cache-Control: no-store` unless it says otherwise:
//!   contacts, message texts, the QR code and send results must not stay in caches.
use std::collections::VecDeque;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::header::{
    AUTHORIZATION, CACHE_CONTROL, CONTENT_TYPE, COOKIE, HOST, LOCATION, ORIGIN, SET_COOKIE,
    WWW_AUTHENTICATE,
};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Json;
use base64::Engine as _;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use tokio::time::Instant;

use super::Shared;

/// The page cookie's name.
pub const COOKIE_NAME: &str = "wxbridge_session";

/// How long a page session lasts: 12 hours, about a day's use. A cookie that leaks (a shared
/// browser profile, a backup) is useful for that long at most; opening `/?token=` again
/// starts a new one.
pub const SESSION_LIFETIME: Duration = Duration::from_secs(12 * 60 * 60);

/// At most this many page sessions are kept; past it the oldest ends. Only a token holder can
/// start one, so this only bounds memory.
const MAX_SESSIONS: usize = 64;

/// The configured `http.token`, kept only as a digest.
pub struct Token {
    digest: [u8; 32],
}

impl Token {
    /// From the configured secret.
    pub fn new(secret: &str) -> Token {
        Token {
            digest: Sha256::digest(secret.as_bytes()).into(),
        }
    }

    /// Whether `given` is the token, in constant time.
    pub fn matches(&self, given: &str) -> bool {
        let given: [u8; 32] = Sha256::digest(given.as_bytes()).into();
        self.digest.ct_eq(&given).into()
    }
}

/// The live page sessions, oldest first: the digest of each cookie value and when it ends.
pub struct Sessions {
    live: Mutex<VecDeque<([u8; 32], Instant)>>,
    lifetime: Duration,
    secure: bool,
}

impl Sessions {
    /// No sessions yet; `secure` marks the cookies `Secure`.
    pub fn new(lifetime: Duration, secure: bool) -> Sessions {
        Sessions {
            live: Mutex::new(VecDeque::new()),
            lifetime,
            secure,
        }
    }

    /// Starts a session; answers its cookie value, or `None` when no random value could be had.
    fn start(&self) -> Option<String> {
        let mut value = [0u8; 32];
        rustls::crypto::aws_lc_rs::default_provider()
            .secure_random
            .fill(&mut value)
            .ok()?;
        let value = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(value);
        let now = Instant::now();
        let mut live = self.live.lock().unwrap_or_else(PoisonError::into_inner);
        live.retain(|(_, ends)| *ends > now);
        if live.len() >= MAX_SESSIONS {
            live.pop_front();
        }
        live.push_back((digest(&value), now + self.lifetime));
        Some(value)
    }

    /// Whether `value` is a live session's cookie. Digests are compared in constant time.
    fn check(&self, value: &str) -> bool {
        let given = digest(value);
        let now = Instant::now();
        let live = self.live.lock().unwrap_or_else(PoisonError::into_inner);
        live.iter()
            .any(|(d, ends)| bool::from(d.ct_eq(&given)) && *ends > now)
    }

    /// Ends the session whose cookie is `value`, if there is one.
    fn end(&self, value: &str) {
        let given = digest(value);
        self.live
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .retain(|(d, _)| *d != given);
    }

    /// The `Set-Cookie` value that hands `value` to the browser.
    fn set_cookie(&self, value: &str) -> String {
        format!(
            "{COOKIE_NAME}={value}; Path=/; HttpOnly; SameSite=Strict; Max-Age={}{}",
            self.lifetime.as_secs(),
            if self.secure { "; Secure" } else { "" }
        )
    }

    /// The `Set-Cookie` value that makes the browser drop the cookie.
    fn clear_cookie(&self) -> String {
        format!(
            "{COOKIE_NAME}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0{}",
            if self.secure { "; Secure" } else { "" }
        )
    }
}

fn digest(value: &str) -> [u8; 32] {
    Sha256::digest(value.as_bytes()).into()
}

/// The middleware in front of every route but `/healthz`.
pub async fn guard(State(state): State<Shared>, request: Request, next: Next) -> Response {
    let mut response = check(&state, request, next).await;
    let headers = response.headers_mut();
    if !headers.contains_key(CACHE_CONTROL) {
        headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    response
}

async fn check(state: &Shared, request: Request, next: Next) -> Response {
    if request
        .extensions()
        .get::<super::media::SignedMedia>()
        .is_some()
    {
        return next.run(request).await;
    }
    if request.method() == Method::POST && !same_origin(request.headers()) {
        return refuse(
            StatusCode::FORBIDDEN,
            "cross-site request refused: the Origin is not this server",
        );
    }
    let Some(token) = &state.auth else {
        return next.run(request).await;
    };
    if is_page(request.uri().path()) {
        if let Some(given) = query_token(request.uri().query()) {
            return if token.matches(&given) {
                page_login(&state.sessions)
            } else {
                refuse(StatusCode::UNAUTHORIZED, "wrong token")
            };
        }
    }
    let headers = request.headers();
    let by_bearer = bearer(headers).is_some_and(|t| token.matches(t));
    let by_cookie = || cookie(headers, COOKIE_NAME).is_some_and(|c| state.sessions.check(c));
    if by_bearer || by_cookie() {
        return next.run(request).await;
    }
    if is_page(request.uri().path()) {
        return login_hint();
    }
    let mut response = refuse(
        StatusCode::UNAUTHORIZED,
        "this bridge needs its http.token: send Authorization: Bearer <token>",
    );
    response
        .headers_mut()
        .insert(WWW_AUTHENTICATE, "Bearer".parse().expect("a valid header"));
    response
}

/// Whether `path` is a status page: `/`, or `/accounts/<account>/` with several accounts.
fn is_page(path: &str) -> bool {
    path == "/"
        || path
            .strip_prefix("/accounts/")
            .and_then(|rest| rest.strip_suffix('/'))
            .is_some_and(|name| !name.is_empty() && !name.contains('/'))
}

/// A JSON error body: `{"error": message}`.
pub fn refuse(status: StatusCode, message: &str) -> Response {
    (status, Json(serde_json::json!({ "error": message }))).into_response()
}

/// The page login: start a session, set its cookie and drop the token from the address.
fn page_login(sessions: &Sessions) -> Response {
    let Some(value) = sessions.start() else {
        return refuse(
            StatusCode::INTERNAL_SERVER_ERROR,
            "no random value for the session cookie",
        );
    };
    (
        StatusCode::SEE_OTHER,
        [
            (LOCATION, "/".to_owned()),
            (SET_COOKIE, sessions.set_cookie(&value)),
            (CACHE_CONTROL, "no-store".to_owned()),
        ],
    )
        .into_response()
}

/// `POST /signout`: ends the page session whose cookie the request carries and clears the
/// cookie. (This is the page's session with the bridge, not the WeChat session: that is the
/// `logout` command.)
pub async fn sign_out(State(state): State<Shared>, headers: HeaderMap) -> Response {
    if let Some(value) = cookie(&headers, COOKIE_NAME) {
        state.sessions.end(value);
    }
    (
        StatusCode::OK,
        [(SET_COOKIE, state.sessions.clear_cookie())],
        Json(serde_json::json!({ "signed_out": true })),
    )
        .into_response()
}

/// What `/` answers without credentials.
fn login_hint() -> Response {
    (
        StatusCode::UNAUTHORIZED,
        [(CONTENT_TYPE, "text/html; charset=utf-8")],
        "<!doctype html><meta charset=utf-8><title>wxbridge</title>\
         <p>This bridge needs its token: open <code>/?token=&lt;http.token&gt;</code> once.</p>",
    )
        .into_response()
}

/// `token` from a query string, percent-decoded.
fn query_token(query: Option<&str>) -> Option<String> {
    query?.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=')?;
        (k == "token").then(|| {
            let v = v.replace('+', " ");
            percent_encoding::percent_decode_str(&v)
                .decode_utf8_lossy()
                .into_owned()
        })
    })
}

/// The token of an `Authorization: Bearer` header.
fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

/// A cookie's value from the `Cookie` headers.
fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|h| h.to_str().ok())
        .flat_map(|h| h.split(';'))
        .find_map(|pair| {
            let (k, v) = pair.trim().split_once('=')?;
            (k == name).then_some(v)
        })
}

/// No `Origin` (not a browser, or a same-origin navigation), or an `Origin` naming this host.
fn same_origin(headers: &HeaderMap) -> bool {
    let Some(origin) = headers.get(ORIGIN) else {
        return true;
    };
    let (Ok(origin), Some(Ok(host))) = (origin.to_str(), headers.get(HOST).map(|h| h.to_str()))
    else {
        return false;
    };
    let origin_host = origin
        .strip_prefix("http://")
        .or_else(|| origin.strip_prefix("https://"));
    origin_host.is_some_and(|o| o.eq_ignore_ascii_case(host))
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(pairs: &[(axum::http::HeaderName, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(k.clone(), HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn the_token_matches_only_itself() {
        let t = Token::new("s3cret");
        assert!(t.matches("s3cret"));
        assert!(!t.matches("s3cre"));
        assert!(!t.matches(""));
        assert!(!t.matches("s3cret "));
    }

    #[test]
    fn each_page_login_gets_a_new_random_session_that_can_end() {
        let sessions = Sessions::new(SESSION_LIFETIME, false);
        let (a, b) = (sessions.start().unwrap(), sessions.start().unwrap());
        assert_ne!(a, b, "a fresh value per login");
        assert!(a.len() >= 43, "256 random bits: {a}");
        assert!(sessions.check(&a) && sessions.check(&b));
        assert!(!sessions.check("s3cret") && !sessions.check(""));
        sessions.end(&a);
        assert!(!sessions.check(&a), "ended");
        assert!(sessions.check(&b), "the other one lives on");
        let set = sessions.set_cookie(&b);
        assert!(set.contains("HttpOnly") && set.contains("SameSite=Strict"));
        assert!(
            set.contains("Max-Age=43200") && !set.contains("Secure"),
            "{set}"
        );
        assert!(sessions.clear_cookie().contains("Max-Age=0"));
    }

    #[test]
    fn sessions_expire_and_are_secure_behind_https() {
        let sessions = Sessions::new(Duration::ZERO, true);
        let value = sessions.start().unwrap();
        assert!(!sessions.check(&value), "expired at once");
        assert!(sessions.set_cookie(&value).ends_with("; Secure"));
        let many = Sessions::new(SESSION_LIFETIME, false);
        let first = many.start().unwrap();
        for _ in 0..MAX_SESSIONS {
            many.start().unwrap();
        }
        assert!(!many.check(&first), "the oldest gave way");
        assert_eq!(many.live.lock().unwrap().len(), MAX_SESSIONS);
    }

    #[test]
    fn credentials_are_read_from_the_bearer_header_cookies_and_the_query() {
        let h = headers(&[
            (AUTHORIZATION, "bearer  abc "),
            (COOKIE, "a=1; wxbridge_session=xyz"),
        ]);
        assert_eq!(bearer(&h), Some("abc"));
        assert_eq!(cookie(&h, COOKIE_NAME), Some("xyz"));
        assert_eq!(cookie(&h, "b"), None);
        assert_eq!(bearer(&headers(&[(AUTHORIZATION, "Basic abc")])), None);
        assert_eq!(
            query_token(Some("x=1&token=a%2Bb%20c")).as_deref(),
            Some("a+b c")
        );
        assert_eq!(query_token(Some("tokens=1")), None);
    }

    #[test]
    fn a_post_from_another_site_is_not_same_origin() {
        assert!(same_origin(&headers(&[(HOST, "127.0.0.1:8787")])));
        assert!(same_origin(&headers(&[
            (HOST, "127.0.0.1:8787"),
            (ORIGIN, "http://127.0.0.1:8787")
        ])));
        assert!(!same_origin(&headers(&[
            (HOST, "127.0.0.1:8787"),
            (ORIGIN, "https://evil.example")
        ])));
        assert!(!same_origin(&headers(&[
            (HOST, "127.0.0.1:8787"),
            (ORIGIN, "null")
        ])));
    }
}
