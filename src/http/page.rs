//! The status page: plain HTML, CSS and a little JS, embedded in the binary (no build step).
//! The script polls `api/status` next to the page (`/api/status`, or
//! `/accounts/<account>/api/status` with several accounts) and renders it; see `page/page.js`.
//! With several accounts `/` lists the accounts' pages.
use axum::extract::State;
use axum::http::header::{CACHE_CONTROL, CONTENT_SECURITY_POLICY, CONTENT_TYPE};
use axum::http::HeaderName;
use axum::response::{IntoResponse, Response};

use super::Shared;

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

/// `GET /` with several accounts: a list of the accounts' pages.
pub async fn accounts(State(state): State<Shared>) -> Response {
    let items: String = state
        .accounts
        .iter()
        .map(|a| {
            let name = escape(&a.control.account);
            let status = a.control.status.borrow().state;
            format!(
                "<li><a href=\"/accounts/{name}/\">{name}</a> <span class=\"badge\">{status}</span></li>\n"
            )
        })
        .collect();
    let page = format!(
        "<!doctype html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>wxbridge</title>\n<link rel=\"stylesheet\" href=\"/page.css\">\n</head>\n\
         <body>\n<header><h1>wxbridge</h1></header>\n<main>\n\
         <section class=\"card\"><h2>Accounts</h2>\n<ul>\n{items}</ul></section>\n</main>\n\
         </body>\n</html>\n"
    );
    (
        [
            (CONTENT_TYPE, "text/html; charset=utf-8"),
            (CACHE_CONTROL, "no-store"),
            (CONTENT_SECURITY_POLICY, CSP),
            (HeaderName::from_static("x-content-type-options"), "nosniff"),
        ],
        page,
    )
        .into_response()
}

/// Text for HTML: account names are plain already, but the page never trusts that.
fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}
