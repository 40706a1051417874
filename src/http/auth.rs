//! Access control for the HTTP API: the `http.token` check and the page login, plus a
//! cross-site guard on requests that change something.
//!
//! - With `http.token` set, every path except `/healthz` needs `Authorization: Bearer <token>`
//!   or the page cookie. Tokens are compared in constant time (both sides are hashed first, so
//!   not even the length leaks).
//! - `GET /?token=<token>` checks the token once, sets an `HttpOnly`, `SameSite=Strict` cookie
//!   holding a value derived from the token (not the token itself) and redirects to `/`, so
//!   the token leaves the address bar and the history.
//! - A `POST` whose `Origin` is not this server's own is refused (403) with or without a token:
//!   a web page on another site must not be able to send messages through a bridge on the
//!   same machine.
use axum::extract::{Request, State};
use axum::http::header::{
    AUTHORIZATION, CACHE_CONTROL, CONTENT_TYPE, COOKIE, HOST, LOCATION, ORIGIN, SET_COOKIE,
    WWW_AUTHENTICATE,
};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Json;
use base64::Engine as _;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::Shared;

/// The page cookie's name.
pub const COOKIE_NAME: &str = "wxbridge_session";

/// How long the page cookie lasts (30 days).
const COOKIE_MAX_AGE: u64 = 30 * 24 * 60 * 60;

/// The configured `http.token`, kept only as digests.
pub struct Token {
    digest: [u8; 32],
    cookie: String,
}

impl Token {
    /// From the configured secret.
    pub fn new(secret: &str) -> Token {
        let cookie = Sha256::new()
            .chain_update(b"wxbridge page cookie\0")
            .chain_update(secret.as_bytes())
            .finalize();
        Token {
            digest: Sha256::digest(secret.as_bytes()).into(),
            cookie: base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(cookie),
        }
    }

    /// Whether `given` is the token, in constant time.
    pub fn matches(&self, given: &str) -> bool {
        let given: [u8; 32] = Sha256::digest(given.as_bytes()).into();
        self.digest.ct_eq(&given).into()
    }

    /// Whether `given` is the page cookie's value, in constant time.
    fn matches_cookie(&self, given: &str) -> bool {
        let want = Sha256::digest(self.cookie.as_bytes());
        let given = Sha256::digest(given.as_bytes());
        want.as_slice().ct_eq(given.as_slice()).into()
    }

    /// The `Set-Cookie` value of a page login.
    fn set_cookie(&self) -> String {
        format!(
            "{COOKIE_NAME}={}; Path=/; HttpOnly; SameSite=Strict; Max-Age={COOKIE_MAX_AGE}",
            self.cookie
        )
    }
}

/// The middleware in front of every route but `/healthz`.
pub async fn guard(State(state): State<Shared>, request: Request, next: Next) -> Response {
    if request.method() == Method::POST && !same_origin(request.headers()) {
        return refuse(
            StatusCode::FORBIDDEN,
            "cross-site request refused: the Origin is not this server",
        );
    }
    let Some(token) = &state.auth else {
        return next.run(request).await;
    };
    if request.uri().path() == "/" {
        if let Some(given) = query_token(request.uri().query()) {
            return if token.matches(&given) {
                page_login(token)
            } else {
                refuse(StatusCode::UNAUTHORIZED, "wrong token")
            };
        }
    }
    let headers = request.headers();
    let by_bearer = bearer(headers).is_some_and(|t| token.matches(t));
    let by_cookie = || cookie(headers, COOKIE_NAME).is_some_and(|c| token.matches_cookie(c));
    if by_bearer || by_cookie() {
        return next.run(request).await;
    }
    if request.uri().path() == "/" {
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

/// A JSON error body: `{"error": message}`.
pub fn refuse(status: StatusCode, message: &str) -> Response {
    (status, Json(serde_json::json!({ "error": message }))).into_response()
}

/// The page login: set the cookie and drop the token from the address.
fn page_login(token: &Token) -> Response {
    (
        StatusCode::SEE_OTHER,
        [
            (LOCATION, "/".to_owned()),
            (SET_COOKIE, token.set_cookie()),
            (CACHE_CONTROL, "no-store".to_owned()),
        ],
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
    fn the_page_cookie_is_derived_from_the_token_and_is_not_the_token() {
        let t = Token::new("s3cret");
        let set = t.set_cookie();
        assert!(set.contains("HttpOnly") && set.contains("SameSite=Strict"));
        assert!(!set.contains("s3cret"));
        let value = set
            .split(';')
            .next()
            .unwrap()
            .strip_prefix("wxbridge_session=")
            .unwrap();
        assert!(t.matches_cookie(value));
        assert!(!Token::new("other").matches_cookie(value));
        assert!(!t.matches_cookie("s3cret"));
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
