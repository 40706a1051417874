//! The status page: plain HTML, CSS and a little JS, embedded in the binary (no build step).
//! The script polls `GET /api/status` and renders it; see `page/page.js`.
use axum::http::header::{CACHE_CONTROL, CONTENT_SECURITY_POLICY, CONTENT_TYPE};
use axum::http::HeaderName;
use axum::response::{IntoResponse, Response};

const INDEX: &str = include_str!("page/index.html");
const CSS: &str = include_str!("page/page.css");
const JS: &str = include_str!("page/page.js");

/// Scripts and styles from this server only (no inline code), no framing (the relogin button
/// must not be clickjacked).
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
                   connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

fn asset(content_type: &'static str, cache: &'static str, body: &'static str) -> Response {
    (
        [
            (CONTENT_TYPE, content_type),
            (CACHE_CONTROL, cache),
            (CONTENT_SECURITY_POLICY, CSP),
            (HeaderName::from_static("x-content-type-options"), "nosniff"),
        ],
        body,
    )
        .into_response()
}

/// `GET /`: never stored, as it is only served to whoever holds the token.
pub async fn index() -> Response {
    asset("text/html; charset=utf-8", "no-store", INDEX)
}

/// `GET /page.css`.
pub async fn css() -> Response {
    asset("text/css; charset=utf-8", "no-cache", CSS)
}

/// `GET /page.js`.
pub async fn js() -> Response {
    asset("text/javascript; charset=utf-8", "no-cache", JS)
}
